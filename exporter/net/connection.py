"""One SMTP client connection over asyncio: bytes in, replies out.

We own the read buffer instead of using asyncio streams because STARTTLS must
discard whatever plaintext arrived before the handshake (RFC 3207 section
4.2), and because every octet a hostile server sends has to be capped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
from typing import cast

from exporter.config.values import format_endpoint
from exporter.probe.transcript import Transcript
from exporter.smtp.reply import MAX_LINE_OCTETS, MAX_REPLY_LINES, SmtpReply, parse_reply

# OpenSSL names the reason of every alert it receives <protocol>_ALERT_<description>
# (SSLV3_ALERT_HANDSHAKE_FAILURE, TLSV13_ALERT_CERTIFICATE_REQUIRED); Python's
# ssl module exposes only that name, not the alert's number.
_RECEIVED_ALERT = re.compile(r"(?:SSLV3|TLSV1|TLSV1_[123]|TLSV13)_ALERT_[A-Z0-9_]+")

# Stop reading from the socket once this much is buffered but unparsed; the
# parser rejects any single reply long before that.
READ_BUFFER_LIMIT = MAX_LINE_OCTETS * MAX_REPLY_LINES + 65536


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the reply was complete."""


class DnsError(OSError):
    """The target's host name did not resolve to any address."""


