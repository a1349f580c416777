"""What a server offers, read from its EHLO reply (RFC 5321 section 4.1.1.1)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.smtp.reply import SmtpReply

MAX_AUTH_MECHANISMS = 32
_SASL_NAME = re.compile(r"[A-Z0-9_-]{1,20}")


@dataclass(frozen=True)
class EhloCapabilities:
    # The domain the server names on the first line.
    domain: str
    # Extension keyword (upper case) -> its parameters, as offered.
    extensions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    auth_mechanisms: frozenset[str] = frozenset()
    size_limit: int | None = None

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.extensions


# A server answers EHLO the same way probe after probe, and many targets are
# the same server (a provider's MX hosts for many domains): an identical reply
# gets the identical frozen capabilities, parsed once and held once. Only
# short replies are remembered, and only so many, as they come from the network.
_REMEMBERED: dict[tuple[str, ...], EhloCapabilities] = {}
_MAX_REMEMBERED = 1024
_MAX_REMEMBERED_OCTETS = 2048


def parse_ehlo(reply: SmtpReply) -> EhloCapabilities:
    """Read the capabilities from a 250 EHLO reply (see _parse_ehlo)."""
    remembered = _REMEMBERED.get(reply.lines)
    if remembered is not None:
        return remembered
    capabilities = _parse_ehlo(reply)
    if sum(len(line) for line in reply.lines) <= _MAX_REMEMBERED_OCTETS:
        if len(_REMEMBERED) >= _MAX_REMEMBERED:
            _REMEMBERED.clear()
        _REMEMBERED[reply.lines] = capabilities
    return capabilities


def _parse_ehlo(reply: SmtpReply) -> EhloCapabilities:
    """Read the capabilities from a 250 EHLO reply.

    Every line after the first is an extension, the last one included: some
    servers put STARTTLS there, which ``^250-STARTTLS`` style matching misses.
    Keywords are case-insensitive (RFC 5321 section 2.4).
    """
    first, *extension_lines = reply.lines or ("",)
    extensions: dict[str, str] = {}
    auth_mechanisms: set[str] = set()
    for line in extension_lines:
        keyword, _, parameters = line.strip().partition(" ")
        keyword = keyword.upper()
        # Old Microsoft and Netscape servers advertise "AUTH=LOGIN PLAIN".
        if keyword.startswith("AUTH="):
            parameters = f"{keyword[5:]} {parameters}"
            keyword = "AUTH"
        if not keyword:
            continue
        parameters = parameters.strip()
        if keyword == "AUTH":
            # The cap holds across AUTH lines too: each name becomes a series.
            new_names = [name for name in _mechanism_names(parameters) if name not in auth_mechanisms]
            auth_mechanisms.update(new_names[: MAX_AUTH_MECHANISMS - len(auth_mechanisms)])
            extensions["AUTH"] = " ".join(sorted(auth_mechanisms))
        else:
            extensions.setdefault(keyword, parameters)
    return EhloCapabilities(
        domain=first.split(" ", 1)[0],
        extensions=MappingProxyType(extensions),
        auth_mechanisms=frozenset(auth_mechanisms),
        size_limit=_size_limit(extensions.get("SIZE")),
    )


def _mechanism_names(parameters: str) -> list[str]:
    # Mechanism names become label values, so a hostile server must not be
    # able to mint arbitrary or unbounded ones (RFC 4422 section 3.1 syntax).
    names = [word.upper() for word in parameters.split()]
    return [name for name in dict.fromkeys(names) if _SASL_NAME.fullmatch(name)]


def _size_limit(parameters: str | None) -> int | None:
    if parameters is None:
        return None
    value = parameters.split(" ", 1)[0]
    # Real limits fit in 64 bits; a longer digit string is noise (and int()
    # refuses more than 4300 digits).
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 20 else None
