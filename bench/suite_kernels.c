/*
 * suite_kernels.c - tessera-bench kernels: the device kernels against each
 * device's own memory bandwidth.
 *
 *   tessera-bench kernels [--device cpu|opencl|cuda|all] [--rows N] [--keys K]
 *                         [--repeat R] [--threads T] [--seed S] [--json]
 *
 * For every device (cpu, the first OpenCL device, the first CUDA device; one
 * that is absent is reported as skipped):
 *
 *   copy            a device-to-device copy of the aggregation's input (rows x
 *                   24 bytes), counting bytes read plus written: the device's
 *                   bandwidth limit, measured the same way as the kernels (wall
 *                   clock around the work and the wait for it). cpu: memcpy
 *                   with T threads; OpenCL: clEnqueueCopyBuffer; CUDA:
 *                   cudaMemcpyAsync.
 *   hashagg         SUM(v), COUNT(*), SUM(price) GROUP BY k over K uniform
 *                   keys (the groupby suite's query) through the device's hash
 *                   aggregation kernels: rows/s, GB/s of input read (24 bytes a
 *                   row), and that as a fraction of the copy bandwidth. CUDA
 *                   reads columns already in device memory; cpu and OpenCL take
 *                   them from host memory (their only way in). CUDA also
 *                   reports the same from host memory (hashagg_host_*:
 *                   double-buffered uploads overlapping the kernels).
 *   distinct_agg    COUNT(*) GROUP BY k with every key distinct and the table
 *                   sized for them (load factor 1/2): aggregation at the
 *                   highest cardinality.
 *   insert          bulk insert of D distinct 64-bit keys with 64-bit values
 *                   into a hash table of 2*D slots (load factor 1/2 when done),
 *                   inserts/s: the CUDA static map (hashmap_cuda.c), and on
 *                   cpu the same table (16-byte pairs, linear probing,
 *                   compare-and-swap) with T threads. D is the largest power
 *                   of two <= min(rows, 2^26).
 *
 *   join, filter, partition
 *                   the other kernel families (kernel_ops.c): hash join build
 *                   and probe, a two-column filter, hash partitioning into 64
 *                   and 1024 partitions, over min(rows, 2^26) rows from host
 *                   memory (environment TSR_BENCH_OPS_ROWS: another cap; 0
 *                   leaves them out, e.g. for the extra runs of gpu-check.sh).
 *
 * Every result is verified (exactly: the prices are multiples of 1/16, so
 * their sums are exact in any order); a wrong answer exits 1 and is not timed.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/hash.h"
#include "core/pool.h"
#include "device/device.h"
#include "device/hashagg.h"
#include "kernel_ops.h"
#ifndef TSR_NO_OPENCL
#include "device/opencl_internal.h"
#endif
#ifdef TSR_HAVE_CUDA
#include "device/cuda_internal.h"
#endif

#define KB_ROW_BYTES 24 /* k, v, price */
#define KB_DISTINCT_MAX ((size_t)1 << 26)
#define KB_KEYS_MAX ((uint64_t)1 << 24) /* the reference keeps an array per key */
#define KB_TASK ((size_t)1 << 20)       /* rows per pool task */
#define KB_EMPTY UINT64_MAX             /* empty slot of the cpu insert table */

typedef struct kb {
    const tsr_bench_opts_t *o;
    tsr_pool_t *pool;
    unsigned threads, repeat;
    uint64_t seed;
    size_t n;   /* aggregation rows */
    uint64_t K; /* keys */
    int64_t *k, *v;
    double *price;
    int64_t *ref_count, *ref_sum; /* per key */
    double *ref_psum;
    size_t ref_groups;
    size_t nd; /* distinct keys */
    uint64_t *dkeys, *dvals;
    atomic_int bad; /* a verification failed */
} kb_t;

/* ---- data ------------------------------------------------------------------------- */

