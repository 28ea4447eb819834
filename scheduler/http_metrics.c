/*
 * http_metrics.c - the scheduler's GET /metrics body (Prometheus text format
 * 0.0.4, tessera_* series; docs/cluster.md "HTTP"), from the tables http.c
 * keeps, and the text buffer both use.
 */
#if defined(TSR_HAVE_MICROHTTPD)

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"

void tsr_http_tb_add(tbuf_t *b, const char *s, size_t n)
{
    if (b->failed || tsr_mem_grow(NULL, (void **)&b->data, &b->cap, b->len + n + 1, 1) != 0) {
        b->failed = true;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void tb_printf(tbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf_t *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        tsr_http_tb_add(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

int tsr_http_tb_dump(const char *s, size_t n, void *arg)
{
    tsr_http_tb_add(arg, s, n);
    return ((tbuf_t *)arg)->failed ? -1 : 0;
}

/* A Prometheus label value: \, " and newline escaped. */
static void tb_label(tbuf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            tb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            tsr_http_tb_add(b, "\\n", 2);
        else
            tsr_http_tb_add(b, v, 1);
    }
}

static void metric(tbuf_t *b, const char *name, const char *type, const char *help)
{
    tb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tsr_sched_http_metrics_text(tsr_sched_http_t *h, tbuf_t *b)
{
    size_t alive = 0, running = 0;
    for (size_t i = 0; i < h->nworkers; i++)
        alive += h->workers[i].ready;
    for (size_t i = 0; i < JOB_SLOTS; i++)
        running += h->jobs[i].state == HJ_RUNNING;
    metric(b, "tessera_tasks_run_total", "counter", "Tasks answered by a worker without error.");
    tb_printf(b, "tessera_tasks_run_total %llu\n", (unsigned long long)h->tasks_ok);
    metric(b, "tessera_tasks_failed_total", "counter",
           "Tasks answered with an error or lost on every worker tried.");
    tb_printf(b, "tessera_tasks_failed_total %llu\n", (unsigned long long)h->tasks_failed);
    metric(b, "tessera_tasks_rerun_total", "counter",
           "Tasks lost with a dead worker and placed again (lineage).");
    tb_printf(b, "tessera_tasks_rerun_total %llu\n", (unsigned long long)h->tasks_rerun);
    metric(b, "tessera_jobs_total", "counter", "Jobs that answered their client, by outcome.");
    tb_printf(b, "tessera_jobs_total{outcome=\"ok\"} %llu\n", (unsigned long long)h->jobs_ok);
    tb_printf(b, "tessera_jobs_total{outcome=\"failed\"} %llu\n",
              (unsigned long long)h->jobs_failed);
    metric(b, "tessera_jobs_running", "gauge", "Jobs in progress.");
    tb_printf(b, "tessera_jobs_running %zu\n", running);
    metric(b, "tessera_workers_alive", "gauge", "Workers in state ready.");
    tb_printf(b, "tessera_workers_alive %zu\n", alive);
    metric(b, "tessera_workers_dead", "gauge", "Workers declared dead since start.");
    tb_printf(b, "tessera_workers_dead %zu\n", h->nworkers - alive);
    metric(b, "tessera_bytes_moved_total", "counter",
           "Payload bytes through the scheduler: task requests and replies, answers to clients.");
    tb_printf(b, "tessera_bytes_moved_total{path=\"tasks\"} %llu\n",
              (unsigned long long)h->bytes_tasks);
    tb_printf(b, "tessera_bytes_moved_total{path=\"answers\"} %llu\n",
              (unsigned long long)h->bytes_answers);
    metric(b, "tessera_worker_load", "gauge", "Tasks in flight on a worker.");
    for (size_t i = 0; i < h->nworkers; i++) {
        const hworker_t *w = &h->workers[i];
        tb_printf(b, "tessera_worker_load{worker=\"%u\",device=\"", w->id);
        tb_label(b, w->device);
        tb_printf(b, "\",state=\"%s\"} %u\n", w->ready ? "ready" : "dead", w->load);
    }
    metric(b, "tessera_worker_tasks_done_total", "counter", "Tasks a worker has answered.");
    for (size_t i = 0; i < h->nworkers; i++)
        tb_printf(b, "tessera_worker_tasks_done_total{worker=\"%u\"} %llu\n", h->workers[i].id,
                  (unsigned long long)h->workers[i].tasks_done);
    const tsr_sched_kv_stats_t *kv = &h->kv;
    metric(b, "tessera_kv_tables", "gauge", "Cluster kv tables in the catalog.");
    tb_printf(b, "tessera_kv_tables %llu\n", (unsigned long long)kv->tables);
    metric(b, "tessera_kv_partitions", "gauge", "Partitions of the cluster kv tables.");
    tb_printf(b, "tessera_kv_partitions %llu\n", (unsigned long long)kv->partitions);
    metric(b, "tessera_kv_partitions_in_doubt", "gauge",
           "Partitions whose fresh replicas may differ (a write's outcome unknown).");
    tb_printf(b, "tessera_kv_partitions_in_doubt %llu\n", (unsigned long long)kv->in_doubt);
    metric(b, "tessera_kv_replicas", "gauge",
           "Partition replicas: up (fresh, worker ready), down (fresh, worker gone), stale.");
    tb_printf(b, "tessera_kv_replicas{state=\"up\"} %llu\n", (unsigned long long)kv->replicas_up);
    tb_printf(b, "tessera_kv_replicas{state=\"down\"} %llu\n",
              (unsigned long long)kv->replicas_down);
    tb_printf(b, "tessera_kv_replicas{state=\"stale\"} %llu\n",
              (unsigned long long)kv->replicas_stale);
    metric(b, "tessera_kv_writes_waiting", "gauge",
           "Writes queued behind their partition's write in flight or resync.");
    tb_printf(b, "tessera_kv_writes_waiting %llu\n", (unsigned long long)kv->writes_waiting);
    metric(b, "tessera_kv_resyncs_running", "gauge",
           "Resyncs and comparisons of replicas running.");
    tb_printf(b, "tessera_kv_resyncs_running %llu\n", (unsigned long long)kv->resyncs_running);
    metric(b, "tessera_kv_resyncs_total", "counter",
           "Resyncs of stale replicas ended, by how they refilled the copy.");
    static const char *const resync_kind[3] = {"missed_keys", "ranges", "whole"};
    for (int i = 0; i < 3; i++)
        tb_printf(b, "tessera_kv_resyncs_total{kind=\"%s\"} %llu\n", resync_kind[i],
                  (unsigned long long)kv->resyncs[i]);
    tb_printf(b, "tessera_kv_resyncs_total{kind=\"failed\"} %llu\n",
              (unsigned long long)kv->resyncs_failed);
    metric(b, "tessera_kv_resync_pairs_total", "counter",
           "Pairs resyncs copied to stale replicas.");
    tb_printf(b, "tessera_kv_resync_pairs_total %llu\n", (unsigned long long)kv->resync_pairs);
    metric(b, "tessera_kv_comparisons_total", "counter",
           "Comparisons of a partition's fresh replicas in doubt, by outcome.");
    static const char *const compare_outcome[3] = {"agree", "differ", "failed"};
    for (int i = 0; i < 3; i++)
        tb_printf(b, "tessera_kv_comparisons_total{outcome=\"%s\"} %llu\n", compare_outcome[i],
                  (unsigned long long)kv->compares[i]);
    metric(b, "tessera_kv_puts_total", "counter", "Puts sent to their replicas.");
    tb_printf(b, "tessera_kv_puts_total %llu\n", (unsigned long long)kv->puts);
    metric(b, "tessera_kv_put_writes_total", "counter",
           "Writes that carried the puts (a group commit carries several).");
    tb_printf(b, "tessera_kv_put_writes_total %llu\n", (unsigned long long)kv->put_writes);
    metric(b, "tessera_http_snapshot_age_seconds", "gauge",
           "Age of the worker table served (nonzero when the scheduler loop was busy).");
    tb_printf(b, "tessera_http_snapshot_age_seconds %.3f\n",
              (double)tsr_sched_http_snapshot_age(h) / 1000.0);
}

#endif /* TSR_HAVE_MICROHTTPD */
