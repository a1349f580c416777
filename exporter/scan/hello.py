"""ClientHellos we write ourselves, and what the server's first flight says to them.

Pure functions over bytes. The scan never completes a handshake: whether a
server accepts a version, a suite or a group is decided by its ServerHello (or
HelloRetryRequest) and, for (EC)DHE in TLS 1.2 and older, by the group or prime
in its ServerKeyExchange; all of that is sent in the clear (RFC 5246 section
7.3, RFC 8446 section 4.1.4). This is how testssl.sh probes "via sockets".
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, replace

from exporter.scan.suites import EMPTY_RENEGOTIATION_INFO_SCSV, SUITES_BY_CODE, KeyExchange


class ProtocolVersion(enum.StrEnum):
    # The label values of smtp_tls_version_accepted: OpenSSL's names, as in smtp_tls_version_info.
    SSLV3 = "SSLv3"
    TLSV1 = "TLSv1"
    TLSV1_1 = "TLSv1.1"
    TLSV1_2 = "TLSv1.2"
    TLSV1_3 = "TLSv1.3"

    @property
    def wire(self) -> int:
        return _WIRE[self]


_WIRE = {
    ProtocolVersion.SSLV3: 0x0300,
    ProtocolVersion.TLSV1: 0x0301,
    ProtocolVersion.TLSV1_1: 0x0302,
    ProtocolVersion.TLSV1_2: 0x0303,
    ProtocolVersion.TLSV1_3: 0x0304,
}
VERSION_BY_WIRE = {wire: version for version, wire in _WIRE.items()}

_HANDSHAKE, _ALERT = 22, 21
_CLIENT_HELLO, _SERVER_HELLO, _SERVER_KEY_EXCHANGE, _SERVER_HELLO_DONE = 1, 2, 12, 14
_EXT_SERVER_NAME = 0x0000
_EXT_SUPPORTED_GROUPS = 0x000A
_EXT_EC_POINT_FORMATS = 0x000B
_EXT_SIGNATURE_ALGORITHMS = 0x000D
_EXT_EXTENDED_MASTER_SECRET = 0x0017
_EXT_SUPPORTED_VERSIONS = 0x002B
_EXT_KEY_SHARE = 0x0033
_EXT_RENEGOTIATION_INFO = 0xFF01
# RFC 8446 section 4.1.3: a HelloRetryRequest is a ServerHello with this random.
_HELLO_RETRY_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
# Every signature scheme, old ones included: the scan asks what the server
# accepts, so it must not be refused for a signature it could have made.
_SIGNATURE_SCHEMES = (
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080A, 0x080B,
    0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0203, 0x0201, 0x0202,
)  # fmt: skip
# The most a first flight may take before we give up on it: a certificate
# chain of 50 certificates fits; an endless one does not.
MAX_FLIGHT_OCTETS = 256 * 1024
_MAX_RECORD = 2**14 + 2048


@dataclass(frozen=True)
class HelloOffer:
    version: ProtocolVersion
    suites: tuple[int, ...]
    groups: tuple[int, ...]
    server_name: str | None = None
    # Offer DEFLATE before "null" (RFC 3749), to learn whether the server compresses.
    offer_compression: bool = False


def client_hello(offer: HelloOffer, random: bytes, session_id: bytes = b"") -> bytes:
    """The ClientHello for ``offer``, as one TLS record."""
    tls13 = offer.version is ProtocolVersion.TLSV1_3
    # TLS 1.3 hellos are TLS 1.2 hellos with supported_versions (RFC 8446 section 4.1.2).
    legacy_version = ProtocolVersion.TLSV1_2.wire if tls13 else offer.version.wire
    suites = (*offer.suites, EMPTY_RENEGOTIATION_INFO_SCSV) if not tls13 else offer.suites
    compression = b"\x01\x00" if offer.offer_compression and not tls13 else b"\x00"
    body = (
        struct.pack("!H", legacy_version)
        + random
        + _vector8(session_id)
        + _vector16(b"".join(struct.pack("!H", code) for code in suites))
        + _vector8(compression)
    )
    if offer.version is not ProtocolVersion.SSLV3:  # SSLv3 hellos carry no extensions
        body += _vector16(_extensions(offer))
    message = bytes([_CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body
    # Record version 0x0301 for everything but SSLv3: some servers reject a
    # higher record version in the first flight (RFC 8446 appendix D.1).
    record_version = 0x0300 if offer.version is ProtocolVersion.SSLV3 else 0x0301
    return struct.pack("!BHH", _HANDSHAKE, record_version, len(message)) + message


def _extensions(offer: HelloOffer) -> bytes:
    parts: list[bytes] = []
    name = offer.server_name
    if name and not _is_ip_address(name):  # RFC 6066 section 3: no IP literals in SNI
        encoded = name.encode("idna")
        parts.append(_extension(_EXT_SERVER_NAME, _vector16(b"\x00" + _vector16(encoded))))
    if offer.groups:
        parts.append(_extension(_EXT_SUPPORTED_GROUPS, _vector16(b"".join(struct.pack("!H", g) for g in offer.groups))))
    parts.append(_extension(_EXT_EC_POINT_FORMATS, _vector8(b"\x00")))
    if offer.version in (ProtocolVersion.TLSV1_2, ProtocolVersion.TLSV1_3):
        # RFC 5246 section 7.4.1.4.1: only hellos offering TLS 1.2 may carry it.
        schemes = b"".join(struct.pack("!H", scheme) for scheme in _SIGNATURE_SCHEMES)
        parts.append(_extension(_EXT_SIGNATURE_ALGORITHMS, _vector16(schemes)))
    parts.append(_extension(_EXT_EXTENDED_MASTER_SECRET, b""))
    if offer.version is ProtocolVersion.TLSV1_3:
        parts.append(_extension(_EXT_SUPPORTED_VERSIONS, _vector8(struct.pack("!H", 0x0304))))
        # An empty key_share asks the server to name its group in a
        # HelloRetryRequest (RFC 8446 section 4.2.8): no key is computed at all.
        parts.append(_extension(_EXT_KEY_SHARE, _vector16(b"")))
    return b"".join(parts)


class ReplyKind(enum.StrEnum):
    SERVER_HELLO = "server_hello"
    HELLO_RETRY = "hello_retry"
    ALERT = "alert"
    # Not TLS, or TLS we cannot read: the server did not accept the offer.
    MALFORMED = "malformed"


@dataclass(frozen=True)
class ServerReply:
    kind: ReplyKind
    version: ProtocolVersion | None = None
    suite: int | None = None
    compression: int = 0
    # TLS 1.3: the key_share group; TLS 1.2 and older: ServerKeyExchange's named curve.
    group: int | None = None
    # TLS 1.2 and older with DHE: the prime of ServerKeyExchange, big-endian.
    dh_prime: bytes | None = None
    secure_renegotiation: bool = False
    extended_master_secret: bool = False
    alert: int | None = None
    detail: str = ""


class FlightReader:
    """Feed the server's bytes in; ``reply`` is set once the first flight says enough."""

    def __init__(self) -> None:
        self._records = bytearray()
        self._handshake = bytearray()
        self._received = 0
        self._hello: ServerReply | None = None
        self.reply: ServerReply | None = None

    def feed(self, data: bytes) -> ServerReply | None:
        if self.reply is not None:
            return self.reply
        self._received += len(data)
        self._records += data
        try:
            self._consume()
        except _Malformed as exc:
            self.reply = ServerReply(ReplyKind.MALFORMED, detail=str(exc))
        if self.reply is None and self._received > MAX_FLIGHT_OCTETS:
            self.reply = self._hello or ServerReply(ReplyKind.MALFORMED, detail="first flight too long")
        return self.reply

    def end_of_stream(self) -> ServerReply:
        """The server closed the connection: what we have is all there is."""
        if self.reply is None:
            self.reply = self._hello or ServerReply(ReplyKind.MALFORMED, detail="connection closed before a reply")
        return self.reply

    def _consume(self) -> None:
        while self.reply is None and len(self._records) >= 5:
            record_type, _version, length = struct.unpack_from("!BHH", self._records)
            if record_type not in (20, 21, 22, 23) or length > _MAX_RECORD:
                raise _Malformed(f"not a TLS record (type {record_type}, length {length})")
            if len(self._records) < 5 + length:
                return
            fragment = bytes(self._records[5 : 5 + length])
            del self._records[: 5 + length]
            if record_type == _ALERT:
                if len(fragment) < 2:
                    raise _Malformed("short alert")
                self.reply = self._hello or ServerReply(ReplyKind.ALERT, alert=fragment[1])
            elif record_type == _HANDSHAKE:
                self._handshake += fragment
                self._read_messages()
            elif self._hello is not None:
                # TLS 1.3's compatibility ChangeCipherSpec or encrypted records:
                # everything readable has been read.
                self.reply = self._hello

    def _read_messages(self) -> None:
        while self.reply is None and len(self._handshake) >= 4:
            message_type = self._handshake[0]
            length = int.from_bytes(self._handshake[1:4], "big")
            if len(self._handshake) < 4 + length:
                return
            body = bytes(self._handshake[4 : 4 + length])
            del self._handshake[: 4 + length]
            if self._hello is None:
                if message_type != _SERVER_HELLO:
                    raise _Malformed(f"handshake message {message_type} before ServerHello")
                self._hello = _server_hello(body)
                if not self._key_exchange_follows(self._hello):
                    self.reply = self._hello
            elif message_type == _SERVER_KEY_EXCHANGE:
                self.reply = _with_key_exchange(self._hello, body)
            elif message_type == _SERVER_HELLO_DONE:
                self.reply = self._hello

    @staticmethod
    def _key_exchange_follows(hello: ServerReply) -> bool:
        if hello.kind is not ReplyKind.SERVER_HELLO or hello.version is ProtocolVersion.TLSV1_3:
            return False
        suite = SUITES_BY_CODE.get(hello.suite or -1)
        return suite is not None and suite.key_exchange in (KeyExchange.ECDHE, KeyExchange.DHE, KeyExchange.ANON)


