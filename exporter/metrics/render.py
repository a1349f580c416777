"""The /metrics text, rendered from the stored results (Prometheus text format 0.0.4).

Rendering 10,000 targets through prometheus_client's collectors takes
seconds, so we render each target's lines once per new result, keep them
per metric family, and at scrape time only concatenate columns. Families
whose value follows the clock (days to expiry) are computed per scrape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import REGISTRY, generate_latest

from exporter.config.model import ProbeSpec, ScheduledTarget, TlsRequirements
from exporter.dane.verdict import DaneStatus, DaneVerdict
from exporter.dns.mail_domain import DomainExpansion
from exporter.metrics.families import (
    DOMAIN_FAMILIES,
    EXPORTER_FAMILIES,
    FAMILY,
    TARGET_FAMILIES,
    TLS_VERSION_NUMBERS,
    Family,
)
from exporter.metrics.text_format import format_value, label_pairs, sample
from exporter.mta_sts.result import MtaStsResult, mx_coverage
from exporter.probe.result import ProbeResult, Reason, SendOutcome
from exporter.scan.requirements import requirements_met
from exporter.scan.result import ScanResult
from exporter.tls.certificates import days_until
from exporter.tls.ratings import RATING_ORDER, chain_weakest_rating, cipher_rating
from exporter.tls.session import TlsSession

_COLUMN = {family.name: index for index, family in enumerate(TARGET_FAMILIES)}
_DOMAIN_COLUMN = {family.name: index for index, family in enumerate(DOMAIN_FAMILIES)}


class _Put(Protocol):
    def __call__(self, family: str, value: float, label_values: Sequence[str] = ()) -> None: ...


class DomainState(Protocol):
    """What the renderer reads of a domain's last lookup."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def expansion(self) -> DomainExpansion: ...
    @property
    def mta_sts(self) -> MtaStsResult | None: ...


class TargetState(Protocol):
    """What the renderer reads of a scheduled target (the store's records have it)."""

    @property
    def config(self) -> ScheduledTarget: ...
    @property
    def result(self) -> ProbeResult | None: ...
    @property
    def probes_total(self) -> int: ...
    @property
    def failures_total(self) -> Mapping[Reason, int]: ...
    @property
    def last_send(self) -> SendOutcome | None: ...
    @property
    def scan(self) -> ScanResult | None: ...


@dataclass(frozen=True)
class HistogramSnapshot:
    # (upper bound, cumulative count), the last bound +Inf.
    buckets: tuple[tuple[float, int], ...]
    total: float
    observations: int


@dataclass(frozen=True)
class ExporterStatus:
    version: str
    targets: int
    config_last_reload_successful: bool
    config_last_reload_success_timestamp: float
    scheduler_lag: HistogramSnapshot
    probes_in_flight: int
    # Every asyncio task alive (target loops, probes, HTTP handlers): flat
    # over a long run, or something leaks.
    asyncio_tasks: int = 0
    probe_slots: int = 0
    # SkipReason value -> count since start.
    probes_skipped: Mapping[str, int] = field(default_factory=dict)
    domains: int = 0


@dataclass(frozen=True)
class _Block:
    config: ScheduledTarget
    result: ProbeResult | None
    probes_total: int
    last_send: SendOutcome | None
    scan: ScanResult | None
    labels: str
    columns: tuple[str, ...]
    not_after: float | None
    # The scan's own columns, kept to be reused by every probe until the next scan.
    scan_columns: tuple[str, ...] | None = None


