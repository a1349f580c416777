"""The DANE test world: one STARTTLS server per posture and the signed zones naming them.

Shared by the DANE verdict tests and the exporter's end-to-end DANE tests.
TLSA data is computed here with cryptography, independently of the exporter's code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.dns_servers import DnsServers, Zone, ZoneKind, start_dns_servers
from tests.support.pki import DAY, NOW, Pki, ServerCertificate
from tests.support.servers import ScenarioServers, without_starttls

# unbound's port-53 address for posttls-finger (glibc's resolv.conf takes no port).
PORT_53_ADDRESS = "127.0.53.53"
SECURE = "dane.test"
INSECURE = "nodnssec.test"
BOGUS = "bogusdane.test"


def certificates(chain: ServerCertificate) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(chain.chain_pem)


def chain_der(chain: ServerCertificate) -> list[bytes]:
    return [certificate.public_bytes(serialization.Encoding.DER) for certificate in certificates(chain)]


def tlsa(usage: int, selector: int, matching_type: int, certificate: x509.Certificate) -> str:
    if selector == 0:
        selected = certificate.public_bytes(serialization.Encoding.DER)
    else:
        selected = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    data = {0: selected, 1: hashlib.sha256(selected).digest(), 2: hashlib.sha512(selected).digest()}[matching_type]
    return f"{usage} {selector} {matching_type} {data.hex()}"


@dataclass(frozen=True)
class Posture:
    """A host name under a zone, the chain its server presents, and its TLSA records."""

    label: str
    server: ServerCertificate
    records: tuple[str, ...]
    zone: str = SECURE
    starttls: bool = True

    @property
    def host(self) -> str:
        return f"{self.label}.{self.zone}"


def postures(pki: Pki) -> list[Posture]:
    def leaf(label: str, **options: object) -> ServerCertificate:
        return pki.leaf(f"{label}.{SECURE}", **options)  # type: ignore[arg-type]

    intermediate = x509.load_pem_x509_certificate(pki.intermediate.cert_pem.bytes())
    root = x509.load_pem_x509_certificate(pki.root.cert_pem.bytes())
    good = leaf("ee")
    old_key = leaf("ee-mismatch")
    renewed = leaf("ee-mismatch")  # the same name, a new key: TLSA still names the old one
    expired = leaf("ee-expired", not_before=NOW - 400 * DAY, not_after=NOW - 10 * DAY)
    misnamed = pki.leaf("somewhere.else.example")
    next_key = leaf("rollover")
    rollover = leaf("rollover")

    def ee(server: ServerCertificate, usage: int = 3, selector: int = 1, matching_type: int = 1) -> str:
        return tlsa(usage, selector, matching_type, certificates(server)[0])

    return [
        Posture("ee", good, (ee(good),)),
        Posture("ee-mismatch", renewed, (ee(old_key),)),
        Posture("ee-expired", expired, (ee(expired),)),
        Posture("ee-misnamed", misnamed, (ee(misnamed),)),
        Posture("ee-sha512", leaf("ee-sha512"), ()),  # records filled below: they need the leaf
        Posture("ta-intermediate", leaf("ta-intermediate"), (tlsa(2, 1, 1, intermediate),)),
        Posture("ta-root", leaf("ta-root"), (tlsa(2, 1, 1, root),)),
        Posture("ta-misnamed", misnamed, (tlsa(2, 1, 1, intermediate),)),
        Posture("usage1", leaf("usage1"), ()),
        Posture("rollover", rollover, (ee(rollover), ee(next_key))),
        Posture("cert-only", leaf("cert-only"), ()),
        Posture("no-tlsa", leaf("no-tlsa"), ()),
        Posture("no-starttls", good, (ee(good),), starttls=False),
        Posture("unsigned", good, (ee(good),), zone=INSECURE),
        Posture("bogus", good, (ee(good),), zone=BOGUS),
    ]


def _filled(posture: Posture) -> Posture:
    leaf_certificate = certificates(posture.server)[0]
    extra = {
        "ee-sha512": (tlsa(3, 1, 2, leaf_certificate),),
        "usage1": (tlsa(1, 1, 1, leaf_certificate),),
        "cert-only": (tlsa(3, 0, 1, leaf_certificate),),
    }.get(posture.label)
    if extra is None:
        return posture
    return Posture(posture.label, posture.server, extra, posture.zone, posture.starttls)


@dataclass
class DaneWorld:
    dns: DnsServers
    # label -> (posture, port of its server on 127.0.0.1)
    postures: dict[str, tuple[Posture, int]]

    def port(self, label: str) -> int:
        return self.postures[label][1]

    def posture(self, label: str) -> Posture:
        return self.postures[label][0]

    def hosts_file(self, path: Path) -> Path:
        names = {posture.host for posture, _port in self.postures.values()} | {f"alias.{SECURE}"}
        path.write_text("".join(f"127.0.0.1 {name}\n" for name in sorted(names)))
        return path


def start_dane_world(pki: Pki, servers: ScenarioServers, base: Path) -> Iterator[DaneWorld]:
    running: dict[str, tuple[Posture, int]] = {}
    for posture in map(_filled, postures(pki)):
        context = posture.server.server_context(base, posture.label)
        port = servers.smtp(tls_context=context, ehlo=None if posture.starttls else without_starttls)
        running[posture.label] = (posture, port)
    zone_lines: dict[str, list[str]] = {SECURE: [], INSECURE: [], BOGUS: []}
    for posture, port in running.values():
        lines = zone_lines[posture.zone]
        lines.append(f"{posture.label} A 127.0.0.1")
        lines.extend(f"_{port}._tcp.{posture.label} TLSA {record}" for record in posture.records)
    # RFC 7672 section 2.2.3: TLSA records are found at the secure CNAME target.
    zone_lines[SECURE].append("alias CNAME ee")
    # A secure name whose addresses live in an unsigned zone: no TLSA lookup at all.
    zone_lines[SECURE].append(f"outside CNAME unsigned.{INSECURE}.")
    zone_lines[SECURE].append(f"_{running['ee'][1]}._tcp.outside TLSA {running['ee'][0].records[0]}")
    zones = [
        Zone(SECURE, "\n".join(zone_lines[SECURE]), ZoneKind.SECURE),
        Zone(INSECURE, "\n".join(zone_lines[INSECURE]), ZoneKind.INSECURE),
        Zone(BOGUS, "\n".join(zone_lines[BOGUS]), ZoneKind.BOGUS),
    ]
    dns = start_dns_servers(zones, base / "dns", port_53_address=PORT_53_ADDRESS)
    try:
        yield DaneWorld(dns, running)
    finally:
        dns.stop()
