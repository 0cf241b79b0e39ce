"""Domain errors.  Raised anywhere below the API; translated to gRPC status
codes in exactly one place (``agent.api.interceptors``), psutil-style."""
from __future__ import annotations

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


class InvalidArgument(AgentError):
    """A request field is wrong.  ``field`` is its path, e.g. ``selector.names[2]``."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(AgentError):
    pass


class Unavailable(AgentError):
    """The agent cannot serve this now (shutting down, hardware absent)."""


class ResourceExhausted(AgentError):
    """A limit was reached (streams, queue); retry later."""


class Aborted(AgentError):
    """Conflicts with work in progress (another operation on the resource)."""


class FailedPrecondition(AgentError):
    """The system is not in a state that allows this (e.g. powering off the
    agent's own host without ``force``)."""


class PermissionDenied(AgentError):
    """The caller's role does not allow this variant of an allowed call."""


class DeadlineExceeded(AgentError):
    """The work was started but did not finish in the time given."""
