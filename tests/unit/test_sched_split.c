/*
 * test_sched_split.c - quote-aware byte-range splitting of CSV files
 * (scheduler/split.c).
 *
 * Model: a naive RFC 4180 walk written here that lists every row start
 * (after a '\n' outside quotes). For random files with quoted fields holding
 * commas, quotes and newlines, CRLF and LF ends, with and without a final
 * newline, every split must: start at the header's end, be contiguous, end
 * at the file's end, cut only at model row starts, produce no empty range
 * (except for a header-only file), and honour want and min_bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "split.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Appends a random field to buf. */
static size_t put_field(char *buf, size_t n)
{
    static const char *const plain[] = {"1", "abc", "-2.5", "", "x y", "true"};
    static const char *const quoted[] = {"\"a,b\"", "\"say \"\"hi\"\"\"", "\"line\nbreak\"",
                                         "\"\"",    "\"\n\n\"",           "\"a\r\nb\""};
    const char *f = rnd() % 3 == 0 ? quoted[rnd() % 6] : plain[rnd() % 6];
    size_t l = strlen(f);
    memcpy(buf + n, f, l);
    return n + l;
}

/* Row starts by the model: positions just after a '\n' outside quotes. */
static size_t model_starts(const char *s, size_t len, size_t *starts)
{
    size_t n = 0;
    int q = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            q ^= 1;
        else if (s[i] == '\n' && !q)
            starts[n++] = i + 1;
    }
    return n;
}

static int is_start(const size_t *starts, size_t n, size_t pos)
{
    for (size_t i = 0; i < n; i++)
        if (starts[i] == pos)
            return 1;
    return 0;
}

static void check_split(const char *s, size_t len, size_t want, uint64_t min_bytes)
{
    size_t *starts = malloc((len + 1) * sizeof(size_t));
    assert_non_null(starts);
    size_t ns = model_starts(s, len, starts);
    tsr_split_t sp;
    assert_int_equal(tsr_split_buffer(NULL, s, len, want, min_bytes, &sp), TSR_OK);
    size_t header_end = ns > 0 ? starts[0] : len;
    assert_int_equal(sp.header_end, header_end);
    assert_true(sp.nranges >= 1);
    assert_true(sp.nranges <= (want ? want : 1));
    assert_int_equal(sp.ranges[0].start, header_end);
    assert_int_equal(sp.ranges[sp.nranges - 1].end, len);
    for (size_t i = 0; i < sp.nranges; i++) {
        if (i > 0) {
            assert_int_equal(sp.ranges[i].start, sp.ranges[i - 1].end);
            assert_true(is_start(starts, ns, sp.ranges[i].start));
        }
        if (sp.nranges > 1)
            assert_true(sp.ranges[i].end > sp.ranges[i].start);
        if (min_bytes && sp.nranges > 1)
            assert_true(sp.nranges <= (len - header_end) / min_bytes);
    }
    tsr_split_free(NULL, &sp);
    free(starts);
}

static void test_random_files(void **state)
{
    (void)state;
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 0, rows = rnd() % 60, cols = 1 + rnd() % 4;
        const char *eol = rnd() % 2 ? "\n" : "\r\n";
        for (size_t r = 0; r <= rows; r++) {
            for (size_t c = 0; c < cols; c++) {
                if (c)
                    buf[n++] = ',';
                n = put_field(buf, n);
            }
            if (r < rows || rnd() % 2) {
                memcpy(buf + n, eol, strlen(eol));
                n += strlen(eol);
            }
        }
        size_t want = 1 + rnd() % 9;
        check_split(buf, n, want, 0);
        check_split(buf, n, want, 1 + rnd() % 64);
    }
    free(buf);
}

static void test_edges(void **state)
{
    (void)state;
    check_split("", 0, 4, 0);
    check_split("a,b", 3, 4, 0);
    check_split("a,b\n", 4, 4, 0);
    check_split("a,b\n1,2\n", 8, 4, 0);
    check_split("a\n\"x\ny\"\n2\n3\n", 13, 8, 0);
    check_split("a\n1\n2\n3\n4\n5\n", 12, 1, 0);
    /* one row only: never cut */
    const char *one = "h\n\"a very long quoted field\nwith\nnewlines\"\n";
    tsr_split_t sp;
    assert_int_equal(tsr_split_buffer(NULL, one, strlen(one), 7, 0, &sp), TSR_OK);
    assert_int_equal(sp.nranges, 1);
    tsr_split_free(NULL, &sp);
    /* min_bytes larger than the body: one range */
    assert_int_equal(tsr_split_buffer(NULL, "a\n1\n2\n", 6, 5, 100, &sp), TSR_OK);
    assert_int_equal(sp.nranges, 1);
    tsr_split_free(NULL, &sp);
}

static void test_file(void **state)
{
    (void)state;
    tsr_split_t sp;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_split_csv(NULL, "/nonexistent/x.csv", 2, 0, &sp, &err), TSR_ERR_NOT_FOUND);
    char path[] = "/tmp/tsr_split_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "k,v\n1,2\n3,4\n5,6\n7,8\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(tsr_split_csv(NULL, path, 3, 0, &sp, &err), TSR_OK);
    assert_int_equal(sp.nranges, 3);
    assert_int_equal(sp.size, strlen(text));
    tsr_split_free(NULL, &sp);
    unlink(path);
}


/* Broadcast joins: the largest file is split (the first of equal ones), the
 * others must fit max_rest together, a missing file keeps the query whole. */
static void test_pick(void **state)
{
    (void)state;
    static const size_t sizes[][3] = {
        {10, 300, 20}, {300, 10, 20}, {5, 5, 900}, {7, 7, 7}, {0, 0, 1},
    };
    char paths[3][32];
    const char *pp[3];
    for (size_t i = 0; i < 3; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/tmp/tsr_pick_XXXXXX");
        int fd = mkstemp(paths[i]);
        assert_true(fd >= 0);
        close(fd);
        pp[i] = paths[i];
    }
    for (size_t c = 0; c < sizeof(sizes) / sizeof(sizes[0]); c++) {
        size_t want = 0;
        uint64_t total = 0;
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(truncate(paths[i], (off_t)sizes[c][i]), 0);
            total += sizes[c][i];
            if (sizes[c][i] > sizes[c][want])
                want = i;
        }
        uint64_t rest_want = total - sizes[c][want], rest = 0;
        size_t pick = 99;
        assert_null(tsr_split_pick(3, pp, rest_want, &pick, &rest));
        assert_int_equal(pick, want);
        assert_int_equal(rest, rest_want);
        assert_null(tsr_split_pick(2, pp, UINT64_MAX, &pick, &rest)); /* two tables */
        if (rest_want > 0) {
            pick = 99;
            assert_non_null(tsr_split_pick(3, pp, rest_want - 1, &pick, &rest));
            assert_int_equal(pick, 99); /* untouched */
        }
    }
    unlink(paths[1]);
    size_t pick = 0;
    uint64_t rest = 0;
    assert_string_equal(tsr_split_pick(3, pp, UINT64_MAX, &pick, &rest),
                        "a joined file cannot be read");
    const char *dir[1] = {"/tmp"};
    assert_non_null(tsr_split_pick(1, dir, UINT64_MAX, &pick, &rest)); /* not a regular file */
    unlink(paths[0]);
    unlink(paths[2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_files),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
