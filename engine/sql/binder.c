/*
 * binder.c - binding AST expressions (binder.h).
 *
 * Every function here either returns a fully typed expression or records one
 * error (the first one found, at the most precise position the AST allows)
 * and returns its status. Allocation failures are recorded by
 * tsr_binder_alloc, so callers just propagate TSR_ERR_NOMEM. Names and
 * positions are resolved in binder_names.c; typed nodes are built, with casts
 * and constant folding, in binder_ops.c.
 */
#include "sql/binder.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_numeric(tsr_type_t t)
{
    return t == TSR_TYPE_INT64 || t == TSR_TYPE_DOUBLE;
}

/* ---- allocation, errors, hints ------------------------------------------- */

void *tsr_binder_alloc(tsr_binder_t *b, size_t n, size_t size)
{
    void *p = NULL;
    if (size == 0 || n <= SIZE_MAX / size)
        p = tsr_arena_alloc(b->arena, n * size != 0 ? n * size : 1);
    if (!p)
        tsr_error_set(b->err, TSR_ERR_NOMEM, "out of memory while planning the query");
    return p;
}

char *tsr_binder_span_text(tsr_binder_t *b, tsr_src_span_t span)
{
    const char *s = "?column?";
    size_t len = strlen(s);
    if (b->sql && span.len > 0 && span.offset <= b->sql_len &&
        span.len <= b->sql_len - span.offset) {
        s = b->sql + span.offset;
        len = span.len;
    }
    char *copy = tsr_arena_strndup(b->arena, s, len);
    if (!copy)
        tsr_error_set(b->err, TSR_ERR_NOMEM, "out of memory while planning the query");
    return copy;
}

tsr_status_t tsr_binder_fail_at(tsr_binder_t *b, tsr_status_t status, tsr_src_span_t span,
                                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    b->fresh_error = b->err && b->err->status == TSR_OK;
    return tsr_error_set_at(b->err, status, NULL, span.line, span.column, "%s", msg);
}

void tsr_binder_hint(tsr_binder_t *b, const char *fmt, ...)
{
    if (!b->fresh_error || !b->err)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tsr_error_hint(b->err, "%s", msg);
}

/* ---- expressions -------------------------------------------------------- */

static const char *const agg_names[] = {"count", "sum", "min", "max", "avg"};
static const tsr_agg_fn_t agg_fns[] = {TSR_AGG_COUNT, TSR_AGG_SUM, TSR_AGG_MIN, TSR_AGG_MAX,
                                       TSR_AGG_AVG};

/* The aggregate a function name calls, -1 when it is none. */
static int agg_index(const char *name)
{
    for (int i = 0; name && i < (int)(sizeof(agg_names) / sizeof(agg_names[0])); i++)
        if (strcasecmp(name, agg_names[i]) == 0)
            return i;
    return -1;
}

static bool is_agg_call(const tsr_ast_expr_t *a)
{
    return a->kind == TSR_AST_FUNC && agg_index(a->name) >= 0;
}

bool tsr_binder_has_agg(const tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a)
{
    if (!a)
        return false;
    if (is_agg_call(a))
        return true;
    const tsr_bind_item_t *it = tsr_binder_alias_target(b, sc, a);
    if (it) {
        tsr_bind_scope_t isc = *sc;
        isc.allow_alias = false;
        return tsr_binder_has_agg(b, &isc, it->ast);
    }
    for (size_t i = 0; i < a->nargs; i++)
        if (tsr_binder_has_agg(b, sc, a->args[i]))
            return true;
    return false;
}

/* The AST's children must be what its kind promises; a parser bug must not
 * become a crash here. */
static tsr_status_t check_args(tsr_binder_t *b, const tsr_ast_expr_t *a, size_t min)
{
    if (a->nargs < min || (min && !a->args))
        return tsr_binder_fail_at(b, TSR_ERR_INTERNAL, a->span, "malformed syntax tree");
    for (size_t i = 0; i < a->nargs; i++)
        if (!a->args[i])
            return tsr_binder_fail_at(b, TSR_ERR_INTERNAL, a->span, "malformed syntax tree");
    return TSR_OK;
}

