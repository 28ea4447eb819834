/*
 * opencl_stage.c - host <-> device copies of pageable host memory through a
 * small pool of pinned staging buffers (one pool per OpenCL device): the
 * OpenCL way of cuda_stage.c.
 *
 * Each staging buffer is a CL_MEM_ALLOC_HOST_PTR buffer mapped once (on the
 * pool's own queue) for its lifetime; its host pointer is the source of
 * clEnqueueWriteBuffer / the destination of clEnqueueReadBuffer, the
 * pattern GPU vendors document for full-speed DMA from pinned memory (the
 * mapped object itself is never used by a command while mapped). Buffers
 * rotate: the host copies piece j+1 into buffer (j+1) % count while the
 * transfer of piece j runs; done[i] is the event of buffer i's last
 * transfer, waited for on the host before buffer i is touched again.
 *
 * Semantics (the callers' contract): tsr_dev_cl_upload returns when the
 * caller's source has been copied (the transfers may still be queued on
 * cq, in order with what follows there); tsr_dev_cl_download returns when
 * the bytes are in the caller's memory.
 *
 * When: by default only on GPUs (info.is_gpu). On a CPU device such as PoCL
 * "device memory" is host memory and a transfer is a memcpy by the
 * runtime's threads, so staging would only add a copy.
 * TSR_OPENCL_STAGE=on|off forces it (measurements, tests). A pool that
 * cannot be made (clCreateBuffer / clEnqueueMapBuffer fail) leaves copies
 * direct and its reason in the note (tsr_dev_cl_stage_note).
 *
 * Sizes: 3 buffers of 16 MiB on GPUs, 64 KiB pieces elsewhere (tests cross
 * many pieces); tsr_dev_cl_stage_config sets them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/opencl_internal.h"
#include "device/stage_common.h"

_Static_assert(TSR_CL_STAGE_MAX <= TSR_DEV_STAGE_MAX, "stage_common.h holds the pool");

void tsr_dev_cl_stage_defaults(tsr_dev_t *dev)
{
    tsr_cl_stage_t *st = &tsr_dev_cl(dev)->stage;
    memset(st, 0, sizeof(*st));
    st->count = 3;
    st->piece = dev->info.is_gpu ? (size_t)16 << 20 : (size_t)64 << 10;
    bool on = dev->info.is_gpu;
    const char *env = getenv("TSR_OPENCL_STAGE");
    if (env && strcmp(env, "on") == 0)
        on = true;
    else if (env && strcmp(env, "off") == 0)
        on = false;
    if (!on) {
        st->state = TSR_CL_STAGE_OFF;
        snprintf(st->note, sizeof(st->note),
                 dev->info.is_gpu ? "pinned staging off (TSR_OPENCL_STAGE=off)"
                                  : "pinned staging off: a CPU device's memory is host memory");
    }
}

static void cl_st_release(tsr_cl_stage_t *st)
{
    for (unsigned i = 0; i < TSR_CL_STAGE_MAX; i++) {
        if (st->done[i]) {
            clWaitForEvents(1, &st->done[i]);
            clReleaseEvent(st->done[i]);
        }
        if (st->mem[i]) {
            if (st->ptr[i] && st->mapq)
                clEnqueueUnmapMemObject(st->mapq, st->mem[i], st->ptr[i], 0, NULL, NULL);
            if (st->mapq)
                clFinish(st->mapq);
            clReleaseMemObject(st->mem[i]);
        }
        st->done[i] = NULL;
        st->mem[i] = NULL;
        st->ptr[i] = NULL;
    }
    if (st->mapq)
        clReleaseCommandQueue(st->mapq);
    st->mapq = NULL;
    st->next = 0;
}

void tsr_dev_cl_stage_free(tsr_dev_t *dev)
{
    tsr_cl_stage_t *st = &tsr_dev_cl(dev)->stage;
    cl_st_release(st);
    if (st->state == TSR_CL_STAGE_READY)
        st->state = TSR_CL_STAGE_UNTRIED;
}

tsr_status_t tsr_dev_cl_stage_config(tsr_dev_t *dev, size_t piece, unsigned count,
                                     tsr_error_t *err)
{
    if (!dev || dev->backend->id != TSR_DEVICE_OPENCL)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "staging: not an OpenCL device");
    tsr_status_t rc = tsr_dev_stage_check(piece, count, TSR_CL_STAGE_MAX, err);
    if (rc != TSR_OK)
        return rc;
    tsr_dev_cl_stage_free(dev);
    tsr_cl_stage_t *st = &tsr_dev_cl(dev)->stage;
    if (!piece) {
        st->state = TSR_CL_STAGE_OFF;
        snprintf(st->note, sizeof(st->note), "pinned staging off");
        return TSR_OK;
    }
    st->state = TSR_CL_STAGE_UNTRIED;
    st->note[0] = '\0';
    st->piece = piece;
    st->count = count;
    return TSR_OK;
}

const char *tsr_dev_cl_stage_note(const tsr_dev_t *dev)
{
    return tsr_dev_cl(dev)->stage.note;
}

void tsr_dev_cl_stage_stats(const tsr_dev_t *dev, uint64_t *staged, uint64_t *direct)
{
    const tsr_cl_stage_t *st = &tsr_dev_cl(dev)->stage;
    tsr_dev_stage_stats_out(st->staged_bytes, st->direct_bytes, staged, direct);
}

/* The pool, made on first use; NULL: copy directly (the note says why). */
static tsr_cl_stage_t *cl_st_get(tsr_dev_t *dev)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    tsr_cl_stage_t *st = &cl->stage;
    if (st->state == TSR_CL_STAGE_READY)
        return st;
    if (st->state != TSR_CL_STAGE_UNTRIED)
        return NULL;
    cl_int code = CL_SUCCESS;
    const char *what = "clCreateCommandQueue";
    st->mapq = clCreateCommandQueue(cl->context, cl->device, 0, &code);
    for (unsigned i = 0; i < st->count && code == CL_SUCCESS; i++) {
        what = "clCreateBuffer(ALLOC_HOST_PTR)";
        st->mem[i] = clCreateBuffer(cl->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR,
                                    st->piece, NULL, &code);
        if (code != CL_SUCCESS) {
            st->mem[i] = NULL;
            break;
        }
        what = "clEnqueueMapBuffer";
        st->ptr[i] = clEnqueueMapBuffer(st->mapq, st->mem[i], CL_TRUE, CL_MAP_READ | CL_MAP_WRITE,
                                        0, st->piece, 0, NULL, NULL, &code);
        if (code != CL_SUCCESS)
            st->ptr[i] = NULL;
    }
    if (code == CL_SUCCESS) {
        st->state = TSR_CL_STAGE_READY;
        return st;
    }
    snprintf(st->note, sizeof(st->note),
             "pinned staging unavailable (%s of %u x %zu bytes on %s: %s (%d)); host copies are "
             "direct",
             what, st->count, st->piece, dev->info.name, tsr_dev_cl_error_name(code), (int)code);
    cl_st_release(st);
    st->state = TSR_CL_STAGE_FAILED;
    return NULL;
}

bool tsr_dev_cl_stage_active(tsr_dev_t *dev)
{
    return cl_st_get(dev) != NULL;
}

/* Waits for buffer i's last transfer and forgets it. */
static cl_int cl_st_wait(tsr_cl_stage_t *st, unsigned i)
{
    if (!st->done[i])
        return CL_SUCCESS;
    cl_int code = clWaitForEvents(1, &st->done[i]);
    clReleaseEvent(st->done[i]);
    st->done[i] = NULL;
    return code;
}

tsr_status_t tsr_dev_cl_upload(tsr_dev_t *dev, cl_command_queue cq, cl_mem dst, size_t dst_off,
                               const void *src, size_t size, tsr_error_t *err)
{
    if (!size)
        return TSR_OK;
    tsr_cl_stage_t *st = cl_st_get(dev);
    cl_int code;
    if (!st) {
        /* direct: non-blocking writes would read src after we return */
        code = clEnqueueWriteBuffer(cq, dst, CL_TRUE, dst_off, size, src, 0, NULL, NULL);
        if (code != CL_SUCCESS)
            return tsr_dev_cl_fail(err, dev, code, "clEnqueueWriteBuffer");
        tsr_dev_cl(dev)->stage.direct_bytes += size;
        return TSR_OK;
    }
    for (size_t off = 0; off < size;) {
        unsigned i;
        size_t len = tsr_dev_stage_next(&st->next, st->count, st->piece, size - off, &i);
        if ((code = cl_st_wait(st, i)) != CL_SUCCESS)
            return tsr_dev_cl_fail(err, dev, code, "clWaitForEvents(staging buffer)");
        memcpy(st->ptr[i], (const char *)src + off, len);
        code = clEnqueueWriteBuffer(cq, dst, CL_FALSE, dst_off + off, len, st->ptr[i], 0, NULL,
                                    &st->done[i]);
        if (code != CL_SUCCESS) {
            st->done[i] = NULL;
            return tsr_dev_cl_fail(err, dev, code, "clEnqueueWriteBuffer(staged)");
        }
        clFlush(cq); /* start it while the next piece is copied */
        off += len;
        st->staged_bytes += len;
    }
    return TSR_OK;
}

tsr_status_t tsr_dev_cl_download(tsr_dev_t *dev, cl_command_queue cq, cl_mem src, size_t src_off,
                                 void *dst, size_t size, tsr_error_t *err)
{
    if (!size)
        return TSR_OK;
    tsr_cl_stage_t *st = cl_st_get(dev);
    cl_int code;
    if (!st) {
        code = clEnqueueReadBuffer(cq, src, CL_TRUE, src_off, size, dst, 0, NULL, NULL);
        if (code != CL_SUCCESS)
            return tsr_dev_cl_fail(err, dev, code, "clEnqueueReadBuffer");
        tsr_dev_cl(dev)->stage.direct_bytes += size;
        return TSR_OK;
    }
    tsr_dev_stage_fl_t fl = {0};
    size_t off = 0;
    while (off < size || fl.n) {
        if (off < size && fl.n < st->count) {
            unsigned i;
            size_t len = tsr_dev_stage_next(&st->next, st->count, st->piece, size - off, &i);
            if ((code = cl_st_wait(st, i)) != CL_SUCCESS)
                return tsr_dev_cl_fail(err, dev, code, "clWaitForEvents(staging buffer)");
            code = clEnqueueReadBuffer(cq, src, CL_FALSE, src_off + off, len, st->ptr[i], 0, NULL,
                                       &st->done[i]);
            if (code != CL_SUCCESS) {
                st->done[i] = NULL;
                return tsr_dev_cl_fail(err, dev, code, "clEnqueueReadBuffer(staged)");
            }
            clFlush(cq);
            tsr_dev_stage_fl_push(&fl, i, off, len);
            off += len;
            continue;
        }
        unsigned i;
        size_t poff, plen;
        tsr_dev_stage_fl_pop(&fl, &i, &poff, &plen);
        if ((code = cl_st_wait(st, i)) != CL_SUCCESS)
            return tsr_dev_cl_fail(err, dev, code, "clWaitForEvents(staging buffer)");
        memcpy((char *)dst + poff, st->ptr[i], plen);
        st->staged_bytes += plen;
    }
    return TSR_OK;
}
