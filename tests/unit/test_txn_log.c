/*
 * test_txn_log.c - the coordinator log of cluster transactions
 * (scheduler/txn_log.c): PREPARE/DONE records, group commit, torn tails,
 * compaction.
 *
 * Model: a list of transactions {txid, nparts, done flags, payload}; after
 * random PREPAREs and DONEs (of one part or of all), a reopened log lists
 * exactly the model's outstanding ones with their payloads and done parts,
 * and hands out a txid above every one used. The last record cut at every
 * byte offset is ignored (noted as torn), the file cut back to whole
 * records so a record appended after it is found again; a flipped byte
 * (checksum) ends the load there. A small max_bytes compacts the file
 * while keeping every outstanding PREPARE (and its done parts) across
 * reopens, also while one outstanding PREPARE is larger than half of
 * max_bytes (the file stays bounded). Threads appending in rounds
 * between barriers share exactly one fdatasync per round; free-running
 * threads lose nothing and need fewer syncs than records. The syncing
 * thread makes appends durable without a caller's sync. A file with a bad
 * magic is refused; a missing directory fails. Fences (the largest
 * fencing token per lock name) survive reopens, compactions and a torn
 * last record, against a model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "txn_log.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- a temp dir per test ---- */

static char dir[256];
static char path[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tsr_txn_log_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, TSR_TXN_LOG_FILE);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[320];
    snprintf(p, sizeof(p), "%s/%s.tmp", dir, TSR_TXN_LOG_FILE);
    unlink(p);
    unlink(path);
    rmdir(dir);
    return 0;
}

static int notes;
static void count_note(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
    notes++;
}

static tsr_txn_log_t *open_log(uint64_t max_bytes, bool syncer)
{
    tsr_txn_log_params_t p = {
        .dir = dir, .max_bytes = max_bytes, .syncer = syncer, .note = count_note};
    tsr_txn_log_t *log = NULL;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = tsr_txn_log_open(NULL, &p, &log, &e);
    if (rc != TSR_OK)
        fail_msg("open: %s", e.message);
    return log;
}

static off_t file_size(void)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* ---- the model ---- */

#define MAXT 400
#define MAXP 6

typedef struct mtx {
    uint64_t txid;
    uint32_t nparts;
    uint8_t done[MAXP];
    bool all;
    uint8_t payload[300];
    size_t len;
} mtx_t;

typedef struct model {
    mtx_t t[MAXT];
    size_t n;
} model_t;

static bool outstanding(const mtx_t *m)
{
    if (m->all)
        return false;
    for (uint32_t k = 0; k < m->nparts; k++)
        if (!m->done[k])
            return true;
    return false;
}

static size_t count_outstanding(const model_t *md)
{
    size_t n = 0;
    for (size_t i = 0; i < md->n; i++)
        n += outstanding(&md->t[i]);
    return n;
}

/* The log lists exactly the model's outstanding transactions. */
static void check(tsr_txn_log_t *log, const model_t *md)
{
    size_t n = tsr_txn_log_pending_count(log);
    assert_int_equal(n, count_outstanding(md));
    for (size_t i = 0; i < n; i++) {
        tsr_txn_log_pending_t pd;
        assert_true(tsr_txn_log_pending_get(log, i, &pd));
        const mtx_t *m = NULL;
        for (size_t j = 0; j < md->n && !m; j++)
            if (md->t[j].txid == pd.txid)
                m = &md->t[j];
        assert_non_null(m);
        assert_true(outstanding(m));
        assert_int_equal(pd.nparts, m->nparts);
        assert_memory_equal(pd.done, m->done, m->nparts);
        assert_int_equal(pd.len, m->len);
        if (m->len)
            assert_memory_equal(pd.payload, m->payload, m->len);
    }
    for (size_t j = 0; j < md->n; j++)
        assert_true(tsr_txn_log_new_txid(log) > md->t[j].txid);
}

