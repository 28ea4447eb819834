/*
 * test_lexer.c - SQL tokens: kinds, values, positions and errors.
 *
 * Hand-picked tricky inputs check each rule; a random test renders random
 * token sequences with random spacing and comments (the model is the list of
 * tokens it rendered, with their positions) and checks the lexer reads back
 * exactly that. Inputs are copied into exact-size heap buffers so ASan
 * catches any read past len (the lexer must not rely on a NUL terminator).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sql/lexer.h"

#define MAX_TOKS 512

typedef struct lexed {
    tsr_arena_t arena;
    char *buf; /* exact-size copy of the input, no terminator */
    tsr_token_t toks[MAX_TOKS];
    size_t n; /* tokens including the final EOF or ERROR */
    tsr_status_t rc;
    tsr_error_t err;
} lexed_t;

static void lex_n(lexed_t *lx, const char *sql, size_t len)
{
    memset(lx, 0, sizeof(*lx));
    tsr_arena_init(&lx->arena, NULL);
    lx->buf = malloc(len ? len : 1);
    assert_non_null(lx->buf);
    memcpy(lx->buf, sql, len);
    tsr_lexer_t l;
    tsr_lexer_init(&l, &lx->arena, lx->buf, len);
    for (;;) {
        assert_true(lx->n < MAX_TOKS);
        tsr_token_t *t = &lx->toks[lx->n++];
        lx->rc = tsr_lexer_next(&l, t, &lx->err);
        if (lx->rc != TSR_OK) {
            assert_int_equal(t->kind, TSR_TOK_ERROR);
            break;
        }
        if (t->kind == TSR_TOK_EOF)
            break;
    }
}

static void lex(lexed_t *lx, const char *sql)
{
    lex_n(lx, sql, strlen(sql));
}

static void lexed_free(lexed_t *lx)
{
    tsr_arena_release(&lx->arena);
    free(lx->buf);
}

