"""The event bus behind ``Telemetry.WatchEvents``.

Publishers (the scheduler, collectors through ``CollectorContext.publish``,
features through ``FeatureContext.publish``) call :meth:`EventBus.publish`;
each watcher holds a :class:`Subscription` with a bounded queue.  A watcher
that does not keep up loses its oldest events, never blocks a publisher, and
the loss is counted.  The last ``retain`` events are
kept so a client can resume after a reconnect (``since_sequence``).
"""
from __future__ import annotations

import collections
import enum
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Mapping, Protocol


class Severity(enum.IntEnum):
    """Values match ``hostagent.v1.Severity``."""

    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4
    CRITICAL = 5


class Publish(Protocol):
    """What a publisher is handed (:meth:`EventBus.publish`'s signature):
    collectors get it in their context, features in theirs."""

    def __call__(self, kind: str, severity: Severity, source: str, message: str,
                 **labels: str) -> object: ...


def no_publish(kind: str, severity: Severity, source: str, message: str, **labels: str) -> None:
    """A publisher that drops every event (tests, tools)."""


@dataclass(frozen=True)
class Event:
    sequence: int
    kind: str
    severity: Severity
    source: str
    message: str
    labels: Mapping[str, str] = field(default_factory=dict)
    time: float = 0.0


class Subscription:
    """One watcher's queue.  ``get`` blocks up to ``timeout`` seconds."""

    def __init__(self, bus: "EventBus", maxlen: int) -> None:
        self._bus = bus
        self._queue: collections.deque[Event] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def _push(self, event: Event) -> None:
        with self._cond:
            if len(self._queue) >= self._maxlen:
                self._queue.popleft()
                self.dropped += 1
                self._bus._count_drop()
            self._queue.append(event)
            self._cond.notify()

    def get(self, timeout: float) -> Event | None:
        with self._cond:
            if not self._queue and not self.closed:
                self._cond.wait(timeout)
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._bus._unsubscribe(self)


class EventBus:
    def __init__(self, retain: int = 1000, queue_size: int = 1000, clock=time.time) -> None:
        self.boot_id = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._drop_lock = threading.Lock()  # separate: drops happen under _lock
        self._recent: collections.deque[Event] = collections.deque(maxlen=retain)
        self._subs: set[Subscription] = set()
        self._queue_size = queue_size
        self._clock = clock
        self._sequence = 0
        self.published_total = 0
        self.dropped_total = 0

    def publish(self, kind: str, severity: Severity, source: str, message: str,
                **labels: str) -> Event:
        with self._lock:
            self._sequence += 1
            event = Event(self._sequence, kind, Severity(severity), source, message,
                          {k: str(v) for k, v in labels.items()}, self._clock())
            self._recent.append(event)
            self.published_total += 1
            subs = list(self._subs)
        for sub in subs:
            sub._push(event)
        return event

    def subscribe(self, since_sequence: int = 0) -> Subscription:
        """Watch new events; first replay retained ones after ``since_sequence``."""
        sub = Subscription(self, self._queue_size)
        with self._lock:
            if since_sequence > 0:
                for event in self._recent:
                    if event.sequence > since_sequence:
                        sub._push(event)
            self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def close_all(self) -> None:
        """Wake every watcher (shutdown)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def _count_drop(self) -> None:
        with self._drop_lock:
            self.dropped_total += 1
