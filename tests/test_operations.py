"""The operations journal and manager with a test-only kind: idempotency by
request_id (also across a SIGKILL), conflicts, queueing, cancellation,
waiting, retention, recovery."""
import os
import pathlib
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from agent.errors import InvalidArgument, NotFound, Unavailable
from agent.operations.journal import INTERRUPTED, DuplicateRequest, Journal, JournalError
from agent.operations.manager import (Conflict, OperationCancelled, OperationKind,
                                      OperationManager)
from agent.operations.model import Operation, OperationState as S, args_hash

ROOT = pathlib.Path(__file__).resolve().parent.parent


class SleepKind:
    """``test.sleep``: records each run in ``calls`` (the side effect), then
    per its arguments: ``progress`` -> reports it; ``hold`` -> waits for
    ``release`` (or a cancel: stops unless ``unstoppable``); ``sleep`` ->
    sleeps; ``fail`` -> raises; returns ``{"n": args["n"]}``."""

    def __init__(self, name="test.sleep", conflict="reject", resumable=False):
        self.name, self.calls, self.resumed = name, [], []
        self.started, self.release = threading.Event(), threading.Event()
        self.kind = OperationKind(name, run=self.run, conflict=conflict, resumable=resumable,
                                  resource=lambda args: args.get("resource", "thing/1"))

    def run(self, ctx, args):
        self.calls.append(args)
        self.resumed.append(ctx.resumed)
        if "progress" in args:
            ctx.progress(args["progress"], "half way")
        self.started.set()
        if args.get("hold"):
            while not self.release.wait(0.01):
                if ctx.cancelled.is_set() and not args.get("unstoppable"):
                    raise OperationCancelled("stopped at a safe point")
        time.sleep(args.get("sleep", 0))
        if args.get("fail") == "invalid":
            raise InvalidArgument("speed", "too fast")
        if args.get("fail"):
            raise RuntimeError("boom")
        if args.get("bad_result"):
            return {"when": object()}
        return {"n": args.get("n", 0)}


class Clock:
    def __init__(self, t=1.7e9):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def journal(tmp_path):
    j = Journal(str(tmp_path / "operations.db"))
    yield j
    j.close()


@pytest.fixture
def make(journal):
    managers = []

    def make(*kinds, clock=time.time, **kw):
        m = OperationManager(journal, {k.name: k.kind for k in kinds}, clock=clock, **kw)
        m.recover()
        managers.append(m)
        return m
    yield make
    for m in managers:
        m.close()


def done(manager, op, timeout=5.0):
    op = manager.wait(op.name, timeout)
    assert op.done, op
    return op


def new_op(name="operations/1", request_id="r1", state=S.PENDING, **kw):
    return Operation(name=name, kind=kw.pop("kind", "test.sleep"), request_id=request_id,
                     resource="thing/1", state=state, args_hash=args_hash({}),
                     create_time=kw.pop("create_time", 1.0), **kw)


# -- journal -----------------------------------------------------------------

def test_journal_insert_find_update_list(journal, tmp_path):
    op = journal.insert(new_op(args={"a": [1, 2]}))
    assert op.seq > 0 and journal.get(op.name) == op
    with pytest.raises(DuplicateRequest) as dup:
        journal.insert(new_op(name="operations/2"))
    assert dup.value.existing == op
    assert journal.find("test.sleep", "r1") == op and journal.find("test.sleep", "r2") is None
    assert journal.find("other.kind", "r1") is None  # request_ids are per kind
    journal.insert(new_op(name="operations/3", request_id="r3", kind="other.kind"))
    updated = journal.update(op.name, state=S.SUCCEEDED, result={"x": 1}, end_time=5.0)
    assert (updated.state, updated.result, updated.end_time) == (S.SUCCEEDED, {"x": 1}, 5.0)
    with pytest.raises(KeyError):
        journal.update("operations/none", message="x")
    with pytest.raises(TypeError):
        journal.update(op.name, request_id="changed")
    assert [o.name for o in journal.list()] == ["operations/1", "operations/3"]
    assert [o.name for o in journal.list(kind="other.kind")] == ["operations/3"]
    assert [o.name for o in journal.list(state=S.PENDING)] == ["operations/3"]
    assert [o.name for o in journal.list(after=op.seq)] == ["operations/3"]
    assert [o.name for o in journal.list(limit=1)] == ["operations/1"]
    assert journal.get("operations/none") is None
    mode = os.stat(tmp_path / "operations.db").st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert journal.integrity_check() == "ok"


