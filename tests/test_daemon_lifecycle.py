"""The daemon as an operator meets it: flags, errors, endpoints, reload, shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.exporter_process import ExporterProcess
from tests.support.servers import ScenarioServers


def _exporter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _plain_config(path: Path, ports: dict[str, int]) -> Path:
    lines = ["defaults: {interval: 1h, timeout: 5s, tls: none, ehlo_name: probe.test}", "targets:"]
    lines += [f"  - {{name: {name}, host: 127.0.0.1, port: {port}}}" for name, port in ports.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    config = _plain_config(tmp_path / "config.yml", {"a": 2525})
    completed = _exporter("--config.file", str(config), "--config.check")
    assert completed.returncode == 0
    assert "configuration is valid (1 targets)" in completed.stdout


def test_config_check_lists_every_problem_and_fails(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("targets:\n  - host: a.test\n    tls: startls\n  - port: 0\n")
    completed = _exporter("--config.file", str(config), "--config.check")
    assert completed.returncode == 1
    assert f"{config}:3: targets[0].tls: unknown value 'startls'" in completed.stderr
    assert f"{config}:4: targets[1].host: is required" in completed.stderr
    assert f"{config}:4: targets[1].port: must be a port number" in completed.stderr


def test_invalid_config_at_start_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("targets:\n  - host: a.test\n    interval: soon\n")
    completed = _exporter("--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    assert completed.returncode == 1
    assert "invalid configuration; not starting" in completed.stderr
    assert f"{config}:3: targets[0].interval: invalid duration 'soon'" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_missing_config_file_is_a_one_line_error(tmp_path: Path) -> None:
    completed = _exporter("--config.file", str(tmp_path / "nope.yml"))
    assert completed.returncode == 1
    assert "cannot read the config file: No such file or directory" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    config = _plain_config(tmp_path / "config.yml", {"a": 2525})
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        completed = _exporter("--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}")
    assert completed.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_endpoints(tmp_path: Path, servers: ScenarioServers) -> None:
    port = servers.smtp()
    config = _plain_config(tmp_path / "config.yml", {"relay": port})
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        exporter.wait_for_probes(["relay"])
        status, headers, body = exporter.get("/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        status, headers, body = exporter.get("/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert 'href="/metrics"' in body
        assert "relay" in body
        assert "success" in body
        assert exporter.get("/-/healthy")[0] == 200
        assert exporter.get("/-/ready")[0] == 200
        assert exporter.get("/-/reload")[0] == 405
        assert exporter.get("/nothing-here")[0] == 404


def test_reload_keeps_the_old_config_when_the_new_one_is_invalid(tmp_path: Path, servers: ScenarioServers) -> None:
    ports = {"first": servers.smtp(), "second": servers.smtp()}
    config = _plain_config(tmp_path / "config.yml", {"first": ports["first"]})
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        before = exporter.wait_for_probes(["first"])
        loaded_at = before.value("smtp_exporter_config_last_reload_success_timestamp_seconds")

        config.write_text("targets:\n  - host: [unclosed\n")
        status, _, body = exporter.post("/-/reload")
        assert status == 500
        assert f"{config}:" in body
        scrape = exporter.scrape()
        assert scrape.value("smtp_exporter_config_last_reload_successful") == 0
        assert scrape.value("smtp_exporter_config_last_reload_success_timestamp_seconds") == loaded_at
        assert scrape.value("smtp_probe_success", target="first") == 1  # still there
        assert "config reload failed; keeping the previous config" in exporter.log_text()

        _plain_config(config, {"second": ports["second"]})
        status, _, _ = exporter.post("/-/reload")
        assert status == 200
        after = exporter.wait_for_probes(["second"])
        assert after.value("smtp_exporter_config_last_reload_successful") == 1
        assert after.series_of("first") == set()  # removed targets stop exporting
        assert after.value("smtp_exporter_targets") == 1


def test_sighup_reloads_and_unchanged_targets_keep_their_results(tmp_path: Path, servers: ScenarioServers) -> None:
    ports = {"kept": servers.smtp(), "added": servers.smtp()}
    config = _plain_config(tmp_path / "config.yml", {"kept": ports["kept"]})
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        first = exporter.wait_for_probes(["kept"])
        probed_at = first.value("smtp_probe_timestamp_seconds", target="kept")
        _plain_config(config, ports)
        exporter.send_signal(signal.SIGHUP)
        after = exporter.wait_for_probes(["added"])
        # Interval is 1h: an unchanged target keeps its result and is not re-probed.
        assert after.value("smtp_probe_timestamp_seconds", target="kept") == probed_at
        assert after.value("smtp_probes_total", target="kept") == 1


def test_sigterm_stops_promptly(tmp_path: Path, servers: ScenarioServers) -> None:
    config = _plain_config(tmp_path / "config.yml", {"relay": servers.smtp()})
    exporter = ExporterProcess(config, tmp_path / "exporter.log")
    exporter.wait_for_probes(["relay"])
    exporter.send_signal(signal.SIGTERM)
    returncode = exporter.process.wait(timeout=10)  # raises if it hangs
    exporter.stop()
    assert returncode == 0
    assert "shutting down" in exporter.log_text()
