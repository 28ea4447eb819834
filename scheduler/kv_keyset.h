/*
 * kv_keyset.h - a set of byte-string keys (exact: the bytes are kept, not
 * only their hash). A resync (sched_kv_sync.c) records in one the keys
 * written while it copies, so that a page of the copy read before such a
 * write cannot bring back the value the write replaced. Only grows; freed
 * whole. Private to scheduler/.
 */
#ifndef TSR_KV_KEYSET_H
#define TSR_KV_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"

typedef struct kv_keyset {
    tsr_mem_t *mem;
    uint64_t *slot; /* 0: empty; else the key's offset in bytes + 1 */
    size_t cap;     /* a power of two (0 before the first add) */
    size_t n;       /* keys in the set */
    uint8_t *bytes; /* the keys: u32 length, then the key, one after another */
    size_t len, bcap;
} kv_keyset_t;

void tsr_kv_keyset_init(kv_keyset_t *k, tsr_mem_t *mem);
/* Adds the key (nothing when it is there); false when out of memory (the
 * set is left as it was). */
bool tsr_kv_keyset_add(kv_keyset_t *k, const void *key, size_t len);
bool tsr_kv_keyset_has(const kv_keyset_t *k, const void *key, size_t len);
/* The memory it holds, in bytes. */
size_t tsr_kv_keyset_bytes(const kv_keyset_t *k);
void tsr_kv_keyset_free(kv_keyset_t *k);

#endif /* TSR_KV_KEYSET_H */
