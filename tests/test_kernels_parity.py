"""The aggregation kernels: hand-computed cases on both implementations, the
Cython module bit for bit against its pure-Python twin on random input, and
the Cython module's refusal of malformed input.

The Cython cases skip when the extension is not built, and fail instead when
``HOSTAGENT_REQUIRE_EXTENSIONS=1`` (CI sets it so a broken build cannot pass
as a skip).
"""
from __future__ import annotations

import math
import struct
from array import array

import pytest
from tests.helpers import load_impl
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core import kernels_py
from agent.gen.hostagent.v1 import telemetry_pb2 as pb

NAN = math.nan
INF = math.inf
U64 = 2**64 - 1
WIDTH = kernels_py.STATS_WIDTH


def load(name: str):
    return load_impl(kernels_py, None if name == "python" else "_kernels")


@pytest.fixture(params=["python", "cython"])
def k(request):
    return load(request.param)


@pytest.fixture(scope="module")
def ck():
    """The Cython module alone: for parity against the twin and validation."""
    return load("cython")


def ingest(mod, kinds, raw, prev, has_prev, dt, value=None, scales=None,
           cap=3, col=0, hist=None):
    """Run ``ingest_column`` on fresh arrays; return (resets, state arrays)."""
    n = len(kinds)
    s = {"prev_raw": array("Q", prev), "has_prev": array("B", has_prev),
         "hist": array("d", [NAN] * (n * cap) if hist is None else hist),
         "out_value": array("d", [-1.0] * n), "out_rate": array("d", [-1.0] * n)}
    resets = mod.ingest_column(
        array("B", kinds), array("Q", raw), array("d", value or [0.0] * n),
        array("d", scales or [1.0] * n), s["prev_raw"], s["has_prev"], dt,
        s["hist"], cap, col, s["out_value"], s["out_rate"])
    return resets, s


def stats(mod, hist, cap, n, ts, head, count, t_from):
    out = array("d", [-1.0] * (n * WIDTH))
    mod.window_stats(array("d", hist), cap, n, array("d", ts), head, count, t_from, out)
    return out


def same(a, b) -> bool:
    """Equal, NaN equal to NaN."""
    return all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


# --- (a) hand-computed expectations, on both implementations ---------------

def test_gauge_passes_through(k):
    resets, s = ingest(k, [0], [99], [7], [0], 5.0, value=[3.5], col=1)
    assert resets == 0
    assert s["out_value"][0] == 3.5 and math.isnan(s["out_rate"][0])
    assert same(s["hist"], [NAN, 3.5, NAN])
    assert (s["prev_raw"][0], s["has_prev"][0]) == (7, 0)  # gauges keep no counter state


def test_counter_rate_scaled_per_second(k):
    resets, s = ingest(k, [2], [1600], [1000], [1], 2.0, scales=[8.0], col=2)
    assert resets == 0
    assert s["out_value"][0] == 12800.0
    assert s["out_rate"][0] == 2400.0  # 600 bytes * 8 bits / 2 s
    assert same(s["hist"], [NAN, NAN, 2400.0])
    assert (s["prev_raw"][0], s["has_prev"][0]) == (1600, 1)


def test_first_sample_has_no_rate(k):
    resets, s = ingest(k, [2, 1], [500, 9], [0, 0], [0, 0], 5.0)
    assert resets == 0
    assert list(s["out_value"]) == [500.0, 9.0]
    assert all(math.isnan(r) for r in s["out_rate"])
    assert list(s["prev_raw"]) == [500, 9] and list(s["has_prev"]) == [1, 1]


@pytest.mark.parametrize("kind, prev, cur, delta, resets", [
    (1, 2**32 - 100, 50, 150, 0),           # 32-bit wrap
    (2, 2**64 - 10, 5, 15, 0),              # 64-bit wrap
    (2, 10**12, 5, 5, 1),                   # reset: restarted from zero
    (1, 2**31 + 10, 10, 2**31, 0),          # a wrap of exactly half the range
    (1, 2**31 + 9, 10, 10, 1),              # one less is a reset
    (2, 2**63 + 10, 10, 2**63, 0),
    (2, 2**63 + 9, 10, 10, 1),
    (1, 2**40, 7, 7, 1),                    # a "32-bit" counter above 2**32 went down
    (1, 2**40, 2**40 - 2**31, 2**40 - 2**31, 1),
    (2, 0, 2**63 + 1025, 2**63 + 2048, 0),  # float(delta) rounds to nearest
    (2, 0, U64, 2**64, 0),
])
def test_counter_delta(k, kind, prev, cur, delta, resets):
    got, s = ingest(k, [kind], [cur], [prev], [1], 1.0)
    assert got == resets
    assert s["out_rate"][0] == float(delta)
    assert s["prev_raw"][0] == cur