class ConnectFailed(OSError):
    """No resolved address accepted the connection."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


class _ClientProtocol(asyncio.Protocol):
    """Bytes from the socket into ``buffer``; decrypted first once TLS is on."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        # Why the connection ended, when we know (a reset, a TLS alert).
        self.lost_because: Exception | None = None
        self.transport: asyncio.Transport | None = None
        self.tls: _Tls | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tls is not None:
            try:
                data = self.tls.receive(data)
            except ssl.SSLError as exc:  # an alert, or records that are not TLS
                self._lose(exc)
                return
        if data:
            self.buffer += data
            if len(self.buffer) > READ_BUFFER_LIMIT and self.transport is not None:
                self.transport.pause_reading()
                self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._lose(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(exc)

    def send(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise _closed_error(self.lost_because)
        if self.tls is not None:
            self.tls.send(data)
        else:
            self.transport.write(data)

    def consume(self, count: int) -> None:
        del self.buffer[:count]
        if self._paused and len(self.buffer) <= READ_BUFFER_LIMIT and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    async def wait_for_data(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _lose(self, cause: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.lost_because = cause
            if self.tls is not None:
                self.tls.connection_lost(cause)
            if self.transport is not None and cause is not None:
                self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Tls:
    """TLS over our own transport, through an SSLObject and two memory buffers.

    asyncio's start_tls stacks a second protocol and transport with their own
    buffering and flow control; measured here, that machinery cost more CPU
    than the handshake itself (bench/RESULTS.md). Driving the SSLObject
    directly keeps every byte in one place, ours.
    """

    def __init__(self, ssl_object: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 transport: asyncio.Transport) -> None:  # fmt: skip
        self.ssl_object = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._transport = transport
        self.handshake_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        self._step_handshake()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the socket; return the application data they complete."""
        self._incoming.write(data)
        if not self.handshake_done.done():
            self._step_handshake()
            if not self.handshake_done.done() or self.handshake_done.exception() is not None:
                return b""
        return self._read()

    def send(self, data: bytes) -> None:
        self.ssl_object.write(data)
        self._flush()

    def connection_lost(self, cause: Exception | None) -> None:
        if not self.handshake_done.done():
            if isinstance(cause, (ssl.SSLError, ConnectionError)):
                self.handshake_done.set_exception(cause)
            else:
                self.handshake_done.set_exception(
                    ConnectionClosed("server closed the connection during the TLS handshake")
                )

    def _step_handshake(self) -> None:
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self.handshake_done.set_exception(exc)
        else:
            self.handshake_done.set_result(None)
        finally:
            self._flush()  # our next handshake message, or an alert

    def _read(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.ssl_object.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break  # nothing more yet, or the server's close_notify
            if not chunk:
                break
            chunks.append(chunk)
        self._flush()
        return b"".join(chunks)

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._transport.write(pending)


class SmtpConnection:
    def __init__(
        self, transport: asyncio.Transport, protocol: _ClientProtocol, peer_address: str, transcript: Transcript
    ) -> None:
        self._protocol = protocol
        self._transport = transport
        self.peer_address = peer_address
        self._transcript = transcript

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        family: socket.AddressFamily,
        deadline: float,
        transcript: Transcript,
        pinned_address: str | None = None,
    ) -> SmtpConnection:
        """Resolve ``host`` and connect to its addresses in the order resolved.

        Each address but the last gets an equal share of the time left before
        ``deadline`` (loop time), so one unreachable address (often a broken
        IPv6 route) cannot use it all. With ``pinned_address``, connect there only:
        the caller has resolved the name already (a domain's MX pair).
        """
        loop = asyncio.get_running_loop()
        addresses = [pinned_address] if pinned_address is not None else await _resolve(loop, host, port, family)
        failures: list[OSError] = []
        for index, address in enumerate(addresses):
            shown = format_endpoint(address, port)
            transcript.event(f"connecting to {shown}")
            addresses_left = len(addresses) - index
            share_deadline = None
            if addresses_left > 1:
                share_deadline = loop.time() + (deadline - loop.time()) / addresses_left
            try:
                async with asyncio.timeout_at(share_deadline):
                    transport, protocol = await loop.create_connection(_ClientProtocol, address, port)
            except OSError as exc:  # TimeoutError included: only our share ran out
                failures.append(exc)
                transcript.event(f"connect to {shown} failed: {_os_error_text(exc)}")
                continue
            return cls(transport, protocol, address, transcript)
        refused = all(isinstance(exc, ConnectionRefusedError) for exc in failures)
        shown = format_endpoint(addresses[-1], port)
        raise ConnectFailed(f"{shown}: {_os_error_text(failures[-1])}", refused=refused)

    async def read_reply(self) -> SmtpReply:
        """Wait for one complete reply. Raises ReplyError or ConnectionClosed."""
        protocol = self._protocol
        while True:
            parsed = parse_reply(protocol.buffer)
            if parsed is not None:
                reply, used = parsed
                protocol.consume(used)
                self._record_reply(reply)
                return reply
            if protocol.closed:
                raise _closed_error(protocol.lost_because)
            await protocol.wait_for_data()

    async def command(self, line: str, *, shown_as: str | None = None) -> SmtpReply:
        """Send one command line and wait for its reply.

        ``shown_as`` replaces the line in the transcript; callers use it for
        anything derived from a secret.
        """
        self.send_line(line, shown_as=shown_as)
        return await self.read_reply()

    def send_line(self, line: str, *, shown_as: str | None = None) -> None:
        self._protocol.send(line.encode("utf-8") + b"\r\n")
        self._transcript.client(line if shown_as is None else shown_as)

    def send_data(self, message: bytes) -> None:
        """Send a dot-stuffed message and the line that ends DATA (RFC 5321 section 4.1.1.4)."""
        self._protocol.send(message + b".\r\n")
        self._transcript.client(f"<message of {len(message)} octets>")
        self._transcript.client(".")

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> ssl.SSLObject:
        """Upgrade to TLS. Plaintext received before this point is discarded."""
        discarded = len(self._protocol.buffer)
        if discarded:
            # RFC 3207 section 4.2: anything sent before the handshake could have
            # been injected by an attacker and must not be read as TLS-protected.
            self._transcript.event(f"discarded {discarded} octets received before the TLS handshake")
            self._protocol.consume(discarded)
        if self._protocol.closed:
            raise _closed_error(self._protocol.lost_because)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
        tls = _Tls(ssl_object, incoming, outgoing, self._transport)
        self._protocol.tls = tls
        tls.start()
        await tls.handshake_done
        return ssl_object

    def close(self) -> None:
        # We never need a graceful TLS shutdown: everything we wanted has been
        # read, and waiting for a peer's close_notify would hold the socket open.
        self._transport.abort()

    def _record_reply(self, reply: SmtpReply) -> None:
        last = len(reply.lines) - 1
        for index, text in enumerate(reply.lines):
            separator = " " if index == last else "-"
            self._transcript.server(f"{reply.code}{separator}{text}")


def _closed_error(cause: Exception | None) -> Exception:
    """What to raise for a connection that has ended, saying why when we know."""
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or str(cause)
        # An alert is the server hanging up on purpose; TLS 1.3 servers that
        # require a client certificate send it only after our handshake ended.
        if _RECEIVED_ALERT.fullmatch(cause.reason or ""):
            return ConnectionClosed(f"server closed the connection with a TLS alert: {reason}")
        return cause  # a broken record: not the TLS the server promised
    if isinstance(cause, ConnectionResetError):
        return ConnectionClosed("server reset the connection")
    return ConnectionClosed("server closed the connection")


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int, family: socket.AddressFamily) -> list[str]:
    """The addresses to try, in the resolver's order."""
    try:
        # An address needs no resolver: asyncio would still hand it to a
        # thread, which costs more than the rest of connecting.
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DnsError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DnsError(f"{host} has no addresses")
    return addresses


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    # asyncio's messages repeat the address; the errno's text is what people know.
    return os.strerror(exc.errno) if exc.errno else str(exc)
