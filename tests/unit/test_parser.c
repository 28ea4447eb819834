/*
 * test_parser.c - tsr_sql_parse: tree shapes, precedence, spans, errors,
 * bounded nesting and out-of-memory behaviour.
 *
 * Trees are compared as S-expressions (dump_expr): (+ a (* b 2)), (not x),
 * (isnull x) / (notnull x), (in x 1 2), (between x lo hi), (like x p) and
 * their (notin ...) (notbetween ...) (notlike ...) forms, calls as name(args),
 * doubles with a trailing 'd'. The random round trip builds expression trees,
 * prints them as SQL twice (fully parenthesised, and with only the
 * parentheses precedence needs, both with random line breaks), parses them
 * back and checks the trees and every node's span, line and column against
 * what the printer recorded: the independent model is the printer.
 * Inputs are copied into exact-size heap buffers so ASan catches any read
 * past len.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sql/ast.h"

/* ---- helpers -------------------------------------------------------------------------- */

typedef struct parsed {
    tsr_arena_t arena;
    char *buf; /* exact-size copy of the SQL */
    size_t len;
    tsr_ast_select_t *sel;
    tsr_status_t rc;
    tsr_error_t err;
} parsed_t;

static void parse_n(parsed_t *p, const char *sql, size_t len, tsr_mem_t *mem)
{
    memset(p, 0, sizeof(*p));
    tsr_arena_init(&p->arena, mem);
    p->buf = malloc(len ? len : 1);
    assert_non_null(p->buf);
    memcpy(p->buf, sql, len);
    p->len = len;
    tsr_error_clear(&p->err);
    p->rc = tsr_sql_parse(&p->arena, p->buf, len, &p->sel, &p->err);
}

static void parse(parsed_t *p, const char *sql)
{
    parse_n(p, sql, strlen(sql), NULL);
}

static void parsed_free(parsed_t *p)
{
    tsr_arena_release(&p->arena);
    free(p->buf);
}

typedef struct sbuf {
    char s[1 << 16];
    size_t n;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(b->s) - b->n);
    b->n += (size_t)n;
}

static const char *op_name(tsr_op_t op)
{
    switch (op) {
    case TSR_OP_ADD:
        return "+";
    case TSR_OP_SUB:
        return "-";
    case TSR_OP_MUL:
        return "*";
    case TSR_OP_DIV:
        return "/";
    case TSR_OP_MOD:
        return "%";
    case TSR_OP_EQ:
        return "=";
    case TSR_OP_NE:
        return "<>";
    case TSR_OP_LT:
        return "<";
    case TSR_OP_LE:
        return "<=";
    case TSR_OP_GT:
        return ">";
    case TSR_OP_GE:
        return ">=";
    case TSR_OP_AND:
        return "AND";
    case TSR_OP_OR:
        return "OR";
    case TSR_OP_NEG:
        return "neg";
    case TSR_OP_NOT:
        return "not";
    case TSR_OP_NONE:
        break;
    }
    return "?";
}

static void dump_expr(sbuf_t *b, const tsr_ast_expr_t *e)
{
    switch (e->kind) {
    case TSR_AST_COLUMN:
        if (e->table)
            sb_put(b, "%s.", e->table);
        sb_put(b, "%s", e->name);
        return;
    case TSR_AST_STAR:
        if (e->table)
            sb_put(b, "%s.", e->table);
        sb_put(b, "*");
        return;
    case TSR_AST_INT:
        sb_put(b, "%lld", (long long)e->ival);
        return;
    case TSR_AST_DOUBLE:
        sb_put(b, "%.17gd", e->dval);
        return;
    case TSR_AST_STRING:
        sb_put(b, "'%.*s'", (int)e->slen, e->sval);
        return;
    case TSR_AST_NULL:
        sb_put(b, "NULL");
        return;
    case TSR_AST_BOOL:
        sb_put(b, "%s", e->ival ? "TRUE" : "FALSE");
        return;
    case TSR_AST_FUNC:
        sb_put(b, "%s(%s", e->name, e->distinct ? "DISTINCT " : "");
        for (size_t i = 0; i < e->nargs; i++) {
            if (i)
                sb_put(b, ", ");
            dump_expr(b, e->args[i]);
        }
        sb_put(b, ")");
        return;
    case TSR_AST_UNARY:
    case TSR_AST_BINARY:
        sb_put(b, "(%s", op_name(e->op));
        break;
    case TSR_AST_IS_NULL:
        sb_put(b, "(%s", e->negated ? "notnull" : "isnull");
        break;
    case TSR_AST_IN:
        sb_put(b, "(%s", e->negated ? "notin" : "in");
        break;
    case TSR_AST_BETWEEN:
        sb_put(b, "(%s", e->negated ? "notbetween" : "between");
        break;
    case TSR_AST_LIKE:
        sb_put(b, "(%s", e->negated ? "notlike" : "like");
        break;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        sb_put(b, " ");
        dump_expr(b, e->args[i]);
    }
    sb_put(b, ")");
}

static void dump_ref(sbuf_t *b, const tsr_ast_table_ref_t *r)
{
    sb_put(b, "%s", r->table);
    if (r->alias)
        sb_put(b, " AS %s", r->alias);
}

static void dump_select(sbuf_t *b, const tsr_ast_select_t *s)
{
    sb_put(b, "SELECT %s", s->distinct ? "DISTINCT " : "");
    for (size_t i = 0; i < s->nitems; i++) {
        if (i)
            sb_put(b, ", ");
        dump_expr(b, s->items[i].expr);
        if (s->items[i].alias)
            sb_put(b, " AS %s", s->items[i].alias);
    }
    if (s->has_from) {
        sb_put(b, " FROM ");
        dump_ref(b, &s->from);
    }
    for (size_t i = 0; i < s->njoins; i++) {
        sb_put(b, " JOIN ");
        dump_ref(b, &s->joins[i].table);
        sb_put(b, " ON ");
        dump_expr(b, s->joins[i].on);
    }
    if (s->where) {
        sb_put(b, " WHERE ");
        dump_expr(b, s->where);
    }
    for (size_t i = 0; i < s->ngroup_by; i++) {
        sb_put(b, i ? ", " : " GROUP BY ");
        dump_expr(b, s->group_by[i]);
    }
    if (s->having) {
        sb_put(b, " HAVING ");
        dump_expr(b, s->having);
    }
    for (size_t i = 0; i < s->norder_by; i++) {
        sb_put(b, i ? ", " : " ORDER BY ");
        dump_expr(b, s->order_by[i].expr);
        if (s->order_by[i].desc)
            sb_put(b, " DESC");
    }
    if (s->limit >= 0)
        sb_put(b, " LIMIT %lld", (long long)s->limit);
    if (s->offset)
        sb_put(b, " OFFSET %lld", (long long)s->offset);
}

/* ---- shapes ----------------------------------------------------------------------------- */

typedef struct shape_case {
    const char *expr; /* parsed as SELECT <expr> */
    const char *want;
} shape_case_t;

