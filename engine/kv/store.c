/*
 * store.c - the embedded kv store of include/tessera/kv.h: a catalog of named
 * tables (each an array of partitions, part.c) over one write-ahead log and
 * snapshot (wal.c) in the data dir.
 *
 * Locking. store->rw: writes hold it shared while they apply (validation,
 * log append and slot write happen under the partition's mutex, so the log
 * order of a key's writes is the order they were applied); create, drop and
 * a snapshot's log rotation hold it exclusive (the snapshot copies the
 * tables after it, while writes go on). The wait for durability (group commit) comes
 * after rw is released. Reads take no lock at all.
 *
 * Lifetime. A table is reference counted: the catalog holds one reference
 * and every open handle one; drop removes it from the catalog and marks it
 * dropped (ops on old handles fail NOT_FOUND); the last close frees it.
 *
 * Recovery (open): load the snapshot, replay the log records after its lsn
 * (CREATE, DROP, PUT, DEL, applied as upserts/deletes: they are effects),
 * then append to a new log file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/lock.h"

tsr_status_t tsr_kv_err_from(tsr_kv_err_t *out, const tsr_error_t *err, tsr_status_t st)
{
    if (out && st != TSR_OK && out->status == TSR_OK) {
        out->status = st;
        snprintf(out->message, sizeof(out->message), "%s",
                 err && err->status != TSR_OK ? err->message : tsr_status_str(st));
    }
    return st;
}

#define FAIL(st, ...)                                                                              \
    do {                                                                                           \
        tsr_error_set(&e, (st), __VA_ARGS__);                                                      \
        return tsr_kv_err_from(kerr, &e, (st));                                                    \
    } while (0)

/* ---- tables ----------------------------------------------------------------------- */

static void table_unref(tsr_kv_table_t *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    tsr_mem_t *mem = t->store->mem;
    for (uint32_t i = 0; t->parts && i < t->nparts; i++)
        tsr_kv_part_fini(&t->parts[i]);
    tsr_mem_free(mem, t->parts);
    tsr_mem_free(mem, t->name);
    tsr_mem_free(mem, t);
}

static tsr_status_t table_new(tsr_kv_store_t *s, const char *name, size_t nlen, uint32_t id,
                              uint32_t nparts, uint32_t max_key, uint32_t max_val, uint64_t cap,
                              tsr_kv_table_t **out, tsr_error_t *err)
{
    tsr_kv_table_t *t = tsr_mem_calloc(s->mem, 1, sizeof(*t));
    if (!t)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    t->store = s;
    t->id = id;
    t->max_key = max_key;
    t->max_val = max_val;
    atomic_init(&t->refs, 1);
    atomic_init(&t->dropped, false);
    tsr_status_t rc = TSR_OK;
    t->name = tsr_mem_strndup(s->mem, name, nlen);
    t->parts = tsr_mem_calloc(s->mem, nparts, sizeof(*t->parts));
    if (!t->name || !t->parts) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
        goto err_unref;
    }
    for (uint32_t i = 0; i < nparts; i++) {
        rc = tsr_kv_part_init(&t->parts[i], s->mem, s->transport, max_key, max_val,
                              cap / nparts + 1, err);
        if (rc != TSR_OK)
            goto err_unref;
        t->parts[i].store = s;
        t->nparts = i + 1;
    }
    *out = t;
    return TSR_OK;

err_unref:
    table_unref(t);
    return rc;
}

static tsr_kv_table_t *find_name(tsr_kv_store_t *s, const char *name, size_t *idx)
{
    for (size_t i = 0; i < s->ntabs; i++)
        if (strcmp(s->tabs[i]->name, name) == 0) {
            if (idx)
                *idx = i;
            return s->tabs[i];
        }
    return NULL;
}

