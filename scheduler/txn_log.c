/*
 * txn_log.c - the coordinator log of cluster transactions (txn_log.h;
 * docs/kv.md "Transactions on a cluster", Coordinator log): records,
 * loading, appending. Group commit and compaction:
 * txn_log_sync.c.
 *
 * The scheduler appends a PREPARE (the transaction's id and its whole
 * write set, the payload) once the commit's reads validated and before the
 * first partition applies it: once that record is durable the commit is
 * decided. A DONE (of one part, or of all) follows when the parts are
 * applied everywhere. At start-up every PREPARE without DONE for all its
 * parts is outstanding: the scheduler re-applies it (sched_txn.c).
 *
 * Format of <dir>/txn-log (little-endian):
 *
 *   "TSRTXLG1" | record*      ("TSRTXLG2" once it holds a FENCE record: the
 *                             next write after the first FENCE rewrites the
 *                             magic, in the same fdatasync as the record)
 *   record: u32 len | u64 XXH3-64 (core/hash.h) of body | body (len bytes)
 *   body:   u8 type (1 PREPARE, 2 DONE, 3 FENCE) | u64 txid | u32 aux | payload
 *           PREPARE: aux = its number of parts, payload = the write set
 *           DONE:    aux = the part done (0xffffffff: all), no payload
 *           FENCE:   txid 0, aux 0, payload = u64 token | lock name: the
 *                    largest fencing token a commit used for that lock so
 *                    far (the coordinator's fence, sched_txn.c); the last
 *                    one of a name counts
 *
 * Loading stops at the first record that does not fit the file or fails
 * its checksum: a crash tears at most the records of the last unsynced
 * batch, none of which was reported durable. The rest is cut off (noted),
 * so later records follow whole ones.
 *
 * After a failed write or sync the log refuses appends (its durability is
 * unknown): the scheduler answers commits TSR_ERR_IO.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "txn_log_int.h"

void tsr__txl_note(tsr_txn_log_t *log, const char *fmt, ...)
{
    if (!log->note)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log->note(log->note_arg, msg);
}

bool tsr__txl_buf_reserve(tsr_mem_t *mem, txl_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    void *d = b->data;
    size_t cap = b->cap;
    if (tsr_mem_grow(mem, &d, &cap, b->len + more, 1) != 0)
        return false;
    b->data = d;
    b->cap = cap;
    return true;
}

/* Encodes one record at the end of b (reserved by the caller). */
void tsr__txl_encode(txl_buf_t *b, uint8_t type, uint64_t txid, uint32_t aux, const void *payload,
                     size_t len)
{
    uint8_t *p = b->data + b->len;
    uint8_t *body = p + REC_HEAD;
    body[0] = type;
    tsr_wire_put_u64(body + 1, txid);
    tsr_wire_put_u32(body + 9, aux);
    if (len)
        memcpy(body + BODY_HEAD, payload, len);
    tsr_wire_put_u32(p, (uint32_t)(BODY_HEAD + len));
    tsr_wire_put_u64(p + 4, tsr_hash_bytes(body, BODY_HEAD + len));
    b->len += REC_HEAD + BODY_HEAD + len;
}

static txl_pend_t *find_pend(tsr_txn_log_t *log, uint64_t txid, size_t *at)
{
    for (size_t i = 0; i < log->npend; i++)
        if (log->pend[i]->txid == txid) {
            if (at)
                *at = i;
            return log->pend[i];
        }
    return NULL;
}

static void pend_free(tsr_mem_t *mem, txl_pend_t *p)
{
    if (!p)
        return;
    tsr_mem_free(mem, p->done);
    tsr_mem_free(mem, p->rec);
    tsr_mem_free(mem, p);
}