static void check_kinds(const char *sql, const tsr_tok_kind_t *kinds, size_t n)
{
    lexed_t lx;
    lex(&lx, sql);
    assert_int_equal(lx.rc, TSR_OK);
    assert_int_equal(lx.n, n + 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(lx.toks[i].kind, kinds[i]);
    assert_int_equal(lx.toks[n].kind, TSR_TOK_EOF);
    lexed_free(&lx);
}

#define KINDS(sql, ...)                                                                            \
    do {                                                                                           \
        const tsr_tok_kind_t k_[] = {__VA_ARGS__};                                                 \
        check_kinds(sql, k_, sizeof(k_) / sizeof(k_[0]));                                          \
    } while (0)

static void test_keywords_case_insensitive(void **state)
{
    (void)state;
    KINDS("select SeLeCt SELECT distinct From where group by having order asc desc limit "
          "offset as join inner on and or not is null in between like true false",
          TSR_TOK_SELECT, TSR_TOK_SELECT, TSR_TOK_SELECT, TSR_TOK_DISTINCT, TSR_TOK_FROM,
          TSR_TOK_WHERE, TSR_TOK_GROUP, TSR_TOK_BY, TSR_TOK_HAVING, TSR_TOK_ORDER, TSR_TOK_ASC,
          TSR_TOK_DESC, TSR_TOK_LIMIT, TSR_TOK_OFFSET, TSR_TOK_AS, TSR_TOK_JOIN, TSR_TOK_INNER,
          TSR_TOK_ON, TSR_TOK_AND, TSR_TOK_OR, TSR_TOK_NOT, TSR_TOK_IS, TSR_TOK_NULL, TSR_TOK_IN,
          TSR_TOK_BETWEEN, TSR_TOK_LIKE, TSR_TOK_TRUE, TSR_TOK_FALSE);
    /* prefixes and extensions of keywords are identifiers */
    KINDS("selects sel _select select_ select1 nul nulls", TSR_TOK_IDENT, TSR_TOK_IDENT,
          TSR_TOK_IDENT, TSR_TOK_IDENT, TSR_TOK_IDENT, TSR_TOK_IDENT, TSR_TOK_IDENT);
    assert_true(tsr_lexer_is_keyword(TSR_TOK_SELECT));
    assert_true(tsr_lexer_is_keyword(TSR_TOK_FALSE));
    assert_false(tsr_lexer_is_keyword(TSR_TOK_IDENT));
    assert_false(tsr_lexer_is_keyword(TSR_TOK_PLUS));
    assert_string_equal(tsr_lexer_kind_name(TSR_TOK_GROUP), "GROUP");
    assert_string_equal(tsr_lexer_kind_name(TSR_TOK_RPAREN), "')'");
    assert_string_equal(tsr_lexer_kind_name(TSR_TOK_EOF), "end of input");
}

static void test_operators(void **state)
{
    (void)state;
    KINDS("+-*/%=<><=>=!=<>(),.;", TSR_TOK_PLUS, TSR_TOK_MINUS, TSR_TOK_STAR, TSR_TOK_SLASH,
          TSR_TOK_PERCENT, TSR_TOK_EQ, TSR_TOK_NE, TSR_TOK_LE, TSR_TOK_GE, TSR_TOK_NE, TSR_TOK_NE,
          TSR_TOK_LPAREN, TSR_TOK_RPAREN, TSR_TOK_COMMA, TSR_TOK_DOT, TSR_TOK_SEMI);
    KINDS("< = > < > <= >=", TSR_TOK_LT, TSR_TOK_EQ, TSR_TOK_GT, TSR_TOK_LT, TSR_TOK_GT, TSR_TOK_LE,
          TSR_TOK_GE);
    /* a-b is three tokens, a--b is a comment, a/ *b is not one */
    KINDS("a-b", TSR_TOK_IDENT, TSR_TOK_MINUS, TSR_TOK_IDENT);
    KINDS("a--b\nc", TSR_TOK_IDENT, TSR_TOK_IDENT);
    KINDS("a/ *b*/", TSR_TOK_IDENT, TSR_TOK_SLASH, TSR_TOK_STAR, TSR_TOK_IDENT, TSR_TOK_STAR,
          TSR_TOK_SLASH);
    KINDS("t.*", TSR_TOK_IDENT, TSR_TOK_DOT, TSR_TOK_STAR);
    KINDS("t.a", TSR_TOK_IDENT, TSR_TOK_DOT, TSR_TOK_IDENT);
}

static void test_identifiers(void **state)
{
    (void)state;
    lexed_t lx;
    lex(&lx, "Abc _x1 \"Mixed Case\" \"a\"\"b\" \"select\" \"\"\"\"");
    assert_int_equal(lx.rc, TSR_OK);
    assert_int_equal(lx.n, 7);
    assert_int_equal(lx.toks[0].kind, TSR_TOK_IDENT);
    assert_string_equal(lx.toks[0].text, "Abc");
    assert_string_equal(lx.toks[1].text, "_x1");
    assert_int_equal(lx.toks[2].kind, TSR_TOK_QIDENT);
    assert_string_equal(lx.toks[2].text, "Mixed Case");
    assert_int_equal(lx.toks[2].len, 12);
    assert_string_equal(lx.toks[3].text, "a\"b");
    assert_int_equal(lx.toks[3].text_len, 3);
    assert_int_equal(lx.toks[4].kind, TSR_TOK_QIDENT); /* quoting makes a keyword a name */
    assert_string_equal(lx.toks[4].text, "select");
    assert_string_equal(lx.toks[5].text, "\"");
    lexed_free(&lx);

    /* UTF-8 inside quotes is fine */
    lex(&lx, "\"caf\xC3\xA9\"");
    assert_int_equal(lx.rc, TSR_OK);
    assert_string_equal(lx.toks[0].text, "caf\xC3\xA9");
    lexed_free(&lx);
}

static void test_strings(void **state)
{
    (void)state;
    lexed_t lx;
    lex(&lx, "'' 'abc' 'it''s' '''' 'a\nb' '--x' '/*y*/'");
    assert_int_equal(lx.rc, TSR_OK);
    assert_int_equal(lx.n, 8);
    const char *want[] = {"", "abc", "it's", "'", "a\nb", "--x", "/*y*/"};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(lx.toks[i].kind, TSR_TOK_STRING);
        assert_string_equal(lx.toks[i].text, want[i]);
        assert_int_equal(lx.toks[i].text_len, strlen(want[i]));
    }
    /* the string after the one holding a newline is on line 2 */
    assert_int_equal(lx.toks[5].line, 2);
    assert_int_equal(lx.toks[5].column, 4);
    lexed_free(&lx);

    /* NUL bytes inside a string are kept (text_len counts them) */
    lex_n(&lx, "'a\0b'", 5);
    assert_int_equal(lx.rc, TSR_OK);
    assert_int_equal(lx.toks[0].text_len, 3);
    assert_memory_equal(lx.toks[0].text, "a\0b", 3);
    lexed_free(&lx);
}

