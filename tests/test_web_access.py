"""``--web.config.file`` on a running exporter: HTTPS, basic auth, client certificates, reload.

The exporter runs as a real process on loopback with certificates minted for
the test; Debian's Prometheus scrapes it with its own tls_config and
basic_auth, and Python's urllib and ssl stand in for clients with and
without certificates.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import pytest
import trustme
from cryptography import x509

from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess
from tests.support.pki import Pki
from tests.support.prometheus import PrometheusServer, missing_tool
from tests.support.servers import ScenarioServers

_T = TypeVar("_T")
USER, PASSWORD = "prometheus", "scrape-password-4711"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str
    peer_der: bytes | None
    version: str | None
    cipher: str | None


@dataclass(frozen=True)
class Clients:
    """Client certificates: two from the CA the exporter trusts for clients, one from a stranger."""

    ca_file: Path
    prometheus: tuple[Path, Path]
    other_name: tuple[Path, Path]
    stranger: tuple[Path, Path]


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Clients:
    directory = tmp_path_factory.mktemp("client-certs")
    client_ca, stranger_ca = trustme.CA(organization_name="Client CA"), trustme.CA(organization_name="Stranger")
    client_ca.cert_pem.write_to_path(str(directory / "client-ca.pem"))

    def issue(ca: trustme.CA, name: str) -> tuple[Path, Path]:
        leaf = ca.issue_cert(name)
        cert, key = directory / f"{name}.{id(ca)}.pem", directory / f"{name}.{id(ca)}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key

    return Clients(
        directory / "client-ca.pem",
        issue(client_ca, "prometheus.test"),
        issue(client_ca, "other.test"),
        issue(stranger_ca, "prometheus.test"),
    )


@pytest.fixture(scope="module")
def smtp_port(servers: ScenarioServers) -> int:
    return servers.smtp()


def _server_files(pki: Pki, directory: Path, name: str = "server") -> tuple[Path, Path]:
    leaf = pki.leaf("127.0.0.1")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(leaf.chain_pem)
    key.write_bytes(leaf.key_pem)
    return cert, key


def _exporter_config(directory: Path, smtp_port: int) -> Path:
    config = directory / "config.yml"
    config.write_text(
        "defaults: {interval: 1h, timeout: 5s, tls: none, ehlo_name: probe.test}\n"
        f"targets:\n  - {{name: relay, host: 127.0.0.1, port: {smtp_port}}}\n"
    )
    return config


def _replace(path: Path, text: str) -> None:
    """Write as editors and config management do: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@pytest.fixture
def start(tmp_path: Path, smtp_port: int) -> Iterator[Callable[[str], ExporterProcess]]:
    """Start an exporter with the given web config text (written to web.yml beside its config)."""
    started: list[ExporterProcess] = []

    def run(web_config: str) -> ExporterProcess:
        web = tmp_path / "web.yml"
        web.write_text(web_config)
        process = ExporterProcess(
            _exporter_config(tmp_path, smtp_port),
            tmp_path / f"exporter-{len(started)}.log",
            extra_args=["--web.config.file", str(web)],
        )
        started.append(process)
        return process

    yield run
    for process in started:
        process.stop()


def request(
    exporter: ExporterProcess,
    path: str,
    *,
    ca_file: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    credentials: tuple[str, str] | None = None,
    method: str = "GET",
    maximum_version: ssl.TLSVersion | None = None,
) -> Response:
    """One request on a new connection; TLS when ``ca_file`` is given. TLS failures raise."""
    host, _, port = exporter.base_url.removeprefix("http://").rpartition(":")
    connection: http.client.HTTPConnection
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
        if client_cert is not None:
            context.load_cert_chain(*client_cert)
        if maximum_version is not None:
            context.maximum_version = maximum_version
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    else:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    try:
        connection.request(method, path, headers=headers)
        answer = connection.getresponse()
        body = answer.read().decode("utf-8", "replace")
        peer_der = version = cipher = None
        if isinstance(connection.sock, ssl.SSLSocket):
            peer_der, version = connection.sock.getpeercert(binary_form=True), connection.sock.version()
            cipher = (connection.sock.cipher() or ("",))[0]
        return Response(answer.status, dict(answer.headers), body, peer_der, version, cipher)
    finally:
        connection.close()


def refused(call: Callable[[], object]) -> BaseException:
    """The error with which a connection is refused (no certificate, untrusted one, old TLS version)."""
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)) as caught:
        call()
    return caught.value


def wait_until(produce: Callable[[], _T | None], what: str, timeout: float = 30) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = produce()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


def _tls(cert: Path, key: Path, extra: str = "") -> str:
    return f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{extra}"