@pytest.mark.parametrize("dt", [0.0, -1.0, NAN])
def test_no_rate_without_positive_dt(k, dt):
    resets, s = ingest(k, [2], [5], [10**12], [1], dt)
    assert resets == 0  # no rate, so no reset is counted either
    assert math.isnan(s["out_rate"][0]) and math.isnan(s["hist"][0])
    assert s["prev_raw"][0] == 5


# A wrapped ring (cap 5, head 2): chronological slots 2, 3, 4, 0, 1.
RING_TS = [40.0, 50.0, 10.0, 20.0, 30.0]
RING_HIST = [3.0, 2.0, 4.0, NAN, 1.0,  # series 0, oldest first: 4 NaN 1 3 2
             NAN, NAN, NAN, NAN, NAN]  # series 1: nothing


def test_window_stats_wrapped_ring_skips_nan(k):
    out = stats(k, RING_HIST, 5, 2, RING_TS, 2, 5, -INF)
    mn, mx, mean, last, p50, p90, p99, count = out[:WIDTH]
    assert (mn, mx, mean, last, count) == (1.0, 4.0, 2.5, 2.0, 4.0)
    assert (p50, p90, p99) == pytest.approx((2.5, 3.7, 3.97))
    assert same(out[WIDTH:], [NAN] * 7 + [0.0])


def test_window_stats_t_from_drops_old_slots(k):
    out = stats(k, RING_HIST, 5, 2, RING_TS, 2, 5, 30.0)  # slots 4, 0, 1: 1 3 2
    mn, mx, mean, last, p50, p90, p99, count = out[:WIDTH]
    assert (mn, mx, mean, last, p50, count) == (1.0, 3.0, 2.0, 2.0, 2.0, 3.0)
    assert (p90, p99) == pytest.approx((2.8, 2.98))


def test_window_stats_partial_ring(k):
    out = stats(k, RING_HIST, 5, 2, RING_TS, 2, 2, -INF)  # slots 0, 1 only
    mn, mx, mean, last, p50, p90, p99, count = out[:WIDTH]
    assert (mn, mx, mean, last, p50, count) == (2.0, 3.0, 2.5, 2.0, 2.5, 2.0)
    assert (p90, p99) == pytest.approx((2.9, 2.99))


@pytest.mark.parametrize("t_from, count", [(100.0, 5), (-INF, 0)])
def test_window_stats_empty_window(k, t_from, count):
    out = stats(k, RING_HIST, 5, 2, RING_TS, 2, count, t_from)
    assert same(out, ([NAN] * 7 + [0.0]) * 2)


def test_window_stats_signed_zeros_keep_chronological_order(k):
    # list.sort is stable and -0.0 == 0.0: the first zero seen is the minimum.
    out = stats(k, [0.0, -0.0, -0.0, 0.0], 4, 1, [1.0] * 4, 0, 4, -INF)
    assert math.copysign(1.0, out[0]) == 1.0 and math.copysign(1.0, out[1]) == 1.0
    out = stats(k, [-0.0, 0.0, 0.0, 0.0], 4, 1, [1.0] * 4, 0, 4, -INF)
    assert math.copysign(1.0, out[0]) == -1.0


def test_read_only_inputs_accepted(k):
    def ro(code, values):
        return memoryview(array(code, values).tobytes()).cast(code)

    prev, has_prev = array("Q", [10]), array("B", [1])
    hist, out_v, out_r = array("d", [NAN]), array("d", [0.0]), array("d", [0.0])
    k.ingest_column(ro("B", [2]), ro("Q", [40]), ro("d", [0.0]), ro("d", [1.0]), prev,
                    has_prev, 2.0, hist, 1, 0, out_v, out_r)
    assert out_r[0] == 15.0
    out = array("d", [0.0] * WIDTH)
    k.window_stats(ro("d", [1.0]), 1, 1, ro("d", [0.0]), 0, 1, -INF, out)
    assert list(out) == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def encode(mod, blobs, idx, value, rate, stats=None, time_field=b""):
    return mod.encode_samples(blobs, array("q", idx), array("d", value), array("d", rate),
                              None if stats is None else array("d", stats), time_field)


