/*
 * test_txn_many.c - tsr_txn_get_many (include/tessera/txn.h): a
 * transaction's reads in one call, on a local db and on remote dbs over the
 * real transport (one process: the owner and client of txn_many_env.h).
 *
 * Checked against a plain model:
 *  - random transactions (get_many of 0..7 reads over 3 tables - duplicates,
 *    keys already written or deleted in the transaction, absent keys, caps
 *    of 0, short and whole -, single gets, puts, deletes, commits and
 *    rollbacks) on a local db, on a remote db with one-sided reads over TCP
 *    and over shared memory, on one that reads by call over TCP although the
 *    owner serves descriptors (tsr_txn_db_set_reads' default there: a
 *    get_many's keys in one READ_MANY call), and on one whose owner serves
 *    no descriptors (reads by call); every status, length and byte against the model with
 *    a per-transaction overlay. Table "ta" starts small and rehashes under
 *    the readers (MOVED, descriptor re-fetch); table "big" holds values up
 *    to 20,000 bytes, slots over one 16 KiB window (a window of one slot;
 *    values longer than the single read's first 256-byte buffer);
 *  - costs: duplicates and keys already in the sets are not read again
 *    (the db's read counters), n = 0 reads nothing (how a remote db reads,
 *    by call or one-sided, and READ_SNAP: test_txn_reads.c);
 *  - edges: a value longer than cap (vlen the full length, cap bytes
 *    copied, nothing past them), an unknown table (that read NOT_FOUND, the
 *    call NOT_FOUND, the others decided), a key too long for its table,
 *    bad arguments (every status INVALID_ARG, nothing read), one call over
 *    12 tables not read before (their readers opened by the call);
 *  - conflicts: a read of get_many overwritten (or an absent key inserted)
 *    by a concurrent committer fails the later commit with
 *    TSR_ERR_CONFLICT; tsr_txn_run retries such a body and succeeds; a key
 *    locked by a committer answers TSR_ERR_CONFLICT on a local db;
 *  - torn reads: on the remote db a slot locked (odd version) and one with
 *    a corrupt value byte in the owner's memory, healed by a thread 300 ms
 *    later: get_many re-reads and returns the whole values (torn retries
 *    counted by the readers);
 *  - the cross-reader rounds directly: readers on two transports are
 *    refused.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "kv_torn_test.h"
#include "remote_int.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h"
#include "transport_test.h"
#include "txn_internal.h"
#include "txn_many_env.h"

#define NTAB 3
#define NKEY 40
#define NTXN 400

static const char *const TABS[NTAB] = {"ta", "tb", "big"};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- the model ------------------------------------------------------------------------ */

typedef struct mval {
    bool present;
    uint32_t len;
    unsigned char *v; /* BIGV bytes */
} mval_t;

typedef struct model {
    mval_t m[NTAB][NKEY];  /* committed */
    mval_t ov[NTAB][NKEY]; /* this transaction's writes */
    bool wrote[NTAB][NKEY];
} model_t;

static void model_init(model_t *md)
{
    memset(md, 0, sizeof(*md));
    for (int t = 0; t < NTAB; t++)
        for (int k = 0; k < NKEY; k++) {
            md->m[t][k].v = test_malloc(BIGV);
            md->ov[t][k].v = test_malloc(BIGV);
        }
}

static void model_free(model_t *md)
{
    for (int t = 0; t < NTAB; t++)
        for (int k = 0; k < NKEY; k++) {
            test_free(md->m[t][k].v);
            test_free(md->ov[t][k].v);
        }
}

static size_t key_of(int k, char *buf)
{
    if (k == 0)
        return 0; /* the empty key */
    return (size_t)snprintf(buf, 16, "key%d", k);
}

static uint32_t max_len(int t)
{
    return t == 0 ? 200 : t == 1 ? 64 : BIGV;
}

/* What key (t, k) reads as in the transaction: overlay, else committed. */
static const mval_t *expect(const model_t *md, int t, int k)
{
    return md->wrote[t][k] ? &md->ov[t][k] : &md->m[t][k];
}

