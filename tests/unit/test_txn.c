/*
 * test_txn.c - engine/txn on a local kv store (include/tessera/txn.h).
 *
 * Random transactions (gets, puts, deletes, commits and rollbacks, the empty
 * key and 0-byte values included) checked step by step against a plain
 * array model with a per-transaction overlay (read-your-writes); conflicts
 * (read-write, phantom inserts, locked keys, plain writers against locks);
 * write skew, deterministic and with 4 threads, never breaking its
 * invariant; a bank of 100 accounts with 4 threads doing random transfers
 * for a bounded time, checked against the acknowledged transfers (each
 * applied exactly once), then reopened from the data dir; recovery that
 * keeps committed transactions, drops uncommitted ones, drops a torn commit
 * record whole and replays a logged-but-unapplied one whole; fencing; the
 * retry helper; bad input.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/kv.h"
#include "tessera/lock.h"
#include "tessera/txn.h"

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static void make_dir(char *out, size_t cap, const char *tag)
{
    snprintf(out, cap, "/tmp/tsr_test_txn_%s_%d", tag, (int)getpid());
    rm_dir(out);
}

static tsr_kv_store_t *open_store(const char *dir, tsr_lock_fence_t *fence)
{
    tsr_kv_options_t o = {.data_dir = dir, .sync = TSR_KV_SYNC_WRITE, .fence = fence};
    tsr_kv_store_t *s = NULL;
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_open(&o, &s, &e), TSR_OK);
    return s;
}

static void create(tsr_kv_store_t *s, const char *name, uint32_t parts, uint32_t mk, uint32_t mv)
{
    tsr_kv_table_params_t p = {.partitions = parts, .max_key = mk, .max_value = mv};
    assert_int_equal(tsr_kv_table_create(s, name, &p, NULL), TSR_OK);
}

/* ---- random transactions against a model -------------------------------------------- */

#define NK 48
#define MV 24
typedef struct mstate {
    bool present[NK];
    unsigned char val[NK][MV];
    size_t len[NK];
} mstate_t;

static size_t key_of(int i, char *k)
{
    if (i == 0)
        return 0; /* the empty key */
    return (size_t)snprintf(k, 16, "key%d", i);
}

static void test_random_vs_model(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "t", 3, 16, MV);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    static mstate_t m, ov; /* committed state, and a transaction's view */
    memset(&m, 0, sizeof(m));
    uint64_t seed = 42;
    size_t commits = 0;
    for (int round = 0; round < 600; round++) {
        tsr_txn_t *x;
        assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
        ov = m;
        int nops = 1 + (int)(rnd_next(&seed) % 10);
        for (int op = 0; op < nops; op++) {
            int i = (int)(rnd_next(&seed) % NK);
            char k[16];
            size_t kl = key_of(i, k);
            unsigned r = (unsigned)(rnd_next(&seed) % 10);
            if (r < 4) {
                unsigned char buf[MV];
                size_t vl = 999;
                tsr_status_t rc = tsr_txn_get(x, "t", k, kl, buf, sizeof(buf), &vl, NULL);
                if (ov.present[i]) {
                    assert_int_equal(rc, TSR_OK);
                    assert_int_equal(vl, ov.len[i]);
                    assert_memory_equal(buf, ov.val[i], vl);
                } else {
                    assert_int_equal(rc, TSR_ERR_NOT_FOUND);
                }
            } else if (r < 8) {
                unsigned char v[MV];
                size_t vl = rnd_next(&seed) % (MV + 1);
                for (size_t j = 0; j < vl; j++)
                    v[j] = (unsigned char)rnd_next(&seed);
                assert_int_equal(tsr_txn_put(x, "t", k, kl, v, vl, NULL, NULL), TSR_OK);
                ov.present[i] = true;
                memcpy(ov.val[i], v, vl);
                ov.len[i] = vl;
            } else {
                assert_int_equal(tsr_txn_delete(x, "t", k, kl, NULL, NULL), TSR_OK);
                ov.present[i] = false;
            }
        }
        if (rnd_next(&seed) % 5 == 0) {
            tsr_txn_rollback(x);
        } else {
            tsr_txn_err_t e = {0};
            tsr_status_t crc = tsr_txn_commit(x, &e);
            if (crc != TSR_OK)
                fail_msg("round %d: %s", round, e.message);
            m = ov;
            commits++;
        }
        if (round % 50 == 49 || round == 599) { /* the store agrees with the model */
            uint64_t n = 0, want = 0;
            for (int i = 0; i < NK; i++) {
                char k[16];
                size_t kl = key_of(i, k);
                unsigned char buf[MV];
                size_t vl = 0;
                tsr_kv_table_t *t;
                assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
                tsr_status_t rc = tsr_kv_get(t, k, kl, buf, sizeof(buf), &vl, NULL);
                tsr_kv_table_close(t);
                assert_int_equal(rc, m.present[i] ? TSR_OK : TSR_ERR_NOT_FOUND);
                if (m.present[i]) {
                    assert_int_equal(vl, m.len[i]);
                    assert_memory_equal(buf, m.val[i], vl);
                    want++;
                }
            }
            tsr_kv_table_t *t;
            assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
            assert_int_equal(tsr_kv_count(t, &n), TSR_OK);
            tsr_kv_table_close(t);
            assert_int_equal(n, want);
        }
    }
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    assert_int_equal(st.commits, commits);
    assert_int_equal(st.conflicts, 0);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* ---- conflicts ------------------------------------------------------------------------ */

