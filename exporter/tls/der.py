"""Certificate fields read straight from the DER, for what cryptography refuses (pure).

cryptography rejects encodings that OpenSSL, and so every mail client,
accepts: a PrintableString holding '@' or '_' refuses the whole certificate,
a Latin-1 TeletexString refuses the name. An expiry monitor must still
report such a certificate's dates, so this module walks the few fields we
report (RFC 5280 section 4.1) and decodes strings as OpenSSL prints them.
It reads, it does not validate: the trust verdict is OpenSSL's.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass

# Universal tags (X.690 section 8.1.2) and the context tags of RFC 5280.
_INTEGER = 0x02
_OBJECT_IDENTIFIER = 0x06
_OCTET_STRING = 0x04
_SEQUENCE = 0x30
_SET = 0x31
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_UTF8_STRING = 0x0C
_BMP_STRING = 0x1E
_UNIVERSAL_STRING = 0x1C
# PrintableString, TeletexString, IA5String, VisibleString, NumericString,
# VideotexString, GraphicString, GeneralString: cryptography reads them as
# UTF-8; OpenSSL shows them octet by octet, which is Latin-1.
_SINGLE_OCTET_STRINGS = frozenset({0x13, 0x14, 0x16, 0x1A, 0x12, 0x15, 0x19, 0x1B})
_VERSION = 0xA0
_EXTENSIONS = 0xA3
_SAN_DNS_NAME = 0x82
_SAN_IP_ADDRESS = 0x87

_SUBJECT_ALTERNATIVE_NAME = "2.5.29.17"
_COMMON_NAME = "2.5.4.3"
# The short names cryptography's rfc4514_string() uses; others stay dotted.
_ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_MAX_ARC_OCTETS = 10
_TIME = re.compile(rb"(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z")


class DerError(ValueError):
    """The octets are not the DER certificate structure we read."""


@dataclass(frozen=True)
class DerCertificateFields:
    serial: int
    issuer: str
    subject: str
    # Unix timestamps; None when the time is not one we can read.
    not_before: float | None
    not_after: float | None
    common_names: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    # The encoded SubjectPublicKeyInfo, for a key loader to describe.
    public_key_info: bytes
    signature_algorithm_oid: str


@dataclass(frozen=True)
class _Element:
    tag: int
    content: bytes
    encoded: bytes


def read_certificate_fields(der: bytes) -> DerCertificateFields:
    """Read the reported fields of a DER certificate. Raises DerError."""
    certificate = _single(der, _SEQUENCE)
    parts = _children(certificate.content)
    if len(parts) < 2:
        raise DerError("a certificate is a sequence of the signed part and its algorithm")
    tbs = _expect(parts[0], _SEQUENCE)
    fields = _children(tbs.content)
    if fields and fields[0].tag == _VERSION:
        fields = fields[1:]
    if len(fields) < 6:
        raise DerError("the signed part has too few fields")
    serial, _signature, issuer, validity, subject, public_key_info, *optional = fields
    validity_times = _children(_expect(validity, _SEQUENCE).content)
    if len(validity_times) != 2:
        raise DerError("validity is two times")
    not_before, not_after = (_time(element) for element in validity_times)
    dns_names, ip_addresses = _subject_alternative_names(optional)
    return DerCertificateFields(
        serial=int.from_bytes(_expect(serial, _INTEGER).content, "big", signed=True),
        issuer=_name(issuer),
        subject=_name(subject),
        not_before=not_before,
        not_after=not_after,
        common_names=tuple(value for oid, value in _attributes(subject) if oid == _COMMON_NAME),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        public_key_info=_expect(public_key_info, _SEQUENCE).encoded,
        signature_algorithm_oid=_algorithm_oid(parts[1]),
    )


def _read(data: bytes, offset: int) -> tuple[_Element, int]:
    """The element starting at ``offset`` and the offset after it."""
    start = offset
    if offset >= len(data):
        raise DerError("truncated element")
    tag = data[offset]
    offset += 1
    if tag & 0x1F == 0x1F:  # high tag numbers: skip the tag's continuation octets
        while offset < len(data) and data[offset] & 0x80:
            offset += 1
        offset += 1
    if offset >= len(data):
        raise DerError("truncated element")
    length = data[offset]
    offset += 1
    if length & 0x80:
        count = length & 0x7F
        # DER has no indefinite length; four octets cover any certificate.
        if count == 0 or count > 4 or offset + count > len(data):
            raise DerError("unsupported or truncated length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise DerError("element runs past its container")
    return _Element(tag, data[offset:end], data[start:end]), end


def _children(content: bytes) -> list[_Element]:
    elements = []
    offset = 0
    while offset < len(content):
        element, offset = _read(content, offset)
        elements.append(element)
    return elements


def _single(data: bytes, tag: int) -> _Element:
    element, end = _read(data, 0)
    if end != len(data):
        raise DerError("trailing octets after the certificate")
    return _expect(element, tag)


def _expect(element: _Element, tag: int) -> _Element:
    if element.tag != tag:
        raise DerError(f"expected tag 0x{tag:02x}, found 0x{element.tag:02x}")
    return element


def _oid(element: _Element) -> str:
    content = _expect(element, _OBJECT_IDENTIFIER).content
    if not content or content[-1] & 0x80:
        raise DerError("malformed object identifier")
    arcs: list[int] = []
    value = 0
    octets = 0
    for octet in content:
        value = (value << 7) | (octet & 0x7F)
        octets += 1
        # Real arcs fit in 64 bits; a hostile one must not cost quadratic time.
        if octets > _MAX_ARC_OCTETS:
            raise DerError("object identifier arc too long")
        if not octet & 0x80:
            arcs.append(value)
            value = 0
            octets = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _algorithm_oid(element: _Element) -> str:
    parts = _children(_expect(element, _SEQUENCE).content)
    if not parts:
        raise DerError("empty algorithm identifier")
    return _oid(parts[0])


def _attributes(name: _Element) -> list[tuple[str, str]]:
    """(OID, text) of every attribute of a Name, in encoded order."""
    return [pair for relative_name in _relative_names(name) for pair in relative_name]


def _relative_names(name: _Element) -> list[list[tuple[str, str]]]:
    relative_names = []
    for relative_name in _children(_expect(name, _SEQUENCE).content):
        pairs = []
        for attribute in _children(_expect(relative_name, _SET).content):
            parts = _children(_expect(attribute, _SEQUENCE).content)
            if len(parts) != 2:
                raise DerError("an attribute is a type and a value")
            pairs.append((_oid(parts[0]), _string(parts[1])))
        relative_names.append(pairs)
    return relative_names


def _name(name: _Element) -> str:
    """RFC 4514 text, most specific first, as cryptography's rfc4514_string()."""
    return ",".join(
        "+".join(f"{_ATTRIBUTE_NAMES.get(oid, oid)}={_escape(value)}" for oid, value in relative_name)
        for relative_name in reversed(_relative_names(name))
    )


