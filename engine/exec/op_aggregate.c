/*
 * op_aggregate.c - hash aggregation (tsr_op_aggregate): GROUP BY, aggregates,
 * SELECT DISTINCT (keys only), optionally fused with a pre-filter.
 *
 * Flow (morsel-driven, one input batch per task):
 *
 *   batch --prefilter--> sel --keys--> normalise --tsr_ht_find_or_insert--> gids
 *        --> for each state column: state[gids[j]] op= value[sel[j]]
 *        --> DISTINCT arguments: insert (gid, value) into the worker's pair set
 *
 * Each pool worker owns a tsr_agg_part_t (hash table + states), indexed by
 * the worker argument, so the hot loops take no locks. The partials are then
 * merged (agg_merge.c): sequentially into one worker's table when there are
 * few groups, else in parallel by hash partition; the output is built from the
 * merged partitions in batches of TSR_BATCH_ROWS, also in parallel.
 *
 * Perfect-hash aggregation (perfect_agg.h) replaces the hash table when the
 * keys' value ranges are small and known: group ids are computed from the keys,
 * the states are dense arrays, and tsr_agg_perfect_merge builds the final part.
 *
 * Keys and arguments that are COLUMN expressions are read straight from the
 * input vectors (INT64 keys are not even copied); other expressions go
 * through tsr_expr_eval. With a pre-filter the selection vector is used inside
 * every loop, so FILTER + AGGREGATE over a catalog table copies no rows.
 *
 * Output: key columns, then aggregates; group order unspecified. VARCHAR
 * outputs keep the input's dictionary (the output takes an intermediate input
 * as a dependency when that dictionary lives in it: tsr_exec_finish_output).
 */
#include <string.h>

#include "exec/agg_internal.h"
#include "exec/perfect_agg.h"

#define AGG_ROWS TSR_BATCH_ROWS
#define AGG_WORKER_GROUPS 1024 /* initial size of a worker's table */

tsr_status_t tsr_agg_fail(tsr_error_t *err, tsr_status_t rc)
{
    if (rc == TSR_ERR_UNSUPPORTED)
        return tsr_error_set(err, rc, "too many groups (more than %zu)", TSR_HT_MAX_GROUPS);
    if (rc == TSR_ERR_NOMEM)
        return tsr_error_set(err, rc, "out of memory");
    return tsr_error_set(err, rc, "aggregation failed");
}

/* ---- planning: keys, arguments and state columns ---------------------------------- */

/* The dictionary of VARCHAR column col, which every batch must share. */
static tsr_status_t agg_column_dict(const tsr_table_t *in, size_t col, const tsr_dict_t **out,
                                    tsr_error_t *err)
{
    const tsr_dict_t *d = in->nbatches ? in->batches[0].cols[col].dict : in->dicts[col];
    for (size_t b = 1; b < in->nbatches; b++)
        if (in->batches[b].cols[col].dict != d)
            return tsr_error_set(err, TSR_ERR_INTERNAL,
                                 "VARCHAR column %zu has batches with different dictionaries", col);
    if (in->nbatches && (!d || !tsr_dict_frozen(d)))
        return tsr_error_set(err, TSR_ERR_INTERNAL, "VARCHAR column %zu has no frozen dictionary",
                             col);
    *out = d;
    return TSR_OK;
}

/* Checks expression e (a key or argument) against the input. */
static tsr_status_t agg_check_expr(const tsr_table_t *in, const tsr_expr_t *e, const char *what,
                                   tsr_error_t *err)
{
    if (e->kind == TSR_EXPR_COLUMN) {
        if (e->column >= in->ncols || in->fields[e->column].type != e->type)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "%s column %zu does not match the input",
                                 what, e->column);
    } else if (e->type == TSR_TYPE_VARCHAR) {
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "a VARCHAR %s must be a column, not a computed value", what);
    }
    return TSR_OK;
}

static bool agg_same_expr(const tsr_expr_t *a, const tsr_expr_t *b)
{
    if (a == b)
        return true;
    return a->kind == TSR_EXPR_COLUMN && b->kind == TSR_EXPR_COLUMN && a->column == b->column &&
           a->type == b->type;
}

