"""Every HTTP endpoint behind ``--web.config.file``: TLS, client certificates, basic auth, headers, rate limit.

The file (and the certificate files it names) is watched by size, mtime,
ctime and inode, on every request and every few seconds, and re-read when
one changes, as exporter-toolkit re-reads it per request and per handshake.
A valid new file applies at once; an invalid one is logged and the previous
one kept. A TLS change takes effect for new connections: the listening
socket is served by a new aiohttp site with the new SSLContext (started on a
duplicate of the socket before the old site stops, so no connection is
refused); open connections finish with the context they were accepted with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from exporter.config.loader import ConfigError
from exporter.web.basic_auth import BasicAuthVerifier
from exporter.web.guard import ConnectionGuard, GuardedSockSite
from exporter.web.tls_server import server_context
from exporter.web.web_config import OPEN, RateLimit, WebConfig, read_web_config, san_values

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (inode, size, mtime, ctime) per watched file; None for a file that cannot be stat'ed.
Fingerprint = tuple[tuple[int, int, int, int] | None, ...]
CHECK_INTERVAL = 5.0


@dataclass(frozen=True)
class LoadedWebConfig:
    config: WebConfig
    context: ssl.SSLContext | None
    config_fingerprint: Fingerprint
    tls_fingerprint: Fingerprint


def load_web_config(path: Path) -> LoadedWebConfig:
    """Parse ``path`` and build its TLS context. Raises ConfigError, naming file, line and key."""
    config_fingerprint = fingerprint([path])
    config = read_web_config(path)
    tls_fingerprint = fingerprint(config.tls.files if config.tls else ())
    return LoadedWebConfig(config, server_context(config), config_fingerprint, tls_fingerprint)


def fingerprint(paths: Iterable[Path]) -> Fingerprint:
    stats: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            stats.append(None)
            continue
        stats.append((status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(stats)


class TokenBucket:
    """golang.org/x/time/rate's Limiter.Allow, which exporter-toolkit's rate_limit uses: starts full."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._tokens = float(limit.burst)
        self._updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self.limit.burst), self._tokens + (now - self._updated) / self.limit.interval)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class WebAccess:
    """The web config in force, and the server that serves it."""

    def __init__(self, path: Path | None) -> None:
        """Load ``path`` (None: plain HTTP, no authentication). Raises ConfigError."""
        self.path = path
        self.current = load_web_config(path) if path is not None else LoadedWebConfig(OPEN, None, (), ())
        self._log_warnings()
        self._rejected: tuple[Fingerprint, Fingerprint] | None = None
        self._verifier = BasicAuthVerifier()
        self._bucket = TokenBucket(self.current.config.rate_limit) if self.current.config.rate_limit else None
        self._runner: web.BaseRunner | None = None
        self._listener: socket.socket | None = None
        self._site: web.SockSite | None = None
        # One for every site: a TLS change serves from a second site for a while.
        self.guard = ConnectionGuard()
        self._swap_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def tls(self) -> bool:
        return self.current.context is not None

    def protect(self, app: web.Application) -> None:
        """Put every route of ``app``, unknown paths included, behind the web config."""
        app.middlewares.insert(0, self._middleware)
        app.on_response_prepare.append(self._add_headers)

    async def serve(self, runner: web.BaseRunner, listener: socket.socket) -> None:
        self._runner, self._listener = runner, listener
        await self._start_site()
        if self.path is not None:
            self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def refresh(self) -> None:
        """Re-read the web config if it or its certificate files changed."""
        if self.path is None:
            return
        watched = self.current.config.tls.files if self.current.config.tls else ()
        seen = (fingerprint([self.path]), fingerprint(watched))
        if seen in ((self.current.config_fingerprint, self.current.tls_fingerprint), self._rejected):
            return
        try:
            loaded = load_web_config(self.path)
        except ConfigError as exc:
            # Remembered, so a broken file is logged once, not on every request.
            self._rejected = seen
            log.error("web config reload failed; keeping the previous one:\n%s", exc)
            return
        previous, self.current, self._rejected = self.current, loaded, None
        self._log_warnings()
        if loaded.config.rate_limit != previous.config.rate_limit:
            self._bucket = TokenBucket(loaded.config.rate_limit) if loaded.config.rate_limit else None
        log.info("web config reloaded", extra={"file": str(self.path), "tls": self.tls})
        tls_changed = (loaded.config.tls, loaded.tls_fingerprint) != (previous.config.tls, previous.tls_fingerprint)
        if tls_changed and self._runner is not None:
            await self._start_site()

    async def _start_site(self) -> None:
        if self._runner is None or self._listener is None:
            raise RuntimeError("WebAccess.serve() starts the first site")
        async with self._swap_lock:
            site = GuardedSockSite(
                self._runner, self._listener.dup(), guard=self.guard, ssl_context=self.current.context
            )
            await site.start()
            previous, self._site = self._site, site
            if previous is not None:
                await previous.stop()

    async def _watch(self) -> None:
        # Requests re-check too; this catches a change no request can reach,
        # such as a renewed certificate replacing one clients now refuse.
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                await self.refresh()
            except Exception:
                log.exception("checking the web config failed")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self.refresh()
        config = self.current.config
        # exporter-toolkit's order: rate limit, then authentication.
        if self._bucket is not None and not self._bucket.allow():
            return web.Response(status=429, text="Too Many Requests\n")
        allowed_sans = config.tls.client_allowed_sans if config.tls else None
        if allowed_sans is not None:
            peer = request.transport.get_extra_info("peercert") if request.transport else None
            # Go refuses the handshake; Python's ssl has no hook there, so the
            # request is refused instead, before it reaches any endpoint.
            if not peer or not san_values(peer) & set(allowed_sans):
                return web.Response(status=403, text="Forbidden: the client certificate names no allowed SAN\n")
        if config.users and not await self._verifier.verify(config.users, request.headers.get("Authorization")):
            return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": "Basic"})
        return await handler(request)

    async def _add_headers(self, _request: web.Request, response: web.StreamResponse) -> None:
        for name, value in self.current.config.headers:
            response.headers[name] = value

    def _log_warnings(self) -> None:
        for warning in self.current.config.warnings:
            log.warning("%s", warning)
