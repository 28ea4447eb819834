/*
 * hashmap_cuda.c - host side of the CUDA static map (cuda_internal.h):
 * 64-bit keys -> 64-bit values, bulk upsert and bulk lookup of columns in
 * device memory. Kernels and slot layout: kernels/cuda/hashmap.cuh.
 *
 * It is the bulk-insert kernel of the kernel benchmark ("hash-table inserts
 * per second at load factor 0.5") and the building block for device-side
 * joins and key-value caches. The map is sized for its capacity at load
 * factor <= 1/2 and grows (rehash into a table twice as big) when an upsert
 * would pass that load or a key finds no slot within the probe bound; keys
 * that found no slot are reinserted after the growth, so none is lost.
 *
 * One upsert launch: reset counters; insert kernel; counters -> pinned host
 * memory; then, if keys failed or the load passed 1/2, grow and rerun the
 * failed keys (their rows are in `retry`). Launches cover at most `launch`
 * rows so the retry list stays small.
 */
#ifdef TSR_HAVE_CUDA

#include <string.h>

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"

#define CU_MAP_PROBE_LIMIT 1024u
#define CU_MAP_MIN_SLOTS ((size_t)1024)
#define CU_MAP_MAX_SLOTS ((size_t)1 << 32)
#define CU_MAP_BLOCK 256u /* hashmap.cu's launch bounds */

struct tsr_cuda_map {
    tsr_dev_t *dev;
    tsr_dev_buf_t *slots;    /* uint64[2 * nslots]: key, value pairs */
    size_t nslots;           /* power of two */
    size_t size;             /* keys present */
    tsr_dev_buf_t *sentinel; /* uint64[2] */
    tsr_dev_buf_t *counters; /* uint32[2] */
    tsr_dev_host_t *hc;      /* pinned copy of the counters */
    tsr_dev_buf_t *retry;    /* uint32[cap] */
    tsr_dev_buf_t *sel;      /* uint32[cap] */
    size_t cap;              /* rows per launch the scratch holds */
    size_t launch;           /* rows per launch */
    unsigned block, grid;    /* grid: the most blocks worth launching */
};

static tsr_status_t cu_map_fail(tsr_cuda_map_t *m, cudaError_t e, const char *what,
                                tsr_error_t *err)
{
    return tsr_dev_cuda_fail(err, m->dev, e, what);
}

static unsigned cu_map_grid(const tsr_cuda_map_t *m, size_t n, size_t per_thread)
{
    size_t per = (size_t)m->block * per_thread;
    size_t g = (n + per - 1) / per;
    return (unsigned)(g < m->grid ? (g ? g : 1) : m->grid);
}

/* Empty slots: every key word TSR_CUDA_MAP_EMPTY (all bits set). */
static tsr_status_t cu_map_slots(tsr_cuda_map_t *m, tsr_dev_queue_t *q, size_t nslots,
                                 tsr_dev_buf_t **out, tsr_error_t *err)
{
    const uint8_t ones = 0xFF;
    tsr_status_t rc = tsr_dev_buf_alloc(m->dev, nslots * 16, out, err);
    if (rc == TSR_OK &&
        (rc = tsr_dev_fill(q, *out, 0, &ones, 1, nslots * 16, NULL, err)) != TSR_OK) {
        tsr_dev_buf_free(*out);
        *out = NULL;
    }
    return rc;
}

static void cu_map_view(const tsr_cuda_map_t *m, tsr_cuda_map_view_t *v)
{
    memset(v, 0, sizeof(*v));
    v->slots = tsr_dev_cuda_ptr(m->slots);
    v->nslots = m->nslots;
    v->sentinel = tsr_dev_cuda_ptr(m->sentinel);
    v->counters = tsr_dev_cuda_ptr(m->counters);
    v->retry = m->retry ? tsr_dev_cuda_ptr(m->retry) : NULL;
    v->probe_limit = CU_MAP_PROBE_LIMIT;
}

