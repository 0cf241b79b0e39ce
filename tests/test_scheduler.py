"""A collector that raises, hangs or finds no hardware never stalls the others."""
import threading
import time

import pytest

from agent.collectors.base import NoData
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.scheduler import CollectorSpec, Scheduler
from agent.telemetry.store import SeriesStore

RUNS = FamilyDesc("test_runs_total", MetricType.COUNTER, "runs")


class Good:
    name = "good"

    def __init__(self):
        self.runs = 0

    def collect(self, batch: Batch) -> None:
        self.runs += 1
        batch.counter(RUNS, self.runs)


class Raises:
    name = "raises"

    def __init__(self, failures=10**9):
        self.runs = 0
        self.failures = failures

    def collect(self, batch):
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError("sensor read failed")
        batch.counter(RUNS, self.runs)


class Hangs:
    name = "hangs"

    def __init__(self):
        self.release = threading.Event()

    def collect(self, batch):
        self.release.wait()


class Absent:
    name = "absent"

    def collect(self, batch):
        raise NoData("no /sys/class/hwmon")


def wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def sched():
    store, events = SeriesStore(retention=60), EventBus()
    s = Scheduler(store, events, max_backoff=1.0)
    yield s
    s.stop()


def status(s, name):
    return {st.name: st for st in s.statuses()}[name]


def test_bad_collectors_are_isolated(sched):
    good, raises, hangs, absent = Good(), Raises(), Hangs(), Absent()
    sub = sched.events.subscribe()
    sched.set_collectors([CollectorSpec("good", good, 0.05, 1.0),
                          CollectorSpec("raises", raises, 0.05, 1.0),
                          CollectorSpec("hangs", hangs, 0.05, 0.2),
                          CollectorSpec("absent", absent, 0.05, 1.0)])
    sched.start()
    try:
        assert wait_for(lambda: status(sched, "hangs").timeouts_total >= 1)
        runs_at_hang = good.runs
        assert wait_for(lambda: good.runs >= runs_at_hang + 10), "good collector stalled"
        st = {s.name: s for s in sched.statuses()}
        assert st["good"].up and not st["raises"].up and not st["hangs"].up
        assert "sensor read failed" in st["raises"].last_error
        assert "timed out" in st["hangs"].last_error
        assert st["absent"].up and not st["absent"].present
        assert st["hangs"].timeouts_total == 1  # one stuck run is one timeout, not one per tick
        names = {b.collector for b in sched.store.blocks()}
        assert names == {"good"}  # failing collectors' series are stale, hidden
        kinds = set()
        while (ev := sub.get(0.01)) is not None:
            kinds.add((ev.kind, ev.source))
        assert {("collector.failed", "raises"), ("collector.failed", "hangs"),
                ("collector.absent", "absent")} <= kinds
    finally:
        hangs.release.set()


def test_failing_collector_backs_off(sched):
    good, raises = Good(), Raises()
    sched.set_collectors([CollectorSpec("good", good, 0.05, 1.0),
                          CollectorSpec("raises", raises, 0.05, 1.0)])
    sched.start()
    time.sleep(2.0)
    # 0.05, 0.1, 0.2, 0.4, 0.8, 1.0 ... : a handful of tries, not 40
    assert raises.runs <= 8 < good.runs / 3


def test_recovery_publishes_an_event_and_brings_series_back(sched):
    flaky = Raises(failures=2)
    sub = sched.events.subscribe()
    sched.set_collectors([CollectorSpec("flaky", flaky, 0.05, 1.0)])
    sched.start()
    assert wait_for(lambda: status(sched, "flaky").up)
    assert {b.collector for b in sched.store.blocks()} == {"flaky"}
    kinds = []
    while (ev := sub.get(0.01)) is not None:
        kinds.append(ev.kind)
    assert kinds == ["collector.failed", "collector.recovered"]


def test_late_result_of_a_timed_out_run_is_discarded(sched):
    hangs = Hangs()
    sched.set_collectors([CollectorSpec("hangs", hangs, 0.05, 0.1)])
    sched.start()
    assert wait_for(lambda: status(sched, "hangs").timeouts_total == 1)
    hangs.release.set()
    assert wait_for(lambda: status(sched, "hangs").runs_total >= 3)
    assert status(sched, "hangs").up  # later runs are on time again


def test_reload_keeps_unchanged_collectors(sched):
    good = Good()
    spec = CollectorSpec("good", good, 0.05, 1.0)
    sched.set_collectors([spec])
    sched.start()
    assert wait_for(lambda: good.runs >= 3)
    sched.set_collectors([spec, CollectorSpec("other", Good(), 0.05, 1.0)])
    assert status(sched, "good").runs_total >= 3  # state survived
    sched.set_collectors([CollectorSpec("other", Good(), 0.05, 1.0)])
    assert [s.name for s in sched.statuses()] == ["other"]


def test_reload_never_runs_a_collector_twice_at_once(sched):
    class Slow:
        name = "slow"

        def __init__(self):
            self.running = self.most = self.runs = 0
            self.release = threading.Event()
            self.lock = threading.Lock()

        def collect(self, batch):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.runs += 1
            if self.runs == 1:
                self.release.wait()
            with self.lock:
                self.running -= 1

    slow = Slow()
    sched.set_collectors([CollectorSpec("slow", slow, 0.05, 5.0)])
    sched.start()
    assert wait_for(lambda: slow.runs == 1)
    sched.set_collectors([CollectorSpec("slow", slow, 0.1, 5.0)])  # new interval: new runner
    time.sleep(0.5)
    assert slow.runs == 1  # the new runner waits for the old run to end
    slow.release.set()
    assert wait_for(lambda: slow.runs >= 3)
    assert slow.most == 1
