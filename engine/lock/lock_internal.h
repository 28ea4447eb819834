/*
 * lock_internal.h - the lock slot's words and the shared internals of
 * engine/lock (home.c, client.c, client_conn.c, fence.c). See docs/locks.md.
 *
 * A home owns `nslots` slots of 64 bytes (one cache line each):
 *
 *   word 0  id       the name's 64-bit hash | 1; 0 = slot free. Written once
 *                    (compare-and-swap 0 -> id) and never cleared, so a name
 *                    keeps its slot for the home's life. Names colliding on a
 *                    slot probe linearly to the next slot (open addressing),
 *                    so they stay independent locks.
 *   word 1  lock     DSLR ticket word, 8 + 4 x 14 bits:
 *                      63..56 epoch   resets so far (mod 256)
 *                      55..42 max_x   exclusive tickets handed out
 *                      41..28 max_s   shared tickets handed out
 *                      27..14 now_x   exclusive releases
 *                      13..0  now_s   shared releases
 *                    exclusive request: fetch-and-add 1<<42, ticket (max_x, max_s)
 *                    of the old value, granted when now_x == tx && now_s == ts;
 *                    shared request: fetch-and-add 1<<28, granted when
 *                    now_x == tx. Releases add 1<<14 or 1.
 *   word 2  grant    63..24 E: the full epoch count (40 bits; E mod 256 is word
 *                    1's epoch, or one less for a moment after a reset),
 *                    23..20 a change counter (renewals: activity waiters
 *                    see), 19 mode of the newest grant (1 = exclusive),
 *                    18..0 its lease in 10 ms units. Written only with
 *                    compare-and-swap. A grant's fencing token is
 *                    E << 14 | (tx + ts) + 1: its place in the queue of its
 *                    epoch, so the acquire's fetch-and-add alone gives it.
 *   words 3..7       abandon records: up to five tickets of waiters that
 *                    timed out: 63 valid, 62..55 epoch, 54 exclusive,
 *                    27..14 tx, 13..0 ts; 0 = free. Whoever sees a recorded
 *                    ticket's turn come clears the record and releases it.
 *
 * Invariants: tickets are valid only while max_x, max_s < LK_LIMIT (2^13);
 * a request that gets a ticket at or past the limit undoes its add and waits
 * for the reset to epoch+1 that the last one out of an idle, saturated lock
 * performs. The fields never exceed 2^14 - 1 (at most 2^13 requesters undo at
 * once). A reset (overflow, lease expiry) is a compare-and-swap of word 1 to
 * (epoch + 1) << 56: every ticket of the old epoch is void. Before resetting
 * word 1 from epoch e, the resetter makes sure word 2's E is at e (helping it
 * forward by one), so E lags word 1's epoch by at most one and a grantee
 * whose E is one behind moves it forward in its own stamp.
 */
#ifndef TSR_LOCK_INTERNAL_H
#define TSR_LOCK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "tessera/lock.h"
#include "transport.h"

#define LK_SLOT_BYTES 64u
#define LK_SLOT_WORDS 8u
#define LK_W_ID 0u
#define LK_W_LOCK 1u
#define LK_W_GRANT 2u
#define LK_W_ABANDON 3u
#define LK_N_ABANDON 5u
#define LK_POLL_WORDS 7u /* words 1..7, polled with one get */

/* ---- word 1: the ticket word ------------------------------------------------------ */

#define LK_FIELD_BITS 14u
#define LK_FIELD_MASK ((1ull << LK_FIELD_BITS) - 1)
#define LK_LIMIT (1u << 13)
#define LK_SH_EPOCH 56u
#define LK_SH_MAXX 42u
#define LK_SH_MAXS 28u
#define LK_SH_NOWX 14u
#define LK_SH_NOWS 0u
#define LK_X_REQ (1ull << LK_SH_MAXX)
#define LK_S_REQ (1ull << LK_SH_MAXS)
#define LK_X_REL (1ull << LK_SH_NOWX)
#define LK_S_REL (1ull << LK_SH_NOWS)

