/*
 * rewrite.c - splitting a query into worker and merge SQL (see rewrite.h).
 *
 * The parser (engine/sql/ast.h) gives every expression its source span. The
 * worker query is assembled from span texts; the merge query is the original
 * text with a sorted list of non-overlapping edits applied (aggregate calls
 * replaced, the WHERE expression replaced by TRUE, aliases inserted). Both are
 * checked by the scheduler on empty tables before anything runs (sched_job.c),
 * and any query they cannot express falls back to WHOLE, so a wrong rewrite
 * costs speed, never a wrong answer that binds.
 */
#include "rewrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"
#include "rewrite_internal.h"
#include "rewrite_join.h"
#include "sql/ast.h"

#define MAX_AGGS 256
#define MAX_EDITS (MAX_AGGS + 300)

typedef struct agg_use {
    const tsr_ast_expr_t *call;
    const char *fn; /* "count", "sum", "min", "max", "avg" */
} agg_use_t;

typedef tsr_rewrite_edit_t edit_t;

typedef struct rw {
    tsr_mem_t *mem;
    const char *sql;
    agg_use_t aggs[MAX_AGGS];
    size_t naggs;
    const char *why; /* set when the query cannot be split */
} rw_t;

const char *tsr_rewrite_agg_name(const char *name)
{
    static const char *const names[] = {"count", "sum", "min", "max", "avg"};
    for (size_t i = 0; name && i < 5; i++)
        if (strcasecmp(name, names[i]) == 0)
            return names[i];
    return NULL;
}

/* Collects the aggregate calls of e (not looking inside them). */
static void collect(rw_t *w, const tsr_ast_expr_t *e)
{
    if (!e || w->why)
        return;
    const char *fn = e->kind == TSR_AST_FUNC ? tsr_rewrite_agg_name(e->name) : NULL;
    if (fn) {
        if (e->distinct) {
            w->why = "an aggregate with DISTINCT";
            return;
        }
        if (e->nargs != 1 || !e->args || !e->args[0]) {
            w->why = "an aggregate of an unusual shape";
            return;
        }
        if (w->naggs == MAX_AGGS) {
            w->why = "too many aggregates";
            return;
        }
        w->aggs[w->naggs].call = e;
        w->aggs[w->naggs].fn = fn;
        w->naggs++;
        return;
    }
    for (size_t i = 0; i < e->nargs && e->args; i++)
        collect(w, e->args[i]);
}

bool tsr_rewrite_has_agg(const tsr_ast_expr_t *e)
{
    if (!e)
        return false;
    if (e->kind == TSR_AST_FUNC && tsr_rewrite_agg_name(e->name))
        return true;
    for (size_t i = 0; i < e->nargs && e->args; i++)
        if (tsr_rewrite_has_agg(e->args[i]))
            return true;
    return false;
}

/* Adds the column names e reads to b ("a,b,"), lower case; false when one
 * cannot be listed (a ',' in it). */
bool tsr_rewrite_list_columns(tsr_wbuf_t *b, const tsr_ast_expr_t *e)
{
    if (!e)
        return true;
    if (e->kind == TSR_AST_COLUMN && e->name) {
        if (strchr(e->name, ','))
            return false;
        for (const char *p = e->name; *p; p++)
            tsr_wbuf_u8(b, (uint8_t)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p));
        tsr_wbuf_u8(b, ',');
    }
    for (size_t i = 0; i < e->nargs && e->args; i++)
        if (!tsr_rewrite_list_columns(b, e->args[i]))
            return false;
    return true;
}

