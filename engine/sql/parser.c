/*
 * parser.c - recursive-descent parser for one SELECT statement (ast.h).
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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/ast.h"
#include "sql/lexer.h"

#define MAX_NESTING 256
#define MAX_HEIGHT 1000
#define LOOKAHEAD 3

/* Every expression node is allocated as a pnode_t; e is first, so a
 * tsr_ast_expr_t* from this parser converts back to its pnode_t. */
typedef struct pnode {
    tsr_ast_expr_t e;
    int height; /* 1 for a leaf */
} pnode_t;

typedef struct parser {
    tsr_arena_t *arena;
    tsr_lexer_t lx;
    tsr_error_t *err;          /* caller's, may be NULL */
    tsr_status_t rc;           /* first failure; TSR_OK while all is well */
    bool own_error;            /* err holds the error this parse recorded (hints may go there) */
    tsr_token_t la[LOOKAHEAD]; /* la[0] is the current token */
    size_t nla;                /* valid entries in la */
    bool lex_failed;           /* la holds an ERROR token: lex no further */
    tsr_error_t lex_err;       /* the error of that token */
    tsr_token_t prev;          /* the last consumed token: where spans end */
    tsr_token_t alias;         /* the last implicit alias (kind EOF when none) */
    int depth;                 /* current recursion depth (MAX_NESTING) */
} parser_t;

/* ---- tokens ------------------------------------------------------------------ */

static const tsr_token_t *peek(parser_t *p, size_t k)
{
    while (p->nla <= k) {
        tsr_token_t *t = &p->la[p->nla];
        if (p->lex_failed) { /* the ERROR token repeats (prev once it was consumed) */
            *t = p->nla > 0 ? p->la[p->nla - 1] : p->prev;
        } else if (tsr_lexer_next(&p->lx, t, &p->lex_err) != TSR_OK) {
            p->lex_failed = true;
        }
        p->nla++;
    }
    return &p->la[k];
}

static tsr_tok_kind_t peek_kind(parser_t *p, size_t k)
{
    return peek(p, k)->kind;
}

static void next(parser_t *p)
{
    peek(p, 0);
    p->prev = p->la[0];
    memmove(&p->la[0], &p->la[1], (LOOKAHEAD - 1) * sizeof(p->la[0]));
    p->nla--;
}

static bool accept(parser_t *p, tsr_tok_kind_t kind)
{
    if (peek_kind(p, 0) != kind)
        return false;
    next(p);
    return true;
}

static bool is_name(tsr_tok_kind_t kind)
{
    return kind == TSR_TOK_IDENT || kind == TSR_TOK_QIDENT;
}

/* How a token reads in "found X": its source text quoted (control bytes
 * escaped, long text cut), or "end of input". */
static void describe(const parser_t *p, const tsr_token_t *tok, char *buf, size_t cap)
{
    if (tok->kind == TSR_TOK_EOF) {
        snprintf(buf, cap, "end of input");
        return;
    }
    const char *s = p->lx.src + tok->offset;
    size_t n = tok->len, shown = n > 32 ? 32 : n;
    /* do not cut a UTF-8 sequence in half */
    while (shown < n && shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80)
        shown--;
    bool quote = tok->kind != TSR_TOK_STRING; /* a string brings its own quotes */
    size_t j = 0;
    if (quote && j + 1 < cap)
        buf[j++] = '\'';
    for (size_t i = 0; i < shown && j + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            j += (size_t)snprintf(buf + j, cap - j, "\\x%02X", c);
        else
            buf[j++] = (char)c;
    }
    if (shown < n && j + 4 < cap) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    if (quote && j + 1 < cap)
        buf[j++] = '\'';
    buf[j] = '\0';
}

/* ---- errors ------------------------------------------------------------------ */

