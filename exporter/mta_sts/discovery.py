"""One MTA-STS and TLS-RPT check of a domain, the way a sender discovers the policy (RFC 8461 sections 3 and 5).

Unlike a sender we fetch the policy every time, not only when the TXT id
changes: a policy host whose certificate lapsed must be seen before the
senders' caches expire. Like a sender we keep the last good policy while
fetches fail, until its max_age runs out.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence

from dns.rdatatype import RdataType
from dns.rdtypes.ANY.TXT import TXT

from exporter.dns.resolver import DnsAnswer, DnsResolver, DnsStatus
from exporter.mta_sts.fetch import POLICY_PATH, FetchOutcome, FetchProblem, fetch_policy
from exporter.mta_sts.policy import PolicyProblem, parse_policy
from exporter.mta_sts.records import parse_sts_records, parse_tlsrpt_records
from exporter.mta_sts.result import KnownPolicy, MtaStsResult, StsFailure, mx_coverage

# RFC 8461 section 3.2: the policy "MUST" be served as text/plain; senders may refuse anything else.
_MEDIA_TYPE = "text/plain"


async def discover_mta_sts(
    resolver: DnsResolver,
    domain: str,
    mx_hosts: Sequence[str],
    *,
    previous: KnownPolicy | None,
    context: ssl.SSLContext,
    deadline: float,
) -> MtaStsResult:
    """Records, policy and coverage of ``domain`` by ``deadline`` (loop time); failures are in the result."""
    timestamp = time.time()
    started = time.monotonic()
    domain = domain.lower().rstrip(".")
    sts_answer, tlsrpt_answer = await asyncio.gather(
        resolver.lookup(f"_mta-sts.{domain}", RdataType.TXT), resolver.lookup(f"_smtp._tls.{domain}", RdataType.TXT)
    )
    # A cached policy is applied until it expires (section 5.1); so is ours.
    kept = previous if previous is not None and previous.expires_at() > timestamp else None
    sts_texts = _txt_texts(sts_answer)
    record = None if sts_texts is None else parse_sts_records(sts_texts)
    fetch: FetchOutcome | None = None
    policy_valid: bool | None = None
    known = kept
    failure: StsFailure | None = None
    if record is None:
        failure = StsFailure.STS_POLICY_FETCH_ERROR
        detail = f"TXT lookup of _mta-sts.{domain} failed: {_lookup_problem(sts_answer)}"
    elif not record.present:
        detail = f"no TXT record at _mta-sts.{domain} begins with v=STSv1"
    elif not record.valid or record.policy_id is None:
        policy_valid = False
        failure = StsFailure.STS_RECORD_INVALID
        detail = f"_mta-sts.{domain}: {record.problem}"
    else:
        fetch = await fetch_policy(resolver, domain, deadline=deadline, context=context)
        policy_valid, known, failure, detail = _judge_fetch(fetch, record.policy_id, kept, timestamp)
    if known is kept and kept is not None and failure is not None:
        detail += f"; the last good policy (id {kept.policy_id}) stays in effect until it expires"
    tlsrpt_texts = _txt_texts(tlsrpt_answer)
    tlsrpt = None if tlsrpt_texts is None else parse_tlsrpt_records(tlsrpt_texts)
    if tlsrpt is None:
        tlsrpt_detail = f"TXT lookup of _smtp._tls.{domain} failed: {_lookup_problem(tlsrpt_answer)}"
    else:
        tlsrpt_detail = tlsrpt.problem
    return MtaStsResult(
        domain=domain,
        record=record,
        fetch=fetch,
        policy_valid=policy_valid,
        known_policy=known,
        policy_kept=known is not None and known is kept,
        failure=failure,
        detail=detail,
        mx_coverage=mx_coverage(known, mx_hosts),
        tlsrpt=tlsrpt,
        tlsrpt_detail=tlsrpt_detail,
        timestamp_seconds=timestamp,
        duration_seconds=time.monotonic() - started,
    )


def _judge_fetch(
    fetch: FetchOutcome, policy_id: str, kept: KnownPolicy | None, now: float
) -> tuple[bool, KnownPolicy | None, StsFailure | None, str]:
    """(policy valid, policy in effect, failure, detail) after a fetch under ``policy_id``."""
    url = f"https://{fetch.policy_host}{POLICY_PATH}"
    if fetch.body is None:
        failure = (
            StsFailure.STS_WEBPKI_INVALID
            if fetch.problem is FetchProblem.WEBPKI_INVALID
            else StsFailure.STS_POLICY_FETCH_ERROR
        )
        where = f" from {fetch.address}" if fetch.address else ""
        return False, kept, failure, f"{url}{where}: {fetch.detail}"
    media_type = (fetch.content_type or "").partition(";")[0].strip().lower()
    if media_type != _MEDIA_TYPE:
        return False, kept, StsFailure.STS_POLICY_INVALID, f"{url}: Content-Type {fetch.content_type!r}, not text/plain"
    parsed = parse_policy(fetch.body)
    if isinstance(parsed, PolicyProblem):
        return False, kept, StsFailure.STS_POLICY_INVALID, f"{url}: {parsed.detail}"
    changed = False
    if kept is not None and kept.policy_id == policy_id:
        changed = kept.changed_without_new_id or kept.policy != parsed
    known = KnownPolicy(policy_id, parsed, now, changed)
    detail = f"policy id {policy_id}, mode {parsed.mode}"
    if changed:
        detail += f"; the policy changed but the TXT id stayed {policy_id}: senders keep the old one until max_age"
    return True, known, None, detail


def _txt_texts(answer: DnsAnswer) -> list[str] | None:
    """Each TXT record's strings joined, as RFC 8461 section 3.1 asks; None when the lookup failed."""
    if answer.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA):
        return []
    if answer.status is not DnsStatus.OK:
        return None
    # Undecodable octets become U+FFFD, which no record grammar accepts.
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer.records if isinstance(record, TXT)]


def _lookup_problem(answer: DnsAnswer) -> str:
    extra = f" ({answer.extended_error})" if answer.extended_error else ""
    return f"{answer.status.upper()}{extra}"
