/*
 * txn.c - transactions of include/tessera/txn.h: the read and write sets,
 * read-your-writes, commit and rollback, and tsr_txn_run's retries.
 *
 * A transaction is optimistic: reads go to the store (local: a lock-free
 * versioned read; remote: one call to the owner) and record the version they
 * saw, or the key's absence; writes only go into the write set (one entry
 * per key: a later put or delete of the same key replaces it). A get looks
 * in the write set first (read-your-writes), then in the read set (the same
 * value again: repeatable), then at the store. tsr_txn_get_many does the
 * same for several elements, but sends the first reads of all keys not yet
 * in the sets to the store at once (fetch_many: a remote db posts their
 * one-sided reads together, a backend may take them together, a local db
 * reads them one by one) and records them in the order of the elements, so
 * the sets are those n gets would have built; tsr_txn_get is get_many of
 * one element. Commit hands both sets to
 * the protocol (commit.c, locally or on the owner through remote.c), or to
 * a backend's db (tsr_txn_db_backend: a cluster table, whose scheduler
 * coordinates the commit, scheduler/txn_cluster.c).
 *
 * Sets are arrays searched linearly: transactions are meant to be small
 * (tens of keys); a large one costs O(reads x writes) at commit.
 *
 * Retries (tsr_txn_run): randomized exponential backoff ("full jitter"):
 * after the n-th conflict sleep a uniform random time below
 * min(backoff_us * 2^(n-1), backoff_max_us), so committers that collided
 * spread out instead of colliding again in step.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "entry_index.h"
#include "txn_internal.h"

struct tsr_txn {
    tsr_txn_db_t *db;
    txn_sets_t s;
    size_t rcap, wcap, tcap;
    txn_index_t rix, wix; /* over s.reads and s.writes (entry_index.h) */
    /* Remote db: every read so far came from the transaction's first read
     * call, which the owner found one consistent snapshot (READ_SNAP): a
     * commit without writes is decided here, with no call. */
    bool snap;
};

static tsr_status_t err_out(tsr_txn_err_t *out, const tsr_error_t *e, tsr_status_t st)
{
    if (out && st != TSR_OK && out->status == TSR_OK) {
        out->status = st;
        snprintf(out->message, sizeof(out->message), "%s",
                 e && e->status != TSR_OK ? e->message : tsr_status_str(st));
    }
    return st;
}

/* ---- dbs ---------------------------------------------------------------------------- */

tsr_status_t tsr_txn_db_local(tsr_kv_store_t *store, tsr_txn_db_t **out, tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!store || !out)
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_txn_db_t *db = tsr_mem_calloc(NULL, 1, sizeof(*db));
    if (!db)
        return err_out(xerr, NULL, TSR_ERR_NOMEM);
    tsr_status_t rc = tsr_txn_local_init(&db->local, store, &e);
    if (rc != TSR_OK) {
        tsr_mem_free(NULL, db);
        return err_out(xerr, &e, rc);
    }
    *out = db;
    return TSR_OK;
}

tsr_status_t tsr_txn_db_backend(const txn_backend_t *be, void *arg, tsr_txn_db_t **out,
                                tsr_error_t *err)
{
    tsr_txn_db_t *db = tsr_mem_calloc(NULL, 1, sizeof(*db));
    if (!db) {
        be->close(arg);
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    }
    db->be = be;
    db->be_arg = arg;
    *out = db;
    return TSR_OK;
}

void tsr_txn_db_close(tsr_txn_db_t *db)
{
    if (!db)
        return;
    if (db->be)
        db->be->close(db->be_arg);
    else if (!db->remote)
        tsr_txn_local_fini(&db->local);
    else
        tsr_txn_remote_fini(db);
    tsr_mem_free(NULL, db);
}

