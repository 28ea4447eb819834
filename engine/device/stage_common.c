/*
 * stage_common.c - the backend-independent part of the pinned staging pools
 * (see stage_common.h; cuda_stage.c and opencl_stage.c use it).
 */
#include "device/stage_common.h"

#include <string.h>

tsr_status_t tsr_dev_stage_check(size_t piece, unsigned count, unsigned max, tsr_error_t *err)
{
    if (count > max || (piece && (count < 2 || piece < 64 || piece % 64)))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "staging: %u buffers of %zu bytes (2..%u buffers, a multiple of 64 "
                             "bytes)",
                             count, piece, max);
    return TSR_OK;
}

size_t tsr_dev_stage_next(unsigned *next, unsigned count, size_t piece, size_t left,
                          unsigned *buf)
{
    *buf = *next;
    *next = (*next + 1) % count;
    return left < piece ? left : piece;
}

void tsr_dev_stage_stats_out(uint64_t staged, uint64_t direct, uint64_t *staged_out,
                             uint64_t *direct_out)
{
    if (staged_out)
        *staged_out = staged;
    if (direct_out)
        *direct_out = direct;
}

void tsr_dev_stage_fl_push(tsr_dev_stage_fl_t *fl, unsigned buf, size_t off, size_t len)
{
    unsigned slot = (fl->head + fl->n) % TSR_DEV_STAGE_MAX;
    fl->e[slot].buf = buf;
    fl->e[slot].off = off;
    fl->e[slot].len = len;
    fl->n++;
}

void tsr_dev_stage_fl_pop(tsr_dev_stage_fl_t *fl, unsigned *buf, size_t *off, size_t *len)
{
    *buf = fl->e[fl->head].buf;
    *off = fl->e[fl->head].off;
    *len = fl->e[fl->head].len;
    fl->head = (fl->head + 1) % TSR_DEV_STAGE_MAX;
    fl->n--;
}

unsigned tsr_dev_stage_backoff(unsigned backoff)
{
    return backoff ? (backoff < 4096 ? 2 * backoff : 4096) : 16;
}

/* one thread's memcpy (~10 GB/s) is below what a PCIe 5 DMA takes from
 * pinned memory: large pieces are split, at least this much per thread */
#define ST_SPLIT ((size_t)1 << 20)

typedef struct st_copy {
    char *dst;
    const char *src;
    size_t len, part;
} st_copy_t;

static void st_copy_task(void *arg, size_t i, unsigned worker)
{
    (void)worker;
    const st_copy_t *c = arg;
    size_t off = i * c->part, len = c->len - off < c->part ? c->len - off : c->part;
    memcpy(c->dst + off, c->src + off, len);
}

void tsr_dev_stage_memcpy(tsr_pool_t *copiers, void *dst, const void *src, size_t len)
{
    size_t tasks = len / ST_SPLIT;
    if (!copiers || tasks < 2) {
        memcpy(dst, src, len);
        return;
    }
    unsigned nt = tsr_pool_size(copiers);
    if (tasks > nt)
        tasks = nt;
    st_copy_t c = {dst, src, len, (len / tasks + 63) / 64 * 64};
    tsr_pool_run(copiers, (len + c.part - 1) / c.part, st_copy_task, &c);
}
