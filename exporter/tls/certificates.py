"""Facts about one X.509 certificate, read from its DER bytes (pure).

Servers present odd certificates (empty or non-UTF-8 subjects, negative
serials, thousands of SANs). OpenSSL accepted them in the handshake, so we
must report them rather than fail: a field cryptography refuses to read is
read from the DER by certificate_der.py, and only then left empty.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from exporter.tls.der import DerCertificateFields, DerError, read_certificate_fields

_Value = TypeVar("_Value")
SECONDS_PER_DAY = 86400.0
_UNDECODABLE = "(undecodable name)"


@dataclass(frozen=True)
class CertificateFacts:
    # Thousands of results hold the same few certificates (session.py caches the
    # facts): the state file's codec encodes each once and restores them shared.
    kept_shared: ClassVar[bool] = True

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
    # OpenSSL's curve name for EC keys (secp256r1), which the key rating needs.
    key_curve: str | None = None
    signature_algorithm: str = "unknown"
    # The signature's hash as cryptography names it (sha256); None for EdDSA,
    # which hashes nothing separately; "unknown" when we cannot tell.
    signature_hash: str | None = "unknown"
    # Set when cryptography could not parse the certificate (OpenSSL could).
    parse_error: str | None = None
    # Not kept in the state file: only probes (DANE, ``check``) read it, and they have a fresh chain;
    # a restored result feeds the metrics, which need the facts above.
    der: bytes = field(default=b"", repr=False, metadata={"kept": False})

    @property
    def self_signed(self) -> bool:
        # Issued by its own subject: a root, or a lone self-made leaf. The
        # signature itself is the trust verdict's business, not ours.
        return bool(self.subject) and self.subject == self.issuer

    @property
    def subject_alternative_names(self) -> tuple[str, ...]:
        return self.dns_names + self.ip_addresses

    def is_expired(self, now: float) -> bool:
        return self.not_after is not None and now > self.not_after

    def is_not_yet_valid(self, now: float) -> bool:
        return self.not_before is not None and now < self.not_before

    def days_left(self, now: float) -> float | None:
        return days_until(self.not_after, now) if self.not_after is not None else None


def days_until(moment: float, now: float) -> float:
    """Days from ``now`` to ``moment`` (Unix times); negative once it has passed."""
    return (moment - now) / SECONDS_PER_DAY


def certificate_facts(der: bytes) -> CertificateFacts:
    with warnings.catch_warnings():
        # RFC 5280 forbids negative serial numbers; servers present them all
        # the same, OpenSSL accepts them, and we report them as they are.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return _certificate_facts(der)


def _certificate_facts(der: bytes) -> CertificateFacts:
    sha256 = hashlib.sha256(der).hexdigest()
    sha1 = hashlib.sha1(der).hexdigest()  # noqa: S324 - a thumbprint, not a signature
    fallback = _DerFallback(der)
    try:
        certificate = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion: an X.509 v2 certificate
        return _facts_from_der(der, sha256, sha1, fallback, parse_error=str(exc))
    field = _FieldReader(certificate, fallback)
    dns_names, ip_addresses = _subject_alternative_names(certificate, fallback)
    key_type, key_bits, key_curve = _public_key(certificate.public_key)
    return CertificateFacts(
        subject=field(lambda parsed: parsed.subject.rfc4514_string(), lambda read: read.subject, _UNDECODABLE),
        issuer=field(lambda parsed: parsed.issuer.rfc4514_string(), lambda read: read.issuer, _UNDECODABLE),
        serial=_hex(field(lambda parsed: parsed.serial_number, lambda read: read.serial, None)),
        not_before=field(lambda parsed: parsed.not_valid_before_utc.timestamp(), lambda read: read.not_before, None),
        not_after=field(lambda parsed: parsed.not_valid_after_utc.timestamp(), lambda read: read.not_after, None),
        fingerprint_sha256=sha256,
        fingerprint_sha1=sha1,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        common_names=field(_common_names, lambda read: read.common_names, ()),
        key_type=key_type,
        key_bits=key_bits,
        key_curve=key_curve,
        signature_algorithm=_signature_algorithm(certificate.signature_algorithm_oid),
        signature_hash=_signature_hash(certificate),
        der=der,
    )


class _DerFallback:
    """Our own DER reading, done only when cryptography refuses something."""

    def __init__(self, der: bytes) -> None:
        self._der = der
        self._done = False
        self._fields: DerCertificateFields | None = None
        self.error = ""

    @property
    def fields(self) -> DerCertificateFields | None:
        if not self._done:
            self._done = True
            try:
                self._fields = read_certificate_fields(self._der)
            except DerError as exc:
                self.error = str(exc)
        return self._fields


class _FieldReader:
    """One field: cryptography's reading; ours when it refuses; else a default."""

    def __init__(self, certificate: x509.Certificate, fallback: _DerFallback) -> None:
        self._certificate = certificate
        self._fallback = fallback

    def __call__(
        self,
        parse: Callable[[x509.Certificate], _Value],
        read: Callable[[DerCertificateFields], _Value],
        default: _Value,
    ) -> _Value:
        try:
            return parse(self._certificate)
        except ValueError:
            fields = self._fallback.fields
            return read(fields) if fields is not None else default


