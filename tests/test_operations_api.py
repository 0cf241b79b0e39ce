"""``hostagent.v1.Operations`` over a real gRPC server on loopback: Get, List
(with pages), Wait, Cancel, and the NOT_FOUND / INVALID_ARGUMENT answers."""
import threading
import time
from concurrent import futures

import grpc
import pytest

from tests.helpers import rpc_error as error
from google.protobuf import duration_pb2

from agent.api.interceptors import ErrorInterceptor
from agent.api.operations_convert import operation_from_proto, operation_to_proto
from agent.api.operations_service import OperationsService
from agent.api.server import add_service
from agent.gen.hostagent.v1 import operations_pb2 as pb, operations_pb2_grpc
from agent.operations.journal import Journal
from agent.operations.manager import OperationKind, OperationManager
from agent.operations.model import OperationState

UNKNOWN = "operations/00000000-0000-4000-8000-000000000000"


class HoldKind:
    """``test.hold``: holds until ``release`` when asked to (stops on cancel),
    queues behind others on its resource, returns its arguments."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()
        self.kind = OperationKind("test.hold", run=self.run, conflict="queue",
                                  resource=lambda args: args.get("resource", "thing/1"))

    def run(self, ctx, args):
        self.started.set()
        ctx.progress(40, "holding")
        while args.get("hold") and not self.release.wait(0.01):
            ctx.check_cancelled()
        return {"echo": args.get("n", 0), "tags": ["a"]}


class Api:
    def __init__(self, tmp_path):
        self.journal = Journal(str(tmp_path / "operations.db"))
        self.hold = HoldKind()
        self.manager = OperationManager(self.journal, {"test.hold": self.hold.kind})
        self.manager.recover()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  interceptors=[ErrorInterceptor()])
        add_service(self.server, OperationsService(self.manager, max_wait=3.0),
                    pb.DESCRIPTOR.services_by_name["Operations"])
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = operations_pb2_grpc.OperationsStub(self.channel)

    def start(self, request_id, **args):
        return self.manager.start("test.hold", request_id, args, "uid:0")

    def close(self):
        self.hold.release.set()
        self.channel.close()
        self.server.stop(0)
        self.manager.close()
        self.journal.close()


@pytest.fixture
def api(tmp_path):
    a = Api(tmp_path)
    yield a
    a.close()


def test_state_enum_matches_the_model():
    assert {m.name: m.value for m in OperationState} == {
        n.removeprefix("OPERATION_STATE_"): v for n, v in pb.OperationState.items() if v}


def test_get_operation(api):
    op = api.manager.wait(api.start("req-1", n=3).name, 5)
    got = api.stub.GetOperation(pb.GetOperationRequest(name=op.name))
    assert (got.name, got.kind, got.request_id, got.resource, got.identity) == (
        op.name, "test.hold", "req-1", "thing/1", "uid:0")
    assert got.state == pb.OPERATION_STATE_SUCCEEDED and got.progress_percent == 100
    assert dict(got.result) == {"echo": 3.0, "tags": ["a"]}
    assert not got.HasField("error")
    assert got.create_time.ToNanoseconds() <= got.start_time.ToNanoseconds() <= \
        got.end_time.ToNanoseconds()
    assert abs(got.end_time.ToNanoseconds() / 1e9 - op.end_time) < 1e-6
    assert got == operation_to_proto(op)
    back = operation_from_proto(got)
    assert (back.name, back.state, back.result) == (op.name, op.state, {"echo": 3, "tags": ["a"]})


def test_get_errors(api):
    code, details = error(lambda: api.stub.GetOperation(pb.GetOperationRequest(name=UNKNOWN)))
    assert code is grpc.StatusCode.NOT_FOUND and UNKNOWN in details
    for bad in ("", "operations/", "operations/xyz", "ops/" + UNKNOWN[11:], UNKNOWN + "/x"):
        code, details = error(lambda: api.stub.GetOperation(pb.GetOperationRequest(name=bad)))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("name: "), bad


def test_list_operations_in_pages_and_filters(api):
    names = [api.manager.wait(api.start(f"req-{i}", n=i).name, 5).name for i in range(5)]
    held = api.start("req-held", hold=True, resource="thing/2")
    assert api.hold.started.wait(5)
    seen, token, pages = [], "", 0
    while True:
        resp = api.stub.ListOperations(pb.ListOperationsRequest(page_size=2, page_token=token))
        seen += [o.name for o in resp.operations]
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    assert seen == names + [held.name] and pages == 3
    done = api.stub.ListOperations(pb.ListOperationsRequest(state=pb.OPERATION_STATE_SUCCEEDED))
    assert [o.name for o in done.operations] == names and not done.next_page_token
    running = api.stub.ListOperations(pb.ListOperationsRequest(state=pb.OPERATION_STATE_RUNNING,
                                                               kind="test.hold"))
    assert [o.name for o in running.operations] == [held.name]
    assert not api.stub.ListOperations(pb.ListOperationsRequest(kind="other")).operations
    first = api.stub.ListOperations(pb.ListOperationsRequest(page_size=1, kind="test.hold"))
    for request, field in (
            (pb.ListOperationsRequest(page_token="garbage!"), "page_token"),
            (pb.ListOperationsRequest(page_token=first.next_page_token), "page_token"),
            (pb.ListOperationsRequest(page_size=-1), "page_size"),
            (pb.ListOperationsRequest(state=42), "state")):
        code, details = error(lambda: api.stub.ListOperations(request))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field + ": ")


def test_wait_operation(api):
    op = api.start("req-1", hold=True)
    assert api.hold.started.wait(5)
    t0 = time.monotonic()
    got = api.stub.WaitOperation(pb.WaitOperationRequest(
        name=op.name, timeout=duration_pb2.Duration(nanos=200_000_000)))
    assert 0.2 <= time.monotonic() - t0 < 2.5
    assert got.state == pb.OPERATION_STATE_RUNNING and got.progress_percent == 40
    assert got.message == "holding" and not got.HasField("end_time")
    t0 = time.monotonic()  # the call's deadline wins over a longer timeout
    got = api.stub.WaitOperation(pb.WaitOperationRequest(
        name=op.name, timeout=duration_pb2.Duration(seconds=30)), timeout=0.5)
    assert got.state == pb.OPERATION_STATE_RUNNING and time.monotonic() - t0 < 2
    threading.Timer(0.3, api.hold.release.set).start()
    t0 = time.monotonic()
    got = api.stub.WaitOperation(pb.WaitOperationRequest(name=op.name))  # up to max_wait
    assert got.state == pb.OPERATION_STATE_SUCCEEDED and time.monotonic() - t0 < 2.5
    code, details = error(lambda: api.stub.WaitOperation(pb.WaitOperationRequest(
        name=op.name, timeout=duration_pb2.Duration(seconds=-1))))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("timeout: ")
    code, _ = error(lambda: api.stub.WaitOperation(pb.WaitOperationRequest(name=UNKNOWN)))
    assert code is grpc.StatusCode.NOT_FOUND


def test_cancel_operation(api):
    running = api.start("req-1", hold=True)
    queued = api.start("req-2", n=2)
    assert api.hold.started.wait(5)
    got = api.stub.CancelOperation(pb.CancelOperationRequest(name=queued.name, request_id="c-1"))
    assert got.state == pb.OPERATION_STATE_CANCELLED and got.error.code == grpc.StatusCode.CANCELLED.value[0]
    got = api.stub.CancelOperation(pb.CancelOperationRequest(name=running.name))
    assert got.cancel_requested
    got = api.stub.WaitOperation(pb.WaitOperationRequest(name=running.name))
    assert got.state == pb.OPERATION_STATE_CANCELLED and got.error.code == 1
    assert api.stub.CancelOperation(pb.CancelOperationRequest(name=running.name)) == got
    code, _ = error(lambda: api.stub.CancelOperation(pb.CancelOperationRequest(name=UNKNOWN)))
    assert code is grpc.StatusCode.NOT_FOUND
    code, details = error(lambda: api.stub.CancelOperation(
        pb.CancelOperationRequest(name=running.name, request_id="no spaces")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("request_id: ")
    code, details = error(lambda: api.stub.CancelOperation(pb.CancelOperationRequest(name="x")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("name: ")


def test_contract_roles():
    from agent.gen.hostagent.v1 import options_pb2
    service = pb.DESCRIPTOR.services_by_name["Operations"]
    rules = {m.name: (m.GetOptions().Extensions[options_pb2.required_role],
                      m.GetOptions().Extensions[options_pb2.mutating]) for m in service.methods}
    assert rules == {"GetOperation": (options_pb2.ROLE_VIEWER, False),
                     "ListOperations": (options_pb2.ROLE_VIEWER, False),
                     "WaitOperation": (options_pb2.ROLE_VIEWER, False),
                     "CancelOperation": (options_pb2.ROLE_OPERATOR, True)}
