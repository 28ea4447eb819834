/*
 * rewrite_join.c - broadcast joins: the JOIN shape of rewrite.h.
 *
 * Why splitting one table is right. The parser only has inner joins, and
 * FROM a JOIN b ON p JOIN c ON q is { (x, y, z) : x in a, y in b, z in c,
 * p, q }: every row of a combines with b and c on its own, so the join of a
 * slice of a (everything else whole) is exactly the slice of the join that
 * comes from those rows, and the slices of all ranges stack to the whole
 * join (as a multiset; order never mattered without ORDER BY). WHERE is a
 * filter on the join's rows, so it runs on the workers too. What stays
 * WHOLE: a table that appears twice (splitting it would split both sides),
 * a table named tsr__* (the merge's own name), an aggregate with DISTINCT, a
 * name the merge cannot map onto a partial column for certain.
 *
 * Aggregates (join_agg). Worker: SELECT <group cols>, <partials> FROM <the
 * FROM clause as written> WHERE (...) GROUP BY <group cols>. A group column
 * is not aliased, so its partial column gets the engine's own output name
 * for it (the file's spelling of the column, which only the engine knows);
 * two group columns of one name stay WHOLE. Merge: the original text with
 * the FROM clause (first table through the last ON) replaced by tsr__part,
 * aggregates by their merges (rewrite.h), WHERE by TRUE, and every column
 * outside an aggregate by the quoted name of the group column it is, so
 * `b.k` becomes `"k"`; items without alias that are not bare columns get
 * their original text as alias. A name that is not a group column may be a
 * select alias (ORDER BY): kept, and a probe (rewrite.h) checks that no
 * input column has that name, since an input column would win.
 *
 * Rows (no aggregates). Worker: SELECT <items> FROM ... WHERE ..., a bare
 * column as is (its own name), anything else AS tsr__c<i>, plus ORDER BY
 * keys that are not select items AS tsr__o<j>; LIMIT n+m pushed down without
 * ORDER BY and DISTINCT. Merge: SELECT [DISTINCT] <the items by those names,
 * aliased back> FROM tsr__part ORDER BY ... LIMIT ... . SELECT * (alone) is
 * stacked as is. Output columns of one name (SELECT * over tables sharing a
 * column, b.k and d.k) are caught by the scheduler's check (sched_job.c),
 * which then runs the query WHOLE.
 */
#include "rewrite_join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"
#include "rewrite_internal.h"

#define J_MAX_AGGS 256
#define J_MAX_EDITS 2048
#define J_MAX_PROBES 64

typedef tsr_rewrite_edit_t jedit_t;

typedef struct jw {
    tsr_mem_t *mem;
    const char *sql;
    size_t len;
    const tsr_ast_select_t *q;
    size_t from_start, from_end; /* the FROM clause: first table .. end of the last ON */
    const tsr_ast_expr_t *aggs[J_MAX_AGGS];
    const char *fns[J_MAX_AGGS]; /* "count", "sum", "min", "max", "avg" */
    size_t naggs;
    jedit_t *edits;
    size_t nedits;
    const char *probes[J_MAX_PROBES]; /* names (into the AST) */
    size_t nprobes;
    bool nomem;
    const char *why; /* set when the query stays WHOLE */
} jw_t;

static const char *agg_fn(const tsr_ast_expr_t *e)
{
    return e->kind == TSR_AST_FUNC ? tsr_rewrite_agg_name(e->name) : NULL;
}

static void collect(jw_t *w, const tsr_ast_expr_t *e)
{
    if (!e || w->why)
        return;
    const char *fn = agg_fn(e);
    if (fn) {
        if (e->distinct)
            w->why = "an aggregate with DISTINCT";
        else if (e->nargs != 1 || !e->args || !e->args[0])
            w->why = "an aggregate of an unusual shape";
        else if (w->naggs == J_MAX_AGGS)
            w->why = "too many aggregates";
        else {
            w->aggs[w->naggs] = e;
            w->fns[w->naggs++] = fn;
        }
        return;
    }
    for (size_t i = 0; i < e->nargs && e->args; i++)
        collect(w, e->args[i]);
}