/* Waits for q, then reads the counters (reset by the caller before the launch). */
static tsr_status_t cu_map_counters(tsr_cuda_map_t *m, tsr_dev_queue_t *q, uint32_t out[2],
                                    tsr_error_t *err)
{
    cudaStream_t s = tsr_dev_cuda_stream(q);
    cudaError_t e =
        cudaMemcpyAsync(m->hc->ptr, tsr_dev_cuda_ptr(m->counters), 8, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    if (e != cudaSuccess)
        return cu_map_fail(m, e, "map kernels (cudaStreamSynchronize)", err);
    memcpy(out, m->hc->ptr, 2 * sizeof(uint32_t));
    return TSR_OK;
}

static tsr_status_t cu_map_reset(tsr_cuda_map_t *m, tsr_dev_queue_t *q, tsr_error_t *err)
{
    cudaError_t e = cudaMemsetAsync(tsr_dev_cuda_ptr(m->counters), 0, 8, tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : cu_map_fail(m, e, "cudaMemsetAsync(counters)", err);
}

/* Moves every key into a table of at least 2*need slots. */
static tsr_status_t cu_map_grow(tsr_cuda_map_t *m, tsr_dev_queue_t *q, size_t need,
                                tsr_error_t *err)
{
    size_t n = m->nslots * 2;
    while (n < 2 * need && n <= CU_MAP_MAX_SLOTS)
        n *= 2;
    for (;; n *= 2) {
        if (n > CU_MAP_MAX_SLOTS)
            return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                 "too many keys for a map on %s (more than %zu)", m->dev->info.name,
                                 CU_MAP_MAX_SLOTS / 2);
        tsr_dev_buf_t *ns = NULL;
        tsr_status_t rc = cu_map_slots(m, q, n, &ns, err);
        if (rc != TSR_OK)
            return rc;
        tsr_cuda_map_view_t from, to;
        cu_map_view(m, &from);
        to = from;
        to.slots = tsr_dev_cuda_ptr(ns);
        to.nslots = n;
        uint32_t counts[2] = {0, 0};
        if ((rc = cu_map_reset(m, q, err)) == TSR_OK) {
            cudaError_t e = tsr_cuda_map_rehash_launch(&from, &to, cu_map_grid(m, m->nslots, 1),
                                                       m->block, tsr_dev_cuda_stream(q));
            rc = e == cudaSuccess ? cu_map_counters(m, q, counts, err)
                                  : cu_map_fail(m, e, "map rehash kernel launch", err);
        }
        if (rc != TSR_OK) {
            tsr_dev_buf_free(ns);
            return rc;
        }
        if (counts[TSR_CUDA_CNT_FAIL] == 0) {
            tsr_dev_buf_free(m->slots);
            m->slots = ns;
            m->nslots = n;
            return TSR_OK;
        }
        tsr_dev_buf_free(ns); /* a probe run too long: twice as big */
    }
}

static void cu_map_free_scratch(tsr_cuda_map_t *m)
{
    tsr_dev_buf_free(m->retry);
    tsr_dev_buf_free(m->sel);
    m->retry = m->sel = NULL;
    m->cap = 0;
}

static tsr_status_t cu_map_scratch(tsr_cuda_map_t *m, size_t cap, tsr_error_t *err)
{
    if (m->cap >= cap)
        return TSR_OK;
    cu_map_free_scratch(m);
    tsr_status_t rc = tsr_dev_buf_alloc(m->dev, cap * 4, &m->retry, err);
    if (rc == TSR_OK)
        rc = tsr_dev_buf_alloc(m->dev, cap * 4, &m->sel, err);
    if (rc != TSR_OK) {
        cu_map_free_scratch(m);
        return rc;
    }
    m->cap = cap;
    return TSR_OK;
}

void tsr_cuda_map_destroy(tsr_cuda_map_t *m)
{
    if (!m)
        return;
    if (cudaSetDevice(tsr_dev_cuda(m->dev)->ordinal) != cudaSuccess)
        cudaGetLastError();
    cu_map_free_scratch(m);
    tsr_dev_buf_free(m->slots);
    tsr_dev_buf_free(m->sentinel);
    tsr_dev_buf_free(m->counters);
    tsr_dev_host_free(m->hc);
    tsr_mem_free(m->dev->mem, m);
}

tsr_status_t tsr_cuda_map_create(tsr_dev_t *dev, size_t capacity, tsr_cuda_map_t **out,
                                 tsr_error_t *err)
{
    if (!dev || !out || dev->backend->id != TSR_DEVICE_CUDA)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "a CUDA map needs a CUDA device");
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc == TSR_OK)
        rc = tsr_dev_cuda_kernels_ok(dev, err);
    if (rc != TSR_OK)
        return rc;
    tsr_cuda_map_t *m = tsr_mem_calloc(dev->mem, 1, sizeof(*m));
    if (!m)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    m->dev = dev;
    tsr_cuda_dev_t *cu = tsr_dev_cuda(dev);
    m->block = CU_MAP_BLOCK < cu->max_block ? CU_MAP_BLOCK : cu->max_block & ~31u;
    if (!m->block)
        m->block = 32;
    m->grid =
        cu->sm_count * (cu->max_threads_per_sm / m->block ? cu->max_threads_per_sm / m->block : 1);
    size_t lim = cu->total_mem / 256, launch = 1;
    while (launch <= lim / 2)
        launch *= 2;
    m->launch = launch < ((size_t)1 << 16)   ? (size_t)1 << 16
                : launch > ((size_t)1 << 26) ? (size_t)1 << 26
                                             : launch;
    m->nslots = CU_MAP_MIN_SLOTS;
    while (m->nslots < 2 * capacity && m->nslots < CU_MAP_MAX_SLOTS)
        m->nslots *= 2;
    const uint64_t zero = 0;
    tsr_dev_queue_t *q = dev->queue;
    if ((rc = cu_map_slots(m, q, m->nslots, &m->slots, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, 16, &m->sentinel, err)) != TSR_OK ||
        (rc = tsr_dev_fill(q, m->sentinel, 0, &zero, 8, 16, NULL, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, 8, &m->counters, err)) != TSR_OK ||
        (rc = tsr_dev_host_alloc(dev, 8, &m->hc, err)) != TSR_OK ||
        (rc = tsr_dev_queue_finish(q, err)) != TSR_OK) {
        tsr_cuda_map_destroy(m);
        return rc;
    }
    *out = m;
    return TSR_OK;
}

