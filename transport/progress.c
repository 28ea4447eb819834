/*
 * progress.c - driving the UCX worker: progress, spin-then-sleep waits,
 * the dispatch queue of user callbacks, and the optional progress thread.
 *
 * Why spin before sleeping: on the virtual machines Tessera runs on, waking a
 * thread that sleeps in poll() costs about 100 us, several times a loopback
 * round trip. A waiter therefore keeps calling ucp_worker_progress for
 * t->spin_ns after the last event, and only then arms the worker
 * (ucp_worker_arm) and sleeps on its event fd. UCS_ERR_BUSY from the arm means
 * events are already pending: progress again instead of sleeping.
 *
 * Several threads may wait at once (a progress thread and callers blocked in
 * tsr_rpc_call). Whoever progresses may complete someone else's operation; a
 * finisher that sees the owner asleep (call->waiter_sleeping, or queued items
 * while it may not dispatch them itself) wakes it with ucp_worker_signal, and
 * no sleep lasts longer than TSR_MAX_SLEEP_MS regardless.
 *
 * Dispatch: items queued by UCX callbacks run here, outside the lock, in
 * FIFO order. A thread-local depth keeps a callback that itself waits (a
 * handler making a blocking call) from running further callbacks nested
 * inside it: the stack stays bounded and handlers never re-enter each other.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Nesting depth of tsr__dispatch on this thread (0: not inside a callback).
 * Thread-local by nature: it describes this thread's stack, not the process. */
static _Thread_local int tsr_dispatch_depth;

int64_t tsr__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int64_t tsr__deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    return tsr__now_ns() + (int64_t)timeout_ms * 1000000ll;
}

void tsr__lock(tsr_transport_t *t)
{
    pthread_mutex_lock(&t->lock);
}

void tsr__unlock(tsr_transport_t *t)
{
    pthread_mutex_unlock(&t->lock);
}

void tsr__enqueue(tsr_transport_t *t, tsr_item_t *it)
{
    it->next = NULL;
    if (t->dq_tail)
        t->dq_tail->next = it;
    else
        t->dq_head = it;
    t->dq_tail = it;
}

tsr_status_t tsr__status_from_ucs(ucs_status_t s)
{
    switch (s) {
    case UCS_OK:
        return TSR_OK;
    case UCS_ERR_NO_MEMORY:
        return TSR_ERR_NOMEM;
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_ENDPOINT_TIMEOUT:
        return TSR_ERR_TIMEOUT;
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
        return TSR_ERR_INVALID_ARG;
    case UCS_ERR_UNSUPPORTED:
        return TSR_ERR_UNSUPPORTED;
    case UCS_ERR_IO_ERROR:
    case UCS_ERR_SHMEM_SEGMENT:
        return TSR_ERR_IO;
    default:
        /* Connection reset, unreachable, canceled, rejected, busy ports ...:
         * for the owner they all mean "that peer cannot be used". */
        return TSR_ERR_UNAVAILABLE;
    }
}

/* Idle spin iterations between clock reads: reading the clock costs about as
 * much as an idle ucp_worker_progress on shared memory, and timeouts are
 * milliseconds, so every 16th pass is precise enough. */
#define TSR_CLOCK_EVERY 16u

unsigned tsr__progress_locked(tsr_transport_t *t)
{
    unsigned n = ucp_worker_progress(t->worker);
    if (t->peer_attention)
        n += tsr__peers_attend_locked(t);
    if (t->earliest_deadline_ns >= 0 && (n > 0 || ++t->scan_tick % TSR_CLOCK_EVERY == 0)) {
        int64_t now = tsr__now_ns();
        if (now >= t->next_scan_ns && now >= t->earliest_deadline_ns) {
            t->next_scan_ns = now + TSR_TIMEOUT_SCAN_NS;
            n += tsr__rpc_expire_locked(t, now);
        }
    }
    return n;
}

unsigned tsr__dispatch(tsr_transport_t *t)
{
    tsr__lock(t);
    tsr_item_t *it = t->dq_head;
    t->dq_head = t->dq_tail = NULL;
    tsr__unlock(t);
    unsigned n = 0;
    tsr_dispatch_depth++;
    while (it) {
        tsr_item_t *next = it->next;
        tsr__run_item(t, it);
        it = next;
        n++;
    }
    tsr_dispatch_depth--;
    return n;
}

