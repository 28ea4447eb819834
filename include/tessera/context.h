/*
 * tessera/context.h - the embedded engine context.
 *
 * A context owns everything one embedded engine instance has: the thread pool,
 * the catalog of tables, the allocator, and the detail of the last error.
 * A context is not thread-safe: use one per thread, or lock around it.
 */
#ifndef TESSERA_CONTEXT_H
#define TESSERA_CONTEXT_H

#include <stddef.h>

#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_context tsr_context_t;

typedef struct tsr_context_params {
    unsigned threads; /* executor threads; 0 = one per core */
} tsr_context_params_t;

/* params may be NULL for defaults. */
tsr_status_t tsr_context_create(const tsr_context_params_t *params, tsr_context_t **out);
void tsr_context_destroy(tsr_context_t *ctx);

/* Detail of the last failed call on ctx (valid until the next call). */
typedef struct tsr_error_info {
    tsr_status_t status;
    const char *message; /* never NULL ("" after success) */
    const char *hint;    /* "" when none */
    const char *file;    /* input file the position refers to; "" for SQL text */
    int line;            /* 1-based, 0 when unknown */
    int column;          /* 1-based, 0 when unknown */
} tsr_error_info_t;

void tsr_context_last_error(const tsr_context_t *ctx, tsr_error_info_t *out);

/* The library version, e.g. "0.1.0". */
const char *tsr_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_CONTEXT_H */
