/*
 * op_sort.c - SORT: the input's rows ordered by several keys, stably.
 *
 * Rows are numbered globally (g in [0, n), batch order). The sort works in
 * three phases:
 *
 *   1. keys (parallel, one task per input batch): every sort key of every row
 *      becomes a normalized unsigned 64-bit value whose unsigned order is the
 *      SQL order, stored contiguously by g, plus a NULL flag:
 *        INT64   v ^ sign bit
 *        DOUBLE  IEEE bits, negatives inverted, positives with the sign bit
 *                set; -0.0 is folded to 0.0 and every NaN to the largest value
 *        BOOL    0/1;  VARCHAR  the dictionary rank of the code
 *      and for DESC the complement (~u reverses the order; ties stay stable).
 *   2. permutation (LSD over keys): a stable pass by the last key, then by the
 *      one before, ..., then by the first; stability makes earlier keys
 *      dominate and fully equal rows keep their input order. Each pass moves
 *      the NULL rows, in order, to the front (ASC) or back (DESC) - NULLs are
 *      the smallest value - and LSD radix sorts the others by key bytes,
 *      skipping byte positions where all keys agree (small ranges, ranks);
 *      each radix pass runs over chunks in parallel and stays stable.
 *   3. gather (parallel, one task per output batch of TSR_BATCH_ROWS): each
 *      column's values are fetched through per-batch data pointers.
 *
 * VARCHAR columns keep their dictionary: every batch of a column must share
 * one (mixing is an internal error), and it must be frozen (ranks).
 */
#include <math.h>
#include <string.h>

#include "exec/exec_internal.h"

typedef struct sort_job {
    const tsr_exec_ctx_t *ctx;
    const tsr_plan_t *plan;
    const tsr_table_t *in;
    size_t n;                 /* rows */
    size_t *start;            /* nbatches + 1: first global row of each batch */
    bool uniform;             /* all batches but the last are full: batch = g / rows */
    uint64_t **keys;          /* per sort key: n normalized keys by global row */
    uint8_t **nulls;          /* per sort key: n flags, 1 = NULL */
    const uint32_t **ranks;   /* per sort key: dictionary ranks (VARCHAR) */
    uint32_t *dsize;          /* per sort key: dictionary size (VARCHAR) */
    const uint64_t *perm;     /* n global rows in output order (phase 3) */
    const void **data;        /* ncols * nbatches data pointers (phase 3) */
    const uint64_t **valid;   /* ncols * nbatches validity pointers (phase 3) */
    bool *col_nulls;          /* ncols: some batch of the column has a bitmap */
    const tsr_dict_t **dicts; /* ncols: the column's dictionary */
    tsr_vector_t **out;       /* per output batch: the gathered columns */
    tsr_exec_errslot_t slot;
} sort_job_t;

static inline uint64_t norm_double(double d)
{
    uint64_t u;
    if (d == 0.0)
        d = 0.0;
    if (isnan(d))
        u = 0x7ff8000000000000ULL; /* a positive quiet NaN: above +inf */
    else
        memcpy(&u, &d, sizeof(u));
    return (u >> 63) ? ~u : (u | 0x8000000000000000ULL);
}

/* ---- phase 1: normalized keys --------------------------------------------------- */

