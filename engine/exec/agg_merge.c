/*
 * agg_merge.c - the end of hash aggregation: folding the workers' partial
 * aggregates into final groups, DISTINCT aggregates, and the output table.
 *
 * Merge. Few groups (or one worker): the first worker's table becomes the
 * final one (parts[0], "self") and the others are folded into it in order.
 * Many groups: 2^pbits partitions by the top bits of the group hash; each
 * worker first sorts its group ids (and DISTINCT pairs) by partition
 * (counting sort, one task per worker), then one task per partition inserts
 * every worker's groups of that partition into a fresh table and folds their
 * states, so no two tasks ever touch the same group. Folding uses the stored
 * group hashes and keys: nothing is hashed twice.
 *
 * DISTINCT. The pair sets (group, value) of the self worker are already
 * deduplicated in final ids and feed the states directly; other workers'
 * pairs are renamed to final group ids (map[w]) and inserted into the final
 * set, and only the pairs new there feed the states.
 *
 * Output. Final group g of partition p is output row part_off[p] + g; one
 * task fills one output batch of TSR_BATCH_ROWS rows, possibly spanning
 * partitions. Validity bitmaps that come out all-valid are dropped.
 */
#include <string.h>

#include "exec/agg_internal.h"

#define AGG_ROWS TSR_BATCH_ROWS
#define AGG_PART_BITS 6              /* 64 partitions for a parallel merge */
#define AGG_PARALLEL_MERGE (1 << 14) /* partial groups from which the merge is parallel */

/* ---- bucketing by partition (nparts > 1) ---------------------------------------------- */

/* Counting sort of ids 0..n-1 by part_of(id) into list/off. */
static tsr_status_t agg_bucket(tsr_mem_t *mem, size_t nparts, size_t n, const uint64_t *ghash,
                               const uint64_t *pair_gid, unsigned pbits, uint32_t **list_out,
                               size_t **off_out)
{
    uint32_t *list = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
    size_t *off = tsr_mem_calloc(mem, nparts + 1, sizeof(size_t));
    if (!list || !off) {
        tsr_mem_free(mem, list);
        tsr_mem_free(mem, off);
        return TSR_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h = ghash[pair_gid ? pair_gid[i] : i];
        off[tsr_ht_partition(h, pbits) + 1]++;
    }
    for (size_t p = 0; p < nparts; p++)
        off[p + 1] += off[p];
    size_t *fill = tsr_mem_alloc(mem, nparts * sizeof(size_t));
    if (!fill) {
        tsr_mem_free(mem, list);
        tsr_mem_free(mem, off);
        return TSR_ERR_NOMEM;
    }
    memcpy(fill, off, nparts * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        uint64_t h = ghash[pair_gid ? pair_gid[i] : i];
        list[fill[tsr_ht_partition(h, pbits)]++] = (uint32_t)i;
    }
    tsr_mem_free(mem, fill);
    *list_out = list;
    *off_out = off;
    return TSR_OK;
}

static void agg_bucket_task(void *arg, size_t wi, unsigned worker)
{
    (void)worker;
    tsr_agg_run_t *r = arg;
    const tsr_agg_plan_t *ap = &r->ap;
    tsr_agg_worker_t *w = &r->w[wi];
    if (!w->ready || tsr_exec_task_stop(r->ctx, &r->errs))
        return;
    tsr_status_t rc = agg_bucket(ap->mem, r->nparts, w->part.ht.ngroups, w->part.ht.ghash, NULL,
                                 r->pbits, &r->glist[wi], &r->goff[wi]);
    for (size_t d = 0; rc == TSR_OK && d < ap->ndsets; d++) {
        const tsr_ht_t *ds = &w->part.dsets[d];
        rc = agg_bucket(ap->mem, r->nparts, ds->ngroups, w->part.ht.ghash, ds->gkeys[0], r->pbits,
                        &r->plist[wi * ap->ndsets + d], &r->poff[wi * ap->ndsets + d]);
    }
    if (rc != TSR_OK) {
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_agg_fail(&err, rc);
        tsr_exec_errslot_store(&r->errs, &err);
    }
}

/* ---- folding one partition ----------------------------------------------------------- */

/* Scratch of one merge task. */
typedef struct agg_mscratch {
    uint32_t *sel;  /* AGG_ROWS */
    uint32_t *gids; /* AGG_ROWS */
    uint64_t *pg;   /* AGG_ROWS: pair group ids (final) */
    uint64_t *pv;   /* AGG_ROWS: pair values */
    uint32_t *ng;   /* AGG_ROWS: new pairs' groups */
    uint64_t *nv;   /* AGG_ROWS: new pairs' values */
} agg_mscratch_t;