static int64_t get_i64(tsr_txn_t *x, const char *key, tsr_status_t *rc)
{
    int64_t v = 0;
    size_t vl = 0;
    *rc = tsr_txn_get(x, "acct", key, strlen(key), &v, sizeof(v), &vl, NULL);
    return v;
}

static void put_i64(tsr_txn_t *x, const char *key, int64_t v)
{
    assert_int_equal(tsr_txn_put(x, "acct", key, strlen(key), &v, sizeof(v), NULL, NULL), TSR_OK);
}

static tsr_status_t commit_one(tsr_txn_db_t *db, const char *key, int64_t v)
{
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    put_i64(x, key, v);
    return tsr_txn_commit(x, NULL);
}

static void test_conflicts(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "acct", 4, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(commit_one(db, "a", 1), TSR_OK);
    tsr_status_t rc;

    /* read-write: T1 reads a, T2 changes a, T1's commit (writing b) fails */
    tsr_txn_t *t1, *t2;
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    assert_int_equal(get_i64(t1, "a", &rc), 1);
    assert_int_equal(commit_one(db, "a", 2), TSR_OK);
    assert_int_equal(get_i64(t1, "a", &rc), 1); /* repeatable inside t1 */
    put_i64(t1, "b", 5);
    tsr_txn_err_t e = {0};
    assert_int_equal(tsr_txn_commit(t1, &e), TSR_ERR_CONFLICT);
    assert_int_equal(e.status, TSR_ERR_CONFLICT);
    assert_non_null(strstr(e.message, "conflict"));
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    get_i64(t1, "b", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND); /* nothing of the failed commit applied */
    tsr_txn_rollback(t1);

    /* phantom: T1 reads c absent, T2 inserts c, T1 fails (reading or writing c) */
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    get_i64(t1, "c", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND);
    assert_int_equal(commit_one(db, "c", 7), TSR_OK);
    put_i64(t1, "c", 8);
    assert_int_equal(tsr_txn_commit(t1, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    assert_int_equal(get_i64(t1, "c", &rc), 7);
    tsr_txn_rollback(t1);

    /* a read-only transaction fails too when what it read changed */
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    get_i64(t1, "a", &rc);
    assert_int_equal(commit_one(db, "a", 3), TSR_OK);
    assert_int_equal(tsr_txn_commit(t1, NULL), TSR_ERR_CONFLICT);

    /* blind writes of the same key both commit (the later wins) */
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    assert_int_equal(tsr_txn_begin(db, &t2, NULL), TSR_OK);
    put_i64(t1, "d", 1);
    put_i64(t2, "d", 2);
    assert_int_equal(tsr_txn_commit(t1, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(t2, NULL), TSR_OK);
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    assert_int_equal(get_i64(t1, "d", &rc), 2);
    tsr_txn_rollback(t1);

    /* delete then re-insert: a reader of the old version still conflicts */
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    get_i64(t1, "d", &rc);
    assert_int_equal(tsr_txn_begin(db, &t2, NULL), TSR_OK);
    assert_int_equal(tsr_txn_delete(t2, "acct", "d", 1, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(t2, NULL), TSR_OK);
    assert_int_equal(commit_one(db, "d", 2), TSR_OK);
    put_i64(t1, "e", 1);
    assert_int_equal(tsr_txn_commit(t1, NULL), TSR_ERR_CONFLICT);

    /* a key locked by a committer: plain writers and committers conflict,
     * transactional reads give up (bounded), scans skip a reserved insert */
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "acct", &t, NULL), TSR_OK);
    kv_txn_key_t ka = {t, tsr_hash_bytes("a", 1), "a", 1};
    kv_txn_key_t kz = {t, tsr_hash_bytes("z", 1), "z", 1};
    bool reserved;
    assert_int_equal(tsr_kv_txn_lock(&ka, 0, &reserved, NULL), TSR_OK);
    assert_false(reserved);
    assert_int_equal(tsr_kv_txn_lock(&ka, 0, &reserved, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_kv_txn_lock(&kz, KV_TXN_ABSENT, &reserved, NULL), TSR_OK);
    assert_true(reserved);
    int64_t v = 9;
    assert_int_equal(tsr_kv_upsert(t, "a", 1, &v, 8, NULL, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_kv_insert(t, "z", 1, &v, 8, NULL, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(commit_one(db, "a", 4), TSR_ERR_CONFLICT);
    assert_int_equal(commit_one(db, "z", 4), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    get_i64(t1, "a", &rc);
    assert_int_equal(rc, TSR_ERR_CONFLICT);
    tsr_txn_rollback(t1);
    tsr_kv_txn_unlock(&ka);
    tsr_kv_txn_unlock(&kz);
    size_t vl;
    assert_int_equal(tsr_kv_get(t, "z", 1, &v, 8, &vl, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(tsr_kv_get(t, "a", 1, &v, 8, &vl, NULL), TSR_OK);
    assert_int_equal(v, 3); /* the aborted lock left the value alone */
    assert_int_equal(commit_one(db, "z", 4), TSR_OK);
    tsr_kv_table_close(t);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

static void count_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (*(size_t *)arg)++;
}

static void test_reserved_invisible(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "acct", 1, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(commit_one(db, "a", 1), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "acct", &t, NULL), TSR_OK);
    kv_txn_key_t kz = {t, tsr_hash_bytes("z", 1), "z", 1};
    bool reserved;
    assert_int_equal(tsr_kv_txn_lock(&kz, 0, &reserved, NULL), TSR_OK);
    assert_true(reserved);
    size_t n = 0;
    uint64_t cur = 0;
    do
        assert_int_equal(tsr_kv_scan(t, &cur, 100, count_fn, &n, NULL), TSR_OK);
    while (cur);
    assert_int_equal(n, 1); /* the reservation is not a key */
    /* growth while locked: the lock moves with the slot */
    for (int i = 0; i < 200; i++) {
        char k[16];
        int64_t v = i;
        snprintf(k, sizeof(k), "g%d", i);
        assert_int_equal(tsr_kv_upsert(t, k, strlen(k), &v, 8, NULL, NULL), TSR_OK);
    }
    assert_int_equal(tsr_kv_upsert(t, "z", 1, &n, 8, NULL, NULL), TSR_ERR_CONFLICT);
    int64_t v = 77;
    tsr_kv_txn_apply(&kz, false, &v, 8, tsr_kv_txn_next_version(s));
    size_t vl;
    v = 0;
    assert_int_equal(tsr_kv_get(t, "z", 1, &v, 8, &vl, NULL), TSR_OK);
    assert_int_equal(v, 77);
    tsr_kv_table_close(t);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* A key written by plain writes only, read by a transaction, then deleted and written again
 * after the table grew (so into another slot, which starts from version 0): the commit must
 * fail, not validate against a version that came back (ABA). */
static void test_plain_reinsert_aba(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "acct", 1, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "acct", &t, NULL), TSR_OK);
    int64_t v = 1;
    assert_int_equal(tsr_kv_insert(t, "k", 1, &v, 8, NULL, NULL), TSR_OK);
    tsr_txn_t *x;
    tsr_status_t rc;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(get_i64(x, "k", &rc), 1);
    assert_int_equal(tsr_kv_delete(t, "k", 1, NULL, NULL), TSR_OK);
    for (int i = 0; i < 300; i++) { /* growth drops the tombstone */
        char k[16];
        snprintf(k, sizeof(k), "g%d", i);
        assert_int_equal(tsr_kv_upsert(t, k, strlen(k), &v, 8, NULL, NULL), TSR_OK);
    }
    assert_int_equal(tsr_kv_insert(t, "k", 1, &v, 8, NULL, NULL), TSR_OK);
    put_i64(x, "other", 5);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_CONFLICT);
    tsr_kv_table_close(t);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* ---- write skew ------------------------------------------------------------------------------ */

static void test_write_skew_deterministic(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "acct", 2, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(commit_one(db, "x", 1), TSR_OK);
    assert_int_equal(commit_one(db, "y", 1), TSR_OK);
    /* both read x and y (sum 2), each takes one off call: only one commits */
    tsr_txn_t *t1, *t2;
    tsr_status_t rc;
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    assert_int_equal(tsr_txn_begin(db, &t2, NULL), TSR_OK);
    assert_int_equal(get_i64(t1, "x", &rc) + get_i64(t1, "y", &rc), 2);
    assert_int_equal(get_i64(t2, "x", &rc) + get_i64(t2, "y", &rc), 2);
    put_i64(t1, "x", 0);
    put_i64(t2, "y", 0);
    assert_int_equal(tsr_txn_commit(t1, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(t2, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_txn_begin(db, &t1, NULL), TSR_OK);
    assert_int_equal(get_i64(t1, "x", &rc) + get_i64(t1, "y", &rc), 1);
    tsr_txn_rollback(t1);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

typedef struct skew_arg {
    tsr_txn_db_t *db;
    uint64_t seed;
    double until;
    atomic_int *violations;
    long commits;
    int who;
} skew_arg_t;

/* Off call: read x and y; if both are on call, take this thread's one off. */
static tsr_status_t skew_off(tsr_txn_t *x, void *arg)
{
    skew_arg_t *a = arg;
    tsr_status_t rc1, rc2;
    int64_t vx = get_i64(x, "x", &rc1), vy = get_i64(x, "y", &rc2);
    if (rc1 != TSR_OK)
        return rc1;
    if (rc2 != TSR_OK)
        return rc2;
    if (vx + vy >= 2) {
        int64_t zero = 0;
        return tsr_txn_put(x, "acct", a->who ? "y" : "x", 1, &zero, 8, NULL, NULL);
    }
    return TSR_OK;
}

static tsr_status_t skew_on(tsr_txn_t *x, void *arg)
{
    skew_arg_t *a = arg;
    int64_t one = 1;
    return tsr_txn_put(x, "acct", a->who ? "y" : "x", 1, &one, 8, NULL, NULL);
}

/* A read-only audit. Its reads may be inconsistent before the commit
 * validates them (optimistic: no opacity), so the sum is judged only after
 * a successful commit. */
static tsr_status_t skew_check(tsr_txn_t *x, void *arg)
{
    int64_t *sum = arg;
    tsr_status_t rc1, rc2;
    int64_t vx = get_i64(x, "x", &rc1), vy = get_i64(x, "y", &rc2);
    if (rc1 != TSR_OK)
        return rc1;
    if (rc2 != TSR_OK)
        return rc2;
    *sum = vx + vy;
    return TSR_OK;
}

static void *skew_thread(void *p)
{
    skew_arg_t *a = p;
    tsr_txn_run_opts_t o = {.max_attempts = 100, .backoff_us = 10, .backoff_max_us = 500};
    while (now_s() < a->until) {
        unsigned r = (unsigned)(rnd_next(&a->seed) % 3);
        o.seed = rnd_next(&a->seed) | 1;
        int64_t sum = -1;
        tsr_status_t rc = r == 2
                              ? tsr_txn_run(a->db, skew_check, &sum, &o, NULL, NULL)
                              : tsr_txn_run(a->db, r == 0 ? skew_off : skew_on, a, &o, NULL, NULL);
        if (rc == TSR_OK && r == 2 && sum < 1)
            atomic_fetch_add(a->violations, 1);
        if (rc == TSR_OK)
            a->commits++;
    }
    return NULL;
}

static void test_write_skew_threads(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "acct", 2, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(commit_one(db, "x", 1), TSR_OK);
    assert_int_equal(commit_one(db, "y", 1), TSR_OK);
    atomic_int violations = 0;
    skew_arg_t a[4];
    pthread_t th[4];
    double until = now_s() + 0.7;
    for (int i = 0; i < 4; i++) {
        a[i] = (skew_arg_t){db, 1000 + (uint64_t)i, until, &violations, 0, i & 1};
        assert_int_equal(pthread_create(&th[i], NULL, skew_thread, &a[i]), 0);
    }
    long commits = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        commits += a[i].commits;
    }
    assert_int_equal(atomic_load(&violations), 0);
    assert_true(commits > 10);
    int64_t sum = -1;
    assert_int_equal(tsr_txn_run(db, skew_check, &sum, NULL, NULL, NULL), TSR_OK);
    assert_true(sum >= 1);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* ---- bank ---------------------------------------------------------------------------------------
 */

#define NACCT 100
#define START 1000

typedef struct xfer {
    int from, to;
    int64_t amt;
} xfer_t;

typedef struct bank_arg {
    tsr_txn_db_t *db;
    uint64_t seed;
    double until;
    xfer_t *acked;
    size_t nacked, cap;
    long conflicts_gave_up;
    long bad_totals;
    xfer_t cur;
} bank_arg_t;

static void acct_key(int i, char *k)
{
    snprintf(k, 16, "acct%03d", i);
}

static tsr_status_t do_transfer(tsr_txn_t *x, void *arg)
{
    bank_arg_t *a = arg;
    char kf[16], kt[16];
    acct_key(a->cur.from, kf);
    acct_key(a->cur.to, kt);
    int64_t f = 0, t = 0;
    size_t vl;
    tsr_status_t rc = tsr_txn_get(x, "bank", kf, strlen(kf), &f, 8, &vl, NULL);
    if (rc == TSR_OK)
        rc = tsr_txn_get(x, "bank", kt, strlen(kt), &t, 8, &vl, NULL);
    if (rc != TSR_OK)
        return rc;
    f -= a->cur.amt;
    t += a->cur.amt;
    rc = tsr_txn_put(x, "bank", kf, strlen(kf), &f, 8, NULL, NULL);
    if (rc == TSR_OK)
        rc = tsr_txn_put(x, "bank", kt, strlen(kt), &t, 8, NULL, NULL);
    return rc;
}

static tsr_status_t do_total(tsr_txn_t *x, void *arg)
{
    int64_t *total = arg;
    *total = 0;
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        int64_t v = 0;
        size_t vl;
        tsr_status_t rc = tsr_txn_get(x, "bank", k, strlen(k), &v, 8, &vl, NULL);
        if (rc != TSR_OK)
            return rc;
        *total += v;
    }
    return TSR_OK;
}

static void *bank_thread(void *p)
{
    bank_arg_t *a = p;
    tsr_txn_run_opts_t o = {.max_attempts = 50, .backoff_us = 20, .backoff_max_us = 2000};
    for (long n = 0; now_s() < a->until; n++) {
        o.seed = rnd_next(&a->seed) | 1;
        if (n % 16 == 15) { /* a read-only audit: always the same total */
            int64_t total = 0;
            if (tsr_txn_run(a->db, do_total, &total, &o, NULL, NULL) == TSR_OK &&
                total != (int64_t)NACCT * START)
                a->bad_totals++;
            continue;
        }
        a->cur.from = (int)(rnd_next(&a->seed) % NACCT);
        a->cur.to = (int)((a->cur.from + 1 + rnd_next(&a->seed) % (NACCT - 1)) % NACCT);
        a->cur.amt = (int64_t)(rnd_next(&a->seed) % 50) + 1;
        tsr_status_t rc = tsr_txn_run(a->db, do_transfer, a, &o, NULL, NULL);
        if (rc == TSR_OK) {
            if (a->nacked == a->cap) {
                a->cap = a->cap ? 2 * a->cap : 1024;
                a->acked = realloc(a->acked, a->cap * sizeof(*a->acked));
                if (!a->acked)
                    abort();
            }
            a->acked[a->nacked++] = a->cur;
        } else {
            a->conflicts_gave_up++;
        }
    }
    return NULL;
}

static void check_balances(tsr_kv_store_t *s, const int64_t *want)
{
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "bank", &t, NULL), TSR_OK);
    int64_t total = 0;
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        int64_t v = 0;
        size_t vl;
        assert_int_equal(tsr_kv_get(t, k, strlen(k), &v, 8, &vl, NULL), TSR_OK);
        if (v != want[i])
            fail_msg("account %d: %" PRId64 " != %" PRId64 " expected", i, v, want[i]);
        total += v;
    }
    assert_int_equal(total, (int64_t)NACCT * START);
    tsr_kv_table_close(t);
}

static void test_bank(void **state)
{
    (void)state;
    char dir[256];
    make_dir(dir, sizeof(dir), "bank");
    tsr_kv_store_t *s = open_store(dir, NULL);
    create(s, "bank", 4, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        int64_t v = START;
        assert_int_equal(tsr_txn_put(x, "bank", k, strlen(k), &v, 8, NULL, NULL), TSR_OK);
    }
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    bank_arg_t a[4];
    pthread_t th[4];
    double until = now_s() + 1.0;
    for (int i = 0; i < 4; i++) {
        a[i] = (bank_arg_t){.db = db, .seed = 7 + (uint64_t)i, .until = until};
        assert_int_equal(pthread_create(&th[i], NULL, bank_thread, &a[i]), 0);
    }
    int64_t want[NACCT];
    for (int i = 0; i < NACCT; i++)
        want[i] = START;
    size_t acked = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].bad_totals, 0);
        for (size_t j = 0; j < a[i].nacked; j++) {
            want[a[i].acked[j].from] -= a[i].acked[j].amt;
            want[a[i].acked[j].to] += a[i].acked[j].amt;
        }
        acked += a[i].nacked;
        free(a[i].acked);
    }
    assert_true(acked > 20);
    check_balances(s, want); /* each acknowledged transfer applied exactly once */
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    print_message("bank: %zu transfers acknowledged, %" PRIu64 " conflicts retried\n", acked,
                  st.conflicts);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
    s = open_store(dir, NULL); /* recovery keeps every acknowledged commit */
    check_balances(s, want);
    tsr_kv_close(s);
    rm_dir(dir);
}

/* ---- recovery ----------------------------------------------------------------------------------
 */

static int64_t kv_i64(tsr_kv_store_t *s, const char *key, tsr_status_t *rc)
{
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "acct", &t, NULL), TSR_OK);
    int64_t v = 0;
    size_t vl;
    *rc = tsr_kv_get(t, key, strlen(key), &v, 8, &vl, NULL);
    tsr_kv_table_close(t);
    return v;
}

/* The newest log file in dir. */
static void newest_log(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char best[256] = "";
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "wal-", 4) == 0 && strstr(e->d_name, ".log") &&
            !strstr(e->d_name, "discarded") && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", e->d_name);
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, cap, "%s/%s", dir, best);
}

