"""What an MTA-STS policy in enforce mode does to one (MX host, address) pair (RFC 8461 section 4). Pure.

A sender that applies the policy delivers only to an MX host the policy's
patterns match, over TLS with a certificate that is trusted and names that
host; otherwise it does not deliver at all. In testing mode it delivers anyway
(and reports through TLS-RPT), so testing mode fails nothing here.
"""

from __future__ import annotations

from dataclasses import replace

from exporter.mta_sts.policy import StsMode
from exporter.mta_sts.result import KnownPolicy
from exporter.probe.result import Failure, Phase, ProbeResult, Reason


def sts_failures(known: KnownPolicy | None, mx_host: str, result: ProbeResult) -> tuple[Failure, ...]:
    """The failures the policy in effect adds to a pair's probe result (none unless mode is enforce)."""
    if known is None or known.policy.mode is not StsMode.ENFORCE:
        return ()
    # The phase is the handshake: that is where a sender validates the MX host (section 4.1 and 4.2).
    failures: list[Failure] = []
    if not known.policy.covers(mx_host):
        patterns = ", ".join(known.policy.mx_patterns)
        failures.append(
            Failure(
                Phase.TLS_HANDSHAKE,
                Reason.STS_MX_NOT_COVERED,
                f"{mx_host} matches no mx pattern of the enforced MTA-STS policy (id {known.policy_id}: {patterns})",
            )
        )
    session = result.tls
    if session is not None and not (session.trust.trusted and session.hostname_match):
        failures.append(
            Failure(
                Phase.TLS_HANDSHAKE,
                Reason.STS_WEBPKI_INVALID,
                f"the MTA-STS policy is enforced and the certificate is not trusted for {mx_host}: senders refuse it",
            )
        )
    return tuple(failures)


def with_sts_failures(known: KnownPolicy | None, mx_host: str, result: ProbeResult) -> ProbeResult:
    """``result`` with the policy's failures added; the same object when there are none."""
    failures = sts_failures(known, mx_host, result)
    if not failures:
        return result
    return replace(result, failures=(*result.failures, *failures))
