/*
 * http.c - the scheduler's read-only HTTP endpoint (see http.h for the
 * threading model, docs/cluster.md "HTTP" for the formats).
 *
 *   GET /status   {"scheduler":{address,pid,http},"workers":[{id,state,
 *                 device,host,pid,load,tasks_done}],"snapshot_age_ms":N}
 *                 (the fields of `tessera cluster status --format json`)
 *   GET /jobs     {"running":[job...],"recent":[job...],"untracked":N}
 *                 job: {id,kind,state,phase,tasks_done,tasks_total,tasks_rerun,
 *                 tasks_failed,started_unix_ms,elapsed_ms,bytes,sql[,error]}
 *                 kind "sql" or "graph" (a graph job's phase is "graph"
 *                 once its request decoded, and its sql "(task graph)")
 *   GET /metrics  Prometheus text format 0.0.4 (tessera_* series)
 *   GET /         the list of endpoints
 *
 * Anything else: 404 with {"error":...}; a method other than GET/HEAD: 405
 * with `Allow: GET, HEAD`; without the bearer when --http-auth: 401.
 *
 * The job table holds every running job (up to JOB_SLOTS) and the most
 * recent finished ones: a new job takes a free slot, else the slot of the
 * oldest finished job; when every slot runs a job the new one is only
 * counted (untracked). SQL and error texts are cut to TEXT_MAX bytes.
 *
 * The listening socket is bound here (not by libmicrohttpd) so a bind
 * failure reports its errno and port 0 can be resolved with getsockname.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "common.h"
#include "sched_internal.h"

#if defined(TSR_HAVE_MICROHTTPD)

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "http_int.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void copy_text(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = 0;
    if (src)
        while (n < len && n + 1 < size && src[n])
            n++;
    /* never cut a UTF-8 sequence in two: jansson refuses invalid UTF-8 */
    if (src && n < len && src[n]) {
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The slot of job id, or NULL. Under mu. */
static hjob_t *job_find(tsr_sched_http_t *h, uint64_t id)
{
    if (h->jobs[h->last_job].id == id && h->jobs[h->last_job].state != HJ_FREE)
        return &h->jobs[h->last_job];
    for (size_t i = 0; i < JOB_SLOTS; i++)
        if (h->jobs[i].state != HJ_FREE && h->jobs[i].id == id) {
            h->last_job = i;
            return &h->jobs[i];
        }
    return NULL;
}

void tsr_sched_http_bearer(const struct tsr_token *tok, char out[TSR_HTTP_BEARER_LEN + 1])
{
    uint8_t mac[32];
    unsigned len = 0;
    static const char label[] = "tsr-http";
    HMAC(EVP_sha256(), tok->bytes, (int)tok->len, (const unsigned char *)label, sizeof(label) - 1,
         mac, &len);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[TSR_HTTP_BEARER_LEN] = '\0';
}

/* ---- hooks (loop thread) -------------------------------------------------------- */

void tsr_sched_http_job_begin(tsr_sched_http_t *h, uint64_t id, const char *sql, size_t sql_len)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    hjob_t *slot = NULL;
    for (size_t i = 0; i < JOB_SLOTS && !slot; i++)
        if (h->jobs[i].state == HJ_FREE)
            slot = &h->jobs[i];
    if (!slot) /* else the oldest finished job's */
        for (size_t i = 0; i < JOB_SLOTS; i++) {
            hjob_t *j = &h->jobs[i];
            if (j->state != HJ_RUNNING && (!slot || j->id < slot->id))
                slot = j;
        }
    if (!slot) {
        h->untracked++;
    } else {
        memset(slot, 0, sizeof(*slot));
        slot->id = id;
        slot->state = HJ_RUNNING;
        snprintf(slot->phase, sizeof(slot->phase), "plan");
        slot->started_unix_ms = unix_ms();
        slot->started_ms = tsr_sched_now_ms();
        copy_text(slot->sql, sizeof(slot->sql), sql, sql ? sql_len : 0);
        h->last_job = (size_t)(slot - h->jobs);
    }
    pthread_mutex_unlock(&h->mu);
}

