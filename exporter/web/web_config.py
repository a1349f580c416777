"""``--web.config.file``: exporter-toolkit's web configuration, strictly parsed into frozen dataclasses.

The keys are exporter-toolkit's (docs/web-configuration.md and web/tls_config.go
of prometheus/exporter-toolkit), so one file serves every exporter of a
host. Where Python's ``ssl`` module cannot do what a key asks, the file is
refused with a reason instead of being served differently from what it says.
Problems carry file, line and key path, like the main config's, and never a
password hash or an inline key.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from exporter.config.loader import ConfigError, located_document, read_text
from exporter.config.model import ConfigProblem
from exporter.config.secret import Secret
from exporter.config.yaml_source import Path as KeyPath
from exporter.config.yaml_source import YamlDocument, format_path


class ClientAuth(enum.StrEnum):
    """Go's tls.ClientAuthType names, as exporter-toolkit takes them."""

    NO_CLIENT_CERT = "NoClientCert"
    REQUEST_CLIENT_CERT = "RequestClientCert"
    REQUIRE_ANY_CLIENT_CERT = "RequireAnyClientCert"
    VERIFY_CLIENT_CERT_IF_GIVEN = "VerifyClientCertIfGiven"
    REQUIRE_AND_VERIFY_CLIENT_CERT = "RequireAndVerifyClientCert"

    @property
    def verifies(self) -> bool:
        return self in (ClientAuth.VERIFY_CLIENT_CERT_IF_GIVEN, ClientAuth.REQUIRE_AND_VERIFY_CLIENT_CERT)


# exporter-toolkit still accepts the old name for RequireAnyClientCert.
_CLIENT_AUTH_ALIASES = {"RequireClientCert": ClientAuth.REQUIRE_ANY_CLIENT_CERT}

# OpenSSL verifies every certificate it asks for: Python's ssl has no verify
# callback to accept an unverified one, so these two cannot be served as Go does.
_UNSUPPORTED_CLIENT_AUTH = {
    ClientAuth.REQUEST_CLIENT_CERT: "asks for a client certificate without verifying it",
    ClientAuth.REQUIRE_ANY_CLIENT_CERT: "requires a client certificate without verifying it",
}

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's tls.CipherSuites() names (IANA's) -> OpenSSL's. Go applies cipher_suites
# to TLS 1.0-1.2 only; its TLS 1.3 suites are accepted and, as in Go, change
# nothing (OpenSSL's TLS 1.3 suites are not settable through Python's ssl either).
CIPHER_SUITES: Mapping[str, str | None] = MappingProxyType(
    {
        "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
        "TLS_AES_128_GCM_SHA256": None,
        "TLS_AES_256_GCM_SHA384": None,
        "TLS_CHACHA20_POLY1305_SHA256": None,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    }
)

# exporter-toolkit's curve names -> OpenSSL's group names.
CURVES: Mapping[str, str] = MappingProxyType(
    {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
)

# exporter-toolkit's extraHTTPHeaders: the only headers it lets a file set,
# with the values allowed where the header's values are an enumeration.
HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Strict-Transport-Security": (),
        "X-Content-Type-Options": ("nosniff",),
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-XSS-Protection": (),
        "Content-Security-Policy": (),
    }
)

# $2a$, $2b$ and $2y$ (htpasswd's) hashes; the cost is two digits, 04 to 31.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
# Go's time.ParseDuration, which exporter-toolkit's rate_limit.interval goes through.
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

_TOP_LEVEL_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS_KEYS = (
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    "curve_preferences",
)  # fmt: skip
_HTTP_KEYS = ("http2", "headers")
_RATE_LIMIT_KEYS = ("interval", "burst")