class MetricsRenderer:
    """Per-target blocks, rendered when a result arrives; a scrape only joins them.

    Each family keeps its own column, target name -> that target's lines, in
    target order; a scrape joins each column once. With 10,000 targets and a
    scrape every 15 s, rendering at scrape time would mean rendering the
    2,500 blocks whose results changed since the last scrape.
    """

    def __init__(self) -> None:
        self._blocks: dict[str, _Block] = {}
        self._columns: list[dict[str, str]] = [{} for _ in TARGET_FAMILIES]
        # Domain name -> (the lookup and MTA-STS check rendered, its lines per family); a lookup
        # every few minutes per domain is rare enough to render the domain's block whole.
        self._domains: dict[str, tuple[tuple[DomainExpansion, MtaStsResult | None], tuple[str, ...]]] = {}

    def set_targets(self, states: Sequence[TargetState]) -> None:
        """Adopt the target list (at load and reload), keeping blocks that are still right."""
        self._blocks = {state.config.name: self._block(state) for state in states}
        # Only targets that have lines in a family are in its column: with 50
        # families and 10,000 targets most cells are empty, and an entry each
        # would cost tens of megabytes.
        self._columns = [
            {name: block.columns[index] for name, block in self._blocks.items() if block.columns[index]}
            for index in range(len(TARGET_FAMILIES))
        ]

    def set_domains(self, states: Sequence[DomainState]) -> None:
        """Adopt the domains' last lookups, rendering those that are new."""
        domains: dict[str, tuple[tuple[DomainExpansion, MtaStsResult | None], tuple[str, ...]]] = {}
        for state in states:
            cached = self._domains.get(state.name)
            if cached is not None and cached[0][0] is state.expansion and cached[0][1] is state.mta_sts:
                domains[state.name] = cached
            else:
                labels = label_pairs([("target", state.name), *state.labels])
                rendered = render_domain(state.expansion, labels, state.mta_sts)
                domains[state.name] = ((state.expansion, state.mta_sts), rendered)
        self._domains = domains

    def refresh(self, state: TargetState) -> None:
        """Render ``state``'s block now, after a new result."""
        name = state.config.name
        if name not in self._blocks:
            return  # removed by a reload while its probe ran
        block = self._blocks[name] = self._block(state)
        for column, lines in zip(self._columns, block.columns, strict=True):
            if lines:
                column[name] = lines
            else:
                column.pop(name, None)

    def render(self, status: ExporterStatus, now: float) -> list[Sequence[str]]:
        """The exposition as chunks to be sent in order, about one per family.

        A chunk is the strings that make it, taken now (so one scrape sees one
        state), to be joined when it is sent: with 10,000 targets the joined
        text is 25 MB, and only one family of it need exist at a time.
        """
        chunks: list[Sequence[str]] = []
        for family, column in zip(TARGET_FAMILIES, self._columns, strict=True):
            if family.per_scrape:
                text = _expiry_days(self._blocks.values(), now)
                if text:
                    chunks.append((family.header(), text))
            elif column:
                chunks.append((family.header(), *column.values()))
        for index, family in enumerate(DOMAIN_FAMILIES):
            text = "".join(columns[index] for _, columns in self._domains.values())
            if text:
                chunks.append((family.header(), text))
        chunks.append((render_exporter(status),))
        chunks.append((generate_latest(REGISTRY).decode("utf-8"),))
        return chunks

    def _block(self, state: TargetState) -> _Block:
        cached = self._blocks.get(state.config.name)
        if (
            cached is not None
            and cached.config is state.config
            and cached.result is state.result
            and cached.probes_total == state.probes_total
            and cached.last_send is state.last_send
            and cached.scan is state.scan
        ):
            return cached
        labels = target_labels(state.config)
        scan_columns = None
        if state.scan is not None:
            # A scan comes every few hours, a probe every minute: rendering its 40-odd
            # series again for each probe cost about 0.3 ms.
            if cached is not None and cached.scan is state.scan and cached.config is state.config:
                scan_columns = cached.scan_columns
            if scan_columns is None:
                scan_columns = render_scan(state.scan, state.config.spec.require, labels)
        columns = render_target(state, labels, scan_columns)
        leaf = state.result.tls.leaf if state.result and state.result.tls else None
        not_after = leaf.not_after if leaf is not None else None
        return _Block(
            state.config,
            state.result,
            state.probes_total,
            state.last_send,
            state.scan,
            labels,
            columns,
            not_after,
            scan_columns,
        )


