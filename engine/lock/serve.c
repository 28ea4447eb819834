/*
 * serve.c - the served path: acquire, release and renew as one call each,
 * run by the home on its own words, for clients whose transport has no
 * hardware atomics (docs/locks.md, transports).
 *
 * Why: over TCP UCX emulates every atomic and get with a message that the
 * home's worker executes, so a one-sided acquire costs the home a message per
 * atomic and per poll of every waiter anyway, and a contended hand-over takes
 * four to five round trips (the release, the waiter's poll, its confirming
 * read, its stamp). Served, the home runs the same protocol on the same
 * words with CPU atomics (an embedded client over its own table: the
 * "server client"), a hand-over is the release call plus the grant's reply,
 * and the home's words stay the one truth: served clients, one-sided clients
 * (status is still one-sided) and the home agree on every lock.
 *
 * Call (little-endian): u8 op (LK_OP_*), u8 shared, u16 name length, u32 0,
 * i64 lease_ms, i64 timeout_ms, u64 token, then the name (1..255 bytes).
 * Reply: TSR_OK and the u64 token (acquire/try), TSR_OK and nothing
 * (release/renew), or the lock layer's status with its message as text.
 *
 * Threads: the handler runs on whichever thread progresses the home's
 * transport. Release, renew, try, and an acquire the lock is free for are
 * answered there at once (a try_acquire first: it grants only when nobody
 * waits, so FIFO order holds). An acquire that must wait is queued to a pool
 * of waiter threads (one per waiting call, at most LK_SERVE_MAX; past that
 * the call is refused as TSR_ERR_UNAVAILABLE, "busy"), which answer when
 * granted or timed out. Threads stay for LK_SERVE_IDLE_S after their last
 * call: creating one per contended acquire cost more than the hand-over.
 * Grants live in the server client, keyed by (name, token), like the CLI's
 * on a worker; a served client that dies leaves them to their leases.
 * Stopping cancels the waits (each abandons its ticket and answers
 * TSR_ERR_UNAVAILABLE) and waits for the threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lock_internal.h"

#define LK_SERVE_MAX 256u
#define LK_SERVE_IDLE_S 2
#define LK_CALL_HDR 32u

struct lk_server {
    tsr_lock_home_t *home;
    tsr_lock_client_t *c; /* the server client: embedded on the home's words */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* running changed */
    pthread_cond_t cv_job;    /* a job was queued, or closing */
    pthread_cond_t cv_change; /* a served call may have changed a lock */
    uint64_t gen;             /* served calls that may have changed a lock */
    struct lk_job *jobs;      /* queued waiting acquires (LIFO is fine: each has a thread) */
    unsigned running;         /* waiter threads alive */
    unsigned idle;            /* of which waiting for a job */
    unsigned queued;
    bool closing;
};

typedef struct lk_call {
    int op;
    bool shared;
    int64_t lease_ms, timeout_ms;
    uint64_t token;
    char name[TSR_LOCK_NAME_MAX + 1];
} lk_call_t;

typedef struct lk_job {
    struct lk_job *next;
    lk_server_t *s;
    tsr_rpc_req_t *req;
    lk_call_t call;
} lk_job_t;

/* ---- wire --------------------------------------------------------------------------- */

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t call_encode(const lk_call_t *q, size_t name_len, unsigned char *out)
{
    memset(out, 0, LK_CALL_HDR);
    out[0] = (unsigned char)q->op;
    out[1] = q->shared ? 1 : 0;
    out[2] = (unsigned char)(name_len & 0xff);
    out[3] = (unsigned char)(name_len >> 8);
    put_u64(out + 8, (uint64_t)q->lease_ms);
    put_u64(out + 16, (uint64_t)q->timeout_ms);
    put_u64(out + 24, q->token);
    memcpy(out + LK_CALL_HDR, q->name, name_len);
    return LK_CALL_HDR + name_len;
}

static bool call_decode(const void *data, size_t len, lk_call_t *q)
{
    const unsigned char *p = data;
    if (!p || len < LK_CALL_HDR)
        return false;
    size_t n = (size_t)p[2] | (size_t)p[3] << 8;
    if (n == 0 || n > TSR_LOCK_NAME_MAX || len != LK_CALL_HDR + n || p[0] < LK_OP_ACQUIRE ||
        p[0] > LK_OP_RENEW || p[1] > 1)
        return false;
    q->op = p[0];
    q->shared = p[1] != 0;
    q->lease_ms = (int64_t)get_u64(p + 8);
    q->timeout_ms = (int64_t)get_u64(p + 16);
    q->token = get_u64(p + 24);
    memcpy(q->name, p + LK_CALL_HDR, n);
    q->name[n] = '\0';
    return true;
}

/* ---- the home's side ------------------------------------------------------------------ */

