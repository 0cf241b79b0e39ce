/* The fake's MIG: mode, GPU instances and compute instances of an H100 80GB,
 * with its profiles, slice accounting and placements (a simplified model:
 * 8 memory slices and 7 compute slices, first free placement wins). */
#include "fakenvml.h"

#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

struct nvmlGpuInstance_st { int gpu, slot; };
struct nvmlComputeInstance_st { int gpu, gi, slot; };
static struct nvmlGpuInstance_st gi_handles[FAKE_MAX_GPUS][FAKE_MAX_GI];
static struct nvmlComputeInstance_st ci_handles[FAKE_MAX_GPUS][FAKE_MAX_GI][FAKE_MAX_CI];

typedef struct {
    unsigned int index, id; const char *name;
    unsigned int slices, instances, sms; unsigned long long memory_mb;
    unsigned int mem_slices, start_step;
} profile_t;

/* Indexed by NVML_GPU_INSTANCE_PROFILE_*; ids and names as an H100 80GB shows them. */
static const profile_t profiles[] = {
    {NVML_GPU_INSTANCE_PROFILE_1_SLICE, 19, "1g.10gb", 1, 7, 16, 9856, 1, 1},
    {NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2, 15, "1g.20gb", 1, 4, 16, 19968, 2, 2},
    {NVML_GPU_INSTANCE_PROFILE_2_SLICE, 14, "2g.20gb", 2, 3, 32, 19968, 2, 2},
    {NVML_GPU_INSTANCE_PROFILE_3_SLICE, 9, "3g.40gb", 3, 2, 60, 40192, 4, 4},
    {NVML_GPU_INSTANCE_PROFILE_4_SLICE, 5, "4g.40gb", 4, 1, 64, 40192, 4, 8},
    {NVML_GPU_INSTANCE_PROFILE_7_SLICE, 0, "7g.80gb", 7, 1, 132, 80384, 8, 8},
};
#define NPROFILES (sizeof(profiles) / sizeof(profiles[0]))
static const unsigned int ci_slices[] = {1, 2, 3, 4, 7}; /* NVML_COMPUTE_INSTANCE_PROFILE_{1,2,3,4,7}_SLICE */

static const profile_t *by_index(unsigned int index) {
    for (unsigned int i = 0; i < NPROFILES; i++)
        if (profiles[i].index == index) return &profiles[i];
    return NULL;
}

static const profile_t *by_id(unsigned int id) {
    for (unsigned int i = 0; i < NPROFILES; i++)
        if (profiles[i].id == id) return &profiles[i];
    return NULL;
}

unsigned long long fake_gi_memory_mb(unsigned int profile_index) {
    const profile_t *p = by_index(profile_index);
    return p ? p->memory_mb : 0;
}

void fake_mig_clear(fake_gpu_t *g) { memset(g->gi, 0, sizeof(g->gi)); }

static int mig_gpu(nvmlDevice_t device, enum fake_fn fn, nvmlReturn_t *ret) {
    int gi = -1;
    int g = fake_gpu_of(device, &gi, NULL);
    if (g < 0 || gi >= 0) { *ret = NVML_ERROR_INVALID_ARGUMENT; return -1; }
    *ret = fake_enter(fn, g);
    if (*ret != NVML_SUCCESS) return -1;
    if (!fake->gpu[g].mig_capable) { *ret = NVML_ERROR_NOT_SUPPORTED; return -1; }
    return g;
}

static fake_gi_t *gi_of(nvmlGpuInstance_t h, enum fake_fn fn, int *gpu, nvmlReturn_t *ret) {
    struct nvmlGpuInstance_st *p = h;
    char *c = (char *)p;
    if (!fake || c < (char *)gi_handles || c >= (char *)gi_handles + sizeof(gi_handles)) {
        *ret = NVML_ERROR_INVALID_ARGUMENT;
        return NULL;
    }
    *ret = fake_enter(fn, p->gpu);
    fake_gi_t *gi = &fake->gpu[p->gpu].gi[p->slot];
    if (*ret == NVML_SUCCESS && !gi->used) *ret = NVML_ERROR_INVALID_ARGUMENT; /* destroyed */
    *gpu = p->gpu;
    return *ret == NVML_SUCCESS ? gi : NULL;
}

