"""Small value grammars shared by the config file and the command line (pure).

Each parser raises ValueError with a message fit for a person; the caller
adds where the value came from (a key path, a flag).
"""

from __future__ import annotations

import re
import unicodedata

_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration such as ``30s``, ``5m`` or ``1h30m``."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"invalid duration {text!r} (use a number with a unit, such as 30s, 5m or 1h)")
    return float(sum(int(value) * unit for value, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if value))


def split_host_port(server: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif server.count(":") == 1:
        host, _, port_text = server.partition(":")
    else:
        host, port_text = server, ""
    if not host:
        raise ValueError(f"no host in {server!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port in {server!r}")
    return host, int(port_text)


def check_command_text(text: str) -> str:
    """``text`` unchanged if it can go into an SMTP command line as one argument.

    A CR or LF would end our command early and let the rest be read as a
    second command (aiosmtplib refuses them too); other control and
    line-separator characters have no place in a name or an address.
    """
    for char in text:
        if char in "\r\n" or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ValueError(f"contains the control character U+{ord(char):04X}")
    return text


def check_mail_address(address: str) -> str:
    """``address`` unchanged if it is local@domain with nothing that could rewrite an SMTP command."""
    check_command_text(address)
    if "@" not in address or any(char in address for char in "<> \t"):
        raise ValueError(f"{address!r} is not a plain mail address such as probe@example.net")
    return address


def check_ehlo_name(name: str) -> str:
    """``name`` unchanged if it can follow EHLO: one word, no control characters."""
    check_command_text(name)
    if not name or any(char.isspace() for char in name):
        raise ValueError(f"{name!r} must be one word, such as probe.example.net")
    return name


def format_endpoint(host: str, port: int) -> str:
    """``host:port``, with IPv6 addresses bracketed: the inverse of split_host_port."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
