"""The series store: rates, wrap/reset, layout changes, bounded history and
window statistics, through the kernels the agent actually runs."""
import math

import pytest

from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.store import SeriesStore, history_slots

BYTES = FamilyDesc("test_bytes_total", MetricType.COUNTER, "bytes", "bytes", ("dev",))
WRAP32 = FamilyDesc("test_wrap32_total", MetricType.COUNTER, "32-bit", counter_bits=32)
TEMP = FamilyDesc("test_temp_celsius", MetricType.GAUGE, "temp", "celsius", ("sensor",))
TICKS = FamilyDesc("test_seconds_total", MetricType.COUNTER, "ticks", "seconds", scale=0.01)


def batch(**series):
    b = Batch()
    for dev, raw in series.get("bytes", {}).items():
        b.counter(BYTES, raw, dev)
    for sensor, value in series.get("temp", {}).items():
        b.gauge(TEMP, value, sensor)
    if "wrap" in series:
        b.counter(WRAP32, series["wrap"])
    if "ticks" in series:
        b.counter(TICKS, series["ticks"])
    return b


def rows(store, collector="c"):
    return {(r.family.name, r.labels): r for b in store.blocks() if b.collector == collector
            for r in b.rows()}


def test_counter_rate_uses_elapsed_time_and_scale():
    store = SeriesStore(retention=60)
    store.configure("c", 1.0)
    store.ingest("c", batch(bytes={"eth0": 1000}, ticks=100), wall=1000.0, mono=10.0)
    first = rows(store)
    assert first[("test_bytes_total", ("eth0",))].value == 1000
    assert math.isnan(first[("test_bytes_total", ("eth0",))].rate)  # no rate from one sample
    store.ingest("c", batch(bytes={"eth0": 5000}, ticks=300), wall=1002.0, mono=12.0)
    now = rows(store)
    assert now[("test_bytes_total", ("eth0",))].rate == 2000.0  # 4000 bytes over 2 s
    assert now[("test_seconds_total", ())].value == 3.0  # 300 ticks * 0.01 s
    assert now[("test_seconds_total", ())].rate == 1.0
    assert now[("test_bytes_total", ("eth0",))].time == 1002.0


def test_wrap_and_reset_never_produce_a_spike():
    store = SeriesStore(retention=60)
    store.ingest("c", batch(wrap=2**32 - 100, bytes={"eth0": 10**12}), mono=0.0)
    store.ingest("c", batch(wrap=50, bytes={"eth0": 7}), mono=1.0)
    now = rows(store)
    assert now[("test_wrap32_total", ())].rate == 150.0  # wrapped, not reset
    assert now[("test_bytes_total", ("eth0",))].rate == 7.0  # reset: counted from zero
    assert store.blocks()[0].resets_total == 1


def test_series_that_stay_keep_state_when_others_come_and_go():
    store = SeriesStore(retention=60)
    store.ingest("c", batch(bytes={"eth0": 100, "tap1": 5}), mono=0.0)
    store.ingest("c", batch(bytes={"eth0": 200, "tap2": 9}), mono=1.0)
    now = rows(store)
    assert now[("test_bytes_total", ("eth0",))].rate == 100.0
    assert math.isnan(now[("test_bytes_total", ("tap2",))].rate)  # new series: no rate yet
    assert ("test_bytes_total", ("tap1",)) not in now
    assert store.series_count() == 2


def test_history_is_bounded_by_retention():
    store = SeriesStore(retention=10)
    store.configure("c", 1.0)
    cap = history_slots(10, 1.0)
    for t in range(cap * 3):
        store.ingest("c", batch(temp={"cpu": float(t)}), mono=float(t))
    block = store.blocks()[0]
    assert block.count == cap and len(block.hist) == cap
    stats = block.rows(window=10.5, now_mono=float(cap * 3 - 1))[0].stats
    # The last 11 samples (t-10 .. t) are in the window, older ones are gone.
    assert stats[7] == 11 and stats[0] == cap * 3 - 11 and stats[1] == cap * 3 - 1


