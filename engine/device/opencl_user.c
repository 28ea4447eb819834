/*
 * opencl_user.c - programs built from user source on an OpenCL device (the
 * OpenCL implementations of graph task kinds, docs/graph.md), cached by the
 * device so that a device kept open across graphs builds each source once.
 *
 * Why per device: a cluster worker runs every graph task in a fresh graph
 * and context, but keeps its device open for its whole life (the contexts
 * borrow it). A cache in the graph alone made every task build its kind's
 * program again: tens of ms with PoCL's on-disk binary cache, the whole
 * LLVM compile without it.
 *
 * Keys are (name, source text); a hit is the same cl_program object. The
 * cache holds at most CL_USER_MAX programs and drops the least recently
 * used one beyond that (a program whose text changes from call to call
 * must not grow a long-lived worker without bound). Callers get a retained
 * program and release it themselves, so an entry dropped while a task still
 * uses its program does not free it under the task.
 *
 * Concurrency: the tasks of one embedded graph run on several threads and
 * share the context's device, so the cache has a mutex; a build runs under
 * it, so two tasks wanting one program build it once.
 */
#include <pthread.h>
#include <string.h>

#include "device/opencl_internal.h"

#define CL_USER_MAX 64 /* the most a cache may hold (tsr_dev_cl_user_limit lowers it) */

typedef struct cl_user_entry {
    char *name;   /* owned */
    char *source; /* owned */
    cl_program prog;
    uint64_t used; /* the cache's clock at the last hit (LRU) */
} cl_user_entry_t;

struct tsr_cl_user_progs {
    pthread_mutex_t lock;
    cl_user_entry_t e[CL_USER_MAX];
    size_t n, max;
    uint64_t clock;
    uint64_t builds, hits; /* for tests and docs */
};

static void entry_free(tsr_dev_t *dev, cl_user_entry_t *e)
{
    if (e->prog)
        clReleaseProgram(e->prog);
    tsr_mem_free(dev->mem, e->name);
    tsr_mem_free(dev->mem, e->source);
    memset(e, 0, sizeof(*e));
}

tsr_status_t tsr_dev_cl_user_init(tsr_dev_t *dev, tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    struct tsr_cl_user_progs *u = tsr_mem_calloc(dev->mem, 1, sizeof(*u));
    if (!u)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    if (pthread_mutex_init(&u->lock, NULL) != 0) {
        tsr_mem_free(dev->mem, u);
        return tsr_error_set(err, TSR_ERR_NOMEM, "cannot make a mutex");
    }
    u->max = CL_USER_MAX;
    cl->user = u;
    return TSR_OK;
}

/* The least recently used entry (u->n > 0). */
static size_t lru(const struct tsr_cl_user_progs *u)
{
    size_t slot = 0;
    for (size_t i = 1; i < u->n; i++)
        if (u->e[i].used < u->e[slot].used)
            slot = i;
    return slot;
}

void tsr_dev_cl_user_limit(tsr_dev_t *dev, size_t max)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    struct tsr_cl_user_progs *u = cl ? cl->user : NULL;
    if (!u)
        return;
    pthread_mutex_lock(&u->lock);
    u->max = max < 1 ? 1 : max > CL_USER_MAX ? CL_USER_MAX : max;
    while (u->n > u->max) {
        size_t i = lru(u);
        entry_free(dev, &u->e[i]);
        u->e[i] = u->e[--u->n];
    }
    pthread_mutex_unlock(&u->lock);
}

void tsr_dev_cl_user_free(tsr_dev_t *dev)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    struct tsr_cl_user_progs *u = cl ? cl->user : NULL;
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++)
        entry_free(dev, &u->e[i]);
    pthread_mutex_destroy(&u->lock);
    tsr_mem_free(dev->mem, u);
    cl->user = NULL;
}

tsr_status_t tsr_dev_cl_user_program(tsr_dev_t *dev, const char *name, const char *source,
                                     cl_program *out, tsr_error_t *err)
{
    *out = NULL;
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    struct tsr_cl_user_progs *u = cl->user;
    if (!u) /* no cache (could not be made at open): build for this caller alone */
        return tsr_dev_cl_build(dev, name, source, strlen(source), out, err);
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&u->lock);
    u->clock++;
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->e[i].name, name) == 0 && strcmp(u->e[i].source, source) == 0) {
            u->e[i].used = u->clock;
            u->hits++;
            clRetainProgram(u->e[i].prog);
            *out = u->e[i].prog;
            goto unlock;
        }
    cl_user_entry_t e = {.name = tsr_mem_strdup(dev->mem, name),
                         .source = tsr_mem_strdup(dev->mem, source),
                         .used = u->clock};
    if (!e.name || !e.source) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        entry_free(dev, &e);
        goto unlock;
    }
    if ((rc = tsr_dev_cl_build(dev, name, source, strlen(source), &e.prog, err)) != TSR_OK) {
        entry_free(dev, &e);
        goto unlock;
    }
    u->builds++;
    size_t slot = u->n;
    if (u->n >= u->max) { /* full: the least recently used goes */
        slot = lru(u);
        entry_free(dev, &u->e[slot]);
    } else {
        u->n++;
    }
    u->e[slot] = e;
    clRetainProgram(e.prog);
    *out = e.prog;
unlock:
    pthread_mutex_unlock(&u->lock);
    return rc;
}

void tsr_dev_cl_user_counts(tsr_dev_t *dev, uint64_t *builds, uint64_t *hits)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    struct tsr_cl_user_progs *u = cl ? cl->user : NULL;
    *builds = *hits = 0;
    if (!u)
        return;
    pthread_mutex_lock(&u->lock);
    *builds = u->builds;
    *hits = u->hits;
    pthread_mutex_unlock(&u->lock);
}
