"""TLSA records for an SMTP server, looked up the way RFC 7672 section 2.2 asks a sender to.

DNSSEC is the resolver's: we trust its AD bit (see exporter/dns/resolver.py), so
the resolver must validate and be reached over a trusted path.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.rdtypes.ANY.TLSA
from dns.rdatatype import RdataType

from exporter.dns.resolver import DnsAnswer, DnsResolver, DnsStatus

# RFC 7672 section 3.1: only DANE-TA(2) and DANE-EE(3) authenticate an SMTP server.
DANE_TA = 2
DANE_EE = 3
SELECTOR_CERT = 0
SELECTOR_SPKI = 1
MATCH_FULL = 0
MATCH_SHA256 = 1
MATCH_SHA512 = 2
# RFC 7671 section 5.1 (via RFC 6698 errata): a digest of the wrong length can never match.
_DIGEST_LENGTHS = {MATCH_SHA256: 32, MATCH_SHA512: 64}


@dataclass(frozen=True)
class TlsaRecord:
    usage: int
    selector: int
    matching_type: int
    data: bytes

    @property
    def kind(self) -> tuple[int, int, int]:
        return (self.usage, self.selector, self.matching_type)

    @property
    def usable(self) -> bool:
        """RFC 7672 section 3.1: usages 0/1, unknown selectors or matching types are unusable."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (SELECTOR_CERT, SELECTOR_SPKI):
            return False
        if self.matching_type == MATCH_FULL:
            return len(self.data) > 0
        return len(self.data) == _DIGEST_LENGTHS.get(self.matching_type, -1)

    def text(self) -> str:
        """As in the zone file: ``3 1 1 <hex>``."""
        return f"{self.usage} {self.selector} {self.matching_type} {self.data.hex()}"


class TlsaLookupStatus(enum.StrEnum):
    RECORDS = "records"
    # Secure NXDOMAIN or NODATA: DANE does not apply (RFC 7672 section 2.2).
    NO_TLSA = "no_tlsa"
    # The host's addresses or the TLSA answer are not DNSSEC-signed: DANE does not apply.
    INSECURE = "insecure"
    # Bogus, SERVFAIL, timeout: a DANE sender defers the mail; a failure, not "no DANE".
    DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class TlsaLookup:
    status: TlsaLookupStatus
    # Where the TLSA records were asked for (or would be), e.g. ``_25._tcp.mx.example.net``.
    query_name: str
    # The TLSA base domain: the host, or its secure CNAME target (RFC 7672 section 2.2.3).
    base_name: str
    records: tuple[TlsaRecord, ...] = ()
    detail: str = ""

    @property
    def secure(self) -> bool:
        """The lookup came back DNSSEC-validated (records or a denial)."""
        return self.status in (TlsaLookupStatus.RECORDS, TlsaLookupStatus.NO_TLSA)


def tlsa_name(port: int, base_name: str) -> str:
    return f"_{port}._tcp.{base_name.rstrip('.').lower()}"


def tlsa_records(answer: DnsAnswer) -> tuple[TlsaRecord, ...]:
    return tuple(
        TlsaRecord(record.usage, record.selector, record.mtype, bytes(record.cert))
        for record in answer.records
        if isinstance(record, dns.rdtypes.ANY.TLSA.TLSA)
    )


def address_security(answers: Sequence[DnsAnswer]) -> tuple[TlsaLookupStatus | None, str]:
    """Whether the host's address lookups allow a TLSA lookup (None), or why not.

    RFC 7672 section 2.2.2: with insecure address records no TLSA lookup is made;
    a failed (bogus) address lookup leaves the host unreachable to a DANE sender.
    """
    failed = [answer for answer in answers if answer.status in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT, DnsStatus.ERROR)]
    if failed:
        first = failed[0]
        why = first.extended_error or first.detail or first.status.value
        return (
            TlsaLookupStatus.DNS_ERROR,
            f"address lookup {first.rdtype.name} {first.name}: {first.status.value} ({why})",
        )
    if not answers or not all(answer.authenticated for answer in answers):
        return TlsaLookupStatus.INSECURE, "the host's address records are not DNSSEC-signed"
    if not any(answer.records for answer in answers):
        return TlsaLookupStatus.INSECURE, "the host has no address records"
    return None, ""


def classify_tlsa_answer(answer: DnsAnswer) -> tuple[TlsaLookupStatus, tuple[TlsaRecord, ...], str]:
    if answer.status in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT, DnsStatus.ERROR):
        why = answer.extended_error or answer.detail or answer.status.value
        return TlsaLookupStatus.DNS_ERROR, (), f"TLSA lookup {answer.name}: {answer.status.value} ({why})"
    if not answer.authenticated:
        return TlsaLookupStatus.INSECURE, (), f"TLSA answer for {answer.name} is not DNSSEC-signed"
    if answer.status is DnsStatus.OK:
        records = tlsa_records(answer)
        if records:
            return TlsaLookupStatus.RECORDS, records, ""
    return TlsaLookupStatus.NO_TLSA, (), f"no TLSA records at {answer.name} (secure denial)"


async def lookup_tlsa(
    resolver: DnsResolver, host: str, port: int, *, address_answers: Sequence[DnsAnswer] | None = None
) -> TlsaLookup:
    """The TLSA records for ``host``:``port``; DNS failures are in the result, never raised.

    ``address_answers`` are the host's A/AAAA lookups when the caller made them
    (an MX pair); otherwise they are made here.
    """
    host = host.rstrip(".").lower()
    if _is_ip_literal(host):
        return TlsaLookup(TlsaLookupStatus.INSECURE, "", host, detail="an IP address has no TLSA records")
    if address_answers is None:
        address_answers = await asyncio.gather(
            resolver.lookup(host, RdataType.A), resolver.lookup(host, RdataType.AAAA)
        )
    refusal, why = address_security(address_answers)
    if refusal is not None:
        return TlsaLookup(refusal, tlsa_name(port, host), host, detail=why)
    # RFC 7672 section 2.2.3: with a secure CNAME chain the TLSA base domain is
    # the expanded name first, then the name as given.
    canonical = next((answer.canonical_name for answer in address_answers if answer.cname_chain), host)
    bases = (canonical, host) if canonical != host else (host,)
    lookup = TlsaLookup(TlsaLookupStatus.NO_TLSA, tlsa_name(port, host), host)
    for base in bases:
        answer = await resolver.lookup(tlsa_name(port, base), RdataType.TLSA)
        status, records, detail = classify_tlsa_answer(answer)
        lookup = TlsaLookup(status, tlsa_name(port, base), base, records, detail)
        if status is not TlsaLookupStatus.NO_TLSA:
            return lookup
    return lookup


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
