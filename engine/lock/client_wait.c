/*
 * client_wait.c - the lock protocol's waiting side (client.c has the calls):
 * polling until a ticket's turn comes, and the chores waiters do on the way
 * (docs/locks.md, protocol):
 *
 *   reset      the last one out of a saturated, idle lock word resets it to
 *              the next epoch (counter wrap-around, as DSLR), after moving
 *              word 2's E up to the word's epoch (E never lags by more than
 *              one);
 *   abandoned  a recorded ticket whose turn has come is released by the
 *              waiter that clears its record;
 *   expiry     when grant progress (now counters, epoch, grant word) has not
 *              moved for lease + grace, the holders are presumed dead and
 *              the lock is reset with compare-and-swap from the value
 *              watched;
 *   timeout    a waiter that gives up takes its request back when it is last
 *              in the queue, else records its ticket in an abandon word (or
 *              leaves it to lease expiry when all five are taken).
 *
 * Every decision that moves counters on behalf of someone else is a
 * compare-and-swap on the lock word, so it fails harmlessly when the state
 * changed under it; a grant seen in a polled get is confirmed with an atomic
 * read before it is believed. Between polls the waiter backs off (or parks,
 * for a home's server client: serve.c).
 */
#include <sched.h>
#include <time.h>

#include "lock_internal.h"

/* Between polls. ahead: requests queued before ours (0 = unknown). The head
 * of the queue backs off exponentially to a short cap; those further back
 * sleep in proportion to their distance, as in proportional back-off for
 * ticket locks, so they neither delay the head's detection of its grant nor
 * load the home (over TCP the home's CPU serves every poll: emulated atomics
 * and gets) nor take the CPU from the holder on an oversubscribed machine. */
