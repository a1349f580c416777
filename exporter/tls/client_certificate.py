"""Our own client certificate: checked once, at config load, and loaded into a context.

A server may ask for a client certificate (smtpd_tls_ask_ccert) or require one
(smtpd_tls_req_ccert). The certificate and key are PEM files; the key's
content is read here only to check it, never kept and never quoted: every
message names files, not what is in them. OpenSSL reads the key again from
its file when the handshake context is built (context.py).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exporter.config.model import ClientCertificate


class ClientCertificateProblem(ValueError):
    """Why the pair cannot be used; ``key_file_at_fault`` says which file the message is about."""

    def __init__(self, message: str, *, key_file_at_fault: bool = False) -> None:
        super().__init__(message)
        self.key_file_at_fault = key_file_at_fault


def load_client_certificate(cert_file: Path, key_file: Path) -> ClientCertificate:
    """Check the pair as OpenSSL will use it; raises ClientCertificateProblem."""
    try:
        cert_pem = cert_file.read_bytes()
    except OSError as exc:
        raise ClientCertificateProblem(f"cannot read {cert_file}: {exc.strerror or exc}") from None
    try:
        key_pem = key_file.read_bytes()
    except OSError as exc:
        raise ClientCertificateProblem(
            f"cannot read {key_file}: {exc.strerror or exc}", key_file_at_fault=True
        ) from None
    try:
        # The first certificate is ours; any after it are the intermediates we send along.
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise ClientCertificateProblem(f"{cert_file} holds no readable PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        # A passphrase would have to be typed at every start and reload.
        raise ClientCertificateProblem(
            f"{key_file} holds an encrypted private key; the exporter needs it unencrypted (protect the file instead)",
            key_file_at_fault=True,
        ) from None
    except ValueError:
        # cryptography's message could echo parts of the file: say it in our words.
        raise ClientCertificateProblem(
            f"{key_file} holds no readable PEM private key", key_file_at_fault=True
        ) from None
    finally:
        del key_pem
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    if ours != leaf.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise ClientCertificateProblem(
            f"the private key in {key_file} does not belong to the certificate in {cert_file}", key_file_at_fault=True
        )
    client_certificate = ClientCertificate(cert_file, key_file, leaf.not_valid_after_utc.timestamp())
    # The last word is OpenSSL's, which will load the pair for every handshake.
    try:
        load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), client_certificate)
    except ssl.SSLError as exc:
        raise ClientCertificateProblem(
            f"OpenSSL cannot load {cert_file} with {key_file}: {exc.reason or exc}"
        ) from None
    return client_certificate


def load_into(context: ssl.SSLContext, client_certificate: ClientCertificate) -> None:
    """Make ``context`` present the certificate when a server asks for one."""
    context.load_cert_chain(client_certificate.cert_file, client_certificate.key_file, password=_no_passphrase)


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal and block the
    # daemon; the config check refuses encrypted keys before we get here.
    raise ssl.SSLError("the private key is encrypted")
