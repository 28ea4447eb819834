/*
 * test_dict.c - the string dictionary (engine/table/dict.c).
 *
 * A model (an array of the distinct strings in insertion order, searched
 * linearly or through a sorted copy) is checked against the dictionary for
 * random binary strings (NUL bytes, empty strings, shared prefixes) at sizes
 * around every rehash; freeze is checked for hashes equal to tsr_hash_bytes
 * and ranks equal to the memcmp order; allocation failures are injected at
 * every point and must leave the dictionary usable and unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "table/dict.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

typedef struct mstr {
    char *s;
    size_t len;
} mstr_t;

typedef struct model {
    mstr_t *v;
    size_t n, cap;
} model_t;

static long model_find(const model_t *m, const char *s, size_t len)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].len == len && memcmp(m->v[i].s, s, len) == 0)
            return (long)i;
    return -1;
}

static void model_add(model_t *m, const char *s, size_t len)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
    }
    m->v[m->n].s = malloc(len ? len : 1);
    memcpy(m->v[m->n].s, s, len);
    m->v[m->n].len = len;
    m->n++;
}

static void model_free(model_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].s);
    free(m->v);
}

/* Random strings from a small alphabet (with NUL), so duplicates and shared
 * prefixes are common. */
static size_t gen(char *buf, size_t maxlen)
{
    size_t len = (size_t)(rnd() % (maxlen + 1));
    for (size_t i = 0; i < len; i++) {
        static const char alpha[] = {'a', 'b', 'c', '\0', (char)0xff, 'z'};
        buf[i] = alpha[rnd() % sizeof(alpha)];
    }
    return len;
}

static int cmp_bytes(const mstr_t *a, const mstr_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Everything the dictionary says agrees with the model. */
static void check_against(const tsr_dict_t *d, const model_t *m)
{
    assert_int_equal(tsr_dict_size(d), m->n);
    for (size_t i = 0; i < m->n; i++) {
        size_t len;
        const char *s = tsr_dict_get(d, (uint32_t)i, &len);
        assert_int_equal(len, m->v[i].len);
        assert_memory_equal(s, m->v[i].s, len);
        assert_int_equal(s[len], '\0');
        uint32_t code = UINT32_MAX;
        assert_true(tsr_dict_find(d, m->v[i].s, m->v[i].len, &code));
        assert_int_equal(code, i);
    }
}

static void check_frozen(tsr_dict_t *d, const model_t *m)
{
    assert_int_equal(tsr_dict_freeze(d), TSR_OK);
    assert_true(tsr_dict_frozen(d));
    assert_int_equal(tsr_dict_freeze(d), TSR_OK); /* idempotent */
    const uint64_t *h = tsr_dict_hashes(d);
    const uint32_t *r = tsr_dict_ranks(d);
    assert_non_null(r);
    for (size_t i = 0; i < m->n; i++)
        assert_true(h[i] == tsr_hash_bytes(m->v[i].s, m->v[i].len));
    /* ranks: a permutation, ordered like the strings */
    bool *seen = calloc(m->n + 1, 1);
    for (size_t i = 0; i < m->n; i++) {
        assert_true(r[i] < m->n);
        assert_false(seen[r[i]]);
        seen[r[i]] = true;
    }
    free(seen);
    for (size_t k = 0; k < 4 * m->n; k++) {
        size_t i = (size_t)(rnd() % m->n), j = (size_t)(rnd() % m->n);
        int c = cmp_bytes(&m->v[i], &m->v[j]);
        if (c < 0)
            assert_true(r[i] < r[j]);
        else if (c > 0)
            assert_true(r[i] > r[j]);
        else
            assert_int_equal(i, j);
    }
    /* interning is over once frozen; finding is not */
    uint32_t code;
    assert_int_equal(tsr_dict_intern(d, "new", 3, &code), TSR_ERR_INVALID_ARG);
    check_against(d, m);
}

static void test_basics(void **state)
{
    (void)state;
    tsr_dict_t *d = NULL;
    assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
    uint32_t a, b, c, e;
    assert_int_equal(tsr_dict_intern(d, "apple", 5, &a), TSR_OK);
    assert_int_equal(tsr_dict_intern(d, "pear", 4, &b), TSR_OK);
    assert_int_equal(tsr_dict_intern(d, "apple", 5, &c), TSR_OK);
    assert_int_equal(tsr_dict_intern(d, "", 0, &e), TSR_OK);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(c, 0);
    assert_int_equal(e, 2);
    assert_int_equal(tsr_dict_size(d), 3);
    assert_string_equal(tsr_dict_get(d, 1, NULL), "pear");
    assert_false(tsr_dict_find(d, "app", 3, &c));
    assert_false(tsr_dict_find(d, "apple\0", 6, &c)); /* length is part of the key */
    assert_false(tsr_dict_frozen(d));
    assert_int_equal(tsr_dict_freeze(d), TSR_OK);
    const uint32_t *r = tsr_dict_ranks(d);
    assert_int_equal(r[e], 0); /* "" < "apple" < "pear" */
    assert_int_equal(r[a], 1);
    assert_int_equal(r[b], 2);
    tsr_dict_destroy(d);
    tsr_dict_destroy(NULL);

    /* an empty dictionary freezes too */
    assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
    assert_int_equal(tsr_dict_freeze(d), TSR_OK);
    assert_int_equal(tsr_dict_size(d), 0);
    assert_false(tsr_dict_find(d, "x", 1, &c));
    tsr_dict_destroy(d);
}

static void test_random_model(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 31, 32, 33, 63, 64, 65, 127, 1000, 4099};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        tsr_dict_t *d = NULL;
        assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
        model_t m = {0};
        size_t maxlen = sizes[k] < 100 ? 3 : 12;
        for (size_t i = 0; i < sizes[k] * 2; i++) {
            char buf[16];
            size_t len = gen(buf, maxlen);
            long want = model_find(&m, buf, len);
            uint32_t found;
            assert_int_equal(tsr_dict_find(d, buf, len, &found), want >= 0);
            if (want >= 0)
                assert_int_equal(found, want);
            uint32_t code;
            assert_int_equal(tsr_dict_intern(d, buf, len, &code), TSR_OK);
            if (want < 0) {
                assert_int_equal(code, m.n);
                model_add(&m, buf, len);
            } else {
                assert_int_equal(code, (uint32_t)want);
            }
        }
        check_against(d, &m);
        check_frozen(d, &m);
        tsr_dict_destroy(d);
        model_free(&m);
    }
}

