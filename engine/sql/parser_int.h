/*
 * parser_int.h - what the SQL parser's files share (private to engine/sql/):
 * the parser state and its helpers. parser_base.c: tokens, errors, nodes;
 * parser_expr.c: expressions; parser.c: the SELECT statement and
 * tsr_sql_parse. The rules (precedence, spans, bounds): parser.c.
 */
#ifndef TSR_SQL_PARSER_INT_H
#define TSR_SQL_PARSER_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

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

/* ---- tokens (parser_base.c) ---- */
/* The k-th token ahead (k < LOOKAHEAD); la[0] is the current one. */
const tsr_token_t *sqlp_peek(parser_t *p, size_t k);
tsr_tok_kind_t sqlp_peek_kind(parser_t *p, size_t k);
/* Consumes the current token (it becomes p->prev). */
void sqlp_next(parser_t *p);
/* Consumes a token of kind when it is the current one. */
bool sqlp_accept(parser_t *p, tsr_tok_kind_t kind);
bool sqlp_is_name(tsr_tok_kind_t kind);
/* How a token reads in "found X". */
void sqlp_describe(const parser_t *p, const tsr_token_t *tok, char *buf, size_t cap);

/* ---- errors (parser_base.c): the first one is kept, later ones ignored ---- */
void sqlp_fail_v(parser_t *p, const tsr_token_t *tok, bool found, const char *fmt, va_list ap);
/* "<fmt>, found <tok>" at tok. */
void sqlp_fail_found(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "<fmt>" at tok. */
void sqlp_fail_at(parser_t *p, const tsr_token_t *tok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A hint for the error this parse recorded. */
void sqlp_hint(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sqlp_nomem(parser_t *p);
/* Consumes a token of kind, or fails with "expected K[ after what], found X". */
bool sqlp_expect(parser_t *p, tsr_tok_kind_t kind, const char *after);
void sqlp_hint_keyword_as_name(parser_t *p);
/* The message for a word that starts a clause this dialect lacks, or NULL. */
const char *sqlp_unsupported_word(const tsr_token_t *t);
void sqlp_fail_unsupported(parser_t *p, const tsr_token_t *t, const char *what);

/* ---- nodes (parser_base.c) ---- */
tsr_src_span_t sqlp_span_of(const tsr_token_t *t);
tsr_src_span_t sqlp_span_to_prev(const parser_t *p, tsr_src_span_t start);
tsr_ast_expr_t *sqlp_new_node(parser_t *p, tsr_ast_kind_t kind, tsr_src_span_t span, size_t nargs);
int sqlp_height_of(const tsr_ast_expr_t *e);
/* Sets e's height from its args; NULL (failed) when the tree is too tall. */
tsr_ast_expr_t *sqlp_finish(parser_t *p, tsr_ast_expr_t *e);
tsr_ast_expr_t *sqlp_new_binary(parser_t *p, tsr_ast_kind_t kind, tsr_op_t op, tsr_ast_expr_t *l,
                                tsr_ast_expr_t *r);
/* Appends elem to an arena array that doubles. */
bool sqlp_push(parser_t *p, void **data, size_t *n, size_t *cap, const void *elem, size_t size);
/* Recursion guard: enter before a nested parse, leave after. */
bool sqlp_enter(parser_t *p);
void sqlp_leave(parser_t *p);

/* ---- expressions (parser_expr.c) ---- */
/* One expression (the lowest precedence level, OR). */
tsr_ast_expr_t *sqlp_parse_expr(parser_t *p);

#endif /* TSR_SQL_PARSER_INT_H */
