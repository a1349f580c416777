"""Soak: many targets, healthy and hostile, for a long time. Does anything grow?

    python -m bench.soak --duration 600 --targets 200

Starts its own loopback servers in this process (every hostile case of
tests/support/hostile.py, and healthy aiosmtpd servers speaking STARTTLS,
implicit TLS and plain SMTP), runs the exporter as a subprocess probing
them on a short interval, scrapes /metrics as Prometheus would, and samples
the exporter's resident memory, open file descriptors, asyncio tasks and
probe counts. Prints a markdown table; README.md ("Reliability") records a
run. Not part of the test suite: it takes as long as it is asked to.

Exits 1 if, at the end, a target's last probe is stale (a stuck probe), a
healthy target fails, or a hostile one fails for another reason than its own.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import cpu_seconds, open_fds, rss_bytes
from exporter.config.values import parse_duration
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.hostile import EXPECTED_FAILURES, start_hostile_servers
from tests.support.pki import SERVER_NAME, Pki
from tests.support.servers import ScenarioServers

HEALTHY_KINDS = ("healthy_starttls", "healthy_implicit", "healthy_plain")


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    port: int
    tls: str


@dataclass(frozen=True)
class Sample:
    elapsed: float
    rss_bytes: int
    open_fds: int
    cpu_seconds: float
    asyncio_tasks: int
    probes: int
    in_flight: int
    stale: int
    healthy_passing: int
    hostile_as_expected: int
    scrape_seconds: float


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds to run after the first round (600)")
    parser.add_argument("--targets", type=int, default=200, help="targets, half healthy, half hostile (200)")
    parser.add_argument("--interval", default="5s", help="probe interval of every target (5s)")
    parser.add_argument("--timeout", default="3s", help="probe timeout of every target (3s)")
    parser.add_argument("--scrape-every", type=float, default=15, help="seconds between scrapes (15)")
    parser.add_argument("--sample-every", type=float, default=60, help="seconds between table rows (60)")
    arguments = parser.parse_args(argv)
    interval = parse_duration(arguments.interval)
    timeout = parse_duration(arguments.timeout)

    # aiosmtpd logs a traceback whenever a probe drops a handshake on purpose.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    directory = Path(tempfile.mkdtemp(prefix="smtp-exporter-soak-"))
    servers = ScenarioServers()
    exporter: ExporterProcess | None = None
    try:
        targets = _start_servers(servers, directory, arguments.targets)
        config = _write_config(directory, targets, arguments.interval, arguments.timeout)
        started = time.monotonic()
        exporter = ExporterProcess(config, directory / "exporter.log", extra_args=["--log.level", "info"])
        exporter.wait_for_probes([target.name for target in targets], timeout=60 + timeout)
        print(f"first round of {len(targets)} probes done in {time.monotonic() - started:.1f} s", file=sys.stderr)
        samples = _run(exporter, targets, arguments, stale_after=interval + timeout + 5)
        _print_report(samples, targets, arguments, interval)
        last = samples[-1]
        healthy = sum(target.kind in HEALTHY_KINDS for target in targets)
        ok = last.stale == 0 and last.healthy_passing == healthy and last.hostile_as_expected == len(targets) - healthy
        return 0 if ok else 1
    finally:
        if exporter is not None:
            exporter.stop()
        servers.close()
        shutil.rmtree(directory, ignore_errors=True)


def _start_servers(servers: ScenarioServers, directory: Path, count: int) -> list[Target]:
    pki = Pki(directory)
    good = pki.leaf(SERVER_NAME).server_context(directory, "healthy")
    hostile = start_hostile_servers(servers, pki, directory)
    healthy_ports = {
        "healthy_starttls": (servers.smtp(tls_context=good), "starttls"),
        "healthy_implicit": (servers.smtp(tls_context=good, implicit_tls=True), "implicit"),
        "healthy_plain": (servers.smtp(), "none"),
    }
    hostile_kinds = list(hostile.ports)
    targets = []
    for index in range(count):
        if index % 2 == 0:
            kind = HEALTHY_KINDS[(index // 2) % len(HEALTHY_KINDS)]
            port, tls = healthy_ports[kind]
        else:
            kind = hostile_kinds[(index // 2) % len(hostile_kinds)]
            port, tls = hostile.ports[kind], "starttls"
        targets.append(Target(f"{kind}-{index:04}", kind, port, tls))
    # The trust anchors of every target (the healthy servers' private root).
    (directory / "ca.pem").write_bytes(pki.ca_file.read_bytes())
    return targets


def _write_config(directory: Path, targets: Sequence[Target], interval: str, timeout: str) -> Path:
    lines = [
        "defaults:",
        f"  interval: {interval}",
        f"  timeout: {timeout}",
        "  ehlo_name: soak.test",
        f"  ca_file: {directory / 'ca.pem'}",
        "targets:",
    ]
    lines += [
        f"  - {{name: {target.name}, host: 127.0.0.1, port: {target.port}, tls: {target.tls},"
        f" server_name: {SERVER_NAME}}}"
        for target in targets
    ]
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _run(
    exporter: ExporterProcess, targets: Sequence[Target], arguments: argparse.Namespace, *, stale_after: float
) -> list[Sample]:
    started = time.monotonic()
    samples = [_sample(exporter, targets, 0.0, stale_after)]
    _print_progress(samples[-1])
    next_scrape, next_sample = arguments.scrape_every, arguments.sample_every
    while (elapsed := time.monotonic() - started) < arguments.duration:
        time.sleep(max(0.0, min(next_scrape, next_sample, arguments.duration) - elapsed))
        elapsed = time.monotonic() - started
        if elapsed >= min(next_sample, arguments.duration):
            samples.append(_sample(exporter, targets, elapsed, stale_after))
            _print_progress(samples[-1])
            next_sample += arguments.sample_every
            next_scrape = elapsed + arguments.scrape_every
        elif elapsed >= next_scrape:
            exporter.scrape()  # as Prometheus would, between samples
            next_scrape += arguments.scrape_every
    return samples


def _sample(exporter: ExporterProcess, targets: Sequence[Target], elapsed: float, stale_after: float) -> Sample:
    pid = exporter.process.pid
    scrape_started = time.monotonic()
    status, _, body = exporter.get("/metrics")
    scrape_seconds = time.monotonic() - scrape_started  # the HTTP request alone, not our parsing
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:200]}")
    scrape = Scrape(body)
    now = time.time()
    stale = healthy_passing = hostile_as_expected = 0
    for target in targets:
        finished = scrape.value("smtp_probe_timestamp_seconds", target=target.name)
        if finished is None or now - finished > stale_after:
            stale += 1
        if target.kind in HEALTHY_KINDS:
            healthy_passing += scrape.value("smtp_probe_success", target=target.name) == 1
        else:
            hostile_as_expected += _failures(scrape, target.name) == {EXPECTED_FAILURES[target.kind]}
    return Sample(
        elapsed=elapsed,
        rss_bytes=rss_bytes(pid),
        open_fds=open_fds(pid),
        cpu_seconds=cpu_seconds(pid),
        asyncio_tasks=int(scrape.value("smtp_exporter_asyncio_tasks") or 0),
        probes=int(sum(value for _, value in scrape.find("smtp_probes_total"))),
        in_flight=int(scrape.value("smtp_exporter_probes_in_flight") or 0),
        stale=stale,
        healthy_passing=healthy_passing,
        hostile_as_expected=hostile_as_expected,
        scrape_seconds=scrape_seconds,
    )


def _failures(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels["phase"], labels["reason"]) for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


def _print_progress(sample: Sample) -> None:
    print(
        f"{sample.elapsed:6.0f} s  rss {sample.rss_bytes / 2**20:6.1f} MiB  fds {sample.open_fds:4}"
        f"  tasks {sample.asyncio_tasks:4}  probes {sample.probes:6}  stale {sample.stale}",
        file=sys.stderr,
    )


def _print_report(
    samples: Sequence[Sample], targets: Sequence[Target], arguments: argparse.Namespace, interval: float
) -> None:
    healthy = sum(target.kind in HEALTHY_KINDS for target in targets)
    hostile = len(targets) - healthy
    first, last = samples[0], samples[-1]
    wall = last.elapsed - first.elapsed
    print(
        f"{len(targets)} targets ({healthy} healthy, {hostile} hostile of {len(EXPECTED_FAILURES)} kinds), "
        f"interval {arguments.interval}, timeout {arguments.timeout}, {wall / 60:.1f} min after the first round\n"
    )
    columns = ("min", "RSS MiB", "open fds", "asyncio tasks", "probes", "in flight", "stale", "healthy ok",
               "hostile ok", "scrape ms")  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---:|" * len(columns))
    for sample in samples:
        print(
            f"| {sample.elapsed / 60:.1f} | {sample.rss_bytes / 2**20:.1f} | {sample.open_fds} | {sample.asyncio_tasks}"
            f" | {sample.probes} | {sample.in_flight} | {sample.stale} | {sample.healthy_passing}/{healthy}"
            f" | {sample.hostile_as_expected}/{hostile} | {sample.scrape_seconds * 1000:.0f} |"
        )
    if wall <= 0:
        return
    probes = last.probes - first.probes
    print(
        f"\nRSS {first.rss_bytes / 2**20:.1f} -> {last.rss_bytes / 2**20:.1f} MiB, "
        f"open fds {first.open_fds} -> {last.open_fds}, asyncio tasks {first.asyncio_tasks} -> {last.asyncio_tasks}; "
        f"{probes} probes ({probes / wall:.1f}/s; {len(targets) * wall / interval:.0f} scheduled); "
        f"exporter CPU {100 * (last.cpu_seconds - first.cpu_seconds) / wall:.0f}% of one core"
    )


if __name__ == "__main__":
    sys.exit(main())