/* Folds the groups list[0..n) (NULL: 0..n-1) of worker wi into part. */
static tsr_status_t agg_fold_groups(tsr_agg_run_t *r, tsr_agg_part_t *part, size_t wi,
                                    const uint32_t *list, size_t n, agg_mscratch_t *m)
{
    const tsr_agg_plan_t *ap = &r->ap;
    const tsr_agg_part_t *src = &r->w[wi].part;
    for (size_t o = 0; o < n; o += AGG_ROWS) {
        size_t c = n - o < AGG_ROWS ? n - o : AGG_ROWS;
        for (size_t j = 0; j < c; j++)
            m->sel[j] = list ? list[o + j] : (uint32_t)(o + j);
        tsr_ht_rows_t rows = {.n = c,
                              .sel = m->sel,
                              .keys = (const uint64_t *const *)src->ht.gkeys,
                              .validity = (const uint64_t *const *)src->ht.gvalid,
                              .hashes = src->ht.ghash};
        tsr_status_t rc = tsr_ht_find_or_insert(&part->ht, &rows, m->gids);
        if (rc == TSR_OK)
            rc = tsr_agg_part_reserve(part, ap);
        if (rc != TSR_OK)
            return rc;
        tsr_agg_merge(part, src, ap, m->gids, m->sel, c);
        for (size_t j = 0; j < c; j++)
            r->map[wi][m->sel[j]] = m->gids[j];
    }
    return TSR_OK;
}

/* Inserts pairs list[0..n) (NULL: all) of worker wi's set d into part's set,
 * renaming groups through map[wi]; feeds the pairs that are new. */
static tsr_status_t agg_fold_pairs(tsr_agg_run_t *r, tsr_agg_part_t *part, size_t wi, size_t d,
                                   const uint32_t *list, size_t n, agg_mscratch_t *m)
{
    const tsr_agg_plan_t *ap = &r->ap;
    const tsr_ht_t *src = &r->w[wi].part.dsets[d];
    tsr_ht_t *dst = &part->dsets[d];
    for (size_t o = 0; o < n; o += AGG_ROWS) {
        size_t c = n - o < AGG_ROWS ? n - o : AGG_ROWS;
        for (size_t j = 0; j < c; j++) {
            size_t q = list ? list[o + j] : o + j;
            m->pg[j] = r->map[wi][src->gkeys[0][q]];
            m->pv[j] = src->gkeys[1][q];
        }
        const uint64_t *keys[2] = {m->pg, m->pv};
        tsr_ht_rows_t rows = {.n = c, .keys = keys};
        size_t expect = dst->ngroups; /* new pairs get the next ids, in row order */
        tsr_status_t rc = tsr_ht_find_or_insert(dst, &rows, m->gids);
        if (rc != TSR_OK)
            return rc;
        size_t nnew = 0;
        for (size_t j = 0; j < c; j++) {
            if (m->gids[j] == expect) {
                m->ng[nnew] = (uint32_t)m->pg[j];
                m->nv[nnew++] = m->pv[j];
                expect++;
            }
        }
        tsr_agg_feed_distinct(part, ap, d, m->ng, m->nv, nnew);
    }
    return TSR_OK;
}

/* Feeds the pairs of a set already in final group ids (the self worker's). */
static void agg_feed_own_pairs(tsr_agg_run_t *r, tsr_agg_part_t *part, size_t d, agg_mscratch_t *m)
{
    const tsr_ht_t *ds = &part->dsets[d];
    for (size_t o = 0; o < ds->ngroups; o += AGG_ROWS) {
        size_t c = ds->ngroups - o < AGG_ROWS ? ds->ngroups - o : AGG_ROWS;
        for (size_t j = 0; j < c; j++)
            m->ng[j] = (uint32_t)ds->gkeys[0][o + j];
        tsr_agg_feed_distinct(part, &r->ap, d, m->ng, ds->gkeys[1] + o, c);
    }
}

