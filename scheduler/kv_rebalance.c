/*
 * kv_rebalance.c - partition moves when a worker joins the ring (docs/kv.md
 * "On a cluster", Placement): "adding a worker moves only its share".
 *
 * The ring's members are the ids of the ready workers and every id in a
 * table's placement (a member that is down keeps its ring points: otherwise
 * workers rejoining one by one after a restart would each pull partitions
 * they are not meant to hold). When a worker W joins, for each table and
 * partition: if W is among the first `replicas` distinct members clockwise
 * from the partition's ring position (engine/kv/ring.c) and holds no
 * replica of it, W takes the partition's free slot as a new replica,
 * marked stale, and one current replica outside that set is marked
 * leaving. Partitions whose ring placement does not include W are not
 * touched, so about replicas/members of the partitions move.
 *
 * The stale replica is filled by the resync machinery (sched_kv_sync.c:
 * writes of the partition wait while it is copied page by page); the
 * leaving one keeps taking writes meanwhile, so the partition never has
 * fewer fresh copies than before. When the resync ends (no write in
 * flight), tsr_sched_kv_move_settle removes the leaving replica, if every
 * other replica is fresh and at least `replicas` are: the catalog is saved
 * first, then its copy is dropped on its worker (best effort: a copy left
 * on a worker that was down is under a name no reader uses). Every step is
 * saved in the catalog (kv_catalog.c), so a restarted scheduler resumes it.
 *
 * A partition moves to one joining worker at a time (one free slot); a
 * table with TSR_KV_MAX_REPLICAS replicas has no free slot and does not
 * move.
 *
 * Replacement (tsr_sched_kv_tick): a replica whose worker has been dead for
 * longer than --kv-replace-after (or that an operator decommissioned) is
 * *gone*. The partition's spare slot goes to the first ring member
 * clockwise from its position that is a ready worker holding no replica of
 * it (tsr_sched_kv_pick_target), as a stale replica, and the gone one is
 * marked leaving: the same move as a join's, so resync fills the copy and
 * move_settle removes the gone replica (catalog saved first). Only when a
 * fresh replica on a ready worker exists to copy from and a target exists
 * (else it waits, logged once). At most KV_REPLACE_BUSY_MAX partitions are
 * copying for a move at once (a lost worker with many partitions does not
 * pause every partition's writes together); the others follow at later
 * ticks. A worker whose replica is gone is no ring member once its last
 * replica left. When a join's move displaces a live replica of a partition
 * whose other replica is gone, the gone one leaves instead (the partition
 * would otherwise never settle: the gone one stays stale).
 *
 * Decommissioned ids (`kv decommission`, saved in the catalog before the
 * command is answered) are gone at once, are no ring members for new
 * placements and take nothing when they rejoin. A mark is forgotten (and
 * the catalog saved) once its worker holds no replica and this scheduler
 * saw it stop at least --kv-replace-after ago (60 s when replacement is
 * off): a decommission goes on after a scheduler restart, and a worker
 * that comes back after its mark was forgotten is a new ring member. A gone worker that rejoins after replicas of it left the
 * placement while it was down has its copies of the partitions it no
 * longer holds dropped (the ids are remembered in memory: evicted).
 */
#include <string.h>

#include "common.h"
#include "kv_ring.h"
#include "sched_kv.h"

typedef struct members {
    const char **ids; /* distinct, pointing into tables or into own */
    size_t n;
    char (*own)[KV_ID_MAX]; /* the ready workers' ids */
} members_t;

static void add_member(members_t *m, const char *id)
{
    if (!id[0])
        return;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->ids[i], id) == 0)
            return;
    m->ids[m->n++] = id;
}

