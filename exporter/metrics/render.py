"""The /metrics text, rendered from the stored results (Prometheus text format 0.0.4).

Rendering 10,000 targets through prometheus_client's collectors takes
seconds, so we render each target's lines once per new result, keep them
per metric family, and at scrape time only concatenate columns. The one
series that depends on the clock (days to expiry) is computed per scrape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import REGISTRY, generate_latest

from exporter.config.loader import TargetConfig
from exporter.probe.result import ProbeResult, SendOutcome, TlsSession
from exporter.runtime.scheduler import LagHistogram
from exporter.runtime.store import TargetRecord
from exporter.tls.session import TLS_VERSION_NUMBERS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Certificates can carry 16 KB subjects or hundreds of SANs; label values
# stay readable and bounded.
MAX_LABEL_VALUE_CHARS = 1024
_LAST = "from the last scheduled probe"


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    help: str

    def header(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n"


# Per-target families in exposition order. The tuple index is the column
# each target's cached block keeps its lines in.
TARGET_FAMILIES = (
    Family("smtp_probe_success", "gauge", f"1 if every check the target asks for passed, {_LAST}."),
    Family("smtp_probe_duration_seconds", "gauge", f"Total duration of the probe, {_LAST}."),
    Family("smtp_probe_phase_duration_seconds", "gauge", f"Duration of each phase that ran, {_LAST}."),
    Family("smtp_probe_timestamp_seconds", "gauge", "Unix time at which the last scheduled probe finished."),
    Family("smtp_probe_error_info", "gauge", f"1 for each check that failed and why, {_LAST}."),
    Family("smtp_probes_total", "counter", "Scheduled probes of the target since the exporter started."),
    Family("smtp_probe_failures_total", "counter", "Scheduled probes that failed, by reason, since start."),
    Family("smtp_starttls_offered", "gauge", f"1 if the EHLO reply offered STARTTLS, {_LAST}."),
    Family("smtp_tls_handshake_success", "gauge", f"1 if the TLS handshake completed, {_LAST}."),
    Family("smtp_tls_version_info", "gauge", f"Negotiated TLS version as OpenSSL names it, {_LAST}."),
    Family("smtp_tls_version", "gauge", f"Negotiated TLS version as a number (1.0 to 1.3), {_LAST}."),
    Family("smtp_tls_cipher_info", "gauge", f"Negotiated cipher suite as OpenSSL names it, {_LAST}."),
    Family("smtp_tls_cipher_bits", "gauge", f"Secret bits of the negotiated cipher (its strength), {_LAST}."),
    Family("smtp_cert_not_before_timestamp_seconds", "gauge", f"Leaf certificate notBefore, {_LAST}."),
    Family("smtp_cert_not_after_timestamp_seconds", "gauge", f"Leaf certificate notAfter, {_LAST}."),
    Family(
        "smtp_cert_expiry_days",
        "gauge",
        f"Days until the leaf certificate expires, computed at scrape time (negative once expired), {_LAST}.",
    ),
    Family(
        "smtp_cert_chain_earliest_not_after_timestamp_seconds",
        "gauge",
        f"Earliest notAfter among the presented certificates, {_LAST}.",
    ),
    Family("smtp_cert_trusted", "gauge", f"1 if the presented chain validates to a trust anchor, {_LAST}."),
    Family("smtp_cert_hostname_match", "gauge", f"1 if the server name matches the leaf certificate, {_LAST}."),
    Family("smtp_cert_info", "gauge", f"Leaf certificate details, {_LAST}."),
    Family(
        "smtp_auth_mechanism_offered",
        "gauge",
        f"1 for each AUTH mechanism offered (after TLS where TLS is used), {_LAST}.",
    ),
    Family("smtp_auth_success", "gauge", f"1 if the configured credentials authenticated, {_LAST}."),
    Family("smtp_send_success", "gauge", "1 if the last test message was accepted (sent on its own interval)."),
    Family("smtp_send_timestamp_seconds", "gauge", "Unix time at which the last test message send finished."),
    Family("smtp_target_info", "gauge", "Configured target: host, port, TLS mode and server name."),
    # Lets an alert tell "not probed for three intervals" without knowing the config.
    Family("smtp_target_interval_seconds", "gauge", "Configured interval between scheduled probes of the target."),
)
_COLUMN = {family.name: index for index, family in enumerate(TARGET_FAMILIES)}
_EXPIRY_COLUMN = _COLUMN["smtp_cert_expiry_days"]


@dataclass(frozen=True)
class ExporterStatus:
    version: str
    targets: int
    config_last_reload_successful: bool
    config_last_reload_success_timestamp: float
    scheduler_lag: LagHistogram
    probes_in_flight: int
    # Every asyncio task alive (target loops, probes, HTTP handlers): flat
    # over a long run, or something leaks.
    asyncio_tasks: int = 0


@dataclass(frozen=True)
class _Block:
    config: TargetConfig
    result: ProbeResult | None
    probes_total: int
    last_send: SendOutcome | None
    labels: str
    columns: tuple[str, ...]
    not_after: float | None


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

    def set_targets(self, records: Sequence[TargetRecord]) -> None:
        """Adopt the target list (at load and reload), keeping blocks that are still right."""
        self._blocks = {record.config.name: self._block(record) for record in records}
        self._columns = [
            {name: block.columns[index] for name, block in self._blocks.items()}
            for index in range(len(TARGET_FAMILIES))
        ]

    def refresh(self, record: TargetRecord) -> None:
        """Render ``record``'s block now, after a new result."""
        name = record.config.name
        if name not in self._blocks:
            return  # removed by a reload while its probe ran
        block = self._blocks[name] = self._block(record)
        for column, lines in zip(self._columns, block.columns, strict=True):
            column[name] = lines

    def render(self, status: ExporterStatus, now: float) -> list[str]:
        """The exposition as a list of chunks, one or two per family, to be sent in order."""
        chunks: list[str] = []
        for family, column in zip(TARGET_FAMILIES, self._columns, strict=True):
            if family.name == "smtp_cert_expiry_days":
                text = _expiry_days(self._blocks.values(), now)
            else:
                text = "".join(column.values())
            if text:
                chunks.append(family.header())
                chunks.append(text)
        chunks.append(_render_exporter(status))
        chunks.append(generate_latest(REGISTRY).decode("utf-8"))
        return chunks

    def _block(self, record: TargetRecord) -> _Block:
        cached = self._blocks.get(record.config.name)
        if (
            cached is not None
            and cached.config is record.config
            and cached.result is record.result
            and cached.probes_total == record.probes_total
            and cached.last_send is record.last_send
        ):
            return cached
        labels = target_labels(record.config)
        columns = render_target(record, labels)
        leaf = record.result.tls.leaf if record.result and record.result.tls else None
        not_after = leaf.not_after if leaf is not None else None
        return _Block(record.config, record.result, record.probes_total, record.last_send, labels, columns, not_after)


