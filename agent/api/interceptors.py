"""One place where domain errors become gRPC status codes.

Servicers raise :mod:`agent.errors` exceptions (or anything else); this
interceptor wraps every handler, unary and streaming, and aborts with the
code the error's class declares (``agent.errors.status_of``).  Unexpected exceptions become ``INTERNAL`` with an error id that
is also in the log, so the client never sees a traceback and the agent never
dies on input.

It also decodes requests tolerantly: bytes that are not the method's request
message become an :class:`Undecodable`, which the outer interceptors (auth,
audit) see like any request, and which is answered ``INVALID_ARGUMENT``
naming the message type (gRPC itself would answer ``INTERNAL``).
"""
from __future__ import annotations

import grpc

from agent import errors
from agent.logs import get_logger

log = get_logger(__name__)
MAX_DETAILS = 1024  # characters of an error message; inputs are quoted shorter (errors.quote)


class Undecodable:
    """A request whose bytes are not a ``type_name`` message."""

    __slots__ = ("type_name", "reason")
    request_id = ""  # what the audit reads from a request

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name, self.reason = type_name, reason

    def error(self) -> errors.InvalidArgument:
        return errors.InvalidArgument("request", f"cannot be decoded as {self.type_name} "
                                                 f"({self.reason})")


def tolerant(deserializer):
    """``deserializer`` (``Message.FromString``) returning an Undecodable
    instead of raising."""
    if deserializer is None:
        return None
    message = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    type_name = getattr(message, "full_name", "the request message")

    def decode(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, and whatever else bad bytes cause
            return Undecodable(type_name, (str(exc) or type(exc).__name__)[:100])
    return decode


def _decoded(request):
    if isinstance(request, Undecodable):
        raise request.error()
    return request


def _decoded_stream(requests):
    for request in requests:
        yield _decoded(request)


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """What the client sees for ``exc`` (:func:`agent.errors.status_of`), the
    message cut at MAX_DETAILS as a backstop: messages quote input with
    ``errors.quote``."""
    code, message = errors.status_of(exc)
    if len(message) > MAX_DETAILS:
        message = message[:MAX_DETAILS] + "..."
    return code, message


def status_details(context: grpc.ServicerContext) -> str:
    """The details a handler set, as text (grpc keeps them as bytes)."""
    details = context.details()
    return details.decode("utf-8", "replace") if isinstance(details, bytes) else details or ""


def _abort(context: grpc.ServicerContext, method: str, exc: Exception):
    already = context.code()
    if already not in (None, grpc.StatusCode.OK):  # the handler aborted itself: keep its status
        context.abort(already, status_details(context))
    code, message = status_for(exc)
    if code is not grpc.StatusCode.INTERNAL:
        log.debug("rpc.error", method=method, code=code.name, error=message)
    context.abort(code, message)


def _wrap_unary(behavior, method):
    def handler(request, context):
        try:
            return behavior(_decoded(request), context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, method, exc)
    return handler


def _wrap_stream(behavior, method):
    def handler(request, context):
        try:
            yield from behavior(_decoded(request), context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, method, exc)
    return handler


def _wrap_bidi(behavior, method):
    def handler(requests, context):
        try:
            yield from behavior(_decoded_stream(requests), context)
        except grpc.RpcError:
            raise  # from the request iterator: the call was cancelled, gRPC knows
        except Exception as exc:  # noqa: BLE001
            _abort(context, method, exc)
    return handler


class ErrorInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        decode = tolerant(handler.request_deserializer)
        if handler.request_streaming:
            if not handler.response_streaming:
                return handler  # no client-streaming method is served
            return grpc.stream_stream_rpc_method_handler(
                _wrap_bidi(handler.stream_stream, method),
                request_deserializer=decode, response_serializer=handler.response_serializer)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=decode, response_serializer=handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method),
            request_deserializer=decode, response_serializer=handler.response_serializer)
