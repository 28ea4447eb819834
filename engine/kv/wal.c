/*
 * wal.c - the kv store's write-ahead log (group commit) and snapshots.
 *
 * Log files: DIR/wal-<first lsn, 16 hex digits>.log, records back to back:
 *
 *   u32 crc    CRC-32C of everything after it (len .. payload end)
 *   u32 len    1 + payload bytes
 *   u64 lsn    strictly increasing across the files
 *   u8  type   kv_rec_t, then the payload (kv_internal.h)
 *
 * All integers little-endian. Group commit: writers append encoded records to
 * one in-memory buffer under the mutex (that fixes the lsn order); a writer
 * that must wait for its lsn becomes the flusher if none is running: it takes
 * the whole buffer, writes it and fdatasyncs once for every record in it,
 * while new appends fill the other buffer. After an I/O error the log refuses
 * everything (the file's tail is unknown; recovery will cut it).
 *
 * Preallocation (TSR_KV_SYNC_FSYNC): records are written in place into a
 * zero-filled tail that the flusher extends ahead of them (64 KiB, doubling
 * to 4 MiB a step), as PostgreSQL pre-zeroes its WAL segments. An
 * fdatasync after an append that grows the file must also write the file's
 * size and block map; after an overwrite of blocks already allocated and
 * written it flushes only the data: about 30% less time per group commit
 * on this machine's ext4 (bench/RESULTS.md). The zero tail costs one slow
 * sync per extension. A rotated or closed file is cut back to its records.
 *
 * Replay reads the files in lsn order and stops at the first record that is
 * short, has a bad CRC or a non-increasing lsn: the file is truncated there
 * and later files are renamed *.discarded (they would follow a gap). Lsns
 * are dense, so a jump (a lost file) is noted (lsn_gap) and replay goes on.
 * Either way the store forgets its identity first (store_id.c). A tail
 * of zero bytes is the preallocated end (no record starts with a zero
 * length): cut off without calling it torn, and replay goes on.
 *
 * Snapshot: DIR/snapshot = "TSRKVSN1", u64 lsn, records [u32 len][u8 type]
 * [payload], then u32 0xffffffff and the CRC-32C of all bytes before it.
 * Written to snapshot.tmp, fsynced, renamed over snapshot, directory fsynced:
 * a crash leaves either the old or the new snapshot whole.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "kv_internal.h"

#define WAL_HDR 16u
#define WAL_MAX_REC (64u << 20)
#define WAL_PREALLOC_MIN (64u << 10)
#define WAL_PREALLOC_MAX (4u << 20)

/* ---- CRC-32C ------------------------------------------------------------------- */

static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                            size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t tsr_kv_crc32c(uint32_t crc, const void *data, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc32c_hw(crc, data, len);
#endif
    return ~crc32c_sw(crc, data, len);
}

/* ---- small file helpers --------------------------------------------------------- */

tsr_status_t tsr_kv_sync_dir(const char *dir, tsr_error_t *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return tsr_error_set(err, TSR_ERR_IO, "kv: open %s: %s", dir, strerror(errno));
    int r = fsync(fd);
    close(fd);
    if (r != 0)
        return tsr_error_set(err, TSR_ERR_IO, "kv: fsync %s: %s", dir, strerror(errno));
    return TSR_OK;
}

/* Reads a whole file into a tsr_mem buffer. */
static tsr_status_t read_file(tsr_mem_t *mem, const char *path, unsigned char **out, size_t *len,
                              tsr_error_t *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return tsr_error_set(err, errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO,
                             "kv: open %s: %s", path, strerror(errno));
    struct stat st;
    tsr_status_t rc = TSR_OK;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = tsr_error_set(err, TSR_ERR_IO, "kv: stat %s: %s", path, strerror(errno));
        goto out;
    }
    buf = tsr_mem_alloc(mem, (size_t)st.st_size + 1);
    if (!buf) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory reading %s", path);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = tsr_error_set(err, TSR_ERR_IO, "kv: read %s: %s", path, strerror(errno));
            tsr_mem_free(mem, buf);
            buf = NULL;
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *out = buf;
    *len = got;
out:
    close(fd);
    return rc;
}

/* ---- the log --------------------------------------------------------------------- */

