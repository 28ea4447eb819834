/*
 * test_transport_replies.c - who owns a response's bytes (transport/rpc.c,
 * rpc_recv.c), in one process over loopback: a server S (progress thread,
 * inline echo handler) and a client C.
 *
 * Small responses (up to TSR_SMALLBUF_BYTES) arrive in a ring of pooled
 * buffers that tsr_rpc_msg_release gives back with a plain store, from any
 * thread; the ring is taken in order, and a buffer still held when the
 * cursor comes round is skipped (that payload goes to the heap). Checked
 * against a model - every reply must hold exactly what the echo was given,
 * for as long as its holder keeps it:
 *  - holding: 700 calls with payloads of 0..130 bytes (across the 112-byte
 *    pool limit), every reply of the first 300 and every 7th after that
 *    held to the end (more held at once than the ring has buffers, and
 *    holders the cursor passes lap after lap), each compared byte for byte
 *    at the end and released in a random order;
 *  - releasing on another thread: 2 caller threads hand their replies to a
 *    releaser thread through a queue; it keeps 300 back (more than the
 *    ring's 256, so the cursor meets buffers another thread holds and
 *    releases) and checks and releases the rest while the callers go on
 *    calling (the busy flags cross threads);
 *  - blocking calls whose record lives on the caller's stack: a call that
 *    times out (the handler holds the request) answers TSR_ERR_TIMEOUT with
 *    an empty reply; its late response, once the handler answers, is
 *    dropped and counted (rx_late), and the next calls work (in ASan
 *    builds with detect_stack_use_after_return);
 *  - responses to a live call: one naming another type is refused and
 *    counted (rx_bad_field) and the call goes on, the right one is taken;
 *    an empty one in the full header (the general path) gives an empty
 *    reply; a second answer to a finished id - its slot reused by the next
 *    call, whose id differs in generation - is late (rx_late).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* white-box: TSR_SMALLBUF_BYTES */
#include "transport.h"
#include "transport_test.h"

#define T_ECHO 21 /* answers its payload */
#define T_HOLD 22 /* keeps the request; the test answers it later */
#define MAXLEN 130
#define NCALLS 700
#define NHELD_FIRST 300

typedef struct srv {
    tsr_transport_t *t;
    _Atomic(tsr_rpc_req_t *) held; /* T_HOLD's request, until answered */
} srv_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void h_echo(void *arg, tsr_rpc_req_t *req)
{
    srv_t *s = arg;
    size_t len = 0;
    const void *d = tsr_rpc_req_data(req, &len);
    (void)tsr_rpc_reply(s->t, req, TSR_OK, d, len);
}

static void h_hold(void *arg, tsr_rpc_req_t *req)
{
    srv_t *s = arg;
    atomic_store(&s->held, req);
}

static void fill(uint8_t *b, size_t len, unsigned *seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)rand_r(seed);
}

typedef struct fixture {
    srv_t s;
    tsr_transport_t *c;
    tsr_peer_t *p;
} fixture_t;

static void setup_pair(fixture_t *f)
{
    setenv("UCX_NET_DEVICES", "lo", 0);
    setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);
    memset(f, 0, sizeof(*f));
    tsr_transport_params_t sp = {.node_id = 1, .listen_host = "127.0.0.1", .spin_us = 20};
    f->s.t = test_transport_create(&sp);
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(
        tsr_rpc_register_flags(f->s.t, T_ECHO, h_echo, &f->s, TSR_RPC_INLINE, &err), TSR_OK);
    assert_int_equal(tsr_rpc_register(f->s.t, T_HOLD, h_hold, &f->s, &err), TSR_OK);
    assert_int_equal(tsr_transport_start_thread(f->s.t, &err), TSR_OK);
    tsr_transport_params_t cp = {.node_id = 2, .spin_us = 20};
    f->c = test_transport_create(&cp);
    f->p = test_transport_connect(f->c, f->s.t);
}

static void teardown_pair(fixture_t *f)
{
    tsr_transport_destroy(f->c);
    tsr_transport_destroy(f->s.t);
}

static size_t pick_len(unsigned i, unsigned *seed)
{
    static const size_t edges[] = {0, 1, 8, TSR_SMALLBUF_BYTES, TSR_SMALLBUF_BYTES + 1, MAXLEN};
    if (i % 5 == 0)
        return edges[i / 5 % (sizeof(edges) / sizeof(edges[0]))];
    return (size_t)(rand_r(seed) % (MAXLEN + 1));
}

/* ---- holding replies across laps of the ring -------------------------- */

