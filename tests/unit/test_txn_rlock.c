/*
 * test_txn_rlock.c - one-sided locking by remote clients
 * (TSR_TXN_LOCKS_ONE_SIDED; docs/kv.md "One-sided locking by remote
 * clients"; kv_internal.h "Remote locks") over the real transport, one
 * process (the owner and client of txn_many_env.h):
 *  - a client that read its written keys one-sided locks them itself with a
 *    compare-and-swap and the owner takes the locks over; keys it did not
 *    read (blind writes, inserts) the owner locks; a key changed since the
 *    read fails the commit with a conflict and no message to the owner;
 *  - a lock tag left in a slot (a client that died holding it): plain
 *    local gets read through it, writers and transactions conflict while it
 *    is within its lease and break it after; a remote reader that meets an
 *    expired one asks the owner to sweep and reads the value;
 *  - adopt and release accept only the holder's exact tag, and a tag moves
 *    with its slot through a rehash; a descriptor that went stale between
 *    read and commit leaves the key to the owner.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "remote_int.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h"
#include "txn_internal.h"
#include "txn_many_env.h"

/* The version word of key's slot in table tab of the owner's store. */
static _Atomic uint64_t *word_of(tsr_kv_store_t *s, const char *tab, const char *key)
{
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, tab, &t, NULL), TSR_OK);
    uint64_t h = tsr_hash_bytes(key, strlen(key));
    kv_tab_t *tb = atomic_load(&t->parts[kv_part_of(h, t->nparts)].tab);
    _Atomic uint64_t *w = NULL;
    for (uint64_t i = h & tb->mask, n = 0; n < tb->nslots; n++, i = (i + 1) & tb->mask) {
        kv_slot_t *sl = kv_slot_at(tb, i);
        if (sl->state == KV_EMPTY)
            break;
        if (sl->state == KV_FULL && sl->klen == strlen(key) &&
            memcmp(sl->data, key, sl->klen) == 0) {
            w = &sl->ver;
            break;
        }
    }
    tsr_kv_table_close(t);
    assert_non_null(w);
    return w;
}

static int64_t get_local(tsr_kv_store_t *s, const char *tab, const char *key)
{
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, tab, &t, NULL), TSR_OK);
    int64_t v = 0;
    size_t vl = 0;
    assert_int_equal(tsr_kv_get(t, key, strlen(key), &v, sizeof(v), &vl, NULL), TSR_OK);
    tsr_kv_table_close(t);
    return v;
}

static tsr_status_t put_plain(tsr_kv_store_t *s, const char *tab, const char *key, int64_t v)
{
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, tab, &t, NULL), TSR_OK);
    tsr_status_t rc = tsr_kv_upsert(t, key, strlen(key), &v, sizeof(v), NULL, NULL);
    tsr_kv_table_close(t);
    return rc;
}

/* Inserts 40 keys PREFIX0.. into tab: "ta" (4 keys' worth at first)
 * rehashes both its partitions. */
static void grow(env_t *e, const char *tab, const char *prefix)
{
    int64_t v = 0;
    for (int i = 0; i < 40; i++) {
        char key[8];
        snprintf(key, sizeof(key), "%s%d", prefix, i);
        put1(e->other, tab, key, &v, 8);
    }
}

static void env_rlock(env_t *e, const char *tls)
{
    env_up(e, "rma", tls);
    assert_int_equal(tsr_txn_db_set_locks(e->db, TSR_TXN_LOCKS_ONE_SIDED, NULL), TSR_OK);
}

static uint64_t locked_of(tsr_txn_db_t *db)
{
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    return st.locks_one_sided;
}

static uint64_t owner_msgs(const env_t *e)
{
    tsr_transport_stats_t st;
    tsr_transport_get_stats(e->s, &st);
    return st.rx_msgs;
}

/* Read x and y one-sided, write x+1 to both, blind-write z, insert a new
 * key: x and y are locked by the client, z and the insert by the owner. */
