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
 * move. Workers leaving do not move partitions (their replicas stay, down).
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
static bool plan(skv_table_t *t, uint32_t p, const char *id, const tsr_kvring_t *ring,
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
    size_t out = t->nrep; /* a current replica the ring no longer places here */
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0])
            continue;
        bool placed = false;
        for (size_t k = 0; k < got; k++)
            placed |= strcmp(ids[top[k]], reps[r].id) == 0;
        if (!placed)
            out = r;
    }
    snprintf(reps[free_slot].id, KV_ID_MAX, "%s", id);
    reps[free_slot].stale = true;
    reps[free_slot].leaving = false;
    if (out < t->nrep)
        reps[out].leaving = true;
    return true;
}

void tsr_sched_kv_worker_joined(sched_t *s, size_t wi)
{
    if (!s->kv || s->kv->n == 0)
        return;
    char id[KV_ID_MAX];
    tsr_sched_kv_worker_id(s, wi, id, sizeof(id));
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
    for (size_t i = 0; i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        size_t before = moved;
        for (uint32_t p = 0; p < t->nparts; p++)
            moved += plan(t, p, id, &ring, m.ids);
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
    /* the new replicas, and stale ones on a worker that came back */
    for (size_t i = 0; i < s->kv->n; i++)
        for (uint32_t p = 0; p < s->kv->tables[i]->nparts; p++)
            tsr_sched_kv_maybe_sync(s, s->kv->tables[i], p);
    tsr_kvring_free(&ring);
    tsr_mem_free(s->mem, m.own);
    tsr_mem_free(s->mem, m.ids);
}

void tsr_sched_kv_move_settle(sched_t *s, skv_table_t *t, uint32_t part)
{
    skv_rep_t *reps = &t->reps[(size_t)part * t->nrep];
    bool leaving = false, behind = false;
    uint32_t fresh = 0;
    for (size_t r = 0; r < t->nrep; r++) {
        if (!reps[r].id[0])
            continue;
        if (reps[r].leaving)
            leaving = true;
        else if (reps[r].stale)
            behind = true;
        else
            fresh++;
    }
    if (!leaving || behind || fresh < t->replicas)
        return;
    char gone[TSR_KV_MAX_REPLICAS][KV_ID_MAX];
    size_t ngone = 0;
    for (size_t r = 0; r < t->nrep; r++)
        if (reps[r].id[0] && reps[r].leaving) {
            memcpy(gone[ngone++], reps[r].id, KV_ID_MAX);
            memset(&reps[r], 0, sizeof(reps[r]));
        }
    /* saved before the copy goes: a restart never lists a dropped copy (not
     * saved: the copy stays, an orphan no reader uses) */
    bool saved = tsr_sched_kv_persist(s);
    for (size_t i = 0; i < ngone; i++) {
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: moved; the replica on %s left", t->name, part,
                      gone[i]);
        if (saved)
            tsr_sched_kv_drop_copy(s, t, part, gone[i]);
    }
}
