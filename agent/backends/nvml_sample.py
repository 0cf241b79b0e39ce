"""One collection cycle of one GPU: the dynamic values, in as few NVML calls
as the driver allows.

With ``batching`` the counters that NVML also serves as fields (ECC totals,
retired pages, remapped rows, NVLink error totals and throughput, memory
temperature, energy, PCIe replays) come from one ``nvmlDeviceGetFieldValues``
call, each value with its own status; without it (or on a driver without
that function) they take one call each, and NVLink errors one per link and
counter.  bench/bench_gpu.py measures both.

A value the GPU does not give (NOT_SUPPORTED, NO_PERMISSION, a function the
driver lacks) is remembered in ``dev.skip`` and not asked again; a one-off
error leaves it None for this cycle and names it in ``failed``; GPU_IS_LOST
ends the cycle (the GPU layer hides the GPU and re-checks it with backoff).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pynvml

from agent.backends.nvml_call import nvml
from agent.backends.nvml_model import (GpuLost, GpuNoPermission, GpuNotSupported, GpuProcess,
                                       GpuSample, GpuStatic, MigSample, NvmlError)
from agent.logs import get_logger

if TYPE_CHECKING:
    from agent.backends.nvml import NvmlDevice


def process_list(raw: Any) -> tuple[GpuProcess, ...]:
    """pynvml's process records as values (0xFFFFFFFF: not in a MIG instance)."""
    def instance(value: int) -> int | None:
        return None if value == 0xFFFFFFFF else int(value)
    return tuple(GpuProcess(int(p.pid), p.usedGpuMemory, instance(p.gpuInstanceId),
                            instance(p.computeInstanceId)) for p in raw)

log = get_logger(__name__)
MIB = 1 << 20

ALL_LINKS = 0xFFFFFFFF  # scopeId of NVLink throughput: the sum over every link

