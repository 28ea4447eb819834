/*
 * graph_opencl.c - OpenCL implementations of user task kinds (StarPU's
 * codelet model: a kind has a cpu function and, optionally, an opencl one;
 * both are host functions, the opencl one drives the device itself).
 *
 * When it runs. A task of a kind with an opencl function runs it instead of
 * cpu when the graph's context has an OpenCL device (tsr_context_set_device,
 * or a cluster worker started with --device openclN, whose task contexts
 * get that device). Everywhere else cpu runs: it is required and is the
 * fallback.
 *
 * What the function gets (tsr_task_opencl): the device's cl_context and
 * cl_device_id, and a command queue made for this one task run. Graph tasks
 * run concurrently on graph threads, and the device's default queue belongs
 * to the context's query operators, so each run has its own in-order queue;
 * the engine finishes and releases it after the function returns (OpenCL
 * contexts are thread-safe objects; queues are used by one task each).
 *
 * Programs (tsr_task_opencl_program) come from the device's cache of user
 * programs (opencl_user.c: built at the first use of a (name, source) on
 * that device; a failure carries the compiler's log, which becomes the
 * task's message), so graphs that share a device share its builds: a
 * cluster worker keeps its device open across tasks, each task being a
 * graph of its own. The graph also keeps what it got, keyed by name and
 * source text, under a mutex: a program a task was given stays alive until
 * the graph is destroyed whatever the device's cache drops. That list is
 * made while the graph is built (a kind with an opencl function registered,
 * one thread) and released at destroy. PoCL also keeps compiled binaries
 * on disk, so a later process pays little for the same source.
 */
#include <string.h>

#include "graph/graph_internal.h"

#ifndef TSR_NO_OPENCL

#include <pthread.h>

#include "device/opencl_internal.h"

typedef struct cl_entry {
    char *name;   /* owned */
    char *source; /* owned: the key with name */
    cl_program prog;
} cl_entry_t;

struct graph_cl_cache {
    pthread_mutex_t lock;
    cl_entry_t *e;
    size_t n, cap;
};

/* The context's OpenCL device, NULL when its device is another. */
static tsr_dev_t *cl_device_of(const tsr_graph_t *g)
{
    tsr_dev_t *dev = g->ctx->dev;
    return dev && dev->backend && dev->backend->id == TSR_DEVICE_OPENCL ? dev : NULL;
}

tsr_status_t tsr_graph_cl_prepare(tsr_graph_t *g, tsr_error_t *err)
{
    if (g->cl_cache)
        return TSR_OK;
    struct graph_cl_cache *c = tsr_mem_calloc(g->mem, 1, sizeof(*c));
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        tsr_mem_free(g->mem, c);
        return tsr_error_set(err, TSR_ERR_NOMEM, "cannot make a mutex");
    }
    g->cl_cache = c;
    return TSR_OK;
}

void tsr_graph_cl_free(tsr_graph_t *g)
{
    struct graph_cl_cache *c = g->cl_cache;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        clReleaseProgram(c->e[i].prog);
        tsr_mem_free(g->mem, c->e[i].name);
        tsr_mem_free(g->mem, c->e[i].source);
    }
    tsr_mem_free(g->mem, c->e);
    pthread_mutex_destroy(&c->lock);
    tsr_mem_free(g->mem, c);
    g->cl_cache = NULL;
}

bool tsr_graph_cl_wanted(const tsr_graph_t *g, const tsr_task_t *t)
{
    return t->kind->opencl && cl_device_of(g) != NULL;
}

tsr_status_t tsr_graph_cl_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    tsr_dev_t *dev = cl_device_of(tc->graph);
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    cl_int code = CL_SUCCESS;
    cl_command_queue q = clCreateCommandQueue(cl->context, cl->device, 0, &code);
    if (code != CL_SUCCESS)
        return tsr_task_fail(tc, TSR_ERR_DEVICE, "clCreateCommandQueue failed on %s: %s (%d)",
                             dev->info.name, tsr_dev_cl_error_name(code), (int)code);
    tc->cl_queue = q;
    tsr_status_t rc = tc->task->kind->opencl(tc, in, nin, out, nout);
    /* what the function left queued ends before the queue goes (and before
     * the task's outputs are read by anyone) */
    code = clFinish(q);
    clReleaseCommandQueue(q);
    tc->cl_queue = NULL;
    if (rc == TSR_OK && code != CL_SUCCESS)
        rc = tsr_task_fail(tc, TSR_ERR_DEVICE, "clFinish failed on %s: %s (%d)", dev->info.name,
                           tsr_dev_cl_error_name(code), (int)code);
    return rc;
}

