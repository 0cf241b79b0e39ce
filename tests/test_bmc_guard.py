"""agent.bmc.guard.Guard: one worker per BMC, a timeout per call, and a circuit
breaker with exponential backoff.

Covers: results pass through; a hanging call times out promptly and opens the
circuit; an open circuit refuses at once without touching the BMC; one
half-open probe after the backoff; doubling backoff capped at max_backoff and
reset by a success; a call stuck past its timeout blocks the worker so later
calls are refused, not queued; completion-code errors mean the BMC is alive;
``on_change`` fires once per transition (no log storm); the counters.

Backoff is driven by an injected fake clock; timeouts are real and short.
"""
from __future__ import annotations

import threading
import time

import pytest

from agent.backends.ipmi import BmcAuthFailed, BmcCommandFailed, BmcUnreachable
from agent.bmc.guard import Guard, BmcTimeout, CircuitOpen
from agent.errors import Unavailable

TIMEOUT = 0.2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Fn:
    """A callable that counts its invocations and does what it is told."""

    def __init__(self, result: object = "ok") -> None:
        self.result = result
        self.count = 0

    def __call__(self) -> object:
        self.count += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def release():
    """An event that blocked calls wait on; set at teardown so no worker hangs."""
    ev = threading.Event()
    yield ev
    ev.set()


@pytest.fixture
def make(clock):
    guards: list[Guard] = []
    changes: list[tuple[bool, str]] = []

    def make(**kw) -> Guard:
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("initial_backoff", 2.0)
        kw.setdefault("max_backoff", 300.0)
        kw.setdefault("clock", clock)
        kw.setdefault("on_change", lambda up, error: changes.append((up, error)))
        g = Guard("bmc1", **kw)
        guards.append(g)
        return g

    make.changes = changes
    yield make
    for g in guards:
        g.close()


def fail(guard: Guard, exc: Exception | None = None) -> None:
    with pytest.raises(type(exc) if exc else BmcUnreachable):
        guard.call(Fn(exc or BmcUnreachable("no route to host")))


# ------------------------------------------------------------------ success --

def test_success_returns_the_value_and_marks_the_bmc_up(make):
    g = make()
    assert g.up is None  # nothing known before the first call
    assert g.call(lambda: {"power_on": True}) == {"power_on": True}
    assert g.up is True
    assert g.circuit == "closed"
    assert g.calls == 1 and g.failures == 0


def test_calls_run_on_one_worker_thread_not_the_callers(make):
    g = make()
    names = {g.call(lambda: threading.current_thread().name) for _ in range(3)}
    assert len(names) == 1
    assert names != {threading.current_thread().name}
    assert "bmc1" in names.pop()


# ------------------------------------------------------------------ timeout --

def test_hanging_call_times_out_after_about_timeout_and_opens_the_circuit(make, release):
    g = make(clock=time.monotonic)
    t0 = time.monotonic()
    with pytest.raises(BmcTimeout) as info:
        g.call(release.wait)
    elapsed = time.monotonic() - t0
    assert TIMEOUT - 0.01 <= elapsed < TIMEOUT + 0.2
    assert isinstance(info.value, BmcUnreachable)  # callers treat it as unreachable
    assert g.circuit == "open"
    assert g.up is False
    assert g.timeouts == 1 and g.failures == 1


def test_per_call_timeout_overrides_the_default(make, release):
    g = make(timeout=5.0)
    t0 = time.monotonic()
    with pytest.raises(BmcTimeout, match="0.1s"):
        g.call(release.wait, timeout=0.1)
    assert time.monotonic() - t0 < 0.3


# ------------------------------------------------------------- open circuit --

def test_open_circuit_refuses_at_once_without_calling_the_bmc(make):
    g = make()
    fail(g)
    fn = Fn()
    t0 = time.monotonic()
    with pytest.raises(CircuitOpen) as info:
        g.call(fn)
    assert time.monotonic() - t0 < 0.05
    assert fn.count == 0
    assert isinstance(info.value, Unavailable)  # UNAVAILABLE to API clients
    assert "no route to host" in str(info.value)  # says why
    assert g.refused == 1
    assert g.calls == 1  # the refused call never counted as a BMC call


