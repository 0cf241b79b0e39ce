"""The /metrics kernels and their use: the Cython module writes the same bytes
as its pure-Python twin for every double and every generated store, the
OpenMetrics text is what prometheus_client writes, gzip round-trips, and a
render is shared by scrapers, formatted outside the block's lock and into
reused buffers.

The Cython cases skip when the extension is not built, and fail instead when
``HOSTAGENT_REQUIRE_EXTENSIONS=1``.
"""
from __future__ import annotations

import contextlib
import gzip
import math
import struct
import threading
import urllib.request
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from agent import core
from agent.core import expo_py
from agent.exposition import MetricsServer, Renderer, accepts_gzip, render, wants_openmetrics
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.store import SeriesStore
from tests.helpers import load_impl
from tests.test_exposition import Reference, store_with_tricky_values

TRICKY = [0.0, -0.0, 1.0, -1.0, 0.1, -2.5, 1 / 3, 1e15, 1e16, -1e16, 1e16 - 2, 9999999999999998.0,
          2.0**53, 2.0**53 + 2, -(2.0**53), 2.0**63, 2.0**64, 123456.789, 1e-7, 1e-5, 1e21, 1e22,
          5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
          1.7976931348623157e308, -1.7976931348623157e308, math.inf, -math.inf, math.nan,
          4503599627370495.5, 0.30000000000000004, 100.0, -0.5,
          # short decimals (the kernel's second fast path) and their edges
          12345.67, 0.35, 45.5, -0.001, 0.0001, 0.00012, 1e-4 * (1 - 2**-52), 4294967295.5,
          4294967296.5, 0.123456789, 0.1234567891, 1.000000001, 2.0**-3, 0.07, 3 * 0.01,
          2.0**32 - 0.25, 1125899906.842624, 0.000999, 99999.99999]


def load(name: str):
    return load_impl(expo_py, None if name == "python" else "_expo")


@pytest.fixture(params=["python", "cython"])
def impl(request):
    return load(request.param)


@pytest.fixture(scope="module")
def cy():
    return load("cython")


@contextlib.contextmanager
def use_kernels(mod):
    """Swap the kernel module agent.exposition renders with."""
    old = core.expo
    core.expo = mod
    try:
        yield
    finally:
        core.expo = old


def lines(mod, values, prefix=b"x ") -> bytes:
    """One family of one series per value, no headers: the value lines."""
    n = len(values)
    prefixes = prefix * n
    out = bytearray(mod.render_bound(0, len(prefixes), n))
    spans = array("q", bytes(8 * (n + 1)))
    size = mod.render_families(array("d", values), array("q", range(n)), array("q", range(n + 1)),
                               prefixes, array("q", range(0, len(prefixes) + 1, len(prefix))),
                               b"", array("q", [0] * (n + 1)), out, spans)
    return bytes(out[:size])


def test_values_are_python_repr(impl):
    got = lines(impl, TRICKY).decode().splitlines()
    want = [f"x {expo_py.format_value(v)}" for v in TRICKY if v == v]
    assert got == want
    assert "x -0.0" in got and "x 1e+16" in got and "x 9999999999999998.0" in got
    assert "x +Inf" in got and "x 5e-324" in got and "x 1e-07" in got


short_decimals = st.builds(lambda n, d: n / 10**d, st.integers(-(10**13), 10**13), st.integers(1, 10))
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    short_decimals, short_decimals.map(lambda v: v * 0.01),
    st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
    st.integers(-(2**62), 2**62).map(float))


@settings(max_examples=500, deadline=None)
@given(st.lists(doubles, max_size=40))
def test_every_double_formats_like_the_twin(cy, values):
    """Arbitrary bit patterns (NaN payloads, subnormals, huge and tiny,
    integral ones around the 1e16 switch to exponents), and decimals of a
    few digits, computed or not (0.03 and 3 * 0.01)."""
    assert lines(cy, values) == lines(expo_py, values)
    assert lines(cy, values).decode().split() == [
        t for v in values if v == v for t in ("x", expo_py.format_value(v))]


NAMES = ["a_total", "b_bytes_total", "c_celsius", "d", "e_info"]
label_text = st.text(alphabet=st.sampled_from('ab\\"\n é{},=\t'), max_size=6)