def test_window_statistics_of_a_gauge_and_a_counter_rate():
    store = SeriesStore(retention=300)
    store.configure("c", 1.0)
    for t in range(101):
        store.ingest("c", batch(temp={"cpu": float(t)}, bytes={"eth0": 10 * t * t}), mono=float(t))
    block = store.blocks()[0]
    by_name = {r.family.name: r.stats for r in block.rows(window=100.5, now_mono=100.0)}
    mn, mx, mean, last, p50, p90, p99, n = by_name["test_temp_celsius"]
    assert (mn, mx, mean, last, n) == (0.0, 100.0, 50.0, 100.0, 101)
    assert (p50, p90, p99) == (50.0, 90.0, 99.0)
    # counter rate history: 10*(t^2-(t-1)^2) = 20t-10 for t=1..100
    mn, mx, mean, last, p50, *_ , n = by_name["test_bytes_total"]
    assert (mn, mx, last, n) == (10.0, 1990.0, 1990.0, 100)


def test_resize_keeps_newest_history():
    store = SeriesStore(retention=100)
    store.configure("c", 1.0)
    for t in range(50):
        store.ingest("c", batch(temp={"cpu": float(t)}), mono=float(t))
    store.configure("c", 1.0, retention=10)
    block = store.blocks()[0]
    assert block.cap == history_slots(10, 1.0)
    stats = block.rows(window=1000, now_mono=49.0)[0].stats
    assert stats[0] == 50 - block.cap and stats[3] == 49.0


def test_history_off_keeps_the_latest_values_and_on_again_grows_from_them():
    store = SeriesStore(retention=100)
    store.configure("c", 1.0)
    for t in range(20):
        store.ingest("c", batch(temp={"cpu": float(t), "gpu": 100.0 + t}), mono=float(t))
    store.set_history("c", False)
    block = store.blocks()[0]
    assert block.cap == 1 and len(block.hist) == 2  # one slot per series: memory freed
    assert [r.value for r in block.rows()] == [19.0, 119.0]
    store.ingest("c", batch(temp={"cpu": 20.0, "gpu": 120.0}), mono=20.0)
    store.set_history("c", True)
    for t in range(21, 25):
        store.ingest("c", batch(temp={"cpu": float(t), "gpu": 100.0 + t}), mono=float(t))
    rows = block.rows(window=1000, now_mono=24.0)
    # min, max, last and count per series: from the sample kept when history came back
    assert [(r.stats[0], r.stats[1], r.stats[3], r.stats[7]) for r in rows] == [
        (20.0, 24.0, 24.0, 5), (120.0, 124.0, 124.0, 5)]
    store.drop("c")  # found empty: the block made later still keeps history
    store.set_history("c", False)
    store.ingest("c", batch(temp={"cpu": 1.0}), mono=30.0)
    assert store.blocks()[0].cap == 1


def test_duplicate_series_in_one_batch_is_refused():
    store = SeriesStore(retention=10)
    b = Batch()
    b.gauge(TEMP, 1.0, "cpu")
    b.gauge(TEMP, 2.0, "cpu")
    with pytest.raises(ValueError, match="duplicate series"):
        store.ingest("c", b)


def test_hidden_blocks_are_not_read():
    store = SeriesStore(retention=10)
    store.ingest("c", batch(temp={"cpu": 1.0}))
    store.set_visible("c", False)
    assert store.blocks() == [] and store.families() == {}


def test_prepared_layouts_skip_key_comparison_and_keep_rates():
    from array import array

    from agent.telemetry.model import PreparedLayout

    layout = PreparedLayout([(BYTES, (f"tap{i}",)) for i in range(1000)])
    store = SeriesStore(retention=60)
    for t, mult in ((0.0, 1), (1.0, 3)):
        b = Batch()
        b.add_prepared(layout, raw=array("Q", (mult * 100 * i for i in range(1000))))
        store.ingest("c", b, mono=t)
    block = store.blocks()[0]
    assert block.layout == (layout,)
    assert block.rate[999] == 2 * 100 * 999  # from 99_900 to 299_700 in 1 s
    with pytest.raises(ValueError, match="1000 series"):
        Batch().add_prepared(layout, raw=array("Q", [1, 2]))


def test_a_series_marked_fresh_gets_no_rate_from_its_old_value():
    store = SeriesStore(retention=60)
    store.ingest("c", batch(bytes={"eth0": 10}), mono=0.0)
    b = batch(bytes={"eth0": 5_000_000})  # recreated: a big new counter, not a jump
    b.mark_fresh(0)
    store.ingest("c", b, mono=1.0)
    assert math.isnan(rows(store)[("test_bytes_total", ("eth0",))].rate)
    store.ingest("c", batch(bytes={"eth0": 5_000_100}), mono=2.0)
    assert rows(store)[("test_bytes_total", ("eth0",))].rate == 100.0


