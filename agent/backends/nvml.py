"""The NVML backend: the GPUs NVML sees, their static facts and settings.

:class:`Nvml` owns the library (``nvmlInit``/``nvmlShutdown``) and finds the
GPUs; each :class:`NvmlDevice` is one GPU, known by its UUID (and PCI bus
id), never by its index: indices change when a GPU is removed or found
again.  Per-cycle reading is ``agent.backends.nvml_sample``, MIG
``agent.backends.nvml_mig``; the calls themselves and their errors,
``agent.backends.nvml_call``.  Only these modules import pynvml.

Every call blocks its thread for as long as the driver takes; the GPU layer
runs them on guarded workers (``agent.backends.guard``), never on a thread
that anything else waits for.
"""
from __future__ import annotations

from typing import Any, Callable

import pynvml

from agent.backends import nvml_mig, nvml_sample
from agent.backends.nvml_call import SYSTEM_LIBRARY, address, load_library, nvml, text
from agent.backends.nvml_model import (GpuEvent, GpuLost, GpuNoPermission, GpuNotSupported,
                                       GpuProcess, GpuSample, GpuStatic, NvmlError, NvmlMissing)
from agent.logs import get_logger

log = get_logger(__name__)

COMPUTE_MODES = {pynvml.NVML_COMPUTEMODE_DEFAULT: "default",
                 pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS: "exclusive_process",
                 pynvml.NVML_COMPUTEMODE_PROHIBITED: "prohibited"}
COMPUTE_MODE_VALUES = {v: k for k, v in COMPUTE_MODES.items()}
# Only XIDs come as events: double-bit ECC errors are seen in the counters
# every cycle (gpu.ecc_dbe), also on GPUs whose events cannot be registered.
EVENT_TYPES = {pynvml.nvmlEventTypeXidCriticalError: "xid"}


class Nvml:
    """The library: init/shutdown, driver facts, finding GPUs, events."""

    def __init__(self, library: str = "", batching: bool = True) -> None:
        self.library = library
        self.batching = batching
        self._opened = False

    def open(self) -> None:
        """Load the library and initialize NVML; ``NvmlMissing`` without a driver."""
        load_library(self.library)
        try:
            nvml(pynvml.nvmlInit)
        except NvmlMissing as exc:
            where = self.library or SYSTEM_LIBRARY
            raise NvmlMissing(f"no NVIDIA driver: {where}: {exc}", exc.code) from None
        self._opened = True

    def close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                nvml(pynvml.nvmlShutdown)
            except NvmlError as exc:
                log.warning("nvml.shutdown_failed", error=str(exc))

    def driver_version(self) -> str:
        return text(nvml(pynvml.nvmlSystemGetDriverVersion))

    def cuda_version(self) -> str:
        """"12.8" for 12080; "" when the driver does not say."""
        try:
            v = int(nvml(pynvml.nvmlSystemGetCudaDriverVersion))
        except GpuNotSupported:
            return ""
        return f"{v // 1000}.{v % 1000 // 10}"

    def devices(self) -> list["NvmlDevice"]:
        """Every GPU NVML sees now, in NVML's order.  A GPU that answers
        GPU_IS_LOST to the lookup is left out (and logged)."""
        out = []
        for i in range(int(nvml(pynvml.nvmlDeviceGetCount))):
            try:
                handle = nvml(pynvml.nvmlDeviceGetHandleByIndex, i)
                uuid = text(nvml(pynvml.nvmlDeviceGetUUID, handle))
                bus = text(nvml(pynvml.nvmlDeviceGetPciInfo, handle).busId)
            except GpuLost as exc:
                log.error("gpu.lost_at_discovery", index=i, error=str(exc))
                continue
            out.append(NvmlDevice(self, uuid, bus, handle))
        return out

    def device(self, uuid: str) -> "NvmlDevice":
        handle = nvml(pynvml.nvmlDeviceGetHandleByUUID, uuid)
        bus = text(nvml(pynvml.nvmlDeviceGetPciInfo, handle).busId)
        return NvmlDevice(self, uuid, bus, handle)

    def events(self, devices: list["NvmlDevice"]) -> "NvmlEvents":
        return NvmlEvents(devices)