typedef struct held {
    tsr_rpc_msg_t m;
    uint8_t want[MAXLEN];
    size_t len;
} held_t;

static void test_hold_replies(void **state)
{
    (void)state;
    fixture_t f;
    setup_pair(&f);
    static held_t held[NCALLS];
    unsigned nheld = 0, seed = 4242u;
    uint8_t in[MAXLEN];
    for (unsigned i = 0; i < NCALLS; i++) {
        size_t len = pick_len(i, &seed);
        fill(in, len, &seed);
        tsr_rpc_msg_t reply;
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t rc = tsr_rpc_call(f.c, f.p, T_ECHO, in, len, 10000, &reply, &err);
        if (rc != TSR_OK)
            fprintf(stderr, "call %u: %s\n", i, err.message);
        assert_int_equal(rc, TSR_OK);
        assert_int_equal(reply.len, len);
        if (len)
            assert_memory_equal(reply.data, in, len);
        if (i < NHELD_FIRST || i % 7 == 0) {
            held_t *h = &held[nheld++];
            h->m = reply;
            h->len = len;
            memcpy(h->want, in, len);
        } else {
            tsr_rpc_msg_release(f.c, &reply);
        }
    }
    /* Every held reply is intact, however many laps the ring made since. */
    for (unsigned i = 0; i < nheld; i++) {
        assert_int_equal(held[i].m.len, held[i].len);
        if (held[i].len)
            assert_memory_equal(held[i].m.data, held[i].want, held[i].len);
    }
    for (unsigned i = nheld; i > 1; i--) { /* released in a random order */
        unsigned j = (unsigned)rand_r(&seed) % i;
        held_t tmp = held[i - 1];
        held[i - 1] = held[j];
        held[j] = tmp;
    }
    for (unsigned i = 0; i < nheld; i++) {
        tsr_rpc_msg_release(f.c, &held[i].m);
        assert_null(held[i].m.data); /* release clears the message */
    }
    /* And the ring serves again once they are back. */
    uint64_t v = 99;
    tsr_rpc_msg_t reply;
    assert_int_equal(tsr_rpc_call(f.c, f.p, T_ECHO, &v, 8, 10000, &reply, NULL), TSR_OK);
    assert_int_equal(reply.len, 8);
    assert_memory_equal(reply.data, &v, 8);
    assert_non_null(reply.small_); /* white-box: a pooled buffer again, not the heap */
    tsr_rpc_msg_release(f.c, &reply);
    teardown_pair(&f);
}

/* ---- released on another thread ---------------------------------------- */

#define QCAP 400 /* more than the ring's buffers... */
#define LAG 300  /* ...and the releaser keeps this many back: the cursor meets held ones */
#define PER_CALLER 1500

typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    held_t items[QCAP];
    unsigned head, n;
    unsigned producers_left;
    unsigned checked, bad;
    tsr_transport_t *c; /* the transport the replies came from */
} queue_t;

typedef struct producer {
    pthread_t th;
    fixture_t *f;
    queue_t *q;
    unsigned seed, failed;
} producer_t;

static void *producer_main(void *arg)
{
    producer_t *pr = arg;
    uint8_t in[MAXLEN];
    for (unsigned i = 0; i < PER_CALLER; i++) {
        size_t len = pick_len(i, &pr->seed);
        fill(in, len, &pr->seed);
        tsr_rpc_msg_t reply;
        if (tsr_rpc_call(pr->f->c, pr->f->p, T_ECHO, in, len, 10000, &reply, NULL) != TSR_OK) {
            pr->failed++;
            continue;
        }
        pthread_mutex_lock(&pr->q->mu);
        while (pr->q->n == QCAP)
            pthread_cond_wait(&pr->q->cv, &pr->q->mu);
        held_t *h = &pr->q->items[(pr->q->head + pr->q->n) % QCAP];
        h->m = reply;
        h->len = len;
        memcpy(h->want, in, len);
        pr->q->n++;
        pthread_cond_broadcast(&pr->q->cv);
        pthread_mutex_unlock(&pr->q->mu);
    }
    pthread_mutex_lock(&pr->q->mu);
    pr->q->producers_left--;
    pthread_cond_broadcast(&pr->q->cv);
    pthread_mutex_unlock(&pr->q->mu);
    return NULL;
}

