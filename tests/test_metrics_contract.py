"""The metrics contract, read from the /metrics of a running exporter.

One exporter process probes one real server per scenario on loopback;
every assertion is about the scraped text, as Prometheus would see it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import DAY, NOW, SERVER_NAME, Pki, plain_private_ca, self_signed
from tests.support.servers import (
    ScenarioServers,
    closed_port,
    gated_plain_server,
    greeting_then,
    starttls_on_last_line,
    starttls_then_hang_up,
)

TLS_SERIES = {
    "smtp_tls_handshake_success",
    "smtp_tls_version_info",
    "smtp_tls_version",
    "smtp_tls_cipher_info",
    "smtp_tls_cipher_bits",
    "smtp_cert_trusted",
    "smtp_cert_hostname_match",
}
CERT_SERIES = {
    "smtp_cert_not_before_timestamp_seconds",
    "smtp_cert_not_after_timestamp_seconds",
    "smtp_cert_expiry_days",
    "smtp_cert_chain_earliest_not_after_timestamp_seconds",
    "smtp_cert_info",
}


@dataclass
class Landscape:
    exporter: ExporterProcess
    scrape: Scrape
    leaves: dict[str, x509.Certificate]
    chains: dict[str, list[x509.Certificate]]
    slow_target: str
    # Set to let the slow server greet.
    slow_release: threading.Event


def _certificates(chain_pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(chain_pem)


@pytest.fixture(scope="module")
def landscape(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Landscape]:
    other_pki = Pki(tmp_path_factory.mktemp("other-pki"))
    plain = plain_private_ca(cert_dir)
    certificates = {
        "good": pki.leaf(SERVER_NAME),
        "expired": pki.leaf(SERVER_NAME, not_before=NOW - 90 * DAY, not_after=NOW - DAY),
        "not_yet_valid": pki.leaf(SERVER_NAME, not_before=NOW + 2 * DAY, not_after=NOW + 90 * DAY),
        "self_signed": self_signed(),
        "unknown_ca": other_pki.leaf(SERVER_NAME),
        "wrong_hostname": pki.leaf("other.test"),
        "private_ca_without_key_usage": plain.server,
    }
    contexts = {name: cert.server_context(cert_dir, name) for name, cert in certificates.items()}
    slow_release = threading.Event()
    starttls = {name: servers.smtp(tls_context=context) for name, context in contexts.items()}
    ports = {
        **starttls,
        "starttls_last_line": servers.smtp(tls_context=contexts["good"], ehlo=starttls_on_last_line),
        "no_starttls": servers.smtp(),
        "implicit": servers.smtp(tls_context=contexts["good"], implicit_tls=True),
        "plain": servers.smtp(auth_require_tls=False, authenticator=lambda *args: None),
        "greeting_421": servers.scripted(greeting_then("421 4.3.2 mail.test Service not available")),
        "starttls_454": servers.smtp(tls_context=contexts["good"], starttls_reply="454 4.7.0 TLS not available"),
        "handshake_cut": servers.scripted(starttls_then_hang_up()),
        "nothing_listening": closed_port(),
        "slow": servers.scripted(gated_plain_server(slow_release)),
    }
    tls_modes = {"implicit": "implicit", "plain": "none", "slow": "none"}
    ca_files = {"private_ca_without_key_usage": plain.ca_file}
    lines = [
        "defaults:",
        "  interval: 1h",
        "  timeout: 10s",
        "  ehlo_name: probe.test",
        f"  ca_file: {pki.ca_file}",
        "targets:",
    ]
    for name, port in ports.items():
        lines += [
            f"  - name: {name}",
            "    host: 127.0.0.1",
            f"    port: {port}",
            f"    server_name: {SERVER_NAME}",
            f"    tls: {tls_modes.get(name, 'starttls')}",
            "    labels: {team: mail, site: lab}",
        ]
        if name in ca_files:
            lines.append(f"    ca_file: {ca_files[name]}")
        if name == "slow":  # waits for the test's release, however late that comes
            lines.append("    timeout: 50m")
    directory = tmp_path_factory.mktemp("contract")
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    exporter = ExporterProcess(config, directory / "exporter.log")
    try:
        fast = [name for name in ports if name != "slow"]
        scrape = exporter.wait_for_probes(fast)
        yield Landscape(
            exporter=exporter,
            scrape=scrape,
            leaves={name: _certificates(cert.chain_pem)[0] for name, cert in certificates.items()},
            chains={name: _certificates(cert.chain_pem) for name, cert in certificates.items()},
            slow_target="slow",
            slow_release=slow_release,
        )
    finally:
        slow_release.set()  # the server's thread is not left waiting
        exporter.stop()


def _errors(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels["phase"], labels["reason"]) for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


def test_good_chain_passes_every_check(landscape: Landscape) -> None:
    scrape = landscape.scrape
    leaf = landscape.leaves["good"]
    assert scrape.value("smtp_probe_success", target="good") == 1
    assert _errors(scrape, "good") == set()
    assert scrape.value("smtp_starttls_offered", target="good") == 1
    assert scrape.value("smtp_tls_handshake_success", target="good") == 1
    assert scrape.value("smtp_tls_version_info", target="good", version="TLSv1.3") == 1
    assert scrape.value("smtp_tls_version", target="good") == 1.3
    [(cipher_labels, _)] = scrape.find("smtp_tls_cipher_info", target="good")
    assert cipher_labels["cipher"].startswith("TLS_")
    assert scrape.value("smtp_tls_cipher_bits", target="good") in (128, 256)
    assert scrape.value("smtp_cert_trusted", target="good") == 1
    assert scrape.value("smtp_cert_hostname_match", target="good") == 1
    assert scrape.value("smtp_cert_not_after_timestamp_seconds", target="good") == leaf.not_valid_after_utc.timestamp()
    assert (
        scrape.value("smtp_cert_not_before_timestamp_seconds", target="good") == leaf.not_valid_before_utc.timestamp()
    )
    earliest = min(cert.not_valid_after_utc.timestamp() for cert in landscape.chains["good"])
    assert scrape.value("smtp_cert_chain_earliest_not_after_timestamp_seconds", target="good") == earliest
    days = scrape.value("smtp_cert_expiry_days", target="good")
    assert days is not None
    assert days == pytest.approx((leaf.not_valid_after_utc.timestamp() - time.time()) / 86400, abs=0.01)


def test_certificate_info_names_the_leaf(landscape: Landscape) -> None:
    leaf = landscape.leaves["good"]
    [(labels, value)] = landscape.scrape.find("smtp_cert_info", target="good")
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert value == 1
    assert labels["subject"] == leaf.subject.rfc4514_string()
    assert labels["issuer"] == leaf.issuer.rfc4514_string()
    assert labels["serial"] == f"{leaf.serial_number:X}"
    assert labels["fingerprint_sha256"] == hashlib.sha256(der).hexdigest()
    assert labels["fingerprint_sha1"] == hashlib.sha1(der).hexdigest()  # noqa: S324
    assert labels["san"] == SERVER_NAME
    assert labels["key_type"] == "EC"
    assert labels["key_bits"] == "256"
    assert labels["signature_algorithm"] == "ecdsa-with-SHA256"


def test_phases_that_ran_are_timed_and_others_absent(landscape: Landscape) -> None:
    scrape = landscape.scrape
    phases = {labels["phase"] for labels, _ in scrape.find("smtp_probe_phase_duration_seconds", target="good")}
    assert phases == {"connect", "banner", "ehlo", "starttls", "tls_handshake", "quit"}
    implicit = {labels["phase"] for labels, _ in scrape.find("smtp_probe_phase_duration_seconds", target="implicit")}
    assert implicit == {"connect", "tls_handshake", "banner", "ehlo", "quit"}
    refused = {
        labels["phase"] for labels, _ in scrape.find("smtp_probe_phase_duration_seconds", target="nothing_listening")
    }
    assert refused == {"connect"}
    total = scrape.value("smtp_probe_duration_seconds", target="good")
    parts = sum(value for _, value in scrape.find("smtp_probe_phase_duration_seconds", target="good"))
    assert total is not None
    assert 0 < parts <= total


def test_auth_mechanisms_are_those_offered_after_tls(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.find("smtp_auth_success") == []  # no target here has an auth block
    # aiosmtpd offers AUTH only once TLS is up; the pre-TLS EHLO had none.
    offered = {labels["mechanism"] for labels, _ in scrape.find("smtp_auth_mechanism_offered", target="good")}
    assert offered == {"LOGIN", "PLAIN"}
    assert scrape.find("smtp_auth_mechanism_offered", target="no_starttls") == []
    plain = {labels["mechanism"] for labels, _ in scrape.find("smtp_auth_mechanism_offered", target="plain")}
    assert plain == {"LOGIN", "PLAIN"}


@pytest.mark.parametrize(
    ("target", "reason", "trusted", "hostname_match"),
    [
        ("expired", "cert_expired", 0, 1),
        ("not_yet_valid", "cert_not_yet_valid", 0, 1),
        ("self_signed", "cert_untrusted", 0, 1),
        ("unknown_ca", "cert_untrusted", 0, 1),
        ("wrong_hostname", "hostname_mismatch", 1, 0),
    ],
)
def test_certificate_problems_fail_but_keep_the_details(
    landscape: Landscape, target: str, reason: str, trusted: int, hostname_match: int
) -> None:
    scrape = landscape.scrape
    leaf = landscape.leaves[target]
    assert scrape.value("smtp_probe_success", target=target) == 0
    assert _errors(scrape, target) == {("tls_handshake", reason)}
    assert scrape.value("smtp_tls_handshake_success", target=target) == 1
    assert scrape.value("smtp_cert_trusted", target=target) == trusted
    assert scrape.value("smtp_cert_hostname_match", target=target) == hostname_match
    # The point of judging after the handshake: the details survive.
    assert scrape.value("smtp_cert_not_after_timestamp_seconds", target=target) == leaf.not_valid_after_utc.timestamp()
    [(labels, _)] = scrape.find("smtp_cert_info", target=target)
    assert labels["subject"] == leaf.subject.rfc4514_string()
    assert labels["issuer"] == leaf.issuer.rfc4514_string()
    assert scrape.value("smtp_probe_failures_total", target=target, reason=reason) == 1


def test_expired_certificate_has_negative_days_left(landscape: Landscape) -> None:
    days = landscape.scrape.value("smtp_cert_expiry_days", target="expired")
    assert days is not None
    assert -1.1 < days < -0.9


def test_private_ca_without_key_usage_is_trusted_as_openssl_does(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_cert_trusted", target="private_ca_without_key_usage") == 1
    assert scrape.value("smtp_probe_success", target="private_ca_without_key_usage") == 1


def test_starttls_on_the_last_ehlo_line_counts(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_starttls_offered", target="starttls_last_line") == 1
    assert scrape.value("smtp_probe_success", target="starttls_last_line") == 1


def test_starttls_not_offered(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_probe_success", target="no_starttls") == 0
    assert scrape.value("smtp_starttls_offered", target="no_starttls") == 0
    assert _errors(scrape, "no_starttls") == {("starttls", "starttls_not_offered")}
    assert scrape.series_of("no_starttls") & (TLS_SERIES | CERT_SERIES) == set()


def test_implicit_tls(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_probe_success", target="implicit") == 1
    assert scrape.value("smtp_tls_handshake_success", target="implicit") == 1
    assert scrape.value("smtp_cert_trusted", target="implicit") == 1
    assert scrape.value("smtp_starttls_offered", target="implicit") is None


def test_plain_relay_exports_no_tls_series(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_probe_success", target="plain") == 1
    assert scrape.series_of("plain") & (TLS_SERIES | CERT_SERIES | {"smtp_starttls_offered"}) == set()


@pytest.mark.parametrize(
    ("target", "errors"),
    [
        ("greeting_421", {("banner", "banner_rejected")}),
        ("starttls_454", {("starttls", "starttls_rejected")}),
        ("handshake_cut", {("tls_handshake", "tls_handshake_failed")}),
        ("nothing_listening", {("connect", "connection_refused")}),
    ],
)
def test_conversation_failures_name_phase_and_reason(
    landscape: Landscape, target: str, errors: set[tuple[str, str]]
) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_probe_success", target=target) == 0
    assert _errors(scrape, target) == errors
    assert scrape.value("smtp_probes_total", target=target) == 1
    [(_, reason)] = errors
    assert scrape.value("smtp_probe_failures_total", target=target, reason=reason) == 1


def test_handshake_failure_is_reported_as_zero_not_absent(landscape: Landscape) -> None:
    scrape = landscape.scrape
    assert scrape.value("smtp_tls_handshake_success", target="handshake_cut") == 0
    assert scrape.value("smtp_starttls_offered", target="starttls_454") == 1
    assert scrape.value("smtp_tls_handshake_success", target="starttls_454") is None
    assert scrape.series_of("handshake_cut") & CERT_SERIES == set()


def test_every_series_carries_target_and_static_labels(landscape: Landscape) -> None:
    per_target = [labels for _, labels, _ in landscape.scrape.samples if "target" in labels]
    assert per_target
    assert all(labels["team"] == "mail" and labels["site"] == "lab" for labels in per_target)


def test_target_info_describes_the_configuration(landscape: Landscape) -> None:
    [(labels, value)] = landscape.scrape.find("smtp_target_info", target="implicit")
    assert value == 1
    assert labels["host"] == "127.0.0.1"
    assert labels["tls"] == "implicit"
    assert labels["server_name"] == SERVER_NAME
    assert labels["port"].isdigit()


def test_before_its_first_probe_a_target_exports_only_its_configuration(landscape: Landscape) -> None:
    # The slow server has not greeted yet: it waits for the release below.
    scrape = landscape.exporter.scrape()
    assert scrape.series_of(landscape.slow_target) == {"smtp_target_info", "smtp_target_interval_seconds"}
    landscape.slow_release.set()
    later = landscape.exporter.wait_for_probes([landscape.slow_target])
    assert later.value("smtp_probe_success", target=landscape.slow_target) == 1


def test_exporter_metrics(landscape: Landscape) -> None:
    scrape = landscape.scrape
    targets = len(scrape.find("smtp_target_info"))
    assert scrape.value("smtp_exporter_targets") == targets
    assert scrape.find("smtp_exporter_build_info")[0][0]["version"]
    assert scrape.value("smtp_exporter_config_last_reload_successful") == 1
    loaded_at = scrape.value("smtp_exporter_config_last_reload_success_timestamp_seconds")
    assert loaded_at is not None
    assert time.time() - 600 < loaded_at <= time.time()


def test_help_says_results_come_from_the_last_scheduled_probe(landscape: Landscape) -> None:
    scrape = landscape.scrape
    for name in ("smtp_probe_success", "smtp_cert_trusted", "smtp_tls_version", "smtp_cert_expiry_days"):
        assert "last scheduled probe" in scrape.help[name]
    assert scrape.types["smtp_probes"] == "counter"
