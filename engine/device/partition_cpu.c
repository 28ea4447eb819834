/*
 * partition_cpu.c - hash partitioning on the cpu device backend: the
 * sequential model of kernels/opencl/partition.cl's three passes over one
 * run of rows:
 *
 *   histogram   count the rows of each partition
 *   prefix sum  -> each partition's first output position (out->offsets)
 *   scatter     walk the rows in order, each to the next place of its
 *               partition (so partitions keep input order)
 *
 * The hash is recomputed in the scatter rather than stored: a few
 * multiplications per key are cheaper than writing and reading 4 bytes a row.
 */
#include "device/partition.h"

static tsr_status_t cpu_pa_create(tsr_dev_partition_t *p, tsr_error_t *err)
{
    return TSR_OK;
}

static void cpu_pa_destroy(tsr_dev_partition_t *p)
{
}

static tsr_status_t cpu_pa_run(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                               const tsr_dev_partition_in_t *in, const tsr_dev_partition_out_t *out,
                               tsr_error_t *err)
{
    const tsr_dev_partition_spec_t *spec = &p->spec;
    size_t np = spec->nparts, n = in->n;
    uint64_t *cursor = tsr_mem_calloc(p->dev->mem, np, sizeof(uint64_t));
    if (!cursor)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for %zu partitions", np);
    for (size_t i = 0; i < n; i++)
        cursor[tsr_dev_partition_of(tsr_dev_partition_hash(spec, in, i), np)]++;
    uint64_t acc = 0;
    for (size_t k = 0; k < np; k++) {
        out->offsets[k] = acc;
        acc += cursor[k];
        cursor[k] = out->offsets[k];
    }
    out->offsets[np] = acc;
    for (size_t i = 0; i < n; i++) {
        uint64_t at = cursor[tsr_dev_partition_of(tsr_dev_partition_hash(spec, in, i), np)]++;
        out->rows[at] = (uint32_t)i;
        for (size_t k = 0; k < spec->nkeys; k++)
            if (out->keys[k])
                out->keys[k][at] = in->keys[k][i];
    }
    tsr_mem_free(p->dev->mem, cursor);
    return TSR_OK;
}

const tsr_dev_partition_ops_t tsr_dev_partition_cpu_ops = {
    .create = cpu_pa_create,
    .destroy = cpu_pa_destroy,
    .run = cpu_pa_run,
};