static void commit_mixed(const char *tls)
{
    env_t e;
    env_rlock(&e, tls);
    int64_t one = 1;
    put1(e.other, "tb", "x", &one, 8);
    put1(e.other, "tb", "y", &one, 8);
    put1(e.other, "tb", "z", &one, 8);
    for (int round = 0; round < 3; round++) {
        tsr_txn_t *x;
        assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
        int64_t vx = 0, vy = 0;
        size_t vl;
        tsr_txn_read_t rd[2] = {RD("tb", "x", &vx, 8), RD("tb", "y", &vy, 8)};
        assert_int_equal(tsr_txn_get_many(x, rd, 2, NULL), TSR_OK);
        assert_int_equal(vx, 1 + round);
        assert_int_equal(tsr_txn_get(x, "tb", "x", 1, &vx, 8, &vl, NULL), TSR_OK);
        int64_t n = vx + 1;
        char ins[8];
        snprintf(ins, sizeof(ins), "new%d", round);
        assert_int_equal(tsr_txn_put(x, "tb", "x", 1, &n, 8, NULL, NULL), TSR_OK);
        assert_int_equal(tsr_txn_put(x, "tb", "y", 1, &n, 8, NULL, NULL), TSR_OK);
        assert_int_equal(tsr_txn_put(x, "tb", "z", 1, &n, 8, NULL, NULL), TSR_OK);
        assert_int_equal(tsr_txn_put(x, "tb", ins, strlen(ins), &n, 8, NULL, NULL), TSR_OK);
        uint64_t before = locked_of(e.db);
        assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
        assert_int_equal(locked_of(e.db) - before, 2); /* x and y */
        for (const char *k = "xyz"; *k; k++) {
            char key[2] = {*k, 0};
            assert_int_equal(get_local(e.store, "tb", key), n);
            assert_false(atomic_load(word_of(e.store, "tb", key)) & KV_VER_LOCKED);
        }
        assert_int_equal(get_local(e.store, "tb", ins), n);
    }
    env_down(&e);
}

static void test_commit(void **state)
{
    (void)state;
    commit_mixed(NULL);  /* UCX's default set: shared memory, native atomics */
    commit_mixed("tcp"); /* atomics emulated by the owner's worker */
}

/* A key changed after the read: the client's CAS fails, the commit is a
 * conflict, nothing is sent to the owner and nothing stays locked. */