static void check_expr_shapes(const shape_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT %s", cases[i].expr);
        parsed_t p;
        parse(&p, sql);
        if (p.rc != TSR_OK) {
            print_error("'%s': rc %d: %s\n", sql, p.rc, p.err.message);
            fail();
        }
        assert_int_equal(p.sel->nitems, 1);
        assert_null(p.sel->items[0].alias);
        sbuf_t *b = calloc(1, sizeof(*b));
        dump_expr(b, p.sel->items[0].expr);
        if (strcmp(b->s, cases[i].want) != 0) {
            print_error("'%s': got %s, want %s\n", sql, b->s, cases[i].want);
            fail();
        }
        free(b);
        parsed_free(&p);
    }
}

static void test_literals(void **state)
{
    (void)state;
    static const shape_case_t cases[] = {
        {"1", "1"},
        {"0", "0"},
        {"-1", "-1"},
        {"- 1", "-1"},
        {"-/* c */1", "-1"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775807", "-9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"9223372036854775808", "9.2233720368547758e+18d"},
        {"-9223372036854775809", "-9.2233720368547758e+18d"},
        {"1.5", "1.5d"},
        {".5", "0.5d"},
        {"-2.5e3", "-2500d"},
        {"1e2", "100d"},
        {"- -1", "(neg -1)"},
        {"-(1)", "(neg 1)"},
        {"-a", "(neg a)"},
        {"+1", "1"},
        {"+a", "a"},
        {"+-1", "-1"},
        {"1--1", "1"}, /* -- starts a comment */
        {"1 - -1", "(- 1 -1)"},
        {"1-1", "(- 1 1)"},
        {"'it''s'", "'it's'"},
        {"''", "''"},
        {"NULL", "NULL"},
        {"null", "NULL"},
        {"TRUE", "TRUE"},
        {"false", "FALSE"},
        {"a", "a"},
        {"Abc", "Abc"},
        {"t.a", "t.a"},
        {"\"T\".\"a b\"", "T.a b"},
        {"\"order\"", "order"},
        {"\"a\"\"b\"", "a\"b"},
    };
    check_expr_shapes(cases, sizeof(cases) / sizeof(cases[0]));

    /* values, not just their printing */
    parsed_t p;
    parse(&p, "SELECT -9223372036854775808, 'a''b', true, 2.5");
    assert_int_equal(p.rc, TSR_OK);
    assert_int_equal(p.sel->items[0].expr->kind, TSR_AST_INT);
    assert_true(p.sel->items[0].expr->ival == INT64_MIN);
    assert_int_equal(p.sel->items[1].expr->kind, TSR_AST_STRING);
    assert_int_equal(p.sel->items[1].expr->slen, 3);
    assert_string_equal(p.sel->items[1].expr->sval, "a'b");
    assert_int_equal(p.sel->items[2].expr->kind, TSR_AST_BOOL);
    assert_int_equal(p.sel->items[2].expr->ival, 1);
    assert_int_equal(p.sel->items[3].expr->kind, TSR_AST_DOUBLE);
    assert_true(p.sel->items[3].expr->dval == 2.5);
    parsed_free(&p);
}

static void test_precedence(void **state)
{
    (void)state;
    static const shape_case_t cases[] = {
        {"a + b * 2", "(+ a (* b 2))"},
        {"(a + b) * 2", "(* (+ a b) 2)"},
        {"a - b - c", "(- (- a b) c)"},
        {"a - (b - c)", "(- a (- b c))"},
        {"a / b % c * d", "(* (% (/ a b) c) d)"},
        {"a + b - c + d", "(+ (- (+ a b) c) d)"},
        {"-a * b", "(* (neg a) b)"},
        {"a * -b", "(* a (neg b))"},
        {"-a.b", "(neg a.b)"},
        {"- - a", "(neg (neg a))"},
        {"a = b AND c < d OR e", "(OR (AND (= a b) (< c d)) e)"},
        {"a OR b AND c", "(OR a (AND b c))"},
        {"a OR b OR c", "(OR (OR a b) c)"},
        {"a AND b AND c", "(AND (AND a b) c)"},
        {"(a OR b) AND c", "(AND (OR a b) c)"},
        {"NOT a = b", "(not (= a b))"},
        {"NOT a AND b", "(AND (not a) b)"},
        {"NOT (a AND b)", "(not (AND a b))"},
        {"NOT NOT a", "(not (not a))"},
        {"a AND NOT b OR c", "(OR (AND a (not b)) c)"},
        {"a + 1 < b * 2", "(< (+ a 1) (* b 2))"},
        {"a <> b", "(<> a b)"},
        {"a != b", "(<> a b)"},
        {"a <= b", "(<= a b)"},
        {"a >= b", "(>= a b)"},
        {"a > b", "(> a b)"},
        {"a < b = TRUE", "(= (< a b) TRUE)"},
        {"x BETWEEN 1 AND 2", "(between x 1 2)"},
        {"x BETWEEN 1 AND 2 AND y", "(AND (between x 1 2) y)"},
        {"y AND x BETWEEN 1 AND 2", "(AND y (between x 1 2))"},
        {"x NOT BETWEEN a + 1 AND b * 2", "(notbetween x (+ a 1) (* b 2))"},
        {"x BETWEEN -1 AND -2", "(between x -1 -2)"},
        {"NOT x BETWEEN 1 AND 2", "(not (between x 1 2))"},
        {"x BETWEEN 1 AND 2 = FALSE", "(= (between x 1 2) FALSE)"},
        {"x LIKE 'a%'", "(like x 'a%')"},
        {"NOT x LIKE 'a%'", "(not (like x 'a%'))"},
        {"x NOT LIKE 'a%'", "(notlike x 'a%')"},
    };
    check_expr_shapes(cases, sizeof(cases) / sizeof(cases[0]));
    static const shape_case_t cases2[] = {
        {"x IN (1)", "(in x 1)"},
        {"x IN (1, 2, 3)", "(in x 1 2 3)"},
        {"x NOT IN (a + 1, b)", "(notin x (+ a 1) b)"},
        {"NOT x IN (1)", "(not (in x 1))"},
        {"x IN (a OR b, NOT c)", "(in x (OR a b) (not c))"},
        {"x IN (1) = TRUE", "(= (in x 1) TRUE)"},
        {"x + 1 IN (2)", "(in (+ x 1) 2)"},
        {"x IS NULL", "(isnull x)"},
        {"x IS NOT NULL", "(notnull x)"},
        {"a + 1 IS NULL", "(isnull (+ a 1))"},
        {"a = b IS NULL", "(isnull (= a b))"},
        {"NOT a IS NULL", "(not (isnull a))"},
        {"a IS NULL AND b IS NOT NULL", "(AND (isnull a) (notnull b))"},
        {"x LIKE 'a' = TRUE", "(= (like x 'a') TRUE)"},
    };
    check_expr_shapes(cases2, sizeof(cases2) / sizeof(cases2[0]));
}