static tsr_kv_table_t *find_id(tsr_kv_store_t *s, uint32_t id, size_t *idx)
{
    for (size_t i = 0; i < s->ntabs; i++)
        if (s->tabs[i]->id == id) {
            if (idx)
                *idx = i;
            return s->tabs[i];
        }
    return NULL;
}

static tsr_status_t catalog_add(tsr_kv_store_t *s, tsr_kv_table_t *t, tsr_error_t *err)
{
    pthread_mutex_lock(&s->cat_mu);
    int g = tsr_mem_grow(s->mem, (void **)&s->tabs, &s->cap, s->ntabs + 1, sizeof(*s->tabs));
    if (g == 0)
        s->tabs[s->ntabs++] = t;
    pthread_mutex_unlock(&s->cat_mu);
    if (g != 0)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    if (t->id >= s->next_id)
        s->next_id = t->id + 1;
    return TSR_OK;
}

static void catalog_remove(tsr_kv_store_t *s, size_t idx)
{
    pthread_mutex_lock(&s->cat_mu);
    tsr_kv_table_t *t = s->tabs[idx];
    s->tabs[idx] = s->tabs[--s->ntabs];
    pthread_mutex_unlock(&s->cat_mu);
    atomic_store(&t->dropped, true);
    table_unref(t);
}

/* CREATE payload: u32 id, parts, max_key, max_val, name length, name. */
static void create_hdr(unsigned char h[20], const tsr_kv_table_t *t)
{
    kv_put32(h, t->id);
    kv_put32(h + 4, t->nparts);
    kv_put32(h + 8, t->max_key);
    kv_put32(h + 12, t->max_val);
    kv_put32(h + 16, (uint32_t)strlen(t->name));
}

/* ---- recovery ---------------------------------------------------------------------- */

static tsr_status_t apply_rec(void *arg, uint64_t lsn, kv_rec_t type, const unsigned char *p,
                              size_t len, tsr_error_t *err)
{
    tsr_kv_store_t *s = arg;
    (void)lsn;
    if (len < 4)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: short record of type %d", (int)type);
    uint32_t id = kv_get32(p);
    tsr_kv_table_t *t = find_id(s, id, NULL);
    switch (type) {
    case KV_REC_CREATE: {
        if (len < 20 || kv_get32(p + 16) != len - 20 || kv_get32(p + 4) == 0)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: bad create record");
        if (t)
            return TSR_OK; /* replayed twice: harmless */
        tsr_kv_table_t *nt;
        tsr_status_t rc = table_new(s, (const char *)p + 20, len - 20, id, kv_get32(p + 4),
                                    kv_get32(p + 8), kv_get32(p + 12), 0, &nt, err);
        if (rc == TSR_OK && (rc = catalog_add(s, nt, err)) != TSR_OK)
            table_unref(nt);
        return rc;
    }
    case KV_REC_DROP: {
        size_t idx;
        if (find_id(s, id, &idx))
            catalog_remove(s, idx);
        return TSR_OK;
    }
    case KV_REC_PUT:
    case KV_REC_DEL: {
        bool put = type == KV_REC_PUT;
        size_t hl = put ? 12 : 8;
        if (!t || len < hl)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: record for unknown table %u", id);
        uint32_t kl = kv_get32(p + 4), vl = put ? kv_get32(p + 8) : 0;
        if ((uint64_t)kl + vl != len - hl || kl > t->max_key || vl > t->max_val)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: bad record lengths");
        const unsigned char *k = p + hl;
        uint64_t h = tsr_hash_bytes(k, kl);
        kv_part_t *pt = &t->parts[kv_part_of(h, t->nparts)];
        tsr_status_t rc = tsr_kv_part_write(pt, put ? KV_OP_UPSERT : KV_OP_DELETE, h, k, kl, k + kl,
                                            vl, NULL, NULL, err);
        return rc == TSR_ERR_NOT_FOUND ? TSR_OK : rc;
    }
    case KV_REC_TXN: /* a transaction's commit record (txn_apply.c) */
        return tsr_kv_txn_replay(s, p, len, err);
    }
    return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: unknown record type %d", (int)type);
}