static uint64_t kb_mix(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Row i from its own counter, so any thread can make any row. */
static void kb_gen_task(void *arg, size_t t, unsigned worker)
{
    kb_t *b = arg;
    size_t end = (t + 1) * KB_TASK < b->n ? (t + 1) * KB_TASK : b->n;
    for (size_t i = t * KB_TASK; i < end; i++) {
        uint64_t z = kb_mix(b->seed, i);
        b->k[i] = (int64_t)(((z >> 32) * b->K) >> 32);
        b->v[i] = (int64_t)(((z >> 8) & 0xFFFFF) % 1000);
        b->price[i] = (double)(z & 0xFFFF) / 16.0; /* exact sums in any order */
    }
    size_t dend = (t + 1) * KB_TASK < b->nd ? (t + 1) * KB_TASK : b->nd;
    for (size_t i = t * KB_TASK; i < dend; i++) {
        b->dkeys[i] = tsr_hash_u64(b->seed + i); /* a bijection: distinct keys */
        b->dvals[i] = i;
    }
}

static int kb_data(kb_t *b)
{
    size_t n = b->n;
    b->k = malloc(n * 8);
    b->v = malloc(n * 8);
    b->price = malloc(n * 8);
    b->dkeys = malloc(b->nd * 8);
    b->dvals = malloc(b->nd * 8);
    b->ref_count = calloc(b->K, 8);
    b->ref_sum = calloc(b->K, 8);
    b->ref_psum = calloc(b->K, 8);
    if (!b->k || !b->v || !b->price || !b->dkeys || !b->dvals || !b->ref_count || !b->ref_sum ||
        !b->ref_psum) {
        tsr_bench_error("out of memory for %zu rows", n);
        return TSR_BENCH_EXIT_FAIL;
    }
    size_t tasks = ((n > b->nd ? n : b->nd) + KB_TASK - 1) / KB_TASK;
    tsr_pool_run(b->pool, tasks, kb_gen_task, b);
    /* the reference, in one pass (keys are few: a direct array) */
    for (size_t i = 0; i < n; i++) {
        b->ref_count[b->k[i]]++;
        b->ref_sum[b->k[i]] += b->v[i];
        b->ref_psum[b->k[i]] += b->price[i];
    }
    for (uint64_t g = 0; g < b->K; g++)
        b->ref_groups += b->ref_count[g] != 0;
    return 0;
}

static void kb_data_free(kb_t *b)
{
    free(b->k);
    free(b->v);
    free(b->price);
    free(b->dkeys);
    free(b->dvals);
    free(b->ref_count);
    free(b->ref_sum);
    free(b->ref_psum);
}

/* ---- aggregation ----------------------------------------------------------------------- */

static void kb_agg_spec(const kb_t *b, bool distinct, tsr_dev_hashagg_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->nkeys = 1;
    if (distinct) {
        spec->naggs = 1;
        spec->aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_COUNT_STAR, TSR_TYPE_INT64};
        spec->expected_groups = b->nd;
    } else {
        spec->naggs = 3;
        spec->aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
        spec->aggs[1] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_COUNT_STAR, TSR_TYPE_INT64};
        spec->aggs[2] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_DOUBLE};
        spec->expected_groups = b->K;
    }
}

/* Reads the groups back and checks them against the reference. */
static int kb_agg_verify(kb_t *b, tsr_dev_hashagg_t *ha, bool distinct, tsr_error_t *err)
{
    size_t ng = tsr_dev_hashagg_ngroups(ha), want = distinct ? b->nd : b->ref_groups;
    if (ng != want) {
        tsr_bench_error("aggregation returned %zu groups, want %zu", ng, want);
        return TSR_BENCH_EXIT_FAIL;
    }
    size_t nv = distinct ? 1 : ng + 1; /* COUNT(*) alone needs no value arrays */
    uint64_t *keys = malloc(ng * 8 + 8), *kvalid = calloc((ng + 63) / 64 + 1, 8);
    int64_t *cnt = malloc(ng * 8 + 8), *sum = malloc(nv * 8), *cnt2 = malloc(nv * 8);
    double *psum = malloc(nv * 8);
    int rc = 0;
    if (!keys || !kvalid || !sum || !cnt || !cnt2 || !psum) {
        tsr_bench_error("out of memory verifying %zu groups", ng);
        rc = TSR_BENCH_EXIT_FAIL;
        goto cleanup;
    }
    tsr_dev_hashagg_out_t out = {.keys = {keys}, .key_valid = {kvalid}};
    if (distinct) {
        out.counts[0] = cnt;
    } else {
        out.counts[0] = cnt2;
        out.values[0] = sum;
        out.counts[1] = cnt;
        out.counts[2] = cnt2;
        out.values[2] = psum;
    }
    tsr_status_t st = tsr_dev_hashagg_result(ha, NULL, &out, err);
    if (st != TSR_OK) {
        rc = tsr_bench_kernel_fail("reading the groups", st, err);
        goto cleanup;
    }
    for (size_t g = 0; g < ng && rc == 0; g++) {
        int64_t key = (int64_t)keys[g];
        bool ok = distinct ? cnt[g] == 1
                           : key >= 0 && (uint64_t)key < b->K && cnt[g] == b->ref_count[key] &&
                                 sum[g] == b->ref_sum[key] && psum[g] == b->ref_psum[key];
        if (!ok) {
            tsr_bench_error("group %zu (key %lld) differs from the reference", g, (long long)key);
            rc = TSR_BENCH_EXIT_FAIL;
        }
    }
cleanup:
    free(keys);
    free(kvalid);
    free(sum);
    free(cnt);
    free(cnt2);
    free(psum);
    return rc;
}

