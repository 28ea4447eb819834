/*
 * hashagg_host.c - the group-table host logic that the OpenCL and CUDA hash
 * aggregations share (hashagg_host.h): allocation, growth with
 * resize-and-retry, and decoding into results. Only the tsr_dev_* wrappers
 * are used, so it is backend-neutral; the backends keep their kernels,
 * launches and transfers.
 *
 * Growth terminates: each try at least doubles the table and the size is
 * capped (TSR_DEV_HASHAGG_MAX_SLOTS), so a table that cannot take its groups
 * ends in TSR_ERR_UNSUPPORTED (or TSR_ERR_NOMEM from the device), never in
 * a loop or a silent drop.
 */
#include <string.h>

#include "device/hashagg_host.h"

void tsr_dev_hashagg_table_free(tsr_dev_hashagg_table_t *t)
{
    tsr_dev_buf_free(t->slots);
    tsr_dev_buf_free(t->gkeys);
    tsr_dev_buf_free(t->gvalid);
    tsr_dev_buf_free(t->ghash);
    tsr_dev_buf_free(t->states);
    memset(t, 0, sizeof(*t));
}

tsr_status_t tsr_dev_hashagg_table_alloc(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t nslots,
                                         tsr_dev_hashagg_table_t *t, tsr_error_t *err)
{
    tsr_dev_t *dev = ha->dev;
    size_t nkeys = ha->spec.nkeys, ncols = ha->layout.ncols;
    memset(t, 0, sizeof(*t));
    t->nslots = nslots;
    tsr_status_t rc;
    uint64_t zero = 0;
    if ((rc = tsr_dev_buf_alloc(dev, nslots * 8, &t->slots, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, nkeys * nslots * 8, &t->gkeys, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, nslots, &t->gvalid, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, nslots * 8, &t->ghash, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, ncols * nslots * 8, &t->states, err)) != TSR_OK ||
        (rc = tsr_dev_fill(q, t->slots, 0, &zero, 8, nslots * 8, NULL, err)) != TSR_OK)
        goto err_free;
    for (size_t c = 0; c < ncols; c++)
        if ((rc = tsr_dev_fill(q, t->states, c * nslots * 8, &ha->layout.identity[c], 8, nslots * 8,
                               NULL, err)) != TSR_OK)
            goto err_free;
    return TSR_OK;

err_free:;
    tsr_error_t ignored; /* the first error is the one reported */
    tsr_error_clear(&ignored);
    (void)tsr_dev_queue_finish(q, &ignored);
    tsr_dev_hashagg_table_free(t);
    return rc;
}

tsr_status_t tsr_dev_hashagg_table_grow(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                        tsr_dev_hashagg_table_t *t, size_t need,
                                        tsr_dev_hashagg_rehash_fn rehash, tsr_error_t *err)
{
    size_t n = t->nslots * 2;
    while (n < 2 * need && n <= TSR_DEV_HASHAGG_MAX_SLOTS)
        n *= 2;
    for (;; n *= 2) {
        if (n > TSR_DEV_HASHAGG_MAX_SLOTS)
            return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                 "too many groups for the device table of %s (more than %zu)",
                                 ha->dev->info.name, TSR_DEV_HASHAGG_MAX_SLOTS / 2);
        tsr_dev_hashagg_table_t nt;
        tsr_status_t rc = tsr_dev_hashagg_table_alloc(ha, q, n, &nt, err);
        if (rc != TSR_OK)
            return rc;
        uint32_t failed = 0;
        if ((rc = rehash(ha, q, t, &nt, &failed, err)) != TSR_OK) {
            tsr_dev_hashagg_table_free(&nt);
            return rc;
        }
        if (failed == 0) {
            tsr_dev_hashagg_table_free(t);
            *t = nt;
            return TSR_OK;
        }
        tsr_dev_hashagg_table_free(&nt); /* a probe run too long: try a table twice as big */
    }
}

tsr_status_t tsr_dev_hashagg_table_read(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                        const tsr_dev_hashagg_table_t *t, const char *backend,
                                        const tsr_dev_hashagg_out_t *out,
                                        tsr_dev_hashagg_raw_t *raw, tsr_error_t *err)
{
    tsr_mem_t *mem = ha->dev->mem;
    size_t ns = t->nslots, ng = ha->ngroups, nkeys = ha->spec.nkeys;
    uint64_t *col = tsr_mem_alloc(mem, ns * 8);
    uint8_t *gvalid = tsr_mem_alloc(mem, ns);
    uint32_t *idx = tsr_mem_alloc(mem, ng * sizeof(uint32_t));
    tsr_status_t rc = TSR_OK;
    if (!col || !gvalid || !idx) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading %zu groups", ng);
        goto cleanup;
    }
    /* Which slots hold groups: slot words of OCC groups have the top bit set
     * (no ROWREF survives an update). */
    if ((rc = tsr_dev_read(q, t->slots, 0, col, ns * 8, true, NULL, err)) != TSR_OK ||
        (rc = tsr_dev_read(q, t->gvalid, 0, gvalid, ns, true, NULL, err)) != TSR_OK)
        goto cleanup;
    size_t g = 0;
    for (size_t s = 0; s < ns; s++) {
        if (!(col[s] >> 63))
            continue;
        if (g < ng)
            idx[g] = (uint32_t)s;
        g++;
    }
    if (g != ng) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL,
                           "%s aggregation table of %s holds %zu groups, "
                           "not %zu",
                           backend, ha->dev->info.name, g, ng);
        goto cleanup;
    }
    size_t words = (ng + 63) / 64;
    for (size_t k = 0; k < nkeys; k++) {
        if ((rc = tsr_dev_read(q, t->gkeys, k * ns * 8, col, ns * 8, true, NULL, err)) != TSR_OK)
            goto cleanup;
        memset(out->key_valid[k], 0, words * 8);
        for (g = 0; g < ng; g++) {
            out->keys[k][g] = col[idx[g]];
            if ((gvalid[idx[g]] >> k) & 1u)
                out->key_valid[k][g >> 6] |= (uint64_t)1 << (g & 63);
        }
    }
    if (out->hashes) {
        if ((rc = tsr_dev_read(q, t->ghash, 0, col, ns * 8, true, NULL, err)) != TSR_OK)
            goto cleanup;
        for (g = 0; g < ng; g++)
            out->hashes[g] = col[idx[g]];
    }
    for (size_t c = 0; c < ha->layout.ncols; c++) {
        if ((rc = tsr_dev_read(q, t->states, c * ns * 8, col, ns * 8, true, NULL, err)) != TSR_OK)
            goto cleanup;
        for (g = 0; g < ng; g++)
            raw->state[c][g] = (int64_t)col[idx[g]];
    }

cleanup:
    tsr_mem_free(mem, col);
    tsr_mem_free(mem, gvalid);
    tsr_mem_free(mem, idx);
    return rc;
}