static void fail_v(parser_t *p, const tsr_token_t *tok, bool found, const char *fmt, va_list ap)
{
    if (p->rc != TSR_OK)
        return;
    if (tok->kind == TSR_TOK_ERROR) {
        /* the lexer's error at this token is the first problem in the text */
        p->rc = p->lex_err.status;
        if (p->err && p->err->status == TSR_OK) {
            *p->err = p->lex_err;
            p->own_error = true;
        }
        return;
    }
    char msg[400];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (found && n >= 0 && (size_t)n < sizeof(msg)) {
        char what[160];
        describe(p, tok, what, sizeof(what));
        snprintf(msg + n, sizeof(msg) - (size_t)n, ", found %s", what);
    }
    p->own_error = p->err && p->err->status == TSR_OK;
    p->rc = tsr_error_set_at(p->err, TSR_ERR_SYNTAX, NULL, tok->line, tok->column, "%s", msg);
}

/* "<fmt>, found <tok>" at tok. */
static void fail_found(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_found(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(p, tok, true, fmt, ap);
    va_end(ap);
}

/* "<fmt>" at tok. */
static void fail_at(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(p, tok, false, fmt, ap);
    va_end(ap);
}

static void hint(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hint(parser_t *p, const char *fmt, ...)
{
    if (!p->own_error || p->err->status != TSR_ERR_SYNTAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->hint, sizeof(p->err->hint), fmt, ap);
    va_end(ap);
}

static void nomem(parser_t *p)
{
    if (p->rc != TSR_OK)
        return;
    p->rc = tsr_error_set(p->err, TSR_ERR_NOMEM, "out of memory while parsing SQL");
}

/* Consumes a token of kind, or fails with "expected K[ after what], found X". */
static bool expect(parser_t *p, tsr_tok_kind_t kind, const char *after)
{
    if (accept(p, kind))
        return true;
    if (after)
        fail_found(p, peek(p, 0), "expected %s after %s", tsr_lexer_kind_name(kind), after);
    else
        fail_found(p, peek(p, 0), "expected %s", tsr_lexer_kind_name(kind));
    return false;
}

/* After a failure at la[0] where a name or expression was wanted: when the
 * token is a keyword that reads like a name here, say how to use it as one. */
static void hint_keyword_as_name(parser_t *p)
{
    const tsr_token_t *t = peek(p, 0);
    if (!tsr_lexer_is_keyword(t->kind))
        return;
    tsr_tok_kind_t after = peek_kind(p, 1);
    switch (t->kind) {
    case TSR_TOK_AND:
    case TSR_TOK_OR:
    case TSR_TOK_WHERE:
    case TSR_TOK_HAVING:
    case TSR_TOK_ON:
    case TSR_TOK_INNER:
    case TSR_TOK_SELECT:
        return; /* almost never meant as a name */
    case TSR_TOK_GROUP:
    case TSR_TOK_ORDER:
        if (after == TSR_TOK_BY)
            return;
        break;
    case TSR_TOK_LIMIT:
    case TSR_TOK_OFFSET:
        if (after == TSR_TOK_INT)
            return;
        break;
    case TSR_TOK_FROM:
    case TSR_TOK_JOIN:
        if (is_name(after))
            return;
        break;
    default:
        break;
    }
    hint(p, "quote it as \"%.*s\" to use it as a name", (int)t->len, p->lx.src + t->offset);
}

/* Words that are not keywords of this dialect but start clauses it lacks:
 * taking one as an implicit alias would silently change the query's meaning
 * (FROM a LEFT JOIN b would become an inner join of a aliased "left"). */
static const char *unsupported_word(const tsr_token_t *t)
{
    static const char *const words[][2] = {
        {"LEFT", "LEFT JOIN is not supported"},
        {"RIGHT", "RIGHT JOIN is not supported"},
        {"FULL", "FULL JOIN is not supported"},
        {"OUTER", "outer joins are not supported"},
        {"CROSS", "CROSS JOIN is not supported"},
        {"NATURAL", "NATURAL JOIN is not supported"},
        {"USING", "JOIN ... USING is not supported"},
        {"UNION", "UNION is not supported"},
        {"INTERSECT", "INTERSECT is not supported"},
        {"EXCEPT", "EXCEPT is not supported"},
        {"WINDOW", "WINDOW is not supported"},
        {"NULLS", "NULLS FIRST/LAST is not supported"},
    };
    if (t->kind != TSR_TOK_IDENT)
        return NULL;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(t->text, words[i][0]) == 0)
            return words[i][1];
    return NULL;
}

static void fail_unsupported(parser_t *p, const tsr_token_t *t, const char *what)
{
    fail_at(p, t, "%s", what);
    if (strstr(what, "JOIN") || strstr(what, "join"))
        hint(p, "only inner joins are supported: [INNER] JOIN t ON condition");
    else if (strncmp(what, "NULLS", 5) == 0)
        hint(p, "NULLs sort first in ascending order and last in descending order");
}

/* ---- nodes -------------------------------------------------------------------- */

static tsr_src_span_t span_of(const tsr_token_t *t)
{
    tsr_src_span_t s = {t->offset, t->len, t->line, t->column};
    return s;
}

/* The span from start's first byte to the end of the last consumed token. */
static tsr_src_span_t span_to_prev(const parser_t *p, tsr_src_span_t start)
{
    size_t end = p->prev.offset + p->prev.len;
    start.len = end > start.offset ? end - start.offset : 0;
    return start;
}

static tsr_ast_expr_t *new_node(parser_t *p, tsr_ast_kind_t kind, tsr_src_span_t span, size_t nargs)
{
    pnode_t *n = tsr_arena_alloc(p->arena, sizeof(*n));
    if (!n) {
        nomem(p);
        return NULL;
    }
    n->e.kind = kind;
    n->e.span = span;
    n->height = 1;
    if (nargs) {
        n->e.args = tsr_arena_alloc(p->arena, nargs * sizeof(n->e.args[0]));
        if (!n->e.args) {
            nomem(p);
            return NULL;
        }
        n->e.nargs = nargs;
    }
    return &n->e;
}

static int height_of(const tsr_ast_expr_t *e)
{
    return ((const pnode_t *)e)->height;
}

/* Sets e's height from its args; fails when the tree is too tall. */
static tsr_ast_expr_t *finish(parser_t *p, tsr_ast_expr_t *e)
{
    int h = 0;
    for (size_t i = 0; i < e->nargs; i++)
        if (height_of(e->args[i]) > h)
            h = height_of(e->args[i]);
    ((pnode_t *)e)->height = h + 1;
    if (h + 1 > MAX_HEIGHT) {
        fail_at(p, &p->prev, "expression nested too deeply");
        hint(p, "an expression may be at most %d levels deep", MAX_HEIGHT);
        return NULL;
    }
    return e;
}

static tsr_ast_expr_t *new_binary(parser_t *p, tsr_ast_kind_t kind, tsr_op_t op, tsr_ast_expr_t *l,
                                  tsr_ast_expr_t *r)
{
    tsr_ast_expr_t *e = new_node(p, kind, span_to_prev(p, l->span), 2);
    if (!e)
        return NULL;
    e->op = op;
    e->args[0] = l;
    e->args[1] = r;
    return finish(p, e);
}

/* Appends elem to an arena array that doubles; old copies stay in the arena
 * (at most as much again as the final array). */
static bool push(parser_t *p, void **data, size_t *n, size_t *cap, const void *elem, size_t size)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        if (ncap > SIZE_MAX / size) {
            nomem(p);
            return false;
        }
        void *nd = tsr_arena_alloc(p->arena, ncap * size);
        if (!nd) {
            nomem(p);
            return false;
        }
        if (*n)
            memcpy(nd, *data, *n * size);
        *data = nd;
        *cap = ncap;
    }
    memcpy((char *)*data + *n * size, elem, size);
    (*n)++;
    return true;
}

