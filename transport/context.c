/*
 * context.c - the transport context: UCP context and worker, the listener,
 * endpoints to peers, the node-id handshake, and endpoint failures.
 *
 * Connection set-up (UCX client-server mode, over sockaddr):
 *   connector: ucp_ep_create(SOCK_ADDR, CLIENT_SERVER, ERR_MODE_PEER)
 *              -> sends HELLO(src_node = own id)
 *   acceptor:  listener conn_handler -> ucp_ep_create(CONN_REQUEST, ERR_MODE_PEER)
 *              -> on HELLO: learns the node id, replies HELLO_ACK(own id),
 *                 peer UP, event PEER_UP
 *   connector: on HELLO_ACK: learns the acceptor's id, peer UP, event PEER_UP
 * Both ends may then call each other over the same endpoint.
 *
 * Failures: UCX reports an endpoint error through the err_handler (with
 * UCP_ERR_HANDLING_MODE_PEER, UCX guarantees that every operation posted on
 * that endpoint completes, with an error if need be). The handler only marks
 * the peer; after ucp_worker_progress returns, tsr__peers_attend_locked
 * fails its calls, closes the endpoint (force) and queues PEER_DOWN - work
 * that must not run inside a UCX callback.
 *
 * Peers are never freed behind the owner's back: a DOWN peer stays valid
 * (every operation on it fails fast) until tsr_peer_forget or destroy.
 *
 * Forget (why it neither blocks nor frees at once): tsr_peer_forget marks the
 * peer forgotten, fails it and starts a forced endpoint close, and returns.
 * Events of a forgotten peer are no longer delivered (the PEER_DOWN that the
 * forget itself causes included). The object stays allocated, invisible to
 * lookups, while anything queued still points at it (p->refs: event items,
 * unanswered requests, calls, timed ops) or its close is in flight; the
 * progress path frees it after that (tsr__peers_attend_locked), destroy at
 * the latest. So a callback that runs after the forget never sees freed
 * memory, and a frozen peer (SIGSTOP) cannot stall the caller.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

/* ---- peers ------------------------------------------------------------------- */

static tsr_peer_t *peer_new_locked(tsr_transport_t *t, bool outgoing)
{
    tsr_peer_t *p = tsr_mem_calloc(t->mem, 1, sizeof(*p));
    if (!p)
        return NULL;
    p->t = t;
    p->outgoing = outgoing;
    p->state = TSR_PEER_CONNECTING;
    tsr__route_assign_locked(t, p); /* told to the peer in the handshake */
    p->next = t->peers;
    if (t->peers)
        t->peers->prev = p;
    t->peers = p;
    return p;
}

static void peer_unlink_free_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    tsr__route_release_locked(t, p);
    if (p->prev)
        p->prev->next = p->next;
    else
        t->peers = p->next;
    if (p->next)
        p->next->prev = p->prev;
    tsr_mem_free(t->mem, p);
}

tsr_peer_t *tsr__peer_by_ep(tsr_transport_t *t, ucp_ep_h ep)
{
    if (ep == NULL)
        return NULL;
    /* Linear: a process talks to tens of peers, and the newest (most active
     * while connecting) come first. */
    for (tsr_peer_t *p = t->peers; p; p = p->next)
        if (p->ep == ep)
            return p;
    return NULL;
}

/* [L] Whether a forgotten peer may be freed now. */
static bool peer_reapable(const tsr_peer_t *p)
{
    return p->forgotten && p->refs == 0 && p->close_req == NULL;
}

