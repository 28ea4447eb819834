/*
 * txn_cluster.c - transactions on a cluster's kv tables for programs
 * (include/tessera/txn.h, tsr_txn_db_cluster; docs/kv.md "On a cluster",
 * Transactions): a backend of engine/txn's db (txn_internal.h,
 * tsr_txn_db_backend) over a scheduler client (client.c).
 *
 * engine/txn keeps the read and write sets (txn.c); this file only carries
 * its two kinds of calls to the scheduler (kv_msg.h):
 *   read    TGET: the scheduler routes the key to its partition's primary,
 *           which answers the value and its version (epoch-mixed, opaque
 *           here), or "absent".
 *   commit  TXN: the tables the entries use, the reads (key, version or
 *           TSR_KV_TXN_ABSENT) and the writes; the scheduler validates and
 *           applies (sched_txn.c). A transaction with no entries commits
 *           without a call; a read-only one is validated like any other.
 * The client is one connection; calls from several threads are serialized
 * by a mutex. Fenced writes (a lock token) are refused: the workers' stores
 * keep no fence for them.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "common.h"
#include "kv_msg.h"
#include "proto.h"
#include "scheduler.h"
#include "tessera/txn.h"
#include "txn_internal.h"

typedef struct txn_cluster {
    tsr_client_t *c;
    pthread_mutex_t mu;
} txn_cluster_t;

static void copy_err(tsr_error_t *err, const tsr_error_t *e)
{
    tsr_error_set(err, e->status, "%s", e->message[0] ? e->message : tsr_status_str(e->status));
    if (e->hint[0])
        tsr_error_hint(err, "%s", e->hint);
}

/* One TSR_MSG_KV call; the reply (may be NULL) is the caller's to free. */
static tsr_status_t call(txn_cluster_t *tc, const tsr_wbuf_t *b, void **rep, size_t *rlen,
                         tsr_error_t *err)
{
    if (b->failed)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    tsr_error_t e;
    tsr_error_clear(&e);
    pthread_mutex_lock(&tc->mu);
    tsr_status_t rc = tsr_client_call(tc->c, TSR_MSG_KV, b->data, b->len, rep, rlen, &e);
    pthread_mutex_unlock(&tc->mu);
    if (rc != TSR_OK)
        copy_err(err, &e);
    return rc;
}

static tsr_status_t cl_read(void *arg, const char *table, const void *key, uint32_t klen,
                            unsigned char **val, uint32_t *vlen, uint64_t *ver, tsr_error_t *err)
{
    txn_cluster_t *tc = arg;
    *val = NULL;
    *vlen = 0;
    *ver = 0; /* with NOT_FOUND: an unknown table */
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_TGET);
    tsr_wbuf_str(&b, table);
    tsr_wbuf_u32(&b, klen);
    tsr_wbuf_bytes(&b, key, klen);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_status_t rc = call(tc, &b, &rep, &rlen, err);
    tsr_wbuf_free(&b);
    if (rc != TSR_OK)
        return rc;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, rep, rlen);
    uint8_t found = tsr_rbuf_u8(&r);
    uint64_t v = tsr_rbuf_u64(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    const void *p = r.bad ? NULL : tsr_rbuf_bytes(&r, n);
    if (!tsr_rbuf_done(&r)) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: malformed read reply from the cluster");
    } else if (!found) {
        *ver = KV_TXN_ABSENT;
        rc = TSR_ERR_NOT_FOUND;
    } else if (!(*val = tsr_mem_alloc(NULL, n ? n : 1))) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    } else {
        if (n)
            memcpy(*val, p, n);
        *vlen = n;
        *ver = v;
    }
    tsr_mem_free(NULL, rep);
    return rc;
}

static void put_bytes(tsr_wbuf_t *b, const void *p, uint32_t n)
{
    tsr_wbuf_u32(b, n);
    tsr_wbuf_bytes(b, p, n);
}