static bool cu_map_buf_ok(const tsr_cuda_map_t *m, const tsr_dev_buf_t *b, size_t bytes)
{
    return b && b->dev == m->dev && b->size >= bytes;
}

static tsr_status_t cu_map_queue(tsr_cuda_map_t *m, tsr_dev_queue_t **q, tsr_error_t *err)
{
    if (!*q)
        *q = m->dev->queue;
    if ((*q)->dev != m->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "CUDA map: the queue belongs to another device");
    return tsr_dev_cuda_use(m->dev, err);
}

tsr_status_t tsr_cuda_map_upsert(tsr_cuda_map_t *m, tsr_dev_queue_t *q, const tsr_dev_buf_t *keys,
                                 const tsr_dev_buf_t *vals, size_t n, tsr_error_t *err)
{
    if (!m)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "CUDA map: missing argument");
    tsr_status_t rc = cu_map_queue(m, &q, err);
    if (rc != TSR_OK || n == 0)
        return rc;
    if (!cu_map_buf_ok(m, keys, n * 8) || !cu_map_buf_ok(m, vals, n * 8))
        return tsr_error_set(
            err, TSR_ERR_INVALID_ARG,
            "CUDA map: key or value column missing, too short or on another device");
    size_t launch = n < m->launch ? n : m->launch;
    if ((rc = cu_map_scratch(m, launch, err)) != TSR_OK)
        return rc;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    for (size_t start = 0; rc == TSR_OK && start < n; start += launch) {
        tsr_cuda_map_view_t v;
        cu_map_view(m, &v);
        v.keys = (const uint64_t *)tsr_dev_cuda_ptr(keys) + start;
        v.vals = (const uint64_t *)tsr_dev_cuda_ptr(vals) + start;
        v.n = (uint32_t)(n - start < launch ? n - start : launch);
        for (;;) {
            uint32_t counts[2] = {0, 0};
            if ((rc = cu_map_reset(m, q, err)) != TSR_OK)
                break;
            cudaError_t e = tsr_cuda_map_insert_launch(
                &v, cu_map_grid(m, v.n, TSR_CUDA_ROWS_PER_THREAD), m->block, s);
            if (e != cudaSuccess) {
                rc = cu_map_fail(m, e, "map insert kernel launch", err);
                break;
            }
            if ((rc = cu_map_counters(m, q, counts, err)) != TSR_OK)
                break;
            m->size += counts[TSR_CUDA_CNT_NEW];
            uint32_t fail = counts[TSR_CUDA_CNT_FAIL];
            if (fail == 0 && 2 * m->size <= m->nslots)
                break;
            if ((rc = cu_map_grow(m, q, m->size + fail, err)) != TSR_OK || fail == 0)
                break;
            /* rerun only the keys that found no slot */
            e = cudaMemcpyAsync(tsr_dev_cuda_ptr(m->sel), tsr_dev_cuda_ptr(m->retry),
                                (size_t)fail * 4, cudaMemcpyDeviceToDevice, s);
            if (e != cudaSuccess) {
                rc = cu_map_fail(m, e, "cudaMemcpyAsync(retry keys)", err);
                break;
            }
            v.slots = tsr_dev_cuda_ptr(m->slots);
            v.nslots = m->nslots;
            v.sel = tsr_dev_cuda_ptr(m->sel);
            v.n = fail;
        }
    }
    if (rc != TSR_OK) {
        cudaStreamSynchronize(s);
        cudaGetLastError();
    }
    return rc;
}