/* Index of the argument for expression e, adding it when new. */
static size_t agg_arg_index(tsr_agg_plan_t *ap, const tsr_table_t *in, const tsr_expr_t *e)
{
    for (size_t a = 0; a < ap->nargs; a++)
        if (agg_same_expr(ap->args[a].expr, e))
            return a;
    tsr_agg_arg_t *arg = &ap->args[ap->nargs];
    memset(arg, 0, sizeof(*arg));
    arg->expr = e;
    arg->type = e->type;
    arg->is_col = e->kind == TSR_EXPR_COLUMN;
    arg->col = e->column;
    arg->dset = -1;
    arg->may_null = true;
    if (arg->is_col) {
        arg->may_null = false;
        for (size_t b = 0; b < in->nbatches; b++)
            if (in->batches[b].cols[e->column].validity)
                arg->may_null = true;
    }
    return ap->nargs++;
}

/* Index of state column (kind, arg, distinct), adding it when new. A count
 * of an argument that is never NULL is the row count. */
static long agg_scol_index(tsr_agg_plan_t *ap, tsr_agg_skind_t kind, size_t arg, bool distinct)
{
    if (kind == TSR_AGG_S_NN && !distinct && !ap->args[arg].may_null)
        kind = TSR_AGG_S_ROWS;
    if (kind == TSR_AGG_S_ROWS) {
        arg = 0;
        distinct = false;
    }
    for (size_t s = 0; s < ap->nscols; s++)
        if (ap->scols[s].kind == kind && ap->scols[s].arg == arg &&
            ap->scols[s].distinct == distinct)
            return (long)s;
    ap->scols[ap->nscols].kind = kind;
    ap->scols[ap->nscols].arg = arg;
    ap->scols[ap->nscols].distinct = distinct;
    return (long)ap->nscols++;
}

static bool agg_numeric(tsr_type_t t)
{
    return t == TSR_TYPE_INT64 || t == TSR_TYPE_DOUBLE || t == TSR_TYPE_BOOL || t == TSR_TYPE_NULL;
}

