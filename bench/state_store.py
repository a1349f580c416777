"""What keeping 10,000 targets' results across restarts costs: one JSON document or SQLite.

    .venv/bin/python -m bench.state_store [--targets 10000] [--changed 0.5]

A real probe of a loopback STARTTLS server (a chain of leaf and intermediate,
EHLO, TLS facts) gives the result every target holds, each a distinct object
with its own timestamps, as the exporter's store holds them. ``--changed`` is
the share of results replaced between two writes: 0.5 for a 60 s probe
interval and the default 30 s write interval.

Measured for each format: the first write (every entry encoded), a later write
with ``--changed`` new results, the size on disk, loading and decoding at
start, and for the JSON document as the exporter writes it (StateStore) the
longest stall of the event loop during a write, seen by a 1 ms ticker.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from bench.setup import machine_description
from exporter.config.model import ProbeOptions, TlsMode, probe_spec
from exporter.probe.result import ProbeResult
from exporter.probe.run import run_probe
from exporter.runtime.kept import PROBE_RESULTS
from exporter.state.codec import decode, encode, identity
from exporter.state.store import Current, StateStore
from exporter.tls.context import TlsClients
from tests.support.pki import SERVER_NAME, Pki
from tests.support.servers import ScenarioServers


def real_result(directory: Path) -> tuple[ProbeResult, ProbeOptions]:
    pki = Pki(directory)
    servers = ScenarioServers()
    try:
        port = servers.smtp(tls_context=pki.leaf(SERVER_NAME).server_context(directory, "bench"))
        options = ProbeOptions(TlsMode.STARTTLS, 5.0, "probe.test", ca_file=pki.ca_file)
        spec = probe_spec("127.0.0.1", port, options, server_name=SERVER_NAME)
        result = asyncio.run(run_probe(spec, TlsClients().for_spec(spec), name="bench"))
    finally:
        servers.close()
    if not result.success:
        raise SystemExit(f"the benchmark's probe failed: {result.failures}")
    return result, options


def population(
    template: ProbeResult, options: ProbeOptions, count: int, generation: int
) -> dict[str, Current[ProbeResult]]:
    """``count`` targets, each with its own spec and result object (as after real probes)."""
    return {
        f"target-{index}": Current(
            probe_spec(f"mx{index}.example.net", 25, options, server_name=f"mx{index}.example.net"),
            dataclasses.replace(template, finished_at=template.finished_at + generation * 60 + index / count),
        )
        for index in range(count)
    }


async def _ticker(done: asyncio.Event, gaps: list[float]) -> None:
    """Wakes every millisecond; a long gap is a stall of the event loop."""
    last = time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def json_document(
    path: Path, entries: dict[str, Current[ProbeResult]], changed: float, template: ProbeResult
) -> dict[str, float]:
    store = StateStore(path, write_interval=3600)
    current = dict(entries)
    store.register(PROBE_RESULTS, lambda: current)
    figures: dict[str, float] = {}
    for label in ("first write", "later write"):
        if label == "later write":
            for index, key in enumerate(list(current)[: int(len(current) * changed)]):
                current[key] = Current(
                    current[key].config, dataclasses.replace(template, finished_at=time.time() + index)
                )
        gaps: list[float] = []
        done = asyncio.Event()
        ticking = asyncio.create_task(_ticker(done, gaps))
        started = time.perf_counter()
        store.changed()
        await store._write_now()  # the exporter's own write: snapshot on the loop, the rest in a thread
        figures[f"{label} s"] = time.perf_counter() - started
        done.set()
        await ticking
        figures[f"{label} loop stall max ms"] = max(gaps) * 1000 - 1
    figures["size MB"] = os.stat(path).st_size / 1e6
    started = time.perf_counter()
    loading = StateStore(path)
    loading.load()
    restored = loading.restored(PROBE_RESULTS, {key: entry.config for key, entry in current.items()})
    figures["load + decode s"] = time.perf_counter() - started
    if len(restored) != len(current):
        raise SystemExit(f"restored {len(restored)} of {len(current)}")
    return figures


def sqlite_database(
    path: Path, entries: dict[str, Current[ProbeResult]], changed: float, template: ProbeResult
) -> dict[str, float]:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE kept (section TEXT, key TEXT, config TEXT, value TEXT, PRIMARY KEY (section, key))"
    )
    figures: dict[str, float] = {}

    def write(rows: Mapping[str, Current[ProbeResult]]) -> None:
        encoded = [
            (
                "probe_results",
                key,
                identity(entry.config),
                json.dumps(encode(PROBE_RESULTS.prepare(entry.value) if PROBE_RESULTS.prepare else entry.value)),
            )
            for key, entry in rows.items()
        ]
        with connection:
            connection.executemany("INSERT OR REPLACE INTO kept VALUES (?, ?, ?, ?)", encoded)

    started = time.perf_counter()
    write(entries)
    figures["first write s"] = time.perf_counter() - started
    replaced = {
        key: Current(entry.config, dataclasses.replace(template, finished_at=time.time() + index))
        for index, (key, entry) in enumerate(list(entries.items())[: int(len(entries) * changed)])
    }
    started = time.perf_counter()
    write(replaced)
    figures["later write s"] = time.perf_counter() - started
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    figures["size MB"] = path.stat().st_size / 1e6
    started = time.perf_counter()
    connection = sqlite3.connect(path)
    configs = {key: identity(entry.config) for key, entry in entries.items()}
    restored = {
        key: decode(ProbeResult, json.loads(value))
        for key, config, value in connection.execute("SELECT key, config, value FROM kept")
        if configs.get(key) == config
    }
    figures["load + decode s"] = time.perf_counter() - started
    connection.close()
    if len(restored) != len(entries):
        raise SystemExit(f"restored {len(restored)} of {len(entries)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        template, options = real_result(directory)
        single = json.dumps(encode(template))
        chain = len(template.tls.chain) if template.tls else 0
        print(f"{machine_description()}; one result: {len(single)} bytes of JSON, {chain} certificates")
        entries = population(template, options, arguments.targets, 0)
        started = time.perf_counter()
        for entry in entries.values():
            encode(entry.value)
        print(f"encoding alone: {(time.perf_counter() - started) / len(entries) * 1e6:.0f} us per result")
        for name, figures in (
            (
                "JSON document",
                asyncio.run(json_document(directory / "state.json", entries, arguments.changed, template)),
            ),
            (
                "SQLite (WAL, synchronous=FULL)",
                sqlite_database(directory / "state.sqlite", entries, arguments.changed, template),
            ),
        ):
            print(f"{name}: " + ", ".join(f"{key} {value:.3f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
