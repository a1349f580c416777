"""The reply parser: framing, caps, and round-trips (RFC 5321 section 4.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.smtp.reply import MAX_LINE_OCTETS, MAX_REPLY_LINES, ReplyError, SmtpReply, parse_reply


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


# Bytes shaped like replies, so hypothesis explores codes, separators and
# framing instead of noise that fails on the first octet.
_line_pieces = st.sampled_from(
    [b"220", b"250", b"421", b"25", b"2", b"620", b"HTTP/1.1", b"\x16\x03\x01", b" ", b"-", b"_",
     b"\r\n", b"\r", b"\n", b"\x00", b"\xe9", b"\xc3\xa9", b"\xc3", b"ok", b"mail.test", b"STARTTLS"]
)  # fmt: skip
_reply_like = st.lists(_line_pieces, max_size=24).map(b"".join)


def _outcome(data: bytes) -> tuple[SmtpReply, int] | type[ReplyError] | None:
    try:
        return parse_reply(data)
    except ReplyError:
        return ReplyError


@given(_reply_like | st.binary(max_size=512), st.lists(st.integers(0, 600), max_size=8))
def test_the_verdict_does_not_depend_on_how_the_bytes_arrive(data: bytes, cuts: list[int]) -> None:
    # The connection parses after every chunk TCP delivers. A prefix may only
    # be rejected if the whole is, and a reply found early is the whole's.
    final = _outcome(data)
    for cut in sorted(cut for cut in cuts if cut < len(data)):
        early = _outcome(data[:cut])
        if early is not None:
            assert early == final, (data[:cut], early, final)


@given(_reply_like)
def test_reply_shaped_bytes_parse_or_raise_only_reply_error(data: bytes) -> None:
    parsed = _outcome(data)
    if isinstance(parsed, tuple):
        reply, used = parsed
        assert data[used - 2 : used] == b"\r\n"
        assert 1 <= len(reply.lines) <= MAX_REPLY_LINES


@given(st.integers(200, 599), st.lists(_text, min_size=1, max_size=20))
def test_every_prefix_of_a_valid_reply_waits_for_more(code: int, lines: list[str]) -> None:
    wire = ("".join(f"{code}-{text}\r\n" for text in lines[:-1]) + f"{code} {lines[-1]}\r\n").encode("utf-8")
    for cut in range(len(wire)):
        assert parse_reply(wire[:cut]) is None, wire[:cut]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # No CRLF yet, but no continuation could make these a reply.
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "speaks TLS first"),
        (b"HTTP/1.1 400 Bad Request", "speaks HTTP"),
        (b"220 mail\x00", "NUL"),
        (b"220 mail\rx", "bare CR"),
        (b"220 caf\xe9 ", "UTF-8"),
        (b"2x", "malformed reply code"),
        (b"220_", "malformed reply line"),
    ],
)
def test_hopeless_partial_lines_fail_without_waiting(data: bytes, message: str) -> None:
    with pytest.raises(ReplyError, match=message):
        parse_reply(data)