def labels_blob(**labels) -> bytes:
    """``Sample.labels`` entries (field 1, map<string, string>)."""
    out = b""
    for name, val in labels.items():
        entry = pb.Sample.LabelsEntry(key=name, value=val).SerializeToString()
        out += b"\x0a" + kernels_py.varint(len(entry)) + entry
    return out


def test_encode_samples_decodes_to_the_sample_messages(k):
    blobs = [labels_blob(device="eth0"), labels_blob(device="x" * 200, netns="ns-é"), b""]
    when = pb.Sample(time={"seconds": 1_700_000_000, "nanos": 5}).SerializeToString()
    stats = [1.0, 4.0, 2.5, 2.0, 2.5, 3.7, 3.97, 4.0,  # series 0
             NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0.0,  # series 1: an empty window
             -0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 300.0]
    wire = encode(k, blobs, [1, 0, 2, 0], [12800.0, -0.0, INF], [2400.0, NAN, NAN],
                  stats, when)
    assert wire == encode(kernels_py, blobs, [1, 0, 2, 0], [12800.0, -0.0, INF],
                          [2400.0, NAN, NAN], stats, when)
    family = pb.MetricFamily.FromString(wire)
    assert not family.HasField("info")
    s1, s0, s2, again = family.samples
    assert dict(s1.labels) == {"device": "x" * 200, "netns": "ns-é"}
    assert s1.value == -0.0 and math.copysign(1.0, s1.value) == -1.0
    assert not s1.HasField("rate")  # NaN rates are left out
    assert (s1.stats.count, math.isnan(s1.stats.min), math.isnan(s1.stats.p99)) == (0, True, True)
    assert dict(s0.labels) == {"device": "eth0"} and s0.value == 12800.0
    assert s0.HasField("rate") and s0.rate == 2400.0
    assert (s0.time.seconds, s0.time.nanos) == (1_700_000_000, 5)
    assert [s0.stats.min, s0.stats.max, s0.stats.mean, s0.stats.last, s0.stats.p50,
            s0.stats.p90, s0.stats.p99, s0.stats.count] == stats[:WIDTH]
    assert not s2.labels and s2.value == INF and s2.stats.count == 300
    assert math.copysign(1.0, s2.stats.min) == -1.0
    assert again == s0
    # Without stats the field is absent; no series, no bytes.
    bare = pb.MetricFamily.FromString(encode(k, blobs, [0], [1.5, 0, 0], [NAN, 0, 0]))
    assert not bare.samples[0].HasField("stats") and not bare.samples[0].HasField("time")
    assert encode(k, blobs, [], [1.0], [1.0], stats) == b""


@pytest.mark.parametrize("count, want", [(0.0, b"\x00"), (127.0, b"\x7f"), (128.0, b"\x80\x01"),
                                         (179.9, b"\xb3\x01"), (-0.5, b"\x00"),
                                         (2.0**63, b"\x80" * 9 + b"\x01")])
def test_encode_samples_count_varint(k, count, want):
    wire = encode(k, [b""], [0], [0.0], [NAN], [0.0] * 7 + [count])
    assert wire.endswith(b"\x40" + want)  # count truncates toward zero, as int() does


# --- (b) Cython bit for bit against the twin --------------------------------

BOUNDARIES = [0, 2**31, 2**32, 2**53, 2**63, 2**64]
u64 = st.one_of(
    st.integers(0, U64),
    st.builds(lambda b, d: min(max(b + d, 0), U64),
              st.sampled_from(BOUNDARIES), st.integers(-2100, 2100)))
# (raw, prev) pairs: independent, or apart by about a wrap threshold.
raw_prev = st.one_of(
    st.tuples(u64, u64),
    st.builds(lambda cur, d, e: (cur, (cur + d + e) % 2**64), st.one_of(u64, st.integers(0, 2**31)),
              st.sampled_from([2**31, 2**32, 2**63]), st.integers(-3, 3)))
anyfloat = st.floats(allow_nan=True, allow_infinity=True)
stat_value = st.one_of(anyfloat, st.sampled_from([0.0, -0.0, NAN, 1.0, -1.0, 2.0, INF, -INF]),
                       st.floats(-10, 10, width=16))
