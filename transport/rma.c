/*
 * rma.c - registered memory, remote keys, one-sided get/put and 64-bit
 * remote atomics, each a direct use of the UCP call of the same name.
 *
 * A region is ucp_mem_map'ed memory. Its descriptor (wire.h: address,
 * length, ucp_rkey_pack output) travels to peers in any message; a peer
 * unpacks it *through one endpoint* (ucp_ep_rkey_unpack), which is why a
 * tsr_rkey_t belongs to a peer. Every access is bounds-checked against the
 * length the owner announced before UCX sees it, so a bad offset is an
 * error here, never a remote write outside the region.
 *
 * Atomics map onto ucp_atomic_op_nbx with a reply buffer (UCX's table):
 *   FADD  X=operand             reply = old
 *   SWAP  X=operand             reply = old
 *   CSWAP X=compare, reply=new  reply = old   (swap happens when old == X)
 * Where the hardware has no atomics (TCP), UCX emulates them with active
 * messages that the target's worker executes: the target must progress.
 *
 * Completion: blocking forms take the lock once, post, and return at once
 * when UCX completed the operation inside the *_nbx call (NULL: shared-memory
 * atomics and small gets usually do), else poll with the lock held
 * (progress.c's owner fast path) until the request completes. If it does not
 * complete in time, the peer is failed (only closing the endpoint makes UCX
 * give the buffers back). Non-blocking forms queue the user's callback, which
 * runs outside the lock; their tsr_op_t comes from a capped free list.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

/* ---- regions ------------------------------------------------------------------ */

tsr_status_t tsr_region_register(tsr_transport_t *t, void *addr, size_t len,
                                 tsr_region_t **out, tsr_error_t *err)
{
    if (!t || !out || len == 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "region: a nonzero length is required");
    tsr_region_t *r = tsr_mem_calloc(t->mem, 1, sizeof(*r));
    if (!r)
        return tsr_error_set(err, TSR_ERR_NOMEM, "region: out of memory");
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_FLAGS,
        .address = addr,
        .length = len,
        .flags = addr ? 0 : UCP_MEM_MAP_ALLOCATE,
    };
    tsr__lock(t);
    ucs_status_t st = ucp_mem_map(t->ucp, &mp, &r->memh);
    if (st == UCS_OK) {
        ucp_mem_attr_t ma = {.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS |
                                           UCP_MEM_ATTR_FIELD_LENGTH};
        st = ucp_mem_query(r->memh, &ma);
        if (st == UCS_OK) {
            r->addr = ma.address;
            r->len = len; /* UCX may map more (page-rounded); we expose what was asked */
        } else {
            ucp_mem_unmap(t->ucp, r->memh);
        }
    }
    if (st != UCS_OK) {
        tsr__unlock(t);
        tsr_mem_free(t->mem, r);
        return tsr_error_set(err, tsr__status_from_ucs(st), "ucp_mem_map of %zu bytes: %s", len,
                             ucs_status_string(st));
    }
    r->next = t->regions;
    if (t->regions)
        t->regions->prev = r;
    t->regions = r;
    tsr__unlock(t);
    /* UCX's allocation methods include its heap one (malloc'd, maybe
     * recycled memory) and hugetlb/thp pools: what it hands out is not
     * promised to be zero, and callers lay tables over it whose all-zero
     * slots mean "empty" (a kv partition's 0xbe-filled first 4 KiB under
     * ASan read as MOVED slots, and a reader looped on them forever).
     * Outside the lock: nothing can reach the region before *out. */
    if (!addr)
        memset(r->addr, 0, len);
    *out = r;
    return TSR_OK;
}

void *tsr_region_addr(const tsr_region_t *r)
{
    return r->addr;
}

size_t tsr_region_len(const tsr_region_t *r)
{
    return r->len;
}

