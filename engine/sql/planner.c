/*
 * planner.c - from a bound SELECT to the physical plan (see planner.h).
 *
 * Order of work. FROM is resolved first (tables, aliases, global column ids);
 * then every clause is bound (binder.c): ON clauses, WHERE, and either GROUP
 * BY + select list + HAVING in grouped space, or the select list in rows
 * space; then ORDER BY. Binding marks the columns the query uses, so scans
 * read only those. Only then is the tree built, bottom-up. From the root
 * down (all but PROJECT and the joins optional):
 *
 *   PROJECT    the visible columns: only when ORDER BY added hidden ones
 *   LIMIT      LIMIT / OFFSET
 *   SORT       ORDER BY, over the PROJECT's columns
 *   AGGREGATE  DISTINCT: every column a key, no aggregates
 *   PROJECT    the select list, then hidden ORDER BY columns
 *   FILTER     HAVING
 *   AGGREGATE  GROUP BY keys and the query's distinct aggregates
 *   joins      HASH_JOIN(child = tables so far, right = next table),
 *              left-deep in FROM order; each table a SCAN, under a FILTER
 *              of the conditions that only mention that table
 *
 * Conditions. WHERE and every ON clause are split into AND-conjuncts, and
 * each goes as low as the tables it mentions allow (inner joins only, so an
 * ON condition and a WHERE condition mean the same): one table -> a FILTER
 * over its SCAN; several -> the join that brings in the last of them, as an
 * equi-key when it is `left-side expr = right-table expr`, else as the join's
 * residual; none (a constant) -> a FILTER over the first table (dropped when
 * it is TRUE). A join with no equi-key at all is refused (no nested-loop join).
 *
 * Layouts. A rows-space expression (global ids, binder.h) is copied into the
 * positions of the relation it runs over: table i's scan holds its used
 * columns in table order; a join's output is its left input's columns then
 * the right table's. So global id g of table t sits at
 *   prefix[t] - prefix[first] + rank[g]
 * in a relation made of tables first..t (prefix = used columns of earlier
 * tables, rank = position among t's used columns).
 *
 * The tree is built in planner_build.c (planner_int.h holds the shared state).
 *
 * SELECT without FROM is refused (TSR_ERR_UNSUPPORTED): a plan cannot own a
 * one-row table, and no plan node produces rows from nothing.
 */
#include "sql/planner.h"

#include <string.h>
#include <strings.h>

#include "sql/binder.h"
#include "sql/planner_int.h"

/* Makes room for one more element in an arena array of *cap elements. */
static bool grow(planner_t *p, void **arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? 2 * *cap : 8;
    void *a = tsr_binder_alloc(&p->b, ncap, elem);
    if (!a)
        return false;
    if (n)
        memcpy(a, *arr, n * elem);
    *arr = a;
    *cap = ncap;
    return true;
}

/* ---- FROM ----------------------------------------------------------------- */

static tsr_status_t resolve_from(planner_t *p)
{
    tsr_binder_t *b = &p->b;
    const tsr_ast_select_t *ast = p->ast;
    b->ntables = 1 + ast->njoins;
    if (ast->njoins && !ast->joins)
        return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
    if (!(b->tables = tsr_binder_alloc(b, b->ntables, sizeof(*b->tables))))
        return TSR_ERR_NOMEM;
    size_t ncols = 0;
    for (size_t i = 0; i < b->ntables; i++) {
        const tsr_ast_table_ref_t *ref = i == 0 ? &ast->from : &ast->joins[i - 1].table;
        if (!ref->table)
            return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
        const tsr_table_t *t = tsr_catalog_find(p->catalog, ref->table);
        if (!t) {
            tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_NOT_FOUND, ref->span,
                                                 "unknown table '%s'", ref->table);
            tsr_suggest_t s;
            tsr_suggest_init(&s, ref->table);
            for (size_t k = 0; k < p->catalog->ntables; k++)
                tsr_suggest_add(&s, p->catalog->tables[k]->name);
            if (s.best)
                tsr_binder_hint(b, "did you mean '%s'?", s.best);
            return rc;
        }
        tsr_bind_table_t *bt = &b->tables[i];
        bt->table = t;
        bt->has_alias = ref->alias != NULL;
        bt->name = ref->alias ? ref->alias : ref->table;
        bt->span = ref->span;
        bt->base = ncols;
        ncols += t->ncols;
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(b->tables[j].name, bt->name) == 0) {
                tsr_status_t rc =
                    tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, ref->span,
                                       "table name '%s' is used more than once in FROM", bt->name);
                tsr_binder_hint(b, "give it a different alias, e.g. %s AS %s2", ref->table,
                                bt->name);
                return rc;
            }
        }
    }
    b->ncols = ncols;
    b->col_table = tsr_binder_alloc(b, ncols, sizeof(*b->col_table));
    b->used = tsr_binder_alloc(b, ncols, sizeof(*b->used));
    p->rank = tsr_binder_alloc(b, ncols, sizeof(*p->rank));
    p->prefix = tsr_binder_alloc(b, b->ntables + 1, sizeof(*p->prefix));
    if (!b->col_table || !b->used || !p->rank || !p->prefix)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < b->ntables; i++)
        for (size_t c = 0; c < b->tables[i].table->ncols; c++)
            b->col_table[b->tables[i].base + c] = i;
    return TSR_OK;
}