def test_journal_mark_interrupted_and_purge(journal):
    journal.insert(new_op("operations/a", "a", state=S.RUNNING))
    journal.insert(new_op("operations/b", "b", state=S.PENDING, kind="test.resume"))
    journal.insert(new_op("operations/c", "c", state=S.SUCCEEDED, end_time=10.0))
    left = journal.mark_interrupted({"test.resume"})
    assert [o.name for o in left] == ["operations/b"]
    a = journal.get("operations/a")
    assert (a.state, a.error_code, a.error_message) == (S.FAILED, 10, INTERRUPTED)
    assert journal.purge(finished_before=5.0) == 0
    assert journal.purge(finished_before=a.end_time + 1) == 2  # a and c; b is unfinished
    assert [o.name for o in journal.list()] == ["operations/b"]


def test_journal_refuses_a_newer_schema(tmp_path):
    import sqlite3
    path = str(tmp_path / "operations.db")
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(JournalError, match="schema version 99"):
        Journal(path)


# -- manager: idempotency ------------------------------------------------------

def test_same_request_id_and_args_returns_the_same_operation(make):
    k = SleepKind()
    m = make(k)
    first = m.start("test.sleep", "req-1", {"n": 1, "b": [1, 2]}, "uid:0")
    assert first.state is S.PENDING and first.name.startswith("operations/")
    assert (first.kind, first.request_id, first.resource, first.identity) == (
        "test.sleep", "req-1", "thing/1", "uid:0")
    again = m.start("test.sleep", "req-1", {"b": [1, 2], "n": 1}, "uid:1")  # key order is free
    assert again.name == first.name
    op = done(m, first)
    assert (op.state, op.result, op.progress_percent) == (S.SUCCEEDED, {"n": 1}, 100)
    assert op.create_time <= op.start_time <= op.end_time
    assert m.start("test.sleep", "req-1", {"n": 1, "b": [1, 2]}, "uid:0") == op
    assert len(k.calls) == 1


def test_same_request_id_with_other_args_is_invalid(make):
    m = make(SleepKind())
    done(m, m.start("test.sleep", "req-1", {"n": 1}, "uid:0"))
    with pytest.raises(InvalidArgument) as err:
        m.start("test.sleep", "req-1", {"n": 2}, "uid:0")
    assert err.value.field == "request_id"
    assert str(err.value) == "request_id: reused with different arguments"


@pytest.mark.parametrize("request_id", ["", "x" * 129, "has space", "ümlaut", "a/b", "a\n"])
def test_invalid_request_id(make, request_id):
    m = make(SleepKind())
    with pytest.raises(InvalidArgument) as err:
        m.start("test.sleep", request_id, {}, "uid:0")
    assert err.value.field == "request_id"


def test_valid_request_ids_and_unknown_kind(make):
    m = make(SleepKind())
    for rid in ("x" * 128, "6f1c2a7e-0d4b-4c3e-9a57-1f0e2b3c4d5e", "a.b_c:d-e"):
        done(m, m.start("test.sleep", rid, {"resource": ""}, "uid:0"))
    with pytest.raises(InvalidArgument) as err:
        m.start("no.such", "r", {}, "uid:0")
    assert err.value.field == "kind"


def test_fifty_concurrent_starts_run_once(make):
    k = SleepKind()
    m = make(k, max_workers=8)
    barrier = threading.Barrier(50)
    answers, failures = [], []

    def call():
        barrier.wait()
        try:
            answers.append(m.start("test.sleep", "same-request", {"n": 7, "sleep": 0.05}, "uid:0"))
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)
    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert len(answers) == 50 and len({a.name for a in answers}) == 1
    done(m, answers[0])
    assert len(k.calls) == 1
    assert len(m.list()) == 1


# -- conflicts and queueing ------------------------------------------------------

