"""Runs every collector at its interval, each isolated from the others.

Each collector gets its own worker thread, so a collector that blocks (a hung
NFS read, a dead BMC, a GPU fallen off the bus) holds only its own thread.  A
single scheduler thread decides when each one is due and notices when a run
overruns its timeout: the collector is then reported down
(``hostagent_collector_up 0``), its series go stale (hidden from the API and
``/metrics``), an event and a log line say why, and no new run starts until
the stuck one returns (its late result is discarded).  Failures back off
exponentially up to ``max_backoff``.

A scrape of ``/metrics`` asks for fresh values (:meth:`Scheduler.refresh`):
collectors declared ``on_scrape`` whose last run began more than ``max_age``
ago run now, on their own worker, and the scrape waits for them (bounded by
its budget and each run's timeout).  Concurrent scrapes share one run; a
collector never runs twice at once.  A run asked for by a scrape before the
collector is due is *light*: its values are served but it writes no history
and moves no rate (``SeriesStore.ingest(full=False)``), so history keeps the
configured interval however often Prometheus scrapes.  One asked for when the
collector is due (within ``max_age``) takes the scheduled run's place.

History on demand: a collector declared ``background=False`` keeps its
schedule only while someone wants its history (:meth:`Scheduler.want`: an
API read in the last ``hold`` seconds, or an open stream).  Otherwise only
scrapes run it: an ``on_scrape`` one when its values are older than
``max_age``, any other when it is due by its interval.  An idle agent that
nobody scrapes therefore collects nothing and wakes for nothing.  Nor does
the store keep such a collector's history (:meth:`SeriesStore.set_history`)
unless a read asks for a window over its families
(:meth:`Scheduler.want_history`): only its latest values, which are all a
scrape and a read without a window need.  The loop frees it again once
nobody has asked for ``hold`` seconds and no stream is open.

The loop sleeps until the next thing it must do (a run due, a run's
timeout); whoever changes that (a scrape starting a run, a run ending with
an earlier due time, ``want``) wakes it.  The systemd watchdog asks
:meth:`Scheduler.lag` whether the loop woke when it meant to: if it stops,
the pings stop and systemd restarts the agent.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

from agent.logs import get_logger
from agent.telemetry.collector import NoData
from agent.telemetry.events import EventBus, Severity
from agent.telemetry.model import Batch
from agent.telemetry.runner import CollectorSpec, CollectorStatus, Runner
from agent.telemetry.store import SeriesStore

__all__ = ["CollectorSpec", "CollectorStatus", "Scheduler"]

log = get_logger(__name__)
TICK = 0.25  # how often the loop looks while a reload's replaced runner is still running
ABSENT_RECHECK = 60.0  # seconds between looks for hardware a collector found absent
HISTORY_RECHECK = 10.0  # while a stream is open, how often kept history's expiry is looked at
REFRESH_STEP = 0.05  # a scrape starts the next run after this, if the last one has not ended


class Scheduler:
    def __init__(self, store: SeriesStore, events: EventBus, max_backoff: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 demand: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.events = events
        self.max_backoff = max_backoff
        self._clock = clock
        self._demand = demand  # true while history is wanted regardless of want() (open streams)
        self._wanted_until = -math.inf  # want(): history wanted until then (scheduler clock)
        # background=False collectors whose history is kept: until when (scheduler clock)
        self._history_until: dict[str, float] = {}
        self._wake_at = math.inf  # when the loop means to wake next (scheduler clock)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # the loop sleeps on it
        self._done = threading.Condition(self._lock)  # scrapes waiting for runs sleep on it
        self._runners: dict[str, Runner] = {}
        self._stop = False
        self._thread: threading.Thread | None = None
        self.heartbeat = clock()

    # -- configuration ---------------------------------------------------
    def set_collectors(self, specs: list[CollectorSpec]) -> None:
        """Install the collector set; also used on reload.  A collector whose
        spec is unchanged keeps its runner, state and history."""
        with self._cond:
            wanted = {s.name: s for s in specs}
            retired: dict[str, Runner] = {}
            for name in list(self._runners):
                runner = self._runners[name]
                if wanted.get(name) != runner.spec:
                    runner.retire()
                    retired[name] = runner
                    del self._runners[name]
                    if name not in wanted:
                        self.store.drop(name, forget=True)
            for name, spec in wanted.items():
                if name not in self._runners:
                    self.store.set_history(name, spec.background or name in self._history_until)
                    self.store.configure(name, spec.interval)
                    runner = self._runners[name] = Runner(spec, self)
                    # A run of the replaced runner may still be in flight on
                    # the same collector object: never two runs at once.
                    runner.predecessor = retired.get(name)
            self._cond.notify_all()

    def statuses(self) -> list[CollectorStatus]:
        with self._lock:
            return [CollectorStatus(**vars(r.status)) for _, r in sorted(self._runners.items())]

    def lag(self) -> float:
        """Seconds the loop is late waking up: 0 while it sleeps before its
        next deadline (or without one), infinite once its thread has died or
        when the scheduler's lock stays taken (a run's bookkeeping stuck)."""
        if self._thread is None or not self._thread.is_alive():
            return math.inf
        if not self._lock.acquire(timeout=1.0):
            return math.inf
        try:
            return max(0.0, self._clock() - self._wake_at)
        finally:
            self._lock.release()

    def want(self, hold: float) -> bool:
        """Someone reads history or current values through the API: keep
        every collector's schedule for ``hold`` seconds more.  True when
        the schedule of the ``background=False`` collectors was off (their
        values may be as old as the last scrape: the caller may refresh)."""
        if self._wanted_until - self._clock() > hold - 1.0:
            return False  # extended less than a second ago: no lock for every API call
        with self._cond:
            now = self._clock()
            idle = not self._wanted(now)
            self._wanted_until = max(self._wanted_until, now + hold)
            if idle:
                self._cond.notify_all()  # due runs start now
            return idle

    def want_history(self, collectors, hold: float) -> None:
        """A read asks for a window over these collectors' families: keep
        their history for ``hold`` seconds more (from the latest sample on;
        with ``want``, their schedule fills it at their interval)."""
        with self._cond:
            until = self._clock() + hold
            for name in collectors:
                runner = self._runners.get(name)
                if runner is None or runner.spec.background:
                    continue  # unknown, or a feature's: kept always
                if name not in self._history_until:
                    self.store.set_history(name, True)  # under the lock: no ingest meanwhile
                self._history_until[name] = max(self._history_until.get(name, until), until)
            self._cond.notify_all()  # the loop's next wake-up includes the new expiry

    def _expire_history(self, now: float) -> float:
        """Free the history nobody asked for within its hold (an open stream
        keeps it); return seconds until the next expiry."""
        if self._demand():
            # Looked at again after the streams: the loop wakes for nothing else.
            return math.inf if not self._history_until else HISTORY_RECHECK
        for name, until in list(self._history_until.items()):
            if until <= now:
                del self._history_until[name]
                if name in self._runners:
                    self.store.set_history(name, False)
        return min(self._history_until.values(), default=now + math.inf) - now

    def _wanted(self, now: float) -> bool:
        return now < self._wanted_until or self._demand()

    # -- loop ------------------------------------------------------------
    def start(self) -> None:
        # The workers start here (after SERVING: the daemon calls this last),
        # all before the loop's first pass: started from inside that pass,
        # each Thread.start waited for the GIL held by the first runs already
        # going, with the lock held, and the first scrape waited behind them.
        with self._cond:
            for runner in self._runners.values():
                runner.start_thread()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stop = True
            for runner in self._runners.values():
                runner.retire()
            self._cond.notify_all()
            self._done.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Make the loop read the clock again now.  The loop sleeps until the
        next run is due by its own reckoning; an injected clock that was moved
        forward (tests) would otherwise be noticed only after that sleep."""
        with self._cond:
            self._cond.notify_all()

    def refresh(self, max_age: float, budget: float) -> None:
        """Bring the ``on_scrape`` collectors' values to at most ``max_age``
        seconds old and wait for them, at most ``budget`` seconds (wall
        time).  A run already in flight is waited for, not doubled; a failing
        collector (backing off), one whose hardware is absent (NoData) or one
        replaced by a reload is left to its schedule; a run that overruns its
        timeout stops the wait for it (the loop marks it down and its series
        are hidden).

        The ``inline`` collectors run first, one after another on the
        caller's thread: waking a worker and waiting for it cost more than
        most of their runs (docs/benchmarks.md, "Third pass").  The others
        run each on its own worker: the next starts when the previous ends,
        or after ``REFRESH_STEP`` if it is slow (it then goes on beside the
        others and is waited for at the end), so a scrape never has a dozen
        threads fighting for the GIL."""
        end = time.monotonic() + budget
        with self._cond:
            if self._stop:
                return
            marks: list[tuple[Runner, int]] = []
            runners = [r for r in self._runners.values() if r.spec.on_scrape or not r.spec.background]
            runners.sort(key=lambda r: not r.spec.inline)  # stable: inline ones first
            for runner in runners:
                if self._stop or runner.retired or runner.predecessor is not None:
                    continue
                if runner.started is not None:
                    if not runner.timed_out:
                        marks.append((runner, runner.finished + 1))
                    continue
                now = self._clock()
                status = runner.status
                if runner.spec.on_scrape and status.present and not status.consecutive_failures:
                    if now - runner.last_start <= max_age:
                        continue
                elif runner.spec.background or now < runner.next_due - max_age:
                    # Failing (backing off), absent hardware, or not fresh on
                    # every scrape: its schedule runs it, or (no schedule while
                    # nobody wants history) the first scrape once it is due.
                    continue
                if time.monotonic() >= end:
                    break
                runner.trigger(now, full=now >= runner.next_due - max_age, wake=not runner.spec.inline)
                if now + runner.spec.timeout_of(runner.first) < self._wake_at:
                    self._cond.notify_all()  # the loop watches the run's timeout
                if runner.spec.inline:
                    self._lock.release()  # _finished takes it; the loop may time the run out
                    try:
                        runner.run()
                    finally:
                        self._lock.acquire()
                    continue
                mark = runner.finished + 1
                if not self._wait(((runner, mark),), min(end, time.monotonic() + REFRESH_STEP)):
                    marks.append((runner, mark))
            self._wait(marks, end)

    def _wait(self, marks, until: float) -> bool:
        """Wait (lock held) until every run in ``marks`` has ended, timed
        out or been retired, or until ``until``; True if they all did."""
        while not all(r.finished >= mark or r.timed_out or r.retired for r, mark in marks):
            left = until - time.monotonic()
            if left <= 0:
                return False
            self._done.wait(left)
        return True

    def _loop(self) -> None:
        """Sleep until the next deadline, never on a fixed period: with
        nothing due (an idle agent nobody scrapes) it does not wake at all."""
        with self._cond:
            while not self._stop:
                now = self._clock()
                self.heartbeat = now
                wanted = self._wanted(now)
                wait = self._expire_history(now)
                for runner in self._runners.values():
                    wait = min(wait, self._tend(runner, now, wanted))
                self._wake_at = now + wait
                self._cond.wait(None if wait == math.inf else max(wait, 0.0))

    def _tend(self, runner: Runner, now: float, wanted: bool) -> float:
        """Start or time out one runner; return seconds until it next needs us."""
        spec = runner.spec
        if runner.predecessor is not None:
            if runner.predecessor.started is not None:
                return TICK  # wait for the replaced runner's run to end
            runner.predecessor = None
        if runner.started is not None:
            timeout = spec.timeout_of(runner.first)
            overrun = now - runner.started - timeout
            if overrun < 0:
                return -overrun
            if not runner.timed_out:
                runner.timed_out = True
                runner.status.timeouts_total += 1
                self._failed(runner, f"timed out after {timeout:g}s")
            return math.inf  # its late end wakes us (_finished)
        if not (spec.background or wanted or runner.last_start == -math.inf):
            # Scrapes run it (refresh); want() wakes us.  Every collector still
            # runs once at start: absent hardware is logged then, and sockets
            # and watchers are open before the first scrape.
            return math.inf
        if now >= runner.next_due:
            runner.trigger(now)
            return spec.timeout_of(runner.first)
        return runner.next_due - now

    # -- results (called on the worker thread) ---------------------------
    def _finished(self, runner: Runner, batch: Batch, error: BaseException | None,
                  duration: float) -> None:
        with self._cond:
            if runner.retired:
                runner.started = None  # lets a successor start (see set_collectors)
                self._done.notify_all()
                self._cond.notify_all()
                return
            runner.finished += 1
            status = runner.status
            status.runs_total += 1
            status.last_duration = duration
            late = runner.timed_out
            runner.started = None
            if runner.first and duration > runner.spec.timeout and not late:
                log.info("collector.slow_start", collector=status.name, seconds=round(duration, 3),
                         timeout=runner.spec.timeout)
            if late:
                log.warning("collector.late_result_discarded", collector=status.name,
                            duration=round(duration, 3))
            elif isinstance(error, NoData):
                if status.present:
                    log.info("collector.absent", collector=status.name, reason=str(error))
                    self.events.publish("collector.absent", Severity.INFO, status.name,
                                        f"{status.name}: {error}", collector=status.name)
                status.present = False
                self._succeeded(runner)
                self.store.drop(status.name)  # keeps its interval and retention
            elif error is not None:
                self._failed(runner, f"{type(error).__name__}: {error}")
            else:
                try:
                    self.store.ingest(status.name, batch, full=runner.full)
                except Exception as exc:  # a collector produced an invalid batch
                    self._failed(runner, f"bad batch: {exc}")
                else:
                    if not status.present:
                        log.info("collector.present", collector=status.name)
                    status.present = True
                    self._succeeded(runner)
            runner.next_due = self._next_due(runner)
            # Scrapes waiting for this run are woken last, just before the lock
            # is released: woken earlier, each would wait for the lock again.
            self._done.notify_all()
            # Wake the loop only when it would otherwise sleep past the next
            # due time, and only if it will start that run: waking it at every
            # end (thirty per scrape) cost more than the runs' own bookkeeping.
            if runner.next_due < self._wake_at and (
                    runner.spec.background or self._wanted(self._clock())):
                self._cond.notify_all()

    def _next_due(self, runner: Runner) -> float:
        interval = runner.spec.interval
        now = self._clock()
        if not runner.status.present:
            # Absent hardware (NoData) is looked for again less often than the
            # interval: on a VM a dozen collectors find nothing every time.
            return max(runner.last_full + max(interval, ABSENT_RECHECK), now)
        failures = runner.status.consecutive_failures
        if failures <= 1:
            # Fixed rate: one interval after the last full run began; a run
            # that took longer than its interval is followed at once.
            return max(runner.last_full + interval, now)
        return now + min(interval * 2 ** (failures - 1), max(self.max_backoff, interval))

    def _succeeded(self, runner: Runner) -> None:
        status = runner.status
        if not status.up and status.consecutive_failures:
            log.info("collector.recovered", collector=status.name)
            self.events.publish("collector.recovered", Severity.INFO, status.name,
                                f"collector {status.name} recovered", collector=status.name)
        status.up = True
        status.consecutive_failures = 0
        status.last_error = ""
        status.last_success = time.time()

    def _failed(self, runner: Runner, reason: str) -> None:
        status = runner.status
        status.errors_total += 1
        status.consecutive_failures += 1
        status.last_error = reason
        self.store.set_visible(status.name, False)
        if status.up or status.consecutive_failures == 1:
            log.error("collector.failed", collector=status.name, error=reason)
            self.events.publish("collector.failed", Severity.ERROR, status.name,
                                f"collector {status.name} failed: {reason}",
                                collector=status.name, error=reason)
        else:
            log.debug("collector.still_failing", collector=status.name, error=reason,
                      failures=status.consecutive_failures)
        status.up = False
