"""Is the presented chain trusted? Asked of OpenSSL, as mail clients ask it.

The handshake itself never verifies (so that expired or self-signed
certificates can still be inspected); the chain is judged afterwards by
OpenSSL's X509_verify_cert, the same verifier `openssl s_client` and
Postfix use. cryptography's own verifier implements the stricter WebPKI
profile and rejects private CAs that OpenSSL accepts (for example a root
without keyUsage), which would contradict what users' mail clients see.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from OpenSSL import crypto
from OpenSSL._util import lib as openssl_binding

from exporter.probe.result import TrustVerdict

log = logging.getLogger(__name__)

# OpenSSL's X509_V_ERR_* codes the probe reports with their own reason.
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10

# A verdict depends on the chain, the anchors (fixed for a store) and the
# clock. Many targets present the same few chains, probe after probe, so a
# verdict is reused until the clock could change it, and never for longer
# than this.
VERDICT_REUSE_SECONDS = 60.0
MAX_REMEMBERED_VERDICTS = 4096


class TrustStore:
    """Trust anchors (the system's, or one CA file) and a verifier over them."""

    def __init__(self, ca_file: Path | None = None) -> None:
        self.ca_file = ca_file
        # Presented chain -> (verdict, when it must be asked again).
        self._verdicts: dict[tuple[bytes, ...], tuple[TrustVerdict, float]] = {}
        self._store = crypto.X509Store()
        if ca_file is not None:
            self._store.load_locations(str(ca_file))
        else:
            _load_system_anchors(self._store)
        _verify_as_tls_client(self._store)

    def verdict(self, chain_der: Sequence[bytes], *, now: float, changes_at: float) -> TrustVerdict:
        """The verdict on a presented chain (leaf first) at ``now``.

        ``changes_at`` is the next moment a certificate of the chain starts
        or stops being valid; a remembered verdict is not used past it.
        """
        key = tuple(chain_der)
        remembered = self._verdicts.get(key)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        verdict = self.verify(chain_der)
        if len(self._verdicts) >= MAX_REMEMBERED_VERDICTS:
            del self._verdicts[next(iter(self._verdicts))]  # the oldest
        self._verdicts[key] = (verdict, min(now + VERDICT_REUSE_SECONDS, changes_at))
        return verdict

    def verify(self, chain_der: Sequence[bytes]) -> TrustVerdict:
        """Verify a presented chain (leaf first) at the current time, asking OpenSSL every time."""
        if not chain_der:
            return TrustVerdict(False, None, "no certificate presented")
        try:
            leaf, *intermediates = (crypto.load_certificate(crypto.FILETYPE_ASN1, der) for der in chain_der)
        except crypto.Error as exc:
            return TrustVerdict(False, None, f"unreadable certificate: {exc}")
        context = crypto.X509StoreContext(self._store, leaf, intermediates)
        try:
            context.verify_certificate()
        except crypto.X509StoreContextError as exc:
            code, depth, message = exc.errors
            return TrustVerdict(False, int(code), str(message), int(depth))
        return TrustVerdict(True)


def _load_system_anchors(store: crypto.X509Store) -> None:
    # The Python ssl module's paths honour SSL_CERT_FILE and SSL_CERT_DIR and
    # point at the distribution's bundle; cryptography's bundled OpenSSL was
    # built with other default paths, so we must not rely on those.
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    if cafile is None and capath is None:
        log.warning("no system trust store found; every chain will be reported untrusted")
        return
    store.load_locations(cafile, capath)


def _verify_as_tls_client(store: crypto.X509Store) -> None:
    # A TLS client checks that the leaf may serve TLS (extendedKeyUsage
    # serverAuth when present), as OpenSSL does through "ssl_server" defaults.
    # pyOpenSSL has no wrapper, so we call the OpenSSL binding it is built on.
    openssl_binding.X509_STORE_set_purpose(store._store, openssl_binding.X509_PURPOSE_SSL_SERVER)
