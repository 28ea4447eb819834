/*
 * hashtable.c - open-addressing group-id table (see hashtable.h for the layout
 * and the hash contract).
 *
 * The probe loops are written once as always-inline functions taking constant
 * flags (selection vector or not, NULLs possible or not, where the hash comes
 * from) and instantiated by small dispatchers, so every combination gets a loop
 * with no per-row tests of loop-invariant conditions.
 *
 * Growth. The group arrays grow by doubling before a group is added; the slot
 * array doubles (a full rehash from ghash) as soon as an insert leaves it more
 * than half full. An allocation failure leaves the table as it was before the
 * failing insert, so a caller can report the error and free it normally.
 */
#include "exec/hashtable.h"

#define HT_MIN_SLOTS 16
#define HT_CHUNK 256                 /* composite keys: rows hashed column-wise per chunk */
#define HT_PREFETCH_DIST 16          /* rows ahead whose home slot is prefetched */
#define HT_PREFETCH_SLOTS (1u << 16) /* tables past 1 MiB of slots prefetch */

#define HT_INLINE static inline __attribute__((always_inline))

enum { HASH_U64, HASH_CODES, HASH_GIVEN }; /* single-key hash source */

static size_t ht_pow2_at_least(size_t n)
{
    size_t p = HT_MIN_SLOTS;
    while (p < n)
        p <<= 1;
    return p;
}

static tsr_ht_slot_t *ht_alloc_slots(tsr_mem_t *mem, size_t nslots)
{
    tsr_ht_slot_t *slots = tsr_mem_alloc_aligned(mem, nslots * sizeof(tsr_ht_slot_t));
    if (!slots)
        return NULL;
    for (size_t s = 0; s < nslots; s++) {
        slots[s].tag = 0;
        slots[s].gid = TSR_HT_NONE;
        slots[s].pad = 0;
    }
    return slots;
}

tsr_status_t tsr_ht_init(tsr_ht_t *ht, tsr_mem_t *mem, size_t nkeys,
                         const uint64_t *const *code_hashes, size_t expected_groups)
{
    memset(ht, 0, sizeof(*ht));
    ht->mem = mem;
    ht->nkeys = nkeys;
    ht->null_gid = TSR_HT_NONE;
    if (expected_groups > TSR_HT_MAX_GROUPS)
        expected_groups = TSR_HT_MAX_GROUPS;
    ht->nslots = ht_pow2_at_least(expected_groups * 2);
    ht->slots = ht_alloc_slots(mem, ht->nslots);
    ht->code_hashes = tsr_mem_calloc(mem, nkeys ? nkeys : 1, sizeof(*ht->code_hashes));
    ht->gkeys = tsr_mem_calloc(mem, nkeys ? nkeys : 1, sizeof(*ht->gkeys));
    ht->gvalid = tsr_mem_calloc(mem, nkeys ? nkeys : 1, sizeof(*ht->gvalid));
    if (!ht->slots || !ht->code_hashes || !ht->gkeys || !ht->gvalid) {
        tsr_ht_fini(ht);
        return TSR_ERR_NOMEM;
    }
    for (size_t k = 0; k < nkeys && code_hashes; k++)
        ht->code_hashes[k] = code_hashes[k];
    return TSR_OK;
}

void tsr_ht_fini(tsr_ht_t *ht)
{
    if (!ht)
        return;
    tsr_mem_free(ht->mem, ht->slots);
    tsr_mem_free(ht->mem, ht->ghash);
    for (size_t k = 0; ht->gkeys && k < ht->nkeys; k++)
        tsr_mem_free(ht->mem, ht->gkeys[k]);
    for (size_t k = 0; ht->gvalid && k < ht->nkeys; k++)
        tsr_mem_free(ht->mem, ht->gvalid[k]);
    tsr_mem_free(ht->mem, ht->gkeys);
    tsr_mem_free(ht->mem, ht->gvalid);
    tsr_mem_free(ht->mem, (void *)ht->code_hashes);
    tsr_mem_t *mem = ht->mem;
    memset(ht, 0, sizeof(*ht));
    ht->mem = mem;
    ht->null_gid = TSR_HT_NONE;
}

/* ---- growth ----------------------------------------------------------------- */

/* Makes room for one more group in the group arrays. Each array is replaced
 * only once its new copy exists, so a failure leaves valid (old-size) arrays. */
static tsr_status_t ht_reserve_group(tsr_ht_t *ht)
{
    if (ht->ngroups < ht->gcap)
        return TSR_OK;
    if (ht->ngroups >= TSR_HT_MAX_GROUPS)
        return TSR_ERR_UNSUPPORTED;
    size_t cap = ht->gcap ? ht->gcap * 2 : 64;
    uint64_t *gh = tsr_mem_realloc(ht->mem, ht->ghash, cap * sizeof(uint64_t));
    if (!gh)
        return TSR_ERR_NOMEM;
    ht->ghash = gh;
    for (size_t k = 0; k < ht->nkeys; k++) {
        uint64_t *keys = tsr_mem_realloc(ht->mem, ht->gkeys[k], cap * sizeof(uint64_t));
        if (!keys)
            return TSR_ERR_NOMEM;
        ht->gkeys[k] = keys;
        uint64_t *valid = tsr_mem_realloc(ht->mem, ht->gvalid[k], cap / 64 * sizeof(uint64_t));
        if (!valid)
            return TSR_ERR_NOMEM;
        ht->gvalid[k] = valid;
    }
    ht->gcap = cap; /* only now: every array holds cap entries */
    return TSR_OK;
}

static inline uint64_t ht_slot_tag(const tsr_ht_t *ht, size_t g)
{
    return ht->nkeys == 1 ? ht->gkeys[0][g] : ht->ghash[g];
}

static tsr_status_t ht_rehash(tsr_ht_t *ht, size_t nslots)
{
    tsr_ht_slot_t *slots = ht_alloc_slots(ht->mem, nslots);
    if (!slots)
        return TSR_ERR_NOMEM;
    size_t mask = nslots - 1;
    for (size_t g = 0; g < ht->ngroups; g++) {
        if ((uint32_t)g == ht->null_gid)
            continue; /* lives outside the slot array */
        size_t pos = (size_t)ht->ghash[g] & mask;
        while (slots[pos].gid != TSR_HT_NONE)
            pos = (pos + 1) & mask;
        slots[pos].tag = ht_slot_tag(ht, g);
        slots[pos].gid = (uint32_t)g;
    }
    tsr_mem_free(ht->mem, ht->slots);
    ht->slots = slots;
    ht->nslots = nslots;
    return TSR_OK;
}

tsr_status_t tsr_ht_reserve_slots(tsr_ht_t *ht, size_t min_slots)
{
    if (min_slots <= ht->nslots)
        return TSR_OK;
    return ht_rehash(ht, ht_pow2_at_least(min_slots));
}

/* Appends a group for row i of r with hash h; when slot is not NULL, also
 * claims that (empty) slot and grows the slot array if it got too full.
 * Returns the new id in *gid. */
static tsr_status_t ht_add_group(tsr_ht_t *ht, const tsr_ht_rows_t *r, size_t i, uint64_t h,
                                 tsr_ht_slot_t *slot, uint32_t *gid)
{
    tsr_status_t rc = ht_reserve_group(ht);
    if (rc != TSR_OK)
        return rc;
    size_t g = ht->ngroups;
    ht->ghash[g] = h;
    for (size_t k = 0; k < ht->nkeys; k++) {
        const uint64_t *valid = r->validity ? r->validity[k] : NULL;
        bool ok = tsr_bit_get(valid, i);
        ht->gkeys[k][g] = ok ? r->keys[k][i] : 0;
        tsr_bit_set(ht->gvalid[k], g, ok);
    }
    if (slot) {
        /* Grow first when this group would overfill: the table is untouched
         * if that fails, and the group is then placed by the rehash itself. */
        if ((g + 1) * 2 > ht->nslots) {
            ht->ngroups = g + 1;
            rc = ht_rehash(ht, ht->nslots * 2);
            if (rc != TSR_OK) {
                ht->ngroups = g;
                return rc;
            }
        } else {
            slot->tag = ht_slot_tag(ht, g);
            slot->gid = (uint32_t)g;
            ht->ngroups = g + 1;
        }
    } else {
        ht->ngroups = g + 1;
    }
    *gid = (uint32_t)g;
    return TSR_OK;
}

/* ---- hashing ---------------------------------------------------------------- */

