"""A small SMTP server for the demo: greeting, EHLO, STARTTLS, AUTH PLAIN/LOGIN, a message, QUIT.

Just enough of RFC 5321, 3207 and 4954 for the exporter's probe to exercise
every phase against it, on loopback only. Messages are accepted and
discarded. It is not a mail server: no relaying, no queue, and every input is
capped so a stray client cannot make it grow. Nor is it hardened: commands
pipelined behind STARTTLS are not discarded (RFC 3207 section 4.2), which a
real server must do; asyncio's streams do not expose their buffer to do it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

# RFC 5321 section 4.5.3.1.4: 512 octets per command line; AUTH lines carry
# base64 and may be longer (RFC 4954 section 4), so allow some room.
MAX_LINE_OCTETS = 4096
MAX_MESSAGE_OCTETS = 1024 * 1024
# A client that says nothing for this long is dropped.
IDLE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class DemoServerSettings:
    hostname: str
    # Presented for STARTTLS, or from the first byte with ``implicit_tls``.
    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    offer_starttls: bool = True
    # username -> password; AUTH is offered (after TLS only) when not empty.
    users: Mapping[str, str] = field(default_factory=dict)


class _ClientGone(Exception):
    """The client closed the connection, sent too much, or went quiet."""


class DemoSmtpServer:
    def __init__(self, settings: DemoServerSettings) -> None:
        self.settings = settings
        self.messages_accepted = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> int:
        """Listen on a free port of ``host``; return the port."""
        ssl_context = self.settings.tls_context if self.settings.implicit_tls else None
        self._server = await asyncio.start_server(self._on_connection, host, 0, ssl=ssl_context, limit=MAX_LINE_OCTETS)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await _Session(self, reader, writer).run()
        except (_ClientGone, ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._sessions.discard(task)


class _Session:
    def __init__(self, server: DemoSmtpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        self.tls = server.settings.implicit_tls
        self.greeted = False
        self.authenticated = False
        self.in_transaction = False
        self.recipients = 0

    async def run(self) -> None:
        await self.reply(f"220 {self.settings.hostname} ESMTP smtp-tls-exporter demo")
        while True:
            line = await self.read_line()
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                await self.reply("221 2.0.0 Bye")
                return
            await self.command(verb, argument.strip())

    async def command(self, verb: str, argument: str) -> None:
        if verb in ("EHLO", "HELO"):
            await self.hello(verb, argument)
        elif verb == "STARTTLS":
            await self.starttls()
        elif verb == "AUTH":
            await self.auth(argument)
        elif verb == "MAIL":
            await self.mail()
        elif verb == "RCPT":
            await self.rcpt()
        elif verb == "DATA":
            await self.data()
        elif verb == "RSET":
            self.in_transaction, self.recipients = False, 0
            await self.reply("250 2.0.0 Ok")
        elif verb == "NOOP":
            await self.reply("250 2.0.0 Ok")
        else:
            await self.reply("502 5.5.2 Command not implemented")

    async def hello(self, verb: str, argument: str) -> None:
        if not argument:
            await self.reply(f"501 5.5.4 Syntax: {verb} hostname")
            return
        self.greeted, self.in_transaction, self.recipients = True, False, 0
        if verb == "HELO":
            await self.reply(f"250 {self.settings.hostname}")
            return
        lines = [self.settings.hostname, "PIPELINING", f"SIZE {MAX_MESSAGE_OCTETS}", "8BITMIME"]
        if self.tls and self.settings.users:
            lines.append("AUTH PLAIN LOGIN")
        if not self.tls and self.settings.offer_starttls and self.settings.tls_context is not None:
            lines.append("STARTTLS")
        await self.reply(*(f"250-{text}" for text in lines[:-1]), f"250 {lines[-1]}")

    async def starttls(self) -> None:
        context = self.settings.tls_context
        if self.tls or not self.settings.offer_starttls or context is None:
            await self.reply("502 5.5.1 STARTTLS not available")
            return
        await self.reply("220 2.0.0 Ready to start TLS")
        await self.writer.start_tls(context)
        # RFC 3207 section 4.2: the session starts over, EHLO included.
        self.tls, self.greeted, self.authenticated, self.in_transaction = True, False, False, False

    async def auth(self, argument: str) -> None:
        if not (self.tls and self.settings.users):
            await self.reply("503 5.5.1 AUTH not available")
            return
        if self.authenticated:
            await self.reply("503 5.5.1 Already authenticated")
            return
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            credentials = await self.auth_plain(initial)
        elif mechanism == "LOGIN":
            credentials = await self.auth_login(initial)
        else:
            await self.reply("504 5.5.4 Unrecognized authentication type")
            return
        if credentials is None:
            await self.reply("501 5.5.2 Cannot decode the response")
            return
        username, password = credentials
        expected = self.settings.users.get(username)
        if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
            self.authenticated = True
            await self.reply("235 2.7.0 Authentication successful")
        else:
            await self.reply("535 5.7.8 Authentication credentials invalid")

    async def auth_plain(self, initial: str) -> tuple[str, str] | None:
        response = initial or await self.challenge("")
        decoded = _b64decode(response)
        if decoded is None or decoded.count("\0") != 2:
            return None
        _authzid, username, password = decoded.split("\0")
        return username, password

    async def auth_login(self, initial: str) -> tuple[str, str] | None:
        username = _b64decode(initial or await self.challenge("VXNlcm5hbWU6"))  # "Username:"
        if username is None:
            return None
        password = _b64decode(await self.challenge("UGFzc3dvcmQ6"))  # "Password:"
        return None if password is None else (username, password)

    async def challenge(self, text: str) -> str:
        await self.reply(f"334 {text}")
        return await self.read_line()

    async def mail(self) -> None:
        if not self.greeted:
            await self.reply("503 5.5.1 Send EHLO first")
        elif self.settings.users and not self.authenticated:
            await self.reply("530 5.7.0 Authentication required")
        else:
            self.in_transaction, self.recipients = True, 0
            await self.reply("250 2.1.0 Ok")

    async def rcpt(self) -> None:
        if not self.in_transaction:
            await self.reply("503 5.5.1 Need MAIL before RCPT")
            return
        self.recipients += 1
        await self.reply("250 2.1.5 Ok")

    async def data(self) -> None:
        if not self.recipients:
            await self.reply("503 5.5.1 Need RCPT before DATA")
            return
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        size = 0
        while (line := await self.read_line()) != ".":
            size += len(line) + 2
            if size > MAX_MESSAGE_OCTETS:
                raise _ClientGone("message too large")
        self.in_transaction, self.recipients = False, 0
        self.server.messages_accepted += 1
        await self.reply("250 2.0.0 Ok: accepted and discarded by the demo")

    async def read_line(self) -> str:
        """One line without its CRLF; the stream's limit caps it at MAX_LINE_OCTETS."""
        try:
            async with asyncio.timeout(IDLE_TIMEOUT_SECONDS):
                raw = await self.reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise _ClientGone(str(exc)) from exc
        return raw.rstrip(b"\r\n").decode("utf-8", "replace")

    async def reply(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\r\n" for line in lines).encode())
        await self.writer.drain()


def _b64decode(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
