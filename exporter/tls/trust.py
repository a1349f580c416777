"""Is the presented chain trusted? Asked of OpenSSL, as mail clients ask it.

The handshake itself never verifies (so that expired or self-signed
certificates can still be inspected); the chain is judged afterwards by
OpenSSL's X509_verify_cert, the same verifier `openssl s_client` and
Postfix use. cryptography's own verifier implements the stricter WebPKI
profile and rejects private CAs that OpenSSL accepts (for example a root
without keyUsage), which would contradict what users' mail clients see.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from OpenSSL import crypto

from exporter.tls.private_api import verify_as_tls_server_certificate

log = logging.getLogger(__name__)

# A verdict depends on the chain, the anchors (fixed for a store) and the
# clock. Many targets present the same few chains, probe after probe, so a
# verdict is reused until the clock could change it, and never for longer
# than this.
VERDICT_REUSE_SECONDS = 60.0
MAX_REMEMBERED_VERDICTS = 4096


@dataclass(frozen=True)
class TrustVerdict:
    """OpenSSL's opinion of the presented chain, as a mail client would form it."""

    trusted: bool
    # OpenSSL's X509_V_ERR_* code and text, e.g. 10 "certificate has expired".
    error_code: int | None = None
    error_message: str | None = None
    # Position in the chain of the certificate OpenSSL complained about (0 = leaf).
    error_depth: int | None = None


def ca_file_problem(ca_file: Path) -> str | None:
    """Why OpenSSL cannot use ``ca_file`` as trust anchors, or None when it can."""
    try:
        crypto.X509Store().load_locations(str(ca_file))
    except crypto.Error as exc:
        return f"OpenSSL cannot load {ca_file}: {exc}"
    return None


class TrustStore:
    """Trust anchors (the system's, or one CA file) and a verifier over them."""

    def __init__(self, ca_file: Path | None = None) -> None:
        self.ca_file = ca_file
        # Presented chain -> (verdict, when it must be asked again).
        self._verdicts: dict[tuple[bytes, ...], tuple[TrustVerdict, float]] = {}
        # Built now so a CA file OpenSSL cannot read fails here, not in a probe.
        self._store = self._new_store(None)
        self._store_time: int | None = None

    def _new_store(self, at: int | None) -> crypto.X509Store:
        store = crypto.X509Store()
        if self.ca_file is not None:
            store.load_locations(str(self.ca_file))
        else:
            _load_system_anchors(store)
        verify_as_tls_server_certificate(store)
        if at is not None:
            store.set_time(datetime.datetime.fromtimestamp(at, datetime.UTC))
        return store

    def _store_at(self, at: float) -> crypto.X509Store:
        """A store that verifies as of ``at`` (whole seconds, as OpenSSL keeps time).

        OpenSSL takes a store's verification time only once (a second
        X509_STORE_set1_param keeps the first time), so another second needs a
        new store: about 5 ms with the system bundle, at most once a second,
        and only when a verdict is not remembered.
        """
        second = int(at)
        if self._store_time != second:
            self._store, self._store_time = self._new_store(second), second
        return self._store

    def verdict(self, chain_der: Sequence[bytes], *, now: float, changes_at: float) -> TrustVerdict:
        """The verdict on a presented chain (leaf first) at ``now``.

        ``changes_at`` is the next moment a certificate of the chain starts
        or stops being valid; a remembered verdict is not used past it.
        """
        key = tuple(chain_der)
        remembered = self._verdicts.get(key)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        verdict = self.verify(chain_der, at=now)
        if len(self._verdicts) >= MAX_REMEMBERED_VERDICTS:
            del self._verdicts[next(iter(self._verdicts))]  # the oldest
        self._verdicts[key] = (verdict, min(now + VERDICT_REUSE_SECONDS, changes_at))
        return verdict

    def verify(self, chain_der: Sequence[bytes], *, at: float) -> TrustVerdict:
        """Verify a presented chain (leaf first) as of the Unix time ``at``, asking OpenSSL every time.

        The time is explicit (OpenSSL's X509_VERIFY_PARAM time) so the verdict
        and the reuse bookkeeping above read one clock, ours.
        """
        if not chain_der:
            return TrustVerdict(False, None, "no certificate presented")
        try:
            leaf, *intermediates = (crypto.load_certificate(crypto.FILETYPE_ASN1, der) for der in chain_der)
        except crypto.Error as exc:
            return TrustVerdict(False, None, f"unreadable certificate: {exc}")
        context = crypto.X509StoreContext(self._store_at(at), leaf, intermediates)
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
