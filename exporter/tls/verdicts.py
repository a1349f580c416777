"""Which certificate checks failed, and why, in the probe's vocabulary (pure)."""

from __future__ import annotations

from exporter.config.model import TlsRequirements
from exporter.probe.result import Failure, Phase, Reason
from exporter.tls.handshake import KEA_RSA, RSA_KEY_TRANSPORT, key_exchange_by_suite
from exporter.tls.session import TlsSession

# OpenSSL's X509_V_ERR_* codes that have a reason of their own.
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10
_REASON_OF_OPENSSL_ERROR = {
    X509_V_ERR_CERT_HAS_EXPIRED: Reason.CERT_EXPIRED,
    X509_V_ERR_CERT_NOT_YET_VALID: Reason.CERT_NOT_YET_VALID,
}


def certificate_failures(session: TlsSession, *, server_name: str, now: float) -> list[Failure]:
    """The certificate checks that failed, each with its own reason, at ``now``."""
    phase = Phase.TLS_HANDSHAKE
    leaf = session.leaf
    if leaf is None:
        return [Failure(phase, Reason.CERT_UNTRUSTED, "the server presented no certificate")]
    reasons: dict[Reason, str] = {}
    if leaf.is_expired(now):
        reasons[Reason.CERT_EXPIRED] = "the server certificate has expired"
    elif leaf.is_not_yet_valid(now):
        reasons[Reason.CERT_NOT_YET_VALID] = "the server certificate is not yet valid"
    trust = session.trust
    if not trust.trusted:
        reason = _REASON_OF_OPENSSL_ERROR.get(trust.error_code or 0, Reason.CERT_UNTRUSTED)
        depth = f" (chain depth {trust.error_depth})" if trust.error_depth is not None else ""
        reasons.setdefault(reason, f"{trust.error_message}{depth}")
    if not session.hostname_match:
        names = ", ".join(leaf.subject_alternative_names or leaf.common_names) or "no names"
        reasons[Reason.HOSTNAME_MISMATCH] = f"{server_name} does not match the certificate ({names})"
    return [Failure(phase, reason, detail) for reason, detail in reasons.items()]


def requirement_failures(session: TlsSession, require: TlsRequirements | None) -> list[Failure]:
    """What the negotiated session breaks of the target's ``require:`` policy."""
    if require is None:
        return []
    failures = []
    if require.version_too_low(session.version):
        failures.append(
            Failure(
                Phase.TLS_HANDSHAKE,
                Reason.TLS_VERSION_TOO_LOW,
                f"negotiated {session.version}; require: min_tls_version is {require.min_tls_version}",
            )
        )
    if require.forward_secrecy and not _forward_secret(session):
        failures.append(
            Failure(
                Phase.TLS_HANDSHAKE,
                Reason.NO_FORWARD_SECRECY,
                f"negotiated {session.cipher} with RSA key transport; require: forward_secrecy is true",
            )
        )
    return failures


def _forward_secret(session: TlsSession) -> bool:
    # RSA key transport is the one key exchange without an ephemeral key that
    # a handshake can end with here (static DH suites are gone from OpenSSL).
    # The handshake facts say it; without them (no recorder), OpenSSL's suite table.
    facts = session.handshake
    if facts is not None and facts.group is not None:
        return facts.group != RSA_KEY_TRANSPORT
    return key_exchange_by_suite().get(session.cipher) != KEA_RSA