class _Malformed(ValueError):
    pass


def _server_hello(body: bytes) -> ServerReply:
    reader = _Reader(body)
    wire_version = reader.uint(2)
    random = reader.take(32)
    reader.take(reader.uint(1))  # session id
    suite = reader.uint(2)
    compression = reader.uint(1)
    extensions: dict[int, bytes] = {}
    if reader.remaining():
        block = _Reader(reader.take(reader.uint(2)))
        while block.remaining():
            kind = block.uint(2)
            extensions[kind] = block.take(block.uint(2))
    selected = extensions.get(_EXT_SUPPORTED_VERSIONS)
    if selected is not None:
        if len(selected) != 2:
            raise _Malformed("bad supported_versions")
        wire_version = int.from_bytes(selected, "big")
    version = VERSION_BY_WIRE.get(wire_version)
    if version is None:
        raise _Malformed(f"unknown version 0x{wire_version:04x}")
    hello_retry = random == _HELLO_RETRY_RANDOM
    group = None
    share = extensions.get(_EXT_KEY_SHARE)
    if share is not None and len(share) >= 2:
        group = int.from_bytes(share[:2], "big")
    return ServerReply(
        ReplyKind.HELLO_RETRY if hello_retry else ReplyKind.SERVER_HELLO,
        version=version,
        suite=suite,
        compression=compression,
        group=group,
        secure_renegotiation=_EXT_RENEGOTIATION_INFO in extensions,
        extended_master_secret=_EXT_EXTENDED_MASTER_SECRET in extensions,
    )


