"""One interceptor authorizes every call, unary and streaming, before the
servicer sees it, and audits every denial and every mutating call.

The caller's identity comes from ``identify(context)`` (client certificate,
unix peer uid, or "insecure" for plaintext TCP); the role it needs comes from
the contract (``agent.security.policy``).  Unknown identity:
``UNAUTHENTICATED``; known but too weak, or a method without a declared role:
``PERMISSION_DENIED``.  It also enforces the per-identity stream limit.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

import grpc
from google.protobuf import json_format

from agent.api.interceptors import status_details
from agent.logs import get_logger
from agent.security.identity import Identity
from agent.security.policy import MethodRule, Policy, Role

log = get_logger(__name__)
# Unary methods that may wait long (WaitOperation: up to a minute) hold a
# worker thread as long as a stream does, so they take a stream slot too.
LONG_WAITS = frozenset({"/hostagent.v1.Operations/WaitOperation"})


class Auditor(Protocol):
    def record(self, **fields) -> dict | None: ...


def _args(request) -> dict:
    if request is None:
        return {}
    try:
        return json_format.MessageToDict(request, preserving_proto_field_name=True)
    except Exception:  # noqa: BLE001 - never let auditing break a call
        return {"unserializable": type(request).__name__}


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, policy: Callable[[], Policy], identify: Callable[[grpc.ServicerContext], Identity | None],
                 auditor: Auditor | None, streams_per_identity: int,
                 streams_total: int | None = None, long_waits: frozenset[str] = LONG_WAITS) -> None:
        self._policy = policy
        self._identify = identify
        self._auditor = auditor
        self._stream_limit = streams_per_identity
        # Every stream (ours, health Watch, reflection) holds a worker thread:
        # all together stay below the pool so unary calls always find one.
        self._total_limit = streams_total
        self._long_waits = long_waits
        self._streams: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- decisions -------------------------------------------------------
    def _authorize(self, method: str, request, context) -> tuple[Identity | None, MethodRule | None]:
        policy = self._policy()
        caller = self._identify(context)
        rule = policy.rule(method)
        if caller is None:
            self._deny(method, request, context, None, grpc.StatusCode.UNAUTHENTICATED,
                       "no identity: present a client certificate or use the unix socket")
        role = policy.role_of(caller.name)
        if role is Role.NONE:
            self._deny(method, request, context, caller, grpc.StatusCode.UNAUTHENTICATED,
                       f"identity {caller.name!r} is not known to this agent")
        if rule is None or rule.required is Role.NONE:
            self._deny(method, request, context, caller, grpc.StatusCode.PERMISSION_DENIED,
                       f"method {method} is not allowed for anyone")
        if role < rule.required:
            self._deny(method, request, context, caller, grpc.StatusCode.PERMISSION_DENIED,
                       f"identity {caller.name!r} has role {role.name.lower()}; {method} "
                       f"needs {rule.required.name.lower()}")
        return caller, rule

    def _deny(self, method, request, context, caller, code, message):
        # Logged only when the audit trail took it: a flood of denials is
        # rate-limited there (counted, not written), and must not fill the
        # journal instead.
        if self._audit(method, request, context, caller, "deny", code, 0.0, message) is not None:
            log.warning("rpc.denied", method=method, identity=caller.name if caller else None,
                        peer=caller.peer if caller else context.peer(), code=code.name,
                        reason=message)
        context.abort(code, message)

    def _audit(self, method, request, context, caller, decision, code, duration, message=""):
        """The record written, or None when the auditor only counted it."""
        if self._auditor is None:
            return {}
        return self._auditor.record(
            identity=caller.name if caller else "", peer=caller.peer if caller else context.peer(),
            method=method, request_id=getattr(request, "request_id", "") or "",
            args=_args(request), decision=decision, status=code.name,
            duration_ms=round(duration * 1000, 3), message=message)

    # -- wrapping --------------------------------------------------------
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED
        method = handler_call_details.method
        if handler.request_streaming:  # only reflection is bidirectional
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method, bidirectional=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        behavior = handler.unary_unary
        return grpc.unary_unary_rpc_method_handler(
            self._unary(self._held(behavior) if method in self._long_waits else behavior, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def _unary(self, behavior, method):
        def handler(request, context):
            caller, rule = self._authorize(method, request, context)
            if not rule.mutating:
                return behavior(request, context)
            if self._auditor is not None and not getattr(self._auditor, "healthy", True):
                # Fail closed: no change to the node that the audit trail cannot record.
                self._deny(method, request, context, caller, grpc.StatusCode.UNAVAILABLE,
                           "the audit trail cannot be written; changes are refused until it can")
            t0 = time.monotonic()
            try:
                response = behavior(request, context)
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                self._audit(method, request, context, caller, "allow", code,
                            time.monotonic() - t0, status_details(context))
                raise
            self._audit(method, request, context, caller, "allow", grpc.StatusCode.OK,
                        time.monotonic() - t0)
            return response
        return handler

    def _enter_stream(self, caller: Identity, context) -> None:
        with self._lock:
            open_now = self._streams.get(caller.name, 0)
            total = sum(self._streams.values())
            if open_now >= self._stream_limit:
                reason = f"identity {caller.name!r} has {self._stream_limit} streams or waits open (limit)"
            elif self._total_limit is not None and total >= self._total_limit:
                reason = f"the agent has {self._total_limit} streams or waits open (limit)"
            else:
                self._streams[caller.name] = open_now + 1
                return
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)

    def _leave_stream(self, caller: Identity) -> None:
        with self._lock:
            left = self._streams[caller.name] - 1
            if left:
                self._streams[caller.name] = left
            else:
                del self._streams[caller.name]

    def _held(self, behavior):
        """A long wait (already authorized by ``_unary``) holds a stream slot."""
        def handler(request, context):
            caller = self._identify(context)
            self._enter_stream(caller, context)
            try:
                return behavior(request, context)
            finally:
                self._leave_stream(caller)
        return handler

    def _stream(self, behavior, method, bidirectional: bool = False):
        """Authorize, then hold one stream slot for the stream's whole life.
        Reflection is the only bidirectional stream: its first argument is
        the request iterator, which is not a request to audit."""
        def handler(request, context):
            caller, _ = self._authorize(method, None if bidirectional else request, context)
            self._enter_stream(caller, context)
            try:
                yield from behavior(request, context)
            finally:
                self._leave_stream(caller)
        return handler
