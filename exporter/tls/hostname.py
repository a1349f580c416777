"""Does a certificate name the server we asked for? (pure)

Follows OpenSSL's X509_check_host / X509_check_ip as Python and Postfix use
them, so our verdict is the one mail clients reach: DNS names in the SAN
win; the subject CN counts only when the SAN has no DNS names; a wildcard is
a whole left-most label ("*.example.com") standing for exactly one label;
IP addresses match only iPAddress SAN entries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def hostname_matches(
    server_name: str,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    common_names: Sequence[str],
) -> bool:
    address = _ip_address(server_name)
    if address is not None:
        return any(_ip_address(entry) == address for entry in ip_addresses)
    wanted = _a_label_form(server_name)
    if not wanted:
        return False
    patterns = dns_names if dns_names else common_names
    return any(_dns_name_matches(wanted, pattern) for pattern in patterns)


def _dns_name_matches(wanted: str, pattern: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if not pattern or not pattern.isascii():
        return False
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == wanted
    suffix = pattern[2:]
    # OpenSSL refuses wildcards over a single label ("*.com"), and partial
    # wildcards ("mail*.example.com") are off by Python's default host flags.
    if "*" in suffix or "." not in suffix:
        return False
    first_label, dot, rest = wanted.partition(".")
    return bool(first_label) and bool(dot) and rest == suffix


def _a_label_form(name: str) -> str:
    name = name.rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
