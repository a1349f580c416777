"""One loopback Postfix with a STARTTLS listener per TLS posture, for the capability scan.

Each posture is a master.cf service with its own ``-o`` overrides, so one
Postfix serves them all: a default Debian setup, TLS 1.0 allowed at
SECLEVEL=0, TLS 1.3 only, TLS 1.2 with finite-field DHE suites only, and
TLS 1.2 with the server's cipher order.
No SASL, no delivery: the scan stops after the handshake. Standard library
only, so the sslyze comparison in bench/ can start it from its own venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import port_for_a_server
from tests.support.postfix import run_quietly, wait_for_port

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.test
mydomain = mail.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
maillog_file = {maillog}
smtpd_tls_chain_files = {base}/server.pem
smtpd_tls_security_level = may
"""

# Overrides per posture. Postfix's opportunistic STARTTLS uses the "medium"
# cipher grade, so the cipher list is set through tls_medium_cipherlist.
POSTURES: dict[str, str] = {
    # Debian's defaults: OpenSSL 3.0 at security level 1 refuses TLS 1.0/1.1.
    "default": "",
    # An old server: every version OpenSSL 3.0 still has, every cipher.
    "legacy": "-o smtpd_tls_protocols=>=TLSv1 -o tls_medium_cipherlist=ALL:@SECLEVEL=0",
    "tls13_only": "-o smtpd_tls_protocols=>=TLSv1.3",
    # TLS 1.2 only, with finite-field DHE suites only (no ECDHE, no RSA
    # key exchange), and the server's order enforced.
    "dhe_only": (
        "-o smtpd_tls_protocols=>=TLSv1.2,<=TLSv1.2"
        " -o tls_medium_cipherlist=DHE+AESGCM:DHE+CHACHA20:DHE+AES"
        " -o tls_preempt_cipherlist=yes"
    ),
    # A good suite and a phase-out one, the server's order enforced: passes
    # internet.nl's cipher-order test, where the defaults fail it.
    "ordered": (
        "-o smtpd_tls_protocols=>=TLSv1.2,<=TLSv1.2"
        " -o tls_medium_cipherlist=ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA"
        " -o tls_preempt_cipherlist=yes"
    ),
}


def unavailable_reason() -> str | None:
    """Why Postfix cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to start Postfix"
    if shutil.which("postfix") is None or shutil.which("postconf") is None:
        return "needs the Debian package postfix"
    return None


@dataclass(frozen=True)
class PostureServer:
    base: Path
    maillog: Path
    ports: dict[str, int]


def start_posture_server(server_pem: bytes, postures: dict[str, str] | None = None) -> PostureServer:
    """Start Postfix with one STARTTLS port per posture; stop it with ``stop_posture_server``."""
    chosen = POSTURES if postures is None else postures
    # Postfix's daemons run as the postfix user: the tree must be traversable.
    base = Path(tempfile.mkdtemp(prefix="smtp-tls-exporter-postures-"))
    base.chmod(0o755)
    maillog = Path(f"/var/log/{base.name}.log")
    server = PostureServer(base, maillog, {name: port_for_a_server() for name in chosen})
    for directory in ("postfix", "queue", "data"):
        (base / directory).mkdir()
    shutil.chown(base / "data", "postfix")
    (base / "server.pem").write_bytes(server_pem)
    (base / "server.pem").chmod(0o600)
    (base / "postfix" / "main.cf").write_text(_MAIN_CF.format(base=base, maillog=maillog))
    shutil.copy("/etc/postfix/master.cf", base / "postfix" / "master.cf")
    config = ["-c", str(base / "postfix")]
    run_quietly("postconf", *config, "-MX", "smtp/inet")
    run_quietly("postconf", *config, "-F", "*/*/chroot = n")
    for name, port in server.ports.items():
        listen = f"127.0.0.1:{port}"
        run_quietly("postconf", *config, "-M", f"{listen}/inet = {listen} inet n - n - - smtpd {chosen[name]}".rstrip())
    run_quietly("postconf", *config, "-M", "postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd")
    try:
        run_quietly("postfix", *config, "start")
        for port in server.ports.values():
            wait_for_port(port)
    except BaseException:
        stop_posture_server(server)
        raise
    return server


def stop_posture_server(server: PostureServer) -> None:
    subprocess.run(
        ["postfix", "-c", str(server.base / "postfix"), "stop"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    shutil.rmtree(server.base, ignore_errors=True)
    server.maillog.unlink(missing_ok=True)
