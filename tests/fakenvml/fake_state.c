/* The fake's state: its defaults (an HGX H100 board), attaching it (private,
 * or shared through a control file), and the test-control API (fakenvml_*).
 * See fakenvml.h for how the state is shared. */
#define _GNU_SOURCE
#include "fakenvml.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

fake_state_t *fake = NULL;

static const char *const fn_names[FN_COUNT] = {
#define FAKE_NAME(name) #name,
    FAKE_FUNCS(FAKE_NAME)
#undef FAKE_NAME
};

/* ---- values a test reads and sets by name ------------------------------ */

#define U64_FIELDS(X) X(mem_total) X(mem_reserved) X(mem_used) X(energy_mj) X(clock_events) \
    X(ecc_sbe_vol) X(ecc_dbe_vol) X(ecc_sbe_agg) X(ecc_dbe_agg) X(nvlink_crc_flit) \
    X(nvlink_crc_data) X(nvlink_replay) X(nvlink_recovery) X(nvlink_tx_kib) X(nvlink_rx_kib)
#define U32_FIELDS(X) X(minor) X(numa_node) X(pci_domain) X(pci_bus) X(pci_device) \
    X(pci_device_id) X(pci_subsystem_id) X(sm_clock) X(mem_clock) X(gpu_temp) X(mem_temp) \
    X(power_mw) X(power_limit_mw) X(power_min_mw) X(power_max_mw) X(power_default_mw) \
    X(util_gpu) X(util_mem) X(util_enc) X(util_dec) X(pcie_tx_kbs) X(pcie_rx_kbs) \
    X(pcie_replay) X(fan) X(pstate) X(page_retirement) X(retired_sbe) X(retired_dbe) X(retired_pending) \
    X(remap_cor) X(remap_unc) X(remap_pending) X(remap_failure) X(nvlinks) X(persistence) \
    X(compute_mode) X(ecc_current) X(ecc_pending) X(mig_capable) X(mig_current) \
    X(mig_pending) X(mig_needs_reset) X(license_supported) X(licensed) X(drain) X(removed) \
    X(lost) X(resets) X(nprocs)
#define STR_FIELDS(X) X(name) X(uuid) X(serial) X(bus_id) X(vbios) X(part_number)

typedef struct { const char *name; size_t offset; int size; } field_t;
static const field_t fields[] = {
#define F64(n) {#n, offsetof(fake_gpu_t, n), 8},
#define F32(n) {#n, offsetof(fake_gpu_t, n), 4},
#define FSTR(n) {#n, offsetof(fake_gpu_t, n), -(int)sizeof(((fake_gpu_t *)0)->n)},
    U64_FIELDS(F64) U32_FIELDS(F32) STR_FIELDS(FSTR)
    {NULL, 0, 0}
};

