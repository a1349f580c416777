"""client_cert_file and client_key_file: checked at load, located, never quoting the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from exporter.config.loader import ConfigError, load_config
from exporter.config.model import Config
from exporter.tls.context import TlsClients
from tests.support.pki import Pki

_TARGETS = "targets:\n  - name: a\n    host: 127.0.0.1\n  - name: b\n    host: 127.0.0.2\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("client-files")
    ca = trustme.CA()
    for name in ("one", "two"):
        issued = ca.issue_cert("probe.test")
        issued.cert_chain_pems[0].write_to_path(str(directory / f"{name}.pem"))
        issued.private_key_pem.write_to_path(str(directory / f"{name}.key"))
    key = serialization.load_pem_private_key((directory / "one.key").read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (directory / "encrypted.key").write_bytes(encrypted)
    return directory


def _load(directory: Path, text: str) -> ConfigError | Config:
    config_file = directory / "config.yml"
    config_file.write_text(text)
    try:
        return load_config(config_file)
    except ConfigError as exc:
        return exc


def _problems(directory: Path, text: str) -> list[str]:
    outcome = _load(directory, text)
    assert isinstance(outcome, ConfigError), "the config was accepted"
    return [f"{problem.line}: {problem.key_path}: {problem.message}" for problem in outcome.problems]


def test_defaults_give_every_target_the_pair_and_one_context_serves_them(files: Path, pki: Pki) -> None:
    # Relative names are relative to the config file, as ca_file is.
    text = "defaults:\n  client_cert_file: one.pem\n  client_key_file: one.key\n" + _TARGETS
    text += f"    ca_file: {pki.ca_file}\nmodules:\n  mtls: {{}}\n"
    config = load_config_ok(files, text)
    first, second = (target.spec.client_certificate for target in config.targets)
    assert first is not None
    assert first == second == config.modules["mtls"].options.client_certificate
    assert first.cert_file == files / "one.pem"
    assert first.not_after > 0
    clients = TlsClients(config.tls_client_keys())
    # Two CA files (system store, pki's) and one certificate: one extra context, shared.
    assert clients.handshake_contexts == 2
    a, b = (clients.for_spec(target.spec) for target in config.targets)
    assert a.handshake_context is b.handshake_context
    assert a.trust_store is not b.trust_store


def load_config_ok(directory: Path, text: str) -> Config:
    outcome = _load(directory, text)
    assert not isinstance(outcome, ConfigError), str(outcome)
    return outcome


def test_both_files_or_neither(files: Path) -> None:
    problems = _problems(files, _TARGETS + "    client_cert_file: one.pem\n")
    assert problems == [
        "6: targets[1].client_cert_file: needs client_key_file too (a client certificate is both files or neither)"
    ]


def test_a_key_of_another_certificate(files: Path) -> None:
    problems = _problems(files, _TARGETS + "    client_cert_file: one.pem\n    client_key_file: two.key\n")
    assert problems == [
        f"7: targets[1].client_key_file: the private key in {files / 'two.key'} does not belong to the"
        f" certificate in {files / 'one.pem'}"
    ]


def test_an_encrypted_key_is_refused_without_a_prompt(files: Path) -> None:
    problems = _problems(files, _TARGETS + "    client_cert_file: one.pem\n    client_key_file: encrypted.key\n")
    assert len(problems) == 1
    assert problems[0].startswith("7: targets[1].client_key_file: ")
    assert "encrypted private key" in problems[0]


def test_unreadable_files_and_no_key_text_in_any_message(files: Path) -> None:
    text = "defaults:\n  client_cert_file: /\n  client_key_file: one.key\n" + _TARGETS
    text += "    client_cert_file: one.key\n"  # a key where the certificate belongs
    problems = _problems(files, text)
    assert problems == [
        "2: defaults.client_cert_file: cannot read /: Is a directory",
        f"9: targets[1].client_cert_file: {files / 'one.key'} holds no readable PEM certificate",
    ]
    key_text = (files / "one.key").read_text()
    body = "".join(line for line in key_text.splitlines() if not line.startswith("-----"))
    for problem in problems:
        assert body[:32] not in problem