static void test_calls(void **state)
{
    (void)state;
    static const shape_case_t cases[] = {
        {"count(*)", "count(*)"},
        {"COUNT( * )", "COUNT(*)"},
        {"count(DISTINCT x)", "count(DISTINCT x)"},
        {"count(distinct x + 1)", "count(DISTINCT (+ x 1))"},
        {"f()", "f()"},
        {"f(a, b + 1, 'c')", "f(a, (+ b 1), 'c')"},
        {"sum(x) / count(*)", "(/ sum(x) count(*))"},
        {"\"my fn\"(1)", "my fn(1)"},
        {"max(min(a), -b)", "max(min(a), (neg b))"},
        {"f(a OR b)", "f((OR a b))"},
        {"-count(*)", "(neg count(*))"},
        {"f(*) + 1", "(+ f(*) 1)"},
    };
    check_expr_shapes(cases, sizeof(cases) / sizeof(cases[0]));
    parsed_t p;
    parse(&p, "SELECT COUNT(*), count(DISTINCT x)");
    assert_int_equal(p.rc, TSR_OK);
    const tsr_ast_expr_t *c = p.sel->items[0].expr;
    assert_int_equal(c->kind, TSR_AST_FUNC);
    assert_string_equal(c->name, "COUNT"); /* as written */
    assert_int_equal(c->nargs, 1);
    assert_int_equal(c->args[0]->kind, TSR_AST_STAR);
    assert_null(c->args[0]->table);
    assert_false(c->distinct);
    assert_true(p.sel->items[1].expr->distinct);
    parsed_free(&p);
}

typedef struct stmt_case {
    const char *sql;
    const char *want;
} stmt_case_t;

