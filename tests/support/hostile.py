"""Hostile and broken SMTP servers, as scripts for ScenarioServers.scripted().

Each one misbehaves in one way found on the internet. None waits forever:
a server that stalls gives up after HOLD_SECONDS, longer than any probe's
timeout, so long runs (bench/soak.py) do not pile up server-side tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Sequence
from typing import cast

from tests.support.servers import Script, read_command, send

HOLD_SECONDS = 30.0
GREETING = "220 mail.test ESMTP"
EHLO_WITH_STARTTLS = ("250-mail.test", "250-PIPELINING", "250 STARTTLS")


@contextlib.asynccontextmanager
async def _at_most(seconds: float = HOLD_SECONDS) -> AsyncIterator[None]:
    """Give up quietly after ``seconds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            yield


async def _hold(reader: asyncio.StreamReader) -> None:
    """Wait until the client leaves, or HOLD_SECONDS."""
    async with _at_most():
        while await reader.read(65536):
            pass


def silent() -> Script:
    """Accepts the connection and never greets."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _hold(reader)

    return script


def trickle(text: bytes = b"220 mail.test ESMTP ready\r\n", every: float = 1.0) -> Script:
    """Greets one octet per ``every`` seconds (slowloris)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with _at_most():
            for octet in text:
                writer.write(bytes([octet]))
                await writer.drain()
                await asyncio.sleep(every)

    return script


def greets_then_never_reads() -> Script:
    """Greets, then stops reading: the client's commands pile up in kernel buffers."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, GREETING)
        cast(asyncio.Transport, writer.transport).pause_reading()
        await asyncio.sleep(HOLD_SECONDS)

    return script


def sends(data: bytes, *, after_ehlo: bool = False) -> Script:
    """Sends ``data`` where the greeting (or the EHLO reply) belongs, then waits."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if after_ehlo:
            await send(writer, GREETING)
            await read_command(reader)
        writer.write(data)
        await writer.drain()
        await _hold(reader)

    return script


def endless(first: bytes, repeated: bytes, *, after_ehlo: bool = False, total: int = 10 * 2**20) -> Script:
    """Sends ``first``, then ``repeated`` until ``total`` octets or the client leaves.

    ``endless(b"220 ", b"x" * 65536)`` is a 10 MB greeting line without CRLF;
    ``endless(b"", b"250-more\\r\\n" * 1000, after_ehlo=True)`` an EHLO reply
    that never ends.
    """

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if after_ehlo:
            await send(writer, GREETING)
            await read_command(reader)
        writer.write(first)
        written = len(first)
        async with _at_most():
            while written < total and not writer.is_closing():
                writer.write(repeated)
                written += len(repeated)
                await writer.drain()  # raises once the client is gone
        await _hold(reader)

    return script


def closes_after_every_command(*, answer: bool) -> Script:
    """Greets; closes after the first command, answering it first if ``answer``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, GREETING)
        await read_command(reader)
        if answer:
            await send(writer, *EHLO_WITH_STARTTLS)

    return script


async def _until_starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await send(writer, GREETING)
    await read_command(reader)  # EHLO
    await send(writer, *EHLO_WITH_STARTTLS)
    await read_command(reader)  # STARTTLS
    await send(writer, "220 2.0.0 Ready to start TLS")


def starttls_then(garbage: bytes) -> Script:
    """Answers STARTTLS with 220, waits for the ClientHello, and sends ``garbage`` back."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _until_starttls(reader, writer)
        await reader.read(5)  # the ClientHello's record header
        writer.write(garbage)
        await writer.drain()
        await _hold(reader)

    return script


def _reset(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER with a zero timeout turns close() into a TCP RST.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def tls_by_hand(context: ssl.SSLContext, *, reset_after_octets: int | None = None, implicit: bool = False) -> Script:
    """A TLS server driven through memory BIOs, so it can misbehave mid-handshake.

    asyncio's own TLS server drops the connection without sending the alert
    OpenSSL prepared; real servers send it. This one sends what OpenSSL
    wants to send: the handshake, or the alert when the handshake fails.
    With ``reset_after_octets`` it resets the connection once it has sent
    that many octets of its first flight (mid-handshake).
    """

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not implicit:
            await _until_starttls(reader, writer)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        async with _at_most():
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                incoming.write(data)
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    writer.write(outgoing.read())  # the alert
                    await writer.drain()
                    return
                flight = outgoing.read()
                if reset_after_octets is not None and flight:
                    writer.write(flight[:reset_after_octets])
                    await writer.drain()
                    _reset(writer)
                    return
                writer.write(flight)
                await writer.drain()

    return script


def ehlo_offering(auth_lines: Sequence[str]) -> Script:
    """A plain ESMTP server whose EHLO reply carries ``auth_lines``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, GREETING)
        await read_command(reader)
        await send(writer, "250-mail.test", *(f"250-{line}" for line in auth_lines), "250 8BITMIME")
        await read_command(reader)  # QUIT
        await send(writer, "221 2.0.0 Bye")

    return script
