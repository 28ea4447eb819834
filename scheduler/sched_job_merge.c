/*
 * sched_job_merge.c - the scheduler's own queries for a distributed SQL job
 * (sched_job.c runs the job): the FROM table's column types from the
 * ranges' INFER answers (the types embedded mode would give the whole
 * file), the checks of the original, worker and merge queries on empty
 * tables in the job's context, and the merge of the stacked partial rows.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "sched_job_internal.h"
#include "table/csv_internal.h" /* tsr_csv_join: the engine's widening rule */

#define SAMPLE_ROWS 20000 /* the CSV reader's type-inference sample */

typedef struct icol {
    const char *name; /* into the INFER reply */
    bool read;        /* the query reads it: only those get a type */
    tsr_type_t type, all;
    uint64_t first;
} icol_t;

static bool schema_fixes(const char *schema, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = schema; p && *p;) {
        while (*p == ' ')
            p++;
        const char *colon = strchr(p, ':');
        if (!colon)
            return false;
        const char *e = colon;
        while (e > p && e[-1] == ' ')
            e--;
        if ((size_t)(e - p) == nl && strncasecmp(p, name, nl) == 0)
            return true;
        p = strchr(colon, ',');
        if (p)
            p++;
    }
    return false;
}

/* Step 2: the file's types from the ranges' INFER answers. */
bool tsr_sjob_compute_schema(sjob_t *j, tsr_error_t *e)
{
    sched_t *s = j->s;
    size_t nr = j->ntasks, ncols = 0;
    icol_t *cols = NULL;
    bool ok = false;
    uint64_t *nrows = tsr_mem_calloc(s->mem, nr, sizeof(*nrows));
    j->range_differs = tsr_mem_calloc(s->mem, nr, sizeof(bool));
    j->range_rows = tsr_mem_calloc(s->mem, nr, sizeof(uint64_t));
    j->range_worker = tsr_mem_calloc(s->mem, nr, sizeof(int));
    if (!nrows || !j->range_differs || !j->range_rows || !j->range_worker)
        goto nomem;
    for (size_t r = 0; r < nr; r++)
        j->range_worker[r] = j->tasks[r].worker;
    for (size_t r = 0; r < nr; r++) {
        tsr_rbuf_t rb;
        tsr_rbuf_init(&rb, j->tasks[r].reply.data, j->tasks[r].reply.len);
        nrows[r] = tsr_rbuf_u64(&rb);
        if (j->range_rows)
            j->range_rows[r] = nrows[r];
        uint32_t nc = tsr_rbuf_u32(&rb);
        if (r == 0) {
            ncols = nc;
            if (nc == 0 || nc > 100000 || rb.bad)
                goto bad;
            if (!(cols = tsr_mem_calloc(s->mem, ncols * nr, sizeof(*cols))))
                goto nomem;
        }
        if (nc != ncols)
            goto bad;
        for (size_t c = 0; c < ncols; c++) {
            icol_t *ic = &cols[r * ncols + c];
            ic->name = tsr_rbuf_str(&rb);
            ic->read = tsr_rbuf_u8(&rb) != 0;
            ic->type = (tsr_type_t)tsr_rbuf_u8(&rb);
            ic->all = (tsr_type_t)tsr_rbuf_u8(&rb);
            ic->first = tsr_rbuf_u64(&rb);
            if (ic->type > TSR_TYPE_VARCHAR || ic->all > TSR_TYPE_VARCHAR ||
                strcasecmp(ic->name, cols[c].name) != 0)
                rb.bad = true;
        }
        if (!tsr_rbuf_done(&rb))
            goto bad;
    }
    /* b: the types of the columns the query reads (what RUN parses with);
     * cb: every column, unread ones as VARCHAR placeholders, for the checks */
    tsr_wbuf_t b, cb;
    tsr_wbuf_init(&b, s->mem);
    tsr_wbuf_init(&cb, s->mem);
    for (size_t c = 0; c < ncols; c++) {
        const char *name = cols[c].name;
        bool odd = strpbrk(name, ",:") || name[0] == ' ';
        tsr_type_t t = TSR_TYPE_VARCHAR;
        if (!cols[c].read) {
            if (odd)
                continue; /* not read, not needed for binding */
        } else if (odd) {
            tsr_wbuf_free(&b);
            tsr_wbuf_free(&cb);
            tsr_error_set(e, TSR_ERR_UNSUPPORTED, "column name not expressible in a schema");
            goto done;
        } else if (schema_fixes(j->schemas[j->ti], name)) {
            t = cols[c].type; /* the user's type, the same in every range */
        } else {
            uint64_t before = 0, first = UINT64_MAX;
            t = TSR_TYPE_NULL;
            for (size_t r = 0; r < nr; r++) {
                const icol_t *ic = &cols[r * ncols + c];
                if (first == UINT64_MAX && ic->first != UINT64_MAX)
                    first = before + ic->first;
                before += nrows[r];
                t = tsr_csv_join(t, ic->all);
            }
            if (first >= SAMPLE_ROWS || t == TSR_TYPE_NULL)
                t = TSR_TYPE_VARCHAR; /* the engine's sample saw only NULLs */
        }
        if (cols[c].read) {
            for (size_t r = 0; r < nr; r++)
                j->range_differs[r] |= cols[r * ncols + c].type != t;
            if (b.len > 0)
                tsr_wbuf_u8(&b, ',');
            tsr_wbuf_bytes(&b, name, strlen(name));
            tsr_wbuf_u8(&b, ':');
            tsr_wbuf_bytes(&b, tsr_sjob_type_word(t), strlen(tsr_sjob_type_word(t)));
        }
        if (cb.len > 0)
            tsr_wbuf_u8(&cb, ',');
        tsr_wbuf_bytes(&cb, name, strlen(name));
        tsr_wbuf_u8(&cb, ':');
        tsr_wbuf_bytes(&cb, tsr_sjob_type_word(t), strlen(tsr_sjob_type_word(t)));
    }
    tsr_wbuf_u8(&b, 0);
    tsr_wbuf_u8(&cb, 0);
    if (b.failed || cb.failed) {
        tsr_wbuf_free(&b);
        tsr_wbuf_free(&cb);
        goto nomem;
    }
    j->schema = (char *)b.data;
    j->check_schema = (char *)cb.data;
    ok = true;
    goto done;
bad:
    tsr_error_set(e, TSR_ERR_INTERNAL, "workers disagree on the columns of '%s'", j->paths[j->ti]);
    goto done;
nomem:
    tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
done:
    tsr_mem_free(s->mem, cols);
    tsr_mem_free(s->mem, nrows);
    return ok;
}

