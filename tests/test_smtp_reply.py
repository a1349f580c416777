"""The reply parser: framing, caps, and round-trips (RFC 5321 section 4.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.smtp_reply import MAX_LINE_OCTETS, MAX_REPLY_LINES, ReplyError, SmtpReply, parse_reply


def test_single_line_reply() -> None:
    assert parse_reply(b"220 mail.test ESMTP ready\r\n") == (SmtpReply(220, ("mail.test ESMTP ready",)), 27)


def test_multi_line_reply_and_what_follows_it() -> None:
    data = b"250-mail.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n221 bye\r\n"
    reply, used = parse_reply(data) or (None, 0)
    assert reply == SmtpReply(250, ("mail.test", "SIZE 1000", "STARTTLS"))
    assert data[used:] == b"221 bye\r\n"


def test_code_without_text_is_a_complete_reply() -> None:
    assert parse_reply(b"250\r\n") == (SmtpReply(250, ("",)), 5)


@pytest.mark.parametrize("partial", [b"", b"22", b"220 mail", b"250-first\r\n250-second\r\n", b"250-a\r\n250 b\r"])
def test_incomplete_replies_ask_for_more(partial: bytes) -> None:
    assert parse_reply(partial) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"220 hello\n", "bare LF"),
        (b"220 hel\x00lo\r\n", "NUL"),
        (b"220 caf\xe9\r\n", "UTF-8"),
        (b"22x hello\r\n", "malformed reply code"),
        (b"620 hello\r\n", "malformed reply code"),
        (b"HTTP/1.1 400 Bad Request\r\n", "malformed reply code"),
        (b"220_hello\r\n", "malformed reply line"),
        (b"250-a\r\n251 b\r\n", "mixes codes"),
        (b"220 a\rb\r\n", "bare CR"),
    ],
)
def test_malformed_replies_are_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(ReplyError, match=message):
        parse_reply(data)


def test_an_endless_line_is_refused_once_over_the_cap() -> None:
    assert parse_reply(b"220 " + b"x" * (MAX_LINE_OCTETS - 10)) is None
    with pytest.raises(ReplyError, match="longer than"):
        parse_reply(b"220 " + b"x" * MAX_LINE_OCTETS)


def test_an_endless_multi_line_reply_is_refused_once_over_the_cap() -> None:
    with pytest.raises(ReplyError, match="more than"):
        parse_reply(b"250-more\r\n" * (MAX_REPLY_LINES + 1))


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_parse_or_raise_only_reply_error(data: bytes) -> None:
    try:
        parsed = parse_reply(data)
    except ReplyError:
        return
    if parsed is not None:
        reply, used = parsed
        assert 0 < used <= len(data)
        assert 200 <= reply.code <= 599


_text = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=80)


@given(st.integers(200, 599), st.lists(_text, min_size=1, max_size=20))
def test_valid_replies_round_trip(code: int, lines: list[str]) -> None:
    wire = "".join(f"{code}-{text}\r\n" for text in lines[:-1]) + f"{code} {lines[-1]}\r\n"
    data = wire.encode("utf-8")
    assert parse_reply(data) == (SmtpReply(code, tuple(lines)), len(data))
