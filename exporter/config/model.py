"""What the configuration says, as frozen values: what to probe, and when.

A ``ProbeSpec`` is everything one probe needs and nothing about time;
``check``, ``/probe`` and the scheduler all build it with ``probe_spec``.
A ``ScheduledTarget`` puts one on an interval with the labels its series
carry.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from exporter.config.secret import Secret
from exporter.dns.resolver import DnsSettings


class TlsMode(enum.StrEnum):
    STARTTLS = "starttls"
    IMPLICIT = "implicit"
    NONE = "none"


class AddressFamily(enum.StrEnum):
    ANY = "any"
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def socket_family(self) -> socket.AddressFamily:
        return {
            AddressFamily.ANY: socket.AF_UNSPEC,
            AddressFamily.IPV4: socket.AF_INET,
            AddressFamily.IPV6: socket.AF_INET6,
        }[self]


class AddressSelection(enum.StrEnum):
    """Which of a host's addresses a target probes."""

    # The first address that accepts the connection, as a mail client does.
    FIRST = "first"
    # Each address on its own, as the senders who happen to pick it see it.
    ALL = "all"


class DaneMode(enum.StrEnum):
    """Whether DANE (RFC 7672) is checked: where a secure TLSA exists, always, or never."""

    AUTO = "auto"
    REQUIRED = "required"
    OFF = "off"


class AuthMechanism(enum.StrEnum):
    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    CRAM_MD5 = "CRAM-MD5"


# The port a target gets when none is configured, by how it speaks TLS.
DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.IMPLICIT: 465, TlsMode.NONE: 25}

# Protocol versions by OpenSSL's names (smtp_tls_version_info, the scan's
# smtp_tls_version_accepted), oldest first: `require: min_tls_version` compares
# positions in this tuple.
TLS_VERSIONS = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# A scan is ~140 connections; its default interval, as issue 17 sets it.
DEFAULT_TLS_SCAN_INTERVAL = 6 * 3600.0


@dataclass(frozen=True)
class TlsRequirements:
    """``require:``: what the negotiated session must meet (else the probe fails),
    and what the scan must find the server enforcing (else an alert)."""

    # OpenSSL's name of the oldest acceptable version ("TLSv1.2"); None: any.
    min_tls_version: str | None = None
    # RSA key transport (no ephemeral key) breaks it.
    forward_secrecy: bool = False

    def version_too_low(self, version: str) -> bool:
        """Whether ``version`` (OpenSSL's name) is older than the minimum; unknown names are."""
        if self.min_tls_version is None:
            return False
        if version not in TLS_VERSIONS:
            return True
        return TLS_VERSIONS.index(version) < TLS_VERSIONS.index(self.min_tls_version)


@dataclass(frozen=True)
class AuthConfig:
    username: str
    password: Secret
    # None: pick the strongest mechanism both sides support (see smtp/auth.py).
    mechanism: AuthMechanism | None = None


@dataclass(frozen=True)
class SendConfig:
    """A test message sent through the target now and then."""

    sender: str
    recipients: tuple[str, ...]
    subject: str = "SMTP probe"
    interval: float = 3600.0


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate we present when a server asks for one, checked at load.

    Only the file names and the expiry are kept; OpenSSL reads the key from
    its file when the handshake context is built, once per configuration.
    """

    cert_file: Path
    key_file: Path
    # The certificate's notAfter (Unix time), read at load and on reload.
    not_after: float


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe, shared by targets, ``defaults`` and /probe modules."""

    tls: TlsMode
    timeout: float
    ehlo_name: str
    ca_file: Path | None = None
    address_family: AddressFamily = AddressFamily.ANY
    auth: AuthConfig | None = None
    # Credentials go only over verified TLS (trusted chain, matching name)
    # unless this is set.
    allow_plaintext_auth: bool = False
    require: TlsRequirements | None = None
    dane: DaneMode = DaneMode.AUTO
    client_certificate: ClientCertificate | None = None


