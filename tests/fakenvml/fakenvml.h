/* A fake libnvidia-ml.so.1 for the test suite: the state it simulates and
 * the test-control API.
 *
 * The state lives in one struct that is either private to the process or
 * mapped from a control file (FAKENVML_CONTROL=path) with MAP_SHARED, so a
 * test process and the agent process it started see the same GPUs: the test
 * changes a temperature, injects an error or queues an XID, and the agent's
 * next NVML call sees it.  Both sides use the same build of this library, so
 * they agree on the layout; the Python side never hard-codes it and goes
 * through the fakenvml_* functions (tests/fakenvml/control.py).
 */
#ifndef FAKENVML_H
#define FAKENVML_H

#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include <nvml.h>

#define FAKE_MAGIC 0x464b4e56u /* "FKNV" */
#define FAKE_MAX_GPUS 8
#define FAKE_SYS FAKE_MAX_GPUS /* the error/block/count slot of calls with no device */
#define FAKE_SLOTS (FAKE_MAX_GPUS + 1)
#define FAKE_MAX_GI 7
#define FAKE_MAX_CI 7
#define FAKE_MAX_PROCS 16
#define FAKE_LINKS 18
#define FAKE_FIELDS 256
#define FAKE_XIDQ 64
#define FAKE_MEM_SLICES 8
#define FAKE_COMPUTE_SLICES 7

/* Every entry point that counts calls, takes injected errors and can block:
 * one line each (an X-macro), so the control API finds a function by name. */
#define FAKE_FUNCS(X) \
    X(nvmlInitWithFlags) X(nvmlInit_v2) X(nvmlShutdown) \
    X(nvmlSystemGetDriverVersion) X(nvmlSystemGetNVMLVersion) X(nvmlSystemGetCudaDriverVersion) \
    X(nvmlSystemGetCudaDriverVersion_v2) \
    X(nvmlDeviceGetCount_v2) X(nvmlDeviceGetHandleByIndex_v2) X(nvmlDeviceGetHandleByUUID) \
    X(nvmlDeviceGetHandleByPciBusId_v2) X(nvmlDeviceGetIndex) \
    X(nvmlDeviceGetName) X(nvmlDeviceGetUUID) X(nvmlDeviceGetSerial) X(nvmlDeviceGetPciInfo_v3) \
    X(nvmlDeviceGetMinorNumber) X(nvmlDeviceGetVbiosVersion) X(nvmlDeviceGetBoardPartNumber) \
    X(nvmlDeviceGetNumaNodeId) X(nvmlDeviceGetArchitecture) X(nvmlDeviceGetCudaComputeCapability) \
    X(nvmlDeviceGetPowerManagementLimitConstraints) X(nvmlDeviceGetPowerManagementDefaultLimit) \
    X(nvmlDeviceGetPowerManagementLimit) X(nvmlDeviceGetEnforcedPowerLimit) \
    X(nvmlDeviceGetPersistenceMode) X(nvmlDeviceGetComputeMode) X(nvmlDeviceGetEccMode) \
    X(nvmlDeviceGetMemoryInfo) X(nvmlDeviceGetMemoryInfo_v2) X(nvmlDeviceGetClockInfo) \
    X(nvmlDeviceGetTemperature) X(nvmlDeviceGetPowerUsage) X(nvmlDeviceGetTotalEnergyConsumption) \
    X(nvmlDeviceGetUtilizationRates) X(nvmlDeviceGetEncoderUtilization) \
    X(nvmlDeviceGetDecoderUtilization) X(nvmlDeviceGetPcieThroughput) \
    X(nvmlDeviceGetPcieReplayCounter) X(nvmlDeviceGetFanSpeed) X(nvmlDeviceGetPerformanceState) \
    X(nvmlDeviceGetCurrentClocksEventReasons) X(nvmlDeviceGetCurrentClocksThrottleReasons) \
    X(nvmlDeviceGetTotalEccErrors) X(nvmlDeviceGetRetiredPages) \
    X(nvmlDeviceGetRetiredPagesPendingStatus) X(nvmlDeviceGetRemappedRows) \
    X(nvmlDeviceGetNvLinkState) X(nvmlDeviceGetNvLinkErrorCounter) X(nvmlDeviceGetFieldValues) \
    X(nvmlDeviceGetComputeRunningProcesses_v3) X(nvmlDeviceGetGridLicensableFeatures_v4) \
    X(nvmlDeviceGetSupportedEventTypes) \
    X(nvmlDeviceSetPersistenceMode) X(nvmlDeviceSetComputeMode) X(nvmlDeviceSetEccMode) \
    X(nvmlDeviceSetPowerManagementLimit) X(nvmlDeviceSetMigMode) X(nvmlDeviceGetMigMode) \
    X(nvmlDeviceGetGpuInstanceProfileInfo) X(nvmlDeviceGetGpuInstanceProfileInfoV) \
    X(nvmlDeviceGetGpuInstances) X(nvmlDeviceGetGpuInstanceById) X(nvmlDeviceCreateGpuInstance) X(nvmlGpuInstanceDestroy) \
    X(nvmlGpuInstanceGetInfo) X(nvmlGpuInstanceGetComputeInstanceProfileInfo) \
    X(nvmlGpuInstanceGetComputeInstanceProfileInfoV) X(nvmlGpuInstanceCreateComputeInstance) \
    X(nvmlGpuInstanceGetComputeInstances) X(nvmlGpuInstanceGetComputeInstanceById) \
    X(nvmlComputeInstanceDestroy) \
    X(nvmlComputeInstanceGetInfo_v2) X(nvmlDeviceGetMaxMigDeviceCount) \
    X(nvmlDeviceGetMigDeviceHandleByIndex) X(nvmlDeviceGetGpuInstanceId) \
    X(nvmlDeviceGetComputeInstanceId) X(nvmlDeviceIsMigDeviceHandle) \
    X(nvmlDeviceGetDeviceHandleFromMigDeviceHandle) \
    X(nvmlEventSetCreate) X(nvmlDeviceRegisterEvents) X(nvmlEventSetWait_v2) X(nvmlEventSetFree) \
    X(nvmlDeviceModifyDrainState) X(nvmlDeviceQueryDrainState) X(nvmlDeviceRemoveGpu) \
    X(nvmlDeviceRemoveGpu_v2) X(nvmlDeviceDiscoverGpus)

