/*
 * rpc.c - transport_test scenario "rpc": 1 server, 3 clients: hundreds of
 * concurrent calls with payloads of 0 B .. 64 MiB (rendezvous both ways),
 * responses matched by id when the server answers in reverse order,
 * timeouts and late replies, unknown types.
 */
#include "common.h"

/* ---- rpc scenario ----------------------------------------------------------- */

static void delay_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    pending_call_t *pc = arg;
    CHECK(st == TSR_OK, "delay call: %s", tsr_status_name(st));
    CHECK(reply->len == 8 && memcmp(reply->data, pc->buf, 8) == 0, "delay reply mismatch");
    tsr_rpc_msg_release(g_t, reply);
    pc->done = true;
    pc->order = g_rc.next_order++;
    g_rc.completed++;
}

static void wait_completed(int n, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (g_rc.completed < n) {
        tsr_transport_wait(g_t, 50);
        CHECK(now_s() < end, "only %d of %d calls completed", g_rc.completed, n);
    }
}

/* role rpc_client NODE PORT INDEX */
int role_rpc_client(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    uint32_t node = (uint32_t)atoi(argv[0]);
    g_t = make_transport(&rc, node, false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    int index = atoi(argv[2]);
    CHECK(tsr_peer_node_id(srv) == 1, "server node id %u", tsr_peer_node_id(srv));
    CHECK(tsr_transport_peer(g_t, 1) == srv, "peer lookup by node id");
    tsr_error_t err;

    /* A: many concurrent echo calls of mixed sizes (eager and rendezvous). */
    static const size_t sizes[] = {0, 1, 7, 13, 64, 4093, 8192, 65537, 262147, 1048579};
    enum { NCALLS = 300, WINDOW = 48 };
    static pending_call_t calls[NCALLS];
    int issued = 0;
    g_rc.completed = 0;
    while (g_rc.completed < NCALLS) {
        while (issued < NCALLS && issued - g_rc.completed < WINDOW) {
            pending_call_t *pc = &calls[issued];
            pc->len = sizes[(issued * 7 + index) % 10];
            pc->seed = ((uint64_t)node << 32) | (uint64_t)issued;
            pc->buf = malloc(pc->len ? pc->len : 1);
            fill(pc->buf, pc->len, pc->seed);
            tsr_error_clear(&err);
            tsr_status_t s = tsr_rpc_call_async(g_t, srv, T_ECHO, pc->buf, pc->len,
                                                CALL_TIMEOUT_MS, echo_cb, pc, &err);
            CHECK(s == TSR_OK, "call_async: %s", err.message);
            issued++;
        }
        tsr_transport_wait(g_t, 50);
    }
    for (int i = 0; i < NCALLS; i++)
        free(calls[i].buf);

    /* B: 64 MiB each way (rendezvous into our buffers, zero copy at the server). */
    size_t big = 64u << 20;
    uint8_t *b = malloc(big);
    CHECK(b, "oom");
    fill(b, big, node);
    tsr_rpc_msg_t reply;
    tsr_error_clear(&err);
    if (index == 0) {
        tsr_status_t s = tsr_rpc_call(g_t, srv, T_ECHO, b, big, CALL_TIMEOUT_MS, &reply, &err);
        CHECK(s == TSR_OK, "64 MiB echo: %s", err.message);
        CHECK(reply.len == big && memcmp(reply.data, b, big) == 0, "64 MiB echo differs");
    } else {
        tsr_status_t s = tsr_rpc_call(g_t, srv, T_SUM, b, big, CALL_TIMEOUT_MS, &reply, &err);
        CHECK(s == TSR_OK, "64 MiB sum: %s", err.message);
        const uint64_t *r = reply.data;
        CHECK(reply.len == 16 && r[0] == fnv(b, big) && r[1] == big, "64 MiB checksum differs");
    }
    tsr_rpc_msg_release(g_t, &reply);
    free(b);

    /* C: the server answers this batch newest first; each response must be
     * matched to its own call, completions come in reverse issue order. */
    enum { NDELAY = 8 };
    static pending_call_t dc[NDELAY];
    static uint8_t dbuf[NDELAY][8];
    g_rc.completed = 0;
    g_rc.next_order = 0;
    for (int i = 0; i < NDELAY; i++) {
        dbuf[i][0] = (uint8_t)i;
        dbuf[i][1] = (uint8_t)node;
        dbuf[i][2] = dbuf[i][3] = 0xab;
        dbuf[i][4] = NDELAY;
        dbuf[i][5] = 0;
        dbuf[i][6] = dbuf[i][7] = (uint8_t)(i * 31);
        dc[i].buf = dbuf[i];
        dc[i].len = 8;
        tsr_error_clear(&err);
        CHECK(tsr_rpc_call_async(g_t, srv, T_DELAY, dbuf[i], 8, CALL_TIMEOUT_MS, delay_cb, &dc[i],
                                 &err) == TSR_OK,
              "delay call: %s", err.message);
    }
    wait_completed(NDELAY, 20);
    for (int i = 0; i < NDELAY; i++)
        CHECK(dc[i].order == NDELAY - 1 - i, "call %d completed %d-th", i, dc[i].order);

    /* D: a call whose answer comes after its timeout. */
    double t0 = now_s();
    uint64_t v = 1;
    tsr_error_clear(&err);
    tsr_status_t s = tsr_rpc_call(g_t, srv, T_LATE, &v, sizeof(v), 300, &reply, &err);
    double el = now_s() - t0;
    CHECK(s == TSR_ERR_TIMEOUT, "late call gave %s", tsr_status_name(s));
    CHECK(el >= 0.29 && el < 20, "timeout after %.3f s (asked 0.3)", el);
    CHECK(strstr(err.message, "timed out") != NULL, "message: %s", err.message);
    /* The late answer arrives ~2.7 s later and is dropped and counted. */
    tsr_transport_stats_t st;
    double end = now_s() + 30;
    do {
        tsr_transport_wait(g_t, 50);
        tsr_transport_get_stats(g_t, &st);
    } while (st.rx_late == 0 && now_s() < end);
    CHECK(st.rx_late == 1 && st.calls_timed_out == 1, "late %llu timed out %llu",
          (unsigned long long)st.rx_late, (unsigned long long)st.calls_timed_out);

    /* E: the peer still works; an unknown type is refused, not ignored. */
    tsr_error_clear(&err);
    s = tsr_rpc_call(g_t, srv, T_ECHO, &v, sizeof(v), CALL_TIMEOUT_MS, &reply, &err);
    CHECK(s == TSR_OK && reply.len == 8, "echo after timeout: %s", err.message);
    tsr_rpc_msg_release(g_t, &reply);
    tsr_error_clear(&err);
    s = tsr_rpc_call(g_t, srv, 999, &v, sizeof(v), CALL_TIMEOUT_MS, &reply, &err);
    CHECK(s == TSR_ERR_UNSUPPORTED, "unknown type gave %s", tsr_status_name(s));
    tsr_rpc_msg_release(g_t, &reply);

    tsr_transport_destroy(g_t);
    return 0;
}

int scenario_rpc(void)
{
    pid_t srv = spawn("server", "1", "3", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t c[3];
    c[0] = spawn("rpc_client", "10", ps, "0", NULL);
    c[1] = spawn("rpc_client", "11", ps, "1", NULL);
    c[2] = spawn("rpc_client", "12", ps, "2", NULL);
    for (int i = 0; i < 3; i++)
        wait_kid(c[i], 90, true);
    wait_kid(srv, 20, true);
    return 0;
}

