"""Bookkeeping of server streams: a limit, wake-ups and shutdown.

Every streaming RPC holds one gRPC worker thread for its whole life, so the
number of open streams is capped below the worker pool (unary calls always
find a thread; an extra stream gets ``RESOURCE_EXHAUSTED`` at once instead of
queueing forever).  Each stream sleeps on its own event, woken early when
the client cancels or the agent shuts down, so cancelled streams free their
thread at once and SIGTERM ends every stream with ``UNAVAILABLE``.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import grpc

from agent.errors import ResourceExhausted, Unavailable


class Stream:
    """Handle of one open stream."""

    def __init__(self, gate: "StreamGate", context: grpc.ServicerContext) -> None:
        self._gate = gate
        self._context = context
        self.wake = threading.Event()

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds``; raise ``Unavailable`` if the agent is stopping.
        Returns early (``active`` false) when the client went away."""
        self.wake.wait(max(seconds, 0.0))
        self.check()

    def check(self) -> None:
        if self._gate.closing:
            raise Unavailable("agent is shutting down")

    @property
    def active(self) -> bool:
        return self._context.is_active() and not self._gate.closing


class StreamGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.closing = False
        self._lock = threading.Lock()
        self._open: set[Stream] = set()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._open)

    @contextlib.contextmanager
    def open(self, context: grpc.ServicerContext) -> Iterator[Stream]:
        stream = Stream(self, context)
        with self._lock:
            if self.closing:
                raise Unavailable("agent is shutting down")
            if len(self._open) >= self.limit:
                raise ResourceExhausted(f"too many open streams (limit {self.limit})")
            self._open.add(stream)
        context.add_callback(stream.wake.set)  # client cancelled or deadline hit
        try:
            yield stream
        finally:
            with self._lock:
                self._open.discard(stream)

    def close_all(self) -> None:
        """Shutdown: wake every stream so it ends with UNAVAILABLE."""
        with self._lock:
            self.closing = True
            streams = list(self._open)
        for stream in streams:
            stream.wake.set()
