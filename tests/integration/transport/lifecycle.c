/*
 * lifecycle.c - transport_test scenarios about letting go of things: peers,
 * handlers, stuck one-sided operations.
 *
 *   forget          (one process) tsr_peer_forget on an UP peer delivers no
 *                   event for it afterwards, even one queued before (the old
 *                   code queued a PEER_DOWN naming the freed peer: ASan
 *                   reports the callback's read); forget from inside an
 *                   event callback on that callback's own peer keeps
 *                   ev->peer readable until the callback returns; a request
 *                   a handler holds outlives its peer's forget and its reply
 *                   fails cleanly; many connect/forget rounds leak nothing.
 *   forget_stopped  a server process is SIGSTOPped (frozen, not dead) with a
 *                   call pending on it: tsr_peer_forget returns within
 *                   FORGET_BOUND_S (it used to wait up to 2 s for the
 *                   endpoint close), the pending call fails, destroy is quick.
 *   unregister      (one process) tsr_rpc_unregister: requests already queued
 *                   for the type are answered TSR_ERR_UNSUPPORTED and never
 *                   reach the removed handler, new ones too; register(NULL)
 *                   is the same; a held request is still answered; bad types.
 *   atomic_timeout  a region server is SIGSTOPped: atomics posted with
 *                   tsr_atomic_post_timeout complete within their timeout
 *                   (plus slack) with TSR_ERR_TIMEOUT (or TSR_ERR_UNAVAILABLE
 *                   for the untimed one failed with the peer), never hang.
 *
 * One-process scenarios pump both transports from one thread (pump()); the
 * white-box parts use internal.h (the peer list, the request list).
 */
#include "common.h"

#define T_COUNT 20  /* unregister: a handler that counts and answers */
#define T_KEEP 21   /* unregister: a handler that keeps the request */
#define FORGET_BOUND_S 0.5

static double elapsed_since(double t0)
{
    return now_s() - t0;
}

/* Progresses both transports for about ms milliseconds, or until *flag. */
static void pump(tsr_transport_t *a, tsr_transport_t *b, int ms, const atomic_int *flag)
{
    double end = now_s() + ms / 1000.0;
    while (now_s() < end && !(flag && atomic_load(flag))) {
        if (a)
            tsr_transport_progress(a);
        if (b)
            tsr_transport_progress(b);
        usleep(200);
    }
}

/* ---- forget ------------------------------------------------------------------- */

typedef struct life_ctx {
    tsr_transport_t *t;
    tsr_peer_t *forgotten[64]; /* peers this side forgot (pointers only) */
    int nforgotten;
    atomic_int down;           /* PEER_DOWN events delivered */
    atomic_int up;
    bool forget_in_callback;   /* forget ev->peer from inside the callback */
    uint32_t last_node;
} life_ctx_t;

static void life_event(void *arg, const tsr_transport_event_t *ev)
{
    life_ctx_t *c = arg;
    /* Reads the peer first: an event for a freed peer (the old forget) is a
     * heap-use-after-free under ASan, and fails the check below otherwise. */
    c->last_node = tsr_peer_node_id(ev->peer);
    for (int i = 0; i < c->nforgotten; i++)
        CHECK(ev->peer != c->forgotten[i], "event %d delivered for a forgotten peer",
              (int)ev->kind);
    CHECK(c->last_node == ev->node_id || ev->node_id == 0, "event names node %u, peer says %u",
          ev->node_id, c->last_node);
    if (ev->kind == TSR_TRANSPORT_PEER_UP) {
        atomic_fetch_add(&c->up, 1);
        return;
    }
    atomic_fetch_add(&c->down, 1);
    if (c->forget_in_callback) {
        tsr_peer_t *p = ev->peer;
        if (c->nforgotten < 64)
            c->forgotten[c->nforgotten++] = p;
        tsr_peer_forget(c->t, p);
        /* Still readable until this callback returns (the item holds it). */
        CHECK(!tsr_peer_is_up(p) && tsr_peer_node_id(p) == ev->node_id,
              "peer changed under the callback");
    }
}