/* Registers an empty table `name` with the columns and types of schema
 * "a:int64,b:varchar" (names without ',' or ':'). */
static tsr_status_t register_empty(sjob_t *j, const char *name, const char *schema)
{
    tsr_mem_t *mem = j->s->mem;
    size_t n = 1;
    for (const char *p = schema; *p; p++)
        n += *p == ',';
    tsr_column_data_t *cols = tsr_mem_calloc(mem, n, sizeof(*cols));
    char *copy = tsr_mem_strdup(mem, schema);
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!cols || !copy)
        goto done;
    char *save = NULL;
    size_t i = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && i < n; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *ty = colon + 1;
        cols[i].name = tok;
        cols[i].type = strcmp(ty, "int64") == 0    ? TSR_TYPE_INT64
                       : strcmp(ty, "double") == 0 ? TSR_TYPE_DOUBLE
                       : strcmp(ty, "bool") == 0   ? TSR_TYPE_BOOL
                                                   : TSR_TYPE_VARCHAR;
        i++;
    }
    rc = tsr_table_register_columns(j->ctx, name, i, cols, 0);
done:
    tsr_mem_free(mem, cols);
    tsr_mem_free(mem, copy);
    return rc;
}

/* JOIN: the broadcast tables as empty tables of the types their files get
 * (header and type inference only, as every worker will see them). */
static bool register_broadcast(sjob_t *j)
{
    for (size_t i = 0; i < j->ntables; i++) {
        if (!j->bcast[i])
            continue;
        tsr_csv_options_t o = {.delimiter = j->delim,
                               .schema = j->schemas[i][0] ? j->schemas[i] : NULL};
        tsr_table_t *t = NULL;
        tsr_error_t e;
        tsr_error_clear(&e);
        if (tsr_csv_open_file(j->s->mem, NULL, j->paths[i], j->names[i], &o, &t, &e) != TSR_OK)
            return false; /* the worker reports it when the query runs whole */
        tsr_column_data_t *cols = tsr_mem_calloc(j->s->mem, t->ncols ? t->ncols : 1, sizeof(*cols));
        bool ok = cols != NULL;
        for (size_t c = 0; ok && c < t->ncols; c++) {
            cols[c].name = t->fields[c].name;
            cols[c].type = t->fields[c].type;
        }
        ok = ok && tsr_table_register_columns(j->ctx, j->names[i], t->ncols, cols, 0) == TSR_OK;
        tsr_mem_free(j->s->mem, cols);
        tsr_table_destroy(t);
        if (!ok)
            return false;
    }
    return true;
}

