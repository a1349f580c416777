"""MTA-STS in the running exporter: the scraped series, and an enforced policy failing MX pairs.

nsd and unbound serve the zone; an HTTPS server on a spare 127.x.y.z:443 serves
the policies (certificates from the test CA, given as `mta_sts_ca_file`); every
MX address is a loopback address where a scenario SMTP server listens.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.metrics.families import DOMAIN_FAMILIES
from tests.support.dns_servers import DnsServers, Zone, start_dns_servers, unavailable_reason
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import Pki, self_signed
from tests.support.policy_server import (
    PolicyResponse,
    PolicyServer,
    https_port_unavailable_reason,
    spare_loopback_address,
)
from tests.support.servers import ScenarioServers

ZONE = "stsrun.test"
GOOD = ("127.0.0.31", "127.0.0.32")
# Presents a self-signed certificate.
SELF_SIGNED = "127.0.0.33"
DOMAINS = ("strict", "trial", "badcert", "lapsed", "plain", "disabled")


def zone_records(https: str) -> str:
    lines = []
    for name in ("strict", "trial"):
        lines += [f"{name} MX 10 mx1.{name}", f"{name} MX 20 mx2.{name}"]
        lines += [f"mx1.{name} A {GOOD[0]}", f"mx2.{name} A {GOOD[1]}"]
    lines += ["badcert MX 10 mx1.badcert", f"mx1.badcert A {SELF_SIGNED}"]
    lines += ["lapsed MX 10 mx1.lapsed", f"mx1.lapsed A {GOOD[0]}", "plain MX 10 mx1.plain", f"mx1.plain A {GOOD[0]}"]
    lines += ["disabled MX 10 mx1.disabled", f"mx1.disabled A {GOOD[0]}", '_mta-sts.disabled TXT "v=STSv1; id=1"']
    for name in ("strict", "trial", "badcert", "lapsed"):
        lines += [f'_mta-sts.{name} TXT "v=STSv1; id=1"', f"mta-sts.{name} A {https}"]
    lines.append('_smtp._tls.strict TXT "v=TLSRPTv1; rua=mailto:tls@stsrun.test"')
    return "\n".join(lines) + "\n"


def policy(mode: str, *mx: str) -> PolicyResponse:
    body = "".join(["version: STSv1\n", f"mode: {mode}\n", *(f"mx: {pattern}\n" for pattern in mx), "max_age: 86400\n"])
    return PolicyResponse(body=body.encode())


@dataclass
class Run:
    exporter: ExporterProcess
    scrape: Scrape


@pytest.fixture(scope="module")
def scrape(run: Run) -> Scrape:
    return run.scrape


@pytest.fixture(scope="module")
def run(pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    require(unavailable_reason(), "the MTA-STS exporter test with real nsd and unbound")
    require(https_port_unavailable_reason(), "the MTA-STS exporter test's HTTPS policy server")
    base = tmp_path_factory.mktemp("mta-sts-run")
    https = spare_loopback_address()
    hosts = [f"mta-sts.{name}.{ZONE}" for name in ("strict", "trial", "badcert")]
    policy_server = PolicyServer.start(
        https, pki.leaf(*hosts), base, {f"mta-sts.lapsed.{ZONE}": self_signed(f"mta-sts.lapsed.{ZONE}")}
    )
    policy_server.serve(f"mta-sts.strict.{ZONE}", policy("enforce", f"mx1.strict.{ZONE}"))
    policy_server.serve(f"mta-sts.trial.{ZONE}", policy("testing", f"mx1.trial.{ZONE}"))
    policy_server.serve(f"mta-sts.badcert.{ZONE}", policy("enforce", f"*.badcert.{ZONE}"))
    policy_server.serve(f"mta-sts.lapsed.{ZONE}", policy("enforce", f"*.lapsed.{ZONE}"))
    dns: DnsServers | None = None
    exporter: ExporterProcess | None = None
    try:
        dns = start_dns_servers([Zone(ZONE, zone_records(https))], base / "dns")
        mx_names = [f"mx{n}.{name}.{ZONE}" for name in DOMAINS for n in (1, 2)]
        with socket.socket() as probe:
            probe.bind((GOOD[0], 0))
            port: int = probe.getsockname()[1]
        for address in GOOD:
            servers.smtp(tls_context=pki.leaf(*mx_names).server_context(cert_dir, "sts-mx"), host=address, port=port)
        untrusted = self_signed(f"mx1.badcert.{ZONE}").server_context(cert_dir, "sts-self-signed")
        servers.smtp(tls_context=untrusted, host=SELF_SIGNED, port=port)
        resolver_host, resolver_port = dns.resolver_address
        lines = [
            f"dns: {{nameservers: ['{resolver_host}:{resolver_port}'], timeout: 3s}}",
            # Pairs probed every few seconds: a pair's first probe may come before the first
            # MTA-STS check, and the next one must then show the policy's verdict.
            "defaults: {interval: 3s, timeout: 2s, ehlo_name: probe.test, " + f"ca_file: {pki.ca_file}}}",
            "domains:",
        ]
        for name in DOMAINS:
            lines += [f"  - name: {name}", f"    domain: {name}.{ZONE}", f"    port: {port}"]
            lines += [f"    mta_sts_ca_file: {pki.ca_file}", "    labels: {team: mail}"]
            if name == "disabled":
                lines.append("    mta_sts: off")
        config = base / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        exporter = ExporterProcess(config, base / "exporter.log")
        pairs = [("strict", "mx1"), ("strict", "mx2"), ("trial", "mx2"), ("badcert", "mx1")]

        def ready(scrape: Scrape) -> bool:
            checked = all(scrape.find("smtp_mta_sts_record_present", target=name) for name in DOMAINS[:-1])
            # The pair probes may run before the first policy fetch: wait for results that reflect it.
            strict_mx2 = scrape.find("smtp_probe_error_info", target="strict", mx=f"mx2.strict.{ZONE}")
            probed = all(scrape.find("smtp_probe_success", target=name, mx=f"{mx}.{name}.{ZONE}") for name, mx in pairs)
            return checked and probed and bool(strict_mx2)

        yield Run(exporter, exporter.wait_for(ready, timeout=60))
    finally:
        if exporter is not None:
            exporter.stop()
        if dns is not None:
            dns.stop()
        policy_server.stop()


def test_an_enforced_policy_and_its_series(scrape: Scrape) -> None:
    labels = {"target": "strict", "team": "mail"}
    assert scrape.value("smtp_mta_sts_record_present", **labels) == 1
    assert scrape.value("smtp_mta_sts_policy_valid", **labels) == 1
    assert scrape.value("smtp_mta_sts_policy_info", id="1", mode="enforce", **labels) == 1
    assert scrape.value("smtp_mta_sts_max_age_seconds", **labels) == 86400
    fetched = scrape.value("smtp_mta_sts_policy_fetch_timestamp_seconds", **labels)
    assert fetched is not None
    assert fetched > 1.7e9
    assert scrape.find("smtp_mta_sts_error_info", target="strict") == []
    assert scrape.value("smtp_mta_sts_mx_covered", mx=f"mx1.strict.{ZONE}", **labels) == 1
    assert scrape.value("smtp_mta_sts_mx_covered", mx=f"mx2.strict.{ZONE}", **labels) == 0
    assert scrape.value("smtp_tlsrpt_record_present", **labels) == 1
    assert scrape.value("smtp_tlsrpt_record_valid", **labels) == 1
    assert scrape.value("smtp_tlsrpt_rua_count", **labels) == 1


def test_enforce_fails_the_uncovered_mx_only(scrape: Scrape) -> None:
    assert scrape.value("smtp_probe_success", target="strict", mx=f"mx1.strict.{ZONE}", address=GOOD[0]) == 1
    assert scrape.value("smtp_probe_success", target="strict", mx=f"mx2.strict.{ZONE}", address=GOOD[1]) == 0
    [(labels, _)] = scrape.find("smtp_probe_error_info", target="strict", mx=f"mx2.strict.{ZONE}")
    assert (labels["phase"], labels["reason"]) == ("tls_handshake", "sts_mx_not_covered")


def test_testing_mode_reports_without_failing(scrape: Scrape) -> None:
    assert scrape.value("smtp_mta_sts_policy_info", target="trial", id="1", mode="testing") == 1
    assert scrape.value("smtp_mta_sts_mx_covered", target="trial", mx=f"mx2.trial.{ZONE}") == 0
    assert scrape.value("smtp_probe_success", target="trial", mx=f"mx2.trial.{ZONE}", address=GOOD[1]) == 1


def test_enforce_and_an_untrusted_mx_certificate(scrape: Scrape) -> None:
    assert scrape.value("smtp_mta_sts_mx_covered", target="badcert", mx=f"mx1.badcert.{ZONE}") == 1
    reasons = {labels["reason"] for labels, _ in scrape.find("smtp_probe_error_info", target="badcert")}
    assert reasons == {"cert_untrusted", "sts_webpki_invalid"}


def test_an_untrusted_policy_host(scrape: Scrape) -> None:
    assert scrape.value("smtp_mta_sts_record_present", target="lapsed") == 1
    assert scrape.value("smtp_mta_sts_policy_valid", target="lapsed") == 0
    assert scrape.value("smtp_mta_sts_error_info", target="lapsed", reason="sts_webpki_invalid") == 1
    assert scrape.find("smtp_mta_sts_policy_info", target="lapsed") == []
    assert scrape.find("smtp_mta_sts_mx_covered", target="lapsed") == []
    # No policy in effect, so the pair is held to nothing.
    assert scrape.value("smtp_probe_success", target="lapsed", mx=f"mx1.lapsed.{ZONE}", address=GOOD[0]) == 1


def test_every_mta_sts_and_tlsrpt_family_is_exported(scrape: Scrape) -> None:
    # The alert rules and the dashboard rely on these families being real (test_dashboard.py).
    wanted = {family.name for family in DOMAIN_FAMILIES if family.name.startswith(("smtp_mta_sts_", "smtp_tlsrpt_"))}
    assert len(wanted) == 10
    assert wanted <= {name for name, _, _ in scrape.samples}


def test_no_record_and_mta_sts_off(scrape: Scrape) -> None:
    assert scrape.value("smtp_mta_sts_record_present", target="plain") == 0
    assert scrape.find("smtp_mta_sts_policy_valid", target="plain") == []
    assert scrape.value("smtp_tlsrpt_record_present", target="plain") == 0
    assert scrape.value("smtp_tlsrpt_rua_count", target="plain") == 0
    off = {name for name in scrape.series_of("disabled") if name.startswith(("smtp_mta_sts_", "smtp_tlsrpt_"))}
    assert off == set()


def test_a_restart_keeps_the_checks_with_their_timestamps(run: Run, tmp_path: Path) -> None:
    # The hourly check is not repeated at start: the kept one is shown, fetched when it was.
    fetched = run.scrape.value("smtp_mta_sts_policy_fetch_timestamp_seconds", target="strict")
    assert fetched is not None
    run.exporter.stop()  # SIGTERM: the state file is written at shutdown
    state = ["--storage.path", str(run.exporter.state_file)]
    with ExporterProcess(run.exporter.config_file, tmp_path / "again.log", extra_args=state) as again:
        scrape = again.wait_for(lambda scrape: bool(scrape.find("smtp_mta_sts_policy_info", target="strict")))
        assert scrape.value("smtp_mta_sts_policy_fetch_timestamp_seconds", target="strict") == fetched
        assert scrape.find("smtp_mta_sts_policy_info", target="strict")[0][0]["mode"] == "enforce"
