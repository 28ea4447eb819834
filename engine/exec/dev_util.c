/*
 * dev_util.c - chunks of batches for the device operators (dev_exec.h):
 * consecutive batches of a table concatenated into one contiguous column
 * (values and validity) that one device call consumes.
 *
 * Batches have any size up to TSR_BATCH_ROWS (filters shrink them), so a
 * batch's validity lands at any bit offset of the chunk's bitmap: it is
 * appended word by word, shifted into place.
 */
#include <string.h>

#include "exec/dev_exec.h"

size_t tsr_dev_exec_chunk_end(const tsr_table_t *t, size_t b0)
{
    size_t b = b0, rows = 0;
    while (b < t->nbatches && (b == b0 || rows + t->batches[b].nrows <= TSR_DEV_EXEC_CHUNK_ROWS))
        rows += t->batches[b++].nrows;
    return b;
}

size_t tsr_dev_exec_rows(const tsr_table_t *t, size_t b0, size_t b1)
{
    size_t rows = 0;
    for (size_t b = b0; b < b1; b++)
        rows += t->batches[b].nrows;
    return rows;
}

void tsr_dev_exec_concat_values(const tsr_table_t *t, size_t col, size_t b0, size_t b1, void *dst)
{
    size_t width = tsr_type_width(t->fields[col].type);
    char *d = dst;
    for (size_t b = b0; b < b1; b++) {
        const tsr_batch_t *batch = &t->batches[b];
        if (batch->nrows)
            memcpy(d, batch->cols[col].data, batch->nrows * width);
        d += batch->nrows * width;
    }
}

void tsr_dev_exec_append_bits(uint64_t *dst, size_t at, const uint64_t *src, size_t n)
{
    size_t shift = at & 63;
    uint64_t *d = dst + (at >> 6);
    for (size_t i = 0; i < n; i += 64) {
        size_t m = n - i < 64 ? n - i : 64;
        uint64_t w = src ? src[i >> 6] : ~(uint64_t)0;
        if (m < 64)
            w &= ((uint64_t)1 << m) - 1;
        d[0] |= w << shift;
        /* the bits that spill into the next word (only when shifted and
         * there are some: m + shift > 64) */
        if (shift && m + shift > 64)
            d[1] |= w >> (64 - shift);
        d++;
    }
}

bool tsr_dev_exec_concat_validity(const tsr_table_t *t, size_t col, size_t b0, size_t b1,
                                  uint64_t *dst)
{
    bool any = false;
    for (size_t b = b0; b < b1 && !any; b++)
        any = t->batches[b].cols[col].validity != NULL;
    if (!any)
        return false;
    size_t rows = tsr_dev_exec_rows(t, b0, b1), at = 0;
    memset(dst, 0, tsr_bitmap_words(rows) * sizeof(uint64_t));
    for (size_t b = b0; b < b1; b++) {
        const tsr_batch_t *batch = &t->batches[b];
        tsr_dev_exec_append_bits(dst, at, batch->cols[col].validity, batch->nrows);
        at += batch->nrows;
    }
    return true;
}
