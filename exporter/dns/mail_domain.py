"""A mail domain's MX hosts and their addresses, as a sender finds them (RFC 5321 section 5.1)."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
from dns.rdatatype import RdataType

from exporter.config.model import AddressFamily
from exporter.dns.resolver import DnsAnswer, DnsResolver, DnsStatus, normalized_name

# internet.nl's limit: a domain with more MX hosts than this is odd, and probing them all is costly.
DEFAULT_MAX_MX = 10
_ROOT = "."
_ADDRESS_TYPES = {
    AddressFamily.ANY: (RdataType.A, RdataType.AAAA),
    AddressFamily.IPV4: (RdataType.A,),
    AddressFamily.IPV6: (RdataType.AAAA,),
}


class LookupFailure(StrEnum):
    """Why a lookup failed: the ``reason`` of ``smtp_domain_lookup_error_info``."""

    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_TIMEOUT = "dns_timeout"
    DNS_ERROR = "dns_error"


class MxNote(StrEnum):
    """An MX target that works, or may, but is not what RFC 5321 asks for."""

    # An MX names a host; an address in its place is a misconfiguration some senders still follow.
    IP_LITERAL = "ip_literal"
    LOCALHOST = "localhost"
    # RFC 2181 section 10.3: an MX target must not be an alias.
    CNAME = "cname"


@dataclass(frozen=True)
class MxRecord:
    preference: int
    # Lower case, no trailing dot; "." is the null MX's target.
    exchange: str


@dataclass(frozen=True)
class AddressLookupProblem:
    rdtype: RdataType
    reason: LookupFailure
    extended_error: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int
    # IPv4 before IPv6, each in numeric order, so results compare across lookups.
    addresses: tuple[str, ...]
    notes: tuple[MxNote, ...] = ()
    problems: tuple[AddressLookupProblem, ...] = ()
    # Where a CNAME led (DANE's TLSA base name may follow it, RFC 7672 section 2.2.3).
    canonical_name: str = ""
    # Every address lookup (answer or denial) carried the AD bit: DANE needs it (RFC 7672 section 2.2.2).
    addresses_dnssec_secure: bool = False


@dataclass(frozen=True)
class DomainExpansion:
    domain: str
    success: bool
    reason: LookupFailure | None
    mx_hosts: tuple[MxHost, ...]
    # RFC 5321 section 5.1: no MX RRset, so the domain itself is the one MX.
    implicit_mx: bool
    # RFC 7505: the domain accepts no mail; not a failure.
    null_mx: bool
    # The MX answer (or its denial) was DNSSEC-authenticated (RFC 7672 section 2.2.1).
    mx_dnssec_secure: bool
    # MX records published, before the max_mx cap.
    mx_record_count: int
    extended_error: str | None
    detail: str
    timestamp_seconds: float
    duration_seconds: float


def lookup_failure(status: DnsStatus) -> LookupFailure | None:
    """The failure a lookup status stands for; None for an answer or a plain "no such record"."""
    return {
        DnsStatus.NXDOMAIN: LookupFailure.DNS_NXDOMAIN,
        DnsStatus.SERVFAIL: LookupFailure.DNS_SERVFAIL,
        DnsStatus.TIMEOUT: LookupFailure.DNS_TIMEOUT,
        DnsStatus.ERROR: LookupFailure.DNS_ERROR,
    }.get(status)


def is_null_mx(records: Sequence[MxRecord]) -> bool:
    # RFC 7505 section 3: a null MX stands alone; any preference is taken, as no host could follow.
    return len(records) == 1 and records[0].exchange == _ROOT


def mx_by_preference(records: Iterable[MxRecord], max_mx: int = DEFAULT_MAX_MX) -> tuple[MxRecord, ...]:
    """Lowest preference first, at most ``max_mx``; each host once, at its lowest preference.

    RFC 5321 lets senders shuffle equal preferences; we order them by name so that
    results and the max_mx cut stay the same however the resolver orders its answer.
    A "." target beside other records (RFC 7505 forbids it) leads nowhere and is dropped.
    """
    if max_mx < 1:
        raise ValueError(f"max_mx must be at least 1, not {max_mx}")
    best: dict[str, MxRecord] = {}
    for record in records:
        if record.exchange == _ROOT:
            continue
        known = best.get(record.exchange)
        if known is None or record.preference < known.preference:
            best[record.exchange] = record
    return tuple(sorted(best.values(), key=lambda record: (record.preference, record.exchange)))[:max_mx]


def mx_name_notes(exchange: str) -> tuple[MxNote, ...]:
    """What the MX target's name alone tells (a CNAME shows only in the address lookup)."""
    if _ip_literal(exchange) is not None:
        return (MxNote.IP_LITERAL,)
    if exchange == "localhost" or exchange.endswith(".localhost"):
        return (MxNote.LOCALHOST,)
    return ()