/* Tracks a PREPARE record (rec: the whole record); false: no memory. */
static bool track_prepare(tsr_txn_log_t *log, uint64_t txid, uint32_t nparts, const uint8_t *rec,
                          size_t rec_len)
{
    if (nparts == 0 || find_pend(log, txid, NULL))
        return true; /* nothing to wait for; a duplicate (never written here): the first counts */
    txl_pend_t *p = tsr_mem_calloc(log->mem, 1, sizeof(*p));
    if (!p)
        return false;
    p->txid = txid;
    p->nparts = nparts;
    p->done = tsr_mem_calloc(log->mem, nparts ? nparts : 1, 1);
    p->rec = tsr_mem_alloc(log->mem, rec_len);
    if (!p->done || !p->rec ||
        tsr_mem_grow(log->mem, (void **)&log->pend, &log->pcap, log->npend + 1,
                     sizeof(*log->pend)) != 0) {
        pend_free(log->mem, p);
        return false;
    }
    memcpy(p->rec, rec, rec_len);
    p->rec_len = rec_len;
    log->pend[log->npend++] = p;
    return true;
}

static void track_done(tsr_txn_log_t *log, uint64_t txid, uint32_t part)
{
    size_t at = 0;
    txl_pend_t *p = find_pend(log, txid, &at);
    if (!p)
        return; /* its PREPARE was compacted away or never logged */
    if (part == TSR_TXN_LOG_ALL) {
        p->ndone = p->nparts;
    } else if (part < p->nparts && !p->done[part]) {
        p->done[part] = 1;
        p->ndone++;
    }
    if (p->ndone >= p->nparts) {
        log->pend[at] = log->pend[--log->npend];
        pend_free(log->mem, p);
    }
}

static struct txl_fence *find_fence(tsr_txn_log_t *log, const char *name, size_t len)
{
    for (size_t i = 0; i < log->nfences; i++)
        if (strlen(log->fences[i].name) == len && memcmp(log->fences[i].name, name, len) == 0)
            return &log->fences[i];
    return NULL;
}

/* Raises name's token to token (a new name is added); false: no memory. */
static bool track_fence(tsr_txn_log_t *log, const char *name, size_t len, uint64_t token,
                        uint64_t lsn)
{
    struct txl_fence *f = find_fence(log, name, len);
    if (!f) {
        char *copy = tsr_mem_alloc(log->mem, len + 1);
        if (!copy || tsr_mem_grow(log->mem, (void **)&log->fences, &log->fcap, log->nfences + 1,
                                  sizeof(*log->fences)) != 0) {
            tsr_mem_free(log->mem, copy);
            return false;
        }
        memcpy(copy, name, len);
        copy[len] = '\0';
        f = &log->fences[log->nfences++];
        *f = (struct txl_fence){.name = copy};
    }
    if (token >= f->token) {
        f->token = token;
        f->lsn = lsn;
    }
    return true;
}

/* A FENCE body's payload is valid: a token and a name of 1..255 bytes. */
static bool fence_payload_ok(const uint8_t *payload, size_t len)
{
    return len > 8 && len - 8 <= FENCE_NAME_MAX && memchr(payload + 8, 0, len - 8) == NULL;
}

static tsr_status_t fail_io(tsr_error_t *err, const char *what, const char *path)
{
    return tsr_error_set(err, TSR_ERR_IO, "txn log: cannot %s '%s': %s", what, path,
                         strerror(errno));
}

/* ---- loading ------------------------------------------------------------------------ */

