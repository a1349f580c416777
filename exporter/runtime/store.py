"""The latest result of every target, and what has been counted since start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporter.config.model import ScheduledTarget
from exporter.probe.result import ProbeResult, Reason, SendOutcome
from exporter.scan.result import ScanResult


@dataclass
class TargetRecord:
    config: ScheduledTarget
    result: ProbeResult | None = None
    probes_total: int = 0
    failures_total: dict[Reason, int] = field(default_factory=dict)
    # Test messages go out on their own, longer interval; the last outcome
    # stays current between sends.
    last_send: SendOutcome | None = None
    # The last TLS capability scan: its own, much longer interval.
    scan: ScanResult | None = None


class ResultStore:
    """Written by the scheduler, read by the metrics and the landing page."""

    def __init__(self) -> None:
        self._records: dict[str, TargetRecord] = {}

    def set_targets(self, targets: Sequence[ScheduledTarget]) -> None:
        """Adopt a new target list, keeping counters of targets that stay.

        A target whose configuration changed loses its last result, last
        test message and last scan (they described another server or another
        way of probing it) until its next probe and scan; its counters continue.
        """
        records: dict[str, TargetRecord] = {}
        for target in targets:
            record = self._records.get(target.name)
            if record is None:
                record = TargetRecord(target)
            elif record.config != target:
                record = TargetRecord(target, None, record.probes_total, record.failures_total)
            records[target.name] = record
        self._records = records

    def record_result(self, target: ScheduledTarget, result: ProbeResult) -> ProbeResult | None:
        """Store ``result`` unless ``target`` was removed or changed meanwhile.

        Returns the result it replaced.
        """
        record = self._records.get(target.name)
        if record is None or record.config != target:
            return None
        previous = record.result
        record.result = result
        record.probes_total += 1
        for reason in {failure.reason for failure in result.failures}:
            record.failures_total[reason] = record.failures_total.get(reason, 0) + 1
        if result.send is not None:
            record.last_send = result.send
        return previous

    def restore(
        self,
        results: Mapping[str, ProbeResult],
        sends: Mapping[str, SendOutcome],
        scans: Mapping[str, ScanResult],
    ) -> None:
        """Adopt results kept from before a restart, for targets that are still configured.

        The caller has checked that each was produced under the target's present
        configuration. Counters are not kept: they start from zero after a
        restart, as Prometheus expects of a counter.
        """
        for name, record in self._records.items():
            if record.result is None and name in results:
                record.result = results[name]
            if record.last_send is None and name in sends:
                record.last_send = sends[name]
            if record.scan is None and name in scans:
                record.scan = scans[name]

    def scan_times(self) -> dict[str, float]:
        """When each target was last scanned (Unix time): its next scan is due an interval later."""
        return {name: record.scan.timestamp for name, record in self._records.items() if record.scan is not None}

    def record_scan(self, target: ScheduledTarget, result: ScanResult) -> TargetRecord | None:
        """Store a scan unless ``target`` was removed or changed meanwhile; the record it went to."""
        record = self._records.get(target.name)
        if record is None or record.config != target:
            return None
        record.scan = result
        return record

    def get(self, name: str) -> TargetRecord | None:
        return self._records.get(name)

    def last_send(self, name: str) -> SendOutcome | None:
        record = self._records.get(name)
        return record.last_send if record else None

    def records(self) -> list[TargetRecord]:
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)