/* Whether this thread may run callbacks now (from a blocking call). */
static bool may_dispatch_in_call(const tsr_transport_t *t)
{
    return t->dispatch == TSR_DISPATCH_ANY && tsr_dispatch_depth == 0;
}

/* [L] Wakes sleepers when this thread leaves queued items it will not run. */
static void maybe_signal_locked(tsr_transport_t *t, bool will_dispatch)
{
    if (!will_dispatch && t->dq_head && atomic_load(&t->sleepers) > 0)
        ucp_worker_signal(t->worker);
}

/* Arms the worker and sleeps on its fd until deadline (or the sleep cap).
 * Returns false when arming found events pending (progress instead). */
static bool sleep_on_fd(tsr_transport_t *t, int64_t deadline_ns, bool *sleeping)
{
    tsr__lock(t);
    ucs_status_t st = ucp_worker_arm(t->worker);
    if (st == UCS_ERR_BUSY) {
        tsr__unlock(t);
        return false;
    }
    if (sleeping)
        *sleeping = true;
    atomic_fetch_add(&t->sleepers, 1);
    tsr__unlock(t);

    int ms = TSR_MAX_SLEEP_MS;
    if (deadline_ns >= 0) {
        int64_t left = deadline_ns - tsr__now_ns();
        if (left < 0)
            left = 0;
        int64_t lms = (left + 999999) / 1000000;
        if (lms < ms)
            ms = (int)lms;
    }
    /* st != OK (arm unsupported): the poll still bounds the wait. */
    struct pollfd pfd = {.fd = t->efd, .events = POLLIN};
    if (st == UCS_OK)
        (void)poll(&pfd, 1, ms);
    else
        (void)poll(NULL, 0, ms < 1 ? ms : 1);

    tsr__lock(t);
    atomic_fetch_sub(&t->sleepers, 1);
    if (sleeping)
        *sleeping = false;
    tsr__unlock(t);
    return true;
}

tsr_status_t tsr__wait_cond(tsr_transport_t *t, tsr_cond_fn cond, void *arg,
                            int64_t deadline_ns, bool *sleeping)
{
    bool dispatch = may_dispatch_in_call(t);
    int64_t spin_end = tsr__now_ns() + t->spin_ns;
    unsigned idle = 0;
    for (;;) {
        tsr__lock(t);
        unsigned n = tsr__progress_locked(t);
        bool done = cond(arg);
        bool queued = t->dq_head != NULL;
        maybe_signal_locked(t, dispatch);
        tsr__unlock(t);
        if (dispatch && queued)
            n += tsr__dispatch(t);
        if (done)
            return TSR_OK;
        if (n == 0 && ++idle % TSR_CLOCK_EVERY != 0) {
            __builtin_ia32_pause();
            continue;
        }
        int64_t now = tsr__now_ns();
        if (deadline_ns >= 0 && now >= deadline_ns)
            return TSR_ERR_TIMEOUT;
        if (n > 0) {
            spin_end = now + t->spin_ns;
            continue;
        }
        if (now < spin_end) {
            __builtin_ia32_pause();
            continue;
        }
        if (sleep_on_fd(t, deadline_ns, sleeping))
            spin_end = tsr__now_ns() + t->spin_ns;
    }
}

typedef struct req_wait {
    void *req;
} req_wait_t;

static bool request_done(void *arg)
{
    req_wait_t *w = arg;
    return ucp_request_check_status(w->req) != UCS_INPROGRESS;
}