static void *releaser_main(void *arg)
{
    queue_t *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->n <= LAG && q->producers_left > 0)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->n == 0)
            break;
        held_t h = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->n--;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        bool ok = h.m.len == h.len && (h.len == 0 || memcmp(h.m.data, h.want, h.len) == 0);
        tsr_rpc_msg_release(q->c, &h.m);
        pthread_mutex_lock(&q->mu);
        q->checked++;
        if (!ok)
            q->bad++;
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void test_release_elsewhere(void **state)
{
    (void)state;
    fixture_t f;
    setup_pair(&f);
    static queue_t q;
    memset(&q, 0, sizeof(q));
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    q.producers_left = 2;
    q.c = f.c;
    producer_t pr[2];
    pthread_t rel;
    assert_int_equal(pthread_create(&rel, NULL, releaser_main, &q), 0);
    for (int i = 0; i < 2; i++) {
        pr[i] = (producer_t){.f = &f, .q = &q, .seed = 77u + (unsigned)i};
        assert_int_equal(pthread_create(&pr[i].th, NULL, producer_main, &pr[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(pr[i].th, NULL);
        assert_int_equal(pr[i].failed, 0);
    }
    pthread_join(rel, NULL);
    assert_int_equal(q.bad, 0);
    assert_int_equal(q.checked, 2 * PER_CALLER);
    pthread_cond_destroy(&q.cv);
    pthread_mutex_destroy(&q.mu);
    teardown_pair(&f);
}

/* ---- a blocking call that times out, and its late answer --------------- */

static void test_timeout_then_late(void **state)
{
    (void)state;
    fixture_t f;
    setup_pair(&f);
    uint64_t v = 5;
    tsr_rpc_msg_t reply;
    memset(&reply, 0xab, sizeof(reply)); /* must come back empty */
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rpc_call(f.c, f.p, T_HOLD, &v, 8, 50, &reply, &err), TSR_ERR_TIMEOUT);
    assert_null(reply.data);
    assert_int_equal(reply.len, 0);
    tsr_rpc_msg_release(f.c, &reply);
    /* The handler got the request; answer it now, late. */
    double end = now_s() + 10;
    tsr_rpc_req_t *r = NULL;
    while (!(r = atomic_exchange(&f.s.held, NULL)) && now_s() < end)
        usleep(1000);
    assert_non_null(r);
    uint8_t big[64];
    memset(big, 7, sizeof(big));
    assert_int_equal(tsr_rpc_reply(f.s.t, r, TSR_OK, big, sizeof(big)), TSR_OK);
    tsr_transport_stats_t st;
    memset(&st, 0, sizeof(st));
    while (now_s() < end) {
        tsr_transport_wait(f.c, 10);
        tsr_transport_get_stats(f.c, &st);
        if (st.rx_late > 0)
            break;
    }
    assert_int_equal(st.rx_late, 1);
    assert_int_equal(st.calls_timed_out, 1);
    for (uint64_t i = 0; i < 50; i++) { /* the call table is sound after it */
        assert_int_equal(tsr_rpc_call(f.c, f.p, T_ECHO, &i, 8, 10000, &reply, NULL), TSR_OK);
        assert_int_equal(reply.len, 8);
        assert_memory_equal(reply.data, &i, 8);
        tsr_rpc_msg_release(f.c, &reply);
    }
    teardown_pair(&f);
}

/* ---- responses to a live call, forged and odd ---------------------------- */

static tsr_status_t g_done_status = (tsr_status_t)-1;
static size_t g_done_len = 999;
static uint8_t g_done_bytes[16];

static void on_done(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    g_done_status = st;
    g_done_len = reply->len;
    if (reply->len <= sizeof(g_done_bytes) && reply->len)
        memcpy(g_done_bytes, reply->data, reply->len);
    tsr_rpc_msg_release((tsr_transport_t *)arg, reply);
}

/* Starts an async T_HOLD call and returns the request S's handler got. */
static tsr_rpc_req_t *held_call(fixture_t *f)
{
    g_done_status = (tsr_status_t)-1;
    g_done_len = 999;
    uint64_t v = 3;
    assert_int_equal(tsr_rpc_call_async(f->c, f->p, T_HOLD, &v, 8, 20000, on_done, f->c, NULL),
                     TSR_OK);
    double end = now_s() + 10;
    tsr_rpc_req_t *r = NULL;
    while (!(r = atomic_exchange(&f->s.held, NULL)) && now_s() < end)
        tsr_transport_wait(f->c, 5);
    assert_non_null(r);
    return r;
}

static void wait_done(fixture_t *f)
{
    double end = now_s() + 10;
    while (g_done_status == (tsr_status_t)-1 && now_s() < end)
        tsr_transport_wait(f->c, 5);
}

static tsr_transport_stats_t stats_of(tsr_transport_t *t)
{
    tsr_transport_stats_t st;
    tsr_transport_get_stats(t, &st);
    return st;
}

/* Sends S -> C a call-header response (the latency path's form) for id. */
static void send_call_response(fixture_t *f, tsr_rpc_req_t *r, uint16_t type, const void *data,
                               size_t len)
{
    uint8_t h[TSR_WIRE_CALL_REQ_LEN];
    tsr_wire_hdr_t rh = {.kind = TSR_WIRE_RESPONSE, .type = type, .call_id = r->call_id};
    size_t hlen = tsr_wire_call_encode(&rh, h);
    assert_int_equal(tsr__send_raw_flags(f->s.t, r->peer, TSR_WIRE_CALL_AM_ID, h, hlen, data,
                                         len, 0, 5000, NULL),
                     TSR_OK);
}

static void test_forged_responses(void **state)
{
    (void)state;
    fixture_t f;
    setup_pair(&f);
    uint64_t v = 0x1122334455667788ull;

    /* A response naming the live call's id but another type: refused and
     * counted, the call goes on; then the right type is taken. */
    tsr_rpc_req_t *r = held_call(&f);
    tsr_transport_stats_t c0 = stats_of(f.c);
    send_call_response(&f, r, T_ECHO, &v, 8);
    double end = now_s() + 10;
    while (stats_of(f.c).rx_bad_field == c0.rx_bad_field && now_s() < end)
        tsr_transport_wait(f.c, 5);
    assert_int_equal(stats_of(f.c).rx_bad_field, c0.rx_bad_field + 1);
    assert_int_equal(g_done_status, (tsr_status_t)-1); /* still waiting */
    send_call_response(&f, r, T_HOLD, &v, 8);
    wait_done(&f);
    assert_int_equal(g_done_status, TSR_OK);
    assert_int_equal(g_done_len, 8);
    assert_memory_equal(g_done_bytes, &v, 8);
    tsr_rpc_req_drop(f.s.t, r); /* answered by hand above */

    /* A response in the full header with no payload (the general path, as
     * an older sender's): an empty reply. */
    r = held_call(&f);
    uint8_t h[TSR_WIRE_HDR_LEN];
    tsr_wire_hdr_t fh = {.kind = TSR_WIRE_RESPONSE,
                         .type = T_HOLD,
                         .src_node = 1,
                         .call_id = r->call_id,
                         .payload_len = 0};
    tsr_wire_hdr_encode(&fh, h);
    assert_int_equal(tsr__send_raw_flags(f.s.t, r->peer, TSR_WIRE_AM_ID, h, sizeof(h), NULL, 0,
                                         0, 5000, NULL),
                     TSR_OK);
    wait_done(&f);
    assert_int_equal(g_done_status, TSR_OK);
    assert_int_equal(g_done_len, 0);
    tsr_rpc_req_drop(f.s.t, r);

    /* The same id answered twice: the second is late. */
    r = held_call(&f);
    uint64_t id = r->call_id;
    assert_int_equal(tsr_rpc_reply(f.s.t, r, TSR_OK, &v, 8), TSR_OK);
    wait_done(&f);
    assert_int_equal(g_done_status, TSR_OK);
    c0 = stats_of(f.c);
    uint8_t ch[TSR_WIRE_CALL_REQ_LEN];
    tsr_wire_hdr_t rh = {.kind = TSR_WIRE_RESPONSE, .type = T_HOLD, .call_id = id};
    size_t chlen = tsr_wire_call_encode(&rh, ch);
    tsr_peer_t *back = NULL; /* S's peer for C: the one its requests came from */
    r = held_call(&f);
    back = r->peer;
    assert_int_equal(tsr__send_raw_flags(f.s.t, back, TSR_WIRE_CALL_AM_ID, ch, chlen, &v, 8, 0,
                                         5000, NULL),
                     TSR_OK);
    end = now_s() + 10;
    while (stats_of(f.c).rx_late == c0.rx_late && now_s() < end)
        tsr_transport_wait(f.c, 5);
    assert_int_equal(stats_of(f.c).rx_late, c0.rx_late + 1);
    assert_int_equal(tsr_rpc_reply(f.s.t, r, TSR_OK, &v, 8), TSR_OK); /* the live one */
    wait_done(&f);
    teardown_pair(&f);
}

/* In ASan builds, report a use of a returned frame (a blocking call's
 * record lives on its caller's stack) precisely. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_stack_use_after_return=1";
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_replies),
        cmocka_unit_test(test_release_elsewhere),
        cmocka_unit_test(test_timeout_then_late),
        cmocka_unit_test(test_forged_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
