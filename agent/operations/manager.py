"""Runs long-running operations: idempotent by (kind, request_id), one at a
time per resource, journaled at every transition, cancellable, and
recovered after a restart.

A kind is registered by name (``OperationKind``): what resource an
operation acts on, and the function that does the work.  ``start`` answers at
once with a PENDING operation; a worker thread runs it.  The journal's
unique index and one lock make ``start`` exactly-once: the same request_id
and arguments give back the stored operation (also after a restart), the
same request_id with other arguments is an error.
"""
from __future__ import annotations

import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from agent.errors import (Aborted, AgentError, InvalidArgument, NotFound, Unavailable, quote,
                          status_of)
from agent.gen.hostagent.v1 import options_pb2
from agent.logs import get_logger
from agent.operations.journal import DuplicateRequest, Journal
from agent.operations.model import (CODE_CANCELLED, CODE_INTERNAL, Operation, OperationState,
                                    args_hash, canonical_json)

log = get_logger(__name__)

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CONFLICT_POLICIES = ("reject", "queue")
_QUEUED = "waiting for {} to finish"


class Conflict(Aborted):
    """The resource already has an unfinished operation and this kind does
    not queue.  Maps to ABORTED: retry once that operation is done."""


class OperationCancelled(AgentError):
    """Raised by a kind's ``run`` when it stops because of ``ctx.cancelled``;
    the operation ends CANCELLED."""


def check_request_id(value: str, field: str = "request_id") -> str:
    if not REQUEST_ID_RE.fullmatch(value):
        raise InvalidArgument(field, "must be 1 to 128 characters of [A-Za-z0-9._:-]")
    return value


def grpc_status(exc: Exception) -> tuple[int, str]:
    """An exception as (gRPC status code number, message): the API's mapping."""
    code, message = status_of(exc)
    return code.value[0], message


@dataclass(frozen=True)
class OperationKind:
    """A registered kind.  ``run(ctx, args)`` does the work and returns a
    JSON-able dict (the result) or None; it may raise any exception (the
    operation FAILS with its status) or ``OperationCancelled``.
    ``resource(args)`` names what it acts on ("" for nothing: never waits).
    A ``resumable`` kind is run again after a restart (``ctx.resumed``), and
    its arguments are kept in the journal for that; others fail ABORTED."""

    name: str
    run: Callable[["OperationContext", dict], Mapping[str, Any] | None]
    resource: Callable[[Mapping[str, Any]], str]
    required_role: int = options_pb2.ROLE_OPERATOR
    resumable: bool = False
    conflict: str = "reject"  # or "queue": wait PENDING until the resource is free

    def __post_init__(self) -> None:
        if self.conflict not in CONFLICT_POLICIES:
            raise ValueError(f"{self.name}: conflict must be one of {CONFLICT_POLICIES}")


class OperationContext:
    """What a running operation sees of the manager."""

    def __init__(self, journal: Journal, op: Operation, resumed: bool) -> None:
        self._journal = journal
        self.name, self.kind, self.identity = op.name, op.kind, op.identity
        self.resumed = resumed
        self.cancelled = threading.Event()

    def progress(self, percent: float, message: str = "") -> None:
        self._journal.update(self.name, progress_percent=max(0, min(100, int(percent))),
                             message=message)

    def check_cancelled(self) -> None:
        """Raise ``OperationCancelled`` if a cancel was requested."""
        if self.cancelled.is_set():
            raise OperationCancelled("operation cancelled")