void tsr__event_locked(tsr_transport_t *t, tsr_transport_event_kind_t kind, tsr_peer_t *p,
                       tsr_status_t status, const char *detail)
{
    if (kind == TSR_TRANSPORT_PEER_DOWN)
        t->stats.peers_failed++;
    if (!t->on_event || p->forgotten)
        return; /* nobody listens, or the owner has let go of p */
    tsr_event_item_t *e = tsr_mem_calloc(t->mem, 1, sizeof(*e));
    if (!e)
        return; /* out of memory: the event is lost, the peer state is still right */
    e->item.kind = TSR_ITEM_EVENT;
    e->ev.kind = kind;
    e->ev.peer = p;
    e->ev.node_id = p->node_id;
    e->ev.status = status;
    snprintf(e->detail, sizeof(e->detail), "%s", detail ? detail : "");
    e->ev.detail = e->detail;
    tsr__peer_ref_locked(p); /* dropped when the item is recycled (rpc.c) */
    tsr__enqueue(t, &e->item);
}

/* UCX's error callback: runs inside ucp_worker_progress. Only marks. */
static void ep_err_cb(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    tsr_peer_t *p = arg;
    (void)ep;
    if (p->state == TSR_PEER_DOWN || p->fail_pending)
        return;
    p->fail_pending = true;
    p->fail_status = tsr__status_from_ucs(status);
    if (p->fail_status == TSR_ERR_TIMEOUT)
        p->fail_status = TSR_ERR_UNAVAILABLE; /* a keepalive timeout: peer gone */
    snprintf(p->fail_detail, sizeof(p->fail_detail), "%s", ucs_status_string(status));
    p->t->peer_attention = true;
}

static void close_ep_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    if (!p->ep)
        return;
    tsr__rma_peer_closing_locked(t, p);
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = UCP_EP_CLOSE_FLAG_FORCE};
    void *req = ucp_ep_close_nbx(p->ep, &prm);
    p->ep = NULL;
    if (req && !UCS_PTR_IS_ERR(req)) {
        p->close_req = req;
        t->peer_attention = true;
    }
}

void tsr__peer_fail_locked(tsr_transport_t *t, tsr_peer_t *p, tsr_status_t status,
                           const char *detail)
{
    if (p->state == TSR_PEER_DOWN)
        return;
    p->state = TSR_PEER_DOWN;
    tsr__route_release_locked(t, p); /* nothing it sends is served now */
    p->fail_pending = false;
    tsr__rpc_fail_peer_locked(t, p, status == TSR_ERR_TIMEOUT ? TSR_ERR_TIMEOUT
                                                              : TSR_ERR_UNAVAILABLE);
    close_ep_locked(t, p);
    tsr__event_locked(t, TSR_TRANSPORT_PEER_DOWN, p, status, detail);
}

unsigned tsr__peers_attend_locked(tsr_transport_t *t)
{
    unsigned n = 0;
    bool again = false;
    /* Cleared first: what the loop itself flags (an unref reaching 0 on a
     * peer already passed, a new endpoint error) is kept for next time. */
    t->peer_attention = false;
    tsr_peer_t *next;
    for (tsr_peer_t *p = t->peers; p; p = next) {
        next = p->next; /* p may be freed below; nothing here frees another peer */
        if (p->fail_pending) {
            tsr__peer_fail_locked(t, p, p->fail_status, p->fail_detail);
            n++;
        }
        if (p->close_req) {
            if (ucp_request_check_status(p->close_req) != UCS_INPROGRESS) {
                ucp_request_free(p->close_req);
                p->close_req = NULL;
                n++;
            } else {
                again = true;
            }
        }
        if (peer_reapable(p)) {
            peer_unlink_free_locked(t, p);
            n++;
        }
    }
    t->peer_attention = t->peer_attention || again;
    return n;
}

void tsr__send_hello_ack_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    /* t->ack_hdr lives as long as t and the route payload as long as p (its
     * endpoint is closed, which ends the send, before p is freed), so the
     * send needs no completion. */
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = UCP_AM_SEND_FLAG_REPLY};
    void *req = ucp_am_send_nbx(p->ep, TSR_WIRE_AM_ID, t->ack_hdr, TSR_WIRE_HDR_LEN,
                                p->route_wire, TSR_WIRE_ROUTE_LEN, &prm);
    if (UCS_PTR_IS_PTR(req))
        ucp_request_free(req);
}