/* ---- MIG mode ----------------------------------------------------------- */

#ifndef OMIT_nvmlDeviceGetMigMode
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetMigMode, &ret);
    if (g < 0) return ret;
    if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    *current = fake->gpu[g].mig_current;
    *pending = fake->gpu[g].mig_pending;
    return NVML_SUCCESS;
}
#endif

/* The call succeeds; whether the mode is active now is ``activation``:
 * IN_USE while processes run, RESET_REQUIRED when the GPU needs a reset
 * (``mig_needs_reset``), SUCCESS otherwise. */
EXPORT nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned int mode, nvmlReturn_t *activation) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceSetMigMode, &ret);
    if (g < 0) return ret;
    if (mode > 1 || !activation) return NVML_ERROR_INVALID_ARGUMENT;
    fake_gpu_t *gpu = &fake->gpu[g];
    gpu->mig_pending = mode;
    if (gpu->mig_current == mode) *activation = NVML_SUCCESS;
    else if (gpu->nprocs) *activation = NVML_ERROR_IN_USE;
    else if (gpu->mig_needs_reset) *activation = NVML_ERROR_RESET_REQUIRED;
    else {
        fake_mig_clear(gpu);
        gpu->mig_current = mode;
        *activation = NVML_SUCCESS;
    }
    return NVML_SUCCESS;
}

/* ---- GPU instance profiles and instances ---------------------------------- */

static void fill_profile(const profile_t *p, unsigned int *id, unsigned int *slices, unsigned int *instances,
                         unsigned int *sms, unsigned long long *memory) {
    *id = p->id; *slices = p->slices; *instances = p->instances; *sms = p->sms; *memory = p->memory_mb;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned int index,
                                                        nvmlGpuInstanceProfileInfo_t *info) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetGpuInstanceProfileInfo, &ret);
    if (g < 0) return ret;
    const profile_t *p = by_index(index);
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    if (!p) return NVML_ERROR_NOT_SUPPORTED;
    memset(info, 0, sizeof(*info));
    fill_profile(p, &info->id, &info->sliceCount, &info->instanceCount, &info->multiprocessorCount,
                 &info->memorySizeMB);
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetGpuInstanceProfileInfoV
EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t device, unsigned int index,
                                                         nvmlGpuInstanceProfileInfo_v2_t *info) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetGpuInstanceProfileInfoV, &ret);
    if (g < 0) return ret;
    const profile_t *p = by_index(index);
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    if (info->version != nvmlGpuInstanceProfileInfo_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (!p) return NVML_ERROR_NOT_SUPPORTED;
    unsigned int version = info->version;
    memset(info, 0, sizeof(*info));
    info->version = version;
    fill_profile(p, &info->id, &info->sliceCount, &info->instanceCount, &info->multiprocessorCount,
                 &info->memorySizeMB);
    snprintf(info->name, sizeof(info->name), "MIG %s", p->name);
    return NVML_SUCCESS;
}
#endif

