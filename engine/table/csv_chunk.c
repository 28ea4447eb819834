/*
 * csv_chunk.c - parsing one chunk of CSV rows straight into batches.
 *
 * The parser is row-major: for every row, for every column, a fast path
 * per type that parses the value straight from the buffer when the field is
 * unquoted (integers and doubles are parsed while their end is found: one pass
 * over the bytes), falling back to the general tokenizer + converter for
 * quoted fields, NULLs and anything unusual. Values that do not fit an
 * inferred type are remembered in ccol->need (the driver widens and re-parses);
 * values that do not fit a schema type are errors.
 *
 * Output: batches of at most TSR_BATCH_ROWS rows (vectors sized by a bound
 * on the rows left, so a chunk's tail batch is short), a validity bitmap only
 * where a NULL fell, VARCHAR codes local to the chunk (tsr_csv_smap_t, merged
 * by csv_build.c).
 */
#include "table/csv_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "core/hash.h"

static void free_batch(tsr_mem_t *mem, tsr_vector_t *cols, size_t ncols)
{
    if (!cols)
        return;
    for (size_t c = 0; c < ncols; c++)
        tsr_vector_release(mem, &cols[c]);
    tsr_mem_free(mem, cols);
}

void tsr_csv_chunk_reset(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck)
{
    if (ck->cols) {
        for (size_t c = 0; c < rd->ncols; c++) {
            tsr_mem_free(rd->mem, ck->cols[c].remap);
            tsr_mem_free(rd->mem, ck->cols[c].map.slots);
        }
        tsr_mem_free(rd->mem, ck->cols);
    }
    tsr_arena_release(&ck->arena);
    for (size_t b = 0; b < ck->nbatches; b++)
        free_batch(rd->mem, ck->batches[b], rd->ncols);
    tsr_mem_free(rd->mem, ck->batches);
    tsr_mem_free(rd->mem, ck->scratch.p);
    tsr_mem_free(rd->mem, ck->numbuf.p);
    size_t begin = ck->begin, end = ck->end;
    memset(ck, 0, sizeof(*ck));
    ck->begin = begin;
    ck->end = end;
}

/* Appends a batch of ncols vectors with room for cap values. */
static tsr_vector_t *chunk_new_batch(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, size_t cap)
{
    if (tsr_mem_grow(rd->mem, (void **)&ck->batches, &ck->batches_cap, ck->nbatches + 1,
                     sizeof(*ck->batches)))
        return NULL;
    tsr_vector_t *cols = tsr_mem_calloc(rd->mem, rd->ncols, sizeof(*cols));
    if (!cols)
        return NULL;
    for (size_t c = 0; c < rd->ncols; c++) {
        if (rd->skip && rd->skip[c]) {
            cols[c].type = rd->types[c]; /* not loaded: no data */
            continue;
        }
        if (tsr_vector_alloc(rd->mem, rd->types[c], cap, false, NULL, &cols[c])) {
            free_batch(rd->mem, cols, rd->ncols);
            return NULL;
        }
#ifdef MADV_POPULATE_WRITE
        /* one call faults the vector's fresh pages in, instead of a fault per
         * 4 KiB as the parser writes them (advice: failure changes nothing) */
        size_t bytes = cap * tsr_type_width(rd->types[c]);
        uintptr_t lo = ((uintptr_t)cols[c].data + 4095) & ~(uintptr_t)4095;
        uintptr_t hi = ((uintptr_t)cols[c].data + bytes) & ~(uintptr_t)4095;
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#endif
    }
    ck->batches[ck->nbatches++] = cols;
    return cols;
}

/* Sets the row count of the current (last) batch. */
static void chunk_close_batch(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, size_t rows)
{
    if (ck->nbatches == 0)
        return;
    tsr_vector_t *cols = ck->batches[ck->nbatches - 1];
    for (size_t c = 0; c < rd->ncols; c++)
        cols[c].len = rows;
}

static bool set_null(const tsr_csv_reader_t *rd, tsr_vector_t *v, size_t row)
{
    if (!v->validity && tsr_vector_ensure_validity(rd->mem, v) != TSR_OK)
        return false;
    v->validity[row >> 6] &= ~((uint64_t)1 << (row & 63));
    return true;
}

