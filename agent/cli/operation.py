"""What the device command groups (``hostagent bmc``, ``hostagent gpu``)
share: a unary read of a device service, and a mutating call that starts an
operation, waits for it to end (``Operations.WaitOperation``) and prints
its result.

The request id is printed first so that a retry after a lost connection or
Ctrl-C can re-attach: the same command with ``--request-id`` gets the same
operation back instead of acting twice (with other arguments the agent
refuses the reused id).
"""
from __future__ import annotations

import sys
import uuid
from typing import Any, Callable

import grpc
from google.protobuf import duration_pb2, json_format

from agent.cli.client import Connection, connection, report_error
from agent.cli.display import print_json
from agent.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, warn
from agent.gen.hostagent.v1 import operations_pb2, operations_pb2_grpc

_DONE = (operations_pb2.OPERATION_STATE_SUCCEEDED, operations_pb2.OPERATION_STATE_FAILED,
         operations_pb2.OPERATION_STATE_CANCELLED)
_CODES = {s.value[0]: s.name for s in grpc.StatusCode}
WAIT_STEP = 60  # seconds per WaitOperation call (the agent's maximum)

Stub = Callable[[grpc.Channel], Any]


def device_error(conn: Connection, ch: grpc.Channel, exc: grpc.RpcError) -> int:
    """Report a failed call.  UNAVAILABLE from a device call is mostly the
    device's (no answer, circuit open), not the agent's: it is only "cannot
    reach the agent" when the connection to the agent is down."""
    if exc.code() is grpc.StatusCode.UNAVAILABLE:
        try:
            grpc.channel_ready_future(ch).result(timeout=0.2)
        except grpc.FutureTimeoutError:
            pass
        else:
            warn(f"UNAVAILABLE: {exc.details()}")
            return EXIT_FAILED
    return report_error(conn, exc)


def read(args, stub: Stub, call: str, request):
    """One unary read; returns (response, None) or (None, exit code)."""
    conn = connection(args)
    with conn.channel() as ch:
        try:
            return getattr(stub(ch), call)(request, timeout=conn.timeout), None
        except grpc.RpcError as exc:
            return None, device_error(conn, ch, exc)


def result(op) -> dict:
    """An operation's result as a plain dict."""
    return json_format.MessageToDict(op.result)


def run(args, stub: Stub, call: str, request, what: str, summary: Callable[[Any], str]) -> int:
    """Start the operation, wait for its end, print ``summary(op)`` (or the
    operation with --json); 0 only when it succeeded."""
    request.request_id = args.request_id or str(uuid.uuid4())
    rid, op = request.request_id, None
    again = f"rerun the same command with --request-id {rid} to wait for it again"
    conn = connection(args)
    with conn.channel() as ch:
        try:
            op = getattr(stub(ch), call)(request, timeout=conn.timeout)
            warn(f"{what}: {op.name} (request id {rid})")
            ops = operations_pb2_grpc.OperationsStub(ch)
            wait = operations_pb2.WaitOperationRequest(name=op.name,
                                                       timeout=duration_pb2.Duration(seconds=WAIT_STEP))
            while op.state not in _DONE:
                op = ops.WaitOperation(wait, timeout=WAIT_STEP + conn.timeout)
        except grpc.RpcError as exc:
            rc = device_error(conn, ch, exc)
            if op is not None:
                warn(f"{op.name} may still be running; {again}")
            return rc
        except KeyboardInterrupt:
            if op is not None:
                print(f"\nhostagent: stopped waiting; {op.name} goes on in the agent; {again}",
                      file=sys.stderr)
            return EXIT_INTERRUPTED
    if args.json:
        print_json(op)
    if op.state == operations_pb2.OPERATION_STATE_SUCCEEDED:
        if not args.json:
            print(summary(op))
        return 0
    state = operations_pb2.OperationState.Name(op.state).removeprefix("OPERATION_STATE_")
    warn(f"{what} {state}: {_CODES.get(op.error.code, op.error.code)}: {op.error.message}")
    return EXIT_FAILED
