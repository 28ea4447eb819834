/*
 * partition.c - the host API of device hash partitioning (partition.h):
 * argument checks, so backends only partition.
 */
#include "device/partition.h"

#include <string.h>

tsr_status_t tsr_dev_partition_create(tsr_dev_t *dev, const tsr_dev_partition_spec_t *spec,
                                      tsr_dev_partition_t **out, tsr_error_t *err)
{
    if (!dev || !spec || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device partitioning: missing argument");
    if (spec->nparts < 1 || spec->nparts > TSR_DEV_PARTITION_MAX_PARTS)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device partitioning: %zu partitions (1 to %zu)", spec->nparts,
                             TSR_DEV_PARTITION_MAX_PARTS);
    if (spec->nkeys < 1 || spec->nkeys > TSR_DEV_PARTITION_MAX_KEYS ||
        (spec->hashed && spec->nkeys != 1))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device partitioning: %zu key columns (1 to %d, 1 with hashes)",
                             spec->nkeys, TSR_DEV_PARTITION_MAX_KEYS);
    const tsr_dev_partition_ops_t *ops = dev->backend->partition;
    if (!ops)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED, "the %s backend has no partitioning kernel",
                             dev->backend->name);
    tsr_dev_partition_t *p = tsr_mem_calloc(dev->mem, 1, sizeof(*p));
    if (!p)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    p->dev = dev;
    p->spec = *spec;
    tsr_status_t rc = ops->create(p, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, p);
        return rc;
    }
    *out = p;
    return TSR_OK;
}

void tsr_dev_partition_destroy(tsr_dev_partition_t *p)
{
    if (!p)
        return;
    p->dev->backend->partition->destroy(p);
    tsr_mem_free(p->dev->mem, p);
}

tsr_status_t tsr_dev_partition_run(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                                   const tsr_dev_partition_in_t *in,
                                   const tsr_dev_partition_out_t *out, tsr_error_t *err)
{
    if (!p || !in || !out || !out->offsets)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device partitioning: missing argument");
    if (!q)
        q = p->dev->queue;
    if (q->dev != p->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device partitioning: the queue belongs to another device");
    if (in->n > TSR_DEV_PARTITION_MAX_ROWS)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "device partitioning: %zu rows (at most %zu per call)", in->n,
                             TSR_DEV_PARTITION_MAX_ROWS);
    if (in->n == 0) {
        memset(out->offsets, 0, (p->spec.nparts + 1) * sizeof(uint64_t));
        return TSR_OK;
    }
    if (!out->rows)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device partitioning: rows output missing");
    for (size_t k = 0; k < p->spec.nkeys; k++)
        if (!in->keys[k])
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device partitioning: key %zu missing",
                                 k);
    return p->dev->backend->partition->run(p, q, in, out, err);
}
