/*
 * perfect_agg.c - perfect-hash (direct-indexed) aggregation: choosing it,
 * computing group ids, and folding the dense partials into a final part (see
 * perfect_agg.h for the layout and when it applies).
 *
 * Invariant the direct index relies on: every non-NULL key value of the input
 * lies in kmin[k] .. kmin[k] + slots[k] - 2. Table statistics guarantee it
 * (tsr_table_append_batch drops them, so they are never stale), dictionary
 * codes are below the dictionary's size and BOOL is 0/1; the min/max pass
 * reads the very batches the aggregation then reads.
 */
#include <string.h>

#include "exec/perfect_agg.h"

#define AGG_ROWS TSR_BATCH_ROWS

/* ---- choosing ---------------------------------------------------------------------- */

static size_t perfect_state_width(tsr_agg_skind_t kind)
{
    return kind == TSR_AGG_S_SUM_I ? sizeof(tsr_agg_i128_t) : sizeof(int64_t);
}

void tsr_agg_perfect_choose(tsr_agg_plan_t *ap, const int64_t *lo, const int64_t *hi, size_t nrows,
                            unsigned nworkers)
{
    tsr_agg_perfect_t pf;
    memset(&pf, 0, sizeof(pf));
    pf.rows_scol = -1;
    memset(&ap->perfect, 0, sizeof(ap->perfect));
    ap->perfect.rows_scol = -1;
    if (ap->nkeys == 0 || ap->nkeys > TSR_AGG_PERFECT_MAXKEYS || ap->ndsets > 0)
        return;
    uint64_t groups = 1;
    for (size_t k = 0; k < ap->nkeys; k++) {
        uint64_t span = 0; /* non-NULL values */
        if (hi[k] >= lo[k]) {
            uint64_t d = (uint64_t)hi[k] - (uint64_t)lo[k]; /* no signed overflow */
            if (d >= TSR_AGG_PERFECT_MAX_GROUPS)
                return;
            span = d + 1;
            pf.kmin[k] = (uint64_t)lo[k];
        }
        pf.slots[k] = span + 1;
        if (groups > TSR_AGG_PERFECT_MAX_GROUPS / pf.slots[k])
            return;
        pf.stride[k] = groups;
        groups *= pf.slots[k];
    }
    /* Dense arrays cost zeroing and a final scan of every slot per worker:
     * worth it against hashing only when the slots are few next to the rows. */
    if (groups > TSR_AGG_PERFECT_SMALL && groups > nrows / 2)
        return;
    size_t width = sizeof(int64_t); /* ROWS, if it must be added */
    for (size_t s = 0; s < ap->nscols; s++) {
        width += perfect_state_width(ap->scols[s].kind);
        if (ap->scols[s].kind == TSR_AGG_S_ROWS)
            pf.rows_scol = (long)s;
    }
    if (groups * width * (nworkers ? nworkers : 1) > TSR_AGG_PERFECT_MAX_BYTES)
        return;
    if (pf.rows_scol < 0) {
        if (ap->nscols >= ap->scols_cap)
            return;
        pf.rows_scol = (long)ap->nscols;
        ap->scols[ap->nscols].kind = TSR_AGG_S_ROWS;
        ap->scols[ap->nscols].arg = 0;
        ap->scols[ap->nscols].distinct = false;
        ap->nscols++;
    }
    pf.ngroups = (size_t)groups;
    pf.on = true;
    ap->perfect = pf;
}

/* The min/max pass over INT64 key columns that have no statistics. */
typedef struct perfect_scan {
    const tsr_table_t *in;
    size_t ncols;
    const size_t *cols; /* ncols input columns */
    int64_t *lo, *hi;   /* nbatches x ncols */
} perfect_scan_t;

static void perfect_scan_task(void *arg, size_t b, unsigned worker)
{
    (void)worker;
    perfect_scan_t *ps = arg;
    const tsr_batch_t *bt = &ps->in->batches[b];
    for (size_t c = 0; c < ps->ncols; c++) {
        const tsr_vector_t *v = &bt->cols[ps->cols[c]];
        const int64_t *x = v->data;
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        if (!v->validity) {
            for (size_t i = 0; i < bt->nrows; i++) {
                mn = x[i] < mn ? x[i] : mn;
                mx = x[i] > mx ? x[i] : mx;
            }
        } else {
            for (size_t i = 0; i < bt->nrows; i++) {
                if (!tsr_bit_get(v->validity, i))
                    continue;
                mn = x[i] < mn ? x[i] : mn;
                mx = x[i] > mx ? x[i] : mx;
            }
        }
        ps->lo[b * ps->ncols + c] = mn;
        ps->hi[b * ps->ncols + c] = mx;
    }
}

