/*
 * filter_cpu.c - filtering on the cpu device backend: the sequential model
 * of kernels/opencl/filter.cl. Each word of 64 rows is evaluated by
 * tsr_dev_filter_eval64 (filter.c) and its set bits are appended in order,
 * which is what the kernels' count / prefix sum / scatter passes compute in
 * parallel.
 */
#include "device/filter.h"

static tsr_status_t cpu_fi_create(tsr_dev_filter_t *f, tsr_error_t *err)
{
    return TSR_OK;
}

static void cpu_fi_destroy(tsr_dev_filter_t *f)
{
}

static tsr_status_t cpu_fi_run(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                               const tsr_dev_filter_cols_t *cols, uint32_t *sel, size_t *nsel,
                               tsr_error_t *err)
{
    const uint64_t *vals[TSR_DEV_FILTER_MAX_COLS], *valid[TSR_DEV_FILTER_MAX_COLS];
    for (size_t u = 0; u < f->nused; u++) {
        vals[u] = cols->values[f->used[u]];
        valid[u] = cols->valid[f->used[u]];
    }
    size_t out = 0;
    for (size_t first = 0; first < cols->n; first += 64) {
        uint64_t m = tsr_dev_filter_eval64(f, vals, valid, first, cols->n);
        while (m) {
            sel[out++] = (uint32_t)(first + (size_t)__builtin_ctzll(m));
            m &= m - 1;
        }
    }
    *nsel = out;
    return TSR_OK;
}

/* Device memory of the cpu backend is host memory (the handle is the
 * address): the same evaluation, reading and writing the buffers in place. */
static tsr_status_t cpu_fi_run_dev(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                   const tsr_dev_filter_dcols_t *cols, tsr_dev_buf_t *sel,
                                   size_t *nsel, tsr_error_t *err)
{
    tsr_dev_filter_cols_t host = {.n = cols->n};
    for (size_t u = 0; u < f->nused; u++) {
        size_t c = f->used[u];
        host.values[c] = cols->values[c]->handle;
        host.valid[c] = cols->valid[c] ? cols->valid[c]->handle : NULL;
    }
    return cpu_fi_run(f, q, &host, sel->handle, nsel, err);
}

const tsr_dev_filter_ops_t tsr_dev_filter_cpu_ops = {
    .create = cpu_fi_create,
    .destroy = cpu_fi_destroy,
    .run = cpu_fi_run,
    .run_dev = cpu_fi_run_dev,
};
