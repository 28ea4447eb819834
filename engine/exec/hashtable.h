/*
 * hashtable.h - the CPU hash table of the executor: maps key tuples to dense
 * group ids (0, 1, 2, ... in order of first insertion).
 *
 * Used by hash aggregation (group ids index flat aggregate-state arrays), by
 * DISTINCT aggregates (key = (group id, value)) and by hash join (group id =
 * one distinct build key, indexing the build rows' lists).
 *
 * Keys. Every key column is handed over *normalised* to 64 bits:
 *   INT64 -> its bits            DOUBLE -> its bits, -0.0 as 0.0, one NaN (tsr_ht_norm_double)
 *   BOOL  -> 0/1                 VARCHAR -> the dictionary code (one dictionary per column)
 * plus an optional validity bitmap (NULL key values). Two keys are equal when
 * their normalised values are equal or both are NULL (GROUP BY semantics: NULLs
 * group together; hash join excludes NULL keys before it gets here).
 *
 * Hash (must match the OpenCL/CUDA kernels bit for bit, see core/hash.h):
 *   one column:  tsr_hash_u64(v), or code_hashes[v] for a VARCHAR column (the
 *                dictionary's hash of the string), TSR_HT_NULL_HASH for NULL;
 *   several:     h = hash(col 0); h = tsr_hash_combine(h, hash(col k)) for k >= 1;
 *   no columns:  0 (every row is the one group).
 * For DOUBLE, tsr_hash_u64 of the normalised bits equals tsr_hash_double.
 *
 * Layout (a diagram of one table):
 *
 *   slots[nslots]  (open addressing, linear probing, nslots a power of two,
 *                   load factor <= 1/2, grown by doubling)
 *     { tag: uint64, gid: uint32 }   gid == TSR_HT_NONE: empty slot
 *       one key column:   tag = the normalised key itself (no key fetch to compare)
 *       several columns:  tag = the full 64-bit hash; the key columns of gid
 *                         are compared only when the tags agree
 *   group-indexed, columnar (struct of arrays), ngroups entries used:
 *     ghash[g]          the hash (rehash without rehashing keys; merge partitions)
 *     gkeys[k][g]       normalised key value of column k (0 under NULL)
 *     gvalid[k]         bitmap: bit g set = key column k of group g is not NULL
 *
 * With one key column the NULL key's group is not in the slot array: its id is
 * null_gid, so probes of non-NULL keys compare nothing but tags.
 *
 * A table is used by one thread at a time, except tsr_ht_find, which only
 * reads and may run concurrently with other tsr_ht_find calls.
 */
#ifndef TSR_EXEC_HASHTABLE_H
#define TSR_EXEC_HASHTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hash.h"
#include "core/mem.h"
#include "table/table.h"
#include "tessera/status.h"

/* "no group": an empty slot, or tsr_ht_find's answer for an absent key. */
#define TSR_HT_NONE UINT32_MAX
/* The hash of a NULL key value (part of the cross-device hash contract). */
#define TSR_HT_NULL_HASH 0x2545f4914f6cdd1dULL
/* Most groups one table holds (group ids are uint32, TSR_HT_NONE excluded). */
#define TSR_HT_MAX_GROUPS ((size_t)UINT32_MAX - 1)

typedef struct tsr_ht_slot {
    uint64_t tag; /* see the layout above */
    uint32_t gid; /* TSR_HT_NONE: empty */
    uint32_t pad; /* keeps slots 16 bytes: 4 per cache line */
} tsr_ht_slot_t;

typedef struct tsr_ht {
    tsr_mem_t *mem;
    size_t nkeys;                 /* key columns (0: one group for everything) */
    const uint64_t **code_hashes; /* nkeys entries (owned array): per-code hashes
                                     of a VARCHAR column, NULL for the others */
    tsr_ht_slot_t *slots;         /* nslots */
    size_t nslots;                /* power of two, >= 2 * ngroups */
    size_t ngroups;               /* groups 0..ngroups-1 exist */
    size_t gcap;                  /* capacity of the group arrays (multiple of 64) */
    uint64_t *ghash;              /* gcap */
    uint64_t **gkeys;             /* nkeys arrays of gcap */
    uint64_t **gvalid;            /* nkeys bitmaps of gcap bits */
    uint32_t null_gid;            /* one key column: the NULL key's group, or TSR_HT_NONE */
} tsr_ht_t;

