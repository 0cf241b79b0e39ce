"""The GPUs this agent watches: one :class:`GpuTarget` per GPU, keyed by
UUID, each with its NVML device, its guard (worker thread, timeout, circuit
breaker: ``agent.backends.guard``), its static facts and its energy counter;
shared by the gpu collector, the XID watcher, the Gpu service, the GPU
operations and the inventory.

NVML itself (init, driver version, finding GPUs) runs on one more guard,
``nvml``.  NVML is opened at first use, not at start: a driver that takes
seconds to initialize (no persistence daemon) delays nothing else, and the
backend (``agent.backends.nvml``, pynvml, ``nvml_model``) is imported then
too, so a start pays for none of it (docs/benchmarks.md, "Start-up").  No
driver: ``missing`` says why, the collector reports itself absent, the
service answers FAILED_PRECONDITION with that text.

A GPU that answers GPU_IS_LOST, or does not answer within ``timeout``, opens
its circuit: one ``gpu.lost`` event, its series are left out (stale data is
worse than none), and it is re-checked with backoff (``initial_backoff``
doubling to ``max_backoff``); the first answer after that is one
``gpu.recovered``.  The other GPUs go on, each on its own worker.
"""
from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any, Callable

from agent.backends.guard import Guard, Pending
from agent.errors import FailedPrecondition, NotFound, quote
from agent.gpu.config import GpuConfig
from agent.gpu.energy import EnergyCounter
from agent.logs import get_logger
from agent.telemetry.events import Publish, Severity, no_publish

if TYPE_CHECKING:
    from agent.backends.nvml import Nvml, NvmlDevice
    from agent.backends.nvml_model import GpuSample, GpuStatic

log = get_logger(__name__)
_BUS_RE = re.compile(r"(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])")


class GpuGuard(Guard):
    noun = "GPU"

    # NVML's errors are the backend's: imported when a call is first made
    # (after NVML was opened), not when the hub is built at start.
    @property
    def failure_types(self) -> tuple[type[Exception], ...]:
        from agent.backends.nvml_model import GpuLost
        return (GpuLost,)

    @property
    def timeout_error(self) -> type[Exception]:
        from agent.backends.nvml_model import GpuTimeout
        return GpuTimeout


def normalize_bus_id(text: str) -> str | None:
    """"18:00.0", "0000:18:00.0", "00000000:18:00.0" -> NVML's "00000000:18:00.0"."""
    m = _BUS_RE.fullmatch(text.strip())
    if not m:
        return None
    domain, bus, dev, fn = m.groups()
    return f"{int(domain or '0', 16):08X}:{int(bus, 16):02X}:{int(dev, 16):02X}.{fn}"


class GpuTarget:
    def __init__(self, dev: NvmlDevice, guard: GpuGuard, state_dir: str) -> None:
        self.uuid, self.dev, self.guard = dev.uuid, dev, guard
        self.energy = EnergyCounter(os.path.join(state_dir, f"gpu-{dev.uuid}.energy.json"))
        self.static: GpuStatic | None = None
        self.last: GpuSample | None = None
        self.last_xid: int | None = None
        self.nvml_calls = 0      # made by polls, for hostagent_gpu_nvml_calls_total
        self._stale = True       # static facts to (re-)read at the next poll
        self._refind = False     # look the handle up again first (after a loss)
        self._lock = threading.Lock()

    @property
    def pci_bus_id(self) -> str:
        return self.dev.pci_bus_id

    def call(self, fn: Callable[[NvmlDevice], Any], timeout: float | None = None) -> Any:
        """``fn(device)`` on this GPU's worker, guarded (see ``Guard.call``)."""
        return self.guard.call(lambda: fn(self.dev), timeout)

    def invalidate(self) -> None:
        """Re-read the static facts at the next poll (a mode or the MIG layout changed)."""
        self._stale = True

    def lost(self) -> None:
        self._refind = self._stale = True

    def poll(self) -> tuple[GpuStatic, GpuSample]:
        return self.guard.call(self._poll)

    def start_poll(self, wait_turn: bool = True) -> Pending:
        """A poll started on the worker; ``guard.finish`` gives its result
        (the collector starts every GPU's, then waits for each)."""
        return self.guard.start(self._poll, wait_turn=wait_turn)

    def refresh(self) -> GpuStatic:
        """Static facts now, on the worker (after an operation changed them)."""
        self.invalidate()
        return self.guard.call(self._static)

    def _static(self) -> GpuStatic:
        with self._lock:
            if self._refind:
                self.dev.refind()
                self._refind = False
            if self._stale or self.static is None:
                self.static = self.dev.static()
                self._stale = False
            return self.static

    def _poll(self) -> tuple[GpuStatic, GpuSample]:
        static = self._static()
        sample = self.dev.sample(static)
        self.last = sample
        self.nvml_calls += sample.calls
        return static, sample

    def close(self) -> None:
        self.guard.close()


