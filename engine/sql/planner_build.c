/*
 * planner_build.c - the plan tree of a bound query, bottom-up: the scans and
 * left-deep hash joins (each condition as low as its tables allow), then
 * AGGREGATE, HAVING's FILTER, PROJECT, DISTINCT, SORT, LIMIT and the final
 * PROJECT that drops hidden ORDER BY columns (planner.c's top comment has
 * the whole picture and the column layouts).
 */
#include <string.h>

#include "sql/planner_int.h"

/* ---- building the tree --------------------------------------------------------- */

static void compute_layout(planner_t *p)
{
    tsr_binder_t *b = &p->b;
    p->prefix[0] = 0;
    for (size_t t = 0; t < b->ntables; t++) {
        const tsr_bind_table_t *bt = &b->tables[t];
        size_t n = 0;
        for (size_t c = 0; c < bt->table->ncols; c++)
            n += b->used[bt->base + c];
        /* COUNT(*) alone still needs the rows: read one column */
        if (n == 0 && bt->table->ncols > 0) {
            b->used[bt->base] = true;
            n = 1;
        }
        n = 0;
        for (size_t c = 0; c < bt->table->ncols; c++)
            if (b->used[bt->base + c])
                p->rank[bt->base + c] = n++;
        p->prefix[t + 1] = p->prefix[t] + n;
    }
}

