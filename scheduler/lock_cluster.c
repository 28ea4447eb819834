/*
 * lock_cluster.c - a C-API lock client of a cluster's published lock homes
 * (include/tessera/lock.h, tsr_lock_cluster_connect; docs/locks.md "Locks
 * on a cluster").
 *
 * Steps, each bounded by the connect timeout: load the token; dial the
 * scheduler and prove the token (handshake.h); ask for the lock view
 * (LOCK_VIEW, proto.h: the homes in the order names map to, each with its
 * worker's node id and listener address); dial every home's worker and
 * prove the token there (the worker's lock home answers only proven peers);
 * check the node id the worker's transport announced against the view's
 * (another process reusing the address is refused); then create the lock
 * client over those peers by node id. The scheduler's connection is let go
 * at the end: from then on lock calls go to the homes only.
 *
 * Rehoming: the lock client calls cl_rehome when a home answers
 * UNAVAILABLE (its worker died). It refetches the view every 100 ms within
 * the budget the client gives (the scheduler notices the death, then
 * hands the home to a standby worker and bumps the generation); once the
 * home's slot names another worker it dials and proves that one and gives
 * its node id back; the client reconnects the slot and retries an acquire
 * once (engine/lock/client_conn.c, tsr_lock_rehome). The token stays in
 * the handle for this (wiped at close).
 *
 * The transport is this handle's own (default dispatch: the lock client's
 * blocking calls progress it); destroying the client comes before the
 * transport, which fails anything still pending.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "common.h"
#include "handshake.h"
#include "proto.h"
#include "scheduler.h"
#include "tessera/lock.h"
#include "transport.h"

struct tsr_lock_cluster {
    tsr_transport_t *t;
    tsr_lock_client_t *client;
    size_t nhomes;
    _Atomic uint64_t generation;
    /* for rehoming (cl_rehome, serialized by the lock client) */
    char host[256];
    uint16_t port;
    tsr_token_t tok;
    int tmo;
    uint32_t *node_ids; /* each home's worker as last dialled */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The lock view from the scheduler at host:port (dialled and proven). */
static tsr_status_t fetch_view(tsr_transport_t *t, const char *host, uint16_t port,
                               const tsr_token_t *tok, int tmo, tsr_rpc_msg_t *reply,
                               tsr_lock_view_t *view, tsr_error_t *err)
{
    tsr_peer_t *sched = NULL;
    tsr_error_t e2;
    tsr_error_clear(&e2);
    if (tsr_transport_connect(t, host, port, tmo, &sched, &e2) != TSR_OK) {
        tsr_error_set(err, TSR_ERR_UNAVAILABLE, "cannot reach the scheduler at %s:%u: %s", host,
                      port, e2.message);
        tsr_error_hint(err, "is it running? 'tessera cluster status' or check the address");
        return TSR_ERR_UNAVAILABLE;
    }
    char who[300];
    snprintf(who, sizeof(who), "the scheduler at %s:%u", host, port);
    tsr_status_t rc = tsr_hs_dial(t, sched, tok, TSR_ROLE_CLIENT, NULL, 0, tmo, who, err);
    if (rc == TSR_OK) {
        rc = tsr_rpc_call(t, sched, TSR_MSG_LOCK_VIEW, NULL, 0, tmo, reply, &e2);
        if (rc != TSR_OK) {
            tsr_error_t re;
            tsr_error_clear(&re);
            tsr_proto_decode_error(reply->data, reply->len, rc, &re);
            tsr_error_set(err, rc == TSR_ERR_AUTH ? TSR_ERR_AUTH : TSR_ERR_UNAVAILABLE,
                          "the scheduler at %s:%u did not give the lock view: %s", host, port,
                          re.message);
            if (re.hint[0])
                tsr_error_hint(err, "%s", re.hint);
            rc = err->status;
            tsr_rpc_msg_release(t, reply);
        } else if (!tsr_proto_decode_lock_view(NULL, reply->data, reply->len, view)) {
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed lock view from the scheduler");
            tsr_rpc_msg_release(t, reply);
        }
    }
    /* the view is all we need from it */
    tsr_peer_forget(t, sched);
    return rc;
}