/* Resolves aggregate a of the plan into states; checks its types. */
static tsr_status_t agg_plan_agg(tsr_agg_plan_t *ap, const tsr_plan_t *plan, const tsr_table_t *in,
                                 size_t a, tsr_error_t *err)
{
    const tsr_agg_t *agg = &plan->aggs[a];
    tsr_agg_out_t *o = &ap->outs[a];
    o->fn = agg->fn;
    o->type = plan->types[plan->nkeys + a];
    o->val = -1;
    if (agg->fn == TSR_AGG_COUNT_STAR) {
        if (o->type != TSR_TYPE_INT64)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "COUNT(*) must be BIGINT");
        o->cnt = agg_scol_index(ap, TSR_AGG_S_ROWS, 0, false);
        return TSR_OK;
    }
    if (!agg->arg)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "aggregate %zu has no argument", a);
    if ((agg->fn == TSR_AGG_MIN || agg->fn == TSR_AGG_MAX) && agg->arg->kind == TSR_EXPR_CONST &&
        agg->arg->type == TSR_TYPE_VARCHAR && !agg->arg->value.is_null) {
        if (o->type != TSR_TYPE_VARCHAR)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "aggregate %zu: bad result type", a);
        o->cstr = &agg->arg->value; /* the constant wherever a row was */
        o->cnt = agg_scol_index(ap, TSR_AGG_S_ROWS, 0, false);
        return TSR_OK;
    }
    tsr_status_t rc = agg_check_expr(in, agg->arg, "aggregate argument", err);
    if (rc != TSR_OK)
        return rc;
    size_t arg = agg_arg_index(ap, in, agg->arg);
    tsr_agg_arg_t *ar = &ap->args[arg];
    tsr_type_t t = ar->type;
    bool distinct = agg->distinct && agg->fn != TSR_AGG_MIN && agg->fn != TSR_AGG_MAX;
    o->arg = arg;
    o->cnt = agg_scol_index(ap, TSR_AGG_S_NN, arg, distinct);
    bool ok = true;
    switch (agg->fn) {
    case TSR_AGG_COUNT:
        ok = o->type == TSR_TYPE_INT64;
        break;
    case TSR_AGG_SUM:
    case TSR_AGG_AVG:
        /* SUM is DOUBLE over DOUBLE, else BIGINT (BOOL counts as 0/1); an
         * always-NULL argument may be typed anything numeric */
        if (agg->fn == TSR_AGG_AVG)
            ok = agg_numeric(t) && o->type == TSR_TYPE_DOUBLE;
        else if (t == TSR_TYPE_NULL)
            ok = agg_numeric(o->type) && o->type != TSR_TYPE_BOOL;
        else
            ok = agg_numeric(t) &&
                 o->type == (t == TSR_TYPE_DOUBLE ? TSR_TYPE_DOUBLE : TSR_TYPE_INT64);
        o->val = agg_scol_index(ap, t == TSR_TYPE_DOUBLE ? TSR_AGG_S_SUM_D : TSR_AGG_S_SUM_I, arg,
                                distinct);
        break;
    case TSR_AGG_MIN:
    case TSR_AGG_MAX: {
        bool is_min = agg->fn == TSR_AGG_MIN;
        ok = o->type == t;
        if (t == TSR_TYPE_DOUBLE)
            o->val = agg_scol_index(ap, is_min ? TSR_AGG_S_MIN_D : TSR_AGG_S_MAX_D, arg, false);
        else
            o->val = agg_scol_index(ap, is_min ? TSR_AGG_S_MIN_I : TSR_AGG_S_MAX_I, arg, false);
        if (t == TSR_TYPE_VARCHAR)
            ar->need_rank = true;
        break;
    }
    default:
        return tsr_error_set(err, TSR_ERR_INTERNAL, "unknown aggregate function %d", (int)agg->fn);
    }
    if (!ok)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "aggregate %zu: bad argument or result type",
                             a);
    if (distinct) {
        if (ar->dset < 0)
            ar->dset = (long)ap->ndsets++;
    } else if (o->val >= 0) {
        ar->need_vals = true;
    }
    return TSR_OK;
}

/* Marks the input columns e reads. */
static void agg_mark_columns(const tsr_expr_t *e, bool *used, size_t ncols)
{
    if (e->kind == TSR_EXPR_COLUMN) {
        if (e->column < ncols)
            used[e->column] = true;
        return;
    }
    for (size_t k = 0; k < e->nargs; k++)
        agg_mark_columns(e->args[k], used, ncols);
}

static void agg_plan_free(tsr_agg_plan_t *ap)
{
    for (size_t a = 0; ap->args && a < ap->nargs; a++)
        tsr_mem_free(ap->mem, ap->args[a].rank_code);
    tsr_mem_free(ap->mem, ap->keys);
    tsr_mem_free(ap->mem, (void *)ap->code_hashes);
    tsr_mem_free(ap->mem, ap->args);
    tsr_mem_free(ap->mem, ap->scols);
    tsr_mem_free(ap->mem, ap->outs);
    tsr_mem_free(ap->mem, ap->dset_arg);
    tsr_mem_free(ap->mem, ap->used);
    memset(ap, 0, sizeof(*ap));
}

