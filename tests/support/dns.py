"""Name resolution under the tests' control.

The exporter runs in a private mount namespace with its own /etc/hosts and an
/etc/resolv.conf pointing at a loopback stub that answers NXDOMAIN, so no
test ever sends a query to the machine's real resolver.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import cast


class _NxdomainProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        if len(data) < 12:
            return
        (query_id,) = struct.unpack("!H", data[:2])
        question = data[12:]
        # QR=1, RD=1, RA=1, RCODE=3 (NXDOMAIN); one question, no answers.
        header = struct.pack("!HHHHHH", query_id, 0x8183, 1, 0, 0, 0)
        self.transport.sendto(header + question, addr)


async def start_nxdomain_server(host: str = "127.0.0.1", port: int = 53) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_NxdomainProtocol, local_addr=(host, port))
    return transport


def private_resolver_available() -> str | None:
    """Why the private-resolver setup cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (a private mount namespace and port 53)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount (util-linux)"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.decode().strip()}"
    return None


def with_private_resolver(resolv_conf: Path, hosts: Path) -> Sequence[str]:
    """A command prefix running the rest with its own /etc/resolv.conf and /etc/hosts."""
    script = 'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/hosts && shift && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(resolv_conf), str(hosts)]
