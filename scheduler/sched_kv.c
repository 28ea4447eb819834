/*
 * sched_kv.c - the scheduler's part of the cluster kv store: the table
 * catalog, placement of partitions on workers, and routing of partition
 * requests to their replicas with primary-backup replication (docs/kv.md
 * "On a cluster"; messages in kv_msg.h).
 *
 * Catalog: name -> {gen, partitions, replicas, max key/value, placement}.
 * gen is unique per create (start time in ms * 1024 + a counter), so a
 * table dropped and created again never meets the old one's data on a
 * worker that missed the drop. With a data dir (--data-dir) the catalog is
 * saved to <dir>/kv-catalog on every change and loaded at start-up
 * (kv_catalog.c); a change that must not be forgotten (a replica marked
 * stale) is saved before the write that caused it is acknowledged.
 *
 * Placement: at create, a consistent-hash ring (engine/kv/ring.c) over the
 * ids of the ready workers; partition p goes to the first `replicas`
 * distinct members from the position of (name, gen, p). A worker id is
 * "host:data-dir" when the worker has a data dir (so a worker restarted on
 * the same dir is the same member and finds its partitions in its WAL), else
 * "worker-N" (its slot). Each partition has one spare replica slot: a
 * worker that joins the ring later takes its share of the existing
 * partitions through it (kv_rebalance.c: added stale, resynced, then the
 * replica it displaced leaves).
 *
 * Replication (primary-backup, writes through here): a partition's replicas
 * are in ring order, the first usable one acts as primary. A replica is
 * usable when it is not stale and a ready worker has its id. An upsert
 * (PUT, LOAD) is its own effect and runs on every usable replica at once;
 * a conditional write (insert, update, delete) runs on the primary with its
 * own checks, and if the primary answers OK its effect (PUT or DEL) runs on
 * every other usable replica in parallel. Only when they all answered is
 * the client acknowledged: each replica's write returned after its WAL record was
 * fdatasync'ed, so an acknowledged write is durable on every usable replica.
 * One write per partition is in flight at a time (the others queue in
 * arrival order), so all replicas apply a partition's writes in one order.
 * A replica that could not take a write acknowledged elsewhere (its worker
 * is down, or the call failed) is marked stale and is not used until it is
 * resynced, so it can never serve an old value. Resync (maybe_sync,
 * sched_kv_sync.c): once a stale replica's worker is up and a fresh replica
 * exists, the write in flight finishes, the stale copy is dropped and
 * refilled page by page (SCAN from the fresh one, LOAD into it) while the
 * partition's writes go on, their effects queued for the copy too; then it
 * is usable again. A primary that fails
 * without answering is skipped for the next usable replica (the failover);
 * a primary that answered an error (exists, not found) ends the write with
 * that error and nothing runs on the backups. Reads go to the first usable
 * replica, falling over to the next when a call fails.
 *
 * The write path (queueing, upserts to all, primary then backups,
 * failover, marking replicas stale) is in sched_kv_repl.c.
 *
 * Everything runs on the scheduler's one thread (sched_internal.h); a
 * table's refcount keeps it alive for the calls in flight after a drop.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kv_msg.h"
#include "kv_ring.h"
#include "sched_kv.h"
#include "sched_txn.h"
#include "tessera/kv.h"

static void reply_err(sched_t *s, tsr_rpc_req_t *req, tsr_status_t rc, const char *msg,
                      const char *hint)
{
    tsr_proto_reply_error(s->t, s->mem, req, rc, msg, hint);
}

void tsr_sched_kv_table_unref(sched_t *s, skv_table_t *t)
{
    if (t && --t->refs == 0) {
        for (size_t i = 0; t->reps && i < (size_t)t->nparts * t->nrep; i++)
            tsr_sched_kv_forget_missed(s, &t->reps[i]);
        tsr_mem_free(s->mem, t->parts);
        tsr_mem_free(s->mem, t->reps);
        tsr_mem_free(s->mem, t);
    }
}

skv_table_t *tsr_sched_kv_table_new(sched_t *s, uint32_t nparts, uint32_t nslots)
{
    skv_table_t *t = tsr_mem_calloc(s->mem, 1, sizeof(*t));
    if (!t)
        return NULL;
    t->nparts = nparts;
    t->nrep = nslots;
    t->refs = 1;
    t->reps = tsr_mem_calloc(s->mem, (size_t)nparts * nslots, sizeof(*t->reps));
    t->parts = tsr_mem_calloc(s->mem, nparts, sizeof(*t->parts));
    if (!t->reps || !t->parts) {
        tsr_sched_kv_table_unref(s, t);
        return NULL;
    }
    return t;
}

bool tsr_sched_kv_table_add(sched_t *s, skv_table_t *t)
{
    struct skv *kv = s->kv;
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? 2 * kv->cap : 8;
        skv_table_t **nt = tsr_mem_realloc(s->mem, kv->tables, cap * sizeof(*nt));
        if (!nt)
            return false;
        kv->tables = nt;
        kv->cap = cap;
    }
    kv->tables[kv->n++] = t;
    return true;
}

void tsr_sched_kv_free(sched_t *s)
{
    struct skv *kv = s->kv;
    if (!kv)
        return;
    tsr_sched_kv_sync_free_all(s);
    for (size_t i = 0; i < kv->n; i++)
        tsr_sched_kv_table_unref(s, kv->tables[i]);
    tsr_mem_free(s->mem, kv->tables);
    tsr_mem_free(s->mem, kv);
    s->kv = NULL;
}

void tsr_sched_kv_worker_id(const sched_t *s, size_t i, char *buf, size_t size)
{
    const sworker_t *w = s->workers[i];
    if (w->data_dir[0])
        snprintf(buf, size, "%s:%s", w->host, w->data_dir);
    else
        snprintf(buf, size, "worker-%zu", i + 1);
}

/* The newest ready worker with this id (a restarted worker has a new slot). */
sworker_t *tsr_sched_kv_ready_worker(sched_t *s, const char *id)
{
    char buf[KV_ID_MAX];
    for (size_t i = s->nworkers; i-- > 0;) {
        if (s->workers[i]->state != SW_READY)
            continue;
        tsr_sched_kv_worker_id(s, i, buf, sizeof(buf));
        if (strcmp(buf, id) == 0)
            return s->workers[i];
    }
    return NULL;
}

