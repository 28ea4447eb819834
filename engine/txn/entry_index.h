/*
 * entry_index.h - a hash index over a transaction's read or write set
 * (txn_entry_t arrays that only grow: entries are appended, replaced in
 * place, never moved or removed), so that finding a key costs O(1) in a
 * transaction of thousands of keys. A linear search over N entries per
 * get or put made a transaction of N puts O(N^2): 20,000 puts took ~1 s.
 *
 * Below TXN_INDEX_MIN entries the search stays linear (no allocation,
 * and faster at that size). The index is brought up to date lazily by the
 * search itself; without memory for it the search falls back to linear,
 * so a search never fails.
 */
#ifndef TSR_TXN_ENTRY_INDEX_H
#define TSR_TXN_ENTRY_INDEX_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "txn_internal.h"

#define TXN_INDEX_MIN 16u

typedef struct txn_index {
    uint32_t *slot; /* entry index + 1; 0: empty */
    size_t cap;     /* a power of two, at least twice the entries indexed */
    size_t built;   /* entries [0, built) are in it */
} txn_index_t;

static inline bool txn_entry_is(const txn_entry_t *e, uint32_t tab, uint64_t h, const void *key,
                                size_t klen)
{
    return e->tab == tab && e->h == h && e->klen == klen &&
           (klen == 0 || memcmp(e->key, key, klen) == 0);
}

static inline size_t txn_index_home(uint32_t tab, uint64_t h, size_t mask)
{
    return (size_t)((h ^ ((uint64_t)tab * 0x9e3779b97f4a7c15ull)) & mask);
}

static inline void txn_index_free(txn_index_t *ix)
{
    tsr_mem_free(NULL, ix->slot);
    *ix = (txn_index_t){0};
}

/* Indexes v[built..n), first rebuilding at 4x the size when n passed half
 * the capacity. False when out of memory (the index is left as it was). */
static inline bool txn_index_sync(txn_index_t *ix, const txn_entry_t *v, size_t n)
{
    if (n >= UINT32_MAX)
        return false;
    if (n > ix->cap / 2) {
        size_t cap = 64;
        while (cap < 4 * n)
            cap *= 2;
        uint32_t *s = tsr_mem_calloc(NULL, cap, sizeof(*s));
        if (!s)
            return false;
        tsr_mem_free(NULL, ix->slot);
        ix->slot = s;
        ix->cap = cap;
        ix->built = 0;
    }
    size_t mask = ix->cap - 1;
    for (; ix->built < n; ix->built++) {
        size_t i = txn_index_home(v[ix->built].tab, v[ix->built].h, mask);
        while (ix->slot[i])
            i = (i + 1) & mask;
        ix->slot[i] = (uint32_t)ix->built + 1;
    }
    return true;
}

/* The entry of v[0..n) with that key, or NULL. */
static inline txn_entry_t *txn_index_find(txn_index_t *ix, txn_entry_t *v, size_t n, uint32_t tab,
                                          uint64_t h, const void *key, size_t klen)
{
    if (n >= TXN_INDEX_MIN && txn_index_sync(ix, v, n)) {
        size_t mask = ix->cap - 1;
        for (size_t i = txn_index_home(tab, h, mask); ix->slot[i]; i = (i + 1) & mask) {
            txn_entry_t *e = &v[ix->slot[i] - 1];
            if (txn_entry_is(e, tab, h, key, klen))
                return e;
        }
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (txn_entry_is(&v[i], tab, h, key, klen))
            return &v[i];
    return NULL;
}

#endif /* TSR_TXN_ENTRY_INDEX_H */