static tsr_status_t agg_merge_part(tsr_agg_run_t *r, size_t p)
{
    const tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    tsr_agg_part_t *part = &r->parts[p];
    agg_mscratch_t m;
    m.sel = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint32_t));
    m.gids = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint32_t));
    m.pg = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint64_t));
    m.pv = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint64_t));
    m.ng = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint32_t));
    m.nv = tsr_mem_alloc(mem, AGG_ROWS * sizeof(uint64_t));
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!m.sel || !m.gids || !m.pg || !m.pv || !m.ng || !m.nv)
        goto cleanup;
    /* the self worker's pair sets first, before other workers' pairs join them */
    for (size_t d = 0; r->self >= 0 && d < ap->ndsets; d++)
        agg_feed_own_pairs(r, part, d, &m);
    for (size_t wi = 0; wi < r->nworkers; wi++) {
        if (!r->w[wi].ready || (long)wi == r->self)
            continue;
        const uint32_t *gl = r->nparts > 1 ? r->glist[wi] + r->goff[wi][p] : NULL;
        size_t ng = r->nparts > 1 ? r->goff[wi][p + 1] - r->goff[wi][p] : r->w[wi].part.ht.ngroups;
        if ((rc = agg_fold_groups(r, part, wi, gl, ng, &m)) != TSR_OK)
            goto cleanup;
        for (size_t d = 0; d < ap->ndsets; d++) {
            size_t k = wi * ap->ndsets + d;
            const uint32_t *pl = r->nparts > 1 ? r->plist[k] + r->poff[k][p] : NULL;
            size_t np =
                r->nparts > 1 ? r->poff[k][p + 1] - r->poff[k][p] : r->w[wi].part.dsets[d].ngroups;
            if ((rc = agg_fold_pairs(r, part, wi, d, pl, np, &m)) != TSR_OK)
                goto cleanup;
        }
    }
    rc = TSR_OK;

cleanup:
    tsr_mem_free(mem, m.sel);
    tsr_mem_free(mem, m.gids);
    tsr_mem_free(mem, m.pg);
    tsr_mem_free(mem, m.pv);
    tsr_mem_free(mem, m.ng);
    tsr_mem_free(mem, m.nv);
    return rc;
}

static void agg_merge_task(void *arg, size_t p, unsigned worker)
{
    (void)worker;
    tsr_agg_run_t *r = arg;
    if (tsr_exec_task_stop(r->ctx, &r->errs))
        return;
    tsr_status_t rc = agg_merge_part(r, p);
    if (rc != TSR_OK) {
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_agg_fail(&err, rc);
        tsr_exec_errslot_store(&r->errs, &err);
    }
}

tsr_status_t tsr_agg_merge_all(tsr_agg_run_t *r, tsr_error_t *err)
{
    const tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    size_t nready = 0, total = 0, most = 0;
    long first = -1;
    for (size_t wi = 0; wi < r->nworkers; wi++) {
        if (!r->w[wi].ready)
            continue;
        nready++;
        total += r->w[wi].part.ht.ngroups;
        if (r->w[wi].part.ht.ngroups > most)
            most = r->w[wi].part.ht.ngroups;
        if (first < 0)
            first = (long)wi;
    }
    r->nparts = 1;
    r->pbits = 0;
    if (nready > 1 && total >= AGG_PARALLEL_MERGE && r->nworkers > 1) {
        r->pbits = AGG_PART_BITS;
        r->nparts = (size_t)1 << AGG_PART_BITS;
    }
    r->parts = tsr_mem_calloc(mem, r->nparts, sizeof(tsr_agg_part_t));
    r->map = tsr_mem_calloc(mem, r->nworkers, sizeof(uint32_t *));
    if (!r->parts || !r->map)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    for (size_t wi = 0; wi < r->nworkers; wi++) {
        if (!r->w[wi].ready || (r->nparts == 1 && (long)wi == first))
            continue; /* the self worker's groups keep their ids */
        size_t n = r->w[wi].part.ht.ngroups;
        if (!(r->map[wi] = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t))))
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }

    tsr_status_t rc;
    if (r->nparts == 1) {
        if (first >= 0) {
            /* the first worker's partials become the final table as they are */
            r->parts[0] = r->w[first].part;
            memset(&r->w[first].part, 0, sizeof(r->w[first].part)); /* fini is a no-op */
            r->self = first;
        } else if ((rc = tsr_agg_part_init(&r->parts[0], ap, 1)) != TSR_OK) {
            return tsr_agg_fail(err, rc);
        }
        if ((rc = agg_merge_part(r, 0)) != TSR_OK)
            return tsr_agg_fail(err, rc);
    } else {
        r->glist = tsr_mem_calloc(mem, r->nworkers, sizeof(uint32_t *));
        r->goff = tsr_mem_calloc(mem, r->nworkers, sizeof(size_t *));
        size_t nsets = r->nworkers * (ap->ndsets ? ap->ndsets : 1);
        r->plist = tsr_mem_calloc(mem, nsets, sizeof(uint32_t *));
        r->poff = tsr_mem_calloc(mem, nsets, sizeof(size_t *));
        if (!r->glist || !r->goff || !r->plist || !r->poff)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        for (size_t p = 0; p < r->nparts; p++)
            if ((rc = tsr_agg_part_init(&r->parts[p], ap, most / r->nparts + 1)) != TSR_OK)
                return tsr_agg_fail(err, rc);
        tsr_exec_parallel(r->ctx, r->nworkers, agg_bucket_task, r);
        if ((rc = tsr_exec_errslot_take(&r->errs, err)) != TSR_OK)
            return rc;
        tsr_exec_parallel(r->ctx, r->nparts, agg_merge_task, r);
        if ((rc = tsr_exec_errslot_take(&r->errs, err)) != TSR_OK)
            return rc;
    }

    /* no grouping keys: exactly one row, even for no input at all */
    tsr_agg_part_t *p0 = &r->parts[0];
    if (ap->nkeys == 0 && p0->ht.ngroups == 0) {
        uint32_t gid;
        tsr_ht_rows_t one = {.n = 1};
        if ((rc = tsr_ht_find_or_insert(&p0->ht, &one, &gid)) != TSR_OK ||
            (rc = tsr_agg_part_reserve(p0, ap)) != TSR_OK)
            return tsr_agg_fail(err, rc);
    }
    return TSR_OK;
}

