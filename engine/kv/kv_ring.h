/*
 * kv_ring.h - consistent hashing for placing kv partitions on workers
 * (docs/kv.md "On a cluster").
 *
 * A ring of 64-bit points: every member (a worker id string) owns `vnodes`
 * points, point j = XXH3(id) mixed with j. A key hash belongs to the first
 * point at or after it (wrapping); its replicas are the owners of the
 * following points, skipping members already chosen. Adding a member takes
 * only the arcs in front of its own points, so only keys that now map to the
 * new member move (and removing one moves only its keys); with 128 virtual
 * nodes each member's share stays within about +-30% of the mean.
 */
#ifndef TSR_KV_RING_H
#define TSR_KV_RING_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"

#define TSR_KVRING_VNODES 128u

typedef struct tsr_kvring_point {
    uint64_t pos;
    uint32_t member; /* index into the ids given to build */
} tsr_kvring_point_t;

typedef struct tsr_kvring {
    tsr_mem_t *mem;
    tsr_kvring_point_t *pts; /* sorted by pos */
    size_t npts;
    size_t nmembers;
} tsr_kvring_t;

/* Builds the ring of n member ids (n >= 1, ids distinct; vnodes 0 = default). */
tsr_status_t tsr_kvring_build(tsr_mem_t *mem, const char *const *ids, size_t n, unsigned vnodes,
                              tsr_kvring_t *out, tsr_error_t *err);
void tsr_kvring_free(tsr_kvring_t *r);
/* Up to want distinct members for hash h, primary first, into out; returns
 * how many (min(want, nmembers)). */
size_t tsr_kvring_lookup(const tsr_kvring_t *r, uint64_t h, size_t want, uint32_t *out);
/* The ring position of a table's partition: what placement looks up. */
uint64_t tsr_kvring_part_hash(const char *table, uint64_t gen, uint32_t part);

#endif /* TSR_KV_RING_H */
