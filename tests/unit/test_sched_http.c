/*
 * test_sched_http.c - the scheduler's HTTP endpoint (scheduler/http.c) over
 * real sockets, with a hand-built scheduler state instead of a daemon.
 *
 * The test thread plays the scheduler's event loop (it calls the hooks and
 * owns the fake worker table); a "ticker" thread calls tsr_sched_http_tick
 * as the loop would, and is stopped whenever the test changes the workers,
 * so only one thread touches them at a time, as in the daemon.
 *
 * Checks: /status and /metrics against the fake workers (dead ones, label
 * escaping); /jobs against a model of random job histories (every field of
 * every listed job, running jobs never dropped, the newest finished kept,
 * the untracked count when every slot runs a job); SQL cut on a UTF-8
 * boundary and non-UTF-8 SQL; 404, 405 with Allow, HEAD; the bearer
 * against OpenSSL's HMAC computed here; a request with no loop ticking
 * answers within the bound (stale snapshot), and stop does not hang with a
 * request waiting; a taken port is TSR_ERR_UNAVAILABLE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common.h"
#include "http.h"
#include "sched_internal.h"

/* ---- a fake scheduler and its loop ------------------------------------------ */

typedef struct fixture {
    sched_t s;
    tsr_sched_params_t p;
    sworker_t w[3];
    tsr_sched_http_t *h;
    pthread_t ticker;
    volatile int ticking; /* read by the ticker: a plain flag is enough for a test */
    bool ticker_on;
} fixture_t;

static void *tick_main(void *arg)
{
    fixture_t *f = arg;
    struct timespec ts = {0, 2 * 1000000L};
    while (__atomic_load_n(&f->ticking, __ATOMIC_ACQUIRE)) {
        tsr_sched_http_tick(f->h);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void ticker_start(fixture_t *f)
{
    __atomic_store_n(&f->ticking, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_create(&f->ticker, NULL, tick_main, f), 0);
    f->ticker_on = true;
}

static void ticker_stop(fixture_t *f)
{
    if (!f->ticker_on)
        return;
    __atomic_store_n(&f->ticking, 0, __ATOMIC_RELEASE);
    pthread_join(f->ticker, NULL);
    f->ticker_on = false;
}

static fixture_t *fixture_new(bool auth)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->p.log = NULL;
    f->s.p = &f->p;
    memcpy(f->s.token.bytes, "0123456789abcdef0123456789abcdef", 32);
    f->s.token.len = 32;
    const char *dev[3] = {"cpu", "cuda0", "we\"ird\\dev"};
    for (size_t i = 0; i < 3; i++) {
        sworker_t *w = &f->w[i];
        w->state = i == 1 ? SW_DEAD : SW_READY;
        snprintf(w->device, sizeof(w->device), "%s", dev[i]);
        snprintf(w->host, sizeof(w->host), "host%zu", i);
        w->pid = 1000 + (uint32_t)i;
        w->inflight = (uint32_t)i + 2;
        w->tasks_done = 10 * i + 1;
        f->s.workers[i] = w;
    }
    f->s.nworkers = 3;
    tsr_sched_http_params_t hp = {
        .host = "127.0.0.1", .port = 0, .require_auth = auth, .sched_addr = "127.0.0.1:7700"};
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_sched_http_start(&f->s, &hp, &f->h, &err), TSR_OK);
    assert_true(tsr_sched_http_port(f->h) > 0);
    return f;
}

static void fixture_free(fixture_t *f)
{
    ticker_stop(f);
    tsr_sched_http_stop(f->h);
    free(f);
}

/* ---- a tiny HTTP/1.0 client --------------------------------------------------- */

typedef struct resp {
    int code;
    char headers[2048];
    char *body; /* malloc'd, NUL-terminated */
} resp_t;

static resp_t request(uint16_t port, const char *method, const char *path, const char *extra)
{
    resp_t r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0}; /* bounded: a hung server fails the test */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[1024];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: t\r\n%s\r\n", method, path,
                     extra ? extra : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t k = read(fd, buf + len, cap - len - 1);
        assert_true(k >= 0);
        if (k == 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = '\0';
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &r.code), 1);
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    size_t hl = (size_t)(sep - buf);
    snprintf(r.headers, sizeof(r.headers), "%.*s", (int)(hl < 2047 ? hl : 2047), buf);
    r.body = strdup(sep + 4);
    free(buf);
    return r;
}