/* One batch of rows to look up. Row j (0 <= j < n) reads index i = sel[j]
 * (or j when sel is NULL) of keys, validity and hashes; outputs are dense (j). */
typedef struct tsr_ht_rows {
    size_t n;
    const uint32_t *sel;             /* NULL: i = j */
    const uint64_t *const *keys;     /* nkeys arrays of normalised values */
    const uint64_t *const *validity; /* NULL (no NULLs), or nkeys bitmaps, each may be NULL */
    const uint64_t *hashes;          /* NULL, or the rows' hashes as tsr_ht_hash computes them */
} tsr_ht_rows_t;

/* The normalised key of a double: its bits, with -0.0 folded into 0.0 and
 * every NaN (any sign or payload) into TSR_HASH_NAN_BITS, so all NaNs form one
 * group as they form one value in ORDER BY. */
static inline uint64_t tsr_ht_norm_double(double d)
{
    uint64_t bits;
    if (d == 0.0)
        d = 0.0;
    memcpy(&bits, &d, sizeof(bits));
    return d == d ? bits : TSR_HASH_NAN_BITS;
}

/* Partition of a hash among 2^bits partitions (bits in 1..16): its top bits,
 * independent of the low bits that pick slots. */
static inline size_t tsr_ht_partition(uint64_t hash, unsigned bits)
{
    return (size_t)(hash >> (64 - bits));
}

/* An empty table for nkeys key columns sized for about expected_groups groups.
 * code_hashes: NULL, or nkeys entries (copied), non-NULL for VARCHAR columns:
 * hash of a code, e.g. tsr_dict_hashes(); must outlive the table. */
tsr_status_t tsr_ht_init(tsr_ht_t *ht, tsr_mem_t *mem, size_t nkeys,
                         const uint64_t *const *code_hashes, size_t expected_groups);
/* Frees everything; the table can be initialised again. Accepts a zeroed table. */
void tsr_ht_fini(tsr_ht_t *ht);

/* Group id of every row, inserting new groups; gids has room for rows->n.
 * On failure (TSR_ERR_NOMEM, or TSR_ERR_UNSUPPORTED past TSR_HT_MAX_GROUPS)
 * the table stays consistent and holds the groups inserted so far. */
tsr_status_t tsr_ht_find_or_insert(tsr_ht_t *ht, const tsr_ht_rows_t *rows, uint32_t *gids);

/* Grows the slot array to at least min_slots (rounded up to a power of two):
 * a table that is only probed from now on (a join's build side) answers
 * faster, misses above all, at a lower load factor. */
tsr_status_t tsr_ht_reserve_slots(tsr_ht_t *ht, size_t min_slots);

/* Group id of every row, TSR_HT_NONE where the key is absent. Read-only. */
void tsr_ht_find(const tsr_ht_t *ht, const tsr_ht_rows_t *rows, uint32_t *gids);

/* The hash of every row's key (dense: hashes[j]). */
void tsr_ht_hash(const tsr_ht_t *ht, const tsr_ht_rows_t *rows, uint64_t *hashes);

/* Normalises the values of rows (sel[j], or 0..n-1 when sel is NULL) of vector
 * v into out[i] (indexed by row, so out needs v->len entries) and returns the
 * array to read keys from: v's own data for INT64 (no copy), else out. Values
 * under NULL rows are whatever the vector holds (callers pass the validity). */
const uint64_t *tsr_ht_normalize(const tsr_vector_t *v, const uint32_t *sel, size_t n,
                                 uint64_t *out);

#endif /* TSR_EXEC_HASHTABLE_H */
