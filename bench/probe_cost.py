"""Where one probe's CPU goes: the conversation cut after each stage.

Probes run one after another in this process against a loopback Postfix;
each line is this process's CPU per connection for the conversation up to
that stage, so the differences between lines are the stages' own costs.

    python -m bench.probe_cost [--probes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from bench.setup import machine_description, missing_requirements, postfix_server
from exporter.config.model import ProbeOptions, ProbeSpec, TlsMode, probe_spec
from exporter.net.connection import SmtpConnection
from exporter.probe.run import run_probe
from exporter.probe.transcript import Transcript
from exporter.tls.context import TlsClient, TlsClients
from tests.support.pki import SERVER_NAME

Stage = Callable[[int], Coroutine[Any, Any, None]]


async def _open(port: int) -> SmtpConnection:
    deadline = asyncio.get_running_loop().time() + 10
    transcript = Transcript(enabled=False)
    return await SmtpConnection.open(
        "127.0.0.1", port, family=socket.AF_UNSPEC, deadline=deadline, transcript=transcript
    )


def stages(port: int, tls_client: TlsClient, spec: ProbeSpec) -> dict[str, Stage]:
    def conversation(*, handshake: bool, ehlo_and_quit: bool) -> Stage:
        async def run(count: int) -> None:
            for _ in range(count):
                connection = await _open(port)
                await connection.read_reply()
                await connection.command("EHLO probe.test")
                await connection.command("STARTTLS")
                if handshake:
                    await connection.start_tls(tls_client.handshake_context, SERVER_NAME)
                if ehlo_and_quit:
                    await connection.command("EHLO probe.test")
                    await connection.command("QUIT")
                connection.close()

        return run

    async def whole_probe(count: int) -> None:
        for _ in range(count):
            result = await run_probe(spec, tls_client, keep_transcript=False)
            if not result.success:
                raise RuntimeError(f"probe failed: {result.failures}")

    return {
        "connect, greeting, EHLO, STARTTLS": conversation(handshake=False, ehlo_and_quit=False),
        "... and the TLS handshake": conversation(handshake=True, ehlo_and_quit=False),
        "... and EHLO and QUIT over TLS": conversation(handshake=True, ehlo_and_quit=True),
        "the whole probe (chain, trust, host name, result)": whole_probe,
    }


def measure(run: Callable[[Coroutine[Any, Any, None]], None], stage: Stage, count: int) -> float:
    started = time.process_time()
    run(stage(count))
    return 1000 * (time.process_time() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=300)
    arguments = parser.parse_args()
    why_not = missing_requirements()
    if why_not:
        print(f"cannot run: {why_not}", file=sys.stderr)
        return 2
    loops: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    with postfix_server() as (server, pki):
        port = server.submission_port
        options = ProbeOptions(TlsMode.STARTTLS, timeout=10, ehlo_name="probe.test", ca_file=pki.ca_file)
        spec = probe_spec("127.0.0.1", port, options, server_name=SERVER_NAME)
        tls_client = TlsClients().for_spec(spec)
        rows = []
        for name, stage in stages(port, tls_client, spec).items():
            costs = [measure(loops[loop], stage, arguments.probes) for loop in loops]
            rows.append(f"| {name} | {costs[0]:.2f} | {costs[1]:.2f} |")
    print(f"Machine: {machine_description()}\n")
    print("| conversation up to | asyncio ms CPU / probe | uvloop ms CPU / probe |\n|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
