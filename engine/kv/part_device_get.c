/*
 * part_device_get.c - kv batch gets as device kernels (kv_get in
 * kernels/opencl/kv.cl); docs/kv.md "Device batches".
 *
 * The keys are grouped by partition (a counting sort of their positions);
 * a group of at least min_batch keys registers as a reader of its partition
 * (the region is not freed under the kernel), is staged and run through
 * kv_get over the region in place; the values come back into host scratch
 * and go to the caller's positions. A key whose slot the kernel found
 * locked, moved or changed during its copy (RETRY) is read again on the CPU
 * (tsr_kv_part_get_in), as is every key of a group that is too small or
 * whose launch failed (reads are idempotent).
 */
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "part_device.h"

#ifndef TSR_NO_OPENCL

/* One partition's keys (positions idx[0..m) of the caller's arrays) on the
 * device; false: the device failed (nothing written to the caller's arrays
 * yet: read them on the CPU). */
static bool get_group(kv_dev_t *d, kv_part_t *p, size_t m, const size_t *idx, const uint64_t *h,
                      const tsr_kv_pair_t *keys, void *vals, size_t stride, size_t *vlens,
                      tsr_status_t *results, size_t *nok)
{
    tsr_error_t e;
    e.status = TSR_OK;
    size_t kbytes = 0;
    for (size_t i = 0; i < m; i++)
        kbytes += keys[idx[i]].klen;
    uint64_t *meta = tsr_mem_alloc(NULL, m * 16);
    uint64_t *gl = tsr_mem_alloc(NULL, m * 16); /* vlens, then states */
    unsigned char *kb = tsr_mem_alloc(NULL, kbytes + 1);
    unsigned char *gv = stride ? tsr_mem_alloc(NULL, m * stride) : NULL;
    bool ok = false;
    atomic_ulong *cnt = tsr_kv_part_enter(p);
    if (!meta || !gl || !kb || (stride && !gv))
        goto out;
    pthread_mutex_lock(&d->mu);
    kv_tab_t *t = atomic_load(&p->tab);
    cl_mem tm = NULL;
    tsr_status_t rc = tsr_kv_dev_stage_keys(d, m, h, keys, idx, meta, kb, &e);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_ensure(d, &d->gvals, m * stride, &e);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_ensure(d, &d->out, m * 8, &e);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_ensure(d, &d->gst, m * 8, &e);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_tab_mem(d, t, &tm, &e);
    if (rc == TSR_OK) {
        uint64_t mask = t->mask, nn = m, st = stride;
        uint32_t ss = t->slot_size, mk = p->max_key, mv = p->max_val;
        cl_mem mm = tsr_dev_cl_mem(d->meta), km = tsr_dev_cl_mem(d->keys),
               vm = tsr_dev_cl_mem(d->gvals), lm = tsr_dev_cl_mem(d->out),
               sm = tsr_dev_cl_mem(d->gst);
        tsr_cl_arg_t ga[] = {TSR_CL_ARG(tm),    TSR_CL_ARG(mask), TSR_CL_ARG(ss), TSR_CL_ARG(mk),
                             TSR_CL_ARG(mv),    TSR_CL_ARG(nn),   TSR_CL_ARG(mm), TSR_CL_ARG(km),
                             TSR_CL_ARG(vm),    TSR_CL_ARG(st),   TSR_CL_ARG(lm), TSR_CL_ARG(sm),
                             TSR_CL_ARG(d->per)};
        rc = tsr_dev_cl_run(d->dev->queue, d->k_get, d->wg_get, (m + d->per - 1) / d->per, ga,
                            TSR_CL_NARGS(ga), &e);
        /* vlens into gl[0..m), states into gl[m..2m) */
        if (rc == TSR_OK)
            rc = tsr_kv_dev_download(d, d->out, gl, m * 8, &e);
        if (rc == TSR_OK)
            rc = tsr_kv_dev_download(d, d->gst, gl + m, m * 8, &e);
        if (rc == TSR_OK)
            rc = tsr_kv_dev_download(d, d->gvals, gv, m * stride, &e);
        tsr_status_t rr = tsr_kv_dev_tab_release(d, tm, t->bytes, &e);
        if (rc == TSR_OK)
            rc = rr;
    }
    if (rc != TSR_OK) {
        d->st.fallbacks++;
        snprintf(d->st.note, sizeof(d->st.note), "CPU fallback (get): %s", e.message);
        pthread_mutex_unlock(&d->mu);
        goto out;
    }
    size_t retries = 0;
    for (size_t i = 0; i < m; i++) {
        size_t k = idx[i];
        uint64_t s = gl[m + i];
        tsr_status_t r;
        if (s == 2) { /* RETRY: the slot was mid-write; read it on the CPU */
            retries++;
            unsigned char *dst = stride ? (unsigned char *)vals + k * stride : NULL;
            r = tsr_kv_part_get_in(p, h[k], keys[k].key, (uint32_t)keys[k].klen, dst, stride,
                                   &vlens[k]);
            if (r != TSR_OK)
                vlens[k] = 0;
        } else if (s == 0) {
            r = TSR_OK;
            vlens[k] = (size_t)gl[i];
            size_t c = gl[i] < stride ? (size_t)gl[i] : stride;
            if (c)
                memcpy((unsigned char *)vals + k * stride, gv + i * stride, c);
        } else {
            r = TSR_ERR_NOT_FOUND;
            vlens[k] = 0;
        }
        *nok += r == TSR_OK;
        if (results)
            results[k] = r;
    }
    d->st.get_pairs += m;
    d->st.get_retries += retries;
    pthread_mutex_unlock(&d->mu);
    ok = true;
out:
    tsr_kv_part_leave(cnt);
    tsr_mem_free(NULL, meta);
    tsr_mem_free(NULL, gl);
    tsr_mem_free(NULL, kb);
    tsr_mem_free(NULL, gv);
    return ok;
}

