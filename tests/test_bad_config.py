"""Bad configuration as the operator meets it: refused at start, rejected on reload.

Every kind of mistake the exporter can recognise is named with file, line
and key path; the daemon does not start on it, and a running daemon keeps
its previous configuration.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.exporter_process import ExporterProcess
from tests.support.servers import ScenarioServers

_TARGET = "targets:\n  - name: relay\n    host: 127.0.0.1\n"

# name -> (config text, what the message says after "<file>:")
BAD_CONFIGS = {
    "malformed_yaml": (_TARGET + "    port: [25\n", "5: (syntax): invalid YAML"),
    "unprintable_character": (_TARGET + "    server_name: mail\x00.test\n", "4: (syntax): invalid YAML"),
    "unknown_key": (_TARGET + "    hots: mail.test\n", "4: targets[0].hots: unknown key"),
    "duplicate_key": (_TARGET + "    host: 127.0.0.2\n", "4: targets[0].host: duplicate key 'host'"),
    "duplicate_target_name": (
        _TARGET + "  - name: relay\n    host: 127.0.0.2\n",
        "4: targets[1].name: duplicate target name 'relay' (first used by targets[0])",
    ),
    "bad_duration": (_TARGET + "    interval: 5 minutes\n", "4: targets[0].interval: invalid duration '5 minutes'"),
    "timeout_not_below_interval": (
        "defaults: {interval: 30s}\n" + _TARGET + "    timeout: 30s\n",
        "5: targets[0].timeout: timeout (30s) must be shorter than the interval (30s)",
    ),
    "port_out_of_range": (_TARGET + "    port: 65536\n", "4: targets[0].port: must be a port number from 1 to 65535"),
    "unknown_tls_mode": (_TARGET + "    tls: startls\n", "4: targets[0].tls: unknown value 'startls'"),
    "empty_target_list": ("targets: []\n", "1: targets: is empty"),
    "missing_password_env_var": (
        _TARGET + "    auth: {username: probe, password_env: SMTP_EXPORTER_TEST_UNSET_VARIABLE}\n",
        "4: targets[0].auth.password_env: environment variable SMTP_EXPORTER_TEST_UNSET_VARIABLE is not set",
    ),
    # A directory: unreadable as a file even for root, who reads any mode.
    "unreadable_password_file": (
        _TARGET + "    auth: {username: probe, password_file: /}\n",
        "4: targets[0].auth.password_file: cannot read /: Is a directory",
    ),
}


def test_each_bad_config_is_refused_at_start_with_file_line_and_key_path(tmp_path: Path) -> None:
    started: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, (text, _) in BAD_CONFIGS.items():
        config = tmp_path / f"{name}.yml"
        config.write_text(text)
        command = [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(config),
            "--web.listen-address",
            "127.0.0.1:0",
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[name] = (config, process)
    for name, (config, process) in started.items():
        _, stderr = process.communicate(timeout=60)
        expected = f"{config}:{BAD_CONFIGS[name][1]}"
        assert process.returncode == 1, (name, stderr)
        assert "invalid configuration; not starting" in stderr, (name, stderr)
        assert expected in stderr, (name, stderr)
        assert "Traceback" not in stderr, (name, stderr)


def test_config_check_prints_every_problem_at_once(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "defaults: {interval: 30s, timeot: 5s}\n"
        "targets:\n"
        "  - {name: a, host: a.test, interval: soon}\n"
        "  - {name: a, host: b.test}\n"
        "  - {name: c, host: c.test, port: 0, tls: startls}\n"
        "  - {name: d, host: d.test, timeout: 1m}\n"
    )
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--config.check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    for expected in (
        "1: defaults.timeot: unknown key",
        "3: targets[0].interval: invalid duration 'soon'",
        "4: targets[1].name: duplicate target name 'a'",
        "5: targets[2].port: must be a port number from 1 to 65535, not 0",
        "5: targets[2].tls: unknown value 'startls'",
        "6: targets[3].timeout: timeout (60s) must be shorter than the interval (30s)",
    ):
        assert f"{config}:{expected}" in completed.stderr, (expected, completed.stderr)
    assert f"{config}: 6 problem(s) found" in completed.stderr


def test_reload_with_each_bad_config_keeps_the_old_one(tmp_path: Path, servers: ScenarioServers) -> None:
    port = servers.smtp()
    config = tmp_path / "config.yml"
    good = f"defaults: {{interval: 1h, timeout: 5s, tls: none, ehlo_name: probe.test}}\n{_TARGET}    port: {port}\n"
    config.write_text(good)
    with ExporterProcess(config, tmp_path / "exporter.log") as exporter:
        exporter.wait_for_probes(["relay"])
        for name, (text, message) in BAD_CONFIGS.items():
            config.write_text(text)
            status, _, body = exporter.post("/-/reload")
            assert status == 500, (name, body)
            assert f"{config}:{message}" in body, (name, body)
            scrape = exporter.scrape()
            assert scrape.value("smtp_exporter_config_last_reload_successful") == 0, name
            assert scrape.value("smtp_probe_success", target="relay") == 1, name
            assert scrape.value("smtp_exporter_targets") == 1, name
        config.write_text(good)
        assert exporter.post("/-/reload")[0] == 200
        assert exporter.scrape().value("smtp_exporter_config_last_reload_successful") == 1
        assert exporter.process.poll() is None
