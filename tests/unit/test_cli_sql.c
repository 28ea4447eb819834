/*
 * test_cli_sql.c - `tessera sql` (cli/cmd_sql.c and what it uses, compiled
 * into this test): exit codes of DESIGN.md for good and bad input, and query
 * text that the engine would otherwise misread (a NUL byte inside).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../cli/cmd_sql.c"
#include "../../cli/common.c"
#include "../../cli/output.c"

static char g_csv[64], g_query[64], g_out[64], g_err[64];

static int setup(void **state)
{
    (void)state;
    strcpy(g_csv, "/tmp/tsr_cli_csv_XXXXXX");
    strcpy(g_query, "/tmp/tsr_cli_sql_XXXXXX");
    strcpy(g_out, "/tmp/tsr_cli_out_XXXXXX");
    int fd = mkstemp(g_csv);
    assert_true(fd >= 0);
    const char csv[] = "a,b\n1,x\n2,y\n9223372036854775807,z\n";
    assert_int_equal(write(fd, csv, sizeof(csv) - 1), (ssize_t)(sizeof(csv) - 1));
    close(fd);
    fd = mkstemp(g_query);
    assert_true(fd >= 0);
    close(fd);
    fd = mkstemp(g_out);
    assert_true(fd >= 0);
    close(fd);
    strcpy(g_err, "/tmp/tsr_cli_err_XXXXXX");
    fd = mkstemp(g_err);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_csv);
    unlink(g_query);
    unlink(g_out);
    unlink(g_err);
    return 0;
}

/* Runs `tessera sql --format csv --table t=CSV args...` with stdout in g_out. */
static int run_sql(int nargs, ...)
{
    char table[128];
    snprintf(table, sizeof(table), "t=%s", g_csv);
    char *argv[16] = {"sql", "--format", "csv", "--table", table};
    int argc = 5;
    va_list ap;
    va_start(ap, nargs);
    for (int i = 0; i < nargs && argc < 15; i++)
        argv[argc++] = va_arg(ap, char *);
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    assert_non_null(freopen(g_out, "w", stdout));
    assert_non_null(freopen(g_err, "w", stderr));
    int rc = cmd_sql(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved);
    close(saved_err);
    return rc;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *output(void)
{
    return read_all(g_out);
}

static void write_query(const char *text, size_t len)
{
    FILE *f = fopen(g_query, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(run_sql(1, "SELECT b FROM t WHERE a = 2"), TSR_EXIT_OK);
    assert_string_equal(output(), "b\ny\n");
    assert_int_equal(run_sql(1, "SELECT b FROM t WHERE"), TSR_EXIT_USAGE);
    assert_int_equal(run_sql(1, "SELECT c FROM t"), TSR_EXIT_NOT_FOUND);
    assert_int_equal(run_sql(1, "SELECT a + 1 FROM t"), TSR_EXIT_FAILURE); /* overflow */
    /* guarded: the overflowing row is excluded by the left operand */
    assert_int_equal(run_sql(1, "SELECT b FROM t WHERE a < 100 AND a + 1 > 2"), TSR_EXIT_OK);
    assert_string_equal(output(), "b\ny\n");
    assert_int_equal(run_sql(2, "-f", "/nonexistent/q.sql"), TSR_EXIT_NOT_FOUND);
    assert_int_equal(run_sql(1, "--bogus"), TSR_EXIT_USAGE);
}

static void test_query_file(void **state)
{
    (void)state;
    const char q[] = "SELECT COUNT(*) FROM t -- all rows\n;\n";
    write_query(q, sizeof(q) - 1);
    assert_int_equal(run_sql(2, "-f", g_query), TSR_EXIT_OK);
    assert_string_equal(output(), "COUNT(*)\n3\n");
    /* a NUL byte would end the text the engine sees: refused, not cut */
    const char qnul[] = "SELECT COUNT(*) FROM t\0 WHERE a = 1";
    write_query(qnul, sizeof(qnul) - 1);
    assert_int_equal(run_sql(2, "-f", g_query), TSR_EXIT_USAGE);
}

/* The column of the caret line's '^' and the line above it. */
static void caret_lines(char **src, char **caret)
{
    char *text = read_all(g_err);
    *src = strstr(text, "\n  at line ");
    assert_non_null(*src);
    *src = strchr(*src + 1, '\n'); /* the SQL line follows "at line L, column C:" */
    assert_non_null(*src);
    *src += 3;
    *caret = strchr(*src, '\n');
    assert_non_null(*caret);
    **caret = '\0';
    *caret += 3;
    char *end = strchr(*caret, '\n');
    assert_non_null(end);
    *end = '\0';
}

static void test_error_caret(void **state)
{
    (void)state;
    char *src, *caret;
    /* UTF-8 before the error: the caret counts characters, not bytes */
    assert_int_equal(run_sql(1, "SELECT '\xc3\xa9\xc3\xa9', zz FROM t"), TSR_EXIT_NOT_FOUND);
    caret_lines(&src, &caret);
    assert_string_equal(caret, "             ^"); /* under zz: 13 characters in */
    /* one very long line: a window around the error, not the whole line */
    static char q[20000];
    strcpy(q, "SELECT b FROM t WHERE a IN (");
    for (int i = 0; i < 2000; i++)
        strcat(q, "1, ");
    strcat(q, "'x')");
    assert_int_equal(run_sql(1, q), TSR_EXIT_USAGE);
    caret_lines(&src, &caret);
    assert_true(strlen(src) < 200);
    assert_true(strncmp(src, "...", 3) == 0);
    size_t at = strlen(caret) - 1;
    assert_int_equal(caret[at], '^');
    assert_true(at < strlen(src));
    assert_true(strncmp(src + at, "'x'", 3) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_query_file),
        cmocka_unit_test(test_error_caret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
