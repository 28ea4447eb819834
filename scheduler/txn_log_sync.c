/*
 * txn_log_sync.c - the coordinator log's group commit and compaction
 * (txn_log.c has the format and the records).
 *
 * Group commit: appends go to an in-memory buffer (appended counts bytes
 * ever appended: the lsn). One thread at a time is the leader: it takes
 * the buffer, writes it and fdatasyncs outside the lock, then raises
 * durable to what it took; the others wait on the condition variable (or,
 * with the syncer thread, the scheduler polls durable). Appends made while
 * a leader syncs form the next batch: concurrent commits share fsyncs.
 *
 * Bounded: when the file would grow past max_bytes and the outstanding
 * records take at most half of max_bytes or of the file, the leader
 * rewrites it as a new file with only the
 * outstanding PREPAREs (and their parts' DONEs) and one FENCE per lock
 * name (its largest token) - written to txn-log.tmp,
 * fdatasync'ed, renamed over the log, directory fsync'ed - so a crash sees
 * the old file or the new one, both holding every outstanding PREPARE. The
 * snapshot is taken with the batch, under the lock, so it stands for
 * everything appended so far.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "txn_log_int.h"

/* ---- group commit ------------------------------------------------------------------- */

/* The compacted file's content: the magic, every outstanding PREPARE and
 * DONEs of its parts already done, every lock's FENCE. Called with the
 * lock held. */
static bool snapshot(tsr_txn_log_t *log, txl_buf_t *out)
{
    out->len = 0;
    if (!tsr__txl_buf_reserve(log->mem, out, 8))
        return false;
    memcpy(out->data, log->nfences ? LOG_MAGIC2 : LOG_MAGIC, 8);
    out->len = 8;
    for (size_t i = 0; i < log->npend; i++) {
        const txl_pend_t *p = log->pend[i];
        if (!tsr__txl_buf_reserve(log->mem, out,
                                  p->rec_len + (size_t)p->ndone * (REC_HEAD + BODY_HEAD)))
            return false;
        memcpy(out->data + out->len, p->rec, p->rec_len);
        out->len += p->rec_len;
        for (uint32_t k = 0; k < p->nparts; k++)
            if (p->done[k])
                tsr__txl_encode(out, REC_DONE, p->txid, k, NULL, 0);
    }
    for (size_t i = 0; i < log->nfences; i++) {
        if (!tsr__txl_buf_reserve(log->mem, out, FENCE_REC(strlen(log->fences[i].name))))
            return false;
        tsr__txl_encode_fence(out, log->fences[i].name, log->fences[i].token);
    }
    return true;
}

/* Writes the snapshot as a new file and renames it over the log; on
 * success *fd is the new file (the old one closed). */
static int rewrite(tsr_txn_log_t *log, const txl_buf_t *snap, int *fd, const char **what,
                   const char **path)
{
    *path = log->tmp;
    int nfd = open(log->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd < 0) {
        *what = "create";
        return -1;
    }
    if (tsr_pwrite_all(nfd, snap->data, snap->len, 0) != 0 || fdatasync(nfd) != 0) {
        *what = "write";
        goto fail;
    }
    if (rename(log->tmp, log->path) != 0) {
        *what = "rename";
        goto fail;
    }
    int dfd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        /* the rename may not be durable: the old file (also complete) may
         * come back after a crash, which is as good; but say so */
        *what = "fsync the directory of";
        *path = log->path;
        if (dfd >= 0)
            close(dfd);
        close(*fd);
        *fd = nfd;
        return -1;
    }
    close(dfd);
    close(*fd);
    *fd = nfd;
    return 0;
fail:;
    int e = errno;
    close(nfd);
    unlink(log->tmp);
    errno = e;
    return -1;
}

/* One leader round: called with the lock held, !syncing and something
 * appended; returns with the lock held. */