#define FAKE_ENUM(name) FN_##name,
enum fake_fn { FAKE_FUNCS(FAKE_ENUM) FN_COUNT };

typedef struct {
    unsigned int used, id, profile_id, start, size;
} fake_ci_t;

typedef struct {
    unsigned int used, id, profile_index, start, size;
    fake_ci_t ci[FAKE_MAX_CI];
} fake_gi_t;

typedef struct {
    unsigned int pid, gi, ci;
    unsigned long long memory;
} fake_proc_t;

/* One GPU.  Every value a test may read or set by name is listed in
 * FAKE_U64_FIELDS / FAKE_U32_FIELDS (fake_core.c). */
typedef struct {
    char name[96], uuid[96], serial[32], bus_id[32], vbios[32], part_number[32];
    unsigned int minor, numa_node, pci_domain, pci_bus, pci_device, pci_device_id, pci_subsystem_id;
    unsigned long long mem_total, mem_reserved, mem_used;
    unsigned int sm_clock, mem_clock, gpu_temp, mem_temp;
    unsigned int power_mw, power_limit_mw, power_min_mw, power_max_mw, power_default_mw;
    unsigned long long energy_mj;
    unsigned int util_gpu, util_mem, util_enc, util_dec;
    unsigned int pcie_tx_kbs, pcie_rx_kbs, pcie_replay;
    unsigned int fan, pstate;
    unsigned long long clock_events;
    unsigned long long ecc_sbe_vol, ecc_dbe_vol, ecc_sbe_agg, ecc_dbe_agg;
    unsigned int page_retirement, retired_sbe, retired_dbe, retired_pending; /* pre-Ampere parts */
    unsigned int remap_cor, remap_unc, remap_pending, remap_failure;
    unsigned int nvlinks;
    unsigned long long nvlink_crc_flit, nvlink_crc_data, nvlink_replay, nvlink_recovery; /* per link */
    unsigned long long nvlink_tx_kib, nvlink_rx_kib;
    unsigned int persistence, compute_mode, ecc_current, ecc_pending;
    unsigned int mig_capable, mig_current, mig_pending, mig_needs_reset;
    unsigned int license_supported, licensed;
    unsigned int drain, removed, lost, resets;
    unsigned int nprocs;
    fake_proc_t procs[FAKE_MAX_PROCS];
    fake_gi_t gi[FAKE_MAX_GI];
} fake_gpu_t;

