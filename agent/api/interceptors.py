"""One place where domain errors become gRPC status codes.

Servicers raise :mod:`agent.errors` exceptions (or anything else); this
interceptor wraps every handler, unary and streaming, and aborts with the
mapped code.  Unexpected exceptions become ``INTERNAL`` with an error id that
is also in the log, so the client never sees a traceback and the agent never
dies on input.
"""
from __future__ import annotations

import uuid

import grpc

from agent import errors
from agent.logs import get_logger

log = get_logger(__name__)

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.AgentError, grpc.StatusCode.FAILED_PRECONDITION),
]


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code, str(exc)
    error_id = uuid.uuid4().hex[:12]
    log.exception("rpc.internal_error", error_id=error_id, error=type(exc).__name__)
    return grpc.StatusCode.INTERNAL, f"internal error (id {error_id}; see the agent log)"


def _abort(context: grpc.ServicerContext, method: str, exc: Exception):
    code, message = status_for(exc)
    if code is not grpc.StatusCode.INTERNAL:
        log.debug("rpc.error", method=method, code=code.name, error=message)
    context.abort(code, message)


def _wrap_unary(behavior, method):
    def handler(request, context):
        try:
            return behavior(request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, method, exc)
    return handler


def _wrap_stream(behavior, method):
    def handler(request, context):
        try:
            yield from behavior(request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, method, exc)
    return handler


class ErrorInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method = handler_call_details.method
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
