"""What the server's handshake messages say beyond version and cipher (pure).

Python's ssl module reports neither the key-exchange group (Python 3.15 with
OpenSSL 3.2), nor the server's signature scheme (3.15 with OpenSSL 3.5), nor
whether the server asked for a client certificate (no API at all). OpenSSL
hands every handshake message, decrypted, to a message callback
(private_api.observe_handshakes); a HandshakeRecorder keeps the few we need
while the handshake runs, and handshake_facts() reads them afterwards, once
per probe, so the callback itself stays as cheap as a dictionary store.

Message layouts: RFC 8446 section 4 (TLS 1.3), RFC 5246 section 7.4 and
RFC 8422 section 5.4 (TLS 1.2 ServerKeyExchange).
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from dataclasses import dataclass

from exporter.tls.codepoints import FFDHE_PRIME_SHA256, GROUPS, LEGACY_SIGNATURE_SCHEMES, SIGNATURE_SCHEMES

CONTENT_TYPE_HANDSHAKE = 22
_SERVER_HELLO = 2
_CERTIFICATE = 11
_SERVER_KEY_EXCHANGE = 12
_CERTIFICATE_REQUEST = 13
_CERTIFICATE_VERIFY = 15

_EXTENSION_SUPPORTED_VERSIONS = 43
_EXTENSION_KEY_SHARE = 51
_TLS1_2 = 0x0303
_TLS1_3 = 0x0304
_NAMED_CURVE = 3  # ECCurveType.named_curve (RFC 8422 section 5.4)

# What the key exchange of the negotiated suite is, as SSLContext.get_ciphers()
# names it ("kea"); TLS 1.3 suites say "kx-any" and the ServerHello decides.
KEA_TLS13 = "kx-any"
KEA_ECDHE = "kx-ecdhe"
KEA_DHE = "kx-dhe"
KEA_RSA = "kx-rsa"

# The group label for RSA key transport: no ephemeral key, no forward secrecy.
RSA_KEY_TRANSPORT = "rsa"


class HandshakeParseError(ValueError):
    """A handshake message is shorter than its own lengths say."""


@dataclass(frozen=True)
class HandshakeFacts:
    # OpenSSL's group name (x25519, secp256r1, ffdhe2048, X25519MLKEM768),
    # "dh<bits>" for a finite-field prime that is not a named group, "rsa" for
    # RSA key transport, "0x...." for a codepoint IANA had not assigned; None
    # when the handshake did not show it (PSK suites, a malformed message).
    group: str | None = None
    # What `openssl s_client` prints as "Server Temp Key" bits; None without one.
    key_exchange_bits: int | None = None
    # IANA name of the scheme the server signed the handshake with; None
    # when it did not sign (RSA key transport).
    signature_scheme: str | None = None
    client_certificate_requested: bool = False
    # A Certificate message with at least one certificate went out from us.
    client_certificate_sent: bool = False


class HandshakeRecorder:
    """Keeps the handshake messages we read later. Called from inside OpenSSL.

    ``observe`` must never raise: an exception in OpenSSL's message callback
    would abort the handshake (CPython re-raises it from do_handshake). So it
    only stores bytes; all parsing happens in handshake_facts().
    """

    __slots__ = (
        "certificate_requested",
        "certificate_verify",
        "client_certificate",
        "server_hello",
        "server_key_exchange",
    )

    def __init__(self) -> None:
        self.server_hello = b""
        self.server_key_exchange = b""
        self.certificate_verify = b""
        self.client_certificate = b""
        self.certificate_requested = False

    def observe(self, incoming: bool, message: bytes) -> None:
        """One whole handshake message, with its 4-octet header."""
        if not message:
            return
        kind = message[0]
        if incoming:
            if kind == _SERVER_HELLO:
                # A HelloRetryRequest is a ServerHello too; the real one follows it.
                self.server_hello = message
            elif kind == _SERVER_KEY_EXCHANGE:
                self.server_key_exchange = message
            elif kind == _CERTIFICATE_VERIFY:
                self.certificate_verify = message
            elif kind == _CERTIFICATE_REQUEST:
                self.certificate_requested = True
        elif kind == _CERTIFICATE:
            self.client_certificate = message


def handshake_facts(recorder: HandshakeRecorder, *, kea: str, leaf_key_type: str) -> HandshakeFacts:
    """Read the recorded messages of a completed handshake.

    ``kea`` is the negotiated suite's key exchange (SSLContext.get_ciphers());
    ``leaf_key_type`` the server certificate's key type (certificates.py), which
    names the signature where TLS 1.0 and 1.1 send no scheme.
    """
    try:
        hello = parse_server_hello(recorder.server_hello) if recorder.server_hello else None
    except HandshakeParseError:
        hello = None
    version = hello.version if hello is not None else None
    group: str | None = None
    bits: int | None = None
    scheme: str | None = None
    try:
        if version == _TLS1_3:
            if hello is not None and hello.key_share_group is not None:
                group, bits = group_name_and_bits(hello.key_share_group)
            if recorder.certificate_verify:
                scheme = scheme_name(parse_certificate_verify(recorder.certificate_verify))
        elif kea == KEA_RSA:
            group = RSA_KEY_TRANSPORT
        elif kea in (KEA_ECDHE, KEA_DHE) and recorder.server_key_exchange:
            key_exchange = parse_server_key_exchange(
                recorder.server_key_exchange, dhe=kea == KEA_DHE, has_scheme=version == _TLS1_2
            )
            group, bits = key_exchange.group, key_exchange.bits
            if key_exchange.scheme is not None:
                scheme = scheme_name(key_exchange.scheme)
            else:
                legacy = LEGACY_SIGNATURE_SCHEMES.get(leaf_key_type)
                scheme = legacy.name if legacy is not None else None
    except HandshakeParseError:
        pass  # OpenSSL accepted it, so this is our reading's limit: report what we have
    return HandshakeFacts(
        group=group,
        key_exchange_bits=bits,
        signature_scheme=scheme,
        client_certificate_requested=recorder.certificate_requested,
        client_certificate_sent=_certificate_list_nonempty(recorder.client_certificate, tls13=version == _TLS1_3),
    )


@functools.cache
def key_exchange_by_suite() -> dict[str, str]:
    """Every suite this OpenSSL knows, by OpenSSL name, to its key exchange ("kea").

    OpenSSL's own table (SSLContext.get_ciphers()), so it covers every suite
    a handshake can end with.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {suite["name"]: suite["kea"] for suite in context.get_ciphers()}


