/*
 * test_worker_kv_ranges.c - a partition's keys by hash range
 * (scheduler/worker_kv_ranges.c): digests, ranged scans and drops, with
 * which the scheduler repairs a stale copy (scheduler/kv_ranges.c).
 *
 * Oracle: two in-memory stores A and B get the same 3,000 random pairs in
 * different orders, then B diverges at random (values changed, keys
 * deleted, keys added: 0, 1, 7 and 60 changes). The test does not know the
 * range function; it checks what the scheduler relies on:
 *   - the ranged scans of all ranges, one at a time, return every pair of
 *     the copy exactly once (the ranges split the keys), and a scan of a
 *     set of ranges returns the union of theirs;
 *   - a range's digests are equal on A and B exactly when its scans return
 *     the same pairs (and the whole digests are equal exactly when the
 *     copies are), whatever order the pairs were written in;
 *   - the repair: RDROP of the differing ranges on B, then a LOAD of A's
 *     pairs of those ranges (its ranged scan, in pages of 7) leaves B equal
 *     to A, pair for pair; the drop's count is B's pairs in those ranges.
 * Also: a never-written partition digests as empty; malformed range
 * counts are refused.
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

#include "kv_msg.h"
#include "proto.h"
#include "worker_kv_ranges.h"

#define NPAIRS 3000
#define NRANGES 64u

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct pair {
    char key[24], val[24];
} pair_t;

/* A pair list read back from a scan: "bytes key, bytes value" pairs. */
typedef struct got {
    pair_t *p;
    size_t n;
} got_t;

static int pair_cmp(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->val, y->val);
}

static tsr_kv_table_t *open_table(tsr_kv_store_t **st)
{
    tsr_kv_options_t o = {0};
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_open(&o, st, &ke), TSR_OK);
    tsr_kv_table_params_t tp = {.partitions = 1, .max_key = 64, .max_value = 64};
    assert_int_equal(tsr_kv_table_create(*st, "p", &tp, &ke), TSR_OK);
    tsr_kv_table_t *t = NULL;
    assert_int_equal(tsr_kv_table_open(*st, "p", &t, &ke), TSR_OK);
    return t;
}

static void put(tsr_kv_table_t *t, const char *k, const char *v)
{
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_upsert(t, k, strlen(k), v, strlen(v), NULL, &ke), TSR_OK);
}

/* Every pair of the ranges whose bit is set, sorted. */
static got_t scan_v(tsr_kv_table_t *t, const uint8_t *bits, uint32_t page, size_t visit_max)
{
    got_t g = {0};
    wkv_ranges_t rs = {.n = NRANGES, .bits = bits};
    uint64_t cursor = 0;
    size_t cap = 0;
    do {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        uint32_t n = 0;
        tsr_kv_err_t ke = {0};
        assert_int_equal(tsr_wkv_scan_ranges(t, &cursor, page, &rs, visit_max, &b, &n, &ke),
                         TSR_OK);
        assert_true(n <= page);
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, b.data, b.len);
        for (uint32_t i = 0; i < n; i++) {
            size_t kl = 0, vl = 0;
            const char *k = tsr_rbuf_blob(&r, &kl), *v = tsr_rbuf_blob(&r, &vl);
            assert_false(r.bad);
            if (g.n == cap) {
                cap = cap ? 2 * cap : 64;
                g.p = realloc(g.p, cap * sizeof(*g.p));
                assert_non_null(g.p);
            }
            memset(&g.p[g.n], 0, sizeof(g.p[g.n]));
            memcpy(g.p[g.n].key, k, kl);
            memcpy(g.p[g.n].val, v, vl);
            g.n++;
        }
        assert_true(tsr_rbuf_done(&r));
        tsr_wbuf_free(&b);
    } while (cursor != 0);
    if (g.n)
        qsort(g.p, g.n, sizeof(*g.p), pair_cmp);
    return g;
}

static got_t scan(tsr_kv_table_t *t, const uint8_t *bits, uint32_t page)
{
    return scan_v(t, bits, page, TSR_WKV_VISIT_MAX);
}

static bool same(const got_t *a, const got_t *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n * sizeof(*a->p)) == 0);
}

