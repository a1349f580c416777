"""Config loading: strict, complete error reports with file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.loader import ConfigError, load_config, parse_config
from exporter.config.model import AddressFamily, AuthMechanism, ConfigProblem, TlsMode
from exporter.config.values import parse_duration


def _problems(text: str, tmp_path: Path) -> list[str]:
    source = tmp_path / "config.yml"
    source.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(source)
    return [str(problem) for problem in caught.value.problems]


def test_defaults_apply_and_targets_override(tmp_path: Path) -> None:
    source = tmp_path / "config.yml"
    source.write_text(
        """
defaults:
  interval: 5m
  timeout: 20s
  ehlo_name: probe.example.net
targets:
  - host: smtp.example.com
  - name: submission
    host: smtp.example.com
    port: 587
    server_name: mail.example.com
    tls: implicit
    interval: 1h
    address_family: ipv6
    labels: {team: mail, tier: 1}
"""
    )
    config = load_config(source)
    first, second = config.targets
    assert first.name == "smtp.example.com:587"
    assert (first.spec.port, first.spec.tls, first.interval, first.spec.timeout) == (587, TlsMode.STARTTLS, 300.0, 20.0)
    assert first.spec.server_name == "smtp.example.com"
    assert first.spec.ehlo_name == "probe.example.net"
    assert second.spec.tls is TlsMode.IMPLICIT
    assert second.interval == 3600.0
    assert second.spec.server_name == "mail.example.com"
    assert second.spec.address_family is AddressFamily.IPV6
    assert second.labels == (("team", "mail"), ("tier", "1"))


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("implicit", 465), ("none", 25)])
def test_default_port_follows_the_tls_mode(tmp_path: Path, tls: str, port: int) -> None:
    config = parse_config(f"targets:\n  - host: mx.example.com\n    tls: {tls}\n", tmp_path / "c.yml")
    assert config.targets[0].spec.port == port


def test_every_problem_is_reported_with_file_line_and_path(tmp_path: Path) -> None:
    problems = _problems(
        """defaults:
  interval: 60
  timeot: 5s
targets:
  - host: a.example.com
    tls: startls
  - host: b.example.com
    port: 70000
  - name: dup
    host: c.example.com
  - name: dup
    host: d.example.com
  - port: 25
    labels: {target: x, "bad-name": y}
""",
        tmp_path,
    )
    source = tmp_path / "config.yml"
    expected = [
        f"{source}:2: defaults.interval: must be a duration such as 30s, 5m or 1h, not 60",
        f"{source}:3: defaults.timeot: unknown key",
        f"{source}:6: targets[0].tls: unknown value 'startls' (expected one of: starttls, implicit, none)",
        f"{source}:8: targets[1].port: must be a port number from 1 to 65535, not 70000",
        f"{source}:11: targets[3].name: duplicate target name 'dup' (first used by targets[2])",
        f"{source}:13: targets[4].host: is required",
        f"{source}:14: targets[4].labels.target: is set by the exporter itself",
        f"{source}:14: targets[4].labels.bad-name: is not a valid Prometheus label name",
    ]
    for wanted in expected:
        assert any(problem.startswith(wanted) for problem in problems), (wanted, problems)


def test_timeout_must_be_shorter_than_interval(tmp_path: Path) -> None:
    problems = _problems("targets:\n  - host: a.example.com\n    interval: 10s\n    timeout: 10s\n", tmp_path)
    assert problems == [
        f"{tmp_path / 'config.yml'}:4: targets[0].timeout: timeout (10s) must be shorter than the interval (10s)"
    ]


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    problems = _problems("targets:\n  - host: a.example.com\n    host: b.example.com\n", tmp_path)
    assert problems == [f"{tmp_path / 'config.yml'}:3: targets[0].host: duplicate key 'host'"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("targets: [\n", ":2: (syntax): invalid YAML"),
        ("", ":1: targets: is required"),
        ("targets: []\n", ":1: targets: is empty"),
        ("- host: a\n", ":1: (top level): the config must be a mapping"),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, expected: str) -> None:
    problems = _problems(text, tmp_path)
    assert len(problems) == 1
    assert expected in problems[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file: No such file or directory"):
        load_config(tmp_path / "missing.yml")


def test_ca_file_must_hold_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("nothing here\n")
    problems = _problems("targets:\n  - host: a.example.com\n    ca_file: empty.pem\n", tmp_path)
    assert problems == [
        f"{tmp_path / 'config.yml'}:3: targets[0].ca_file: {tmp_path / 'empty.pem'} holds no PEM certificate"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1500ms", 1.5), ("2w", 1209600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "60", "5 m", "1m1h", "-5s", "1.5s"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "config.example.yml"
    assert load_config(example).targets


def test_auth_passwords_come_from_env_file_or_literal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_PASSWORD", "from-env")
    (tmp_path / "password").write_text("from-file\n")
    source = tmp_path / "config.yml"
    source.write_text(
        """targets:
  - name: env
    host: a.test
    auth: {username: u, password_env: PROBE_PASSWORD}
  - name: file
    host: a.test
    auth: {username: u, password_file: password, mechanism: cram-md5}
  - name: literal
    host: a.test
    auth: {username: u, password: from-literal}