static bool collect(sched_t *s, members_t *m)
{
    size_t cap = s->nworkers;
    for (size_t i = 0; i < s->kv->n; i++)
        cap += (size_t)s->kv->tables[i]->nparts * s->kv->tables[i]->nrep;
    m->ids = tsr_mem_calloc(s->mem, cap + 1, sizeof(*m->ids));
    m->own = tsr_mem_calloc(s->mem, s->nworkers + 1, KV_ID_MAX);
    if (!m->ids || !m->own)
        return false;
    for (size_t i = 0; i < s->nworkers; i++) {
        if (s->workers[i]->state != SW_READY)
            continue;
        tsr_sched_kv_worker_id(s, i, m->own[i], KV_ID_MAX);
        if (!tsr_sched_kv_retired(s, m->own[i])) /* takes no new replicas */
            add_member(m, m->own[i]);
    }
    for (size_t i = 0; i < s->kv->n; i++) {
        const skv_table_t *t = s->kv->tables[i];
        for (size_t r = 0; r < (size_t)t->nparts * t->nrep; r++)
            add_member(m, t->reps[r].id);
    }
    return true;
}

/* Plans the move of partition p of t to id (see above); true when it moves. */
static bool plan(sched_t *s, skv_table_t *t, uint32_t p, const char *id, const tsr_kvring_t *ring,
                 const char *const *ids)
{
    skv_rep_t *reps = &t->reps[(size_t)p * t->nrep];
    size_t free_slot = t->nrep;
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0]) {
            if (free_slot == t->nrep)
                free_slot = r;
        } else if (strcmp(reps[r].id, id) == 0 || reps[r].leaving) {
            return false; /* holds it already, or a move is under way */
        }
    }
    if (free_slot == t->nrep)
        return false;
    uint32_t top[TSR_KV_MAX_REPLICAS];
    size_t got =
        tsr_kvring_lookup(ring, tsr_kvring_part_hash(t->name, t->gen, p), t->replicas, top);
    bool in = false;
    for (size_t k = 0; k < got; k++)
        in |= strcmp(ids[top[k]], id) == 0;
    if (!in)
        return false;
    /* a current replica the ring no longer places here; one whose worker
     * is down rather than a live one (the partition keeps its live copies) */
    size_t out = t->nrep;
    bool out_up = true;
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0])
            continue;
        bool placed = false;
        for (size_t k = 0; k < got; k++)
            placed |= strcmp(ids[top[k]], reps[r].id) == 0;
        bool up = tsr_sched_kv_ready_worker(s, reps[r].id) != NULL;
        if (!placed && (out == t->nrep || (out_up && !up))) {
            out = r;
            out_up = up;
        }
    }
    tsr_sched_kv_forget_missed(s, &reps[free_slot]); /* a new copy: refilled whole */
    snprintf(reps[free_slot].id, KV_ID_MAX, "%s", id);
    reps[free_slot].stale = true;
    reps[free_slot].leaving = false;
    if (out < t->nrep)
        reps[out].leaving = true;
    return true;
}

static void drop_evicted(sched_t *s, const char *id);

void tsr_sched_kv_worker_joined(sched_t *s, size_t wi)
{
    tsr_sched_kv_sweep_orphans(s, wi); /* copies it must not keep go (kv_orphans.c) */
    if (!s->kv || s->kv->n == 0)
        return;
    tsr_sched_kv_check_stores(s, wi); /* copies it lost are stale */
    char id[KV_ID_MAX];
    tsr_sched_kv_worker_id(s, wi, id, sizeof(id));
    bool retired = tsr_sched_kv_retired(s, id); /* decommissioned: takes nothing */
    members_t m = {0};
    tsr_kvring_t ring = {0};
    tsr_error_t e;
    tsr_error_clear(&e);
    size_t moved = 0, tables = 0;
    if (!collect(s, &m) || tsr_kvring_build(s->mem, m.ids, m.n, 0, &ring, &e) != TSR_OK) {
        tsr_sched_log(s->p->log, "scheduler", "error: no partition moves to %s: %s", id,
                      e.message[0] ? e.message : "out of memory");
        goto sync;
    }
    for (size_t i = 0; i < s->kv->n && !retired; i++) {
        skv_table_t *t = s->kv->tables[i];
        size_t before = moved;
        for (uint32_t p = 0; p < t->nparts; p++)
            moved += plan(s, t, p, id, &ring, m.ids);
        tables += moved > before;
        if (moved > before)
            tsr_sched_log(s->p->log, "scheduler",
                          "kv table '%s': %zu of %u partition(s) move to %s", t->name,
                          moved - before, t->nparts, id);
    }
    if (moved) {
        tsr_sched_kv_persist(s);
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: %s joined the ring: %zu partition(s) of %zu table(s) move to it", id,
                      moved, tables);
    }