static tsr_status_t bind_args(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                              size_t n, tsr_expr_t **out)
{
    tsr_status_t rc = check_args(b, a, n);
    for (size_t i = 0; rc == TSR_OK && i < n; i++)
        rc = tsr_binder_expr(b, sc, a->args[i], &out[i]);
    return rc;
}

static tsr_status_t bind_unary(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                               tsr_expr_t **out)
{
    tsr_expr_t *x;
    tsr_status_t rc = bind_args(b, sc, a, 1, &x);
    if (rc != TSR_OK)
        return rc;
    if (a->op == TSR_OP_NEG) {
        if (!is_numeric(x->type) && x->type != TSR_TYPE_NULL)
            return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->span, "cannot negate %s",
                                      tsr_type_name(x->type));
        return tsr_binder_mk_neg(b, x, out);
    }
    if (a->op != TSR_OP_NOT)
        return tsr_binder_fail_at(b, TSR_ERR_INTERNAL, a->span, "malformed syntax tree");
    if (x->type != TSR_TYPE_BOOL && x->type != TSR_TYPE_NULL)
        return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->args[0]->span,
                                  "argument of NOT must be BOOLEAN, found %s",
                                  tsr_type_name(x->type));
    if (!(x = tsr_binder_mk_cast(b, x, TSR_TYPE_BOOL)))
        return TSR_ERR_NOMEM;
    return tsr_binder_mk_not(b, x, out);
}

static tsr_status_t bind_binary(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                const tsr_ast_expr_t *a, tsr_expr_t **out)
{
    tsr_expr_t *x[2];
    tsr_status_t rc = bind_args(b, sc, a, 2, x);
    if (rc != TSR_OK)
        return rc;
    switch (a->op) {
    case TSR_OP_ADD:
    case TSR_OP_SUB:
    case TSR_OP_MUL:
    case TSR_OP_DIV:
    case TSR_OP_MOD:
        return tsr_binder_mk_arith(b, a->op, x[0], x[1],
                                   tsr_binder_token_after(b, a->args[0], a->span), out);
    case TSR_OP_EQ:
    case TSR_OP_NE:
    case TSR_OP_LT:
    case TSR_OP_LE:
    case TSR_OP_GT:
    case TSR_OP_GE:
        return tsr_binder_mk_compare(b, a->op, x[0], x[1],
                                     tsr_binder_token_after(b, a->args[0], a->span), out);
    case TSR_OP_AND:
    case TSR_OP_OR:
        for (int i = 0; i < 2; i++)
            if (x[i]->type != TSR_TYPE_BOOL && x[i]->type != TSR_TYPE_NULL)
                return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->args[i]->span,
                                          "argument of %s must be BOOLEAN, found %s",
                                          tsr_binder_op_text(a->op), tsr_type_name(x[i]->type));
        return tsr_binder_mk_logic(b, a->op, x[0], x[1], out);
    default:
        return tsr_binder_fail_at(b, TSR_ERR_INTERNAL, a->span, "malformed syntax tree");
    }
}

static tsr_status_t bind_is_null(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                 const tsr_ast_expr_t *a, tsr_expr_t **out)
{
    tsr_expr_t *x;
    tsr_status_t rc = bind_args(b, sc, a, 1, &x);
    return rc != TSR_OK ? rc : tsr_binder_mk_is_null(b, x, a->negated, out);
}

static tsr_status_t bind_in(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                            tsr_expr_t **out)
{
    tsr_status_t rc = check_args(b, a, 2);
    if (rc != TSR_OK)
        return rc;
    tsr_expr_t **x = tsr_binder_alloc(b, a->nargs, sizeof(*x));
    if (!x)
        return TSR_ERR_NOMEM;
    if ((rc = bind_args(b, sc, a, a->nargs, x)) != TSR_OK)
        return rc;
    tsr_type_t t = x[0]->type;
    for (size_t i = 1; i < a->nargs; i++) {
        if (x[i]->kind != TSR_EXPR_CONST)
            return tsr_binder_fail_at(b, TSR_ERR_UNSUPPORTED, a->args[i]->span,
                                      "IN list elements must be constants");
        tsr_type_t et = x[i]->type;
        if (et == TSR_TYPE_NULL || et == t)
            continue;
        if (t == TSR_TYPE_NULL)
            t = et;
        else if (is_numeric(t) && is_numeric(et))
            t = TSR_TYPE_DOUBLE;
        else
            return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->args[i]->span,
                                      "cannot compare %s with %s", tsr_type_name(t),
                                      tsr_type_name(et));
    }
    if (t == TSR_TYPE_NULL)
        t = TSR_TYPE_INT64;
    return tsr_binder_mk_in(b, x, a->nargs, t, a->negated, out);
}