@dataclass(frozen=True)
class TlsServerConfig:
    """``tls_server_config`` when it enables TLS; paths are absolute."""

    cert_file: Path | None
    key_file: Path | None
    # Inline PEM alternatives to the files (exporter-toolkit's cert, key, client_ca).
    cert_pem: str | None
    key_pem: Secret | None
    client_auth: ClientAuth
    client_ca_file: Path | None
    client_ca_pem: str | None
    # None: any verified client certificate; otherwise one of its SANs must be listed.
    client_allowed_sans: tuple[str, ...] | None
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion
    # OpenSSL names, in the configured order; empty: OpenSSL's defaults.
    openssl_ciphers: tuple[str, ...]
    prefer_server_cipher_suites: bool
    # OpenSSL group names; at most one (see _read_tls).
    curves: tuple[str, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        """Files read to build the TLS context; a change to any of them is a change of config."""
        return tuple(path for path in (self.cert_file, self.key_file, self.client_ca_file) if path is not None)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket over every request: ``burst`` tokens, one more each ``interval`` seconds."""

    interval: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    source: Path | None
    tls: TlsServerConfig | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # User name -> bcrypt hash. No users: no authentication.
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    rate_limit: RateLimit | None = None
    warnings: tuple[ConfigProblem, ...] = ()
    # Line of each key path, for problems found after parsing (a certificate
    # OpenSSL refuses is reported at its cert_file line).
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    def problem(self, key_path: str, message: str) -> ConfigProblem:
        return ConfigProblem(self.source or Path("(none)"), self.lines.get(key_path, 1), key_path, message)


# No --web.config.file: plain HTTP for everyone, as before.
OPEN = WebConfig(source=None)


def parse_duration_go(text: str) -> float:
    """Seconds of a Go duration such as ``1s``, ``500ms`` or ``1m30s``. Raises ValueError."""
    if text == "0":
        return 0.0
    position, seconds = 0, 0.0
    while position < len(text):
        match = _GO_DURATION_PART.match(text, position)
        if match is None:
            break
        seconds += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text!r} (a Go duration such as 1s, 500ms or 1m30s)")
    return seconds


def read_web_config(source: Path) -> WebConfig:
    """Read and validate ``source``. Raises ConfigError listing every problem."""
    return parse_web_config(read_text(source, "web config file"), source)


def parse_web_config(text: str, source: Path) -> WebConfig:
    document, problems = located_document(text, source)
    reader = _Reader(source, document)
    reader.problems.extend(problems)
    config = reader.read()
    if reader.problems:
        raise ConfigError(sorted(reader.problems, key=lambda problem: problem.line))
    return config


@dataclass
class _Reader:
    source: Path
    document: YamlDocument
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, self.document.line_of(path), format_path(path), message))

    def warn(self, path: KeyPath, message: str) -> None:
        self.warnings.append(ConfigProblem(self.source, self.document.line_of(path), format_path(path), message))

    def read(self) -> WebConfig:
        root = self.document.value if self.document.value is not None else {}
        if not isinstance(root, dict):
            self.problem((), f"the web config must be a mapping with any of: {', '.join(_TOP_LEVEL_KEYS)}")
            return OPEN
        self._reject_unknown_keys(root, (), _TOP_LEVEL_KEYS)
        headers = self._read_http(root.get("http_server_config"))
        lines = MappingProxyType({format_path(path): line for path, line in self.document.lines.items()})
        return WebConfig(
            source=self.source,
            tls=self._read_tls(root.get("tls_server_config")),
            headers=headers,
            users=MappingProxyType(self._read_users(root.get("basic_auth_users"))),
            rate_limit=self._read_rate_limit(root.get("rate_limit")),
            warnings=tuple(self.warnings),
            lines=lines,
        )

    def _mapping(self, raw: Any, path: KeyPath, keys: tuple[str, ...] | None) -> dict[Any, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problem(path, "must be a mapping")
            return {}
        if keys is not None:
            self._reject_unknown_keys(raw, path, keys)
        return raw

    def _reject_unknown_keys(self, raw: dict[Any, Any], path: KeyPath, known: tuple[str, ...]) -> None:
        for key in raw:
            if key not in known:
                self.problem((*path, str(key)), f"unknown key (expected one of: {', '.join(known)})")

    def _string(self, raw: Any, path: KeyPath) -> str | None:
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            self.problem(path, "must be a string")
            return None
        return raw

    def _strings(self, raw: Any, path: KeyPath) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            self.problem(path, "must be a list of strings")
            return []
        return list(raw)

    def _bool(self, raw: Any, path: KeyPath, default: bool) -> bool:
        if raw is None:
            return default
        if not isinstance(raw, bool):
            self.problem(path, f"must be true or false, not {raw!r}")
            return default
        return raw

    def _file(self, raw: Any, path: KeyPath) -> Path | None:
        text = self._string(raw, path)
        if text is None:
            return None
        # Relative to the web config file, as exporter-toolkit's SetDirectory does.
        return Path(text) if os.path.isabs(text) else self.source.parent / text

    def _read_tls(self, raw: Any) -> TlsServerConfig | None:
        base: KeyPath = ("tls_server_config",)
        tls = self._mapping(raw, base, _TLS_KEYS)

        def at(key: str) -> KeyPath:
            return (*base, key)

        cert_file, key_file = (
            self._file(tls.get("cert_file"), at("cert_file")),
            self._file(tls.get("key_file"), at("key_file")),
        )
        client_ca_file = self._file(tls.get("client_ca_file"), at("client_ca_file"))
        cert_pem, client_ca_pem = (
            self._string(tls.get("cert"), at("cert")),
            self._string(tls.get("client_ca"), at("client_ca")),
        )
        key_text = self._string(tls.get("key"), at("key"))
        client_auth_text = self._string(tls.get("client_auth_type"), at("client_auth_type"))
        # exporter-toolkit's IsEnabled: any of these turns TLS on; without them the server speaks plain HTTP.
        enabled = any(
            value is not None
            for value in (cert_file, key_file, client_ca_file, cert_pem, key_text, client_ca_pem, client_auth_text)
        )
        for key in ("min_version", "max_version", "cipher_suites", "curve_preferences", "client_allowed_sans"):
            if not enabled and tls.get(key) is not None:
                # exporter-toolkit serves plain HTTP here too; say so rather than refuse a shared file.
                self.warn(at(key), "has no effect: without cert_file and key_file the server speaks plain HTTP")
        if not enabled:
            return None
        for file_key, inline_key, name in (("cert_file", "cert", "certificate"), ("key_file", "key", "key")):
            given = [key for key in (file_key, inline_key) if tls.get(key) not in (None, "")]
            if not given:
                self.problem(base, f"TLS needs the server's {name}: {file_key} (or {inline_key}, inline PEM)")
            elif len(given) == 2:
                self.problem(at(inline_key), f"give {file_key} or {inline_key}, not both")
        if client_ca_file is not None and client_ca_pem is not None:
            self.problem(at("client_ca"), "give client_ca_file or client_ca, not both")

        client_auth = self._client_auth(client_auth_text, at("client_auth_type"))
        if (client_ca_file or client_ca_pem) and client_auth == ClientAuth.NO_CLIENT_CERT:
            self.problem(
                at("client_auth_type"), "client CAs are configured, but client_auth_type does not ask for a certificate"
            )
        allowed_sans: tuple[str, ...] | None = None
        if tls.get("client_allowed_sans") is not None:
            allowed_sans = tuple(self._strings(tls["client_allowed_sans"], at("client_allowed_sans")))
            if not client_auth.verifies:
                self.problem(
                    at("client_allowed_sans"),
                    "needs client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                )
        min_version = self._version(tls.get("min_version"), at("min_version"), "TLS12")
        max_version = self._version(tls.get("max_version"), at("max_version"), "TLS13")
        if min_version > max_version:
            self.problem(at("min_version"), "is above max_version")
        return TlsServerConfig(
            cert_file=cert_file,
            key_file=key_file,
            cert_pem=cert_pem,
            key_pem=Secret(key_text) if key_text is not None else None,
            client_auth=client_auth,
            client_ca_file=client_ca_file,
            client_ca_pem=client_ca_pem,
            client_allowed_sans=allowed_sans,
            min_version=min_version,
            max_version=max_version,
            openssl_ciphers=self._ciphers(tls.get("cipher_suites"), at("cipher_suites")),
            prefer_server_cipher_suites=self._bool(
                tls.get("prefer_server_cipher_suites"), at("prefer_server_cipher_suites"), True
            ),
            curves=self._curves(tls.get("curve_preferences"), at("curve_preferences")),
        )

    def _client_auth(self, text: str | None, path: KeyPath) -> ClientAuth:
        if text is None:
            return ClientAuth.NO_CLIENT_CERT
        choice = _CLIENT_AUTH_ALIASES.get(text) or next((auth for auth in ClientAuth if auth.value == text), None)
        if choice is None:
            self.problem(path, f"unknown value {text!r} (expected one of: {', '.join(ClientAuth)})")
            return ClientAuth.NO_CLIENT_CERT
        if choice in _UNSUPPORTED_CLIENT_AUTH:
            self.problem(
                path,
                f"{text} {_UNSUPPORTED_CLIENT_AUTH[choice]}, which Python's ssl module cannot do "
                "(OpenSSL verifies every certificate it asks for); use VerifyClientCertIfGiven or "
                "RequireAndVerifyClientCert with client_ca_file",
            )
        return choice

    def _version(self, raw: Any, path: KeyPath, default: str) -> ssl.TLSVersion:
        if raw is None:
            return TLS_VERSIONS[default]
        if raw not in TLS_VERSIONS:
            self.problem(path, f"unknown TLS version {raw!r} (expected one of: {', '.join(TLS_VERSIONS)})")
            return TLS_VERSIONS[default]
        return TLS_VERSIONS[raw]

    def _ciphers(self, raw: Any, path: KeyPath) -> tuple[str, ...]:
        names: list[str] = []
        for index, name in enumerate(self._strings(raw, path)):
            if name not in CIPHER_SUITES:
                self.problem((*path, index), f"unknown cipher {name!r} (expected Go's names, such as "
                             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")  # fmt: skip
                continue
            openssl_name = CIPHER_SUITES[name]
            if openssl_name is not None:
                names.append(openssl_name)
        return tuple(names)

    def _curves(self, raw: Any, path: KeyPath) -> tuple[str, ...]:
        curves: list[str] = []
        for index, name in enumerate(self._strings(raw, path)):
            if name not in CURVES:
                self.problem((*path, index), f"unknown curve {name!r} (expected one of: {', '.join(CURVES)})")
                continue
            curves.append(CURVES[name])
        if len(curves) > 1:
            # SSLContext.set_ecdh_curve takes one group; OpenSSL's list setter
            # (SSL_CTX_set1_groups_list) is not exposed by Python's ssl module.
            self.problem(path, "Python's ssl module can restrict the key exchange to one curve only, not a list")
        return tuple(curves)

    def _read_http(self, raw: Any) -> tuple[tuple[str, str], ...]:
        base: KeyPath = ("http_server_config",)
        http = self._mapping(raw, base, _HTTP_KEYS)
        if self._bool(http.get("http2"), (*base, "http2"), False):
            self.warn((*base, "http2"), "this exporter serves HTTP/1.1 only; clients that offer HTTP/2 fall back to it")
        headers: list[tuple[str, str]] = []
        for name, value in self._mapping(http.get("headers"), (*base, "headers"), None).items():
            path = (*base, "headers", str(name))
            if name not in HEADERS:
                self.problem(path, f"this header cannot be configured (expected one of: {', '.join(HEADERS)})")
            elif not isinstance(value, str):
                self.problem(path, "must be a string")
            elif HEADERS[name] and value not in HEADERS[name]:
                self.problem(path, f"invalid value {value!r} (expected one of: {', '.join(HEADERS[name])})")
            elif value:
                # Blank means unset, as in exporter-toolkit.
                headers.append((name, value))
        return tuple(headers)

    def _read_users(self, raw: Any) -> dict[str, bytes]:
        users: dict[str, bytes] = {}
        for name, hashed in self._mapping(raw, ("basic_auth_users",), None).items():
            path: KeyPath = ("basic_auth_users", str(name))
            if not isinstance(name, str) or not name:
                self.problem(path, "a user name must be a non-empty string")
            elif ":" in name:
                self.problem(path, "a user name cannot contain ':' (basic auth separates it from the password there)")
            # The hash is never quoted: it is what an attacker would crack offline.
            elif not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
                self.problem(path, "is not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
            elif not 4 <= int(hashed[4:6]) <= 31:
                self.problem(path, "has a bcrypt cost outside 4-31")
            else:
                users[name] = hashed.encode("ascii")
        return users

    def _read_rate_limit(self, raw: Any) -> RateLimit | None:
        base: KeyPath = ("rate_limit",)
        limit = self._mapping(raw, base, _RATE_LIMIT_KEYS)
        interval, burst = limit.get("interval"), limit.get("burst", 0)
        seconds = 0.0
        if interval is not None:
            try:
                if not isinstance(interval, str):
                    raise ValueError(f"must be a duration such as 1s or 500ms, not {interval!r}")
                seconds = parse_duration_go(interval)
            except ValueError as exc:
                self.problem((*base, "interval"), str(exc))
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            self.problem((*base, "burst"), f"must be a whole number of requests, not {burst!r}")
            return None
        # An interval of 0 turns the limiter off, as in exporter-toolkit.
        return RateLimit(seconds, burst) if seconds > 0 else None


def san_values(peer_certificate: Mapping[str, Any]) -> set[str]:
    """SANs of a verified peer certificate as Go prints them: DNS, e-mail, IP (canonical), URI."""
    values: set[str] = set()
    for kind, value in peer_certificate.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                values.add(str(ipaddress.ip_address(value.strip())))
            except ValueError:
                continue
        elif kind in ("DNS", "email", "URI"):
            values.add(value)
    return values