static void test_conflict_without_call(void **state)
{
    (void)state;
    env_t e;
    env_rlock(&e, NULL);
    int64_t v = 5;
    put1(e.other, "tb", "a", &v, 8);
    put1(e.other, "tb", "b", &v, 8);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    int64_t va = 0, vb = 0;
    size_t vl;
    assert_int_equal(tsr_txn_get(x, "tb", "a", 1, &va, 8, &vl, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get(x, "tb", "b", 1, &vb, 8, &vl, NULL), TSR_OK);
    int64_t w = 6;
    put1(e.other, "tb", "b", &w, 8); /* b changes after the read */
    uint64_t wa = atomic_load(word_of(e.store, "tb", "a"));
    assert_int_equal(tsr_txn_put(x, "tb", "a", 1, &w, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "tb", "b", 1, &w, 8, NULL, NULL), TSR_OK);
    uint64_t msgs = owner_msgs(&e);
    tsr_txn_err_t xe = {0};
    assert_int_equal(tsr_txn_commit(x, &xe), TSR_ERR_CONFLICT);
    assert_non_null(strstr(xe.message, "conflict"));
    assert_int_equal(owner_msgs(&e), msgs); /* decided by the atomics alone */
    assert_int_equal(atomic_load(word_of(e.store, "tb", "a")), wa); /* a given back */
    assert_int_equal(get_local(e.store, "tb", "a"), 5);
    assert_int_equal(get_local(e.store, "tb", "b"), 6);
    tsr_txn_stats_t st;
    tsr_txn_db_stats(e.db, &st);
    assert_int_equal(st.conflicts, 1);
    env_down(&e);
}

/* A tag left in a slot by a client that died holding it. */
static void test_stale_lock(void **state)
{
    (void)state;
    env_t e;
    env_rlock(&e, NULL);
    int64_t v = 7;
    put1(e.other, "tb", "k", &v, 8);
    _Atomic uint64_t *wk = word_of(e.store, "tb", "k");
    uint64_t ver = atomic_load(wk);
    /* within its lease: readers read through, writers conflict */
    uint64_t tag = kv_rlock_tag(42, tsr_kv_rlock_now_ms());
    atomic_store(wk, tag);
    assert_int_equal(get_local(e.store, "tb", "k"), 7);
    assert_int_equal(put_plain(e.store, "tb", "k", 8), TSR_ERR_CONFLICT);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.other, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "tb", "k", 1, &v, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(atomic_load(wk), tag);
    /* past its lease: a plain write breaks it to a fresh version */
    uint64_t old = kv_rlock_tag(42, tsr_kv_rlock_now_ms() - KV_RLOCK_LEASE_MS - 50);
    atomic_store(wk, old);
    assert_int_equal(put_plain(e.store, "tb", "k", 9), TSR_OK);
    uint64_t now = atomic_load(wk);
    assert_false(now & KV_VER_LOCKED);
    assert_true(now > ver);
    assert_int_equal(get_local(e.store, "tb", "k"), 9);

    /* a remote reader that meets an expired tag asks the owner to sweep */
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "tb", 0, 20000, &r, NULL), TSR_OK);
    int64_t got = 0;
    size_t vl = 0;
    assert_int_equal(tsr_kv_remote_get(r, "k", 1, &got, 8, &vl, NULL), TSR_OK);
    ver = atomic_load(wk);
    atomic_store(wk, kv_rlock_tag(43, tsr_kv_rlock_now_ms() - KV_RLOCK_LEASE_MS - 50));
    assert_int_equal(tsr_kv_remote_get(r, "k", 1, &got, 8, &vl, NULL), TSR_OK);
    assert_int_equal(got, 9);
    tsr_kv_remote_stats_t rs;
    tsr_kv_remote_get_stats(r, &rs);
    assert_int_equal(rs.sweeps, 1);
    assert_true(rs.torn_retries >= 1);
    assert_false(kv_is_rlock(atomic_load(wk)));
    assert_true(atomic_load(wk) > ver);
    /* a local transaction's read breaks an expired tag too (and a
     * transaction that read the old version no longer commits) */
    assert_int_equal(tsr_txn_begin(e.other, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get(x, "tb", "k", 1, &got, 8, &vl, NULL), TSR_OK);
    atomic_store(wk, kv_rlock_tag(44, tsr_kv_rlock_now_ms() - KV_RLOCK_LEASE_MS - 50));
    tsr_txn_t *y;
    assert_int_equal(tsr_txn_begin(e.other, &y, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get(y, "tb", "k", 1, &got, 8, &vl, NULL), TSR_OK);
    assert_int_equal(got, 9);
    assert_false(kv_is_rlock(atomic_load(wk)));
    int64_t ten = 10;
    assert_int_equal(tsr_txn_put(x, "tb", "k", 1, &ten, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_txn_put(y, "tb", "k", 1, &ten, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(y, NULL), TSR_OK);
    assert_int_equal(get_local(e.store, "tb", "k"), 10);
    tsr_kv_remote_close(r);
    env_down(&e);
}

/* Adopt and release take only the holder's exact tag; a tag moves with its
 * slot through a rehash and is adopted there. */
static void test_adopt(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "local", NULL);
    int64_t v = 3;
    put1(e.other, "ta", "q", &v, 8);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(e.store, "ta", &t, NULL), TSR_OK);
    kv_txn_key_t k = {t, tsr_hash_bytes("q", 1), "q", 1};
    _Atomic uint64_t *w = word_of(e.store, "ta", "q");
    uint64_t ver = atomic_load(w);
    uint64_t mine = kv_rlock_tag(1, tsr_kv_rlock_now_ms());
    uint64_t theirs = kv_rlock_tag(2, tsr_kv_rlock_now_ms());
    atomic_store(w, theirs);
    assert_int_equal(tsr_kv_txn_adopt(&k, mine, ver), TSR_ERR_CONFLICT);
    tsr_kv_txn_release(&k, mine, ver);
    assert_int_equal(atomic_load(w), theirs);
    assert_int_equal(tsr_kv_txn_adopt(&k, ver | KV_VER_LOCKED, ver), TSR_ERR_CONFLICT); /* no tag */
    tsr_kv_txn_release(&k, theirs, ver);
    assert_int_equal(atomic_load(w), ver);
    /* locked, then the partition rehashes ("ta" starts at 4 slots' worth) */
    atomic_store(w, mine);
    grow(&e, "ta", "g");
    _Atomic uint64_t *w2 = word_of(e.store, "ta", "q");
    assert_ptr_not_equal(w2, w);
    assert_int_equal(atomic_load(w2), mine);
    assert_int_equal(tsr_kv_txn_adopt(&k, mine, ver), TSR_OK);
    assert_int_equal(atomic_load(w2), ver | KV_VER_LOCKED);
    tsr_kv_txn_unlock(&k);
    assert_int_equal(atomic_load(w2), ver);
    assert_int_equal(get_local(e.store, "ta", "q"), 3);
    tsr_kv_table_close(t);
    env_down(&e);
}

/* The table rehashed between the client's read and its commit: the CAS
 * meets MOVED on the old region and the key is left to the owner. */
static void test_stale_descriptor(void **state)
{
    (void)state;
    env_t e;
    env_rlock(&e, NULL);
    int64_t v = 1;
    put1(e.other, "ta", "m", &v, 8);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    size_t vl;
    assert_int_equal(tsr_txn_get(x, "ta", "m", 1, &v, 8, &vl, NULL), TSR_OK);
    grow(&e, "ta", "h");
    int64_t two = 2;
    assert_int_equal(tsr_txn_put(x, "ta", "m", 1, &two, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    assert_int_equal(locked_of(e.db), 0);
    assert_int_equal(get_local(e.store, "ta", "m"), 2);
    env_down(&e);
}

/* ---- concurrency: clients locking one-sided while the table rehashes ---------------- */

enum { NACC = 8, NCLI = 3 };

typedef struct xfer {
    int from, to;
    int64_t amt;
} xfer_t;

static tsr_status_t do_xfer(tsr_txn_t *x, void *arg)
{
    const xfer_t *t = arg;
    char kf[8], kt[8];
    snprintf(kf, sizeof(kf), "acc%d", t->from);
    snprintf(kt, sizeof(kt), "acc%d", t->to);
    int64_t f = 0, to = 0;
    tsr_txn_read_t rd[2] = {RD("ta", kf, &f, 8), RD("ta", kt, &to, 8)};
    tsr_status_t rc = tsr_txn_get_many(x, rd, 2, NULL);
    if (rc == TSR_OK)
        rc = rd[0].status != TSR_OK ? rd[0].status : rd[1].status;
    f -= t->amt;
    to += t->amt;
    if (rc == TSR_OK)
        rc = tsr_txn_put(x, "ta", kf, strlen(kf), &f, 8, NULL, NULL);
    if (rc == TSR_OK)
        rc = tsr_txn_put(x, "ta", kt, strlen(kt), &to, 8, NULL, NULL);
    return rc;
}

typedef struct cli {
    env_t *e;
    uint32_t node;
    tsr_transport_t *t; /* the thread's own, made while the others connect */
    tsr_peer_t *peer;
    uint64_t seed;
    int64_t delta[NACC]; /* acknowledged transfers' effect */
    long acked, conflicts, bad;
    uint64_t locked;
} cli_t;

static void *cli_run(void *arg)
{
    cli_t *c = arg;
    c->t = make(c->node, false, NULL);
    c->peer = test_transport_connect(c->t, c->e->s);
    tsr_txn_db_t *db;
    if (tsr_txn_db_remote(c->t, c->peer, 0, 20000, &db, NULL) != TSR_OK) {
        c->bad++;
        return NULL;
    }
    (void)tsr_txn_db_set_reads(db, TSR_TXN_READS_ONE_SIDED, NULL);
    (void)tsr_txn_db_set_locks(db, TSR_TXN_LOCKS_ONE_SIDED, NULL);
    tsr_txn_run_opts_t o = {.max_attempts = 64, .backoff_us = 20, .backoff_max_us = 2000};
    for (int i = 0; i < 400; i++) {
        c->seed = c->seed * 6364136223846793005ULL + 1442695040888963407ULL;
        xfer_t x = {(int)(c->seed >> 33) % NACC, 0, (int64_t)(c->seed >> 20) % 50 + 1};
        x.to = (x.from + 1 + (int)((c->seed >> 45) % (NACC - 1))) % NACC;
        o.seed = c->seed | 1;
        tsr_status_t rc = tsr_txn_run(db, do_xfer, &x, &o, NULL, NULL);
        if (rc == TSR_OK) {
            c->delta[x.from] -= x.amt;
            c->delta[x.to] += x.amt;
            c->acked++;
        } else if (rc == TSR_ERR_CONFLICT) {
            c->conflicts++;
        } else {
            c->bad++; /* nothing here may fail otherwise: no process dies */
        }
    }
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    c->locked = st.locks_one_sided;
    tsr_txn_db_close(db);
    return NULL;
}

/* Three clients (threads, each with its own transport) transfer between 8
 * accounts of "ta" with one-sided locks while a plain writer grows the table (rehashes copy locked
 * slots) and rewrites filler keys beside the accounts (plain writers claim slots by CAS): every
 * acknowledged transfer is applied exactly once, nothing else is, and no lock is left. */
static void test_concurrent(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "rma", NULL);
    int64_t start = 1000;
    for (int i = 0; i < NACC; i++) {
        char k[8];
        snprintf(k, sizeof(k), "acc%d", i);
        put1(e.other, "ta", k, &start, 8);
    }
    cli_t c[NCLI];
    pthread_t th[NCLI];
    /* each thread makes its transport while the others connect to the
     * owner here (transport/shm_guard.c: a worker created meanwhile must not
     * take those connections' mappings of the owner's FIFO for its own) */
    for (int i = 0; i < NCLI; i++) {
        c[i] = (cli_t){.e = &e, .node = 20 + (uint32_t)i, .seed = 0x9E3779B97F4A7C15ULL * (i + 1)};
        assert_int_equal(pthread_create(&th[i], NULL, cli_run, &c[i]), 0);
    }
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(e.store, "ta", &t, NULL), TSR_OK);
    for (int i = 0; i < 3000; i++) {
        char k[12];
        snprintf(k, sizeof(k), "fill%d", i % 1500);
        int64_t v = i;
        tsr_status_t rc = tsr_kv_upsert(t, k, strlen(k), &v, 8, NULL, NULL);
        assert_true(rc == TSR_OK || rc == TSR_ERR_CONFLICT);
    }
    tsr_kv_table_close(t);
    long acked = 0;
    uint64_t locked = 0;
    int64_t want[NACC];
    for (int a = 0; a < NACC; a++)
        want[a] = start;
    for (int i = 0; i < NCLI; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(c[i].bad, 0);
        acked += c[i].acked;
        locked += c[i].locked;
        for (int a = 0; a < NACC; a++)
            want[a] += c[i].delta[a];
    }
    for (int i = 0; i < NCLI; i++)
        tsr_transport_destroy(c[i].t);
    print_message("concurrent: %ld transfers acknowledged, %llu keys locked one-sided\n", acked,
                  (unsigned long long)locked);
    assert_true(acked > 0);
    assert_true(locked > 0);
    for (int a = 0; a < NACC; a++) {
        char k[8];
        snprintf(k, sizeof(k), "acc%d", a);
        assert_int_equal(get_local(e.store, "ta", k), want[a]);
        assert_false(atomic_load(word_of(e.store, "ta", k)) & KV_VER_LOCKED);
    }
    env_down(&e);
}

/* Bad modes, and dbs that cannot lock one-sided. */
static void test_set_locks(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "local", NULL);
    tsr_txn_err_t xe = {0};
    assert_int_equal(tsr_txn_db_set_locks(e.db, TSR_TXN_LOCKS_ONE_SIDED, &xe), TSR_ERR_UNSUPPORTED);
    assert_int_equal(tsr_txn_db_set_locks(NULL, TSR_TXN_LOCKS_OWNER, NULL), TSR_ERR_INVALID_ARG);
    env_down(&e);
    env_up(&e, "rma", NULL);
    assert_int_equal(tsr_txn_db_set_locks(e.db, (tsr_txn_locks_t)7, NULL), TSR_ERR_INVALID_ARG);
    env_down(&e);
    /* the default: one-sided over shared memory, the owner over TCP; OWNER
     * forced: the owner */
    const char *tls[2] = {NULL, "tcp"};
    for (int i = 0; i < 3; i++) {
        env_up(&e, "rma", tls[i % 2]);
        if (i == 2)
            assert_int_equal(tsr_txn_db_set_locks(e.db, TSR_TXN_LOCKS_OWNER, NULL), TSR_OK);
        int64_t v = 1;
        put1(e.other, "tb", "d", &v, 8);
        tsr_txn_t *x;
        assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
        size_t vl;
        assert_int_equal(tsr_txn_get(x, "tb", "d", 1, &v, 8, &vl, NULL), TSR_OK);
        assert_int_equal(tsr_txn_put(x, "tb", "d", 1, &v, 8, NULL, NULL), TSR_OK);
        assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
        assert_int_equal(locked_of(e.db), i == 0 ? 1 : 0);
        env_down(&e);
    }
    /* reads by call: nothing to lock one-sided, the owner locks all */
    env_up(&e, "rpc", "tcp");
    assert_int_equal(tsr_txn_db_set_locks(e.db, TSR_TXN_LOCKS_ONE_SIDED, NULL), TSR_OK);
    int64_t v = 1;
    put1(e.other, "tb", "p", &v, 8);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    size_t vl;
    assert_int_equal(tsr_txn_get(x, "tb", "p", 1, &v, 8, &vl, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "tb", "p", 1, &v, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    assert_int_equal(locked_of(e.db), 0);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit),           cmocka_unit_test(test_conflict_without_call),
        cmocka_unit_test(test_stale_lock),       cmocka_unit_test(test_adopt),
        cmocka_unit_test(test_stale_descriptor), cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_set_locks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