sync:
    drop_evicted(s, id);
    /* the new replicas, and stale ones on a worker that came back */
    for (size_t i = 0; i < s->kv->n; i++)
        for (uint32_t p = 0; p < s->kv->tables[i]->nparts; p++)
            tsr_sched_kv_maybe_sync(s, s->kv->tables[i], p);
    tsr_kvring_free(&ring);
    tsr_mem_free(s->mem, m.own);
    tsr_mem_free(s->mem, m.ids);
}

/* Replica id left the placement while its worker was down: its copy is
 * dropped if it rejoins (drop_evicted; a full list leaves an orphan). */
static void remember_evicted(sched_t *s, const char *id)
{
    for (size_t k = 0; k < s->kv->nevicted; k++)
        if (strcmp(s->kv->evicted[k], id) == 0)
            return;
    if (s->kv->nevicted < KV_RETIRED_MAX)
        snprintf(s->kv->evicted[s->kv->nevicted++], KV_ID_MAX, "%s", id);
}

void tsr_sched_kv_move_settle(sched_t *s, skv_table_t *t, uint32_t part)
{
    skv_rep_t *reps = &t->reps[(size_t)part * t->nrep];
    bool leaving = false, leaving_up = false, behind = false;
    uint32_t fresh = 0, fresh_up = 0;
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0])
            continue;
        bool up = tsr_sched_kv_ready_worker(s, reps[r].id) != NULL;
        if (reps[r].leaving) {
            leaving = true;
            leaving_up |= up;
        } else if (reps[r].stale) {
            behind = true;
        } else {
            fresh++;
            fresh_up += up;
        }
    }
    /* a live leaving copy stays while a fresh one is down (the partition
     * keeps its live copies); a down one goes once the new copy is fresh */
    if (!leaving || behind || fresh < t->replicas || (leaving_up && fresh_up < t->replicas))
        return;
    char gone[TSR_KV_MAX_REPLICAS][KV_ID_MAX];
    size_t ngone = 0;
    for (size_t r = 0; r < t->nrep; r++)
        if (reps[r].id[0] && reps[r].leaving) {
            memcpy(gone[ngone++], reps[r].id, KV_ID_MAX);
            tsr_sched_kv_forget_missed(s, &reps[r]);
            memset(&reps[r], 0, sizeof(reps[r]));
        }
    /* saved before the copy goes: a restart never lists a dropped copy (not
     * saved: the copy stays, an orphan no reader uses) */
    bool saved = tsr_sched_kv_persist(s);
    for (size_t i = 0; i < ngone; i++) {
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: moved; the replica on %s left", t->name, part,
                      gone[i]);
        if (!saved)
            continue;
        if (tsr_sched_kv_ready_worker(s, gone[i])) {
            tsr_sched_kv_drop_copy(s, t, part, gone[i]);
            continue;
        }
        remember_evicted(s, gone[i]); /* down: its copy goes if it ever rejoins */
    }
}

/* Worker id rejoined after replicas of it left the placement while it was
 * down: drops its copies of the partitions it no longer holds (a DROP of a
 * copy it never had is a no-op on the worker). */