static tsr_transport_t *life_transport(life_ctx_t *c, uint32_t node, bool listen)
{
    tsr_transport_params_t p = {.node_id = node,
                                .listen_host = listen ? "127.0.0.1" : NULL,
                                .spin_us = 20,
                                .on_event = life_event,
                                .event_arg = c};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_t *t = NULL;
    CHECK(tsr_transport_create(NULL, &p, &t, &err) == TSR_OK, "create: %s", err.message);
    c->t = t;
    return t;
}

static tsr_rpc_req_t *g_kept; /* the request h_keep holds */
static tsr_transport_t *g_lct; /* the calling transport, for releasing replies */

static void h_keep(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    CHECK(!g_kept, "one kept request at a time");
    g_kept = req;
}

static void keep_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    atomic_int *done = arg;
    tsr_rpc_msg_release(g_lct, reply);
    CHECK(st == TSR_ERR_UNAVAILABLE || st == TSR_ERR_TIMEOUT, "kept call ended %s",
          tsr_status_name(st));
    atomic_store(done, 1);
}

/* Connects c to s (both pumped), returns c's peer and (via *sp) s's. */
static tsr_peer_t *life_connect(tsr_transport_t *ct, tsr_transport_t *st, uint32_t snode,
                                tsr_peer_t **sp)
{
    tsr_peer_t *cp = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    /* connect progresses only ct: the listener needs st progressed too. */
    CHECK(tsr_transport_start_thread(st, &err) == TSR_OK, "thread: %s", err.message);
    CHECK(tsr_transport_connect(ct, "127.0.0.1", tsr_transport_port(st), 20000, &cp, &err) ==
              TSR_OK,
          "connect: %s", err.message);
    double end = now_s() + 20;
    tsr_peer_t *found = NULL;
    while (!(found = tsr_transport_peer(st, tsr_transport_node_id(ct))) && now_s() < end)
        usleep(1000);
    tsr_transport_stop_thread(st);
    CHECK(found, "the server never saw the client");
    CHECK(tsr_peer_node_id(cp) == snode, "peer node");
    if (sp)
        *sp = found;
    return cp;
}

/* [white-box] Peers t still has allocated (forgotten ones included). */
static int peers_allocated(tsr_transport_t *t)
{
    int n = 0;
    tsr__lock(t);
    for (tsr_peer_t *p = t->peers; p; p = p->next)
        n++;
    tsr__unlock(t);
    return n;
}