/* Hashes rows [j0, j0+n) of r into h[0..n), column by column. */
static void ht_hash_chunk(const tsr_ht_t *ht, const tsr_ht_rows_t *r, size_t j0, size_t n,
                          uint64_t *h)
{
    if (r->hashes) {
        for (size_t j = 0; j < n; j++)
            h[j] = r->hashes[r->sel ? r->sel[j0 + j] : j0 + j];
        return;
    }
    if (ht->nkeys == 0) {
        memset(h, 0, n * sizeof(uint64_t));
        return;
    }
    for (size_t k = 0; k < ht->nkeys; k++) {
        const uint64_t *keys = r->keys[k];
        const uint64_t *valid = r->validity ? r->validity[k] : NULL;
        const uint64_t *ch = ht->code_hashes[k];
        for (size_t j = 0; j < n; j++) {
            size_t i = r->sel ? r->sel[j0 + j] : j0 + j;
            uint64_t hk;
            if (!tsr_bit_get(valid, i))
                hk = TSR_HT_NULL_HASH;
            else
                hk = ch ? ch[keys[i]] : tsr_hash_u64(keys[i]);
            h[j] = k == 0 ? hk : tsr_hash_combine(h[j], hk);
        }
    }
}

void tsr_ht_hash(const tsr_ht_t *ht, const tsr_ht_rows_t *r, uint64_t *hashes)
{
    for (size_t j0 = 0; j0 < r->n; j0 += HT_CHUNK) {
        size_t n = r->n - j0 < HT_CHUNK ? r->n - j0 : HT_CHUNK;
        ht_hash_chunk(ht, r, j0, n, hashes + j0);
    }
}

/* ---- one key column --------------------------------------------------------- */

HT_INLINE uint64_t ht_single_hash(const tsr_ht_t *ht, const tsr_ht_rows_t *r, size_t i,
                                  uint64_t key, const int hash_src)
{
    if (hash_src == HASH_GIVEN)
        return r->hashes[i];
    if (hash_src == HASH_CODES)
        return ht->code_hashes[0][key];
    return tsr_hash_u64(key);
}

static tsr_status_t ht_null_group(tsr_ht_t *ht, const tsr_ht_rows_t *r, size_t i, uint32_t *gid)
{
    if (ht->null_gid == TSR_HT_NONE) {
        tsr_status_t rc = ht_add_group(ht, r, i, TSR_HT_NULL_HASH, NULL, gid);
        if (rc != TSR_OK)
            return rc;
        ht->null_gid = *gid;
    }
    *gid = ht->null_gid;
    return TSR_OK;
}

/* Starts loading the home slot of row j (a table far bigger than the caches
 * otherwise stalls on every probe; the probes of the next rows overlap). */
HT_INLINE void ht_prefetch(const tsr_ht_t *ht, const tsr_ht_slot_t *slots, size_t mask,
                           const tsr_ht_rows_t *r, size_t j, const bool has_sel,
                           const bool has_valid, const int hash_src)
{
    if (j >= r->n)
        return;
    size_t i = has_sel ? r->sel[j] : j;
    if (has_valid && !tsr_bit_get(r->validity[0], i))
        return; /* the value under a NULL may be out of range */
    size_t pos = (size_t)ht_single_hash(ht, r, i, r->keys[0][i], hash_src) & mask;
    __builtin_prefetch(&slots[pos]);
}

HT_INLINE tsr_status_t ht_foi_single(tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids,
                                     const bool has_sel, const bool has_valid, const int hash_src,
                                     const bool pf)
{
    const uint64_t *keys = r->keys[0];
    const uint64_t *valid = has_valid ? r->validity[0] : NULL;
    tsr_ht_slot_t *slots = ht->slots;
    size_t mask = ht->nslots - 1;
    for (size_t j = 0; j < r->n; j++) {
        if (pf)
            ht_prefetch(ht, slots, mask, r, j + HT_PREFETCH_DIST, has_sel, has_valid, hash_src);
        size_t i = has_sel ? r->sel[j] : j;
        if (has_valid && !tsr_bit_get(valid, i)) {
            tsr_status_t rc = ht_null_group(ht, r, i, &gids[j]);
            if (rc != TSR_OK)
                return rc;
            continue;
        }
        uint64_t key = keys[i];
        size_t pos = (size_t)ht_single_hash(ht, r, i, key, hash_src) & mask;
        for (;;) {
            tsr_ht_slot_t *s = &slots[pos];
            if (s->tag == key && s->gid != TSR_HT_NONE) {
                gids[j] = s->gid;
                break;
            }
            if (s->gid == TSR_HT_NONE) {
                uint64_t h = ht_single_hash(ht, r, i, key, hash_src);
                tsr_status_t rc = ht_add_group(ht, r, i, h, s, &gids[j]);
                if (rc != TSR_OK)
                    return rc;
                slots = ht->slots; /* may have been rehashed */
                mask = ht->nslots - 1;
                break;
            }
            pos = (pos + 1) & mask;
        }
    }
    return TSR_OK;
}

