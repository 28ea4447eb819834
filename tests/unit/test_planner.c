/*
 * test_planner.c - binding and planning: plan shapes, types, casts, errors.
 *
 * Plans are checked two ways. explain() renders a plan as indented text
 * (one node per line, expressions with #i for column i of the node's input),
 * so a test states the whole expected shape at once. check_plan() verifies
 * the invariants the executor relies on for any plan: column references in
 * range and of the referenced column's type, operands of one type, BOOL
 * predicates, join keys of equal types, no NULL-typed outputs, and so on; it
 * runs on every plan built here, including those of a random query
 * generator. Errors are checked for status, position, message and hint.
 * End-to-end tests parse, plan and execute over small in-memory tables and
 * compare with results computed independently in C.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pool.h"
#include "exec/exec.h"
#include "sql/ast.h"
#include "sql/catalog.h"
#include "sql/planner.h"
#include "table/dict.h"

/* ---- fixture: a catalog of empty tables --------------------------------- */

typedef struct fixture {
    tsr_mem_t mem;
    tsr_catalog_t cat;
    tsr_arena_t arena;
    tsr_error_t err;
    tsr_plan_t *plan;
    char text[16384]; /* explain() output */
    size_t len;
} fixture_t;

static void add_table(fixture_t *f, const char *name, size_t n, const char *const *names,
                      const tsr_type_t *types)
{
    tsr_table_t *t = NULL;
    assert_int_equal(tsr_table_create(&f->mem, name, n, names, types, &t), TSR_OK);
    assert_int_equal(tsr_catalog_add(&f->cat, t), TSR_OK);
}

static void fx_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    tsr_mem_init(&f->mem);
    tsr_catalog_init(&f->cat, &f->mem);
    tsr_arena_init(&f->arena, &f->mem);
    static const char *const sales[] = {"id", "region", "quantity", "price", "shipped", "cust_id"};
    static const tsr_type_t sales_t[] = {TSR_TYPE_INT64,  TSR_TYPE_VARCHAR, TSR_TYPE_INT64,
                                         TSR_TYPE_DOUBLE, TSR_TYPE_BOOL,    TSR_TYPE_INT64};
    add_table(f, "sales", 6, sales, sales_t);
    static const char *const cust[] = {"id", "name", "region", "score"};
    static const tsr_type_t cust_t[] = {TSR_TYPE_INT64, TSR_TYPE_VARCHAR, TSR_TYPE_VARCHAR,
                                        TSR_TYPE_DOUBLE};
    add_table(f, "Customers", 4, cust, cust_t);
    static const char *const items[] = {"sale_id", "sku", "weight"};
    static const tsr_type_t items_t[] = {TSR_TYPE_INT64, TSR_TYPE_VARCHAR, TSR_TYPE_DOUBLE};
    add_table(f, "items", 3, items, items_t);
}

static void fx_reset(fixture_t *f)
{
    tsr_arena_release(&f->arena);
    tsr_arena_init(&f->arena, &f->mem);
    tsr_error_clear(&f->err);
    f->plan = NULL;
}

static void fx_free(fixture_t *f)
{
    tsr_arena_release(&f->arena);
    tsr_catalog_free(&f->cat);
}

/* ---- explain ---------------------------------------------------------------- */

