"""A real DNS hierarchy on loopback: nsd serves the zones, unbound validates them.

Every zone is a child of the test TLD `test.`, which is signed with keys made
for the run and is unbound's only trust anchor. A child is secure (signed, DS
in `test.`), insecure (unsigned, no DS), bogus (signed with signatures that
expired long ago) or broken (nsd has no data for it and answers SERVFAIL), so
the DANE and MTA-STS tests can reuse the same setup. unbound refuses every name
outside `test.` and sends its own queries from 127.0.0.1 only, so nothing here
ever reaches the internet. Keys and zone files live in the given directory.

    servers = start_dns_servers([Zone("mail.test", "@ MX 10 mx1")], tmp_path)
    resolver = DnsResolver(servers.settings())
    servers.replace_zone("mail.test", "@ MX 10 mx2")  # seen by the next lookup
    servers.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.SOA

from exporter.dns.resolver import DnsSettings
from tests.support.ports import port_for_a_server

LOOPBACK = "127.0.0.1"
TEST_TLD = "test"
# Every zone names the parent's server; unbound reaches each zone through its
# own stub-zone (glue cannot carry a port), so this address is never queried.
_NAMESERVER = f"ns.{TEST_TLD}."
_TOOLS = ("nsd", "nsd-control", "unbound", "unbound-control", "dnssec-keygen", "dnssec-signzone", "dnssec-dsfromkey")
# Long-expired signatures make a zone bogus for any validator (FACTS.md).
_EXPIRED_SIGNATURES = ("-s", "20240101000000", "-e", "20240201000000")
_TTL = 30


class ZoneKind(StrEnum):
    SECURE = "secure"  # signed, with its DS in test.
    INSECURE = "insecure"  # unsigned, no DS: a provably insecure delegation
    BOGUS = "bogus"  # signed, DS in test., every signature long expired: SERVFAIL
    # Delegated, but nsd has no zone file for it and answers SERVFAIL, so
    # unbound does too, at once (a server that never answers would keep unbound
    # retrying past any client's timeout).
    BROKEN = "broken"


@dataclass(frozen=True)
class Zone:
    """A child zone of `test.`; ``records`` are zone-file lines relative to its origin (SOA and NS are added)."""

    name: str
    records: str = ""
    kind: ZoneKind = ZoneKind.INSECURE

    @property
    def origin(self) -> str:
        return self.name.rstrip(".").lower() + "."


def unavailable_reason() -> str | None:
    """Why the DNS test servers cannot run here, or None when they can."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs the Debian packages nsd, unbound and bind9-utils (missing: {', '.join(missing)})"
    return None


