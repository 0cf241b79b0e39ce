"""ProbePool: blocking calls under a deadline, at most one in flight per key,
hung calls written off and replaced, threads bounded."""
from __future__ import annotations

import threading
import time

import pytest

from agent.backends.probes import ProbePool, Status


class Calls:
    """fn(key): returns key * 2, raises for "bad", blocks on ``gate`` for hung keys."""

    def __init__(self, hung=()) -> None:
        self.hung = set(hung)
        self.gate = threading.Event()
        self.count: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, key: str) -> str:
        with self.lock:
            self.count[key] = self.count.get(key, 0) + 1
        if key in self.hung:
            self.gate.wait()
        if key == "bad":
            raise PermissionError(13, "Permission denied")
        return key * 2


@pytest.fixture
def calls():
    c = Calls()
    yield c
    c.gate.set()  # let hung threads end


def wait_until(cond, timeout=5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_every_key_answered_in_order_with_values_and_errors(calls):
    pool = ProbePool(calls, workers=2)
    out = pool.run(["a", "bad", "c", "a"], timeout=2.0)
    assert list(out) == ["a", "bad", "c"]  # duplicates asked once
    assert out["a"].status is Status.OK and out["a"].value == "aa"
    assert out["bad"].status is Status.ERROR and isinstance(out["bad"].error, PermissionError)
    assert out["c"].value == "cc"
    assert pool.threads() <= 2
    assert pool.in_flight() == set()
    pool.close()


def test_hung_key_times_out_then_is_stuck_without_a_new_call(calls):
    calls.hung = {"nfs"}
    pool = ProbePool(calls, workers=2, stall=0.05)
    t0 = time.monotonic()
    out = pool.run(["a", "nfs", "b"], timeout=1.0)
    assert 0.9 <= time.monotonic() - t0 < 1.8
    assert out["nfs"].status is Status.TIMEOUT
    assert (out["a"].value, out["b"].value) == ("aa", "bb")
    threads = []
    for _ in range(3):  # later runs: answered at once, no new call
        t0 = time.monotonic()
        out = pool.run(["a", "nfs", "b"], timeout=1.0)
        assert time.monotonic() - t0 < 0.5
        assert out["nfs"].status is Status.STUCK
        assert out["a"].status is Status.OK
        threads.append(pool.threads())
    # The hung call keeps its one thread; the pool's staff of two is restored
    # once, then nothing more is started however often it runs.
    assert threads == [3, 3, 3]
    assert calls.count["nfs"] == 1
    assert pool.in_flight() == {"nfs"}
    calls.gate.set()  # the server comes back
    wait_until(lambda: not pool.in_flight())
    calls.hung = set()
    out = pool.run(["a", "nfs", "b"], timeout=0.3)
    assert out["nfs"].status is Status.OK and calls.count["nfs"] == 2
    pool.close()


def test_a_hung_call_does_not_hold_up_the_keys_behind_it(calls):
    calls.hung = {"h1", "h2"}
    pool = ProbePool(calls, workers=1, stall=0.05)  # one worker: both hangs in its way
    out = pool.run(["h1", "h2", "a", "b", "c"], timeout=1.0)
    assert [out[k].status for k in "abc"] == [Status.OK] * 3
    assert out["h1"].status is out["h2"].status is Status.TIMEOUT
    assert pool.threads() == 3  # two written off, one on staff
    pool.close()


def test_threads_never_exceed_the_bound_and_shrink_back(calls):
    hung = [f"h{i}" for i in range(10)]
    calls.hung = set(hung)
    pool = ProbePool(calls, workers=2, max_threads=4, stall=0.02)
    out = pool.run(hung + ["a"], timeout=0.4)
    assert pool.threads() == 4
    assert sum(o.status is Status.TIMEOUT for o in out.values()) >= 10
    assert len(pool.in_flight()) == 4  # the others were withdrawn, never called
    assert sum(calls.count.values()) == 4
    out = pool.run(hung + ["a"], timeout=0.2)  # all threads hung: nothing more is started
    assert pool.threads() == 4 and sum(calls.count.values()) == 4
    assert out["a"].status is Status.TIMEOUT
    calls.gate.set()
    wait_until(lambda: not pool.in_flight() and pool.threads() <= 2)
    calls.hung = set()
    out = pool.run(hung + ["a"], timeout=2.0)
    assert all(o.status is Status.OK for o in out.values())
    pool.close()


def test_close_ends_idle_workers(calls):
    pool = ProbePool(calls, workers=3)
    pool.run(["a", "b", "c"], timeout=1.0)
    pool.close()
    wait_until(lambda: pool.threads() == 0)
    with pytest.raises(RuntimeError):
        pool.run(["a"], timeout=1.0)
