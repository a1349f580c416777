"""A real Prometheus (Debian's) scraping the exporter and evaluating the shipped rules, unmodified.

Three scrape jobs on loopback: ``smtp-tls``, the exporter probing two test
servers (a good certificate and one that expires in three days); ``demo``,
the demo with every posture; and ``domains``, an exporter following a
DNSSEC-signed mail domain over real nsd and unbound (tests/support/mail_domain.py:
one MX whose DANE passes, one whose TLSA names keys it no longer has, and a
domain that does not exist). Everything is read back through Prometheus's HTTP
API, as Grafana and Alertmanager would read it.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509

from tests.support.dashboard import as_prometheus_sees_it, dashboard_queries, load_dashboard
from tests.support.demo_process import DemoProcess
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess
from tests.support.mail_domain import ADDRESSES, DOMAIN_TARGET, MISSING_TARGET, MX_MATCHING, MX_RENEWED, MailDomainWorld
from tests.support.pki import DAY, NOW, SERVER_NAME, Pki
from tests.support.prometheus import PrometheusServer, missing_tool
from tests.support.servers import ScenarioServers

JOB = "smtp-tls"
DOMAINS_JOB = "domains"


@dataclass
class Stack:
    prometheus: PrometheusServer
    expiring_not_after: datetime.datetime


@pytest.fixture(scope="module")
def stack(
    pki: Pki,
    servers: ScenarioServers,
    demo: DemoProcess,
    mail_domain: MailDomainWorld,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    require(missing_tool("prometheus"), "the end-to-end test with a real Prometheus")
    directory = tmp_path_factory.mktemp("end-to-end")
    expiring = pki.leaf(SERVER_NAME, not_after=NOW + 3 * DAY)
    ports = {
        "good": servers.smtp(tls_context=pki.leaf(SERVER_NAME).server_context(directory, "e2e-good")),
        "expiring": servers.smtp(tls_context=expiring.server_context(directory, "e2e-expiring")),
    }
    config = directory / "config.yml"
    lines = ["defaults:", "  interval: 5s", "  timeout: 3s", "  ehlo_name: probe.test", f"  ca_file: {pki.ca_file}"]
    lines.append("targets:")
    for name, port in ports.items():
        lines.append(
            f"  - {{name: {name}, host: 127.0.0.1, port: {port}, server_name: {SERVER_NAME}, labels: {{team: mail}}}}"
        )
    config.write_text("\n".join(lines) + "\n")
    with ExporterProcess(config, directory / "exporter.log") as exporter:
        exporter.wait_for_probes(list(ports))
        scrape_targets = {
            JOB: exporter.base_url.removeprefix("http://"),
            "demo": demo.address,
            DOMAINS_JOB: mail_domain.exporter.base_url.removeprefix("http://"),
        }
        with PrometheusServer(directory / "prometheus", scrape_targets) as prometheus:
            not_after = x509.load_pem_x509_certificates(expiring.chain_pem)[0].not_valid_after_utc
            yield Stack(prometheus, not_after)


def _by_target(result: list[dict[str, Any]]) -> dict[str, float]:
    return {sample["metric"]["target"]: float(sample["value"][1]) for sample in result}


def _alerts(prometheus: PrometheusServer, job: str) -> set[tuple[str, str, str]]:
    """(alert name, target, state) of every pending or firing alert of ``job``."""
    return {
        (alert["labels"]["alertname"], alert["labels"].get("target", ""), alert["state"])
        for alert in prometheus.alerts()
        if alert["labels"].get("job") == job
    }


def _some_result(prometheus: PrometheusServer, query: str) -> list[dict[str, Any]] | None:
    return prometheus.query(query) or None


def test_series_arrive_with_the_right_values(stack: Stack) -> None:
    prometheus = stack.prometheus

    def both_targets(expression: str) -> dict[str, float] | None:
        values = _by_target(prometheus.query(expression))
        return values if set(values) == {"good", "expiring"} else None

    success = prometheus.wait_for(lambda: both_targets(f'smtp_probe_success{{job="{JOB}"}}'), "probe results")
    assert success == {"good": 1, "expiring": 1}
    assert both_targets(f'smtp_cert_trusted{{job="{JOB}"}}') == {"good": 1, "expiring": 1}
    assert both_targets(f'smtp_tls_version{{job="{JOB}"}}') == {"good": 1.3, "expiring": 1.3}
    not_after = both_targets(f'smtp_cert_not_after_timestamp_seconds{{job="{JOB}"}}')
    assert not_after is not None
    assert not_after["expiring"] == stack.expiring_not_after.timestamp()
    days = both_targets(f'smtp_cert_expiry_days{{job="{JOB}"}}')
    assert days is not None
    assert 2.9 < days["expiring"] <= 3
    assert days["good"] > 21
    [team] = {sample["metric"]["team"] for sample in prometheus.query(f'smtp_probe_success{{job="{JOB}"}}')}
    assert team == "mail"
    assert [float(sample["value"][1]) for sample in prometheus.query(f'up{{job="{JOB}"}}')] == [1]


def test_the_expiry_alert_fires_for_the_certificate_that_expires_in_three_days(stack: Stack) -> None:
    prometheus = stack.prometheus

    def firing() -> dict[str, Any] | None:
        for alert in prometheus.alerts():
            labels = alert["labels"]
            if labels.get("job") == JOB and labels["alertname"] == "SmtpCertificateExpiringCritical":
                return alert if alert["state"] == "firing" else None
        return None

    alert = prometheus.wait_for(firing, "SmtpCertificateExpiringCritical firing")
    assert alert["labels"]["target"] == "expiring"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["team"] == "mail"
    assert re.fullmatch(r"Certificate of expiring expires in (2\.9|3\.0) days", alert["annotations"]["summary"])
    assert "expiring presents expires in" in alert["annotations"]["description"]
    # The good certificate raises nothing, and the expiring one only this alert.
    assert _alerts(prometheus, JOB) == {("SmtpCertificateExpiringCritical", "expiring", "firing")}


def test_every_demo_posture_raises_its_alert_and_nothing_else(stack: Stack) -> None:
    expected = {
        ("SmtpCertificateExpiringSoon", "expires-in-14-days", "firing"),
        ("SmtpCertificateExpiringCritical", "expires-in-3-days", "firing"),
        ("SmtpCertificateExpired", "cert-expired", "firing"),
        ("SmtpCertificateUntrusted", "self-signed", "firing"),
        ("SmtpCertificateHostnameMismatch", "wrong-hostname", "firing"),
        ("SmtpTlsVersionObsolete", "tls-1.1-only", "firing"),
        # Its capability scan: TLS 1.0 and 1.1 accepted, and only CBC-SHA-1 suites there.
        ("SmtpTlsLegacyVersionAccepted", "tls-1.1-only", "firing"),
        ("SmtpTlsInsufficientCipherAccepted", "tls-1.1-only", "firing"),
        # These wait 10 minutes before firing.
        ("SmtpProbeFailing", "starttls-missing", "pending"),
        ("SmtpAuthFailing", "wrong-password", "pending"),
    }
    prometheus = stack.prometheus
    alerts = prometheus.wait_for(
        lambda: _alerts(prometheus, "demo") if _alerts(prometheus, "demo") == expected else None,
        lambda: f"the demo's alerts to be {sorted(expected)}, not {sorted(_alerts(prometheus, 'demo'))}",
    )
    assert alerts == expected


def test_every_rule_evaluates_without_error(stack: Stack) -> None:
    prometheus = stack.prometheus

    def evaluated_rules() -> list[dict[str, Any]] | None:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = prometheus.wait_for(evaluated_rules, "every rule evaluated")
    assert [(rule["name"], rule["health"], rule.get("lastError", "")) for rule in rules] == [
        (rule["name"], "ok", "") for rule in rules
    ]


def test_the_signed_domain_arrives_per_pair_with_its_dane_verdicts(stack: Stack) -> None:
    prometheus = stack.prometheus

    def by_pair(expression: str) -> dict[str, float] | None:
        values = {
            sample["metric"]["mx"]: float(sample["value"][1])
            for sample in prometheus.query(expression)
            if sample["metric"]["address"] == ADDRESSES[sample["metric"]["mx"]]
        }
        return values if set(values) == set(ADDRESSES) else None

    selector = f'job="{DOMAINS_JOB}",target="{DOMAIN_TARGET}"'
    assert prometheus.wait_for(lambda: by_pair(f"smtp_dane_match{{{selector}}}"), "DANE results per pair") == {
        MX_MATCHING: 1,
        MX_RENEWED: 0,
    }
    statuses = {
        sample["metric"]["mx"]: sample["metric"]["status"]
        for sample in prometheus.query(f"smtp_dane_status_info{{{selector}}} == 1")
    }
    assert statuses == {MX_MATCHING: "pass", MX_RENEWED: "fail"}
    assert by_pair(f"smtp_probe_success{{{selector}}}") == {MX_MATCHING: 1, MX_RENEWED: 0}
    assert _by_target(prometheus.query(f'smtp_domain_lookup_success{{job="{DOMAINS_JOB}"}}')) == {
        DOMAIN_TARGET: 1,
        MISSING_TARGET: 0,
    }


def test_the_domain_alerts_name_the_mx_and_address(stack: Stack) -> None:
    # All three wait (5 and 10 minutes) before firing, so they stay pending here;
    # Prometheus renders a pending alert's annotations all the same.
    expected = {
        ("SmtpDaneMismatch", DOMAIN_TARGET, "pending"),
        ("SmtpDomainMxUnreachable", DOMAIN_TARGET, "pending"),
        ("SmtpDomainLookupFailing", MISSING_TARGET, "pending"),
    }
    prometheus = stack.prometheus
    prometheus.wait_for(
        lambda: True if _alerts(prometheus, DOMAINS_JOB) == expected else None,
        lambda: f"the domain's alerts to be {sorted(expected)}, not {sorted(_alerts(prometheus, DOMAINS_JOB))}",
    )
    summaries = {
        alert["labels"]["alertname"]: alert["annotations"]["summary"]
        for alert in prometheus.alerts()
        if alert["labels"].get("job") == DOMAINS_JOB
    }
    renewed = f"{DOMAIN_TARGET} (MX {MX_RENEWED} at {ADDRESSES[MX_RENEWED]})"
    assert summaries == {
        "SmtpDaneMismatch": f"DANE TLSA records of {renewed} do not match its certificate",
        "SmtpDomainMxUnreachable": f"MX {MX_RENEWED} of {DOMAIN_TARGET} is unreachable",
        "SmtpDomainLookupFailing": f"DNS lookup of mail domain {MISSING_TARGET} fails",
    }


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    prometheus = stack.prometheus
    for title, expression in dashboard_queries(load_dashboard()):
        query = as_prometheus_sees_it(expression)
        prometheus.wait_for(functools.partial(_some_result, prometheus, query), f"{title!r}: {query}")
    targets = prometheus.api("label/target/values", **{"match[]": "smtp_target_info"})
    assert {"good", "expiring", "healthy", DOMAIN_TARGET} <= set(targets)
