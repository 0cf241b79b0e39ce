"""A collector that raises, hangs or finds no hardware never stalls the others.

Time is a fake clock that the tests move (``Scheduler(clock=...)``), so every
run, timeout and backoff happens at an exact instant and the tests wait on
the scheduler's threads, never on the wall clock.  Intervals are whole
seconds and the clock moves in steps of 0.5 s: binary fractions, so due times
compare exactly.
"""
import threading
import time

import pytest

from agent.telemetry.collector import NoData
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.scheduler import CollectorSpec, Scheduler
from agent.telemetry.store import SeriesStore

RUNS = FamilyDesc("test_runs_total", MetricType.COUNTER, "runs")
RESULT = FamilyDesc("test_result", MetricType.GAUGE, "which run produced the batch", "", ("run",))
STEP = 0.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


class Good:
    def __init__(self):
        self.runs = 0

    def collect(self, batch: Batch) -> None:
        self.runs += 1
        batch.counter(RUNS, self.runs)


class Raises:
    def __init__(self, clock, failures=10**9):
        self.clock = clock
        self.times: list[float] = []  # scheduler time of each run
        self.failures = failures

    @property
    def runs(self) -> int:
        return len(self.times)

    def collect(self, batch):
        self.times.append(self.clock())
        if self.runs <= self.failures:
            raise RuntimeError("sensor read failed")
        batch.counter(RUNS, self.runs)


class Hangs:
    """Run ``on_run`` (the first by default) blocks until released, then
    returns a batch marked "late"; every other run returns one marked
    "on_time" at once."""

    def __init__(self, on_run=1):
        self.release = threading.Event()
        self.runs = 0
        self.on_run = on_run

    def collect(self, batch):
        self.runs += 1
        if self.runs == self.on_run:
            self.release.wait()
            batch.gauge(RESULT, 1, "late")
        else:
            batch.gauge(RESULT, 1, "on_time")


class Absent:
    def collect(self, batch):
        raise NoData("no /sys/class/hwmon")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sched(clock):
    s = Scheduler(SeriesStore(retention=60), EventBus(), max_backoff=8.0, clock=clock)
    yield s
    s.stop()


def settle(sched, stuck=(), timeout=5.0):
    """Wait until the scheduler has done everything due at the clock's
    present: its loop has seen this instant, every run it started has
    returned (except the runners named in ``stuck``, which hang on purpose)
    and no runner is due.  Reads the scheduler's private state: there is no
    public "idle" signal, and without one the test would race the workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sched._lock:
            now = sched._clock()

            def quiet(name, r):
                old = r.predecessor  # a reload's replaced runner, its run maybe still going
                if r.started is not None or (old is not None and old.started is not None):
                    return name in stuck
                # due, but left to scrapes while nobody wants history
                idle = not r.spec.background and not sched._wanted(now) and r.last_start > -1e300
                return r.next_due > now or idle
            if sched.heartbeat == now and all(quiet(n, r) for n, r in sched._runners.items()):
                return
        time.sleep(0.001)
    raise AssertionError(f"scheduler still busy at t={sched._clock()}")


def run_until(sched, clock, t, stuck=()):
    """Move time to ``t`` in steps, letting the scheduler catch up at each."""
    settle(sched, stuck)
    while clock.now < t:
        clock.advance(STEP)
        sched.wake()
        settle(sched, stuck)


def wait_for(cond, timeout=5.0):
    """Poll ``cond`` while the worker threads catch up (the clock stands still)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.001)
    return False


def status(s, name):
    return {st.name: st for st in s.statuses()}[name]


def results(store) -> dict[str, set]:
    """The ``run`` label of every RESULT sample visible in the store, by collector."""
    return {b.collector: {r.labels[0] for r in b.rows() if r.family == RESULT} for b in store.blocks()}