static skv_table_t *find(struct skv *kv, const char *name, size_t *at)
{
    for (size_t i = 0; kv && i < kv->n; i++)
        if (strcmp(kv->tables[i]->name, name) == 0) {
            if (at)
                *at = i;
            return kv->tables[i];
        }
    return NULL;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TSR_KV_TABLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void encode_desc(sched_t *s, tsr_wbuf_t *b, const skv_table_t *t)
{
    tsr_wbuf_str(b, t->name);
    tsr_wbuf_u64(b, t->gen);
    tsr_wbuf_u32(b, t->nparts);
    tsr_wbuf_u32(b, t->replicas);
    tsr_wbuf_u32(b, t->max_key);
    tsr_wbuf_u32(b, t->max_value);
    for (uint32_t p = 0; p < t->nparts; p++) {
        uint32_t n = 0; /* the filled slots (a move in progress has one more) */
        for (uint32_t r = 0; r < t->nrep; r++)
            n += t->reps[(size_t)p * t->nrep + r].id[0] != '\0';
        tsr_wbuf_u32(b, n);
        for (uint32_t r = 0; r < t->nrep; r++) {
            const skv_rep_t *rep = &t->reps[(size_t)p * t->nrep + r];
            if (!rep->id[0])
                continue;
            tsr_wbuf_str(b, rep->id);
            tsr_wbuf_u8(b, rep->stale                                      ? TSR_KV_REP_STALE
                           : tsr_sched_kv_ready_worker(s, rep->id) != NULL ? TSR_KV_REP_UP
                                                                           : TSR_KV_REP_DOWN);
        }
    }
}

void tsr_sched_kv_stats(sched_t *s, tsr_sched_kv_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    struct skv *kv = s->kv;
    if (!kv)
        return;
    out->tables = kv->n;
    /* the ready workers' ids once (a lookup per replica would format
     * every worker's id again: parts x replicas x workers) */
    char(*up)[KV_ID_MAX] = tsr_mem_calloc(s->mem, s->nworkers ? s->nworkers : 1, KV_ID_MAX);
    size_t nup = 0;
    for (size_t i = 0; up && i < s->nworkers; i++)
        if (s->workers[i]->state == SW_READY)
            tsr_sched_kv_worker_id(s, i, up[nup++], KV_ID_MAX);
    for (size_t i = 0; i < kv->n; i++) {
        const skv_table_t *t = kv->tables[i];
        out->partitions += t->nparts;
        for (uint32_t p = 0; p < t->nparts; p++) {
            const skv_part_t *sp = &t->parts[p];
            out->in_doubt += sp->doubt;
            for (const kv_op_t *q = sp->qhead; q; q = q->next)
                out->writes_waiting++;
            for (uint32_t r = 0; r < t->nrep; r++) {
                const skv_rep_t *rep = &t->reps[(size_t)p * t->nrep + r];
                if (!rep->id[0])
                    continue;
                bool ready = false;
                for (size_t w = 0; w < nup && !ready; w++)
                    ready = strcmp(up[w], rep->id) == 0;
                if (rep->stale)
                    out->replicas_stale++;
                else if (ready)
                    out->replicas_up++;
                else
                    out->replicas_down++;
            }
        }
    }
    tsr_mem_free(s->mem, up);
    out->resyncs_running = kv->syncs;
    memcpy(out->resyncs, kv->resyncs, sizeof(out->resyncs));
    out->resyncs_failed = kv->resyncs_failed;
    out->resync_pairs = kv->resync_pairs;
    memcpy(out->compares, kv->compares, sizeof(out->compares));
    out->puts = kv->puts;
    out->put_writes = kv->put_writes;
    out->put_grouped = kv->put_grouped;
}

static void reply_buf(sched_t *s, tsr_rpc_req_t *req, tsr_wbuf_t *b)
{
    if (b->failed)
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
    else
        tsr_rpc_reply(s->t, req, TSR_OK, b->data, b->len);
    tsr_wbuf_free(b);
}

static void store_name(const skv_table_t *t, uint32_t part, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%llu.%u", t->name, (unsigned long long)t->gen, part);
}

void tsr_sched_kv_encode_run(const skv_table_t *t, uint32_t part, uint8_t pop, const void *payload,
                             size_t plen, tsr_wbuf_t *b)
{
    char sn[TSR_KV_TABLE_NAME_MAX + 48];
    store_name(t, part, sn, sizeof(sn));
    tsr_wbuf_str(b, sn);
    tsr_wbuf_u32(b, t->max_key);
    tsr_wbuf_u32(b, t->max_value);
    tsr_wbuf_u8(b, pop);
    tsr_wbuf_bytes(b, payload, plen);
}

/* ---- create, drop, list ------------------------------------------------------------ */

static void op_create(sched_t *s, tsr_rpc_req_t *req, const char *name, tsr_rbuf_t *r)
{
    uint32_t nparts = tsr_rbuf_u32(r), nrep = tsr_rbuf_u32(r);
    uint32_t max_key = tsr_rbuf_u32(r), max_value = tsr_rbuf_u32(r);
    if (!tsr_rbuf_done(r)) {
        reply_err(s, req, TSR_ERR_BAD_INPUT, "malformed kv create request", NULL);
        return;
    }
    char msg[400];
    if (!valid_name(name)) {
        snprintf(msg, sizeof(msg), "bad table name '%.80s'", name);
        reply_err(s, req, TSR_ERR_INVALID_ARG, msg,
                  "1..64 characters of letters, digits, '_' and '-'");
        return;
    }
    if (find(s->kv, name, NULL)) {
        snprintf(msg, sizeof(msg), "table '%s' already exists", name);
        reply_err(s, req, TSR_ERR_EXISTS, msg, "drop it first ('tessera kv drop')");
        return;
    }
    nparts = nparts ? nparts : TSR_KV_DEFAULT_PARTITIONS;
    max_key = max_key ? max_key : TSR_KV_DEFAULT_MAX_KEY;
    max_value = max_value ? max_value : TSR_KV_DEFAULT_MAX_VALUE;
    if (nparts > TSR_KV_MAX_PARTITIONS || max_key > TSR_KV_MAX_KEY_LIMIT ||
        max_value > TSR_KV_MAX_VALUE_LIMIT || nrep > TSR_KV_MAX_REPLICAS) {
        snprintf(msg, sizeof(msg),
                 "out of range: partitions 1..%u, replicas 1..%u, max key 1..%u, max value "
                 "1..%u bytes",
                 TSR_KV_MAX_PARTITIONS, TSR_KV_MAX_REPLICAS, TSR_KV_MAX_KEY_LIMIT,
                 TSR_KV_MAX_VALUE_LIMIT);
        reply_err(s, req, TSR_ERR_INVALID_ARG, msg, NULL);
        return;
    }
    /* the ring's members: distinct ids of the ready workers */
    size_t nids = 0;
    char(*ids)[KV_ID_MAX] = tsr_mem_calloc(s->mem, s->nworkers + 1, KV_ID_MAX);
    const char **idp = tsr_mem_calloc(s->mem, s->nworkers + 1, sizeof(*idp));
    skv_table_t *t = NULL;
    tsr_kvring_t ring = {0};
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!ids || !idp) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        goto cleanup;
    }
    for (size_t i = 0; i < s->nworkers; i++) {
        if (s->workers[i]->state != SW_READY)
            continue;
        tsr_sched_kv_worker_id(s, i, ids[nids], KV_ID_MAX);
        bool dup = tsr_sched_kv_retired(s, ids[nids]); /* decommissioned: takes none */
        for (size_t j = 0; j < nids && !dup; j++)
            dup = strcmp(ids[j], ids[nids]) == 0;
        if (!dup) {
            idp[nids] = ids[nids];
            nids++;
        }
    }
    if (nids == 0) {
        reply_err(s, req, TSR_ERR_UNAVAILABLE, "no worker has joined the cluster",
                  "kv partitions live on the workers: start one ('tessera worker')");
        goto cleanup;
    }
    if (nrep == 0)
        nrep = nids >= 2 ? 2 : 1;
    if (nrep > nids) {
        snprintf(msg, sizeof(msg), "%u replicas need %u workers; %zu are up", nrep, nrep, nids);
        reply_err(s, req, TSR_ERR_UNAVAILABLE, msg, "start more workers or ask fewer --replicas");
        goto cleanup;
    }
    if (tsr_kvring_build(s->mem, idp, nids, 0, &ring, &e) != TSR_OK) {
        reply_err(s, req, e.status, e.message, NULL);
        goto cleanup;
    }
    /* one spare slot per partition for moves (kv_rebalance.c) */
    t = tsr_sched_kv_table_new(s, nparts, nrep < TSR_KV_MAX_REPLICAS ? nrep + 1 : nrep);
    if (!t) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        goto cleanup;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->gen = (tsr_sched_now_ms() << 10) + (s->kv->next_gen++ & 1023);
    t->replicas = nrep;
    t->max_key = max_key;
    t->max_value = max_value;
    for (uint32_t p = 0; p < nparts; p++) {
        uint32_t m[TSR_KV_MAX_REPLICAS];
        size_t got = tsr_kvring_lookup(&ring, tsr_kvring_part_hash(name, t->gen, p), nrep, m);
        for (size_t k = 0; k < got; k++) {
            skv_rep_t *rep = &t->reps[(size_t)p * t->nrep + k];
            snprintf(rep->id, KV_ID_MAX, "%s", idp[m[k]]);
            const sworker_t *w = tsr_sched_kv_ready_worker(s, rep->id);
            rep->store = w ? w->store_id : 0; /* where its copy will be */
        }
    }
    if (!tsr_sched_kv_table_add(s, t)) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        goto cleanup;
    }
    if (!tsr_sched_kv_persist(s)) {
        /* a table the catalog file does not know would vanish, data and
         * all, at the next restart: refuse it now */
        s->kv->n--;
        reply_err(s, req, TSR_ERR_IO, "cannot save the kv catalog",
                  "see the scheduler's log; check its --data-dir");
        goto cleanup;
    }
    tsr_sched_log(s->p->log, "scheduler",
                  "kv table '%s': %u partition(s), %u replica(s) on %zu worker(s)", name, nparts,
                  nrep, nids);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    encode_desc(s, &b, t);
    reply_buf(s, req, &b);
    t = NULL; /* the catalog's now */