/* ---- select list ----------------------------------------------------------- */

/* Appends table t's columns as qualified synthetic COLUMN items at span. */
static tsr_status_t expand_star(planner_t *p, size_t t, tsr_src_span_t span, size_t *n)
{
    tsr_binder_t *b = &p->b;
    const tsr_table_t *tab = b->tables[t].table;
    for (size_t c = 0; c < tab->ncols; c++) {
        tsr_ast_expr_t *col = tsr_binder_alloc(b, 1, sizeof(*col));
        if (!col)
            return TSR_ERR_NOMEM;
        col->kind = TSR_AST_COLUMN;
        col->span = span;
        col->table = (char *)b->tables[t].name;
        col->name = tab->fields[c].name;
        p->items[*n].ast = col;
        p->items[*n].name = tab->fields[c].name;
        (*n)++;
    }
    return TSR_OK;
}

static tsr_status_t expand_items(planner_t *p)
{
    tsr_binder_t *b = &p->b;
    const tsr_ast_select_t *ast = p->ast;
    size_t n = 0;
    if (ast->nitems && !ast->items)
        return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
    for (size_t i = 0; i < ast->nitems; i++) { /* count, resolving t.* */
        const tsr_ast_expr_t *e = ast->items[i].expr;
        if (!e)
            return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
        if (e->kind != TSR_AST_STAR) {
            n++;
        } else if (!e->table) {
            n += b->ncols;
        } else {
            size_t t;
            tsr_status_t rc = tsr_binder_find_table(b, b->ntables, e->table, e->span, &t);
            if (rc != TSR_OK)
                return rc;
            n += b->tables[t].table->ncols;
        }
    }
    if (!(p->items = tsr_binder_alloc(b, n, sizeof(*p->items))))
        return TSR_ERR_NOMEM;
    n = 0;
    for (size_t i = 0; i < ast->nitems; i++) {
        const tsr_ast_select_item_t *it = &ast->items[i];
        const tsr_ast_expr_t *e = it->expr;
        tsr_status_t rc = TSR_OK;
        if (e->kind == TSR_AST_STAR && !e->table) {
            for (size_t t = 0; rc == TSR_OK && t < b->ntables; t++)
                rc = expand_star(p, t, e->span, &n);
        } else if (e->kind == TSR_AST_STAR) {
            size_t t = 0;
            rc = tsr_binder_find_table(b, b->ntables, e->table, e->span, &t);
            if (rc == TSR_OK)
                rc = expand_star(p, t, e->span, &n);
        } else {
            tsr_bind_item_t *bi = &p->items[n++];
            size_t gid;
            bi->ast = e;
            bi->alias = it->alias;
            if (it->alias) {
                bi->name = it->alias;
            } else if (tsr_binder_lookup_column(b, b->ntables, e, &gid)) {
                const tsr_bind_table_t *bt = &b->tables[b->col_table[gid]];
                bi->name = bt->table->fields[gid - bt->base].name;
            } else if (!(bi->name = tsr_binder_span_text(b, e->span))) {
                rc = TSR_ERR_NOMEM;
            }
        }
        if (rc != TSR_OK)
            return rc;
    }
    p->nitems = n;
    b->items = p->items;
    b->nitems = n;
    return TSR_OK;
}

