"""XID errors as ``gpu.xid`` events, from an NVML event set waited on by a
thread of its own (a wait that hangs in the driver costs that thread only).

The thread opens NVML if nothing else has, registers every GPU for XID
events, and waits in slices of ``wait_ms`` so that it notices a stop, and
a change of GPU handles (a reset or a recovered GPU: ``GpuHub.generation``),
after which it registers again.  Each XID also becomes the GPU's
``DCGM_FI_DEV_XID_ERRORS`` value.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from agent.gpu.hub import GpuHub
from agent.logs import get_logger
from agent.telemetry.events import Publish, Severity

if TYPE_CHECKING:
    from agent.backends.nvml_model import GpuEvent

log = get_logger(__name__)

# What the common XIDs mean (NVIDIA's XID catalogue, in short) and how bad they are.
XIDS: dict[int, tuple[str, Severity]] = {
    13: ("graphics engine exception: usually the application (illegal access or instruction)",
         Severity.WARNING),
    31: ("GPU memory page fault: usually the application accessed an invalid address",
         Severity.WARNING),
    43: ("GPU stopped processing: a channel was reset, usually after an application fault",
         Severity.WARNING),
    45: ("preemptive cleanup after an earlier error: the context was torn down",
         Severity.WARNING),
    48: ("double-bit ECC error: uncorrectable memory error", Severity.CRITICAL),
    61: ("internal micro-controller breakpoint or warning (firmware)", Severity.WARNING),
    62: ("internal micro-controller halted (firmware): the GPU needs a reset", Severity.CRITICAL),
    63: ("ECC page retirement or row remapping recorded", Severity.WARNING),
    64: ("ECC page retirement or row remapping failed: the GPU needs service",
         Severity.CRITICAL),
    68: ("video decoder (NVDEC) exception", Severity.WARNING),
    74: ("NVLink error: a link went down or reported errors", Severity.CRITICAL),
    79: ("GPU has fallen off the bus: it no longer answers", Severity.CRITICAL),
    92: ("high single-bit ECC error rate", Severity.WARNING),
    94: ("contained ECC error: the affected application was stopped, others continue",
         Severity.WARNING),
    95: ("uncontained ECC error: every application on the GPU is affected; reset needed",
         Severity.CRITICAL),
    119: ("GSP RPC timeout: the GPU System Processor stopped answering; reset needed",
          Severity.CRITICAL),
    120: ("GSP error: the GPU System Processor reported a fault", Severity.CRITICAL),
}


def describe(xid: int) -> tuple[str, Severity]:
    return XIDS.get(xid, ("see NVIDIA's XID catalogue", Severity.WARNING))


class XidWatcher:
    def __init__(self, hub: GpuHub, publish: Publish, wait_ms: int = 500) -> None:
        self._hub, self._publish, self._wait_ms = hub, publish, wait_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-events", daemon=True)
        self.delivered = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        events, generation, failing = None, -1, ""
        while not self._stop.is_set():
            try:
                if not self._hub.open():
                    return  # no driver: nothing will ever come
                if events is None or generation != self._hub.generation:
                    if events is not None:
                        events.close()
                    generation = self._hub.generation
                    events = self._hub.nvml.events([t.dev for t in self._hub.targets.values()])
                event = events.wait(self._wait_ms)
                failing = ""
            except Exception as exc:  # noqa: BLE001 - retried; one log line per distinct error
                if str(exc) != failing:
                    log.error("gpu.events_failed", error=str(exc))
                failing, events = str(exc), None
                self._stop.wait(1.0)
                continue
            if event is not None:
                self._deliver(event)
        if events is not None:
            from agent.backends.nvml_model import NvmlError  # loaded with NVML (agent.gpu.hub)
            try:
                events.close()
            except NvmlError:
                pass

    def _deliver(self, e: GpuEvent) -> None:
        target = self._hub.targets.get(e.uuid)
        static = target.static if target is not None else None
        labels = {"uuid": e.uuid, "gpu": str(static.index) if static else "",
                  "pci_bus_id": target.pci_bus_id if target else ""}
        if e.gi_id is not None:
            labels.update(gpu_instance=str(e.gi_id), compute_instance=str(e.ci_id or 0))
        if e.kind != "xid":
            return
        if target is not None:
            target.last_xid = e.data
        meaning, severity = describe(e.data)
        self.delivered += 1
        log.warning("gpu.xid", uuid=e.uuid, xid=e.data, meaning=meaning)
        self._publish("gpu.xid", severity, "gpu",
                      f"GPU {labels['gpu']} ({e.uuid}) XID {e.data}: {meaning}", **labels,
                      xid=str(e.data), meaning=meaning)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
