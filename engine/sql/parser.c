/*
 * parser.c - recursive-descent parser for one SELECT statement (ast.h):
 * the statement and tsr_sql_parse here, expressions in parser_expr.c,
 * tokens, errors and nodes in parser_base.c (parser_int.h).
 *
 * Structure: one function per grammar rule and per precedence level, lowest
 * first: parse_or > parse_and > parse_not > parse_cmp > parse_add > parse_mul
 * > parse_unary > parse_primary. Binary levels loop (left-associative);
 * NOT and unary minus recurse. A function returns the node it built, or NULL
 * after recording the first error in the parser (p->rc, p->err); callers
 * only pass NULL upwards. Nothing is freed on failure: every allocation is in
 * the caller's arena, which the caller releases.
 *
 * Lookahead: up to three tokens (ident '.' '*' in the select list). A lexical
 * error becomes a TSR_TOK_ERROR token whose error is kept aside and reported
 * only when the parser reaches that token, so errors come out in text order.
 *
 * Spans: a node spans from its first token to the last token consumed for it
 * (p->prev); a parenthesised expression's span grows to include the
 * parentheses; unary '+' is dropped but its operand's span grows to cover it;
 * '-' directly before a numeric literal folds into the literal.
 *
 * Bounds, so that no input can exhaust the stack here or in the binder and
 * executor, which walk the tree recursively:
 *   MAX_NESTING  parser recursion (parentheses, calls, IN lists, NOT, unary)
 *   MAX_HEIGHT   height of an expression tree (also a+b+c+... chains)
 * Both fail with "expression nested too deeply". The height of each node is
 * kept beside it (pnode_t) so checking it is O(1) per node.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/parser_int.h"

/* A name after AS (required) or an implicit alias (optional): *out stays
 * NULL when there is none. */
static bool parse_alias(parser_t *p, char **out)
{
    *out = NULL;
    if (sqlp_accept(p, TSR_TOK_AS)) {
        const tsr_token_t *t = sqlp_peek(p, 0);
        if (!sqlp_is_name(t->kind)) {
            sqlp_fail_found(p, t, "expected a name after AS");
            sqlp_hint_keyword_as_name(p);
            return false;
        }
        *out = t->text;
        sqlp_next(p);
        return true;
    }
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (!sqlp_is_name(t->kind))
        return true;
    const char *unsupported = sqlp_unsupported_word(t);
    if (unsupported) {
        sqlp_fail_unsupported(p, t, unsupported);
        return false;
    }
    *out = t->text;
    p->alias = *t;
    sqlp_next(p);
    return true;
}

static bool parse_table_ref(parser_t *p, tsr_ast_table_ref_t *ref, const char *after)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (!sqlp_is_name(t->kind)) {
        sqlp_fail_found(p, t, "expected a table name after %s", after);
        if (t->kind == TSR_TOK_LPAREN)
            sqlp_hint(p, "subqueries are not supported");
        else
            sqlp_hint_keyword_as_name(p);
        return false;
    }
    ref->table = t->text;
    ref->span = sqlp_span_of(t);
    sqlp_next(p);
    return parse_alias(p, &ref->alias);
}

static bool parse_select_item(parser_t *p, tsr_ast_select_item_t *item)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    tsr_ast_expr_t *e;
    if (t->kind == TSR_TOK_STAR || (sqlp_is_name(t->kind) && sqlp_peek_kind(p, 1) == TSR_TOK_DOT &&
                                    sqlp_peek_kind(p, 2) == TSR_TOK_STAR)) {
        tsr_src_span_t start = sqlp_span_of(t);
        char *table = t->kind == TSR_TOK_STAR ? NULL : t->text;
        if (table) {
            sqlp_next(p);
            sqlp_next(p);
        }
        sqlp_next(p);
        e = sqlp_new_node(p, TSR_AST_STAR, sqlp_span_to_prev(p, start), 0);
        if (!e)
            return false;
        e->table = table;
        if (sqlp_peek_kind(p, 0) == TSR_TOK_AS || sqlp_is_name(sqlp_peek_kind(p, 0))) {
            if (sqlp_unsupported_word(sqlp_peek(p, 0))) {
                sqlp_fail_unsupported(p, sqlp_peek(p, 0), sqlp_unsupported_word(sqlp_peek(p, 0)));
                return false;
            }
            sqlp_fail_at(p, sqlp_peek(p, 0), "a * in the select list cannot have an alias");
            return false;
        }
        item->expr = e;
        item->alias = NULL;
        return true;
    }
    e = sqlp_parse_expr(p);
    if (!e)
        return false;
    item->expr = e;
    return parse_alias(p, &item->alias);
}

