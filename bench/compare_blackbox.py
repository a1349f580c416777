"""CPU per STARTTLS probe: smtp-tls-exporter against blackbox_exporter.

Both probe the same loopback Postfix in the same run, in alternating phases.
blackbox_exporter is driven through /probe, as Prometheus drives it; our
exporter probes on its own schedule, as it is meant to run. Each one's CPU
comes from its own process accounting (/proc/PID/stat), divided by the
probes it completed in the phase; Postfix's CPU is reported beside them.

    python -m bench.compare_blackbox [--rounds 3] [--seconds 20] [--rate 40]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import cpu_seconds, tree_cpu_seconds
from bench.setup import (
    free_port,
    machine_description,
    missing_requirements,
    postfix_server,
    start_exporter,
    stop,
    wait_for_http,
)
from tests.support.exporter_process import Scrape
from tests.support.pki import SERVER_NAME

BLACKBOX = "prometheus-blackbox-exporter"


@dataclass
class Phase:
    tool: str
    probes: int
    seconds: float
    cpu: float
    server_cpu: float
    # Probes that did not succeed: a failed probe costs less, so they must be 0.
    failed: int

    @property
    def cpu_ms_per_probe(self) -> float:
        return 1000 * self.cpu / self.probes if self.probes else float("nan")

    @property
    def server_ms_per_probe(self) -> float:
        return 1000 * self.server_cpu / self.probes if self.probes else float("nan")


def _blackbox_config(path: Path, ca_file: Path) -> None:
    # blackbox_exporter's documented smtp_starttls example, with our CA.
    path.write_text(
        f"""modules:
  smtp_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^220 ([^ ]+) ESMTP (.+)$"
        - send: "EHLO prober\\r"
        - expect: "^250-STARTTLS"
        - send: "STARTTLS\\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\\r"
        - expect: "^250-AUTH"
        - send: "QUIT\\r"
      tls_config:
        ca_file: {ca_file}
        server_name: {SERVER_NAME}
"""
    )


def _drive_blackbox(url: str, rate: float, seconds: float) -> tuple[int, int]:
    """Request /probe at ``rate`` per second for ``seconds``; count probes and failed ones."""
    successes = failures = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal successes, failures
        with urllib.request.urlopen(url, timeout=10) as response:
            succeeded = b"\nprobe_success 1" in response.read()
        with lock:
            successes += succeeded
            failures += not succeeded

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1 - sent
            for _ in range(due):
                pool.submit(one)
            sent += due
            time.sleep(0.005)
    return successes + failures, failures


def _probes_done(port: int) -> tuple[int, int]:
    """Probes run so far, and failures counted so far (by reason)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        scrape = Scrape(response.read().decode())
    probes = sum(value for _, value in scrape.find("smtp_probes_total"))
    failures = sum(value for _, value in scrape.find("smtp_probe_failures_total"))
    return int(probes), int(failures)


def _our_config(path: Path, submission_port: int, ca_file: Path, targets: int) -> None:
    lines = [
        # blackbox_exporter scans nothing: the capability scan (on by default, every
        # 6 h, its first run soon after start) would bill its 139 handshakes to these probes.
        f"defaults: {{interval: 1s, timeout: 900ms, ehlo_name: probe.test, ca_file: {ca_file}, tls_scan: off}}",
        "targets:",
    ]
    lines += [
        f"  - {{name: t{index}, host: 127.0.0.1, port: {submission_port}, server_name: {SERVER_NAME}}}"
        for index in range(targets)
    ]
    path.write_text("\n".join(lines) + "\n")