static void keys_task(void *arg, size_t b, unsigned worker)
{
    (void)worker;
    sort_job_t *job = arg;
    if (tsr_exec_task_stop(job->ctx, &job->slot)) /* the sort stops after this phase */
        return;
    const tsr_batch_t *batch = &job->in->batches[b];
    size_t n = batch->nrows, base = job->start[b];
    for (size_t k = 0; k < job->plan->nsort_keys; k++) {
        const tsr_sort_key_t *key = &job->plan->sort_keys[k];
        const tsr_vector_t *v = &batch->cols[key->column];
        uint64_t flip = key->desc ? ~(uint64_t)0 : 0;
        uint64_t *out = job->keys[k] + base;
        uint8_t *nul = job->nulls[k] + base;
        switch (job->in->fields[key->column].type) {
        case TSR_TYPE_INT64: {
            const int64_t *x = v->data;
            for (size_t r = 0; r < n; r++)
                out[r] = ((uint64_t)x[r] ^ 0x8000000000000000ULL) ^ flip;
            break;
        }
        case TSR_TYPE_DOUBLE: {
            const double *x = v->data;
            for (size_t r = 0; r < n; r++)
                out[r] = norm_double(x[r]) ^ flip;
            break;
        }
        case TSR_TYPE_BOOL: {
            const uint8_t *x = v->data;
            for (size_t r = 0; r < n; r++)
                out[r] = (uint64_t)(x[r] != 0) ^ flip;
            break;
        }
        case TSR_TYPE_VARCHAR: {
            const uint32_t *x = v->data, *rank = job->ranks[k];
            uint32_t size = job->dsize[k];
            if (!size) { /* no dictionary entries: every row is NULL */
                memset(out, 0, n * sizeof(uint64_t));
                break;
            }
            for (size_t r = 0; r < n; r++) /* codes under NULLs may be garbage */
                out[r] = (uint64_t)rank[x[r] < size ? x[r] : 0] ^ flip;
            break;
        }
        default: /* NULL-typed: all NULL */
            memset(out, 0, n * sizeof(uint64_t));
            break;
        }
        if (job->in->fields[key->column].type == TSR_TYPE_NULL) {
            memset(nul, 1, n);
        } else if (!v->validity) {
            memset(nul, 0, n);
        } else {
            const uint64_t *vb = v->validity;
            for (size_t r = 0; r < n; r++)
                nul[r] = (uint8_t)(~(vb[r >> 6] >> (r & 63)) & 1);
        }
    }
}

/* ---- phase 2: the permutation ----------------------------------------------------- */

/* Stable LSD radix sort, 8 bits per pass, over chunks that run in parallel:
 * each chunk counts its digits, an exclusive prefix over (digit, chunk) in
 * that order gives every chunk its own output ranges, and each chunk then
 * scatters its rows in order - so the pass is stable however it is split.
 * Byte positions where all keys agree (an AND/OR reduction says which) are
 * skipped: small integer ranges and dictionary ranks need few passes. */
#define RADIX_CHUNK_MIN 16384

typedef struct radix_job {
    uint64_t *ks, *vs;    /* source keys and values */
    uint64_t *kd, *vd;    /* destination */
    size_t n, chunk;      /* rows; rows per chunk */
    int shift;            /* the digit: (key >> shift) & 0xff */
    size_t (*hist)[256];  /* per chunk: digit counts, then write positions */
    uint64_t *and_, *or_; /* per chunk: AND and OR of the keys */
} radix_job_t;

static void radix_reduce_task(void *arg, size_t c, unsigned worker)
{
    (void)worker;
    radix_job_t *j = arg;
    size_t lo = c * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    uint64_t a = ~(uint64_t)0, o = 0;
    for (size_t i = lo; i < hi; i++) {
        a &= j->ks[i];
        o |= j->ks[i];
    }
    j->and_[c] = a;
    j->or_[c] = o;
}

static void radix_hist_task(void *arg, size_t c, unsigned worker)
{
    (void)worker;
    radix_job_t *j = arg;
    size_t lo = c * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    size_t *h = j->hist[c];
    memset(h, 0, 256 * sizeof(size_t));
    for (size_t i = lo; i < hi; i++)
        h[(j->ks[i] >> j->shift) & 0xff]++;
}

static void radix_scatter_task(void *arg, size_t c, unsigned worker)
{
    (void)worker;
    radix_job_t *j = arg;
    size_t lo = c * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    size_t *at = j->hist[c];
    const uint64_t *ks = j->ks, *vs = j->vs;
    uint64_t *kd = j->kd, *vd = j->vd;
    int shift = j->shift;
    for (size_t i = lo; i < hi; i++) {
        size_t to = at[(ks[i] >> shift) & 0xff]++;
        kd[to] = ks[i];
        vd[to] = vs[i];
    }
}

