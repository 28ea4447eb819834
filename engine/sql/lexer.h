/*
 * lexer.h - SQL tokens (private to engine/sql: the parser and its tests).
 *
 * The lexer turns SQL text into tokens one at a time (tsr_lexer_next); the
 * parser keeps a few tokens of lookahead. Every token records its source
 * bytes [offset, offset+len) and the 1-based line and column (in bytes) of
 * its first byte, so every later error can point at the text.
 *
 * Token rules (docs/sql.md has the user's view):
 *   keywords     case-insensitive, the TSR_SQL_KEYWORDS list below
 *   identifier   [A-Za-z_][A-Za-z0-9_]* (not a keyword; text as written)
 *                or "quoted" with "" for a quote (text unescaped, never empty)
 *   integer      decimal digits; one that overflows int64 becomes a DOUBLE
 *                (like SQLite), except that 9223372036854775808 sets
 *                int_min_abs so the parser can fold -9223372036854775808
 *   double       1.5  .5  1.  1e10  1.5E-3 (finite; out of range is an error)
 *   string       'text' with '' for a quote (text unescaped, may hold NULs)
 *   punctuation  + - * / % = <> != < <= > >= ( ) , . ;
 *   skipped      whitespace, -- comments to end of line, block comments
 * Anything else is a syntax error at its first byte. Lines end at '\n'.
 *
 * The end-of-input token sits just past the last token (not past trailing
 * whitespace or comments), which is where a caret for "found end of input"
 * is most useful.
 *
 * Errors do not stop the lexer from being a plain value: a failed
 * tsr_lexer_next returns the error (TSR_ERR_SYNTAX, or TSR_ERR_NOMEM when the
 * arena is exhausted) and leaves the token of kind TSR_TOK_ERROR; callers
 * must not call it again after an error.
 */
#ifndef TSR_SQL_LEXER_H
#define TSR_SQL_LEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"

/* clang-format off */
/* X(name): keyword token TSR_TOK_<name>, spelled "<name>" in any case. */
#define TSR_SQL_KEYWORDS(X)                                                                 \
    X(SELECT) X(DISTINCT) X(FROM) X(WHERE) X(GROUP) X(BY) X(HAVING) X(ORDER) X(ASC)         \
    X(DESC) X(LIMIT) X(OFFSET) X(AS) X(JOIN) X(INNER) X(ON) X(AND) X(OR) X(NOT) X(IS)       \
    X(NULL) X(IN) X(BETWEEN) X(LIKE) X(TRUE) X(FALSE)

typedef enum tsr_tok_kind {
    TSR_TOK_EOF = 0,
    TSR_TOK_ERROR,  /* a lexical error (see tsr_lexer_next) */
    TSR_TOK_IDENT,  /* bare identifier; text as written */
    TSR_TOK_QIDENT, /* "quoted" identifier; text unescaped */
    TSR_TOK_INT,    /* ival */
    TSR_TOK_DOUBLE, /* dval */
    TSR_TOK_STRING, /* text unescaped, text_len bytes */
#define TSR_TOK_KW_ENUM_(name) TSR_TOK_##name,
    TSR_SQL_KEYWORDS(TSR_TOK_KW_ENUM_)
#undef TSR_TOK_KW_ENUM_
    TSR_TOK_PLUS,    /* + */
    TSR_TOK_MINUS,   /* - */
    TSR_TOK_STAR,    /* * */
    TSR_TOK_SLASH,   /* / */
    TSR_TOK_PERCENT, /* % */
    TSR_TOK_EQ,      /* = */
    TSR_TOK_NE,      /* <> or != */
    TSR_TOK_LT,      /* < */
    TSR_TOK_LE,      /* <= */
    TSR_TOK_GT,      /* > */
    TSR_TOK_GE,      /* >= */
    TSR_TOK_LPAREN,  /* ( */
    TSR_TOK_RPAREN,  /* ) */
    TSR_TOK_COMMA,   /* , */
    TSR_TOK_DOT,     /* . */
    TSR_TOK_SEMI,    /* ; */
    TSR_TOK_COUNT_   /* number of kinds, not a kind */
} tsr_tok_kind_t;
/* clang-format on */

typedef struct tsr_token {
    tsr_tok_kind_t kind;
    size_t offset;    /* first source byte */
    size_t len;       /* source bytes (0 for EOF) */
    int line;         /* 1-based */
    int column;       /* 1-based, in bytes */
    int64_t ival;     /* INT */
    double dval;      /* DOUBLE */
    bool int_min_abs; /* DOUBLE that was written as 9223372036854775808 */
    char *text;       /* IDENT, QIDENT, STRING: NUL-terminated, in the arena */
    size_t text_len;  /* bytes of text without the terminator */
} tsr_token_t;

typedef struct tsr_lexer {
    tsr_arena_t *arena; /* where token texts go */
    const char *src;    /* the SQL text (not NUL-terminated necessarily) */
    size_t len;         /* bytes of src */
    size_t pos;         /* next byte to look at */
    int line;           /* line of src[pos] */
    size_t line_start;  /* offset of the first byte of that line */
    size_t end_off;     /* just past the last token: where EOF is reported */
    int end_line;
    int end_column;
} tsr_lexer_t;

void tsr_lexer_init(tsr_lexer_t *lx, tsr_arena_t *arena, const char *sql, size_t len);

/* Reads the next token into *tok (TSR_TOK_EOF at the end, repeatedly).
 * On error returns TSR_ERR_SYNTAX or TSR_ERR_NOMEM recorded in err at the
 * offending position, with tok->kind TSR_TOK_ERROR. */
tsr_status_t tsr_lexer_next(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err);

/* How a kind reads in "expected X" messages: "SELECT", "')'", "an identifier",
 * "end of input". Never NULL. */
const char *tsr_lexer_kind_name(tsr_tok_kind_t kind);

/* True for the keyword kinds. */
bool tsr_lexer_is_keyword(tsr_tok_kind_t kind);

#endif /* TSR_SQL_LEXER_H */
