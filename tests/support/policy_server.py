"""An HTTPS server for MTA-STS policy hosts on a loopback address, port 443.

One server answers for every policy host of a test: it picks the certificate
by SNI and the response by Host header, and records each request, so a test can
see that a redirect was not followed. It runs in its own threads, so the
exporter's event loop under test shares nothing with it.

    server = PolicyServer.start(address, default_certificate, directory)
    server.serve("mta-sts.example.test", PolicyResponse(body=b"version: STSv1\\n..."))
    server.stop()
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from tests.support.pki import ServerCertificate

HTTPS_PORT = 443


def https_port_unavailable_reason() -> str | None:
    """Why this process cannot listen on port 443 of loopback, or None when it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "listening on port 443 (the only port RFC 8461 policy hosts use) needs root"
    return None


def spare_loopback_address() -> str:
    """A 127.x.y.z address nobody listens on port 443 of (tests run side by side on one machine)."""
    rng = random.SystemRandom()
    for _ in range(100):
        address = f"127.{rng.randint(100, 250)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((address, HTTPS_PORT))
            except OSError:
                continue
            return address
    raise RuntimeError("no free loopback address for port 443")


@dataclass(frozen=True)
class PolicyResponse:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain"),)
    # How the body's end is told: Content-Length, chunked transfer coding, or closing the connection.
    framing: Literal["length", "chunked", "close"] = "length"


@dataclass
class PolicyServer:
    address: str
    _server: ThreadingHTTPServer
    _thread: threading.Thread
    responses: dict[str, PolicyResponse] = field(default_factory=dict)
    # (Host header, path) of every request, in order.
    requests: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        address: str,
        certificate: ServerCertificate,
        directory: Path,
        certificates_by_name: dict[str, ServerCertificate] | None = None,
    ) -> PolicyServer:
        """Serve on ``address``:443 with ``certificate``, or the one given for the client's SNI name."""
        default = certificate.server_context(directory, "policy-default")
        by_name = {
            name: chosen.server_context(directory, f"policy-{index}")
            for index, (name, chosen) in enumerate((certificates_by_name or {}).items())
        }

        def choose(connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            if server_name in by_name:
                connection.context = by_name[server_name]

        default.sni_callback = choose
        server = _TlsHttpServer((address, HTTPS_PORT), _Handler, default)
        thread = threading.Thread(target=server.serve_forever, name=f"policy-server-{address}", daemon=True)
        policy_server = cls(address, server, thread)
        server.policy_server = policy_server
        thread.start()
        return policy_server

    def serve(self, host: str, response: PolicyResponse) -> None:
        self.responses[host.lower()] = response

    def requests_for(self, host: str) -> int:
        return sum(1 for requested, _ in self.requests if requested == host.lower())

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _TlsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    policy_server: PolicyServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the request's thread: a client that rejects our
        # certificate ends its own connection, not the server.
        with contextlib.suppress(OSError):
            tls = self.context.wrap_socket(request, server_side=True)
            _Handler(tls, client_address, self)


class _Handler(BaseHTTPRequestHandler):
    server: _TlsHttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server.policy_server
        host = (self.headers.get("Host") or "").lower()
        owner.requests.append((host, self.path))
        response = owner.responses.get(host, PolicyResponse(404, b"no policy for this host\n"))
        if self.path != "/.well-known/mta-sts.txt":
            response = PolicyResponse(404, b"not the policy path\n")
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.framing == "length":
            self.send_header("Content-Length", str(len(response.body)))
        elif response.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        if response.framing == "chunked":
            # Uneven chunks, with a chunk extension, and a trailer field.
            for start in range(0, len(response.body), 7):
                chunk = response.body[start : start + 7]
                self.wfile.write(b"%x;note=1\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        else:
            self.wfile.write(response.body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return
