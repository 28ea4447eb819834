/*
 * test_kv_keyset.c - the resync's set of written keys (scheduler/kv_keyset.c).
 *
 * Model: a plain array searched linearly. 20,000 random adds and lookups of
 * keys of 0..40 bytes over a small alphabet (so many repeat, many share
 * prefixes, and lengths differ by one byte on equal prefixes), binary bytes
 * included, through several growths: every lookup equals the model, the
 * count equals the model's. Out of memory at every allocation an add makes:
 * the add fails and the set is left as it was (its keys still found, the
 * new one not). Keys of 0 bytes; a freed set is empty and usable again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv_keyset.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct mkey {
    uint8_t b[40];
    size_t len;
} mkey_t;

static bool model_has(const mkey_t *m, size_t n, const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].len == len && memcmp(m[i].b, b, len) == 0)
            return true;
    return false;
}

static void random_key(uint8_t *b, size_t *len)
{
    static const uint8_t alpha[4] = {'a', 'b', 0, 0xff};
    *len = (size_t)(rnd() % 41);
    if (rnd() % 4 == 0)
        *len = *len % 4; /* many short keys: repeats */
    for (size_t i = 0; i < *len; i++)
        b[i] = alpha[rnd() % 4];
}

static void test_against_model(void **state)
{
    (void)state;
    enum { OPS = 20000 };
    mkey_t *m = calloc(OPS, sizeof(*m));
    assert_non_null(m);
    size_t n = 0;
    kv_keyset_t k;
    tsr_kv_keyset_init(&k, NULL);
    for (int op = 0; op < OPS; op++) {
        uint8_t b[40];
        size_t len;
        random_key(b, &len);
        bool had = model_has(m, n, b, len);
        assert_int_equal(tsr_kv_keyset_has(&k, b, len), had);
        if (rnd() % 2) {
            assert_true(tsr_kv_keyset_add(&k, b, len));
            if (!had) {
                memcpy(m[n].b, b, len);
                m[n++].len = len;
            }
            assert_true(tsr_kv_keyset_has(&k, b, len));
        }
        assert_int_equal(k.n, n);
    }
    assert_true(n > 1000); /* it grew several times */
    for (size_t i = 0; i < n; i++)
        assert_true(tsr_kv_keyset_has(&k, m[i].b, m[i].len));
    assert_true(tsr_kv_keyset_bytes(&k) >= n * 2 * sizeof(uint64_t));
    tsr_kv_keyset_free(&k);
    assert_int_equal(k.n, 0);
    assert_false(tsr_kv_keyset_has(&k, m[0].b, m[0].len));
    assert_true(tsr_kv_keyset_add(&k, "x", 1)); /* usable again */
    assert_true(tsr_kv_keyset_has(&k, "x", 1));
    assert_false(tsr_kv_keyset_has(&k, "", 0));
    assert_true(tsr_kv_keyset_add(&k, "", 0));
    assert_true(tsr_kv_keyset_has(&k, "", 0));
    assert_false(tsr_kv_keyset_has(&k, "x\0", 2));
    tsr_kv_keyset_free(&k);
    free(m);
}

/* Every allocation of an add fails in turn: the set keeps what it had. */
static void test_out_of_memory(void **state)
{
    (void)state;
    int failures = 0;
    for (long fail = 0; fail < 3; fail++) {
        for (size_t before = 0; before <= 70; before++) { /* through growths */
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            kv_keyset_t k;
            tsr_kv_keyset_init(&k, &mem);
            char key[16];
            for (size_t i = 0; i < before; i++) {
                int l = snprintf(key, sizeof(key), "key%zu", i);
                assert_true(tsr_kv_keyset_add(&k, key, (size_t)l));
            }
            tsr_mem_fail_after(&mem, fail);
            bool ok = tsr_kv_keyset_add(&k, "new", 3);
            tsr_mem_fail_after(&mem, -1);
            assert_int_equal(k.n, before + (ok ? 1 : 0));
            assert_int_equal(tsr_kv_keyset_has(&k, "new", 3), ok);
            for (size_t i = 0; i < before; i++) {
                int l = snprintf(key, sizeof(key), "key%zu", i);
                assert_true(tsr_kv_keyset_has(&k, key, (size_t)l));
            }
            failures += !ok;
            tsr_kv_keyset_free(&k);
        }
    }
    /* at least: the first table and the first bytes (no keys), the table's
     * growth at 32 keys */
    assert_true(failures >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
