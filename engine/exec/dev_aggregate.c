/*
 * dev_aggregate.c - hash AGGREGATE on a device (the hashagg kernel family,
 * device/hashagg.h), with an optional fused pre-filter (a FILTER over a SCAN,
 * as op_aggregate.c takes it).
 *
 * Covered plans: at most 4 grouping keys, each a column of INT64, DOUBLE,
 * BOOL or VARCHAR (by dictionary code; every batch shares the dictionary);
 * COUNT(*), COUNT(column), SUM/AVG/MIN/MAX over INT64 or DOUBLE columns, at
 * most 16 device aggregates after sharing (SUM(x) and AVG(x) are one). Not
 * covered (the CPU operator runs): DISTINCT aggregates other than MIN/MAX,
 * computed keys or arguments, BOOL or VARCHAR arguments of SUM/MIN/MAX.
 *
 * Flow, per chunk of input batches (<= TSR_DEV_EXEC_CHUNK_ROWS rows):
 *
 *   resident (the backend takes device input: hashagg update_dev, and for a
 *   device-covered pre-filter filter run_dev):
 *     pre-filter columns from the query's cache --filter run_dev--> selection
 *       on the device (or the CPU's selection, uploaded: 4 bytes a row)
 *     key / argument columns from the cache (KEY form: normalised keys;
 *       RAW: values, shared with the filter's) + the selection
 *       --tsr_dev_hashagg_update_dev--> device table
 *   host staging (no device input, or the chunk does not fit the device):
 *     pre-filter --(device filter, or the CPU's)--> sel per batch
 *     batches --gather sel, normalise keys (tsr_ht_normalize's rules)--> staging
 *       --tsr_dev_hashagg_update--> device table
 *   then tsr_dev_hashagg_result --> groups on the host --> output batches
 *
 * A chunk is resident or staged as a whole: every column is placed (and
 * pinned) before the update, so a chunk that does not fit has touched
 * nothing and is staged instead.
 *
 * The device reports per aggregate a count of non-NULL values beside its
 * value, so a group whose values are all NULL gives SQL NULL, and AVG is
 * SUM / COUNT here exactly as agg_state.c computes it ((double)sum /
 * (double)count, the 64-bit sum being exact where it fits). SUM(BIGINT) that
 * does not fit 64 bits (TSR_ERR_OVERFLOW from the device) is handed to the
 * CPU operator, which owns the exact rule (an AVG of such values still has
 * an answer there).
 */
#include <string.h>

#include "device/filter.h"
#include "device/hashagg.h"
#include "exec/dev_exec.h"
#include "exec/hashtable.h"

#define DAGG_MAX_COLS (TSR_DEV_HASHAGG_MAX_KEYS + TSR_DEV_HASHAGG_MAX_AGGS)

/* One input column staged for the device: normalised keys or raw values. */
typedef struct dagg_col {
    size_t col;       /* input column */
    tsr_type_t type;  /* its type */
    bool key;         /* normalise (a grouping key) rather than copy */
    bool need_values; /* the device reads its values (keys, SUM/MIN/MAX) */
    bool may_null;    /* some batch has a validity bitmap */
    uint64_t *vals;   /* chunk rows */
    uint64_t *valid;  /* chunk bitmap (when may_null) */
} dagg_col_t;

typedef struct dagg {
    const tsr_exec_ctx_t *ctx;
    const tsr_plan_t *plan;
    const tsr_table_t *in;
    tsr_dev_hashagg_spec_t spec;
    size_t ncols;
    dagg_col_t cols[DAGG_MAX_COLS];
    size_t key_cs[TSR_DEV_HASHAGG_MAX_KEYS];              /* key k: its staged column */
    const tsr_dict_t *key_dict[TSR_DEV_HASHAGG_MAX_KEYS]; /* VARCHAR keys */
    long agg_cs[TSR_DEV_HASHAGG_MAX_AGGS];                /* device aggregate: its column, -1 */
    size_t *out_dev;                                      /* plan aggregate -> device aggregate */
} dagg_t;

/* ---- planning --------------------------------------------------------------------- */

