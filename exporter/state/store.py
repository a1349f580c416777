"""The state file: each check's last results, kept across restarts.

A slow check (the test message, DNS lookups, and later the capability scan and
MTA-STS) runs minutes or hours apart; without this its series are absent after
a restart until its next run. Each check declares a ``Section`` (a name and its
frozen result type) and registers a function giving its current results; the
store writes them all as one JSON document and, at the next start, hands each
check back the results whose configuration is unchanged.

Writes are coalesced (at most one per ``write_interval`` while something
changes, and one at shutdown) and done in a thread, so the event loop only
copies references. The document is replaced atomically (a temporary file in
the same directory, fsync, rename, fsync of the directory): a crash at any
moment leaves the previous document or the new one, never a mixture. A file
that cannot be read (corrupt, truncated, foreign, a later schema) is set aside
under a new name and the exporter starts without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from exporter.state.codec import StateDecodeError, decode, encode, identity

log = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT = "smtp-tls-exporter state"
# Raised when a stored value changes shape in a way the codec cannot read as
# the old one (a renamed field, a removed enum member); added optional fields
# need no new version.
SCHEMA_VERSION = 1
STATE_FILE_NAME = "state.json"
DEFAULT_WRITE_INTERVAL = 30.0


def default_state_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$STATE_DIRECTORY/state.json`` under systemd's ``StateDirectory=``, else ``data/state.json``."""
    # systemd sets a colon-separated list when the unit names several directories.
    directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(directory) / STATE_FILE_NAME if directory else Path("data") / STATE_FILE_NAME


@dataclass(frozen=True)
class Section(Generic[T]):
    """One check's part of the state file: its results by key (a target's or an entry's name)."""

    name: str
    value_type: type[T]
    # Applied to each value before it is written: what must not reach the disk is taken out here.
    prepare: Callable[[T], T] | None = None
    # Keep each entry's encoded text between writes, for values that outlive many
    # writes (scans, lookups). Off for values replaced about every write.
    remember_encoded: bool = True


@dataclass(frozen=True)
class Current(Generic[T]):
    """A result as it is now, and the configuration it was produced under.

    Only the configuration's ``identity`` is written; a restart compares it with
    the configuration then in force.
    """

    config: object
    value: T


Snapshot = Callable[[], Mapping[str, Current[T]]]


class _Registered(Generic[T]):
    """A section and its snapshot function, with the encoded text of each unchanged entry."""

    def __init__(self, section: Section[T], snapshot: Snapshot[T]) -> None:
        self.section = section
        self.snapshot = snapshot
        # key -> (config, value, the entry's JSON text, zlib-compressed);
        # reused while both objects stay the same, so a write encodes only what
        # changed. Compressed because it lives as long as the entry: at 10,000
        # targets the plain text was 27 MB for the probe results alone (about a
        # fifth of that compressed), and inflating is far cheaper than encoding.
        self._encoded: dict[str, tuple[object, object, bytes]] = {}
        # key -> (config, its identity): configurations outlive results.
        self._identities: dict[str, tuple[object, str]] = {}

    def entries_chunks(self, current: Mapping[str, Current[T]]) -> Iterator[bytes]:
        """The section's JSON object, in chunks of a few hundred entries each.

        The whole section (25 MB at 10,000 targets) never exists as one string.
        """
        encoded: dict[str, tuple[object, object, bytes]] = {}
        identities: dict[str, tuple[object, str]] = {}
        batch: list[bytes] = []
        opening = b"{"
        for key, entry in current.items():
            known = self._identities.get(key)
            if known is None or known[0] is not entry.config:
                known = (entry.config, identity(entry.config))
            identities[key] = known
            cached = self._encoded.get(key)
            if cached is not None and cached[0] is entry.config and cached[1] is entry.value:
                encoded[key] = cached
                item = zlib.decompress(cached[2])
            else:
                value = entry.value if self.section.prepare is None else self.section.prepare(entry.value)
                text = json.dumps({"config": known[1], "value": encode(value)}, separators=(",", ":"))
                item = f"{json.dumps(key)}:{text}".encode("ascii")
                if self.section.remember_encoded:
                    encoded[key] = (entry.config, entry.value, zlib.compress(item, 1))
            batch.append(item)
            if len(batch) >= _ENTRIES_PER_CHUNK:
                yield opening + b",".join(batch)
                batch, opening = [], b","
        self._encoded = encoded
        self._identities = identities
        if batch or opening == b"{":  # the rest, or an empty section's "{"
            yield opening + b",".join(batch)
        yield b"}"


# Entries joined per write: large enough that the writes stay few, small enough to stay small.
_ENTRIES_PER_CHUNK = 256


