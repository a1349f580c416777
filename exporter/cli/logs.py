"""Log lines in logfmt or JSON, like other Prometheus exporters write them.

Structured fields travel in ``extra={...}``; they become key=value pairs.
"""

from __future__ import annotations

import json
import logging
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
    _NEEDS_QUOTES: ClassVar[frozenset[str]] = frozenset(' ="\\\n\t')

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={self._value(value)}" for key, value in _fields(record).items())

    def _value(self, value: Any) -> str:
        text = str(value)
        if text and not any(char in self._NEEDS_QUOTES for char in text):
            return text
        return json.dumps(text, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": logging.WARNING}.get(level, level.upper()))
    # aiohttp logs every request at info; a scrape every 15 s is not news.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
