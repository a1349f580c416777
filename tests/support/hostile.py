"""Hostile and broken SMTP servers, and the failure each must produce.

Each one misbehaves in one way found on the internet; start_hostile_servers()
starts one per case of EXPECTED_FAILURES, for tests/test_hostile_servers.py
and bench/soak.py. None waits forever: a server that stalls gives up after
HOLD_SECONDS, longer than any probe's timeout, so long runs do not pile up
server-side tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from tests.support.odd_certificates import ODD_CERTIFICATE_NAMES, OddCertificates, long_chain
from tests.support.pki import SERVER_NAME, Pki, ServerCertificate
from tests.support.servers import ScenarioServers, Script, greeting_then, read_command, send

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


# The first octets of a ClientHello record, where a greeting belongs.
CLIENT_HELLO_LIKE = bytes.fromhex("160301020001000200fc0303") + bytes(range(0x20, 0x40))

# Each hostile case and the (phase, reason) its probe must end in.
EXPECTED_FAILURES: dict[str, tuple[str, str]] = {
    # Stalls: the probe's own timeout ends them, in the phase that stalled.
    "greeting_never_arrives": ("banner", "timeout"),
    "greeting_trickles": ("banner", "timeout"),
    "never_reads": ("ehlo", "timeout"),
    # Garbage: a protocol error as soon as it is seen, long before the timeout.
    "ten_megabyte_line": ("banner", "protocol_error"),
    "endless_ehlo_reply": ("ehlo", "protocol_error"),
    "bare_lf": ("banner", "protocol_error"),
    "nul_byte": ("banner", "protocol_error"),
    "non_utf8": ("banner", "protocol_error"),
    "malformed_code": ("banner", "protocol_error"),
    "speaks_http": ("banner", "protocol_error"),
    "speaks_tls": ("banner", "protocol_error"),
    # Refusals and broken TLS.
    "greeting_421": ("banner", "banner_rejected"),
    "starttls_454": ("starttls", "starttls_rejected"),
    "starttls_then_garbage": ("tls_handshake", "tls_handshake_failed"),
    "reset_mid_handshake": ("tls_handshake", "tls_handshake_failed"),
    "alert_client_certificate_required": ("tls_handshake", "tls_handshake_failed"),
    "alert_unrecognized_name": ("tls_handshake", "tls_handshake_failed"),
    # TLS 1.3 servers reject a missing client certificate after the client's
    # side of the handshake is done: the alert ends the session at EHLO.
    "tls13_alert_after_handshake": ("ehlo", "connection_closed"),
    "closes_after_every_command": ("starttls", "connection_closed"),
    "closes_without_answering": ("ehlo", "connection_closed"),
    # Odd certificates: self-signed, or under a root nobody trusts.
    "chain_of_50": ("tls_handshake", "cert_untrusted"),
    **{f"cert_{name}": ("tls_handshake", "cert_untrusted") for name in ODD_CERTIFICATE_NAMES},
    "certificate_list_over_100_kib": ("tls_handshake", "tls_handshake_failed"),
}


@dataclass(frozen=True)
class HostileServers:
    # Case name -> loopback port; every case speaks to a `tls: starttls` probe.
    ports: dict[str, int]
    chain_of_50: ServerCertificate


def start_hostile_servers(servers: ScenarioServers, pki: Pki, cert_dir: Path) -> HostileServers:
    """One server per case of EXPECTED_FAILURES."""
    good = pki.leaf(SERVER_NAME)

    def context(name: str) -> ssl.SSLContext:
        return good.server_context(cert_dir, f"hostile-{name}")

    client_certificate_tls12 = context("client-cert-tls12")
    client_certificate_tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    client_certificate_tls13 = context("client-cert-tls13")
    client_certificate_tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    for requiring in (client_certificate_tls12, client_certificate_tls13):
        requiring.verify_mode = ssl.CERT_REQUIRED
        requiring.load_verify_locations(pki.ca_file)
    strict_sni = context("strict-sni")
    # Some servers answer an SNI name they do not serve with a fatal alert.
    strict_sni.sni_callback = lambda _tls, name, _context: (
        None if name == "other.test" else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    )
    chain_of_50 = long_chain(50)

    ports = {
        "greeting_never_arrives": servers.scripted(silent()),
        "greeting_trickles": servers.scripted(trickle()),
        "never_reads": servers.scripted(greets_then_never_reads()),
        "ten_megabyte_line": servers.scripted(endless(b"220 ", b"x" * 65536)),
        "endless_ehlo_reply": servers.scripted(endless(b"", b"250-more\r\n" * 1000, after_ehlo=True)),
        "bare_lf": servers.scripted(sends(b"220 mail.test ESMTP\n")),
        "nul_byte": servers.scripted(sends(b"220 mail\x00.test ESMTP\r\n")),
        "non_utf8": servers.scripted(sends(b"220 mail.test caf\xe9\r\n")),
        "malformed_code": servers.scripted(sends(b"22O mail.test ESMTP\r\n")),
        "speaks_http": servers.scripted(sends(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")),
        "speaks_tls": servers.scripted(sends(CLIENT_HELLO_LIKE)),
        "greeting_421": servers.scripted(greeting_then("421 4.3.2 mail.test Service not available")),
        "starttls_454": servers.smtp(tls_context=context("454"), starttls_reply="454 4.7.0 TLS not available"),
        "starttls_then_garbage": servers.scripted(starttls_then(b"500 5.5.1 Unrecognized command\r\n")),
        "reset_mid_handshake": servers.scripted(tls_by_hand(context("reset"), reset_after_octets=90)),
        "alert_client_certificate_required": servers.scripted(tls_by_hand(client_certificate_tls12)),
        "alert_unrecognized_name": servers.scripted(tls_by_hand(strict_sni)),
        "tls13_alert_after_handshake": servers.scripted(tls_by_hand(client_certificate_tls13)),
        "closes_after_every_command": servers.scripted(closes_after_every_command(answer=True)),
        "closes_without_answering": servers.scripted(closes_after_every_command(answer=False)),
        "chain_of_50": servers.smtp(tls_context=chain_of_50.server_context(cert_dir, "chain-of-50")),
    }
    odd = OddCertificates().all()
    for name, certificate in odd.items():
        ports[f"cert_{name}"] = servers.smtp(tls_context=certificate.server_context(cert_dir, f"odd-{name}"))
    # Three 39 KB certificates: over OpenSSL's 100 KiB limit for the
    # Certificate message, which is what bounds a presented chain's size.
    oversized = ServerCertificate(odd["16kb_subject"].chain_pem * 3, odd["16kb_subject"].key_pem)
    ports["certificate_list_over_100_kib"] = servers.smtp(tls_context=oversized.server_context(cert_dir, "oversized"))
    assert ports.keys() == EXPECTED_FAILURES.keys()
    return HostileServers(ports, chain_of_50)