static inline uint32_t lk_epoch(uint64_t w) { return (uint32_t)(w >> LK_SH_EPOCH) & 0xffu; }
static inline uint32_t lk_max_x(uint64_t w) { return (uint32_t)((w >> LK_SH_MAXX) & LK_FIELD_MASK); }
static inline uint32_t lk_max_s(uint64_t w) { return (uint32_t)((w >> LK_SH_MAXS) & LK_FIELD_MASK); }
static inline uint32_t lk_now_x(uint64_t w) { return (uint32_t)((w >> LK_SH_NOWX) & LK_FIELD_MASK); }
static inline uint32_t lk_now_s(uint64_t w) { return (uint32_t)((w >> LK_SH_NOWS) & LK_FIELD_MASK); }

static inline uint64_t lk_word(uint32_t epoch, uint32_t mx, uint32_t ms, uint32_t nx, uint32_t ns)
{
    return ((uint64_t)(epoch & 0xffu) << LK_SH_EPOCH) |
           ((uint64_t)(mx & LK_FIELD_MASK) << LK_SH_MAXX) |
           ((uint64_t)(ms & LK_FIELD_MASK) << LK_SH_MAXS) |
           ((uint64_t)(nx & LK_FIELD_MASK) << LK_SH_NOWX) |
           ((uint64_t)(ns & LK_FIELD_MASK) << LK_SH_NOWS);
}

/* No valid ticket can be handed out any more in this epoch. */
static inline bool lk_saturated(uint64_t w)
{
    return lk_max_x(w) >= LK_LIMIT || lk_max_s(w) >= LK_LIMIT;
}
/* Nobody holds or waits. */
static inline bool lk_idle(uint64_t w)
{
    return lk_now_x(w) == lk_max_x(w) && lk_now_s(w) == lk_max_s(w);
}
/* The word after a reset: next epoch, all counters zero. */
static inline uint64_t lk_reset_word(uint64_t w)
{
    return (uint64_t)((lk_epoch(w) + 1u) & 0xffu) << LK_SH_EPOCH;
}
/* What grant progress looks like: the word without the max counters (new
 * arrivals are not progress: they must not keep a dead holder's lease alive). */
static inline uint64_t lk_progress(uint64_t w)
{
    return w & ~((LK_FIELD_MASK << LK_SH_MAXX) | (LK_FIELD_MASK << LK_SH_MAXS));
}

typedef struct lk_ticket {
    uint32_t epoch;
    uint32_t tx, ts;
    bool excl;
} lk_ticket_t;

static inline lk_ticket_t lk_ticket_of(uint64_t old, bool excl)
{
    lk_ticket_t t = {lk_epoch(old), lk_max_x(old), lk_max_s(old), excl};
    return t;
}
static inline bool lk_granted(const lk_ticket_t *t, uint64_t w)
{
    if (lk_epoch(w) != t->epoch)
        return false;
    if (t->excl)
        return lk_now_x(w) == t->tx && lk_now_s(w) == t->ts;
    return lk_now_x(w) == t->tx;
}
static inline uint64_t lk_rel(bool excl) { return excl ? LK_X_REL : LK_S_REL; }
static inline uint64_t lk_req(bool excl) { return excl ? LK_X_REQ : LK_S_REQ; }

/* ---- word 2: the grant word ---------------------------------------------------------- */

#define LK_E_SHIFT 24u
#define LK_E_ONE (1ull << LK_E_SHIFT)
#define LK_CTR_SHIFT 20u
#define LK_CTR_MASK (0xfull << LK_CTR_SHIFT)
#define LK_GRANT_LOW_MASK ((1ull << LK_CTR_SHIFT) - 1) /* mode and lease */
#define LK_MODE_X (1ull << 19)
#define LK_LEASE_MASK ((1ull << 19) - 1)
#define LK_LEASE_UNIT_MS 10
/* Bits of a token below E: tx + ts < 2^14 for every valid ticket. */
#define LK_POS_BITS 14u