static void check_read(const model_t *md, int t, int k, const tsr_txn_read_t *rd,
                       const unsigned char *buf, size_t bufsz)
{
    const mval_t *mv = expect(md, t, k);
    if (!mv->present) {
        assert_int_equal(rd->status, TSR_ERR_NOT_FOUND);
        return;
    }
    assert_int_equal(rd->status, TSR_OK);
    assert_int_equal(rd->vlen, mv->len);
    size_t c = mv->len < rd->cap ? mv->len : rd->cap;
    if (c)
        assert_memory_equal(buf, mv->v, c);
    for (size_t j = c; j < bufsz && j < c + 8; j++) /* nothing written past the copy */
        assert_int_equal(buf[j], 0xee);
}

/* The db's kv readers' counters, summed. */
static tsr_kv_remote_stats_t readers_stats(tsr_txn_db_t *db)
{
    tsr_kv_remote_stats_t sum = {0};
    for (size_t i = 0; i < db->nrtabs; i++)
        if (db->rtabs[i].r) {
            tsr_kv_remote_stats_t rs;
            tsr_kv_remote_get_stats(db->rtabs[i].r, &rs);
            sum.gets += rs.gets;
            sum.rma_reads += rs.rma_reads;
            sum.torn_retries += rs.torn_retries;
            sum.refreshes += rs.refreshes;
        }
    return sum;
}

/* One random transaction; commits (or rolls back) and updates the model. */
static void one_txn(env_t *e, model_t *md, uint64_t *seed, size_t *nmany)
{
    tsr_txn_t *x;
    tsr_txn_err_t xe = {0};
    assert_int_equal(tsr_txn_begin(e->db, &x, &xe), TSR_OK);
    memset(md->wrote, 0, sizeof(md->wrote));
    int nops = 1 + (int)(rnd(seed) % 8);
    static unsigned char bufs[8][BIGV + 16];
    char kb[8][16];
    for (int op = 0; op < nops; op++) {
        uint64_t r = rnd(seed) % 100;
        int t = (int)(rnd(seed) % NTAB), k = (int)(rnd(seed) % NKEY);
        char kk[16];
        size_t kl = key_of(k, kk);
        if (r < 45) { /* get_many */
            size_t n = rnd(seed) % 8;
            tsr_txn_read_t rd[8];
            int ts[8], ks[8];
            for (size_t i = 0; i < n; i++) {
                if (i > 0 && rnd(seed) % 5 == 0) { /* a duplicate of an earlier element */
                    size_t j = rnd(seed) % i;
                    ts[i] = ts[j];
                    ks[i] = ks[j];
                } else {
                    ts[i] = (int)(rnd(seed) % NTAB);
                    ks[i] = (int)(rnd(seed) % NKEY);
                }
                size_t kli = key_of(ks[i], kb[i]);
                uint64_t cr = rnd(seed) % 4;
                size_t cap = cr == 0 ? 0 : cr == 1 ? rnd(seed) % 40 : BIGV;
                memset(bufs[i], 0xee, cap + 16);
                rd[i] = (tsr_txn_read_t){.table = TABS[ts[i]],
                                         .key = kb[i],
                                         .klen = kli,
                                         .buf = cap ? bufs[i] : NULL,
                                         .cap = cap,
                                         .vlen = 12345,
                                         .status = TSR_ERR_INTERNAL};
            }
            tsr_txn_err_t ge = {0};
            assert_int_equal(tsr_txn_get_many(x, rd, n, &ge), TSR_OK);
            assert_int_equal(ge.status, TSR_OK);
            for (size_t i = 0; i < n; i++)
                check_read(md, ts[i], ks[i], &rd[i], bufs[i], rd[i].cap ? rd[i].cap + 16 : 0);
            *nmany += n;
        } else if (r < 60) { /* a single get */
            size_t vl = 0;
            tsr_status_t rc = tsr_txn_get(x, TABS[t], kk, kl, bufs[0], BIGV, &vl, NULL);
            const mval_t *mv = expect(md, t, k);
            assert_int_equal(rc, mv->present ? TSR_OK : TSR_ERR_NOT_FOUND);
            if (mv->present) {
                assert_int_equal(vl, mv->len);
                assert_memory_equal(bufs[0], mv->v, vl);
            }
        } else if (r < 85) { /* put: mostly short, sometimes long */
            mval_t *o = &md->ov[t][k];
            uint32_t ml = max_len(t);
            o->len =
                (uint32_t)(rnd(seed) % (rnd(seed) % 4 == 0 ? ml + 1 : (ml < 40 ? ml : 40) + 1));
            for (uint32_t j = 0; j < o->len; j++)
                o->v[j] = (unsigned char)rnd(seed);
            o->present = true;
            md->wrote[t][k] = true;
            assert_int_equal(tsr_txn_put(x, TABS[t], kk, kl, o->v, o->len, NULL, NULL), TSR_OK);
        } else { /* delete */
            md->ov[t][k].present = false;
            md->wrote[t][k] = true;
            assert_int_equal(tsr_txn_delete(x, TABS[t], kk, kl, NULL, NULL), TSR_OK);
        }
    }
    if (rnd(seed) % 4 == 0) {
        tsr_txn_rollback(x);
        return;
    }
    tsr_txn_err_t ce = {0};
    tsr_status_t rc = tsr_txn_commit(x, &ce);
    if (rc != TSR_OK)
        fprintf(stderr, "commit: %s\n", ce.message);
    assert_int_equal(rc, TSR_OK);
    for (int t = 0; t < NTAB; t++)
        for (int k = 0; k < NKEY; k++)
            if (md->wrote[t][k]) {
                mval_t *m = &md->m[t][k], *o = &md->ov[t][k];
                m->present = o->present;
                m->len = o->len;
                memcpy(m->v, o->v, o->len);
            }
}

