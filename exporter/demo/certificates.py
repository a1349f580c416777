"""Certificates for the demo, minted at run time: a private CA and leaves in every posture.

Nothing here is ever written to the repository; the demo keeps its keys in a
temporary directory that disappears when it stops. EC P-256 keys, because
generating them takes milliseconds where RSA takes a noticeable moment.
"""

from __future__ import annotations

import datetime
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class ServerCertificate:
    """A leaf and its private key, as PEM, ready for a TLS server."""

    chain_pem: bytes
    key_pem: bytes


class DemoCa:
    """A private root CA whose certificate the demo's exporter config trusts."""

    def __init__(self, now: datetime.datetime) -> None:
        self._now = now
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp-tls-exporter demo CA")])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        dns_name: str,
        *,
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        purpose: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
    ) -> ServerCertificate:
        """A leaf for a TLS server, or with ``purpose`` CLIENT_AUTH one the probe presents."""
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _leaf_builder(dns_name, key, not_before, not_after, purpose).issuer_name(self.certificate.subject)
        return ServerCertificate(_pem(leaf.sign(self._key, hashes.SHA256())), _key_pem(key))


def self_signed(dns_name: str, *, now: datetime.datetime) -> ServerCertificate:
    """A leaf that signs itself: no CA vouches for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _leaf_builder(dns_name, key, now - DAY, now + 90 * DAY)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    return ServerCertificate(_pem(builder.issuer_name(subject).sign(key, hashes.SHA256())), _key_pem(key))


def server_context(
    certificate: ServerCertificate,
    directory: Path,
    name: str,
    *,
    maximum_version: ssl.TLSVersion | None = None,
    client_ca: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS server context presenting ``certificate`` (written under ``directory``).

    With ``client_ca`` it asks for a client certificate from that CA (and
    lets a client without one in, as Postfix's smtpd_tls_ask_ccert does).
    """
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(certificate.chain_pem)
    write_private(key_path, certificate.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=client_ca.decode())
    if maximum_version is not None:
        with warnings.catch_warnings():
            # TLS 1.0 and 1.1 are deprecated; a legacy posture is the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = maximum_version
        # OpenSSL 3 refuses TLS 1.0/1.1 above security level 0.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner may read (keys, passwords)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(content)


def _leaf_builder(
    dns_name: str,
    key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    purpose: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
