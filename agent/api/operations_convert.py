"""Operation model <-> protobuf: the only place these types meet."""
from __future__ import annotations

from google.protobuf import json_format, timestamp_pb2

from agent.gen.hostagent.v1 import operations_pb2 as pb
from agent.operations.model import Operation, OperationState


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp | None:
    """``None`` for 0 (not yet), so the field stays unset."""
    if not seconds:
        return None
    whole = int(seconds)  # split before scaling: a float holds ~16 digits, not 19
    nanos = round((seconds - whole) * 1e9)
    return timestamp_pb2.Timestamp(seconds=whole + nanos // 1_000_000_000,
                                   nanos=nanos % 1_000_000_000)


def _seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def state_to_proto(state: OperationState | None) -> int:
    return int(state) if state else pb.OPERATION_STATE_UNSPECIFIED


def state_from_proto(value: int) -> OperationState | None:
    """``None`` for UNSPECIFIED (any state, as a filter)."""
    return OperationState(value) if value else None


def operation_to_proto(op: Operation) -> pb.Operation:
    msg = pb.Operation(
        name=op.name, kind=op.kind, request_id=op.request_id, resource=op.resource,
        state=state_to_proto(op.state), progress_percent=op.progress_percent,
        message=op.message, identity=op.identity, cancel_requested=op.cancel_requested,
        create_time=_timestamp(op.create_time), start_time=_timestamp(op.start_time),
        end_time=_timestamp(op.end_time))
    if op.result is not None and op.state is OperationState.SUCCEEDED:
        msg.result.update(op.result)
    if op.state in (OperationState.FAILED, OperationState.CANCELLED):
        msg.error.code, msg.error.message = op.error_code, op.error_message
    return msg


def operation_from_proto(msg: pb.Operation) -> Operation:
    """For clients and tests; the journal-only fields (args, args_hash, seq)
    are empty."""
    result = None
    if msg.HasField("result"):
        result = json_format.MessageToDict(msg.result)
    return Operation(
        name=msg.name, kind=msg.kind, request_id=msg.request_id, resource=msg.resource,
        state=OperationState(msg.state), args_hash="", identity=msg.identity,
        progress_percent=msg.progress_percent, message=msg.message, result=result,
        error_code=msg.error.code, error_message=msg.error.message,
        create_time=_seconds(msg.create_time), start_time=_seconds(msg.start_time),
        end_time=_seconds(msg.end_time), cancel_requested=msg.cancel_requested)