static json_t *get_json(fixture_t *f, const char *path)
{
    resp_t r = request(tsr_sched_http_port(f->h), "GET", path, NULL);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.headers, "application/json"));
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    if (!j)
        fail_msg("bad JSON from %s: %s in %s", path, je.text, r.body);
    free(r.body);
    return j;
}

/* ---- status and metrics --------------------------------------------------------- */

static void test_status_metrics(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(false);
    ticker_start(f);
    json_t *st = get_json(f, "/status");
    json_t *sch = json_object_get(st, "scheduler");
    assert_string_equal(json_string_value(json_object_get(sch, "address")), "127.0.0.1:7700");
    assert_int_equal(json_integer_value(json_object_get(sch, "pid")), getpid());
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", tsr_sched_http_port(f->h));
    assert_string_equal(json_string_value(json_object_get(sch, "http")), url);
    json_t *ws = json_object_get(st, "workers");
    assert_int_equal(json_array_size(ws), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *w = json_array_get(ws, i);
        const sworker_t *m = &f->w[i];
        assert_int_equal(json_integer_value(json_object_get(w, "id")), i + 1);
        assert_string_equal(json_string_value(json_object_get(w, "state")),
                            m->state == SW_READY ? "ready" : "dead");
        assert_string_equal(json_string_value(json_object_get(w, "device")), m->device);
        assert_string_equal(json_string_value(json_object_get(w, "host")), m->host);
        assert_int_equal(json_integer_value(json_object_get(w, "pid")), m->pid);
        /* a dead worker has no load, as `cluster status` says */
        assert_int_equal(json_integer_value(json_object_get(w, "load")),
                         m->state == SW_READY ? m->inflight : 0);
        assert_int_equal(json_integer_value(json_object_get(w, "tasks_done")), m->tasks_done);
    }
    json_decref(st);

    /* a change in the loop's table shows in the next answer (fresh snapshot) */
    ticker_stop(f);
    f->w[0].tasks_done = 777;
    f->w[2].state = SW_DEAD;
    ticker_start(f);
    resp_t r = request(tsr_sched_http_port(f->h), "GET", "/metrics", NULL);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.headers, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "\ntessera_workers_alive 1\n"));
    assert_non_null(strstr(r.body, "\ntessera_workers_dead 2\n"));
    assert_non_null(strstr(r.body, "tessera_worker_tasks_done_total{worker=\"1\"} 777\n"));
    assert_non_null(strstr(r.body, "device=\"we\\\"ird\\\\dev\""));
    /* every sample line follows its # TYPE; no line is empty */
    int samples = 0;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP tessera_", 15) == 0 ||
                        strncmp(line, "# TYPE tessera_", 15) == 0);
            continue;
        }
        assert_true(strncmp(line, "tessera_", 8) == 0);
        assert_non_null(strrchr(line, ' '));
        samples++;
    }
    assert_true(samples >= 14);
    free(r.body);
    fixture_free(f);
}

/* ---- jobs against a model ---------------------------------------------------------- */

#define MJOBS 400

typedef struct mjob {
    bool ended, ok;
    bool tracked; /* in the table, by the model's rule */
    uint32_t total, done, rerun, failed;
    uint64_t bytes;
    char phase[8];
    char sql[64];
} mjob_t;

/* The table's rule, stated simply: a new job is listed when fewer than 128
 * are; else it replaces the finished job with the smallest id; else it is
 * only counted. Returns false for the last case. */
static bool model_begin(mjob_t *m, size_t nbegun)
{
    size_t in = 0, oldest = 0;
    for (size_t i = 1; i < nbegun; i++) {
        in += m[i].tracked;
        if (m[i].tracked && m[i].ended && !oldest)
            oldest = i;
    }
    if (in == 128 && !oldest)
        return false;
    if (in == 128)
        m[oldest].tracked = false;
    m[nbegun].tracked = true;
    return true;
}

