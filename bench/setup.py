"""What the benchmarks stand on: a real STARTTLS server (Postfix), certificates,
free ports, and the exporter as users run it.

Postfix (C, one process per connection) is a realistic target and cheap
enough per probe that it does not limit the runs; its CPU is measured and
reported all the same.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.pki import SERVER_NAME, Pki
from tests.support.postfix import MailServer, start_mail_server, stop_mail_server, unavailable_reason

REPO = Path(__file__).resolve().parent.parent


def missing_requirements(*commands: str) -> str | None:
    reason = unavailable_reason()
    if reason is not None:
        return reason
    missing = [command for command in commands if shutil.which(command) is None]
    if missing:
        return f"missing commands: {', '.join(missing)} (Debian: prometheus-blackbox-exporter)"
    return None


@contextmanager
def postfix_server(extra_ports: int = 0) -> Iterator[tuple[MailServer, Pki]]:
    directory = Path(tempfile.mkdtemp(prefix="smtp-bench-pki-"))
    pki = Pki(directory)
    leaf = pki.leaf(SERVER_NAME)
    server = start_mail_server(
        leaf.key_pem + leaf.chain_pem, "bench@mail.test", "bench", extra_submission_ports=extra_ports
    )
    try:
        yield server, pki
    finally:
        stop_mail_server(server)
        shutil.rmtree(directory, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_exporter(config: Path, port: int, extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "exporter", "--config.file", str(config),
            "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn", *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )  # fmt: skip
    wait_for_http(f"http://127.0.0.1:{port}/-/ready")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def machine_description() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} x {model}, {memory_kib / 1024 / 1024:.0f} GiB; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; {ssl.OPENSSL_VERSION}"
    )