/* Recursion guard: enter before a nested parse, leave after. */
static bool enter(parser_t *p)
{
    if (p->depth >= MAX_NESTING) {
        fail_at(p, peek(p, 0), "expression nested too deeply");
        hint(p, "parentheses, NOT and unary minus may nest at most %d levels", MAX_NESTING);
        return false;
    }
    p->depth++;
    return true;
}

static void leave(parser_t *p)
{
    p->depth--;
}

/* ---- expressions ---------------------------------------------------------------- */

static tsr_ast_expr_t *parse_or(parser_t *p);
static tsr_ast_expr_t *parse_unary(parser_t *p);

static tsr_ast_expr_t *parse_expr(parser_t *p)
{
    if (!enter(p))
        return NULL;
    tsr_ast_expr_t *e = parse_or(p);
    leave(p);
    return e;
}

/* '(' expr (',' expr)* ')' after IN, or the arguments of a call: pushes the
 * expressions after the ones already in *args. */
static bool parse_expr_list(parser_t *p, tsr_ast_expr_t ***args, size_t *n, size_t *cap,
                            const char *where)
{
    do {
        tsr_ast_expr_t *e = parse_expr(p);
        if (!e || !push(p, (void **)args, n, cap, &e, sizeof(e)))
            return false;
    } while (accept(p, TSR_TOK_COMMA));
    if (accept(p, TSR_TOK_RPAREN))
        return true;
    fail_found(p, peek(p, 0), "expected ',' or ')' %s", where);
    return false;
}