/* ---- open / close ------------------------------------------------------------------- */

static void *snapper(void *arg);

tsr_status_t tsr_kv_open(const tsr_kv_options_t *opts, tsr_kv_store_t **out, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!out)
        FAIL(TSR_ERR_INVALID_ARG, "kv: no output handle");
    tsr_kv_options_t o = {0};
    if (opts)
        o = *opts;
    tsr_kv_store_t *s = tsr_mem_calloc(NULL, 1, sizeof(*s));
    if (!s)
        FAIL(TSR_ERR_NOMEM, "kv: out of memory");
    s->fence = o.fence;
    s->transport = o.transport;
    s->snapshot_bytes = o.snapshot_bytes ? o.snapshot_bytes : (64u << 20);
    s->next_id = 1;
    pthread_rwlock_init(&s->rw, NULL);
    pthread_mutex_init(&s->cat_mu, NULL);
    pthread_mutex_init(&s->snap_mu, NULL);
    pthread_mutex_init(&s->bg_mu, NULL);
    pthread_cond_init(&s->bg_cv, NULL);
    atomic_init(&s->snapping, false);
    tsr_status_t rc = TSR_OK;
    if (o.device && o.device[0] && strcmp(o.device, "cpu") != 0) {
        rc = tsr_kv_dev_open(o.device, o.device_min_batch, &s->dev, &e);
        if (rc != TSR_OK)
            goto err_close;
    }
    if (o.data_dir) {
        s->dir = tsr_mem_strdup(NULL, o.data_dir);
        if (!s->dir) {
            rc = tsr_error_set(&e, TSR_ERR_NOMEM, "kv: out of memory");
            goto err_close;
        }
        if (mkdir(o.data_dir, 0755) != 0 && errno != EEXIST) {
            rc = tsr_error_set(&e, TSR_ERR_IO, "kv: mkdir %s: %s", o.data_dir, strerror(errno));
            goto err_close;
        }
        rc = tsr_kv_snap_load(NULL, s->dir, apply_rec, s, &s->rec.snapshot_lsn, &e);
        if (rc != TSR_OK)
            goto err_close;
        s->rec.last_lsn = s->rec.snapshot_lsn;
        rc = tsr_kv_wal_replay(NULL, s->dir, s->rec.snapshot_lsn, apply_rec, s, &s->rec, &e);
        if (rc != TSR_OK)
            goto err_close;
        rc = tsr_kv_store_id_load(s->dir, &s->store_id, &s->rec.new_identity, &e);
        if (rc != TSR_OK)
            goto err_close;
        rc = tsr_kv_wal_open(NULL, s->dir, o.sync, s->rec.last_lsn + 1, &s->wal, &e);
        if (rc != TSR_OK)
            goto err_close;
        if (pthread_create(&s->snapper, NULL, snapper, s) != 0) {
            rc = tsr_error_set(&e, TSR_ERR_INTERNAL, "kv: cannot start the snapshot thread");
            goto err_close;
        }
        s->snapper_started = true;
    }
    *out = s;
    /* records are missing between log files: a snapshot now covers the gap
     * (and drops the files around it), so the next open does not find it
     * again and make yet another identity. Best effort: if it fails, the
     * next open finds the gap again (one more identity: whole copies). */
    if (s->rec.lsn_gap)
        (void)tsr_kv_checkpoint(s, NULL);
    return TSR_OK;

err_close:
    tsr_kv_close(s);
    return tsr_kv_err_from(kerr, &e, rc);
}

