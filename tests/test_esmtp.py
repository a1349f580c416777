"""Reading capabilities from EHLO replies."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from exporter.smtp.ehlo import MAX_AUTH_MECHANISMS, parse_ehlo
from exporter.smtp.reply import ReplyError, SmtpReply, parse_reply


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


def test_the_mechanism_cap_holds_across_auth_lines() -> None:
    lines = [f"AUTH {' '.join(f'M{line}X{index}' for index in range(40))}" for line in range(200)]
    ehlo = parse_ehlo(SmtpReply(250, ("mail.test", *lines)))
    assert len(ehlo.auth_mechanisms) == MAX_AUTH_MECHANISMS


def test_an_absurd_size_is_ignored() -> None:
    assert parse_ehlo(SmtpReply(250, ("mail.test", "SIZE " + "9" * 4000))).size_limit is None


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_capabilities_or_a_reply_error(data: bytes) -> None:
    try:
        parsed = parse_reply(data)
    except ReplyError:
        return
    if parsed is not None:
        parse_ehlo(parsed[0])


_keyword = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
    lambda keyword: keyword.upper() != "AUTH" and not keyword.upper().startswith(("AUTH=", "SIZE"))
)
_parameters = st.from_regex(r"([!-~]+( [!-~]+)*)?", fullmatch=True)
_mechanism = st.from_regex(r"[A-Z0-9_-]{1,20}", fullmatch=True)


@given(
    domain=st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True),
    extensions=st.dictionaries(_keyword, _parameters, max_size=20),
    mechanisms=st.lists(_mechanism, max_size=MAX_AUTH_MECHANISMS, unique=True),
    size=st.none() | st.integers(0, 2**63),
    order=st.randoms(use_true_random=False),
)
def test_valid_ehlo_replies_round_trip(
    domain: str, extensions: dict[str, str], mechanisms: list[str], size: int | None, order: random.Random
) -> None:
    unique = {keyword.upper(): parameters for keyword, parameters in reversed(extensions.items())}
    lines = [f"{keyword} {parameters}".rstrip() for keyword, parameters in unique.items()]
    if mechanisms:
        lines.append(f"AUTH {' '.join(mechanisms)}")
    if size is not None:
        lines.append(f"SIZE {size}")
    order.shuffle(lines)
    texts = [f"{domain} Hello probe.test", *lines]
    wire = "".join(f"250-{text}\r\n" for text in texts[:-1]) + f"250 {texts[-1]}\r\n"
    parsed = parse_reply(wire.encode("ascii"))
    assert parsed is not None
    ehlo = parse_ehlo(parsed[0])
    assert ehlo.domain == domain
    assert ehlo.auth_mechanisms == set(mechanisms)
    assert ehlo.size_limit == size
    expected = dict(unique)
    if mechanisms:
        expected["AUTH"] = " ".join(sorted(mechanisms))
    if size is not None:
        expected["SIZE"] = str(size)
    assert dict(ehlo.extensions) == expected


def test_identical_short_replies_share_one_parse_and_long_ones_are_not_kept() -> None:
    # 10,000 targets behind one provider's servers hold one set of capabilities,
    # not 10,000; a hostile server's long replies are parsed afresh, never kept.
    short = ("mx.shared.test", "PIPELINING", "SIZE 10240000", "STARTTLS")
    assert parse_ehlo(SmtpReply(250, short)) is parse_ehlo(SmtpReply(250, (short[0], *short[1:])))
    long = ("mx.hostile.test", *(f"X-EXTENSION-{index} {'p' * 60}" for index in range(40)))
    first, second = parse_ehlo(SmtpReply(250, long)), parse_ehlo(SmtpReply(250, long))
    assert first == second
    assert first is not second
