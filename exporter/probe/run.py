"""One probe of one target: the SMTP conversation, phase by phase.

connect -> banner -> EHLO -> [STARTTLS -> TLS handshake -> EHLO] -> [AUTH]
-> [test message] -> QUIT (implicit TLS handshakes right after connect). Each phase is timed; the
whole probe runs under the target's timeout. Whatever the server does, the
probe ends with a ProbeResult, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Iterator

from exporter.config.model import AuthConfig, DaneMode, ProbeSpec, SendConfig, TlsMode
from exporter.config.values import format_endpoint
from exporter.dane.tlsa import TlsaLookup, lookup_tlsa
from exporter.dane.verdict import DaneStatus, DaneVerdict, dane_verdict
from exporter.dns.resolver import DnsResolver
from exporter.net.connection import ConnectFailed, ConnectionClosed, DnsError, SmtpConnection, received_alert
from exporter.probe.result import (
    AuthOutcome,
    ClientCertificateOutcome,
    Failure,
    Phase,
    ProbeResult,
    Reason,
    SendOutcome,
)
from exporter.probe.transcript import Transcript
from exporter.smtp.auth import authenticate, choose_mechanism
from exporter.smtp.ehlo import EhloCapabilities, parse_ehlo
from exporter.smtp.message import build_message
from exporter.smtp.reply import ReplyError, SmtpReply
from exporter.smtp.status import SmtpStatus
from exporter.tls.context import TlsClient
from exporter.tls.handshake import handshake_facts
from exporter.tls.private_api import handshake_recorder
from exporter.tls.session import TlsSession, describe_session
from exporter.tls.verdicts import certificate_failures, requirement_failures

log = logging.getLogger(__name__)

# QUIT is a courtesy: a server that does not answer it has still passed.
QUIT_TIMEOUT_SECONDS = 2.0


async def run_probe(
    spec: ProbeSpec,
    tls_client: TlsClient,
    *,
    name: str | None = None,
    send_due: bool = False,
    keep_transcript: bool = True,
    resolver: DnsResolver | None = None,
) -> ProbeResult:
    """Probe ``spec`` once; with ``send_due``, also send its test message.

    ``name`` is the target's name for logs and the test message (default: host:port).
    With a ``resolver`` (a validating one), DANE is checked as ``spec.dane`` says.
    """
    run = _ProbeRun(spec, tls_client, name or spec.endpoint, send_due=send_due, keep_transcript=keep_transcript)
    try:
        async with asyncio.timeout_at(run.deadline):
            if resolver is not None and spec.dane is not DaneMode.OFF and spec.tls is not TlsMode.NONE:
                # The TLSA lookup runs while we connect; the handshake's chain waits for it.
                run.tlsa = asyncio.ensure_future(lookup_tlsa(resolver, spec.host, spec.port))
            await _converse(run)
    except _Abort as abort:
        run.fail(abort.reason, abort.detail, phase=abort.phase)
    except TimeoutError:
        run.fail(Reason.TIMEOUT, f"no complete answer within the {spec.timeout:g}s timeout")
    except DnsError as exc:
        run.fail(Reason.DNS_ERROR, str(exc))
    except ConnectFailed as exc:
        run.fail(Reason.CONNECTION_REFUSED if exc.refused else Reason.CONNECTION_FAILED, str(exc))
    except ReplyError as exc:
        run.fail(Reason.PROTOCOL_ERROR, str(exc))
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError) as exc:
        run.fail(Reason.CONNECTION_CLOSED, str(exc) or "connection closed by the server")
    except ssl.SSLError as exc:  # after the handshake: a broken TLS record
        run.fail(Reason.PROTOCOL_ERROR, f"TLS error: {exc.reason or exc}")
    except OSError as exc:
        run.fail(Reason.CONNECTION_FAILED, exc.strerror or str(exc))
    except Exception as exc:  # a bug of ours: report it, keep the daemon alive
        log.exception("probe of target %s failed unexpectedly", run.name)
        run.fail(Reason.INTERNAL_ERROR, f"{type(exc).__name__} (see the exporter log)")
    finally:
        if run.connection is not None:
            run.connection.close()
    if run.tlsa is not None:
        # A conversation cut short (no STARTTLS, a failed handshake) still gets DANE's verdict.
        try:
            async with asyncio.timeout_at(run.deadline):
                await _judge_dane(run)
        except TimeoutError:
            run.tlsa.cancel()
            if not any(failure.reason is Reason.TIMEOUT for failure in run.failures):
                run.fail(Reason.TIMEOUT, "the TLSA lookup did not finish within the timeout", Phase.TLS_HANDSHAKE)
        except Exception as exc:  # a bug of ours, as above
            log.exception("DANE check of target %s failed unexpectedly", run.name)
            run.fail(Reason.INTERNAL_ERROR, f"{type(exc).__name__} (see the exporter log)")
    return run.result()


class _Abort(Exception):
    """Ends the conversation with a failure the probe understands."""

    def __init__(self, reason: Reason, detail: str = "", *, phase: Phase | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        # None: the phase that was running.
        self.phase = phase


class _ProbeRun:
    """Mutable state of one probe in progress; frozen into a ProbeResult at the end."""

    def __init__(
        self, spec: ProbeSpec, tls_client: TlsClient, name: str, *, send_due: bool, keep_transcript: bool
    ) -> None:
        self.spec = spec
        self.tls_client = tls_client
        self.name = name
        self.send_due = send_due
        self.started_at = time.time()
        self._started = time.perf_counter()
        self.deadline = asyncio.get_running_loop().time() + spec.timeout
        self.transcript = Transcript(self._started, enabled=keep_transcript)
        self.current_phase = Phase.CONNECT
        self.phase_durations: dict[Phase, float] = {}
        self.failures: list[Failure] = []
        self.connection: SmtpConnection | None = None
        self.banner: SmtpReply | None = None
        self.ehlo: EhloCapabilities | None = None
        self.starttls_offered: bool | None = None
        self.tls_handshake_succeeded: bool | None = None
        self.tls: TlsSession | None = None
        self.ehlo_after_tls: EhloCapabilities | None = None
        self.auth: AuthOutcome | None = None
        self.send: SendOutcome | None = None
        self.tlsa: asyncio.Future[TlsaLookup] | None = None
        self.dane: DaneVerdict | None = None
        # Certificate failures held back until DANE decides whether they count.
        self.pkix_failures: list[Failure] = []
        self.client_certificate: ClientCertificateOutcome | None = None

    @contextlib.contextmanager
    def phase(self, phase: Phase) -> Iterator[None]:
        self.current_phase = phase
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.phase_durations[phase] = self.phase_durations.get(phase, 0.0) + elapsed

    def fail(self, reason: Reason, detail: str = "", phase: Phase | None = None) -> None:
        failure = Failure(phase or self.current_phase, reason, detail)
        self.failures.append(failure)
        self.transcript.event(f"failed: {reason.value} in {failure.phase.value}" + (f": {detail}" if detail else ""))

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def result(self) -> ProbeResult:
        return ProbeResult(
            started_at=self.started_at,
            finished_at=time.time(),
            duration_seconds=time.perf_counter() - self._started,
            phase_durations=tuple(self.phase_durations.items()),
            failures=tuple(self.failures),
            peer_address=self.connection.peer_address if self.connection else None,
            banner=self.banner,
            ehlo=self.ehlo,
            starttls_offered=self.starttls_offered,
            tls_handshake_succeeded=self.tls_handshake_succeeded,
            tls=self.tls,
            ehlo_after_tls=self.ehlo_after_tls,
            auth=self.auth,
            send=self.send,
            dane=self.dane,
            client_certificate=self.client_certificate,
            transcript=self.transcript.lines(),
        )


async def _converse(run: _ProbeRun) -> None:
    spec = run.spec
    with run.phase(Phase.CONNECT):
        run.connection = connection = await SmtpConnection.open(
            spec.host,
            spec.port,
            family=spec.address_family.socket_family,
            deadline=run.deadline,
            transcript=run.transcript,
            pinned_address=spec.connect_address,
        )
    run.transcript.event(f"connected to {format_endpoint(connection.peer_address, spec.port)}")
    if spec.tls is TlsMode.IMPLICIT:
        await _handshake(run, connection)

    with run.phase(Phase.BANNER):
        run.banner = banner = await _first_reply_after_handshake(run, connection, connection.read_reply())
    if banner.code != SmtpStatus.READY:
        raise _Abort(Reason.BANNER_REJECTED, str(banner))

    run.ehlo = ehlo = await _ehlo(run, connection)
    if spec.tls is TlsMode.STARTTLS:
        await _starttls(run, connection, ehlo)
        if run.tls is not None:
            # RFC 3207 section 4.2: forget what was learned before TLS and ask
            # again. Only after STARTTLS: with implicit TLS the one EHLO already
            # ran over TLS, and servers such as OpenSMTPD refuse a second one.
            run.ehlo_after_tls = await _ehlo(run, connection)
    if spec.auth is not None:
        await _authenticate(run, connection, spec.auth)
    if run.send_due and spec.send is not None and _may_send(run):
        await _send_message(run, connection, spec.send)
    await _quit(run, connection)


async def _starttls(run: _ProbeRun, connection: SmtpConnection, ehlo: EhloCapabilities) -> None:
    """Upgrade to TLS; on a refusal, record it and carry on in plaintext (for QUIT)."""
    run.starttls_offered = ehlo.starttls
    if not ehlo.starttls:
        run.fail(Reason.STARTTLS_NOT_OFFERED, "EHLO reply lists no STARTTLS", phase=Phase.STARTTLS)
        return
    with run.phase(Phase.STARTTLS):
        reply = await connection.command("STARTTLS")
    if reply.code != SmtpStatus.READY:
        run.fail(Reason.STARTTLS_REJECTED, str(reply))
        return
    await _handshake(run, connection)


async def _authenticate(run: _ProbeRun, connection: SmtpConnection, auth: AuthConfig) -> None:
    over_tls = run.tls is not None
    pkix_verified = run.tls is not None and run.tls.trust.trusted and run.tls.hostname_match
    dane_verified = run.dane is not None and run.dane.status is DaneStatus.PASS
    verified = dane_verified if run.dane is not None and run.dane.applies else pkix_verified
    if not verified and not run.spec.allow_plaintext_auth:
        # Credentials sent every minute to whoever answers would be a gift to
        # anyone in the path: they go only where a mail client would send them.
        if over_tls:
            refusal, why = Reason.AUTH_UNVERIFIED_REFUSED, "the server's certificate is not verified"
        else:
            refusal, why = Reason.AUTH_PLAINTEXT_REFUSED, "the connection is not encrypted"
        detail = f"credentials not sent: {why} (allow_plaintext_auth is off)"
        run.auth = AuthOutcome(success=False, mechanism=None, reply=detail)
        run.fail(refusal, detail, phase=Phase.AUTH)
        return
    # Here any EHLO after STARTTLS has succeeded (a failed one aborts the probe).
    ehlo = run.ehlo_after_tls or run.ehlo
    offered = ehlo.auth_mechanisms if ehlo is not None else frozenset()
    mechanism = choose_mechanism(offered, auth.mechanism, over_tls=over_tls)
    if mechanism is None:
        wanted = auth.mechanism.value if auth.mechanism else "PLAIN, LOGIN or CRAM-MD5"
        detail = f"server offers {' '.join(sorted(offered)) or 'no AUTH'}; we need {wanted}"
        run.auth = AuthOutcome(success=False, mechanism=None, reply=detail)
        run.fail(Reason.AUTH_MECHANISM_UNSUPPORTED, detail, phase=Phase.AUTH)
        return
    with run.phase(Phase.AUTH):
        reply = await authenticate(connection, auth, mechanism)
    run.auth = AuthOutcome(success=reply.code == SmtpStatus.AUTH_SUCCEEDED, mechanism=mechanism.value, reply=str(reply))
    if reply.code == SmtpStatus.AUTH_SUCCEEDED:
        return
    if 400 <= reply.code < 500:
        run.fail(Reason.AUTH_TEMPORARY_FAILURE, str(reply))
    elif reply.code == SmtpStatus.PARAMETER_NOT_IMPLEMENTED:
        run.fail(Reason.AUTH_MECHANISM_UNSUPPORTED, str(reply))
    elif reply.code >= 500:
        run.fail(Reason.AUTH_FAILED, str(reply))
    else:
        raise ReplyError(f"unexpected reply to AUTH: {reply}")


def _may_send(run: _ProbeRun) -> bool:
    """A test message goes out only the way real mail from this client would."""
    tls_as_configured = run.spec.tls is TlsMode.NONE or run.tls is not None
    authenticated_if_asked = run.spec.auth is None or (run.auth is not None and run.auth.success)
    return tls_as_configured and authenticated_if_asked


async def _send_message(run: _ProbeRun, connection: SmtpConnection, send: SendConfig) -> None:
    message = build_message(send, target_name=run.name, domain=run.spec.ehlo_name, now=time.time())
    with run.phase(Phase.SEND):
        reason, reply = await _mail_transaction(connection, send, message.data)
    run.send = SendOutcome(
        success=reason is None, finished_at=time.time(), reply=str(reply), message_id=message.message_id
    )
    if reason is not None:
        run.fail(reason, str(reply))


async def _mail_transaction(
    connection: SmtpConnection, send: SendConfig, message: bytes
) -> tuple[Reason | None, SmtpReply]:
    """MAIL FROM, RCPT TO for each recipient, DATA: the failure (None if none) and the deciding reply."""
    reply = await connection.command(f"MAIL FROM:<{send.sender}>")
    if not reply.is_positive_completion():
        return Reason.MAIL_FROM_REJECTED, reply
    for recipient in send.recipients:
        reply = await connection.command(f"RCPT TO:<{recipient}>")
        if not reply.is_positive_completion():
            return Reason.RCPT_REJECTED, reply
    reply = await connection.command("DATA")
    if reply.code != SmtpStatus.START_MAIL_INPUT:
        return Reason.DATA_REJECTED, reply
    connection.send_data(message)
    reply = await connection.read_reply()
    return (None if reply.is_positive_completion() else Reason.DATA_REJECTED), reply


async def _ehlo(run: _ProbeRun, connection: SmtpConnection) -> EhloCapabilities:
    with run.phase(Phase.EHLO):
        reply = await _first_reply_after_handshake(run, connection, connection.command(f"EHLO {run.spec.ehlo_name}"))
    if reply.code != SmtpStatus.COMPLETED:
        raise _Abort(Reason.EHLO_REJECTED, str(reply))
    return parse_ehlo(reply)


async def _handshake(run: _ProbeRun, connection: SmtpConnection) -> None:
    spec = run.spec
    run.tls_handshake_succeeded = False
    with run.phase(Phase.TLS_HANDSHAKE):
        try:
            ssl_object = await connection.start_tls(run.tls_client.handshake_context, spec.server_name)
        except ssl.SSLError as exc:
            _client_certificate_refused_in_handshake(run, connection, exc)
            raise _Abort(Reason.TLS_HANDSHAKE_FAILED, exc.reason or str(exc)) from exc
        except (ConnectionError, OSError) as exc:
            _client_certificate_refused_in_handshake(run, connection, exc)
            detail = "connection lost during the TLS handshake" + (f": {exc}" if str(exc) else "")
            raise _Abort(Reason.TLS_HANDSHAKE_FAILED, detail) from exc
    run.tls_handshake_succeeded = True
    run.tls = session = describe_session(
        ssl_object, server_name=spec.server_name, trust_store=run.tls_client.trust_store
    )
    run.transcript.event(f"TLS established: {session.version} {session.cipher} ({session.cipher_bits} bits)")
    if spec.client_certificate is not None and session.handshake is not None:
        facts = session.handshake
        # Asked for, the verdict is still open: it shows in the next reply.
        run.client_certificate = ClientCertificateOutcome(
            requested=facts.client_certificate_requested, sent=facts.client_certificate_sent, accepted=None
        )
    # Like the certificate verdicts, the policy fails the probe without ending
    # it: the rest of the conversation (AUTH, the test message) is still reported.
    # It holds whatever DANE says: DANE authenticates the server, not the session's strength.
    for failure in requirement_failures(session, spec.require):
        run.fail(failure.reason, failure.detail, phase=failure.phase)
    failures = certificate_failures(session, server_name=spec.server_name, now=time.time())
    if run.tlsa is None:
        for failure in failures:
            run.fail(failure.reason, failure.detail, phase=failure.phase)
        return
    run.pkix_failures = failures
    await _judge_dane(run)


async def _judge_dane(run: _ProbeRun) -> None:
    """DANE's verdict, once: after the handshake, or at the end when no TLS session came about.

    RFC 7672 section 3: with a secure, usable TLSA set DANE alone authenticates
    the server, so the PKIX (trust, hostname, dates) failures do not count then.
    """
    if run.tlsa is None or run.dane is not None:
        return
    lookup = await run.tlsa
    spec = run.spec
    chain = [certificate.der for certificate in run.tls.chain] if run.tls is not None else None
    names = tuple(dict.fromkeys((spec.server_name, spec.host, lookup.base_name)))
    run.dane = verdict = dane_verdict(lookup, chain, reference_names=names, now=time.time())
    run.transcript.event(f"DANE: {verdict.status.value}" + (f": {verdict.detail}" if verdict.detail else ""))
    if not verdict.applies:
        for failure in run.pkix_failures:
            run.fail(failure.reason, failure.detail, phase=failure.phase)
    run.pkix_failures = []
    phase = Phase.TLS_HANDSHAKE
    if verdict.status is DaneStatus.DNS_ERROR:
        run.fail(Reason.DANE_LOOKUP_FAILED, verdict.detail, phase=phase)
    elif verdict.status is DaneStatus.FAIL and chain:
        # Without a chain, the failure to get TLS (no STARTTLS, a failed handshake) is already reported.
        run.fail(Reason.DANE_MISMATCH, verdict.detail, phase=phase)
    elif spec.dane is DaneMode.REQUIRED and not verdict.applies:
        run.fail(Reason.DANE_REQUIRED, f"no secure, usable TLSA set at {lookup.query_name}: {verdict.detail}", phase)


def _client_certificate_refused_in_handshake(run: _ProbeRun, connection: SmtpConnection, error: Exception) -> None:
    """In TLS 1.2 the server judges our certificate before its Finished: an alert then is its verdict.

    Raises _Abort(CLIENT_CERT_REJECTED) when a server that asked for our
    certificate ended the handshake with an alert; returns otherwise.
    """
    tls_object = connection.tls_object
    recorder = handshake_recorder(tls_object) if tls_object is not None else None
    if run.spec.client_certificate is None or recorder is None:
        return
    facts = handshake_facts(recorder, kea="", leaf_key_type="unknown")
    alert = received_alert(error)
    requested, sent = facts.client_certificate_requested, facts.client_certificate_sent
    run.client_certificate = ClientCertificateOutcome(requested, sent, accepted=None)
    if requested and alert is not None:
        run.client_certificate = ClientCertificateOutcome(requested, sent, accepted=False)
        raise _Abort(
            Reason.CLIENT_CERT_REJECTED,
            f"the server refused our client certificate in the handshake: TLS alert {_alert_text(alert)}",
            phase=Phase.TLS_HANDSHAKE,
        ) from error


async def _first_reply_after_handshake(
    run: _ProbeRun, connection: SmtpConnection, exchange: Awaitable[SmtpReply]
) -> SmtpReply:
    """The server's first reply over TLS: where its verdict on our client certificate shows.

    In TLS 1.3 our Certificate goes out after the server's Finished (RFC 8446
    section 4.4), so our handshake ends before the server has judged it; a
    server that refuses it sends an alert, which arrives in place of this
    reply. Postfix (smtpd_tls_req_ccert) completes the handshake in both
    versions and answers an untrusted or missing certificate with a 421.
    """
    outcome = run.client_certificate
    if outcome is None or not outcome.requested or outcome.accepted is not None:
        return await exchange
    try:
        reply = await exchange
    except ConnectionClosed as exc:
        alert = connection.received_alert
        if alert is None:
            raise  # a close without a word is no verdict on the certificate
        run.client_certificate = ClientCertificateOutcome(outcome.requested, outcome.sent, accepted=False)
        raise _Abort(
            Reason.CLIENT_CERT_REJECTED,
            f"the server refused our client certificate after the handshake: TLS alert {_alert_text(alert)}",
            phase=Phase.TLS_HANDSHAKE,
        ) from exc
    accepted = reply.code != SmtpStatus.SERVICE_NOT_AVAILABLE
    run.client_certificate = ClientCertificateOutcome(outcome.requested, outcome.sent, accepted=accepted)
    if not accepted:
        raise _Abort(
            Reason.CLIENT_CERT_REJECTED,
            f"the server ended the session after asking for our client certificate: {reply}",
            phase=Phase.TLS_HANDSHAKE,
        )
    return reply


def _alert_text(openssl_reason: str) -> str:
    """``TLSV1_ALERT_UNKNOWN_CA`` as RFC 8446 names it, with OpenSSL's name: ``unknown_ca (TLSV1_ALERT_UNKNOWN_CA)``."""
    return f"{openssl_reason.partition('_ALERT_')[2].lower()} ({openssl_reason})"


async def _quit(run: _ProbeRun, connection: SmtpConnection) -> None:
    # Stay clear of the probe's deadline: a server that ignores QUIT must not
    # turn a passed probe into a timeout.
    budget = min(QUIT_TIMEOUT_SECONDS, run.remaining() - 0.05)
    if budget <= 0:
        return
    with run.phase(Phase.QUIT):
        try:
            async with asyncio.timeout(budget):
                await connection.command("QUIT")
        except (TimeoutError, OSError, ReplyError, ssl.SSLError) as exc:
            run.transcript.event(f"QUIT not answered cleanly: {exc or type(exc).__name__}")