static void do_prepare(tsr_txn_log_t *log, model_t *md, uint64_t *lsn)
{
    assert_true(md->n < MAXT);
    mtx_t *m = &md->t[md->n++];
    memset(m, 0, sizeof(*m));
    m->txid = tsr_txn_log_new_txid(log);
    m->nparts = 1 + (uint32_t)(rnd() % MAXP);
    size_t sizes[] = {0, 1, 7, 31, 299};
    m->len = rnd() % 3 ? (size_t)(rnd() % sizeof(m->payload)) : sizes[rnd() % 5];
    for (size_t i = 0; i < m->len; i++)
        m->payload[i] = (uint8_t)rnd();
    tsr_error_t e;
    tsr_error_clear(&e);
    assert_int_equal(tsr_txn_log_prepare(log, m->txid, m->nparts, m->payload, m->len, lsn, &e),
                     TSR_OK);
}

/* A DONE of a random outstanding transaction (one part or all). */
static bool do_done(tsr_txn_log_t *log, model_t *md, uint64_t *lsn)
{
    size_t cand[MAXT], nc = 0;
    for (size_t i = 0; i < md->n; i++)
        if (outstanding(&md->t[i]))
            cand[nc++] = i;
    if (!nc)
        return false;
    mtx_t *m = &md->t[cand[rnd() % nc]];
    uint32_t part = rnd() % 4 == 0 ? TSR_TXN_LOG_ALL : (uint32_t)(rnd() % m->nparts);
    if (part == TSR_TXN_LOG_ALL)
        m->all = true;
    else
        m->done[part] = 1;
    assert_int_equal(tsr_txn_log_done(log, m->txid, part, lsn, NULL), TSR_OK);
    return true;
}

static void random_ops(tsr_txn_log_t *log, model_t *md, int n)
{
    uint64_t lsn = 0;
    for (int i = 0; i < n; i++) {
        if (rnd() % 5 < 3 || !do_done(log, md, &lsn))
            do_prepare(log, md, &lsn);
        if (rnd() % 7 == 0)
            assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    }
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
}

static void test_round_trip(void **state)
{
    (void)state;
    static model_t md;
    memset(&md, 0, sizeof(md));
    tsr_txn_log_t *log = open_log(0, false);
    check(log, &md); /* new: nothing */
    for (int round = 0; round < 4; round++) {
        random_ops(log, &md, 60);
        check(log, &md);
        tsr_txn_log_close(log);
        log = open_log(0, false);
        check(log, &md);
    }
    tsr_txn_log_stats_t st;
    tsr_txn_log_get_stats(log, &st);
    assert_int_equal(st.torn_bytes, 0);
    assert_int_equal((off_t)st.file_bytes, file_size());
    tsr_txn_log_close(log);
}

