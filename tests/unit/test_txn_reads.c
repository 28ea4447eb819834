/*
 * test_txn_reads.c - how a remote db reads (include/tessera/txn.h,
 * engine/txn/remote.c) over the real transport, one process (the owner and
 * client of txn_many_env.h):
 *  - the choice of tsr_txn_db_set_reads: by call over TCP only (a get_many
 *    of 5 new keys is ONE message back), one-sided when forced or over
 *    UCX's default set; bad modes and non-remote dbs refused;
 *  - READ_SNAP: a transaction's first get_many by call comes back as one
 *    snapshot, so a read-only commit needs no call and cannot conflict; a
 *    later first read, a write or a single first get commit by call, and
 *    are validated there; an owner that predates READ_SNAP (a stand-in
 *    handler answering it "unknown request") is read by READ_MANY from then
 *    on, with the same results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kv_internal.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h"
#include "txn_internal.h"
#include "txn_many_env.h"

/* The choice of tsr_txn_db_set_reads: by call over TCP only (a get_many of
 * 4 new keys is ONE message back), one-sided when forced or over UCX's
 * default set; bad modes and non-remote dbs refused. */
static void test_read_choice(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "call", "tcp");
    for (int k = 0; k < 4; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", k);
        put1(e.other, k % 2 ? "ta" : "tb", key, "v", 1);
    }
    char keys[5][8];
    unsigned char buf[5][8];
    tsr_txn_read_t rd[5];
    for (int k = 0; k < 5; k++) { /* k4 is absent */
        snprintf(keys[k], sizeof(keys[k]), "k%d", k);
        rd[k] = RD(k % 2 ? "ta" : "tb", keys[k], buf[k], 8);
    }
    tsr_transport_stats_t before, after;
    tsr_transport_get_stats(e.c, &before);
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get_many(x, rd, 5, NULL), TSR_OK);
    tsr_transport_get_stats(e.c, &after);
    assert_int_equal(after.rx_msgs - before.rx_msgs, 1); /* one READ_MANY answer */
    for (int k = 0; k < 5; k++) {
        assert_int_equal(rd[k].status, k < 4 ? TSR_OK : TSR_ERR_NOT_FOUND);
        if (k < 4)
            assert_int_equal(rd[k].vlen, 1);
    }
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
    tsr_txn_stats_t st;
    tsr_txn_db_stats(e.db, &st);
    assert_int_equal(st.reads_rpc, 5);
    assert_int_equal(st.reads_rma, 0);
    /* forced one-sided: the reads count as rma and, once the readers are
     * open (a descriptor call per table), bring no message to this process */
    assert_int_equal(tsr_txn_db_set_reads(e.db, TSR_TXN_READS_ONE_SIDED, NULL), TSR_OK);
    for (int round = 0; round < 2; round++) {
        tsr_transport_get_stats(e.c, &before);
        assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
        assert_int_equal(tsr_txn_get_many(x, rd, 5, NULL), TSR_OK);
        tsr_txn_rollback(x);
        tsr_transport_get_stats(e.c, &after);
    }
    tsr_txn_db_stats(e.db, &st);
    assert_int_equal(st.reads_rma, 10);
    assert_int_equal(after.rx_msgs - before.rx_msgs, 0);
    /* back to the default choice: by call again */
    assert_int_equal(tsr_txn_db_set_reads(e.db, TSR_TXN_READS_AUTO, NULL), TSR_OK);
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get_many(x, rd, 5, NULL), TSR_OK);
    tsr_txn_rollback(x);
    tsr_txn_db_stats(e.db, &st);
    assert_int_equal(st.reads_rpc, 10);
    assert_int_equal(st.reads_rma, 10);
    tsr_txn_err_t xe = {0};
    assert_int_equal(tsr_txn_db_set_reads(e.db, (tsr_txn_reads_t)7, &xe), TSR_ERR_INVALID_ARG);
    memset(&xe, 0, sizeof(xe));
    assert_int_equal(tsr_txn_db_set_reads(e.other, TSR_TXN_READS_CALL, &xe), TSR_ERR_UNSUPPORTED);
    assert_int_equal(tsr_txn_db_set_reads(NULL, TSR_TXN_READS_CALL, NULL), TSR_ERR_INVALID_ARG);
    env_down(&e);
    /* UCX's default set may have shared memory: one-sided by default */
    env_up(&e, "call", NULL);
    put1(e.other, "ta", "k1", "v", 1);
    put1(e.other, "tb", "k2", "v", 1);
    tsr_txn_read_t two[2] = {RD("ta", "k1", buf[0], 8), RD("tb", "k2", buf[1], 8)};
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get_many(x, two, 2, NULL), TSR_OK);
    tsr_txn_rollback(x);
    tsr_txn_db_stats(e.db, &st);
    assert_int_equal(st.reads_rma, 2);
    assert_int_equal(st.reads_rpc, 0);
    env_down(&e);
}

