/*
 * parser_expr.c - the SQL parser's expressions: one function per precedence
 * level, lowest first (parse_or > parse_and > parse_not > parse_cmp >
 * parse_add > parse_mul > parse_unary > parse_primary; parser.c says how
 * spans and bounds work); parser_int.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/parser_int.h"

/* ---- expressions ---------------------------------------------------------------- */

static tsr_ast_expr_t *parse_or(parser_t *p);
static tsr_ast_expr_t *parse_unary(parser_t *p);

tsr_ast_expr_t *sqlp_parse_expr(parser_t *p)
{
    if (!sqlp_enter(p))
        return NULL;
    tsr_ast_expr_t *e = parse_or(p);
    sqlp_leave(p);
    return e;
}

/* '(' expr (',' expr)* ')' after IN, or the arguments of a call: pushes the
 * expressions after the ones already in *args. */
static bool parse_expr_list(parser_t *p, tsr_ast_expr_t ***args, size_t *n, size_t *cap,
                            const char *where)
{
    do {
        tsr_ast_expr_t *e = sqlp_parse_expr(p);
        if (!e || !sqlp_push(p, (void **)args, n, cap, &e, sizeof(e)))
            return false;
    } while (sqlp_accept(p, TSR_TOK_COMMA));
    if (sqlp_accept(p, TSR_TOK_RPAREN))
        return true;
    sqlp_fail_found(p, sqlp_peek(p, 0), "expected ',' or ')' %s", where);
    return false;
}

static tsr_ast_expr_t *parse_call(parser_t *p, const tsr_token_t *name)
{
    tsr_src_span_t start = sqlp_span_of(name);
    char *fname = name->text;
    tsr_ast_expr_t **args = NULL;
    size_t n = 0, cap = 0;
    bool distinct = false;
    sqlp_next(p); /* the '(' */
    /* COUNT(*): '*' is its only argument */
    if (sqlp_peek_kind(p, 0) == TSR_TOK_STAR) {
        sqlp_next(p);
        tsr_ast_expr_t *star = sqlp_new_node(p, TSR_AST_STAR, sqlp_span_of(&p->prev), 0);
        if (!star || !sqlp_push(p, (void **)&args, &n, &cap, &star, sizeof(star)) ||
            !sqlp_expect(p, TSR_TOK_RPAREN, "'*'"))
            return NULL;
    } else if (!sqlp_accept(p, TSR_TOK_RPAREN)) {
        distinct = sqlp_accept(p, TSR_TOK_DISTINCT);
        if (!parse_expr_list(p, &args, &n, &cap, "in the arguments of a function call"))
            return NULL;
    }
    tsr_ast_expr_t *e = sqlp_new_node(p, TSR_AST_FUNC, sqlp_span_to_prev(p, start), 0);
    if (!e)
        return NULL;
    e->name = fname;
    e->distinct = distinct;
    e->args = args;
    e->nargs = n;
    return sqlp_finish(p, e);
}

/* A name at la[0]: column, table.column or a function call. */
static tsr_ast_expr_t *parse_name(parser_t *p)
{
    tsr_token_t first = *sqlp_peek(p, 0);
    sqlp_next(p);
    if (sqlp_peek_kind(p, 0) == TSR_TOK_LPAREN) {
        if (!sqlp_enter(p))
            return NULL;
        tsr_ast_expr_t *e = parse_call(p, &first);
        sqlp_leave(p);
        return e;
    }
    char *table = NULL, *name = first.text;
    if (sqlp_accept(p, TSR_TOK_DOT)) {
        const tsr_token_t *t = sqlp_peek(p, 0);
        if (!sqlp_is_name(t->kind)) {
            sqlp_fail_found(p, t, "expected a column name after '.'");
            if (t->kind == TSR_TOK_STAR)
                sqlp_hint(p, "table.* may only be an item of the select list");
            else
                sqlp_hint_keyword_as_name(p);
            return NULL;
        }
        table = name;
        name = t->text;
        sqlp_next(p);
        if (sqlp_peek_kind(p, 0) == TSR_TOK_DOT) {
            sqlp_fail_at(p, sqlp_peek(p, 0),
                         "too many qualifiers: a column is written name or table.name");
            return NULL;
        }
    }
    tsr_ast_expr_t *e =
        sqlp_new_node(p, TSR_AST_COLUMN, sqlp_span_to_prev(p, sqlp_span_of(&first)), 0);
    if (!e)
        return NULL;
    e->table = table;
    e->name = name;
    return e;
}

