/*
 * part_device.c - kv batches as device kernels (kernels/opencl/kv.cl) with
 * the results, log records and final contents of the CPU path (part.c);
 * docs/kv.md "Device batches".
 *
 * The partition's region is used in place: a cl_mem made with
 * CL_MEM_USE_HOST_PTR over it for each launch (PoCL runs kernels on that very
 * memory, 64-byte aligned regions included; devices without unified host
 * memory are refused at open, since a driver copy written back at unmap
 * could overwrite a transaction's concurrent apply). The batch's keys and
 * values are staged into device buffers (grown, kept per store).
 *
 * Writes, under the partition mutex (so the table cannot change but for
 * locked transaction slots, which writes refuse with CONFLICT as on the CPU):
 *   1. grow first if the batch's pairs could pass the load limit (as the CPU
 *      path does), so slots found below stay valid;
 *   2. kv_probe: every key's slot or absent;
 *   3. the host walks the pairs in batch order with a map of the distinct
 *      keys: insert -> EXISTS when present (in the table or inserted earlier
 *      in the batch), update/delete -> NOT_FOUND when absent, CONFLICT when
 *      the slot is locked by a transaction; each success is logged (the log
 *      callback, in batch order, exactly the CPU's records) before it counts;
 *      a key's last effect wins;
 *   4. kv_apply, one work-item per distinct key with an effect: it locks
 *      its slot (version odd) by compare-and-swap (the key's slot, or for a
 *      new key the first EMPTY/TOMBSTONE slot of its probe sequence it wins),
 *      writes the body, computes the check word (XXH3 seeded by the new
 *      version: the kernel's port equals tsr_kv_slot_check) and publishes
 *      version + 2 (a new key's slot first jumps to a floor taken from the
 *      store's version clock once per launch, as part.c does per key);
 *   5. the host adjusts used/tombs from the states the items replaced.
 * So the host touches no slot: its work is hashing, staging, the map and
 * the log. No reader accepts a slot mid-write: it is odd from the lock to
 * the publish (local and device readers wait or retry, remote readers see
 * an odd version or a check word that does not match).
 * Batches are cut into launches of at most KVD_CHUNK pairs / KVD_BYTES
 * staged bytes, all under the one hold of the mutex; a device failure before
 * a launch changed anything runs the rest on the CPU (counted in fallbacks).
 *
 * Gets: part_device_get.c. Shared state and staging helpers: part_device.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "part_device.h"

#ifndef TSR_NO_OPENCL

static size_t env_min_batch(uint32_t min_batch)
{
    const char *e = getenv("TSR_KV_DEVICE_MIN_BATCH");
    if (e && *e) {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (*end == '\0')
            return v ? (size_t)v : 1;
    }
    return min_batch ? min_batch : KVD_DEFAULT_MIN;
}

/* "opencl0" -> "opencl:0" (the worker's spelling -> the device layer's) */
static void norm_spec(const char *spec, char *out, size_t cap)
{
    size_t n = strlen(spec), i = n;
    while (i > 0 && spec[i - 1] >= '0' && spec[i - 1] <= '9')
        i--;
    if (i < n && i > 0 && spec[i - 1] != ':')
        snprintf(out, cap, "%.*s:%s", (int)i, spec, spec + i);
    else
        snprintf(out, cap, "%s", spec);
}

