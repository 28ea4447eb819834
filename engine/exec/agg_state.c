/*
 * agg_state.c - aggregate state columns of hash aggregation: growth, batch
 * updates, merging partials, DISTINCT feeding and output (see agg_internal.h
 * for the state kinds and their semantics).
 *
 * The update loop is written once (agg_upd) with the kind and the presence
 * of a selection vector and of NULLs as compile-time constants; a dispatcher
 * instantiates each combination, so the loop a batch runs is a straight
 * `state[gid[j]] op= value[i]` with no call or switch per row.
 */
#include <math.h>
#include <string.h>

#include "exec/agg_internal.h"

#define AGG_INLINE static inline __attribute__((always_inline))

static size_t agg_state_width(tsr_agg_skind_t kind)
{
    switch (kind) {
    case TSR_AGG_S_SUM_I:
        return sizeof(tsr_agg_i128_t);
    case TSR_AGG_S_SUM_D:
    case TSR_AGG_S_MIN_D:
    case TSR_AGG_S_MAX_D:
        return sizeof(double);
    default:
        return sizeof(int64_t);
    }
}

/* Sets states [from, to) of column kind to the empty state. */
static void agg_state_clear(void *st, tsr_agg_skind_t kind, size_t from, size_t to)
{
    switch (kind) {
    case TSR_AGG_S_ROWS:
    case TSR_AGG_S_NN:
    case TSR_AGG_S_SUM_I:
    case TSR_AGG_S_SUM_D:
        memset((char *)st + from * agg_state_width(kind), 0, (to - from) * agg_state_width(kind));
        break;
    case TSR_AGG_S_MIN_I:
        for (size_t g = from; g < to; g++)
            ((int64_t *)st)[g] = INT64_MAX;
        break;
    case TSR_AGG_S_MAX_I:
        for (size_t g = from; g < to; g++)
            ((int64_t *)st)[g] = INT64_MIN;
        break;
    case TSR_AGG_S_MIN_D:
        for (size_t g = from; g < to; g++)
            ((double *)st)[g] = NAN;
        break;
    case TSR_AGG_S_MAX_D:
        for (size_t g = from; g < to; g++)
            ((double *)st)[g] = -INFINITY;
        break;
    }
}

tsr_status_t tsr_agg_part_init(tsr_agg_part_t *part, const tsr_agg_plan_t *ap,
                               size_t expected_groups)
{
    memset(part, 0, sizeof(*part));
    tsr_status_t rc = tsr_ht_init(&part->ht, ap->mem, ap->nkeys, ap->code_hashes, expected_groups);
    if (rc != TSR_OK)
        return rc;
    part->st = tsr_mem_calloc(ap->mem, ap->nscols ? ap->nscols : 1, sizeof(void *));
    part->dsets = tsr_mem_calloc(ap->mem, ap->ndsets ? ap->ndsets : 1, sizeof(tsr_ht_t));
    if (!part->st || !part->dsets)
        goto err_fini;
    for (size_t d = 0; d < ap->ndsets; d++)
        if ((rc = tsr_ht_init(&part->dsets[d], ap->mem, 2, NULL, 0)) != TSR_OK)
            goto err_fini;
    return TSR_OK;

err_fini:
    tsr_agg_part_fini(part, ap);
    return TSR_ERR_NOMEM;
}

void tsr_agg_part_fini(tsr_agg_part_t *part, const tsr_agg_plan_t *ap)
{
    tsr_ht_fini(&part->ht);
    for (size_t s = 0; part->st && s < ap->nscols; s++)
        tsr_mem_free(ap->mem, part->st[s]);
    tsr_mem_free(ap->mem, part->st);
    for (size_t d = 0; part->dsets && d < ap->ndsets; d++)
        tsr_ht_fini(&part->dsets[d]);
    tsr_mem_free(ap->mem, part->dsets);
    memset(part, 0, sizeof(*part));
}