static tsr_status_t bind_between(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                 const tsr_ast_expr_t *a, tsr_expr_t **out)
{
    tsr_expr_t *x[3], *lo, *hi, *x2;
    tsr_status_t rc = bind_args(b, sc, a, 3, x);
    if (rc != TSR_OK)
        return rc;
    if (!(x2 = tsr_binder_clone(b, x[0])))
        return TSR_ERR_NOMEM;
    /* x BETWEEN l AND h  ==  x >= l AND x <= h;  NOT: x < l OR x > h */
    rc = tsr_binder_mk_compare(b, a->negated ? TSR_OP_LT : TSR_OP_GE, x[0], x[1], a->args[1]->span,
                               &lo);
    if (rc == TSR_OK)
        rc = tsr_binder_mk_compare(b, a->negated ? TSR_OP_GT : TSR_OP_LE, x2, x[2],
                                   a->args[2]->span, &hi);
    if (rc == TSR_OK)
        rc = tsr_binder_mk_logic(b, a->negated ? TSR_OP_OR : TSR_OP_AND, lo, hi, out);
    return rc;
}

static tsr_status_t bind_like(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                              tsr_expr_t **out)
{
    tsr_expr_t *x[2];
    tsr_status_t rc = bind_args(b, sc, a, 2, x);
    if (rc != TSR_OK)
        return rc;
    if (x[0]->type != TSR_TYPE_VARCHAR && x[0]->type != TSR_TYPE_NULL)
        return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->args[0]->span,
                                  "LIKE needs a VARCHAR operand, found %s",
                                  tsr_type_name(x[0]->type));
    if (x[1]->kind != TSR_EXPR_CONST)
        return tsr_binder_fail_at(b, TSR_ERR_UNSUPPORTED, a->args[1]->span,
                                  "the pattern of LIKE must be a constant string");
    if (x[1]->type != TSR_TYPE_VARCHAR && x[1]->type != TSR_TYPE_NULL)
        return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->args[1]->span,
                                  "the pattern of LIKE must be VARCHAR, found %s",
                                  tsr_type_name(x[1]->type));
    return tsr_binder_mk_like(b, x[0], x[1], a->negated, out);
}

/* A function call where no aggregate may be: always an error. */
static tsr_status_t bad_function(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                 const tsr_ast_expr_t *a)
{
    tsr_status_t rc;
    if (is_agg_call(a)) {
        if (!sc->clause)
            return tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, a->span,
                                      "aggregate function calls cannot be nested");
        rc = tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, a->span,
                                "aggregate functions are not allowed in %s", sc->clause);
        if (strcmp(sc->clause, "WHERE") == 0)
            tsr_binder_hint(b, "filter on aggregates with HAVING");
        return rc;
    }
    rc = tsr_binder_fail_at(b, TSR_ERR_NOT_FOUND, a->span, "unknown function '%s'",
                            a->name ? a->name : "");
    tsr_suggest_t s;
    tsr_suggest_init(&s, a->name);
    for (size_t i = 0; i < sizeof(agg_names) / sizeof(agg_names[0]); i++)
        tsr_suggest_add(&s, agg_names[i]);
    if (s.best)
        tsr_binder_hint(b, "did you mean '%s'?", s.best);
    else
        tsr_binder_hint(b, "the functions are COUNT, SUM, MIN, MAX and AVG");
    return rc;
}