/* Appends a PROJECT column. */
static tsr_status_t add_sel(planner_t *p, tsr_expr_t *e, char *name)
{
    size_t cap = p->sel_cap;
    if (!grow(p, (void **)&p->sel, p->nsel, &p->sel_cap, sizeof(*p->sel)))
        return TSR_ERR_NOMEM;
    if (cap != p->sel_cap) { /* names grow alongside */
        char **names = tsr_binder_alloc(&p->b, p->sel_cap, sizeof(*names));
        if (!names)
            return TSR_ERR_NOMEM;
        if (p->nsel)
            memcpy(names, p->sel_names, p->nsel * sizeof(*names));
        p->sel_names = names;
    }
    p->sel[p->nsel] = e;
    p->sel_names[p->nsel++] = name;
    return TSR_OK;
}

/* ---- conditions ------------------------------------------------------------ */

/* Binds a condition (WHERE, ON, HAVING) and checks it is BOOLEAN; a NULL
 * literal counts as a BOOLEAN NULL. */
static tsr_status_t bind_condition(planner_t *p, const tsr_bind_scope_t *sc,
                                   const tsr_ast_expr_t *a, const char *what, tsr_expr_t **out)
{
    tsr_status_t rc = tsr_binder_expr(&p->b, sc, a, out);
    if (rc != TSR_OK)
        return rc;
    if ((*out)->type == TSR_TYPE_NULL) {
        tsr_expr_t *e = tsr_binder_alloc(&p->b, 1, sizeof(*e));
        if (!e)
            return TSR_ERR_NOMEM;
        e->kind = TSR_EXPR_CONST;
        e->type = e->value.type = TSR_TYPE_BOOL;
        e->value.is_null = true;
        *out = e;
    } else if ((*out)->type != TSR_TYPE_BOOL) {
        return tsr_binder_fail_at(&p->b, TSR_ERR_TYPE, a->span,
                                  "%s needs a boolean expression, found %s", what,
                                  tsr_type_name((*out)->type));
    }
    return TSR_OK;
}

static tsr_status_t add_conjuncts(planner_t *p, tsr_expr_t *e)
{
    if (e->kind == TSR_EXPR_BINARY && e->op == TSR_OP_AND) {
        tsr_status_t rc = add_conjuncts(p, e->args[0]);
        return rc != TSR_OK ? rc : add_conjuncts(p, e->args[1]);
    }
    if (!grow(p, (void **)&p->conj, p->nconj, &p->conj_cap, sizeof(*p->conj)))
        return TSR_ERR_NOMEM;
    p->conj[p->nconj++].e = e;
    return TSR_OK;
}

static tsr_status_t bind_conditions(planner_t *p)
{
    const tsr_ast_select_t *ast = p->ast;
    tsr_status_t rc = TSR_OK;
    for (size_t j = 0; rc == TSR_OK && j < ast->njoins; j++) {
        tsr_bind_scope_t sc = {.nvisible = j + 2, .clause = "JOIN ... ON"};
        tsr_expr_t *e;
        if (!ast->joins[j].on)
            return tsr_error_set(p->b.err, TSR_ERR_INTERNAL, "malformed syntax tree");
        rc = bind_condition(p, &sc, ast->joins[j].on, "JOIN ... ON", &e);
        if (rc == TSR_OK)
            rc = add_conjuncts(p, e);
    }
    if (rc == TSR_OK && ast->where) {
        tsr_bind_scope_t sc = {.nvisible = p->b.ntables, .clause = "WHERE"};
        tsr_expr_t *e;
        rc = bind_condition(p, &sc, ast->where, "WHERE", &e);
        if (rc == TSR_OK)
            rc = add_conjuncts(p, e);
    }
    return rc;
}

/* ---- GROUP BY, select list, HAVING ------------------------------------------ */

