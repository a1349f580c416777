"""The configuration file: strict YAML into frozen dataclasses, once, at load.

Every problem names the file, the line and the key path
(``config.yml:14: targets[3].tls: ...``), and all problems are reported at
once, so a person fixes a config in one pass.
"""

from __future__ import annotations

import enum
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from exporter.config.model import (
    DEFAULT_PORTS,
    AddressFamily,
    AddressSelection,
    AuthConfig,
    AuthMechanism,
    ClientCertificate,
    Config,
    ConfigProblem,
    DaneMode,
    DomainEntry,
    HostAddressesEntry,
    ProbeAllowRule,
    ProbeModule,
    ProbeOptions,
    ScheduledTarget,
    SendConfig,
    TlsMode,
    TlsRequirements,
    probe_spec,
)
from exporter.config.secret import PasswordUnavailable, Secret, password_from_env, password_from_file
from exporter.config.values import check_command_text, check_ehlo_name, check_mail_address, parse_duration
from exporter.config.yaml_source import Path as KeyPath
from exporter.config.yaml_source import YamlDocument, YamlSyntaxError, format_path, load_yaml
from exporter.dns.mail_domain import DEFAULT_MAX_MX
from exporter.dns.resolver import DnsSettings, parse_nameserver
from exporter.metrics.families import RESERVED_LABELS
from exporter.tls.client_certificate import ClientCertificateProblem, load_client_certificate
from exporter.tls.trust import ca_file_problem

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_Choice = TypeVar("_Choice", bound=enum.StrEnum)


class ConfigError(ValueError):
    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# Options a target may set and `defaults:` may give to every target.
_OPTION_KEYS = (
    "interval", "timeout", "ehlo_name", "tls", "ca_file", "client_cert_file", "client_key_file", "address_family",
    "auth", "allow_plaintext_auth", "send", "dane", "require", "tls_scan", "tls_scan_interval",
)  # fmt: skip
# /probe modules take the probe's options, `require:` included, but not the
# scan's: /probe answers one probe per scrape, and a scan (~140 connections,
# seconds long) per scrape would turn the endpoint into a connection amplifier.
_MODULE_KEYS = (
    "tls",
    "server_name",
    "ehlo_name",
    "timeout",
    "ca_file",
    "client_cert_file",
    "client_key_file",
    "address_family",
    "auth",
    "allow_plaintext_auth",
    "require",
    "mx",
    "max_mx",
    "dane",
)
_SCHEDULE_ONLY_KEYS = ("tls_scan", "tls_scan_interval")
_REQUIRE_KEYS = ("min_tls_version", "forward_secrecy")
# What `min_tls_version` may say (YAML reads an unquoted 1.2 as a number), as OpenSSL names the version.
_MIN_TLS_VERSIONS = {"1.0": "TLSv1", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}
# A scan opens ~140 connections one after another; more often than this it
# would look like an attack to the server's operators.
MIN_TLS_SCAN_INTERVAL = 60.0
# What /probe may reach when an allow-list entry names no ports: the SMTP ones.
DEFAULT_PROBE_PORTS = (25, 465, 587)
_AUTH_KEYS = ("username", "password", "password_env", "password_file", "mechanism")
_PASSWORD_SOURCES = ("password", "password_env", "password_file")
_SEND_KEYS = ("from", "to", "subject", "interval")
_TARGET_KEYS = ("name", "host", "port", "server_name", "labels", "addresses", "dns_interval", *_OPTION_KEYS)
# A domain's pairs are probed like host targets, without credentials or test
# messages: those belong to a submission server, not to every MX of a domain.
_DOMAIN_KEYS = (
    "domain", "name", "interval", "dns_interval", "max_mx", "address_family", "port", "tls", "ehlo_name",
    "ca_file", "client_cert_file", "client_key_file", "labels", "timeout", "dane", "require", "tls_scan",
    "tls_scan_interval",
)  # fmt: skip
_DNS_KEYS = ("nameservers", "timeout")
_TOP_LEVEL_KEYS = ("defaults", "targets", "domains", "dns", "modules", "probe_allow")
DEFAULT_DNS_INTERVAL = "5m"
# RFC 5321 section 4.5.3.1.2 bounds a domain at 255 octets; labels are letters,
# digits, hyphens (and underscores, which appear in real MX names).
_DOMAIN_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*"
)

