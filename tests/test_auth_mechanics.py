"""SASL responses, mechanism choice and the test message, as pure functions."""

from __future__ import annotations

import base64

from exporter.config.model import AuthMechanism
from exporter.smtp.auth import choose_mechanism, cram_md5_response, plain_response


def test_cram_md5_matches_rfc_2195_example() -> None:
    response = cram_md5_response("tim", "tanstaaftanstaaf", b"<1896.697170952@postoffice.reston.mci.net>")
    assert base64.b64decode(response) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_plain_is_authzid_authcid_password_nul_separated() -> None:
    assert base64.b64decode(plain_response("user", "pässword")) == "\0user\0pässword".encode()


def test_auto_prefers_plain_over_tls_and_cram_md5_without() -> None:
    everything = frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})
    assert choose_mechanism(everything, None, over_tls=True) is AuthMechanism.PLAIN
    assert choose_mechanism(everything, None, over_tls=False) is AuthMechanism.CRAM_MD5
    assert choose_mechanism(frozenset({"LOGIN", "CRAM-MD5"}), None, over_tls=True) is AuthMechanism.LOGIN
    assert choose_mechanism(frozenset({"XOAUTH2"}), None, over_tls=True) is None


def test_a_configured_mechanism_must_be_offered() -> None:
    assert choose_mechanism(frozenset({"PLAIN"}), AuthMechanism.LOGIN, over_tls=True) is None
    assert choose_mechanism(frozenset({"PLAIN", "LOGIN"}), AuthMechanism.LOGIN, over_tls=True) is AuthMechanism.LOGIN
