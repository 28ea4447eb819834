/*
 * hashjoin_cpu.c - hash join on the cpu device backend: sequential C of the
 * same table and the same passes as the OpenCL kernels
 * (kernels/opencl/hashjoin.cl), which makes it the kernels' model.
 *
 * Build (nslots = tsr_dev_hashjoin_slots(build rows), linear probing):
 *
 *   ref[s]        0 empty, else 1 + the build row whose key the slot holds
 *                 (a distinct non-NULL key; the kernel claims slots this way)
 *   bkeys[r]      build row r's key widened to 64 bits
 *   start[s]      first entry of slot s's rows in `rows`, start[nslots] = all
 *
 * count rows per slot, exclusive prefix sum -> start, scatter rows, then
 * pack the probe table and drop the rest:
 *
 *   table[s]      {key, start | count << 32}, {0, 0} when empty
 *   rows[]        the build rows of each distinct key, slot by slot
 *
 * Probe: per probe row its match count and first match in rows, prefix sum ->
 * offsets[j] (offsets[n] = pairs). Pairs: row j writes its matches at
 * offsets[j]. Here the scatter is in row order, so build rows come out
 * ascending within a probe row; the kernels promise no order there.
 */
#include <string.h>

#include "device/hashjoin.h"

#define CPU_HJ_PREFETCH 16 /* rows ahead whose home slot a probe prefetches */

typedef struct cpu_hj_entry {
    uint64_t key;
    uint64_t info; /* start | count << 32; 0: empty slot */
} cpu_hj_entry_t;

typedef struct cpu_hj {
    cpu_hj_entry_t *table;
    uint32_t *rows;
    uint32_t *pstart;  /* last probe: first match of each probe row in rows */
    uint64_t *offsets; /* last probe: nprobe + 1 */
} cpu_hj_t;

static tsr_status_t cpu_hj_create(tsr_dev_hashjoin_t *hj, tsr_error_t *err)
{
    cpu_hj_t *t = tsr_mem_calloc(hj->dev->mem, 1, sizeof(*t));
    if (!t)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    hj->impl = t;
    return TSR_OK;
}

static void cpu_hj_free_probe(tsr_mem_t *mem, cpu_hj_t *t)
{
    tsr_mem_free(mem, t->pstart);
    tsr_mem_free(mem, t->offsets);
    t->pstart = NULL;
    t->offsets = NULL;
}

static void cpu_hj_free_table(tsr_mem_t *mem, cpu_hj_t *t)
{
    tsr_mem_free(mem, t->table);
    tsr_mem_free(mem, t->rows);
    t->table = NULL;
    t->rows = NULL;
}

static void cpu_hj_destroy(tsr_dev_hashjoin_t *hj)
{
    cpu_hj_t *t = hj->impl;
    if (!t)
        return;
    tsr_mem_t *mem = hj->dev->mem;
    cpu_hj_free_table(mem, t);
    cpu_hj_free_probe(mem, t);
    tsr_mem_free(mem, t);
}

/* The build's slot holding key, or the empty slot where it would go (ref 0).
 * The table is never more than half full, so the loop ends within nslots. */
static size_t cpu_hj_claim(size_t nslots, const uint32_t *ref, const uint64_t *bkeys, uint64_t key)
{
    size_t mask = nslots - 1, pos = tsr_hash_u64(key) & mask;
    for (size_t p = 0; p < nslots; p++) {
        uint32_t r = ref[pos];
        if (r == 0 || bkeys[r - 1] == key)
            return pos;
        pos = (pos + 1) & mask;
    }
    return pos; /* unreachable at load <= 1/2 */
}

/* The probe table's slot of key, or TSR_DEV_JOIN_NONE. */
static uint32_t cpu_hj_find(const tsr_dev_hashjoin_t *hj, const cpu_hj_t *t, uint64_t key)
{
    size_t mask = hj->nslots - 1, pos = tsr_hash_u64(key) & mask;
    for (size_t p = 0; p < hj->nslots; p++) {
        const cpu_hj_entry_t *e = &t->table[pos];
        if (e->info == 0)
            break;
        if (e->key == key)
            return (uint32_t)pos;
        pos = (pos + 1) & mask;
    }
    return TSR_DEV_JOIN_NONE;
}

/* Exclusive prefix sum of a[0..n) in place, total into a[n]. */
static void cpu_hj_scan(uint64_t *a, size_t n)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = a[i];
        a[i] = acc;
        acc += v;
    }
    a[n] = acc;
}