/* Messages this client has received so far (replies: one per call). */
static uint64_t rx_of(tsr_transport_t *t)
{
    tsr_transport_stats_t st;
    tsr_transport_get_stats(t, &st);
    return st.rx_msgs;
}

static uint64_t snapshots_of(tsr_txn_db_t *db)
{
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    return st.commits_snapshot;
}

/* Begins a transaction on db whose first reads are k0 (ta) and k1 (tb) in
 * one get_many, both found. */
static tsr_txn_t *begin_read_two(tsr_txn_db_t *db, unsigned char buf[][8])
{
    tsr_txn_read_t two[2] = {RD("ta", "k0", buf[0], 8), RD("tb", "k1", buf[1], 8)};
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get_many(x, two, 2, NULL), TSR_OK);
    assert_int_equal(two[0].status, TSR_OK);
    assert_int_equal(two[1].status, TSR_OK);
    return x;
}

/* Commits x expecting want; returns how many messages the client received
 * meanwhile (a commit by call: one). */
static uint64_t commit_msgs(tsr_transport_t *c, tsr_txn_t *x, tsr_status_t want)
{
    uint64_t rx = rx_of(c);
    assert_int_equal(tsr_txn_commit(x, NULL), want);
    return rx_of(c) - rx;
}

/* Reads by call (TCP): a transaction's first get_many comes back as one
 * snapshot (READ_SNAP), so a commit with no writes and no later first read
 * needs no call and cannot conflict; anything else commits by call and is
 * validated there. */