static void out(fixture_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(fixture_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(f->text + f->len, sizeof(f->text) - f->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(f->text) - f->len);
    f->len += (size_t)n;
}

static const char *op_str(tsr_op_t op)
{
    static const char *const s[] = {"?", "+",  "-", "*",  "/",   "%",  "=", "<>",
                                    "<", "<=", ">", ">=", "AND", "OR", "-", "NOT"};
    return op < sizeof(s) / sizeof(s[0]) ? s[op] : "?";
}

static void explain_expr(fixture_t *f, const tsr_expr_t *e)
{
    switch (e->kind) {
    case TSR_EXPR_COLUMN:
        out(f, "#%zu", e->column);
        break;
    case TSR_EXPR_CONST:
        if (e->value.is_null) {
            out(f, "NULL:%s", tsr_type_name(e->type));
        } else if (e->type == TSR_TYPE_INT64) {
            out(f, "%lld", (long long)e->value.i);
        } else if (e->type == TSR_TYPE_DOUBLE) {
            char buf[64];
            snprintf(buf, sizeof(buf), "%.17g", e->value.d);
            out(f, "%s%s", buf, strpbrk(buf, ".en") ? "" : ".0");
        } else if (e->type == TSR_TYPE_BOOL) {
            out(f, "%s", e->value.i ? "TRUE" : "FALSE");
        } else if (e->type == TSR_TYPE_VARCHAR) {
            out(f, "'%.*s'", (int)e->value.slen, e->value.s);
        } else {
            out(f, "?const");
        }
        break;
    case TSR_EXPR_UNARY:
        out(f, "%s(", op_str(e->op));
        explain_expr(f, e->args[0]);
        out(f, ")");
        break;
    case TSR_EXPR_BINARY:
        out(f, "(");
        explain_expr(f, e->args[0]);
        out(f, " %s ", op_str(e->op));
        explain_expr(f, e->args[1]);
        out(f, ")");
        break;
    case TSR_EXPR_IS_NULL:
        out(f, "(");
        explain_expr(f, e->args[0]);
        out(f, " IS %sNULL)", e->negated ? "NOT " : "");
        break;
    case TSR_EXPR_IN:
        out(f, "(");
        explain_expr(f, e->args[0]);
        out(f, " %sIN (", e->negated ? "NOT " : "");
        for (size_t i = 1; i < e->nargs; i++) {
            out(f, i > 1 ? ", " : "");
            explain_expr(f, e->args[i]);
        }
        out(f, "))");
        break;
    case TSR_EXPR_LIKE:
        out(f, "(");
        explain_expr(f, e->args[0]);
        out(f, " %sLIKE ", e->negated ? "NOT " : "");
        explain_expr(f, e->args[1]);
        out(f, ")");
        break;
    case TSR_EXPR_CAST:
        out(f, "CAST(");
        explain_expr(f, e->args[0]);
        out(f, " AS %s)", tsr_type_name(e->type));
        break;
    }
}

static const char *agg_str(tsr_agg_fn_t fn)
{
    static const char *const s[] = {"COUNT", "COUNT", "SUM", "MIN", "MAX", "AVG"};
    return s[fn];
}

static void explain_node(fixture_t *f, const tsr_plan_t *p, int depth)
{
    out(f, "%*s", 2 * depth, "");
    switch (p->kind) {
    case TSR_PLAN_SCAN:
        out(f, "SCAN %s [", p->table->name);
        for (size_t i = 0; i < p->ncols; i++)
            out(f, "%s%s", i ? ", " : "", p->table->fields[p->col_ids[i]].name);
        out(f, "]\n");
        return;
    case TSR_PLAN_FILTER:
        out(f, "FILTER ");
        explain_expr(f, p->pred);
        break;
    case TSR_PLAN_PROJECT:
        out(f, "PROJECT ");
        for (size_t i = 0; i < p->ncols; i++) {
            out(f, "%s%s=", i ? ", " : "", p->names[i]);
            explain_expr(f, p->exprs[i]);
        }
        break;
    case TSR_PLAN_AGGREGATE:
        out(f, "AGGREGATE keys=[");
        for (size_t i = 0; i < p->nkeys; i++) {
            out(f, i ? ", " : "");
            explain_expr(f, p->keys[i]);
        }
        out(f, "] aggs=[");
        for (size_t i = 0; i < p->naggs; i++) {
            out(f, "%s%s(%s", i ? ", " : "", agg_str(p->aggs[i].fn),
                p->aggs[i].distinct ? "DISTINCT " : "");
            if (p->aggs[i].arg)
                explain_expr(f, p->aggs[i].arg);
            else
                out(f, "*");
            out(f, ")");
        }
        out(f, "]");
        break;
    case TSR_PLAN_HASH_JOIN:
        out(f, "HASH_JOIN ");
        for (size_t i = 0; i < p->njoin_keys; i++) {
            out(f, i ? ", " : "");
            explain_expr(f, p->left_keys[i]);
            out(f, "=");
            explain_expr(f, p->right_keys[i]);
        }
        if (p->residual) {
            out(f, " residual=");
            explain_expr(f, p->residual);
        }
        out(f, "\n");
        explain_node(f, p->child, depth + 1);
        explain_node(f, p->right, depth + 1);
        return;
    case TSR_PLAN_SORT:
        out(f, "SORT ");
        for (size_t i = 0; i < p->nsort_keys; i++)
            out(f, "%s#%zu%s", i ? ", " : "", p->sort_keys[i].column,
                p->sort_keys[i].desc ? " DESC" : "");
        break;
    case TSR_PLAN_LIMIT:
        out(f, "LIMIT %lld OFFSET %lld", (long long)p->limit, (long long)p->offset);
        break;
    }
    out(f, "\n");
    explain_node(f, p->child, depth + 1);
}

static const char *explain(fixture_t *f, const tsr_plan_t *p)
{
    f->len = 0;
    f->text[0] = '\0';
    explain_node(f, p, 0);
    return f->text;
}

/* "name:TYPE, ..." of the plan's output. */
static const char *schema(fixture_t *f, const tsr_plan_t *p)
{
    f->len = 0;
    f->text[0] = '\0';
    for (size_t i = 0; i < p->ncols; i++)
        out(f, "%s%s:%s", i ? ", " : "", p->names[i], tsr_type_name(p->types[i]));
    return f->text;
}

/* ---- invariants of every plan ---------------------------------------------- */

static bool numeric(tsr_type_t t)
{
    return t == TSR_TYPE_INT64 || t == TSR_TYPE_DOUBLE;
}

/* e over an input of n columns of types in[]. */
static void check_expr(const tsr_expr_t *e, size_t n, const tsr_type_t *in)
{
    assert_non_null(e);
    assert_int_not_equal(e->type, TSR_TYPE_NULL);
    for (size_t i = 0; i < e->nargs; i++)
        check_expr(e->args[i], n, in);
    switch (e->kind) {
    case TSR_EXPR_COLUMN:
        assert_true(e->column < n);
        assert_int_equal(e->type, in[e->column]);
        assert_int_equal(e->nargs, 0);
        break;
    case TSR_EXPR_CONST:
        assert_int_equal(e->value.type, e->type);
        assert_int_equal(e->nargs, 0);
        break;
    case TSR_EXPR_UNARY:
        assert_int_equal(e->nargs, 1);
        if (e->op == TSR_OP_NOT) {
            assert_int_equal(e->type, TSR_TYPE_BOOL);
            assert_int_equal(e->args[0]->type, TSR_TYPE_BOOL);
        } else {
            assert_int_equal(e->op, TSR_OP_NEG);
            assert_true(numeric(e->type));
            assert_int_equal(e->args[0]->type, e->type);
        }
        break;
    case TSR_EXPR_BINARY:
        assert_int_equal(e->nargs, 2);
        assert_int_equal(e->args[0]->type, e->args[1]->type);
        if (e->op >= TSR_OP_ADD && e->op <= TSR_OP_MOD) {
            assert_true(numeric(e->type));
            assert_int_equal(e->args[0]->type, e->type);
        } else if (e->op == TSR_OP_AND || e->op == TSR_OP_OR) {
            assert_int_equal(e->type, TSR_TYPE_BOOL);
            assert_int_equal(e->args[0]->type, TSR_TYPE_BOOL);
        } else {
            assert_true(e->op >= TSR_OP_EQ && e->op <= TSR_OP_GE);
            assert_int_equal(e->type, TSR_TYPE_BOOL);
        }
        break;
    case TSR_EXPR_IS_NULL:
        assert_int_equal(e->nargs, 1);
        assert_int_equal(e->type, TSR_TYPE_BOOL);
        break;
    case TSR_EXPR_IN:
        assert_true(e->nargs >= 2);
        assert_int_equal(e->type, TSR_TYPE_BOOL);
        for (size_t i = 1; i < e->nargs; i++) {
            assert_int_equal(e->args[i]->kind, TSR_EXPR_CONST);
            assert_int_equal(e->args[i]->type, e->args[0]->type);
        }
        break;
    case TSR_EXPR_LIKE:
        assert_int_equal(e->nargs, 2);
        assert_int_equal(e->type, TSR_TYPE_BOOL);
        assert_int_equal(e->args[0]->type, TSR_TYPE_VARCHAR);
        assert_int_equal(e->args[1]->kind, TSR_EXPR_CONST);
        assert_int_equal(e->args[1]->type, TSR_TYPE_VARCHAR);
        break;
    case TSR_EXPR_CAST:
        assert_int_equal(e->nargs, 1);
        assert_true((e->args[0]->type == TSR_TYPE_INT64 && e->type == TSR_TYPE_DOUBLE) ||
                    (e->args[0]->type == TSR_TYPE_BOOL && e->type == TSR_TYPE_INT64));
        assert_int_not_equal(e->args[0]->kind, TSR_EXPR_CONST); /* folded */
        break;
    }
}

static void check_plan(const tsr_plan_t *p)
{
    assert_non_null(p);
    assert_true(p->ncols == 0 || (p->types && p->names));
    for (size_t i = 0; i < p->ncols; i++) {
        assert_non_null(p->names[i]);
        assert_int_not_equal(p->types[i], TSR_TYPE_NULL);
    }
    if (p->kind == TSR_PLAN_SCAN) {
        assert_null(p->child);
        assert_non_null(p->table);
        for (size_t i = 0; i < p->ncols; i++) {
            assert_true(p->col_ids[i] < p->table->ncols);
            assert_true(i == 0 || p->col_ids[i] > p->col_ids[i - 1]);
            assert_int_equal(p->types[i], p->table->fields[p->col_ids[i]].type);
        }
        return;
    }
    const tsr_plan_t *c = p->child;
    check_plan(c);
    switch (p->kind) {
    case TSR_PLAN_SCAN:
        break;
    case TSR_PLAN_FILTER:
        check_expr(p->pred, c->ncols, c->types);
        assert_int_equal(p->pred->type, TSR_TYPE_BOOL);
        assert_int_equal(p->ncols, c->ncols);
        break;
    case TSR_PLAN_PROJECT:
        for (size_t i = 0; i < p->ncols; i++) {
            check_expr(p->exprs[i], c->ncols, c->types);
            assert_int_equal(p->exprs[i]->type, p->types[i]);
        }
        break;
    case TSR_PLAN_AGGREGATE:
        assert_int_equal(p->ncols, p->nkeys + p->naggs);
        for (size_t i = 0; i < p->nkeys; i++) {
            check_expr(p->keys[i], c->ncols, c->types);
            assert_int_equal(p->types[i], p->keys[i]->type);
        }
        for (size_t i = 0; i < p->naggs; i++) {
            const tsr_agg_t *a = &p->aggs[i];
            assert_int_equal(p->types[p->nkeys + i], a->type);
            if (a->fn == TSR_AGG_COUNT_STAR) {
                assert_null(a->arg);
                assert_int_equal(a->type, TSR_TYPE_INT64);
                continue;
            }
            check_expr(a->arg, c->ncols, c->types);
            if (a->fn == TSR_AGG_COUNT)
                assert_int_equal(a->type, TSR_TYPE_INT64);
            else if (a->fn == TSR_AGG_AVG)
                assert_int_equal(a->type, TSR_TYPE_DOUBLE);
            else
                assert_int_equal(a->type, a->arg->type);
            if (a->fn == TSR_AGG_SUM || a->fn == TSR_AGG_AVG)
                assert_true(numeric(a->arg->type));
        }
        break;
    case TSR_PLAN_HASH_JOIN: {
        const tsr_plan_t *r = p->right;
        check_plan(r);
        assert_int_equal(p->ncols, c->ncols + r->ncols);
        assert_true(p->njoin_keys > 0);
        for (size_t i = 0; i < p->njoin_keys; i++) {
            check_expr(p->left_keys[i], c->ncols, c->types);
            check_expr(p->right_keys[i], r->ncols, r->types);
            assert_int_equal(p->left_keys[i]->type, p->right_keys[i]->type);
        }
        for (size_t i = 0; i < p->ncols; i++)
            assert_int_equal(p->types[i], i < c->ncols ? c->types[i] : r->types[i - c->ncols]);
        if (p->residual) {
            check_expr(p->residual, p->ncols, p->types);
            assert_int_equal(p->residual->type, TSR_TYPE_BOOL);
        }
        break;
    }
    case TSR_PLAN_SORT:
        assert_true(p->nsort_keys > 0);
        for (size_t i = 0; i < p->nsort_keys; i++)
            assert_true(p->sort_keys[i].column < c->ncols);
        assert_int_equal(p->ncols, c->ncols);
        break;
    case TSR_PLAN_LIMIT:
        assert_int_equal(p->ncols, c->ncols);
        assert_true(p->offset >= 0);
        break;
    }
}

/* ---- planning helpers --------------------------------------------------------- */

static tsr_status_t plan_sql(fixture_t *f, const char *sql)
{
    fx_reset(f);
    tsr_ast_select_t *ast = NULL;
    tsr_status_t rc = tsr_sql_parse(&f->arena, sql, strlen(sql), &ast, &f->err);
    if (rc != TSR_OK) {
        print_message("parse error in [%s]: %s\n", sql, f->err.message);
        fail();
    }
    rc = tsr_sql_plan(&f->arena, &f->cat, sql, ast, &f->plan, &f->err);
    if (rc == TSR_OK)
        check_plan(f->plan);
    return rc;
}

/* Plans sql, which must succeed, and compares its explain() with want. */
static void expect_plan(fixture_t *f, const char *sql, const char *want)
{
    tsr_status_t rc = plan_sql(f, sql);
    if (rc != TSR_OK) {
        print_message("[%s] failed: %s (%d:%d) hint: %s\n", sql, f->err.message, f->err.line,
                      f->err.column, f->err.hint);
        fail();
    }
    const char *got = explain(f, f->plan);
    if (strcmp(got, want) != 0) {
        print_message("[%s]\n--- want\n%s--- got\n%s", sql, want, got);
        fail();
    }
}

static void expect_schema(fixture_t *f, const char *sql, const char *want)
{
    assert_int_equal(plan_sql(f, sql), TSR_OK);
    const char *got = schema(f, f->plan);
    if (strcmp(got, want) != 0) {
        print_message("[%s]\n want %s\n got  %s\n", sql, want, got);
        fail();
    }
}

/* Planning sql fails with status at line:col with a message containing msg
 * and a hint containing hint ("" for no hint expected, NULL: not checked). */
static void expect_error(fixture_t *f, const char *sql, tsr_status_t status, int line, int col,
                         const char *msg, const char *hint)
{
    tsr_status_t rc = plan_sql(f, sql);
    bool ok = rc == status && f->err.status == status && f->err.line == line &&
              f->err.column == col && strstr(f->err.message, msg) &&
              (!hint || (hint[0] ? strstr(f->err.hint, hint) != NULL : f->err.hint[0] == '\0'));
    if (!ok) {
        print_message("[%s]\n want %s %d:%d '%s' hint '%s'\n got  %s %d:%d '%s' hint '%s'\n", sql,
                      tsr_status_name(status), line, col, msg, hint ? hint : "(any)",
                      tsr_status_name(rc), f->err.line, f->err.column, f->err.message, f->err.hint);
        fail();
    }
}

/* ---- plan shapes ------------------------------------------------------------- */

static void test_scan_project(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_plan(&f, "SELECT id, quantity FROM sales",
                "PROJECT id=#0, quantity=#1\n"
                "  SCAN sales [id, quantity]\n");
    /* scans keep table order; the PROJECT puts columns in select order */
    expect_plan(&f, "select QUANTITY, Id from SALES",
                "PROJECT quantity=#1, id=#0\n"
                "  SCAN sales [id, quantity]\n");
    expect_plan(&f, "SELECT * FROM items",
                "PROJECT sale_id=#0, sku=#1, weight=#2\n"
                "  SCAN items [sale_id, sku, weight]\n");
    expect_plan(&f, "SELECT s.*, 1 AS one FROM items AS s",
                "PROJECT sale_id=#0, sku=#1, weight=#2, one=1\n"
                "  SCAN items [sale_id, sku, weight]\n");
    expect_plan(&f, "SELECT price, price * 2, quantity + 1 AS q1 FROM sales",
                "PROJECT price=#1, price * 2=(#1 * 2.0), q1=(#0 + 1)\n"
                "  SCAN sales [quantity, price]\n");
    /* names: alias, column name as declared, else the source text */
    expect_schema(&f, "SELECT ID, sales.Region, quantity*price, (id) AS x FROM sales",
                  "id:BIGINT, region:VARCHAR, quantity*price:DOUBLE, x:BIGINT");
    expect_schema(&f, "SELECT \"id\" FROM sales", "id:BIGINT");
    /* COUNT(*) alone reads one column so the rows exist */
    expect_plan(&f, "SELECT COUNT(*) FROM sales",
                "PROJECT COUNT(*)=#0\n"
                "  AGGREGATE keys=[] aggs=[COUNT(*)]\n"
                "    SCAN sales [id]\n");
    fx_free(&f);
}

static void test_where_and_types(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_plan(&f, "SELECT id FROM sales WHERE quantity > 5 AND price < 2",
                "PROJECT id=#0\n"
                "  FILTER ((#1 > 5) AND (#2 < 2.0))\n"
                "    SCAN sales [id, quantity, price]\n");
    /* INT64 meets DOUBLE: the int side is cast (constants converted on the spot) */
    expect_plan(&f, "SELECT quantity + price, quantity = 2.5 FROM sales",
                "PROJECT quantity + price=(CAST(#0 AS DOUBLE) + #1), "
                "quantity = 2.5=(CAST(#0 AS DOUBLE) = 2.5)\n"
                "  SCAN sales [quantity, price]\n");
    /* NULL takes the other operand's type; NULL arithmetic folds */
    expect_plan(&f,
                "SELECT NULL, NULL + 1, price * NULL, region = NULL, -quantity, -(-5) FROM sales",
                "PROJECT NULL=NULL:BIGINT, NULL + 1=NULL:BIGINT, price * NULL=NULL:DOUBLE, "
                "region = NULL=NULL:BOOLEAN, -quantity=-(#1), -(-5)=5\n"
                "  SCAN sales [region, quantity, price]\n");
    expect_plan(&f, "SELECT id FROM sales WHERE quantity BETWEEN 1 AND 10",
                "PROJECT id=#0\n"
                "  FILTER ((#1 >= 1) AND (#1 <= 10))\n"
                "    SCAN sales [id, quantity]\n");
    expect_plan(&f, "SELECT id FROM sales WHERE quantity NOT BETWEEN 1 AND 2.5",
                "PROJECT id=#0\n"
                "  FILTER ((#1 < 1) OR (CAST(#1 AS DOUBLE) > 2.5))\n"
                "    SCAN sales [id, quantity]\n");
    expect_plan(&f,
                "SELECT id FROM sales WHERE quantity IN (1, 2, -3) AND price IN (1, 2.5) "
                "AND id IN (1, 2.5) AND region NOT IN ('a', NULL)",
                "PROJECT id=#0\n"
                "  FILTER ((((#2 IN (1, 2, -3)) AND (#3 IN (1.0, 2.5))) AND "
                "(CAST(#0 AS DOUBLE) IN (1.0, 2.5))) AND (#1 NOT IN ('a', NULL:VARCHAR)))\n"
                "    SCAN sales [id, region, quantity, price]\n");
    expect_plan(&f,
                "SELECT id FROM sales WHERE region LIKE 'E%' AND region NOT LIKE '_x' "
                "AND price IS NOT NULL AND shipped IS NULL",
                "PROJECT id=#0\n"
                "  FILTER ((((#1 LIKE 'E%') AND (#1 NOT LIKE '_x')) AND (#2 IS NOT NULL)) AND "
                "(#3 IS NULL))\n"
                "    SCAN sales [id, region, price, shipped]\n");
    expect_plan(&f, "SELECT id FROM sales WHERE shipped AND NOT (shipped OR id <> 0)",
                "PROJECT id=#0\n"
                "  FILTER (#1 AND NOT((#1 OR (#0 <> 0))))\n"
                "    SCAN sales [id, shipped]\n");
    /* constant folding: TRUE conjuncts vanish, FALSE ones stay as a filter */
    expect_plan(&f, "SELECT id FROM sales WHERE 1 = 1 AND 2 > 1",
                "PROJECT id=#0\n"
                "  SCAN sales [id]\n");
    expect_plan(&f, "SELECT id FROM sales WHERE 'a' < 'b' AND id > 0 OR 1 = 0",
                "PROJECT id=#0\n"
                "  FILTER (#0 > 0)\n"
                "    SCAN sales [id]\n");
    expect_plan(&f, "SELECT id FROM sales WHERE 'abc' LIKE 'a%' AND 3 IN (1, 2) OR NULL",
                "PROJECT id=#0\n"
                "  FILTER NULL:BOOLEAN\n"
                "    SCAN sales [id]\n");
    expect_plan(&f,
                "SELECT 7 / 2, -7 / 2, 7 % 0, 1.5 * 2, 1 / 0.0, 2 - 5 * 3, NULL IS NULL FROM items",
                "PROJECT 7 / 2=3, -7 / 2=-3, 7 % 0=NULL:BIGINT, 1.5 * 2=3.0, 1 / 0.0=NULL:DOUBLE, "
                "2 - 5 * 3=-13, NULL IS NULL=TRUE\n"
                "  SCAN items [sale_id]\n");
    /* overflow is left to the executor, which reports it */
    expect_plan(&f, "SELECT 9223372036854775807 + 1 FROM items",
                "PROJECT 9223372036854775807 + 1=(9223372036854775807 + 1)\n"
                "  SCAN items [sale_id]\n");
    expect_plan(&f, "SELECT id FROM sales WHERE NULL",
                "PROJECT id=#0\n"
                "  FILTER NULL:BOOLEAN\n"
                "    SCAN sales [id]\n");
    expect_schema(&f, "SELECT id / 2, price / 2, id % 3, NULL, shipped, region FROM sales",
                  "id / 2:BIGINT, price / 2:DOUBLE, id % 3:BIGINT, NULL:BIGINT, shipped:BOOLEAN, "
                  "region:VARCHAR");
    fx_free(&f);
}

static void test_joins(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    const char *want = "PROJECT id=#0, name=#3\n"
                       "  HASH_JOIN #1=#0\n"
                       "    SCAN sales [id, cust_id]\n"
                       "    SCAN Customers [id, name]\n";
    expect_plan(&f, "SELECT s.id, c.name FROM sales s JOIN Customers c ON s.cust_id = c.id", want);
    expect_plan(&f,
                "SELECT s.id, name FROM sales AS s INNER JOIN customers AS c ON c.id = s.cust_id",
                want);
    /* the table name qualifies too when it has an alias */
    expect_plan(&f,
                "SELECT sales.id, c.name FROM sales s JOIN Customers c ON S.cust_id = customers.id",
                want);
    /* mixed key types: the int side is cast */
    expect_plan(&f, "SELECT c.name FROM sales s JOIN Customers c ON c.id = s.price",
                "PROJECT name=#2\n"
                "  HASH_JOIN #0=CAST(#0 AS DOUBLE)\n"
                "    SCAN sales [price]\n"
                "    SCAN Customers [id, name]\n");
    /* one-table conditions go below the join, the rest become the residual */
    expect_plan(&f,
                "SELECT s.id FROM sales s JOIN Customers c ON s.cust_id = c.id AND "
                "s.region <> c.region AND c.score > 1 WHERE s.quantity > 2 AND c.id + s.id > 3",
                "PROJECT id=#0\n"
                "  HASH_JOIN #3=#0 residual=((#1 <> #5) AND ((#4 + #0) > 3))\n"
                "    FILTER (#2 > 2)\n"
                "      SCAN sales [id, region, quantity, cust_id]\n"
                "    FILTER (#2 > 1.0)\n"
                "      SCAN Customers [id, region, score]\n");
    /* WHERE equalities become keys too; expressions as keys */
    expect_plan(&f,
                "SELECT 1 FROM sales s JOIN Customers c ON s.cust_id + 1 = c.id * 2 "
                "WHERE s.region = c.region",
                "PROJECT 1=1\n"
                "  HASH_JOIN (#1 + 1)=(#0 * 2), #0=#1\n"
                "    SCAN sales [region, cust_id]\n"
                "    SCAN Customers [id, region]\n");
    /* three tables, left-deep in FROM order */
    expect_plan(&f,
                "SELECT c.name, i.sku FROM sales s JOIN Customers c ON s.cust_id = c.id "
                "JOIN items i ON i.sale_id = s.id AND i.weight > c.score",
                "PROJECT name=#3, sku=#6\n"
                "  HASH_JOIN #0=#0 residual=(#7 > #4)\n"
                "    HASH_JOIN #1=#0\n"
                "      SCAN sales [id, cust_id]\n"
                "      SCAN Customers [id, name, score]\n"
                "    SCAN items [sale_id, sku, weight]\n");
    /* an ON condition on earlier tables only goes where it belongs */
    expect_plan(&f,
                "SELECT 1 FROM sales s JOIN Customers c ON s.cust_id = c.id "
                "JOIN items i ON i.sale_id = s.id AND s.region = c.region AND s.quantity < 5",
                "PROJECT 1=1\n"
                "  HASH_JOIN #0=#0\n"
                "    HASH_JOIN #3=#0, #1=#1\n"
                "      FILTER (#2 < 5)\n"
                "        SCAN sales [id, region, quantity, cust_id]\n"
                "      SCAN Customers [id, region]\n"
                "    SCAN items [sale_id]\n");
    /* self-join; * expands in FROM order */
    expect_plan(&f,
                "SELECT * FROM items a JOIN items b ON a.sale_id = b.sale_id WHERE a.sku <> 'x'",
                "PROJECT sale_id=#0, sku=#1, weight=#2, sale_id=#3, sku=#4, weight=#5\n"
                "  HASH_JOIN #0=#0\n"
                "    FILTER (#1 <> 'x')\n"
                "      SCAN items [sale_id, sku, weight]\n"
                "    SCAN items [sale_id, sku, weight]\n");
    expect_plan(&f, "SELECT b.*, a.sku FROM items a JOIN items b ON a.sale_id = b.sale_id",
                "PROJECT sale_id=#2, sku=#3, weight=#4, sku=#1\n"
                "  HASH_JOIN #0=#0\n"
                "    SCAN items [sale_id, sku]\n"
                "    SCAN items [sale_id, sku, weight]\n");
    /* a table name and an alias that happen to agree with other names */
    expect_plan(&f, "SELECT sales.id FROM sales JOIN sales s ON s.id = sales.id",
                "PROJECT id=#0\n"
                "  HASH_JOIN #0=#0\n"
                "    SCAN sales [id]\n"
                "    SCAN sales [id]\n");
    fx_free(&f);
}

static void test_aggregates(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_plan(&f, "SELECT region, SUM(quantity), count(*) FROM sales GROUP BY region",
                "PROJECT region=#0, SUM(quantity)=#1, count(*)=#2\n"
                "  AGGREGATE keys=[#0] aggs=[SUM(#1), COUNT(*)]\n"
                "    SCAN sales [region, quantity]\n");
    /* identical aggregates are computed once; HAVING filters the groups; an
       ORDER BY aggregate becomes a hidden column */
    expect_plan(&f,
                "SELECT region, sum(quantity) AS s, SUM(quantity) / COUNT(*) FROM sales "
                "GROUP BY 1 HAVING Sum(quantity) > 10 ORDER BY count(*) DESC",
                "PROJECT region=#0, s=#1, SUM(quantity) / COUNT(*)=#2\n"
                "  SORT #3 DESC\n"
                "    PROJECT region=#0, s=#1, SUM(quantity) / COUNT(*)=(#1 / #2), count(*)=#2\n"
                "      FILTER (#1 > 10)\n"
                "        AGGREGATE keys=[#0] aggs=[SUM(#1), COUNT(*)]\n"
                "          SCAN sales [region, quantity]\n");
    /* expression keys, by alias; expressions over keys */
    expect_plan(&f,
                "SELECT quantity % 10 AS bucket, AVG(price), quantity % 10 + 1 FROM sales "
                "GROUP BY bucket ORDER BY bucket",
                "SORT #0\n"
                "  PROJECT bucket=#0, AVG(price)=#1, quantity % 10 + 1=(#0 + 1)\n"
                "    AGGREGATE keys=[(#0 % 10)] aggs=[AVG(#1)]\n"
                "      SCAN sales [quantity, price]\n");
    expect_plan(&f, "SELECT quantity AS q, COUNT(*) FROM sales GROUP BY q",
                "PROJECT q=#0, COUNT(*)=#1\n"
                "  AGGREGATE keys=[#0] aggs=[COUNT(*)]\n"
                "    SCAN sales [quantity]\n");
    expect_plan(&f, "SELECT quantity + 1, -quantity FROM sales GROUP BY quantity",
                "PROJECT quantity + 1=(#0 + 1), -quantity=-(#0)\n"
                "  AGGREGATE keys=[#0] aggs=[]\n"
                "    SCAN sales [quantity]\n");
    /* keys compare after resolution: s.quantity is quantity; casts over keys */
    expect_plan(&f, "SELECT s.quantity * 1.5, MAX(s.region) FROM sales s GROUP BY quantity",
                "PROJECT s.quantity * 1.5=(CAST(#0 AS DOUBLE) * 1.5), MAX(s.region)=#1\n"
                "  AGGREGATE keys=[#1] aggs=[MAX(#0)]\n"
                "    SCAN sales [region, quantity]\n");
    expect_plan(&f,
                "SELECT COUNT(DISTINCT region), count(region), MIN(price), MAX(DISTINCT region), "
                "AVG(quantity * 2), SUM(DISTINCT price) FROM sales",
                "PROJECT COUNT(DISTINCT region)=#0, count(region)=#1, MIN(price)=#2, "
                "MAX(DISTINCT region)=#3, AVG(quantity * 2)=#4, SUM(DISTINCT price)=#5\n"
                "  AGGREGATE keys=[] aggs=[COUNT(DISTINCT #0), COUNT(#0), MIN(#2), MAX(#0), "
                "AVG((#1 * 2)), SUM(DISTINCT #2)]\n"
                "    SCAN sales [region, quantity, price]\n");
    expect_schema(&f,
                  "SELECT COUNT(price), SUM(quantity), SUM(price), AVG(quantity), MIN(region), "
                  "MAX(shipped), MIN(NULL), COUNT(*) FROM sales",
                  "COUNT(price):BIGINT, SUM(quantity):BIGINT, SUM(price):DOUBLE, "
                  "AVG(quantity):DOUBLE, MIN(region):VARCHAR, MAX(shipped):BOOLEAN, "
                  "MIN(NULL):BIGINT, COUNT(*):BIGINT");
    /* aggregates of constants: known results, or a cheaper aggregate */
    expect_plan(
        &f,
        "SELECT COUNT(1), COUNT(NULL), COUNT(DISTINCT 'x'), SUM(NULL), AVG(NULL), "
        "MIN('a'), MAX(NULL) FROM sales",
        "PROJECT COUNT(1)=#0, COUNT(NULL)=0, COUNT(DISTINCT 'x')=#1, SUM(NULL)=NULL:BIGINT, "
        "AVG(NULL)=NULL:DOUBLE, MIN('a')=#2, MAX(NULL)=NULL:BIGINT\n"
        "  AGGREGATE keys=[] aggs=[COUNT(*), COUNT(DISTINCT 0), MIN('a')]\n"
        "    SCAN sales [id]\n");
    expect_plan(&f, "SELECT region, MIN('a'), MAX(2) FROM sales GROUP BY region",
                "PROJECT region=#0, MIN('a')='a', MAX(2)=2\n"
                "  AGGREGATE keys=[#0] aggs=[]\n"
                "    SCAN sales [region]\n");
    expect_plan(&f, "SELECT COUNT(*) FROM sales HAVING COUNT(*) > 1",
                "PROJECT COUNT(*)=#0\n"
                "  FILTER (#0 > 1)\n"
                "    AGGREGATE keys=[] aggs=[COUNT(*)]\n"
                "      SCAN sales [id]\n");
    /* an ORDER BY aggregate alone makes the query an aggregate one */
    expect_plan(&f, "SELECT 1 FROM sales ORDER BY COUNT(*)",
                "PROJECT 1=#0\n"
                "  SORT #1\n"
                "    PROJECT 1=1, COUNT(*)=#0\n"
                "      AGGREGATE keys=[] aggs=[COUNT(*)]\n"
                "        SCAN sales [id]\n");
    /* ORDER BY a select alias of an aggregate, also inside an expression */
    expect_plan(
        &f, "SELECT region AS r, COUNT(*) AS n FROM sales GROUP BY region ORDER BY n, n * 2 DESC",
        "PROJECT r=#0, n=#1\n"
        "  SORT #1, #2 DESC\n"
        "    PROJECT r=#0, n=#1, n * 2=(#1 * 2)\n"
        "      AGGREGATE keys=[#0] aggs=[COUNT(*)]\n"
        "        SCAN sales [region]\n");
    /* aggregate over a join with pushed filter */
    expect_plan(&f,
                "SELECT c.name, SUM(s.quantity * s.price) AS revenue FROM sales s JOIN Customers c "
                "ON s.cust_id = c.id WHERE s.shipped GROUP BY c.name ORDER BY revenue DESC LIMIT 3",
                "LIMIT 3 OFFSET 0\n"
                "  SORT #1 DESC\n"
                "    PROJECT name=#0, revenue=#1\n"
                "      AGGREGATE keys=[#5] aggs=[SUM((CAST(#0 AS DOUBLE) * #1))]\n"
                "        HASH_JOIN #3=#0\n"
                "          FILTER #2\n"
                "            SCAN sales [quantity, price, shipped, cust_id]\n"
                "          SCAN Customers [id, name]\n");
    /* GROUP BY a constant-free expression of several columns, DISTINCT keys */
    expect_plan(&f,
                "SELECT id + quantity, COUNT(*) FROM sales GROUP BY id + quantity, id + quantity",
                "PROJECT id + quantity=#0, COUNT(*)=#1\n"
                "  AGGREGATE keys=[(#0 + #1)] aggs=[COUNT(*)]\n"
                "    SCAN sales [id, quantity]\n");
    /* constant keys split nothing; only constants: one BIGINT key remains so
       that no rows in means no groups out */
    expect_plan(&f, "SELECT region, COUNT(*) FROM sales GROUP BY region, NULL, 'x'",
                "PROJECT region=#0, COUNT(*)=#1\n"
                "  AGGREGATE keys=[#0] aggs=[COUNT(*)]\n"
                "    SCAN sales [region]\n");
    expect_plan(&f, "SELECT 'a', 0, COUNT(*) FROM sales GROUP BY 'a', 1 + 1",
                "PROJECT 'a'='a', 0=#0, COUNT(*)=#1\n"
                "  AGGREGATE keys=[0] aggs=[COUNT(*)]\n"
                "    SCAN sales [id]\n");
    expect_plan(&f, "SELECT * FROM items GROUP BY sku, weight, sale_id",
                "PROJECT sale_id=#2, sku=#0, weight=#1\n"
                "  AGGREGATE keys=[#1, #2, #0] aggs=[]\n"
                "    SCAN items [sale_id, sku, weight]\n");
    fx_free(&f);
}

static void test_distinct_order_limit(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_plan(&f, "SELECT DISTINCT region FROM sales ORDER BY region",
                "SORT #0\n"
                "  AGGREGATE keys=[#0] aggs=[]\n"
                "    PROJECT region=#0\n"
                "      SCAN sales [region]\n");
    expect_plan(&f, "SELECT DISTINCT region, quantity > 1 FROM sales ORDER BY 2 DESC, quantity > 1",
                "SORT #1 DESC\n"
                "  AGGREGATE keys=[#0, #1] aggs=[]\n"
                "    PROJECT region=#0, quantity > 1=(#1 > 1)\n"
                "      SCAN sales [region, quantity]\n");
    expect_plan(&f, "SELECT id FROM sales ORDER BY price DESC, id LIMIT 10 OFFSET 5",
                "PROJECT id=#0\n"
                "  LIMIT 10 OFFSET 5\n"
                "    SORT #1 DESC, #0\n"
                "      PROJECT id=#0, price=#1\n"
                "        SCAN sales [id, price]\n");
    expect_plan(&f, "SELECT id AS k, price FROM sales ORDER BY K, 2 DESC LIMIT 0",
                "LIMIT 0 OFFSET 0\n"
                "  SORT #0, #1 DESC\n"
                "    PROJECT k=#0, price=#1\n"
                "      SCAN sales [id, price]\n");
    /* an expression equal to a select item sorts on it; a constant sorts nothing */
    expect_plan(&f, "SELECT id + 1 FROM sales ORDER BY id + 1, 'x', (id+1)",
                "SORT #0\n"
                "  PROJECT id + 1=(#0 + 1)\n"
                "    SCAN sales [id]\n");
    /* an alias inside an ORDER BY expression stands for its item */
    expect_plan(&f, "SELECT quantity AS q FROM sales ORDER BY q % 3, -q",
                "PROJECT q=#0\n"
                "  SORT #1, #2\n"
                "    PROJECT q=#0, q % 3=(#0 % 3), -q=-(#0)\n"
                "      SCAN sales [quantity]\n");
    /* output names win over input columns in ORDER BY */
    expect_plan(&f, "SELECT id AS quantity, quantity AS id FROM sales ORDER BY id",
                "SORT #1\n"
                "  PROJECT quantity=#0, id=#1\n"
                "    SCAN sales [id, quantity]\n");
    expect_plan(&f, "SELECT id FROM sales LIMIT 5",
                "LIMIT 5 OFFSET 0\n"
                "  PROJECT id=#0\n"
                "    SCAN sales [id]\n");
    expect_plan(&f, "SELECT DISTINCT * FROM items LIMIT 2 OFFSET 1",
                "LIMIT 2 OFFSET 1\n"
                "  AGGREGATE keys=[#0, #1, #2] aggs=[]\n"
                "    PROJECT sale_id=#0, sku=#1, weight=#2\n"
                "      SCAN items [sale_id, sku, weight]\n");
    expect_plan(&f,
                "SELECT c.name FROM sales s JOIN Customers c ON s.cust_id = c.id ORDER BY s.price",
                "PROJECT name=#0\n"
                "  SORT #1\n"
                "    PROJECT name=#3, s.price=#0\n"
                "      HASH_JOIN #1=#0\n"
                "        SCAN sales [price, cust_id]\n"
                "        SCAN Customers [id, name]\n");
    fx_free(&f);
}

/* Like expect_error, with the position given by a marker: `at` is a piece of
 * sql with a '|' before the character the caret must point at. */
static void expect_error_at(fixture_t *f, const char *sql, tsr_status_t status, const char *at,
                            const char *msg, const char *hint)
{
    char piece[256];
    const char *bar = strchr(at, '|');
    assert_non_null(bar);
    snprintf(piece, sizeof(piece), "%.*s%s", (int)(bar - at), at, bar + 1);
    const char *hit = strstr(sql, piece);
    assert_non_null(hit);
    const char *pos = hit + (bar - at);
    int line = 1, col = 1;
    for (const char *c = sql; c < pos; c++) {
        if (*c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    expect_error(f, sql, status, line, col, msg, hint);
}

static void test_name_errors(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_error_at(&f, "SELECT * FROM salse", TSR_ERR_NOT_FOUND, "|salse", "unknown table 'salse'",
                    "did you mean 'sales'?");
    expect_error_at(&f, "SELECT * FROM customer c", TSR_ERR_NOT_FOUND, "|customer",
                    "unknown table 'customer'", "did you mean 'Customers'?");
    expect_error_at(&f, "SELECT 1 FROM sales JOIN zebra ON 1 = 1", TSR_ERR_NOT_FOUND, "|zebra",
                    "unknown table 'zebra'", "");
    expect_error_at(&f, "SELECT qty FROM sales", TSR_ERR_NOT_FOUND, "|qty", "unknown column 'qty'",
                    "did you mean 'quantity'?");
    expect_error_at(&f, "SELECT id FROM sales WHERE regoin = 'x'", TSR_ERR_NOT_FOUND, "|regoin",
                    "unknown column 'regoin'", "did you mean 'region'?");
    expect_error_at(&f, "SELECT s.qty FROM sales s", TSR_ERR_NOT_FOUND, "s.|qty",
                    "unknown column 'qty'", "did you mean 's.quantity'?");
    expect_error_at(&f, "SELECT s . \"zz\" FROM sales s", TSR_ERR_NOT_FOUND, "s . |\"zz\"",
                    "unknown column 'zz'", "table 's' has no such column");
    expect_error_at(&f, "SELECT x.id FROM sales s", TSR_ERR_NOT_FOUND, "|x.id", "unknown table 'x'",
                    "");
    expect_error_at(&f, "SELECT sale.id FROM sales", TSR_ERR_NOT_FOUND, "|sale.id",
                    "unknown table 'sale'", "did you mean 'sales'?");
    expect_error_at(&f, "SELECT nosuch FROM sales", TSR_ERR_NOT_FOUND, "|nosuch",
                    "unknown column 'nosuch'", "");
    expect_error_at(&f, "SELECT id FROM sales JOIN Customers ON sales.cust_id = Customers.id",
                    TSR_ERR_INVALID_ARG, "SELECT |id", "column 'id' is ambiguous",
                    "qualify it, e.g. sales.id");
    expect_error_at(&f, "SELECT 1 FROM sales s JOIN Customers c ON id = c.id", TSR_ERR_INVALID_ARG,
                    "ON |id", "column 'id' is ambiguous", "qualify it, e.g. s.id");
    expect_error_at(&f, "SELECT 1 FROM sales s JOIN Customers S ON s.id = S.id",
                    TSR_ERR_INVALID_ARG, "|Customers", "table name 'S' is used more than once",
                    "different alias");
    expect_error_at(&f, "SELECT 1 FROM sales JOIN sales ON sales.id = sales.id",
                    TSR_ERR_INVALID_ARG, "JOIN |sales", "table name 'sales' is used more than once",
                    "sales AS sales2");
    expect_error_at(&f, "SELECT sales.id FROM sales a JOIN sales b ON a.id = b.id",
                    TSR_ERR_INVALID_ARG, "|sales.id", "table reference 'sales' is ambiguous",
                    "aliases");
    expect_error_at(&f, "SELECT zz.* FROM sales", TSR_ERR_NOT_FOUND, "|zz.*", "unknown table 'zz'",
                    NULL);
    /* ON sees only the tables joined so far */
    expect_error_at(&f,
                    "SELECT 1 FROM sales s JOIN Customers c ON s.cust_id = i.sale_id "
                    "JOIN items i ON i.sale_id = s.id",
                    TSR_ERR_NOT_FOUND, "|i.sale_id JOIN", "table 'i' is not joined yet",
                    "later ON clause");
    expect_error_at(&f,
                    "SELECT 1 FROM sales s JOIN Customers c ON sku = c.name "
                    "JOIN items i ON i.sale_id = s.id",
                    TSR_ERR_NOT_FOUND, "|sku", "unknown column 'sku'",
                    "'sku' is a column of 'i', which is joined later");
    /* aliases: not in WHERE (hint says why), yes in ORDER BY, and the hint
       proposes them where they are legal */
    expect_error_at(&f, "SELECT quantity AS q FROM sales WHERE q > 1", TSR_ERR_NOT_FOUND,
                    "WHERE |q", "unknown column 'q'", "select-list alias, which WHERE cannot use");
    expect_error_at(&f, "SELECT COUNT(*) AS n FROM sales HAVING n > 1", TSR_ERR_NOT_FOUND,
                    "HAVING |n", "unknown column 'n'",
                    "'n' is a select-list alias, which HAVING cannot use");
    expect_error_at(&f, "SELECT quantity AS total FROM sales ORDER BY totl + 1", TSR_ERR_NOT_FOUND,
                    "|totl", "unknown column 'totl'", "did you mean 'total'?");
    expect_error_at(&f, "SELECT quantity AS total FROM sales WHERE totl > 1", TSR_ERR_NOT_FOUND,
                    "|totl", "unknown column 'totl'", "");
    /* multi-line positions */
    expect_error(&f, "SELECT id,\n       qty\nFROM sales", TSR_ERR_NOT_FOUND, 2, 8,
                 "unknown column 'qty'", "did you mean 'quantity'?");
    expect_error(&f, "SELECT id\n  FROM sales\n  WHERE region -- a comment\n  /* x */ = 5",
                 TSR_ERR_TYPE, 4, 11, "cannot compare VARCHAR with BIGINT", NULL);
    /* functions */
    expect_error_at(&f, "SELECT sume(quantity) FROM sales", TSR_ERR_NOT_FOUND, "|sume",
                    "unknown function 'sume'", "did you mean 'sum'?");
    expect_error_at(&f, "SELECT upper(region) FROM sales", TSR_ERR_NOT_FOUND, "|upper",
                    "unknown function 'upper'", "COUNT, SUM, MIN, MAX and AVG");
    expect_error_at(&f, "SELECT id FROM sales WHERE cnt(id) > 1", TSR_ERR_NOT_FOUND, "|cnt",
                    "unknown function 'cnt'", "did you mean 'count'?");
    fx_free(&f);
}

static void test_type_errors(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_error_at(&f, "SELECT id FROM sales WHERE quantity + 1", TSR_ERR_TYPE, "|quantity + 1",
                    "WHERE needs a boolean expression, found BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE region", TSR_ERR_TYPE, "|region",
                    "WHERE needs a boolean expression, found VARCHAR", NULL);
    expect_error_at(&f, "SELECT 1 FROM sales s JOIN items i ON i.sku", TSR_ERR_TYPE, "|i.sku",
                    "JOIN ... ON needs a boolean expression, found VARCHAR", NULL);
    expect_error_at(&f, "SELECT COUNT(*) FROM sales HAVING COUNT(*)", TSR_ERR_TYPE, "HAVING |COUNT",
                    "HAVING needs a boolean expression, found BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE region = 5", TSR_ERR_TYPE, "region |= 5",
                    "cannot compare VARCHAR with BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE (region) >= 5.5", TSR_ERR_TYPE, "|>= 5.5",
                    "cannot compare VARCHAR with DOUBLE", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE shipped = 1", TSR_ERR_TYPE, "|= 1",
                    "cannot compare BOOLEAN with BIGINT", NULL);
    expect_error_at(&f, "SELECT shipped + 1 FROM sales", TSR_ERR_TYPE, "|+ 1",
                    "cannot apply '+' to BOOLEAN and BIGINT", NULL);
    expect_error_at(&f, "SELECT (id*2)%region FROM sales", TSR_ERR_TYPE, "|%region",
                    "cannot apply '%' to BIGINT and VARCHAR", NULL);
    expect_error_at(&f, "SELECT 'a' - 'b' FROM sales", TSR_ERR_TYPE, "|- 'b'",
                    "cannot apply '-' to VARCHAR and VARCHAR", NULL);
    expect_error_at(&f, "SELECT -region FROM sales", TSR_ERR_TYPE, "|-region",
                    "cannot negate VARCHAR", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE NOT quantity", TSR_ERR_TYPE, "NOT |quantity",
                    "argument of NOT must be BOOLEAN, found BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE shipped AND quantity", TSR_ERR_TYPE,
                    "AND |quantity", "argument of AND must be BOOLEAN, found BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE 'x' OR shipped", TSR_ERR_TYPE, "|'x'",
                    "argument of OR must be BOOLEAN, found VARCHAR", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE quantity LIKE 'a%'", TSR_ERR_TYPE,
                    "|quantity LIKE", "LIKE needs a VARCHAR operand, found BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE region LIKE 5", TSR_ERR_TYPE, "LIKE |5",
                    "the pattern of LIKE must be VARCHAR, found BIGINT", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE region LIKE region", TSR_ERR_UNSUPPORTED,
                    "LIKE |region", "the pattern of LIKE must be a constant string", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE quantity IN (1, id)", TSR_ERR_UNSUPPORTED,
                    "1, |id", "IN list elements must be constants", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE quantity IN (1, 'a')", TSR_ERR_TYPE, "|'a'",
                    "cannot compare BIGINT with VARCHAR", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE NULL IN (1, NULL, 'a')", TSR_ERR_TYPE, "|'a'",
                    "cannot compare BIGINT with VARCHAR", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE quantity BETWEEN 'a' AND 5", TSR_ERR_TYPE,
                    "|'a'", "cannot compare BIGINT with VARCHAR", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE price NOT BETWEEN 1 AND shipped", TSR_ERR_TYPE,
                    "|shipped", "cannot compare DOUBLE with BOOLEAN", NULL);
    expect_error_at(&f, "SELECT 1 FROM sales s JOIN items i ON s.region = i.sale_id", TSR_ERR_TYPE,
                    "|= i.sale_id", "cannot compare VARCHAR with BIGINT", NULL);
    fx_free(&f);
}

static void test_clause_errors(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    expect_error_at(&f, "SELECT id FROM sales WHERE SUM(quantity) > 1", TSR_ERR_INVALID_ARG, "|SUM",
                    "aggregate functions are not allowed in WHERE", "HAVING");
    expect_error_at(&f,
                    "SELECT 1 FROM sales s JOIN items i ON s.id = i.sale_id AND max(i.weight) > 1",
                    TSR_ERR_INVALID_ARG, "|max", "aggregate functions are not allowed in JOIN", "");
    expect_error_at(&f, "SELECT COUNT(*) AS n FROM sales GROUP BY n", TSR_ERR_INVALID_ARG, "|COUNT",
                    "aggregate functions are not allowed in GROUP BY", NULL);
    expect_error_at(&f, "SELECT region, COUNT(*) FROM sales GROUP BY 2", TSR_ERR_INVALID_ARG,
                    "|COUNT", "aggregate functions are not allowed in GROUP BY", NULL);
    expect_error_at(&f, "SELECT SUM(COUNT(*)) FROM sales", TSR_ERR_INVALID_ARG, "SUM(|COUNT",
                    "aggregate function calls cannot be nested", NULL);
    expect_error_at(&f, "SELECT SUM(quantity, price) FROM sales", TSR_ERR_TYPE, "|SUM",
                    "sum() takes exactly one argument, found 2", NULL);
    expect_error_at(&f, "SELECT SUM(region) FROM sales", TSR_ERR_TYPE, "SUM(|region",
                    "SUM needs a numeric argument, found VARCHAR", NULL);
    expect_error_at(&f, "SELECT region FROM sales GROUP BY region HAVING AVG(shipped) > 0",
                    TSR_ERR_TYPE, "AVG(|shipped", "AVG needs a numeric argument, found BOOLEAN",
                    NULL);
    expect_error_at(&f, "SELECT SUM(*) FROM sales", TSR_ERR_SYNTAX, "SUM(|*",
                    "'*' as an argument is only allowed in COUNT(*)", NULL);
    expect_error_at(&f, "SELECT id FROM sales WHERE id IN (1, 2) AND COUNT(*) > 0",
                    TSR_ERR_INVALID_ARG, "|COUNT", "not allowed in WHERE", NULL);
    /* GROUP BY discipline */
    expect_error_at(
        &f, "SELECT region, quantity FROM sales GROUP BY region", TSR_ERR_INVALID_ARG, "|quantity",
        "column 'quantity' must appear in GROUP BY or be used in an aggregate", "MAX(quantity)");
    expect_error_at(&f, "SELECT quantity + 1, COUNT(*) FROM sales", TSR_ERR_INVALID_ARG,
                    "|quantity + 1", "column 'quantity' must appear in GROUP BY", NULL);
    expect_error_at(&f, "SELECT region FROM sales GROUP BY region ORDER BY price",
                    TSR_ERR_INVALID_ARG, "BY |price", "column 'price' must appear in GROUP BY",
                    NULL);
    expect_error_at(&f, "SELECT region FROM sales GROUP BY region HAVING quantity > 1",
                    TSR_ERR_INVALID_ARG, "|quantity >", "column 'quantity' must appear", NULL);
    expect_error_at(&f, "SELECT * FROM items GROUP BY sale_id", TSR_ERR_INVALID_ARG, "|*",
                    "column 'sku' must appear in GROUP BY", NULL);
    expect_error_at(&f, "SELECT id FROM sales ORDER BY COUNT(*)", TSR_ERR_INVALID_ARG, "SELECT |id",
                    "column 'id' must appear in GROUP BY", NULL);
    /* a column name wins over a select alias in GROUP BY (as in PostgreSQL) */
    expect_error_at(&f, "SELECT quantity AS id, COUNT(*) FROM sales GROUP BY id",
                    TSR_ERR_INVALID_ARG, "|quantity", "column 'quantity' must appear", NULL);
    expect_error_at(&f, "SELECT region FROM sales GROUP BY 2", TSR_ERR_INVALID_ARG, "BY |2",
                    "GROUP BY position 2 is not in select list", "the select list has 1 column");
    expect_error_at(&f, "SELECT region FROM sales GROUP BY 0", TSR_ERR_INVALID_ARG, "BY |0",
                    "GROUP BY position 0 is not in select list", NULL);
    /* ORDER BY */
    expect_error_at(&f, "SELECT id, price FROM sales ORDER BY 3", TSR_ERR_INVALID_ARG, "BY |3",
                    "ORDER BY position 3 is not in select list", "the select list has 2 columns");
    expect_error_at(
        &f, "SELECT DISTINCT region FROM sales ORDER BY price", TSR_ERR_INVALID_ARG, "BY |price",
        "for SELECT DISTINCT, ORDER BY expressions must appear in the select list", NULL);
    expect_error_at(&f, "SELECT id AS x, quantity AS X FROM sales ORDER BY x", TSR_ERR_INVALID_ARG,
                    "BY |x", "ORDER BY 'x' is ambiguous", NULL);
    /* joins and FROM */
    expect_error_at(&f, "SELECT s.id FROM sales s JOIN Customers c ON s.price > c.score",
                    TSR_ERR_UNSUPPORTED, "|s.price >",
                    "JOIN needs at least one equality between the two sides", "ON s.x = c.y");
    expect_error_at(&f, "SELECT 1 FROM sales s JOIN Customers c ON s.id = s.cust_id",
                    TSR_ERR_UNSUPPORTED, "|s.id = s", "JOIN needs at least one equality", NULL);
    expect_error_at(&f,
                    "SELECT 1 FROM sales s JOIN Customers c ON s.region = c.region OR s.id = c.id",
                    TSR_ERR_UNSUPPORTED, "|s.region", "JOIN needs at least one equality", NULL);
    expect_error_at(&f, "SELECT 1 + 1", TSR_ERR_UNSUPPORTED, "|1 + 1",
                    "SELECT without FROM is not supported yet", NULL);
    fx_free(&f);
}

/* Every status used for a planning error maps to the exit code DESIGN.md
 * promises: 2 for bad input, 3 for unknown names. */
static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(tsr_status_exit_code(TSR_ERR_TYPE), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_INVALID_ARG), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_UNSUPPORTED), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_SYNTAX), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_NOT_FOUND), 3);
}