void tsr_kv_close(tsr_kv_store_t *s)
{
    if (!s)
        return;
    if (s->snapper_started) {
        pthread_mutex_lock(&s->bg_mu);
        s->snap_stop = true;
        pthread_cond_signal(&s->bg_cv);
        pthread_mutex_unlock(&s->bg_mu);
        pthread_join(s->snapper, NULL);
    }
    tsr_kv_wal_close(s->wal);
    for (size_t i = 0; i < s->ntabs; i++)
        table_unref(s->tabs[i]);
    tsr_mem_free(NULL, s->tabs);
    tsr_mem_free(NULL, s->dir);
    tsr_kv_dev_close(s->dev);
    pthread_rwlock_destroy(&s->rw);
    pthread_mutex_destroy(&s->cat_mu);
    pthread_mutex_destroy(&s->snap_mu);
    pthread_cond_destroy(&s->bg_cv);
    pthread_mutex_destroy(&s->bg_mu);
    tsr_mem_free(NULL, s);
}

void tsr_kv_device_stats(tsr_kv_store_t *s, tsr_kv_device_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s && s->dev)
        tsr_kv_dev_stats(s->dev, out);
}

void tsr_kv_recovery_info(const tsr_kv_store_t *s, tsr_kv_recovery_t *out)
{
    *out = s->rec;
}

/* Slots of a partition written to the snapshot per hold of its mutex:
 * writers of that partition wait for at most one page (a few hundred us),
 * not for the whole snapshot. */
#define SNAP_PAGE 512u
/* Restarts of a partition's copy after rehashes before the rest of it is
 * copied in one hold of its mutex. */
#define SNAP_RESTARTS 3u

/* Writes partition p's pairs to the snapshot, a page at a time: copied
 * under its mutex (the slots are stable under it: plain writes, batches and
 * transaction applies all hold it) into buf, written to the file after it
 * (a write may wait for the page cache's writeback: 40 ms with back-to-back
 * snapshots of a 1M-key table, which writers of the partition would wait
 * for too). A rehash between pages restarts the partition on the new
 * table (pairs written twice load as upserts); after SNAP_RESTARTS of
 * them the rest is copied in one hold. Slots a transaction reserved
 * for an insert are not values yet and are skipped; a slot locked by a
 * committing transaction still holds its committed value. buf (*cap bytes)
 * is the caller's, grown here. */
static tsr_status_t snap_partition(tsr_kv_store_t *s, kv_snap_writer_t *w, const tsr_kv_table_t *t,
                                   kv_part_t *p, unsigned char **buf, size_t *cap, tsr_error_t *err)
{
    tsr_status_t rc = TSR_OK;
    uint64_t epoch = 0, pos = 0;
    unsigned restarts = 0;
    bool done = false;
    while (rc == TSR_OK && !done) {
        size_t len = 0;
        pthread_mutex_lock(&p->wlock);
        kv_tab_t *tab = atomic_load(&p->tab);
        if (pos != 0 && tab->epoch != epoch) {
            pos = 0; /* rehashed: start over on the new table */
            restarts++;
        }
        epoch = tab->epoch;
        /* a partition growing that fast: the rest in this one hold, so the
         * copy ends (tables double, so this is rare) */
        uint64_t page = restarts >= SNAP_RESTARTS ? tab->nslots : SNAP_PAGE;
        uint64_t end = pos + page < tab->nslots ? pos + page : tab->nslots;
        for (; pos < end; pos++) {
            kv_slot_t *sl = kv_slot_at(tab, pos);
            if (sl->state != KV_FULL || sl->pad == KV_TXN_RESERVED)
                continue;
            size_t n = 12 + (size_t)sl->klen + sl->vlen;
            if (tsr_mem_grow(s->mem, (void **)buf, cap, len + n, 1) != 0) {
                rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory for a snapshot page");
                break;
            }
            unsigned char *r = *buf + len;
            kv_put32(r, t->id);
            kv_put32(r + 4, sl->klen);
            kv_put32(r + 8, sl->vlen);
            memcpy(r + 12, sl->data, sl->klen);
            memcpy(r + 12 + sl->klen, sl->data + t->max_key, sl->vlen);
            len += n;
        }
        done = pos >= tab->nslots;
        pthread_mutex_unlock(&p->wlock);
        for (size_t o = 0; o < len && rc == TSR_OK;) {
            const unsigned char *r = *buf + o;
            size_t n = 12 + (size_t)kv_get32(r + 4) + kv_get32(r + 8);
            kv_piece_t pc[1] = {{r, n}};
            rc = tsr_kv_snap_add(w, KV_REC_PUT, pc, 1, err);
            o += n;
        }
    }
    return rc;
}