/* Dials home i's worker and proves the token there. */
static tsr_status_t dial_home(tsr_transport_t *t, const tsr_lock_view_home_t *h, size_t i,
                              const tsr_token_t *tok, int tmo, tsr_error_t *err)
{
    tsr_peer_t *peer = NULL;
    tsr_error_t e2;
    tsr_error_clear(&e2);
    char who[400];
    snprintf(who, sizeof(who), "lock home %zu (worker %u at %s:%u)", i, h->worker, h->host,
             h->port);
    if (tsr_transport_connect(t, h->host, h->port, tmo, &peer, &e2) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "cannot reach %s: %s", who, e2.message);
    if (tsr_peer_node_id(peer) != h->node_id)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                             "%s: another process (node %u, not %u) answers there", who,
                             tsr_peer_node_id(peer), h->node_id);
    return tsr_hs_dial(t, peer, tok, TSR_ROLE_CLIENT, NULL, 0, tmo, who, err);
}

/* The lock client's rehome hook (tsr_lock_client_params_t.rehome). */
static tsr_status_t cl_rehome(void *arg, uint32_t home, int budget_ms, tsr_lock_home_addr_t *addr)
{
    tsr_lock_cluster_t *cl = arg;
    int64_t end = mono_ms() + budget_ms;
    for (;;) {
        int64_t left = end - mono_ms();
        if (left <= 0)
            return TSR_ERR_UNAVAILABLE;
        int tmo = left < cl->tmo ? (int)left : cl->tmo;
        tsr_lock_view_t view = {0};
        tsr_rpc_msg_t reply = {0};
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t rc = fetch_view(cl->t, cl->host, cl->port, &cl->tok, tmo, &reply, &view, &err);
        bool done = false;
        if (rc == TSR_OK) {
            if (view.nhomes != cl->nhomes || home >= view.nhomes) {
                rc = TSR_ERR_UNAVAILABLE; /* views never change size (sched_lock.c) */
                done = true;
            } else if (view.homes[home].node_id != cl->node_ids[home]) {
                rc = dial_home(cl->t, &view.homes[home], home, &cl->tok, tmo, &err);
                if (rc == TSR_OK) {
                    cl->node_ids[home] = view.homes[home].node_id;
                    atomic_store(&cl->generation, view.generation);
                    addr->host = NULL;
                    addr->node_id = view.homes[home].node_id;
                    done = true;
                }
            }
            tsr_proto_lock_view_free(NULL, &view);
            tsr_rpc_msg_release(cl->t, &reply);
        } else if (rc == TSR_ERR_AUTH) {
            done = true;
        }
        if (done)
            return rc;
        /* not moved yet (or no standby yet): ask again shortly */
        left = end - mono_ms();
        int64_t nap = left < 100 ? left : 100;
        if (nap > 0) {
            struct timespec ts = {0, (long)nap * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

static tsr_status_t lock_err(tsr_lock_err_t *out, const tsr_error_t *e, tsr_status_t rc)
{
    if (out && rc != TSR_OK && out->status == TSR_OK) {
        out->status = rc;
        snprintf(out->message, sizeof(out->message), "%s",
                 e->message[0] ? e->message : tsr_status_str(rc));
    }
    return rc;
}

tsr_status_t tsr_lock_cluster_connect(const tsr_lock_cluster_params_t *p, tsr_lock_cluster_t **out,
                                      tsr_lock_err_t *errp)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc;
    char host[256], path[4096];
    uint16_t port = 0;
    if (!p || !out || !p->scheduler)
        return lock_err(errp, &err,
                        tsr_error_set(&err, TSR_ERR_INVALID_ARG, "lock cluster: no scheduler"));
    if (!tsr_sched_parse_addr(p->scheduler, host, sizeof(host), &port) || port == 0)
        return lock_err(errp, &err,
                        tsr_error_set(&err, TSR_ERR_INVALID_ARG,
                                      "lock cluster: the scheduler needs HOST:PORT, found '%s'",
                                      p->scheduler));
    if (!tsr_auth_token_path(p->token_file, path, sizeof(path)))
        return lock_err(errp, &err,
                        tsr_error_set(&err, TSR_ERR_AUTH,
                                      "no cluster token: give a token file or set "
                                      "$TESSERA_TOKEN_FILE"));
    int tmo = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : 10000;
    tsr_token_t tok;
    if ((rc = tsr_auth_token_load(path, &tok, &err)) != TSR_OK)
        return lock_err(errp, &err, rc);
    tsr_lock_cluster_t *cl = tsr_mem_calloc(NULL, 1, sizeof(*cl));
    tsr_lock_view_t view = {0};
    tsr_rpc_msg_t reply = {0};
    tsr_lock_home_addr_t *addrs = NULL;
    if (!cl) {
        rc = tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    tsr_transport_params_t tp = {.node_id = tsr_sched_node_id()};
    if ((rc = tsr_transport_create(NULL, &tp, &cl->t, &err)) != TSR_OK)
        goto done;
    if ((rc = fetch_view(cl->t, host, port, &tok, tmo, &reply, &view, &err)) != TSR_OK)
        goto done;
    addrs = tsr_mem_calloc(NULL, view.nhomes, sizeof(*addrs));
    cl->node_ids = tsr_mem_calloc(NULL, view.nhomes, sizeof(*cl->node_ids));
    if (!addrs || !cl->node_ids) {
        rc = tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < view.nhomes; i++) {
        if ((rc = dial_home(cl->t, &view.homes[i], i, &tok, tmo, &err)) != TSR_OK)
            goto done;
        addrs[i].node_id = view.homes[i].node_id; /* host NULL: the peer dialled above */
        cl->node_ids[i] = view.homes[i].node_id;
    }
    snprintf(cl->host, sizeof(cl->host), "%s", host);
    cl->port = port;
    cl->tok = tok;
    cl->tmo = tmo;
    tsr_lock_client_params_t cp = {.transport = cl->t,
                                   .homes = addrs,
                                   .nhomes = view.nhomes,
                                   .connect_timeout_ms = tmo,
                                   .op_timeout_ms = p->op_timeout_ms,
                                   .path = p->path,
                                   .rehome = cl_rehome,
                                   .rehome_arg = cl};
    tsr_lock_err_t le = {0};
    if ((rc = tsr_lock_client_create(&cp, &cl->client, &le)) != TSR_OK) {
        tsr_error_set(&err, rc, "%s", le.message);
        goto done;
    }
    cl->nhomes = view.nhomes;
    atomic_store(&cl->generation, view.generation);
done:
    memset(&tok, 0, sizeof(tok));
    tsr_mem_free(NULL, addrs);
    tsr_proto_lock_view_free(NULL, &view);
    if (cl && cl->t)
        tsr_rpc_msg_release(cl->t, &reply);
    if (rc != TSR_OK) {
        tsr_lock_cluster_close(cl);
        return lock_err(errp, &err, rc);
    }
    *out = cl;
    return TSR_OK;
}

tsr_lock_client_t *tsr_lock_cluster_client(tsr_lock_cluster_t *cl)
{
    return cl ? cl->client : NULL;
}

size_t tsr_lock_cluster_homes(const tsr_lock_cluster_t *cl, uint64_t *generation)
{
    if (generation)
        *generation = cl ? atomic_load(&cl->generation) : 0;
    return cl ? cl->nhomes : 0;
}

void tsr_lock_cluster_close(tsr_lock_cluster_t *cl)
{
    if (!cl)
        return;
    tsr_lock_client_destroy(cl->client);
    tsr_transport_destroy(cl->t);
    memset(&cl->tok, 0, sizeof(cl->tok));
    tsr_mem_free(NULL, cl->node_ids);
    tsr_mem_free(NULL, cl);
}
