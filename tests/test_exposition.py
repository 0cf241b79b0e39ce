"""/metrics text renders the same samples prometheus_client would, and parses."""
import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from agent.exposition import format_value, render
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.query import MetricsQuery, Selector
from agent.telemetry.store import SeriesStore

RX = FamilyDesc("node_network_receive_bytes_total", MetricType.COUNTER,
                'Bytes received "on the wire"\\nper device', "bytes", ("device", "netns"))
TEMP = FamilyDesc("node_hwmon_temp_celsius", MetricType.GAUGE, "Temperature", "celsius", ("chip",))
LOAD = FamilyDesc("node_load1", MetricType.GAUGE, "Load")


def store_with_tricky_values() -> SeriesStore:
    store = SeriesStore(retention=60)
    b = Batch()
    b.counter(RX, 2**63 + 5, 'tap"1\\x', "")
    b.counter(RX, 0, "eth\n0", "tenant-é")
    b.gauge(TEMP, math.inf, "k10temp")
    b.gauge(TEMP, -0.0, "nvme")
    b.gauge(TEMP, math.nan, "absent")  # no value: left out
    b.gauge(LOAD, 1e-300)
    store.ingest("c", b, mono=0.0)
    return store


class Reference:
    """What prometheus_client renders for the same store (the old exposition)."""

    def __init__(self, store):
        self.query = MetricsQuery(store)

    def collect(self):
        for snap in self.query.snapshot(Selector()):
            fam = snap.family
            cls = CounterMetricFamily if fam.type is MetricType.COUNTER else GaugeMetricFamily
            metric = cls(fam.name, fam.help, labels=fam.label_names)
            for row in snap.rows:
                if not math.isnan(row.value):
                    metric.add_metric(row.labels, row.value)
            yield metric


def parsed(text: str):
    return sorted((f.name, f.type, f.documentation, s.name, tuple(sorted(s.labels.items())), repr(s.value))
                  for f in text_string_to_metric_families(text) for s in f.samples)


def test_same_samples_as_prometheus_client():
    store = store_with_tricky_values()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference(store))
    ours = render(store).decode()
    assert parsed(ours) == parsed(generate_latest(registry).decode())
    assert "absent" not in ours
    assert "# TYPE node_network_receive_bytes_total counter" in ours


def test_value_formatting():
    assert [format_value(v) for v in (1.0, -2.5, math.inf, -math.inf, math.nan, 1e21)] == [
        "1.0", "-2.5", "+Inf", "-Inf", "NaN", "1e+21"]


def test_layout_change_rerenders():
    store = store_with_tricky_values()
    render(store)
    b = Batch()
    b.gauge(LOAD, 3.5)
    store.ingest("c", b, mono=1.0)
    assert render(store).decode() == "# HELP node_load1 Load\n# TYPE node_load1 gauge\nnode_load1 3.5\n"


def sample_lines(store: SeriesStore) -> int:
    return sum(1 for line in render(store).decode().splitlines() if not line.startswith("#"))


def test_series_count_is_what_metrics_serves():
    """hostagent_series (and `hostagent status`) count the sample lines of
    /metrics: not a failing collector's stale series, not a series with no
    value (NaN), not a second collector's copy of a family."""
    store = store_with_tricky_values()  # 6 series, one NaN
    assert store.series_count() == sample_lines(store) == 5
    copy = Batch()
    copy.gauge(LOAD, 2.0)  # a second collector exporting node_load1: /metrics serves "c"'s
    copy.gauge(FamilyDesc("other_up", MetricType.GAUGE, "Up"), 1.0)
    store.ingest("d", copy, mono=0.0)
    assert store.series_count() == sample_lines(store) == 6
    failing = Batch()
    failing.gauge(FamilyDesc("failing_up", MetricType.GAUGE, "Up"), 1.0)
    store.ingest("e", failing, mono=0.0)
    assert store.series_count() == sample_lines(store) == 7
    assert sum(len(b) for b in store.blocks()) == 9  # series held: what it counted before
    store.set_visible("e", False)  # its collector fails: its series go stale, kept for later
    assert store.series_count() == sample_lines(store) == 6


def test_a_scrape_asks_for_fresh_values_within_its_timeout():
    import urllib.request

    from agent.exposition import MAX_AGE, MetricsServer, wait_budget

    calls = []
    server = MetricsServer("127.0.0.1", 0, SeriesStore(retention=60),
                           lambda max_age, budget: calls.append((max_age, budget)))
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                     headers={"X-Prometheus-Scrape-Timeout-Seconds": "1"})
        urllib.request.urlopen(req, timeout=5).read()
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5).read()
    finally:
        server.close()
    assert calls == [(MAX_AGE, 0.75)]  # only /metrics; 1 s timeout less the send margin
    assert wait_budget(None) == wait_budget("junk") == wait_budget("-1") == 4.75
    assert wait_budget("0.4") == 0.2 and wait_budget("120") == 4.75
