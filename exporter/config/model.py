"""What the configuration says, as frozen values: what to probe, and when.

A ``ProbeSpec`` is everything one probe needs and nothing about time;
``check``, ``/probe`` and the scheduler all build it with ``probe_spec``.
A ``ScheduledTarget`` puts one on an interval with the labels its series
carry.
"""

from __future__ import annotations

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


class MtaStsSetting(enum.StrEnum):
    """Whether a domain's MTA-STS policy and TLS-RPT record are checked."""

    # Checked; a domain without a _mta-sts record reports just that.
    AUTO = "auto"
    OFF = "off"


class AuthMechanism(enum.StrEnum):
    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    CRAM_MD5 = "CRAM-MD5"


# The port a target gets when none is configured, by how it speaks TLS.
DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.IMPLICIT: 465, TlsMode.NONE: 25}


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
    # Connect to this address only, not to what ``host`` resolves to: one
    # (MX host, address) pair of a domain. SNI and the name check stay ``server_name``.
    connect_address: str | None = None

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
        connect_address=connect_address,
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
    mta_sts: MtaStsSetting = MtaStsSetting.AUTO
    # Senders refetch when the TXT id changes; an hour sees a lapsed policy host long before their caches expire.
    mta_sts_interval: float = 3600.0
    # Trust anchors for the policy host (private test PKIs); None: the system store, as senders use.
    mta_sts_ca_file: Path | None = None


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
        options = ProbeOptions(
            tls=self.options.tls,
            timeout=timeout,
            ehlo_name=self.options.ehlo_name,
            ca_file=self.options.ca_file,
            address_family=self.options.address_family,
            auth=self.options.auth,
            allow_plaintext_auth=self.options.allow_plaintext_auth,
        )
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


@dataclass(frozen=True)
class Config:
    source: Path
    targets: tuple[ScheduledTarget, ...]
    domains: tuple[DomainEntry, ...] = ()
    # Host targets with `addresses: all`: expanded through DNS at run time.
    host_addresses: tuple[HostAddressesEntry, ...] = ()
    dns: DnsSettings = field(default_factory=DnsSettings)
    # Things that work but deserve attention, such as a literal password.
    warnings: tuple[ConfigProblem, ...] = ()
    modules: Mapping[str, ProbeModule] = field(default_factory=lambda: MappingProxyType({}))
    # Empty: /probe refuses every target.
    probe_allow: tuple[ProbeAllowRule, ...] = ()

    def probe_allowed(self, host: str, port: int) -> bool:
        return any(rule.allows(host, port) for rule in self.probe_allow)

    def ca_files(self) -> set[Path | None]:
        """Every CA file a probe of this config may need (None: the system store)."""
        return (
            {target.spec.ca_file for target in self.targets}
            | {entry.target.spec.ca_file for entry in self.host_addresses}
            | {domain.options.ca_file for domain in self.domains}
            | {module.options.ca_file for module in self.modules.values()}
        )