/* A fuzzy snapshot (the way ARIES-style engines checkpoint): writers stop
 * only while the log is rotated and the tables are listed (the store's
 * write lock); the tables are then copied while writes go on. Every write
 * after the rotation is in the new log, whose replay (records are effects:
 * upserts and deletes) brings each key the copy caught at any point since
 * to its last value; a key nobody wrote since was stable during the copy.
 * A pair the copy caught may come from a write whose record is not durable
 * yet (applied values are visible before their record is on disk), so the
 * log is made durable up to its last record before the snapshot replaces
 * the old one: a crash after that finds every record the snapshot's values
 * depend on. Snapshots are serialized by snap_mu (one snapshot.tmp). */
static tsr_status_t snapshot(tsr_kv_store_t *s, tsr_error_t *err)
{
    pthread_mutex_lock(&s->snap_mu);
    uint64_t last = 0;
    tsr_kv_table_t **tabs = NULL;
    size_t ntabs = 0;
    kv_snap_writer_t *w = NULL;
    unsigned char *page = NULL; /* one page of records at a time */
    size_t page_cap = 0;
    pthread_rwlock_wrlock(&s->rw);
    tsr_status_t rc = tsr_kv_wal_rotate(s->wal, &last, err);
    if (rc == TSR_OK && s->ntabs) {
        tabs = tsr_mem_calloc(s->mem, s->ntabs, sizeof(*tabs));
        if (!tabs)
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
        for (size_t i = 0; tabs && i < s->ntabs; i++) {
            tabs[i] = s->tabs[i];
            atomic_fetch_add(&tabs[i]->refs, 1); /* a drop meanwhile frees nothing */
        }
        ntabs = tabs ? s->ntabs : 0;
    }
    pthread_rwlock_unlock(&s->rw);
    if (rc == TSR_OK)
        rc = tsr_kv_snap_begin(NULL, s->dir, last, &w, err);
    for (size_t i = 0; i < ntabs && rc == TSR_OK; i++) {
        tsr_kv_table_t *t = tabs[i];
        unsigned char h[20];
        create_hdr(h, t);
        kv_piece_t pc[2] = {{h, 20}, {t->name, strlen(t->name)}};
        rc = tsr_kv_snap_add(w, KV_REC_CREATE, pc, 2, err);
        for (uint32_t pi = 0; pi < t->nparts && rc == TSR_OK; pi++)
            rc = snap_partition(s, w, t, &t->parts[pi], &page, &page_cap, err);
    }
    if (rc == TSR_OK)
        rc = tsr_kv_wal_commit(s->wal, tsr_kv_wal_last_lsn(s->wal), err);
    if (rc == TSR_OK) {
        rc = tsr_kv_snap_finish(w, err); /* frees w */
        w = NULL;
    }
    if (rc == TSR_OK)
        tsr_kv_wal_drop_old(s->wal, last);
    tsr_kv_snap_abort(w);
    for (size_t i = 0; i < ntabs; i++)
        table_unref(tabs[i]);
    tsr_mem_free(s->mem, tabs);
    tsr_mem_free(s->mem, page);
    pthread_mutex_unlock(&s->snap_mu);
    return rc;
}

tsr_status_t tsr_kv_checkpoint(tsr_kv_store_t *s, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!s || !s->wal)
        return TSR_OK;
    return tsr_kv_err_from(kerr, &e, snapshot(s, &e));
}

