"""Our client certificate, as a running exporter's /metrics reports it.

aiosmtpd servers with CERT_REQUIRED contexts (TLS 1.2 and 1.3, STARTTLS and
implicit TLS) that trust a client CA of the test's own, and a real Postfix
with `smtpd_tls_ask_ccert` and `smtpd_tls_req_ccert`. The two reject
differently: OpenSSL as a server alerts (in TLS 1.2 inside the handshake, in
TLS 1.3 after ours has ended), Postfix completes the handshake and answers 421.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import SERVER_NAME, Pki
from tests.support.postfix import MAIL_DOMAIN, start_mail_server, stop_mail_server, unavailable_reason
from tests.support.servers import ScenarioServers

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


@dataclass(frozen=True)
class ClientPki:
    """A client CA the servers trust, and certificates from it and from a CA they do not."""

    ca: trustme.CA
    trusted: tuple[Path, Path]
    untrusted: tuple[Path, Path]
    # The private keys' PEM, to prove they appear nowhere.
    key_texts: tuple[str, ...]
    not_after: float


def _client_pki(directory: Path) -> ClientPki:
    ca, stranger = trustme.CA(organization_name="Client CA"), trustme.CA(organization_name="Unknown CA")
    pairs = []
    key_texts = []
    for name, issuer in (("trusted", ca), ("untrusted", stranger)):
        issued = issuer.issue_cert("probe.test")
        issued.cert_chain_pems[0].write_to_path(str(directory / f"{name}.pem"))
        issued.private_key_pem.write_to_path(str(directory / f"{name}.key"))
        pairs.append((directory / f"{name}.pem", directory / f"{name}.key"))
        key_texts.append(issued.private_key_pem.bytes().decode())
    certificate = x509.load_pem_x509_certificate(pairs[0][0].read_bytes())
    return ClientPki(ca, pairs[0], pairs[1], tuple(key_texts), certificate.not_valid_after_utc.timestamp())


def _requiring(pki: Pki, client_ca: trustme.CA, directory: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = pki.leaf().server_context(directory, f"requiring-{version.name}")
    context.minimum_version = context.maximum_version = version
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_ca.cert_pem.bytes().decode())
    return context


def _target(name: str, port: int, pair: tuple[Path, Path] | None, *, tls: str = "starttls") -> list[str]:
    lines = [f"  - name: {name}", "    host: 127.0.0.1", f"    port: {port}", f"    tls: {tls}"]
    lines.append(f"    server_name: {SERVER_NAME}")  # Postfix's MAIL_DOMAIN too
    if pair is not None:
        lines += [f"    client_cert_file: {pair[0]}", f"    client_key_file: {pair[1]}"]
    return lines


@dataclass
class Probed:
    scrape: Scrape
    log: str
    client: ClientPki
    exporter: ExporterProcess
    config_file: Path


def _run_exporter(
    directory: Path, ca_file: Path, client: ClientPki, targets: list[list[str]], extra: Sequence[str] = ()
) -> Iterator[Probed]:
    lines = ["defaults:", "  interval: 1h", "  timeout: 10s", "  ehlo_name: probe.test", f"  ca_file: {ca_file}"]
    lines += ["targets:", *(line for target in targets for line in target), *extra]
    (directory / "config.yml").write_text("\n".join(lines) + "\n")
    exporter = ExporterProcess(directory / "config.yml", directory / "exporter.log")
    try:
        names = [target[0].split(": ", 1)[1] for target in targets]
        scrape = exporter.wait_for_probes(names)
        yield Probed(scrape, exporter.log_text(), client, exporter, directory / "config.yml")
    finally:
        exporter.stop()


@pytest.fixture(scope="module")
def aiosmtpd_probed(pki: Pki, servers: ScenarioServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probed]:
    directory = tmp_path_factory.mktemp("client-certificates")
    client = _client_pki(directory)
    targets = []
    requiring_ports = []
    for version, label in ((TLS13, "tls13"), (TLS12, "tls12")):
        port = servers.smtp(tls_context=_requiring(pki, client.ca, directory, version), handshake_alerts=True)
        requiring_ports.append(port)
        targets += [
            _target(f"{label}-accepted", port, client.trusted),
            _target(f"{label}-unknown-ca", port, client.untrusted),
            _target(f"{label}-none-configured", port, None),
        ]
    implicit = servers.smtp(tls_context=_requiring(pki, client.ca, directory, TLS13), implicit_tls=True)
    targets += [
        _target("implicit-tls13-accepted", implicit, client.trusted, tls="implicit"),
        _target("implicit-tls13-unknown-ca", implicit, client.untrusted, tls="implicit"),
    ]
    not_asking = servers.smtp(tls_context=pki.leaf().server_context(directory, "not-asking"))
    targets.append(_target("not-asked", not_asking, client.trusted))
    # /probe modules presenting each certificate: their debug output must not show the key either.
    modules = ["modules:"]
    for name, (cert_file, key_file) in (("trusted", client.trusted), ("untrusted", client.untrusted)):
        modules += [f"  {name}:", f"    server_name: {SERVER_NAME}"]
        modules += [f"    client_cert_file: {cert_file}", f"    client_key_file: {key_file}"]
    allowed = ", ".join(str(port) for port in (*requiring_ports, implicit))
    modules.append(f"probe_allow: [{{host: 127.0.0.1/32, ports: [{allowed}]}}]")
    yield from _run_exporter(directory, pki.ca_file, client, targets, modules)


def _errors(scrape: Scrape, target: str) -> set[tuple[str, str]]:
    return {(labels["phase"], labels["reason"]) for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


@pytest.mark.parametrize("target", ["tls13-accepted", "tls12-accepted", "implicit-tls13-accepted"])
def test_a_trusted_client_certificate_is_accepted(aiosmtpd_probed: Probed, target: str) -> None:
    scrape = aiosmtpd_probed.scrape
    assert scrape.value("smtp_tls_client_certificate_requested", target=target) == 1
    assert scrape.value("smtp_tls_client_certificate_accepted", target=target) == 1
    assert scrape.value("smtp_probe_success", target=target) == 1
    assert scrape.value("smtp_tls_client_cert_not_after_timestamp_seconds", target=target) == pytest.approx(
        aiosmtpd_probed.client.not_after
    )


@pytest.mark.parametrize("target", ["tls13-unknown-ca", "tls12-unknown-ca"])
def test_a_client_certificate_from_an_unknown_ca_is_rejected(aiosmtpd_probed: Probed, target: str) -> None:
    scrape = aiosmtpd_probed.scrape
    assert scrape.value("smtp_tls_client_certificate_requested", target=target) == 1
    assert scrape.value("smtp_tls_client_certificate_accepted", target=target) == 0
    assert scrape.value("smtp_probe_success", target=target) == 0
    # One problem, one reason: not also a closed connection or a failed handshake.
    assert _errors(scrape, target) == {("tls_handshake", "client_cert_rejected")}
    # The expiry of what we present is known whatever the server thinks of it.
    assert scrape.value("smtp_tls_client_cert_not_after_timestamp_seconds", target=target) is not None


def test_the_rejection_names_the_alert(aiosmtpd_probed: Probed) -> None:
    # TLS 1.3: after our handshake ended, in place of the EHLO reply.
    assert "after the handshake: TLS alert unknown_ca (TLSV1_ALERT_UNKNOWN_CA)" in aiosmtpd_probed.log
    # TLS 1.2: inside the handshake, before the server's Finished.
    assert "in the handshake: TLS alert unknown_ca (TLSV1_ALERT_UNKNOWN_CA)" in aiosmtpd_probed.log


def test_a_close_without_an_alert_is_no_verdict(aiosmtpd_probed: Probed) -> None:
    # asyncio's own server-side TLS (implicit TLS here) drops the alert and just
    # closes: that could be anything, so no verdict and the reason it was.
    scrape, target = aiosmtpd_probed.scrape, "implicit-tls13-unknown-ca"
    assert scrape.value("smtp_tls_client_certificate_requested", target=target) == 1
    assert scrape.find("smtp_tls_client_certificate_accepted", target=target) == []
    assert _errors(scrape, target) == {("banner", "connection_closed")}


@pytest.mark.parametrize("target", ["tls13-none-configured", "tls12-none-configured"])
def test_without_a_client_certificate_there_is_no_verdict_on_one(aiosmtpd_probed: Probed, target: str) -> None:
    scrape = aiosmtpd_probed.scrape
    # TLS 1.3 ends our handshake before the refusal, so the request is known;
    # a failed TLS 1.2 handshake leaves no session to report it from.
    requested = 1 if target.startswith("tls13") else None
    assert scrape.value("smtp_tls_client_certificate_requested", target=target) == requested
    assert scrape.find("smtp_tls_client_certificate_accepted", target=target) == []
    assert scrape.find("smtp_tls_client_cert_not_after_timestamp_seconds", target=target) == []
    assert scrape.value("smtp_probe_success", target=target) == 0


def test_a_server_that_does_not_ask_gets_no_verdict(aiosmtpd_probed: Probed) -> None:
    scrape = aiosmtpd_probed.scrape
    assert scrape.value("smtp_tls_client_certificate_requested", target="not-asked") == 0
    assert scrape.find("smtp_tls_client_certificate_accepted", target="not-asked") == []
    assert scrape.value("smtp_tls_client_cert_not_after_timestamp_seconds", target="not-asked") is not None
    assert scrape.value("smtp_probe_success", target="not-asked") == 1


def _key_forms(key_text: str) -> list[str]:
    """Every form in which a leaked key could be recognised: PEM body pieces, DER hex, the private number."""
    body = "".join(line for line in key_text.splitlines() if not line.startswith("-----"))
    forms = [body[i : i + 24] for i in range(0, len(body) - 24, 24)]
    key = serialization.load_pem_private_key(key_text.encode(), password=None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forms += [der.hex()[i : i + 32] for i in range(0, len(der.hex()) - 32, 32)]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        secret = key.private_numbers().private_value
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        secret = key.private_numbers().d
    forms += [f"{secret:x}", f"{secret:X}", str(secret)]
    # The forms are the key's own: the number is the one the PEM encodes.
    assert f"{secret:x}" in der.hex()
    return forms


def _probe_targets(probed: Probed) -> list[tuple[str, int]]:
    """(module, port) of /probe requests presenting each certificate to servers that ask for one (TLS 1.3, 1.2)."""
    ports = {labels["target"]: int(labels["port"]) for labels, _ in probed.scrape.find("smtp_target_info")}
    return [
        ("trusted", ports["tls13-accepted"]),
        ("untrusted", ports["tls13-unknown-ca"]),
        ("trusted", ports["tls12-accepted"]),
        ("untrusted", ports["tls12-unknown-ca"]),
    ]


def test_the_client_key_appears_nowhere(aiosmtpd_probed: Probed, pki: Pki) -> None:
    exporter, client = aiosmtpd_probed.exporter, aiosmtpd_probed.client
    outputs = {"log": aiosmtpd_probed.log, "metrics": aiosmtpd_probed.scrape.text, "landing page": exporter.get("/")[2]}
    for module, port in _probe_targets(aiosmtpd_probed):
        status, _, body = exporter.get(f"/probe?target=127.0.0.1:{port}&module={module}&debug=true")
        assert status == 200, body
        # The report did run; where the handshake completed, it names the certificate file presented.
        assert "Conversation" in body
        if module == "trusted":
            assert f"Client     certificate {client.trusted[0]} sent" in body
        outputs[f"/probe?debug=true {module} {port}"] = body
        outputs[f"/probe {module} {port}"] = exporter.get(f"/probe?target=127.0.0.1:{port}&module={module}")[2]
    outputs["log after /probe"] = exporter.log_text()
    outputs["--config.check"] = _run_check("--config.file", str(aiosmtpd_probed.config_file), "--config.check")
    requiring_tls13 = _probe_targets(aiosmtpd_probed)[0][1]
    server = ["check", f"127.0.0.1:{requiring_tls13}", "--ca-file", str(pki.ca_file), "--server-name", SERVER_NAME]
    for name, (cert_file, key_file) in (("trusted", client.trusted), ("untrusted", client.untrusted)):
        presented = [*server, "--client-cert-file", str(cert_file), "--client-key-file", str(key_file)]
        outputs[f"check {name}"] = _run_check(*presented)
        outputs[f"check --json {name}"] = _run_check(*presented, "--json")
    assert f"certificate {client.trusted[0]} sent" in outputs["check trusted"]
    # A key that does not belong to the certificate: the error names the files, never their content.
    foreign = [*server, "--client-cert-file", str(client.trusted[0]), "--client-key-file", str(client.untrusted[1])]
    outputs["check with a foreign key"] = _run_check(*foreign)
    assert "does not belong to the certificate" in outputs["check with a foreign key"]
    for key_text in client.key_texts:
        for form in _key_forms(key_text):
            for where, text in outputs.items():
                assert form not in text, f"{where} contains the client key (or a form of it)"


def _run_check(*arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    return completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def postfix_probed(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probed]:
    require(unavailable_reason(), "the Postfix client-certificate tier")
    directory = tmp_path_factory.mktemp("postfix-client-certificates")
    client = _client_pki(directory)
    leaf = pki.leaf(MAIL_DOMAIN)
    server = start_mail_server(
        leaf.key_pem + leaf.chain_pem, f"probe@{MAIL_DOMAIN}", "unused-7Hq", client_ca_pem=client.ca.cert_pem.bytes()
    )
    try:
        targets = [
            _target("ask-trusted", server.ask_ccert_port, client.trusted),
            _target("ask-untrusted", server.ask_ccert_port, client.untrusted),
            _target("require-trusted", server.req_ccert_port, client.trusted),
            _target("require-untrusted", server.req_ccert_port, client.untrusted),
            _target("require-none-configured", server.req_ccert_port, None),
        ]
        yield from _run_exporter(directory, pki.ca_file, client, targets)
    finally:
        stop_mail_server(server)


@pytest.mark.integration
@pytest.mark.parametrize("target", ["ask-trusted", "ask-untrusted", "require-trusted"])
def test_postfix_goes_on_with_our_certificate(postfix_probed: Probed, target: str) -> None:
    # smtpd_tls_ask_ccert only asks: Postfix logs an untrusted certificate and goes on.
    scrape = postfix_probed.scrape
    assert scrape.value("smtp_tls_client_certificate_requested", target=target) == 1
    assert scrape.value("smtp_tls_client_certificate_accepted", target=target) == 1
    assert scrape.value("smtp_probe_success", target=target) == 1


@pytest.mark.integration
def test_postfix_refuses_an_untrusted_certificate_with_421(postfix_probed: Probed) -> None:
    scrape = postfix_probed.scrape
    assert scrape.value("smtp_tls_client_certificate_accepted", target="require-untrusted") == 0
    assert _errors(scrape, "require-untrusted") == {("tls_handshake", "client_cert_rejected")}
    assert "421 4.7.1 mail.test Error: Client certificate not trusted" in postfix_probed.log


@pytest.mark.integration
def test_postfix_requiring_a_certificate_we_do_not_have(postfix_probed: Probed) -> None:
    scrape = postfix_probed.scrape
    assert scrape.value("smtp_tls_client_certificate_requested", target="require-none-configured") == 1
    assert scrape.find("smtp_tls_client_certificate_accepted", target="require-none-configured") == []
    # Without a certificate of ours there is none to reject: Postfix's 421 is an EHLO refusal.
    assert _errors(scrape, "require-none-configured") == {("ehlo", "ehlo_rejected")}
