"""A private Postfix + Dovecot SASL pair on loopback, for the integration tier.

Debian's packages, configured in a throw-away directory and started as a
second instance: submission with STARTTLS and port-465-style implicit TLS,
SASL through Dovecot's auth socket, mail for mail.test delivered to a
maildir. Nothing listens beyond 127.0.0.1, and Postfix looks nothing up in DNS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import port_for_a_server

MAIL_DOMAIN = "mail.test"
# Unprivileged owner of the delivered mail (Debian's "nobody").
MAIL_UID = 65534

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {domain}
mydomain = {domain}
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
smtpd_banner = $myhostname ESMTP $mail_name
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
maillog_file = {maillog}
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = inline:{{ {user}={mailbox}/, postmaster@{domain}={mailbox}/ }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
smtpd_tls_chain_files = {base}/server.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
"""

_DOVECOT_CONF = """\
protocols =
base_dir = {base}/dovecot-run
log_path = {base}/dovecot.log
ssl = no
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home=/nonexistent
}}
service auth {{
  unix_listener {base}/queue/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


def unavailable_reason() -> str | None:
    """Why the real mail servers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to start Postfix and Dovecot"
    missing = [tool for tool in ("postfix", "postconf", "dovecot") if shutil.which(tool) is None]
    if missing:
        return f"needs the Debian packages postfix and dovecot-core (missing: {', '.join(missing)})"
    return None


@dataclass
class MailServer:
    base: Path
    maillog: Path
    submission_port: int
    smtps_port: int
    user: str
    # More STARTTLS submission listeners, for benchmarks that spread load.
    extra_submission_ports: tuple[int, ...] = ()
    # STARTTLS listeners that ask for (smtpd_tls_ask_ccert) and require
    # (smtpd_tls_req_ccert) a client certificate; 0 without a client CA.
    ask_ccert_port: int = 0
    req_ccert_port: int = 0

    @property
    def master_pid(self) -> int:
        return int((self.base / "queue" / "pid" / "master.pid").read_text().split()[0])

    @property
    def mailbox(self) -> Path:
        return self.base / "mail" / "probe"

    def delivered_messages(self) -> list[bytes]:
        return [path.read_bytes() for path in sorted((self.mailbox / "new").glob("*"))]

    def log_text(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def wait_for_delivery(self, count: int, timeout: float = 30) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(messages := self.delivered_messages()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(messages)} of {count} messages delivered; Postfix log:\n{self.log_text()}")
            time.sleep(0.2)
        return messages


def start_mail_server(
    server_pem: bytes,
    user: str,
    password: str,
    *,
    extra_submission_ports: int = 0,
    client_ca_pem: bytes | None = None,
) -> MailServer:
    """Configure and start Postfix and Dovecot; stop them with ``stop_mail_server``.

    With ``client_ca_pem``, two more STARTTLS listeners ask for and require a
    client certificate issued by that CA.
    """
    # Postfix's daemons run as the postfix user, so the tree must be
    # traversable; pytest's temporary directories are private to root.
    base = Path(tempfile.mkdtemp(prefix="smtp-tls-exporter-postfix-"))
    base.chmod(0o755)
    maillog = Path(f"/var/log/smtp-tls-exporter-test-{secrets.token_hex(4)}.log")
    extra = tuple(port_for_a_server() for _ in range(extra_submission_ports))
    server = MailServer(base, maillog, port_for_a_server(), port_for_a_server(), user, extra)
    if client_ca_pem is not None:
        server.ask_ccert_port, server.req_ccert_port = port_for_a_server(), port_for_a_server()
    for directory in ("postfix", "queue", "data", "mail", "dovecot-run"):
        (base / directory).mkdir()
    shutil.chown(base / "data", "postfix")
    os.chown(base / "mail", MAIL_UID, MAIL_UID)
    (base / "server.pem").write_bytes(server_pem)
    (base / "server.pem").chmod(0o600)
    users = base / "users"
    users.write_text(f"{user}:{{PLAIN}}{password}\n")
    users.chmod(0o640)
    shutil.chown(users, group="dovecot")

    settings = {"base": base, "domain": MAIL_DOMAIN, "maillog": maillog, "user": user, "mailbox": "probe"}
    (base / "postfix" / "main.cf").write_text(_MAIN_CF.format(uid=MAIL_UID, **settings))
    shutil.copy("/etc/postfix/master.cf", base / "postfix" / "master.cf")
    (base / "dovecot.conf").write_text(_DOVECOT_CONF.format(base=base, uid=MAIL_UID))
    config = ["-c", str(base / "postfix")]
    run_quietly("postconf", *config, "-MX", "smtp/inet")  # no port 25 on every interface
    run_quietly("postconf", *config, "-F", "*/*/chroot = n")
    auth = "-o smtpd_sasl_auth_enable=yes"
    for port in (server.submission_port, *server.extra_submission_ports):
        run_quietly("postconf", *config, "-M", _service(port, f"{auth} -o smtpd_tls_security_level=encrypt"))
    run_quietly("postconf", *config, "-M", _service(server.smtps_port, f"{auth} -o smtpd_tls_wrappermode=yes"))
    if client_ca_pem is not None:
        (base / "client-ca.pem").write_bytes(client_ca_pem)
        # smtpd_tls_CAfile names the CAs in the CertificateRequest and is what
        # Postfix verifies client certificates against. req_ccert is honoured
        # only with TLS enforced (smtpd_tls_security_level = encrypt; with
        # "may" Postfix logs a warning and ignores it).
        ccert = f"-o smtpd_tls_CAfile={base}/client-ca.pem"
        run_quietly("postconf", *config, "-M", _service(server.ask_ccert_port, f"{ccert} -o smtpd_tls_ask_ccert=yes"))
        required = f"{ccert} -o smtpd_tls_security_level=encrypt -o smtpd_tls_req_ccert=yes"
        run_quietly("postconf", *config, "-M", _service(server.req_ccert_port, required))
    run_quietly("postconf", *config, "-M", "postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd")
    try:
        run_quietly("postfix", *config, "start")  # creates the queue, where Dovecot puts its socket
        run_quietly("dovecot", "-c", str(base / "dovecot.conf"))
        ports = (server.submission_port, server.smtps_port, *server.extra_submission_ports)
        for port in (*ports, server.ask_ccert_port, server.req_ccert_port):
            if port:
                wait_for_port(port)
    except BaseException:
        stop_mail_server(server)
        raise
    return server


def stop_mail_server(server: MailServer) -> None:
    for command in (
        ["postfix", "-c", str(server.base / "postfix"), "stop"],
        ["dovecot", "-c", str(server.base / "dovecot.conf"), "stop"],
    ):
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(server.base, ignore_errors=True)
    server.maillog.unlink(missing_ok=True)


def _service(port: int, options: str) -> str:
    name = f"127.0.0.1:{port}"
    return f"{name}/inet = {name} inet n - n - - smtpd {options}"


def run_quietly(*command: str) -> None:
    # Output goes to a file, not a pipe: a daemon that inherits the pipe
    # would keep it open and make us wait for its end forever.
    with tempfile.TemporaryFile() as output:
        completed = subprocess.run(command, stdout=output, stderr=output, check=False)
        if completed.returncode != 0:
            output.seek(0)
            message = output.read().decode(errors="replace").strip()
            raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}): {message}")


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
