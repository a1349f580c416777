"""The exporter's one DNS client: MX, A, AAAA, TLSA and TXT lookups all go through it.

DNSSEC is the resolver's job: like Postfix with ``smtp_dns_support_level =
dnssec``, we ask with the DO bit and the AD flag set and trust the AD bit of the
answer. That is only sound when the configured resolver validates and is
reached over a trusted path (on loopback, or the same host).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, replace
from enum import StrEnum

import dns.asyncresolver
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdata
import dns.resolver
from dns.rdatatype import RdataType

from exporter.config.values import split_host_port

DNS_PORT = 53
# Fits a DNSSEC-signed answer in one unfragmented UDP datagram (DNS flag day 2020);
# larger answers come truncated and are fetched again over TCP.
_EDNS_PAYLOAD = 1232


class DnsStatus(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class DnsSettings:
    """Which resolver to ask; no nameservers means the system's (/etc/resolv.conf)."""

    nameservers: tuple[tuple[str, int], ...] = ()
    timeout: float = 5.0


@dataclass(frozen=True)
class DnsAnswer:
    name: str
    rdtype: RdataType
    status: DnsStatus
    records: tuple[dns.rdata.Rdata, ...] = ()
    # The names CNAME records redirected the query to, in order; the last is the canonical name.
    cname_chain: tuple[str, ...] = ()
    # The resolver's AD bit: the answer (or the denial) was DNSSEC-validated.
    authenticated: bool = False
    # RFC 8914 Extended DNS Errors, e.g. unbound's reason for a bogus answer.
    extended_error: str | None = None
    detail: str = ""
    duration_seconds: float = 0.0

    @property
    def canonical_name(self) -> str:
        return self.cname_chain[-1] if self.cname_chain else self.name


def normalized_name(name: dns.name.Name) -> str:
    """Lower case, no trailing dot: how names appear in results and labels."""
    return name.to_text(omit_final_dot=True).lower()


def parse_nameserver(text: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` (a bare IPv6 address takes no port) to (address, port)."""
    value = text.strip()
    try:
        host, port = split_host_port(value)
    except ValueError as error:
        raise ValueError(f"nameserver {text!r}: {error}") from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A name would need DNS to find the server that answers DNS.
        raise ValueError(f"nameserver {text!r}: {host!r} is not an IP address") from None
    if value.startswith("["):
        closed, after = "]" in value, value.partition("]")[2]
        if not closed or address.version != 6 or after[:1] not in ("", ":"):
            raise ValueError(f"nameserver {text!r}: expected an IPv6 address in brackets, as in [::1]:53")
    return host, DNS_PORT if port is None else port


class DnsResolver:
    """Lookups that never raise for DNS outcomes: every failure is a ``DnsAnswer`` status."""

    def __init__(self, settings: DnsSettings) -> None:
        """Raises ``dns.resolver.NoResolverConfiguration`` when the system resolver has no nameservers."""
        if settings.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in settings.nameservers]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = settings.timeout
        # A lost datagram is asked again (or of the next nameserver) within the lifetime.
        resolver.timeout = min(resolver.timeout, settings.timeout)
        resolver.flags = dns.flags.RD | dns.flags.AD
        resolver.use_edns(0, dns.flags.DO, _EDNS_PAYLOAD)
        # No cache of ours: a DNS change is seen as soon as the resolver sees it.
        resolver.cache = None
        self._resolver = resolver

    async def lookup(self, name: str, rdtype: RdataType) -> DnsAnswer:
        started = time.monotonic()
        answer = await self._resolve(name, rdtype)
        return replace(answer, duration_seconds=time.monotonic() - started)

    async def _resolve(self, text: str, rdtype: RdataType) -> DnsAnswer:
        try:
            qname = dns.name.from_text(text)
        except (dns.exception.DNSException, UnicodeError) as error:
            return DnsAnswer(text, rdtype, DnsStatus.ERROR, detail=f"invalid name: {error}")
        name = normalized_name(qname)
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as nxdomain:
            # What NXDOMAIN.responses() returns; that method has no type annotations.
            response = nxdomain.kwargs.get("responses", {}).get(qname)
            return _from_response(name, rdtype, DnsStatus.NXDOMAIN, response)
        except dns.exception.Timeout as timeout:
            return DnsAnswer(name, rdtype, DnsStatus.TIMEOUT, detail=str(timeout))
        except dns.resolver.NoNameservers as failed:
            servfail = _servfail_response(failed)
            if servfail is not None:
                return _from_response(name, rdtype, DnsStatus.SERVFAIL, servfail, detail=str(failed))
            return DnsAnswer(name, rdtype, DnsStatus.ERROR, detail=str(failed))
        except (dns.exception.DNSException, OSError) as error:
            return DnsAnswer(name, rdtype, DnsStatus.ERROR, detail=str(error) or type(error).__name__)
        status = DnsStatus.OK if answer.rrset is not None else DnsStatus.NODATA
        return DnsAnswer(
            name,
            rdtype,
            status,
            tuple(answer.rrset) if answer.rrset is not None else (),
            _cname_chain(answer.chaining_result),
            _authenticated(answer.response),
            _extended_error(answer.response),
        )


def _from_response(
    name: str, rdtype: RdataType, status: DnsStatus, response: dns.message.Message | None, detail: str = ""
) -> DnsAnswer:
    if response is None:
        return DnsAnswer(name, rdtype, status, detail=detail)
    chain: tuple[str, ...] = ()
    if isinstance(response, dns.message.QueryMessage):
        try:
            chain = _cname_chain(response.resolve_chaining())
        except dns.exception.DNSException:
            chain = ()
    return DnsAnswer(
        name, rdtype, status, (), chain, _authenticated(response), _extended_error(response), detail=detail
    )


def _servfail_response(failed: dns.resolver.NoNameservers) -> dns.message.Message | None:
    # Each entry: (nameserver, tcp, port, error, response); a SERVFAIL comes with its response.
    for *_, response in failed.kwargs.get("errors", ()):
        if isinstance(response, dns.message.Message) and response.rcode() == dns.rcode.SERVFAIL:
            return response
    return None


def _cname_chain(chaining: dns.message.ChainingResult) -> tuple[str, ...]:
    return tuple(normalized_name(rrset[0].target) for rrset in chaining.cnames if len(rrset) > 0)


def _authenticated(response: dns.message.Message) -> bool:
    return bool(response.flags & dns.flags.AD)


def _extended_error(response: dns.message.Message) -> str | None:
    errors = [option.to_text() for option in response.options if isinstance(option, dns.edns.EDEOption)]
    return "; ".join(errors) if errors else None