static tsr_status_t agg_plan_build(tsr_mem_t *mem, const tsr_plan_t *plan, const tsr_table_t *in,
                                   tsr_agg_plan_t *ap, tsr_error_t *err)
{
    memset(ap, 0, sizeof(*ap));
    ap->mem = mem;
    if (plan->ncols != plan->nkeys + plan->naggs)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "aggregate has %zu columns for %zu + %zu",
                             plan->ncols, plan->nkeys, plan->naggs);
    for (size_t b = 0; b < in->nbatches; b++)
        if (in->batches[b].nrows > AGG_ROWS)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "input batch of %zu rows",
                                 in->batches[b].nrows);
    size_t n = plan->naggs ? plan->naggs : 1;
    ap->keys = tsr_mem_calloc(mem, plan->nkeys ? plan->nkeys : 1, sizeof(*ap->keys));
    ap->code_hashes = tsr_mem_calloc(mem, plan->nkeys ? plan->nkeys : 1, sizeof(uint64_t *));
    ap->args = tsr_mem_calloc(mem, n, sizeof(*ap->args));
    ap->scols_cap = 2 * n + 1; /* two per aggregate, and ROWS for the perfect path */
    ap->scols = tsr_mem_calloc(mem, ap->scols_cap, sizeof(*ap->scols));
    ap->outs = tsr_mem_calloc(mem, n, sizeof(*ap->outs));
    ap->dset_arg = tsr_mem_calloc(mem, n, sizeof(size_t));
    ap->used = tsr_mem_calloc(mem, in->ncols ? in->ncols : 1, sizeof(bool));
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!ap->keys || !ap->code_hashes || !ap->args || !ap->scols || !ap->outs || !ap->dset_arg ||
        !ap->used) {
        tsr_error_set(err, rc, "out of memory");
        goto err_free;
    }
    ap->nkeys = plan->nkeys;
    for (size_t k = 0; k < plan->nkeys; k++) {
        const tsr_expr_t *e = plan->keys[k];
        tsr_agg_key_t *key = &ap->keys[k];
        if ((rc = agg_check_expr(in, e, "grouping key", err)) != TSR_OK)
            goto err_free;
        if (plan->types[k] != e->type) {
            rc = tsr_error_set(err, TSR_ERR_INTERNAL, "grouping key %zu has the wrong type", k);
            goto err_free;
        }
        key->expr = e;
        key->type = e->type;
        key->is_col = e->kind == TSR_EXPR_COLUMN;
        key->col = e->column;
        ap->computed |= !key->is_col;
        agg_mark_columns(e, ap->used, in->ncols);
        if (e->type == TSR_TYPE_VARCHAR) {
            if ((rc = agg_column_dict(in, e->column, &key->dict, err)) != TSR_OK)
                goto err_free;
            ap->code_hashes[k] = key->dict ? tsr_dict_hashes(key->dict) : NULL;
        }
    }
    for (size_t a = 0; a < plan->naggs; a++)
        if ((rc = agg_plan_agg(ap, plan, in, a, err)) != TSR_OK)
            goto err_free;
    ap->naggs = plan->naggs;
    for (size_t a = 0; a < ap->nargs; a++) {
        tsr_agg_arg_t *ar = &ap->args[a];
        ap->computed |= !ar->is_col;
        agg_mark_columns(ar->expr, ap->used, in->ncols);
        if (ar->dset >= 0)
            ap->dset_arg[ar->dset] = a;
        if (ar->type == TSR_TYPE_VARCHAR) {
            if ((rc = agg_column_dict(in, ar->col, &ar->dict, err)) != TSR_OK)
                goto err_free;
            ar->ranks = ar->dict ? tsr_dict_ranks(ar->dict) : NULL;
        }
    }
    return TSR_OK;

err_free:
    agg_plan_free(ap);
    return rc;
}

/* ---- per-batch work ----------------------------------------------------------------- */