void tsr_sched_http_job_tasks(tsr_sched_http_t *h, uint64_t id, const char *phase, size_t n)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    hjob_t *j = job_find(h, id);
    if (j) {
        snprintf(j->phase, sizeof(j->phase), "%s", phase);
        j->tasks_total += (uint32_t)n;
    }
    pthread_mutex_unlock(&h->mu);
}

void tsr_sched_http_task_end(tsr_sched_http_t *h, uint64_t id, tsr_sched_task_outcome_t outcome,
                             uint64_t bytes)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    hjob_t *j = job_find(h, id);
    h->bytes_tasks += bytes;
    if (j)
        j->bytes += bytes;
    switch (outcome) {
    case TSR_SCHED_TASK_OK:
        h->tasks_ok++;
        if (j)
            j->tasks_done++;
        break;
    case TSR_SCHED_TASK_RERUN:
        h->tasks_rerun++;
        if (j)
            j->tasks_rerun++;
        break;
    case TSR_SCHED_TASK_FAILED:
        h->tasks_failed++;
        if (j)
            j->tasks_failed++;
        break;
    }
    pthread_mutex_unlock(&h->mu);
}

void tsr_sched_http_job_end(tsr_sched_http_t *h, uint64_t id, bool ok, const char *error,
                            uint64_t bytes)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    hjob_t *j = job_find(h, id);
    if (ok)
        h->jobs_ok++;
    else
        h->jobs_failed++;
    h->bytes_answers += bytes;
    if (j && j->state == HJ_RUNNING) {
        j->state = ok ? HJ_DONE : HJ_FAILED;
        j->ended_ms = tsr_sched_now_ms();
        j->bytes += bytes;
        if (!ok && error)
            copy_text(j->error, sizeof(j->error), error, strlen(error));
    }
    pthread_mutex_unlock(&h->mu);
}

