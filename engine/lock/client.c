/*
 * client.c - the lock protocol, run by the clients on the homes' words.
 *
 * Everything here is one-sided: 64-bit fetch-and-add, compare-and-swap and
 * reads of the slot words (lock_internal.h), as CPU atomics on an embedded
 * home and as UCX atomics / gets on a remote one. The home never runs code.
 *
 *   acquire    FA(lock, req) -> ticket; granted at once when the old value
 *              says so (uncontended: one round trip), else poll until
 *              granted; then FA(grant, 1<<20 [+ lease fix-up]) -> token.
 *              Uncontended exclusive acquire+release = 3 atomics.
 *   release    FA(lock, rel) while the lease has a margin left; after that a
 *              compare-and-swap that fails if the lock was reset (epoch).
 *   waiting    polls words 1..7 (one get). It also does the protocol's chores:
 *              resets a saturated idle word (counter wrap, DSLR-style), skips
 *              an abandoned ticket whose turn has come, and resets the lock
 *              when grant progress (now counters, epoch, grant word) has not
 *              moved for lease + grace: the holders are presumed dead.
 *   timeout    a waiter that gives up takes its request back when it is last
 *              in the queue; else it records its ticket in an abandon word
 *              so the waiters behind it release it when its turn comes
 *              (falls back to lease expiry when all five records are taken).
 *   try        compare-and-swap from a free word only: never queues.
 *
 * Every decision that moves counters on behalf of someone else (resets,
 * abandoned tickets) is a compare-and-swap on the lock word, so it fails
 * harmlessly when the state changed under it; a grant seen in a polled get
 * is confirmed with an atomic read before it is believed.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "lock_internal.h"

/* One call's view of one lock. */
typedef struct lk_op {
    tsr_lock_client_t *c;
    lk_home_ref_t *h;
    uint32_t home, slot;
    uint64_t id;
    const char *name;
} lk_op_t;

/* ---- word operations ----------------------------------------------------------------- */

static uint64_t woff(uint32_t slot, unsigned w)
{
    return ((uint64_t)slot * LK_SLOT_WORDS + w) * 8u;
}

static _Atomic uint64_t *wptr(const lk_op_t *o, unsigned w)
{
    return &o->h->local[(size_t)o->slot * LK_SLOT_WORDS + w];
}

static tsr_status_t op_fadd(const lk_op_t *o, unsigned w, uint64_t add, uint64_t *old,
                            tsr_error_t *err)
{
    if (o->h->local) {
        *old = atomic_fetch_add(wptr(o, w), add);
        return TSR_OK;
    }
    return tsr_atomic_fadd(o->c->t, o->h->rkey, woff(o->slot, w), add, old, o->c->op_timeout_ms,
                           err);
}

static tsr_status_t op_cas(const lk_op_t *o, unsigned w, uint64_t cmp, uint64_t val,
                           uint64_t *old, tsr_error_t *err)
{
    if (o->h->local) {
        uint64_t e = cmp;
        atomic_compare_exchange_strong(wptr(o, w), &e, val);
        *old = e;
        return TSR_OK;
    }
    return tsr_atomic_cswap(o->c->t, o->h->rkey, woff(o->slot, w), cmp, val, old,
                            o->c->op_timeout_ms, err);
}

/* An atomic read (a get may tear across concurrent atomics on some wires). */
static tsr_status_t op_load(const lk_op_t *o, unsigned w, uint64_t *v, tsr_error_t *err)
{
    if (o->h->local) {
        *v = atomic_load(wptr(o, w));
        return TSR_OK;
    }
    return op_fadd(o, w, 0, v, err);
}

/* Words 1..7 in one round trip (for polling; decisions are confirmed). */
static tsr_status_t op_read(const lk_op_t *o, uint64_t out[LK_POLL_WORDS], tsr_error_t *err)
{
    if (o->h->local) {
        for (unsigned i = 0; i < LK_POLL_WORDS; i++)
            out[i] = atomic_load(wptr(o, LK_W_LOCK + i));
        return TSR_OK;
    }
    return tsr_rma_get(o->c->t, o->h->rkey, woff(o->slot, LK_W_LOCK), out, 8 * LK_POLL_WORDS,
                       o->c->op_timeout_ms, err);
}