static void model_run(const char *mode, const char *tls, uint64_t seed)
{
    env_t e;
    env_up(&e, mode, tls);
    model_t *md = test_malloc(sizeof(*md));
    model_init(md);
    size_t nmany = 0;
    for (int i = 0; i < NTXN; i++)
        one_txn(&e, md, &seed, &nmany);
    tsr_txn_stats_t st;
    tsr_txn_db_stats(e.db, &st);
    print_message("%s/%s: %zu get_many reads, rma %llu rpc %llu commits %llu\n", mode,
                  tls ? tls : "default", nmany, (unsigned long long)st.reads_rma,
                  (unsigned long long)st.reads_rpc, (unsigned long long)st.commits);
    assert_int_equal(st.conflicts, 0);
    /* the client locks one-sided when forced (rlock), and by default when
     * it reads one-sided over shared memory */
    bool rlock = strcmp(mode, "rlock") == 0;
    bool by_client = rlock || (strcmp(mode, "rma") == 0 && !tls);
    assert_true(by_client ? st.locks_one_sided > 0 : st.locks_one_sided == 0);
    if (rlock || strcmp(mode, "rma") == 0) {
        assert_true(st.reads_rma > 0);
        assert_int_equal(st.reads_rpc, 0);
        /* "ta" grew from 4 keys: readers saw its regions replaced */
        tsr_kv_remote_stats_t rs = readers_stats(e.db);
        print_message("descriptor refreshes %llu\n", (unsigned long long)rs.refreshes);
        assert_true(rs.refreshes > 0);
    } else if (strcmp(mode, "rpc") == 0 || strcmp(mode, "call") == 0) {
        assert_int_equal(st.reads_rma, 0);
        assert_true(st.reads_rpc > 0);
    }
    model_free(md);
    test_free(md);
    env_down(&e);
}

static void test_model_local(void **state)
{
    (void)state;
    model_run("local", NULL, 11);
}

static void test_model_remote(void **state)
{
    (void)state;
    model_run("rma", "tcp", 12);
    model_run("rma", NULL, 13);
    model_run("rlock", "tcp", 16); /* the client's CAS forced over emulated atomics */
}

static void test_model_rpc(void **state)
{
    (void)state;
    model_run("rpc", "tcp", 14);
    model_run("call", "tcp", 15);
}

/* ---- costs and edges ---------------------------------------------------------------- */