static tsr_ast_expr_t *parse_call(parser_t *p, const tsr_token_t *name)
{
    tsr_src_span_t start = span_of(name);
    char *fname = name->text;
    tsr_ast_expr_t **args = NULL;
    size_t n = 0, cap = 0;
    bool distinct = false;
    next(p); /* the '(' */
    /* COUNT(*): '*' is its only argument */
    if (peek_kind(p, 0) == TSR_TOK_STAR) {
        next(p);
        tsr_ast_expr_t *star = new_node(p, TSR_AST_STAR, span_of(&p->prev), 0);
        if (!star || !push(p, (void **)&args, &n, &cap, &star, sizeof(star)) ||
            !expect(p, TSR_TOK_RPAREN, "'*'"))
            return NULL;
    } else if (!accept(p, TSR_TOK_RPAREN)) {
        distinct = accept(p, TSR_TOK_DISTINCT);
        if (!parse_expr_list(p, &args, &n, &cap, "in the arguments of a function call"))
            return NULL;
    }
    tsr_ast_expr_t *e = new_node(p, TSR_AST_FUNC, span_to_prev(p, start), 0);
    if (!e)
        return NULL;
    e->name = fname;
    e->distinct = distinct;
    e->args = args;
    e->nargs = n;
    return finish(p, e);
}

/* A name at la[0]: column, table.column or a function call. */
static tsr_ast_expr_t *parse_name(parser_t *p)
{
    tsr_token_t first = *peek(p, 0);
    next(p);
    if (peek_kind(p, 0) == TSR_TOK_LPAREN) {
        if (!enter(p))
            return NULL;
        tsr_ast_expr_t *e = parse_call(p, &first);
        leave(p);
        return e;
    }
    char *table = NULL, *name = first.text;
    if (accept(p, TSR_TOK_DOT)) {
        const tsr_token_t *t = peek(p, 0);
        if (!is_name(t->kind)) {
            fail_found(p, t, "expected a column name after '.'");
            if (t->kind == TSR_TOK_STAR)
                hint(p, "table.* may only be an item of the select list");
            else
                hint_keyword_as_name(p);
            return NULL;
        }
        table = name;
        name = t->text;
        next(p);
        if (peek_kind(p, 0) == TSR_TOK_DOT) {
            fail_at(p, peek(p, 0), "too many qualifiers: a column is written name or table.name");
            return NULL;
        }
    }
    tsr_ast_expr_t *e = new_node(p, TSR_AST_COLUMN, span_to_prev(p, span_of(&first)), 0);
    if (!e)
        return NULL;
    e->table = table;
    e->name = name;
    return e;
}

static void fail_expected_expr(parser_t *p)
{
    const tsr_token_t *t = peek(p, 0);
    if (t->kind == TSR_TOK_SELECT) {
        fail_at(p, t, "subqueries are not supported");
        return;
    }
    fail_found(p, t, "expected an expression");
    if (p->prev.kind == TSR_TOK_COMMA &&
        (t->kind == TSR_TOK_FROM || t->kind == TSR_TOK_EOF || t->kind == TSR_TOK_RPAREN ||
         t->kind == TSR_TOK_WHERE || t->kind == TSR_TOK_GROUP || t->kind == TSR_TOK_ORDER ||
         t->kind == TSR_TOK_HAVING || t->kind == TSR_TOK_LIMIT))
        hint(p, "remove the ',' before %s", tsr_lexer_kind_name(t->kind));
    else
        hint_keyword_as_name(p);
}

