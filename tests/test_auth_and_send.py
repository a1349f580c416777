"""AUTH and the test message, against aiosmtpd, read from a running exporter's /metrics.

The password is distinctive, and every test that runs a probe ends by
searching everything the exporter produced for it and its base64 forms.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.config.model import AuthConfig, AuthMechanism, ProbeOptions, TlsMode, probe_spec
from exporter.config.secret import Secret
from exporter.probe.run import run_probe
from exporter.smtp.message import SUBJECT_MARKER
from exporter.tls.context import TlsClients
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import SERVER_NAME, Pki, self_signed
from tests.support.servers import AuthHandler, ScenarioServers

USER = "probe@mail.test"
PASSWORD = "Zq7-never-LEAK-this-9xW"
SECRET_FORMS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
)
PASSWORD_ENV = "SMTP_EXPORTER_TEST_PASSWORD"


@dataclass
class AuthLandscape:
    exporter: ExporterProcess
    scrape: Scrape
    handlers: dict[str, AuthHandler]


def _target(name: str, port: int, *, tls: str = "starttls", extra: str = "") -> list[str]:
    lines = [f"  - name: {name}", "    host: 127.0.0.1", f"    port: {port}", f"    tls: {tls}"]
    return lines + [f"    {line}" for line in extra.strip().splitlines()]


@pytest.fixture(scope="module")
def auth_landscape(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthLandscape]:
    context = pki.leaf(SERVER_NAME).server_context(cert_dir, "auth")
    users = {USER: PASSWORD}
    handlers = {
        "plain": AuthHandler(users),
        "login": AuthHandler(users),
        "cram": AuthHandler(users),
        "auto": AuthHandler(users),
        "wrong_password": AuthHandler({USER: "something else"}),
        "not_offered": AuthHandler(users),
        "temporary": AuthHandler(users, temporary_failure=True),
        "plaintext_refused": AuthHandler(users),
        "unverified": AuthHandler(users),
        "plaintext_allowed": AuthHandler(users),
        "send": AuthHandler(users),
        # Port 465 style, on a server that refuses a second EHLO (as OpenSMTPD does).
        "implicit": AuthHandler(users),
        "rcpt_rejected": AuthHandler(users, rcpt_reply="550 5.1.1 <nobody@mail.test>: Recipient address rejected"),
        "mail_from_rejected": AuthHandler(users, mail_reply="553 5.7.1 Sender address rejected: not owned by user"),
        "data_rejected": AuthHandler(users, data_reply="554 5.7.1 Message rejected as spam"),
    }
    server_options: dict[str, dict[str, Any]] = {
        "not_offered": {"auth_exclude_mechanism": ["CRAM-MD5"]},
        "plaintext_refused": {"auth_require_tls": False},
        "plaintext_allowed": {"auth_require_tls": False},
        # aiosmtpd cannot tell that an implicit-TLS connection is encrypted.
        "implicit": {"auth_require_tls": False, "implicit_tls": True},
    }
    contexts = {"unverified": self_signed().server_context(cert_dir, "auth-self-signed")}
    ports = {
        name: servers.smtp(tls_context=contexts.get(name, context), handler=handler, **server_options.get(name, {}))
        for name, handler in handlers.items()
    }
    auth = "{username: " + USER + ", password_env: " + PASSWORD_ENV + "}"
    send = "send: {from: probe@mail.test, to: [postmaster@mail.test, other@mail.test], subject: check}"
    lines = [
        "defaults:",
        "  interval: 2s",
        "  timeout: 1500ms",
        "  ehlo_name: probe.test",
        f"  ca_file: {pki.ca_file}",
        "targets:",
    ]
    mechanism = {"plain": "PLAIN", "login": "LOGIN", "cram": "CRAM-MD5", "not_offered": "CRAM-MD5"}
    for name, port in ports.items():
        extra = f"server_name: {SERVER_NAME}\n"
        if name in mechanism:
            extra += "auth: {username: " + USER + ", password_env: " + PASSWORD_ENV
            extra += f", mechanism: {mechanism[name]}}}\n"
        else:
            extra += f"auth: {auth}\n"
        if name == "plaintext_allowed":
            extra += "allow_plaintext_auth: true\n"
        if name in ("send", "rcpt_rejected", "mail_from_rejected", "data_rejected"):
            extra += send + "\n"
        tls = "none" if name.startswith("plaintext") else "implicit" if name == "implicit" else "starttls"
        lines += _target(name, port, tls=tls, extra=extra)
    directory = tmp_path_factory.mktemp("auth")
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    os.environ[PASSWORD_ENV] = PASSWORD
    try:
        exporter = ExporterProcess(config, directory / "exporter.log")
    finally:
        del os.environ[PASSWORD_ENV]
    try:
        # Two probes each, so the test message's own interval shows.
        scrape = exporter.wait_for(
            lambda scrape: all((scrape.value("smtp_probes_total", target=name) or 0) >= 2 for name in ports)
        )
        yield AuthLandscape(exporter, scrape, handlers)
    finally:
        exporter.stop()


def _errors(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels["phase"], labels["reason"]) for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


@pytest.mark.parametrize("target", ["plain", "login", "cram", "auto", "implicit"])
def test_right_password_authenticates(auth_landscape: AuthLandscape, target: str) -> None:
    scrape = auth_landscape.scrape
    assert scrape.value("smtp_auth_success", target=target) == 1
    assert scrape.value("smtp_probe_success", target=target) == 1
    assert scrape.value("smtp_probe_phase_duration_seconds", target=target, phase="auth") is not None
    assert auth_landscape.handlers[target].attempts >= 2


def test_auth_mechanisms_after_starttls_are_the_ones_used(auth_landscape: AuthLandscape) -> None:
    # aiosmtpd offers AUTH only after STARTTLS; CRAM-MD5 comes from our handler.
    offered = {
        labels["mechanism"] for labels, _ in auth_landscape.scrape.find("smtp_auth_mechanism_offered", target="cram")
    }
    assert offered == {"PLAIN", "LOGIN", "CRAM-MD5"}


def test_implicit_tls_sends_one_ehlo_and_reports_its_auth_mechanisms(auth_landscape: AuthLandscape) -> None:
    # The server answers a repeated EHLO with 503, so a second EHLO would fail
    # the probe in the ehlo phase before AUTH.
    scrape = auth_landscape.scrape
    assert _errors(scrape, "implicit") == set()
    offered = {labels["mechanism"] for labels, _ in scrape.find("smtp_auth_mechanism_offered", target="implicit")}
    assert offered == {"PLAIN", "LOGIN", "CRAM-MD5"}
    phases = {labels["phase"] for labels, _ in scrape.find("smtp_probe_phase_duration_seconds", target="implicit")}
    assert phases == {"connect", "tls_handshake", "banner", "ehlo", "auth", "quit"}


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("wrong_password", ("auth", "auth_failed")),
        ("not_offered", ("auth", "auth_mechanism_unsupported")),
        ("temporary", ("auth", "auth_temporary_failure")),
        ("plaintext_refused", ("auth", "auth_plaintext_refused")),
    ],
)
def test_auth_failures(auth_landscape: AuthLandscape, target: str, error: tuple[str, str]) -> None:
    scrape = auth_landscape.scrape
    assert scrape.value("smtp_auth_success", target=target) == 0
    assert scrape.value("smtp_probe_success", target=target) == 0
    assert _errors(scrape, target) == {error}


def test_credentials_go_only_to_a_verified_server(auth_landscape: AuthLandscape) -> None:
    scrape = auth_landscape.scrape
    assert scrape.value("smtp_auth_success", target="unverified") == 0
    assert _errors(scrape, "unverified") == {
        ("tls_handshake", "cert_untrusted"),
        ("auth", "auth_unverified_refused"),
    }
    assert auth_landscape.handlers["unverified"].attempts == 0


def test_credentials_are_never_sent_without_tls_unless_allowed(auth_landscape: AuthLandscape) -> None:
    assert auth_landscape.handlers["plaintext_refused"].attempts == 0
    assert auth_landscape.handlers["not_offered"].attempts == 0
    assert auth_landscape.scrape.value("smtp_auth_success", target="plaintext_allowed") == 1
    assert auth_landscape.handlers["plaintext_allowed"].attempts >= 1


def test_each_target_with_auth_exports_one_auth_series(auth_landscape: AuthLandscape) -> None:
    assert len(auth_landscape.scrape.find("smtp_auth_success")) == len(auth_landscape.handlers)


def test_test_message_is_sent_once_per_its_own_interval(auth_landscape: AuthLandscape) -> None:
    scrape = auth_landscape.scrape
    assert scrape.value("smtp_send_success", target="send") == 1
    sent_at = scrape.value("smtp_send_timestamp_seconds", target="send")
    assert sent_at is not None
    assert (scrape.value("smtp_probes_total", target="send") or 0) >= 2
    [message] = auth_landscape.handlers["send"].messages  # one message, not one per probe
    assert message.sender == "probe@mail.test"
    assert message.recipients == ["postmaster@mail.test", "other@mail.test"]
    parsed = email.message_from_bytes(message.content, policy=email.policy.default)
    assert parsed["Subject"] == f"{SUBJECT_MARKER} check"
    assert parsed["Message-ID"].endswith("@probe.test>")
    assert parsed["Date"]
    assert parsed["To"] == "postmaster@mail.test, other@mail.test"
    # The send result stays exported between sends, and the later probe had no send phase.
    assert scrape.value("smtp_probe_phase_duration_seconds", target="send", phase="send") is None


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("rcpt_rejected", "rcpt_rejected"),
        ("mail_from_rejected", "mail_from_rejected"),
        ("data_rejected", "data_rejected"),
    ],
)
def test_rejected_test_messages(auth_landscape: AuthLandscape, target: str, reason: str) -> None:
    scrape = auth_landscape.scrape
    assert scrape.value("smtp_send_success", target=target) == 0
    assert scrape.value("smtp_probe_failures_total", target=target, reason=reason) == 1
    assert auth_landscape.handlers[target].messages == []
    log = auth_landscape.exporter.log_text()
    assert reason in log


def test_the_password_appears_nowhere(auth_landscape: AuthLandscape) -> None:
    exporter = auth_landscape.exporter
    outputs = {
        "log": exporter.log_text(),
        "metrics": exporter.scrape().text,
        "landing page": exporter.get("/")[2],
        "state file": exporter.wait_for_state_file(),
    }
    for where, text in outputs.items():
        for secret in SECRET_FORMS:
            assert secret not in text, f"{where} contains the password (or a base64 form of it)"
    assert "probe finished" in outputs["log"]  # the log is at debug level and was written
    assert "auth_failed" in outputs["state file"]  # the wrong password's result was kept


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_transcripts_show_auth_redacted(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, mechanism: AuthMechanism
) -> None:
    context = pki.leaf(SERVER_NAME).server_context(cert_dir, "transcript")
    port = servers.smtp(tls_context=context, handler=AuthHandler({USER: PASSWORD}))
    options = ProbeOptions(
        TlsMode.STARTTLS,
        timeout=10,
        ehlo_name="probe.test",
        ca_file=pki.ca_file,
        auth=AuthConfig(USER, Secret(PASSWORD), AuthMechanism(mechanism)),
    )
    spec = probe_spec("127.0.0.1", port, options, server_name=SERVER_NAME)
    result = asyncio.run(run_probe(spec, TlsClients().for_spec(spec)))
    assert result.success, result.failures
    assert result.auth is not None
    assert result.auth.mechanism == mechanism
    client_lines = [line.text for line in result.transcript if line.direction == "C"]
    assert any(line.startswith(f"AUTH {mechanism}") for line in client_lines)
    assert "<redacted>" in " ".join(client_lines)
    everything = repr(result) + "\n".join(line.text for line in result.transcript)
    for secret in SECRET_FORMS:
        assert secret not in everything