static bool dagg_col_index(dagg_t *d, const tsr_expr_t *e, bool key, size_t *out)
{
    if (e->kind != TSR_EXPR_COLUMN || e->column >= d->in->ncols ||
        d->in->fields[e->column].type != e->type)
        return false;
    for (size_t c = 0; c < d->ncols; c++)
        if (d->cols[c].col == e->column && d->cols[c].key == key) {
            *out = c;
            return true;
        }
    if (d->ncols == DAGG_MAX_COLS)
        return false;
    dagg_col_t *dc = &d->cols[d->ncols];
    memset(dc, 0, sizeof(*dc));
    dc->col = e->column;
    dc->type = e->type;
    dc->key = key;
    dc->need_values = key;
    for (size_t b = 0; b < d->in->nbatches; b++)
        dc->may_null |= d->in->batches[b].cols[e->column].validity != NULL;
    *out = d->ncols++;
    return true;
}

/* The device aggregate (kind, column cs), added when new; -1 when full. */
static long dagg_dev_agg(dagg_t *d, tsr_dev_agg_kind_t kind, long cs, tsr_type_t type)
{
    for (size_t a = 0; a < d->spec.naggs; a++)
        if (d->spec.aggs[a].kind == kind && d->agg_cs[a] == cs && d->spec.aggs[a].type == type)
            return (long)a;
    if (d->spec.naggs == TSR_DEV_HASHAGG_MAX_AGGS)
        return -1;
    d->spec.aggs[d->spec.naggs] = (tsr_dev_agg_spec_t){.kind = kind, .type = type};
    d->agg_cs[d->spec.naggs] = cs;
    if (cs >= 0 && kind != TSR_DEV_AGG_COUNT)
        d->cols[cs].need_values = true;
    return (long)d->spec.naggs++;
}

static bool dagg_plan_agg(dagg_t *d, size_t a)
{
    const tsr_agg_t *agg = &d->plan->aggs[a];
    tsr_type_t rtype = d->plan->types[d->plan->nkeys + a];
    long da = -1;
    if (agg->fn == TSR_AGG_COUNT_STAR) {
        if (rtype != TSR_TYPE_INT64)
            return false;
        da = dagg_dev_agg(d, TSR_DEV_AGG_COUNT_STAR, -1, TSR_TYPE_INT64);
    } else {
        size_t cs;
        bool distinct = agg->distinct && agg->fn != TSR_AGG_MIN && agg->fn != TSR_AGG_MAX;
        if (!agg->arg || distinct || !dagg_col_index(d, agg->arg, false, &cs))
            return false;
        tsr_type_t t = agg->arg->type;
        bool num = t == TSR_TYPE_INT64 || t == TSR_TYPE_DOUBLE;
        switch (agg->fn) {
        case TSR_AGG_COUNT:
            if (rtype != TSR_TYPE_INT64 || t == TSR_TYPE_NULL)
                return false;
            da = dagg_dev_agg(d, TSR_DEV_AGG_COUNT, (long)cs, TSR_TYPE_INT64);
            break;
        case TSR_AGG_SUM:
        case TSR_AGG_AVG:
            if (!num || rtype != (agg->fn == TSR_AGG_AVG ? TSR_TYPE_DOUBLE : t))
                return false;
            da = dagg_dev_agg(d, TSR_DEV_AGG_SUM, (long)cs, t);
            break;
        case TSR_AGG_MIN:
        case TSR_AGG_MAX:
            if (!num || rtype != t)
                return false;
            da = dagg_dev_agg(d, agg->fn == TSR_AGG_MIN ? TSR_DEV_AGG_MIN : TSR_DEV_AGG_MAX,
                              (long)cs, t);
            break;
        default:
            return false;
        }
    }
    if (da < 0)
        return false;
    d->out_dev[a] = (size_t)da;
    return true;
}

/* Fills d from the plan; false when the device kernels do not cover it. */
static bool dagg_plan(dagg_t *d)
{
    const tsr_plan_t *plan = d->plan;
    if (plan->nkeys > TSR_DEV_HASHAGG_MAX_KEYS || plan->naggs == 0 ||
        plan->ncols != plan->nkeys + plan->naggs)
        return false;
    d->spec.nkeys = plan->nkeys;
    for (size_t k = 0; k < plan->nkeys; k++) {
        const tsr_expr_t *e = plan->keys[k];
        if (e->type != TSR_TYPE_INT64 && e->type != TSR_TYPE_DOUBLE && e->type != TSR_TYPE_BOOL &&
            e->type != TSR_TYPE_VARCHAR)
            return false;
        if (plan->types[k] != e->type || !dagg_col_index(d, e, true, &d->key_cs[k]))
            return false;
        if (e->type == TSR_TYPE_VARCHAR) {
            const tsr_table_t *in = d->in;
            const tsr_dict_t *dict = in->nbatches ? in->batches[0].cols[e->column].dict : NULL;
            for (size_t b = 1; b < in->nbatches; b++)
                if (in->batches[b].cols[e->column].dict != dict)
                    return false;
            if (in->nbatches && !dict)
                return false;
            d->key_dict[k] = dict;
        }
    }
    for (size_t a = 0; a < plan->naggs; a++)
        if (!dagg_plan_agg(d, a))
            return false;
    return true;
}

