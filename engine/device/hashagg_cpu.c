/*
 * hashagg_cpu.c - hash aggregation on the cpu device backend: sequential C
 * with the same table design and the same per-row semantics as the OpenCL
 * kernel (kernels/opencl/hashagg.cl), which makes it the kernel's model.
 *
 * Table: open addressing, linear probing, nslots a power of two, load <= 1/2
 * (grown by doubling before an insert would pass it). A group lives in the
 * slot it was inserted into; every array is slot-indexed:
 *
 *   used[s]      1 when slot s holds a group
 *   ghash[s]     the group's hash (probe filter; rehash without the keys)
 *   gkeys[k*nslots + s]   key column k, 0 under NULL
 *   gvalid[s]    bit k set = key column k is not NULL
 *   states[c*nslots + s]  state column c (hashagg.h's layout)
 */
#include <math.h>
#include <string.h>

#include "device/hashagg.h"

#define CPU_HA_MIN_SLOTS 64

typedef struct cpu_ha {
    size_t nslots;
    uint8_t *used;
    uint64_t *ghash;
    uint64_t *gkeys;
    uint8_t *gvalid;
    int64_t *states;
} cpu_ha_t;

static void cpu_ha_free_arrays(tsr_mem_t *mem, cpu_ha_t *t)
{
    tsr_mem_free(mem, t->used);
    tsr_mem_free(mem, t->ghash);
    tsr_mem_free(mem, t->gkeys);
    tsr_mem_free(mem, t->gvalid);
    tsr_mem_free(mem, t->states);
    memset(t, 0, sizeof(*t));
}

/* Empty arrays for nslots slots, states at their identities. */
static tsr_status_t cpu_ha_alloc(const tsr_dev_hashagg_t *ha, size_t nslots, cpu_ha_t *t)
{
    tsr_mem_t *mem = ha->dev->mem;
    memset(t, 0, sizeof(*t));
    t->nslots = nslots;
    t->used = tsr_mem_calloc(mem, nslots, 1);
    t->ghash = tsr_mem_calloc(mem, nslots, sizeof(uint64_t));
    t->gkeys =
        tsr_mem_calloc(mem, (ha->spec.nkeys ? ha->spec.nkeys : 1) * nslots, sizeof(uint64_t));
    t->gvalid = tsr_mem_calloc(mem, nslots, 1);
    t->states = tsr_mem_calloc(mem, ha->layout.ncols * nslots, sizeof(int64_t));
    if (!t->used || !t->ghash || !t->gkeys || !t->gvalid || !t->states) {
        cpu_ha_free_arrays(mem, t);
        return TSR_ERR_NOMEM;
    }
    for (size_t c = 0; c < ha->layout.ncols; c++)
        for (size_t s = 0; s < nslots; s++)
            t->states[c * nslots + s] = (int64_t)ha->layout.identity[c];
    return TSR_OK;
}

static tsr_status_t cpu_ha_create(tsr_dev_hashagg_t *ha, tsr_error_t *err)
{
    cpu_ha_t *t = tsr_mem_calloc(ha->dev->mem, 1, sizeof(*t));
    if (!t)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    size_t nslots = CPU_HA_MIN_SLOTS;
    while (nslots < 2 * ha->spec.expected_groups && nslots < ((size_t)1 << 40))
        nslots *= 2;
    if (cpu_ha_alloc(ha, nslots, t) != TSR_OK) {
        tsr_mem_free(ha->dev->mem, t);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for a table of %zu groups", nslots);
    }
    ha->impl = t;
    return TSR_OK;
}

static void cpu_ha_destroy(tsr_dev_hashagg_t *ha)
{
    cpu_ha_t *t = ha->impl;
    if (!t)
        return;
    cpu_ha_free_arrays(ha->dev->mem, t);
    tsr_mem_free(ha->dev->mem, t);
}