def test_bad_collectors_are_isolated(sched, clock):
    good, raises, hangs, absent = Good(), Raises(clock), Hangs(), Absent()
    sub = sched.events.subscribe()
    sched.set_collectors([CollectorSpec("good", good, 1.0, 4.0),
                          CollectorSpec("raises", raises, 1.0, 4.0),
                          CollectorSpec("hangs", hangs, 1.0, 2.0),
                          CollectorSpec("absent", absent, 1.0, 4.0)])
    sched.start()
    try:
        run_until(sched, clock, 1.5, stuck={"hangs"})
        assert status(sched, "hangs").timeouts_total == 0 and status(sched, "hangs").up is False
        run_until(sched, clock, 2.0, stuck={"hangs"})
        assert status(sched, "hangs").timeouts_total == 1  # exactly at its 2 s timeout
        run_until(sched, clock, 12.0, stuck={"hangs"})
        assert good.runs == 13, "good collector stalled: it runs every second from t=0 to t=12"
        st = {s.name: s for s in sched.statuses()}
        assert st["good"].up and not st["raises"].up and not st["hangs"].up
        assert "sensor read failed" in st["raises"].last_error
        assert "timed out" in st["hangs"].last_error
        assert st["absent"].up and not st["absent"].present
        assert st["hangs"].timeouts_total == 1  # one stuck run is one timeout, not one per tick
        assert hangs.runs == 1  # no new run while the stuck one has not returned
        names = {b.collector for b in sched.store.blocks()}
        assert names == {"good"}  # failing collectors' series are stale, hidden
        kinds = set()
        while (ev := sub.get(0.01)) is not None:
            kinds.add((ev.kind, ev.source))
        assert {("collector.failed", "raises"), ("collector.failed", "hangs"),
                ("collector.absent", "absent")} <= kinds
    finally:
        hangs.release.set()


def test_failing_collector_backs_off(sched, clock):
    good, raises = Good(), Raises(clock)
    sched.set_collectors([CollectorSpec("good", good, 1.0, 4.0),
                          CollectorSpec("raises", raises, 1.0, 4.0)])
    sched.start()
    run_until(sched, clock, 40.0)
    # After the 2nd consecutive failure the gap doubles from the interval
    # (2, 4, 8 s) and stops at max_backoff (8 s); the 1st is retried at the
    # normal interval.
    assert raises.times == [0, 1, 3, 7, 15, 23, 31, 39]
    assert good.runs == 41  # the healthy one keeps its 1 s rate throughout
    st = status(sched, "raises")
    assert (st.runs_total, st.errors_total, st.consecutive_failures) == (8, 8, 8)


def test_recovery_publishes_an_event_and_brings_series_back(sched, clock):
    flaky = Raises(clock, failures=2)
    sub = sched.events.subscribe()
    sched.set_collectors([CollectorSpec("flaky", flaky, 1.0, 4.0)])
    sched.start()
    run_until(sched, clock, 2.5)
    assert not status(sched, "flaky").up and sched.store.blocks() == []
    run_until(sched, clock, 3.0)  # 2nd failure at t=1 backs off 2 s
    assert flaky.times == [0, 1, 3] and status(sched, "flaky").up
    assert {b.collector for b in sched.store.blocks()} == {"flaky"}
    kinds = []
    while (ev := sub.get(0.01)) is not None:
        kinds.append(ev.kind)
    assert kinds == ["collector.failed", "collector.recovered"]


def test_late_result_of_a_timed_out_run_is_discarded(sched, clock):
    hangs = Hangs()
    sched.set_collectors([CollectorSpec("hangs", hangs, 10.0, 2.0)])
    sched.start()
    run_until(sched, clock, 2.0, stuck={"hangs"})
    assert status(sched, "hangs").timeouts_total == 1
    hangs.release.set()  # the stuck run returns its batch, 2 s too late
    settle(sched)
    st = status(sched, "hangs")
    assert st.runs_total == 1 and hangs.runs == 1  # the late run ended; no new one yet
    assert results(sched.store) == {}  # its batch never reached the store
    assert not st.up and "timed out" in st.last_error
    run_until(sched, clock, 10.0)  # the next run is on time (fixed rate from t=0)
    assert hangs.runs == 2 and status(sched, "hangs").up
    assert results(sched.store) == {"hangs": {"on_time"}}


def test_reload_keeps_unchanged_collectors(sched, clock):
    good = Good()
    spec = CollectorSpec("good", good, 1.0, 4.0)
    sched.set_collectors([spec])
    sched.start()
    run_until(sched, clock, 2.0)
    assert good.runs == 3
    other = Good()
    sched.set_collectors([spec, CollectorSpec("other", other, 1.0, 4.0)])
    settle(sched)
    assert status(sched, "good").runs_total == 3  # state survived
    assert (good.runs, other.runs) == (3, 1)  # the kept one is not run again out of turn
    sched.set_collectors([CollectorSpec("other", Good(), 1.0, 4.0)])
    assert [s.name for s in sched.statuses()] == ["other"]