static void drop_evicted(sched_t *s, const char *id)
{
    size_t at = 0;
    while (at < s->kv->nevicted && strcmp(s->kv->evicted[at], id) != 0)
        at++;
    if (at == s->kv->nevicted)
        return;
    memmove(s->kv->evicted[at], s->kv->evicted[at + 1],
            (s->kv->nevicted - at - 1) * sizeof(s->kv->evicted[0]));
    s->kv->nevicted--;
    size_t dropped = 0;
    for (size_t i = 0; i < s->kv->n; i++) {
        const skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++) {
            bool holds = false;
            for (size_t r = 0; r < t->nrep && !holds; r++)
                holds = strcmp(t->reps[(size_t)p * t->nrep + r].id, id) == 0;
            if (!holds) {
                tsr_sched_kv_drop_copy(s, t, p, id);
                dropped++;
            }
        }
    }
    tsr_sched_log(s->p->log, "scheduler",
                  "kv: %s rejoined after its replicas were replaced: %zu partition copies it no "
                  "longer holds are dropped on it",
                  id, dropped);
}

/* ---- replacing the replicas of a worker gone for good -------------------------------- */

#define REPLACE_DEFAULT_MS 60000
#define REPLACE_TICK_MS 500

size_t tsr_sched_kv_pick_target(const char *const *order, size_t n, const bool *ready,
                                const char *const *holders, size_t nholders)
{
    for (size_t i = 0; i < n; i++) {
        if (!ready[i])
            continue;
        bool holds = false;
        for (size_t k = 0; k < nholders && !holds; k++)
            holds = strcmp(order[i], holders[k]) == 0;
        if (!holds)
            return i;
    }
    return n;
}

bool tsr_sched_kv_retired(const sched_t *s, const char *id)
{
    for (size_t i = 0; s->kv && i < s->kv->nretired; i++)
        if (strcmp(s->kv->retired[i], id) == 0)
            return true;
    return false;
}

/* Whether replica id is gone: decommissioned, or no ready worker has had
 * the id for longer than `after` ms (since its newest slot died; since the
 * scheduler started when no worker with the id joined this scheduler). */
static bool gone(sched_t *s, const char *id, uint64_t now, uint64_t after)
{
    if (tsr_sched_kv_retired(s, id))
        return true;
    if (tsr_sched_kv_ready_worker(s, id))
        return false;
    uint64_t since = s->started_ms;
    char buf[KV_ID_MAX];
    for (size_t i = s->nworkers; i-- > 0;) {
        tsr_sched_kv_worker_id(s, i, buf, sizeof(buf));
        if (strcmp(buf, id) == 0) {
            since = s->workers[i]->dead_at_ms;
            break;
        }
    }
    return now >= since && now - since >= after;
}

/* A move of the partition is under way and can progress: a leaving replica,
 * and a stale one (the new copy) on a ready worker. */
static bool moving(sched_t *s, const skv_table_t *t, uint32_t p)
{
    const skv_rep_t *reps = &t->reps[(size_t)p * t->nrep];
    bool leaving = false, filling = false;
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0])
            continue;
        leaving |= reps[r].leaving;
        filling |= !reps[r].leaving && reps[r].stale && tsr_sched_kv_ready_worker(s, reps[r].id);
    }
    return leaving && filling;
}

enum { RP_NONE, RP_CHANGED, RP_SWAPPED, RP_BUSY, RP_NO_TARGET };