int scenario_forget(void)
{
    static life_ctx_t sc, cc;
    tsr_transport_t *st = life_transport(&sc, 1, true);
    tsr_transport_t *ct = life_transport(&cc, 2, false);
    g_lct = ct;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_register(st, T_KEEP, h_keep, NULL, &err) == TSR_OK, "register");

    /* 1. Forget on an UP peer with a call pending: no event afterwards, the
     *    server side forgets its peer from inside its PEER_DOWN callback and
     *    still holds that peer's request. */
    sc.forget_in_callback = true;
    tsr_peer_t *sp = NULL;
    tsr_peer_t *cp = life_connect(ct, st, 1, &sp);
    pump(st, ct, 50, NULL); /* deliver the PEER_UPs */
    atomic_int kept_done = 0;
    CHECK(tsr_rpc_call_async(ct, cp, T_KEEP, "x", 1, 20000, keep_cb, &kept_done, &err) ==
              TSR_OK,
          "call: %s", err.message);
    double end = now_s() + 20;
    while (!g_kept && now_s() < end)
        pump(st, ct, 5, NULL);
    CHECK(g_kept, "the request never arrived");
    CHECK(tsr_rpc_req_peer(g_kept) == sp, "request's peer");

    int cdown = atomic_load(&cc.down);
    cc.forgotten[cc.nforgotten++] = cp;
    tsr_transport_stats_t before;
    tsr_transport_get_stats(ct, &before);
    double t0 = now_s();
    tsr_peer_forget(ct, cp); /* queues nothing for cp any more */
    CHECK(elapsed_since(t0) < FORGET_BOUND_S, "forget took %.3f s", elapsed_since(t0));
    /* The pending call fails at once, without an event naming cp. */
    pump(ct, NULL, 200, &kept_done);
    CHECK(atomic_load(&kept_done), "the call on the forgotten peer did not finish");
    /* The server notices the close, forgets its peer in the callback. */
    end = now_s() + 20;
    while (sc.nforgotten == 0 && now_s() < end)
        pump(st, ct, 5, NULL);
    CHECK(sc.nforgotten == 1 && sc.forgotten[0] == sp, "server got no PEER_DOWN");
    pump(st, ct, 100, NULL);
    CHECK(atomic_load(&cc.down) == cdown, "client got an event for the peer it forgot");
    /* The held request outlives its peer; answering it fails cleanly. */
    tsr_status_t rs = tsr_rpc_reply(st, g_kept, TSR_OK, "y", 1);
    CHECK(rs == TSR_ERR_UNAVAILABLE, "reply to a forgotten peer: %s", tsr_status_name(rs));
    g_kept = NULL;

    /* 2. Many connect/forget rounds, both sides forgetting at once. The
     *    lists of forgotten pointers restart each round: a freed peer's
     *    memory may come back as the next round's peer. */
    sc.forget_in_callback = false;
    for (int round = 0; round < 20; round++) {
        int up = atomic_load(&cc.up);
        cc.nforgotten = sc.nforgotten = 0;
        tsr_peer_t *sp2 = NULL;
        tsr_peer_t *p2 = life_connect(ct, st, 1, &sp2);
        cc.forgotten[cc.nforgotten++] = p2;
        sc.forgotten[sc.nforgotten++] = sp2;
        tsr_peer_forget(ct, p2);
        tsr_peer_forget(st, sp2);
        pump(st, ct, 20, NULL);
        CHECK(atomic_load(&cc.up) - up <= 1, "more than one PEER_UP");
    }
    /* Every forgotten peer is freed by progress, not kept until destroy. */
    pump(st, ct, 200, NULL);
    CHECK(peers_allocated(ct) == 0, "%d forgotten peers still allocated on the client",
          peers_allocated(ct));
    CHECK(peers_allocated(st) == 0, "%d forgotten peers still allocated on the server",
          peers_allocated(st));
    tsr_transport_destroy(ct);
    tsr_transport_destroy(st);
    printf("forget: ok (client events %d up / %d down, server %d down)\n",
           atomic_load(&cc.up), atomic_load(&cc.down), atomic_load(&sc.down));
    return 0;
}

/* ---- forget_stopped ---------------------------------------------------------- */

static void stopped_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    atomic_int *done = arg;
    tsr_rpc_msg_release(g_lct, reply);
    CHECK(st == TSR_ERR_UNAVAILABLE || st == TSR_ERR_TIMEOUT, "call on a frozen peer: %s",
          tsr_status_name(st));
    atomic_store(done, 1);
}