@dataclass(frozen=True)
class ProbeSpec:
    """One server and how to probe it: everything a probe needs, nothing about when."""

    host: str
    port: int
    tls: TlsMode
    # SNI, and the name the certificate must match.
    server_name: str
    ehlo_name: str
    timeout: float
    ca_file: Path | None = None
    address_family: AddressFamily = AddressFamily.ANY
    auth: AuthConfig | None = None
    allow_plaintext_auth: bool = False
    send: SendConfig | None = None
    require: TlsRequirements | None = None
    # Connect to this address only, not to what ``host`` resolves to: one
    # (MX host, address) pair of a domain. SNI and the name check stay ``server_name``.
    connect_address: str | None = None
    dane: DaneMode = DaneMode.AUTO
    # Presented when the server asks (a CertificateRequest); None: we send none.
    client_certificate: ClientCertificate | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` (``[v6]:port``), as people write it; ``host[address]:port`` when pinned."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.connect_address is not None:
            host = f"{host}[{self.connect_address}]"
        return f"{host}:{self.port}"


def probe_spec(
    host: str,
    port: int | None,
    options: ProbeOptions,
    *,
    server_name: str | None = None,
    send: SendConfig | None = None,
    connect_address: str | None = None,
) -> ProbeSpec:
    """The one way every caller builds a ProbeSpec; the port defaults by TLS mode."""
    return ProbeSpec(
        host=host,
        port=port or DEFAULT_PORTS[options.tls],
        tls=options.tls,
        server_name=server_name or host,
        ehlo_name=options.ehlo_name,
        timeout=options.timeout,
        ca_file=options.ca_file,
        address_family=options.address_family,
        auth=options.auth,
        allow_plaintext_auth=options.allow_plaintext_auth,
        send=send,
        require=options.require,
        connect_address=connect_address,
        dane=options.dane,
        client_certificate=options.client_certificate,
    )


@dataclass(frozen=True)
class ScheduledTarget:
    """A probe spec on a schedule, with the labels its series carry.

    A pair of a domain (or of an ``addresses: all`` host) has a ``name`` of its
    own, unique and stable while DNS keeps the pair, and carries the entry's
    name in its ``target`` label beside ``mx`` and ``address``.
    """

    name: str
    spec: ProbeSpec
    interval: float
    labels: tuple[tuple[str, str], ...] = ()
    # How often the TLS capability scan runs (exporter/scan/); None: never
    # (`tls_scan: off`, or a `tls: none` target, which has no TLS to scan).
    tls_scan_interval: float | None = None
    # The configured entry a pair belongs to; "" for a plain host target.
    entry: str = ""
    mx: str | None = None
    address: str | None = None
    # Set when DNS found no address to probe: the pair reports this as a
    # dns_error instead of connecting anywhere.
    unresolved: str | None = None

    @property
    def target_label(self) -> str:
        return self.entry or self.name

    @property
    def identity_labels(self) -> tuple[tuple[str, str], ...]:
        """``target``, then ``mx`` and ``address`` where the target has them."""
        labels = [("target", self.target_label)]
        if self.mx is not None:
            labels.append(("mx", self.mx))
        if self.address is not None:
            labels.append(("address", self.address))
        return tuple(labels)


@dataclass(frozen=True)
class DomainEntry:
    """A mail domain: every (MX host, address) pair DNS gives it is probed like a host target."""

    name: str
    domain: str
    port: int
    options: ProbeOptions
    interval: float
    dns_interval: float
    max_mx: int
    labels: tuple[tuple[str, str], ...] = ()
    # Every pair is scanned on this interval (None: tls_scan off, or tls: none).
    tls_scan_interval: float | None = None


@dataclass(frozen=True)
class HostAddressesEntry:
    """A host target with ``addresses: all``: each address the DNS layer finds is probed as its own pair."""

    # The target as configured; its pairs differ only in the address they connect to.
    target: ScheduledTarget
    options: ProbeOptions
    dns_interval: float

    @property
    def name(self) -> str:
        return self.target.name


@dataclass(frozen=True)
class ProbeModule:
    """A named probe profile for /probe: a target's options without the target."""

    name: str
    # None: the probed host is the server name.
    server_name: str | None
    options: ProbeOptions
    # The target is a mail domain: probe every (MX host, address) pair.
    mx: bool = False
    max_mx: int = 10

    def spec_for(self, host: str, port: int | None, *, timeout: float) -> ProbeSpec:
        options = dataclasses.replace(self.options, timeout=timeout)
        return probe_spec(host, port, options, server_name=self.server_name)


@dataclass(frozen=True)
class ProbeAllowRule:
    """Which hosts and ports /probe may reach: a name pattern or an address range."""

    pattern: str
    ports: frozenset[int]
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @classmethod
    def parse(cls, pattern: str, ports: frozenset[int]) -> ProbeAllowRule:
        try:
            network = ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return cls(pattern.lower().rstrip("."), ports)
        return cls(pattern, ports, network)

    def allows(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host.strip("[]")) in self.network
            except ValueError:
                return False
        return fnmatch.fnmatchcase(host.lower().rstrip("."), self.pattern)


@dataclass(frozen=True)
class ConfigProblem:
    source: Path
    line: int
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.key_path}: {self.message}"


# What a probe's TLS client depends on: the CA file (None: the system store)
# and the client certificate it presents (None: none).
TlsClientKey = tuple[Path | None, ClientCertificate | None]


@dataclass(frozen=True)
class Config:
    source: Path
    targets: tuple[ScheduledTarget, ...]
    domains: tuple[DomainEntry, ...] = ()
    # Host targets with `addresses: all`: expanded through DNS at run time.
    host_addresses: tuple[HostAddressesEntry, ...] = ()
    # The resolver every DNS lookup of the exporter (MX, A/AAAA, TLSA) goes through.
    dns: DnsSettings = field(default_factory=DnsSettings)
    # Things that work but deserve attention, such as a literal password.
    warnings: tuple[ConfigProblem, ...] = ()
    modules: Mapping[str, ProbeModule] = field(default_factory=lambda: MappingProxyType({}))
    # Empty: /probe refuses every target.
    probe_allow: tuple[ProbeAllowRule, ...] = ()

    def probe_allowed(self, host: str, port: int) -> bool:
        return any(rule.allows(host, port) for rule in self.probe_allow)

    def tls_client_keys(self) -> set[TlsClientKey]:
        """Every (CA file, client certificate) pair a probe of this config may need."""
        return (
            {(target.spec.ca_file, target.spec.client_certificate) for target in self.targets}
            | {(entry.target.spec.ca_file, entry.target.spec.client_certificate) for entry in self.host_addresses}
            | {(domain.options.ca_file, domain.options.client_certificate) for domain in self.domains}
            | {(module.options.ca_file, module.options.client_certificate) for module in self.modules.values()}
        )
