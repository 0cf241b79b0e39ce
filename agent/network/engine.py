"""The transactional apply: validate, plan, snapshot, journal, run, verify,
and roll back to exactly the snapshot on any failure (or at recover() after
a kill -9).  Design and rules: docs/network-internals.md.

The engine runs one transaction at a time (``busy`` while one runs or awaits
confirmation); the confirm timer, the caller-connection protection and the
one-apply answer of the API are the service's (agent/features/network.py).
"""
from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

from agent.errors import AgentError, FailedPrecondition, quote
from agent.logs import get_logger
from agent.network import snapshot
from agent.network.journal import Journal, Managed
from agent.network.model import NetworkState, StepFailed
from agent.network.plan import Plan, Step, compute, dependents
from agent.network.validate import validate

log = get_logger(__name__)
RESTORE_PASSES = 3  # a rollback re-plans after each pass; a step the kernel refused may succeed once others ran


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    changed: bool
    rolled_back: bool
    message: str


class ApplyFailed(FailedPrecondition):
    """A step (or the verification) failed; the namespace was rolled back."""


class NetworkEngine:
    """``backend``: :class:`agent.backends.netconf.NetconfBackend` (``read()``,
    ``execute(step)``).  ``publish(kind, attrs)``, if given, hears
    ``network.applied`` and ``network.rolled_back``.  ``step_hook(index, step)``
    runs before each step (tests inject failures and pauses with it)."""

    def __init__(self, backend, state_dir: str, publish: Callable[[str, dict], None] | None = None,
                 step_hook: Callable[[int, Step], None] | None = None) -> None:
        self.backend = backend
        self.journal = Journal(state_dir)
        self.publish = publish
        self.step_hook = step_hook
        self._lock = threading.Lock()
        self._running = False

    # ---- reading -------------------------------------------------------
    def live(self) -> NetworkState:
        return self.backend.read()

    def managed(self) -> frozenset[str]:
        return self.journal.managed().interfaces

    def _plan(self, desired: NetworkState, live: NetworkState) -> Plan:
        validate(desired, live)
        m = self.journal.managed()
        return compute(desired, live, m.interfaces, m.routes)

    def plan(self, desired: NetworkState) -> Plan:
        return self._plan(desired, self.backend.read())

    def awaiting_confirmation(self) -> float | None:
        record = self.journal.load()
        return record["deadline"] if record and record["phase"] == "awaiting" else None

    @property
    def busy(self) -> bool:
        return self._running or self.awaiting_confirmation() is not None

    # ---- changing ------------------------------------------------------
    def apply(self, desired: NetworkState, *, protected: frozenset[str] = frozenset(), force: bool = False,
              confirm_timeout: float | None = None, progress: Callable[[int, int, str], None] | None = None
              ) -> ApplyResult:
        """``protected``: interface names or IP addresses that must not be
        removed or taken down without ``force``.  ``progress(done, total,
        detail)`` hears each step."""
        with self._claim():
            live = self.backend.read()
            plan = self._plan(desired, live)
            if not force:
                _refuse_protected(plan, live, protected | {i.name for i in desired.interfaces if i.protected})
            before = self.journal.managed()
            after = Managed(frozenset(i.name for i in desired.interfaces if i.state != "absent"),
                            tuple(r for r in desired.routes if r.state != "absent"))
            if plan.empty:
                self.journal.save_managed(after)
                return ApplyResult(plan, changed=False, rolled_back=False, message="no changes")
            snap = snapshot.take(plan, live)
            txid = uuid.uuid4().hex[:12]
            record = self.journal.begin(txid, snap, before, after, [s.detail for s in plan.steps])
            log.info("network.apply_started", txid=txid, steps=len(plan))
            done = 0
            try:
                run_all = getattr(self.backend, "execute_all", None)
                if run_all is not None and self.step_hook is None:
                    # the whole plan in one call to the backend's worker (a hop per step cost more
                    # than the step); it stops at the first failure and says which
                    try:
                        run_all(plan.steps, progress)
                    except StepFailed as failed:
                        done = failed.index
                        raise failed.cause from None
                else:
                    for done, step in enumerate(plan.steps):
                        if self.step_hook is not None:
                            self.step_hook(done, step)
                        self.backend.execute(step)
                        if progress is not None:
                            progress(done + 1, len(plan), step.detail)
                done = len(plan)
                left = compute(desired, self.backend.read(), before.interfaces, before.routes)
                if not left.empty:
                    raise _Mismatch("; ".join(s.detail for s in left.steps[:5]))
            except Exception as exc:  # any failure, ours or the kernel's: back to the snapshot
                if isinstance(exc, _Mismatch):
                    what = f"verification found the kernel differs from the config ({exc})"
                elif done < len(plan):
                    what = f"step {done + 1}/{len(plan)} ({plan.steps[done].detail}) failed: {_reason(exc)}"
                else:
                    what = f"verification could not read the kernel: {_reason(exc)}"
                try:
                    left = self._restore(snap)
                except Exception as again:  # the journal stays "applying": recover() retries at start
                    log.exception("network.rollback_failed", txid=txid)
                    raise ApplyFailed(f"{what}; rollback failed ({_reason(again)}), "
                                      "retried at the next start") from exc
                self.journal.set_phase(record, "rolled_back")
                self.journal.save_managed(before)
                log.error("network.apply_failed", txid=txid, error=what, restored=not left)
                self._publish("network.rolled_back", txid=txid, reason=what)
                tail = "rolled back" if not left else f"rollback incomplete: {'; '.join(left[:3])}"
                raise ApplyFailed(f"{what}; {tail}") from exc
            self.journal.save_managed(after)
            deadline = time.time() + confirm_timeout if confirm_timeout else None
            self.journal.set_phase(record, "awaiting" if deadline else "committed", deadline)
            log.info("network.applied", txid=txid, steps=len(plan), awaiting_until=deadline)
            self._publish("network.applied", txid=txid, steps=len(plan))
            msg = f"applied {len(plan)} changes"
            if deadline:
                msg += f"; awaiting confirmation until {time.strftime('%H:%M:%S', time.gmtime(deadline))} UTC"
            return ApplyResult(plan, changed=True, rolled_back=False, message=msg)

    def confirm(self) -> None:
        with self._claim(allow_awaiting=True):
            record = self.journal.load()
            if not record or record["phase"] != "awaiting":
                raise FailedPrecondition("no network change awaits confirmation")
            self.journal.set_phase(record, "committed")
            log.info("network.confirmed", txid=record["txid"])

    def rollback(self) -> ApplyResult:
        """Back to the snapshot taken before the last apply (confirmed or not)."""
        with self._claim(allow_awaiting=True):
            record = self.journal.load()
            if not record or record["phase"] not in ("committed", "awaiting"):
                raise FailedPrecondition("no applied network change to roll back")
            return self._undo(record, "requested")

    def recover(self) -> str | None:
        """At start, before serving: undo a transaction that a crash left
        running or unconfirmed.  Returns what was done, or None."""
        with self._claim(allow_awaiting=True):
            record = self.journal.load()
            if not record or record["phase"] not in ("applying", "awaiting"):
                return None
            why = "the agent stopped mid-apply" if record["phase"] == "applying" else \
                "the agent stopped before the change was confirmed"
            return self._undo(record, why).message

    # ---- internals -----------------------------------------------------
    def _undo(self, record: dict, why: str) -> ApplyResult:
        snap = Journal.snapshot(record)
        live = self.backend.read()
        plan = snapshot.restore_plan(snap, live)
        left = self._restore(snap)
        self.journal.set_phase(record, "rolled_back")
        self.journal.save_managed(Managed.from_json(record["managed_before"]))
        msg = f"rolled back transaction {record['txid']} ({why})"
        if left:
            msg += f"; still differs: {'; '.join(left[:3])}"
        log.warning("network.rolled_back", txid=record["txid"], reason=why, complete=not left)
        self._publish("network.rolled_back", txid=record["txid"], reason=why)
        return ApplyResult(plan, changed=not plan.empty, rolled_back=True, message=msg)

    def _restore(self, snap: NetworkState) -> list[str]:
        """Run restore plans until the live state equals the snapshot; a step
        that fails is logged and the rest still run.  Returns what differs."""
        for _ in range(RESTORE_PASSES):
            plan = snapshot.restore_plan(snap, self.backend.read())
            if plan.empty:
                return []
            for step in plan.steps:
                try:
                    self.backend.execute(step)
                except Exception as exc:  # keep undoing the rest
                    log.error("network.rollback_step_failed", step=step.detail, error=_reason(exc))
        return snapshot.differences(snap, self.backend.read())

    @contextlib.contextmanager
    def _claim(self, allow_awaiting: bool = False) -> Iterator[None]:
        """One transaction at a time: a second caller is refused, never queued."""
        if not self._lock.acquire(blocking=False):
            raise FailedPrecondition("a network change is already being applied")
        try:
            if not allow_awaiting and self.awaiting_confirmation() is not None:
                raise FailedPrecondition("the last network change awaits confirmation or rollback")
            self._running = True
            yield
        finally:
            self._running = False
            self._lock.release()

    def _publish(self, kind: str, **attrs: object) -> None:
        if self.publish is not None:
            try:
                self.publish(kind, attrs)
            except Exception:  # a listener never breaks a transaction
                log.exception("network.publish_failed", kind=kind)


