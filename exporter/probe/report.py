"""One probe's result for people: a readable report, a JSON document, a verdict line.

Used by `smtp-tls-exporter check` and by `/probe?debug=true`. The JSON layout
is a public, versioned schema: docs/check-result.schema.json.
"""

from __future__ import annotations

import datetime
from typing import Any

from exporter.config.model import ProbeSpec, TlsMode
from exporter.dane.verdict import DaneStatus, DaneVerdict, association_data
from exporter.probe.result import ProbeResult
from exporter.probe.transcript import printable
from exporter.smtp.ehlo import EhloCapabilities
from exporter.tls.certificates import CertificateFacts, days_until
from exporter.tls.codepoints import scheme_by_name
from exporter.tls.ratings import chain_weakest_rating, cipher_rating
from exporter.tls.session import TlsSession

SCHEMA_VERSION = 1


def verdict_line(spec: ProbeSpec, result: ProbeResult, now: float) -> str:
    """One line: OK with the essentials, or FAILED with every reason."""
    where = spec.endpoint
    if not result.success:
        reasons = "; ".join(
            f"{failure.reason.value} ({failure.phase.value})"
            + (f": {printable(failure.detail)}" if failure.detail else "")
            for failure in result.failures
        )
        return f"FAILED {where}: {reasons}"
    parts = [spec.tls.value]
    if result.tls is not None:
        parts.append(f"{result.tls.version} {result.tls.cipher}")
        leaf = result.tls.leaf
        if leaf is not None and leaf.not_after is not None:
            parts.append(f"certificate trusted, name matches, {days_until(leaf.not_after, now):.0f} days left")
    if result.auth is not None:
        parts.append(f"AUTH {result.auth.mechanism} accepted")
    if result.send is not None:
        parts.append("test message accepted")
    return f"OK {where}: {', '.join(parts)}"


def _failure_text(reason: str, phase: str, detail: str) -> str:
    return f"{reason} ({phase})" + (f": {printable(detail)}" if detail else "")


