"""Blocking calls under one deadline, for system calls that can hang for
good: ``statfs`` on a mount whose NFS server is gone, or whose FUSE daemon is
wedged (node_exporter's best-known failure: one such mount stalls every
scrape).

:meth:`ProbePool.run` calls ``fn(key)`` for each key on a few worker threads
and returns by its deadline, whatever the calls do:

- At most one call per key is ever in flight.  A key whose earlier call has
  not returned is answered ``STUCK`` at once; no new thread is started for it,
  however many runs come and go.
- A worker busy longer than ``stall`` while other keys wait is written off
  and replaced, so one hung call does not hold up the rest.  Threads never
  exceed ``max_threads``: past that, waiting keys are answered ``TIMEOUT``.
- Calls not started by the deadline are withdrawn (``TIMEOUT``): nothing
  queues up behind a hung call from one run to the next.
- When a hung call returns at last, its key is free and the next run calls it
  anew; the late answer is dropped (it may be minutes old).  Its thread goes
  back to work if the pool is short of one, else it ends.
"""
from __future__ import annotations

import enum
import threading
import time
from collections import deque
from typing import Any, Callable, Generic, Hashable, Iterable, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)


class Status(enum.Enum):
    OK = "ok"
    ERROR = "error"  # the call raised (``Outcome.error``)
    TIMEOUT = "timeout"  # no answer by this run's deadline
    STUCK = "stuck"  # the call from an earlier run has still not returned: not called again


class Outcome(NamedTuple):
    status: Status
    value: Any = None
    error: BaseException | None = None


class _Worker:
    __slots__ = ("since", "written_off")

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic start of the call it is in, None when idle
        self.written_off = False  # replaced because its call overran; not counted as staff


class ProbePool(Generic[K]):
    def __init__(self, fn: Callable[[K], Any], workers: int = 4, max_threads: int = 32,
                 stall: float = 0.25, name: str = "probe") -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._fn = fn
        self._size = workers
        self._max = max(max_threads, workers)
        self._stall = stall
        self._name = name
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._running: dict[K, _Worker] = {}
        self._workers: list[_Worker] = []
        self._wanted: set[K] = set()  # keys the run in progress called
        self._results: dict[K, Outcome] = {}
        self._remaining = 0  # keys of the run in progress still without an answer
        self._closed = False

    # -- what tests and metrics look at ------------------------------------
    def threads(self) -> int:
        """Worker threads alive, idle, busy and written off together."""
        with self._cond:
            return len(self._workers)

    def in_flight(self) -> set[K]:
        """Keys whose call has not returned."""
        with self._cond:
            return set(self._running)

    # -- the one operation -------------------------------------------------
    def run(self, keys: Iterable[K], timeout: float) -> dict[K, Outcome]:
        """An outcome for every key (in the order given), within ``timeout``
        seconds.  Not reentrant: one run at a time (the scheduler's rule for
        a collector anyway)."""
        order = list(dict.fromkeys(keys))
        out: dict[K, Outcome] = {}
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self._name} pool is closed")
            wanted = []
            for key in order:
                if key in self._running:
                    out[key] = Outcome(Status.STUCK)
                else:
                    self._queue.append(key)
                    wanted.append(key)
            self._wanted, self._results, self._remaining = set(wanted), {}, len(wanted)
            deadline = time.monotonic() + timeout
            try:
                self._staff()
                self._cond.notify_all()
                while self._remaining > 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(min(left, self._stall))
                    self._staff()
            finally:
                self._queue.clear()  # withdraw what did not start: only this run's keys are queued
                overran = [w for w in self._running.values() if not w.written_off]
                for worker in overran:
                    worker.written_off = True  # still in a call past the deadline
                if overran:
                    self._staff(restore=True)  # replace them now, not in the next run
                results, self._results, self._wanted = self._results, {}, set()
            for key in wanted:
                out[key] = results.get(key, Outcome(Status.TIMEOUT))
        return {key: out[key] for key in order}

    def close(self) -> None:
        """Idle workers end now; one in a hung call ends when it returns."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    # -- internals (called with the lock held) -------------------------------
    def _staff(self, restore: bool = False) -> None:
        """Write off workers whose call overran while keys wait; start
        workers (for the keys waiting, or all of them with ``restore``) until
        ``workers`` are on staff or ``max_threads`` are alive."""
        if not self._queue and not restore:
            return
        now = time.monotonic()
        for worker in self._workers:
            if worker.since is not None and not worker.written_off and now - worker.since > self._stall:
                worker.written_off = True
        staff = [w for w in self._workers if not w.written_off]
        idle = sum(1 for w in staff if w.since is None)
        while (len(staff) < self._size and len(self._workers) < self._max
               and (restore or len(self._queue) > idle)):
            worker = _Worker()
            self._workers.append(worker)
            staff.append(worker)
            idle += 1
            threading.Thread(target=self._work, args=(worker,), daemon=True,
                             name=f"{self._name}-{len(self._workers)}").start()

    def _work(self, worker: _Worker) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self._workers.remove(worker)
                    return
                key = self._queue.popleft()
                self._running[key] = worker
                worker.since = time.monotonic()
            try:
                outcome = Outcome(Status.OK, self._fn(key))
            except BaseException as exc:  # noqa: BLE001 - the caller gets it as an outcome
                outcome = Outcome(Status.ERROR, error=exc)
            with self._cond:
                del self._running[key]
                worker.since = None
                if key in self._wanted and key not in self._results:
                    self._results[key] = outcome
                    self._remaining -= 1
                self._cond.notify_all()
                if worker.written_off:
                    staff = sum(1 for w in self._workers if not w.written_off)
                    if self._closed or staff >= self._size:
                        self._workers.remove(worker)
                        return
                    worker.written_off = False  # the pool is short of one: back to work