static void test_statements(void **state)
{
    (void)state;
    static const stmt_case_t cases[] = {
        {"SELECT * FROM t", "SELECT * FROM t"},
        {"select 1", "SELECT 1"},
        {"SELECT 1;", "SELECT 1"},
        {"SELECT 1 ; -- done\n /* really */ ", "SELECT 1"},
        {"SELECT DISTINCT a FROM t", "SELECT DISTINCT a FROM t"},
        {"SELECT t.*, u.* FROM t JOIN u ON t.id = u.id",
         "SELECT t.*, u.* FROM t JOIN u ON (= t.id u.id)"},
        {"SELECT \"T\".* FROM \"T\"", "SELECT T.* FROM T"},
        {"SELECT a AS x, b y, c \"Z z\", d AS \"w\" FROM t AS u",
         "SELECT a AS x, b AS y, c AS Z z, d AS w FROM t AS u"},
        {"SELECT a FROM t u", "SELECT a FROM t AS u"},
        {"SELECT a FROM t JOIN u ON t.x = u.x INNER JOIN v w ON w.y = 1 AND t.x > 0",
         "SELECT a FROM t JOIN u ON (= t.x u.x) JOIN v AS w ON (AND (= w.y 1) (> t.x 0))"},
        {"SELECT a, count(*) AS n FROM t WHERE b > 1 GROUP BY a, b + 1 HAVING count(*) > 2 "
         "ORDER BY 2 DESC, a ASC, b LIMIT 10 OFFSET 5;",
         "SELECT a, count(*) AS n FROM t WHERE (> b 1) GROUP BY a, (+ b 1) HAVING (> count(*) 2) "
         "ORDER BY 2 DESC, a, b LIMIT 10 OFFSET 5"},
        {"SELECT a FROM t LIMIT 0", "SELECT a FROM t LIMIT 0"},
        {"SELECT a FROM t ORDER BY a DESC LIMIT 9223372036854775807",
         "SELECT a FROM t ORDER BY a DESC LIMIT 9223372036854775807"},
        {"SELECT 1 WHERE TRUE", "SELECT 1 WHERE TRUE"},
        {"SELECT a FROM t HAVING a > 1", "SELECT a FROM t HAVING (> a 1)"},
        {"SeLeCt A fRoM T wHeRe A iS nOt NuLl", "SELECT A FROM T WHERE (notnull A)"},
        {"SELECT a FROM t WHERE x IN ('a', 'b') AND y NOT LIKE '%z'",
         "SELECT a FROM t WHERE (AND (in x 'a' 'b') (notlike y '%z'))"},
        {"SELECT *, a FROM t", "SELECT *, a FROM t"},
        {"SELECT left_col FROM t", "SELECT left_col FROM t"},
        {"SELECT a FROM t AS \"left\" JOIN u AS \"left2\" ON 1 = 1",
         "SELECT a FROM t AS left JOIN u AS left2 ON (= 1 1)"},
        {"SELECT a AS \"union\" FROM t", "SELECT a AS union FROM t"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parsed_t p;
        parse(&p, cases[i].sql);
        if (p.rc != TSR_OK) {
            print_error("'%s': rc %d: %s\n", cases[i].sql, p.rc, p.err.message);
            fail();
        }
        sbuf_t *b = calloc(1, sizeof(*b));
        dump_select(b, p.sel);
        if (strcmp(b->s, cases[i].want) != 0) {
            print_error("'%s':\n got  %s\n want %s\n", cases[i].sql, b->s, cases[i].want);
            fail();
        }
        free(b);
        parsed_free(&p);
    }

    /* defaults when clauses are absent */
    parsed_t p;
    parse(&p, "SELECT 1");
    assert_int_equal(p.rc, TSR_OK);
    assert_false(p.sel->has_from);
    assert_false(p.sel->distinct);
    assert_null(p.sel->where);
    assert_null(p.sel->having);
    assert_int_equal(p.sel->njoins, 0);
    assert_int_equal(p.sel->ngroup_by, 0);
    assert_int_equal(p.sel->norder_by, 0);
    assert_true(p.sel->limit == -1);
    assert_true(p.sel->offset == 0);
    parsed_free(&p);
}

/* ---- spans ------------------------------------------------------------------------------ */

static void check_span(const parsed_t *p, const tsr_ast_expr_t *e, const char *text, int line,
                       int column)
{
    if (e->span.len != strlen(text) || memcmp(p->buf + e->span.offset, text, e->span.len) != 0 ||
        e->span.line != line || e->span.column != column) {
        print_error("span '%.*s' at %d:%d, want '%s' at %d:%d\n", (int)e->span.len,
                    p->buf + e->span.offset, e->span.line, e->span.column, text, line, column);
        fail();
    }
}

static void test_spans(void **state)
{
    (void)state;
    parsed_t p;
    parse(&p, "SELECT a + b * 2 AS s,\n"
              "       (x - 1)  y, +z,\n"
              "       count(DISTINCT z), t.*\n"
              "FROM t JOIN \"U\" ON t.k = \"U\".k\n"
              "WHERE -5 < x AND NOT\n"
              "  y IN (1, 2) AND ( ( q ) )\n"
              "ORDER BY x BETWEEN 1 AND 2, f(*)");
    assert_int_equal(p.rc, TSR_OK);
    const tsr_ast_select_t *s = p.sel;
    const tsr_ast_expr_t *e = s->items[0].expr;
    check_span(&p, e, "a + b * 2", 1, 8);
    check_span(&p, e->args[0], "a", 1, 8);
    check_span(&p, e->args[1], "b * 2", 1, 12);
    check_span(&p, e->args[1]->args[1], "2", 1, 16);
    e = s->items[1].expr;
    check_span(&p, e, "(x - 1)", 2, 8);
    check_span(&p, e->args[0], "x", 2, 9);
    check_span(&p, s->items[2].expr, "+z", 2, 20);
    e = s->items[3].expr;
    check_span(&p, e, "count(DISTINCT z)", 3, 8);
    check_span(&p, e->args[0], "z", 3, 23);
    check_span(&p, s->items[4].expr, "t.*", 3, 27);
    assert_int_equal(s->from.span.line, 4);
    assert_int_equal(s->from.span.column, 6);
    assert_int_equal(s->from.span.len, 1);
    assert_int_equal(s->joins[0].table.span.column, 13);
    assert_int_equal(s->joins[0].table.span.len, 3);
    check_span(&p, s->joins[0].on, "t.k = \"U\".k", 4, 20);
    check_span(&p, s->joins[0].on->args[1], "\"U\".k", 4, 26);
    e = s->where;
    check_span(&p, e, "-5 < x AND NOT\n  y IN (1, 2) AND ( ( q ) )", 5, 7);
    check_span(&p, e->args[0], "-5 < x AND NOT\n  y IN (1, 2)", 5, 7);
    check_span(&p, e->args[0]->args[0]->args[0], "-5", 5, 7);
    check_span(&p, e->args[0]->args[1], "NOT\n  y IN (1, 2)", 5, 18);
    check_span(&p, e->args[0]->args[1]->args[0], "y IN (1, 2)", 6, 3);
    check_span(&p, e->args[0]->args[1]->args[0]->args[2], "2", 6, 12);
    check_span(&p, e->args[1], "( ( q ) )", 6, 19);
    check_span(&p, s->order_by[0].expr, "x BETWEEN 1 AND 2", 7, 10);
    check_span(&p, s->order_by[1].expr, "f(*)", 7, 29);
    check_span(&p, s->order_by[1].expr->args[0], "*", 7, 31);
    parsed_free(&p);

    /* IS [NOT] NULL and LIKE span to their last token */
    parse(&p, "SELECT a IS NOT NULL, b NOT LIKE 'x' || 1");
    assert_int_equal(p.rc, TSR_ERR_SYNTAX); /* || is not an operator */
    parsed_free(&p);
    parse(&p, "SELECT a IS NOT NULL, b NOT LIKE 'x', -c");
    assert_int_equal(p.rc, TSR_OK);
    check_span(&p, p.sel->items[0].expr, "a IS NOT NULL", 1, 8);
    check_span(&p, p.sel->items[1].expr, "b NOT LIKE 'x'", 1, 23);
    check_span(&p, p.sel->items[2].expr, "-c", 1, 39);
    parsed_free(&p);
}

/* ---- errors ----------------------------------------------------------------------------- */

typedef struct err_case {
    const char *sql;
    const char *message;
    int line, column;
    const char *hint; /* substring; "" means no hint; NULL: don't care */
} err_case_t;

static void test_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"", "expected SELECT, found end of input", 1, 1, NULL},
        {"  -- nothing\n", "expected SELECT, found end of input", 1, 1, NULL},
        {"INSERT INTO t VALUES (1)", "expected SELECT, found 'INSERT'", 1, 1,
         "only SELECT statements"},
        {"FROM t", "expected SELECT, found 'FROM'", 1, 1, NULL},
        {"SELECT", "expected an expression, found end of input", 1, 7, NULL},
        {"SELECT a FROM", "expected a table name after FROM, found end of input", 1, 14, NULL},
        {"SELECT a FROM  \n\n", "expected a table name after FROM, found end of input", 1, 14,
         NULL},
        {"SELECT a FROM t WHERE", "expected an expression, found end of input", 1, 22, NULL},
        {"SELECT (a", "expected ')', found end of input", 1, 10, "line 1, column 8"},
        {"SELECT ((a) + 1", "expected ')', found end of input", 1, 16, "column 8"},
        {"SELECT a FROM t GROUP a", "expected BY after GROUP, found 'a'", 1, 23, ""},
        {"SELECT a FROM t ORDER x", "expected BY after ORDER, found 'x'", 1, 23, ""},
        {"SELECT FROM t", "expected an expression, found 'FROM'", 1, 8, ""},
        {"SELECT order FROM t", "expected an expression, found 'order'", 1, 8,
         "quote it as \"order\" to use it as a name"},
        {"SELECT a FROM t WHERE desc = 1", "expected an expression, found 'desc'", 1, 23,
         "quote it as \"desc\""},
        {"SELECT a FROM order", "expected a table name after FROM, found 'order'", 1, 15,
         "quote it as \"order\""},
        {"SELECT a AS desc FROM t", "expected a name after AS, found 'desc'", 1, 13,
         "quote it as \"desc\""},
        {"SELECT a AS FROM t", "expected a name after AS, found 'FROM'", 1, 13, ""},
        {"SELECT t.order FROM t", "expected a column name after '.', found 'order'", 1, 10,
         "quote it"},
        {"SELECT a, FROM t", "expected an expression, found 'FROM'", 1, 11,
         "remove the ',' before FROM"},
        {"SELECT a,", "expected an expression, found end of input", 1, 10, "remove the ','"},
        {"SELECT a FORM t", "unexpected 't' after end of statement", 1, 15, "did you mean FROM?"},
        {"SELECT a FROM t WHRE x = 1", "unexpected 'x' after end of statement", 1, 22,
         "did you mean WHERE?"},
        {"SELECT a b c", "unexpected 'c' after end of statement", 1, 12, ""},
        {"SELECT 1; SELECT 2", "unexpected input after end of statement", 1, 11, NULL},
        {"SELECT 1;;", "unexpected input after end of statement", 1, 10, NULL},
        {"SELECT 1;\n  x", "unexpected input after end of statement", 2, 3, NULL},
        {"SELECT a FROM t LEFT JOIN u ON a = b", "LEFT JOIN is not supported", 1, 17,
         "inner joins"},
        {"SELECT a FROM t x RIGHT JOIN u ON a = b", "RIGHT JOIN is not supported", 1, 19, NULL},
        {"SELECT a FROM t JOIN u USING (a)", "JOIN ... USING is not supported", 1, 24, NULL},
        {"SELECT a FROM t UNION SELECT b FROM u", "UNION is not supported", 1, 17, NULL},
        {"SELECT 1 EXCEPT SELECT 2", "EXCEPT is not supported", 1, 10, NULL},
        {"SELECT a FROM t WHERE a = 1 UNION SELECT 1", "UNION is not supported", 1, 29, NULL},
        {"SELECT a FROM t ORDER BY a DESC NULLS LAST", "NULLS FIRST/LAST is not supported", 1, 33,
         "NULLs sort first"},
        {"SELECT a FROM t INNER u", "expected JOIN after INNER, found 'u'", 1, 23, NULL},
        {"SELECT a FROM t JOIN u", "expected ON after the joined table, found end of input", 1, 23,
         NULL},
        {"SELECT a FROM t JOIN u WHERE a", "expected ON after the joined table, found 'WHERE'", 1,
         24, NULL},
        {"SELECT a FROM t JOIN u ON", "expected an expression, found end of input", 1, 26, NULL},
        {"SELECT a LIMIT -1", "expected a non-negative integer after LIMIT, found '-'", 1, 16,
         NULL},
        {"SELECT a LIMIT 1.5", "expected a non-negative integer after LIMIT, found '1.5'", 1, 16,
         NULL},
        {"SELECT a LIMIT 99999999999999999999",
         "expected a non-negative integer after LIMIT, found '99999999999999999999'", 1, 16, NULL},
        {"SELECT a LIMIT 5 OFFSET x", "expected a non-negative integer after OFFSET, found 'x'", 1,
         25, NULL},
        {"SELECT a OFFSET 5", "unexpected 'OFFSET' after end of statement", 1, 10,
         "OFFSET goes after LIMIT"},
        {"SELECT a FROM t ORDER BY a WHERE b", "unexpected 'WHERE' after end of statement", 1, 28,
         "clauses go in this order"},
        {"SELECT a FROM t WHERE a WHERE b", "unexpected 'WHERE' after end of statement", 1, 25,
         "each at most once"},
        {"SELECT x IN ()", "expected a value in the IN list, found ')'", 1, 14, "at least one"},
        {"SELECT x IN 1", "expected '(' after IN, found '1'", 1, 13, NULL},
        {"SELECT x IN (1, 2", "expected ',' or ')' in the IN list, found end of input", 1, 18,
         NULL},
        {"SELECT x IN (1, )", "expected an expression, found ')'", 1, 17, NULL},
        {"SELECT f(1 2)", "expected ',' or ')' in the arguments of a function call, found '2'", 1,
         12, NULL},
        {"SELECT count(* FROM t", "expected ')' after '*', found 'FROM'", 1, 16, NULL},
        {"SELECT count(DISTINCT)", "expected an expression, found ')'", 1, 22, NULL},
        {"SELECT f(", "expected an expression, found end of input", 1, 10, NULL},
        {"SELECT x BETWEEN 1", "expected AND after the lower bound of BETWEEN, found end of input",
         1, 19, NULL},
        {"SELECT x BETWEEN 1 OR 2", "expected AND after the lower bound of BETWEEN, found 'OR'", 1,
         20, NULL},
        {"SELECT x IS 1", "expected NULL after IS, found '1'", 1, 13, NULL},
        {"SELECT x IS NOT TRUE", "expected NULL after IS NOT, found 'TRUE'", 1, 17, NULL},
        {"SELECT x NOT 1", "expected IN, BETWEEN or LIKE after NOT, found '1'", 1, 14, NULL},
        {"SELECT x LIKE", "expected an expression, found end of input", 1, 14, NULL},
        {"SELECT a = NOT b", "expected an expression, found 'NOT'", 1, 12, NULL},
        {"SELECT (SELECT 1)", "subqueries are not supported", 1, 9, NULL},
        {"SELECT a FROM t WHERE x IN (SELECT 1)", "subqueries are not supported", 1, 29, NULL},
        {"SELECT a FROM (SELECT 1)", "expected a table name after FROM, found '('", 1, 15,
         "subqueries"},
        {"SELECT a.b.c FROM t", "too many qualifiers: a column is written name or table.name", 1,
         11, NULL},
        {"SELECT 1 + t.*", "expected a column name after '.', found '*'", 1, 14, "select list"},
        {"SELECT t.* + 1", "unexpected '+' after end of statement", 1, 12, NULL},
        {"SELECT * AS x FROM t", "a * in the select list cannot have an alias", 1, 10, NULL},
        {"SELECT t.* x FROM t", "a * in the select list cannot have an alias", 1, 12, NULL},
        {"SELECT a,\n  b +\n  FROM t", "expected an expression, found 'FROM'", 3, 3, NULL},
        {"SELECT 1 +", "expected an expression, found end of input", 1, 11, NULL},
        {"SELECT 1 + /* c */", "expected an expression, found end of input", 1, 11, NULL},
        {"SELECT a * FROM t", "expected an expression, found 'FROM'", 1, 12, NULL},
        {"SELECT 'abc", "unterminated string literal", 1, 8, NULL},
        {"SELECT a FROM t WHERE x = 1 #", "unexpected character '#'", 1, 29, NULL},
        /* the parse error comes first in the text, so it wins over a later lexical one */
        {"SELECT FROM #", "expected an expression, found 'FROM'", 1, 8, NULL},
        {"SELECT t.# FROM t", "unexpected character '#'", 1, 10, NULL},
        {"SELECT a FROM t WHERE x = 1 'a\nb'", "unexpected 'a\\x0Ab' after end of statement", 1, 29,
         NULL},
        {"SELECT a b xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
         "unexpected 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' after end of statement", 1, 12, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const err_case_t *c = &cases[i];
        parsed_t p;
        parse(&p, c->sql);
        bool hint_ok =
            !c->hint || (c->hint[0] ? strstr(p.err.hint, c->hint) != NULL : p.err.hint[0] == '\0');
        if (p.rc != TSR_ERR_SYNTAX || p.err.status != TSR_ERR_SYNTAX ||
            strcmp(p.err.message, c->message) != 0 || p.err.line != c->line ||
            p.err.column != c->column || !hint_ok || p.err.file[0] != '\0') {
            print_error("'%s':\n got  rc %d '%s' at %d:%d hint '%s'\n want '%s' at %d:%d hint "
                        "'%s'\n",
                        c->sql, p.rc, p.err.message, p.err.line, p.err.column, p.err.hint,
                        c->message, c->line, c->column, c->hint ? c->hint : "(any)");
            fail();
        }
        parsed_free(&p);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    tsr_arena_t arena;
    tsr_arena_init(&arena, NULL);
    tsr_ast_select_t *sel = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_sql_parse(NULL, "SELECT 1", 8, &sel, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_sql_parse(&arena, NULL, 3, &sel, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_sql_parse(&arena, "SELECT 1", 8, NULL, NULL), TSR_ERR_INVALID_ARG);
    /* NULL text of length 0 is the empty query; err may be NULL */
    assert_int_equal(tsr_sql_parse(&arena, NULL, 0, &sel, NULL), TSR_ERR_SYNTAX);
    assert_int_equal(tsr_sql_parse(&arena, "SELECT (", 8, &sel, NULL), TSR_ERR_SYNTAX);
    assert_int_equal(tsr_sql_parse(&arena, "SELECT #", 8, &sel, NULL), TSR_ERR_SYNTAX);
    assert_null(sel); /* untouched on failure */
    /* len is honoured: the text need not be NUL-terminated and may be cut */
    assert_int_equal(tsr_sql_parse(&arena, "SELECT 12345", 8, &sel, NULL), TSR_OK);
    assert_int_equal(sel->items[0].expr->ival, 1);
    /* an error already in err is kept (the first error wins) */
    assert_int_equal(err.status, TSR_ERR_INVALID_ARG);
    tsr_error_clear(&err);
    tsr_error_set(&err, TSR_ERR_IO, "earlier");
    assert_int_equal(tsr_sql_parse(&arena, "SELECT (", 8, &sel, &err), TSR_ERR_SYNTAX);
    assert_string_equal(err.message, "earlier");
    assert_string_equal(err.hint, "");
    tsr_arena_release(&arena);
}

/* ---- nesting bounds ----------------------------------------------------------------------- */

static char *repeat_sql(const char *prefix, const char *unit, size_t n, const char *middle,
                        const char *unit2, size_t n2)
{
    size_t len = strlen(prefix) + strlen(unit) * n + strlen(middle) + strlen(unit2) * n2;
    char *s = malloc(len + 1), *w = s;
    assert_non_null(s);
    w += sprintf(w, "%s", prefix);
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, "%s", unit);
    w += sprintf(w, "%s", middle);
    for (size_t i = 0; i < n2; i++)
        w += sprintf(w, "%s", unit2);
    return s;
}

