/*
 * test_transport_shm.c - the shared-memory FIFO guard (transport/shm_guard.c)
 * on fake FIFOs laid out as UCX 1.13's (white-box: no UCX worker involved).
 *
 * Model: a FIFO is a control block (head at 0, tail at 128) and `size`
 * elements of `esize` bytes whose first byte is the flags (bit 0 owner, bit
 * 1 inline); element i is published when its owner bit equals bit
 * log2(size) of i. The tests write FIFOs in every state a live or dead
 * sender can leave them in and check, against that rule computed here,
 * which element the guard publishes, when (not before it has stayed
 * unwritten for 1 s, judged by the times passed in), and how (inline, AM id
 * 0, length 0, the right owner bit); and that it never touches a FIFO with
 * nothing unwritten, a torn head/tail pair, or an element a live sender
 * finishes in time. Random FIFO states are checked against the same rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

#define CTL 192u
#define MS 1000000ll

typedef struct fake {
    uint8_t *mem;
    unsigned size, esize;
    tsr_transport_t t;
} fake_t;

static void fake_init(fake_t *f, unsigned size, unsigned esize)
{
    memset(f, 0, sizeof(*f));
    f->size = size;
    f->esize = esize;
    f->mem = calloc(1, CTL + (size_t)size * esize);
    assert_non_null(f->mem);
    /* UCX starts every element "not yet written in lap 0": owner bit 1. */
    for (unsigned i = 0; i < size; i++)
        f->mem[CTL + (size_t)i * esize] = 0x1;
    f->t.shm.n = 1;
    f->t.shm.fifo[0].ctl = f->mem;
    f->t.shm.fifo[0].size = size;
    f->t.shm.fifo[0].elem_size = esize;
    f->t.shm.fifo[0].stale_index = UINT64_MAX;
}

static void fake_free(fake_t *f)
{
    free(f->mem);
}

static uint8_t *elem(fake_t *f, uint64_t i)
{
    return f->mem + CTL + (size_t)(i & (f->size - 1)) * f->esize;
}

static uint8_t lap_bit(const fake_t *f, uint64_t i)
{
    return (i & f->size) ? 1 : 0;
}

static void set_ht(fake_t *f, uint64_t head, uint64_t tail)
{
    memcpy(f->mem, &head, 8);
    memcpy(f->mem + 128, &tail, 8);
}

/* A sender's complete write of element i (am id 5, 3 bytes inline). */
static void publish(fake_t *f, uint64_t i)
{
    uint8_t *e = elem(f, i);
    e[1] = 5;
    e[2] = 3;
    e[3] = 0;
    e[0] = (uint8_t)(0x2 | lap_bit(f, i));
}

/* Elements [from, to) published, as consumed-or-pending ones are. */
static void publish_range(fake_t *f, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        publish(f, i);
}

static bool is_published(fake_t *f, uint64_t i)
{
    return (elem(f, i)[0] & 1) == lap_bit(f, i);
}

/* Calls the guard at time now (ns); its 50 ms rate limit is passed by
 * stepping time forward in the tests. */
static unsigned check_at(fake_t *f, int64_t now)
{
    return tsr__shm_guard_check_locked(&f->t, now);
}

static void test_nothing_unwritten(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 64, 128);
    set_ht(&f, 0, 0); /* empty */
    for (int64_t t = 0; t < 5000; t += 60)
        assert_int_equal(check_at(&f, t * MS), 0);
    publish_range(&f, 0, 40);
    set_ht(&f, 40, 8); /* published, partly consumed */
    for (int64_t t = 5000; t < 10000; t += 60)
        assert_int_equal(check_at(&f, t * MS), 0);
    for (uint64_t i = 0; i < 40; i++)
        assert_int_equal(elem(&f, i)[1], 5); /* untouched */
    assert_int_equal(f.t.stats.shm_repairs, 0);
    fake_free(&f);
}

static void test_dead_sender_repaired_after_1s(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 64, 128);
    /* Lap 1 (indices 64..127): the element at 70 is claimed, never written;
     * 71..72 were written by other senders after it. */
    publish_range(&f, 0, 70);
    publish_range(&f, 71, 73);
    set_ht(&f, 73 | (1ull << 63), 64); /* the armed bit must be ignored */
    assert_false(is_published(&f, 70));
    int64_t t0 = 1000 * MS;
    assert_int_equal(check_at(&f, t0), 0); /* first sight */
    for (int64_t t = t0 + 60 * MS; t < t0 + 1000 * MS; t += 60 * MS)
        assert_int_equal(check_at(&f, t), 0); /* not before 1 s */
    assert_false(is_published(&f, 70));
    assert_int_equal(check_at(&f, t0 + 1010 * MS), 1);
    uint8_t *e = elem(&f, 70);
    assert_true(is_published(&f, 70));
    assert_int_equal(e[0], 0x2 | lap_bit(&f, 70)); /* inline + owner bit of lap 1 */
    assert_int_equal(e[1], 0);                     /* AM id 0 */
    assert_int_equal(e[2] | e[3] << 8, 0);         /* length 0 */
    assert_int_equal(f.t.stats.shm_repairs, 1);
    /* Its neighbours were left alone, and nothing more is repaired. */
    assert_int_equal(elem(&f, 71)[1], 5);
    assert_int_equal(elem(&f, 69)[1], 5);
    for (int64_t t = t0 + 1100 * MS; t < t0 + 4000 * MS; t += 60 * MS)
        assert_int_equal(check_at(&f, t), 0);
    fake_free(&f);
}