/* ---- fault injection ---------------------------------------------------------- */

/* Plans sql with the n-th allocation failing, for every n until planning
 * needs no more allocations than were allowed: each failure must come back
 * as TSR_ERR_NOMEM (recorded once), never as a crash or a half plan. The AST
 * lives in an arena without injection, so only the planner's allocations
 * count. */
static long plan_under_faults(fixture_t *f, const char *sql)
{
    long n;
    tsr_arena_t ast_arena;
    tsr_arena_init(&ast_arena, NULL);
    tsr_ast_select_t *ast = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_sql_parse(&ast_arena, sql, strlen(sql), &ast, &err), TSR_OK);
    for (n = 0;; n++) {
        fx_reset(f);
        long before = atomic_load(&f->mem.failures);
        tsr_mem_fail_after(&f->mem, n);
        tsr_status_t rc = tsr_sql_plan(&f->arena, &f->cat, sql, ast, &f->plan, &f->err);
        tsr_mem_fail_after(&f->mem, -1);
        bool injected = atomic_load(&f->mem.failures) > before;
        if (!injected) {
            assert_int_equal(rc, TSR_OK);
            check_plan(f->plan);
            break;
        }
        assert_int_equal(rc, TSR_ERR_NOMEM);
        assert_int_equal(f->err.status, TSR_ERR_NOMEM);
        assert_true(n < 10000);
    }
    tsr_arena_release(&ast_arena);
    return n; /* the number of failures injected */
}