tsr_peer_t *tsr_transport_peer(tsr_transport_t *t, uint32_t node_id)
{
    tsr__lock(t);
    tsr_peer_t *found = NULL;
    for (tsr_peer_t *p = t->peers; p; p = p->next)
        if (p->state == TSR_PEER_UP && p->node_id == node_id) {
            found = p; /* the list is newest first */
            break;
        }
    tsr__unlock(t);
    return found;
}

uint32_t tsr_peer_node_id(const tsr_peer_t *p)
{
    return p ? p->node_id : 0;
}

bool tsr_peer_is_up(const tsr_peer_t *p)
{
    return p && p->state == TSR_PEER_UP;
}

void tsr_peer_forget(tsr_transport_t *t, tsr_peer_t *p)
{
    if (!t || !p)
        return;
    tsr__lock(t);
    if (!p->forgotten) {
        /* Forgotten first, so the failure below queues no PEER_DOWN. */
        p->forgotten = true;
        tsr__peer_fail_locked(t, p, TSR_ERR_UNAVAILABLE, "closed by owner");
        if (p->close_req && ucp_request_check_status(p->close_req) != UCS_INPROGRESS) {
            ucp_request_free(p->close_req);
            p->close_req = NULL;
        }
        if (peer_reapable(p))
            peer_unlink_free_locked(t, p);
        else
            t->peer_attention = true; /* progress completes the close and frees it */
    }
    tsr__unlock(t);
}

/* ---- listener and connect ----------------------------------------------- */

static void conn_handler_cb(ucp_conn_request_h conn, void *arg)
{
    tsr_transport_t *t = arg;
    tsr_peer_t *p = peer_new_locked(t, false);
    if (!p) {
        ucp_listener_reject(t->listener, conn);
        return;
    }
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLER |
                      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE,
        .conn_request = conn,
        .err_mode = UCP_ERR_HANDLING_MODE_PEER,
        .err_handler = {.cb = ep_err_cb, .arg = p},
    };
    ucs_status_t st = ucp_ep_create(t->worker, &ep, &p->ep);
    if (st != UCS_OK) {
        p->ep = NULL;
        peer_unlink_free_locked(t, p);
    }
}

static tsr_status_t resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
                            socklen_t *sslen, tsr_error_t *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "cannot resolve '%s': %s", host,
                             gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return TSR_OK;
}

static tsr_status_t listen_locked(tsr_transport_t *t, const char *host, uint16_t port,
                                  tsr_error_t *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    tsr_status_t rc = resolve(host, port, &ss, &sslen, err);
    if (rc != TSR_OK)
        return rc;
    ucp_listener_params_t lp = {
        .field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
        .sockaddr = {.addr = (const struct sockaddr *)&ss, .addrlen = sslen},
        .conn_handler = {.cb = conn_handler_cb, .arg = t},
    };
    ucs_status_t st = ucp_listener_create(t->worker, &lp, &t->listener);
    if (st != UCS_OK) {
        t->listener = NULL;
        return tsr_error_set(err, tsr__status_from_ucs(st), "cannot listen on %s:%u: %s", host,
                             (unsigned)port, ucs_status_string(st));
    }
    ucp_listener_attr_t la = {.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR};
    st = ucp_listener_query(t->listener, &la);
    if (st == UCS_OK) {
        if (la.sockaddr.ss_family == AF_INET)
            t->port = ntohs(((struct sockaddr_in *)&la.sockaddr)->sin_port);
        else if (la.sockaddr.ss_family == AF_INET6)
            t->port = ntohs(((struct sockaddr_in6 *)&la.sockaddr)->sin6_port);
    }
    if (t->port == 0)
        t->port = port;
    return TSR_OK;
}

static bool peer_settled(void *arg)
{
    tsr_peer_t *p = arg;
    return p->state != TSR_PEER_CONNECTING || p->fail_pending;
}

