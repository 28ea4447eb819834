/*
 * kv_missed.c - what decides whether a stale kv replica is refilled with
 * only the keys it missed (a delta) or copied whole (docs/kv.md "On a
 * cluster", Delta resync; the copy itself is sched_kv_sync.c):
 *
 *   - missed sets: a replica that goes stale from fresh starts a set of the
 *     keys of the write it missed, and of every write to the partition
 *     while it stays stale (tsr_sched_kv_note_write), with the identity of
 *     the store its copy is in (sworker_t.store_id); a set past
 *     KV_MISSED_MAX, or one whose growth takes all of them past
 *     KV_MISSED_TOTAL_MAX (the scheduler's memory), is forgotten;
 *   - doubt: a write whose outcome is unknown on a replica that never
 *     answered, with no replica marked stale for it, may leave copies
 *     different on a key no set names: the partition's sets are forgotten
 *     and its stale replicas copied whole until a whole copy clears it;
 *   - store identities: each replica records the store holding its copy
 *     (saved in the catalog); a worker that joins with another store under
 *     a replica's id lost that copy, which is marked stale at once
 *     (tsr_sched_kv_check_stores).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

bool tsr_sched_kv_msg_keys(kv_keyset_t *set, const tsr_wbuf_t *msg, uint8_t *pop)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg->data, msg->len);
    tsr_rbuf_str(&r);
    tsr_rbuf_u32(&r);
    tsr_rbuf_u32(&r);
    *pop = tsr_rbuf_u8(&r);
    size_t kl, vl;
    const void *key;
    switch (*pop) {
    case TSR_KV_POP_PUT:
    case TSR_KV_POP_DEL:
        key = tsr_rbuf_blob(&r, &kl);
        if (*pop == TSR_KV_POP_PUT)
            tsr_rbuf_blob(&r, &vl);
        return tsr_rbuf_done(&r) && tsr_kv_keyset_add(set, key, kl);
    case TSR_KV_POP_LOAD:
    case TSR_KV_POP_TAPPLY: {
        uint32_t n = tsr_rbuf_u32(&r);
        for (uint32_t i = 0; i < n && !r.bad; i++) {
            if (*pop == TSR_KV_POP_TAPPLY)
                tsr_rbuf_u8(&r);
            key = tsr_rbuf_blob(&r, &kl);
            tsr_rbuf_blob(&r, &vl);
            if (!r.bad && !tsr_kv_keyset_add(set, key, kl))
                return false;
        }
        return tsr_rbuf_done(&r);
    }
    default:
        return false;
    }
}

/* The newest worker (up or not) with this replica id: the store its copy
 * was in; NULL when none ever joined. */
static const sworker_t *last_worker(sched_t *s, const char *id)
{
    char buf[KV_ID_MAX];
    for (size_t i = s->nworkers; i-- > 0;) {
        tsr_sched_kv_worker_id(s, i, buf, sizeof(buf));
        if (strcmp(buf, id) == 0)
            return s->workers[i];
    }
    return NULL;
}

void tsr_sched_kv_forget_missed(sched_t *s, skv_rep_t *rep)
{
    if (!rep->missed)
        return;
    if (s->kv) /* (a table's last reference may go after the catalog, at shutdown) */
        s->kv->missed_bytes -= tsr_kv_keyset_bytes(rep->missed);
    tsr_kv_keyset_free(rep->missed);
    tsr_mem_free(s->mem, rep->missed);
    rep->missed = NULL;
    rep->missed_store = 0;
}

/* Adds msg's keys to the missed set of replica r of (t, part). Past
 * KV_MISSED_MAX for the set, past the scheduler's bound for all of them
 * (s->kv->missed_max), or out of memory, the set is forgotten (logged):
 * the copy will be refilled whole. */