static void fail_expected_expr(parser_t *p)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (t->kind == TSR_TOK_SELECT) {
        sqlp_fail_at(p, t, "subqueries are not supported");
        return;
    }
    sqlp_fail_found(p, t, "expected an expression");
    if (p->prev.kind == TSR_TOK_COMMA &&
        (t->kind == TSR_TOK_FROM || t->kind == TSR_TOK_EOF || t->kind == TSR_TOK_RPAREN ||
         t->kind == TSR_TOK_WHERE || t->kind == TSR_TOK_GROUP || t->kind == TSR_TOK_ORDER ||
         t->kind == TSR_TOK_HAVING || t->kind == TSR_TOK_LIMIT))
        sqlp_hint(p, "remove the ',' before %s", tsr_lexer_kind_name(t->kind));
    else
        sqlp_hint_keyword_as_name(p);
}

static tsr_ast_expr_t *parse_primary(parser_t *p)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    tsr_ast_expr_t *e;
    switch (t->kind) {
    case TSR_TOK_INT:
    case TSR_TOK_DOUBLE:
    case TSR_TOK_STRING:
    case TSR_TOK_NULL:
    case TSR_TOK_TRUE:
    case TSR_TOK_FALSE: {
        tsr_token_t lit = *t;
        static const tsr_ast_kind_t kinds[] = {
            [TSR_TOK_INT] = TSR_AST_INT,       [TSR_TOK_DOUBLE] = TSR_AST_DOUBLE,
            [TSR_TOK_STRING] = TSR_AST_STRING, [TSR_TOK_NULL] = TSR_AST_NULL,
            [TSR_TOK_TRUE] = TSR_AST_BOOL,     [TSR_TOK_FALSE] = TSR_AST_BOOL,
        };
        sqlp_next(p);
        e = sqlp_new_node(p, kinds[lit.kind], sqlp_span_of(&lit), 0);
        if (!e)
            return NULL;
        e->ival = lit.kind == TSR_TOK_TRUE ? 1 : lit.ival;
        e->dval = lit.dval;
        if (lit.kind == TSR_TOK_STRING) {
            e->sval = lit.text;
            e->slen = lit.text_len;
        }
        return e;
    }
    case TSR_TOK_IDENT:
    case TSR_TOK_QIDENT:
        return parse_name(p);
    case TSR_TOK_LPAREN: {
        tsr_src_span_t start = sqlp_span_of(t);
        sqlp_next(p);
        if (sqlp_peek_kind(p, 0) == TSR_TOK_SELECT) {
            sqlp_fail_at(p, sqlp_peek(p, 0), "subqueries are not supported");
            return NULL;
        }
        e = sqlp_parse_expr(p);
        if (!e)
            return NULL;
        if (!sqlp_accept(p, TSR_TOK_RPAREN)) {
            sqlp_fail_found(p, sqlp_peek(p, 0), "expected ')'");
            sqlp_hint(p, "the '(' at line %d, column %d is not closed", start.line, start.column);
            return NULL;
        }
        e->span = sqlp_span_to_prev(p, start);
        return e;
    }
    default:
        fail_expected_expr(p);
        return NULL;
    }
}

static tsr_ast_expr_t *parse_unary(parser_t *p)
{
    tsr_tok_kind_t k = sqlp_peek_kind(p, 0);
    if (k != TSR_TOK_MINUS && k != TSR_TOK_PLUS)
        return parse_primary(p);
    tsr_src_span_t start = sqlp_span_of(sqlp_peek(p, 0));
    sqlp_next(p);
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (k == TSR_TOK_MINUS && (t->kind == TSR_TOK_INT || t->kind == TSR_TOK_DOUBLE)) {
        /* fold: -5 is the literal -5 (and -9223372036854775808 fits) */
        tsr_token_t lit = *t;
        sqlp_next(p);
        bool as_int = lit.kind == TSR_TOK_INT || lit.int_min_abs;
        tsr_ast_expr_t *e =
            sqlp_new_node(p, as_int ? TSR_AST_INT : TSR_AST_DOUBLE, sqlp_span_to_prev(p, start), 0);
        if (!e)
            return NULL;
        if (lit.kind == TSR_TOK_INT)
            e->ival = -lit.ival; /* lit.ival >= 0: cannot overflow */
        else if (lit.int_min_abs)
            e->ival = INT64_MIN;
        else
            e->dval = -lit.dval;
        return e;
    }
    if (!sqlp_enter(p))
        return NULL;
    tsr_ast_expr_t *operand = parse_unary(p);
    sqlp_leave(p);
    if (!operand)
        return NULL;
    if (k == TSR_TOK_PLUS) {
        operand->span = sqlp_span_to_prev(p, start);
        return operand;
    }
    tsr_ast_expr_t *e = sqlp_new_node(p, TSR_AST_UNARY, sqlp_span_to_prev(p, start), 1);
    if (!e)
        return NULL;
    e->op = TSR_OP_NEG;
    e->args[0] = operand;
    return sqlp_finish(p, e);
}

