/*
 * hashagg.c - the host API of device hash aggregation (hashagg.h): argument
 * checks, the state-column layout every backend shares, and turning raw
 * states into results, so backends only build tables and hand states back.
 *
 * Raw states -> results (per group g, aggregate a):
 *   count    = rows[g] for COUNT_STAR, rows[g] - nulls[g] otherwise
 *   SUM_I    = the 128-bit (hi:lo) sum; TSR_ERR_OVERFLOW unless it fits int64
 *   others   = the value column (int64, or a double's bits)
 *   value    = 0 when count is 0 (every argument was NULL: SQL NULL)
 */
#include "device/hashagg.h"

#include <string.h>

#define HASHAGG_NAN_BITS 0x7ff8000000000000ULL
#define HASHAGG_NEG_INF_BITS 0xfff0000000000000ULL

static int hashagg_add_col(tsr_dev_hashagg_layout_t *l, uint64_t identity)
{
    l->identity[l->ncols] = identity;
    return (int)l->ncols++;
}

static tsr_status_t hashagg_layout(const tsr_dev_hashagg_spec_t *spec, tsr_dev_hashagg_layout_t *l,
                                   tsr_error_t *err)
{
    memset(l, 0, sizeof(*l));
    hashagg_add_col(l, 0); /* rows */
    for (size_t a = 0; a < spec->naggs; a++) {
        tsr_dev_agg_kind_t kind = spec->aggs[a].kind;
        tsr_type_t type = spec->aggs[a].type;
        l->nulls_col[a] = l->val_col[a] = l->hi_col[a] = -1;
        if (kind == TSR_DEV_AGG_COUNT_STAR) {
            l->op[a] = TSR_DEV_OP_COUNT_STAR;
            continue;
        }
        if (kind == TSR_DEV_AGG_COUNT) {
            l->op[a] = TSR_DEV_OP_COUNT;
            l->nulls_col[a] = hashagg_add_col(l, 0);
            continue;
        }
        if (type != TSR_TYPE_INT64 && type != TSR_TYPE_DOUBLE)
            return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                 "device aggregation %zu: only BIGINT and DOUBLE arguments", a);
        bool d = type == TSR_TYPE_DOUBLE;
        uint64_t identity;
        switch (kind) {
        case TSR_DEV_AGG_SUM:
            l->op[a] = d ? TSR_DEV_OP_SUM_D : TSR_DEV_OP_SUM_I;
            identity = 0; /* 0 and 0.0 share their bits */
            break;
        case TSR_DEV_AGG_MIN:
            l->op[a] = d ? TSR_DEV_OP_MIN_D : TSR_DEV_OP_MIN_I;
            identity = d ? HASHAGG_NAN_BITS : (uint64_t)INT64_MAX;
            break;
        case TSR_DEV_AGG_MAX:
            l->op[a] = d ? TSR_DEV_OP_MAX_D : TSR_DEV_OP_MAX_I;
            identity = d ? HASHAGG_NEG_INF_BITS : (uint64_t)INT64_MIN;
            break;
        default:
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation %zu: bad kind %d", a,
                                 (int)kind);
        }
        l->nulls_col[a] = hashagg_add_col(l, 0);
        l->val_col[a] = hashagg_add_col(l, identity);
        if (l->op[a] == TSR_DEV_OP_SUM_I)
            l->hi_col[a] = hashagg_add_col(l, 0);
    }
    return TSR_OK;
}

tsr_status_t tsr_dev_hashagg_create(tsr_dev_t *dev, const tsr_dev_hashagg_spec_t *spec,
                                    tsr_dev_hashagg_t **out, tsr_error_t *err)
{
    if (!dev || !spec || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation: missing argument");
    if (spec->nkeys > TSR_DEV_HASHAGG_MAX_KEYS || spec->naggs > TSR_DEV_HASHAGG_MAX_AGGS)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "device aggregation supports at most %d keys and %d aggregates",
                             TSR_DEV_HASHAGG_MAX_KEYS, TSR_DEV_HASHAGG_MAX_AGGS);
    const tsr_dev_hashagg_ops_t *ops = dev->backend->hashagg;
    if (!ops)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "the %s backend has no hash aggregation kernel", dev->backend->name);
    tsr_dev_hashagg_t *ha = tsr_mem_calloc(dev->mem, 1, sizeof(*ha));
    if (!ha)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    ha->dev = dev;
    ha->spec = *spec;
    tsr_status_t rc = hashagg_layout(spec, &ha->layout, err);
    if (rc == TSR_OK)
        rc = ops->create(ha, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, ha);
        return rc;
    }
    *out = ha;
    return TSR_OK;
}

void tsr_dev_hashagg_destroy(tsr_dev_hashagg_t *ha)
{
    if (!ha)
        return;
    ha->dev->backend->hashagg->destroy(ha);
    tsr_mem_free(ha->dev->mem, ha);
}

size_t tsr_dev_hashagg_ngroups(const tsr_dev_hashagg_t *ha)
{
    return ha ? ha->ngroups : 0;
}

static tsr_status_t hashagg_queue(tsr_dev_hashagg_t *ha, tsr_dev_queue_t **q, tsr_error_t *err)
{
    if (!*q)
        *q = ha->dev->queue;
    if ((*q)->dev != ha->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device aggregation: the queue belongs to another device");
    return TSR_OK;
}

tsr_status_t tsr_dev_hashagg_update(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                    const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err)
{
    if (!ha || !rows)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation: missing argument");
    tsr_status_t rc = hashagg_queue(ha, &q, err);
    if (rc != TSR_OK || rows->n == 0)
        return rc;
    for (size_t k = 0; k < ha->spec.nkeys; k++)
        if (!rows->keys[k])
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation: key %zu missing",
                                 k);
    for (size_t a = 0; a < ha->spec.naggs; a++)
        if (ha->layout.val_col[a] >= 0 && !rows->values[a])
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: values of aggregate %zu missing", a);
    return ha->dev->backend->hashagg->update(ha, q, rows, err);
}