def target_labels(target: TargetConfig) -> str:
    """The label pairs every series of ``target`` carries, rendered once."""
    pairs = [("target", target.name), *target.labels]
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)


def render_target(record: TargetRecord, labels: str) -> tuple[str, ...]:
    """One string of sample lines per family in TARGET_FAMILIES ("" when absent)."""
    out = _Columns(labels)
    target = record.config
    target_info = (("host", target.host), ("port", str(target.port)), ("tls", target.tls.value))
    out.put("smtp_target_info", 1, (*target_info, ("server_name", target.server_name)))
    out.put("smtp_target_interval_seconds", target.interval)
    if record.last_send is not None:
        out.put("smtp_send_success", record.last_send.success)
        out.put("smtp_send_timestamp_seconds", record.last_send.finished_at)
    result = record.result
    if result is None:
        return tuple(out.columns)
    out.put("smtp_probe_success", result.success)
    out.put("smtp_probe_duration_seconds", result.duration_seconds)
    for phase, seconds in result.phase_durations:
        out.put("smtp_probe_phase_duration_seconds", seconds, (("phase", phase.value),))
    out.put("smtp_probe_timestamp_seconds", result.finished_at)
    for phase, reason in dict.fromkeys((failure.phase, failure.reason) for failure in result.failures):
        out.put("smtp_probe_error_info", 1, (("phase", phase.value), ("reason", reason.value)))
    out.put("smtp_probes_total", record.probes_total)
    for reason, count in sorted(record.failures_total.items()):
        out.put("smtp_probe_failures_total", count, (("reason", reason.value),))
    if result.starttls_offered is not None:
        out.put("smtp_starttls_offered", result.starttls_offered)
    if result.tls_handshake_succeeded is not None:
        out.put("smtp_tls_handshake_success", result.tls_handshake_succeeded)
    if result.tls is not None:
        _put_tls_session(out, result.tls)
    ehlo = result.effective_ehlo
    if ehlo is not None:
        for mechanism in sorted(ehlo.auth_mechanisms):
            out.put("smtp_auth_mechanism_offered", 1, (("mechanism", mechanism),))
    if result.auth is not None:
        out.put("smtp_auth_success", result.auth.success)
    return tuple(out.columns)


class _Columns:
    def __init__(self, labels: str) -> None:
        self.labels = labels
        self.columns = [""] * len(TARGET_FAMILIES)

    def put(self, family: str, value: float, extra: Iterable[tuple[str, str]] = ()) -> None:
        self.columns[_COLUMN[family]] += _sample(family, self.labels, value, extra)