_BUILTIN_DEFAULTS: Mapping[str, Any] = {
    "interval": "60s",
    "timeout": "15s",
    "tls": "starttls",
    "ca_file": None,
    "client_cert_file": None,
    "client_key_file": None,
    "address_family": "any",
    "allow_plaintext_auth": False,
    "tls_scan": True,
    "tls_scan_interval": "6h",
    "dane": "auto",
}


_Defaults = dict[str, tuple[Any, "KeyPath"]]
_OptionReader = Callable[[str], tuple[Any, "KeyPath"]]


def _option_reader(raw: dict[Any, Any], path: KeyPath, defaults: _Defaults) -> _OptionReader:
    """An option's value and key path: the entry's own, else the default's."""

    def option(key: str) -> tuple[Any, KeyPath]:
        if key in raw:
            return raw[key], (*path, key)
        return defaults.get(key, (None, (*path, key)))

    return option


def load_config(source: Path) -> Config:
    """Read and validate ``source``. Raises ConfigError listing every problem."""
    return parse_config(read_text(source, "config file"), source)


def read_text(source: Path, what: str) -> str:
    """The text of a YAML file of ours; ConfigError (line 0) when it cannot be read."""
    try:
        return source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigProblem(source, 0, "(file)", f"cannot read the {what}: {reason}")]) from exc


def located_document(text: str, source: Path) -> tuple[YamlDocument, list[ConfigProblem]]:
    """The YAML with its key paths' lines, and the problems found while reading it.

    Raises ConfigError for YAML that does not parse at all.
    """
    try:
        document = load_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError([ConfigProblem(source, exc.line, "(syntax)", f"invalid YAML: {exc}")]) from exc
    problems = [ConfigProblem(source, line, format_path(path), message) for path, line, message in document.problems]
    return document, problems


def parse_config(text: str, source: Path) -> Config:
    document, problems = located_document(text, source)
    reader = _Reader(source, document)
    reader.problems.extend(problems)
    config = reader.read_config()
    if reader.problems or config is None:
        raise ConfigError(sorted(reader.problems, key=lambda problem: problem.line))
    return config