/* Between polls. ahead: requests queued before ours (0 = unknown). The head
 * of the queue backs off exponentially to a short cap; those further back
 * sleep in proportion to their distance, as in proportional back-off for
 * ticket locks, so they neither delay the head's detection of its grant nor
 * load the home (over TCP the home's CPU serves every poll: emulated atomics
 * and gets) nor take the CPU from the holder on an oversubscribed machine. */
static void backoff(const lk_op_t *o, unsigned *spins, uint32_t ahead)
{
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

/* ---- cache and holdings ------------------------------------------------------------------- */

static lk_cache_ent_t *cache_ent(tsr_lock_client_t *c, uint32_t home, uint64_t id)
{
    return &c->cache[(size_t)home * LK_CACHE + ((id >> 3) & (LK_CACHE - 1))];
}

static void cache_note(lk_op_t *o, uint64_t w1, uint64_t low, bool set_low)
{
    pthread_mutex_lock(&o->c->mu);
    lk_cache_ent_t *e = cache_ent(o->c, o->home, o->id);
    if (e->id == o->id) {
        e->w1_guess = w1;
        if (set_low)
            e->low_guess = low;
    }
    pthread_mutex_unlock(&o->c->mu);
}

/* Finds (claim: or takes) the slot of o->id on its home; *w1g and *lowg
 * (may be NULL) get the cached guesses of the lock word and the grant
 * word's low bits (0 when unknown). */
static tsr_status_t find_slot(lk_op_t *o, bool claim, uint64_t *w1g, uint64_t *lowg,
                              tsr_error_t *err)
{
    tsr_lock_client_t *c = o->c;
    pthread_mutex_lock(&c->mu);
    lk_cache_ent_t *e = cache_ent(c, o->home, o->id);
    bool hit = e->id == o->id;
    if (hit) {
        o->slot = e->slot;
        if (w1g)
            *w1g = e->w1_guess;
        if (lowg)
            *lowg = e->low_guess;
    }
    pthread_mutex_unlock(&c->mu);
    if (hit)
        return TSR_OK;
    uint32_t n = o->h->nslots;
    uint32_t start = (uint32_t)((o->id >> 7) % n);
    uint32_t probes = n < LK_MAX_PROBES ? n : LK_MAX_PROBES;
    for (uint32_t i = 0; i < probes; i++) {
        o->slot = (start + i) % n;
        uint64_t old;
        tsr_status_t rc = claim ? op_cas(o, LK_W_ID, 0, o->id, &old, err)
                                : op_load(o, LK_W_ID, &old, err);
        if (rc != TSR_OK)
            return rc;
        if (old == o->id || (claim && old == 0)) {
            if (w1g)
                *w1g = 0;
            if (lowg)
                *lowg = 0;
            pthread_mutex_lock(&c->mu);
            e = cache_ent(c, o->home, o->id);
            e->id = o->id;
            e->slot = o->slot;
            e->w1_guess = 0;
            e->low_guess = 0;
            pthread_mutex_unlock(&c->mu);
            return TSR_OK;
        }
        if (old == 0)
            return tsr_error_set(err, TSR_ERR_NOT_FOUND, "no lock named '%s' (never acquired)",
                                 o->name);
    }
    if (!claim)
        return tsr_error_set(err, TSR_ERR_NOT_FOUND, "no lock named '%s' (never acquired)",
                             o->name);
    return tsr_error_set(err, TSR_ERR_NOMEM,
                         "lock table of home %u is full around lock '%s' (%u slots)", o->home,
                         o->name, n);
}

/* Records a grant; an exclusive one also notes the grant word's low bits it
 * wrote (the next exclusive stamp's guess), in the same critical section. */
static tsr_status_t hold_add(tsr_lock_client_t *c, const lk_holding_t *h, tsr_error_t *err)
{
    pthread_mutex_lock(&c->mu);
    int r = tsr_mem_grow(NULL, (void **)&c->held, &c->capheld, c->nheld + 1, sizeof(*c->held));
    if (r == 0)
        c->held[c->nheld++] = *h;
    lk_cache_ent_t *e = cache_ent(c, h->home, h->id);
    if (h->ticket.excl && e->id == h->id)
        e->low_guess = h->low;
    pthread_mutex_unlock(&c->mu);
    return r == 0 ? TSR_OK : tsr_error_set(err, TSR_ERR_NOMEM, "lock client: out of memory");
}

/* Finds the holding; take: removes it. Returns false when not held. */
static bool hold_find(tsr_lock_client_t *c, uint64_t id, uint64_t token, bool take,
                      lk_holding_t *out)
{
    bool found = false;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nheld; i++) {
        if (c->held[i].id != id || c->held[i].token != token)
            continue;
        *out = c->held[i];
        if (take)
            c->held[i] = c->held[--c->nheld];
        found = true;
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static void hold_update(tsr_lock_client_t *c, const lk_holding_t *h)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nheld; i++)
        if (c->held[i].id == h->id && c->held[i].token == h->token)
            c->held[i] = *h;
    pthread_mutex_unlock(&c->mu);
}