class GpuHub:
    def __init__(self, cfg: GpuConfig, state_dir: str, publish: Publish = no_publish,
                 nvml_factory: Callable[[GpuConfig], Nvml] | None = None) -> None:
        self.cfg, self.state_dir, self._publish = cfg, state_dir, publish
        self._nvml_factory = nvml_factory or _system_nvml
        self.nvml: Nvml | None = None  # made at the first open
        self.system = GpuGuard("nvml", cfg.timeout, cfg.initial_backoff, cfg.max_backoff)
        self.targets: dict[str, GpuTarget] = {}
        self.missing = ""         # why there is no NVML; "" when there is (or not tried yet)
        self.opened = False
        self.driver_version = self.cuda_version = ""
        self.generation = 0       # bumped when GPU handles change (the XID watcher re-registers)
        self._open_lock = threading.Lock()
        self._on_open: list[Callable[[], None]] = []
        self._reported_lost: set[str] = set()

    # -- opening -------------------------------------------------------------
    def on_open(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once, on the opening thread) when NVML has been
        opened with a driver there; at once if it already has; never
        without a driver."""
        with self._open_lock:
            if self.missing:
                return
            if not self.opened:
                self._on_open.append(callback)
                return
        callback()

    def open(self) -> bool:
        """Open NVML and find the GPUs, once; False when there is no driver
        (``missing`` says why).  Other failures raise (retried at next use)."""
        with self._open_lock:
            if self.opened or self.missing:
                return self.opened
            from agent.backends.nvml_model import NvmlMissing
            try:
                devices = self.system.call(self._open, timeout=max(self.cfg.timeout, 10.0))
            except NvmlMissing as exc:
                self.missing = str(exc)
                self._on_open.clear()
                log.info("gpu.no_driver", reason=self.missing)
                return False
            for dev in devices:
                guard = GpuGuard(dev.uuid, self.cfg.timeout, self.cfg.initial_backoff,
                                 self.cfg.max_backoff, on_change=self._reporter(dev.uuid))
                self.targets[dev.uuid] = GpuTarget(dev, guard, self.state_dir)
            self.opened = True
            log.info("gpu.nvml_opened", driver=self.driver_version, cuda=self.cuda_version,
                     gpus=len(devices), library=self.cfg.nvml_library or "system")
            callbacks, self._on_open = self._on_open, []
        for callback in callbacks:
            callback()
        return True

    def _open(self) -> list[NvmlDevice]:
        if self.nvml is None:
            self.nvml = self._nvml_factory(self.cfg)
        self.nvml.open()
        self.driver_version = self.nvml.driver_version()
        self.cuda_version = self.nvml.cuda_version()
        return self.nvml.devices()

    def require(self) -> None:
        """Raise FAILED_PRECONDITION naming the missing driver, if it is."""
        if not self.open():
            raise FailedPrecondition(f"no NVIDIA GPUs can be managed here: {self.missing}")

    def _reporter(self, uuid: str) -> Callable[[bool, str], None]:
        def report(up: bool, error: str) -> None:
            target = self.targets.get(uuid)
            labels = self._labels(target)
            if not up:
                if target is not None:
                    target.lost()
                if uuid in self._reported_lost:  # still lost, another error: a log line only
                    log.warning("gpu.still_lost", uuid=uuid, error=error)
                    return
                self._reported_lost.add(uuid)
                log.error("gpu.lost", uuid=uuid, error=error)
                self._publish("gpu.lost", Severity.CRITICAL, "gpu",
                              f"GPU {labels['gpu']} ({uuid}, {labels['pci_bus_id']}) stopped "
                              f"answering: {error}", **labels, error=error)
            elif uuid in self._reported_lost:
                self._reported_lost.discard(uuid)
                self.generation += 1
                log.info("gpu.recovered", uuid=uuid)
                self._publish("gpu.recovered", Severity.INFO, "gpu",
                              f"GPU {labels['gpu']} ({uuid}) answers again", **labels)
        return report

    @staticmethod
    def _labels(target: GpuTarget | None) -> dict[str, str]:
        static = target.static if target is not None else None
        return {"uuid": target.uuid if target else "",
                "gpu": str(static.index) if static else "",
                "pci_bus_id": target.pci_bus_id if target else ""}

    # -- finding a GPU -----------------------------------------------------------
    def resolve(self, address: str, field: str = "gpu") -> GpuTarget:
        """A GPU by UUID, PCI bus id or index (its index as last read)."""
        self.require()
        text = address.strip()
        if not text:
            if len(self.targets) == 1:
                return next(iter(self.targets.values()))
            raise NotFound(f"{field}: name a GPU by UUID, PCI bus id or index "
                           f"({len(self.targets)} GPUs here)")
        for t in self.targets.values():
            if t.uuid.lower() == text.lower():
                return t
        bus = normalize_bus_id(text)
        if bus is not None:
            for t in self.targets.values():
                if t.pci_bus_id.upper() == bus:
                    return t
        if text.isdigit():
            for t in self.targets.values():
                if t.static is not None and t.static.index == int(text):
                    return t
        raise NotFound(f"{field}: no GPU {quote(address)} (GPUs: "
                       f"{', '.join(self.targets) or 'none'})")

    def close(self) -> None:
        for t in self.targets.values():
            t.close()
        if self.opened:
            from agent.backends.nvml_model import NvmlError
            try:
                self.system.call(self.nvml.close)
            except (NvmlError, FailedPrecondition) as exc:
                log.warning("gpu.nvml_close_failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                log.warning("gpu.nvml_close_failed", error=str(exc))
        self.system.close()


def _system_nvml(cfg: GpuConfig) -> Nvml:
    """The NVML backend (``agent.backends.nvml``, which imports pynvml), for
    the library ``cfg`` names: imported at the first open."""
    from agent.backends.nvml import Nvml
    return Nvml(cfg.nvml_library, cfg.field_batching)