static nvmlGpuInstance_t gi_handle(int g, int slot) {
    gi_handles[g][slot] = (struct nvmlGpuInstance_st){g, slot};
    return &gi_handles[g][slot];
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned int profile_id,
                                              nvmlGpuInstance_t *instances, unsigned int *count) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetGpuInstances, &ret);
    if (g < 0) return ret;
    if (!count || !by_id(profile_id)) return NVML_ERROR_INVALID_ARGUMENT;
    if (!fake->gpu[g].mig_current) return NVML_ERROR_INVALID_STATE;
    unsigned int n = 0;
    for (int s = 0; s < FAKE_MAX_GI; s++) {
        fake_gi_t *gi = &fake->gpu[g].gi[s];
        if (!gi->used || by_index(gi->profile_index)->id != profile_id) continue;
        if (instances) instances[n] = gi_handle(g, s);
        n++;
    }
    *count = n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned int id,
                                                 nvmlGpuInstance_t *instance) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetGpuInstanceById, &ret);
    if (g < 0) return ret;
    if (!instance) return NVML_ERROR_INVALID_ARGUMENT;
    if (!fake->gpu[g].mig_current) return NVML_ERROR_INVALID_STATE;
    for (int s = 0; s < FAKE_MAX_GI; s++) {
        if (!fake->gpu[g].gi[s].used || fake->gpu[g].gi[s].id != id) continue;
        *instance = gi_handle(g, s);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned int profile_id,
                                                nvmlGpuInstance_t *instance) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceCreateGpuInstance, &ret);
    if (g < 0) return ret;
    const profile_t *p = by_id(profile_id);
    fake_gpu_t *gpu = &fake->gpu[g];
    if (!p || !instance) return NVML_ERROR_INVALID_ARGUMENT;
    if (!gpu->mig_current) return NVML_ERROR_INVALID_STATE;
    unsigned int memory_used = 0, compute_used = 0, ids = 0;
    int free_slot = -1;
    for (int s = 0; s < FAKE_MAX_GI; s++) {
        fake_gi_t *gi = &gpu->gi[s];
        if (!gi->used) { if (free_slot < 0) free_slot = s; continue; }
        memory_used |= ((1u << gi->size) - 1) << gi->start;
        compute_used += by_index(gi->profile_index)->slices;
        ids |= 1u << gi->id;
    }
    if (free_slot < 0 || compute_used + p->slices > FAKE_COMPUTE_SLICES) return NVML_ERROR_INSUFFICIENT_RESOURCES;
    unsigned int mask = (1u << p->mem_slices) - 1;
    for (unsigned int start = 0; start + p->mem_slices <= FAKE_MEM_SLICES; start += p->start_step) {
        if (memory_used & (mask << start)) continue;
        unsigned int id = 1;
        while (ids & (1u << id)) id++;
        gpu->gi[free_slot] = (fake_gi_t){1, id, p->index, start, p->mem_slices, {{0}}};
        *instance = gi_handle(g, free_slot);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

EXPORT nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t instance) {
    nvmlReturn_t ret;
    int g;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceDestroy, &g, &ret);
    if (!gi) return ret;
    for (int c = 0; c < FAKE_MAX_CI; c++)
        if (gi->ci[c].used) return NVML_ERROR_IN_USE;
    for (unsigned int p = 0; p < fake->gpu[g].nprocs; p++)
        if (fake->gpu[g].procs[p].gi == gi->id) return NVML_ERROR_IN_USE;
    memset(gi, 0, sizeof(*gi));
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t instance, nvmlGpuInstanceInfo_t *info) {
    nvmlReturn_t ret;
    int g;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceGetInfo, &g, &ret);
    if (!gi) return ret;
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    info->device = fake_device_handle(g);
    info->id = gi->id;
    info->profileId = by_index(gi->profile_index)->id;
    info->placement.start = gi->start;
    info->placement.size = gi->size;
    return NVML_SUCCESS;
}

/* ---- compute instances ---------------------------------------------------- */

static nvmlReturn_t ci_profile(fake_gi_t *gi, unsigned int index, unsigned int *slices, unsigned int *count) {
    unsigned int gi_slices = by_index(gi->profile_index)->slices;
    if (index >= sizeof(ci_slices) / sizeof(ci_slices[0])) return NVML_ERROR_NOT_SUPPORTED;
    if (ci_slices[index] > gi_slices) return NVML_ERROR_NOT_SUPPORTED;
    *slices = ci_slices[index];
    *count = gi_slices / ci_slices[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t instance, unsigned int index,
                                                                 unsigned int engine,
                                                                 nvmlComputeInstanceProfileInfo_t *info) {
    nvmlReturn_t ret;
    int g;
    (void)engine;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceGetComputeInstanceProfileInfo, &g, &ret);
    if (!gi) return ret;
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    memset(info, 0, sizeof(*info));
    ret = ci_profile(gi, index, &info->sliceCount, &info->instanceCount);
    info->id = index;
    info->multiprocessorCount = info->sliceCount * 16;
    return ret;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfoV(nvmlGpuInstance_t instance, unsigned int index,
                                                                  unsigned int engine,
                                                                  nvmlComputeInstanceProfileInfo_v2_t *info) {
    nvmlReturn_t ret;
    int g;
    (void)engine;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceGetComputeInstanceProfileInfoV, &g, &ret);
    if (!gi) return ret;
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int version = info->version;
    memset(info, 0, sizeof(*info));
    info->version = version;
    ret = ci_profile(gi, index, &info->sliceCount, &info->instanceCount);
    info->id = index;
    info->multiprocessorCount = info->sliceCount * 16;
    snprintf(info->name, sizeof(info->name), "MIG %uc.%s", info->sliceCount, by_index(gi->profile_index)->name);
    return ret;
}

