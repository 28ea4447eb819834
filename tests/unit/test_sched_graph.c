/*
 * test_sched_graph.c - the scheduler's GRAPH request decoder
 * (scheduler/sched_graph.c, through tsr_sched_graph_check): random valid
 * graphs accepted (version 1, and 2 with per-task device constraints);
 * every truncation, a trailing byte, a forward or dangling input, a bad
 * version, kind, id or device spelling refused; random corruptions never crash
 * (run under ASan) and never pass a forward reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched_internal.h"

typedef struct gin {
    uint8_t is_task;
    uint32_t index;
} gin_t;

/* The device pair version-2 tasks carry (proto.h spelling). */
static const char *g_need = "", *g_prefer = "gpu";

/* Encodes a graph of n tasks (task i reads nin[i] inputs from in[i]) over
 * ntables tables, as the client does. */
static void encode(tsr_wbuf_t *b, uint8_t version, uint32_t ntables, uint32_t n,
                   const uint32_t *nin, gin_t (*in)[4], const char *kind)
{
    tsr_wbuf_init(b, NULL);
    tsr_wbuf_u8(b, version);
    tsr_wbuf_u8(b, ',');
    tsr_wbuf_u32(b, ntables);
    for (uint32_t t = 0; t < ntables; t++) {
        char name[32];
        snprintf(name, sizeof(name), "tab%u", t);
        tsr_wbuf_str(b, name);
        tsr_wbuf_str(b, "/data/x.csv");
        tsr_wbuf_str(b, "");
    }
    tsr_wbuf_u32(b, n);
    for (uint32_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t%u", i);
        tsr_wbuf_str(b, id);
        tsr_wbuf_str(b, kind);
        tsr_wbuf_str(b, "");
        tsr_wbuf_str(b, "");
        tsr_wbuf_u8(b, i + 1 == n);
        if (version >= 2)
            tsr_proto_encode_device(b, i % 2 ? g_need : "opencl1", g_prefer);
        tsr_wbuf_u32(b, nin[i]);
        for (uint32_t k = 0; k < nin[i]; k++) {
            tsr_wbuf_u8(b, in[i][k].is_task);
            tsr_wbuf_u32(b, in[i][k].index);
        }
    }
    assert_false(b->failed);
}

/* A random valid graph: task i reads earlier tasks and tables. */
static void random_graph(uint32_t n, uint32_t ntables, uint32_t *nin, gin_t (*in)[4])
{
    for (uint32_t i = 0; i < n; i++) {
        nin[i] = (uint32_t)(rand() % 5);
        for (uint32_t k = 0; k < nin[i]; k++) {
            bool task = i > 0 && (ntables == 0 || rand() % 2);
            if (!task && ntables == 0) {
                nin[i] = k;
                break;
            }
            in[i][k].is_task = task;
            in[i][k].index = task ? (uint32_t)rand() % i : (uint32_t)rand() % ntables;
        }
    }
}

static void test_valid_and_truncated(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 2, 3, 13, 200};
    srand(5);
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        uint32_t n = sizes[si], ntables = (uint32_t)(rand() % 4);
        uint32_t *nin = calloc(n, sizeof(uint32_t));
        gin_t(*in)[4] = calloc(n, sizeof(*in));
        random_graph(n, ntables, nin, in);
        for (uint8_t version = 1; version <= 2; version++) {
            tsr_wbuf_t b;
            encode(&b, version, ntables, n, nin, in, "sql");
            size_t got = 0;
            assert_true(tsr_sched_graph_check(NULL, b.data, b.len, &got));
            assert_int_equal(got, n);
            for (size_t len = 0; len<b.len; len += n> 13 ? 7 : 1)
                assert_false(tsr_sched_graph_check(NULL, b.data, len, NULL));
            tsr_wbuf_u8(&b, 0); /* a trailing byte */
            assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
            tsr_wbuf_free(&b);
        }
        free(nin);
        free(in);
    }
}

static void test_refused(void **state)
{
    (void)state;
    uint32_t nin[3] = {0, 1, 1};
    gin_t in[3][4] = {{{0, 0}}, {{1, 0}}, {{1, 1}}};
    tsr_wbuf_t b;
    encode(&b, 1, 0, 3, nin, in, "k");
    assert_true(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    encode(&b, 3, 0, 3, nin, in, "k"); /* unknown version */
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    encode(&b, 0, 0, 3, nin, in, "k");
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    encode(&b, 2, 0, 3, nin, in, "k"); /* device constraints */
    assert_true(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    static const char *const BAD[][2] = {{"tpu", ""}, {"", "cpu"}, {"auto", ""}, {"", "cuda x"}};
    for (size_t k = 0; k < sizeof(BAD) / sizeof(BAD[0]); k++) {
        g_need = BAD[k][0];
        g_prefer = BAD[k][1];
        encode(&b, 2, 0, 3, nin, in, "k");
        assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
        tsr_wbuf_free(&b);
    }
    g_need = "";
    g_prefer = "gpu";
    encode(&b, 1, 0, 3, nin, in, "bad-kind");
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    encode(&b, 1, 0, 0, nin, in, "k"); /* no tasks */
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    in[1][0].index = 1; /* reads itself: a cycle */
    encode(&b, 1, 0, 3, nin, in, "k");
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    in[1][0].index = 2; /* reads a later task */
    encode(&b, 1, 0, 3, nin, in, "k");
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    in[1][0] = (gin_t){0, 0}; /* a table, but there are none: dangling */
    encode(&b, 1, 0, 3, nin, in, "k");
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    encode(&b, 1, 1, 3, nin, in, "k"); /* with one table it is fine */
    assert_true(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    in[1][0] = (gin_t){2, 0}; /* neither a task nor a table */
    encode(&b, 1, 1, 3, nin, in, "k");
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
    /* a huge task count in a short message is refused before allocating */
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, 1);
    tsr_wbuf_u8(&b, ',');
    tsr_wbuf_u32(&b, 0);
    tsr_wbuf_u32(&b, 99999);
    assert_false(tsr_sched_graph_check(NULL, b.data, b.len, NULL));
    tsr_wbuf_free(&b);
}

/* Random single-byte corruptions of valid graphs: whatever is accepted must
 * still be decodable (no crash, no read past the message: ASan). */
static void test_corrupt(void **state)
{
    (void)state;
    srand(9);
    for (int round = 0; round < 300; round++) {
        uint32_t n = 1 + (uint32_t)(rand() % 9), ntables = (uint32_t)(rand() % 3);
        uint32_t nin[16];
        gin_t in[16][4];
        random_graph(n, ntables, nin, in);
        tsr_wbuf_t b;
        encode(&b, 1, ntables, n, nin, in, "identity");
        for (int flips = 1 + rand() % 3; flips > 0; flips--)
            b.data[(size_t)rand() % b.len] ^= (uint8_t)(1 + rand() % 255);
        (void)tsr_sched_graph_check(NULL, b.data, b.len, NULL);
        tsr_wbuf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_truncated),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
