"""When each target is probed: its own interval, a stable phase, bounded concurrency.

Every target has one asyncio task that sleeps until its next due time and
then probes. Due times lie on a per-target grid ``offset + k * interval``
whose offset is a stable hash of the target name, so thousands of targets
spread over the interval instead of firing in the same second, and keep
their slot across restarts and reloads.

New targets (at start, or added by a reload) are probed soon, spread over a
window that grows with their number: a handful at once, ten thousand over
their interval rather than in one burst.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import enum
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from exporter.config.model import ScheduledTarget
from exporter.probe.result import ProbeResult
from exporter.runtime.tasks import cancel_all

log = logging.getLogger(__name__)

ProbeFunction = Callable[[ScheduledTarget], Awaitable[ProbeResult]]
ResultCallback = Callable[[ScheduledTarget, ProbeResult], None]

# Upper bounds of the scheduler lag histogram, in seconds.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# How fast first probes of new targets start: a few targets are probed at
# once, many are spread (never over more than their own interval).
FIRST_PROBES_PER_SECOND = 50.0
# A probe that used this share of its timeout or more held its slot for
# (nearly) all of it: a silent or unreachable server. Such targets share a
# smaller pool of slots, so they cannot starve healthy ones when the bound
# is reached.
STALLED_SHARE_OF_TIMEOUT = 0.9
STALLED_SHARE_OF_SLOTS = 4


class SkipReason(enum.StrEnum):
    """Why a due probe did not run (smtp_exporter_probes_skipped_total{reason})."""

    # The target's previous probe was still running at its next slot.
    PREVIOUS_PROBE_RUNNING = "previous_probe_running"
    # Every probe slot was busy until after the next slot had passed.
    NO_FREE_SLOT = "no_free_slot"


@dataclass
class LagHistogram:
    """How late probes started against their schedule (cumulative, like Prometheus)."""

    bounds: tuple[float, ...] = LAG_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    total: float = 0.0
    observations: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.observations += 1

    def cumulative(self) -> list[tuple[float, int]]:
        running = 0
        buckets = []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


def stable_fraction(name: str) -> float:
    """A number in [0, 1) that depends only on ``name``."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` (0-based, like a StatefulSet's ordinals).

    Replicas given the same target list and different shards split it with
    no coordination: a target belongs to the shard its name hashes to.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index_text, slash, count_text = text.partition("/")
        if not slash or not index_text.isdigit() or not count_text.isdigit():
            raise ValueError(f"invalid shard {text!r} (expected K/N, such as 0/3)")
        index, count = int(index_text), int(count_text)
        if count < 1 or index >= count:
            raise ValueError(f"invalid shard {text!r}: K must be from 0 to N-1")
        return cls(index, count)

    def owns(self, target_name: str) -> bool:
        digest = hashlib.sha256(target_name.encode("utf-8")).digest()
        return int.from_bytes(digest[8:16], "big") % self.count == self.index


def grid_offset(name: str, interval: float) -> float:
    """Where in each interval the target named ``name`` is due: its stable phase."""
    return stable_fraction(name) * interval


def first_delay(offset: float, interval: float, *, now: float, window: float) -> float:
    """How long a new target whose grid starts at ``offset`` waits for its first probe.

    The time to the target's next slot on its grid, shrunk to ``window``:
    a handful of new targets are probed at once, while with a full window
    (many targets) the first probe already falls on the target's grid.
    """
    return (offset - now) % interval * min(window, interval) / interval


def next_due(after: float, *, offset: float, interval: float) -> float:
    """The first grid point ``offset + k * interval`` at or after ``after``."""
    steps = math.ceil((after - offset) / interval)
    return offset + steps * interval


class Scheduler:
    def __init__(self, probe: ProbeFunction, on_result: ResultCallback, *, max_concurrency: int) -> None:
        self._probe = probe
        self._on_result = on_result
        self.slots = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._stalled_slots = asyncio.Semaphore(max(1, max_concurrency // STALLED_SHARE_OF_SLOTS))
        self._tasks: dict[str, tuple[ScheduledTarget, asyncio.Task[None]]] = {}
        self.lag = LagHistogram()
        self.in_flight = 0
        # A target's loop never queues a second probe of it: a slot passed
        # while it waited or ran is skipped and counted here.
        self.skipped = dict.fromkeys(SkipReason, 0)

    def set_targets(self, targets: Sequence[ScheduledTarget]) -> None:
        """Start, keep or restart each target's loop to match ``targets``.

        Unchanged targets keep their task and so their schedule; new and
        changed ones are probed soon (see the module's docstring).
        """
        wanted = {target.name: target for target in targets}
        for name, (config, task) in list(self._tasks.items()):
            if wanted.get(name) != config:
                task.cancel()
                del self._tasks[name]
        new = [target for name, target in wanted.items() if name not in self._tasks]
        window = len(new) / FIRST_PROBES_PER_SECOND
        now = asyncio.get_running_loop().time()
        for target in new:
            offset = grid_offset(target.name, target.interval)
            delay = first_delay(offset, target.interval, now=now, window=window)
            task = asyncio.create_task(self._run_target(target, offset, delay), name=f"probe {target.name}")
            self._tasks[target.name] = (target, task)

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        await cancel_all(tasks)

    async def _run_target(self, target: ScheduledTarget, offset: float, first_delay: float) -> None:
        loop = asyncio.get_running_loop()
        interval = target.interval
        due = loop.time() + first_delay
        stalled = False
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            lane = self._stalled_slots if stalled else contextlib.nullcontext()
            async with lane, self._slots:
                started = loop.time()
                self.lag.observe(max(0.0, started - due))
                self.in_flight += 1
                try:
                    result = await self._probe(target)
                    stalled = result.duration_seconds >= target.spec.timeout * STALLED_SHARE_OF_TIMEOUT
                    self._on_result(target, result)
                except Exception:
                    # The probe and the store never raise by design; if a bug
                    # makes them, this target must still keep its schedule.
                    log.exception("probing target %s failed unexpectedly", target.name)
                finally:
                    self.in_flight -= 1
            # Skip slots that were missed rather than firing a burst of
            # catch-up probes, and say so.
            following = next_due(max(due + interval / 2, loop.time()), offset=offset, interval=interval)
            missed = round((following - due) / interval) - 1
            missed_waiting = min(missed, int((started - due) / interval))
            self.skipped[SkipReason.NO_FREE_SLOT] += missed_waiting
            self.skipped[SkipReason.PREVIOUS_PROBE_RUNNING] += missed - missed_waiting
            due = following