/* plan->columns for an AGG query (see rewrite.h). */
static char *agg_columns(tsr_mem_t *mem, const tsr_ast_select_t *q)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, mem);
    bool ok = tsr_rewrite_list_columns(&b, q->where) && tsr_rewrite_list_columns(&b, q->having);
    for (size_t i = 0; ok && i < q->nitems; i++)
        ok = tsr_rewrite_list_columns(&b, q->items[i].expr);
    for (size_t i = 0; ok && i < q->ngroup_by; i++)
        ok = tsr_rewrite_list_columns(&b, q->group_by[i]);
    for (size_t i = 0; ok && i < q->norder_by; i++)
        ok = tsr_rewrite_list_columns(&b, q->order_by[i].expr);
    if (!ok || b.len == 0) { /* COUNT(*) alone reads no column: "" */
        tsr_wbuf_free(&b);
        return tsr_mem_strdup(mem, ok ? "" : "*");
    }
    b.len--; /* the last ',' */
    tsr_wbuf_u8(&b, 0);
    if (b.failed) {
        tsr_wbuf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

void tsr_rewrite_put_span(tsr_wbuf_t *b, const char *sql, tsr_src_span_t s)
{
    tsr_wbuf_bytes(b, sql + s.offset, s.len);
}

void tsr_rewrite_put_text(tsr_wbuf_t *b, const char *s)
{
    tsr_wbuf_bytes(b, s, strlen(s));
}

/* "name" with quotes doubled. */
void tsr_rewrite_put_quoted(tsr_wbuf_t *b, const char *s, size_t n)
{
    tsr_wbuf_u8(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            tsr_wbuf_u8(b, '"');
        tsr_wbuf_u8(b, (uint8_t)s[i]);
    }
    tsr_wbuf_u8(b, '"');
}

static bool plain_ident(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* Moves b's bytes out as a NUL-terminated string (NULL on failure). */
char *tsr_rewrite_take(tsr_wbuf_t *b)
{
    tsr_wbuf_u8(b, 0);
    if (b->failed) {
        tsr_wbuf_free(b);
        return NULL;
    }
    char *s = (char *)b->data;
    b->data = NULL;
    return s;
}

static void put_from(tsr_wbuf_t *b, const char *sql, const tsr_ast_select_t *q)
{
    tsr_rewrite_put_text(b, "\nFROM ");
    tsr_rewrite_put_span(b, sql, q->from.span);
    if (q->from.alias) {
        tsr_rewrite_put_text(b, " AS ");
        if (plain_ident(q->from.alias))
            tsr_rewrite_put_text(b, q->from.alias);
        else
            tsr_rewrite_put_quoted(b, q->from.alias, strlen(q->from.alias));
    }
    if (q->where) {
        tsr_rewrite_put_text(b, "\nWHERE (");
        tsr_rewrite_put_span(b, sql, q->where->span);
        tsr_rewrite_put_text(b, ")");
    }
}

static char *worker_agg_sql(rw_t *w, const tsr_ast_select_t *q)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, w->mem);
    tsr_rewrite_put_text(&b, "SELECT ");
    bool first = true;
    char tmp[64];
    for (size_t i = 0; i < q->ngroup_by; i++) {
        const tsr_ast_expr_t *g = q->group_by[i];
        tsr_rewrite_put_text(&b, first ? "" : ", ");
        first = false;
        /* no alias: the engine names the partial column as it names the
         * column, the file's spelling (`kk` of header "Kk" stays "Kk") */
        tsr_rewrite_put_span(&b, w->sql, g->span);
    }
    for (size_t k = 0; k < w->naggs; k++) {
        const agg_use_t *a = &w->aggs[k];
        const tsr_ast_expr_t *arg = a->call->args[0];
        tsr_rewrite_put_text(&b, first ? "" : ", ");
        first = false;
        bool avg = strcmp(a->fn, "avg") == 0;
        tsr_rewrite_put_text(&b, avg ? "SUM" : a->fn);
        tsr_rewrite_put_text(&b, "(");
        if (arg->kind == TSR_AST_STAR)
            tsr_rewrite_put_text(&b, "*");
        else
            tsr_rewrite_put_span(&b, w->sql, arg->span);
        snprintf(tmp, sizeof(tmp), ") AS tsr__p%zu%s", k, avg ? "s" : "");
        tsr_rewrite_put_text(&b, tmp);
        if (avg) {
            tsr_rewrite_put_text(&b, ", COUNT(");
            tsr_rewrite_put_span(&b, w->sql, arg->span);
            snprintf(tmp, sizeof(tmp), ") AS tsr__p%zuc", k);
            tsr_rewrite_put_text(&b, tmp);
        }
    }
    put_from(&b, w->sql, q);
    for (size_t i = 0; i < q->ngroup_by; i++) {
        tsr_rewrite_put_text(&b, i == 0 ? "\nGROUP BY " : ", ");
        tsr_rewrite_put_span(&b, w->sql, q->group_by[i]->span);
    }
    return tsr_rewrite_take(&b);
}

static char *worker_scan_sql(rw_t *w, const tsr_ast_select_t *q)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, w->mem);
    tsr_rewrite_put_text(&b, "SELECT *");
    put_from(&b, w->sql, q);
    if (q->limit >= 0 && q->norder_by == 0 && !q->distinct && q->offset >= 0 &&
        q->limit <= INT64_MAX - q->offset) {
        char tmp[48];
        snprintf(tmp, sizeof(tmp), "\nLIMIT %lld", (long long)(q->limit + q->offset));
        tsr_rewrite_put_text(&b, tmp);
    }
    return tsr_rewrite_take(&b);
}

int tsr_rewrite_edit_cmp(const void *a, const void *b)
{
    const edit_t *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->len > y->len ? -1 : (x->len < y->len ? 1 : 0); /* replacement before insert */
}

static bool add_edit(rw_t *w, edit_t *edits, size_t *n, size_t off, size_t len, char *text)
{
    if (!text || *n == MAX_EDITS) {
        tsr_mem_free(w->mem, text);
        return false;
    }
    edits[*n].offset = off;
    edits[*n].len = len;
    edits[*n].text = text;
    (*n)++;
    return true;
}

