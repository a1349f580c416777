"""Real SMTP servers on loopback, shaped per scenario, in a background event loop.

Two kinds: aiosmtpd (a real SMTP implementation, with its EHLO reply and
STARTTLS answer adjustable), and scripted servers for conversations no
real server would hold (a 421 greeting, a handshake cut short).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.support.pki import SERVER_NAME

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
EhloShaper = Callable[[list[str]], list[str]]
_T = TypeVar("_T")


@dataclass
class ReceivedMessage:
    sender: str
    recipients: list[str]
    content: bytes


class ShapingHandler:
    """aiosmtpd handler whose EHLO reply and mail answers can be set per scenario."""

    def __init__(
        self,
        ehlo: EhloShaper | None = None,
        *,
        mail_reply: str | None = None,
        rcpt_reply: str | None = None,
        data_reply: str = "250 2.0.0 Ok: queued",
    ) -> None:
        self._ehlo = ehlo
        self._mail_reply = mail_reply
        self._rcpt_reply = rcpt_reply
        self._data_reply = data_reply
        self.messages: list[ReceivedMessage] = []

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return self._ehlo(responses) if self._ehlo else responses

    async def handle_MAIL(self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self._mail_reply is not None:
            return self._mail_reply
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self._rcpt_reply is not None:
            return self._rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self._data_reply.startswith("250"):
            self.messages.append(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return self._data_reply


class AuthHandler(ShapingHandler):
    """Checks credentials for PLAIN and LOGIN (aiosmtpd's) and CRAM-MD5 (ours).

    Counts AUTH attempts, so a test can prove credentials were never sent.
    """

    def __init__(self, users: dict[str, str], *, temporary_failure: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.users = users
        self.temporary_failure = temporary_failure
        self.attempts = 0

    def authenticator(self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        self.attempts += 1
        if self.temporary_failure:
            return AuthResult(success=False, handled=False, message="454 4.7.0 Temporary authentication failure")
        if isinstance(auth_data, LoginPassword):
            ok = self.users.get(auth_data.login.decode()) == auth_data.password.decode()
            return AuthResult(success=ok, handled=False, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        self.attempts += 1
        challenge = f"<{secrets.token_hex(8)}@mail.test>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes) or b" " not in response:
            return AuthResult(success=False, handled=False)
        username, digest = response.decode().rsplit(" ", 1)
        password = self.users.get(username)
        expected = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest() if password else None
        return AuthResult(success=expected is not None and hmac.compare_digest(expected, digest), handled=False)


ALREADY_IDENTIFIED = "503 5.5.1 Invalid command: Already identified"


class ShapedSMTP(SMTP):
    """aiosmtpd's SMTP with a configurable answer to STARTTLS, and strict about EHLO.

    Like OpenSMTPD, it refuses a second EHLO in the same session with 503
    (RFC 5321 lets a client repeat EHLO, but a client must not count on it):
    only STARTTLS starts a new session in which EHLO is due again. Postfix
    accepts the repeat, which is how a needless EHLO went unnoticed.
    """

    def __init__(
        self, handler: Any, *, starttls_reply: str | None = None, strict_ehlo: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self._starttls_reply = starttls_reply
        self._strict_ehlo = strict_ehlo
        # Whether TLS was on when the client identified itself; None: not yet.
        self._identified_with_tls: bool | None = None

    async def smtp_EHLO(self, hostname: str) -> None:
        with_tls = self._tls_protocol is not None
        if self._strict_ehlo and self._identified_with_tls == with_tls:
            await self.push(ALREADY_IDENTIFIED)
            return
        await super().smtp_EHLO(hostname)
        if self.session is not None and self.session.host_name:
            self._identified_with_tls = with_tls

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._starttls_reply is not None:
            await self.push(self._starttls_reply)
            return
        await super().smtp_STARTTLS(arg)


def starttls_on_last_line(lines: list[str]) -> list[str]:
    """Move STARTTLS to the final ``250 `` line, as some servers send it."""
    body = [line[4:] for line in lines if line[4:] not in ("STARTTLS", "HELP")]
    texts = [*body, "STARTTLS"]
    return [f"250-{text}" for text in texts[:-1]] + [f"250 {texts[-1]}"]


def without_starttls(lines: list[str]) -> list[str]:
    texts = [line[4:] for line in lines if line[4:] != "STARTTLS"]
    return [f"250-{text}" for text in texts[:-1]] + [f"250 {texts[-1]}"]


class ScenarioServers:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="scenario-servers", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def smtp(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        ehlo: EhloShaper | None = None,
        starttls_reply: str | None = None,
        handler: ShapingHandler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **smtp_options: Any,
    ) -> int:
        """Start an aiosmtpd server; return its port.

        With ``implicit_tls`` the whole connection is TLS from the first
        byte (port 465 style); otherwise ``tls_context`` enables STARTTLS.
        """
        handler = handler or ShapingHandler(ehlo)
        if isinstance(handler, AuthHandler):
            smtp_options.setdefault("authenticator", handler.authenticator)

        def protocol() -> SMTP:
            return ShapedSMTP(
                handler,
                hostname=SERVER_NAME,  # never socket.getfqdn(): no DNS in tests
                tls_context=None if implicit_tls else tls_context,
                starttls_reply=starttls_reply,
                loop=self.loop,
                **smtp_options,
            )

        ssl_context = tls_context if implicit_tls else None
        return self._listen(self.loop.create_server(protocol, host, port, ssl=ssl_context))

    def scripted(self, script: Script, *, ssl_context: ssl.SSLContext | None = None) -> int:
        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            except asyncio.CancelledError:
                # Only close() cancels; ending quietly spares asyncio's stream
                # callback from asking a cancelled task for its exception.
                pass
            finally:
                writer.close()

        return self._listen(asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=ssl_context))

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        async def close_all() -> None:
            for server in self._servers:
                server.close()
            # Conversations still in progress (a server that stalls on purpose)
            # end here, not when the loop is already closed.
            pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self.run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def _listen(self, starting: Coroutine[Any, Any, asyncio.Server]) -> int:
        server = self.run(starting)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def read_command(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n")


async def send(writer: asyncio.StreamWriter, *lines: str) -> None:
    writer.write("".join(f"{line}\r\n" for line in lines).encode())
    await writer.drain()


def greeting_then(code_line: str) -> Script:
    """A server that sends ``code_line`` as its greeting and hangs up."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, code_line)

    return script


def starttls_then_hang_up(ehlo_lines: Sequence[str] = ("250-mail.test", "250 STARTTLS")) -> Script:
    """Accepts STARTTLS, reads the start of the ClientHello, then closes."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, "220 mail.test ESMTP")
        await read_command(reader)  # EHLO
        await send(writer, *ehlo_lines)
        await read_command(reader)  # STARTTLS
        await send(writer, "220 2.0.0 Ready to start TLS")
        await reader.read(5)  # the TLS record header of the ClientHello

    return script


async def _plain_conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await send(writer, "220 mail.test ESMTP")
    await read_command(reader)
    await send(writer, "250-mail.test", "250 8BITMIME")
    await read_command(reader)
    await send(writer, "221 2.0.0 Bye")


def gated_plain_server(release: threading.Event) -> Script:
    """A plain ESMTP server that greets only once ``release`` is set (or after a minute)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.to_thread(release.wait, 60)
        await _plain_conversation(reader, writer)

    return script


def slow_plain_server(delay: float) -> Script:
    """A plain ESMTP server that waits ``delay`` seconds before its greeting."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        await _plain_conversation(reader, writer)

    return script
