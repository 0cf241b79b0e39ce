"""One collector as the scheduler runs it: its spec (interval, timeouts,
when it runs), its status (what ``hostagent_collector_*`` and ``hostagent
status`` show) and its runner, the worker thread that calls ``collect`` and
hands the batch back to :class:`agent.telemetry.scheduler.Scheduler`."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.telemetry.collector import Collector
from agent.telemetry.model import Batch

if TYPE_CHECKING:
    from agent.telemetry.scheduler import Scheduler


@dataclass(frozen=True)
class CollectorSpec:
    name: str
    collector: Collector
    interval: float
    timeout: float
    on_scrape: bool = False  # a /metrics scrape runs it when its values are older than max_age
    # False: its schedule runs only while someone wants history (Scheduler.want);
    # otherwise scrapes run it (on_scrape: when older than max_age; else when due).
    background: bool = True
    # The first run's timeout, if longer (opening netlink sockets, a first dump
    # of thousands of links); None: ``timeout``.
    first_timeout: float | None = None
    # A scrape runs it on the scrape's own thread instead of waking its worker
    # (CollectorInfo.inline): only for collectors that read the kernel's own
    # tables, which cannot block on a device or a mount.
    inline: bool = False

    def timeout_of(self, first: bool) -> float:
        return max(self.timeout, self.first_timeout or 0.0) if first else self.timeout


@dataclass
class CollectorStatus:
    """What ``hostagent_collector_*`` metrics and ``hostagent status`` show."""

    name: str
    interval: float
    timeout: float
    up: bool = False
    present: bool = True
    runs_total: int = 0
    errors_total: int = 0
    timeouts_total: int = 0
    consecutive_failures: int = 0
    last_duration: float = 0.0
    # CPU of the collector's runs (collect and ingest), from the clock of the
    # thread that ran each (its worker, or a scrape's for an inline one),
    # so an operator sees which collector a host's agent spends its CPU on.
    cpu_seconds: float = 0.0
    last_success: float = 0.0  # wall clock
    last_error: str = ""


class Runner:
    """One collector and its worker thread, started after SERVING
    (:meth:`Scheduler.start`) or at its first run, whichever comes first."""

    def __init__(self, spec: CollectorSpec, sched: Scheduler) -> None:
        self.spec = spec
        self.sched = sched
        self.status = CollectorStatus(spec.name, spec.interval, spec.timeout)
        self.next_due = 0.0
        self.started: float | None = None  # monotonic start of the run in flight
        self.last_start = -math.inf  # start of the latest run, light or full
        self.last_full = -math.inf  # start of the latest full run: the schedule's anchor
        self.full = True  # whether the run in flight is a full one
        self.first = True  # whether the run in flight (or the next) is the first
        self.finished = 0  # runs ended (a scrape waits for this to pass a mark)
        self.timed_out = False
        self.retired = False
        self.predecessor: "Runner | None" = None  # replaced runner whose run may still be going
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start_thread(self) -> None:
        """Start the worker, once (scheduler lock held).  Not at install:
        Thread.start waits until the new thread runs, and a start that
        installed thirty-odd collectors waited for each before it served
        (docs/benchmarks.md, "Start-up")."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"collector-{self.spec.name}",
                                            daemon=True)
            self._thread.start()

    def trigger(self, now: float, full: bool = True, wake: bool = True) -> None:
        """Mark a run as started (scheduler lock held); ``wake``: on the
        worker, else the caller runs it (:meth:`run`) once it lets the lock go."""
        self.first = self.last_start == -math.inf
        self.started = self.last_start = now
        if full:
            self.last_full = now
        self.full = full
        self.timed_out = False
        if wake:
            self._wake.set()
            self.start_thread()  # a scrape before Scheduler.start, or a runner a reload added

    def retire(self) -> None:
        self.retired = True
        self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self.retired:
                return
            self.run()

    def run(self) -> None:
        """One run, on the calling thread: collect, then hand the batch to
        the scheduler.  Never two at once for one runner (``started`` guards
        it), so ``cpu_seconds`` has one writer at a time."""
        batch = Batch()
        error: BaseException | None = None
        t0, cpu0 = time.monotonic(), time.thread_time()
        try:
            self.spec.collector.collect(batch)
        except BaseException as exc:  # noqa: BLE001 - isolation is the point
            error = exc
        self.sched._finished(self, batch, error, time.monotonic() - t0)
        self.status.cpu_seconds += time.thread_time() - cpu0
