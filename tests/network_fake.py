"""A stand-in for ``agent.network.engine.NetworkEngine`` that honours its
contract (docs/network-internals.md) over a pretend kernel kept in a JSON
file of the state directory: the service's own behaviour (validation of the
request, roles, one apply at a time, the confirm timer, events, recovery
before serving) is tested without touching any kernel.

``tests/network_agent.py`` runs the real agent with the network feature
built on it (``$HOSTAGENT_TEST_FAKE_NETWORK=1``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace

from agent.errors import FailedPrecondition, InvalidArgument
from agent.network.model import Interface, NetworkState, from_dict, to_dict


@dataclass(frozen=True)
class Step:
    action: str
    target: str
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    changed: bool
    rolled_back: bool
    message: str


SEED = NetworkState(interfaces=(Interface("lo", type="loopback", mtu=65536),
                                Interface("eth0", mtu=1500)))


class FakeEngine:
    def __init__(self, backend, state_dir: str, publish=None) -> None:
        self.backend = backend
        self.dir = state_dir
        self._applying = False
        if not os.path.exists(self._path("kernel")):
            self._write("kernel", to_dict(SEED))

    # -- files -----------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.dir, f"fake-{name}.json")

    def _read(self, name: str, default=None):
        try:
            with open(self._path(name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return default

    def _write(self, name: str, value) -> None:
        tmp = self._path(name) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(name))

    def _drop(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    # -- the contract ------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._applying or self.awaiting_confirmation() is not None

    def live(self) -> NetworkState:
        return from_dict(self._read("kernel"))

    def managed(self) -> frozenset[str]:
        return frozenset(self._read("managed", []))

    def plan(self, desired: NetworkState) -> Plan:
        live = self.live().by_name()
        names = [i.name for i in desired.interfaces]
        for n, i in enumerate(desired.interfaces):
            if names.index(i.name) != n:
                raise InvalidArgument(f"interfaces[{n}].name", f"{i.name!r} is declared twice")
            if i.type == "ethernet" and i.name not in live and i.state != "absent":
                raise InvalidArgument(f"interfaces[{n}].name", f"no ethernet interface {i.name!r}")
        steps = []
        for i in desired.interfaces:
            have = live.get(i.name)
            if i.state == "absent":
                if have is not None:
                    steps.append(Step("remove", i.name))
            elif have is None:
                steps.append(Step("create", i.name, i.type))
            elif self._differs(have, i):
                steps.append(Step("set", i.name, "mtu/state/addresses"))
        for name in sorted(self.managed() - set(names)):
            if name in live:
                steps.append(Step("remove", name, "no longer in the config"))
        return Plan(tuple(steps))

    @staticmethod
    def _differs(have: Interface, want: Interface) -> bool:
        return ((want.mtu is not None and want.mtu != have.mtu) or want.state != have.state
                or (want.ipv4_managed and want.ipv4 != have.ipv4))

    def apply(self, desired: NetworkState, *, protected=frozenset(), force=False,
              confirm_timeout=None, progress=None) -> ApplyResult:
        if self.busy:
            raise FailedPrecondition("an apply runs or awaits confirmation")
        plan = self.plan(desired)
        by_name = desired.by_name()
        for s in plan.steps:
            want = by_name.get(s.target)
            down = s.action == "remove" or (want is not None and want.state == "down")
            if down and s.target in protected and not force:
                raise FailedPrecondition(f"{s.target} is protected: it would be "
                                         f"{'removed' if s.action == 'remove' else 'taken down'}")
        snapshot = {"kernel": self._read("kernel"), "managed": self._read("managed", [])}
        self._write("txn", {"phase": "applying", **snapshot})
        self._applying = True
        try:
            kernel = self.live().by_name()
            for n, s in enumerate(plan.steps):
                if s.action == "remove":
                    kernel.pop(s.target, None)
                else:
                    want = by_name[s.target]
                    kernel[s.target] = replace(want, mtu=want.mtu or 1500)
                self._write("kernel", to_dict(NetworkState(tuple(kernel.values()), ())))
                if progress:
                    progress(n + 1, len(plan.steps), f"{s.action} {s.target}")
            managed = sorted((self.managed() | {i.name for i in desired.interfaces if i.state != "absent"})
                             - {s.target for s in plan.steps if s.action == "remove"})
            self._write("managed", managed)
        finally:
            self._applying = False
        self._write("last", snapshot)
        if confirm_timeout:
            self._write("txn", {"phase": "awaiting", "deadline": time.time() + confirm_timeout,
                                **snapshot})
        else:
            self._drop("txn")
        return ApplyResult(plan, bool(plan.steps), False, "applied")

    def awaiting_confirmation(self) -> float | None:
        txn = self._read("txn")
        return txn["deadline"] if txn and txn["phase"] == "awaiting" else None

    def confirm(self) -> None:
        if self.awaiting_confirmation() is None:
            raise FailedPrecondition("no apply awaits confirmation")
        self._drop("txn")

    def _restore(self, snapshot) -> ApplyResult:
        before = self.live()
        self._write("kernel", snapshot["kernel"])
        self._write("managed", snapshot["managed"])
        self._drop("txn")
        changed = to_dict(before) != snapshot["kernel"]
        return ApplyResult(Plan((Step("restore", "snapshot"),) if changed else ()), changed, True,
                           "rolled back")

    def rollback(self) -> ApplyResult:
        snapshot = self._read("txn") or self._read("last")
        if snapshot is None:
            raise FailedPrecondition("nothing to roll back: no apply yet")
        self._drop("last")
        return self._restore(snapshot)

    def recover(self) -> str | None:
        txn = self._read("txn")
        if txn is None:
            return None
        self._restore(txn)
        return f"rolled back an apply left {txn['phase']} by the previous agent"

