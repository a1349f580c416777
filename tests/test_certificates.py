"""Reading certificates: odd encodings keep their facts, our DER reading agrees with cryptography."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exporter.tls.certificates import certificate_facts
from exporter.tls.der import DerError, read_certificate_fields
from tests.support.odd_certificates import OddCertificates
from tests.support.pki import SERVER_NAME, ServerCertificate

_odd = OddCertificates()
_ORDINARY = _odd.plain(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]))


def _leaf_der(certificate: ServerCertificate) -> bytes:
    first = certificate.chain_pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    return ssl.PEM_cert_to_DER_cert(first.decode("ascii"))


_ODD = {name: _leaf_der(certificate) for name, certificate in _odd.all().items()}


def test_a_certificate_cryptography_refuses_still_reports_its_facts() -> None:
    der = _ODD["printable_string_with_at"]
    with pytest.raises(ValueError, match="PrintableString"):
        x509.load_der_x509_certificate(der)
    facts = certificate_facts(der)
    assert facts.parse_error
    assert facts.subject == facts.issuer == "CN=postmaster@mail.test"
    assert facts.dns_names == (SERVER_NAME,)
    assert facts.common_names == ("postmaster@mail.test",)
    assert facts.not_after is not None
    assert facts.not_before is not None
    assert facts.not_before < facts.not_after
    assert (facts.key_type, facts.key_bits) == ("EC", 256)
    assert facts.signature_algorithm == "ecdsa-with-SHA256"
    assert facts.serial


def test_a_latin_1_teletex_subject_is_read_as_openssl_reads_it() -> None:
    facts = certificate_facts(_ODD["teletex_subject"])
    assert facts.parse_error is None  # only the names were refused
    assert facts.subject == facts.issuer == "CN=Messagerie Café"
    assert facts.common_names == ("Messagerie Café",)


def test_serials_are_reported_as_encoded_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        negative = certificate_facts(_ODD["negative_serial"]).serial
        huge = certificate_facts(_ODD["huge_serial"]).serial
    # Two's complement FE 01 02 ... 0F is minus 01 FE FD ... F1.
    assert negative == "-" + format((1 << 128) - int.from_bytes(b"\xfe" + bytes(range(1, 16)), "big"), "X")
    assert huge == (b"\x7f" + bytes(range(1, 64))).hex().upper()


@pytest.mark.parametrize(
    ("name", "subject", "dns_names"),
    [
        ("empty_subject", "", 1),
        ("no_san", "CN=mail.test", 0),
        ("500_sans", "CN=mail.test", 500),
    ],
)
def test_odd_names(name: str, subject: str, dns_names: int) -> None:
    facts = certificate_facts(_ODD[name])
    assert facts.subject == subject
    assert len(facts.dns_names) == dns_names


def test_arbitrary_octets_are_a_der_error_or_fields() -> None:
    with pytest.raises(DerError):
        read_certificate_fields(b"\x30\x80\x00\x00")


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise_anything_but_der_error(data: bytes) -> None:
    with contextlib.suppress(DerError):
        read_certificate_fields(data)
    facts = certificate_facts(data)
    assert facts.fingerprint_sha256


@settings(max_examples=300)
@given(st.data())
def test_damaged_certificates_never_break_certificate_facts(data: st.DataObject) -> None:
    original = bytearray(data.draw(st.sampled_from([_ORDINARY, *_ODD.values()])))
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    original = original[: data.draw(st.integers(0, len(original)))]
    with contextlib.suppress(DerError):
        read_certificate_fields(bytes(original))
    certificate_facts(bytes(original))


_attribute_values = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"]) | st.sampled_from(',+"\\<>;#= \x00'),
    min_size=1,
    max_size=30,
).filter(lambda value: len(value.encode("utf-8")) <= 64)  # RFC 5280's upper bound for most names
_attributes = st.lists(
    st.tuples(
        st.sampled_from(
            [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.LOCALITY_NAME,
             NameOID.DOMAIN_COMPONENT, NameOID.EMAIL_ADDRESS, NameOID.USER_ID, NameOID.SERIAL_NUMBER]
        ),
        _attribute_values,
    ),
    max_size=6,
)  # fmt: skip
_times = st.datetimes(
    min_value=datetime.datetime(1951, 1, 1), max_value=datetime.datetime(9998, 1, 1), timezones=st.just(datetime.UTC)
).map(lambda moment: moment.replace(microsecond=0))


@settings(max_examples=150, deadline=None)
@given(
    subject=_attributes,
    issuer=_attributes,
    serial=st.integers(1, 2**159 - 1),
    not_before=_times,
    not_after=_times,
    dns_names=st.lists(st.from_regex(r"(\*\.)?[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True), max_size=5),
    ip_addresses=st.lists(st.ip_addresses(), max_size=3),
)
def test_der_reading_agrees_with_cryptography(
    *,
    subject: list[tuple[x509.ObjectIdentifier, str]],
    issuer: list[tuple[x509.ObjectIdentifier, str]],
    serial: int,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    dns_names: list[str],
    ip_addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in subject]))
        .issuer_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in issuer]))
        .public_key(_odd.key.public_key())
        .serial_number(serial)
        .not_valid_before(min(not_before, not_after))
        .not_valid_after(max(not_before, not_after))
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(address) for address in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    try:
        certificate = builder.sign(_odd.key, hashes.SHA256())
        expected_subject = certificate.subject.rfc4514_string()
        expected_issuer = certificate.issuer.rfc4514_string()
    except ValueError:  # e.g. an '@' in a PrintableString: cryptography cannot read its own
        assume(False)
    fields = read_certificate_fields(certificate.public_bytes(serialization.Encoding.DER))
    assert fields.subject == expected_subject
    assert fields.issuer == expected_issuer
    assert fields.serial == certificate.serial_number
    assert fields.not_before == certificate.not_valid_before_utc.timestamp()
    assert fields.not_after == certificate.not_valid_after_utc.timestamp()
    assert fields.common_names == tuple(
        str(attribute.value) for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )
    assert fields.dns_names == tuple(dns_names)
    assert fields.ip_addresses == tuple(str(address) for address in ip_addresses)
    assert fields.signature_algorithm_oid == certificate.signature_algorithm_oid.dotted_string