def test_reload_never_runs_a_collector_twice_at_once(sched, clock):
    class Slow:
        def __init__(self):
            self.running = self.most = 0
            self.times: list[float] = []
            self.release = threading.Event()
            self.lock = threading.Lock()

        def collect(self, batch):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.times.append(clock())
            if len(self.times) == 1:
                self.release.wait()
            with self.lock:
                self.running -= 1

    slow = Slow()
    sched.set_collectors([CollectorSpec("slow", slow, 1.0, 100.0)])
    sched.start()
    # settle() counts a stuck run as done once started: wait until it has
    # read the clock, before the clock moves on
    assert wait_for(lambda: slow.times == [0])
    run_until(sched, clock, 1.0, stuck={"slow"})
    sched.set_collectors([CollectorSpec("slow", slow, 2.0, 100.0)])  # new interval: new runner
    run_until(sched, clock, 5.0, stuck={"slow"})
    assert slow.times == [0]  # the new runner waits for the old run to end
    slow.release.set()
    settle(sched)
    run_until(sched, clock, 9.0)
    # it starts as soon as the old run ends, then keeps its new interval
    assert slow.times == [0, 5, 7, 9]
    assert slow.most == 1


# -- fresh values for a scrape (Scheduler.refresh) -------------------------
class Counting:
    """A counter that counts its runs; records the scheduler time of each."""

    def __init__(self, clock):
        self.clock = clock
        self.times: list[float] = []

    def collect(self, batch):
        self.times.append(self.clock())
        batch.counter(RUNS, len(self.times))


def block(sched, name):
    return {b.collector: b for b in sched.store.blocks()}[name]


def scrape(sched, clock, max_age=0.25):
    sched.refresh(max_age, 2.0)
    return block(sched, "c").rows()[0].value


def test_a_scrape_runs_on_scrape_collectors_older_than_max_age(sched, clock):
    fresh, lazy = Counting(clock), Counting(clock)
    sched.set_collectors([CollectorSpec("c", fresh, 5.0, 4.0, on_scrape=True),
                          CollectorSpec("lazy", lazy, 5.0, 4.0)])
    sched.start()
    run_until(sched, clock, 0.0)
    assert fresh.times == [0.0] and lazy.times == [0.0]
    assert scrape(sched, clock) == 1  # 0 s old: served as is
    clock.advance(1.0)
    assert scrape(sched, clock) == 2  # 1 s old: run now, and the scrape waits for it
    assert scrape(sched, clock) == 2  # a second scrape at the same instant shares it
    assert fresh.times == [0.0, 1.0] and lazy.times == [0.0]  # lazy keeps its interval


def test_scrape_runs_between_scheduled_ones_write_no_history(sched, clock):
    """Scrapes every second, interval 5 s: every scrape sees a new value, the
    history and rates keep the 5 s cadence, and the scheduled runs coincide
    with scrapes instead of adding runs."""
    c = Counting(clock)
    sched.set_collectors([CollectorSpec("c", c, 5.0, 4.0, on_scrape=True)])
    sched.start()
    values = []
    for t in range(0, 21):
        run_until(sched, clock, float(t))
        values.append(scrape(sched, clock))
    assert values == list(range(1, 22))  # fresh at each scrape
    assert len(c.times) == 21  # one run per scrape, no extra scheduled ones
    b = block(sched, "c")
    assert b.count == 5  # history slots: the full runs at 0, 5, 10, 15, 20
    assert b.prev_raw[0] == 21  # the last full run (t=20) is the 21st

def test_scrapes_slower_than_the_interval_add_no_runs(sched, clock):
    """Interval 5 s, scrapes every 15 s: three runs per 15 s, not four; a
    scrape that lands on a scheduled run shares it."""
    c = Counting(clock)
    sched.set_collectors([CollectorSpec("c", c, 5.0, 4.0, on_scrape=True)])
    sched.start()
    for t in (0.0, 15.0, 30.0, 45.0):
        run_until(sched, clock, t)
        scrape(sched, clock)
    assert c.times == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    # A scrape off the schedule: one light run, and the schedule stays put.
    run_until(sched, clock, 47.0)
    scrape(sched, clock)
    run_until(sched, clock, 50.0)
    assert c.times[-2:] == [47.0, 50.0]
    assert block(sched, "c").count == 11  # 0..50 every 5 s


class Where:
    """Records the thread each run ran on."""

    def __init__(self):
        self.threads: list[int] = []

    def collect(self, batch):
        self.threads.append(threading.get_ident())
        batch.counter(RUNS, len(self.threads))