class _Mismatch(Exception):
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return str(exc)
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    # OSError and pyroute2's NetlinkError both carry (code, message)
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    return f"{text} (errno {code})" if isinstance(code, int) else quote(text)


def _refuse_protected(plan: Plan, live: NetworkState, protected: frozenset[str] | set[str]) -> None:
    """Removing, recreating or taking down a protected interface, or removing a
    protected address, needs ``force``."""
    if not protected:
        return
    addrs, names = set(), set()
    for p in protected:
        try:
            addrs.add(str(ipaddress.ip_address(p)))
        except ValueError:
            names.add(p)
    removed = dependents({s.target for s in plan.steps if s.action == "link.delete"}, live)
    for s in plan.steps:
        hit = None
        if s.target in names and (s.action == "link.delete" or s.args.get("state") == "down"):
            hit = f"interface {s.target}"
        elif s.action == "addr.delete" and (s.target in names or str(ipaddress.ip_address(s.args["ip"])) in addrs):
            hit = f"address {s.args['ip']} on {s.target}"
        if hit:
            raise FailedPrecondition(f"{hit} is protected ({s.detail}); needs force (admin)")
    for i in live.interfaces:
        if i.name in removed and (i.name in names or any(a.ip in addrs for a in i.ipv4 + i.ipv6)):
            raise FailedPrecondition(f"interface {i.name} is protected and would be removed; needs force (admin)")