static bool same_text(const jw_t *w, tsr_src_span_t a, tsr_src_span_t b)
{
    return a.len == b.len && memcmp(w->sql + a.offset, w->sql + b.offset, a.len) == 0;
}

/* Index of the select item aliased `name`, or -1. */
static long item_alias(const tsr_ast_select_t *q, const char *name)
{
    for (size_t i = 0; i < q->nitems; i++)
        if (q->items[i].alias && strcasecmp(q->items[i].alias, name) == 0)
            return (long)i;
    return -1;
}

static void add_edit(jw_t *w, size_t off, size_t len, char *text)
{
    if (!text || w->nedits == J_MAX_EDITS) {
        tsr_mem_free(w->mem, text);
        w->nomem |= !text;
        if (text)
            w->why = "too many edits";
        return;
    }
    w->edits[w->nedits++] = (jedit_t){off, len, text};
}

static void add_probe(jw_t *w, const char *name)
{
    for (size_t i = 0; i < w->nprobes; i++)
        if (strcasecmp(w->probes[i], name) == 0)
            return;
    if (w->nprobes == J_MAX_PROBES)
        w->why = "too many ORDER BY aliases";
    else
        w->probes[w->nprobes++] = name;
}

/* `"name"` as an owned string. */
static char *quoted(jw_t *w, const char *s, size_t n)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, w->mem);
    tsr_rewrite_put_quoted(&b, s, n);
    return tsr_rewrite_take(&b);
}

/* ---- aggregates ------------------------------------------------------------- */

/* Rewrites the columns of e outside aggregate calls onto the group columns
 * (see the top). allow_alias: the clause may name select items (ORDER BY). */
static void map_columns(jw_t *w, const tsr_ast_expr_t *e, bool allow_alias)
{
    if (!e || w->why || agg_fn(e))
        return;
    if (e->kind == TSR_AST_COLUMN) {
        const tsr_ast_select_t *q = w->q;
        const tsr_ast_expr_t *g = NULL;
        for (size_t i = 0; i < q->ngroup_by && !g; i++)
            if (strcasecmp(q->group_by[i]->name, e->name) == 0)
                g = q->group_by[i];
        if (g && e->table && g->table && strcasecmp(e->table, g->table) != 0)
            g = NULL; /* same name, another table: not grouped */
        bool alias = !e->table && allow_alias && item_alias(q, e->name) >= 0;
        if (g && alias)
            w->why = "a name that is both a grouped column and a select alias";
        else if (g)
            add_edit(w, e->span.offset, e->span.len, quoted(w, g->name, strlen(g->name)));
        else if (alias)
            add_probe(w, e->name);
        else
            w->why = "a column that is neither grouped nor a select alias";
        return;
    }
    for (size_t i = 0; i < e->nargs && e->args; i++)
        map_columns(w, e->args[i], allow_alias);
}

static char *worker_agg(jw_t *w)
{
    const tsr_ast_select_t *q = w->q;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, w->mem);
    tsr_rewrite_put_text(&b, "SELECT ");
    bool first = true;
    char tmp[64];
    for (size_t i = 0; i < q->ngroup_by; i++) {
        tsr_rewrite_put_text(&b, first ? "" : ", ");
        first = false;
        tsr_rewrite_put_span(&b, w->sql, q->group_by[i]->span); /* no alias: the engine names it */
    }
    for (size_t k = 0; k < w->naggs; k++) {
        const tsr_ast_expr_t *arg = w->aggs[k]->args[0];
        bool avg = strcmp(w->fns[k], "avg") == 0;
        tsr_rewrite_put_text(&b, first ? "" : ", ");
        first = false;
        tsr_rewrite_put_text(&b, avg ? "SUM(" : w->fns[k]);
        tsr_rewrite_put_text(&b, avg ? "" : "(");
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
    tsr_rewrite_put_text(&b, "\nFROM ");
    tsr_wbuf_bytes(&b, w->sql + w->from_start, w->from_end - w->from_start);
    if (q->where) {
        tsr_rewrite_put_text(&b, "\nWHERE (");
        tsr_rewrite_put_span(&b, w->sql, q->where->span);
        tsr_rewrite_put_text(&b, ")");
    }
    for (size_t i = 0; i < q->ngroup_by; i++) {
        tsr_rewrite_put_text(&b, i == 0 ? "\nGROUP BY " : ", ");
        tsr_rewrite_put_span(&b, w->sql, q->group_by[i]->span);
    }
    return tsr_rewrite_take(&b);
}

