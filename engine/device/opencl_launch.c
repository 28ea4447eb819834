/*
 * opencl_launch.c - kernel creation, argument setting and launches for the
 * OpenCL kernel families, and the host side of the prefix sum of
 * kernels/opencl/scan.cl (see opencl_launch.h for the contract).
 *
 * Every cl* return code is converted at once by tsr_dev_cl_fail (the call,
 * the CL error name and the device name). Work-group sizes are powers of two
 * so kernels can use tree reductions without bounds checks.
 */
#include "device/opencl_launch.h"

#include <string.h>

tsr_status_t tsr_dev_cl_kernel_create(tsr_dev_t *dev, tsr_cl_prog_t which, const char *name,
                                      cl_kernel *k, size_t *wg, tsr_error_t *err)
{
    cl_program prog;
    tsr_status_t rc = tsr_dev_cl_program(dev, which, &prog, err);
    if (rc != TSR_OK)
        return rc;
    cl_int code = CL_SUCCESS;
    cl_kernel kk = clCreateKernel(prog, name, &code);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clCreateKernel");
    size_t max = 0;
    code = clGetKernelWorkGroupInfo(kk, tsr_dev_cl(dev)->device, CL_KERNEL_WORK_GROUP_SIZE,
                                    sizeof(max), &max, NULL);
    if (code != CL_SUCCESS) {
        clReleaseKernel(kk);
        return tsr_dev_cl_fail(err, dev, code, "clGetKernelWorkGroupInfo");
    }
    size_t w = 1;
    while (w * 2 <= max && w * 2 <= TSR_CL_MAX_WG)
        w *= 2;
    *k = kk;
    *wg = w;
    return TSR_OK;
}

void tsr_dev_cl_kernel_release(cl_kernel k)
{
    if (k)
        clReleaseKernel(k);
}

tsr_status_t tsr_dev_cl_set_args(tsr_dev_t *dev, cl_kernel k, const tsr_cl_arg_t *args,
                                 size_t nargs, tsr_error_t *err)
{
    for (size_t i = 0; i < nargs; i++) {
        /* a __local buffer of 0 bytes is invalid; kernels that do not use
         * theirs get one entry */
        size_t size = args[i].value || args[i].size ? args[i].size : 8;
        cl_int code = clSetKernelArg(k, (cl_uint)i, size, args[i].value);
        if (code != CL_SUCCESS)
            return tsr_dev_cl_fail(err, dev, code, "clSetKernelArg");
    }
    return TSR_OK;
}

tsr_status_t tsr_dev_cl_launch(tsr_dev_queue_t *q, cl_kernel k, size_t wg, size_t items,
                               tsr_error_t *err)
{
    if (items == 0)
        return TSR_OK;
    size_t global = (items + wg - 1) / wg * wg;
    cl_int code =
        clEnqueueNDRangeKernel(tsr_dev_cl_queue(q), k, 1, NULL, &global, &wg, 0, NULL, NULL);
    return code == CL_SUCCESS ? TSR_OK
                              : tsr_dev_cl_fail(err, q->dev, code, "clEnqueueNDRangeKernel");
}

tsr_status_t tsr_dev_cl_run(tsr_dev_queue_t *q, cl_kernel k, size_t wg, size_t items,
                            const tsr_cl_arg_t *args, size_t nargs, tsr_error_t *err)
{
    tsr_status_t rc = tsr_dev_cl_set_args(q->dev, k, args, nargs, err);
    return rc == TSR_OK ? tsr_dev_cl_launch(q, k, wg, items, err) : rc;
}

tsr_status_t tsr_dev_cl_copy(tsr_dev_queue_t *q, tsr_dev_buf_t *src, size_t src_off,
                             tsr_dev_buf_t *dst, size_t dst_off, size_t size, tsr_error_t *err)
{
    if (size == 0)
        return TSR_OK;
    cl_int code = clEnqueueCopyBuffer(tsr_dev_cl_queue(q), tsr_dev_cl_mem(src), tsr_dev_cl_mem(dst),
                                      src_off, dst_off, size, 0, NULL, NULL);
    return code == CL_SUCCESS ? TSR_OK : tsr_dev_cl_fail(err, q->dev, code, "clEnqueueCopyBuffer");
}

