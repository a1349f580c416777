"""Does the presented chain match the TLSA records? RFC 7672 section 3, as Postfix judges it (pure).

DANE-EE(3) pins the leaf: its certificate or key matches and nothing else is
asked (no names, no dates, no chain; RFC 7672 section 3.1.1). DANE-TA(2) pins
an issuer: a certificate the server sends at depth 1 or above must match, the
leaf must chain to it, name the server and be within its dates (section
3.1.2). Postfix gets both from OpenSSL's DANE support; we ask OpenSSL for the
chain to a DANE-TA match too, with that certificate as the only trust anchor.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from OpenSSL import crypto

from exporter.dane.tlsa import (
    DANE_EE,
    DANE_TA,
    MATCH_FULL,
    MATCH_SHA256,
    MATCH_SHA512,
    SELECTOR_CERT,
    TlsaLookup,
    TlsaLookupStatus,
    TlsaRecord,
)
from exporter.tls.der import DerError, read_certificate_fields
from exporter.tls.hostname import hostname_matches
from exporter.tls.private_api import verify_as_tls_server_certificate


class DaneStatus(enum.StrEnum):
    """The ``status`` of ``smtp_dane_status_info``."""

    PASS = "pass"  # noqa: S105 (a DANE verdict, not a password)
    FAIL = "fail"
    NO_TLSA = "no_tlsa"
    INSECURE = "insecure"
    UNUSABLE = "unusable"
    DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class DaneMatch:
    usage: int
    selector: int
    matching_type: int
    # Position in the presented chain: 0 is the leaf.
    depth: int

    @property
    def kind(self) -> tuple[int, int, int]:
        return (self.usage, self.selector, self.matching_type)

    def describe(self) -> str:
        """In posttls-finger's words (Postfix tls_dane.c)."""
        what = "EE certificate" if self.usage == DANE_EE else "TA certificate"
        return f"Matched DANE {what} at depth {self.depth}: {self.usage} {self.selector} {self.matching_type}"


@dataclass(frozen=True)
class DaneVerdict:
    status: DaneStatus
    lookup: TlsaLookup
    # Every (record kind, depth) that matched, DANE-EE first; empty unless status is pass.
    matches: tuple[DaneMatch, ...] = ()
    detail: str = ""

    @property
    def applies(self) -> bool:
        """A secure, usable TLSA set: DANE decides authentication and TLS is mandatory."""
        return self.status in (DaneStatus.PASS, DaneStatus.FAIL)

    @property
    def match(self) -> DaneMatch | None:
        """The match a DANE client reports: OpenSSL tries DANE-EE at depth 0 before any DANE-TA."""
        return self.matches[0] if self.matches else None

    @property
    def records(self) -> tuple[TlsaRecord, ...]:
        return self.lookup.records

    def records_by_kind(self) -> dict[tuple[int, int, int], int]:
        """How many records of each (usage, selector, matching type), unusable ones included."""
        return dict(sorted(Counter(record.kind for record in self.records).items()))

    @property
    def rollover_ready(self) -> bool:
        """internet.nl's scheme: two usable records (two 3 1 1, or 3 1 1 and 2 1 1) survive a key change."""
        return len({record for record in self.records if record.usable}) >= 2

    @property
    def renewal_safe(self) -> bool:
        """False when every matching record pins a whole certificate (selector 0): reissuing it breaks DANE."""
        return any(match.selector != SELECTOR_CERT for match in self.matches)


