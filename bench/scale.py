"""10,000 targets on one exporter: CPU, memory, scheduler lag and scrape latency.

The targets are spread over several STARTTLS listeners of a loopback
Postfix and probed every 60 s. After the first interval (in which the first
probes of all targets are spread out) the run is steady; the figures below
are taken from then on.

    python -m bench.scale [--targets 10000] [--interval 60] [--minutes 5]

With --latency the targets reach Postfix through bench/latency_proxy.py, which
makes it look like MX hosts on the internet: each greeting held back 1 to 6 s,
40 ms added to every later server reply, and --silent-share of the targets
accepting and never answering. The exporter then runs with its defaults only
(no timeout or concurrency set), and the proxy's own health is printed.

    python -m bench.scale --latency [--silent-share 0.05]
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import cpu_seconds, rss_bytes, tree_cpu_seconds
from bench.setup import free_port, machine_description, missing_requirements, postfix_server, start_exporter, stop
from tests.support.exporter_process import Scrape
from tests.support.pki import SERVER_NAME

LISTENERS = 5
SCRAPE_EVERY_SECONDS = 15.0


@dataclass
class Run:
    targets: int
    interval: float
    steady_seconds: float = 0.0
    exporter_cpu: float = 0.0
    server_cpu: float = 0.0
    probes: int = 0
    failures: int = 0
    rss: list[int] = field(default_factory=list)
    scrape_seconds: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    lag_buckets: list[tuple[float, float]] = field(default_factory=list)
    max_in_flight: float = 0.0
    latency: bool = False
    timeout: float = 10.0
    # The oldest result at any scrape, and how many were older than interval + timeout.
    oldest_result_seconds: float = 0.0
    stale_results_max: int = 0
    probe_slots: float = 0.0
    skipped: float = 0.0
    proxy_health: dict[str, float] = field(default_factory=dict)


def _config(
    path: Path, ports: list[int], ca_file: Path, targets: int, interval: float, *, timeout: str | None = "10s"
) -> None:
    timeout_option = f"timeout: {timeout}, " if timeout else ""
    lines = [
        f"defaults: {{interval: {interval:g}s, {timeout_option}ehlo_name: probe.test, ca_file: {ca_file}}}",
        "targets:",
    ]
    lines += [
        f"  - {{name: t{index:05d}, host: 127.0.0.1, port: {ports[index % len(ports)]}, server_name: {SERVER_NAME}}}"
        for index in range(targets)
    ]
    path.write_text("\n".join(lines) + "\n")


def _scrape(port: int) -> tuple[float, Scrape, int, float]:
    """Time one GET /metrics as Prometheus would see it, then parse it untimed.

    Returns the seconds it took, the parsed scrape, its size and the wall time
    the request was sent (results' ages are as of then, not after parsing,
    which takes seconds for 25 MB).

    A plain socket reads the 20 MB answer as fast as Prometheus's Go client;
    urllib's reader would add a few hundred milliseconds of its own.
    """
    buffer = bytearray(64 * 2**20)
    view = memoryview(buffer)
    received = 0
    requested_at = time.time()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        while count := sock.recv_into(view[received:]):
            received += count
    elapsed = time.perf_counter() - started
    head, _, body = bytes(view[:received]).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        raise RuntimeError(f"scrape failed: {head[:200]!r}")
    return elapsed, Scrape(_unchunk(head, body).decode()), received, requested_at


def _unchunk(head: bytes, body: bytes) -> bytes:
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out = bytearray()
    position = 0
    while True:
        end = body.index(b"\r\n", position)
        size = int(body[position:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        position = end + 2 + size + 2


def _totals(scrape: Scrape) -> tuple[int, int, list[tuple[float, float]]]:
    probes = int(sum(value for _, value in scrape.find("smtp_probes_total")))
    failures = int(sum(value for _, value in scrape.find("smtp_probe_failures_total")))
    buckets = sorted(
        (float(labels["le"]), value) for labels, value in scrape.find("smtp_exporter_scheduler_lag_seconds_bucket")
    )
    return probes, failures, buckets


def _quantile_bound(buckets: list[tuple[float, float]], quantile: float) -> float:
    """The upper bound of the bucket holding the quantile (what a histogram can say)."""
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= quantile * total:
            return bound
    return math.inf


DEFAULT_TIMEOUT_SECONDS = 15.0  # the exporter's default, which the latency run keeps


def _ages(scrape: Scrape, now: float, limit: float) -> tuple[float, int]:
    """The oldest result and how many are older than ``limit`` seconds."""
    ages = [now - value for _, value in scrape.find("smtp_probe_timestamp_seconds")]
    return max(ages, default=0.0), sum(age > limit for age in ages)


def _start_proxy(upstreams: list[int], delaying: list[int], silent: list[int]) -> subprocess.Popen[str]:
    def ranges(ports: list[int]) -> str:
        return f"{ports[0]}-{ports[-1]}" if ports else ""

    process = subprocess.Popen(
        [
            sys.executable, "-m", "bench.latency_proxy",
            "--upstream", ",".join(f"127.0.0.1:{port}" for port in upstreams),
            "--ports", ranges(delaying), "--silent-ports", ranges(silent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    if process.stdout is None or process.stdout.readline().strip() != "ready":
        raise RuntimeError("the latency proxy did not start")
    return process


def _stop_proxy(process: subprocess.Popen[str]) -> dict[str, float]:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    health: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return health


def _consecutive_free_ports(count: int) -> list[int]:
    """``count`` free loopback ports in a row, so the proxy takes them as one range."""
    for start in range(21000, 60000, count):
        ports = list(range(start, start + count))
        try:
            sockets = [socket.create_server(("127.0.0.1", port)) for port in ports]
        except OSError:
            continue
        for sock in sockets:
            sock.close()
        return ports
    raise RuntimeError("no free port range")


def run(targets: int, interval: float, minutes: float, *, latency: bool = False, silent_share: float = 0.05) -> Run:
    result = Run(targets, interval, latency=latency, timeout=DEFAULT_TIMEOUT_SECONDS if latency else 10.0)
    proxy: subprocess.Popen[str] | None = None
    with postfix_server(extra_ports=LISTENERS - 1) as (server, pki), tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "config.yml"
        ports = [server.submission_port, *server.extra_submission_ports]
        if latency:
            silent_targets = round(targets * silent_share)
            # One listener per 100 targets, so one listener's backlog never limits.
            listeners = _consecutive_free_ports(max(20, targets // 100))
            silent_listeners = listeners[: max(1, len(listeners) * silent_targets // targets)]
            proxy = _start_proxy(ports, listeners[len(silent_listeners) :], silent_listeners)
            # Targets spread so that the silent share lands on the silent listeners.
            ports = [*silent_listeners, *listeners[len(silent_listeners) :]]
            _config(config, ports, pki.ca_file, targets, interval, timeout=None)
        else:
            _config(config, ports, pki.ca_file, targets, interval)
        port = free_port()
        process = start_exporter(config, port)
        try:
            time.sleep(interval + 5)  # the first probes of every target, spread over one interval
            _, first, _, _ = _scrape(port)
            probes0, failures0, buckets0 = _totals(first)
            skipped0 = sum(value for _, value in first.find("smtp_exporter_probes_skipped_total"))
            cpu0, server0, started = cpu_seconds(process.pid), tree_cpu_seconds(server.master_pid), time.monotonic()
            next_scrape = started
            while (now := time.monotonic()) - started < minutes * 60:
                result.rss.append(rss_bytes(process.pid))
                if now >= next_scrape:
                    elapsed, scrape, size, requested_at = _scrape(port)
                    result.scrape_seconds.append(elapsed)
                    result.scrape_bytes = size
                    result.max_in_flight = max(
                        result.max_in_flight, scrape.value("smtp_exporter_probes_in_flight") or 0
                    )
                    oldest, stale = _ages(scrape, requested_at, interval + result.timeout)
                    result.oldest_result_seconds = max(result.oldest_result_seconds, oldest)
                    result.stale_results_max = max(result.stale_results_max, stale)
                    next_scrape += SCRAPE_EVERY_SECONDS
                time.sleep(1)
            _, last, _, _ = _scrape(port)
            result.steady_seconds = time.monotonic() - started
            result.exporter_cpu = cpu_seconds(process.pid) - cpu0
            result.server_cpu = tree_cpu_seconds(server.master_pid) - server0
            probes1, failures1, buckets1 = _totals(last)
            result.probes = probes1 - probes0
            result.failures = failures1 - failures0
            result.probe_slots = last.value("smtp_exporter_probe_slots") or 0
            result.skipped = sum(value for _, value in last.find("smtp_exporter_probes_skipped_total")) - skipped0
            before = dict(buckets0)
            result.lag_buckets = [(bound, count - before.get(bound, 0)) for bound, count in buckets1]
        finally:
            stop(process)
            if proxy is not None:
                result.proxy_health = _stop_proxy(proxy)
    return result


def report(result: Run) -> str:
    cores = result.exporter_cpu / result.steady_seconds
    server_cores = result.server_cpu / result.steady_seconds
    scrapes = sorted(result.scrape_seconds)
    p99_scrape = scrapes[min(len(scrapes) - 1, math.ceil(0.99 * len(scrapes)) - 1)]
    expected = result.targets * result.steady_seconds / result.interval
    lag_p50 = _quantile_bound(result.lag_buckets, 0.5)
    lag_p99 = _quantile_bound(result.lag_buckets, 0.99)
    rows = [
        ("Targets / interval", f"{result.targets} / {result.interval:g} s", ""),
        ("Steady-state window", f"{result.steady_seconds / 60:.1f} min", ""),
        ("Probes run (expected)", f"{result.probes} ({expected:.0f}); failed: {result.failures}", ""),
        (
            "Exporter CPU",
            f"{cores:.2f} cores ({1000 * result.exporter_cpu / max(result.probes, 1):.2f} ms/probe)",
            "<= 1 core",
        ),
        ("Exporter RSS (max)", f"{max(result.rss) / 2**20:.0f} MiB", "< 250 MB" if result.latency else "< 200 MB"),
        ("Scheduler lag p50 / p99", f"<= {lag_p50:g} s / <= {lag_p99:g} s", "p99 < 2 s"),
        (
            "/metrics scrape p50 / p99",
            f"{1000 * statistics.median(scrapes):.0f} ms / {1000 * p99_scrape:.0f} ms",
            "p50 < 100 ms",
        ),
        ("/metrics size", f"{result.scrape_bytes / 2**20:.1f} MiB", ""),
        ("Probes in flight (max seen) / slots", f"{result.max_in_flight:g} / {result.probe_slots:g}", ""),
        ("Due probes skipped", f"{result.skipped:g}", ""),
        (
            "Oldest result at a scrape; results older than interval + timeout",
            f"{result.oldest_result_seconds:.0f} s; {result.stale_results_max}",
            "none",
        ),
        ("Postfix CPU (the target)", f"{server_cores:.2f} cores", "not the bottleneck"),
    ]
    if result.proxy_health:
        health = result.proxy_health
        rows.append(
            (
                "Latency proxy (the lab)",
                f"{health['cpu_seconds'] / result.steady_seconds:.2f} cores over the run, "
                f"{health['connections']:g} connections ({health['silent_connections']:g} silent), "
                f"at most {health['open_max']:g} open, loop lag p99 {1000 * health['loop_lag_p99_seconds']:.0f} ms, "
                f"{health['upstream_failures']:g} upstream failures",
                "not the bottleneck",
            )
        )
    mode = "latency (greeting 1-6 s, 40 ms per reply, silent targets), defaults only" if result.latency else "loopback"
    lines = [f"Machine: {machine_description()}", f"Mode: {mode}", "", "| measure | result | goal |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {goal} |" for name, value, goal in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--latency", action="store_true", help="through the delaying proxy, exporter defaults only")
    parser.add_argument("--silent-share", type=float, default=0.05, help="with --latency: targets that never answer")
    arguments = parser.parse_args()
    why_not = missing_requirements()
    if why_not:
        print(f"cannot run: {why_not}", file=sys.stderr)
        return 2
    print(
        report(
            run(
                arguments.targets,
                arguments.interval,
                arguments.minutes,
                latency=arguments.latency,
                silent_share=arguments.silent_share,
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
