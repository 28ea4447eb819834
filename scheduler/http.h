/*
 * http.h - the scheduler's read-only HTTP endpoint (`tessera scheduler
 * --http HOST:PORT`): GET /status, /jobs, /metrics. See docs/cluster.md
 * "HTTP" for the formats and the authentication choice.
 *
 * Threads. The server runs on libmicrohttpd's own polling thread; it never
 * touches the scheduler's live state (sched_t), which only the event loop
 * may touch. Instead http.c keeps a *view* under its own mutex:
 *
 *   - counters and the job table, updated by the hooks below, which the
 *     loop calls where things happen (each a few stores under the mutex);
 *   - a copy of the worker table, taken by tsr_sched_http_tick() on the
 *     loop thread when a request has asked for one (the request waits up to
 *     1 s for it; a loop busy longer, e.g. merging a huge result, gets the
 *     previous copy served with its age instead of a stall).
 *
 * So the loop never waits for the server beyond one uncontended mutex, and
 * the server never waits for the loop beyond 1 s.
 *
 * Every hook accepts h == NULL (no --http): a no-op, so callers need no test.
 */
#ifndef TSR_SCHED_HTTP_H
#define TSR_SCHED_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct sched;
typedef struct tsr_sched_http tsr_sched_http_t;

typedef struct tsr_sched_http_params {
    const char *host;       /* address to bind (numeric or a name); NULL: 127.0.0.1 */
    uint16_t port;          /* 0: any free port */
    bool require_auth;      /* demand `Authorization: Bearer <hex HMAC>` on every request */
    const char *sched_addr; /* "HOST:PORT" of the scheduler's listener, shown in /status */
} tsr_sched_http_params_t;

/* Binds and starts the server thread. TSR_ERR_UNAVAILABLE when the address
 * cannot be bound (in use, not local), TSR_ERR_BAD_INPUT for a host that does
 * not resolve, TSR_ERR_UNSUPPORTED in a build without libmicrohttpd. */
tsr_status_t tsr_sched_http_start(struct sched *s, const tsr_sched_http_params_t *p,
                                  tsr_sched_http_t **out, tsr_error_t *err);
/* Stops the server thread (waits for requests in progress) and frees h. */
void tsr_sched_http_stop(tsr_sched_http_t *h);
/* The port bound (the real one when 0 was asked). */
uint16_t tsr_sched_http_port(const tsr_sched_http_t *h);

/* Loop thread, every iteration: copies the worker table when a request asks. */
void tsr_sched_http_tick(tsr_sched_http_t *h);

/* ---- hooks: loop thread only ------------------------------------------------ */

typedef enum tsr_sched_task_outcome {
    TSR_SCHED_TASK_OK = 0,     /* answered with rows/types */
    TSR_SCHED_TASK_RERUN = 1,  /* lost with its worker; placed again */
    TSR_SCHED_TASK_FAILED = 2, /* answered with an error, or lost too often */
} tsr_sched_task_outcome_t;

/* A job began (sql may be NULL or not NUL-terminated within sql_len). */
void tsr_sched_http_job_begin(tsr_sched_http_t *h, uint64_t id, const char *sql, size_t sql_len);
/* The job starts a phase ("infer", "run", "whole") of n tasks. */
void tsr_sched_http_job_tasks(tsr_sched_http_t *h, uint64_t id, const char *phase, size_t n);
/* A task call of job id ended; bytes = request plus reply payload. */
void tsr_sched_http_task_end(tsr_sched_http_t *h, uint64_t id, tsr_sched_task_outcome_t outcome,
                             uint64_t bytes);
/* The job answered its client: ok, or failed with error; bytes of the answer. */
void tsr_sched_http_job_end(tsr_sched_http_t *h, uint64_t id, bool ok, const char *error,
                            uint64_t bytes);

/* The bearer credential for --http-auth: hex(HMAC-SHA256(token, "tsr-http")),
 * 64 chars + NUL. Derived, so it reveals nothing about the token. */
#define TSR_HTTP_BEARER_LEN 64
struct tsr_token;
void tsr_sched_http_bearer(const struct tsr_token *tok, char out[TSR_HTTP_BEARER_LEN + 1]);

#endif /* TSR_SCHED_HTTP_H */