static bool query_has_agg(planner_t *p)
{
    const tsr_ast_select_t *ast = p->ast;
    if (ast->ngroup_by || ast->having)
        return true;
    tsr_bind_scope_t sc = {.nvisible = p->b.ntables};
    for (size_t i = 0; i < p->nitems; i++)
        if (tsr_binder_has_agg(&p->b, &sc, p->items[i].ast))
            return true;
    sc.allow_alias = true;
    for (size_t i = 0; i < ast->norder_by; i++)
        if (ast->order_by && tsr_binder_has_agg(&p->b, &sc, ast->order_by[i].expr))
            return true;
    return false;
}

static tsr_status_t bind_group_by(planner_t *p)
{
    tsr_binder_t *b = &p->b;
    const tsr_ast_select_t *ast = p->ast;
    if (ast->ngroup_by && !ast->group_by)
        return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
    for (size_t i = 0; i < ast->ngroup_by; i++) {
        const tsr_ast_expr_t *g = ast->group_by[i];
        tsr_bind_scope_t sc = {.nvisible = b->ntables, .allow_alias = true, .clause = "GROUP BY"};
        const tsr_ast_expr_t *src = g;
        char *name = NULL;
        if (!g)
            return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
        if (g->kind == TSR_AST_INT) { /* GROUP BY 2: the second select item */
            if (g->ival < 1 || (uint64_t)g->ival > p->nitems) {
                tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, g->span,
                                                     "GROUP BY position %lld is not in select list",
                                                     (long long)g->ival);
                tsr_binder_hint(b, "the select list has %zu column%s", p->nitems,
                                p->nitems == 1 ? "" : "s");
                return rc;
            }
            src = p->items[g->ival - 1].ast;
            name = (char *)p->items[g->ival - 1].name;
            sc.allow_alias = false;
        } else if (!(name = tsr_binder_span_text(b, g->span))) {
            return TSR_ERR_NOMEM;
        }
        tsr_expr_t *key;
        tsr_status_t rc = tsr_binder_expr(b, &sc, src, &key);
        if (rc != TSR_OK)
            return rc;
        if (!(key = tsr_binder_materialize(b, key)))
            return TSR_ERR_NOMEM;
        bool dup = !tsr_binder_has_columns(key); /* a constant splits no group */
        for (size_t k = 0; k < b->nkeys && !dup; k++)
            dup = tsr_binder_expr_equal(b->keys[k], key);
        if (dup)
            continue;
        size_t cap = b->keys_cap;
        if (!grow(p, (void **)&b->keys, b->nkeys, &b->keys_cap, sizeof(*b->keys)))
            return TSR_ERR_NOMEM;
        if (cap != b->keys_cap) {
            char **names = tsr_binder_alloc(b, b->keys_cap, sizeof(*names));
            if (!names)
                return TSR_ERR_NOMEM;
            if (b->nkeys)
                memcpy(names, b->key_names, b->nkeys * sizeof(*names));
            b->key_names = names;
        }
        b->keys[b->nkeys] = key;
        b->key_names[b->nkeys++] = name;
    }
    /* GROUP BY only constants: still grouped (no rows in, no rows out, unlike
     * an aggregate without GROUP BY), so keep one key, a BIGINT constant,
     * which select items cannot match by accident (theirs are not keys) */
    if (ast->ngroup_by && b->nkeys == 0) {
        if (!(b->keys = tsr_binder_alloc(b, 1, sizeof(*b->keys))) ||
            !(b->key_names = tsr_binder_alloc(b, 1, sizeof(*b->key_names))) ||
            !(b->keys[0] = tsr_binder_mk_const(b, TSR_TYPE_INT64)))
            return TSR_ERR_NOMEM;
        b->key_names[0] = "?group?";
        b->keys_cap = b->nkeys = 1;
    }
    return TSR_OK;
}

static tsr_status_t bind_select(planner_t *p)
{
    tsr_bind_scope_t sc = {.nvisible = p->b.ntables, .grouped = p->grouped, .clause = "SELECT"};
    for (size_t i = 0; i < p->nitems; i++) {
        tsr_expr_t *e;
        tsr_status_t rc = tsr_binder_expr(&p->b, &sc, p->items[i].ast, &e);
        if (rc != TSR_OK)
            return rc;
        if (!(e = tsr_binder_materialize(&p->b, e)))
            return TSR_ERR_NOMEM;
        if ((rc = add_sel(p, e, (char *)p->items[i].name)) != TSR_OK)
            return rc;
    }
    if (p->ast->having) {
        sc.clause = "HAVING";
        return bind_condition(p, &sc, p->ast->having, "HAVING", &p->having);
    }
    return TSR_OK;
}