int scenario_forget_stopped(void)
{
    pid_t srv = spawn("server", "1", "1", "port", NULL);
    uint16_t port = read_port("port");
    static role_ctx_t rc;
    tsr_transport_t *t = make_transport(&rc, 2, false, 0);
    g_lct = t;
    tsr_peer_t *p = connect_to(t, port);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_rpc_msg_t reply;
    CHECK(tsr_rpc_call(t, p, T_ECHO, "abc", 3, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "echo: %s", err.message);
    tsr_rpc_msg_release(t, &reply);

    CHECK(kill(srv, SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    /* Something in flight on the frozen peer: a call and a large payload. */
    atomic_int done = 0;
    size_t big = 4u << 20;
    uint8_t *payload = malloc(big);
    CHECK(payload, "oom");
    fill(payload, big, 5);
    CHECK(tsr_rpc_call_async(t, p, T_ECHO, payload, big, 30000, stopped_cb, &done, &err) ==
              TSR_OK,
          "call: %s", err.message);
    tsr_transport_wait(t, 50);
    double t0 = now_s();
    tsr_peer_forget(t, p);
    double took = elapsed_since(t0);
    printf("forget_stopped (%s): tsr_peer_forget took %.3f s\n", tls_name(), took);
    CHECK(took < FORGET_BOUND_S, "forget of a stopped peer took %.3f s (bound %.1f s)", took,
          FORGET_BOUND_S);
    double end = now_s() + 5;
    while (!atomic_load(&done) && now_s() < end)
        tsr_transport_wait(t, 20);
    CHECK(atomic_load(&done), "the pending call did not fail after forget");
    CHECK(rc.peers_down == 0, "PEER_DOWN delivered for a forgotten peer");
    t0 = now_s();
    tsr_transport_destroy(t);
    double dtook = elapsed_since(t0);
    free(payload); /* after destroy: UCX may have read it until the close */
    kill(srv, SIGKILL);
    kill(srv, SIGCONT);
    wait_kid(srv, 20, false);
    printf("forget_stopped: forget %.3f s, destroy %.3f s\n", took, dtook);
    CHECK(dtook < 3.0, "destroy after forget took %.3f s", dtook);
    return 0;
}

/* ---- unregister -------------------------------------------------------------- */

static atomic_int g_counted;

static void h_count(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    atomic_fetch_add(&g_counted, 1);
    tsr_rpc_reply(tsr_rpc_req_peer(req)->t, req, TSR_OK, NULL, 0);
}

typedef struct unreg_tally {
    atomic_int ok, unsupported, other, done;
} unreg_tally_t;

static void unreg_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    unreg_tally_t *u = arg;
    tsr_rpc_msg_release(g_lct, reply);
    if (st == TSR_OK)
        atomic_fetch_add(&u->ok, 1);
    else if (st == TSR_ERR_UNSUPPORTED)
        atomic_fetch_add(&u->unsupported, 1);
    else
        atomic_fetch_add(&u->other, 1);
    atomic_fetch_add(&u->done, 1);
}

/* [white-box] Requests received by t that no handler has started yet. */
static int queued_requests(tsr_transport_t *t, uint16_t type)
{
    int n = 0;
    tsr__lock(t);
    for (tsr_item_t *it = t->dq_head; it; it = it->next)
        if (it->kind == TSR_ITEM_REQUEST && ((tsr_rpc_req_t *)it)->type == type)
            n++;
    tsr__unlock(t);
    return n;
}

/* [white-box] Progresses t's worker without running callbacks. */
static void progress_no_dispatch(tsr_transport_t *t)
{
    tsr__lock(t);
    (void)tsr__progress_locked(t, false);
    tsr__unlock(t);
}

static void unreg_wait(tsr_transport_t *st, tsr_transport_t *ct, unreg_tally_t *u, int n)
{
    double end = now_s() + 20;
    while (atomic_load(&u->done) < n && now_s() < end)
        pump(st, ct, 5, NULL);
    CHECK(atomic_load(&u->done) == n, "%d of %d calls finished", atomic_load(&u->done), n);
}

/* One call of type through cp, both transports pumped; returns its status. */
static tsr_status_t call_pumped(tsr_transport_t *st, tsr_transport_t *ct, tsr_peer_t *cp,
                                uint16_t type)
{
    unreg_tally_t u = {0};
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call_async(ct, cp, type, NULL, 0, 20000, unreg_cb, &u, &err) == TSR_OK,
          "call: %s", err.message);
    unreg_wait(st, ct, &u, 1);
    return atomic_load(&u.ok) ? TSR_OK
                              : atomic_load(&u.unsupported) ? TSR_ERR_UNSUPPORTED
                                                            : TSR_ERR_INTERNAL;
}

int scenario_unregister(void)
{
    enum { N = 8 };
    static life_ctx_t sc, cc;
    tsr_transport_t *st = life_transport(&sc, 1, true);
    tsr_transport_t *ct = life_transport(&cc, 2, false);
    g_lct = ct;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_register(st, T_COUNT, h_count, NULL, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(st, T_KEEP, h_keep, NULL, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_unregister(st, 0, &err) == TSR_ERR_INVALID_ARG, "type 0");
    CHECK(tsr_rpc_unregister(st, TSR_RPC_MAX_TYPES, &err) == TSR_ERR_INVALID_ARG, "type max");
    CHECK(tsr_rpc_unregister(NULL, T_COUNT, &err) == TSR_ERR_INVALID_ARG, "no transport");
    CHECK(tsr_rpc_unregister(st, 999, &err) == TSR_OK, "a type never registered");
    tsr_peer_t *cp = life_connect(ct, st, 1, NULL);

    /* Registered: answered by the handler. */
    unreg_tally_t u0 = {0};
    for (int i = 0; i < N; i++)
        CHECK(tsr_rpc_call_async(ct, cp, T_COUNT, NULL, 0, 20000, unreg_cb, &u0, &err) == TSR_OK,
              "call");
    unreg_wait(st, ct, &u0, N);
    CHECK(atomic_load(&u0.ok) == N && atomic_load(&g_counted) == N, "registered: %d ok, %d ran",
          atomic_load(&u0.ok), atomic_load(&g_counted));

    /* A request the handler keeps across the unregister is answered as usual. */
    CHECK(tsr_rpc_call_async(ct, cp, T_KEEP, NULL, 0, 20000, unreg_cb, &u0, &err) == TSR_OK,
          "call");
    double end = now_s() + 20;
    while (!g_kept && now_s() < end)
        pump(st, ct, 5, NULL);
    CHECK(g_kept, "kept request never arrived");

    /* Queued but not started when the handler goes: answered UNSUPPORTED,
     * the removed handler never runs. */
    unreg_tally_t u1 = {0};
    int ran = atomic_load(&g_counted);
    for (int i = 0; i < N; i++)
        CHECK(tsr_rpc_call_async(ct, cp, T_COUNT, NULL, 0, 20000, unreg_cb, &u1, &err) == TSR_OK,
              "call");
    end = now_s() + 20;
    while (queued_requests(st, T_COUNT) < N && now_s() < end) {
        tsr_transport_progress(ct);
        progress_no_dispatch(st);
        usleep(200);
    }
    CHECK(queued_requests(st, T_COUNT) == N, "only %d requests queued",
          queued_requests(st, T_COUNT));
    CHECK(tsr_rpc_unregister(st, T_COUNT, &err) == TSR_OK, "unregister");
    unreg_wait(st, ct, &u1, N);
    CHECK(atomic_load(&g_counted) == ran, "the removed handler ran %d times",
          atomic_load(&g_counted) - ran);
    CHECK(atomic_load(&u1.unsupported) == N, "queued: %d unsupported, %d ok, %d other",
          atomic_load(&u1.unsupported), atomic_load(&u1.ok), atomic_load(&u1.other));

    /* New requests after the unregister: UNSUPPORTED too. */
    tsr_status_t s = call_pumped(st, ct, cp, T_COUNT);
    CHECK(s == TSR_ERR_UNSUPPORTED, "after unregister: %s", tsr_status_name(s));

    /* The kept request is still answerable. */
    int before_ok = atomic_load(&u0.ok);
    CHECK(tsr_rpc_reply(st, g_kept, TSR_OK, NULL, 0) == TSR_OK, "reply to the kept request");
    g_kept = NULL;
    unreg_wait(st, ct, &u0, N + 1);
    CHECK(atomic_load(&u0.ok) == before_ok + 1, "kept request's answer");

    /* Re-register works; register(NULL) is the same as unregister. */
    CHECK(tsr_rpc_register(st, T_COUNT, h_count, NULL, &err) == TSR_OK, "re-register");
    s = call_pumped(st, ct, cp, T_COUNT);
    CHECK(s == TSR_OK, "re-registered: %s", tsr_status_name(s));
    unreg_tally_t u2 = {0};
    ran = atomic_load(&g_counted);
    for (int i = 0; i < N; i++)
        CHECK(tsr_rpc_call_async(ct, cp, T_COUNT, NULL, 0, 20000, unreg_cb, &u2, &err) == TSR_OK,
              "call");
    end = now_s() + 20;
    while (queued_requests(st, T_COUNT) < N && now_s() < end) {
        tsr_transport_progress(ct);
        progress_no_dispatch(st);
        usleep(200);
    }
    CHECK(tsr_rpc_register(st, T_COUNT, NULL, NULL, &err) == TSR_OK, "register NULL");
    unreg_wait(st, ct, &u2, N);
    CHECK(atomic_load(&g_counted) == ran && atomic_load(&u2.unsupported) == N,
          "register(NULL): handler ran %d times, %d unsupported", atomic_load(&g_counted) - ran,
          atomic_load(&u2.unsupported));

    tsr_transport_destroy(ct);
    tsr_transport_destroy(st);
    printf("unregister: ok\n");
    return 0;
}

/* ---- atomic_timeout ---------------------------------------------------------- */

typedef struct atim {
    atomic_int done;
    tsr_status_t status;
    double at; /* when done ran */
} atim_t;

static void atim_cb(void *arg, tsr_status_t st, uint64_t old)
{
    atim_t *a = arg;
    (void)old;
    a->status = st;
    a->at = now_s();
    atomic_store(&a->done, 1);
}

int scenario_atomic_timeout(void)
{
    enum { TIMEOUT_MS = 300 };
    pid_t srv = spawn("region_server", "1", "1", "port", NULL);
    uint16_t port = read_port("port");
    static role_ctx_t rc;
    g_t = make_transport(&rc, 2, false, 0);
    tsr_peer_t *p = connect_to(g_t, port);
    tsr_rkey_t *k = fetch_rkey(p);
    tsr_error_t err;
    tsr_error_clear(&err);

    /* A live peer: completes normally, well inside the timeout. */
    atim_t a0 = {0};
    CHECK(tsr_atomic_post_timeout(g_t, k, TSR_ATOMIC_FADD, 8, 1, 0, 20000, atim_cb, &a0, &err) ==
              TSR_OK,
          "post: %s", err.message);
    double end = now_s() + 20;
    while (!atomic_load(&a0.done) && now_s() < end)
        tsr_transport_wait(g_t, 10);
    CHECK(atomic_load(&a0.done) && a0.status == TSR_OK, "live atomic: %s",
          tsr_status_name(a0.status));
    CHECK(tsr_atomic_post_timeout(g_t, k, TSR_ATOMIC_FADD, 3, 1, 0, 100, atim_cb, &a0, &err) ==
              TSR_ERR_INVALID_ARG,
          "misaligned offset accepted");

    /* Frozen peer: the untimed post would wait for ever; the timed one ends
     * within its timeout and takes the untimed one with it (peer failed). */
    CHECK(kill(srv, SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    atim_t untimed = {0}, timed = {0};
    double t0 = now_s();
    CHECK(tsr_atomic_post(g_t, k, TSR_ATOMIC_FADD, 8, 1, 0, atim_cb, &untimed, &err) == TSR_OK,
          "post: %s", err.message);
    CHECK(tsr_atomic_post_timeout(g_t, k, TSR_ATOMIC_SWAP, 16, 7, 0, TIMEOUT_MS, atim_cb, &timed,
                                  &err) == TSR_OK,
          "post: %s", err.message);
    end = t0 + 10;
    while (!(atomic_load(&timed.done) && atomic_load(&untimed.done)) && now_s() < end)
        tsr_transport_wait(g_t, 10);
    CHECK(atomic_load(&timed.done), "timed atomic on a frozen peer never completed");
    CHECK(atomic_load(&untimed.done), "untimed atomic did not fail with its peer");
    double took = timed.at - t0;
    printf("atomic_timeout (%s): timed op %s after %.3f s, untimed %s\n", tls_name(),
           tsr_status_name(timed.status), took, tsr_status_name(untimed.status));
    /* Shared-memory atomics may complete without the target's help. */
    if (timed.status != TSR_OK) {
        CHECK(timed.status == TSR_ERR_TIMEOUT, "timed op: %s", tsr_status_name(timed.status));
        CHECK(took >= TIMEOUT_MS / 1000.0 - 0.01, "timed out early: %.3f s", took);
        CHECK(untimed.status == TSR_ERR_TIMEOUT || untimed.status == TSR_ERR_UNAVAILABLE,
              "untimed op: %s", tsr_status_name(untimed.status));
        CHECK(!tsr_peer_is_up(p), "peer still up after a timed-out atomic");
        tsr_transport_wait(g_t, 20);
        CHECK(rc.peers_down == 1, "no PEER_DOWN after the timeout");
        /* The failed peer refuses new posts at once. */
        atim_t a2 = {0};
        CHECK(tsr_atomic_post_timeout(g_t, k, TSR_ATOMIC_FADD, 8, 1, 0, 100, atim_cb, &a2,
                                      &err) == TSR_ERR_UNAVAILABLE,
              "post on a failed peer");
    } else {
        CHECK(strcmp(tls_name(), "tcp") != 0, "a TCP atomic completed on a frozen peer");
    }
    CHECK(took < TIMEOUT_MS / 1000.0 + 3.0, "timed op took %.3f s", took);

    tsr_rkey_destroy(g_t, k);
    tsr_peer_forget(g_t, p);
    tsr_transport_destroy(g_t);
    g_t = NULL;
    kill(srv, SIGKILL);
    kill(srv, SIGCONT);
    wait_kid(srv, 20, false);
    return 0;
}