tsr_status_t tsr_kv_dev_open(const char *spec, uint32_t min_batch, kv_dev_t **out, tsr_error_t *err)
{
    char s[64];
    norm_spec(spec, s, sizeof(s));
    if (strncmp(s, "opencl", 6) != 0 || (s[6] != '\0' && s[6] != ':'))
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "kv: device batches run on OpenCL devices only, not '%s'", spec);
    kv_dev_t *d = tsr_mem_calloc(NULL, 1, sizeof(*d));
    if (!d)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    tsr_status_t rc = tsr_dev_open_spec(NULL, s, &d->dev, err);
    if (rc != TSR_OK)
        goto err_free;
    pthread_mutex_init(&d->mu, NULL);
    d->min_batch = env_min_batch(min_batch);
    d->st.min_batch = d->min_batch;
    snprintf(d->st.device, sizeof(d->st.device), "%s", d->dev->info.name);
    tsr_cl_dev_t *cl = tsr_dev_cl(d->dev);
    cl_bool unified = CL_FALSE;
    clGetDeviceInfo(cl->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof(unified), &unified, NULL);
    if (!cl->int64_atomics || !unified) {
        snprintf(d->st.note, sizeof(d->st.note), "%s lacks %s: kv batches run on the CPU",
                 d->dev->info.name,
                 !cl->int64_atomics ? "64-bit atomics" : "unified host memory (in-place tables)");
        *out = d;
        return TSR_OK;
    }
    if ((rc = tsr_dev_cl_kernel_create(d->dev, TSR_CL_PROG_KV, "kv_probe", &d->k_probe,
                                       &d->wg_probe, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(d->dev, TSR_CL_PROG_KV, "kv_apply", &d->k_apply,
                                       &d->wg_apply, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(d->dev, TSR_CL_PROG_KV, "kv_get", &d->k_get, &d->wg_get,
                                       err)) != TSR_OK) {
        tsr_kv_dev_close(d);
        return rc;
    }
    d->per = d->dev->info.is_gpu ? 1 : 16;
    d->active = true;
    d->st.active = true;
    *out = d;
    return TSR_OK;

err_free:
    tsr_mem_free(NULL, d);
    return rc;
}

void tsr_kv_dev_close(kv_dev_t *d)
{
    if (!d)
        return;
    tsr_dev_buf_free(d->meta);
    tsr_dev_buf_free(d->keys);
    tsr_dev_buf_free(d->vals);
    tsr_dev_buf_free(d->out);
    tsr_dev_buf_free(d->gvals);
    tsr_dev_buf_free(d->gst);
    tsr_dev_cl_kernel_release(d->k_probe);
    tsr_dev_cl_kernel_release(d->k_apply);
    tsr_dev_cl_kernel_release(d->k_get);
    tsr_dev_close(d->dev);
    pthread_mutex_destroy(&d->mu);
    tsr_mem_free(NULL, d);
}

size_t tsr_kv_dev_min_batch(const kv_dev_t *d)
{
    return d && d->active ? d->min_batch : SIZE_MAX;
}

void tsr_kv_dev_stats(kv_dev_t *d, tsr_kv_device_stats_t *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    pthread_mutex_unlock(&d->mu);
}

/* A device buffer of at least bytes (grown by doubling, contents lost). */
tsr_status_t tsr_kv_dev_ensure(kv_dev_t *d, tsr_dev_buf_t **b, size_t bytes, tsr_error_t *err)
{
    if (bytes < 64)
        bytes = 64;
    if (*b && (*b)->size >= bytes)
        return TSR_OK;
    size_t want = *b ? (*b)->size * 2 : 0;
    if (want < bytes)
        want = bytes;
    tsr_dev_buf_free(*b);
    *b = NULL;
    return tsr_dev_buf_alloc(d->dev, want, b, err);
}

tsr_status_t tsr_kv_dev_upload(kv_dev_t *d, tsr_dev_buf_t *b, const void *src, size_t bytes,
                               tsr_error_t *err)
{
    return bytes ? tsr_dev_write(d->dev->queue, b, 0, src, bytes, true, NULL, err) : TSR_OK;
}

tsr_status_t tsr_kv_dev_download(kv_dev_t *d, tsr_dev_buf_t *b, void *dst, size_t bytes,
                                 tsr_error_t *err)
{
    return bytes ? tsr_dev_read(d->dev->queue, b, 0, dst, bytes, true, NULL, err) : TSR_OK;
}

/* The region as a buffer, in place. */
tsr_status_t tsr_kv_dev_tab_mem(kv_dev_t *d, const kv_tab_t *t, cl_mem *m, tsr_error_t *err)
{
    cl_int code = CL_SUCCESS;
    *m = clCreateBuffer(tsr_dev_cl(d->dev)->context, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR,
                        t->bytes, t->base, &code);
    return code == CL_SUCCESS ? TSR_OK : tsr_dev_cl_fail(err, d->dev, code, "clCreateBuffer");
}

/* Makes what kernels wrote visible in the host region (a map and unmap: no
 * copy on unified memory), then drops the buffer. */
tsr_status_t tsr_kv_dev_tab_release(kv_dev_t *d, cl_mem m, size_t bytes, tsr_error_t *err)
{
    cl_command_queue q = tsr_dev_cl_queue(d->dev->queue);
    cl_int code = CL_SUCCESS;
    void *p = clEnqueueMapBuffer(q, m, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL, NULL,
                                 &code);
    if (code == CL_SUCCESS)
        code = clEnqueueUnmapMemObject(q, m, p, 0, NULL, NULL);
    if (code == CL_SUCCESS)
        code = clFinish(q);
    clReleaseMemObject(m);
    return code == CL_SUCCESS ? TSR_OK : tsr_dev_cl_fail(err, d->dev, code, "clEnqueueMapBuffer");
}

/* Stages pairs[0..n) keys: meta (hash, offset | len << 32) and bytes. */
tsr_status_t tsr_kv_dev_stage_keys(kv_dev_t *d, size_t n, const uint64_t *h,
                                   const tsr_kv_pair_t *pairs, const size_t *idx, uint64_t *meta,
                                   unsigned char *kb, tsr_error_t *err)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = idx ? idx[i] : i;
        meta[2 * i] = h[k];
        meta[2 * i + 1] = (uint64_t)off | (uint64_t)pairs[k].klen << 32;
        if (pairs[k].klen)
            memcpy(kb + off, pairs[k].key, pairs[k].klen);
        off += pairs[k].klen;
    }
    tsr_status_t rc;
    if ((rc = tsr_kv_dev_ensure(d, &d->meta, n * 16, err)) != TSR_OK ||
        (rc = tsr_kv_dev_ensure(d, &d->keys, off, err)) != TSR_OK ||
        (rc = tsr_kv_dev_upload(d, d->meta, meta, n * 16, err)) != TSR_OK ||
        (rc = tsr_kv_dev_upload(d, d->keys, kb, off, err)) != TSR_OK)
        return rc;
    return TSR_OK;
}

