/* The fake's per-GPU identity, power, modes, memory, clocks and utilization
 * (fake_counters.c: error counters, field values, processes).  A MIG device handle answers what
 * a real one does (memory, UUID, instance ids) and NOT_SUPPORTED to
 * whole-GPU queries. */
#include "fakenvml.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- identity ----------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    nvmlReturn_t ret;
    DEVICE_ENTRY(nvmlDeviceGetName, device, g);
    fake_copy(name, length, G->name, &ret);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    nvmlReturn_t ret;
    int gi = -1, ci = -1;
    DEVICE_ENTRY(nvmlDeviceGetUUID, device, g);
    fake_gpu_of(device, &gi, &ci);
    if (gi < 0) {
        fake_copy(uuid, length, G->uuid, &ret);
        return ret;
    }
    char mig[96];
    snprintf(mig, sizeof(mig), "MIG-%.8s-%04x-4000-8000-%012x", G->uuid + 4, (unsigned int)(g * 64 + gi * 8 + ci),
             G->gi[gi].id * 16 + G->gi[gi].ci[ci].id);
    fake_copy(uuid, length, mig, &ret);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length) {
    nvmlReturn_t ret;
    GPU_ENTRY(nvmlDeviceGetSerial, device, g);
    fake_copy(serial, length, G->serial, &ret);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    DEVICE_ENTRY(nvmlDeviceGetPciInfo_v3, device, g);
    OUT(pci);
    memset(pci, 0, sizeof(*pci));
    snprintf(pci->busId, sizeof(pci->busId), "%s", G->bus_id);
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0", G->pci_domain, G->pci_bus,
             G->pci_device);
    pci->domain = G->pci_domain;
    pci->bus = G->pci_bus;
    pci->device = G->pci_device;
    pci->pciDeviceId = G->pci_device_id;
    pci->pciSubSystemId = G->pci_subsystem_id;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor) {
    GPU_ENTRY(nvmlDeviceGetMinorNumber, device, g);
    OUT(minor);
    *minor = G->minor;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length) {
    nvmlReturn_t ret;
    GPU_ENTRY(nvmlDeviceGetVbiosVersion, device, g);
    fake_copy(version, length, G->vbios, &ret);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetBoardPartNumber(nvmlDevice_t device, char *part, unsigned int length) {
    nvmlReturn_t ret;
    GPU_ENTRY(nvmlDeviceGetBoardPartNumber, device, g);
    fake_copy(part, length, G->part_number, &ret);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node) {
    GPU_ENTRY(nvmlDeviceGetNumaNodeId, device, g);
    OUT(node);
    *node = G->numa_node;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, nvmlDeviceArchitecture_t *arch) {
    GPU_ENTRY(nvmlDeviceGetArchitecture, device, g);
    OUT(arch);
    *arch = NVML_DEVICE_ARCH_HOPPER;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    GPU_ENTRY(nvmlDeviceGetCudaComputeCapability, device, g);
    OUT(major && minor);
    *major = 9;
    *minor = 0;
    return NVML_SUCCESS;
}

/* ---- power -------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *min,
                                                                 unsigned int *max) {
    GPU_ENTRY(nvmlDeviceGetPowerManagementLimitConstraints, device, g);
    OUT(min && max);
    *min = G->power_min_mw;
    *max = G->power_max_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, unsigned int *limit) {
    GPU_ENTRY(nvmlDeviceGetPowerManagementDefaultLimit, device, g);
    OUT(limit);
    *limit = G->power_default_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
    GPU_ENTRY(nvmlDeviceGetPowerManagementLimit, device, g);
    OUT(limit);
    *limit = G->power_limit_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    GPU_ENTRY(nvmlDeviceGetEnforcedPowerLimit, device, g);
    OUT(limit);
    *limit = G->power_limit_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    GPU_ENTRY(nvmlDeviceGetPowerUsage, device, g);
    OUT(power);
    *power = G->power_mw;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetTotalEnergyConsumption
EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    GPU_ENTRY(nvmlDeviceGetTotalEnergyConsumption, device, g);
    OUT(energy);
    *energy = G->energy_mj;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceSetPowerManagementLimit(nvmlDevice_t device, unsigned int limit) {
    GPU_ENTRY(nvmlDeviceSetPowerManagementLimit, device, g);
    if (limit < G->power_min_mw || limit > G->power_max_mw) return NVML_ERROR_INVALID_ARGUMENT;
    G->power_limit_mw = limit;
    return NVML_SUCCESS;
}

/* ---- modes -------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode) {
    GPU_ENTRY(nvmlDeviceGetPersistenceMode, device, g);
    OUT(mode);
    *mode = G->persistence ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceSetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t mode) {
    GPU_ENTRY(nvmlDeviceSetPersistenceMode, device, g);
    G->persistence = mode == NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, nvmlComputeMode_t *mode) {
    GPU_ENTRY(nvmlDeviceGetComputeMode, device, g);
    OUT(mode);
    *mode = (nvmlComputeMode_t)G->compute_mode;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceSetComputeMode(nvmlDevice_t device, nvmlComputeMode_t mode) {
    GPU_ENTRY(nvmlDeviceSetComputeMode, device, g);
    if (mode >= NVML_COMPUTEMODE_COUNT || mode == NVML_COMPUTEMODE_EXCLUSIVE_THREAD)
        return NVML_ERROR_INVALID_ARGUMENT;
    G->compute_mode = mode;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current,
                                         nvmlEnableState_t *pending) {
    GPU_ENTRY(nvmlDeviceGetEccMode, device, g);
    OUT(current && pending);
    *current = G->ecc_current ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    *pending = G->ecc_pending ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

/* Like the real driver: the new mode is pending until the GPU is reset. */
EXPORT nvmlReturn_t nvmlDeviceSetEccMode(nvmlDevice_t device, nvmlEnableState_t ecc) {
    GPU_ENTRY(nvmlDeviceSetEccMode, device, g);
    G->ecc_pending = ecc == NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

/* ---- memory, clocks, temperatures, utilization -------------------------- */

static void gi_memory(int g, int gi, unsigned long long *total, unsigned long long *used) {
    fake_gpu_t *gpu = G;
    *total = fake_gi_memory_mb(gpu->gi[gi].profile_index) << 20;
    *used = 0;
    for (unsigned int p = 0; p < gpu->nprocs && p < FAKE_MAX_PROCS; p++)
        if (gpu->procs[p].gi == gpu->gi[gi].id) *used += gpu->procs[p].memory;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    int gi = -1;
    DEVICE_ENTRY(nvmlDeviceGetMemoryInfo, device, g);
    OUT(memory);
    fake_gpu_of(device, &gi, NULL);
    if (gi >= 0) {
        gi_memory(g, gi, &memory->total, &memory->used);
    } else {
        memory->total = G->mem_total;
        memory->used = G->mem_used + G->mem_reserved;
    }
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    int gi = -1;
    DEVICE_ENTRY(nvmlDeviceGetMemoryInfo_v2, device, g);
    OUT(memory);
    if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    fake_gpu_of(device, &gi, NULL);
    if (gi >= 0) {
        gi_memory(g, gi, &memory->total, &memory->used);
        memory->reserved = 0;
    } else {
        memory->total = G->mem_total;
        memory->reserved = G->mem_reserved;
        memory->used = G->mem_used;
    }
    memory->free = memory->total - memory->reserved - memory->used;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock) {
    GPU_ENTRY(nvmlDeviceGetClockInfo, device, g);
    OUT(clock);
    switch (type) {
    case NVML_CLOCK_SM: case NVML_CLOCK_GRAPHICS: *clock = G->sm_clock; return NVML_SUCCESS;
    case NVML_CLOCK_MEM: *clock = G->mem_clock; return NVML_SUCCESS;
    case NVML_CLOCK_VIDEO: *clock = 1755; return NVML_SUCCESS;
    default: return NVML_ERROR_INVALID_ARGUMENT;
    }
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensor,
                                             unsigned int *temp) {
    GPU_ENTRY(nvmlDeviceGetTemperature, device, g);
    OUT(temp);
    if (sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = G->gpu_temp;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    GPU_ENTRY(nvmlDeviceGetUtilizationRates, device, g);
    OUT(util);
    if (G->mig_current) return NVML_ERROR_NOT_SUPPORTED; /* as on a real MIG-enabled GPU */
    util->gpu = G->util_gpu;
    util->memory = G->util_mem;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *util,
                                                    unsigned int *period) {
    GPU_ENTRY(nvmlDeviceGetEncoderUtilization, device, g);
    OUT(util && period);
    *util = G->util_enc;
    *period = 167000;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *util,
                                                    unsigned int *period) {
    GPU_ENTRY(nvmlDeviceGetDecoderUtilization, device, g);
    OUT(util && period);
    *util = G->util_dec;
    *period = 167000;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device, nvmlPcieUtilCounter_t counter,
                                                unsigned int *value) {
    GPU_ENTRY(nvmlDeviceGetPcieThroughput, device, g);
    OUT(value);
    if (counter == NVML_PCIE_UTIL_TX_BYTES) *value = G->pcie_tx_kbs;
    else if (counter == NVML_PCIE_UTIL_RX_BYTES) *value = G->pcie_rx_kbs;
    else return NVML_ERROR_INVALID_ARGUMENT;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t device, unsigned int *value) {
    GPU_ENTRY(nvmlDeviceGetPcieReplayCounter, device, g);
    OUT(value);
    *value = G->pcie_replay;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed) {
    GPU_ENTRY(nvmlDeviceGetFanSpeed, device, g);
    OUT(speed);
    *speed = G->fan;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, nvmlPstates_t *state) {
    GPU_ENTRY(nvmlDeviceGetPerformanceState, device, g);
    OUT(state);
    *state = (nvmlPstates_t)G->pstate;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetCurrentClocksEventReasons
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
    GPU_ENTRY(nvmlDeviceGetCurrentClocksEventReasons, device, g);
    OUT(reasons);
    *reasons = G->clock_events;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
    GPU_ENTRY(nvmlDeviceGetCurrentClocksThrottleReasons, device, g);
    OUT(reasons);
    *reasons = G->clock_events;
    return NVML_SUCCESS;
}
