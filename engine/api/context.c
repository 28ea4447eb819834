/*
 * context.c - the embedded engine context: allocator, thread pool, catalog,
 * last error (see tessera/context.h).
 */
#include "api/context_internal.h"

#include <stdlib.h>

#include "tessera/types.h"

const char *tsr_version(void)
{
    return TSR_VERSION;
}

tsr_status_t tsr_context_create(const tsr_context_params_t *params, tsr_context_t **out)
{
    if (!out)
        return TSR_ERR_INVALID_ARG;
    tsr_context_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return TSR_ERR_NOMEM;
    tsr_mem_init(&ctx->mem);
    tsr_catalog_init(&ctx->catalog, &ctx->mem);
    unsigned threads = params ? params->threads : 0;
    tsr_status_t rc = tsr_pool_create(&ctx->mem, threads, &ctx->pool);
    if (rc != TSR_OK) {
        free(ctx);
        return rc;
    }
    *out = ctx;
    return TSR_OK;
}

void tsr__context_free_retired(tsr_context_t *ctx)
{
    for (size_t i = 0; i < ctx->nretired; i++)
        tsr_table_destroy(ctx->retired[i]);
    tsr_mem_free(&ctx->mem, ctx->retired);
    ctx->retired = NULL;
    ctx->nretired = ctx->retired_cap = 0;
}

tsr_status_t tsr__context_install(tsr_context_t *ctx, tsr_table_t *table)
{
    /* Reserve the retired slot first: once the catalog has swapped the
     * tables nothing may fail. */
    if (ctx->live_results > 0 && tsr_catalog_find(&ctx->catalog, table->name) &&
        tsr_mem_grow(&ctx->mem, (void **)&ctx->retired, &ctx->retired_cap, ctx->nretired + 1,
                     sizeof(*ctx->retired))) {
        tsr_table_destroy(table);
        return tsr_error_set(&ctx->last_error, TSR_ERR_NOMEM, "out of memory");
    }
    tsr_table_t *old = NULL;
    tsr_status_t rc = tsr_catalog_replace(&ctx->catalog, table, &old);
    if (rc != TSR_OK) {
        tsr_table_destroy(table);
        return tsr_error_set(&ctx->last_error, rc, "out of memory");
    }
    if (old && ctx->live_results > 0)
        ctx->retired[ctx->nretired++] = old;
    else
        tsr_table_destroy(old);
    return TSR_OK;
}

/* ---- cancel tokens ---------------------------------------------------------------- */

tsr_status_t tsr_cancel_create(tsr_cancel_t **out)
{
    if (!out)
        return TSR_ERR_INVALID_ARG;
    tsr_cancel_t *c = tsr_mem_alloc(NULL, sizeof(*c));
    if (!c)
        return TSR_ERR_NOMEM;
    atomic_init(&c->flag, 0);
    *out = c;
    return TSR_OK;
}

void tsr_cancel_destroy(tsr_cancel_t *cancel)
{
    tsr_mem_free(NULL, cancel);
}

/* Release/acquire would order nothing useful here (the flag carries no data);
 * seq_cst stores keep it simple and are as signal-safe as any. */
void tsr_cancel_set(tsr_cancel_t *cancel)
{
    if (cancel)
        atomic_store(&cancel->flag, 1);
}

void tsr_cancel_reset(tsr_cancel_t *cancel)
{
    if (cancel)
        atomic_store(&cancel->flag, 0);
}

int tsr_cancel_is_set(const tsr_cancel_t *cancel)
{
    return cancel && atomic_load(&cancel->flag) != 0;
}

void tsr_context_set_cancel(tsr_context_t *ctx, tsr_cancel_t *cancel)
{
    if (ctx)
        ctx->cancel = cancel;
}

void tsr_context_destroy(tsr_context_t *ctx)
{
    if (!ctx)
        return;
    tsr__context_free_retired(ctx);
    tsr__context_close_device(ctx);
    tsr_catalog_free(&ctx->catalog);
    tsr_pool_destroy(ctx->pool);
    free(ctx);
}

void tsr_context_last_error(const tsr_context_t *ctx, tsr_error_info_t *out)
{
    const tsr_error_t *e = &ctx->last_error;
    out->status = e->status;
    out->message = e->message;
    out->hint = e->hint;
    out->file = e->file;
    out->line = e->line;
    out->column = e->column;
}

tsr_mem_t *tsr__context_mem(tsr_context_t *ctx)
{
    return &ctx->mem;
}