/* The original text with w->edits applied (NULL: overlapping edits). */
static char *apply_edits(jw_t *w)
{
    qsort(w->edits, w->nedits, sizeof(*w->edits), tsr_rewrite_edit_cmp);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, w->mem);
    size_t pos = 0;
    for (size_t i = 0; i < w->nedits; i++) {
        const jedit_t *e = &w->edits[i];
        if (e->offset < pos || e->offset + e->len > w->len) {
            tsr_wbuf_free(&b);
            w->why = "overlapping edits"; /* a parser shape this code does not know */
            return NULL;
        }
        tsr_wbuf_bytes(&b, w->sql + pos, e->offset - pos);
        tsr_rewrite_put_text(&b, e->text);
        pos = e->offset + e->len;
    }
    tsr_wbuf_bytes(&b, w->sql + pos, w->len - pos);
    char *s = tsr_rewrite_take(&b);
    w->nomem |= !s;
    return s;
}

static char *final_agg(jw_t *w)
{
    const tsr_ast_select_t *q = w->q;
    char tmp[160];
    add_edit(w, w->from_start, w->from_end - w->from_start, tsr_mem_strdup(w->mem, "tsr__part"));
    for (size_t k = 0; k < w->naggs && !w->why; k++) {
        if (strcmp(w->fns[k], "avg") == 0)
            snprintf(tmp, sizeof(tmp), "(SUM(tsr__p%zus) * 1.0 / SUM(tsr__p%zuc))", k, k);
        else
            snprintf(tmp, sizeof(tmp), "%s(tsr__p%zu)",
                     strcmp(w->fns[k], "count") == 0 ? "SUM" : w->fns[k], k);
        add_edit(w, w->aggs[k]->span.offset, w->aggs[k]->span.len, tsr_mem_strdup(w->mem, tmp));
    }
    if (q->where)
        add_edit(w, q->where->span.offset, q->where->span.len, tsr_mem_strdup(w->mem, "TRUE"));
    for (size_t i = 0; i < q->nitems; i++) {
        map_columns(w, q->items[i].expr, false);
        const tsr_ast_expr_t *e = q->items[i].expr;
        if (!q->items[i].alias && e->kind != TSR_AST_COLUMN) {
            tsr_wbuf_t b;
            tsr_wbuf_init(&b, w->mem);
            tsr_rewrite_put_text(&b, " AS ");
            tsr_rewrite_put_quoted(&b, w->sql + e->span.offset, e->span.len);
            add_edit(w, e->span.offset + e->span.len, 0, tsr_rewrite_take(&b));
        }
    }
    for (size_t i = 0; i < q->ngroup_by; i++)
        map_columns(w, q->group_by[i], false);
    map_columns(w, q->having, false);
    for (size_t i = 0; i < q->norder_by; i++)
        if (q->order_by[i].expr->kind != TSR_AST_INT) /* ORDER BY 2: an ordinal */
            map_columns(w, q->order_by[i].expr, true);
    if (w->why || w->nomem)
        return NULL;
    return apply_edits(w);
}

/* ---- rows ------------------------------------------------------------------- */

