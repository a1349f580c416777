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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from exporter.yaml_source import Path as KeyPath
from exporter.yaml_source import YamlDocument, YamlSyntaxError, format_path, load_yaml


class TlsMode(enum.StrEnum):
    STARTTLS = "starttls"
    IMPLICIT = "implicit"
    NONE = "none"


class AddressFamily(enum.StrEnum):
    ANY = "any"
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def socket_family(self) -> socket.AddressFamily:
        return {
            AddressFamily.ANY: socket.AF_UNSPEC,
            AddressFamily.IPV4: socket.AF_INET,
            AddressFamily.IPV6: socket.AF_INET6,
        }[self]


# The port a target gets when none is configured, by how it speaks TLS.
DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.IMPLICIT: 465, TlsMode.NONE: 25}

# Labels the exporter sets itself; a static label must not shadow them.
RESERVED_LABELS = frozenset(
    {
        "target", "phase", "reason", "version", "cipher", "mechanism",
        "host", "port", "tls", "server_name",
        "subject", "issuer", "serial", "fingerprint_sha256", "fingerprint_sha1",
        "san", "key_type", "key_bits", "signature_algorithm", "job", "instance",
    }
)  # fmt: skip
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_Choice = TypeVar("_Choice", bound=enum.StrEnum)


@dataclass(frozen=True)
class TargetConfig:
    name: str
    host: str
    port: int
    tls: TlsMode
    server_name: str
    ehlo_name: str
    interval: float
    timeout: float
    ca_file: Path | None = None
    address_family: AddressFamily = AddressFamily.ANY
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Config:
    source: Path
    targets: tuple[TargetConfig, ...]


@dataclass(frozen=True)
class ConfigProblem:
    source: Path
    line: int
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.key_path}: {self.message}"


class ConfigError(ValueError):
    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# Options a target may set and `defaults:` may give to every target.
_OPTION_KEYS = ("interval", "timeout", "ehlo_name", "tls", "ca_file", "address_family")
_TARGET_KEYS = ("name", "host", "port", "server_name", "labels", *_OPTION_KEYS)
_TOP_LEVEL_KEYS = ("defaults", "targets")

_BUILTIN_DEFAULTS: Mapping[str, Any] = {
    "interval": "60s",
    "timeout": "15s",
    "tls": "starttls",
    "ca_file": None,
    "address_family": "any",
}