void tsr_sched_http_tick(tsr_sched_http_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    if (!h->want) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    const sched_t *s = h->s;
    if (tsr_mem_grow(NULL, (void **)&h->workers, &h->cap_workers, s->nworkers ? s->nworkers : 1,
                     sizeof(*h->workers)) == 0) {
        for (size_t i = 0; i < s->nworkers; i++) {
            const sworker_t *w = s->workers[i];
            hworker_t *o = &h->workers[i];
            o->id = (uint32_t)(i + 1);
            o->ready = w->state == SW_READY;
            snprintf(o->device, sizeof(o->device), "%s", w->device);
            snprintf(o->host, sizeof(o->host), "%s", w->host);
            o->pid = w->pid;
            o->load = o->ready ? w->inflight : 0; /* as on_status reports it */
            o->tasks_done = w->tasks_done;
        }
        h->nworkers = s->nworkers;
    } /* else: out of memory, the old snapshot stays (its age says so) */
    tsr_sched_kv_stats(h->s, &h->kv);
    h->snap_gen++;
    h->snap_ms = tsr_sched_now_ms();
    h->want = false;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---- server thread ---------------------------------------------------------------- */

/* Asks the loop for a fresh worker snapshot and waits for it (bounded).
 * Called and returns with mu held. */
static void await_snapshot(tsr_sched_http_t *h)
{
    uint64_t gen = h->snap_gen;
    h->want = true;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SNAPSHOT_WAIT_MS / 1000;
    until.tv_nsec += (long)(SNAPSHOT_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (h->snap_gen == gen && !h->stopping)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
            break;
}

uint64_t tsr_sched_http_snapshot_age(const tsr_sched_http_t *h)
{
    return h->snap_ms ? tsr_sched_now_ms() - h->snap_ms : 0;
}

static json_t *status_json(tsr_sched_http_t *h)
{
    json_t *root = json_object(), *sch = json_object(), *ws = json_array();
    json_object_set_new(sch, "address", json_string(h->sched_addr));
    json_object_set_new(sch, "pid", json_integer(h->pid));
    json_object_set_new(sch, "http", json_string(h->url));
    json_object_set_new(root, "scheduler", sch);
    for (size_t i = 0; i < h->nworkers; i++) {
        const hworker_t *w = &h->workers[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(w->id));
        json_object_set_new(o, "state", json_string(w->ready ? "ready" : "dead"));
        json_object_set_new(o, "device", json_string(w->device));
        json_object_set_new(o, "host", json_string(w->host));
        json_object_set_new(o, "pid", json_integer(w->pid));
        json_object_set_new(o, "load", json_integer(w->load));
        json_object_set_new(o, "tasks_done", json_integer((json_int_t)w->tasks_done));
        json_array_append_new(ws, o);
    }
    json_object_set_new(root, "workers", ws);
    json_object_set_new(root, "snapshot_age_ms",
                        json_integer((json_int_t)tsr_sched_http_snapshot_age(h)));
    return root;
}

static const char *job_state_name(hjob_state_t st)
{
    return st == HJ_RUNNING ? "running" : st == HJ_DONE ? "done" : "failed";
}

static json_t *job_json(const hjob_t *j, uint64_t now)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)j->id));
    bool graph = strcmp(j->phase, "graph") == 0 || strcmp(j->sql, "(task graph)") == 0;
    json_object_set_new(o, "kind", json_string(graph ? "graph" : "sql"));
    json_object_set_new(o, "state", json_string(job_state_name(j->state)));
    json_object_set_new(o, "phase", json_string(j->phase));
    json_object_set_new(o, "tasks_done", json_integer(j->tasks_done));
    json_object_set_new(o, "tasks_total", json_integer(j->tasks_total));
    json_object_set_new(o, "tasks_rerun", json_integer(j->tasks_rerun));
    json_object_set_new(o, "tasks_failed", json_integer(j->tasks_failed));
    json_object_set_new(o, "started_unix_ms", json_integer((json_int_t)j->started_unix_ms));
    uint64_t end = j->ended_ms ? j->ended_ms : now;
    json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)(end - j->started_ms)));
    json_object_set_new(o, "bytes", json_integer((json_int_t)j->bytes));
    /* json_string refuses invalid UTF-8 (the SQL is the client's bytes) */
    json_t *sql = json_string(j->sql);
    json_object_set_new(o, "sql", sql ? sql : json_string("(not UTF-8)"));
    if (j->state == HJ_FAILED) {
        json_t *e = json_string(j->error);
        json_object_set_new(o, "error", e ? e : json_string("(not UTF-8)"));
    }
    return o;
}

static int job_newest_first(const void *a, const void *b)
{
    const hjob_t *x = *(const hjob_t *const *)a, *y = *(const hjob_t *const *)b;
    return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

static json_t *jobs_json(tsr_sched_http_t *h)
{
    json_t *root = json_object(), *run = json_array(), *recent = json_array();
    const hjob_t *order[JOB_SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < JOB_SLOTS; i++)
        if (h->jobs[i].state != HJ_FREE)
            order[n++] = &h->jobs[i];
    qsort(order, n, sizeof(order[0]), job_newest_first);
    uint64_t now = tsr_sched_now_ms();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(order[i]->state == HJ_RUNNING ? run : recent,
                              job_json(order[i], now));
    json_object_set_new(root, "running", run);
    json_object_set_new(root, "recent", recent);
    json_object_set_new(root, "untracked", json_integer((json_int_t)h->untracked));
    return root;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code, const char *type,
                                 const char *text, size_t len, bool allow, bool auth)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (auth)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tessera\"");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, json_t *j)
{
    tbuf_t b = {0};
    if (!j || json_dump_callback(j, tsr_http_tb_dump, &b, JSON_COMPACT) != 0)
        b.failed = true;
    tsr_http_tb_add(&b, "\n", 1);
    json_decref(j);
    enum MHD_Result rc;
    if (b.failed) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        rc = send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", oom, sizeof(oom) - 1,
                       false, false);
    } else {
        rc = send_text(c, code, "application/json", b.data, b.len, false, false);
    }
    tsr_mem_free(NULL, b.data);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *what,
                                  const char *url, bool allow, bool auth)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(what));
    json_t *path = json_string(url);
    if (path)
        json_object_set_new(j, "path", path);
    tbuf_t b = {0};
    if (json_dump_callback(j, tsr_http_tb_dump, &b, JSON_COMPACT) != 0)
        b.failed = true;
    tsr_http_tb_add(&b, "\n", 1);
    json_decref(j);
    enum MHD_Result rc =
        b.failed ? MHD_NO : send_text(c, code, "application/json", b.data, b.len, allow, auth);
    tsr_mem_free(NULL, b.data);
    return rc;
}