cleanup:
    tsr_sched_kv_table_unref(s, t);
    tsr_kvring_free(&ring);
    tsr_mem_free(s->mem, idp);
    tsr_mem_free(s->mem, ids);
}

typedef struct kv_drop_call {
    sched_t *s;
    tsr_wbuf_t msg;
} kv_drop_call_t;

static void on_drop_done(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    (void)status;
    kv_drop_call_t *c = arg;
    tsr_rpc_msg_release(c->s->t, reply);
    tsr_wbuf_free(&c->msg);
    tsr_mem_free(c->s->mem, c);
}

void tsr_sched_kv_drop_copy(sched_t *s, const skv_table_t *t, uint32_t part, const char *id)
{
    sworker_t *w = id[0] ? tsr_sched_kv_ready_worker(s, id) : NULL;
    char sn[TSR_KV_TABLE_NAME_MAX + 48];
    store_name(t, part, sn, sizeof(sn));
    if (w)
        tsr_sched_kv_drop_store_table(s, w, sn);
}

void tsr_sched_kv_drop_store_table(sched_t *s, sworker_t *w, const char *store_table)
{
    kv_drop_call_t *c = tsr_mem_calloc(s->mem, 1, sizeof(*c));
    if (!c)
        return;
    c->s = s;
    tsr_wbuf_init(&c->msg, s->mem);
    tsr_wbuf_str(&c->msg, store_table);
    tsr_wbuf_u32(&c->msg, 0); /* DROP reads no maxima */
    tsr_wbuf_u32(&c->msg, 0);
    tsr_wbuf_u8(&c->msg, TSR_KV_POP_DROP);
    tsr_error_t e;
    tsr_error_clear(&e);
    if (c->msg.failed || tsr_rpc_call_async(s->t, w->peer, TSR_MSG_KV_RUN, c->msg.data, c->msg.len,
                                            KV_CALL_MS, on_drop_done, c, &e) != TSR_OK) {
        tsr_wbuf_free(&c->msg);
        tsr_mem_free(s->mem, c);
    }
}

