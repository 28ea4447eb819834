/*
 * context_internal.h - what a tsr_context_t holds (private to engine/api/).
 */
#ifndef TSR_API_CONTEXT_INTERNAL_H
#define TSR_API_CONTEXT_INTERNAL_H

#include <stdatomic.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/pool.h"
#include "sql/catalog.h"
#include "tessera/context.h"

/* Results may borrow the storage of the catalog tables their query scanned
 * (no copy). A catalog table replaced while results are alive is therefore
 * not destroyed but retired: kept until the last live result is destroyed
 * (or the context is). */
struct tsr_context {
    tsr_mem_t mem;          /* every allocation of this context goes through it */
    tsr_pool_t *pool;       /* executor threads */
    tsr_catalog_t catalog;  /* registered tables */
    tsr_error_t last_error; /* detail of the last failed call */
    size_t live_results;    /* results created and not yet destroyed */
    tsr_table_t **retired;  /* replaced tables live results may still read */
    size_t nretired;
    size_t retired_cap;
    struct tsr_dev *dev;  /* device of the queries' hot operators; NULL: the CPU
                             operators (context_device.c) */
    char device_name[32]; /* "cpu", "opencl:0", ... ("" until set: cpu) */
    bool dev_borrowed;    /* dev belongs to another context (tsr__context_borrow_device):
                             used, never closed, by this one */
    tsr_cancel_t *cancel; /* the caller's token (tsr_context_set_cancel); NULL: none */
};

/* A cancel token (context.h): one flag, read by the executor per batch. */
struct tsr_cancel {
    atomic_int flag;
};

/* The flag of ctx's cancel token, NULL when none (exec.h's cancel). */
static inline const atomic_int *tsr__context_cancel_flag(const tsr_context_t *ctx)
{
    return ctx->cancel ? &ctx->cancel->flag : NULL;
}

/* Puts table into the catalog (the context owns it from then on, even on
 * failure: it is destroyed), replacing one of the same name: destroyed at
 * once when no result is alive, else retired. */
tsr_status_t tsr__context_install(tsr_context_t *ctx, tsr_table_t *table);

/* Destroys the retired tables (no result can read them any more). */
void tsr__context_free_retired(tsr_context_t *ctx);

/* Starts a public call: clears the last error. */
static inline void tsr__context_begin(tsr_context_t *ctx)
{
    tsr_error_clear(&ctx->last_error);
}

/* Ends a public call with rc: makes sure a failure has a message. */
static inline tsr_status_t tsr__context_end(tsr_context_t *ctx, tsr_status_t rc)
{
    if (rc != TSR_OK && ctx->last_error.status == TSR_OK)
        tsr_error_set(&ctx->last_error, rc, "%s", tsr_status_str(rc));
    return rc;
}

/* Closes the context's device (context_device.c); a borrowed one is only
 * let go. */
void tsr__context_close_device(tsr_context_t *ctx);

/* Makes ctx run its queries on owner's device (opened by owner's
 * tsr_context_set_device), without opening one of its own: opening an
 * OpenCL device and building its kernels costs about 0.2 s on PoCL, too much
 * for every short-lived context of a cluster worker. ctx never closes it, so
 * owner must outlive ctx, and the two must not run queries at the same time
 * (a device is used by one thread at a time). owner's device "cpu" (none)
 * makes ctx cpu too. */
void tsr__context_borrow_device(tsr_context_t *ctx, const tsr_context_t *owner);

/* The context's allocator, for tests that inject allocation failures. */
tsr_mem_t *tsr__context_mem(tsr_context_t *ctx);

#endif /* TSR_API_CONTEXT_INTERNAL_H */
