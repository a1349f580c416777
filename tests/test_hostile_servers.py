"""Hostile servers (issue 6): the exporter stays up and truthful when servers misbehave.

One exporter process probes healthy servers and one hostile server per
case, all on loopback. Each hostile case must end in its documented phase
and reason within the target's own timeout (a stall ends as ``timeout``;
garbage ends as soon as it is seen, so as anything but ``timeout``), while
the healthy targets keep passing and /metrics keeps answering with label
values that are valid UTF-8 of bounded length.
"""

from __future__ import annotations

import html
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from exporter.metrics.text_format import MAX_LABEL_VALUE_CHARS
from exporter.smtp.ehlo import MAX_AUTH_MECHANISMS
from exporter.tls.session import MAX_DESCRIBED_CHAIN
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.hostile import EXPECTED_FAILURES, ehlo_offering, start_hostile_servers
from tests.support.pki import SERVER_NAME, Pki, ServerCertificate
from tests.support.servers import ScenarioServers

HOSTILE_TIMEOUT = "3s"
HEALTHY = ("healthy_starttls", "healthy_implicit")


@dataclass
class Landscape:
    exporter: ExporterProcess
    scrape: Scrape
    chain_of_50: ServerCertificate


@pytest.fixture(scope="module")
def hostile(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Landscape]:
    good = pki.leaf(SERVER_NAME).server_context(cert_dir, "hostile-healthy")
    healthy = {
        "healthy_starttls": servers.smtp(tls_context=good),
        "healthy_implicit": servers.smtp(tls_context=good, implicit_tls=True),
    }
    auth_flood = [f"AUTH {' '.join(f'X{line}-{index}' for index in range(40))}" for line in range(200)]
    lines = [
        "defaults:",
        "  interval: 1h",
        f"  timeout: {HOSTILE_TIMEOUT}",
        "  ehlo_name: probe.test",
        f"  ca_file: {pki.ca_file}",
        "targets:",
    ]
    # Healthy targets are probed every 2 s, so their later probes run while
    # hostile servers stall.
    for name, port in healthy.items():
        tls = "implicit" if name == "healthy_implicit" else "starttls"
        lines.append(f"  - {{name: {name}, host: 127.0.0.1, port: {port}, server_name: {SERVER_NAME}, tls: {tls},"
                     " interval: 2s, timeout: 1500ms}")  # fmt: skip
    started = start_hostile_servers(servers, pki, cert_dir)
    for name, port in started.ports.items():
        lines.append(f"  - {{name: {name}, host: 127.0.0.1, port: {port}, server_name: {SERVER_NAME}}}")
    auth_port = servers.scripted(ehlo_offering(auth_flood))
    lines.append(f"  - {{name: auth_flood, host: 127.0.0.1, port: {auth_port}, tls: none}}")
    directory = tmp_path_factory.mktemp("hostile")
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    exporter = ExporterProcess(config, directory / "exporter.log")
    try:
        exporter.wait_for_probes([*EXPECTED_FAILURES, *HEALTHY, "auth_flood"])
        # Three healthy probes: the later ones ran alongside the stalls.
        scrape = exporter.wait_for(
            lambda scrape: all((scrape.value("smtp_probes_total", target=name) or 0) >= 3 for name in HEALTHY)
        )
        yield Landscape(exporter, scrape, started.chain_of_50)
    finally:
        exporter.stop()


def _errors(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels["phase"], labels["reason"]) for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


@pytest.mark.parametrize("target", EXPECTED_FAILURES)
def test_hostile_case_fails_with_its_documented_reason(hostile: Landscape, target: str) -> None:
    scrape = hostile.scrape
    phase, reason = EXPECTED_FAILURES[target]
    assert scrape.value("smtp_probe_success", target=target) == 0
    assert _errors(scrape, target) == {(phase, reason)}
    assert scrape.value("smtp_probes_total", target=target) == 1
    assert scrape.value("smtp_probe_failures_total", target=target, reason=reason) == 1


def test_healthy_targets_pass_every_probe_alongside(hostile: Landscape) -> None:
    scrape = hostile.scrape
    for name in HEALTHY:
        assert scrape.value("smtp_probe_success", target=name) == 1
        assert scrape.value("smtp_cert_trusted", target=name) == 1
        assert scrape.value("smtp_tls_version_info", target=name, version="TLSv1.3") == 1
        assert scrape.find("smtp_probe_failures_total", target=name) == []  # not one failed probe


def test_the_daemon_keeps_serving(hostile: Landscape) -> None:
    exporter = hostile.exporter
    assert exporter.process.poll() is None
    assert exporter.get("/-/healthy")[0] == 200
    status, _, page = exporter.get("/")
    assert status == 200
    assert "chain_of_50" in page
    scrape = exporter.scrape()
    assert scrape.value("smtp_probe_success", target="healthy_starttls") == 1
    assert scrape.find("smtp_probe_failures_total", reason="internal_error") == []
    assert "Traceback" not in exporter.log_text()