def test_a_collector_can_keep_less_history_than_the_default():
    store = SeriesStore(retention=900)
    store.configure("netdev", 1.0, own_retention=120.0)
    store.configure("netdev", 1.0)  # a later plain configure keeps the override
    store.ingest("netdev", batch(temp={"cpu": 1.0}), mono=0.0)
    assert store.blocks()[0].cap == history_slots(120, 1.0)
    assert store.retention_of("netdev") == 120 and store.retention_of("cpu") == 900


def test_an_emptied_collector_keeps_its_history_size():
    store = SeriesStore(retention=900)
    store.configure("netdev", 1.0, own_retention=300.0)
    store.drop("netdev")  # hardware found absent for a while
    store.ingest("netdev", batch(temp={"cpu": 1.0}), mono=0.0)
    assert store.blocks()[0].cap == history_slots(300, 1.0)


def test_fresh_marks_of_a_layout_survive_a_discarded_run():
    from array import array

    from agent.telemetry.model import PreparedLayout

    old = PreparedLayout([(BYTES, ("eth0",))])
    new = PreparedLayout([(BYTES, ("eth0",))], fresh=(0,))  # eth0 was recreated
    store = SeriesStore(retention=60)
    b = Batch()
    b.add_prepared(old, raw=array("Q", [10]))
    store.ingest("c", b, mono=0.0)
    discarded = Batch()  # built, then thrown away (the run timed out)
    discarded.add_prepared(new, raw=array("Q", [9_000_000]))
    b = Batch()
    b.add_prepared(new, raw=array("Q", [9_000_100]))
    store.ingest("c", b, mono=1.0)
    assert math.isnan(rows(store)[("test_bytes_total", ("eth0",))].rate)  # no spike
    b = Batch()
    b.add_prepared(new, raw=array("Q", [9_000_200]))
    store.ingest("c", b, mono=2.0)
    assert rows(store)[("test_bytes_total", ("eth0",))].rate == 100.0


def test_a_light_ingest_replaces_values_only():
    """A run a scrape asked for between two scheduled ones: its values are
    served, but history, rates and counter state keep the interval."""
    from array import array

    from agent.telemetry.model import PreparedLayout

    store = SeriesStore(retention=60)
    store.configure("c", 5.0)
    store.ingest("c", batch(bytes={"eth0": 1000}, temp={"cpu": 40.0}, ticks=100), mono=0.0)
    store.ingest("c", batch(bytes={"eth0": 1500}, temp={"cpu": 41.0}, ticks=600), mono=5.0)
    for t, n in ((6.0, 1600), (7.0, 1700)):
        store.ingest("c", batch(bytes={"eth0": n}, temp={"cpu": 50.0}, ticks=700), mono=t, full=False)
    got = rows(store)
    assert got[("test_bytes_total", ("eth0",))].value == 1700  # served fresh
    assert got[("test_temp_celsius", ("cpu",))].value == 50.0
    assert got[("test_seconds_total", ())].value == 7.0  # scaled as in a full ingest
    assert got[("test_bytes_total", ("eth0",))].rate == 100.0  # still the 0..5 s rate
    block = store.blocks()[0]
    assert block.count == 2 and block.last_mono == 5.0
    store.ingest("c", batch(bytes={"eth0": 2500}, temp={"cpu": 40.0}, ticks=700), mono=10.0)
    assert rows(store)[("test_bytes_total", ("eth0",))].rate == 200.0  # 1500 -> 2500 over 5 s
    assert block.count == 3
    # A light batch with other series is ingested in full (rare: a new interface).
    store.ingest("c", batch(bytes={"eth0": 2600, "eth1": 1}), mono=11.0, full=False)
    assert block.count == 4
    # Prepared segments (netdev) take the same path without copying.
    layout = PreparedLayout([(BYTES, (f"tap{i}",)) for i in range(3)])
    for t, full in ((0.0, True), (1.0, False)):
        b = Batch()
        b.add_prepared(layout, raw=array("Q", [int(t * 10) + i for i in range(3)]))
        store.ingest("p", b, mono=t, full=full)
    p = [b for b in store.blocks() if b.collector == "p"][0]
    assert list(p.value) == [10.0, 11.0, 12.0] and p.count == 1 and list(p.prev_raw) == [0, 1, 2]
