"""The HTTPS side of ``--web.config.file``: an ``ssl.SSLContext`` built from ``tls_server_config``."""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from exporter.config.loader import ConfigError
from exporter.config.model import ConfigProblem
from exporter.web.web_config import ClientAuth, TlsServerConfig, WebConfig

_VERIFY_MODES = {
    ClientAuth.NO_CLIENT_CERT: ssl.CERT_NONE,
    ClientAuth.VERIFY_CLIENT_CERT_IF_GIVEN: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRE_AND_VERIFY_CLIENT_CERT: ssl.CERT_REQUIRED,
}


def server_context(config: WebConfig) -> ssl.SSLContext | None:
    """The context to serve with, or None for plain HTTP. Raises ConfigError, located at the key at fault."""
    tls = config.tls
    if tls is None:
        return None
    problems: list[ConfigProblem] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = tls.min_version, tls.max_version
    ciphers = ":".join(tls.openssl_ciphers) or "DEFAULT"
    if tls.min_version < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS 1.0 and 1.1 at security level 1 and above;
        # a file that allows them means it.
        ciphers += ":@SECLEVEL=0"
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        problems.append(config.problem("tls_server_config.cipher_suites", "OpenSSL offers none of these ciphers"))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    for curve in tls.curves:
        try:
            context.set_ecdh_curve(curve)
        except (ValueError, ssl.SSLError):
            problems.append(config.problem("tls_server_config.curve_preferences", f"OpenSSL has no curve {curve}"))
    # Only HTTP/1.1 is served; saying so spares an HTTP/2 client a failed attempt.
    context.set_alpn_protocols(["http/1.1"])
    problems += _load_certificate(context, tls, config)
    context.verify_mode = _VERIFY_MODES.get(tls.client_auth, ssl.CERT_NONE)
    if tls.client_auth != ClientAuth.NO_CLIENT_CERT:
        problems += _load_client_cas(context, tls, config)
    if problems:
        raise ConfigError(problems)
    return context


def _load_certificate(context: ssl.SSLContext, tls: TlsServerConfig, config: WebConfig) -> list[ConfigProblem]:
    where = "tls_server_config.cert_file" if tls.cert_file else "tls_server_config.cert"
    for path, key in ((tls.cert_file, "cert_file"), (tls.key_file, "key_file")):
        if path is not None and not os.access(path, os.R_OK):
            return [config.problem(f"tls_server_config.{key}", f"cannot read {path}")]
    try:
        with contextlib.ExitStack() as stack:
            cert_file = tls.cert_file or stack.enter_context(_in_memory_file(tls.cert_pem or ""))
            key_text = tls.key_pem.reveal() if tls.key_pem is not None else ""
            key_file = tls.key_file or stack.enter_context(_in_memory_file(key_text))
            context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        # OpenSSL's reason (KEY_VALUES_MISMATCH, NO_START_LINE...), never the PEM.
        return [config.problem(where, f"OpenSSL cannot load the certificate and key: {exc.reason or exc}")]
    except OSError as exc:
        return [config.problem(where, f"cannot load the certificate and key: {exc.strerror or exc}")]
    return []


@contextlib.contextmanager
def _in_memory_file(content: str) -> Iterator[Path]:
    """A path to ``content`` for load_cert_chain, which reads files only.

    On Linux an anonymous memory file, so an inline key never touches a disk
    (and a read-only root file system, as in the Kubernetes manifests, is no
    obstacle); elsewhere a 0600 file in a private temporary directory,
    removed at once.
    """
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        descriptor = os.memfd_create("smtp-tls-exporter-pem", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, content.encode("utf-8"))
            yield Path(f"/proc/self/fd/{descriptor}")
        finally:
            os.close(descriptor)
        return
    with tempfile.TemporaryDirectory(prefix="smtp-tls-exporter-") as directory:
        path = Path(directory) / "pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(content)
        yield path


def _load_client_cas(context: ssl.SSLContext, tls: TlsServerConfig, config: WebConfig) -> list[ConfigProblem]:
    try:
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=tls.client_ca_file)
        elif tls.client_ca_pem is not None:
            context.load_verify_locations(cadata=tls.client_ca_pem)
        else:
            # Go verifies client certificates against the system roots when no
            # client CA is given; so do we.
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    except (ssl.SSLError, OSError, ValueError) as exc:
        where = "tls_server_config.client_ca_file" if tls.client_ca_file else "tls_server_config.client_ca"
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        return [config.problem(where, f"cannot load the client CA certificates: {reason}")]
    return []
