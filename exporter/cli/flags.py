"""Flags the daemon and the demo share, defined once (Prometheus-style dotted names)."""

from __future__ import annotations

import argparse

from exporter.cli.logs import LEVELS

DEFAULT_LISTEN_ADDRESS = ":10587"


def add_listen_flag(parser: argparse.ArgumentParser, default: str = DEFAULT_LISTEN_ADDRESS) -> None:
    parser.add_argument(
        "--web.listen-address", dest="listen_address", default=default,
        help=f"address for /metrics and the other endpoints (default: {default})",
    )  # fmt: skip


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info", help="default: info")
    parser.add_argument("--log.format", dest="log_format", choices=("logfmt", "json"), default="logfmt")