/* LIMIT/OFFSET operand: a non-negative integer literal. */
static bool parse_count(parser_t *p, const char *after, int64_t *out)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (t->kind != TSR_TOK_INT) {
        sqlp_fail_found(p, t, "expected a non-negative integer after %s", after);
        return false;
    }
    *out = t->ival;
    sqlp_next(p);
    return true;
}

static bool parse_expr_items(parser_t *p, tsr_ast_expr_t ***out, size_t *n)
{
    size_t cap = 0;
    do {
        tsr_ast_expr_t *e = sqlp_parse_expr(p);
        if (!e || !sqlp_push(p, (void **)out, n, &cap, &e, sizeof(e)))
            return false;
    } while (sqlp_accept(p, TSR_TOK_COMMA));
    return true;
}

/* The clause keywords a misspelt word may have meant (for "did you mean"). */
static void hint_misspelt_clause(parser_t *p)
{
    static const char *const clauses[] = {"FROM",  "WHERE",  "GROUP", "HAVING", "ORDER",
                                          "LIMIT", "OFFSET", "JOIN",  "INNER"};
    if (p->alias.kind != TSR_TOK_IDENT || p->alias.offset != p->prev.offset)
        return;
    const char *word = p->alias.text;
    size_t len = strlen(word);
    if (len < 3)
        return; /* too short to guess from */
    for (size_t i = 0; i < sizeof(clauses) / sizeof(clauses[0]); i++) {
        size_t d = tsr_edit_distance(word, clauses[i]);
        if (d == 1 || (d == 2 && len >= 4)) {
            sqlp_hint(p, "did you mean %s? '%s' was read as an alias", clauses[i], word);
            return;
        }
    }
}

static void fail_after_end(parser_t *p, bool after_semicolon)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (after_semicolon) {
        sqlp_fail_at(p, t, "unexpected input after end of statement");
        sqlp_hint(p, "run one statement at a time");
        return;
    }
    const char *unsupported = sqlp_unsupported_word(t);
    if (unsupported) {
        sqlp_fail_unsupported(p, t, unsupported);
        return;
    }
    char what[160];
    sqlp_describe(p, t, what, sizeof(what));
    sqlp_fail_at(p, t, "unexpected %s after end of statement", what);
    switch (t->kind) {
    case TSR_TOK_OFFSET:
        sqlp_hint(p, "OFFSET goes after LIMIT: LIMIT n OFFSET m");
        break;
    case TSR_TOK_FROM:
    case TSR_TOK_JOIN:
    case TSR_TOK_INNER:
    case TSR_TOK_WHERE:
    case TSR_TOK_GROUP:
    case TSR_TOK_HAVING:
    case TSR_TOK_ORDER:
    case TSR_TOK_LIMIT:
        sqlp_hint(p, "clauses go in this order, each at most once: FROM, JOIN, WHERE, GROUP BY, "
                     "HAVING, ORDER BY, LIMIT");
        break;
    default:
        hint_misspelt_clause(p);
        break;
    }
}