void tsr__txl_sync_round(tsr_txn_log_t *log)
{
    log->syncing = true;
    uint64_t target = log->appended;
    txl_buf_t batch = log->buf;
    log->buf = log->spare;
    log->buf.len = 0;
    log->spare = (txl_buf_t){0};
    txl_buf_t snap = {0};
    bool compact = false;
    uint64_t base = log->st.file_bytes; /* where the batch goes */
    if (log->st.file_bytes + batch.len > log->max_bytes) {
        size_t want = 8;
        for (size_t i = 0; i < log->npend; i++)
            want += log->pend[i]->rec_len + (size_t)log->pend[i]->ndone * (REC_HEAD + BODY_HEAD);
        for (size_t i = 0; i < log->nfences; i++)
            want += FENCE_REC(strlen(log->fences[i].name));
        /* only when it shrinks the file well: a log whose outstanding
         * records alone fill it keeps growing instead of rewriting it all
         * at every batch - but only until they are half of it (an
         * outstanding PREPARE larger than max_bytes / 2, e.g. one waiting
         * for a partition that is down, must not stop compaction for good:
         * the file would grow by every commit until it is too large to
         * load) */
        uint64_t grown = log->st.file_bytes + batch.len;
        compact = (want <= log->max_bytes / 2 || want <= grown / 2) && snapshot(log, &snap);
    }
    int fd = log->fd;
    /* the first FENCE in a file still marked version 1: the magic goes with
     * this batch, under the same fdatasync */
    bool magic2 = !compact && log->want_magic2 && !log->magic2;
    bool snap_magic2 = log->nfences > 0; /* what snapshot() wrote */
    pthread_mutex_unlock(&log->mu);

    int rc = 0;
    const char *what = "write", *path = log->path;
    uint64_t size = 0;
    if (compact) {
        rc = rewrite(log, &snap, &fd, &what, &path);
        size = snap.len;
    } else {
        rc = magic2 ? tsr_pwrite_all(fd, LOG_MAGIC2, 8, 0) : 0;
        if (rc == 0)
            rc = tsr_pwrite_all(fd, batch.data, batch.len, base);
        if (rc == 0 && fdatasync(fd) != 0) {
            what = "fdatasync";
            rc = -1;
        }
    }
    int e = errno;

    pthread_mutex_lock(&log->mu);
    log->fd = fd;
    if (rc != 0) {
        if (log->failed == TSR_OK) {
            log->failed = TSR_ERR_IO;
            snprintf(log->failmsg, sizeof(log->failmsg), "txn log: cannot %s '%s': %s", what, path,
                     strerror(e));
        }
    } else {
        log->durable = target;
        log->st.syncs++;
        if (compact) {
            log->st.file_bytes = size;
            log->st.compactions++;
            log->magic2 = snap_magic2;
        } else {
            log->st.file_bytes += batch.len;
            log->magic2 |= magic2;
        }
    }
    tsr_mem_free(log->mem, snap.data);
    batch.len = 0;
    if (!log->spare.data)
        log->spare = batch;
    else
        tsr_mem_free(log->mem, batch.data);
    log->syncing = false;
    pthread_cond_broadcast(&log->cv);
    if (compact && rc == 0)
        tsr__txl_note(log, "txn log '%s' compacted to %llu byte(s) (%zu outstanding)", log->path,
                      (unsigned long long)size, log->npend);
}

void *tsr__txl_syncer_main(void *arg)
{
    tsr_txn_log_t *log = arg;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        while (!log->stop &&
               (log->syncing || log->appended == log->durable || log->failed != TSR_OK))
            pthread_cond_wait(&log->cv, &log->mu);
        if (log->stop)
            break;
        tsr__txl_sync_round(log);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

tsr_status_t tsr_txn_log_sync(tsr_txn_log_t *log, uint64_t lsn, tsr_error_t *err)
{
    pthread_mutex_lock(&log->mu);
    if (lsn > log->appended) { /* never handed out: waiting would never end */
        pthread_mutex_unlock(&log->mu);
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "txn log: lsn %llu was never appended",
                             (unsigned long long)lsn);
    }
    while (log->failed == TSR_OK && log->durable < lsn) {
        if (log->syncing)
            pthread_cond_wait(&log->cv, &log->mu);
        else
            tsr__txl_sync_round(log);
    }
    tsr_status_t rc = log->durable >= lsn ? TSR_OK : log->failed;
    if (rc != TSR_OK)
        tsr_error_set(err, rc, "%s", log->failmsg);
    pthread_mutex_unlock(&log->mu);
    return rc;
}

tsr_status_t tsr_txn_log_durable(tsr_txn_log_t *log, uint64_t *lsn, tsr_error_t *err)
{
    pthread_mutex_lock(&log->mu);
    *lsn = log->durable;
    tsr_status_t rc = log->failed;
    if (rc != TSR_OK)
        tsr_error_set(err, rc, "%s", log->failmsg);
    pthread_mutex_unlock(&log->mu);
    return rc;
}
