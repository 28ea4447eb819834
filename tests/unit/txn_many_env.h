/*
 * txn_many_env.h - the one-process owner and clients of the remote
 * transaction tests (test_txn_many.c, test_txn_reads.c): an owner transport
 * S with a listener, its own progress thread, a kv server (one-sided reads)
 * and a txn server over one store with tables "ta" (small, rehashes), "tb"
 * and "big" (values up to BIGV bytes); a client transport C and the db under
 * test; a local db on the same store as a concurrent committer.
 */
#ifndef TSR_TEST_TXN_MANY_ENV_H
#define TSR_TEST_TXN_MANY_ENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h"
#include "transport_test.h"

#define BIGV 20000

/* ---- the owner and its clients --------------------------------------------------- */

typedef struct env {
    tsr_transport_t *s, *c;
    tsr_peer_t *peer;
    tsr_kv_store_t *store;
    tsr_kv_server_t *ksrv; /* NULL: reads by call */
    tsr_txn_server_t *tsrv;
    tsr_txn_db_t *db;    /* the db under test */
    tsr_txn_db_t *other; /* a concurrent committer (local, same store) */
    bool remote;
} env_t;

static inline tsr_transport_t *make(uint32_t node, bool listen, const char *tls)
{
    tsr_transport_params_t p = {
        .node_id = node, .listen_host = listen ? "127.0.0.1" : NULL, .spin_us = 20, .tls = tls};
    return test_transport_create(&p);
}

static inline void tables_up(tsr_kv_store_t *s)
{
    tsr_kv_table_params_t pa = {.partitions = 2, .max_key = 16, .max_value = 200, .capacity = 4};
    tsr_kv_table_params_t pb = {.partitions = 3, .max_key = 16, .max_value = 64, .capacity = 64};
    tsr_kv_table_params_t pg = {.partitions = 1, .max_key = 16, .max_value = BIGV, .capacity = 64};
    assert_int_equal(tsr_kv_table_create(s, "ta", &pa, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_create(s, "tb", &pb, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_create(s, "big", &pg, NULL), TSR_OK);
}

/* mode: "local", "rma" (one-sided reads, forced; tls NULL = UCX's default
 * set, shared memory included, or "tcp"), "rlock" (rma, and the client
 * locks its write sets one-sided even over TCP), "call" (a kv server, but the
 * client's default choice: by call over TCP only, a get_many's keys in one
 * call), "rpc" (no kv server: reads by call). */
static inline void env_up(env_t *e, const char *mode, const char *tls)
{
    memset(e, 0, sizeof(*e));
    tsr_kv_err_t ke = {0};
    tsr_txn_err_t xe = {0};
    assert_int_equal(tsr_kv_open(NULL, &e->store, &ke), TSR_OK);
    tables_up(e->store);
    assert_int_equal(tsr_txn_db_local(e->store, &e->other, &xe), TSR_OK);
    if (strcmp(mode, "local") == 0) {
        assert_int_equal(tsr_txn_db_local(e->store, &e->db, &xe), TSR_OK);
        return;
    }
    e->remote = true;
    tsr_error_t err;
    tsr_error_clear(&err);
    e->s = make(1, true, tls);
    e->c = make(2, false, tls);
    bool rlock = strcmp(mode, "rlock") == 0;
    if (rlock || strcmp(mode, "rma") == 0 || strcmp(mode, "call") == 0)
        assert_int_equal(tsr_kv_server_start(e->store, e->s, 0, &e->ksrv, &ke), TSR_OK);
    assert_int_equal(tsr_txn_server_start(e->store, e->s, 0, &e->tsrv, &xe), TSR_OK);
    assert_int_equal(tsr_transport_start_thread(e->s, &err), TSR_OK);
    assert_int_equal(
        tsr_transport_connect(e->c, "127.0.0.1", tsr_transport_port(e->s), 20000, &e->peer, &err),
        TSR_OK);
    assert_int_equal(tsr_txn_db_remote(e->c, e->peer, 0, 20000, &e->db, &xe), TSR_OK);
    if (rlock || strcmp(mode, "rma") == 0)
        assert_int_equal(tsr_txn_db_set_reads(e->db, TSR_TXN_READS_ONE_SIDED, &xe), TSR_OK);
    if (rlock)
        assert_int_equal(tsr_txn_db_set_locks(e->db, TSR_TXN_LOCKS_ONE_SIDED, &xe), TSR_OK);
}

static inline void env_down(env_t *e)
{
    tsr_txn_db_close(e->db);
    tsr_txn_db_close(e->other);
    if (e->remote) {
        tsr_transport_destroy(e->c);
        tsr_transport_stop_thread(e->s);
        tsr_txn_server_stop(e->tsrv);
        tsr_kv_server_stop(e->ksrv);
    }
    tsr_kv_close(e->store);
    tsr_transport_destroy(e->s);
}

static inline void put1(tsr_txn_db_t *db, const char *tab, const char *key, const void *v,
                        size_t vl)
{
    tsr_txn_t *x;
    assert_int_equal(tsr_txn_begin(db, &x, NULL), TSR_OK);
    assert_int_equal(tsr_txn_put(x, tab, key, strlen(key), v, vl, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_txn_commit(x, NULL), TSR_OK);
}

static inline uint64_t reads_of(tsr_txn_db_t *db)
{
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    return st.reads_rma + st.reads_rpc;
}

#define RD(t, k, b, c)                                                                             \
    ((tsr_txn_read_t){.table = (t), .key = (k), .klen = strlen(k), .buf = (b), .cap = (c)})

#endif /* TSR_TEST_TXN_MANY_ENV_H */
