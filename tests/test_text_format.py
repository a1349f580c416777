"""The Prometheus text format we write by hand: golden lines, and a round trip through prometheus_client."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.model import ProbeOptions, ScheduledTarget, TlsMode, probe_spec
from exporter.metrics.families import TARGET_FAMILIES
from exporter.metrics.render import ExporterStatus, HistogramSnapshot, MetricsRenderer, render_target, target_labels
from exporter.metrics.text_format import MAX_LABEL_VALUE_CHARS, escape_label_value, format_value, sample
from exporter.probe.result import Failure, Phase, ProbeResult, Reason, SendOutcome
from exporter.scan.hello import ProtocolVersion
from exporter.scan.result import AcceptedSuite, ScanError, ScanResult, VersionScan
from exporter.tls.ratings import Rating


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "1"),
        (False, "0"),
        (3, "3"),
        (2.0, "2"),
        (0.25, "0.25"),
        (-1.5, "-1.5"),
        (1e20, "1e+20"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ('say "hi"', 'say \\"hi\\"'),
        ("a\\b", "a\\\\b"),
        ("two\nlines", "two\\nlines"),
        ("\udcff", "?"),
    ],
)
def test_label_escaping(value: str, escaped: str) -> None:
    assert escape_label_value(value) == escaped


def test_long_label_values_are_cut_with_an_ellipsis() -> None:
    escaped = escape_label_value("x" * 5000)
    assert len(escaped) == MAX_LABEL_VALUE_CHARS
    assert escaped.endswith("…")


def test_sample_lines() -> None:
    assert sample("m", "", 1) == "m 1\n"
    assert sample("m", 'target="a"', 0.5, (("phase", "ehlo"),)) == 'm{target="a",phase="ehlo"} 0.5\n'


def _target(name: str, labels: tuple[tuple[str, str], ...]) -> ScheduledTarget:
    options = ProbeOptions(TlsMode.STARTTLS, timeout=10, ehlo_name="probe.test")
    return ScheduledTarget(name, probe_spec("mx.example.net", None, options), interval=60, labels=labels)


class _State:
    def __init__(self, target: ScheduledTarget, result: ProbeResult | None) -> None:
        self.config = target
        self.result = result
        self.probes_total = 1 if result else 0
        self.failures_total = {Reason.TIMEOUT: 1} if result and not result.success else {}
        self.last_send: SendOutcome | None = None
        self.scan: ScanResult | None = None


def _failed_result() -> ProbeResult:
    return ProbeResult(
        started_at=1_800_000_000.0,
        finished_at=1_800_000_001.5,
        duration_seconds=1.5,
        phase_durations=((Phase.CONNECT, 0.001), (Phase.BANNER, 1.499)),
        failures=(Failure(Phase.BANNER, Reason.TIMEOUT, "no greeting"),),
        peer_address="192.0.2.1",
    )


def test_render_target_golden() -> None:
    state = _State(_target("mx1", (("team", "mail"),)), _failed_result())
    columns = render_target(state, target_labels(state.config))
    lines = dict(zip((family.name for family in TARGET_FAMILIES), columns, strict=True))
    labels = 'target="mx1",team="mail"'
    assert lines["smtp_probe_success"] == f"smtp_probe_success{{{labels}}} 0\n"
    assert lines["smtp_probe_phase_duration_seconds"] == (
        f'smtp_probe_phase_duration_seconds{{{labels},phase="connect"}} 0.001\n'
        f'smtp_probe_phase_duration_seconds{{{labels},phase="banner"}} 1.499\n'
    )
    assert lines["smtp_probe_error_info"] == f'smtp_probe_error_info{{{labels},phase="banner",reason="timeout"}} 1\n'
    assert lines["smtp_probe_failures_total"] == f'smtp_probe_failures_total{{{labels},reason="timeout"}} 1\n'
    assert lines["smtp_target_info"] == (
        f'smtp_target_info{{{labels},host="mx.example.net",port="587",tls="starttls",server_name="mx.example.net"}} 1\n'
    )
    # Phases that did not run, and TLS that never happened, have no series at all.
    assert lines["smtp_tls_version_info"] == lines["smtp_cert_trusted"] == lines["smtp_starttls_offered"] == ""


def test_before_its_first_probe_a_target_renders_only_its_configuration() -> None:
    state = _State(_target("new", ()), None)
    columns = render_target(state, target_labels(state.config))
    present = {family.name for family, text in zip(TARGET_FAMILIES, columns, strict=True) if text}
    assert present == {"smtp_target_info", "smtp_target_interval_seconds"}


def _scan_lines(scan: ScanResult) -> dict[str, str]:
    state = _State(_target("mx1", ()), None)
    state.scan = scan
    columns = render_target(state, target_labels(state.config))
    return {family.name: text for family, text in zip(TARGET_FAMILIES, columns, strict=True) if text}


def test_a_failed_scan_renders_only_its_success_time_and_duration() -> None:
    failed = ScanResult("mx.example.net", 587, None, False, ScanError.CONNECT_REFUSED, "refused", 1_800_000_000.0, 0.5)
    lines = _scan_lines(failed)
    assert set(lines) - {"smtp_target_info", "smtp_target_interval_seconds"} == {
        "smtp_tls_scan_success", "smtp_tls_scan_timestamp_seconds", "smtp_tls_scan_duration_seconds",
    }  # fmt: skip
    assert lines["smtp_tls_scan_success"] == 'smtp_tls_scan_success{target="mx1"} 0\n'
    assert lines["smtp_tls_scan_timestamp_seconds"] == 'smtp_tls_scan_timestamp_seconds{target="mx1"} 1800000000.5\n'


def test_a_tls13_only_scan_has_no_renegotiation_or_ems_series() -> None:
    suite = AcceptedSuite("TLS_AES_256_GCM_SHA384", 0x1302, Rating.GOOD, True)
    tls13 = VersionScan(ProtocolVersion.TLSV1_3, True, (suite,), ("x25519",), None, ("x25519", "x448"))
    versions = (*(VersionScan(version, False) for version in list(ProtocolVersion)[:-1]), tls13)
    scan = ScanResult("mx.example.net", 587, "192.0.2.1", True, None, "", 1_800_000_000.0, 0.25, versions,
                      compression=False)  # fmt: skip
    lines = _scan_lines(scan)
    assert "smtp_tls_secure_renegotiation" not in lines
    assert "smtp_tls_extended_master_secret" not in lines
    assert "smtp_tls_cipher_server_order" not in lines
    assert lines["smtp_tls_compression"] == 'smtp_tls_compression{target="mx1"} 0\n'
    assert lines["smtp_tls_group_accepted"] == (
        'smtp_tls_group_accepted{target="mx1",group="x25519"} 1\nsmtp_tls_group_accepted{target="mx1",group="x448"} 0\n'
    )
    # Counts only for the versions accepted; every rating, zeros too.
    assert lines["smtp_tls_ciphers_accepted"] == "".join(
        f'smtp_tls_ciphers_accepted{{target="mx1",version="TLSv1.3",rating="{rating}"}} {count}\n'
        for rating, count in (("good", 1), ("sufficient", 0), ("phase_out", 0), ("insufficient", 0))
    )
    assert lines["smtp_tls_version_accepted"].count(" 0\n") == 4


def _scrape(renderer: MetricsRenderer) -> str:
    status = ExporterStatus("test", 1, True, 0.0, HistogramSnapshot(((math.inf, 0),), 0.0, 0), 0)
    return "".join("".join(chunk) for chunk in renderer.render(status, 1_800_000_000.0))


def _tls13_scan(timestamp: float, groups: tuple[str, ...]) -> ScanResult:
    suite = AcceptedSuite("TLS_AES_256_GCM_SHA384", 0x1302, Rating.GOOD, True)
    tls13 = VersionScan(ProtocolVersion.TLSV1_3, True, (suite,), groups, None, ("x25519", "x448"))
    return ScanResult("mx.example.net", 587, "192.0.2.1", True, None, "", timestamp, 0.25, (tls13,))


def test_a_scans_lines_stay_through_later_probes_and_follow_the_next_scan() -> None:
    # The renderer keeps a scan's lines between probes: they must neither vanish
    # nor go stale when the probe result or the scan changes.
    state = _State(_target("mx1", ()), _failed_result())
    state.scan = _tls13_scan(1_800_000_000.0, ("x25519",))
    renderer = MetricsRenderer()
    renderer.set_targets([state])
    first = _scrape(renderer)
    assert 'smtp_tls_group_accepted{target="mx1",group="x448"} 0\n' in first

    state.result = dataclasses.replace(_failed_result(), finished_at=1_800_000_061.5)
    state.probes_total = 2
    renderer.refresh(state)
    second = _scrape(renderer)
    assert 'smtp_probe_timestamp_seconds{target="mx1"} 1800000061.5\n' in second
    assert 'smtp_tls_group_accepted{target="mx1",group="x448"} 0\n' in second
    assert second.count("smtp_tls_group_accepted{") == 2

    state.scan = _tls13_scan(1_800_021_600.0, ("x25519", "x448"))
    renderer.refresh(state)
    third = _scrape(renderer)
    assert 'smtp_tls_group_accepted{target="mx1",group="x448"} 1\n' in third
    assert 'smtp_tls_scan_timestamp_seconds{target="mx1"} 1800021600.25\n' in third
    assert third.count("smtp_tls_group_accepted{") == 2


_label_text = st.text(st.characters(codec="utf-8"), max_size=60)


@given(name=_label_text, label_value=_label_text)
def test_rendered_blocks_parse_back_to_the_same_values(name: str, label_value: str) -> None:
    state = _State(_target(name or "t", (("site", label_value),)), _failed_result())
    text = "".join(
        family.header() + column
        for family, column in zip(TARGET_FAMILIES, render_target(state, target_labels(state.config)), strict=True)
        if column
    )
    families = {family.name: family for family in text_string_to_metric_families(text)}
    [success] = families["smtp_probe_success"].samples
    assert success.labels == {"target": name or "t", "site": label_value}
    assert success.value == 0
    [info] = families["smtp_target_info"].samples
    assert info.labels["server_name"] == "mx.example.net"