static void test_numbers(void **state)
{
    (void)state;
    lexed_t lx;
    lex(&lx, "0 42 007 9223372036854775807 9223372036854775808 18446744073709551616 "
             "1.5 .5 1. 1e10 1.5E-3 2e+2 0.0 99999999999999999999999");
    assert_int_equal(lx.rc, TSR_OK);
    assert_int_equal(lx.n, 15);
    assert_int_equal(lx.toks[0].kind, TSR_TOK_INT);
    assert_int_equal(lx.toks[0].ival, 0);
    assert_int_equal(lx.toks[1].ival, 42);
    assert_int_equal(lx.toks[2].ival, 7);
    assert_int_equal(lx.toks[3].kind, TSR_TOK_INT);
    assert_true(lx.toks[3].ival == INT64_MAX);
    assert_int_equal(lx.toks[4].kind, TSR_TOK_DOUBLE); /* overflow reads as DOUBLE */
    assert_true(lx.toks[4].dval == 9223372036854775808.0);
    assert_true(lx.toks[4].int_min_abs);
    assert_int_equal(lx.toks[5].kind, TSR_TOK_DOUBLE);
    assert_true(lx.toks[5].dval == 18446744073709551616.0);
    assert_false(lx.toks[5].int_min_abs);
    const double want[] = {1.5, 0.5, 1.0, 1e10, 1.5e-3, 2e2, 0.0, 1e23};
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(lx.toks[6 + i].kind, TSR_TOK_DOUBLE);
        assert_true(lx.toks[6 + i].dval == want[i]);
        assert_false(lx.toks[6 + i].int_min_abs);
    }
    lexed_free(&lx);

    /* 9223372036854775808 with leading zeros or a fraction is not the int64 minimum's magnitude */
    lex(&lx, "09223372036854775808 9223372036854775808.0");
    assert_true(lx.toks[0].int_min_abs);
    assert_false(lx.toks[1].int_min_abs);
    lexed_free(&lx);

    /* a number next to punctuation */
    KINDS("1+2", TSR_TOK_INT, TSR_TOK_PLUS, TSR_TOK_INT);
    KINDS("1.5.5", TSR_TOK_DOUBLE, TSR_TOK_DOUBLE);
    KINDS("1e5-1", TSR_TOK_DOUBLE, TSR_TOK_MINUS, TSR_TOK_INT);
    KINDS("(1)", TSR_TOK_LPAREN, TSR_TOK_INT, TSR_TOK_RPAREN);
    KINDS("x.5", TSR_TOK_IDENT, TSR_TOK_DOUBLE);
}

