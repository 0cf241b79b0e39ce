/* The fake's error counters (ECC, retired pages, remapped rows, NVLink), the
 * field values that batch them, processes, licensing, supported events. */
#include "fakenvml.h"

#include <string.h>
#include <sys/time.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- errors: ECC, retired pages, remapped rows, NVLink ------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t type,
                                                nvmlEccCounterType_t counter, unsigned long long *count) {
    GPU_ENTRY(nvmlDeviceGetTotalEccErrors, device, g);
    OUT(count);
    if (!G->ecc_current) return NVML_ERROR_NOT_SUPPORTED;
    int dbe = type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED, agg = counter == NVML_AGGREGATE_ECC;
    *count = dbe ? (agg ? G->ecc_dbe_agg : G->ecc_dbe_vol) : (agg ? G->ecc_sbe_agg : G->ecc_sbe_vol);
    return NVML_SUCCESS;
}

/* H100 remaps rows instead of retiring pages: the retired-page queries answer
 * NOT_SUPPORTED unless a test turns page_retirement on (an older part). */
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, nvmlPageRetirementCause_t cause,
                                              unsigned int *count, unsigned long long *addresses) {
    GPU_ENTRY(nvmlDeviceGetRetiredPages, device, g);
    OUT(count);
    if (!G->page_retirement) return NVML_ERROR_NOT_SUPPORTED;
    unsigned int n = cause == NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS ? G->retired_sbe
                                                                                       : G->retired_dbe;
    if (!addresses || *count < n) {
        *count = n;
        return n ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    }
    for (unsigned int i = 0; i < n; i++) addresses[i] = 0x1000ull * (i + 1);
    *count = n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, nvmlEnableState_t *pending) {
    GPU_ENTRY(nvmlDeviceGetRetiredPagesPendingStatus, device, g);
    OUT(pending);
    if (!G->page_retirement) return NVML_ERROR_NOT_SUPPORTED;
    *pending = G->retired_pending ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetRemappedRows
EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *cor, unsigned int *unc,
                                              unsigned int *pending, unsigned int *failure) {
    GPU_ENTRY(nvmlDeviceGetRemappedRows, device, g);
    OUT(cor && unc && pending && failure);
    *cor = G->remap_cor;
    *unc = G->remap_unc;
    *pending = G->remap_pending;
    *failure = G->remap_failure;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, nvmlEnableState_t *active) {
    GPU_ENTRY(nvmlDeviceGetNvLinkState, device, g);
    OUT(active);
    if (link >= G->nvlinks) return NVML_ERROR_INVALID_ARGUMENT;
    *active = NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link,
                                                    nvmlNvLinkErrorCounter_t counter, unsigned long long *value) {
    GPU_ENTRY(nvmlDeviceGetNvLinkErrorCounter, device, g);
    OUT(value);
    if (link >= G->nvlinks) return NVML_ERROR_INVALID_ARGUMENT;
    switch (counter) {
    case NVML_NVLINK_ERROR_DL_CRC_FLIT: *value = G->nvlink_crc_flit; break;
    case NVML_NVLINK_ERROR_DL_CRC_DATA: *value = G->nvlink_crc_data; break;
    case NVML_NVLINK_ERROR_DL_REPLAY: *value = G->nvlink_replay; break;
    case NVML_NVLINK_ERROR_DL_RECOVERY: *value = G->nvlink_recovery; break;
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
    return NVML_SUCCESS;
}

/* ---- field values: many counters in one call ----------------------------- */

#ifndef OMIT_nvmlDeviceGetFieldValues
static nvmlReturn_t field(int g, unsigned int id, unsigned int scope, nvmlValueType_t *type,
                          nvmlValue_t *v) {
    fake_gpu_t *gpu = G;
    unsigned long long links = gpu->nvlinks;
    *type = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
    switch (id) {
    case NVML_FI_DEV_ECC_CURRENT: v->ullVal = gpu->ecc_current; break;
    case NVML_FI_DEV_ECC_PENDING: v->ullVal = gpu->ecc_pending; break;
    case NVML_FI_DEV_ECC_SBE_VOL_TOTAL: v->ullVal = gpu->ecc_sbe_vol; break;
    case NVML_FI_DEV_ECC_DBE_VOL_TOTAL: v->ullVal = gpu->ecc_dbe_vol; break;
    case NVML_FI_DEV_ECC_SBE_AGG_TOTAL: v->ullVal = gpu->ecc_sbe_agg; break;
    case NVML_FI_DEV_ECC_DBE_AGG_TOTAL: v->ullVal = gpu->ecc_dbe_agg; break;
    case NVML_FI_DEV_RETIRED_SBE: case NVML_FI_DEV_RETIRED_DBE: case NVML_FI_DEV_RETIRED_PENDING:
        if (!gpu->page_retirement) return NVML_ERROR_NOT_SUPPORTED;
        v->ullVal = id == NVML_FI_DEV_RETIRED_SBE ? gpu->retired_sbe
                  : id == NVML_FI_DEV_RETIRED_DBE ? gpu->retired_dbe : gpu->retired_pending;
        break;
    case NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: v->ullVal = gpu->nvlink_crc_flit * links; break;
    case NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: v->ullVal = gpu->nvlink_crc_data * links; break;
    case NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: v->ullVal = gpu->nvlink_replay * links; break;
    case NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: v->ullVal = gpu->nvlink_recovery * links; break;
    case NVML_FI_DEV_NVLINK_LINK_COUNT: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->nvlinks; break;
    /* Per link unless the scope is UINT_MAX (all links), as nvml.h says. */
    case NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX:
        v->ullVal = scope == 0xFFFFFFFFu ? gpu->nvlink_tx_kib : gpu->nvlink_tx_kib / (links ? links : 1);
        break;
    case NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX:
        v->ullVal = scope == 0xFFFFFFFFu ? gpu->nvlink_rx_kib : gpu->nvlink_rx_kib / (links ? links : 1);
        break;
    case NVML_FI_DEV_MEMORY_TEMP: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->mem_temp; break;
    case NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: v->ullVal = gpu->energy_mj; break;
    case NVML_FI_DEV_PCIE_REPLAY_COUNTER: v->ullVal = gpu->pcie_replay; break;
    case NVML_FI_DEV_REMAPPED_COR: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->remap_cor; break;
    case NVML_FI_DEV_REMAPPED_UNC: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->remap_unc; break;
    case NVML_FI_DEV_REMAPPED_PENDING: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->remap_pending; break;
    case NVML_FI_DEV_REMAPPED_FAILURE: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->remap_failure; break;
    case NVML_FI_DEV_POWER_INSTANT: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->power_mw; break;
    case NVML_FI_DEV_POWER_CURRENT_LIMIT: *type = NVML_VALUE_TYPE_UNSIGNED_INT; v->uiVal = gpu->power_limit_mw; break;
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values) {
    GPU_ENTRY(nvmlDeviceGetFieldValues, device, g);
    if (count < 0 || (count && !values)) return NVML_ERROR_INVALID_ARGUMENT;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *f = &values[i];
        f->timestamp = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
        f->latencyUsec = 1;
        int injected = f->fieldId < FAKE_FIELDS ? fake->field_err[g][f->fieldId] : 0;
        f->nvmlReturn = injected ? (nvmlReturn_t)injected
                                 : field(g, f->fieldId, f->scopeId, &f->valueType, &f->value);
    }
    return NVML_SUCCESS;
}
#endif

/* ---- processes, licensing, events supported ------------------------------ */

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                            nvmlProcessInfo_t *infos) {
    GPU_ENTRY(nvmlDeviceGetComputeRunningProcesses_v3, device, g);
    OUT(count);
    unsigned int n = G->nprocs < FAKE_MAX_PROCS ? G->nprocs : FAKE_MAX_PROCS;
    if (!infos || *count < n) {
        *count = n;
        return n ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    }
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = G->procs[i].pid;
        infos[i].usedGpuMemory = G->procs[i].memory;
        infos[i].gpuInstanceId = G->mig_current ? G->procs[i].gi : 0xFFFFFFFFu;
        infos[i].computeInstanceId = G->mig_current ? G->procs[i].ci : 0xFFFFFFFFu;
    }
    *count = n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetGridLicensableFeatures_v4(nvmlDevice_t device,
                                                           nvmlGridLicensableFeatures_t *features) {
    GPU_ENTRY(nvmlDeviceGetGridLicensableFeatures_v4, device, g);
    OUT(features);
    if (!G->license_supported) return NVML_ERROR_NOT_SUPPORTED; /* bare metal: no vGPU */
    memset(features, 0, sizeof(*features));
    features->isGridLicenseSupported = 1;
    features->licensableFeaturesCount = 1;
    features->gridLicensableFeatures[0].featureCode = NVML_GRID_LICENSE_FEATURE_CODE_COMPUTE;
    features->gridLicensableFeatures[0].featureState = G->licensed;
    features->gridLicensableFeatures[0].featureEnabled = 1;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types) {
    GPU_ENTRY(nvmlDeviceGetSupportedEventTypes, device, g);
    OUT(types);
    *types = nvmlEventTypeXidCriticalError | nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError |
             nvmlEventTypePState | nvmlEventTypeClock;
    return NVML_SUCCESS;
}
