"""Certificates with odd but real-world encodings, and a 50-certificate chain.

cryptography's builder refuses to make most of them (negative or 64-octet
serials, Latin-1 in a TeletexString, '@' in a PrintableString), so we build
an ordinary certificate, rewrite its to-be-signed DER and sign that again.
Every one is self-signed (or chains to a root nobody trusts) and loads into
OpenSSL, so a test server can present it. Minted per run; nothing committed.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.pki import DAY, NOW, SERVER_NAME, ServerCertificate, _key_pem

# AlgorithmIdentifier of ecdsa-with-SHA256 (RFC 5758 section 3.2).
_ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
TELETEX_STRING = 0x14


def encode(tag: int, content: bytes) -> bytes:
    """One DER element (definite length)."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def elements(content: bytes) -> list[bytes]:
    """The encoded elements one after another in ``content``."""
    found = []
    offset = 0
    while offset < len(content):
        start = offset
        length = content[offset + 1]
        offset += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(content[offset : offset + count], "big")
            offset += count
        offset += length
        found.append(content[start:offset])
    return found


def _content(element: bytes) -> bytes:
    length = element[1]
    header = 2 + (length & 0x7F if length & 0x80 else 0)
    return element[header:]


ODD_CERTIFICATE_NAMES = (
    "empty_subject",
    "no_san",
    "500_sans",
    "negative_serial",
    "huge_serial",
    "16kb_subject",
    "teletex_subject",
    "printable_string_with_at",
)


class OddCertificates:
    """Self-signed certificates for ``mail.test``, each odd in one way."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def _builder(self, subject: x509.Name, sans: Sequence[str] | None) -> x509.CertificateBuilder:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 90 * DAY)
        )
        if sans is not None:
            names = [x509.DNSName(name) for name in sans]
            # RFC 5280 section 4.2.1.6: critical when the subject is empty.
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=len(subject) == 0)
        return builder

    def _server(self, der: bytes) -> ServerCertificate:
        return ServerCertificate(ssl.DER_cert_to_PEM_cert(der).encode("ascii"), _key_pem(self.key))

    def plain(self, subject: x509.Name, sans: Sequence[str] | None = (SERVER_NAME,)) -> bytes:
        return self._builder(subject, sans).sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def resigned(self, tbs: bytes) -> bytes:
        """A certificate around ``tbs``, signed again by our key."""
        signature = self.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        return encode(0x30, tbs + _ECDSA_WITH_SHA256 + encode(0x03, b"\x00" + signature))

    def with_string_type(self, value: bytes, tag: int) -> bytes:
        """CN=``value`` encoded as string type ``tag``, octets as given."""
        placeholder = "Q" * len(value)
        certificate = x509.load_der_x509_certificate(self.plain(_common_name(placeholder)))
        encoded = encode(_UTF8_STRING, placeholder.encode())
        tbs = certificate.tbs_certificate_bytes
        assert tbs.count(encoded) == 2  # subject and issuer
        return self.resigned(tbs.replace(encoded, encode(tag, value)))

    def with_serial(self, serial_content: bytes) -> bytes:
        """The serial number's INTEGER content octets replaced (two's complement)."""
        certificate = x509.load_der_x509_certificate(self.plain(_common_name(SERVER_NAME)))
        fields = elements(_content(certificate.tbs_certificate_bytes))
        fields[1] = encode(0x02, serial_content)  # after the [0] version
        return self.resigned(encode(0x30, b"".join(fields)))

    def all(self) -> dict[str, ServerCertificate]:
        """The odd certificates of issue 6, by scenario name."""
        # 256 units of 64 characters (the upper bound of RFC 5280): 19 KB.
        units = [f"Unit {index:04} " + "u" * 54 for index in range(256)]
        sixteen_kib_subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]
            + [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit) for unit in units]
        )
        ders = {
            "empty_subject": self.plain(x509.Name([])),
            "no_san": self.plain(_common_name(SERVER_NAME), sans=None),
            "500_sans": self.plain(
                _common_name(SERVER_NAME), [SERVER_NAME, *(f"host-{index:03}.{SERVER_NAME}" for index in range(499))]
            ),
            "negative_serial": self.with_serial(b"\xfe" + bytes(range(1, 16))),
            "huge_serial": self.with_serial(b"\x7f" + bytes(range(1, 64))),
            "16kb_subject": self.plain(sixteen_kib_subject),
            # Latin-1 in a TeletexString, as old European CAs issued them.
            "teletex_subject": self.with_string_type("Messagerie Café".encode("latin-1"), TELETEX_STRING),
            # '@' is not a PrintableString character; cryptography refuses the
            # whole certificate, OpenSSL and mail clients accept it.
            "printable_string_with_at": self.with_string_type(b"postmaster@mail.test", PRINTABLE_STRING),
        }
        assert tuple(ders) == ODD_CERTIFICATE_NAMES
        return {name: self._server(der) for name, der in ders.items()}


def long_chain(length: int = 50) -> ServerCertificate:
    """A leaf and ``length - 1`` CA certificates up to a root nobody trusts.

    The further from the leaf, the sooner a certificate expires.
    """
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(length)]
    names = [_common_name(f"Chain CA {depth}") for depth in range(length - 1)] + [_common_name(SERVER_NAME)]
    certificates: list[x509.Certificate] = []
    for depth, (key, name) in enumerate(zip(keys, names, strict=True)):
        issuer_key, issuer_name = (keys[depth - 1], names[depth - 1]) if depth else (key, name)
        leaf = depth == length - 1
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + (90 + depth) * DAY)
            .add_extension(x509.BasicConstraints(ca=not leaf, path_length=None), critical=True)
        )
        if leaf:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        certificates.append(builder.sign(issuer_key, hashes.SHA256()))
    presented = reversed(certificates)  # leaf first, root last
    chain_pem = b"".join(certificate.public_bytes(serialization.Encoding.PEM) for certificate in presented)
    return ServerCertificate(chain_pem, _key_pem(keys[-1]))


def _common_name(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])