def test_a_scrape_runs_inline_collectors_itself_and_the_others_on_their_workers(sched, clock):
    inline, isolated = Where(), Where()
    sched.set_collectors([CollectorSpec("c", inline, 5.0, 4.0, on_scrape=True, inline=True),
                          CollectorSpec("iso", isolated, 5.0, 4.0, on_scrape=True)])
    sched.start()
    run_until(sched, clock, 1.0)  # the start-up runs: both on their workers
    me = threading.get_ident()
    assert me not in inline.threads + isolated.threads
    assert scrape(sched, clock) == 2  # fresh, run by this thread
    assert inline.threads[-1] == me
    assert len(isolated.threads) == 2 and isolated.threads[-1] != me
    assert status(sched, "c").runs_total == 2 and status(sched, "c").up


def test_a_hung_inline_run_times_out_and_later_scrapes_go_on_without_it(sched, clock):
    hangs, fine = Hangs(on_run=2), Counting(clock)  # the start-up run returns
    sched.set_collectors([CollectorSpec("hangs", hangs, 5.0, 2.0, on_scrape=True, inline=True),
                          CollectorSpec("c", fine, 5.0, 4.0, on_scrape=True, inline=True)])
    sched.start()
    run_until(sched, clock, 1.0)
    stuck = threading.Thread(target=sched.refresh, args=(0.25, 30.0), daemon=True)
    stuck.start()
    assert wait_for(lambda: hangs.runs == 2)  # hung, on that scrape's thread
    run_until(sched, clock, 4.0, stuck={"hangs"})  # past its 2 s timeout: the loop marks it
    assert status(sched, "hangs").timeouts_total == 1 and not status(sched, "hangs").up
    try:
        t0 = time.monotonic()
        assert scrape(sched, clock) >= 2  # this scrape neither waits for nor reruns the stuck one
        assert time.monotonic() - t0 < 1.0 and hangs.runs == 2
    finally:
        hangs.release.set()
    stuck.join(5)
    assert not stuck.is_alive()
    assert results(sched.store).get("hangs") != {"late"}  # the late batch is discarded


@pytest.mark.parametrize("inline", [False, True])
def test_concurrent_scrapes_share_one_run_and_never_overlap(sched, clock, inline):
    class Slow:
        def __init__(self):
            self.running = self.most = self.runs = 0
            self.gate = threading.Event()
            self.lock = threading.Lock()

        def collect(self, batch):
            with self.lock:
                self.running += 1
                self.runs += 1
                self.most = max(self.most, self.running)
            if self.runs > 1:
                self.gate.wait(5)
            with self.lock:
                self.running -= 1
            batch.counter(RUNS, self.runs)

    slow = Slow()
    sched.set_collectors([CollectorSpec("c", slow, 5.0, 4.0, on_scrape=True, inline=inline)])
    sched.start()
    run_until(sched, clock, 1.0)
    threads = [threading.Thread(target=sched.refresh, args=(0.25, 5.0)) for _ in range(4)]
    for t in threads:
        t.start()
    assert wait_for(lambda: slow.runs == 2)
    time.sleep(0.05)
    slow.gate.set()
    for t in threads:
        t.join(5)
    assert slow.runs == 2 and slow.most == 1
    assert block(sched, "c").rows()[0].value == 2  # every scraper waited for the shared run


def test_a_hung_or_failing_collector_does_not_hold_a_scrape(sched, clock):
    hangs, raises = Hangs(), Raises(clock)
    sched.set_collectors([CollectorSpec("hangs", hangs, 5.0, 2.0, on_scrape=True),
                          CollectorSpec("raises", raises, 5.0, 4.0, on_scrape=True)])
    sched.start()
    try:
        assert wait_for(lambda: hangs.runs == 1)
        run_until(sched, clock, 1.0, stuck={"hangs"})
        t0 = time.monotonic()
        sched.refresh(0.25, 0.3)  # waits for the stuck run at most its budget
        assert 0.25 < time.monotonic() - t0 < 2.0
        assert hangs.runs == 1  # never a second run beside the stuck one
        assert raises.times == [0.0]  # failing: left to its backoff, not run per scrape
    finally:
        hangs.release.set()


# -- history on demand (background=False) ----------------------------------
def test_without_demand_only_scrapes_run_a_demand_driven_collector(sched, clock):
    fresh, cached = Counting(clock), Counting(clock)
    sched.set_collectors([CollectorSpec("c", fresh, 1.0, 4.0, on_scrape=True, background=False),
                          CollectorSpec("cached", cached, 5.0, 4.0, background=False)])
    sched.start()
    run_until(sched, clock, 10.0)
    assert fresh.times == [0.0] and cached.times == [0.0]  # the start-up run, then nothing
    assert scrape(sched, clock) == 2 and fresh.times == [0.0, 10.0]  # fresh at the scrape
    assert cached.times == [0.0, 10.0]  # due by its interval: run by the scrape too
    run_until(sched, clock, 12.0)
    scrape(sched, clock)
    assert fresh.times[-1] == 12.0 and cached.times == [0.0, 10.0]  # not due again until 15
    assert block(sched, "c").cap == 1 and block(sched, "c").count == 1  # no history kept: the latest only