@dataclass(frozen=True)
class ServerHello:
    # The negotiated version: supported_versions when present (TLS 1.3), else legacy_version.
    version: int
    cipher_suite: int
    key_share_group: int | None


@dataclass(frozen=True)
class ServerKeyExchange:
    group: str | None
    bits: int | None
    # The SignatureAndHashAlgorithm codepoint; None before TLS 1.2.
    scheme: int | None


def parse_server_hello(message: bytes) -> ServerHello:
    body = _Reader(_body(message, _SERVER_HELLO))
    legacy_version = body.integer(2)
    body.skip(32)  # random
    body.vector(1)  # legacy_session_id_echo
    cipher_suite = body.integer(2)
    body.skip(1)  # compression method
    version = legacy_version
    group = None
    if body.remaining():  # extensions are optional before TLS 1.3
        extensions = _Reader(body.vector(2))
        while extensions.remaining():
            kind = extensions.integer(2)
            data = _Reader(extensions.vector(2))
            if kind == _EXTENSION_SUPPORTED_VERSIONS:
                version = data.integer(2)
            elif kind == _EXTENSION_KEY_SHARE:
                # KeyShareEntry in a ServerHello, selected_group in a
                # HelloRetryRequest: the group comes first in both.
                group = data.integer(2)
    return ServerHello(version=version, cipher_suite=cipher_suite, key_share_group=group)


def parse_server_key_exchange(message: bytes, *, dhe: bool, has_scheme: bool) -> ServerKeyExchange:
    body = _Reader(_body(message, _SERVER_KEY_EXCHANGE))
    group: str | None
    bits: int | None
    if dhe:
        prime = body.vector(2).lstrip(b"\0")
        body.vector(2)  # generator
        body.vector(2)  # the server's public value
        bits = int.from_bytes(prime, "big").bit_length()
        group = FFDHE_PRIME_SHA256.get(hashlib.sha256(prime).hexdigest(), f"dh{bits}")
    else:
        if body.integer(1) != _NAMED_CURVE:
            # Explicit curve parameters: deprecated (RFC 8422 section 5.1.1)
            # and refused by OpenSSL 3, so never seen in a completed handshake.
            raise HandshakeParseError("ServerKeyExchange without a named curve")
        group, bits = group_name_and_bits(body.integer(2))
        body.vector(1)  # the server's public point
    scheme = body.integer(2) if has_scheme else None
    return ServerKeyExchange(group=group, bits=bits, scheme=scheme)


def parse_certificate_verify(message: bytes) -> int:
    return _Reader(_body(message, _CERTIFICATE_VERIFY)).integer(2)


def group_name_and_bits(codepoint: int) -> tuple[str, int | None]:
    known = GROUPS.get(codepoint)
    if known is None:
        return f"0x{codepoint:04x}", None
    return known.name, known.bits


def scheme_name(codepoint: int) -> str:
    known = SIGNATURE_SCHEMES.get(codepoint)
    return known.name if known is not None else f"0x{codepoint:04x}"


def _certificate_list_nonempty(message: bytes, *, tls13: bool) -> bool:
    if not message:
        return False
    try:
        body = _Reader(_body(message, _CERTIFICATE))
        if tls13:
            body.vector(1)  # certificate_request_context
        return len(body.vector(3)) > 0
    except HandshakeParseError:
        return False


def _body(message: bytes, kind: int) -> bytes:
    if len(message) < 4 or message[0] != kind:
        raise HandshakeParseError(f"not a handshake message of type {kind}")
    length = int.from_bytes(message[1:4], "big")
    if len(message) - 4 < length:
        raise HandshakeParseError("handshake message shorter than its length")
    return message[4 : 4 + length]


class _Reader:
    """Big-endian integers and length-prefixed vectors, bounds-checked."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def remaining(self) -> int:
        return len(self._data) - self._offset

    def take(self, count: int) -> bytes:
        if count > self.remaining():
            raise HandshakeParseError("vector runs past the end of the message")
        start = self._offset
        self._offset += count
        return self._data[start : self._offset]

    def skip(self, count: int) -> None:
        self.take(count)

    def integer(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.integer(length_size))