static void test_accounting(void **state)
{
    (void)state;
    tsr_txn_log_t *log = open_log(0, false);
    uint64_t lsn = 0;
    assert_int_equal(tsr_txn_log_prepare(log, 10, 3, "abc", 3, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_prepare(log, 11, 1, "", 0, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_pending_count(log), 2);
    assert_int_equal(tsr_txn_log_done(log, 10, 0, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_done(log, 10, 2, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_done(log, 10, 2, &lsn, NULL), TSR_OK); /* twice: once */
    assert_int_equal(tsr_txn_log_done(log, 99, 0, &lsn, NULL), TSR_OK); /* unknown: ignored */
    assert_int_equal(tsr_txn_log_done(log, 10, 7, &lsn, NULL), TSR_OK); /* out of range */
    assert_int_equal(tsr_txn_log_pending_count(log), 2);
    assert_int_equal(tsr_txn_log_done(log, 11, TSR_TXN_LOG_ALL, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_pending_count(log), 1);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    tsr_txn_log_close(log);
    log = open_log(0, false);
    assert_int_equal(tsr_txn_log_pending_count(log), 1);
    tsr_txn_log_pending_t pd;
    assert_true(tsr_txn_log_pending_get(log, 0, &pd));
    assert_int_equal(pd.txid, 10);
    uint8_t want[3] = {1, 0, 1};
    assert_memory_equal(pd.done, want, 3);
    assert_int_equal(pd.len, 3);
    assert_memory_equal(pd.payload, "abc", 3);
    assert_false(tsr_txn_log_pending_get(log, 1, &pd));
    assert_true(tsr_txn_log_new_txid(log) > 11);
    assert_int_equal(tsr_txn_log_done(log, 10, 1, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_pending_count(log), 0);
    /* a PREPARE of no parts waits for nothing */
    assert_int_equal(tsr_txn_log_prepare(log, 12, 0, "x", 1, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_pending_count(log), 0);
    tsr_txn_log_close(log); /* syncs what was appended */
    log = open_log(0, false);
    assert_int_equal(tsr_txn_log_pending_count(log), 0);
    tsr_txn_log_close(log);
}

static void read_file(uint8_t **data, size_t *len)
{
    *len = (size_t)file_size();
    *data = malloc(*len ? *len : 1);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, *data, *len), (ssize_t)*len);
    close(fd);
}

static void write_file(const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void test_torn_tail(void **state)
{
    (void)state;
    static model_t md, before;
    memset(&md, 0, sizeof(md));
    tsr_txn_log_t *log = open_log(0, false);
    random_ops(log, &md, 20);
    tsr_txn_log_close(log);
    size_t base = (size_t)file_size();
    before = md;
    /* the last record: a PREPARE with a payload of 101 bytes */
    log = open_log(0, false);
    uint64_t lsn = 0;
    mtx_t *m = &md.t[md.n++];
    memset(m, 0, sizeof(*m));
    m->txid = tsr_txn_log_new_txid(log);
    m->nparts = 2;
    m->len = 101;
    memset(m->payload, 0x5a, m->len);
    assert_int_equal(tsr_txn_log_prepare(log, m->txid, 2, m->payload, m->len, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    tsr_txn_log_close(log);
    uint8_t *full = NULL;
    size_t flen = 0;
    read_file(&full, &flen);
    assert_int_equal(flen, base + 12 + 13 + 101);
    for (size_t cut = 0; cut < flen - base; cut++) {
        write_file(full, base + cut);
        notes = 0;
        log = open_log(0, false);
        check(log, &before);
        tsr_txn_log_stats_t st;
        tsr_txn_log_get_stats(log, &st);
        assert_int_equal(st.torn_bytes, cut);
        assert_int_equal(notes, cut ? 1 : 0);
        tsr_txn_log_close(log);
        assert_int_equal((size_t)file_size(), base); /* cut back to whole records */
    }
    /* whole again: found; then a record appended after a cut one is found */
    write_file(full, flen);
    log = open_log(0, false);
    check(log, &md);
    tsr_txn_log_close(log);
    write_file(full, flen - 5);
    static model_t after;
    after = before;
    log = open_log(0, false);
    do_prepare(log, &after, &lsn);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    tsr_txn_log_close(log);
    log = open_log(0, false);
    check(log, &after);
    tsr_txn_log_close(log);

    /* a flipped byte in the last record: it is ignored */
    write_file(full, flen);
    uint8_t *bad = malloc(flen);
    for (int i = 0; i < 20; i++) {
        memcpy(bad, full, flen);
        size_t at = base + (size_t)(rnd() % (flen - base));
        bad[at] ^= (uint8_t)(1u << (rnd() % 8));
        write_file(bad, flen);
        log = open_log(0, false);
        check(log, &before);
        tsr_txn_log_close(log);
    }
    /* in the first record: everything after it goes (a damaged file is
     * read up to its last good record), noted */
    memcpy(bad, full, flen);
    bad[8 + 12] ^= 0x40; /* the first record's type byte */
    write_file(bad, flen);
    notes = 0;
    log = open_log(0, false);
    assert_int_equal(tsr_txn_log_pending_count(log), 0);
    assert_int_equal(notes, 1);
    tsr_txn_log_close(log);
    assert_int_equal(file_size(), 8);
    free(bad);
    free(full);
}

static void test_bad_files(void **state)
{
    (void)state;
    /* a prefix of the magic (a crash while creating it) is an empty log */
    write_file((const uint8_t *)"TSRT", 4);
    tsr_txn_log_t *log = open_log(0, false);
    assert_int_equal(tsr_txn_log_pending_count(log), 0);
    tsr_txn_log_close(log);
    assert_int_equal(file_size(), 8);
    /* not a txn log */
    write_file((const uint8_t *)"NOTALOGATALL", 12);
    tsr_txn_log_params_t p = {.dir = dir};
    tsr_error_t e;
    tsr_error_clear(&e);
    assert_int_equal(tsr_txn_log_open(NULL, &p, &log, &e), TSR_ERR_BAD_INPUT);
    assert_non_null(strstr(e.message, "not a txn log"));
    write_file((const uint8_t *)"XS", 2);
    assert_int_equal(tsr_txn_log_open(NULL, &p, &log, &e), TSR_ERR_BAD_INPUT);
    unlink(path);
    /* no such directory */
    tsr_txn_log_params_t q = {.dir = "/nonexistent-dir-of-tsr/x"};
    assert_int_equal(tsr_txn_log_open(NULL, &q, &log, &e), TSR_ERR_IO);
    tsr_txn_log_params_t r = {.dir = NULL};
    assert_int_equal(tsr_txn_log_open(NULL, &r, &log, &e), TSR_ERR_INVALID_ARG);
}

static void test_compaction(void **state)
{
    (void)state;
    static model_t md;
    memset(&md, 0, sizeof(md));
    tsr_txn_log_t *log = open_log(16384, false);
    uint64_t lsn = 0;
    /* two long-lived outstanding transactions, one with a part done */
    do_prepare(log, &md, &lsn);
    do_prepare(log, &md, &lsn);
    md.t[1].done[0] = 1;
    if (md.t[1].nparts == 1)
        md.t[1].done[0] = 0; /* would finish it */
    else
        assert_int_equal(tsr_txn_log_done(log, md.t[1].txid, 0, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    size_t keep = md.n;
    /* then many short ones: each prepared, synced, done */
    for (int i = 0; i < 300; i++) {
        if (md.n >= MAXT - 1) { /* reuse the model's slots of finished ones */
            md.n = keep;
        }
        do_prepare(log, &md, &lsn);
        if (rnd() % 2)
            assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        md.t[md.n - 1].all = true;
        assert_int_equal(tsr_txn_log_done(log, md.t[md.n - 1].txid, TSR_TXN_LOG_ALL, &lsn, NULL),
                         TSR_OK);
        assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        assert_true(file_size() <= 16384 + 2 * (12 + 13 + 300));
        if (i % 50 == 49) { /* a crash now finds the outstanding ones */
            tsr_txn_log_t *again = open_log(16384, false);
            check(again, &md);
            tsr_txn_log_close(again);
        }
    }
    tsr_txn_log_stats_t st;
    tsr_txn_log_get_stats(log, &st);
    assert_true(st.compactions >= 3);
    assert_int_equal(st.outstanding, 2);
    tsr_txn_log_close(log);
    log = open_log(16384, false);
    check(log, &md);
    tsr_txn_log_close(log);
}

/* An outstanding PREPARE larger than half of max_bytes (a commit waiting
 * for a partition that is down) does not stop compaction for good: the
 * file stays within a few times the outstanding records while short
 * commits come and go, and a reopen still finds the large one. */
static void test_compaction_large_outstanding(void **state)
{
    (void)state;
    enum { MAX = 4096, BIG = 3000 };
    static uint8_t big[BIG];
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)rnd();
    tsr_txn_log_t *log = open_log(MAX, false);
    uint64_t lsn = 0;
    uint64_t big_txid = tsr_txn_log_new_txid(log);
    assert_int_equal(tsr_txn_log_prepare(log, big_txid, 2, big, BIG, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    char payload[200];
    memset(payload, 'p', sizeof(payload));
    for (int i = 0; i < 400; i++) {
        uint64_t txid = tsr_txn_log_new_txid(log);
        assert_int_equal(tsr_txn_log_prepare(log, txid, 2, payload, sizeof(payload), &lsn, NULL),
                         TSR_OK);
        assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        assert_int_equal(tsr_txn_log_done(log, txid, TSR_TXN_LOG_ALL, &lsn, NULL), TSR_OK);
        assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        /* 400 commits of ~225 bytes each would make ~90 KB without it */
        assert_true(file_size() <= 4 * (8 + 12 + 13 + BIG) + MAX);
    }
    tsr_txn_log_stats_t st;
    tsr_txn_log_get_stats(log, &st);
    assert_true(st.compactions >= 10);
    assert_int_equal(st.outstanding, 1);
    tsr_txn_log_close(log);
    log = open_log(MAX, false);
    assert_int_equal(tsr_txn_log_pending_count(log), 1);
    tsr_txn_log_pending_t pd;
    assert_true(tsr_txn_log_pending_get(log, 0, &pd));
    assert_int_equal(pd.txid, big_txid);
    assert_int_equal(pd.len, BIG);
    assert_memory_equal(pd.payload, big, BIG);
    tsr_txn_log_close(log);
}

/* ---- threads ---- */

#define NTHREADS 8
#define ROUNDS 25

typedef struct shared {
    tsr_txn_log_t *log;
    pthread_barrier_t bar;
    int id;
    int free_running; /* appends per thread without barriers */
} shared_t;

typedef struct targ {
    shared_t *sh;
    int id;
} targ_t;

static void *appender(void *arg)
{
    targ_t *a = arg;
    shared_t *sh = a->sh;
    char payload[32];
    for (int r = 0; r < ROUNDS && !sh->free_running; r++) {
        uint64_t lsn = 0;
        snprintf(payload, sizeof(payload), "t%d-r%d", a->id, r);
        uint64_t txid = (uint64_t)(r * NTHREADS + a->id + 1);
        if (tsr_txn_log_prepare(sh->log, txid, 1, payload, strlen(payload), &lsn, NULL) != TSR_OK)
            return (void *)1;
        pthread_barrier_wait(&sh->bar); /* every record of the round is appended */
        if (tsr_txn_log_sync(sh->log, lsn, NULL) != TSR_OK)
            return (void *)1;
        pthread_barrier_wait(&sh->bar); /* every sync of the round returned */
    }
    for (int i = 0; i < sh->free_running; i++) {
        uint64_t lsn = 0;
        uint64_t txid = 100000 + (uint64_t)a->id * 10000 + (uint64_t)i;
        if (tsr_txn_log_prepare(sh->log, txid, 2, "p", 1, &lsn, NULL) != TSR_OK ||
            tsr_txn_log_sync(sh->log, lsn, NULL) != TSR_OK ||
            tsr_txn_log_done(sh->log, txid, 0, &lsn, NULL) != TSR_OK ||
            tsr_txn_log_sync(sh->log, lsn, NULL) != TSR_OK)
            return (void *)1;
    }
    return NULL;
}

static void run_threads(shared_t *sh)
{
    pthread_t th[NTHREADS];
    targ_t args[NTHREADS];
    pthread_barrier_init(&sh->bar, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (targ_t){sh, i};
        assert_int_equal(pthread_create(&th[i], NULL, appender, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    pthread_barrier_destroy(&sh->bar);
}

/* ---- fences: the largest token per lock name ---- */

#define MAXF 24

typedef struct mfence {
    char name[260];
    uint64_t token;
} mfence_t;

/* The log's fences are exactly the model's (order aside). */
static void check_fences(tsr_txn_log_t *log, const mfence_t *mf, size_t n)
{
    assert_int_equal(tsr_txn_log_fence_count(log), n);
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL;
        uint64_t token = 0;
        assert_true(tsr_txn_log_fence_get(log, i, &name, &token));
        size_t j = 0;
        while (j < n && strcmp(mf[j].name, name) != 0)
            j++;
        assert_true(j < n);
        assert_int_equal(token, mf[j].token);
    }
    const char *name = NULL;
    uint64_t token = 0;
    assert_false(tsr_txn_log_fence_get(log, n, &name, &token));
}

/* Random tokens for MAXF names (one of 255 bytes) among PREPAREs and
 * DONEs, with a small max_bytes: after reopens and compactions the log
 * keeps each name's largest token and every outstanding PREPARE. A
 * smaller or equal token appends nothing and answers the lsn of the
 * record that holds the larger one; that lsn is durable after a sync. */
static void test_fences(void **state)
{
    (void)state;
    static model_t md;
    memset(&md, 0, sizeof(md));
    static mfence_t mf[MAXF];
    memset(mf, 0, sizeof(mf));
    for (size_t i = 0; i < MAXF; i++)
        snprintf(mf[i].name, sizeof(mf[i].name), "lock-%zu", i);
    memset(mf[MAXF - 1].name, 'z', 255);
    mf[MAXF - 1].name[255] = '\0';
    size_t nf = 0;
    tsr_txn_log_t *log = open_log(8192, false);
    uint64_t lsn = 0, compactions = 0;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 150; i++) {
            size_t f = (size_t)(rnd() % MAXF);
            uint64_t token = 1 + rnd() % 1000;
            tsr_txn_log_stats_t before, after;
            tsr_txn_log_get_stats(log, &before);
            uint64_t l = 0;
            tsr_error_t e;
            tsr_error_clear(&e);
            assert_int_equal(tsr_txn_log_fence(log, mf[f].name, token, &l, &e), TSR_OK);
            tsr_txn_log_get_stats(log, &after);
            bool known = false;
            for (size_t k = 0; k < nf; k++)
                known |= strcmp(mf[k].name, mf[f].name) == 0;
            if (!known) { /* the model lists names in first-use order */
                mfence_t tmp = mf[nf];
                mf[nf] = mf[f];
                mf[f] = tmp;
                f = nf++;
                mf[f].token = 0;
            }
            if (token > mf[f].token) {
                mf[f].token = token;
                assert_int_equal(after.records, before.records + 1);
            } else {
                assert_int_equal(after.records, before.records); /* nothing appended */
            }
            if (l > lsn)
                lsn = l;
            if (rnd() % 3 == 0)
                do_prepare(log, &md, &lsn);
            if (rnd() % 3 == 0) {
                mtx_t *m = md.n ? &md.t[md.n - 1] : NULL;
                if (m && outstanding(m)) {
                    m->all = true;
                    assert_int_equal(tsr_txn_log_done(log, m->txid, TSR_TXN_LOG_ALL, &lsn, NULL),
                                     TSR_OK);
                }
            }
            if (md.n >= MAXT - 4)
                break;
            if (rnd() % 5 == 0)
                assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        }
        assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        check_fences(log, mf, nf);
        tsr_txn_log_stats_t st;
        tsr_txn_log_get_stats(log, &st);
        compactions += st.compactions;
        tsr_txn_log_close(log);
        log = open_log(8192, false);
        lsn = 0; /* lsns count from the open */
        check_fences(log, mf, nf);
        check(log, &md);
    }
    assert_true(compactions > 0); /* the fences went through rewrites */
    /* a smaller token of a loaded name: nothing appended, lsn 0 (durable) */
    uint64_t l = 99;
    assert_int_equal(tsr_txn_log_fence(log, mf[0].name, 1, &l, NULL), TSR_OK);
    assert_int_equal(l, 0);
    /* bad names */
    char big[300];
    memset(big, 'x', 299);
    big[299] = '\0';
    assert_int_equal(tsr_txn_log_fence(log, "", 5, &l, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_txn_log_fence(log, big, 5, &l, NULL), TSR_ERR_INVALID_ARG);
    tsr_txn_log_close(log);
}

static void magic_is(const char *want)
{
    uint8_t *data = NULL;
    size_t len = 0;
    read_file(&data, &len);
    assert_true(len >= 8);
    assert_memory_equal(data, want, 8);
    free(data);
}

/* The magic says whether a log holds FENCE records: "TSRTXLG1" until the
 * first one is written (an older build, which knows no FENCE, would cut
 * the log there as a torn tail and lose the PREPAREs after it), then
 * "TSRTXLG2", across reopens and compactions. */
static void test_fence_magic(void **state)
{
    (void)state;
    static model_t md;
    memset(&md, 0, sizeof(md));
    tsr_txn_log_t *log = open_log(4096, false);
    random_ops(log, &md, 10);
    magic_is("TSRTXLG1");
    uint64_t lsn = 0;
    assert_int_equal(tsr_txn_log_fence(log, "m", 3, &lsn, NULL), TSR_OK);
    do_prepare(log, &md, &lsn);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    magic_is("TSRTXLG2");
    tsr_txn_log_close(log);
    log = open_log(4096, false);
    lsn = 0; /* lsns count from the open */
    check(log, &md);
    for (int i = 0; i < 60; i++) { /* short commits: compactions keep the FENCE, and the magic */
        do_prepare(log, &md, &lsn);
        md.t[md.n - 1].all = true;
        assert_int_equal(tsr_txn_log_done(log, md.t[md.n - 1].txid, TSR_TXN_LOG_ALL, &lsn, NULL),
                         TSR_OK);
        assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    }
    tsr_txn_log_stats_t st;
    tsr_txn_log_get_stats(log, &st);
    assert_true(st.compactions > 0);
    magic_is("TSRTXLG2");
    tsr_txn_log_close(log);
    log = open_log(4096, false);
    check(log, &md);
    mfence_t want = {.name = "m", .token = 3};
    check_fences(log, &want, 1);
    tsr_txn_log_close(log);
}

/* A torn FENCE record (the file cut inside the last one) is ignored: the
 * name keeps its token from before. */
static void test_fence_torn(void **state)
{
    (void)state;
    tsr_txn_log_t *log = open_log(0, false);
    uint64_t lsn = 0;
    assert_int_equal(tsr_txn_log_fence(log, "a", 10, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    off_t whole = file_size();
    assert_int_equal(tsr_txn_log_fence(log, "a", 20, &lsn, NULL), TSR_OK);
    assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
    off_t full = file_size();
    tsr_txn_log_close(log);
    for (off_t cut = whole + 1; cut < full; cut += 3) {
        assert_int_equal(truncate(path, cut), 0);
        notes = 0;
        log = open_log(0, false);
        mfence_t want = {.name = "a", .token = 10};
        check_fences(log, &want, 1);
        assert_int_equal(notes, 1); /* the torn tail is noted */
        /* the record appended now is found again */
        assert_int_equal(tsr_txn_log_fence(log, "a", 20, &lsn, NULL), TSR_OK);
        assert_int_equal(tsr_txn_log_sync(log, lsn, NULL), TSR_OK);
        tsr_txn_log_close(log);
        log = open_log(0, false);
        want.token = 20;
        check_fences(log, &want, 1);
        tsr_txn_log_close(log);
    }
}

static void test_group_commit(void **state)
{
    (void)state;
    shared_t sh = {.log = open_log(0, false)};
    run_threads(&sh);
    tsr_txn_log_stats_t st;
    tsr_txn_log_get_stats(sh.log, &st);
    /* each round: one leader wrote all NTHREADS records with one fdatasync */
    assert_int_equal(st.syncs, ROUNDS);
    assert_int_equal(st.records, ROUNDS * NTHREADS);
    assert_int_equal(st.outstanding, ROUNDS * NTHREADS);
    /* free-running: nothing lost, syncs shared where they overlap */
    sh.free_running = 60;
    run_threads(&sh);
    tsr_txn_log_get_stats(sh.log, &st);
    uint64_t free_records = 2ull * NTHREADS * 60;
    assert_int_equal(st.records, ROUNDS * NTHREADS + free_records);
    assert_true(st.syncs - ROUNDS <= free_records);
    printf("free-running: %llu records, %llu fdatasyncs\n", (unsigned long long)free_records,
           (unsigned long long)(st.syncs - ROUNDS));
    tsr_txn_log_close(sh.log);
    tsr_txn_log_t *log = open_log(0, false);
    /* the round records, and the free ones with part 0 of 2 done */
    assert_int_equal(tsr_txn_log_pending_count(log), ROUNDS * NTHREADS + NTHREADS * 60);
    for (size_t i = 0; i < tsr_txn_log_pending_count(log); i++) {
        tsr_txn_log_pending_t pd;
        assert_true(tsr_txn_log_pending_get(log, i, &pd));
        if (pd.txid >= 100000) {
            assert_int_equal(pd.nparts, 2);
            assert_int_equal(pd.done[0], 1);
            assert_int_equal(pd.done[1], 0);
        } else {
            char want[32];
            int id = (int)((pd.txid - 1) % NTHREADS), r = (int)((pd.txid - 1) / NTHREADS);
            snprintf(want, sizeof(want), "t%d-r%d", id, r);
            assert_int_equal(pd.len, strlen(want));
            assert_memory_equal(pd.payload, want, pd.len);
        }
    }
    tsr_txn_log_close(log);
}

static void test_syncer(void **state)
{
    (void)state;
    tsr_txn_log_t *log = open_log(0, true);
    uint64_t lsn = 0, d = 0;
    for (int i = 0; i < 50; i++)
        assert_int_equal(tsr_txn_log_prepare(log, (uint64_t)i + 1, 1, "s", 1, &lsn, NULL), TSR_OK);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        assert_int_equal(tsr_txn_log_durable(log, &d, NULL), TSR_OK);
        if (d >= lsn)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 20)
            fail_msg("the syncing thread made nothing durable in 20 s");
        usleep(1000);
    }
    tsr_txn_log_stats_t st;
    tsr_txn_log_get_stats(log, &st);
    assert_true(st.syncs >= 1 && st.syncs <= 50);
    tsr_txn_log_close(log);
    log = open_log(0, false);
    assert_int_equal(tsr_txn_log_pending_count(log), 50);
    tsr_txn_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_large_outstanding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fence_torn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fence_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syncer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