/* ---- ORDER BY -------------------------------------------------------------- */

/* The PROJECT column an ORDER BY term sorts on (SIZE_MAX: a constant, which
 * does not change the order), adding a hidden column when needed. */
static tsr_status_t order_column(planner_t *p, const tsr_ast_expr_t *a, size_t *col)
{
    tsr_binder_t *b = &p->b;
    *col = SIZE_MAX;
    if (a->kind == TSR_AST_INT) { /* ORDER BY 2 */
        if (a->ival < 1 || (uint64_t)a->ival > p->nitems) {
            tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, a->span,
                                                 "ORDER BY position %lld is not in select list",
                                                 (long long)a->ival);
            tsr_binder_hint(b, "the select list has %zu column%s", p->nitems,
                            p->nitems == 1 ? "" : "s");
            return rc;
        }
        *col = (size_t)a->ival - 1;
        return TSR_OK;
    }
    if (a->kind == TSR_AST_COLUMN && !a->table && a->name) { /* an output column's name */
        for (size_t i = 0; i < p->nitems; i++) {
            if (strcasecmp(p->items[i].name, a->name) != 0)
                continue;
            if (*col == SIZE_MAX) {
                *col = i;
            } else if (!tsr_binder_expr_equal(p->sel[*col], p->sel[i])) {
                tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, a->span,
                                                     "ORDER BY '%s' is ambiguous", a->name);
                tsr_binder_hint(
                    b, "several select items are named '%s'; use a position, e.g. ORDER BY %zu",
                    a->name, *col + 1);
                return rc;
            }
        }
        if (*col != SIZE_MAX)
            return TSR_OK;
    }
    tsr_bind_scope_t sc = {
        .nvisible = b->ntables, .grouped = p->grouped, .allow_alias = true, .clause = "ORDER BY"};
    tsr_expr_t *e;
    tsr_status_t rc = tsr_binder_expr(b, &sc, a, &e);
    if (rc != TSR_OK)
        return rc;
    if (!(e = tsr_binder_materialize(b, e)))
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < p->nsel; i++) { /* select items, then hidden columns */
        if (tsr_binder_expr_equal(e, p->sel[i])) {
            *col = i;
            return TSR_OK;
        }
    }
    if (!tsr_binder_has_columns(e))
        return TSR_OK;
    if (p->ast->distinct) {
        rc = tsr_binder_fail_at(
            b, TSR_ERR_INVALID_ARG, a->span,
            "for SELECT DISTINCT, ORDER BY expressions must appear in the select list");
        tsr_binder_hint(b, "add it to the select list");
        return rc;
    }
    char *name = tsr_binder_span_text(b, a->span);
    if (!name)
        return TSR_ERR_NOMEM;
    *col = p->nsel;
    return add_sel(p, e, name);
}

static tsr_status_t bind_order_by(planner_t *p)
{
    const tsr_ast_select_t *ast = p->ast;
    if (!ast->norder_by)
        return TSR_OK;
    if (!ast->order_by)
        return tsr_error_set(p->b.err, TSR_ERR_INTERNAL, "malformed syntax tree");
    if (!(p->sort = tsr_binder_alloc(&p->b, ast->norder_by, sizeof(*p->sort))))
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < ast->norder_by; i++) {
        size_t col;
        if (!ast->order_by[i].expr)
            return tsr_error_set(p->b.err, TSR_ERR_INTERNAL, "malformed syntax tree");
        tsr_status_t rc = order_column(p, ast->order_by[i].expr, &col);
        if (rc != TSR_OK)
            return rc;
        bool seen = col == SIZE_MAX; /* constants and repeats add nothing */
        for (size_t k = 0; k < p->nsort && !seen; k++)
            seen = p->sort[k].column == col;
        if (!seen) {
            p->sort[p->nsort].column = col;
            p->sort[p->nsort++].desc = ast->order_by[i].desc;
        }
    }
    return TSR_OK;
}