tsr_status_t tsr_region_pack(tsr_transport_t *t, const tsr_region_t *r, void **buf,
                             size_t *len, tsr_error_t *err)
{
    void *rk = NULL;
    size_t rk_len = 0;
    tsr__lock(t);
    ucs_status_t st = ucp_rkey_pack(t->ucp, r->memh, &rk, &rk_len);
    tsr__unlock(t);
    if (st != UCS_OK)
        return tsr_error_set(err, tsr__status_from_ucs(st), "ucp_rkey_pack: %s",
                             ucs_status_string(st));
    tsr_status_t rc = TSR_OK;
    if (rk_len == 0 || rk_len > TSR_WIRE_MAX_RKEY) {
        rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED, "packed rkey of %zu bytes", rk_len);
        goto out;
    }
    tsr_wire_rmem_t m = {.addr = (uint64_t)(uintptr_t)r->addr,
                         .len = r->len,
                         .rkey_len = (uint32_t)rk_len,
                         .rkey = rk};
    size_t n = tsr_wire_rmem_size(m.rkey_len);
    uint8_t *out = tsr_mem_alloc(t->mem, n);
    if (!out) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "region pack: out of memory");
        goto out;
    }
    if (tsr_wire_rmem_encode(&m, out, n) != n) {
        tsr_mem_free(t->mem, out);
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "region pack: encoding failed");
        goto out;
    }
    *buf = out;
    *len = n;
out:
    ucp_rkey_buffer_release(rk);
    return rc;
}

void tsr_region_unregister(tsr_transport_t *t, tsr_region_t *r)
{
    if (!t || !r)
        return;
    tsr__lock(t);
    ucp_mem_unmap(t->ucp, r->memh);
    if (r->prev)
        r->prev->next = r->next;
    else
        t->regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
    tsr__unlock(t);
    tsr_mem_free(t->mem, r);
}

/* ---- remote keys ----------------------------------------------------------------- */

tsr_status_t tsr_rkey_unpack(tsr_transport_t *t, tsr_peer_t *peer, const void *buf,
                             size_t len, tsr_rkey_t **out, tsr_error_t *err)
{
    if (!t || !peer || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "rkey_unpack: missing argument");
    tsr_wire_rmem_t m;
    tsr_wire_err_t e = tsr_wire_rmem_decode(buf, len, &m);
    if (e != TSR_WIRE_OK)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "remote memory descriptor: %s",
                             tsr_wire_err_str(e));
    tsr_rkey_t *k = tsr_mem_calloc(t->mem, 1, sizeof(*k));
    if (!k)
        return tsr_error_set(err, TSR_ERR_NOMEM, "rkey: out of memory");
    tsr__lock(t);
    if (peer->state != TSR_PEER_UP || !peer->ep) {
        tsr__unlock(t);
        tsr_mem_free(t->mem, k);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "peer %u is down", peer->node_id);
    }
    ucs_status_t st = ucp_ep_rkey_unpack(peer->ep, m.rkey, &k->rkey);
    if (st != UCS_OK) {
        tsr__unlock(t);
        tsr_mem_free(t->mem, k);
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "ucp_ep_rkey_unpack: %s",
                             ucs_status_string(st));
    }
    k->peer = peer;
    tsr__peer_ref_locked(peer); /* error texts read k->peer even after a forget */
    k->addr = m.addr;
    k->len = m.len;
    k->next = t->rkeys;
    if (t->rkeys)
        t->rkeys->prev = k;
    t->rkeys = k;
    tsr__unlock(t);
    *out = k;
    return TSR_OK;
}

uint64_t tsr_rkey_len(const tsr_rkey_t *k)
{
    return k->len;
}

static void rkey_unlink_free_locked(tsr_transport_t *t, tsr_rkey_t *k)
{
    if (k->rkey)
        ucp_rkey_destroy(k->rkey);
    if (k->prev)
        k->prev->next = k->next;
    else
        t->rkeys = k->next;
    if (k->next)
        k->next->prev = k->prev;
    tsr__peer_unref_locked(t, k->peer);
    tsr_mem_free(t->mem, k);
}

void tsr_rkey_destroy(tsr_transport_t *t, tsr_rkey_t *k)
{
    if (!t || !k)
        return;
    tsr__lock(t);
    rkey_unlink_free_locked(t, k);
    tsr__unlock(t);
}

void tsr__rma_peer_closing_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    for (tsr_rkey_t *k = t->rkeys; k; k = k->next)
        if (k->peer == p && k->rkey) {
            ucp_rkey_destroy(k->rkey);
            k->rkey = NULL;
        }
}

void tsr__rma_fini(tsr_transport_t *t)
{
    while (t->op_cache) {
        tsr_op_t *op = t->op_cache;
        t->op_cache = (tsr_op_t *)op->item.next;
        tsr_mem_free(t->mem, op);
    }
    t->nop_cache = 0;
    while (t->rkeys)
        rkey_unlink_free_locked(t, t->rkeys);
    while (t->regions) {
        tsr_region_t *r = t->regions;
        t->regions = r->next;
        ucp_mem_unmap(t->ucp, r->memh);
        tsr_mem_free(t->mem, r);
    }
}

