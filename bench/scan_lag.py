"""Does scheduled probing keep its schedule while 100 hosts are scanned? (issue 17)

Through the daemon (exporter/runtime/daemon.py), as it runs in production:
one loopback Postfix (tests/support/postfix_postures.py, Debian's defaults, the
most expensive posture to scan). First one scan alone (its time and CPU), then
``--targets`` targets probed every second with ``tls_scan: off`` for
``--seconds``, then a reload adds ``--scans`` targets with the scan on (probed
hourly, all scans due at once: the worst case, a restart) and the run goes on as
long again. Prints the daemon's own lag histogram of both phases (read from its
/metrics text), the scans finished and the CPU used. Run as root (Postfix):

    .venv/bin/python -m bench.scan_lag --targets 40 --scans 100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import trustme
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import event_loop
from exporter.config.model import ProbeSpec, TlsMode
from exporter.runtime.daemon import Daemon
from exporter.scan.engine import scan
from tests.support.pki import Pki
from tests.support.postfix_postures import start_posture_server, stop_posture_server


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _lag(daemon: Daemon) -> list[tuple[float, float]]:
    """The cumulative (bound, count) buckets of smtp_exporter_scheduler_lag_seconds."""
    for family in text_string_to_metric_families(daemon.metrics_text()):
        if family.name == "smtp_exporter_scheduler_lag_seconds":
            return [
                (float(sample.labels["le"]), sample.value)
                for sample in family.samples
                if sample.name.endswith("_bucket")
            ]
    raise AssertionError("no lag histogram")


def _quantile_bound(buckets: list[tuple[float, float]], q: float) -> float:
    total = buckets[-1][1]
    return next((bound for bound, count in buckets if count >= q * total), float("inf"))


def _difference(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(bound, count - earlier) for (bound, count), (_, earlier) in zip(after, before, strict=True)]


def _config(path: Path, port: int, ca_file: Path, targets: int, scans: int) -> None:
    lines = ["defaults:", "  timeout: 900ms", "  ehlo_name: bench.test", f"  ca_file: {ca_file}", "targets:"]
    common = ["    host: 127.0.0.1", f"    port: {port}", "    server_name: mail.test"]
    for index in range(targets):
        lines += [f"  - name: probe-{index}", *common, "    interval: 1s", "    tls_scan: off"]
    for index in range(scans):
        lines += [f"  - name: scan-{index}", *common, "    interval: 1h", "    timeout: 10s"]
    path.write_text("\n".join(lines) + "\n")


async def _run(port: int, ca_file: Path, args: argparse.Namespace, directory: Path) -> None:
    targets, scans, seconds = args.targets, args.scans, args.seconds
    spec = ProbeSpec("127.0.0.1", port, TlsMode.STARTTLS, "mail.test", "bench.test", timeout=10)
    cpu, wall = _cpu(), time.monotonic()
    one = await scan(spec)
    print(
        f"one scan alone: {one.hellos} hellos, {time.monotonic() - wall:.3f} s wall, {_cpu() - cpu:.3f} s CPU "
        f"(exporter side), success={one.success}"
    )
    config = directory / "config.yml"
    _config(config, port, ca_file, targets, 0)
    daemon = Daemon(config, max_concurrency=256)
    daemon.load()
    daemon.start()
    await asyncio.sleep(2)  # first probes spread; not measured
    for phase in ("probes alone", f"probes + {scans} scans"):
        if phase != "probes alone":
            _config(config, port, ca_file, targets, scans)
            problem = daemon.reload()
            if problem is not None:
                raise SystemExit(problem)
        before = _lag(daemon)
        cpu, wall = _cpu(), time.monotonic()
        await asyncio.sleep(seconds)
        elapsed, used = time.monotonic() - wall, _cpu() - cpu
        buckets = _difference(_lag(daemon), before)
        worst = next((bound for bound, count in buckets if count == buckets[-1][1]), float("inf"))
        print(
            f"{phase}: {buckets[-1][1]:.0f} probes started, "
            f"lag p50 <= {_quantile_bound(buckets, 0.5)} s, p99 <= {_quantile_bound(buckets, 0.99)} s, "
            f"all <= {worst} s; CPU {used / elapsed:.2f} cores"
        )
    records = [record for record in daemon.store.records() if record.scan is not None]
    ok = [record.scan for record in records if record.scan is not None and record.scan.success]
    failed_probes = sum(
        1 for record in daemon.store.records() if record.result is not None and not record.result.success
    )
    print(
        f"scans finished: {len(records)} ({len(ok)} succeeded), hellos {sum(r.hellos for r in ok)}, "
        f"mean scan duration {sum(r.duration for r in ok) / max(1, len(ok)):.2f} s; "
        f"targets whose last probe failed: {failed_probes}"
    )
    await daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="scan-lag-"))
    pki = Pki(directory)
    leaf = pki.leaf("mail.test", key_type=trustme.KeyType.RSA)
    # No per-client connection limit: every probe and hello comes from 127.0.0.1.
    postures = {"default": "-o smtpd_client_connection_count_limit=0"}
    server = start_posture_server(leaf.key_pem + leaf.chain_pem, postures)
    try:
        event_loop.run(_run(server.ports["default"], pki.ca_file, args, directory))
    finally:
        stop_posture_server(server)


if __name__ == "__main__":
    main()
