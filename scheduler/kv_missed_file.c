/*
 * kv_missed_file.c - the missed keys of stale kv replicas, kept across a
 * clean restart of the scheduler (docs/kv.md "Delta resync").
 *
 * The missed sets (kv_missed.c) live in the scheduler's memory, and a
 * catalog loaded at start leaves every partition in doubt: writes in
 * flight when the last scheduler died may have reached some replicas and
 * not others. Both are lost only to a crash. A scheduler that stops
 * (SIGTERM, `tessera cluster down`) with a data dir writes, once its loop
 * has ended and before its transport goes, DIR/kv-missed: every partition
 * with no write or transaction turn in flight and not in doubt ("clean":
 * its replicas hold what the catalog says), with the missed set of each of
 * its stale replicas. The next start, after the catalog, takes those
 * partitions out of doubt and gives their stale replicas their sets back
 * (when the table's generation, the replica's slot and id match and the
 * replica is still stale); the file is removed durably once the scheduler
 * listens, before its loop serves any request: a later crash must not find
 * it again (its sets would lack what was written since). A start that
 * cannot remove it fails (exit 1), as one that cannot read its catalog;
 * a start that fails before (its port taken) leaves it for the next.
 *
 * Format (little-endian, proto.h's encoding; str and blob: u32 length and
 * bytes):
 *
 *   "TSRKVMS1" | u32 version (1) | u32 nparts | nparts x part | u64 check
 *   part: str table, u64 gen, u32 partition, u32 nsets, nsets x set
 *   set:  u32 slot, str replica id, u64 store, u32 nkeys, nkeys x blob key
 *   check: XXH3-64 (core/hash.h) of every byte before it
 *
 * A file that does not decode is logged and ignored: it costs whole copies,
 * never a wrong delta.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "core/hash.h"
#include "kv_catalog.h"
#include "sched_kv.h"

#define MISSED_FILE "kv-missed"
#define MISSED_MAGIC "TSRKVMS1"
#define MISSED_VERSION 1u
/* Every set at its bound, with the encoding's per-key length. */
#define MISSED_FILE_MAX ((size_t)KV_MISSED_TOTAL_MAX * 2)

/* Encodes set's keys: u32 n, then each as a blob. */
static void encode_keys(const kv_keyset_t *set, tsr_wbuf_t *b)
{
    tsr_wbuf_u32(b, (uint32_t)set->n);
    for (size_t off = 0; off < set->len;) {
        uint32_t l;
        memcpy(&l, set->bytes + off, sizeof(l));
        tsr_wbuf_blob(b, set->bytes + off + sizeof(l), l);
        off += sizeof(l) + l;
    }
}

void tsr_sched_kv_missed_save(sched_t *s)
{
    const char *dir = s->p->data_dir;
    if (!dir || !s->kv || s->kv->unsaved)
        return; /* no catalog on disk, or not the one in memory: nothing to add to it */
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    tsr_wbuf_bytes(&b, MISSED_MAGIC, 8);
    tsr_wbuf_u32(&b, MISSED_VERSION);
    size_t count_at = b.len;
    tsr_wbuf_u32(&b, 0); /* nparts, set below */
    uint32_t nparts = 0, nsets = 0, ndoubt = 0;
    uint64_t nkeys = 0;
    for (size_t i = 0; i < s->kv->n; i++) {
        const skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++) {
            const skv_part_t *sp = &t->parts[p];
            if (sp->doubt) {
                ndoubt++;
                continue;
            }
            if (sp->writes > 0) {
                /* a write or a transaction's turn in flight: unknown outcome */
                tsr_sched_log(s->p->log, "scheduler",
                              "kv table '%s' partition %u: a write in flight at the stop: in "
                              "doubt at the next start (its stale replicas will be copied whole)",
                              t->name, p);
                ndoubt++;
                continue;
            }
            tsr_wbuf_str(&b, t->name);
            tsr_wbuf_u64(&b, t->gen);
            tsr_wbuf_u32(&b, p);
            const skv_rep_t *reps = &t->reps[(size_t)p * t->nrep];
            uint32_t n = 0;
            for (size_t r = 0; r < t->nrep; r++)
                n += reps[r].stale && reps[r].missed;
            tsr_wbuf_u32(&b, n);
            for (size_t r = 0; r < t->nrep; r++) {
                if (!reps[r].stale || !reps[r].missed)
                    continue;
                tsr_wbuf_u32(&b, (uint32_t)r);
                tsr_wbuf_str(&b, reps[r].id);
                tsr_wbuf_u64(&b, reps[r].missed_store);
                encode_keys(reps[r].missed, &b);
                nkeys += reps[r].missed->n;
            }
            nparts++;
            nsets += n;
        }
    }
    if (!b.failed) {
        for (int k = 0; k < 4; k++)
            b.data[count_at + (size_t)k] = (uint8_t)(nparts >> (8 * k));
        tsr_wbuf_u64(&b, tsr_hash_bytes(b.data, b.len));
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    if (tsr_kvcat_write_file(dir, MISSED_FILE, &b, &e) == TSR_OK)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: %u clean partition(s) and the missed keys of %u stale replica(s) "
                      "(%llu keys) kept for the next start in %s/%s; %u partition(s) in doubt",
                      nparts, nsets, (unsigned long long)nkeys, dir, MISSED_FILE, ndoubt);
    else
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: the missed keys were not kept (the next start copies stale replicas "
                      "whole): %s",
                      e.message);
    tsr_wbuf_free(&b);
}

/* One set of the file into replica slot of (t, part) when it still is the
 * stale replica the set was kept for; false when malformed. */