static char *str_of(tsr_mem_t *mem, const char *s)
{
    return tsr_mem_strdup(mem, s);
}

static char *final_sql(rw_t *w, const tsr_ast_select_t *q, size_t sql_len)
{
    edit_t *edits = tsr_mem_calloc(w->mem, MAX_EDITS, sizeof(*edits));
    size_t n = 0;
    char *out = NULL;
    bool ok = edits != NULL;
    char tmp[160];
    for (size_t k = 0; ok && k < w->naggs; k++) {
        const agg_use_t *a = &w->aggs[k];
        if (strcmp(a->fn, "avg") == 0)
            snprintf(tmp, sizeof(tmp), "(SUM(tsr__p%zus) * 1.0 / SUM(tsr__p%zuc))", k, k);
        else
            snprintf(tmp, sizeof(tmp), "%s(tsr__p%zu)", strcmp(a->fn, "count") == 0 ? "SUM" : a->fn,
                     k);
        ok = add_edit(w, edits, &n, a->call->span.offset, a->call->span.len, str_of(w->mem, tmp));
    }
    if (ok && q->where)
        ok = add_edit(w, edits, &n, q->where->span.offset, q->where->span.len,
                      str_of(w->mem, "TRUE"));
    for (size_t i = 0; ok && i < q->nitems; i++) {
        const tsr_ast_select_item_t *it = &q->items[i];
        if (it->alias || !tsr_rewrite_has_agg(it->expr))
            continue;
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, w->mem);
        tsr_rewrite_put_text(&b, " AS ");
        tsr_rewrite_put_quoted(&b, w->sql + it->expr->span.offset, it->expr->span.len);
        ok = add_edit(w, edits, &n, it->expr->span.offset + it->expr->span.len, 0,
                      tsr_rewrite_take(&b));
    }
    if (ok) {
        qsort(edits, n, sizeof(*edits), tsr_rewrite_edit_cmp);
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, w->mem);
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            if (edits[i].offset < pos || edits[i].offset + edits[i].len > sql_len) {
                ok = false; /* overlapping spans: a parser shape this code does not know */
                break;
            }
            tsr_wbuf_bytes(&b, w->sql + pos, edits[i].offset - pos);
            tsr_rewrite_put_text(&b, edits[i].text);
            pos = edits[i].offset + edits[i].len;
        }
        tsr_wbuf_bytes(&b, w->sql + pos, sql_len - pos);
        out = ok ? tsr_rewrite_take(&b) : NULL;
        if (!ok)
            tsr_wbuf_free(&b);
    }
    for (size_t i = 0; edits && i < n; i++)
        tsr_mem_free(w->mem, edits[i].text);
    tsr_mem_free(w->mem, edits);
    return out;
}

static const char *classify(rw_t *w, const tsr_ast_select_t *q, bool *agg)
{
    if (!q->has_from)
        return "a query without FROM";
    for (size_t i = 0; i < q->nitems; i++)
        collect(w, q->items[i].expr);
    collect(w, q->having);
    for (size_t i = 0; i < q->norder_by; i++)
        collect(w, q->order_by[i].expr);
    if (w->why)
        return w->why;
    if (tsr_rewrite_has_agg(q->where))
        return "an aggregate in WHERE"; /* an error: the binder reports it */
    for (size_t i = 0; i < q->ngroup_by; i++) {
        const tsr_ast_expr_t *g = q->group_by[i];
        if (g->kind != TSR_AST_COLUMN || !g->name || tsr_rewrite_has_agg(g))
            return "GROUP BY on an expression";
    }
    *agg = w->naggs > 0 || q->ngroup_by > 0 || q->having;
    for (size_t i = 0; *agg && i < q->nitems; i++)
        if (q->items[i].expr && q->items[i].expr->kind == TSR_AST_STAR)
            return "SELECT * with aggregates";
    return NULL;
}