static tsr_status_t agg_worker_setup(tsr_agg_run_t *r, tsr_agg_worker_t *w)
{
    const tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    size_t expect = ap->nkeys == 0 ? 1 : AGG_WORKER_GROUPS;
    if (r->in->nrows < expect)
        expect = r->in->nrows;
    if (ap->perfect.on)
        expect = 1; /* the table stays unused: states are indexed directly */
    tsr_status_t rc = tsr_agg_part_init(&w->part, ap, expect);
    if (rc != TSR_OK)
        return rc;
    w->ready = true; /* from here on the part is freed with the worker */
    if (ap->perfect.on &&
        (rc = tsr_agg_part_reserve_n(&w->part, ap, ap->perfect.ngroups)) != TSR_OK)
        return rc;
    w->sel = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint32_t));
    w->gids = tsr_mem_calloc(mem, AGG_ROWS, sizeof(uint32_t)); /* all 0: no keys */
    w->kbuf = tsr_mem_alloc(mem, (ap->nkeys ? ap->nkeys : 1) * AGG_ROWS * sizeof(uint64_t));
    w->abuf = tsr_mem_alloc(mem, (ap->nargs ? ap->nargs : 1) * AGG_ROWS * sizeof(int64_t));
    w->pbuf = tsr_mem_alloc(mem, 3 * AGG_ROWS * sizeof(uint64_t));
    w->pgids = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint32_t));
    w->kvec = tsr_mem_calloc(mem, ap->nkeys ? ap->nkeys : 1, sizeof(tsr_vector_t));
    w->avec = tsr_mem_calloc(mem, ap->nargs ? ap->nargs : 1, sizeof(tsr_vector_t));
    w->kptr = tsr_mem_calloc(mem, ap->nkeys ? ap->nkeys : 1, sizeof(*w->kptr));
    w->kvalid = tsr_mem_calloc(mem, ap->nkeys ? ap->nkeys : 1, sizeof(*w->kvalid));
    w->aptr = tsr_mem_calloc(mem, ap->nargs ? ap->nargs : 1, sizeof(*w->aptr));
    if (!w->sel || !w->gids || !w->kbuf || !w->abuf || !w->pbuf || !w->pgids || !w->kvec ||
        !w->avec || !w->kptr || !w->kvalid || !w->aptr)
        return TSR_ERR_NOMEM;
    if (r->prefilter && ap->computed &&
        !(w->ccols = tsr_mem_calloc(mem, r->in->ncols ? r->in->ncols : 1, sizeof(tsr_vector_t))))
        return TSR_ERR_NOMEM;
    return TSR_OK;
}

static void agg_worker_free(const tsr_agg_run_t *r, tsr_agg_worker_t *w)
{
    const tsr_agg_plan_t *ap = &r->ap;
    if (w->ccols)
        tsr_exec_free_cols(ap->mem, w->ccols, r->in->ncols);
    if (w->ready)
        tsr_agg_part_fini(&w->part, ap);
    tsr_mem_free(ap->mem, w->sel);
    tsr_mem_free(ap->mem, w->gids);
    tsr_mem_free(ap->mem, w->kbuf);
    tsr_mem_free(ap->mem, w->abuf);
    tsr_mem_free(ap->mem, w->pbuf);
    tsr_mem_free(ap->mem, w->pgids);
    tsr_mem_free(ap->mem, w->kvec);
    tsr_mem_free(ap->mem, w->avec);
    tsr_mem_free(ap->mem, (void *)w->kptr);
    tsr_mem_free(ap->mem, (void *)w->kvalid);
    tsr_mem_free(ap->mem, (void *)w->aptr);
    memset(w, 0, sizeof(*w));
}

/* The vector of expression e over batch b: the column itself, or evaluated. */
static tsr_status_t agg_vector(tsr_mem_t *mem, const tsr_expr_t *e, const tsr_batch_t *b,
                               tsr_vector_t *out, tsr_error_t *err)
{
    if (e->kind == TSR_EXPR_COLUMN) {
        *out = tsr_vector_borrow(&b->cols[e->column]);
        return TSR_OK;
    }
    return tsr_expr_eval(mem, e, b, out, err);
}

/* The values argument a's state columns read: int64 or double, indexed by row. */
static const void *agg_arg_values(const tsr_agg_arg_t *ar, const tsr_vector_t *v,
                                  const uint32_t *sel, size_t n, int64_t *buf)
{
    switch (ar->type) {
    case TSR_TYPE_INT64:
    case TSR_TYPE_DOUBLE:
        return v->data;
    case TSR_TYPE_VARCHAR: {
        if (!ar->need_rank)
            return NULL;
        const uint32_t *codes = v->data;
        for (size_t j = 0; j < n; j++) {
            size_t i = sel ? sel[j] : j;
            buf[i] = tsr_bit_get(v->validity, i) ? ar->ranks[codes[i]] : 0;
        }
        return buf;
    }
    default: { /* BOOL, and the always-NULL type */
        const uint8_t *b = v->data;
        for (size_t j = 0; j < n; j++) {
            size_t i = sel ? sel[j] : j;
            buf[i] = b[i] != 0;
        }
        return buf;
    }
    }
}