static tsr_status_t load(tsr_txn_log_t *log, tsr_error_t *err)
{
    tsr_status_t rc = TSR_OK;
    uint8_t *data = NULL;
    struct stat st;
    if (fstat(log->fd, &st) != 0)
        return fail_io(err, "size", log->path);
    if ((uint64_t)st.st_size > LOG_MAX_READ)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn log '%s' is too large (%lld bytes)",
                             log->path, (long long)st.st_size);
    size_t len = (size_t)st.st_size, got = 0;
    data = tsr_mem_alloc(log->mem, len ? len : 1);
    if (!data)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s'", log->path);
    while (got < len) {
        ssize_t n = pread(log->fd, data + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            rc = fail_io(err, "read", log->path);
            goto cleanup;
        }
        got += (size_t)n;
    }
    size_t off = 0;
    if (len < 8) {
        /* a crash while creating it, or a new file: only a prefix of the
         * magic (or nothing) is a log with no records */
        if (memcmp(data, LOG_MAGIC, len) != 0 && memcmp(data, LOG_MAGIC2, len) != 0) {
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "'%s' is not a txn log (bad magic)",
                               log->path);
            goto cleanup;
        }
        off = 0;
    } else if (memcmp(data, LOG_MAGIC, 8) != 0 && memcmp(data, LOG_MAGIC2, 8) != 0) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "'%s' is not a txn log (bad magic)", log->path);
        goto cleanup;
    } else {
        off = 8;
        log->magic2 = memcmp(data, LOG_MAGIC2, 8) == 0;
        while (len - off >= REC_HEAD) {
            uint32_t blen = tsr_wire_get_u32(data + off);
            uint64_t check = tsr_wire_get_u64(data + off + 4);
            if (blen < BODY_HEAD || blen > len - off - REC_HEAD)
                break;
            const uint8_t *body = data + off + REC_HEAD;
            if (tsr_hash_bytes(body, blen) != check ||
                (body[0] != REC_PREPARE && body[0] != REC_DONE && body[0] != REC_FENCE) ||
                (body[0] == REC_FENCE && !fence_payload_ok(body + BODY_HEAD, blen - BODY_HEAD)))
                break;
            uint64_t txid = tsr_wire_get_u64(body + 1);
            uint32_t aux = tsr_wire_get_u32(body + 9);
            if (body[0] == REC_FENCE) {
                if (!track_fence(log, (const char *)body + BODY_HEAD + 8, blen - BODY_HEAD - 8,
                                 tsr_wire_get_u64(body + BODY_HEAD), 0)) {
                    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory loading '%s'", log->path);
                    goto cleanup;
                }
            } else if (body[0] == REC_PREPARE) {
                if (!track_prepare(log, txid, aux, data + off, REC_HEAD + blen)) {
                    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory loading '%s'", log->path);
                    goto cleanup;
                }
            } else {
                track_done(log, txid, aux);
            }
            if (txid >= log->next_txid)
                log->next_txid = txid + 1;
            off += REC_HEAD + blen;
        }
    }
    if (off < len) {
        log->st.torn_bytes = len - off;
        tsr__txl_note(
            log,
            "txn log '%s': ignoring %zu byte(s) after the last whole record (offset %zu): a "
            "torn or damaged tail",
            log->path, len - off, off);
    }
    /* the kept prefix (the magic at least), durable: later records must
     * follow whole ones */
    size_t keep = off < 8 ? 8 : off;
    if (off < 8 && pwrite(log->fd, LOG_MAGIC, 8, 0) != 8) {
        rc = fail_io(err, "write", log->path);
        goto cleanup;
    }
    if (keep != len && (ftruncate(log->fd, (off_t)keep) != 0 || fdatasync(log->fd) != 0)) {
        rc = fail_io(err, "truncate", log->path);
        goto cleanup;
    }
    if (len == 0) { /* a new file: its name must survive a crash too */
        int dfd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0) {
            rc = fail_io(err, "fsync the directory", log->dir);
            if (dfd >= 0)
                close(dfd);
            goto cleanup;
        }
        close(dfd);
    }
    if (lseek(log->fd, (off_t)keep, SEEK_SET) < 0) {
        rc = fail_io(err, "seek", log->path);
        goto cleanup;
    }
    log->st.file_bytes = keep;
cleanup:
    tsr_mem_free(log->mem, data);
    return rc;
}

/* Encodes name's FENCE record at the end of b (reserved by the caller). */
void tsr__txl_encode_fence(txl_buf_t *b, const char *name, uint64_t token)
{
    uint8_t payload[8 + FENCE_NAME_MAX];
    size_t len = strlen(name);
    tsr_wire_put_u64(payload, token);
    memcpy(payload + 8, name, len);
    tsr__txl_encode(b, REC_FENCE, 0, 0, payload, 8 + len);
}

/* ---- the interface ------------------------------------------------------------------ */