class OperationManager:
    def __init__(self, journal: Journal, kinds: Mapping[str, OperationKind], max_workers: int = 4,
                 retention: float = 7 * 86400.0, clock: Callable[[], float] = time.time,
                 error_status: Callable[[Exception], tuple[int, str]] = grpc_status) -> None:
        self._journal = journal
        self._kinds = dict(kinds)
        self.retention = retention
        self._clock = clock
        self._error_status = error_status
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified when an op finishes
        self._resources: dict[str, list[str]] = {}  # resource -> unfinished ops, running first
        self._args: dict[str, dict] = {}  # unfinished ops' arguments
        self._contexts: dict[str, OperationContext] = {}  # running ops
        self._resumed: set[str] = set()
        self._used = self._closed = False
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, name=f"operation-{i}", daemon=True)
                         for i in range(max_workers)]
        for t in self._workers:
            t.start()

    # -- starting --------------------------------------------------------
    def start(self, kind: str, request_id: str, args: Mapping[str, Any], identity: str) -> Operation:
        check_request_id(request_id)
        k = self._kinds.get(kind)
        if k is None:
            raise InvalidArgument("kind", f"unknown operation kind {kind!r}")
        digest = args_hash(args)
        plain = json.loads(canonical_json(args))  # what run() gets, fresh or resumed
        resource = k.resource(plain)
        with self._lock:
            if self._closed:
                raise Unavailable("agent is shutting down")
            self._used = True
            existing = self._journal.find(kind, request_id)
            if existing is None:
                busy = self._resources.get(resource) if resource else None
                if busy and k.conflict == "reject":
                    raise Conflict(f"{resource} is busy with {busy[0]}; retry when it is done")
                op = Operation(name=f"operations/{uuid.uuid4()}", kind=kind, request_id=request_id,
                               resource=resource, state=OperationState.PENDING, args_hash=digest,
                               identity=identity, args=plain if k.resumable else None,
                               message=_QUEUED.format(busy[-1]) if busy else "",
                               create_time=self._clock())
                try:
                    op = self._journal.insert(op)
                except DuplicateRequest as dup:  # another process with this journal
                    existing = dup.existing
                else:
                    self._args[op.name] = plain
                    self._enqueue(op)
                    log.info("operation.created", name=op.name, kind=kind, resource=resource,
                             request_id=request_id, identity=identity, queued=bool(busy))
                    return op
        if existing.args_hash != digest:
            raise InvalidArgument("request_id", "reused with different arguments")
        return existing

    def recover(self) -> list[Operation]:
        """Call once at start, before ``start``: operations left unfinished by
        the previous process fail ABORTED, or run again if their kind is
        resumable.  Returns the resumed ones."""
        resumable = [name for name, k in self._kinds.items() if k.resumable]
        with self._lock:
            if self._used:
                raise RuntimeError("recover() must run before the first start()")
            self._used = True
            resumed = []
            for op in self._journal.mark_interrupted(resumable):
                op = self._journal.update(op.name, state=OperationState.PENDING,
                                          message="resuming after an agent restart")
                self._resumed.add(op.name)
                self._args[op.name] = dict(op.args or {})
                self._enqueue(op)
                resumed.append(op)
        log.info("operations.recovered", resumed=len(resumed))
        return resumed

    def _enqueue(self, op: Operation) -> None:
        """Lock held: queue ``op`` behind its resource's unfinished ones."""
        waiting = self._resources.setdefault(op.resource, []) if op.resource else []
        waiting.append(op.name)
        if len(waiting) == 1:
            self._queue.put(op.name)

    def _release(self, resource: str, name: str) -> None:
        """Lock held: ``name`` no longer holds or waits for ``resource``."""
        waiting = self._resources.get(resource)
        if not resource or not waiting or name not in waiting:
            return
        was_head = waiting[0] == name
        waiting.remove(name)
        if not waiting:
            del self._resources[resource]
        elif was_head:
            self._queue.put(waiting[0])

    # -- running ---------------------------------------------------------
    def _work(self) -> None:
        while (name := self._queue.get()) is not None:
            try:
                self._run(name)
            except Exception:  # noqa: BLE001 - a worker never dies
                log.exception("operation.worker_failed", name=name)

    def _run(self, name: str) -> None:
        with self._lock:
            op = self._journal.get(name)
            if op is None or op.state is not OperationState.PENDING or self._closed:
                return  # cancelled while it waited (its place was released then)
            kind = self._kinds[op.kind]
            ctx = OperationContext(self._journal, op, resumed=name in self._resumed)
            if op.cancel_requested:
                ctx.cancelled.set()
            op = self._journal.update(name, state=OperationState.RUNNING, message="",
                                      start_time=op.start_time or self._clock())
            self._contexts[name] = ctx
            args = self._args.get(name, {})
        log.info("operation.started", name=name, kind=op.kind, resumed=ctx.resumed)
        outcome: dict[str, Any] = dict(state=OperationState.FAILED, error_code=CODE_INTERNAL,
                                       error_message="the operation stopped unexpectedly")
        try:
            result = kind.run(ctx, args)
            if result is not None:
                result = json.loads(canonical_json(dict(result)))
            outcome = dict(state=OperationState.SUCCEEDED, result=result, progress_percent=100)
        except OperationCancelled as exc:
            outcome = dict(state=OperationState.CANCELLED, error_code=CODE_CANCELLED,
                           error_message=str(exc) or "operation cancelled")
        except Exception as exc:  # noqa: BLE001 - any failure is the operation's
            code, message = self._error_status(exc)
            outcome = dict(state=OperationState.FAILED, error_code=code, error_message=message)
        finally:
            self._finish(op, outcome)

    def _finish(self, op: Operation, outcome: dict[str, Any]) -> None:
        with self._lock:
            self._contexts.pop(op.name, None)
            self._args.pop(op.name, None)
            self._resumed.discard(op.name)
            try:
                self._journal.update(op.name, end_time=self._clock(), **outcome)
            finally:
                self._release(op.resource, op.name)
                self._changed.notify_all()
        log.info("operation.finished", name=op.name, kind=op.kind, state=outcome["state"].name,
                 error=outcome.get("error_message", ""))

    # -- queries and control -------------------------------------------
    def get(self, name: str) -> Operation:
        op = self._journal.get(name)
        if op is None:
            raise NotFound(f"operation {quote(name)} not found")
        return op

    def list(self, kind: str | None = None, state: OperationState | None = None,
             limit: int = 100, after: int = 0) -> list[Operation]:
        return self._journal.list(kind=kind, state=state, limit=limit, after=after)

    def wait(self, name: str, timeout: float, abandon: threading.Event | None = None) -> Operation:
        """The operation once it is done, or as it is when ``timeout`` passes,
        ``abandon`` is set (checked every second) or the manager closes."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while True:
                op = self.get(name)
                left = deadline - time.monotonic()
                if op.done or left <= 0 or self._closed or (abandon and abandon.is_set()):
                    return op
                self._changed.wait(min(left, 1.0) if abandon else left)

    def cancel(self, name: str) -> Operation:
        """PENDING: cancelled now.  RUNNING: ``ctx.cancelled`` is set and the
        kind decides.  Finished: returned unchanged."""
        with self._lock:
            op = self.get(name)
            if op.state is OperationState.PENDING:
                op = self._journal.update(name, state=OperationState.CANCELLED,
                                          cancel_requested=True, end_time=self._clock(),
                                          error_code=CODE_CANCELLED,
                                          error_message="cancelled before it started")
                self._args.pop(name, None)
                self._release(op.resource, name)
                self._changed.notify_all()
            elif op.state is OperationState.RUNNING:
                ctx = self._contexts.get(name)
                if ctx is not None:
                    ctx.cancelled.set()
                op = self._journal.update(name, cancel_requested=True)
            else:
                return op
        log.info("operation.cancel", name=name, kind=op.kind, state=op.state.name)
        return op

    def purge(self) -> int:
        """Forget finished operations older than the retention (their
        request_ids with them); returns how many."""
        count = self._journal.purge(self._clock() - self.retention)
        if count:
            log.info("operations.purged", count=count)
        return count

    def close(self, timeout: float = 2.0) -> None:
        """Stop taking and starting operations; wait up to ``timeout`` for the
        running ones.  Any still running are marked ABORTED (or resumed) at
        the next start; the workers are daemon threads."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