void tsr_txn_db_stats(tsr_txn_db_t *db, tsr_txn_stats_t *out)
{
    out->commits = atomic_load(&db->commits);
    out->conflicts = atomic_load(&db->conflicts);
    out->aborts = atomic_load(&db->aborts);
    out->reads_rma = atomic_load(&db->reads_rma);
    out->reads_rpc = atomic_load(&db->reads_rpc);
    out->commits_snapshot = atomic_load(&db->commits_snapshot);
    out->locks_one_sided = atomic_load(&db->locks_one_sided);
}

/* ---- one transaction ----------------------------------------------------------------- */

void tsr_txn_entry_free(txn_entry_t *e)
{
    tsr_mem_free(NULL, e->key);
    tsr_mem_free(NULL, e->val);
    tsr_mem_free(NULL, e->lock);
}

tsr_status_t tsr_txn_begin(tsr_txn_db_t *db, tsr_txn_t **out, tsr_txn_err_t *xerr)
{
    if (!db || !out)
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_txn_t *x = tsr_mem_calloc(NULL, 1, sizeof(*x));
    if (!x)
        return err_out(xerr, NULL, TSR_ERR_NOMEM);
    x->db = db;
    *out = x;
    return TSR_OK;
}

static void txn_free(tsr_txn_t *x)
{
    for (size_t i = 0; i < x->s.nreads; i++)
        tsr_txn_entry_free(&x->s.reads[i]);
    for (size_t i = 0; i < x->s.nwrites; i++)
        tsr_txn_entry_free(&x->s.writes[i]);
    for (uint32_t i = 0; i < x->s.ntabs; i++)
        tsr_mem_free(NULL, x->s.tnames[i]);
    tsr_mem_free(NULL, x->s.reads);
    tsr_mem_free(NULL, x->s.writes);
    tsr_mem_free(NULL, x->s.tnames);
    txn_index_free(&x->rix);
    txn_index_free(&x->wix);
    tsr_mem_free(NULL, x);
}

void tsr_txn_rollback(tsr_txn_t *x)
{
    if (!x)
        return;
    atomic_fetch_add(&x->db->aborts, 1);
    txn_free(x);
}

/* The index of a table name in x, added when new. */
static tsr_status_t tab_index(tsr_txn_t *x, const char *table, uint32_t *idx, tsr_error_t *err)
{
    size_t n = table ? strlen(table) : 0;
    if (n == 0 || n > TSR_KV_NAME_MAX)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "txn: a table name is 1..%u bytes",
                             TSR_KV_NAME_MAX);
    for (uint32_t i = 0; i < x->s.ntabs; i++)
        if (strcmp(x->s.tnames[i], table) == 0) {
            *idx = i;
            return TSR_OK;
        }
    if (tsr_mem_grow(NULL, (void **)&x->s.tnames, &x->tcap, (size_t)x->s.ntabs + 1,
                     sizeof(*x->s.tnames)) != 0)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    char *c = tsr_mem_strdup(NULL, table);
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    x->s.tnames[x->s.ntabs] = c;
    *idx = x->s.ntabs++;
    return TSR_OK;
}

/* The write (wix) or read (rix) of that key in x, or NULL. */
static txn_entry_t *find_write(tsr_txn_t *x, uint32_t tab, uint64_t h, const void *key, size_t klen)
{
    return txn_index_find(&x->wix, x->s.writes, x->s.nwrites, tab, h, key, klen);
}

static txn_entry_t *find_read(tsr_txn_t *x, uint32_t tab, uint64_t h, const void *key, size_t klen)
{
    return txn_index_find(&x->rix, x->s.reads, x->s.nreads, tab, h, key, klen);
}

static void copy_out(const unsigned char *val, uint32_t vl, void *buf, size_t cap, size_t *vlen)
{
    size_t c = vl < cap ? vl : cap;
    if (c)
        memcpy(buf, val, c);
    *vlen = vl;
}

/* One first read by the single-read path of x's db; a failure's text
 * (not an absent key's) goes to err. */
