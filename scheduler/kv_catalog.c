/*
 * kv_catalog.c - the kv catalog on disk (docs/kv.md "On a cluster",
 * Catalog): with `tessera scheduler --data-dir DIR` the scheduler saves its
 * tables to DIR/kv-catalog on every change and loads them at start-up, so
 * a restarted scheduler serves the tables whose data the workers kept.
 *
 * Format (little-endian, proto.h's wbuf encoding; str = u32 length + bytes):
 *
 *   "TSRKVCT1" | u32 version (3) | u32 ntables | ntables x table |
 *   u32 nretired | nretired x str worker id | u64 check
 *   table: str name, u64 gen, u32 partitions, u32 replicas, u32 slots,
 *          u32 max_key, u32 max_value,
 *          partitions x slots x {str replica id ("" = free slot), u8 flags,
 *          u64 store}
 *   flags: 1 stale (missed an acknowledged write), 2 leaving (displaced by
 *          a partition move)
 *   store: the identity of the worker store that holds the copy (0: not
 *          known; versions 1 and 2 had none: read as 0), so a worker that
 *          comes back with another store under that id is known to have
 *          lost the copy (sched_kv_sync.c tsr_sched_kv_check_stores)
 *   retired: the workers an operator decommissioned whose replicas have not
 *          all left yet, or that are still up (kv_rebalance.c), so that a
 *          restarted scheduler goes on moving their replicas away and gives
 *          them nothing new (version 1 had no such list: read as empty)
 *   check: XXH3-64 (core/hash.h) of every byte before it
 *
 * Saving writes DIR/kv-catalog.tmp, fsyncs it, renames it over the catalog
 * and fsyncs the directory: a crash leaves the old catalog or the new one,
 * never a mix. Loading refuses (TSR_ERR_BAD_INPUT, naming the file and the
 * fault) a file with a wrong magic, version or checksum, or fields out of
 * range: starting with an empty catalog would silently hide every table.
 * No file means no tables (a new data dir).
 *
 * Replica ids of workers without a data dir ("worker-N", the worker's slot)
 * name a process, not its data: after a restart another process gets that
 * slot. Such replicas are loaded stale, so they are refilled from a fresh
 * copy before anyone reads them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "core/hash.h"
#include "kv_catalog.h"
#include "sched_kv.h"

#define CAT_MAGIC "TSRKVCT1"
#define CAT_VERSION 3u
#define CAT_FILE "kv-catalog"
#define CAT_MAX_BYTES (256u << 20)

enum { FLAG_STALE = 1, FLAG_LEAVING = 2 };

void tsr_kvcat_encode(const struct skv *kv, tsr_wbuf_t *b)
{
    tsr_wbuf_bytes(b, CAT_MAGIC, 8);
    tsr_wbuf_u32(b, CAT_VERSION);
    tsr_wbuf_u32(b, (uint32_t)kv->n);
    for (size_t i = 0; i < kv->n; i++) {
        const skv_table_t *t = kv->tables[i];
        tsr_wbuf_str(b, t->name);
        tsr_wbuf_u64(b, t->gen);
        tsr_wbuf_u32(b, t->nparts);
        tsr_wbuf_u32(b, t->replicas);
        tsr_wbuf_u32(b, t->nrep);
        tsr_wbuf_u32(b, t->max_key);
        tsr_wbuf_u32(b, t->max_value);
        for (size_t r = 0; r < (size_t)t->nparts * t->nrep; r++) {
            tsr_wbuf_str(b, t->reps[r].id);
            tsr_wbuf_u8(b, (uint8_t)((t->reps[r].stale ? FLAG_STALE : 0) |
                                     (t->reps[r].leaving ? FLAG_LEAVING : 0)));
            tsr_wbuf_u64(b, t->reps[r].store);
        }
    }
    tsr_wbuf_u32(b, (uint32_t)kv->nretired);
    for (size_t i = 0; i < kv->nretired; i++)
        tsr_wbuf_str(b, kv->retired[i]);
    if (!b->failed)
        tsr_wbuf_u64(b, tsr_hash_bytes(b->data, b->len));
}

/* Decodes one table; NULL (err set) when a field is out of range. */
static skv_table_t *decode_table(sched_t *s, tsr_rbuf_t *r, uint32_t version, const char *path,
                                 tsr_error_t *err)
{
    const char *name = tsr_rbuf_str(r);
    uint64_t gen = tsr_rbuf_u64(r);
    uint32_t nparts = tsr_rbuf_u32(r), replicas = tsr_rbuf_u32(r), nslots = tsr_rbuf_u32(r);
    uint32_t max_key = tsr_rbuf_u32(r), max_value = tsr_rbuf_u32(r);
    size_t nlen = strlen(name);
    if (r->bad || nlen == 0 || nlen > TSR_KV_TABLE_NAME_MAX || nparts == 0 ||
        nparts > TSR_KV_MAX_PARTITIONS || nslots == 0 || nslots > TSR_KV_MAX_REPLICAS ||
        replicas == 0 || replicas > nslots) {
        tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv catalog '%s': a table entry is malformed", path);
        return NULL;
    }
    skv_table_t *t = tsr_sched_kv_table_new(s, nparts, nslots);
    if (!t) {
        tsr_error_set(err, TSR_ERR_NOMEM, "out of memory loading the kv catalog '%s'", path);
        return NULL;
    }
    memcpy(t->name, name, nlen + 1);
    /* writes in flight when the last scheduler stopped are unknown */
    for (uint32_t p = 0; p < nparts; p++)
        t->parts[p].doubt = true;
    t->gen = gen;
    t->replicas = replicas;
    t->max_key = max_key;
    t->max_value = max_value;
    for (size_t i = 0; i < (size_t)nparts * nslots; i++) {
        const char *id = tsr_rbuf_str(r);
        uint8_t flags = tsr_rbuf_u8(r);
        uint64_t store = version >= 3 ? tsr_rbuf_u64(r) : 0;
        if (r->bad || strlen(id) >= KV_ID_MAX || flags > (FLAG_STALE | FLAG_LEAVING)) {
            tsr_error_set(err, TSR_ERR_BAD_INPUT,
                          "kv catalog '%s': table '%s' has a malformed replica entry", path,
                          t->name);
            tsr_sched_kv_table_unref(s, t);
            return NULL;
        }
        skv_rep_t *rep = &t->reps[i];
        snprintf(rep->id, sizeof(rep->id), "%s", id);
        rep->stale = (flags & FLAG_STALE) != 0;
        rep->leaving = (flags & FLAG_LEAVING) != 0;
        rep->store = store;
        if (rep->id[0] && !strchr(rep->id, ':'))
            rep->stale = true; /* "worker-N": a process, not a data dir (above) */
    }
    return t;
}