/* Rows from host memory: the way in every backend has. */
static void kb_host_rows(const kb_t *b, bool distinct, tsr_dev_hashagg_rows_t *rows)
{
    memset(rows, 0, sizeof(*rows));
    if (distinct) {
        rows->n = b->nd;
        rows->keys[0] = b->dkeys;
    } else {
        rows->n = b->n;
        rows->keys[0] = (const uint64_t *)b->k;
        rows->values[0] = b->v;
        rows->values[2] = b->price;
    }
}

#ifdef TSR_HAVE_CUDA
typedef struct kb_cuda {
    tsr_dev_buf_t *k, *v, *price, *dkeys, *dvals;
} kb_cuda_t;
#endif

/* One timed aggregation: a fresh table, the update timed, the result checked
 * (first run). *secs: the update's wall time. */
static int kb_agg_once(kb_t *b, tsr_dev_t *dev, bool distinct, const void *devcols, bool verify,
                       double *secs, tsr_error_t *err)
{
    tsr_dev_hashagg_spec_t spec;
    kb_agg_spec(b, distinct, &spec);
    tsr_dev_hashagg_t *ha = NULL;
    tsr_status_t st = tsr_dev_hashagg_create(dev, &spec, &ha, err);
    if (st != TSR_OK)
        return tsr_bench_kernel_fail("creating the aggregation", st, err);
    double t0 = tsr_bench_now();
#ifdef TSR_HAVE_CUDA
    if (devcols) {
        const kb_cuda_t *cc = devcols;
        tsr_cuda_ha_dev_rows_t dr = {.n = distinct ? b->nd : b->n};
        dr.keys[0] = distinct ? cc->dkeys : cc->k;
        if (!distinct) {
            dr.values[0] = cc->v;
            dr.values[2] = cc->price;
        }
        st = tsr_dev_hashagg_cuda_update_device(ha, NULL, &dr, err);
    } else
#endif
    {
        tsr_dev_hashagg_rows_t rows;
        kb_host_rows(b, distinct, &rows);
        st = tsr_dev_hashagg_update(ha, NULL, &rows, err);
    }
    *secs = tsr_bench_now() - t0;
    int rc = st == TSR_OK ? 0 : tsr_bench_kernel_fail("aggregating", st, err);
    if (rc == 0 && verify)
        rc = kb_agg_verify(b, ha, distinct, err);
    tsr_dev_hashagg_destroy(ha);
    return rc;
}

/* Best of R runs; *best in seconds. */
static int kb_agg_best(kb_t *b, tsr_dev_t *dev, bool distinct, const void *devcols, double *best,
                       tsr_error_t *err)
{
    *best = INFINITY;
    for (unsigned r = 0; r < b->repeat; r++) {
        tsr_bench_progress("%s: %s aggregation, run %u of %u", dev->backend->name,
                           distinct ? "distinct-key" : "low-cardinality", r + 1, b->repeat);
        double s = 0;
        int rc = kb_agg_once(b, dev, distinct, devcols, r == 0, &s, err);
        if (rc != 0)
            return rc;
        *best = s < *best ? s : *best;
    }
    tsr_bench_progress_clear();
    return 0;
}

/* ---- copy bandwidth ------------------------------------------------------------------- */

typedef struct kb_memcpy {
    char *dst;
    const char *src;
    size_t bytes, per;
} kb_memcpy_t;

static void kb_memcpy_task(void *arg, size_t t, unsigned worker)
{
    kb_memcpy_t *m = arg;
    size_t off = t * m->per, len = off + m->per < m->bytes ? m->per : m->bytes - off;
    memcpy(m->dst + off, m->src + off, len);
}