tsr_status_t tsr_agg_part_reserve(tsr_agg_part_t *part, const tsr_agg_plan_t *ap)
{
    return tsr_agg_part_reserve_n(part, ap, part->ht.ngroups);
}

tsr_status_t tsr_agg_part_reserve_n(tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t need)
{
    if (need <= part->cap)
        return TSR_OK;
    size_t cap = part->cap ? part->cap : 64;
    while (cap < need)
        cap *= 2;
    /* Each column is replaced as soon as its bigger copy exists; part->cap
     * moves only when all have grown, so a failure leaves every column with
     * at least the old capacity, properly initialised. */
    for (size_t s = 0; s < ap->nscols; s++) {
        tsr_agg_skind_t kind = ap->scols[s].kind;
        void *st = tsr_mem_realloc(ap->mem, part->st[s], cap * agg_state_width(kind));
        if (!st)
            return TSR_ERR_NOMEM;
        part->st[s] = st;
        agg_state_clear(st, kind, part->cap, cap);
    }
    part->cap = cap;
    return TSR_OK;
}

/* ---- batch updates --------------------------------------------------------------- */

AGG_INLINE void agg_upd(void *restrict st, const uint32_t *restrict gids, size_t n,
                        const uint32_t *restrict sel, const void *restrict vals,
                        const uint64_t *restrict valid, const int kind, const bool has_sel,
                        const bool has_valid)
{
    int64_t *restrict si = st;
    double *restrict sd = st;
    tsr_agg_i128_t *restrict s128 = st;
    const int64_t *restrict vi = vals;
    const double *restrict vd = vals;
    for (size_t j = 0; j < n; j++) {
        size_t i = has_sel ? sel[j] : j;
        bool ok = !has_valid || tsr_bit_get(valid, i);
        uint32_t g = gids[j];
        switch (kind) {
        case TSR_AGG_S_ROWS:
            si[g] += 1;
            break;
        case TSR_AGG_S_NN:
            si[g] += ok;
            break;
        case TSR_AGG_S_SUM_I:
            /* a mask, not a branch: NULLs are scattered, mispredicts cost more */
            s128[g] += vi[i] & -(int64_t)ok;
            break;
        case TSR_AGG_S_SUM_D: {
            uint64_t bits;
            memcpy(&bits, &vd[i], sizeof(bits));
            bits &= -(uint64_t)ok; /* +0.0 under NULL */
            double x;
            memcpy(&x, &bits, sizeof(x));
            sd[g] += x;
            break;
        }
        case TSR_AGG_S_MIN_I: {
            int64_t x = ok ? vi[i] : INT64_MAX;
            si[g] = x < si[g] ? x : si[g];
            break;
        }
        case TSR_AGG_S_MAX_I: {
            int64_t x = ok ? vi[i] : INT64_MIN;
            si[g] = x > si[g] ? x : si[g];
            break;
        }
        case TSR_AGG_S_MIN_D: {
            double x = ok ? vd[i] : NAN, m = sd[g];
            sd[g] = (x < m || m != m) ? x : m; /* NaN is the largest value */
            break;
        }
        case TSR_AGG_S_MAX_D: {
            double x = ok ? vd[i] : -INFINITY, m = sd[g];
            sd[g] = (x > m || x != x) ? x : m;
            break;
        }
        }
    }
}

AGG_INLINE void agg_upd_kind(void *st, const uint32_t *gids, size_t n, const uint32_t *sel,
                             const void *vals, const uint64_t *valid, const int kind)
{
    if (sel) {
        if (valid)
            agg_upd(st, gids, n, sel, vals, valid, kind, true, true);
        else
            agg_upd(st, gids, n, sel, vals, valid, kind, true, false);
    } else {
        if (valid)
            agg_upd(st, gids, n, sel, vals, valid, kind, false, true);
        else
            agg_upd(st, gids, n, sel, vals, valid, kind, false, false);
    }
}