static void test_out_of_memory(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    plan_under_faults(&f, "SELECT id FROM sales");
    plan_under_faults(&f,
                      "SELECT c.name, SUM(s.quantity * s.price) AS revenue, COUNT(DISTINCT i.sku) "
                      "FROM sales s JOIN Customers c ON s.cust_id = c.id AND c.score > 1 "
                      "JOIN items i ON i.sale_id = s.id WHERE s.region IN ('a', 'b') "
                      "AND s.quantity BETWEEN 1 AND 5 GROUP BY c.name HAVING COUNT(*) > 1 "
                      "ORDER BY revenue DESC, MAX(i.weight) LIMIT 10 OFFSET 2");
    plan_under_faults(&f, "SELECT DISTINCT region, quantity % 3 FROM sales ORDER BY 2, 1");
    /* big enough to need many arena blocks */
    char sql[65536];
    size_t len = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
    for (int i = 0; i < 400; i++)
        len += (size_t)snprintf(sql + len, sizeof(sql) - len,
                                "%squantity * %d + price - id AS c%d, SUM(quantity + %d)",
                                i ? ", " : "", i, i, i);
    snprintf(sql + len, sizeof(sql) - len,
             " FROM sales WHERE region NOT LIKE 'x%%' GROUP BY quantity, price, id ORDER BY c1");
    assert_true(plan_under_faults(&f, sql) > 20);
    fx_free(&f);
}