static void test_snapshot_commit(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "call", "tcp");
    put1(e.other, "ta", "k0", "a", 1);
    put1(e.other, "tb", "k1", "b", 1);
    unsigned char buf[3][8];
    size_t vl;
    tsr_txn_t *x;

    /* read-only, one snapshot: no commit call, even with a write after it */
    for (int round = 0; round < 2; round++) {
        x = begin_read_two(e.db, buf);
        /* a key read again: from the read set, still the snapshot */
        assert_int_equal(tsr_txn_get(x, "ta", "k0", 2, buf[2], 8, &vl, NULL), TSR_OK);
        if (round == 1) /* serialized before this write: still commits */
            put1(e.other, "tb", "k1", "B", 1);
        assert_int_equal(commit_msgs(e.c, x, TSR_OK), 0);
        assert_int_equal(snapshots_of(e.db), (uint64_t)round + 1);
    }

    /* a later first read ends the snapshot: the commit validates by call,
     * and a key of the snapshot changed since is a conflict */
    x = begin_read_two(e.db, buf);
    put1(e.other, "tb", "k1", "c", 1);
    assert_int_equal(tsr_txn_get(x, "ta", "absent", 6, buf[2], 8, &vl, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(commit_msgs(e.c, x, TSR_ERR_CONFLICT), 1);
    assert_int_equal(snapshots_of(e.db), 2);

    /* a snapshot and then a write: committed by call, validated there */
    x = begin_read_two(e.db, buf);
    assert_int_equal(tsr_txn_put(x, "ta", "k0", 2, "x", 1, NULL, NULL), TSR_OK);
    put1(e.other, "tb", "k1", "d", 1);
    assert_int_equal(commit_msgs(e.c, x, TSR_ERR_CONFLICT), 1);
    x = begin_read_two(e.db, buf);
    assert_int_equal(tsr_txn_put(x, "ta", "k0", 2, "y", 1, NULL, NULL), TSR_OK);
    assert_int_equal(commit_msgs(e.c, x, TSR_OK), 1);
    assert_int_equal(snapshots_of(e.db), 2);

    /* a single first read is no snapshot call: its commit goes by call */
    assert_int_equal(tsr_txn_begin(e.db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_get(x, "ta", "k0", 2, buf[0], 8, &vl, NULL), TSR_OK);
    assert_int_equal(buf[0][0], 'y');
    assert_int_equal(commit_msgs(e.c, x, TSR_OK), 1);
    assert_int_equal(snapshots_of(e.db), 2);
    env_down(&e);
}

/* ---- an owner older than READ_SNAP ---------------------------------------------- */

static tsr_transport_t *g_old_t; /* the owner's transport, for the stand-in handler */

#define OLD_OWNER_RPC 911

typedef struct old_owner {
    int snaps, manys, commits; /* requests seen, by kind */
} old_owner_t;

/* Answers as an owner built before READ_SNAP would: READ_SNAP is an unknown
 * request; READ_MANY finds every key absent; a commit succeeds. */
static void h_old_owner(void *arg, tsr_rpc_req_t *req)
{
    old_owner_t *o = arg;
    size_t len;
    const unsigned char *p = tsr_rpc_req_data(req, &len);
    if (len >= 5 && p[0] == TXN_MSG_READ_MANY) {
        o->manys++;
        uint32_t n = kv_get32(p + 1);
        unsigned char out[16 * 16];
        assert_true(n <= 16);
        for (uint32_t i = 0; i < n; i++) {
            kv_put32(out + 16 * i, (uint32_t)TSR_ERR_NOT_FOUND);
            kv_put64(out + 16 * i + 4, KV_TXN_ABSENT);
            kv_put32(out + 16 * i + 12, 0);
        }
        tsr_rpc_reply(g_old_t, req, TSR_OK, out, 16 * (size_t)n);
    } else if (len >= 1 && p[0] == TXN_MSG_COMMIT) {
        o->commits++;
        tsr_rpc_reply(g_old_t, req, TSR_OK, NULL, 0);
    } else {
        o->snaps += len >= 1 && p[0] == TXN_MSG_READ_SNAP;
        static const char msg[] = "txn: unknown request";
        tsr_rpc_reply(g_old_t, req, TSR_ERR_BAD_INPUT, msg, sizeof(msg));
    }
}

static void test_old_owner(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, "call", "tcp");
    static old_owner_t o;
    g_old_t = e.s;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rpc_register(e.s, OLD_OWNER_RPC, h_old_owner, &o, &err), TSR_OK);
    tsr_txn_db_t *db = NULL;
    assert_int_equal(tsr_txn_db_remote(e.c, e.peer, OLD_OWNER_RPC, 20000, &db, NULL), TSR_OK);
    unsigned char buf[2][8];
    for (int round = 0; round < 2; round++) {
        tsr_txn_read_t two[2] = {RD("ta", "k0", buf[0], 8), RD("tb", "k1", buf[1], 8)};
        tsr_txn_t *x;
        assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
        assert_int_equal(tsr_txn_get_many(x, two, 2, NULL), TSR_OK);
        assert_int_equal(two[0].status, TSR_ERR_NOT_FOUND);
        assert_int_equal(two[1].status, TSR_ERR_NOT_FOUND);
        assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
        /* one READ_SNAP refused, ever; every read set went by READ_MANY and
         * every commit by call (no snapshot to decide it) */
        assert_int_equal(o.snaps, 1);
        assert_int_equal(o.manys, round + 1);
        assert_int_equal(o.commits, round + 1);
    }
    assert_int_equal(snapshots_of(db), 0);
    tsr_txn_db_close(db);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_choice),
        cmocka_unit_test(test_snapshot_commit),
        cmocka_unit_test(test_old_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
