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

/* Chooses the device that runs the hot operators (filter, hash aggregation,
 * hash join) of ctx's later queries; everything else, and any operator the
 * device's kernels do not cover, runs on the CPU, with the same results
 * (doubles within rounding). device:
 *   "cpu"            the engine's parallel CPU operators (the default; NULL too)
 *   "opencl", "cuda" the backend's first device
 *   "opencl1"        a backend's device by index ("opencl:1" too)
 *   "auto"           the first CUDA GPU, else the first OpenCL GPU, else cpu
 *                    (an OpenCL device that is a CPU, such as PoCL, is not a GPU)
 * The device is opened here and kept, so kernels are built once per context.
 * Errors (the previous choice stays): TSR_ERR_INVALID_ARG for an unknown name,
 * TSR_ERR_UNAVAILABLE when the backend is not built in or found no device,
 * TSR_ERR_NOT_FOUND for an index past the devices found, TSR_ERR_DEVICE when
 * the driver fails to open it; tsr_context_last_error has the detail. */
tsr_status_t tsr_context_set_device(tsr_context_t *ctx, const char *device);

/* The device chosen for ctx's queries: "cpu", "opencl:0", "cuda:0", ... */
const char *tsr_context_device(const tsr_context_t *ctx);

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

/* ---- cancelling a running query or graph ------------------------------------- */

/* A cancel token: a flag the caller owns and installs on a context. While it
 * is set, a tsr_query running on the context stops at its next batch (a few
 * ms at most; no thread is killed) and returns TSR_ERR_CANCELLED, freeing
 * what it built; a query started while it is set returns TSR_ERR_CANCELLED
 * at once. (Loading a lazily read CSV column, which a query's planning may
 * do, is not interrupted: the query stops once it is loaded.) A graph of
 * the context sees it as tsr_graph_cancel (graph.h: tasks not started end
 * CANCELLED, tsr_task_cancelled turns true, "sql" tasks stop). The flag
 * stays set until tsr_cancel_reset: reset it before the next query.
 * tsr_cancel_set, _reset and _is_set are thread-safe and async-signal-safe
 * (one lock-free atomic store or load), so a signal handler or another
 * thread may interrupt the context's thread with them. The token must
 * outlive its use by the context (or be removed first). */
typedef struct tsr_cancel tsr_cancel_t;

tsr_status_t tsr_cancel_create(tsr_cancel_t **out); /* unset; TSR_ERR_NOMEM */
void tsr_cancel_destroy(tsr_cancel_t *cancel);      /* accepts NULL */
void tsr_cancel_set(tsr_cancel_t *cancel);
void tsr_cancel_reset(tsr_cancel_t *cancel);
int tsr_cancel_is_set(const tsr_cancel_t *cancel); /* 1 set, 0 not (or NULL) */
/* Installs cancel on ctx (NULL removes it); not while ctx runs a call. */
void tsr_context_set_cancel(tsr_context_t *ctx, tsr_cancel_t *cancel);

/* The library version, e.g. "0.1.0". */
const char *tsr_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_CONTEXT_H */
