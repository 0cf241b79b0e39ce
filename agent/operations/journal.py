"""The operations journal: one SQLite table at ``<state_dir>/operations.db``.

Durability is SQLite's: WAL mode with ``synchronous=FULL``, so a row whose
transaction returned is on disk and survives ``kill -9`` or a power cut; an
interrupted transaction is rolled back at the next open.  The unique index on
``(kind, request_id)`` is what makes a request_id idempotent, also between
processes.  One connection, serialized by a lock (writes are single rows; the
journal is not a hot path).

A file SQLite cannot read (overwritten, truncated, a disk error) raises
:class:`JournalCorrupt` at open; :func:`move_aside` keeps it for inspection
so that the agent can start with an empty journal (docs/security.md says
what is lost, and why that beats refusing to start).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Collection, Iterable, Iterator

from agent.operations.model import ACTIVE, CODE_ABORTED, TERMINAL, Operation, OperationState

SCHEMA_VERSION = 1
INTERRUPTED = "agent restarted while the operation was running"
NOT_STARTED = "agent restarted before the operation started; it did not run"
# sqlite3.h primary result codes that mean "this file is damaged"
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    state INTEGER NOT NULL,
    args_hash TEXT NOT NULL,
    identity TEXT NOT NULL DEFAULT '',
    progress_percent INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    args TEXT,
    result TEXT,
    error_code INTEGER NOT NULL DEFAULT 0,
    error_message TEXT NOT NULL DEFAULT '',
    create_time REAL NOT NULL,
    start_time REAL NOT NULL DEFAULT 0,
    end_time REAL NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS operations_request ON operations (kind, request_id);
CREATE INDEX IF NOT EXISTS operations_state ON operations (state, end_time);
"""
_COLUMNS = ("seq", "name", "kind", "request_id", "resource", "state", "args_hash", "identity",
            "progress_percent", "message", "args", "result", "error_code", "error_message",
            "create_time", "start_time", "end_time", "cancel_requested")
_UPDATABLE = frozenset(_COLUMNS) - {"seq", "name", "kind", "request_id", "args_hash"}
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM operations"


class JournalError(Exception):
    """The database is not one this version can use."""


class JournalCorrupt(JournalError):
    """SQLite cannot read the file as a database, or finds it damaged."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)  # no error code: a check raised it ourselves
    return "not a database" in text or "malformed" in text


def move_aside(path: str, clock: Callable[[], float] = time.time) -> str:
    """Rename the database and its -wal/-shm to ``<path>.corrupt-<UTC time>``
    (and ``...-wal``/``...-shm``: SQLite opens the copy with its own WAL);
    returns the new name of the database."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    target = f"{path}.corrupt-{stamp}"
    for suffix in ("", "-wal", "-shm"):
        try:
            os.replace(path + suffix, target + suffix)
        except FileNotFoundError:
            pass
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the renames survive a power cut before the new file is made
    finally:
        os.close(fd)
    return target


class DuplicateRequest(Exception):
    """``insert`` found an operation with the same (kind, request_id)."""

    def __init__(self, existing: Operation) -> None:
        super().__init__(f"{existing.kind} request_id {existing.request_id!r} is {existing.name}")
        self.existing = existing


def _encode(column: str, value: Any) -> Any:
    if column in ("args", "result"):
        return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"),
                                                     allow_nan=False)
    if column == "state":
        return int(value)
    if column == "cancel_requested":
        return int(bool(value))
    return value


def _row(row: tuple) -> Operation:
    d = dict(zip(_COLUMNS, row))
    d["state"] = OperationState(d["state"])
    d["cancel_requested"] = bool(d["cancel_requested"])
    for column in ("args", "result"):
        if d[column] is not None:
            d[column] = json.loads(d[column])
    return Operation(**d)


