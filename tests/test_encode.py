"""The wire bytes GetMetrics and SAMPLE streams send decode to exactly the
messages the reference conversion (agent.api.convert) builds."""
import math
import os
import time
from array import array

import pytest

from agent import core
from agent.api import convert, encode
from agent.gen.hostagent.v1 import telemetry_pb2 as pb
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.query import MatchOp, MetricsQuery, compile_selector
from agent.telemetry.store import SeriesStore

RX = FamilyDesc("node_network_receive_bytes_total", MetricType.COUNTER, "Received", "bytes", ("device",))
UP = FamilyDesc("node_network_up", MetricType.GAUGE, "Link up", "", ("device", "netns"))
LOAD = FamilyDesc("node_load1", MetricType.GAUGE, "Load")


@pytest.fixture(scope="module")
def query():
    store = SeriesStore(retention=120)
    store.configure("net", 1.0)
    store.configure("load", 1.0)
    now = time.monotonic()
    for t in range(60):
        b = Batch()
        for i in range(30):
            if t > 40 and i == 7:
                continue  # a tap that went away
            b.counter(RX, t * (i + 1) * 1500 + (2**40 if i == 3 else 0), f"tap{i}")
            b.gauge(UP, math.nan if i == 5 else float(t % 2), f"tap{i}", "ns-é")  # non-ASCII label
        store.ingest("net", b, wall=1.7e9 + t + 0.123456789, mono=now - 60 + t)
        g = Batch()
        g.gauge(LOAD, 0.0 if t % 3 else 1.25)
        store.ingest("load", g, wall=1.7e9 + t, mono=now - 60 + t)
    return MetricsQuery(store)


def canonical(msg) -> bytes:
    return msg.SerializeToString(deterministic=True)


@pytest.mark.parametrize("names, matchers, window", [
    ([], [], None),
    ([], [], 30.0),
    (["node_network_*"], [("device", MatchOp.REGEX, "tap[0-9]")], 10.0),
    (["node_load1"], [], 1e-3),  # a window with no samples: NaN stats, count 0
    (["node_network_up"], [("netns", MatchOp.EQUAL, "ns-é")], None),
    (["none_*"], [], None),
])
def test_encoded_response_equals_reference(query, names, matchers, window):
    selector = compile_selector(names, matchers)
    now = time.time()
    fast = pb.GetMetricsResponse.FromString(
        encode.get_metrics_response(encode.encode_families(query.store, selector, window), now))
    ref = pb.GetMetricsResponse(families=convert.families(query.snapshot(selector, window)),
                                time=convert.timestamp(now))
    assert canonical(fast) == canonical(ref)
    if names != ["none_*"]:
        assert fast.families and all(f.samples for f in fast.families)


def test_stream_update_fields(query):
    fams = encode.encode_families(query.store, compile_selector(["node_load1"], []), None)
    update = pb.StreamMetricsResponse.FromString(encode.stream_update(fams, 1.7e9, 42))
    assert update.sequence == 42 and update.full and not update.heartbeat
    assert update.families[0].info.name == "node_load1"
    assert update.time.seconds == 1_700_000_000


def cython_encode_samples():
    """The extension's kernel; skips when it is missing, and fails instead
    when ``HOSTAGENT_REQUIRE_EXTENSIONS=1`` (as the kernel parity tests do)."""
    try:
        from agent.core import _kernels
    except ImportError as exc:
        reason = f"Cython kernels not built ({exc}); run: python setup.py build_ext --inplace"
    else:
        if hasattr(_kernels, "encode_samples"):
            return _kernels.encode_samples
        reason = "extension built without encode_samples; rebuild it"
    if os.environ.get("HOSTAGENT_REQUIRE_EXTENSIONS", "") not in ("", "0"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.parametrize("impl", ["python", "cython"])
def test_encode_samples_kernels_agree(query, impl):
    if impl == "cython":
        kernel = cython_encode_samples()
    else:
        kernel = core.kernels_py.encode_samples
    block = query.store.blocks()[1]
    with block.lock:
        blobs = encode._label_blobs(block)
        stats = block.window_stats(30.0)
        when = encode.time_field(0x22, block.last_wall)
        idx = array("q", range(len(block.keys)))
        got = kernel(blobs, idx, block.value, block.rate, stats, when)
        want = core.kernels_py.encode_samples(blobs, idx, block.value, block.rate, stats, when)
        assert got == want
        assert kernel(blobs, idx, block.value, block.rate, None, when) == \
            core.kernels_py.encode_samples(blobs, idx, block.value, block.rate, None, when)
