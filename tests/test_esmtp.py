"""Reading capabilities from EHLO replies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.esmtp import MAX_AUTH_MECHANISMS, parse_ehlo
from exporter.smtp_reply import SmtpReply


def test_capabilities_from_a_typical_reply() -> None:
    reply = SmtpReply(250, ("mail.test Hello", "PIPELINING", "SIZE 52428800", "STARTTLS", "AUTH PLAIN LOGIN"))
    ehlo = parse_ehlo(reply)
    assert ehlo.domain == "mail.test"
    assert ehlo.starttls
    assert ehlo.size_limit == 52428800
    assert ehlo.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert set(ehlo.extensions) == {"PIPELINING", "SIZE", "STARTTLS", "AUTH"}


def test_starttls_on_the_last_line_and_in_lower_case() -> None:
    assert parse_ehlo(SmtpReply(250, ("mail.test", "8BITMIME", "starttls"))).starttls


def test_no_starttls() -> None:
    assert not parse_ehlo(SmtpReply(250, ("mail.test", "8BITMIME"))).starttls


def test_old_style_auth_equals_is_understood() -> None:
    ehlo = parse_ehlo(SmtpReply(250, ("mail.test", "AUTH=LOGIN PLAIN", "AUTH cram-md5")))
    assert ehlo.auth_mechanisms == {"LOGIN", "PLAIN", "CRAM-MD5"}


def test_mechanism_names_are_bounded_for_labels() -> None:
    many = " ".join(f"M{index}" for index in range(100))
    ehlo = parse_ehlo(SmtpReply(250, ("mail.test", f'AUTH PLAIN {"X" * 500} bad"name {many}')))
    assert "PLAIN" in ehlo.auth_mechanisms
    assert len(ehlo.auth_mechanisms) <= MAX_AUTH_MECHANISMS
    assert all(len(name) <= 20 and name.replace("-", "").replace("_", "").isalnum() for name in ehlo.auth_mechanisms)


def test_non_numeric_size_is_ignored() -> None:
    assert parse_ehlo(SmtpReply(250, ("mail.test", "SIZE lots"))).size_limit is None
    assert parse_ehlo(SmtpReply(250, ("mail.test", "SIZE ²"))).size_limit is None


@given(st.lists(st.text(max_size=60), max_size=30))
def test_any_reply_text_parses(lines: list[str]) -> None:
    ehlo = parse_ehlo(SmtpReply(250, tuple(lines)))
    assert all(keyword == keyword.upper() for keyword in ehlo.extensions)