def _create_private(path: str) -> None:
    """The file exists with mode 0600 before SQLite opens it; SQLite gives its
    -wal and -shm files the database's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _check_header(path: str) -> None:
    """Refuse a non-empty file that is not SQLite before SQLite opens it: on
    closing such a file SQLite deletes its -wal, which :func:`move_aside`
    should keep."""
    with open(path, "rb") as f:
        header = f.read(len(_MAGIC))
    if header and header != _MAGIC:
        raise JournalCorrupt(path, "file is not a database (no SQLite header)")


class Journal:
    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        _create_private(path)
        _check_header(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if _is_corruption(exc):
                raise JournalCorrupt(path, str(exc)) from None
            raise
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        db = self._db
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise JournalError(f"{self.path}: cannot use WAL mode")
        db.execute("PRAGMA synchronous=FULL")
        # A readable header over damaged pages would fail later, inside an
        # operation; the journal is small, so check it all now.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise JournalCorrupt(self.path, "; ".join(problems))
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(f"{self.path}: schema version {version} is newer than "
                               f"this agent's {SCHEMA_VERSION}")
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on an exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writes ----------------------------------------------------------
    def insert(self, op: Operation) -> Operation:
        """Store a new operation; its ``seq`` is set.  Raises
        ``DuplicateRequest`` with the stored one when (kind, request_id) exists."""
        columns = [c for c in _COLUMNS if c != "seq"]
        values = [_encode(c, getattr(op, c)) for c in columns]
        with self._lock:
            try:
                with self._transaction():
                    cur = self._db.execute(
                        f"INSERT INTO operations ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' * len(columns))})", values)
            except sqlite3.IntegrityError:
                existing = self._one("WHERE kind = ? AND request_id = ?", (op.kind, op.request_id))
                if existing is None:  # the name collided, not the request: a bug
                    raise
                raise DuplicateRequest(existing) from None
            return op.replace(seq=cur.lastrowid)

    def update(self, name: str, **fields: Any) -> Operation:
        """Change some columns of one operation; returns it as stored.
        ``KeyError`` when there is no such operation."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {', '.join(sorted(unknown))}")
        sets = ", ".join(f"{c} = ?" for c in fields)
        values = [_encode(c, v) for c, v in fields.items()]
        with self._lock:
            with self._transaction():
                if fields:
                    self._db.execute(f"UPDATE operations SET {sets} WHERE name = ?", [*values, name])
                op = self._one("WHERE name = ?", (name,))
            if op is None:
                raise KeyError(name)
            return op

    def purge(self, finished_before: float) -> int:
        """Delete the finished operations that ended before this time."""
        states = tuple(int(s) for s in TERMINAL)
        with self._lock, self._transaction():
            cur = self._db.execute(
                f"DELETE FROM operations WHERE state IN ({', '.join('?' * len(states))}) "
                "AND end_time < ?", (*states, finished_before))
            return cur.rowcount

    def mark_interrupted(self, resume_kinds: Collection[str]) -> list[Operation]:
        """At start: every PENDING/RUNNING operation whose kind is not in
        ``resume_kinds`` becomes FAILED with ABORTED, its message saying
        whether it had started (``INTERRUPTED``) or not (``NOT_STARTED``);
        the remaining unfinished ones (which may be resumed) are returned,
        oldest first."""
        active = tuple(int(s) for s in ACTIVE)
        keep = tuple(resume_kinds)
        marks = ", ".join("?" * len(active))
        exclude = f"AND kind NOT IN ({', '.join('?' * len(keep))})" if keep else ""
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE operations SET state = ?, error_code = ?, "
                # PENDING with no start_time never reached a worker: nothing ran.
                "error_message = CASE WHEN state = ? AND start_time = 0 THEN ? ELSE ? END, "
                f"end_time = ? WHERE state IN ({marks}) {exclude}",
                (int(OperationState.FAILED), CODE_ABORTED, int(OperationState.PENDING),
                 NOT_STARTED, INTERRUPTED, self._clock(), *active, *keep))
            return self._many(f"WHERE state IN ({marks}) ORDER BY seq", active)

    # -- reads -----------------------------------------------------------
    def get(self, name: str) -> Operation | None:
        with self._lock:
            return self._one("WHERE name = ?", (name,))

    def find(self, kind: str, request_id: str) -> Operation | None:
        with self._lock:
            return self._one("WHERE kind = ? AND request_id = ?", (kind, request_id))

    def list(self, kind: str | None = None, state: OperationState | None = None,
             limit: int = 100, after: int = 0) -> list[Operation]:
        """Oldest first, starting after journal position ``after`` (an
        operation's ``seq``; 0 for the start)."""
        where, args = ["seq > ?"], [after]
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if state:
            where.append("state = ?")
            args.append(int(state))
        with self._lock:
            return self._many(f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", (*args, limit))

    def unfinished(self) -> list[Operation]:
        """Every PENDING or RUNNING operation, oldest first."""
        active = tuple(int(s) for s in ACTIVE)
        with self._lock:
            return self._many(f"WHERE state IN ({', '.join('?' * len(active))}) ORDER BY seq",
                              active)

    def created_since(self, t: float) -> list[Operation]:
        """Operations created at or after ``t``, oldest first."""
        with self._lock:
            return self._many("WHERE create_time >= ? ORDER BY seq", (t,))

    def integrity_check(self) -> str:
        """``"ok"`` when SQLite finds the file intact."""
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, where: str, args: Iterable[Any]) -> Operation | None:
        row = self._db.execute(f"{_SELECT} {where}", tuple(args)).fetchone()
        return None if row is None else _row(row)

    def _many(self, where: str, args: Iterable[Any]) -> list[Operation]:
        return [_row(r) for r in self._db.execute(f"{_SELECT} {where}", tuple(args))]