/* [L] Checks that [offset, offset+len) lies in k's region and k is usable. */
static tsr_status_t check_access_locked(const tsr_rkey_t *k, uint64_t offset, uint64_t len,
                                        uint64_t align, const char *what, tsr_error_t *err)
{
    if (!k->rkey || !k->peer->ep || k->peer->state != TSR_PEER_UP)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "%s: node %u is down", what,
                             k->peer->node_id);
    if (offset > k->len || len > k->len - offset)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "%s: [%llu, +%llu) is outside the %llu-byte region", what,
                             (unsigned long long)offset, (unsigned long long)len,
                             (unsigned long long)k->len);
    if (align > 1 && ((k->addr + offset) % align) != 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "%s: remote address not %llu-aligned",
                             what, (unsigned long long)align);
    return TSR_OK;
}

/* ---- get / put ------------------------------------------------------------------- */

/* [L] Takes a timed op off t->timed_ops and drops its peer reference. */
static void op_untime_locked(tsr_transport_t *t, tsr_op_t *op)
{
    if (!op->timed)
        return;
    if (op->tprev)
        op->tprev->tnext = op->tnext;
    else
        t->timed_ops = op->tnext;
    if (op->tnext)
        op->tnext->tprev = op->tprev;
    op->tprev = op->tnext = NULL;
    op->timed = false;
    tsr__peer_unref_locked(t, op->peer);
}

static void op_done_cb(void *request, ucs_status_t status, void *user_data)
{
    tsr_op_t *op = user_data;
    if (request)
        ucp_request_free(request);
    op_untime_locked(op->t, op);
    op->status = tsr__status_from_ucs(status);
    if (op->timed_out && op->status != TSR_OK)
        op->status = TSR_ERR_TIMEOUT; /* failed because we closed on its deadline */
    op->item.kind = TSR_ITEM_OP_DONE;
    tsr__enqueue(op->t, &op->item);
}

/* [L] Finishes posting a non-blocking op: r is what UCX returned. */
static tsr_status_t op_posted_locked(tsr_transport_t *t, tsr_op_t *op, void *r,
                                     const char *what, tsr_error_t *err)
{
    if (UCS_PTR_IS_ERR(r)) {
        ucs_status_t s = UCS_PTR_STATUS(r);
        op_untime_locked(t, op);
        tsr__op_free_locked(t, op);
        return tsr_error_set(err, tsr__status_from_ucs(s), "%s: %s", what,
                             ucs_status_string(s));
    }
    if (r == NULL)
        op_done_cb(NULL, UCS_OK, op); /* completed in place: callback still queued */
    return TSR_OK;
}

#define TSR_OP_CACHE_MAX 256u

/* [L] An op from the free list (or the heap). */
static tsr_op_t *op_new_locked(tsr_transport_t *t, tsr_rma_done_fn done, void *arg)
{
    tsr_op_t *op = t->op_cache;
    if (op) {
        t->op_cache = (tsr_op_t *)op->item.next;
        t->nop_cache--;
        memset(op, 0, sizeof(*op));
    } else {
        op = tsr_mem_calloc(t->mem, 1, sizeof(*op));
    }
    if (op) {
        op->t = t;
        op->done = done;
        op->arg = arg;
    }
    return op;
}

void tsr__op_free_locked(tsr_transport_t *t, tsr_op_t *op)
{
    if (t->nop_cache < TSR_OP_CACHE_MAX) {
        op->item.next = (tsr_item_t *)t->op_cache;
        t->op_cache = op;
        t->nop_cache++;
    } else {
        tsr_mem_free(t->mem, op);
    }
}

static tsr_status_t rma_blocking(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, void *buf,
                                 size_t len, bool put, int timeout_ms, tsr_error_t *err)
{
    const char *what = put ? "put" : "get";
    if (!t || !k || (len > 0 && !buf))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "%s: missing argument", what);
    tsr__lock(t);
    tsr_status_t rc = check_access_locked(k, offset, len, 1, what, err);
    if (rc == TSR_OK) {
        ucp_request_param_t prm = {.op_attr_mask = 0};
        tsr_peer_t *peer = k->peer;
        void *r = put ? ucp_put_nbx(peer->ep, buf, len, k->addr + offset, k->rkey, &prm)
                      : ucp_get_nbx(peer->ep, buf, len, k->addr + offset, k->rkey, &prm);
        rc = tsr__wait_request_locked(t, r, timeout_ms, peer, err, what);
    }
    tsr__unlock(t);
    return rc;
}