/* Doubles the table, moving every group by its stored hash. */
static tsr_status_t cpu_ha_grow(tsr_dev_hashagg_t *ha, cpu_ha_t *t, tsr_error_t *err)
{
    cpu_ha_t n;
    if (cpu_ha_alloc(ha, t->nslots * 2, &n) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory growing a table to %zu groups",
                             t->nslots);
    size_t mask = n.nslots - 1, nkeys = ha->spec.nkeys, ncols = ha->layout.ncols;
    for (size_t s = 0; s < t->nslots; s++) {
        if (!t->used[s])
            continue;
        size_t p = t->ghash[s] & mask;
        while (n.used[p])
            p = (p + 1) & mask;
        n.used[p] = 1;
        n.ghash[p] = t->ghash[s];
        n.gvalid[p] = t->gvalid[s];
        for (size_t k = 0; k < nkeys; k++)
            n.gkeys[k * n.nslots + p] = t->gkeys[k * t->nslots + s];
        for (size_t c = 0; c < ncols; c++)
            n.states[c * n.nslots + p] = t->states[c * t->nslots + s];
    }
    cpu_ha_free_arrays(ha->dev->mem, t);
    *t = n;
    return TSR_OK;
}

static inline bool cpu_bit(const uint64_t *bm, size_t i)
{
    return !bm || ((bm[i >> 6] >> (i & 63)) & 1u);
}

/* Slot of row i's group, inserting it when new. */
static tsr_status_t cpu_ha_find_or_insert(tsr_dev_hashagg_t *ha, cpu_ha_t *t,
                                          const tsr_dev_hashagg_rows_t *rows, size_t i,
                                          size_t *slot, tsr_error_t *err)
{
    size_t nkeys = ha->spec.nkeys;
    uint64_t key[TSR_DEV_HASHAGG_MAX_KEYS];
    unsigned vmask = 0;
    for (size_t k = 0; k < nkeys; k++) {
        bool valid = cpu_bit(rows->key_valid[k], i);
        key[k] = valid ? rows->keys[k][i] : 0;
        vmask |= (unsigned)valid << k;
    }
    uint64_t h = tsr_dev_hashagg_hash(nkeys, key, vmask);
    for (;;) {
        size_t mask = t->nslots - 1, p = h & mask;
        while (t->used[p]) {
            bool eq = t->ghash[p] == h && t->gvalid[p] == vmask;
            for (size_t k = 0; eq && k < nkeys; k++)
                eq = t->gkeys[k * t->nslots + p] == key[k];
            if (eq) {
                *slot = p;
                return TSR_OK;
            }
            p = (p + 1) & mask;
        }
        if (2 * (ha->ngroups + 1) > t->nslots) {
            tsr_status_t rc = cpu_ha_grow(ha, t, err);
            if (rc != TSR_OK)
                return rc;
            continue; /* positions moved: probe again */
        }
        t->used[p] = 1;
        t->ghash[p] = h;
        t->gvalid[p] = (uint8_t)vmask;
        for (size_t k = 0; k < nkeys; k++)
            t->gkeys[k * t->nslots + p] = key[k];
        ha->ngroups++;
        *slot = p;
        return TSR_OK;
    }
}

static void cpu_ha_apply(const tsr_dev_hashagg_t *ha, cpu_ha_t *t,
                         const tsr_dev_hashagg_rows_t *rows, size_t i, size_t s)
{
    const tsr_dev_hashagg_layout_t *l = &ha->layout;
    size_t ns = t->nslots;
    t->states[s] += 1; /* rows */
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        tsr_dev_agg_op_t op = l->op[a];
        if (op == TSR_DEV_OP_COUNT_STAR)
            continue;
        if (!cpu_bit(rows->valid[a], i)) {
            t->states[(size_t)l->nulls_col[a] * ns + s] += 1;
            continue;
        }
        if (op == TSR_DEV_OP_COUNT)
            continue;
        int64_t *val = &t->states[(size_t)l->val_col[a] * ns + s];
        int64_t vi = ((const int64_t *)rows->values[a])[i];
        double vd = ((const double *)rows->values[a])[i], m;
        memcpy(&m, val, sizeof(m));
        switch (op) {
        case TSR_DEV_OP_SUM_I: {
            /* 128-bit add as the kernel does it: low word, then its carry and
             * the sign extension of v into the high word. */
            uint64_t lo = (uint64_t)*val, nlo = lo + (uint64_t)vi;
            int64_t *hi = &t->states[(size_t)l->hi_col[a] * ns + s];
            *hi = (int64_t)((uint64_t)*hi + (vi < 0 ? UINT64_MAX : 0) + (nlo < lo));
            *val = (int64_t)nlo;
            break;
        }
        case TSR_DEV_OP_SUM_D:
            m += vd;
            memcpy(val, &m, sizeof(m));
            break;
        case TSR_DEV_OP_MIN_I:
            *val = vi < *val ? vi : *val;
            break;
        case TSR_DEV_OP_MAX_I:
            *val = vi > *val ? vi : *val;
            break;
        case TSR_DEV_OP_MIN_D: /* NaN is the largest value */
            if (vd < m || isnan(m))
                memcpy(val, &vd, sizeof(vd));
            break;
        case TSR_DEV_OP_MAX_D:
            if (vd > m || isnan(vd))
                memcpy(val, &vd, sizeof(vd));
            break;
        default:
            break;
        }
    }
}