/* The three input columns copied into one column-sized buffer, best of R;
 * returns bytes read plus written per second. */
static int kb_copy_cpu(kb_t *b, double *gbps)
{
    size_t bytes = b->n * 8;
    char *dst = malloc(bytes);
    if (!dst) {
        tsr_bench_error("out of memory for the copy");
        return TSR_BENCH_EXIT_FAIL;
    }
    memset(dst, 1, bytes); /* fault the pages in, outside the timing */
    const void *cols[3] = {b->k, b->v, b->price};
    double best = INFINITY;
    for (unsigned r = 0; r < b->repeat; r++) {
        double t0 = tsr_bench_now();
        for (int c = 0; c < 3; c++) {
            kb_memcpy_t m = {dst, cols[c], bytes, (bytes + b->threads - 1) / b->threads};
            tsr_pool_run(b->pool, b->threads, kb_memcpy_task, &m);
        }
        double s = tsr_bench_now() - t0;
        best = s < best ? s : best;
    }
    free(dst);
    *gbps = 2.0 * KB_ROW_BYTES * (double)b->n / best / 1e9;
    return 0;
}

#ifndef TSR_NO_OPENCL
static int kb_copy_opencl(kb_t *b, tsr_dev_t *dev, double *gbps, tsr_error_t *err)
{
    size_t bytes = b->n * 8;
    tsr_dev_buf_t *src[3] = {NULL, NULL, NULL}, *dst = NULL;
    const void *cols[3] = {b->k, b->v, b->price};
    tsr_status_t st = tsr_dev_buf_alloc(dev, bytes, &dst, err);
    for (int c = 0; c < 3 && st == TSR_OK; c++)
        if ((st = tsr_dev_buf_alloc(dev, bytes, &src[c], err)) == TSR_OK)
            st = tsr_dev_write(dev->queue, src[c], 0, cols[c], bytes, true, NULL, err);
    double best = INFINITY;
    cl_command_queue q = tsr_dev_cl_queue(dev->queue);
    for (unsigned r = 0; r < b->repeat && st == TSR_OK; r++) {
        double t0 = tsr_bench_now();
        cl_int code = CL_SUCCESS;
        for (int c = 0; c < 3 && code == CL_SUCCESS; c++)
            code = clEnqueueCopyBuffer(q, tsr_dev_cl_mem(src[c]), tsr_dev_cl_mem(dst), 0, 0, bytes,
                                       0, NULL, NULL);
        if (code == CL_SUCCESS)
            code = clFinish(q);
        if (code != CL_SUCCESS)
            st = tsr_dev_cl_fail(err, dev, code, "clEnqueueCopyBuffer");
        double s = tsr_bench_now() - t0;
        best = s < best ? s : best;
    }
    for (int c = 0; c < 3; c++)
        tsr_dev_buf_free(src[c]);
    tsr_dev_buf_free(dst);
    if (st != TSR_OK)
        return tsr_bench_kernel_fail("OpenCL copy", st, err);
    *gbps = 2.0 * KB_ROW_BYTES * (double)b->n / best / 1e9;
    return 0;
}
#endif

/* ---- inserts ---------------------------------------------------------------------------- */

typedef struct kb_table {
    uint64_t *slots; /* key, value pairs */
    size_t mask;
    const kb_t *b;
    atomic_int full;
} kb_table_t;

static void kb_insert_task(void *arg, size_t t, unsigned worker)
{
    kb_table_t *tb = arg;
    const kb_t *b = tb->b;
    size_t end = (t + 1) * 65536 < b->nd ? (t + 1) * 65536 : b->nd;
    for (size_t i = t * 65536; i < end; i++) {
        uint64_t key = b->dkeys[i], pos = tsr_hash_u64(key) & tb->mask;
        for (size_t p = 0;; p++) {
            if (p > tb->mask) {
                atomic_store(&tb->full, 1);
                return;
            }
            uint64_t *s = tb->slots + 2 * pos, cur = KB_EMPTY;
            if (__atomic_compare_exchange_n(s, &cur, key, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED) ||
                cur == key) {
                __atomic_store_n(s + 1, b->dvals[i], __ATOMIC_RELAXED);
                break;
            }
            pos = (pos + 1) & tb->mask;
        }
    }
}