"""
    )
    config = load_config(source)
    passwords = [target.spec.auth.password.reveal() for target in config.targets if target.spec.auth]
    assert passwords == ["from-env", "from-file", "from-literal"]
    assert config.targets[1].spec.auth is not None
    assert config.targets[1].spec.auth.mechanism is AuthMechanism.CRAM_MD5
    [warning] = config.warnings
    assert str(warning) == f"{source}:10: targets[2].auth.password: a literal password in the config file; " + (
        "prefer password_env or password_file"
    )
    assert "from-literal" not in repr(config)


def test_missing_passwords_are_config_errors_naming_the_target(tmp_path: Path) -> None:
    problems = _problems(
        """targets:
  - host: a.test
    auth: {username: u, password_env: NO_SUCH_VARIABLE_SET}
  - host: b.test
    auth: {username: u, password_file: missing}
  - host: c.test
    auth: {username: u}
  - host: d.test
    auth: {username: u, password: x, password_env: Y}
  - host: e.test
    auth: {username: u, password: x, mechanism: NTLM}
""",
        tmp_path,
    )
    source = tmp_path / "config.yml"
    assert problems == [
        f"{source}:3: targets[0].auth.password_env: environment variable NO_SUCH_VARIABLE_SET is not set or empty",
        f"{source}:5: targets[1].auth.password_file: cannot read {tmp_path / 'missing'}: No such file or directory",
        f"{source}:7: targets[2].auth: needs exactly one of password_env, password_file or password",
        f"{source}:9: targets[3].auth: needs exactly one of password_env, password_file or password",
        f"{source}:11: targets[4].auth.mechanism: unknown value 'NTLM' (expected one of: PLAIN, LOGIN, CRAM-MD5)",
    ]


def test_send_block(tmp_path: Path) -> None:
    config = parse_config("targets:\n  - host: a.test\n    send: {from: p@a.test, to: x@a.test}\n", tmp_path / "c.yml")
    send = config.targets[0].spec.send
    assert send is not None
    assert (send.sender, send.recipients, send.interval) == ("p@a.test", ("x@a.test",), 3600.0)
    problems = _problems("targets:\n  - host: a.test\n    send: {from: 'p@a.test>', to: []}\n", tmp_path)
    assert any("send.from: 'p@a.test>' is not a plain mail address" in problem for problem in problems)
    assert any("send.to: needs at least one recipient" in problem for problem in problems)


@pytest.mark.parametrize(
    "text",
    [
        "targets:\n  - host: a.test\n    auth: {username: u, passwrd: SeCrEt-42}\n",
        "targets:\n  - host: a.test\n    auth: {username: u, password: SeCrEt-42, mechanism: [x]}\n",
        "targets:\n  - host: a.test\n    auth: {username: u, password: 'SeCrEt-42}\n",
        "targets:\n  - host: a.test\n    auth: {username: u, password: SeCrEt-42\n",
    ],
)
def test_config_errors_never_quote_a_password(tmp_path: Path, text: str) -> None:
    problems = _problems(text, tmp_path)
    assert problems
    assert all("SeCrEt-42" not in problem for problem in problems)


def test_unprintable_characters_are_a_syntax_error_with_a_line(tmp_path: Path) -> None:
    problems = _problems("targets:\n  - host: mail\x00.example.com\n", tmp_path)
    assert problems == [f"{tmp_path / 'config.yml'}:2: (syntax): invalid YAML: unacceptable character #x0000: "
                        "special characters are not allowed"]  # fmt: skip


_yaml_pieces = st.sampled_from(
    ["targets:", "defaults:", "\n", "  ", "- ", "host: ", "port: ", "name: ", "interval: ", "timeout: ", "tls: ",
     "labels: ", "ca_file: ", "server_name: ", "address_family: ", "ehlo_name: ", "a", "1", "-1", "1e400", "5s",
     "0s", "starttls", "[", "]", "{", "}", ":", ",", "&a ", "*a", "? ", "<<: ", "!!binary ", "!!python/name:os.system",
     "null", "~", "true", "'", '"', "#", "\t", "---", "\x00", "\x07", "\ufeff", "é", "%YAML 1.1\n"]
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(_yaml_pieces, max_size=40).map("".join))
def test_any_text_is_a_config_or_config_errors(text: str) -> None:
    problems: tuple[ConfigProblem, ...] = ()
    try:
        parse_config(text, Path("/config/config.yml"))
    except ConfigError as exc:
        problems = exc.problems
    assert all(str(problem).startswith("/config/config.yml:") for problem in problems)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('ehlo_name: "probe.test\\r\\nQUIT"', "targets[0].ehlo_name: contains the control character U+000D"),
        ("ehlo_name: two words", "targets[0].ehlo_name: 'two words' must be one word"),
        ('send: {from: "p@a.test\\nRCPT TO:<x@y>", to: x@a.test}', "targets[0].send.from: contains the control"),
        ('send: {from: p@a.test, to: "x@a\\u2028.test"}', "targets[0].send.to: contains the control character U+2028"),
        ('server_name: "mx\\u0000.test"', "targets[0].server_name: contains the control character U+0000"),
    ],
)
def test_control_characters_in_anything_we_send_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    text = f"targets:\n  - host: mx.example.com\n    {entry}\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, tmp_path / "c.yml")
    assert message in str(raised.value)


def test_domains_and_dns_with_their_defaults(tmp_path: Path) -> None:
    source = tmp_path / "config.yml"
    source.write_text(
        """dns: {nameservers: ["127.0.0.1:5353", "[::1]:53", 192.0.2.1], timeout: 2s}