tsr_status_t tsr_task_opencl(tsr_task_ctx_t *tc, void **cl_context, void **cl_command_queue,
                             void **cl_device_id)
{
    tsr_dev_t *dev = tc && tc->cl_queue ? cl_device_of(tc->graph) : NULL;
    tsr_cl_dev_t *cl = dev ? tsr_dev_cl(dev) : NULL;
    if (cl_context)
        *cl_context = cl ? (void *)cl->context : NULL;
    if (cl_command_queue)
        *cl_command_queue = cl ? tc->cl_queue : NULL;
    if (cl_device_id)
        *cl_device_id = cl ? (void *)cl->device : NULL;
    return cl ? TSR_OK : TSR_ERR_UNSUPPORTED;
}

tsr_status_t tsr_task_opencl_program(tsr_task_ctx_t *tc, const char *name, const char *source,
                                     void **cl_program)
{
    if (cl_program)
        *cl_program = NULL;
    if (!tc || !name || !source || !cl_program)
        return TSR_ERR_INVALID_ARG;
    tsr_graph_t *g = tc->graph;
    tsr_dev_t *dev = tc->cl_queue ? cl_device_of(g) : NULL;
    struct graph_cl_cache *c = g->cl_cache;
    if (!dev || !c)
        return tsr_task_fail(tc, TSR_ERR_UNSUPPORTED,
                             "OpenCL program %s: the task is not running on an OpenCL device",
                             name);
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].name, name) == 0 && strcmp(c->e[i].source, source) == 0) {
            *cl_program = c->e[i].prog;
            goto unlock;
        }
    if (tsr_mem_grow(g->mem, (void **)&c->e, &c->cap, c->n + 1, sizeof(*c->e))) {
        rc = tsr_task_fail(tc, TSR_ERR_NOMEM, "out of memory");
        goto unlock;
    }
    cl_entry_t e = {.name = tsr_mem_strdup(g->mem, name),
                    .source = tsr_mem_strdup(g->mem, source)};
    if (!e.name || !e.source) {
        rc = tsr_task_fail(tc, TSR_ERR_NOMEM, "out of memory");
        goto free_entry;
    }
    /* asked for under the lock: a second task wanting it waits instead of
     * compiling it again (the device's cache also has its own lock) */
    tsr_error_t err;
    tsr_error_clear(&err);
    rc = tsr_dev_cl_user_program(dev, name, source, &e.prog, &err);
    if (rc != TSR_OK) {
        rc = tsr_task_fail(tc, rc, "%s", err.message);
        goto free_entry;
    }
    c->e[c->n++] = e;
    *cl_program = e.prog;
    goto unlock;
free_entry:
    tsr_mem_free(g->mem, e.name);
    tsr_mem_free(g->mem, e.source);
unlock:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

#else /* TSR_NO_OPENCL: no OpenCL device can be selected; cpu always runs */

tsr_status_t tsr_graph_cl_prepare(tsr_graph_t *g, tsr_error_t *err)
{
    (void)g;
    (void)err;
    return TSR_OK;
}

void tsr_graph_cl_free(tsr_graph_t *g)
{
    (void)g;
}

bool tsr_graph_cl_wanted(const tsr_graph_t *g, const tsr_task_t *t)
{
    (void)g;
    (void)t;
    return false;
}

tsr_status_t tsr_graph_cl_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    return tc->task->kind->cpu(tc, in, nin, out, nout);
}

tsr_status_t tsr_task_opencl(tsr_task_ctx_t *tc, void **cl_context, void **cl_command_queue,
                             void **cl_device_id)
{
    (void)tc;
    if (cl_context)
        *cl_context = NULL;
    if (cl_command_queue)
        *cl_command_queue = NULL;
    if (cl_device_id)
        *cl_device_id = NULL;
    return TSR_ERR_UNSUPPORTED;
}

tsr_status_t tsr_task_opencl_program(tsr_task_ctx_t *tc, const char *name, const char *source,
                                     void **cl_program)
{
    (void)source;
    if (cl_program)
        *cl_program = NULL;
    if (!tc || !name)
        return TSR_ERR_INVALID_ARG;
    return tsr_task_fail(tc, TSR_ERR_UNSUPPORTED,
                         "OpenCL program %s: this build has no OpenCL", name);
}

#endif