def dane_verdict(
    lookup: TlsaLookup,
    chain_der: Sequence[bytes] | None,
    *,
    reference_names: Sequence[str],
    now: float,
) -> DaneVerdict:
    """The DANE verdict on a presented chain (leaf first); ``None`` when no TLS session was made.

    ``reference_names`` are the names a DANE-TA leaf may carry (RFC 7672 section
    3.2.2: the MX host name, the TLSA base domain, or the next-hop domain).
    """
    if lookup.status is not TlsaLookupStatus.RECORDS:
        status = {
            TlsaLookupStatus.NO_TLSA: DaneStatus.NO_TLSA,
            TlsaLookupStatus.INSECURE: DaneStatus.INSECURE,
            TlsaLookupStatus.DNS_ERROR: DaneStatus.DNS_ERROR,
        }[lookup.status]
        return DaneVerdict(status, lookup, detail=lookup.detail)
    usable = [record for record in lookup.records if record.usable]
    if not usable:
        # RFC 7672 section 3.1: TLS is still mandatory, but cannot be authenticated.
        return DaneVerdict(DaneStatus.UNUSABLE, lookup, detail="only unusable TLSA records (usage 0/1 or malformed)")
    if not chain_der:
        return DaneVerdict(DaneStatus.FAIL, lookup, detail="no TLS session, but TLSA records make TLS mandatory")
    matches: list[DaneMatch] = []
    problems: list[str] = []
    for record in usable:
        if record.usage == DANE_EE and _matches(record, chain_der[0]):
            matches.append(DaneMatch(*record.kind, depth=0))
    for record in usable:
        if record.usage != DANE_TA:
            continue
        for depth in range(1, len(chain_der)):
            if not _matches(record, chain_der[depth]):
                continue
            problem = _chain_problem(chain_der[: depth + 1], reference_names, now)
            if problem is None:
                matches.append(DaneMatch(*record.kind, depth=depth))
            else:
                problems.append(f"{_kind_text(record.kind)} matched at depth {depth}, but {problem}")
            break
    matches = sorted(set(matches), key=lambda match: (match.usage != DANE_EE, match.depth, match.kind))
    if matches:
        return DaneVerdict(DaneStatus.PASS, lookup, tuple(matches), matches[0].describe())
    detail = "; ".join(problems) or f"no TLSA record matches the presented chain ({len(chain_der)} certificates)"
    return DaneVerdict(DaneStatus.FAIL, lookup, detail=detail)


def selected_bytes(certificate_der: bytes, selector: int) -> bytes | None:
    """What a selector picks from a certificate: all of it (0) or its SubjectPublicKeyInfo (1)."""
    if selector == SELECTOR_CERT:
        return certificate_der
    try:
        return read_certificate_fields(certificate_der).public_key_info
    except DerError:
        return None


_DIGESTS: dict[int, Callable[[bytes], bytes]] = {
    MATCH_FULL: lambda data: data,
    MATCH_SHA256: lambda data: hashlib.sha256(data).digest(),
    MATCH_SHA512: lambda data: hashlib.sha512(data).digest(),
}


def association_data(certificate_der: bytes, selector: int, matching_type: int) -> bytes | None:
    """The TLSA data a record of this selector and matching type must carry to match the certificate."""
    selected = selected_bytes(certificate_der, selector)
    digest = _DIGESTS.get(matching_type)
    return None if selected is None or digest is None else digest(selected)


def _kind_text(kind: tuple[int, int, int]) -> str:
    return " ".join(str(part) for part in kind)


def _matches(record: TlsaRecord, certificate_der: bytes) -> bool:
    return association_data(certificate_der, record.selector, record.matching_type) == record.data


def _chain_problem(chain_der: Sequence[bytes], reference_names: Sequence[str], now: float) -> str | None:
    """Why the leaf does not chain to the last certificate of ``chain_der`` as its only anchor, or None."""
    try:
        leaf, *rest = (crypto.load_certificate(crypto.FILETYPE_ASN1, der) for der in chain_der)
    except crypto.Error as error:
        return f"a certificate is unreadable: {error}"
    anchor = rest[-1]
    store = crypto.X509Store()
    store.add_cert(anchor)
    # The TLSA record, not self-signature or a root store, makes the anchor trusted;
    # OpenSSL's DANE support likewise accepts a chain that ends at a matched intermediate.
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    verify_as_tls_server_certificate(store)
    store.set_time(datetime.datetime.fromtimestamp(int(now), datetime.UTC))
    try:
        crypto.X509StoreContext(store, leaf, rest[:-1]).verify_certificate()
    except crypto.X509StoreContextError as error:
        code, depth, message = error.errors
        return f"the chain does not verify to it: {message} (code {code}, depth {depth})"
    try:
        fields = read_certificate_fields(chain_der[0])
    except DerError as error:
        return f"the leaf is unreadable: {error}"
    named = any(
        hostname_matches(
            name, dns_names=fields.dns_names, ip_addresses=fields.ip_addresses, common_names=fields.common_names
        )
        for name in reference_names
    )
    if not named:
        return f"the leaf names none of {', '.join(reference_names)}"
    return None
