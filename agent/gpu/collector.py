"""The gpu collector: every GPU's telemetry under dcgm-exporter's names
(agent/gpu/families.py), plus energy, per-process memory and the agent's own
view of each GPU.

Every GPU is polled in parallel, each on its own guarded worker
(``agent.gpu.hub``; ``Guard.start`` then ``finish``): a hung or lost GPU costs this cycle at most its own
timeout, and nothing once its circuit is open; it reports
``hostagent_gpu_up 0`` and its other series are left out.

Events (besides the hub's ``gpu.lost``/``gpu.recovered`` and the watcher's
``gpu.xid``): ``gpu.ecc_dbe`` when a GPU's volatile double-bit ECC count
rises, ``gpu.row_remap_failure`` when row remapping fails, ``gpu.throttle``
when a thermal or power slowdown starts or ends (families.SLOWDOWN).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from agent.backends.guard import Pending
from agent.backends.hostfs import HostFS
from agent.config import Config
from agent.errors import Unavailable
from agent.gpu.config import SECTION
from agent.gpu.families import (ALL, CALLS, CLOCK_EVENT, CLOCK_REASONS, DCGM, ENERGY, INFO,
                                MIG_FB_FREE, MIG_FB_USED, PROCESS_MEMORY, SLOWDOWN, UP, XID)
from agent.gpu.hub import GpuHub, GpuTarget
from agent.logs import get_logger
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.events import Publish, Severity
from agent.telemetry.model import Batch

if TYPE_CHECKING:  # the backend loads when NVML is first opened (agent.gpu.hub)
    from agent.backends.nvml_model import GpuSample, GpuStatic

log = get_logger(__name__)
STAGGER = 0.05  # seconds a poll gets before the next GPU's starts beside it
FAMILIES = ALL  # for docs/metrics.md's check


class GpuCollector:
    name = "gpu"

    def __init__(self, ctx: CollectorContext, hub: GpuHub | None = None) -> None:
        """``hub``: the GPUs the gpu feature owns (``agent.features.gpu``)."""
        self._hub = hub
        self._hostfs: HostFS = ctx.hostfs
        self._publish: Publish = ctx.publish
        self._seen: dict[str, dict[str, object]] = {}  # uuid -> what events compare with
        self._errors: dict[str, str] = {}

    def collect(self, batch: Batch) -> None:
        hub = self._hub
        if hub is None or not hub.open():
            raise NoData(hub.missing if hub is not None else "no GPU feature")
        targets = list(hub.targets.values())
        if not targets:
            raise NoData("NVML sees no GPU")
        # One GPU after another, each on its own worker: a poll that has not
        # answered within STAGGER is left running (bounded by its own
        # timeout) while the next starts, so a hung GPU delays the others by
        # STAGGER, not by its timeout.  Healthy GPUs never run at once: eight
        # threads making short ctypes calls together only fight over the GIL
        # (measured: 1.8 ms for 8 GPUs at once, 1.1 ms one after another).
        # A GPU whose worker is busy with an operation is polled last,
        # waiting for its turn.
        started: list[tuple[GpuTarget, Pending | None]] = []
        for t in targets:
            try:
                pending = t.start_poll(wait_turn=False)
            except Unavailable:
                pending = None
            if pending is not None:
                pending.wait(STAGGER)
            started.append((t, pending))
        for target, pending in started:
            got = self._finish(target, pending)
            static = target.static
            if static is None:
                continue  # never answered: no labels to report it under
            base = (str(static.index), target.uuid, static.pci_bus_id, static.device, static.name)
            batch.gauge(UP, 1.0 if got is not None else 0.0, *base)
            if got is not None:
                self._report(batch, target, base, *got)

    def _finish(self, target: GpuTarget, pending: Pending | None
                ) -> tuple[GpuStatic, GpuSample] | None:
        try:
            got = target.guard.finish(pending) if pending is not None else target.poll()
        except Unavailable as exc:  # lost, hung or backing off: reported by the hub
            log.debug("gpu.poll_failed", uuid=target.uuid, error=str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - one GPU's failure is its hostagent_gpu_up 0
            if self._errors.get(target.uuid) != str(exc):
                log.exception("gpu.poll_error", uuid=target.uuid, error=str(exc))
            self._errors[target.uuid] = str(exc)
            return None
        self._errors.pop(target.uuid, None)
        return got

    def _report(self, batch: Batch, target: GpuTarget, base: tuple[str, ...],
                static: GpuStatic, s: GpuSample) -> None:
        whole = (*base, "", "")
        for attr, family in DCGM:
            value = getattr(s, attr)
            if value is not None:
                batch.gauge(family, value, *whole)
        batch.gauge(XID, float(target.last_xid or 0), *whole)
        for m in s.mig:
            labels = (*base, m.profile, str(m.gi_id))
            if m.fb_used_mib is not None:
                batch.gauge(MIG_FB_USED, m.fb_used_mib, *labels)
            if m.fb_free_mib is not None:
                batch.gauge(MIG_FB_FREE, m.fb_free_mib, *labels)
        if s.clock_events is not None:
            for bit, reason in CLOCK_REASONS:
                batch.gauge(CLOCK_EVENT, 1.0 if s.clock_events & bit else 0.0, *base, reason)
        if s.energy_mj is not None:
            batch.counter(ENERGY, target.energy.add(int(s.energy_mj)), *base)
        batch.counter(CALLS, target.nvml_calls, *base)
        hub = self._hub
        if hub is not None:
            batch.gauge(INFO, 1.0, *base, hub.driver_version, hub.cuda_version, static.vbios,
                        static.serial)
        self._processes(batch, base, s)
        self._events(target, base, s)

    def _processes(self, batch: Batch, base: tuple[str, ...], s: GpuSample) -> None:
        if not s.processes:
            return
        limit = self._hub.cfg.max_processes if self._hub else 0
        procs = sorted(s.processes, key=lambda p: -(p.used_bytes or 0))[:limit]
        for p in procs:
            if p.used_bytes is None:
                continue
            comm = self._hostfs.read_value(f"proc/{p.pid}/comm", "") or ""
            batch.gauge(PROCESS_MEMORY, float(p.used_bytes), *base, str(p.pid), comm)

    def _events(self, target: GpuTarget, base: tuple[str, ...], s: GpuSample) -> None:
        seen = self._seen.setdefault(target.uuid, {})
        labels = {"uuid": target.uuid, "gpu": base[0], "pci_bus_id": base[2]}
        name = f"GPU {base[0]} ({target.uuid})"
        dbe, before = s.ecc_dbe_volatile, seen.get("dbe")
        if dbe is not None and isinstance(before, int) and dbe > before:
            self._publish("gpu.ecc_dbe", Severity.CRITICAL, "gpu",
                          f"{name}: {dbe - before} new double-bit ECC error(s) ({dbe} since reset)",
                          **labels, count=str(dbe), new=str(dbe - before))
        if dbe is not None:
            seen["dbe"] = dbe
        failed = s.remap_failure
        if failed and not seen.get("remap_failure"):
            self._publish("gpu.row_remap_failure", Severity.CRITICAL, "gpu",
                          f"{name}: row remapping failed; the GPU needs service", **labels)
        if failed is not None:
            seen["remap_failure"] = bool(failed)
        if s.clock_events is not None:
            active = {r for bit, r in CLOCK_REASONS if s.clock_events & bit and r in SLOWDOWN}
            previous = seen.get("slowdown", set())
            assert isinstance(previous, set)
            started, ended = active - previous, previous - active
            if started or ended:
                words = ([f"started: {', '.join(sorted(started))}"] if started else []) + \
                        ([f"ended: {', '.join(sorted(ended))}"] if ended else [])
                self._publish("gpu.throttle", Severity.WARNING if active else Severity.INFO, "gpu",
                              f"{name}: clock slowdown {'; '.join(words)}", **labels,
                              active=",".join(sorted(active)), started=",".join(sorted(started)),
                              ended=",".join(sorted(ended)))
            seen["slowdown"] = active

    def close(self) -> None:
        """Nothing to release: the workers are the hub's."""


# Each GPU's poll is bounded by its own timeout (agent.backends.guard); the
# collector must not be cut off before the slowest one reports.
TIMEOUT_MARGIN = 1.0


def timeout_for(cfg: Config) -> float:
    return cfg.section(SECTION).timeout + TIMEOUT_MARGIN


# Declared here, built by the gpu feature with the hub it owns.
COLLECTOR = CollectorInfo(name="gpu", factory=GpuCollector, interval=5.0, timeout_for=timeout_for)