static tsr_status_t cpu_ha_update(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                  const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err)
{
    cpu_ha_t *t = ha->impl;
    for (size_t i = 0; i < rows->n; i++) {
        size_t s;
        tsr_status_t rc = cpu_ha_find_or_insert(ha, t, rows, i, &s, err);
        if (rc != TSR_OK)
            return rc;
        cpu_ha_apply(ha, t, rows, i, s);
    }
    return TSR_OK;
}

/* Device memory of the cpu backend is host memory (the handle is the
 * address): the rows are read in place, rows sel[j] where there is a
 * selection. */
static tsr_status_t cpu_ha_update_dev(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                      const tsr_dev_hashagg_drows_t *drows, tsr_error_t *err)
{
    (void)q;
    cpu_ha_t *t = ha->impl;
    tsr_dev_hashagg_rows_t rows = {.n = drows->n};
    for (size_t k = 0; k < ha->spec.nkeys; k++) {
        rows.keys[k] = drows->keys[k]->handle;
        rows.key_valid[k] = drows->key_valid[k] ? drows->key_valid[k]->handle : NULL;
    }
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        rows.values[a] = drows->values[a] ? drows->values[a]->handle : NULL;
        rows.valid[a] = drows->valid[a] ? drows->valid[a]->handle : NULL;
    }
    const uint32_t *sel = drows->sel ? drows->sel->handle : NULL;
    size_t n = sel ? drows->nsel : drows->n;
    for (size_t j = 0; j < n; j++) {
        size_t i = sel ? sel[j] : j, s;
        tsr_status_t rc = cpu_ha_find_or_insert(ha, t, &rows, i, &s, err);
        if (rc != TSR_OK)
            return rc;
        cpu_ha_apply(ha, t, &rows, i, s);
    }
    return TSR_OK;
}

static tsr_status_t cpu_ha_result(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                  const tsr_dev_hashagg_out_t *out, tsr_dev_hashagg_raw_t *raw,
                                  tsr_error_t *err)
{
    cpu_ha_t *t = ha->impl;
    size_t nkeys = ha->spec.nkeys, words = (ha->ngroups + 63) / 64, g = 0;
    for (size_t k = 0; k < nkeys; k++)
        memset(out->key_valid[k], 0, words * sizeof(uint64_t));
    for (size_t s = 0; s < t->nslots; s++) {
        if (!t->used[s])
            continue;
        for (size_t k = 0; k < nkeys; k++) {
            out->keys[k][g] = t->gkeys[k * t->nslots + s];
            if ((t->gvalid[s] >> k) & 1u)
                out->key_valid[k][g >> 6] |= (uint64_t)1 << (g & 63);
        }
        if (out->hashes)
            out->hashes[g] = t->ghash[s];
        for (size_t c = 0; c < ha->layout.ncols; c++)
            raw->state[c][g] = t->states[c * t->nslots + s];
        g++;
    }
    if (g != ha->ngroups)
        return tsr_error_set(err, TSR_ERR_INTERNAL,
                             "cpu aggregation table holds %zu groups, not %zu", g, ha->ngroups);
    return TSR_OK;
}

const tsr_dev_hashagg_ops_t tsr_dev_hashagg_cpu_ops = {
    .create = cpu_ha_create,
    .destroy = cpu_ha_destroy,
    .update = cpu_ha_update,
    .update_dev = cpu_ha_update_dev,
    .result = cpu_ha_result,
};