void tsr_agg_merge_free(tsr_agg_run_t *r)
{
    tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    for (size_t p = 0; r->parts && p < r->nparts; p++)
        tsr_agg_part_fini(&r->parts[p], ap);
    tsr_mem_free(mem, r->parts);
    r->parts = NULL;
    r->self = -1;
    size_t nsets = r->nworkers * (ap->ndsets ? ap->ndsets : 1);
    for (size_t wi = 0; wi < r->nworkers; wi++) {
        if (r->map)
            tsr_mem_free(mem, r->map[wi]);
        if (r->glist)
            tsr_mem_free(mem, r->glist[wi]);
        if (r->goff)
            tsr_mem_free(mem, r->goff[wi]);
    }
    for (size_t k = 0; k < nsets; k++) {
        if (r->plist)
            tsr_mem_free(mem, r->plist[k]);
        if (r->poff)
            tsr_mem_free(mem, r->poff[k]);
    }
    tsr_mem_free(mem, r->map);
    tsr_mem_free(mem, r->glist);
    tsr_mem_free(mem, r->goff);
    tsr_mem_free(mem, r->plist);
    tsr_mem_free(mem, r->poff);
    r->map = NULL;
    r->glist = NULL;
    r->goff = NULL;
    r->plist = NULL;
    r->poff = NULL;
    for (size_t b = 0; r->ocols && b * AGG_ROWS < r->part_off[r->nparts]; b++)
        tsr_exec_free_cols(mem, r->ocols[b], ap->nkeys + ap->naggs);
    tsr_mem_free(mem, r->ocols);
    tsr_mem_free(mem, r->part_off);
    r->ocols = NULL;
    r->part_off = NULL;
}

/* ---- output --------------------------------------------------------------------------- */

/* The dictionary an output column's codes refer to (NULL: not VARCHAR). */
static const tsr_dict_t *agg_out_dict(const tsr_agg_plan_t *ap, size_t c)
{
    if (c < ap->nkeys)
        return ap->keys[c].dict;
    const tsr_agg_out_t *o = &ap->outs[c - ap->nkeys];
    if (o->cstr)
        return o->cdict;
    return o->type == TSR_TYPE_VARCHAR ? ap->args[o->arg].dict : NULL;
}

static bool agg_all_valid(const uint64_t *bm, size_t n)
{
    size_t full = n / 64;
    for (size_t w = 0; w < full; w++)
        if (bm[w] != UINT64_MAX)
            return false;
    if (n % 64 == 0)
        return true;
    uint64_t tail = ((uint64_t)1 << (n % 64)) - 1;
    return (bm[full] & tail) == tail;
}

