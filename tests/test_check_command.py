"""`smtp-tls-exporter check`: a person diagnoses a server from its output alone."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from tests.support.pki import DAY, NOW, SERVER_NAME, Pki
from tests.support.servers import AuthHandler, ScenarioServers
from tests.test_handshake_agrees_with_openssl import TLS12, _context

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "check-result.schema.json").read_text())
USER = "probe@mail.test"
PASSWORD = "check-Secret-0815-qq"
SECRET_FORMS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
)


@dataclass
class Servers:
    healthy: int
    expired: int
    no_starttls: int
    ca_file: Path
    password_file: Path


@pytest.fixture(scope="module")
def scenario(pki: Pki, servers: ScenarioServers, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Servers:
    good = pki.leaf(SERVER_NAME).server_context(cert_dir, "check-good")
    expired = pki.leaf(SERVER_NAME, not_before=NOW - 90 * DAY, not_after=NOW - 3 * DAY)
    password_file = tmp_path_factory.mktemp("check") / "password"
    password_file.write_text(PASSWORD + "\n")
    return Servers(
        healthy=servers.smtp(tls_context=good, handler=AuthHandler({USER: PASSWORD})),
        expired=servers.smtp(tls_context=expired.server_context(cert_dir, "check-expired")),
        no_starttls=servers.smtp(),
        ca_file=pki.ca_file,
        password_file=password_file,
    )


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _common(scenario: Servers, port: int) -> list[str]:
    return [f"127.0.0.1:{port}", "--server-name", SERVER_NAME, "--ca-file", str(scenario.ca_file), "--timeout", "10s"]


def test_healthy_server_with_auth(scenario: Servers) -> None:
    completed = _check(
        *_common(scenario, scenario.healthy), "--user", USER, "--password-file", str(scenario.password_file)
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "S: 220 mail.test" in out
    assert "C: STARTTLS" in out
    assert "C: AUTH PLAIN <redacted>" in out
    assert "Protocol   TLSv1.3" in out
    assert "Trust      trusted" in out
    assert f"Host name  {SERVER_NAME} matches" in out
    assert "SHA-256" in out
    assert "SHA-1" in out
    assert f"SAN        {SERVER_NAME}" in out
    assert "Certificate chain as presented (2)" in out  # leaf and intermediate
    assert "235 2.7.0 Authentication successful" in out
    assert out.rstrip().splitlines()[-1].startswith(f"OK 127.0.0.1:{scenario.healthy}")
    assert "\033[" not in out  # not a terminal: no colour
    for secret in SECRET_FORMS:
        assert secret not in out + completed.stderr


def test_expired_certificate_is_explained(scenario: Servers) -> None:
    completed = _check(*_common(scenario, scenario.expired))
    assert completed.returncode == 1
    assert "NOT TRUSTED" in completed.stdout
    assert "certificate has expired" in completed.stdout  # OpenSSL's own words
    assert "EXPIRED 3.0 days ago" in completed.stdout
    assert "FAILED" in completed.stdout.splitlines()[-1]
    assert "cert_expired" in completed.stdout.splitlines()[-1]


def test_starttls_missing(scenario: Servers) -> None:
    completed = _check(*_common(scenario, scenario.no_starttls))
    assert completed.returncode == 1
    assert "starttls_not_offered" in completed.stdout.splitlines()[-1]
    assert "C: STARTTLS" not in completed.stdout


def test_wrong_password(scenario: Servers) -> None:
    completed = _check(
        *_common(scenario, scenario.healthy), "--user", USER, "--password-env", "CHECK_PW", env={"CHECK_PW": "wrong"}
    )
    assert completed.returncode == 1
    assert "auth_failed" in completed.stdout.splitlines()[-1]
    assert "535 5.7.8 Authentication credentials invalid" in completed.stdout
    assert "<redacted>" in completed.stdout


def test_json_follows_the_documented_schema(scenario: Servers) -> None:
    for port in (scenario.healthy, scenario.expired, scenario.no_starttls):
        completed = _check(*_common(scenario, port), "--json")
        document = json.loads(completed.stdout)
        jsonschema.validate(document, SCHEMA)
        assert document["success"] is (completed.returncode == 0)
    expired = json.loads(_check(*_common(scenario, scenario.expired), "--json").stdout)
    assert expired["tls"]["trust_error"] == {"code": 10, "message": "certificate has expired", "depth": 0}
    assert expired["failures"][0]["reason"] == "cert_expired"
    assert expired["tls"]["chain"][0]["days_left"] < 0


def test_colour_only_on_a_terminal(scenario: Servers) -> None:
    controller, terminal = pty.openpty()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "exporter", "check", *_common(scenario, scenario.expired)],
            stdout=terminal,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
            env={key: value for key, value in os.environ.items() if key != "NO_COLOR"},
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
    assert completed.returncode == 1
    assert b"\033[1;31m" in output  # the failure in red


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1:99999"], "invalid port"),
        (["127.0.0.1", "--timeout", "soon"], "--timeout: invalid duration"),
        (["127.0.0.1", "--user", "u", "--password-env", "NO_SUCH_VAR_HERE"], "NO_SUCH_VAR_HERE is not set"),
        (["127.0.0.1", "--user", "u"], "when not run from a terminal"),
        (["127.0.0.1", "--send-to", "a@b.test"], "--send-to needs --send-from"),
        (["127.0.0.1", "--tls", "sometimes"], "invalid choice"),
        (["127.0.0.1", "--ca-file", "/nonexistent/ca.pem"], "is not a readable file"),
        # Nothing we send may end a command line early and smuggle in another.
        (["127.0.0.1", "--ehlo-name", "probe.test\r\nQUIT"], "--ehlo-name: contains the control character U+000D"),
        (["127.0.0.1", "--ehlo-name", "two words"], "--ehlo-name: 'two words' must be one word"),
        (
            ["127.0.0.1", "--send-from", "a@b.test\nRCPT TO:<x@y>", "--send-to", "c@d.test"],
            "--send-from: contains the control character U+000A",
        ),
        (["127.0.0.1", "--send-from", "a@b.test", "--send-to", "c@d.test\u2028"], "--send-to: contains the control"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 2
    assert message in completed.stderr


def test_default_port_follows_the_mode() -> None:
    completed = _check("127.0.0.1", "--tls", "implicit", "--timeout", "2s", "--json")
    document = json.loads(completed.stdout)
    assert document["target"]["port"] == 465


def test_scan_prints_protocols_and_rated_suites_like_testssl(
    pki: Pki, servers: ScenarioServers, cert_dir: Path, scenario: Servers
) -> None:
    # TLS 1.2 with one sufficient and one insufficient suite, and TLS 1.3.
    context = pki.leaf(SERVER_NAME).server_context(cert_dir, "check-scan")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA")
    port = servers.smtp(tls_context=context)
    completed = _check(f"127.0.0.1:{port}", "--server-name", SERVER_NAME, "--ca-file", str(scenario.ca_file), "--scan")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert re.search(r"^ SSLv3 +not offered \(OK\)$", out, re.MULTILINE), out
    assert re.search(r"^ TLSv1 +not offered$", out, re.MULTILINE), out
    assert re.search(r"^ TLSv1\.2 +offered \(OK\)$", out, re.MULTILINE), out
    assert re.search(r"^ TLSv1\.3 +offered \(OK\)$", out, re.MULTILINE), out
    assert re.search(r"^  xc02b +ECDHE-ECDSA-AES128-GCM-SHA256 +ECDHE +yes +sufficient$", out, re.MULTILINE), out
    assert re.search(r"^  xc009 +ECDHE-ECDSA-AES128-SHA +ECDHE +yes +insufficient$", out, re.MULTILINE), out
    assert re.search(r"^  x1302 +TLS_AES_256_GCM_SHA384 +TLS13 +yes +good$", out, re.MULTILINE), out
    assert re.search(r"^ Secure renegotiation +yes$", out, re.MULTILINE), out


def test_scan_failure_fails_the_check_and_says_why(scenario: Servers) -> None:
    completed = _check(f"127.0.0.1:{scenario.no_starttls}", "--scan")
    assert completed.returncode == 1
    assert "FAILED starttls_not_offered" in completed.stdout


def test_scan_with_json_is_a_usage_error() -> None:
    completed = _check("127.0.0.1:25", "--scan", "--json")
    assert completed.returncode == 2
    assert "--scan" in completed.stderr


def test_the_handshake_line_in_postfix_style(
    scenario: Servers, pki: Pki, servers: ScenarioServers, tmp_path: Path
) -> None:
    # The test picks the group (P-384), the suite (TLS 1.2 ECDHE-RSA) and the key (trustme's RSA 2048).
    context = _context("rsa", maximum=TLS12, ciphers="ECDHE-RSA-AES128-GCM-SHA256", curve="secp384r1")(pki, tmp_path)
    port = servers.smtp(tls_context=context)
    completed = _check(*_common(scenario, port))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    line = "key-exchange ECDHE (P-384) server-signature RSA-PSS (2048 bits) server-digest SHA256"
    assert f"Handshake  {line}" in completed.stdout
    assert "Ratings    cipher sufficient, chain sufficient (NCSC-NL 2025)" in completed.stdout

    document = json.loads(_check(*_common(scenario, port), "--json").stdout)
    jsonschema.validate(document, SCHEMA)
    tls = document["tls"]
    assert tls["key_exchange"] == {"group": "secp384r1", "bits": 384}
    assert tls["signature_scheme"] == "rsa_pss_rsae_sha256"
    assert tls["handshake_summary"] == line
    assert tls["ratings"] == {"cipher": "sufficient", "chain": "sufficient"}
    assert tls["client_certificate_requested"] is False
    assert document["client_certificate"] is None


def test_a_client_certificate_in_the_report(
    scenario: Servers, pki: Pki, servers: ScenarioServers, tmp_path: Path
) -> None:
    client = pki.leaf("probe.test")
    (tmp_path / "client.pem").write_bytes(client.chain_pem)
    (tmp_path / "client.key").write_bytes(client.key_pem)
    port = servers.smtp(tls_context=_context(request_certificate=True)(pki, tmp_path))
    flags = ["--client-cert-file", str(tmp_path / "client.pem"), "--client-key-file", str(tmp_path / "client.key")]
    completed = _check(*_common(scenario, port), *flags, "--json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads(completed.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["client_certificate"]["requested"] is True
    assert document["client_certificate"]["sent"] is True
    assert document["client_certificate"]["accepted"] is True
    key_body = "".join(line for line in client.key_pem.decode().splitlines() if not line.startswith("-----"))
    assert key_body[:40] not in completed.stdout + completed.stderr
    human = _check(*_common(scenario, port), *flags).stdout
    assert f"Client     certificate {tmp_path / 'client.pem'} sent" in human