def load_config(source: Path) -> Config:
    """Read and validate ``source``. Raises ConfigError listing every problem."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigProblem(source, 0, "(file)", f"cannot read the config file: {reason}")]) from exc
    return parse_config(text, source)


def parse_config(text: str, source: Path) -> Config:
    try:
        document = load_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError([ConfigProblem(source, exc.line, "(syntax)", f"invalid YAML: {exc}")]) from exc
    reader = _Reader(source, document)
    for path, line, message in document.problems:
        reader.problems.append(ConfigProblem(source, line, format_path(path), message))
    config = reader.read_config()
    if reader.problems or config is None:
        raise ConfigError(sorted(reader.problems, key=lambda problem: problem.line))
    return config


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration such as ``30s``, ``5m`` or ``1h30m``."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"invalid duration {text!r} (use a number with a unit, such as 30s, 5m or 1h)")
    return float(sum(int(value) * unit for value, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if value))


@dataclass
class _Reader:
    source: Path
    document: YamlDocument
    problems: list[ConfigProblem] = field(default_factory=list)
    # Counts repeats too, so a target knows when one of its options failed.
    problems_seen: int = 0

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
        targets = self._read_targets(root.get("targets"), defaults)
        return Config(source=self.source, targets=targets)

    def _read_defaults(self, raw: Any) -> dict[str, tuple[Any, KeyPath]]:
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

    def _read_targets(self, raw: Any, defaults: dict[str, tuple[Any, KeyPath]]) -> tuple[TargetConfig, ...]:
        if raw is None:
            self.problem(("targets",), "is required: list at least one SMTP server to probe")
            return ()
        if not isinstance(raw, list):
            self.problem(("targets",), "must be a list of targets")
            return ()
        if not raw:
            self.problem(("targets",), "is empty: list at least one SMTP server to probe")
            return ()
        targets: list[TargetConfig] = []
        first_use: dict[str, int] = {}
        for index, entry in enumerate(raw):
            target = self._read_target(entry, ("targets", index), defaults)
            explicit_name = entry.get("name") if isinstance(entry, dict) else None
            name = explicit_name if isinstance(explicit_name, str) else (target.name if target else None)
            if name is not None and name in first_use:
                self.problem(
                    ("targets", index, "name"),
                    f"duplicate target name {name!r} (first used by targets[{first_use[name]}])",
                )
                continue
            if name is not None:
                first_use[name] = index
            if target is not None:
                targets.append(target)
        return tuple(targets)

    def _read_target(self, raw: Any, path: KeyPath, defaults: dict[str, tuple[Any, KeyPath]]) -> TargetConfig | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be a mapping with at least 'host'")
            return None
        self._reject_unknown_keys(raw, path, _TARGET_KEYS)
        problems_before = self.problems_seen

        def option(key: str) -> tuple[Any, KeyPath]:
            if key in raw:
                return raw[key], (*path, key)
            return defaults.get(key, (None, (*path, key)))

        host = self._string(raw.get("host"), (*path, "host"), required=True)
        tls = self._choice(*option("tls"), TlsMode)
        port = self._port(raw.get("port"), (*path, "port"), tls)
        interval = self._duration(*option("interval"))
        timeout = self._duration(*option("timeout"))
        if interval is not None and timeout is not None and timeout >= interval:
            self.problem(
                option("timeout")[1],
                f"timeout ({_seconds(timeout)}) must be shorter than the interval ({_seconds(interval)})",
            )
        ehlo_raw, ehlo_path = option("ehlo_name")
        ehlo_name = self._string(ehlo_raw, ehlo_path) if ehlo_raw is not None else socket.gethostname()
        server_name = self._string(raw.get("server_name"), (*path, "server_name")) or host
        name = self._string(raw.get("name"), (*path, "name")) or (f"{host}:{port}" if host and port else "")
        ca_file = self._ca_file(*option("ca_file"))
        family = self._choice(*option("address_family"), AddressFamily)
        labels = self._labels(raw.get("labels"), (*path, "labels"))
        if (
            self.problems_seen > problems_before
            or host is None
            or port is None
            or tls is None
            or interval is None
            or timeout is None
            or family is None
            or ehlo_name is None
            or server_name is None
        ):
            return None
        return TargetConfig(
            name=name,
            host=host,
            port=port,
            tls=tls,
            server_name=server_name,
            ehlo_name=ehlo_name,
            interval=interval,
            timeout=timeout,
            ca_file=ca_file,
            address_family=family,
            labels=labels,
        )

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
        return raw.strip()

    def _port(self, raw: Any, path: KeyPath, tls: TlsMode | None) -> int | None:
        if raw is None:
            return DEFAULT_PORTS[tls] if tls is not None else None
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
            self.problem(path, f"must be a port number from 1 to 65535, not {raw!r}")
            return None
        return raw

    def _duration(self, raw: Any, path: KeyPath) -> float | None:
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
        return seconds

    def _choice(self, raw: Any, path: KeyPath, choices: type[_Choice]) -> _Choice | None:
        try:
            return choices(str(raw).lower()) if isinstance(raw, str) else choices(raw)
        except ValueError:
            names = ", ".join(choice.value for choice in choices)
            self.problem(path, f"unknown value {raw!r} (expected one of: {names})")
            return None

    def _ca_file(self, raw: Any, path: KeyPath) -> Path | None:
        if raw is None:
            return None
        text = self._string(raw, path)
        if text is None:
            return None
        ca_file = (self.source.parent / text) if not os.path.isabs(text) else Path(text)
        try:
            content = ca_file.read_bytes()
        except OSError as exc:
            self.problem(path, f"cannot read {ca_file}: {exc.strerror or exc}")
            return None
        if b"-----BEGIN CERTIFICATE-----" not in content:
            self.problem(path, f"{ca_file} holds no PEM certificate")
            return None
        return ca_file

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
