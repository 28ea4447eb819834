/*
 * lexer.c - SQL text to tokens.
 *
 * A hand-written scanner over a byte buffer (not necessarily NUL-terminated:
 * every read checks pos < len). It never allocates except the texts of
 * identifiers and strings, which go to the caller's arena, so a failed parse
 * needs no cleanup beyond releasing the arena.
 *
 * Invariants: pos <= len; line/line_start describe src[pos]; end_* describe
 * the byte just past the last token returned, which is where end of input is
 * reported (see lexer.h).
 *
 * Numbers are converted with strtod on a copy whose '.' is replaced by the
 * current locale's decimal point, so a host program that called setlocale()
 * still reads 1.5 as one and a half.
 */
#include "sql/lexer.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct keyword {
    const char *text;
    size_t len;
    tsr_tok_kind_t kind;
} keyword_t;

static const keyword_t KEYWORDS[] = {
#define KW_ENTRY_(name) {#name, sizeof(#name) - 1, TSR_TOK_##name},
    TSR_SQL_KEYWORDS(KW_ENTRY_)
#undef KW_ENTRY_
};

void tsr_lexer_init(tsr_lexer_t *lx, tsr_arena_t *arena, const char *sql, size_t len)
{
    lx->arena = arena;
    lx->src = sql;
    lx->len = sql ? len : 0;
    lx->pos = 0;
    lx->line = 1;
    lx->line_start = 0;
    lx->end_off = 0;
    lx->end_line = 1;
    lx->end_column = 1;
}

bool tsr_lexer_is_keyword(tsr_tok_kind_t kind)
{
    return kind >= TSR_TOK_SELECT && kind <= TSR_TOK_FALSE;
}

const char *tsr_lexer_kind_name(tsr_tok_kind_t kind)
{
    switch (kind) {
    case TSR_TOK_EOF:
        return "end of input";
    case TSR_TOK_ERROR:
        return "an invalid token";
    case TSR_TOK_IDENT:
    case TSR_TOK_QIDENT:
        return "a name";
    case TSR_TOK_INT:
        return "an integer";
    case TSR_TOK_DOUBLE:
        return "a number";
    case TSR_TOK_STRING:
        return "a string";
#define KW_NAME_(name)                                                                             \
    case TSR_TOK_##name:                                                                           \
        return #name;
        TSR_SQL_KEYWORDS(KW_NAME_)
#undef KW_NAME_
    case TSR_TOK_PLUS:
        return "'+'";
    case TSR_TOK_MINUS:
        return "'-'";
    case TSR_TOK_STAR:
        return "'*'";
    case TSR_TOK_SLASH:
        return "'/'";
    case TSR_TOK_PERCENT:
        return "'%'";
    case TSR_TOK_EQ:
        return "'='";
    case TSR_TOK_NE:
        return "'<>'";
    case TSR_TOK_LT:
        return "'<'";
    case TSR_TOK_LE:
        return "'<='";
    case TSR_TOK_GT:
        return "'>'";
    case TSR_TOK_GE:
        return "'>='";
    case TSR_TOK_LPAREN:
        return "'('";
    case TSR_TOK_RPAREN:
        return "')'";
    case TSR_TOK_COMMA:
        return "','";
    case TSR_TOK_DOT:
        return "'.'";
    case TSR_TOK_SEMI:
        return "';'";
    case TSR_TOK_COUNT_:
        break;
    }
    return "a token";
}

/* ---- position helpers ------------------------------------------------------ */

static int clamp_int(size_t v)
{
    return v > (size_t)INT_MAX ? INT_MAX : (int)v;
}

static int column_of(const tsr_lexer_t *lx, size_t pos)
{
    return clamp_int(pos - lx->line_start + 1);
}

/* Moves past src[pos], keeping line/line_start true across newlines. */
static void advance(tsr_lexer_t *lx)
{
    if (lx->src[lx->pos] == '\n') {
        if (lx->line < INT_MAX)
            lx->line++;
        lx->line_start = lx->pos + 1;
    }
    lx->pos++;
}

static int peek_at(const tsr_lexer_t *lx, size_t ahead)
{
    size_t i = lx->pos + ahead;
    return i < lx->len ? (unsigned char)lx->src[i] : -1;
}

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(int c)
{
    return is_ident_start(c) || is_digit(c);
}