static void answer(lk_server_t *s, tsr_rpc_req_t *req, tsr_status_t rc, const lk_call_t *q,
                   uint64_t token, const tsr_lock_err_t *le)
{
    tsr_transport_t *t = s->home->t;
    if (rc == TSR_OK && (q->op == LK_OP_ACQUIRE || q->op == LK_OP_TRY)) {
        unsigned char b[8];
        put_u64(b, token);
        (void)tsr_rpc_reply(t, req, TSR_OK, b, sizeof(b));
    } else if (rc == TSR_OK) {
        (void)tsr_rpc_reply(t, req, TSR_OK, NULL, 0);
    } else {
        const char *m = le->message[0] ? le->message : tsr_status_str(rc);
        (void)tsr_rpc_reply(t, req, rc, m, strlen(m));
    }
}

/* A served call may have changed a lock: wake the parked waiters. */
static void changed(lk_server_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->gen++;
    pthread_cond_broadcast(&s->cv_change);
    pthread_mutex_unlock(&s->mu);
}

/* The server client's park (lock_internal.h): returns at once when a change
 * came since *seen, else waits for one at most a millisecond. */
static void park(void *arg, uint64_t *seen)
{
    lk_server_t *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->gen == *seen && !s->closing) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&s->cv_change, &s->mu, &dl);
    }
    *seen = s->gen;
    pthread_mutex_unlock(&s->mu);
}

static void run_job(lk_server_t *s, lk_job_t *j)
{
    tsr_lock_err_t le = {0};
    tsr_lock_opts_t o = {j->call.shared ? TSR_LOCK_SHARED : TSR_LOCK_EXCLUSIVE, j->call.lease_ms,
                         j->call.timeout_ms};
    uint64_t token = 0;
    tsr_status_t rc = tsr_lock_acquire(s->c, j->call.name, &o, &token, &le);
    if (rc != TSR_OK)
        changed(s); /* an abandoned ticket may let the queue move */
    answer(s, j->req, rc, &j->call, token, &le);
    tsr_mem_free(NULL, j);
}

static void *waiter_main(void *arg)
{
    lk_server_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->jobs && !s->closing) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += LK_SERVE_IDLE_S;
            s->idle++;
            int e = pthread_cond_timedwait(&s->cv_job, &s->mu, &dl);
            s->idle--;
            if (e != 0 && !s->jobs)
                break;
        }
        lk_job_t *j = s->jobs;
        if (!j)
            break; /* idle too long, or closing with nothing queued */
        s->jobs = j->next;
        s->queued--;
        pthread_mutex_unlock(&s->mu);
        run_job(s, j); /* closing: cancelled at once, answers UNAVAILABLE */
        pthread_mutex_lock(&s->mu);
    }
    s->running--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queues a waiting acquire for the pool (starting a thread when none is
 * idle); false when it cannot be had. */
