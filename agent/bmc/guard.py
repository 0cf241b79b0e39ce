"""Isolation for one BMC: its own worker thread, a timeout on every call, and
a circuit breaker with exponential backoff.

pyghmi calls block their thread, and a dead BMC blocks it for seconds of
retransmissions.  So every call to one BMC runs on that BMC's single worker
thread (BMCs also prefer one request at a time; concurrent callers take
turns, and the wait for a turn never counts against the BMC), and the call
itself gets at most ``timeout``.  After a failure the circuit *opens*: calls are refused at once
(UNAVAILABLE, no network traffic) until the backoff has passed; then one
*half-open* probe goes through, and its outcome closes the circuit or opens
it again for twice as long (up to ``max_backoff``).  A dead BMC therefore
costs one timeout per backoff period, never one per caller; a call that
outlives its timeout keeps the worker busy, and everything behind it is
refused rather than queued.

What counts as a failure is the backend's: ``BmcUnreachable`` and
``BmcAuthFailed`` (and timeouts); an error completion code means the BMC is
alive and does not count.
"""
from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from typing import Any, Callable

from agent.backends.ipmi import BmcAuthFailed, BmcUnreachable
from agent.errors import Unavailable
from agent.logs import get_logger

log = get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpen(Unavailable):
    pass


class BmcTimeout(BmcUnreachable):
    pass


class Guard:
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
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bmc-{name}")
        self._turn = threading.Lock()  # one caller on the worker at a time
        self._stuck: cf.Future | None = None  # a call that outlived its timeout
        self._state = CLOSED
        self._backoff = 0.0
        self._retry_at = 0.0
        self.up: bool | None = None  # None until the first call ends
        self.last_error = ""
        self.calls = self.failures = self.timeouts = self.refused = 0
        self.auth_failures = 0

    # -- state -----------------------------------------------------------
    @property
    def circuit(self) -> str:
        with self._lock:
            return self._state

    def retry_in(self) -> float:
        with self._lock:
            return max(0.0, self._retry_at - self._clock()) if self._state == OPEN else 0.0

    def _admit(self, probe: bool = True) -> bool:
        """Lock held.  True when this call may go to the BMC (and, when the
        circuit was open and ``probe``, it becomes the half-open probe)."""
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

    # -- calls -----------------------------------------------------------
    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` on the worker; its result, or the backend's error, or
        ``BmcTimeout`` after ``timeout``, or ``CircuitOpen`` without trying."""
        timeout = self.timeout if timeout is None else timeout
        self._refuse_unless_admitted(probe=False)  # fail fast while open
        # Wait for our turn behind healthy calls (a poll, another RPC); if the
        # turn does not come within the timeout, this call gives up without
        # blaming the BMC.
        if not self._turn.acquire(timeout=timeout):
            raise Unavailable(f"BMC {self.name} busy: no turn within {timeout:g}s")
        try:
            self._refuse_unless_admitted()  # the call we waited behind may have failed
            with self._lock:
                self.calls += 1
                future = self._pool.submit(fn)
            return self._result(future, timeout)
        finally:
            self._turn.release()

    def _refuse_unless_admitted(self, probe: bool = True) -> None:
        with self._lock:
            if self._admit(probe):
                return
            self.refused += 1
            stuck = self._stuck is not None and not self._stuck.done()
            reason = ("a previous request is still waiting for the BMC" if stuck else
                      f"retrying in {max(0.0, self._retry_at - self._clock()):.1f}s")
            message = f"BMC {self.name} unavailable ({self.last_error or 'failing'}; {reason})"
        raise CircuitOpen(message)

    def _result(self, future: cf.Future, timeout: float) -> Any:
        try:
            result = future.result(timeout)
        except cf.TimeoutError:
            with self._lock:
                self.timeouts += 1
                self._stuck = future
            try:
                self._on_timeout()
            except Exception:  # noqa: BLE001 - the timeout is reported either way
                log.exception("bmc.abort_failed", target=self.name)
            self._failed(f"no answer within {timeout:g}s")
            raise BmcTimeout(f"BMC {self.name}: no answer within {timeout:g}s") from None
        except (BmcUnreachable, BmcAuthFailed) as exc:
            if isinstance(exc, BmcAuthFailed):
                with self._lock:
                    self.auth_failures += 1
            self._failed(str(exc))
            raise type(exc)(f"BMC {self.name}: {exc}") from None
        except Exception:
            self._succeeded()  # it answered (with an error code): it is alive
            raise
        self._succeeded()
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