static void op_drop(sched_t *s, tsr_rpc_req_t *req, const char *name)
{
    size_t at = 0;
    skv_table_t *t = find(s->kv, name, &at);
    if (!t) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no kv table '%.80s'", name);
        reply_err(s, req, TSR_ERR_NOT_FOUND, msg, "'tessera kv list' shows the tables");
        return;
    }
    s->kv->tables[at] = s->kv->tables[--s->kv->n];
    /* saved before the workers drop anything: a restart never finds the
     * table with its data gone */
    if (!tsr_sched_kv_persist(s)) {
        s->kv->tables[s->kv->n++] = s->kv->tables[at]; /* back as it was */
        s->kv->tables[at] = t;
        reply_err(s, req, TSR_ERR_IO, "cannot save the kv catalog: the table stays",
                  "see the scheduler's log; check its --data-dir");
        return;
    }
    /* best effort: a worker that is down keeps an orphan table (its name has
     * the gen, so no later table sees it) until it rejoins (kv_orphans.c) */
    for (uint32_t p = 0; p < t->nparts; p++)
        for (uint32_t r = 0; r < t->nrep; r++)
            tsr_sched_kv_drop_copy(s, t, p, t->reps[(size_t)p * t->nrep + r].id);
    tsr_sched_log(s->p->log, "scheduler", "kv table '%s' dropped", name);
    tsr_sched_kv_table_unref(s, t);
    tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
}