struct kv_wal {
    tsr_mem_t *mem;
    char *dir;
    int fd;
    tsr_kv_sync_t sync;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *buf; /* appended, not yet written */
    size_t len, cap;
    unsigned char *spare; /* the flusher's buffer */
    size_t spare_cap;
    uint64_t next_lsn;    /* last lsn assigned */
    uint64_t durable_lsn; /* last lsn written (and synced) */
    uint64_t file_first;  /* first lsn of the current file */
    uint64_t file_bytes;  /* its records' bytes: where the next write goes */
    uint64_t file_alloc;  /* its size: records, then zeros (preallocated) */
    uint64_t prealloc;    /* the next extension's size */
    bool flushing;
    tsr_status_t failed; /* sticky I/O failure */
};

static tsr_status_t open_file(kv_wal_t *w, uint64_t first, tsr_error_t *err)
{
    size_t n = strlen(w->dir) + 32;
    char *path = tsr_mem_alloc(w->mem, n);
    if (!path)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    snprintf(path, n, "%s/wal-%016" PRIx64 ".log", w->dir, first);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    tsr_status_t rc = TSR_OK;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        rc = tsr_error_set(err, TSR_ERR_IO, "kv: open %s: %s", path, strerror(errno));
    tsr_mem_free(w->mem, path);
    if (rc == TSR_OK)
        rc = tsr_kv_sync_dir(w->dir, err);
    if (rc != TSR_OK) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    /* an existing file was replayed (its zero tail cut): write after it */
    w->fd = fd;
    w->file_first = first;
    w->file_bytes = w->file_alloc = (uint64_t)st.st_size;
    w->prealloc = WAL_PREALLOC_MIN;
    return TSR_OK;
}

tsr_status_t tsr_kv_wal_open(tsr_mem_t *mem, const char *dir, tsr_kv_sync_t sync,
                             uint64_t first_lsn, kv_wal_t **out, tsr_error_t *err)
{
    kv_wal_t *w = tsr_mem_calloc(mem, 1, sizeof(*w));
    if (!w)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    w->mem = mem;
    w->fd = -1;
    w->sync = sync;
    w->next_lsn = first_lsn - 1;
    w->durable_lsn = first_lsn - 1;
    tsr_status_t rc;
    w->dir = tsr_mem_strdup(mem, dir);
    if (!w->dir) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
        goto err_free;
    }
    rc = open_file(w, first_lsn, err);
    if (rc != TSR_OK)
        goto err_free_dir;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    *out = w;
    return TSR_OK;

err_free_dir:
    tsr_mem_free(mem, w->dir);
err_free:
    tsr_mem_free(mem, w);
    return rc;
}

void tsr_kv_wal_close(kv_wal_t *w)
{
    if (!w)
        return;
    tsr_kv_wal_commit(w, w->next_lsn, NULL);
    if (w->fd >= 0) {
        /* best effort: a zero tail that stays is cut at the next open */
        if (w->file_alloc > w->file_bytes && w->failed == TSR_OK)
            (void)ftruncate(w->fd, (off_t)w->file_bytes);
        close(w->fd);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    tsr_mem_free(w->mem, w->buf);
    tsr_mem_free(w->mem, w->spare);
    tsr_mem_free(w->mem, w->dir);
    tsr_mem_free(w->mem, w);
}

tsr_status_t tsr_kv_wal_append(kv_wal_t *w, kv_rec_t type, const kv_piece_t *pc, int npc,
                               uint64_t *lsn, tsr_error_t *err)
{
    size_t plen = 0;
    for (int i = 0; i < npc; i++)
        plen += pc[i].n;
    size_t rec = WAL_HDR + 1 + plen;
    if (rec > WAL_MAX_REC)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "kv: log record of %zu bytes too large",
                             rec);
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&w->mu);
    if (w->failed != TSR_OK) {
        rc = tsr_error_set(err, w->failed, "kv: the log failed earlier; writes are refused");
        goto out;
    }
    if (tsr_mem_grow(w->mem, (void **)&w->buf, &w->cap, w->len + rec, 1) != 0) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory for the log buffer");
        goto out;
    }
    unsigned char *p = w->buf + w->len;
    uint64_t l = ++w->next_lsn;
    kv_put32(p + 4, (uint32_t)(1 + plen));
    kv_put64(p + 8, l);
    p[16] = (unsigned char)type;
    size_t o = 17;
    for (int i = 0; i < npc; i++) {
        if (pc[i].n)
            memcpy(p + o, pc[i].p, pc[i].n);
        o += pc[i].n;
    }
    kv_put32(p, tsr_kv_crc32c(0, p + 4, rec - 4));
    w->len += rec;
    *lsn = l;
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Writes and syncs the pending buffer; called with mu held and flushing set
 * by the caller. Drops mu during the I/O. */
