/* NVML's library, system and enumeration calls, and what every entry point
 * does first (count, block, injected errors, a lost GPU). */
#define _GNU_SOURCE
#include "fakenvml.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

static int initialized; /* nvmlInit reference count of this process */

struct nvmlDevice_st { int gpu, gi, ci; };
static struct nvmlDevice_st devices[FAKE_MAX_GPUS];
static struct nvmlDevice_st mig_devices[FAKE_MAX_GPUS][FAKE_MAX_GI][FAKE_MAX_CI];

/* ---- what every entry point does first -------------------------------- */

static void sleep_ms(unsigned int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

nvmlReturn_t fake_enter(enum fake_fn fn, int slot) {
    if (!fake) return NVML_ERROR_UNINITIALIZED;
    if (!initialized && fn != FN_nvmlInitWithFlags && fn != FN_nvmlInit_v2)
        return NVML_ERROR_UNINITIALIZED;
    __atomic_add_fetch(&fake->calls[fn][slot], 1, __ATOMIC_SEQ_CST);
    unsigned int ms = __atomic_load_n(&fake->block_ms[fn][slot], __ATOMIC_SEQ_CST);
    if (ms) {
        /* A hung driver call: sleep, in small steps so a test can end it. */
        unsigned int gen = __atomic_load_n(&fake->release_gen, __ATOMIC_SEQ_CST);
        for (unsigned int slept = 0; slept < ms; slept += 5) {
            if (__atomic_load_n(&fake->release_gen, __ATOMIC_SEQ_CST) != gen) break;
            sleep_ms(5);
        }
    }
    int err = __atomic_load_n(&fake->err[fn][slot], __ATOMIC_SEQ_CST);
    if (err) return (nvmlReturn_t)err;
    if (slot < FAKE_MAX_GPUS && __atomic_load_n(&fake->gpu[slot].lost, __ATOMIC_SEQ_CST))
        return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

int fake_gpu_of(nvmlDevice_t device, int *gi, int *ci) {
    struct nvmlDevice_st *d = device;
    char *p = (char *)d;
    int found = 0;
    if (p >= (char *)devices && p < (char *)(devices + FAKE_MAX_GPUS)) found = 1;
    if (p >= (char *)mig_devices && p < (char *)mig_devices + sizeof(mig_devices)) found = 1;
    if (!found || d->gpu < 0 || d->gpu >= (int)fake->gpu_count || fake->gpu[d->gpu].removed)
        return -1;
    if (gi) *gi = d->gi;
    if (ci) *ci = d->ci;
    return d->gpu;
}

nvmlDevice_t fake_device_handle(int gpu) {
    devices[gpu] = (struct nvmlDevice_st){gpu, -1, -1};
    return &devices[gpu];
}

nvmlDevice_t fake_mig_handle(int gpu, int gi, int ci) {
    mig_devices[gpu][gi][ci] = (struct nvmlDevice_st){gpu, gi, ci};
    return &mig_devices[gpu][gi][ci];
}

int fake_visible_index(int gpu) {
    int index = 0;
    for (int i = 0; i < gpu; i++) index += !fake->gpu[i].removed;
    return index;
}

void fake_copy(char *dst, unsigned int length, const char *src, nvmlReturn_t *ret) {
    if (!dst || strlen(src) + 1 > length) {
        *ret = NVML_ERROR_INSUFFICIENT_SIZE;
        return;
    }
    memcpy(dst, src, strlen(src) + 1);
    *ret = NVML_SUCCESS;
}

/* ---- library and system ------------------------------------------------- */

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    fake_attach_from_environment();
    SYSTEM_ENTRY(nvmlInitWithFlags);
    __atomic_add_fetch(&initialized, 1, __ATOMIC_SEQ_CST);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) {
    fake_attach_from_environment();
    SYSTEM_ENTRY(nvmlInit_v2);
    __atomic_add_fetch(&initialized, 1, __ATOMIC_SEQ_CST);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
    SYSTEM_ENTRY(nvmlShutdown);
    __atomic_sub_fetch(&initialized, 1, __ATOMIC_SEQ_CST);
    return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_INSUFFICIENT_RESOURCES: return "Insufficient resources";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Version mismatch";
    default: return "Unknown Error";
    }
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    nvmlReturn_t ret;
    SYSTEM_ENTRY(nvmlSystemGetDriverVersion);
    fake_copy(version, length, fake->driver_version, &ret);
    return ret;
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    nvmlReturn_t ret;
    SYSTEM_ENTRY(nvmlSystemGetNVMLVersion);
    fake_copy(version, length, fake->nvml_version, &ret);
    return ret;
}

#ifndef OMIT_nvmlSystemGetCudaDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    SYSTEM_ENTRY(nvmlSystemGetCudaDriverVersion);
    if (!v) return NVML_ERROR_INVALID_ARGUMENT;
    *v = fake->cuda_version;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) {
    SYSTEM_ENTRY(nvmlSystemGetCudaDriverVersion_v2);
    if (!v) return NVML_ERROR_INVALID_ARGUMENT;
    *v = fake->cuda_version;
    return NVML_SUCCESS;
}

