/*
 * split.c - quote-aware byte-range splitting of CSV files (see split.h).
 *
 * One forward pass: the scanner keeps (pos, parity) and only moves forward;
 * quotes between two cut targets are counted with memchr, and from a target
 * the first '\n' at even parity is searched byte-wise (usually a few bytes).
 */
#include "split.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct scan {
    const char *data;
    size_t len;
    size_t pos;   /* everything before pos has been counted */
    unsigned odd; /* parity of the quotes before pos */
} scan_t;

/* Advances to `to`, counting quotes. */
static void scan_to(scan_t *s, size_t to)
{
    while (s->pos < to) {
        const char *q = memchr(s->data + s->pos, '"', to - s->pos);
        if (!q) {
            s->pos = to;
            return;
        }
        s->odd ^= 1u;
        s->pos = (size_t)(q - s->data) + 1;
    }
}

/* Advances past the next row terminator (a '\n' at even parity); returns the
 * position after it, or len when there is none. */
static size_t scan_row_end(scan_t *s)
{
    while (s->pos < s->len) {
        char c = s->data[s->pos++];
        if (c == '"')
            s->odd ^= 1u;
        else if (c == '\n' && !s->odd)
            return s->pos;
    }
    return s->len;
}

tsr_status_t tsr_split_buffer(tsr_mem_t *mem, const char *data, size_t len, size_t want,
                              uint64_t min_bytes, tsr_split_t *out)
{
    memset(out, 0, sizeof(*out));
    scan_t s = {data, len, 0, 0};
    size_t header_end = scan_row_end(&s);
    size_t body = len - header_end;
    size_t n = want ? want : 1;
    if (min_bytes > 0 && body / min_bytes < n)
        n = (size_t)(body / min_bytes);
    if (n == 0)
        n = 1;
    tsr_split_range_t *r = tsr_mem_calloc(mem, n, sizeof(*r));
    if (!r)
        return TSR_ERR_NOMEM;
    size_t count = 0, start = header_end;
    for (size_t k = 1; k < n; k++) {
        size_t target = header_end + (size_t)((unsigned __int128)body * k / n);
        if (target <= s.pos) /* the previous row reached past this target */
            continue;
        scan_to(&s, target - 1); /* a row starting exactly at target counts */
        size_t cut = scan_row_end(&s);
        if (cut >= len)
            break;
        if (cut <= start)
            continue;
        r[count].start = start;
        r[count].end = cut;
        count++;
        start = cut;
    }
    r[count].start = start;
    r[count].end = len;
    count++;
    out->size = len;
    out->header_end = header_end;
    out->nranges = count;
    out->ranges = r;
    return TSR_OK;
}

tsr_status_t tsr_split_csv(tsr_mem_t *mem, const char *path, size_t want, uint64_t min_bytes,
                           tsr_split_t *out, tsr_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tsr_status_t st = errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO;
        return tsr_error_set(err, st, "cannot open '%s': %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tsr_error_set(err, TSR_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    const char *data = "";
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return tsr_error_set(err, TSR_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
        }
        madvise(map, len, MADV_SEQUENTIAL);
        data = map;
    }
    close(fd);
    tsr_status_t rc = tsr_split_buffer(mem, data, len, want, min_bytes, out);
    if (map)
        munmap(map, len);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "out of memory splitting '%s'", path);
    return TSR_OK;
}

const char *tsr_split_pick(size_t n, const char *const *paths, uint64_t max_rest, size_t *pick,
                           uint64_t *rest)
{
    uint64_t total = 0, best = 0;
    size_t bi = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0 || !S_ISREG(st.st_mode))
            return "a joined file cannot be read";
        uint64_t size = (uint64_t)st.st_size;
        total += size;
        if (i == 0 || size > best) {
            best = size;
            bi = i;
        }
    }
    if (n == 0)
        return "no tables";
    if (total - best > max_rest)
        return "the broadcast tables are larger than --broadcast-max";
    *pick = bi;
    *rest = total - best;
    return NULL;
}

void tsr_split_free(tsr_mem_t *mem, tsr_split_t *s)
{
    tsr_mem_free(mem, s->ranges);
    memset(s, 0, sizeof(*s));
}