void tsr_agg_perfect_plan(tsr_agg_plan_t *ap, const tsr_exec_ctx_t *ctx, const tsr_table_t *in,
                          unsigned nworkers)
{
    memset(&ap->perfect, 0, sizeof(ap->perfect));
    ap->perfect.rows_scol = -1;
    if (ap->nkeys == 0 || ap->nkeys > TSR_AGG_PERFECT_MAXKEYS || ap->ndsets > 0 || in->nrows == 0)
        return;
    int64_t lo[TSR_AGG_PERFECT_MAXKEYS], hi[TSR_AGG_PERFECT_MAXKEYS];
    size_t scan_cols[TSR_AGG_PERFECT_MAXKEYS], scan_key[TSR_AGG_PERFECT_MAXKEYS], nscan = 0;
    for (size_t k = 0; k < ap->nkeys; k++) {
        const tsr_agg_key_t *key = &ap->keys[k];
        if (key->type == TSR_TYPE_BOOL) {
            lo[k] = 0;
            hi[k] = 1;
        } else if (key->type == TSR_TYPE_VARCHAR && key->is_col && key->dict) {
            lo[k] = 0;
            hi[k] = (int64_t)tsr_dict_size(key->dict) - 1;
        } else if (key->type == TSR_TYPE_INT64 && key->is_col) {
            const tsr_colstats_t *st = tsr_table_stats(in, key->col);
            if (st) {
                lo[k] = st->min;
                hi[k] = st->max;
            } else {
                scan_cols[nscan] = key->col;
                scan_key[nscan++] = k;
            }
        } else {
            return; /* DOUBLE, computed INT64, always-NULL: hash */
        }
    }
    if (nscan > 0) {
        perfect_scan_t ps = {.in = in, .ncols = nscan, .cols = scan_cols};
        size_t cells = in->nbatches * nscan;
        ps.lo = tsr_mem_alloc(ap->mem, cells * sizeof(int64_t));
        ps.hi = tsr_mem_alloc(ap->mem, cells * sizeof(int64_t));
        if (ps.lo && ps.hi) {
            tsr_exec_parallel(ctx, in->nbatches, perfect_scan_task, &ps);
            for (size_t c = 0; c < nscan; c++) {
                int64_t mn = INT64_MAX, mx = INT64_MIN;
                for (size_t b = 0; b < in->nbatches; b++) {
                    mn = ps.lo[b * nscan + c] < mn ? ps.lo[b * nscan + c] : mn;
                    mx = ps.hi[b * nscan + c] > mx ? ps.hi[b * nscan + c] : mx;
                }
                lo[scan_key[c]] = mn; /* mn > mx: no non-NULL value */
                hi[scan_key[c]] = mx;
            }
        }
        bool ok = ps.lo && ps.hi;
        tsr_mem_free(ap->mem, ps.lo);
        tsr_mem_free(ap->mem, ps.hi);
        if (!ok)
            return;
    }
    tsr_agg_perfect_choose(ap, lo, hi, in->nrows, nworkers);
}

/* ---- group ids --------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void
perfect_key(uint32_t *restrict gids, const uint64_t *restrict v, const uint64_t *restrict valid,
            const uint32_t *restrict sel, size_t n, uint64_t kmin, uint32_t stride,
            const bool first, const bool has_sel, const bool has_valid)
{
    for (size_t j = 0; j < n; j++) {
        size_t i = has_sel ? sel[j] : j;
        uint32_t slot = (uint32_t)(v[i] - kmin + 1);
        if (has_valid)
            slot &= -(uint32_t)((valid[i >> 6] >> (i & 63)) & 1u); /* NULL: slot 0 */
        uint32_t g = slot * stride;
        gids[j] = first ? g : gids[j] + g;
    }
}

void tsr_agg_perfect_gids(const tsr_agg_perfect_t *pf, size_t nkeys, const uint64_t *const *kptr,
                          const uint64_t *const *kvalid, const uint32_t *sel, size_t n,
                          uint32_t *gids)
{
    for (size_t k = 0; k < nkeys; k++) {
        const uint64_t *v = kptr[k], *valid = kvalid ? kvalid[k] : NULL;
        uint64_t kmin = pf->kmin[k];
        uint32_t stride = (uint32_t)pf->stride[k];
        bool first = k == 0;
        /* the combinations as compile-time constants: branch-free loops */
        if (first) {
            if (sel)
                valid ? perfect_key(gids, v, valid, sel, n, kmin, stride, true, true, true)
                      : perfect_key(gids, v, valid, sel, n, kmin, stride, true, true, false);
            else
                valid ? perfect_key(gids, v, valid, sel, n, kmin, stride, true, false, true)
                      : perfect_key(gids, v, valid, sel, n, kmin, stride, true, false, false);
        } else {
            if (sel)
                valid ? perfect_key(gids, v, valid, sel, n, kmin, stride, false, true, true)
                      : perfect_key(gids, v, valid, sel, n, kmin, stride, false, true, false);
            else
                valid ? perfect_key(gids, v, valid, sel, n, kmin, stride, false, false, true)
                      : perfect_key(gids, v, valid, sel, n, kmin, stride, false, false, false);
        }
    }
}

/* ---- merge ------------------------------------------------------------------------- */

typedef struct perfect_fold {
    tsr_agg_run_t *r;
    long self;           /* the worker whose dense part collects the others */
    const uint32_t *ids; /* 0..ngroups-1 */
} perfect_fold_t;

