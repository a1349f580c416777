"""A DNSSEC-signed mail domain followed by a running exporter: the domain and DANE families for real.

The demo has no DNS, so it can show neither a domain nor DANE. This world
does, on loopback only: nsd serves a signed zone under `test.`, unbound
validates it (and refuses every other name), and an exporter watches two
domains through it.

- `mail.maildomain.test` has two MX hosts on their own loopback addresses
  and one shared port (as port 25 would be). mx1 publishes two `3 1 1`
  records, its key and the next one: DANE passes, rollover-ready and
  renewal-safe. mx2's two records name keys it does not have (a renewal
  that forgot its TLSA): DANE fails on a chain that is otherwise trusted.
- `missing.maildomain.test` does not exist: its lookup fails with NXDOMAIN.

The exporter reaches every name through the test resolver (`dns:`); domain
pairs connect to their address, so no system resolver is involved.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.dane_scenarios import certificates, tlsa
from tests.support.dns_servers import DnsServers, Zone, ZoneKind, start_dns_servers, unavailable_reason
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import Pki
from tests.support.servers import ScenarioServers

ZONE = "maildomain.test"
DOMAIN = f"mail.{ZONE}"
# The entry names (the `target` label): a domain that works and one that does not exist.
DOMAIN_TARGET = "mail"
MISSING_TARGET = "missing"
MX_MATCHING = f"mx1.{DOMAIN}"
MX_RENEWED = f"mx2.{DOMAIN}"
# Addresses no other test binds (tests/test_domains.py uses 127.0.0.21-26).
ADDRESSES = {MX_MATCHING: "127.0.0.41", MX_RENEWED: "127.0.0.42"}


@dataclass
class MailDomainWorld:
    dns: DnsServers
    exporter: ExporterProcess
    port: int
    ca_file: Path
    # The `3 1 1 <hex>` record of the leaf both MX hosts present (computed here, not by the exporter).
    presented_record: str

    def scrape(self) -> Scrape:
        return self.exporter.scrape()


def _shared_port() -> int:
    with socket.socket() as probe:
        probe.bind((ADDRESSES[MX_MATCHING], 0))
        port: int = probe.getsockname()[1]
    return port


def start_mail_domain_world(pki: Pki, servers: ScenarioServers, base: Path) -> Iterator[MailDomainWorld]:
    """Start DNS, the MX servers and the exporter; yield once every pair and domain has a result."""
    require(unavailable_reason(), "the DNS-backed mail domain (real nsd and unbound)")
    leaf = pki.leaf(MX_MATCHING, MX_RENEWED)
    presented = certificates(leaf)[0]
    # Keys nobody presents: mx1's next key, and mx2's two forgotten ones.
    unused = [certificates(pki.leaf(MX_MATCHING))[0] for _ in range(3)]
    port = _shared_port()
    context = leaf.server_context(base, "mail-domain")
    for address in ADDRESSES.values():
        servers.smtp(tls_context=context, host=address, port=port)
    records = [
        "mail MX 10 mx1.mail",
        "mail MX 20 mx2.mail",
        *(f"{host.removesuffix('.' + ZONE)} A {address}" for host, address in ADDRESSES.items()),
        f"_{port}._tcp.mx1.mail TLSA {tlsa(3, 1, 1, presented)}",
        f"_{port}._tcp.mx1.mail TLSA {tlsa(3, 1, 1, unused[0])}",
        f"_{port}._tcp.mx2.mail TLSA {tlsa(3, 1, 1, unused[1])}",
        f"_{port}._tcp.mx2.mail TLSA {tlsa(3, 1, 1, unused[2])}",
    ]
    dns = start_dns_servers([Zone(ZONE, "\n".join(records), ZoneKind.SECURE)], base / "dns")
    resolver_host, resolver_port = dns.resolver_address
    config = base / "config.yml"
    config.write_text(
        f"dns: {{nameservers: ['{resolver_host}:{resolver_port}'], timeout: 3s}}\n"
        f"defaults: {{interval: 5s, timeout: 4s, ehlo_name: probe.test, ca_file: {pki.ca_file}}}\n"
        "domains:\n"
        f"  - {{name: {DOMAIN_TARGET}, domain: {DOMAIN}, port: {port}, dns_interval: 5s, labels: {{team: mail}}}}\n"
        f"  - {{name: {MISSING_TARGET}, domain: missing.{ZONE}, port: {port}, dns_interval: 5s}}\n"
    )
    try:
        exporter = ExporterProcess(config, base / "exporter.log")
    except BaseException:
        dns.stop()
        raise
    try:
        exporter.wait_for(_every_result_in, timeout=60)
        yield MailDomainWorld(dns, exporter, port, pki.ca_file, tlsa(3, 1, 1, presented))
    finally:
        exporter.stop()
        dns.stop()


def _every_result_in(scrape: Scrape) -> bool:
    pairs_probed = all(
        scrape.find("smtp_dane_status_info", target=DOMAIN_TARGET, mx=mx, address=address)
        for mx, address in ADDRESSES.items()
    )
    lookups_done = all(
        scrape.find("smtp_domain_lookup_success", target=name) for name in (DOMAIN_TARGET, MISSING_TARGET)
    )
    return pairs_probed and lookups_done