/* Inserts the (group, value) pairs of DISTINCT argument set d. */
static tsr_status_t agg_batch_distinct(tsr_agg_run_t *r, tsr_agg_worker_t *w, size_t d,
                                       const uint32_t *sel, size_t n)
{
    const tsr_agg_plan_t *ap = &r->ap;
    const tsr_vector_t *v = &w->avec[ap->dset_arg[d]];
    uint64_t *norm = w->pbuf, *pg = w->pbuf + AGG_ROWS, *pv = w->pbuf + 2 * AGG_ROWS;
    const uint64_t *vals = tsr_ht_normalize(v, sel, n, norm);
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        size_t i = sel ? sel[j] : j;
        pg[m] = w->gids[j];
        pv[m] = vals[i];
        m += tsr_bit_get(v->validity, i);
    }
    const uint64_t *keys[2] = {pg, pv};
    tsr_ht_rows_t rows = {.n = m, .keys = keys};
    return tsr_ht_find_or_insert(&w->part.dsets[d], &rows, w->pgids);
}

static tsr_status_t agg_batch(tsr_agg_run_t *r, tsr_agg_worker_t *w, const tsr_batch_t *b,
                              tsr_error_t *err)
{
    const tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    size_t n = b->nrows;
    const uint32_t *sel = NULL;
    tsr_status_t rc = TSR_OK;
    tsr_batch_t compact = {0};
    if (r->prefilter) {
        size_t nsel;
        if ((rc = tsr_expr_select(mem, r->prefilter, b, w->sel, &nsel, err)) != TSR_OK)
            return rc;
        if (nsel < n)
            sel = w->sel;
        n = nsel;
        if (n > 0 && sel && w->ccols) {
            /* Computed expressions must not run on rejected rows (they could
             * fail there, e.g. overflow): evaluate over a copy of the kept
             * rows of the columns they read instead. Plain columns would not
             * need it; this path is taken only when something is computed. */
            for (size_t c = 0; c < r->in->ncols; c++) {
                if (!ap->used[c])
                    continue;
                if (tsr_exec_gather_sel(mem, &b->cols[c], sel, n, &w->ccols[c]) != TSR_OK) {
                    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
                    goto out;
                }
            }
            compact.nrows = n;
            compact.cols = w->ccols;
            b = &compact;
            sel = NULL;
        }
    }
    if (n == 0)
        return TSR_OK;

    /* keys -> group ids */
    for (size_t k = 0; k < ap->nkeys; k++) {
        if ((rc = agg_vector(mem, ap->keys[k].expr, b, &w->kvec[k], err)) != TSR_OK)
            goto out;
        w->kptr[k] = tsr_ht_normalize(&w->kvec[k], sel, n, w->kbuf + k * AGG_ROWS);
        w->kvalid[k] = w->kvec[k].validity;
    }
    tsr_ht_rows_t rows = {.n = n, .sel = sel, .keys = w->kptr, .validity = w->kvalid};
    if (ap->perfect.on) {
        /* direct index: no hashing, states already span every slot */
        tsr_agg_perfect_gids(&ap->perfect, ap->nkeys, w->kptr, w->kvalid, sel, n, w->gids);
    } else if (ap->nkeys > 0 || w->part.ht.ngroups == 0) {
        /* without keys every row is group 0 (w->gids stays zeroed) */
        rows.n = ap->nkeys > 0 ? n : 1;
        if ((rc = tsr_ht_find_or_insert(&w->part.ht, &rows, w->gids)) != TSR_OK) {
            tsr_agg_fail(err, rc);
            goto out;
        }
    }
    if (!ap->perfect.on && (rc = tsr_agg_part_reserve(&w->part, ap)) != TSR_OK) {
        tsr_agg_fail(err, rc);
        goto out;
    }

    /* arguments -> states */
    const void **avals = w->aptr;
    for (size_t a = 0; a < ap->nargs; a++) {
        const tsr_agg_arg_t *ar = &ap->args[a];
        avals[a] = NULL;
        if (!ar->need_vals && ar->dset < 0 && !ar->may_null)
            continue; /* only counted, and never NULL: its count is ROWS */
        if ((rc = agg_vector(mem, ar->expr, b, &w->avec[a], err)) != TSR_OK)
            goto out;
        if (ar->need_vals)
            avals[a] = agg_arg_values(ar, &w->avec[a], sel, n, w->abuf + a * AGG_ROWS);
    }
    for (size_t s = 0; s < ap->nscols; s++) {
        const tsr_agg_scol_t *sc = &ap->scols[s];
        if (sc->distinct)
            continue;
        bool rows_only = sc->kind == TSR_AGG_S_ROWS;
        tsr_agg_update(&w->part, ap, s, w->gids, n, sel, rows_only ? NULL : avals[sc->arg],
                       rows_only ? NULL : w->avec[sc->arg].validity);
    }
    for (size_t d = 0; d < ap->ndsets; d++) {
        if ((rc = agg_batch_distinct(r, w, d, sel, n)) != TSR_OK) {
            tsr_agg_fail(err, rc);
            goto out;
        }
    }

out:
    for (size_t k = 0; k < ap->nkeys; k++)
        tsr_vector_release(mem, &w->kvec[k]);
    for (size_t a = 0; a < ap->nargs; a++)
        tsr_vector_release(mem, &w->avec[a]);
    for (size_t c = 0; w->ccols && c < r->in->ncols; c++)
        tsr_vector_release(mem, &w->ccols[c]);
    return rc;
}