/* Plans the replacement of a gone replica of partition p (see the top). */
static int plan_replace(sched_t *s, skv_table_t *t, uint32_t p, uint64_t now, uint64_t after,
                        const tsr_kvring_t *ring, const members_t *m, size_t busy, char *who)
{
    skv_rep_t *reps = &t->reps[(size_t)p * t->nrep];
    size_t g = t->nrep, free_slot = t->nrep, leaving = t->nrep;
    bool src = false;
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0]) {
            if (free_slot == t->nrep)
                free_slot = r;
        } else if (reps[r].leaving) {
            leaving = r;
        } else if (gone(s, reps[r].id, now, after)) {
            if (g == t->nrep)
                g = r;
        }
        /* a copy to fill the new one from (a decommissioned worker's too) */
        if (reps[r].id[0] && !reps[r].stale && tsr_sched_kv_ready_worker(s, reps[r].id))
            src = true;
    }
    bool lgone = leaving < t->nrep && gone(s, reps[leaving].id, now, after);
    if (g < t->nrep && lgone && reps[g].stale) {
        /* a move's new copy whose worker went too (its leaving replica is
         * gone as well): a stale copy is never read, so it leaves at once,
         * and the slot takes another worker (below, at the next tick) */
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: the stale replica on %s (gone) leaves", t->name,
                      p, reps[g].id);
        char id[KV_ID_MAX];
        memcpy(id, reps[g].id, KV_ID_MAX);
        tsr_sched_kv_forget_missed(s, &reps[g]);
        memset(&reps[g], 0, sizeof(reps[g]));
        /* its copy is stale in the saved catalog already: a restart never
         * reads it, so it may go before the next save */
        if (tsr_sched_kv_ready_worker(s, id)) {
            if (!s->kv->unsaved)
                tsr_sched_kv_drop_copy(s, t, p, id); /* decommissioned, still up */
        } else
            remember_evicted(s, id);
        return RP_SWAPPED;
    }
    if (g < t->nrep && leaving < t->nrep && !lgone) {
        /* a join's move displaces a live replica: the gone one goes instead */
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: the gone replica on %s leaves instead of the "
                      "one on %s",
                      t->name, p, reps[g].id, reps[leaving].id);
        reps[leaving].leaving = false;
        reps[g].leaving = true;
        return RP_SWAPPED;
    }
    size_t have = 0; /* replicas staying (fresh, or stale and being filled) */
    for (size_t r = 0; r < t->nrep; r++)
        have += reps[r].id[0] && !reps[r].leaving;
    if (g < t->nrep && leaving == t->nrep) {
        snprintf(who, KV_ID_MAX, "%s", reps[g].id); /* the move below */
    } else if (lgone && have < t->replicas && g == t->nrep) {
        /* a gone replica on its way out with no new copy coming: one more */
        snprintf(who, KV_ID_MAX, "%s", reps[leaving].id);
        g = t->nrep;
    } else {
        return RP_NONE;
    }
    if (free_slot == t->nrep || !src)
        return RP_NONE; /* no spare slot; no fresh copy to fill one from */
    if (busy >= KV_REPLACE_BUSY_MAX)
        return RP_BUSY;
    const char *holders[TSR_KV_MAX_REPLICAS];
    size_t nh = 0;
    for (size_t r = 0; r < t->nrep; r++)
        if (reps[r].id[0])
            holders[nh++] = reps[r].id;
    uint32_t *top = tsr_mem_calloc(s->mem, m->n + 1, sizeof(*top));
    const char **order = tsr_mem_calloc(s->mem, m->n + 1, sizeof(*order));
    bool *ready = tsr_mem_calloc(s->mem, m->n + 1, sizeof(*ready));
    int rc = RP_NO_TARGET;
    if (!top || !order || !ready)
        goto cleanup;
    size_t got = tsr_kvring_lookup(ring, tsr_kvring_part_hash(t->name, t->gen, p), m->n, top);
    for (size_t k = 0; k < got; k++) {
        order[k] = m->ids[top[k]];
        ready[k] = tsr_sched_kv_ready_worker(s, order[k]) && !gone(s, order[k], now, after);
    }
    size_t at = tsr_sched_kv_pick_target(order, got, ready, holders, nh);
    if (at == got)
        goto cleanup;
    tsr_sched_log(s->p->log, "scheduler",
                  "kv table '%s' partition %u: the replica on %s is replaced by one on %s", t->name,
                  p, who, order[at]);
    tsr_sched_kv_forget_missed(s, &reps[free_slot]); /* a new copy: refilled whole */
    snprintf(reps[free_slot].id, KV_ID_MAX, "%s", order[at]);
    reps[free_slot].stale = true;
    reps[free_slot].leaving = false;
    if (g < t->nrep)
        reps[g].leaving = true;
    rc = RP_CHANGED;
cleanup:
    tsr_mem_free(s->mem, ready);
    tsr_mem_free(s->mem, order);
    tsr_mem_free(s->mem, top);
    return rc;
}

