"""The network feature's control around the engine (``agent.network``):
one change at a time, the commit-confirmed timer, the operation kinds, the
events, and which interfaces an apply must not take away.

The engine does the transaction (snapshot, ordered steps, verify, journal,
rollback).  What is here is about callers and time: the gRPC service asks
:meth:`NetworkControl.refuse_if_busy` before it starts an apply, the
operations run :meth:`apply` / :meth:`confirm` / :meth:`rollback` on a
worker, and a timer rolls an unconfirmed apply back at its deadline.  One
lock orders all of them, so a confirm and the timer's rollback never race.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Mapping

from agent.backends.route_lookup import connection_path
from agent.errors import FailedPrecondition, InvalidArgument
from agent.gen.hostagent.v1 import options_pb2
from agent.logs import get_logger
from agent.operations.manager import OperationKind, OperationManager
from agent.operations.model import OperationState
from agent.telemetry.events import Publish, Severity

if TYPE_CHECKING:  # the engine loads at its first use (agent.features.network)
    from agent.network.engine import ApplyResult, NetworkEngine

log = get_logger(__name__)
RESOURCE = "network"
KINDS = ("network.apply", "network.confirm", "network.rollback")


def load_pyroute2() -> None:
    """Import pyroute2 as the netdev and netclass collectors' first runs do,
    through ``agent.backends.links``, before a first use from another thread.
    Two threads importing pyroute2 at once by different paths fail ("cannot
    import name ... from partially initialized module"): links imports its
    submodules before the package, ``route_lookup`` and ``netconf`` the
    package first, and each thread waits for a module lock the other holds.
    Through links, every first import waits on that one module's lock.  An
    apply right after start meets those first runs (docs/benchmarks.md,
    "Start-up")."""
    import agent.backends.links  # noqa: F401


def caller_path(peer: str) -> tuple[str | None, str | None]:
    """(interface, local address) carrying a gRPC caller's TCP connection,
    from the peer gRPC reports (``ipv4:10.0.0.9:51234``,
    ``ipv6:[fd00::9]:51234``); (None, None) for a unix-socket caller, which no
    interface carries."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None, None
    host, _, port = rest.rpartition(":")
    host = host.strip("[]").split("%")[0]
    try:
        load_pyroute2()  # route_lookup's import of it
        return connection_path(host, int(port))
    except (ValueError, OSError) as exc:  # a lookup that fails protects nothing extra: say so
        log.warning("network.caller_lookup_failed", peer=peer[:100], error=str(exc)[:200])
        return None, None


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class NetworkControl:
    def __init__(self, engine: NetworkEngine, publish: Publish,
                 protected: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.protected = protected  # [network] protected_interfaces
        self._publish = publish
        # Two locks: the gate is held for an instant (the service's busy check
        # and the operation's start); the work lock for a whole apply, confirm,
        # rollback or timer expiry, so a second apply meanwhile is answered at
        # once (FAILED_PRECONDITION) instead of waiting on it.
        self._gate = threading.Lock()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._ops: OperationManager | None = None

    # -- used by the service ---------------------------------------------
    def bind(self, operations: OperationManager) -> None:
        self._ops = operations

    def gate(self) -> threading.Lock:
        """Held by the service across its busy check and the operation's
        start, so two applies cannot both pass the check."""
        return self._gate

    def refuse_if_busy(self) -> None:
        """FAILED_PRECONDITION while a network operation runs or an apply
        awaits confirmation."""
        deadline = self.engine.awaiting_confirmation()
        if deadline is not None:
            raise FailedPrecondition(
                f"an apply awaits confirmation until {_rfc3339(deadline)}; confirm it "
                "(ConfirmNetworkConfig) or roll it back (RollbackNetworkConfig) first")
        running = self._unfinished()
        if running or self.engine.busy:
            what = f"{running[0].kind} ({running[0].name})" if running else "an apply"
            raise FailedPrecondition(f"{what} is in progress; retry when it is done")

    def _unfinished(self) -> list:
        if self._ops is None:
            return []
        return [op for kind in KINDS for state in (OperationState.PENDING, OperationState.RUNNING)
                for op in self._ops.list(kind=kind, state=state)]

    def existing(self, kind: str, request_id: str):
        """The operation an earlier call with this request_id started, if any
        (a retry answers it, busy or not)."""
        if self._ops is None:
            return None
        # Network changes are rare (a few a day): scanning the kind's kept
        # operations costs less than a lookup the manager does not offer.
        return next((op for op in self._ops.list(kind=kind, limit=1_000_000)
                     if op.request_id == request_id), None)

    def protected_for(self, peer: str) -> list[str]:
        """Configured protected interfaces plus the interface and the local
        address carrying the caller's own connection."""
        own = {x for x in caller_path(peer) if x}
        return sorted(self.protected | own)

    # -- operations --------------------------------------------------------
    def _apply(self, ctx, args) -> dict:
        from agent.api.network_convert import in_desired, parse_desired  # at the first apply
        from agent.network.engine import ApplyFailed
        desired = parse_desired(args["desired"])
        timeout = args.get("confirm_timeout") or None
        with self._lock:
            self.refuse_if_busy_but(ctx.name)
            ctx.progress(5, "planning")
            try:
                result = self.engine.apply(desired, protected=frozenset(args["protected"]),
                                           force=args["force"], confirm_timeout=timeout,
                                           progress=lambda done, total, detail:
                                           ctx.progress(5 + 90 * done // max(total, 1), detail))
            except ApplyFailed as exc:  # a step or the verification failed: rolled back
                self._event("network.rolled_back", Severity.ERROR, str(exc)[:300],
                            operation=ctx.name, reason="apply_failed")
                raise
            except InvalidArgument as exc:  # the kernel changed since the call was validated
                raise in_desired(exc) from None
            out = {"changed": result.changed, "steps": len(result.plan.steps)}
            deadline = self.engine.awaiting_confirmation() if timeout else None
            if deadline is not None:
                self._arm(deadline)
                out["confirm_deadline"] = _rfc3339(deadline)
        self._event("network.applied", Severity.INFO,
                    f"network config applied: {len(result.plan.steps)} change(s)"
                    + (f", rolled back unless confirmed by {out['confirm_deadline']}"
                       if deadline is not None else ""),
                    operation=ctx.name, changed=str(result.changed).lower(),
                    steps=str(len(result.plan.steps)), identity=ctx.identity or "",
                    **({"confirm_deadline": out["confirm_deadline"]} if deadline is not None else {}))
        return out

    def refuse_if_busy_but(self, name: str) -> None:
        """Inside an operation: busy only because of another one."""
        if self.engine.awaiting_confirmation() is not None or self.engine.busy:
            self.refuse_if_busy()
        others = [op for op in self._unfinished() if op.name != name]
        if others:
            raise FailedPrecondition(f"{others[0].kind} ({others[0].name}) is in progress")

    def _confirm(self, ctx, args) -> dict:
        with self._lock:
            self.engine.confirm()
            self._disarm()
        self._event("network.confirmed", Severity.INFO, "network config confirmed",
                    operation=ctx.name, identity=ctx.identity or "")
        return {"confirmed": True}

    def _rollback(self, ctx, args) -> dict:
        with self._lock:
            result = self.engine.rollback()
            self._disarm()  # after: a rollback that failed leaves the deadline's to try again
        self._rolled_back(result, "requested", operation=ctx.name, identity=ctx.identity or "")
        return {"changed": result.changed, "steps": len(result.plan.steps)}

    def kinds(self) -> Mapping[str, OperationKind]:
        op = options_pb2.ROLE_OPERATOR

        def resource(_args) -> str:
            return RESOURCE
        return {k.name: k for k in (
            OperationKind("network.apply", self._apply, resource, op),
            OperationKind("network.confirm", self._confirm, resource, op),
            OperationKind("network.rollback", self._rollback, resource, op))}

    # -- the confirm timer ---------------------------------------------------
    def _arm(self, deadline: float) -> None:
        self._disarm()
        timer = threading.Timer(max(0.0, deadline - time.time()), self._expire, args=(deadline,))
        timer.name, timer.daemon = "network-confirm", True
        self._timer = timer
        timer.start()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, deadline: float) -> None:
        with self._lock:
            if self.engine.awaiting_confirmation() != deadline:
                return  # confirmed or rolled back meanwhile
            self._timer = None
            try:
                result = self.engine.rollback()
            except Exception as exc:  # noqa: BLE001 - a timer thread has no caller to raise to
                log.error("network.confirm_rollback_failed", error=str(exc)[:300])
                self._event("network.rollback_failed", Severity.ERROR,
                            f"the unconfirmed apply could not be rolled back: {str(exc)[:200]}")
                return
        self._rolled_back(result, "confirm_timeout")

    # -- start and stop --------------------------------------------------------
    def recover(self) -> str | None:
        """At start, before serving: undo what an interrupted or unconfirmed
        apply left (the engine's journal)."""
        done = self.engine.recover()
        if done:
            log.warning("network.recovered", action=done[:300])
            self._event("network.rolled_back", Severity.WARNING,
                        f"rolled back at start: {done[:200]}", reason="recovered_at_start")
        return done

    def close(self) -> None:
        with self._lock:
            self._disarm()
        close = getattr(self.engine.backend, "close", None)
        if close is not None:
            close()

    def _rolled_back(self, result: ApplyResult, reason: str, **labels: str) -> None:
        self._event("network.rolled_back", Severity.WARNING,
                    f"network config rolled back ({reason}): {len(result.plan.steps)} change(s)",
                    reason=reason, steps=str(len(result.plan.steps)), **labels)

    def _event(self, kind: str, severity: Severity, message: str, **labels: str) -> None:
        log.info(kind, message=message[:300], **labels)
        self._publish(kind, severity, "network", message, **labels)
