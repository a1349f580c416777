"""What a TLS session tells us: the negotiated parameters and the presented chain, judged."""

from __future__ import annotations

import functools
import math
import ssl
import time
from dataclasses import dataclass

from exporter.tls.certificates import CertificateFacts, certificate_facts
from exporter.tls.handshake import HandshakeFacts, handshake_facts, key_exchange_by_suite
from exporter.tls.hostname import hostname_matches
from exporter.tls.private_api import handshake_recorder, presented_chain
from exporter.tls.trust import TrustStore, TrustVerdict

# Real chains hold two to five certificates; a server may send 50 or more.
# Trust is judged on all of them, but only these many are described (their
# dates and names kept with the result), so each result stays small.
MAX_DESCRIBED_CHAIN = 10


@dataclass(frozen=True)
class TlsSession:
    """What the TLS handshake negotiated and what the server presented."""

    version: str
    cipher: str
    cipher_bits: int
    # Presented chain, leaf first, as the server sent it.
    chain: tuple[CertificateFacts, ...]
    trust: TrustVerdict
    hostname_match: bool
    # Key exchange, server signature, client certificate request (handshake.py);
    # None when the context did not observe the handshake.
    handshake: HandshakeFacts | None = None

    @property
    def leaf(self) -> CertificateFacts | None:
        return self.chain[0] if self.chain else None


def describe_session(ssl_object: ssl.SSLObject, *, server_name: str, trust_store: TrustStore) -> TlsSession:
    cipher_name, _protocol, secret_bits = ssl_object.cipher() or ("unknown", "", 0)
    chain_der = presented_chain(ssl_object)
    chain = tuple(_facts(der) for der in chain_der[:MAX_DESCRIBED_CHAIN])
    leaf = chain[0] if chain else None
    now = time.time()
    recorder = handshake_recorder(ssl_object)
    facts = None
    if recorder is not None:
        kea = key_exchange_by_suite().get(cipher_name, "")
        facts = handshake_facts(recorder, kea=kea, leaf_key_type=leaf.key_type if leaf else "unknown")
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
        handshake=facts,
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
