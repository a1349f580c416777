"""SMTP AUTH (RFC 4954) with PLAIN, LOGIN and CRAM-MD5.

Which mechanism "auto" picks, and why:
- Over TLS: PLAIN, then LOGIN, then CRAM-MD5. TLS already protects the
  password, so PLAIN (RFC 4616: standard, one round trip, UTF-8) is the best
  choice; LOGIN is its non-standard twin; CRAM-MD5 protects nothing more
  inside TLS, rests on MD5 and forces servers to store reversible
  passwords, so it comes last.
- Without TLS (only with ``allow_plaintext_auth``): CRAM-MD5 first, because
  it is the only one of the three that does not put the password on the
  wire, then PLAIN and LOGIN.

Every line that carries a credential is shown as ``<redacted>`` in the
transcript; the password never leaves this module except on the socket.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from exporter.config.model import AuthConfig, AuthMechanism
from exporter.config.secret import REDACTED
from exporter.net.connection import SmtpConnection
from exporter.smtp.reply import ReplyError, SmtpReply
from exporter.smtp.status import SmtpStatus

AUTO_ORDER_OVER_TLS = (AuthMechanism.PLAIN, AuthMechanism.LOGIN, AuthMechanism.CRAM_MD5)
AUTO_ORDER_WITHOUT_TLS = (AuthMechanism.CRAM_MD5, AuthMechanism.PLAIN, AuthMechanism.LOGIN)


def choose_mechanism(
    offered: frozenset[str], configured: AuthMechanism | None, *, over_tls: bool
) -> AuthMechanism | None:
    """The mechanism to use, or None when the server offers none we may use."""
    if configured is not None:
        return configured if configured.value in offered else None
    order = AUTO_ORDER_OVER_TLS if over_tls else AUTO_ORDER_WITHOUT_TLS
    return next((mechanism for mechanism in order if mechanism.value in offered), None)


def plain_response(username: str, password: str) -> str:
    """RFC 4616: authzid (empty), authcid and password, NUL-separated, base64."""
    return _b64(f"\0{username}\0{password}")


def cram_md5_response(username: str, password: str, challenge: bytes) -> str:
    """RFC 2195: the username and the HMAC-MD5 of the challenge keyed with the password."""
    digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
    return _b64(f"{username} {digest}")


async def authenticate(connection: SmtpConnection, auth: AuthConfig, mechanism: AuthMechanism) -> SmtpReply:
    """Run the SASL exchange; return the server's final reply (235 on success)."""
    username, password = auth.username, auth.password.reveal()
    if mechanism is AuthMechanism.PLAIN:
        reply = await connection.command(
            f"AUTH PLAIN {plain_response(username, password)}", shown_as=f"AUTH PLAIN {REDACTED}"
        )
        if reply.code == SmtpStatus.AUTH_CONTINUE:  # a server that wants the response on its own line
            reply = await connection.command(plain_response(username, password), shown_as=REDACTED)
        return reply
    if mechanism is AuthMechanism.LOGIN:
        reply = await connection.command("AUTH LOGIN")
        if reply.code != SmtpStatus.AUTH_CONTINUE:
            return reply
        reply = await connection.command(_b64(username), shown_as=REDACTED)
        if reply.code != SmtpStatus.AUTH_CONTINUE:
            return reply
        return await connection.command(_b64(password), shown_as=REDACTED)
    reply = await connection.command("AUTH CRAM-MD5")
    if reply.code != SmtpStatus.AUTH_CONTINUE:
        return reply
    try:
        challenge = base64.b64decode(reply.lines[0].strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        # RFC 4954 section 4: "*" cancels the exchange.
        await connection.command("*")
        raise ReplyError("CRAM-MD5 challenge is not base64") from exc
    return await connection.command(cram_md5_response(username, password, challenge), shown_as=REDACTED)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