static tsr_status_t cpu_hj_build(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                 const tsr_dev_join_keys_t *keys, tsr_error_t *err)
{
    cpu_hj_t *t = hj->impl;
    tsr_mem_t *mem = hj->dev->mem;
    size_t n = keys->n, ns = hj->nslots;
    uint32_t *row_slot = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
    uint32_t *ref = tsr_mem_calloc(mem, ns, sizeof(uint32_t));
    uint64_t *bkeys = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint64_t));
    uint64_t *start = tsr_mem_calloc(mem, ns + 1, sizeof(uint64_t));
    t->table = tsr_mem_calloc(mem, ns, sizeof(cpu_hj_entry_t));
    t->rows = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
    tsr_status_t rc = TSR_OK;
    if (!row_slot || !ref || !bkeys || !start || !t->table || !t->rows) {
        cpu_hj_free_table(mem, t);
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory building a join of %zu rows", n);
        goto cleanup;
    }
    /* insert: claim a slot per distinct key, count rows per slot */
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        bkeys[i] = tsr_dev_join_key_at(hj->spec.key, keys->keys, i);
        if (!tsr_dev_join_valid(keys->valid, i)) {
            row_slot[i] = TSR_DEV_JOIN_NONE;
            continue;
        }
        size_t s = cpu_hj_claim(ns, ref, bkeys, bkeys[i]);
        if (ref[s] == 0) {
            ref[s] = (uint32_t)i + 1;
            distinct++;
        }
        start[s]++;
        row_slot[i] = (uint32_t)s;
    }
    cpu_hj_scan(start, ns);
    /* scatter, in row order: start[s] serves as slot s's cursor */
    for (size_t i = 0; i < n; i++)
        if (row_slot[i] != TSR_DEV_JOIN_NONE)
            t->rows[start[row_slot[i]]++] = (uint32_t)i;
    /* each cursor now sits at the next slot's start: slot s spans
     * [start[s] - count, start[s]) */
    uint64_t begin = 0;
    for (size_t s = 0; s < ns; s++) {
        if (ref[s] == 0)
            continue;
        t->table[s].key = bkeys[ref[s] - 1];
        t->table[s].info = begin | (start[s] - begin) << 32;
        begin = start[s];
    }
    hj->ndistinct = distinct;

cleanup:
    tsr_mem_free(mem, row_slot);
    tsr_mem_free(mem, ref);
    tsr_mem_free(mem, bkeys);
    tsr_mem_free(mem, start);
    return rc;
}

static tsr_status_t cpu_hj_probe(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                 const tsr_dev_join_keys_t *keys, size_t *npairs, tsr_error_t *err)
{
    cpu_hj_t *t = hj->impl;
    tsr_mem_t *mem = hj->dev->mem;
    size_t n = keys->n;
    cpu_hj_free_probe(mem, t);
    t->pstart = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
    t->offsets = tsr_mem_alloc(mem, (n + 1) * sizeof(uint64_t));
    if (!t->pstart || !t->offsets) {
        cpu_hj_free_probe(mem, t);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory probing %zu rows", n);
    }
    size_t mask = hj->nslots - 1;
    for (size_t j = 0; j < n; j++) {
        /* The probe's branches depend on its table load and predict badly,
         * which serialises the cache misses of consecutive rows; fetching a
         * later row's home slot now overlaps them. */
        if (j + CPU_HJ_PREFETCH < n)
            __builtin_prefetch(&t->table[tsr_hash_u64(tsr_dev_join_key_at(hj->spec.key, keys->keys,
                                                                          j + CPU_HJ_PREFETCH)) &
                                         mask]);
        t->pstart[j] = 0;
        t->offsets[j] = 0;
        if (!tsr_dev_join_valid(keys->valid, j))
            continue;
        uint32_t s = cpu_hj_find(hj, t, tsr_dev_join_key_at(hj->spec.key, keys->keys, j));
        if (s == TSR_DEV_JOIN_NONE)
            continue;
        t->pstart[j] = (uint32_t)t->table[s].info;
        t->offsets[j] = t->table[s].info >> 32;
    }
    cpu_hj_scan(t->offsets, n);
    *npairs = (size_t)t->offsets[n];
    return TSR_OK;
}

static tsr_status_t cpu_hj_pairs(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q, uint32_t *probe_rows,
                                 uint32_t *build_rows, tsr_error_t *err)
{
    const cpu_hj_t *t = hj->impl;
    for (size_t j = 0; j < hj->nprobe; j++) {
        uint64_t o = t->offsets[j], c = t->offsets[j + 1] - o, b = t->pstart[j];
        for (uint64_t k = 0; k < c; k++) {
            probe_rows[o + k] = (uint32_t)j;
            build_rows[o + k] = t->rows[b + k];
        }
    }
    return TSR_OK;
}

/* Device memory of the cpu backend is host memory (the handle is the
 * address): the host-input build and probe, reading the buffers in place. */
static tsr_dev_join_keys_t cpu_hj_host_keys(const tsr_dev_join_dkeys_t *keys)
{
    return (tsr_dev_join_keys_t){.n = keys->n,
                                 .keys = keys->n ? keys->keys->handle : NULL,
                                 .valid = keys->valid ? keys->valid->handle : NULL};
}

static tsr_status_t cpu_hj_build_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                     const tsr_dev_join_dkeys_t *keys, tsr_error_t *err)
{
    tsr_dev_join_keys_t host = cpu_hj_host_keys(keys);
    return cpu_hj_build(hj, q, &host, err);
}

static tsr_status_t cpu_hj_probe_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                     const tsr_dev_join_dkeys_t *keys, size_t *npairs,
                                     tsr_error_t *err)
{
    tsr_dev_join_keys_t host = cpu_hj_host_keys(keys);
    return cpu_hj_probe(hj, q, &host, npairs, err);
}

const tsr_dev_hashjoin_ops_t tsr_dev_hashjoin_cpu_ops = {
    .create = cpu_hj_create,
    .destroy = cpu_hj_destroy,
    .build = cpu_hj_build,
    .probe = cpu_hj_probe,
    .pairs = cpu_hj_pairs,
    .build_dev = cpu_hj_build_dev,
    .probe_dev = cpu_hj_probe_dev,
};
