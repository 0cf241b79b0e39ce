"""At start, make the journal and the audit trail agree after a kill -9.

A mutating call journals its operation inside the servicer
(``OperationManager.start``); the interceptor writes the call's audit record
after the servicer returns (``agent/api/auth.py``).  A kill between the two
leaves an operation in the journal that the audit trail never heard of.  So,
at the next start, after ``OperationManager.recover``:

* every operation the previous process left PENDING or RUNNING (now failed
  ABORTED, or resumed) gets an ``operation.recovered`` log line and an audit
  record saying what became of it: a restart that aborts or re-runs a change
  is worth recording whether or not the call's record made it;
* an operation that finished inside that gap (a fast one) is found by its
  request_id missing from the audit records written at the end of the
  previous process, and gets a record too.

Records written here are ``decision: "allow"`` under the caller's identity and
request_id, with ``message: "recovered at start: ..."``.
"""
from __future__ import annotations

import calendar
import json
import os
import time

from agent.audit import AuditLog
from agent.logs import get_logger
from agent.operations.journal import Journal
from agent.operations.model import CODE_ABORTED, Operation, OperationState

log = get_logger(__name__)

# A mutating servicer returns at once, so a call's record follows its journal
# row by far less than this; records are read back twice as far (clock slack).
WINDOW_S = 10.0
_BLOCK = 65536
PREFIX = "recovered at start: "


def unfinished(journal: Journal) -> list[Operation]:
    """The operations to reconcile: take this before ``recover()`` changes them."""
    return journal.unfinished()


def _epoch(stamp) -> float | None:
    """``2026-11-24T14:00:00.123Z`` (audit.rfc3339) -> Unix seconds."""
    try:
        whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        return whole + int(stamp[20:23]) / 1000.0
    except (TypeError, ValueError):
        return None


def _recent_request_ids(path: str) -> tuple[set[str], float | None]:
    """request_ids of the allowed calls recorded near the end of the audit
    file, and the time from which that set is complete (None: the whole file
    was read).  Reads backwards, a block at a time, never the whole file."""
    ids: set[str] = set()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return ids, None
    with f:
        pos, head, last = f.seek(0, os.SEEK_END), b"", None
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            lines = (f.read(step) + head).split(b"\n")
            head = lines.pop(0) if pos > 0 else b""  # may be cut: completed by the next block
            for line in reversed(lines):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                t = _epoch(rec.get("time")) if isinstance(rec, dict) else None
                if t is None:
                    continue
                last = t if last is None else last
                if t < last - 2 * WINDOW_S:
                    return ids, last - WINDOW_S
                if rec.get("decision") == "allow" and isinstance(rec.get("request_id"), str):
                    ids.add(rec["request_id"])
    return ids, None


def _record(audit: AuditLog | None, op: Operation, status: str, message: str) -> None:
    log.warning("operation.recovered", name=op.name, kind=op.kind, request_id=op.request_id,
                identity=op.identity, state=op.state.name, message=message)
    if audit is not None:
        audit.record(decision="allow", status=status, identity=op.identity,
                     request_id=op.request_id, message=PREFIX + message,
                     args={"operation": op.name, "kind": op.kind, "resource": op.resource})


def reconcile(before: list[Operation], journal: Journal, audit: AuditLog | None) -> int:
    """``before`` is ``unfinished(journal)`` from before ``recover()``.
    Returns how many operations were reported."""
    reported: set[str] = set()
    for old in before:
        op = journal.get(old.name)
        if op is None:
            continue
        reported.add(op.name)
        if op.state is OperationState.FAILED and op.error_code == CODE_ABORTED:
            _record(audit, op, "ABORTED", op.error_message)
        else:  # resumed: it runs again
            _record(audit, op, "OK", op.message or "resumed after an agent restart")
    if audit is None:
        return len(reported)
    audited, since = _recent_request_ids(audit.path)
    for op in journal.created_since(since if since is not None else 0.0):
        if op.name in reported or op.request_id in audited:
            continue
        reported.add(op.name)
        _record(audit, op, "OK", f"journaled, but its call was not audited before the agent "
                                 f"stopped; state {op.state.name}")
    return len(reported)