static void fetch_one(tsr_txn_db_t *db, txn_fetch_t *f, tsr_error_t *err)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    f->val = NULL;
    f->vlen = 0;
    f->ver = 0;
    f->loc.r = NULL;
    f->st =
        db->be ? db->be->read(db->be_arg, f->table, f->key, f->klen, &f->val, &f->vlen, &f->ver, &e)
        : db->remote
            ? tsr_txn_remote_read(db, f->table, f->key, f->klen, &f->val, &f->vlen, &f->ver,
                                  &f->loc, &e)
            : tsr_txn_read_local(&db->local, f->table, tsr_hash_bytes(f->key, f->klen), f->key,
                                 f->klen, &f->val, &f->vlen, &f->ver, &e);
    if (f->st != TSR_OK && !(f->st == TSR_ERR_NOT_FOUND && f->ver == KV_TXN_ABSENT))
        tsr_error_set(err, f->st, "%s", e.status != TSR_OK ? e.message : tsr_status_str(f->st));
}

/* n first reads: together where the db can (remote: one-sided reads
 * posted at once; a backend's read_many), else one after another. snap
 * (may be NULL): see tsr_txn_remote_read_many; false on other paths. */
static void fetch_many(tsr_txn_db_t *db, txn_fetch_t *f, size_t n, bool *snap, tsr_error_t *err)
{
    if (snap)
        *snap = false;
    if (n == 1) /* a single get's path, whatever the db */
        fetch_one(db, f, err);
    else if (db->be && db->be->read_many)
        db->be->read_many(db->be_arg, f, n, err);
    else if (!db->be && db->remote)
        tsr_txn_remote_read_many(db, f, n, snap, err);
    else
        for (size_t i = 0; i < n; i++)
            fetch_one(db, &f[i], err);
}

/* Adds a decided first read (f's value moves into the entry). */
static tsr_status_t record_read(tsr_txn_t *x, uint32_t tab, uint64_t h, txn_fetch_t *f)
{
    unsigned char *kc = tsr_mem_alloc(NULL, f->klen ? f->klen : 1);
    if (!kc || tsr_mem_grow(NULL, (void **)&x->s.reads, &x->rcap, x->s.nreads + 1,
                            sizeof(*x->s.reads)) != 0) {
        tsr_mem_free(NULL, kc);
        return TSR_ERR_NOMEM;
    }
    if (f->klen)
        memcpy(kc, f->key, f->klen);
    x->s.reads[x->s.nreads++] = (txn_entry_t){.tab = tab,
                                              .h = h,
                                              .key = kc,
                                              .klen = f->klen,
                                              .val = f->val,
                                              .vlen = f->vlen,
                                              .ver = f->ver,
                                              .loc = f->loc};
    f->val = NULL;
    return TSR_OK;
}

/* Per element of a get_many call: its table, hash and first read. */
typedef struct slot_of {
    uint32_t tab;
    uint64_t h;
    size_t fetch; /* index into the call's fetches; SIZE_MAX: none */
} slot_of_t;

#define GET_MANY_STACK 16 /* elements served without an allocation */

