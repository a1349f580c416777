"""Servers stricter or terser than Postfix: what the probe must not count on.

Postfix accepts a repeated EHLO and always answers QUIT, so a probe tested
only against it can lean on both without anyone noticing. Each server here
behaves as some real server does (OpenSMTPD refuses a second EHLO; many hang
up on QUIT without a 221), and a probe of it must still pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import SERVER_NAME, Pki
from tests.support.servers import ALREADY_IDENTIFIED, ScenarioServers, Script, read_command, send

EHLO_REPLY = ("250-mail.test", "250 8BITMIME")


def quit_answered_by_hanging_up() -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, "220 mail.test ESMTP")
        await read_command(reader)
        await send(writer, *EHLO_REPLY)
        await read_command(reader)  # QUIT: the server closes without a 221

    return script


def quit_never_answered() -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, "220 mail.test ESMTP")
        await read_command(reader)
        await send(writer, *EHLO_REPLY)
        await read_command(reader)  # QUIT, left unanswered until the client leaves
        async with asyncio.timeout(30):
            await reader.read()

    return script


def one_ehlo_only() -> Script:
    """Plaintext, refusing any EHLO after the first (and so any second identification)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, "220 mail.test ESMTP")
        await read_command(reader)
        await send(writer, *EHLO_REPLY)
        while command := await read_command(reader):
            if command.upper().startswith(b"EHLO"):
                await send(writer, ALREADY_IDENTIFIED)
            elif command.upper().startswith(b"QUIT"):
                await send(writer, "221 2.0.0 Bye")
                return

    return script


@pytest.fixture(scope="module")
def scrape(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scrape]:
    context = pki.leaf(SERVER_NAME).server_context(cert_dir, "strict")
    ports = {
        "quit_hang_up": (servers.scripted(quit_answered_by_hanging_up()), "none"),
        "quit_ignored": (servers.scripted(quit_never_answered()), "none"),
        "one_ehlo_plaintext": (servers.scripted(one_ehlo_only()), "none"),
        # aiosmtpd as set up for the tests refuses a repeated EHLO (tests/support/servers.py).
        "one_ehlo_implicit": (servers.smtp(tls_context=context, implicit_tls=True), "implicit"),
        "ehlo_again_after_starttls": (servers.smtp(tls_context=context), "starttls"),
    }
    lines = ["defaults:", "  interval: 1h", "  timeout: 5s", "  ehlo_name: probe.test", f"  ca_file: {pki.ca_file}"]
    lines.append("targets:")
    for name, (port, tls) in ports.items():
        lines += [f"  - name: {name}", "    host: 127.0.0.1", f"    port: {port}", f"    tls: {tls}"]
        lines.append(f"    server_name: {SERVER_NAME}")
    directory = tmp_path_factory.mktemp("strict")
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    exporter = ExporterProcess(config, directory / "exporter.log")
    try:
        yield exporter.wait_for_probes(list(ports))
    finally:
        exporter.stop()


@pytest.mark.parametrize(
    "target", ["quit_hang_up", "quit_ignored", "one_ehlo_plaintext", "one_ehlo_implicit", "ehlo_again_after_starttls"]
)
def test_probe_passes_without_leaning_on_leniency(scrape: Scrape, target: str) -> None:
    errors = scrape.find("smtp_probe_error_info", target=target)
    assert errors == []
    assert scrape.value("smtp_probe_success", target=target) == 1
