/*
 * worker_lock.c - the worker's lock home and the lock client that acts for
 * `tessera lock` commands.
 *
 * Every worker hosts one lock home, published on the worker's transport
 * (tsr_lock_home_create(t): the table is a registered region, the
 * descriptor call and the served lock calls are answered on the worker's
 * main thread), so C-API clients that fetched the lock view from the
 * scheduler (LOCK_VIEW) reach it directly with one-sided atomics or served
 * calls; only peers that proved the cluster token get an answer (the allow
 * hook, worker.c's peer table).
 *
 * The scheduler sends each CLI lock request to the home its name maps to
 * (sched_lock.c); this worker's own lock client runs it, attached to the
 * home in-process (params.local: the same protocol with CPU atomics on the
 * same registered words). So CLI holders and direct clients share the lock
 * words and exclude each other. The CLI's grant lives in this client (its
 * ticket, epoch, lease start), keyed by (name, fencing token), so a later
 * `release`/`renew` from another CLI process finds it by token.
 *
 * Threads: requests arrive on the worker's main thread (the RPC handler);
 * each runs on a detached thread of its own, because an acquire blocks until
 * granted or timed out and must delay neither heartbeats nor other locks. At
 * most MAX_RUNNING run at once (more are answered UNAVAILABLE). Threads reply
 * themselves (the transport accepts replies from any thread). Shutdown
 * refuses new requests and waits (bounded) for running ones.
 *
 * Statuses: bad names/leases are TSR_ERR_INVALID_ARG (exit 2); a token that
 * names no grant of this client is TSR_ERR_NOT_FOUND (exit 3: the lock layer
 * says INVALID_ARG, which we narrow once the name and lease were checked);
 * not granted in time TSR_ERR_TIMEOUT, lease run out TSR_ERR_STALE (exit 4).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "proto.h"
#include "tessera/lock.h"
#include "worker_lock.h"

#define MAX_RUNNING 256

struct tsr_wlock {
    tsr_transport_t *t;
    FILE *log;
    tsr_lock_home_t *home;
    tsr_lock_client_t *client;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned running; /* request threads alive */
    bool closing;     /* refuse new requests */
};

typedef struct wl_job {
    tsr_wlock_t *l;
    tsr_rpc_req_t *req;
} wl_job_t;