static void test_comments_and_positions(void **state)
{
    (void)state;
    lexed_t lx;
    const char *sql = "-- header\n"
                      "SELECT a, /* multi\n"
                      "line */ b\r\n"
                      "\tFROM t -- trailing\n"
                      "  /* end */  ";
    lex(&lx, sql);
    assert_int_equal(lx.rc, TSR_OK);
    assert_int_equal(lx.n, 7);
    struct {
        tsr_tok_kind_t kind;
        int line, column;
        size_t len;
    } want[] = {
        {TSR_TOK_SELECT, 2, 1, 6}, {TSR_TOK_IDENT, 2, 8, 1}, {TSR_TOK_COMMA, 2, 9, 1},
        {TSR_TOK_IDENT, 3, 9, 1},  {TSR_TOK_FROM, 4, 2, 4},  {TSR_TOK_IDENT, 4, 7, 1},
        {TSR_TOK_EOF, 4, 8, 0}, /* just past the last token, not the trailing comments */
    };
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(lx.toks[i].kind, want[i].kind);
        assert_int_equal(lx.toks[i].line, want[i].line);
        assert_int_equal(lx.toks[i].column, want[i].column);
        assert_int_equal(lx.toks[i].len, want[i].len);
    }
    /* offsets point at the token's text */
    assert_memory_equal(sql + lx.toks[4].offset, "FROM", 4);
    assert_int_equal(lx.toks[6].offset, (size_t)(strstr(sql, "t --") - sql) + 1);
    lexed_free(&lx);

    /* empty and comment-only inputs: EOF at 1:1 */
    lex(&lx, "");
    assert_int_equal(lx.n, 1);
    assert_int_equal(lx.toks[0].kind, TSR_TOK_EOF);
    assert_int_equal(lx.toks[0].line, 1);
    assert_int_equal(lx.toks[0].column, 1);
    lexed_free(&lx);
    lex(&lx, "  -- only\n /* comments */ ");
    assert_int_equal(lx.n, 1);
    assert_int_equal(lx.toks[0].kind, TSR_TOK_EOF);
    lexed_free(&lx);
    /* a line comment at the very end without newline */
    KINDS("a --", TSR_TOK_IDENT);
    KINDS("a/**/b", TSR_TOK_IDENT, TSR_TOK_IDENT);
    KINDS("a/***/b", TSR_TOK_IDENT, TSR_TOK_IDENT);

    /* EOF keeps answering EOF */
    tsr_arena_t arena;
    tsr_arena_init(&arena, NULL);
    tsr_lexer_t l;
    tsr_token_t t;
    tsr_lexer_init(&l, &arena, "x", 1);
    assert_int_equal(tsr_lexer_next(&l, &t, NULL), TSR_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tsr_lexer_next(&l, &t, NULL), TSR_OK);
        assert_int_equal(t.kind, TSR_TOK_EOF);
        assert_int_equal(t.column, 2);
    }
    tsr_arena_release(&arena);
}

typedef struct bad_case {
    const char *sql;
    size_t len;   /* 0: strlen */
    size_t ngood; /* tokens before the error */
    int line, column;
    const char *message;
    const char *hint; /* substring, NULL: don't care */
} bad_case_t;

static void test_errors(void **state)
{
    (void)state;
    static const bad_case_t cases[] = {
        {"SELECT 'abc", 0, 1, 1, 8, "unterminated string literal", "close the string"},
        {"a\n  'it''s", 0, 1, 2, 3, "unterminated string literal", NULL},
        {"SELECT \"abc", 0, 1, 1, 8, "unterminated quoted identifier", "close the name"},
        {"a /* never closed\n\n", 0, 1, 1, 3, "unterminated /* comment", "*/"},
        {"a /*/", 0, 1, 1, 3, "unterminated /* comment", NULL},
        {"SELECT #", 0, 1, 1, 8, "unexpected character '#'", NULL},
        {"a\n`b`", 0, 1, 2, 1, "unexpected character '`'", "double quotes"},
        {"a ! b", 0, 1, 1, 3, "unexpected character '!'", "<>"},
        {"a || b", 0, 1, 1, 3, "unexpected character '|'", "concatenation"},
        {"x = \xE2\x80\x98y\xE2\x80\x99", 0, 2, 1, 5, "unexpected character (byte 0xE2)",
         "typographic quote"},
        {"caf\xC3\xA9", 0, 1, 1, 4, "unexpected character (byte 0xC3)", "ASCII"},
        {"a\0b", 3, 1, 1, 2, "unexpected character (byte 0x00)", NULL},
        {"?", 0, 0, 1, 1, "unexpected character '?'", NULL},
        {"\x7f", 0, 0, 1, 1, "unexpected character (byte 0x7F)", NULL},
        {"a $1", 0, 1, 1, 3, "unexpected character '$'", NULL},
        {"SELECT 123abc", 0, 1, 1, 8, "malformed number '123abc'", NULL},
        {"1e", 0, 0, 1, 1, "malformed number '1e'", NULL},
        {"1e+ 2", 0, 0, 1, 1, "malformed number '1e+'", NULL},
        {"1.5x", 0, 0, 1, 1, "malformed number '1.5x'", NULL},
        {"1e999", 0, 0, 1, 1, "number out of range '1e999'", NULL},
        {"a \"\" b", 0, 1, 1, 3, "zero-length quoted identifier", NULL},
        {"\"a\0b\"", 5, 0, 1, 1, "quoted identifier contains a NUL byte", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case_t *c = &cases[i];
        lexed_t lx;
        lex_n(&lx, c->sql, c->len ? c->len : strlen(c->sql));
        if (lx.rc != TSR_ERR_SYNTAX || lx.n != c->ngood + 1 || lx.err.line != c->line ||
            lx.err.column != c->column || strcmp(lx.err.message, c->message) != 0 ||
            (c->hint && !strstr(lx.err.hint, c->hint))) {
            print_error("case %zu: rc %d ntok %zu at %d:%d msg '%s' hint '%s'\n", i, lx.rc, lx.n,
                        lx.err.line, lx.err.column, lx.err.message, lx.err.hint);
            fail();
        }
        lexed_free(&lx);
    }
}

/* ---- random token streams against the rendered model ------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct model_tok {
    tsr_tok_kind_t kind;
    size_t offset, len;
    int line, column;
    int64_t ival;
    char text[32];
    size_t text_len;
} model_tok_t;

typedef struct render {
    char buf[8192];
    size_t len;
    int line;
    size_t line_start;
} render_t;

static void put(render_t *r, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r->buf[r->len++] = s[i];
        if (s[i] == '\n') {
            r->line++;
            r->line_start = r->len;
        }
    }
}

static void put_sep(render_t *r)
{
    static const char *const seps[] = {" ",       "\n",         "\t",   "  ",
                                       " -- c\n", "/* x\ny */", "/**/", "\r\n"};
    const char *s = seps[rnd() % (sizeof(seps) / sizeof(seps[0]))];
    put(r, s, strlen(s));
}

