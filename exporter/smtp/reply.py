"""SMTP replies (RFC 5321 section 4.2): a pure, bounded parser.

A monitored server may be hostile or broken, so the parser is strict about
framing (CRLF only, no NUL, UTF-8 text) and caps what it will hold: a
peer cannot make us buffer more than ``MAX_REPLY_LINES * MAX_LINE_OCTETS``.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

# RFC 5321 section 4.5.3.1.5 allows 512 octets per reply line; real servers
# exceed it with long EHLO or error texts, so we allow generous slack.
MAX_LINE_OCTETS = 4096
# An EHLO reply has a line per extension; real ones have fewer than 30.
MAX_REPLY_LINES = 256


class ReplyError(ValueError):
    """The peer sent something that is not a well-formed SMTP reply."""


class SmtpReply(NamedTuple):
    code: int
    # The text of each line, without the code and separator.
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def is_positive_completion(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        first = self.lines[0] if self.lines else ""
        return f"{self.code} {first}".rstrip()


def parse_reply(buffer: bytes | bytearray) -> tuple[SmtpReply, int] | None:
    """Parse one complete reply from the start of ``buffer``.

    Returns the reply and the number of octets it used, or None when the
    buffer holds only part of a reply. Raises ReplyError for anything that
    cannot become a valid reply however many more octets arrive.
    """
    position = 0
    code: int | None = None
    lines: list[str] = []
    while True:
        end = buffer.find(b"\r\n", position)
        if end < 0:
            _check_partial_line(buffer, position)
            return None
        line_code, final, text = _parse_line(bytes(buffer[position:end]))
        if code is None:
            code = line_code
        elif line_code != code:
            raise ReplyError(f"reply mixes codes {code} and {line_code}")
        lines.append(text)
        if len(lines) > MAX_REPLY_LINES:
            raise ReplyError(f"reply has more than {MAX_REPLY_LINES} lines")
        position = end + 2
        if final:
            return SmtpReply(code, tuple(lines)), position


def _check_partial_line(buffer: bytes | bytearray, start: int) -> None:
    """Reject a line still waiting for its CRLF once no ending can make it valid.

    Waiting for more data would only turn a framing error into a timeout: a
    server that speaks TLS or HTTP first, or sends a NUL, is a protocol error
    at once. Each check must hold for every possible continuation.
    """
    pending = len(buffer) - start
    if pending + 2 > MAX_LINE_OCTETS:
        raise ReplyError(f"reply line longer than {MAX_LINE_OCTETS} octets")
    # The code's first digits are known as soon as they arrive.
    head = bytes(buffer[start : start + 3])
    if head and (not head.isdigit() or head[0:1] not in b"2345"):
        raise ReplyError(_malformed_code(bytes(buffer[start : start + 8])))
    if buffer[start + 3 : start + 4] not in (b"", b" ", b"-", b"\r"):
        raise ReplyError(f"malformed reply line {_printable(bytes(buffer[start : start + 16]))!r}")
    # Without a CRLF in the buffer, any LF is a bare one.
    if buffer.find(b"\n", start) >= 0:
        raise ReplyError("reply line ends in a bare LF")
    if buffer.find(b"\x00", start) >= 0:
        raise ReplyError("reply line contains a NUL octet")
    # Only a CR in the last octet may still be followed by its LF.
    if 0 <= buffer.find(b"\r", start) < len(buffer) - 1:
        raise ReplyError("reply line contains a bare CR or LF")
    try:
        # Not final: the last character may still be arriving.
        codecs.getincrementaldecoder("utf-8")().decode(bytes(buffer[start + 4 :]), final=False)
    except UnicodeDecodeError as exc:
        raise ReplyError("reply text is not valid UTF-8") from exc


def _parse_line(raw: bytes) -> tuple[int, bool, str]:
    """Return (code, is_final_line, text) for one line without its CRLF."""
    if len(raw) + 2 > MAX_LINE_OCTETS:
        raise ReplyError(f"reply line longer than {MAX_LINE_OCTETS} octets")
    if b"\n" in raw or b"\r" in raw:
        raise ReplyError("reply line contains a bare CR or LF")
    if b"\x00" in raw:
        raise ReplyError("reply line contains a NUL octet")
    head = raw[:3]
    if len(head) < 3 or not head.isdigit() or head[0:1] not in b"2345":
        raise ReplyError(_malformed_code(raw[:8]))
    separator = raw[3:4]
    if separator not in (b"", b" ", b"-"):
        raise ReplyError(f"malformed reply line {_printable(raw[:16])!r}")
    try:
        text = raw[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReplyError("reply text is not valid UTF-8") from exc
    return int(head), separator != b"-", text


def _malformed_code(start: bytes) -> str:
    message = f"malformed reply code {_printable(start)!r}"
    # The usual cause is a port that speaks another protocol; say which.
    if start[:1] in (b"\x15", b"\x16") and start[1:2] == b"\x03":
        return f"{message}: the server speaks TLS first (an implicit TLS port? then set tls: implicit)"
    if start.startswith(b"HTTP/"):
        return f"{message}: the server speaks HTTP"
    return message


def _printable(raw: bytes) -> str:
    return raw.decode("ascii", errors="backslashreplace")