static void edges_on(const char *mode, const char *tls)
{
    env_t e;
    env_up(&e, mode, tls);
    put1(e.other, "ta", "a", "alpha", 5);
    put1(e.other, "tb", "b", "bravo!", 6);
    static unsigned char bigv[BIGV];
    for (size_t i = 0; i < BIGV; i++)
        bigv[i] = (unsigned char)(i * 7 + 1);
    put1(e.other, "big", "g", bigv, BIGV);
    bool local = strcmp(mode, "local") == 0;

    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    /* n = 0 reads nothing; NULL reads with n = 0 too */
    uint64_t r0 = reads_of(e.db);
    assert_int_equal(tsr_txn_get_many(x, NULL, 0, NULL), TSR_OK);
    assert_int_equal(reads_of(e.db), r0);

    /* two tables, a duplicate, an absent key, a value longer than cap, a
     * value over one window: 4 distinct keys read */
    unsigned char b1[8], b2[8], b3[8], b4[4], b5[8];
    static unsigned char bb[BIGV + 8];
    memset(b1, 0xee, sizeof(b1));
    memset(b3, 0xee, sizeof(b3));
    memset(bb, 0xee, sizeof(bb));
    tsr_txn_read_t rd[6] = {RD("ta", "a", b1, 3),         RD("tb", "b", b2, 8),
                            RD("ta", "a", b3, 8),         RD("tb", "nope", b4, 4),
                            RD("big", "g", bb, BIGV + 8), RD("ta", "a", NULL, 0)};
    (void)b5;
    assert_int_equal(tsr_txn_get_many(x, rd, 6, NULL), TSR_OK);
    if (!local)
        assert_int_equal(reads_of(e.db), r0 + 4);
    assert_int_equal(rd[0].status, TSR_OK);
    assert_int_equal(rd[0].vlen, 5);
    assert_memory_equal(b1, "alp", 3);
    assert_int_equal(b1[3], 0xee); /* cap bytes copied, no more */
    assert_int_equal(rd[1].status, TSR_OK);
    assert_int_equal(rd[1].vlen, 6);
    assert_memory_equal(b2, "bravo!", 6);
    assert_int_equal(rd[2].status, TSR_OK);
    assert_memory_equal(b3, "alpha", 5);
    assert_int_equal(b3[5], 0xee);
    assert_int_equal(rd[3].status, TSR_ERR_NOT_FOUND);
    assert_int_equal(rd[4].status, TSR_OK);
    assert_int_equal(rd[4].vlen, BIGV);
    assert_memory_equal(bb, bigv, BIGV);
    assert_int_equal(bb[BIGV], 0xee);
    assert_int_equal(rd[5].status, TSR_OK);
    assert_int_equal(rd[5].vlen, 5);

    /* keys already in the sets are not read again; writes are read back */
    assert_int_equal(tsr_txn_put(x, "tb", "w", 1, "new", 3, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_delete(x, "ta", "a", 1, NULL, NULL), TSR_OK);
    uint64_t r1 = reads_of(e.db);
    unsigned char c1[8], c2[8], c3[8];
    tsr_txn_read_t rw[4] = {RD("tb", "w", c1, 8), RD("ta", "a", c2, 8), RD("tb", "b", c3, 8),
                            RD("tb", "nope", NULL, 0)};
    assert_int_equal(tsr_txn_get_many(x, rw, 4, NULL), TSR_OK);
    assert_int_equal(reads_of(e.db), r1);
    assert_int_equal(rw[0].status, TSR_OK);
    assert_int_equal(rw[0].vlen, 3);
    assert_memory_equal(c1, "new", 3);
    assert_int_equal(rw[1].status, TSR_ERR_NOT_FOUND); /* deleted by x */
    assert_int_equal(rw[2].status, TSR_OK);
    assert_int_equal(rw[3].status, TSR_ERR_NOT_FOUND); /* absent, recorded once */

    /* an unknown table: that read NOT_FOUND, the call NOT_FOUND, the
     * others decided (and recorded) */
    unsigned char d1[8];
    tsr_txn_read_t ru[3] = {RD("nosuch", "a", NULL, 0), RD("tb", "c", NULL, 0),
                            RD("tb", "b", d1, 8)};
    tsr_txn_err_t ue = {0};
    assert_int_equal(tsr_txn_get_many(x, ru, 3, &ue), TSR_ERR_NOT_FOUND);
    assert_int_equal(ue.status, TSR_ERR_NOT_FOUND);
    assert_int_equal(ru[0].status, TSR_ERR_NOT_FOUND);
    assert_int_equal(ru[1].status, TSR_ERR_NOT_FOUND);
    assert_int_equal(ru[2].status, TSR_OK);
    assert_memory_equal(d1, "bravo!", 6);

    /* a key longer than its table allows (16): that read only */
    char longk[40];
    memset(longk, 'k', sizeof(longk) - 1);
    longk[39] = '\0';
    tsr_txn_read_t rl[3] = {RD("ta", longk, NULL, 0), RD("tb", "d", NULL, 0),
                            RD("big", "g", NULL, 0)};
    assert_int_equal(tsr_txn_get_many(x, rl, 3, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(rl[0].status, TSR_ERR_INVALID_ARG);
    assert_int_equal(rl[1].status, TSR_ERR_NOT_FOUND);
    assert_int_equal(rl[2].status, TSR_OK);
    assert_int_equal(rl[2].vlen, BIGV);

    /* bad arguments: every status says so, nothing is read */
    uint64_t r2 = reads_of(e.db);
    tsr_txn_read_t bad[2] = {RD("tb", "e", NULL, 0), RD("tb", "f", NULL, 0)};
    bad[1].cap = 4; /* no buffer */
    assert_int_equal(tsr_txn_get_many(x, bad, 2, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(bad[0].status, TSR_ERR_INVALID_ARG);
    assert_int_equal(bad[1].status, TSR_ERR_INVALID_ARG);
    bad[1] = RD("tb", "f", NULL, 0);
    bad[1].key = NULL; /* a key length without a key */
    assert_int_equal(tsr_txn_get_many(x, bad, 2, NULL), TSR_ERR_INVALID_ARG);
    bad[1] = RD("", "f", NULL, 0);
    assert_int_equal(tsr_txn_get_many(x, bad, 2, NULL), TSR_ERR_INVALID_ARG);
    bad[1] = RD("tb", "f", NULL, 0);
    bad[1].table = NULL;
    assert_int_equal(tsr_txn_get_many(x, bad, 2, NULL), TSR_ERR_INVALID_ARG);
    char longname[TSR_KV_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    bad[1] = RD(longname, "f", NULL, 0);
    assert_int_equal(tsr_txn_get_many(x, bad, 2, NULL), TSR_ERR_INVALID_ARG);
    bad[1] = RD("tb", "f", NULL, 0);
    bad[1].klen = TSR_KV_MAX_KEY_LIMIT + 1;
    assert_int_equal(tsr_txn_get_many(x, bad, 2, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_get_many(x, NULL, 2, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_get_many(NULL, bad, 1, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(reads_of(e.db), r2);

    /* more elements than one call keeps on the stack (16): all decided */
    char kk[40][8];
    tsr_txn_read_t many[40];
    for (int i = 0; i < 40; i++) {
        snprintf(kk[i], sizeof(kk[i]), "m%d", i % 25);
        many[i] = RD(i % 2 ? "ta" : "tb", kk[i], NULL, 0);
    }
    assert_int_equal(tsr_txn_get_many(x, many, 40, NULL), TSR_OK);
    for (int i = 0; i < 40; i++)
        assert_int_equal(many[i].status, TSR_ERR_NOT_FOUND);
    /* one call opening many tables' readers at once (the db's table
     * array grows while the call collects them), one value each */
    char tn[12][8];
    tsr_txn_read_t mt[12];
    int64_t mv[12];
    for (int i = 0; i < 12; i++) {
        snprintf(tn[i], sizeof(tn[i]), "mt%d", i);
        tsr_kv_table_params_t tp = {.partitions = 1 + (uint32_t)(i % 3), .max_key = 16};
        assert_int_equal(tsr_kv_table_create(e.store, tn[i], &tp, NULL), TSR_OK);
        int64_t v = 100 + i;
        put1(e.other, tn[i], "k", &v, 8);
        mt[i] = RD(tn[i], "k", &mv[i], 8);
    }
    assert_int_equal(tsr_txn_get_many(x, mt, 12, NULL), TSR_OK);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(mt[i].status, TSR_OK);
        assert_int_equal(mv[i], 100 + i);
    }
    /* the transaction still commits: its reads are all still true */
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    env_down(&e);
}

static void test_edges(void **state)
{
    (void)state;
    edges_on("local", NULL);
    edges_on("rma", "tcp");
    edges_on("rpc", "tcp");
    edges_on("call", "tcp");
}

/* ---- conflicts ------------------------------------------------------------------------- */

typedef struct body {
    env_t *e;
    int calls;
} body_t;

/* Reads two keys with get_many and moves 1 from one to the other; on its
 * first call another committer changes one of them before the commit. */
static tsr_status_t transfer(tsr_txn_t *x, void *arg)
{
    body_t *b = arg;
    int64_t v1 = 0, v2 = 0;
    tsr_txn_read_t rd[2] = {RD("ta", "x", &v1, 8), RD("tb", "y", &v2, 8)};
    tsr_status_t rc = tsr_txn_get_many(x, rd, 2, NULL);
    if (rc != TSR_OK)
        return rc;
    if (rd[0].status != TSR_OK || rd[1].status != TSR_OK)
        return TSR_ERR_NOT_FOUND;
    if (b->calls++ == 0) {
        int64_t z = v2 + 100;
        put1(b->e->other, "tb", "y", &z, 8);
    }
    v1 -= 1;
    v2 += 1;
    rc = tsr_txn_put(x, "ta", "x", 1, &v1, 8, NULL, NULL);
    return rc == TSR_OK ? tsr_txn_put(x, "tb", "y", 1, &v2, 8, NULL, NULL) : rc;
}

static void conflicts_on(const char *mode, const char *tls)
{
    env_t e;
    env_up(&e, mode, tls);
    int64_t ten = 10, twenty = 20;
    put1(e.other, "ta", "x", &ten, 8);
    put1(e.other, "tb", "y", &twenty, 8);

    /* a value read by get_many changed by another commit: CONFLICT */
    tsr_txn_t *x;
    int64_t v1 = 0, v2 = 0;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    tsr_txn_read_t rd[3] = {RD("ta", "x", &v1, 8), RD("tb", "y", &v2, 8),
                            RD("tb", "absent", NULL, 0)};
    assert_int_equal(tsr_txn_get_many(x, rd, 3, NULL), TSR_OK);
    assert_int_equal(v1, 10);
    assert_int_equal(v2, 20);
    assert_int_equal(rd[2].status, TSR_ERR_NOT_FOUND);
    int64_t w = 21;
    put1(e.other, "tb", "y", &w, 8);
    assert_int_equal(tsr_txn_put(x, "ta", "x", 1, &w, 8, NULL, NULL), TSR_OK);
    tsr_txn_err_t ce = {0};
    assert_int_equal(tsr_txn_commit(x, &ce), TSR_ERR_CONFLICT);
    assert_int_equal(ce.status, TSR_ERR_CONFLICT);

    /* an absent key read by get_many inserted by another commit: CONFLICT */
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    tsr_txn_read_t ra[2] = {RD("tb", "absent", NULL, 0), RD("ta", "x", &v1, 8)};
    assert_int_equal(tsr_txn_get_many(x, ra, 2, NULL), TSR_OK);
    assert_int_equal(ra[0].status, TSR_ERR_NOT_FOUND);
    put1(e.other, "tb", "absent", "now", 3);
    assert_int_equal(tsr_txn_put(x, "ta", "x", 1, &w, 8, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_ERR_CONFLICT);

    /* tsr_txn_run retries a body whose get_many reads went stale */
    body_t b = {&e, 0};
    unsigned attempts = 0;
    tsr_txn_run_opts_t o = {.seed = 7};
    assert_int_equal(tsr_txn_run(e.db, transfer, &b, &o, &attempts, NULL), TSR_OK);
    assert_int_equal(attempts, 2);
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    tsr_txn_read_t rc2[2] = {RD("ta", "x", &v1, 8), RD("tb", "y", &v2, 8)};
    assert_int_equal(tsr_txn_get_many(x, rc2, 2, NULL), TSR_OK);
    assert_int_equal(v1, 9);
    assert_int_equal(v2, 21 + 100 + 1);
    tsr_txn_rollback(x);
    tsr_txn_stats_t st;
    tsr_txn_db_stats(e.db, &st);
    assert_int_equal(st.conflicts, 3);

    if (strcmp(mode, "local") == 0) {
        /* a key locked by a committer: the read answers CONFLICT, the
         * other reads of the call are decided */
        tsr_kv_table_t *t;
        assert_int_equal(tsr_kv_table_open(e.store, "ta", &t, NULL), TSR_OK);
        kv_txn_key_t kx = {t, tsr_hash_bytes("x", 1), "x", 1};
        bool reserved;
        assert_int_equal(tsr_kv_txn_lock(&kx, 0, &reserved, NULL), TSR_OK);
        assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
        tsr_txn_read_t rk[2] = {RD("tb", "y", &v2, 8), RD("ta", "x", &v1, 8)};
        tsr_txn_err_t ke = {0};
        assert_int_equal(tsr_txn_get_many(x, rk, 2, &ke), TSR_ERR_CONFLICT);
        assert_int_equal(ke.status, TSR_ERR_CONFLICT);
        assert_int_equal(rk[0].status, TSR_OK);
        assert_int_equal(rk[1].status, TSR_ERR_CONFLICT);
        tsr_txn_rollback(x);
        tsr_kv_txn_unlock(&kx);
        tsr_kv_table_close(t);
    }
    env_down(&e);
}

static void test_conflicts(void **state)
{
    (void)state;
    conflicts_on("local", NULL);
    conflicts_on("rma", "tcp");
    conflicts_on("call", "tcp");
}

/* ---- torn reads ------------------------------------------------------------------------- */

static void torn_on(const char *tls)
{
    env_t e;
    env_up(&e, "rma", tls);
    for (int i = 0; i < 6; i++) {
        char k[8];
        snprintf(k, sizeof(k), "t%d", i);
        unsigned char v[32];
        memset(v, 'a' + i, sizeof(v));
        put1(e.other, i % 2 ? "ta" : "tb", k, v, 10 + (size_t)i);
    }
    tsr_kv_table_t *ta, *tb;
    assert_int_equal(tsr_kv_table_open(e.store, "ta", &ta, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_open(e.store, "tb", &tb, NULL), TSR_OK);
    heal_t h = {owner_slot(ta, "t1", 2), owner_slot(tb, "t4", 2), tb->max_key, 0, false};
    assert_non_null(h.locked);
    assert_non_null(h.corrupt);
    unsigned char vb[6][32];
    char kb[6][8];
    tsr_txn_read_t rd[6];
    for (int i = 0; i < 6; i++) {
        snprintf(kb[i], sizeof(kb[i]), "t%d", i);
        rd[i] = RD(i % 2 ? "ta" : "tb", kb[i], vb[i], 32);
    }
    /* every descriptor fetched before the damage (no writer runs from
     * here on, so the slots stay where they are) */
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get_many(x, rd, 6, NULL), TSR_OK);
    tsr_txn_rollback(x);
    atomic_fetch_or(&h.locked->ver, KV_VER_LOCKED);
    h.saved = h.corrupt->data[tb->max_key];
    h.corrupt->data[tb->max_key] ^= 0x5a; /* the checksum no longer matches */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, heal_later, &h), 0);
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    memset(vb, 0, sizeof(vb));
    atomic_store(&h.started, true);
    assert_int_equal(tsr_txn_get_many(x, rd, 6, NULL), TSR_OK);
    pthread_join(th, NULL);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rd[i].status, TSR_OK);
        assert_int_equal(rd[i].vlen, 10 + (size_t)i);
        for (size_t j = 0; j < rd[i].vlen; j++)
            assert_int_equal(vb[i][j], 'a' + i);
    }
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK); /* read-only: still valid */
    uint64_t torn = readers_stats(e.db).torn_retries;
    print_message("torn retries %llu\n", (unsigned long long)torn);
    assert_true(torn >= 2);
    tsr_kv_table_close(ta);
    tsr_kv_table_close(tb);
    env_down(&e);
}

static void test_torn(void **state)
{
    (void)state;
    torn_on("tcp");
    torn_on(NULL);
}

/* ---- a batch that fails as a whole ----------------------------------------------------------- */

/* The table dropped on the owner (and its descriptors retired) after the
 * client opened its reader: every read of the batch fails, each element
 * says so (a bug had these come back TSR_OK with empty values), and the
 * single read agrees. */
static void test_table_gone(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "rma", "tcp");
    tsr_txn_t *w, *x;
    char key[16];
    assert_int_equal(tsr_txn_begin(e.other, &w, NULL), TSR_OK);
    for (int k = 1; k <= 8; k++)
        assert_int_equal(tsr_txn_put(w, "tb", key, key_of(k, key), "VALUE", 5, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(w, NULL), TSR_OK);
    char buf[4][64];
    size_t vl = 0;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get(x, "tb", key, key_of(1, key), buf[0], 64, &vl, NULL), TSR_OK);
    tsr_txn_rollback(x);
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_table_drop(e.store, "tb", &ke), TSR_OK);
    tsr_kv_server_retire(e.ksrv, "tb");

    char keys[4][16];
    tsr_txn_read_t rd[4];
    for (int i = 0; i < 4; i++) {
        size_t kl = key_of(2 + i, keys[i]);
        rd[i] =
            (tsr_txn_read_t){.table = "tb", .key = keys[i], .klen = kl, .buf = buf[i], .cap = 64};
    }
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    tsr_txn_err_t xe = {0};
    tsr_status_t rc = tsr_txn_get_many(x, rd, 4, &xe);
    print_message("get_many on a dropped table: %s (%s)\n", tsr_status_str(rc), xe.message);
    assert_int_not_equal(rc, TSR_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rd[i].status, rc);
    tsr_txn_err_t se = {0};
    assert_int_equal(tsr_txn_get(x, "tb", key, key_of(7, key), buf[0], 64, &vl, &se), rc);
    tsr_txn_rollback(x);
    env_down(&e);
}

/* ---- the cross-reader rounds ---------------------------------------------------------------- */

static tsr_status_t count_done(void *arg, size_t k, const unsigned char *val, uint32_t vlen,
                               uint64_t ver, uint64_t vmask, tsr_error_t *err)
{
    (void)k;
    (void)val;
    (void)vlen;
    (void)ver;
    (void)vmask;
    (void)err;
    (*(int *)arg)++;
    return TSR_OK;
}

static void test_read_many_args(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "rma", "tcp");
    tsr_transport_t *c2 = make(3, false, "tcp");
    tsr_peer_t *p2;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(
        tsr_transport_connect(c2, "127.0.0.1", tsr_transport_port(e.s), 20000, &p2, &err), TSR_OK);
    tsr_kv_remote_t *ra, *rb, *rc;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "ta", 0, 20000, &ra, NULL), TSR_OK);
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "tb", 0, 20000, &rb, NULL), TSR_OK);
    assert_int_equal(tsr_kv_remote_open(c2, p2, "tb", 0, 20000, &rc, NULL), TSR_OK);
    tsr_kv_pair_t keys[3] = {{"a", 1, NULL, 0}, {"b", 1, NULL, 0}, {"c", 1, NULL, 0}};
    uint32_t which[3] = {0, 1, 1};
    tsr_status_t res[3];
    int calls = 0;
    void *scratch = NULL;
    tsr_kv_remote_t *two[2] = {ra, rb};
    kv_many_req_t q = {two, 2, which, keys, 3, count_done, &calls, res, NULL};
    size_t nok = 9;
    assert_int_equal(tsr_kv_remote_read_many(&scratch, &q, &nok, &err), TSR_OK);
    assert_int_equal(calls, 3); /* all absent */
    assert_int_equal(nok, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i], TSR_ERR_NOT_FOUND);
    /* readers on two transports; a reader index out of range; no callback */
    tsr_kv_remote_t *mixed[2] = {ra, rc};
    q.readers = mixed;
    tsr_error_clear(&err);
    assert_int_equal(tsr_kv_remote_read_many(&scratch, &q, NULL, &err), TSR_ERR_INVALID_ARG);
    q.readers = two;
    which[2] = 2;
    assert_int_equal(tsr_kv_remote_read_many(&scratch, &q, NULL, NULL), TSR_ERR_INVALID_ARG);
    which[2] = 1;
    q.done = NULL;
    assert_int_equal(tsr_kv_remote_read_many(&scratch, &q, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_remote_scratch_free(&scratch);
    assert_null(scratch);
    tsr_kv_remote_close(ra);
    tsr_kv_remote_close(rb);
    tsr_kv_remote_close(rc);
    tsr_transport_destroy(c2);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_local), cmocka_unit_test(test_model_remote),
        cmocka_unit_test(test_model_rpc),
        cmocka_unit_test(test_edges),       cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_torn),        cmocka_unit_test(test_read_many_args),
        cmocka_unit_test(test_table_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