/* RDIGEST in chunks of at most visit_max pairs, added up: the sums, 2 per
 * range. */
static uint64_t *digest_v(tsr_kv_table_t *t, uint32_t n, size_t visit_max, uint64_t *pairs)
{
    uint64_t *s = calloc(2 * (size_t)n, sizeof(*s));
    assert_non_null(s);
    uint64_t cursor = 0;
    unsigned chunks = 0;
    *pairs = 0;
    do {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        tsr_kv_err_t ke = {0};
        assert_int_equal(tsr_wkv_digest(t, n, &cursor, visit_max, &b, &ke), TSR_OK);
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, b.data, b.len);
        cursor = tsr_rbuf_u64(&r);
        *pairs += tsr_rbuf_u64(&r);
        assert_int_equal(tsr_rbuf_u32(&r), n);
        for (size_t i = 0; i < 2 * (size_t)n; i++)
            s[i] += tsr_rbuf_u64(&r);
        assert_true(tsr_rbuf_done(&r));
        tsr_wbuf_free(&b);
        chunks++;
    } while (cursor != 0);
    if (t && visit_max < NPAIRS)
        assert_true(chunks > 1);
    return s;
}

static uint64_t *digest(tsr_kv_table_t *t, uint32_t n, uint64_t *pairs)
{
    return digest_v(t, n, TSR_WKV_VISIT_MAX, pairs);
}

static void one_bit(uint8_t *bits, uint32_t i)
{
    memset(bits, 0, NRANGES / 8);
    bits[i / 8] = (uint8_t)(1u << (i % 8));
}

static void check_divergence(unsigned changes)
{
    tsr_kv_store_t *sa = NULL, *sb = NULL;
    tsr_kv_table_t *a = open_table(&sa), *b = open_table(&sb);
    static pair_t base[NPAIRS];
    for (size_t i = 0; i < NPAIRS; i++) {
        snprintf(base[i].key, sizeof(base[i].key), "key-%zu-%llu", i,
                 (unsigned long long)(rnd() % 1000000));
        snprintf(base[i].val, sizeof(base[i].val), "v%llu", (unsigned long long)(rnd() % 100000));
        put(a, base[i].key, base[i].val);
    }
    for (size_t i = NPAIRS; i-- > 0;) /* B in the other order */
        put(b, base[i].key, base[i].val);
    for (unsigned c = 0; c < changes; c++) {
        size_t i = rnd() % NPAIRS;
        tsr_kv_err_t ke = {0};
        switch (rnd() % 3) {
        case 0:
            put(b, base[i].key, "changed");
            break;
        case 1:
            (void)tsr_kv_delete(b, base[i].key, strlen(base[i].key), NULL, &ke);
            break;
        default: {
            char k[24];
            snprintf(k, sizeof(k), "extra-%u", c);
            put(b, k, "x");
        }
        }
    }
    /* the ranges split the keys; a range's digests equal iff its pairs do */
    uint64_t pa = 0, pb = 0;
    uint64_t *da = digest(a, NRANGES, &pa), *db = digest(b, NRANGES, &pb);
    uint8_t bits[NRANGES / 8], differ[NRANGES / 8] = {0};
    size_t total_a = 0, total_b = 0;
    unsigned ndiffer = 0;
    for (uint32_t i = 0; i < NRANGES; i++) {
        one_bit(bits, i);
        got_t ga = scan(a, bits, 1000), gb = scan(b, bits, 1000);
        total_a += ga.n;
        total_b += gb.n;
        bool eq_digest = da[2 * i] == db[2 * i] && da[2 * i + 1] == db[2 * i + 1];
        assert_int_equal(eq_digest, same(&ga, &gb));
        if (!eq_digest) {
            differ[i / 8] |= (uint8_t)(1u << (i % 8));
            ndiffer++;
        }
        free(ga.p);
        free(gb.p);
    }
    assert_int_equal(total_a, pa);
    assert_int_equal(total_b, pb);
    assert_int_equal(pa, NPAIRS);
    assert_true(ndiffer <= changes);
    if (changes == 0)
        assert_int_equal(ndiffer, 0);
    else
        assert_true(ndiffer >= 1);
    /* in chunks of 97 pairs the sums add up to the same; a ranged scan
     * that may stop after 50 pairs visited (empty pages) finds the same */
    uint64_t pc = 0;
    uint64_t *dc = digest_v(b, NRANGES, 97, &pc);
    assert_int_equal(pc, pb);
    assert_memory_equal(dc, db, 2 * NRANGES * sizeof(*dc));
    free(dc);
    {
        got_t small = scan_v(b, differ, 5, 50), big = scan(b, differ, 1000);
        assert_true(same(&small, &big));
        free(small.p);
        free(big.p);
    }
    uint64_t wa = 0, wb = 0;
    uint64_t *whole_a = digest(a, 1, &wa),
             *whole_b = digest(b, 1, &wb); /* 1 range: the whole copy */
    assert_int_equal(whole_a[0] == whole_b[0] && whole_a[1] == whole_b[1], ndiffer == 0);
    /* the repair: empty the differing ranges on B, load A's pairs of them */
    got_t b_in = scan(b, differ, 1000);
    wkv_ranges_t rs = {.n = NRANGES, .bits = differ};
    tsr_wbuf_t out;
    tsr_wbuf_init(&out, NULL);
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_wkv_drop_ranges(b, &rs, 37, &out, &ke), TSR_OK); /* batches of 37 */
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, out.data, out.len);
    assert_int_equal(tsr_rbuf_u64(&r), b_in.n);
    tsr_wbuf_free(&out);
    got_t fill = scan(a, differ, 7);
    for (size_t i = 0; i < fill.n; i++)
        put(b, fill.p[i].key, fill.p[i].val);
    uint8_t all[NRANGES / 8];
    memset(all, 0xff, sizeof(all));
    got_t ga = scan(a, all, 1000), gb = scan(b, all, 1000);
    assert_true(same(&ga, &gb));
    assert_int_equal(ga.n, NPAIRS);
    free(ga.p);
    free(gb.p);
    free(fill.p);
    free(b_in.p);
    free(da);
    free(db);
    free(whole_a);
    free(whole_b);
    tsr_kv_table_close(a);
    tsr_kv_table_close(b);
    tsr_kv_close(sa);
    tsr_kv_close(sb);
}