@dataclass
class DnsServers:
    base: Path
    authoritative_port: int
    resolver_port: int
    zones: dict[str, Zone]
    _serials: dict[str, int] = field(default_factory=dict)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def resolver_address(self) -> tuple[str, int]:
        """The validating resolver (unbound): the one the exporter is pointed at."""
        return (LOOPBACK, self.resolver_port)

    @property
    def authoritative_address(self) -> tuple[str, int]:
        """The authoritative server (nsd): answers without the AD bit, and only for the test zones."""
        return (LOOPBACK, self.authoritative_port)

    def settings(self, timeout: float = 5.0) -> DnsSettings:
        return DnsSettings(nameservers=(self.resolver_address,), timeout=timeout)

    def replace_zone(self, name: str, records: str) -> None:
        """Serve new records for a zone; returns once nsd serves them and unbound has forgotten the old ones."""
        zone = self.zones[_origin(name)]
        if zone.kind is ZoneKind.BROKEN:
            raise ValueError(f"{zone.origin} is broken by design; nsd serves no records for it")
        zone = Zone(zone.name, records, zone.kind)
        self.zones[zone.origin] = zone
        serial = self._write_zone(zone)
        _run("nsd-control", "-c", str(self.base / "nsd.conf"), "reload", zone.origin)
        self._wait_for_serial(zone.origin, serial)
        _run("unbound-control", "-c", str(self.base / "unbound.conf"), "flush_zone", zone.origin)
        _run("unbound-control", "-c", str(self.base / "unbound.conf"), "flush_negative")
        _run("unbound-control", "-c", str(self.base / "unbound.conf"), "flush_bogus")

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def log_text(self) -> str:
        logs = (self.base / name for name in ("nsd.log", "nsd.out", "unbound.log", "unbound.out"))
        return "\n".join(f"== {log.name}\n{log.read_text(errors='replace')}" for log in logs if log.exists())

    def _write_zone(self, zone: Zone) -> int:
        """Write (and sign) the file nsd serves for ``zone``; returns its new SOA serial."""
        serial = self._serials.get(zone.origin, 0) + 1
        self._serials[zone.origin] = serial
        served = self.base / "zones" / f"{zone.origin}zone"
        previous_mtime = served.stat().st_mtime_ns if served.exists() else 0
        text = (
            f"$ORIGIN {zone.origin}\n$TTL {_TTL}\n"
            f"@ SOA {_NAMESERVER} hostmaster.{TEST_TLD}. {serial} 3600 600 86400 {_TTL}\n"
            f"@ NS {_NAMESERVER}\n{zone.records}\n"
        )
        if zone.kind in (ZoneKind.SECURE, ZoneKind.BOGUS):
            keys = self._keys(zone.origin)
            unsigned = self.base / "zones" / f"{zone.origin}unsigned"
            key_records = "".join(Path(f"{key}.key").read_text() for key in keys)
            unsigned.write_text(text + key_records)
            validity = _EXPIRED_SIGNATURES if zone.kind is ZoneKind.BOGUS else ()
            # -P: dnssec-signzone's own check would reject the expired signatures we want.
            _run(
                "dnssec-signzone", "-q", "-P", *validity, "-d", str(self.base / "keys"),
                "-o", zone.origin, "-f", str(served), str(unsigned), *keys,
            )  # fmt: skip
        else:
            served.write_text(text)
        # nsd reloads a zone only when its file's mtime changed; two writes in
        # one clock tick must still count as a change.
        new_mtime = max(served.stat().st_mtime_ns, previous_mtime + 1_000_000_000)
        os.utime(served, ns=(new_mtime, new_mtime))
        return serial

    def _keys(self, origin: str) -> tuple[str, str]:
        """The zone's key-signing and zone-signing keys (algorithm 13), made on first use."""
        directory = self.base / "keys"
        known = sorted(directory.glob(f"K{origin}+013+*.key"))
        if not known:
            for flags in (("-f", "KSK"), ()):
                _run("dnssec-keygen", "-q", "-K", str(directory), "-a", "ECDSAP256SHA256", "-n", "ZONE", *flags, origin)
            known = sorted(directory.glob(f"K{origin}+013+*.key"))
        ksk = [key for key in known if " 257 " in key.read_text()]
        zsk = [key for key in known if " 256 " in key.read_text()]
        return (str(ksk[0]).removesuffix(".key"), str(zsk[0]).removesuffix(".key"))

    def _ds_record(self, origin: str) -> str:
        ksk = self._keys(origin)[0]
        return _run("dnssec-dsfromkey", "-2", f"{ksk}.key")

    def _wait_for_serial(self, origin: str, serial: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while _served_serial(self.authoritative_address, origin) != serial:
            self._check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"nsd did not serve serial {serial} of {origin}:\n{self.log_text()}")
            time.sleep(0.05)

    def _wait_for_resolver(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while _served_serial(self.resolver_address, f"{TEST_TLD}.") is None:
            self._check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"unbound did not answer for {TEST_TLD}.:\n{self.log_text()}")
            time.sleep(0.05)

    def _check_running(self) -> None:
        for process in self._processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{self.log_text()}")


def start_dns_servers(zones: Sequence[Zone], base: Path, *, port_53_address: str | None = None) -> DnsServers:
    """Write, sign and serve ``zones`` under `test.`; stop the servers with ``DnsServers.stop``.

    ``port_53_address`` (a loopback address) makes unbound listen on its port 53
    too: glibc's resolv.conf takes no port, so tools that use the system resolver
    (posttls-finger) can reach it only there.
    """
    origins = {zone.origin for zone in zones}
    if len(origins) != len(zones):
        raise ValueError("zone names must be unique")
    for zone in zones:
        if not zone.origin.endswith(f".{TEST_TLD}."):
            raise ValueError(f"{zone.name}: test zones live under {TEST_TLD}.")
        # Every delegation (and DS) is written into test.; a zone inside another would need them in its parent.
        if any(zone.origin.endswith(f".{other}") for other in origins):
            raise ValueError(f"{zone.name}: test zones are children of {TEST_TLD}., not of each other")
    for directory in ("zones", "keys"):
        (base / directory).mkdir(parents=True, exist_ok=True)
    servers = DnsServers(base, free_port(), free_port(), {zone.origin: zone for zone in zones})
    served = [zone for zone in zones if zone.kind is not ZoneKind.BROKEN]
    for zone in served:
        servers._write_zone(zone)
    delegations = "".join(_delegation(servers, zone) for zone in zones)
    tld = Zone(TEST_TLD, f"ns A {LOOPBACK}\n{delegations}", ZoneKind.SECURE)
    servers._write_zone(tld)
    (base / "test.ds").write_text(servers._ds_record(tld.origin))

    (base / "nsd.conf").write_text(_nsd_conf(base, servers.authoritative_port, [tld, *zones]))
    stubs = [tld.origin, *(zone.origin for zone in zones)]
    (base / "unbound.conf").write_text(
        _unbound_conf(base, servers.resolver_port, servers.authoritative_port, stubs, port_53_address)
    )
    try:
        servers._processes.append(_start(base / "nsd.log", "nsd", "-d", "-c", str(base / "nsd.conf")))
        for zone in (tld, *served):
            servers._wait_for_serial(zone.origin, servers._serials[zone.origin])
        servers._processes.append(_start(base / "unbound.log", "unbound", "-d", "-c", str(base / "unbound.conf")))
        servers._wait_for_resolver()
    except BaseException:
        servers.stop()
        raise
    return servers


