"""Domain errors.  Raised anywhere below the API.  Each class carries the
gRPC status code a client sees for it (``status_code``, as grpc-interceptor's
exceptions do), so the API layer reads the code from the error and nothing
below the API imports it; :func:`status_of` is the one mapping, used by the
error interceptor and by the operations journal alike."""
from __future__ import annotations

import uuid

import grpc

from agent.logs import get_logger

log = get_logger(__name__)

QUOTE_MAX = 100  # characters of a caller's input that a message may repeat


def quote(value: object, limit: int = QUOTE_MAX) -> str:
    """``repr`` of a caller's input for an error message, cut to ``limit``
    characters: a 1 MB field must not come back in the answer or the log."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


class AgentError(Exception):
    """Base class; ``str()`` is the message shown to the client."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class InvalidArgument(AgentError):
    """A request field is wrong.  ``field`` is its path, e.g. ``selector.names[2]``."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(AgentError):
    status_code = grpc.StatusCode.NOT_FOUND


class Unavailable(AgentError):
    """The agent cannot serve this now (shutting down, hardware absent)."""

    status_code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(AgentError):
    """A limit was reached (streams, queue); retry later."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(AgentError):
    """Conflicts with work in progress (another operation on the resource)."""

    status_code = grpc.StatusCode.ABORTED


class FailedPrecondition(AgentError):
    """The system is not in a state that allows this (e.g. powering off the
    agent's own host without ``force``)."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(AgentError):
    """The caller's role does not allow this variant of an allowed call."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(AgentError):
    """The work was started but did not finish in the time given."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``exc``: the code its
    class declares; for anything that is not an :class:`AgentError`,
    ``INTERNAL`` with an error id that the log carries too, with the
    traceback (the client never sees one)."""
    if isinstance(exc, AgentError):
        return exc.status_code, str(exc)
    error_id = uuid.uuid4().hex[:12]
    log.error("rpc.internal_error", error_id=error_id, error=type(exc).__name__,
              exc_info=(type(exc), exc, exc.__traceback__))
    return grpc.StatusCode.INTERNAL, f"internal error (id {error_id}; see the agent log)"