/* Loads the columns the scans of plan n read from lazy catalog tables (a CSV
 * file registered for projection pushdown parses only these); *changed when a
 * loaded column's type is not the one it was bound with (CSV widening). */
static tsr_status_t load_scans(const tsr_catalog_t *cat, const tsr_plan_t *n, bool *changed,
                               tsr_error_t *err)
{
    if (!n)
        return TSR_OK;
    if (n->kind == TSR_PLAN_SCAN && n->table && n->table->lazy) {
        tsr_table_t *t = NULL; /* the catalog's own, mutable, pointer */
        for (size_t i = 0; i < cat->ntables && !t; i++)
            if (cat->tables[i] == n->table)
                t = cat->tables[i];
        if (!t)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "scan of a table not in the catalog");
        bool *need = tsr_mem_calloc(t->mem, t->ncols ? t->ncols : 1, sizeof(bool));
        if (!need)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < n->ncols; k++)
            need[n->col_ids[k]] = true;
        tsr_status_t rc = tsr_table_load_columns_cancel(t, need, cat->cancel, err);
        tsr_mem_free(t->mem, need);
        if (rc != TSR_OK)
            return rc;
        for (size_t k = 0; k < n->ncols; k++)
            *changed |= t->fields[n->col_ids[k]].type != n->types[k];
    }
    tsr_status_t rc = load_scans(cat, n->child, changed, err);
    return rc == TSR_OK ? load_scans(cat, n->right, changed, err) : rc;
}

static tsr_status_t plan_once(tsr_arena_t *arena, const tsr_catalog_t *catalog, const char *sql,
                              const tsr_ast_select_t *ast, tsr_plan_t **out, tsr_error_t *err);

tsr_status_t tsr_sql_plan(tsr_arena_t *arena, const tsr_catalog_t *catalog, const char *sql,
                          const tsr_ast_select_t *ast, tsr_plan_t **out, tsr_error_t *err)
{
    if (!arena || !catalog || !ast || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "tsr_sql_plan: missing argument");
    tsr_plan_t *plan = NULL;
    tsr_status_t rc = plan_once(arena, catalog, sql, ast, &plan, err);
    bool changed = false;
    if (rc == TSR_OK)
        rc = load_scans(catalog, plan, &changed, err);
    /* a column's type widened as it loaded: bind again with the final types
     * (the columns read are the same, so nothing more loads) */
    if (rc == TSR_OK && changed)
        rc = plan_once(arena, catalog, sql, ast, &plan, err);
    if (rc == TSR_OK)
        *out = plan;
    return rc;
}

static tsr_status_t plan_once(tsr_arena_t *arena, const tsr_catalog_t *catalog, const char *sql,
                              const tsr_ast_select_t *ast, tsr_plan_t **out, tsr_error_t *err)
{
    planner_t p;
    memset(&p, 0, sizeof(p));
    p.b.arena = arena;
    p.b.sql = sql;
    p.b.sql_len = sql ? strlen(sql) : 0;
    p.b.err = err;
    p.ast = ast;
    p.catalog = catalog;
    if (!ast->has_from) {
        tsr_src_span_t at = {.line = 1, .column = 1};
        if (ast->nitems && ast->items && ast->items[0].expr)
            at = ast->items[0].expr->span;
        tsr_status_t rc = tsr_binder_fail_at(&p.b, TSR_ERR_UNSUPPORTED, at,
                                             "SELECT without FROM is not supported yet");
        tsr_binder_hint(&p.b, "select from a table, e.g. SELECT 1 + 1 FROM t LIMIT 1");
        return rc;
    }
    if (ast->offset < 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "OFFSET must not be negative");
    tsr_status_t rc = resolve_from(&p);
    if (rc == TSR_OK)
        rc = expand_items(&p);
    if (rc == TSR_OK)
        rc = bind_conditions(&p);
    if (rc == TSR_OK && (p.grouped = query_has_agg(&p)))
        rc = bind_group_by(&p);
    if (rc == TSR_OK)
        rc = bind_select(&p);
    if (rc == TSR_OK)
        rc = bind_order_by(&p);
    tsr_plan_t *plan = NULL;
    if (rc == TSR_OK)
        rc = tsr__planner_build(&p, &plan);
    if (rc == TSR_OK)
        *out = plan;
    return rc;
}