@dataclass
class _Reader:
    source: Path
    document: YamlDocument
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)
    # Counts repeats too, so a target knows when one of its options failed.
    problems_seen: int = 0
    # Each pair of files is checked once, however many targets share it.
    client_certificates: dict[tuple[Path, Path], ClientCertificate | ClientCertificateProblem] = field(
        default_factory=dict
    )

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems_seen += 1
        problem = ConfigProblem(self.source, self.document.line_of(path), format_path(path), message)
        # A bad default is found once per target that uses it; say it once.
        if problem not in self.problems:
            self.problems.append(problem)

    def read_config(self) -> Config | None:
        root = self.document.value
        if root is None:
            root = {}
        if not isinstance(root, dict):
            self.problem((), "the config must be a mapping with a 'targets' list")
            return None
        self._reject_unknown_keys(root, (), _TOP_LEVEL_KEYS)
        defaults = self._read_defaults(root.get("defaults"))
        modules = self._read_modules(root.get("modules"), defaults)
        probe_allow = self._read_probe_allow(root.get("probe_allow"))
        dns = self._read_dns(root.get("dns"))
        # Without targets but with modules or domains, this exporter serves /probe or watches domains only.
        only_probe = "targets" not in root and (bool(modules) or "domains" in root)
        first_use: dict[str, str] = {}
        all_targets = () if only_probe else self._read_targets(root.get("targets"), defaults, first_use)
        domains = self._read_domains(root.get("domains"), defaults, first_use)
        targets = tuple(target for target in all_targets if isinstance(target, ScheduledTarget))
        host_addresses = tuple(target for target in all_targets if isinstance(target, HostAddressesEntry))
        return Config(
            source=self.source,
            targets=targets,
            domains=domains,
            host_addresses=host_addresses,
            dns=dns,
            warnings=tuple(self.warnings),
            modules=MappingProxyType(modules),
            probe_allow=probe_allow,
        )

    def _read_defaults(self, raw: Any) -> _Defaults:
        """Each option's default value and the key path it came from."""
        defaults: dict[str, tuple[Any, KeyPath]] = {
            key: (value, ("defaults", key)) for key, value in _BUILTIN_DEFAULTS.items()
        }
        if raw is None:
            return defaults
        if not isinstance(raw, dict):
            self.problem(("defaults",), "must be a mapping of target options")
            return defaults
        self._reject_unknown_keys(raw, ("defaults",), _OPTION_KEYS)
        defaults.update({key: (raw[key], ("defaults", key)) for key in _OPTION_KEYS if key in raw})
        return defaults

    def _read_dns(self, raw: Any) -> DnsSettings:
        raw = self._block(raw, ("dns",), _DNS_KEYS, "nameservers and timeout")
        if raw is None:
            return DnsSettings()
        nameservers: list[tuple[str, int]] = []
        raw_servers = raw.get("nameservers", [])
        if not isinstance(raw_servers, list):
            self.problem(("dns", "nameservers"), "must be a list such as [127.0.0.1, '[::1]:5353']")
            raw_servers = []
        for index, entry in enumerate(raw_servers):
            path: KeyPath = ("dns", "nameservers", index)
            text = self._string(entry, path)
            if text is None:
                continue
            try:
                nameservers.append(parse_nameserver(text))
            except ValueError as exc:
                self.problem(path, str(exc))
        timeout = self._duration(raw.get("timeout", "5s"), ("dns", "timeout"))
        return DnsSettings(tuple(nameservers), timeout if timeout is not None else 5.0)

    def _read_domains(self, raw: Any, defaults: _Defaults, first_use: dict[str, str]) -> tuple[DomainEntry, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(("domains",), "must be a list of {domain: NAME, ...} entries")
            return ()
        domains: list[DomainEntry] = []
        for index, entry in enumerate(raw):
            path: KeyPath = ("domains", index)
            domain = self._read_domain(entry, path, defaults)
            if domain is None:
                continue
            where = f"domains[{index}]"
            if domain.name in first_use:
                self.problem(
                    (*path, "name"), f"duplicate name {domain.name!r} (first used by {first_use[domain.name]})"
                )
                continue
            first_use[domain.name] = where
            domains.append(domain)
        return tuple(domains)

    def _read_domain(self, raw: Any, path: KeyPath, defaults: _Defaults) -> DomainEntry | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be a mapping with at least 'domain'")
            return None
        self._reject_unknown_keys(raw, path, _DOMAIN_KEYS)
        problems_before = self.problems_seen
        inherited = _option_reader(raw, path, defaults)

        def option(key: str) -> tuple[Any, KeyPath]:
            # No credentials or test messages from `defaults` on every MX of a domain.
            if key in ("auth", "send"):
                return None, (*path, key)
            return inherited(key)

        domain = self._domain_name(raw.get("domain"), (*path, "domain"))
        options = self._read_probe_options(option)
        port = self._port(raw.get("port", 25), (*path, "port"), None)
        interval = self._duration(*option("interval"))
        dns_interval = self._duration(raw.get("dns_interval", DEFAULT_DNS_INTERVAL), (*path, "dns_interval"))
        max_mx = self._count(raw.get("max_mx", DEFAULT_MAX_MX), (*path, "max_mx"))
        if interval is not None and options is not None and options.timeout >= interval:
            self.problem(
                option("timeout")[1],
                f"timeout ({_seconds(options.timeout)}) must be shorter than the interval ({_seconds(interval)})",
            )
        name = self._string(raw.get("name"), (*path, "name")) or domain
        labels = self._labels(raw.get("labels"), (*path, "labels"))
        tls_scan = self._on_off(*option("tls_scan"))
        tls_scan_interval = self._duration(*option("tls_scan_interval"), minimum=MIN_TLS_SCAN_INTERVAL)
        if (
            self.problems_seen > problems_before
            or domain is None
            or name is None
            or options is None
            or port is None
            or interval is None
            or dns_interval is None
            or max_mx is None
        ):
            return None
        # Every (MX host, address) pair is scanned, each on its own schedule slot.
        scanned = tls_scan and options.tls is not TlsMode.NONE
        return DomainEntry(
            name,
            domain,
            port,
            options,
            interval,
            dns_interval,
            max_mx,
            labels,
            tls_scan_interval=tls_scan_interval if scanned else None,
        )

    def _domain_name(self, raw: Any, path: KeyPath) -> str | None:
        text = self._string(raw, path, required=True)
        if text is None:
            return None
        name = text.lower().removesuffix(".")
        if not _DOMAIN_NAME.fullmatch(name):
            self.problem(path, f"{text!r} is not a domain name")
            return None
        return name

    def _count(self, raw: Any, path: KeyPath) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            self.problem(path, f"must be a whole number of at least 1, not {raw!r}")
            return None
        return raw

    def _read_targets(
        self, raw: Any, defaults: _Defaults, first_use: dict[str, str]
    ) -> tuple[ScheduledTarget | HostAddressesEntry, ...]:
        if raw is None:
            self.problem(("targets",), "is required: list at least one SMTP server to probe (or define modules)")
            return ()
        if not isinstance(raw, list):
            self.problem(("targets",), "must be a list of targets")
            return ()
        if not raw:
            self.problem(("targets",), "is empty: list at least one SMTP server to probe")
            return ()
        targets: list[ScheduledTarget | HostAddressesEntry] = []
        for index, entry in enumerate(raw):
            target = self._read_target(entry, ("targets", index), defaults)
            explicit_name = entry.get("name") if isinstance(entry, dict) else None
            name = explicit_name if isinstance(explicit_name, str) else (target.name if target else None)
            if name is not None and name in first_use:
                self.problem(
                    ("targets", index, "name"),
                    f"duplicate target name {name!r} (first used by {first_use[name]})",
                )
                continue
            if name is not None:
                first_use[name] = f"targets[{index}]"
            if target is not None:
                targets.append(target)
        return tuple(targets)

    def _read_target(self, raw: Any, path: KeyPath, defaults: _Defaults) -> ScheduledTarget | HostAddressesEntry | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be a mapping with at least 'host'")
            return None
        self._reject_unknown_keys(raw, path, _TARGET_KEYS)
        problems_before = self.problems_seen
        option = _option_reader(raw, path, defaults)
        host = self._string(raw.get("host"), (*path, "host"), required=True)
        options = self._read_probe_options(option)
        port = self._port(raw.get("port"), (*path, "port"), options.tls if options else None)
        interval = self._duration(*option("interval"))
        if interval is not None and options is not None and options.timeout >= interval:
            self.problem(
                option("timeout")[1],
                f"timeout ({_seconds(options.timeout)}) must be shorter than the interval ({_seconds(interval)})",
            )
        server_name = self._string(raw.get("server_name"), (*path, "server_name")) or host
        name = self._string(raw.get("name"), (*path, "name")) or (f"{host}:{port}" if host and port else "")
        labels = self._labels(raw.get("labels"), (*path, "labels"))
        send = self._send(*option("send"))
        tls_scan = self._on_off(*option("tls_scan"))
        tls_scan_interval = self._duration(*option("tls_scan_interval"), minimum=MIN_TLS_SCAN_INTERVAL)
        addresses = self._choice(raw.get("addresses", "first"), (*path, "addresses"), AddressSelection)
        dns_interval: float | None = None
        if "dns_interval" in raw:
            dns_interval = self._duration(raw["dns_interval"], (*path, "dns_interval"))
            if addresses is AddressSelection.FIRST:
                self.problem((*path, "dns_interval"), "applies only with addresses: all")
        if (
            self.problems_seen > problems_before
            or options is None
            or host is None
            or port is None
            or interval is None
            or server_name is None
            or addresses is None
        ):
            return None
        spec = probe_spec(host, port, options, server_name=server_name, send=send)
        # A plain relay (tls: none) has no TLS to scan; tls_scan stays on for
        # the others by default, so it is not an error to leave it on there.
        scanned = tls_scan and options.tls is not TlsMode.NONE
        target = ScheduledTarget(
            name=name,
            spec=spec,
            interval=interval,
            labels=labels,
            tls_scan_interval=tls_scan_interval if scanned else None,
        )
        if addresses is AddressSelection.FIRST:
            return target
        default_dns_interval = parse_duration(DEFAULT_DNS_INTERVAL)
        return HostAddressesEntry(target, options, dns_interval if dns_interval is not None else default_dns_interval)

    def _read_probe_options(self, option: _OptionReader) -> ProbeOptions | None:
        """The options targets and /probe modules share."""
        problems_before = self.problems_seen
        tls = self._choice(*option("tls"), TlsMode)
        timeout = self._duration(*option("timeout"))
        ehlo_raw, ehlo_path = option("ehlo_name")
        ehlo_name = self._ehlo_name(ehlo_raw, ehlo_path) if ehlo_raw is not None else socket.gethostname()
        ca_file = self._ca_file(*option("ca_file"))
        client_certificate = self._client_certificate(option)
        family = self._choice(*option("address_family"), AddressFamily)
        auth = self._auth(*option("auth"))
        allow_plaintext_auth = self._bool(*option("allow_plaintext_auth"))
        require = self._require(*option("require"))
        if require is not None and tls is TlsMode.NONE:
            self.problem(option("require")[1], "needs TLS, and tls is none: there is no session to hold to it")
        dane = self._choice(*option("dane"), DaneMode)
        if (
            self.problems_seen > problems_before
            or tls is None
            or timeout is None
            or ehlo_name is None
            or family is None
            or allow_plaintext_auth is None
            or dane is None
        ):
            return None
        return ProbeOptions(
            tls,
            timeout,
            ehlo_name,
            ca_file,
            family,
            auth,
            allow_plaintext_auth,
            require=require,
            dane=dane,
            client_certificate=client_certificate,
        )

    def _read_modules(self, raw: Any, defaults: _Defaults) -> dict[str, ProbeModule]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problem(("modules",), "must be a mapping of module names to probe options")
            return {}
        modules: dict[str, ProbeModule] = {}
        for name, entry in raw.items():
            path: KeyPath = ("modules", str(name))
            if not isinstance(entry, dict):
                self.problem(path, "must be a mapping of probe options (it may be empty: {})")
                continue
            for key in _SCHEDULE_ONLY_KEYS:
                if key in entry:
                    self.problem((*path, key), "scans run on schedule only: set it on targets or defaults")
            self._reject_unknown_keys(
                {k: v for k, v in entry.items() if k not in _SCHEDULE_ONLY_KEYS}, path, _MODULE_KEYS
            )
            option = _option_reader(entry, path, defaults)
            options = self._read_probe_options(option)
            server_name = self._string(entry.get("server_name"), (*path, "server_name"))
            mx = self._bool(entry.get("mx", False), (*path, "mx"))
            max_mx = self._count(entry.get("max_mx", DEFAULT_MAX_MX), (*path, "max_mx"))
            if mx and server_name is not None:
                self.problem(
                    (*path, "server_name"), "cannot be set with mx: true (each MX host is its own server name)"
                )
            if options is not None and mx is not None and max_mx is not None:
                modules[str(name)] = ProbeModule(str(name), server_name, options, mx, max_mx)
        return modules

    def _read_probe_allow(self, raw: Any) -> tuple[ProbeAllowRule, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(("probe_allow",), "must be a list of {host: PATTERN, ports: [...]} entries")
            return ()
        rules: list[ProbeAllowRule] = []
        for index, entry in enumerate(raw):
            path: KeyPath = ("probe_allow", index)
            if not isinstance(entry, dict):
                self.problem(path, "must be a mapping with 'host' (a name pattern or an address range)")
                continue
            self._reject_unknown_keys(entry, path, ("host", "ports"))
            pattern = self._string(entry.get("host"), (*path, "host"), required=True)
            raw_ports = entry.get("ports", list(DEFAULT_PROBE_PORTS))
            ports = (
                [self._port(port, (*path, "ports"), None) for port in raw_ports] if isinstance(raw_ports, list) else []
            )
            if not isinstance(raw_ports, list) or not raw_ports:
                self.problem((*path, "ports"), "must be a non-empty list of port numbers")
            if pattern is None or None in ports or not ports:
                continue
            rules.append(ProbeAllowRule.parse(pattern, frozenset(port for port in ports if port is not None)))
        return tuple(rules)

    def _reject_unknown_keys(self, raw: dict[Any, Any], path: KeyPath, known: Sequence[str]) -> None:
        for key in raw:
            if key not in known:
                self.problem((*path, str(key)), f"unknown key (expected one of: {', '.join(known)})")

    def _string(self, raw: Any, path: KeyPath, *, required: bool = False) -> str | None:
        if raw is None:
            if required:
                self.problem(path, "is required")
            return None
        if not isinstance(raw, str) or not raw.strip():
            self.problem(path, "must be a non-empty string")
            return None
        try:
            # Config values reach SMTP command lines, SNI, labels and logs.
            return check_command_text(raw.strip())
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def _ehlo_name(self, raw: Any, path: KeyPath) -> str | None:
        name = self._string(raw, path)
        if name is None:
            return None
        try:
            return check_ehlo_name(name)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def _port(self, raw: Any, path: KeyPath, tls: TlsMode | None) -> int | None:
        if raw is None:
            return DEFAULT_PORTS[tls] if tls is not None else None
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
            self.problem(path, f"must be a port number from 1 to 65535, not {raw!r}")
            return None
        return raw

    def _duration(self, raw: Any, path: KeyPath, *, minimum: float = 0.0) -> float | None:
        if not isinstance(raw, str):
            self.problem(path, f"must be a duration such as 30s, 5m or 1h, not {raw!r}")
            return None
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        if seconds <= 0:
            self.problem(path, "must be longer than zero")
            return None
        if seconds < minimum:
            self.problem(path, f"must be at least {_seconds(minimum)}, not {raw}")
            return None
        return seconds

    def _choice(self, raw: Any, path: KeyPath, choices: type[_Choice]) -> _Choice | None:
        """One of an enum's values, compared without regard to case."""
        for choice in choices:
            if isinstance(raw, str) and raw.lower() == choice.value.lower():
                return choice
        names = ", ".join(choice.value for choice in choices)
        self.problem(path, f"unknown value {raw!r} (expected one of: {names})")
        return None

    def _ca_file(self, raw: Any, path: KeyPath) -> Path | None:
        if raw is None:
            return None
        text = self._string(raw, path)
        if text is None:
            return None
        ca_file = self._relative(text)
        try:
            content = ca_file.read_bytes()
        except OSError as exc:
            self.problem(path, f"cannot read {ca_file}: {exc.strerror or exc}")
            return None
        if b"-----BEGIN CERTIFICATE-----" not in content:
            self.problem(path, f"{ca_file} holds no PEM certificate")
            return None
        problem = ca_file_problem(ca_file)
        if problem is not None:
            self.problem(path, problem)
            return None
        return ca_file

    def _on_off(self, raw: Any, path: KeyPath) -> bool | None:
        # YAML 1.1 (PyYAML) already reads a bare on/off as true/false; quoted, they are strings.
        if isinstance(raw, str) and raw.lower() in ("on", "off"):
            return raw.lower() == "on"
        if not isinstance(raw, bool):
            self.problem(path, f"must be on or off, not {raw!r}")
            return None
        return raw

    def _require(self, raw: Any, path: KeyPath) -> TlsRequirements | None:
        raw = self._block(raw, path, _REQUIRE_KEYS, "min_tls_version and/or forward_secrecy")
        if raw is None:
            return None
        minimum: str | None = None
        if "min_tls_version" in raw:
            value = raw["min_tls_version"]
            # An unquoted 1.2 arrives as a float; 1.0 as 1.0, which str() keeps.
            text = str(value) if isinstance(value, (str, float)) else None
            minimum = _MIN_TLS_VERSIONS.get(text or "")
            if minimum is None:
                choices = ", ".join(f'"{version}"' for version in _MIN_TLS_VERSIONS)
                self.problem((*path, "min_tls_version"), f"unknown TLS version {value!r} (expected one of: {choices})")
                return None
        forward_secrecy = self._bool(raw.get("forward_secrecy", False), (*path, "forward_secrecy"))
        if forward_secrecy is None:
            return None
        if minimum is None and not forward_secrecy:
            return None  # nothing required
        return TlsRequirements(min_tls_version=minimum, forward_secrecy=forward_secrecy)

    def _client_certificate(self, option: _OptionReader) -> ClientCertificate | None:
        """Both files or neither; readable, a matching pair, checked now (a 3 a.m. probe is too late)."""
        (cert_raw, cert_path), (key_raw, key_path) = option("client_cert_file"), option("client_key_file")
        if cert_raw is None and key_raw is None:
            return None
        if cert_raw is None or key_raw is None:
            # Located where the one given is: the missing one has no line.
            given, missing = (cert_path, "client_key_file") if key_raw is None else (key_path, "client_cert_file")
            self.problem(given, f"needs {missing} too (a client certificate is both files or neither)")
            return None
        cert_text, key_text = self._string(cert_raw, cert_path), self._string(key_raw, key_path)
        if cert_text is None or key_text is None:
            return None
        files = (self._relative(cert_text), self._relative(key_text))
        loaded = self.client_certificates.get(files)
        if loaded is None:
            try:
                loaded = load_client_certificate(*files)
            except ClientCertificateProblem as exc:
                loaded = exc
            self.client_certificates[files] = loaded
        if isinstance(loaded, ClientCertificateProblem):
            self.problem(key_path if loaded.key_file_at_fault else cert_path, str(loaded))
            return None
        return loaded

    def _relative(self, name: str) -> Path:
        """A file named in the config: relative names are relative to the config file."""
        return (self.source.parent / name) if not os.path.isabs(name) else Path(name)

    def _bool(self, raw: Any, path: KeyPath) -> bool | None:
        if not isinstance(raw, bool):
            self.problem(path, f"must be true or false, not {raw!r}")
            return None
        return raw

    def _block(self, raw: Any, path: KeyPath, keys: Sequence[str], expected: str) -> dict[Any, Any] | None:
        """An optional mapping with known keys; None when absent or unusable."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.problem(path, f"must be a mapping with {expected}")
            return None
        self._reject_unknown_keys(raw, path, keys)
        return raw

    def _auth(self, raw: Any, path: KeyPath) -> AuthConfig | None:
        raw = self._block(raw, path, _AUTH_KEYS, "username and one of password_env, password_file, password")
        if raw is None:
            return None
        username = self._string(raw.get("username"), (*path, "username"), required=True)
        sources = [key for key in _PASSWORD_SOURCES if key in raw]
        if len(sources) != 1:
            self.problem(path, "needs exactly one of password_env, password_file or password")
            return None
        password = self._password(sources[0], raw[sources[0]], (*path, sources[0]))
        mechanism: AuthMechanism | None = None
        if raw.get("mechanism", "auto") != "auto":
            mechanism = self._choice(raw["mechanism"], (*path, "mechanism"), AuthMechanism)
            if mechanism is None:
                return None
        if username is None or password is None:
            return None
        return AuthConfig(username=username, password=password, mechanism=mechanism)

    def _password(self, source: str, raw: Any, path: KeyPath) -> Secret | None:
        """Read the password now, so a missing one is a config error, not a 3 a.m. probe failure.

        No message here may quote the password or a file's content.
        """
        if source == "password":
            if not isinstance(raw, str) or not raw:
                self.problem(path, "must be a non-empty string")
                return None
            self.warnings.append(
                ConfigProblem(
                    self.source,
                    self.document.line_of(path),
                    format_path(path),
                    "a literal password in the config file; prefer password_env or password_file",
                )
            )
            return Secret(raw)
        name = self._string(raw, path)
        if name is None:
            return None
        try:
            if source == "password_env":
                return password_from_env(name)
            return password_from_file(self.source.parent / name)  # an absolute name replaces the parent
        except PasswordUnavailable as exc:
            self.problem(path, str(exc))
            return None

    def _send(self, raw: Any, path: KeyPath) -> SendConfig | None:
        raw = self._block(raw, path, _SEND_KEYS, "from and to")
        if raw is None:
            return None
        sender = self._address(raw.get("from"), (*path, "from"))
        raw_to = raw.get("to")
        to_list = raw_to if isinstance(raw_to, list) else [raw_to]
        if not to_list:
            self.problem((*path, "to"), "needs at least one recipient")
        recipients = [self._address(value, (*path, "to")) for value in to_list]
        subject = self._string(raw.get("subject", "SMTP probe"), (*path, "subject"))
        interval = self._duration(raw.get("interval", "1h"), (*path, "interval"))
        if sender is None or subject is None or interval is None or None in recipients or not to_list:
            return None
        return SendConfig(
            sender=sender,
            recipients=tuple(recipient for recipient in recipients if recipient is not None),
            subject=subject,
            interval=interval,
        )

    def _address(self, raw: Any, path: KeyPath) -> str | None:
        address = self._string(raw, path, required=True)
        if address is None:
            return None
        try:
            return check_mail_address(address)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def _labels(self, raw: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.problem(path, "must be a mapping of label names to values")
            return ()
        labels: list[tuple[str, str]] = []
        for key, value in raw.items():
            key_path = (*path, str(key))
            if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
                self.problem(key_path, "is not a valid Prometheus label name")
            elif key in RESERVED_LABELS:
                self.problem(key_path, "is set by the exporter itself; choose another label name")
            elif isinstance(value, (dict, list)) or value is None:
                self.problem(key_path, "label values must be strings")
            else:
                labels.append((key, str(value)))
        return tuple(sorted(labels))


def _seconds(value: float) -> str:
    return f"{value:g}s"
