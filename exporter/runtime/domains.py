"""Mail domains (and `addresses: all` hosts) followed through DNS.

Each entry has one asyncio task that looks its names up on ``dns_interval``
and turns the answer into (MX host, address) pairs: ``ScheduledTarget``s
whose names depend only on the entry, the MX host and the address. An
unchanged pair therefore compares equal across lookups and reloads, and the
scheduler and the store keep its schedule and results; a pair DNS no longer
gives is dropped at the next lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from exporter.config.model import DomainEntry, HostAddressesEntry, ScheduledTarget, probe_spec
from exporter.dns.mail_domain import DomainExpansion, MxHost, expand_domain, lookup_host
from exporter.dns.resolver import DnsResolver
from exporter.mta_sts.result import MtaStsResult
from exporter.runtime.kept import EntryLookup
from exporter.runtime.tasks import cancel_all

log = logging.getLogger(__name__)

Entry = DomainEntry | HostAddressesEntry
ChangeCallback = Callable[[], None]


def pair_name(entry: str, mx: str | None, address: str) -> str:
    """The scheduler's and the store's key of a pair: stable while DNS keeps the pair."""
    return f"{entry} mx={mx} address={address}" if mx is not None else f"{entry} address={address}"


def domain_pairs(entry: DomainEntry, expansion: DomainExpansion) -> tuple[ScheduledTarget, ...]:
    """Every (MX host, address) pair of the lookup, probed like a host target of that name."""
    return tuple(
        ScheduledTarget(
            name=pair_name(entry.name, host.name, address),
            spec=probe_spec(host.name, entry.port, entry.options, server_name=host.name, connect_address=address),
            interval=entry.interval,
            labels=entry.labels,
            tls_scan_interval=entry.tls_scan_interval,
            entry=entry.name,
            mx=host.name,
            address=address,
        )
        for host in expansion.mx_hosts
        for address in host.addresses
    )


def host_pairs(entry: HostAddressesEntry, host: MxHost) -> tuple[ScheduledTarget, ...]:
    """One pair per address of the host; with none, one target that reports why (a dns_error)."""
    target = entry.target
    spec = target.spec
    if not host.addresses:
        reasons = ", ".join(f"{problem.rdtype.name}: {problem.reason.value}" for problem in host.problems)
        detail = f"{spec.host} has no addresses" + (f" ({reasons})" if reasons else "")
        return (ScheduledTarget(target.name, spec, target.interval, target.labels, unresolved=detail),)
    return tuple(
        ScheduledTarget(
            name=pair_name(target.name, None, address),
            spec=probe_spec(
                spec.host,
                spec.port,
                entry.options,
                server_name=spec.server_name,
                send=spec.send,
                connect_address=address,
            ),
            interval=target.interval,
            labels=target.labels,
            tls_scan_interval=target.tls_scan_interval,
            entry=target.name,
            address=address,
        )
        for address in host.addresses
    )


@dataclass(frozen=True)
class DomainLookup:
    """The last lookup of one domain entry: what the domain-level series report."""

    entry: DomainEntry
    expansion: DomainExpansion
    # The last MTA-STS and TLS-RPT check (checked on its own interval); None with mta_sts: off or before the first.
    mta_sts: MtaStsResult | None = None

    @property
    def name(self) -> str:
        return self.entry.name

    def with_mta_sts(self, result: MtaStsResult | None) -> DomainLookup:
        return self if result is self.mta_sts else replace(self, mta_sts=result)

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        return self.entry.labels


class DnsWatcher:
    """One lookup loop per entry; calls ``on_change`` after every lookup.

    ``restored`` holds lookups kept from before a restart, for entries whose
    configuration is unchanged: their pairs exist at once, and their next
    lookup is due ``dns_interval`` after the kept one, not at start.
    """

    def __init__(
        self, on_change: ChangeCallback, resolver: DnsResolver, restored: Mapping[str, EntryLookup] | None = None
    ) -> None:
        self._on_change = on_change
        self._resolver = resolver
        self._tasks: dict[str, tuple[Entry, asyncio.Task[None]]] = {}
        self._pairs: dict[str, tuple[ScheduledTarget, ...]] = {}
        self._lookups: dict[str, DomainLookup] = {}
        self._looked_up: dict[str, EntryLookup] = {}
        self._restored = dict(restored or {})

    def set_entries(self, entries: Sequence[Entry], resolver: DnsResolver, *, resolver_changed: bool) -> None:
        """Keep the loops of unchanged entries; restart changed ones (all when the resolver changed)."""
        self._resolver = resolver
        wanted = {entry.name: entry for entry in entries}
        for name, (entry, task) in list(self._tasks.items()):
            if resolver_changed or wanted.get(name) != entry:
                task.cancel()
                del self._tasks[name]
                # A changed entry's old pairs described another configuration.
                self._pairs.pop(name, None)
                self._lookups.pop(name, None)
                self._looked_up.pop(name, None)
        for name, entry in wanted.items():
            if name not in self._tasks:
                # Only the first set_entries finds kept lookups: later ones start from a fresh lookup.
                kept = self._restored.pop(name, None)
                delay = self._adopt(entry, kept) if kept is not None else 0.0
                self._tasks[name] = (entry, asyncio.create_task(self._follow(entry, delay), name=f"dns {name}"))
        self._restored.clear()

    def _adopt(self, entry: Entry, kept: EntryLookup) -> float:
        """Use a kept lookup as if it had just run; return the seconds until the next one is due."""
        if isinstance(entry, DomainEntry) and kept.expansion is not None:
            self._pairs[entry.name] = domain_pairs(entry, kept.expansion)
            self._lookups[entry.name] = DomainLookup(entry, kept.expansion)
        elif isinstance(entry, HostAddressesEntry) and kept.host is not None:
            self._pairs[entry.name] = host_pairs(entry, kept.host)
        else:
            return 0.0
        self._looked_up[entry.name] = kept
        # Clamped: a clock that jumped must not postpone the lookup beyond one interval.
        return min(max(kept.looked_up_at + entry.dns_interval - time.time(), 0.0), entry.dns_interval)

    def pairs(self) -> list[ScheduledTarget]:
        return [pair for name in self._tasks for pair in self._pairs.get(name, ())]

    def lookups(self) -> list[DomainLookup]:
        return [self._lookups[name] for name in self._tasks if name in self._lookups]

    def kept_lookups(self) -> dict[str, tuple[Entry, EntryLookup]]:
        """Each followed entry's last lookup, with the entry it was made for (for the state file)."""
        return {
            name: (entry, self._looked_up[name]) for name, (entry, _) in self._tasks.items() if name in self._looked_up
        }

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        await cancel_all(tasks)

    async def _follow(self, entry: Entry, first_delay: float = 0.0) -> None:
        if first_delay > 0:
            await asyncio.sleep(first_delay)
        while True:
            try:
                await self._look_up(entry)
            except Exception:
                # The DNS layer never raises for DNS outcomes; a bug must not end the loop.
                log.exception("looking up %s failed unexpectedly", entry.name)
            else:
                self._on_change()
            await asyncio.sleep(entry.dns_interval)

    async def _look_up(self, entry: Entry) -> None:
        resolver = self._resolver
        lookup: DomainLookup | None = None
        if isinstance(entry, DomainEntry):
            expansion = await expand_domain(
                resolver, entry.domain, max_mx=entry.max_mx, family=entry.options.address_family
            )
            pairs = domain_pairs(entry, expansion)
            lookup = DomainLookup(entry, expansion)
            looked_up = EntryLookup(expansion.timestamp_seconds, expansion=expansion)
            _log_lookup(entry, expansion, len(pairs))
        else:
            host = await lookup_host(resolver, entry.target.spec.host, entry.options.address_family)
            pairs = host_pairs(entry, host)
            looked_up = EntryLookup(time.time(), host=host)
        current = self._tasks.get(entry.name)
        if current is None or current[0] is not entry:
            return  # replaced by a reload while the lookup ran
        self._pairs[entry.name] = pairs
        self._looked_up[entry.name] = looked_up
        if lookup is not None:
            self._lookups[entry.name] = lookup


def _log_lookup(entry: DomainEntry, expansion: DomainExpansion, pairs: int) -> None:
    if expansion.success:
        log.debug(
            "domain looked up",
            extra={"target": entry.name, "mx": len(expansion.mx_hosts), "pairs": pairs, "null_mx": expansion.null_mx},
        )
    else:
        reason = expansion.reason.value if expansion.reason else ""
        log.warning("domain lookup failed", extra={"target": entry.name, "reason": reason, "detail": expansion.detail})
