/*
 * parser_base.c - the SQL parser's tokens (lookahead), errors (the first
 * one wins, with hints) and expression nodes (spans, heights, arena
 * arrays, the recursion guard); parser_int.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/parser_int.h"

/* ---- tokens ------------------------------------------------------------------ */

const tsr_token_t *sqlp_peek(parser_t *p, size_t k)
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

tsr_tok_kind_t sqlp_peek_kind(parser_t *p, size_t k)
{
    return sqlp_peek(p, k)->kind;
}

void sqlp_next(parser_t *p)
{
    sqlp_peek(p, 0);
    p->prev = p->la[0];
    memmove(&p->la[0], &p->la[1], (LOOKAHEAD - 1) * sizeof(p->la[0]));
    p->nla--;
}

bool sqlp_accept(parser_t *p, tsr_tok_kind_t kind)
{
    if (sqlp_peek_kind(p, 0) != kind)
        return false;
    sqlp_next(p);
    return true;
}

bool sqlp_is_name(tsr_tok_kind_t kind)
{
    return kind == TSR_TOK_IDENT || kind == TSR_TOK_QIDENT;
}

/* How a token reads in "found X": its source text quoted (control bytes
 * escaped, long text cut), or "end of input". */
void sqlp_describe(const parser_t *p, const tsr_token_t *tok, char *buf, size_t cap)
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

void sqlp_fail_v(parser_t *p, const tsr_token_t *tok, bool found, const char *fmt, va_list ap)
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
        sqlp_describe(p, tok, what, sizeof(what));
        snprintf(msg + n, sizeof(msg) - (size_t)n, ", found %s", what);
    }
    p->own_error = p->err && p->err->status == TSR_OK;
    p->rc = tsr_error_set_at(p->err, TSR_ERR_SYNTAX, NULL, tok->line, tok->column, "%s", msg);
}

/* "<fmt>, found <tok>" at tok. */
void sqlp_fail_found(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlp_fail_v(p, tok, true, fmt, ap);
    va_end(ap);
}

/* "<fmt>" at tok. */
void sqlp_fail_at(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlp_fail_v(p, tok, false, fmt, ap);
    va_end(ap);
}

void sqlp_hint(parser_t *p, const char *fmt, ...)
{
    if (!p->own_error || p->err->status != TSR_ERR_SYNTAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->hint, sizeof(p->err->hint), fmt, ap);
    va_end(ap);
}

void sqlp_nomem(parser_t *p)
{
    if (p->rc != TSR_OK)
        return;
    p->rc = tsr_error_set(p->err, TSR_ERR_NOMEM, "out of memory while parsing SQL");
}

/* Consumes a token of kind, or fails with "expected K[ after what], found X". */
bool sqlp_expect(parser_t *p, tsr_tok_kind_t kind, const char *after)
{
    if (sqlp_accept(p, kind))
        return true;
    if (after)
        sqlp_fail_found(p, sqlp_peek(p, 0), "expected %s after %s", tsr_lexer_kind_name(kind),
                        after);
    else
        sqlp_fail_found(p, sqlp_peek(p, 0), "expected %s", tsr_lexer_kind_name(kind));
    return false;
}

/* After a failure at la[0] where a name or expression was wanted: when the
 * token is a keyword that reads like a name here, say how to use it as one. */
void sqlp_hint_keyword_as_name(parser_t *p)
{
    const tsr_token_t *t = sqlp_peek(p, 0);
    if (!tsr_lexer_is_keyword(t->kind))
        return;
    tsr_tok_kind_t after = sqlp_peek_kind(p, 1);
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
        if (sqlp_is_name(after))
            return;
        break;
    default:
        break;
    }
    sqlp_hint(p, "quote it as \"%.*s\" to use it as a name", (int)t->len, p->lx.src + t->offset);
}

/* Words that are not keywords of this dialect but start clauses it lacks:
 * taking one as an implicit alias would silently change the query's meaning
 * (FROM a LEFT JOIN b would become an inner join of a aliased "left"). */
