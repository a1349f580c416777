"""Mail domains against real DNS: nsd serves the zone, unbound resolves it, the exporter follows it.

Every MX address is a loopback address (127.0.0.x and ::1) where a scenario
server listens on one shared port, so each (MX host, address) pair is a
real server with its own posture. The exporter asks only the test resolver
(`dns.nameservers`), and the assertions read its scraped /metrics.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.metrics.families import DOMAIN_FAMILIES
from tests.support.dns_servers import DnsServers, Zone, ZoneKind, start_dns_servers, unavailable_reason
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import Pki
from tests.support.servers import ScenarioServers

GOOD = ("127.0.0.21", "127.0.0.23", "127.0.0.24", "127.0.0.25", "127.0.0.26", "::1")
# Listed in DNS, nothing listens there: the one bad address of a domain.
REFUSING = "127.0.0.22"
MX_NAMES = (
    "mx1.two.dom.test",
    "mx2.two.dom.test",
    "implicit.dom.test",
    "alias.dom.test",
    "a.changing.dom.test",
    "multi.dom.test",
)
ZONE_BEFORE = """
two          MX 10 mx1.two
two          MX 20 mx2.two
mx1.two      A 127.0.0.21
mx1.two      A 127.0.0.22
mx2.two      A 127.0.0.23
mx2.two      AAAA ::1
implicit     A 127.0.0.24
null         MX 0 .
no-address   MX 10 nothing
nothing      TXT "a name without addresses"
cname        MX 10 alias
alias        CNAME mx2.two
changing     MX 10 a.changing
a.changing   A 127.0.0.21
a.changing   A 127.0.0.25
multi        A 127.0.0.21
multi        A 127.0.0.22
"""
# The changing domain's MX moves from .25 to .26 and keeps .21.
ZONE_AFTER = ZONE_BEFORE.replace("a.changing   A 127.0.0.25", "a.changing   A 127.0.0.26")
DOMAINS = {
    "two": "two.dom.test",
    "implicit": "implicit.dom.test",
    # Not "null": YAML would read the name as no name at all.
    "null-mx": "null.dom.test",
    "no-address": "no-address.dom.test",
    "cname": "cname.dom.test",
    "changing": "changing.dom.test",
    "missing": "missing.dom.test",
    "servfail": "broken.test",
}


@dataclass
class DomainWorld:
    dns: DnsServers
    exporter: ExporterProcess
    config: Path
    port: int
    ca_file: Path


def _shared_port() -> int:
    # One port every MX address listens on, as port 25 would be.
    with socket.socket() as probe:
        probe.bind(("127.0.0.21", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def world(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DomainWorld]:
    require(unavailable_reason(), "the domain tests with real nsd and unbound")
    base = tmp_path_factory.mktemp("domains")
    dns = start_dns_servers([Zone("dom.test", ZONE_BEFORE), Zone("broken.test", kind=ZoneKind.BROKEN)], base / "dns")
    context = pki.leaf(*MX_NAMES).server_context(cert_dir, "domains")
    port = _shared_port()
    for address in GOOD:
        servers.smtp(tls_context=context, host=address, port=port)
    resolver_host, resolver_port = dns.resolver_address
    lines = [
        f"dns: {{nameservers: ['{resolver_host}:{resolver_port}'], timeout: 3s}}",
        "defaults:",
        "  interval: 1h",
        "  timeout: 5s",
        "  ehlo_name: probe.test",
        f"  ca_file: {pki.ca_file}",
        "targets:",
        "  - name: multi",
        "    host: multi.dom.test",
        f"    port: {port}",
        "    addresses: all",
        "domains:",
    ]
    for name, domain in DOMAINS.items():
        lines += [f"  - name: {name}", f"    domain: {domain}", f"    port: {port}", "    dns_interval: 1s"]
        lines.append("    labels: {team: mail}")
    lines += [
        "modules:",
        "  domain: {mx: true, timeout: 8s}",
        f"probe_allow: [{{host: '*.dom.test', ports: [{port}]}}]",
    ]
    config = base / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    exporter = ExporterProcess(config, base / "exporter.log")
    try:
        yield DomainWorld(dns, exporter, config, port, pki.ca_file)
    finally:
        exporter.stop()
        dns.stop()


def _probed(scrape: Scrape, target: str, mx: str | None, address: str) -> bool:
    labels = {"target": target, "address": address} | ({"mx": mx} if mx else {})
    return bool(scrape.find("smtp_probe_timestamp_seconds", **labels))


def _success(scrape: Scrape, target: str, mx: str, address: str) -> float | None:
    return scrape.value("smtp_probe_success", target=target, mx=mx, address=address)


def _pairs(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels.get("mx", ""), labels["address"]) for labels, _ in scrape.find("smtp_target_info", target=target)}


@pytest.fixture(scope="module")
def first_scrape(world: DomainWorld) -> Scrape:
    expected = [
        ("two", "mx1.two.dom.test", "127.0.0.21"),
        ("two", "mx1.two.dom.test", REFUSING),
        ("two", "mx2.two.dom.test", "127.0.0.23"),
        ("two", "mx2.two.dom.test", "::1"),
        ("implicit", "implicit.dom.test", "127.0.0.24"),
        ("cname", "alias.dom.test", "127.0.0.23"),
        ("changing", "a.changing.dom.test", "127.0.0.25"),
        ("multi", None, "127.0.0.21"),
        ("multi", None, REFUSING),
    ]
    return world.exporter.wait_for(
        lambda scrape: (
            all(_probed(scrape, *pair) for pair in expected)
            and all(scrape.find("smtp_domain_lookup_success", target=name) for name in DOMAINS)
        )
    )


def test_two_mx_with_two_addresses_each_probe_every_pair(first_scrape: Scrape) -> None:
    scrape = first_scrape
    assert _pairs(scrape, "two") == {
        ("mx1.two.dom.test", "127.0.0.21"),
        ("mx1.two.dom.test", REFUSING),
        ("mx2.two.dom.test", "127.0.0.23"),
        ("mx2.two.dom.test", "::1"),
    }
    assert _success(scrape, "two", "mx1.two.dom.test", "127.0.0.21") == 1
    assert _success(scrape, "two", "mx2.two.dom.test", "127.0.0.23") == 1
    assert _success(scrape, "two", "mx2.two.dom.test", "::1") == 1
    # The one bad address fails on its own; its MX's other address still succeeds.
    assert _success(scrape, "two", "mx1.two.dom.test", REFUSING) == 0
    [(labels, _)] = scrape.find("smtp_probe_error_info", target="two", address=REFUSING)
    assert (labels["phase"], labels["reason"], labels["mx"]) == ("connect", "connection_refused", "mx1.two.dom.test")
    # SNI and the name check are the MX host's name, not the address.
    assert scrape.value("smtp_cert_hostname_match", target="two", mx="mx2.two.dom.test", address="::1") == 1
    [(info, _)] = scrape.find("smtp_target_info", target="two", address="::1")
    assert (info["host"], info["server_name"], info["tls"], info["team"]) == (
        "mx2.two.dom.test",
        "mx2.two.dom.test",
        "starttls",
        "mail",
    )
    assert scrape.value("smtp_domain_lookup_success", target="two") == 1
    assert scrape.find("smtp_domain_lookup_error_info", target="two") == []
    assert {(labels["mx"], labels["preference"]) for labels, _ in scrape.find("smtp_domain_mx_info", target="two")} == {
        ("mx1.two.dom.test", "10"),
        ("mx2.two.dom.test", "20"),
    }
    assert scrape.value("smtp_domain_mx_addresses", target="two", mx="mx1.two.dom.test") == 2
    assert scrape.value("smtp_domain_mx_addresses", target="two", mx="mx2.two.dom.test") == 2
    assert scrape.value("smtp_domain_mx_implicit", target="two") == 0
    assert scrape.value("smtp_domain_null_mx", target="two") == 0
    assert (scrape.value("smtp_domain_lookup_timestamp_seconds", target="two") or 0) > 0
    assert scrape.value("smtp_domain_lookup_duration_seconds", target="two") is not None


def test_implicit_mx_is_the_domain_itself(first_scrape: Scrape) -> None:
    scrape = first_scrape
    assert scrape.value("smtp_domain_mx_implicit", target="implicit") == 1
    assert _pairs(scrape, "implicit") == {("implicit.dom.test", "127.0.0.24")}
    assert _success(scrape, "implicit", "implicit.dom.test", "127.0.0.24") == 1
    [(labels, _)] = scrape.find("smtp_domain_mx_info", target="implicit")
    assert (labels["mx"], labels["preference"]) == ("implicit.dom.test", "0")


def test_null_mx_is_reported_probes_nothing_and_is_no_failure(first_scrape: Scrape) -> None:
    scrape = first_scrape
    assert scrape.value("smtp_domain_null_mx", target="null-mx") == 1
    assert scrape.value("smtp_domain_lookup_success", target="null-mx") == 1
    assert scrape.find("smtp_domain_mx_info", target="null-mx") == []
    assert _pairs(scrape, "null-mx") == set()
    assert scrape.find("smtp_probe_success", target="null-mx") == []


@pytest.mark.parametrize(("target", "reason"), [("missing", "dns_nxdomain"), ("servfail", "dns_servfail")])
def test_lookup_failures_are_results_with_a_reason(first_scrape: Scrape, target: str, reason: str) -> None:
    scrape = first_scrape
    assert scrape.value("smtp_domain_lookup_success", target=target) == 0
    assert [labels["reason"] for labels, _ in scrape.find("smtp_domain_lookup_error_info", target=target)] == [reason]
    assert _pairs(scrape, target) == set()
    assert scrape.value("smtp_domain_mx_implicit", target=target) == 0


def test_an_mx_without_addresses_is_counted_as_zero_and_not_probed(first_scrape: Scrape) -> None:
    scrape = first_scrape
    assert scrape.value("smtp_domain_lookup_success", target="no-address") == 1
    assert scrape.value("smtp_domain_mx_addresses", target="no-address", mx="nothing.dom.test") == 0
    assert _pairs(scrape, "no-address") == set()


def test_a_cnamed_mx_is_probed_under_its_own_name(first_scrape: Scrape) -> None:
    scrape = first_scrape
    # RFC 2181 10.3 forbids it, senders follow it anyway: the alias is the server name.
    assert _pairs(scrape, "cname") == {("alias.dom.test", "127.0.0.23"), ("alias.dom.test", "::1")}
    assert _success(scrape, "cname", "alias.dom.test", "::1") == 1
    [(info, _)] = scrape.find("smtp_target_info", target="cname", address="127.0.0.23")
    assert info["server_name"] == "alias.dom.test"


def test_host_target_with_addresses_all_probes_each_address(first_scrape: Scrape) -> None:
    scrape = first_scrape
    assert scrape.value("smtp_probe_success", target="multi", address="127.0.0.21") == 1
    assert scrape.value("smtp_probe_success", target="multi", address=REFUSING) == 0
    assert all("mx" not in labels for labels, _ in scrape.find("smtp_probe_success", target="multi"))


def test_counts_pairs_and_domains_and_exports_every_domain_family(first_scrape: Scrape) -> None:
    scrape = first_scrape
    # 4 + 1 + 2 + 2 pairs, and the two addresses of the host target.
    assert scrape.value("smtp_exporter_targets") == 11
    assert scrape.value("smtp_exporter_domains") == len(DOMAINS)
    # The alert rules and the dashboard rely on these families being real (test_dashboard.py).
    # (The MTA-STS and TLS-RPT families need policies: tests/test_mta_sts_metrics.py.)
    lookup_families = {family.name for family in DOMAIN_FAMILIES if family.name.startswith("smtp_domain_")}
    assert lookup_families <= {name for name, _, _ in scrape.samples}


def test_re_lookups_and_reloads_keep_unchanged_pairs_and_dns_changes_are_followed(
    world: DomainWorld, first_scrape: Scrape
) -> None:
    exporter = world.exporter
    before = first_scrape.value("smtp_domain_lookup_timestamp_seconds", target="two") or 0
    # Several lookups later (dns_interval 1s), and after a reload of the same config ...
    exporter.wait_for(lambda scrape: (scrape.value("smtp_domain_lookup_timestamp_seconds", target="two") or 0) > before)
    status, _, body = exporter.post("/-/reload")
    assert status == 200, body
    scrape = exporter.scrape()
    # ... an unchanged pair was not probed again (interval 1h) and kept its result.
    stable = {"target": "two", "mx": "mx2.two.dom.test", "address": "::1"}
    assert scrape.value("smtp_probes_total", **stable) == 1
    assert scrape.value("smtp_probe_timestamp_seconds", **stable) == first_scrape.value(
        "smtp_probe_timestamp_seconds", **stable
    )

    world.dns.replace_zone("dom.test", ZONE_AFTER)
    after = exporter.wait_for(
        lambda scrape: (
            _probed(scrape, "changing", "a.changing.dom.test", "127.0.0.26")
            and not scrape.find("smtp_target_info", target="changing", address="127.0.0.25")
        )
    )
    assert _pairs(after, "changing") == {("a.changing.dom.test", "127.0.0.21"), ("a.changing.dom.test", "127.0.0.26")}
    assert _success(after, "changing", "a.changing.dom.test", "127.0.0.26") == 1
    # The vanished pair exports nothing at all any more.
    assert not [labels for _, labels, _ in after.samples if labels.get("address") == "127.0.0.25"]
    kept = {"target": "changing", "mx": "a.changing.dom.test", "address": "127.0.0.21"}
    assert after.value("smtp_probes_total", **kept) == 1


def test_check_mx_prints_a_row_per_pair_and_details_of_the_failing_one(world: DomainWorld) -> None:
    host, port = world.dns.resolver_address
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            "--mx",
            f"two.dom.test:{world.port}",
            "--nameserver",
            f"{host}:{port}",
            "--ca-file",
            str(world.ca_file),
            "--ehlo-name",
            "probe.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    rows = [line.split() for line in completed.stdout.splitlines()]
    table = [row for row in rows if row[:1] in (["mx1.two.dom.test"], ["mx2.two.dom.test"])]
    assert [row[:4] for row in table[:4]] == [
        ["mx1.two.dom.test", "10", "127.0.0.21", "OK"],
        ["mx1.two.dom.test", "10", REFUSING, "FAILED"],
        ["mx2.two.dom.test", "20", "127.0.0.23", "OK"],
        ["mx2.two.dom.test", "20", "::1", "OK"],
    ]
    assert table[0][4] == "TLSv1.3"
    assert table[1][-1] == "connection_refused"
    # The usual detail follows for the failing pair only.
    assert f"mx1.two.dom.test[{REFUSING}]:{world.port}" in completed.stdout
    assert f"mx2.two.dom.test[::1]:{world.port} (" not in completed.stdout
    assert completed.stdout.rstrip().endswith("FAILED two.dom.test: 3 of 4 pairs succeeded")


def test_check_mx_of_a_null_mx_domain_succeeds_without_probing(world: DomainWorld) -> None:
    host, port = world.dns.resolver_address
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--mx", "null.dom.test", "--nameserver", f"{host}:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "null MX" in completed.stdout


def test_probe_endpoint_expands_a_domain_for_an_mx_module(world: DomainWorld) -> None:
    status, _, body = world.exporter.get(f"/probe?target=two.dom.test:{world.port}&module=domain")
    assert status == 200, body
    scrape = Scrape(body)
    assert {(labels["mx"], labels["address"], value) for labels, value in scrape.find("smtp_probe_success")} == {
        ("mx1.two.dom.test", "127.0.0.21", 1),
        ("mx1.two.dom.test", REFUSING, 0),
        ("mx2.two.dom.test", "127.0.0.23", 1),
        ("mx2.two.dom.test", "::1", 1),
    }
    assert all("target" not in labels for _, labels, _ in scrape.samples)
    assert scrape.value("smtp_domain_lookup_success") == 1
    assert scrape.value("smtp_domain_mx_addresses", mx="mx2.two.dom.test") == 2


def test_probe_endpoint_refuses_a_domain_outside_the_allow_list(world: DomainWorld) -> None:
    status, _, body = world.exporter.get(f"/probe?target=broken.test:{world.port}&module=domain")
    assert status == 403, body
