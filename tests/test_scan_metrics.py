"""The TLS capability scan as /metrics shows it: a running exporter scanning aiosmtpd servers.

The servers' contexts are set here; what the scan exports for them is also
asked of `openssl s_client` (tests/support/openssl_reference.py), which
completes real handshakes. The probe's `require:` reasons come from the same
process, and the last test scans many hosts beside scheduled probes.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support import openssl_reference as reference
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import SERVER_NAME, Pki
from tests.support.servers import ScenarioServers

VERSIONS = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _context(pki: Pki, directory: Path, name: str, *, minimum: str, maximum: str, ciphers: str) -> ssl.SSLContext:
    # RSA: RSA key transport and DHE-RSA need an RSA key.
    context = pki.leaf(SERVER_NAME, key_type=trustme.KeyType.RSA).server_context(directory, name)
    with warnings.catch_warnings():
        # TLS 1.0 and 1.1 are deprecated; a legacy server is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion[minimum.replace(".", "_")]
        context.maximum_version = ssl.TLSVersion[maximum.replace(".", "_")]
    context.set_ciphers(ciphers)  # @SECLEVEL=0: OpenSSL 3 refuses TLS 1.0/1.1 above it
    return context


def _config(directory: Path, pki: Pki, targets: list[tuple[str, int, list[str]]], interval: str = "1h") -> Path:
    lines = [
        "defaults:",
        f"  interval: {interval}",
        "  timeout: 900ms" if interval == "1s" else "  timeout: 10s",
        "  ehlo_name: probe.test",
        f"  ca_file: {pki.ca_file}",
        "targets:",
    ]
    for name, port, extra in targets:
        lines += [f"  - name: {name}", "    host: 127.0.0.1", f"    port: {port}", f"    server_name: {SERVER_NAME}"]
        lines += [f"    {line}" for line in extra]
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture(scope="module")
def ports(pki: Pki, servers: ScenarioServers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    directory = tmp_path_factory.mktemp("scan-servers")
    contexts = {
        "tls10": _context(pki, directory, "tls10", minimum="TLSv1", maximum="TLSv1.3", ciphers="ALL:@SECLEVEL=0"),
        "tls13": _context(pki, directory, "tls13", minimum="TLSv1.3", maximum="TLSv1.3", ciphers="DEFAULT"),
        "tls11": _context(pki, directory, "tls11", minimum="TLSv1", maximum="TLSv1.1", ciphers="DEFAULT:@SECLEVEL=0"),
        "rsa": _context(pki, directory, "rsa", minimum="TLSv1.2", maximum="TLSv1.2", ciphers="AES128-GCM-SHA256"),
    }
    return {name: servers.smtp(tls_context=context) for name, context in contexts.items()}


@pytest.fixture(scope="module")
def scrape(pki: Pki, ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    directory = tmp_path_factory.mktemp("scan-metrics")
    config = _config(
        directory,
        pki,
        [
            ("tls10", ports["tls10"], []),
            ("tls13", ports["tls13"], []),
            ("tls13-off", ports["tls13"], ["tls_scan: off"]),
            ("too-old", ports["tls11"], ["require: {min_tls_version: 1.2}"]),
            ("rsa-kx", ports["rsa"], ["require: {forward_secrecy: true}"]),
            ("met", ports["tls13"], ['require: {min_tls_version: "1.2", forward_secrecy: true}']),
        ],
    )
    with ExporterProcess(config, directory / "exporter.log") as exporter:
        scanned = ["tls10", "tls13", "too-old", "rsa-kx", "met"]
        exporter.wait_for_probes([*scanned, "tls13-off"])
        yield exporter.wait_for_scans(scanned)


def _accepted(scrape: Scrape, target: str) -> dict[str, float]:
    return {labels["version"]: value for labels, value in scrape.find("smtp_tls_version_accepted", target=target)}


def test_a_server_accepting_tls_1_0(scrape: Scrape, ports: dict[str, int]) -> None:
    assert scrape.value("smtp_tls_scan_success", target="tls10") == 1
    accepted = _accepted(scrape, "tls10")
    assert set(accepted) == set(VERSIONS)
    for version in VERSIONS[1:]:
        assert accepted[version] == reference.version_accepted(ports["tls10"], version), version
    assert accepted["SSLv3"] == 0  # Debian's OpenSSL 3.0 has no SSLv3
    assert accepted["TLSv1"] == 1
    # TLS 1.0 has only CBC suites with SHA-1 (and older): all insufficient.
    tls10 = {
        labels["rating"]: value
        for labels, value in scrape.find("smtp_tls_ciphers_accepted", target="tls10", version="TLSv1")
    }
    assert tls10["insufficient"] > 0
    assert tls10["good"] == tls10["sufficient"] == tls10["phase_out"] == 0
    expected = len(reference.accepted_suites(ports["tls10"], "TLSv1"))
    assert sum(tls10.values()) >= expected  # ours also offers suites the local OpenSSL lacks
    assert scrape.value("smtp_tls_secure_renegotiation", target="tls10") == 1
    assert scrape.value("smtp_tls_extended_master_secret", target="tls10") == 1
    assert scrape.value("smtp_tls_compression", target="tls10") == 0
    assert scrape.value("smtp_tls_group_accepted", target="tls10", group="x25519") == 1
    assert reference.group_accepted(ports["tls10"], "TLSv1.3", "x25519")
    duration = scrape.value("smtp_tls_scan_duration_seconds", target="tls10")
    assert duration is not None
    assert duration > 0


def test_a_tls_1_3_only_server(scrape: Scrape, ports: dict[str, int]) -> None:
    assert scrape.value("smtp_tls_scan_success", target="tls13") == 1
    accepted = _accepted(scrape, "tls13")
    assert accepted == {"SSLv3": 0, "TLSv1": 0, "TLSv1.1": 0, "TLSv1.2": 0, "TLSv1.3": 1}
    assert not reference.version_accepted(ports["tls13"], "TLSv1.2")
    assert reference.version_accepted(ports["tls13"], "TLSv1.3")
    assert {labels["version"] for labels, _ in scrape.find("smtp_tls_ciphers_accepted", target="tls13")} == {"TLSv1.3"}
    assert scrape.value("smtp_tls_ciphers_accepted", target="tls13", version="TLSv1.3", rating="good") == 2
    assert scrape.value("smtp_tls_ciphers_accepted", target="tls13", version="TLSv1.3", rating="sufficient") == 1
    # Questions that do not apply to TLS 1.3 are absent, not 0.
    for family in ("smtp_tls_secure_renegotiation", "smtp_tls_extended_master_secret", "smtp_tls_cipher_server_order"):
        assert scrape.value(family, target="tls13") is None, family
    assert scrape.value("smtp_tls_compression", target="tls13") == 0
    timestamp = scrape.value("smtp_tls_scan_timestamp_seconds", target="tls13")
    probed = scrape.value("smtp_probe_timestamp_seconds", target="tls13")
    assert timestamp is not None
    assert probed is not None
    assert abs(timestamp - probed) < 3600


def test_tls_scan_off_exports_no_scan_series(scrape: Scrape) -> None:
    series = scrape.series_of("tls13-off")
    assert "smtp_probe_success" in series
    scan_families = {
        "smtp_tls_version_accepted", "smtp_tls_group_accepted", "smtp_tls_ciphers_accepted",
        "smtp_tls_cipher_server_order", "smtp_tls_secure_renegotiation", "smtp_tls_extended_master_secret",
        "smtp_tls_compression", "smtp_tls_scan_requirement_met", "smtp_tls_scan_success",
        "smtp_tls_scan_timestamp_seconds", "smtp_tls_scan_duration_seconds",
    }  # fmt: skip
    assert series & scan_families == set()
    assert scrape.series_of("tls13") & scan_families  # the same server, scanned under another name


def _reasons(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels["phase"], labels["reason"]) for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


def test_require_min_tls_version_fails_the_probe_and_the_scan_says_so(scrape: Scrape) -> None:
    assert scrape.value("smtp_tls_version", target="too-old") == 1.1
    assert scrape.value("smtp_probe_success", target="too-old") == 0
    assert _reasons(scrape, "too-old") == {("tls_handshake", "tls_version_too_low")}
    assert scrape.value("smtp_probe_failures_total", target="too-old", reason="tls_version_too_low") is not None
    assert scrape.value("smtp_tls_scan_requirement_met", target="too-old", requirement="min_tls_version") == 0
    assert scrape.value("smtp_tls_scan_requirement_met", target="too-old", requirement="forward_secrecy") is None


def test_require_forward_secrecy_fails_the_probe_on_rsa_key_transport(scrape: Scrape) -> None:
    assert scrape.value("smtp_tls_key_exchange_info", target="rsa-kx", group="rsa") == 1
    assert scrape.value("smtp_probe_success", target="rsa-kx") == 0
    assert _reasons(scrape, "rsa-kx") == {("tls_handshake", "no_forward_secrecy")}
    assert scrape.value("smtp_tls_scan_requirement_met", target="rsa-kx", requirement="forward_secrecy") == 0


def test_a_policy_the_server_meets(scrape: Scrape) -> None:
    assert scrape.value("smtp_probe_success", target="met") == 1
    met = {labels["requirement"]: value for labels, value in scrape.find("smtp_tls_scan_requirement_met", target="met")}
    assert met == {"min_tls_version": 1, "forward_secrecy": 1}
    assert scrape.find("smtp_tls_scan_requirement_met", target="tls13") == []  # no require:, no series


def _lag_count(scrape: Scrape) -> float:
    count = scrape.value("smtp_exporter_scheduler_lag_seconds_count")
    assert count is not None
    return count


def test_scheduled_probes_keep_running_while_many_hosts_are_scanned(
    pki: Pki, ports: dict[str, int], tmp_path: Path
) -> None:
    """Sixteen full scans (every version and suite) beside probes every second.

    No timing is asserted (the machine is shared); what must hold: probes
    started, and were counted by the lag histogram, while scans were still
    running, every probe succeeded, and every scan finished.
    """
    names = [f"host-{index}" for index in range(16)]
    config = _config(tmp_path, pki, [(name, ports["tls10"], []) for name in names], interval="1s")
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        during: list[Scrape] = []

        def scans_done(scrape: Scrape) -> bool:
            done = sum(1 for name in names if scrape.value("smtp_tls_scan_timestamp_seconds", target=name) is not None)
            if done < len(names):
                during.append(scrape)
            return done == len(names)

        after = exporter.wait_for(scans_done, timeout=120)
        assert all(after.value("smtp_tls_scan_success", target=name) == 1 for name in names)
        assert all(after.value("smtp_probe_success", target=name) == 1 for name in names)
        started = [scrape for scrape in during if _lag_count(scrape) > 0]
        assert len(started) >= 2, "no two scrapes while scans ran"
        assert _lag_count(started[-1]) > _lag_count(started[0]), "no probe started while scans ran"
        # Every scheduled probe is in the histogram; its buckets are for the record (bench/RESULTS.md).
        buckets = {labels["le"]: value for labels, value in after.find("smtp_exporter_scheduler_lag_seconds_bucket")}
        assert buckets["+Inf"] == _lag_count(after)
        print("lag buckets with 16 scans running:", buckets)
