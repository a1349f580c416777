"""The policy fetch: one HTTPS GET of ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (RFC 8461 section 3.3).

A small HTTP/1.1 client of our own over asyncio streams rather than aiohttp's:
the rules are few and each is a line here, not a setting to turn off. The host
is resolved through the exporter's DnsResolver and each address is connected
to in turn (aiohttp would need a custom resolver class for that); redirects are
never followed (section 3.3), so there is no redirect logic at all; the body cap
(64 KiB) and header caps hold while reading; certificate failures arrive as
``ssl.SSLCertVerificationError`` at one known place, so they become
``sts_webpki_invalid`` and not a generic connection error; and there are no
proxies from the environment, cookies, content decoding or connection pools
to reason about. The cost is the transfer coding: ``chunked``, a
Content-Length, or a body to the end of the connection (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from dns.rdatatype import RdataType
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from exporter.dns.resolver import DnsResolver, DnsStatus

HTTPS_PORT = 443
POLICY_PATH = "/.well-known/mta-sts.txt"
# RFC 8461 section 3.3: senders may limit the policy body; 64 KiB is its example.
MAX_BODY_OCTETS = 64 * 1024
# The status line and header fields together; real policy hosts send under 2 KiB.
MAX_HEADER_OCTETS = 16 * 1024
MAX_HEADER_FIELDS = 100
# A chunk-size line ("1000;ext=1\r\n") is short; this bounds a hostile one.
_MAX_CHUNK_LINE = 1024


class FetchProblem(StrEnum):
    """Why no policy body came back; the first two are RFC 8460's result types."""

    FETCH_ERROR = "sts_policy_fetch_error"
    WEBPKI_INVALID = "sts_webpki_invalid"


@dataclass(frozen=True)
class FetchOutcome:
    """A 200 body, or why there is none. ``detail`` is for people."""

    policy_host: str
    body: bytes | None
    problem: FetchProblem | None
    detail: str
    # The address the answer (or the last failure) came from.
    address: str | None
    content_type: str | None = None
    duration_seconds: float = 0.0


class _HttpError(Exception):
    """The response broke HTTP/1.1 or one of our caps."""


def policy_host(domain: str) -> str:
    return f"mta-sts.{domain.lower().rstrip('.')}"