static nvmlComputeInstance_t ci_handle(int g, int gi, int slot) {
    ci_handles[g][gi][slot] = (struct nvmlComputeInstance_st){g, gi, slot};
    return &ci_handles[g][gi][slot];
}

EXPORT nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t instance, unsigned int profile_id,
                                                         nvmlComputeInstance_t *out) {
    nvmlReturn_t ret;
    int g;
    unsigned int slices, count;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceCreateComputeInstance, &g, &ret);
    if (!gi) return ret;
    if (!out || ci_profile(gi, profile_id, &slices, &count) != NVML_SUCCESS) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int gi_slices = by_index(gi->profile_index)->slices, used = 0, ids = 0;
    int free_slot = -1;
    for (int c = 0; c < FAKE_MAX_CI; c++) {
        if (!gi->ci[c].used) { if (free_slot < 0) free_slot = c; continue; }
        used |= ((1u << gi->ci[c].size) - 1) << gi->ci[c].start;
        ids |= 1u << gi->ci[c].id;
    }
    for (unsigned int start = 0; free_slot >= 0 && start + slices <= gi_slices; start++) {
        if (used & (((1u << slices) - 1) << start)) continue;
        unsigned int id = 0;
        while (ids & (1u << id)) id++;
        gi->ci[free_slot] = (fake_ci_t){1, id, profile_id, start, slices};
        *out = ci_handle(g, (int)(gi - fake->gpu[g].gi), free_slot);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t instance, unsigned int profile_id,
                                                       nvmlComputeInstance_t *instances, unsigned int *count) {
    nvmlReturn_t ret;
    int g;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceGetComputeInstances, &g, &ret);
    if (!gi) return ret;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int n = 0;
    for (int c = 0; c < FAKE_MAX_CI; c++) {
        if (!gi->ci[c].used || gi->ci[c].profile_id != profile_id) continue;
        if (instances) instances[n] = ci_handle(g, (int)(gi - fake->gpu[g].gi), c);
        n++;
    }
    *count = n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstanceById(nvmlGpuInstance_t instance, unsigned int id,
                                                         nvmlComputeInstance_t *out) {
    nvmlReturn_t ret;
    int g;
    fake_gi_t *gi = gi_of(instance, FN_nvmlGpuInstanceGetComputeInstanceById, &g, &ret);
    if (!gi) return ret;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    for (int c = 0; c < FAKE_MAX_CI; c++) {
        if (!gi->ci[c].used || gi->ci[c].id != id) continue;
        *out = ci_handle(g, (int)(gi - fake->gpu[g].gi), c);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_NOT_FOUND;
}

static fake_ci_t *ci_of(nvmlComputeInstance_t h, enum fake_fn fn, struct nvmlComputeInstance_st **where,
                        nvmlReturn_t *ret) {
    struct nvmlComputeInstance_st *p = h;
    char *c = (char *)p;
    if (!fake || c < (char *)ci_handles || c >= (char *)ci_handles + sizeof(ci_handles)) {
        *ret = NVML_ERROR_INVALID_ARGUMENT;
        return NULL;
    }
    *ret = fake_enter(fn, p->gpu);
    fake_ci_t *ci = &fake->gpu[p->gpu].gi[p->gi].ci[p->slot];
    if (*ret == NVML_SUCCESS && !ci->used) *ret = NVML_ERROR_INVALID_ARGUMENT;
    *where = p;
    return *ret == NVML_SUCCESS ? ci : NULL;
}

EXPORT nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t instance) {
    nvmlReturn_t ret;
    struct nvmlComputeInstance_st *p;
    fake_ci_t *ci = ci_of(instance, FN_nvmlComputeInstanceDestroy, &p, &ret);
    if (!ci) return ret;
    fake_gpu_t *gpu = &fake->gpu[p->gpu];
    for (unsigned int i = 0; i < gpu->nprocs; i++)
        if (gpu->procs[i].gi == gpu->gi[p->gi].id && gpu->procs[i].ci == ci->id) return NVML_ERROR_IN_USE;
    memset(ci, 0, sizeof(*ci));
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t instance, nvmlComputeInstanceInfo_t *info) {
    nvmlReturn_t ret;
    struct nvmlComputeInstance_st *p;
    fake_ci_t *ci = ci_of(instance, FN_nvmlComputeInstanceGetInfo_v2, &p, &ret);
    if (!ci) return ret;
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    info->device = fake_device_handle(p->gpu);
    info->gpuInstance = gi_handle(p->gpu, p->gi);
    info->id = ci->id;
    info->profileId = ci->profile_id;
    info->placement.start = ci->start;
    info->placement.size = ci->size;
    return NVML_SUCCESS;
}