static inline uint64_t lk_w2_epoch_full(uint64_t g) { return g >> LK_E_SHIFT; }
static inline int64_t lk_lease_ms(uint64_t g)
{
    return (int64_t)(g & LK_LEASE_MASK) * LK_LEASE_UNIT_MS;
}
static inline bool lk_grant_excl(uint64_t g) { return (g & LK_MODE_X) != 0; }
/* The fencing token of ticket t in full epoch E. */
static inline uint64_t lk_token_of(uint64_t e_full, const lk_ticket_t *t)
{
    return (e_full << LK_POS_BITS) + t->tx + t->ts + 1u;
}
/* Word 2 with E set, the change counter bumped and the low bits replaced. */
static inline uint64_t lk_w2_make(uint64_t e_full, uint64_t prev, uint64_t low)
{
    return (e_full << LK_E_SHIFT) | ((prev + (1ull << LK_CTR_SHIFT)) & LK_CTR_MASK) | low;
}
/* The low bits a grantee writes: mode and lease (rounded up to 10 ms). */
static inline uint64_t lk_grant_low(bool excl, int64_t lease_ms)
{
    uint64_t u = (uint64_t)((lease_ms + LK_LEASE_UNIT_MS - 1) / LK_LEASE_UNIT_MS);
    if (u > LK_LEASE_MASK)
        u = LK_LEASE_MASK;
    return (excl ? LK_MODE_X : 0) | u;
}

/* ---- word 3: the abandon record -------------------------------------------------------- */

#define LK_AB_VALID (1ull << 63)
#define LK_AB_EXCL (1ull << 54)
static inline uint64_t lk_abandon_rec(const lk_ticket_t *t)
{
    return LK_AB_VALID | ((uint64_t)(t->epoch & 0xffu) << 55) | (t->excl ? LK_AB_EXCL : 0) |
           ((uint64_t)(t->tx & LK_FIELD_MASK) << 14) | (uint64_t)(t->ts & LK_FIELD_MASK);
}
static inline lk_ticket_t lk_abandon_ticket(uint64_t rec)
{
    lk_ticket_t t = {(uint32_t)(rec >> 55) & 0xffu, (uint32_t)((rec >> 14) & LK_FIELD_MASK),
                     (uint32_t)(rec & LK_FIELD_MASK), (rec & LK_AB_EXCL) != 0};
    return t;
}

/* ---- timing rules ------------------------------------------------------------------- */

/* A waiter declares the holders dead after this long without progress: the
 * lease plus a grace that covers a round trip and clock-rate differences. */
static inline int64_t lk_expiry_ms(int64_t lease_ms)
{
    if (lease_ms <= 0)
        lease_ms = TSR_LOCK_DEFAULT_LEASE_MS; /* nothing stamped yet: be patient */
    return lease_ms + 20 + lease_ms / 8;
}
/* A holder releases with a plain fetch-and-add only while this much of its
 * lease is left; later it uses a compare-and-swap that fails after a reset. */
static inline int64_t lk_margin_ms(int64_t lease_ms)
{
    return 5 + lease_ms / 16;
}

/* ---- the home ----------------------------------------------------------------------- */

/* Descriptor call's reply: this header, then the packed region (transport). */
#define LK_INFO_MAGIC 0x484b4c54u /* "TLKH" little-endian */
#define LK_INFO_VERSION 1u
#define LK_INFO_HDR 16u
#define LK_INFO_SERVED 1u /* header flags (bytes 12..15): the home serves lock calls */

typedef struct lk_server lk_server_t; /* serve.c */