/* ---- staging ------------------------------------------------------------------------ */

/* Appends rows (sel[j], or 0..n-1) of batch into the staging chunk at row at. */
static void dagg_stage(dagg_t *d, const tsr_batch_t *batch, const uint32_t *sel, size_t n,
                       size_t at)
{
    for (size_t c = 0; c < d->ncols; c++) {
        dagg_col_t *dc = &d->cols[c];
        const tsr_vector_t *v = &batch->cols[dc->col];
        if (dc->need_values) {
            uint64_t *dst = dc->vals + at;
            if (dc->key && dc->type != TSR_TYPE_INT64) {
                /* the hash table's normalisation, written straight to the chunk */
                for (size_t j = 0; j < n; j++) {
                    size_t i = sel ? sel[j] : j;
                    switch (dc->type) {
                    case TSR_TYPE_DOUBLE:
                        dst[j] = tsr_ht_norm_double(((const double *)v->data)[i]);
                        break;
                    case TSR_TYPE_VARCHAR:
                        dst[j] = ((const uint32_t *)v->data)[i];
                        break;
                    default:
                        dst[j] = ((const uint8_t *)v->data)[i] != 0;
                        break;
                    }
                }
            } else if (sel) {
                const uint64_t *src = v->data;
                for (size_t j = 0; j < n; j++)
                    dst[j] = src[sel[j]];
            } else {
                memcpy(dst, v->data, n * sizeof(uint64_t));
            }
        }
        if (dc->may_null) {
            if (!sel) {
                tsr_dev_exec_append_bits(dc->valid, at, v->validity, n);
            } else {
                for (size_t j = 0; j < n; j++)
                    if (tsr_bit_get(v->validity, sel[j]) || !v->validity)
                        dc->valid[(at + j) >> 6] |= (uint64_t)1 << ((at + j) & 63);
            }
        }
    }
}

static void dagg_clear_valid(dagg_t *d, size_t rows)
{
    for (size_t c = 0; c < d->ncols; c++)
        if (d->cols[c].may_null)
            memset(d->cols[c].valid, 0, tsr_bitmap_words(rows) * sizeof(uint64_t));
}

static tsr_status_t dagg_flush(dagg_t *d, tsr_dev_hashagg_t *ha, size_t n, tsr_error_t *err)
{
    if (n == 0)
        return TSR_OK;
    tsr_dev_hashagg_rows_t rows = {.n = n};
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        const dagg_col_t *dc = &d->cols[d->key_cs[k]];
        rows.keys[k] = dc->vals;
        rows.key_valid[k] = dc->may_null ? dc->valid : NULL;
    }
    for (size_t a = 0; a < d->spec.naggs; a++) {
        if (d->agg_cs[a] < 0)
            continue;
        const dagg_col_t *dc = &d->cols[d->agg_cs[a]];
        rows.values[a] = d->spec.aggs[a].kind == TSR_DEV_AGG_COUNT ? NULL : dc->vals;
        rows.valid[a] = dc->may_null ? dc->valid : NULL;
    }
    return tsr_dev_hashagg_update(ha, NULL, &rows, err);
}

/* ---- one chunk of input ------------------------------------------------------------------ */

/* The resident path's state (tsr_dev_op_aggregate). */
typedef struct dagg_res {
    tsr_dev_cols_t *cache; /* NULL: host staging for every chunk */
    bool keep;             /* the input is a base input: its chunks stay cached */
    tsr_dev_exec_pred_t p; /* the pre-filter, compiled (with f) */
    tsr_dev_filter_t *f;   /* NULL: no device pre-filter */
    /* A pre-filter the device does not cover: the CPU's selection of the
     * chunk (dagg_select_host) goes up as the update's row list instead. */
    const uint32_t *hsel; /* chunk-relative rows, NULL: none */
    size_t hnsel;
} dagg_res_t;

