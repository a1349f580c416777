"""One capability scan of one server: many ClientHellos, one connection each.

A coroutine on the exporter's event loop, like a probe: nothing here blocks
(no TLS library, no handshake crypto; each hello is a few hundred octets
built and one flight parsed), so cancelling the task on reload or shutdown
ends it at its next await. Hellos go out one after another: a mail server
that limits connections per client would otherwise refuse the scan.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
import weakref
from collections.abc import Iterable

from exporter.config.model import ProbeSpec, TlsMode
from exporter.scan.hello import (
    FlightReader,
    HelloOffer,
    ProtocolVersion,
    ReplyKind,
    ServerReply,
    client_hello,
    dh_group_name,
)
from exporter.scan.result import AcceptedSuite, ScanError, ScanResult, VersionScan
from exporter.scan.suites import (
    EC_GROUPS,
    FFDHE_GROUPS,
    GROUPS,
    GROUPS_BY_CODE,
    LEGACY_SUITES,
    SUITES_BY_CODE,
    TLS13_SUITES,
    CipherSuite,
    KeyExchange,
)
from exporter.smtp.ehlo import parse_ehlo
from exporter.smtp.reply import ReplyError, SmtpReply, parse_reply
from exporter.tls.ratings import Rating, cipher_rating

# Oldest first; the scan asks each in turn.
VERSIONS = (
    ProtocolVersion.SSLV3,
    ProtocolVersion.TLSV1,
    ProtocolVersion.TLSV1_1,
    ProtocolVersion.TLSV1_2,
    ProtocolVersion.TLSV1_3,
)
# A whole scan of a server accepting everything takes about 120 hellos.
DEFAULT_SCAN_TIMEOUT = 300.0
_SMTP_READ_LIMIT = 64 * 1024


class _ScanFailed(Exception):
    def __init__(self, error: ScanError, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


async def scan(target: ProbeSpec, *, scan_timeout: float = DEFAULT_SCAN_TIMEOUT) -> ScanResult:
    """Scan ``target``; failures come back as a result with an error, never raised.

    Each connection (SMTP dialogue and first flight) gets the probe's
    ``timeout``; the whole scan gets ``scan_timeout``.
    """
    started_at, started = time.time(), time.monotonic()
    scanner = _Scanner(target)
    error: ScanError | None = None
    detail = ""
    try:
        async with asyncio.timeout(scan_timeout):
            await scanner.run()
    except _ScanFailed as exc:
        error, detail = exc.error, exc.detail
    except TimeoutError:
        error, detail = ScanError.TIMEOUT, f"scan not finished within {scan_timeout:g} s"
    if error is None and not any(scanned.accepted for scanned in scanner.versions):
        error, detail = ScanError.NO_TLS, "no protocol version was accepted"
    return ScanResult(
        host=target.host,
        port=target.port,
        address=scanner.address,
        success=error is None,
        error=error,
        error_detail=detail,
        timestamp=started_at,
        duration=time.monotonic() - started,
        versions=tuple(scanner.versions) if error is None else (),
        server_cipher_order=scanner.server_cipher_order,
        secure_renegotiation=scanner.secure_renegotiation,
        extended_master_secret=scanner.extended_master_secret,
        compression=scanner.compression,
        hellos=scanner.hellos,
    )


class _Scanner:
    def __init__(self, target: ProbeSpec) -> None:
        self.target = target
        self.address: str | None = None
        self.versions: list[VersionScan] = []
        self.server_cipher_order: bool | None = None
        self.secure_renegotiation: bool | None = None
        self.extended_master_secret: bool | None = None
        self.compression: bool | None = None
        self.hellos = 0

    async def run(self) -> None:
        self.address = await self._resolve()
        first_replies: dict[ProtocolVersion, ServerReply] = {}
        for version in VERSIONS:
            reply = await self._offer(version, _suites_for(version), _groups_for(version))
            if _accepted_as(reply, version):
                first_replies[version] = reply
        for version in VERSIONS:
            if version not in first_replies:
                self.versions.append(_shared(VersionScan(version, accepted=False)))
                continue
            suites = await self._accepted_suites(version, first_replies[version])
            groups, offered, dhe_bits = await self._accepted_groups(version, suites)
            self.versions.append(_shared(VersionScan(version, True, tuple(suites), groups, dhe_bits, offered)))
        legacy = [
            scanned for scanned in self.versions if scanned.accepted and scanned.version is not ProtocolVersion.TLSV1_3
        ]
        if legacy:
            highest = legacy[-1]
            first = first_replies[highest.version]
            self.secure_renegotiation = first.secure_renegotiation
            self.extended_master_secret = first.extended_master_secret
            self.compression = await self._compresses(highest)
            self.server_cipher_order = await self._prefers_better(highest)
        else:
            self.compression = False  # RFC 8446 section 4.1.2: TLS 1.3 has no compression

    async def _accepted_suites(self, version: ProtocolVersion, first: ServerReply) -> list[AcceptedSuite]:
        """Offer every suite, take away the one the server picks, until it picks none."""
        remaining = list(_suites_for(version))
        accepted: list[AcceptedSuite] = []
        reply: ServerReply | None = first
        groups = _groups_for(version)
        while reply is not None and _accepted_as(reply, version):
            suite = SUITES_BY_CODE.get(reply.suite or -1)
            if suite is None or suite.code not in remaining:
                break  # a suite we did not offer: the server is broken, stop asking
            accepted.append(_accepted(suite))
            remaining.remove(suite.code)
            reply = await self._offer(version, remaining, groups) if remaining else None
        return accepted

    async def _accepted_groups(
        self, version: ProtocolVersion, suites: list[AcceptedSuite]
    ) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
        """The groups accepted, the groups asked about, and the DHE prime's size."""
        codes = [suite.code for suite in suites]
        accepted: list[str] = []
        if version is ProtocolVersion.TLSV1_3:
            for group in GROUPS:
                reply = await self._offer(version, codes, (group.code,))
                if _accepted_as(reply, version) and reply.group == group.code:
                    accepted.append(group.name)
            return tuple(accepted), tuple(group.name for group in GROUPS), None
        ecdhe = [s.code for s in suites if SUITES_BY_CODE[s.code].key_exchange is KeyExchange.ECDHE]
        dhe = [s.code for s in suites if SUITES_BY_CODE[s.code].key_exchange is KeyExchange.DHE]
        if ecdhe:
            for group in EC_GROUPS:
                reply = await self._offer(version, ecdhe, (group.code,))
                if _accepted_as(reply, version) and reply.group == group.code:
                    accepted.append(group.name)
        dhe_bits: int | None = None
        if dhe:
            for group in FFDHE_GROUPS:
                # RFC 7919: the ffdhe groups in supported_groups; a server
                # that ignores them answers with its own prime, which names no group.
                reply = await self._offer(version, dhe, (group.code,))
                if _accepted_as(reply, version) and reply.dh_prime:
                    dhe_bits = int.from_bytes(reply.dh_prime, "big").bit_length()
                    if dh_group_name(reply.dh_prime) == group.name:
                        accepted.append(group.name)
        # A group is asked about only with suites that use it.
        offered = (*(EC_GROUPS if ecdhe else ()), *(FFDHE_GROUPS if dhe else ()))
        return tuple(accepted), tuple(group.name for group in offered), dhe_bits

    async def _compresses(self, scanned: VersionScan) -> bool:
        codes = [suite.code for suite in scanned.suites]
        reply = await self._offer(scanned.version, codes, _groups_for(scanned.version), compression=True)
        return _accepted_as(reply, scanned.version) and reply.compression != 0

    async def _prefers_better(self, scanned: VersionScan) -> bool | None:
        """internet.nl's cipher-order test: worse suites offered first, a better one picked?"""
        better = [s for s in scanned.suites if s.rating in (Rating.GOOD, Rating.SUFFICIENT)]
        worse = [s for s in scanned.suites if s.rating in (Rating.PHASE_OUT, Rating.INSUFFICIENT)]
        if not better or not worse:
            return None
        # Worst first: a server that follows the client's order picks the worst.
        worse.sort(key=lambda suite: suite.rating is Rating.PHASE_OUT)
        offered = [suite.code for suite in (*worse, *better)]
        reply = await self._offer(scanned.version, offered, _groups_for(scanned.version))
        if not _accepted_as(reply, scanned.version):
            return None
        suite = SUITES_BY_CODE.get(reply.suite or -1)
        return suite is not None and cipher_rating(suite.name) in (Rating.GOOD, Rating.SUFFICIENT)

    async def _offer(
        self, version: ProtocolVersion, suites: Iterable[int], groups: Iterable[int], *, compression: bool = False
    ) -> ServerReply:
        offer = HelloOffer(version, tuple(suites), tuple(groups), self.target.server_name, compression)
        # TLS 1.3 middlebox compatibility (RFC 8446 appendix D.4) wants a session id.
        session_id = os.urandom(32) if version is ProtocolVersion.TLSV1_3 else b""
        hello = client_hello(offer, os.urandom(32), session_id)
        self.hellos += 1
        return await self._exchange(hello)

    async def _exchange(self, hello: bytes) -> ServerReply:
        target = self.target
        assert self.address is not None  # noqa: S101 - resolved before the first offer
        try:
            async with asyncio.timeout(target.timeout):
                reader, writer = await asyncio.open_connection(self.address, target.port, limit=_SMTP_READ_LIMIT)
        except ConnectionRefusedError as exc:
            raise _ScanFailed(ScanError.CONNECT_REFUSED, str(exc)) from exc
        except (OSError, TimeoutError) as exc:
            raise _ScanFailed(ScanError.CONNECT_FAILED, str(exc) or "connect timed out") from exc
        try:
            async with asyncio.timeout(target.timeout):
                if target.tls is TlsMode.STARTTLS:
                    await _starttls(reader, writer, target.ehlo_name)
            flight = FlightReader()
            writer.write(hello)
            try:
                async with asyncio.timeout(target.timeout):
                    while flight.reply is None:
                        data = await reader.read(65536)
                        if not data:
                            return flight.end_of_stream()
                        flight.feed(data)
            except TimeoutError:
                # A server that sits on a hello it does not like has not accepted it.
                return flight.end_of_stream()
            except OSError:  # reset after our hello: a refusal
                return flight.end_of_stream()
            assert flight.reply is not None  # noqa: S101 - the loop ends only with a reply
            return flight.reply
        except TimeoutError as exc:
            raise _ScanFailed(ScanError.TIMEOUT, "SMTP dialogue before the hello timed out") from exc
        except OSError as exc:
            raise _ScanFailed(ScanError.SMTP_PROTOCOL, f"connection lost before the hello: {exc}") from exc
        finally:
            writer.transport.abort()  # no QUIT: the server is mid-handshake and waits for nothing

    async def _resolve(self) -> str:
        if self.target.connect_address is not None:
            return self.target.connect_address  # one (MX host, address) pair: that address, as the probe does
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.target.host,
                self.target.port,
                family=self.target.address_family.socket_family,
                type=socket.SOCK_STREAM,
            )
        except socket.gaierror as exc:
            raise _ScanFailed(ScanError.DNS, f"{self.target.host}: {exc.strerror}") from exc
        if not infos:
            raise _ScanFailed(ScanError.DNS, f"{self.target.host}: no address")
        return str(infos[0][4][0])


