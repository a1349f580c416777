"""Every metric family the exporter exposes: the public contract in one table.

The renderer takes headers and label order from here, the config refuses
static labels that would shadow one of these, and a test holds the README's
metric table to it. Nobody should have to read the renderer to learn the
contract.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_LAST = "from the last scheduled probe"
_SCAN = "from the last TLS capability scan"


class Kind(enum.StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Family:
    name: str
    kind: Kind
    help: str
    # Labels the exporter adds besides the target's own (see TARGET_LABELS).
    labels: tuple[str, ...] = ()
    # The series describes the schedule (counters, the interval, the test
    # message on its own interval), not one probe: /probe leaves it out.
    schedule_only: bool = False
    # The value follows the clock, so it is computed at every scrape.
    per_scrape: bool = False

    def header(self, help_text: str | None = None) -> str:
        return f"# HELP {self.name} {help_text or self.help}\n# TYPE {self.name} {self.kind.value}\n"


# Labels every per-target series carries before the family's own.
TARGET_LABELS = ("target",)
# Labels a pair of a domain (mx and address) or of an `addresses: all` host
# (address) carries after `target`: which MX host, which of its addresses.
PAIR_LABELS = ("mx", "address")
# Labels Prometheus sets on every scraped series.
SCRAPE_LABELS = ("job", "instance")

_gauge, _counter = Kind.GAUGE, Kind.COUNTER

# Per-target families in exposition order.
TARGET_FAMILIES = (
    Family("smtp_probe_success", _gauge, f"1 if every check the target asks for passed, {_LAST}."),
    Family("smtp_probe_duration_seconds", _gauge, f"Total duration of the probe, {_LAST}."),
    Family("smtp_probe_phase_duration_seconds", _gauge, f"Duration of each phase that ran, {_LAST}.", ("phase",)),
    Family("smtp_probe_timestamp_seconds", _gauge, "Unix time at which the last scheduled probe finished."),
    Family("smtp_probe_error_info", _gauge, f"1 for each check that failed and why, {_LAST}.", ("phase", "reason")),
    Family(
        "smtp_probes_total", _counter, "Scheduled probes of the target since the exporter started.", schedule_only=True
    ),
    Family(
        "smtp_probe_failures_total",
        _counter,
        "Scheduled probes that failed, by reason, since start.",
        ("reason",),
        schedule_only=True,
    ),
    Family("smtp_starttls_offered", _gauge, f"1 if the EHLO reply offered STARTTLS, {_LAST}."),
    Family("smtp_tls_handshake_success", _gauge, f"1 if the TLS handshake completed, {_LAST}."),
    Family("smtp_tls_version_info", _gauge, f"Negotiated TLS version as OpenSSL names it, {_LAST}.", ("version",)),
    Family("smtp_tls_version", _gauge, f"Negotiated TLS version as a number (1.0 to 1.3), {_LAST}."),
    Family("smtp_tls_cipher_info", _gauge, f"Negotiated cipher suite as OpenSSL names it, {_LAST}.", ("cipher",)),
    Family("smtp_tls_cipher_bits", _gauge, f"Secret bits of the negotiated cipher (its strength), {_LAST}."),
    Family(
        "smtp_tls_cipher_rating_info",
        _gauge,
        f"NCSC-NL 2025 rating of the negotiated cipher suite (good, sufficient, phase_out, insufficient), {_LAST}.",
        ("rating",),
    ),
    Family(
        "smtp_tls_key_exchange_info",
        _gauge,
        f"Key-exchange group as OpenSSL names it (x25519, secp256r1, ffdhe2048), dh<bits> for an unnamed"
        f" finite-field prime, rsa for RSA key transport, {_LAST}.",
        ("group",),
    ),
    Family(
        "smtp_tls_key_exchange_bits",
        _gauge,
        f"Bits of the server's ephemeral key as OpenSSL prints them (253 for X25519), {_LAST}.",
    ),
    Family(
        "smtp_tls_signature_info",
        _gauge,
        f"Signature scheme the server signed the handshake with (IANA name), {_LAST}.",
        ("scheme",),
    ),
    Family(
        "smtp_tls_client_certificate_requested",
        _gauge,
        f"1 if the server asked for a client certificate (CertificateRequest), {_LAST}.",
    ),
    Family(
        "smtp_tls_client_certificate_accepted",
        _gauge,
        f"1 if the server went on after asking for our configured client certificate, 0 if it refused it, {_LAST}.",
    ),
    Family(
        "smtp_tls_client_cert_not_after_timestamp_seconds",
        _gauge,
        "notAfter of the client certificate the target is configured to present (read at config load).",
    ),
    # The capability scan (issue 17): its own schedule, so /probe leaves it out.
    Family(
        "smtp_tls_version_accepted",
        _gauge,
        f"1 if the server accepts the protocol version (SSLv3 to TLSv1.3), {_SCAN}.",
        ("version",),
        schedule_only=True,
    ),
    Family(
        "smtp_tls_group_accepted",
        _gauge,
        f"1 if the server accepts the key-exchange group (dh<bits>: DHE with a prime of its own), {_SCAN}.",
        ("group",),
        schedule_only=True,
    ),
    Family(
        "smtp_tls_ciphers_accepted",
        _gauge,
        f"Cipher suites the server accepts, by protocol version and NCSC-NL 2025 rating, {_SCAN}.",
        ("version", "rating"),
        schedule_only=True,
    ),
    Family(
        "smtp_tls_cipher_server_order",
        _gauge,
        f"1 if the server picks a good or sufficient suite when worse ones are offered first, {_SCAN}.",
        schedule_only=True,
    ),
    Family(
        "smtp_tls_secure_renegotiation",
        _gauge,
        f"1 if the server supports secure renegotiation (RFC 5746), {_SCAN}.",
        schedule_only=True,
    ),
    Family(
        "smtp_tls_extended_master_secret",
        _gauge,
        f"1 if the server supports the extended master secret (RFC 7627), {_SCAN}.",
        schedule_only=True,
    ),
    Family("smtp_tls_compression", _gauge, f"1 if the server accepts TLS compression, {_SCAN}.", schedule_only=True),
    Family(
        "smtp_tls_scan_requirement_met",
        _gauge,
        f"1 if the server accepts nothing that breaks the target's require: entry, {_SCAN}.",
        ("requirement",),
        schedule_only=True,
    ),
    Family("smtp_tls_scan_success", _gauge, "1 if the last TLS capability scan finished.", schedule_only=True),
    Family(
        "smtp_tls_scan_timestamp_seconds",
        _gauge,
        "Unix time at which the last TLS capability scan finished.",
        schedule_only=True,
    ),
    Family("smtp_tls_scan_duration_seconds", _gauge, "Duration of the last TLS capability scan.", schedule_only=True),
    Family("smtp_cert_not_before_timestamp_seconds", _gauge, f"Leaf certificate notBefore, {_LAST}."),
    Family("smtp_cert_not_after_timestamp_seconds", _gauge, f"Leaf certificate notAfter, {_LAST}."),
    Family(
        "smtp_cert_expiry_days",
        _gauge,
        f"Days until the leaf certificate expires, computed at scrape time (negative once expired), {_LAST}.",
        per_scrape=True,
    ),
    Family(
        "smtp_cert_chain_earliest_not_after_timestamp_seconds",
        _gauge,
        f"Earliest notAfter among the presented certificates, {_LAST}.",
    ),
    Family("smtp_cert_trusted", _gauge, f"1 if the presented chain validates to a trust anchor, {_LAST}."),
    Family("smtp_cert_hostname_match", _gauge, f"1 if the server name matches the leaf certificate, {_LAST}."),
    Family(
        "smtp_cert_info",
        _gauge,
        f"Leaf certificate details, {_LAST}.",
        (
            "subject",
            "issuer",
            "serial",
            "fingerprint_sha256",
            "fingerprint_sha1",
            "san",
            "key_type",
            "key_bits",
            "signature_algorithm",
        ),
    ),
    Family(
        "smtp_cert_chain_key_bits",
        _gauge,
        f"Public key size of each presented certificate by position (0 = leaf), {_LAST}.",
        ("depth",),
    ),
    Family(
        "smtp_cert_chain_weakest_rating_info",
        _gauge,
        f"NCSC-NL 2025 rating of the weakest key or signature hash in the presented chain, root excluded, {_LAST}.",
        ("rating",),
    ),
    Family(
        "smtp_dane_status_info",
        _gauge,
        f"DANE (RFC 7672) verdict: pass, fail, no_tlsa, insecure, unusable or dns_error, {_LAST}.",
        ("status",),
    ),
    Family("smtp_dane_match", _gauge, f"1 if a usable TLSA record matched the presented chain, {_LAST}."),
    Family(
        "smtp_dane_tlsa_records",
        _gauge,
        f"TLSA records of each kind, when the lookup was DNSSEC-secure, {_LAST}.",
        ("usage", "selector", "matching_type"),
    ),
    Family(
        "smtp_dane_match_info",
        _gauge,
        f"1 for each TLSA record kind that matched and the chain depth it matched at, {_LAST}.",
        ("usage", "selector", "matching_type", "depth"),
    ),
    Family(
        "smtp_dane_rollover_ready",
        _gauge,
        f"1 if at least two usable TLSA records are published (a key change keeps one matching), {_LAST}.",
    ),
    Family(
        "smtp_dane_renewal_safe",
        _gauge,
        f"0 when every matching TLSA record pins a whole certificate (selector 0), {_LAST}.",
    ),
    Family(
        "smtp_auth_mechanism_offered",
        _gauge,
        f"1 for each AUTH mechanism offered (after TLS where TLS is used), {_LAST}.",
        ("mechanism",),
    ),
    Family("smtp_auth_success", _gauge, f"1 if the configured credentials authenticated, {_LAST}."),
    Family(
        "smtp_send_success",
        _gauge,
        "1 if the last test message was accepted (sent on its own interval).",
        schedule_only=True,
    ),
    Family(
        "smtp_send_timestamp_seconds",
        _gauge,
        "Unix time at which the last test message send finished.",
        schedule_only=True,
    ),
    Family(
        "smtp_target_info",
        _gauge,
        "Configured target: host, port, TLS mode and server name.",
        ("host", "port", "tls", "server_name"),
    ),
    # Lets an alert tell "not probed for three intervals" without knowing the config.
    Family(
        "smtp_target_interval_seconds",
        _gauge,
        "Configured interval between scheduled probes of the target.",
        schedule_only=True,
    ),
)

_LOOKUP = "from the last lookup of the domain"

# Per-domain families (labels: target, the entry's static labels, then their own), after the targets'.
DOMAIN_FAMILIES = (
    Family("smtp_domain_lookup_success", _gauge, "1 if the domain's MX (or implicit MX) lookup succeeded."),
    Family(
        "smtp_domain_lookup_error_info",
        _gauge,
        f"1 with the reason the lookup failed (dns_nxdomain, dns_servfail, dns_timeout, dns_error), {_LOOKUP}.",
        ("reason",),
    ),
    Family(
        "smtp_domain_mx_info",
        _gauge,
        f"1 for each MX host probed, with its preference, {_LOOKUP}.",
        ("mx", "preference"),
    ),
    Family(
        "smtp_domain_mx_addresses",
        _gauge,
        f"Addresses found for each MX host (0: nobody can reach it), {_LOOKUP}.",
        ("mx",),
    ),
    Family(
        "smtp_domain_mx_implicit",
        _gauge,
        f"1 if the domain has no MX records and its own address is the MX, {_LOOKUP}.",
    ),
    Family(
        "smtp_domain_null_mx", _gauge, f"1 if the domain publishes a null MX (accepts no mail, RFC 7505), {_LOOKUP}."
    ),
    Family("smtp_domain_lookup_timestamp_seconds", _gauge, "Unix time at which the last lookup of the domain started."),
    Family(
        "smtp_domain_lookup_duration_seconds", _gauge, "Duration of the last lookup of the domain, addresses included."
    ),
)

# Families of the exporter itself, after the targets' in exposition order.
EXPORTER_FAMILIES = (
    Family("smtp_exporter_build_info", _gauge, "Version of smtp-tls-exporter.", ("version",)),
    Family("smtp_exporter_targets", _gauge, "Targets this exporter probes on schedule (each pair of a domain counts)."),
    Family("smtp_exporter_domains", _gauge, "Mail domains this exporter watches."),
    Family("smtp_exporter_config_last_reload_successful", _gauge, "1 if the last configuration (re)load succeeded."),
    Family(
        "smtp_exporter_config_last_reload_success_timestamp_seconds",
        _gauge,
        "Unix time of the last successful configuration load.",
    ),
    Family("smtp_exporter_probes_in_flight", _gauge, "Scheduled probes running right now."),
    Family("smtp_exporter_probe_slots", _gauge, "Scheduled probes allowed to run at the same time."),
    Family(
        "smtp_exporter_probes_skipped_total",
        _counter,
        "Due probes that did not run, by why: the previous probe still running, or no free slot.",
        ("reason",),
    ),
    Family("smtp_exporter_asyncio_tasks", _gauge, "asyncio tasks alive in the exporter."),
    Family(
        "smtp_exporter_scheduler_lag_seconds",
        Kind.HISTOGRAM,
        "How late scheduled probes started against their slot.",
    ),
)

ALL_FAMILIES = TARGET_FAMILIES + DOMAIN_FAMILIES + EXPORTER_FAMILIES
FAMILY = {family.name: family for family in ALL_FAMILIES}

# A static label of a target must not shadow a label the exporter or
# Prometheus sets on the same series.
RESERVED_LABELS = frozenset(
    (
        *TARGET_LABELS,
        *PAIR_LABELS,
        *SCRAPE_LABELS,
        *(label for family in TARGET_FAMILIES + DOMAIN_FAMILIES for label in family.labels),
    )
)

# What `smtp_tls_version` reports for each protocol name OpenSSL returns.
TLS_VERSION_NUMBERS = {"SSLv3": 0.3, "TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}