def test_retry_in_counts_down_the_backoff(make, clock):
    g = make(initial_backoff=2.0)
    assert g.retry_in() == 0.0
    fail(g)
    assert g.retry_in() == pytest.approx(2.0)
    clock.advance(1.5)
    assert g.retry_in() == pytest.approx(0.5)
    clock.advance(1.0)
    assert g.retry_in() == 0.0


def test_one_half_open_probe_after_the_backoff(make, clock):
    g = make(initial_backoff=2.0)
    fail(g)
    clock.advance(1.9)
    fn = Fn()
    with pytest.raises(CircuitOpen):
        g.call(fn)
    assert fn.count == 0
    clock.advance(0.1)
    assert g.call(fn) == "ok"  # the probe went through and succeeded
    assert fn.count == 1
    assert g.circuit == "closed" and g.up is True


def test_only_one_probe_at_a_time(make, clock, release):
    g = make(initial_backoff=2.0, timeout=2.0)
    fail(g)
    clock.advance(2.0)
    started = threading.Event()

    def slow_probe():
        started.set()
        release.wait(2.0)
        return "probe"

    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(g.call(slow_probe)))
    t.start()
    assert started.wait(1.0)
    assert g.circuit == "half-open"
    other = Fn()
    with pytest.raises(CircuitOpen):
        g.call(other)
    assert other.count == 0
    release.set()
    t.join(2.0)
    assert result == ["probe"]
    assert g.circuit == "closed"


def test_failing_probe_reopens_with_doubled_backoff_capped_at_max(make, clock):
    g = make(initial_backoff=1.0, max_backoff=5.0)
    seen = []
    fail(g)
    for _ in range(5):
        seen.append(g.retry_in())
        clock.advance(g.retry_in())
        fail(g)  # the probe fails
    seen.append(g.retry_in())
    assert seen == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert g.failures == 6


def test_backoff_is_not_shorter_than_initial_even_if_max_is(make, clock):
    g = make(initial_backoff=10.0, max_backoff=3.0)
    fail(g)
    clock.advance(10.0)
    fail(g)
    assert g.retry_in() == 10.0


def test_success_closes_the_circuit_and_resets_the_backoff(make, clock):
    g = make(initial_backoff=1.0, max_backoff=60.0)
    fail(g)
    for _ in range(3):
        clock.advance(g.retry_in())
        fail(g)
    assert g.retry_in() == 8.0
    clock.advance(8.0)
    assert g.call(Fn(7)) == 7
    assert g.circuit == "closed" and g.retry_in() == 0.0
    fail(g)  # the next outage starts from the initial backoff again
    assert g.retry_in() == 1.0


def test_timed_out_call_still_on_the_worker_blocks_later_calls(make, clock, release):
    g = make(initial_backoff=1.0, timeout=0.1)
    with pytest.raises(BmcTimeout):
        g.call(release.wait)
    clock.advance(100.0)  # long past the backoff
    fn = Fn()
    t0 = time.monotonic()
    with pytest.raises(CircuitOpen, match="still waiting"):
        g.call(fn)
    assert time.monotonic() - t0 < 0.05  # refused, not queued behind the stuck call
    assert fn.count == 0
    # Once the stuck call ends, the probe goes through.
    release.set()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            assert g.call(fn) == "ok"
            break
        except CircuitOpen:
            time.sleep(0.01)
    assert fn.count == 1 and g.circuit == "closed"


def test_concurrent_call_on_a_healthy_bmc_waits_its_turn(make, release):
    g = make(timeout=1.0)
    started = threading.Event()

    def poll():  # e.g. the ipmi collector's poll, well within its timeout
        started.set()
        release.wait(1.0)
        return "polled"

    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(g.call(poll)))
    t.start()
    assert started.wait(1.0)
    threading.Timer(0.05, release.set).start()
    try:
        assert g.call(lambda: "power on") == "power on"  # e.g. Bmc.GetPowerStatus
    finally:
        release.set()
        t.join(2.0)
    assert result == ["polled"]
    assert g.refused == 0 and g.up is True


# ------------------------------------------------------ what counts as failure --