static tsr_status_t cl_commit(void *arg, const txn_sets_t *sets, tsr_error_t *err)
{
    txn_cluster_t *tc = arg;
    if (sets->nreads == 0 && sets->nwrites == 0)
        return TSR_OK;
    for (size_t i = 0; i < sets->nwrites; i++)
        if (sets->writes[i].lock)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "txn: fenced writes are not supported on cluster tables");
    /* only the tables the entries use (a get of an unknown table names
     * one that no entry uses): index remapped */
    uint32_t *map = tsr_mem_alloc(NULL, (sets->ntabs ? sets->ntabs : 1) * sizeof(*map));
    if (!map)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    for (uint32_t i = 0; i < sets->ntabs; i++)
        map[i] = UINT32_MAX;
    uint32_t nused = 0;
    for (size_t i = 0; i < sets->nreads + sets->nwrites; i++) {
        const txn_entry_t *e = i < sets->nreads ? &sets->reads[i] : &sets->writes[i - sets->nreads];
        if (map[e->tab] == UINT32_MAX)
            map[e->tab] = nused++;
    }
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_TXN);
    tsr_wbuf_str(&b, "");
    tsr_wbuf_u32(&b, nused);
    for (uint32_t k = 0; k < nused; k++)
        for (uint32_t i = 0; i < sets->ntabs; i++)
            if (map[i] == k)
                tsr_wbuf_str(&b, sets->tnames[i]);
    tsr_wbuf_u32(&b, (uint32_t)sets->nreads);
    for (size_t i = 0; i < sets->nreads; i++) {
        const txn_entry_t *e = &sets->reads[i];
        tsr_wbuf_u32(&b, map[e->tab]);
        put_bytes(&b, e->key, e->klen);
        tsr_wbuf_u64(&b, e->ver == KV_TXN_ABSENT ? TSR_KV_TXN_ABSENT : e->ver);
    }
    tsr_wbuf_u32(&b, (uint32_t)sets->nwrites);
    for (size_t i = 0; i < sets->nwrites; i++) {
        const txn_entry_t *e = &sets->writes[i];
        tsr_wbuf_u32(&b, map[e->tab]);
        tsr_wbuf_u8(&b, e->del ? 1 : 0);
        put_bytes(&b, e->key, e->klen);
        put_bytes(&b, e->val, e->del ? 0 : e->vlen);
    }
    tsr_mem_free(NULL, map);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_status_t rc = call(tc, &b, &rep, &rlen, err);
    tsr_wbuf_free(&b);
    tsr_mem_free(NULL, rep);
    return rc;
}

static void cl_close(void *arg)
{
    txn_cluster_t *tc = arg;
    tsr_client_destroy(tc->c);
    pthread_mutex_destroy(&tc->mu);
    tsr_mem_free(NULL, tc);
}

static const txn_backend_t cluster_backend = {cl_read, cl_commit, cl_close};

static tsr_status_t out_err(tsr_txn_err_t *xerr, const tsr_error_t *e)
{
    if (xerr && xerr->status == TSR_OK) {
        xerr->status = e->status;
        snprintf(xerr->message, sizeof(xerr->message), "%s%s%s", e->message,
                 e->hint[0] ? " (hint: " : "", e->hint[0] ? e->hint : "");
        if (e->hint[0] && strlen(xerr->message) + 1 < sizeof(xerr->message))
            strcat(xerr->message, ")");
    }
    return e->status;
}

tsr_status_t tsr_txn_db_cluster(const tsr_txn_cluster_params_t *params, tsr_txn_db_t **out,
                                tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    char host[256];
    uint16_t port = 0;
    if (!params || !out || !params->scheduler ||
        !tsr_sched_parse_addr(params->scheduler, host, sizeof(host), &port) || port == 0) {
        tsr_error_set(&e, TSR_ERR_INVALID_ARG, "txn: the scheduler address must be HOST:PORT");
        return out_err(xerr, &e);
    }
    txn_cluster_t *tc = tsr_mem_calloc(NULL, 1, sizeof(*tc));
    if (!tc) {
        tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
        return out_err(xerr, &e);
    }
    if (pthread_mutex_init(&tc->mu, NULL) != 0) {
        tsr_mem_free(NULL, tc);
        tsr_error_set(&e, TSR_ERR_INTERNAL, "txn: pthread_mutex_init failed");
        return out_err(xerr, &e);
    }
    int tmo = params->timeout_ms > 0 ? params->timeout_ms : 10000;
    char token[4096];
    if (!tsr_auth_token_path(params->token_file, token, sizeof(token))) {
        pthread_mutex_destroy(&tc->mu);
        tsr_mem_free(NULL, tc);
        tsr_error_set(&e, TSR_ERR_AUTH, "txn: no cluster token");
        tsr_error_hint(&e, "pass a token file, or set $TESSERA_TOKEN_FILE");
        return out_err(xerr, &e);
    }
    if (tsr_client_connect(host, port, token, tmo, &tc->c, &e) != TSR_OK) {
        pthread_mutex_destroy(&tc->mu);
        tsr_mem_free(NULL, tc);
        return out_err(xerr, &e);
    }
    if (tsr_txn_db_backend(&cluster_backend, tc, out, &e) != TSR_OK) /* closes tc */
        return out_err(xerr, &e);
    return TSR_OK;
}