static tsr_status_t agg_fill_batch(tsr_agg_run_t *r, size_t b, tsr_error_t *err)
{
    const tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    size_t ncols = ap->nkeys + ap->naggs;
    size_t total = r->part_off[r->nparts];
    size_t start = b * AGG_ROWS;
    size_t n = total - start < AGG_ROWS ? total - start : AGG_ROWS;
    tsr_vector_t *cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
    if (!cols)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    r->ocols[b] = cols;
    for (size_t c = 0; c < ncols; c++) {
        tsr_type_t type = c < ap->nkeys ? ap->keys[c].type : ap->outs[c - ap->nkeys].type;
        if (tsr_vector_alloc(mem, type, n, true, agg_out_dict(ap, c), &cols[c]) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    /* the partition holding row start: the last p with part_off[p] <= start */
    size_t lo = 0, hi = r->nparts;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (r->part_off[mid] <= start)
            lo = mid;
        else
            hi = mid;
    }
    size_t at = 0;
    for (size_t p = lo; at < n && p < r->nparts; p++) {
        size_t g0 = start + at - r->part_off[p];
        size_t have = r->parts[p].ht.ngroups - g0;
        size_t take = n - at < have ? n - at : have;
        tsr_status_t rc = tsr_agg_emit(&r->parts[p], ap, g0, take, cols, at, err);
        if (rc != TSR_OK)
            return rc;
        at += take;
    }
    for (size_t c = 0; c < ncols; c++) {
        if (agg_all_valid(cols[c].validity, n)) {
            tsr_mem_free(mem, cols[c].owned_validity);
            cols[c].owned_validity = NULL;
            cols[c].validity = NULL;
        }
    }
    return TSR_OK;
}

static void agg_fill_task(void *arg, size_t b, unsigned worker)
{
    (void)worker;
    tsr_agg_run_t *r = arg;
    if (tsr_exec_task_stop(r->ctx, &r->errs))
        return;
    tsr_error_t err;
    tsr_error_clear(&err);
    if (agg_fill_batch(r, b, &err) != TSR_OK)
        tsr_exec_errslot_store(&r->errs, &err);
}

/* rank -> code tables of the VARCHAR MIN/MAX arguments. */
static tsr_status_t agg_rank_codes(tsr_agg_plan_t *ap, tsr_error_t *err)
{
    for (size_t a = 0; a < ap->nargs; a++) {
        tsr_agg_arg_t *ar = &ap->args[a];
        if (!ar->need_rank || !ar->dict)
            continue;
        uint32_t size = tsr_dict_size(ar->dict);
        ar->rank_code = tsr_mem_alloc(ap->mem, (size ? size : 1) * sizeof(uint32_t));
        if (!ar->rank_code)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        for (uint32_t c = 0; c < size; c++)
            ar->rank_code[ar->ranks[c]] = c;
    }
    return TSR_OK;
}

tsr_status_t tsr_agg_output(tsr_agg_run_t *r, tsr_table_t *out, tsr_error_t *err)
{
    tsr_agg_plan_t *ap = &r->ap;
    tsr_mem_t *mem = ap->mem;
    size_t ncols = ap->nkeys + ap->naggs;
    tsr_status_t rc = agg_rank_codes(ap, err);
    if (rc != TSR_OK)
        return rc;
    /* A VARCHAR output of an input without batches has no dictionary: give it
     * an empty one (its rows, if any, are NULL). MIN/MAX of a string constant
     * gets one holding the constant. */
    for (size_t c = 0; c < ncols; c++) {
        tsr_agg_out_t *o = c < ap->nkeys ? NULL : &ap->outs[c - ap->nkeys];
        bool is_varchar = o ? o->type == TSR_TYPE_VARCHAR : ap->keys[c].type == TSR_TYPE_VARCHAR;
        if (!is_varchar || agg_out_dict(ap, c))
            continue;
        tsr_dict_t *d;
        uint32_t code;
        if (tsr_dict_create(mem, &d) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        tsr_table_adopt_dict(out, c, d);
        if ((o && o->cstr &&
             tsr_dict_intern(d, o->cstr->s ? o->cstr->s : "", o->cstr->slen, &code) != TSR_OK) ||
            tsr_dict_freeze(d) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        if (!o)
            ap->keys[c].dict = d;
        else if (o->cstr)
            o->cdict = d;
        else
            ap->args[o->arg].dict = d;
    }
    r->part_off = tsr_mem_calloc(mem, r->nparts + 1, sizeof(size_t));
    if (!r->part_off)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    for (size_t p = 0; p < r->nparts; p++)
        r->part_off[p + 1] = r->part_off[p] + r->parts[p].ht.ngroups;
    size_t total = r->part_off[r->nparts];
    size_t nbatches = (total + AGG_ROWS - 1) / AGG_ROWS;
    r->ocols = tsr_mem_calloc(mem, nbatches ? nbatches : 1, sizeof(tsr_vector_t *));
    if (!r->ocols)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_exec_parallel(r->ctx, nbatches, agg_fill_task, r);
    if ((rc = tsr_exec_errslot_take(&r->errs, err)) != TSR_OK)
        return rc;
    for (size_t b = 0; b < nbatches; b++) {
        size_t n = total - b * AGG_ROWS < AGG_ROWS ? total - b * AGG_ROWS : AGG_ROWS;
        if (tsr_table_append_batch(out, n, r->ocols[b]) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        r->ocols[b] = NULL; /* the table owns it now */
    }
    return TSR_OK;
}