static void cpu_get(kv_part_t *p, size_t k, uint64_t h, const tsr_kv_pair_t *keys, void *vals,
                    size_t stride, size_t *vlens, tsr_status_t *results, size_t *nok)
{
    unsigned char *dst = stride ? (unsigned char *)vals + k * stride : NULL;
    tsr_status_t r =
        tsr_kv_part_get(p, h, keys[k].key, (uint32_t)keys[k].klen, dst, stride, &vlens[k]);
    if (r != TSR_OK)
        vlens[k] = 0;
    *nok += r == TSR_OK;
    if (results)
        results[k] = r;
}

void tsr_kv_dev_get_batch(kv_dev_t *d, tsr_kv_table_t *t, const tsr_kv_pair_t *keys, size_t n,
                          void *vals, size_t stride, size_t *vlens, tsr_status_t *results,
                          size_t *nok)
{
    *nok = 0;
    uint64_t *h = tsr_mem_alloc(NULL, n * sizeof(*h));
    size_t *idx = tsr_mem_alloc(NULL, n * sizeof(*idx));
    size_t *start = tsr_mem_calloc(NULL, (size_t)t->nparts + 1, sizeof(*start));
    bool grouped = h && idx && start;
    if (h)
        for (size_t i = 0; i < n; i++)
            h[i] = tsr_hash_bytes(keys[i].key, keys[i].klen);
    if (!grouped || (stride && n > KVD_BYTES / stride)) {
        for (size_t i = 0; i < n; i++) {
            uint64_t hi = h ? h[i] : tsr_hash_bytes(keys[i].key, keys[i].klen);
            cpu_get(&t->parts[kv_part_of(hi, t->nparts)], i, hi, keys, vals, stride, vlens, results,
                    nok);
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        start[kv_part_of(h[i], t->nparts) + 1]++;
    for (uint32_t q = 0; q < t->nparts; q++)
        start[q + 1] += start[q];
    for (size_t i = 0; i < n; i++)
        idx[start[kv_part_of(h[i], t->nparts)]++] = i;
    /* start[q] is now the end of group q */
    size_t b = 0;
    for (uint32_t q = 0; q < t->nparts; q++) {
        size_t end = start[q], m = end - b;
        kv_part_t *p = &t->parts[q];
        if (m == 0 || m < d->min_batch ||
            !get_group(d, p, m, idx + b, h, keys, vals, stride, vlens, results, nok))
            for (size_t i = b; i < end; i++)
                cpu_get(p, idx[i], h[idx[i]], keys, vals, stride, vlens, results, nok);
        b = end;
    }
out:
    tsr_mem_free(NULL, h);
    tsr_mem_free(NULL, idx);
    tsr_mem_free(NULL, start);
}

#else /* TSR_NO_OPENCL */

void tsr_kv_dev_get_batch(kv_dev_t *d, tsr_kv_table_t *t, const tsr_kv_pair_t *keys, size_t n,
                          void *vals, size_t stride, size_t *vlens, tsr_status_t *results,
                          size_t *nok)
{
    (void)d;
    (void)t;
    (void)keys;
    (void)n;
    (void)vals;
    (void)stride;
    (void)vlens;
    (void)results;
    *nok = 0;
}

#endif
