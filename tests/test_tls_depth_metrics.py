"""Key exchange, signature, ratings and the client-certificate request, as /metrics shows them.

One exporter process probes aiosmtpd servers whose TLS the test sets; the
values are those test_handshake_agrees_with_openssl.py holds to OpenSSL.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import SERVER_NAME, Pki, ServerCertificate
from tests.support.servers import ScenarioServers
from tests.test_handshake_agrees_with_openssl import TLS12, _context


def _weak_leaf(pki: Pki, directory: Path) -> ServerCertificate:
    """RSA 1024 signed with SHA-1 by the intermediate: what SmtpCertificateWeakKey is for.

    cryptography refuses to sign with SHA-1 any more; the openssl command still does.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - weak on purpose
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (directory / "weak.key").write_bytes(key_pem)
    (directory / "issuer.pem").write_bytes(pki.intermediate.cert_pem.bytes())
    (directory / "issuer.key").write_bytes(pki.intermediate.private_key_pem.bytes())
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{SERVER_NAME}\n")
    request = subprocess.run(
        ["openssl", "req", "-new", "-key", str(directory / "weak.key"), "-subj", f"/CN={SERVER_NAME}"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    certificate = subprocess.run(
        ["openssl", "x509", "-req", "-sha1", "-days", "30", "-CA", str(directory / "issuer.pem"),
         "-CAkey", str(directory / "issuer.key"), "-set_serial", "4242", "-extfile", str(directory / "san.ext")],
        input=request, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return ServerCertificate(certificate + pki.intermediate.cert_pem.bytes(), key_pem)


@pytest.fixture(scope="module")
def scrape(pki: Pki, servers: ScenarioServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    directory = tmp_path_factory.mktemp("tls-depth")
    weak_leaf = _weak_leaf(pki, directory)
    (directory / "weak.chain.pem").write_bytes(weak_leaf.chain_pem)
    weak = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    weak.set_ciphers("DEFAULT:@SECLEVEL=0")  # before loading: OpenSSL 3 refuses the key above level 0
    weak.load_cert_chain(directory / "weak.chain.pem", directory / "weak.key")
    contexts: dict[str, ssl.SSLContext] = {
        "good": _context()(pki, directory),
        "rsa-key-transport": _context("rsa", maximum=TLS12, ciphers="AES128-GCM-SHA256:@SECLEVEL=0")(pki, directory),
        "dhe-1024": _context("rsa", maximum=TLS12, ciphers="DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", dh_bits=1024)(
            pki, directory
        ),
        "asks-for-certificate": _context(request_certificate=True)(pki, directory),
        "weak-key": weak,
    }
    lines = ["defaults:", "  interval: 1h", "  timeout: 10s", "  ehlo_name: probe.test", f"  ca_file: {pki.ca_file}"]
    lines.append("targets:")
    for name, context in contexts.items():
        port = servers.smtp(tls_context=context)
        lines += [f"  - name: {name}", "    host: 127.0.0.1", f"    port: {port}", f"    server_name: {SERVER_NAME}"]
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    exporter = ExporterProcess(config, directory / "exporter.log")
    try:
        yield exporter.wait_for_probes(list(contexts))
    finally:
        exporter.stop()


def _label(scrape: Scrape, family: str, target: str, label: str) -> list[str]:
    return [labels[label] for labels, value in scrape.find(family, target=target) if value == 1]


def test_a_modern_server(scrape: Scrape) -> None:
    assert _label(scrape, "smtp_tls_key_exchange_info", "good", "group") == ["x25519"]
    assert scrape.value("smtp_tls_key_exchange_bits", target="good") == 253
    assert _label(scrape, "smtp_tls_signature_info", "good", "scheme") == ["ecdsa_secp256r1_sha256"]
    assert _label(scrape, "smtp_tls_cipher_rating_info", "good", "rating") == ["good"]
    assert scrape.value("smtp_tls_client_certificate_requested", target="good") == 0
    # trustme's leaf and intermediate: ECDSA P-256 and P-256 (its CAs are ECDSA too)
    depths = {labels["depth"]: value for labels, value in scrape.find("smtp_cert_chain_key_bits", target="good")}
    assert depths == {"0": 256, "1": 256}
    assert _label(scrape, "smtp_cert_chain_weakest_rating_info", "good", "rating") == ["good"]


def test_rsa_key_transport_has_no_temp_key_and_no_signature(scrape: Scrape) -> None:
    target = "rsa-key-transport"
    assert _label(scrape, "smtp_tls_key_exchange_info", target, "group") == ["rsa"]
    # Nothing ephemeral and nothing signed: absent, not 0.
    assert scrape.find("smtp_tls_key_exchange_bits", target=target) == []
    assert scrape.find("smtp_tls_signature_info", target=target) == []
    assert _label(scrape, "smtp_tls_cipher_rating_info", target, "rating") == ["insufficient"]
    # trustme's RSA leaf is 2048 bits: sufficient, not good
    assert _label(scrape, "smtp_cert_chain_weakest_rating_info", target, "rating") == ["sufficient"]


def test_dhe_with_a_prime_of_its_own(scrape: Scrape) -> None:
    assert _label(scrape, "smtp_tls_key_exchange_info", "dhe-1024", "group") == ["dh1024"]
    assert scrape.value("smtp_tls_key_exchange_bits", target="dhe-1024") == 1024
    assert _label(scrape, "smtp_tls_signature_info", "dhe-1024", "scheme") == ["rsa_pss_rsae_sha256"]
    assert _label(scrape, "smtp_tls_cipher_rating_info", "dhe-1024", "rating") == ["phase_out"]


def test_a_server_asking_for_a_client_certificate(scrape: Scrape) -> None:
    assert scrape.value("smtp_tls_client_certificate_requested", target="asks-for-certificate") == 1
    # We sent none and CERT_OPTIONAL lets us in: the probe itself passes.
    assert scrape.value("smtp_probe_success", target="asks-for-certificate") == 1


def test_a_weak_leaf_key_and_sha1_signature(scrape: Scrape) -> None:
    assert scrape.value("smtp_cert_chain_key_bits", target="weak-key", depth="0") == 1024
    assert _label(scrape, "smtp_cert_chain_weakest_rating_info", "weak-key", "rating") == ["insufficient"]
