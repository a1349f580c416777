"""Log lines in logfmt or JSON, like other Prometheus exporters write them.

Structured fields travel in ``extra={...}``; they become key=value pairs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, ClassVar

LEVELS = ("debug", "info", "warn", "error")

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": "warn" if record.levelname == "WARNING" else record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["exception"] = logging.Formatter().formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    _NEEDS_QUOTES: ClassVar[frozenset[str]] = frozenset(' ="\\')

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={self._value(value)}" for key, value in _fields(record).items())

    def _value(self, value: Any) -> str:
        text = str(value)
        if text and not any(char in self._NEEDS_QUOTES or _UNPRINTABLE.match(char) for char in text):
            return text
        return _json(text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _json(_fields(record))


# Server replies and certificate names reach log fields, and one record must
# stay one line whatever they contain. json escapes C0 controls itself, but
# not DEL, C1 controls, U+2028 or U+2029, which many log viewers and
# terminals take for line breaks or commands.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NOT_ESCAPED_BY_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return _NOT_ESCAPED_BY_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": logging.WARNING}.get(level, level.upper()))
    # aiohttp logs every request at info; a scrape every 15 s is not news.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
