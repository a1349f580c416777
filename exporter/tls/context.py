"""How a probe does TLS as a client: one handshake context, and trust stores per CA file."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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
    """One TlsClient per CA file (None: the system store), built once per configuration.

    Trust stores remember verdicts, so targets that share a CA file share one.
    """

    def __init__(self, ca_files: Iterable[Path | None] = ()) -> None:
        self._context = handshake_context()
        self._clients: dict[Path | None, TlsClient] = {}
        for ca_file in ca_files:
            self.for_ca_file(ca_file)

    def for_ca_file(self, ca_file: Path | None) -> TlsClient:
        """Raises OpenSSL.crypto.Error for a file OpenSSL cannot load (the config checked it at load)."""
        client = self._clients.get(ca_file)
        if client is None:
            client = self._clients[ca_file] = TlsClient(self._context, TrustStore(ca_file))
        return client