/* Automatic snapshots run on the store's snapper thread: the writer whose
 * write passed snapshot_bytes only asks. A snapshot takes as long as the
 * copy of every table (0.5-0.7 s for a 1M-key table here); run by that
 * writer it would have been that write's latency, and run by a txn
 * server's syncer it held every remote commit's acknowledgment for as
 * long, although the copy no longer stops other writers. */
void tsr_kv_store_maybe_snapshot(tsr_kv_store_t *s)
{
    if (!s->snapper_started || tsr_kv_wal_bytes(s->wal) < s->snapshot_bytes)
        return;
    if (atomic_exchange(&s->snapping, true))
        return; /* asked already, or running */
    pthread_mutex_lock(&s->bg_mu);
    s->snap_wanted = true;
    pthread_cond_signal(&s->bg_cv);
    pthread_mutex_unlock(&s->bg_mu);
}

/* The snapper: one snapshot per request; a request pending at close is
 * still carried out (close joins after it), so a store that passed its
 * threshold leaves a snapshot. */
static void *snapper(void *arg)
{
    tsr_kv_store_t *s = arg;
    pthread_mutex_lock(&s->bg_mu);
    for (;;) {
        while (!s->snap_wanted && !s->snap_stop)
            pthread_cond_wait(&s->bg_cv, &s->bg_mu);
        if (!s->snap_wanted)
            break;
        s->snap_wanted = false;
        pthread_mutex_unlock(&s->bg_mu);
        tsr_kv_checkpoint(s, NULL); /* a failure leaves the log growing; asked again later */
        atomic_store(&s->snapping, false);
        pthread_mutex_lock(&s->bg_mu);
    }
    pthread_mutex_unlock(&s->bg_mu);
    return NULL;
}

/* ---- catalog -------------------------------------------------------------------------- */

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= TSR_KV_NAME_MAX;
}

tsr_status_t tsr_kv_table_create(tsr_kv_store_t *s, const char *name,
                                 const tsr_kv_table_params_t *params, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!s || !name_ok(name))
        FAIL(TSR_ERR_INVALID_ARG, "kv: a table name is 1..%u bytes", TSR_KV_NAME_MAX);
    tsr_kv_table_params_t p = {0};
    if (params)
        p = *params;
    if (!p.partitions)
        p.partitions = 1;
    if (!p.max_key)
        p.max_key = TSR_KV_DEFAULT_MAX_KEY;
    if (!p.max_value)
        p.max_value = TSR_KV_DEFAULT_MAX_VALUE;
    if (p.partitions > 4096 || p.max_key > TSR_KV_MAX_KEY_LIMIT ||
        p.max_value > TSR_KV_MAX_VALUE_LIMIT)
        FAIL(TSR_ERR_INVALID_ARG,
             "kv: table '%s': partitions 1..4096, max key <= %u, max value <= %u bytes", name,
             TSR_KV_MAX_KEY_LIMIT, TSR_KV_MAX_VALUE_LIMIT);
    uint64_t lsn = 0;
    tsr_status_t rc;
    pthread_rwlock_wrlock(&s->rw);
    if (find_name(s, name, NULL)) {
        rc = tsr_error_set(&e, TSR_ERR_EXISTS, "kv: table '%s' already exists", name);
        goto out;
    }
    tsr_kv_table_t *t;
    rc = table_new(s, name, strlen(name), s->next_id, p.partitions, p.max_key, p.max_value,
                   p.capacity, &t, &e);
    if (rc != TSR_OK)
        goto out;
    if (s->wal) {
        unsigned char h[20];
        create_hdr(h, t);
        kv_piece_t pc[2] = {{h, 20}, {name, strlen(name)}};
        rc = tsr_kv_wal_append(s->wal, KV_REC_CREATE, pc, 2, &lsn, &e);
    }
    if (rc == TSR_OK)
        rc = catalog_add(s, t, &e);
    if (rc != TSR_OK)
        table_unref(t);
