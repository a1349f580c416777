"""The integration tier: real Postfix with Dovecot SASL, probed by a real exporter.

Submission with STARTTLS and AUTH, port-465 implicit TLS and AUTH, right
and wrong passwords, and a test message that Postfix must deliver.
"""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from exporter.smtp.message import SUBJECT_MARKER, TARGET_HEADER
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import Pki
from tests.support.postfix import MAIL_DOMAIN, MailServer, start_mail_server, stop_mail_server, unavailable_reason

pytestmark = pytest.mark.integration

USER = f"probe@{MAIL_DOMAIN}"
PASSWORD = "Postfix-Dovecot-Secret-71qz"
PASSWORD_FILE_NAME = "probe-password"


@pytest.fixture(scope="module")
def mail_server(pki: Pki) -> Iterator[MailServer]:
    require(unavailable_reason(), "the Postfix/Dovecot integration tier")
    leaf = pki.leaf(MAIL_DOMAIN)
    server = start_mail_server(leaf.key_pem + leaf.chain_pem, USER, PASSWORD)
    yield server
    stop_mail_server(server)


@dataclass
class Probed:
    exporter: ExporterProcess
    scrape: Scrape
    server: MailServer


@pytest.fixture(scope="module")
def probed(mail_server: MailServer, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probed]:
    directory = tmp_path_factory.mktemp("postfix-exporter")
    (directory / PASSWORD_FILE_NAME).write_text(PASSWORD + "\n")
    (directory / "wrong-password").write_text("not-the-password\n")
    submission, smtps = mail_server.submission_port, mail_server.smtps_port
    right = f"{{username: {USER}, password_file: {PASSWORD_FILE_NAME}"
    wrong = f"{{username: {USER}, password_file: wrong-password"
    targets = {
        "submission": (submission, "starttls", f"{right}}}", True),
        "submission-login": (submission, "starttls", f"{right}, mechanism: LOGIN}}", False),
        "submission-cram-md5": (submission, "starttls", f"{right}, mechanism: CRAM-MD5}}", False),
        "submission-wrong": (submission, "starttls", f"{wrong}}}", False),
        "smtps": (smtps, "implicit", f"{right}}}", False),
        "smtps-wrong": (smtps, "implicit", f"{wrong}}}", False),
    }
    lines = [f"defaults: {{interval: 1h, timeout: 20s, ehlo_name: probe.test, ca_file: {pki.ca_file}}}", "targets:"]
    for name, (port, tls, auth, sends) in targets.items():
        lines += [
            f"  - name: {name}",
            "    host: 127.0.0.1",
            f"    port: {port}",
            f"    tls: {tls}",
            f"    server_name: {MAIL_DOMAIN}",
            f"    auth: {auth}",
        ]
        if sends:
            lines.append(f"    send: {{from: {USER}, to: postmaster@{MAIL_DOMAIN}, subject: integration}}")
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    with ExporterProcess(config, directory / "exporter.log") as exporter:
        scrape = exporter.wait_for_probes(list(targets))
        yield Probed(exporter, scrape, mail_server)


def test_submission_with_starttls_and_auth(probed: Probed) -> None:
    scrape = probed.scrape
    for target in ("submission", "submission-login", "submission-cram-md5"):
        assert scrape.value("smtp_probe_success", target=target) == 1, target
        assert scrape.value("smtp_auth_success", target=target) == 1, target
    assert scrape.value("smtp_starttls_offered", target="submission") == 1
    assert scrape.value("smtp_cert_trusted", target="submission") == 1
    assert scrape.value("smtp_cert_hostname_match", target="submission") == 1
    # Postfix offers AUTH only after STARTTLS (smtpd_tls_auth_only); these are the post-TLS ones.
    offered = {labels["mechanism"] for labels, _ in scrape.find("smtp_auth_mechanism_offered", target="submission")}
    assert offered == {"PLAIN", "LOGIN", "CRAM-MD5"}


def test_implicit_tls_and_auth(probed: Probed) -> None:
    scrape = probed.scrape
    assert scrape.value("smtp_probe_success", target="smtps") == 1
    assert scrape.value("smtp_auth_success", target="smtps") == 1
    assert scrape.value("smtp_starttls_offered", target="smtps") is None


@pytest.mark.parametrize("target", ["submission-wrong", "smtps-wrong"])
def test_wrong_password_fails(probed: Probed, target: str) -> None:
    scrape = probed.scrape
    assert scrape.value("smtp_auth_success", target=target) == 0
    assert scrape.value("smtp_probe_error_info", target=target, phase="auth", reason="auth_failed") == 1
    assert "authentication failed" in probed.server.log_text()


def test_test_message_is_delivered_by_postfix(probed: Probed) -> None:
    assert probed.scrape.value("smtp_send_success", target="submission") == 1
    [delivered] = probed.server.wait_for_delivery(1)
    message = email.message_from_bytes(delivered, policy=email.policy.default)
    assert message["Subject"] == f"{SUBJECT_MARKER} integration"
    assert message[TARGET_HEADER] == "submission"
    assert message["Delivered-To"] == f"postmaster@{MAIL_DOMAIN}"
    assert message["Message-ID"].endswith("@probe.test>")
    assert "status=sent (delivered to maildir)" in probed.server.log_text()


def test_the_password_appears_in_no_exporter_output(probed: Probed) -> None:
    outputs = {
        "log": probed.exporter.log_text(),
        "metrics": probed.exporter.scrape().text,
        "landing page": probed.exporter.get("/")[2],
    }
    secret_forms = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
    ]
    for where, text in outputs.items():
        for secret in secret_forms:
            assert secret not in text, where