/* Is some output column of res named like another (any case)? The merge
 * could not tell them apart. */
static bool dup_names(const tsr_result_t *res)
{
    size_t nc = tsr_result_column_count(res);
    for (size_t c = 0; c < nc; c++)
        for (size_t d = 0; d < c; d++)
            if (strcasecmp(tsr_result_column_name(res, c), tsr_result_column_name(res, d)) == 0)
                return true;
    return false;
}

/* Step 3. Returns 1 to go on distributed, 0 to run WHOLE, -1 when the job
 * failed (answered). */
int tsr_sjob_check_queries(sjob_t *j)
{
    tsr_error_t e;
    tsr_result_t *res = NULL;
    if (register_empty(j, j->names[j->ti], j->check_schema) != TSR_OK)
        return 0;
    if (j->plan.kind == TSR_DPLAN_JOIN && !register_broadcast(j))
        return 0;
    if (tsr_query(j->ctx, j->sql, &res) != TSR_OK) {
        tsr_proto_context_error(j->ctx, &e);
        tsr_sjob_fail(j, &e);
        return -1;
    }
    tsr_result_destroy(res);
    if (tsr_query(j->ctx, j->plan.worker_sql, &res) != TSR_OK)
        return 0;
    if (dup_names(res)) {
        tsr_result_destroy(res);
        return 0;
    }
    size_t nc = tsr_result_column_count(res);
    tsr_column_data_t *cols = tsr_mem_calloc(j->s->mem, nc ? nc : 1, sizeof(*cols));
    int ok = 0;
    if (cols) {
        for (size_t c = 0; c < nc; c++) {
            cols[c].name = tsr_result_column_name(res, c);
            cols[c].type = tsr_result_column_type(res, c);
        }
        ok = tsr_table_register_columns(j->ctx, j->plan.part, nc, cols, 0) == TSR_OK;
    }
    tsr_mem_free(j->s->mem, cols);
    tsr_result_destroy(res);
    if (!ok)
        return 0;
    res = NULL;
    if (tsr_query(j->ctx, j->plan.final_sql, &res) != TSR_OK)
        return 0;
    tsr_result_destroy(res);
    for (size_t i = 0; i < j->plan.nprobes; i++) { /* an input column would shadow an alias */
        res = NULL;
        if (tsr_query(j->ctx, j->plan.probes[i], &res) == TSR_OK) {
            tsr_result_destroy(res);
            return 0;
        }
    }
    return 1;
}

void tsr_sjob_merge(sjob_t *j)
{
    sched_t *s = j->s;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_rtab_t all = {0};
    tsr_result_t *res = NULL;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    for (size_t i = 0; i < j->ntasks; i++) {
        tsr_rtab_t part;
        if (tsr_proto_decode_rtab(s->mem, j->tasks[i].reply.data, j->tasks[i].reply.len, &part,
                                  &e) != TSR_OK)
            goto fail;
        tsr_status_t rc = tsr_proto_rtab_append(s->mem, &all, &part, &e);
        tsr_proto_rtab_free(s->mem, &part);
        if (rc != TSR_OK)
            goto fail;
    }
    if (tsr_proto_rtab_register(s->mem, j->ctx, j->plan.part, &all, NULL) != TSR_OK ||
        tsr_query(j->ctx, j->plan.final_sql, &res) != TSR_OK) {
        tsr_proto_context_error(j->ctx, &e);
        goto fail;
    }
    if (tsr_proto_encode_result(&b, res) != TSR_OK) {
        tsr_error_set(&e, TSR_ERR_NOMEM, "out of memory encoding the result");
        goto fail;
    }
    tsr_result_destroy(res);
    tsr_proto_rtab_free(s->mem, &all);
    tsr_sjob_answer(j, b.data, b.len);
    tsr_wbuf_free(&b);
    return;
fail:
    tsr_result_destroy(res);
    tsr_proto_rtab_free(s->mem, &all);
    tsr_wbuf_free(&b);
    tsr_sjob_fail(j, &e);
}

