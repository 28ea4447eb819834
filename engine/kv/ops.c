/*
 * ops.c - the kv store's operations on a table handle (include/tessera/kv.h):
 * single and batch writes (validated, fenced, logged under the partition
 * mutex, acknowledged after group commit), lock-free gets, count and scan.
 *
 * Batches hash every key first, group the pairs by partition (a counting
 * sort of indices), and hand each group to the partition as one run under
 * its mutex, prefetching slots ahead of the probes; one group commit covers
 * the whole batch.
 */
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/lock.h"

/* The log hook's state for one call: the newest lsn it appended. */
typedef struct log_ctx {
    tsr_kv_table_t *t;
    uint64_t lsn;
} log_ctx_t;

static tsr_status_t log_hook(void *arg, bool del, const void *key, uint32_t klen, const void *val,
                             uint32_t vlen, tsr_error_t *err)
{
    log_ctx_t *lc = arg;
    unsigned char h[12];
    kv_put32(h, lc->t->id);
    kv_put32(h + 4, klen);
    kv_put32(h + 8, vlen);
    kv_piece_t pc[3] = {{h, del ? 8u : 12u}, {key, klen}, {val, del ? 0 : vlen}};
    return tsr_kv_wal_append(lc->t->store->wal, del ? KV_REC_DEL : KV_REC_PUT, pc, 3, &lc->lsn,
                             err);
}

static tsr_status_t check_fence(tsr_kv_table_t *t, const tsr_kv_write_opts_t *wo, tsr_error_t *err)
{
    if (!wo || !wo->lock)
        return TSR_OK;
    if (!t->store->fence)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "kv: a fenced write needs a store opened with a fence");
    tsr_lock_err_t le = {0};
    tsr_status_t rc = tsr_lock_fence_check(t->store->fence, wo->lock, wo->token, &le);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "kv: write refused: %s", le.message);
    return TSR_OK;
}

/* NOT_FOUND once t was dropped. Writers check again with the store's rwlock
 * held (drop takes it exclusive): a write that passed the first check and
 * logged after the DROP record would name a table id that replay no longer
 * knows, and the store would not open again. */
static tsr_status_t check_live(const tsr_kv_table_t *t, tsr_error_t *err)
{
    if (atomic_load(&t->dropped))
        return tsr_error_set(err, TSR_ERR_NOT_FOUND, "kv: table '%s' was dropped", t->name);
    return TSR_OK;
}

static tsr_status_t check_kv(const tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                             size_t vlen, bool has_val, tsr_error_t *err)
{
    if (check_live(t, err) != TSR_OK)
        return TSR_ERR_NOT_FOUND;
    if ((!key && klen) || (has_val && !val && vlen))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "kv: NULL key or value with a length");
    if (klen > t->max_key)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "kv: key of %zu bytes is longer than table '%s' allows (%u)", klen,
                             t->name, t->max_key);
    if (has_val && vlen > t->max_val)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "kv: value of %zu bytes is longer than table '%s' allows (%u)", vlen,
                             t->name, t->max_val);
    return TSR_OK;
}

static tsr_status_t do_write(tsr_kv_table_t *t, kv_op_t op, const void *key, size_t klen,
                             const void *val, size_t vlen, const tsr_kv_write_opts_t *wo,
                             tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    e.status = TSR_OK; /* not tsr_error_clear: a 1 KiB memset per op */
    if (!t)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_status_t rc = check_kv(t, key, klen, val, vlen, op != KV_OP_DELETE, &e);
    if (rc == TSR_OK)
        rc = check_fence(t, wo, &e);
    if (rc != TSR_OK)
        return tsr_kv_err_from(kerr, &e, rc);
    tsr_kv_store_t *s = t->store;
    uint64_t h = tsr_hash_bytes(key, klen);
    log_ctx_t lc = {t, 0};
    pthread_rwlock_rdlock(&s->rw);
    rc = check_live(t, &e); /* again: a drop may have come since check_kv */
    if (rc == TSR_OK)
        rc = tsr_kv_part_write(&t->parts[kv_part_of(h, t->nparts)], op, h, key, (uint32_t)klen, val,
                               (uint32_t)vlen, s->wal ? log_hook : NULL, &lc, &e);
    pthread_rwlock_unlock(&s->rw);
    if (rc == TSR_OK && lc.lsn) {
        rc = tsr_kv_wal_commit(s->wal, lc.lsn, &e);
        tsr_kv_store_maybe_snapshot(s);
    }
    if (rc == TSR_ERR_EXISTS)
        tsr_error_set(&e, rc, "kv: key exists in table '%s'", t->name);
    else if (rc == TSR_ERR_NOT_FOUND)
        tsr_error_set(&e, rc, "kv: key not found in table '%s'", t->name);
    return tsr_kv_err_from(kerr, &e, rc);
}

