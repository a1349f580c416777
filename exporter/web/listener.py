"""The listening socket for the HTTP side, from a Prometheus-style listen address."""

from __future__ import annotations

import socket

from exporter.config.values import format_endpoint


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
    return format_endpoint(host, port)
