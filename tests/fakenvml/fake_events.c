/* The fake's event sets: events queued by a test (fakenvml_queue_event) are
 * delivered by nvmlEventSetWait_v2 to a set that registered for their GPU
 * and type; a wait with nothing queued sleeps up to its timeout and answers
 * NVML_ERROR_TIMEOUT, as the driver does. */
#include "fakenvml.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_SETS 8

struct nvmlEventSet_st { int used; unsigned long long mask[FAKE_MAX_GPUS]; };
static struct nvmlEventSet_st sets[MAX_SETS];

static struct nvmlEventSet_st *set_of(nvmlEventSet_t set) {
    char *p = (char *)set;
    if (p < (char *)sets || p >= (char *)(sets + MAX_SETS) || !set->used) return NULL;
    return set;
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    SYSTEM_ENTRY(nvmlEventSetCreate);
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < MAX_SETS; i++) {
        if (__sync_bool_compare_and_swap(&sets[i].used, 0, 1)) {
            memset(sets[i].mask, 0, sizeof(sets[i].mask));
            *set = &sets[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_MEMORY;
}

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
    DEVICE_ENTRY(nvmlDeviceRegisterEvents, device, g);
    struct nvmlEventSet_st *s = set_of(set);
    unsigned long long supported = nvmlEventTypeXidCriticalError | nvmlEventTypeSingleBitEccError |
                                   nvmlEventTypeDoubleBitEccError | nvmlEventTypePState | nvmlEventTypeClock;
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    if (types & ~supported) return NVML_ERROR_NOT_SUPPORTED;
    s->mask[g] |= types;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms) {
    SYSTEM_ENTRY(nvmlEventSetWait_v2);
    struct nvmlEventSet_st *s = set_of(set);
    if (!s || !data) return NVML_ERROR_INVALID_ARGUMENT;
    struct timespec start, now, step = {0, 2000000L};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        unsigned int head = __atomic_load_n(&fake->xq_head, __ATOMIC_ACQUIRE);
        unsigned int tail = __atomic_load_n(&fake->xq_tail, __ATOMIC_ACQUIRE);
        while (head != tail) {
            fake_event_t e = fake->xq[head % FAKE_XIDQ];
            if (!__atomic_compare_exchange_n(&fake->xq_head, &head, head + 1, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE))
                continue; /* another waiter took it; head now holds the new value */
            head++;
            if (e.gpu < 0 || e.gpu >= (int)fake->gpu_count || !(s->mask[e.gpu] & e.type)) continue;
            data->device = fake_device_handle(e.gpu);
            data->eventType = e.type;
            data->eventData = e.data;
            data->gpuInstanceId = e.gi;
            data->computeInstanceId = e.ci;
            return NVML_SUCCESS;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= (long)timeout_ms) return NVML_ERROR_TIMEOUT;
        while (nanosleep(&step, &step) != 0 && errno == EINTR) {}
        step.tv_nsec = 2000000L;
    }
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    SYSTEM_ENTRY(nvmlEventSetFree);
    struct nvmlEventSet_st *s = set_of(set);
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    s->used = 0;
    return NVML_SUCCESS;
}