tsr_status_t tsr_transport_connect(tsr_transport_t *t, const char *host, uint16_t port,
                                   int timeout_ms, tsr_peer_t **out, tsr_error_t *err)
{
    if (!t || !host || !out || port == 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "connect: host and port are required");
    struct sockaddr_storage ss;
    socklen_t sslen;
    tsr_status_t rc = resolve(host, port, &ss, &sslen, err);
    if (rc != TSR_OK)
        return rc;

    tsr__lock(t);
    tsr_peer_t *p = peer_new_locked(t, true);
    if (!p) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_NOMEM, "connect: out of memory");
    }
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE,
        .flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
        .sockaddr = {.addr = (const struct sockaddr *)&ss, .addrlen = sslen},
        .err_mode = UCP_ERR_HANDLING_MODE_PEER,
        .err_handler = {.cb = ep_err_cb, .arg = p},
    };
    ucs_status_t st = ucp_ep_create(t->worker, &ep, &p->ep);
    if (st != UCS_OK) {
        p->ep = NULL;
        peer_unlink_free_locked(t, p);
        tsr__unlock(t);
        return tsr_error_set(err, tsr__status_from_ucs(st), "cannot connect to %s:%u: %s", host,
                             (unsigned)port, ucs_status_string(st));
    }
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = UCP_AM_SEND_FLAG_REPLY};
    void *req = ucp_am_send_nbx(p->ep, TSR_WIRE_AM_ID, t->hello_hdr, TSR_WIRE_HDR_LEN,
                                p->route_wire, TSR_WIRE_ROUTE_LEN, &prm);
    if (UCS_PTR_IS_PTR(req))
        ucp_request_free(req); /* header and route are t's and p's: nothing to keep alive */
    tsr__unlock(t);

    rc = tsr__wait_cond(t, peer_settled, p, tsr__deadline(timeout_ms), NULL);
    tsr__lock(t);
    if (p->fail_pending)
        tsr__peer_fail_locked(t, p, p->fail_status, p->fail_detail);
    if (p->state == TSR_PEER_UP) {
        /* Debugging aid (docs/transport.md): which lanes UCX chose. */
        const char *dbg = getenv("TSR_TRANSPORT_PRINT_EP");
        if (dbg && dbg[0] == '1' && p->ep)
            ucp_ep_print_info(p->ep, stderr);
        tsr__unlock(t);
        *out = p;
        return TSR_OK;
    }
    if (rc == TSR_ERR_TIMEOUT)
        tsr_error_set(err, TSR_ERR_TIMEOUT, "connecting to %s:%u timed out after %d ms", host,
                      (unsigned)port, timeout_ms);
    else
        tsr_error_set(err, TSR_ERR_UNAVAILABLE, "cannot connect to %s:%u: %s", host,
                      (unsigned)port, p->fail_detail[0] ? p->fail_detail : "peer went down");
    rc = rc == TSR_ERR_TIMEOUT ? TSR_ERR_TIMEOUT : TSR_ERR_UNAVAILABLE;
    tsr__peer_fail_locked(t, p, rc, "connect failed");
    tsr__unlock(t);
    /* Nobody else holds p: the owner never saw it, events name it though, so
     * it stays on the list (DOWN) until destroy rather than being freed here. */
    return rc;
}

/* ---- create / destroy ------------------------------------------------------ */

/* Whether the transport list in use (params, else UCX_TLS, else UCX's
 * default "all") may select shared-memory transports. */
static bool tls_has_shm(const char *tls)
{
    if (!tls || !tls[0])
        tls = getenv("UCX_TLS");
    if (!tls || !tls[0])
        return true;
    static const char *const shm[] = {"all", "sm", "shm", "mm", "posix", "sysv", "xpmem"};
    for (size_t i = 0; i < sizeof(shm) / sizeof(shm[0]); i++) {
        size_t n = strlen(shm[i]);
        for (const char *p = tls; (p = strstr(p, shm[i])) != NULL; p += n) {
            bool start = p == tls || p[-1] == ',' || p[-1] == '^' || p[-1] == '\\';
            bool end = p[n] == '\0' || p[n] == ',';
            if (start && end)
                return tls[0] != '^'; /* "^sm" excludes */
        }
    }
    return false;
}

bool tsr_transport_tcp_only(const tsr_transport_t *t)
{
    const char *tls = t->tls;
    if (!tls[0] || tls[0] == '^' || strcmp(tls, "default") == 0)
        return false;
    bool any = false;
    for (const char *p = tls; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool tcp = n == 3 && strncmp(p, "tcp", 3) == 0;
        if (!tcp && !(n == 4 && strncmp(p, "self", 4) == 0))
            return false;
        any |= tcp;
        p += n + (e ? 1 : 0);
    }
    return any;
}

static void query_tls(tsr_transport_t *t, const char *tls)
{
    snprintf(t->tls, sizeof(t->tls), "%s", tls && tls[0] ? tls : "default");
    const char *env = getenv("UCX_TLS");
    if ((!tls || !tls[0]) && env && env[0])
        snprintf(t->tls, sizeof(t->tls), "%s", env);
}

tsr_status_t tsr_transport_create(tsr_mem_t *mem, const tsr_transport_params_t *params,
                                  tsr_transport_t **out, tsr_error_t *err)
{
    if (!params || !out || params->node_id == 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "transport: a nonzero node id is required");
    tsr_status_t rc = TSR_OK;
    ucs_status_t st;
    ucp_config_t *cfg = NULL;

    tsr_transport_t *t = tsr_mem_calloc(mem, 1, sizeof(*t));
    if (!t)
        return tsr_error_set(err, TSR_ERR_NOMEM, "transport: out of memory");
    t->mem = mem;
    t->node_id = params->node_id;
    t->spin_ns = (int64_t)(params->spin_us ? params->spin_us : TSR_DEFAULT_SPIN_US) * 1000;
    t->spin_yield = params->spin_yield;
    t->spin_fixed = params->spin_fixed;
    t->spin_call.ns = t->spin_serve.ns = t->spin_ns;
    t->dispatch = params->dispatch;
    t->on_event = params->on_event;
    t->event_arg = params->event_arg;
    t->efd = -1;
    t->earliest_deadline_ns = -1;
    atomic_init(&t->sleepers, 0);
    atomic_init(&t->contenders, 0);
    atomic_init(&t->thread_stop, false);
    atomic_init(&t->lock, 0);
    query_tls(t, params->tls);

    /* Handshakes carry the sender's route for the receiver (wire.h). */
    tsr_wire_hdr_t h = {
        .kind = TSR_WIRE_HELLO, .src_node = t->node_id, .payload_len = TSR_WIRE_ROUTE_LEN};
    tsr_wire_hdr_encode(&h, t->hello_hdr);
    h.kind = TSR_WIRE_HELLO_ACK;
    tsr_wire_hdr_encode(&h, t->ack_hdr);

    t->handlers = tsr_mem_calloc(mem, TSR_RPC_MAX_TYPES, sizeof(*t->handlers));
    if (!t->handlers) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "transport: out of memory");
        goto err_free_t;
    }
    rc = tsr__rpc_init(t, params->max_calls ? params->max_calls : TSR_DEFAULT_MAX_CALLS, err);
    if (rc != TSR_OK)
        goto err_free_handlers;

    /* UCX is configured the UCX way: UCX_* environment variables, with the
     * transport list optionally overridden by params->tls. */
    st = ucp_config_read(NULL, NULL, &cfg);
    if (st != UCS_OK) {
        rc = tsr_error_set(err, TSR_ERR_INVALID_ARG, "UCX configuration: %s",
                           ucs_status_string(st));
        goto err_rpc;
    }
    /* UCX 1.13 leaves shared-memory transports out of endpoints that ask for
     * peer error handling (ours all do) unless MM_ERROR_HANDLING is on; then
     * they detect a dead peer by keepalive. Enable it unless the environment
     * says otherwise, so same-host peers talk over shared memory. */
    if (!getenv("UCX_MM_ERROR_HANDLING") && tls_has_shm(params->tls))
        (void)ucp_config_modify(cfg, "MM_ERROR_HANDLING", "y");
    if (params->tls && params->tls[0]) {
        st = ucp_config_modify(cfg, "TLS", params->tls);
        if (st != UCS_OK) {
            rc = tsr_error_set(err, TSR_ERR_INVALID_ARG, "UCX transports '%s': %s", params->tls,
                               ucs_status_string(st));
            goto err_config;
        }
    }
    ucp_params_t up = {
        .field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME,
        .features = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_AMO64 | UCP_FEATURE_TAG |
                    UCP_FEATURE_WAKEUP,
        .name = "tessera",
    };
    st = ucp_init(&up, cfg, &t->ucp);
    if (st != UCS_OK) {
        t->ucp = NULL;
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE, "UCX init failed: %s",
                           ucs_status_string(st));
        tsr_error_hint(err, "check UCX_TLS / UCX_NET_DEVICES (ucx_info -d lists what exists)");
        goto err_config;
    }
    ucp_config_release(cfg);
    cfg = NULL;

    /* The shared-memory mappings that exist before the worker: whatever is
     * new after it, with our pid in it, is its receive FIFO (shm_guard.c). */
    enum { SHM_SNAPSHOT_CAP = 4096 };
    unsigned long *shm_before = NULL;
    unsigned nshm_before = 0;
    bool guard = tls_has_shm(params->tls) && tsr__shm_guard_wanted();
    if (guard) {
        tsr__shm_guard_begin(); /* one worker creation at a time in the process */
        shm_before = tsr_mem_alloc(mem, SHM_SNAPSHOT_CAP * sizeof(*shm_before));
        if (shm_before)
            nshm_before = tsr__shm_guard_snapshot(shm_before, SHM_SNAPSHOT_CAP);
        if (nshm_before == SHM_SNAPSHOT_CAP) { /* cannot tell old from new: no guard */
            tsr_mem_free(mem, shm_before);
            shm_before = NULL;
        }
    }

    /* SERIALIZED: UCX skips its own locking; t->lock provides it. */
    ucp_worker_params_t wp = {.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
                              .thread_mode = UCS_THREAD_MODE_SERIALIZED};
    st = ucp_worker_create(t->ucp, &wp, &t->worker);
    if (st == UCS_OK && shm_before)
        tsr__shm_guard_init(t, shm_before, nshm_before);
    if (guard)
        tsr__shm_guard_end();
    tsr_mem_free(mem, shm_before);
    if (st != UCS_OK) {
        t->worker = NULL;
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE, "UCX worker: %s", ucs_status_string(st));
        goto err_cleanup;
    }
    ucp_worker_attr_t wa = {.field_mask = UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER};
    st = ucp_worker_query(t->worker, &wa);
    if (st == UCS_OK && wa.max_am_header < TSR_WIRE_HDR_LEN) {
        rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                           "UCX allows %zu-byte AM headers, Tessera needs %u", wa.max_am_header,
                           TSR_WIRE_HDR_LEN);
        goto err_worker;
    }
    st = ucp_worker_get_efd(t->worker, &t->efd);
    if (st != UCS_OK) {
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE, "UCX event fd: %s", ucs_status_string(st));
        goto err_worker;
    }
    ucp_am_handler_param_t ap = {
        .field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                      UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG,
        .id = TSR_WIRE_AM_ID,
        /* Not UCP_AM_FLAG_PERSISTENT_DATA: with it, UCP copies every short
         * message (inline in a shared-memory FIFO element) into a descriptor
         * of its own before calling us, on the latency path. Without it, UCX
         * still sets UCP_AM_RECV_ATTR_FLAG_DATA whenever the transport has a
         * descriptor to give (bcopy / large eager), and rpc.c keeps those. */
        .flags = UCP_AM_FLAG_WHOLE_MSG,
        .cb = tsr__am_recv_cb,
        .arg = t,
    };
    st = ucp_worker_set_am_recv_handler(t->worker, &ap);
    if (st == UCS_OK) {
        ap.id = TSR_WIRE_CALL_AM_ID;
        ap.cb = tsr__am_call_cb;
        st = ucp_worker_set_am_recv_handler(t->worker, &ap);
    }
    if (st != UCS_OK) {
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE, "UCX AM handler: %s",
                           ucs_status_string(st));
        goto err_worker;
    }
    if (params->listen_host) {
        rc = listen_locked(t, params->listen_host, params->listen_port, err);
        if (rc != TSR_OK)
            goto err_worker;
    }
    *out = t;
    return TSR_OK;