static void check_jobs(fixture_t *f, const mjob_t *m, size_t nbegun, uint64_t untracked)
{
    json_t *j = get_json(f, "/jobs");
    assert_int_equal(json_integer_value(json_object_get(j, "untracked")), untracked);
    size_t listed = 0, running_model = 0, tracked = 0;
    for (size_t i = 1; i <= nbegun; i++) {
        running_model += m[i].tracked && !m[i].ended;
        tracked += m[i].tracked;
    }
    const char *lists[2] = {"running", "recent"};
    for (size_t l = 0; l < 2; l++) {
        json_t *arr = json_object_get(j, lists[l]);
        uint64_t prev = UINT64_MAX;
        for (size_t k = 0; k < json_array_size(arr); k++) {
            json_t *o = json_array_get(arr, k);
            uint64_t id = (uint64_t)json_integer_value(json_object_get(o, "id"));
            assert_true(id >= 1 && id <= nbegun);
            assert_true(m[id].tracked);
            assert_true(id < prev); /* newest first */
            prev = id;
            const mjob_t *x = &m[id];
            assert_int_equal(l == 0, !x->ended);
            const char *want = !x->ended ? "running" : x->ok ? "done" : "failed";
            assert_string_equal(json_string_value(json_object_get(o, "state")), want);
            assert_string_equal(json_string_value(json_object_get(o, "phase")), x->phase);
            assert_string_equal(json_string_value(json_object_get(o, "sql")), x->sql);
            assert_int_equal(json_integer_value(json_object_get(o, "tasks_total")), x->total);
            assert_int_equal(json_integer_value(json_object_get(o, "tasks_done")), x->done);
            assert_int_equal(json_integer_value(json_object_get(o, "tasks_rerun")), x->rerun);
            assert_int_equal(json_integer_value(json_object_get(o, "tasks_failed")), x->failed);
            assert_int_equal(json_integer_value(json_object_get(o, "bytes")), x->bytes);
            assert_int_equal(json_object_get(o, "error") != NULL, x->ended && !x->ok);
            listed++;
        }
    }
    /* exactly the model's set: listed ones are tracked (above), and as many */
    assert_int_equal(json_array_size(json_object_get(j, "running")), running_model);
    assert_int_equal(listed, tracked);
    json_decref(j);
}

static void test_jobs_model(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(false);
    mjob_t *m = calloc(MJOBS + 1, sizeof(*m));
    assert_non_null(m);
    srand(20261127);
    size_t nbegun = 0;
    uint64_t untracked = 0;
    const char *phases[3] = {"infer", "run", "whole"};
    for (int step = 0; step < 4000; step++) {
        int op = rand() % 10;
        size_t id = nbegun ? 1 + (size_t)rand() % nbegun : 0;
        if ((op < 2 || !nbegun) && nbegun < MJOBS) {
            mjob_t *x = &m[++nbegun];
            snprintf(x->sql, sizeof(x->sql), "SELECT %zu FROM t%d", nbegun, rand() % 100);
            snprintf(x->phase, sizeof(x->phase), "plan");
            if (!model_begin(m, nbegun))
                untracked++;
            tsr_sched_http_job_begin(f->h, nbegun, x->sql, strlen(x->sql));
        } else if (id && !m[id].ended && op < 5) {
            size_t n = 1 + (size_t)rand() % 9;
            const char *ph = phases[rand() % 3];
            m[id].total += (uint32_t)n;
            snprintf(m[id].phase, sizeof(m[id].phase), "%s", ph);
            tsr_sched_http_job_tasks(f->h, id, ph, n);
        } else if (id && !m[id].ended && op < 9) {
            tsr_sched_task_outcome_t oc = (tsr_sched_task_outcome_t)(rand() % 3);
            uint64_t b = (uint64_t)rand() % 5000;
            m[id].done += oc == TSR_SCHED_TASK_OK;
            m[id].rerun += oc == TSR_SCHED_TASK_RERUN;
            m[id].failed += oc == TSR_SCHED_TASK_FAILED;
            m[id].bytes += b;
            tsr_sched_http_task_end(f->h, id, oc, b);
        } else if (id && !m[id].ended && (rand() % 4 == 0 || nbegun == MJOBS)) {
            /* ends rarer than begins, so the running jobs fill the table */
            m[id].ended = true;
            m[id].ok = rand() % 3 != 0;
            uint64_t b = (uint64_t)rand() % 100;
            m[id].bytes += b;
            tsr_sched_http_job_end(f->h, id, m[id].ok, "something \"failed\"\n", b);
        }
        if (step % 50 == 49)
            check_jobs(f, m, nbegun, untracked);
    }
    assert_true(untracked > 0); /* the random history did fill the table */
    check_jobs(f, m, nbegun, untracked);

    /* saturate: 130 more running jobs; the table keeps 128 running, counts the rest */
    fixture_free(f);
    f = fixture_new(false);
    for (uint64_t id = 1; id <= 130; id++)
        tsr_sched_http_job_begin(f->h, id, "SELECT 1", 8);
    json_t *j = get_json(f, "/jobs");
    assert_int_equal(json_array_size(json_object_get(j, "running")), 128);
    assert_int_equal(json_integer_value(json_object_get(j, "untracked")), 2);
    json_decref(j);
    /* hooks for an untracked job only move the counters */
    tsr_sched_http_task_end(f->h, 130, TSR_SCHED_TASK_OK, 5);
    tsr_sched_http_job_end(f->h, 130, true, NULL, 7);
    tsr_sched_http_job_end(f->h, 3, false, "boom", 0);
    tsr_sched_http_job_begin(f->h, 131, "SELECT 2", 8); /* takes job 3's slot */
    j = get_json(f, "/jobs");
    assert_int_equal(json_array_size(json_object_get(j, "running")), 128);
    assert_int_equal(json_array_size(json_object_get(j, "recent")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(json_object_get(j, "running"), 0), "id")),
        131);
    json_decref(j);
    ticker_start(f);
    resp_t r = request(tsr_sched_http_port(f->h), "GET", "/metrics", NULL);
    assert_non_null(strstr(r.body, "\ntessera_tasks_run_total 1\n"));
    assert_non_null(strstr(r.body, "tessera_jobs_total{outcome=\"ok\"} 1\n"));
    assert_non_null(strstr(r.body, "tessera_jobs_total{outcome=\"failed\"} 1\n"));
    assert_non_null(strstr(r.body, "tessera_bytes_moved_total{path=\"tasks\"} 5\n"));
    assert_non_null(strstr(r.body, "tessera_bytes_moved_total{path=\"answers\"} 7\n"));
    assert_non_null(strstr(r.body, "\ntessera_jobs_running 128\n"));
    free(r.body);
    free(m);
    fixture_free(f);
}