defaults: {interval: 2m, ehlo_name: probe.example.net, tls: starttls}
domains:
  - domain: Example.NET.
  - domain: example.org
    name: org
    dns_interval: 1m
    max_mx: 3
    address_family: ipv6
    port: 2525
    labels: {team: mail}
targets:
  - host: smtp.example.net
    addresses: all
"""
    )
    config = load_config(source)
    assert config.dns.nameservers == (("127.0.0.1", 5353), ("::1", 53), ("192.0.2.1", 53))
    assert config.dns.timeout == 2
    first, second = config.domains
    assert (first.name, first.domain, first.port, first.interval, first.dns_interval, first.max_mx) == (
        "example.net", "example.net", 25, 120, 300, 10,
    )  # fmt: skip
    assert first.options.tls is TlsMode.STARTTLS
    assert (second.name, second.dns_interval, second.max_mx, second.port, second.labels) == (
        "org", 60, 3, 2525, (("team", "mail"),),
    )  # fmt: skip
    assert second.options.address_family is AddressFamily.IPV6
    assert config.targets == ()
    [host] = config.host_addresses
    assert (host.name, host.dns_interval) == ("smtp.example.net:587", 300)


def test_domain_problems_are_located(tmp_path: Path) -> None:
    problems = _problems(
        """dns:
  nameservers: [dns.example.net, "[::1"]
  port: 53
domains:
  - domain: "not a domain"
    max_mx: 0
    auth: {username: x, password_env: X}
  - domain: example.net
  - domain: example.org
    name: example.net
  - domain: example.com
    labels: {mx: a, address: b}
targets:
  - host: a.example.net
    dns_interval: 1m
  - host: b.example.net
    addresses: some