static tsr_ast_expr_t *parse_primary(parser_t *p)
{
    const tsr_token_t *t = peek(p, 0);
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
        next(p);
        e = new_node(p, kinds[lit.kind], span_of(&lit), 0);
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
        tsr_src_span_t start = span_of(t);
        next(p);
        if (peek_kind(p, 0) == TSR_TOK_SELECT) {
            fail_at(p, peek(p, 0), "subqueries are not supported");
            return NULL;
        }
        e = parse_expr(p);
        if (!e)
            return NULL;
        if (!accept(p, TSR_TOK_RPAREN)) {
            fail_found(p, peek(p, 0), "expected ')'");
            hint(p, "the '(' at line %d, column %d is not closed", start.line, start.column);
            return NULL;
        }
        e->span = span_to_prev(p, start);
        return e;
    }
    default:
        fail_expected_expr(p);
        return NULL;
    }
}

static tsr_ast_expr_t *parse_unary(parser_t *p)
{
    tsr_tok_kind_t k = peek_kind(p, 0);
    if (k != TSR_TOK_MINUS && k != TSR_TOK_PLUS)
        return parse_primary(p);
    tsr_src_span_t start = span_of(peek(p, 0));
    next(p);
    const tsr_token_t *t = peek(p, 0);
    if (k == TSR_TOK_MINUS && (t->kind == TSR_TOK_INT || t->kind == TSR_TOK_DOUBLE)) {
        /* fold: -5 is the literal -5 (and -9223372036854775808 fits) */
        tsr_token_t lit = *t;
        next(p);
        bool as_int = lit.kind == TSR_TOK_INT || lit.int_min_abs;
        tsr_ast_expr_t *e =
            new_node(p, as_int ? TSR_AST_INT : TSR_AST_DOUBLE, span_to_prev(p, start), 0);
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
    if (!enter(p))
        return NULL;
    tsr_ast_expr_t *operand = parse_unary(p);
    leave(p);
    if (!operand)
        return NULL;
    if (k == TSR_TOK_PLUS) {
        operand->span = span_to_prev(p, start);
        return operand;
    }
    tsr_ast_expr_t *e = new_node(p, TSR_AST_UNARY, span_to_prev(p, start), 1);
    if (!e)
        return NULL;
    e->op = TSR_OP_NEG;
    e->args[0] = operand;
    return finish(p, e);
}

static tsr_ast_expr_t *parse_mul(parser_t *p)
{
    tsr_ast_expr_t *l = parse_unary(p);
    while (l) {
        tsr_op_t op;
        switch (peek_kind(p, 0)) {
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
        next(p);
        tsr_ast_expr_t *r = parse_unary(p);
        if (!r)
            return NULL;
        l = new_binary(p, TSR_AST_BINARY, op, l, r);
    }
    return NULL;
}

static tsr_ast_expr_t *parse_add(parser_t *p)
{
    tsr_ast_expr_t *l = parse_mul(p);
    while (l) {
        tsr_op_t op;
        switch (peek_kind(p, 0)) {
        case TSR_TOK_PLUS:
            op = TSR_OP_ADD;
            break;
        case TSR_TOK_MINUS:
            op = TSR_OP_SUB;
            break;
        default:
            return l;
        }
        next(p);
        tsr_ast_expr_t *r = parse_mul(p);
        if (!r)
            return NULL;
        l = new_binary(p, TSR_AST_BINARY, op, l, r);
    }
    return NULL;
}

/* The postfix forms after an operand l at comparison level; la[0] is IN,
 * BETWEEN or LIKE (a NOT before it was consumed and is `negated`). */
static tsr_ast_expr_t *parse_predicate(parser_t *p, tsr_ast_expr_t *l, bool negated)
{
    tsr_tok_kind_t k = peek_kind(p, 0);
    next(p);
    tsr_ast_expr_t *e = NULL;
    if (k == TSR_TOK_IN) {
        if (!expect(p, TSR_TOK_LPAREN, "IN"))
            return NULL;
        if (peek_kind(p, 0) == TSR_TOK_RPAREN) {
            fail_found(p, peek(p, 0), "expected a value in the IN list");
            hint(p, "an IN list holds at least one value");
            return NULL;
        }
        tsr_ast_expr_t **args = NULL;
        size_t n = 0, cap = 0;
        if (!push(p, (void **)&args, &n, &cap, &l, sizeof(l)) ||
            !parse_expr_list(p, &args, &n, &cap, "in the IN list"))
            return NULL;
        e = new_node(p, TSR_AST_IN, span_to_prev(p, l->span), 0);
        if (!e)
            return NULL;
        e->args = args;
        e->nargs = n;
    } else if (k == TSR_TOK_BETWEEN) {
        /* bounds are at + - level, so the AND here is BETWEEN's own */
        tsr_ast_expr_t *lo = parse_add(p);
        if (!lo || !expect(p, TSR_TOK_AND, "the lower bound of BETWEEN"))
            return NULL;
        tsr_ast_expr_t *hi = parse_add(p);
        if (!hi)
            return NULL;
        e = new_node(p, TSR_AST_BETWEEN, span_to_prev(p, l->span), 3);
        if (!e)
            return NULL;
        e->args[0] = l;
        e->args[1] = lo;
        e->args[2] = hi;
    } else {
        tsr_ast_expr_t *pat = parse_add(p);
        if (!pat)
            return NULL;
        e = new_node(p, TSR_AST_LIKE, span_to_prev(p, l->span), 2);
        if (!e)
            return NULL;
        e->args[0] = l;
        e->args[1] = pat;
    }
    e->negated = negated;
    return finish(p, e);
}

static tsr_ast_expr_t *parse_cmp(parser_t *p)
{
    tsr_ast_expr_t *l = parse_add(p);
    while (l) {
        tsr_op_t op = TSR_OP_NONE;
        tsr_tok_kind_t k = peek_kind(p, 0);
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
            next(p);
            bool neg = accept(p, TSR_TOK_NOT);
            if (!expect(p, TSR_TOK_NULL, neg ? "IS NOT" : "IS"))
                return NULL;
            tsr_ast_expr_t *e = new_node(p, TSR_AST_IS_NULL, span_to_prev(p, l->span), 1);
            if (!e)
                return NULL;
            e->negated = neg;
            e->args[0] = l;
            l = finish(p, e);
            continue;
        }
        case TSR_TOK_IN:
        case TSR_TOK_BETWEEN:
        case TSR_TOK_LIKE:
            l = parse_predicate(p, l, false);
            continue;
        case TSR_TOK_NOT: {
            tsr_tok_kind_t k1 = peek_kind(p, 1);
            if (k1 != TSR_TOK_IN && k1 != TSR_TOK_BETWEEN && k1 != TSR_TOK_LIKE) {
                fail_found(p, peek(p, 1), "expected IN, BETWEEN or LIKE after NOT");
                return NULL;
            }
            next(p);
            l = parse_predicate(p, l, true);
            continue;
        }
        default:
            return l;
        }
        next(p);
        tsr_ast_expr_t *r = parse_add(p);
        if (!r)
            return NULL;
        l = new_binary(p, TSR_AST_BINARY, op, l, r);
    }
    return NULL;
}

