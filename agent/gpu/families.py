"""The gpu collector's metric families: dcgm-exporter's default counters under
their exact names, help texts' meaning and units, so the NVIDIA DCGM Grafana
dashboard works unchanged, plus the agent's own ``hostagent_gpu_*``.

Every ``DCGM_FI_*`` family is served as a gauge, including those that
dcgm-exporter declares ``counter`` (energy, PCIe and NVLink totals, remapped
rows): the agent's metric model keeps the counter type for names ending in
``_total``, as Prometheus' conventions ask, and DCGM's names do not.  The
value is DCGM's value either way, and PromQL's ``rate()`` reads a gauge's
samples the same; the proper counters are the agent's
(``hostagent_gpu_energy_joules_total``).  docs/gpu.md explains the choice.

Labels as dcgm-exporter's: ``gpu`` (NVML index), ``UUID``, ``pci_bus_id``,
``device`` (``nvidia<minor>``), ``modelName``, and ``GPU_I_PROFILE`` /
``GPU_I_ID`` on a MIG instance's series (empty on the whole GPU's: an empty
label is an absent one to Prometheus, as dcgm-exporter leaves them out).
"""
from __future__ import annotations

from agent.telemetry.model import FamilyDesc, MetricType

G, C = MetricType.GAUGE, MetricType.COUNTER
BASE = ("gpu", "UUID", "pci_bus_id", "device", "modelName")
DCGM_LABELS = (*BASE, "GPU_I_PROFILE", "GPU_I_ID")


def _dcgm(field: str, help_: str, unit: str = "") -> FamilyDesc:
    return FamilyDesc(f"DCGM_FI_DEV_{field}", G, help_, unit, DCGM_LABELS)


# (GpuSample attribute, family): one series per GPU when the value is there.
DCGM = (
    ("sm_clock_mhz", _dcgm("SM_CLOCK", "SM clock frequency (in MHz).", "MHz")),
    ("mem_clock_mhz", _dcgm("MEM_CLOCK", "Memory clock frequency (in MHz).", "MHz")),
    ("gpu_temp_c", _dcgm("GPU_TEMP", "GPU temperature (in C).", "celsius")),
    ("memory_temp_c", _dcgm("MEMORY_TEMP", "Memory temperature (in C).", "celsius")),
    ("power_w", _dcgm("POWER_USAGE", "Power draw (in W).", "watts")),
    ("energy_mj", _dcgm("TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since the driver "
                        "was loaded (in mJ); restarts with the driver.", "millijoules")),
    ("pcie_tx_kbs", _dcgm("PCIE_TX_THROUGHPUT", "PCIe transmit throughput over NVML's last "
                          "sample (in KB/s).", "kilobytes_per_second")),
    ("pcie_rx_kbs", _dcgm("PCIE_RX_THROUGHPUT", "PCIe receive throughput over NVML's last "
                          "sample (in KB/s).", "kilobytes_per_second")),
    ("pcie_replay", _dcgm("PCIE_REPLAY_COUNTER", "Total number of PCIe retries.")),
    ("gpu_util", _dcgm("GPU_UTIL", "GPU utilization (in %).", "percent")),
    ("mem_copy_util", _dcgm("MEM_COPY_UTIL", "Memory utilization (in %).", "percent")),
    ("enc_util", _dcgm("ENC_UTIL", "Encoder utilization (in %).", "percent")),
    ("dec_util", _dcgm("DEC_UTIL", "Decoder utilization (in %).", "percent")),
    ("fb_free_mib", _dcgm("FB_FREE", "Framebuffer memory free (in MiB).", "mebibytes")),
    ("fb_used_mib", _dcgm("FB_USED", "Framebuffer memory used (in MiB).", "mebibytes")),
    ("fb_reserved_mib", _dcgm("FB_RESERVED", "Framebuffer memory reserved by the driver and "
                              "firmware (in MiB).", "mebibytes")),
    ("nvlink_bandwidth_kib", _dcgm("NVLINK_BANDWIDTH_TOTAL", "Total NVLink data sent and "
                                   "received, all links (in KiB).", "kibibytes")),
    ("license_status", _dcgm("VGPU_LICENSE_STATUS", "vGPU license status (1 licensed).")),
    ("remapped_uncorrectable", _dcgm("UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows "
                                     "for uncorrectable errors.")),
    ("remapped_correctable", _dcgm("CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for "
                                   "correctable errors.")),
    ("remap_failure", _dcgm("ROW_REMAP_FAILURE", "Whether remapping of rows has failed.")),
    ("remap_pending", _dcgm("ROW_REMAP_PENDING", "Whether rows are waiting to be remapped "
                            "(at the next reset).")),
    ("power_limit_w", _dcgm("POWER_MGMT_LIMIT", "Power management limit (in W).", "watts")),
    ("fan_pct", _dcgm("FAN_SPEED", "Fan speed (in 0-100%).", "percent")),
    ("pstate", _dcgm("PSTATE", "Performance state (0 fastest, 15 slowest).")),
    ("ecc_sbe_volatile", _dcgm("ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC "
                               "errors (since the last reset).")),
    ("ecc_dbe_volatile", _dcgm("ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC "
                               "errors (since the last reset).")),
    ("ecc_sbe_aggregate", _dcgm("ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent "
                                "ECC errors.")),
    ("ecc_dbe_aggregate", _dcgm("ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent "
                                "ECC errors.")),
    ("retired_sbe", _dcgm("RETIRED_SBE", "Total number of retired pages due to single-bit "
                          "errors (parts before Ampere).")),
    ("retired_dbe", _dcgm("RETIRED_DBE", "Total number of retired pages due to double-bit "
                          "errors (parts before Ampere).")),
    ("retired_pending", _dcgm("RETIRED_PENDING", "Whether pages are pending retirement.")),
    ("nvlink_crc_flit", _dcgm("NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "Total number of NVLink "
                              "flow-control CRC errors.")),
    ("nvlink_crc_data", _dcgm("NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "Total number of NVLink "
                              "data CRC errors.")),
    ("nvlink_replay", _dcgm("NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink "
                            "retries.")),
    ("nvlink_recovery", _dcgm("NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink "
                              "recovery errors.")),
)
XID = _dcgm("XID_ERRORS", "Value of the last XID error encountered (0: none since the agent "
            "started).")