async def _starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ehlo_name: str) -> None:
    buffer = bytearray()
    banner = await _read_reply(reader, buffer)
    if banner.code != 220:
        raise _ScanFailed(ScanError.BANNER, str(banner))
    writer.write(f"EHLO {ehlo_name}\r\n".encode())
    ehlo = await _read_reply(reader, buffer)
    if ehlo.code != 250 or not parse_ehlo(ehlo).starttls:
        raise _ScanFailed(ScanError.STARTTLS_NOT_OFFERED, str(ehlo))
    writer.write(b"STARTTLS\r\n")
    reply = await _read_reply(reader, buffer)
    if reply.code != 220:
        raise _ScanFailed(ScanError.STARTTLS_REJECTED, str(reply))
    # Anything after the 220 is plaintext we discard (RFC 3207 section 4.2):
    # the hello goes out now and only the server's answer to it is read.


async def _read_reply(reader: asyncio.StreamReader, buffer: bytearray) -> SmtpReply:
    while True:
        try:
            parsed = parse_reply(buffer)
        except ReplyError as exc:
            raise _ScanFailed(ScanError.SMTP_PROTOCOL, str(exc)) from exc
        if parsed is not None:
            reply, used = parsed
            del buffer[:used]
            return reply
        data = await reader.read(_SMTP_READ_LIMIT)
        if not data:
            raise _ScanFailed(ScanError.SMTP_PROTOCOL, "connection closed during the SMTP dialogue")
        buffer += data