static bool authorized(tsr_sched_http_t *h, struct MHD_Connection *c)
{
    if (!h->require_auth)
        return true;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    static const char scheme[] = "Bearer ";
    if (!v || strncasecmp(v, scheme, sizeof(scheme) - 1) != 0)
        return false;
    v += sizeof(scheme) - 1;
    while (*v == ' ')
        v++;
    if (strlen(v) != TSR_HTTP_BEARER_LEN)
        return false;
    return CRYPTO_memcmp(v, h->bearer, TSR_HTTP_BEARER_LEN) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    tsr_sched_http_t *h = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    /* Answered on the first call, before any body: nothing here reads one
     * (a body is then discarded or the connection closed by the library). */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: read-only endpoint",
                          url, true, false);
    if (!authorized(h, c)) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char who[64] = "?";
        if (ci && ci->client_addr)
            getnameinfo(ci->client_addr,
                        ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in),
                        who, sizeof(who), NULL, 0, NI_NUMERICHOST);
        tsr_sched_log(h->s->p->log, "scheduler", "http: refused %s %s from %s: no valid bearer",
                      method, url, who);
        return send_error(c, MHD_HTTP_UNAUTHORIZED, "authorization required", url, false, true);
    }
    if (strcmp(url, "/metrics") == 0) {
        tbuf_t b = {0};
        pthread_mutex_lock(&h->mu);
        h->requests++;
        await_snapshot(h);
        tsr_sched_http_metrics_text(h, &b);
        pthread_mutex_unlock(&h->mu);
        enum MHD_Result rc =
            b.failed
                ? send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", url, false, false)
                : send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data,
                            b.len, false, false);
        tsr_mem_free(NULL, b.data);
        return rc;
    }
    json_t *body = NULL;
    pthread_mutex_lock(&h->mu);
    h->requests++;
    if (strcmp(url, "/status") == 0) {
        await_snapshot(h);
        body = status_json(h);
    } else if (strcmp(url, "/jobs") == 0) {
        body = jobs_json(h);
    }
    pthread_mutex_unlock(&h->mu);
    if (body)
        return send_json(c, MHD_HTTP_OK, body);
    if (strcmp(url, "/") == 0) {
        body = json_pack("{s:[s,s,s]}", "endpoints", "/status", "/jobs", "/metrics");
        return send_json(c, MHD_HTTP_OK, body);
    }
    return send_error(c, MHD_HTTP_NOT_FOUND, "not found", url, false, false);
}

/* ---- start / stop ---------------------------------------------------------------- */