static void add_missed(sched_t *s, skv_table_t *t, uint32_t part, size_t r, const tsr_wbuf_t *msg)
{
    skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
    if (!rep->missed)
        return;
    size_t before = tsr_kv_keyset_bytes(rep->missed);
    uint8_t pop;
    bool ok = !msg->failed && tsr_sched_kv_msg_keys(rep->missed, msg, &pop);
    size_t after = tsr_kv_keyset_bytes(rep->missed);
    s->kv->missed_bytes += after - before; /* a set only grows */
    const char *why = !ok                                       ? "unreadable or out of memory"
                      : after > KV_MISSED_MAX                   ? "past its bound"
                      : s->kv->missed_bytes > s->kv->missed_max ? "past the scheduler's bound"
                                                                : NULL;
    if (!why)
        return;
    tsr_sched_log(s->p->log, "scheduler",
                  "kv table '%s' partition %u: the keys the replica on %s missed are forgotten "
                  "(%zu bytes, %s; %zu bytes in all): it will be copied whole",
                  t->name, part, rep->id, after, why, s->kv->missed_bytes);
    tsr_sched_kv_forget_missed(s, rep);
}

void tsr_sched_kv_missed_start(sched_t *s, skv_table_t *t, uint32_t part, size_t r,
                               const tsr_wbuf_t *msg)
{
    skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
    tsr_sched_kv_forget_missed(s, rep);
    const sworker_t *w = last_worker(s, rep->id);
    if (!msg || !w || w->store_id == 0 || t->parts[part].doubt)
        return; /* a copy of unknown identity or content: refilled whole */
    rep->missed = tsr_mem_alloc(s->mem, sizeof(*rep->missed));
    if (!rep->missed)
        return;
    tsr_kv_keyset_init(rep->missed, s->mem);
    rep->missed_store = w->store_id;
    add_missed(s, t, part, r, msg);
}

void tsr_sched_kv_doubt(sched_t *s, skv_table_t *t, uint32_t part)
{
    skv_part_t *sp = &t->parts[part];
    if (!sp->doubt)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: a write's outcome is unknown on a replica "
                      "that did not answer; its stale replicas will be copied whole",
                      t->name, part);
    sp->doubt = true;
    for (size_t r = 0; r < t->nrep; r++)
        tsr_sched_kv_forget_missed(s, &t->reps[(size_t)part * t->nrep + r]);
    /* a running resync's source may apply that write after the page that
     * holds the key: it fails, to be retried as a whole copy */
    if (sp->sync)
        tsr_sched_kv_sync_fail(sp->sync);
}

void tsr_sched_kv_note_write(sched_t *s, skv_table_t *t, uint32_t part, const tsr_wbuf_t *msg)
{
    kv_sync_t *y = t->parts[part].sync;
    for (size_t r = 0; r < t->nrep; r++)
        if (t->reps[(size_t)part * t->nrep + r].stale)
            add_missed(s, t, part, r, msg);
    if (y)
        tsr_sched_kv_sync_forward(y, msg);
}

void tsr_sched_kv_check_stores(sched_t *s, size_t wi)
{
    const sworker_t *w = s->workers[wi];
    char id[KV_ID_MAX];
    tsr_sched_kv_worker_id(s, wi, id, sizeof(id));
    bool changed = false;
    for (size_t i = 0; s->kv && i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++)
            for (size_t r = 0; r < t->nrep; r++) {
                skv_rep_t *rep = &t->reps[(size_t)p * t->nrep + r];
                if (!rep->id[0] || strcmp(rep->id, id) != 0 || rep->store == w->store_id)
                    continue;
                if (w->store_id == 0)
                    continue; /* this worker keeps no identity: nothing to compare */
                if (rep->store == 0) {
                    /* not known before (a catalog of an older scheduler) */
                    rep->store = w->store_id;
                    changed = true;
                    continue;
                }
                if (!rep->stale)
                    tsr_sched_log(s->p->log, "scheduler",
                                  "kv table '%s' partition %u: the replica on %s came back "
                                  "with another store (its data dir was emptied or "
                                  "replaced, or its log cut in recovery): it is stale until "
                                  "copied again",
                                  t->name, p, id);
                tsr_sched_kv_mark_stale(s, t, p, r, NULL); /* saves the catalog */
                tsr_sched_kv_forget_missed(s, rep);        /* no delta for another store */
                rep->store = w->store_id;
                changed = true;
            }
    }
    if (changed)
        tsr_sched_kv_persist(s);
}