@st.composite
def stores(draw):
    """Up to 3 collectors' blocks (a family may be in several: the first
    block's is served), escapes in HELP and label values, any doubles."""
    helps = ['help', 'with "quotes"', 'back\\slash\nnewline']
    families = {name: FamilyDesc(name, MetricType.COUNTER if name.endswith("_total") else MetricType.GAUGE,
                                 draw(st.sampled_from(helps)),
                                 label_names=("dev", "x") if name[0] in "ac" else ())
                for name in NAMES}
    store = SeriesStore(retention=60)
    for c in range(draw(st.integers(1, 3))):
        batch, seen = Batch(), set()
        for _ in range(draw(st.integers(0, 12))):
            fam = families[draw(st.sampled_from(NAMES))]
            labels = tuple(draw(label_text) for _ in fam.label_names)
            if (fam.name, labels) in seen:
                continue
            seen.add((fam.name, labels))
            if fam.type is MetricType.COUNTER:
                batch.counter(fam, draw(st.integers(0, 2**64 - 1)), *labels)
            else:
                batch.gauge(fam, draw(doubles), *labels)
        store.ingest(f"c{c}", batch, mono=0.0)
    return store


@pytest.mark.parametrize("openmetrics", [False, True])
@settings(max_examples=60, deadline=None)
@given(store=stores())
def test_generated_stores_render_the_same_bytes(cy, store, openmetrics):
    with use_kernels(expo_py):
        want = render(store, openmetrics)
    with use_kernels(cy):
        assert render(store, openmetrics) == want
    text = want.decode()
    if openmetrics:
        assert text.endswith("# EOF\n")
        list(om_parse(text))  # the strict OpenMetrics parser takes it


def om_parsed(text: str):
    return sorted((f.name, f.type, f.documentation, s.name, tuple(sorted(s.labels.items())), repr(s.value))
                  for f in om_parse(text) for s in f.samples)


def test_openmetrics_is_what_prometheus_client_writes(impl):
    store = store_with_tricky_values()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference(store))
    with use_kernels(impl):
        ours = render(store, openmetrics=True).decode()
    assert om_parsed(ours) == om_parsed(om_generate_latest(registry).decode())
    assert ours.endswith("\n# EOF\n")
    # counters are named without _total in HELP/TYPE; HELP escapes quotes there
    assert "# TYPE node_network_receive_bytes_total" not in ours
    assert "# TYPE node_network_receive_bytes counter\n" in ours
    assert '# HELP node_network_receive_bytes Bytes received \\"on the wire\\"' in ours
    assert 'node_network_receive_bytes_total{device="tap\\"1\\\\x",netns=""} 9.223372036854776e+18' in ours


def test_a_large_block_streamed_family_by_family_gives_the_same_bytes(monkeypatch):
    from agent import exposition_render as exposition

    def store_of(n):
        store = SeriesStore(retention=60)
        netdev(store, 1, n)  # above STREAM_ABOVE: streamed
        gone = Batch()  # a family with no value anywhere is left out
        for i in range(n):
            gone.gauge(TEMP2, math.nan, f"s{i}")
        gone.gauge(TEMP, 1.5)
        store.ingest("gone", gone, mono=0.0)
        again = Batch()  # the same family in a later block: the first block's wins
        again.counter(RX, 7, "late")
        store.ingest("net2", again, mono=0.0)
        return store

    n = exposition.STREAM_ABOVE + 50

    def bodies():
        renderer = Renderer(store_of(n))
        out = []
        for openmetrics in (False, True):
            for gz in (True, False):
                body = renderer.acquire(openmetrics, gzip=gz)
                out.append(gzip.decompress(body.view(True)) if gz else bytes(body.view()))
                renderer.release(body)
        return out, renderer
    streamed, renderer = bodies()
    assert any(t.streamed for t in renderer._texts.values())
    monkeypatch.setattr(exposition, "STREAM_ABOVE", 10**9)
    kept, renderer = bodies()
    assert not any(t.streamed for t in renderer._texts.values())
    assert streamed == kept
    assert b"temp2_celsius" not in kept[1] and b'device="late"' not in kept[1]
    assert kept[1] == kept[0] and kept[1].count(b"\n") > n


@pytest.mark.parametrize("bad", ["fam_start", "order", "prefix_off", "header_off", "out", "spans"])
def test_malformed_layouts_are_refused_before_writing(impl, bad):
    args = {"values": array("d", [1.0, 2.0]), "order": array("q", [0, 1]),
            "fam_start": array("q", [0, 2]), "prefixes": b"a b ", "prefix_off": array("q", [0, 2, 4]),
            "headers": b"#\n", "header_off": array("q", [0, 2]), "out": bytearray(100),
            "spans": array("q", [0, 0])}
    args[bad] = {"fam_start": array("q", [0, 3]), "order": array("q", [0, 2]),
                 "prefix_off": array("q", [0, 5, 4]), "header_off": array("q", [0, 3]),
                 "out": bytearray(10), "spans": array("q", [0])}[bad]
    with pytest.raises(ValueError):
        impl.render_families(*args.values())
    if bad != "out":
        assert args["out"] == bytearray(100)