def test_conflict_reject(make):
    k = SleepKind()
    m = make(k)
    first = m.start("test.sleep", "r1", {"hold": True}, "uid:0")
    assert k.started.wait(5)
    with pytest.raises(Conflict) as err:
        m.start("test.sleep", "r2", {}, "uid:0")
    assert first.name in str(err.value) and "thing/1" in str(err.value)
    assert m.start("test.sleep", "r1", {"hold": True}, "uid:0").name == first.name  # a retry is fine
    other = m.start("test.sleep", "r3", {"resource": "thing/2"}, "uid:0")  # another resource
    assert done(m, other).state is S.SUCCEEDED
    k.release.set()
    done(m, first)
    assert done(m, m.start("test.sleep", "r2", {}, "uid:0")).state is S.SUCCEEDED


def test_conflict_queue_runs_after(make):
    k = SleepKind(conflict="queue")
    m = make(k)
    first = m.start("test.sleep", "r1", {"hold": True, "n": 1}, "uid:0")
    assert k.started.wait(5)
    second = m.start("test.sleep", "r2", {"n": 2}, "uid:0")
    assert second.state is S.PENDING and first.name in second.message
    time.sleep(0.1)
    assert m.get(second.name).state is S.PENDING and len(k.calls) == 1
    k.release.set()
    a, b = done(m, first), done(m, second)
    assert [c["n"] for c in k.calls] == [1, 2]
    assert b.state is S.SUCCEEDED and b.start_time >= a.end_time


# -- cancellation, waiting, failures -------------------------------------------

def test_cancel_pending_and_running(make):
    k = SleepKind(conflict="queue")
    m = make(k)
    running = m.start("test.sleep", "r1", {"hold": True, "n": 1}, "uid:0")
    queued = m.start("test.sleep", "r2", {"n": 2}, "uid:0")
    third = m.start("test.sleep", "r3", {"n": 3}, "uid:0")
    assert k.started.wait(5)
    c = m.cancel(queued.name)
    assert (c.state, c.error_code, c.cancel_requested) == (S.CANCELLED, 1, True)
    assert c.end_time > 0
    r = m.cancel(running.name)
    assert r.state is S.RUNNING and r.cancel_requested
    r = done(m, running)
    assert (r.state, r.error_code, r.error_message) == (S.CANCELLED, 1, "stopped at a safe point")
    assert done(m, third).state is S.SUCCEEDED  # the queue moved on past the cancelled one
    assert [c["n"] for c in k.calls] == [1, 3]
    assert m.cancel(third.name) == m.get(third.name)  # finished: unchanged
    with pytest.raises(NotFound):
        m.cancel("operations/none")


def test_cancel_running_kind_may_finish(make):
    k = SleepKind()
    m = make(k)
    op = m.start("test.sleep", "r1", {"hold": True, "unstoppable": True}, "uid:0")
    assert k.started.wait(5)
    m.cancel(op.name)
    time.sleep(0.05)
    k.release.set()
    op = done(m, op)
    assert op.state is S.SUCCEEDED and op.cancel_requested


def test_wait_with_timeout(make):
    k = SleepKind()
    m = make(k)
    op = m.start("test.sleep", "r1", {"hold": True, "progress": 50}, "uid:0")
    assert k.started.wait(5)
    t0 = time.monotonic()
    waited = m.wait(op.name, 0.2)
    assert 0.2 <= time.monotonic() - t0 < 2
    assert (waited.state, waited.progress_percent, waited.message) == (S.RUNNING, 50, "half way")
    threading.Timer(0.2, k.release.set).start()
    t0 = time.monotonic()
    assert m.wait(op.name, 10).state is S.SUCCEEDED
    assert time.monotonic() - t0 < 2
    with pytest.raises(NotFound):
        m.wait("operations/none", 0.1)


def test_failures_carry_their_status(make):
    m = make(SleepKind())
    op = done(m, m.start("test.sleep", "r1", {"fail": "invalid"}, "uid:0"))
    assert (op.state, op.error_code, op.error_message) == (S.FAILED, 3, "speed: too fast")
    op = done(m, m.start("test.sleep", "r2", {"fail": "other"}, "uid:0"))
    assert (op.state, op.error_code) == (S.FAILED, 13) and "internal error" in op.error_message
    op = done(m, m.start("test.sleep", "r3", {"bad_result": True}, "uid:0"))
    assert (op.state, op.error_code) == (S.FAILED, 13)


