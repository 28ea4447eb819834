/*
 * fileio.h - positioned writes for logs that preallocate (engine/kv/wal.c,
 * scheduler/txn_log.c): both keep a tail of zeros ahead of their records and
 * write records in place, so an fdatasync flushes data, not the file's size
 * and block map (see docs/kv.md, Durability, "Preallocation").
 */
#ifndef TSR_CORE_FILEIO_H
#define TSR_CORE_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* pwrite of all n bytes at off (retried on EINTR and short writes); 0, or
 * -1 with errno set (EIO for a write of nothing). */
int tsr_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
/* Writes zeros over [from, to); 0 or -1 with errno set. */
int tsr_write_zeros(int fd, uint64_t from, uint64_t to);
/* Whether all n bytes at p are zero (a preallocated tail). */
bool tsr_all_zero(const void *p, size_t n);

#endif /* TSR_CORE_FILEIO_H */