tsr_status_t tsr_kv_insert(tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                           size_t vlen, const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err)
{
    return do_write(t, KV_OP_INSERT, key, klen, val, vlen, wo, err);
}

tsr_status_t tsr_kv_update(tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                           size_t vlen, const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err)
{
    return do_write(t, KV_OP_UPDATE, key, klen, val, vlen, wo, err);
}

tsr_status_t tsr_kv_upsert(tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                           size_t vlen, const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err)
{
    return do_write(t, KV_OP_UPSERT, key, klen, val, vlen, wo, err);
}

tsr_status_t tsr_kv_delete(tsr_kv_table_t *t, const void *key, size_t klen,
                           const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err)
{
    return do_write(t, KV_OP_DELETE, key, klen, NULL, 0, wo, err);
}

tsr_status_t tsr_kv_get(tsr_kv_table_t *t, const void *key, size_t klen, void *buf, size_t cap,
                        size_t *vlen, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    e.status = TSR_OK; /* not tsr_error_clear: a 1 KiB memset per op */
    if (!t || !vlen || (!buf && cap))
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_status_t rc = check_kv(t, key, klen, NULL, 0, false, &e);
    if (rc != TSR_OK)
        return tsr_kv_err_from(kerr, &e, rc);
    uint64_t h = tsr_hash_bytes(key, klen);
    rc = tsr_kv_part_get(&t->parts[kv_part_of(h, t->nparts)], h, key, (uint32_t)klen, buf, cap,
                         vlen);
    if (rc == TSR_ERR_NOT_FOUND && kerr) /* a miss is common: format only on request */
        tsr_error_set(&e, rc, "kv: key not found in table '%s'", t->name);
    return tsr_kv_err_from(kerr, &e, rc);
}

tsr_status_t tsr_kv_count(tsr_kv_table_t *t, uint64_t *out)
{
    if (!t || !out)
        return TSR_ERR_INVALID_ARG;
    if (atomic_load(&t->dropped))
        return TSR_ERR_NOT_FOUND;
    uint64_t n = 0;
    for (uint32_t i = 0; i < t->nparts; i++)
        n += tsr_kv_part_count(&t->parts[i]);
    *out = n;
    return TSR_OK;
}

/* Cursor: bits 63..48 partition, 47..32 the table epoch (low 16 bits), 31..0
 * the next slot. 0 = start; a continuation is never 0 (pos > 0 or part > 0). */
tsr_status_t tsr_kv_scan(tsr_kv_table_t *t, uint64_t *cursor, size_t page, tsr_kv_scan_fn fn,
                         void *arg, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    e.status = TSR_OK; /* not tsr_error_clear: a 1 KiB memset per op */
    if (!t || !cursor || !fn || page == 0)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    if (atomic_load(&t->dropped))
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_NOT_FOUND);
    uint64_t c = *cursor;
    uint32_t part = (uint32_t)(c >> 48);
    uint64_t epoch = (c >> 32) & 0xffff, pos = c & 0xffffffffu;
    size_t left = page;
    while (part < t->nparts && left > 0) {
        size_t got = 0;
        tsr_status_t rc = tsr_kv_part_scan(&t->parts[part], &epoch, &pos, left, fn, arg, &got);
        if (rc != TSR_OK) {
            tsr_error_set(&e, rc, "kv: table '%s' was resized during the scan; start over",
                          t->name);
            return tsr_kv_err_from(kerr, &e, rc);
        }
        left -= got;
        if (pos == UINT64_MAX) {
            part++;
            pos = 0;
            epoch = 0;
        }
    }
    if (part >= t->nparts) {
        *cursor = 0;
        return TSR_OK;
    }
    if (pos > 0xffffffffu)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_UNSUPPORTED);
    *cursor = (uint64_t)part << 48 | (epoch & 0xffff) << 32 | pos;
    return TSR_OK;
}

/* ---- batches ------------------------------------------------------------------------------ */

/* One partition's group: on the store's device when it has one and the
 * group is large enough (part_device.c), else on the CPU. */