/* ---- MIG devices (one per compute instance) ------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetMaxMigDeviceCount, &ret);
    if (g < 0) return ret;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = fake->gpu[g].mig_current ? FAKE_MAX_GI : 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                        nvmlDevice_t *mig) {
    nvmlReturn_t ret;
    int g = mig_gpu(device, FN_nvmlDeviceGetMigDeviceHandleByIndex, &ret);
    if (g < 0) return ret;
    if (!mig) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int n = 0;
    for (int s = 0; s < FAKE_MAX_GI; s++) {
        for (int c = 0; c < FAKE_MAX_CI; c++) {
            if (!fake->gpu[g].gi[s].used || !fake->gpu[g].gi[s].ci[c].used) continue;
            if (n++ == index) {
                *mig = fake_mig_handle(g, s, c);
                return NVML_SUCCESS;
            }
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
    int gi = -1;
    DEVICE_ENTRY(nvmlDeviceGetGpuInstanceId, device, g);
    fake_gpu_of(device, &gi, NULL);
    if (!id) return NVML_ERROR_INVALID_ARGUMENT;
    if (gi < 0) return NVML_ERROR_NOT_SUPPORTED;
    *id = fake->gpu[g].gi[gi].id;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id) {
    int gi = -1, ci = -1;
    DEVICE_ENTRY(nvmlDeviceGetComputeInstanceId, device, g);
    fake_gpu_of(device, &gi, &ci);
    if (!id) return NVML_ERROR_INVALID_ARGUMENT;
    if (gi < 0) return NVML_ERROR_NOT_SUPPORTED;
    *id = fake->gpu[g].gi[gi].ci[ci].id;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *is_mig) {
    int gi = -1;
    DEVICE_ENTRY(nvmlDeviceIsMigDeviceHandle, device, g);
    (void)g;
    fake_gpu_of(device, &gi, NULL);
    if (!is_mig) return NVML_ERROR_INVALID_ARGUMENT;
    *is_mig = gi >= 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig, nvmlDevice_t *device) {
    DEVICE_ENTRY(nvmlDeviceGetDeviceHandleFromMigDeviceHandle, mig, g);
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    *device = fake_device_handle(g);
    return NVML_SUCCESS;
}

/* A description of the layout for tests: "gi_id:profile_id:start[ci_id:profile,...];..." */
EXPORT int fakenvml_mig_layout(int gpu, char *out, unsigned int length) {
    if (!fake || gpu < 0 || gpu >= FAKE_MAX_GPUS || !out || !length) return -1;
    size_t n = 0;
    out[0] = 0;
    for (int s = 0; s < FAKE_MAX_GI; s++) {
        fake_gi_t *gi = &fake->gpu[gpu].gi[s];
        if (!gi->used) continue;
        n += (size_t)snprintf(out + n, n < length ? length - n : 0, "%s%u:%s:%u[", n ? ";" : "", gi->id,
                              by_index(gi->profile_index)->name, gi->start);
        int first = 1;
        for (int c = 0; c < FAKE_MAX_CI; c++) {
            if (!gi->ci[c].used) continue;
            n += (size_t)snprintf(out + n, n < length ? length - n : 0, "%s%u:%u", first ? "" : ",", gi->ci[c].id,
                                  gi->ci[c].profile_id);
            first = 0;
        }
        n += (size_t)snprintf(out + n, n < length ? length - n : 0, "]");
    }
    return n < length ? 0 : -1;
}