/* An error recorded before planning is never overwritten (nor its hint). */
static void test_keeps_first_error(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    const char *sql = "SELECT qty FROM salse";
    tsr_ast_select_t *ast = NULL;
    assert_int_equal(tsr_sql_parse(&f.arena, sql, strlen(sql), &ast, &f.err), TSR_OK);
    tsr_error_set_at(&f.err, TSR_ERR_IO, "x.csv", 3, 4, "earlier");
    tsr_error_hint(&f.err, "old hint");
    assert_int_equal(tsr_sql_plan(&f.arena, &f.cat, sql, ast, &f.plan, &f.err), TSR_ERR_NOT_FOUND);
    assert_int_equal(f.err.status, TSR_ERR_IO);
    assert_string_equal(f.err.message, "earlier");
    assert_string_equal(f.err.hint, "old hint");
    /* NULL err and NULL sql are fine: no positions of operators, generic names */
    assert_int_equal(tsr_sql_plan(&f.arena, &f.cat, NULL, ast, &f.plan, NULL), TSR_ERR_NOT_FOUND);
    const char *ok = "SELECT quantity + 1 FROM sales WHERE region = 5";
    assert_int_equal(tsr_sql_parse(&f.arena, ok, strlen(ok), &ast, NULL), TSR_OK);
    tsr_error_clear(&f.err);
    assert_int_equal(tsr_sql_plan(&f.arena, &f.cat, NULL, ast, &f.plan, &f.err), TSR_ERR_TYPE);
    assert_int_equal(f.err.column, 38); /* the comparison's start: no text to find '=' in */
    assert_int_equal(tsr_sql_plan(&f.arena, &f.cat, ok, NULL, &f.plan, NULL), TSR_ERR_INVALID_ARG);
    fx_free(&f);
}

/* Deep expressions (as deep as the parser allows) plan quickly and in
 * little memory: grouped binding tries every subtree against the keys, which
 * must not bind a chain of n nodes n times. Bounded by allowing only so many
 * arena blocks (16 KiB each) before an allocation fails. */
static void test_deep_expressions(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    static char sql[32768];
    const char *shapes[] = {
        "SELECT quantity%s, COUNT(*) FROM sales GROUP BY quantity ORDER BY quantity%s",
        "SELECT id FROM sales WHERE id%s > 0 ORDER BY id%s",
        "SELECT region, SUM(quantity%s) FROM sales GROUP BY region HAVING MAX(price%s) > 1",
    };
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        static char chain[8192];
        size_t n = 0;
        for (int i = 0; i < 900; i++)
            n += (size_t)snprintf(chain + n, sizeof(chain) - n, " + %d", i % 7);
        snprintf(sql, sizeof(sql), shapes[k], chain, chain);
        tsr_arena_t ast_arena;
        tsr_arena_init(&ast_arena, NULL);
        tsr_ast_select_t *ast = NULL;
        assert_int_equal(tsr_sql_parse(&ast_arena, sql, strlen(sql), &ast, &f.err), TSR_OK);
        fx_reset(&f);
        long before = atomic_load(&f.mem.failures);
        tsr_mem_fail_after(&f.mem, 100);
        tsr_status_t rc = tsr_sql_plan(&f.arena, &f.cat, sql, ast, &f.plan, &f.err);
        tsr_mem_fail_after(&f.mem, -1);
        if (rc != TSR_OK)
            print_message("shape %zu: %s\n", k, f.err.message);
        assert_int_equal(rc, TSR_OK);
        assert_int_equal(atomic_load(&f.mem.failures), before);
        check_plan(f.plan);
        tsr_arena_release(&ast_arena);
    }
    fx_free(&f);
}

/* ---- random queries ------------------------------------------------------------- */

/* A generator of well-typed random queries over the fixture's tables: every
 * one must plan, and its plan must pass check_plan. Mutated variants (a name
 * garbled, a literal of another type) must plan or fail cleanly with a
 * position inside the text. */
typedef struct gen {
    uint64_t rng;
    char sql[8192];
    size_t len;
    /* tables in scope: alias and table index into the fixture */
    const char *alias[3];
    int table[3];
    int ntables;
} gen_t;

static const struct {
    const char *name;
    int ncols;
    const char *cols[6];
    tsr_type_t types[6];
} g_tables[] = {
    {"sales",
     6,
     {"id", "region", "quantity", "price", "shipped", "cust_id"},
     {TSR_TYPE_INT64, TSR_TYPE_VARCHAR, TSR_TYPE_INT64, TSR_TYPE_DOUBLE, TSR_TYPE_BOOL,
      TSR_TYPE_INT64}},
    {"Customers",
     4,
     {"id", "name", "region", "score"},
     {TSR_TYPE_INT64, TSR_TYPE_VARCHAR, TSR_TYPE_VARCHAR, TSR_TYPE_DOUBLE}},
    {"items", 3, {"sale_id", "sku", "weight"}, {TSR_TYPE_INT64, TSR_TYPE_VARCHAR, TSR_TYPE_DOUBLE}},
};

