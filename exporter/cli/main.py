"""Command line: Prometheus-style flags for the daemon (``--config.file`` and friends)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter import __version__
from exporter.cli import event_loop
from exporter.cli.flags import add_listen_flag, add_log_flags
from exporter.cli.logs import configure_logging
from exporter.config.loader import ConfigError
from exporter.config.values import parse_duration
from exporter.runtime.daemon import Daemon, load_runtime, serve
from exporter.runtime.limits import MAX_PROBE_SLOTS, RESERVED_FILES, default_probe_slots, raise_open_files_limit
from exporter.runtime.scheduler import Shard
from exporter.state.store import DEFAULT_WRITE_INTERVAL, STATE_FILE_NAME, StateStore, default_state_path
from exporter.web.access import WebAccess, load_web_config
from exporter.web.listener import ListenError, bind

DEFAULT_CONFIG_FILE = "config.yml"

log = logging.getLogger(__name__)


def daemon_parser() -> argparse.ArgumentParser:
    commands = "".join(f"\n  smtp-tls-exporter {name} ...   {text}" for name, (_, text) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="smtp-tls-exporter",
        description="Probe SMTP servers (STARTTLS, TLS, certificates) on a schedule and export Prometheus metrics."
        + (f"\n\nother commands:{commands}" if commands else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config.file", dest="config_file", type=Path, default=Path(DEFAULT_CONFIG_FILE),
        help=f"configuration file (default: {DEFAULT_CONFIG_FILE})",
    )  # fmt: skip
    parser.add_argument(
        "--config.check", dest="config_check", action="store_true",
        help="validate the configuration file, print every problem, and exit 0 (valid) or 1",
    )  # fmt: skip
    add_listen_flag(parser)
    parser.add_argument(
        "--web.config.file", dest="web_config_file", type=Path, default=None, metavar="FILE",
        help="TLS and basic auth for every endpoint, in exporter-toolkit's web config format (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--probe.max-concurrency", dest="max_concurrency", type=_positive_int, default=None,
        help="scheduled probes allowed to run at the same time (default: from the open-files limit, "
        f"less {RESERVED_FILES} for HTTP, DNS and files, at most {MAX_PROBE_SLOTS})",
    )  # fmt: skip
    parser.add_argument(
        "--shard", type=_shard, default=None, metavar="K/N",
        help="probe only share K of N (0-based) of the targets, by a stable hash of their names",
    )  # fmt: skip
    parser.add_argument(
        "--storage.path", dest="storage_path", default=None, metavar="FILE",
        help="state file keeping the last results across restarts; \"\" keeps none "
        f"(default: $STATE_DIRECTORY/{STATE_FILE_NAME} when systemd sets it, else data/{STATE_FILE_NAME})",
    )  # fmt: skip
    parser.add_argument(
        "--storage.write-interval", dest="storage_write_interval", type=_duration, default=DEFAULT_WRITE_INTERVAL,
        metavar="DURATION",
        help="write the state file at most this often while results change, and at shutdown (default: 30s)",
    )  # fmt: skip
    parser.add_argument(
        "--runtime.uvloop", dest="uvloop", action=argparse.BooleanOptionalAction, default=True,
        help="run on uvloop when it is installed, which halves the CPU per probe (default: on)",
    )  # fmt: skip
    add_log_flags(parser)
    parser.add_argument("--version", action="version", version=f"smtp-tls-exporter {__version__}")
    return parser


# Subcommands: name -> (module, one-line description). Each module has
# main(argv) -> exit status; imported only when used.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("exporter.cli.check", "probe one server now and explain the result"),
    "demo": ("exporter.demo.main", "start SMTP servers in every posture on loopback and probe them"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
        status: int = module.main(argv[1:])
        return status
    arguments = daemon_parser().parse_args(argv)
    configure_logging(arguments.log_level, arguments.log_format)
    if arguments.config_check:
        status = _check_config(arguments.config_file)
        if arguments.web_config_file is not None:
            status = max(status, _check_web_config(arguments.web_config_file))
        return status
    return _run_daemon(arguments)


def _check_config(path: Path) -> int:
    try:
        config, _ = load_runtime(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{path}: configuration is valid ({len(config.targets)} targets)")
    return 0


def _check_web_config(path: Path) -> int:
    try:
        loaded = load_web_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    for warning in loaded.config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    tls = "HTTPS" if loaded.context is not None else "plain HTTP"
    print(f"{path}: web configuration is valid ({tls}, {len(loaded.config.users)} basic auth users)")
    return 0


def _run_daemon(arguments: argparse.Namespace) -> int:
    open_files = raise_open_files_limit()
    max_concurrency = arguments.max_concurrency or default_probe_slots(open_files)
    storage_path = default_state_path() if arguments.storage_path is None else arguments.storage_path
    state = StateStore(Path(storage_path) if storage_path else None, write_interval=arguments.storage_write_interval)
    daemon = Daemon(arguments.config_file, max_concurrency=max_concurrency, shard=arguments.shard, state=state)
    try:
        daemon.load()
    except ConfigError as exc:
        log.error("invalid configuration; not starting:\n%s", exc)
        return 1
    try:
        access = WebAccess(arguments.web_config_file)
    except ConfigError as exc:
        log.error("invalid web configuration; not starting:\n%s", exc)
        return 1
    try:
        listener = bind(arguments.listen_address)
    except ListenError as exc:
        log.error("%s", exc)
        return 1
    log.info(
        "starting smtp-tls-exporter",
        extra={
            "version": __version__,
            "config": str(arguments.config_file),
            "open_files": open_files,
            "probe_slots": max_concurrency,
            "state_file": storage_path or "(none)",
        },
    )
    event_loop.run(serve(daemon, listener, access), use_uvloop=arguments.uvloop)
    return 0


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0s")
    return seconds


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


if __name__ == "__main__":
    sys.exit(main())
