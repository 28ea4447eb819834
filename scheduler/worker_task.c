/*
 * worker_task.c - the three tasks a worker runs (see worker_task.h, proto.h).
 *
 * A byte range becomes a table of the engine's own lazy CSV reader: the
 * header row and the range's bytes are read into one buffer the table owns
 * (tsr_csv_fd_range_bytes, tsr_csv_open_owned), so parsing, projection
 * pushdown and type inference are exactly embedded mode's, and the bytes are
 * copied once, as embedded mode reads its file. Errors name the range by a
 * tag ("tessera-range-JOB-RANGE") and are mapped back to the real file and
 * line (line = the range's first line in the file + the line inside it).
 * INFER loads the columns the query reads once (the sample query; its row
 * count reads nothing more, see tsr_rewrite_infer_sql), and RUN on the same
 * worker reuses that load.
 *
 * INFER  {u64 job, u32 range, str table, str path, u8 delim, u64 header_end,
 *         u64 start, u64 end, str schema (the user's overrides, "" = none),
 *         str columns (lower-case names the query reads, comma-separated, or
 *         "*" for all)}
 *   ->   {u64 nrows, u32 ncols, ncols x {str name, u8 read, u8 type,
 *         u8 all_type, u64 first_nonnull}}
 *        read: the query reads the column (only those are parsed: the engine
 *        loads columns lazily, and the others do not matter); type: what the
 *        engine inferred for the range; all_type: the join of every value's
 *        kind (NULL when all are NULL); first_nonnull: row of the first
 *        non-NULL value, UINT64_MAX when none. With these the scheduler
 *        computes the type embedded mode gives the whole file (the engine
 *        infers from the first 20000 rows, then widens).
 * RUN    {u64 job, u32 range, str table, str path, u8 delim, u64 header_end,
 *         u64 start, u64 end, str schema, u8 cache_ok, str sql} -> result table
 *        schema: the file's types, all columns; cache_ok: the range as INFER
 *        loaded it has exactly those, so a cached load may be used.
 *        A join (rewrite.h JOIN) appends {u32 n, n x {str name, str path,
 *        str schema}}: tables the task reads whole besides its range (the
 *        broadcast side), registered as WHOLE registers its files.
 * WHOLE  {u8 delim, u32 ntables, ntables x {str name, str path, str schema},
 *         str sql, [u64 job]} -> result table
 *        job (optional: older schedulers send none): what TASK_DROP names to
 *        interrupt it
 * GRAPH  one task of a task graph: worker_graph.c has its payloads.
 */
#define _GNU_SOURCE
#include "worker_task.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/context_internal.h" /* tsr__context_install (a range's table from its bytes),
                                     tsr__context_borrow_device */
#include "rewrite.h"                /* tsr_rewrite_infer_sql */
#include "table/csv_internal.h"   /* the engine's CSV reader and inference rules */

#define SAMPLE_ROWS 20000 /* the CSV reader's default type-inference sample */

typedef struct range_arg {
    uint64_t job;
    uint32_t range;
    const char *table;
    const char *path;
    char delim;
    uint64_t header_end, start, end;
} range_arg_t;

static void decode_range(tsr_rbuf_t *r, range_arg_t *a)
{
    a->job = tsr_rbuf_u64(r);
    a->range = tsr_rbuf_u32(r);
    a->table = tsr_rbuf_str(r);
    a->path = tsr_rbuf_str(r);
    a->delim = (char)tsr_rbuf_u8(r);
    a->header_end = tsr_rbuf_u64(r);
    a->start = tsr_rbuf_u64(r);
    a->end = tsr_rbuf_u64(r);
    if (a->header_end > a->start || a->start > a->end)
        r->bad = true;
}

/* '\n' bytes in [0, to) of fd (the CSV reader counts every one for lines). */
static uint64_t count_newlines(int fd, uint64_t to)
{
    static const size_t chunk = 1u << 20;
    char *buf = tsr_mem_alloc(NULL, chunk);
    uint64_t n = 0, pos = 0;
    while (buf && pos < to) {
        size_t want = to - pos < chunk ? (size_t)(to - pos) : chunk;
        ssize_t got = pread(fd, buf, want, (off_t)pos);
        if (got <= 0)
            break;
        for (const char *p = buf, *e = buf + got; (p = memchr(p, '\n', (size_t)(e - p))); p++)
            n++;
        pos += (uint64_t)got;
    }
    tsr_mem_free(NULL, buf);
    return n;
}