def run(rounds: int, seconds: float, rate: float, exporter_args: list[str]) -> list[Phase]:
    phases: list[Phase] = []
    with postfix_server() as (server, pki), tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        _blackbox_config(directory / "blackbox.yml", pki.ca_file)
        _our_config(directory / "ours.yml", server.submission_port, pki.ca_file, targets=int(rate))
        bb_port = free_port()
        blackbox = subprocess.Popen(
            [BLACKBOX, f"--config.file={directory / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{bb_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{bb_port}/-/healthy")
            probe_url = (
                f"http://127.0.0.1:{bb_port}/probe?module=smtp_starttls&target=127.0.0.1:{server.submission_port}"
            )
            if _drive_blackbox(probe_url, rate, 2)[1]:  # warm-up
                raise SystemExit(f"blackbox_exporter's probes fail; try {probe_url}&debug=true")
            for _ in range(rounds):
                phases.append(_blackbox_phase(blackbox.pid, server.master_pid, probe_url, rate, seconds))
                phases.append(_our_phase(directory / "ours.yml", server.master_pid, seconds, exporter_args))
        finally:
            stop(blackbox)
    return phases


def _blackbox_phase(pid: int, server_pid: int, url: str, rate: float, seconds: float) -> Phase:
    cpu, server_cpu, started = cpu_seconds(pid), tree_cpu_seconds(server_pid), time.monotonic()
    probes, failed = _drive_blackbox(url, rate, seconds)
    return Phase(
        "blackbox_exporter",
        probes,
        time.monotonic() - started,
        cpu_seconds(pid) - cpu,
        tree_cpu_seconds(server_pid) - server_cpu,
        failed,
    )


def _our_phase(config: Path, server_pid: int, seconds: float, exporter_args: list[str]) -> Phase:
    port = free_port()
    process = start_exporter(config, port, exporter_args)
    try:
        time.sleep(2)  # start-up and the first burst of probes are not steady state
        (probes, failures), cpu, server_cpu = _probes_done(port), cpu_seconds(process.pid), tree_cpu_seconds(server_pid)
        started = time.monotonic()
        time.sleep(seconds)
        (probes_after, failures_after), cpu_after = _probes_done(port), cpu_seconds(process.pid)
        server_after = tree_cpu_seconds(server_pid)
    finally:
        stop(process)
    return Phase(
        "smtp-tls-exporter",
        probes_after - probes,
        time.monotonic() - started,
        cpu_after - cpu,
        server_after - server_cpu,
        failures_after - failures,
    )


def report(phases: list[Phase], rate: float, exporter_args: list[str]) -> str:
    lines = [
        f"Machine: {machine_description()}",
        f"Target: loopback Postfix submission port, STARTTLS, {rate:g} probes/s per tool"
        + (f"; exporter flags: {' '.join(exporter_args)}" if exporter_args else ""),
        "",
        "| round | tool | probes | failed | CPU ms / probe | Postfix CPU ms / probe |",
        "|---|---|---|---|---|---|",
    ]
    for index, phase in enumerate(phases):
        lines.append(
            f"| {index // 2 + 1} | {phase.tool} | {phase.probes} | {phase.failed} | {phase.cpu_ms_per_probe:.2f} | "
            f"{phase.server_ms_per_probe:.2f} |"
        )
    ours = statistics.median(phase.cpu_ms_per_probe for phase in phases if phase.tool == "smtp-tls-exporter")
    theirs = statistics.median(phase.cpu_ms_per_probe for phase in phases if phase.tool == "blackbox_exporter")
    lines += [
        "",
        f"Median CPU per probe: smtp-tls-exporter {ours:.2f} ms, blackbox_exporter {theirs:.2f} ms; "
        f"ratio ours / blackbox = **{ours / theirs:.2f}** (goal <= 0.7)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--rate", type=float, default=40, help="probes per second for each tool")
    parser.add_argument("exporter_args", nargs="*", help="extra flags for smtp-tls-exporter (after --)")
    arguments = parser.parse_args()
    why_not = missing_requirements(BLACKBOX)
    if why_not:
        print(f"cannot run: {why_not}", file=sys.stderr)
        return 2
    phases = run(arguments.rounds, arguments.seconds, arguments.rate, arguments.exporter_args)
    print(report(phases, arguments.rate, arguments.exporter_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
