"""MTA-STS and TLS-RPT of each domain entry, checked again every ``mta_sts_interval``.

One asyncio task per domain entry with ``mta_sts: auto``. The last good policy
of a domain outlives failed fetches and reloads (until its max_age runs out),
as it does in a sender's cache: that is the policy the domain's MX pairs are
held to.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence

from exporter.config.model import DomainEntry, MtaStsSetting
from exporter.dns.resolver import DnsResolver
from exporter.mta_sts.discovery import discover_mta_sts
from exporter.mta_sts.fetch import policy_context
from exporter.mta_sts.result import KnownPolicy, MtaStsResult
from exporter.runtime.tasks import cancel_all

log = logging.getLogger(__name__)


class MtaStsWatcher:
    """One check loop per domain entry; calls ``on_change`` after every check."""

    def __init__(
        self, on_change: Callable[[], None], resolver: DnsResolver, restored: Mapping[str, MtaStsResult] | None = None
    ) -> None:
        """``restored``: the last checks kept across a restart, by entry name (runtime/kept.py)."""
        self._on_change = on_change
        self._resolver = resolver
        self._tasks: dict[str, tuple[DomainEntry, asyncio.Task[None]]] = {}
        self._results: dict[str, MtaStsResult] = dict(restored or {})
        # By domain, not by entry: a reload that renames an entry keeps what senders have cached.
        self._known: dict[str, KnownPolicy] = {
            result.domain: result.known_policy for result in self._results.values() if result.known_policy is not None
        }

    def set_entries(self, entries: Sequence[DomainEntry], resolver: DnsResolver, *, resolver_changed: bool) -> None:
        """Keep the loops of unchanged entries; restart changed ones (all when the resolver changed)."""
        self._resolver = resolver
        wanted = {entry.name: entry for entry in entries if entry.mta_sts is MtaStsSetting.AUTO}
        for name, (entry, task) in list(self._tasks.items()):
            if resolver_changed or wanted.get(name) != entry:
                task.cancel()
                del self._tasks[name]
                self._results.pop(name, None)
        for name, entry in wanted.items():
            if name not in self._tasks:
                self._tasks[name] = (entry, asyncio.create_task(self._follow(entry), name=f"mta-sts {name}"))

    def result(self, entry_name: str) -> MtaStsResult | None:
        return self._results.get(entry_name) if entry_name in self._tasks else None

    def known_policy(self, entry_name: str) -> KnownPolicy | None:
        """The policy the entry's MX pairs are held to now, if any."""
        result = self.result(entry_name)
        return result.known_policy if result is not None else None

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        await cancel_all(tasks)

    def kept(self) -> dict[str, tuple[DomainEntry, MtaStsResult]]:
        """Each followed entry's last check, for the state file."""
        return {name: (entry, self._results[name]) for name, (entry, _) in self._tasks.items() if name in self._results}

    async def _follow(self, entry: DomainEntry) -> None:
        context = policy_context(entry.mta_sts_ca_file)
        kept = self._results.get(entry.name)
        if kept is not None:
            # A check kept across a restart: the next one is due an interval after it, not now.
            await asyncio.sleep(max(0.0, kept.timestamp_seconds + entry.mta_sts_interval - time.time()))
        while True:
            try:
                await self._check(entry, context)
            except Exception:
                # The MTA-STS layer returns failures as results; a bug must not end the loop.
                log.exception("checking MTA-STS of %s failed unexpectedly", entry.name)
            else:
                self._on_change()
            await asyncio.sleep(entry.mta_sts_interval)

    async def _check(self, entry: DomainEntry, context: ssl.SSLContext) -> None:
        deadline = asyncio.get_running_loop().time() + entry.options.timeout
        # MX coverage is left to whoever reads the result: the MX hosts change on dns_interval.
        previous = self._known.get(entry.domain)
        result = await discover_mta_sts(
            self._resolver, entry.domain, (), previous=previous, context=context, deadline=deadline
        )
        current = self._tasks.get(entry.name)
        if current is None or current[0] is not entry:
            return  # replaced by a reload while the check ran
        self._results[entry.name] = result
        if result.known_policy is not None:
            self._known[entry.domain] = result.known_policy
        else:
            self._known.pop(entry.domain, None)
        if result.failure is not None:
            log.warning(
                "MTA-STS check failed",
                extra={"target": entry.name, "reason": result.failure.value, "detail": result.detail},
            )