tsr_status_t tsr_rewrite_plan(tsr_mem_t *mem, const char *sql, tsr_dplan_t *out, tsr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    tsr_arena_t arena;
    tsr_arena_init(&arena, mem);
    tsr_ast_select_t *q = NULL;
    size_t len = strlen(sql);
    tsr_status_t rc = tsr_sql_parse(&arena, sql, len, &q, err);
    if (rc != TSR_OK)
        goto done;
    rw_t *w = tsr_mem_calloc(mem, 1, sizeof(*w)); /* MAX_AGGS entries: not on the stack */
    if (!w) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory planning the query");
        goto done;
    }
    w->mem = mem;
    w->sql = sql;
    if (q->has_from && q->njoins > 0) {
        tsr_mem_free(mem, w);
        tsr_rewrite_join(mem, sql, len, q, out);
        goto done;
    }
    bool agg = false;
    const char *why = classify(w, q, &agg);
    if (why) {
        out->kind = TSR_DPLAN_WHOLE;
        out->why = why;
        tsr_mem_free(mem, w);
        goto done;
    }
    out->kind = agg ? TSR_DPLAN_AGG : TSR_DPLAN_SCAN;
    out->table = tsr_mem_strdup(mem, q->from.table);
    out->worker_sql = agg ? worker_agg_sql(w, q) : worker_scan_sql(w, q);
    out->final_sql = final_sql(w, q, len);
    out->columns = agg ? agg_columns(mem, q) : tsr_mem_strdup(mem, "*");
    out->part = tsr_mem_strdup(mem, q->from.table);
    tsr_mem_free(mem, w);
    if (!out->table || !out->part || !out->worker_sql || !out->final_sql || !out->columns) {
        tsr_rewrite_free(mem, out);
        out->kind = TSR_DPLAN_WHOLE;
        out->why = "the rewrite failed";
    }
done:
    tsr_arena_release(&arena);
    return rc;
}

void tsr_rewrite_free(tsr_mem_t *mem, tsr_dplan_t *p)
{
    tsr_mem_free(mem, p->table);
    tsr_mem_free(mem, p->worker_sql);
    tsr_mem_free(mem, p->final_sql);
    tsr_mem_free(mem, p->columns);
    tsr_mem_free(mem, p->part);
    for (size_t i = 0; p->tables && i < p->ntables; i++)
        tsr_mem_free(mem, p->tables[i]);
    for (size_t i = 0; p->probes && i < p->nprobes; i++)
        tsr_mem_free(mem, p->probes[i]);
    tsr_mem_free(mem, p->tables);
    tsr_mem_free(mem, p->probes);
    p->table = p->worker_sql = p->final_sql = p->columns = p->part = NULL;
    p->tables = p->probes = NULL;
    p->ntables = p->nprobes = 0;
}

tsr_status_t tsr_rewrite_pick(tsr_mem_t *mem, tsr_dplan_t *p, size_t idx)
{
    if (idx >= p->ntables)
        return TSR_ERR_INVALID_ARG;
    char *t = tsr_mem_strdup(mem, p->tables[idx]);
    if (!t)
        return TSR_ERR_NOMEM;
    tsr_mem_free(mem, p->table);
    p->table = t;
    return TSR_OK;
}

const char *tsr_rewrite_kind_name(tsr_dplan_kind_t k)
{
    switch (k) {
    case TSR_DPLAN_AGG:
        return "agg";
    case TSR_DPLAN_SCAN:
        return "scan";
    case TSR_DPLAN_JOIN:
        return "join";
    default:
        return "whole";
    }
}

tsr_status_t tsr_rewrite_infer_sql(tsr_mem_t *mem, const char *table, const char *const *names,
                                   const bool *read, size_t ncols, unsigned limit, char **sample,
                                   char **count)
{
    *sample = *count = NULL;
    tsr_wbuf_t sb, cb;
    tsr_wbuf_init(&sb, mem);
    tsr_wbuf_init(&cb, mem);
    const char *first = NULL;
    for (size_t c = 0; c < ncols; c++) {
        if (!read[c])
            continue;
        tsr_rewrite_put_text(&sb, first ? ", " : "SELECT ");
        tsr_rewrite_put_quoted(&sb, names[c], strlen(names[c]));
        if (!first)
            first = names[c];
    }
    char lim[32];
    snprintf(lim, sizeof(lim), " LIMIT %u", limit);
    tsr_rewrite_put_text(&sb, " FROM ");
    tsr_rewrite_put_quoted(&sb, table, strlen(table));
    tsr_rewrite_put_text(&sb, lim);
    tsr_wbuf_u8(&sb, 0);
    /* COUNT(*) with another aggregate of a loaded column: the scan reads
     * that column only (the planner adds column 0 only to a scan of none) */
    tsr_rewrite_put_text(&cb, "SELECT COUNT(*)");
    if (first) {
        tsr_rewrite_put_text(&cb, ", COUNT(");
        tsr_rewrite_put_quoted(&cb, first, strlen(first));
        tsr_rewrite_put_text(&cb, ")");
    }
    tsr_rewrite_put_text(&cb, " FROM ");
    tsr_rewrite_put_quoted(&cb, table, strlen(table));
    tsr_wbuf_u8(&cb, 0);
    if (sb.failed || cb.failed) {
        tsr_wbuf_free(&sb);
        tsr_wbuf_free(&cb);
        return TSR_ERR_NOMEM;
    }
    if (first)
        *sample = (char *)sb.data;
    else
        tsr_wbuf_free(&sb);
    *count = (char *)cb.data;
    return TSR_OK;
}