ts_value = st.one_of(st.floats(-100, 100), st.sampled_from([-INF, NAN, 0.0]))


@st.composite
def ingest_cases(draw):
    n = draw(st.integers(0, 10))
    cap = draw(st.integers(1, 5))
    col = draw(st.integers(0, cap - 1))
    cols = lambda s: draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    kinds = cols(st.sampled_from([0, 1, 2, 1, 2, 7]))  # the twin takes 7 for 64 bits
    dt = draw(st.one_of(st.sampled_from([1.0, 5.0, 0.25, 0.0, -0.0]), st.floats(1e-3, 1e3),
                        anyfloat))
    pairs = cols(raw_prev)
    return dict(kinds=kinds, raw=[r for r, _ in pairs], prev=[p for _, p in pairs],
                has_prev=cols(st.integers(0, 3)),
                dt=dt, value=cols(anyfloat),
                scales=cols(st.one_of(anyfloat, st.sampled_from([1.0, 8.0, 1e-3]))),
                cap=cap, col=col, hist=draw(st.lists(anyfloat, min_size=n * cap,
                                                     max_size=n * cap)))


@settings(max_examples=400, deadline=None)
@given(case=ingest_cases())
def test_ingest_bit_identical(ck, case):
    want_resets, want = ingest(kernels_py, **case)
    got_resets, got = ingest(ck, **case)
    assert got_resets == want_resets
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), name


@st.composite
def window_cases(draw):
    cap = draw(st.integers(1, 40))
    n = draw(st.integers(0, 4))
    return dict(hist=draw(st.lists(stat_value, min_size=n * cap, max_size=n * cap)),
                cap=cap, n=n, ts=draw(st.lists(ts_value, min_size=cap, max_size=cap)),
                head=draw(st.integers(-2 * cap, 3 * cap)), count=draw(st.integers(0, cap)),
                t_from=draw(st.one_of(ts_value, st.just(INF))))


@settings(max_examples=400, deadline=None)
@given(case=window_cases())
def test_window_stats_bit_identical(ck, case):
    want = stats(kernels_py, **case)
    got = stats(ck, **case)
    assert got.tobytes() == want.tobytes()


@settings(max_examples=60, deadline=None)
@given(vals=st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, NAN]), min_size=180,
                     max_size=180))
def test_window_stats_full_history_of_ties(ck, vals):
    case = dict(hist=vals, cap=180, n=1, ts=[float(i) for i in range(180)],
                head=37, count=180, t_from=-INF)
    assert stats(ck, **case).tobytes() == stats(kernels_py, **case).tobytes()


@st.composite
def many_ties_cases(draw):
    """Longer windows of few distinct values, runs and ramps: every path of
    the Cython partial sort (partitions, equal keys, networks)."""
    cap = draw(st.integers(1, 300))
    n = draw(st.integers(1, 3))
    pool = draw(st.lists(stat_value, min_size=1, max_size=6))
    hist = []
    for _ in range(n):
        vals = draw(st.lists(st.sampled_from(pool), min_size=cap, max_size=cap))
        shape = draw(st.sampled_from(["as drawn", "ascending", "descending", "ramp"]))
        if shape == "ramp":
            vals = [float(i % 13) - 6.0 for i in range(cap)]
        elif shape != "as drawn":
            # NaN last; -0.0 and 0.0 keep their order (sorted is stable).
            vals.sort(key=lambda v: (v != v, v if v == v else 0.0), reverse=shape == "descending")
        hist += vals
    return dict(hist=hist, cap=cap, n=n, ts=[float(i) for i in range(cap)],
                head=draw(st.integers(0, cap - 1)), count=draw(st.integers(0, cap)),
                t_from=draw(st.sampled_from([-INF, 0.0, cap / 2])))


@pytest.mark.parametrize("depth_factor", [2, 1, 0])  # 0: every long range heap-sorted
@settings(max_examples=150, deadline=None)
@given(case=many_ties_cases())
def test_window_stats_long_windows_bit_identical(ck, depth_factor, case):
    previous = ck._set_sort_depth_factor(depth_factor)
    try:
        got = stats(ck, **case)
    finally:
        ck._set_sort_depth_factor(previous)
    assert got.tobytes() == stats(kernels_py, **case).tobytes()


