"""One probe of every (MX host, address) pair of a domain, now: for `check --mx` and /probe."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporter.config.model import ProbeOptions, ProbeSpec, probe_spec
from exporter.dns.mail_domain import DEFAULT_MAX_MX, DomainExpansion, MxHost, expand_domain
from exporter.dns.resolver import DnsResolver
from exporter.probe.result import ProbeResult
from exporter.probe.run import run_probe
from exporter.tls.context import TlsClient


@dataclass(frozen=True)
class PairProbe:
    mx: MxHost
    address: str
    spec: ProbeSpec
    result: ProbeResult


@dataclass(frozen=True)
class DomainProbe:
    expansion: DomainExpansion
    # In MX order (lowest preference first), each MX's addresses in order.
    pairs: tuple[PairProbe, ...]


async def probe_domain(
    resolver: DnsResolver,
    domain: str,
    port: int,
    options: ProbeOptions,
    tls_client: TlsClient,
    *,
    max_mx: int = DEFAULT_MAX_MX,
) -> DomainProbe:
    """Expand ``domain`` and probe each pair once, all at the same time (each within the timeout)."""
    expansion = await expand_domain(resolver, domain, max_mx=max_mx, family=options.address_family)
    specs = [
        (host, address, probe_spec(host.name, port, options, server_name=host.name, connect_address=address))
        for host in expansion.mx_hosts
        for address in host.addresses
    ]
    # The resolver that found the MX hosts also answers their TLSA lookups, as
    # the daemon's domain loops do: DANE is judged per pair here too.
    results = await asyncio.gather(*(run_probe(spec, tls_client, resolver=resolver) for _, _, spec in specs))
    pairs = tuple(
        PairProbe(host, address, spec, result) for (host, address, spec), result in zip(specs, results, strict=True)
    )
    return DomainProbe(expansion, pairs)