/* ---- partition requests (replication: sched_kv_repl.c) ------------------------------ */

skv_table_t *tsr_sched_kv_find(sched_t *s, const char *name)
{
    return find(s->kv, name, NULL);
}

/* Serves a partition request (pop with payload, into req's data). */
static void route(sched_t *s, tsr_rpc_req_t *req, skv_table_t *t, uint32_t part, uint8_t pop,
                  const uint8_t *payload, size_t plen)
{
    kv_op_t *op = tsr_mem_calloc(s->mem, 1, sizeof(*op));
    if (!op) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        return;
    }
    op->s = s;
    op->req = req;
    op->t = t;
    t->refs++;
    op->part = part;
    op->pop = pop;
    op->write = pop == TSR_KV_POP_PUT || pop == TSR_KV_POP_INSERT || pop == TSR_KV_POP_UPDATE ||
                pop == TSR_KV_POP_DEL || pop == TSR_KV_POP_LOAD;
    op->payload = payload;
    op->plen = plen;
    tsr_wbuf_init(&op->msg, s->mem);
    tsr_wbuf_init(&op->effect, s->mem);
    tsr_sched_kv_encode_run(t, part, pop, op->payload, op->plen, &op->msg);
    if (op->msg.failed) {
        reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
        tsr_sched_kv_op_done(op);
        return;
    }
    tsr_sched_kv_submit(s, op);
}

