/*
 * graph_cuda.c - CUDA implementations of user task kinds (StarPU's codelet
 * model, as graph_opencl.c for OpenCL: a kind has a cpu function and,
 * optionally, a cuda one; both are host functions, the cuda one launches
 * its own kernels).
 *
 * When it runs. A task of a kind with a cuda function runs it instead of cpu
 * when the graph's context has a CUDA device (tsr_context_set_device(ctx,
 * "cuda0"), or a cluster worker started with --device cuda0, whose task
 * contexts get that device). Everywhere else cpu runs: it is required and is
 * the fallback. A context has one device, so at most one of the opencl and
 * cuda functions can apply.
 *
 * What the function gets (tsr_task_cuda): a stream made for this one task
 * run and the device's runtime ordinal; the runtime's current device is
 * per host thread, so it is made the context's device on the graph thread
 * right before the call. Graph tasks run concurrently on graph threads, and
 * the device layer's streams belong to the context's query operators, so
 * each run has its own non-blocking stream (it does not serialize with the
 * legacy default stream either). The engine synchronizes and destroys it
 * after the function returns, so the outputs are complete before any task
 * that reads them starts.
 *
 * Errors. The function reports its own CUDA failures, most simply through
 * tsr_task_cuda_check (the runtime's error name and string become the
 * task's message). Asynchronous failures it did not wait for (a kernel
 * fault, a copy error) surface when the engine synchronizes the stream, and
 * a launch error it did not check stays in the runtime's last-error slot:
 * when the function returned TSR_OK, either fails the task with the CUDA
 * error string. The slot is cleared before the call (a stale error of
 * other code must not fail this task) and after it (this task's error must
 * not fail a later one on the same thread).
 *
 * Builds without CUDA (no TSR_HAVE_CUDA) keep the entry points: no CUDA
 * device can be selected there, so cpu always runs and tsr_task_cuda answers
 * TSR_ERR_UNSUPPORTED. The CUDA emulator test (tests/CMakeLists.txt) compiles
 * this file again against the emulated runtime: both versions must define
 * the same symbols.
 */
#include <stdbool.h>

#include "graph/graph_internal.h"

#ifdef TSR_HAVE_CUDA

#include "device/cuda_internal.h"

/* The context's CUDA device, NULL when its device is another. */
static tsr_dev_t *cuda_device_of(const tsr_graph_t *g)
{
    tsr_dev_t *dev = g->ctx->dev;
    return dev && dev->backend && dev->backend->id == TSR_DEVICE_CUDA ? dev : NULL;
}

bool tsr_graph_cuda_wanted(const tsr_graph_t *g, const tsr_task_t *t)
{
    return t->kind->cuda && cuda_device_of(g) != NULL;
}

/* The CUDA failure code as the task's message (tsr_dev_cuda_fail's wording). */
static tsr_status_t cuda_task_fail(tsr_task_ctx_t *tc, const tsr_dev_t *dev, cudaError_t code,
                                   const char *what)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t st = tsr_dev_cuda_fail(&err, dev, code, what);
    return tsr_task_fail(tc, st, "%s", err.message);
}

tsr_status_t tsr_graph_cuda_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                tsr_data_t *const *out, size_t nout)
{
    tsr_dev_t *dev = cuda_device_of(tc->graph);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = tsr_dev_cuda_use(dev, &err);
    if (rc != TSR_OK)
        return tsr_task_fail(tc, rc, "%s", err.message);
    cudaStream_t s = NULL;
    cudaError_t code = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (code != cudaSuccess)
        return cuda_task_fail(tc, dev, code, "cudaStreamCreateWithFlags");
    (void)cudaGetLastError(); /* a stale error of other code is not this task's */
    tc->cuda_stream = s;
    tc->cuda_device = tsr_dev_cuda(dev)->ordinal;
    rc = tc->task->kind->cuda(tc, in, nin, out, nout);
    /* what the function left queued ends before the stream goes (and before
     * the task's outputs are read by anyone) */
    code = cudaStreamSynchronize(s);
    cudaError_t last = cudaGetLastError(); /* an unchecked launch error; clears the slot */
    cudaStreamDestroy(s);
    tc->cuda_stream = NULL;
    tc->cuda_device = -1;
    if (rc == TSR_OK && code != cudaSuccess)
        rc = cuda_task_fail(tc, dev, code, "cudaStreamSynchronize of the task's stream");
    else if (rc == TSR_OK && last != cudaSuccess)
        rc = cuda_task_fail(tc, dev, last, "launch in the task (cudaGetLastError)");
    return rc;
}

tsr_status_t tsr_task_cuda(tsr_task_ctx_t *tc, void **cuda_stream, int *cuda_device)
{
    bool on = tc && tc->cuda_stream;
    if (cuda_stream)
        *cuda_stream = on ? tc->cuda_stream : NULL;
    if (cuda_device)
        *cuda_device = on ? tc->cuda_device : -1;
    return on ? TSR_OK : TSR_ERR_UNSUPPORTED;
}

tsr_status_t tsr_task_cuda_check(tsr_task_ctx_t *tc, int cuda_error, const char *what)
{
    if (cuda_error == 0)
        return TSR_OK;
    if (!tc)
        return TSR_ERR_INVALID_ARG;
    const tsr_dev_t *dev = cuda_device_of(tc->graph);
    return cuda_task_fail(tc, dev, (cudaError_t)cuda_error, what ? what : "call");
}

#else /* no CUDA in this build: no CUDA device can be selected; cpu always runs */

bool tsr_graph_cuda_wanted(const tsr_graph_t *g, const tsr_task_t *t)
{
    (void)g;
    (void)t;
    return false;
}

tsr_status_t tsr_graph_cuda_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                tsr_data_t *const *out, size_t nout)
{
    return tc->task->kind->cpu(tc, in, nin, out, nout);
}

tsr_status_t tsr_task_cuda(tsr_task_ctx_t *tc, void **cuda_stream, int *cuda_device)
{
    (void)tc;
    if (cuda_stream)
        *cuda_stream = NULL;
    if (cuda_device)
        *cuda_device = -1;
    return TSR_ERR_UNSUPPORTED;
}

tsr_status_t tsr_task_cuda_check(tsr_task_ctx_t *tc, int cuda_error, const char *what)
{
    if (cuda_error == 0)
        return TSR_OK;
    if (!tc)
        return TSR_ERR_INVALID_ARG;
    return tsr_task_fail(tc, TSR_ERR_DEVICE, "CUDA %s failed: error %d", what ? what : "call",
                         cuda_error);
}

#endif