static void flush_once(kv_wal_t *w)
{
    unsigned char *b = w->buf;
    size_t n = w->len, bcap = w->cap;
    uint64_t upto = w->next_lsn;
    w->buf = w->spare;
    w->cap = w->spare_cap;
    w->len = 0;
    pthread_mutex_unlock(&w->mu);
    /* file_bytes, file_alloc and prealloc change only here and in rotate
     * (which waits for the flusher): read without the mutex */
    uint64_t at = w->file_bytes, alloc = w->file_alloc;
    bool fsync_ = w->sync == TSR_KV_SYNC_FSYNC;
    int r = 0;
    if (n && fsync_ && at + n > alloc) { /* extend the zero tail ahead */
        uint64_t step = w->prealloc;
        alloc = (at + n + step - 1) / step * step;
        r = tsr_write_zeros(w->fd, at + n, alloc); /* [at, at + n): the records, next */
    }
    if (r == 0 && n)
        r = tsr_pwrite_all(w->fd, b, n, at);
    if (r == 0 && n && fsync_)
        r = fdatasync(w->fd);
    tsr_status_t rc = r == 0 ? TSR_OK : TSR_ERR_IO;
    pthread_mutex_lock(&w->mu);
    w->spare = b;
    w->spare_cap = bcap;
    if (rc == TSR_OK) {
        w->durable_lsn = upto;
        w->file_bytes += n;
        if (alloc > w->file_alloc) {
            w->file_alloc = alloc;
            if (w->prealloc < WAL_PREALLOC_MAX)
                w->prealloc *= 2;
        }
        if (w->file_bytes > w->file_alloc)
            w->file_alloc = w->file_bytes;
    } else {
        w->failed = rc;
    }
}

tsr_status_t tsr_kv_wal_commit(kv_wal_t *w, uint64_t lsn, tsr_error_t *err)
{
    pthread_mutex_lock(&w->mu);
    if (lsn > w->next_lsn) { /* never assigned: no flush would ever reach it */
        pthread_mutex_unlock(&w->mu);
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "kv: log lsn %llu was never assigned",
                             (unsigned long long)lsn);
    }
    while (w->durable_lsn < lsn && w->failed == TSR_OK) {
        if (!w->flushing) {
            w->flushing = true;
            flush_once(w);
            w->flushing = false;
            pthread_cond_broadcast(&w->cv);
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
    }
    tsr_status_t rc = w->durable_lsn >= lsn ? TSR_OK : w->failed;
    pthread_mutex_unlock(&w->mu);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "kv: writing the log to %s failed", w->dir);
    return TSR_OK;
}

uint64_t tsr_kv_wal_last_lsn(kv_wal_t *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t l = w->next_lsn;
    pthread_mutex_unlock(&w->mu);
    return l;
}

uint64_t tsr_kv_wal_bytes(kv_wal_t *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t b = w->file_bytes + w->len;
    pthread_mutex_unlock(&w->mu);
    return b;
}

