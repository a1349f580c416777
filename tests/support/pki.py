"""Certificates made at test time: a root, an intermediate, and leaves in every posture.

Nothing here is committed as a key; every run mints its own.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "mail.test"
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class ServerCertificate:
    """A leaf (with its chain) that a test server presents."""

    chain_pem: bytes
    key_pem: bytes

    def server_context(self, directory: Path, name: str) -> ssl.SSLContext:
        cert_path = directory / f"{name}.chain.pem"
        key_path = directory / f"{name}.key.pem"
        cert_path.write_bytes(self.chain_pem)
        key_path.write_bytes(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


class Pki:
    """A private root with an intermediate, like a real mail provider's chain."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root = trustme.CA(organization_name="Test Root")
        self.intermediate = self.root.create_child_ca()
        self.ca_file = directory / "root-ca.pem"
        self.root.cert_pem.write_to_path(str(self.ca_file))

    def leaf(
        self,
        *names: str,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        common_name: str | None = None,
        key_type: trustme.KeyType = trustme.KeyType.ECDSA,
    ) -> ServerCertificate:
        issued = self.intermediate.issue_cert(
            *(names or (SERVER_NAME,)),
            common_name=common_name,
            not_before=not_before,
            not_after=not_after,
            key_type=key_type,
        )
        chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
        return ServerCertificate(chain, issued.private_key_pem.bytes())

    def leaf_for_client_auth_only(self, server_name: str = SERVER_NAME) -> ServerCertificate:
        """A leaf whose extendedKeyUsage allows TLS clients only, not servers."""
        issuer_key = serialization.load_pem_private_key(self.intermediate.private_key_pem.bytes(), password=None)
        issuer = x509.load_pem_x509_certificate(self.intermediate.cert_pem.bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(server_name))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 90 * DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return ServerCertificate(_pem(certificate) + self.intermediate.cert_pem.bytes(), _key_pem(key))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def self_signed(server_name: str = SERVER_NAME) -> ServerCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(server_name))
        .issuer_name(_name(server_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 90 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ServerCertificate(_pem(certificate), _key_pem(key))


@dataclass(frozen=True)
class PlainPrivateCa:
    """A private CA made the way small sites make them: a root without keyUsage.

    OpenSSL (and so Postfix and `openssl s_client`) accepts its chains;
    cryptography's WebPKI verifier rejects them ("missing required extension").
    """

    ca_file: Path
    server: ServerCertificate


def plain_private_ca(directory: Path, server_name: str = SERVER_NAME) -> PlainPrivateCa:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Plain Private Root"))
        .issuer_name(_name("Plain Private Root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(server_name))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 365 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    ca_file = directory / "plain-private-root.pem"
    ca_file.write_bytes(_pem(root))
    return PlainPrivateCa(ca_file, ServerCertificate(_pem(leaf), _key_pem(leaf_key)))
