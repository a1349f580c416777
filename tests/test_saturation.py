"""A saturated exporter skips and says so, instead of stalling.

Two probe slots, four servers that accept and never greet (each probe holds
its slot for the whole timeout), and one healthy server. Due probes that
find no free slot are skipped and counted, never queued twice, and the
healthy target keeps being probed.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.hostile import silent
from tests.support.servers import ScenarioServers

SILENT = [f"silent{index}" for index in range(4)]


def _skipped(scrape: Scrape, reason: str) -> float:
    return scrape.value("smtp_exporter_probes_skipped_total", reason=reason) or 0


def test_saturated_exporter_skips_and_reports(servers: ScenarioServers, tmp_path: Path) -> None:
    healthy = servers.smtp()
    lines = ["defaults: {interval: 3s, timeout: 2s, tls: none, ehlo_name: probe.test}", "targets:"]
    lines += [f"  - {{name: {name}, host: 127.0.0.1, port: {servers.scripted(silent())}}}" for name in SILENT]
    lines.append(f"  - {{name: healthy, host: 127.0.0.1, port: {healthy}}}")
    config = tmp_path / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    with ExporterProcess(config, tmp_path / "exporter.log", extra_args=["--probe.max-concurrency", "2"]) as exporter:
        scrape = exporter.wait_for(
            lambda scrape: (
                _skipped(scrape, "no_free_slot") >= 2
                and (scrape.value("smtp_probes_total", target="healthy") or 0) >= 3
            ),
            timeout=90,
        )
        assert scrape.value("smtp_exporter_probe_slots") == 2
        assert (scrape.value("smtp_exporter_probes_in_flight") or 0) <= 2
        assert scrape.value("smtp_probe_success", target="healthy") == 1
        for name in SILENT:
            assert scrape.find("smtp_probe_error_info", target=name, reason="timeout")
        # Both reasons are always exported, so a rate() has a series from the start.
        assert scrape.value("smtp_exporter_probes_skipped_total", reason="previous_probe_running") is not None


def test_the_default_bound_follows_the_open_files_limit(servers: ScenarioServers, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"targets:\n  - {{host: 127.0.0.1, port: {servers.smtp()}, tls: none}}\n")
    # prlimit sets the exporter's own limits: a soft limit of 1024 under a hard one of 2048.
    with ExporterProcess(config, tmp_path / "exporter.log", command_prefix=["prlimit", "--nofile=1024:2048"]) as exp:
        scrape = exp.scrape()
        # Raised to the hard limit, less the reserve for HTTP, DNS and files.
        assert scrape.value("smtp_exporter_probe_slots") == 2048 - 256
        assert "open_files=2048" in exp.log_text()