typedef struct {
    int gpu;
    unsigned int gi, ci;
    unsigned long long type, data;
} fake_event_t;

typedef struct {
    unsigned int magic, size;
    unsigned int gpu_count;
    int cuda_version;
    char driver_version[32], nvml_version[32];
    fake_gpu_t gpu[FAKE_MAX_GPUS];
    int err[FN_COUNT][FAKE_SLOTS];           /* nvmlReturn_t to answer instead, 0: none */
    unsigned int block_ms[FN_COUNT][FAKE_SLOTS]; /* sleep this long before answering */
    unsigned long long calls[FN_COUNT][FAKE_SLOTS];
    int field_err[FAKE_SLOTS][FAKE_FIELDS];  /* per-value status in nvmlDeviceGetFieldValues */
    unsigned int release_gen;                /* bumped to cut every block short */
    unsigned int xq_head, xq_tail;           /* single producer (a test), single consumer */
    fake_event_t xq[FAKE_XIDQ];
} fake_state_t;

extern fake_state_t *fake;

/* fake_state.c */
void fake_attach_from_environment(void);

/* fake_core.c */
nvmlReturn_t fake_enter(enum fake_fn fn, int slot);
int fake_gpu_of(nvmlDevice_t device, int *gi, int *ci);
nvmlDevice_t fake_device_handle(int gpu);
nvmlDevice_t fake_mig_handle(int gpu, int gi, int ci);
int fake_visible_index(int gpu);
void fake_defaults(fake_state_t *s, unsigned int gpus);
void fake_copy(char *dst, unsigned int length, const char *src, nvmlReturn_t *ret);

/* fake_mig.c */
void fake_mig_clear(fake_gpu_t *g);
unsigned long long fake_gi_memory_mb(unsigned int profile_index);

/* Entry of every device function: counts, blocks, injected errors, lost GPU. */
#define DEVICE_ENTRY(fn, device, gpu_var)                                  \
    int gpu_var = fake_gpu_of(device, NULL, NULL);                         \
    do {                                                                   \
        nvmlReturn_t entry_ret_;                                           \
        if (gpu_var < 0) return NVML_ERROR_INVALID_ARGUMENT;               \
        entry_ret_ = fake_enter(FN_##fn, gpu_var);                         \
        if (entry_ret_ != NVML_SUCCESS) return entry_ret_;                 \
    } while (0)

/* A whole-GPU query: MIG device handles are refused, as by the real NVML. */
#define GPU_ENTRY(fn, device, g)                                           \
    DEVICE_ENTRY(fn, device, g);                                           \
    do {                                                                   \
        int gi_ = -1;                                                      \
        fake_gpu_of(device, &gi_, NULL);                                   \
        if (gi_ >= 0) return NVML_ERROR_NOT_SUPPORTED;                     \
    } while (0)

#define OUT(p) do { if (!(p)) return NVML_ERROR_INVALID_ARGUMENT; } while (0)
#define G (&fake->gpu[g])

#define SYSTEM_ENTRY(fn)                                                   \
    do {                                                                   \
        nvmlReturn_t entry_ret_ = fake_enter(FN_##fn, FAKE_SYS);           \
        if (entry_ret_ != NVML_SUCCESS) return entry_ret_;                 \
    } while (0)

#endif
