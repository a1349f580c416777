"""Text from the network cannot forge lines of our output (check, /probe?debug, logs).

A server's reply and a certificate's names are the server's to choose: a raw
newline, U+2028/U+2029/U+0085 or a terminal escape in them would start a new
line of the report or the log, or recolour a terminal, so a server could
forge "OK" lines. The metrics text already escapes; these outputs must too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.exporter_process import ExporterProcess
from tests.support.pki import SERVER_NAME, Pki
from tests.support.servers import ScenarioServers, Script, read_command, send

FORGED = "OK 127.0.0.1:25: everything is fine"
RAW_SEPARATORS = ("\u2028", "\u2029", "\u0085", "\x1b", "\r")


def greeting_with_separators() -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, f"554 5.7.1 go away\u2028{FORGED}\u2029\u0085\x1b[32mgreen")

    return script


def ehlo_with_an_escape() -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, "220 mail.test ESMTP")
        await read_command(reader)
        await send(writer, "250-mail.test", "250 X\x1b]0;owned\x07\u2028" + FORGED)
        await read_command(reader)
        await send(writer, "221 bye")

    return script


def _check(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "check", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return completed.stdout + completed.stderr


def _assert_no_forged_lines(output: str) -> None:
    for separator in RAW_SEPARATORS:
        assert separator not in output, f"raw {separator!r} in output"
    assert not any(line.startswith(FORGED) for line in output.splitlines())


def test_a_greeting_cannot_forge_report_lines(servers: ScenarioServers) -> None:
    port = servers.scripted(greeting_with_separators())
    output = _check(f"127.0.0.1:{port}", "--tls", "none", "--timeout", "5s")
    _assert_no_forged_lines(output)
    assert "\\u2028" + FORGED in output  # shown, escaped, not hidden


def test_ehlo_keywords_cannot_forge_report_lines(servers: ScenarioServers) -> None:
    port = servers.scripted(ehlo_with_an_escape())
    output = _check(f"127.0.0.1:{port}", "--tls", "none", "--timeout", "5s")
    _assert_no_forged_lines(output)
    assert "\\x1b]0;owned\\x07" in output


def test_certificate_names_cannot_forge_report_lines(pki: Pki, servers: ScenarioServers, cert_dir: Path) -> None:
    leaf = pki.leaf(SERVER_NAME, common_name=f"mail.test\n{FORGED}")
    port = servers.smtp(tls_context=leaf.server_context(cert_dir, "forging-cn"))
    output = _check(f"127.0.0.1:{port}", "--server-name", SERVER_NAME, "--ca-file", str(pki.ca_file))
    _assert_no_forged_lines(output)
    assert "\\x0a" + FORGED in output


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_log_records_stay_one_line(servers: ScenarioServers, tmp_path: Path, log_format: str) -> None:
    port = servers.scripted(greeting_with_separators())
    config = tmp_path / "config.yml"
    config.write_text(
        "targets:\n"
        f"  - {{name: forger, host: 127.0.0.1, port: {port}, tls: none, interval: 1h, timeout: 5s,"
        " ehlo_name: probe.test}\n"
    )
    log = tmp_path / "exporter.log"
    with ExporterProcess(config, log, extra_args=["--log.format", log_format]) as exporter:
        exporter.wait_for_probes(["forger"])
    text = log.read_text(encoding="utf-8")
    _assert_no_forged_lines(text)
    [failure] = [line for line in text.splitlines() if "target probe failed" in line]
    assert "go away" in failure
    if log_format == "json":
        assert FORGED in json.loads(failure)["detail"]