/* The merge's name for item i: its own column name, or tsr__c<i>. */
static void put_item_ref(tsr_wbuf_t *b, const tsr_ast_select_item_t *it, size_t i)
{
    if (it->expr->kind == TSR_AST_COLUMN && !it->alias) {
        tsr_rewrite_put_quoted(b, it->expr->name, strlen(it->expr->name));
    } else {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "tsr__c%zu", i);
        tsr_rewrite_put_text(b, tmp);
    }
}

static void scan_sql(jw_t *w, char **worker, char **final)
{
    const tsr_ast_select_t *q = w->q;
    bool star = q->items[0].expr->kind == TSR_AST_STAR;
    tsr_wbuf_t wb, fb, ob;
    tsr_wbuf_init(&wb, w->mem);
    tsr_wbuf_init(&fb, w->mem);
    tsr_wbuf_init(&ob, w->mem);
    char tmp[64];
    tsr_rewrite_put_text(&wb, "SELECT ");
    tsr_rewrite_put_text(&fb, q->distinct ? "SELECT DISTINCT " : "SELECT ");
    for (size_t i = 0; i < q->nitems; i++) {
        const tsr_ast_select_item_t *it = &q->items[i];
        tsr_rewrite_put_text(&wb, i ? ", " : "");
        tsr_rewrite_put_text(&fb, i ? ", " : "");
        if (star) {
            tsr_rewrite_put_span(&wb, w->sql, it->expr->span); /* * or t.* */
            tsr_rewrite_put_text(&fb, "*");
            continue;
        }
        tsr_rewrite_put_span(&wb, w->sql, it->expr->span);
        if (it->expr->kind == TSR_AST_COLUMN && !it->alias) {
            put_item_ref(&fb, it, i);
            continue;
        }
        snprintf(tmp, sizeof(tmp), " AS tsr__c%zu", i);
        tsr_rewrite_put_text(&wb, tmp);
        put_item_ref(&fb, it, i);
        tsr_rewrite_put_text(&fb, " AS ");
        if (it->alias)
            tsr_rewrite_put_quoted(&fb, it->alias, strlen(it->alias));
        else
            tsr_rewrite_put_quoted(&fb, w->sql + it->expr->span.offset, it->expr->span.len);
    }
    size_t extra = 0;
    for (size_t o = 0; o < q->norder_by && !w->why; o++) {
        const tsr_ast_expr_t *e = q->order_by[o].expr;
        tsr_rewrite_put_text(&ob, o ? ", " : "\nORDER BY ");
        long hit = -1;
        if (e->kind == TSR_AST_INT) {
            tsr_rewrite_put_span(&ob, w->sql,
                                 e->span); /* an ordinal: the merge has the same items */
        } else if (star) {
            if (e->kind != TSR_AST_COLUMN) {
                w->why = "SELECT * ordered by an expression";
                break;
            }
            tsr_rewrite_put_quoted(&ob, e->name, strlen(e->name)); /* names unique: checked */
        } else {
            for (size_t i = 0; i < q->nitems && hit < 0; i++)
                if (same_text(w, q->items[i].expr->span, e->span))
                    hit = (long)i;
            if (hit < 0 && e->kind == TSR_AST_COLUMN && !e->table &&
                (hit = item_alias(q, e->name)) >= 0)
                add_probe(w, e->name);
            if (hit >= 0) {
                put_item_ref(&ob, &q->items[hit], (size_t)hit);
            } else if (q->distinct) {
                w->why = "DISTINCT ordered by an expression not selected";
                break;
            } else {
                tsr_rewrite_put_text(&wb, ", ");
                tsr_rewrite_put_span(&wb, w->sql, e->span);
                snprintf(tmp, sizeof(tmp), " AS tsr__o%zu", extra);
                tsr_rewrite_put_text(&wb, tmp);
                snprintf(tmp, sizeof(tmp), "tsr__o%zu", extra++);
                tsr_rewrite_put_text(&ob, tmp);
            }
        }
        if (q->order_by[o].desc)
            tsr_rewrite_put_text(&ob, " DESC");
    }
    tsr_rewrite_put_text(&wb, "\nFROM ");
    tsr_wbuf_bytes(&wb, w->sql + w->from_start, w->from_end - w->from_start);
    if (q->where) {
        tsr_rewrite_put_text(&wb, "\nWHERE (");
        tsr_rewrite_put_span(&wb, w->sql, q->where->span);
        tsr_rewrite_put_text(&wb, ")");
    }
    if (q->limit >= 0 && q->norder_by == 0 && !q->distinct && q->offset >= 0 &&
        q->limit <= INT64_MAX - q->offset) {
        snprintf(tmp, sizeof(tmp), "\nLIMIT %lld", (long long)(q->limit + q->offset));
        tsr_rewrite_put_text(&wb, tmp);
    }
    tsr_rewrite_put_text(&fb, "\nFROM tsr__part");
    tsr_wbuf_bytes(&fb, ob.data, ob.len);
    if (q->limit >= 0) {
        snprintf(tmp, sizeof(tmp), "\nLIMIT %lld", (long long)q->limit);
        tsr_rewrite_put_text(&fb, tmp);
        if (q->offset > 0) {
            snprintf(tmp, sizeof(tmp), " OFFSET %lld", (long long)q->offset);
            tsr_rewrite_put_text(&fb, tmp);
        }
    }
    tsr_wbuf_free(&ob);
    *worker = tsr_rewrite_take(&wb);
    *final = tsr_rewrite_take(&fb);
    w->nomem |= !*worker || !*final;
}

/* ---- the plan --------------------------------------------------------------- */

/* Every column name the query reads, of any table (a superset of the split
 * table's is harmless: INFER only parses what the file has); "*" with a
 * star item. */
static char *columns(jw_t *w)
{
    const tsr_ast_select_t *q = w->q;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, w->mem);
    bool ok = tsr_rewrite_list_columns(&b, q->where) && tsr_rewrite_list_columns(&b, q->having);
    for (size_t i = 0; ok && i < q->nitems; i++)
        ok = q->items[i].expr->kind != TSR_AST_STAR &&
             tsr_rewrite_list_columns(&b, q->items[i].expr);
    for (size_t i = 0; ok && i < q->ngroup_by; i++)
        ok = tsr_rewrite_list_columns(&b, q->group_by[i]);
    for (size_t i = 0; ok && i < q->norder_by; i++)
        ok = tsr_rewrite_list_columns(&b, q->order_by[i].expr);
    for (size_t i = 0; ok && i < q->njoins; i++)
        ok = tsr_rewrite_list_columns(&b, q->joins[i].on);
    if (!ok || b.len == 0) {
        tsr_wbuf_free(&b);
        return tsr_mem_strdup(w->mem, ok ? "" : "*");
    }
    b.len--; /* the last ',' */
    return tsr_rewrite_take(&b);
}

static const char *check_shape(jw_t *w)
{
    const tsr_ast_select_t *q = w->q;
    for (size_t i = 0; i <= q->njoins; i++) {
        const char *name = i == 0 ? q->from.table : q->joins[i - 1].table.table;
        if (!name || strncasecmp(name, "tsr__", 5) == 0)
            return "a table named tsr__*";
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(name, k == 0 ? q->from.table : q->joins[k - 1].table.table) == 0)
                return "a table joined with itself";
        if (i > 0 && (!q->joins[i - 1].on || tsr_rewrite_has_agg(q->joins[i - 1].on)))
            return "an aggregate in ON";
    }
    if (tsr_rewrite_has_agg(q->where))
        return "an aggregate in WHERE"; /* an error: the binder reports it */
    for (size_t i = 0; i < q->nitems; i++)
        collect(w, q->items[i].expr);
    collect(w, q->having);
    for (size_t i = 0; i < q->norder_by; i++)
        collect(w, q->order_by[i].expr);
    if (w->why)
        return w->why;
    bool agg = w->naggs > 0 || q->ngroup_by > 0 || q->having;
    for (size_t i = 0; i < q->nitems; i++)
        if (q->items[i].expr->kind == TSR_AST_STAR && (agg || q->nitems > 1))
            return agg ? "SELECT * with aggregates" : "SELECT * with other items";
    if (agg && w->naggs == 0 && q->ngroup_by == 0)
        return "HAVING without aggregates";
    for (size_t i = 0; i < q->ngroup_by; i++) {
        const tsr_ast_expr_t *g = q->group_by[i];
        if (g->kind != TSR_AST_COLUMN || !g->name)
            return "GROUP BY on an expression";
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(q->group_by[k]->name, g->name) == 0)
                return "GROUP BY columns of one name";
    }
    return NULL;
}

