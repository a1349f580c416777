"""``smtp-tls-exporter demo``: SMTP servers in every posture on loopback, and the exporter probing them.

For a newcomer with no mail server at hand: one command, and within a probe
interval every metric is populated and the dashboard and alert rules have
something to show. The servers are our own (server.py) and their
certificates are minted at start (certificates.py), so the demo needs
nothing beyond the exporter's own dependencies. Everything it writes (config,
CA, keys, demo passwords) lives in a temporary directory removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import enum
import logging
import secrets
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.cli.flags import add_listen_flag, add_log_flags
from exporter.cli.logs import configure_logging
from exporter.config.loader import ConfigError
from exporter.demo.certificates import DAY, DemoCa, ServerCertificate, self_signed, server_context, write_private
from exporter.demo.server import DemoServerSettings, DemoSmtpServer
from exporter.runtime.daemon import Daemon, serve
from exporter.web.listener import ListenError, bind, bound_address

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:10587"
PROBE_INTERVAL = "15s"
PROBE_TIMEOUT = "5s"
DOMAIN = "demo.test"  # RFC 2606: never a real domain
DEMO_USER = f"probe@{DOMAIN}"

log = logging.getLogger(__name__)


class Certificate(enum.Enum):
    TRUSTED = "trusted"
    EXPIRED = "expired"
    SELF_SIGNED = "self-signed"
    OTHER_NAME = "other-name"


class Credentials(enum.Enum):
    NONE = "none"
    RIGHT = "right"
    WRONG = "wrong"


@dataclass(frozen=True)
class Posture:
    name: str
    shows: str
    certificate: Certificate = Certificate.TRUSTED
    days_left: int = 90
    tls: str = "starttls"
    offer_starttls: bool = True
    maximum_version: ssl.TLSVersion | None = None
    credentials: Credentials = Credentials.NONE
    send: bool = False
    require: bool = False
    # The server asks for a client certificate and the target presents one.
    client_certificate: bool = False

    @property
    def server_name(self) -> str:
        return f"{self.name}.{DOMAIN}"


POSTURES = (
    Posture(
        "healthy",
        "STARTTLS, a trusted certificate, a client certificate asked for and accepted, AUTH and a test message:"
        " every check passes",
        credentials=Credentials.RIGHT,
        send=True,
        require=True,
        client_certificate=True,
    ),
    Posture("implicit-tls", "TLS from the first byte (port 465 style), all good", tls="implicit"),
    Posture("expires-in-14-days", "certificate expires in 14 days: SmtpCertificateExpiringSoon", days_left=14),
    Posture("expires-in-3-days", "certificate expires in 3 days: SmtpCertificateExpiringCritical", days_left=3),
    Posture("cert-expired", "certificate expired 2 days ago: SmtpCertificateExpired", Certificate.EXPIRED),
    Posture("self-signed", "self-signed certificate: SmtpCertificateUntrusted", Certificate.SELF_SIGNED),
    Posture(
        "wrong-hostname", "certificate names another host: SmtpCertificateHostnameMismatch", Certificate.OTHER_NAME
    ),
    Posture("starttls-missing", "EHLO offers no STARTTLS: SmtpProbeFailing after 10 minutes", offer_starttls=False),
    Posture(
        "tls-1.1-only",
        "negotiates TLS 1.1 at best: SmtpTlsVersionObsolete; its scan: SmtpTlsLegacyVersionAccepted,"
        " SmtpTlsInsufficientCipherAccepted",
        maximum_version=ssl.TLSVersion.TLSv1_1,
    ),
    Posture(
        "wrong-password",
        "the server rejects the probe's password: SmtpAuthFailing after 10 minutes",
        credentials=Credentials.WRONG,
    ),
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smtp-tls-exporter demo",
        description="Start SMTP servers in different postures on 127.0.0.1 and the exporter probing them.",
    )
    add_listen_flag(parser, DEFAULT_LISTEN_ADDRESS)
    add_log_flags(parser)
    arguments = parser.parse_args(argv)
    configure_logging(arguments.log_level, arguments.log_format)
    try:
        listener = bind(arguments.listen_address)
    except ListenError as exc:
        log.error("%s", exc)
        return 1
    with tempfile.TemporaryDirectory(prefix="smtp-tls-exporter-demo-") as directory:
        return asyncio.run(_run(Path(directory), listener))


async def _run(directory: Path, listener: socket.socket) -> int:
    now = datetime.datetime.now(datetime.UTC)
    ca = DemoCa(now)
    ca_file = directory / "demo-ca.pem"
    ca_file.write_bytes(ca.pem)
    password = secrets.token_urlsafe(18)
    client = ca.issue(
        f"probe.{DOMAIN}", not_before=now - DAY, not_after=now + 60 * DAY, purpose=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    (directory / "probe-client.crt").write_bytes(client.chain_pem)
    write_private(directory / "probe-client.key", client.key_pem)
    passwords = {Credentials.RIGHT: password, Credentials.WRONG: secrets.token_urlsafe(18)}
    for credentials, text in passwords.items():
        write_private(directory / f"{credentials.value}-password", text.encode())
    servers: list[DemoSmtpServer] = []
    targets: list[dict[str, Any]] = []
    try:
        for posture in POSTURES:
            context = server_context(
                _certificate(posture, ca, now),
                directory,
                posture.name,
                maximum_version=posture.maximum_version,
                client_ca=ca.pem if posture.client_certificate else None,
            )
            server = DemoSmtpServer(
                DemoServerSettings(
                    hostname=posture.server_name,
                    tls_context=context,
                    implicit_tls=posture.tls == "implicit",
                    offer_starttls=posture.offer_starttls,
                    users={DEMO_USER: password} if posture.credentials is not Credentials.NONE else {},
                )
            )
            servers.append(server)
            targets.append(_target(posture, await server.start(), directory))
        config_file = directory / "config.yml"
        config_file.write_text(yaml.safe_dump(_config(targets, ca_file), sort_keys=False))
        daemon = Daemon(config_file, max_concurrency=len(POSTURES))
        try:
            daemon.load()
        except ConfigError as exc:  # a bug of ours, but say what it is
            log.error("the demo wrote an invalid configuration:\n%s", exc)
            return 1
        _introduce(bound_address(listener), config_file)
        await serve(daemon, listener)
    finally:
        for server in servers:
            await server.close()
    return 0


def _certificate(posture: Posture, ca: DemoCa, now: datetime.datetime) -> ServerCertificate:
    if posture.certificate is Certificate.SELF_SIGNED:
        return self_signed(posture.server_name, now=now)
    if posture.certificate is Certificate.EXPIRED:
        return ca.issue(posture.server_name, not_before=now - 90 * DAY, not_after=now - 2 * DAY)
    name = f"other-host.{DOMAIN}" if posture.certificate is Certificate.OTHER_NAME else posture.server_name
    return ca.issue(name, not_before=now - DAY, not_after=now + posture.days_left * DAY)


def _target(posture: Posture, port: int, directory: Path) -> dict[str, Any]:
    target: dict[str, Any] = {
        "name": posture.name,
        "host": "127.0.0.1",
        "port": port,
        "server_name": posture.server_name,
        "tls": posture.tls,
    }
    if posture.credentials is not Credentials.NONE:
        password_file = directory / f"{posture.credentials.value}-password"
        target["auth"] = {"username": DEMO_USER, "password_file": str(password_file)}
    if posture.client_certificate:
        target["client_cert_file"] = str(directory / "probe-client.crt")
        target["client_key_file"] = str(directory / "probe-client.key")
    if posture.send:
        target["send"] = {"from": DEMO_USER, "to": [f"postmaster@{DOMAIN}"], "interval": "1m"}
    if posture.require:
        # Met by the probe and by the scan: the policy series has data, no alert fires.
        target["require"] = {"min_tls_version": "1.2", "forward_secrecy": True}
    return target


def _config(targets: list[dict[str, Any]], ca_file: Path) -> dict[str, Any]:
    return {
        "defaults": {
            "interval": PROBE_INTERVAL,
            "timeout": PROBE_TIMEOUT,
            "ehlo_name": f"probe.{DOMAIN}",
            "ca_file": str(ca_file),
        },
        "targets": targets,
    }


def _introduce(address: str, config_file: Path) -> None:
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]"):  # noqa: S104 - naming the wildcard, not binding it
        host = "localhost"
    url = f"http://{host}:{port}"
    width = max(len(posture.name) for posture in POSTURES)
    lines = [
        f"smtp-tls-exporter demo: {len(POSTURES)} SMTP servers on 127.0.0.1, each probed every {PROBE_INTERVAL}.",
        "",
        f"  Metrics:      {url}/metrics",
        f"  Last results: {url}/",
        f"  Config:       {config_file}",
        "                (with the demo CA, keys and demo-only passwords; all deleted on exit)",
        "",
        "Targets, and what each one shows:",
        *(f"  {posture.name:<{width}}  {posture.shows}" for posture in POSTURES),
        "",
        "Scrape it with Prometheus and the rules in prometheus/alerts.yml, and import",
        "grafana/dashboards/smtp-tls-exporter.json into Grafana (or run `docker compose up`",
        "in the repository for all three). Stop with Ctrl-C.",
        "",
    ]
    sys.stdout.write("\n".join(lines))
    sys.stdout.flush()