/* ---- protocol pieces ------------------------------------------------------------------------ */

/* After any change that may leave the word saturated and idle: the last one
 * out resets it to the next epoch (the counters' wrap-around, as DSLR). */
static tsr_status_t after_release(const lk_op_t *o, uint64_t w, tsr_error_t *err)
{
    if (!lk_saturated(w) || !lk_idle(w))
        return TSR_OK;
    uint64_t old;
    return op_cas(o, LK_W_LOCK, w, lk_reset_word(w), &old, err);
}

/* Releases a ticket with compare-and-swap, only within its epoch.
 * *released: false when the epoch had moved on (nothing done). */
static tsr_status_t cas_release(const lk_op_t *o, const lk_ticket_t *tk, bool *released,
                                tsr_error_t *err)
{
    uint64_t a;
    *released = false;
    tsr_status_t rc = op_load(o, LK_W_LOCK, &a, err);
    while (rc == TSR_OK && lk_epoch(a) == tk->epoch) {
        uint64_t n = a + lk_rel(tk->excl), got;
        rc = op_cas(o, LK_W_LOCK, a, n, &got, err);
        if (rc != TSR_OK)
            break;
        if (got == a) {
            *released = true;
            cache_note((lk_op_t *)o, n, 0, false);
            return after_release(o, n, err);
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
    tsr_status_t rc = op_load(o, LK_W_LOCK, &a, err);
    if (rc != TSR_OK || !lk_granted(&tk, a))
        return rc; /* the polled view was not current */
    rc = op_cas(o, word, rec, 0, &old, err);
    if (rc != TSR_OK || old != rec)
        return rc;
    bool released;
    return cas_release(o, &tk, &released, err);
}

enum { W_GRANTED = 1, W_RESTART = 2, W_TIMEOUT = 3 };

/* Polls until tk is granted (tk NULL: until tickets are handed out again
 * after saturation), the epoch changes, or the deadline (< 0: none) passes.
 * Does the waiters' chores on the way (see the top of the file). */
static tsr_status_t wait_loop(const lk_op_t *o, const lk_ticket_t *tk, uint32_t epoch0,
                              int64_t deadline, int *outcome, int64_t *t_grant, tsr_error_t *err)
{
    uint64_t last_prog = 0, last_grant = 0;
    bool seen = false;
    int64_t t_act = tsr_lock_precise_ms();
    unsigned spins = 0;
    for (;;) {
        uint64_t w[LK_POLL_WORDS], v, old;
        int64_t t0 = tsr_lock_now_ms(); /* a lease start: early is safe */
        tsr_status_t rc = op_read(o, w, err);
        if (rc != TSR_OK)
            return rc;
        uint64_t w1 = w[0], w2 = w[1];
        if (lk_epoch(w1) != epoch0) {
            *outcome = W_RESTART;
            return TSR_OK;
        }
        if (tk && lk_granted(tk, w1)) {
            if ((rc = op_load(o, LK_W_LOCK, &v, err)) != TSR_OK)
                return rc;
            if (lk_granted(tk, v)) {
                *outcome = W_GRANTED;
                *t_grant = t0;
                return TSR_OK;
            }
            continue;
        }
        if (!tk && !lk_saturated(w1)) {
            *outcome = W_RESTART;
            return TSR_OK;
        }
        if (lk_saturated(w1) && lk_idle(w1)) {
            if ((rc = after_release(o, w1, err)) != TSR_OK)
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
            if ((rc = op_cas(o, LK_W_LOCK, w1, lk_reset_word(w1), &old, err)) != TSR_OK)
                return rc;
            if (old == w1) {
                *outcome = W_RESTART;
                return TSR_OK;
            }
            continue;
        }
        if (deadline >= 0 && now >= deadline) {
            *outcome = W_TIMEOUT;
            return TSR_OK;
        }
        uint32_t ahead = 0;
        if (tk)
            ahead = ((tk->tx - lk_now_x(w1)) & LK_FIELD_MASK) +
                    (tk->excl ? ((tk->ts - lk_now_s(w1)) & LK_FIELD_MASK) : 0);
        backoff(o, &spins, ahead);
    }
}

/* A waiter gives up: its ticket must not block the queue forever. */
static tsr_status_t abandon(const lk_op_t *o, const lk_ticket_t *tk, tsr_error_t *err)
{
    uint64_t w[LK_POLL_WORDS], a, got;
    tsr_status_t rc = op_read(o, w, err);
    if (rc != TSR_OK || lk_epoch(w[0]) != tk->epoch)
        return rc; /* reset meanwhile: the ticket is void already */
    bool released;
    if ((rc = op_load(o, LK_W_LOCK, &a, err)) != TSR_OK)
        return rc;
    if (lk_granted(tk, a)) /* granted just now: give it back */
        return cas_release(o, tk, &released, err);
    /* last in the queue: nobody depends on the ticket, take the request back */
    while (lk_epoch(a) == tk->epoch && !lk_saturated(a) &&
           (tk->excl ? lk_max_x(a) == tk->tx + 1 && lk_max_s(a) == tk->ts
                     : lk_max_s(a) == tk->ts + 1 && lk_max_x(a) == tk->tx)) {
        uint64_t back = a - lk_req(tk->excl);
        if ((rc = op_cas(o, LK_W_LOCK, a, back, &got, err)) != TSR_OK)
            return rc;
        if (got == a)
            return TSR_OK;
        a = got;
        if (lk_granted(tk, a))
            return cas_release(o, tk, &released, err);
    }
    /* a free record (or one of an old epoch) */
    uint64_t rec = lk_abandon_rec(tk);
    for (unsigned k = 0; k < LK_N_ABANDON; k++) {
        uint64_t cur = w[LK_W_ABANDON - LK_W_LOCK + k];
        if ((cur & LK_AB_VALID) && lk_abandon_ticket(cur).epoch == tk->epoch)
            continue;
        if ((rc = op_cas(o, LK_W_ABANDON + k, cur, rec, &got, err)) != TSR_OK)
            return rc;
        if (got != cur)
            continue;
        /* its turn may have come before the record was there */
        if ((rc = op_load(o, LK_W_LOCK, &a, err)) != TSR_OK)
            return rc;
        if (lk_granted(tk, a))
            return resolve_abandoned(o, LK_W_ABANDON + k, rec, err);
        return TSR_OK;
    }
    return TSR_OK; /* all records taken: lease expiry will clear the queue */
}

/* The grantee's second atomic: takes the token, publishes mode and lease.
 * Exclusive: nobody else writes the grant word while we hold, so a guessed
 * fix-up of the low bits is folded into the same add (one round trip when
 * the guess is right, two when not). Shared: co-holders race, so the lease is
 * raised to the maximum with compare-and-swap. */
static tsr_status_t stamp(const lk_op_t *o, bool excl, int64_t lease_ms, uint64_t guess,
                          uint64_t *token, uint64_t *low_out, tsr_error_t *err)
{
    uint64_t low = lk_grant_low(excl, lease_ms), old, got;
    tsr_status_t rc;
    if (excl) {
        rc = op_fadd(o, LK_W_GRANT, LK_TOKEN_ONE + (low - guess), &old, err);
        if (rc != TSR_OK)
            return rc;
        if ((old & LK_GRANT_LOW_MASK) != guess)
            rc = op_fadd(o, LK_W_GRANT, guess - (old & LK_GRANT_LOW_MASK), &got, err);
    } else {
        rc = op_fadd(o, LK_W_GRANT, LK_TOKEN_ONE, &old, err);
        uint64_t cur = old + LK_TOKEN_ONE;
        while (rc == TSR_OK) {
            uint64_t l = cur & LK_GRANT_LOW_MASK;
            if (!(l & LK_MODE_X) && (l & LK_LEASE_MASK) >= (low & LK_LEASE_MASK))
                break;
            uint64_t keep = (l & LK_MODE_X) ? 0 : (l & LK_LEASE_MASK);
            uint64_t want = (cur & ~LK_GRANT_LOW_MASK) | (keep > low ? keep : low);
            rc = op_cas(o, LK_W_GRANT, cur, want, &got, err);
            if (rc != TSR_OK || got == cur)
                break;
            cur = got;
        }
    }
    if (rc != TSR_OK)
        return rc;
    *token = lk_token(old) + 1;
    *low_out = low;
    return TSR_OK;
}

/* ---- public calls ------------------------------------------------------------------------- */

static tsr_status_t check_lease(int64_t *lease_ms, tsr_error_t *err)
{
    if (*lease_ms < 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lease %lld ms is negative",
                             (long long)*lease_ms);
    if (*lease_ms == 0)
        *lease_ms = TSR_LOCK_DEFAULT_LEASE_MS;
    if (*lease_ms > TSR_LOCK_MAX_LEASE_MS)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lease %lld ms is longer than %d ms",
                             (long long)*lease_ms, TSR_LOCK_MAX_LEASE_MS);
    return TSR_OK;
}

static tsr_status_t op_init(tsr_lock_client_t *c, const char *name, lk_op_t *o, tsr_error_t *err)
{
    size_t len;
    if (!c)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lock client is NULL");
    tsr_status_t rc = tsr_lock_check_name(name, &len, err);
    if (rc != TSR_OK)
        return rc;
    uint64_t hash = tsr_hash_bytes(name, len);
    o->c = c;
    o->id = hash | 1;
    o->home = c->nhomes == 1 ? 0
                             : (uint32_t)(tsr_hash_u64(hash ^ 0x6c6f636b686f6d65ull) % c->nhomes);
    o->h = &c->homes[o->home];
    o->name = name;
    o->slot = 0;
    return TSR_OK;
}

static tsr_status_t acquire(tsr_lock_client_t *c, const char *name, const tsr_lock_opts_t *opts,
                            bool try_only, uint64_t *token, tsr_error_t *err)
{
    lk_op_t o;
    tsr_lock_opts_t def = {TSR_LOCK_EXCLUSIVE, 0, -1};
    if (!opts)
        opts = &def;
    tsr_status_t rc = op_init(c, name, &o, err);
    if (rc != TSR_OK)
        return rc;
    if (!token)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "acquire: no token output");
    if (opts->mode != TSR_LOCK_EXCLUSIVE && opts->mode != TSR_LOCK_SHARED)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lock mode %d unknown", (int)opts->mode);
    int64_t lease = opts->lease_ms;
    if ((rc = check_lease(&lease, err)) != TSR_OK)
        return rc;
    if (opts->timeout_ms == 0)
        try_only = true;
    uint64_t guess = 0, low_guess = 0;
    if ((rc = find_slot(&o, true, &guess, &low_guess, err)) != TSR_OK)
        return rc;
    bool excl = opts->mode == TSR_LOCK_EXCLUSIVE;
    uint64_t req = lk_req(excl), old, got;
    int64_t t_grant = tsr_lock_now_ms();
    /* the deadline is set when waiting starts (precise clock, counted from
     * a little after the call: never early) */
    int64_t deadline = -2;
    lk_ticket_t tk;

    if (try_only) {
        for (int attempt = 0;; attempt++) {
            bool free_now = !lk_saturated(guess) &&
                            (excl ? lk_idle(guess) : lk_now_x(guess) == lk_max_x(guess));
            if (!free_now) {
                if (attempt > 0)
                    return tsr_error_set(err, TSR_ERR_CONFLICT, "lock '%s' is busy", name);
                if ((rc = op_load(&o, LK_W_LOCK, &guess, err)) != TSR_OK)
                    return rc;
                continue;
            }
            t_grant = tsr_lock_now_ms();
            if ((rc = op_cas(&o, LK_W_LOCK, guess, guess + req, &got, err)) != TSR_OK)
                return rc;
            if (got == guess)
                break;
            guess = got;
            if (attempt > 16)
                return tsr_error_set(err, TSR_ERR_CONFLICT, "lock '%s' is busy", name);
        }
        tk = lk_ticket_of(guess, excl);
        cache_note(&o, guess + req, 0, false);
        goto granted;
    }

    for (;;) {
        if ((rc = op_fadd(&o, LK_W_LOCK, req, &old, err)) != TSR_OK)
            return rc;
        int outcome;
        tk = lk_ticket_of(old, excl);
        bool now_granted = !lk_saturated(old) && lk_granted(&tk, old);
        if (now_granted)
            break;
        if (deadline == -2)
            deadline = opts->timeout_ms < 0 ? -1 : tsr_lock_precise_ms() + opts->timeout_ms;
        if (lk_saturated(old)) {
            /* no valid ticket left in this epoch: undo, wait for the reset */
            if ((rc = op_fadd(&o, LK_W_LOCK, (uint64_t)0 - req, &got, err)) != TSR_OK)
                return rc;
            if ((rc = after_release(&o, got - req, err)) != TSR_OK)
                return rc;
            rc = wait_loop(&o, NULL, lk_epoch(old), deadline, &outcome, &t_grant, err);
            if (rc != TSR_OK)
                return rc;
            if (outcome == W_TIMEOUT)
                return tsr_error_set(err, TSR_ERR_TIMEOUT, "lock '%s' not granted within %lld ms",
                                     name, (long long)opts->timeout_ms);
            t_grant = tsr_lock_now_ms();
            continue;
        }
        rc = wait_loop(&o, &tk, tk.epoch, deadline, &outcome, &t_grant, err);
        if (rc != TSR_OK)
            return rc;
        if (outcome == W_GRANTED)
            break;
        t_grant = tsr_lock_now_ms(); /* restart: the next add is the new start */
        if (outcome == W_TIMEOUT) {
            tsr_error_t ignore;
            lk_err_init(&ignore);
            (void)abandon(&o, &tk, &ignore);
            return tsr_error_set(err, TSR_ERR_TIMEOUT, "lock '%s' not granted within %lld ms",
                                 name, (long long)opts->timeout_ms);
        }
    }

granted:;
    lk_holding_t h = {.id = o.id, .home = o.home, .slot = o.slot, .ticket = tk,
                      .lease_ms = lease, .granted_ms = t_grant};
    rc = stamp(&o, excl, lease, low_guess, &h.token, &h.low, err);
    if (rc == TSR_OK)
        rc = hold_add(c, &h, err);
    if (rc != TSR_OK) {
        bool released;
        tsr_error_t ignore;
        lk_err_init(&ignore);
        (void)cas_release(&o, &tk, &released, &ignore);
        return rc;
    }
    *token = h.token;
    return TSR_OK;
}