static skv_table_t *find_or_reply(sched_t *s, tsr_rpc_req_t *req, const char *name)
{
    skv_table_t *t = find(s->kv, name, NULL);
    if (!t) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no kv table '%.80s'", name);
        reply_err(s, req, TSR_ERR_NOT_FOUND, msg, "'tessera kv list' shows the tables");
    }
    return t;
}

/* A transaction's versioned read: routed to the key's partition. */
static void op_tget(sched_t *s, tsr_rpc_req_t *req, const char *name, tsr_rbuf_t *r)
{
    size_t at = r->pos;
    uint32_t klen = tsr_rbuf_u32(r);
    const void *key = r->bad ? NULL : tsr_rbuf_bytes(r, klen);
    if (!tsr_rbuf_done(r)) {
        reply_err(s, req, TSR_ERR_BAD_INPUT, "malformed kv transaction read", NULL);
        return;
    }
    skv_table_t *t = find_or_reply(s, req, name);
    if (!t)
        return;
    if (klen > t->max_key) {
        char msg[200];
        snprintf(msg, sizeof(msg), "key of %u bytes is longer than kv table '%s' allows (%u)", klen,
                 name, t->max_key);
        reply_err(s, req, TSR_ERR_INVALID_ARG, msg, NULL);
        return;
    }
    route(s, req, t, tsr_sched_txn_part_of(key, klen, t->nparts), TSR_KV_POP_TGET, r->p + at,
          r->len - at);
}

static void op_part(sched_t *s, tsr_rpc_req_t *req, const char *name, tsr_rbuf_t *r)
{
    uint32_t part = tsr_rbuf_u32(r);
    uint8_t pop = tsr_rbuf_u8(r);
    char msg[300];
    if (r->bad || pop < TSR_KV_POP_PUT || pop > TSR_KV_POP_LOAD) {
        reply_err(s, req, TSR_ERR_BAD_INPUT, "malformed kv partition request", NULL);
        return;
    }
    skv_table_t *t = find_or_reply(s, req, name);
    if (!t)
        return;
    if (part >= t->nparts) {
        snprintf(msg, sizeof(msg), "kv table '%s' has %u partitions, not %u", name, t->nparts,
                 part + 1);
        reply_err(s, req, TSR_ERR_BAD_INPUT, msg, NULL);
        return;
    }
    route(s, req, t, part, pop, r->p + r->pos, r->len - r->pos);
}