def _put_tls_session(out: _Columns, tls: TlsSession) -> None:
    out.put("smtp_tls_version_info", 1, (("version", tls.version),))
    if tls.version in TLS_VERSION_NUMBERS:
        out.put("smtp_tls_version", TLS_VERSION_NUMBERS[tls.version])
    out.put("smtp_tls_cipher_info", 1, (("cipher", tls.cipher),))
    out.put("smtp_tls_cipher_bits", tls.cipher_bits)
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
            ("subject", leaf.subject),
            ("issuer", leaf.issuer),
            ("serial", leaf.serial),
            ("fingerprint_sha256", leaf.fingerprint_sha256),
            ("fingerprint_sha1", leaf.fingerprint_sha1),
            ("san", ",".join(leaf.subject_alternative_names)),
            ("key_type", leaf.key_type),
            ("key_bits", str(leaf.key_bits)),
            ("signature_algorithm", leaf.signature_algorithm),
        ),
    )


def _expiry_days(blocks: Iterable[_Block], now: float) -> str:
    # The one value that changes with every scrape: kept to plain arithmetic
    # and repr(), as it runs once per target per scrape.
    return "".join(
        f"smtp_cert_expiry_days{{{block.labels}}} {(block.not_after - now) / 86400!r}\n"
        for block in blocks
        if block.not_after is not None
    )


def _render_exporter(status: ExporterStatus) -> str:
    lines = [
        Family("smtp_exporter_build_info", "gauge", "Version of smtp-tls-exporter.").header(),
        _sample("smtp_exporter_build_info", "", 1, (("version", status.version),)),
        Family("smtp_exporter_targets", "gauge", "Targets this exporter probes on schedule.").header(),
        _sample("smtp_exporter_targets", "", status.targets),
        Family(
            "smtp_exporter_config_last_reload_successful", "gauge", "1 if the last configuration (re)load succeeded."
        ).header(),
        _sample("smtp_exporter_config_last_reload_successful", "", status.config_last_reload_successful),
        Family(
            "smtp_exporter_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful configuration load.",
        ).header(),
        _sample(
            "smtp_exporter_config_last_reload_success_timestamp_seconds",
            "",
            status.config_last_reload_success_timestamp,
        ),
        Family("smtp_exporter_probes_in_flight", "gauge", "Scheduled probes running right now.").header(),
        _sample("smtp_exporter_probes_in_flight", "", status.probes_in_flight),
        Family("smtp_exporter_asyncio_tasks", "gauge", "asyncio tasks alive in the exporter.").header(),
        _sample("smtp_exporter_asyncio_tasks", "", status.asyncio_tasks),
        Family(
            "smtp_exporter_scheduler_lag_seconds", "histogram", "How late scheduled probes started against their slot."
        ).header(),
    ]
    lag = status.scheduler_lag
    for bound, count in lag.cumulative():
        le = "+Inf" if math.isinf(bound) else format_value(bound)
        lines.append(_sample("smtp_exporter_scheduler_lag_seconds_bucket", "", count, (("le", le),)))
    lines.append(_sample("smtp_exporter_scheduler_lag_seconds_sum", "", lag.total))
    lines.append(_sample("smtp_exporter_scheduler_lag_seconds_count", "", lag.observations))
    return "".join(lines)


def _sample(name: str, labels: str, value: float, extra: Iterable[tuple[str, str]] = ()) -> str:
    label_text = labels
    for label, label_value in extra:
        pair = f'{label}="{escape_label_value(label_value)}"'
        label_text = f"{label_text},{pair}" if label_text else pair
    if label_text:
        return f"{name}{{{label_text}}} {format_value(value)}\n"
    return f"{name} {format_value(value)}\n"


def escape_label_value(value: str) -> str:
    if len(value) > MAX_LABEL_VALUE_CHARS:
        value = value[: MAX_LABEL_VALUE_CHARS - 1] + "…"
    # Lone surrogates (from undecodable certificate fields) are not UTF-8.
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# /probe answers describe one probe, not the schedule, and carry no counters.
_NOT_FOR_ONE_PROBE = frozenset(
    {
        "smtp_probes_total",
        "smtp_probe_failures_total",
        "smtp_send_success",
        "smtp_send_timestamp_seconds",
        "smtp_target_interval_seconds",
    }
)


def render_probe(target: TargetConfig, result: ProbeResult, now: float) -> str:
    """The metrics of one on-demand probe, without the target label (Prometheus adds instance)."""
    columns = render_target(TargetRecord(target, result), labels="")
    leaf = result.tls.leaf if result.tls else None
    parts: list[str] = []
    for family, column in zip(TARGET_FAMILIES, columns, strict=True):
        if family.name in _NOT_FOR_ONE_PROBE:
            continue
        text = column
        if family.name == "smtp_cert_expiry_days" and leaf is not None and leaf.not_after is not None:
            text = _sample(family.name, "", (leaf.not_after - now) / 86400)
        if text:
            help_text = family.help.replace("the last scheduled probe", "this probe")
            parts.append(Family(family.name, family.type, help_text).header() + text)
    return "".join(parts)