void tsr_agg_update(tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t s, const uint32_t *gids,
                    size_t n, const uint32_t *sel, const void *vals, const uint64_t *valid)
{
    void *st = part->st[s];
    switch (ap->scols[s].kind) {
    case TSR_AGG_S_ROWS:
        agg_upd_kind(st, gids, n, sel, vals, NULL, TSR_AGG_S_ROWS);
        break;
    case TSR_AGG_S_NN:
        if (valid)
            agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_NN);
        else
            agg_upd_kind(st, gids, n, sel, vals, NULL, TSR_AGG_S_ROWS);
        break;
    case TSR_AGG_S_SUM_I:
        agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_SUM_I);
        break;
    case TSR_AGG_S_SUM_D:
        agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_SUM_D);
        break;
    case TSR_AGG_S_MIN_I:
        agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_MIN_I);
        break;
    case TSR_AGG_S_MAX_I:
        agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_MAX_I);
        break;
    case TSR_AGG_S_MIN_D:
        agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_MIN_D);
        break;
    case TSR_AGG_S_MAX_D:
        agg_upd_kind(st, gids, n, sel, vals, valid, TSR_AGG_S_MAX_D);
        break;
    }
}

/* ---- merging partials ---------------------------------------------------------------- */

void tsr_agg_merge(tsr_agg_part_t *dst, const tsr_agg_part_t *src, const tsr_agg_plan_t *ap,
                   const uint32_t *dst_gids, const uint32_t *sel, size_t n)
{
    for (size_t s = 0; s < ap->nscols; s++) {
        if (ap->scols[s].distinct)
            continue;
        /* Folding a partial is an update whose values are the partial's
         * states; the count-like kinds add instead of counting. */
        switch (ap->scols[s].kind) {
        case TSR_AGG_S_ROWS:
        case TSR_AGG_S_NN: {
            int64_t *d = dst->st[s];
            const int64_t *v = src->st[s];
            for (size_t j = 0; j < n; j++)
                d[dst_gids[j]] += v[sel ? sel[j] : j];
            break;
        }
        case TSR_AGG_S_SUM_I: {
            tsr_agg_i128_t *d = dst->st[s];
            const tsr_agg_i128_t *v = src->st[s];
            for (size_t j = 0; j < n; j++)
                d[dst_gids[j]] += v[sel ? sel[j] : j];
            break;
        }
        default:
            agg_upd_kind(dst->st[s], dst_gids, n, sel, src->st[s], NULL, ap->scols[s].kind);
            break;
        }
    }
}

void tsr_agg_feed_distinct(tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t d,
                           const uint32_t *gids, const uint64_t *vals, size_t n)
{
    size_t arg = ap->dset_arg[d];
    for (size_t s = 0; s < ap->nscols; s++) {
        const tsr_agg_scol_t *sc = &ap->scols[s];
        if (!sc->distinct || sc->arg != arg)
            continue;
        if (sc->kind == TSR_AGG_S_NN) {
            agg_upd_kind(part->st[s], gids, n, NULL, NULL, NULL, TSR_AGG_S_ROWS);
        } else if (sc->kind == TSR_AGG_S_SUM_I) {
            /* normalised INT64/BOOL values are the integers' own bits */
            agg_upd_kind(part->st[s], gids, n, NULL, vals, NULL, TSR_AGG_S_SUM_I);
        } else if (sc->kind == TSR_AGG_S_SUM_D) {
            double *st = part->st[s];
            for (size_t j = 0; j < n; j++) {
                double x;
                memcpy(&x, &vals[j], sizeof(x));
                st[gids[j]] += x;
            }
        }
    }
}

/* ---- output ---------------------------------------------------------------------- */

