"""The network feature's declaration: host networking declared in nmstate's
format, applied transactionally with commit-confirmed rollback (docs/network.md;
the domain is ``agent/network/``, the kernel side ``agent/backends/netconf.py``).

    [network]
    enabled = true                    # false: the Network service answers FAILED_PRECONDITION
    protected_interfaces = ["eno1"]   # never removed or taken down without force (admin)

At build, before the agent serves anything, the engine undoes what an
interrupted or unconfirmed apply left (its journal in ``<state_dir>/network``):
a node whose agent was killed mid-apply comes back to its last good state.
Where that directory is empty (the agent never applied anything here) there
is nothing to undo, and the engine and its modules load at their first use.
Gives the daemon the network operation kinds, the ``hostagent.v1.Network``
service and the managed flag of the inventory's NICs.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from agent.config_values import ConfigSection, Invalid, bool_, toml_value, type_name
from agent.feature import (Feature, FeatureContext, FeatureInstance, ServiceBinding,
                           ServiceContext)
from agent.features.lazy import LazyServicer
from agent.features.network_control import NetworkControl, load_pyroute2
from agent.gen.hostagent.v1 import inventory_pb2, network_pb2
from agent.operations.manager import OperationKind

NETWORK = network_pb2.DESCRIPTOR.services_by_name["Network"]
MAX_NAME = 15  # IFNAMSIZ - 1


@dataclass(frozen=True)
class NetworkConfig:
    enabled: bool = True
    protected_interfaces: tuple[str, ...] = ()


def _names(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise Invalid(f"expected a list of interface names, got {type_name(v)}")
    for name in v:
        if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_NAME or "/" in name \
                or any(c.isspace() for c in name):
            raise Invalid(f"{name!r} is not an interface name (1 to {MAX_NAME} bytes, no '/' or spaces)")
    return tuple(v)


_KEYS: dict[str, Callable[[Any], Any]] = {"enabled": bool_, "protected_interfaces": _names}


def parse_network(section: Any, fail: Callable[[str, str], Exception]) -> NetworkConfig:
    if section is None:
        return NetworkConfig()
    if not isinstance(section, dict):
        raise fail("network", f"expected a table, got {type_name(section)}")
    values = {}
    for k, raw in section.items():
        check = _KEYS.get(k)
        if check is None:
            raise fail(f"network.{k}", f"unknown key (valid: {', '.join(_KEYS)})")
        try:
            values[k] = check(raw)
        except Invalid as exc:
            raise fail(f"network.{k}", str(exc)) from None
    return NetworkConfig(**values)


def network_to_toml(cfg: NetworkConfig) -> list[str]:
    return ["", "[network]", f"enabled = {toml_value(cfg.enabled)}",
            f"protected_interfaces = {toml_value(list(cfg.protected_interfaces))}"]


SECTION: ConfigSection[NetworkConfig] = ConfigSection("network", parse_network, network_to_toml)


class _Netconf:
    """``NetconfBackend`` of the agent's namespace, made at its first use:
    its pyroute2 import costs a start that has nothing to recover a tenth of
    a second or more (the engine reads its journal first)."""

    def __init__(self) -> None:
        self._backend = None

    def __getattr__(self, name: str):
        if self._backend is None:
            load_pyroute2()
            from agent.backends.netconf import NetconfBackend
            self._backend = NetconfBackend(None)
        return getattr(self._backend, name)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


class _LazyEngine:
    """The engine, made at its first use: a start with nothing to recover
    does not import the engine, the network model and their validation
    (15 ms of a 0.3 s start).  An engine never made has no backend to close."""

    def __init__(self, make) -> None:
        self._make = make
        self._engine = None
        self._lock = threading.Lock()

    def make_now(self) -> None:
        """At start, to recover: nothing else imports anything yet."""
        self._engine = self._make()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._engine is None:
            if name == "backend":
                return None
            with self._lock:
                if self._engine is None:
                    # After start, beside the collectors' first runs: a
                    # backend made with the engine may import pyroute2.
                    load_pyroute2()
                    self._engine = self._make()
        return getattr(self._engine, name)


def real_engine(state_dir: str, publish):
    """The engine on the kernel of the namespace the agent runs in.  It gets
    no ``publish``: the events are the control's (with the operation's name)."""
    from agent.network.engine import NetworkEngine
    return NetworkEngine(_Netconf(), state_dir)


class NetworkFeature(FeatureInstance):
    def __init__(self, ctx: FeatureContext, make_engine=real_engine) -> None:
        cfg = ctx.config.section(SECTION)
        self.control: NetworkControl | None = None
        if not cfg.enabled:
            return
        state_dir = os.path.join(ctx.state_dir, "network")
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        engine = _LazyEngine(lambda: make_engine(state_dir, ctx.publish))
        self.control = NetworkControl(engine, ctx.publish, frozenset(cfg.protected_interfaces))
        if os.listdir(state_dir):  # the engine's journal: something may be left to undo
            engine.make_now()
            self.control.recover()  # before serving: the daemon builds features first

    def kinds(self) -> Mapping[str, OperationKind]:
        return self.control.kinds() if self.control is not None else {}

    def services(self, ctx: ServiceContext) -> Sequence[ServiceBinding]:
        if self.control is not None:
            self.control.bind(ctx.operations)
        def build():  # at the first call: a start does not import the servicer's modules
            from agent.api.network_service import NetworkService
            return NetworkService(self.control, ctx.operations, ctx.identify, ctx.role_of)
        return [(LazyServicer(build), NETWORK)]

    def add_inventory(self, inventory: inventory_pb2.Inventory) -> None:
        if self.control is None:
            return
        managed = self.control.engine.managed()
        for nic in inventory.nics:
            nic.managed = nic.name in managed

    def close(self) -> None:
        if self.control is not None:
            self.control.close()


def network_feature(make_engine=real_engine) -> Feature:
    """The declaration, with another engine for tests (``serve(plugins=...)``)."""
    return Feature(name="network", build=lambda ctx: NetworkFeature(ctx, make_engine), section=SECTION)


FEATURE = network_feature()
