"""What 10,000 targets' capability scans hold in memory once every target has one.

    .venv/bin/python -m bench.scan_memory [--targets 10000]

``bench.scale`` runs for minutes, and the first scans are spread over the scan
interval (6 h), so its RSS holds few scans. This measures the rest: one real
scan of the loopback Postfix gives the findings, then ``--targets`` results are
built from it the three ways a fleet can look, and tracemalloc counts what they
and their rendered sample lines hold:

- alike servers: every scan finds the same (the engine shares equal findings);
- different servers: each scan's findings are its own objects (suites still shared);
- before sharing: each scan also kept its own copy of every accepted suite.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from bench.setup import machine_description, postfix_server
from exporter.config.model import ProbeSpec, TlsMode
from exporter.metrics.render import render_scan
from exporter.metrics.text_format import label_pairs
from exporter.scan.engine import scan
from exporter.scan.result import ScanResult, VersionScan
from tests.support.pki import SERVER_NAME

Held = TypeVar("Held")
Item = TypeVar("Item")


def real_scan() -> ScanResult:
    with postfix_server() as (server, _pki):
        spec = ProbeSpec("127.0.0.1", server.submission_port, TlsMode.STARTTLS, SERVER_NAME, "scanner.test", timeout=10)
        result = asyncio.run(scan(spec))
    if not result.success:
        raise SystemExit(f"the benchmark's scan failed: {result.error_detail}")
    return result


def _alike(scanned: VersionScan) -> VersionScan:
    return scanned


def _different(scanned: VersionScan) -> VersionScan:
    # Its own tuples too, as a scan of another server builds them.
    return dataclasses.replace(
        scanned,
        suites=_copy(scanned.suites),
        groups=_copy(scanned.groups),
        groups_offered=_copy(scanned.groups_offered),
    )


def _copy(items: tuple[Item, ...]) -> tuple[Item, ...]:
    return tuple(item for item in items)  # tuple() of a tuple is that tuple, not a copy


def _unshared(scanned: VersionScan) -> VersionScan:
    suites = tuple(dataclasses.replace(suite) for suite in scanned.suites)
    return dataclasses.replace(_different(scanned), suites=suites)


def _held_mib(build: Callable[[], Held]) -> tuple[float, Held]:
    gc.collect()
    tracemalloc.start()
    held = build()
    gc.collect()
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size / 2**20, held


def _population(template: ScanResult, targets: int, findings: Callable[[VersionScan], VersionScan]) -> list[ScanResult]:
    return [
        dataclasses.replace(
            template,
            timestamp=template.timestamp + index,
            versions=tuple(findings(scanned) for scanned in template.versions),
        )
        for index in range(targets)
    ]


def _sample_lines(results: list[ScanResult]) -> list[tuple[str, ...]]:
    # Labelled as bench.scale labels its targets.
    labels = (label_pairs([("target", f"t{index:05d}")]) for index in range(len(results)))
    return [render_scan(result, None, label) for result, label in zip(results, labels, strict=True)]


def measure(template: ScanResult, targets: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    results: list[ScanResult] = []
    for label, findings in (
        ("alike servers", _alike),
        ("different servers", _different),
        ("before sharing (each scan its own suites)", _unshared),
    ):
        results = []  # the previous population is freed before the next is counted
        mib, results = _held_mib(functools.partial(_population, template, targets, findings))
        rows.append((f"{targets} scan results, {label}", mib))
    mib, columns = _held_mib(lambda: _sample_lines(results))
    lines = sum(text.count("\n") for text in columns[0])
    size = sum(len(text) for text in columns[0])
    rows.append((f"their sample lines ({lines} lines, {size} bytes per target)", mib))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    args = parser.parse_args()
    template = real_scan()
    accepted = sum(len(scanned.suites) for scanned in template.versions)
    print(machine_description())
    print(f"Scan of loopback Postfix: {len(template.versions)} versions, {accepted} accepted suites\n")
    print("| held | MiB |\n|---|---|")
    for label, mib in measure(template, args.targets):
        print(f"| {label} | {mib:.1f} |")


if __name__ == "__main__":
    main()