tsr_status_t tsr_kv_wal_rotate(kv_wal_t *w, uint64_t *last_lsn, tsr_error_t *err)
{
    tsr_status_t rc = tsr_kv_wal_commit(w, tsr_kv_wal_last_lsn(w), err);
    if (rc != TSR_OK)
        return rc;
    pthread_mutex_lock(&w->mu);
    while (w->flushing)
        pthread_cond_wait(&w->cv, &w->mu);
    /* the caller stops appenders (the store's write lock), so nothing new.
     * The old file is cut back to its records, durably, before the new one
     * exists: replay never meets a zero tail followed by another file.
     * TSR_KV_SYNC_WRITE promises nothing across a power loss and has no
     * zero tail: its old file is not synced here, under the store's write
     * lock (a never synced log of a 1M-key table took 180 ms). */
    int oldfd = w->fd;
    uint64_t bytes = w->file_bytes, alloc = w->file_alloc;
    bool sync = w->sync == TSR_KV_SYNC_FSYNC;
    if ((alloc > bytes && ftruncate(oldfd, (off_t)bytes) != 0) || (sync && fdatasync(oldfd) != 0)) {
        rc = tsr_error_set(err, TSR_ERR_IO, "kv: cutting the log in %s to its records: %s", w->dir,
                           strerror(errno));
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    w->file_alloc = bytes;
    rc = open_file(w, w->next_lsn + 1, err);
    if (rc == TSR_OK) {
        close(oldfd);
        *last_lsn = w->next_lsn;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int parse_name(const char *name, uint64_t *first)
{
    unsigned long long v;
    char tail[8];
    if (strlen(name) != 4 + 16 + 4 || sscanf(name, "wal-%16llx%7s", &v, tail) != 2 ||
        strcmp(tail, ".log") != 0)
        return -1;
    *first = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The start lsns of the log files in dir, sorted. */
static tsr_status_t list_logs(tsr_mem_t *mem, const char *dir, uint64_t **out, size_t *n,
                              tsr_error_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return tsr_error_set(err, TSR_ERR_IO, "kv: open %s: %s", dir, strerror(errno));
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;
    tsr_status_t rc = TSR_OK;
    while ((e = readdir(d)) != NULL) {
        uint64_t first;
        if (parse_name(e->d_name, &first) != 0)
            continue;
        if (tsr_mem_grow(mem, (void **)&v, &cap, len + 1, sizeof(*v)) != 0) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
            break;
        }
        v[len++] = first;
    }
    closedir(d);
    if (rc != TSR_OK) {
        tsr_mem_free(mem, v);
        return rc;
    }
    if (len)
        qsort(v, len, sizeof(*v), cmp_u64);
    *out = v;
    *n = len;
    return TSR_OK;
}

void tsr_kv_wal_drop_old(kv_wal_t *w, uint64_t upto_lsn)
{
    uint64_t *v = NULL;
    size_t n = 0;
    if (list_logs(w->mem, w->dir, &v, &n, NULL) != TSR_OK)
        return;
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        /* a file is covered when the next one starts at or below upto+1 */
        if (v[i] >= w->file_first || (i + 1 < n && v[i + 1] > upto_lsn + 1))
            continue;
        snprintf(path, sizeof(path), "%s/wal-%016" PRIx64 ".log", w->dir, v[i]);
        unlink(path);
    }
    tsr_mem_free(w->mem, v);
}

tsr_status_t tsr_kv_wal_replay(tsr_mem_t *mem, const char *dir, uint64_t after_lsn, kv_replay_fn fn,
                               void *arg, tsr_kv_recovery_t *info, tsr_error_t *err)
{
    uint64_t *files = NULL;
    size_t nfiles = 0;
    tsr_status_t rc = list_logs(mem, dir, &files, &nfiles, err);
    if (rc != TSR_OK)
        return rc;
    char path[4096];
    uint64_t prev = 0;
    bool stop = false;
    for (size_t f = 0; f < nfiles && rc == TSR_OK; f++) {
        snprintf(path, sizeof(path), "%s/wal-%016" PRIx64 ".log", dir, files[f]);
        if (stop) {
            char bad[4200];
            snprintf(bad, sizeof(bad), "%s.discarded", path);
            /* a file left in place would be replayed after the gap at the
             * next open: refuse rather than go on */
            if (rename(path, bad) != 0)
                rc = tsr_error_set(err, TSR_ERR_IO, "kv: setting aside %s: %s", path,
                                   strerror(errno));
            continue;
        }
        unsigned char *buf = NULL;
        size_t len = 0;
        rc = read_file(mem, path, &buf, &len, err);
        if (rc != TSR_OK)
            break;
        size_t off = 0;
        const char *why = NULL;
        while (off < len) {
            if (len - off < WAL_HDR + 1) {
                why = "short record";
                break;
            }
            const unsigned char *p = buf + off;
            uint32_t rl = kv_get32(p + 4);
            uint64_t lsn = kv_get64(p + 8);
            if (rl < 1 || rl > WAL_MAX_REC || rl > len - off - WAL_HDR) {
                why = "bad or short length";
                break;
            }
            if (kv_get32(p) != tsr_kv_crc32c(0, p + 4, WAL_HDR - 4 + rl)) {
                why = "bad checksum";
                break;
            }
            if (lsn <= prev) {
                why = "lsn out of order";
                break;
            }
            /* lsns are dense (one per record, across files): a jump past
             * the snapshot means records are missing (a log file lost).
             * Replay goes on, as before, but the store is no longer the
             * one whose id the scheduler knows (store_id.c) */
            uint64_t want = prev > after_lsn ? prev + 1 : after_lsn + 1;
            if (lsn > after_lsn && lsn != want && !info->lsn_gap) {
                rc = tsr_kv_store_id_forget(dir, err);
                if (rc != TSR_OK)
                    break;
                info->lsn_gap = true;
                if (!info->detail[0])
                    snprintf(info->detail, sizeof(info->detail),
                             "%s: lsn %" PRIu64 " follows %" PRIu64 ": records are missing", path,
                             lsn, want - 1);
            }
            prev = lsn;
            if (lsn > after_lsn) {
                rc = fn(arg, lsn, (kv_rec_t)p[16], p + 17, rl - 1, err);
                if (rc != TSR_OK)
                    break;
                info->records_replayed++;
            }
            if (lsn > info->last_lsn)
                info->last_lsn = lsn;
            off += WAL_HDR + rl;
        }
        if (rc == TSR_OK && why && tsr_all_zero(buf + off, len - off)) {
            /* the preallocated tail: the end of this file's records */
            if (truncate(path, (off_t)off) != 0)
                rc = tsr_error_set(err, TSR_ERR_IO, "kv: truncate %s: %s", path, strerror(errno));
            why = NULL;
        }
        tsr_mem_free(mem, buf);
        if (rc == TSR_OK && why) {
            /* records are lost: the store is no longer the one whose id
             * the scheduler knows (store_id.c); forgotten before the cut */
            rc = tsr_kv_store_id_forget(dir, err);
            if (rc != TSR_OK)
                break;
            info->torn_tail = true;
            info->bytes_dropped += len - off;
            snprintf(info->detail, sizeof(info->detail),
                     "%s: %s at offset %zu; cut %zu bytes (recovered up to lsn %" PRIu64 ")", path,
                     why, off, len - off, prev);
            if (truncate(path, (off_t)off) != 0)
                rc = tsr_error_set(err, TSR_ERR_IO, "kv: truncate %s: %s", path, strerror(errno));
            stop = true;
        }
    }
    tsr_mem_free(mem, files);
    return rc;
}

/* ---- snapshots ------------------------------------------------------------------ */

struct kv_snap_writer {
    tsr_mem_t *mem;
    char *dir;
    char *tmp;
    FILE *f;
    uint32_t crc;
};

static tsr_status_t snap_write(kv_snap_writer_t *s, const void *p, size_t n, tsr_error_t *err)
{
    if (n && fwrite(p, 1, n, s->f) != n)
        return tsr_error_set(err, TSR_ERR_IO, "kv: write %s: %s", s->tmp, strerror(errno));
    s->crc = tsr_kv_crc32c(s->crc, p, n);
    return TSR_OK;
}

tsr_status_t tsr_kv_snap_begin(tsr_mem_t *mem, const char *dir, uint64_t lsn,
                               kv_snap_writer_t **out, tsr_error_t *err)
{
    kv_snap_writer_t *s = tsr_mem_calloc(mem, 1, sizeof(*s));
    if (!s)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    s->mem = mem;
    tsr_status_t rc;
    size_t n = strlen(dir) + 16;
    s->dir = tsr_mem_strdup(mem, dir);
    s->tmp = tsr_mem_alloc(mem, n);
    if (!s->dir || !s->tmp) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
        goto err_free;
    }
    snprintf(s->tmp, n, "%s/snapshot.tmp", dir);
    s->f = fopen(s->tmp, "wbe");
    if (!s->f) {
        rc = tsr_error_set(err, TSR_ERR_IO, "kv: create %s: %s", s->tmp, strerror(errno));
        goto err_free;
    }
    unsigned char h[16];
    memcpy(h, "TSRKVSN1", 8);
    kv_put64(h + 8, lsn);
    rc = snap_write(s, h, sizeof(h), err);
    if (rc != TSR_OK) {
        tsr_kv_snap_abort(s);
        return rc;
    }
    *out = s;
    return TSR_OK;

err_free:
    tsr_mem_free(mem, s->dir);
    tsr_mem_free(mem, s->tmp);
    tsr_mem_free(mem, s);
    return rc;
}

tsr_status_t tsr_kv_snap_add(kv_snap_writer_t *s, kv_rec_t type, const kv_piece_t *pc, int npc,
                             tsr_error_t *err)
{
    size_t plen = 0;
    for (int i = 0; i < npc; i++)
        plen += pc[i].n;
    unsigned char h[5];
    kv_put32(h, (uint32_t)(1 + plen));
    h[4] = (unsigned char)type;
    tsr_status_t rc = snap_write(s, h, 5, err);
    for (int i = 0; i < npc && rc == TSR_OK; i++)
        rc = snap_write(s, pc[i].p, pc[i].n, err);
    return rc;
}

void tsr_kv_snap_abort(kv_snap_writer_t *s)
{
    if (!s)
        return;
    if (s->f) {
        fclose(s->f);
        unlink(s->tmp);
    }
    tsr_mem_free(s->mem, s->dir);
    tsr_mem_free(s->mem, s->tmp);
    tsr_mem_free(s->mem, s);
}

tsr_status_t tsr_kv_snap_finish(kv_snap_writer_t *s, tsr_error_t *err)
{
    unsigned char t[8];
    kv_put32(t, 0xffffffffu);
    s->crc = tsr_kv_crc32c(s->crc, t, 4);
    kv_put32(t + 4, s->crc);
    tsr_status_t rc = TSR_OK;
    if (fwrite(t, 1, 8, s->f) != 8 || fflush(s->f) != 0 || fsync(fileno(s->f)) != 0)
        rc = tsr_error_set(err, TSR_ERR_IO, "kv: write %s: %s", s->tmp, strerror(errno));
    if (rc != TSR_OK) {
        tsr_kv_snap_abort(s);
        return rc;
    }
    fclose(s->f);
    s->f = NULL;
    char final[4200];
    snprintf(final, sizeof(final), "%s/snapshot", s->dir);
    if (rename(s->tmp, final) != 0)
        rc = tsr_error_set(err, TSR_ERR_IO, "kv: rename %s: %s", s->tmp, strerror(errno));
    if (rc == TSR_OK)
        rc = tsr_kv_sync_dir(s->dir, err);
    if (rc != TSR_OK)
        unlink(s->tmp);
    s->f = NULL;
    tsr_kv_snap_abort(s);
    return rc;
}

tsr_status_t tsr_kv_snap_load(tsr_mem_t *mem, const char *dir, kv_replay_fn fn, void *arg,
                              uint64_t *lsn, tsr_error_t *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot", dir);
    unsigned char *buf = NULL;
    size_t len = 0;
    *lsn = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = read_file(mem, path, &buf, &len, &e);
    if (rc == TSR_ERR_NOT_FOUND)
        return TSR_OK;
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "%s", e.message);
    if (len < 24 || memcmp(buf, "TSRKVSN1", 8) != 0 || kv_get32(buf + len - 8) != 0xffffffffu ||
        kv_get32(buf + len - 4) != tsr_kv_crc32c(0, buf, len - 4)) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT,
                           "kv: snapshot %s is corrupt (bad header, trailer or checksum)", path);
        goto out;
    }
    *lsn = kv_get64(buf + 8);
    size_t off = 16, end = len - 8;
    while (off < end) {
        uint32_t rl = end - off >= 5 ? kv_get32(buf + off) : 0;
        if (rl < 1 || rl > end - off - 4) {
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: snapshot %s: bad record at %zu", path,
                               off);
            goto out;
        }
        rc = fn(arg, 0, (kv_rec_t)buf[off + 4], buf + off + 5, rl - 1, err);
        if (rc != TSR_OK)
            goto out;
        off += 4 + rl;
    }
out:
    tsr_mem_free(mem, buf);
    return rc;
}