def _string(element: _Element) -> str:
    # Undecodable octets become U+FFFD: what we report must be valid UTF-8.
    if element.tag == _UTF8_STRING:
        return element.content.decode("utf-8", "replace")
    if element.tag == _BMP_STRING:
        return element.content.decode("utf-16-be", "replace")
    if element.tag == _UNIVERSAL_STRING:
        return element.content.decode("utf-32-be", "replace")
    if element.tag in _SINGLE_OCTET_STRINGS:
        # As cryptography decodes them when it can; else octet by octet.
        try:
            return element.content.decode("utf-8")
        except UnicodeDecodeError:
            return element.content.decode("latin-1")
    # RFC 4514 section 2.4: a value of another type is shown as '#' and hex.
    return "#" + element.encoded.hex()


def _escape(value: str) -> str:
    # RFC 4514 section 2.4, as cryptography escapes.
    for special in ("\\", '"', "+", ",", ";", "<", ">"):
        value = value.replace(special, "\\" + special)
    value = value.replace("\0", "\\00")
    if value[:1] == "#" or (value[:1] == " " and len(value) > 1):
        value = "\\" + value
    if value.endswith(" "):
        value = value[:-1] + "\\ "
    return value


def _time(element: _Element) -> float | None:
    if element.tag not in (_UTC_TIME, _GENERALIZED_TIME):
        return None
    match = _TIME.fullmatch(element.content)
    if match is None:
        return None
    year_text, month, day, hour, minute, second = match.groups()
    year = int(year_text)
    if element.tag == _UTC_TIME:
        if len(year_text) != 2:
            return None
        year += 1900 if year >= 50 else 2000  # RFC 5280 section 4.1.2.5.1
    elif len(year_text) != 4:
        return None
    try:
        moment = datetime.datetime(year, int(month), int(day), int(hour), int(minute), int(second), tzinfo=datetime.UTC)
    except ValueError:
        return None
    return moment.timestamp()


def _subject_alternative_names(optional: list[_Element]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dns_names: list[str] = []
    ip_addresses: list[str] = []
    for container in optional:
        if container.tag != _EXTENSIONS:
            continue
        for extension in _children(_single(container.content, _SEQUENCE).content):
            parts = _children(_expect(extension, _SEQUENCE).content)
            if not parts or _oid(parts[0]) != _SUBJECT_ALTERNATIVE_NAME:
                continue
            names = _single(_expect(parts[-1], _OCTET_STRING).content, _SEQUENCE)
            for general_name in _children(names.content):
                if general_name.tag == _SAN_DNS_NAME:
                    dns_names.append(general_name.content.decode("latin-1"))
                elif general_name.tag == _SAN_IP_ADDRESS and len(general_name.content) in (4, 16):
                    ip_addresses.append(str(ipaddress.ip_address(general_name.content)))
    return tuple(dns_names), tuple(ip_addresses)
