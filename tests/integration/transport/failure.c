/*
 * failure.c - transport_test scenarios "failure" and "badinput".
 *   failure   a peer killed with SIGKILL mid-call: the calls pending on it
 *             fail with TSR_ERR_UNAVAILABLE long before their timeout, the
 *             owner gets PEER_DOWN, and the survivor keeps serving.
 *   badinput  truncated, corrupted and forged messages are rejected and
 *             counted; the server keeps answering.
 */
#include "common.h"

/* ---- failure scenario ----------------------------------------------------------- */

/* role victim NODE SERVER_PORT PORTFILE: serves T_HOLD (never answers) and
 * has its own call pending at the survivor when it is killed. */
int role_victim(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static server_t s;
    g_t = make_transport(&s.rc, (uint32_t)atoi(argv[0]), true, 0);
    server_register(&s);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    static pending_call_t pc;
    static uint8_t b[8];
    pc.buf = b;
    pc.len = 8;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call_async(g_t, srv, T_HOLD, b, 8, CALL_TIMEOUT_MS, echo_cb, &pc, &err) ==
              TSR_OK,
          "hold call");
    write_text(argv[2], "%u", (unsigned)tsr_transport_port(g_t));
    for (;;) /* until SIGKILL */
        tsr_transport_wait(g_t, 100);
}

typedef struct fail_client {
    int failed_unavail, failed_other;
    double first_fail;
} fail_client_t;

static fail_client_t g_fc;

static void hold_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    (void)arg;
    tsr_rpc_msg_release(g_t, reply);
    if (st == TSR_ERR_UNAVAILABLE)
        g_fc.failed_unavail++;
    else
        g_fc.failed_other++;
    if (g_fc.first_fail == 0)
        g_fc.first_fail = now_s();
}

/* role fail_client NODE SERVER_PORT VICTIM_PORT */
int role_fail_client(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    tsr_peer_t *vic = connect_to(g_t, (uint16_t)atoi(argv[2]));
    CHECK(tsr_peer_node_id(vic) == 2, "victim node id");
    tsr_error_t err;
    static uint8_t b[4][8];
    for (int i = 0; i < 4; i++)
        CHECK(tsr_rpc_call_async(g_t, vic, T_HOLD, b[i], 8, CALL_TIMEOUT_MS, hold_cb, NULL,
                                 &err) == TSR_OK,
              "hold call");
    /* One call that must come back while the victim dies: rendezvous-sized. */
    size_t big = 4u << 20;
    uint8_t *bb = calloc(1, big);
    CHECK(tsr_rpc_call_async(g_t, vic, T_HOLD, bb, big, CALL_TIMEOUT_MS, hold_cb, NULL, &err) ==
              TSR_OK,
          "big hold call");
    /* Make sure they reached the victim before saying ready. */
    for (int i = 0; i < 20; i++)
        tsr_transport_wait(g_t, 10);
    double ready = now_s();
    write_text("client.ready", "1");

    double end = ready + 50; /* < CALL_TIMEOUT_MS: failing by timeout would not count */
    int served = 0;
    while (g_fc.failed_unavail + g_fc.failed_other < 5) {
        /* Keep talking to the survivor all along. */
        uint64_t v = (uint64_t)served;
        tsr_rpc_msg_t reply;
        tsr_error_clear(&err);
        tsr_status_t s = tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply, &err);
        CHECK(s == TSR_OK && reply.len == 8 && memcmp(reply.data, &v, 8) == 0,
              "survivor call %d: %s", served, err.message);
        tsr_rpc_msg_release(g_t, &reply);
        served++;
        tsr_transport_wait(g_t, 10);
        CHECK(now_s() < end, "calls to the killed peer still pending after %.1f s",
              now_s() - ready);
    }
    CHECK(g_fc.failed_unavail == 5, "pending calls failed with other statuses (%d)",
          g_fc.failed_other);
    CHECK(!tsr_peer_is_up(vic), "victim still up");
    for (int i = 0; i < 100 && rc.peers_down == 0; i++)
        tsr_transport_wait(g_t, 10);
    CHECK(rc.peers_down == 1 && rc.down[0] == vic, "PEER_DOWN event for the victim");
    /* New calls to the dead peer fail at once. */
    tsr_rpc_msg_t reply;
    CHECK(tsr_rpc_call(g_t, vic, T_ECHO, b[0], 8, 1000, &reply, NULL) == TSR_ERR_UNAVAILABLE,
          "call to dead peer");
    /* And the survivor keeps serving. */
    for (int i = 0; i < 100; i++) {
        uint64_t v = (uint64_t)i * 3;
        tsr_error_clear(&err);
        CHECK(tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
              "survivor after: %s", err.message);
        tsr_rpc_msg_release(g_t, &reply);
    }
    fprintf(stderr, "[fail_client] pending calls failed %.3f s after the kill window opened; "
                    "%d survivor calls during it (%s)\n",
            g_fc.first_fail - ready, served, tls_name());
    tsr_peer_forget(g_t, vic);
    free(bb);
    tsr_transport_destroy(g_t);
    return 0;
}