def test_prometheus_scrapes_over_https_with_basic_auth_and_gets_401_without(
    pki: Pki, tmp_path: Path, start: Callable[[str], ExporterProcess]
) -> None:
    require(missing_tool("prometheus"), "scraping with a real Prometheus")
    cert, key = _server_files(pki, tmp_path)
    exporter = start(_tls(cert, key) + f"basic_auth_users:\n  {USER}: {HASH}\n")
    address = exporter.base_url.removeprefix("http://")
    tls: dict[str, Any] = {"scheme": "https", "tls_config": {"ca_file": str(pki.ca_file)}}
    jobs: dict[str, dict[str, Any]] = {
        "authorised": {**tls, "basic_auth": {"username": USER, "password": PASSWORD}},
        "no-credentials": tls,
        "wrong-password": {**tls, "basic_auth": {"username": USER, "password": "not-" + PASSWORD}},
        "plain-http": {"basic_auth": {"username": USER, "password": PASSWORD}},
    }
    with PrometheusServer(
        tmp_path / "prometheus", dict.fromkeys(jobs, address), rule_files=(), job_settings=jobs
    ) as prometheus:

        def scraped() -> dict[str, dict[str, Any]] | None:
            targets = {target["labels"]["job"]: target for target in prometheus.api("targets")["activeTargets"]}
            done = all(targets.get(job, {}).get("health") in ("up", "down") for job in jobs)
            return targets if done else None

        targets = prometheus.wait_for(scraped, "every job scraped once")
        assert targets["authorised"]["health"] == "up", targets["authorised"]
        for job in ("no-credentials", "wrong-password"):
            assert targets[job]["health"] == "down"
            assert "401 Unauthorized" in targets[job]["lastError"], targets[job]
        assert targets["plain-http"]["health"] == "down"
        success = prometheus.wait_for(
            lambda: prometheus.query('smtp_probe_success{job="authorised", target="relay"}') or None,
            "the exporter's metrics in Prometheus",
        )
        assert float(success[0]["value"][1]) == 1
    assert PASSWORD not in exporter.log_text()


def test_every_endpoint_needs_the_credentials_and_gets_the_headers(
    pki: Pki, tmp_path: Path, start: Callable[[str], ExporterProcess]
) -> None:
    cert, key = _server_files(pki, tmp_path)
    headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    exporter = start(_tls(cert, key) + headers + f"basic_auth_users:\n  {USER}: {HASH}\n")
    endpoints = [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/probe?target=127.0.0.1:25"),
        ("GET", "/-/healthy"),
        ("GET", "/-/ready"),
        ("POST", "/-/reload"),
        ("PUT", "/-/reload"),
        ("GET", "/no-such-page"),
    ]
    wrong = [None, (USER, "wrong"), ("nobody", PASSWORD), (USER.upper(), PASSWORD), (USER, PASSWORD + " ")]
    for method, path in endpoints:
        for credentials in wrong:
            answer = request(exporter, path, ca_file=pki.ca_file, credentials=credentials, method=method)
            assert answer.status == 401, (method, path, credentials, answer)
            assert answer.headers["WWW-Authenticate"] == "Basic"
            assert answer.headers["X-Frame-Options"] == "deny"
    statuses = {
        (method, path): request(exporter, path, ca_file=pki.ca_file, credentials=(USER, PASSWORD), method=method)
        for method, path in endpoints
    }
    assert {key: answer.status for key, answer in statuses.items()} == {
        ("GET", "/"): 200,
        ("GET", "/metrics"): 200,
        # Authenticated, it reaches /probe, which has no module to probe with in this config.
        ("GET", "/probe?target=127.0.0.1:25"): 400,
        ("GET", "/-/healthy"): 200,
        ("GET", "/-/ready"): 200,
        ("POST", "/-/reload"): 200,
        ("PUT", "/-/reload"): 200,
        ("GET", "/no-such-page"): 404,
    }
    for answer in statuses.values():
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "smtp_probe_success" in statuses[("GET", "/metrics")].body
    log = exporter.log_text()
    assert PASSWORD not in log
    assert HASH not in log
    # Plain HTTP on the TLS port gets no answer.
    refused(lambda: request(exporter, "/-/healthy", credentials=(USER, PASSWORD)))


def test_require_and_verify_client_cert(
    pki: Pki, clients: Clients, tmp_path: Path, start: Callable[[str], ExporterProcess]
) -> None:
    cert, key = _server_files(pki, tmp_path)
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {clients.ca_file}\n"
    exporter = start(_tls(cert, key, extra))
    assert request(exporter, "/-/healthy", ca_file=pki.ca_file, client_cert=clients.prometheus).status == 200
    assert request(exporter, "/-/healthy", ca_file=pki.ca_file, client_cert=clients.other_name).status == 200
    refused(lambda: request(exporter, "/-/healthy", ca_file=pki.ca_file))
    refused(lambda: request(exporter, "/-/healthy", ca_file=pki.ca_file, client_cert=clients.stranger))


