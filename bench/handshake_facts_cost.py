"""What reading the key exchange, signature and CertificateRequest costs per probe.

Three ways to see the handshake messages, measured on the probe's own
conversation (SmtpConnection up to the TLS handshake) against a loopback
Postfix, in this process, alternating so the machine's drift hits all alike:

- none: the handshake as before (the baseline);
- ssl.py's ``SSLContext._msg_callback`` property, whose wrapper converts
  three integers to enums on each call before ours runs;
- the C type's own ``_msg_callback`` descriptor (exporter/tls/private_api.py),
  our callback called directly.

And two things without a server: walking the TLS records the server sent
(the alternative that needs no callback, but sees only what TLS 1.3 leaves in
clear: the ServerHello), timed on one real handshake's octets; and reading
the recorded messages afterwards (handshake_facts()), once per probe.

The machine's drift (±150 us between runs of a few hundred probes) is larger
than what is measured, so variants alternate in small batches and each
batch's difference to the baseline batch next to it is kept: the median of
those differences is the figure.

    python -m bench.handshake_facts_cost [--batch 50] [--batches 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import uvloop

from bench.setup import machine_description, missing_requirements, postfix_server
from exporter.net.connection import SmtpConnection
from exporter.probe.transcript import Transcript
from exporter.tls.context import handshake_context
from exporter.tls.handshake import KEA_TLS13, HandshakeRecorder, handshake_facts
from exporter.tls.private_api import ObservedSSLObject, handshake_recorder, observe_handshakes
from tests.support.pki import SERVER_NAME


def _through_ssl_py_property(context: ssl.SSLContext) -> None:
    context.sslobject_class = ObservedSSLObject

    def callback(  # noqa: PLR0917 - the signature ssl.py calls it with
        connection: Any, direction: str, version: Any, content_type: Any, kind: Any, data: bytes
    ) -> None:
        if content_type == 22 and isinstance(connection, ObservedSSLObject):
            if connection.handshake_recorder is None:
                connection.handshake_recorder = HandshakeRecorder()
            connection.handshake_recorder.observe(direction == "read", data)

    context._msg_callback = callback  # type: ignore[attr-defined]


def _variants() -> dict[str, ssl.SSLContext]:
    plain = handshake_context()
    wrapped = handshake_context()
    _through_ssl_py_property(wrapped)
    direct = handshake_context()
    observe_handshakes(direct)
    return {
        "no message callback (before)": plain,
        "ssl.py's _msg_callback property": wrapped,
        "C descriptor (private_api.observe_handshakes)": direct,
    }


async def _handshakes(port: int, context: ssl.SSLContext, count: int, read_facts: bool) -> None:
    for _ in range(count):
        deadline = asyncio.get_running_loop().time() + 10
        connection = await SmtpConnection.open(
            "127.0.0.1", port, family=socket.AF_UNSPEC, deadline=deadline, transcript=Transcript(enabled=False)
        )
        await connection.read_reply()
        await connection.command("EHLO probe.test")
        await connection.command("STARTTLS")
        ssl_object = await connection.start_tls(context, SERVER_NAME)
        if read_facts:
            recorder = handshake_recorder(ssl_object)
            if recorder is None or handshake_facts(recorder, kea=KEA_TLS13, leaf_key_type="EC").group is None:
                raise RuntimeError("no key exchange group recorded")
        connection.close()


def _calls_per_probe(port: int) -> list[tuple[Any, ...]]:
    """Every call OpenSSL makes to the callback in one probe's handshake and EHLO, QUIT."""
    from exporter.tls import private_api

    calls: list[tuple[Any, ...]] = []
    context = handshake_context()
    observe_handshakes(context)
    descriptor: Any = ssl.SSLContext.__mro__[1].__dict__["_msg_callback"]

    def counting(*arguments: Any) -> None:
        calls.append(arguments)
        private_api._on_message(*arguments)

    descriptor.__set__(context, counting)

    async def probe() -> None:
        deadline = asyncio.get_running_loop().time() + 10
        connection = await SmtpConnection.open(
            "127.0.0.1", port, family=socket.AF_UNSPEC, deadline=deadline, transcript=Transcript(enabled=False)
        )
        await connection.read_reply()
        await connection.command("EHLO probe.test")
        await connection.command("STARTTLS")
        await connection.start_tls(context, SERVER_NAME)
        await connection.command("EHLO probe.test")
        await connection.command("QUIT")
        connection.close()

    uvloop.run(probe())
    return calls


