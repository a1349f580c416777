"""The test message: a proper RFC 5322 message, ready for DATA (pure)."""

from __future__ import annotations

import datetime
import email.policy
import email.utils
from email.message import EmailMessage
from typing import NamedTuple

from exporter.config.model import SendConfig

# Recognisable in a mailbox and in filters: every test message carries it.
SUBJECT_MARKER = "[smtp-tls-exporter probe]"
TARGET_HEADER = "X-SMTP-TLS-Exporter-Target"
# CRLF line endings; no folding below RFC 5322's 998-octet limit, because
# some parsers mishandle a folded Message-ID.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


class OutgoingMessage(NamedTuple):
    message_id: str
    # As DATA sends it: CRLF line endings, dot-stuffed, without the final ".".
    data: bytes


def build_message(send: SendConfig, *, target_name: str, domain: str, now: float) -> OutgoingMessage:
    """The test message for ``send``, dated ``now``.

    ``domain`` names the Message-ID's right-hand side (we pass the EHLO name:
    email.utils would otherwise look up this host's FQDN in DNS).
    """
    message = EmailMessage(policy=_POLICY)
    message["From"] = send.sender
    message["To"] = ", ".join(send.recipients)
    # "+0000": the time is known to be UTC ("-0000" would say the zone is unknown).
    message["Date"] = email.utils.format_datetime(datetime.datetime.fromtimestamp(now, datetime.UTC))
    message_id = email.utils.make_msgid("smtp-tls-exporter", domain=domain)
    message["Message-ID"] = message_id
    message["Subject"] = f"{SUBJECT_MARKER} {send.subject}"
    # RFC 3834: no vacation replies or other auto-responses to this.
    message["Auto-Submitted"] = "auto-generated"
    message[TARGET_HEADER] = target_name
    message.set_content(
        f"This test message was sent by smtp-tls-exporter through the target {target_name!r}\n"
        "to check that it accepts mail. It can be deleted.\n"
    )
    return OutgoingMessage(message_id, dot_stuff(message.as_bytes()))


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 section 4.5.2: double a leading "." so no line ends DATA early."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed
