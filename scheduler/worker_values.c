/*
 * worker_values.c - the per-worker value store (worker_values.h).
 *
 * A chained hash table of entries keyed by (job, task), NBUCKETS fixed
 * buckets: a worker holds at most the values of the tasks it ran whose
 * readers have not all finished, a few thousand at the widest, so a fixed
 * table keeps chains short without rehashing under the mutex.
 *
 * Invariants: an entry in a chain is "live" and holds one reference for
 * the table; every borrower holds one more. Unlinking (drop, replace,
 * destroy) takes the table's reference away; the entry and its bytes are
 * freed when refs reaches 0. count/bytes describe live entries only.
 */
#include "worker_values.h"

#include <pthread.h>
#include <stdbool.h>

#define NBUCKETS 1024u

struct tsr_wvalue {
    struct tsr_wvalue *next; /* in its bucket while live */
    uint64_t job;
    uint32_t task;
    unsigned refs;
    void *data;
    size_t len;
};

struct tsr_wvalues {
    tsr_mem_t *mem;
    pthread_mutex_t mu;
    tsr_wvalue_t *buckets[NBUCKETS];
    size_t count;
    uint64_t bytes;
};

static size_t bucket_of(uint64_t job, uint32_t task)
{
    uint64_t h = job * 0x9E3779B97F4A7C15ull ^ ((uint64_t)task * 0xC2B2AE3D27D4EB4Full);
    return (size_t)((h ^ (h >> 29)) % NBUCKETS);
}

tsr_status_t tsr_wvalues_create(tsr_mem_t *mem, tsr_wvalues_t **out)
{
    tsr_wvalues_t *vs = tsr_mem_calloc(mem, 1, sizeof(*vs));
    if (!vs)
        return TSR_ERR_NOMEM;
    vs->mem = mem;
    if (pthread_mutex_init(&vs->mu, NULL) != 0) {
        tsr_mem_free(mem, vs);
        return TSR_ERR_INTERNAL;
    }
    *out = vs;
    return TSR_OK;
}

/* One reference less (mutex held); frees at 0. */
static void unref(tsr_wvalues_t *vs, tsr_wvalue_t *v)
{
    if (--v->refs > 0)
        return;
    tsr_mem_free(vs->mem, v->data);
    tsr_mem_free(vs->mem, v);
}

/* Takes v out of its chain at *link (mutex held). */
static void unlink_at(tsr_wvalues_t *vs, tsr_wvalue_t **link)
{
    tsr_wvalue_t *v = *link;
    *link = v->next;
    v->next = NULL;
    vs->count--;
    vs->bytes -= v->len;
    unref(vs, v);
}

void tsr_wvalues_destroy(tsr_wvalues_t *vs)
{
    if (!vs)
        return;
    for (size_t b = 0; b < NBUCKETS; b++)
        while (vs->buckets[b])
            unlink_at(vs, &vs->buckets[b]);
    pthread_mutex_destroy(&vs->mu);
    tsr_mem_free(vs->mem, vs);
}

tsr_status_t tsr_wvalues_put(tsr_wvalues_t *vs, uint64_t job, uint32_t task, void *data, size_t len)
{
    tsr_wvalue_t *v = tsr_mem_calloc(vs->mem, 1, sizeof(*v));
    if (!v) {
        tsr_mem_free(vs->mem, data);
        return TSR_ERR_NOMEM;
    }
    v->job = job;
    v->task = task;
    v->refs = 1;
    v->data = data;
    v->len = len;
    size_t b = bucket_of(job, task);
    pthread_mutex_lock(&vs->mu);
    for (tsr_wvalue_t **link = &vs->buckets[b]; *link; link = &(*link)->next)
        if ((*link)->job == job && (*link)->task == task) {
            unlink_at(vs, link); /* a re-run's value replaces the old one */
            break;
        }
    v->next = vs->buckets[b];
    vs->buckets[b] = v;
    vs->count++;
    vs->bytes += len;
    pthread_mutex_unlock(&vs->mu);
    return TSR_OK;
}

tsr_wvalue_t *tsr_wvalues_get(tsr_wvalues_t *vs, uint64_t job, uint32_t task, const void **data,
                              size_t *len)
{
    pthread_mutex_lock(&vs->mu);
    tsr_wvalue_t *v = vs->buckets[bucket_of(job, task)];
    while (v && (v->job != job || v->task != task))
        v = v->next;
    if (v) {
        v->refs++;
        *data = v->data;
        *len = v->len;
    }
    pthread_mutex_unlock(&vs->mu);
    return v;
}

void tsr_wvalues_release(tsr_wvalues_t *vs, tsr_wvalue_t *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&vs->mu);
    unref(vs, v);
    pthread_mutex_unlock(&vs->mu);
}

static bool wanted(uint32_t task, const uint32_t *tasks, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (tasks[i] == task)
            return true;
    return false;
}

size_t tsr_wvalues_drop(tsr_wvalues_t *vs, uint64_t job, const uint32_t *tasks, size_t n)
{
    size_t dropped = 0;
    pthread_mutex_lock(&vs->mu);
    if (n > 0 && n <= 64) { /* the usual case: a few tasks, straight to their buckets */
        for (size_t i = 0; i < n; i++)
            for (tsr_wvalue_t **link = &vs->buckets[bucket_of(job, tasks[i])]; *link;
                 link = &(*link)->next)
                if ((*link)->job == job && (*link)->task == tasks[i]) {
                    unlink_at(vs, link);
                    dropped++;
                    break;
                }
    } else {
        for (size_t b = 0; b < NBUCKETS; b++)
            for (tsr_wvalue_t **link = &vs->buckets[b]; *link;) {
                if ((*link)->job == job && wanted((*link)->task, tasks, n)) {
                    unlink_at(vs, link);
                    dropped++;
                } else {
                    link = &(*link)->next;
                }
            }
    }
    pthread_mutex_unlock(&vs->mu);
    return dropped;
}

void tsr_wvalues_stats(tsr_wvalues_t *vs, size_t *count, uint64_t *bytes)
{
    pthread_mutex_lock(&vs->mu);
    if (count)
        *count = vs->count;
    if (bytes)
        *bytes = vs->bytes;
    pthread_mutex_unlock(&vs->mu);
}
