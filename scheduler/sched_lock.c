/*
 * sched_lock.c - the scheduler's part of the lock service: it routes every
 * `tessera lock` request to the worker that hosts the lock's home and relays
 * the answer (docs/locks.md "Locks on a cluster").
 *
 * The lock view. Names map to homes with the lock layer's rule (home =
 * mix(hash(name)) mod nhomes, engine/lock/client.c), over a list of homes
 * every party must agree on: the *lock view*, the worker slots in join order
 * as they were at the first lock request. The view never grows or shrinks,
 * because a different count would move almost every name to another home
 * while its grant still lives in the old one (two holders). Instead:
 *   - a worker that joins later is not in the view; it stands by;
 *   - a view worker that dies takes its home's locks with it (no WAL yet,
 *     as for any home: docs/locks.md): requests for its names fail with
 *     UNAVAILABLE (exit 5) until a standby worker exists, which then takes
 *     the dead worker's place in the view (logged). Its fresh table's tokens
 *     are time-seeded, so they exceed the dead home's unless a lock went
 *     through more than 256 epochs (about 2 M grants) per second of the old
 *     home's life (docs/locks.md, token).
 * Names on the other homes are never affected.
 *
 * The directory: LOCK_VIEW answers an authenticated client or worker with
 * the view's homes in order (worker, node id, the listener address it
 * reported when it joined) and a generation bumped whenever a home moves,
 * so C-API clients (lock_cluster.c) reach the homes directly; dead homes
 * are replaced by standbys first, and a dead home without a standby makes
 * the request fail with UNAVAILABLE.
 *
 * Forwarding: the request is re-encoded with the home's index and sent to the
 * worker with LOCK_RUN; its reply (payload and status) goes back to the
 * client unchanged. An acquire without a time limit has no call timeout (the
 * client watches the scheduler with pings; the worker's death fails the call
 * at once); any other call gets its own timeout plus FWD_SLACK_MS.
 */
#include <string.h>

#include "common.h"
#include "core/hash.h"
#include "sched_internal.h"

#define FWD_SLACK_MS 10000

typedef struct lock_fwd {
    sched_t *s;
    tsr_rpc_req_t *req;
    size_t home;
    tsr_wbuf_t msg; /* the forwarded request: lives until the call completes */
} lock_fwd_t;

static void reply_err(sched_t *s, tsr_rpc_req_t *req, tsr_status_t rc, const char *msg,
                      const char *hint)
{
    tsr_proto_reply_error(s->t, s->mem, req, rc, msg, hint);
}

/* The lock layer's name -> home rule (engine/lock/client.c, op_init): keep
 * them identical so that any lock client listing the view's homes in order
 * finds the same home. */
static size_t home_of(const char *name, size_t nhomes)
{
    if (nhomes <= 1)
        return 0;
    uint64_t h = tsr_hash_bytes(name, strlen(name));
    return (size_t)(tsr_hash_u64(h ^ 0x6c6f636b686f6d65ull) % nhomes);
}

static bool in_view(const sched_t *s, size_t slot)
{
    for (size_t i = 0; i < s->lock_nview; i++)
        if (s->lock_view[i] == slot)
            return true;
    return false;
}

/* The ready worker hosting home h, replacing a dead one by a standby (a
 * new generation of the view); NULL when none is ready. */
static sworker_t *home_repair(sched_t *s, size_t h)
{
    sworker_t *w = s->workers[s->lock_view[h]];
    if (w->state == SW_READY)
        return w;
    for (size_t i = 0; i < s->nworkers; i++) {
        if (s->workers[i]->state != SW_READY || in_view(s, i))
            continue;
        tsr_sched_log(s->p->log, "scheduler",
                      "lock home %zu moves from dead worker %zu to worker %zu (its locks were "
                      "lost with the worker)",
                      h, s->lock_view[h] + 1, i + 1);
        s->lock_view[h] = i;
        s->lock_gen++;
        return s->workers[i];
    }
    return NULL;
}

/* The view, formed at the first lock request from the ready workers in
 * join order; false after answering req when no worker is ready. */
static bool view_form(sched_t *s, tsr_rpc_req_t *req)
{
    if (s->lock_nview > 0)
        return true;
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i]->state == SW_READY)
            s->lock_view[s->lock_nview++] = i;
    if (s->lock_nview == 0) {
        reply_err(s, req, TSR_ERR_UNAVAILABLE, "no worker has joined the cluster",
                  "locks live on the workers: start one ('tessera worker')");
        return false;
    }
    s->lock_gen = 1;
    tsr_sched_log(s->p->log, "scheduler", "lock service: %zu home(s), one per worker",
                  s->lock_nview);
    return true;
}