static uint64_t rnd(gen_t *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static int pick(gen_t *g, int n)
{
    return (int)(rnd(g) % (uint64_t)n);
}

static void emit(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(gen_t *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g->sql + g->len, sizeof(g->sql) - g->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(g->sql) - g->len);
    g->len += (size_t)n;
}

/* A column of type t in scope (qualified, or bare when its name is unique);
 * false when there is none. */
static bool emit_column(gen_t *g, tsr_type_t t)
{
    int cand[32][2], n = 0;
    for (int i = 0; i < g->ntables; i++) {
        int ti = g->table[i];
        for (int c = 0; c < g_tables[ti].ncols; c++)
            if (g_tables[ti].types[c] == t)
                cand[n][0] = i, cand[n++][1] = c;
    }
    if (n == 0)
        return false;
    int k = pick(g, n), i = cand[k][0], c = cand[k][1];
    const char *name = g_tables[g->table[i]].cols[c];
    int uses = 0;
    for (int j = 0; j < g->ntables; j++)
        for (int d = 0; d < g_tables[g->table[j]].ncols; d++)
            uses += strcmp(g_tables[g->table[j]].cols[d], name) == 0;
    if (uses > 1 || pick(g, 2))
        emit(g, "%s.%s", g->alias[i], name);
    else
        emit(g, "%s", name);
    return true;
}

static void emit_expr(gen_t *g, tsr_type_t t, int depth);

static void emit_literal(gen_t *g, tsr_type_t t)
{
    static const char *const strs[] = {"'a'", "'east'", "''", "'it''s'", "'x%'"};
    switch (t) {
    case TSR_TYPE_INT64:
        emit(g, "%d", pick(g, 200) - 100);
        break;
    case TSR_TYPE_DOUBLE:
        emit(g, "%d.%d", pick(g, 100), pick(g, 10));
        break;
    case TSR_TYPE_VARCHAR:
        emit(g, "%s", strs[pick(g, 5)]);
        break;
    case TSR_TYPE_BOOL:
        emit(g, "%s", pick(g, 2) ? "TRUE" : "FALSE");
        break;
    case TSR_TYPE_NULL:
        emit(g, "NULL");
        break;
    }
}

static tsr_type_t numeric_type(gen_t *g)
{
    return pick(g, 2) ? TSR_TYPE_INT64 : TSR_TYPE_DOUBLE;
}

static void emit_bool(gen_t *g, int depth)
{
    static const char *const cmp[] = {"=", "<>", "!=", "<", "<=", ">", ">="};
    switch (depth <= 0 ? pick(g, 2) : pick(g, 11)) {
    case 0:
        if (!emit_column(g, TSR_TYPE_BOOL))
            emit_literal(g, TSR_TYPE_BOOL);
        break;
    case 1: {
        tsr_type_t t = pick(g, 3) ? numeric_type(g) : TSR_TYPE_VARCHAR;
        emit_expr(g, t, depth - 1);
        emit(g, " %s ", cmp[pick(g, 7)]);
        if (pick(g, 8) == 0)
            emit(g, "NULL");
        else
            emit_expr(g, t == TSR_TYPE_VARCHAR ? t : numeric_type(g), depth - 1);
        break;
    }
    case 2:
    case 3:
        emit(g, "(");
        emit_bool(g, depth - 1);
        emit(g, pick(g, 2) ? " AND " : " OR ");
        emit_bool(g, depth - 1);
        emit(g, ")");
        break;
    case 4:
        emit(g, "NOT ");
        emit_bool(g, depth - 1);
        break;
    case 5:
        emit_expr(g, (tsr_type_t)(1 + pick(g, 4)), depth - 1);
        emit(g, pick(g, 2) ? " IS NULL" : " IS NOT NULL");
        break;
    case 6:
        emit_expr(g, numeric_type(g), depth - 1);
        emit(g, pick(g, 2) ? " BETWEEN " : " NOT BETWEEN ");
        emit_expr(g, numeric_type(g), 0);
        emit(g, " AND ");
        emit_expr(g, numeric_type(g), 0);
        break;
    case 7: {
        tsr_type_t t = pick(g, 2) ? numeric_type(g) : TSR_TYPE_VARCHAR;
        emit_expr(g, t, depth - 1);
        emit(g, pick(g, 2) ? " IN (" : " NOT IN (");
        for (int i = 0, n = 1 + pick(g, 4); i < n; i++) {
            emit(g, i ? ", " : "");
            if (pick(g, 6) == 0)
                emit(g, "NULL");
            else if (t == TSR_TYPE_VARCHAR)
                emit_literal(g, t);
            else
                emit(g, "%s%d%s", pick(g, 3) ? "" : "-", pick(g, 50), pick(g, 3) ? "" : ".5");
        }
        emit(g, ")");
        break;
    }
    case 8:
        if (!emit_column(g, TSR_TYPE_VARCHAR))
            emit_literal(g, TSR_TYPE_VARCHAR);
        emit(g, pick(g, 2) ? " LIKE " : " NOT LIKE ");
        emit_literal(g, TSR_TYPE_VARCHAR);
        break;
    case 9:
        emit_literal(g, TSR_TYPE_BOOL);
        break;
    default:
        emit(g, "(");
        emit_bool(g, depth - 1);
        emit(g, ")");
        break;
    }
}

static void emit_expr(gen_t *g, tsr_type_t t, int depth)
{
    static const char *const arith[] = {"+", "-", "*", "/", "%"};
    if (t == TSR_TYPE_BOOL) {
        emit_bool(g, depth);
        return;
    }
    int choice = depth <= 0 ? pick(g, 2) : pick(g, 6);
    if (t == TSR_TYPE_VARCHAR && choice > 1)
        choice = pick(g, 2);
    switch (choice) {
    case 0:
        if (emit_column(g, t))
            break;
        /* fall through */
    case 1:
        emit_literal(g, t);
        break;
    case 2:
    case 3: {
        /* INT64 op INT64 stays INT64; a DOUBLE needs one DOUBLE side */
        tsr_type_t lt = t, rt = t;
        if (t == TSR_TYPE_DOUBLE && pick(g, 2))
            *(pick(g, 2) ? &lt : &rt) = TSR_TYPE_INT64;
        emit(g, "(");
        emit_expr(g, lt, depth - 1);
        emit(g, " %s ", arith[pick(g, 5)]);
        emit_expr(g, rt, depth - 1);
        emit(g, ")");
        break;
    }
    case 4: /* "- " : "--" would start a comment */
        emit(g, "- ");
        emit_expr(g, t, depth - 1);
        break;
    default:
        emit(g, "(");
        emit_expr(g, t, depth - 1);
        emit(g, ")");
        break;
    }
}

static void emit_from(gen_t *g)
{
    static const char *const sales_alias[] = {"s", "S1", "sales"};
    g->ntables = 1;
    int shape = pick(g, 5);
    if (shape == 4) { /* self-join of items */
        g->table[0] = g->table[1] = 2;
        g->alias[0] = "a";
        g->alias[1] = "b";
        g->ntables = 2;
        emit(g, " FROM items a JOIN items AS b ON a.sale_id = b.sale_id");
        if (pick(g, 2)) {
            emit(g, " AND ");
            emit_bool(g, 2);
        }
        return;
    }
    g->table[0] = 0;
    g->alias[0] = sales_alias[pick(g, 3)];
    if (strcmp(g->alias[0], "sales") == 0)
        emit(g, " FROM sales");
    else
        emit(g, " FROM sales %s", g->alias[0]);
    if (shape >= 1) {
        g->table[1] = 1;
        g->alias[1] = "c";
        g->ntables = 2;
        emit(g, " JOIN Customers c ON ");
        if (pick(g, 2))
            emit(g, "%s.cust_id = c.id", g->alias[0]);
        else
            emit(g, "c.id = %s.cust_id", g->alias[0]);
        if (pick(g, 3) == 0) {
            emit(g, " AND ");
            emit_bool(g, 2);
        }
    }
    if (shape >= 2) {
        g->table[2] = 2;
        g->alias[2] = "i";
        g->ntables = 3;
        emit(g, " JOIN items i ON i.sale_id = %s.id", g->alias[0]);
        if (shape == 3) {
            emit(g, " AND i.weight < c.score");
        }
    }
}

/* Generates one query into g->sql; returns the number of select items. */
static int gen_query(gen_t *g)
{
    static const char *const aggs[] = {"SUM", "AVG", "MIN", "MAX", "COUNT"};
    g->len = 0;
    g->sql[0] = '\0';
    bool grouped = pick(g, 2);
    bool distinct = !grouped && pick(g, 4) == 0;
    /* FROM first (the select list needs the scope), then splice */
    gen_t from = *g;
    from.len = 0;
    emit_from(&from);
    g->rng = from.rng;
    memcpy(g->alias, from.alias, sizeof(g->alias));
    memcpy(g->table, from.table, sizeof(g->table));
    g->ntables = from.ntables;
    char keys[3][512];
    int nkeys = grouped ? pick(g, 3) : 0;
    for (int k = 0; k < nkeys; k++) {
        gen_t kg = *g;
        kg.len = 0;
        /* a key mentions a column: a bare integer would be an ordinal */
        if (pick(&kg, 2)) {
            emit_column(&kg, TSR_TYPE_VARCHAR);
        } else {
            emit(&kg, "(");
            emit_column(&kg, TSR_TYPE_INT64);
            emit(&kg, " %% %d + ", 1 + pick(&kg, 5));
            emit_expr(&kg, TSR_TYPE_INT64, 1);
            emit(&kg, ")");
        }
        g->rng = kg.rng;
        snprintf(keys[k], sizeof(keys[k]), "%s", kg.sql);
    }
    emit(g, "SELECT %s", distinct ? "DISTINCT " : "");
    int nitems = 1 + pick(g, 4);
    for (int i = 0; i < nitems; i++) {
        emit(g, i ? ", " : "");
        if (grouped) {
            if (nkeys && pick(g, 2)) {
                emit(g, "%s", keys[pick(g, nkeys)]);
            } else if (pick(g, 5) == 0) {
                emit(g, "COUNT(*)");
            } else {
                int a = pick(g, 5);
                emit(g, "%s(%s", aggs[a], a == 4 && pick(g, 2) ? "DISTINCT " : "");
                tsr_type_t t = a <= 1 ? numeric_type(g) : (tsr_type_t)(1 + pick(g, 4));
                /* VARCHAR arguments are columns here (computed strings do
                   not exist; MIN('a') has its own test in test_aggregate_const) */
                if (t != TSR_TYPE_VARCHAR || !emit_column(g, t))
                    emit_expr(g, t == TSR_TYPE_VARCHAR ? TSR_TYPE_INT64 : t, 2);
                emit(g, ")");
            }
        } else {
            emit_expr(g, (tsr_type_t)(1 + pick(g, 4)), 3);
        }
        if (pick(g, 3) == 0)
            emit(g, " AS c%d", i);
    }
    emit(g, "%s", from.sql);
    if (pick(g, 2)) {
        emit(g, " WHERE ");
        emit_bool(g, 3);
    }
    if (grouped && nkeys) {
        emit(g, " GROUP BY ");
        for (int k = 0; k < nkeys; k++)
            emit(g, "%s%s", k ? ", " : "", keys[k]);
    }
    if (grouped && pick(g, 3) == 0)
        emit(g, " HAVING COUNT(*) > %d OR SUM(1) < 3", pick(g, 5));
    if (pick(g, 2)) {
        emit(g, " ORDER BY ");
        for (int i = 0, n = 1 + pick(g, 3); i < n; i++) {
            emit(g, i ? ", " : "");
            if (distinct || pick(g, 2))
                emit(g, "%d", 1 + pick(g, nitems));
            else if (grouped && nkeys && pick(g, 2))
                emit(g, "%s", keys[pick(g, nkeys)]);
            else if (grouped)
                emit(g, "MAX(%d)", pick(g, 9));
            else {
                size_t start = g->len;
                emit_expr(g, (tsr_type_t)(1 + pick(g, 4)), 2);
                if (strspn(g->sql + start, " ()-0123456789") == g->len - start)
                    emit(g, " + 0"); /* a bare integer would be an ordinal */
            }
            emit(g, "%s", pick(g, 2) ? " DESC" : "");
        }
    }
    if (pick(g, 3) == 0)
        emit(g, " LIMIT %d OFFSET %d", pick(g, 20), pick(g, 3));
    return nitems;
}

static void test_random_queries(void **state)
{
    (void)state;
    fixture_t f;
    fx_init(&f);
    gen_t g;
    memset(&g, 0, sizeof(g));
    g.rng = 0x9e3779b97f4a7c15ull;
    int planned = 0;
    for (int q = 0; q < 3000; q++) {
        int nitems = gen_query(&g);
        tsr_status_t rc = plan_sql(&f, g.sql);
        if (rc != TSR_OK) {
            print_message("query %d [%s]\n  failed: %s (%d:%d) %s\n", q, g.sql, f.err.message,
                          f.err.line, f.err.column, f.err.hint);
            fail();
        }
        assert_int_equal(f.plan->ncols, (size_t)nitems);
        planned++;
        /* mutate: garble one identifier or put a string where a number was */
        char mutated[8192];
        snprintf(mutated, sizeof(mutated), "%s", g.sql);
        size_t n = strlen(mutated);
        size_t at = (size_t)pick(&g, (int)n);
        if (pick(&g, 2)) {
            for (size_t k = at; k < n; k++) {
                if (mutated[k] >= 'a' && mutated[k] <= 'z') {
                    mutated[k] = mutated[k] == 'q' ? 'z' : 'q';
                    break;
                }
            }
        } else {
            for (size_t k = at; k < n; k++) {
                if (mutated[k] >= '0' && mutated[k] <= '9' && k > 0 && mutated[k - 1] == ' ') {
                    mutated[k] = '\'';
                    size_t e = k + 1;
                    while (e < n && mutated[e] >= '0' && mutated[e] <= '9')
                        e++;
                    if (e < n && mutated[e] != '\'')
                        mutated[e - (e == k + 1 ? 0 : 1)] = '\'';
                    break;
                }
            }
        }
        fx_reset(&f);
        tsr_ast_select_t *ast = NULL;
        if (tsr_sql_parse(&f.arena, mutated, strlen(mutated), &ast, &f.err) != TSR_OK)
            continue;
        rc = tsr_sql_plan(&f.arena, &f.cat, mutated, ast, &f.plan, &f.err);
        if (rc == TSR_OK) {
            check_plan(f.plan);
            continue;
        }
        bool clean = rc != TSR_ERR_INTERNAL && rc != TSR_ERR_NOMEM && f.err.status == rc &&
                     f.err.line >= 1 && f.err.column >= 1 && f.err.message[0];
        if (!clean) {
            print_message("mutated [%s]\n  %s %d:%d %s\n", mutated, tsr_status_name(rc), f.err.line,
                          f.err.column, f.err.message);
            fail();
        }
    }
    assert_int_equal(planned, 3000);
    fx_free(&f);
}

/* ---- end to end: parse, plan, execute, compare with a model ------------------ */

/* The model: rows as C structs; NULLs as flags. */
typedef struct sale_row {
    int64_t id;
    int region; /* index into g_regions, -1: NULL */
    bool qty_null;
    int64_t qty;
    bool price_null;
    double price;
    int shipped; /* 0/1, -1: NULL */
    bool cust_null;
    int64_t cust_id;
} sale_row_t;

typedef struct cust_row {
    int64_t id;
    char name[16];
    int region;
    bool score_null;
    double score;
} cust_row_t;

typedef struct item_row {
    int64_t sale_id;
    char sku[8];
    double weight;
} item_row_t;

static const char *const g_regions[] = {"east", "west", "north", "south"};

typedef struct e2e {
    tsr_mem_t mem;
    tsr_catalog_t cat;
    tsr_pool_t *pool;
    uint64_t rng;
    sale_row_t *sales;
    size_t nsales;
    cust_row_t *cust;
    size_t ncust;
    item_row_t *items;
    size_t nitems;
    /* rows of the last result / model, as "v|v|v" strings */
    char **got;
    size_t ngot;
    char **want;
    size_t nwant;
    size_t want_cap;
} e2e_t;

static uint64_t e_rnd(e2e_t *e)
{
    e->rng ^= e->rng << 13;
    e->rng ^= e->rng >> 7;
    e->rng ^= e->rng << 17;
    return e->rng;
}

static int e_pick(e2e_t *e, int n)
{
    return (int)(e_rnd(e) % (uint64_t)n);
}

/* Fills n rows of one column; VARCHAR values come from strs (NULL entries:
 * NULL), other types from i64/f64 with nulls flags. */
typedef struct col_src {
    tsr_type_t type;
    const int64_t *i64;
    const double *f64;
    const char *const *strs;
    const bool *nulls;
} col_src_t;

static void add_data_table(e2e_t *e, const char *name, size_t ncols, const char *const *names,
                           const col_src_t *src, size_t nrows)
{
    tsr_type_t types[8];
    for (size_t c = 0; c < ncols; c++)
        types[c] = src[c].type;
    tsr_table_t *t = NULL;
    assert_int_equal(tsr_table_create(&e->mem, name, ncols, names, types, &t), TSR_OK);
    tsr_dict_t *dicts[8] = {0};
    for (size_t c = 0; c < ncols; c++) {
        if (types[c] != TSR_TYPE_VARCHAR)
            continue;
        assert_int_equal(tsr_dict_create(&e->mem, &dicts[c]), TSR_OK);
        for (size_t r = 0; r < nrows; r++) {
            uint32_t code;
            if (src[c].strs[r])
                assert_int_equal(
                    tsr_dict_intern(dicts[c], src[c].strs[r], strlen(src[c].strs[r]), &code),
                    TSR_OK);
        }
        assert_int_equal(tsr_dict_freeze(dicts[c]), TSR_OK);
        tsr_table_adopt_dict(t, c, dicts[c]);
    }
    for (size_t start = 0; start < nrows; start += TSR_BATCH_ROWS) {
        size_t n = nrows - start < TSR_BATCH_ROWS ? nrows - start : TSR_BATCH_ROWS;
        tsr_vector_t *cols = tsr_mem_calloc(&e->mem, ncols, sizeof(*cols));
        assert_non_null(cols);
        for (size_t c = 0; c < ncols; c++) {
            tsr_vector_t *v = &cols[c];
            assert_int_equal(tsr_vector_alloc(&e->mem, types[c], n, true, dicts[c], v), TSR_OK);
            for (size_t r = 0; r < n; r++) {
                size_t k = start + r;
                bool null = types[c] == TSR_TYPE_VARCHAR ? src[c].strs[k] == NULL : src[c].nulls[k];
                tsr_bit_set(v->validity, r, !null);
                switch (types[c]) {
                case TSR_TYPE_BOOL:
                    ((uint8_t *)v->data)[r] = null ? 0 : (uint8_t)src[c].i64[k];
                    break;
                case TSR_TYPE_INT64:
                    ((int64_t *)v->data)[r] = null ? 0 : src[c].i64[k];
                    break;
                case TSR_TYPE_DOUBLE:
                    ((double *)v->data)[r] = null ? 0 : src[c].f64[k];
                    break;
                case TSR_TYPE_VARCHAR: {
                    uint32_t code = 0;
                    if (!null)
                        assert_true(
                            tsr_dict_find(dicts[c], src[c].strs[k], strlen(src[c].strs[k]), &code));
                    ((uint32_t *)v->data)[r] = code;
                    break;
                }
                case TSR_TYPE_NULL:
                    break;
                }
            }
        }
        assert_int_equal(tsr_table_append_batch(t, n, cols), TSR_OK);
    }
    assert_int_equal(tsr_catalog_add(&e->cat, t), TSR_OK);
}

/* Random tables: nsales sales, customers with a few duplicated ids, items
 * pointing at sales (and at some that do not exist). */
static void e2e_init(e2e_t *e, size_t nsales, uint64_t seed, bool pool)
{
    memset(e, 0, sizeof(*e));
    tsr_mem_init(&e->mem);
    tsr_catalog_init(&e->cat, &e->mem);
    if (pool)
        assert_int_equal(tsr_pool_create(&e->mem, 3, &e->pool), TSR_OK);
    e->rng = seed;
    e->nsales = nsales;
    e->ncust = 40;
    e->nitems = nsales / 2 + 3;
    e->sales = calloc(nsales + 1, sizeof(*e->sales));
    e->cust = calloc(e->ncust, sizeof(*e->cust));
    e->items = calloc(e->nitems, sizeof(*e->items));
    assert_true(e->sales && e->cust && e->items);
    size_t n = nsales > e->nitems ? nsales : e->nitems;
    n = n > e->ncust ? n : e->ncust;
    int64_t *i64[6];
    double *f64[2];
    bool *nulls[6];
    const char **strs[3];
    for (int k = 0; k < 6; k++) {
        i64[k] = calloc(n + 1, sizeof(int64_t));
        nulls[k] = calloc(n + 1, sizeof(bool));
        assert_true(i64[k] && nulls[k]);
    }
    for (int k = 0; k < 2; k++)
        assert_non_null(f64[k] = calloc(n + 1, sizeof(double)));
    for (int k = 0; k < 3; k++)
        assert_non_null(strs[k] = calloc(n + 1, sizeof(char *)));

    for (size_t r = 0; r < nsales; r++) {
        sale_row_t *s = &e->sales[r];
        s->id = (int64_t)r + 1;
        s->region = e_pick(e, 5) - 1;
        s->qty_null = e_pick(e, 10) == 0;
        s->qty = s->qty_null ? 0 : e_pick(e, 21);
        s->price_null = e_pick(e, 10) == 0;
        s->price = s->price_null ? 0 : e_pick(e, 10000) / 100.0;
        s->shipped = e_pick(e, 10) == 0 ? -1 : e_pick(e, 2);
        s->cust_null = e_pick(e, 20) == 0;
        s->cust_id = s->cust_null ? 0 : e_pick(e, (int)e->ncust + 3);
        i64[0][r] = s->id;
        strs[0][r] = s->region < 0 ? NULL : g_regions[s->region];
        i64[1][r] = s->qty, nulls[1][r] = s->qty_null;
        f64[0][r] = s->price, nulls[2][r] = s->price_null;
        i64[2][r] = s->shipped < 0 ? 0 : s->shipped, nulls[3][r] = s->shipped < 0;
        i64[3][r] = s->cust_id, nulls[4][r] = s->cust_null;
    }
    static const char *const sales_names[] = {"id",    "region",  "quantity",
                                              "price", "shipped", "cust_id"};
    col_src_t sales_src[] = {
        {TSR_TYPE_INT64, i64[0], NULL, NULL, nulls[5]},
        {TSR_TYPE_VARCHAR, NULL, NULL, strs[0], NULL},
        {TSR_TYPE_INT64, i64[1], NULL, NULL, nulls[1]},
        {TSR_TYPE_DOUBLE, NULL, f64[0], NULL, nulls[2]},
        {TSR_TYPE_BOOL, i64[2], NULL, NULL, nulls[3]},
        {TSR_TYPE_INT64, i64[3], NULL, NULL, nulls[4]},
    };
    add_data_table(e, "sales", 6, sales_names, sales_src, nsales);

    for (size_t r = 0; r < e->ncust; r++) {
        cust_row_t *c = &e->cust[r];
        c->id = r < e->ncust - 4 ? (int64_t)r : (int64_t)(r % 5); /* ids 0..4 twice */
        snprintf(c->name, sizeof(c->name), "%s%zu", r < e->ncust - 4 ? "c" : "d", r);
        c->region = e_pick(e, 5) - 1;
        c->score_null = e_pick(e, 8) == 0;
        c->score = c->score_null ? 0 : e_pick(e, 1000) / 100.0;
        i64[0][r] = c->id;
        strs[1][r] = c->name;
        strs[2][r] = c->region < 0 ? NULL : g_regions[c->region];
        f64[0][r] = c->score, nulls[0][r] = c->score_null;
    }
    static const char *const cust_names[] = {"id", "name", "region", "score"};
    col_src_t cust_src[] = {
        {TSR_TYPE_INT64, i64[0], NULL, NULL, nulls[5]},
        {TSR_TYPE_VARCHAR, NULL, NULL, strs[1], NULL},
        {TSR_TYPE_VARCHAR, NULL, NULL, strs[2], NULL},
        {TSR_TYPE_DOUBLE, NULL, f64[0], NULL, nulls[0]},
    };
    add_data_table(e, "Customers", 4, cust_names, cust_src, e->ncust);

    static const char *const skus[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6"};
    for (size_t r = 0; r < e->nitems; r++) {
        item_row_t *it = &e->items[r];
        it->sale_id = e_pick(e, (int)nsales + 5) + 1;
        snprintf(it->sku, sizeof(it->sku), "%s", skus[e_pick(e, 7)]);
        it->weight = e_pick(e, 3000) / 100.0;
        i64[0][r] = it->sale_id;
        strs[0][r] = skus[it->sku[1] - '0'];
        f64[0][r] = it->weight;
        nulls[0][r] = false;
    }
    static const char *const item_names[] = {"sale_id", "sku", "weight"};
    col_src_t item_src[] = {
        {TSR_TYPE_INT64, i64[0], NULL, NULL, nulls[5]},
        {TSR_TYPE_VARCHAR, NULL, NULL, strs[0], NULL},
        {TSR_TYPE_DOUBLE, NULL, f64[0], NULL, nulls[0]},
    };
    add_data_table(e, "items", 3, item_names, item_src, e->nitems);
    for (int k = 0; k < 6; k++) {
        free(i64[k]);
        free(nulls[k]);
    }
    for (int k = 0; k < 2; k++)
        free(f64[k]);
    for (int k = 0; k < 3; k++)
        free(strs[k]);
}

static void free_rows(char **rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i]);
    free(rows);
}

