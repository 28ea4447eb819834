/*
 * spin_budget.h - how long a waiter spins before it sleeps, learned from
 * the waits before it (used by progress.c's wait loops; tested alone by
 * tests/unit/test_transport_spin.c).
 *
 * A waiter spins in the hope that its event comes before a sleep and a
 * wake-up (about 100 us on these virtual machines) would. But while the
 * waiters outnumber the cores, the spin itself delays the event: 16 client
 * processes of one server on 2 cores, each spinning 100 us per round trip,
 * starved the server that was to answer them (SmallBank over TCP,
 * bench/RESULTS.md). A fixed spin cannot be right for both a quiet machine
 * and a crowded one, so the budget is learned, the way glibc's adaptive
 * mutexes learn their spin count, by these rules (max: params.spin_us):
 *   - a wait that ends while spinning, after s ns of spinning, with
 *     s <= max/2: when 2 s is above the budget (only a probe, below, can
 *     have spun that long) the budget becomes 2 s, what it needed with
 *     margin; otherwise it moves 1/TSR_SPIN_DECAY of the way to 2 s (a
 *     run of quick waits brings a budget that a slower one raised back
 *     down);
 *   - a wait that ended after more than max/2 of spinning counts as one
 *     whose spin ran out: spinning that long costs about what the sleep
 *     and wake-up it saved would;
 *   - a wait whose spin ran out (it sleeps) takes 1/TSR_SPIN_DECAY off.
 * Why not "the largest 2 s seen": remote durable transactions wait for an
 * fdatasync (100 us to 1 ms here) and, between those, for quick calls;
 * the occasional quick call that came after 30-90 us kept raising the
 * budget to the full 100 us, which every commit wait then spun away:
 * SmallBank, 16 client processes on 2 cores, 25-30 k -> 31-34 k txn/s,
 * and half the CPU per transaction for one client (bench/RESULTS.md,
 * 2026-11-28).
 * The decrease is gentle on purpose: on a quiet machine a sporadic slow
 * wait (a preempted peer) barely moves it, and the next quick wait
 * restores it; a peer that sleeps makes this side's waits look long, and
 * halving at every miss drove both sides of a ping-pong into sleeping
 * forever. On a crowded machine, where nearly every spin runs out, the
 * budget still falls below a tenth within 20 waits.
 * A budget that fell to nothing could never learn that short waits came
 * back (the wait sleeps, and its wake-up makes it look long), so every
 * TSR_SPIN_PROBE-th wait spins max/2 regardless (the longest spin that can
 * count as a hit): a probe. A probe that runs out makes the next one come
 * twice as late (up to one per TSR_SPIN_PROBE_MAX waits), one that catches
 * its event brings them back to every TSR_SPIN_PROBE-th: while waits stay
 * long the probes' spinning fades (it was 8% of the machine's CPU with 16
 * remote SmallBank clients on 2 cores: 33-38 k -> 39-40 k txn/s), and
 * short waits are still found within 256 waits of their return.
 * With `fixed` (params.spin_fixed) every wait spins max and nothing is
 * learned.
 */
#ifndef TSR_SPIN_BUDGET_H
#define TSR_SPIN_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#define TSR_SPIN_PROBE 16u      /* waits per probe, at first and after a probe's hit */
#define TSR_SPIN_PROBE_MAX 256u /* ... at most, after probes that ran out */
#define TSR_SPIN_DECAY 8

typedef struct tsr_spin_budget {
    int64_t ns;           /* how long the next wait spins before it sleeps, 0..max */
    unsigned waits;       /* waits since the last probe */
    unsigned probe_every; /* a probe every this many waits (0: TSR_SPIN_PROBE) */
    bool probing;         /* the wait in progress is a probe */
} tsr_spin_budget_t;

/* One step down (a miss, or a hit that spun too long); a probe that ran
 * out makes the next one come twice as late. */
static inline void tsr_spin_decay(tsr_spin_budget_t *b)
{
    b->ns -= b->ns / TSR_SPIN_DECAY;
    if (b->ns < TSR_SPIN_DECAY) /* where the 1/8 step would stop */
        b->ns = 0;
    if (b->probing) {
        unsigned every = b->probe_every ? b->probe_every : TSR_SPIN_PROBE;
        b->probe_every = every < TSR_SPIN_PROBE_MAX ? 2 * every : TSR_SPIN_PROBE_MAX;
        b->probing = false;
    }
}

/* The spin of a wait starting to spin now. */
static inline int64_t tsr_spin_take(tsr_spin_budget_t *b, int64_t max_ns, bool fixed)
{
    if (fixed)
        return max_ns;
    b->probing = ++b->waits >= (b->probe_every ? b->probe_every : TSR_SPIN_PROBE);
    if (b->probing) {
        b->waits = 0;
        return max_ns / 2;
    }
    return b->ns;
}

/* True when the next wait would spin not at all (budget at nothing and no
 * probe due): it may sleep after its first idle poll. */
static inline bool tsr_spin_would_not_spin(const tsr_spin_budget_t *b, bool fixed)
{
    return !fixed && b->ns == 0 &&
           b->waits + 1 < (b->probe_every ? b->probe_every : TSR_SPIN_PROBE);
}

/* The wait's event came spun_ns after it began spinning. */
static inline void tsr_spin_hit(tsr_spin_budget_t *b, int64_t spun_ns, int64_t max_ns,
                                bool fixed)
{
    if (fixed)
        return;
    if (spun_ns > max_ns / 2) {
        tsr_spin_decay(b); /* as long as a sleep would have cost: a miss */
        return;
    }
    if (b->probing) { /* short waits are back: probe often again */
        b->probe_every = TSR_SPIN_PROBE;
        b->probing = false;
    }
    int64_t want = 2 * spun_ns;
    if (want > b->ns)
        b->ns = want;
    else
        b->ns += (want - b->ns) / TSR_SPIN_DECAY;
}

/* The wait's spin ran out: it sleeps. */
static inline void tsr_spin_miss(tsr_spin_budget_t *b, bool fixed)
{
    if (!fixed)
        tsr_spin_decay(b);
}

#endif /* TSR_SPIN_BUDGET_H */