static void expect_nesting(const char *prefix, const char *unit, size_t n, const char *middle,
                           const char *unit2, size_t n2, bool ok)
{
    char *sql = repeat_sql(prefix, unit, n, middle, unit2, n2);
    parsed_t p;
    parse(&p, sql);
    if (ok ? p.rc != TSR_OK
           : (p.rc != TSR_ERR_SYNTAX || strcmp(p.err.message, "expression nested too deeply"))) {
        print_error("%s x%zu: rc %d '%s'\n", unit, n, p.rc, p.err.message);
        fail();
    }
    parsed_free(&p);
    free(sql);
}

static void test_nesting_bounded(void **state)
{
    (void)state;
    /* far past any stack: must fail cleanly */
    expect_nesting("SELECT ", "(", 100000, "1", ")", 100000, false);
    expect_nesting("SELECT ", "(", 100000, "", "", 0, false);
    expect_nesting("SELECT ", "NOT ", 100000, "a", "", 0, false);
    expect_nesting("SELECT ", "- ", 100000, "a", "", 0, false);
    expect_nesting("SELECT ", "+ ", 100000, "a", "", 0, false);
    expect_nesting("SELECT ", "f(", 100000, "", ")", 100000, false);
    expect_nesting("SELECT ", "x IN (", 100000, "1", ")", 100000, false);
    expect_nesting("SELECT 1", " + 1", 100000, "", "", 0, false);
    expect_nesting("SELECT a", " AND a", 100000, "", "", 0, false);
    expect_nesting("SELECT a", " OR a", 100000, "", "", 0, false);
    expect_nesting("SELECT a", " = a", 100000, "", "", 0, false);
    expect_nesting("SELECT a", " IS NULL", 100000, "", "", 0, false);
    expect_nesting("SELECT a", " BETWEEN 1 AND 2", 100000, "", "", 0, false);
    /* what real queries need still parses */
    expect_nesting("SELECT ", "(", 200, "1", ")", 200, true);
    expect_nesting("SELECT ", "NOT ", 200, "a", "", 0, true);
    expect_nesting("SELECT ", "- ", 200, "a", "", 0, true);
    expect_nesting("SELECT ", "f(", 100, "", ")", 100, true);
    /* chains: a tree of height 1000 is fine, 1001 is not */
    expect_nesting("SELECT 1", " + 1", 999, "", "", 0, true);
    expect_nesting("SELECT 1", " + 1", 1000, "", "", 0, false);
    expect_nesting("SELECT a", " OR a", 999, "", "", 0, true);
    /* wide is not deep: a long IN list and many select items */
    expect_nesting("SELECT x IN (0", ", 1", 50000, ")", "", 0, true);
    expect_nesting("SELECT 0", ", 1", 50000, "", "", 0, true);
}