def _with_key_exchange(hello: ServerReply, body: bytes) -> ServerReply:
    suite = SUITES_BY_CODE[hello.suite or 0]
    reader = _Reader(body)
    if suite.key_exchange is KeyExchange.ECDHE or (suite.key_exchange is KeyExchange.ANON and "ECDH" in suite.name):
        if reader.uint(1) != 3:  # RFC 8422 section 5.4: only named_curve is allowed
            raise _Malformed("ServerKeyExchange without a named curve")
        return replace(hello, group=reader.uint(2))
    return replace(hello, dh_prime=reader.take(reader.uint(2)).lstrip(b"\x00"))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, count: int) -> bytes:
        if self._at + count > len(self._data):
            raise _Malformed("message ends early")
        chunk = self._data[self._at : self._at + count]
        self._at += count
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def remaining(self) -> int:
        return len(self._data) - self._at


def _vector8(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _vector16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def dh_group_name(prime: bytes) -> str | None:
    """The RFC 7919 group a DHE prime is, by size, or None for any other prime.

    Every RFC 7919 prime starts with 64 one bits followed by the digits of e
    (0xADF85458A2BB4A9A...) and ends with 64 one bits; RFC 3526's start with
    the digits of pi (0xC90FDAA2...). Size and that shape identify the group.
    """
    bits = len(prime) * 8
    if prime.startswith(bytes.fromhex("FFFFFFFFFFFFFFFFADF85458A2BB4A9A")) and prime.endswith(b"\xff" * 8):
        name = f"ffdhe{bits}"
        return name if bits in (2048, 3072, 4096, 6144, 8192) else None
    return None
