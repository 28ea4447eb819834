/*
 * progress.c - driving the UCX worker: the lock and its owner fast path,
 * progress, spin-then-sleep waits, the dispatch queue of user callbacks, and
 * the optional progress thread.
 *
 * The owner fast path. Every UCX call is serialized by t->lock (the worker
 * is UCS_THREAD_MODE_SERIALIZED), but a thread that *polls* - a blocking
 * call waiting for its own completion, tsr_transport_wait, the progress
 * thread - takes the lock once and keeps it across its polling iterations:
 *
 *   lock (trylock: one atomic when uncontended)
 *   loop: ucp_worker_progress, check the condition,
 *         run queued callbacks (lock released around them),
 *         if t->contenders != 0: hand the lock over (see below)
 *   unlock
 *
 * A thread that finds the lock taken counts itself in t->contenders, spins on
 * trylock for a few microseconds, then sleeps on the lock word (futex; see
 * tsr__lock_slow). The
 * poller reads t->contenders with one relaxed load per iteration (a cache
 * line nobody writes while uncontended, so the load hits L1), and when it is
 * nonzero unlocks and waits (bounded) until the contender got the lock before
 * it competes again - the lock is not fair, and without this the
 * poller would retake the lock at once. For the rest of that wait it then
 * unlocks on every iteration (poll_yield_locked says why). So: one lock pair
 * per operation for the owner, and a contender waits about one
 * ucp_worker_progress.
 *
 * No clock and no PAUSE on the fast path. The poll loop is ucp_worker_progress
 * in a tight loop, as ucx_perftest polls: a PAUSE per idle iteration delayed
 * noticing a message, and under KVM runs of PAUSE trigger pause-loop exits.
 * The clock (clock_gettime: about 40 ns here, more than an idle progress on
 * shared memory) is read every TSR_WAIT_CLOCK_EVERY iterations (fewer where an idle
 * poll is a system call: see clock_stride_adapt), and deadlines of
 * blocking calls are fixed lazily at that first read: an operation that
 * completes within a few polls never reads the clock. Timeouts are
 * milliseconds; they start at most some tens of microseconds late.
 *
 * Why spin before sleeping: on the virtual machines Tessera runs on, waking a
 * thread that sleeps in poll() costs about 100 us, several times a loopback
 * round trip. A waiter therefore keeps polling for t->spin_ns after the last
 * event, and only then arms the worker (ucp_worker_arm) and sleeps on its
 * event fd with the lock released. UCS_ERR_BUSY from the arm means events are
 * already pending: progress again instead of sleeping.
 *
 * Several threads may wait at once (a progress thread and callers blocked in
 * tsr_rpc_call). Whoever progresses may complete someone else's operation; a
 * finisher that sees the owner asleep (call->waiter_sleeping, or queued items
 * while it may not dispatch them itself) wakes it with ucp_worker_signal, and
 * no sleep lasts longer than TSR_MAX_SLEEP_MS regardless.
 *
 * Dispatch: items queued by UCX callbacks run here, outside the lock, in
 * FIFO order; what they leave to free (calls, ops, sends, events) is recycled
 * in the next critical section, so a batch costs one extra lock pair at most,
 * and none when the thread returns right after the batch and nothing needs
 * recycling (a server's handler batch: requests leave with their handlers).
 * A thread-local depth keeps a callback that itself waits (a handler making a
 * blocking call) from running further callbacks nested inside it: the stack
 * stays bounded and handlers never re-enter each other.
 *
 * Inline handlers (TSR_RPC_INLINE) run inside ucp_worker_progress itself
 * (rpc_recv.c). Whether this thread may run one now is the same question
 * as whether it may dispatch (mode, depth), so every polling loop passes
 * that answer to tsr__progress_locked, which holds it in t->inline_ok for
 * exactly the duration of ucp_worker_progress. While an inline handler runs
 * the thread holds the lock; tsr__inline_owner lets reply/drop skip taking
 * it, and tsr__lock_slow aborts instead of deadlocking on anything else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Nesting depth of tsr__dispatch on this thread (0: not inside a callback).
 * Thread-local by nature: it describes this thread's stack, not the process. */
static _Thread_local int tsr_dispatch_depth;

_Thread_local tsr_transport_t *tsr__inline_owner;

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

/* Trylock rounds (one PAUSE each, about 57 ns here) a contender spins
 * before it blocks in the kernel: a polling owner notices it within one
 * iteration, so this usually succeeds without a futex sleep and wake. Kept
 * short: with more threads than cores, spinning burns the time slice the
 * lock holder may need. */