static tsr_status_t lex_error(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err,
                              tsr_status_t status, const char *msg)
{
    tok->kind = TSR_TOK_ERROR;
    return tsr_error_set_at(err, status, NULL, tok->line, tok->column, "%s", msg);
}

static tsr_status_t lex_nomem(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err)
{
    return lex_error(lx, tok, err, TSR_ERR_NOMEM, "out of memory while reading SQL text");
}

/* Skips whitespace and comments. An unterminated block comment is an error
 * reported at its opening slash. */
static tsr_status_t skip_space(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err)
{
    while (lx->pos < lx->len) {
        int c = peek_at(lx, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            advance(lx);
        } else if (c == '-' && peek_at(lx, 1) == '-') {
            while (lx->pos < lx->len && lx->src[lx->pos] != '\n')
                advance(lx);
        } else if (c == '/' && peek_at(lx, 1) == '*') {
            tok->line = lx->line;
            tok->column = column_of(lx, lx->pos);
            tok->offset = lx->pos;
            advance(lx);
            advance(lx);
            for (;;) {
                if (lx->pos >= lx->len) {
                    tsr_status_t rc =
                        lex_error(lx, tok, err, TSR_ERR_SYNTAX, "unterminated /* comment");
                    tsr_error_hint(err, "close the comment with */");
                    return rc;
                }
                if (peek_at(lx, 0) == '*' && peek_at(lx, 1) == '/') {
                    advance(lx);
                    advance(lx);
                    break;
                }
                advance(lx);
            }
        } else {
            break;
        }
    }
    return TSR_OK;
}

/* ---- tokens with text -------------------------------------------------------- */

static tsr_status_t lex_ident(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err)
{
    size_t start = lx->pos;
    while (lx->pos < lx->len && is_ident_char(peek_at(lx, 0)))
        lx->pos++; /* no newlines inside: plain increment is enough */
    size_t n = lx->pos - start;
    for (size_t k = 0; k < sizeof(KEYWORDS) / sizeof(KEYWORDS[0]); k++) {
        if (KEYWORDS[k].len != n)
            continue;
        size_t i = 0;
        while (i < n && (lx->src[start + i] | 0x20) == (KEYWORDS[k].text[i] | 0x20))
            i++;
        if (i == n) {
            tok->kind = KEYWORDS[k].kind;
            return TSR_OK;
        }
    }
    tok->kind = TSR_TOK_IDENT;
    tok->text = tsr_arena_strndup(lx->arena, lx->src + start, n);
    if (!tok->text)
        return lex_nomem(lx, tok, err);
    tok->text_len = n;
    return TSR_OK;
}

/* 'string' or "identifier": q is the quote byte, doubled inside to escape it.
 * The token's position is the opening quote, also for "unterminated". */
static tsr_status_t lex_quoted(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err, char q)
{
    size_t start = lx->pos;
    size_t nquotes = 0; /* escaped quotes inside: each drops one byte */
    bool has_nul = false;
    advance(lx); /* opening quote */
    for (;;) {
        if (lx->pos >= lx->len) {
            tsr_status_t rc;
            if (q == '\'') {
                rc = lex_error(lx, tok, err, TSR_ERR_SYNTAX, "unterminated string literal");
                tsr_error_hint(err, "close the string with ' (write '' for a quote inside it)");
            } else {
                rc = lex_error(lx, tok, err, TSR_ERR_SYNTAX, "unterminated quoted identifier");
                tsr_error_hint(err, "close the name with \" (write \"\" for a quote inside it)");
            }
            return rc;
        }
        char c = lx->src[lx->pos];
        if (c == q) {
            if (peek_at(lx, 1) == (unsigned char)q) {
                nquotes++;
                advance(lx);
                advance(lx);
                continue;
            }
            advance(lx);
            break;
        }
        if (c == '\0')
            has_nul = true;
        advance(lx);
    }
    size_t body = lx->pos - start - 2;
    size_t n = body - nquotes;
    if (q == '"' && n == 0)
        return lex_error(lx, tok, err, TSR_ERR_SYNTAX, "zero-length quoted identifier");
    if (q == '"' && has_nul)
        return lex_error(lx, tok, err, TSR_ERR_SYNTAX, "quoted identifier contains a NUL byte");
    char *text = tsr_arena_alloc(lx->arena, n + 1);
    if (!text)
        return lex_nomem(lx, tok, err);
    const char *s = lx->src + start + 1;
    size_t j = 0;
    for (size_t i = 0; i < body; i++) {
        text[j++] = s[i];
        if (s[i] == q)
            i++; /* the second quote of an escaped pair */
    }
    text[j] = '\0';
    tok->kind = q == '\'' ? TSR_TOK_STRING : TSR_TOK_QIDENT;
    tok->text = text;
    tok->text_len = n;
    return TSR_OK;
}