class StateStore:
    """Reads the state file once at start and writes it while the exporter runs.

    With ``path`` None the store keeps nothing: every method is a no-op.
    """

    def __init__(self, path: Path | None, *, write_interval: float = DEFAULT_WRITE_INTERVAL) -> None:
        self.path = path
        self._write_interval = write_interval
        self._loaded: dict[str, Any] = {}
        self._registered: list[_Registered[Any]] = []
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One write at a time: the shutdown write waits for a periodic one still in its thread.
        self._write_lock = threading.Lock()
        self._write_failing = False

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def load(self) -> None:
        """Read the state file; set it aside when it cannot be used. Never raises."""
        path = self.path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error(
                "cannot create the state directory; results are not kept across restarts",
                extra={"path": str(path.parent), "detail": exc.strerror or str(exc)},
            )
            self.path = None
            return
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            log.info("no state file yet; starting without kept results", extra={"path": str(path)})
            return
        except OSError as exc:
            self._set_aside(path, "unreadable", exc.strerror or str(exc))
            return
        sections, problem = _read_document(raw)
        if sections is None:
            reason, detail = problem
            self._set_aside(path, reason, detail)
            return
        self._loaded = sections
        log.info(
            "state file loaded",
            extra={"path": str(path), **{f"{name}_entries": len(entries) for name, entries in sections.items()}},
        )

    def restored(self, section: Section[T], configs: Mapping[str, object]) -> dict[str, T]:
        """The kept values of ``section`` whose key is in ``configs`` with the same configuration.

        Each value is handed out once (a second call gives nothing): after start,
        results come from the checks themselves. Entries of targets no longer
        configured, of changed configurations, or that cannot be read are dropped.
        """
        entries = self._loaded.pop(section.name, None)
        if not isinstance(entries, dict):
            return {}
        restored: dict[str, T] = {}
        gone = changed = unreadable = 0
        for key, entry in entries.items():
            config = configs.get(key)
            if config is None:
                gone += 1
                continue
            if not isinstance(entry, dict) or entry.get("config") != identity(config):
                changed += 1
                continue
            try:
                restored[key] = decode(section.value_type, entry.get("value"))
            except StateDecodeError as exc:
                unreadable += 1
                if unreadable == 1:  # one example is enough to say what changed
                    log.warning("a kept result cannot be read; dropped", extra={"section": section.name, "detail": exc})
        log.info(
            "kept results restored",
            extra={
                "section": section.name,
                "restored": len(restored),
                "dropped_not_configured": gone,
                "dropped_config_changed": changed,
                "dropped_unreadable": unreadable,
            },
        )
        return restored

    def register(self, section: Section[T], snapshot: Snapshot[T]) -> None:
        """Write ``snapshot()`` as ``section`` from now on (called on the event loop before each write)."""
        if any(registered.section.name == section.name for registered in self._registered):
            raise ValueError(f"state section {section.name!r} is registered twice")
        self._registered.append(_Registered(section, snapshot))

    def changed(self) -> None:
        """Something kept has changed: it is written within ``write_interval``."""
        if self.path is not None:
            self._dirty.set()

    def start(self) -> None:
        if self.path is not None and self._task is None:
            self._task = asyncio.create_task(self._write_when_changed(), name="state writer")

    async def close(self) -> None:
        """Stop writing periodically, and write what changed since the last write."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.path is not None and self._dirty.is_set():
            await self._write_now()

    async def _write_when_changed(self) -> None:
        while True:
            await self._dirty.wait()
            # Coalescing: everything that changes meanwhile goes into one write.
            await asyncio.sleep(self._write_interval)
            await self._write_now()

    async def _write_now(self) -> None:
        self._dirty.clear()
        # On the loop: only references to frozen values are taken, so the thread
        # reads a consistent picture while probes go on.
        snapshot = [(registered, registered.snapshot()) for registered in self._registered]
        try:
            await asyncio.to_thread(self._write, snapshot)
        except (OSError, TypeError, ValueError) as exc:
            # A full disk or a bad value must not stop the exporter; try again at the next change.
            self._dirty.set()
            if not self._write_failing:
                log.error("cannot write the state file", extra={"path": str(self.path), "detail": str(exc)})
            self._write_failing = True
        else:
            if self._write_failing:
                log.info("state file written again", extra={"path": str(self.path)})
            self._write_failing = False

    def _write(self, snapshot: list[tuple[_Registered[Any], Mapping[str, Current[Any]]]]) -> None:
        path = self.path
        if path is None:
            return
        with self._write_lock:
            header = json.dumps({"format": FORMAT, "version": SCHEMA_VERSION, "written_at": time.time()})
            write_atomically(path, self._document(header, snapshot))

    @staticmethod
    def _document(header: str, snapshot: list[tuple[_Registered[Any], Mapping[str, Current[Any]]]]) -> Iterator[bytes]:
        # Produced section by section as the file is written: no second copy of a large document.
        yield f'{header[:-1]},"sections":{{'.encode("ascii")
        for index, (registered, current) in enumerate(snapshot):
            separator = "," if index else ""
            yield f"{separator}{json.dumps(registered.section.name)}:".encode("ascii")
            yield from registered.entries_chunks(current)
        yield b"}}\n"

    def _set_aside(self, path: Path, reason: str, detail: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = path.with_name(f"{path.name}.{reason}-{stamp}")
        try:
            path.rename(aside)
        except OSError as exc:
            log.error(
                "state file cannot be used nor set aside; starting without kept results",
                extra={"path": str(path), "reason": reason, "detail": f"{detail}; rename: {exc.strerror or exc}"},
            )
            return
        log.warning(
            "state file cannot be used; set aside, starting without kept results",
            extra={"path": str(path), "set_aside_as": str(aside), "reason": reason, "detail": detail},
        )


def _read_document(raw: bytes) -> tuple[dict[str, Any] | None, tuple[str, str]]:
    """The sections of a state document, or None and (reason, detail) when it cannot be used."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        # A truncated file ends here too: JSON cannot end in the middle.
        return None, ("corrupt", str(exc))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return None, ("foreign", "not a smtp-tls-exporter state document")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return None, ("corrupt", f"schema version {version!r} is not a number")
    if version > SCHEMA_VERSION:
        return None, ("newer", f"schema version {version} is newer than this release's {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        return None, ("older", f"schema version {version} is older than this release's {SCHEMA_VERSION}")
    sections = document.get("sections")
    if not isinstance(sections, dict):
        return None, ("corrupt", "no sections")
    return sections, ("", "")


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace ``path`` with the concatenated ``chunks`` so that a crash leaves the old file or the new one."""
    # A fixed name: a temporary file left by a crash is overwritten by the next write.
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(descriptor, view) :]
        # The data must be on disk before the rename makes it the state file.
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    # And the rename itself must be on disk, or a power loss may bring the old name back.
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