tsr_status_t tsr__wait_request(tsr_transport_t *t, void *req, int64_t deadline_ns,
                               tsr_peer_t *peer, tsr_error_t *err, const char *what)
{
    if (req == NULL)
        return TSR_OK;
    if (UCS_PTR_IS_ERR(req)) {
        ucs_status_t s = UCS_PTR_STATUS(req);
        return tsr_error_set(err, tsr__status_from_ucs(s), "%s failed: %s", what,
                             ucs_status_string(s));
    }
    req_wait_t w = {req};
    tsr_status_t rc = tsr__wait_cond(t, request_done, &w, deadline_ns, NULL);
    if (rc == TSR_ERR_TIMEOUT) {
        /* UCX cannot cancel a posted RMA/AMO or send; the only way to get our
         * buffers back is to close the endpoint, which completes everything
         * posted on it with an error. A peer that cannot finish one operation
         * within the caller's timeout is treated as failed. */
        tsr__lock(t);
        if (peer)
            tsr__peer_fail_locked(t, peer, TSR_ERR_TIMEOUT, "operation timed out");
        tsr__unlock(t);
        (void)tsr__wait_cond(t, request_done, &w, tsr__deadline(5000), NULL);
    }
    tsr__lock(t);
    ucs_status_t s = ucp_request_check_status(req);
    if (s != UCS_INPROGRESS)
        ucp_request_free(req);
    tsr__unlock(t);
    if (rc == TSR_ERR_TIMEOUT)
        return tsr_error_set(err, TSR_ERR_TIMEOUT, "%s timed out", what);
    if (s != UCS_OK)
        return tsr_error_set(err, tsr__status_from_ucs(s), "%s failed: %s", what,
                             ucs_status_string(s));
    return TSR_OK;
}

unsigned tsr_transport_progress(tsr_transport_t *t)
{
    tsr__lock(t);
    unsigned n = tsr__progress_locked(t);
    bool queued = t->dq_head != NULL;
    bool dispatch = tsr_dispatch_depth == 0;
    maybe_signal_locked(t, dispatch);
    tsr__unlock(t);
    if (queued && dispatch)
        n += tsr__dispatch(t);
    return n;
}

unsigned tsr_transport_wait(tsr_transport_t *t, int timeout_ms)
{
    int64_t deadline = tsr__deadline(timeout_ms);
    int64_t spin_end = tsr__now_ns() + t->spin_ns;
    unsigned idle = 0;
    for (;;) {
        unsigned n = tsr_transport_progress(t);
        if (n > 0)
            return n;
        if (++idle % TSR_CLOCK_EVERY != 0) {
            __builtin_ia32_pause();
            continue;
        }
        int64_t now = tsr__now_ns();
        if (deadline >= 0 && now >= deadline)
            return 0;
        if (t->thread_running && atomic_load(&t->thread_stop) &&
            pthread_equal(pthread_self(), t->thread))
            return 0;
        if (now < spin_end) {
            __builtin_ia32_pause();
            continue;
        }
        if (sleep_on_fd(t, deadline, NULL))
            spin_end = tsr__now_ns() + t->spin_ns;
    }
}

int tsr_transport_fd(const tsr_transport_t *t)
{
    return t->efd;
}

tsr_status_t tsr_transport_arm(tsr_transport_t *t)
{
    tsr__lock(t);
    ucs_status_t st = ucp_worker_arm(t->worker);
    tsr__unlock(t);
    if (st == UCS_ERR_BUSY)
        return TSR_ERR_CONFLICT;
    return st == UCS_OK ? TSR_OK : tsr__status_from_ucs(st);
}

static void *progress_thread(void *arg)
{
    tsr_transport_t *t = arg;
    while (!atomic_load(&t->thread_stop))
        (void)tsr_transport_wait(t, TSR_MAX_SLEEP_MS);
    return NULL;
}

tsr_status_t tsr_transport_start_thread(tsr_transport_t *t, tsr_error_t *err)
{
    if (t->thread_running)
        return TSR_OK;
    atomic_store(&t->thread_stop, false);
    int rc = pthread_create(&t->thread, NULL, progress_thread, t);
    if (rc != 0)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "cannot start the progress thread: %s",
                             strerror(rc));
    t->thread_running = true;
    return TSR_OK;
}

void tsr_transport_stop_thread(tsr_transport_t *t)
{
    if (!t || !t->thread_running)
        return;
    atomic_store(&t->thread_stop, true);
    ucp_worker_signal(t->worker); /* safe from any thread */
    pthread_join(t->thread, NULL);
    t->thread_running = false;
}
