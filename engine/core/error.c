/*
 * error.c - recording the first error with its position and hint.
 */
#include "core/error.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void tsr_error_clear(tsr_error_t *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
}

static tsr_status_t error_vset(tsr_error_t *err, tsr_status_t status, const char *file, int line,
                               int column, const char *fmt, va_list ap)
{
    if (!err || err->status != TSR_OK)
        return status;
    err->status = status;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    err->column = column;
    err->hint[0] = '\0';
    return status;
}

tsr_status_t tsr_error_set(tsr_error_t *err, tsr_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr_status_t rc = error_vset(err, status, NULL, 0, 0, fmt, ap);
    va_end(ap);
    return rc;
}

tsr_status_t tsr_error_set_at(tsr_error_t *err, tsr_status_t status, const char *file, int line,
                              int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr_status_t rc = error_vset(err, status, file, line, column, fmt, ap);
    va_end(ap);
    return rc;
}

void tsr_error_hint(tsr_error_t *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
    va_end(ap);
}

size_t tsr_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return la > lb ? la : lb; /* names that long never get suggestions */
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = diag + (same ? 0 : 1);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