tsr_status_t tsr_rma_get(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, void *dst,
                         size_t len, int timeout_ms, tsr_error_t *err)
{
    return rma_blocking(t, k, offset, dst, len, false, timeout_ms, err);
}

tsr_status_t tsr_rma_put(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, const void *src,
                         size_t len, int timeout_ms, tsr_error_t *err)
{
    return rma_blocking(t, k, offset, (void *)src, len, true, timeout_ms, err);
}

static tsr_status_t rma_nb(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, void *buf,
                           size_t len, bool put, tsr_rma_done_fn done, void *arg,
                           tsr_error_t *err)
{
    const char *what = put ? "put" : "get";
    if (!t || !k || !done || (len > 0 && !buf))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "%s: missing argument", what);
    tsr__lock(t);
    tsr_status_t rc = check_access_locked(k, offset, len, 1, what, err);
    if (rc != TSR_OK) {
        tsr__unlock(t);
        return rc;
    }
    tsr_op_t *op = op_new_locked(t, done, arg);
    if (!op) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_NOMEM, "%s: out of memory", what);
    }
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                                               UCP_OP_ATTR_FIELD_USER_DATA,
                               .cb.send = op_done_cb,
                               .user_data = op};
    void *r = put ? ucp_put_nbx(k->peer->ep, buf, len, k->addr + offset, k->rkey, &prm)
                  : ucp_get_nbx(k->peer->ep, buf, len, k->addr + offset, k->rkey, &prm);
    rc = op_posted_locked(t, op, r, what, err);
    tsr__unlock(t);
    return rc;
}

tsr_status_t tsr_rma_get_nb(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, void *dst,
                            size_t len, tsr_rma_done_fn done, void *arg, tsr_error_t *err)
{
    return rma_nb(t, k, offset, dst, len, false, done, arg, err);
}

tsr_status_t tsr_rma_put_nb(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                            const void *src, size_t len, tsr_rma_done_fn done, void *arg,
                            tsr_error_t *err)
{
    return rma_nb(t, k, offset, (void *)src, len, true, done, arg, err);
}

/* ---- several operations, one wait --------------------------------------------------- */

/* The ops of one *_many call: an array of structs (tsr_rma_getv_t,
 * tsr_atomic_cswapv_t) whose first member is the rkey and whose req_ is
 * req_off bytes in. */
typedef struct many_wait {
    unsigned char *base;
    size_t stride, req_off;
    size_t n, next; /* ops before next are complete */
} many_wait_t;

static void *many_req(const many_wait_t *w, size_t i)
{
    void *r;
    memcpy(&r, w->base + i * w->stride + w->req_off, sizeof(r));
    return r;
}

static void many_set_req(const many_wait_t *w, size_t i, void *r)
{
    memcpy(w->base + i * w->stride + w->req_off, &r, sizeof(r));
}

static tsr_peer_t *many_peer(const many_wait_t *w, size_t i)
{
    tsr_rkey_t *k;
    memcpy(&k, w->base + i * w->stride, sizeof(k));
    return k->peer;
}

/* [L] Whether every posted op completed (each request checked once it
 * is the first unfinished one: O(n) over the whole wait). */
static bool many_done(void *arg)
{
    many_wait_t *w = arg;
    while (w->next < w->n) {
        void *r = many_req(w, w->next);
        if (r && ucp_request_check_status(r) == UCS_INPROGRESS)
            return false;
        w->next++;
    }
    return true;
}

/* [L] Waits for every op posted (req_ set, NULL: done in place) until
 * timeout_ms; returns TSR_ERR_TIMEOUT when some did not finish in time. */