def policy_context(ca_file: Path | None) -> ssl.SSLContext:
    """WebPKI verification as senders do it: the system store (or one CA file), the host name checked.

    Unlike the probe's handshake context, this one refuses what it cannot
    verify: a policy fetched over an unverified connection is not a policy.
    """
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def fetch_policy(resolver: DnsResolver, domain: str, *, deadline: float, context: ssl.SSLContext) -> FetchOutcome:
    """GET the policy by ``deadline`` (loop time); never raises for what the network or the server does."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    host = policy_host(domain)
    addresses, problem = await _addresses(resolver, host)
    if not addresses:
        return FetchOutcome(host, None, FetchProblem.FETCH_ERROR, problem, None, None, time.monotonic() - started)
    outcome = FetchOutcome(host, None, FetchProblem.FETCH_ERROR, "no address tried", None)
    for position, address in enumerate(addresses):
        # Every address left gets a fair share of the time left, as the SMTP probe does.
        share = (deadline - loop.time()) / (len(addresses) - position)
        outcome, answered = await _fetch_from(host, address, context, loop.time() + share)
        # A certificate or an HTTP response is the host's answer; only an unreachable address sends us on.
        if answered:
            break
    return FetchOutcome(
        outcome.policy_host,
        outcome.body,
        outcome.problem,
        outcome.detail,
        outcome.address,
        outcome.content_type,
        time.monotonic() - started,
    )


async def _addresses(resolver: DnsResolver, host: str) -> tuple[list[str], str]:
    answers = await asyncio.gather(resolver.lookup(host, RdataType.A), resolver.lookup(host, RdataType.AAAA))
    addresses = [record.address for answer in answers for record in answer.records if isinstance(record, A | AAAA)]
    if addresses:
        return addresses, ""
    statuses = ", ".join(f"{answer.rdtype.name} {answer.status.upper()}" for answer in answers)
    if all(answer.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA) for answer in answers):
        return [], f"{host} has no address ({statuses})"
    return [], f"{host}: address lookup failed ({statuses})"


async def _fetch_from(host: str, address: str, context: ssl.SSLContext, deadline: float) -> tuple[FetchOutcome, bool]:
    """The outcome from one address, and whether the host answered (TLS, then HTTP) there."""
    writer: asyncio.StreamWriter | None = None
    answered = False
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout_at(deadline):
            reader, writer = await asyncio.open_connection(
                address, HTTPS_PORT, ssl=context, server_hostname=host, limit=MAX_HEADER_OCTETS
            )
            writer.write(
                f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: smtp-tls-exporter\r\n"
                "Accept: text/plain\r\nConnection: close\r\n\r\n".encode("ascii")
            )
            answered = True
            await writer.drain()
            status, reason, headers = await _read_head(reader)
            if status != 200:
                detail = _status_detail(status, reason, headers)
                return FetchOutcome(host, None, FetchProblem.FETCH_ERROR, detail, address), answered
            body = await _read_body(reader, headers)
            return FetchOutcome(host, body, None, "HTTP 200", address, headers.get("content-type")), answered
    except ssl.SSLCertVerificationError as error:
        detail = f"certificate of {host} not valid: {error.verify_message}"
        return FetchOutcome(host, None, FetchProblem.WEBPKI_INVALID, detail, address), True
    except TimeoutError:
        return FetchOutcome(
            host, None, FetchProblem.FETCH_ERROR, f"timed out after {deadline - started:.1f}s", address
        ), answered
    except _HttpError as error:
        return FetchOutcome(host, None, FetchProblem.FETCH_ERROR, f"HTTP response: {error}", address), answered
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        # OSError: refused or reset connections, TLS handshake failures (ssl.SSLError);
        # ValueError: a line beyond the stream's limit.
        detail = f"{type(error).__name__}: {error}".rstrip(": ")
        return FetchOutcome(host, None, FetchProblem.FETCH_ERROR, detail, address), answered
    finally:
        if writer is not None:
            writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    status_line = await _read_line(reader)
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise _HttpError(f"malformed status line {status_line[:80]!r}")
    headers: dict[str, str] = {}
    octets = len(status_line)
    for _ in range(MAX_HEADER_FIELDS + 1):
        line = await _read_line(reader)
        octets += len(line) + 2
        if octets > MAX_HEADER_OCTETS:
            raise _HttpError(f"header larger than {MAX_HEADER_OCTETS} octets")
        if not line:
            return int(code), reason, headers
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _HttpError(f"malformed header field {line[:80]!r}")
        # Repeated fields join with "," (RFC 9110 section 5.3), which makes a second Content-Length visible.
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    raise _HttpError(f"more than {MAX_HEADER_FIELDS} header fields")


async def _read_line(reader: asyncio.StreamReader) -> str:
    # readline stops at the stream's limit (MAX_HEADER_OCTETS) with a ValueError.
    line = await reader.readline()
    if not line.endswith(b"\n"):
        raise _HttpError("connection closed in the header")
    return line.rstrip(b"\r\n").decode("latin-1")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    coding = headers.get("transfer-encoding", "").lower()
    if coding:
        if coding != "chunked":
            raise _HttpError(f"transfer coding {coding!r} not supported")
        return await _read_chunked(reader)
    length_text = headers.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise _HttpError(f"Content-Length {length_text[:40]!r}")
        length = int(length_text)
        if length > MAX_BODY_OCTETS:
            raise _HttpError(f"body of {length} octets, more than {MAX_BODY_OCTETS}")
        return await reader.readexactly(length)
    # Neither: the body ends with the connection (we asked for Connection: close).
    body = await reader.read(MAX_BODY_OCTETS + 1)
    while len(body) <= MAX_BODY_OCTETS:
        more = await reader.read(MAX_BODY_OCTETS + 1 - len(body))
        if not more:
            return body
        body += more
    raise _HttpError(f"body larger than {MAX_BODY_OCTETS} octets")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readline()
        if not size_line.endswith(b"\n") or len(size_line) > _MAX_CHUNK_LINE:
            raise _HttpError("malformed chunk size line")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _HttpError(f"malformed chunk size {size_text[:20]!r}") from None
        if size == 0:
            # The trailer section, if any, up to its empty line; its fields are ignored.
            for _ in range(MAX_HEADER_FIELDS):
                if await _read_line(reader) == "":
                    return bytes(body)
            raise _HttpError("trailer section too long")
        if len(body) + size > MAX_BODY_OCTETS:
            raise _HttpError(f"body larger than {MAX_BODY_OCTETS} octets")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _HttpError("chunk not followed by CRLF")


def _status_detail(status: int, reason: str, headers: dict[str, str]) -> str:
    text = f"HTTP {status} {reason}".rstrip()
    if 300 <= status < 400 and "location" in headers:
        # Section 3.3: "HTTP 3xx redirects MUST NOT be followed".
        return f"{text}, redirect to {headers['location'][:200]} not followed (RFC 8461 section 3.3)"
    return text
