"""The test message: RFC 5322 form and dot-stuffing (pure)."""

from __future__ import annotations

import email
import email.policy

from hypothesis import given
from hypothesis import strategies as st

from exporter.config.model import SendConfig
from exporter.smtp.message import SUBJECT_MARKER, build_message, dot_stuff


def _unstuff(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@given(st.lists(st.text(alphabet=".ab \r\n", max_size=12), max_size=8))
def test_dot_stuffing_round_trips_and_never_ends_data_early(lines: list[str]) -> None:
    text = "\r\n".join(line.replace("\r", "").replace("\n", "") for line in lines) + "\r\n"
    stuffed = dot_stuff(text.encode())
    assert b"\r\n.\r\n" not in b"\r\n" + stuffed
    assert _unstuff(stuffed) == text.encode()


def test_test_message_is_a_proper_rfc_5322_message() -> None:
    send = SendConfig(sender="probe@example.net", recipients=("a@example.net", "b@example.net"), subject="hello")
    outgoing = build_message(send, target_name="mx1", domain="probe.example.net", now=1_800_000_000)
    assert b"\n" not in outgoing.data.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(_unstuff(outgoing.data), policy=email.policy.default)
    assert parsed["From"] == "probe@example.net"
    assert parsed["To"] == "a@example.net, b@example.net"
    assert parsed["Subject"] == f"{SUBJECT_MARKER} hello"
    assert parsed["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert parsed["Message-ID"] == outgoing.message_id
    assert outgoing.message_id.endswith("@probe.example.net>")
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert "mx1" in parsed.get_content()