def free_port() -> int:
    """A loopback port free for both UDP and TCP (DNS needs both)."""
    return port_for_a_server(udp=True)


@contextlib.contextmanager
def silent_nameserver() -> Iterator[tuple[str, int]]:
    """A loopback UDP port that receives queries and never answers: a lookup through it times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        yield (LOOPBACK, sock.getsockname()[1])


def _origin(name: str) -> str:
    return Zone(name).origin


def _delegation(servers: DnsServers, zone: Zone) -> str:
    lines = f"{zone.origin} NS {_NAMESERVER}\n"
    if zone.kind in (ZoneKind.SECURE, ZoneKind.BOGUS):
        lines += servers._ds_record(zone.origin)
    return lines


def _nsd_conf(base: Path, port: int, zones: Sequence[Zone]) -> str:
    zone_blocks = "".join(f"zone:\n  name: {zone.origin}\n  zonefile: {zone.origin}zone\n" for zone in zones)
    return f"""\
server:
  ip-address: {LOOPBACK}@{port}
  do-ip6: no
  reuseport: no
  server-count: 1
  username: ""
  chroot: ""
  database: ""
  zonesdir: "{base}/zones"
  zonelistfile: "{base}/nsd.zonelist"
  xfrdfile: "{base}/nsd.xfrd.state"
  xfrdir: "{base}"
  pidfile: "{base}/nsd.pid"
  logfile: "{base}/nsd.log"
  verbosity: 1
remote-control:
  control-enable: yes
  control-interface: "{base}/nsd.ctl"
{zone_blocks}"""


def _unbound_conf(
    base: Path, port: int, authoritative_port: int, stubs: Sequence[str], port_53_address: str | None = None
) -> str:
    extra_interface = f"  interface: {port_53_address}@53\n" if port_53_address else ""
    stub_blocks = "".join(
        f'stub-zone:\n  name: "{name}"\n  stub-addr: {LOOPBACK}@{authoritative_port}\n' for name in stubs
    )
    return f"""\
server:
  interface: {LOOPBACK}
{extra_interface}  port: {port}
  do-ip6: no
  so-reuseport: no
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{base}"
  pidfile: "{base}/unbound.pid"
  logfile: "{base}/unbound.log"
  use-syslog: no
  verbosity: 1
  val-log-level: 2
  access-control: 127.0.0.0/8 allow
  # Never the internet: names outside test. are refused, and the resolver's
  # own queries leave from loopback only (FACTS.md).
  local-zone: "." refuse
  local-zone: "{TEST_TLD}." transparent
  outgoing-interface: {LOOPBACK}
  do-not-query-localhost: no
  trust-anchor-file: "{base}/test.ds"
  ede: yes
  # Answers synthesised from cached NSEC records would outlive a replaced zone.
  aggressive-nsec: no
  prefetch: no
remote-control:
  control-enable: yes
  control-interface: "{base}/unbound.ctl"
  control-use-cert: no
{stub_blocks}"""


def _served_serial(server: tuple[str, int], origin: str) -> int | None:
    query = dns.message.make_query(origin, dns.rdatatype.SOA)
    try:
        response = dns.query.udp(query, server[0], port=server[1], timeout=0.5)
    except (OSError, dns.exception.DNSException):
        return None
    if response.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in response.answer:
        for rdata in rrset:
            if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
                return int(rdata.serial)
    return None


def _start(log: Path, *command: str) -> subprocess.Popen[bytes]:
    # Output goes to a file, not a pipe nobody reads (a full pipe would stall the server).
    with log.with_suffix(".out").open("ab") as output:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output)


def _run(*command: str) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        message = (completed.stdout + completed.stderr).strip()
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}): {message}")
    return completed.stdout
