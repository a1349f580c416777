"""/probe as Prometheus uses blackbox_exporter's, and --shard for the scheduled mode."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.web.probe_endpoint import probe_timeout
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import DAY, NOW, SERVER_NAME, Pki
from tests.support.servers import AuthHandler, ScenarioServers, slow_plain_server

USER = "probe@mail.test"
PASSWORD = "probe-endpoint-Secret-77"


@dataclass
class ProbeSetup:
    exporter: ExporterProcess
    good: int
    expiring: int
    slow: int


@pytest.fixture(scope="module")
def probe_setup(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProbeSetup]:
    good = servers.smtp(
        tls_context=pki.leaf(SERVER_NAME).server_context(cert_dir, "probe-good"), handler=AuthHandler({USER: PASSWORD})
    )
    expiring_cert = pki.leaf(SERVER_NAME, not_after=NOW + 3 * DAY)
    expiring = servers.smtp(tls_context=expiring_cert.server_context(cert_dir, "probe-expiring"))
    slow = servers.scripted(slow_plain_server(delay=5.0))
    directory = tmp_path_factory.mktemp("probe-endpoint")
    config = directory / "config.yml"
    config.write_text(
        f"""
defaults: {{ehlo_name: probe.test, timeout: 10s, ca_file: {pki.ca_file}}}
modules:
  submission:
    server_name: {SERVER_NAME}
  submission_auth:
    server_name: {SERVER_NAME}
    auth: {{username: {USER}, password_env: PROBE_ENDPOINT_PASSWORD}}
  relay:
    tls: none
probe_allow:
  - host: 127.0.0.0/8
    ports: [{good}, {expiring}, {slow}]
  - host: "*.mail.test"
"""
    )
    os.environ["PROBE_ENDPOINT_PASSWORD"] = PASSWORD
    try:
        exporter = ExporterProcess(config, directory / "exporter.log")
    finally:
        del os.environ["PROBE_ENDPOINT_PASSWORD"]
    with exporter:
        yield ProbeSetup(exporter, good, expiring, slow)


def _probe(setup: ProbeSetup, query: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"{setup.exporter.base_url}/probe?{query}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_probe_answers_with_that_probes_metrics_only(probe_setup: ProbeSetup) -> None:
    status, body = _probe(probe_setup, f"target=127.0.0.1:{probe_setup.good}&module=submission")
    assert status == 200
    scrape = Scrape(body)
    assert scrape.value("smtp_probe_success") == 1
    assert scrape.value("smtp_cert_trusted") == 1
    assert scrape.value("smtp_tls_version") == 1.3
    assert all("target" not in labels for _, labels, _ in scrape.samples)  # Prometheus adds instance
    assert "smtp_probes_total" not in scrape.types  # no counters: each answer is one probe
    assert "this probe" in scrape.help["smtp_probe_success"]


def test_probe_reports_the_expiring_certificate(probe_setup: ProbeSetup) -> None:
    status, body = _probe(probe_setup, f"target=127.0.0.1:{probe_setup.expiring}&module=submission")
    assert status == 200
    days = Scrape(body).value("smtp_cert_expiry_days")
    assert days is not None
    assert 2.9 < days < 3.0


def test_probe_with_auth_module(probe_setup: ProbeSetup) -> None:
    status, body = _probe(probe_setup, f"target=127.0.0.1:{probe_setup.good}&module=submission_auth")
    assert status == 200
    assert Scrape(body).value("smtp_auth_success") == 1
    assert PASSWORD not in body


def test_unknown_module_is_400(probe_setup: ProbeSetup) -> None:
    status, body = _probe(probe_setup, f"target=127.0.0.1:{probe_setup.good}&module=nope")
    assert status == 400
    assert "unknown module 'nope'" in body
    assert "submission" in body


def test_missing_target_is_400(probe_setup: ProbeSetup) -> None:
    assert _probe(probe_setup, "module=submission")[0] == 400


@pytest.mark.parametrize(
    "target", ["127.0.0.1:22", "10.0.0.1:25", "mx.example.com:25", "evil.mail.test.example.com:25", "a.mail.test:8080"]
)
def test_allow_list_refuses_other_targets(probe_setup: ProbeSetup, target: str) -> None:
    status, body = _probe(probe_setup, f"target={target}&module=submission")
    assert status == 403
    assert "not in probe_allow" in body


def test_scrape_timeout_header_shortens_the_probe(probe_setup: ProbeSetup) -> None:
    # The module allows 10 s and the server greets after 5 s; with a 2 s scrape
    # timeout the probe must give up first, on its own, with reason timeout.
    status, body = _probe(
        probe_setup, f"target=127.0.0.1:{probe_setup.slow}&module=relay", {"X-Prometheus-Scrape-Timeout-Seconds": "2"}
    )
    assert status == 200
    scrape = Scrape(body)
    assert scrape.value("smtp_probe_success") == 0
    assert scrape.value("smtp_probe_error_info", phase="banner", reason="timeout") == 1


def test_debug_shows_the_redacted_transcript(probe_setup: ProbeSetup) -> None:
    status, body = _probe(probe_setup, f"target=127.0.0.1:{probe_setup.good}&module=submission_auth&debug=true")
    assert status == 200
    assert "C: AUTH PLAIN <redacted>" in body
    assert "Metrics that would have been returned:" in body
    assert "smtp_auth_success 1" in body
    assert PASSWORD not in body
    assert PASSWORD not in probe_setup.exporter.log_text()


@pytest.mark.parametrize(
    ("module_timeout", "header", "expected"),
    [(10.0, None, 10.0), (10.0, "5", 4.5), (3.0, "15", 3.0), (10.0, "0.2", 0.5), (10.0, "bogus", 10.0)],
)
def test_probe_timeout(module_timeout: float, header: str | None, expected: float) -> None:
    assert probe_timeout(module_timeout, header) == expected