/* Sorts (keys, vals)[0..n) by key; k2/v2 are n-entry scratch. */
static tsr_status_t radix_sort(const tsr_exec_ctx_t *ctx, uint64_t *keys, uint64_t *vals,
                               uint64_t *k2, uint64_t *v2, size_t n)
{
    size_t nchunks = 1;
    if (ctx->pool && n >= 2 * RADIX_CHUNK_MIN) {
        size_t want = (size_t)tsr_exec_nworkers(ctx) * 2;
        size_t most = n / RADIX_CHUNK_MIN;
        nchunks = want < most ? want : most;
    }
    radix_job_t j = {.ks = keys, .vs = vals, .kd = k2, .vd = v2, .n = n};
    j.chunk = (n + nchunks - 1) / nchunks;
    j.hist = tsr_mem_alloc(ctx->mem, nchunks * sizeof(*j.hist));
    j.and_ = tsr_mem_alloc(ctx->mem, nchunks * sizeof(uint64_t));
    j.or_ = tsr_mem_alloc(ctx->mem, nchunks * sizeof(uint64_t));
    if (!j.hist || !j.and_ || !j.or_) {
        tsr_mem_free(ctx->mem, j.hist);
        tsr_mem_free(ctx->mem, j.and_);
        tsr_mem_free(ctx->mem, j.or_);
        return TSR_ERR_NOMEM;
    }
    tsr_exec_parallel(ctx, nchunks, radix_reduce_task, &j);
    uint64_t all_and = ~(uint64_t)0, all_or = 0;
    for (size_t c = 0; c < nchunks; c++) {
        all_and &= j.and_[c];
        all_or |= j.or_[c];
    }
    uint64_t varies = all_and ^ all_or; /* bits that differ between some keys */
    for (int p = 0; p < 8; p++) {
        if (!((varies >> (8 * p)) & 0xff))
            continue;
        j.shift = 8 * p;
        tsr_exec_parallel(ctx, nchunks, radix_hist_task, &j);
        size_t sum = 0;
        for (int v = 0; v < 256; v++) {
            for (size_t c = 0; c < nchunks; c++) {
                size_t cnt = j.hist[c][v];
                j.hist[c][v] = sum;
                sum += cnt;
            }
        }
        tsr_exec_parallel(ctx, nchunks, radix_scatter_task, &j);
        uint64_t *t = j.ks;
        j.ks = j.kd;
        j.kd = t;
        t = j.vs;
        j.vs = j.vd;
        j.vd = t;
    }
    if (j.ks != keys) {
        memcpy(keys, j.ks, n * sizeof(uint64_t));
        memcpy(vals, j.vs, n * sizeof(uint64_t));
    }
    tsr_mem_free(ctx->mem, j.hist);
    tsr_mem_free(ctx->mem, j.and_);
    tsr_mem_free(ctx->mem, j.or_);
    return TSR_OK;
}

/* One stable pass of perm by key k. tk, k2, v2: n-entry scratch arrays. */
static tsr_status_t sort_pass(sort_job_t *job, size_t k, uint64_t *perm, uint64_t *tk, uint64_t *k2,
                              uint64_t *v2)
{
    size_t n = job->n;
    const uint64_t *keys = job->keys[k];
    const uint8_t *nulls = job->nulls[k];
    bool desc = job->plan->sort_keys[k].desc;
    /* non-NULL rows compacted to the front of perm (in place: nv <= i) with
     * their keys in tk; NULL rows wait in k2, unused until the radix sort */
    size_t nv = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t g = perm[i];
        if (nulls[g]) {
            k2[nn++] = g;
        } else {
            tk[nv] = keys[g];
            perm[nv++] = g;
        }
    }
    uint64_t *vperm = perm;
    if (desc) {
        memcpy(perm + nv, k2, nn * sizeof(uint64_t));
    } else {
        memmove(perm + nn, perm, nv * sizeof(uint64_t));
        memcpy(perm, k2, nn * sizeof(uint64_t));
        vperm = perm + nn;
    }
    return nv > 1 ? radix_sort(job->ctx, tk, vperm, k2, v2, nv) : TSR_OK;
}

