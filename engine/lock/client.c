/*
 * client.c - the lock protocol, run by the clients on the homes' words.
 *
 * Everything here is one-sided: 64-bit fetch-and-add, compare-and-swap and
 * reads of the slot words (lock_internal.h), as CPU atomics on an embedded
 * home and as UCX atomics / gets on a remote one. The home never runs code.
 *
 *   acquire    FA(lock, req) -> ticket; granted at once when the old value
 *              says so (uncontended: one round trip), else poll until
 *              granted. The token is E << 14 | (tx + ts) + 1 (the ticket's
 *              place in its epoch; E, the full epoch count, from word 2).
 *              Then the stamp: CAS(grant) publishes mode and lease. The stamp
 *              is skipped when the client knows word 2 already says exactly
 *              that and holds the right E: when the old value equals the word
 *              its own last release left (within LK_FAST_WINDOW_MS) and
 *              nobody else touched the lock during that hold.
 *              Uncontended acquire+release by one client = 2 atomics.
 *   release    FA(lock, rel) while the lease has a margin left; after that a
 *              compare-and-swap that fails if the lock was reset (epoch).
 *   waiting    polls words 1..7 (one get) and does the waiters' chores:
 *              resets, abandoned tickets, lease expiry (client_wait.c).
 *   timeout    a waiter that gives up takes its request back or records its
 *              ticket as abandoned (client_wait.c).
 *   try        compare-and-swap from a free word only: never queues.
 *
 * Every decision that moves counters on behalf of someone else (resets,
 * abandoned tickets) is a compare-and-swap on the lock word, so it fails
 * harmlessly when the state changed under it; a grant seen in a polled get
 * is confirmed with an atomic read before it is believed.
 */
#include <pthread.h>
#include <string.h>

#include "core/hash.h"
#include "lock_internal.h"

/* ---- cache and holdings ------------------------------------------------------------------- */

static lk_cache_ent_t *cache_ent(tsr_lock_client_t *c, uint32_t home, uint64_t id)
{
    return &c->cache[(size_t)home * LK_CACHE + ((id >> 3) & (LK_CACHE - 1))];
}

/* Notes the lock word (and, set_w2, the grant word) last seen. exact_ms >= 0:
 * w1 is the word our release left and nobody else touched the lock during
 * that hold (the fast path's condition), noted at that coarse time. */
void tsr_lock_cache_note(const lk_op_t *o, uint64_t w1, uint64_t w2, bool set_w2, int64_t exact_ms)
{
    pthread_mutex_lock(&o->c->mu);
    o->c->remote_ops += *o->nops;
    *o->nops = 0;
    lk_cache_ent_t *e = cache_ent(o->c, o->home, o->id);
    if (e->id == o->id) {
        e->w1_guess = w1;
        if (set_w2)
            e->w2_guess = w2;
        e->exact = exact_ms >= 0;
        e->t_exact = exact_ms;
    }
    pthread_mutex_unlock(&o->c->mu);
}

/* Finds (claim: or takes) the slot of o->id on its home; *snap (may be
 * NULL) gets the cache entry: the guesses of the lock and grant words (0
 * when unknown) and whether the fast path may trust them. */