static tsr_ast_expr_t *parse_not(parser_t *p)
{
    if (peek_kind(p, 0) != TSR_TOK_NOT)
        return parse_cmp(p);
    tsr_src_span_t start = span_of(peek(p, 0));
    next(p);
    if (!enter(p))
        return NULL;
    tsr_ast_expr_t *operand = parse_not(p);
    leave(p);
    if (!operand)
        return NULL;
    tsr_ast_expr_t *e = new_node(p, TSR_AST_UNARY, span_to_prev(p, start), 1);
    if (!e)
        return NULL;
    e->op = TSR_OP_NOT;
    e->args[0] = operand;
    return finish(p, e);
}

static tsr_ast_expr_t *parse_and(parser_t *p)
{
    tsr_ast_expr_t *l = parse_not(p);
    while (l && accept(p, TSR_TOK_AND)) {
        tsr_ast_expr_t *r = parse_not(p);
        if (!r)
            return NULL;
        l = new_binary(p, TSR_AST_BINARY, TSR_OP_AND, l, r);
    }
    return l;
}

static tsr_ast_expr_t *parse_or(parser_t *p)
{
    tsr_ast_expr_t *l = parse_and(p);
    while (l && accept(p, TSR_TOK_OR)) {
        tsr_ast_expr_t *r = parse_and(p);
        if (!r)
            return NULL;
        l = new_binary(p, TSR_AST_BINARY, TSR_OP_OR, l, r);
    }
    return l;
}

