"""Postfix's posttls-finger, the DANE reference client, pointed at the test resolver.

posttls-finger reads the system resolver, whose resolv.conf takes no port, so it
runs in a private mount namespace whose /etc/resolv.conf names unbound's port-53
address (FACTS.md); the machine's own file is never touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.dns import private_resolver_available


def unavailable_reason() -> str | None:
    if shutil.which("posttls-finger") is None:
        return "needs posttls-finger (the Debian package postfix)"
    return private_resolver_available()


@dataclass(frozen=True)
class FingerVerdict:
    # "Verified" (DANE matched), "Untrusted", "Anonymous"... from "<kind> TLS connection established"; None if none.
    connection: str | None
    # e.g. "Matched DANE EE certificate at depth 0: 3 1 1 ..."
    matched: str | None
    output: str


def posttls_finger(
    resolv_conf: Path, host: str, port: int, *, level: str = "dane", ca_file: Path | None = None
) -> FingerVerdict:
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    command = [
        "unshare", "-m", "sh", "-c", script, str(resolv_conf),
        # -c: TLS facts only; dnssec_probe= skips its probe of the real root.
        "posttls-finger", "-c", "-t", "5", "-T", "5", "-l", level, "-a", "ipv4",
        "-o", "dnssec_probe=", "-L", "summary,certmatch",
        *(("-F", str(ca_file)) if ca_file is not None else ()), f"[{host}]:{port}",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    output = completed.stdout + completed.stderr
    connection = re.search(r"(\w+) TLS connection established", output)
    matched = re.search(r"(Matched DANE [^\n]*)", output)
    return FingerVerdict(connection.group(1) if connection else None, matched.group(1) if matched else None, output)


def write_resolv_conf(path: Path, address: str) -> Path:
    # trust-ad: glibc strips the AD bit otherwise, and Postfix's DANE needs it.
    path.write_text(f"nameserver {address}\noptions trust-ad attempts:1 timeout:2\n")
    return path
