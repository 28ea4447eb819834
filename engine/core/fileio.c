/*
 * fileio.c - positioned writes for preallocating logs (fileio.h).
 */
#include "core/fileio.h"

#include <errno.h>
#include <unistd.h>

int tsr_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int tsr_write_zeros(int fd, uint64_t from, uint64_t to)
{
    static const unsigned char zeros[64 << 10]; /* read-only: shared by every caller */
    while (from < to) {
        size_t n = to - from < sizeof(zeros) ? (size_t)(to - from) : sizeof(zeros);
        if (tsr_pwrite_all(fd, zeros, n, from) != 0)
            return -1;
        from += n;
    }
    return 0;
}

bool tsr_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}