/* Chunk [b0, b1) from device-resident columns: the pre-filter's selection
 * stays on the device and is the update's row list. *fits = false (nothing
 * aggregated) when some column does not fit the device. */
static tsr_status_t dagg_chunk_resident(dagg_t *d, tsr_dev_hashagg_t *ha, const dagg_res_t *res,
                                        size_t b0, size_t b1, bool *fits, tsr_error_t *err)
{
    const tsr_table_t *it = d->in;
    tsr_dev_hashagg_drows_t rows = {.n = tsr_dev_exec_rows(it, b0, b1)};
    *fits = true;
    if (rows.n == 0)
        return TSR_OK;
    tsr_status_t rc;
    if (res->f) {
        if ((rc = tsr_dev_exec_select_resident(res->cache, res->f, &res->p, it, res->keep, b0, b1,
                                               &rows.sel, &rows.nsel, fits, err)) != TSR_OK ||
            !*fits || rows.nsel == 0)
            return rc;
    } else if (res->hsel) {
        /* 4 bytes a selected row up, rather than the gathered columns */
        if (res->hnsel == 0)
            return TSR_OK;
        if ((rc = tsr_dev_cols_scratch(res->cache, res->hnsel * sizeof(uint32_t), &rows.sel, fits,
                                       err)) != TSR_OK ||
            !*fits)
            return rc;
        if ((rc = tsr_dev_write(res->cache->dev->queue, rows.sel, 0, res->hsel,
                                res->hnsel * sizeof(uint32_t), true, NULL, err)) != TSR_OK)
            return rc;
        rows.nsel = res->hnsel;
    }
    tsr_dev_col_t got[DAGG_MAX_COLS];
    for (size_t c = 0; c < d->ncols; c++) {
        const dagg_col_t *dc = &d->cols[c];
        /* INT64 keys need no normalisation: the raw chunk serves both uses */
        tsr_dev_col_kind_t kind = !dc->need_values                        ? TSR_DEV_COL_VALID
                                  : dc->key && dc->type != TSR_TYPE_INT64 ? TSR_DEV_COL_KEY
                                                                          : TSR_DEV_COL_RAW;
        if ((rc = tsr_dev_cols_get(res->cache, it, dc->col, b0, b1, kind, res->keep, &got[c], fits,
                                   err)) != TSR_OK ||
            !*fits)
            return rc;
    }
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        rows.keys[k] = got[d->key_cs[k]].values;
        rows.key_valid[k] = got[d->key_cs[k]].valid;
    }
    for (size_t a = 0; a < d->spec.naggs; a++) {
        if (d->agg_cs[a] < 0)
            continue;
        const tsr_dev_col_t *dc = &got[d->agg_cs[a]];
        rows.values[a] = d->spec.aggs[a].kind == TSR_DEV_AGG_COUNT ? NULL : dc->values;
        rows.valid[a] = dc->valid;
    }
    return tsr_dev_hashagg_update_dev(ha, NULL, &rows, err);
}

/* Chunk [b0, b1) through host staging (chunk rows of scratch, allocated on
 * first use): the pre-filter's selection per batch (device filter with
 * host input, or the CPU), the selected rows gathered and normalised, one
 * host-input update. sel / nsel: room for the chunk's rows / batches. */
/* The selection of prefilter over the chunk [b0, b1) into sel / nsel (per
 * batch, batch-relative: dev_exec.h's format): the device filter with host
 * input, or the CPU. */
static tsr_status_t dagg_select_host(dagg_t *d, tsr_dev_t *dev, const tsr_expr_t *prefilter,
                                     size_t b0, size_t b1, uint32_t *sel, size_t *nsel,
                                     tsr_error_t *err)
{
    /* the chunk as a table of its own (a read-only view of its batches) */
    const tsr_table_t *it = d->in;
    tsr_table_t view = *it;
    view.batches = it->batches + b0;
    view.nbatches = b1 - b0;
    view.nrows = tsr_dev_exec_rows(it, b0, b1);
    return tsr_dev_exec_select_any(d->ctx, dev, prefilter, &view, false, sel, nsel, err);
}