def _suites_for(version: ProtocolVersion) -> tuple[int, ...]:
    suites: tuple[CipherSuite, ...] = TLS13_SUITES if version is ProtocolVersion.TLSV1_3 else LEGACY_SUITES
    return tuple(suite.code for suite in suites)


def _groups_for(version: ProtocolVersion) -> tuple[int, ...]:
    if version is ProtocolVersion.TLSV1_3:
        return tuple(group.code for group in GROUPS)
    return tuple(group.code for group in (*EC_GROUPS, *FFDHE_GROUPS))


def _accepted_as(reply: ServerReply, version: ProtocolVersion) -> bool:
    return reply.kind in (ReplyKind.SERVER_HELLO, ReplyKind.HELLO_RETRY) and reply.version is version


# Servers of one make and configuration answer a version alike; their scans hold one
# VersionScan for as long as any result holds it.
_versions_seen: weakref.WeakValueDictionary[VersionScan, VersionScan] = weakref.WeakValueDictionary()


def _shared(scanned: VersionScan) -> VersionScan:
    return _versions_seen.setdefault(scanned, scanned)


@functools.cache  # a value per suite of a fixed table: shared by every result
def _accepted(suite: CipherSuite) -> AcceptedSuite:
    return AcceptedSuite(suite.name, suite.code, cipher_rating(suite.name), suite.forward_secret)


def group_name(code: int) -> str:
    group = GROUPS_BY_CODE.get(code)
    return group.name if group is not None else f"0x{code:04x}"