tsr_status_t tsr_txn_log_open(tsr_mem_t *mem, const tsr_txn_log_params_t *p, tsr_txn_log_t **out,
                              tsr_error_t *err)
{
    if (!p || !p->dir || !out || strlen(p->dir) >= 4000)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "txn log: no or too long a directory");
    tsr_txn_log_t *log = tsr_mem_calloc(mem, 1, sizeof(*log));
    if (!log)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for the txn log");
    log->mem = mem;
    log->fd = -1;
    log->max_bytes = p->max_bytes ? p->max_bytes : TSR_TXN_LOG_DEFAULT_MAX;
    log->note = p->note;
    log->note_arg = p->note_arg;
    log->next_txid = 1;
    snprintf(log->dir, sizeof(log->dir), "%s", p->dir);
    snprintf(log->path, sizeof(log->path), "%s/%s", p->dir, TSR_TXN_LOG_FILE);
    snprintf(log->tmp, sizeof(log->tmp), "%s.tmp", log->path);
    pthread_mutex_init(&log->mu, NULL);
    pthread_cond_init(&log->cv, NULL);
    tsr_status_t rc = TSR_OK;
    log->fd = open(log->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (log->fd < 0) {
        rc = fail_io(err, "open", log->path);
        goto err_close;
    }
    unlink(log->tmp); /* a compaction that crashed before its rename */
    if ((rc = load(log, err)) != TSR_OK)
        goto err_close;
    if (p->syncer) {
        if (pthread_create(&log->syncer, NULL, tsr__txl_syncer_main, log) != 0) {
            rc = tsr_error_set(err, TSR_ERR_IO, "txn log: cannot start its syncing thread");
            goto err_close;
        }
        log->has_syncer = true;
    }
    *out = log;
    return TSR_OK;
err_close:
    tsr_txn_log_close(log);
    return rc;
}

void tsr_txn_log_close(tsr_txn_log_t *log)
{
    if (!log)
        return;
    if (log->has_syncer) {
        pthread_mutex_lock(&log->mu);
        log->stop = true;
        pthread_cond_broadcast(&log->cv);
        pthread_mutex_unlock(&log->mu);
        pthread_join(log->syncer, NULL);
    }
    if (log->fd >= 0) {
        pthread_mutex_lock(&log->mu);
        if (log->appended > log->durable && log->failed == TSR_OK && !log->syncing)
            tsr__txl_sync_round(log);
        pthread_mutex_unlock(&log->mu);
        close(log->fd);
    }
    for (size_t i = 0; i < log->npend; i++)
        pend_free(log->mem, log->pend[i]);
    tsr_mem_free(log->mem, log->pend);
    for (size_t i = 0; i < log->nfences; i++)
        tsr_mem_free(log->mem, log->fences[i].name);
    tsr_mem_free(log->mem, log->fences);
    tsr_mem_free(log->mem, log->buf.data);
    tsr_mem_free(log->mem, log->spare.data);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->cv);
    tsr_mem_free(log->mem, log);
}

size_t tsr_txn_log_pending_count(tsr_txn_log_t *log)
{
    pthread_mutex_lock(&log->mu);
    size_t n = log->npend;
    pthread_mutex_unlock(&log->mu);
    return n;
}

bool tsr_txn_log_pending_get(tsr_txn_log_t *log, size_t i, tsr_txn_log_pending_t *out)
{
    pthread_mutex_lock(&log->mu);
    bool ok = i < log->npend;
    if (ok) {
        const txl_pend_t *p = log->pend[i];
        out->txid = p->txid;
        out->nparts = p->nparts;
        out->done = p->done;
        out->payload = p->rec + REC_HEAD + BODY_HEAD;
        out->len = p->rec_len - REC_HEAD - BODY_HEAD;
    }
    pthread_mutex_unlock(&log->mu);
    return ok;
}

uint64_t tsr_txn_log_new_txid(tsr_txn_log_t *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t id = log->next_txid++;
    pthread_mutex_unlock(&log->mu);
    return id;
}