def from_bits(b: int) -> float:
    return struct.unpack("<d", b.to_bytes(8, "little"))[0]


# Doubles of every kind: NaNs with any payload and sign, subnormals, -0.0.
wire_double = st.one_of(anyfloat, st.builds(from_bits, st.integers(0, 2**64 - 1)),
                        st.sampled_from([-0.0, 5e-324, -5e-324, NAN, -NAN, INF, -INF]))
# Counts window_stats could write and the twin's int() truncates; all < 2**64.
count_value = st.one_of(st.integers(0, 400).map(float), st.floats(0, 2.0**64, exclude_max=True),
                        st.sampled_from([127.0, 128.0, 16383.0, 16384.0, 2.0**32, 2.0**63,
                                         2.0**64 - 2048, -0.0, -0.5, 0.999, 179.9]))
# Label blobs whose sample length needs 1, 2 or 3 varint bytes.
blob = st.one_of(st.binary(max_size=40), st.binary(min_size=100, max_size=300),
                 st.builds(lambda b, size: (b * size)[:size], st.binary(min_size=1, max_size=8),
                           st.sampled_from([16280, 16300, 16383, 16384, 20000])))


@st.composite
def encode_cases(draw):
    n = draw(st.integers(0, 6))
    stats = None
    if draw(st.booleans()):
        stats = []
        for _ in range(n):
            stats += draw(st.lists(wire_double, min_size=7, max_size=7)) + [draw(count_value)]
    return dict(blobs=draw(st.lists(blob, min_size=n, max_size=n + 2)),
                idx=draw(st.lists(st.integers(0, n - 1), max_size=3 * n)) if n else [],
                value=draw(st.lists(wire_double, min_size=n, max_size=n)),
                rate=draw(st.lists(st.one_of(wire_double, st.just(NAN)), min_size=n,
                                   max_size=n + 2)),
                stats=stats,
                time_field=draw(st.one_of(st.binary(max_size=20),
                                          st.binary(min_size=128, max_size=200))))


@settings(max_examples=300, deadline=None)
@given(case=encode_cases())
def test_encode_samples_bit_identical(ck, case):
    assert encode(ck, **case) == encode(kernels_py, **case)


def test_encode_samples_accepts_any_int64_buffer_and_sequence(ck):
    blobs, value, rate = [b"a", b"bc"], array("d", [1.0, 2.0]), array("d", [NAN, 3.0])
    want = kernels_py.encode_samples(blobs, [1, 0, 1], value, rate, None, b"")
    assert ck.encode_samples(blobs, array("q", [1, 0, 1]), value, rate, None, b"") == want
    assert ck.encode_samples(tuple(blobs), array("l", [1, 0, 1]), value, rate, None, b"") == want
    ro = memoryview(array("q", [1, 0, 1]).tobytes()).cast("q")
    assert ck.encode_samples(blobs, ro, memoryview(value), rate, None, b"") == want


# --- (c) malformed input is refused, never read out of bounds ----------------

def ingest_args(n=3, cap=4, col=0, **short):
    a = {"kinds": array("B", [2] * n), "raw": array("Q", [1] * n),
         "value": array("d", [0.0] * n), "scales": array("d", [1.0] * n),
         "prev_raw": array("Q", [0] * n), "has_prev": array("B", [1] * n), "dt": 1.0,
         "hist": array("d", [0.0] * (n * cap)), "cap": cap, "col": col,
         "out_value": array("d", [0.0] * n), "out_rate": array("d", [0.0] * n)}
    for name, drop in short.items():
        a[name] = a[name][:len(a[name]) - drop]
    return a


@pytest.mark.parametrize("args", [
    *[pytest.param(ingest_args(**{name: 1}), id=f"short-{name}") for name in
      ("raw", "value", "scales", "prev_raw", "has_prev", "hist", "out_value", "out_rate")],
    pytest.param(ingest_args(col=4), id="col-eq-cap"),
    pytest.param(ingest_args(col=-1), id="col-negative"),
    pytest.param(ingest_args(cap=0), id="cap-0"),
    pytest.param(ingest_args(cap=-2, n=0), id="cap-negative"),
    pytest.param({**ingest_args(), "raw": array("d", [1.0] * 3)}, id="wrong-typecode"),
])
def test_ingest_rejects_malformed(ck, args):
    before = {name: bytes(v) for name, v in args.items() if isinstance(v, array)}
    with pytest.raises(ValueError):
        ck.ingest_column(**args)
    assert {name: bytes(v) for name, v in args.items() if isinstance(v, array)} == before


