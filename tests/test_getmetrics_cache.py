"""GetMetrics' encoding: the packed-labels kernel (no GIL) writes the same bytes
as its twin and as ``encode_samples``, refuses what they refuse, and the
per-selector cache answers exactly what a fresh encoding would, sharing one
encoding between calls while the blocks it came from are unchanged."""
from __future__ import annotations

import math
import threading
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.api import encode
from agent.core import kernels_py
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.query import compile_selector
from agent.telemetry.store import SeriesStore
from tests.helpers import load_impl

WIDTH = kernels_py.STATS_WIDTH


def load(name: str):
    return load_impl(kernels_py, None if name == "python" else "_kernels")


@pytest.fixture(params=["python", "cython"])
def k(request):
    mod = load(request.param)
    if not hasattr(mod, "encode_samples_packed"):
        pytest.fail("extension built without encode_samples_packed; rebuild it")
    return mod


def pack(blobs: list[bytes]) -> tuple[bytes, array]:
    off, pos = array("q", [0]), 0
    for b in blobs:
        pos += len(b)
        off.append(pos)
    return b"".join(blobs), off


doubles = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def columns(draw):
    n = draw(st.integers(0, 20))
    blobs = [draw(st.binary(max_size=30)) for _ in range(n)]
    value = array("d", [draw(doubles) for _ in range(n)])
    rate = array("d", [draw(doubles) for _ in range(n)])
    stats = None
    if draw(st.booleans()):
        stats = array("d", [draw(doubles) for _ in range(n * WIDTH)])
        for i in range(n):
            stats[i * WIDTH + WIDTH - 1] = float(draw(st.integers(0, 2**40)))
    idx = array("q", draw(st.lists(st.integers(0, n - 1), max_size=30)) if n else [])
    time_field = draw(st.binary(max_size=12))
    return blobs, idx, value, rate, stats, time_field


@pytest.mark.parametrize("impl", ["python", "cython"])
@settings(max_examples=200, deadline=None)
@given(cols=columns())
def test_packed_labels_give_the_same_bytes(impl, cols):
    k = load(impl)
    blobs, idx, value, rate, stats, time_field = cols
    labels, off = pack(blobs)
    want = kernels_py.encode_samples(blobs, idx, value, rate, stats, time_field)
    assert k.encode_samples_packed(labels, off, idx, value, rate, stats, time_field) == want


@pytest.mark.parametrize("bad, error", [
    ("idx", IndexError), ("negative_idx", IndexError), ("offsets", ValueError),
    ("short_off", ValueError), ("nan_count", ValueError), ("inf_count", OverflowError),
    ("huge_count", OverflowError), ("short_rate", ValueError)])
def test_both_refuse_the_same_input(k, bad, error):
    labels, off = pack([b"a", b"bc", b""])
    idx, value, rate = array("q", [0, 2]), array("d", [1.0, 2.0, 3.0]), array("d", [math.nan] * 3)
    stats = array("d", [0.0] * (3 * WIDTH))
    if bad == "idx":
        idx = array("q", [0, 3])
    elif bad == "negative_idx":
        idx = array("q", [-1])
    elif bad == "offsets":
        off = array("q", [0, 1, 9, 3])
        idx = array("q", [1])
    elif bad == "short_off":
        off = off[:3]
    elif bad == "short_rate":
        rate = rate[:2]
    else:
        stats[2 * WIDTH + WIDTH - 1] = {"nan_count": math.nan, "inf_count": math.inf,
                                        "huge_count": 2.0**64}[bad]
    with pytest.raises(error):
        k.encode_samples_packed(labels, off, idx, value, rate, stats, b"")


RX = FamilyDesc("rx_bytes_total", MetricType.COUNTER, "rx", "bytes", ("device",))
LOAD = FamilyDesc("load1", MetricType.GAUGE, "load")


def ingest_net(store: SeriesStore, t: int, n: int = 20, collector: str = "net") -> None:
    b = Batch()
    for i in range(n):
        b.counter(RX, t * 100 + i, f"tap{i}")
    store.ingest(collector, b, wall=1.7e9 + t, mono=float(t))


def ingest_load(store: SeriesStore, t: int) -> None:
    b = Batch()
    b.gauge(LOAD, t / 4)
    store.ingest("load", b, wall=1.7e9 + t, mono=float(t))


def test_cache_answers_what_a_fresh_encoding_would():
    store = SeriesStore(retention=60)
    ingest_net(store, 1)
    ingest_load(store, 1)
    cache = encode.FamiliesCache()
    rx = compile_selector(["rx_*"], [])

    def check(encodes: int) -> None:
        assert cache.families(store, rx) == encode.encode_families(store, rx, None)
        assert cache.encodes == encodes

    check(1)
    check(1)  # asked again: shared
    ingest_load(store, 2)  # another block's new values: still the same answer
    check(1)
    ingest_net(store, 2)  # new values where it came from
    check(2)
    ingest_net(store, 3, n=25)  # new series
    check(3)
    ingest_net(store, 3, collector="net2")  # another collector exporting the family
    check(4)
    store.set_visible("net", False)  # its collector fails: its series go stale
    check(5)
    store.drop("net2")
    check(6)
    everything = compile_selector([], [])
    assert cache.families(store, everything) == encode.encode_families(store, everything, None)


def test_concurrent_callers_get_one_answer():
    store = SeriesStore(retention=60)
    ingest_net(store, 1, n=500)
    cache, sel = encode.FamiliesCache(), compile_selector(["rx_*"], [])
    got, start = [], threading.Barrier(10)

    def call():
        start.wait()
        for _ in range(20):
            got.append(cache.families(store, sel))
    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got) == 200
    assert cache.encodes <= 10  # at most one per caller racing the first; then shared


def test_cache_is_bounded():
    store = SeriesStore(retention=60)
    ingest_net(store, 1, n=200)
    cache = encode.FamiliesCache(entries=3, max_bytes=1 << 20)
    sels = [compile_selector(["rx_*"], [("device", 1, f"tap{i}")]) for i in range(10)]
    for sel in sels:
        cache.families(store, sel)
    assert cache.encodes == 10
    cache.families(store, sels[-1])
    cache.families(store, sels[0])  # evicted: encoded again
    assert cache.encodes == 11
