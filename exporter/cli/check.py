"""`smtp-tls-exporter check HOST[:PORT]`: one probe now, explained.

For the person who would otherwise type `openssl s_client -starttls smtp`
and base64-encode credentials by hand. The same probe engine as the daemon.
Exit status: 0 the probe succeeded, 1 it failed, 2 a usage error. ``--scan``
adds the TLS capability scan after the probe; then 1 also when the scan failed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import dns.resolver
from OpenSSL import crypto

from exporter.cli import event_loop
from exporter.config.model import (
    AddressFamily,
    AuthConfig,
    AuthMechanism,
    ClientCertificate,
    ProbeOptions,
    ProbeSpec,
    SendConfig,
    TlsMode,
    probe_spec,
)
from exporter.config.secret import PasswordUnavailable, Secret, password_from_env, password_from_file
from exporter.config.values import check_ehlo_name, check_mail_address, parse_duration, split_host_port
from exporter.dns.mail_domain import DEFAULT_MAX_MX
from exporter.dns.resolver import DnsResolver, DnsSettings, parse_nameserver, resolver_or_none
from exporter.probe.domain import DomainProbe, probe_domain
from exporter.probe.report import SCHEMA_VERSION, human_report, result_document
from exporter.probe.run import run_probe
from exporter.scan.engine import scan
from exporter.scan.report import scan_report
from exporter.tls.client_certificate import ClientCertificateProblem, load_client_certificate
from exporter.tls.context import TlsClients

USAGE_ERROR = 2


class UsageError(Exception):
    pass


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtp-tls-exporter check",
        description="Probe one SMTP server now and explain what happened: the conversation, TLS, "
        "the certificate chain, trust and host name verdicts, and authentication.",
        epilog="Exit status: 0 when the probe succeeded, 1 when it failed, 2 for usage errors.",
    )
    parser.add_argument(
        "server",
        metavar="HOST[:PORT]",
        help="the server; the port defaults by --tls (587, 465, 25); with --mx a mail domain (port 25)",
    )
    parser.add_argument(
        "--mx", action="store_true", help="SERVER is a mail domain: probe every address of every MX host once"
    )
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="ADDR",
        help="with --mx: ask this resolver (host, host:port or [v6]:port; repeatable; default: the system's)",
    )
    parser.add_argument("--max-mx", type=int, default=DEFAULT_MAX_MX, help="with --mx: at most this many MX hosts")
    parser.add_argument(
        "--address-family", choices=[family.value for family in AddressFamily], default="any", help="which addresses"
    )
    parser.add_argument("--tls", choices=[mode.value for mode in TlsMode], default="starttls")
    parser.add_argument("--server-name", help="SNI and the name the certificate must match (default: HOST)")
    parser.add_argument("--ca-file", type=Path, help="trust only the CAs in this PEM file (default: system store)")
    parser.add_argument("--client-cert-file", type=Path, help="a PEM client certificate to present when asked")
    parser.add_argument("--client-key-file", type=Path, help="its unencrypted PEM private key")
    parser.add_argument("--ehlo-name", default=socket.gethostname(), help="name to send in EHLO")
    parser.add_argument("--user", help="authenticate as USER")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password-env", metavar="VAR", help="read the password from environment variable VAR")
    secret.add_argument("--password-file", type=Path, metavar="FILE", help="read the password from FILE")
    parser.add_argument(
        "--mechanism", default="auto", choices=["auto", *[mechanism.value for mechanism in AuthMechanism]]
    )
    parser.add_argument(
        "--allow-plaintext-auth",
        action="store_true",
        help="send credentials even without verified TLS (plaintext, or an unverified certificate)",
    )
    parser.add_argument("--send-to", action="append", metavar="ADDR", help="send a test message to ADDR")
    parser.add_argument("--send-from", metavar="ADDR", help="envelope and From: address of the test message")
    parser.add_argument("--timeout", default="15s", help="bound on the whole probe (default: 15s)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    parser.add_argument(
        "--scan",
        action="store_true",
        help="after the probe, scan which TLS versions, cipher suites and groups the server accepts "
        "(about 140 connections) and print them with their NCSC-NL ratings",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    parser = check_parser()
    arguments = parser.parse_args(argv)
    if arguments.mx:
        return _check_domain(parser, arguments)
    try:
        if arguments.scan and arguments.json:
            # The JSON document has a schema (docs/check-result.schema.json) the scan is not part of yet.
            raise UsageError("--scan prints tables; it cannot be combined with --json")
        spec = spec_from_arguments(arguments)
        if arguments.scan and spec.tls is TlsMode.NONE:
            raise UsageError("--scan needs TLS: --tls starttls or implicit")
        tls_client = TlsClients().for_spec(spec)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"smtp-tls-exporter check: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except crypto.Error as exc:
        print(f"smtp-tls-exporter check: error: OpenSSL cannot load {spec.ca_file}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    # DANE through the system resolver, which must validate (README, "DANE for SMTP").
    resolver = resolver_or_none(DnsSettings())
    result = event_loop.run(run_probe(spec, tls_client, send_due=spec.send is not None, resolver=resolver))
    now = time.time()
    if arguments.json:
        print(json.dumps(result_document(spec, result, now=now), indent=2))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        sys.stdout.write(human_report(spec, result, now=now, colour=colour))
    if not arguments.scan:
        return 0 if result.success else 1
    scanned = event_loop.run(scan(spec))
    sys.stdout.write(scan_report(spec.endpoint, scanned))
    return 0 if result.success and scanned.success else 1


def spec_from_arguments(arguments: argparse.Namespace) -> ProbeSpec:
    try:
        host, port = split_host_port(arguments.server)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        timeout = parse_duration(arguments.timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from exc
    try:
        ehlo_name = check_ehlo_name(arguments.ehlo_name)
    except ValueError as exc:
        raise UsageError(f"--ehlo-name: {exc}") from None
    if arguments.ca_file is not None and not arguments.ca_file.is_file():
        raise UsageError(f"--ca-file: {arguments.ca_file} is not a readable file")
    options = ProbeOptions(
        tls=TlsMode(arguments.tls),
        timeout=timeout,
        ehlo_name=ehlo_name,
        ca_file=arguments.ca_file,
        address_family=AddressFamily(arguments.address_family),
        auth=_auth(arguments),
        allow_plaintext_auth=arguments.allow_plaintext_auth,
        client_certificate=_client_certificate(arguments),
    )
    return probe_spec(host, port, options, server_name=arguments.server_name, send=_send(arguments))


def _client_certificate(arguments: argparse.Namespace) -> ClientCertificate | None:
    cert_file, key_file = arguments.client_cert_file, arguments.client_key_file
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise UsageError("--client-cert-file and --client-key-file go together")
    try:
        return load_client_certificate(cert_file, key_file)
    except ClientCertificateProblem as exc:
        raise UsageError(str(exc)) from None


def _auth(arguments: argparse.Namespace) -> AuthConfig | None:
    if arguments.user is None:
        if arguments.password_env or arguments.password_file:
            raise UsageError("--password-env and --password-file need --user")
        return None
    mechanism = None if arguments.mechanism == "auto" else AuthMechanism(arguments.mechanism)
    return AuthConfig(arguments.user, _password(arguments), mechanism)


def _password(arguments: argparse.Namespace) -> Secret:
    try:
        if arguments.password_env:
            return password_from_env(arguments.password_env)
        if arguments.password_file:
            return password_from_file(arguments.password_file)
    except PasswordUnavailable as exc:
        raise UsageError(str(exc)) from None
    if not sys.stdin.isatty():
        raise UsageError("--user needs --password-env or --password-file when not run from a terminal")
    return Secret(getpass.getpass(f"Password for {arguments.user}: "))


def _send(arguments: argparse.Namespace) -> SendConfig | None:
    if not arguments.send_to:
        if arguments.send_from:
            raise UsageError("--send-from needs --send-to")
        return None
    if not arguments.send_from:
        raise UsageError("--send-to needs --send-from")
    for flag, address in [("--send-from", arguments.send_from), *(("--send-to", to) for to in arguments.send_to)]:
        try:
            check_mail_address(address)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return SendConfig(sender=arguments.send_from, recipients=tuple(arguments.send_to), subject="check")


def _check_domain(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """``check --mx DOMAIN``: a table of every (MX, address) pair, then the detail of each failing one."""
    try:
        if arguments.user or arguments.send_to:
            raise UsageError("--mx probes a domain's MX hosts: --user and --send-to are for one server")
        if arguments.max_mx < 1:
            raise UsageError("--max-mx must be at least 1")
        if arguments.server_name:
            raise UsageError("--mx checks each MX host against its own name: drop --server-name")
        spec = spec_from_arguments(arguments)
        nameservers = tuple(parse_nameserver(text) for text in arguments.nameserver or ())
        resolver = DnsResolver(DnsSettings(nameservers, timeout=min(5.0, spec.timeout)))
        tls_client = TlsClients().for_spec(spec)
    except (UsageError, ValueError) as exc:
        parser.print_usage(sys.stderr)
        print(f"smtp-tls-exporter check: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except dns.resolver.NoResolverConfiguration:
        print("smtp-tls-exporter check: error: no DNS resolver: give --nameserver", file=sys.stderr)
        return USAGE_ERROR
    except crypto.Error as exc:
        print(f"smtp-tls-exporter check: error: OpenSSL cannot load {spec.ca_file}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    domain = spec.host
    # An MX listens on port 25 (RFC 5321) unless the user says otherwise.
    port = split_host_port(arguments.server)[1] or 25
    options = ProbeOptions(
        spec.tls, spec.timeout, spec.ehlo_name, spec.ca_file, spec.address_family,
        client_certificate=spec.client_certificate,
    )  # fmt: skip
    probed = event_loop.run(probe_domain(resolver, domain, port, options, tls_client, max_mx=arguments.max_mx))
    now = time.time()
    if arguments.json:
        print(json.dumps(_domain_document(probed, now), indent=2))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        sys.stdout.write(domain_report(probed, now=now, colour=colour))
    failed = not probed.expansion.success or any(not pair.result.success for pair in probed.pairs)
    unreachable = any(not host.addresses for host in probed.expansion.mx_hosts)
    return 1 if failed or unreachable else 0


def domain_report(probed: DomainProbe, *, now: float, colour: bool = False) -> str:
    expansion = probed.expansion
    lines = [f"Domain {expansion.domain}"]
    if not expansion.success:
        reason = expansion.reason.value if expansion.reason else "dns_error"
        lines.append(f"FAILED {expansion.domain}: {reason}: {expansion.detail or 'the MX lookup failed'}")
        return "\n".join(lines) + "\n"
    if expansion.null_mx:
        lines.append(f"OK {expansion.domain}: null MX (RFC 7505): the domain accepts no mail; nothing to probe")
        return "\n".join(lines) + "\n"
    if expansion.implicit_mx:
        lines.append("No MX records: the domain's own address is its MX (RFC 5321 section 5.1)")
    rows = [("MX", "PREFERENCE", "ADDRESS", "RESULT", "TLS", "CERT DAYS", "REASON")]
    for host in expansion.mx_hosts:
        if not host.addresses:
            problems = ", ".join(problem.reason.value for problem in host.problems) or "no A/AAAA records"
            rows.append((host.name, str(host.preference), "-", "FAILED", "", "", f"no address ({problems})"))
    for pair in probed.pairs:
        result = pair.result
        tls = result.tls.version if result.tls else ""
        leaf = result.tls.leaf if result.tls else None
        days = leaf.days_left(now) if leaf is not None else None
        reasons = ",".join(dict.fromkeys(failure.reason.value for failure in result.failures))
        rows.append((
            pair.mx.name, str(pair.mx.preference), pair.address, "OK" if result.success else "FAILED", tls,
            f"{days:.1f}" if days is not None else "", reasons,
        ))  # fmt: skip
    rows.sort(key=lambda row: (row[0] != "MX", _preference(row[1]), row[0]))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    notes = [f"{host.name}: {note.value}" for host in expansion.mx_hosts for note in host.notes]
    if notes:
        lines.append("Notes: " + "; ".join(notes))
    for pair in probed.pairs:
        if not pair.result.success:
            lines += ["", human_report(pair.spec, pair.result, now=now, colour=colour).rstrip("\n")]
    failing = sum(not pair.result.success for pair in probed.pairs)
    unreachable = [host.name for host in expansion.mx_hosts if not host.addresses]
    verdict = "OK" if not failing and not unreachable else "FAILED"
    summary = f"{verdict} {expansion.domain}: {len(probed.pairs) - failing} of {len(probed.pairs)} pairs succeeded"
    if unreachable:
        summary += f"; MX without an address: {', '.join(unreachable)}"
    lines += ["", summary]
    return "\n".join(lines) + "\n"


def _preference(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _domain_document(probed: DomainProbe, now: float) -> dict[str, object]:
    """The JSON form of ``check --mx`` (docs/check-mx-result.schema.json, version 1)."""
    expansion = probed.expansion
    return {
        "schema_version": SCHEMA_VERSION,
        "domain": expansion.domain,
        "lookup_success": expansion.success,
        "reason": expansion.reason.value if expansion.reason else None,
        "implicit_mx": expansion.implicit_mx,
        "null_mx": expansion.null_mx,
        "mx_dnssec_secure": expansion.mx_dnssec_secure,
        "mx": [
            {
                "name": host.name,
                "preference": host.preference,
                "addresses": list(host.addresses),
                "addresses_dnssec_secure": host.addresses_dnssec_secure,
                "notes": [note.value for note in host.notes],
            }
            for host in expansion.mx_hosts
        ],
        "pairs": [
            {"mx": pair.mx.name, "address": pair.address, "result": result_document(pair.spec, pair.result, now=now)}
            for pair in probed.pairs
        ],
    }
