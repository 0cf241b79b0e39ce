"""The audit trail: every mutating call and every denial, one JSON line each
in ``<state_dir>/audit.jsonl``, hash-chained so that an edit, a deletion or a
reordering is evident (``agent.audit_verify`` checks it).

Each line is a JSON object (ASCII, no spaces) ending in ``\\n``::

    {"time":"2026-11-24T14:00:00.123Z","seq":7,"identity":"unix:uid:0","peer":"...",
     "method":"/hostagent.v1.Operations/CancelOperation","request_id":"r-1",
     "args":{...},"decision":"allow","status":"OK","duration_ms":1.2,
     "message":"","prev":"<sha256 hex of line 6's bytes, newline included>"}

``seq`` counts from 1 and ``prev`` of line 1 is 64 zeros.  The last line is
covered by no successor: the writer keeps its hash in memory (recomputed from
the file on reopen), and ``verify(path, last_hash)`` checks it.  Arguments
are written with secrets masked (``redact``).  The file is 0600, opened
``O_APPEND``, and each record is fsync'ed before ``record`` returns.

A caller must not be able to fill the disk through this file (issue 9):

- a record is bounded (``agent.audit_bounds``): long values are cut and
  marked (``truncated``, ``args_sha256``), a line stays under 4 KiB;
- denials are rate-limited per caller; a written denial carries
  ``suppressed``: how many of that caller's were dropped since its last
  record, and an ``{"event":"suppressed"}`` record (at most once a minute,
  and at close) counts the rest.  Allowed calls are always written;
- denials are not written while less than ``deny_floor_bytes`` is free on
  the filesystem (counted as suppressed instead, ``healthy`` unaffected), so
  refused callers cannot bring the trail to a full disk;
- ``<file>.reserve`` holds ``reserve_bytes`` preallocated: when the disk is
  full anyway, it is given up so that allowed calls are still recorded;
- a write that fails part-way is cut back to the last whole line.  When a
  record cannot be written ``healthy`` is false (mutating calls are refused)
  until there is room again; it then recovers by itself;
- a line cut by a crash is found at start and *sealed* (see
  ``agent.audit_verify``), so the chain goes on after it.
"""
from __future__ import annotations

import errno
import json
import os
import threading
import time
from typing import Any, Callable

from agent.audit_bounds import DenialLimiter, build_record, denial_key, encode, redact
from agent.audit_verify import GENESIS, SEAL, BadRegion, VerifyResult, last_record, line_hash, verify
from agent.logs import get_logger

__all__ = ["AuditLog", "BadRegion", "GENESIS", "VerifyResult", "redact", "rfc3339", "verify"]

log = get_logger(__name__)

DECISIONS = ("allow", "deny")
RESERVE_BYTES = 1 << 20
DENY_FLOOR_BYTES = 8 << 20
_MARGIN = 64 << 10  # room for records beyond the reserve before calling the disk usable again
_FULL = (errno.ENOSPC, errno.EDQUOT)
_PROBE_S = 1.0  # while the trail cannot be written, how often `healthy` tries again