def test_completion_code_error_means_the_bmc_is_alive(make):
    g = make()
    exc = BmcCommandFailed("get sensor 7", 0xCB, "requested data not present")
    with pytest.raises(BmcCommandFailed):
        g.call(Fn(exc))
    assert g.circuit == "closed" and g.up is True and g.failures == 0
    assert g.call(Fn("next")) == "next"  # not refused


def test_other_exceptions_propagate_and_do_not_open_the_circuit(make):
    g = make()
    with pytest.raises(ValueError):
        g.call(Fn(ValueError("decode error")))
    assert g.circuit == "closed" and g.failures == 0


def test_auth_failure_opens_the_circuit_and_is_counted(make):
    g = make()
    fail(g, BmcAuthFailed("bmc1: wrong user or password"))
    assert g.circuit == "open" and g.up is False
    assert g.auth_failures == 1 and g.failures == 1
    assert g.last_error == "bmc1: wrong user or password"


def test_failure_while_closed_starts_at_initial_backoff(make):
    g = make(initial_backoff=3.0)
    assert g.call(Fn()) == "ok"
    fail(g)
    assert g.retry_in() == 3.0


# ---------------------------------------------------------------- on_change --

def test_on_change_once_per_transition_not_per_attempt(make, clock):
    g = make(initial_backoff=1.0)
    for _ in range(5):  # five identical failures: one "down"
        clock.advance(g.retry_in())
        fail(g)
        with pytest.raises(CircuitOpen):  # plus refusals in between
            g.call(Fn())
    assert make.changes == [(False, "no route to host")]
    clock.advance(g.retry_in())
    g.call(Fn())
    g.call(Fn())
    g.call(Fn())
    assert make.changes == [(False, "no route to host"), (True, "")]


def test_first_success_reports_up_once(make):
    g = make()
    for _ in range(3):
        g.call(Fn())
    assert make.changes == [(True, "")]


def test_a_different_error_while_down_is_reported(make, clock):
    g = make(initial_backoff=1.0)
    fail(g)
    clock.advance(1.0)
    fail(g, BmcAuthFailed("bmc1: wrong user or password"))
    assert make.changes == [(False, "no route to host"),
                            (False, "bmc1: wrong user or password")]


def test_timeout_reports_down_once(make, clock, release):
    g = make(initial_backoff=1.0, timeout=0.05)
    with pytest.raises(BmcTimeout):
        g.call(release.wait)
    assert make.changes == [(False, "no answer within 0.05s")]


# ----------------------------------------------------------------- counters --

def test_counters(make, clock, release):
    g = make(initial_backoff=1.0, timeout=0.05)
    g.call(Fn())                                        # call 1: ok
    with pytest.raises(BmcCommandFailed):               # call 2: alive, error code
        g.call(Fn(BmcCommandFailed("x", 0xC1, "invalid command")))
    fail(g)                                             # call 3: unreachable
    with pytest.raises(CircuitOpen):                    # refused
        g.call(Fn())
    clock.advance(1.0)
    fail(g, BmcAuthFailed("auth"))                      # call 4: auth failure
    clock.advance(2.0)
    with pytest.raises(BmcTimeout):                     # call 5: timeout
        g.call(release.wait)
    with pytest.raises(CircuitOpen):                    # refused
        g.call(Fn())
    assert (g.calls, g.failures, g.timeouts, g.refused, g.auth_failures) == (5, 3, 1, 2, 1)


def test_waiting_too_long_for_a_turn_does_not_blame_the_bmc(make, release):
    """A caller that cannot get its turn within its timeout (a slow but
    healthy poll holds the worker) gives up with UNAVAILABLE, and the circuit
    stays closed: the BMC did nothing wrong."""
    g = make(timeout=1.0)
    started = threading.Event()

    def slow_poll():
        started.set()
        release.wait(2.0)
        return "polled"

    t = threading.Thread(target=lambda: g.call(slow_poll))
    t.start()
    assert started.wait(1.0)
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="busy"):
        g.call(lambda: "late", timeout=0.1)
    assert time.monotonic() - t0 < 0.5
    release.set()
    t.join(2.0)
    assert g.circuit == "closed" and g.up is True and g.failures == 0
