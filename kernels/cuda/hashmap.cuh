/*
 * hashmap.cuh - static map kernel bodies (common C / CUDA C++ subset; see
 * compat.cuh): bulk upsert and lookup of 64-bit keys -> 64-bit values. The
 * __global__ wrappers are in hashmap.cu, the host side in
 * engine/device/hashmap_cuda.c.
 *
 * Layout (cuCollections' static_map with a pair slot): slot s is the pair
 * slots[2s] (key), slots[2s+1] (value), 16 bytes, so a probe reads one
 * 32-byte sector for key and value. TSR_CUDA_MAP_EMPTY marks an empty slot;
 * the key with those bits is kept apart, in sentinel[0..1] (present, value),
 * so every 64-bit key can be stored. Linear probing from tsr_hash_u64(key).
 *
 * Insert claims a slot by CAS on the key word, then stores the value; a key
 * already present gets the new value (upsert; for duplicates within one
 * launch one of the values wins). Every probe loop is bounded: a key that
 * finds no slot within probe_limit goes to `retry` and the host grows the map
 * and reinserts those keys, so nothing is dropped and nothing hangs. Keys
 * added are counted per block in shared memory and added to counters[NEW]
 * once per block (a global counter bumped per key would serialise the
 * inserts on one address).
 */
#ifndef TSR_KERNELS_CUDA_HASHMAP_CUH
#define TSR_KERNELS_CUDA_HASHMAP_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"
#include "hash.cuh"

#define MAP_U TSR_CUDA_ROWS_PER_THREAD

/* 1: key added, 0: key present (value assigned), -1: no slot within limit. */
TSR_DEV int map_put(uint64_t *slots, uint64_t nslots, uint32_t limit, uint64_t key, uint64_t val)
{
    const uint64_t mask = nslots - 1;
    uint64_t pos = tsr_k_hash_u64(key) & mask;
    for (uint32_t p = 0; p < limit; p++) {
        uint64_t *s = slots + 2 * pos;
        uint64_t cur = tsr_ld_volatile_u64(s);
        if (cur == TSR_CUDA_MAP_EMPTY) {
            cur = tsr_atom_cas_u64(s, TSR_CUDA_MAP_EMPTY, key);
            if (cur == TSR_CUDA_MAP_EMPTY) {
                tsr_st_volatile_u64(s + 1, val);
                return 1;
            }
        }
        if (cur == key) {
            tsr_st_volatile_u64(s + 1, val);
            return 0;
        }
        pos = (pos + 1) & mask;
    }
    return -1;
}

/* sh: 8 bytes of dynamic shared memory (the block's count of added keys). */
TSR_DEV void map_insert_body(const tsr_cuda_map_view_t *v, uint64_t *sh)
{
    uint32_t *blk_new = (uint32_t *)sh;
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM;
    if (tid == 0)
        *blk_new = 0;
    TSR_SYNC();
    const uint32_t step = TSR_GDIM * bdim * MAP_U;
    for (uint32_t it = TSR_BID * bdim * MAP_U; it < v->n; it += step) {
        uint32_t row[MAP_U];
        int act[MAP_U];
        uint64_t key[MAP_U], val[MAP_U];
        TSR_SYNC_WARP(); /* whole-warp loads after the divergent probing */
        TSR_UNROLL
        for (uint32_t u = 0; u < MAP_U; u++) {
            uint32_t j = it + u * bdim + tid;
            act[u] = j < v->n;
            row[u] = act[u] ? (v->sel ? v->sel[j] : j) : 0;
            key[u] = act[u] ? v->keys[row[u]] : 0;
            val[u] = act[u] ? v->vals[row[u]] : 0;
        }
        TSR_UNROLL
        for (uint32_t u = 0; u < MAP_U; u++) {
            if (!act[u])
                continue;
            if (key[u] == TSR_CUDA_MAP_EMPTY) {
                if (tsr_atom_exch_u64(v->sentinel, 1) == 0)
                    tsr_atom_add_u32(blk_new, 1);
                tsr_st_volatile_u64(v->sentinel + 1, val[u]);
                continue;
            }
            int r = map_put(v->slots, v->nslots, v->probe_limit, key[u], val[u]);
            if (r > 0)
                tsr_atom_add_u32(blk_new, 1);
            else if (r < 0)
                v->retry[tsr_atom_add_u32(v->counters + TSR_CUDA_CNT_FAIL, 1)] = row[u];
        }
    }
    TSR_SYNC();
    if (tid == 0 && *blk_new)
        tsr_atom_add_u32(v->counters + TSR_CUDA_CNT_NEW, *blk_new);
}

TSR_DEV void map_find_body(const tsr_cuda_map_view_t *v)
{
    const uint64_t mask = v->nslots - 1;
    const uint32_t step = TSR_GDIM * TSR_BDIM;
    for (uint32_t j = TSR_BID * TSR_BDIM + TSR_TID; j < v->n; j += step) {
        uint64_t key = v->keys[j], val = 0;
        uint8_t found = 0;
        if (key == TSR_CUDA_MAP_EMPTY) {
            found = v->sentinel[0] != 0;
            val = found ? v->sentinel[1] : 0;
        } else {
            uint64_t pos = tsr_k_hash_u64(key) & mask;
            for (uint32_t p = 0; p < v->probe_limit; p++) {
                uint64_t k = v->slots[2 * pos];
                if (k == key) {
                    val = v->slots[2 * pos + 1];
                    found = 1;
                    break;
                }
                if (k == TSR_CUDA_MAP_EMPTY)
                    break;
                pos = (pos + 1) & mask;
            }
        }
        v->out[j] = val;
        v->found[j] = found;
    }
}

/* Every key of from into to (empty); failures count in to->counters[FAIL]. */
TSR_DEV void map_rehash_body(const tsr_cuda_map_view_t *from, const tsr_cuda_map_view_t *to)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t i = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; i < from->nslots; i += step) {
        uint64_t key = from->slots[2 * i];
        if (key == TSR_CUDA_MAP_EMPTY)
            continue;
        if (map_put(to->slots, to->nslots, to->probe_limit, key, from->slots[2 * i + 1]) < 0)
            tsr_atom_add_u32(to->counters + TSR_CUDA_CNT_FAIL, 1);
    }
}

#endif /* TSR_KERNELS_CUDA_HASHMAP_CUH */