static void e2e_clear_rows(e2e_t *e)
{
    free_rows(e->got, e->ngot);
    free_rows(e->want, e->nwant);
    e->got = e->want = NULL;
    e->ngot = e->nwant = e->want_cap = 0;
}

static void e2e_free(e2e_t *e)
{
    e2e_clear_rows(e);
    tsr_catalog_free(&e->cat);
    tsr_pool_destroy(e->pool);
    free(e->sales);
    free(e->cust);
    free(e->items);
}

/* Runs sql and keeps its rows as strings in e->got. */
static void e2e_run(e2e_t *e, const char *sql)
{
    tsr_arena_t arena;
    tsr_arena_init(&arena, &e->mem);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_ast_select_t *ast = NULL;
    tsr_plan_t *plan = NULL;
    tsr_table_t *res = NULL;
    tsr_status_t rc = tsr_sql_parse(&arena, sql, strlen(sql), &ast, &err);
    if (rc == TSR_OK)
        rc = tsr_sql_plan(&arena, &e->cat, sql, ast, &plan, &err);
    if (rc == TSR_OK) {
        check_plan(plan);
        tsr_exec_ctx_t ctx = {.mem = &e->mem, .pool = e->pool};
        rc = tsr_exec_run(&ctx, plan, &res, &err);
    }
    if (rc != TSR_OK) {
        print_message("[%s] failed: %s %s\n", sql, tsr_status_name(rc), err.message);
        fail();
    }
    assert_int_equal(res->ncols, plan->ncols);
    free_rows(e->got, e->ngot);
    e->got = calloc(res->nrows + 1, sizeof(char *));
    assert_non_null(e->got);
    e->ngot = 0;
    for (size_t b = 0; b < res->nbatches; b++) {
        const tsr_batch_t *batch = &res->batches[b];
        for (size_t r = 0; r < batch->nrows; r++) {
            char line[1024];
            size_t len = 0;
            for (size_t c = 0; c < res->ncols; c++) {
                const tsr_vector_t *v = &batch->cols[c];
                int n;
                size_t room = sizeof(line) - len;
                const char *sep = c ? "|" : "";
                if (tsr_vector_is_null(v, r)) {
                    n = snprintf(line + len, room, "%sNULL", sep);
                } else if (v->type == TSR_TYPE_INT64) {
                    n = snprintf(line + len, room, "%s%lld", sep,
                                 (long long)((int64_t *)v->data)[r]);
                } else if (v->type == TSR_TYPE_DOUBLE) {
                    n = snprintf(line + len, room, "%s%.6f", sep, ((double *)v->data)[r]);
                } else if (v->type == TSR_TYPE_BOOL) {
                    n = snprintf(line + len, room, "%s%s", sep,
                                 ((uint8_t *)v->data)[r] ? "t" : "f");
                } else {
                    size_t sl;
                    const char *str = tsr_dict_get(v->dict, ((uint32_t *)v->data)[r], &sl);
                    n = snprintf(line + len, room, "%s%.*s", sep, (int)sl, str);
                }
                assert_true(n >= 0 && (size_t)n < room);
                len += (size_t)n;
            }
            assert_true(e->ngot < res->nrows);
            e->got[e->ngot++] = strdup(line);
        }
    }
    assert_int_equal(e->ngot, res->nrows);
    tsr_table_destroy(res);
    tsr_arena_release(&arena);
}

static void want_row(e2e_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void want_row(e2e_t *e, const char *fmt, ...)
{
    if (e->nwant == e->want_cap) {
        e->want_cap = e->want_cap ? 2 * e->want_cap : 64;
        e->want = realloc(e->want, e->want_cap * sizeof(char *));
        assert_non_null(e->want);
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    e->want[e->nwant++] = strdup(line);
}

static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Compares got with want (sorted first when the order is not specified). */
static void e2e_check(e2e_t *e, const char *sql, bool ordered)
{
    if (!ordered) {
        if (e->ngot)
            qsort(e->got, e->ngot, sizeof(char *), str_cmp);
        if (e->nwant)
            qsort(e->want, e->nwant, sizeof(char *), str_cmp);
    }
    bool same = e->ngot == e->nwant;
    size_t i = 0;
    for (; same && i < e->ngot; i++)
        same = strcmp(e->got[i], e->want[i]) == 0;
    if (!same) {
        print_message("[%s] (%zu sales)\n got %zu rows, want %zu; first difference at %zu:\n"
                      "  got  %s\n  want %s\n",
                      sql, e->nsales, e->ngot, e->nwant, i ? i - 1 : 0,
                      i && i - 1 < e->ngot ? e->got[i - 1] : "-",
                      i && i - 1 < e->nwant ? e->want[i - 1] : "-");
        fail();
    }
    e2e_clear_rows(e);
}

static const char *nz(char *buf, size_t cap, bool null, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *nz(char *buf, size_t cap, bool null, const char *fmt, ...)
{
    if (null)
        return "NULL";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return buf;
}

/* model helpers for sorting */
typedef struct keyed {
    bool null;
    double v;
    int64_t id;
    char text[256];
} keyed_t;

static int keyed_desc_null_last(const void *x, const void *y)
{
    const keyed_t *a = x, *b = y;
    if (a->null != b->null)
        return a->null ? 1 : -1; /* NULL smallest: last in DESC */
    if (!a->null && a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static void e2e_scan_queries(e2e_t *e)
{
    char b1[64], b2[64];
    /* filter + computed column + sort on it (NULLs last in DESC) + limit/offset */
    const char *q1 = "SELECT id, quantity * price AS v, region FROM sales "
                     "WHERE region LIKE '%st' AND price BETWEEN 10 AND 60 "
                     "ORDER BY v DESC, id LIMIT 25 OFFSET 3";
    e2e_run(e, q1);
    keyed_t *k = calloc(e->nsales + 1, sizeof(*k));
    assert_non_null(k);
    size_t nk = 0;
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        if (s->region < 0 || !strstr(g_regions[s->region], "st") || s->region > 1 ||
            s->price_null || s->price < 10 || s->price > 60)
            continue;
        keyed_t *x = &k[nk++];
        x->null = s->qty_null;
        x->v = (double)s->qty * s->price;
        x->id = s->id;
        snprintf(x->text, sizeof(x->text), "%lld|%s|%s", (long long)s->id,
                 nz(b1, sizeof(b1), x->null, "%.6f", x->v), g_regions[s->region]);
    }
    qsort(k, nk, sizeof(*k), keyed_desc_null_last);
    for (size_t i = 3; i < nk && i < 28; i++)
        want_row(e, "%s", k[i].text);
    e2e_check(e, q1, true);

    /* IN, IS NULL, OR; ORDER BY ordinal */
    const char *q2 =
        "SELECT id FROM sales WHERE quantity IN (1, 3, 5.0) OR shipped IS NULL ORDER BY 1";
    e2e_run(e, q2);
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        if ((!s->qty_null && (s->qty == 1 || s->qty == 3 || s->qty == 5)) || s->shipped < 0)
            want_row(e, "%lld", (long long)s->id);
    }
    e2e_check(e, q2, true);

    /* ORDER BY a column not selected (hidden, dropped at the end) */
    const char *q3 = "SELECT region, shipped FROM sales WHERE id <= 40 AND NOT shipped "
                     "ORDER BY price DESC, id";
    e2e_run(e, q3);
    nk = 0;
    for (size_t r = 0; r < e->nsales && r < 40; r++) {
        const sale_row_t *s = &e->sales[r];
        if (s->shipped != 0)
            continue;
        keyed_t *x = &k[nk++];
        x->null = s->price_null;
        x->v = s->price;
        x->id = s->id;
        snprintf(x->text, sizeof(x->text), "%s|f", s->region < 0 ? "NULL" : g_regions[s->region]);
    }
    qsort(k, nk, sizeof(*k), keyed_desc_null_last);
    for (size_t i = 0; i < nk; i++)
        want_row(e, "%s", k[i].text);
    e2e_check(e, q3, true);

    /* arithmetic with NULLs and casts, 3-valued WHERE */
    const char *q4 = "SELECT id, quantity % 7 - 2, price / 2, -quantity FROM sales "
                     "WHERE NOT (quantity > 15 OR price < 20.5)";
    e2e_run(e, q4);
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        /* NOT (a OR b) is TRUE only when both a and b are FALSE (not NULL) */
        if (s->qty_null || s->price_null || s->qty > 15 || s->price < 20.5)
            continue;
        want_row(e, "%lld|%lld|%s|%lld", (long long)s->id, (long long)(s->qty % 7 - 2),
                 nz(b2, sizeof(b2), false, "%.6f", s->price / 2), (long long)-s->qty);
    }
    e2e_check(e, q4, false);
    /* VARCHAR constants on either side, IN lists with NULL (3-valued) */
    const char *q5 = "SELECT id, region = 'east', quantity NOT IN (1, NULL) FROM sales "
                     "WHERE region = 'east' OR 'west' = region OR region IN ('north', 'x') "
                     "OR quantity IN (2, NULL) ORDER BY id DESC LIMIT 50";
    e2e_run(e, q5);
    for (size_t r = e->nsales; r-- > 0 && e->nwant < 50;) {
        const sale_row_t *s = &e->sales[r];
        if (!((s->region >= 0 && s->region <= 2) || (!s->qty_null && s->qty == 2)))
            continue;
        /* x NOT IN (1, NULL): FALSE when x = 1, else NULL */
        want_row(e, "%lld|%s|%s", (long long)s->id,
                 s->region < 0    ? "NULL"
                 : s->region == 0 ? "t"
                                  : "f",
                 !s->qty_null && s->qty == 1 ? "f" : "NULL");
    }
    e2e_check(e, q5, true);
    free(k);
}

static void test_e2e_scan(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 13, 8193, 20011};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        e2e_t e;
        e2e_init(&e, sizes[i], 0x1234567ull + i, i % 2 == 1);
        e2e_scan_queries(&e);
        e2e_free(&e);
    }
}

