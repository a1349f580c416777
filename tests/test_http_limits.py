"""The HTTP side cannot be held open: idle and half-sent connections are closed, connections are bounded.

The probes share the process's file descriptors with HTTP connections, so
connections that never finish a request must not pile up, and a scrape must
still get through while others hog the port.
"""

from __future__ import annotations

import select
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from exporter.web.guard import MAX_CONNECTIONS, REQUEST_TIMEOUT_SECONDS
from tests.support.exporter_process import ExporterProcess
from tests.support.servers import ScenarioServers


@pytest.fixture(scope="module")
def exporter(servers: ScenarioServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    directory = tmp_path_factory.mktemp("http-limits")
    config = directory / "config.yml"
    config.write_text(f"targets:\n  - {{name: relay, host: 127.0.0.1, port: {servers.smtp()}, tls: none}}\n")
    with ExporterProcess(config, directory / "exporter.log") as running:
        running.wait_for_probes(["relay"])
        yield running


def _address(exporter: ExporterProcess) -> tuple[str, int]:
    host, _, port = exporter.base_url.removeprefix("http://").rpartition(":")
    return host, int(port)


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    """True once the server has closed ``sock`` (EOF or reset) within ``wait`` seconds."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    "path", ["/", "/metrics", "/-/healthy", "/-/ready", "/probe", "/no/such/page"], ids=lambda path: path
)
def test_every_response_says_nosniff(exporter: ExporterProcess, path: str) -> None:
    _, headers, _ = exporter.get(path)
    assert {key.lower(): value for key, value in headers.items()}["x-content-type-options"] == "nosniff"


def test_silent_and_half_sent_connections_are_closed(exporter: ExporterProcess) -> None:
    silent = [socket.create_connection(_address(exporter)) for _ in range(20)]
    half_sent = [socket.create_connection(_address(exporter)) for _ in range(20)]
    for sock in half_sent:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    try:
        deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS + 20
        still_open = silent + half_sent
        while still_open and time.monotonic() < deadline:
            still_open = [sock for sock in still_open if not _closed_by_server(sock, 0.5)]
        assert still_open == [], f"{len(still_open)} connections still open"
        # A finished request on a fresh connection is answered as ever.
        with urllib.request.urlopen(f"{exporter.base_url}/-/healthy", timeout=10) as response:
            assert response.status == 200
    finally:
        for sock in silent + half_sent:
            sock.close()


def test_a_scrape_gets_in_while_the_port_is_hogged(exporter: ExporterProcess) -> None:
    hogs = [socket.create_connection(_address(exporter)) for _ in range(MAX_CONNECTIONS + 50)]
    try:
        with urllib.request.urlopen(f"{exporter.base_url}/metrics", timeout=10) as response:
            assert response.status == 200
            assert b"smtp_probe_success" in response.read()
        # The quietest connections made room: the oldest ones, beyond the bound, are
        # gone; the newest are still open (asked at once, well inside the request timeout).
        time.sleep(0.5)
        readable, _, _ = select.select(hogs, [], [], 0)
        closed = [sock for sock in readable if _closed_by_server(sock, 0)]
        assert len(closed) >= 50
        assert not set(closed) & set(hogs[-(MAX_CONNECTIONS // 2) :])
    finally:
        for sock in hogs:
            sock.close()


def test_a_kept_alive_scraper_is_not_cut_off(exporter: ExporterProcess) -> None:
    # Prometheus keeps its connection and scrapes again on it.
    with socket.create_connection(_address(exporter)) as sock:
        for _ in range(3):
            sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while b"Healthy" not in answer:
                chunk = sock.recv(65536)
                assert chunk, "the exporter closed a connection that was answering"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")


def test_the_exporter_log_is_quiet_about_it(exporter: ExporterProcess) -> None:
    # Closing abusive connections is routine: no tracebacks for them.
    assert "Traceback" not in exporter.log_text()