static tsr_status_t many_wait_locked(tsr_transport_t *t, many_wait_t *w, int timeout_ms)
{
    tsr_status_t rc =
        many_done(w) ? TSR_OK : tsr__wait_locked(t, many_done, w, -1, timeout_ms, NULL);
    if (rc == TSR_ERR_TIMEOUT) {
        /* As wait_request_locked: only closing the endpoint makes UCX give
         * the buffers back, so a peer that cannot finish an op in time is
         * failed (every unfinished op's peer). */
        for (size_t i = w->next; i < w->n; i++) {
            void *r = many_req(w, i);
            if (r && ucp_request_check_status(r) == UCS_INPROGRESS)
                tsr__peer_fail_locked(t, many_peer(w, i), TSR_ERR_TIMEOUT,
                                      "operation timed out");
        }
        w->next = 0;
        (void)tsr__wait_locked(t, many_done, w, tsr__deadline(5000), -1, NULL);
    }
    return rc;
}

/* [L] How op i ended (UCS_OK for one done in place), its request freed
 * (one still in progress is left to UCX, never freed). */
static ucs_status_t many_take(const many_wait_t *w, size_t i)
{
    void *r = many_req(w, i);
    if (!r)
        return UCS_OK;
    ucs_status_t s = ucp_request_check_status(r);
    if (s != UCS_INPROGRESS)
        ucp_request_free(r);
    many_set_req(w, i, NULL);
    return s;
}

tsr_status_t tsr_rma_get_many(tsr_transport_t *t, tsr_rma_getv_t *ops, size_t n, int timeout_ms,
                              tsr_error_t *err)
{
    if (!t || (n > 0 && !ops))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "get_many: missing argument");
    for (size_t i = 0; i < n; i++) {
        ops[i].req_ = NULL;
        ops[i].status = TSR_OK;
        if (!ops[i].k || (ops[i].len > 0 && !ops[i].dst))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "get_many: op %zu: missing argument",
                                 i);
    }
    tsr_status_t first = TSR_OK;
    tsr__lock(t);
    ucp_request_param_t prm = {.op_attr_mask = 0};
    for (size_t i = 0; i < n; i++) {
        tsr_rma_getv_t *o = &ops[i];
        o->status = check_access_locked(o->k, o->offset, o->len, 1, "get",
                                        first == TSR_OK ? err : NULL);
        if (o->status != TSR_OK) {
            if (first == TSR_OK)
                first = o->status;
            continue;
        }
        void *r = ucp_get_nbx(o->k->peer->ep, o->dst, o->len, o->k->addr + o->offset, o->k->rkey,
                              &prm);
        if (UCS_PTR_IS_ERR(r)) {
            ucs_status_t s = UCS_PTR_STATUS(r);
            o->status = tsr__status_from_ucs(s);
            if (first == TSR_OK) {
                first = o->status;
                tsr_error_set(err, first, "get failed: %s", ucs_status_string(s));
            }
            continue;
        }
        o->req_ = r; /* NULL: completed inside ucp_get_nbx */
    }
    many_wait_t w = {(unsigned char *)ops, sizeof(*ops), offsetof(tsr_rma_getv_t, req_), n, 0};
    tsr_status_t rc = many_wait_locked(t, &w, timeout_ms);
    for (size_t i = 0; i < n; i++) {
        tsr_rma_getv_t *o = &ops[i];
        ucs_status_t s = many_take(&w, i);
        if (s == UCS_OK)
            continue;
        o->status = rc == TSR_ERR_TIMEOUT ? TSR_ERR_TIMEOUT : tsr__status_from_ucs(s);
        if (first == TSR_OK) {
            first = o->status;
            if (rc == TSR_ERR_TIMEOUT)
                tsr_error_set(err, first, "get timed out");
            else
                tsr_error_set(err, first, "get failed: %s", ucs_status_string(s));
        }
    }
    tsr__unlock(t);
    return first;
}

tsr_status_t tsr_rma_flush(tsr_transport_t *t, tsr_peer_t *peer, int timeout_ms,
                           tsr_error_t *err)
{
    if (!t || !peer)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "flush: missing argument");
    tsr__lock(t);
    if (!peer->ep || peer->state != TSR_PEER_UP) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "flush: node %u is down", peer->node_id);
    }
    ucp_request_param_t prm = {.op_attr_mask = 0};
    void *r = ucp_ep_flush_nbx(peer->ep, &prm);
    tsr_status_t rc = tsr__wait_request_locked(t, r, timeout_ms, peer, err, "flush");
    tsr__unlock(t);
    return rc;
}

/* ---- atomics ---------------------------------------------------------------------- */