#define TSR_LOCK_SPINS 64u
/* How long (PAUSE rounds) an owner that handed the lock over waits for the
 * contender to take it before competing again. */
#define TSR_HANDOVER_SPINS 100u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The lock word (t->lock): 0 free, 1 held, 2 held and maybe a sleeper
 * (the classic three-state futex mutex). The fast paths are inline in
 * internal.h: lock = CAS 0 -> 1, unlock = exchange to 0 and a FUTEX_WAKE only
 * when the old value was 2. A pthread mutex costs about 3.5 ns more per
 * uncontended pair here (its trylock and unlock check the mutex type and
 * owner), and a round trip takes three pairs. */
static void futex_wait(atomic_int *word, int val)
{
    /* Returns at once when *word != val (EAGAIN), on a wake, or on a signal:
     * the caller re-checks the word either way. */
    (void)syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void tsr__lock_slow(tsr_transport_t *t)
{
    if (tsr__inline_owner == t) {
        /* This thread holds the lock: it runs an inline handler that
         * called a function inline handlers may not call (transport.h).
         * Waiting would never end. */
        fputs("tessera: fatal: a transport function other than reply/drop was called "
              "from an inline RPC handler (TSR_RPC_INLINE, transport.h)\n",
              stderr);
        abort();
    }
    atomic_fetch_add_explicit(&t->contenders, 1, memory_order_relaxed);
    bool got = false;
    for (unsigned i = 0; i < TSR_LOCK_SPINS && !got; i++) {
        cpu_relax();
        int free_ = 0;
        got = atomic_load_explicit(&t->lock, memory_order_relaxed) == 0 &&
              atomic_compare_exchange_strong_explicit(&t->lock, &free_, 1, memory_order_acquire,
                                                      memory_order_relaxed);
    }
    /* Sleep: mark the word 2 ("maybe a sleeper") so the holder's unlock
     * wakes one; taking it with 2 is conservative (one spare wake). */
    if (!got)
        while (atomic_exchange_explicit(&t->lock, 2, memory_order_acquire) != 0)
            futex_wait(&t->lock, 2);
    atomic_fetch_sub_explicit(&t->contenders, 1, memory_order_relaxed);
}

void tsr__unlock_wake(tsr_transport_t *t)
{
    (void)syscall(SYS_futex, (int *)&t->lock, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static inline bool contended(tsr_transport_t *t)
{
    return atomic_load_explicit(&t->contenders, memory_order_relaxed) > 0;
}

/* [L] Called by a polling thread once per iteration. While nobody else wants
 * the lock it keeps it (*shared stays false: the fast path). The first time
 * a contender shows up, it hands the lock over (waiting briefly until the
 * contender has it), and from then on, for the rest of this wait, it
 * releases the lock on every iteration, as a plain per-poll lock would:
 * with more threads than cores, a poller that kept the lock while the
 * scheduler preempted it would stall every other caller for a time slice. */
static void poll_yield_slow_locked(tsr_transport_t *t, bool *shared)
{
    if (!*shared) {
        *shared = true;
        tsr__unlock(t);
        for (unsigned i = 0; i < TSR_HANDOVER_SPINS && contended(t); i++)
            cpu_relax();
        tsr__lock(t);
        return;
    }
    tsr__unlock(t);
    cpu_relax();
    tsr__lock(t);
}

/* The check every polling iteration makes, inline: one relaxed load. */
static inline void poll_yield_locked(tsr_transport_t *t, bool *shared)
{
    if (__builtin_expect(!*shared && !contended(t), 1))
        return;
    poll_yield_slow_locked(t, shared);
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

/* Progress calls between clock reads in tsr__progress_locked's timeout
 * scan: clock_gettime costs about 40 ns here, more than an idle
 * ucp_worker_progress on shared memory, and timeouts are milliseconds. */
#define TSR_CLOCK_EVERY 16u
/* Polling iterations between clock reads in the wait loops: 256 idle polls
 * are 8-15 us on shared memory (a few hundred us over TCP), so a loopback
 * round trip (0.4-0.6 us on shared memory) almost never reads the clock, and
 * deadlines stay precise to well under a millisecond. Activity (progress
 * that did something) does not read the clock either: it only restarts the
 * spin period, fixed at the next read. */
#define TSR_WAIT_CLOCK_EVERY 256u
/* ...but that stride assumes a cheap idle poll. Over TCP an idle
 * ucp_worker_progress is a system call (epoll_wait), 1-3 us, so 256 of them
 * are 0.3-0.8 ms: a waiter "spinning 50 us" really spun half a millisecond
 * of system calls before it slept, and 16 such waiters on 2 cores starved
 * the very server they waited for (bench/RESULTS.md, kv gets over TCP).
 * So each transport measures what a run of idle polls costs and keeps the
 * stride at about TSR_WAIT_CLOCK_NS of polling: 256 on shared memory, a
 * handful over TCP. Only an idle run (no activity, no sleep, no callbacks
 * since the last read) is measured, and the stride moves by at most a
 * factor of 2 per read, so a preempted run costs a few extra clock reads. */
#define TSR_WAIT_CLOCK_NS 10000
#define TSR_WAIT_CLOCK_MIN 4u

/* [L] With params.spin_yield, a spinning waiter offers its core at every
 * clock read (about every TSR_WAIT_CLOCK_NS of idle polling): with more
 * waiters than cores - 16 client processes on 2 cores, each waiting for a
 * reply - spinning took the CPU from the server that was to send those
 * replies (the owner serves one-sided gets over TCP on its CPU), and
 * everyone waited for the scheduler's time slice. sched_yield returns at
 * once when nothing else wants this core, so a lone waiter still spins.
 * Opt-in: beside CPU-bound work (not other waiters) a yield may hand the
 * core over for a whole time slice; on everywhere, a cluster test with a
 * scheduler restart (integration.test_kv_replace) failed on a loaded
 * machine 3 times of 3, and passed without it. The lock stays held: a
 * contender on another core is handed it by poll_yield_locked as before. */
static inline void spin_yield(const tsr_transport_t *t)
{
    if (t->spin_yield)
        (void)sched_yield();
}

/* Adaptive spin (spin_budget.h): callers' waits and a server's waits for
 * requests (tsr_transport_wait) have budgets of their own. Waits that end
 * within the first clock stride (a shared-memory round trip) never reach
 * the budget and cost nothing here. */

/* [L] The spin of a wait starting to spin now. */
static int64_t spin_budget_take(tsr_transport_t *t, tsr_spin_budget_t *b)
{
    return tsr_spin_take(b, t->spin_ns, t->spin_fixed);
}

/* [L] A wait's event came spun_ns after its spin was (re)armed with
 * `budget`. More than a clock stride past the budget means the spinner was
 * preempted (the event came while it was off its core): that says nothing
 * about how long events take, so it counts as the edge of the budget. */
static void spin_budget_hit(tsr_transport_t *t, tsr_spin_budget_t *b, int64_t spun_ns,
                            int64_t budget)
{
    t->stats.spin_hits++;
    int64_t edge = budget + 2 * TSR_WAIT_CLOCK_NS;
    tsr_spin_hit(b, spun_ns < edge ? spun_ns : edge, t->spin_ns, t->spin_fixed);
}

/* [L] A spin ran out: the wait slept. */
static void spin_budget_miss(tsr_transport_t *t, tsr_spin_budget_t *b)
{
    t->stats.spin_misses++;
    tsr_spin_miss(b, t->spin_fixed);
}

/* [L] The current stride of clock reads in the wait loops. */
static inline unsigned clock_stride(const tsr_transport_t *t)
{
    return t->clock_every ? t->clock_every : TSR_WAIT_CLOCK_EVERY;
}

/* [L] Adapts the stride after `polls` idle polls took idle_ns. */
static void clock_stride_adapt(tsr_transport_t *t, unsigned polls, int64_t idle_ns)
{
    unsigned s = clock_stride(t);
    if (polls != s)
        return; /* the stride changed meanwhile (another waiter): measure again */
    if (idle_ns > 2 * TSR_WAIT_CLOCK_NS && s > TSR_WAIT_CLOCK_MIN)
        s = s / 2 > TSR_WAIT_CLOCK_MIN ? s / 2 : TSR_WAIT_CLOCK_MIN;
    else if (idle_ns < TSR_WAIT_CLOCK_NS / 2 && s < TSR_WAIT_CLOCK_EVERY)
        s = s * 2 < TSR_WAIT_CLOCK_EVERY ? s * 2 : TSR_WAIT_CLOCK_EVERY;
    t->clock_every = s;
}

/* Progress calls between two looks at the shared-memory receive FIFOs
 * (shm_guard.c; it reads the clock and looks at most every 50 ms). */
#define TSR_SHM_TICKS 4096u

unsigned tsr__progress_locked(tsr_transport_t *t, bool inline_ok)
{
    t->inline_ok = inline_ok;
    unsigned n = ucp_worker_progress(t->worker);
    t->inline_ok = false;
    if (n > 0 && t->blind_sleepers && !t->blind_signaled) {
        /* it may have completed a sleeper's operation; one signal wakes
         * every sleeper, so none again until one goes back to sleep */
        ucp_worker_signal(t->worker);
        t->blind_signaled = true;
    }
    if (t->peer_attention)
        n += tsr__peers_attend_locked(t);
    if (__builtin_expect(t->shm.n != 0, 0) && ++t->shm.tick % TSR_SHM_TICKS == 0)
        n += tsr__shm_guard_check_locked(t, tsr__now_ns());
    if ((t->earliest_deadline_ns >= 0 || t->timed_ops) &&
        ++t->scan_tick % TSR_CLOCK_EVERY == 0) {
        int64_t now = tsr__now_ns();
        if (t->timed_ops)
            n += tsr__rma_expire_locked(t, now);
        if (t->earliest_deadline_ns >= 0 && now >= t->next_scan_ns &&
            now >= t->earliest_deadline_ns) {
            t->next_scan_ns = now + TSR_TIMEOUT_SCAN_NS;
            n += tsr__rpc_expire_locked(t, now);
        }
    }
    return n;
}

/* [L] Runs the queued callbacks with the lock released. relock: return with
 * the lock held again after recycling what they left; otherwise return
 * *without* the lock (it is retaken only when something must be recycled:
 * a thread that is about to leave saves a lock round after handlers, which
 * take their requests with them). */
static unsigned dispatch_common(tsr_transport_t *t, bool relock)
{
    tsr_item_t *it = t->dq_head;
    t->dq_head = t->dq_tail = NULL;
    if (!it) {
        if (!relock)
            tsr__unlock(t);
        return 0;
    }
    tsr__unlock(t);
    unsigned n = 0;
    tsr_item_t *recycle = NULL;
    tsr_dispatch_depth++;
    while (it) {
        tsr_item_t *next = it->next;
        if (tsr__run_item(t, it)) {
            it->next = recycle;
            recycle = it;
        }
        it = next;
        n++;
    }
    tsr_dispatch_depth--;
    if (!relock && !recycle)
        return n;
    tsr__lock(t);
    while (recycle) {
        tsr_item_t *next = recycle->next;
        tsr__recycle_item_locked(t, recycle);
        recycle = next;
    }
    if (!relock)
        tsr__unlock(t);
    return n;
}

static unsigned dispatch_locked(tsr_transport_t *t)
{
    return dispatch_common(t, true);
}

unsigned tsr__dispatch(tsr_transport_t *t)
{
    tsr__lock(t);
    unsigned n = dispatch_locked(t);
    tsr__unlock(t);
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

/* [L] Arms the worker and sleeps on its fd (lock released) until deadline or
 * the sleep cap. Returns false when arming found events pending (progress
 * instead). */
static bool sleep_on_fd_locked(tsr_transport_t *t, int64_t deadline_ns, bool *sleeping)
{
    /* A sleeper progresses once per wake-up, too rarely for the tick in
     * tsr__progress_locked: look at the shared-memory FIFOs here. */
    if (t->shm.n && tsr__shm_guard_check_locked(t, tsr__now_ns()) > 0)
        return false;
    ucs_status_t st = ucp_worker_arm(t->worker);
    if (st == UCS_ERR_BUSY)
        return false;
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
    return true;
}

tsr_status_t tsr__wait_locked(tsr_transport_t *t, tsr_cond_fn cond, void *arg,
                              int64_t deadline_ns, int timeout_ms, bool *sleeping)
{
    bool dispatch = may_dispatch_in_call(t);
    bool lazy = deadline_ns < 0 && timeout_ms >= 0;
    bool shared = false;   /* see poll_yield_locked */
    int64_t spin_end = -1; /* fixed at the first clock read after activity */
    int64_t spin_from = -1; /* when the spin was last (re)armed (-1: not armed) */
    int64_t budget = -1;    /* this wait's spin, taken once (a probe stays one) */
    unsigned left = clock_stride(t), stride = left;
    /* A budget at nothing (and no probe due) will not spin: read the clock,
     * and so go to sleep, after the first poll. Not before it: UCX wants
     * the worker progressed before it is armed (ucp_worker_arm), and an
     * operation that completes by local progress alone (a flush) has no
     * event to wake the sleeper - it would sleep TSR_MAX_SLEEP_MS. */
    if (tsr_spin_would_not_spin(&t->spin_call, t->spin_fixed))
        left = 1;
    int64_t idle_from = -1; /* the last clock read, while no activity followed it */
    for (;;) {
        unsigned n = tsr__progress_locked(t, dispatch);
        bool done = cond(arg);
        if (t->dq_head) {
            if (dispatch)
                n += dispatch_locked(t);
            else
                maybe_signal_locked(t, false);
        }
        if (done) {
            if (spin_from >= 0)
                spin_budget_hit(t, &t->spin_call, tsr__now_ns() - spin_from, budget);
            return TSR_OK;
        }
        poll_yield_locked(t, &shared);
        if (n > 0) {
            spin_end = -1; /* activity: the spin restarts at the next clock read */
            spin_from = -1;
            idle_from = -1;
        }
        /* Counted whether or not anything happened, so a wait amid steady
         * traffic still meets its deadline. */
        if (--left != 0)
            continue; /* the tight loop: progress again at once */
        int64_t now = tsr__now_ns();
        if (idle_from >= 0)
            clock_stride_adapt(t, stride, now - idle_from);
        idle_from = now;
        left = stride = clock_stride(t);
        if (lazy) {
            deadline_ns = now + (int64_t)timeout_ms * 1000000ll;
            lazy = false;
        }
        if (deadline_ns >= 0 && now >= deadline_ns)
            return TSR_ERR_TIMEOUT;
        if (spin_end < 0) {
            if (budget < 0)
                budget = spin_budget_take(t, &t->spin_call);
            /* (re)armed: a hit's spin counts from here, so callbacks run
             * and activity seen meanwhile do not count as spinning */
            spin_from = now;
            spin_end = now + budget;
            if (budget > 0)
                continue;
            /* nothing to spin: sleep now, not after another stride of
             * polls (over TCP each is an epoll_wait) */
        }
        if (now < spin_end) {
            spin_yield(t);
            continue;
        }
        idle_from = -1;
        /* Nobody signals a waiter without a `sleeping` flag when another
         * thread's progress completes its operation (RMA, atomics):
         * tsr__progress_locked does, while such sleepers exist. */
        if (!sleeping) {
            t->blind_sleepers++;
            t->blind_signaled = false;
        }
        bool slept = sleep_on_fd_locked(t, deadline_ns, sleeping);
        if (!sleeping)
            t->blind_sleepers--;
        if (slept) { /* the spin ran out; false: events pending, progress again */
            spin_budget_miss(t, &t->spin_call);
            spin_end = spin_from = budget = -1;
        }
    }
}

tsr_status_t tsr__wait_cond(tsr_transport_t *t, tsr_cond_fn cond, void *arg,
                            int64_t deadline_ns, bool *sleeping)
{
    tsr__lock(t);
    tsr_status_t rc = tsr__wait_locked(t, cond, arg, deadline_ns, -1, sleeping);
    tsr__unlock(t);
    return rc;
}

typedef struct req_wait {
    void *req;
} req_wait_t;

static bool request_done(void *arg)
{
    req_wait_t *w = arg;
    return ucp_request_check_status(w->req) != UCS_INPROGRESS;
}

/* [L] The common part of both request waits. */
static tsr_status_t wait_request_locked(tsr_transport_t *t, void *req, int64_t deadline_ns,
                                        int timeout_ms, tsr_peer_t *peer, tsr_error_t *err,
                                        const char *what)
{
    if (req == NULL)
        return TSR_OK; /* completed inside the *_nbx call */
    if (UCS_PTR_IS_ERR(req)) {
        ucs_status_t s = UCS_PTR_STATUS(req);
        return tsr_error_set(err, tsr__status_from_ucs(s), "%s failed: %s", what,
                             ucs_status_string(s));
    }
    req_wait_t w = {req};
    tsr_status_t rc = TSR_OK;
    if (ucp_request_check_status(req) == UCS_INPROGRESS)
        rc = tsr__wait_locked(t, request_done, &w, deadline_ns, timeout_ms, NULL);
    if (rc == TSR_ERR_TIMEOUT) {
        /* UCX cannot cancel a posted RMA/AMO or send; the only way to get our
         * buffers back is to close the endpoint, which completes everything
         * posted on it with an error. A peer that cannot finish one operation
         * within the caller's timeout is treated as failed. */
        if (peer)
            tsr__peer_fail_locked(t, peer, TSR_ERR_TIMEOUT, "operation timed out");
        (void)tsr__wait_locked(t, request_done, &w, tsr__deadline(5000), -1, NULL);
    }
    ucs_status_t s = ucp_request_check_status(req);
    if (s != UCS_INPROGRESS)
        ucp_request_free(req);
    if (rc == TSR_ERR_TIMEOUT)
        return tsr_error_set(err, TSR_ERR_TIMEOUT, "%s timed out", what);
    if (s != UCS_OK)
        return tsr_error_set(err, tsr__status_from_ucs(s), "%s failed: %s", what,
                             ucs_status_string(s));
    return TSR_OK;
}

tsr_status_t tsr__wait_request_locked(tsr_transport_t *t, void *req, int timeout_ms,
                                      tsr_peer_t *peer, tsr_error_t *err, const char *what)
{
    return wait_request_locked(t, req, -1, timeout_ms, peer, err, what);
}

tsr_status_t tsr__wait_request(tsr_transport_t *t, void *req, int64_t deadline_ns,
                               tsr_peer_t *peer, tsr_error_t *err, const char *what)
{
    tsr__lock(t);
    tsr_status_t rc = wait_request_locked(t, req, deadline_ns, -1, peer, err, what);
    tsr__unlock(t);
    return rc;
}

unsigned tsr_transport_progress(tsr_transport_t *t)
{
    tsr__lock(t);
    unsigned n = tsr__progress_locked(t, tsr_dispatch_depth == 0);
    if (t->dq_head) {
        if (tsr_dispatch_depth == 0)
            return n + dispatch_common(t, false); /* returns unlocked */
        maybe_signal_locked(t, false);
    }
    tsr__unlock(t);
    return n;
}

/* Whether this thread is the progress thread and was told to stop. */
static bool thread_told_to_stop(tsr_transport_t *t)
{
    return t->thread_running && atomic_load(&t->thread_stop) &&
           pthread_equal(pthread_self(), t->thread);
}

unsigned tsr_transport_wait(tsr_transport_t *t, int timeout_ms)
{
    bool dispatch = tsr_dispatch_depth == 0;
    int64_t deadline = -1; /* fixed at the first clock read (lazily) */
    int64_t spin_end = -1;
    int64_t spin_from = -1; /* when the spin was last (re)armed (-1: not armed) */
    int64_t budget = -1;    /* this wait's spin, taken once */
    int64_t idle_from = -1; /* the last clock read (every poll since was idle) */
    unsigned n = 0;
    bool shared = false; /* see poll_yield_locked */
    tsr__lock(t);
    unsigned left = clock_stride(t), stride = left;
    if (tsr_spin_would_not_spin(&t->spin_serve, t->spin_fixed))
        left = 1; /* as in tsr__wait_locked */
    for (;;) {
        n = tsr__progress_locked(t, dispatch);
        /* an event for this wait: not items it may not run (dispatch
         * false), which stay queued while it goes on waiting */
        if ((n > 0 || (dispatch && t->dq_head)) && spin_from >= 0) {
            spin_budget_hit(t, &t->spin_serve, tsr__now_ns() - spin_from, budget);
            spin_from = -1;
        }
        if (t->dq_head) {
            /* Items count as events, so this wait ends after running
             * them: leave without retaking the lock. */
            if (dispatch)
                return n + dispatch_common(t, false);
            maybe_signal_locked(t, false);
        }
        if (n > 0)
            break;
        poll_yield_locked(t, &shared);
        if (--left != 0)
            continue;
        if (thread_told_to_stop(t))
            break;
        int64_t now = tsr__now_ns();
        if (idle_from >= 0)
            clock_stride_adapt(t, stride, now - idle_from);
        idle_from = now;
        left = stride = clock_stride(t);
        if (deadline < 0 && timeout_ms >= 0)
            deadline = now + (int64_t)timeout_ms * 1000000ll;
        if (deadline >= 0 && now >= deadline)
            break;
        if (spin_end < 0) {
            if (budget < 0)
                budget = spin_budget_take(t, &t->spin_serve);
            spin_from = now;
            spin_end = now + budget;
        }
        if (now < spin_end) {
            spin_yield(t);
            continue;
        }
        idle_from = -1;
        if (sleep_on_fd_locked(t, deadline, NULL)) {
            spin_budget_miss(t, &t->spin_serve);
            spin_end = spin_from = budget = -1;
        }
    }
    tsr__unlock(t);
    return n;
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