/* ---- phase 3: gather -------------------------------------------------------------------- */

/* Batch index of global row g (binary search over the batch starts). */
static size_t batch_of(const size_t *start, size_t nb, size_t g)
{
    size_t lo = 0, hi = nb;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (start[mid] <= g)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void gather_task(void *arg, size_t ob, unsigned worker)
{
    (void)worker;
    sort_job_t *job = arg;
    if (tsr_exec_task_stop(job->ctx, &job->slot))
        return;
    tsr_mem_t *mem = job->ctx->mem;
    const tsr_table_t *t = job->in;
    size_t nb = t->nbatches, ncols = t->ncols;
    size_t from = ob * TSR_BATCH_ROWS;
    size_t cnt = job->n - from < TSR_BATCH_ROWS ? job->n - from : TSR_BATCH_ROWS;
    const uint64_t *perm = job->perm + from;
    tsr_vector_t *cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
    uint32_t *bi = tsr_mem_alloc(mem, (cnt ? cnt : 1) * sizeof(uint32_t));
    uint32_t *ri = tsr_mem_alloc(mem, (cnt ? cnt : 1) * sizeof(uint32_t));
    if (!cols || !bi || !ri)
        goto nomem;
    /* (batch, row) of every output row, once for all columns */
    for (size_t i = 0; i < cnt; i++) {
        size_t g = perm[i];
        size_t b = job->uniform ? g / TSR_BATCH_ROWS : batch_of(job->start, nb, g);
        bi[i] = (uint32_t)b;
        ri[i] = (uint32_t)(g - job->start[b]);
    }
    for (size_t c = 0; c < ncols; c++) {
        tsr_type_t type = t->fields[c].type;
        tsr_vector_t *v = &cols[c];
        if (tsr_vector_alloc(mem, type, cnt, job->col_nulls[c], job->dicts[c], v) != TSR_OK)
            goto nomem;
        const void *const *data = job->data + c * nb;
        switch (tsr_type_width(type)) {
        case 1: {
            uint8_t *d = v->data;
            for (size_t i = 0; i < cnt; i++)
                d[i] = ((const uint8_t *)data[bi[i]])[ri[i]];
            break;
        }
        case 4: {
            uint32_t *d = v->data;
            for (size_t i = 0; i < cnt; i++)
                d[i] = ((const uint32_t *)data[bi[i]])[ri[i]];
            break;
        }
        default: {
            uint64_t *d = v->data;
            for (size_t i = 0; i < cnt; i++)
                d[i] = ((const uint64_t *)data[bi[i]])[ri[i]];
            break;
        }
        }
        if (job->col_nulls[c]) {
            const uint64_t *const *valid = job->valid + c * nb;
            uint64_t *vb = v->owned_validity;
            memset(vb, 0, tsr_bitmap_words(cnt ? cnt : 1) * sizeof(uint64_t));
            for (size_t i = 0; i < cnt; i++)
                vb[i >> 6] |= (uint64_t)tsr_bit_get(valid[bi[i]], ri[i]) << (i & 63);
        }
    }
    tsr_mem_free(mem, bi);
    tsr_mem_free(mem, ri);
    job->out[ob] = cols;
    return;

nomem:;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
    tsr_exec_free_cols(mem, cols, ncols);
    tsr_mem_free(mem, bi);
    tsr_mem_free(mem, ri);
    tsr_exec_errslot_store(&job->slot, &err);
}

/* ---- the operator ------------------------------------------------------------------------- */

/* Per-column facts for the gather, and per-key dictionaries; checks that each
 * VARCHAR column has one frozen dictionary. */
static tsr_status_t sort_prepare(sort_job_t *job, tsr_error_t *err)
{
    const tsr_table_t *t = job->in;
    size_t nb = t->nbatches;
    for (size_t c = 0; c < t->ncols; c++) {
        for (size_t b = 0; b < nb; b++) {
            const tsr_vector_t *v = &t->batches[b].cols[c];
            job->data[c * nb + b] = v->data;
            job->valid[c * nb + b] = v->validity;
            job->col_nulls[c] |= v->validity != NULL;
            if (v->dict && job->dicts[c] && v->dict != job->dicts[c])
                return tsr_error_set(err, TSR_ERR_INTERNAL,
                                     "column %zu mixes dictionaries across batches", c);
            if (v->dict)
                job->dicts[c] = v->dict;
        }
    }
    for (size_t k = 0; k < job->plan->nsort_keys; k++) {
        const tsr_dict_t *d = job->dicts[job->plan->sort_keys[k].column];
        if (t->fields[job->plan->sort_keys[k].column].type != TSR_TYPE_VARCHAR || !d)
            continue;
        job->ranks[k] = tsr_dict_ranks(d);
        job->dsize[k] = tsr_dict_size(d);
        if (!job->ranks[k])
            return tsr_error_set(err, TSR_ERR_INTERNAL, "sort on an unfrozen dictionary");
    }
    return TSR_OK;
}

tsr_status_t tsr_op_sort(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                         tsr_table_t **out, tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    const tsr_table_t *t = in.table;
    size_t n = t->nrows, ncols = t->ncols, nb = t->nbatches, nk = plan->nsort_keys;
    if (plan->ncols != ncols)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "sort over %zu columns outputs %zu", ncols,
                             plan->ncols);
    for (size_t k = 0; k < nk; k++)
        if (plan->sort_keys[k].column >= ncols)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "sort key on column %zu of %zu",
                                 plan->sort_keys[k].column, ncols);
    tsr_status_t rc = TSR_OK;
    tsr_table_t *res = NULL;
    size_t nout = (n + TSR_BATCH_ROWS - 1) / TSR_BATCH_ROWS;
    size_t n1 = n ? n : 1;
    uint64_t *perm = NULL, *tk = NULL, *k2 = NULL, *v2 = NULL;
    sort_job_t job = {.ctx = ctx, .plan = plan, .in = t, .n = n};
    tsr_exec_errslot_init(&job.slot);
    job.start = tsr_mem_alloc(mem, (nb + 1) * sizeof(size_t));
    job.keys = tsr_mem_calloc(mem, nk ? nk : 1, sizeof(*job.keys));
    job.nulls = tsr_mem_calloc(mem, nk ? nk : 1, sizeof(*job.nulls));
    job.ranks = tsr_mem_calloc(mem, nk ? nk : 1, sizeof(*job.ranks));
    job.dsize = tsr_mem_calloc(mem, nk ? nk : 1, sizeof(*job.dsize));
    job.data = tsr_mem_calloc(mem, ncols * nb != 0 ? ncols * nb : 1, sizeof(*job.data));
    job.valid = tsr_mem_calloc(mem, ncols * nb != 0 ? ncols * nb : 1, sizeof(*job.valid));
    job.col_nulls = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*job.col_nulls));
    job.dicts = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*job.dicts));
    job.out = tsr_mem_calloc(mem, nout ? nout : 1, sizeof(*job.out));
    perm = tsr_mem_alloc(mem, n1 * sizeof(uint64_t));
    if (!job.start || !job.keys || !job.nulls || !job.ranks || !job.dsize || !job.data ||
        !job.valid || !job.col_nulls || !job.dicts || !job.out || !perm)
        goto nomem;
    for (size_t k = 0; k < nk; k++) {
        job.keys[k] = tsr_mem_alloc(mem, n1 * sizeof(uint64_t));
        job.nulls[k] = tsr_mem_alloc(mem, n1);
        if (!job.keys[k] || !job.nulls[k])
            goto nomem;
    }
    job.start[0] = 0;
    job.uniform = true;
    for (size_t b = 0; b < nb; b++) {
        job.start[b + 1] = job.start[b] + t->batches[b].nrows;
        job.uniform &= b + 1 == nb || t->batches[b].nrows == TSR_BATCH_ROWS;
    }
    if ((rc = sort_prepare(&job, err)) != TSR_OK)
        goto done;

    /* 1 + 2 */
    tsr_exec_parallel(ctx, nb, keys_task, &job);
    if ((rc = tsr_exec_errslot_take(&job.slot, err)) != TSR_OK) /* cancelled: keys unset */
        goto done;
    for (size_t g = 0; g < n; g++)
        perm[g] = g;
    if (nk > 0 && n > 1) {
        tk = tsr_mem_alloc(mem, n1 * sizeof(uint64_t));
        k2 = tsr_mem_alloc(mem, n1 * sizeof(uint64_t));
        v2 = tsr_mem_alloc(mem, n1 * sizeof(uint64_t));
        if (!tk || !k2 || !v2)
            goto nomem;
        for (size_t k = nk; k-- > 0;) {
            if (tsr_exec_cancelled(ctx)) { /* between passes: each is O(n) */
                rc = tsr_exec_cancel_error(err);
                goto done;
            }
            if (sort_pass(&job, k, perm, tk, k2, v2) != TSR_OK)
                goto nomem;
        }
        /* scratch and keys are dead: free them before the output grows */
        for (size_t k = 0; k < nk; k++) {
            tsr_mem_free(mem, job.keys[k]);
            tsr_mem_free(mem, job.nulls[k]);
            job.keys[k] = NULL;
            job.nulls[k] = NULL;
        }
        tsr_mem_free(mem, tk);
        tsr_mem_free(mem, k2);
        tsr_mem_free(mem, v2);
        tk = k2 = v2 = NULL;
    }

    /* 3 */
    job.perm = perm;
    tsr_exec_parallel(ctx, nout, gather_task, &job);
    if ((rc = tsr_exec_errslot_take(&job.slot, err)) != TSR_OK)
        goto done;
    if ((rc = tsr_exec_new_output(ctx, plan, &res, err)) != TSR_OK)
        goto done;
    for (size_t ob = 0; ob < nout; ob++) {
        size_t cnt =
            n - ob * TSR_BATCH_ROWS < TSR_BATCH_ROWS ? n - ob * TSR_BATCH_ROWS : TSR_BATCH_ROWS;
        if (tsr_table_append_batch(res, cnt, job.out[ob]) != TSR_OK)
            goto nomem;
        job.out[ob] = NULL;
    }
    if ((rc = tsr_exec_finish_output(res, in, false, err)) != TSR_OK)
        goto done;
    *out = res;
    res = NULL;
    goto done;

nomem:
    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
done:
    tsr_table_destroy(res);
    if (job.out)
        for (size_t ob = 0; ob < nout; ob++)
            tsr_exec_free_cols(mem, job.out[ob], ncols);
    for (size_t k = 0; k < nk; k++) {
        if (job.keys)
            tsr_mem_free(mem, job.keys[k]);
        if (job.nulls)
            tsr_mem_free(mem, job.nulls[k]);
    }
    tsr_mem_free(mem, job.start);
    tsr_mem_free(mem, job.keys);
    tsr_mem_free(mem, job.nulls);
    tsr_mem_free(mem, job.ranks);
    tsr_mem_free(mem, job.dsize);
    tsr_mem_free(mem, job.data);
    tsr_mem_free(mem, job.valid);
    tsr_mem_free(mem, job.col_nulls);
    tsr_mem_free(mem, job.dicts);
    tsr_mem_free(mem, job.out);
    tsr_mem_free(mem, perm);
    tsr_mem_free(mem, tk);
    tsr_mem_free(mem, k2);
    tsr_mem_free(mem, v2);
    return rc;
}
