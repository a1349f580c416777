"""HTTP endpoints: /metrics, the landing page, health, readiness and reload."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from exporter.metrics.render import CONTENT_TYPE
from exporter.web.probe_endpoint import ProbeResponse


class ExporterState(Protocol):
    """What the HTTP layer needs from the daemon."""

    @property
    def ready(self) -> bool: ...

    def metrics_chunks(self) -> list[str]: ...

    def landing_page(self) -> str: ...

    def reload(self) -> str | None:
        """Reload the config; return the error text, or None on success."""
        ...

    async def probe_now(self, query: Mapping[str, str], scrape_timeout_header: str | None) -> ProbeResponse: ...


def create_app(state: ExporterState) -> web.Application:
    async def metrics(request: web.Request) -> web.StreamResponse:
        # The text is taken in one go, so a scrape sees one consistent state;
        # it is encoded and sent a family at a time, so 10,000 targets' 20 MB
        # never exist as one string and one bytes object at once.
        chunks = state.metrics_chunks()
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk.encode("utf-8"))
        await response.write_eof()
        return response

    async def landing(_request: web.Request) -> web.Response:
        return web.Response(text=state.landing_page(), content_type="text/html")

    async def healthy(_request: web.Request) -> web.Response:
        return web.Response(text="Healthy\n")

    async def ready(_request: web.Request) -> web.Response:
        if state.ready:
            return web.Response(text="Ready\n")
        return web.Response(status=503, text="Not ready: the configuration is not loaded yet\n")

    async def reload(_request: web.Request) -> web.Response:
        error = state.reload()
        if error is None:
            return web.Response(text="Configuration reloaded\n")
        return web.Response(status=500, text=f"Failed to reload the configuration; keeping the old one:\n{error}\n")

    async def probe(request: web.Request) -> web.Response:
        answer = await state.probe_now(request.query, request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        return web.Response(
            status=answer.status, body=answer.body.encode("utf-8"), headers={"Content-Type": answer.content_type}
        )

    app = web.Application()
    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/probe", probe)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    return app


class ListenError(OSError):
    pass


def bind(listen_address: str) -> socket.socket:
    """A listening socket for ``host:port``, ``:port`` (every interface) or ``[v6]:port``."""
    host, separator, port_text = listen_address.rpartition(":")
    if not separator or not port_text.isdigit() or int(port_text) > 65535:
        raise ListenError(f"invalid listen address {listen_address!r} (expected host:port, such as :10587)")
    port = int(port_text)
    host = host.strip("[]")
    try:
        if host:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            return socket.create_server((host, port), family=family, reuse_port=False)
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        return socket.create_server(("", port))
    except OSError as exc:
        raise ListenError(f"cannot listen on {listen_address}: {exc.strerror or exc}") from exc


def bound_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