def test_verify_client_cert_if_given(
    pki: Pki, clients: Clients, tmp_path: Path, start: Callable[[str], ExporterProcess]
) -> None:
    cert, key = _server_files(pki, tmp_path)
    extra = f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {clients.ca_file}\n"
    exporter = start(_tls(cert, key, extra))
    assert request(exporter, "/-/healthy", ca_file=pki.ca_file).status == 200
    assert request(exporter, "/-/healthy", ca_file=pki.ca_file, client_cert=clients.prometheus).status == 200
    refused(lambda: request(exporter, "/-/healthy", ca_file=pki.ca_file, client_cert=clients.stranger))


def test_no_client_cert_ignores_one_offered(pki: Pki, tmp_path: Path, start: Callable[[str], ExporterProcess]) -> None:
    cert, key = _server_files(pki, tmp_path)
    exporter = start(_tls(cert, key, "  client_auth_type: NoClientCert\n"))
    assert request(exporter, "/-/healthy", ca_file=pki.ca_file).status == 200


def test_client_allowed_sans(
    pki: Pki, clients: Clients, tmp_path: Path, start: Callable[[str], ExporterProcess]
) -> None:
    cert, key = _server_files(pki, tmp_path)
    extra = (
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {clients.ca_file}\n"
        "  client_allowed_sans: [prometheus.test]\n"
    )
    exporter = start(_tls(cert, key, extra))
    assert request(exporter, "/metrics", ca_file=pki.ca_file, client_cert=clients.prometheus).status == 200
    assert request(exporter, "/metrics", ca_file=pki.ca_file, client_cert=clients.other_name).status == 403