tsr_status_t tsr_kvcat_decode(sched_t *s, const void *data, size_t len, const char *path,
                              tsr_error_t *err)
{
    const uint8_t *p = data;
    if (len < 8 + 4 + 4 + 8 || memcmp(p, CAT_MAGIC, 8) != 0)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                             "'%s' is not a kv catalog (bad magic or too short: %zu bytes)", path,
                             len);
    uint64_t want = 0;
    for (int i = 0; i < 8; i++)
        want |= (uint64_t)p[len - 8 + i] << (8 * i);
    if (tsr_hash_bytes(p, len - 8) != want)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                             "kv catalog '%s' is corrupted (checksum mismatch)", path);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, p + 8, len - 16);
    uint32_t version = tsr_rbuf_u32(&r), n = tsr_rbuf_u32(&r);
    if (version < 1 || version > CAT_VERSION)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                             "kv catalog '%s' has version %u; this scheduler reads versions 1 "
                             "to %u",
                             path, version, CAT_VERSION);
    for (uint32_t i = 0; i < n; i++) {
        skv_table_t *t = decode_table(s, &r, version, path, err);
        if (!t)
            return err ? err->status : TSR_ERR_BAD_INPUT;
        if (tsr_sched_kv_find(s, t->name) || !tsr_sched_kv_table_add(s, t)) {
            tsr_sched_kv_table_unref(s, t);
            return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                                 "kv catalog '%s': table '%s' is listed twice (or no memory)", path,
                                 t->name);
        }
    }
    uint32_t nretired = version >= 2 ? tsr_rbuf_u32(&r) : 0;
    if (r.bad || nretired > KV_RETIRED_MAX)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                             "kv catalog '%s': a malformed list of decommissioned workers", path);
    for (uint32_t i = 0; i < nretired; i++) {
        const char *id = tsr_rbuf_str(&r);
        if (r.bad || !id[0] || strlen(id) >= KV_ID_MAX || tsr_sched_kv_retired(s, id))
            return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                                 "kv catalog '%s': a malformed decommissioned worker id", path);
        snprintf(s->kv->retired[s->kv->nretired++], KV_ID_MAX, "%s", id);
    }
    if (!tsr_rbuf_done(&r))
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv catalog '%s': trailing bytes", path);
    return TSR_OK;
}

