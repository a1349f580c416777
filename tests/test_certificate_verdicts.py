"""certificate_failures: which checks fail, with which reason, on real certificates (pure)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exporter.probe.result import Phase, Reason
from exporter.tls.certificates import certificate_facts
from exporter.tls.session import TlsSession
from exporter.tls.trust import TrustStore, TrustVerdict
from exporter.tls.verdicts import certificate_failures
from tests.support.pki import DAY, NOW, SERVER_NAME, Pki, ServerCertificate, self_signed


def _session(pki: Pki, certificate: ServerCertificate, *, at: float, hostname_match: bool = True) -> TlsSession:
    chain = [
        parsed.public_bytes(serialization.Encoding.DER)
        for parsed in x509.load_pem_x509_certificates(certificate.chain_pem)
    ]
    return TlsSession(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        cipher_bits=256,
        chain=tuple(certificate_facts(der) for der in chain),
        trust=TrustStore(pki.ca_file).verify(chain, at=at),
        hostname_match=hostname_match,
    )


def _reasons(session: TlsSession, at: float) -> set[Reason]:
    failures = certificate_failures(session, server_name=SERVER_NAME, now=at)
    assert all(failure.phase is Phase.TLS_HANDSHAKE for failure in failures)
    return {failure.reason for failure in failures}


def test_a_good_chain_fails_nothing(pki: Pki) -> None:
    session = _session(pki, pki.leaf(SERVER_NAME), at=NOW.timestamp())
    assert _reasons(session, NOW.timestamp()) == set()


def test_the_same_chain_after_its_expiry_is_expired_not_untrusted(pki: Pki) -> None:
    leaf = pki.leaf(SERVER_NAME, not_before=NOW - 10 * DAY, not_after=NOW + DAY)
    later = (NOW + 2 * DAY).timestamp()
    session = _session(pki, leaf, at=later)
    assert (session.trust.trusted, session.trust.error_code) == (False, 10)
    assert _reasons(session, later) == {Reason.CERT_EXPIRED}


def test_not_yet_valid(pki: Pki) -> None:
    leaf = pki.leaf(SERVER_NAME, not_before=NOW + DAY, not_after=NOW + 90 * DAY)
    session = _session(pki, leaf, at=NOW.timestamp())
    assert _reasons(session, NOW.timestamp()) == {Reason.CERT_NOT_YET_VALID}


def test_untrusted_and_misnamed_are_two_failures(pki: Pki) -> None:
    session = _session(pki, self_signed(), at=NOW.timestamp(), hostname_match=False)
    failures = certificate_failures(session, server_name=SERVER_NAME, now=NOW.timestamp())
    assert {failure.reason for failure in failures} == {Reason.CERT_UNTRUSTED, Reason.HOSTNAME_MISMATCH}
    [untrusted] = [failure for failure in failures if failure.reason is Reason.CERT_UNTRUSTED]
    assert "(chain depth 0)" in untrusted.detail


def test_no_certificate_is_untrusted() -> None:
    session = TlsSession("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, (), TrustVerdict(False), hostname_match=False)
    failures = certificate_failures(session, server_name=SERVER_NAME, now=NOW.timestamp())
    assert [(failure.reason, failure.detail) for failure in failures] == [
        (Reason.CERT_UNTRUSTED, "the server presented no certificate")
    ]


def test_expired_by_our_clock_even_when_openssl_said_trusted(pki: Pki) -> None:
    # A verdict remembered from before the expiry must not hide it.
    leaf = pki.leaf(SERVER_NAME, not_before=NOW - 10 * DAY, not_after=NOW + DAY)
    session = _session(pki, leaf, at=NOW.timestamp())
    assert session.trust.trusted
    later = (NOW + 2 * DAY).timestamp()
    assert _reasons(session, later) == {Reason.CERT_EXPIRED}