/* ---- numbers ------------------------------------------------------------------ */

/* strtod of s[0..n) (digits, '.', e/E, sign) independent of the C locale. */
static tsr_status_t number_to_double(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err,
                                     const char *s, size_t n, double *out)
{
    char small[64];
    char *buf = small;
    if (n + 1 > sizeof(small)) {
        buf = tsr_arena_alloc(lx->arena, n + 1);
        if (!buf)
            return lex_nomem(lx, tok, err);
    }
    const struct lconv *lc = localeconv();
    char point = lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point[0] : '.';
    for (size_t i = 0; i < n; i++)
        buf[i] = s[i] == '.' ? point : s[i];
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return TSR_OK;
}

static tsr_status_t lex_number(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err)
{
    size_t start = lx->pos;
    bool is_double = false;
    bool overflow = false;
    uint64_t v = 0;
    while (lx->pos < lx->len && is_digit(peek_at(lx, 0))) {
        unsigned d = (unsigned)(lx->src[lx->pos] - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
        lx->pos++;
    }
    bool malformed = false;
    if (peek_at(lx, 0) == '.') {
        is_double = true;
        lx->pos++;
        while (lx->pos < lx->len && is_digit(peek_at(lx, 0)))
            lx->pos++;
    }
    if (peek_at(lx, 0) == 'e' || peek_at(lx, 0) == 'E') {
        is_double = true;
        lx->pos++;
        if (peek_at(lx, 0) == '+' || peek_at(lx, 0) == '-')
            lx->pos++;
        if (!is_digit(peek_at(lx, 0)))
            malformed = true;
        while (lx->pos < lx->len && is_digit(peek_at(lx, 0)))
            lx->pos++;
    }
    /* 123abc or 1.5x: reject rather than guess "123 AS abc". */
    if (is_ident_char(peek_at(lx, 0)))
        malformed = true;
    if (malformed) {
        while (lx->pos < lx->len && (is_ident_char(peek_at(lx, 0))))
            lx->pos++;
        size_t n = lx->pos - start;
        tok->kind = TSR_TOK_ERROR;
        return tsr_error_set_at(err, TSR_ERR_SYNTAX, NULL, tok->line, tok->column,
                                "malformed number '%.*s'", (int)(n > 40 ? 40 : n), lx->src + start);
    }
    size_t n = lx->pos - start;
    if (!is_double && !overflow && v <= (uint64_t)INT64_MAX) {
        tok->kind = TSR_TOK_INT;
        tok->ival = (int64_t)v;
        return TSR_OK;
    }
    /* An integer too big for int64 reads as a DOUBLE, as in SQLite. */
    double d = 0;
    tsr_status_t rc = number_to_double(lx, tok, err, lx->src + start, n, &d);
    if (rc != TSR_OK)
        return rc;
    if (!isfinite(d)) {
        tok->kind = TSR_TOK_ERROR;
        return tsr_error_set_at(err, TSR_ERR_SYNTAX, NULL, tok->line, tok->column,
                                "number out of range '%.*s'", (int)(n > 40 ? 40 : n),
                                lx->src + start);
    }
    tok->kind = TSR_TOK_DOUBLE;
    tok->dval = d;
    tok->int_min_abs = !is_double && !overflow && v == (uint64_t)INT64_MAX + 1;
    return TSR_OK;
}

/* ---- the rest ----------------------------------------------------------------- */

static tsr_status_t lex_bad_char(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err)
{
    unsigned char c = (unsigned char)lx->src[lx->pos];
    tok->kind = TSR_TOK_ERROR;
    tsr_status_t rc;
    if (c > 0x20 && c < 0x7f)
        rc = tsr_error_set_at(err, TSR_ERR_SYNTAX, NULL, tok->line, tok->column,
                              "unexpected character '%c'", c);
    else
        rc = tsr_error_set_at(err, TSR_ERR_SYNTAX, NULL, tok->line, tok->column,
                              "unexpected character (byte 0x%02X)", c);
    /* Hints for what people paste from elsewhere. */
    if (c == '`')
        tsr_error_hint(err, "quote names with double quotes: \"name\"");
    else if (c == '!')
        tsr_error_hint(err, "write <> or != for 'not equal' and NOT for negation");
    else if (c == '|')
        tsr_error_hint(err, "string concatenation (||) is not supported");
    else if (c == 0xE2 && peek_at(lx, 1) == 0x80 &&
             (peek_at(lx, 2) == 0x98 || peek_at(lx, 2) == 0x99 || peek_at(lx, 2) == 0x9C ||
              peek_at(lx, 2) == 0x9D))
        tsr_error_hint(err, "that is a typographic quote: write ' around strings and \" around "
                            "names");
    else if (c >= 0x80)
        tsr_error_hint(err, "names outside double quotes are ASCII letters, digits and _");
    return rc;
}

tsr_status_t tsr_lexer_next(tsr_lexer_t *lx, tsr_token_t *tok, tsr_error_t *err)
{
    memset(tok, 0, sizeof(*tok));
    tsr_status_t rc = skip_space(lx, tok, err);
    if (rc != TSR_OK)
        return rc;
    if (lx->pos >= lx->len) {
        tok->kind = TSR_TOK_EOF;
        tok->offset = lx->end_off;
        tok->line = lx->end_line;
        tok->column = lx->end_column;
        return TSR_OK;
    }
    tok->offset = lx->pos;
    tok->line = lx->line;
    tok->column = column_of(lx, lx->pos);
    int c = peek_at(lx, 0);
    int c1 = peek_at(lx, 1);
    if (is_ident_start(c)) {
        rc = lex_ident(lx, tok, err);
    } else if (is_digit(c) || (c == '.' && is_digit(c1))) {
        rc = lex_number(lx, tok, err);
    } else if (c == '\'' || c == '"') {
        rc = lex_quoted(lx, tok, err, (char)c);
    } else {
        size_t n = 1;
        switch (c) {
        case '+':
            tok->kind = TSR_TOK_PLUS;
            break;
        case '-':
            tok->kind = TSR_TOK_MINUS;
            break;
        case '*':
            tok->kind = TSR_TOK_STAR;
            break;
        case '/':
            tok->kind = TSR_TOK_SLASH;
            break;
        case '%':
            tok->kind = TSR_TOK_PERCENT;
            break;
        case '=':
            tok->kind = TSR_TOK_EQ;
            break;
        case '(':
            tok->kind = TSR_TOK_LPAREN;
            break;
        case ')':
            tok->kind = TSR_TOK_RPAREN;
            break;
        case ',':
            tok->kind = TSR_TOK_COMMA;
            break;
        case '.':
            tok->kind = TSR_TOK_DOT;
            break;
        case ';':
            tok->kind = TSR_TOK_SEMI;
            break;
        case '<':
            if (c1 == '=') {
                tok->kind = TSR_TOK_LE;
                n = 2;
            } else if (c1 == '>') {
                tok->kind = TSR_TOK_NE;
                n = 2;
            } else {
                tok->kind = TSR_TOK_LT;
            }
            break;
        case '>':
            if (c1 == '=') {
                tok->kind = TSR_TOK_GE;
                n = 2;
            } else {
                tok->kind = TSR_TOK_GT;
            }
            break;
        case '!':
            if (c1 == '=') {
                tok->kind = TSR_TOK_NE;
                n = 2;
                break;
            }
            return lex_bad_char(lx, tok, err);
        default:
            return lex_bad_char(lx, tok, err);
        }
        lx->pos += n; /* punctuation never holds a newline */
    }
    if (rc != TSR_OK)
        return rc;
    tok->len = lx->pos - tok->offset;
    lx->end_off = lx->pos;
    lx->end_line = lx->line;
    lx->end_column = column_of(lx, lx->pos);
    return TSR_OK;
}