const char *sqlp_unsupported_word(const tsr_token_t *t)
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

void sqlp_fail_unsupported(parser_t *p, const tsr_token_t *t, const char *what)
{
    sqlp_fail_at(p, t, "%s", what);
    if (strstr(what, "JOIN") || strstr(what, "join"))
        sqlp_hint(p, "only inner joins are supported: [INNER] JOIN t ON condition");
    else if (strncmp(what, "NULLS", 5) == 0)
        sqlp_hint(p, "NULLs sort first in ascending order and last in descending order");
}

/* ---- nodes -------------------------------------------------------------------- */

tsr_src_span_t sqlp_span_of(const tsr_token_t *t)
{
    tsr_src_span_t s = {t->offset, t->len, t->line, t->column};
    return s;
}

/* The span from start's first byte to the end of the last consumed token. */
tsr_src_span_t sqlp_span_to_prev(const parser_t *p, tsr_src_span_t start)
{
    size_t end = p->prev.offset + p->prev.len;
    start.len = end > start.offset ? end - start.offset : 0;
    return start;
}

tsr_ast_expr_t *sqlp_new_node(parser_t *p, tsr_ast_kind_t kind, tsr_src_span_t span, size_t nargs)
{
    pnode_t *n = tsr_arena_alloc(p->arena, sizeof(*n));
    if (!n) {
        sqlp_nomem(p);
        return NULL;
    }
    n->e.kind = kind;
    n->e.span = span;
    n->height = 1;
    if (nargs) {
        n->e.args = tsr_arena_alloc(p->arena, nargs * sizeof(n->e.args[0]));
        if (!n->e.args) {
            sqlp_nomem(p);
            return NULL;
        }
        n->e.nargs = nargs;
    }
    return &n->e;
}

int sqlp_height_of(const tsr_ast_expr_t *e)
{
    return ((const pnode_t *)e)->height;
}

/* Sets e's height from its args; fails when the tree is too tall. */
tsr_ast_expr_t *sqlp_finish(parser_t *p, tsr_ast_expr_t *e)
{
    int h = 0;
    for (size_t i = 0; i < e->nargs; i++)
        if (sqlp_height_of(e->args[i]) > h)
            h = sqlp_height_of(e->args[i]);
    ((pnode_t *)e)->height = h + 1;
    if (h + 1 > MAX_HEIGHT) {
        sqlp_fail_at(p, &p->prev, "expression nested too deeply");
        sqlp_hint(p, "an expression may be at most %d levels deep", MAX_HEIGHT);
        return NULL;
    }
    return e;
}

tsr_ast_expr_t *sqlp_new_binary(parser_t *p, tsr_ast_kind_t kind, tsr_op_t op, tsr_ast_expr_t *l,
                                tsr_ast_expr_t *r)
{
    tsr_ast_expr_t *e = sqlp_new_node(p, kind, sqlp_span_to_prev(p, l->span), 2);
    if (!e)
        return NULL;
    e->op = op;
    e->args[0] = l;
    e->args[1] = r;
    return sqlp_finish(p, e);
}

/* Appends elem to an arena array that doubles; old copies stay in the arena
 * (at most as much again as the final array). */
bool sqlp_push(parser_t *p, void **data, size_t *n, size_t *cap, const void *elem, size_t size)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        if (ncap > SIZE_MAX / size) {
            sqlp_nomem(p);
            return false;
        }
        void *nd = tsr_arena_alloc(p->arena, ncap * size);
        if (!nd) {
            sqlp_nomem(p);
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
bool sqlp_enter(parser_t *p)
{
    if (p->depth >= MAX_NESTING) {
        sqlp_fail_at(p, sqlp_peek(p, 0), "expression nested too deeply");
        sqlp_hint(p, "parentheses, NOT and unary minus may nest at most %d levels", MAX_NESTING);
        return false;
    }
    p->depth++;
    return true;
}

void sqlp_leave(parser_t *p)
{
    p->depth--;
}