static ucp_atomic_op_t ucp_op(tsr_atomic_op_t op)
{
    switch (op) {
    case TSR_ATOMIC_FADD:
        return UCP_ATOMIC_OP_ADD;
    case TSR_ATOMIC_SWAP:
        return UCP_ATOMIC_OP_SWAP;
    case TSR_ATOMIC_CSWAP:
        return UCP_ATOMIC_OP_CSWAP;
    }
    return UCP_ATOMIC_OP_LAST;
}

static const char *op_name(tsr_atomic_op_t op)
{
    return op == TSR_ATOMIC_FADD ? "fetch-and-add" : op == TSR_ATOMIC_SWAP ? "swap" : "cswap";
}

static tsr_status_t atomic_blocking(tsr_transport_t *t, tsr_rkey_t *k, tsr_atomic_op_t op,
                                    uint64_t offset, uint64_t operand, uint64_t compare,
                                    uint64_t *old, int timeout_ms, tsr_error_t *err)
{
    if (!t || !k)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "atomic: missing argument");
    /* CSWAP: UCX compares with *buffer and swaps in *reply_buffer. */
    uint64_t x = op == TSR_ATOMIC_CSWAP ? compare : operand;
    uint64_t reply = op == TSR_ATOMIC_CSWAP ? operand : 0;
    tsr__lock(t);
    tsr_status_t rc = check_access_locked(k, offset, 8, 8, op_name(op), err);
    if (rc == TSR_OK) {
        ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE |
                                                   UCP_OP_ATTR_FIELD_REPLY_BUFFER,
                                   .datatype = ucp_dt_make_contig(8),
                                   .reply_buffer = &reply};
        tsr_peer_t *peer = k->peer;
        void *r =
            ucp_atomic_op_nbx(peer->ep, ucp_op(op), &x, 1, k->addr + offset, k->rkey, &prm);
        rc = tsr__wait_request_locked(t, r, timeout_ms, peer, err, op_name(op));
    }
    tsr__unlock(t);
    if (rc == TSR_OK && old)
        *old = reply;
    return rc;
}

tsr_status_t tsr_atomic_fadd(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                             uint64_t add, uint64_t *old, int timeout_ms, tsr_error_t *err)
{
    return atomic_blocking(t, k, TSR_ATOMIC_FADD, offset, add, 0, old, timeout_ms, err);
}

tsr_status_t tsr_atomic_swap(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                             uint64_t value, uint64_t *old, int timeout_ms, tsr_error_t *err)
{
    return atomic_blocking(t, k, TSR_ATOMIC_SWAP, offset, value, 0, old, timeout_ms, err);
}

tsr_status_t tsr_atomic_cswap(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                              uint64_t compare, uint64_t value, uint64_t *old, int timeout_ms,
                              tsr_error_t *err)
{
    return atomic_blocking(t, k, TSR_ATOMIC_CSWAP, offset, value, compare, old, timeout_ms,
                           err);
}

tsr_status_t tsr_atomic_cswap_many(tsr_transport_t *t, tsr_atomic_cswapv_t *ops, size_t n,
                                   int timeout_ms, tsr_error_t *err)
{
    if (!t || (n > 0 && !ops))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "cswap_many: missing argument");
    for (size_t i = 0; i < n; i++) {
        ops[i].req_ = NULL;
        ops[i].status = TSR_OK;
        if (!ops[i].k)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "cswap_many: op %zu: no rkey", i);
    }
    tsr_status_t first = TSR_OK;
    tsr__lock(t);
    for (size_t i = 0; i < n; i++) {
        tsr_atomic_cswapv_t *o = &ops[i];
        o->status = check_access_locked(o->k, o->offset, 8, 8, "cswap", first == TSR_OK ? err : NULL);
        if (o->status != TSR_OK) {
            if (first == TSR_OK)
                first = o->status;
            continue;
        }
        /* UCX compares with *buffer and swaps in *reply_buffer, where the
         * old value comes back: both live in the op until it completes */
        o->cmp_ = o->compare;
        o->old = o->value;
        ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE |
                                                   UCP_OP_ATTR_FIELD_REPLY_BUFFER,
                                   .datatype = ucp_dt_make_contig(8),
                                   .reply_buffer = &o->old};
        void *r = ucp_atomic_op_nbx(o->k->peer->ep, UCP_ATOMIC_OP_CSWAP, &o->cmp_, 1,
                                    o->k->addr + o->offset, o->k->rkey, &prm);
        if (UCS_PTR_IS_ERR(r)) {
            ucs_status_t s = UCS_PTR_STATUS(r);
            o->status = tsr__status_from_ucs(s);
            if (first == TSR_OK) {
                first = o->status;
                tsr_error_set(err, first, "cswap failed: %s", ucs_status_string(s));
            }
            continue;
        }
        o->req_ = r; /* NULL: completed inside ucp_atomic_op_nbx */
    }
    many_wait_t w = {(unsigned char *)ops, sizeof(*ops), offsetof(tsr_atomic_cswapv_t, req_), n,
                     0};
    tsr_status_t rc = many_wait_locked(t, &w, timeout_ms);
    for (size_t i = 0; i < n; i++) {
        tsr_atomic_cswapv_t *o = &ops[i];
        ucs_status_t s = many_take(&w, i);
        if (s == UCS_OK || o->status != TSR_OK)
            continue;
        o->status = rc == TSR_ERR_TIMEOUT ? TSR_ERR_TIMEOUT : tsr__status_from_ucs(s);
        if (first == TSR_OK)
            first = tsr_error_set(err, o->status, "cswap %s",
                                  rc == TSR_ERR_TIMEOUT ? "timed out" : ucs_status_string(s));
    }
    tsr__unlock(t);
    return first;
}

