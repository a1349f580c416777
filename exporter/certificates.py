"""Facts about one X.509 certificate, read from its DER bytes (pure).

Servers present odd certificates (empty or non-UTF-8 subjects, negative
serials, thousands of SANs). OpenSSL accepted them in the handshake, so we
must report them rather than fail: every field falls back on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    # Upper-case hex, as certificate viewers and the seed print it.
    serial: str
    # Unix timestamps; None only when the certificate could not be parsed at all.
    not_before: float | None
    not_after: float | None
    # Lower-case hex of the DER encoding, as blackbox_exporter labels it.
    fingerprint_sha256: str
    fingerprint_sha1: str
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    common_names: tuple[str, ...] = ()
    key_type: str = "unknown"
    key_bits: int = 0
    signature_algorithm: str = "unknown"
    # Set when cryptography could not parse the certificate (OpenSSL could).
    parse_error: str | None = None
    der: bytes = field(default=b"", repr=False)

    @property
    def subject_alternative_names(self) -> tuple[str, ...]:
        return self.dns_names + self.ip_addresses

    def is_expired(self, now: float) -> bool:
        return self.not_after is not None and now > self.not_after

    def is_not_yet_valid(self, now: float) -> bool:
        return self.not_before is not None and now < self.not_before


def certificate_facts(der: bytes) -> CertificateFacts:
    sha256 = hashlib.sha256(der).hexdigest()
    sha1 = hashlib.sha1(der).hexdigest()  # noqa: S324 - a thumbprint, not a signature
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return CertificateFacts(
            subject="",
            issuer="",
            serial="",
            not_before=None,
            not_after=None,
            fingerprint_sha256=sha256,
            fingerprint_sha1=sha1,
            parse_error=str(exc),
            der=der,
        )
    dns_names, ip_addresses = _subject_alternative_names(certificate)
    key_type, key_bits = _public_key(certificate)
    return CertificateFacts(
        subject=_name(lambda: certificate.subject),
        issuer=_name(lambda: certificate.issuer),
        serial=_serial(certificate),
        not_before=_timestamp(lambda: certificate.not_valid_before_utc),
        not_after=_timestamp(lambda: certificate.not_valid_after_utc),
        fingerprint_sha256=sha256,
        fingerprint_sha1=sha1,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        common_names=_common_names(certificate),
        key_type=key_type,
        key_bits=key_bits,
        signature_algorithm=_signature_algorithm(certificate),
        der=der,
    )


def _name(read: Callable[[], x509.Name]) -> str:
    try:
        return read().rfc4514_string()
    except ValueError:
        return "(undecodable name)"


def _serial(certificate: x509.Certificate) -> str:
    try:
        serial = certificate.serial_number
    except ValueError:
        return ""
    return f"-{-serial:X}" if serial < 0 else f"{serial:X}"


def _timestamp(read: Callable[[], datetime]) -> float | None:
    try:
        return read().timestamp()
    except ValueError:
        return None


def _subject_alternative_names(certificate: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):
        return (), ()
    names = extension.value
    dns_names = tuple(str(name) for name in names.get_values_for_type(x509.DNSName))
    ip_addresses = tuple(str(address) for address in names.get_values_for_type(x509.IPAddress))
    return dns_names, ip_addresses


def _common_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return tuple(str(attribute.value) for attribute in attributes)
    except ValueError:
        return ()


def _public_key(certificate: x509.Certificate) -> tuple[str, int]:
    try:
        key = certificate.public_key()
    except (ValueError, TypeError, NotImplementedError):
        return "unknown", 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return "unknown", 0


def _signature_algorithm(certificate: x509.Certificate) -> str:
    oid = certificate.signature_algorithm_oid
    # OpenSSL's short name (sha256WithRSAEncryption), which admins recognise.
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string
