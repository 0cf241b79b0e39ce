"""The audit trail: every denied call and every mutating call, one JSON line
each in ``<state_dir>/audit.jsonl``, hash-chained so that an edit, a deletion
or a reordering is evident.

Each line is a JSON object (ASCII, no spaces) ending in ``\\n``::

    {"time":"2026-11-24T14:00:00.123Z","seq":7,"identity":"uid:0","peer":"...",
     "method":"/hostagent.v1.Operations/CancelOperation","request_id":"r-1",
     "args":{...},"decision":"allow","status":"OK","duration_ms":1.2,
     "message":"","prev":"<sha256 hex of line 6's bytes, newline included>"}

``seq`` counts from 1 and ``prev`` of line 1 is 64 zeros.  The last line is
covered by no successor: the writer keeps its hash in memory (recomputed from
the file on reopen), and ``verify(path, last_hash)`` checks it.  Arguments
are written with secrets masked (``redact``).  The file is 0600, opened
``O_APPEND``, and each record is fsync'ed before ``record`` returns.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from agent.logs import get_logger

log = get_logger(__name__)

GENESIS = "0" * 64
MASK = "***"
DECISIONS = ("allow", "deny")
_SECRET_RE = re.compile(r"passw(?:or)?d|secret|token|key|credential", re.IGNORECASE)
_TAIL_BLOCK = 65536


def redact(value: Any) -> Any:
    """A copy with the value of every key that names a secret (password,
    passwd, secret, token, key, credential; any case, anywhere in the key)
    replaced by ``***``, in nested objects and lists too."""
    if isinstance(value, dict):
        return {str(k): MASK if _SECRET_RE.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def rfc3339(t: float) -> str:
    """UTC with milliseconds: ``2026-11-24T14:00:00.123Z``."""
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _parse(line: bytes) -> dict | None:
    """The record on a line, or None when it is not one."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if (not isinstance(rec, dict) or not isinstance(rec.get("seq"), int)
            or isinstance(rec.get("seq"), bool) or not isinstance(rec.get("prev"), str)):
        return None
    return rec


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int  # records that verified (before the first bad line)
    first_bad_line: int | None = None  # 1-based
    reason: str = ""


def verify(path: str, last_hash: str | None = None) -> VerifyResult:
    """Check the chain of the file at ``path``.  ``last_hash`` (the writer's
    ``last_hash``) also covers the last line, which no successor does."""
    def bad(n: int, reason: str) -> VerifyResult:
        return VerifyResult(False, n - 1, n, reason)

    prev_hash, prev_seq, n = GENESIS, 0, 0
    with open(path, "rb") as f:
        line = f.readline()
        while line:
            n += 1
            nxt = f.readline()
            if not line.endswith(b"\n"):
                return bad(n, "truncated: the last line is incomplete")
            rec = _parse(line)
            if rec is None:
                return bad(n, "not an audit record (invalid JSON, seq or prev)")
            seq = rec["seq"]
            if seq <= prev_seq:
                return bad(n, f"out of order: seq {seq} after {prev_seq}")
            if seq != prev_seq + 1:
                return bad(n, f"seq jumps from {prev_seq} to {seq}: records deleted or reordered")
            if rec["prev"] != prev_hash:
                # seq is consecutive, so a line was changed: the one before
                # (its hash moved) or this one's prev (then the next line's
                # prev does not match this line either).
                next_rec = _parse(nxt) if nxt else None
                if n > 1 and (not nxt or (next_rec and next_rec["prev"] == _hash(line))):
                    return bad(n - 1, "modified: its hash does not match the next line's prev")
                return bad(n, "modified: prev does not match the hash of the line before")
            prev_hash, prev_seq = _hash(line), seq
            line = nxt
    if last_hash is not None and n and last_hash != prev_hash:
        return bad(n, "modified: the last line differs from the last record written")
    return VerifyResult(True, n)


def _read_tail(path: str) -> tuple[list[bytes], bool]:
    """The last (up to three) lines of the file, and whether it ends in a newline."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        block = b""
        while pos > 0 and block.count(b"\n") < 4:
            step = min(_TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step) + block
    return block.splitlines(keepends=True)[-3:], block.endswith(b"\n") or not block


class AuditLog:
    """Appends records to the chain; thread-safe."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        created = not os.path.exists(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(self._fd, 0o600)
        if created:
            _fsync_dir(os.path.dirname(os.path.abspath(path)))
        self.errors = 0  # records that could not be written
        self._seq, self._prev = self._resync()
        self._stale = False

    def _resync(self) -> tuple[int, str]:
        """(last seq, hash of the last line) from the file.  A last line cut
        short (a crash mid-write) is ended with a newline and left in place:
        ``verify`` reports it; the chain goes on after it."""
        lines, complete = _read_tail(self.path)
        if not lines:
            return 0, GENESIS
        last = lines[-1]
        if not complete:
            log.error("audit.damaged_tail", path=self.path, bytes=len(last))
            self._write(b"\n")
            last += b"\n"
        for back, line in enumerate(reversed(lines)):
            rec = _parse(line)
            if rec is not None:
                return rec["seq"] + back, _hash(last)
        return 0, _hash(last)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    @property
    def last_hash(self) -> str:
        with self._lock:
            return self._prev

    @property
    def healthy(self) -> bool:
        """False after a failed write, until a write succeeds again."""
        return not self._stale

    def record(self, *, decision: str, status: str, identity: str = "", peer: str = "",
               method: str = "", request_id: str = "", args: dict | None = None,
               duration_ms: float = 0.0, message: str = "") -> dict:
        """Append one record (fsync'ed) and log it as an ``audit`` event;
        returns the record.  A write error is logged and counted in
        ``errors``, never raised: auditing does not fail the call."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}")
        rec: dict[str, Any] = {"time": "", "seq": 0, "identity": identity, "peer": peer,
                               "method": method, "request_id": request_id,
                               "args": redact(args or {}), "decision": decision,
                               "status": status, "duration_ms": duration_ms,
                               "message": message, "prev": ""}
        with self._lock:
            try:
                if self._stale:  # a failed write may have left part of a line
                    self._seq, self._prev = self._resync()
                    self._stale = False
                rec.update(time=rfc3339(self._clock()), seq=self._seq + 1, prev=self._prev)
                line = (json.dumps(rec, ensure_ascii=True, separators=(",", ":"), default=str)
                        + "\n").encode()
                self._write(line)
            except OSError as exc:
                self.errors += 1
                self._stale = True
                log.error("audit.write_failed", path=self.path, error=str(exc), method=method,
                          identity=identity)
                return rec
            self._seq, self._prev = rec["seq"], _hash(line)
        fields = {k: v for k, v in rec.items() if k != "prev"}
        fields["args"] = json.dumps(rec["args"], ensure_ascii=True, separators=(",", ":"),
                                    default=str)
        log.info("audit", **fields)
        return rec

    def verify(self) -> VerifyResult:
        """``verify`` of this file, the last line checked against memory."""
        with self._lock:
            return verify(self.path, self._prev)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