/* ---- writes ------------------------------------------------------------------------------ */

enum { EFF_NONE = 0, EFF_PUT = 1, EFF_DEL = 2 };

typedef struct kvd_key {
    uint64_t slot;  /* in the table before the batch, or KVD_ABSENT */
    size_t first;   /* the pair that names the key */
    size_t last;    /* the pair whose value is written (EFF_PUT) */
    uint8_t effect; /* EFF_* */
    bool present;   /* after the pairs walked so far */
    bool locked;    /* a transaction holds the slot */
} kvd_key_t;

/* The scratch of one launch: keys staged, the map of distinct keys, the
 * apply items. All sized for the chunk. */
typedef struct kvd_scratch {
    uint64_t *meta, *slot, *items, *out;
    unsigned char *kb, *vb;
    kvd_key_t *ks;
    uint32_t *map;
    size_t mapmask;
} kvd_scratch_t;

static bool same_key(const tsr_kv_pair_t *a, const tsr_kv_pair_t *b)
{
    return a->klen == b->klen && (a->klen == 0 || memcmp(a->key, b->key, a->klen) == 0);
}

/* Applies item j on the host (the kernel's work, for a launch that could not
 * be queued after existing slots were locked). */
static uint64_t host_apply(const kv_part_t *p, const kv_tab_t *t, const uint64_t *a,
                           const unsigned char *kb, const unsigned char *vb, uint64_t floor)
{
    uint64_t h = a[0], pos = a[3];
    uint32_t koff = (uint32_t)a[1], klen = (uint32_t)(a[1] >> 32);
    bool del = (a[2] & KVD_DEL_BIT) != 0;
    uint32_t voff = (uint32_t)a[2], vlen = (uint32_t)((a[2] & ~KVD_DEL_BIT) >> 32);
    uint32_t prev = KV_FULL;
    bool is_new = pos == KVD_ABSENT;
    uint64_t v;
    if (is_new) {
        pos = h & t->mask;
        for (uint64_t k = 0;; k++, pos = (pos + 1) & t->mask) {
            if (k == t->nslots)
                return KVD_ABSENT;
            kv_slot_t *s = kv_slot_at(t, pos);
            v = atomic_load(&s->ver);
            if (s->state != KV_FULL && !(v & KV_VER_LOCKED) &&
                atomic_compare_exchange_strong(&s->ver, &v, v | KV_VER_LOCKED)) {
                prev = s->state;
                break;
            }
        }
    } else {
        v = atomic_fetch_or(&kv_slot_at(t, pos)->ver, KV_VER_LOCKED);
    }
    atomic_thread_fence(memory_order_release);
    kv_slot_t *s = kv_slot_at(t, pos);
    s->hash = del ? 0 : h;
    s->state = del ? KV_TOMB : KV_FULL;
    s->klen = del ? 0 : klen;
    s->vlen = del ? 0 : vlen;
    s->pad = 0;
    if (!del && klen)
        memcpy(s->data, kb + koff, klen);
    if (!del && vlen)
        memcpy(s->data + p->max_key, vb + voff, vlen);
    uint64_t nv = v & ~(KV_VER_LOCKED | KV_VER_MOVED);
    if (is_new && floor > nv)
        nv = floor;
    nv += 2;
    s->check = tsr_kv_slot_check(nv, s, p->max_key);
    atomic_store_explicit(&s->ver, nv, memory_order_release);
    return pos << 2 | prev;
}

/* One launch's worth of pairs [0, n) with the mutex held. *ran false: the
 * device failed before anything changed (nothing logged). */
static tsr_status_t write_chunk(kv_dev_t *d, kv_part_t *p, kv_op_t op, size_t n, const uint64_t *h,
                                const tsr_kv_pair_t *pairs, tsr_status_t *res, kv_log_fn log,
                                void *log_arg, kvd_scratch_t *sc, bool *ran, tsr_error_t *err)
{
    kv_tab_t *t = atomic_load(&p->tab);
    *ran = false;
    cl_mem tm = NULL;
    tsr_status_t rc = tsr_kv_dev_stage_keys(d, n, h, pairs, NULL, sc->meta, sc->kb, err);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_ensure(d, &d->out, n * 8, err);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_tab_mem(d, t, &tm, err);
    if (rc != TSR_OK)
        return rc;
    uint64_t mask = t->mask, nn = n;
    uint32_t ss = t->slot_size, mk = p->max_key;
    cl_mem mm = tsr_dev_cl_mem(d->meta), km = tsr_dev_cl_mem(d->keys), om = tsr_dev_cl_mem(d->out);
    tsr_cl_arg_t pa[] = {TSR_CL_ARG(tm), TSR_CL_ARG(mask), TSR_CL_ARG(ss), TSR_CL_ARG(nn),
                         TSR_CL_ARG(mm), TSR_CL_ARG(km),   TSR_CL_ARG(om), TSR_CL_ARG(d->per)};
    rc = tsr_dev_cl_run(d->dev->queue, d->k_probe, d->wg_probe, (n + d->per - 1) / d->per, pa,
                        TSR_CL_NARGS(pa), err);
    if (rc == TSR_OK)
        rc = tsr_kv_dev_download(d, d->out, sc->slot, n * 8, err);
    if (rc != TSR_OK) {
        (void)tsr_kv_dev_tab_release(d, tm, t->bytes, NULL);
        return rc;
    }
    *ran = true;

    /* 3. validate and log in batch order */
    memset(sc->map, 0, (sc->mapmask + 1) * sizeof(*sc->map));
    size_t nk = 0, i = 0;
    tsr_status_t fatal = TSR_OK;
    for (; i < n; i++) {
        uint64_t at = h[i] & sc->mapmask;
        kvd_key_t *k = NULL;
        while (sc->map[at]) {
            kvd_key_t *c = &sc->ks[sc->map[at] - 1];
            if (h[c->first] == h[i] && same_key(&pairs[c->first], &pairs[i])) {
                k = c;
                break;
            }
            at = (at + 1) & sc->mapmask;
        }
        if (!k) {
            k = &sc->ks[nk++];
            sc->map[at] = (uint32_t)nk;
            uint64_t pr = sc->slot[i]; /* the slot, bit 63: a transaction's lock */
            k->slot = pr == KVD_ABSENT ? KVD_ABSENT : pr & ~KVD_DEL_BIT;
            k->first = i;
            k->effect = EFF_NONE;
            k->present = k->slot != KVD_ABSENT;
            k->locked = k->present && (pr & KVD_DEL_BIT);
        }
        tsr_status_t r = TSR_OK;
        if (k->locked && k->slot != KVD_ABSENT)
            r = TSR_ERR_CONFLICT;
        else if (op == KV_OP_INSERT && k->present)
            r = TSR_ERR_EXISTS;
        else if ((op == KV_OP_UPDATE || op == KV_OP_DELETE) && !k->present)
            r = TSR_ERR_NOT_FOUND;
        if (r == TSR_OK && log) {
            r = log(log_arg, op == KV_OP_DELETE, pairs[i].key, (uint32_t)pairs[i].klen,
                    pairs[i].val, (uint32_t)pairs[i].vlen, err);
            if (r != TSR_OK) {
                fatal = r;
                for (size_t j = i; j < n; j++)
                    res[j] = r;
                break;
            }
        }
        res[i] = r;
        if (r != TSR_OK)
            continue;
        if (op == KV_OP_DELETE) {
            k->present = false;
            k->effect = k->slot != KVD_ABSENT ? EFF_DEL : EFF_NONE;
        } else {
            k->present = true;
            k->effect = EFF_PUT;
            k->last = i;
        }
    }

    /* 4. apply items: stage the values */
    size_t m = 0, voff = 0, nnew = 0;
    for (size_t q = 0; q < nk; q++) {
        kvd_key_t *k = &sc->ks[q];
        if (k->effect == EFF_NONE)
            continue;
        uint64_t *a = sc->items + 4 * m++;
        a[0] = h[k->first];
        a[1] = sc->meta[2 * k->first + 1];
        if (k->effect == EFF_DEL) {
            a[2] = KVD_DEL_BIT;
        } else {
            const tsr_kv_pair_t *pv = &pairs[k->last];
            a[2] = (uint64_t)voff | (uint64_t)pv->vlen << 32;
            if (pv->vlen)
                memcpy(sc->vb + voff, pv->val, pv->vlen);
            voff += pv->vlen;
        }
        a[3] = k->slot;
        nnew += k->slot == KVD_ABSENT;
    }
    /* a new key's slot starts past every version the store gave (part.c
     * asks the clock per key; one floor per launch gives the same promise) */
    uint64_t floor = nnew && p->store ? tsr_kv_txn_next_version(p->store) : 0;
    bool on_host = false;
    if (m > 0) {
        cl_mem am, vm;
        uint64_t mm64 = m;
        rc = tsr_kv_dev_ensure(d, &d->vals, voff, err);
        if (rc == TSR_OK)
            rc = tsr_kv_dev_ensure(d, &d->out, m * 8, err);
        /* the items go into the meta buffer (the probe is done with it) */
        if (rc == TSR_OK)
            rc = tsr_kv_dev_ensure(d, &d->meta, m * 32 > n * 16 ? m * 32 : n * 16, err);
        if (rc == TSR_OK)
            rc = tsr_kv_dev_upload(d, d->meta, sc->items, m * 32, err);
        if (rc == TSR_OK)
            rc = tsr_kv_dev_upload(d, d->vals, sc->vb, voff, err);
        if (rc == TSR_OK) {
            am = tsr_dev_cl_mem(d->meta);
            km = tsr_dev_cl_mem(d->keys);
            vm = tsr_dev_cl_mem(d->vals);
            om = tsr_dev_cl_mem(d->out);
            tsr_cl_arg_t aa[] = {TSR_CL_ARG(tm),    TSR_CL_ARG(mask),  TSR_CL_ARG(ss),
                                 TSR_CL_ARG(mk),    TSR_CL_ARG(mm64),  TSR_CL_ARG(am),
                                 TSR_CL_ARG(km),    TSR_CL_ARG(vm),    TSR_CL_ARG(om),
                                 TSR_CL_ARG(floor), TSR_CL_ARG(d->per)};
            rc = tsr_dev_cl_run(d->dev->queue, d->k_apply, d->wg_apply, (m + d->per - 1) / d->per,
                                aa, TSR_CL_NARGS(aa), err);
            if (rc == TSR_OK)
                rc = tsr_kv_dev_download(d, d->out, sc->out, m * 8, err);
            else
                on_host = true; /* nothing ran: the host does the items */
        } else {
            on_host = true;
        }
        if (rc != TSR_OK && !on_host) {
            /* the kernel was queued but its results are lost: which slots
             * it claimed (and whether it finished) is unknown (a device
             * fault; the counters may be off until the next rehash) */
            (void)tsr_kv_dev_tab_release(d, tm, t->bytes, NULL);
            return rc;
        }
    }
    tsr_status_t rrc = tsr_kv_dev_tab_release(d, tm, t->bytes, on_host ? NULL : err);
    if (rrc != TSR_OK && !on_host)
        return rrc;
    if (on_host) {
        d->st.fallbacks++;
        snprintf(d->st.note, sizeof(d->st.note), "apply on the host: %s",
                 err ? err->message : "device error");
        if (err)
            err->status = TSR_OK;
        for (size_t j = 0; j < m; j++)
            sc->out[j] = host_apply(p, t, sc->items + 4 * j, sc->kb, sc->vb, floor);
        rc = TSR_OK;
    }

    /* 5. the counters (the kernel published the slots) */
    for (size_t j = 0; j < m; j++) {
        uint64_t o = sc->out[j];
        if (o == KVD_ABSENT) { /* no free slot: impossible below the load limit */
            rc = tsr_error_set(err, TSR_ERR_INTERNAL, "kv: device apply found no free slot");
            continue;
        }
        uint32_t prev = (uint32_t)(o & 3);
        if (sc->items[4 * j + 2] & KVD_DEL_BIT) {
            t->used--;
            t->tombs++;
        } else if (sc->items[4 * j + 3] == KVD_ABSENT) {
            if (prev == KV_TOMB)
                t->tombs--;
            t->used++;
        }
    }
    d->st.batches++;
    d->st.pairs += n;
    return fatal != TSR_OK ? fatal : rc;
}