err_worker:
    tsr__shm_guard_fini(t);
    ucp_worker_destroy(t->worker);
err_cleanup:
    ucp_cleanup(t->ucp);
err_config:
    if (cfg)
        ucp_config_release(cfg);
err_rpc:
    tsr__rpc_fini(t);
err_free_handlers:
    tsr_mem_free(mem, t->handlers);
err_free_t:
    tsr_mem_free(mem, t);
    return rc;
}

static bool all_closed(void *arg)
{
    tsr_transport_t *t = arg;
    for (tsr_peer_t *p = t->peers; p; p = p->next)
        if (p->close_req)
            return false;
    return true;
}

void tsr_transport_destroy(tsr_transport_t *t)
{
    if (!t)
        return;
    tsr_transport_stop_thread(t);
    tsr__lock(t);
    if (t->listener) {
        ucp_listener_destroy(t->listener);
        t->listener = NULL;
    }
    t->on_event = NULL; /* the owner is going away: no more events */
    for (tsr_peer_t *p = t->peers; p; p = p->next)
        tsr__peer_fail_locked(t, p, TSR_ERR_UNAVAILABLE, "transport destroyed");
    tsr__unlock(t);
    (void)tsr__wait_cond(t, all_closed, t, tsr__deadline(2000), NULL);
    /* Run what is queued (completions of failed calls) so nothing leaks. */
    (void)tsr__dispatch(t);

    tsr__lock(t);
    for (tsr_peer_t *p = t->peers; p; p = p->next)
        if (p->close_req) {
            ucp_request_free(p->close_req);
            p->close_req = NULL;
        }
    tsr__rma_fini(t);
    tsr__rpc_fini(t);
    tsr__unlock(t);
    tsr__shm_guard_fini(t);
    ucp_worker_destroy(t->worker);
    ucp_cleanup(t->ucp);
    /* Peers only now: a handshake still in UCX's hands (a close that did
     * not finish in time) reads its route from the peer until the worker
     * is gone, and endpoint callbacks during the destroy name peers. */
    while (t->peers)
        peer_unlink_free_locked(t, t->peers);
    tsr__route_fini(t);
    tsr_mem_free(t->mem, t->handlers);
    tsr_mem_free(t->mem, t);
}

uint32_t tsr_transport_node_id(const tsr_transport_t *t)
{
    return t->node_id;
}

uint16_t tsr_transport_port(const tsr_transport_t *t)
{
    return t->listener ? t->port : 0;
}

const char *tsr_transport_tls(const tsr_transport_t *t)
{
    return t->tls;
}

void tsr_transport_get_stats(tsr_transport_t *t, tsr_transport_stats_t *out)
{
    tsr__lock(t);
    *out = t->stats;
    out->spin_call_ns = (uint64_t)t->spin_call.ns;
    out->spin_serve_ns = (uint64_t)t->spin_serve.ns;
    tsr__unlock(t);
}