static void test_sql_text(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(false);
    char sql[700];
    size_t n = 0;
    memcpy(sql, "SELECT '", 8);
    n = 8;
    while (n + 2 < 600) { /* 'é' is 2 bytes: the 255-byte cut falls inside one */
        sql[n++] = (char)0xC3;
        sql[n++] = (char)0xA9;
    }
    sql[n] = '\0';
    tsr_sched_http_job_begin(f->h, 1, sql, n);
    tsr_sched_http_job_begin(f->h, 2, "SELECT '\xff\xfe'", 12); /* not UTF-8 */
    tsr_sched_http_job_begin(f->h, 3, NULL, 0);
    tsr_sched_http_job_begin(f->h, 4, "SELECT 1; garbage", 8); /* only sql_len bytes */
    json_t *j = get_json(f, "/jobs");
    json_t *run = json_object_get(j, "running");
    assert_int_equal(json_array_size(run), 4);
    const char *s4 = json_string_value(json_object_get(json_array_get(run, 0), "sql"));
    const char *s3 = json_string_value(json_object_get(json_array_get(run, 1), "sql"));
    const char *s2 = json_string_value(json_object_get(json_array_get(run, 2), "sql"));
    const char *s1 = json_string_value(json_object_get(json_array_get(run, 3), "sql"));
    assert_string_equal(s4, "SELECT 1");
    assert_string_equal(s3, "");
    assert_string_equal(s2, "(not UTF-8)");
    assert_true(strlen(s1) <= 255 && strlen(s1) >= 250);
    assert_memory_equal(s1, sql, strlen(s1)); /* a prefix, cut between characters */
    assert_int_equal((strlen(s1) - 8) % 2, 0);
    json_decref(j);
    fixture_free(f);
}

/* ---- protocol, auth, bounds ------------------------------------------------------------ */

static void test_errors(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(false);
    ticker_start(f);
    uint16_t port = tsr_sched_http_port(f->h);
    resp_t r = request(port, "GET", "/nope", NULL);
    assert_int_equal(r.code, 404);
    assert_non_null(strstr(r.body, "\"error\":\"not found\""));
    free(r.body);
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        r = request(port, methods[i], i % 2 ? "/nope" : "/status", "Content-Length: 0\r\n");
        assert_int_equal(r.code, 405);
        assert_non_null(strstr(r.headers, "Allow: GET, HEAD"));
        free(r.body);
    }
    r = request(port, "HEAD", "/status", NULL);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "");
    free(r.body);
    r = request(port, "GET", "/jobs?limit=3", NULL);
    assert_int_equal(r.code, 200);
    free(r.body);
    fixture_free(f);
}