HT_INLINE void ht_find_single(const tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids,
                              const bool has_sel, const bool has_valid, const int hash_src,
                              const bool pf)
{
    const uint64_t *keys = r->keys[0];
    const uint64_t *valid = has_valid ? r->validity[0] : NULL;
    const tsr_ht_slot_t *slots = ht->slots;
    size_t mask = ht->nslots - 1;
    for (size_t j = 0; j < r->n; j++) {
        if (pf)
            ht_prefetch(ht, slots, mask, r, j + HT_PREFETCH_DIST, has_sel, has_valid, hash_src);
        size_t i = has_sel ? r->sel[j] : j;
        if (has_valid && !tsr_bit_get(valid, i)) {
            gids[j] = ht->null_gid;
            continue;
        }
        uint64_t key = keys[i];
        size_t pos = (size_t)ht_single_hash(ht, r, i, key, hash_src) & mask;
        for (;;) {
            const tsr_ht_slot_t *s = &slots[pos];
            if (s->gid == TSR_HT_NONE || s->tag == key) {
                gids[j] = s->gid;
                break;
            }
            pos = (pos + 1) & mask;
        }
    }
}

/* ---- several key columns (or none) -------------------------------------------- */

static inline bool ht_keys_equal(const tsr_ht_t *ht, size_t g, const tsr_ht_rows_t *r, size_t i)
{
    for (size_t k = 0; k < ht->nkeys; k++) {
        const uint64_t *valid = r->validity ? r->validity[k] : NULL;
        bool row_ok = tsr_bit_get(valid, i);
        bool grp_ok = tsr_bit_get(ht->gvalid[k], g);
        if (row_ok != grp_ok)
            return false;
        if (row_ok && ht->gkeys[k][g] != r->keys[k][i])
            return false;
    }
    return true;
}

static tsr_status_t ht_foi_multi(tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids)
{
    uint64_t h[HT_CHUNK];
    for (size_t j0 = 0; j0 < r->n; j0 += HT_CHUNK) {
        size_t n = r->n - j0 < HT_CHUNK ? r->n - j0 : HT_CHUNK;
        ht_hash_chunk(ht, r, j0, n, h);
        for (size_t j = 0; j < n; j++) {
            size_t i = r->sel ? r->sel[j0 + j] : j0 + j;
            size_t mask = ht->nslots - 1;
            size_t pos = (size_t)h[j] & mask;
            for (;;) {
                tsr_ht_slot_t *s = &ht->slots[pos];
                if (s->gid == TSR_HT_NONE) {
                    tsr_status_t rc = ht_add_group(ht, r, i, h[j], s, &gids[j0 + j]);
                    if (rc != TSR_OK)
                        return rc;
                    break;
                }
                if (s->tag == h[j] && ht_keys_equal(ht, s->gid, r, i)) {
                    gids[j0 + j] = s->gid;
                    break;
                }
                pos = (pos + 1) & mask;
            }
        }
    }
    return TSR_OK;
}

static void ht_find_multi(const tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids)
{
    uint64_t h[HT_CHUNK];
    size_t mask = ht->nslots - 1;
    for (size_t j0 = 0; j0 < r->n; j0 += HT_CHUNK) {
        size_t n = r->n - j0 < HT_CHUNK ? r->n - j0 : HT_CHUNK;
        ht_hash_chunk(ht, r, j0, n, h);
        for (size_t j = 0; j < n; j++) {
            size_t i = r->sel ? r->sel[j0 + j] : j0 + j;
            size_t pos = (size_t)h[j] & mask;
            for (;;) {
                const tsr_ht_slot_t *s = &ht->slots[pos];
                if (s->gid == TSR_HT_NONE || (s->tag == h[j] && ht_keys_equal(ht, s->gid, r, i))) {
                    gids[j0 + j] = s->gid;
                    break;
                }
                pos = (pos + 1) & mask;
            }
        }
    }
}

/* ---- dispatch ------------------------------------------------------------------ */

static int ht_hash_src(const tsr_ht_t *ht, const tsr_ht_rows_t *r)
{
    if (r->hashes)
        return HASH_GIVEN;
    return ht->code_hashes[0] ? HASH_CODES : HASH_U64;
}

/* Instantiates the single-key loops for one (selection, validity) pair and
 * every hash source, with and without prefetching; always inline, so each
 * call below is its own loop. */