static void backoff(const lk_op_t *o, unsigned *spins, uint32_t ahead, uint64_t *seen)
{
    if (o->c->park) {
        o->c->park(o->c->park_arg, seen);
        return;
    }
    unsigned n = (*spins)++;
    unsigned us;
    /* the head yields rather than sleeps for a while: a sleep is at least
     * ~60 us here, far longer than a typical hold, and would convoy */
    if ((o->h->local && n < 16) || (ahead == 1 && n < 512)) {
        sched_yield();
        return;
    }
    if (!o->h->local && n < 2)
        return;
    /* exponential for the head (its grant comes after one hold time),
     * proportional to the distance for the others */
    unsigned e = o->h->local ? n - 16 : n - 2;
    unsigned cap = o->h->local ? 40 : 80;
    us = (o->h->local ? 5u : 10u) << (e < 4 ? e : 4);
    if (us > cap)
        us = cap;
    if (ahead > 1)
        us = us * (ahead - 1) > us ? us * (ahead - 1) : us;
    if (us > 1000)
        us = 1000;
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* Before word 1 is reset away from epoch e: word 2's E must be at e, so it
 * never lags word 1 by more than one (moves it forward when it lags). */
static tsr_status_t epoch_sync(const lk_op_t *o, uint32_t e, tsr_error_t *err)
{
    uint64_t cur, got;
    tsr_status_t rc = lk_load(o, LK_W_GRANT, &cur, err);
    while (rc == TSR_OK && (lk_w2_epoch_full(cur) & 0xffu) != e &&
           ((lk_w2_epoch_full(cur) + 1) & 0xffu) == e) {
        rc = lk_cas(o, LK_W_GRANT, cur, cur + LK_E_ONE, &got, err);
        if (rc != TSR_OK || got == cur)
            break;
        cur = got;
    }
    return rc;
}

/* After any change that may leave the word saturated and idle: the last one
 * out resets it to the next epoch (the counters' wrap-around, as DSLR). */
tsr_status_t tsr_lock_after_release(const lk_op_t *o, uint64_t w, tsr_error_t *err)
{
    if (!lk_saturated(w) || !lk_idle(w))
        return TSR_OK;
    uint64_t old;
    tsr_status_t rc = epoch_sync(o, lk_epoch(w), err);
    if (rc != TSR_OK)
        return rc;
    return lk_cas(o, LK_W_LOCK, w, lk_reset_word(w), &old, err);
}

/* Releases a ticket with compare-and-swap, only within its epoch.
 * *released: false when the epoch had moved on (nothing done). */
tsr_status_t tsr_lock_cas_release(const lk_op_t *o, const lk_ticket_t *tk, bool *released,
                                tsr_error_t *err)
{
    uint64_t a;
    *released = false;
    tsr_status_t rc = lk_load(o, LK_W_LOCK, &a, err);
    while (rc == TSR_OK && lk_epoch(a) == tk->epoch) {
        uint64_t n = a + lk_rel(tk->excl), got;
        rc = lk_cas(o, LK_W_LOCK, a, n, &got, err);
        if (rc != TSR_OK)
            break;
        if (got == a) {
            *released = true;
            tsr_lock_cache_note(o, n, 0, false, -1);
            return tsr_lock_after_release(o, n, err);
        }
        a = got;
    }
    return rc;
}

/* An abandoned ticket whose turn has come: the one who clears the record
 * releases it. */
static tsr_status_t resolve_abandoned(const lk_op_t *o, unsigned word, uint64_t rec,
                                      tsr_error_t *err)
{
    uint64_t old, a;
    lk_ticket_t tk = lk_abandon_ticket(rec);
    tsr_status_t rc = lk_load(o, LK_W_LOCK, &a, err);
    if (rc != TSR_OK || !lk_granted(&tk, a))
        return rc; /* the polled view was not current */
    rc = lk_cas(o, word, rec, 0, &old, err);
    if (rc != TSR_OK || old != rec)
        return rc;
    bool released;
    return tsr_lock_cas_release(o, &tk, &released, err);
}


/* Polls until tk is granted (tk NULL: until tickets are handed out again
 * after saturation), the epoch changes, or the deadline (< 0: none) passes.
 * Does the waiters' chores on the way (see the top of the file). */
tsr_status_t tsr_lock_wait_loop(const lk_op_t *o, const lk_ticket_t *tk, uint32_t epoch0,
                              int64_t deadline, int *outcome, int64_t *t_grant, tsr_error_t *err)
{
    uint64_t last_prog = 0, last_grant = 0;
    bool seen = false;
    int64_t t_act = tsr_lock_precise_ms();
    unsigned spins = 0;
    uint64_t parked = 0;
    for (;;) {
        uint64_t w[LK_POLL_WORDS], v, old;
        if (atomic_load_explicit(&o->c->cancel, memory_order_relaxed)) {
            *outcome = LK_WAIT_CANCEL; /* a home's server client is stopping */
            return TSR_OK;
        }
        int64_t t0 = tsr_lock_now_ms(); /* a lease start: early is safe */
        tsr_status_t rc = lk_read(o, w, err);
        if (rc != TSR_OK)
            return rc;
        uint64_t w1 = w[0], w2 = w[1];
        if (lk_epoch(w1) != epoch0) {
            *outcome = LK_WAIT_RESTART;
            return TSR_OK;
        }
        if (tk && lk_granted(tk, w1)) {
            if ((rc = lk_load(o, LK_W_LOCK, &v, err)) != TSR_OK)
                return rc;
            if (lk_granted(tk, v)) {
                *outcome = LK_WAIT_GRANTED;
                *t_grant = t0;
                return TSR_OK;
            }
            continue;
        }
        if (!tk && !lk_saturated(w1)) {
            *outcome = LK_WAIT_RESTART;
            return TSR_OK;
        }
        if (lk_saturated(w1) && lk_idle(w1)) {
            if ((rc = tsr_lock_after_release(o, w1, err)) != TSR_OK)
                return rc;
            continue;
        }
        bool resolved = false;
        for (unsigned k = 0; k < LK_N_ABANDON && !resolved; k++) {
            uint64_t rec = w[LK_W_ABANDON - LK_W_LOCK + k];
            lk_ticket_t ab = lk_abandon_ticket(rec);
            if ((rec & LK_AB_VALID) && ab.epoch == lk_epoch(w1) && lk_granted(&ab, w1)) {
                if ((rc = resolve_abandoned(o, LK_W_ABANDON + k, rec, err)) != TSR_OK)
                    return rc;
                resolved = true;
            }
        }
        if (resolved)
            continue;
        int64_t now = tsr_lock_precise_ms();
        if (!seen || lk_progress(w1) != last_prog || w2 != last_grant) {
            seen = true;
            last_prog = lk_progress(w1);
            last_grant = w2;
            t_act = now;
            spins = 0;
        } else if (now - t_act > lk_expiry_ms(lk_lease_ms(w2))) {
            /* nothing moved for a whole lease: the holders are gone */
            if ((rc = epoch_sync(o, lk_epoch(w1), err)) != TSR_OK)
                return rc;
            if ((rc = lk_cas(o, LK_W_LOCK, w1, lk_reset_word(w1), &old, err)) != TSR_OK)
                return rc;
            if (old == w1) {
                *outcome = LK_WAIT_RESTART;
                return TSR_OK;
            }
            continue;
        }
        if (deadline >= 0 && now >= deadline) {
            *outcome = LK_WAIT_TIMEOUT;
            return TSR_OK;
        }
        uint32_t ahead = 0;
        if (tk)
            ahead = ((tk->tx - lk_now_x(w1)) & LK_FIELD_MASK) +
                    (tk->excl ? ((tk->ts - lk_now_s(w1)) & LK_FIELD_MASK) : 0);
        backoff(o, &spins, ahead, &parked);
    }
}

/* A waiter gives up: its ticket must not block the queue forever. */
tsr_status_t tsr_lock_abandon(const lk_op_t *o, const lk_ticket_t *tk, tsr_error_t *err)
{
    uint64_t w[LK_POLL_WORDS], a, got;
    tsr_status_t rc = lk_read(o, w, err);
    if (rc != TSR_OK || lk_epoch(w[0]) != tk->epoch)
        return rc; /* reset meanwhile: the ticket is void already */
    bool released;
    if ((rc = lk_load(o, LK_W_LOCK, &a, err)) != TSR_OK)
        return rc;
    if (lk_granted(tk, a)) /* granted just now: give it back */
        return tsr_lock_cas_release(o, tk, &released, err);
    /* last in the queue: nobody depends on the ticket, take the request back */
    while (lk_epoch(a) == tk->epoch && !lk_saturated(a) &&
           (tk->excl ? lk_max_x(a) == tk->tx + 1 && lk_max_s(a) == tk->ts
                     : lk_max_s(a) == tk->ts + 1 && lk_max_x(a) == tk->tx)) {
        uint64_t back = a - lk_req(tk->excl);
        if ((rc = lk_cas(o, LK_W_LOCK, a, back, &got, err)) != TSR_OK)
            return rc;
        if (got == a)
            return TSR_OK;
        a = got;
        if (lk_granted(tk, a))
            return tsr_lock_cas_release(o, tk, &released, err);
    }
    /* a free record (or one of an old epoch) */
    uint64_t rec = lk_abandon_rec(tk);
    for (unsigned k = 0; k < LK_N_ABANDON; k++) {
        uint64_t cur = w[LK_W_ABANDON - LK_W_LOCK + k];
        if ((cur & LK_AB_VALID) && lk_abandon_ticket(cur).epoch == tk->epoch)
            continue;
        if ((rc = lk_cas(o, LK_W_ABANDON + k, cur, rec, &got, err)) != TSR_OK)
            return rc;
        if (got != cur)
            continue;
        /* its turn may have come before the record was there */
        if ((rc = lk_load(o, LK_W_LOCK, &a, err)) != TSR_OK)
            return rc;
        if (lk_granted(tk, a))
            return resolve_abandoned(o, LK_W_ABANDON + k, rec, err);
        return TSR_OK;
    }
    return TSR_OK; /* all records taken: lease expiry will clear the queue */
}
