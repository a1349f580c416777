"""Does scheduled probing keep its schedule while 100 hosts are scanned? (issue 17)

One loopback Postfix (tests/support/postfix_postures.py, Debian's defaults,
the most expensive posture to scan); ``--targets`` probed every second by the
exporter's Scheduler, first alone for ``--seconds``, then for as long again
while a ScanScheduler scans ``--scans`` targets (all due at once: the worst
case, a restart) with its default concurrency. Prints the lag histogram of
both phases, the scans finished and the CPU used. Run as root (Postfix):

    .venv/bin/python -m bench.scan_lag --targets 40 --scans 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import trustme

from exporter.cli import event_loop
from exporter.config.model import ProbeSpec, ScheduledTarget, TlsMode
from exporter.probe.result import ProbeResult
from exporter.probe.run import run_probe
from exporter.runtime.scheduler import LagHistogram, Scheduler
from exporter.scan.result import ScanResult
from exporter.scan.runner import ScanScheduler
from exporter.tls.context import TlsClients
from tests.support.pki import Pki
from tests.support.postfix_postures import start_posture_server, stop_posture_server


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _quantile_bound(histogram: LagHistogram, q: float) -> float:
    wanted = q * histogram.observations
    for bound, count in histogram.cumulative():
        if count >= wanted:
            return bound
    return float("inf")


async def _run(port: int, ca_file: Path, targets: int, scans: int, seconds: float) -> None:
    spec = ProbeSpec("127.0.0.1", port, TlsMode.STARTTLS, "mail.test", "bench.test", timeout=10, ca_file=ca_file)
    clients = TlsClients([ca_file])
    probed = [ScheduledTarget(f"probe-{i}", spec, interval=1.0) for i in range(targets)]
    # A scan interval longer than the run: each target is scanned once, all due at once.
    scanned = [ScheduledTarget(f"scan-{i}", spec, interval=1.0, tls_scan_interval=3600.0) for i in range(scans)]
    probe_results: list[ProbeResult] = []
    scan_results: list[ScanResult] = []

    async def probe(target: ScheduledTarget) -> ProbeResult:
        return await run_probe(target.spec, clients.for_ca_file(ca_file), name=target.name, keep_transcript=False)

    scheduler = Scheduler(probe, lambda _t, r: probe_results.append(r), max_concurrency=256)
    scheduler.set_targets(probed)
    await asyncio.sleep(2)  # first probes spread; not measured
    for phase in ("probes alone", f"probes + {scans} scans"):
        scheduler.lag = LagHistogram()
        before_probes, cpu, wall = len(probe_results), _cpu(), time.monotonic()
        runner = None
        if scans and phase != "probes alone":
            runner = ScanScheduler(lambda _t, r: scan_results.append(r))
            runner.set_targets(scanned)
        await asyncio.sleep(seconds)
        if runner is not None:
            await runner.close()
        lag = scheduler.lag
        elapsed, used = time.monotonic() - wall, _cpu() - cpu
        failed = sum(1 for r in probe_results[before_probes:] if not r.success)
        worst = max((b for b, c in zip((*lag.bounds, float("inf")), lag.counts, strict=True) if c), default=0.0)
        print(
            f"{phase}: {len(probe_results) - before_probes} probes ({failed} failed), "
            f"lag p50 <= {_quantile_bound(lag, 0.5)} s, p99 <= {_quantile_bound(lag, 0.99)} s, "
            f"max bucket {worst} s; "
            f"CPU {used / elapsed:.2f} cores"
        )
    ok = [r for r in scan_results if r.success]
    if scan_results:
        print(
            f"scans finished: {len(scan_results)} ({len(ok)} succeeded), hellos {sum(r.hellos for r in ok)}, "
            f"mean scan duration {sum(r.duration for r in ok) / max(1, len(ok)):.2f} s"
        )
    await scheduler.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    pki = Pki(Path(tempfile.mkdtemp(prefix="scan-lag-")))
    leaf = pki.leaf("mail.test", key_type=trustme.KeyType.RSA)
    # No per-client connection limit: every probe and hello comes from 127.0.0.1.
    postures = {"default": "-o smtpd_client_connection_count_limit=0"}
    server = start_posture_server(leaf.key_pem + leaf.chain_pem, postures)
    try:
        event_loop.run(_run(server.ports["default"], pki.ca_file, args.targets, args.scans, args.seconds))
    finally:
        stop_posture_server(server)


if __name__ == "__main__":
    main()