def window_args(n=2, cap=4, count=4, hist=0, ts=0, out=0):
    return dict(hist=array("d", [1.0] * (n * cap - hist)), cap=cap, n=n,
                ts=array("d", [0.0] * (cap - ts)), head=1, count=count, t_from=-INF,
                out=array("d", [0.0] * (n * WIDTH - out)))


@pytest.mark.parametrize("args", [
    pytest.param(window_args(hist=1), id="short-hist"),
    pytest.param(window_args(ts=1), id="short-ts"),
    pytest.param(window_args(out=1), id="short-out"),
    pytest.param(window_args(cap=0, count=0), id="cap-0"),
    pytest.param(window_args(count=5), id="count-over-cap"),
    pytest.param(window_args(count=-1), id="count-negative"),
    pytest.param({**window_args(), "n": -1}, id="n-negative"),
])
def test_window_stats_rejects_malformed(ck, args):
    with pytest.raises(ValueError):
        ck.window_stats(**args)
    assert set(args["out"]) <= {0.0}


def encode_args(n=3, **change):
    a = dict(label_blobs=[b"\x0a\x00"] * n, idx=array("q", range(n)),
             value=array("d", [1.0] * n), rate=array("d", [2.0] * n),
             stats=array("d", ([0.0] * 7 + [3.0]) * n), time_field=b"\x22\x00")
    a.update(change)
    return a


def with_count(count, series=1, n=3):
    s = array("d", ([0.0] * 7 + [3.0]) * n)
    s[series * WIDTH + 7] = count
    return s


@pytest.mark.parametrize("args, error", [
    pytest.param(encode_args(idx=array("q", [0, 3])), IndexError, id="idx-eq-len"),
    pytest.param(encode_args(idx=array("q", [2, -1])), IndexError, id="idx-negative"),
    pytest.param(encode_args(idx=array("q", [2**62])), IndexError, id="idx-huge"),
    pytest.param(encode_args(idx=array("i", [0])), ValueError, id="idx-int32"),
    pytest.param(encode_args(idx=[0]), TypeError, id="idx-list"),
    pytest.param(encode_args(label_blobs=[b"", "x", b""]), TypeError, id="blob-str"),
    pytest.param(encode_args(label_blobs=[b"", bytearray(b"x"), b""]), TypeError,
                 id="blob-bytearray"),
    pytest.param(encode_args(label_blobs=[b"", b""]), ValueError, id="short-blobs"),
    pytest.param(encode_args(rate=array("d", [2.0] * 2)), ValueError, id="short-rate"),
    pytest.param(encode_args(stats=array("d", [0.0] * (3 * WIDTH - 1))), ValueError,
                 id="short-stats"),
    pytest.param(encode_args(stats=array("f", [0.0] * (3 * WIDTH))), ValueError,
                 id="stats-float32"),
    pytest.param(encode_args(time_field="x"), TypeError, id="time-str"),
    pytest.param(encode_args(stats=with_count(NAN)), ValueError, id="count-nan"),
    pytest.param(encode_args(stats=with_count(-1.0)), ValueError, id="count-minus-1"),
    pytest.param(encode_args(stats=with_count(INF)), OverflowError, id="count-inf"),
    pytest.param(encode_args(stats=with_count(-INF)), OverflowError, id="count-minus-inf"),
    pytest.param(encode_args(stats=with_count(2.0**64)), OverflowError, id="count-2-64"),
])
def test_encode_samples_rejects_malformed(ck, args, error):
    with pytest.raises(error):
        ck.encode_samples(**args)


@pytest.mark.parametrize("count, error", [(NAN, ValueError), (-1.0, ValueError),
                                          (-7.5, ValueError), (INF, OverflowError)])
def test_encode_samples_bad_count_fails_like_the_twin(ck, count, error):
    args = encode_args(stats=with_count(count))
    for mod in (kernels_py, ck):
        with pytest.raises(error):
            mod.encode_samples(**args)
    # A count the selected series do not use is not looked at, by either.
    args["idx"] = array("q", [0, 2])
    assert ck.encode_samples(**args) == kernels_py.encode_samples(**args)