async def expand_domain(
    resolver: DnsResolver,
    domain: str,
    *,
    max_mx: int = DEFAULT_MAX_MX,
    family: AddressFamily = AddressFamily.ANY,
) -> DomainExpansion:
    """The domain's MX hosts with their addresses; DNS failures are in the result, never raised."""
    timestamp = time.time()
    started = time.monotonic()
    mx = await resolver.lookup(domain, RdataType.MX)
    records = [
        MxRecord(record.preference, normalized_name(record.exchange))
        for record in mx.records
        if isinstance(record, dns.rdtypes.ANY.MX.MX)
    ]
    implicit = mx.status is DnsStatus.NODATA
    null_mx = mx.status is DnsStatus.OK and is_null_mx(records)
    if implicit:
        # RFC 5321 section 5.1: a CNAME'd domain is processed as its canonical name.
        targets: tuple[MxRecord, ...] = (MxRecord(0, mx.canonical_name),)
    elif mx.status is DnsStatus.OK and not null_mx:
        targets = mx_by_preference(records, max_mx)
    else:
        targets = ()
    hosts = await asyncio.gather(*(_mx_host(resolver, target, family) for target in targets))
    reason = lookup_failure(mx.status)
    return DomainExpansion(
        domain=mx.name,
        success=reason is None,
        reason=reason,
        mx_hosts=tuple(hosts),
        implicit_mx=implicit,
        null_mx=null_mx,
        mx_dnssec_secure=mx.authenticated and reason is None,
        mx_record_count=len(records),
        extended_error=mx.extended_error,
        detail=mx.detail,
        timestamp_seconds=timestamp,
        duration_seconds=time.monotonic() - started,
    )


async def lookup_host(resolver: DnsResolver, name: str, family: AddressFamily = AddressFamily.ANY) -> MxHost:
    """One host's addresses (a target with ``addresses: all``), looked up as an MX host's are."""
    return await _mx_host(resolver, MxRecord(0, name.lower().removesuffix(".")), family)


async def _mx_host(resolver: DnsResolver, record: MxRecord, family: AddressFamily) -> MxHost:
    notes = mx_name_notes(record.exchange)
    literal = _ip_literal(record.exchange)
    if literal is not None:
        wanted = family is AddressFamily.ANY or family.value == f"ipv{literal.version}"
        addresses = (str(literal),) if wanted else ()
        return MxHost(record.exchange, record.preference, addresses, notes, canonical_name=record.exchange)
    lookups = await asyncio.gather(*(resolver.lookup(record.exchange, rdtype) for rdtype in _ADDRESS_TYPES[family]))
    aliased = next((lookup for lookup in lookups if lookup.cname_chain), None)
    if aliased is not None:
        notes = (*notes, MxNote.CNAME)
    return MxHost(
        name=record.exchange,
        preference=record.preference,
        addresses=tuple(address for lookup in lookups for address in _addresses(lookup)),
        notes=notes,
        problems=tuple(_problems(lookups)),
        canonical_name=aliased.canonical_name if aliased is not None else record.exchange,
        addresses_dnssec_secure=all(
            lookup.authenticated and lookup.status in (DnsStatus.OK, DnsStatus.NODATA) for lookup in lookups
        ),
    )


def _addresses(lookup: DnsAnswer) -> list[str]:
    found = {
        ipaddress.ip_address(record.address)
        for record in lookup.records
        if isinstance(record, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
    }
    return [str(address) for address in sorted(found)]


def _problems(lookups: Iterable[DnsAnswer]) -> Iterable[AddressLookupProblem]:
    for lookup in lookups:
        reason = lookup_failure(lookup.status)
        if reason is not None:
            yield AddressLookupProblem(lookup.rdtype, reason, lookup.extended_error, lookup.detail)


def _ip_literal(exchange: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(exchange.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