static void store_zero(tsr_vector_t *v, size_t row)
{
    switch (v->type) {
    case TSR_TYPE_BOOL:
        ((uint8_t *)v->data)[row] = 0;
        break;
    case TSR_TYPE_INT64:
        ((int64_t *)v->data)[row] = 0;
        break;
    case TSR_TYPE_DOUBLE:
        ((double *)v->data)[row] = 0.0;
        break;
    case TSR_TYPE_VARCHAR:
    case TSR_TYPE_NULL:
        ((uint32_t *)v->data)[row] = 0;
        break;
    }
}

/* Writes a printable, shortened copy of a value for an error message. */
static void show_value(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = 0, max = cap - 4;
    for (size_t i = 0; i < len && n < max; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (len > max)
        memcpy(dst + n, "...", 3), n += 3;
    dst[n] = '\0';
}

static tsr_status_t smap_init(tsr_mem_t *mem, tsr_csv_smap_t *m)
{
    m->nslots = 64;
    m->count = 0;
    m->slots = tsr_mem_alloc(mem, m->nslots * sizeof(*m->slots));
    if (!m->slots)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < m->nslots; i++)
        m->slots[i].code = UINT32_MAX;
    return TSR_OK;
}

static tsr_status_t smap_grow(tsr_mem_t *mem, tsr_csv_smap_t *m)
{
    size_t n = m->nslots * 2;
    tsr_csv_sentry_t *slots = tsr_mem_alloc(mem, n * sizeof(*slots));
    if (!slots)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        slots[i].code = UINT32_MAX;
    for (size_t i = 0; i < m->nslots; i++) {
        if (m->slots[i].code == UINT32_MAX)
            continue;
        size_t j = (size_t)m->slots[i].hash & (n - 1);
        while (slots[j].code != UINT32_MAX)
            j = (j + 1) & (n - 1);
        slots[j] = m->slots[i];
    }
    tsr_mem_free(mem, m->slots);
    m->slots = slots;
    m->nslots = n;
    return TSR_OK;
}

/* The code of s in column col's map, adding it when new. Short strings are
 * kept in the slot (a hit costs one cache line), longer ones are copied into
 * the chunk's arena (compact: better locality than the input buffer). */
static bool intern_code(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, tsr_csv_smap_t *m,
                        uint32_t *code_out, const char *s, size_t len, const char *at)
{
    size_t off = (size_t)(at - rd->base);
    if (len >= UINT32_MAX) {
        tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, off, "field longer than 4 GiB");
        return false;
    }
    uint64_t h = tsr_hash_bytes(s, len);
    size_t mask = m->nslots - 1;
    size_t i = (size_t)h & mask;
    if (len <= TSR_CSV_INLINE) {
        uint64_t w[2] = {0, 0};
        memcpy(w, s, len);
        for (;;) {
            tsr_csv_sentry_t *e = &m->slots[i];
            if (e->code == UINT32_MAX)
                break;
            uint64_t x[2];
            memcpy(x, e->u.inl, sizeof(x));
            if (e->hash == h && e->len == len && x[0] == w[0] && x[1] == w[1]) {
                *code_out = e->code;
                return true;
            }
            i = (i + 1) & mask;
        }
    } else {
        for (;;) {
            tsr_csv_sentry_t *e = &m->slots[i];
            if (e->code == UINT32_MAX)
                break;
            if (e->hash == h && e->len == len && memcmp(e->u.ptr, s, len) == 0) {
                *code_out = e->code;
                return true;
            }
            i = (i + 1) & mask;
        }
    }
    if (m->count >= UINT32_MAX - 1) {
        tsr_csv_fail(&ck->fail, TSR_ERR_OVERFLOW, off, "too many distinct strings in one column");
        return false;
    }
    tsr_csv_sentry_t *e = &m->slots[i];
    if (len <= TSR_CSV_INLINE) {
        memset(e->u.inl, 0, sizeof(e->u.inl));
        memcpy(e->u.inl, s, len);
    } else {
        char *copy = tsr_arena_strndup(&ck->arena, s, len);
        if (!copy) {
            tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, off, "out of memory");
            return false;
        }
        e->u.ptr = copy;
    }
    e->hash = h;
    e->len = (uint32_t)len;
    e->code = (uint32_t)m->count++;
    *code_out = e->code;
    if (m->count * 2 > m->nslots && smap_grow(rd->mem, m) != TSR_OK) {
        tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, off, "out of memory");
        return false;
    }
    return true;
}

/* The general path: converts field f (which started at `at`) into column c,
 * row `row` of vector v. */
static bool store_field(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, size_t c, tsr_vector_t *v,
                        size_t row, const tsr_csv_field_t *f, const char *at)
{
    tsr_csv_ccol_t *col = &ck->cols[c];
    tsr_type_t type = v->type;
    size_t off = (size_t)(at - rd->base);
    if (f->len == 0 && (!f->quoted || type != TSR_TYPE_VARCHAR)) {
        store_zero(v, row);
        if (!set_null(rd, v, row)) {
            tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, off, "out of memory");
            return false;
        }
        return true;
    }
    switch (type) {
    case TSR_TYPE_BOOL:
        if (tsr_csv_parse_bool(f->s, f->len, &((uint8_t *)v->data)[row]))
            return true;
        break;
    case TSR_TYPE_INT64:
        if (tsr_csv_parse_int64(f->s, f->len, &((int64_t *)v->data)[row]))
            return true;
        break;
    case TSR_TYPE_DOUBLE: {
        int r = tsr_csv_parse_double(rd->mem, &ck->numbuf, f->s, f->len, &((double *)v->data)[row]);
        if (r > 0)
            return true;
        if (r < 0) {
            tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, off, "out of memory");
            return false;
        }
        break;
    }
    case TSR_TYPE_VARCHAR:
    case TSR_TYPE_NULL:
        return intern_code(rd, ck, &col->map, &((uint32_t *)v->data)[row], f->s, f->len, at);
    }
    store_zero(v, row);
    if (rd->fixed[c]) {
        char shown[80];
        show_value(shown, sizeof(shown), f->s, f->len);
        tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, off, "column '%s': expected a %s, found '%s'",
                     rd->names[c], tsr_type_name(type), shown);
        return false;
    }
    if (col->need != TSR_TYPE_VARCHAR)
        col->need = tsr_csv_join(col->need, tsr_csv_classify(f->s, f->len));
    return true;
}

/* Unquoted integer of at most 18 digits (so it cannot overflow) ending a field. */
static inline const char *fast_int(const char *p, const char *end, char delim, int64_t *out)
{
    const char *q = p;
    bool neg = false;
    if (q < end && (*q == '-' || *q == '+')) {
        neg = *q == '-';
        q++;
    }
    const char *d0 = q;
    const char *lim = (size_t)(end - q) > 18 ? q + 18 : end;
    uint64_t v = 0;
    while (q < lim && csv_is_digit(*q)) {
        v = v * 10 + (uint64_t)(*q - '0');
        q++;
    }
    if (q == d0 || !csv_at_term(q, end, delim))
        return NULL;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return q;
}

/* Unquoted double that takes the exact fast path and ends a field. */
static inline const char *fast_double(const char *p, const char *end, char delim, double *out)
{
    csv_dec_t d;
    const char *q = csv_scan_decimal(p, end, &d);
    if (q == p || !csv_at_term(q, end, delim) || !csv_dec_fast(&d, out))
        return NULL;
    return q;
}

/* Counts the fields of the row starting at p, for the "found M" message;
 * returns 0 if the row does not tokenize. */
static size_t count_fields(const tsr_csv_reader_t *rd, const char *p, const char *end)
{
    tsr_csv_chunk_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    size_t n = 0;
    for (;;) {
        tsr_csv_field_t f;
        p = tsr_csv_scan_field(rd, &tmp, p, end, &f);
        if (!p) {
            n = 0;
            break;
        }
        n++;
        bool at_delim;
        p = tsr_csv_skip_terminator(rd, p, end, &at_delim);
        if (!at_delim)
            break;
    }
    tsr_mem_free(rd->mem, tmp.scratch.p);
    return n;
}

tsr_status_t tsr_csv_parse_chunk(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck)
{
    const size_t ncols = rd->ncols;
    const char delim = rd->delim;
    const char *base = rd->base;
    const char *p = base + ck->begin;
    const char *end = base + ck->end;
    ck->cols = tsr_mem_calloc(rd->mem, ncols, sizeof(tsr_csv_ccol_t));
    if (!ck->cols)
        return tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, ck->begin, "out of memory");
    tsr_arena_init(&ck->arena, rd->mem);
    for (size_t c = 0; c < ncols; c++)
        if (rd->types[c] == TSR_TYPE_VARCHAR && !(rd->skip && rd->skip[c]) &&
            smap_init(rd->mem, &ck->cols[c].map) != TSR_OK)
            return tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, ck->begin, "out of memory");
    tsr_vector_t *vecs = NULL; /* the current batch */
    size_t row = 0, cap = 0;   /* row in the current batch, its room: full = start one */
    tsr_status_t rc = TSR_OK;
    while (p < end) {
        if (row == cap) {
            chunk_close_batch(rd, ck, row);
            /* a cancelled query stops its loads here: one relaxed load per
             * batch of rows */
            if (rd->cancel && atomic_load_explicit(rd->cancel, memory_order_relaxed))
                return tsr_csv_fail(&ck->fail, TSR_ERR_CANCELLED, (size_t)(p - base), "cancelled");
            /* a row takes at least ncols bytes (the last ncols - 1): this bounds
             * the rows left, so short chunks and tails get short vectors */
            size_t left = (size_t)(end - p) / ncols + 1;
            cap = left < TSR_BATCH_ROWS ? left : TSR_BATCH_ROWS;
            if (!(vecs = chunk_new_batch(rd, ck, cap))) {
                return tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, (size_t)(p - base), "out of memory");
            }
            row = 0;
        }
        const char *row_start = p;
        for (size_t c = 0; c < ncols; c++) {
            tsr_vector_t *v = &vecs[c];
            const char *q = NULL;
            bool skip = rd->skip && rd->skip[c];
            if (skip) {
                /* not wanted: find where it ends, convert nothing (an empty
                 * field takes the general path for the blank-line check) */
                if (p < end && *p != '"') {
                    const char *e = csv_scan_unquoted(rd, p, end);
                    if (e > p && csv_at_term(e, end, delim))
                        q = e;
                }
            } else if (p < end && *p != '"') {
                switch (v->type) {
                case TSR_TYPE_INT64:
                    q = fast_int(p, end, delim, &((int64_t *)v->data)[row]);
                    break;
                case TSR_TYPE_DOUBLE:
                    q = fast_double(p, end, delim, &((double *)v->data)[row]);
                    break;
                case TSR_TYPE_VARCHAR: {
                    const char *e = csv_scan_unquoted(rd, p, end);
                    if (e > p && csv_at_term(e, end, delim)) {
                        if (!intern_code(rd, ck, &ck->cols[c].map, &((uint32_t *)v->data)[row], p,
                                         (size_t)(e - p), p)) {
                            rc = ck->fail.status;
                            goto done;
                        }
                        q = e;
                    }
                    break;
                }
                default:
                    break;
                }
            }
            if (!q) {
                tsr_csv_field_t f;
                q = tsr_csv_scan_field(rd, ck, p, end, &f);
                if (!q) {
                    rc = ck->fail.status;
                    goto done;
                }
                if (c == 0 && ncols > 1 && f.len == 0 && !f.quoted && q < end && *q != delim) {
                    rc = tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(p - base),
                                      "expected %zu fields, found 0 (blank line)", ncols);
                    goto done;
                }
                if (!skip && !store_field(rd, ck, c, v, row, &f, p)) {
                    rc = ck->fail.status;
                    goto done;
                }
            }
            p = q;
            if (p < end && *p == delim) {
                p++;
                if (c + 1 == ncols) {
                    size_t n = count_fields(rd, row_start, end);
                    if (n > ncols)
                        rc = tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(p - base),
                                          "expected %zu fields, found %zu", ncols, n);
                    else
                        rc = tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(p - base),
                                          "expected %zu fields, found more", ncols);
                    goto done;
                }
            } else {
                if (c + 1 < ncols) {
                    rc = tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(p - base),
                                      "expected %zu fields, found %zu", ncols, c + 1);
                    goto done;
                }
                if (p < end)
                    p += *p == '\n' ? 1 : (p + 1 < end ? 2 : 1);
            }
        }
        row++;
        ck->nrows++;
    }
done:
    /* a failed row leaves values in the batch; they are never read */
    chunk_close_batch(rd, ck, row);
    return rc;
}
