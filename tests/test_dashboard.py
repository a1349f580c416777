"""The Grafana dashboard and its provisioning; every metric the dashboard and rules use is real.

"Real" means present in a scrape of the running demo, which populates every
metric family (tests/test_demo.py checks that it does).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboard import (
    DASHBOARD_FILE,
    dashboard_queries,
    load_dashboard,
    metric_names,
    panels,
    rule_test_series,
    rule_texts,
    variable_queries,
)
from tests.support.demo_process import DemoProcess
from tests.support.environment import require
from tests.support.mail_domain import MailDomainWorld
from tests.support.prometheus import REPOSITORY, missing_tool, promtool

GRAFANA = REPOSITORY / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _exported_names(demo: DemoProcess, mail_domain: MailDomainWorld) -> set[str]:
    # The demo shows every posture but has no DNS, so no domain and no DANE;
    # the signed mail domain (tests/support/mail_domain.py) has both, from a
    # real exporter following real nsd and unbound.
    return {name for name, _, _ in (*demo.scrape().samples, *mail_domain.scrape().samples)}


def test_every_metric_the_dashboard_uses_is_exported(demo: DemoProcess, mail_domain: MailDomainWorld) -> None:
    dashboard = load_dashboard()
    used = set().union(*(metric_names(expression) for _, expression in dashboard_queries(dashboard)))
    used |= set().union(*(metric_names(query) for query in variable_queries(dashboard)))
    assert len(used) >= 10, used
    assert used - _exported_names(demo, mail_domain) == set()


def test_every_metric_the_alert_rules_use_is_exported(demo: DemoProcess, mail_domain: MailDomainWorld) -> None:
    used = set().union(*(metric_names(text) for text in rule_texts()))
    assert len(used) >= 10, used
    assert used - _exported_names(demo, mail_domain) == set()


def test_the_rules_unit_tests_feed_real_series(demo: DemoProcess, mail_domain: MailDomainWorld) -> None:
    # Otherwise a misspelt metric could pass in both the rule and its test.
    used = set().union(*(metric_names(series.partition("{")[0]) for series in rule_test_series()))
    assert used - _exported_names(demo, mail_domain) == set()


@pytest.mark.parametrize("source", ["demo", "mail_domain"])
def test_the_scrape_passes_promtool_lint_but_for_known_names(request: pytest.FixtureRequest, source: str) -> None:
    require(missing_tool("promtool"), "promtool check metrics")
    exporter: DemoProcess | MailDomainWorld = request.getfixturevalue(source)
    completed = promtool("check", "metrics", stdin=exporter.scrape().text)
    findings = sorted(line for line in (completed.stdout + completed.stderr).splitlines() if line.strip())
    # Part of the public contract (README): days read better than seconds in
    # an alert, and "bits" is a cipher's or key's strength (as OpenSSL prints
    # it), not an amount of data.
    assert findings == [
        'smtp_cert_chain_key_bits use base unit "bytes" instead of "bits"',
        'smtp_cert_expiry_days use base unit "seconds" instead of "days"',
        'smtp_tls_cipher_bits use base unit "bytes" instead of "bits"',
        'smtp_tls_key_exchange_bits use base unit "bytes" instead of "bits"',
    ]


def test_dashboard_has_a_datasource_and_a_multi_select_target_variable() -> None:
    variables = {variable["name"]: variable for variable in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    target = variables["target"]
    assert target["type"] == "query"
    assert target["datasource"] == DATASOURCE
    assert target["multi"] is True
    assert target["includeAll"] is True
    assert target["allValue"] == ".*"
    assert "label_values(smtp_target_info, target)" in variable_queries(load_dashboard())


def test_every_panel_queries_the_chosen_datasource_and_targets() -> None:
    dashboard = load_dashboard()
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for query in panel.get("targets", []):
            assert query["datasource"] == DATASOURCE, panel["title"]
    for title, expression in dashboard_queries(dashboard):
        per_target = {name for name in metric_names(expression) if not name.startswith("smtp_exporter_")}
        for name in per_target:
            assert re.search(rf'{name}\{{target=~"\$target"\}}', expression), f"{title}: {name} ignores $target"


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    dashboard = load_dashboard()
    by_title: dict[str, dict[str, Any]] = {panel["title"]: panel for panel in panels(dashboard)}
    overview = by_title["Overview"]
    columns = set(overview["transformations"][1]["options"]["renameByName"].values())
    assert {
        "Success", "TLS version", "Cipher", "Bits", "Days to expiry", "Trusted", "Hostname match", "AUTH", "Last probe",
    } <= columns  # fmt: skip
    expiry = by_title["Days to certificate expiry"]
    assert expiry["targets"][0]["expr"].startswith("sort(smtp_cert_expiry_days")  # soonest first
    steps = expiry["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 7, 21]  # the alert thresholds
    tls = by_title["Negotiated TLS version"]
    assert tls["fieldConfig"]["defaults"]["custom"]["lineInterpolation"] == "stepAfter"
    assert "smtp_probe_phase_duration_seconds" in by_title["Probe phase durations"]["targets"][0]["expr"]
    assert "by (reason)" in by_title["Failures by reason"]["targets"][0]["expr"]
    assert len({panel["id"] for panel in panels(dashboard)}) == len(list(panels(dashboard)))
    # The domain view: each domain's pairs with their status, and its soonest expiry.
    domain_pairs = by_title["Domain MX hosts and addresses"]
    assert {"Domain", "MX", "Address", "Status", "Addresses of the MX"} <= set(
        domain_pairs["transformations"][1]["options"]["renameByName"].values()
    )
    assert "smtp_domain_mx_addresses" in domain_pairs["targets"][2]["expr"]
    soonest = by_title["Soonest certificate expiry per domain"]["targets"][0]["expr"]
    assert soonest.startswith("sort(min by (target) (smtp_cert_expiry_days")


def test_dashboard_has_a_scan_row() -> None:
    dashboard = load_dashboard()
    [row] = [
        panel for panel in dashboard["panels"] if panel["type"] == "row" and panel["title"] == "TLS capability scan"
    ]
    below = [panel for panel in dashboard["panels"] if panel["gridPos"]["y"] == row["gridPos"]["y"] + 1]
    queries = " ".join(query["expr"] for panel in below for query in panel["targets"])
    for family in ("smtp_tls_version_accepted", "smtp_tls_ciphers_accepted", "smtp_tls_secure_renegotiation",
                   "smtp_tls_scan_timestamp_seconds"):  # fmt: skip
        assert family in queries, family


def test_grafana_provisioning_finds_the_datasource_and_the_dashboard() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["jsonData"]["manageAlerts"] is True  # Grafana lists Prometheus's alert rules
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "smtp-tls-exporter.yml").read_text())
    [provider] = providers["providers"]
    # docker-compose.yml mounts grafana/dashboards at the provider's path.
    compose = yaml.safe_load((REPOSITORY / "docker-compose.yml").read_text())
    mounts = dict(_bind_mount(volume) for volume in compose["services"]["grafana"]["volumes"] if volume[0] == ".")
    assert mounts[provider["options"]["path"]] == DASHBOARD_FILE.parent
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"


def _bind_mount(volume: str) -> tuple[str, Path]:
    """``./host:/container[:ro]`` as (container path, host path)."""
    host, container = volume.split(":")[:2]
    return container, (REPOSITORY / host).resolve()


def _columns(panel: dict[str, Any]) -> set[str]:
    return set(panel["transformations"][1]["options"]["renameByName"].values())


def test_dashboard_shows_dane_and_tls_in_depth() -> None:
    by_title: dict[str, dict[str, Any]] = {panel["title"]: panel for panel in panels(load_dashboard())}
    # Issue 14: DANE's status per target and (MX, address) pair, the match, rollover and renewal.
    dane = by_title["DANE per target and MX"]
    assert {
        "Target", "MX", "Address", "DANE status", "Match", "Matched record", "Depth", "Rollover ready", "Renewal safe",
    } <= _columns(dane)  # fmt: skip
    used = set().union(*(metric_names(query["expr"]) for query in dane["targets"]))
    assert {"smtp_dane_status_info", "smtp_dane_match", "smtp_dane_rollover_ready", "smtp_dane_renewal_safe"} <= used
    assert "smtp_dane_tlsa_records" in by_title["TLSA records"]["targets"][0]["expr"]
    # Issue 16: key exchange, signature, ratings, and the client certificate.
    depth = by_title["Handshake in depth"]
    assert {
        "Key exchange", "Key bits", "Signature", "Cipher rating", "Weakest in chain",
        "Client cert requested", "Client cert accepted", "Client cert days left",
    } <= _columns(depth)  # fmt: skip
    for title in ("Key-exchange groups", "Cipher ratings", "Weakest chain ratings"):
        assert by_title[title]["targets"][0]["expr"].count("count by (") == 1, title


def test_the_two_label_sets_named_rating_do_not_collide_in_one_table() -> None:
    # A merged table joins rows on equal column names: both rating families
    # are renamed before the merge, or a cipher's rating would pair with the chain's.
    depth = {panel["title"]: panel for panel in panels(load_dashboard())}["Handshake in depth"]
    renamed = [query["expr"] for query in depth["targets"] if "rating" in query["expr"]]
    assert len(renamed) == 2
    assert all(expr.startswith("max without (rating) (label_replace(") for expr in renamed)


def test_rows_are_self_contained() -> None:
    # Each row's panels sit between it and the next row, so a row can be merged,
    # moved or collapsed as one piece (other rows are on their way).
    top = load_dashboard()["panels"]
    rows = [index for index, panel in enumerate(top) if panel["type"] == "row"]
    assert {top[index]["title"] for index in rows} >= {"DANE (RFC 7672)", "TLS in depth"}
    for position, index in enumerate(rows):
        end = rows[position + 1] if position + 1 < len(rows) else len(top)
        start_y = top[index]["gridPos"]["y"]
        end_y = top[end]["gridPos"]["y"] if end < len(top) else float("inf")
        for panel in top[index + 1 : end]:
            assert start_y < panel["gridPos"]["y"] < end_y, panel["title"]
            assert panel["gridPos"]["y"] + panel["gridPos"]["h"] <= end_y, panel["title"]
    # No two panels overlap anywhere on the grid.
    cells = [
        (x, y, panel["title"])
        for panel in top
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len({(x, y) for x, y, _ in cells}) == len(cells)
