"""The group, signature and client-certificate request we read are what `openssl s_client` reports.

Each scenario is an aiosmtpd STARTTLS server whose TLS context the test sets
(curves, a TLS 1.2-only suite list, DH parameters, the certificate's key).
Our side is the probe's own handshake (SmtpConnection, handshake_context);
OpenSSL's side is `openssl s_client -brief` offering what our context offers.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from exporter.net.connection import SmtpConnection
from exporter.probe.transcript import Transcript
from exporter.tls.certificates import certificate_facts
from exporter.tls.codepoints import scheme_by_name
from exporter.tls.context import handshake_context
from exporter.tls.handshake import HandshakeFacts, handshake_facts, key_exchange_by_suite
from exporter.tls.private_api import handshake_recorder, observe_handshakes, presented_chain
from tests.support.environment import require
from tests.support.pki import DAY, NOW, SERVER_NAME, Pki, ServerCertificate
from tests.support.servers import ScenarioServers

# What our handshake context offers, so both clients give the server the same choice.
CLIENT_CIPHERS = "DEFAULT:@SECLEVEL=0"
# OpenSSL prints some curves by their X9.62 names.
_OPENSSL_CURVE_NAMES = {"prime256v1": "secp256r1"}


@dataclass(frozen=True)
class Expected:
    version: str
    group: str | None
    bits: int | None
    scheme: str | None
    requested: bool = False


@dataclass(frozen=True)
class Scenario:
    expected: Expected
    server_context: Callable[[Pki, Path], ssl.SSLContext]


def _context(
    key: str = "ec",
    *,
    curve: str | None = None,
    maximum: ssl.TLSVersion | None = None,
    minimum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
    dh_group: str | None = None,
    dh_bits: int | None = None,
    request_certificate: bool = False,
) -> Callable[[Pki, Path], ssl.SSLContext]:
    def make(pki: Pki, directory: Path) -> ssl.SSLContext:
        if key == "ed25519":
            certificate = _ed25519_leaf(pki)
        else:
            certificate = pki.leaf(key_type=trustme.KeyType.RSA if key == "rsa" else trustme.KeyType.ECDSA)
        context = certificate.server_context(directory, f"{key}-{id(make)}")
        with warnings.catch_warnings():
            # TLS 1.1 is deprecated; a server that still speaks it is what we test.
            warnings.simplefilter("ignore", DeprecationWarning)
            if minimum is not None:
                context.minimum_version = minimum
            if maximum is not None:
                context.maximum_version = maximum
        if ciphers is not None:
            context.set_ciphers(ciphers)
        if curve is not None:
            context.set_ecdh_curve(curve)
        if dh_group is not None or dh_bits is not None:
            context.load_dh_params(str(_dh_parameters(directory, dh_group, dh_bits)))
        if request_certificate:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(pki.ca_file)
        return context

    return make


TLS12 = ssl.TLSVersion.TLSv1_2
SCENARIOS = {
    "TLS 1.3, ECDSA P-256, X25519": Scenario(Expected("TLSv1.3", "x25519", 253, "ecdsa_secp256r1_sha256"), _context()),
    "TLS 1.3, P-256 after a HelloRetryRequest": Scenario(
        Expected("TLSv1.3", "secp256r1", 256, "ecdsa_secp256r1_sha256"), _context(curve="prime256v1")
    ),
    "TLS 1.3, secp384r1": Scenario(
        Expected("TLSv1.3", "secp384r1", 384, "ecdsa_secp256r1_sha256"), _context(curve="secp384r1")
    ),
    "TLS 1.3, secp521r1": Scenario(
        Expected("TLSv1.3", "secp521r1", 521, "ecdsa_secp256r1_sha256"), _context(curve="secp521r1")
    ),
    "TLS 1.3, X448": Scenario(Expected("TLSv1.3", "x448", 448, "ecdsa_secp256r1_sha256"), _context(curve="X448")),
    "TLS 1.3, RSA certificate": Scenario(Expected("TLSv1.3", "x25519", 253, "rsa_pss_rsae_sha256"), _context("rsa")),
    "TLS 1.3, Ed25519 certificate": Scenario(Expected("TLSv1.3", "x25519", 253, "ed25519"), _context("ed25519")),
    "TLS 1.2, ECDHE-RSA on secp521r1": Scenario(
        Expected("TLSv1.2", "secp521r1", 521, "rsa_pss_rsae_sha256"),
        _context("rsa", maximum=TLS12, ciphers="ECDHE-RSA-AES256-GCM-SHA384", curve="secp521r1"),
    ),
    "TLS 1.2, ECDHE-ECDSA on X25519": Scenario(
        Expected("TLSv1.2", "x25519", 253, "ecdsa_secp256r1_sha256"),
        _context(maximum=TLS12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
    ),
    "TLS 1.2, DHE on ffdhe2048": Scenario(
        Expected("TLSv1.2", "ffdhe2048", 2048, "rsa_pss_rsae_sha256"),
        _context("rsa", maximum=TLS12, ciphers="DHE-RSA-AES128-GCM-SHA256", dh_group="ffdhe2048"),
    ),
    "TLS 1.2, DHE on a 1024-bit prime of its own": Scenario(
        Expected("TLSv1.2", "dh1024", 1024, "rsa_pss_rsae_sha256"),
        _context("rsa", maximum=TLS12, ciphers="DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", dh_bits=1024),
    ),
    "TLS 1.2, RSA key transport": Scenario(
        Expected("TLSv1.2", "rsa", None, None),
        _context("rsa", maximum=TLS12, ciphers="AES128-GCM-SHA256:@SECLEVEL=0"),
    ),
    "TLS 1.1, ECDHE-RSA": Scenario(
        Expected("TLSv1.1", "x25519", 253, "rsa_pkcs1_md5_sha1"),
        _context(
            "rsa",
            minimum=ssl.TLSVersion.TLSv1_1,
            maximum=ssl.TLSVersion.TLSv1_1,
            ciphers="ECDHE-RSA-AES128-SHA:@SECLEVEL=0",
        ),
    ),
    "TLS 1.3, client certificate requested": Scenario(
        Expected("TLSv1.3", "x25519", 253, "ecdsa_secp256r1_sha256", requested=True),
        _context(request_certificate=True),
    ),
    "TLS 1.2, client certificate requested": Scenario(
        Expected("TLSv1.2", "x25519", 253, "rsa_pss_rsae_sha256", requested=True),
        _context("rsa", maximum=TLS12, ciphers="ECDHE-RSA-AES128-GCM-SHA256", request_certificate=True),
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_handshake_facts_agree_with_openssl_s_client(
    name: str, pki: Pki, servers: ScenarioServers, tmp_path: Path
) -> None:
    require(None if shutil.which("openssl") else "the openssl command is not installed", "comparison with OpenSSL")
    scenario = SCENARIOS[name]
    port = servers.smtp(tls_context=scenario.server_context(pki, tmp_path))
    version, ours = _our_handshake(port, handshake_context())
    theirs = _s_client(port)

    assert (version, ours.group, ours.key_exchange_bits, ours.signature_scheme) == (
        scenario.expected.version,
        scenario.expected.group,
        scenario.expected.bits,
        scenario.expected.scheme,
    )
    assert ours.client_certificate_requested is scenario.expected.requested
    assert not ours.client_certificate_sent  # we have none to send
    # Now OpenSSL's account of the same server.
    assert theirs.version == version
    assert theirs.temp_key_bits == ours.key_exchange_bits
    if theirs.temp_key_curve is not None:
        assert ours.group == _OPENSSL_CURVE_NAMES.get(theirs.temp_key_curve, theirs.temp_key_curve)
    elif theirs.temp_key_kind == "DH":  # OpenSSL names no finite-field group: the bits decide
        assert ours.group is not None
        assert ours.group.startswith(("ffdhe", "dh"))
    elif theirs.temp_key_kind is not None:  # X25519, X448
        assert ours.group == theirs.temp_key_kind.lower()
    else:
        assert ours.group == "rsa"
    scheme = scheme_by_name(ours.signature_scheme) if ours.signature_scheme else None
    assert (scheme.postfix_type.lower() if scheme else None) == theirs.signature_type
    assert (scheme.digest if scheme else None) == theirs.digest
    assert theirs.certificate_requested is ours.client_certificate_requested


def test_our_client_certificate_goes_out_when_asked(pki: Pki, servers: ScenarioServers, tmp_path: Path) -> None:
    port = servers.smtp(tls_context=_context(request_certificate=True)(pki, tmp_path))
    client = pki.leaf("probe.test")
    (tmp_path / "client.pem").write_bytes(client.chain_pem)
    (tmp_path / "client.key").write_bytes(client.key_pem)
    context = handshake_context()
    context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    _, facts = _our_handshake(port, context)
    assert (facts.client_certificate_requested, facts.client_certificate_sent) == (True, True)


def test_a_server_that_does_not_ask_gets_no_client_certificate(
    pki: Pki, servers: ScenarioServers, tmp_path: Path
) -> None:
    port = servers.smtp(tls_context=_context()(pki, tmp_path))
    client = pki.leaf("probe.test")
    (tmp_path / "client.pem").write_bytes(client.chain_pem)
    (tmp_path / "client.key").write_bytes(client.key_pem)
    context = handshake_context()
    context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    _, facts = _our_handshake(port, context)
    assert (facts.client_certificate_requested, facts.client_certificate_sent) == (False, False)


def _our_handshake(port: int, context: ssl.SSLContext) -> tuple[str, HandshakeFacts]:
    observe_handshakes(context)

    async def converse() -> tuple[str, HandshakeFacts]:
        deadline = asyncio.get_running_loop().time() + 20
        connection = await SmtpConnection.open(
            "127.0.0.1", port, family=socket.AF_UNSPEC, deadline=deadline, transcript=Transcript(enabled=False)
        )
        try:
            await connection.read_reply()
            await connection.command("EHLO probe.test")
            assert (await connection.command("STARTTLS")).code == 220
            ssl_object = await connection.start_tls(context, SERVER_NAME)
            # A reply over TLS: the server accepted the whole handshake.
            assert (await connection.command("EHLO probe.test")).code == 250
            recorder = handshake_recorder(ssl_object)
            assert recorder is not None
            cipher = ssl_object.cipher()
            assert cipher is not None
            leaf = certificate_facts(presented_chain(ssl_object)[0])
            facts = handshake_facts(recorder, kea=key_exchange_by_suite()[cipher[0]], leaf_key_type=leaf.key_type)
            return ssl_object.version() or "", facts
        finally:
            connection.close()

    return asyncio.run(converse())


@dataclass(frozen=True)
class SClientReport:
    version: str | None
    temp_key_kind: str | None
    temp_key_curve: str | None
    temp_key_bits: int | None
    signature_type: str | None
    digest: str | None
    certificate_requested: bool


def _s_client(port: int) -> SClientReport:
    completed = subprocess.run(
        ["openssl", "s_client", "-brief", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
         "-servername", SERVER_NAME, "-cipher", CLIENT_CIPHERS],
        input=b"", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    output = completed.stderr.decode(errors="replace")
    assert "CONNECTION ESTABLISHED" in output, output

    def field(label: str) -> str | None:
        match = re.search(rf"^{re.escape(label)}: (.+)$", output, re.MULTILINE)
        return match.group(1).strip() if match else None

    # "X25519, 253 bits", "ECDH, secp384r1, 384 bits", "DH, 2048 bits"
    temp_key = field("Server Temp Key")
    kind = curve = None
    bits = None
    if temp_key is not None:
        parts = [part.strip() for part in temp_key.split(",")]
        kind, bits = parts[0], int(parts[-1].split()[0])
        curve = parts[1] if len(parts) == 3 else None
    signature_type = field("Signature type") or field("Peer signature type")
    digest = field("Hash used") or field("Peer signing digest")
    return SClientReport(
        version=field("Protocol version"),
        temp_key_kind=kind,
        temp_key_curve=curve,
        temp_key_bits=bits,
        signature_type=signature_type.lower() if signature_type else None,
        # EdDSA has no separate digest: OpenSSL says UNDEF.
        digest=None if digest == "UNDEF" else digest,
        # s_client lists the algorithms the server's CertificateRequest named.
        certificate_requested="Requested Signature Algorithms" in output,
    )


def _dh_parameters(directory: Path, group: str | None, bits: int | None) -> Path:
    path = directory / f"dh-{group or bits}.pem"
    if group is not None:
        command = ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", f"group:{group}"]
    else:
        # -dsaparam: a safe prime would take seconds; the handshake does not care.
        command = ["openssl", "dhparam", "-dsaparam", str(bits)]
    path.write_bytes(subprocess.run(command, capture_output=True, check=True).stdout)
    return path


def _ed25519_leaf(pki: Pki) -> ServerCertificate:
    issuer_key = serialization.load_pem_private_key(pki.intermediate.private_key_pem.bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(pki.intermediate.cert_pem.bytes())
    key = ed25519.Ed25519PrivateKey.generate()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 90 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = certificate.public_bytes(serialization.Encoding.PEM) + pki.intermediate.cert_pem.bytes()
    return ServerCertificate(chain, key_pem)
