"""What one probe found: frozen values handed from the probe to the metrics.

Nothing here knows about sockets or Prometheus. The vocabulary of phases and
failure reasons is part of the public metrics contract (README, "Reasons").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from exporter.dane.verdict import DaneVerdict
from exporter.smtp.ehlo import EhloCapabilities
from exporter.smtp.reply import SmtpReply
from exporter.tls.session import TlsSession


class Phase(enum.StrEnum):
    CONNECT = "connect"
    BANNER = "banner"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    TLS_HANDSHAKE = "tls_handshake"
    AUTH = "auth"
    SEND = "send"
    QUIT = "quit"


class Reason(enum.StrEnum):
    """Why a probe failed. Each value is documented in the README."""

    DNS_ERROR = "dns_error"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_FAILED = "connection_failed"
    CONNECTION_CLOSED = "connection_closed"
    TIMEOUT = "timeout"
    BANNER_REJECTED = "banner_rejected"
    EHLO_REJECTED = "ehlo_rejected"
    STARTTLS_NOT_OFFERED = "starttls_not_offered"
    STARTTLS_REJECTED = "starttls_rejected"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_EXPIRED = "cert_expired"
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    # The target's `require:` policy, held against the negotiated session.
    TLS_VERSION_TOO_LOW = "tls_version_too_low"
    NO_FORWARD_SECRECY = "no_forward_secrecy"
    CLIENT_CERT_REJECTED = "client_cert_rejected"
    PROTOCOL_ERROR = "protocol_error"
    AUTH_FAILED = "auth_failed"
    AUTH_TEMPORARY_FAILURE = "auth_temporary_failure"
    AUTH_MECHANISM_UNSUPPORTED = "auth_mechanism_unsupported"
    AUTH_PLAINTEXT_REFUSED = "auth_plaintext_refused"
    AUTH_UNVERIFIED_REFUSED = "auth_unverified_refused"
    MAIL_FROM_REJECTED = "mail_from_rejected"
    RCPT_REJECTED = "rcpt_rejected"
    DATA_REJECTED = "data_rejected"
    # DANE (RFC 7672): the chain matches no usable TLSA record.
    DANE_MISMATCH = "dane_mismatch"
    # The TLSA lookup (or the host's address lookup before it) was bogus, SERVFAIL or timed out.
    DANE_LOOKUP_FAILED = "dane_lookup_failed"
    # ``dane: required`` and no secure, usable TLSA set.
    DANE_REQUIRED = "dane_required"
    # The domain's MTA-STS policy is in enforce mode and senders would refuse this pair (RFC 8461 section 4):
    # its MX host matches none of the policy's mx patterns,
    STS_MX_NOT_COVERED = "sts_mx_not_covered"
    # or its certificate is not trusted or does not name the MX host.
    STS_WEBPKI_INVALID = "sts_webpki_invalid"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class Failure:
    """One failed check. ``detail`` is for people (logs, landing page), never a label."""

    phase: Phase
    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class AuthOutcome:
    success: bool
    # None when no mechanism was tried (none in common, or plaintext refused).
    mechanism: str | None
    # The server's final reply, or why we did not try.
    reply: str


@dataclass(frozen=True)
class SendOutcome:
    success: bool
    finished_at: float
    # The reply that decided it: the DATA answer on success, the rejection otherwise.
    reply: str
    message_id: str = ""


@dataclass(frozen=True)
class ClientCertificateOutcome:
    """What became of our configured client certificate in this probe."""

    # The server sent a CertificateRequest.
    requested: bool
    # Our Certificate message carried a certificate.
    sent: bool
    # True: the server went on after the handshake (its next reply came);
    # False: it refused (an alert in or right after the handshake, or a 421
    # as its first reply); None: not requested, or no verdict before the
    # probe ended (a close without an alert, a timeout).
    accepted: bool | None


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the conversation: ``C`` client, ``S`` server, ``*`` an event."""

    offset_seconds: float
    direction: str
    text: str


@dataclass(frozen=True)
class ProbeResult:
    started_at: float
    finished_at: float
    duration_seconds: float
    # Only the phases that ran, in the order they first ran.
    phase_durations: tuple[tuple[Phase, float], ...]
    failures: tuple[Failure, ...]
    peer_address: str | None = None
    banner: SmtpReply | None = None
    # EHLO before TLS (or the only one); None when EHLO was not reached.
    ehlo: EhloCapabilities | None = None
    # None unless the target uses STARTTLS and EHLO was parsed.
    starttls_offered: bool | None = None
    # None when no handshake was attempted; False when it was attempted and failed.
    tls_handshake_succeeded: bool | None = None
    tls: TlsSession | None = None
    ehlo_after_tls: EhloCapabilities | None = None
    # None when the target has no auth block or the probe ended before AUTH.
    auth: AuthOutcome | None = None
    # None unless a test message was due and the probe got as far as sending it.
    send: SendOutcome | None = None
    # None when DANE was not checked (``dane: off``, ``tls: none``, no resolver).
    dane: DaneVerdict | None = None
    # None unless the target has a client certificate and a handshake was attempted.
    client_certificate: ClientCertificateOutcome | None = None
    # Never in the state file (scheduled probes keep none anyway): it is the one
    # place client commands appear, AUTH exchanges among them.
    transcript: tuple[TranscriptLine, ...] = field(default=(), repr=False, metadata={"kept": False})

    @property
    def success(self) -> bool:
        return not self.failures

    @property
    def effective_ehlo(self) -> EhloCapabilities | None:
        """The capabilities that apply to the session: those of the EHLO after STARTTLS when
        STARTTLS was used (None if that EHLO failed), else of the only EHLO (plaintext, or
        implicit TLS, where it already ran over TLS)."""
        upgraded = self.starttls_offered is not None and self.tls is not None
        return self.ehlo_after_tls if upgraded else self.ehlo


def unresolved_result(detail: str, now: float) -> ProbeResult:
    """The result of a pair DNS gave no address to: a dns_error, with nothing connected."""
    return ProbeResult(
        started_at=now,
        finished_at=now,
        duration_seconds=0.0,
        phase_durations=(),
        failures=(Failure(Phase.CONNECT, Reason.DNS_ERROR, detail),),
    )
