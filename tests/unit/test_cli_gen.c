/*
 * test_cli_gen.c - `tessera gen` (cli/cmd_gen.c, compiled into this test):
 * the same arguments give byte-identical output, the columns keep their
 * documented ranges (store in [0, K) for every K the option accepts), and
 * bad options are usage errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../cli/cmd_gen.c"
#include "../../cli/common.c"

/* Runs `tessera gen sales --out PATH args...`; returns the exit code. */
static int gen(const char *path, int nargs, ...)
{
    char *argv[16] = {"gen", "sales", "--out", (char *)path};
    int argc = 4;
    va_list ap;
    va_start(ap, nargs);
    for (int i = 0; i < nargs && argc < 15; i++)
        argv[argc++] = va_arg(ap, char *);
    va_end(ap);
    return cmd_gen(argc, argv);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_deterministic(void **state)
{
    (void)state;
    char a[] = "/tmp/tsr_gen_a_XXXXXX", b[] = "/tmp/tsr_gen_b_XXXXXX";
    close(mkstemp(a));
    close(mkstemp(b));
    assert_int_equal(gen(a, 4, "--rows", "5000", "--seed", "42"), TSR_EXIT_OK);
    assert_int_equal(gen(b, 4, "--rows", "5000", "--seed", "42"), TSR_EXIT_OK);
    char *x = slurp(a), *y = slurp(b);
    assert_string_equal(x, y);
    assert_true(strncmp(x, "id,store,region,product,quantity,price\n", 39) == 0);
    free(x);
    free(y);
    unlink(a);
    unlink(b);
}

/* store stays in [0, K) for the largest K accepted; larger K are refused. */
static void test_keys_range(void **state)
{
    (void)state;
    char p[] = "/tmp/tsr_gen_k_XXXXXX";
    close(mkstemp(p));
    assert_int_equal(gen(p, 4, "--rows", "2000", "--keys", "9223372036854775808"), TSR_EXIT_OK);
    char *text = slurp(p);
    char *line = strchr(text, '\n') + 1;
    size_t rows = 0;
    while (*line) {
        char *comma = strchr(line, ',');
        assert_non_null(comma);
        assert_true(comma[1] != '-'); /* never negative */
        char *end;
        unsigned long long store = strtoull(comma + 1, &end, 10);
        assert_true(store <= 9223372036854775807ULL);
        rows++;
        line = strchr(line, '\n') + 1;
    }
    assert_int_equal(rows, 2000);
    free(text);
    assert_int_equal(gen(p, 2, "--keys", "9223372036854775809"), TSR_EXIT_USAGE);
    assert_int_equal(gen(p, 2, "--keys", "18446744073709551615"), TSR_EXIT_USAGE);
    assert_int_equal(gen(p, 2, "--keys", "0"), TSR_EXIT_USAGE);
    assert_int_equal(gen(p, 2, "--rows", "-3"), TSR_EXIT_USAGE);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_keys_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