static tsr_status_t part_batch(tsr_kv_table_t *t, kv_part_t *p, kv_op_t op, size_t n,
                               const uint64_t *h, const tsr_kv_pair_t *pairs, tsr_status_t *res,
                               kv_log_fn log, void *log_arg, tsr_error_t *e)
{
    kv_dev_t *d = t->store->dev;
    if (d && n >= tsr_kv_dev_min_batch(d)) {
        bool ran = false;
        tsr_status_t rc =
            tsr_kv_part_write_batch_dev(d, p, op, n, h, pairs, res, log, log_arg, &ran, e);
        if (ran)
            return rc;
    }
    return tsr_kv_part_write_batch(p, op, n, h, pairs, res, log, log_arg, e);
}

static tsr_status_t do_batch(tsr_kv_table_t *t, kv_op_t op, const tsr_kv_pair_t *pairs, size_t n,
                             const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                             tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    e.status = TSR_OK; /* not tsr_error_clear: a 1 KiB memset per op */
    if (nok)
        *nok = 0;
    if (!t || (!pairs && n))
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_status_t rc = TSR_OK;
    for (size_t i = 0; i < n && rc == TSR_OK; i++)
        rc = check_kv(t, pairs[i].key, pairs[i].klen, pairs[i].val, pairs[i].vlen,
                      op != KV_OP_DELETE, &e);
    if (rc == TSR_OK)
        rc = check_fence(t, wo, &e);
    if (rc != TSR_OK || n == 0)
        return tsr_kv_err_from(kerr, &e, rc);
    tsr_kv_store_t *s = t->store;
    uint64_t *h = tsr_mem_alloc(s->mem, n * sizeof(*h));
    tsr_status_t *res = tsr_mem_alloc(s->mem, n * sizeof(*res));
    uint64_t *gh = NULL;
    tsr_kv_pair_t *gp = NULL;
    size_t *idx = NULL, *start = NULL;
    if (!h || !res) {
        rc = tsr_error_set(&e, TSR_ERR_NOMEM, "kv: out of memory for a batch of %zu", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = tsr_hash_bytes(pairs[i].key, pairs[i].klen);
    log_ctx_t lc = {t, 0};
    kv_log_fn log = s->wal ? log_hook : NULL;
    if (t->nparts == 1) {
        pthread_rwlock_rdlock(&s->rw);
        rc = check_live(t, &e);
        if (rc == TSR_OK)
            rc = part_batch(t, &t->parts[0], op, n, h, pairs, res, log, &lc, &e);
        pthread_rwlock_unlock(&s->rw);
    } else {
        /* group by partition: counting sort of indices */
        gh = tsr_mem_alloc(s->mem, n * sizeof(*gh));
        gp = tsr_mem_alloc(s->mem, n * sizeof(*gp));
        idx = tsr_mem_alloc(s->mem, n * sizeof(*idx));
        start = tsr_mem_calloc(s->mem, (size_t)t->nparts + 1, sizeof(*start));
        if (!gh || !gp || !idx || !start) {
            rc = tsr_error_set(&e, TSR_ERR_NOMEM, "kv: out of memory for a batch of %zu", n);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            start[kv_part_of(h[i], t->nparts) + 1]++;
        for (uint32_t p = 0; p < t->nparts; p++)
            start[p + 1] += start[p];
        for (size_t i = 0; i < n; i++) {
            size_t at = start[kv_part_of(h[i], t->nparts)]++;
            idx[at] = i;
            gh[at] = h[i];
            gp[at] = pairs[i];
        }
        /* start[p] now is the end of group p; group p begins at start[p-1] */
        pthread_rwlock_rdlock(&s->rw);
        size_t b = 0;
        rc = check_live(t, &e);
        for (uint32_t p = 0; p < t->nparts && rc == TSR_OK; p++) {
            size_t end = start[p];
            if (end > b)
                rc =
                    part_batch(t, &t->parts[p], op, end - b, gh + b, gp + b, res + b, log, &lc, &e);
            b = end;
        }
        pthread_rwlock_unlock(&s->rw);
        /* back to the caller's order (gh reused as scratch is not needed) */
        for (size_t k = 0; k < n; k++)
            h[idx[k]] = (uint64_t)(int64_t)res[k];
        for (size_t i = 0; i < n; i++)
            res[i] = (tsr_status_t)(int64_t)h[i];
        if (rc != TSR_OK) /* groups never reached */
            for (size_t k = b; k < n; k++)
                res[idx[k]] = rc;
    }
    if (rc == TSR_OK && lc.lsn) {
        rc = tsr_kv_wal_commit(s->wal, lc.lsn, &e);
        tsr_kv_store_maybe_snapshot(s);
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc != TSR_OK)
            res[i] = rc;
        ok += res[i] == TSR_OK;
        if (results)
            results[i] = res[i];
    }
    if (nok)
        *nok = ok;
out:
    tsr_mem_free(s->mem, h);
    tsr_mem_free(s->mem, res);
    tsr_mem_free(s->mem, gh);
    tsr_mem_free(s->mem, gp);
    tsr_mem_free(s->mem, idx);
    tsr_mem_free(s->mem, start);
    return tsr_kv_err_from(kerr, &e, rc);
}

tsr_status_t tsr_kv_insert_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *pairs, size_t n,
                                 const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                                 tsr_kv_err_t *err)
{
    return do_batch(t, KV_OP_INSERT, pairs, n, wo, results, nok, err);
}

tsr_status_t tsr_kv_upsert_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *pairs, size_t n,
                                 const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                                 tsr_kv_err_t *err)
{
    return do_batch(t, KV_OP_UPSERT, pairs, n, wo, results, nok, err);
}