static tsr_ast_expr_t *parse_mul(parser_t *p)
{
    tsr_ast_expr_t *l = parse_unary(p);
    while (l) {
        tsr_op_t op;
        switch (sqlp_peek_kind(p, 0)) {
        case TSR_TOK_STAR:
            op = TSR_OP_MUL;
            break;
        case TSR_TOK_SLASH:
            op = TSR_OP_DIV;
            break;
        case TSR_TOK_PERCENT:
            op = TSR_OP_MOD;
            break;
        default:
            return l;
        }
        sqlp_next(p);
        tsr_ast_expr_t *r = parse_unary(p);
        if (!r)
            return NULL;
        l = sqlp_new_binary(p, TSR_AST_BINARY, op, l, r);
    }
    return NULL;
}

static tsr_ast_expr_t *parse_add(parser_t *p)
{
    tsr_ast_expr_t *l = parse_mul(p);
    while (l) {
        tsr_op_t op;
        switch (sqlp_peek_kind(p, 0)) {
        case TSR_TOK_PLUS:
            op = TSR_OP_ADD;
            break;
        case TSR_TOK_MINUS:
            op = TSR_OP_SUB;
            break;
        default:
            return l;
        }
        sqlp_next(p);
        tsr_ast_expr_t *r = parse_mul(p);
        if (!r)
            return NULL;
        l = sqlp_new_binary(p, TSR_AST_BINARY, op, l, r);
    }
    return NULL;
}

/* The postfix forms after an operand l at comparison level; la[0] is IN,
 * BETWEEN or LIKE (a NOT before it was consumed and is `negated`). */
static tsr_ast_expr_t *parse_predicate(parser_t *p, tsr_ast_expr_t *l, bool negated)
{
    tsr_tok_kind_t k = sqlp_peek_kind(p, 0);
    sqlp_next(p);
    tsr_ast_expr_t *e = NULL;
    if (k == TSR_TOK_IN) {
        if (!sqlp_expect(p, TSR_TOK_LPAREN, "IN"))
            return NULL;
        if (sqlp_peek_kind(p, 0) == TSR_TOK_RPAREN) {
            sqlp_fail_found(p, sqlp_peek(p, 0), "expected a value in the IN list");
            sqlp_hint(p, "an IN list holds at least one value");
            return NULL;
        }
        tsr_ast_expr_t **args = NULL;
        size_t n = 0, cap = 0;
        if (!sqlp_push(p, (void **)&args, &n, &cap, &l, sizeof(l)) ||
            !parse_expr_list(p, &args, &n, &cap, "in the IN list"))
            return NULL;
        e = sqlp_new_node(p, TSR_AST_IN, sqlp_span_to_prev(p, l->span), 0);
        if (!e)
            return NULL;
        e->args = args;
        e->nargs = n;
    } else if (k == TSR_TOK_BETWEEN) {
        /* bounds are at + - level, so the AND here is BETWEEN's own */
        tsr_ast_expr_t *lo = parse_add(p);
        if (!lo || !sqlp_expect(p, TSR_TOK_AND, "the lower bound of BETWEEN"))
            return NULL;
        tsr_ast_expr_t *hi = parse_add(p);
        if (!hi)
            return NULL;
        e = sqlp_new_node(p, TSR_AST_BETWEEN, sqlp_span_to_prev(p, l->span), 3);
        if (!e)
            return NULL;
        e->args[0] = l;
        e->args[1] = lo;
        e->args[2] = hi;
    } else {
        tsr_ast_expr_t *pat = parse_add(p);
        if (!pat)
            return NULL;
        e = sqlp_new_node(p, TSR_AST_LIKE, sqlp_span_to_prev(p, l->span), 2);
        if (!e)
            return NULL;
        e->args[0] = l;
        e->args[1] = pat;
    }
    e->negated = negated;
    return sqlp_finish(p, e);
}