static tsr_status_t write_all(int fd, const uint8_t *p, size_t n, const char *path,
                              tsr_error_t *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return tsr_error_set(err, TSR_ERR_IO, "cannot write '%s': %s", path,
                                 w < 0 ? strerror(errno) : "short write");
        p += w;
        n -= (size_t)w;
    }
    return TSR_OK;
}

tsr_status_t tsr_kvcat_write_file(const char *dir, const char *name, const tsr_wbuf_t *b,
                                  tsr_error_t *err)
{
    char path[4200], tmp[4210];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (b->failed)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory encoding '%s'", path);
    tsr_status_t rc = TSR_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return tsr_error_set(err, TSR_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    if ((rc = write_all(fd, b->data, b->len, tmp, err)) != TSR_OK)
        goto cleanup;
    if (fsync(fd) != 0) {
        rc = tsr_error_set(err, TSR_ERR_IO, "cannot fsync '%s': %s", tmp, strerror(errno));
        goto cleanup;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = tsr_error_set(err, TSR_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                           strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    /* the rename itself is durable only once the directory is */
    rc = tsr_kvcat_sync_dir(dir, err);
cleanup:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    return rc;
}

tsr_status_t tsr_kvcat_sync_dir(const char *dir, tsr_error_t *err)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    tsr_status_t rc = TSR_OK;
    if (dfd < 0 || fsync(dfd) != 0)
        rc = tsr_error_set(err, TSR_ERR_IO, "cannot fsync the directory '%s': %s", dir,
                           strerror(errno));
    if (dfd >= 0)
        close(dfd);
    return rc;
}

tsr_status_t tsr_kvcat_read_file(sched_t *s, const char *dir, const char *name, size_t max,
                                 uint8_t **out, size_t *out_len, tsr_error_t *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return TSR_ERR_NOT_FOUND;
    if (fd < 0)
        return tsr_error_set(err, TSR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    tsr_status_t rc = TSR_OK;
    uint8_t *data = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > max) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "'%s': cannot size it or too large", path);
        goto cleanup;
    }
    size_t len = (size_t)st.st_size, got = 0;
    data = tsr_mem_alloc(s->mem, len ? len : 1);
    if (!data) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s'", path);
        goto cleanup;
    }
    while (got < len) {
        ssize_t n = read(fd, data + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = tsr_error_set(err, TSR_ERR_IO, "cannot read '%s': %s", path,
                               n < 0 ? strerror(errno) : "short read");
            goto cleanup;
        }
        got += (size_t)n;
    }
    *out = data;
    *out_len = len;
    data = NULL;
cleanup:
    tsr_mem_free(s->mem, data);
    close(fd);
    return rc;
}