/* VIEW (kv_msg.h): where one-sided readers find each partition's primary
 * (the first usable replica, as TGET and TVALIDATE route) and its table on
 * that worker. Only a hint: a client that reads a stale primary fails
 * validation, which runs on the current one (docs/kv.md). */
static void op_view(sched_t *s, tsr_rpc_req_t *req, const char *name)
{
    skv_table_t *t = find_or_reply(s, req, name);
    if (!t)
        return;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    tsr_wbuf_u64(&b, t->gen);
    tsr_wbuf_u32(&b, t->nparts);
    tsr_wbuf_u32(&b, t->max_key);
    tsr_wbuf_u32(&b, t->max_value);
    for (uint32_t p = 0; p < t->nparts; p++) {
        sworker_t *w = NULL;
        for (size_t r = 0; r < t->nrep; r++)
            if (tsr_sched_kv_usable(s, t, p, r, &w))
                break;
            else
                w = NULL;
        char sn[TSR_KV_TABLE_NAME_MAX + 48];
        store_name(t, p, sn, sizeof(sn));
        bool ok = w && w->addr_port != 0;
        tsr_wbuf_str(&b, ok ? w->addr_host : "");
        tsr_wbuf_u32(&b, ok ? w->addr_port : 0);
        tsr_wbuf_u32(&b, ok ? w->node_id : 0);
        tsr_wbuf_str(&b, sn);
    }
    reply_buf(s, req, &b);
}

void tsr_sched_kv_request(sched_t *s, tsr_rpc_req_t *req)
{
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    if (!s->kv) {
        s->kv = tsr_mem_calloc(s->mem, 1, sizeof(*s->kv));
        if (!s->kv) {
            reply_err(s, req, TSR_ERR_NOMEM, "out of memory", NULL);
            return;
        }
    }
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    uint8_t op = tsr_rbuf_u8(&r);
    const char *name = tsr_rbuf_str(&r);
    if (r.bad) {
        reply_err(s, req, TSR_ERR_BAD_INPUT, "malformed kv request", NULL);
        return;
    }
    tsr_wbuf_t b;
    switch (op) {
    case TSR_KV_OP_CREATE:
        op_create(s, req, name, &r);
        return;
    case TSR_KV_OP_DROP:
        op_drop(s, req, name);
        return;
    case TSR_KV_OP_LIST:
        tsr_wbuf_init(&b, s->mem);
        tsr_wbuf_u32(&b, (uint32_t)s->kv->n);
        for (size_t i = 0; i < s->kv->n; i++)
            encode_desc(s, &b, s->kv->tables[i]);
        reply_buf(s, req, &b);
        return;
    case TSR_KV_OP_DESCRIBE: {
        skv_table_t *t = find(s->kv, name, NULL);
        if (!t) {
            char msg[200];
            snprintf(msg, sizeof(msg), "no kv table '%.80s'", name);
            reply_err(s, req, TSR_ERR_NOT_FOUND, msg, "'tessera kv list' shows the tables");
            return;
        }
        /* every CLI command describes its table first: a good moment to
         * bring stale replicas whose workers are back up to date */
        for (uint32_t p = 0; p < t->nparts; p++)
            tsr_sched_kv_maybe_sync(s, t, p);
        tsr_wbuf_init(&b, s->mem);
        encode_desc(s, &b, t);
        reply_buf(s, req, &b);
        return;
    }
    case TSR_KV_OP_PART:
        op_part(s, req, name, &r);
        return;
    case TSR_KV_OP_TGET:
        op_tget(s, req, name, &r);
        return;
    case TSR_KV_OP_TXN:
        tsr_sched_txn_commit(s, req, &r);
        return;
    case TSR_KV_OP_VIEW:
        op_view(s, req, name);
        return;
    case TSR_KV_OP_DECOMMISSION: /* the name is a worker id (kv_rebalance.c) */
        tsr_sched_kv_decommission(s, req, name);
        return;
    default:
        reply_err(s, req, TSR_ERR_BAD_INPUT, "unknown kv request", NULL);
    }
}