static void test_live_sender_left_alone(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 64, 128);
    publish_range(&f, 0, 10);
    set_ht(&f, 12, 0); /* 10 and 11 claimed, being written */
    int64_t t = 0;
    assert_int_equal(check_at(&f, t), 0);
    publish(&f, 10); /* done within 0.9 s: 11 is the first unwritten now */
    t += 900 * MS;
    assert_int_equal(check_at(&f, t), 0);
    t += 900 * MS; /* 1.8 s after 10 was first seen, 0.9 s after 11 */
    assert_int_equal(check_at(&f, t), 0);
    publish(&f, 11);
    t += 900 * MS;
    assert_int_equal(check_at(&f, t), 0);
    t += 5000 * MS;
    assert_int_equal(check_at(&f, t), 0);
    assert_int_equal(elem(&f, 10)[1], 5);
    assert_int_equal(elem(&f, 11)[1], 5);
    assert_int_equal(f.t.stats.shm_repairs, 0);
    fake_free(&f);
}

static void test_torn_and_rate_limit(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 64, 128);
    /* head - tail > size cannot be a real state (a torn read): ignored. */
    set_ht(&f, 200, 100);
    for (int64_t t = 0; t < 3000; t += 60)
        assert_int_equal(check_at(&f, t * MS), 0);
    /* Calls closer than 50 ms to the previous look do not look at all. */
    fake_free(&f);
    fake_init(&f, 64, 128);
    set_ht(&f, 1, 0); /* element 0 claimed, unwritten */
    assert_int_equal(check_at(&f, 0), 0);
    assert_int_equal(check_at(&f, 1001 * MS), 1);
    fake_free(&f);
    fake_init(&f, 64, 128);
    set_ht(&f, 1, 0);
    assert_int_equal(check_at(&f, 10 * MS), 0);
    assert_int_equal(check_at(&f, 1009 * MS), 0); /* 0.999 s after first sight */
    assert_int_equal(check_at(&f, 1040 * MS), 0); /* inside the 50 ms limit */
    assert_int_equal(check_at(&f, 1060 * MS), 1);
    fake_free(&f);
}

/* Random FIFO states: sizes 2..256, element sizes 64/128, any lap; a random
 * prefix written, maybe one unwritten element, more written after it. The
 * guard repairs exactly the first unwritten element between tail and head,
 * only once it has been unwritten for 1 s, and nothing else changes. */
static void test_random_states(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 2000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned size = 2u << (x % 8);
        unsigned esize = (x >> 8) & 1 ? 128 : 64;
        fake_t f;
        fake_init(&f, size, esize);
        uint64_t tail = (x >> 16) % 5000;
        uint64_t used = (x >> 32) % (size + 1); /* head - tail */
        uint64_t head = tail + used;
        /* Lay down the laps before tail as a real FIFO would have them. */
        uint64_t from = tail > size ? tail - size : 0;
        publish_range(&f, from, head);
        bool hole = used > 0 && ((x >> 48) & 3) != 0;
        uint64_t hole_at = hole ? tail + (x >> 50) % used : 0;
        if (hole) /* the element as the previous lap left it: unwritten now */
            elem(&f, hole_at)[0] = (uint8_t)(0x2 | (lap_bit(&f, hole_at) ^ 1));
        uint8_t before[256 * 128];
        size_t bytes = (size_t)size * esize;
        memcpy(before, f.mem + CTL, bytes);
        set_ht(&f, head, tail);
        int64_t t = (int64_t)(x % 1000) * MS;
        assert_int_equal(check_at(&f, t), 0);
        assert_int_equal(check_at(&f, t + 999 * MS), 0);
        unsigned r = check_at(&f, t + 1060 * MS); /* past the 50 ms rate limit */
        assert_int_equal(r, hole ? 1 : 0);
        if (hole) {
            assert_true(is_published(&f, hole_at));
            assert_int_equal(elem(&f, hole_at)[1], 0);
            /* restore the repaired element to compare the rest */
            memcpy(elem(&f, hole_at), before + (size_t)(hole_at & (size - 1)) * esize, 4);
        }
        assert_memory_equal(before, f.mem + CTL, bytes);
        fake_free(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_unwritten),
        cmocka_unit_test(test_dead_sender_repaired_after_1s),
        cmocka_unit_test(test_live_sender_left_alone),
        cmocka_unit_test(test_torn_and_rate_limit),
        cmocka_unit_test(test_random_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