static void test_random_streams(void **state)
{
    (void)state;
    static const struct {
        tsr_tok_kind_t kind;
        const char *text;
    } fixed[] = {
        {TSR_TOK_SELECT, "select"}, {TSR_TOK_FROM, "FROM"},
        {TSR_TOK_NULL, "Null"},     {TSR_TOK_BETWEEN, "between"},
        {TSR_TOK_PLUS, "+"},        {TSR_TOK_MINUS, "-"},
        {TSR_TOK_STAR, "*"},        {TSR_TOK_SLASH, "/"},
        {TSR_TOK_PERCENT, "%"},     {TSR_TOK_EQ, "="},
        {TSR_TOK_NE, "<>"},         {TSR_TOK_NE, "!="},
        {TSR_TOK_LT, "<"},          {TSR_TOK_LE, "<="},
        {TSR_TOK_GT, ">"},          {TSR_TOK_GE, ">="},
        {TSR_TOK_LPAREN, "("},      {TSR_TOK_RPAREN, ")"},
        {TSR_TOK_COMMA, ","},       {TSR_TOK_DOT, "."},
        {TSR_TOK_SEMI, ";"},
    };
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 2000; iter++) {
        render_t r = {.line = 1};
        model_tok_t model[64];
        size_t n = rnd() % 40;
        for (size_t i = 0; i < n; i++) {
            put_sep(&r); /* a separator between every two tokens keeps them apart */
            model_tok_t *m = &model[i];
            memset(m, 0, sizeof(*m));
            m->offset = r.len;
            m->line = r.line;
            m->column = (int)(r.len - r.line_start) + 1;
            char src[64];
            switch (rnd() % 5) {
            case 0: { /* identifier */
                m->kind = TSR_TOK_IDENT;
                size_t len = 1 + rnd() % 8;
                for (size_t j = 0; j < len; j++)
                    m->text[j] = (char)(j == 0 ? 'q' + rnd() % 8 : 'a' + rnd() % 26);
                m->text_len = len;
                snprintf(src, sizeof(src), "%s", m->text);
                break;
            }
            case 1: { /* integer */
                m->kind = TSR_TOK_INT;
                m->ival = (int64_t)(rnd() >> (rnd() % 63 + 1));
                snprintf(src, sizeof(src), "%lld", (long long)m->ival);
                break;
            }
            case 2: { /* string or quoted name with escapes */
                bool is_str = rnd() % 2;
                char q = is_str ? '\'' : '"';
                m->kind = is_str ? TSR_TOK_STRING : TSR_TOK_QIDENT;
                size_t len = (is_str ? 0 : 1) + rnd() % 8, j = 0, k = 0;
                src[k++] = q;
                for (; j < len; j++) {
                    static const char alphabet[] = "ab -\n*/'\"";
                    char c = alphabet[rnd() % (sizeof(alphabet) - 1)];
                    m->text[j] = c;
                    src[k++] = c;
                    if (c == q)
                        src[k++] = q;
                }
                m->text_len = len;
                src[k++] = q;
                src[k] = '\0';
                break;
            }
            default: {
                size_t f = rnd() % (sizeof(fixed) / sizeof(fixed[0]));
                m->kind = fixed[f].kind;
                snprintf(src, sizeof(src), "%s", fixed[f].text);
                break;
            }
            }
            m->len = strlen(src);
            put(&r, src, m->len);
        }
        if (rnd() % 2)
            put_sep(&r);
        lexed_t lx;
        lex_n(&lx, r.buf, r.len);
        if (lx.rc != TSR_OK || lx.n != n + 1) {
            print_error("iter %d: rc %d, %zu tokens for %zu: '%.*s' (%s)\n", iter, lx.rc, lx.n,
                        n + 1, (int)r.len, r.buf, lx.err.message);
            for (size_t i = 0; i < lx.n || i < n; i++)
                print_error("  %zu: lexed %d@%zu+%zu model %d@%zu+%zu\n", i,
                            i < lx.n ? (int)lx.toks[i].kind : -1, i < lx.n ? lx.toks[i].offset : 0,
                            i < lx.n ? lx.toks[i].len : 0, i < n ? (int)model[i].kind : -1,
                            i < n ? model[i].offset : 0, i < n ? model[i].len : 0);
            fail();
        }
        for (size_t i = 0; i < n; i++) {
            const tsr_token_t *t = &lx.toks[i];
            const model_tok_t *m = &model[i];
            if (t->kind != m->kind || t->offset != m->offset || t->len != m->len ||
                t->line != m->line || t->column != m->column) {
                print_error("iter %d tok %zu: kind %d/%d off %zu/%zu len %zu/%zu at %d:%d/%d:%d\n",
                            iter, i, t->kind, m->kind, t->offset, m->offset, t->len, m->len,
                            t->line, t->column, m->line, m->column);
                fail();
            }
            if (m->kind == TSR_TOK_INT)
                assert_true(t->ival == m->ival);
            if (m->kind == TSR_TOK_IDENT || m->kind == TSR_TOK_QIDENT ||
                m->kind == TSR_TOK_STRING) {
                assert_int_equal(t->text_len, m->text_len);
                assert_memory_equal(t->text, m->text, m->text_len);
            }
        }
        lexed_free(&lx);
    }
}