static bool spawn_wait(lk_server_t *s, tsr_rpc_req_t *req, const lk_call_t *q)
{
    lk_job_t *j = tsr_mem_alloc(NULL, sizeof(*j));
    if (!j)
        return false;
    j->s = s;
    j->req = req;
    j->call = *q;
    pthread_mutex_lock(&s->mu);
    bool start = s->idle <= s->queued; /* every idle thread already has a job coming */
    bool ok = !s->closing && (!start || s->running < LK_SERVE_MAX);
    if (ok) {
        j->next = s->jobs;
        s->jobs = j;
        s->queued++;
        if (start) {
            s->running++;
            pthread_t th;
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
            int e = pthread_create(&th, &at, waiter_main, s);
            pthread_attr_destroy(&at);
            if (e != 0) {
                s->running--;
                s->jobs = j->next;
                s->queued--;
                ok = false;
            }
        } else {
            pthread_cond_signal(&s->cv_job);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        tsr_mem_free(NULL, j);
    return ok;
}

static void serve_handler(void *arg, tsr_rpc_req_t *req)
{
    lk_server_t *s = arg;
    if (!tsr_lock_home_allows(s->home, req))
        return;
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    lk_call_t q;
    tsr_lock_err_t le = {0};
    if (!call_decode(data, len, &q)) {
        snprintf(le.message, sizeof(le.message), "malformed lock call (%zu bytes)", len);
        answer(s, req, TSR_ERR_BAD_INPUT, &q, 0, &le);
        return;
    }
    uint64_t token = 0;
    tsr_status_t rc;
    switch (q.op) {
    case LK_OP_RELEASE:
        rc = tsr_lock_release(s->c, q.name, q.token, &le);
        changed(s);
        break;
    case LK_OP_RENEW:
        rc = tsr_lock_renew(s->c, q.name, q.token, q.lease_ms, &le);
        changed(s); /* activity: a waiter's lease-expiry clock restarts */
        break;
    default: {
        tsr_lock_opts_t o = {q.shared ? TSR_LOCK_SHARED : TSR_LOCK_EXCLUSIVE, q.lease_ms, 0};
        rc = tsr_lock_try_acquire(s->c, q.name, &o, &token, &le);
        if (rc == TSR_ERR_CONFLICT && q.op == LK_OP_ACQUIRE && q.timeout_ms != 0) {
            if (spawn_wait(s, req, &q))
                return; /* the thread answers */
            memset(&le, 0, sizeof(le));
            snprintf(le.message, sizeof(le.message),
                     "lock home: too many waiting calls (%u) or stopping", LK_SERVE_MAX);
            rc = TSR_ERR_UNAVAILABLE;
        }
    }
    }
    answer(s, req, rc, &q, token, &le);
}

tsr_status_t tsr_lock_serve_start(tsr_lock_home_t *h, tsr_error_t *err)
{
    lk_server_t *s = tsr_mem_calloc(NULL, 1, sizeof(*s));
    if (!s)
        return tsr_error_set(err, TSR_ERR_NOMEM, "lock home: out of memory");
    s->home = h;
    tsr_status_t rc = tsr_lock_client_self(h, &s->c, err);
    if (rc != TSR_OK)
        goto err_free_server;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->cv_job, NULL);
    pthread_cond_init(&s->cv_change, NULL);
    s->c->park = park;
    s->c->park_arg = s;
    h->server = s;
    /* Inline (transport.h): the handler runs inside the receive path and
     * answers from there - CPU atomics on the home's words, s->mu held only
     * briefly and never across a transport call; a waiting acquire is
     * handed to a waiter thread (spawn_wait). The allow hook runs there too. */
    rc = tsr_rpc_register_flags(h->t, (uint16_t)(h->rpc_type + 1), serve_handler, s,
                                TSR_RPC_INLINE, err);
    if (rc != TSR_OK)
        goto err_destroy;
    return TSR_OK;

err_destroy:
    h->server = NULL;
    pthread_cond_destroy(&s->cv_change);
    pthread_cond_destroy(&s->cv_job);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tsr_lock_client_destroy(s->c);
err_free_server:
    tsr_mem_free(NULL, s);
    return rc;
}

void tsr_lock_serve_stop(tsr_lock_home_t *h)
{
    lk_server_t *s = h ? h->server : NULL;
    if (!s)
        return;
    /* no new calls reach the handler; then the waits give up (each within
     * one poll: at most a millisecond) and answer UNAVAILABLE */
    (void)tsr_rpc_register(h->t, (uint16_t)(h->rpc_type + 1), NULL, NULL, NULL);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    atomic_store(&s->c->cancel, true);
    pthread_cond_broadcast(&s->cv_job);
    pthread_cond_broadcast(&s->cv_change);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (s->running > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0)
            break;
    bool idle = s->running == 0;
    pthread_mutex_unlock(&s->mu);
    h->server = NULL;
    if (!idle)
        return; /* a thread stuck in the transport: leave it its memory */
    pthread_cond_destroy(&s->cv_change);
    pthread_cond_destroy(&s->cv_job);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tsr_lock_client_destroy(s->c);
    tsr_mem_free(NULL, s);
}

/* ---- the client's side ----------------------------------------------------------------- */

tsr_status_t tsr_lock_served_call(tsr_lock_client_t *c, uint32_t home, int op, const char *name,
                                  bool shared, int64_t lease_ms, int64_t timeout_ms,
                                  uint64_t token_in, uint64_t *token, tsr_error_t *err)
{
    lk_home_ref_t *h = atomic_load(&c->cur[home]);
    lk_call_t q = {.op = op,
                   .shared = shared,
                   .lease_ms = lease_ms,
                   .timeout_ms = timeout_ms,
                   .token = token_in};
    size_t n = strlen(name);
    if (n == 0 || n > TSR_LOCK_NAME_MAX)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lock name of %zu bytes", n);
    memcpy(q.name, name, n);
    unsigned char buf[LK_CALL_HDR + TSR_LOCK_NAME_MAX];
    size_t len = call_encode(&q, n, buf);
    /* the home answers an acquire when its own timeout passes; ours adds
     * one operation's limit for the trip */
    int tmo = c->op_timeout_ms;
    if (op == LK_OP_ACQUIRE) {
        int64_t t = timeout_ms + (int64_t)c->op_timeout_ms;
        tmo = timeout_ms < 0 || t > INT32_MAX ? -1 : (int)t;
    }
    tsr_rpc_msg_t reply = {0};
    tsr_error_t callerr;
    lk_err_init(&callerr);
    tsr_status_t rc = tsr_rpc_call(c->t, h->peer, h->ops_type, buf, len, tmo, &reply, &callerr);
    if (rc == TSR_OK && (op == LK_OP_ACQUIRE || op == LK_OP_TRY)) {
        if (reply.len != 8)
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "lock home %u: malformed reply (%zu bytes)",
                               home, reply.len);
        else
            *token = get_u64(reply.data);
    } else if (rc != TSR_OK && reply.len > 0 && reply.data) {
        /* the home's own status and message */
        tsr_error_set(err, rc, "%.*s", (int)(reply.len < 250 ? reply.len : 250),
                      (const char *)reply.data);
    } else if (rc != TSR_OK) {
        tsr_error_set(err, rc, "lock home %u: %s", home, callerr.message);
    }
    tsr_rpc_msg_release(c->t, &reply);
    return rc;
}