static tsr_status_t find_slot(lk_op_t *o, bool claim, lk_cache_ent_t *snap, tsr_error_t *err)
{
    tsr_lock_client_t *c = o->c;
    pthread_mutex_lock(&c->mu);
    lk_cache_ent_t *e = cache_ent(c, o->home, o->id);
    bool hit = e->id == o->id;
    if (hit) {
        o->slot = e->slot;
        if (snap)
            *snap = *e;
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
        tsr_status_t rc = claim ? lk_cas(o, LK_W_ID, 0, o->id, &old, err)
                                : lk_load(o, LK_W_ID, &old, err);
        if (rc != TSR_OK)
            return rc;
        if (old == o->id || (claim && old == 0)) {
            lk_cache_ent_t fresh = {.id = o->id, .slot = o->slot, .t_exact = -1};
            if (snap)
                *snap = fresh;
            pthread_mutex_lock(&c->mu);
            *cache_ent(c, o->home, o->id) = fresh;
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

/* Records a grant and notes the grant word it left (the next stamp's guess)
 * in the same critical section; the fast path is off while we hold. */
static tsr_status_t hold_add(tsr_lock_client_t *c, const lk_op_t *o, const lk_holding_t *h,
                             tsr_error_t *err)
{
    pthread_mutex_lock(&c->mu);
    c->remote_ops += *o->nops;
    *o->nops = 0;
    int r = tsr_mem_grow(NULL, (void **)&c->held, &c->capheld, c->nheld + 1, sizeof(*c->held));
    if (r == 0)
        c->held[c->nheld++] = *h;
    lk_cache_ent_t *e = cache_ent(c, h->home, h->id);
    if (e->id == h->id) {
        e->w2_guess = h->w2;
        e->exact = false;
    }
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

/* The stamp: word 2 gets the grant's mode and lease (exclusive: ours, or a
 * renewal's; shared: raised to the maximum of the co-holders', replacing an
 * exclusive grant's), and E moves forward if it lags the ticket's epoch.
 * Compare-and-swap from guess (the cached word; a failed compare returns the
 * real one). A grant whose word 2 already says that skips the write once the
 * value is confirmed; a renewal always writes (it bumps the change counter:
 * the activity waiters watch). *e_out: E for the token; *w2_out: the word
 * as left; *stale: word 2 is past the ticket's epoch (the lock was reset
 * after our grant: we were presumed dead). */
static tsr_status_t stamp(const lk_op_t *o, const lk_ticket_t *tk, int64_t lease_ms,
                          uint64_t guess, bool renewal, uint64_t *e_out, uint64_t *w2_out,
                          bool *stale, tsr_error_t *err)
{
    uint64_t low = lk_grant_low(tk->excl, lease_ms), cur = guess, got;
    bool confirmed = false;
    *stale = false;
    for (;;) {
        uint64_t e = lk_w2_epoch_full(cur);
        if ((e & 0xffu) != tk->epoch) {
            if (((e + 1) & 0xffu) == tk->epoch) {
                e++;
            } else if (confirmed) {
                *stale = true;
                return TSR_OK;
            } else { /* a stale guess: read the word itself */
                tsr_status_t rc = lk_load(o, LK_W_GRANT, &cur, err);
                if (rc != TSR_OK)
                    return rc;
                confirmed = true;
                continue;
            }
        }
        uint64_t l = cur & LK_GRANT_LOW_MASK, want_low = low;
        if (!tk->excl && !(l & LK_MODE_X) && (l & LK_LEASE_MASK) >= (low & LK_LEASE_MASK))
            want_low = l;
        bool same = !renewal && want_low == l && e == lk_w2_epoch_full(cur);
        uint64_t want = same ? cur : lk_w2_make(e, cur, want_low);
        if (same && confirmed) {
            *e_out = e;
            *w2_out = cur;
            return TSR_OK;
        }
        tsr_status_t rc = lk_cas(o, LK_W_GRANT, cur, want, &got, err);
        if (rc != TSR_OK)
            return rc;
        if (got == cur) {
            *e_out = e;
            *w2_out = want;
            return TSR_OK;
        }
        cur = got;
        confirmed = true;
    }
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
    o->h = atomic_load(&c->cur[o->home]);
    o->name = name;
    o->slot = 0;
    o->count = 0;
    o->nops = &o->count;
    return TSR_OK;
}

/* Whether the fast path may skip the stamp: the lock word before our request
 * (old) is the one our own last release left, recently, with nobody else
 * in between (so word 2 is still what the cache says: only grantees and
 * holders write it, and a reset changes word 1), and word 2 already says
 * what our stamp would. */
static bool fast_grant(const lk_cache_ent_t *snap, uint64_t old, bool excl, int64_t lease,
                       int64_t now_ms)
{
    if (!snap->exact || old != snap->w1_guess || now_ms - snap->t_exact > LK_FAST_WINDOW_MS)
        return false;
    uint64_t w2 = snap->w2_guess, l = w2 & LK_GRANT_LOW_MASK, low = lk_grant_low(excl, lease);
    if ((lk_w2_epoch_full(w2) & 0xffu) != lk_epoch(old))
        return false;
    if (excl)
        return l == low;
    return !(l & LK_MODE_X) && (l & LK_LEASE_MASK) >= (low & LK_LEASE_MASK);
}

static bool excl_mode(const tsr_lock_opts_t *opts)
{
    return opts->mode == TSR_LOCK_EXCLUSIVE;
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
    if (o.h->served) {
        rc = tsr_lock_served_call(c, o.home, try_only ? LK_OP_TRY : LK_OP_ACQUIRE, name,
                                  !excl_mode(opts), lease, opts->timeout_ms, 0, token, err);
        if (rc == TSR_OK && c->rehome) {
            /* noted only for the home's gen: a release after a move is STALE */
            lk_holding_t h = {.id = o.id, .home = o.home, .token = *token, .gen = o.h->gen};
            rc = hold_add(c, &o, &h, err);
        }
        return rc;
    }
    lk_cache_ent_t snap;
    if ((rc = find_slot(&o, true, &snap, err)) != TSR_OK)
        return rc;
    uint64_t guess = snap.w1_guess;
    bool excl = opts->mode == TSR_LOCK_EXCLUSIVE;
    uint64_t req = lk_req(excl), old = 0, got;
    int64_t t_grant = tsr_lock_now_ms();
    /* the deadline is set when waiting starts (precise clock, counted from
     * a little after the call: never early) */
    int64_t deadline = -2;
    lk_ticket_t tk;
    bool at_once; /* granted by our own atomic (old: the word before it) */

retry:
    at_once = true;
    if (try_only) {
        for (int attempt = 0;; attempt++) {
            bool free_now = !lk_saturated(guess) &&
                            (excl ? lk_idle(guess) : lk_now_x(guess) == lk_max_x(guess));
            if (!free_now) {
                if (attempt > 0)
                    return tsr_error_set(err, TSR_ERR_CONFLICT, "lock '%s' is busy", name);
                if ((rc = lk_load(&o, LK_W_LOCK, &guess, err)) != TSR_OK)
                    return rc;
                continue;
            }
            t_grant = tsr_lock_now_ms();
            if ((rc = lk_cas(&o, LK_W_LOCK, guess, guess + req, &got, err)) != TSR_OK)
                return rc;
            if (got == guess)
                break;
            guess = got;
            if (attempt > 16)
                return tsr_error_set(err, TSR_ERR_CONFLICT, "lock '%s' is busy", name);
        }
        old = guess;
        tk = lk_ticket_of(guess, excl);
        goto granted;
    }

    for (;;) {
        if ((rc = lk_fadd(&o, LK_W_LOCK, req, &old, err)) != TSR_OK)
            return rc;
        int outcome;
        tk = lk_ticket_of(old, excl);
        bool now_granted = !lk_saturated(old) && lk_granted(&tk, old);
        if (now_granted)
            break;
        at_once = false;
        if (deadline == -2)
            deadline = opts->timeout_ms < 0 ? -1 : tsr_lock_precise_ms() + opts->timeout_ms;
        if (lk_saturated(old)) {
            /* no valid ticket left in this epoch: undo, wait for the reset */
            if ((rc = lk_fadd(&o, LK_W_LOCK, (uint64_t)0 - req, &got, err)) != TSR_OK)
                return rc;
            if ((rc = tsr_lock_after_release(&o, got - req, err)) != TSR_OK)
                return rc;
            rc = tsr_lock_wait_loop(&o, NULL, lk_epoch(old), deadline, &outcome, &t_grant, err);
            if (rc != TSR_OK)
                return rc;
            if (outcome == LK_WAIT_TIMEOUT)
                return tsr_error_set(err, TSR_ERR_TIMEOUT, "lock '%s' not granted within %lld ms",
                                     name, (long long)opts->timeout_ms);
            if (outcome == LK_WAIT_CANCEL)
                return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "lock home is stopping");
            t_grant = tsr_lock_now_ms();
            continue;
        }
        rc = tsr_lock_wait_loop(&o, &tk, tk.epoch, deadline, &outcome, &t_grant, err);
        if (rc != TSR_OK)
            return rc;
        if (outcome == LK_WAIT_GRANTED)
            break;
        t_grant = tsr_lock_now_ms(); /* restart: the next add is the new start */
        if (outcome == LK_WAIT_TIMEOUT || outcome == LK_WAIT_CANCEL) {
            tsr_error_t ignore;
            lk_err_init(&ignore);
            (void)tsr_lock_abandon(&o, &tk, &ignore);
            if (outcome == LK_WAIT_CANCEL)
                return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "lock home is stopping");
            return tsr_error_set(err, TSR_ERR_TIMEOUT, "lock '%s' not granted within %lld ms",
                                 name, (long long)opts->timeout_ms);
        }
    }

granted:;
    lk_holding_t h = {.id = o.id, .home = o.home, .slot = o.slot, .ticket = tk,
                      .lease_ms = lease, .granted_ms = t_grant, .w1_after = old + req,
                      .gen = o.h->gen};
    uint64_t e_full = 0;
    bool stale = false;
    if (at_once && fast_grant(&snap, old, excl, lease, t_grant)) {
        e_full = lk_w2_epoch_full(snap.w2_guess);
        h.w2 = snap.w2_guess;
    } else {
        rc = stamp(&o, &tk, lease, snap.w2_guess, false, &e_full, &h.w2, &stale, err);
    }
    if (rc == TSR_OK && stale) {
        /* reset after our grant (we were presumed dead before stamping):
         * the ticket is void; ask again */
        snap.exact = false;
        snap.w2_guess = 0;
        guess = 0;
        goto retry;
    }
    h.token = lk_token_of(e_full, &tk);
    if (rc == TSR_OK)
        rc = hold_add(c, &o, &h, err);
    if (rc != TSR_OK) {
        bool released;
        tsr_error_t ignore;
        lk_err_init(&ignore);
        (void)tsr_lock_cas_release(&o, &tk, &released, &ignore);
        return rc;
    }
    *token = h.token;
    return TSR_OK;
}

/* The home index and current ref a call on name will use (NULL when the
 * name is bad: the call itself reports it). */
static const lk_home_ref_t *ref_of(tsr_lock_client_t *c, const char *name, uint32_t *home)
{
    lk_op_t o;
    tsr_error_t ignore;
    lk_err_init(&ignore);
    if (op_init(c, name, &o, &ignore) != TSR_OK)
        return NULL;
    *home = o.home;
    return o.h;
}

/* Whether a call through ref seen failed because its home is gone: UNAVAILABLE,
 * or a transport timeout on a peer the transport has marked down (UCX's
 * endpoint timeout on a killed peer's emulated atomics). */
static bool home_down(tsr_status_t rc, const lk_home_ref_t *seen)
{
    return seen && (rc == TSR_ERR_UNAVAILABLE ||
                    (rc == TSR_ERR_TIMEOUT && seen->peer && !tsr_peer_is_up(seen->peer)));
}

/* After a call through ref seen failed with home_down: whether its home
 * moved (params.rehome found the replacement within budget_ms). */
static bool moved(tsr_lock_client_t *c, uint32_t home, const lk_home_ref_t *seen,
                  int64_t budget_ms)
{
    if (!c->rehome || !seen || budget_ms <= 0)
        return false;
    return tsr_lock_rehome(c, home, seen, budget_ms > INT32_MAX ? INT32_MAX : (int)budget_ms) ==
           TSR_OK;
}

/* acquire, once more on a moved home (a fresh table: safe to ask again). */
static tsr_status_t acquire_rehoming(tsr_lock_client_t *c, const char *name,
                                     const tsr_lock_opts_t *opts, bool try_only, uint64_t *token,
                                     tsr_error_t *err)
{
    uint32_t home = 0;
    const lk_home_ref_t *seen = c && c->rehome ? ref_of(c, name, &home) : NULL;
    int64_t t0 = tsr_lock_precise_ms();
    tsr_status_t rc = acquire(c, name, opts, try_only, token, err);
    if (!home_down(rc, seen))
        return rc;
    /* the budget: what is left of the call's timeout; a try or an unlimited
     * wait gets one operation's limit */
    int64_t tmo = opts && !try_only ? opts->timeout_ms : 0;
    int64_t budget = tmo > 0 ? tmo - (tsr_lock_precise_ms() - t0) : c->op_timeout_ms;
    if (!moved(c, home, seen, budget))
        return rc;
    tsr_lock_opts_t again = opts ? *opts : (tsr_lock_opts_t){TSR_LOCK_EXCLUSIVE, 0, -1};
    if (tmo > 0) {
        int64_t left = tmo - (tsr_lock_precise_ms() - t0);
        again.timeout_ms = left > 0 ? left : 0;
    }
    lk_err_init(err);
    return acquire(c, name, &again, try_only, token, err);
}

tsr_status_t tsr_lock_acquire(tsr_lock_client_t *c, const char *name, const tsr_lock_opts_t *opts,
                              uint64_t *token, tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    return tsr_lock_err_out(errp, &err, acquire_rehoming(c, name, opts, false, token, &err));
}

tsr_status_t tsr_lock_try_acquire(tsr_lock_client_t *c, const char *name,
                                  const tsr_lock_opts_t *opts, uint64_t *token,
                                  tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    return tsr_lock_err_out(errp, &err, acquire_rehoming(c, name, opts, true, token, &err));
}

/* A release or renew that failed with UNAVAILABLE: when the home moved,
 * the grant is gone with the old one (STALE, the holding forgotten). */
static tsr_status_t grant_call_failed(tsr_lock_client_t *c, const char *name, uint64_t token,
                                      uint32_t home, const lk_home_ref_t *seen, tsr_status_t rc,
                                      tsr_error_t *err)
{
    if (!home_down(rc, seen) || !moved(c, home, seen, c->op_timeout_ms))
        return rc;
    lk_op_t o;
    lk_holding_t gone;
    lk_err_init(err);
    if (op_init(c, name, &o, err) == TSR_OK)
        (void)hold_find(c, o.id, token, true, &gone);
    return tsr_error_set(err, TSR_ERR_STALE,
                         "lock '%s' (token %llu): its home's worker died and another took its "
                         "place; the grant was lost with it",
                         name, (unsigned long long)token);
}

static tsr_status_t release(tsr_lock_client_t *c, const char *name, uint64_t token,
                            tsr_error_t *err)
{
    lk_op_t o;
    tsr_status_t rc = op_init(c, name, &o, err);
    if (rc != TSR_OK)
        return rc;
    if (o.h->served) {
        lk_holding_t h;
        if (c->rehome && hold_find(c, o.id, token, true, &h) && h.gen != o.h->gen)
            return tsr_error_set(err, TSR_ERR_STALE,
                                 "lock '%s' (token %llu): its home moved to another worker (the "
                                 "old one died) and the grant was lost with it",
                                 name, (unsigned long long)token);
        return tsr_lock_served_call(c, o.home, LK_OP_RELEASE, name, false, 0, 0, token, NULL,
                                    err);
    }
    lk_holding_t h;
    if (!hold_find(c, o.id, token, true, &h))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "lock '%s' is not held by this client with token %llu", name,
                             (unsigned long long)token);
    if (h.gen != o.h->gen)
        return tsr_error_set(err, TSR_ERR_STALE,
                             "lock '%s' (token %llu): its home moved to another worker (the old "
                             "one died) and the grant was lost with it",
                             name, (unsigned long long)token);
    o.slot = h.slot;
    int64_t now_ms = tsr_lock_now_ms();
    int64_t left = h.granted_ms + h.lease_ms - now_ms;
    bool excl = h.ticket.excl;
    if (left > lk_margin_ms(h.lease_ms)) {
        uint64_t old;
        if ((rc = lk_fadd(&o, LK_W_LOCK, lk_rel(excl), &old, err)) != TSR_OK)
            return rc;
        if (lk_epoch(old) == h.ticket.epoch) {
            /* old == the word right after our request: nobody else touched
             * the lock while we held it, so word 2 is still h.w2 and the
             * word we leave is known exactly (the next acquire's fast path) */
            tsr_lock_cache_note(&o, old + lk_rel(excl), h.w2, true,
                                old == h.w1_after ? now_ms : -1);
            return tsr_lock_after_release(&o, old + lk_rel(excl), err);
        }
        /* reset under us (we were presumed dead): take the add back */
        (void)lk_fadd(&o, LK_W_LOCK, (uint64_t)0 - lk_rel(excl), &old, err);
    } else {
        bool released;
        if ((rc = tsr_lock_cas_release(&o, &h.ticket, &released, err)) != TSR_OK)
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
    uint32_t home = 0;
    const lk_home_ref_t *seen = c && c->rehome ? ref_of(c, name, &home) : NULL;
    tsr_status_t rc = release(c, name, token, &err);
    return tsr_lock_err_out(errp, &err, grant_call_failed(c, name, token, home, seen, rc, &err));
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
    if (o.h->served) {
        if (c->rehome && hold_find(c, o.id, token, false, &h) && h.gen != o.h->gen) {
            (void)hold_find(c, o.id, token, true, &gone);
            return tsr_error_set(err, TSR_ERR_STALE,
                                 "lock '%s' (token %llu): its home moved to another worker (the "
                                 "old one died) and the grant was lost with it",
                                 name, (unsigned long long)token);
        }
        return tsr_lock_served_call(c, o.home, LK_OP_RENEW, name, false, lease_ms, 0, token, NULL,
                                    err);
    }
    if (!hold_find(c, o.id, token, false, &h))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "lock '%s' is not held by this client with token %llu", name,
                             (unsigned long long)token);
    if (h.gen != o.h->gen) {
        (void)hold_find(c, o.id, token, true, &gone);
        return tsr_error_set(err, TSR_ERR_STALE,
                             "lock '%s' (token %llu): its home moved to another worker (the old "
                             "one died) and the grant was lost with it",
                             name, (unsigned long long)token);
    }
    o.slot = h.slot;
    int64_t t0 = tsr_lock_now_ms();
    uint64_t e_full, w2, a;
    bool stale;
    /* the write is the activity the waiters watch; the epoch check after
     * it tells whether the lock was still ours */
    if ((rc = stamp(&o, &h.ticket, lease_ms, h.w2, true, &e_full, &w2, &stale, err)) != TSR_OK)
        return rc;
    if ((rc = lk_load(&o, LK_W_LOCK, &a, err)) != TSR_OK)
        return rc;
    if (stale || lk_epoch(a) != h.ticket.epoch) {
        (void)hold_find(c, o.id, token, true, &gone);
        return tsr_error_set(err, TSR_ERR_STALE,
                             "lock '%s' (token %llu): the lease ran out and the lock was reset",
                             name, (unsigned long long)token);
    }
    h.granted_ms = t0;
    h.lease_ms = lease_ms;
    h.w2 = w2;
    hold_update(c, &h);
    tsr_lock_cache_note(&o, a, w2, true, -1);
    return TSR_OK;
}

tsr_status_t tsr_lock_renew(tsr_lock_client_t *c, const char *name, uint64_t token,
                            int64_t lease_ms, tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    uint32_t home = 0;
    const lk_home_ref_t *seen = c && c->rehome ? ref_of(c, name, &home) : NULL;
    tsr_status_t rc = renew(c, name, token, lease_ms, &err);
    return tsr_lock_err_out(errp, &err, grant_call_failed(c, name, token, home, seen, rc, &err));
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
        rc = find_slot(&o, false, NULL, &err);
    uint64_t w[LK_POLL_WORDS];
    if (rc == TSR_OK)
        rc = lk_read(&o, w, &err);
    if (rc != TSR_OK)
        return tsr_lock_err_out(errp, &err, rc);
    uint64_t w1 = w[0], w2 = w[1];
    memset(out, 0, sizeof(*out));
    out->home = o.home;
    out->slot = o.slot;
    out->epoch = lk_epoch(w1);
    uint64_t e_full = lk_w2_epoch_full(w2);
    if ((e_full & 0xffu) != out->epoch && ((e_full + 1) & 0xffu) == out->epoch)
        e_full++; /* word 2 not yet moved to the new epoch */
    uint64_t base = e_full << LK_POS_BITS;
    out->lease_ms = lk_lease_ms(w2);
    out->holders_exact = true;
    uint32_t qx = (lk_max_x(w1) - lk_now_x(w1)) & LK_FIELD_MASK;
    uint32_t qs = (lk_max_s(w1) - lk_now_s(w1)) & LK_FIELD_MASK;
    if (qx == 0) {
        /* no writer queued: every outstanding shared request is granted */
        out->state = qs ? TSR_LOCK_HELD_SHARED : TSR_LOCK_FREE;
        out->holders = qs;
        /* every request of the epoch is granted: the newest is the last one
         * (none yet: base, above every earlier epoch's tokens) */
        out->last_token = base + lk_max_x(w1) + lk_max_s(w1);
    } else if (lk_grant_excl(w2) || qs == 0) {
        /* the writer at the head holds (it stamped, or nothing is ahead of it) */
        out->state = TSR_LOCK_HELD_EXCLUSIVE;
        out->holders = 1;
        out->waiters = qx - 1 + qs;
        out->last_token = base + lk_now_x(w1) + lk_now_s(w1) + 1; /* the holder's */
    } else {
        /* a writer waits for readers; how many of the qs are ahead of it is
         * not in the word */
        out->state = TSR_LOCK_HELD_SHARED;
        out->holders = 1;
        out->holders_exact = false;
        out->waiters = qx + qs - 1;
        out->last_token = base + lk_now_x(w1) + lk_now_s(w1) + 1; /* a lower bound */
    }
    return TSR_OK;
}
