/*
 * floor.h - the hand-written floor for the group-by suite, and the checker
 * that compares a Tessera result with it.
 *
 * The floor is what a careful programmer would write by hand for
 *   SELECT k, SUM(v), COUNT(*), AVG(price) FROM t GROUP BY k
 * knowing nothing about the keys (not their range, not their count): T threads
 * each aggregate a contiguous slice of the rows into a private open-addressing
 * hash table (linear probing, keys hashed with tsr_hash_u64 from core/hash.h,
 * the engine's own hash function), then the partial tables are merged. No SQL,
 * no batches, no NULL handling, no overflow checks: the cost of the work itself.
 * Tessera's time divided by this time is the engine's overhead factor.
 */
#ifndef TSR_BENCH_FLOOR_H
#define TSR_BENCH_FLOOR_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/tessera.h"

/* One group's running aggregates. count == 0 marks an empty slot (every
 * inserted group has count >= 1), so no separate occupancy array is needed. */
typedef struct tsr_bench_agg {
    int64_t key;
    int64_t sum;    /* SUM(v), wrapping (the data is small enough never to wrap) */
    int64_t count;  /* COUNT(*) */
    double psum;    /* SUM(price), for AVG(price) = psum / count */
} tsr_bench_agg_t;

typedef struct tsr_bench_aggmap {
    tsr_bench_agg_t *slots; /* cap slots, cap a power of two */
    size_t cap;
    size_t n;               /* occupied slots; kept <= cap / 4 */
} tsr_bench_aggmap_t;

/* Empty map with room for at least hint groups before it grows. 0 or -1 (nomem). */
int tsr_bench_aggmap_init(tsr_bench_aggmap_t *m, size_t hint);
void tsr_bench_aggmap_free(tsr_bench_aggmap_t *m);
/* The group of key, or NULL. */
const tsr_bench_agg_t *tsr_bench_aggmap_find(const tsr_bench_aggmap_t *m, int64_t key);
/* Adds one row to the group of key (creating it). 0 or -1 (nomem). v_valid false:
 * v is NULL (not summed), the row still counts. */
int tsr_bench_aggmap_add(tsr_bench_aggmap_t *m, int64_t key, int64_t v, int v_valid, double price);

/* Runs the floor over n rows with `threads` threads (>= 1) into *out (which it
 * initialises; free with tsr_bench_aggmap_free). 0, or -1 when out of memory. */
int tsr_bench_floor_run(const int64_t *keys, const int64_t *values, const double *prices,
                        size_t n, unsigned threads, tsr_bench_aggmap_t *out);

/* Checks a result with columns (key, SUM, COUNT(*), AVG) against the expected
 * groups: same number of rows, each key once, sums and counts exact, averages
 * within 1e-9 relative (summation order differs). A NULL SUM is accepted where
 * the expected sum is 0 (a group whose values are all NULL). Returns 0, or -1
 * after printing the first difference to stderr. */
int tsr_bench_verify_groupby(const tsr_result_t *res, const tsr_bench_aggmap_t *expect);

#endif /* TSR_BENCH_FLOOR_H */
