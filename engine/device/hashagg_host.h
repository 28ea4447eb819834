/*
 * hashagg_host.h - host logic of hash aggregation shared by the backends
 * that keep the group table in device memory (hashagg_opencl.c,
 * hashagg_cuda*.c): the table's buffers, its allocation at the states'
 * identities, growth with resize-and-retry, and the decoding of the table
 * into results. Private to engine/device/.
 *
 * The table format is the kernels' (kernels/opencl/hashagg.cl,
 * kernels/cuda/hashagg.cuh): slot-indexed struct of arrays, a slot word
 * per slot whose top bit marks an OCC group once an update has finished,
 * the group's keys, key validity (bit k: key column k not NULL), hash and
 * state columns (hashagg.h's layout).
 */
#ifndef TSR_DEVICE_HASHAGG_HOST_H
#define TSR_DEVICE_HASHAGG_HOST_H

#include "device/hashagg.h"

/* Slot numbers are 32-bit in the kernels. */
#define TSR_DEV_HASHAGG_MAX_SLOTS ((size_t)1 << 31)

typedef struct tsr_dev_hashagg_table {
    size_t nslots;         /* power of two */
    tsr_dev_buf_t *slots;  /* uint64[nslots] slot words, 0 empty */
    tsr_dev_buf_t *gkeys;  /* uint64[nkeys * nslots] */
    tsr_dev_buf_t *gvalid; /* uint8[nslots] */
    tsr_dev_buf_t *ghash;  /* uint64[nslots] */
    tsr_dev_buf_t *states; /* int64[ncols * nslots] */
} tsr_dev_hashagg_table_t;

/* An empty table of nslots slots for ha, states at their identities (fills
 * queued on q). On failure nothing is left queued or allocated. */
tsr_status_t tsr_dev_hashagg_table_alloc(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t nslots,
                                         tsr_dev_hashagg_table_t *t, tsr_error_t *err);
/* Frees the buffers (any may be NULL) and clears t. */
void tsr_dev_hashagg_table_free(tsr_dev_hashagg_table_t *t);

/* A backend's rehash: moves every group of from into to (empty) and waits;
 * *failed = groups that found no slot within the probe bound. On failure it
 * leaves nothing queued. */
typedef tsr_status_t (*tsr_dev_hashagg_rehash_fn)(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                                  const tsr_dev_hashagg_table_t *from,
                                                  const tsr_dev_hashagg_table_t *to,
                                                  uint32_t *failed, tsr_error_t *err);

/* Moves every group of *t into a table of at least 2 * need slots (and at
 * least twice as many as now), twice as big again while a group does not
 * fit; TSR_ERR_UNSUPPORTED past TSR_DEV_HASHAGG_MAX_SLOTS. *t is replaced
 * only on success. */
tsr_status_t tsr_dev_hashagg_table_grow(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                        tsr_dev_hashagg_table_t *t, size_t need,
                                        tsr_dev_hashagg_rehash_fn rehash, tsr_error_t *err);

/* Reads table t (after updates: every used slot is an OCC group) into the
 * caller's outputs: ha->ngroups groups in slot order, keys, key validity,
 * hashes when wanted, raw states. backend names the table in errors. */
tsr_status_t tsr_dev_hashagg_table_read(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                        const tsr_dev_hashagg_table_t *t, const char *backend,
                                        const tsr_dev_hashagg_out_t *out,
                                        tsr_dev_hashagg_raw_t *raw, tsr_error_t *err);

#endif /* TSR_DEVICE_HASHAGG_HOST_H */
