"""Isolation for one piece of hardware that may hang its caller: its own
worker thread, a timeout on every call, and a circuit breaker with
exponential backoff.  The BMCs (``agent.bmc.guard``, one per BMC) and the
GPUs (``agent.gpu.hub``, one per GPU and one for NVML itself) use it.

Driver and network calls block their thread, and a dead device blocks it for
seconds or forever.  So every call to one device runs on that device's single
worker thread (concurrent callers take turns, and the wait for a turn never
counts against the device), and the call itself gets at most ``timeout``.
After a failure the circuit *opens*: calls are refused at once (UNAVAILABLE,
the device is not touched) until the backoff has passed; then one
*half-open* probe goes through, and its outcome closes the circuit or opens
it again for twice as long (up to ``max_backoff``).  A dead device therefore
costs one timeout per backoff period, never one per caller; a call that
outlives its timeout keeps the worker busy, and everything behind it is
refused rather than queued.

What counts as a failure is the backend's: the exception classes in
``failure_types`` (and timeouts, raised as ``timeout_error``); any other error
means the device answered and does not count.
"""
from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from agent.errors import Unavailable
from agent.logs import get_logger

log = get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpen(Unavailable):
    pass


class GuardTimeout(Unavailable):
    """A call found no answer within its timeout (the default ``timeout_error``)."""


@dataclass(frozen=True)
class Pending:
    """A call started on a guard's worker (:meth:`Guard.start`)."""

    future: cf.Future
    timeout: float
    deadline: float  # time.monotonic() by which it must have answered

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the call to end (its outcome is
        ``Guard.finish``'s); True when it has."""
        try:
            self.future.exception(seconds)
        except (cf.TimeoutError, cf.CancelledError):
            return self.future.done()
        return True


class Guard:
    """``noun`` names the device kind in messages ("BMC", "GPU");
    ``failure_types`` are the exceptions that mean the device is gone (they open the circuit
    and are re-raised as the same class, prefixed with the device's name)."""

    noun = "device"
    failure_types: tuple[type[Exception], ...] = ()
    timeout_error: type[Exception] = GuardTimeout

    def __init__(self, name: str, timeout: float, initial_backoff: float = 1.0,
                 max_backoff: float = 300.0, on_change: Callable[[bool, str], None] | None = None,
                 on_timeout: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.timeout = timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max(max_backoff, initial_backoff)
        self._on_change = on_change or (lambda up, error: None)
        self._on_timeout = on_timeout or (lambda: None)  # e.g. make the backend give up
        self._clock = clock
        self._lock = threading.Lock()
        self._pool = cf.ThreadPoolExecutor(max_workers=1,
                                           thread_name_prefix=f"{self.noun.lower()}-{name}")
        self._turn = threading.Lock()  # one caller on the worker at a time
        self._stuck: cf.Future | None = None  # a call that outlived its timeout
        self._state = CLOSED
        self._backoff = 0.0
        self._retry_at = 0.0
        self.up: bool | None = None  # None until the first call ends
        self.last_error = ""
        self.calls = self.failures = self.timeouts = self.refused = 0

    # -- state -----------------------------------------------------------
    @property
    def circuit(self) -> str:
        with self._lock:
            return self._state

    def retry_in(self) -> float:
        with self._lock:
            return max(0.0, self._retry_at - self._clock()) if self._state == OPEN else 0.0

    def _admit(self, probe: bool = True) -> bool:
        """Lock held.  True when this call may go to the device (and, when
        the circuit was open and ``probe``, it becomes the half-open probe)."""
        if self._stuck is not None and not self._stuck.done():
            return False  # an earlier call outlived its timeout: refuse, never queue behind it
        if self._state == CLOSED:
            return True
        if self._state == OPEN and self._clock() >= self._retry_at:
            if probe:
                self._state = HALF_OPEN
            return True
        return False

    def _succeeded(self) -> None:
        with self._lock:
            self._state, self._backoff = CLOSED, 0.0
            changed, self.up, self.last_error = self.up is not True, True, ""
        if changed:
            self._on_change(True, "")

    def _failed(self, error: str) -> None:
        with self._lock:
            self.failures += 1
            self._backoff = (min(self._backoff * 2, self.max_backoff) if self._backoff
                             else self.initial_backoff)
            self._state, self._retry_at = OPEN, self._clock() + self._backoff
            changed = self.up is not False or error != self.last_error
            self.up, self.last_error = False, error
        if changed:  # one log line and event per transition, not per attempt
            self._on_change(False, error)

    def _counted(self, exc: Exception) -> None:
        """A failure ``exc`` was seen (a subclass counts kinds of failure)."""

    # -- calls -----------------------------------------------------------
    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` on the worker; its result, or the backend's error, or
        ``timeout_error`` after ``timeout``, or ``CircuitOpen`` without trying."""
        return self.finish(self.start(fn, timeout))

    def start(self, fn: Callable[[], Any], timeout: float | None = None,
              wait_turn: bool = True) -> "Pending":
        """The first half of :meth:`call`: ``fn`` is submitted to the worker
        and runs while the caller starts other devices' calls; ``finish``
        waits for it.  So one thread polls many devices in parallel with one
        hand-off each.  ``wait_turn=False``: refuse at once (Unavailable)
        instead of waiting behind another caller."""
        timeout = self.timeout if timeout is None else timeout
        self._refuse_unless_admitted(probe=False)  # fail fast while open
        # Wait for our turn behind healthy calls (a poll, another RPC); if the
        # turn does not come within the timeout, this call gives up without
        # blaming the device.
        if not self._turn.acquire(timeout=timeout if wait_turn else 0):
            raise Unavailable(f"{self.noun} {self.name} busy: no turn within "
                              f"{timeout if wait_turn else 0:g}s")
        try:
            self._refuse_unless_admitted()  # the call we waited behind may have failed
            with self._lock:
                self.calls += 1
                future = self._pool.submit(fn)
        except BaseException:
            self._turn.release()
            raise
        return Pending(future, timeout, time.monotonic() + timeout)

    def finish(self, pending: "Pending") -> Any:
        """The second half of :meth:`call`: the result of a started call."""
        try:
            return self._result(pending.future, max(0.0, pending.deadline - time.monotonic()),
                                pending.timeout)
        finally:
            self._turn.release()

    def _refuse_unless_admitted(self, probe: bool = True) -> None:
        with self._lock:
            if self._admit(probe):
                return
            self.refused += 1
            stuck = self._stuck is not None and not self._stuck.done()
            reason = (f"a previous request is still waiting for the {self.noun}" if stuck else
                      f"retrying in {max(0.0, self._retry_at - self._clock()):.1f}s")
            message = (f"{self.noun} {self.name} unavailable ({self.last_error or 'failing'}; "
                       f"{reason})")
        raise CircuitOpen(message)

    def _result(self, future: cf.Future, wait: float, timeout: float) -> Any:
        try:
            result = future.result(wait)
        except cf.TimeoutError:
            with self._lock:
                self.timeouts += 1
                self._stuck = future
            try:
                self._on_timeout()
            except Exception:  # noqa: BLE001 - the timeout is reported either way
                log.exception("guard.abort_failed", target=self.name)
            self._failed(f"no answer within {timeout:g}s")
            raise self.timeout_error(f"{self.noun} {self.name}: no answer within {timeout:g}s") from None
        except Exception as exc:
            if not isinstance(exc, self.failure_types):
                self._succeeded()  # it answered (with an error): it is alive
                raise
            self._counted(exc)
            self._failed(str(exc))
            raise type(exc)(f"{self.noun} {self.name}: {exc}") from None
        self._succeeded()
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