tsr_status_t tsr_kv_part_write_batch_dev(kv_dev_t *d, kv_part_t *p, kv_op_t op, size_t n,
                                         const uint64_t *h, const tsr_kv_pair_t *pairs,
                                         tsr_status_t *results, kv_log_fn log, void *log_arg,
                                         bool *ran, tsr_error_t *err)
{
    *ran = false;
    if (!d || !d->active || n == 0)
        return TSR_OK;
    /* the largest launch: pairs and staged bytes */
    size_t chunk = n < KVD_CHUNK ? n : KVD_CHUNK, kbytes = 0, vbytes = 0;
    {
        size_t c = 0, kb = 0, vb = 0;
        for (size_t i = 0; i < n; i++) {
            if (c == chunk || kb + pairs[i].klen > KVD_BYTES || vb + pairs[i].vlen > KVD_BYTES) {
                kbytes = kb > kbytes ? kb : kbytes;
                vbytes = vb > vbytes ? vb : vbytes;
                c = kb = vb = 0;
            }
            c++;
            kb += pairs[i].klen;
            vb += op == KV_OP_DELETE ? 0 : pairs[i].vlen;
        }
        kbytes = kb > kbytes ? kb : kbytes;
        vbytes = vb > vbytes ? vb : vbytes;
    }
    kvd_scratch_t sc = {0};
    size_t mapn = 16;
    while (mapn < 2 * chunk)
        mapn <<= 1;
    sc.mapmask = mapn - 1;
    sc.meta = tsr_mem_alloc(NULL, chunk * 32 + 64); /* 2 words per pair (stage_keys) */
    sc.slot = tsr_mem_alloc(NULL, chunk * 8 + 8);
    sc.items = tsr_mem_alloc(NULL, chunk * 32 + 32);
    sc.out = tsr_mem_alloc(NULL, chunk * 8 + 8);
    sc.kb = tsr_mem_alloc(NULL, kbytes + 1);
    sc.vb = tsr_mem_alloc(NULL, vbytes + 1);
    sc.ks = tsr_mem_alloc(NULL, chunk * sizeof(*sc.ks));
    sc.map = tsr_mem_alloc(NULL, mapn * sizeof(*sc.map));
    tsr_status_t *res = results ? results : tsr_mem_alloc(NULL, n * sizeof(*res));
    tsr_status_t rc = TSR_OK;
    if (!sc.meta || !sc.slot || !sc.items || !sc.out || !sc.kb || !sc.vb || !sc.ks || !sc.map ||
        !res)
        goto out; /* not ran: the CPU path */

    pthread_mutex_lock(&p->wlock);
    pthread_mutex_lock(&d->mu);
    if (op == KV_OP_INSERT || op == KV_OP_UPSERT) {
        rc = tsr_kv_part_make_room_locked(p, n, err);
        if (rc != TSR_OK) {
            for (size_t j = 0; j < n; j++)
                res[j] = rc;
            *ran = true;
            goto unlock;
        }
    }
    size_t b = 0;
    while (b < n) {
        size_t c = 0, kb = 0, vb = 0;
        while (b + c < n && c < chunk && kb + pairs[b + c].klen <= KVD_BYTES &&
               vb + pairs[b + c].vlen <= KVD_BYTES) {
            kb += pairs[b + c].klen;
            vb += op == KV_OP_DELETE ? 0 : pairs[b + c].vlen;
            c++;
        }
        if (c == 0)
            c = 1;
        bool did = false;
        rc = write_chunk(d, p, op, c, h + b, pairs + b, res + b, log, log_arg, &sc, &did, err);
        if (!did) {
            /* the device failed before changing anything: the rest on the CPU */
            d->st.fallbacks++;
            snprintf(d->st.note, sizeof(d->st.note), "CPU fallback: %s",
                     err ? err->message : tsr_status_str(rc));
            if (err)
                err->status = TSR_OK;
            rc = tsr_kv_part_write_batch_locked(p, op, n - b, h + b, pairs + b, res + b, log,
                                                log_arg, err);
            b = n;
            break;
        }
        if (rc != TSR_OK) {
            for (size_t j = b + c; j < n; j++)
                res[j] = rc;
            b = n;
            break;
        }
        b += c;
    }
    *ran = true;
unlock:
    pthread_mutex_unlock(&d->mu);
    tsr_kv_part_reclaim_locked(p);
    pthread_mutex_unlock(&p->wlock);
out:
    if (res != results)
        tsr_mem_free(NULL, res);
    tsr_mem_free(NULL, sc.meta);
    tsr_mem_free(NULL, sc.slot);
    tsr_mem_free(NULL, sc.items);
    tsr_mem_free(NULL, sc.out);
    tsr_mem_free(NULL, sc.kb);
    tsr_mem_free(NULL, sc.vb);
    tsr_mem_free(NULL, sc.ks);
    tsr_mem_free(NULL, sc.map);
    return rc;
}

#else /* TSR_NO_OPENCL: a build without the OpenCL backend */

struct kv_dev {
    int unused;
};

tsr_status_t tsr_kv_dev_open(const char *spec, uint32_t min_batch, kv_dev_t **out, tsr_error_t *err)
{
    (void)min_batch;
    (void)out;
    return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                         "kv: device '%s': this build has no OpenCL backend", spec);
}

void tsr_kv_dev_close(kv_dev_t *d)
{
    (void)d;
}

size_t tsr_kv_dev_min_batch(const kv_dev_t *d)
{
    (void)d;
    return SIZE_MAX;
}

void tsr_kv_dev_stats(kv_dev_t *d, tsr_kv_device_stats_t *out)
{
    (void)d;
    memset(out, 0, sizeof(*out));
}

tsr_status_t tsr_kv_part_write_batch_dev(kv_dev_t *d, kv_part_t *p, kv_op_t op, size_t n,
                                         const uint64_t *h, const tsr_kv_pair_t *pairs,
                                         tsr_status_t *results, kv_log_fn log, void *log_arg,
                                         bool *ran, tsr_error_t *err)
{
    *ran = false;
    return TSR_OK;
}
#endif
