/*
 * error.h - the detail that travels with a failed tsr_status_t.
 *
 * Internal functions take a tsr_error_t* (may be NULL) and fill it where the
 * error is first detected; later layers only add context, never overwrite the
 * first message (tsr_error_set keeps an existing error). The CLI renders it as
 *   tessera: error: <message>
 *     at <file>:<line>:<column>        (input files)
 *     at line L, column C: + caret     (SQL text)
 *     hint: <hint>
 */
#ifndef TSR_CORE_ERROR_H
#define TSR_CORE_ERROR_H

#include <stddef.h>

#include "tessera/status.h"

typedef struct tsr_error {
    tsr_status_t status; /* TSR_OK while no error has been recorded */
    char message[512];   /* what went wrong, no trailing newline */
    char hint[256];      /* how to fix it, "" when not obvious */
    char file[256];      /* input file the position refers to, "" for SQL text */
    int line;            /* 1-based position, 0 when unknown */
    int column;
} tsr_error_t;

void tsr_error_clear(tsr_error_t *err);

/* Records status and message unless err already holds an error. Returns status,
 * so callers can write `return tsr_error_set(err, TSR_ERR_SYNTAX, "...")`. */
tsr_status_t tsr_error_set(tsr_error_t *err, tsr_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, with a position: file may be NULL (SQL text), line/column 1-based. */
tsr_status_t tsr_error_set_at(tsr_error_t *err, tsr_status_t status, const char *file, int line,
                              int column, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Sets the hint of the recorded error (overwrites an earlier hint). */
void tsr_error_hint(tsr_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Levenshtein distance (case-insensitive), for "did you mean" hints. */
size_t tsr_edit_distance(const char *a, const char *b);

#endif /* TSR_CORE_ERROR_H */