/* Every arena failure while lexing is TSR_ERR_NOMEM on an ERROR token. */
static void test_out_of_memory(void **state)
{
    (void)state;
    const char *sql = "SELECT \"a\"\"b\", 'it''s', name, 1.5, 123456789012345678901234567890123456"
                      "789012345678901234567890123456789012345678901234567890";
    size_t failures = 0;
    for (long k = 0;; k++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_arena_t arena;
        tsr_arena_init(&arena, &mem);
        tsr_mem_fail_after(&mem, k);
        tsr_lexer_t l;
        tsr_lexer_init(&l, &arena, sql, strlen(sql));
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_token_t t;
        tsr_status_t rc;
        do {
            rc = tsr_lexer_next(&l, &t, &err);
        } while (rc == TSR_OK && t.kind != TSR_TOK_EOF);
        tsr_arena_release(&arena);
        if (atomic_load(&mem.failures) == 0) {
            assert_int_equal(rc, TSR_OK);
            break;
        }
        failures++;
        assert_int_equal(rc, TSR_ERR_NOMEM);
        assert_int_equal(t.kind, TSR_TOK_ERROR);
        assert_int_equal(err.status, TSR_ERR_NOMEM);
    }
    assert_true(failures >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords_case_insensitive),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_identifiers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_comments_and_positions),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_streams),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