static tsr_status_t append(tsr_txn_log_t *log, uint8_t type, uint64_t txid, uint32_t aux,
                           const void *payload, size_t len, uint64_t *lsn, tsr_error_t *err)
{
    if (len > UINT32_MAX - BODY_HEAD - REC_HEAD)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "txn log: a record of %zu bytes", len);
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&log->mu);
    if (log->failed != TSR_OK) {
        rc = tsr_error_set(err, log->failed, "%s", log->failmsg);
        goto out;
    }
    size_t need = REC_HEAD + BODY_HEAD + len;
    if (!tsr__txl_buf_reserve(log->mem, &log->buf, need)) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for the txn log");
        goto out;
    }
    const uint8_t *rec = log->buf.data + log->buf.len;
    tsr__txl_encode(&log->buf, type, txid, aux, payload, len);
    if (type == REC_PREPARE) {
        if (!track_prepare(log, txid, aux, rec, need)) {
            log->buf.len -= need; /* never appended */
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for the txn log");
            goto out;
        }
    } else {
        track_done(log, txid, aux);
    }
    if (txid >= log->next_txid)
        log->next_txid = txid + 1;
    log->appended += need;
    log->st.records++;
    *lsn = log->appended;
    if (log->has_syncer)
        pthread_cond_broadcast(&log->cv);
out:
    pthread_mutex_unlock(&log->mu);
    return rc;
}

tsr_status_t tsr_txn_log_prepare(tsr_txn_log_t *log, uint64_t txid, uint32_t nparts,
                                 const void *payload, size_t len, uint64_t *lsn, tsr_error_t *err)
{
    return append(log, REC_PREPARE, txid, nparts, payload, len, lsn, err);
}

tsr_status_t tsr_txn_log_done(tsr_txn_log_t *log, uint64_t txid, uint32_t part, uint64_t *lsn,
                              tsr_error_t *err)
{
    return append(log, REC_DONE, txid, part, NULL, 0, lsn, err);
}

tsr_status_t tsr_txn_log_fence(tsr_txn_log_t *log, const char *name, uint64_t token, uint64_t *lsn,
                               tsr_error_t *err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > FENCE_NAME_MAX)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "txn log: a lock name of %zu bytes", len);
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&log->mu);
    struct txl_fence *f = find_fence(log, name, len);
    if (f && token <= f->token) { /* recorded already (maybe not durable yet) */
        *lsn = f->lsn;
        goto out;
    }
    if (log->failed != TSR_OK) {
        rc = tsr_error_set(err, log->failed, "%s", log->failmsg);
        goto out;
    }
    if (!tsr__txl_buf_reserve(log->mem, &log->buf, FENCE_REC(len)) ||
        !track_fence(log, name, len, token, log->appended + FENCE_REC(len))) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for the txn log");
        goto out;
    }
    tsr__txl_encode_fence(&log->buf, name, token);
    log->want_magic2 = true;
    log->appended += FENCE_REC(len);
    log->st.records++;
    *lsn = log->appended;
    if (log->has_syncer)
        pthread_cond_broadcast(&log->cv);
out:
    pthread_mutex_unlock(&log->mu);
    return rc;
}

size_t tsr_txn_log_fence_count(tsr_txn_log_t *log)
{
    pthread_mutex_lock(&log->mu);
    size_t n = log->nfences;
    pthread_mutex_unlock(&log->mu);
    return n;
}

bool tsr_txn_log_fence_get(tsr_txn_log_t *log, size_t i, const char **name, uint64_t *token)
{
    pthread_mutex_lock(&log->mu);
    bool ok = i < log->nfences;
    if (ok) {
        *name = log->fences[i].name;
        *token = log->fences[i].token;
    }
    pthread_mutex_unlock(&log->mu);
    return ok;
}

void tsr_txn_log_get_stats(tsr_txn_log_t *log, tsr_txn_log_stats_t *out)
{
    pthread_mutex_lock(&log->mu);
    *out = log->st;
    out->outstanding = log->npend;
    pthread_mutex_unlock(&log->mu);
}
