"""How many probes may run at once: derived from the open-files limit, not a fixed number.

Probes wait far more than they compute (greeting delays, round trips,
servers that never answer), so the bound that matters is file descriptors:
each probe in flight holds one socket. Like Go's runtime does for every Go
exporter, we raise the soft open-files limit to the hard one at start, then
leave room for the HTTP side and DNS and give the rest to probes, up to a
ceiling that keeps memory bounded (each probe in flight holds its TLS state
and buffers; bench/RESULTS.md has the figures).
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Concurrent HTTP connections the web side accepts (see web/listener.py).
HTTP_CONNECTIONS = 128
# Sockets of DNS lookups in flight, and files the process keeps open
# (logs, the config, CA files, the event loop's own descriptors).
DNS_SOCKETS = 64
OTHER_FILES = 64
RESERVED_FILES = HTTP_CONNECTIONS + DNS_SOCKETS + OTHER_FILES
MIN_PROBE_SLOTS = 16
MAX_PROBE_SLOTS = 10_000
# A hard limit of "unlimited" is taken as this many.
_UNLIMITED = 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit", extra={"soft": soft, "hard": hard, "error": str(exc)})
    return _UNLIMITED if soft == resource.RLIM_INFINITY else soft


def default_probe_slots(open_files: int) -> int:
    """Probes allowed at once for ``open_files`` descriptors: one each, after the reserve."""
    return max(MIN_PROBE_SLOTS, min(MAX_PROBE_SLOTS, open_files - RESERVED_FILES))