out:
    pthread_rwlock_unlock(&s->rw);
    if (rc == TSR_OK && lsn)
        rc = tsr_kv_wal_commit(s->wal, lsn, &e);
    return tsr_kv_err_from(kerr, &e, rc);
}

tsr_status_t tsr_kv_table_drop(tsr_kv_store_t *s, const char *name, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!s || !name_ok(name))
        FAIL(TSR_ERR_INVALID_ARG, "kv: a table name is 1..%u bytes", TSR_KV_NAME_MAX);
    uint64_t lsn = 0;
    tsr_status_t rc = TSR_OK;
    size_t idx;
    pthread_rwlock_wrlock(&s->rw);
    tsr_kv_table_t *t = find_name(s, name, &idx);
    if (!t) {
        rc = tsr_error_set(&e, TSR_ERR_NOT_FOUND, "kv: no table '%s'", name);
        goto out;
    }
    if (s->wal) {
        unsigned char h[4];
        kv_put32(h, t->id);
        kv_piece_t pc[1] = {{h, 4}};
        rc = tsr_kv_wal_append(s->wal, KV_REC_DROP, pc, 1, &lsn, &e);
    }
    if (rc == TSR_OK)
        catalog_remove(s, idx);
out:
    pthread_rwlock_unlock(&s->rw);
    if (rc == TSR_OK && lsn)
        rc = tsr_kv_wal_commit(s->wal, lsn, &e);
    return tsr_kv_err_from(kerr, &e, rc);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

tsr_status_t tsr_kv_table_list(tsr_kv_store_t *s, char ***names, size_t *n, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!s || !names)
        FAIL(TSR_ERR_INVALID_ARG, "kv: no output");
    pthread_mutex_lock(&s->cat_mu);
    char **v = tsr_mem_calloc(NULL, s->ntabs + 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; v && i < s->ntabs; i++) {
        v[i] = tsr_mem_strdup(NULL, s->tabs[i]->name);
        if (!v[i])
            break;
        k++;
    }
    bool ok = v && k == s->ntabs;
    pthread_mutex_unlock(&s->cat_mu);
    if (!ok) {
        tsr_kv_names_free(v);
        FAIL(TSR_ERR_NOMEM, "kv: out of memory");
    }
    qsort(v, k, sizeof(*v), cmp_str);
    *names = v;
    if (n)
        *n = k;
    return TSR_OK;
}

void tsr_kv_names_free(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        tsr_mem_free(NULL, names[i]);
    tsr_mem_free(NULL, names);
}

tsr_status_t tsr_kv_table_open(tsr_kv_store_t *s, const char *name, tsr_kv_table_t **out,
                               tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!s || !name || !out)
        FAIL(TSR_ERR_INVALID_ARG, "kv: bad arguments");
    pthread_mutex_lock(&s->cat_mu);
    tsr_kv_table_t *t = find_name(s, name, NULL);
    if (t)
        atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&s->cat_mu);
    if (!t)
        FAIL(TSR_ERR_NOT_FOUND, "kv: no table '%s'", name);
    *out = t;
    return TSR_OK;
}

void tsr_kv_table_close(tsr_kv_table_t *t)
{
    table_unref(t);
}

void tsr_kv_table_info(const tsr_kv_table_t *t, tsr_kv_table_params_t *out)
{
    memset(out, 0, sizeof(*out));
    out->partitions = t->nparts;
    out->max_key = t->max_key;
    out->max_value = t->max_val;
    for (uint32_t i = 0; i < t->nparts; i++)
        out->capacity += atomic_load(&t->parts[i].tab)->nslots;
}

kv_part_t *tsr_kv_table_parts(tsr_kv_table_t *t, uint32_t *nparts)
{
    *nparts = t->nparts;
    return t->parts;
}