static void kb_lookup_task(void *arg, size_t t, unsigned worker)
{
    kb_table_t *tb = arg;
    kb_t *b = (kb_t *)tb->b;
    size_t end = (t + 1) * 65536 < b->nd ? (t + 1) * 65536 : b->nd;
    for (size_t i = t * 65536; i < end; i++) {
        uint64_t key = b->dkeys[i], pos = tsr_hash_u64(key) & tb->mask;
        while (tb->slots[2 * pos] != key && tb->slots[2 * pos] != KB_EMPTY)
            pos = (pos + 1) & tb->mask;
        if (tb->slots[2 * pos] != key || tb->slots[2 * pos + 1] != b->dvals[i])
            atomic_store(&b->bad, 1);
    }
}

/* The cpu counterpart of the CUDA map: the same table and hash, T threads. */
static int kb_insert_cpu(kb_t *b, double *per_s)
{
    size_t nslots = 2 * b->nd;
    kb_table_t tb = {.slots = malloc(nslots * 16), .mask = nslots - 1, .b = b};
    if (!tb.slots) {
        tsr_bench_error("out of memory for the insert table");
        return TSR_BENCH_EXIT_FAIL;
    }
    size_t tasks = (b->nd + 65535) / 65536;
    double best = INFINITY;
    for (unsigned r = 0; r < b->repeat; r++) {
        memset(tb.slots, 0xFF, nslots * 16); /* all keys KB_EMPTY */
        double t0 = tsr_bench_now();
        tsr_pool_run(b->pool, tasks, kb_insert_task, &tb);
        double s = tsr_bench_now() - t0;
        best = s < best ? s : best;
    }
    tsr_pool_run(b->pool, tasks, kb_lookup_task, &tb);
    free(tb.slots);
    if (atomic_load(&tb.full) || atomic_load(&b->bad)) {
        tsr_bench_error("cpu insert table lost keys");
        return TSR_BENCH_EXIT_FAIL;
    }
    *per_s = (double)b->nd / best;
    return 0;
}

#ifdef TSR_HAVE_CUDA

typedef struct kb_check {
    const kb_t *b;
    const uint64_t *out;
    const uint8_t *found;
    atomic_int bad;
} kb_check_t;

static void kb_check_task(void *arg, size_t t, unsigned worker)
{
    kb_check_t *c = arg;
    size_t end = (t + 1) * KB_TASK < c->b->nd ? (t + 1) * KB_TASK : c->b->nd;
    for (size_t i = t * KB_TASK; i < end; i++)
        if (!c->found[i] || c->out[i] != c->b->dvals[i])
            atomic_store(&c->bad, 1);
}

/* Bulk upserts into a fresh map of 2*D slots, best of R; checked once. */
static int kb_insert_cuda(kb_t *b, tsr_dev_t *dev, const kb_cuda_t *cc, double *per_s,
                          tsr_error_t *err)
{
    double best = INFINITY;
    tsr_status_t st = TSR_OK;
    for (unsigned r = 0; r < b->repeat && st == TSR_OK; r++) {
        tsr_cuda_map_t *m = NULL;
        if ((st = tsr_cuda_map_create(dev, b->nd, &m, err)) != TSR_OK)
            break;
        double t0 = tsr_bench_now();
        st = tsr_cuda_map_upsert(m, NULL, cc->dkeys, cc->dvals, b->nd, err);
        double s = tsr_bench_now() - t0;
        best = s < best ? s : best;
        if (st == TSR_OK && r == 0) { /* check every key once */
            tsr_dev_buf_t *out = NULL, *found = NULL;
            uint64_t *hout = malloc(b->nd * 8);
            uint8_t *hfound = malloc(b->nd);
            if (!hout || !hfound)
                st = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory checking the map");
            if (st == TSR_OK && (st = tsr_dev_buf_alloc(dev, b->nd * 8, &out, err)) == TSR_OK &&
                (st = tsr_dev_buf_alloc(dev, b->nd, &found, err)) == TSR_OK &&
                (st = tsr_cuda_map_find(m, NULL, cc->dkeys, out, found, b->nd, err)) == TSR_OK &&
                (st = tsr_dev_read(dev->queue, out, 0, hout, b->nd * 8, true, NULL, err)) ==
                    TSR_OK &&
                (st = tsr_dev_read(dev->queue, found, 0, hfound, b->nd, true, NULL, err)) ==
                    TSR_OK) {
                kb_check_t c = {.b = b, .out = hout, .found = hfound};
                tsr_pool_run(b->pool, (b->nd + KB_TASK - 1) / KB_TASK, kb_check_task, &c);
                if (atomic_load(&c.bad) || tsr_cuda_map_size(m) != b->nd)
                    st = tsr_error_set(err, TSR_ERR_INTERNAL, "the CUDA map lost or mixed up keys");
            }
            tsr_dev_buf_free(out);
            tsr_dev_buf_free(found);
            free(hout);
            free(hfound);
        }
        tsr_cuda_map_destroy(m);
    }
    if (st != TSR_OK)
        return tsr_bench_kernel_fail("CUDA map inserts", st, err);
    *per_s = (double)b->nd / best;
    return 0;
}

