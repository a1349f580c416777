"""Reload and shutdown with probes in flight: cancelled, sockets closed, the rest untouched.

The servers here accept a connection and then say nothing, so a probe stays
in flight until its 50 s timeout, unless the exporter cancels it. When the
server sees the connection close while the exporter is still running, the
exporter closed it, not the operating system at exit.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

from exporter.runtime.daemon import Daemon
from tests.support.exporter_process import ExporterProcess, http_request
from tests.support.servers import ScenarioServers, Script

# Far longer than any wait below: a probe that ends sooner was cancelled.
PROBE_TIMEOUT = "50s"


class SilentServer:
    """Accepts, never greets, and notes when the client hangs up."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.closed = threading.Event()

    def script(self) -> Script:
        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connected.set()
            try:
                await reader.read()  # until the client closes or resets
            finally:
                self.closed.set()

        return script


def _config(path: Path, ports: dict[str, int], labels: dict[str, dict[str, str]] | None = None) -> Path:
    """Targets (name -> port) on loopback, with static labels for some (name -> labels)."""
    lines = [f"defaults: {{interval: 1h, timeout: {PROBE_TIMEOUT}, tls: none, ehlo_name: probe.test}}", "targets:"]
    for name, port in ports.items():
        pairs = ", ".join(f"{key}: {value}" for key, value in (labels or {}).get(name, {}).items())
        extra = f", labels: {{{pairs}}}" if pairs else ""
        lines.append(f"  - {{name: {name}, host: 127.0.0.1, port: {port}{extra}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sigterm_with_a_probe_in_flight_exits_promptly_and_cleanly(tmp_path: Path, servers: ScenarioServers) -> None:
    silent = SilentServer()
    config = _config(tmp_path / "config.yml", {"silent": servers.scripted(silent.script())})
    exporter = ExporterProcess(config, tmp_path / "exporter.log")
    try:
        assert silent.connected.wait(timeout=30)
        exporter.wait_for(lambda scrape: scrape.value("smtp_exporter_probes_in_flight") == 1)
        exporter.send_signal(signal.SIGTERM)
        # Well before the probe's own timeout: it was cancelled, not awaited.
        returncode = exporter.process.wait(timeout=20)
    finally:
        exporter.stop()
    assert returncode == 0
    assert silent.closed.wait(timeout=10)
    log = exporter.log_text()
    assert "shutting down" in log
    for trouble in ("Traceback", "Task was destroyed", "Unclosed", "Error"):
        assert trouble not in log, log


def test_stopping_the_daemon_cancels_its_probes_and_closes_their_sockets(
    tmp_path: Path, servers: ScenarioServers
) -> None:
    silent = SilentServer()
    config = _config(tmp_path / "config.yml", {"silent": servers.scripted(silent.script())})

    async def scenario() -> None:
        daemon = Daemon(config, max_concurrency=4)
        daemon.load()
        daemon.start()
        try:
            assert await asyncio.to_thread(silent.connected.wait, 30)
            assert "smtp_exporter_probes_in_flight 1\n" in daemon.metrics_text()
        finally:
            await daemon.stop()
        # This process is still alive: only the cancelled probe can have closed it.
        assert await asyncio.to_thread(silent.closed.wait, 10)
        assert "smtp_exporter_probes_in_flight 0\n" in daemon.metrics_text()
        assert "smtp_probe_timestamp_seconds" not in daemon.metrics_text()  # no result from a cancelled probe

    asyncio.run(scenario())


def test_removing_a_target_cancels_its_probe_in_flight(tmp_path: Path, servers: ScenarioServers) -> None:
    silent = SilentServer()
    ports = {"silent": servers.scripted(silent.script()), "relay": servers.smtp()}
    config = _config(tmp_path / "config.yml", ports)
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        exporter.wait_for_probes(["relay"])
        assert silent.connected.wait(timeout=30)
        _config(config, {"relay": ports["relay"]})
        status, _, _ = exporter.post("/-/reload")
        assert status == 200
        assert silent.closed.wait(timeout=10)
        scrape = exporter.wait_for(lambda scrape: scrape.value("smtp_exporter_probes_in_flight") == 0)
        assert scrape.series_of("silent") == set()
        assert scrape.value("smtp_probes_total", target="relay") == 1  # untouched
        assert exporter.process.poll() is None


def test_a_changed_target_is_probed_again_soon_after_reload(tmp_path: Path, servers: ScenarioServers) -> None:
    ports = {"changed": servers.smtp(), "unchanged": servers.smtp()}
    config = _config(tmp_path / "config.yml", ports)
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        before = exporter.wait_for_probes(list(ports))
        unchanged_at = before.value("smtp_probe_timestamp_seconds", target="unchanged")
        changed_at = before.value("smtp_probe_timestamp_seconds", target="changed")
        assert changed_at is not None
        _config(config, ports, labels={"changed": {"stage": "after-reload"}})  # the target's config differs
        assert exporter.post("/-/reload")[0] == 200
        # The interval is 1 h: only the reload can have caused a second probe.
        after = exporter.wait_for(
            lambda scrape: scrape.value("smtp_probes_total", target="changed", stage="after-reload") == 2
        )
        reprobed_at = after.value("smtp_probe_timestamp_seconds", target="changed")
        assert reprobed_at is not None
        assert reprobed_at > changed_at
        assert after.value("smtp_probe_timestamp_seconds", target="unchanged") == unchanged_at
        assert after.value("smtp_probes_total", target="unchanged") == 1


def test_sighup_with_an_invalid_config_keeps_the_old_one(tmp_path: Path, servers: ScenarioServers) -> None:
    ports = {"kept": servers.smtp(), "added": servers.smtp()}
    config = _config(tmp_path / "config.yml", {"kept": ports["kept"]})
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        exporter.wait_for_probes(["kept"])
        config.write_text("targets:\n  - host: 127.0.0.1\n    port: seventy\n")
        exporter.send_signal(signal.SIGHUP)
        scrape = exporter.wait_for(lambda scrape: scrape.value("smtp_exporter_config_last_reload_successful") == 0)
        assert scrape.value("smtp_probe_success", target="kept") == 1
        assert scrape.value("smtp_exporter_targets") == 1
        log = exporter.log_text()
        assert "config reload failed; keeping the previous config" in log
        assert f"{config}:3: targets[0].port: must be a port number" in log

        _config(config, ports)
        exporter.send_signal(signal.SIGHUP)
        after = exporter.wait_for_probes(["added"])
        assert after.value("smtp_exporter_config_last_reload_successful") == 1
        assert after.value("smtp_exporter_targets") == 2


def test_put_reloads_and_get_does_not(tmp_path: Path, servers: ScenarioServers) -> None:
    ports = {"first": servers.smtp(), "second": servers.smtp()}
    config = _config(tmp_path / "config.yml", {"first": ports["first"]})
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        exporter.wait_for_probes(["first"])
        _config(config, ports)
        assert exporter.get("/-/reload")[0] == 405
        assert exporter.scrape().value("smtp_exporter_targets") == 1  # GET changed nothing
        status, _, _ = http_request("PUT", exporter.base_url + "/-/reload")
        assert status == 200
        exporter.wait_for_probes(["second"])
