"""Durable state for the simulator: named maps written through to one SQLite file.

Every piece of state the simulator must not forget lives in a :class:`TrackedMap` registered under a
name (``objects``, ``owner``, ``timers``, ``idempotency``, …). A map remembers which keys were written,
read (a stored object is a dict the engine changes in place once it has fetched it) or removed since the
last commit; only those are written. At the end of every request the app stages the changes and waits
until they are on disk before sending the answer; concurrent requests share one transaction and one
fsync (group commit, on a worker thread, so the event loop keeps serving). Background work (timers,
webhook attempts) is staged the same way. No answer is sent for a change that is not on disk, nor one
that shows another request's change before that change is on disk.

Generic on purpose: a new object kind stored with ``Simulator.add`` or a new map registered with
``Simulator.persistent`` is saved and restored with no code here. Everything that can be derived from the
maps (lists by kind, balances, the pending-funds heap, the timer heap) is rebuilt on load, not stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MISSING: Any = object()

Batch = list[tuple[str, bool, list[tuple[str, str]], list[str]]]
"""One change set: per map, (name, cleared, [(key, encoded value)], [removed key])."""

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]
"""(to JSON-compatible, from JSON-compatible) for a map whose values are not plain JSON."""


class TrackedMap(dict[str, Any]):
    """A dict that records which keys changed, for write-through persistence.

    Reads are recorded too (``read``): the engine fetches a stored object and changes it in place, so a
    key read during a mutating request may have changed. A read-only request discards them.
    """

    __slots__ = ("cleared", "codec", "name", "read", "removed", "touched")

    def __init__(self, name: str, codec: Codec | None = None) -> None:
        super().__init__()
        self.name = name
        self.codec = codec
        self.touched: set[str] = set()
        self.read: set[str] = set()
        self.removed: set[str] = set()
        self.cleared = False

    # ---- recording ---------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        self.read.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            return default
        self.read.add(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self.touched.add(key)
        self.removed.discard(key)

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self.touched.discard(key)
        self.removed.add(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key in self:
            value = dict.pop(self, key)
            self.touched.discard(key)
            self.removed.add(key)
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        dict.clear(self)
        self.touched.clear()
        self.read.clear()
        self.removed.clear()
        self.cleared = True

    def touch(self, key: str) -> None:
        """Mark ``key`` changed (its value was changed in place by someone holding it)."""
        if dict.__contains__(self, key):
            self.touched.add(key)

    def load(self, key: str, value: Any) -> None:
        """Put a stored value back without recording it as a change."""
        dict.__setitem__(self, key, value)

    def forget_reads(self) -> None:
        self.read.clear()

    @property
    def dirty(self) -> bool:
        return bool(self.touched or self.read or self.removed or self.cleared)

    def drain(self) -> tuple[bool, list[tuple[str, str]], list[str]]:
        """(cleared, [(key, encoded value)], [removed key]) since the last drain; resets the record."""
        to_json = self.codec[0] if self.codec else None
        rows = []
        for key in self.touched | self.read if self.read else self.touched:
            value = dict.get(self, key, _MISSING)
            if value is not _MISSING:
                rows.append((key, _encode(to_json(value) if to_json else value)))
        out = (self.cleared, rows, list(self.removed))
        self.touched = set()
        self.read = set()
        self.removed = set()
        self.cleared = False
        return out


class StateStore:
    """One SQLite file (WAL, ``synchronous=FULL``): each commit is durable when it returns.

    ``path=None`` keeps nothing: commits only reset the change records (tests and load runs that start
    from nothing every time).
    """

    def __init__(
        self,
        path: str | Path | None,
        scrub: Callable[[str], str] | None = None,
        restore: Callable[[str], str] | None = None,
    ) -> None:
        # scrub/restore: take out of each saved value what must not rest on disk (and can be derived
        # again on load), put it back when reading.
        self.scrub = scrub
        self.restore = restore
        self.path = None if path is None else Path(path)
        self._db: sqlite3.Connection | None = None
        self._pending: list[Batch] = []
        self.staged = 0  # change sets staged so far
        self.written = 0  # of those, how many are on disk
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: transactions are opened explicitly, one per commit().
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at each commit, so an answered change survives a crash of the host
            # too, like the system's PostgreSQL (fsync on). NORMAL would only survive a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entries ("
                " map TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (map, key))"
            )

    @property
    def durable(self) -> bool:
        return self._db is not None

    def load(self) -> dict[str, list[tuple[str, Any]]]:
        """Every stored map as ``{name: [(key, JSON value), …]}`` in first-written order."""
        if self._db is None:
            return {}
        out: dict[str, list[tuple[str, Any]]] = {}
        # rowid order is first-insert order: an upsert keeps the row (and its rowid) of the first write.
        restore = self.restore
        for name, key, value in self._db.execute("SELECT map, key, value FROM entries ORDER BY rowid"):
            out.setdefault(name, []).append((key, json.loads(restore(value) if restore else value)))
        return out

    def stage(self, maps: Iterable[TrackedMap]) -> int:
        """Take what changed in ``maps`` (on the thread that changes them) into the next write; return the
        number of the last staged change set, which :attr:`written` reaches once it is on disk."""
        changes = [(m.name, *m.drain()) for m in maps if m.dirty]
        if self._db is not None and changes:
            self._pending.append(changes)
            self.staged += 1
        return self.staged

    def take(self) -> tuple[list[Batch], int]:
        """The staged change sets, oldest first, and the number of the last one, for :meth:`write`."""
        batches, self._pending = self._pending, []
        return batches, self.staged

    def write(self, batches: list[Batch], upto: int) -> None:
        """Write ``batches`` in one transaction (one fsync however many requests made them).

        May run on a worker thread, one write at a time: the caller keeps them in staging order."""
        if self._db is None or not batches:
            self.written = max(self.written, upto)
            return
        db = self._db
        scrub = self.scrub
        db.execute("BEGIN IMMEDIATE")
        try:
            for changes in batches:
                for name, cleared, rows, removed in changes:
                    if cleared:
                        db.execute("DELETE FROM entries WHERE map = ?", (name,))
                    if removed:
                        db.executemany(
                            "DELETE FROM entries WHERE map = ? AND key = ?", [(name, k) for k in removed]
                        )
                    if rows:
                        db.executemany(
                            "INSERT INTO entries (map, key, value) VALUES (?, ?, ?)"
                            " ON CONFLICT (map, key) DO UPDATE SET value = excluded.value",
                            [(name, k, scrub(v) if scrub else v) for k, v in rows],
                        )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.written = max(self.written, upto)

    def commit(self, maps: Iterable[TrackedMap]) -> None:
        """Stage and write now, on this thread (start-up, shutdown, tests)."""
        self.stage(maps)
        self.write(*self.take())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