unsigned tsr__rma_expire_locked(tsr_transport_t *t, int64_t now)
{
    unsigned n = 0;
restart:
    for (tsr_op_t *op = t->timed_ops; op; op = op->tnext) {
        if (op->timed_out || op->deadline_ns > now)
            continue;
        op->timed_out = true;
        n++;
        /* Closing the endpoint is what makes UCX complete the op (with an
         * error, reported as TSR_ERR_TIMEOUT above); it may complete ops
         * in place and so edit this list: scan again. */
        tsr__peer_fail_locked(t, op->peer, TSR_ERR_TIMEOUT, "atomic timed out");
        goto restart;
    }
    return n;
}

tsr_status_t tsr_atomic_post(tsr_transport_t *t, tsr_rkey_t *k, tsr_atomic_op_t op,
                             uint64_t offset, uint64_t operand, uint64_t compare,
                             tsr_rma_done_fn done, void *arg, tsr_error_t *err)
{
    return tsr_atomic_post_timeout(t, k, op, offset, operand, compare, -1, done, arg, err);
}

tsr_status_t tsr_atomic_post_timeout(tsr_transport_t *t, tsr_rkey_t *k, tsr_atomic_op_t op,
                                     uint64_t offset, uint64_t operand, uint64_t compare,
                                     int timeout_ms, tsr_rma_done_fn done, void *arg,
                                     tsr_error_t *err)
{
    if (!t || !k || !done || ucp_op(op) == UCP_ATOMIC_OP_LAST)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "atomic_post: bad argument");
    tsr__lock(t);
    tsr_status_t rc = check_access_locked(k, offset, 8, 8, op_name(op), err);
    if (rc != TSR_OK) {
        tsr__unlock(t);
        return rc;
    }
    tsr_op_t *o = op_new_locked(t, done, arg);
    if (!o) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_NOMEM, "atomic: out of memory");
    }
    o->operand = op == TSR_ATOMIC_CSWAP ? compare : operand;
    o->result = op == TSR_ATOMIC_CSWAP ? operand : 0;
    if (timeout_ms >= 0) {
        /* On the list before posting: an op UCX completes in place comes
         * off it again in op_done_cb. */
        o->peer = k->peer;
        o->deadline_ns = tsr__deadline(timeout_ms);
        o->timed = true;
        o->tnext = t->timed_ops;
        if (t->timed_ops)
            t->timed_ops->tprev = o;
        t->timed_ops = o;
        tsr__peer_ref_locked(o->peer);
    }
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE |
                                               UCP_OP_ATTR_FIELD_REPLY_BUFFER |
                                               UCP_OP_ATTR_FIELD_CALLBACK |
                                               UCP_OP_ATTR_FIELD_USER_DATA,
                               .datatype = ucp_dt_make_contig(8),
                               .reply_buffer = &o->result,
                               .cb.send = op_done_cb,
                               .user_data = o};
    void *r = ucp_atomic_op_nbx(k->peer->ep, ucp_op(op), &o->operand, 1, k->addr + offset,
                                k->rkey, &prm);
    rc = op_posted_locked(t, o, r, op_name(op), err);
    tsr__unlock(t);
    return rc;
}