tsr_status_t tsr_lock_acquire(tsr_lock_client_t *c, const char *name, const tsr_lock_opts_t *opts,
                              uint64_t *token, tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    return tsr_lock_err_out(errp, &err, acquire(c, name, opts, false, token, &err));
}

tsr_status_t tsr_lock_try_acquire(tsr_lock_client_t *c, const char *name,
                                  const tsr_lock_opts_t *opts, uint64_t *token,
                                  tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    return tsr_lock_err_out(errp, &err, acquire(c, name, opts, true, token, &err));
}

static tsr_status_t release(tsr_lock_client_t *c, const char *name, uint64_t token,
                            tsr_error_t *err)
{
    lk_op_t o;
    tsr_status_t rc = op_init(c, name, &o, err);
    if (rc != TSR_OK)
        return rc;
    lk_holding_t h;
    if (!hold_find(c, o.id, token, true, &h))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "lock '%s' is not held by this client with token %llu", name,
                             (unsigned long long)token);
    o.slot = h.slot;
    int64_t left = h.granted_ms + h.lease_ms - tsr_lock_now_ms();
    bool excl = h.ticket.excl;
    if (left > lk_margin_ms(h.lease_ms)) {
        uint64_t old;
        if ((rc = op_fadd(&o, LK_W_LOCK, lk_rel(excl), &old, err)) != TSR_OK)
            return rc;
        if (lk_epoch(old) == h.ticket.epoch)
            return after_release(&o, old + lk_rel(excl), err);
        /* reset under us (we were presumed dead): take the add back */
        (void)op_fadd(&o, LK_W_LOCK, (uint64_t)0 - lk_rel(excl), &old, err);
    } else {
        bool released;
        if ((rc = cas_release(&o, &h.ticket, &released, err)) != TSR_OK)
            return rc;
        if (released)
            return TSR_OK;
    }
    return tsr_error_set(err, TSR_ERR_STALE,
                         "lock '%s' (token %llu): the lease ran out and the lock was reset",
                         name, (unsigned long long)token);
}

