/*
 * test_cli_output.c - the CLI's result formats (cli/output.c, compiled into
 * this test): JSON must be valid JSON whatever bytes a VARCHAR holds (a CSV
 * file may hold any bytes: invalid UTF-8 becomes U+FFFD, control characters
 * are escaped), CSV keeps NULL and "" apart, doubles read back exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../cli/output.c"

/* Runs sql over a one-column VARCHAR table of strs and writes it as fmt. */
static char *format_strings(const char *const *strs, size_t n, const char *sql, cli_format_t fmt)
{
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    tsr_column_data_t col = {.name = "s", .type = TSR_TYPE_VARCHAR, .values = strs};
    assert_int_equal(tsr_table_register_columns(ctx, "t", 1, &col, n), TSR_OK);
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, sql, &res), TSR_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(cli_write_result(f, res, fmt), 0);
    fclose(f);
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    return buf;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static void test_json_is_valid_utf8(void **state)
{
    (void)state;
    static const char *const strs[] = {
        "plain",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", /* valid 2-, 3- and 4-byte sequences */
        "bad \xff\xfe end",                          /* bytes that never occur in UTF-8 */
        "cut \xe2\x82",                              /* a sequence cut short at the end */
        "over \xc0\xaf long",                        /* an overlong '/' */
        "surr \xed\xa0\x80 gate",                    /* an encoded surrogate */
        "big \xf4\x90\x80\x80",                      /* above U+10FFFF */
        "ctl \x01\x1f\x7f \"q\" \\",
    };
    size_t n = sizeof(strs) / sizeof(strs[0]);
    char *out = format_strings(strs, n, "SELECT s FROM t", CLI_FORMAT_JSON);
    assert_true(valid_utf8((const unsigned char *)out, strlen(out)));
    /* valid text is kept as is, invalid bytes are replaced one by one */
    assert_non_null(strstr(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    assert_non_null(strstr(out, "\"bad \\ufffd\\ufffd end\""));
    assert_non_null(strstr(out, "\"cut \\ufffd\\ufffd\""));
    assert_non_null(strstr(out, "\"over \\ufffd\\ufffd long\""));
    assert_non_null(strstr(out, "\"surr \\ufffd\\ufffd\\ufffd gate\""));
    assert_non_null(strstr(out, "\"big \\ufffd\\ufffd\\ufffd\\ufffd\""));
    assert_non_null(strstr(out, "\"ctl \\u0001\\u001f\x7f \\\"q\\\" \\\\\""));
    free(out);
}

/* Code points of a line of valid UTF-8. */
static size_t display_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xC0) != 0x80;
    return w;
}

/* The table format stays valid UTF-8 and aligned whatever the bytes. */
static void test_table_alignment(void **state)
{
    (void)state;
    static const char *const strs[] = {"ab", "\xff\xfe", "\xc3\xa9t\xc3\xa9", "x\xe2\x82", "tab\there"};
    char *out = format_strings(strs, 5, "SELECT s, 1 AS n FROM t", CLI_FORMAT_TABLE);
    assert_true(valid_utf8((const unsigned char *)out, strlen(out)));
    size_t width = 0;
    int lines = 0;
    for (char *line = out; *line && strncmp(line, "(", 1) != 0; lines++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        size_t w = display_width(line, (size_t)(end - line));
        if (width == 0)
            width = w;
        assert_int_equal(w, width + (lines == 1)); /* the rule runs one past */
        line = end + 1;
    }
    assert_int_equal(lines, 2 + 5); /* header, rule, rows */
    free(out);
}

static void test_csv_null_and_empty(void **state)
{
    (void)state;
    static const char *const strs[] = {"", NULL, "a,b", "q\"x"};
    char *out = format_strings(strs, 4, "SELECT s FROM t", CLI_FORMAT_CSV);
    assert_string_equal(out, "s\n\"\"\n\n\"a,b\"\n\"q\"\"x\"\n");
    free(out);
}

static void test_double_round_trip(void **state)
{
    (void)state;
    static const double vals[] = {0.1, 1.0 / 3.0, 1e300, -0.0, 5e-324, 123456789012345680.0, 2.5};
    char buf[64];
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        cli_format_double(vals[i], buf, sizeof(buf));
        assert_true(strtod(buf, NULL) == vals[i]);
        assert_non_null(strpbrk(buf, ".e")); /* reads back as a double */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_is_valid_utf8),
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_csv_null_and_empty),
        cmocka_unit_test(test_double_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