bool tsr_dev_hashagg_has_update_dev(const tsr_dev_hashagg_t *ha)
{
    return ha && ha->dev->backend->hashagg->update_dev != NULL;
}

static bool hashagg_dbuf_ok(const tsr_dev_hashagg_t *ha, const tsr_dev_buf_t *b, size_t bytes)
{
    return b && b->dev == ha->dev && b->size >= bytes;
}

tsr_status_t tsr_dev_hashagg_update_dev(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                        const tsr_dev_hashagg_drows_t *rows, tsr_error_t *err)
{
    if (!ha || !rows)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation: missing argument");
    if (!ha->dev->backend->hashagg->update_dev)
        return TSR_ERR_UNSUPPORTED; /* the caller copies the rows in instead */
    tsr_status_t rc = hashagg_queue(ha, &q, err);
    if (rc != TSR_OK || rows->n == 0 || (rows->sel && rows->nsel == 0))
        return rc;
    size_t n = rows->n, words = (n + 63) / 64;
    if (n > TSR_DEV_HASHAGG_DEV_MAX_ROWS || (rows->sel && rows->nsel > n))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device aggregation: %zu device rows (%zu selected), at most %zu", n,
                             rows->sel ? rows->nsel : n, TSR_DEV_HASHAGG_DEV_MAX_ROWS);
    if (rows->sel && !hashagg_dbuf_ok(ha, rows->sel, rows->nsel * 4))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation: bad selection buffer");
    for (size_t k = 0; k < ha->spec.nkeys; k++)
        if (!hashagg_dbuf_ok(ha, rows->keys[k], n * 8) ||
            (rows->key_valid[k] && !hashagg_dbuf_ok(ha, rows->key_valid[k], words * 8)))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: key %zu missing or too small", k);
    for (size_t a = 0; a < ha->spec.naggs; a++)
        if ((ha->layout.val_col[a] >= 0 && !hashagg_dbuf_ok(ha, rows->values[a], n * 8)) ||
            (rows->valid[a] && !hashagg_dbuf_ok(ha, rows->valid[a], words * 8)))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: values of aggregate %zu missing or too small",
                                 a);
    return ha->dev->backend->hashagg->update_dev(ha, q, rows, err);
}

/* Raw states -> out's counts and values (see the top of the file). */
static tsr_status_t hashagg_finish(const tsr_dev_hashagg_t *ha, const tsr_dev_hashagg_raw_t *raw,
                                   const tsr_dev_hashagg_out_t *out, tsr_error_t *err)
{
    const tsr_dev_hashagg_layout_t *l = &ha->layout;
    size_t n = ha->ngroups;
    const int64_t *rows = raw->state[0];
    tsr_status_t rc = TSR_OK;
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        int64_t *cnt = out->counts[a];
        const int64_t *nulls = l->nulls_col[a] >= 0 ? raw->state[l->nulls_col[a]] : NULL;
        for (size_t g = 0; g < n; g++)
            cnt[g] = nulls ? rows[g] - nulls[g] : rows[g];
        if (l->val_col[a] < 0 || !out->values[a])
            continue;
        const int64_t *val = raw->state[l->val_col[a]];
        int64_t *res = out->values[a]; /* int64, or the bits of a double */
        if (l->op[a] == TSR_DEV_OP_SUM_I) {
            const int64_t *hi = raw->state[l->hi_col[a]];
            for (size_t g = 0; g < n; g++) {
                /* Fits 64 bits iff the high word is the low word's sign. */
                if (cnt[g] != 0 && hi[g] != (val[g] < 0 ? -1 : 0) && rc == TSR_OK)
                    rc = tsr_error_set(err, TSR_ERR_OVERFLOW, "integer overflow in SUM");
                res[g] = cnt[g] ? val[g] : 0;
            }
        } else {
            for (size_t g = 0; g < n; g++)
                res[g] = cnt[g] ? val[g] : 0;
        }
    }
    return rc;
}

tsr_status_t tsr_dev_hashagg_result(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                    const tsr_dev_hashagg_out_t *out, tsr_error_t *err)
{
    if (!ha || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device aggregation: missing argument");
    tsr_status_t rc = hashagg_queue(ha, &q, err);
    if (rc != TSR_OK)
        return rc;
    for (size_t k = 0; k < ha->spec.nkeys; k++)
        if (!out->keys[k] || !out->key_valid[k])
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: output of key %zu missing", k);
    for (size_t a = 0; a < ha->spec.naggs; a++)
        if (!out->counts[a] || (ha->layout.val_col[a] >= 0 && !out->values[a]))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: output of aggregate %zu missing", a);
    if (ha->ngroups == 0)
        return TSR_OK;

    tsr_mem_t *mem = ha->dev->mem;
    tsr_dev_hashagg_raw_t raw;
    memset(&raw, 0, sizeof(raw));
    int64_t *block = tsr_mem_calloc(mem, ha->layout.ncols * ha->ngroups, sizeof(int64_t));
    if (!block)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for %zu groups", ha->ngroups);
    for (size_t c = 0; c < ha->layout.ncols; c++)
        raw.state[c] = block + c * ha->ngroups;
    rc = ha->dev->backend->hashagg->result(ha, q, out, &raw, err);
    if (rc == TSR_OK)
        rc = hashagg_finish(ha, &raw, out, err);
    tsr_mem_free(mem, block);
    return rc;
}