/* Regions in sort order with NULL first: the order GROUP BY/ORDER BY region
 * gives (NULL is the smallest value). */
static const int g_region_order[] = {-1, 0, 2, 3, 1}; /* NULL east north south west */

static const char *region_text(int r)
{
    return r < 0 ? "NULL" : g_regions[r];
}

typedef struct group_acc {
    bool seen;
    int64_t count, count_qty, sum_qty, min_id, max_id;
    int nprice;
    double min_price, max_price, sum_price;
    int64_t key; /* cust_id, or -1 for NULL */
    char name[16];
} group_acc_t;

static void acc_sale(group_acc_t *g, const sale_row_t *s)
{
    if (!g->seen) {
        g->seen = true;
        g->min_id = g->max_id = s->id;
    }
    g->count++;
    g->min_id = s->id < g->min_id ? s->id : g->min_id;
    g->max_id = s->id > g->max_id ? s->id : g->max_id;
    if (!s->qty_null) {
        g->count_qty++;
        g->sum_qty += s->qty;
    }
    if (!s->price_null) {
        if (g->nprice == 0 || s->price < g->min_price)
            g->min_price = s->price;
        if (g->nprice == 0 || s->price > g->max_price)
            g->max_price = s->price;
        g->sum_price += s->price;
        g->nprice++;
    }
}

/* ORDER BY s DESC (NULL last), cust_id (NULL first) */
static int cust_group_cmp(const void *x, const void *y)
{
    const group_acc_t *a = x, *b = y;
    bool an = a->count_qty == 0, bn = b->count_qty == 0;
    if (an != bn)
        return an ? 1 : -1;
    if (!an && a->sum_qty != b->sum_qty)
        return a->sum_qty > b->sum_qty ? -1 : 1;
    return (a->key > b->key) - (a->key < b->key);
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(((const group_acc_t *)x)->name, ((const group_acc_t *)y)->name);
}

static void e2e_agg_queries(e2e_t *e)
{
    char b[4][64];
    /* GROUP BY a VARCHAR with NULLs, every aggregate, 3-valued WHERE */
    const char *q1 = "SELECT region, COUNT(*), COUNT(quantity), SUM(quantity), MIN(price), "
                     "MAX(price), AVG(price) FROM sales WHERE NOT shipped OR quantity > 10 "
                     "GROUP BY region ORDER BY region";
    e2e_run(e, q1);
    group_acc_t g[5];
    memset(g, 0, sizeof(g));
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        if (s->shipped == 0 || (!s->qty_null && s->qty > 10))
            acc_sale(&g[s->region + 1], s);
    }
    for (int k = 0; k < 5; k++) {
        const group_acc_t *a = &g[g_region_order[k] + 1];
        if (!a->seen)
            continue;
        want_row(e, "%s|%lld|%lld|%s|%s|%s|%s", region_text(g_region_order[k]), (long long)a->count,
                 (long long)a->count_qty,
                 nz(b[0], 64, a->count_qty == 0, "%lld", (long long)a->sum_qty),
                 nz(b[1], 64, a->nprice == 0, "%.6f", a->min_price),
                 nz(b[2], 64, a->nprice == 0, "%.6f", a->max_price),
                 nz(b[3], 64, a->nprice == 0, "%.6f", a->sum_price / (a->nprice ? a->nprice : 1)));
    }
    e2e_check(e, q1, true);

    /* HAVING, ORDER BY an aggregate alias, LIMIT; NULL keys group together */
    const char *q2 = "SELECT cust_id, SUM(quantity) AS s, COUNT(*) FROM sales GROUP BY cust_id "
                     "HAVING COUNT(*) >= 2 ORDER BY s DESC, cust_id LIMIT 10";
    e2e_run(e, q2);
    size_t nk = e->ncust + 4;
    group_acc_t *cg = calloc(nk, sizeof(*cg));
    assert_non_null(cg);
    for (size_t k = 0; k < nk; k++)
        cg[k].key = (int64_t)k - 1;
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        acc_sale(&cg[s->cust_null ? 0 : s->cust_id + 1], s);
    }
    size_t n = 0;
    for (size_t k = 0; k < nk; k++)
        if (cg[k].count >= 2)
            cg[n++] = cg[k];
    qsort(cg, n, sizeof(*cg), cust_group_cmp);
    for (size_t k = 0; k < n && k < 10; k++)
        want_row(e, "%s|%s|%lld", nz(b[0], 64, cg[k].key < 0, "%lld", (long long)cg[k].key),
                 nz(b[1], 64, cg[k].count_qty == 0, "%lld", (long long)cg[k].sum_qty),
                 (long long)cg[k].count);
    e2e_check(e, q2, true);
    free(cg);

    /* GROUP BY an expression by ordinal, ORDER BY its alias */
    const char *q3 =
        "SELECT quantity % 4 AS m, MIN(id), MAX(id), COUNT(DISTINCT region) FROM sales "
        "GROUP BY 1 ORDER BY m";
    e2e_run(e, q3);
    group_acc_t mg[5];
    bool regions[5][5];
    memset(mg, 0, sizeof(mg));
    memset(regions, 0, sizeof(regions));
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        int k = s->qty_null ? 0 : (int)(s->qty % 4) + 1;
        acc_sale(&mg[k], s);
        regions[k][s->region + 1] = true;
    }
    for (int k = 0; k < 5; k++) {
        if (!mg[k].seen)
            continue;
        int nd = 0;
        for (int r = 1; r < 5; r++)
            nd += regions[k][r];
        want_row(e, "%s|%lld|%lld|%d", nz(b[0], 64, k == 0, "%d", k - 1), (long long)mg[k].min_id,
                 (long long)mg[k].max_id, nd);
    }
    e2e_check(e, q3, true);

    /* no GROUP BY: exactly one row, even over nothing */
    const char *q4 =
        "SELECT COUNT(*), SUM(quantity), MAX(region), AVG(price) FROM sales WHERE id < 0";
    e2e_run(e, q4);
    want_row(e, "0|NULL|NULL|NULL");
    e2e_check(e, q4, true);

    const char *q5 = "SELECT COUNT(DISTINCT region), COUNT(DISTINCT cust_id), COUNT(*), "
                     "COUNT(DISTINCT quantity % 3) FROM sales";
    e2e_run(e, q5);
    bool reg[4] = {0}, qm[3] = {0};
    bool *cust = calloc(e->ncust + 4, sizeof(bool));
    assert_non_null(cust);
    int nreg = 0, ncust = 0, nqm = 0;
    for (size_t r = 0; r < e->nsales; r++) {
        const sale_row_t *s = &e->sales[r];
        if (s->region >= 0 && !reg[s->region])
            reg[s->region] = true, nreg++;
        if (!s->cust_null && !cust[s->cust_id])
            cust[s->cust_id] = true, ncust++;
        if (!s->qty_null && !qm[s->qty % 3])
            qm[s->qty % 3] = true, nqm++;
    }
    free(cust);
    want_row(e, "%d|%d|%zu|%d", nreg, ncust, e->nsales, nqm);
    e2e_check(e, q5, true);

    /* constants as aggregate arguments and GROUP BY keys */
    const char *q7 = "SELECT 'k', MIN('a'), COUNT('b'), COUNT(NULL), SUM(2), MAX(1.5) FROM sales "
                     "GROUP BY 'k'";
    e2e_run(e, q7);
    if (e->nsales)
        want_row(e, "k|a|%zu|0|%zu|1.500000", e->nsales, 2 * e->nsales);
    e2e_check(e, q7, true);
    const char *q8 = "SELECT COUNT('b'), COUNT(NULL), COUNT(DISTINCT 'x'), SUM(NULL), AVG(NULL), "
                     "MIN(NULL), SUM(3) FROM sales";
    e2e_run(e, q8);
    want_row(e, "%zu|0|%d|NULL|NULL|NULL|%s", e->nsales, e->nsales > 0,
             nz(b[0], 64, e->nsales == 0, "%zu", 3 * e->nsales));
    e2e_check(e, q8, true);

    /* DISTINCT over two columns with NULLs */
    const char *q6 = "SELECT DISTINCT region, shipped FROM sales ORDER BY 1, 2 DESC";
    e2e_run(e, q6);
    bool pairs[5][3];
    memset(pairs, 0, sizeof(pairs));
    for (size_t r = 0; r < e->nsales; r++)
        pairs[e->sales[r].region + 1][e->sales[r].shipped + 1] = true;
    for (int k = 0; k < 5; k++)
        for (int sh = 2; sh >= 0; sh--) /* DESC: t, f, NULL */
            if (pairs[g_region_order[k] + 1][sh])
                want_row(e, "%s|%s", region_text(g_region_order[k]),
                         sh == 0   ? "NULL"
                         : sh == 2 ? "t"
                                   : "f");
    e2e_check(e, q6, true);
}

static void e2e_join_queries(e2e_t *e)
{
    /* join + pushed filters on both sides + GROUP BY the right side */
    const char *q1 = "SELECT c.name, COUNT(*), SUM(s.quantity) FROM sales s JOIN Customers c "
                     "ON s.cust_id = c.id WHERE c.score > 2.5 AND s.price < 80 "
                     "GROUP BY c.name ORDER BY c.name";
    e2e_run(e, q1);
    group_acc_t *g = calloc(e->ncust, sizeof(*g));
    assert_non_null(g);
    for (size_t c = 0; c < e->ncust; c++) {
        const cust_row_t *cu = &e->cust[c];
        snprintf(g[c].name, sizeof(g[c].name), "%s", cu->name);
        if (cu->score_null || cu->score <= 2.5)
            continue;
        for (size_t r = 0; r < e->nsales; r++) {
            const sale_row_t *s = &e->sales[r];
            if (!s->cust_null && s->cust_id == cu->id && !s->price_null && s->price < 80)
                acc_sale(&g[c], s);
        }
    }
    qsort(g, e->ncust, sizeof(*g), name_cmp);
    char b[64];
    for (size_t c = 0; c < e->ncust; c++)
        if (g[c].seen)
            want_row(e, "%s|%lld|%s", g[c].name, (long long)g[c].count,
                     nz(b, sizeof(b), g[c].count_qty == 0, "%lld", (long long)g[c].sum_qty));
    e2e_check(e, q1, true);
    free(g);

    /* three tables, an INT64 = DOUBLE key, and a residual over all three */
    const char *q2 = "SELECT s.id, c.name, i.sku, i.weight FROM sales s JOIN Customers c "
                     "ON c.id = s.cust_id JOIN items i ON i.sale_id = s.id * 1.0 "
                     "AND i.weight < c.score + s.quantity";
    e2e_run(e, q2);
    for (size_t k = 0; k < e->nitems; k++) {
        const item_row_t *it = &e->items[k];
        if (it->sale_id < 1 || (size_t)it->sale_id > e->nsales)
            continue;
        const sale_row_t *s = &e->sales[it->sale_id - 1];
        for (size_t c = 0; c < e->ncust && !s->cust_null; c++) {
            const cust_row_t *cu = &e->cust[c];
            if (cu->id == s->cust_id && !cu->score_null && !s->qty_null &&
                it->weight < cu->score + (double)s->qty)
                want_row(e, "%lld|%s|%s|%.6f", (long long)s->id, cu->name, it->sku, it->weight);
        }
    }
    e2e_check(e, q2, false);

    /* self-join with a residual; COUNT over the join */
    const char *q3 = "SELECT COUNT(*), COUNT(DISTINCT a.sku) FROM items a JOIN items b "
                     "ON a.sale_id = b.sale_id AND a.sku < b.sku";
    e2e_run(e, q3);
    int64_t pairs = 0;
    bool skus[7] = {0};
    int nsku = 0;
    for (size_t x = 0; x < e->nitems; x++) {
        for (size_t y = 0; y < e->nitems; y++) {
            if (e->items[x].sale_id == e->items[y].sale_id &&
                strcmp(e->items[x].sku, e->items[y].sku) < 0) {
                pairs++;
                int k = e->items[x].sku[1] - '0';
                if (!skus[k])
                    skus[k] = true, nsku++;
            }
        }
    }
    want_row(e, "%lld|%d", (long long)pairs, nsku);
    e2e_check(e, q3, true);
}

static void test_e2e_aggregate(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 13, 8193, 20011};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        e2e_t e;
        e2e_init(&e, sizes[i], 0xabcdefull + i, i % 2 == 0);
        e2e_agg_queries(&e);
        e2e_free(&e);
    }
}

static void test_e2e_join(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 13, 3001};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        e2e_t e;
        e2e_init(&e, sizes[i], 0x5eedull + i, i % 2 == 1);
        e2e_join_queries(&e);
        e2e_free(&e);
    }
}

/* Random well-typed queries (the generator of test_random_queries) over data:
 * every plan must execute, and give as many columns as the select list. This
 * checks the contract between planner and executor over shapes no hand-made
 * test lists (constants in odd places, casts, NULLs, hidden sort columns). */
static void test_e2e_random(void **state)
{
    (void)state;
    e2e_t e;
    e2e_init(&e, 257, 0xfeedull, true);
    gen_t g;
    memset(&g, 0, sizeof(g));
    g.rng = 0x2545f4914f6cdd1dull;
    for (int q = 0; q < 1500; q++) {
        int nitems = gen_query(&g);
        tsr_arena_t arena;
        tsr_arena_init(&arena, &e.mem);
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_ast_select_t *ast = NULL;
        tsr_plan_t *plan = NULL;
        tsr_table_t *res = NULL;
        tsr_status_t rc = tsr_sql_parse(&arena, g.sql, strlen(g.sql), &ast, &err);
        if (rc == TSR_OK)
            rc = tsr_sql_plan(&arena, &e.cat, g.sql, ast, &plan, &err);
        if (rc == TSR_OK) {
            tsr_exec_ctx_t ctx = {.mem = &e.mem, .pool = e.pool};
            rc = tsr_exec_run(&ctx, plan, &res, &err);
        }
        if (rc != TSR_OK) {
            print_message("query %d [%s]\n  failed: %s %s\n", q, g.sql, tsr_status_name(rc),
                          err.message);
            fail();
        }
        assert_int_equal(res->ncols, (size_t)nitems);
        tsr_table_destroy(res);
        tsr_arena_release(&arena);
    }
    e2e_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_project),
        cmocka_unit_test(test_where_and_types),
        cmocka_unit_test(test_joins),
        cmocka_unit_test(test_aggregates),
        cmocka_unit_test(test_distinct_order_limit),
        cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_clause_errors),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_keeps_first_error),
        cmocka_unit_test(test_deep_expressions),
        cmocka_unit_test(test_random_queries),
        cmocka_unit_test(test_e2e_scan),
        cmocka_unit_test(test_e2e_aggregate),
        cmocka_unit_test(test_e2e_join),
        cmocka_unit_test(test_e2e_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