def target_labels(target: ScheduledTarget) -> str:
    """The label pairs every series of ``target`` carries, rendered once."""
    return label_pairs([*target.identity_labels, *target.labels])


def render_domain(expansion: DomainExpansion, labels: str, mta_sts: MtaStsResult | None = None) -> tuple[str, ...]:
    """One string of sample lines per family in DOMAIN_FAMILIES."""
    columns = [""] * len(DOMAIN_FAMILIES)

    def put(family: str, value: float, label_values: Sequence[str] = ()) -> None:
        extra = zip(FAMILY[family].labels, label_values, strict=True)
        columns[_DOMAIN_COLUMN[family]] += sample(family, labels, value, extra)

    put("smtp_domain_lookup_success", expansion.success)
    if expansion.reason is not None:
        put("smtp_domain_lookup_error_info", 1, (expansion.reason.value,))
    for host in expansion.mx_hosts:
        put("smtp_domain_mx_info", 1, (host.name, str(host.preference)))
    for host in expansion.mx_hosts:
        put("smtp_domain_mx_addresses", len(host.addresses), (host.name,))
    put("smtp_domain_mx_implicit", expansion.implicit_mx)
    put("smtp_domain_null_mx", expansion.null_mx)
    put("smtp_domain_lookup_timestamp_seconds", expansion.timestamp_seconds)
    put("smtp_domain_lookup_duration_seconds", expansion.duration_seconds)
    if mta_sts is not None:
        _put_mta_sts(put, mta_sts, [host.name for host in expansion.mx_hosts])
    return tuple(columns)


def _put_mta_sts(put: _Put, result: MtaStsResult, mx_hosts: Sequence[str]) -> None:
    if result.record_present is not None:
        put("smtp_mta_sts_record_present", result.record_present)
    if result.policy_valid is not None:
        put("smtp_mta_sts_policy_valid", result.policy_valid)
    known = result.known_policy
    if known is not None:
        put("smtp_mta_sts_policy_info", 1, (known.policy_id, known.policy.mode.value))
        put("smtp_mta_sts_max_age_seconds", known.policy.max_age_seconds)
        put("smtp_mta_sts_policy_fetch_timestamp_seconds", known.fetched_at)
    if result.failure is not None:
        put("smtp_mta_sts_error_info", 1, (result.failure.value,))
    # Against the MX hosts of the latest lookup, which may be newer than the check.
    for coverage in mx_coverage(known, mx_hosts):
        put("smtp_mta_sts_mx_covered", coverage.covered, (coverage.mx,))
    tlsrpt = result.tlsrpt
    if tlsrpt is not None:
        put("smtp_tlsrpt_record_present", tlsrpt.present)
        put("smtp_tlsrpt_record_valid", tlsrpt.valid)
        put("smtp_tlsrpt_rua_count", len(tlsrpt.rua))


