/*
 * kv_keyset.c - a set of byte-string keys (kv_keyset.h): open addressing
 * with linear probing over XXH3 hashes, at most half full; each slot holds
 * where its key's bytes start in one growing buffer, so a lookup compares
 * the bytes themselves (two keys with one hash are two keys).
 */
#include "kv_keyset.h"

#include <string.h>

#include "core/hash.h"

void tsr_kv_keyset_init(kv_keyset_t *k, tsr_mem_t *mem)
{
    memset(k, 0, sizeof(*k));
    k->mem = mem;
}

void tsr_kv_keyset_free(kv_keyset_t *k)
{
    tsr_mem_free(k->mem, k->slot);
    tsr_mem_free(k->mem, k->bytes);
    tsr_kv_keyset_init(k, k->mem);
}

size_t tsr_kv_keyset_bytes(const kv_keyset_t *k)
{
    return k->cap * sizeof(*k->slot) + k->bcap;
}

static bool same(const kv_keyset_t *k, uint64_t off, const void *key, size_t len)
{
    uint32_t l;
    memcpy(&l, k->bytes + off, sizeof(l));
    return l == len && (len == 0 || memcmp(k->bytes + off + sizeof(l), key, len) == 0);
}

/* The slot holding the key, or the empty slot where it would go. */
static size_t find(const kv_keyset_t *k, uint64_t h, const void *key, size_t len)
{
    size_t mask = k->cap - 1, i = (size_t)h & mask;
    while (k->slot[i] && !same(k, k->slot[i] - 1, key, len))
        i = (i + 1) & mask;
    return i;
}

bool tsr_kv_keyset_has(const kv_keyset_t *k, const void *key, size_t len)
{
    return k->cap && k->slot[find(k, tsr_hash_bytes(key, len), key, len)] != 0;
}

/* Doubles the table (64 slots first), rehashing every key from its bytes. */
static bool grow(kv_keyset_t *k)
{
    size_t cap = k->cap ? 2 * k->cap : 64;
    uint64_t *slot = tsr_mem_calloc(k->mem, cap, sizeof(*slot));
    if (!slot)
        return false;
    for (size_t i = 0; i < k->cap; i++) {
        if (!k->slot[i])
            continue;
        uint64_t off = k->slot[i] - 1;
        uint32_t l;
        memcpy(&l, k->bytes + off, sizeof(l));
        size_t j = (size_t)tsr_hash_bytes(k->bytes + off + sizeof(l), l) & (cap - 1);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = off + 1;
    }
    tsr_mem_free(k->mem, k->slot);
    k->slot = slot;
    k->cap = cap;
    return true;
}

bool tsr_kv_keyset_add(kv_keyset_t *k, const void *key, size_t len)
{
    if (len > UINT32_MAX)
        return false;
    if ((k->n + 1) * 2 > k->cap && !grow(k))
        return false;
    size_t i = find(k, tsr_hash_bytes(key, len), key, len);
    if (k->slot[i])
        return true;
    uint32_t l = (uint32_t)len;
    if (tsr_mem_grow(k->mem, (void **)&k->bytes, &k->bcap, k->len + sizeof(l) + len, 1) != 0)
        return false;
    memcpy(k->bytes + k->len, &l, sizeof(l));
    if (len)
        memcpy(k->bytes + k->len + sizeof(l), key, len);
    k->slot[i] = k->len + 1;
    k->len += sizeof(l) + len;
    k->n++;
    return true;
}
