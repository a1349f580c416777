"""What the daemon keeps in the state file, one ``Section`` per check.

A check adds its own in a few lines: a ``Section`` here (its name and frozen
result type), a snapshot of its current results registered with the state
store, and the restored results handed to it at start (daemon.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from exporter.dns.mail_domain import DomainExpansion, MxHost
from exporter.mta_sts.result import MtaStsResult
from exporter.probe.result import AuthOutcome, Phase, ProbeResult, Reason, SendOutcome
from exporter.scan.result import ScanResult
from exporter.state.store import Section

WITHHELD = "(server text not kept across restarts)"


# AUTH failures whose detail the exporter writes itself, before any credential is sent.
_OWN_TEXT = frozenset(
    {Reason.AUTH_PLAINTEXT_REFUSED, Reason.AUTH_UNVERIFIED_REFUSED, Reason.AUTH_MECHANISM_UNSUPPORTED}
)
_AUTH_REASONS = _OWN_TEXT | {Reason.AUTH_FAILED, Reason.AUTH_TEMPORARY_FAILURE}


def without_auth_text(result: ProbeResult) -> ProbeResult:
    """The result without the server's text in answer to AUTH.

    That reply follows our credentials, and a broken server may echo them (a
    501 quoting the AUTH PLAIN argument): only its code is kept, so no
    password, nor its base64, can reach the disk whatever the server says.
    """
    touched = [failure for failure in result.failures if failure.phase is Phase.AUTH or failure.reason in _AUTH_REASONS]
    if result.auth is None and not touched:
        return result
    auth = result.auth
    if auth is not None and auth.mechanism is not None:  # None: nothing was sent, the reply is our own text
        auth = AuthOutcome(auth.success, auth.mechanism, _withheld(auth.reply, own_text=False))
    failures = tuple(
        dataclasses.replace(failure, detail=_withheld(failure.detail, own_text=failure.reason in _OWN_TEXT))
        if failure in touched
        else failure
        for failure in result.failures
    )
    return dataclasses.replace(result, auth=auth, failures=failures)


def _withheld(text: str, *, own_text: bool) -> str:
    # A server reply starts with its code; without one, the text is the exporter's
    # own explanation (no mechanism in common, plaintext refused) or an error
    # quoting server octets (a malformed reply), which is not kept either.
    code = text[:3]
    if code.isdigit():
        return f"{code} {WITHHELD}"
    return text if own_text else WITHHELD


@dataclass(frozen=True)
class EntryLookup:
    """The last DNS lookup of a domain entry (``expansion``) or an ``addresses: all`` host (``host``)."""

    looked_up_at: float
    expansion: DomainExpansion | None = None
    host: MxHost | None = None


# Keyed by target name (pairs included); config: the target's ProbeSpec.
# Each target's result is replaced every interval, about as often as the file is
# written: its text is encoded afresh (10,000 results: about 1 s of CPU per write)
# rather than kept (13 MiB at 10,000 targets, compressed).
PROBE_RESULTS = Section("probe_results", ProbeResult, prepare=without_auth_text, remember_encoded=False)
# The last test message of each target: sends are hours apart, and the next is due an interval after it.
TEST_MESSAGES = Section("test_messages", SendOutcome)
# The capability scan of each target, every few hours; the next is due an interval after the kept one.
TLS_SCANS = Section("tls_scans", ScanResult)
# Keyed by entry name; config: the DomainEntry or HostAddressesEntry. Pairs are rebuilt from it.
DNS_LOOKUPS = Section("dns_lookups", EntryLookup)
# Keyed by domain entry name; config: the DomainEntry. The next check is due an interval after the kept one,
# and the kept policy is what the entry's pairs are held to until then, as senders hold to their cached copy.
MTA_STS_CHECKS = Section("mta_sts_checks", MtaStsResult)
