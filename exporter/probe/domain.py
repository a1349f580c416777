"""One probe of every (MX host, address) pair of a domain, now: for `check --mx` and /probe."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from exporter.config.model import ProbeOptions, ProbeSpec, probe_spec
from exporter.dns.mail_domain import DEFAULT_MAX_MX, DomainExpansion, MxHost, expand_domain
from exporter.dns.resolver import DnsResolver
from exporter.mta_sts.discovery import discover_mta_sts
from exporter.mta_sts.enforcement import with_sts_failures
from exporter.mta_sts.result import MtaStsResult
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
    # None when MTA-STS was not asked for.
    mta_sts: MtaStsResult | None = None


async def probe_domain(
    resolver: DnsResolver,
    domain: str,
    port: int,
    options: ProbeOptions,
    tls_client: TlsClient,
    *,
    max_mx: int = DEFAULT_MAX_MX,
    mta_sts_context: ssl.SSLContext | None = None,
) -> DomainProbe:
    """Expand ``domain`` and probe each pair once, all at the same time (each within the timeout).

    With ``mta_sts_context``, the domain's MTA-STS policy is checked beside the
    probes, and a policy in enforce mode adds its failures to each pair.
    """
    expansion = await expand_domain(resolver, domain, max_mx=max_mx, family=options.address_family)
    specs = [
        (host, address, probe_spec(host.name, port, options, server_name=host.name, connect_address=address))
        for host in expansion.mx_hosts
        for address in host.addresses
    ]
    mta_sts: MtaStsResult | None = None
    # The resolver that found the MX hosts also answers their TLSA lookups, as
    # the daemon's domain loops do: DANE is judged per pair here too.
    probes = asyncio.gather(*(run_probe(spec, tls_client, resolver=resolver) for _, _, spec in specs))
    if mta_sts_context is not None:
        deadline = asyncio.get_running_loop().time() + options.timeout
        mx_hosts = [host.name for host in expansion.mx_hosts]
        discovery = discover_mta_sts(
            resolver, domain, mx_hosts, previous=None, context=mta_sts_context, deadline=deadline
        )
        results, mta_sts = await asyncio.gather(probes, discovery)
    else:
        results = await probes
    known = mta_sts.known_policy if mta_sts is not None else None
    pairs = tuple(
        PairProbe(host, address, spec, with_sts_failures(known, host.name, result))
        for (host, address, spec), result in zip(specs, results, strict=True)
    )
    return DomainProbe(expansion, pairs, mta_sts)
