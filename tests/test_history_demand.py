"""Which API reads keep history: a window over a collector's families does,
a read without one does not (docs/architecture.md, "History is kept only
while it is wanted")."""
from agent.telemetry.query import DemandQuery
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.query import compile_selector
from agent.telemetry.store import SeriesStore

RX = FamilyDesc("node_network_receive_bytes_total", MetricType.COUNTER, "rx", "", ("device",))
LOAD = FamilyDesc("node_load1", MetricType.GAUGE, "load")


def test_only_a_windowed_read_asks_for_history_and_only_for_its_collectors():
    store = SeriesStore(retention=900)
    net, load = Batch(), Batch()
    net.counter(RX, 1, "eth0")
    load.gauge(LOAD, 0.5)
    store.ingest("netdev", net)
    store.ingest("loadavg", load)
    reads, windows = [], []
    query = DemandQuery(store, lambda: reads.append(1), windows.append)
    selector = compile_selector(["node_network_*"], [])
    query.check_names(selector)
    query.check_window(None, selector=selector)
    assert reads == [1] and windows == []  # values only: no history kept for it
    query.check_window(60.0, selector=selector)
    assert windows == [{"netdev"}]  # not loadavg: nobody asked for its window
    query.check_window(60.0, selector=compile_selector([], []))
    assert windows[-1] == {"netdev", "loadavg"}


def test_concurrent_first_reads_all_wait_for_the_start_up_runs():
    """Two streams opened at once right after start: the second used to
    skip the catch-up the first was doing and answer "unknown metric"."""
    import threading
    import time
    from types import SimpleNamespace

    from agent.daemon import Agent

    done = threading.Event()

    class Scheduler:
        calls = 0

        def want(self, hold):
            self.calls += 1
            return self.calls == 1  # idle only for the first caller, as the real one

        def refresh(self, max_age, budget):
            time.sleep(0.3)  # the start-up runs
            done.set()

    agent = SimpleNamespace(scheduler=Scheduler(), cfg=SimpleNamespace(telemetry=SimpleNamespace(retention=900)),
                            _first_read=True, _first_read_lock=threading.Lock())
    saw = []

    def read():
        Agent._api_read(agent)
        saw.append(done.is_set())  # what the read then finds in the store
    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
        time.sleep(0.05)
    for r in readers:
        r.join()
    assert saw == [True, True]
