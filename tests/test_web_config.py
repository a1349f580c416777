"""``--web.config.file`` parsing: exporter-toolkit's keys, located errors, no secret in any message."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import bcrypt
import pytest

from exporter.config.loader import ConfigError
from exporter.web.access import load_web_config
from exporter.web.basic_auth import parse_basic_authorization
from exporter.web.web_config import CIPHER_SUITES, ClientAuth, parse_duration_go, parse_web_config
from tests.support.environment import require
from tests.support.pki import Pki

# Cost 4, the lowest: these tests check parsing, not bcrypt's speed.
HASH = bcrypt.hashpw(b"right password", bcrypt.gensalt(4)).decode()


def _problems(text: str, tmp_path: Path) -> list[str]:
    source = tmp_path / "web.yml"
    with pytest.raises(ConfigError) as caught:
        parse_web_config(text, source)
    message = str(caught.value)
    assert HASH not in message
    return [line.removeprefix(f"{source}:") for line in message.splitlines()]


def test_a_full_file_parses_into_what_it_says(tmp_path: Path) -> None:
    text = f"""\
tls_server_config:
  cert_file: server.pem
  key_file: /etc/keys/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: clients.pem
  client_allowed_sans: [prometheus.example.net]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519]
http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: ""
basic_auth_users:
  prometheus: {HASH}
rate_limit:
  interval: 1m30s
  burst: 20
