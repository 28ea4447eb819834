/*
 * commit.c - the commit protocol of a transaction on a local kv store
 * (docs/kv.md, "Transactions"), run for local transactions and by the server
 * for remote ones:
 *
 *   1. lock the write set, one key at a time in (table id, partition, hash,
 *      key) order, by compare-and-swap on the slot's lock word
 *      (tsr_kv_txn_lock); a key this transaction read is locked only if its
 *      version is still the one read (or still absent). No waiting: any lock
 *      that fails aborts the commit (TSR_ERR_CONFLICT), so there is no
 *      deadlock whatever the order; the sorted order only makes two
 *      committers that overlap meet at their first common key. A key the
 *      remote client locked itself (one-sided CAS, entry rtag) is taken
 *      over instead (tsr_kv_txn_adopt): the word must still hold its tag;
 *      an abort gives such a lock back if it was not taken over yet.
 *   2. check the fencing tokens of fenced writes (TSR_ERR_STALE).
 *   3. validate the read set: every key read and not written still has the
 *      version read and is not locked by another committer.
 *   4. append ONE commit record with every write to the store's log: replay
 *      applies all of it or none of it (the record is CRC'd whole).
 *   5. apply each write with a fresh version and unlock it.
 *   6. wait (outside every lock) until the record is durable (group commit),
 *      then acknowledge.
 * tsr_txn_commit_prepare runs steps 1-5 and returns the record's lsn, so a
 * caller serving many commits (the txn server, remote.c) can wait for many
 * records with one wait; tsr_txn_commit_local runs all six.
 *
 * Steps 1-5 hold the store's rwlock shared, so a snapshot's log rotation
 * (exclusive) never splits a commit: the record is in the old log with all
 * its effects applied, or in the new one. The snapshot's copy that follows
 * runs beside commits (it may catch some of a commit's effects; that
 * record is made durable before the snapshot is, and replay applies it
 * whole: store.c). Locks are held from step 1 to 5 only, never across an
 * fsync. A commit is serialized at step 3: all its write locks are
 * held and its reads are still current.
 *
 * Visibility before durability: applied values are visible before the
 * record is durable (as plain kv writes are). A transaction that reads such
 * a value commits after it in the same log, so recovery, which stops at the
 * first torn record, never keeps a dependent commit without its cause.
 */
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "entry_index.h"
#include "tessera/lock.h"
#include "txn_internal.h"

tsr_status_t tsr_txn_local_init(txn_local_t *l, tsr_kv_store_t *store, tsr_error_t *err)
{
    memset(l, 0, sizeof(*l));
    l->store = store;
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "txn: pthread_mutex_init failed");
    return TSR_OK;
}

void tsr_txn_local_fini(txn_local_t *l)
{
    for (size_t i = 0; i < l->ntabs; i++)
        tsr_kv_table_close(l->tabs[i]);
    tsr_mem_free(NULL, l->tabs);
    pthread_mutex_destroy(&l->mu);
}

tsr_status_t tsr_txn_local_table(txn_local_t *l, const char *name, tsr_kv_table_t **out,
                                 tsr_error_t *err)
{
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->ntabs; i++) {
        tsr_kv_table_t *t = l->tabs[i];
        if (strcmp(t->name, name) != 0)
            continue;
        if (!atomic_load(&t->dropped)) {
            *out = t;
            goto out;
        }
        /* dropped (maybe re-created since): its handle stays until fini,
         * since another thread may still be using it; open the new one */
    }
    if (tsr_mem_grow(NULL, (void **)&l->tabs, &l->cap, l->ntabs + 1, sizeof(*l->tabs)) != 0) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        goto out;
    }
    tsr_kv_err_t ke = {0};
    rc = tsr_kv_table_open(l->store, name, out, &ke);
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "txn: %s", ke.message);
        goto out;
    }
    l->tabs[l->ntabs++] = *out;
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

tsr_status_t tsr_txn_read_local(txn_local_t *l, const char *table, uint64_t h, const void *key,
                                uint32_t klen, unsigned char **val, uint32_t *vlen, uint64_t *ver,
                                tsr_error_t *err)
{
    tsr_kv_table_t *t;
    tsr_status_t rc = tsr_txn_local_table(l, table, &t, err);
    if (rc != TSR_OK)
        return rc;
    if (klen > t->max_key)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "txn: key of %u bytes is longer than table '%s' allows (%u)", klen,
                             table, t->max_key);
    /* a small buffer first (a table's maximum may be megabytes); a longer
     * value is read again, whole, into a buffer of its size */
    kv_txn_key_t k = {t, h, key, klen};
    size_t cap = 256;
    unsigned char *buf = NULL;
    *val = NULL;
    *vlen = 0;
    for (;;) {
        tsr_mem_free(NULL, buf);
        buf = tsr_mem_alloc(NULL, cap);
        if (!buf)
            return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        size_t vl = 0;
        rc = tsr_kv_txn_read(&k, buf, cap, &vl, ver);
        if (rc != TSR_OK) {
            tsr_mem_free(NULL, buf);
            if (rc == TSR_ERR_CONFLICT)
                tsr_error_set(
                    err, rc, "txn: key in table '%s' is locked by a committing transaction", table);
            return rc;
        }
        if (vl <= cap) {
            *val = buf;
            *vlen = (uint32_t)vl;
            return TSR_OK;
        }
        cap = vl;
    }
}