tsr_status_t tsr_lock_release(tsr_lock_client_t *c, const char *name, uint64_t token,
                              tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    return tsr_lock_err_out(errp, &err, release(c, name, token, &err));
}

static tsr_status_t renew(tsr_lock_client_t *c, const char *name, uint64_t token,
                          int64_t lease_ms, tsr_error_t *err)
{
    lk_op_t o;
    tsr_status_t rc = op_init(c, name, &o, err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = check_lease(&lease_ms, err)) != TSR_OK)
        return rc;
    lk_holding_t h, gone;
    if (!hold_find(c, o.id, token, false, &h))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "lock '%s' is not held by this client with token %llu", name,
                             (unsigned long long)token);
    o.slot = h.slot;
    int64_t t0 = tsr_lock_now_ms();
    uint64_t tok_ignored, low, a;
    /* the add is the activity the waiters watch; the epoch check after it
     * tells whether the lock was still ours */
    if ((rc = stamp(&o, h.ticket.excl, lease_ms, h.low, &tok_ignored, &low, err)) != TSR_OK)
        return rc;
    if ((rc = op_load(&o, LK_W_LOCK, &a, err)) != TSR_OK)
        return rc;
    if (lk_epoch(a) != h.ticket.epoch) {
        (void)hold_find(c, o.id, token, true, &gone);
        return tsr_error_set(err, TSR_ERR_STALE,
                             "lock '%s' (token %llu): the lease ran out and the lock was reset",
                             name, (unsigned long long)token);
    }
    h.granted_ms = t0;
    h.lease_ms = lease_ms;
    h.low = low;
    hold_update(c, &h);
    if (h.ticket.excl)
        cache_note(&o, a, low, true);
    return TSR_OK;
}

