/*
 * client_conn.c - a lock client's lifetime: attaching an embedded home, or
 * connecting to the homes of a cluster over the transport and fetching each
 * one's table descriptor (home.c answers: 16-byte header "TLKH", version,
 * slot count, then the packed region), then unpacking the remote key the
 * atomics go through. The protocol itself is in client.c.
 *
 * Rehoming (params.rehome, a cluster's view refetch): a home that answered
 * UNAVAILABLE is asked for again; a replacement gets a fresh ref (connected
 * and described as at create) published in cur[home] with gen + 1, the old
 * ref chained behind it so a call still holding a pointer to it stays safe
 * (its peer is down: it fails). The home's cache entries are cleared (its
 * table is new); grants recorded with the old gen are answered STALE by
 * release and renew (client.c).
 */
#include <string.h>

#include "lock_internal.h"

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static tsr_status_t connect_home(tsr_lock_client_t *c, const tsr_lock_home_addr_t *a,
                                 uint16_t type, int timeout_ms, tsr_lock_path_t path,
                                 lk_home_ref_t *hr, tsr_error_t *err)
{
    tsr_status_t rc;
    if (a->host) {
        rc = tsr_transport_connect(c->t, a->host, a->port, timeout_ms, &hr->peer, err);
        if (rc != TSR_OK)
            return rc;
    } else {
        hr->peer = tsr_transport_peer(c->t, a->node_id);
        if (!hr->peer)
            return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "lock home: no peer with node id %u",
                                 a->node_id);
    }
    tsr_rpc_msg_t reply = {0};
    rc = tsr_rpc_call(c->t, hr->peer, type, NULL, 0, timeout_ms, &reply, err);
    if (rc != TSR_OK) {
        tsr_rpc_msg_release(c->t, &reply);
        return rc;
    }
    const unsigned char *p = reply.data;
    if (reply.len < LK_INFO_HDR || get_u32(p) != LK_INFO_MAGIC ||
        get_u32(p + 4) != LK_INFO_VERSION || get_u32(p + 8) == 0) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "lock home %u: malformed descriptor (%zu bytes)",
                           tsr_peer_node_id(hr->peer), reply.len);
    } else {
        hr->nslots = get_u32(p + 8);
        bool serves = (get_u32(p + 12) & LK_INFO_SERVED) != 0;
        hr->served = serves && (path == TSR_LOCK_PATH_SERVED ||
                                (path == TSR_LOCK_PATH_AUTO && tsr_transport_tcp_only(c->t)));
        hr->ops_type = (uint16_t)(type + 1);
        if (path == TSR_LOCK_PATH_SERVED && !serves)
            rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED, "lock home %u does not serve lock calls",
                               tsr_peer_node_id(hr->peer));
        else
            rc = tsr_rkey_unpack(c->t, hr->peer, p + LK_INFO_HDR, reply.len - LK_INFO_HDR,
                                 &hr->rkey, err);
        if (rc == TSR_OK && hr->rkey &&
            tsr_rkey_len(hr->rkey) < (uint64_t)hr->nslots * LK_SLOT_BYTES) {
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "lock home: region shorter than its table");
            tsr_rkey_destroy(c->t, hr->rkey);
            hr->rkey = NULL;
        }
    }
    tsr_rpc_msg_release(c->t, &reply);
    return rc;
}

/* A client of nhomes homes, zeroed but for its arrays (homes, their caches)
 * and its mutex; NULL (nothing left allocated) when memory runs out. */
static tsr_lock_client_t *lk_client_alloc(size_t nhomes, int op_timeout_ms)
{
    tsr_lock_client_t *c = tsr_mem_calloc(NULL, 1, sizeof(*c));
    if (!c)
        return NULL;
    c->nhomes = nhomes;
    c->op_timeout_ms = op_timeout_ms;
    c->homes = tsr_mem_calloc(NULL, nhomes, sizeof(*c->homes));
    if (!c->homes)
        goto err_free_client;
    c->cache = tsr_mem_calloc(NULL, nhomes * LK_CACHE, sizeof(*c->cache));
    if (!c->cache)
        goto err_free_homes;
    c->cur = tsr_mem_calloc(NULL, nhomes, sizeof(*c->cur));
    if (!c->cur)
        goto err_free_cache;
    for (size_t i = 0; i < nhomes; i++)
        atomic_init(&c->cur[i], &c->homes[i]);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->rehome_mu, NULL);
    return c;

err_free_cache:
    tsr_mem_free(NULL, c->cache);
err_free_homes:
    tsr_mem_free(NULL, c->homes);
err_free_client:
    tsr_mem_free(NULL, c);
    return NULL;
}

