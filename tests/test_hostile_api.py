"""A hostile caller against the real agent process (issue 9, items 3, 7, 9):
long waits that would hold every worker, requests that cannot be decoded,
Durations out of range, huge fields echoed in error messages, oversized
requests.  Each answer must be the right status code, at once."""
import time

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from agent.api.server import MAX_RECEIVE_BYTES
from agent.config import ConfigError, load_config
from agent.gen.hostagent.v1 import (bmc_pb2, bmc_pb2_grpc, operations_pb2, operations_pb2_grpc,
                                    telemetry_pb2, telemetry_pb2_grpc)
from tests import testing_service as ts
from tests.agent_process import AgentProcess
from tests.helpers import rpc_error

pytestmark = pytest.mark.integration
TRUNCATED = b"\x0a\x05ab"  # field 1, 5 bytes announced, 2 given: no message decodes it
SHORT = 300                # an error message quoting a huge field stays about this long


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    side_effects = tmp / "side_effects"
    side_effects.touch()
    p = AgentProcess(tmp, module="tests.agent_with_test_ops",
                     env={"HOSTAGENT_TEST_SIDE_EFFECTS": str(side_effects)})
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


@pytest.fixture
def admin(proc):
    """The unix socket as the agent's own uid: admin."""
    with grpc.insecure_channel("unix:" + str(proc.socket)) as ch:
        yield ch


@pytest.fixture
def viewer(proc):
    """Plaintext loopback: identity "insecure", role viewer."""
    with proc.channel() as ch:
        yield ch


