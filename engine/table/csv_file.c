/*
 * csv_file.c - reading a CSV file's bytes for the reader (csv.c, csv_lazy.c).
 *
 * A regular file is read whole into one buffer by parallel pread calls, one
 * piece per pool task, each piece's fresh pages faulted in by one
 * MADV_POPULATE_WRITE first (a page fault per 4 KiB inside pread was a tenth
 * of a large load). Pipes and files without a size are read sequentially.
 * The buffer is a private copy: a file changed or removed afterwards does not
 * change what was read (lazy tables parse it again later, see csv_lazy.c).
 *
 * A cluster worker's byte range (scheduler/worker_task.c) is read the same
 * way straight into one buffer holding the header bytes then the range's
 * bytes: one copy, as embedded mode's read of the whole file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table/csv_internal.h"

/* ---- files ----------------------------------------------------------------------- */

typedef struct csv_file_ctx {
    int fd;
    char *buf;
    size_t size;   /* bytes to read into buf */
    uint64_t from; /* file offset of buf[0] */
    size_t piece;
    int *errs; /* per piece: 0, an errno, or -1 for a file that shrank */
} csv_file_ctx_t;

/* Reads piece k with pread: the copy and the page faults are spread over
 * the pool's threads. */
static void csv_file_task(void *arg, size_t k, unsigned worker)
{
    (void)worker;
    csv_file_ctx_t *fx = arg;
    size_t off = k * fx->piece;
    size_t n = fx->size - off < fx->piece ? fx->size - off : fx->piece;
    size_t done = 0;
#ifdef MADV_POPULATE_WRITE
    {
        /* Fault the piece's fresh pages in with one call instead of one fault
         * per 4 KiB inside pread (a tenth of a large load's time went to
         * those). Advice: older kernels say EINVAL and pread faults as before. */
        const uintptr_t pg = 4096;
        uintptr_t lo = ((uintptr_t)(fx->buf + off) + pg - 1) & ~(pg - 1);
        uintptr_t hi = ((uintptr_t)(fx->buf + off + n)) & ~(pg - 1);
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
    }
#endif
    while (done < n) {
        ssize_t r =
            pread(fx->fd, fx->buf + off + done, n - done, (off_t)(fx->from + off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fx->errs[k] = errno;
            return;
        }
        if (r == 0) {
            fx->errs[k] = -1;
            return;
        }
        done += (size_t)r;
    }
}

/* Reads a file that has no usable size (pipe, /proc) sequentially. */
static tsr_status_t csv_slurp(tsr_mem_t *mem, int fd, const char *path, char **buf_out,
                              size_t *len_out, tsr_error_t *err)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (tsr_mem_grow(mem, (void **)&buf, &cap, len + 65536, 1)) {
            tsr_mem_free(mem, buf);
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s'", path);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            tsr_mem_free(mem, buf);
            return tsr_error_set(err, TSR_ERR_IO, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *buf_out = buf;
    *len_out = len;
    return TSR_OK;
}

/* Reads fx->size bytes of fx->fd from fx->from into fx->buf, in pieces on
 * the pool's threads. */
static tsr_status_t csv_read_pieces(tsr_mem_t *mem, tsr_pool_t *pool, csv_file_ctx_t *fx,
                                    const char *path, tsr_error_t *err)
{
    if (fx->size == 0)
        return TSR_OK;
    fx->piece = tsr_csv_chunk_bytes(fx->size, pool, NULL);
    size_t npieces = (fx->size + fx->piece - 1) / fx->piece;
    if (!(fx->errs = tsr_mem_calloc(mem, npieces, sizeof(*fx->errs))))
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s'", path);
    tsr_pool_run(pool, npieces, csv_file_task, fx);
    tsr_status_t rc = TSR_OK;
    for (size_t k = 0; k < npieces && rc == TSR_OK; k++) {
        if (fx->errs[k] == -1)
            rc = tsr_error_set(err, TSR_ERR_IO, "'%s' shrank while it was read", path);
        else if (fx->errs[k] != 0)
            rc = tsr_error_set(err, TSR_ERR_IO, "cannot read '%s': %s", path,
                               strerror(fx->errs[k]));
    }
    tsr_mem_free(mem, fx->errs);
    fx->errs = NULL;
    return rc;
}

tsr_status_t tsr_csv_file_bytes(tsr_mem_t *mem, tsr_pool_t *pool, const char *path, char **buf_out,
                                size_t *len_out, tsr_error_t *err)
{
    tsr_status_t rc;
    csv_file_ctx_t fx;
    memset(&fx, 0, sizeof(fx));
    *buf_out = NULL;
    *len_out = 0;
    fx.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fx.fd < 0) {
        int e = errno;
        rc = e == ENOENT || e == ENOTDIR ? TSR_ERR_NOT_FOUND : TSR_ERR_IO;
        tsr_error_set(err, rc, "cannot open '%s': %s", path, strerror(e));
        if (rc == TSR_ERR_NOT_FOUND)
            tsr_error_hint(err, "check the path (relative paths start from the current directory)");
        return rc;
    }
    struct stat st;
    if (fstat(fx.fd, &st) != 0) {
        rc = tsr_error_set(err, TSR_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = tsr_error_set(err, TSR_ERR_IO, "'%s' is a directory, not a CSV file", path);
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
        rc = csv_slurp(mem, fx.fd, path, &fx.buf, &fx.size, err);
        goto cleanup;
    }
    if ((uint64_t)st.st_size > SIZE_MAX / 2) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "'%s' is too large to load", path);
        goto cleanup;
    }
    fx.size = (size_t)st.st_size;
    if (!(fx.buf = tsr_mem_alloc(mem, fx.size))) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s' (%zu bytes)", path,
                           fx.size);
        goto cleanup;
    }
    rc = csv_read_pieces(mem, pool, &fx, path, err);

cleanup:
    close(fx.fd);
    if (rc != TSR_OK) {
        tsr_mem_free(mem, fx.buf);
        return rc;
    }
    *buf_out = fx.buf;
    *len_out = fx.size;
    return TSR_OK;
}

tsr_status_t tsr_csv_fd_range_bytes(tsr_mem_t *mem, tsr_pool_t *pool, int fd, const char *path,
                                    uint64_t header_end, uint64_t start, uint64_t end,
                                    char **buf_out, size_t *len_out, tsr_error_t *err)
{
    *buf_out = NULL;
    *len_out = 0;
    if (header_end > start || start > end || end - start > SIZE_MAX / 4 ||
        header_end > SIZE_MAX / 4)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "bad byte range %llu..%llu of '%s'",
                             (unsigned long long)start, (unsigned long long)end, path);
    size_t hlen = (size_t)header_end, blen = (size_t)(end - start);
    char *buf = tsr_mem_alloc(mem, hlen + blen ? hlen + blen : 1);
    if (!buf)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s' (%zu bytes)", path,
                             hlen + blen);
    /* the header, then the range right after it: one well-formed CSV */
    csv_file_ctx_t hx = {.fd = fd, .buf = buf, .size = hlen, .from = 0};
    csv_file_ctx_t bx = {.fd = fd, .buf = buf + hlen, .size = blen, .from = start};
    tsr_status_t rc = csv_read_pieces(mem, NULL, &hx, path, err);
    if (rc == TSR_OK)
        rc = csv_read_pieces(mem, pool, &bx, path, err);
    if (rc != TSR_OK) {
        tsr_mem_free(mem, buf);
        return rc;
    }
    *buf_out = buf;
    *len_out = hlen + blen;
    return TSR_OK;
}
