"""HTTP endpoints: /metrics, the landing page, /probe, health, readiness and reload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiohttp import web

from exporter.metrics.text_format import CONTENT_TYPE
from exporter.web.probe_endpoint import ProbeResponse


class ExporterState(Protocol):
    """What the HTTP layer needs from the daemon."""

    @property
    def ready(self) -> bool: ...

    def metrics_chunks(self) -> list[Sequence[str]]: ...

    def landing_page(self) -> str: ...

    def reload(self) -> str | None:
        """Reload the config; return the error text, or None on success."""
        ...

    async def probe_now(self, query: Mapping[str, str], scrape_timeout_header: str | None) -> ProbeResponse: ...


def create_app(state: ExporterState) -> web.Application:
    async def metrics(request: web.Request) -> web.StreamResponse:
        # The pieces are taken in one go, so a scrape sees one consistent state;
        # they are joined, encoded and sent a family at a time, so 10,000
        # targets' 25 MB never exist as one string, nor as one bytes object.
        chunks = state.metrics_chunks()
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
        await response.prepare(request)
        for chunk in chunks:
            await response.write("".join(chunk).encode("utf-8"))
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

    async def no_sniffing(_request: web.Request, response: web.StreamResponse) -> None:
        # Text that quotes servers (the landing page, /probe?debug) must never
        # be taken for HTML or script by a browser guessing the type.
        response.headers["X-Content-Type-Options"] = "nosniff"

    app = web.Application()
    app.on_response_prepare.append(no_sniffing)
    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/probe", probe)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    return app
