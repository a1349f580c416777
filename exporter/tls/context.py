"""How a probe does TLS as a client: a handshake context per client certificate, trust stores per CA file."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from exporter.config.model import ClientCertificate, ProbeSpec, TlsClientKey
from exporter.tls.client_certificate import load_into
from exporter.tls.private_api import observe_handshakes
from exporter.tls.trust import TrustStore

# SSL_OP_LEGACY_SERVER_CONNECT; the ssl module names it only from Python 3.12.
_OP_LEGACY_SERVER_CONNECT = 0x4


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
    # The key exchange, the server's signature and a CertificateRequest are
    # read from the handshake messages (tls/handshake.py); measured cost in
    # bench/RESULTS.md.
    observe_handshakes(context)
    return context


@dataclass(frozen=True)
class TlsClient:
    """What a probe needs to speak and judge TLS: the handshake context and the anchors."""

    handshake_context: ssl.SSLContext
    trust_store: TrustStore


class TlsClients:
    """One TlsClient per (CA file, client certificate), built once per configuration.

    Trust stores remember verdicts, so targets that share a CA file share one.
    Handshake contexts depend only on the client certificate (verification
    is off in the handshake), so each distinct certificate gets one context
    with load_cert_chain, shared by every CA file, and targets without one
    share the plain context. OpenSSL reads the key file once, here.
    """

    def __init__(self, keys: Iterable[TlsClientKey] = ()) -> None:
        self._contexts: dict[ClientCertificate | None, ssl.SSLContext] = {None: handshake_context()}
        self._trust_stores: dict[Path | None, TrustStore] = {}
        self._clients: dict[TlsClientKey, TlsClient] = {}
        for ca_file, client_certificate in keys:
            self.client(ca_file, client_certificate)

    def for_spec(self, spec: ProbeSpec) -> TlsClient:
        return self.client(spec.ca_file, spec.client_certificate)

    def client(self, ca_file: Path | None, client_certificate: ClientCertificate | None = None) -> TlsClient:
        """Raises OpenSSL.crypto.Error for a CA file and ssl.SSLError for a client
        certificate that OpenSSL cannot load (the config checked both at load)."""
        key = (ca_file, client_certificate)
        client = self._clients.get(key)
        if client is None:
            context = self._contexts.get(client_certificate)
            if context is None and client_certificate is not None:
                context = handshake_context()
                load_into(context, client_certificate)
                self._contexts[client_certificate] = context
            trust_store = self._trust_stores.get(ca_file)
            if trust_store is None:
                trust_store = self._trust_stores[ca_file] = TrustStore(ca_file)
            client = self._clients[key] = TlsClient(context or self._contexts[None], trust_store)
        return client

    @property
    def handshake_contexts(self) -> int:
        """How many handshake contexts exist (one plus one per client certificate)."""
        return len(self._contexts)