tsr_status_t tsr_kv_delete_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *pairs, size_t n,
                                 const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                                 tsr_kv_err_t *err)
{
    return do_batch(t, KV_OP_DELETE, pairs, n, wo, results, nok, err);
}

tsr_status_t tsr_kv_get_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *keys, size_t n, void *vals,
                              size_t stride, size_t *vlens, tsr_status_t *results, size_t *nok,
                              tsr_kv_err_t *kerr)
{
    enum { AHEAD = 16, CHUNK = 256 };
    tsr_error_t e;
    e.status = TSR_OK; /* not tsr_error_clear: a 1 KiB memset per op */
    if (nok)
        *nok = 0;
    if (!t || (!keys && n) || !vlens || (!vals && stride))
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_status_t rc = TSR_OK;
    for (size_t i = 0; i < n && rc == TSR_OK; i++)
        rc = check_kv(t, keys[i].key, keys[i].klen, NULL, 0, false, &e);
    if (rc != TSR_OK)
        return tsr_kv_err_from(kerr, &e, rc);
    kv_dev_t *d = t->store->dev;
    if (d && n >= tsr_kv_dev_min_batch(d)) {
        size_t ok = 0;
        tsr_kv_dev_get_batch(d, t, keys, n, vals, stride, vlens, results, &ok);
        if (nok)
            *nok = ok;
        return TSR_OK;
    }
    uint64_t h[CHUNK];
    atomic_ulong *cnt[CHUNK];
    /* one reader registration per partition per chunk, not two atomic
     * read-modify-writes per key (when the partitions are not too many) */
    bool once = t->nparts <= CHUNK;
    size_t ok = 0;
    for (size_t b = 0; b < n; b += CHUNK) {
        size_t m = n - b < CHUNK ? n - b : CHUNK;
        for (size_t i = 0; i < m; i++)
            h[i] = tsr_hash_bytes(keys[b + i].key, keys[b + i].klen);
        for (size_t i = 0; i < m && i < AHEAD; i++)
            tsr_kv_part_prefetch(&t->parts[kv_part_of(h[i], t->nparts)], h[i]);
        for (uint32_t q = 0; once && q < t->nparts; q++)
            cnt[q] = tsr_kv_part_enter(&t->parts[q]);
        for (size_t i = 0; i < m; i++) {
            if (i + AHEAD < m)
                tsr_kv_part_prefetch(&t->parts[kv_part_of(h[i + AHEAD], t->nparts)], h[i + AHEAD]);
            size_t k = b + i;
            kv_part_t *p = &t->parts[kv_part_of(h[i], t->nparts)];
            unsigned char *dst = (unsigned char *)vals + k * stride;
            tsr_status_t r =
                once ? tsr_kv_part_get_in(p, h[i], keys[k].key, (uint32_t)keys[k].klen, dst,
                                          stride, &vlens[k])
                     : tsr_kv_part_get(p, h[i], keys[k].key, (uint32_t)keys[k].klen, dst, stride,
                                       &vlens[k]);
            if (r != TSR_OK)
                vlens[k] = 0;
            ok += r == TSR_OK;
            if (results)
                results[k] = r;
        }
        for (uint32_t q = 0; once && q < t->nparts; q++)
            tsr_kv_part_leave(cnt[q]);
    }
    if (nok)
        *nok = ok;
    return TSR_OK;
}