MIG_FB_USED = next(f for a, f in DCGM if a == "fb_used_mib")
MIG_FB_FREE = next(f for a, f in DCGM if a == "fb_free_mib")

CLOCK_EVENT = FamilyDesc("hostagent_gpu_clock_event_active", G, "1 while the GPU's clocks are "
                         "held down for this reason (NVML clock event reasons), else 0.", "",
                         (*BASE, "reason"))
ENERGY = FamilyDesc("hostagent_gpu_energy_joules_total", C, "Energy used by the GPU, from "
                    "NVML's counter; never goes down across agent restarts, driver reloads and "
                    "GPU resets.", "joules", BASE, scale=1e-3)
PROCESS_MEMORY = FamilyDesc("hostagent_gpu_process_memory_bytes", G, "GPU memory used by a "
                            "compute process (the largest per GPU, up to [gpu] max_processes).",
                            "bytes", (*BASE, "pid", "comm"))
UP = FamilyDesc("hostagent_gpu_up", G, "1 if the GPU answered this cycle, 0 while it is lost or "
                "hung (its other series are left out meanwhile).", "", BASE)
CALLS = FamilyDesc("hostagent_gpu_nvml_calls_total", C, "NVML calls the gpu collector made for "
                   "this GPU.", "", BASE)
INFO = FamilyDesc("hostagent_gpu_info", G, "Constant 1, with the GPU's driver, VBIOS and "
                  "serial.", "", (*BASE, "driver_version", "cuda_version", "vbios", "serial"))

# nvmlClocksEventReason* bits and their ``reason`` label.
CLOCK_REASONS = ((0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"),
                 (0x8, "hw_slowdown"), (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"),
                 (0x40, "hw_thermal_slowdown"), (0x80, "hw_power_brake_slowdown"),
                 (0x100, "display_clock_setting"))
# The reasons that are a slowdown worth an event (gpu.throttle).  Power
# capping (sw_power_cap) is a busy GPU's normal state, and idling is not a
# slowdown: both stay metrics only.
SLOWDOWN = frozenset({"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                      "hw_power_brake_slowdown"})

ALL = (*(f for _, f in DCGM), XID, CLOCK_EVENT, ENERGY, PROCESS_MEMORY, UP, CALLS, INFO)