def test_purge_by_retention(make):
    clock = Clock()
    m = make(SleepKind(), clock=clock, retention=3600)
    old = done(m, m.start("test.sleep", "old", {}, "uid:0"))
    clock.t += 3000
    recent = done(m, m.start("test.sleep", "recent", {}, "uid:0"))
    assert m.purge() == 0
    clock.t += 1000
    assert m.purge() == 1
    with pytest.raises(NotFound):
        m.get(old.name)
    assert m.get(recent.name) == recent
    again = done(m, m.start("test.sleep", "old", {"n": 2}, "uid:0"))  # forgotten: usable again
    assert again.name != old.name


def test_close_refuses_new_operations(make):
    m = make(SleepKind())
    m.close()
    with pytest.raises(Unavailable):
        m.start("test.sleep", "r1", {}, "uid:0")


def test_recover_must_come_first(journal):
    m = OperationManager(journal, {})
    try:
        m.recover()
        with pytest.raises(RuntimeError):
            m.recover()
    finally:
        m.close()


# -- restarts ------------------------------------------------------------------

def test_recover_resumes_resumable_kinds(journal, make):
    journal.insert(new_op("operations/r", "r", state=S.RUNNING, kind="test.resume",
                          args={"n": 5}, start_time=2.0))
    journal.insert(new_op("operations/s", "s", state=S.RUNNING))
    resume, plain = SleepKind("test.resume", resumable=True), SleepKind()
    m = OperationManager(journal, {"test.resume": resume.kind, "test.sleep": plain.kind})
    try:
        assert [o.name for o in m.recover()] == ["operations/r"]
        r = m.wait("operations/r", 5)
        assert (r.state, r.result, r.start_time) == (S.SUCCEEDED, {"n": 5}, 2.0)
        assert resume.resumed == [True] and plain.calls == []
        s = m.get("operations/s")
        assert (s.state, s.error_code, s.error_message) == (S.FAILED, 10, INTERRUPTED)
        fresh = m.wait(m.start("test.resume", "new", {"n": 1}, "uid:0").name, 5)
        assert fresh.args == {"n": 1} and resume.resumed == [True, False]
    finally:
        m.close()


CHILD = r"""
import os
import sys
import time

from agent.operations.journal import Journal
from agent.operations.manager import OperationKind, OperationManager

def run(ctx, args):
    i = 0
    while True:  # journal writes until killed
        ctx.progress(i % 100, f"step {i}")
        if i == 0:
            os.write(1, b"running\n")  # one write: lines from two threads never mix
        i += 1

kinds = {"test.sleep": OperationKind("test.sleep", run=run, resource=lambda a: "thing/1")}
m = OperationManager(Journal(sys.argv[1]), kinds)
m.recover()
os.write(1, f"name {m.start('test.sleep', 'req-crash', {'n': 1}, 'uid:0').name}\n".encode())
time.sleep(60)
"""


def test_sigkill_mid_run_then_recover(tmp_path):
    db = str(tmp_path / "operations.db")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, db], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env=env)
    try:
        seen = {}
        while len(seen) < 2:
            line = child.stdout.readline()
            assert line, "child exited early"
            word, _, rest = line.strip().partition(" ")
            seen[word] = rest
        time.sleep(0.2)  # let it write some more
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    name = seen["name"]
    journal = Journal(db)
    try:
        assert journal.integrity_check() == "ok"
        crashed = journal.get(name)
        assert crashed.state is S.RUNNING and crashed.message.startswith("step ")
        k = SleepKind()
        m = OperationManager(journal, {"test.sleep": k.kind})
        try:
            assert m.recover() == []
            op = m.get(name)
            assert (op.state, op.error_code, op.error_message) == (S.FAILED, 10, INTERRUPTED)
            assert op.end_time >= op.start_time > 0
            assert m.start("test.sleep", "req-crash", {"n": 1}, "uid:0") == op  # not run again
            with pytest.raises(InvalidArgument):
                m.start("test.sleep", "req-crash", {"n": 2}, "uid:0")
            time.sleep(0.1)
            assert k.calls == []
        finally:
            m.close()
        assert journal.integrity_check() == "ok"
    finally:
        journal.close()