static const field_t *find_field(const char *name) {
    for (const field_t *f = fields; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

static int find_fn(const char *name) {
    for (int i = 0; i < FN_COUNT; i++)
        if (strcmp(fn_names[i], name) == 0) return i;
    return -1;
}

/* ---- defaults: an HGX H100 board ----------------------------------------- */

static const unsigned int hgx_bus[FAKE_MAX_GPUS] = {0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb};

void fake_defaults(fake_state_t *s, unsigned int gpus) {
    memset(s, 0, sizeof(*s));
    s->magic = FAKE_MAGIC;
    s->size = sizeof(*s);
    s->gpu_count = gpus > FAKE_MAX_GPUS ? FAKE_MAX_GPUS : gpus;
    s->cuda_version = 12080;
    snprintf(s->driver_version, sizeof(s->driver_version), "570.124.06");
    snprintf(s->nvml_version, sizeof(s->nvml_version), "12.570.124.06");
    for (unsigned int i = 0; i < FAKE_MAX_GPUS; i++) {
        fake_gpu_t *g = &s->gpu[i];
        /* Distinct values per GPU, so a test catches any mix-up of GPUs. */
        snprintf(g->name, sizeof(g->name), "NVIDIA H100 80GB HBM3");
        snprintf(g->uuid, sizeof(g->uuid), "GPU-7a3f90c2-1d4e-4b6a-9c1f-3e8d5b20a1%02x", i);
        snprintf(g->serial, sizeof(g->serial), "16523240%05u", 1000 + i);
        g->pci_domain = 0;
        g->pci_bus = hgx_bus[i];
        g->pci_device = 0;
        snprintf(g->bus_id, sizeof(g->bus_id), "00000000:%02X:00.0", g->pci_bus);
        snprintf(g->vbios, sizeof(g->vbios), "96.00.99.00.%02u", 1 + i);
        snprintf(g->part_number, sizeof(g->part_number), "692-2G520-0200-000");
        g->minor = i;
        g->numa_node = i < 4 ? 0 : 1;
        g->pci_device_id = 0x233010de;
        g->pci_subsystem_id = 0x16c110de;
        g->mem_total = 81559ull << 20;
        g->mem_reserved = 552ull << 20;
        g->mem_used = (1024ull + 512 * i) << 20;
        g->sm_clock = 1980 - 15 * i;
        g->mem_clock = 2619;
        g->gpu_temp = 31 + i;
        g->mem_temp = 40 + i;
        g->power_mw = 112000 + 1250 * i;
        g->power_limit_mw = 700000;
        g->power_min_mw = 200000;
        g->power_max_mw = 700000;
        g->power_default_mw = 700000;
        g->energy_mj = 5000000000ull + 1000003ull * i;
        g->util_gpu = 10 + i;
        g->util_mem = 3 + i;
        g->util_enc = 0;
        g->util_dec = i % 2;
        g->pcie_tx_kbs = 1000 + 10 * i;
        g->pcie_rx_kbs = 2000 + 10 * i;
        g->pcie_replay = i;
        g->fan = 0;
        g->pstate = 0;
        g->clock_events = 0x1; /* GPU idle */
        g->nvlinks = FAKE_LINKS;
        g->nvlink_tx_kib = 1000000ull * (i + 1);
        g->nvlink_rx_kib = 2000000ull * (i + 1);
        g->persistence = 1;
        g->compute_mode = NVML_COMPUTEMODE_DEFAULT;
        g->ecc_current = g->ecc_pending = 1;
        g->mig_capable = 1;
    }
}

/* ---- attaching the state ---------------------------------------------- */

static int map_file(const char *path, int create, unsigned int gpus) {
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) return -errno;
    if (create && ftruncate(fd, sizeof(fake_state_t)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(fake_state_t)) {
        close(fd);
        return -EINVAL;
    }
    void *p = mmap(NULL, sizeof(fake_state_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return -errno;
    fake_state_t *s = p;
    if (create) fake_defaults(s, gpus);
    if (s->magic != FAKE_MAGIC || s->size != sizeof(fake_state_t)) {
        munmap(p, sizeof(fake_state_t));
        return -EPROTO; /* made by another build of this library */
    }
    fake = s;
    return 0;
}

void fake_attach_from_environment(void) {
    if (fake) return;
    const char *gpus_env = getenv("FAKENVML_GPUS");
    unsigned int gpus = gpus_env ? (unsigned int)strtoul(gpus_env, NULL, 10) : 8;
    const char *path = getenv("FAKENVML_CONTROL");
    if (path && *path && map_file(path, 0, gpus) == 0) return;
    if (path && *path && map_file(path, 1, gpus) == 0) return;
    static fake_state_t private_state;
    fake_defaults(&private_state, gpus);
    fake = &private_state;
}

EXPORT int fakenvml_create(const char *path, unsigned int gpus) { return map_file(path, 1, gpus); }
EXPORT int fakenvml_attach(const char *path) { return map_file(path, 0, 0); }

EXPORT int fakenvml_set_gpu_count(unsigned int gpus) {
    if (!fake || gpus > FAKE_MAX_GPUS) return -1;
    fake->gpu_count = gpus;
    return 0;
}

static fake_gpu_t *gpu_or_null(int gpu) {
    return fake && gpu >= 0 && gpu < FAKE_MAX_GPUS ? &fake->gpu[gpu] : NULL;
}

EXPORT int fakenvml_set(int gpu, const char *name, unsigned long long value) {
    fake_gpu_t *g = gpu_or_null(gpu);
    const field_t *f = find_field(name);
    if (!g || !f || f->size < 0) return -1;
    char *p = (char *)g + f->offset;
    if (f->size == 8) __atomic_store_n((unsigned long long *)p, value, __ATOMIC_SEQ_CST);
    else __atomic_store_n((unsigned int *)p, (unsigned int)value, __ATOMIC_SEQ_CST);
    return 0;
}

EXPORT int fakenvml_get(int gpu, const char *name, unsigned long long *value) {
    fake_gpu_t *g = gpu_or_null(gpu);
    const field_t *f = find_field(name);
    if (!g || !f || f->size < 0) return -1;
    char *p = (char *)g + f->offset;
    *value = f->size == 8 ? __atomic_load_n((unsigned long long *)p, __ATOMIC_SEQ_CST)
                          : __atomic_load_n((unsigned int *)p, __ATOMIC_SEQ_CST);
    return 0;
}

EXPORT int fakenvml_set_str(int gpu, const char *name, const char *value) {
    fake_gpu_t *g = gpu_or_null(gpu);
    const field_t *f = find_field(name);
    if (!g || !f || f->size > 0) return -1;
    snprintf((char *)g + f->offset, (size_t)-f->size, "%s", value);
    return 0;
}

EXPORT int fakenvml_get_str(int gpu, const char *name, char *out, unsigned int length) {
    fake_gpu_t *g = gpu_or_null(gpu);
    const field_t *f = find_field(name);
    if (!g || !f || f->size > 0) return -1;
    snprintf(out, length, "%s", (char *)g + f->offset);
    return 0;
}

EXPORT int fakenvml_set_system(const char *driver_version, int cuda_version) {
    if (!fake) return -1;
    snprintf(fake->driver_version, sizeof(fake->driver_version), "%s", driver_version);
    fake->cuda_version = cuda_version;
    return 0;
}

/* gpu -1: every GPU and the system slot; FAKE_SYS (8): calls without a device. */
static int for_slots(int gpu, int *first, int *last) {
    if (gpu == -1) { *first = 0; *last = FAKE_SLOTS - 1; return 0; }
    if (gpu < 0 || gpu >= FAKE_SLOTS) return -1;
    *first = *last = gpu;
    return 0;
}

EXPORT int fakenvml_set_error(const char *fn, int gpu, int ret) {
    int i = find_fn(fn), a, b;
    if (!fake || i < 0 || for_slots(gpu, &a, &b)) return -1;
    for (int s = a; s <= b; s++) __atomic_store_n(&fake->err[i][s], ret, __ATOMIC_SEQ_CST);
    return 0;
}

EXPORT int fakenvml_set_field_error(int gpu, unsigned int field, int ret) {
    int a, b;
    if (!fake || field >= FAKE_FIELDS || for_slots(gpu, &a, &b)) return -1;
    for (int s = a; s <= b; s++) fake->field_err[s][field] = ret;
    return 0;
}

EXPORT int fakenvml_block(const char *fn, int gpu, unsigned int ms) {
    int i = find_fn(fn), a, b;
    if (!fake || i < 0 || for_slots(gpu, &a, &b)) return -1;
    for (int s = a; s <= b; s++) __atomic_store_n(&fake->block_ms[i][s], ms, __ATOMIC_SEQ_CST);
    return 0;
}

/* Ends every block now, and forgets them. */
EXPORT void fakenvml_release(void) {
    if (!fake) return;
    memset(fake->block_ms, 0, sizeof(fake->block_ms));
    __atomic_add_fetch(&fake->release_gen, 1, __ATOMIC_SEQ_CST);
}

EXPORT void fakenvml_clear_errors(void) {
    if (!fake) return;
    memset(fake->err, 0, sizeof(fake->err));
    memset(fake->field_err, 0, sizeof(fake->field_err));
}

/* Calls of ``fn`` (NULL: every function) on ``gpu`` (-1: all slots). */
EXPORT long long fakenvml_calls(const char *fn, int gpu) {
    int a, b, first = 0, last = FN_COUNT - 1;
    if (!fake || for_slots(gpu, &a, &b)) return -1;
    if (fn) {
        first = last = find_fn(fn);
        if (first < 0) return -1;
    }
    long long n = 0;
    for (int i = first; i <= last; i++)
        for (int s = a; s <= b; s++) n += (long long)__atomic_load_n(&fake->calls[i][s], __ATOMIC_SEQ_CST);
    return n;
}

EXPORT void fakenvml_reset_calls(void) {
    if (fake) memset(fake->calls, 0, sizeof(fake->calls));
}

EXPORT int fakenvml_function_count(void) { return FN_COUNT; }
EXPORT const char *fakenvml_function_name(int i) { return i >= 0 && i < FN_COUNT ? fn_names[i] : NULL; }

EXPORT int fakenvml_queue_event(int gpu, unsigned long long type, unsigned long long data,
                                unsigned int gi, unsigned int ci) {
    if (!gpu_or_null(gpu)) return -1;
    unsigned int tail = __atomic_load_n(&fake->xq_tail, __ATOMIC_ACQUIRE);
    unsigned int head = __atomic_load_n(&fake->xq_head, __ATOMIC_ACQUIRE);
    if (tail - head >= FAKE_XIDQ) return -1;
    fake_event_t *e = &fake->xq[tail % FAKE_XIDQ];
    e->gpu = gpu; e->type = type; e->data = data; e->gi = gi; e->ci = ci;
    __atomic_store_n(&fake->xq_tail, tail + 1, __ATOMIC_RELEASE);
    return 0;
}

EXPORT int fakenvml_add_process(int gpu, unsigned int pid, unsigned long long memory,
                                unsigned int gi, unsigned int ci) {
    fake_gpu_t *g = gpu_or_null(gpu);
    if (!g || g->nprocs >= FAKE_MAX_PROCS) return -1;
    g->procs[g->nprocs] = (fake_proc_t){pid, gi, ci, memory};
    __atomic_add_fetch(&g->nprocs, 1, __ATOMIC_SEQ_CST);
    return 0;
}

EXPORT int fakenvml_clear_processes(int gpu) {
    fake_gpu_t *g = gpu_or_null(gpu);
    if (!g) return -1;
    g->nprocs = 0;
    return 0;
}

