"""The TLS side of a probe: the handshake context and what a session tells us."""

from __future__ import annotations

import functools
import math
import ssl
import time
import warnings
from typing import Any

from exporter.probe.result import TlsSession
from exporter.tls.certificates import CertificateFacts, certificate_facts
from exporter.tls.hostname import hostname_matches
from exporter.tls.trust import TrustStore

# SSL_OP_LEGACY_SERVER_CONNECT; the ssl module names it only from Python 3.12.
_OP_LEGACY_SERVER_CONNECT = 0x4
# _ssl.ENCODING_DER, for _ssl.Certificate.public_bytes on Python 3.11 and 3.12.
_ENCODING_DER = 2

# Real chains hold two to five certificates; a server may send 50 or more.
# Trust is judged on all of them, but only these many are described (their
# dates and names kept with the result), so each result stays small.
MAX_DESCRIBED_CHAIN = 10

# What `smtp_tls_version` reports for each protocol name OpenSSL returns.
TLS_VERSION_NUMBERS = {"SSLv3": 0.3, "TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


def handshake_context() -> ssl.SSLContext:
    """A client context that completes the handshake with any server it can.

    Verification is off here on purpose: the chain is judged after the
    handshake (trust.py), so an expired or self-signed certificate is still
    read and reported. Old protocol versions, small keys and weak ciphers are
    allowed for the same reason: the probe reports what was negotiated and the
    alert rules judge it, instead of the handshake failing without details.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # Deprecated for connections that want security; we want to see
        # what a server negotiates, including versions that deserve an alert.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    # OpenSSL 3 refuses TLS 1.0/1.1 and SHA-1 signatures above level 0.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.options |= _OP_LEGACY_SERVER_CONNECT
    return context


def presented_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server sent, leaf first, as DER."""
    public: Any = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:  # Python 3.13 and later
        return [bytes(der) for der in public() or []]
    # Python 3.11 and 3.12 have the same method on the private _sslobj,
    # returning _ssl.Certificate objects.
    private = ssl_object._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [certificate.public_bytes(_ENCODING_DER) for certificate in private or []]


def describe_session(ssl_object: ssl.SSLObject, *, server_name: str, trust_store: TrustStore) -> TlsSession:
    cipher_name, _protocol, secret_bits = ssl_object.cipher() or ("unknown", "", 0)
    chain_der = presented_chain(ssl_object)
    chain = tuple(_facts(der) for der in chain_der[:MAX_DESCRIBED_CHAIN])
    leaf = chain[0] if chain else None
    now = time.time()
    return TlsSession(
        version=ssl_object.version() or "unknown",
        cipher=cipher_name,
        cipher_bits=secret_bits or 0,
        chain=chain,
        trust=trust_store.verdict(chain_der, now=now, changes_at=_next_validity_change(chain, now)),
        hostname_match=leaf is not None
        and hostname_matches(
            server_name,
            dns_names=leaf.dns_names,
            ip_addresses=leaf.ip_addresses,
            common_names=leaf.common_names,
        ),
    )


# Reading a certificate costs more than the rest of a probe's Python work,
# and thousands of targets present the same few certificates again and again.
_facts = functools.lru_cache(maxsize=2048)(certificate_facts)


def _next_validity_change(chain: tuple[CertificateFacts, ...], now: float) -> float:
    moments = [
        moment
        for certificate in chain
        for moment in (certificate.not_before, certificate.not_after)
        if moment is not None and moment > now
    ]
    return min(moments, default=math.inf)