/* ---- the prefix sum ------------------------------------------------------------------ */

tsr_status_t tsr_dev_cl_scan_init(tsr_dev_t *dev, tsr_cl_scan_t *s, tsr_error_t *err)
{
    memset(s, 0, sizeof(*s));
    s->dev = dev;
    size_t w1, w2, w3;
    tsr_status_t rc;
    if ((rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_SCAN, "tsr_scan_reduce", &s->k_reduce, &w1,
                                       err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_SCAN, "tsr_scan_blocks", &s->k_blocks, &w2,
                                       err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_SCAN, "tsr_scan_apply", &s->k_apply, &w3,
                                       err)) != TSR_OK) {
        tsr_dev_cl_scan_free(s);
        return rc;
    }
    s->wg = w1 < w2 ? w1 : w2;
    s->wg = s->wg < w3 ? s->wg : w3;
    return TSR_OK;
}

void tsr_dev_cl_scan_free(tsr_cl_scan_t *s)
{
    tsr_dev_cl_kernel_release(s->k_reduce);
    tsr_dev_cl_kernel_release(s->k_blocks);
    tsr_dev_cl_kernel_release(s->k_apply);
    tsr_dev_buf_free(s->sums);
    memset(s, 0, sizeof(*s));
}

tsr_status_t tsr_dev_cl_scan(tsr_cl_scan_t *s, tsr_dev_queue_t *q, tsr_dev_buf_t *data, size_t n,
                             tsr_error_t *err)
{
    if (data->size < (n + 1) * 8)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "scan of %zu entries in a buffer of %zu bytes",
                             n, data->size);
    if (n == 0) {
        static const cl_ulong zero = 0; /* static: the write may complete later */
        return tsr_dev_write(q, data, 0, &zero, 8, false, NULL, err);
    }
    size_t wg = s->wg, block = wg * TSR_CL_SCAN_ITEMS;
    size_t nblocks = (n + block - 1) / block;
    if (nblocks > UINT32_MAX - 1)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED, "scan of %zu entries is too long", n);
    tsr_status_t rc;
    if (s->cap < nblocks) {
        /* the old buffer may still be read by queued scans: finish first */
        if (s->sums && (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
            return rc;
        tsr_dev_buf_t *sums = NULL;
        if ((rc = tsr_dev_buf_alloc(s->dev, (nblocks + 1) * 8, &sums, err)) != TSR_OK)
            return rc;
        tsr_dev_buf_free(s->sums);
        s->sums = sums;
        s->cap = nblocks;
    }
    cl_mem d = tsr_dev_cl_mem(data), sums = tsr_dev_cl_mem(s->sums);
    cl_ulong un = n;
    cl_uint items = TSR_CL_SCAN_ITEMS, nb = (cl_uint)nblocks;
    const tsr_cl_arg_t reduce[] = {
        TSR_CL_ARG(d), TSR_CL_ARG(un), TSR_CL_ARG(items), TSR_CL_ARG(sums), TSR_CL_LOCAL(wg * 8),
    };
    const tsr_cl_arg_t blocks[] = {TSR_CL_ARG(sums), TSR_CL_ARG(nb), TSR_CL_LOCAL(wg * 8)};
    const tsr_cl_arg_t apply[] = {
        TSR_CL_ARG(d),  TSR_CL_ARG(un),          TSR_CL_ARG(items),    TSR_CL_ARG(sums),
        TSR_CL_ARG(nb), TSR_CL_LOCAL(block * 8), TSR_CL_LOCAL(wg * 8),
    };
    if ((rc = tsr_dev_cl_run(q, s->k_reduce, wg, nblocks * wg, reduce, TSR_CL_NARGS(reduce),
                             err)) != TSR_OK ||
        (rc = tsr_dev_cl_run(q, s->k_blocks, wg, wg, blocks, TSR_CL_NARGS(blocks), err)) !=
            TSR_OK ||
        (rc = tsr_dev_cl_run(q, s->k_apply, wg, nblocks * wg, apply, TSR_CL_NARGS(apply), err)) !=
            TSR_OK)
        return rc;
    return TSR_OK;
}
