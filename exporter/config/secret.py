"""A password that cannot leak by accident: its repr and str are redacted."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

REDACTED = "<redacted>"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value; call it only where the protocol needs the bytes."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        # Equality decides whether a reloaded target changed.
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not to be pickled")


class PasswordUnavailable(ValueError):
    """Where a password should come from, and why it cannot. Never holds the password."""


def password_from_env(variable: str) -> Secret:
    value = os.environ.get(variable)
    if not value:
        raise PasswordUnavailable(f"environment variable {variable} is not set or empty")
    return Secret(value)


def password_from_file(path: Path) -> Secret:
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise PasswordUnavailable(f"cannot read {path}: {reason}") from None
    # Editors and `echo` add a final newline; it is never part of the password.
    value = content.removesuffix("\n").removesuffix("\r")
    if not value:
        raise PasswordUnavailable(f"{path} is empty")
    return Secret(value)
