/*
 * fuzz_csv.c - libFuzzer target for the CSV reader.
 *
 * Input layout: byte 0 picks options (bits 0-1 delimiter , ; tab |, bit 2 a
 * tiny inference sample of 1-4 rows (bits 3-4), bit 5 a schema string: the
 * bytes up to the first NUL, bits 6-7 the chunking of the second read); the
 * rest is the CSV.
 *
 * Oracle: besides "no crash, leak, hang or sanitizer report", the input is
 * read twice - as one chunk, sequentially, and cut into tiny chunks parsed
 * on 2 threads - and both reads must agree exactly: the same status, the same
 * error position and message, or the same table value by value (string codes
 * included). That checks the quote-parity chunking and the dictionary merge
 * against the plain sequential parse on every input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "table/csv.h"
#include "table/csv_internal.h"

/* The harness' pool lives for the process (not engine state). */
static tsr_pool_t *fuzz_pool;

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

/* Row r of column c in table t: vector and index in it. */
typedef struct cursor {
    const tsr_table_t *t;
    size_t batch, i;
} cursor_t;

static const tsr_vector_t *cursor_next(cursor_t *cur, size_t c, size_t *i)
{
    while (cur->i >= cur->t->batches[cur->batch].nrows) {
        cur->batch++;
        cur->i = 0;
    }
    *i = cur->i++;
    return &cur->t->batches[cur->batch].cols[c];
}

static void check_table(const tsr_table_t *t)
{
    size_t rows = 0;
    for (size_t b = 0; b < t->nbatches; b++) {
        check(t->batches[b].nrows > 0 && t->batches[b].nrows <= TSR_BATCH_ROWS);
        rows += t->batches[b].nrows;
        for (size_t c = 0; c < t->ncols; c++) {
            const tsr_vector_t *v = &t->batches[b].cols[c];
            check(v->type == t->fields[c].type && v->len == t->batches[b].nrows);
            if (v->type == TSR_TYPE_VARCHAR) {
                check(v->dict == t->dicts[c] && tsr_dict_frozen(v->dict));
                for (size_t i = 0; i < v->len; i++)
                    check(!tsr_bit_get(v->validity, i) ||
                          ((const uint32_t *)v->data)[i] < tsr_dict_size(v->dict));
            }
        }
    }
    check(rows == t->nrows);
}

static void compare(const tsr_table_t *a, const tsr_table_t *b)
{
    check(a->ncols == b->ncols && a->nrows == b->nrows);
    for (size_t c = 0; c < a->ncols; c++) {
        check(strcmp(a->fields[c].name, b->fields[c].name) == 0);
        check(a->fields[c].type == b->fields[c].type);
        cursor_t ca = {a, 0, 0}, cb = {b, 0, 0};
        for (size_t r = 0; r < a->nrows; r++) {
            size_t i, j;
            const tsr_vector_t *va = cursor_next(&ca, c, &i), *vb = cursor_next(&cb, c, &j);
            bool na = !tsr_bit_get(va->validity, i), nb = !tsr_bit_get(vb->validity, j);
            check(na == nb);
            if (na)
                continue;
            size_t w = tsr_type_width(va->type);
            check(memcmp((const char *)va->data + i * w, (const char *)vb->data + j * w, w) == 0);
        }
        if (a->fields[c].type == TSR_TYPE_VARCHAR) {
            uint32_t n = tsr_dict_size(a->dicts[c]);
            check(n == tsr_dict_size(b->dicts[c]));
            for (uint32_t k = 0; k < n; k++) {
                size_t la, lb;
                const char *sa = tsr_dict_get(a->dicts[c], k, &la);
                const char *sb = tsr_dict_get(b->dicts[c], k, &lb);
                check(la == lb && memcmp(sa, sb, la) == 0);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!fuzz_pool && tsr_pool_create(NULL, 2, &fuzz_pool) != TSR_OK)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    tsr_csv_options_t opts = {0};
    static const char delims[] = {0, ';', '\t', '|'};
    opts.delimiter = delims[ctl & 3];
    opts.sample_rows = (ctl & 4) ? 1 + ((ctl >> 3) & 3) : 0;
    char schema[256];
    if (ctl & 0x20) {
        const uint8_t *z = memchr(data, 0, size < sizeof(schema) ? size : sizeof(schema));
        if (z) {
            size_t n = (size_t)(z - data);
            memcpy(schema, data, n);
            schema[n] = '\0';
            opts.schema = schema;
            data += n + 1;
            size -= n + 1;
        }
    }
    /* an exact-size copy: ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    static const tsr_csv_tuning_t tunes[] = {{1, 1}, {7, 2}, {64, 3}, {5, 0}};
    const tsr_csv_tuning_t one = {SIZE_MAX / 2, 0};
    tsr_table_t *ta = NULL, *tb = NULL;
    tsr_error_t ea, eb;
    tsr_error_clear(&ea);
    tsr_error_clear(&eb);
    tsr_status_t ra =
        tsr_csv_read_buffer_tuned(NULL, NULL, buf, size, "fuzz.csv", "f", &opts, &one, &ta, &ea);
    tsr_status_t rb = tsr_csv_read_buffer_tuned(NULL, fuzz_pool, buf, size, "fuzz.csv", "f", &opts,
                                                &tunes[ctl >> 6], &tb, &eb);
    check(ra == rb);
    if (ra == TSR_OK) {
        check_table(ta);
        check_table(tb);
        compare(ta, tb);
    } else {
        check(ea.status == ra && ea.message[0] != '\0' && !ta && !tb);
        check(ea.line == eb.line && ea.column == eb.column);
        check(strcmp(ea.message, eb.message) == 0);
    }
    tsr_table_destroy(ta);
    tsr_table_destroy(tb);
    free(buf);
    return 0;
}