# NVML field (or (field, scope)) -> GpuSample attribute, read in one
# nvmlDeviceGetFieldValues call.
FIELDS: tuple[tuple[int | tuple[int, int], str], ...] = (
    (pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, "ecc_sbe_volatile"),
    (pynvml.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, "ecc_dbe_volatile"),
    (pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, "ecc_sbe_aggregate"),
    (pynvml.NVML_FI_DEV_ECC_DBE_AGG_TOTAL, "ecc_dbe_aggregate"),
    (pynvml.NVML_FI_DEV_RETIRED_SBE, "retired_sbe"),
    (pynvml.NVML_FI_DEV_RETIRED_DBE, "retired_dbe"),
    (pynvml.NVML_FI_DEV_RETIRED_PENDING, "retired_pending"),
    (pynvml.NVML_FI_DEV_REMAPPED_COR, "remapped_correctable"),
    (pynvml.NVML_FI_DEV_REMAPPED_UNC, "remapped_uncorrectable"),
    (pynvml.NVML_FI_DEV_REMAPPED_PENDING, "remap_pending"),
    (pynvml.NVML_FI_DEV_REMAPPED_FAILURE, "remap_failure"),
    (pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, "nvlink_crc_flit"),
    (pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, "nvlink_crc_data"),
    (pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, "nvlink_replay"),
    (pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, "nvlink_recovery"),
    ((pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, ALL_LINKS), "nvlink_tx"),
    ((pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, ALL_LINKS), "nvlink_rx"),
    (pynvml.NVML_FI_DEV_MEMORY_TEMP, "memory_temp_c"),
    (pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, "energy_mj"),
    (pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER, "pcie_replay"),
)
_VALUE = {pynvml.NVML_VALUE_TYPE_DOUBLE: "dVal", pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
          pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
          pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
          pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
          pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
          pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal"}
_GONE = (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION,
         pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
_NVLINK = (("nvlink_crc_flit", pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT),
           ("nvlink_crc_data", pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA),
           ("nvlink_replay", pynvml.NVML_NVLINK_ERROR_DL_REPLAY),
           ("nvlink_recovery", pynvml.NVML_NVLINK_ERROR_DL_RECOVERY))


class _Reader:
    """One cycle's calls on one GPU: counts them, applies the skip rules."""

    def __init__(self, dev: "NvmlDevice") -> None:
        self.dev = dev
        self.calls = 0
        self.failed: list[str] = []

    def get(self, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        if key in self.dev.skip:
            return None
        self.calls += 1
        try:
            return nvml(fn, *args)
        except (GpuNotSupported, GpuNoPermission) as exc:
            self.dev.skip.add(key)
            log.debug("gpu.value_unavailable", uuid=self.dev.uuid, value=key, error=str(exc))
        except GpuLost:
            raise
        except NvmlError as exc:
            self.failed.append(key)
            log.debug("gpu.value_failed", uuid=self.dev.uuid, value=key, error=str(exc))
        return None


def _scaled(value: Any, factor: float) -> float | None:
    return None if value is None else value * factor


def sample(dev: "NvmlDevice", static: GpuStatic, batching: bool = True) -> GpuSample:
    r, h = _Reader(dev), dev.handle
    v: dict[str, Any] = {}
    v["sm_clock_mhz"] = r.get("sm_clock", pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM)
    v["mem_clock_mhz"] = r.get("mem_clock", pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_MEM)
    v["gpu_temp_c"] = r.get("gpu_temp", pynvml.nvmlDeviceGetTemperature, h,
                            pynvml.NVML_TEMPERATURE_GPU)
    v["power_w"] = _scaled(r.get("power", pynvml.nvmlDeviceGetPowerUsage, h), 1e-3)
    v["power_limit_w"] = _scaled(r.get("power_limit", pynvml.nvmlDeviceGetPowerManagementLimit, h),
                                 1e-3)
    v["pcie_tx_kbs"] = r.get("pcie_tx", pynvml.nvmlDeviceGetPcieThroughput, h,
                             pynvml.NVML_PCIE_UTIL_TX_BYTES)
    v["pcie_rx_kbs"] = r.get("pcie_rx", pynvml.nvmlDeviceGetPcieThroughput, h,
                             pynvml.NVML_PCIE_UTIL_RX_BYTES)
    util = r.get("utilization", pynvml.nvmlDeviceGetUtilizationRates, h)
    if util is not None:
        v["gpu_util"], v["mem_copy_util"] = util.gpu, util.memory
    enc = r.get("encoder", pynvml.nvmlDeviceGetEncoderUtilization, h)
    dec = r.get("decoder", pynvml.nvmlDeviceGetDecoderUtilization, h)
    v["enc_util"] = enc[0] if enc else None
    v["dec_util"] = dec[0] if dec else None
    _memory(r, h, v)
    v["fan_pct"] = r.get("fan", pynvml.nvmlDeviceGetFanSpeed, h)
    v["pstate"] = r.get("pstate", pynvml.nvmlDeviceGetPerformanceState, h)
    v["clock_events"] = r.get("clock_events", pynvml.nvmlDeviceGetCurrentClocksEventReasons, h)
    if v["clock_events"] is None and "clock_events" in dev.skip:  # a driver before R535
        v["clock_events"] = r.get("clock_throttle", pynvml.nvmlDeviceGetCurrentClocksThrottleReasons,
                                  h)
    if not (batching and _fields(r, h, v)):
        _one_by_one(r, h, static, v)
    tx, rx = v.pop("nvlink_tx", None), v.pop("nvlink_rx", None)
    v["nvlink_bandwidth_kib"] = tx + rx if tx is not None and rx is not None else None
    if static.license_supported:
        lic = r.get("license", pynvml.nvmlDeviceGetGridLicensableFeatures, h)
        if lic is not None:
            v["license_status"] = int(any(f.featureState for f in
                                          lic.gridLicensableFeatures[:lic.licensableFeaturesCount]))
    mig = []
    seen: set[int] = set()
    for gi_id, profile, mh in dev.mig_devices:
        if gi_id in seen:  # one MIG device per compute instance; memory is the GPU instance's
            continue
        seen.add(gi_id)
        mem = r.get("mig_memory", pynvml.nvmlDeviceGetMemoryInfo, mh)
        mig.append(MigSample(gi_id, profile, _scaled(mem and mem.used, 1 / MIB),
                             _scaled(mem and mem.free, 1 / MIB)))
    procs = r.get("processes", pynvml.nvmlDeviceGetComputeRunningProcesses, h)
    return GpuSample(**{k: x for k, x in v.items() if x is not None}, mig=tuple(mig),
                     processes=None if procs is None else process_list(procs),
                     calls=r.calls, failed=tuple(r.failed))


def _memory(r: _Reader, h: Any, v: dict[str, Any]) -> None:
    mem = r.get("memory_v2", pynvml.nvmlDeviceGetMemoryInfo, h, pynvml.nvmlMemory_v2)
    if mem is not None:
        v["fb_reserved_mib"] = mem.reserved / MIB
    elif "memory_v2" in r.dev.skip:  # a driver before R510: used includes the reserved part
        mem = r.get("memory", pynvml.nvmlDeviceGetMemoryInfo, h)
    if mem is not None:
        v["fb_free_mib"], v["fb_used_mib"] = mem.free / MIB, mem.used / MIB


def _fields(r: _Reader, h: Any, v: dict[str, Any]) -> bool:
    """The batched counters into ``v``; False when the driver has no field values."""
    wanted = [(fid, name) for fid, name in FIELDS
              if (fid if isinstance(fid, int) else fid[0]) not in r.dev.skip_fields]
    if not wanted:
        return True
    values = r.get("field_values", pynvml.nvmlDeviceGetFieldValues, h, [f for f, _ in wanted])
    if values is None:
        return "field_values" not in r.dev.skip  # a one-off failure: nothing this cycle
    for (fid, name), fv in zip(wanted, values):
        if fv.nvmlReturn == pynvml.NVML_SUCCESS:
            v[name] = getattr(fv.value, _VALUE.get(fv.valueType, "ullVal"))
        elif fv.nvmlReturn in _GONE:
            r.dev.skip_fields.add(fid if isinstance(fid, int) else fid[0])
        elif fv.nvmlReturn == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost(f"{r.dev.uuid}: GPU is lost (field {fid})", fv.nvmlReturn)
        else:
            r.failed.append(name)
    return True


def _one_by_one(r: _Reader, h: Any, static: GpuStatic, v: dict[str, Any]) -> None:
    for name, kind, counter in (
            ("ecc_sbe_volatile", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC),
            ("ecc_dbe_volatile", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
            ("ecc_sbe_aggregate", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
             pynvml.NVML_AGGREGATE_ECC),
            ("ecc_dbe_aggregate", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
             pynvml.NVML_AGGREGATE_ECC)):
        v[name] = r.get(name, pynvml.nvmlDeviceGetTotalEccErrors, h, kind, counter)
    sbe = r.get("retired", pynvml.nvmlDeviceGetRetiredPages, h,
                pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
    if sbe is not None:
        dbe = r.get("retired", pynvml.nvmlDeviceGetRetiredPages, h,
                    pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
        pending = r.get("retired", pynvml.nvmlDeviceGetRetiredPagesPendingStatus, h)
        v["retired_sbe"] = len(sbe)
        v["retired_dbe"] = len(dbe) if dbe is not None else None
        v["retired_pending"] = int(pending) if pending is not None else None
    rows = r.get("remapped_rows", pynvml.nvmlDeviceGetRemappedRows, h)
    if rows is not None:
        (v["remapped_correctable"], v["remapped_uncorrectable"], v["remap_pending"],
         v["remap_failure"]) = rows
    v["energy_mj"] = r.get("energy", pynvml.nvmlDeviceGetTotalEnergyConsumption, h)
    v["pcie_replay"] = r.get("pcie_replay", pynvml.nvmlDeviceGetPcieReplayCounter, h)
    if static.nvlinks and "nvlink_errors" not in r.dev.skip:
        totals = dict.fromkeys((name for name, _ in _NVLINK), 0)
        for link in range(static.nvlinks):
            for name, counter in _NVLINK:
                got = r.get("nvlink_errors", pynvml.nvmlDeviceGetNvLinkErrorCounter, h, link, counter)
                if got is None:
                    return
                totals[name] += got
        v.update(totals)
