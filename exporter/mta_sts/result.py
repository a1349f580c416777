"""What one MTA-STS and TLS-RPT check of a domain found: frozen values for the metrics and ``check``.

The failure vocabulary is part of the metrics contract (``smtp_mta_sts_error_info{reason}``, README).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from exporter.mta_sts.fetch import FetchOutcome
from exporter.mta_sts.policy import StsMode, StsPolicy
from exporter.mta_sts.records import StsRecord, TlsRptRecord


class StsFailure(StrEnum):
    """Why the domain's MTA-STS is broken, named after RFC 8460's policy result types (section 4.3.2.2)."""

    # The _mta-sts TXT record: more than one STSv1 record, no or a malformed id.
    STS_RECORD_INVALID = "sts_record_invalid"
    # No policy body: the host unreachable, not HTTP 200 (a redirect, 404), too large, or the TXT lookup failed.
    STS_POLICY_FETCH_ERROR = "sts_policy_fetch_error"
    # A body that is not a valid policy (syntax, a missing field, not text/plain).
    STS_POLICY_INVALID = "sts_policy_invalid"
    # The policy host's certificate is not valid under WebPKI rules for mta-sts.<domain>.
    STS_WEBPKI_INVALID = "sts_webpki_invalid"


@dataclass(frozen=True)
class KnownPolicy:
    """A valid policy and when it was fetched: what a sender caches (RFC 8461 section 5.1)."""

    policy_id: str
    policy: StsPolicy
    fetched_at: float
    # The policy's content changed while the TXT id stayed the same, at some fetch
    # under this id: senders that cached the earlier content keep it until max_age.
    changed_without_new_id: bool = False

    def expires_at(self) -> float:
        return self.fetched_at + self.policy.max_age_seconds


@dataclass(frozen=True)
class MxCoverage:
    mx: str
    covered: bool


@dataclass(frozen=True)
class MtaStsResult:
    domain: str
    # None when the TXT lookup failed (SERVFAIL, timeout): presence is unknown.
    record: StsRecord | None
    # None when nothing was fetched (no valid record, or the TXT lookup failed).
    fetch: FetchOutcome | None
    # This round's fetch gave a valid policy; None without an STSv1 record.
    policy_valid: bool | None
    # The policy senders apply: this round's, or the last good one while it has not expired.
    known_policy: KnownPolicy | None
    # known_policy is the last good one because this round did not give a valid policy.
    policy_kept: bool
    failure: StsFailure | None
    # For people: what went wrong, in one line.
    detail: str
    # Each MX host of the domain against the policy in effect (enforce or testing only).
    mx_coverage: tuple[MxCoverage, ...]
    # None when the _smtp._tls lookup failed.
    tlsrpt: TlsRptRecord | None
    tlsrpt_detail: str
    timestamp_seconds: float
    duration_seconds: float

    @property
    def record_present(self) -> bool | None:
        return None if self.record is None else self.record.present

    @property
    def mode(self) -> StsMode | None:
        return None if self.known_policy is None else self.known_policy.policy.mode

    def covering(self, mx_hosts: Iterable[str]) -> MtaStsResult:
        """The same result for another list of MX hosts (DNS moves faster than the policy interval)."""
        return replace(self, mx_coverage=mx_coverage(self.known_policy, mx_hosts))


def mx_coverage(known: KnownPolicy | None, mx_hosts: Iterable[str]) -> tuple[MxCoverage, ...]:
    # Mode none tells senders to apply nothing (RFC 8461 section 5), so nothing is covered or uncovered.
    if known is None or known.policy.mode is StsMode.NONE:
        return ()
    return tuple(MxCoverage(mx, known.policy.covers(mx)) for mx in mx_hosts)