/* Forgets the decommission marks whose decommission is over (catalog saved
 * when one went): the worker holds no replica, and this scheduler saw it
 * stop at least `after` ms ago. A worker this scheduler never saw (after a
 * restart, one not started again) keeps its mark: it could still come
 * back, and must then take nothing. */
static void forget_finished(sched_t *s, uint64_t now, uint64_t after)
{
    bool changed = false;
    for (size_t i = 0; i < s->kv->nretired;) {
        const char *id = s->kv->retired[i];
        bool holds = false;
        for (size_t k = 0; k < s->kv->n && !holds; k++) {
            const skv_table_t *t = s->kv->tables[k];
            for (size_t r = 0; r < (size_t)t->nparts * t->nrep && !holds; r++)
                holds = strcmp(t->reps[r].id, id) == 0;
        }
        bool stopped = false; /* its newest slot died, long enough ago */
        char buf[KV_ID_MAX];
        for (size_t w = s->nworkers; !holds && w-- > 0;) {
            tsr_sched_kv_worker_id(s, w, buf, sizeof(buf));
            if (strcmp(buf, id) == 0) {
                uint64_t at = s->workers[w]->dead_at_ms;
                stopped = at && !tsr_sched_kv_ready_worker(s, id) && now >= at && now - at >= after;
                break;
            }
        }
        if (holds || !stopped) {
            i++;
            continue;
        }
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: worker %s holds no replica and has stopped: its decommission is over "
                      "(forgotten)",
                      id);
        memmove(s->kv->retired[i], s->kv->retired[i + 1],
                (s->kv->nretired - i - 1) * sizeof(s->kv->retired[0]));
        s->kv->nretired--;
        changed = true;
    }
    if (changed)
        (void)tsr_sched_kv_persist(s); /* failed: logged; a restart forgets it again */
}

/* Whether any replica in the catalog is gone (the cheap test before a ring). */
static bool any_gone(sched_t *s, uint64_t now, uint64_t after)
{
    for (size_t i = 0; i < s->kv->n; i++) {
        const skv_table_t *t = s->kv->tables[i];
        for (size_t r = 0; r < (size_t)t->nparts * t->nrep; r++)
            if (t->reps[r].id[0] && !t->reps[r].leaving && gone(s, t->reps[r].id, now, after))
                return true;
    }
    return false;
}

void tsr_sched_kv_tick(sched_t *s)
{
    int64_t conf = s->p->kv_replace_after_ms;
    if (!s->kv || (s->kv->n == 0 && s->kv->nretired == 0))
        return;
    uint64_t now = tsr_sched_now_ms();
    if (now < s->kv->next_replace_ms)
        return;
    s->kv->next_replace_ms = now + REPLACE_TICK_MS;
    size_t busy = 0;
    for (size_t i = 0; i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++) {
            skv_part_t *sp = &t->parts[p];
            /* a move whose copies are all fresh and up ends here when no
             * resync will end it (its fresh replica was down at the end) */
            if (!sp->sync && sp->writes == 0)
                tsr_sched_kv_move_settle(s, t, p);
            if (!moving(s, t, p))
                continue;
            busy++;
            /* a failed copy is tried again (after its 5 s pause) */
            tsr_sched_kv_maybe_sync(s, t, p);
        }
    }
    tsr_sched_kv_sync_more(s); /* resyncs waiting for a turn (KV_SYNC_MAX) */
    forget_finished(s, now, conf > 0 ? (uint64_t)conf : REPLACE_DEFAULT_MS);
    if (s->kv->n == 0 || (conf < 0 && s->kv->nretired == 0))
        return; /* never: only decommissioned workers are gone */
    uint64_t after = conf < 0 ? UINT64_MAX : conf == 0 ? REPLACE_DEFAULT_MS : (uint64_t)conf;
    if (!any_gone(s, now, after)) {
        s->kv->replace_blocked = false;
        return;
    }
    members_t m = {0};
    tsr_kvring_t ring = {0};
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!collect(s, &m) || m.n == 0 || tsr_kvring_build(s->mem, m.ids, m.n, 0, &ring, &e) != TSR_OK)
        goto cleanup;
    bool changed = false, blocked = false;
    char who[KV_ID_MAX] = "", blocked_who[KV_ID_MAX] = "";
    size_t planned = 0;
    for (size_t i = 0; i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++) {
            int rc = plan_replace(s, t, p, now, after, &ring, &m, busy, who);
            changed |= rc == RP_SWAPPED;
            if (rc == RP_CHANGED) {
                changed = true;
                planned++;
                busy += moving(s, t, p);
            } else if (rc == RP_NO_TARGET && !blocked) {
                blocked = true;
                memcpy(blocked_who, who, sizeof(who));
            }
        }
    }
    if (blocked && !s->kv->replace_blocked)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: the replicas on %s (gone) wait: no other ready worker can take them; "
                      "start a worker to restore their replica count",
                      blocked_who);
    s->kv->replace_blocked = blocked;
    if (!changed)
        goto cleanup;
    if (planned)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: %zu partition(s) replace a replica on a gone worker (%zu copying)",
                      planned, busy);
    /* saved before anything is copied or dropped, like a join's move */
    tsr_sched_kv_persist(s);
    for (size_t i = 0; i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++) {
            skv_part_t *sp = &t->parts[p];
            tsr_sched_kv_maybe_sync(s, t, p);
            /* a swap whose new copy is fresh already settles now */
            if (!sp->sync && sp->writes == 0)
                tsr_sched_kv_move_settle(s, t, p);
        }
    }