def raw_unary(channel, path: str, payload: bytes, timeout: float = 5.0):
    """(code, details) of a unary call whose request is ``payload`` as is."""
    try:
        channel.unary_unary(path)(payload, timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


# -- item 3: long waits must not starve the worker pool ----------------------

def test_a_viewer_saturating_waits_does_not_starve_root(proc, admin, viewer):
    telemetry = telemetry_pb2_grpc.TelemetryStub(admin)
    telemetry.ListMetrics(telemetry_pb2.ListMetricsRequest(), timeout=5)  # connect first
    telemetry_pb2_grpc.TelemetryStub(viewer).ListMetrics(telemetry_pb2.ListMetricsRequest(), timeout=5)
    touch = admin.unary_unary(f"/{ts.SERVICE.full_name}/Touch",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=ts.Operation.FromString)
    op = touch(ts.TouchRequest(request_id="starve-1", name="starve", sleep_ms=60_000), timeout=5)
    waits = [operations_pb2_grpc.OperationsStub(viewer).WaitOperation.future(
        operations_pb2.WaitOperationRequest(name=op.name, timeout=duration_pb2.Duration(seconds=30)),
        timeout=15) for _ in range(40)]
    try:
        time.sleep(1.0)  # every wait has reached the agent
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            telemetry.ListMetrics(telemetry_pb2.ListMetricsRequest(), timeout=5)
            took.append(time.monotonic() - t0)
        assert max(took) < 0.1, took
        refused = [w for w in waits if w.done()]
        assert all(w.exception().code() is grpc.StatusCode.RESOURCE_EXHAUSTED for w in refused)
        assert len(waits) - len(refused) <= 8  # server.max_streams_per_identity
    finally:
        for w in waits:
            w.cancel()
        operations_pb2_grpc.OperationsStub(admin).CancelOperation(
            operations_pb2.CancelOperationRequest(name=op.name), timeout=5)


def test_max_concurrent_rpcs_follows_and_never_exceeds_the_workers(tmp_path):
    cfg = load_config(None, known_collectors=[], env={"HOME": str(tmp_path)})
    assert cfg.server.max_concurrent_rpcs == cfg.server.max_workers
    cfg = load_config(None, known_collectors=[], env={"HOME": str(tmp_path)},
                      overrides={"server.max_workers": 8})
    assert cfg.server.max_concurrent_rpcs == 8
    cfg = load_config(None, known_collectors=[], env={"HOME": str(tmp_path)},
                      overrides={"server.max_workers": 8, "server.max_concurrent_rpcs": 6})
    assert cfg.server.max_concurrent_rpcs == 6
    with pytest.raises(ConfigError) as err:
        load_config(None, known_collectors=[], env={"HOME": str(tmp_path)},
                    overrides={"server.max_workers": 8, "server.max_concurrent_rpcs": 9})
    assert err.value.key == "server.max_concurrent_rpcs" and "max_workers" in err.value.message


# -- item 7: the right status codes ------------------------------------------

@pytest.mark.parametrize("path,type_name", [
    ("/hostagent.v1.Telemetry/ListMetrics", "hostagent.v1.ListMetricsRequest"),
    ("/hostagent.v1.Operations/WaitOperation", "hostagent.v1.WaitOperationRequest"),
    ("/hostagent.v1.Bmc/GetPowerState", "hostagent.v1.GetPowerStateRequest"),
    ("/hostagent.v1.Bmc/SetPowerState", "hostagent.v1.SetPowerStateRequest"),
    ("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest"),
])
def test_an_undecodable_request_is_invalid_argument(admin, path, type_name):
    code, details = raw_unary(admin, path, TRUNCATED)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and type_name in details, (code, details)


def test_an_undecodable_stream_request_is_invalid_argument(admin, viewer):
    for ch in (admin, viewer):
        stream = ch.unary_stream("/hostagent.v1.Telemetry/StreamMetrics")(TRUNCATED, timeout=5)
        code, details = rpc_error(lambda: next(stream))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and "StreamMetricsRequest" in details
    bidi = admin.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    code, details = rpc_error(lambda: list(bidi(iter([TRUNCATED]), timeout=5)))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "ServerReflectionRequest" in details
    ok = list(bidi(iter([reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()]),
                   timeout=5))
    assert len(ok) == 1


def test_an_undecodable_request_of_a_viewer_is_still_authorized_first(viewer):
    code, _ = raw_unary(viewer, "/hostagent.v1.Bmc/SetPowerState", TRUNCATED)
    assert code is grpc.StatusCode.PERMISSION_DENIED


HUGE = [duration_pb2.Duration(seconds=2 ** 62), duration_pb2.Duration(seconds=-(2 ** 62)),
        duration_pb2.Duration(seconds=315_576_000_001), duration_pb2.Duration(nanos=2_000_000_000),
        duration_pb2.Duration(seconds=1, nanos=-1), duration_pb2.Duration(seconds=10 ** 10)]


@pytest.mark.parametrize("i", range(len(HUGE)))
def test_stream_metrics_durations_are_bounded(admin, i):
    stub = telemetry_pb2_grpc.TelemetryStub(admin)
    sel = telemetry_pb2.MetricSelector(names=["node_load1"])
    for field, extra in (("interval", {"heartbeat": duration_pb2.Duration(seconds=10 ** 11)}),
                         ("heartbeat", {}), ("window", {})):
        req = telemetry_pb2.StreamMetricsRequest(selector=sel, **{field: HUGE[i]}, **extra)
        code, details = rpc_error(lambda: next(stub.StreamMetrics(req, timeout=5)))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field), (field, details)
    code, details = rpc_error(lambda: stub.GetMetrics(
        telemetry_pb2.GetMetricsRequest(selector=sel, window=HUGE[i]), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("window"), details


@pytest.mark.parametrize("i", [0, 1, 2, 3, 4])
def test_wait_operation_timeout_out_of_range_is_invalid_argument(viewer, i):
    stub = operations_pb2_grpc.OperationsStub(viewer)
    code, details = rpc_error(lambda: stub.WaitOperation(operations_pb2.WaitOperationRequest(
        name="operations/00000000-0000-4000-8000-000000000000", timeout=HUGE[i]), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("timeout"), details


@pytest.mark.parametrize("i", range(len(HUGE)))
def test_bmc_durations_are_bounded(admin, i):
    stub = bmc_pb2_grpc.BmcStub(admin)
    code, details = rpc_error(lambda: stub.SetIdentify(bmc_pb2.SetIdentifyRequest(
        request_id="id-1", on=True, duration=HUGE[i]), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("duration"), details
    code, details = rpc_error(lambda: stub.SetPowerState(bmc_pb2.SetPowerStateRequest(
        request_id="pw-1", action=bmc_pb2.POWER_ACTION_ON, wait_timeout=HUGE[i]), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("wait_timeout"), details


def test_errors_quote_at_most_a_little_of_a_huge_field(admin, viewer):
    big = "x" * 200_000
    code, details = rpc_error(lambda: bmc_pb2_grpc.BmcStub(admin).GetPowerState(
        bmc_pb2.GetPowerStateRequest(target=big), timeout=5))
    assert code is grpc.StatusCode.NOT_FOUND and len(details) < SHORT, (code, len(details))
    code, details = rpc_error(lambda: operations_pb2_grpc.OperationsStub(viewer).WaitOperation(
        operations_pb2.WaitOperationRequest(name=big), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and len(details) < SHORT, (code, len(details))
    assert details.startswith("name: ")
    telemetry = telemetry_pb2_grpc.TelemetryStub(viewer)
    for names in (["!" + big], [big]):  # an invalid name, an unknown one
        code, details = rpc_error(lambda: telemetry.GetMetrics(telemetry_pb2.GetMetricsRequest(
            selector=telemetry_pb2.MetricSelector(names=names)), timeout=5))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and len(details) < SHORT, (code, len(details))
        assert details.startswith("selector.names[0]: ")
    code, details = rpc_error(lambda: telemetry.ListMetrics(
        telemetry_pb2.ListMetricsRequest(names=["!" + big]), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and len(details) < SHORT, (code, len(details))


# -- item 9: requests are small; bigger ones are refused before parsing -------

def test_requests_over_the_receive_limit_are_refused(admin):
    assert MAX_RECEIVE_BYTES <= 256 * 1024
    stub = bmc_pb2_grpc.BmcStub(admin)
    code, _ = rpc_error(lambda: stub.GetPowerState(
        bmc_pb2.GetPowerStateRequest(target="x" * (300 * 1024)), timeout=5))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    code, _ = rpc_error(lambda: stub.GetPowerState(
        bmc_pb2.GetPowerStateRequest(target="x" * (200 * 1024)), timeout=5))
    assert code is grpc.StatusCode.NOT_FOUND  # just under the limit: served
    health = admin.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=health_pb2.HealthCheckResponse.FromString)
    assert health(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
