/*
 * worker_kv_ranges.c - a partition's keys in hash ranges (kv_msg.h
 * RDIGEST, SCAN with ranges, RDROP; docs/kv.md "Resync by
 * ranges").
 *
 * A pair's range is a mix of XXH3-64 of its key, masked to the number of
 * ranges (the partition function takes the key's hash modulo the
 * partitions, so the raw low bits are the same for a whole partition; the
 * bijective mixer spreads them). A copy's digest - whole, or per range -
 * is a sum over its pairs of XXH3-128 of the value seeded by the key's
 * hash: it does not depend on where each copy keeps its pairs or in which
 * order they were written, and versions are left out (they differ per
 * replica). Two copies that hold the same pairs have equal digests; two
 * that differ differ with probability 1 - 2^-128 per range.
 *
 * Every call here runs on the partition's own thread (worker_kv.c), so no
 * write of the partition runs under its scan; a rehash under it (CONFLICT)
 * starts a digest over and fails a ranged scan (the scheduler starts its
 * scan over, as for any SCAN).
 */
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "kv_msg.h"
#include "worker_kv_ranges.h"

static uint32_t range_of(uint64_t key_hash, uint32_t n)
{
    return (uint32_t)(tsr_hash_u64(key_hash) & (n - 1));
}

static bool in_ranges(const wkv_ranges_t *rs, const void *key, size_t klen)
{
    uint32_t i = range_of(XXH3_64bits(key, klen), rs->n);
    return (rs->bits[i / 8] >> (i % 8)) & 1;
}

bool tsr_wkv_ranges_read(tsr_rbuf_t *r, wkv_ranges_t *out)
{
    uint32_t n = tsr_rbuf_u32(r);
    if (r->bad || n == 0 || n > TSR_KV_RANGES_MAX || (n & (n - 1)) != 0) {
        r->bad = true;
        return false;
    }
    out->n = n;
    out->bits = tsr_rbuf_bytes(r, n < 8 ? 1 : n / 8);
    return !r->bad && out->bits;
}

typedef struct digest_acc {
    uint32_t nranges;
    uint64_t pairs;
    uint64_t *sums; /* 2 per range */
} digest_acc_t;

static void on_digest_pair(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    digest_acc_t *a = arg;
    uint64_t kh = XXH3_64bits(key, klen);
    XXH128_hash_t h = XXH3_128bits_withSeed(val, vlen, kh ^ klen);
    uint64_t *s = a->sums + 2 * (size_t)range_of(kh, a->nranges);
    a->pairs++;
    s[0] += h.low64;
    s[1] += h.high64;
}

tsr_status_t tsr_wkv_digest(tsr_kv_table_t *t, uint32_t nranges, uint64_t *cursor, size_t visit_max,
                            tsr_wbuf_t *out, tsr_kv_err_t *ke)
{
    if (nranges == 0 || nranges > TSR_KV_RANGES_MAX || (nranges & (nranges - 1)) != 0 ||
        visit_max == 0) {
        snprintf(ke->message, sizeof(ke->message), "malformed kv request");
        return TSR_ERR_BAD_INPUT;
    }
    digest_acc_t a = {.nranges = nranges};
    if (!(a.sums = tsr_mem_calloc(NULL, 2 * (size_t)nranges, sizeof(uint64_t))))
        return TSR_ERR_NOMEM;
    tsr_status_t rc = TSR_OK;
    /* a chunk of at most visit_max pairs from *cursor: the caller adds the
     * chunks' sums up (a CONFLICT: the table was rehashed between two
     * chunks, start over) */
    size_t visited = 0;
    if (!t && *cursor != 0) {
        /* gone since the last chunk (dropped): the sums so far mean nothing */
        tsr_mem_free(NULL, a.sums);
        snprintf(ke->message, sizeof(ke->message), "the partition is gone: start over");
        return TSR_ERR_CONFLICT;
    }
    while (t && rc == TSR_OK && visited < visit_max) {
        uint64_t before = a.pairs;
        size_t want = visit_max - visited;
        rc = tsr_kv_scan(t, cursor, want < TSR_KV_SCAN_PAGE_MAX ? want : TSR_KV_SCAN_PAGE_MAX,
                         on_digest_pair, &a, ke);
        visited += a.pairs - before;
        if (*cursor == 0)
            break;
    }
    if (rc == TSR_OK) {
        tsr_wbuf_u64(out, *cursor);
        tsr_wbuf_u64(out, a.pairs);
        tsr_wbuf_u32(out, nranges);
        for (size_t i = 0; i < 2 * (size_t)nranges; i++)
            tsr_wbuf_u64(out, a.sums[i]);
    }
    tsr_mem_free(NULL, a.sums);
    return rc;
}

typedef struct scan_filter {
    const wkv_ranges_t *rs;
    tsr_wbuf_t *pairs;
    uint32_t n;
    size_t visited;
} scan_filter_t;

