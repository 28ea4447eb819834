/*
 * kv_orphans.c - drops the partition copies a joining worker keeps that the
 * kv catalog no longer gives it (docs/kv.md "On a cluster", Orphan copies).
 *
 * How a worker ends up with one: a table dropped, or a replica of it
 * replaced or moved away, while the worker was down (the scheduler cannot
 * drop a copy on a dead worker), or such a drop the scheduler remembered
 * in memory only and lost with a restart. Each copy is a store table
 * "<name>.<gen>.<partition>" in the worker's data dir, and nothing reads it
 * again (a re-created table has another gen), so it only holds disk and
 * memory: on every join of a worker with a data dir the scheduler asks it
 * for its tables (KV_RUN pop LIST) and drops each one whose table, gen and
 * partition the catalog does not list on that worker in any slot (fresh,
 * stale or leaving).
 *
 * Why this is safe: the catalog always names a replica before its copy
 * exists on a worker (a create only records the placement, copies are made
 * by the first write; a move adds the new slot before filling it) and
 * removes it before dropping it, so a copy the current catalog does not
 * list is one nobody reads; the check runs when the list arrives, against
 * the catalog of that moment, on the scheduler's one thread. Only names of
 * that shape are touched, and only by a scheduler with --data-dir: without
 * one its catalog starts empty at every restart, and every copy would look
 * orphaned.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

typedef struct sweep_call {
    sched_t *s;
    char id[KV_ID_MAX];
    tsr_wbuf_t msg; /* the request: the transport reads it until the call ends */
} sweep_call_t;

/* "<name>.<gen>.<part>" -> its parts; false for any other shape. */
static bool parse_store_name(const char *sn, char *name, size_t size, uint64_t *gen,
                             uint32_t *part)
{
    const char *d1 = strchr(sn, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.') || d1 == sn || (size_t)(d1 - sn) >= size)
        return false;
    char *end = NULL;
    unsigned long long g = strtoull(d1 + 1, &end, 10);
    if (end != d2 || d2 == d1 + 1)
        return false;
    unsigned long p = strtoul(d2 + 1, &end, 10);
    if (*end || !d2[1] || p >= TSR_KV_MAX_PARTITIONS)
        return false;
    memcpy(name, sn, (size_t)(d1 - sn));
    name[d1 - sn] = '\0';
    *gen = g;
    *part = (uint32_t)p;
    return true;
}

/* Whether the catalog lists a replica of (name, gen, part) on worker id. */
static bool listed(sched_t *s, const char *name, uint64_t gen, uint32_t part, const char *id)
{
    const skv_table_t *t = tsr_sched_kv_find(s, name);
    if (!t || t->gen != gen || part >= t->nparts)
        return false;
    for (size_t r = 0; r < t->nrep; r++)
        if (strcmp(t->reps[(size_t)part * t->nrep + r].id, id) == 0)
            return true;
    return false;
}

static void on_list(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    sweep_call_t *c = arg;
    sched_t *s = c->s;
    sworker_t *w = status == TSR_OK ? tsr_sched_kv_ready_worker(s, c->id) : NULL;
    if (w) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, reply->data, reply->len);
        uint32_t n = tsr_rbuf_u32(&r);
        size_t dropped = 0;
        for (uint32_t i = 0; i < n && !r.bad; i++) {
            const char *sn = tsr_rbuf_str(&r);
            char name[TSR_KV_TABLE_NAME_MAX + 1];
            uint64_t gen = 0;
            uint32_t part = 0;
            if (r.bad || !parse_store_name(sn, name, sizeof(name), &gen, &part) ||
                listed(s, name, gen, part, c->id))
                continue;
            tsr_sched_log(s->p->log, "scheduler",
                          "kv: %s holds a copy %s the catalog does not give it: dropped", c->id,
                          sn);
            tsr_sched_kv_drop_store_table(s, w, sn);
            dropped++;
        }
        if (r.bad)
            tsr_sched_log(s->p->log, "scheduler", "error: %s answered a malformed table list",
                          c->id);
        else if (dropped)
            tsr_sched_log(s->p->log, "scheduler", "kv: %zu orphan copies dropped on %s", dropped,
                          c->id);
    }
    tsr_rpc_msg_release(s->t, reply);
    tsr_wbuf_free(&c->msg);
    tsr_mem_free(s->mem, c);
}

void tsr_sched_kv_sweep_orphans(sched_t *s, size_t wi)
{
    if (!s->p->data_dir || !s->kv || !s->workers[wi]->data_dir[0])
        return; /* no persistent catalog, or a worker keeping nothing on disk */
    sweep_call_t *c = tsr_mem_calloc(s->mem, 1, sizeof(*c));
    if (!c)
        return;
    c->s = s;
    tsr_sched_kv_worker_id(s, wi, c->id, sizeof(c->id));
    tsr_wbuf_t *b = &c->msg;
    tsr_wbuf_init(b, s->mem);
    tsr_wbuf_str(b, TSR_KV_LIST_TABLE);
    tsr_wbuf_u32(b, 0);
    tsr_wbuf_u32(b, 0);
    tsr_wbuf_u8(b, TSR_KV_POP_LIST);
    tsr_error_t e;
    tsr_error_clear(&e);
    if (b->failed || tsr_rpc_call_async(s->t, s->workers[wi]->peer, TSR_MSG_KV_RUN, b->data,
                                        b->len, KV_CALL_MS, on_list, c, &e) != TSR_OK) {
        tsr_wbuf_free(b);
        tsr_mem_free(s->mem, c);
    }
}