static void kb_cuda_free(kb_cuda_t *cc)
{
    tsr_dev_buf_free(cc->k);
    tsr_dev_buf_free(cc->v);
    tsr_dev_buf_free(cc->price);
    tsr_dev_buf_free(cc->dkeys);
    tsr_dev_buf_free(cc->dvals);
    memset(cc, 0, sizeof(*cc));
}

/* The columns in device memory (untimed), then the copy bandwidth over them. */
static int kb_cuda_setup(kb_t *b, tsr_dev_t *dev, kb_cuda_t *cc, double *gbps, tsr_error_t *err)
{
    size_t bytes = b->n * 8, dbytes = b->nd * 8;
    tsr_dev_queue_t *q = dev->queue;
    tsr_dev_buf_t *dst = NULL;
    tsr_status_t st;
    if ((st = tsr_dev_buf_alloc(dev, bytes, &cc->k, err)) != TSR_OK ||
        (st = tsr_dev_buf_alloc(dev, bytes, &cc->v, err)) != TSR_OK ||
        (st = tsr_dev_buf_alloc(dev, bytes, &cc->price, err)) != TSR_OK ||
        (st = tsr_dev_buf_alloc(dev, dbytes, &cc->dkeys, err)) != TSR_OK ||
        (st = tsr_dev_buf_alloc(dev, dbytes, &cc->dvals, err)) != TSR_OK ||
        (st = tsr_dev_write(q, cc->k, 0, b->k, bytes, true, NULL, err)) != TSR_OK ||
        (st = tsr_dev_write(q, cc->v, 0, b->v, bytes, true, NULL, err)) != TSR_OK ||
        (st = tsr_dev_write(q, cc->price, 0, b->price, bytes, true, NULL, err)) != TSR_OK ||
        (st = tsr_dev_write(q, cc->dkeys, 0, b->dkeys, dbytes, true, NULL, err)) != TSR_OK ||
        (st = tsr_dev_write(q, cc->dvals, 0, b->dvals, dbytes, true, NULL, err)) != TSR_OK ||
        (st = tsr_dev_buf_alloc(dev, bytes, &dst, err)) != TSR_OK)
        return tsr_bench_kernel_fail("CUDA device buffers", st, err);
    double best = INFINITY;
    const tsr_dev_buf_t *src[3] = {cc->k, cc->v, cc->price};
    for (unsigned r = 0; r <= b->repeat && st == TSR_OK; r++) { /* run 0 warms up */
        double t0 = tsr_bench_now();
        for (int c = 0; c < 3 && st == TSR_OK; c++)
            st = tsr_dev_cuda_copy(q, dst, 0, src[c], 0, bytes, err);
        if (st == TSR_OK)
            st = tsr_dev_queue_finish(q, err);
        double s = tsr_bench_now() - t0;
        if (r > 0)
            best = s < best ? s : best;
    }
    tsr_dev_buf_free(dst);
    if (st != TSR_OK)
        return tsr_bench_kernel_fail("CUDA copy", st, err);
    *gbps = 2.0 * KB_ROW_BYTES * (double)b->n / best / 1e9;
    return 0;
}
#endif /* TSR_HAVE_CUDA */

/* ---- per device ---------------------------------------------------------------------- */