static void agg_task(void *arg, size_t t, unsigned worker)
{
    tsr_agg_run_t *r = arg;
    if (tsr_exec_task_stop(r->ctx, &r->errs))
        return;
    tsr_agg_worker_t *w = &r->w[worker];
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = TSR_OK;
    if (!w->ready && (rc = agg_worker_setup(r, w)) != TSR_OK)
        tsr_agg_fail(&err, rc);
    if (rc == TSR_OK)
        rc = agg_batch(r, w, &r->in->batches[t], &err);
    if (rc != TSR_OK) {
        if (err.status == TSR_OK)
            tsr_error_set(&err, rc, "aggregation failed");
        tsr_exec_errslot_store(&r->errs, &err);
    }
}

/* ---- the operator -------------------------------------------------------------------- */

tsr_status_t tsr_op_aggregate(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                              const tsr_expr_t *prefilter, tsr_op_input_t in, tsr_table_t **out,
                              tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    tsr_agg_run_t r;
    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    r.prefilter = prefilter;
    r.in = in.table;
    r.self = -1;
    tsr_exec_errslot_init(&r.errs);
    tsr_table_t *t = NULL;
    tsr_status_t rc = agg_plan_build(mem, plan, in.table, &r.ap, err);
    if (rc != TSR_OK)
        return rc;
    r.nworkers = tsr_exec_nworkers(ctx);
    tsr_agg_perfect_plan(&r.ap, ctx, in.table, r.nworkers);
    r.w = tsr_mem_calloc(mem, r.nworkers, sizeof(*r.w));
    if (!r.w) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    tsr_exec_parallel(ctx, in.table->nbatches, agg_task, &r);
    if ((rc = tsr_exec_errslot_take(&r.errs, err)) != TSR_OK)
        goto cleanup;
    rc = r.ap.perfect.on ? tsr_agg_perfect_merge(&r, err) : tsr_agg_merge_all(&r, err);
    if (rc != TSR_OK)
        goto cleanup;
    if ((rc = tsr_exec_new_output(ctx, plan, &t, err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_agg_output(&r, t, err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_exec_finish_output(t, in, false, err)) != TSR_OK)
        goto cleanup;
    *out = t;
    t = NULL;

cleanup:
    tsr_table_destroy(t);
    tsr_agg_merge_free(&r);
    for (unsigned i = 0; r.w && i < r.nworkers; i++)
        agg_worker_free(&r, &r.w[i]);
    tsr_mem_free(mem, r.w);
    agg_plan_free(&r.ap);
    return rc;
}