def rfc3339(t: float) -> str:
    """UTC with milliseconds: ``2026-11-24T14:00:00.123Z``."""
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class AuditLog:
    """Appends records to the chain; thread-safe."""

    _os_write = staticmethod(os.write)  # tests put a failing one here

    def __init__(self, path: str, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 reserve_bytes: int = RESERVE_BYTES, deny_floor_bytes: int = DENY_FLOOR_BYTES,
                 limiter_keys: int = 1024, summary_interval: float = 60.0) -> None:
        self.path = path
        self.reserve_path = path + ".reserve"
        self._clock = clock
        self._monotonic = monotonic
        self._reserve_bytes = reserve_bytes
        self._deny_floor = deny_floor_bytes
        self._limiter = DenialLimiter(max_keys=limiter_keys, clock=monotonic)
        self._summary_interval = summary_interval
        self._last_summary = monotonic()
        self._lock = threading.Lock()
        self.errors = 0  # records that could not be written
        self._seq, self._prev = 0, GENESIS
        self._stale = False  # a write failed: nothing is written until a probe succeeds
        self._lost = 0  # records not written since the last one that was
        self._last_probe = float("-inf")
        self._reserve_held = False
        self._low_disk = False
        created = not os.path.exists(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(self._fd, 0o600)
        if created:
            _fsync_dir(os.path.dirname(os.path.abspath(path)))
        with self._lock:
            self._ensure_reserve()
            try:
                self._seq, self._prev = self._resync()
            except OSError as exc:  # e.g. no room for the seal: retried when there is
                self._stale = True
                log.error("audit.write_failed", path=self.path, error=str(exc), during="open")

    # -- the file ----------------------------------------------------------
    def _free(self) -> int:
        st = os.fstatvfs(self._fd)
        return st.f_bavail * st.f_frsize

    def _resync(self) -> tuple[int, str]:
        """(last seq, hash of the last line) from the file.  A damaged tail
        (a crash mid-write) is kept as evidence, ended with a newline, and
        sealed: a record that links to the last whole one and says how many
        bytes lie between."""
        seq, digest, end, size, ends_nl = last_record(self.path)
        if end == size:
            return seq, digest
        log.error("audit.damaged_tail", path=self.path, bytes=size - end, after_seq=seq)
        if not ends_nl:
            self._append(b"\n", essential=True)
            size += 1
        seal = {"time": rfc3339(self._clock()), "seq": seq + 1, "event": SEAL,
                "damaged_bytes": size - end, "prev": digest}
        line = encode(seal)
        self._append(line, essential=True)
        return seq + 1, line_hash(line)

    def _write_whole(self, data: bytes) -> None:
        """All of ``data`` and fsync, or the file cut back to where it was:
        a full disk must not leave half a line to break the chain."""
        start = os.fstat(self._fd).st_size  # we hold the lock: nobody else appends
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += self._os_write(self._fd, view[done:])
            os.fsync(self._fd)
        except OSError:
            try:
                written = os.fstat(self._fd).st_size - start
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
                if written:
                    log.error("audit.rolled_back", path=self.path, bytes=written)
            except OSError as exc:  # the next write re-reads the file and seals the damage
                log.error("audit.rollback_failed", path=self.path, error=str(exc))
            raise

    def _append(self, line: bytes, essential: bool) -> bool:
        """Write one line.  Essential lines (allowed calls, seals) may use
        the reserve; others are skipped (False) below the free-space floor.
        Raises OSError when the line could not be written (nothing was)."""
        if self._fd < 0:
            raise OSError(errno.EBADF, "the audit log is closed")
        if not essential:
            free = self._free()
            if free - len(line) < self._deny_floor:
                if not self._low_disk:
                    self._low_disk = True
                    log.warning("audit.low_disk", path=self.path, free_bytes=free,
                                floor_bytes=self._deny_floor,
                                action="denials are counted, not written, until space is back")
                return False
            if self._low_disk:
                self._low_disk = False
                log.info("audit.disk_ok", path=self.path, free_bytes=free)
        try:
            self._write_whole(line)
        except OSError as exc:
            if not (essential and exc.errno in _FULL and self._release_reserve()):
                raise
            self._write_whole(line)
        if not self._reserve_held:
            self._ensure_reserve()
        return True

    def _ensure_reserve(self) -> None:
        """Hold ``reserve_bytes`` allocated in ``<file>.reserve`` when there is room."""
        if self._reserve_held or self._reserve_bytes <= 0:
            return
        try:
            st = os.stat(self.reserve_path)
            if st.st_size >= self._reserve_bytes and st.st_blocks * 512 >= self._reserve_bytes:
                self._reserve_held = True  # left by the last run
                return
        except FileNotFoundError:
            pass
        try:
            if self._free() < self._reserve_bytes + _MARGIN:
                return  # taking the last free space would only hurt whoever needs it now
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self._reserve_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("audit.reserve_unavailable", path=self.reserve_path, error=str(exc))
            try:
                os.unlink(self.reserve_path)
            except OSError:
                pass
            return
        self._reserve_held = True

    def _release_reserve(self) -> bool:
        if not self._reserve_held:
            return False
        try:
            os.unlink(self.reserve_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("audit.reserve_release_failed", path=self.reserve_path, error=str(exc))
            return False
        self._reserve_held = False
        log.error("audit.reserve_released", path=self.reserve_path, bytes=self._reserve_bytes,
                  reason="the disk is full: records now go into the space held in reserve")
        return True

    def _fail(self, error: str, **fields: Any) -> None:
        """A record could not be written."""
        self.errors += 1
        self._lost += 1
        self._stale = True
        log.error("audit.write_failed", path=self.path, error=error, **fields)

    def _recover(self, force: bool = False) -> bool:
        """Try (at most once per _PROBE_S unless ``force``) to write again:
        with the reserve back in hand (so there is room, not just a few
        bytes), re-read the file (sealing any damage) and write a
        ``{"event":"resumed","lost":N}`` record, which tells an auditor
        that N records are missing before it."""
        now = self._monotonic()
        if self._fd < 0 or (not force and now - self._last_probe < _PROBE_S):
            return False
        self._last_probe = now
        try:
            self._ensure_reserve()
            if self._reserve_bytes > 0 and not self._reserve_held:
                return False
            seq, prev = self._resync()
            marker = {"time": rfc3339(self._clock()), "seq": seq + 1, "event": "resumed",
                      "lost": self._lost, "prev": prev}
            line = encode(marker)
            self._append(line, essential=True)
        except OSError:
            return False  # still failing; the failure was logged when it happened
        self._seq, self._prev = marker["seq"], line_hash(line)
        log.info("audit.recovered", path=self.path, lost=self._lost)
        self._stale, self._lost = False, 0
        return True

    # -- records -----------------------------------------------------------
    @property
    def last_hash(self) -> str:
        with self._lock:
            return self._prev

    @property
    def healthy(self) -> bool:
        """False while records cannot be written (after a failed write),
        until there is room again."""
        if not self._stale:
            return True
        with self._lock:
            return not self._stale or self._recover()

    @property
    def suppressed_total(self) -> int:
        """Denials not written (rate limit or low disk) since start."""
        return self._limiter.suppressed_total

    def record(self, *, decision: str, status: str, identity: str = "", peer: str = "",
               method: str = "", request_id: str = "", args: dict | None = None,
               duration_ms: float = 0.0, message: str = "") -> dict | None:
        """Append one record (fsync'ed) and log it as an ``audit`` event;
        returns the record, or None for a denial that was only counted.  A
        write error is logged and counted in ``errors``, never raised:
        auditing does not fail the call."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}")
        key, pending = "", 0
        if decision == "deny":
            key = denial_key(identity, peer)
            taken = self._limiter.take(key)
            if taken is None:
                return None
            pending = taken
        rec = build_record({"identity": identity, "peer": peer, "method": method,
                            "request_id": request_id, "decision": decision, "status": status,
                            "duration_ms": duration_ms, "message": message}, args, pending)
        with self._lock:
            if self._stale and (key or not self._recover(force=True)):
                # Denials are counted, not written, until the trail is back.
                if key:
                    self._limiter.give_back(key, pending, suppress=True)
                    return None
                self._fail("the audit trail is still not writable", method=rec["method"],
                           identity=rec["identity"])
                return rec
            try:
                rec.update(time=rfc3339(self._clock()), seq=self._seq + 1, prev=self._prev)
                line = encode(rec)
                written = self._append(line, essential=decision == "allow")
            except OSError as exc:
                self._fail(str(exc), method=rec["method"], identity=rec["identity"])
                if key:
                    self._limiter.give_back(key, pending, suppress=False)
                return rec
            if not written:
                self._limiter.give_back(key, pending, suppress=True)
                return None
            self._seq, self._prev = rec["seq"], line_hash(line)
            self._summarize()
        fields = {k: v for k, v in rec.items() if k != "prev"}
        fields["args"] = json.dumps(rec["args"], ensure_ascii=True, separators=(",", ":"),
                                    default=str)
        log.info("audit", **fields)
        return rec

    def _summarize(self, force: bool = False) -> None:
        """One record with the suppressed denials not yet counted in any,
        at most once per ``summary_interval`` (and at close)."""
        now = self._monotonic()
        if self._stale or (not force and now - self._last_summary < self._summary_interval):
            return
        self._last_summary = now
        if not self._limiter.pending():
            return
        total, by_key = self._limiter.drain()
        rec = {"time": rfc3339(self._clock()), "seq": self._seq + 1, "event": "suppressed",
               "denials": total, "keys": by_key, "prev": self._prev}
        line = encode(rec)
        try:
            written = self._append(line, essential=False)
        except OSError as exc:
            self._stale = True
            log.error("audit.write_failed", path=self.path, error=str(exc), during="summary")
            written = False
        # Logged either way: at shutdown a count not written would be lost.
        log.warning("audit.denials_suppressed", denials=total, keys=len(by_key),
                    total=self._limiter.suppressed_total, recorded=written)
        if not written:
            self._limiter.restore(total, by_key)
            return
        self._seq, self._prev = rec["seq"], line_hash(line)

    def verify(self) -> VerifyResult:
        """``verify`` of this file, the last line checked against memory."""
        with self._lock:
            return verify(self.path, self._prev)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._summarize(force=True)
                os.close(self._fd)
                self._fd = -1


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