/* One write being committed, sortable. */
typedef struct cw {
    kv_txn_key_t k;
    uint32_t part;
    const txn_entry_t *e;
    uint64_t expect; /* 0, KV_TXN_ABSENT or the version read */
    bool locked;
} cw_t;

static int cmp_cw(const void *a, const void *b)
{
    const cw_t *x = a, *y = b;
    if (x->k.t->id != y->k.t->id)
        return x->k.t->id < y->k.t->id ? -1 : 1;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    if (x->k.h != y->k.h)
        return x->k.h < y->k.h ? -1 : 1;
    if (x->k.klen != y->k.klen)
        return x->k.klen < y->k.klen ? -1 : 1;
    return x->k.klen ? memcmp(x->k.key, y->k.key, x->k.klen) : 0;
}

tsr_status_t tsr_txn_commit_local(txn_local_t *l, txn_sets_t *sets, tsr_error_t *err)
{
    uint64_t lsn = 0;
    tsr_status_t rc = tsr_txn_commit_prepare(l, sets, &lsn, err);
    /* 6. durable, then acknowledged */
    if (rc == TSR_OK && lsn) {
        rc = tsr_kv_wal_commit(l->store->wal, lsn, err);
        tsr_kv_store_maybe_snapshot(l->store);
    }
    return rc;
}