/* Replaces every occurrence of from in s (size bytes) by to. */
static void replace_all(char *s, size_t size, const char *from, const char *to)
{
    char out[1024];
    size_t o = 0, fl = strlen(from), tl = strlen(to);
    const char *p = s;
    while (*p && o + 1 < sizeof(out)) {
        if (fl && strncmp(p, from, fl) == 0 && o + tl + 1 < sizeof(out)) {
            memcpy(out + o, to, tl);
            o += tl;
            p += fl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    snprintf(s, size, "%s", out);
}

/* Where a loaded range came from, to map error positions back: the engine
 * parses lazily (columns load when a query first reads them), so a malformed
 * row may surface at any query on the range, pointing into the range. */
typedef struct range_src {
    char mpath[64];        /* the range's tag, the file name its errors carry */
    uint64_t header_lines; /* '\n's in the header bytes */
} range_src_t;

/* Rewrites e when it points into the range: the file becomes the real path,
 * the line the real line (the range's first line + the line inside it). */
static void remap_error(tsr_error_t *e, const range_src_t *src, const range_arg_t *a)
{
    if (strcmp(e->file, src->mpath) == 0) {
        snprintf(e->file, sizeof(e->file), "%s", a->path);
        if (e->line > (int)src->header_lines) {
            int in = open(a->path, O_RDONLY | O_CLOEXEC);
            uint64_t first = 1 + (in >= 0 ? count_newlines(in, a->start) : 0);
            if (in >= 0)
                close(in);
            e->line = (int)(first + (uint64_t)e->line - src->header_lines - 1);
        }
    }
    replace_all(e->message, sizeof(e->message), src->mpath, a->path);
    replace_all(e->hint, sizeof(e->hint), src->mpath, a->path);
}

/* Loads the range as table a->table into ctx: the header bytes and the
 * range's bytes are read into one buffer that the lazily loaded table owns
 * (one copy, like embedded mode's read of the file). On error fills e with
 * the position in the file. */
static tsr_status_t load_range(tsr_context_t *ctx, const range_arg_t *a, const char *schema,
                               range_src_t *src, tsr_error_t *e)
{
    int in = open(a->path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        tsr_status_t st = errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO;
        return tsr_error_set(e, st, "cannot open '%s' on the worker: %s", a->path, strerror(errno));
    }
    /* the name errors carry until remap_error puts the file's back */
    snprintf(src->mpath, sizeof(src->mpath), "tessera-range-%llu-%u", (unsigned long long)a->job,
             (unsigned)a->range);
    src->header_lines = 0;
    char *buf = NULL;
    size_t len = 0;
    tsr_error_t re;
    tsr_error_clear(&re);
    tsr_status_t rc = tsr_csv_fd_range_bytes(&ctx->mem, ctx->pool, in, a->path, a->header_end,
                                             a->start, a->end, &buf, &len, &re);
    close(in);
    if (rc != TSR_OK)
        return tsr_error_set(e, rc, "cannot read '%s' bytes %llu..%llu: %s", a->path,
                             (unsigned long long)a->start, (unsigned long long)a->end, re.message);
    for (uint64_t i = 0; i < a->header_end; i++)
        src->header_lines += buf[i] == '\n';
    tsr_csv_options_t opts = {.delimiter = a->delim, .schema = schema && schema[0] ? schema : NULL};
    tsr_table_t *t = NULL;
    rc = tsr_csv_open_owned(&ctx->mem, ctx->pool, buf, len, src->mpath, a->table, &opts, &t, e);
    if (rc == TSR_OK && (rc = tsr__context_install(ctx, t)) != TSR_OK)
        tsr_error_set(e, rc, "cannot register table '%s': %s", a->table, tsr_status_str(rc));
    if (rc != TSR_OK)
        remap_error(e, src, a);
    return rc;
}

/* env's device, opened in env->dev_owner at the first call (a failure is
 * tried again at the next task: the error goes to this one). */
static tsr_status_t device_owner(tsr_wtask_env_t *env, tsr_error_t *e)
{
    if (env->dev_owner)
        return TSR_OK;
    tsr_context_params_t cp = {.threads = 1};
    tsr_context_t *owner = NULL;
    tsr_status_t rc = tsr_context_create(&cp, &owner);
    if (rc != TSR_OK)
        return tsr_error_set(e, rc, "cannot start the engine: %s", tsr_status_str(rc));
    if ((rc = tsr_context_set_device(owner, env->device)) != TSR_OK) {
        tsr_proto_context_error(owner, e);
        tsr_context_destroy(owner);
        return rc;
    }
    env->dev_owner = owner;
    return TSR_OK;
}

static tsr_status_t new_context(tsr_wtask_env_t *env, tsr_context_t **out, tsr_error_t *e)
{
    tsr_context_params_t cp = {.threads = env->threads};
    tsr_status_t rc = tsr_context_create(&cp, out);
    if (rc != TSR_OK)
        return tsr_error_set(e, rc, "cannot start the engine: %s", tsr_status_str(rc));
    tsr_context_set_cancel(*out, env->cancel); /* TASK_DROP interrupts its queries */
    if (env->device && strcmp(env->device, "cpu") != 0) {
        /* one task runs at a time (on the executor thread), and cached range
         * contexts run nothing while they wait: they may all share it */
        if ((rc = device_owner(env, e)) != TSR_OK) {
            tsr_context_destroy(*out);
            *out = NULL;
            return rc;
        }
        tsr__context_borrow_device(*out, env->dev_owner);
    }
    return rc;
}

static tsr_status_t query(tsr_context_t *ctx, const char *sql, tsr_result_t **res, tsr_error_t *e)
{
    tsr_status_t rc = tsr_query(ctx, sql, res);
    if (rc != TSR_OK)
        tsr_proto_context_error(ctx, e);
    return rc;
}

/* Quotes a column name for SQL ("a""b"). */
static void quote_ident(char *buf, size_t size, const char *name)
{
    size_t o = 0;
    if (size < 3)
        return;
    buf[o++] = '"';
    for (const char *p = name; *p && o + 3 < size; p++) {
        if (*p == '"')
            buf[o++] = '"';
        buf[o++] = *p;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* The join of the kinds of every non-NULL value of VARCHAR column `col`. */
static tsr_status_t all_kind(tsr_context_t *ctx, const char *table, const char *col,
                             tsr_type_t *out, tsr_error_t *e)
{
    char q[1200], qc[520];
    quote_ident(qc, sizeof(qc), col);
    snprintf(q, sizeof(q), "SELECT DISTINCT %s FROM \"%s\" WHERE %s IS NOT NULL", qc, table, qc);
    tsr_result_t *res = NULL;
    tsr_status_t rc = query(ctx, q, &res, e);
    if (rc != TSR_OK)
        return rc;
    tsr_type_t t = TSR_TYPE_NULL;
    for (size_t r = 0; r < tsr_result_row_count(res) && t != TSR_TYPE_VARCHAR; r++) {
        size_t n = 0;
        const char *s = tsr_result_string(res, r, 0, &n);
        t = tsr_csv_join(t, tsr_csv_classify(s, n));
    }
    tsr_result_destroy(res);
    *out = t;
    return TSR_OK;
}

static tsr_range_cache_entry_t *cache_find(tsr_wtask_env_t *env, uint64_t job, uint32_t range)
{
    for (size_t i = 0; i < TSR_RANGE_CACHE; i++)
        if (env->cache[i].ctx && env->cache[i].job == job && env->cache[i].range == range)
            return &env->cache[i];
    return NULL;
}

static void cache_put(tsr_wtask_env_t *env, uint64_t job, uint32_t range, tsr_context_t *ctx,
                      const range_src_t *src)
{
    tsr_range_cache_entry_t *slot = &env->cache[0];
    for (size_t i = 0; i < TSR_RANGE_CACHE; i++) {
        if (!env->cache[i].ctx) {
            slot = &env->cache[i];
            break;
        }
        if (env->cache[i].stamp < slot->stamp)
            slot = &env->cache[i];
    }
    tsr_context_destroy(slot->ctx); /* the oldest goes */
    slot->job = job;
    slot->range = range;
    slot->ctx = ctx;
    slot->stamp = ++env->stamp;
    snprintf(slot->mpath, sizeof(slot->mpath), "%s", src->mpath);
    slot->header_lines = src->header_lines;
}

/* The column names of the range's file, as the engine reads its header:
 * the header bytes alone registered as a table of no rows (loads nothing). */
static tsr_status_t header_names(tsr_context_t *ctx, const range_arg_t *a, tsr_result_t **out,
                                 tsr_error_t *e)
{
    range_arg_t h = *a;
    h.table = "tsr__header";
    h.start = h.end = a->header_end; /* no rows */
    range_src_t src;
    tsr_status_t rc = load_range(ctx, &h, NULL, &src, e);
    if (rc == TSR_OK)
        rc = query(ctx, "SELECT * FROM tsr__header LIMIT 0", out, e);
    return rc;
}

/* Is name (any case) in list ("a,b,c", lower case)? */
static bool in_list(const char *list, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l == nl && strncasecmp(p, name, nl) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

static tsr_status_t task_infer(tsr_wtask_env_t *env, tsr_rbuf_t *r, tsr_wbuf_t *out, tsr_error_t *e)
{
    range_arg_t a;
    decode_range(r, &a);
    const char *user_schema = tsr_rbuf_str(r);
    const char *columns = tsr_rbuf_str(r);
    if (!tsr_rbuf_done(r))
        return tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
    tsr_context_t *ctx = NULL;
    tsr_result_t *sample = NULL, *count = NULL, *names = NULL;
    char *sample_sql = NULL, *count_sql = NULL;
    bool *read = NULL;
    const char **cnames = NULL;
    tsr_status_t rc = new_context(env, &ctx, e);
    if (rc != TSR_OK)
        return rc;
    range_src_t src;
    bool all_cols = strcmp(columns, "*") == 0;
    if ((rc = load_range(ctx, &a, user_schema, &src, e)) != TSR_OK)
        goto done;
    if ((rc = header_names(ctx, &a, &names, e)) != TSR_OK)
        goto done;
    /* the sample: the first rows of the columns the query reads (all for "*");
     * loading them parses the range once, and RUN reuses that load; the count
     * reads only what the sample loaded (rewrite.h) */
    size_t ncols = tsr_result_column_count(names);
    read = tsr_mem_calloc(env->mem, ncols ? ncols : 1, sizeof(*read));
    cnames = tsr_mem_calloc(env->mem, ncols ? ncols : 1, sizeof(*cnames));
    if (!read || !cnames) {
        rc = tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t c = 0; c < ncols; c++) {
        cnames[c] = tsr_result_column_name(names, c);
        read[c] = all_cols || in_list(columns, cnames[c]);
    }
    if ((rc = tsr_rewrite_infer_sql(env->mem, a.table, cnames, read, ncols, SAMPLE_ROWS,
                                    &sample_sql, &count_sql)) != TSR_OK) {
        tsr_error_set(e, rc, "out of memory");
        goto done;
    }
    if (sample_sql && (rc = query(ctx, sample_sql, &sample, e)) != TSR_OK)
        goto done;
    if ((rc = query(ctx, count_sql, &count, e)) != TSR_OK)
        goto done;
    uint64_t nrows = (uint64_t)tsr_result_int64(count, 0, 0);
    size_t nsample = sample ? tsr_result_row_count(sample) : 0;
    tsr_wbuf_u64(out, nrows);
    tsr_wbuf_u32(out, (uint32_t)ncols);
    for (size_t c = 0, sc = 0; c < ncols; c++) {
        const char *name = cnames[c];
        tsr_type_t t = TSR_TYPE_VARCHAR, all = TSR_TYPE_NULL;
        uint64_t first = UINT64_MAX;
        if (read[c]) {
            t = tsr_result_column_type(sample, sc);
            for (size_t i = 0; i < nsample; i++)
                if (!tsr_result_is_null(sample, i, sc)) {
                    first = i;
                    break;
                }
            all = t;
            if (first == UINT64_MAX && nrows == nsample)
                all = TSR_TYPE_NULL; /* every value NULL */
            else if (first == UINT64_MAX && t == TSR_TYPE_VARCHAR &&
                     (rc = all_kind(ctx, a.table, name, &all, e)) != TSR_OK)
                goto done; /* the sample was all NULL: VARCHAR says nothing of the values */
            sc++;
        }
        tsr_wbuf_str(out, name);
        tsr_wbuf_u8(out, read[c]);
        tsr_wbuf_u8(out, (uint8_t)t);
        tsr_wbuf_u8(out, (uint8_t)all);
        tsr_wbuf_u64(out, first);
    }
    if (out->failed) {
        rc = tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    tsr_result_destroy(sample);
    tsr_result_destroy(count);
    tsr_result_destroy(names);
    sample = count = names = NULL;
    cache_put(env, a.job, a.range, ctx, &src);
    ctx = NULL;
done:
    if (rc != TSR_OK && ctx)
        remap_error(e, &src, &a); /* a row that failed to parse when a column loaded */
    tsr_mem_free(env->mem, sample_sql);
    tsr_mem_free(env->mem, count_sql);
    tsr_mem_free(env->mem, read);
    tsr_mem_free(env->mem, cnames);
    tsr_result_destroy(sample);
    tsr_result_destroy(count);
    tsr_result_destroy(names);
    tsr_context_destroy(ctx);
    return rc;
}

static tsr_status_t run_sql(tsr_context_t *ctx, const char *sql, tsr_wbuf_t *out, tsr_error_t *e)
{
    tsr_result_t *res = NULL;
    tsr_status_t rc = query(ctx, sql, &res, e);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_proto_encode_result(out, res);
    tsr_result_destroy(res);
    if (rc != TSR_OK)
        tsr_error_set(e, rc, "out of memory encoding the result");
    return rc;
}

static tsr_status_t task_run(tsr_wtask_env_t *env, tsr_rbuf_t *r, tsr_wbuf_t *out, tsr_error_t *e)
{
    range_arg_t a;
    decode_range(r, &a);
    const char *schema = tsr_rbuf_str(r);
    bool cache_ok = tsr_rbuf_u8(r) != 0;
    const char *sql = tsr_rbuf_str(r);
    uint32_t nb = !r->bad && r->pos < r->len ? tsr_rbuf_u32(r) : 0;
    tsr_rbuf_t bc = *r; /* the broadcast tables, read again once ctx is ready */
    for (uint32_t i = 0; i < nb && !r->bad; i++) {
        (void)tsr_rbuf_str(r);
        (void)tsr_rbuf_str(r);
        (void)tsr_rbuf_str(r);
    }
    if (nb > 1024 || !tsr_rbuf_done(r))
        return tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
    tsr_context_t *ctx = NULL;
    range_src_t src = {{0}, 0};
    tsr_range_cache_entry_t *hit = cache_find(env, a.job, a.range);
    if (hit) {
        ctx = hit->ctx;
        hit->ctx = NULL;
        snprintf(src.mpath, sizeof(src.mpath), "%s", hit->mpath);
        src.header_lines = hit->header_lines;
    }
    tsr_status_t rc = TSR_OK;
    if (ctx && !cache_ok) { /* the file's types differ from the range's: parse again */
        tsr_context_destroy(ctx);
        ctx = NULL;
    }
    if (!ctx) {
        if ((rc = new_context(env, &ctx, e)) != TSR_OK)
            return rc;
        if ((rc = load_range(ctx, &a, schema, &src, e)) != TSR_OK)
            goto done;
    }
    for (uint32_t i = 0; i < nb; i++) {
        const char *name = tsr_rbuf_str(&bc), *path = tsr_rbuf_str(&bc);
        const char *bschema = tsr_rbuf_str(&bc);
        tsr_csv_params_t cp = {.delimiter = a.delim, .schema = bschema[0] ? bschema : NULL};
        if ((rc = tsr_table_register_csv(ctx, name, path, &cp)) != TSR_OK) {
            tsr_proto_context_error(ctx, e);
            goto done;
        }
    }
    if ((rc = run_sql(ctx, sql, out, e)) != TSR_OK)
        remap_error(e, &src, &a);
done:
    tsr_context_destroy(ctx);
    return rc;
}

static tsr_status_t task_whole(tsr_wtask_env_t *env, tsr_rbuf_t *r, tsr_wbuf_t *out, tsr_error_t *e)
{
    char delim = (char)tsr_rbuf_u8(r);
    uint32_t n = tsr_rbuf_u32(r);
    if (r->bad || n > 1024)
        return tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
    tsr_context_t *ctx = NULL;
    tsr_status_t rc = new_context(env, &ctx, e);
    if (rc != TSR_OK)
        return rc;
    for (uint32_t i = 0; i < n && rc == TSR_OK; i++) {
        const char *name = tsr_rbuf_str(r), *path = tsr_rbuf_str(r), *schema = tsr_rbuf_str(r);
        if (r->bad)
            break;
        tsr_csv_params_t cp = {.delimiter = delim, .schema = schema[0] ? schema : NULL};
        if ((rc = tsr_table_register_csv(ctx, name, path, &cp)) != TSR_OK)
            tsr_proto_context_error(ctx, e);
    }
    const char *sql = tsr_rbuf_str(r);
    if (!r->bad && r->len - r->pos == 8)
        (void)tsr_rbuf_u64(r); /* the job: for TASK_DROP (tsr_wtask_job_of) */
    if (rc == TSR_OK && !tsr_rbuf_done(r))
        rc = tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
    if (rc == TSR_OK)
        rc = run_sql(ctx, sql, out, e);
    tsr_context_destroy(ctx);
    return rc;
}

static const char *plugin_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Loads every plugin of env into graph g of ctx. */
static tsr_status_t load_plugins(const tsr_wtask_env_t *env, tsr_context_t *ctx, tsr_graph_t *g,
                                 tsr_error_t *e)
{
    for (size_t i = 0; i < env->nplugins; i++) {
        tsr_status_t rc = tsr_graph_load_plugin(g, plugin_name(env->plugins[i]), env->plugins[i]);
        if (rc != TSR_OK) {
            tsr_proto_context_error(ctx, e);
            return rc;
        }
    }
    return TSR_OK;
}

tsr_status_t tsr_wtask_env_load_plugins(tsr_wtask_env_t *env, const char *const *paths, size_t n,
                                        tsr_error_t *err)
{
    env->plugins = paths;
    env->nplugins = n;
    if (n == 0)
        return TSR_OK;
    env->plugin_handles = tsr_mem_calloc(env->mem, n, sizeof(void *));
    if (!env->plugin_handles)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        /* RTLD_GLOBAL is not needed: plugins call the program, not each other */
        if (!(env->plugin_handles[i] = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL))) {
            const char *why = dlerror();
            return tsr_error_set(err, TSR_ERR_NOT_FOUND, "cannot load plugin '%s': %s", paths[i],
                                 why ? why : "unknown error");
        }
    }
    /* a scratch graph: the API version and the kinds are checked now, not at
     * the first task */
    tsr_context_params_t cp = {.threads = 1};
    tsr_context_t *ctx = NULL;
    tsr_graph_t *g = NULL;
    tsr_status_t rc = tsr_context_create(&cp, &ctx);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "cannot start the engine: %s", tsr_status_str(rc));
    if ((rc = tsr_graph_create(ctx, NULL, &g)) != TSR_OK)
        tsr_proto_context_error(ctx, err);
    else
        rc = load_plugins(env, ctx, g, err);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
    return rc;
}

tsr_status_t tsr_wtask_new_context(tsr_wtask_env_t *env, tsr_context_t **out, tsr_error_t *e)
{
    return new_context(env, out, e);
}

tsr_status_t tsr_wtask_load_plugins(const tsr_wtask_env_t *env, tsr_context_t *ctx, tsr_graph_t *g,
                                    tsr_error_t *e)
{
    return load_plugins(env, ctx, g, e);
}

bool tsr_wtask_job_of(uint16_t type, const void *data, size_t len, uint64_t *job)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    if (type == TSR_MSG_TASK_WHOLE) { /* the job is the optional last field */
        (void)tsr_rbuf_u8(&r);
        uint32_t n = tsr_rbuf_u32(&r);
        for (uint32_t i = 0; i < n && i < 1024 && !r.bad; i++) {
            (void)tsr_rbuf_str(&r);
            (void)tsr_rbuf_str(&r);
            (void)tsr_rbuf_str(&r);
        }
        (void)tsr_rbuf_str(&r);
        if (r.bad || n > 1024 || r.len - r.pos != 8)
            return false;
        *job = tsr_rbuf_u64(&r);
        return !r.bad;
    }
    if (type == TSR_MSG_TASK_GRAPH) {
        uint8_t version = tsr_rbuf_u8(&r);
        if (version < 2 || version > 4)
            return false;
    }
    if (type != TSR_MSG_TASK_GRAPH && type != TSR_MSG_TASK_INFER && type != TSR_MSG_TASK_RUN)
        return false;
    *job = tsr_rbuf_u64(&r);
    return !r.bad;
}

tsr_status_t tsr_wtask_run(tsr_wtask_env_t *env, uint16_t type, const void *data, size_t len,
                           tsr_wbuf_t *out)
{
    tsr_rbuf_t r;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_rbuf_init(&r, data, len);
    tsr_status_t rc;
    switch (type) {
    case TSR_MSG_TASK_INFER:
        rc = task_infer(env, &r, out, &e);
        break;
    case TSR_MSG_TASK_RUN:
        rc = task_run(env, &r, out, &e);
        break;
    case TSR_MSG_TASK_WHOLE:
        rc = task_whole(env, &r, out, &e);
        break;
    case TSR_MSG_TASK_GRAPH:
        rc = tsr_wtask_graph(env, &r, out, &e);
        break;
    default:
        rc = tsr_error_set(&e, TSR_ERR_UNSUPPORTED, "unknown task type %u", type);
        break;
    }
    uint64_t job = 0;
    if (rc == TSR_ERR_CANCELLED && tsr_wtask_job_of(type, data, len, &job)) {
        /* interrupted by TASK_DROP: say so as the scheduler does */
        tsr_error_clear(&e);
        tsr_error_set(&e, rc, "job %llu was cancelled", (unsigned long long)job);
    }
    if (rc != TSR_OK) {
        tsr_wbuf_free(out);
        out->failed = false;
        if (e.status == TSR_OK)
            tsr_error_set(&e, rc, "%s", tsr_status_str(rc));
        tsr_proto_encode_error(out, &e);
        if (rc == TSR_ERR_STALE && type == TSR_MSG_TASK_GRAPH && env->nlost > 0) {
            /* the inputs it lost, for the scheduler's lineage */
            tsr_wbuf_u32(out, (uint32_t)env->nlost);
            for (size_t i = 0; i < env->nlost; i++) {
                tsr_wbuf_u32(out, env->lost[i][0]);
                tsr_wbuf_u32(out, env->lost[i][1]);
            }
        }
    }
    return rc;
}

void tsr_wtask_env_free(tsr_wtask_env_t *env)
{
    for (size_t i = 0; i < TSR_RANGE_CACHE; i++) {
        tsr_context_destroy(env->cache[i].ctx);
        env->cache[i].ctx = NULL;
    }
    for (size_t i = 0; env->plugin_handles && i < env->nplugins; i++)
        if (env->plugin_handles[i])
            dlclose(env->plugin_handles[i]);
    tsr_mem_free(env->mem, env->plugin_handles);
    env->plugin_handles = NULL;
    tsr_context_destroy(env->dev_owner); /* after every context that borrowed its device */
    env->dev_owner = NULL;
    env->nplugins = 0;
    tsr_cancel_destroy(env->cancel); /* after the contexts that held it */
    env->cancel = NULL;
}
