"""The typed values of the operations layer: an operation and its states.

``OperationState`` values match ``hostagent.v1.OperationState`` (a test holds
them equal); times are Unix seconds, 0 meaning "not yet".
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping


class OperationState(enum.IntEnum):
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def done(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED})
ACTIVE = frozenset({OperationState.PENDING, OperationState.RUNNING})

# gRPC status code numbers the operations layer writes itself.
CODE_CANCELLED = 1
CODE_ABORTED = 10
CODE_INTERNAL = 13


@dataclass(frozen=True)
class Operation:
    """One row of the journal.  ``args`` is kept only for kinds that can
    resume after a restart (they need it again); ``args_hash`` always."""

    name: str
    kind: str
    request_id: str
    resource: str
    state: OperationState
    args_hash: str
    identity: str = ""
    progress_percent: int = 0
    message: str = ""
    args: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None
    error_code: int = 0
    error_message: str = ""
    create_time: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    cancel_requested: bool = False
    seq: int = 0  # journal order (set by the journal; the list cursor)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def replace(self, **changes: Any) -> "Operation":
        return dataclasses.replace(self, **changes)


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, no NaN.  Raises
    ``TypeError``/``ValueError`` for what JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def args_hash(args: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the arguments as given (secrets
    included, so a retry with another password is a different request)."""
    return hashlib.sha256(canonical_json(args).encode()).hexdigest()