/* Steps 1-5; *lsn is the commit record's (0: nothing to wait for). */
tsr_status_t tsr_txn_commit_prepare(txn_local_t *l, txn_sets_t *sets, uint64_t *lsn_out,
                                    tsr_error_t *err)
{
    tsr_kv_store_t *s = l->store;
    tsr_status_t rc = TSR_OK;
    tsr_kv_table_t **tabs = NULL;
    cw_t *w = NULL;
    kv_txn_wrec_t *rec = NULL;
    bool *read_written = NULL;
    bool rw_held = false;
    txn_index_t rix = {0}; /* over sets->reads */
    uint64_t lsn = 0;

    *lsn_out = 0;
    tabs = tsr_mem_calloc(NULL, sets->ntabs ? sets->ntabs : 1, sizeof(*tabs));
    w = tsr_mem_calloc(NULL, sets->nwrites ? sets->nwrites : 1, sizeof(*w));
    rec = tsr_mem_calloc(NULL, sets->nwrites ? sets->nwrites : 1, sizeof(*rec));
    read_written = tsr_mem_calloc(NULL, sets->nreads ? sets->nreads : 1, sizeof(*read_written));
    if (!tabs || !w || !rec || !read_written) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory for a commit");
        goto cleanup;
    }
    /* the tables the sets name (a table only looked up, e.g. a get of an
     * unknown table, is not needed) */
    for (size_t i = 0; i < sets->nreads + sets->nwrites; i++) {
        const txn_entry_t *e = i < sets->nreads ? &sets->reads[i] : &sets->writes[i - sets->nreads];
        if (e->tab >= sets->ntabs) {
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: an entry names table %u of %u", e->tab,
                               sets->ntabs);
            goto cleanup;
        }
        if (!tabs[e->tab] &&
            (rc = tsr_txn_local_table(l, sets->tnames[e->tab], &tabs[e->tab], err)) != TSR_OK) {
            /* a table read from existed then: dropped since, so what was
             * read cannot be validated; a conflict, so tsr_txn_run's retry
             * reads afresh (and finds the table gone). A table only written
             * to may never have existed: NOT_FOUND stays. */
            if (rc == TSR_ERR_NOT_FOUND && i < sets->nreads) {
                tsr_error_clear(err);
                rc = tsr_error_set(err, TSR_ERR_CONFLICT,
                                   "txn: conflict: table '%s' was dropped since it was read",
                                   sets->tnames[e->tab]);
            }
            goto cleanup;
        }
    }
    for (size_t i = 0; i < sets->nwrites; i++) {
        const txn_entry_t *e = &sets->writes[i];
        tsr_kv_table_t *t = tabs[e->tab];
        if (e->klen > t->max_key || (!e->del && e->vlen > t->max_val)) {
            rc = tsr_error_set(err, TSR_ERR_INVALID_ARG,
                               "txn: a key or value is longer than table '%s' allows", t->name);
            goto cleanup;
        }
        w[i].k = (kv_txn_key_t){t, e->h, e->key, e->klen};
        w[i].part = kv_part_of(e->h, t->nparts);
        w[i].e = e;
        /* the read of the same key, if any (the sets hold each key once) */
        txn_entry_t *r =
            txn_index_find(&rix, sets->reads, sets->nreads, e->tab, e->h, e->key, e->klen);
        if (r) {
            w[i].expect = r->ver;
            read_written[r - sets->reads] = true;
        }
    }
    qsort(w, sets->nwrites, sizeof(*w), cmp_cw);

    if (sets->nwrites) {
        pthread_rwlock_rdlock(&s->rw);
        rw_held = true;
    }
    /* a table dropped since it was looked up (drop takes rw exclusive, so
     * none is dropped from here to step 5): a record logged after the DROP
     * would name a table id replay no longer knows, and the store would not
     * open again. Conflict: a retry looks the name up afresh. */
    for (size_t i = 0; i < sets->nwrites; i++)
        if (atomic_load(&w[i].k.t->dropped)) {
            rc = tsr_error_set(err, TSR_ERR_CONFLICT,
                               "txn: conflict: table '%s' was dropped during the commit",
                               w[i].k.t->name);
            goto cleanup;
        }
    /* 1. lock the write set (take over the keys a remote client locked
     * one-sided: its tag must still be in the word) */
    for (size_t i = 0; i < sets->nwrites; i++) {
        bool reserved;
        rc = w[i].e->rtag ? tsr_kv_txn_adopt(&w[i].k, w[i].e->rtag, w[i].expect)
                          : tsr_kv_txn_lock(&w[i].k, w[i].expect, &reserved, err);
        if (rc != TSR_OK) {
            if (rc == TSR_ERR_CONFLICT)
                tsr_error_set(err, rc,
                              "txn: conflict: a written key of table '%s' is locked or "
                              "changed",
                              w[i].k.t->name);
            goto abort;
        }
        w[i].locked = true;
    }
    /* 2. fencing tokens, checked while the keys are locked */
    for (size_t i = 0; i < sets->nwrites; i++) {
        const txn_entry_t *e = w[i].e;
        if (!e->lock)
            continue;
        if (!s->fence) {
            rc = tsr_error_set(err, TSR_ERR_INVALID_ARG,
                               "txn: a fenced write needs a store opened with a fence");
            goto abort;
        }
        tsr_lock_err_t le = {0};
        rc = tsr_lock_fence_check(s->fence, e->lock, e->token, &le);
        if (rc != TSR_OK) {
            tsr_error_set(err, rc, "txn: write refused: %s", le.message);
            goto abort;
        }
    }
    /* 3. validate the reads not locked above */
    for (size_t j = 0; j < sets->nreads; j++) {
        if (read_written[j])
            continue;
        const txn_entry_t *r = &sets->reads[j];
        kv_txn_key_t k = {tabs[r->tab], r->h, r->key, r->klen};
        if (tsr_kv_txn_validate(&k, r->ver) != TSR_OK) {
            rc = tsr_error_set(err, TSR_ERR_CONFLICT,
                               "txn: conflict: a key read from table '%s' changed",
                               tabs[r->tab]->name);
            goto abort;
        }
    }
    if (sets->nwrites == 0)
        goto cleanup; /* read-only: serialized at validation */
    /* 4. the commit record */
    for (size_t i = 0; i < sets->nwrites; i++)
        rec[i] = (kv_txn_wrec_t){&w[i].k, w[i].e->del, w[i].e->val, w[i].e->vlen};
    rc = tsr_kv_txn_log(s, rec, sets->nwrites, &lsn, err);
    if (rc != TSR_OK)
        goto abort;
    /* 5. apply and unlock */
    uint64_t ver = tsr_kv_txn_next_version(s);
    for (size_t i = 0; i < sets->nwrites; i++)
        tsr_kv_txn_apply(&w[i].k, w[i].e->del, w[i].e->val, w[i].e->vlen, ver);
    pthread_rwlock_unlock(&s->rw);
    rw_held = false;
    *lsn_out = lsn; /* step 6 is the caller's: tsr_txn_commit_local, or the
                     * txn server's syncer for many commits at once */
    goto cleanup;

abort:
    for (size_t i = 0; i < sets->nwrites; i++)
        if (w[i].locked)
            tsr_kv_txn_unlock(&w[i].k);
        else if (w[i].e->rtag) /* the client's lock, not taken over: give it back */
            tsr_kv_txn_release(&w[i].k, w[i].e->rtag, w[i].expect);
cleanup:
    if (rw_held)
        pthread_rwlock_unlock(&s->rw);
    txn_index_free(&rix);
    tsr_mem_free(NULL, tabs);
    tsr_mem_free(NULL, w);
    tsr_mem_free(NULL, rec);
    tsr_mem_free(NULL, read_written);
    return rc;
}
