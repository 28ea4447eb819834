/*
 * ring.c - the consistent-hash ring that places kv partitions on workers
 * (kv_ring.h). Points are sorted once at build; a lookup is a binary search
 * then a walk clockwise collecting distinct members (at most every point once).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "kv_ring.h"

static int by_pos(const void *a, const void *b)
{
    const tsr_kvring_point_t *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->member < y->member ? -1 : x->member > y->member; /* ties: deterministic */
}

tsr_status_t tsr_kvring_build(tsr_mem_t *mem, const char *const *ids, size_t n, unsigned vnodes,
                              tsr_kvring_t *out, tsr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    out->mem = mem;
    if (n == 0 || n > UINT32_MAX)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "a ring needs 1..2^32-1 members, got %zu",
                             n);
    if (vnodes == 0)
        vnodes = TSR_KVRING_VNODES;
    out->pts = tsr_mem_calloc(mem, n * vnodes, sizeof(*out->pts));
    if (!out->pts)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for a ring of %zu members", n);
    for (size_t m = 0; m < n; m++) {
        uint64_t h = tsr_hash_bytes(ids[m], strlen(ids[m]));
        for (unsigned j = 0; j < vnodes; j++) {
            tsr_kvring_point_t *p = &out->pts[m * vnodes + j];
            p->pos = tsr_hash_combine(h, j);
            p->member = (uint32_t)m;
        }
    }
    out->npts = n * vnodes;
    out->nmembers = n;
    qsort(out->pts, out->npts, sizeof(*out->pts), by_pos);
    return TSR_OK;
}

void tsr_kvring_free(tsr_kvring_t *r)
{
    if (!r)
        return;
    tsr_mem_free(r->mem, r->pts);
    memset(r, 0, sizeof(*r));
}

size_t tsr_kvring_lookup(const tsr_kvring_t *r, uint64_t h, size_t want, uint32_t *out)
{
    if (!r->npts || want == 0)
        return 0;
    if (want > r->nmembers)
        want = r->nmembers;
    size_t lo = 0, hi = r->npts; /* first point with pos >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->pts[mid].pos < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t got = 0;
    for (size_t k = 0; k < r->npts && got < want; k++) {
        uint32_t m = r->pts[(lo + k) % r->npts].member;
        bool seen = false;
        for (size_t i = 0; i < got && !seen; i++)
            seen = out[i] == m;
        if (!seen)
            out[got++] = m;
    }
    return got;
}

uint64_t tsr_kvring_part_hash(const char *table, uint64_t gen, uint32_t part)
{
    uint64_t h = tsr_hash_bytes(table, strlen(table));
    return tsr_hash_combine(tsr_hash_combine(h, gen), part);
}