def _walk_records(octets: bytes) -> int | None:
    """The cheapest record-level reading: the TLS 1.3 key_share group of the ServerHello."""
    offset = 0
    while offset + 5 <= len(octets):
        length = int.from_bytes(octets[offset + 3 : offset + 5], "big")
        if octets[offset] == 22 and octets[offset + 5] == 2:
            body = octets[offset + 9 : offset + 5 + length]
            position = 2 + 32
            position += 1 + body[position] + 3
            end = position + 2 + int.from_bytes(body[position : position + 2], "big")
            position += 2
            while position < end:
                kind = int.from_bytes(body[position : position + 2], "big")
                size = int.from_bytes(body[position + 2 : position + 4], "big")
                if kind == 51:
                    return int.from_bytes(body[position + 4 : position + 6], "big")
                position += 4 + size
        offset += 5 + length
    return None


def _server_flight(port: int) -> bytes:
    """The octets Postfix sends in answer to our ClientHello, captured once."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO probe.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        reader.readline()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = handshake_context().wrap_bio(incoming, outgoing, server_hostname=SERVER_NAME)
        with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server, as it should
            ssl_object.do_handshake()
        sock.sendall(outgoing.read())
        sock.settimeout(2)
        received = b""
        try:
            while len(received) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if b"\x17\x03\x03" in received[received.find(b"\x16\x03\x03") :]:
                    break  # the encrypted part of the flight has begun
        except TimeoutError:
            pass
        return received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--batches", type=int, default=40)
    arguments = parser.parse_args()
    why_not = missing_requirements()
    if why_not:
        print(f"cannot run: {why_not}", file=sys.stderr)
        return 2
    variants = _variants()
    costs: dict[str, list[float]] = {name: [] for name in variants}
    with postfix_server() as (server, _pki):
        port = server.submission_port
        for context in variants.values():  # warm up: caches, the first connection's setup
            uvloop.run(_handshakes(port, context, 20, read_facts=False))
        for _ in range(arguments.batches):
            for name, context in variants.items():
                started = time.process_time()
                uvloop.run(_handshakes(port, context, arguments.batch, read_facts=False))
                costs[name].append(1e6 * (time.process_time() - started) / arguments.batch)
        flight = _server_flight(port)
        observed = variants["C descriptor (private_api.observe_handshakes)"]
        recorder_holder: list[HandshakeRecorder] = []

        async def one_recorded() -> None:
            deadline = asyncio.get_running_loop().time() + 10
            connection = await SmtpConnection.open(
                "127.0.0.1", port, family=socket.AF_UNSPEC, deadline=deadline, transcript=Transcript(enabled=False)
            )
            await connection.read_reply()
            await connection.command("EHLO probe.test")
            await connection.command("STARTTLS")
            recorder = handshake_recorder(await connection.start_tls(observed, SERVER_NAME))
            if recorder is None:
                raise RuntimeError("no messages recorded")
            recorder_holder.append(recorder)
            connection.close()

        uvloop.run(one_recorded())
        calls = _calls_per_probe(port)
    recorder = recorder_holder[0]
    baseline = costs["no message callback (before)"]
    print(f"Machine: {machine_description()}\n")
    print(f"{arguments.batches} batches x {arguments.batch} probes each (conversation up to the handshake, uvloop)\n")
    print("| how | us CPU / probe (median) | difference to the neighbouring baseline batch: median (quartiles) |")
    print("|---|---|---|")
    for name, values in costs.items():
        differences = [value - base for value, base in zip(values, baseline, strict=True)]
        quartiles = statistics.quantiles(differences, n=4)
        print(
            f"| {name} | {statistics.median(values):.0f} | {statistics.median(differences):+.0f}"
            f" ({quartiles[0]:+.0f} .. {quartiles[2]:+.0f}) |"
        )
    from exporter.tls import private_api

    fresh = [(ObservedSSLObject.__new__(ObservedSSLObject), *call[1:]) for call in calls]

    def replay() -> None:
        for call in fresh:
            private_api._on_message(*call)

    print(f"\ncallback calls in one probe (handshake, EHLO, QUIT): {len(calls)}")
    print(f"our callback's Python work for them, replayed: {_micro(replay):.1f} us per probe")
    walk = _micro(lambda: _walk_records(flight))
    facts = _micro(lambda: handshake_facts(recorder, kea=KEA_TLS13, leaf_key_type="EC"))
    print(f"walking the server's records for the ServerHello group: {walk:.1f} us per handshake")
    print(f"handshake_facts() on the recorded messages: {facts:.1f} us per probe")
    return 0


def _micro(function: Callable[[], object]) -> float:
    number = 20000
    return 1e6 * min(timeit.repeat(function, number=number, repeat=5)) / number


if __name__ == "__main__":
    sys.exit(main())