static void test_recovery(void **state)
{
    (void)state;
    char dir[256];
    make_dir(dir, sizeof(dir), "rec");
    tsr_kv_store_t *s = open_store(dir, NULL);
    create(s, "acct", 3, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(commit_one(db, "a", 1), TSR_OK);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    put_i64(x, "b", 2);
    put_i64(x, "c", 3);
    assert_int_equal(tsr_txn_delete(x, "acct", "a", 1, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    /* uncommitted: never reaches the store */
    tsr_txn_t *open_x;
    assert_int_equal(tsr_txn_begin(db, &open_x, NULL), TSR_OK);
    put_i64(open_x, "u", 9);
    put_i64(open_x, "b", 99);
    tsr_txn_rollback(open_x);
    tsr_txn_db_close(db);
    tsr_kv_close(s);

    s = open_store(dir, NULL);
    tsr_status_t rc;
    kv_i64(s, "a", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND);
    assert_int_equal(kv_i64(s, "b", &rc), 2);
    assert_int_equal(kv_i64(s, "c", &rc), 3);
    kv_i64(s, "u", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND);

    /* a torn commit record is dropped whole: none of its three writes */
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    put_i64(x, "b", 20);
    put_i64(x, "c", 30);
    put_i64(x, "d", 40);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
    char log[512];
    newest_log(dir, log, sizeof(log));
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(truncate(log, st.st_size - 3), 0);
    s = open_store(dir, NULL);
    tsr_kv_recovery_t ri;
    tsr_kv_recovery_info(s, &ri);
    assert_true(ri.torn_tail);
    assert_int_equal(kv_i64(s, "b", &rc), 2);
    assert_int_equal(kv_i64(s, "c", &rc), 3);
    kv_i64(s, "d", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND);

    /* a crash after the commit record, before apply: replay applies it whole */
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "acct", &t, NULL), TSR_OK);
    kv_txn_key_t k1 = {t, tsr_hash_bytes("b", 1), "b", 1};
    kv_txn_key_t k2 = {t, tsr_hash_bytes("e", 1), "e", 1};
    bool r1, r2;
    pthread_rwlock_rdlock(&s->rw);
    assert_int_equal(tsr_kv_txn_lock(&k1, 0, &r1, NULL), TSR_OK);
    assert_int_equal(tsr_kv_txn_lock(&k2, 0, &r2, NULL), TSR_OK);
    int64_t v1 = 21, v2 = 50;
    kv_txn_wrec_t w[2] = {{&k1, false, &v1, 8}, {&k2, false, &v2, 8}};
    uint64_t lsn;
    assert_int_equal(tsr_kv_txn_log(s, w, 2, &lsn, NULL), TSR_OK);
    pthread_rwlock_unlock(&s->rw);
    assert_int_equal(tsr_kv_wal_commit(s->wal, lsn, NULL), TSR_OK);
    /* "crash": the locks are never released, the writes never applied */
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    s = open_store(dir, NULL);
    assert_int_equal(kv_i64(s, "b", &rc), 21);
    assert_int_equal(kv_i64(s, "e", &rc), 50);
    /* and a checkpoint keeps it */
    assert_int_equal(tsr_kv_checkpoint(s, NULL), TSR_OK);
    tsr_kv_close(s);
    s = open_store(dir, NULL);
    assert_int_equal(kv_i64(s, "e", &rc), 50);
    tsr_kv_close(s);
    rm_dir(dir);
}

/* ---- fencing, the retry helper, bad input --------------------------------------------------- */

static void test_fencing(void **state)
{
    (void)state;
    tsr_lock_fence_t *f;
    assert_int_equal(tsr_lock_fence_create(&f, NULL), TSR_OK);
    tsr_kv_store_t *s = open_store(NULL, f);
    create(s, "acct", 1, 16, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    tsr_kv_write_opts_t wo = {"L", 5};
    int64_t v = 1;
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "acct", "a", 1, &v, 8, &wo, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    wo.token = 3; /* older than one already seen */
    v = 2;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "acct", "a", 1, &v, 8, &wo, NULL), TSR_OK);
    put_i64(x, "b", 2);
    tsr_txn_err_t e = {0};
    assert_int_equal(tsr_txn_commit(x, &e), TSR_ERR_STALE);
    tsr_status_t rc;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(get_i64(x, "a", &rc), 1); /* nothing applied */
    get_i64(x, "b", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND);
    tsr_txn_rollback(x);
    assert_int_equal(commit_one(db, "a", 3), TSR_OK); /* the stale commit left no lock */
    tsr_txn_db_close(db);
    tsr_kv_close(s);
    tsr_lock_fence_destroy(f);

    /* a store without a fence refuses fenced writes */
    s = open_store(NULL, NULL);
    create(s, "acct", 1, 16, 8);
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    wo.token = 9;
    assert_int_equal(tsr_txn_put(x, "acct", "a", 1, &v, 8, &wo, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_INVALID_ARG);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

static tsr_status_t always_conflict(tsr_txn_t *x, void *arg)
{
    (void)x;
    (*(int *)arg)++;
    return TSR_ERR_CONFLICT;
}

static tsr_status_t fails(tsr_txn_t *x, void *arg)
{
    (void)arg;
    int64_t v = 5;
    tsr_txn_put(x, "acct", "f", 1, &v, 8, NULL, NULL);
    return TSR_ERR_NOT_FOUND;
}

static void test_run_and_bad_input(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "acct", 1, 4, 8);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    int calls = 0;
    unsigned attempts = 0;
    tsr_txn_run_opts_t o = {.max_attempts = 5, .backoff_us = 1, .backoff_max_us = 10};
    tsr_txn_err_t e = {0};
    assert_int_equal(tsr_txn_run(db, always_conflict, &calls, &o, &attempts, &e), TSR_ERR_CONFLICT);
    assert_int_equal(calls, 5);
    assert_int_equal(attempts, 5);
    assert_int_equal(e.status, TSR_ERR_CONFLICT);
    assert_int_equal(tsr_txn_run(db, fails, NULL, &o, &attempts, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(attempts, 1);
    tsr_txn_t *x;
    tsr_status_t rc;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    get_i64(x, "f", &rc);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND); /* the failed body's write was dropped */

    /* bad input */
    size_t vl;
    char buf[8];
    assert_int_equal(tsr_txn_get(x, "nope", "k", 1, buf, 8, &vl, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(tsr_txn_get(x, "", "k", 1, buf, 8, &vl, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_get(x, NULL, "k", 1, buf, 8, &vl, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_get(x, "acct", NULL, 1, buf, 8, &vl, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_get(x, "acct", "toolong", 7, buf, 8, &vl, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_put(x, "acct", NULL, 3, buf, 8, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_write_opts_t empty_lock = {"", 1};
    assert_int_equal(tsr_txn_put(x, "acct", "k", 1, buf, 8, &empty_lock, NULL),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_begin(NULL, &x, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_commit(NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_txn_rollback(NULL);
    tsr_txn_db_close(NULL);
    /* a value longer than the table allows fails the commit, nothing applied */
    assert_int_equal(tsr_txn_put(x, "acct", "k", 1, "123456789", 9, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, &e), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "nope", "k", 1, "1", 1, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_NOT_FOUND);
    /* a short buffer gets the length to retry with */
    assert_int_equal(commit_one(db, "k", 0x0102030405060708), TSR_OK);
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get(x, "acct", "k", 1, buf, 2, &vl, NULL), TSR_OK);
    assert_int_equal(vl, 8);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK); /* read-only */
    /* the empty transaction */
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* Values longer than the first read buffer (256 bytes) come back whole. */
static void test_large_values(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "big", 2, 16, 5000);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    static unsigned char v[5001], got[5000];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (unsigned char)(i * 7 + 1);
    size_t sizes[] = {0, 1, 255, 256, 257, 4999, 5000};
    for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
        tsr_txn_t *x;
        assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
        assert_int_equal(tsr_txn_put(x, "big", "k", 1, v, sizes[j], NULL, NULL), TSR_OK);
        assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
        assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
        size_t vl = 0;
        assert_int_equal(tsr_txn_get(x, "big", "k", 1, got, 10, &vl, NULL), TSR_OK);
        assert_int_equal(vl, sizes[j]);
        assert_int_equal(tsr_txn_get(x, "big", "k", 1, got, sizeof(got), &vl, NULL), TSR_OK);
        assert_int_equal(vl, sizes[j]);
        assert_memory_equal(got, v, vl);
        tsr_txn_rollback(x);
    }
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, "big", "k", 1, v, 5001, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_INVALID_ARG);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* ---- commits racing a drop of their table --------------------------------------------- */

typedef struct drop_race {
    tsr_txn_db_t *db;
    atomic_bool *stop;
    unsigned long ok, refused;
    int failed;
} drop_race_t;

static void *drop_race_committer(void *arg)
{
    drop_race_t *a = arg;
    for (uint32_t k = 0; !atomic_load(a->stop); k++) {
        tsr_txn_t *x = NULL;
        if (tsr_txn_begin(a->db, &x, NULL) != TSR_OK) {
            a->failed++;
            break;
        }
        tsr_status_t rc = tsr_txn_put(x, "d", &k, 4, &k, 4, NULL, NULL);
        if (rc == TSR_OK)
            rc = tsr_txn_commit(x, NULL);
        else
            tsr_txn_rollback(x);
        if (rc == TSR_OK)
            a->ok++;
        else if (rc == TSR_ERR_CONFLICT || rc == TSR_ERR_NOT_FOUND)
            a->refused++;
        else
            a->failed++;
    }
    return NULL;
}

/* A commit whose table is dropped between its lookup and its log record
 * must not log a record after the DROP (recovery would meet an unknown
 * table id and refuse to open the store). */
static void test_commit_races_drop(void **state)
{
    (void)state;
    char dir[256];
    make_dir(dir, sizeof(dir), "drop");
    tsr_kv_store_t *s = open_store(dir, NULL);
    create(s, "d", 2, 4, 4);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    atomic_bool stop;
    atomic_init(&stop, false);
    drop_race_t a[2] = {{.db = db, .stop = &stop}, {.db = db, .stop = &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, drop_race_committer, &a[i]), 0);
    for (int r = 0; r < 400; r++) {
        assert_int_equal(tsr_kv_table_drop(s, "d", NULL), TSR_OK);
        create(s, "d", 2, 4, 4);
        if (r % 50 == 0)
            usleep(1000);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].failed, 0);
    }
    print_message("commits %lu, refused %lu\n", a[0].ok + a[1].ok, a[0].refused + a[1].refused);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
    s = open_store(dir, NULL); /* asserts the open succeeds */
    tsr_kv_close(s);
    rm_dir(dir);
}

/* A transaction that read a table dropped before its commit cannot be
 * validated: CONFLICT (so tsr_txn_run retries and finds the table gone),
 * also when it wrote nothing; a write to a table that never existed stays
 * NOT_FOUND. */
static void test_read_of_dropped_table(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    for (int writes = 0; writes < 2; writes++) {
        create(s, "acct", 2, 4, 8);
        assert_int_equal(commit_one(db, "a", 1), TSR_OK);
        assert_int_equal(commit_one(db, "b", 2), TSR_OK);
        tsr_txn_t *x;
        tsr_status_t rc;
        assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
        assert_int_equal(get_i64(x, "a", &rc), 1); /* two reads: not one snapshot */
        assert_int_equal(rc, TSR_OK);
        assert_int_equal(get_i64(x, "b", &rc), 2);
        assert_int_equal(rc, TSR_OK);
        if (writes)
            put_i64(x, "a", 5);
        assert_int_equal(tsr_kv_table_drop(s, "acct", NULL), TSR_OK);
        tsr_txn_err_t e = {0};
        assert_int_equal(tsr_txn_commit(x, &e), TSR_ERR_CONFLICT);
        if (!strstr(e.message, "dropped"))
            fail_msg("writes %d: %s", writes, e.message);
    }
    /* only written: the table may never have existed */
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    put_i64(x, "a", 5);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_NOT_FOUND);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
}

/* ---- a transaction of thousands of keys ------------------------------------------------ */

enum { BIG_KEYS = 6000 };

/* 6,000 keys over two tables (the read and write sets pass the size where
 * they are indexed, entry_index.h): gets of present and absent keys (one
 * by one and in get_many calls), puts that overwrite keys read and written
 * before, deletes, reads of its own writes checked against a model inside
 * the transaction; the commit leaves the store equal to the model; a
 * second big transaction fails validation when one key it read (found
 * through the index) was changed under it. */
static void test_large_sets(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(NULL, NULL);
    create(s, "a", 3, 8, 8);
    create(s, "b", 2, 8, 8);
    static int64_t model[2][BIG_KEYS]; /* -1: absent */
    const char *names[2] = {"a", "b"};
    tsr_kv_table_t *t[2];
    for (int ti = 0; ti < 2; ti++) {
        assert_int_equal(tsr_kv_table_open(s, names[ti], &t[ti], NULL), TSR_OK);
        for (int64_t k = 0; k < BIG_KEYS; k++) {
            model[ti][k] = k % 3 == 0 ? -1 : k * 10 + ti;
            if (model[ti][k] >= 0)
                assert_int_equal(tsr_kv_upsert(t[ti], &k, 8, &model[ti][k], 8, NULL, NULL), TSR_OK);
        }
    }
    tsr_txn_db_t *db;
    assert_int_equal(tsr_txn_db_local(s, &db, NULL), TSR_OK);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    uint64_t rng = 99;
    for (int round = 0; round < 3; round++)
        for (int64_t k = 0; k < BIG_KEYS; k++) {
            int ti = (int)(rnd_next(&rng) % 2);
            int64_t v = 0;
            size_t vl = 0;
            uint64_t op = rnd_next(&rng) % 10;
            if (op < 4) {
                tsr_status_t rc = tsr_txn_get(x, names[ti], &k, 8, &v, 8, &vl, NULL);
                assert_int_equal(rc, model[ti][k] < 0 ? TSR_ERR_NOT_FOUND : TSR_OK);
                if (rc == TSR_OK)
                    assert_true(v == model[ti][k]);
            } else if (op < 6) {
                int64_t ks[4] = {k, (k + 7) % BIG_KEYS, k, (k + 13) % BIG_KEYS};
                int64_t vs[4] = {0};
                tsr_txn_read_t rd[4];
                for (int j = 0; j < 4; j++)
                    rd[j] = (tsr_txn_read_t){
                        .table = names[ti], .key = &ks[j], .klen = 8, .buf = &vs[j], .cap = 8};
                (void)tsr_txn_get_many(x, rd, 4, NULL);
                for (int j = 0; j < 4; j++) {
                    assert_int_equal(rd[j].status,
                                     model[ti][ks[j]] < 0 ? TSR_ERR_NOT_FOUND : TSR_OK);
                    if (rd[j].status == TSR_OK)
                        assert_true(vs[j] == model[ti][ks[j]]);
                }
            } else if (op < 9) {
                v = (int64_t)(rnd_next(&rng) % 1000000);
                assert_int_equal(tsr_txn_put(x, names[ti], &k, 8, &v, 8, NULL, NULL), TSR_OK);
                model[ti][k] = v;
            } else {
                assert_int_equal(tsr_txn_delete(x, names[ti], &k, 8, NULL, NULL), TSR_OK);
                model[ti][k] = -1;
            }
        }
    /* one get_many of 2,000 elements, each key twice, keys read, written
     * and new to the transaction among them */
    {
        enum { GM = 2000 };
        static int64_t ks[GM], vs[GM];
        static tsr_txn_read_t rd[GM];
        for (int j = 0; j < GM; j++) {
            ks[j] = (int64_t)((j % (GM / 2)) * 5 % BIG_KEYS);
            rd[j] =
                (tsr_txn_read_t){.table = "b", .key = &ks[j], .klen = 8, .buf = &vs[j], .cap = 8};
        }
        (void)tsr_txn_get_many(x, rd, GM, NULL);
        for (int j = 0; j < GM; j++) {
            assert_int_equal(rd[j].status, model[1][ks[j]] < 0 ? TSR_ERR_NOT_FOUND : TSR_OK);
            if (rd[j].status == TSR_OK)
                assert_true(vs[j] == model[1][ks[j]]);
        }
    }
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    for (int ti = 0; ti < 2; ti++)
        for (int64_t k = 0; k < BIG_KEYS; k++) {
            int64_t v = 0;
            size_t vl = 0;
            tsr_status_t rc = tsr_kv_get(t[ti], &k, 8, &v, 8, &vl, NULL);
            assert_int_equal(rc, model[ti][k] < 0 ? TSR_ERR_NOT_FOUND : TSR_OK);
            if (rc == TSR_OK)
                assert_true(v == model[ti][k]);
        }
    /* validation finds a changed read among thousands */
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    for (int64_t k = 0; k < BIG_KEYS; k++) {
        int64_t v = 0;
        size_t vl = 0;
        (void)tsr_txn_get(x, "a", &k, 8, &v, 8, &vl, NULL);
        if (k % 2)
            assert_int_equal(tsr_txn_put(x, "b", &k, 8, &k, 8, NULL, NULL), TSR_OK);
    }
    int64_t k = BIG_KEYS - 5, v = 1;
    assert_int_equal(tsr_kv_upsert(t[0], &k, 8, &v, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_CONFLICT);
    tsr_txn_db_close(db);
    for (int ti = 0; ti < 2; ti++)
        tsr_kv_table_close(t[ti]);
    tsr_kv_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_model),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_reserved_invisible),
        cmocka_unit_test(test_plain_reinsert_aba),
        cmocka_unit_test(test_write_skew_deterministic),
        cmocka_unit_test(test_write_skew_threads),
        cmocka_unit_test(test_bank),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_run_and_bad_input),
        cmocka_unit_test(test_large_values),
        cmocka_unit_test(test_commit_races_drop),
        cmocka_unit_test(test_read_of_dropped_table),
        cmocka_unit_test(test_large_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