static int kb_agg_figures(tsr_bench_report_t *r, const kb_t *b, const char *prefix,
                          const char *what, double secs, double copy_gbps)
{
    char name[64], label[96];
    double rows_s = (double)b->n / secs, gbps = KB_ROW_BYTES * rows_s / 1e9;
    int rc;
    snprintf(name, sizeof(name), "%s_rows_per_s", prefix);
    snprintf(label, sizeof(label), "%s", what);
    if ((rc = tsr_bench_kernel_emit(r, name, label, rows_s, "rows/s")) != 0)
        return rc;
    snprintf(name, sizeof(name), "%s_bytes_per_s", prefix);
    snprintf(label, sizeof(label), "  input read (24 B/row)");
    if ((rc = tsr_bench_kernel_emit(r, name, label, gbps, "GB/s")) != 0)
        return rc;
    snprintf(name, sizeof(name), "%s_copy_fraction", prefix);
    snprintf(label, sizeof(label), "  as a fraction of copy bandwidth");
    return tsr_bench_kernel_emit(r, name, label, gbps / copy_gbps, "x");
}

/* All figures of one device; *skipped when the device is absent. */
static int kb_device(kb_t *b, tsr_device_backend_t backend, bool *skipped)
{
    const char *bname = tsr_device_backend_name(backend);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_t *dev = NULL;
    *skipped = false;
    tsr_status_t st = tsr_dev_open_spec(NULL, bname, &dev, &err);
    if (st == TSR_ERR_NOT_FOUND) {
        *skipped = true;
        const char *why = strstr(err.message, ": ") ? strstr(err.message, ": ") + 2 : err.message;
        if (b->o->json)
            fprintf(stderr, "kernels: %s skipped: %s\n", bname, why);
        else
            printf("kernels on %s: skipped: %s\n", bname,
                   backend == TSR_DEVICE_CUDA ? "no CUDA device" : why);
        if (!b->o->json && backend == TSR_DEVICE_CUDA)
            printf("  (%s)\n", why);
        return 0;
    }
    if (st != TSR_OK)
        return tsr_bench_kernel_fail("opening the device", st, &err);
    tsr_bench_report_t r;
    if (tsr_bench_report_init(&r, "kernels", b->o->json, stdout) != 0) {
        tsr_dev_close(dev);
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    r.device = bname;
    tsr_bench_report_param_str(&r, "device_name", dev->info.name);
    tsr_bench_report_param_int(&r, "rows", (int64_t)b->n);
    tsr_bench_report_param_int(&r, "keys", (int64_t)b->K);
    tsr_bench_report_param_int(&r, "distinct_keys", (int64_t)b->nd);
    tsr_bench_report_param_int(&r, "repeat", b->repeat);
    tsr_bench_report_param_int(&r, "threads", b->threads);
    tsr_bench_report_param_int(&r, "seed", (int64_t)b->seed);
    tsr_bench_report_title(&r,
                           "kernels on %s (%s): %zu rows, %llu keys, %zu distinct keys, "
                           "best of %u",
                           bname, dev->info.name, b->n, (unsigned long long)b->K, b->nd, b->repeat);
    double copy = 0, secs = 0, per_s = 0;
    int rc = 0;
#ifdef TSR_HAVE_CUDA
    kb_cuda_t cc;
    memset(&cc, 0, sizeof(cc));
#endif
    switch (backend) {
    case TSR_DEVICE_CPU:
        rc = kb_copy_cpu(b, &copy);
        break;
    case TSR_DEVICE_OPENCL:
#ifndef TSR_NO_OPENCL
        rc = kb_copy_opencl(b, dev, &copy, &err);
#endif
        break;
    case TSR_DEVICE_CUDA:
#ifdef TSR_HAVE_CUDA
        rc = kb_cuda_setup(b, dev, &cc, &copy, &err);
#endif
        break;
    }
    if (rc == 0)
        rc = tsr_bench_kernel_emit(&r, "copy_bytes_per_s", "copy bandwidth (read + written)", copy,
                                   "GB/s");
    const void *devcols = NULL;
#ifdef TSR_HAVE_CUDA
    devcols = backend == TSR_DEVICE_CUDA ? &cc : NULL;
#endif
    if (rc == 0 && (rc = kb_agg_best(b, dev, false, devcols, &secs, &err)) == 0)
        rc = kb_agg_figures(&r, b, "hashagg",
                            devcols ? "hash aggregation (device memory)"
                                    : "hash aggregation (host memory)",
                            secs, copy);
    if (rc == 0 && devcols && (rc = kb_agg_best(b, dev, false, NULL, &secs, &err)) == 0)
        rc = kb_agg_figures(&r, b, "hashagg_host", "hash aggregation (host memory)", secs, copy);
    if (rc == 0 && (rc = kb_agg_best(b, dev, true, devcols, &secs, &err)) == 0)
        rc = tsr_bench_kernel_emit(&r, "distinct_agg_rows_per_s",
                                   "distinct-key aggregation (load 1/2)", (double)b->nd / secs,
                                   "rows/s");
    if (rc == 0 && backend == TSR_DEVICE_CPU && (rc = kb_insert_cpu(b, &per_s)) == 0)
        rc = tsr_bench_kernel_emit(&r, "insert_per_s", "hash-table inserts (load 1/2)", per_s,
                                   "inserts/s");
#ifdef TSR_HAVE_CUDA
    if (rc == 0 && backend == TSR_DEVICE_CUDA &&
        (rc = kb_insert_cuda(b, dev, &cc, &per_s, &err)) == 0)
        rc = tsr_bench_kernel_emit(&r, "insert_per_s", "hash-table inserts (load 1/2)", per_s,
                                   "inserts/s");
    kb_cuda_free(&cc);
#endif
    const char *ops_env = getenv("TSR_BENCH_OPS_ROWS");
    size_t ops_rows = ops_env ? (size_t)strtoull(ops_env, NULL, 10) : b->n;
    if (rc == 0 && ops_rows)
        rc = tsr_bench_kernel_ops(&r, dev, ops_rows < b->n ? ops_rows : b->n, b->repeat, b->seed,
                                  copy);
    if (rc == 0 && backend == TSR_DEVICE_OPENCL)
        tsr_bench_report_note(&r,
                              "(no bulk-insert kernel on OpenCL: see distinct-key aggregation)");
    if (rc == 0)
        tsr_bench_report_note(&r, "verified: groups and sums exact against the reference");
    tsr_bench_report_fini(&r);
    tsr_dev_close(dev);
    return rc;
}

int tsr_bench_suite_kernels(const tsr_bench_opts_t *opts)
{
    static const struct {
        const char *name;
        tsr_device_backend_t backend;
    } devs[] = {{"cpu", TSR_DEVICE_CPU}, {"opencl", TSR_DEVICE_OPENCL}, {"cuda", TSR_DEVICE_CUDA}};
    const char *want = opts->device ? opts->device : "all";
    bool all = strcmp(want, "all") == 0, known = all;
    for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        known |= strcmp(want, devs[i].name) == 0;
    if (!known) {
        tsr_bench_error("unknown device '%s'", want);
        fprintf(stderr, "  hint: --device cpu, opencl, cuda or all\n");
        return TSR_BENCH_EXIT_USAGE;
    }
    kb_t b;
    memset(&b, 0, sizeof(b));
    b.o = opts;
    b.n = opts->rows ? (size_t)opts->rows : 10000000;
    b.K = opts->keys ? opts->keys : 1000;
    b.repeat = opts->repeat ? opts->repeat : 3;
    b.seed = opts->seed_given ? opts->seed : 1;
    if (b.K > KB_KEYS_MAX) {
        tsr_bench_error("--keys must be at most %llu for this suite",
                        (unsigned long long)KB_KEYS_MAX);
        return TSR_BENCH_EXIT_USAGE;
    }
    if (b.n > ((size_t)1 << 34)) {
        tsr_bench_error("--rows must be at most %zu", (size_t)1 << 34);
        return TSR_BENCH_EXIT_USAGE;
    }
    size_t lim = b.n < KB_DISTINCT_MAX ? b.n : KB_DISTINCT_MAX;
    for (b.nd = 1; b.nd * 2 <= lim;)
        b.nd *= 2;
    if (tsr_pool_create(NULL, opts->threads, &b.pool) != TSR_OK) {
        tsr_bench_error("cannot start the thread pool");
        return TSR_BENCH_EXIT_FAIL;
    }
    b.threads = tsr_pool_size(b.pool);
    tsr_bench_progress("generating %zu rows", b.n);
    int rc = kb_data(&b);
    tsr_bench_progress_clear();
    int found = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(devs) / sizeof(devs[0]); i++) {
        if (!all && strcmp(want, devs[i].name) != 0)
            continue;
        bool skipped = false;
        rc = kb_device(&b, devs[i].backend, &skipped);
        found += !skipped;
    }
    if (rc == 0 && !all && !found)
        rc = tsr_status_exit_code(TSR_ERR_NOT_FOUND); /* the one device asked for is absent */
    kb_data_free(&b);
    tsr_pool_destroy(b.pool);
    return rc;
}
