"""The MTA-STS policy file (RFC 8461 section 3.2) and its MX patterns (section 4.1). Pure.

version: STSv1
mode: enforce
mx: mail.example.com
mx: *.example.net
max_age: 604800
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# RFC 8461 section 3.2: "up to 31557600" (about one year).
MAX_AGE_LIMIT = 31557600
# sts-policy-field-delim = ":" *WSP; names are case-sensitive (%s), with no space before ":".
_FIELD = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(?P<value>.*?)[ \t]*")
# sts-policy-ext-value: visible characters (UTF-8 allowed) with inner spaces, no controls.
_VALUE = re.compile(r"[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
# RFC 5321 Domain: sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


class StsMode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class StsPolicy:
    mode: StsMode
    # Lower case, as published (a leading "*." kept).
    mx_patterns: tuple[str, ...]
    max_age_seconds: int

    def covers(self, mx_host: str) -> bool:
        """Whether any of the policy's patterns matches ``mx_host`` (section 4.1)."""
        return any(mx_pattern_matches(pattern, mx_host) for pattern in self.mx_patterns)


@dataclass(frozen=True)
class PolicyProblem:
    """Why a policy body is not a valid policy, for people."""

    detail: str


def mx_pattern_matches(pattern: str, mx_host: str) -> bool:
    """RFC 8461 section 4.1: exact, case-insensitive; a leading ``*.`` stands for exactly one left-most label.

    ``*.example.com`` matches ``mx1.example.com``, not ``example.com`` and not ``a.b.example.com``.
    """
    pattern, host = pattern.lower().rstrip("."), mx_host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return host == pattern


def parse_policy(body: bytes) -> StsPolicy | PolicyProblem:
    """A policy from the fetched body: strict about the known fields, ignoring unknown ones (section 3.2)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return PolicyProblem(f"not UTF-8: {error.reason} at octet {error.start}")
    # sts-policy-term = LF / CRLF, after each field; a bare CR is not a line end.
    lines = text.replace("\r\n", "\n").split("\n")
    # The grammar allows one final line ending; editors often leave more. Empty
    # lines at the end are forgiven, empty lines between fields are not.
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return PolicyProblem("empty policy")
    values: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        field = _FIELD.fullmatch(line)
        if field is None or not _VALUE.fullmatch(field["value"]):
            return PolicyProblem(f"line {number} is not a 'name: value' field: {line[:80]!r}")
        values.setdefault(field["name"], []).append(field["value"])
    for name in ("version", "mode", "max_age"):
        found = values.get(name, [])
        if len(found) != 1:
            return PolicyProblem(f"{name} missing" if not found else f"{name} given {len(found)} times")
    if values["version"][0] != "STSv1":
        return PolicyProblem(f"version {values['version'][0]!r}, expected STSv1")
    try:
        mode = StsMode(values["mode"][0])
    except ValueError:
        return PolicyProblem(f"mode {values['mode'][0]!r}, expected enforce, testing or none")
    max_age = values["max_age"][0]
    if not _MAX_AGE.fullmatch(max_age) or int(max_age) > MAX_AGE_LIMIT:
        return PolicyProblem(f"max_age {max_age!r} is not a number of seconds from 0 to {MAX_AGE_LIMIT}")
    patterns = tuple(values.get("mx", []))
    if not patterns and mode is not StsMode.NONE:
        return PolicyProblem(f"no mx pattern (required unless mode is none, and mode is {mode})")
    bad = next((pattern for pattern in patterns if not _pattern_valid(pattern)), None)
    if bad is not None:
        return PolicyProblem(f"mx {bad!r} is not a host name or *.domain pattern")
    return StsPolicy(mode, tuple(pattern.lower() for pattern in patterns), int(max_age))


def _pattern_valid(pattern: str) -> bool:
    # sts-policy-mx-value = ["*."] Domain; a trailing dot is not part of Domain.
    domain = pattern.removeprefix("*.")
    labels = domain.split(".")
    return len(domain) <= 253 and all(len(label) <= 63 and _LABEL.fullmatch(label) for label in labels)