HT_INLINE tsr_status_t ht_foi_src(tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids,
                                  const bool has_sel, const bool has_valid, int src)
{
    bool pf = ht->nslots > HT_PREFETCH_SLOTS;
    switch (src) {
    case HASH_U64:
        return pf ? ht_foi_single(ht, r, gids, has_sel, has_valid, HASH_U64, true)
                  : ht_foi_single(ht, r, gids, has_sel, has_valid, HASH_U64, false);
    case HASH_CODES:
        return pf ? ht_foi_single(ht, r, gids, has_sel, has_valid, HASH_CODES, true)
                  : ht_foi_single(ht, r, gids, has_sel, has_valid, HASH_CODES, false);
    default:
        return pf ? ht_foi_single(ht, r, gids, has_sel, has_valid, HASH_GIVEN, true)
                  : ht_foi_single(ht, r, gids, has_sel, has_valid, HASH_GIVEN, false);
    }
}

HT_INLINE void ht_find_src(const tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids,
                           const bool has_sel, const bool has_valid, int src)
{
    bool pf = ht->nslots > HT_PREFETCH_SLOTS;
    switch (src) {
    case HASH_U64:
        if (pf)
            ht_find_single(ht, r, gids, has_sel, has_valid, HASH_U64, true);
        else
            ht_find_single(ht, r, gids, has_sel, has_valid, HASH_U64, false);
        break;
    case HASH_CODES:
        if (pf)
            ht_find_single(ht, r, gids, has_sel, has_valid, HASH_CODES, true);
        else
            ht_find_single(ht, r, gids, has_sel, has_valid, HASH_CODES, false);
        break;
    default:
        if (pf)
            ht_find_single(ht, r, gids, has_sel, has_valid, HASH_GIVEN, true);
        else
            ht_find_single(ht, r, gids, has_sel, has_valid, HASH_GIVEN, false);
        break;
    }
}

tsr_status_t tsr_ht_find_or_insert(tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids)
{
    if (r->n == 0)
        return TSR_OK;
    if (ht->nkeys != 1)
        return ht_foi_multi(ht, r, gids);
    int src = ht_hash_src(ht, r);
    bool has_valid = r->validity && r->validity[0];
    if (r->sel)
        return has_valid ? ht_foi_src(ht, r, gids, true, true, src)
                         : ht_foi_src(ht, r, gids, true, false, src);
    return has_valid ? ht_foi_src(ht, r, gids, false, true, src)
                     : ht_foi_src(ht, r, gids, false, false, src);
}

void tsr_ht_find(const tsr_ht_t *ht, const tsr_ht_rows_t *r, uint32_t *gids)
{
    if (r->n == 0)
        return;
    if (ht->nkeys != 1) {
        ht_find_multi(ht, r, gids);
        return;
    }
    int src = ht_hash_src(ht, r);
    bool has_valid = r->validity && r->validity[0];
    if (r->sel) {
        if (has_valid)
            ht_find_src(ht, r, gids, true, true, src);
        else
            ht_find_src(ht, r, gids, true, false, src);
    } else {
        if (has_valid)
            ht_find_src(ht, r, gids, false, true, src);
        else
            ht_find_src(ht, r, gids, false, false, src);
    }
}

/* ---- normalisation --------------------------------------------------------------- */

const uint64_t *tsr_ht_normalize(const tsr_vector_t *v, const uint32_t *sel, size_t n,
                                 uint64_t *out)
{
    switch (v->type) {
    case TSR_TYPE_INT64:
        return (const uint64_t *)v->data;
    case TSR_TYPE_DOUBLE: {
        const double *d = v->data;
        if (sel)
            for (size_t j = 0; j < n; j++)
                out[sel[j]] = tsr_ht_norm_double(d[sel[j]]);
        else
            for (size_t i = 0; i < n; i++)
                out[i] = tsr_ht_norm_double(d[i]);
        return out;
    }
    case TSR_TYPE_VARCHAR: {
        const uint32_t *c = v->data;
        if (sel)
            for (size_t j = 0; j < n; j++)
                out[sel[j]] = c[sel[j]];
        else
            for (size_t i = 0; i < n; i++)
                out[i] = c[i];
        return out;
    }
    case TSR_TYPE_BOOL:
    case TSR_TYPE_NULL: {
        const uint8_t *b = v->data;
        if (sel)
            for (size_t j = 0; j < n; j++)
                out[sel[j]] = b[sel[j]] != 0;
        else
            for (size_t i = 0; i < n; i++)
                out[i] = b[i] != 0;
        return out;
    }
    }
    return out;
}