static void agg_emit_key(const tsr_ht_t *ht, size_t k, tsr_type_t type, size_t g0, size_t n,
                         tsr_vector_t *v, size_t at)
{
    const uint64_t *keys = ht->gkeys[k] + g0;
    for (size_t r = 0; r < n; r++)
        tsr_bit_set(v->validity, at + r, tsr_bit_get(ht->gvalid[k], g0 + r));
    switch (type) {
    case TSR_TYPE_INT64:
    case TSR_TYPE_DOUBLE: /* normalised bits are the double's own bits */
        memcpy((uint64_t *)v->data + at, keys, n * sizeof(uint64_t));
        break;
    case TSR_TYPE_VARCHAR:
        for (size_t r = 0; r < n; r++)
            ((uint32_t *)v->data)[at + r] = (uint32_t)keys[r];
        break;
    default:
        for (size_t r = 0; r < n; r++)
            ((uint8_t *)v->data)[at + r] = (uint8_t)keys[r];
        break;
    }
}

tsr_status_t tsr_agg_emit(const tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t g0, size_t n,
                          tsr_vector_t *cols, size_t at, tsr_error_t *err)
{
    for (size_t k = 0; k < ap->nkeys; k++)
        agg_emit_key(&part->ht, k, ap->keys[k].type, g0, n, &cols[k], at);
    for (size_t a = 0; a < ap->naggs; a++) {
        const tsr_agg_out_t *o = &ap->outs[a];
        tsr_vector_t *v = &cols[ap->nkeys + a];
        const int64_t *cnt = (const int64_t *)part->st[o->cnt] + g0;
        if (o->cstr) { /* code 0 of its one-entry dictionary where a row was */
            for (size_t r = 0; r < n; r++) {
                tsr_bit_set(v->validity, at + r, cnt[r] != 0);
                ((uint32_t *)v->data)[at + r] = 0;
            }
            continue;
        }
        if (o->fn == TSR_AGG_COUNT || o->fn == TSR_AGG_COUNT_STAR) {
            memcpy((int64_t *)v->data + at, cnt, n * sizeof(int64_t));
            continue;
        }
        for (size_t r = 0; r < n; r++)
            tsr_bit_set(v->validity, at + r, cnt[r] != 0);
        const void *st = part->st[o->val];
        tsr_agg_skind_t kind = ap->scols[o->val].kind;
        const tsr_agg_arg_t *arg = &ap->args[o->arg];
        for (size_t r = 0; r < n; r++) {
            size_t g = g0 + r, row = at + r;
            if (cnt[r] == 0) {
                /* NULL: the value below is unspecified but initialised */
                memset((char *)v->data + row * tsr_type_width(o->type), 0, tsr_type_width(o->type));
                continue;
            }
            if (kind == TSR_AGG_S_SUM_I) {
                tsr_agg_i128_t sum = ((const tsr_agg_i128_t *)st)[g];
                if (o->fn == TSR_AGG_AVG) {
                    ((double *)v->data)[row] = (double)sum / (double)cnt[r];
                } else if (o->type == TSR_TYPE_DOUBLE) {
                    ((double *)v->data)[row] = (double)sum;
                } else {
                    if (sum > INT64_MAX || sum < INT64_MIN)
                        return tsr_error_set(err, TSR_ERR_OVERFLOW, "integer overflow in SUM");
                    ((int64_t *)v->data)[row] = (int64_t)sum;
                }
            } else if (kind == TSR_AGG_S_SUM_D) {
                double sum = ((const double *)st)[g];
                ((double *)v->data)[row] = o->fn == TSR_AGG_AVG ? sum / (double)cnt[r] : sum;
            } else if (kind == TSR_AGG_S_MIN_D || kind == TSR_AGG_S_MAX_D) {
                ((double *)v->data)[row] = ((const double *)st)[g];
            } else {
                int64_t x = ((const int64_t *)st)[g];
                switch (o->type) {
                case TSR_TYPE_VARCHAR:
                    ((uint32_t *)v->data)[row] = arg->rank_code[x];
                    break;
                case TSR_TYPE_BOOL:
                    ((uint8_t *)v->data)[row] = (uint8_t)x;
                    break;
                default:
                    ((int64_t *)v->data)[row] = x;
                    break;
                }
            }
        }
    }
    return TSR_OK;
}