/* ---- enumeration -------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    SYSTEM_ENTRY(nvmlDeviceGetCount_v2);
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)fake_visible_index((int)fake->gpu_count);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    SYSTEM_ENTRY(nvmlDeviceGetHandleByIndex_v2);
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < (int)fake->gpu_count; i++) {
        if (fake->gpu[i].removed || fake_visible_index(i) != (int)index) continue;
        if (fake->gpu[i].lost) return NVML_ERROR_GPU_IS_LOST;
        *device = fake_device_handle(i);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_INVALID_ARGUMENT;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    SYSTEM_ENTRY(nvmlDeviceGetHandleByUUID);
    if (!uuid || !device) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < (int)fake->gpu_count; i++) {
        if (fake->gpu[i].removed || strcmp(fake->gpu[i].uuid, uuid) != 0) continue;
        if (fake->gpu[i].lost) return NVML_ERROR_GPU_IS_LOST;
        *device = fake_device_handle(i);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_NOT_FOUND;
}

/* "domain:bus:device.function" in any of the forms NVML accepts. */
static int parse_bus_id(const char *s, unsigned int *domain, unsigned int *bus, unsigned int *dev) {
    unsigned int fn;
    if (sscanf(s, "%x:%x:%x.%x", domain, bus, dev, &fn) == 4) return 0;
    *domain = 0;
    return sscanf(s, "%x:%x.%x", bus, dev, &fn) == 3 ? 0 : -1;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, nvmlDevice_t *device) {
    SYSTEM_ENTRY(nvmlDeviceGetHandleByPciBusId_v2);
    unsigned int domain, bus, dev;
    if (!bus_id || !device || parse_bus_id(bus_id, &domain, &bus, &dev)) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < (int)fake->gpu_count; i++) {
        fake_gpu_t *g = &fake->gpu[i];
        if (g->removed || g->pci_domain != domain || g->pci_bus != bus || g->pci_device != dev) continue;
        if (g->lost) return NVML_ERROR_GPU_IS_LOST;
        *device = fake_device_handle(i);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    DEVICE_ENTRY(nvmlDeviceGetIndex, device, g);
    *index = (unsigned int)fake_visible_index(g);
    return NVML_SUCCESS;
}

/* ---- removal and re-discovery (the NVML way to re-initialize a GPU) ------ */

static int gpu_of_pci(const nvmlPciInfo_t *pci, int include_removed) {
    if (!pci) return -1;
    for (int i = 0; i < (int)fake->gpu_count; i++) {
        fake_gpu_t *g = &fake->gpu[i];
        if ((!include_removed && g->removed) || g->pci_domain != pci->domain || g->pci_bus != pci->bus ||
            g->pci_device != pci->device)
            continue;
        return i;
    }
    return -1;
}

EXPORT nvmlReturn_t nvmlDeviceModifyDrainState(nvmlPciInfo_t *pci, nvmlEnableState_t state) {
    SYSTEM_ENTRY(nvmlDeviceModifyDrainState);
    int i = gpu_of_pci(pci, 0);
    if (i < 0) return NVML_ERROR_NOT_FOUND;
    if (state == NVML_FEATURE_ENABLED && fake->gpu[i].nprocs) return NVML_ERROR_IN_USE;
    fake->gpu[i].drain = state == NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceQueryDrainState(nvmlPciInfo_t *pci, nvmlEnableState_t *state) {
    SYSTEM_ENTRY(nvmlDeviceQueryDrainState);
    int i = gpu_of_pci(pci, 0);
    if (i < 0 || !state) return NVML_ERROR_NOT_FOUND;
    *state = fake->gpu[i].drain ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

static nvmlReturn_t remove_gpu(nvmlPciInfo_t *pci) {
    int i = gpu_of_pci(pci, 0);
    if (i < 0) return NVML_ERROR_NOT_FOUND;
    fake_gpu_t *g = &fake->gpu[i];
    if (g->nprocs) return NVML_ERROR_IN_USE;
    if (!g->drain) return NVML_ERROR_INVALID_STATE;
    g->removed = 1;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceRemoveGpu(nvmlPciInfo_t *pci) {
    SYSTEM_ENTRY(nvmlDeviceRemoveGpu);
    return remove_gpu(pci);
}

EXPORT nvmlReturn_t nvmlDeviceRemoveGpu_v2(nvmlPciInfo_t *pci, nvmlDetachGpuState_t state,
                                           nvmlPcieLinkState_t link) {
    (void)state; (void)link;
    SYSTEM_ENTRY(nvmlDeviceRemoveGpu_v2);
    return remove_gpu(pci);
}

/* Found again: what a reset does to a GPU (pending modes apply, volatile
 * ECC counts and the GPU instances go, the lost state clears). */
EXPORT nvmlReturn_t nvmlDeviceDiscoverGpus(nvmlPciInfo_t *pci) {
    SYSTEM_ENTRY(nvmlDeviceDiscoverGpus);
    for (int i = 0; i < (int)fake->gpu_count; i++) {
        fake_gpu_t *g = &fake->gpu[i];
        if (!g->removed || (pci && gpu_of_pci(pci, 1) != i)) continue;
        g->removed = g->drain = g->lost = 0;
        g->resets++;
        g->ecc_current = g->ecc_pending;
        g->ecc_sbe_vol = g->ecc_dbe_vol = 0;
        if (g->mig_current != g->mig_pending) fake_mig_clear(g);
        g->mig_current = g->mig_pending;
    }
    return NVML_SUCCESS;
}