def _facts_from_der(
    der: bytes, sha256: str, sha1: str, fallback: _DerFallback, *, parse_error: str
) -> CertificateFacts:
    fields = fallback.fields
    if fields is None:
        return CertificateFacts(
            subject="",
            issuer="",
            serial="",
            not_before=None,
            not_after=None,
            fingerprint_sha256=sha256,
            fingerprint_sha1=sha1,
            parse_error=f"{parse_error}; {fallback.error}",
            der=der,
        )
    key_type, key_bits, key_curve = _public_key(lambda: serialization.load_der_public_key(fields.public_key_info))
    signature_algorithm = _signature_algorithm(x509.ObjectIdentifier(fields.signature_algorithm_oid))
    return CertificateFacts(
        subject=fields.subject,
        issuer=fields.issuer,
        serial=_hex(fields.serial),
        not_before=fields.not_before,
        not_after=fields.not_after,
        fingerprint_sha256=sha256,
        fingerprint_sha1=sha1,
        dns_names=fields.dns_names,
        ip_addresses=fields.ip_addresses,
        common_names=fields.common_names,
        key_type=key_type,
        key_bits=key_bits,
        key_curve=key_curve,
        signature_algorithm=signature_algorithm,
        signature_hash=_hash_in_name(signature_algorithm),
        parse_error=parse_error,
        der=der,
    )


def _hex(serial: int | None) -> str:
    if serial is None:
        return ""
    return f"-{-serial:X}" if serial < 0 else f"{serial:X}"


def _subject_alternative_names(
    certificate: x509.Certificate, fallback: _DerFallback
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return (), ()
    except (ValueError, x509.UnsupportedGeneralNameType):  # the latter: x400Address, EDIPartyName
        fields = fallback.fields
        return (fields.dns_names, fields.ip_addresses) if fields is not None else ((), ())
    names = extension.value
    dns_names = tuple(str(name) for name in names.get_values_for_type(x509.DNSName))
    ip_addresses = tuple(str(address) for address in names.get_values_for_type(x509.IPAddress))
    return dns_names, ip_addresses


def _common_names(certificate: x509.Certificate) -> tuple[str, ...]:
    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return tuple(str(attribute.value) for attribute in attributes)


def _public_key(read: Callable[[], PublicKeyTypes]) -> tuple[str, int, str | None]:
    try:
        key = read()
    except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):  # e.g. GOST or SM2 keys
        return "unknown", 0, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    return "unknown", 0, None


def _signature_hash(certificate: x509.Certificate) -> str | None:
    try:
        algorithm = certificate.signature_hash_algorithm  # reads RSASSA-PSS parameters too
    except UnsupportedAlgorithm:
        return _hash_in_name(_signature_algorithm(certificate.signature_algorithm_oid))
    return algorithm.name if algorithm is not None else None


# For certificates cryptography refuses: the hash is in OpenSSL's short name
# (sha1WithRSAEncryption, ecdsa-with-SHA256, md5WithRSAEncryption).
_HASHES_IN_NAMES = ("sha512", "sha384", "sha256", "sha224", "sha1", "md5")


def _hash_in_name(signature_algorithm: str) -> str | None:
    lowered = signature_algorithm.lower()
    if lowered in ("ed25519", "ed448"):
        return None
    return next((name for name in _HASHES_IN_NAMES if name in lowered), "unknown")


def _signature_algorithm(oid: x509.ObjectIdentifier) -> str:
    # OpenSSL's short name (sha256WithRSAEncryption), which admins recognise.
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string