def test_history_is_kept_for_the_collectors_a_window_asked_for_and_freed_after(sched, clock):
    c, other = Counting(clock), Counting(clock)
    sched.set_collectors([CollectorSpec("c", c, 1.0, 4.0, on_scrape=True, background=False),
                          CollectorSpec("other", other, 1.0, 4.0, background=False),
                          CollectorSpec("hw", Counting(clock), 1.0, 4.0)])  # background: always kept
    sched.start()
    run_until(sched, clock, 3.0)
    assert block(sched, "c").cap == 1 and block(sched, "hw").cap > 1
    sched.want(hold=5.0)  # a read without a window: the schedule, no history
    run_until(sched, clock, 3.5)
    assert block(sched, "c").cap == 1
    sched.want_history(["c", "unknown", "hw"], hold=5.0)  # a window over c's families
    run_until(sched, clock, 7.0)
    kept = block(sched, "c")
    # The latest sample when history was turned on, then every scheduled run 4..7.
    assert kept.cap > 1 and kept.count == 5
    assert kept.window_stats(60.0)[7] == 5  # the window statistics count them all (each has a rate)
    assert block(sched, "other").cap == 1  # ran on schedule, but nobody asked for its window
    run_until(sched, clock, 12.0)  # nobody asked again: the hold ended at 8.5
    assert block(sched, "c").cap == 1 and block(sched, "c").count == 1
    assert block(sched, "hw").cap > 1


def test_want_keeps_the_schedule_for_its_hold(sched, clock):
    c = Counting(clock)
    sched.set_collectors([CollectorSpec("c", c, 1.0, 4.0, on_scrape=True, background=False)])
    sched.start()
    run_until(sched, clock, 10.0)
    assert sched.want(hold=5.0) is True  # it was idle: the caller refreshes
    assert sched.want(hold=5.0) is False
    run_until(sched, clock, 20.0)
    assert c.times == [0.0, 10.0, 11.0, 12.0, 13.0, 14.0]  # every second until 15, then idle


def test_first_run_gets_its_start_up_allowance(sched, clock):
    hangs = Hangs()
    sched.set_collectors([CollectorSpec("slow_start", hangs, 1.0, 1.0, first_timeout=4.0)])
    sched.start()
    try:
        assert wait_for(lambda: hangs.runs == 1)
        run_until(sched, clock, 3.5, stuck={"slow_start"})
        assert status(sched, "slow_start").timeouts_total == 0  # 3.5 s: within the allowance
        hangs.release.set()
        run_until(sched, clock, 5.0)
        assert status(sched, "slow_start").up and status(sched, "slow_start").errors_total == 0
    finally:
        hangs.release.set()


def test_absent_hardware_is_looked_for_again_every_minute(sched, clock):
    class CountsAbsent:
        def __init__(self):
            self.times = []

        def collect(self, batch):
            self.times.append(clock())
            raise NoData("nothing here")

    absent = CountsAbsent()
    sched.set_collectors([CollectorSpec("absent", absent, 1.0, 1.0)])
    sched.start()
    run_until(sched, clock, 130.0)
    assert absent.times == [0.0, 60.0, 120.0]


class Burns:
    """Spends ``seconds`` of CPU (or, with ``sleep``, of wall time) per run."""

    def __init__(self, seconds, sleep=False):
        self.seconds, self.sleep = seconds, sleep

    def collect(self, batch):
        if self.sleep:
            time.sleep(self.seconds)
        else:
            end = time.thread_time() + self.seconds
            while time.thread_time() < end:
                pass
        batch.counter(RUNS, 1)


def test_each_collector_is_charged_the_cpu_of_its_own_runs(sched, clock):
    sched.set_collectors([CollectorSpec("busy", Burns(0.05), 1.0, 4.0),
                          CollectorSpec("waits", Burns(0.05, sleep=True), 1.0, 4.0)])
    sched.start()
    run_until(sched, clock, 2.0)
    assert wait_for(lambda: status(sched, "busy").runs_total == 3 and status(sched, "waits").runs_total == 3)
    assert 0.15 <= status(sched, "busy").cpu_seconds < 0.6  # three runs of 50 ms of CPU
    assert status(sched, "waits").cpu_seconds < 0.03  # a run that waits on I/O costs nothing