static void test_auth(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(true);
    ticker_start(f);
    uint16_t port = tsr_sched_http_port(f->h);
    /* the bearer, computed here independently */
    uint8_t mac[32];
    unsigned ml = 0;
    HMAC(EVP_sha256(), "0123456789abcdef0123456789abcdef", 32, (const unsigned char *)"tsr-http", 8,
         mac, &ml);
    char want[65], hdr[128];
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    char got[TSR_HTTP_BEARER_LEN + 1];
    tsr_sched_http_bearer(&f->s.token, got);
    assert_string_equal(got, want);
    const char *bad[] = {NULL, "Authorization: Bearer\r\n", "Authorization: Basic abc\r\n",
                         "Authorization: Bearer 0000\r\n"};
    for (size_t i = 0; i < 4; i++) {
        resp_t r = request(port, "GET", "/status", bad[i]);
        assert_int_equal(r.code, 401);
        assert_non_null(strstr(r.headers, "WWW-Authenticate: Bearer"));
        assert_null(strstr(r.body, "workers"));
        free(r.body);
    }
    /* one wrong digit anywhere */
    for (int pos = 0; pos < 64; pos += 9) {
        char tweaked[65];
        memcpy(tweaked, want, 65);
        tweaked[pos] = tweaked[pos] == 'a' ? 'b' : 'a';
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tweaked);
        resp_t r = request(port, "GET", "/metrics", hdr);
        assert_int_equal(r.code, 401);
        free(r.body);
    }
    snprintf(hdr, sizeof(hdr), "Authorization: bearer %s\r\n", want);
    resp_t r = request(port, "GET", "/status", hdr);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.body, "\"workers\""));
    free(r.body);
    fixture_free(f);
}

static uint64_t now_ms(void)
{
    return tsr_sched_now_ms();
}

typedef struct waiter {
    uint16_t port;
    int code;
} waiter_t;

/* No cmocka asserts off the test's thread: records 200, another code, or -1
 * when the connection closed without an answer (stop may drop it). */
static void *wait_main(void *arg)
{
    waiter_t *w = arg;
    w->code = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(w->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET /status HTTP/1.0\r\n\r\n";
    char buf[256] = "";
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1) &&
        read(fd, buf, sizeof(buf) - 1) > 0)
        sscanf(buf, "HTTP/1.%*d %d", &w->code);
    close(fd);
    return NULL;
}

static void test_busy_loop_and_stop(void **state)
{
    (void)state;
    /* no ticker: the loop is "busy"; the request still answers, within ~1 s */
    fixture_t *f = fixture_new(false);
    uint64_t t0 = now_ms();
    json_t *st = get_json(f, "/status");
    uint64_t took = now_ms() - t0;
    assert_true(took >= 900 && took < 5000);
    assert_int_equal(json_array_size(json_object_get(st, "workers")), 0); /* none copied yet */
    json_decref(st);
    /* stop while a request waits for the loop: both return promptly */
    waiter_t w = {tsr_sched_http_port(f->h), 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_main, &w), 0);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    t0 = now_ms();
    fixture_free(f);
    pthread_join(th, NULL);
    assert_true(now_ms() - t0 < 3000);
    assert_true(w.code == 200 || w.code == -1);
}

static void test_port_in_use(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(false);
    sched_t s2;
    memset(&s2, 0, sizeof(s2));
    tsr_sched_params_t p2 = {0};
    s2.p = &p2;
    s2.token.len = 16;
    tsr_sched_http_params_t hp = {.host = "127.0.0.1", .port = tsr_sched_http_port(f->h)};
    tsr_sched_http_t *h2 = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_sched_http_start(&s2, &hp, &h2, &err), TSR_ERR_UNAVAILABLE);
    assert_null(h2);
    assert_non_null(strstr(err.message, "in use"));
    assert_int_equal(tsr_status_exit_code(err.status), 5);
    hp.host = "nosuch.invalid";
    hp.port = 0;
    tsr_error_clear(&err);
    assert_int_equal(tsr_sched_http_start(&s2, &hp, &h2, &err), TSR_ERR_BAD_INPUT);
    assert_null(h2);
    tsr_sched_http_stop(NULL); /* accepted */
    tsr_sched_http_tick(NULL);
    tsr_sched_http_job_begin(NULL, 1, "x", 1);
    fixture_free(f);
}

int main(void)
{
#ifndef TSR_HAVE_MICROHTTPD
    printf("skipped: this build has no HTTP endpoint (no libmicrohttpd)\n");
    return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_metrics), cmocka_unit_test(test_jobs_model),
        cmocka_unit_test(test_sql_text),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_auth),           cmocka_unit_test(test_busy_loop_and_stop),
        cmocka_unit_test(test_port_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