/* ---- random round trip ------------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Generated trees use tsr_ast_expr_t too; span holds the expected span. */
static tsr_ast_expr_t *gen_node(tsr_arena_t *a, tsr_ast_kind_t kind, size_t nargs)
{
    tsr_ast_expr_t *e = tsr_arena_alloc(a, sizeof(*e));
    assert_non_null(e);
    e->kind = kind;
    if (nargs) {
        e->args = tsr_arena_alloc(a, nargs * sizeof(e->args[0]));
        assert_non_null(e->args);
        e->nargs = nargs;
    }
    return e;
}

typedef struct name_choice {
    const char *sql;  /* as printed */
    const char *name; /* as parsed */
} name_choice_t;

static const name_choice_t COLUMNS[] = {
    {"a", "a"},
    {"b", "b"},
    {"Col_1", "Col_1"},
    {"_x", "_x"},
    {"\"order\"", "order"},
    {"\"a b\"", "a b"},
    {"\"q\"\"q\"", "q\"q"},
    {"nulls_x", "nulls_x"},
};
static const name_choice_t TABLES[] = {{"t", "t"}, {"\"T 2\"", "T 2"}};
static const name_choice_t FUNCS[] = {
    {"f", "f"}, {"count", "count"}, {"SUM", "SUM"}, {"\"my f\"", "my f"}};
static const name_choice_t STRINGS[] = {{"''", ""},    {"'abc'", "abc"}, {"'it''s'", "it's"},
                                        {"''''", "'"}, {"'%_'", "%_"},   {"'a\nb'", "a\nb"}};
#define NCHOICES(arr) (sizeof(arr) / sizeof(arr[0]))