/* ---- statement ----------------------------------------------------------------------- */

/* A name after AS (required) or an implicit alias (optional): *out stays
 * NULL when there is none. */
static bool parse_alias(parser_t *p, char **out)
{
    *out = NULL;
    if (accept(p, TSR_TOK_AS)) {
        const tsr_token_t *t = peek(p, 0);
        if (!is_name(t->kind)) {
            fail_found(p, t, "expected a name after AS");
            hint_keyword_as_name(p);
            return false;
        }
        *out = t->text;
        next(p);
        return true;
    }
    const tsr_token_t *t = peek(p, 0);
    if (!is_name(t->kind))
        return true;
    const char *unsupported = unsupported_word(t);
    if (unsupported) {
        fail_unsupported(p, t, unsupported);
        return false;
    }
    *out = t->text;
    p->alias = *t;
    next(p);
    return true;
}

static bool parse_table_ref(parser_t *p, tsr_ast_table_ref_t *ref, const char *after)
{
    const tsr_token_t *t = peek(p, 0);
    if (!is_name(t->kind)) {
        fail_found(p, t, "expected a table name after %s", after);
        if (t->kind == TSR_TOK_LPAREN)
            hint(p, "subqueries are not supported");
        else
            hint_keyword_as_name(p);
        return false;
    }
    ref->table = t->text;
    ref->span = span_of(t);
    next(p);
    return parse_alias(p, &ref->alias);
}

static bool parse_select_item(parser_t *p, tsr_ast_select_item_t *item)
{
    const tsr_token_t *t = peek(p, 0);
    tsr_ast_expr_t *e;
    if (t->kind == TSR_TOK_STAR ||
        (is_name(t->kind) && peek_kind(p, 1) == TSR_TOK_DOT && peek_kind(p, 2) == TSR_TOK_STAR)) {
        tsr_src_span_t start = span_of(t);
        char *table = t->kind == TSR_TOK_STAR ? NULL : t->text;
        if (table) {
            next(p);
            next(p);
        }
        next(p);
        e = new_node(p, TSR_AST_STAR, span_to_prev(p, start), 0);
        if (!e)
            return false;
        e->table = table;
        if (peek_kind(p, 0) == TSR_TOK_AS || is_name(peek_kind(p, 0))) {
            if (unsupported_word(peek(p, 0))) {
                fail_unsupported(p, peek(p, 0), unsupported_word(peek(p, 0)));
                return false;
            }
            fail_at(p, peek(p, 0), "a * in the select list cannot have an alias");
            return false;
        }
        item->expr = e;
        item->alias = NULL;
        return true;
    }
    e = parse_expr(p);
    if (!e)
        return false;
    item->expr = e;
    return parse_alias(p, &item->alias);
}

/* LIMIT/OFFSET operand: a non-negative integer literal. */
static bool parse_count(parser_t *p, const char *after, int64_t *out)
{
    const tsr_token_t *t = peek(p, 0);
    if (t->kind != TSR_TOK_INT) {
        fail_found(p, t, "expected a non-negative integer after %s", after);
        return false;
    }
    *out = t->ival;
    next(p);
    return true;
}

static bool parse_expr_items(parser_t *p, tsr_ast_expr_t ***out, size_t *n)
{
    size_t cap = 0;
    do {
        tsr_ast_expr_t *e = parse_expr(p);
        if (!e || !push(p, (void **)out, n, &cap, &e, sizeof(e)))
            return false;
    } while (accept(p, TSR_TOK_COMMA));
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
            hint(p, "did you mean %s? '%s' was read as an alias", clauses[i], word);
            return;
        }
    }
}

