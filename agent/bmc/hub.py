"""The BMCs this agent watches: one :class:`BmcTarget` per configured target,
each with its backend, its guard (worker thread, timeout, circuit breaker),
its SEL cursor and energy meter, shared by the ipmi collector, the Bmc
service, the BMC operations and the inventory.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from agent.backends.ipmi import BmcBackend, PyghmiBmc
from agent.bmc.config import BmcConfig, BmcTargetConfig
from agent.bmc.energy import EnergyMeter
from agent.bmc.guard import Guard
from agent.backends.ipmi_model import BmcIdentity, SelEntry, SelInfo, SensorReading
from agent.bmc.sel import SelCursor
from agent.errors import NotFound, quote
from agent.logs import get_logger
from agent.secrets import Secret, load_secret, redact
from agent.telemetry.events import Publish, Severity, no_publish

log = get_logger(__name__)


@dataclass(frozen=True)
class Poll:
    """One collection cycle's reading of one BMC."""

    sensors: tuple[SensorReading, ...]
    dcmi_watts: float | None
    chassis: dict[str, bool]
    sel: SelInfo
    new_sel: tuple[SelEntry, ...]
    energy_joules: float | None
    requests: int
    seconds: float


def pyghmi_backend(cfg: BmcTargetConfig, password: Secret) -> BmcBackend:
    from agent.backends.ipmi_session import SessionPolicy  # pyghmi: only with a BMC to reach
    return PyghmiBmc(cfg.host, cfg.port, cfg.username, password,
                     SessionPolicy(cfg.cipher_suites, cfg.allow_ipmi15), cfg.privilege)


class BmcTarget:
    def __init__(self, cfg: BmcTargetConfig, backend: BmcBackend, guard: Guard,
                 state_dir: str) -> None:
        self.cfg, self.name, self.local = cfg, cfg.name, cfg.local
        self.backend, self.guard = backend, guard
        base = os.path.join(state_dir, f"bmc-{cfg.name}")
        self.sel = SelCursor(f"{base}.sel.json")
        self.energy = EnergyMeter(f"{base}.energy.json")
        self.identity: BmcIdentity | None = None
        self.latency = 0.0  # mean seconds per request, last poll
        self._poll_lock = threading.Lock()

    def call(self, fn: Callable[[BmcBackend], object], timeout: float | None = None):
        """``fn(backend)`` on this BMC's worker, guarded (see ``Guard.call``)."""
        return self.guard.call(lambda: fn(self.backend), timeout)

    def poll(self) -> Poll:
        return self.call(self._poll)

    def _poll(self, b: BmcBackend) -> Poll:
        with self._poll_lock:
            t0, n0 = time.monotonic(), getattr(b, "requests", 0)
            sensors = tuple(b.sensors())
            watts = b.dcmi_power_watts()
            chassis = b.chassis_status()
            info = b.sel_info()
            new = tuple(self.sel.read_new(b, info))
            if self.identity is None:
                self.identity = b.identity()
            energy = self.energy.add(watts) if watts is not None else None
            requests = getattr(b, "requests", 0) - n0
            seconds = time.monotonic() - t0
            self.latency = seconds / requests if requests else 0.0
            return Poll(sensors, watts, chassis, info, new, energy, requests, seconds)

    def close(self) -> None:
        self.guard.close()
        try:
            self.backend.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


class BmcHub:
    """All targets, in config order; ``resolve`` maps an API target name."""

    def __init__(self, cfg: BmcConfig, state_dir: str,
                 publish: Publish = no_publish,
                 backend_factory: Callable[[BmcTargetConfig, Secret], BmcBackend] = pyghmi_backend,
                 ) -> None:
        self.cfg = cfg
        self._publish = publish
        self.targets: dict[str, BmcTarget] = {}
        for tcfg in cfg.targets:
            # Kept here, not read back from the backend: the hub redacts it
            # from every error it reports.
            secret = load_secret(tcfg.password)
            backend = backend_factory(tcfg, secret)
            guard = Guard(tcfg.name, tcfg.timeout, cfg.initial_backoff, cfg.max_backoff,
                          on_change=self._reporter(tcfg, secret),
                          on_timeout=getattr(backend, "abort", None))
            self.targets[tcfg.name] = BmcTarget(tcfg, backend, guard, state_dir)

    def _reporter(self, tcfg: BmcTargetConfig, secret: Secret) -> Callable[[bool, str], None]:
        def report(up: bool, error: str) -> None:
            error = redact(error, [secret])  # belt and braces: no password in a log line
            if up:
                log.info("bmc.up", target=tcfg.name, address=tcfg.address)
                self._publish("bmc.recovered", Severity.INFO, "bmc",
                              f"BMC {tcfg.name} ({tcfg.address}) answers again", target=tcfg.name)
            else:
                log.error("bmc.down", target=tcfg.name, address=tcfg.address, error=error)
                self._publish("bmc.unreachable", Severity.ERROR, "bmc",
                              f"BMC {tcfg.name} ({tcfg.address}): {error}",
                              target=tcfg.name, error=error)
        return report

    def resolve(self, name: str) -> BmcTarget:
        if name:
            target = self.targets.get(name)
            if target is None:
                known = ", ".join(self.targets) or "none configured"
                raise NotFound(f"no BMC target {quote(name)} (targets: {known})")
            return target
        local = [t for t in self.targets.values() if t.local]
        if local:
            return local[0]
        if len(self.targets) == 1:
            return next(iter(self.targets.values()))
        if not self.targets:
            raise NotFound("no BMC configured ([[bmc.targets]] in the agent config)")
        raise NotFound(f"target: several BMCs and none is local; name one of "
                       f"{', '.join(self.targets)}")

    def identities(self) -> list[tuple[BmcTarget, BmcIdentity]]:
        """Targets that answered at least once, the local one first."""
        found = [(t, t.identity) for t in self.targets.values() if t.identity is not None]
        return sorted(found, key=lambda p: not p[0].local)

    def close(self) -> None:
        for t in self.targets.values():
            t.close()