static tsr_ast_expr_t *gen_expr(tsr_arena_t *a, int depth)
{
    int leaf = depth <= 0 || rnd() % 4 == 0;
    tsr_ast_expr_t *e;
    if (leaf) {
        switch (rnd() % 7) {
        case 0: {
            e = gen_node(a, TSR_AST_COLUMN, 0);
            const name_choice_t *c = &COLUMNS[rnd() % NCHOICES(COLUMNS)];
            e->name = (char *)c->name;
            e->sval = (char *)c->sql; /* printing hint, not compared */
            if (rnd() % 3 == 0) {
                const name_choice_t *t = &TABLES[rnd() % NCHOICES(TABLES)];
                e->table = (char *)t->name;
                e->slen = (size_t)(t - TABLES) + 1;
            }
            return e;
        }
        case 1:
            e = gen_node(a, TSR_AST_INT, 0);
            switch (rnd() % 4) {
            case 0:
                e->ival = INT64_MIN;
                break;
            case 1:
                e->ival = INT64_MAX;
                break;
            default:
                e->ival = (int64_t)(rnd() >> (rnd() % 63 + 1)) * (rnd() % 2 ? 1 : -1);
            }
            return e;
        case 2: {
            e = gen_node(a, TSR_AST_DOUBLE, 0);
            double mant = (double)(rnd() >> 11) / (double)(1ull << 53);
            int ex = (int)(rnd() % 80) - 40;
            e->dval =
                mant * (ex < 0 ? 1.0 / (double)(1ull << (-ex % 60)) : (double)(1ull << (ex % 60)));
            if (rnd() % 2)
                e->dval = -e->dval;
            return e;
        }
        case 3: {
            e = gen_node(a, TSR_AST_STRING, 0);
            const name_choice_t *s = &STRINGS[rnd() % NCHOICES(STRINGS)];
            e->sval = (char *)s->name;
            e->slen = strlen(s->name);
            e->name = (char *)s->sql; /* printing hint, not compared */
            return e;
        }
        case 4:
            return gen_node(a, TSR_AST_NULL, 0);
        case 5:
            e = gen_node(a, TSR_AST_BOOL, 0);
            e->ival = (int64_t)(rnd() % 2);
            return e;
        default: {
            size_t n = rnd() % 3;
            bool star = n == 1 && rnd() % 3 == 0;
            e = gen_node(a, TSR_AST_FUNC, n);
            e->name = (char *)FUNCS[rnd() % NCHOICES(FUNCS)].name;
            if (star)
                e->args[0] = gen_node(a, TSR_AST_STAR, 0);
            for (size_t i = 0; i < n && !star; i++)
                e->args[i] = gen_expr(a, 0);
            e->distinct = n > 0 && !star && rnd() % 3 == 0;
            return e;
        }
        }
    }
    switch (rnd() % 9) {
    case 0:
        e = gen_node(a, TSR_AST_UNARY, 1);
        e->op = rnd() % 2 ? TSR_OP_NEG : TSR_OP_NOT;
        e->args[0] = gen_expr(a, depth - 1);
        return e;
    case 1:
    case 2:
    case 3:
        e = gen_node(a, TSR_AST_BINARY, 2);
        e->op = (tsr_op_t)(TSR_OP_ADD + rnd() % (TSR_OP_OR - TSR_OP_ADD + 1));
        e->args[0] = gen_expr(a, depth - 1);
        e->args[1] = gen_expr(a, depth - 1);
        return e;
    case 4:
        e = gen_node(a, TSR_AST_IS_NULL, 1);
        e->negated = rnd() % 2;
        e->args[0] = gen_expr(a, depth - 1);
        return e;
    case 5: {
        size_t n = 2 + rnd() % 3;
        e = gen_node(a, TSR_AST_IN, n);
        e->negated = rnd() % 2;
        for (size_t i = 0; i < n; i++)
            e->args[i] = gen_expr(a, depth - 1);
        return e;
    }
    case 6:
        e = gen_node(a, TSR_AST_BETWEEN, 3);
        e->negated = rnd() % 2;
        for (size_t i = 0; i < 3; i++)
            e->args[i] = gen_expr(a, depth - 1);
        return e;
    case 7:
        e = gen_node(a, TSR_AST_LIKE, 2);
        e->negated = rnd() % 2;
        e->args[0] = gen_expr(a, depth - 1);
        e->args[1] = gen_expr(a, depth - 1);
        return e;
    default: {
        size_t n = 1 + rnd() % 3;
        e = gen_node(a, TSR_AST_FUNC, n);
        e->name = (char *)FUNCS[rnd() % NCHOICES(FUNCS)].name;
        e->distinct = rnd() % 4 == 0;
        for (size_t i = 0; i < n; i++)
            e->args[i] = gen_expr(a, depth - 1);
        return e;
    }
    }
}

/* Precedence levels as the grammar defines them, lowest first. */
enum { L_OR = 1, L_AND, L_NOT, L_CMP, L_ADD, L_MUL, L_UNARY, L_PRIMARY };

static int level_of(const tsr_ast_expr_t *e)
{
    switch (e->kind) {
    case TSR_AST_UNARY:
        return e->op == TSR_OP_NOT ? L_NOT : L_UNARY;
    case TSR_AST_BINARY:
        switch (e->op) {
        case TSR_OP_OR:
            return L_OR;
        case TSR_OP_AND:
            return L_AND;
        case TSR_OP_ADD:
        case TSR_OP_SUB:
            return L_ADD;
        case TSR_OP_MUL:
        case TSR_OP_DIV:
        case TSR_OP_MOD:
            return L_MUL;
        default:
            return L_CMP;
        }
    case TSR_AST_IS_NULL:
    case TSR_AST_IN:
    case TSR_AST_BETWEEN:
    case TSR_AST_LIKE:
        return L_CMP;
    default:
        return L_PRIMARY;
    }
}

typedef struct printer {
    sbuf_t b;
    bool full; /* parenthesise every node */
    int line;  /* of b.s[b.n] */
    size_t line_start;
} printer_t;

static void pr_text(printer_t *pr, const char *s)
{
    for (; *s; s++) {
        assert_true(pr->b.n + 1 < sizeof(pr->b.s));
        pr->b.s[pr->b.n++] = *s;
        if (*s == '\n') {
            pr->line++;
            pr->line_start = pr->b.n;
        }
    }
    pr->b.s[pr->b.n] = '\0';
}

/* Whitespace between tokens: sometimes a line break, to test lines/columns. */
static void pr_space(printer_t *pr)
{
    pr_text(pr, rnd() % 8 == 0 ? "\n  " : " ");
}

static void pr_expr(printer_t *pr, tsr_ast_expr_t *e, int min_level);

/* Prints child; wraps it in parentheses when needed; records its span (with them). */
static void pr_child(printer_t *pr, tsr_ast_expr_t *e, int min_level)
{
    bool wrap = pr->full || level_of(e) < min_level;
    /* a numeric literal after unary minus would fold into it: keep it apart */
    if (min_level == L_UNARY && (e->kind == TSR_AST_INT || e->kind == TSR_AST_DOUBLE))
        wrap = true;
    size_t start = pr->b.n;
    int line = pr->line, column = (int)(pr->b.n - pr->line_start) + 1;
    if (wrap)
        pr_text(pr, "(");
    pr_expr(pr, e, 0);
    if (wrap) {
        pr_text(pr, ")");
        e->span.offset = start;
        e->span.len = pr->b.n - start;
        e->span.line = line;
        e->span.column = column;
    }
}