static void test_equal_copies(void **state)
{
    (void)state;
    check_divergence(0);
}

static void test_one_change(void **state)
{
    (void)state;
    check_divergence(1);
}

static void test_some_changes(void **state)
{
    (void)state;
    check_divergence(7);
    check_divergence(60);
}

static void test_never_written_and_bad_counts(void **state)
{
    (void)state;
    uint64_t pairs = 1;
    uint64_t *s = digest(NULL, NRANGES, &pairs);
    assert_int_equal(pairs, 0);
    for (uint32_t i = 0; i < 2 * NRANGES; i++)
        assert_int_equal(s[i], 0);
    free(s);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_kv_err_t ke = {0};
    uint64_t cursor = 0;
    assert_int_equal(tsr_wkv_digest(NULL, 3, &cursor, 100, &b, &ke), TSR_ERR_BAD_INPUT);
    assert_int_equal(tsr_wkv_digest(NULL, 0, &cursor, 100, &b, &ke), TSR_ERR_BAD_INPUT);
    assert_int_equal(tsr_wkv_digest(NULL, TSR_KV_RANGES_MAX * 2, &cursor, 100, &b, &ke),
                     TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&b);
    uint8_t msg[8] = {6, 0, 0, 0, 0xff}; /* 6 ranges: not a power of two */
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, sizeof(msg));
    wkv_ranges_t rs;
    assert_false(tsr_wkv_ranges_read(&r, &rs));
    uint8_t ok[5] = {8, 0, 0, 0, 0x81};
    tsr_rbuf_init(&r, ok, sizeof(ok));
    assert_true(tsr_wkv_ranges_read(&r, &rs));
    assert_int_equal(rs.n, 8);
    assert_true(tsr_rbuf_done(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_copies),
        cmocka_unit_test(test_one_change),
        cmocka_unit_test(test_some_changes),
        cmocka_unit_test(test_never_written_and_bad_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