/* Folds slot range [t * AGG_ROWS, +AGG_ROWS) of every other worker into self. */
static void perfect_fold_task(void *arg, size_t t, unsigned worker)
{
    (void)worker;
    perfect_fold_t *pf = arg;
    tsr_agg_run_t *r = pf->r;
    size_t g0 = t * AGG_ROWS, total = r->ap.perfect.ngroups;
    size_t n = total - g0 < AGG_ROWS ? total - g0 : AGG_ROWS;
    for (unsigned wi = 0; wi < r->nworkers; wi++) {
        if (!r->w[wi].ready || (long)wi == pf->self)
            continue;
        tsr_agg_merge(&r->w[pf->self].part, &r->w[wi].part, &r->ap, pf->ids + g0, pf->ids + g0, n);
    }
}

tsr_status_t tsr_agg_perfect_merge(tsr_agg_run_t *r, tsr_error_t *err)
{
    const tsr_agg_plan_t *ap = &r->ap;
    const tsr_agg_perfect_t *pf = &ap->perfect;
    tsr_mem_t *mem = ap->mem;
    size_t G = pf->ngroups, nkeys = ap->nkeys;
    r->nparts = 1;
    r->pbits = 0;
    r->self = -1;
    r->parts = tsr_mem_calloc(mem, 1, sizeof(tsr_agg_part_t));
    if (!r->parts)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_agg_part_t *out = &r->parts[0];
    long self = -1;
    unsigned nready = 0;
    for (unsigned wi = 0; wi < r->nworkers; wi++) {
        if (r->w[wi].ready) {
            nready++;
            if (self < 0)
                self = (long)wi;
        }
    }
    uint32_t *ids = NULL, *occ = NULL, *gids = NULL;
    uint64_t *kbuf = NULL, *vbuf = NULL;
    size_t words = tsr_bitmap_words(AGG_ROWS);
    tsr_status_t rc = tsr_agg_part_init(out, ap, 1);
    if (rc != TSR_OK)
        return tsr_agg_fail(err, rc);
    if (self < 0)
        return TSR_OK; /* no batch ran: no groups */

    rc = TSR_ERR_NOMEM;
    ids = tsr_mem_alloc(mem, G * sizeof(uint32_t));
    occ = tsr_mem_alloc(mem, G * sizeof(uint32_t));
    gids = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint32_t));
    kbuf = tsr_mem_alloc(mem, nkeys * AGG_ROWS * sizeof(uint64_t));
    vbuf = tsr_mem_alloc(mem, nkeys * words * sizeof(uint64_t));
    if (!ids || !occ || !gids || !kbuf || !vbuf)
        goto cleanup;
    for (size_t g = 0; g < G; g++)
        ids[g] = (uint32_t)g;
    if (nready > 1) {
        perfect_fold_t fold = {.r = r, .self = self, .ids = ids};
        tsr_exec_parallel(r->ctx, (G + AGG_ROWS - 1) / AGG_ROWS, perfect_fold_task, &fold);
    }
    const tsr_agg_part_t *dense = &r->w[self].part;
    const int64_t *rows = dense->st[pf->rows_scol];
    size_t nocc = 0;
    for (size_t g = 0; g < G; g++) {
        occ[nocc] = (uint32_t)g;
        nocc += rows[g] != 0;
    }
    /* the groups that exist, in slot order, into an ordinary final part */
    const uint64_t *kptr[TSR_AGG_PERFECT_MAXKEYS];
    const uint64_t *vptr[TSR_AGG_PERFECT_MAXKEYS];
    for (size_t k = 0; k < nkeys; k++) {
        kptr[k] = kbuf + k * AGG_ROWS;
        vptr[k] = vbuf + k * words;
    }
    for (size_t o = 0; o < nocc; o += AGG_ROWS) {
        size_t c = nocc - o < AGG_ROWS ? nocc - o : AGG_ROWS;
        for (size_t k = 0; k < nkeys; k++) {
            uint64_t *kv = kbuf + k * AGG_ROWS, *valid = vbuf + k * words;
            memset(valid, 0, words * sizeof(uint64_t));
            for (size_t j = 0; j < c; j++) {
                uint64_t slot = (occ[o + j] / pf->stride[k]) % pf->slots[k];
                kv[j] = slot ? pf->kmin[k] + slot - 1 : 0;
                tsr_bit_set(valid, j, slot != 0);
            }
        }
        tsr_ht_rows_t hr = {.n = c, .keys = kptr, .validity = vptr};
        if ((rc = tsr_ht_find_or_insert(&out->ht, &hr, gids)) != TSR_OK ||
            (rc = tsr_agg_part_reserve(out, ap)) != TSR_OK)
            goto cleanup;
        tsr_agg_merge(out, dense, ap, gids, occ + o, c);
    }
    rc = TSR_OK;

cleanup:
    tsr_mem_free(mem, ids);
    tsr_mem_free(mem, occ);
    tsr_mem_free(mem, gids);
    tsr_mem_free(mem, kbuf);
    tsr_mem_free(mem, vbuf);
    return rc == TSR_OK ? TSR_OK : tsr_agg_fail(err, rc);
}