cleanup:
    tsr_kvring_free(&ring);
    tsr_mem_free(s->mem, m.own);
    tsr_mem_free(s->mem, m.ids);
}

void tsr_sched_kv_decommission(sched_t *s, tsr_rpc_req_t *req, const char *id)
{
    uint32_t held = 0;
    for (size_t i = 0; i < s->kv->n; i++) {
        const skv_table_t *t = s->kv->tables[i];
        for (size_t r = 0; r < (size_t)t->nparts * t->nrep; r++)
            held += !t->reps[r].leaving && strcmp(t->reps[r].id, id) == 0;
    }
    char msg[KV_ID_MAX + 100];
    if (!id[0] || (held == 0 && !tsr_sched_kv_ready_worker(s, id))) {
        snprintf(msg, sizeof(msg), "no worker '%.300s' holds kv replicas or is up", id);
        tsr_proto_reply_error(s->t, s->mem, req, TSR_ERR_NOT_FOUND, msg,
                              "'tessera kv describe TABLE' names the workers (host:data-dir, "
                              "or worker-N without a data dir)");
        return;
    }
    if (!tsr_sched_kv_retired(s, id)) {
        if (s->kv->nretired == KV_RETIRED_MAX) {
            tsr_proto_reply_error(s->t, s->mem, req, TSR_ERR_UNAVAILABLE,
                                  "too many decommissions in progress",
                                  "a decommission ends once the worker holds no replica and "
                                  "is stopped: stop the decommissioned workers first");
            return;
        }
        snprintf(s->kv->retired[s->kv->nretired++], KV_ID_MAX, "%s", id);
        /* durable before it is acknowledged: a restarted scheduler goes on */
        if (!tsr_sched_kv_persist(s)) {
            s->kv->nretired--;
            tsr_proto_reply_error(s->t, s->mem, req, TSR_ERR_IO,
                                  "the kv catalog could not be saved: nothing was decommissioned",
                                  "see the scheduler's log");
            return;
        }
    }
    tsr_sched_log(s->p->log, "scheduler",
                  "kv: worker %s decommissioned: its %u replica(s) move to other workers", id,
                  held);
    s->kv->next_replace_ms = 0; /* now */
    tsr_sched_kv_tick(s);
    uint8_t out[4];
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(held >> (8 * i));
    tsr_rpc_reply(s->t, req, TSR_OK, out, sizeof(out));
}