""",
        tmp_path,
    )
    source = tmp_path / "config.yml"
    expected = [
        f"{source}:2: dns.nameservers[0]: nameserver 'dns.example.net': 'dns.example.net' is not an IP address",
        f"{source}:2: dns.nameservers[1]: nameserver '[::1'",
        f"{source}:3: dns.port: unknown key",
        f"{source}:5: domains[0].domain: 'not a domain' is not a domain name",
        f"{source}:6: domains[0].max_mx: must be a whole number of at least 1, not 0",
        f"{source}:7: domains[0].auth: unknown key",
        f"{source}:10: domains[2].name: duplicate name 'example.net' (first used by domains[1])",
        f"{source}:12: domains[3].labels.mx: is set by the exporter itself",
        f"{source}:12: domains[3].labels.address: is set by the exporter itself",
        f"{source}:15: targets[0].dns_interval: applies only with addresses: all",
        f"{source}:17: targets[1].addresses: unknown value 'some' (expected one of: first, all)",
    ]
    for wanted in expected:
        assert any(problem.startswith(wanted) for problem in problems), (wanted, problems)


def test_a_domain_may_not_share_a_name_with_a_target(tmp_path: Path) -> None:
    problems = _problems(
        "targets: [{name: mail, host: a.example.net}]\ndomains: [{domain: example.net, name: mail}]\n", tmp_path
    )
    assert any("domains[0].name: duplicate name 'mail' (first used by targets[0])" in problem for problem in problems)


def test_tls_scan_defaults_on_every_6h_and_can_be_turned_off(tmp_path: Path) -> None:
    text = """
defaults: {tls_scan_interval: 12h}
targets:
  - host: mx1.example.net
  - host: mx2.example.net
    tls_scan: off
  - host: mx3.example.net
    tls_scan: "on"
    tls_scan_interval: 30m
  - host: relay.example.net
    tls: none
domains:
  - domain: example.org
    tls_scan: off
"""
    config = parse_config(text, tmp_path / "c.yml")
    intervals = {target.name: target.tls_scan_interval for target in config.targets}
    assert intervals == {
        "mx1.example.net:587": 12 * 3600,
        "mx2.example.net:587": None,
        "mx3.example.net:587": 1800,
        "relay.example.net:25": None,  # nothing to scan on a plain relay
    }
    assert [domain.tls_scan_interval for domain in config.domains] == [None]
    [builtin] = parse_config("targets: [{host: mx.example.net}]", tmp_path / "c.yml").targets
    assert builtin.tls_scan_interval == 6 * 3600


def _located(text: str, tmp_path: Path) -> list[str]:
    """The problems as "line: key path: message"."""
    return [problem.removeprefix(f"{tmp_path / 'config.yml'}:") for problem in _problems(text, tmp_path)]


def test_scan_keys_are_checked_with_their_location(tmp_path: Path) -> None:
    text = """
targets:
  - host: mx1.example.net
    tls_scan: sometimes
  - host: mx2.example.net
    tls_scan_interval: 10s
modules:
  mx: {tls_scan: on}
"""
    assert _located(text, tmp_path) == [
        "4: targets[0].tls_scan: must be on or off, not 'sometimes'",
        "6: targets[1].tls_scan_interval: must be at least 60s, not 10s",
        "8: modules.mx.tls_scan: scans run on schedule only: set it on targets or defaults",
    ]


def test_require_reads_versions_as_written_and_reaches_every_probe_spec(tmp_path: Path) -> None:
    text = """
defaults:
  require: {min_tls_version: 1.2}
targets:
  - host: mx1.example.net
  - host: mx2.example.net
    require: {min_tls_version: "1.3", forward_secrecy: true}
  - host: mx3.example.net
    require: {forward_secrecy: false}
modules:
  strict: {require: {forward_secrecy: true}}
"""
    config = parse_config(text, tmp_path / "c.yml")
    required = [target.spec.require for target in config.targets]
    assert [(r.min_tls_version, r.forward_secrecy) if r else None for r in required] == [
        ("TLSv1.2", False),
        ("TLSv1.3", True),
        None,  # requires nothing
    ]
    module_spec = config.modules["strict"].spec_for("mx.example.net", None, timeout=5)
    assert module_spec.require is not None
    assert module_spec.require.forward_secrecy


def test_require_problems_are_located(tmp_path: Path) -> None:
    text = """
targets:
  - host: mx1.example.net
    require: {min_tls_version: "1.4"}
  - host: mx2.example.net
    require: {forward_secrecy: yes please}
  - host: relay.example.net
    tls: none
    require: {min_tls_version: "1.2"}
  - host: mx3.example.net
    require: {max_tls_version: "1.3"}
"""
    assert _located(text, tmp_path) == [
        "4: targets[0].require.min_tls_version: unknown TLS version '1.4'"
        ' (expected one of: "1.0", "1.1", "1.2", "1.3")',
        "6: targets[1].require.forward_secrecy: must be true or false, not 'yes please'",
        "9: targets[2].require: needs TLS, and tls is none: there is no session to hold to it",
        "11: targets[3].require.max_tls_version: unknown key (expected one of: min_tls_version, forward_secrecy)",
    ]