/* One probe per ORDER BY alias: SELECT "name" FROM <the FROM clause> LIMIT 0
 * binds exactly when an input column of that name wins over the alias. */
static bool make_probes(jw_t *w, tsr_dplan_t *out)
{
    if (w->nprobes == 0)
        return true;
    out->probes = tsr_mem_calloc(w->mem, w->nprobes, sizeof(char *));
    if (!out->probes)
        return false;
    out->nprobes = w->nprobes;
    for (size_t i = 0; i < w->nprobes; i++) {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, w->mem);
        tsr_rewrite_put_text(&b, "SELECT ");
        tsr_rewrite_put_quoted(&b, w->probes[i], strlen(w->probes[i]));
        tsr_rewrite_put_text(&b, " FROM ");
        tsr_wbuf_bytes(&b, w->sql + w->from_start, w->from_end - w->from_start);
        tsr_rewrite_put_text(&b, " LIMIT 0");
        if (!(out->probes[i] = tsr_rewrite_take(&b)))
            return false;
    }
    return true;
}

void tsr_rewrite_join(tsr_mem_t *mem, const char *sql, size_t len, const tsr_ast_select_t *q,
                      tsr_dplan_t *out)
{
    jw_t *w = tsr_mem_calloc(mem, 1, sizeof(*w));
    jedit_t *edits = tsr_mem_calloc(mem, J_MAX_EDITS, sizeof(*edits));
    out->kind = TSR_DPLAN_WHOLE;
    if (!w || !edits) {
        out->why = "the rewrite failed";
        goto done;
    }
    w->mem = mem;
    w->sql = sql;
    w->len = len;
    w->q = q;
    w->edits = edits;
    const tsr_ast_expr_t *last_on = q->joins[q->njoins - 1].on;
    w->from_start = q->from.span.offset;
    w->from_end = last_on ? last_on->span.offset + last_on->span.len : w->from_start;
    if ((out->why = check_shape(w)) != NULL)
        goto done;
    out->join_agg = w->naggs > 0 || q->ngroup_by > 0 || q->having;
    if (out->join_agg) {
        out->worker_sql = worker_agg(w);
        out->final_sql = final_agg(w);
    } else {
        scan_sql(w, &out->worker_sql, &out->final_sql);
    }
    if (w->why) {
        out->why = w->why;
        tsr_rewrite_free(mem, out);
        goto done;
    }
    out->ntables = q->njoins + 1;
    out->tables = tsr_mem_calloc(mem, out->ntables, sizeof(char *));
    for (size_t i = 0; out->tables && i < out->ntables; i++)
        w->nomem |= !(out->tables[i] = tsr_mem_strdup(mem, i == 0 ? q->from.table
                                                                  : q->joins[i - 1].table.table));
    out->part = tsr_mem_strdup(mem, "tsr__part");
    out->columns = columns(w);
    if (w->nomem || !out->tables || !out->part || !out->columns || !out->worker_sql ||
        !out->final_sql || !make_probes(w, out)) {
        tsr_rewrite_free(mem, out);
        out->why = "the rewrite failed";
        goto done;
    }
    out->kind = TSR_DPLAN_JOIN;
done:
    for (size_t i = 0; w && i < w->nedits; i++)
        tsr_mem_free(mem, w->edits[i].text);
    tsr_mem_free(mem, edits);
    tsr_mem_free(mem, w);
}