/* A copy of rows-space e over the relation of tables first..(last referenced). */
static tsr_expr_t *remap(planner_t *p, const tsr_expr_t *e, size_t first)
{
    tsr_expr_t *c = tsr_binder_alloc(&p->b, 1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *e;
    if (e->kind == TSR_EXPR_COLUMN) {
        size_t t = p->b.col_table[e->column];
        c->column = p->prefix[t] - p->prefix[first] + p->rank[e->column];
    }
    if (e->nargs) {
        if (!(c->args = tsr_binder_alloc(&p->b, e->nargs, sizeof(*c->args))))
            return NULL;
        for (size_t i = 0; i < e->nargs; i++)
            if (!(c->args[i] = remap(p, e->args[i], first)))
                return NULL;
    }
    return c;
}

static tsr_plan_t *new_plan(planner_t *p, tsr_plan_kind_t kind, tsr_plan_t *child, size_t ncols)
{
    tsr_plan_t *n = tsr_binder_alloc(&p->b, 1, sizeof(*n));
    if (!n)
        return NULL;
    n->kind = kind;
    n->child = child;
    n->ncols = ncols;
    n->limit = -1;
    n->types = tsr_binder_alloc(&p->b, ncols, sizeof(*n->types));
    n->names = tsr_binder_alloc(&p->b, ncols, sizeof(*n->names));
    return n->types && n->names ? n : NULL;
}

/* A node with its child's schema (FILTER, SORT, LIMIT). */
static tsr_plan_t *same_schema(planner_t *p, tsr_plan_kind_t kind, tsr_plan_t *child)
{
    tsr_plan_t *n = tsr_binder_alloc(&p->b, 1, sizeof(*n));
    if (!n)
        return NULL;
    n->kind = kind;
    n->child = child;
    n->ncols = child->ncols;
    n->types = child->types;
    n->names = child->names;
    n->limit = -1;
    return n;
}

static tsr_plan_t *scan(planner_t *p, size_t t)
{
    const tsr_bind_table_t *bt = &p->b.tables[t];
    tsr_plan_t *n = new_plan(p, TSR_PLAN_SCAN, NULL, p->prefix[t + 1] - p->prefix[t]);
    if (!n || !(n->col_ids = tsr_binder_alloc(&p->b, n->ncols, sizeof(*n->col_ids))))
        return NULL;
    n->table = bt->table;
    size_t k = 0;
    for (size_t c = 0; c < bt->table->ncols; c++) {
        if (!p->b.used[bt->base + c])
            continue;
        n->col_ids[k] = c;
        n->types[k] = bt->table->fields[c].type;
        n->names[k++] = bt->table->fields[c].name;
    }
    return n;
}

/* Whether conjunct e is `left = right` for the join bringing in table k
 * (one side over tables before k only, the other over table k only); sets
 * *swap when the right table's side is written first. */
static bool equi_key(planner_t *p, const tsr_expr_t *e, size_t k, bool *swap)
{
    if (e->kind != TSR_EXPR_BINARY || e->op != TSR_OP_EQ)
        return false;
    size_t lmin, lmax, rmin, rmax;
    if (!tsr_binder_table_range(&p->b, e->args[0], &lmin, &lmax) ||
        !tsr_binder_table_range(&p->b, e->args[1], &rmin, &rmax))
        return false;
    if (lmax < k && rmin == k && rmax == k) {
        *swap = false;
        return true;
    }
    if (rmax < k && lmin == k && lmax == k) {
        *swap = true;
        return true;
    }
    return false;
}

static bool is_true(const tsr_expr_t *e)
{
    return e->kind == TSR_EXPR_CONST && !e->value.is_null && e->type == TSR_TYPE_BOOL && e->value.i;
}

/* SCANs with their pushed-down filters, joined left-deep. */
static tsr_status_t build_joins(planner_t *p, tsr_plan_t **out)
{
    tsr_binder_t *b = &p->b;
    tsr_plan_t *cur = NULL;
    for (size_t t = 0; t < b->ntables; t++) {
        tsr_plan_t *side = scan(p, t);
        if (!side)
            return TSR_ERR_NOMEM;
        tsr_expr_t *pred = NULL; /* conjuncts over table t alone (constants: table 0) */
        for (size_t i = 0; i < p->nconj; i++) {
            size_t lo, hi;
            const tsr_expr_t *e = p->conj[i].e;
            bool cols = tsr_binder_table_range(b, e, &lo, &hi);
            if (cols ? (lo != t || hi != t) : (t != 0 || is_true(e)))
                continue;
            tsr_expr_t *r = remap(p, e, t);
            if (!r || !(pred = tsr_binder_mk_and(b, pred, r)))
                return TSR_ERR_NOMEM;
        }
        if (pred) {
            tsr_plan_t *f = same_schema(p, TSR_PLAN_FILTER, side);
            if (!f)
                return TSR_ERR_NOMEM;
            f->pred = pred;
            side = f;
        }
        if (t == 0) {
            cur = side;
            continue;
        }
        tsr_plan_t *j = new_plan(p, TSR_PLAN_HASH_JOIN, cur, cur->ncols + side->ncols);
        size_t nk = 0;
        for (size_t i = 0; i < p->nconj; i++) {
            size_t lo, hi;
            bool swap;
            if (tsr_binder_table_range(b, p->conj[i].e, &lo, &hi) && lo != hi && hi == t &&
                equi_key(p, p->conj[i].e, t, &swap))
                nk++;
        }
        if (!j || !(j->left_keys = tsr_binder_alloc(b, nk, sizeof(*j->left_keys))) ||
            !(j->right_keys = tsr_binder_alloc(b, nk, sizeof(*j->right_keys))))
            return TSR_ERR_NOMEM;
        j->right = side;
        memcpy(j->types, cur->types, cur->ncols * sizeof(*j->types));
        memcpy(j->types + cur->ncols, side->types, side->ncols * sizeof(*j->types));
        memcpy(j->names, cur->names, cur->ncols * sizeof(*j->names));
        memcpy(j->names + cur->ncols, side->names, side->ncols * sizeof(*j->names));
        for (size_t i = 0; i < p->nconj; i++) {
            size_t lo, hi;
            bool swap;
            const tsr_expr_t *e = p->conj[i].e;
            if (!tsr_binder_table_range(b, e, &lo, &hi) || lo == hi || hi != t)
                continue;
            if (equi_key(p, e, t, &swap)) {
                j->left_keys[j->njoin_keys] = remap(p, e->args[swap], 0);
                j->right_keys[j->njoin_keys] = remap(p, e->args[!swap], t);
                if (!j->left_keys[j->njoin_keys] || !j->right_keys[j->njoin_keys++])
                    return TSR_ERR_NOMEM;
            } else {
                tsr_expr_t *r = remap(p, e, 0);
                if (!r || !(j->residual = tsr_binder_mk_and(b, j->residual, r)))
                    return TSR_ERR_NOMEM;
            }
        }
        if (j->njoin_keys == 0) {
            const tsr_ast_join_t *aj = &p->ast->joins[t - 1];
            tsr_status_t rc =
                tsr_binder_fail_at(b, TSR_ERR_UNSUPPORTED, aj->on ? aj->on->span : aj->table.span,
                                   "JOIN needs at least one equality between the two sides");
            tsr_binder_hint(b, "relate '%s' to the tables before it, e.g. ON %s.x = %s.y",
                            b->tables[t].name, b->tables[t - 1].name, b->tables[t].name);
            return rc;
        }
        cur = j;
    }
    *out = cur;
    return TSR_OK;
}

tsr_status_t tsr__planner_build(planner_t *p, tsr_plan_t **out)
{
    tsr_binder_t *b = &p->b;
    const tsr_ast_select_t *ast = p->ast;
    tsr_plan_t *cur;
    compute_layout(p);
    tsr_status_t rc = build_joins(p, &cur);
    if (rc != TSR_OK)
        return rc;
    if (p->grouped) {
        tsr_plan_t *agg = new_plan(p, TSR_PLAN_AGGREGATE, cur, b->nkeys + b->naggs);
        if (!agg || !(agg->keys = tsr_binder_alloc(b, b->nkeys, sizeof(*agg->keys))) ||
            !(agg->aggs = tsr_binder_alloc(b, b->naggs, sizeof(*agg->aggs))))
            return TSR_ERR_NOMEM;
        agg->nkeys = b->nkeys;
        agg->naggs = b->naggs;
        for (size_t k = 0; k < b->nkeys; k++) {
            if (!(agg->keys[k] = remap(p, b->keys[k], 0)))
                return TSR_ERR_NOMEM;
            agg->types[k] = b->keys[k]->type;
            agg->names[k] = b->key_names[k];
        }
        for (size_t j = 0; j < b->naggs; j++) {
            agg->aggs[j] = b->aggs[j];
            if (b->aggs[j].arg && !(agg->aggs[j].arg = remap(p, b->aggs[j].arg, 0)))
                return TSR_ERR_NOMEM;
            agg->types[b->nkeys + j] = b->aggs[j].type;
            agg->names[b->nkeys + j] = b->agg_names[j];
        }
        cur = agg;
        if (p->having && !is_true(p->having)) {
            tsr_plan_t *f = same_schema(p, TSR_PLAN_FILTER, cur);
            if (!f)
                return TSR_ERR_NOMEM;
            f->pred = p->having;
            cur = f;
        }
    }
    tsr_plan_t *proj = new_plan(p, TSR_PLAN_PROJECT, cur, p->nsel);
    if (!proj || !(proj->exprs = tsr_binder_alloc(b, p->nsel, sizeof(*proj->exprs))))
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < p->nsel; i++) {
        proj->exprs[i] = p->grouped ? p->sel[i] : remap(p, p->sel[i], 0);
        if (!proj->exprs[i])
            return TSR_ERR_NOMEM;
        proj->types[i] = p->sel[i]->type;
        proj->names[i] = p->sel_names[i];
    }
    cur = proj;
    if (ast->distinct) { /* no hidden columns here: order_column refuses them */
        tsr_plan_t *d = same_schema(p, TSR_PLAN_AGGREGATE, cur);
        if (!d || !(d->keys = tsr_binder_alloc(b, cur->ncols, sizeof(*d->keys))))
            return TSR_ERR_NOMEM;
        d->nkeys = cur->ncols;
        for (size_t i = 0; i < cur->ncols; i++)
            if (!(d->keys[i] = tsr_binder_mk_column(b, i, cur->types[i])))
                return TSR_ERR_NOMEM;
        cur = d;
    }
    if (p->nsort) {
        tsr_plan_t *s = same_schema(p, TSR_PLAN_SORT, cur);
        if (!s)
            return TSR_ERR_NOMEM;
        s->sort_keys = p->sort;
        s->nsort_keys = p->nsort;
        cur = s;
    }
    if (ast->limit >= 0 || ast->offset > 0) {
        tsr_plan_t *l = same_schema(p, TSR_PLAN_LIMIT, cur);
        if (!l)
            return TSR_ERR_NOMEM;
        l->limit = ast->limit < 0 ? -1 : ast->limit;
        l->offset = ast->offset;
        cur = l;
    }
    if (p->nsel > p->nitems) { /* drop the hidden ORDER BY columns */
        tsr_plan_t *fin = new_plan(p, TSR_PLAN_PROJECT, cur, p->nitems);
        if (!fin || !(fin->exprs = tsr_binder_alloc(b, p->nitems, sizeof(*fin->exprs))))
            return TSR_ERR_NOMEM;
        for (size_t i = 0; i < p->nitems; i++) {
            if (!(fin->exprs[i] = tsr_binder_mk_column(b, i, cur->types[i])))
                return TSR_ERR_NOMEM;
            fin->types[i] = cur->types[i];
            fin->names[i] = cur->names[i];
        }
        cur = fin;
    }
    *out = cur;
    return TSR_OK;
}