tsr_status_t tsr_txn_get_many(tsr_txn_t *x, tsr_txn_read_t *reads, size_t n, tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    bool bad = !x || (n && !reads);
    for (size_t i = 0; !bad && i < n; i++) {
        const tsr_txn_read_t *rd = &reads[i];
        size_t tl = rd->table ? strlen(rd->table) : 0;
        bad = (!rd->key && rd->klen) || (!rd->buf && rd->cap) || rd->klen > TSR_KV_MAX_KEY_LIMIT ||
              tl == 0 || tl > TSR_KV_NAME_MAX;
    }
    if (bad) {
        for (size_t i = 0; reads && i < n; i++)
            reads[i].status = TSR_ERR_INVALID_ARG;
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    }
    if (n == 0)
        return TSR_OK;
    slot_of_t so_stack[GET_MANY_STACK];
    txn_fetch_t f_stack[GET_MANY_STACK];
    /* the keys of the call's fetches, as entries, so that duplicates among
     * the elements are found through an index (entry_index.h) */
    txn_entry_t k_stack[GET_MANY_STACK];
    slot_of_t *so = so_stack;
    txn_fetch_t *f = f_stack;
    txn_entry_t *fk = k_stack;
    txn_index_t fix = {0};
    if (n > GET_MANY_STACK) {
        so = tsr_mem_alloc(NULL, n * sizeof(*so));
        f = tsr_mem_alloc(NULL, n * sizeof(*f));
        fk = tsr_mem_alloc(NULL, n * sizeof(*fk));
        if (!so || !f || !fk) {
            if (so != so_stack)
                tsr_mem_free(NULL, so);
            if (f != f_stack)
                tsr_mem_free(NULL, f);
            if (fk != k_stack)
                tsr_mem_free(NULL, fk);
            return err_out(xerr, NULL, TSR_ERR_NOMEM);
        }
    }
    tsr_status_t rc = TSR_OK;
    size_t nf = 0;
    /* which elements need a first read (one per key, duplicates share it) */
    for (size_t i = 0; i < n && rc == TSR_OK; i++) {
        tsr_txn_read_t *rd = &reads[i];
        rd->status = TSR_OK;
        rc = tab_index(x, rd->table, &so[i].tab, &e);
        if (rc != TSR_OK)
            break;
        so[i].h = tsr_hash_bytes(rd->key, rd->klen);
        so[i].fetch = SIZE_MAX;
        if (find_write(x, so[i].tab, so[i].h, rd->key, rd->klen) ||
            find_read(x, so[i].tab, so[i].h, rd->key, rd->klen))
            continue;
        const txn_entry_t *dup =
            txn_index_find(&fix, fk, nf, so[i].tab, so[i].h, rd->key, rd->klen);
        if (dup) {
            so[i].fetch = (size_t)(dup - fk);
        } else {
            so[i].fetch = nf;
            /* the key is only compared, never written through */
            fk[nf] = (txn_entry_t){.tab = so[i].tab,
                                   .h = so[i].h,
                                   .key = (unsigned char *)(uintptr_t)rd->key,
                                   .klen = (uint32_t)rd->klen};
            f[nf++] = (txn_fetch_t){.table = rd->table, .key = rd->key, .klen = (uint32_t)rd->klen};
        }
    }
    if (rc != TSR_OK) { /* out of memory for a table name: nothing read */
        for (size_t i = 0; i < n; i++)
            reads[i].status = rc;
        goto out;
    }
    /* The transaction's first reads may come back as one snapshot; any
     * later first read ends that (its key was read at another time). */
    bool opening = x->s.nreads == 0 && x->s.nwrites == 0;
    bool snap = false;
    fetch_many(x->db, f, nf, opening ? &snap : NULL, &e);
    if (nf)
        x->snap = snap;
    /* record the decided first reads (in order: the read set is what
     * sequential gets would have built) */
    for (size_t i = 0, first = 0; i < n; i++) {
        /* fetches were numbered in the order of their first elements */
        if (so[i].fetch != first)
            continue;
        first++;
        txn_fetch_t *fi = &f[so[i].fetch];
        if ((fi->st == TSR_OK || (fi->st == TSR_ERR_NOT_FOUND && fi->ver == KV_TXN_ABSENT)) &&
            record_read(x, so[i].tab, so[i].h, fi) != TSR_OK) {
            fi->st = tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
            tsr_mem_free(NULL, fi->val);
            fi->val = NULL;
        }
    }
    /* every element answers from the sets now, or with its read's failure */
    for (size_t i = 0; i < n; i++) {
        tsr_txn_read_t *rd = &reads[i];
        const txn_entry_t *w = find_write(x, so[i].tab, so[i].h, rd->key, rd->klen);
        const txn_entry_t *r = w ? NULL : find_read(x, so[i].tab, so[i].h, rd->key, rd->klen);
        if (w && !w->del)
            copy_out(w->val, w->vlen, rd->buf, rd->cap, &rd->vlen);
        else if (r && r->ver != KV_TXN_ABSENT)
            copy_out(r->val, r->vlen, rd->buf, rd->cap, &rd->vlen);
        else if (w || r)
            rd->status = TSR_ERR_NOT_FOUND;
        else { /* not decided: the read failed (an unknown table: NOT_FOUND) */
            rd->status = f[so[i].fetch].st;
            if (rc == TSR_OK)
                rc = rd->status;
        }
    }
out:
    for (size_t k = 0; k < nf; k++)
        tsr_mem_free(NULL, f[k].val); /* the reads not recorded */
    if (so != so_stack)
        tsr_mem_free(NULL, so);
    if (f != f_stack)
        tsr_mem_free(NULL, f);
    if (fk != k_stack)
        tsr_mem_free(NULL, fk);
    txn_index_free(&fix);
    return rc == TSR_OK ? TSR_OK : err_out(xerr, &e, rc);
}