/* One node of the expression, children bound in the same scope. */
static tsr_status_t bind_node(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                              tsr_expr_t **out)
{
    tsr_status_t rc;
    switch (a->kind) {
    case TSR_AST_COLUMN: {
        size_t gid = 0;
        const tsr_bind_item_t *item;
        if ((rc = tsr_binder_resolve_column(b, sc, a, &gid, &item)) != TSR_OK)
            return rc;
        if (item) { /* an alias: its expression, where aliases mean nothing */
            tsr_bind_scope_t isc = *sc;
            isc.allow_alias = false;
            return tsr_binder_expr(b, &isc, item->ast, out);
        }
        b->used[gid] = true;
        const tsr_table_t *t = b->tables[b->col_table[gid]].table;
        *out =
            tsr_binder_mk_column(b, gid, t->fields[gid - b->tables[b->col_table[gid]].base].type);
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    }
    case TSR_AST_STAR:
        return tsr_binder_fail_at(b, TSR_ERR_SYNTAX, a->span,
                                  "'*' is only allowed in the select list or in COUNT(*)");
    case TSR_AST_INT:
        if ((*out = tsr_binder_mk_const(b, TSR_TYPE_INT64)))
            (*out)->value.i = a->ival;
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    case TSR_AST_DOUBLE:
        if ((*out = tsr_binder_mk_const(b, TSR_TYPE_DOUBLE)))
            (*out)->value.d = a->dval;
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    case TSR_AST_STRING: {
        char *s = tsr_arena_strndup(b->arena, a->sval ? a->sval : "", a->sval ? a->slen : 0);
        if (!s || !(*out = tsr_binder_mk_const(b, TSR_TYPE_VARCHAR)))
            return tsr_error_set(b->err, TSR_ERR_NOMEM, "out of memory while planning the query");
        (*out)->value.s = s;
        (*out)->value.slen = a->sval ? a->slen : 0;
        return TSR_OK;
    }
    case TSR_AST_NULL:
        *out = tsr_binder_mk_null(b, TSR_TYPE_NULL);
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    case TSR_AST_BOOL:
        *out = tsr_binder_mk_bool(b, a->ival != 0);
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    case TSR_AST_UNARY:
        return bind_unary(b, sc, a, out);
    case TSR_AST_BINARY:
        return bind_binary(b, sc, a, out);
    case TSR_AST_IS_NULL:
        return bind_is_null(b, sc, a, out);
    case TSR_AST_IN:
        return bind_in(b, sc, a, out);
    case TSR_AST_BETWEEN:
        return bind_between(b, sc, a, out);
    case TSR_AST_LIKE:
        return bind_like(b, sc, a, out);
    case TSR_AST_FUNC:
        return bad_function(b, sc, a);
    }
    return tsr_binder_fail_at(b, TSR_ERR_INTERNAL, a->span, "malformed syntax tree");
}

/* An aggregate of a constant: its value where that is known without the
 * rows (*done), else a cheaper equivalent aggregate. Also spares the executor
 * aggregate arguments it need not handle (a VARCHAR constant has no
 * dictionary to aggregate codes of). */
static tsr_status_t const_agg(tsr_binder_t *b, tsr_agg_t *agg, bool *done, tsr_expr_t **out)
{
    bool null = agg->arg->value.is_null;
    *done = true;
    switch (agg->fn) {
    case TSR_AGG_COUNT:
        if (null) { /* COUNT(NULL) is 0 in every group */
            if ((*out = tsr_binder_mk_const(b, TSR_TYPE_INT64)))
                return TSR_OK;
            return TSR_ERR_NOMEM;
        }
        *done = false;
        if (agg->distinct) { /* one distinct value, whatever its type */
            if (!(agg->arg = tsr_binder_mk_const(b, TSR_TYPE_INT64)))
                return TSR_ERR_NOMEM;
        } else {
            agg->fn = TSR_AGG_COUNT_STAR;
            agg->arg = NULL;
        }
        return TSR_OK;
    case TSR_AGG_SUM:
    case TSR_AGG_AVG:
    case TSR_AGG_MIN:
    case TSR_AGG_MAX:
        /* of NULL: NULL; MIN/MAX of c: c in every group (groups are never
         * empty), but NULL over no rows when there are no groups */
        if (null) {
            *out = tsr_binder_mk_null(b, agg->type);
            return *out ? TSR_OK : TSR_ERR_NOMEM;
        }
        if ((agg->fn == TSR_AGG_MIN || agg->fn == TSR_AGG_MAX) && b->nkeys > 0) {
            *out = agg->arg;
            return TSR_OK;
        }
        *done = false;
        return TSR_OK;
    case TSR_AGG_COUNT_STAR:
        break;
    }
    *done = false;
    return TSR_OK;
}