tsr_status_t tsr_kvcat_save(sched_t *s, const char *dir, tsr_error_t *err)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    tsr_kvcat_encode(s->kv, &b);
    tsr_status_t rc = tsr_kvcat_write_file(dir, CAT_FILE, &b, err);
    tsr_wbuf_free(&b);
    return rc;
}

tsr_status_t tsr_kvcat_load(sched_t *s, const char *dir, tsr_error_t *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    tsr_status_t rc = tsr_kvcat_read_file(s, dir, CAT_FILE, CAT_MAX_BYTES, &data, &len, err);
    if (rc == TSR_ERR_NOT_FOUND)
        return TSR_OK; /* a new data dir: no tables yet */
    if (rc != TSR_OK)
        return rc;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, CAT_FILE);
    rc = tsr_kvcat_decode(s, data, len, path, err);
    tsr_mem_free(s->mem, data);
    return rc;
}

/* ---- the scheduler's side ---------------------------------------------------------- */

tsr_status_t tsr_sched_kv_open(sched_t *s, tsr_error_t *err)
{
    s->kv = tsr_mem_calloc(s->mem, 1, sizeof(*s->kv));
    if (!s->kv)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for the kv catalog");
    /* test hook: small resync pages, so a test's copy takes many calls and
     * writes run while it copies (sched_kv_sync.c) */
    const char *page = getenv("TSR_TEST_KV_SYNC_PAGE");
    if (page && page[0]) {
        char *end = NULL;
        unsigned long n = strtoul(page, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 1024) {
            s->kv->sync_page = (uint32_t)n;
            tsr_sched_log(s->p->log, "scheduler",
                          "test hook: TSR_TEST_KV_SYNC_PAGE=%lu (pairs per resync page)", n);
        }
    }
    /* test hook: a small bound on the missed sets' memory (kv_missed.c) */
    s->kv->missed_max = KV_MISSED_TOTAL_MAX;
    const char *cap = getenv("TSR_TEST_KV_MISSED_MAX");
    if (cap && cap[0]) {
        char *end = NULL;
        unsigned long long n = strtoull(cap, &end, 10);
        if (*end == '\0' && n >= 1 && n <= KV_MISSED_TOTAL_MAX) {
            s->kv->missed_max = (size_t)n;
            tsr_sched_log(s->p->log, "scheduler",
                          "test hook: TSR_TEST_KV_MISSED_MAX=%llu (bytes of missed keys)", n);
        }
    }
    const char *dir = s->p->data_dir;
    if (!dir)
        return TSR_OK;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return tsr_error_set(err, TSR_ERR_IO, "cannot create the data dir '%s': %s", dir,
                             strerror(errno));
    tsr_status_t rc = tsr_kvcat_load(s, dir, err);
    if (rc != TSR_OK)
        return rc;
    tsr_sched_kv_missed_load(s); /* what a clean stop kept: before any request */
    /* written back at once: a data dir that cannot take the catalog fails
     * now, not at the first create */
    if ((rc = tsr_kvcat_save(s, dir, err)) != TSR_OK)
        return rc;
    tsr_sched_log(s->p->log, "scheduler", "kv catalog: %zu table(s) from %s/%s", s->kv->n, dir,
                  CAT_FILE);
    for (size_t i = 0; i < s->kv->nretired; i++)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: worker %s stays decommissioned (its replicas go on moving away)",
                      s->kv->retired[i]);
    return TSR_OK;
}

bool tsr_sched_kv_persist(sched_t *s)
{
    if (!s->p->data_dir || !s->kv)
        return true;
    tsr_error_t e;
    tsr_error_clear(&e);
    if (tsr_kvcat_save(s, s->p->data_dir, &e) != TSR_OK) {
        tsr_sched_log(s->p->log, "scheduler",
                      "error: the kv catalog was not saved (a restart would load the previous "
                      "one): %s",
                      e.message);
        s->kv->unsaved = true;
        return false;
    }
    s->kv->unsaved = false;
    return true;
}