def test_label_values_are_bounded_valid_utf8(hostile: Landscape) -> None:
    with urllib.request.urlopen(hostile.exporter.base_url + "/metrics", timeout=30) as response:
        body = response.read()
    body.decode("utf-8", errors="strict")  # raises on anything that is not UTF-8
    for name, labels, _ in hostile.scrape.samples:
        for label, value in labels.items():
            assert len(value) <= MAX_LABEL_VALUE_CHARS, (name, label, len(value))


@pytest.mark.parametrize(
    ("target", "label", "check"),
    [
        ("cert_500_sans", "san", lambda value: len(value) == MAX_LABEL_VALUE_CHARS and value.endswith("…")),
        ("cert_16kb_subject", "subject", lambda value: len(value) == MAX_LABEL_VALUE_CHARS),
        ("cert_empty_subject", "subject", lambda value: value == ""),
        ("cert_no_san", "san", lambda value: value == ""),
        ("cert_negative_serial", "serial", lambda value: value.startswith("-")),
        ("cert_huge_serial", "serial", lambda value: len(value) == 128),
        ("cert_teletex_subject", "subject", lambda value: value == "CN=Messagerie Café"),
        ("cert_printable_string_with_at", "subject", lambda value: value == "CN=postmaster@mail.test"),
        ("chain_of_50", "issuer", lambda value: value == "CN=Chain CA 48"),
    ],
)
def test_odd_certificates_are_still_described(
    hostile: Landscape, target: str, label: str, check: Callable[[str], bool]
) -> None:
    scrape = hostile.scrape
    [(labels, _)] = scrape.find("smtp_cert_info", target=target)
    assert check(labels[label]), labels[label]
    assert scrape.value("smtp_tls_handshake_success", target=target) == 1
    assert scrape.value("smtp_cert_trusted", target=target) == 0
    assert scrape.value("smtp_cert_hostname_match", target=target) == 1
    # An expiry monitor must report the date whatever the encoding.
    assert scrape.value("smtp_cert_not_after_timestamp_seconds", target=target) is not None


def test_the_tls13_alert_still_reports_the_certificate(hostile: Landscape) -> None:
    scrape = hostile.scrape
    assert scrape.value("smtp_tls_handshake_success", target="tls13_alert_after_handshake") == 1
    assert scrape.value("smtp_cert_trusted", target="tls13_alert_after_handshake") == 1


@pytest.mark.parametrize(
    "detail",
    [
        "server closed the connection with a TLS alert: TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_UNRECOGNIZED_NAME",
        "the server speaks TLS first (an implicit TLS port? then set tls: implicit)",
        "the server speaks HTTP",
        "reply line longer than 4096 octets",
        "reply has more than 256 lines",
        "EXCESSIVE_MESSAGE_SIZE",
    ],
)
def test_the_landing_page_says_what_went_wrong(hostile: Landscape, detail: str) -> None:
    assert html.escape(detail) in hostile.exporter.get("/")[2]


def test_auth_mechanisms_stay_bounded(hostile: Landscape) -> None:
    scrape = hostile.scrape
    assert scrape.value("smtp_probe_success", target="auth_flood") == 1  # a valid, if odd, reply
    assert len(scrape.find("smtp_auth_mechanism_offered", target="auth_flood")) == MAX_AUTH_MECHANISMS


def test_a_long_chain_is_judged_whole_but_described_in_part(hostile: Landscape) -> None:
    presented = x509.load_pem_x509_certificates(hostile.chain_of_50.chain_pem)
    assert len(presented) == 50
    # OpenSSL walked all 50 to the untrusted root (depth 49, in the landing page).
    assert "self-signed certificate in certificate chain (chain depth 49)" in hostile.exporter.get("/")[2]
    described = presented[:MAX_DESCRIBED_CHAIN]
    earliest = min(certificate.not_valid_after_utc.timestamp() for certificate in described)
    assert earliest > min(certificate.not_valid_after_utc.timestamp() for certificate in presented)
    assert (
        hostile.scrape.value("smtp_cert_chain_earliest_not_after_timestamp_seconds", target="chain_of_50") == earliest
    )


def test_asyncio_tasks_are_exported_and_not_per_probe(hostile: Landscape) -> None:
    scrape = hostile.exporter.scrape()
    targets = scrape.value("smtp_exporter_targets")
    tasks = scrape.value("smtp_exporter_asyncio_tasks")
    assert targets is not None
    assert tasks is not None
    # One probe loop per target, a scan task only while a scan is due (timers
    # wait between scans), plus the server's own: not one per probe run or per hello.
    assert targets <= tasks < 3 * targets