/* An aggregate call in grouped space: a reference to its (deduplicated) entry. */
static tsr_status_t bind_agg_ref(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                 const tsr_ast_expr_t *a, tsr_expr_t **out)
{
    const char *fname = agg_names[agg_index(a->name)];
    tsr_agg_t agg = {.fn = agg_fns[agg_index(a->name)], .distinct = a->distinct};
    if (a->nargs != 1 || !a->args || !a->args[0])
        return tsr_binder_fail_at(b, TSR_ERR_TYPE, a->span,
                                  "%s() takes exactly one argument, found %zu", fname, a->nargs);
    const tsr_ast_expr_t *arg = a->args[0];
    if (arg->kind == TSR_AST_STAR) {
        if (agg.fn != TSR_AGG_COUNT || arg->table)
            return tsr_binder_fail_at(b, TSR_ERR_SYNTAX, arg->span,
                                      "'*' as an argument is only allowed in COUNT(*)");
        if (a->distinct)
            return tsr_binder_fail_at(b, TSR_ERR_SYNTAX, arg->span,
                                      "COUNT(DISTINCT *) is not allowed");
        agg.fn = TSR_AGG_COUNT_STAR;
        agg.type = TSR_TYPE_INT64;
    } else {
        tsr_bind_scope_t asc = {.nvisible = sc->nvisible, .clause = NULL};
        tsr_status_t rc = tsr_binder_expr(b, &asc, arg, &agg.arg);
        if (rc != TSR_OK)
            return rc;
        if (!(agg.arg = tsr_binder_materialize(b, agg.arg)))
            return TSR_ERR_NOMEM;
        tsr_type_t t = agg.arg->type;
        if ((agg.fn == TSR_AGG_SUM || agg.fn == TSR_AGG_AVG) && !is_numeric(t))
            return tsr_binder_fail_at(b, TSR_ERR_TYPE, arg->span,
                                      "%s needs a numeric argument, found %s",
                                      agg.fn == TSR_AGG_SUM ? "SUM" : "AVG", tsr_type_name(t));
        agg.type = agg.fn == TSR_AGG_COUNT ? TSR_TYPE_INT64
                   : agg.fn == TSR_AGG_AVG ? TSR_TYPE_DOUBLE
                                           : t;
        if (agg.fn == TSR_AGG_MIN || agg.fn == TSR_AGG_MAX)
            agg.distinct = false; /* the same value either way */
        if (agg.arg->kind == TSR_EXPR_CONST) {
            bool done = false;
            rc = const_agg(b, &agg, &done, out);
            if (rc != TSR_OK || done)
                return rc;
        }
    }
    size_t j = 0;
    while (j < b->naggs && !(b->aggs[j].fn == agg.fn && b->aggs[j].distinct == agg.distinct &&
                             tsr_binder_expr_equal(b->aggs[j].arg, agg.arg)))
        j++;
    if (j == b->naggs) {
        if (b->naggs == b->aggs_cap) {
            size_t cap = b->aggs_cap ? 2 * b->aggs_cap : 8;
            tsr_agg_t *aggs = tsr_binder_alloc(b, cap, sizeof(*aggs));
            char **names = tsr_binder_alloc(b, cap, sizeof(*names));
            if (!aggs || !names)
                return TSR_ERR_NOMEM;
            if (b->naggs) {
                memcpy(aggs, b->aggs, b->naggs * sizeof(*aggs));
                memcpy(names, b->agg_names, b->naggs * sizeof(*names));
            }
            b->aggs = aggs;
            b->agg_names = names;
            b->aggs_cap = cap;
        }
        if (!(b->agg_names[j] = tsr_binder_span_text(b, a->span)))
            return TSR_ERR_NOMEM;
        b->aggs[j] = agg;
        b->naggs++;
    }
    *out = tsr_binder_mk_column(b, b->nkeys + j, agg.type);
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

/* Grouped space, see binder.h. */
static tsr_status_t bind_grouped(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                 const tsr_ast_expr_t *a, tsr_expr_t **out)
{
    const tsr_bind_item_t *item = tsr_binder_alias_target(b, sc, a);
    if (item) {
        tsr_bind_scope_t isc = *sc;
        isc.allow_alias = false;
        return tsr_binder_expr(b, &isc, item->ast, out);
    }
    if (is_agg_call(a))
        return bind_agg_ref(b, sc, a, out);
    if (!tsr_binder_has_agg(b, sc, a)) {
        tsr_bind_scope_t rsc = *sc;
        rsc.grouped = false;
        tsr_expr_t *pre;
        tsr_status_t rc = tsr_binder_expr(b, &rsc, a, &pre);
        if (rc != TSR_OK)
            return rc;
        for (size_t k = 0; k < b->nkeys; k++) {
            if (tsr_binder_expr_equal(pre, b->keys[k])) {
                *out = tsr_binder_mk_column(b, k, b->keys[k]->type);
                return *out ? TSR_OK : TSR_ERR_NOMEM;
            }
        }
        if (!tsr_binder_has_columns(pre)) {
            *out = pre;
            return TSR_OK;
        }
        if (a->kind == TSR_AST_COLUMN) {
            rc = tsr_binder_fail_at(
                b, TSR_ERR_INVALID_ARG, a->span,
                "column '%s' must appear in GROUP BY or be used in an aggregate", a->name);
            tsr_binder_hint(b, "add it to GROUP BY, or use an aggregate such as MAX(%s)", a->name);
            return rc;
        }
    }
    return bind_node(b, sc, a, out);
}

/* ---- the memo of rows-space bindings ------------------------------------ */

/* A rows-space binding depends only on the AST subtree and on whether select
 * aliases may be used (the clause only changes error messages, and failures
 * are not remembered: the first one ends planning). */
typedef struct tsr_bind_memo {
    const tsr_ast_expr_t *ast; /* NULL: empty slot */
    bool allow_alias;
    tsr_expr_t *e;
} tsr_bind_memo_t;

static size_t memo_slot(const tsr_binder_t *b, const tsr_ast_expr_t *a, bool allow_alias)
{
    uint64_t h = ((uint64_t)(uintptr_t)a >> 4) * 0x9e3779b97f4a7c15ull + allow_alias;
    return (size_t)(h >> 17) & (b->memo_cap - 1);
}

static tsr_expr_t *memo_get(const tsr_binder_t *b, const tsr_ast_expr_t *a, bool allow_alias)
{
    if (!b->memo_cap)
        return NULL;
    for (size_t i = memo_slot(b, a, allow_alias);; i = (i + 1) & (b->memo_cap - 1)) {
        const tsr_bind_memo_t *m = &b->memo[i];
        if (!m->ast)
            return NULL;
        if (m->ast == a && m->allow_alias == allow_alias)
            return m->e;
    }
}

static tsr_status_t memo_put(tsr_binder_t *b, const tsr_ast_expr_t *a, bool allow_alias,
                             tsr_expr_t *e)
{
    if (2 * (b->memo_n + 1) > b->memo_cap) { /* keep the load under 1/2 */
        size_t cap = b->memo_cap ? 2 * b->memo_cap : 64;
        tsr_bind_memo_t *old = b->memo;
        size_t old_cap = b->memo_cap;
        if (!(b->memo = tsr_binder_alloc(b, cap, sizeof(*b->memo)))) {
            b->memo = old;
            return TSR_ERR_NOMEM;
        }
        b->memo_cap = cap;
        b->memo_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].ast)
                memo_put(b, old[i].ast, old[i].allow_alias, old[i].e); /* cannot grow */
    }
    size_t i = memo_slot(b, a, allow_alias);
    while (b->memo[i].ast)
        i = (i + 1) & (b->memo_cap - 1);
    b->memo[i].ast = a;
    b->memo[i].allow_alias = allow_alias;
    b->memo[i].e = e;
    b->memo_n++;
    return TSR_OK;
}

tsr_status_t tsr_binder_expr(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                             tsr_expr_t **out)
{
    if (!a)
        return tsr_error_set(b->err, TSR_ERR_INTERNAL, "malformed syntax tree");
    if (sc->grouped)
        return bind_grouped(b, sc, a, out);
    if ((*out = memo_get(b, a, sc->allow_alias)))
        return TSR_OK;
    tsr_status_t rc = bind_node(b, sc, a, out);
    return rc == TSR_OK ? memo_put(b, a, sc->allow_alias, *out) : rc;
}