static tsr_ast_select_t *parse_select(parser_t *p)
{
    tsr_ast_select_t *s = tsr_arena_alloc(p->arena, sizeof(*s));
    if (!s) {
        sqlp_nomem(p);
        return NULL;
    }
    s->limit = -1;
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (t->kind != TSR_TOK_SELECT) {
        static const char *const others[] = {"INSERT", "UPDATE", "DELETE",  "CREATE", "DROP",
                                             "ALTER",  "WITH",   "EXPLAIN", "VALUES"};
        sqlp_fail_found(p, t, "expected SELECT");
        for (size_t i = 0; t->kind == TSR_TOK_IDENT && i < sizeof(others) / sizeof(others[0]); i++)
            if (strcasecmp(t->text, others[i]) == 0)
                sqlp_hint(p, "only SELECT statements are supported");
        return NULL;
    }
    sqlp_next(p);
    s->distinct = sqlp_accept(p, TSR_TOK_DISTINCT);

    size_t cap = 0;
    do {
        tsr_ast_select_item_t item = {0};
        if (!parse_select_item(p, &item) ||
            !sqlp_push(p, (void **)&s->items, &s->nitems, &cap, &item, sizeof(item)))
            return NULL;
    } while (sqlp_accept(p, TSR_TOK_COMMA));

    if (sqlp_accept(p, TSR_TOK_FROM)) {
        s->has_from = true;
        if (!parse_table_ref(p, &s->from, "FROM"))
            return NULL;
        cap = 0;
        for (;;) {
            tsr_ast_join_t join = {0};
            if (sqlp_accept(p, TSR_TOK_INNER)) {
                if (!sqlp_expect(p, TSR_TOK_JOIN, "INNER"))
                    return NULL;
            } else if (!sqlp_accept(p, TSR_TOK_JOIN)) {
                break;
            }
            if (!parse_table_ref(p, &join.table, "JOIN"))
                return NULL;
            if (!sqlp_expect(p, TSR_TOK_ON, "the joined table"))
                return NULL;
            join.on = sqlp_parse_expr(p);
            if (!join.on ||
                !sqlp_push(p, (void **)&s->joins, &s->njoins, &cap, &join, sizeof(join)))
                return NULL;
        }
    }
    if (sqlp_accept(p, TSR_TOK_WHERE) && !(s->where = sqlp_parse_expr(p)))
        return NULL;
    if (sqlp_accept(p, TSR_TOK_GROUP)) {
        if (!sqlp_expect(p, TSR_TOK_BY, "GROUP") ||
            !parse_expr_items(p, &s->group_by, &s->ngroup_by))
            return NULL;
    }
    if (sqlp_accept(p, TSR_TOK_HAVING) && !(s->having = sqlp_parse_expr(p)))
        return NULL;
    if (sqlp_accept(p, TSR_TOK_ORDER)) {
        if (!sqlp_expect(p, TSR_TOK_BY, "ORDER"))
            return NULL;
        cap = 0;
        do {
            tsr_ast_order_item_t item = {0};
            if (!(item.expr = sqlp_parse_expr(p)))
                return NULL;
            if (!sqlp_accept(p, TSR_TOK_ASC))
                item.desc = sqlp_accept(p, TSR_TOK_DESC);
            if (!sqlp_push(p, (void **)&s->order_by, &s->norder_by, &cap, &item, sizeof(item)))
                return NULL;
        } while (sqlp_accept(p, TSR_TOK_COMMA));
    }
    if (sqlp_accept(p, TSR_TOK_LIMIT)) {
        if (!parse_count(p, "LIMIT", &s->limit))
            return NULL;
        if (sqlp_accept(p, TSR_TOK_OFFSET) && !parse_count(p, "OFFSET", &s->offset))
            return NULL;
    }
    bool semi = sqlp_accept(p, TSR_TOK_SEMI);
    if (sqlp_peek_kind(p, 0) != TSR_TOK_EOF) {
        fail_after_end(p, semi);
        return NULL;
    }
    return s;
}

tsr_status_t tsr_sql_parse(tsr_arena_t *arena, const char *sql, size_t len, tsr_ast_select_t **out,
                           tsr_error_t *err)
{
    if (!arena || !out || (!sql && len))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "tsr_sql_parse: missing argument");
    parser_t p;
    memset(&p, 0, sizeof(p));
    p.arena = arena;
    p.err = err;
    p.prev.line = 1;
    p.prev.column = 1;
    p.alias.kind = TSR_TOK_EOF;
    tsr_lexer_init(&p.lx, arena, sql, len);
    tsr_ast_select_t *s = parse_select(&p);
    if (!s)
        return p.rc != TSR_OK ? p.rc : TSR_ERR_INTERNAL;
    *out = s;
    return TSR_OK;
}