class _Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("1;31", text)

    def heading(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def human_report(spec: ProbeSpec, result: ProbeResult, *, now: float, colour: bool = False) -> str:
    style = _Style(colour)
    sni = f", server name {spec.server_name}" if spec.tls is not TlsMode.NONE else ""
    lines = [style.heading(f"{spec.endpoint} ({spec.tls.value}{sni})"), ""]
    lines.append(style.heading("Conversation"))
    for line in result.transcript:
        marker = f"{line.direction}:" if line.direction in ("C", "S") else "* "
        text = f"  {line.offset_seconds * 1000:8.1f} ms  {marker} {line.text}"
        lines.append(style.dim(text) if line.direction == "*" else text)
    if result.tls is not None:
        lines += ["", *_tls_section(spec, result.tls, now, style)]
    if result.dane is not None:
        lines += ["", *_dane_section(result.dane, result.tls, style)]
    if result.effective_ehlo is not None:
        lines += ["", *_capabilities_section(result.effective_ehlo)]
    if result.auth is not None and spec.auth is not None:
        outcome = style.good("accepted") if result.auth.success else style.bad("FAILED")
        mechanism = result.auth.mechanism or "no mechanism"
        lines += ["", style.heading("Authentication"), f"  {mechanism} as {printable(spec.auth.username)}: {outcome}"]
        lines.append(f"  server: {printable(result.auth.reply)}")
    if result.send is not None:
        outcome = style.good("accepted") if result.send.success else style.bad("REJECTED")
        lines += ["", style.heading("Test message"), f"  {result.send.message_id}: {outcome}"]
        lines.append(f"  server: {printable(result.send.reply)}")
    phases = ", ".join(f"{phase.value} {seconds * 1000:.1f} ms" for phase, seconds in result.phase_durations)
    lines += ["", f"Phases: {phases} (total {result.duration_seconds * 1000:.1f} ms)"]
    verdict = verdict_line(spec, result, now)
    lines.append(style.good(verdict) if result.success else style.bad(verdict))
    return "\n".join(lines) + "\n"


def _dane_section(dane: DaneVerdict, tls: TlsSession | None, style: _Style) -> list[str]:
    """TLSA records, their DNSSEC status and the match, in posttls-finger's words; records to publish."""
    lookup = dane.lookup
    dnssec = "DNSSEC-secure" if lookup.secure else "not secure"
    lines = [
        style.heading(f"DANE (RFC 7672): {dane.status.value}"),
        f"  {lookup.query_name or '(no lookup)'}: {dnssec}",
    ]
    for record in lookup.records:
        usable = "" if record.usable else "  (unusable for SMTP)"
        lines.append(f"  TLSA {record.text()}{usable}")
    for match in dane.matches:
        lines.append(style.good(f"  {match.describe()}"))
    if dane.detail and not dane.matches:
        lines.append((style.bad if dane.status in (DaneStatus.FAIL, DaneStatus.DNS_ERROR) else str)(f"  {dane.detail}"))
    if dane.applies:
        lines.append(f"  rollover ready: {'yes' if dane.rollover_ready else 'no (publish two usable records)'}")
    leaf_records = _leaf_records(tls)
    if leaf_records:
        lines.append("  Records for the presented leaf (publish the first, keep the next key's beside it):")
        lines += [f"    3 {selector} {matching_type} {data.hex()}" for selector, matching_type, data in leaf_records]
    return lines


def _leaf_records(tls: TlsSession | None) -> list[tuple[int, int, bytes]]:
    """(selector, matching type, data) of the DANE-EE records that match the leaf presented now.

    In the order to prefer them: the key (survives a renewal with the same key) before the
    whole certificate, SHA-256 before SHA-512.
    """
    leaf = tls.leaf if tls is not None else None
    if leaf is None or not leaf.der:
        return []
    records = []
    for selector, matching_type in ((1, 1), (1, 2), (0, 1), (0, 2)):
        data = association_data(leaf.der, selector, matching_type)
        if data is not None:
            records.append((selector, matching_type, data))
    return records


def _tls_section(spec: ProbeSpec, tls: TlsSession, now: float, style: _Style) -> list[str]:
    anchors = f"CA file {spec.ca_file}" if spec.ca_file else "the system trust store"
    if tls.trust.trusted:
        trust = style.good(f"trusted (by {anchors})")
    else:
        where = f" at chain depth {tls.trust.error_depth}" if tls.trust.error_depth is not None else ""
        code = f"OpenSSL error {tls.trust.error_code}{where}: " if tls.trust.error_code is not None else ""
        trust = style.bad(f"NOT TRUSTED by {anchors} ({code}{printable(tls.trust.error_message or '')})")
    leaf = tls.leaf
    names = printable(", ".join(leaf.subject_alternative_names or leaf.common_names)) if leaf else ""
    if tls.hostname_match:
        hostname = style.good(f"{spec.server_name} matches")
    else:
        hostname = style.bad(f"{spec.server_name} DOES NOT MATCH (certificate names: {names or 'none'})")
    lines = [
        style.heading("TLS"),
        f"  Protocol   {tls.version}",
        f"  Cipher     {tls.cipher} ({tls.cipher_bits} bits)",
        *([f"  Handshake  {handshake}"] if (handshake := postfix_style_handshake(tls)) else []),
        f"  Ratings    {_ratings(tls)} (NCSC-NL 2025)",
        *([f"  Client     {client}"] if (client := _client_certificate_text(spec, tls, style)) else []),
        f"  Trust      {trust}",
        f"  Host name  {hostname}",
        "",
        style.heading(f"Certificate chain as presented ({len(tls.chain)})"),
    ]
    for index, certificate in enumerate(tls.chain):
        lines += _certificate_lines(index, certificate, now, style)
    return lines


# Postfix names NIST curves as in its TLS log line ("key-exchange ECDHE (P-256)").
_NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def postfix_style_handshake(tls: TlsSession) -> str:
    """As Postfix logs a session: ``key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256``."""
    facts = tls.handshake
    if facts is None or facts.group is None:
        return ""
    group = facts.group
    if group in _NIST_CURVES:
        parts = [f"key-exchange ECDHE ({_NIST_CURVES[group]})"]
    elif group.startswith(("ffdhe", "dh")) and facts.key_exchange_bits:
        parts = [f"key-exchange DHE ({facts.key_exchange_bits} bits)"]
    elif group == "rsa":
        parts = ["key-exchange RSA"]
    else:
        parts = [f"key-exchange {group.upper() if group in ('x25519', 'x448') else group}"]
    scheme = scheme_by_name(facts.signature_scheme) if facts.signature_scheme else None
    leaf = tls.leaf
    if scheme is not None:
        size = ""
        if leaf is not None and leaf.key_type == "EC" and leaf.key_curve in _NIST_CURVES:
            size = f" ({_NIST_CURVES[leaf.key_curve]})"
        elif leaf is not None and leaf.key_type in ("RSA", "DSA"):
            size = f" ({leaf.key_bits} bits)"
        parts.append(f"server-signature {scheme.postfix_type}{size}")
        if scheme.digest:
            parts.append(f"server-digest {scheme.digest}")
    return " ".join(parts)


def _client_certificate_text(spec: ProbeSpec, tls: TlsSession, style: _Style) -> str:
    requested = tls.handshake is not None and tls.handshake.client_certificate_requested
    if spec.client_certificate is None:
        return "certificate requested, none configured" if requested else ""
    if not requested:
        return f"certificate {spec.client_certificate.cert_file} not requested by the server"
    return f"certificate {spec.client_certificate.cert_file} sent (expires {_utc(spec.client_certificate.not_after)})"


def _ratings(tls: TlsSession) -> str:
    chain = chain_weakest_rating(tls.chain)
    return f"cipher {cipher_rating(tls.cipher).value}, chain {chain.value if chain else 'not rated'}"


def _certificate_lines(index: int, certificate: CertificateFacts, now: float, style: _Style) -> list[str]:
    if certificate.parse_error is not None:
        return [
            f"  [{index}] unreadable certificate: {printable(certificate.parse_error)}",
            f"      SHA-256  {certificate.fingerprint_sha256}",
        ]
    validity = f"{_utc(certificate.not_before)} to {_utc(certificate.not_after)}"
    if certificate.not_after is not None:
        days = days_until(certificate.not_after, now)
        left = f"{days:.1f} days left" if days >= 0 else f"EXPIRED {-days:.1f} days ago"
        validity += f" ({style.good(left) if days >= 21 else style.bad(left)})"
    if certificate.is_not_yet_valid(now):
        validity += f" ({style.bad('NOT YET VALID')})"
    return [
        f"  [{index}] subject    {printable(certificate.subject) or '(empty)'}",
        f"      issuer     {printable(certificate.issuer) or '(empty)'}",
        f"      serial     {certificate.serial}",
        f"      validity   {validity}",
        f"      SHA-256    {certificate.fingerprint_sha256}",
        f"      SHA-1      {certificate.fingerprint_sha1}",
        f"      SAN        {printable(', '.join(certificate.subject_alternative_names)) or '(none)'}",
        f"      key        {certificate.key_type} {certificate.key_bits} bits",
        f"      signature  {certificate.signature_algorithm}",
    ]


def _capabilities_section(ehlo: EhloCapabilities) -> list[str]:
    extensions = printable(" ".join(sorted(ehlo.extensions))) or "(none)"
    mechanisms = " ".join(sorted(ehlo.auth_mechanisms)) or "(none offered)"
    return ["Capabilities", f"  EHLO       {extensions}", f"  AUTH       {mechanisms}"]


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "?"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat().replace("+00:00", "Z")


def result_document(spec: ProbeSpec, result: ProbeResult, *, now: float) -> dict[str, Any]:
    """The JSON form (docs/check-result.schema.json, version 1)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "target": {
            "host": spec.host,
            "port": spec.port,
            "tls": spec.tls.value,
            "server_name": spec.server_name,
            "ehlo_name": spec.ehlo_name,
        },
        "success": result.success,
        "verdict": verdict_line(spec, result, now),
        "started_at": _iso(result.started_at),
        "duration_seconds": result.duration_seconds,
        "phases": [{"phase": phase.value, "seconds": seconds} for phase, seconds in result.phase_durations],
        "failures": [
            {"phase": failure.phase.value, "reason": failure.reason.value, "detail": failure.detail}
            for failure in result.failures
        ],
        "peer_address": result.peer_address,
        "banner": str(result.banner) if result.banner is not None else None,
        "starttls_offered": result.starttls_offered,
        "ehlo": _ehlo_document(result.ehlo),
        "ehlo_after_tls": _ehlo_document(result.ehlo_after_tls),
        "tls": _tls_document(result.tls, now),
        "auth": None
        if result.auth is None
        else {"success": result.auth.success, "mechanism": result.auth.mechanism, "reply": result.auth.reply},
        "send": None
        if result.send is None
        else {"success": result.send.success, "message_id": result.send.message_id, "reply": result.send.reply},
        # Added in schema_version 1 without a new version: optional, so documents of
        # earlier releases still validate.
        "client_certificate": _client_certificate_document(spec, result),
        "dane": _dane_document(result.dane, result.tls),
        "transcript": [
            {"offset_seconds": line.offset_seconds, "direction": line.direction, "text": line.text}
            for line in result.transcript
        ],
    }


def _ehlo_document(ehlo: EhloCapabilities | None) -> dict[str, Any] | None:
    if ehlo is None:
        return None
    return {
        "domain": ehlo.domain,
        "extensions": dict(ehlo.extensions),
        "auth_mechanisms": sorted(ehlo.auth_mechanisms),
        "size_limit": ehlo.size_limit,
    }


def _tls_document(tls: TlsSession | None, now: float) -> dict[str, Any] | None:
    if tls is None:
        return None
    facts = tls.handshake
    chain = chain_weakest_rating(tls.chain)
    trust_error = None
    if not tls.trust.trusted:
        trust_error = {"code": tls.trust.error_code, "message": tls.trust.error_message, "depth": tls.trust.error_depth}
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "cipher_bits": tls.cipher_bits,
        "trusted": tls.trust.trusted,
        "trust_error": trust_error,
        "hostname_match": tls.hostname_match,
        "chain": [_certificate_document(certificate, now) for certificate in tls.chain],
        # Added in schema_version 1 (optional fields): the handshake in depth.
        "key_exchange": None
        if facts is None or facts.group is None
        else {"group": facts.group, "bits": facts.key_exchange_bits},
        "signature_scheme": facts.signature_scheme if facts is not None else None,
        "client_certificate_requested": facts.client_certificate_requested if facts is not None else None,
        "handshake_summary": postfix_style_handshake(tls) or None,
        "ratings": {"cipher": cipher_rating(tls.cipher).value, "chain": chain.value if chain else None},
    }


def _dane_document(dane: DaneVerdict | None, tls: TlsSession | None) -> dict[str, Any] | None:
    """What the human report's DANE section says, as data; None when DANE was not checked."""
    if dane is None:
        return None
    lookup = dane.lookup
    return {
        "status": dane.status.value,
        "detail": dane.detail or None,
        "tlsa_name": lookup.query_name or None,
        "base_name": lookup.base_name or None,
        "dnssec": {"status": lookup.status.value, "secure": lookup.secure},
        "records": [
            {
                "usage": record.usage,
                "selector": record.selector,
                "matching_type": record.matching_type,
                "data": record.data.hex(),
                "usable": record.usable,
            }
            for record in lookup.records
        ],
        "matches": [
            {
                "usage": match.usage,
                "selector": match.selector,
                "matching_type": match.matching_type,
                "depth": match.depth,
                "description": match.describe(),
            }
            for match in dane.matches
        ],
        # As the metrics have them: rollover readiness where a usable set exists, renewal safety on a pass.
        "rollover_ready": dane.rollover_ready if dane.applies else None,
        "renewal_safe": dane.renewal_safe if dane.matches else None,
        "leaf_records": [
            {"usage": 3, "selector": selector, "matching_type": matching_type, "data": data.hex()}
            for selector, matching_type, data in _leaf_records(tls)
        ],
    }


def _client_certificate_document(spec: ProbeSpec, result: ProbeResult) -> dict[str, Any] | None:
    """Our configured client certificate: the file and expiry (never the key) and what became of it."""
    configured = spec.client_certificate
    if configured is None:
        return None
    outcome = result.client_certificate
    return {
        "cert_file": str(configured.cert_file),
        "not_after": _iso(configured.not_after),
        "requested": outcome.requested if outcome is not None else None,
        "sent": outcome.sent if outcome is not None else None,
        "accepted": outcome.accepted if outcome is not None else None,
    }


def _certificate_document(certificate: CertificateFacts, now: float) -> dict[str, Any]:
    return {
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "serial": certificate.serial,
        "not_before": _iso(certificate.not_before),
        "not_after": _iso(certificate.not_after),
        "days_left": certificate.days_left(now),
        "fingerprint_sha256": certificate.fingerprint_sha256,
        "fingerprint_sha1": certificate.fingerprint_sha1,
        "subject_alternative_names": list(certificate.subject_alternative_names),
        "key_type": certificate.key_type,
        "key_bits": certificate.key_bits,
        "signature_algorithm": certificate.signature_algorithm,
        "parse_error": certificate.parse_error,
    }
