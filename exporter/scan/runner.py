"""When each target is scanned: its own slow interval (``tls_scan_interval``), spread like probes, few at once.

Scans share the event loop with the probes but never their concurrency
slots: a scan waits for one of its own (``max_concurrency``, small, since a
scan is ~120 connections one after another), so a thousand scans due at once
cannot delay a single scheduled probe's start. Each target's loop is one task;
``set_targets`` and ``close`` cancel loops (and the scan inside) on reload and
shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from exporter.config.model import DEFAULT_TLS_SCAN_INTERVAL, ScheduledTarget
from exporter.runtime.scheduler import FIRST_PROBES_PER_SECOND, first_delay, grid_offset, next_due
from exporter.runtime.tasks import cancel_all
from exporter.scan.engine import scan
from exporter.scan.result import ScanResult

log = logging.getLogger(__name__)

DEFAULT_SCAN_CONCURRENCY = 4

ScanFunction = Callable[[ScheduledTarget], Awaitable[ScanResult]]
ScanCallback = Callable[[ScheduledTarget, ScanResult], None]


async def _scan_target(target: ScheduledTarget) -> ScanResult:
    return await scan(target.spec)


class ScanScheduler:
    def __init__(
        self,
        on_result: ScanCallback,
        *,
        max_concurrency: int = DEFAULT_SCAN_CONCURRENCY,
        scan_function: ScanFunction = _scan_target,
    ) -> None:
        self._on_result = on_result
        self._scan = scan_function
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: dict[str, tuple[ScheduledTarget, asyncio.Task[None]]] = {}
        self.in_flight = 0

    def set_targets(self, targets: Sequence[ScheduledTarget], last_scans: Mapping[str, float] | None = None) -> None:
        """Keep unchanged targets' loops, cancel the others', start new ones.

        Targets without ``tls_scan_interval`` (``tls_scan: off``, ``tls: none``) are not scanned;
        nor are pairs DNS found no address for. ``last_scans`` (Unix times, kept across a
        restart) puts a new target's first scan an interval after its last one, not at start.
        """
        last_scans = last_scans or {}
        wanted = {
            target.name: target
            for target in targets
            # An unresolved pair has no address to scan; its probe reports the dns_error.
            if target.tls_scan_interval is not None and target.unresolved is None
        }
        for name, (config, task) in list(self._tasks.items()):
            if wanted.get(name) != config:
                task.cancel()
                del self._tasks[name]
        new = [target for name, target in wanted.items() if name not in self._tasks]
        window = len(new) / FIRST_PROBES_PER_SECOND
        now = asyncio.get_running_loop().time()
        for target in new:
            interval = target.tls_scan_interval or DEFAULT_TLS_SCAN_INTERVAL
            # "scan:" keeps the scan's phase apart from the probe's on the same target.
            offset = grid_offset(f"scan:{target.name}", interval)
            delay = first_delay(offset, interval, now=now, window=window)
            if target.name in last_scans:
                # Clamped: a clock that jumped must not postpone the scan beyond one interval.
                delay = min(max(last_scans[target.name] + interval - time.time(), 0.0), interval)
            task = asyncio.create_task(self._run_target(target, interval, offset, delay), name=f"scan {target.name}")
            self._tasks[target.name] = (target, task)

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        await cancel_all(tasks)

    async def _run_target(self, target: ScheduledTarget, interval: float, offset: float, first_delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + first_delay
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            async with self._slots:
                self.in_flight += 1
                try:
                    self._on_result(target, await self._scan(target))
                except Exception:
                    # scan() returns failures as results; a bug must not end the loop.
                    log.exception("scanning target %s failed unexpectedly", target.name)
                finally:
                    self.in_flight -= 1
            due = next_due(max(due + interval / 2, loop.time()), offset=offset, interval=interval)