static void on_scan_pair(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    scan_filter_t *f = arg;
    f->visited++;
    if (!in_ranges(f->rs, key, klen))
        return;
    tsr_wbuf_blob(f->pairs, key, klen);
    tsr_wbuf_blob(f->pairs, val, vlen);
    f->n++;
}

tsr_status_t tsr_wkv_scan_ranges(tsr_kv_table_t *t, uint64_t *cursor, uint32_t page,
                                 const wkv_ranges_t *rs, size_t visit_max, tsr_wbuf_t *pairs,
                                 uint32_t *n, tsr_kv_err_t *ke)
{
    scan_filter_t f = {.rs = rs, .pairs = pairs};
    tsr_status_t rc = TSR_OK;
    /* each call visits at most page - matched pairs, so no more than page
     * go out; a page of few matches reads on, at most visit_max pairs
     * (the page may then be empty, its cursor not 0: the caller asks on) */
    do
        rc = tsr_kv_scan(t, cursor, page - f.n, on_scan_pair, &f, ke);
    while (rc == TSR_OK && *cursor != 0 && f.n < page && !pairs->failed && f.visited < visit_max);
    *n = f.n;
    return rc;
}

typedef struct drop_keys {
    const wkv_ranges_t *rs;
    tsr_wbuf_t keys; /* "u32 length, key" one after another */
    size_t n;
} drop_keys_t;

static void on_drop_pair(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    drop_keys_t *d = arg;
    if (!in_ranges(d->rs, key, klen))
        return;
    tsr_wbuf_blob(&d->keys, key, klen);
    d->n++;
}

/* Deletes the d->n keys collected (one batch: one log commit); every one
 * must go (each was just seen; one a transaction holds locked is not
 * deleted and fails the drop: the resync is tried again). */
static tsr_status_t drop_collected(tsr_kv_table_t *t, drop_keys_t *d, uint64_t *deleted,
                                   tsr_kv_err_t *ke)
{
    if (d->n == 0)
        return TSR_OK;
    if (d->keys.failed)
        return TSR_ERR_NOMEM;
    tsr_kv_pair_t *pairs = tsr_mem_calloc(NULL, d->n, sizeof(*pairs));
    if (!pairs)
        return TSR_ERR_NOMEM;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, d->keys.data, d->keys.len);
    for (size_t i = 0; i < d->n; i++)
        pairs[i].key = tsr_rbuf_blob(&r, &pairs[i].klen);
    size_t nok = 0;
    tsr_status_t rc = tsr_kv_delete_batch(t, pairs, d->n, NULL, NULL, &nok, ke);
    if (rc == TSR_OK && nok != d->n) {
        snprintf(ke->message, sizeof(ke->message),
                 "%zu of %zu keys of the ranges were not deleted (locked by a transaction?)",
                 d->n - nok, d->n);
        rc = TSR_ERR_CONFLICT;
    }
    *deleted += nok;
    tsr_mem_free(NULL, pairs);
    d->n = 0;
    tsr_wbuf_free(&d->keys);
    tsr_wbuf_init(&d->keys, NULL);
    return rc;
}

tsr_status_t tsr_wkv_drop_ranges(tsr_kv_table_t *t, const wkv_ranges_t *rs, size_t chunk,
                                 tsr_wbuf_t *out, tsr_kv_err_t *ke)
{
    drop_keys_t d = {.rs = rs};
    tsr_wbuf_init(&d.keys, NULL);
    tsr_status_t rc = TSR_OK;
    uint64_t cursor = 0, deleted = 0;
    int restarts = 0;
    /* in batches of chunk to 2 x chunk keys (a scan call visits at most
     * chunk pairs), each deleted before the scan goes on: memory stays
     * bounded on a large partition. A delete never moves a key (it leaves
     * a tombstone); should the table be rehashed all the same (CONFLICT),
     * the scan starts over (keys deleted already are gone) */
    size_t page = chunk < TSR_KV_SCAN_PAGE_MAX ? chunk : TSR_KV_SCAN_PAGE_MAX;
    for (;;) {
        do
            rc = tsr_kv_scan(t, &cursor, page, on_drop_pair, &d, ke);
        while (rc == TSR_OK && cursor != 0 && d.n < chunk);
        if (rc == TSR_ERR_CONFLICT && restarts++ < 8) {
            d.n = 0;
            tsr_wbuf_free(&d.keys);
            tsr_wbuf_init(&d.keys, NULL);
            cursor = 0;
            ke->status = TSR_OK;
            ke->message[0] = '\0';
            continue;
        }
        if (rc == TSR_OK)
            rc = drop_collected(t, &d, &deleted, ke);
        if (rc != TSR_OK || cursor == 0)
            break;
    }
    if (rc == TSR_OK)
        tsr_wbuf_u64(out, deleted);
    tsr_wbuf_free(&d.keys);
    return rc;
}