struct tsr_lock_home {
    tsr_transport_t *t;       /* NULL: embedded */
    lk_server_t *server;      /* distributed: answers served clients' calls */
    tsr_region_t *region;     /* distributed: the registered table */
    _Atomic uint64_t *words;  /* the table: nslots * LK_SLOT_WORDS words */
    uint32_t nslots;
    uint16_t rpc_type;
    void *info;               /* distributed: the descriptor reply */
    size_t info_len;
    bool (*allow)(void *arg, tsr_peer_t *peer); /* NULL: every peer (params.allow) */
    void *allow_arg;
};

/* Whether the home answers req's peer (params.allow); answers a refused
 * request with TSR_ERR_AUTH itself. */
bool tsr_lock_home_allows(tsr_lock_home_t *h, tsr_rpc_req_t *req);

/* A cleared error without tsr_error_clear's memset of the whole struct
 * (1 KiB; a sixth of an embedded acquire+release): only status decides
 * whether tsr_error_set records, and it fills every other field. */
static inline void lk_err_init(tsr_error_t *e)
{
    e->status = TSR_OK;
    e->message[0] = '\0';
}

/* Monotonic milliseconds: the coarse clock (cheap, up to a tick behind;
 * lease starts and the release check) and the precise one (waiting,
 * timeouts: a timeout must never end early). */
int64_t tsr_lock_now_ms(void);
int64_t tsr_lock_precise_ms(void);
/* Word 2 of a fresh slot: E seeded from the time (E mod 256 = 0, word 1's
 * epoch) so a restarted home issues larger tokens than its previous life
 * (docs/locks.md, limits). */
uint64_t tsr_lock_token_seed(void);
/* Validates a name and lease; sets err. */
tsr_status_t tsr_lock_check_name(const char *name, size_t *len, tsr_error_t *err);
/* Copies an internal error into the public one. */
tsr_status_t tsr_lock_err_out(tsr_lock_err_t *out, const tsr_error_t *e, tsr_status_t rc);

/* ---- the client (client.c: protocol; client_conn.c: lifetime) -------------------- */

#define LK_CACHE 1024u     /* per home: name id -> slot, direct-mapped */
#define LK_MAX_PROBES 4096u

typedef struct lk_home_ref {
    _Atomic uint64_t *local; /* embedded: the table */
    tsr_peer_t *peer;        /* distributed */
    tsr_rkey_t *rkey;
    uint32_t nslots;
    bool served;             /* acquire/release/renew are calls the home runs */
    uint16_t ops_type;       /* their RPC type */
    uint32_t gen;            /* rehomings of this index so far (grants note it) */
    struct lk_home_ref *retired; /* the ref this one replaced (freed at destroy) */
} lk_home_ref_t;

/* How long (coarse clock) a client trusts that a lock word equal to the one
 * its own release left means "nobody has touched the lock since": equality
 * could also come from 256 resets (2^21 grants and as many releases, all
 * serialized on one word: tens of ms at the very least) ending on the same
 * value. With one coarse tick (<= 10 ms) of slack the window stays below. */
#define LK_FAST_WINDOW_MS 2

typedef struct lk_cache_ent {
    uint64_t id;       /* 0: empty */
    uint32_t slot;
    uint64_t w1_guess; /* last lock word seen (try_acquire's first compare) */
    uint64_t w2_guess; /* last grant word seen or written (stamp's first compare) */
    int64_t t_exact;   /* coarse ms of an exact note; < 0: none */
    bool exact;        /* w1_guess is the word our own release left, and nobody
                        * else touched the lock while we held it: w2_guess is
                        * then the grant word exactly (fast path) */
} lk_cache_ent_t;

typedef struct lk_holding {
    uint64_t id;
    uint32_t home, slot;
    uint64_t token;
    lk_ticket_t ticket;
    int64_t lease_ms;
    int64_t granted_ms; /* lease start: taken before the operation that granted */
    uint64_t w1_after;  /* the lock word right after our request */
    uint64_t w2;        /* the grant word as our stamp (or renewal) left it */
    uint32_t gen;       /* the home ref's gen at the grant */
} lk_holding_t;

