"""A bounded record of one probe's conversation, for people troubleshooting.

Lines carrying secrets are recorded in their redacted form by the caller;
nothing here ever sees a password.
"""

from __future__ import annotations

import re
import time

from exporter.probe.result import TranscriptLine

MAX_TRANSCRIPT_LINES = 200
MAX_TRANSCRIPT_LINE_CHARS = 512

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: each
# could end a line, move the cursor or recolour a terminal, so a server or a
# certificate could forge lines of our output with them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every control and line-separator character escaped (``\\x1b``, ``\\u2028``)."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Transcript:
    def __init__(self, started: float | None = None, *, enabled: bool = True) -> None:
        self._started = time.perf_counter() if started is None else started
        # Scheduled probes keep no transcript: nobody reads it there, and ten
        # thousand targets would hold ten thousand of them.
        self._enabled = enabled
        self._lines: list[TranscriptLine] = []
        self._dropped = 0

    def client(self, text: str) -> None:
        self._add("C", text)

    def server(self, text: str) -> None:
        self._add("S", text)

    def event(self, text: str) -> None:
        self._add("*", text)

    def lines(self) -> tuple[TranscriptLine, ...]:
        if not self._dropped:
            return tuple(self._lines)
        note = TranscriptLine(self._lines[-1].offset_seconds, "*", f"({self._dropped} more lines not kept)")
        return (*self._lines, note)

    def _add(self, direction: str, text: str) -> None:
        if not self._enabled:
            return
        if len(self._lines) >= MAX_TRANSCRIPT_LINES:
            self._dropped += 1
            return
        text = printable(text)
        if len(text) > MAX_TRANSCRIPT_LINE_CHARS:
            text = text[:MAX_TRANSCRIPT_LINE_CHARS] + "…"
        offset = time.perf_counter() - self._started
        self._lines.append(TranscriptLine(offset, direction, text))
