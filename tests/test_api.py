"""The gRPC contract, over a real server and real clients on loopback TCP and a
unix socket: health, reflection, selectors, errors, windows, streams, events."""
import os
import stat
import threading
import time

import grpc
import pytest

from tests.helpers import rpc_error as code_and_details
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase)

from agent.api.server import INVENTORY, TELEMETRY, GrpcServer, build_server
from agent.api.streams import StreamGate
from agent.api.telemetry_service import TelemetryService
from agent.api.inventory_service import InventoryService
from agent.gen.hostagent.v1 import telemetry_pb2 as pb, telemetry_pb2_grpc
from agent.telemetry.events import EventBus, Severity
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.query import MetricsQuery
from agent.telemetry.store import SeriesStore

CPU = FamilyDesc("node_cpu_seconds_total", MetricType.COUNTER, "CPU time", "seconds",
                 ("cpu", "mode"), scale=0.01)
TEMP = FamilyDesc("node_hwmon_temp_celsius", MetricType.GAUGE, "Temperature", "celsius",
                  ("chip", "sensor"))


# The daemon binds through agent.security.access (TLS, peer-credential proxy);
# these tests exercise the services alone, on plain listeners.
def bind_tcp(srv: GrpcServer, address: str) -> str:
    """Listen on HOST:PORT (port 0 picks one); return the bound address."""
    port = srv.server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    host = address.rsplit(":", 1)[0]
    bound = f"{host}:{port}"
    srv.addresses.append(bound)
    return bound