struct tsr_lock_client {
    tsr_transport_t *t;
    lk_home_ref_t *homes;   /* the refs made at create */
    /* The current ref per home: homes[i] until a rehome replaces it with a
     * new allocation (client_conn.c, tsr_lock_rehome). A replaced ref stays
     * valid (on the new one's retired chain) until destroy, so a call still
     * using it just fails on the dead peer. */
    lk_home_ref_t *_Atomic *cur;
    size_t nhomes;
    /* rehoming (params.rehome): serialized by rehome_mu */
    tsr_status_t (*rehome)(void *arg, uint32_t home, int budget_ms, tsr_lock_home_addr_t *addr);
    void *rehome_arg;
    pthread_mutex_t rehome_mu;
    uint16_t rpc_type;
    int connect_timeout_ms;
    tsr_lock_path_t path;
    int op_timeout_ms;
    pthread_mutex_t mu;     /* cache and holdings */
    lk_cache_ent_t *cache;  /* nhomes * LK_CACHE */
    lk_holding_t *held;
    size_t nheld, capheld;
    uint64_t remote_ops;    /* atomics and gets of acquires and releases, counted
                             * under mu when they note the cache (tests, tuning) */
    _Atomic bool cancel;    /* a home's server client: waits give up (shutdown) */
    /* A home's server client: waiting threads park here between polls instead
     * of yielding or sleeping; park returns when the home served a call
     * that may have changed a lock since *seen (or after a millisecond:
     * one-sided clients' changes and lease expiry are still polled). */
    void (*park)(void *arg, uint64_t *seen);
    void *park_arg;
};

/* After a call on home failed with TSR_ERR_UNAVAILABLE through ref seen:
 * asks params.rehome for its replacement (budget_ms), connects it and makes
 * it current (dropping the client's cached slots and grants of that home).
 * TSR_OK when the home's current ref is no longer seen (moved now or by
 * another thread meanwhile); otherwise the failure, err untouched. */
tsr_status_t tsr_lock_rehome(tsr_lock_client_t *c, uint32_t home, const lk_home_ref_t *seen,
                             int budget_ms);

/* ---- one call's word operations (client.c, client_wait.c) --------------------- */

/* One call's view of one lock. */
typedef struct lk_op {
    tsr_lock_client_t *c;
    lk_home_ref_t *h;
    uint32_t home, slot;
    uint64_t id;
    const char *name;
    unsigned *nops;  /* -> count: word operations issued, moved to the client's
                      * remote_ops when the call notes the cache */
    unsigned count;
} lk_op_t;

/* ---- word operations ----------------------------------------------------------------- */

static inline uint64_t lk_woff(uint32_t slot, unsigned w)
{
    return ((uint64_t)slot * LK_SLOT_WORDS + w) * 8u;
}

static inline _Atomic uint64_t *lk_wptr(const lk_op_t *o, unsigned w)
{
    return &o->h->local[(size_t)o->slot * LK_SLOT_WORDS + w];
}

static inline tsr_status_t lk_fadd(const lk_op_t *o, unsigned w, uint64_t add, uint64_t *old,
                            tsr_error_t *err)
{
    (*o->nops)++;
    if (o->h->local) {
        *old = atomic_fetch_add(lk_wptr(o, w), add);
        return TSR_OK;
    }
    return tsr_atomic_fadd(o->c->t, o->h->rkey, lk_woff(o->slot, w), add, old, o->c->op_timeout_ms,
                           err);
}

static inline tsr_status_t lk_cas(const lk_op_t *o, unsigned w, uint64_t cmp, uint64_t val,
                           uint64_t *old, tsr_error_t *err)
{
    (*o->nops)++;
    if (o->h->local) {
        uint64_t e = cmp;
        atomic_compare_exchange_strong(lk_wptr(o, w), &e, val);
        *old = e;
        return TSR_OK;
    }
    return tsr_atomic_cswap(o->c->t, o->h->rkey, lk_woff(o->slot, w), cmp, val, old,
                            o->c->op_timeout_ms, err);
}

