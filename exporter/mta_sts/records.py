"""The two TXT records: ``_mta-sts.<domain>`` (RFC 8461 section 3.1) and ``_smtp._tls.<domain>`` (RFC 8460 section 3).

Pure functions from the record texts (each TXT record's strings already joined)
to a verdict; problems are values, never exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# RFC 8461 section 3.1: sts-id = 1*32(ALPHA / DIGIT).
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
# Both RFCs' extension names: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
_EXTENSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
# Both RFCs' extension values: 1*(%x21-3A / %x3C / %x3E-7E), printable ASCII without ";" and "=".
_EXTENSION_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
# Field delimiter of both grammars: *WSP ";" *WSP.
_DELIMITER = re.compile(r"[ \t]*;[ \t]*")
# Which records count. RFC 8461 section 3.1 (and RFC 8460 section 3 alike)
# discards records that do not begin with "v=STSv1;"; we also count a bare
# "v=STSv1" (no fields), so it is reported as invalid rather than as absent.
_STS_START = re.compile(r"v=STSv1(?:[ \t;]|$)")
_TLSRPT_START = re.compile(r"v=TLSRPTv1(?:[ \t;]|$)")
# TLS-RPT URIs are separated by "," (RFC 8460 section 3, tlsrpt-rua); the URIs must
# percent-encode their own commas and semicolons.
_URI_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True)
class StsRecord:
    """The verdict on the ``_mta-sts`` TXT RRset. Not present: no record begins with ``v=STSv1``."""

    present: bool
    valid: bool
    policy_id: str | None = None
    # Why it is invalid, for people: more than one STSv1 record, a malformed id, ...
    problem: str = ""


@dataclass(frozen=True)
class TlsRptRecord:
    """The verdict on the ``_smtp._tls`` TXT RRset."""

    present: bool
    valid: bool
    rua: tuple[str, ...] = ()
    problem: str = ""


def parse_sts_records(texts: Sequence[str]) -> StsRecord:
    """RFC 8461 section 3.1: exactly one record beginning ``v=STSv1``, with an ``id``."""
    candidates = [text for text in texts if _STS_START.match(text)]
    if not candidates:
        return StsRecord(present=False, valid=False)
    if len(candidates) > 1:
        # Senders then assume no policy at all (section 3.1): the domain loses MTA-STS.
        return StsRecord(
            True, False, problem=f"{len(candidates)} TXT records begin with v=STSv1; exactly one is allowed"
        )
    fields, problem = _fields(candidates[0], version="STSv1")
    if problem:
        return StsRecord(True, False, problem=problem)
    ids = [value for name, value in fields if name == "id"]
    if len(ids) != 1:
        return StsRecord(True, False, problem="no id field" if not ids else "more than one id field")
    if not _STS_ID.fullmatch(ids[0]):
        return StsRecord(True, False, problem=f"id {ids[0]!r} is not 1 to 32 letters and digits")
    return StsRecord(True, True, ids[0])


def parse_tlsrpt_records(texts: Sequence[str]) -> TlsRptRecord:
    """RFC 8460 section 3: exactly one record beginning ``v=TLSRPTv1``, with ``rua=`` of mailto: or https: URIs."""
    candidates = [text for text in texts if _TLSRPT_START.match(text)]
    if not candidates:
        return TlsRptRecord(present=False, valid=False)
    if len(candidates) > 1:
        return TlsRptRecord(
            True, False, problem=f"{len(candidates)} TXT records begin with v=TLSRPTv1; exactly one is allowed"
        )
    fields, problem = _fields(candidates[0], version="TLSRPTv1")
    if problem:
        return TlsRptRecord(True, False, problem=problem)
    ruas = [value for name, value in fields if name == "rua"]
    if len(ruas) != 1:
        return TlsRptRecord(True, False, problem="no rua field" if not ruas else "more than one rua field")
    uris = tuple(_URI_SEPARATOR.split(ruas[0]))
    bad = [uri for uri in uris if not _report_uri_valid(uri)]
    if bad:
        return TlsRptRecord(True, False, problem=f"rua {bad[0]!r} is not a mailto: or https: URI")
    return TlsRptRecord(True, True, uris)


def _fields(text: str, *, version: str) -> tuple[list[tuple[str, str]], str]:
    """The ``name=value`` fields after ``v=<version>``, or a problem; one trailing ";" is allowed.

    Both grammars are case-sensitive (%s in the ABNF) and allow no space around "=".
    """
    head, *rest = _DELIMITER.split(text.rstrip(" \t"))
    if head != f"v={version}":
        return [], f"the record must begin with v={version};"
    if rest and rest[-1] == "":
        rest.pop()
    if not rest:
        return [], f"no fields after v={version}"
    fields: list[tuple[str, str]] = []
    for part in rest:
        name, equals, value = part.partition("=")
        if not equals or not _EXTENSION_NAME.fullmatch(name):
            return [], f"malformed field {part!r}"
        # A rua value is a list of URIs, checked on its own; every other value is an sts-ext-value.
        if name != "rua" and not _EXTENSION_VALUE.fullmatch(value):
            return [], f"malformed value in field {part!r}"
        fields.append((name, value))
    return fields, ""


def _report_uri_valid(uri: str) -> bool:
    # RFC 8460 section 3: "mailto:" (RFC 6068) or "https:" (RFC 2818) report URIs.
    if any(ord(character) <= 0x20 or ord(character) >= 0x7F for character in uri):
        return False
    parts = urlsplit(uri)
    if parts.scheme.lower() == "mailto":
        return "@" in parts.path
    if parts.scheme.lower() == "https":
        return bool(parts.hostname)
    return False
