"""``hostagent.v1.Operations``: validate, delegate to the OperationManager,
convert.  Errors are raised as ``agent.errors``; the interceptor maps them."""
from __future__ import annotations

import base64
import binascii
import json
import re
import threading

from agent.api.convert import MAX_DURATION_SECONDS, duration_seconds
from agent.api.operations_convert import operation_to_proto, state_from_proto
from agent.errors import InvalidArgument, quote
from agent.gen.hostagent.v1 import operations_pb2 as pb
from agent.gen.hostagent.v1 import operations_pb2_grpc as pb_grpc
from agent.operations.manager import check_request_id

NAME_RE = re.compile(r"operations/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_WAIT = 60.0  # a waiting call holds a gRPC worker thread
_DEADLINE_MARGIN = 0.05  # answer just before the caller's deadline, not after


def check_name(name: str, field: str = "name") -> str:
    if not NAME_RE.fullmatch(name):
        raise InvalidArgument(field, f"{quote(name)} is not an operation name (operations/<uuid>)")
    return name


def encode_page_token(after: int, kind: str, state: int) -> str:
    raw = json.dumps({"after": after, "kind": kind, "state": state}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, kind: str, state: int) -> int:
    """The journal position to continue after; 0 for an empty token."""
    if not token:
        return 0
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = doc["after"]
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ValueError(after)
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise InvalidArgument("page_token", "not a token from ListOperations") from None
    if (doc.get("kind"), doc.get("state")) != (kind, state):
        raise InvalidArgument("page_token", "was made for another kind or state filter")
    return after


class OperationsService(pb_grpc.OperationsServicer):
    def __init__(self, manager, max_wait: float = MAX_WAIT) -> None:
        self._manager = manager  # agent.operations.manager.OperationManager
        self._max_wait = max_wait

    def GetOperation(self, request, context):
        return operation_to_proto(self._manager.get(check_name(request.name)))

    def ListOperations(self, request, context):
        if request.page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        if request.state not in pb.OperationState.values():
            raise InvalidArgument("state", f"unknown value {request.state}")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = decode_page_token(request.page_token, request.kind, request.state)
        ops = self._manager.list(kind=request.kind or None, state=state_from_proto(request.state),
                                 limit=size + 1, after=after)
        page = ops[:size]
        token = (encode_page_token(page[-1].seq, request.kind, request.state)
                 if len(ops) > size else "")
        return pb.ListOperationsResponse(operations=[operation_to_proto(op) for op in page],
                                         next_page_token=token)

    def WaitOperation(self, request, context):
        name = check_name(request.name)
        timeout = self._max_wait
        if request.HasField("timeout"):  # longer than max_wait: waits max_wait
            asked = duration_seconds(request.timeout, "timeout", MAX_DURATION_SECONDS)
            timeout = min(asked or self._max_wait, self._max_wait)
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, max(0.0, remaining - _DEADLINE_MARGIN))
        abandon = threading.Event()  # the client went away: free the thread
        context.add_callback(abandon.set)
        return operation_to_proto(self._manager.wait(name, timeout, abandon))

    def CancelOperation(self, request, context):
        name = check_name(request.name)
        if request.request_id:
            check_request_id(request.request_id)
        return operation_to_proto(self._manager.cancel(name))
