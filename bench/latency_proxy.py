"""A delaying TCP proxy that makes a loopback Postfix look like MX hosts on the internet.

Each connection's greeting is held back uniformly between --greeting-min and
--greeting-max seconds (postscreen and similar tarpits), and every later chunk
from the server is delayed by --reply-delay (a round trip). Connections to the
--silent-ports are accepted and never answered. Runs as its own process so its
CPU is measured apart from the exporter's; on SIGTERM it prints its own health
(CPU, connections, event-loop lag) as JSON, so a bottleneck of the lab is never
blamed on the exporter.

    python -m bench.latency_proxy --upstream 127.0.0.1:587,127.0.0.1:588 --ports 20000-20009 --silent-ports 20010

The upstream connection is made when the greeting is due, not at accept: the
held-back greeting is the server thinking, and a Postfix with a process per
connection would otherwise spend its process limit on connections that wait.
Upstreams are used in turn, each a Postfix listener with its own process limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import resource
import signal
import sys
import time
from dataclasses import dataclass, field

HOLD_SILENT_SECONDS = 120.0


@dataclass
class Health:
    connections: int = 0
    silent_connections: int = 0
    open_now: int = 0
    open_max: int = 0
    upstream_failures: int = 0
    loop_lag_max: float = 0.0
    lag_samples: list[float] = field(default_factory=list)


def _ports(text: str) -> list[int]:
    if not text:
        return []
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_first: float, delay: float) -> None:
    first = True
    try:
        while chunk := await reader.read(65536):
            await asyncio.sleep(delay_first if first else delay)
            first = False
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class Proxy:
    def __init__(self, upstreams: list[tuple[str, int]], greeting: tuple[float, float], reply_delay: float) -> None:
        self.upstreams = itertools.cycle(upstreams)
        self.greeting = greeting
        self.reply_delay = reply_delay
        self.health = Health()

    def _opened(self) -> None:
        self.health.connections += 1
        self.health.open_now += 1
        self.health.open_max = max(self.health.open_max, self.health.open_now)

    async def relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # only shutdown cancels; end quietly
            await self._relay(client_reader, client_writer)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._opened()
        try:
            await asyncio.sleep(random.uniform(*self.greeting))  # noqa: S311 - a delay, not a secret
            try:
                server_reader, server_writer = await asyncio.open_connection(*next(self.upstreams))
            except OSError:
                self.health.upstream_failures += 1
                client_writer.close()
                return
            await asyncio.gather(
                _pipe(client_reader, server_writer, 0.0, 0.0),
                _pipe(server_reader, client_writer, 0.0, self.reply_delay),
            )
        finally:
            self.health.open_now -= 1

    async def silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._opened()
        self.health.silent_connections += 1
        try:
            async with asyncio.timeout(HOLD_SILENT_SECONDS):
                while await reader.read(65536):
                    pass
        except (TimeoutError, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.health.open_now -= 1
            writer.close()

    async def watch_loop(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.1)
            lag = time.monotonic() - started - 0.1
            self.health.loop_lag_max = max(self.health.loop_lag_max, lag)
            self.health.lag_samples.append(lag)


async def _main(arguments: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    upstreams = [
        (host, int(port)) for host, _, port in (text.rpartition(":") for text in arguments.upstream.split(","))
    ]
    proxy = Proxy(upstreams, (arguments.greeting_min, arguments.greeting_max), arguments.reply_delay)
    servers = [await asyncio.start_server(proxy.relay, "127.0.0.1", p, backlog=4096) for p in _ports(arguments.ports)]
    servers += [
        await asyncio.start_server(proxy.silent, "127.0.0.1", p, backlog=4096) for p in _ports(arguments.silent_ports)
    ]
    watcher = asyncio.create_task(proxy.watch_loop())
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print("ready", flush=True)
    await stopping.wait()
    watcher.cancel()
    for server in servers:
        server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples = sorted(proxy.health.lag_samples) or [0.0]
    print(
        json.dumps(
            {
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "connections": proxy.health.connections,
                "silent_connections": proxy.health.silent_connections,
                "open_max": proxy.health.open_max,
                "upstream_failures": proxy.health.upstream_failures,
                "loop_lag_p99_seconds": samples[int(0.99 * (len(samples) - 1))],
                "loop_lag_max_seconds": proxy.health.loop_lag_max,
            }
        ),
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="host:port[,host:port...] of the real server")
    parser.add_argument("--ports", required=True, help="delaying listeners, e.g. 20000-20009")
    parser.add_argument("--silent-ports", default="", help="listeners that accept and never answer")
    parser.add_argument("--greeting-min", type=float, default=1.0)
    parser.add_argument("--greeting-max", type=float, default=6.0)
    parser.add_argument("--reply-delay", type=float, default=0.04)
    arguments = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_main(arguments))
    except ImportError:
        asyncio.run(_main(arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
