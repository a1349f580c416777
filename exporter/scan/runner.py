"""When each target is scanned: its own slow interval (``tls_scan_interval``), spread like probes, few at once.

Scans share the event loop with the probes but never their concurrency
slots: a scan waits for one of its own (``max_concurrency``, small, since a
scan is ~120 connections one after another), so a thousand scans due at once
cannot delay a single scheduled probe's start. Each target waits on a timer
and gets a task when its scan is due; ``set_targets`` and ``close`` cancel
timers and scans on reload and shutdown.
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


class _Scan:
    """One target's place in the scan schedule: a timer until its scan is due, then the scan's task."""

    __slots__ = ("interval", "offset", "target", "task", "timer")

    def __init__(self, target: ScheduledTarget, interval: float, offset: float) -> None:
        self.target = target
        self.interval = interval
        self.offset = offset
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


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
        # A timer per target, and a task only while its scan waits for a slot or
        # runs: scans are hours apart, and a sleeping task per target cost about
        # 1.4 KB each at 10,000 targets (bench/RESULTS.md section 2b).
        self._scans: dict[str, _Scan] = {}
        self.in_flight = 0

    def set_targets(self, targets: Sequence[ScheduledTarget], last_scans: Mapping[str, float] | None = None) -> None:
        """Keep unchanged targets' schedules, cancel the others' (mid-scan too), schedule new ones.

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
        for name, scheduled in list(self._scans.items()):
            if wanted.get(name) != scheduled.target:
                scheduled.cancel()
                del self._scans[name]
        new = [target for name, target in wanted.items() if name not in self._scans]
        window = len(new) / FIRST_PROBES_PER_SECOND
        loop = asyncio.get_running_loop()
        now = loop.time()
        for target in new:
            interval = target.tls_scan_interval or DEFAULT_TLS_SCAN_INTERVAL
            # "scan:" keeps the scan's phase apart from the probe's on the same target.
            offset = grid_offset(f"scan:{target.name}", interval)
            delay = first_delay(offset, interval, now=now, window=window)
            if target.name in last_scans:
                # Clamped: a clock that jumped must not postpone the scan beyond one interval.
                delay = min(max(last_scans[target.name] + interval - time.time(), 0.0), interval)
            scheduled = self._scans[target.name] = _Scan(target, interval, offset)
            scheduled.timer = loop.call_at(now + delay, self._start, scheduled, now + delay)

    async def close(self) -> None:
        scans = list(self._scans.values())
        self._scans.clear()
        for scheduled in scans:
            if scheduled.timer is not None:
                scheduled.timer.cancel()
        await cancel_all([scheduled.task for scheduled in scans if scheduled.task is not None])

    def _start(self, scheduled: _Scan, due: float) -> None:
        scheduled.timer = None
        scheduled.task = asyncio.create_task(self._run(scheduled, due), name=f"scan {scheduled.target.name}")

    async def _run(self, scheduled: _Scan, due: float) -> None:
        target = scheduled.target
        async with self._slots:
            self.in_flight += 1
            try:
                self._on_result(target, await self._scan(target))
            except Exception:
                # scan() returns failures as results; a bug must not end the schedule.
                log.exception("scanning target %s failed unexpectedly", target.name)
            finally:
                self.in_flight -= 1
        scheduled.task = None
        if self._scans.get(target.name) is scheduled:
            loop = asyncio.get_running_loop()
            interval = scheduled.interval
            next_scan = next_due(max(due + interval / 2, loop.time()), offset=scheduled.offset, interval=interval)
            scheduled.timer = loop.call_at(next_scan, self._start, scheduled, next_scan)