static void pr_expr(printer_t *pr, tsr_ast_expr_t *e, int min_level)
{
    (void)min_level;
    char num[64];
    size_t start = pr->b.n;
    e->span.line = pr->line;
    e->span.column = (int)(pr->b.n - pr->line_start) + 1;
    switch (e->kind) {
    case TSR_AST_COLUMN:
        if (e->table) {
            pr_text(pr, TABLES[e->slen - 1].sql);
            pr_text(pr, ".");
        }
        pr_text(pr, e->sval);
        break;
    case TSR_AST_STAR:
        pr_text(pr, "*");
        break;
    case TSR_AST_INT:
        snprintf(num, sizeof(num), "%lld", (long long)e->ival);
        pr_text(pr, num);
        break;
    case TSR_AST_DOUBLE:
        snprintf(num, sizeof(num), "%.17g", e->dval);
        if (!strpbrk(num, ".e"))
            strcat(num, ".0");
        pr_text(pr, num);
        break;
    case TSR_AST_STRING:
        pr_text(pr, e->name);
        break;
    case TSR_AST_NULL:
        pr_text(pr, rnd() % 2 ? "NULL" : "null");
        break;
    case TSR_AST_BOOL:
        pr_text(pr, e->ival ? "TRUE" : "false");
        break;
    case TSR_AST_FUNC: {
        const char *sql = e->name;
        for (size_t i = 0; i < NCHOICES(FUNCS); i++)
            if (strcmp(FUNCS[i].name, e->name) == 0)
                sql = FUNCS[i].sql;
        pr_text(pr, sql);
        pr_text(pr, "(");
        if (e->distinct)
            pr_text(pr, "DISTINCT ");
        for (size_t i = 0; i < e->nargs; i++) {
            if (i)
                pr_text(pr, ",");
            if (i)
                pr_space(pr);
            if (e->args[i]->kind == TSR_AST_STAR)
                pr_expr(pr, e->args[i], 0);
            else
                pr_child(pr, e->args[i], L_OR);
        }
        pr_text(pr, ")");
        break;
    }
    case TSR_AST_UNARY:
        if (e->op == TSR_OP_NOT) {
            pr_text(pr, "NOT");
            pr_space(pr);
            pr_child(pr, e->args[0], L_NOT);
        } else {
            pr_text(pr, "-");
            pr_space(pr); /* never "--", which starts a comment */
            pr_child(pr, e->args[0], L_UNARY);
        }
        break;
    case TSR_AST_BINARY: {
        int l = level_of(e);
        pr_child(pr, e->args[0], l);
        pr_space(pr);
        pr_text(pr, op_name(e->op));
        pr_space(pr);
        /* right operands bind one level tighter (left-associative) */
        pr_child(pr, e->args[1], l + 1);
        break;
    }
    case TSR_AST_IS_NULL:
        pr_child(pr, e->args[0], L_CMP);
        pr_text(pr, e->negated ? " IS NOT NULL" : " IS NULL");
        break;
    case TSR_AST_IN:
        pr_child(pr, e->args[0], L_CMP);
        pr_text(pr, e->negated ? " NOT IN (" : " IN (");
        for (size_t i = 1; i < e->nargs; i++) {
            if (i > 1)
                pr_text(pr, ", ");
            pr_child(pr, e->args[i], L_OR);
        }
        pr_text(pr, ")");
        break;
    case TSR_AST_BETWEEN:
        pr_child(pr, e->args[0], L_CMP);
        pr_text(pr, e->negated ? " NOT BETWEEN " : " BETWEEN ");
        pr_child(pr, e->args[1], L_ADD);
        pr_text(pr, " AND ");
        pr_child(pr, e->args[2], L_ADD);
        break;
    case TSR_AST_LIKE:
        pr_child(pr, e->args[0], L_CMP);
        pr_text(pr, e->negated ? " NOT LIKE " : " LIKE ");
        pr_child(pr, e->args[1], L_ADD);
        break;
    }
    e->span.offset = start;
    e->span.len = pr->b.n - start;
}

/* Compares trees; spans of got must be what the printer recorded in want. */
static bool same_tree(const tsr_ast_expr_t *got, const tsr_ast_expr_t *want, char *why, size_t cap)
{
    if (got->kind != want->kind || got->op != want->op || got->negated != want->negated ||
        got->distinct != want->distinct || got->nargs != want->nargs) {
        snprintf(why, cap, "shape differs at offset %zu", want->span.offset);
        return false;
    }
    if (got->span.offset != want->span.offset || got->span.len != want->span.len ||
        got->span.line != want->span.line || got->span.column != want->span.column) {
        snprintf(why, cap, "span %zu+%zu %d:%d, want %zu+%zu %d:%d", got->span.offset,
                 got->span.len, got->span.line, got->span.column, want->span.offset, want->span.len,
                 want->span.line, want->span.column);
        return false;
    }
    bool ok = true;
    switch (want->kind) {
    case TSR_AST_COLUMN:
        ok = strcmp(got->name, want->name) == 0 &&
             (want->table ? got->table && strcmp(got->table, want->table) == 0 : !got->table);
        break;
    case TSR_AST_FUNC:
        ok = strcmp(got->name, want->name) == 0;
        break;
    case TSR_AST_INT:
    case TSR_AST_BOOL:
        ok = got->ival == want->ival;
        break;
    case TSR_AST_DOUBLE:
        ok = got->dval == want->dval;
        break;
    case TSR_AST_STRING:
        ok = got->slen == want->slen && memcmp(got->sval, want->sval, got->slen) == 0;
        break;
    default:
        break;
    }
    if (!ok) {
        snprintf(why, cap, "value differs at offset %zu", want->span.offset);
        return false;
    }
    for (size_t i = 0; i < want->nargs; i++)
        if (!same_tree(got->args[i], want->args[i], why, cap))
            return false;
    return true;
}

static void test_random_round_trip(void **state)
{
    (void)state;
    rng_state = 0x2545F4914F6CDD1Dull;
    printer_t *pr = calloc(1, sizeof(*pr));
    assert_non_null(pr);
    for (int iter = 0; iter < 3000; iter++) {
        tsr_arena_t gen;
        tsr_arena_init(&gen, NULL);
        tsr_ast_expr_t *want = gen_expr(&gen, 1 + (int)(rnd() % 6));
        for (int full = 0; full < 2; full++) {
            memset(pr, 0, sizeof(*pr));
            pr->full = full;
            pr->line = 1;
            pr_text(pr, "SELECT ");
            if (full)
                pr_child(pr, want, L_PRIMARY + 1);
            else
                pr_expr(pr, want, 0);
            parsed_t p;
            parse_n(&p, pr->b.s, pr->b.n, NULL);
            char why[160] = "";
            if (p.rc != TSR_OK || p.sel->nitems != 1 || p.sel->items[0].alias ||
                !same_tree(p.sel->items[0].expr, want, why, sizeof(why))) {
                print_error("iter %d (%s): rc %d '%s' at %d:%d; %s\n%s\n", iter,
                            full ? "full" : "minimal", p.rc, p.err.message, p.err.line,
                            p.err.column, why, pr->b.s);
                fail();
            }
            parsed_free(&p);
        }
        tsr_arena_release(&gen);
    }
    free(pr);
}

/* ---- out of memory ------------------------------------------------------------------------- */

static void test_out_of_memory(void **state)
{
    (void)state;
    /* long enough to need several arena blocks, touching every kind of node */
    sbuf_t *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    sb_put(b, "SELECT DISTINCT t.*, a + -b * 2 AS \"x y\", count(*), count(DISTINCT c), "
              "f('it''s', NULL, TRUE, 1.5) z FROM t JOIN u ON t.k = u.k WHERE NOT a IS NULL "
              "AND b NOT BETWEEN 1 AND 2 AND c LIKE 'x%%' AND d NOT IN (");
    for (int i = 0; i < 2000; i++)
        sb_put(b, "%s%d", i ? ", " : "", i);
    sb_put(b, ") GROUP BY a, b HAVING count(*) > 1 ORDER BY 1 DESC LIMIT 5 OFFSET 2;");
    size_t failures = 0;
    for (long k = 0;; k++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_mem_fail_after(&mem, k);
        parsed_t p;
        parse_n(&p, b->s, b->n, &mem);
        long injected = atomic_load(&mem.failures);
        parsed_free(&p); /* ASan's leak check proves nothing else was kept */
        if (injected == 0) {
            assert_int_equal(p.rc, TSR_OK);
            break;
        }
        failures++;
        if (p.rc != TSR_ERR_NOMEM || p.err.status != TSR_ERR_NOMEM) {
            print_error("fail after %ld: rc %d '%s'\n", k, p.rc, p.err.message);
            fail();
        }
    }
    assert_true(failures >= 3);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_calls),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_nesting_bounded),
        cmocka_unit_test(test_random_round_trip),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
