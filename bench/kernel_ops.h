/*
 * kernel_ops.h - the hash join, filter and partitioning figures of
 * `tessera-bench kernels` (kernel_ops.c), next to the hash aggregation
 * figures of suite_kernels.c, and the reporting helpers both use.
 */
#ifndef TSR_BENCH_KERNEL_OPS_H
#define TSR_BENCH_KERNEL_OPS_H

#include <stdint.h>

#include "bench.h"
#include "device/device.h"

/* Rows the three families are measured on: min(rows, this). */
#define TSR_BENCH_OPS_MAX_ROWS ((size_t)1 << 26)

/* Measures join (build, probe + pairs), filter and partitioning (P = 64 and
 * 1024) on dev over n rows from host memory, best of `repeat`, each result
 * checked against an independent host model; emits the figures into r
 * (copy_gbps: the device's copy bandwidth, for the fractions). Returns 0 or
 * a bench exit code (a wrong result exits 1 and is not timed). */
int tsr_bench_kernel_ops(tsr_bench_report_t *r, tsr_dev_t *dev, size_t n, unsigned repeat,
                         uint64_t seed, double copy_gbps);

/* Emits one figure (tsr_bench_emit); returns 0 or TSR_BENCH_EXIT_FAIL. */
int tsr_bench_kernel_emit(tsr_bench_report_t *r, const char *name, const char *label, double value,
                          const char *unit);

/* Reports a failed device call `what` (message and hint of err) and returns
 * the exit code for rc (TSR_BENCH_EXIT_FAIL when rc maps to 0). */
int tsr_bench_kernel_fail(const char *what, tsr_status_t rc, const tsr_error_t *err);

#endif /* TSR_BENCH_KERNEL_OPS_H */