@pytest.mark.parametrize("client_auth_type", ["RequestClientCert", "RequireAnyClientCert"])
def test_client_auth_types_pythons_ssl_cannot_honour_refuse_to_start(
    pki: Pki, tmp_path: Path, smtp_port: int, client_auth_type: str
) -> None:
    cert, key = _server_files(pki, tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(_tls(cert, key, f"  client_auth_type: {client_auth_type}\n"))
    completed = _run_exporter(_exporter_config(tmp_path, smtp_port), web)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert f"{web}:4: tls_server_config.client_auth_type: {client_auth_type}" in completed.stderr
    assert "Python's ssl module cannot do" in completed.stderr


def _run_exporter(config: Path, web: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "exporter", "--config.file", str(config), "--web.config.file", str(web)]
    return subprocess.run(
        [*command, "--web.listen-address", "127.0.0.1:0", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_invalid_web_config_at_start_names_file_line_and_key(tmp_path: Path, smtp_port: int) -> None:
    web = tmp_path / "web.yml"
    wrong_hash = HASH[:-3]
    web.write_text(f"basic_auth_users:\n  {USER}: {wrong_hash}\nhttp_server_config:\n  headers: {{Server: x}}\n")
    completed = _run_exporter(_exporter_config(tmp_path, smtp_port), web)
    assert completed.returncode == 1
    assert "invalid web configuration; not starting" in completed.stderr
    assert f"{web}:2: basic_auth_users.{USER}: is not a bcrypt hash" in completed.stderr
    assert f"{web}:4: http_server_config.headers.Server: this header cannot be configured" in completed.stderr
    assert wrong_hash not in completed.stderr


def test_config_check_validates_the_web_config_too(pki: Pki, tmp_path: Path, smtp_port: int) -> None:
    config = _exporter_config(tmp_path, smtp_port)
    cert, key = _server_files(pki, tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(_tls(cert, key) + f"basic_auth_users:\n  {USER}: {HASH}\n")
    valid = _run_exporter(config, web, "--config.check")
    assert valid.returncode == 0, valid.stderr
    assert f"{web}: web configuration is valid (HTTPS, 1 basic auth users)" in valid.stdout
    web.write_text(_tls(cert, tmp_path / "missing.key"))
    invalid = _run_exporter(config, web, "--config.check")
    assert invalid.returncode == 1
    assert f"{web}:3: tls_server_config.key_file: cannot read {tmp_path / 'missing.key'}" in invalid.stderr
    assert f"{config}: configuration is valid" in invalid.stdout


def test_tls_versions_ciphers_and_curve(pki: Pki, tmp_path: Path, start: Callable[[str], ExporterProcess]) -> None:
    cert, key = _server_files(pki, tmp_path)
    modern = start(_tls(cert, key, "  min_version: TLS13\n"))
    assert request(modern, "/-/healthy", ca_file=pki.ca_file).version == "TLSv1.3"
    refused(lambda: request(modern, "/-/healthy", ca_file=pki.ca_file, maximum_version=ssl.TLSVersion.TLSv1_2))
    modern.stop()
    extra = (
        "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
        "  curve_preferences: [CurveP384]\n"
    )
    pinned = start(_tls(cert, key, extra))
    answer = request(pinned, "/-/healthy", ca_file=pki.ca_file)
    assert (answer.version, answer.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    if shutil.which("openssl"):
        # The negotiated group is not visible through Python's ssl (before 3.15); openssl shows it.
        address = pinned.base_url.removeprefix("http://")
        shown = subprocess.run(
            ["openssl", "s_client", "-brief", "-connect", address, "-CAfile", str(pki.ca_file)],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "secp384r1" in shown.stdout + shown.stderr, shown.stdout + shown.stderr


def test_rate_limit_answers_429_beyond_the_burst(tmp_path: Path, start: Callable[[str], ExporterProcess]) -> None:
    # One token an hour: nothing refills while the test runs.
    exporter = start("rate_limit:\n  interval: 1h\n  burst: 3\n")
    statuses = [request(exporter, "/-/healthy").status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_a_changed_web_config_applies_without_restart_and_a_broken_one_is_refused(
    pki: Pki, tmp_path: Path, start: Callable[[str], ExporterProcess]
) -> None:
    first_cert, first_key = _server_files(pki, tmp_path, "first")
    exporter = start(_tls(first_cert, first_key) + f"basic_auth_users:\n  {USER}: {HASH}\n")
    web = tmp_path / "web.yml"
    pid = exporter.process.pid
    answer = request(exporter, "/metrics", ca_file=pki.ca_file, credentials=(USER, PASSWORD))
    assert answer.status == 200
    first_serial = x509.load_der_x509_certificate(answer.peer_der or b"").serial_number

    # New user, new password, new certificate.
    new_password = "rotated-password-0815"
    new_hash = bcrypt.hashpw(new_password.encode(), bcrypt.gensalt(4)).decode()
    second_cert, second_key = _server_files(pki, tmp_path, "second")
    _replace(web, _tls(second_cert, second_key) + f"basic_auth_users:\n  grafana: {new_hash}\n")
    answer = wait_until(
        lambda: (
            found
            if (
                found := request(exporter, "/metrics", ca_file=pki.ca_file, credentials=("grafana", new_password))
            ).status
            == 200
            else None
        ),
        "the new user accepted",
    )
    assert request(exporter, "/metrics", ca_file=pki.ca_file, credentials=(USER, PASSWORD)).status == 401
    served = wait_until(
        lambda: (
            serial
            if (
                serial := x509.load_der_x509_certificate(
                    request(exporter, "/-/healthy", ca_file=pki.ca_file, credentials=("grafana", new_password)).peer_der
                    or b""
                ).serial_number
            )
            != first_serial
            else None
        ),
        "the new certificate served",
    )
    assert served == x509.load_pem_x509_certificates(second_cert.read_bytes())[0].serial_number

    # A certificate renewed in place, the web config untouched (certbot's way).
    renewed_cert, renewed_key = _server_files(pki, tmp_path, "renewed")
    os.replace(renewed_key, second_key)
    os.replace(renewed_cert, second_cert)
    renewed_serial = x509.load_pem_x509_certificates(second_cert.read_bytes())[0].serial_number
    wait_until(
        lambda: (
            x509.load_der_x509_certificate(
                request(exporter, "/-/healthy", ca_file=pki.ca_file, credentials=("grafana", new_password)).peer_der
                or b""
            ).serial_number
            == renewed_serial
            or None
        ),
        "the renewed certificate served",
    )

    # A broken file: logged with file, line and key; the previous one stays in force.
    failures = exporter.log_text().count("web config reload failed")
    _replace(web, _tls(second_cert, second_key) + "basic_auth_users:\n  grafana: not-a-hash\n")
    wait_until(
        lambda: exporter.log_text().count("web config reload failed") > failures or None, "the broken file reported"
    )
    assert f"{web}:5: basic_auth_users.grafana: is not a bcrypt hash" in exporter.log_text()
    assert request(exporter, "/metrics", ca_file=pki.ca_file, credentials=("grafana", new_password)).status == 200

    # TLS off: the same process now speaks plain HTTP on the same port.
    _replace(web, f"basic_auth_users:\n  grafana: {new_hash}\n")
    wait_until(
        lambda: _plain_status(exporter, ("grafana", new_password)) == 200 or None, "plain HTTP after TLS was removed"
    )
    assert exporter.process.pid == pid
    assert exporter.process.poll() is None
    log = exporter.log_text()
    for secret in (PASSWORD, new_password, HASH, new_hash):
        assert secret not in log


def _plain_status(exporter: ExporterProcess, credentials: tuple[str, str]) -> int | None:
    try:
        return request(exporter, "/-/healthy", credentials=credentials).status
    except OSError:
        return None