/* selected: sel / nsel already hold the chunk's selection. */
static tsr_status_t dagg_chunk_host(dagg_t *d, tsr_dev_hashagg_t *ha, tsr_dev_t *dev,
                                    const tsr_expr_t *prefilter, bool selected, size_t b0,
                                    size_t b1, size_t chunk, uint32_t *sel, size_t *nsel,
                                    tsr_error_t *err)
{
    tsr_mem_t *mem = d->ctx->mem;
    const tsr_table_t *it = d->in;
    for (size_t c = 0; c < d->ncols; c++) {
        dagg_col_t *dc = &d->cols[c];
        if (dc->need_values && !dc->vals &&
            !(dc->vals = tsr_mem_alloc(mem, chunk * sizeof(uint64_t))))
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        if (dc->may_null && !dc->valid &&
            !(dc->valid = tsr_mem_alloc(mem, tsr_bitmap_words(chunk) * sizeof(uint64_t))))
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    tsr_status_t rc;
    if (prefilter && !selected &&
        (rc = dagg_select_host(d, dev, prefilter, b0, b1, sel, nsel, err)) != TSR_OK)
        return rc;
    size_t at = 0, off = 0;
    dagg_clear_valid(d, chunk);
    for (size_t b = b0; b < b1; b++) {
        const tsr_batch_t *batch = &it->batches[b];
        size_t n = prefilter ? nsel[b - b0] : batch->nrows;
        dagg_stage(d, batch, prefilter ? sel + off : NULL, n, at);
        at += n;
        off += batch->nrows;
    }
    return dagg_flush(d, ha, at, err);
}

/* ---- output ----------------------------------------------------------------------------- */

typedef struct dagg_groups {
    size_t n;
    tsr_dev_hashagg_out_t out;
} dagg_groups_t;

static void dagg_groups_free(tsr_mem_t *mem, dagg_groups_t *g)
{
    for (size_t k = 0; k < TSR_DEV_HASHAGG_MAX_KEYS; k++) {
        tsr_mem_free(mem, g->out.keys[k]);
        tsr_mem_free(mem, g->out.key_valid[k]);
    }
    for (size_t a = 0; a < TSR_DEV_HASHAGG_MAX_AGGS; a++) {
        tsr_mem_free(mem, g->out.counts[a]);
        tsr_mem_free(mem, g->out.values[a]);
    }
}

static tsr_status_t dagg_groups_alloc(tsr_mem_t *mem, const dagg_t *d, dagg_groups_t *g)
{
    size_t n = g->n ? g->n : 1;
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        g->out.keys[k] = tsr_mem_alloc(mem, n * sizeof(uint64_t));
        g->out.key_valid[k] = tsr_mem_calloc(mem, tsr_bitmap_words(n), sizeof(uint64_t));
        if (!g->out.keys[k] || !g->out.key_valid[k])
            return TSR_ERR_NOMEM;
    }
    for (size_t a = 0; a < d->spec.naggs; a++) {
        tsr_dev_agg_kind_t kind = d->spec.aggs[a].kind;
        g->out.counts[a] = tsr_mem_alloc(mem, n * sizeof(int64_t));
        if (!g->out.counts[a])
            return TSR_ERR_NOMEM;
        if (kind != TSR_DEV_AGG_COUNT && kind != TSR_DEV_AGG_COUNT_STAR &&
            !(g->out.values[a] = tsr_mem_alloc(mem, n * sizeof(int64_t))))
            return TSR_ERR_NOMEM;
    }
    return TSR_OK;
}