class NvmlDevice:
    """One GPU.  ``skip``: what it answered NOT_SUPPORTED, NO_PERMISSION or
    FUNCTION_NOT_FOUND to, so each cycle does not ask again (cleared when the
    GPU is found again after a reset)."""

    def __init__(self, lib: Nvml, uuid: str, pci_bus_id: str, handle: Any) -> None:
        self.lib, self.uuid, self.pci_bus_id, self.handle = lib, uuid, pci_bus_id, handle
        self.skip: set[str] = set()
        self.skip_fields: set[int] = set()
        self.mig_devices: list[tuple[int, str, Any]] = []  # (GPU instance id, profile, handle)

    def refind(self) -> None:
        """Look the GPU up by UUID again (after it was removed and found)."""
        self.handle = nvml(pynvml.nvmlDeviceGetHandleByUUID, self.uuid)
        self.skip.clear()
        self.skip_fields.clear()
        self.mig_devices = []

    def _soft(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A static fact: None when this GPU does not give it; GpuLost propagates."""
        try:
            return nvml(fn, self.handle, *args)
        except (GpuNotSupported, GpuNoPermission):
            return None
        except GpuLost:
            raise
        except NvmlError as exc:
            log.warning("gpu.static_read_failed", uuid=self.uuid, call=fn.__name__, error=str(exc))
            return None

    def static(self) -> GpuStatic:
        h = self._soft
        index = h(pynvml.nvmlDeviceGetIndex)
        limits = h(pynvml.nvmlDeviceGetPowerManagementLimitConstraints)
        ecc = h(pynvml.nvmlDeviceGetEccMode)
        mig = h(pynvml.nvmlDeviceGetMigMode)
        memory = h(pynvml.nvmlDeviceGetMemoryInfo)
        compute = h(pynvml.nvmlDeviceGetComputeMode)
        capability = h(pynvml.nvmlDeviceGetCudaComputeCapability)
        default = h(pynvml.nvmlDeviceGetPowerManagementDefaultLimit)
        persistence = h(pynvml.nvmlDeviceGetPersistenceMode)
        license_ = h(pynvml.nvmlDeviceGetGridLicensableFeatures)
        profiles, instances = ((), ())
        if mig is not None and mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE:
            profiles, instances = nvml_mig.read_layout(self)
        else:
            self.mig_devices = []
        return GpuStatic(
            uuid=self.uuid, pci_bus_id=self.pci_bus_id, index=-1 if index is None else int(index),
            minor=h(pynvml.nvmlDeviceGetMinorNumber), name=text(h(pynvml.nvmlDeviceGetName) or ""),
            serial=text(h(pynvml.nvmlDeviceGetSerial) or ""),
            vbios=text(h(pynvml.nvmlDeviceGetVbiosVersion) or ""),
            board_part_number=text(h(pynvml.nvmlDeviceGetBoardPartNumber) or ""),
            numa_node=h(pynvml.nvmlDeviceGetNumaNodeId),
            memory_total_bytes=memory.total if memory is not None else None,
            power_min_w=limits[0] / 1000 if limits else None,
            power_max_w=limits[1] / 1000 if limits else None,
            power_default_w=default / 1000 if default is not None else None,
            persistence=None if persistence is None else persistence == pynvml.NVML_FEATURE_ENABLED,
            compute_mode=COMPUTE_MODES.get(compute) if compute is not None else None,
            ecc_current=None if ecc is None else ecc[0] == pynvml.NVML_FEATURE_ENABLED,
            ecc_pending=None if ecc is None else ecc[1] == pynvml.NVML_FEATURE_ENABLED,
            mig_capable=mig is not None, mig_current=bool(mig and mig[0]),
            mig_pending=bool(mig and mig[1]), mig_profiles=profiles, mig_instances=instances,
            nvlinks=self._nvlinks(),
            cuda_capability=f"{capability[0]}.{capability[1]}" if capability else "",
            license_supported=bool(license_ is not None and license_.isGridLicenseSupported))

    def _nvlinks(self) -> int:
        n = 0
        while n < pynvml.NVML_NVLINK_MAX_LINKS:
            try:
                nvml(pynvml.nvmlDeviceGetNvLinkState, self.handle, n)
            except GpuLost:
                raise
            except NvmlError:
                break
            n += 1
        return n

    def sample(self, static: GpuStatic) -> GpuSample:
        """This cycle's values (``agent.backends.nvml_sample``)."""
        return nvml_sample.sample(self, static, self.lib.batching)

    def processes(self) -> tuple[GpuProcess, ...]:
        return nvml_sample.process_list(nvml(pynvml.nvmlDeviceGetComputeRunningProcesses, self.handle))

    # -- MIG changes (``agent.backends.nvml_mig``) ---------------------------------
    def create_gpu_instance(self, profile_id: int) -> int:
        return nvml_mig.create_gpu_instance(self, profile_id)

    def destroy_gpu_instance(self, gi_id: int) -> None:
        nvml_mig.destroy_gpu_instance(self, gi_id)

    def create_compute_instance(self, gi_id: int, slices: int) -> int:
        return nvml_mig.create_compute_instance(self, gi_id, slices)

    def destroy_compute_instance(self, gi_id: int, ci_id: int) -> None:
        nvml_mig.destroy_compute_instance(self, gi_id, ci_id)

    # -- settings: each returns what the GPU reads back ------------------------
    def set_persistence(self, on: bool) -> bool:
        nvml(pynvml.nvmlDeviceSetPersistenceMode, self.handle,
             pynvml.NVML_FEATURE_ENABLED if on else pynvml.NVML_FEATURE_DISABLED)
        return nvml(pynvml.nvmlDeviceGetPersistenceMode, self.handle) == pynvml.NVML_FEATURE_ENABLED

    def power_limits(self) -> tuple[float, float, float]:
        """(min, max, current) watts."""
        lo, hi = nvml(pynvml.nvmlDeviceGetPowerManagementLimitConstraints, self.handle)
        now = nvml(pynvml.nvmlDeviceGetPowerManagementLimit, self.handle)
        return lo / 1000, hi / 1000, now / 1000

    def set_power_limit(self, watts: float) -> float:
        nvml(pynvml.nvmlDeviceSetPowerManagementLimit, self.handle, int(round(watts * 1000)))
        return nvml(pynvml.nvmlDeviceGetPowerManagementLimit, self.handle) / 1000

    def set_compute_mode(self, mode: str) -> str:
        nvml(pynvml.nvmlDeviceSetComputeMode, self.handle, COMPUTE_MODE_VALUES[mode])
        return COMPUTE_MODES.get(nvml(pynvml.nvmlDeviceGetComputeMode, self.handle), "")

    def set_ecc(self, on: bool) -> tuple[bool, bool]:
        """(current, pending): the new mode is pending until the GPU is reset."""
        nvml(pynvml.nvmlDeviceSetEccMode, self.handle,
             pynvml.NVML_FEATURE_ENABLED if on else pynvml.NVML_FEATURE_DISABLED)
        cur, pend = nvml(pynvml.nvmlDeviceGetEccMode, self.handle)
        return cur == pynvml.NVML_FEATURE_ENABLED, pend == pynvml.NVML_FEATURE_ENABLED

    def set_mig_mode(self, on: bool) -> tuple[bool, bool, bool, str]:
        """(current, pending, reset required, why not active).  pynvml returns
        the activation status as a value, not an exception: it is read here."""
        status = nvml(pynvml.nvmlDeviceSetMigMode, self.handle,
                      pynvml.NVML_DEVICE_MIG_ENABLE if on else pynvml.NVML_DEVICE_MIG_DISABLE)
        cur, pend = nvml(pynvml.nvmlDeviceGetMigMode, self.handle)
        why = "" if status == pynvml.NVML_SUCCESS else str(pynvml.NVMLError(status))
        return bool(cur), bool(pend), status == pynvml.NVML_ERROR_RESET_REQUIRED, why

    def reset(self) -> None:
        """Re-initialize the GPU the way NVML allows: drain it, detach it from
        the driver and have the driver find it again (pending ECC and MIG
        modes apply; volatile ECC counts restart).  The handle is looked up
        again by UUID afterwards: the GPU's index may have changed."""
        pci = nvml(pynvml.nvmlDeviceGetPciInfo, self.handle)
        nvml(pynvml.nvmlDeviceModifyDrainState, pci, pynvml.NVML_FEATURE_ENABLED)
        try:
            nvml(pynvml.nvmlDeviceRemoveGpu, pci)
        except NvmlError:
            nvml(pynvml.nvmlDeviceModifyDrainState, pci, pynvml.NVML_FEATURE_DISABLED)
            raise
        nvml(pynvml.nvmlDeviceDiscoverGpus, pci)
        self.refind()


class NvmlEvents:
    """An NVML event set over some GPUs: XIDs and double-bit ECC errors.
    ``wait`` blocks up to its timeout; meant for a thread of its own."""

    def __init__(self, devices: list[NvmlDevice]) -> None:
        self._set = nvml(pynvml.nvmlEventSetCreate)
        self._uuids: dict[int, str] = {}
        self.registered: list[str] = []
        for d in devices:
            try:
                supported = nvml(pynvml.nvmlDeviceGetSupportedEventTypes, d.handle)
                wanted = supported & sum(EVENT_TYPES)
                if wanted:
                    nvml(pynvml.nvmlDeviceRegisterEvents, d.handle, wanted, self._set)
                    self._uuids[address(d.handle)] = d.uuid
                    self.registered.append(d.uuid)
            except NvmlError as exc:  # this GPU's events are lost; the others still come
                log.warning("gpu.events_unavailable", uuid=d.uuid, error=str(exc))

    def wait(self, timeout_ms: int) -> GpuEvent | None:
        try:
            data = nvml(pynvml.nvmlEventSetWait_v2, self._set, timeout_ms)
        except NvmlError as exc:
            if exc.code == pynvml.NVML_ERROR_TIMEOUT:
                return None
            raise
        uuid = self._uuids.get(address(data.device))
        if uuid is None:
            try:
                uuid = text(nvml(pynvml.nvmlDeviceGetUUID, data.device))
            except NvmlError:
                uuid = ""
        gi = data.gpuInstanceId if data.gpuInstanceId != 0xFFFFFFFF else None
        ci = data.computeInstanceId if data.computeInstanceId != 0xFFFFFFFF else None
        return GpuEvent(uuid, EVENT_TYPES.get(data.eventType, f"0x{data.eventType:x}"),
                        int(data.eventData), gi, ci)

    def close(self) -> None:
        try:
            nvml(pynvml.nvmlEventSetFree, self._set)
        except NvmlError as exc:
            log.debug("gpu.events_free_failed", error=str(exc))