static void test_long_and_many(void **state)
{
    (void)state;
    tsr_dict_t *d = NULL;
    assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
    model_t m = {0};
    char *big = malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        big[i] = (char)('a' + i % 26);
    /* prefixes of one long string: ranks follow length */
    for (size_t len = 0; len < 100000; len += 997) {
        uint32_t code;
        assert_int_equal(tsr_dict_intern(d, big, len, &code), TSR_OK);
        model_add(&m, big, len);
    }
    /* many distinct short strings */
    for (uint32_t i = 0; i < 50000; i++) {
        char buf[16];
        memcpy(buf, &i, sizeof(i));
        buf[4] = '#';
        uint32_t code;
        assert_int_equal(tsr_dict_intern(d, buf, 5, &code), TSR_OK);
        model_add(&m, buf, 5);
    }
    check_against(d, &m);
    check_frozen(d, &m);
    tsr_dict_destroy(d);
    model_free(&m);
    free(big);
}

/* Every allocation of create, intern and freeze fails once: the call reports
 * TSR_ERR_NOMEM and the dictionary keeps its contents and keeps working. */
static void test_fault_injection(void **state)
{
    (void)state;
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_dict_t *d = NULL;
    for (long n = 0;; n++) {
        tsr_mem_fail_after(&mem, n);
        tsr_status_t rc = tsr_dict_create(&mem, &d);
        tsr_mem_fail_after(&mem, -1);
        if (rc == TSR_OK)
            break;
        assert_int_equal(rc, TSR_ERR_NOMEM);
    }
    model_t m = {0};
    for (size_t i = 0; i < 3000; i++) {
        char buf[16];
        size_t len = gen(buf, 8);
        long want = model_find(&m, buf, len);
        tsr_mem_fail_after(&mem, (long)(rnd() % 4));
        uint32_t code;
        tsr_status_t rc = tsr_dict_intern(d, buf, len, &code);
        tsr_mem_fail_after(&mem, -1);
        if (rc == TSR_ERR_NOMEM) {
            assert_int_equal(tsr_dict_size(d), m.n); /* nothing half-added */
            assert_false(want < 0 && tsr_dict_find(d, buf, len, &code));
            continue;
        }
        assert_int_equal(rc, TSR_OK);
        if (want < 0) {
            assert_int_equal(code, m.n);
            model_add(&m, buf, len);
        } else {
            assert_int_equal(code, (uint32_t)want);
        }
    }
    assert_true(atomic_load(&mem.failures) > 0);
    check_against(d, &m);
    for (long n = 0;; n++) {
        tsr_mem_fail_after(&mem, n);
        tsr_status_t rc = tsr_dict_freeze(d);
        tsr_mem_fail_after(&mem, -1);
        if (rc == TSR_OK)
            break;
        assert_int_equal(rc, TSR_ERR_NOMEM);
        assert_false(tsr_dict_frozen(d));
    }
    check_frozen(d, &m);
    tsr_dict_destroy(d);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_long_and_many),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