def bind_unix(srv: GrpcServer, path: str) -> str:
    """Listen on a unix socket; the directory is created, a stale socket removed.
    The socket is 0660: root and the socket's group (operators) only."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    old = os.umask(0o117)
    try:
        if srv.server.add_insecure_port(f"unix:{path}") == 0:
            raise OSError(f"cannot listen on unix:{path}")
    finally:
        os.umask(old)
    srv.addresses.append(f"unix:{path}")
    return f"unix:{path}"


class Api:
    def __init__(self, tmp_path, stream_limit=8):
        self.store = SeriesStore(retention=600)
        self.store.configure("cpu", 1.0)
        self.store.configure("hwmon", 1.0)
        self.events = EventBus()
        self.gate = StreamGate(stream_limit)
        self.query = MetricsQuery(self.store)
        self.srv = build_server([(TelemetryService(self.query, self.events, self.gate), TELEMETRY),
                                 (InventoryService(None), INVENTORY)], max_workers=16)
        self.tcp = bind_tcp(self.srv, "127.0.0.1:0")
        self.unix = bind_unix(self.srv, str(tmp_path / "grpc.sock"))
        self.srv.server.start()
        self.srv.set_serving(True)
        self.channel = grpc.insecure_channel(self.tcp)
        self.stub = telemetry_pb2_grpc.TelemetryStub(self.channel)

    def feed(self, t: float, temp: float = 40.0, ticks: int = 0):
        b = Batch()
        for cpu in ("0", "1"):
            for mode in ("user", "idle"):
                b.counter(CPU, ticks + (0 if mode == "user" else 1000), cpu, mode)
        self.store.ingest("cpu", b, wall=1.7e9 + t, mono=t)
        g = Batch()
        g.gauge(TEMP, temp, "coretemp", "temp1")
        g.gauge(TEMP, temp + 10, "coretemp", "temp2")
        self.store.ingest("hwmon", g, wall=1.7e9 + t, mono=t)

    def close(self):
        self.channel.close()
        self.gate.close_all()
        self.srv.server.stop(0)


@pytest.fixture
def api(tmp_path):
    a = Api(tmp_path)
    now = time.monotonic()
    for i in range(60):  # one minute of history, the newest sample now
        a.feed(now - 59 + i, temp=40.0 + i % 10, ticks=i * 50)
    yield a
    a.close()


def test_health_and_reflection_on_tcp_and_unix(api):
    for target in (api.tcp, api.unix):
        with grpc.insecure_channel(target) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
            db = ProtoReflectionDescriptorDatabase(ch)
            services = set(db.get_services())
            assert {"hostagent.v1.Telemetry", "hostagent.v1.Inventory", "grpc.health.v1.Health"} <= services
            pool = descriptor_pool.DescriptorPool(db)
            method = pool.FindServiceByName("hostagent.v1.Telemetry").methods_by_name["GetMetrics"]
            assert method.input_type.full_name == "hostagent.v1.GetMetricsRequest"


def test_list_metrics_describes_every_family(api):
    fams = {f.name: f for f in api.stub.ListMetrics(pb.ListMetricsRequest(), timeout=5).families}
    cpu = fams["node_cpu_seconds_total"]
    assert (cpu.type, cpu.unit, list(cpu.label_names), cpu.collector) == (
        pb.METRIC_TYPE_COUNTER, "seconds", ["cpu", "mode"], "cpu")
    assert fams["node_hwmon_temp_celsius"].type == pb.METRIC_TYPE_GAUGE
    only = api.stub.ListMetrics(pb.ListMetricsRequest(names=["node_hwmon_*"]), timeout=5)
    assert [f.name for f in only.families] == ["node_hwmon_temp_celsius"]


def get(api, names=(), matchers=(), window=None):
    req = pb.GetMetricsRequest(selector=pb.MetricSelector(names=list(names), matchers=list(matchers)))
    if window is not None:
        req.window.FromNanoseconds(int(window * 1e9))
    return api.stub.GetMetrics(req, timeout=5)


def test_selectors_names_globs_and_label_matchers(api):
    resp = get(api, ["node_cpu_seconds_total"],
               [pb.LabelMatcher(name="cpu", value="1"),
                pb.LabelMatcher(name="mode", op=pb.MATCH_OP_NOT_EQUAL, value="idle")])
    [fam] = resp.families
    [s] = fam.samples
    assert dict(s.labels) == {"cpu": "1", "mode": "user"}
    assert s.value == pytest.approx(59 * 50 * 0.01)
    assert s.rate == pytest.approx(0.5)  # 50 ticks of 10 ms per second
    resp = get(api, ["node_*"], [pb.LabelMatcher(name="sensor", op=pb.MATCH_OP_REGEX, value="temp[2-9]")])
    assert [(f.info.name, len(f.samples)) for f in resp.families] == [("node_hwmon_temp_celsius", 1)]
    resp = get(api, [], [pb.LabelMatcher(name="cpu", op=pb.MATCH_OP_NOT_REGEX, value=".+")])
    assert [f.info.name for f in resp.families] == ["node_hwmon_temp_celsius"]  # no cpu label
    assert get(api, ["nothing_matches_*"]).families == []


@pytest.mark.parametrize("request_kwargs, field", [
    (dict(names=["no_such_metric"]), "selector.names[0]"),
    (dict(names=["node_cpu_seconds_total", ""]), "selector.names[1]"),
    (dict(names=["bad name"]), "selector.names[0]"),
    (dict(matchers=[pb.LabelMatcher(name="cpu", op=pb.MATCH_OP_REGEX, value="(")]),
     "selector.matchers[0].value"),
    (dict(matchers=[pb.LabelMatcher(name="", value="x")]), "selector.matchers[0].name"),
    (dict(matchers=[pb.LabelMatcher(name="cpu", op=42, value="x")]), "selector.matchers[0].op"),
])
def test_bad_selectors_name_the_field(api, request_kwargs, field):
    code, details = code_and_details(lambda: get(api, **request_kwargs))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field + ":"), details


def test_window_statistics_and_window_limits(api):
    [fam] = get(api, ["node_hwmon_temp_celsius"],
                [pb.LabelMatcher(name="sensor", value="temp1")], window=300).families
    st = fam.samples[0].stats
    assert (st.min, st.max, st.count) == (40.0, 49.0, 60)
    assert st.mean == pytest.approx(44.5) and st.last == 49.0 and st.p50 == pytest.approx(44.5)
    [fam] = get(api, ["node_hwmon_temp_celsius"],
                [pb.LabelMatcher(name="sensor", value="temp1")], window=5.5).families
    assert fam.samples[0].stats.count == 6  # only the last 5.5 s
    code, details = code_and_details(lambda: get(api, window=3600))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("window:")
    req = pb.GetMetricsRequest()
    req.window.seconds = -5
    code, details = code_and_details(lambda: api.stub.GetMetrics(req, timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("window:")


def stream(api, interval, mode=pb.STREAM_MODE_SAMPLE, heartbeat=None, names=("node_hwmon_temp_celsius",)):
    req = pb.StreamMetricsRequest(selector=pb.MetricSelector(names=list(names)), mode=mode)
    req.interval.FromNanoseconds(int(interval * 1e9))
    if heartbeat:
        req.heartbeat.FromNanoseconds(int(heartbeat * 1e9))
    return api.stub.StreamMetrics(req, timeout=30)


def test_stream_sends_first_update_at_once_then_one_per_interval(api):
    t0 = time.monotonic()
    call = stream(api, interval=0.25)
    times, updates = [], []
    for update in call:
        times.append(time.monotonic() - t0)
        updates.append(update)
        if len(updates) == 6:
            break
    call.cancel()
    assert times[0] < 0.5
    assert updates[0].full and updates[0].sequence == 1
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.15 < g < 0.5 for g in gaps), gaps
    assert [u.sequence for u in updates] == [1, 2, 3, 4, 5, 6]
    assert all(len(u.families[0].samples) == 2 for u in updates)  # SAMPLE: everything, always


def test_cancelled_stream_frees_its_server_side(api):
    calls = [stream(api, interval=5) for _ in range(3)]
    for c in calls:
        next(c)
    assert api.gate.active == 3
    for c in calls:
        c.cancel()
    deadline = time.monotonic() + 3
    while api.gate.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.gate.active == 0  # woke from its 5 s sleep at once


def test_on_change_sends_only_changes_and_heartbeats(api):
    call = stream(api, interval=0.2, mode=pb.STREAM_MODE_ON_CHANGE, heartbeat=0.6)
    first = next(call)
    assert first.full and len(first.families[0].samples) == 2
    g = Batch()
    g.gauge(TEMP, 99.0, "coretemp", "temp1")
    g.gauge(TEMP, 59.0, "coretemp", "temp2")  # unchanged (49 + 10)
    api.store.ingest("hwmon", g)
    change = next(call)
    assert not change.full and not change.heartbeat
    assert [dict(s.labels)["sensor"] for s in change.families[0].samples] == ["temp1"]
    assert change.families[0].samples[0].value == 99.0
    t0 = time.monotonic()
    beat = next(call)  # nothing changes: a heartbeat after ~0.6 s
    assert beat.heartbeat and not beat.families and 0.3 < time.monotonic() - t0 < 1.5
    g = Batch()
    g.gauge(TEMP, 99.0, "coretemp", "temp1")
    api.store.ingest("hwmon", g)  # temp2 disappears
    gone = next(call)
    assert [dict(s.labels) for s in gone.removed[0].samples] == [{"chip": "coretemp", "sensor": "temp2"}]
    call.cancel()


@pytest.mark.parametrize("interval, heartbeat, field", [(-1, None, "interval"), (0.01, None, "interval"),
                                                        (1.0, 0.5, "heartbeat")])
def test_bad_stream_parameters_name_the_field(api, interval, heartbeat, field):
    req = pb.StreamMetricsRequest()
    req.interval.FromNanoseconds(int(interval * 1e9))
    if heartbeat:
        req.heartbeat.FromNanoseconds(int(heartbeat * 1e9))
    code, details = code_and_details(lambda: next(api.stub.StreamMetrics(req, timeout=5)))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field + ":")


def test_stream_limit_gives_resource_exhausted_and_unary_calls_still_work(tmp_path):
    a = Api(tmp_path, stream_limit=2)
    a.feed(time.monotonic())
    try:
        held = [stream(a, interval=5), stream(a, interval=5)]
        for c in held:
            next(c)
        code, details = code_and_details(lambda: next(stream(a, interval=5)))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 2" in details
        assert get(a, ["node_cpu_seconds_total"]).families  # the API still answers
        for c in held:
            c.cancel()
    finally:
        a.close()


def test_watch_events_filters_and_replays(api):
    api.events.publish("collector.failed", Severity.ERROR, "ipmi", "BMC timed out", collector="ipmi")
    req = pb.WatchEventsRequest(kinds=["collector.*"], min_severity=pb.SEVERITY_WARNING, since_sequence=0)
    call = api.stub.WatchEvents(req, timeout=10)
    got = []

    def publish():
        deadline = time.monotonic() + 10
        while api.events.subscribers == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the server subscribes when its handler starts
        api.events.publish("collector.recovered", Severity.INFO, "ipmi", "ok")  # below min severity
        api.events.publish("link.down", Severity.ERROR, "netdev", "eth0 down")  # other kind
        api.events.publish("collector.failed", Severity.ERROR, "gpu", "NVML lost GPU 3", gpu="3")

    threading.Thread(target=publish).start()
    for ev in call:
        got.append(ev)
        break
    call.cancel()
    assert [(e.kind, e.source, e.labels["gpu"]) for e in got] == [("collector.failed", "gpu", "3")]
    assert got[0].sequence == 4 and got[0].boot_id == api.events.boot_id
    replay = api.stub.WatchEvents(pb.WatchEventsRequest(since_sequence=1), timeout=10)
    kinds = [next(replay).kind for _ in range(3)]
    replay.cancel()
    assert kinds == ["collector.recovered", "link.down", "collector.failed"]


def test_unexpected_error_is_internal_and_the_server_survives(api, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(api.store, "blocks", boom)
    code, details = code_and_details(lambda: get(api))
    assert code is grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in details and "id " in details
    monkeypatch.undo()
    assert get(api, ["node_cpu_seconds_total"]).families


def test_shutdown_ends_streams_with_unavailable(api):
    call = stream(api, interval=5)
    next(call)
    api.gate.close_all()
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in err.value.details()


def test_window_longer_than_a_collectors_own_retention_is_refused(api):
    api.store.configure("hwmon", 1.0, own_retention=30.0)
    code, details = code_and_details(lambda: get(api, ["node_hwmon_temp_celsius"], window=60))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "retention of 30s" in details
    assert get(api, ["node_cpu_seconds_total"], window=60).families  # cpu keeps 600 s
