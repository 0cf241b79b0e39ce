"""Which API reads keep history: a window over a collector's families does,
a read without one does not (docs/architecture.md, "History is kept only
while it is wanted")."""
from agent.daemon import _DemandQuery
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
    query = _DemandQuery(store, lambda: reads.append(1), windows.append)
    selector = compile_selector(["node_network_*"], [])
    query.check_names(selector)
    query.check_window(None, selector=selector)
    assert reads == [1] and windows == []  # values only: no history kept for it
    query.check_window(60.0, selector=selector)
    assert windows == [{"netdev"}]  # not loadavg: nobody asked for its window
    query.check_window(60.0, selector=compile_selector([], []))
    assert windows[-1] == {"netdev", "loadavg"}
