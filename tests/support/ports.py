"""Loopback ports for servers the tests start in other processes (Postfix, nsd, unbound).

Such a port is found free, released, and taken by the other process a moment
later. If it came from the ephemeral range (32768-60999 on Linux), any test's
outgoing connection could take it in between and the server would fail to
start with "Address already in use", so these come from below that range.
"""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"
_BELOW_EPHEMERAL = range(20000, 32000)


def port_for_a_server(*, udp: bool = False) -> int:
    """A loopback port free for TCP (and UDP too, with ``udp``), outside the ephemeral range."""
    while True:
        port = random.choice(_BELOW_EPHEMERAL)  # noqa: S311 - a port, not a secret
        kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
        sockets = [socket.socket(socket.AF_INET, kind) for kind in kinds]
        try:
            for sock in sockets:
                sock.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