/* Writes groups [g0, g0 + n) as output rows 0..n-1 of cols. */
static void dagg_emit(const dagg_t *d, const dagg_groups_t *g, size_t g0, size_t n,
                      tsr_vector_t *cols)
{
    const tsr_plan_t *plan = d->plan;
    for (size_t k = 0; k < plan->nkeys; k++) {
        tsr_vector_t *v = &cols[k];
        const uint64_t *keys = g->out.keys[k];
        for (size_t r = 0; r < n; r++) {
            uint64_t x = keys[g0 + r];
            tsr_bit_set(v->validity, r, tsr_bit_get(g->out.key_valid[k], g0 + r));
            switch (v->type) {
            case TSR_TYPE_VARCHAR:
                ((uint32_t *)v->data)[r] = (uint32_t)x;
                break;
            case TSR_TYPE_BOOL:
                ((uint8_t *)v->data)[r] = (uint8_t)(x != 0);
                break;
            default: /* INT64 and DOUBLE: the bits */
                ((uint64_t *)v->data)[r] = x;
                break;
            }
        }
    }
    for (size_t a = 0; a < plan->naggs; a++) {
        tsr_vector_t *v = &cols[plan->nkeys + a];
        size_t da = d->out_dev[a];
        tsr_agg_fn_t fn = plan->aggs[a].fn;
        const int64_t *cnt = g->out.counts[da];
        const void *vals = g->out.values[da];
        bool dbl = d->spec.aggs[da].type == TSR_TYPE_DOUBLE;
        for (size_t r = 0; r < n; r++) {
            int64_t c = g->n ? cnt[g0 + r] : 0; /* no groups: SQL's one empty row */
            if (fn == TSR_AGG_COUNT_STAR || fn == TSR_AGG_COUNT) {
                ((int64_t *)v->data)[r] = c;
                tsr_bit_set(v->validity, r, true);
                continue;
            }
            tsr_bit_set(v->validity, r, c > 0);
            if (c == 0) {
                ((int64_t *)v->data)[r] = 0;
            } else if (fn == TSR_AGG_AVG) {
                double s =
                    dbl ? ((const double *)vals)[g0 + r] : (double)((const int64_t *)vals)[g0 + r];
                ((double *)v->data)[r] = s / (double)c;
            } else {
                ((int64_t *)v->data)[r] = ((const int64_t *)vals)[g0 + r]; /* the bits */
            }
        }
    }
}

static tsr_status_t dagg_output(dagg_t *d, const dagg_groups_t *g, tsr_table_t *t, tsr_error_t *err)
{
    tsr_mem_t *mem = d->ctx->mem;
    const tsr_plan_t *plan = d->plan;
    size_t total = g->n == 0 && plan->nkeys == 0 ? 1 : g->n;
    for (size_t g0 = 0; g0 < total; g0 += TSR_BATCH_ROWS) {
        size_t n = total - g0 < TSR_BATCH_ROWS ? total - g0 : TSR_BATCH_ROWS;
        tsr_vector_t *cols = tsr_mem_calloc(mem, plan->ncols, sizeof(tsr_vector_t));
        if (!cols)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        for (size_t c = 0; c < plan->ncols; c++) {
            const tsr_dict_t *dict = c < plan->nkeys ? d->key_dict[c] : NULL;
            if (tsr_vector_alloc(mem, plan->types[c], n, true, dict, &cols[c]) != TSR_OK) {
                tsr_exec_free_cols(mem, cols, plan->ncols);
                return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            }
        }
        dagg_emit(d, g, g0, n, cols);
        if (tsr_table_append_batch(t, n, cols) != TSR_OK) {
            tsr_exec_free_cols(mem, cols, plan->ncols);
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        }
    }
    return TSR_OK;
}

/* ---- the operator ---------------------------------------------------------------------- */