RX = FamilyDesc("rx_bytes_total", MetricType.COUNTER, "rx", "", ("device",))
TEMP = FamilyDesc("temp_celsius", MetricType.GAUGE, "t")
TEMP2 = FamilyDesc("temp2_celsius", MetricType.GAUGE, "t", "", ("sensor",))


def netdev(store: SeriesStore, t: int, n: int = 50) -> None:
    b = Batch()
    for i in range(n):
        b.counter(RX, t * 1000 + i, f"tap{i}")
    store.ingest("net", b, mono=float(t))


def test_one_render_per_collection_shared_by_concurrent_scrapers():
    store = SeriesStore(retention=60)
    netdev(store, 1)
    slow = Batch()
    slow.gauge(TEMP, 40.5)
    store.ingest("slow", slow, mono=0.0)
    calls, kernels = [], core.expo

    class Counting:
        render_bound = staticmethod(kernels.render_bound)

        @staticmethod
        def render_families(values, *args):
            calls.append(len(values))
            return kernels.render_families(values, *args)

    renderer = Renderer(store)
    with use_kernels(Counting):
        bodies, start = [], threading.Barrier(8)

        def scrape():
            start.wait()
            body = renderer.acquire(gzip=True)
            bodies.append(gzip.decompress(body.view(gzip=True)))
            renderer.release(body)
        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert renderer.renders == 1 and sorted(calls) == [1, 50]  # each block once
        assert len(set(bodies)) == 1
        body = renderer.acquire(openmetrics=True)  # the other format: the same lines, its headers
        renderer.release(body)
        assert renderer.renders == 2 and sorted(calls) == [1, 50]
        netdev(store, 2)  # only the netdev block changed: only it is formatted again
        body = renderer.acquire()
        renderer.release(body)
        assert renderer.renders == 3 and sorted(calls) == [1, 50, 50]
        assert b'rx_bytes_total{device="tap3"} 2003.0\n' in bytes(body.view())


def test_values_are_formatted_outside_the_block_lock():
    store = SeriesStore(retention=60)
    netdev(store, 1)
    block = store.blocks()[0]
    held, kernels = [], core.expo

    class Watching:
        render_bound = staticmethod(core.expo.render_bound)

        @staticmethod
        def render_families(*args):
            held.append(block.lock.locked())
            return kernels.render_families(*args)

    with use_kernels(Watching):
        render(store)
    assert held == [False]


def test_buffers_are_reused_and_a_held_body_is_never_overwritten():
    store = SeriesStore(retention=60)
    renderer = Renderer(store)
    buffers = set()
    for t in range(1, 30):
        netdev(store, t)
        body = renderer.acquire(gzip=True)
        buffers.add(id(body.buf))
        buffers.add(id(body.gz))
        renderer.release(body)
    assert len(buffers) <= 4  # two bodies (the current one and a spare), each text + gzip
    assert len(body.buf) == 0  # gzip only: the plain text was never assembled
    held = renderer.acquire()  # a slow scraper still sending
    before = bytes(held.view())
    for t in range(30, 35):
        netdev(store, t)
        other = renderer.acquire()
        assert other is not held
        renderer.release(other)
    assert bytes(held.view()) == before
    renderer.release(held)


def test_negotiation():
    prometheus = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert wants_openmetrics(prometheus)
    assert not wants_openmetrics("") and not wants_openmetrics("text/plain")
    assert not wants_openmetrics("application/openmetrics-text;q=0.4,text/plain")
    assert not wants_openmetrics("application/openmetrics-text;q=0")
    assert accepts_gzip("gzip") and accepts_gzip("deflate, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("identity") and not accepts_gzip("")


def test_server_serves_both_formats_and_gzip():
    store = store_with_tricky_values()
    server = MetricsServer("127.0.0.1", 0, store)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        def get(**headers):
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
                return r.headers, r.read()
        head, text = get()
        assert head["Content-Type"].startswith("text/plain; version=0.0.4") and text == render(store)
        head, om = get(Accept="application/openmetrics-text; version=1.0.0")
        assert head["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        assert om == render(store, openmetrics=True)
        head, packed = get(**{"Accept-Encoding": "gzip"})
        assert head["Content-Encoding"] == "gzip" and gzip.decompress(packed) == text
        assert server.renderer.renders == 2  # text once, OpenMetrics once: gzip reused the text
    finally:
        server.close()