/* The ready worker hosting home h; NULL after answering the request. */
static sworker_t *home_worker(sched_t *s, tsr_rpc_req_t *req, size_t h)
{
    sworker_t *w = home_repair(s, h);
    if (w)
        return w;
    char msg[200];
    snprintf(msg, sizeof(msg), "the lock's home (worker %zu) is down", s->lock_view[h] + 1);
    reply_err(s, req, TSR_ERR_UNAVAILABLE, msg,
              "start another worker: it takes over the home (the locks held there were lost)");
    return NULL;
}

static void on_forwarded(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    lock_fwd_t *f = arg;
    sched_t *s = f->s;
    if (status == TSR_OK || reply->len > 0) {
        tsr_rpc_reply(s->t, f->req, status, reply->data, reply->len);
    } else {
        char msg[200];
        snprintf(msg, sizeof(msg), "lost the lock's home (worker %zu) during the request: %s",
                 s->lock_view[f->home] + 1, tsr_status_str(status));
        reply_err(s, f->req, TSR_ERR_UNAVAILABLE, msg,
                  "a grant held there is lost; acquire again once another worker took over");
    }
    tsr_rpc_msg_release(s->t, reply);
    tsr_wbuf_free(&f->msg);
    tsr_mem_free(s->mem, f);
}

void tsr_sched_lock_request(sched_t *s, tsr_rpc_req_t *req)
{
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_client_lock_req_t q;
    if (!tsr_proto_decode_lock_req(data, len, &q)) {
        reply_err(s, req, TSR_ERR_BAD_INPUT, "malformed lock request", NULL);
        return;
    }
    if (!view_form(s, req))
        return;
    size_t h = home_of(q.name, s->lock_nview);
    sworker_t *w = home_worker(s, req, h);
    if (!w)
        return;
    lock_fwd_t *f = tsr_mem_calloc(s->mem, 1, sizeof(*f));
    if (!f) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        return;
    }
    f->s = s;
    f->req = req;
    f->home = h;
    q.home = (uint32_t)h;
    tsr_wbuf_init(&f->msg, s->mem);
    tsr_proto_encode_lock_req(&f->msg, &q);
    int tmo = FWD_SLACK_MS;
    if (q.op == TSR_CLIENT_LOCK_ACQUIRE)
        tmo = q.timeout_ms < 0 || q.timeout_ms > 86400000 ? -1 : (int)q.timeout_ms + FWD_SLACK_MS;
    tsr_error_t e;
    tsr_error_clear(&e);
    if (f->msg.failed || tsr_rpc_call_async(s->t, w->peer, TSR_MSG_LOCK_RUN, f->msg.data,
                                            f->msg.len, tmo, on_forwarded, f, &e) != TSR_OK) {
        reply_err(s, req, TSR_ERR_UNAVAILABLE, "cannot reach the lock's home worker", NULL);
        tsr_wbuf_free(&f->msg);
        tsr_mem_free(s->mem, f);
    }
}

void tsr_sched_lock_view(sched_t *s, tsr_rpc_req_t *req)
{
    size_t len = 0;
    (void)tsr_rpc_req_data(req, &len);
    if (len != 0) {
        reply_err(s, req, TSR_ERR_BAD_INPUT, "malformed lock view request", NULL);
        return;
    }
    if (!view_form(s, req))
        return;
    tsr_lock_view_home_t *homes = tsr_mem_calloc(s->mem, s->lock_nview, sizeof(*homes));
    if (!homes) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        return;
    }
    for (size_t h = 0; h < s->lock_nview; h++) {
        sworker_t *w = home_repair(s, h);
        if (!w || w->addr_port == 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "lock home %zu (worker %zu) is down", h,
                     s->lock_view[h] + 1);
            reply_err(s, req, TSR_ERR_UNAVAILABLE, msg,
                      "start another worker: it takes over the home (the locks held there were "
                      "lost)");
            tsr_mem_free(s->mem, homes);
            return;
        }
        homes[h].worker = (uint32_t)(s->lock_view[h] + 1);
        homes[h].node_id = w->node_id;
        homes[h].host = w->addr_host;
        homes[h].port = w->addr_port;
    }
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    tsr_proto_encode_lock_view(&b, s->lock_gen, homes, s->lock_nview);
    tsr_mem_free(s->mem, homes);
    if (b.failed)
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
    else
        tsr_rpc_reply(s->t, req, TSR_OK, b.data, b.len);
    tsr_wbuf_free(&b);
}