tsr_status_t tsr_dev_op_aggregate(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_plan_t *plan,
                                  const tsr_expr_t *prefilter, tsr_op_input_t in, tsr_table_t **out,
                                  bool *handled, tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    const tsr_table_t *it = in.table;
    size_t nb = it->nbatches;
    *handled = false;
    dagg_t d;
    memset(&d, 0, sizeof(d));
    d.ctx = ctx;
    d.plan = plan;
    d.in = it;
    for (size_t a = 0; a < TSR_DEV_HASHAGG_MAX_AGGS; a++)
        d.agg_cs[a] = -1;
    size_t out_dev[TSR_DEV_HASHAGG_MAX_AGGS];
    d.out_dev = out_dev;
    if (!dev || plan->naggs > TSR_DEV_HASHAGG_MAX_AGGS || !dagg_plan(&d))
        return TSR_OK;

    tsr_dev_hashagg_t *ha = NULL;
    dagg_res_t res; /* the resident path (its filter is owned here) */
    memset(&res, 0, sizeof(res));
    tsr_table_t *t = NULL;
    uint32_t *sel = NULL, *csel = NULL; /* csel: a CPU selection, chunk-relative */
    size_t *nsel = NULL;
    dagg_groups_t g;
    memset(&g, 0, sizeof(g));
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = tsr_dev_hashagg_create(dev, &d.spec, &ha, &e);
    if (rc == TSR_ERR_UNSUPPORTED)
        return TSR_OK; /* the backend lacks the family or this aggregate */
    if (rc != TSR_OK) {
        *err = e;
        return rc;
    }
    size_t chunk = it->nrows < TSR_DEV_EXEC_CHUNK_ROWS ? it->nrows : TSR_DEV_EXEC_CHUNK_ROWS;
    if (chunk == 0)
        chunk = 1;
    if (prefilter) {
        sel = tsr_mem_alloc(mem, chunk * sizeof(uint32_t));
        nsel = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(size_t));
        if (!sel || !nsel)
            goto nomem;
    }
    /* the resident path: columns from the query's cache, the pre-filter's
     * selection kept on the device (see the top of the file) */
    res.keep = in.is_base;
    if (tsr_dev_hashagg_has_update_dev(ha))
        res.cache = tsr_exec_walk_cols(ctx);
    if (res.cache && prefilter) {
        tsr_error_clear(&e);
        if (tsr_dev_exec_pred_compile(prefilter, it, &res.p) &&
            (rc = tsr_dev_filter_create(dev, &res.p.spec, &res.f, &e)) != TSR_OK) {
            if (rc != TSR_ERR_UNSUPPORTED) {
                *err = e;
                goto cleanup;
            }
            res.f = NULL;
        }
        if (res.f && !tsr_dev_filter_has_run_dev(res.f)) {
            /* a device filter with host input only: its selection comes
             * back, and the gathered rows go up (host staging throughout) */
            res.cache = NULL;
        } else if (!res.f && !(csel = tsr_mem_alloc(mem, chunk * sizeof(uint32_t)))) {
            goto nomem; /* the CPU selects; its selection goes up (csel) */
        }
    }
    for (size_t b0 = 0; b0 < nb;) {
        size_t b1 = tsr_dev_exec_chunk_end(it, b0);
        bool fits = false, selected = false;
        if (res.cache && csel) {
            if ((rc = dagg_select_host(&d, dev, prefilter, b0, b1, sel, nsel, err)) != TSR_OK)
                goto cleanup;
            selected = true;
            /* batch-relative rows -> chunk-relative ones */
            size_t o = 0, k = 0;
            for (size_t b = b0; b < b1; b++) {
                for (size_t j = 0; j < nsel[b - b0]; j++)
                    csel[k++] = sel[o + j] + (uint32_t)o;
                o += it->batches[b].nrows;
            }
            res.hsel = csel;
            res.hnsel = k;
        }
        if (res.cache) {
            rc = dagg_chunk_resident(&d, ha, &res, b0, b1, &fits, err);
            tsr_dev_cols_unpin(res.cache);
            if (rc != TSR_OK)
                goto cleanup;
            if (!fits)
                tsr_dev_cols_note_fallback(res.cache);
        }
        if (!fits && (rc = dagg_chunk_host(&d, ha, dev, prefilter, selected, b0, b1, chunk, sel,
                                           nsel, err)) != TSR_OK)
            goto cleanup;
        b0 = b1;
    }

    g.n = tsr_dev_hashagg_ngroups(ha);
    if (dagg_groups_alloc(mem, &d, &g) != TSR_OK)
        goto nomem;
    if (g.n > 0) {
        tsr_error_clear(&e);
        rc = tsr_dev_hashagg_result(ha, NULL, &g.out, &e);
        if (rc == TSR_ERR_OVERFLOW) {
            rc = TSR_OK; /* the CPU operator decides (see the top of the file) */
            goto cleanup;
        }
        if (rc != TSR_OK) {
            *err = e;
            goto cleanup;
        }
    }
    if ((rc = tsr_exec_new_output(ctx, plan, &t, err)) != TSR_OK)
        goto cleanup;
    if ((rc = dagg_output(&d, &g, t, err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_exec_finish_output(t, in, false, err)) != TSR_OK)
        goto cleanup;
    *out = t;
    t = NULL;
    *handled = true;
    goto cleanup;

nomem:
    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
cleanup:
    tsr_table_destroy(t);
    dagg_groups_free(mem, &g);
    for (size_t c = 0; c < d.ncols; c++) {
        tsr_mem_free(mem, d.cols[c].vals);
        tsr_mem_free(mem, d.cols[c].valid);
    }
    tsr_mem_free(mem, sel);
    tsr_mem_free(mem, csel);
    tsr_mem_free(mem, nsel);
    tsr_dev_filter_destroy(res.f);
    tsr_dev_hashagg_destroy(ha);
    return rc;
}
