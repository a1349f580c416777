"""The Prometheus text format 0.0.4: sample lines, label escaping, values (pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Certificates can carry 16 KB subjects or hundreds of SANs; label values
# stay readable and bounded.
MAX_LABEL_VALUE_CHARS = 1024


def label_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    """``name="value",...`` with every value escaped."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)


def sample(name: str, labels: str, value: float, extra: Iterable[tuple[str, str]] = ()) -> str:
    """One sample line; ``labels`` is already rendered, ``extra`` pairs are appended."""
    label_text = labels
    for label, label_value in extra:
        pair = f'{label}="{escape_label_value(label_value)}"'
        label_text = f"{label_text},{pair}" if label_text else pair
    if label_text:
        return f"{name}{{{label_text}}} {format_value(value)}\n"
    return f"{name} {format_value(value)}\n"


def escape_label_value(value: str) -> str:
    # Nearly every value (phases, reasons, ciphers, host names) is short ASCII
    # with nothing to escape: it is answered without re-encoding.
    if value.isascii() and len(value) <= MAX_LABEL_VALUE_CHARS and not _NEEDS_ESCAPE.search(value):
        return value
    if len(value) > MAX_LABEL_VALUE_CHARS:
        value = value[: MAX_LABEL_VALUE_CHARS - 1] + "…"
    # Lone surrogates (from undecodable certificate fields) are not UTF-8.
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_NEEDS_ESCAPE = re.compile(r'[\\\n"]')


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