tsr_status_t tsr_txn_get(tsr_txn_t *x, const char *table, const void *key, size_t klen, void *buf,
                         size_t cap, size_t *vlen, tsr_txn_err_t *xerr)
{
    if (!vlen)
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_txn_read_t rd = {.table = table, .key = key, .klen = klen, .buf = buf, .cap = cap};
    tsr_status_t rc = tsr_txn_get_many(x, &rd, 1, xerr);
    if (rc != TSR_OK)
        return rc;
    if (rd.status != TSR_OK) /* absent, or deleted by x */
        return err_out(xerr, NULL, rd.status);
    *vlen = rd.vlen;
    return TSR_OK;
}

static tsr_status_t buffer_write(tsr_txn_t *x, const char *table, const void *key, size_t klen,
                                 const void *val, size_t vlen, bool del,
                                 const tsr_kv_write_opts_t *wo, tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    e.status = TSR_OK;
    if (!x || (!key && klen) || (!del && !val && vlen) || klen > TSR_KV_MAX_KEY_LIMIT ||
        vlen > TSR_KV_MAX_VALUE_LIMIT || (wo && wo->lock && !wo->lock[0]))
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    uint32_t tab;
    tsr_status_t rc = tab_index(x, table, &tab, &e);
    if (rc != TSR_OK)
        return err_out(xerr, &e, rc);
    uint64_t h = tsr_hash_bytes(key, klen);
    unsigned char *vc = NULL, *kc = NULL;
    char *lock = NULL;
    if (!del) {
        vc = tsr_mem_alloc(NULL, vlen ? vlen : 1);
        if (vc && vlen)
            memcpy(vc, val, vlen);
    }
    if (wo && wo->lock)
        lock = tsr_mem_strdup(NULL, wo->lock);
    txn_entry_t *w = find_write(x, tab, h, key, klen);
    if (!w) {
        kc = tsr_mem_alloc(NULL, klen ? klen : 1);
        if (kc && tsr_mem_grow(NULL, (void **)&x->s.writes, &x->wcap, x->s.nwrites + 1,
                               sizeof(*x->s.writes)) != 0) {
            tsr_mem_free(NULL, kc);
            kc = NULL;
        }
    }
    if ((!del && !vc) || (wo && wo->lock && !lock) || (!w && !kc)) {
        tsr_mem_free(NULL, vc);
        tsr_mem_free(NULL, lock);
        tsr_mem_free(NULL, kc);
        return err_out(xerr, NULL, TSR_ERR_NOMEM);
    }
    if (w) { /* replaces the earlier write of the same key */
        tsr_mem_free(NULL, w->val);
        tsr_mem_free(NULL, w->lock);
    } else {
        if (klen)
            memcpy(kc, key, klen);
        w = &x->s.writes[x->s.nwrites++];
        *w = (txn_entry_t){.tab = tab, .h = h, .key = kc, .klen = (uint32_t)klen};
    }
    w->val = vc;
    w->vlen = del ? 0 : (uint32_t)vlen;
    w->del = del;
    w->lock = lock;
    w->token = wo && wo->lock ? wo->token : 0;
    return TSR_OK;
}