"""
    config = parse_web_config(text, tmp_path / "web.yml")
    tls = config.tls
    assert tls is not None
    assert tls.cert_file == tmp_path / "server.pem"
    assert tls.key_file == Path("/etc/keys/server.key")
    assert tls.client_ca_file == tmp_path / "clients.pem"
    assert tls.client_auth == ClientAuth.REQUIRE_AND_VERIFY_CLIENT_CERT
    assert tls.client_allowed_sans == ("prometheus.example.net",)
    assert (tls.min_version, tls.max_version) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    # Go applies cipher_suites to TLS 1.2 and below; the TLS 1.3 name changes nothing.
    assert tls.openssl_ciphers == ("ECDHE-RSA-AES128-GCM-SHA256",)
    assert tls.prefer_server_cipher_suites is False
    assert tls.curves == ("X25519",)
    # A blank header is unset, as in exporter-toolkit.
    assert config.headers == (("X-Frame-Options", "deny"),)
    assert dict(config.users) == {"prometheus": HASH.encode()}
    assert config.rate_limit is not None
    assert (config.rate_limit.interval, config.rate_limit.burst) == (90.0, 20)
    assert HASH not in repr(config)


def test_empty_file_and_empty_tls_block_mean_plain_http_for_everyone(tmp_path: Path) -> None:
    for text in ("", "tls_server_config: {}\n", "basic_auth_users: {}\n"):
        config = parse_web_config(text, tmp_path / "web.yml")
        assert config.tls is None
        assert not config.users


def test_toolkits_defaults(tmp_path: Path) -> None:
    config = parse_web_config("tls_server_config: {cert_file: c.pem, key_file: k.pem}\n", tmp_path / "web.yml")
    assert config.tls is not None
    assert (config.tls.min_version, config.tls.max_version) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    assert config.tls.client_auth == ClientAuth.NO_CLIENT_CERT
    assert config.tls.prefer_server_cipher_suites is True
    assert config.tls.client_allowed_sans is None


BAD_FILES = {
    "unknown_top_level_key": ("basic_auth_user:\n  a: b\n", ["1: basic_auth_user: unknown key"]),
    "unknown_tls_key": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  certfile: x\n",
        ["4: tls_server_config.certfile: unknown key"],
    ),
    "key_without_cert": (
        "tls_server_config:\n  key_file: k.pem\n",
        ["1: tls_server_config: TLS needs the server's certificate"],
    ),
    "unknown_client_auth_type": (
        "tls_server_config: {cert_file: c, key_file: k, client_auth_type: Always}\n",
        ["1: tls_server_config.client_auth_type: unknown value 'Always' (expected one of: NoClientCert,"],
    ),
    "request_client_cert_cannot_be_honoured": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequestClientCert\n",
        ["4: tls_server_config.client_auth_type: RequestClientCert asks for a client certificate without verifying"],
    ),
    "require_any_client_cert_cannot_be_honoured": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireClientCert\n",
        ["4: tls_server_config.client_auth_type: RequireClientCert requires a client certificate without verifying"],
    ),
    "client_ca_without_client_auth": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca.pem\n",
        ["1: tls_server_config.client_auth_type: client CAs are configured, but client_auth_type does not ask"],
    ),
    "allowed_sans_without_verification": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_allowed_sans: [a]\n",
        ["4: tls_server_config.client_allowed_sans: needs client_auth_type VerifyClientCertIfGiven"],
    ),
    "unknown_version": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS1.2\n",
        ["4: tls_server_config.min_version: unknown TLS version 'TLS1.2' (expected one of: TLS10, TLS11, TLS12,"],
    ),
    "min_above_max": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
        ["4: tls_server_config.min_version: is above max_version"],
    ),
    "insecure_cipher_go_refuses_too": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites:\n    - TLS_RSA_WITH_RC4_128_SHA\n",
        ["5: tls_server_config.cipher_suites[0]: unknown cipher 'TLS_RSA_WITH_RC4_128_SHA'"],
    ),
    "openssl_cipher_name": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]\n",
        ["4: tls_server_config.cipher_suites[0]: unknown cipher 'ECDHE-RSA-AES128-GCM-SHA256' (expected Go's names"],
    ),
    "several_curves_cannot_be_honoured": (
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [X25519, CurveP256]\n",
        ["4: tls_server_config.curve_preferences: Python's ssl module can restrict the key exchange to one curve"],
    ),
    "header_not_in_the_toolkits_list": (
        "http_server_config:\n  headers:\n    Server: nginx\n",
        ["3: http_server_config.headers.Server: this header cannot be configured"],
    ),
    "header_value_not_in_its_enumeration": (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        ["3: http_server_config.headers.X-Frame-Options: invalid value 'allow' (expected one of: deny, sameorigin)"],
    ),
    "not_a_bcrypt_hash": (
        "basic_auth_users:\n  alice: plain-text-password\n",
        ["2: basic_auth_users.alice: is not a bcrypt hash"],
    ),
    "bad_rate_limit": (
        "rate_limit:\n  interval: 1 second\n  burst: -1\n",
        ["2: rate_limit.interval: invalid duration '1 second'", "3: rate_limit.burst: must be a whole number"],
    ),
    "duplicate_user": (
        f"basic_auth_users:\n  alice: {HASH}\n  alice: {HASH}\n",
        ["3: basic_auth_users.alice: duplicate key"],
    ),
    "malformed_yaml": ("basic_auth_users: [\n", ["2: (syntax): invalid YAML"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_mistake_is_named_with_line_and_key_path(name: str, tmp_path: Path) -> None:
    text, expected = BAD_FILES[name]
    problems = _problems(text, tmp_path)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = f"tls_server_config:\n  cert_file: c\n  max_version: TLS9\nbasic_auth_users:\n  bob: {HASH[:-1]}\n"
    problems = _problems(text, tmp_path)
    assert [problem.split(":")[0] for problem in problems] == ["1", "3", "5"]


def test_a_hash_never_appears_in_a_message_even_when_wrong(tmp_path: Path) -> None:
    almost = HASH[:-2] + "!!"
    with pytest.raises(ConfigError) as caught:
        parse_web_config(f"basic_auth_users:\n  alice: {almost}\n", tmp_path / "web.yml")
    assert almost not in str(caught.value)
    assert almost[7:20] not in str(caught.value)


def test_an_inline_key_never_appears_in_a_message(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf("127.0.0.1")
    other = pki.leaf("127.0.0.2")
    key_lines = other.key_pem.decode().strip().replace("\n", "\n    ")
    cert = tmp_path / "cert.pem"
    cert.write_bytes(leaf.chain_pem)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key: |\n    {key_lines}\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(web)
    message = str(caught.value)
    assert message.startswith(f"{web}:2: tls_server_config.cert_file: OpenSSL cannot load the certificate and key:")
    assert "KEY_VALUES_MISMATCH" in message
    for line in other.key_pem.decode().splitlines()[1:-1]:
        assert line not in message


def test_unreadable_certificate_names_the_file(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(web)
    assert str(caught.value) == f"{web}:2: tls_server_config.cert_file: cannot read {tmp_path / 'missing.pem'}"


def test_inline_certificate_key_and_client_ca_build_a_context(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf("127.0.0.1")

    def block(pem: bytes) -> str:
        return "|\n    " + pem.decode().strip().replace("\n", "\n    ")

    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert: {block(leaf.chain_pem)}\n"
        f"  key: {block(leaf.key_pem)}\n"
        f"  client_ca: {block(pki.ca_file.read_bytes())}\n"
        "  client_auth_type: VerifyClientCertIfGiven\n"
    )
    loaded = load_web_config(web)
    assert loaded.context is not None
    assert loaded.context.verify_mode == ssl.CERT_OPTIONAL
    # Nothing of the key is left on disk beside the config.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["web.yml"]


def test_go_durations() -> None:
    assert parse_duration_go("0") == 0
    assert parse_duration_go("1s") == 1
    assert parse_duration_go("1m30s") == 90
    assert parse_duration_go("1.5h") == 5400
    assert parse_duration_go("250ms") == 0.25
    for bad in ("", "1", "1d", "s", "1s 2s", "-1s"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration_go(bad)


def test_basic_authorization_header_is_read_as_go_reads_it() -> None:
    assert parse_basic_authorization("Basic YWxpY2U6cDpxIQ==") == (b"alice", b"p:q!")
    assert parse_basic_authorization("basic YWxpY2U6") == (b"alice", b"")
    for bad in (None, "Bearer YWxpY2U6cA==", "Basic YWxpY2U", "Basic not*base64", "Basic YWxpY2U6cA"):
        assert parse_basic_authorization(bad) is None, bad


def test_cipher_names_map_to_the_suites_openssl_gives_those_names() -> None:
    require(None if shutil.which("openssl") else "openssl is not installed", "the cipher name check")
    listing = subprocess.run(
        ["openssl", "ciphers", "-stdname", "ALL:@SECLEVEL=0"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    openssl_names = {line.split()[0]: line.split()[2] for line in listing.splitlines() if " - " in line}
    for go_name, openssl_name in CIPHER_SUITES.items():
        if openssl_name is None:
            # Only the TLS 1.3 suites, which no setting of Python's ssl changes.
            assert "_WITH_" not in go_name, go_name
        else:
            assert openssl_names[go_name] == openssl_name, go_name


def test_the_readmes_example_is_a_valid_web_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### TLS and basic auth: `--web.config.file`") :]
    example = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n")]
    config = parse_web_config(example, tmp_path / "web.yml")
    assert config.tls is not None
    assert config.tls.client_auth == ClientAuth.REQUIRE_AND_VERIFY_CLIENT_CERT
    assert config.tls.client_allowed_sans == ("prometheus.example.net",)
    assert list(config.users) == ["prometheus"]
    assert config.warnings == ()