static tsr_ast_expr_t *parse_cmp(parser_t *p)
{
    tsr_ast_expr_t *l = parse_add(p);
    while (l) {
        tsr_op_t op = TSR_OP_NONE;
        tsr_tok_kind_t k = sqlp_peek_kind(p, 0);
        switch (k) {
        case TSR_TOK_EQ:
            op = TSR_OP_EQ;
            break;
        case TSR_TOK_NE:
            op = TSR_OP_NE;
            break;
        case TSR_TOK_LT:
            op = TSR_OP_LT;
            break;
        case TSR_TOK_LE:
            op = TSR_OP_LE;
            break;
        case TSR_TOK_GT:
            op = TSR_OP_GT;
            break;
        case TSR_TOK_GE:
            op = TSR_OP_GE;
            break;
        case TSR_TOK_IS: {
            sqlp_next(p);
            bool neg = sqlp_accept(p, TSR_TOK_NOT);
            if (!sqlp_expect(p, TSR_TOK_NULL, neg ? "IS NOT" : "IS"))
                return NULL;
            tsr_ast_expr_t *e = sqlp_new_node(p, TSR_AST_IS_NULL, sqlp_span_to_prev(p, l->span), 1);
            if (!e)
                return NULL;
            e->negated = neg;
            e->args[0] = l;
            l = sqlp_finish(p, e);
            continue;
        }
        case TSR_TOK_IN:
        case TSR_TOK_BETWEEN:
        case TSR_TOK_LIKE:
            l = parse_predicate(p, l, false);
            continue;
        case TSR_TOK_NOT: {
            tsr_tok_kind_t k1 = sqlp_peek_kind(p, 1);
            if (k1 != TSR_TOK_IN && k1 != TSR_TOK_BETWEEN && k1 != TSR_TOK_LIKE) {
                sqlp_fail_found(p, sqlp_peek(p, 1), "expected IN, BETWEEN or LIKE after NOT");
                return NULL;
            }
            sqlp_next(p);
            l = parse_predicate(p, l, true);
            continue;
        }
        default:
            return l;
        }
        sqlp_next(p);
        tsr_ast_expr_t *r = parse_add(p);
        if (!r)
            return NULL;
        l = sqlp_new_binary(p, TSR_AST_BINARY, op, l, r);
    }
    return NULL;
}

static tsr_ast_expr_t *parse_not(parser_t *p)
{
    if (sqlp_peek_kind(p, 0) != TSR_TOK_NOT)
        return parse_cmp(p);
    tsr_src_span_t start = sqlp_span_of(sqlp_peek(p, 0));
    sqlp_next(p);
    if (!sqlp_enter(p))
        return NULL;
    tsr_ast_expr_t *operand = parse_not(p);
    sqlp_leave(p);
    if (!operand)
        return NULL;
    tsr_ast_expr_t *e = sqlp_new_node(p, TSR_AST_UNARY, sqlp_span_to_prev(p, start), 1);
    if (!e)
        return NULL;
    e->op = TSR_OP_NOT;
    e->args[0] = operand;
    return sqlp_finish(p, e);
}

static tsr_ast_expr_t *parse_and(parser_t *p)
{
    tsr_ast_expr_t *l = parse_not(p);
    while (l && sqlp_accept(p, TSR_TOK_AND)) {
        tsr_ast_expr_t *r = parse_not(p);
        if (!r)
            return NULL;
        l = sqlp_new_binary(p, TSR_AST_BINARY, TSR_OP_AND, l, r);
    }
    return l;
}

static tsr_ast_expr_t *parse_or(parser_t *p)
{
    tsr_ast_expr_t *l = parse_and(p);
    while (l && sqlp_accept(p, TSR_TOK_OR)) {
        tsr_ast_expr_t *r = parse_and(p);
        if (!r)
            return NULL;
        l = sqlp_new_binary(p, TSR_AST_BINARY, TSR_OP_OR, l, r);
    }
    return l;
}

/* ---- statement ----------------------------------------------------------------------- */
