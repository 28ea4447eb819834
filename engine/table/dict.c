/*
 * dict.c - string dictionary (see dict.h).
 *
 * Strings live in one growing byte arena (NUL-terminated, so tsr_dict_get can
 * hand out C strings); offsets[code] and lens[code] locate them. Lookup is an
 * open-addressing table of codes (UINT32_MAX = empty) keyed by XXH3 of the bytes,
 * kept at load factor <= 0.5 and doubled when full.
 */
#include "table/dict.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#define DICT_EMPTY UINT32_MAX

struct tsr_dict {
    tsr_mem_t *mem;
    char *bytes;        /* all strings, each followed by NUL */
    size_t bytes_len;
    size_t bytes_cap;
    uint64_t *offsets;  /* offsets[code] into bytes */
    uint32_t *lens;     /* lens[code] in bytes, without the NUL */
    uint64_t *hashes;   /* hashes[code]: kept while building, used to rehash */
    size_t count;
    size_t cap;         /* capacity of offsets/lens/hashes */
    uint32_t *slots;    /* open addressing: code or DICT_EMPTY */
    size_t nslots;      /* power of two */
    uint32_t *ranks;    /* after freeze */
    bool frozen;
};

tsr_status_t tsr_dict_create(tsr_mem_t *mem, tsr_dict_t **out)
{
    tsr_dict_t *d = tsr_mem_calloc(mem, 1, sizeof(*d));
    if (!d)
        return TSR_ERR_NOMEM;
    d->mem = mem;
    d->nslots = 64;
    d->slots = tsr_mem_alloc(mem, d->nslots * sizeof(uint32_t));
    if (!d->slots) {
        tsr_mem_free(mem, d);
        return TSR_ERR_NOMEM;
    }
    memset(d->slots, 0xff, d->nslots * sizeof(uint32_t));
    *out = d;
    return TSR_OK;
}

void tsr_dict_destroy(tsr_dict_t *d)
{
    if (!d)
        return;
    tsr_mem_free(d->mem, d->bytes);
    tsr_mem_free(d->mem, d->offsets);
    tsr_mem_free(d->mem, d->lens);
    tsr_mem_free(d->mem, d->hashes);
    tsr_mem_free(d->mem, d->slots);
    tsr_mem_free(d->mem, d->ranks);
    tsr_mem_free(d->mem, d);
}

static bool dict_lookup(const tsr_dict_t *d, const char *s, size_t len, uint64_t h, size_t *slot_out)
{
    size_t mask = d->nslots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        uint32_t c = d->slots[i];
        if (c == DICT_EMPTY) {
            *slot_out = i;
            return false;
        }
        if (d->hashes[c] == h && d->lens[c] == len && memcmp(d->bytes + d->offsets[c], s, len) == 0) {
            *slot_out = i;
            return true;
        }
        i = (i + 1) & mask;
    }
}

static tsr_status_t dict_rehash(tsr_dict_t *d)
{
    size_t nslots = d->nslots * 2;
    uint32_t *slots = tsr_mem_alloc(d->mem, nslots * sizeof(uint32_t));
    if (!slots)
        return TSR_ERR_NOMEM;
    memset(slots, 0xff, nslots * sizeof(uint32_t));
    for (size_t c = 0; c < d->count; c++) {
        size_t i = (size_t)d->hashes[c] & (nslots - 1);
        while (slots[i] != DICT_EMPTY)
            i = (i + 1) & (nslots - 1);
        slots[i] = (uint32_t)c;
    }
    tsr_mem_free(d->mem, d->slots);
    d->slots = slots;
    d->nslots = nslots;
    return TSR_OK;
}

