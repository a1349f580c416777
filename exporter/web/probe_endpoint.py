"""GET /probe: one probe now, blackbox_exporter style, for multi-target scraping.

Prometheus passes ``target`` and ``module`` and relabels the answer, so
sharding with ``hashmod`` works as with blackbox_exporter. An open /probe
would let anyone who reaches the exporter scan other hosts through it, so
only hosts and ports in ``probe_allow`` may be probed; with no allow-list,
nothing may. /probe never sends test messages.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import dns.resolver

from exporter.config.model import DEFAULT_PORTS, Config, ProbeModule, ProbeOptions, TlsMode
from exporter.config.values import split_host_port
from exporter.dns.resolver import DnsResolver
from exporter.metrics.render import render_probe, render_probes
from exporter.metrics.text_format import CONTENT_TYPE
from exporter.probe.domain import probe_domain
from exporter.probe.report import human_report
from exporter.probe.run import run_probe
from exporter.tls.context import TlsClients

# Answer before Prometheus gives up on the scrape (blackbox uses the same offset).
SCRAPE_TIMEOUT_OFFSET_SECONDS = 0.5
MINIMUM_TIMEOUT_SECONDS = 0.5
DEFAULT_MODULE = "default"


@dataclass(frozen=True)
class ProbeResponse:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def probe_timeout(module_timeout: float, scrape_timeout_header: str | None) -> float:
    """The module's timeout, shortened to fit the scrape's."""
    try:
        scrape_timeout = float(scrape_timeout_header) if scrape_timeout_header else None
    except ValueError:
        scrape_timeout = None
    if scrape_timeout is None:
        return module_timeout
    return max(MINIMUM_TIMEOUT_SECONDS, min(module_timeout, scrape_timeout - SCRAPE_TIMEOUT_OFFSET_SECONDS))


async def probe_on_demand(
    config: Config,
    tls_clients: TlsClients,
    query: Mapping[str, str],
    scrape_timeout_header: str | None,
    *,
    resolver: DnsResolver | None = None,
) -> ProbeResponse:
    requested = query.get("target", "").strip()
    if not requested:
        return ProbeResponse(400, "the target parameter is missing (e.g. /probe?target=mx.example.com:25&module=mx)\n")
    module_name = query.get("module", DEFAULT_MODULE)
    module = config.modules.get(module_name)
    if module is None:
        known = ", ".join(sorted(config.modules)) or "none are configured"
        return ProbeResponse(400, f"unknown module {module_name!r} (modules: {known})\n")
    try:
        host, port = split_host_port(requested)
    except ValueError as exc:
        return ProbeResponse(400, f"invalid target: {exc}\n")
    if module.mx:
        return await _probe_domain(
            config,
            tls_clients,
            module,
            domain=host,
            port=port,
            scrape_timeout_header=scrape_timeout_header,
            query=query,
        )
    spec = module.spec_for(host, port, timeout=probe_timeout(module.options.timeout, scrape_timeout_header))
    if not config.probe_allowed(spec.host, spec.port):
        return ProbeResponse(
            403, f"{spec.host}:{spec.port} is not in probe_allow; /probe only reaches listed hosts and ports\n"
        )
    result = await run_probe(spec, tls_clients.for_spec(spec), resolver=resolver)
    now = time.time()
    metrics = render_probe(spec, result, now)
    if query.get("debug", "").lower() in ("true", "1", "yes"):
        return ProbeResponse(
            200, f"{human_report(spec, result, now=now)}\nMetrics that would have been returned:\n{metrics}"
        )
    return ProbeResponse(200, metrics, CONTENT_TYPE)


async def _probe_domain(
    config: Config,
    tls_clients: TlsClients,
    module: ProbeModule,
    *,
    domain: str,
    port: int | None,
    scrape_timeout_header: str | None,
    query: Mapping[str, str],
) -> ProbeResponse:
    """Every (MX host, address) pair of ``domain``, with the domain-level series of its lookup."""
    # An MX listens on port 25 whatever its TLS mode (RFC 5321); implicit TLS keeps its own port.
    port = port or (DEFAULT_PORTS[TlsMode.IMPLICIT] if module.options.tls is TlsMode.IMPLICIT else 25)
    # The allow-list names the domain: its owner decides where its MX records point.
    if not config.probe_allowed(domain, port):
        return ProbeResponse(
            403, f"{domain}:{port} is not in probe_allow; /probe only reaches listed hosts and ports\n"
        )
    timeout = probe_timeout(module.options.timeout, scrape_timeout_header)
    # The lookup and the probes share the scrape's time: half each at most.
    options = ProbeOptions(
        tls=module.options.tls,
        timeout=max(MINIMUM_TIMEOUT_SECONDS, timeout / 2),
        ehlo_name=module.options.ehlo_name,
        ca_file=module.options.ca_file,
        address_family=module.options.address_family,
        dane=module.options.dane,
        client_certificate=module.options.client_certificate,
    )
    # Two lookups in sequence (MX, then the addresses) within the other half.
    dns_timeout = min(config.dns.timeout, max(MINIMUM_TIMEOUT_SECONDS, timeout / 4))
    try:
        resolver = DnsResolver(replace(config.dns, timeout=dns_timeout))
    except dns.resolver.NoResolverConfiguration:
        return ProbeResponse(503, "no DNS resolver: set dns.nameservers or fix /etc/resolv.conf\n")
    probed = await probe_domain(
        resolver,
        domain,
        port,
        options,
        tls_clients.client(options.ca_file, options.client_certificate),
        max_mx=module.max_mx,
    )
    now = time.time()
    metrics = render_probes(
        [(pair.spec, pair.result, (("mx", pair.mx.name), ("address", pair.address))) for pair in probed.pairs],
        now,
        probed.expansion,
    )
    if query.get("debug", "").lower() in ("true", "1", "yes"):
        reports = "".join(human_report(pair.spec, pair.result, now=now) + "\n" for pair in probed.pairs)
        return ProbeResponse(200, f"{reports}Metrics that would have been returned:\n{metrics}")
    return ProbeResponse(200, metrics, CONTENT_TYPE)