tsr_status_t tsr_lock_client_create(const tsr_lock_client_params_t *p, tsr_lock_client_t **out,
                                    tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    tsr_status_t rc;
    if (!p || !out)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG, "lock client: no params"));
    bool local = p->local != NULL;
    /* a local home may be distributed: its owner's own client then runs CPU
     * atomics on the registered words, as the home's served path does */
    if (local == (p->transport != NULL) || (!local && (!p->homes || p->nhomes == 0)))
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG,
                                              "lock client: give either an embedded home or a "
                                              "transport and a list of homes"));
    if (p->path != TSR_LOCK_PATH_AUTO && p->path != TSR_LOCK_PATH_ATOMICS &&
        p->path != TSR_LOCK_PATH_SERVED)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG,
                                              "lock client: path %d unknown", (int)p->path));
    if (!local && p->nhomes > 65536)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG, "lock client: too many homes"));
    tsr_lock_client_t *c =
        lk_client_alloc(local ? 1 : p->nhomes, p->op_timeout_ms > 0 ? p->op_timeout_ms : 10000);
    if (!c)
        return tsr_lock_err_out(
            errp, &err, tsr_error_set(&err, TSR_ERR_NOMEM, "lock client: out of memory"));
    c->t = p->transport;
    c->rehome = local ? NULL : p->rehome;
    c->rehome_arg = p->rehome_arg;
    c->rpc_type = p->rpc_type ? p->rpc_type : TSR_LOCK_RPC_INFO;
    c->connect_timeout_ms = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : 10000;
    c->path = p->path;
    if (local) {
        c->homes[0].local = p->local->words;
        c->homes[0].nslots = p->local->nslots;
    } else {
        uint16_t type = p->rpc_type ? p->rpc_type : TSR_LOCK_RPC_INFO;
        int tmo = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : 10000;
        for (size_t i = 0; i < c->nhomes; i++) {
            rc = connect_home(c, &p->homes[i], type, tmo, p->path, &c->homes[i], &err);
            if (rc != TSR_OK) {
                tsr_lock_client_destroy(c);
                return tsr_lock_err_out(errp, &err, rc);
            }
        }
    }
    *out = c;
    return TSR_OK;
}

tsr_status_t tsr_lock_client_self(tsr_lock_home_t *h, tsr_lock_client_t **out, tsr_error_t *err)
{
    tsr_lock_client_t *c = lk_client_alloc(1, 10000);
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "lock home: out of memory");
    c->homes[0].local = h->words;
    c->homes[0].nslots = h->nslots;
    *out = c;
    return TSR_OK;
}

void tsr_lock_client_destroy(tsr_lock_client_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nhomes; i++) {
        /* the rehomed refs (allocated) down to the original (in homes) */
        lk_home_ref_t *r = atomic_load(&c->cur[i]);
        while (r && r != &c->homes[i]) {
            lk_home_ref_t *next = r->retired;
            if (r->rkey)
                tsr_rkey_destroy(c->t, r->rkey);
            tsr_mem_free(NULL, r);
            r = next;
        }
        if (c->homes[i].rkey)
            tsr_rkey_destroy(c->t, c->homes[i].rkey);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->rehome_mu);
    tsr_mem_free(NULL, c->cur);
    tsr_mem_free(NULL, c->held);
    tsr_mem_free(NULL, c->cache);
    tsr_mem_free(NULL, c->homes);
    tsr_mem_free(NULL, c);
}

tsr_status_t tsr_lock_rehome(tsr_lock_client_t *c, uint32_t home, const lk_home_ref_t *seen,
                             int budget_ms)
{
    if (!c->rehome || home >= c->nhomes)
        return TSR_ERR_UNAVAILABLE;
    pthread_mutex_lock(&c->rehome_mu);
    lk_home_ref_t *old = atomic_load(&c->cur[home]);
    tsr_status_t rc = TSR_OK;
    if (old != seen)
        goto done; /* another thread moved it meanwhile */
    tsr_lock_home_addr_t a = {0};
    if ((rc = c->rehome(c->rehome_arg, home, budget_ms, &a)) != TSR_OK)
        goto done;
    lk_home_ref_t *fresh = tsr_mem_calloc(NULL, 1, sizeof(*fresh));
    if (!fresh) {
        rc = TSR_ERR_NOMEM;
        goto done;
    }
    tsr_error_t e;
    lk_err_init(&e);
    int tmo = budget_ms > 0 && budget_ms < c->connect_timeout_ms ? budget_ms
                                                                 : c->connect_timeout_ms;
    if ((rc = connect_home(c, &a, c->rpc_type, tmo, c->path, fresh, &e)) != TSR_OK) {
        if (fresh->rkey)
            tsr_rkey_destroy(c->t, fresh->rkey);
        tsr_mem_free(NULL, fresh);
        goto done;
    }
    fresh->gen = old->gen + 1;
    fresh->retired = old;
    /* the new table knows none of the old slots: forget them, and publish,
     * under the cache's lock */
    pthread_mutex_lock(&c->mu);
    memset(&c->cache[(size_t)home * LK_CACHE], 0, LK_CACHE * sizeof(*c->cache));
    atomic_store(&c->cur[home], fresh);
    pthread_mutex_unlock(&c->mu);
done:
    pthread_mutex_unlock(&c->rehome_mu);
    return rc;
}