static void fail_after_end(parser_t *p, bool after_semicolon)
{
    const tsr_token_t *t = peek(p, 0);
    if (after_semicolon) {
        fail_at(p, t, "unexpected input after end of statement");
        hint(p, "run one statement at a time");
        return;
    }
    const char *unsupported = unsupported_word(t);
    if (unsupported) {
        fail_unsupported(p, t, unsupported);
        return;
    }
    char what[160];
    describe(p, t, what, sizeof(what));
    fail_at(p, t, "unexpected %s after end of statement", what);
    switch (t->kind) {
    case TSR_TOK_OFFSET:
        hint(p, "OFFSET goes after LIMIT: LIMIT n OFFSET m");
        break;
    case TSR_TOK_FROM:
    case TSR_TOK_JOIN:
    case TSR_TOK_INNER:
    case TSR_TOK_WHERE:
    case TSR_TOK_GROUP:
    case TSR_TOK_HAVING:
    case TSR_TOK_ORDER:
    case TSR_TOK_LIMIT:
        hint(p, "clauses go in this order, each at most once: FROM, JOIN, WHERE, GROUP BY, "
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
        nomem(p);
        return NULL;
    }
    s->limit = -1;
    const tsr_token_t *t = peek(p, 0);
    if (t->kind != TSR_TOK_SELECT) {
        static const char *const others[] = {"INSERT", "UPDATE", "DELETE",  "CREATE", "DROP",
                                             "ALTER",  "WITH",   "EXPLAIN", "VALUES"};
        fail_found(p, t, "expected SELECT");
        for (size_t i = 0; t->kind == TSR_TOK_IDENT && i < sizeof(others) / sizeof(others[0]); i++)
            if (strcasecmp(t->text, others[i]) == 0)
                hint(p, "only SELECT statements are supported");
        return NULL;
    }
    next(p);
    s->distinct = accept(p, TSR_TOK_DISTINCT);

    size_t cap = 0;
    do {
        tsr_ast_select_item_t item = {0};
        if (!parse_select_item(p, &item) ||
            !push(p, (void **)&s->items, &s->nitems, &cap, &item, sizeof(item)))
            return NULL;
    } while (accept(p, TSR_TOK_COMMA));

    if (accept(p, TSR_TOK_FROM)) {
        s->has_from = true;
        if (!parse_table_ref(p, &s->from, "FROM"))
            return NULL;
        cap = 0;
        for (;;) {
            tsr_ast_join_t join = {0};
            if (accept(p, TSR_TOK_INNER)) {
                if (!expect(p, TSR_TOK_JOIN, "INNER"))
                    return NULL;
            } else if (!accept(p, TSR_TOK_JOIN)) {
                break;
            }
            if (!parse_table_ref(p, &join.table, "JOIN"))
                return NULL;
            if (!expect(p, TSR_TOK_ON, "the joined table"))
                return NULL;
            join.on = parse_expr(p);
            if (!join.on || !push(p, (void **)&s->joins, &s->njoins, &cap, &join, sizeof(join)))
                return NULL;
        }
    }
    if (accept(p, TSR_TOK_WHERE) && !(s->where = parse_expr(p)))
        return NULL;
    if (accept(p, TSR_TOK_GROUP)) {
        if (!expect(p, TSR_TOK_BY, "GROUP") || !parse_expr_items(p, &s->group_by, &s->ngroup_by))
            return NULL;
    }
    if (accept(p, TSR_TOK_HAVING) && !(s->having = parse_expr(p)))
        return NULL;
    if (accept(p, TSR_TOK_ORDER)) {
        if (!expect(p, TSR_TOK_BY, "ORDER"))
            return NULL;
        cap = 0;
        do {
            tsr_ast_order_item_t item = {0};
            if (!(item.expr = parse_expr(p)))
                return NULL;
            if (!accept(p, TSR_TOK_ASC))
                item.desc = accept(p, TSR_TOK_DESC);
            if (!push(p, (void **)&s->order_by, &s->norder_by, &cap, &item, sizeof(item)))
                return NULL;
        } while (accept(p, TSR_TOK_COMMA));
    }
    if (accept(p, TSR_TOK_LIMIT)) {
        if (!parse_count(p, "LIMIT", &s->limit))
            return NULL;
        if (accept(p, TSR_TOK_OFFSET) && !parse_count(p, "OFFSET", &s->offset))
            return NULL;
    }
    bool semi = accept(p, TSR_TOK_SEMI);
    if (peek_kind(p, 0) != TSR_TOK_EOF) {
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