/* A listening socket on host:port; -1 with err set. */
static int bind_listen(const char *host, uint16_t port, tsr_error_t *err)
{
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, ps, &hints, &ai);
    if (gai != 0) {
        tsr_error_set(err, TSR_ERR_BAD_INPUT, "http: cannot resolve '%s': %s", host,
                      gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        tsr_error_set(err, TSR_ERR_UNAVAILABLE, "http: cannot listen on %s:%u: %s", host, port,
                      strerror(e));
        if (e == EADDRINUSE)
            tsr_error_hint(err, "another process uses that port: pick another with --http "
                                "HOST:PORT (port 0 picks a free one)");
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

tsr_status_t tsr_sched_http_start(struct sched *s, const tsr_sched_http_params_t *p,
                                  tsr_sched_http_t **out, tsr_error_t *err)
{
    tsr_sched_http_t *h = tsr_mem_calloc(NULL, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_status_t rc = TSR_ERR_INTERNAL;
    const char *host = p->host && p->host[0] ? p->host : "127.0.0.1";
    h->s = s;
    h->require_auth = p->require_auth;
    h->pid = (uint32_t)getpid();
    snprintf(h->sched_addr, sizeof(h->sched_addr), "%s", p->sched_addr ? p->sched_addr : "");
    if (h->require_auth)
        tsr_sched_http_bearer(&s->token, h->bearer);
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "http: cannot make a condition variable");
        goto err_free;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int cerr = pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (cerr != 0) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "http: cannot make a condition variable");
        goto err_free;
    }
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "http: cannot make a mutex");
        goto err_cond;
    }
    int fd = bind_listen(host, p->port, err);
    if (fd < 0) {
        rc = err->status;
        goto err_mutex;
    }
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        h->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                 : ((struct sockaddr_in *)&sa)->sin_port);
    bool v6 = sa.ss_family == AF_INET6;
    bool loopback = v6 ? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr)
                       : (ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) == 127;
    if (!loopback && !h->require_auth)
        tsr_sched_log(s->p->log, "scheduler",
                      "warning: http: %s is not a loopback address and --http-auth is off: "
                      "anyone who reaches it can read the cluster's status and queries",
                      host);
    snprintf(h->url, sizeof(h->url), v6 ? "http://[%s]:%u/" : "http://%s:%u/", host, h->port);
    /* One internal thread serves every connection (event-driven, so a slow
     * client holds nothing); the handler's only wait is await_snapshot. */
    h->mhd = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
        on_request, h, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->mhd) {
        close(fd);
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "http: cannot start the server on %s:%u", host,
                           h->port);
        goto err_mutex;
    }
    *out = h;
    return TSR_OK;

err_mutex:
    pthread_mutex_destroy(&h->mu);
err_cond:
    pthread_cond_destroy(&h->cv);
err_free:
    tsr_mem_free(NULL, h);
    return rc;
}

uint16_t tsr_sched_http_port(const tsr_sched_http_t *h)
{
    return h ? h->port : 0;
}

void tsr_sched_http_stop(tsr_sched_http_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true; /* a request waiting for a snapshot gives up now */
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    MHD_stop_daemon(h->mhd); /* joins the thread, closes the listening socket */
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    tsr_mem_free(NULL, h->workers);
    tsr_mem_free(NULL, h);
}

#else /* !TSR_HAVE_MICROHTTPD: a build without libmicrohttpd or jansson */

tsr_status_t tsr_sched_http_start(struct sched *s, const tsr_sched_http_params_t *p,
                                  tsr_sched_http_t **out, tsr_error_t *err)
{
    (void)s, (void)p, (void)out;
    return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                         "http: this build has no HTTP endpoint (built without libmicrohttpd)");
}
void tsr_sched_http_stop(tsr_sched_http_t *h)
{
    (void)h;
}
uint16_t tsr_sched_http_port(const tsr_sched_http_t *h)
{
    (void)h;
    return 0;
}
void tsr_sched_http_tick(tsr_sched_http_t *h)
{
    (void)h;
}
void tsr_sched_http_job_begin(tsr_sched_http_t *h, uint64_t id, const char *sql, size_t sql_len)
{
    (void)h, (void)id, (void)sql, (void)sql_len;
}
void tsr_sched_http_job_tasks(tsr_sched_http_t *h, uint64_t id, const char *phase, size_t n)
{
    (void)h, (void)id, (void)phase, (void)n;
}
void tsr_sched_http_task_end(tsr_sched_http_t *h, uint64_t id, tsr_sched_task_outcome_t outcome,
                             uint64_t bytes)
{
    (void)h, (void)id, (void)outcome, (void)bytes;
}
void tsr_sched_http_job_end(tsr_sched_http_t *h, uint64_t id, bool ok, const char *error,
                            uint64_t bytes)
{
    (void)h, (void)id, (void)ok, (void)error, (void)bytes;
}
void tsr_sched_http_bearer(const struct tsr_token *tok, char out[TSR_HTTP_BEARER_LEN + 1])
{
    (void)tok;
    memset(out, '0', TSR_HTTP_BEARER_LEN);
    out[TSR_HTTP_BEARER_LEN] = '\0';
}

#endif