tsr_status_t tsr_lock_renew(tsr_lock_client_t *c, const char *name, uint64_t token,
                            int64_t lease_ms, tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    return tsr_lock_err_out(errp, &err, renew(c, name, token, lease_ms, &err));
}

tsr_status_t tsr_lock_status(tsr_lock_client_t *c, const char *name, tsr_lock_status_t *out,
                             tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    lk_op_t o;
    tsr_status_t rc = op_init(c, name, &o, &err);
    if (rc == TSR_OK && !out)
        rc = tsr_error_set(&err, TSR_ERR_INVALID_ARG, "status: no output");
    if (rc == TSR_OK)
        rc = find_slot(&o, false, NULL, NULL, &err);
    uint64_t w[LK_POLL_WORDS];
    if (rc == TSR_OK)
        rc = op_read(&o, w, &err);
    if (rc != TSR_OK)
        return tsr_lock_err_out(errp, &err, rc);
    uint64_t w1 = w[0], w2 = w[1];
    memset(out, 0, sizeof(*out));
    out->home = o.home;
    out->slot = o.slot;
    out->epoch = lk_epoch(w1);
    out->last_token = lk_token(w2);
    out->lease_ms = lk_lease_ms(w2);
    out->holders_exact = true;
    uint32_t qx = (lk_max_x(w1) - lk_now_x(w1)) & LK_FIELD_MASK;
    uint32_t qs = (lk_max_s(w1) - lk_now_s(w1)) & LK_FIELD_MASK;
    if (qx == 0) {
        /* no writer queued: every outstanding shared request is granted */
        out->state = qs ? TSR_LOCK_HELD_SHARED : TSR_LOCK_FREE;
        out->holders = qs;
    } else if (lk_grant_excl(w2) || qs == 0) {
        /* the writer at the head holds (it stamped, or nothing is ahead of it) */
        out->state = TSR_LOCK_HELD_EXCLUSIVE;
        out->holders = 1;
        out->waiters = qx - 1 + qs;
    } else {
        /* a writer waits for readers; how many of the qs are ahead of it is
         * not in the word */
        out->state = TSR_LOCK_HELD_SHARED;
        out->holders = 1;
        out->holders_exact = false;
        out->waiters = qx + qs - 1;
    }
    return TSR_OK;
}