def render_target(state: TargetState, labels: str, scan_columns: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """One string of sample lines per family in TARGET_FAMILIES ("" when absent).

    ``scan_columns`` is ``render_scan`` of ``state.scan`` when the caller has it already.
    """
    out = _Columns(labels)
    target = state.config
    _put_spec(out, target.spec)
    out.put("smtp_target_interval_seconds", target.interval)
    if state.last_send is not None:
        out.put("smtp_send_success", state.last_send.success)
        out.put("smtp_send_timestamp_seconds", state.last_send.finished_at)
    if state.result is not None:
        _put_result(out, state.result)
        out.put("smtp_probes_total", state.probes_total)
        for reason, count in sorted(state.failures_total.items()):
            out.put("smtp_probe_failures_total", count, (reason.value,))
    if state.scan is None:
        return tuple(out.columns)
    if scan_columns is None:
        scan_columns = render_scan(state.scan, target.spec.require, labels)
    # Most of either side is "", and "" + text is text itself, not a copy.
    return tuple(mine + scanned for mine, scanned in zip(out.columns, scan_columns, strict=True))


def render_scan(scan: ScanResult, require: TlsRequirements | None, labels: str) -> tuple[str, ...]:
    """The capability scan's sample lines, one string per family in TARGET_FAMILIES."""
    out = _Columns(labels)
    _put_scan(out, scan, require)
    return tuple(out.columns)


def render_probe(spec: ProbeSpec, result: ProbeResult, now: float) -> str:
    """The metrics of one on-demand probe, without the target label (Prometheus adds instance)."""
    return render_probes([(spec, result, ())], now)


def render_probes(
    probes: Sequence[tuple[ProbeSpec, ProbeResult, Sequence[tuple[str, str]]]],
    now: float,
    domain: DomainExpansion | None = None,
) -> str:
    """On-demand probes (a domain's pairs, labelled mx and address) and the domain's lookup, if any."""
    columns = [""] * len(TARGET_FAMILIES)
    for spec, result, labels in probes:
        out = _Columns(label_pairs(labels))
        _put_spec(out, spec)
        _put_result(out, result)
        leaf = result.tls.leaf if result.tls else None
        if leaf is not None and leaf.not_after is not None:
            out.put("smtp_cert_expiry_days", days_until(leaf.not_after, now))
        columns = [mine + theirs for mine, theirs in zip(columns, out.columns, strict=True)]
    parts: list[str] = []
    for family, text in zip(TARGET_FAMILIES, columns, strict=True):
        if text and not family.schedule_only:
            parts.append(_on_demand_header(family) + text)
    if domain is not None:
        for family, text in zip(DOMAIN_FAMILIES, render_domain(domain, ""), strict=True):
            if text:
                parts.append(family.header() + text)
    return "".join(parts)


def _on_demand_header(family: Family) -> str:
    return family.header(family.help.replace("the last scheduled probe", "this probe"))


class _Columns:
    """Sample lines by family; label values come in the order the family table gives its labels."""

    def __init__(self, labels: str) -> None:
        self.labels = labels
        self.columns = [""] * len(TARGET_FAMILIES)

    def put(self, family: str, value: float, label_values: Sequence[str] = ()) -> None:
        extra = zip(FAMILY[family].labels, label_values, strict=True)
        self.columns[_COLUMN[family]] += sample(family, self.labels, value, extra)


def _put_spec(out: _Columns, spec: ProbeSpec) -> None:
    out.put("smtp_target_info", 1, (spec.host, str(spec.port), spec.tls.value, spec.server_name))
    # A fact of the config, not of a probe: there before the first probe, and
    # whether or not the server is reachable, so its expiry alert never waits.
    if spec.client_certificate is not None:
        out.put("smtp_tls_client_cert_not_after_timestamp_seconds", spec.client_certificate.not_after)


def _put_result(out: _Columns, result: ProbeResult) -> None:
    out.put("smtp_probe_success", result.success)
    out.put("smtp_probe_duration_seconds", result.duration_seconds)
    for phase, seconds in result.phase_durations:
        out.put("smtp_probe_phase_duration_seconds", seconds, (phase.value,))
    out.put("smtp_probe_timestamp_seconds", result.finished_at)
    for phase, reason in dict.fromkeys((failure.phase, failure.reason) for failure in result.failures):
        out.put("smtp_probe_error_info", 1, (phase.value, reason.value))
    if result.starttls_offered is not None:
        out.put("smtp_starttls_offered", result.starttls_offered)
    if result.tls_handshake_succeeded is not None:
        out.put("smtp_tls_handshake_success", result.tls_handshake_succeeded)
    if result.tls is not None:
        _put_tls_session(out, result.tls)
    if result.dane is not None:
        _put_dane(out, result.dane)
    client_certificate = result.client_certificate
    if client_certificate is not None:
        if result.tls is None or result.tls.handshake is None:
            # A handshake that failed after the server's CertificateRequest:
            # the session is gone, the request was recorded.
            out.put("smtp_tls_client_certificate_requested", client_certificate.requested)
        if client_certificate.requested and client_certificate.accepted is not None:
            out.put("smtp_tls_client_certificate_accepted", client_certificate.accepted)
    ehlo = result.effective_ehlo
    if ehlo is not None:
        for mechanism in sorted(ehlo.auth_mechanisms):
            out.put("smtp_auth_mechanism_offered", 1, (mechanism,))
    if result.auth is not None:
        out.put("smtp_auth_success", result.auth.success)


def _put_tls_session(out: _Columns, tls: TlsSession) -> None:
    out.put("smtp_tls_version_info", 1, (tls.version,))
    if tls.version in TLS_VERSION_NUMBERS:
        out.put("smtp_tls_version", TLS_VERSION_NUMBERS[tls.version])
    out.put("smtp_tls_cipher_info", 1, (tls.cipher,))
    out.put("smtp_tls_cipher_bits", tls.cipher_bits)
    out.put("smtp_tls_cipher_rating_info", 1, (cipher_rating(tls.cipher).value,))
    facts = tls.handshake
    if facts is not None:
        if facts.group is not None:
            out.put("smtp_tls_key_exchange_info", 1, (facts.group,))
        if facts.key_exchange_bits is not None:
            out.put("smtp_tls_key_exchange_bits", facts.key_exchange_bits)
        if facts.signature_scheme is not None:
            out.put("smtp_tls_signature_info", 1, (facts.signature_scheme,))
        out.put("smtp_tls_client_certificate_requested", facts.client_certificate_requested)
    out.put("smtp_cert_trusted", tls.trust.trusted)
    out.put("smtp_cert_hostname_match", tls.hostname_match)
    leaf = tls.leaf
    if leaf is None:
        return
    if leaf.not_before is not None:
        out.put("smtp_cert_not_before_timestamp_seconds", leaf.not_before)
    if leaf.not_after is not None:
        out.put("smtp_cert_not_after_timestamp_seconds", leaf.not_after)
    expiries = [certificate.not_after for certificate in tls.chain if certificate.not_after is not None]
    if expiries:
        out.put("smtp_cert_chain_earliest_not_after_timestamp_seconds", min(expiries))
    out.put(
        "smtp_cert_info",
        1,
        (
            leaf.subject,
            leaf.issuer,
            leaf.serial,
            leaf.fingerprint_sha256,
            leaf.fingerprint_sha1,
            ",".join(leaf.subject_alternative_names),
            leaf.key_type,
            str(leaf.key_bits),
            leaf.signature_algorithm,
        ),
    )
    for depth, certificate in enumerate(tls.chain):
        if certificate.key_bits:
            out.put("smtp_cert_chain_key_bits", certificate.key_bits, (str(depth),))
    weakest = chain_weakest_rating(tls.chain)
    if weakest is not None:
        out.put("smtp_cert_chain_weakest_rating_info", 1, (weakest.value,))


def _put_scan(out: _Columns, scan: ScanResult, require: TlsRequirements | None) -> None:
    out.put("smtp_tls_scan_success", scan.success)
    out.put("smtp_tls_scan_timestamp_seconds", scan.timestamp + scan.duration)
    out.put("smtp_tls_scan_duration_seconds", scan.duration)
    if not scan.success:
        return  # a scan cut short knows nothing for certain: no 0s that read as "not accepted"
    for scanned in scan.versions:
        out.put("smtp_tls_version_accepted", scanned.accepted, (scanned.version.value,))
    for group, accepted in scan.group_verdicts().items():
        out.put("smtp_tls_group_accepted", accepted, (group,))
    for scanned in scan.versions:
        if scanned.accepted:
            for rating in RATING_ORDER:
                count = sum(1 for suite in scanned.suites if suite.rating is rating)
                out.put("smtp_tls_ciphers_accepted", count, (scanned.version.value, rating.value))
    # None: the question does not apply (TLS 1.3 only; all suites on one side of the order test).
    for family, verdict in (
        ("smtp_tls_cipher_server_order", scan.server_cipher_order),
        ("smtp_tls_secure_renegotiation", scan.secure_renegotiation),
        ("smtp_tls_extended_master_secret", scan.extended_master_secret),
        ("smtp_tls_compression", scan.compression),
    ):
        if verdict is not None:
            out.put(family, verdict)
    for requirement, met in requirements_met(scan, require):
        out.put("smtp_tls_scan_requirement_met", met, (requirement,))


def _put_dane(out: _Columns, dane: DaneVerdict) -> None:
    out.put("smtp_dane_status_info", 1, (dane.status.value,))
    if dane.lookup.secure:
        for kind, count in dane.records_by_kind().items():
            out.put("smtp_dane_tlsa_records", count, tuple(str(part) for part in kind))
    if not dane.applies:
        return
    out.put("smtp_dane_match", dane.status is DaneStatus.PASS)
    for match in dane.matches:
        out.put("smtp_dane_match_info", 1, (*(str(part) for part in match.kind), str(match.depth)))
    out.put("smtp_dane_rollover_ready", dane.rollover_ready)
    if dane.matches:
        out.put("smtp_dane_renewal_safe", dane.renewal_safe)


def _expiry_days(blocks: Iterable[_Block], now: float) -> str:
    # The one value that changes with every scrape: kept to plain arithmetic
    # and repr(), as it runs once per target per scrape.
    return "".join(
        f"smtp_cert_expiry_days{{{block.labels}}} {days_until(block.not_after, now)!r}\n"
        for block in blocks
        if block.not_after is not None
    )


def render_exporter(status: ExporterStatus) -> str:
    """The exporter's own families, in the order EXPORTER_FAMILIES lists them."""
    values: dict[str, list[str]] = {
        "smtp_exporter_build_info": [sample("smtp_exporter_build_info", "", 1, (("version", status.version),))],
        "smtp_exporter_targets": [sample("smtp_exporter_targets", "", status.targets)],
        "smtp_exporter_domains": [sample("smtp_exporter_domains", "", status.domains)],
        "smtp_exporter_config_last_reload_successful": [
            sample("smtp_exporter_config_last_reload_successful", "", status.config_last_reload_successful)
        ],
        "smtp_exporter_config_last_reload_success_timestamp_seconds": [
            sample(
                "smtp_exporter_config_last_reload_success_timestamp_seconds",
                "",
                status.config_last_reload_success_timestamp,
            )
        ],
        "smtp_exporter_probes_in_flight": [sample("smtp_exporter_probes_in_flight", "", status.probes_in_flight)],
        "smtp_exporter_probe_slots": [sample("smtp_exporter_probe_slots", "", status.probe_slots)],
        "smtp_exporter_probes_skipped_total": [
            sample("smtp_exporter_probes_skipped_total", "", count, (("reason", reason),))
            for reason, count in sorted(status.probes_skipped.items())
        ],
        "smtp_exporter_asyncio_tasks": [sample("smtp_exporter_asyncio_tasks", "", status.asyncio_tasks)],
        "smtp_exporter_scheduler_lag_seconds": _histogram("smtp_exporter_scheduler_lag_seconds", status.scheduler_lag),
    }
    return "".join(family.header() + "".join(values[family.name]) for family in EXPORTER_FAMILIES)


def _histogram(name: str, snapshot: HistogramSnapshot) -> list[str]:
    lines = [
        sample(f"{name}_bucket", "", count, (("le", "+Inf" if math.isinf(bound) else format_value(bound)),))
        for bound, count in snapshot.buckets
    ]
    lines.append(sample(f"{name}_sum", "", snapshot.total))
    lines.append(sample(f"{name}_count", "", snapshot.observations))
    return lines