tsr_status_t tsr_txn_put(tsr_txn_t *x, const char *table, const void *key, size_t klen,
                         const void *val, size_t vlen, const tsr_kv_write_opts_t *wo,
                         tsr_txn_err_t *err)
{
    return buffer_write(x, table, key, klen, val, vlen, false, wo, err);
}

tsr_status_t tsr_txn_delete(tsr_txn_t *x, const char *table, const void *key, size_t klen,
                            const tsr_kv_write_opts_t *wo, tsr_txn_err_t *err)
{
    return buffer_write(x, table, key, klen, NULL, 0, true, wo, err);
}

tsr_status_t tsr_txn_commit(tsr_txn_t *x, tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!x)
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_txn_db_t *db = x->db;
    /* Reads that were one snapshot and no writes: serialized at that
     * snapshot, nothing to validate or log (a read-only commit by call
     * would only validate, and log nothing either). */
    bool decided = x->snap && x->s.nwrites == 0;
    tsr_status_t rc = decided      ? TSR_OK
                      : db->be     ? db->be->commit(db->be_arg, &x->s, &e)
                      : db->remote ? tsr_txn_remote_commit(db, &x->s, &e)
                                   : tsr_txn_commit_local(&db->local, &x->s, &e);
    if (decided)
        atomic_fetch_add(&db->commits_snapshot, 1);
    if (rc == TSR_OK)
        atomic_fetch_add(&db->commits, 1);
    else if (rc == TSR_ERR_CONFLICT)
        atomic_fetch_add(&db->conflicts, 1);
    else
        atomic_fetch_add(&db->aborts, 1);
    txn_free(x);
    return err_out(xerr, &e, rc);
}

/* ---- retries --------------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

tsr_status_t tsr_txn_run(tsr_txn_db_t *db, tsr_txn_fn fn, void *arg, const tsr_txn_run_opts_t *opts,
                         unsigned *attempts, tsr_txn_err_t *xerr)
{
    if (attempts)
        *attempts = 0;
    if (!db || !fn)
        return err_out(xerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_txn_run_opts_t o = {0};
    if (opts)
        o = *opts;
    unsigned max = o.max_attempts ? o.max_attempts : 16;
    uint64_t ceil_us = o.backoff_us ? o.backoff_us : 50;
    uint64_t cap_us = o.backoff_max_us ? o.backoff_max_us : 20000;
    uint64_t seed = o.seed;
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int here;
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&here;
    }
    seed = tsr_hash_bytes(&seed, sizeof(seed)) | 1;
    tsr_status_t rc = TSR_ERR_CONFLICT;
    tsr_txn_err_t last = {0};
    for (unsigned n = 1; n <= max; n++) {
        if (attempts)
            *attempts = n;
        tsr_txn_t *x;
        memset(&last, 0, sizeof(last));
        rc = tsr_txn_begin(db, &x, &last);
        if (rc != TSR_OK)
            break;
        rc = fn(x, arg);
        if (rc == TSR_OK) {
            rc = tsr_txn_commit(x, &last);
        } else {
            if (last.status == TSR_OK) {
                last.status = rc;
                snprintf(last.message, sizeof(last.message), "txn: the transaction returned %s",
                         tsr_status_str(rc));
            }
            tsr_txn_rollback(x);
        }
        if (rc != TSR_ERR_CONFLICT || n == max)
            break;
        uint64_t c = ceil_us < cap_us ? ceil_us : cap_us;
        usleep((useconds_t)(xorshift(&seed) % (c + 1)));
        if (ceil_us < cap_us)
            ceil_us *= 2;
    }
    if (rc != TSR_OK && xerr && xerr->status == TSR_OK)
        *xerr = last.status != TSR_OK ? last : (tsr_txn_err_t){rc, ""};
    if (rc != TSR_OK && xerr && xerr->message[0] == '\0')
        snprintf(xerr->message, sizeof(xerr->message), "%s", tsr_status_str(rc));
    return rc;
}