int scenario_failure(void)
{
    pid_t srv = spawn("server", "1", "2", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t vic = spawn("victim", "2", ps, "vport", NULL);
    uint16_t vport = read_port("vport");
    char vs[16];
    snprintf(vs, sizeof(vs), "%u", (unsigned)vport);
    pid_t cli = spawn("fail_client", "10", ps, vs, NULL);
    wait_file("client.ready", 20);
    CHECK(kill(vic, SIGKILL) == 0, "kill victim");
    wait_kid(vic, 10, false);
    wait_kid(cli, 40, true);
    wait_kid(srv, 20, true);
    return 0;
}

/* ---- bad input scenario --------------------------------------------------------- */

static void raw(tsr_peer_t *p, const uint8_t *hdr, size_t hlen, const void *data, size_t len)
{
    /* The send may fail (a refused rendezvous): only the server's fate matters. */
    (void)tsr__send_raw(g_t, p, hdr, hlen, data, len, 10000, NULL);
}

/* The same on the call header's AM id, with am_flags. */
static void raw_call(tsr_peer_t *p, const uint8_t *hdr, size_t hlen, uint32_t am_flags,
                     const void *data, size_t len)
{
    (void)tsr__send_raw_flags(g_t, p, TSR_WIRE_CALL_AM_ID, hdr, hlen, data, len, am_flags,
                              10000, NULL);
}

#define GARBAGE 200 /* random headers sent on each AM id */

/* role bad_client NODE PORT */
int role_bad_client(int argc, char **argv)
{
    CHECK(argc >= 2, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    uint8_t good[TSR_WIRE_HDR_LEN], h[64];
    tsr_wire_hdr_t gh = {.kind = TSR_WIRE_REQUEST, .type = T_ECHO, .src_node = 10,
                         .call_id = 12345, .payload_len = 50};
    tsr_wire_hdr_encode(&gh, good);
    static uint8_t payload[1 << 20];
    unsigned expect_trunc = 0, expect_magic = 0, expect_field = 0, expect_late = 0;

    raw(srv, good, 10, payload, 50); /* truncated header */
    expect_trunc++;
    raw(srv, good, 0, payload, 50); /* no header at all */
    expect_trunc++;
    memcpy(h, good, 40);
    h[0] ^= 0xff; /* magic */
    raw(srv, h, 40, payload, 50);
    expect_magic++;
    memcpy(h, good, 40);
    h[2] = 9; /* version */
    raw(srv, h, 40, payload, 50);
    expect_magic++;
    memcpy(h, good, 40);
    h[3] = 9; /* kind */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    raw(srv, good, 40, payload, 49); /* payload shorter than announced */
    expect_field++;
    raw(srv, good, 40, payload, 51); /* longer */
    expect_field++;
    memcpy(h, good, 40);
    h[8] = 1; /* flags */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    memcpy(h, good, 40);
    tsr_wire_put_u16(h + 4, 48); /* announces 48 header bytes, sends 40 */
    raw(srv, h, 40, payload, 50);
    expect_trunc++;
    memcpy(h, good, 40);
    tsr_wire_put_u64(h + 24, 0); /* call id 0 */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    memcpy(h, good, 40);
    tsr_wire_put_u64(h + 32, 1ull << 50); /* absurd length */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    tsr_wire_hdr_t rh = {.kind = TSR_WIRE_RESPONSE, .type = T_ECHO, .src_node = 10,
                         .call_id = 777, .payload_len = 0};
    tsr_wire_hdr_encode(&rh, h);
    raw(srv, h, 40, NULL, 0); /* a response to no call of the server's */
    expect_late++;
    /* The same as responses are really sent: without UCX's reply endpoint
     * (the receiver checks the call id and src_node instead). */
    (void)tsr__send_raw_flags(g_t, srv, TSR_WIRE_AM_ID, h, 40, NULL, 0, 0, 10000, NULL);
    expect_late++;
    tsr_wire_put_u32(h + 16, 0); /* src_node 0, no reply endpoint */
    (void)tsr__send_raw_flags(g_t, srv, TSR_WIRE_AM_ID, h, 40, NULL, 0, 0, 10000, NULL);
    expect_field++;
    tsr_wire_hdr_encode(&rh, h);
    h[8] = 1; /* flags, no reply endpoint */
    (void)tsr__send_raw_flags(g_t, srv, TSR_WIRE_AM_ID, h, 40, NULL, 0, 0, 10000, NULL);
    expect_field++;
    tsr_wire_hdr_t qh = {.kind = TSR_WIRE_REQUEST, .type = T_ECHO, .src_node = 10,
                         .call_id = 4242, .payload_len = 0};
    tsr_wire_hdr_encode(&qh, h);
    /* A request without the reply endpoint: nobody to answer, refused. */
    (void)tsr__send_raw_flags(g_t, srv, TSR_WIRE_AM_ID, h, 40, NULL, 0, 0, 10000, NULL);
    expect_field++;
    tsr_wire_hdr_encode(&rh, h);
    tsr_wire_put_u32(h + 12, (uint32_t)-77); /* a status that does not exist */
    raw(srv, h, 40, NULL, 0);
    expect_field++;
    tsr_wire_hdr_t hh = {.kind = TSR_WIRE_HELLO, .src_node = 10};
    tsr_wire_hdr_encode(&hh, h);
    raw(srv, h, 40, NULL, 0); /* a second handshake */
    expect_field++;
    memcpy(h, good, 40);
    h[0] ^= 0xff;
    raw(srv, h, 40, payload, sizeof(payload)); /* bad header on a rendezvous */
    expect_magic++;
    /* The call header (the form requests and responses are sent with): a
     * request's is 20 bytes (Q), a response's 16. */
    const size_t Q = TSR_WIRE_CALL_REQ_LEN;
    uint8_t cgood[TSR_WIRE_CALL_REQ_LEN];
    tsr_wire_hdr_t cq = {.kind = TSR_WIRE_REQUEST, .type = T_ECHO, .call_id = 5151};
    CHECK(tsr_wire_call_encode(&cq, cgood) == Q, "request header length");
    const uint32_t rf = UCP_AM_SEND_FLAG_REPLY;
    raw_call(srv, cgood, 10, rf, payload, 8); /* truncated */
    expect_trunc++;
    raw_call(srv, cgood, 16, rf, payload, 8); /* a request cut to a response's length */
    expect_trunc++;
    raw_call(srv, cgood, 0, rf, payload, 8); /* none */
    expect_trunc++;
    memcpy(h, cgood, Q);
    h[1] = 1; /* version 1 (before routes) */
    raw_call(srv, h, Q, rf, payload, 8);
    expect_magic++;
    h[1] = TSR_WIRE_CALL_VERSION;
    memset(h + Q, 0, 4);
    raw_call(srv, h, Q + 4, rf, payload, 8); /* longer than a call header */
    expect_field++;
    memcpy(h, cgood, Q);
    h[0] = TSR_WIRE_HELLO; /* no handshakes in call headers */
    raw_call(srv, h, 16, rf, NULL, 0);
    expect_field++;
    memcpy(h, cgood, Q);
    tsr_wire_put_u64(h + 8, 0); /* call id 0 */
    raw_call(srv, h, Q, rf, payload, 8);
    expect_field++;
    memcpy(h, cgood, Q);
    tsr_wire_put_u32(h + 4, 3); /* a route word, and the reply endpoint too */
    raw_call(srv, h, Q, rf, payload, 8);
    expect_field++;
    raw_call(srv, cgood, Q, 0, payload, 8); /* a request without route or reply endpoint */
    expect_field++;
    /* Routes (route.c): the server gave us one in the handshake. */
    CHECK(srv->remote_route != 0, "the server gave no route");
    tsr_wire_hdr_t rq = cq;
    rq.route = srv->remote_route ^ (1ull << 40); /* our slot and tag, a wrong secret */
    tsr_wire_call_encode(&rq, h);
    raw_call(srv, h, Q, 0, payload, 8);
    expect_field++;
    rq.route = srv->remote_route ^ (1ull << 20); /* our slot, another tag */
    tsr_wire_call_encode(&rq, h);
    raw_call(srv, h, Q, 0, payload, 8);
    expect_field++;
    rq.route = (srv->remote_route & ~0xffffull) | 0xfffeu; /* a slot nobody holds */
    tsr_wire_call_encode(&rq, h);
    raw_call(srv, h, Q, 0, payload, 8);
    expect_field++;
    rq.route = srv->remote_route; /* our route, and the reply endpoint too */
    tsr_wire_call_encode(&rq, h);
    raw_call(srv, h, Q, rf, payload, 8);
    expect_field++;
    /* Naming ourselves as another client: a second client of the server's
     * (another transport here) got its own route; we know its slot and
     * tag (bits 0-31), not its secret, as an attacker could learn its
     * slot and guess the rest. Refused. */
    static role_ctx_t rc2;
    tsr_transport_t *t2 = make_transport(&rc2, 11, false, 0);
    tsr_peer_t *srv2 = connect_to(t2, (uint16_t)atoi(argv[1]));
    CHECK(srv2->remote_route != 0 && srv2->remote_route != srv->remote_route,
          "the second client's route");
    rq.route = (srv2->remote_route & 0xffffffffull) | (srv->remote_route & ~0xffffffffull);
    tsr_wire_call_encode(&rq, h);
    raw_call(srv, h, Q, 0, payload, 8);
    expect_field++;
    tsr_transport_destroy(t2);
    tsr_wire_hdr_t cr = {.kind = TSR_WIRE_RESPONSE, .type = T_ECHO, .call_id = 9191};
    tsr_wire_call_encode(&cr, h);
    raw_call(srv, h, 16, 0, NULL, 0); /* a response to no call of the server's */
    expect_late++;
    tsr_wire_put_u32(h + 4, (uint32_t)-77); /* a status that does not exist */
    raw_call(srv, h, 16, 0, NULL, 0);
    expect_field++;
    memcpy(h, cgood, Q);
    h[1] = 7;
    raw_call(srv, h, Q, rf, payload, sizeof(payload)); /* bad header, rendezvous */
    expect_magic++;
    /* Random garbage headers of random lengths, on both AM ids. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 2 * GARBAGE; i++) {
        size_t hl = (size_t)(i % 48);
        for (size_t j = 0; j < hl; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            h[j] = (uint8_t)x;
        }
        if (i < GARBAGE)
            raw(srv, h, hl, payload, (size_t)(x % 300));
        else
            raw_call(srv, h, hl, rf, payload, (size_t)(x % 300));
    }
    /* The server still answers, and counted every rejection. */
    tsr_rpc_msg_t reply;
    tsr_error_t err;
    tsr_error_clear(&err);
    uint64_t v = 5;
    CHECK(tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "echo after garbage: %s", err.message);
    tsr_rpc_msg_release(g_t, &reply);
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call(g_t, srv, T_STATS, NULL, 0, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "stats: %s", err.message);
    CHECK(reply.len == sizeof(tsr_transport_stats_t), "stats size");
    tsr_transport_stats_t st;
    memcpy(&st, reply.data, sizeof(st));
    tsr_rpc_msg_release(g_t, &reply);
    fprintf(stderr,
            "[bad_client] server counted: rejected %llu (trunc %llu magic %llu field %llu) "
            "late %llu msgs %llu\n",
            (unsigned long long)st.rx_rejected, (unsigned long long)st.rx_truncated,
            (unsigned long long)st.rx_bad_magic, (unsigned long long)st.rx_bad_field,
            (unsigned long long)st.rx_late, (unsigned long long)st.rx_msgs);
    unsigned fixed = expect_trunc + expect_magic + expect_field;
    CHECK(st.rx_truncated >= expect_trunc, "truncated %llu < %u",
          (unsigned long long)st.rx_truncated, expect_trunc);
    CHECK(st.rx_bad_magic >= expect_magic, "bad magic %llu < %u",
          (unsigned long long)st.rx_bad_magic, expect_magic);
    CHECK(st.rx_bad_field >= expect_field, "bad field %llu < %u",
          (unsigned long long)st.rx_bad_field, expect_field);
    CHECK(st.rx_late == expect_late, "late %llu", (unsigned long long)st.rx_late);
    /* 2 x GARBAGE garbage headers: every one is refused (a random 40-byte
     * header passing every check is a 2^-100 event; a random call header
     * needs a kind, a version, the right length and a listed status - or,
     * for a request sent with the reply flag, as these are, a route word of
     * 0 and a zero high half: below 2^-40). */
    CHECK(st.rx_rejected == fixed + 2 * GARBAGE, "rejected %llu, expected %u",
          (unsigned long long)st.rx_rejected, fixed + 2 * GARBAGE);
    tsr_transport_destroy(g_t);
    return 0;
}

int scenario_badinput(void)
{
    /* The server ends when 2 peers went down: bad_client's two transports. */
    pid_t srv = spawn("server", "1", "2", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t c = spawn("bad_client", "10", ps, NULL);
    wait_kid(c, 60, true);
    wait_kid(srv, 20, true);
    return 0;
}