tsr_status_t tsr_dict_intern(tsr_dict_t *d, const char *s, size_t len, uint32_t *code_out)
{
    if (d->frozen || len > UINT32_MAX)
        return TSR_ERR_INVALID_ARG;
    uint64_t h = tsr_hash_bytes(s, len);
    size_t slot;
    if (dict_lookup(d, s, len, h, &slot)) {
        *code_out = d->slots[slot];
        return TSR_OK;
    }
    if (d->count >= UINT32_MAX - 1)
        return TSR_ERR_OVERFLOW;
    if (d->count == d->cap) {
        size_t cap = d->cap;
        size_t c1 = cap, c2 = cap, c3 = cap;
        if (tsr_mem_grow(d->mem, (void **)&d->offsets, &c1, d->count + 1, sizeof(uint64_t)) ||
            tsr_mem_grow(d->mem, (void **)&d->lens, &c2, d->count + 1, sizeof(uint32_t)) ||
            tsr_mem_grow(d->mem, (void **)&d->hashes, &c3, d->count + 1, sizeof(uint64_t)))
            return TSR_ERR_NOMEM; /* arrays that grew stay grown: harmless */
        d->cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    }
    if (tsr_mem_grow(d->mem, (void **)&d->bytes, &d->bytes_cap, d->bytes_len + len + 1, 1))
        return TSR_ERR_NOMEM;
    uint32_t code = (uint32_t)d->count;
    memcpy(d->bytes + d->bytes_len, s, len);
    d->bytes[d->bytes_len + len] = '\0';
    d->offsets[code] = d->bytes_len;
    d->lens[code] = (uint32_t)len;
    d->hashes[code] = h;
    d->bytes_len += len + 1;
    d->count++;
    d->slots[slot] = code;
    if (d->count * 2 > d->nslots) {
        tsr_status_t rc = dict_rehash(d);
        if (rc != TSR_OK) {
            /* keep the table consistent: undo the insert */
            d->slots[slot] = DICT_EMPTY;
            d->count--;
            d->bytes_len -= len + 1;
            return rc;
        }
    }
    *code_out = code;
    return TSR_OK;
}

bool tsr_dict_find(const tsr_dict_t *d, const char *s, size_t len, uint32_t *code_out)
{
    size_t slot;
    if (!dict_lookup(d, s, len, tsr_hash_bytes(s, len), &slot))
        return false;
    *code_out = d->slots[slot];
    return true;
}

uint32_t tsr_dict_size(const tsr_dict_t *d)
{
    return (uint32_t)d->count;
}

const char *tsr_dict_get(const tsr_dict_t *d, uint32_t code, size_t *len_out)
{
    if (len_out)
        *len_out = d->lens[code];
    return d->bytes + d->offsets[code];
}

/* qsort has no context argument; sort (code, pointer) pairs instead. */
typedef struct dict_sort_item {
    const char *s;
    uint32_t len;
    uint32_t code;
} dict_sort_item_t;

static int dict_sort_cmp(const void *pa, const void *pb)
{
    const dict_sort_item_t *a = pa, *b = pb;
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

tsr_status_t tsr_dict_freeze(tsr_dict_t *d)
{
    if (d->frozen)
        return TSR_OK;
    d->ranks = tsr_mem_alloc(d->mem, (d->count ? d->count : 1) * sizeof(uint32_t));
    dict_sort_item_t *items = tsr_mem_alloc(d->mem, (d->count ? d->count : 1) * sizeof(*items));
    if (!d->ranks || !items) {
        tsr_mem_free(d->mem, d->ranks);
        d->ranks = NULL;
        tsr_mem_free(d->mem, items);
        return TSR_ERR_NOMEM;
    }
    for (size_t c = 0; c < d->count; c++) {
        items[c].s = d->bytes + d->offsets[c];
        items[c].len = d->lens[c];
        items[c].code = (uint32_t)c;
    }
    qsort(items, d->count, sizeof(*items), dict_sort_cmp);
    for (size_t r = 0; r < d->count; r++)
        d->ranks[items[r].code] = (uint32_t)r;
    tsr_mem_free(d->mem, items);
    d->frozen = true;
    return TSR_OK;
}

bool tsr_dict_frozen(const tsr_dict_t *d)
{
    return d->frozen;
}

const uint64_t *tsr_dict_hashes(const tsr_dict_t *d)
{
    return d->hashes;
}

const uint32_t *tsr_dict_ranks(const tsr_dict_t *d)
{
    return d->ranks;
}
