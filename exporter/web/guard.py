"""Bounds on the HTTP side: how many connections, how long idle, how slow a request.

The probes share the process's file descriptors with the HTTP connections,
so 350 idle or half-sent connections to the metrics port must not be able to
stay open for ever. Every connection must deliver a complete request head
within REQUEST_TIMEOUT_SECONDS of connecting or of its previous request (a
slowloris trickling one octet a second is cut off there); aiohttp closes a
keep-alive connection idle for IDLE_TIMEOUT_SECONDS; and at most
MAX_CONNECTIONS are open at once: a new connection beyond that takes the
place of the one that has been quiet longest, so a scrape still gets in
while abusers hold the rest.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import cast

from aiohttp import web

from exporter.runtime.limits import HTTP_CONNECTIONS

MAX_CONNECTIONS = HTTP_CONNECTIONS
REQUEST_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 60.0
# A TLS client must finish its handshake within the request timeout too.
TLS_HANDSHAKE_TIMEOUT_SECONDS = REQUEST_TIMEOUT_SECONDS
_END_OF_HEAD = b"\r\n\r\n"


class ConnectionGuard:
    """Shared by every site of one exporter (a TLS change starts a second site for a while)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = max_connections
        # Open connections, least recently active first.
        self._open: dict[_GuardedProtocol, None] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(factory(), self)

    def _admit(self, connection: _GuardedProtocol) -> None:
        if len(self._open) >= self.max_connections:
            quietest = next(iter(self._open))
            quietest.abort()
        self._open[connection] = None

    def _active(self, connection: _GuardedProtocol) -> None:
        if connection in self._open:
            del self._open[connection]
            self._open[connection] = None

    def _closed(self, connection: _GuardedProtocol) -> None:
        self._open.pop(connection, None)


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's request handler behind a deadline for each request head."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # The last octets seen, so an end of head split across reads is found.
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._guard._admit(self)
        self._await_request()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._guard._active(self)
        if self._deadline is None:
            self._await_request()  # the next request on a kept-alive connection has begun
        seen = self._tail + data
        if _END_OF_HEAD in seen:
            self._cancel_deadline()
            self._tail = seen[seen.rindex(_END_OF_HEAD) + len(_END_OF_HEAD) :][-3:]
            if self._tail:  # pipelined: part of the next head is here already
                self._await_request()
        else:
            self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._guard._closed(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _await_request(self) -> None:
        self._cancel_deadline()
        self._deadline = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT_SECONDS, self.abort)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class GuardedSockSite(web.SockSite):
    """aiohttp's SockSite, its connections under a ConnectionGuard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        *,
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context, backlog=MAX_CONNECTIONS)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.wrap(cast(Callable[[], asyncio.Protocol], server)),
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_SECONDS if self._ssl_context else None,
        )