/* An atomic read (a get may tear across concurrent atomics on some wires). */
static inline tsr_status_t lk_load(const lk_op_t *o, unsigned w, uint64_t *v, tsr_error_t *err)
{
    if (o->h->local) {
        (*o->nops)++;
        *v = atomic_load(lk_wptr(o, w));
        return TSR_OK;
    }
    return lk_fadd(o, w, 0, v, err);
}

/* Words 1..7 in one round trip (for polling; decisions are confirmed). */
static inline tsr_status_t lk_read(const lk_op_t *o, uint64_t out[LK_POLL_WORDS], tsr_error_t *err)
{
    (*o->nops)++;
    if (o->h->local) {
        for (unsigned i = 0; i < LK_POLL_WORDS; i++)
            out[i] = atomic_load(lk_wptr(o, LK_W_LOCK + i));
        return TSR_OK;
    }
    return tsr_rma_get(o->c->t, o->h->rkey, lk_woff(o->slot, LK_W_LOCK), out, 8 * LK_POLL_WORDS,
                       o->c->op_timeout_ms, err);
}

/* Notes the lock word (and, set_w2, the grant word) last seen. exact_ms >= 0:
 * w1 is the word our release left and nobody else touched the lock during
 * that hold (the fast path's condition), noted at that coarse time. */
void tsr_lock_cache_note(const lk_op_t *o, uint64_t w1, uint64_t w2, bool set_w2,
                         int64_t exact_ms);

/* ---- waiting and the waiters' chores (client_wait.c) ------------------------------ */

enum { LK_WAIT_GRANTED = 1, LK_WAIT_RESTART = 2, LK_WAIT_TIMEOUT = 3, LK_WAIT_CANCEL = 4 };

/* After any change that may leave the word w saturated and idle: resets it. */
tsr_status_t tsr_lock_after_release(const lk_op_t *o, uint64_t w, tsr_error_t *err);
/* Releases ticket tk with compare-and-swap, only within its epoch. */
tsr_status_t tsr_lock_cas_release(const lk_op_t *o, const lk_ticket_t *tk, bool *released,
                                  tsr_error_t *err);
/* Polls until tk is granted (tk NULL: until tickets are handed out again),
 * the epoch changes, the deadline (< 0: none) passes or the client is
 * cancelled; *outcome: LK_WAIT_*; *t_grant: the grant's lease start. */
tsr_status_t tsr_lock_wait_loop(const lk_op_t *o, const lk_ticket_t *tk, uint32_t epoch0,
                                int64_t deadline, int *outcome, int64_t *t_grant,
                                tsr_error_t *err);
/* A waiter that gives up: takes its request back or records it abandoned. */
tsr_status_t tsr_lock_abandon(const lk_op_t *o, const lk_ticket_t *tk, tsr_error_t *err);

/* ---- served path (serve.c) ------------------------------------------------------ */

enum { LK_OP_ACQUIRE = 1, LK_OP_TRY = 2, LK_OP_RELEASE = 3, LK_OP_RENEW = 4 };

/* An embedded client on a distributed home's own words (its server). */
tsr_status_t tsr_lock_client_self(tsr_lock_home_t *h, tsr_lock_client_t **out, tsr_error_t *err);
/* Starts / stops answering lock calls on h->rpc_type + 1. */
tsr_status_t tsr_lock_serve_start(tsr_lock_home_t *h, tsr_error_t *err);
void tsr_lock_serve_stop(tsr_lock_home_t *h);
/* A served client's call: op on name at home (validated by the caller);
 * *token (acquire/try) gets the grant's token. */
tsr_status_t tsr_lock_served_call(tsr_lock_client_t *c, uint32_t home, int op, const char *name,
                                  bool shared, int64_t lease_ms, int64_t timeout_ms,
                                  uint64_t token_in, uint64_t *token, tsr_error_t *err);

#endif /* TSR_LOCK_INTERNAL_H */
