"""Our trust verdict is the one `openssl s_client -verify_return_error` reaches.

Mail clients (Postfix, Exim, swaks) verify with OpenSSL; where cryptography's
stricter WebPKI verifier would disagree, users see OpenSSL's answer.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import shutil
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exporter.config.model import ProbeOptions, TlsMode, probe_spec
from exporter.probe.run import run_probe
from exporter.tls.context import TlsClients
from exporter.tls.trust import TrustStore
from tests.support.environment import require
from tests.support.pki import DAY, NOW, SERVER_NAME, Pki, ServerCertificate, plain_private_ca, self_signed
from tests.support.servers import ScenarioServers


def _s_client_verdict(port: int, ca_file: Path | None) -> tuple[bool, int | None]:
    trust = ["-CAfile", str(ca_file), "-no-CApath", "-no-CAstore"] if ca_file else []
    completed = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
         "-servername", SERVER_NAME, "-verify_return_error", *trust],
        input=b"", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    output = completed.stdout.decode(errors="replace") + completed.stderr.decode(errors="replace")
    match = re.search(r"verify error:num=(\d+)", output)
    return completed.returncode == 0, int(match.group(1)) if match else None


def _our_verdict(port: int, ca_file: Path | None) -> tuple[bool, int | None]:
    options = ProbeOptions(TlsMode.STARTTLS, timeout=10, ehlo_name="probe.test", ca_file=ca_file)
    spec = probe_spec("127.0.0.1", port, options, server_name=SERVER_NAME)
    result = asyncio.run(run_probe(spec, TlsClients().for_spec(spec)))
    assert result.tls is not None, result.failures
    return result.tls.trust.trusted, result.tls.trust.error_code


def _scenarios(pki: Pki, directory: Path) -> dict[str, tuple[ServerCertificate, Path | None]]:
    plain = plain_private_ca(directory)
    other = Pki(directory / "other")
    return {
        "good chain": (pki.leaf(), pki.ca_file),
        "expired leaf": (pki.leaf(not_before=NOW - 90 * DAY, not_after=NOW - DAY), pki.ca_file),
        "not yet valid": (pki.leaf(not_before=NOW + DAY, not_after=NOW + 90 * DAY), pki.ca_file),
        "self-signed": (self_signed(), pki.ca_file),
        "unknown CA": (other.leaf(), pki.ca_file),
        "wrong hostname": (pki.leaf("other.test"), pki.ca_file),
        "private CA without keyUsage": (plain.server, plain.ca_file),
        "leaf for client auth only": (pki.leaf_for_client_auth_only(), pki.ca_file),
        "system trust store": (pki.leaf(), None),
    }


def test_verdicts_match_openssl(pki: Pki, servers: ScenarioServers, cert_dir: Path) -> None:
    require(None if shutil.which("openssl") else "needs the openssl command", "the openssl comparison")
    (cert_dir / "other").mkdir(exist_ok=True)
    disagreements = []
    verdicts = {}
    for name, (certificate, ca_file) in _scenarios(pki, cert_dir).items():
        port = servers.smtp(tls_context=certificate.server_context(cert_dir, name.replace(" ", "-")))
        theirs = _s_client_verdict(port, ca_file)
        ours = _our_verdict(port, ca_file)
        verdicts[name] = ours
        if ours != theirs:
            disagreements.append(f"{name}: ours {ours}, openssl s_client {theirs}")
    assert disagreements == []
    # And the scenarios really cover both verdicts and OpenSSL's main codes.
    assert verdicts["good chain"] == (True, None)
    assert verdicts["private CA without keyUsage"] == (True, None)
    assert verdicts["expired leaf"] == (False, 10)
    assert verdicts["self-signed"] == (False, 18)
    assert verdicts["unknown CA"][0] is False
    assert verdicts["leaf for client auth only"] == (False, 26)


def test_remembered_verdicts_end_when_a_certificate_expires(pki: Pki) -> None:
    expires_at = float(int(time.time()) + 3600)
    leaf = pki.leaf(not_after=datetime.datetime.fromtimestamp(expires_at, datetime.UTC))
    chain = [
        certificate.public_bytes(serialization.Encoding.DER)
        for certificate in x509.load_pem_x509_certificates(leaf.chain_pem)
    ]
    store = TrustStore(pki.ca_file)
    before = expires_at - 30
    assert store.verdict(chain, now=before, changes_at=expires_at).trusted
    # Within the reuse period of the first verdict, but past the change: asked
    # again, at that moment (not OpenSSL's own clock), and now expired.
    verdict = store.verdict(chain, now=expires_at + 2, changes_at=expires_at)
    assert (verdict.trusted, verdict.error_code) == (False, 10)
    # And the time is ours on a direct question too.
    assert store.verify(chain, at=before).trusted