tsr_status_t tsr_cuda_map_find(tsr_cuda_map_t *m, tsr_dev_queue_t *q, const tsr_dev_buf_t *keys,
                               tsr_dev_buf_t *out, tsr_dev_buf_t *found, size_t n, tsr_error_t *err)
{
    if (!m)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "CUDA map: missing argument");
    tsr_status_t rc = cu_map_queue(m, &q, err);
    if (rc != TSR_OK || n == 0)
        return rc;
    if (!cu_map_buf_ok(m, keys, n * 8) || !cu_map_buf_ok(m, out, n * 8) ||
        !cu_map_buf_ok(m, found, n))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "CUDA map: a column is missing, too short or on another device");
    cudaStream_t s = tsr_dev_cuda_stream(q);
    for (size_t start = 0; start < n; start += m->launch) {
        tsr_cuda_map_view_t v;
        cu_map_view(m, &v);
        v.keys = (const uint64_t *)tsr_dev_cuda_ptr(keys) + start;
        v.out = (uint64_t *)tsr_dev_cuda_ptr(out) + start;
        v.found = (uint8_t *)tsr_dev_cuda_ptr(found) + start;
        v.n = (uint32_t)(n - start < m->launch ? n - start : m->launch);
        cudaError_t e = tsr_cuda_map_find_launch(&v, cu_map_grid(m, v.n, 1), m->block, s);
        if (e != cudaSuccess)
            return cu_map_fail(m, e, "map find kernel launch", err);
    }
    cudaError_t e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? TSR_OK : cu_map_fail(m, e, "map find (cudaStreamSynchronize)", err);
}

size_t tsr_cuda_map_size(const tsr_cuda_map_t *m)
{
    return m ? m->size : 0;
}

size_t tsr_cuda_map_slots(const tsr_cuda_map_t *m)
{
    return m ? m->nslots : 0;
}

#else
typedef int tsr_dev_hashmap_cuda_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