tsr_status_t tsr_wlock_create(tsr_transport_t *t, FILE *log, bool (*allow)(void *, tsr_peer_t *),
                              void *allow_arg, tsr_wlock_t **out, tsr_error_t *err)
{
    tsr_lock_err_t le = {0};
    tsr_wlock_t *l = tsr_mem_calloc(NULL, 1, sizeof(*l));
    if (!l)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    l->t = t;
    l->log = log;
    tsr_lock_home_params_t hp = {.allow = allow, .allow_arg = allow_arg};
    tsr_status_t rc = tsr_lock_home_create(t, &hp, &l->home, &le);
    if (rc == TSR_OK) {
        tsr_lock_client_params_t cp = {.local = l->home};
        rc = tsr_lock_client_create(&cp, &l->client, &le);
    }
    if (rc != TSR_OK) {
        tsr_lock_home_destroy(l->home);
        tsr_mem_free(NULL, l);
        return tsr_error_set(err, rc, "lock home: %s", le.message);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    *out = l;
    return TSR_OK;
}

/* The lock layer reports a bad name and an unknown token both as
 * INVALID_ARG; a fence check validates the name with the same rules (and
 * nothing else), so the two can be told apart. */
static tsr_status_t check_name(const char *name, tsr_lock_err_t *le)
{
    tsr_lock_fence_t *f = NULL;
    tsr_status_t rc = tsr_lock_fence_create(&f, le);
    if (rc == TSR_OK)
        rc = tsr_lock_fence_check(f, name, 1, le);
    tsr_lock_fence_destroy(f);
    return rc;
}

static void reply_error(tsr_wlock_t *l, tsr_rpc_req_t *req, tsr_status_t rc, const char *msg,
                        const char *hint)
{
    tsr_proto_reply_error(l->t, NULL, req, rc, msg, hint);
}

static void run(tsr_wlock_t *l, tsr_rpc_req_t *req)
{
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_client_lock_req_t q;
    if (!tsr_proto_decode_lock_req(data, len, &q)) {
        reply_error(l, req, TSR_ERR_BAD_INPUT, "malformed lock request", NULL);
        return;
    }
    tsr_lock_err_t le = {0};
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_status_t rc = TSR_OK;
    char msg[600];
    const char *hint = NULL;
    switch (q.op) {
    case TSR_CLIENT_LOCK_ACQUIRE: {
        tsr_lock_opts_t o = {.mode = q.shared ? TSR_LOCK_SHARED : TSR_LOCK_EXCLUSIVE,
                             .lease_ms = q.lease_ms,
                             .timeout_ms = q.timeout_ms};
        uint64_t token = 0;
        rc = tsr_lock_acquire(l->client, q.name, &o, &token, &le);
        if (rc == TSR_OK)
            tsr_wbuf_u64(&b, token);
        else if (rc == TSR_ERR_TIMEOUT)
            hint = "the lock is held; try again later or pass a longer --timeout-ms";
        break;
    }
    case TSR_CLIENT_LOCK_RELEASE:
    case TSR_CLIENT_LOCK_RENEW:
        rc = check_name(q.name, &le);
        if (rc == TSR_OK && q.op == TSR_CLIENT_LOCK_RENEW &&
            (q.lease_ms < 0 || q.lease_ms > TSR_LOCK_MAX_LEASE_MS)) {
            rc = TSR_ERR_INVALID_ARG;
            snprintf(le.message, sizeof(le.message), "lease %lld ms is outside 0..%d ms",
                     (long long)q.lease_ms, TSR_LOCK_MAX_LEASE_MS);
            break;
        }
        if (rc != TSR_OK)
            break;
        rc = q.op == TSR_CLIENT_LOCK_RELEASE
                 ? tsr_lock_release(l->client, q.name, q.token, &le)
                 : tsr_lock_renew(l->client, q.name, q.token, q.lease_ms, &le);
        if (rc == TSR_ERR_INVALID_ARG) {
            rc = TSR_ERR_NOT_FOUND;
            snprintf(le.message, sizeof(le.message), "lock '%.255s' has no grant with token %llu",
                     q.name, (unsigned long long)q.token);
            hint = "the token is the one 'tessera lock acquire' printed; a grant is gone once "
                   "released or once its lease ran out";
        } else if (rc == TSR_ERR_STALE) {
            hint = "the lease ran out and another holder may have taken the lock; acquire it "
                   "again";
        }
        break;
    case TSR_CLIENT_LOCK_STATUS: {
        tsr_lock_status_t st;
        rc = tsr_lock_status(l->client, q.name, &st, &le);
        if (rc == TSR_OK) {
            st.home = q.home; /* our table is one home of the cluster's view */
            tsr_proto_encode_lock_status(&b, &st);
        }
        break;
    }
    default:
        rc = TSR_ERR_BAD_INPUT;
        snprintf(le.message, sizeof(le.message), "unknown lock operation");
    }
    if (rc == TSR_OK && !b.failed) {
        tsr_rpc_reply(l->t, req, TSR_OK, b.data, b.len);
    } else {
        if (rc == TSR_OK)
            rc = TSR_ERR_NOMEM;
        snprintf(msg, sizeof(msg), "%s", le.message[0] ? le.message : tsr_status_str(rc));
        reply_error(l, req, rc, msg, hint);
    }
    tsr_wbuf_free(&b);
}

static void *job_main(void *arg)
{
    wl_job_t *j = arg;
    tsr_wlock_t *l = j->l;
    run(l, j->req);
    tsr_mem_free(NULL, j);
    pthread_mutex_lock(&l->mu);
    l->running--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void tsr_wlock_on_request(void *arg, tsr_rpc_req_t *req)
{
    tsr_wlock_t *l = arg;
    wl_job_t *j = tsr_mem_calloc(NULL, 1, sizeof(*j));
    pthread_mutex_lock(&l->mu);
    bool ok = j && !l->closing && l->running < MAX_RUNNING;
    if (ok)
        l->running++;
    pthread_mutex_unlock(&l->mu);
    if (ok) {
        j->l = l;
        j->req = req;
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int e = pthread_create(&th, &at, job_main, j);
        pthread_attr_destroy(&at);
        if (e == 0)
            return;
        pthread_mutex_lock(&l->mu);
        l->running--;
        pthread_mutex_unlock(&l->mu);
    }
    tsr_mem_free(NULL, j);
    reply_error(l, req, TSR_ERR_UNAVAILABLE, "the lock's home worker is busy or stopping",
                "try again");
}

bool tsr_wlock_quiesce(tsr_wlock_t *l, int wait_ms)
{
    if (!l)
        return true;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += wait_ms / 1000;
    dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    while (l->running > 0)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) != 0)
            break;
    bool idle = l->running == 0;
    unsigned left = l->running;
    pthread_mutex_unlock(&l->mu);
    if (!idle)
        tsr_sched_log(l->log, "worker",
                      "%u lock request(s) still waiting at shutdown; their clients see the "
                      "worker go away",
                      left);
    return idle;
}

void tsr_wlock_destroy(tsr_wlock_t *l)
{
    if (!l)
        return;
    tsr_lock_client_destroy(l->client);
    tsr_lock_home_destroy(l->home);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    tsr_mem_free(NULL, l);
}
