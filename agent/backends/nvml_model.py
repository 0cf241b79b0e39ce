"""What the NVML backend hands the GPU layer: plain, immutable values with no
pynvml types in them, and the errors NVML's return codes become.  Beside the
backend that makes them, below everything that reads them.

Units are NVML's where DCGM keeps them (MHz, °C, KB/s, mJ, %) and otherwise
base units (bytes, watts); None means "this GPU or driver does not give it"
(not supported, no permission, function missing, or a one-off error), never 0.
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.errors import AgentError, FailedPrecondition, Unavailable


# -- errors ------------------------------------------------------------------
class NvmlError(AgentError):
    """An NVML call failed; ``code`` is NVML's return code (0 when not NVML's)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class NvmlMissing(NvmlError, FailedPrecondition):
    """No usable NVIDIA driver: the library is not there, or the kernel
    driver is not loaded."""


class GpuNotSupported(NvmlError, FailedPrecondition):
    """This GPU (or its mode, e.g. MIG) does not do that."""


class NvmlFunctionMissing(GpuNotSupported):
    """The driver's NVML is older than the function (pynvml found no symbol)."""


class GpuNoPermission(NvmlError, FailedPrecondition):
    """The agent's user may not do that (NVML's NO_PERMISSION: settings need root)."""


class GpuInUse(NvmlError, FailedPrecondition):
    """Refused while something uses the GPU (processes, compute instances)."""


class GpuLost(NvmlError, Unavailable):
    """The GPU fell off the bus or stopped answering.  Opens the GPU's
    circuit (``agent.backends.guard``)."""


class GpuTimeout(GpuLost):
    """An NVML call on this GPU found no answer within its timeout."""


# -- values --------------------------------------------------------------------
@dataclass(frozen=True)
class MigProfile:
    """A GPU instance profile the GPU offers (``nvidia-smi mig -lgip``)."""

    index: int          # NVML_GPU_INSTANCE_PROFILE_* (what create/list take is ``id``)
    id: int
    name: str           # "3g.40gb"
    slices: int
    instances: int      # how many of it fit on an empty GPU
    memory_mb: int


@dataclass(frozen=True)
class ComputeInstance:
    id: int
    profile_id: int
    slices: int


@dataclass(frozen=True)
class GpuInstance:
    id: int
    profile_id: int
    profile: str        # "3g.40gb", the GPU_I_PROFILE label
    placement_start: int
    placement_size: int
    memory_mb: int
    compute: tuple[ComputeInstance, ...] = ()


@dataclass(frozen=True)
class GpuStatic:
    """Facts read once per GPU (and again after the agent changes a mode)."""

    uuid: str
    pci_bus_id: str      # "00000000:18:00.0", NVML's form
    index: int           # NVML's index when read: a label, never a key
    minor: int | None    # /dev/nvidia<minor>
    name: str
    serial: str = ""
    vbios: str = ""
    board_part_number: str = ""
    numa_node: int | None = None
    memory_total_bytes: int | None = None
    power_min_w: float | None = None
    power_max_w: float | None = None
    power_default_w: float | None = None
    persistence: bool | None = None
    compute_mode: str | None = None          # "default", "exclusive_process", "prohibited"
    ecc_current: bool | None = None
    ecc_pending: bool | None = None
    mig_capable: bool = False
    mig_current: bool = False
    mig_pending: bool = False
    mig_profiles: tuple[MigProfile, ...] = ()
    mig_instances: tuple[GpuInstance, ...] = ()
    nvlinks: int = 0
    cuda_capability: str = ""
    license_supported: bool = False

    @property
    def device(self) -> str:
        """The ``device`` label: ``nvidia<minor>``."""
        return f"nvidia{self.minor}" if self.minor is not None else ""


@dataclass(frozen=True)
class MigSample:
    gi_id: int
    profile: str
    fb_used_mib: float | None
    fb_free_mib: float | None


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_bytes: int | None
    gi_id: int | None = None
    ci_id: int | None = None


@dataclass(frozen=True)
class GpuSample:
    """One collection cycle of one GPU.  ``calls``: NVML calls it took;
    ``failed``: values whose call failed this cycle with an unexpected error."""

    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    gpu_temp_c: float | None = None
    memory_temp_c: float | None = None
    power_w: float | None = None
    energy_mj: int | None = None
    pcie_tx_kbs: float | None = None
    pcie_rx_kbs: float | None = None
    pcie_replay: int | None = None
    gpu_util: float | None = None
    mem_copy_util: float | None = None
    enc_util: float | None = None
    dec_util: float | None = None
    fb_free_mib: float | None = None
    fb_used_mib: float | None = None
    fb_reserved_mib: float | None = None
    fan_pct: float | None = None
    pstate: int | None = None
    power_limit_w: float | None = None
    clock_events: int | None = None          # nvmlClocksEventReason* bits
    ecc_sbe_volatile: int | None = None
    ecc_dbe_volatile: int | None = None
    ecc_sbe_aggregate: int | None = None
    ecc_dbe_aggregate: int | None = None
    retired_sbe: int | None = None
    retired_dbe: int | None = None
    retired_pending: int | None = None
    remapped_correctable: int | None = None
    remapped_uncorrectable: int | None = None
    remap_pending: int | None = None
    remap_failure: int | None = None
    nvlink_crc_flit: int | None = None
    nvlink_crc_data: int | None = None
    nvlink_replay: int | None = None
    nvlink_recovery: int | None = None
    nvlink_bandwidth_kib: int | None = None  # data sent + received, all links
    license_status: int | None = None        # 1 licensed, 0 not (vGPU guests only)
    mig: tuple[MigSample, ...] = ()
    processes: tuple[GpuProcess, ...] | None = None
    calls: int = 0
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuEvent:
    """An event NVML delivered: an XID, an ECC error."""

    uuid: str
    kind: str            # "xid", "ecc_dbe", "ecc_sbe"
    data: int            # the XID number for "xid"
    gi_id: int | None = None
    ci_id: int | None = None