static bool load_set(sched_t *s, skv_table_t *t, uint32_t part, tsr_rbuf_t *r, uint32_t *kept)
{
    uint32_t slot = tsr_rbuf_u32(r);
    const char *id = tsr_rbuf_str(r);
    uint64_t store = tsr_rbuf_u64(r);
    uint32_t n = tsr_rbuf_u32(r);
    if (r->bad)
        return false;
    skv_rep_t *rep =
        t && part < t->nparts && slot < t->nrep ? &t->reps[(size_t)part * t->nrep + slot] : NULL;
    bool use = rep && rep->stale && strcmp(rep->id, id) == 0 && store != 0 && !rep->missed;
    kv_keyset_t *set = use ? tsr_mem_alloc(s->mem, sizeof(*set)) : NULL;
    if (set)
        tsr_kv_keyset_init(set, s->mem);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        size_t kl;
        const void *key = tsr_rbuf_blob(r, &kl);
        if (set && key && !tsr_kv_keyset_add(set, key, kl)) {
            tsr_kv_keyset_free(set); /* out of memory: copied whole */
            tsr_mem_free(s->mem, set);
            set = NULL;
        }
    }
    if (set && (r->bad || s->kv->missed_bytes + tsr_kv_keyset_bytes(set) > s->kv->missed_max)) {
        tsr_kv_keyset_free(set);
        tsr_mem_free(s->mem, set);
        set = NULL;
    }
    if (set) {
        rep->missed = set;
        rep->missed_store = store;
        s->kv->missed_bytes += tsr_kv_keyset_bytes(set);
        (*kept)++;
    }
    return !r->bad;
}

/* Applies the decoded file (data, len: checked already); false when
 * malformed (what was applied is undone by the caller). */
static bool apply(sched_t *s, const uint8_t *data, size_t len, uint32_t *clean, uint32_t *kept)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data + 8, len - 16);
    uint32_t version = tsr_rbuf_u32(&r), n = tsr_rbuf_u32(&r);
    if (r.bad || version != MISSED_VERSION)
        return false;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        const char *name = tsr_rbuf_str(&r);
        uint64_t gen = tsr_rbuf_u64(&r);
        uint32_t part = tsr_rbuf_u32(&r), nsets = tsr_rbuf_u32(&r);
        skv_table_t *t = r.bad ? NULL : tsr_sched_kv_find(s, name);
        if (t && (t->gen != gen || part >= t->nparts))
            t = NULL; /* another table of that name, or not this one's partition */
        if (t && t->parts[part].doubt) {
            t->parts[part].doubt = false; /* clean when the last scheduler stopped */
            (*clean)++;
        }
        for (uint32_t k = 0; k < nsets && !r.bad; k++)
            if (!load_set(s, t, part, &r, kept))
                return false;
    }
    return tsr_rbuf_done(&r);
}

/* Back to what a catalog alone gives: every partition in doubt, no set. */
static void undo(sched_t *s)
{
    for (size_t i = 0; i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++)
            t->parts[p].doubt = true;
        for (size_t r = 0; r < (size_t)t->nparts * t->nrep; r++)
            tsr_sched_kv_forget_missed(s, &t->reps[r]);
    }
}

void tsr_sched_kv_missed_load(sched_t *s)
{
    const char *dir = s->p->data_dir;
    if (!dir || !s->kv)
        return;
    uint8_t *data = NULL;
    size_t len = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = tsr_kvcat_read_file(s, dir, MISSED_FILE, MISSED_FILE_MAX, &data, &len, &e);
    /* no file: the last scheduler did not stop cleanly (or had nothing) */
    if (rc == TSR_ERR_NOT_FOUND)
        return;
    s->kv->missed_file = true; /* removed before the loop serves anything */
    uint32_t clean = 0, kept = 0;
    char why[300] = "";
    uint64_t want = 0;
    if (rc != TSR_OK)
        snprintf(why, sizeof(why), "%s", e.message);
    else if (len < 8 + 4 + 4 + 8 || memcmp(data, MISSED_MAGIC, 8) != 0)
        snprintf(why, sizeof(why), "bad magic or too short");
    for (int i = 0; !why[0] && i < 8; i++)
        want |= (uint64_t)data[len - 8 + i] << (8 * i);
    if (!why[0] && tsr_hash_bytes(data, len - 8) != want)
        snprintf(why, sizeof(why), "checksum mismatch");
    if (!why[0] && !apply(s, data, len, &clean, &kept))
        snprintf(why, sizeof(why), "malformed");
    tsr_mem_free(s->mem, data);
    if (why[0]) {
        undo(s);
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: %s/%s not used (%s): stale replicas will be copied whole", dir,
                      MISSED_FILE, why);
        return;
    }
    tsr_sched_log(s->p->log, "scheduler",
                  "kv: %u partition(s) clean at the last stop, the missed keys of %u stale "
                  "replica(s) kept (%s/%s)",
                  clean, kept, dir, MISSED_FILE);
}

tsr_status_t tsr_sched_kv_missed_drop(sched_t *s, tsr_error_t *err)
{
    if (!s->kv || !s->kv->missed_file)
        return TSR_OK;
    /* used once: a crash after this start must not find it again (its sets
     * would lack what is written from now on); a failed start before this
     * keeps it, since nothing was written */
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", s->p->data_dir, MISSED_FILE);
    if (unlink(path) != 0 && errno != ENOENT)
        return tsr_error_set(err, TSR_ERR_IO, "cannot remove '%s' (read at this start): %s", path,
                             strerror(errno));
    s->kv->missed_file = false;
    return tsr_kvcat_sync_dir(s->p->data_dir, err);
}
