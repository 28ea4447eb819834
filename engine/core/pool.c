/*
 * pool.c - fork-join thread pool (see pool.h).
 *
 * Workers sleep on a condition variable between jobs; a job is published by
 * bumping a generation number. Each job's tasks are claimed with an atomic
 * fetch-and-add on next_task, and the last worker to finish signals done.
 * Nested tsr_pool_run calls (a task that itself calls run) execute inline.
 */
#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

struct tsr_pool {
    tsr_mem_t *mem;
    unsigned nthreads;      /* workers including the caller */
    pthread_t *threads;     /* nthreads - 1 background threads */
    pthread_mutex_t lock;   /* guards generation, shutdown, active */
    pthread_cond_t wake;    /* background threads wait for a new generation */
    pthread_cond_t done;    /* the caller waits for active == 0 */
    unsigned long generation;
    bool shutdown;
    atomic_bool running;    /* a job is in flight: nested runs go inline */
    unsigned active;        /* background threads still inside the current job */
    /* the current job */
    tsr_task_fn fn;
    void *arg;
    size_t ntasks;
    atomic_size_t next_task;
};

unsigned tsr_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

static void pool_drain(tsr_pool_t *pool, unsigned worker)
{
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (i >= pool->ntasks)
            return;
        pool->fn(pool->arg, i, worker);
    }
}

typedef struct pool_thread_arg {
    tsr_pool_t *pool;
    unsigned worker;
} pool_thread_arg_t;

static void *pool_thread_main(void *p)
{
    tsr_pool_t *pool = ((pool_thread_arg_t *)p)->pool;
    unsigned worker = ((pool_thread_arg_t *)p)->worker;
    tsr_mem_free(pool->mem, p);
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->shutdown && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->shutdown)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        pool_drain(pool, worker);
        pthread_mutex_lock(&pool->lock);
        if (--pool->active == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

tsr_status_t tsr_pool_create(tsr_mem_t *mem, unsigned nthreads, tsr_pool_t **out)
{
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (nthreads == 0)
        nthreads = tsr_cpu_count();
    tsr_pool_t *pool = tsr_mem_calloc(mem, 1, sizeof(*pool));
    if (!pool)
        return TSR_ERR_NOMEM;
    pool->mem = mem;
    pool->nthreads = 1;
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->running, false);
    if (pthread_mutex_init(&pool->lock, NULL) != 0)
        goto err_free_pool;
    if (pthread_cond_init(&pool->wake, NULL) != 0)
        goto err_destroy_lock;
    if (pthread_cond_init(&pool->done, NULL) != 0)
        goto err_destroy_wake;
    if (nthreads > 1) {
        pool->threads = tsr_mem_calloc(mem, nthreads - 1, sizeof(pthread_t));
        if (!pool->threads)
            goto err_destroy_done;
        for (unsigned i = 1; i < nthreads; i++) {
            pool_thread_arg_t *targ = tsr_mem_alloc(mem, sizeof(*targ));
            if (!targ)
                goto err_stop_threads;
            targ->pool = pool;
            targ->worker = i;
            if (pthread_create(&pool->threads[i - 1], NULL, pool_thread_main, targ) != 0) {
                tsr_mem_free(mem, targ);
                rc = TSR_ERR_INTERNAL;
                goto err_stop_threads;
            }
            pool->nthreads++;
        }
    }
    *out = pool;
    return TSR_OK;

err_stop_threads:
    tsr_pool_destroy(pool);
    return rc;
err_destroy_done:
    pthread_cond_destroy(&pool->done);
err_destroy_wake:
    pthread_cond_destroy(&pool->wake);
err_destroy_lock:
    pthread_mutex_destroy(&pool->lock);
err_free_pool:
    tsr_mem_free(mem, pool);
    return rc;
}

void tsr_pool_destroy(tsr_pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->shutdown = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i + 1 < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    tsr_mem_free(pool->mem, pool->threads);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    tsr_mem_free(pool->mem, pool);
}

unsigned tsr_pool_size(const tsr_pool_t *pool)
{
    return pool ? pool->nthreads : 1;
}

void tsr_pool_run(tsr_pool_t *pool, size_t ntasks, tsr_task_fn fn, void *arg)
{
    if (ntasks == 0)
        return;
    if (!pool || pool->nthreads == 1 || ntasks == 1 || atomic_load(&pool->running)) {
        for (size_t i = 0; i < ntasks; i++)
            fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->running, true);
    pool->fn = fn;
    pool->arg = arg;
    pool->ntasks = ntasks;
    atomic_store(&pool->next_task, 0);
    pool->active = pool->nthreads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    pool_drain(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->active > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    atomic_store(&pool->running, false);
    pthread_mutex_unlock(&pool->lock);
}
