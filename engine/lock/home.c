/*
 * home.c - a lock home: the table of lock slots one process owns.
 *
 * Embedded homes are a 64-byte aligned heap array; distributed homes are a
 * region UCX allocates and registers (ucp_mem_map with no address, so shared
 * memory transports can map it into peers and run atomics on it with the
 * CPU), announced to clients by one RPC that returns the packed descriptor.
 * After that the home's code runs for nobody: clients change the words with
 * one-sided atomics (lock_internal.h has the layout). Over TCP UCX emulates
 * those atomics with messages the home's worker executes, which is why the
 * owner must keep the transport progressing. A distributed home also serves
 * lock calls (serve.c, RPC type rpc_type + 1) for clients that take the
 * served path; the descriptor's flags word says so (LK_INFO_SERVED).
 *
 * Fresh slots get a time-based epoch count (E) in their grant word so that
 * the tokens of a restarted home exceed those of its previous life.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lock_internal.h"

int64_t tsr_lock_now_ms(void)
{
    /* The coarse clock (one tick, <= 4 ms, behind; no TSC read): lease
     * starts taken with it are early, which is the safe side for holders;
     * release's margin (>= 5 ms, lk_margin_ms) covers its lag at the end. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tsr_lock_precise_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t tsr_lock_token_seed(void)
{
    /* E = seconds since 2024-01-01 << 8 (so E mod 256 = 0, word 1's first
     * epoch): a lock may go through 256 epochs (resets: after 8192 tickets
     * of one kind, or at a lease expiry) per second of a home's life before
     * a restarted home could issue a smaller token; the 40-bit field lasts
     * past 2150. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t s = (int64_t)ts.tv_sec - 1704067200;
    if (s < 1)
        s = 1;
    return ((uint64_t)s << 8) << LK_E_SHIFT;
}

tsr_status_t tsr_lock_check_name(const char *name, size_t *len, tsr_error_t *err)
{
    if (!name)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lock name missing");
    /* ASCII prefix first (the common case), then strnlen for the rest */
    const unsigned char *u = (const unsigned char *)name;
    size_t n = 0;
    while (n <= TSR_LOCK_NAME_MAX && u[n] != 0 && u[n] < 0x80)
        n++;
    size_t ascii = n;
    if (n <= TSR_LOCK_NAME_MAX && u[n] != 0)
        n += strnlen(name + n, TSR_LOCK_NAME_MAX + 1 - n);
    if (n == 0)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "lock name is empty");
    if (n > TSR_LOCK_NAME_MAX)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "lock name is longer than %u bytes", TSR_LOCK_NAME_MAX);
    /* well-formed UTF-8: no overlongs, surrogates or code points past U+10FFFF */
    const unsigned char *s = u;
    for (size_t i = ascii; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (k == 0 || i + k > n)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "lock name is not valid UTF-8 (byte %zu)", i + 1);
        uint32_t cp = k == 1 ? c : c & (0x7fu >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                     "lock name is not valid UTF-8 (byte %zu)", i + j + 1);
            cp = (cp << 6) | (s[i + j] & 0x3fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "lock name is not valid UTF-8 (byte %zu)", i + 1);
        i += k;
    }
    *len = n;
    return TSR_OK;
}

tsr_status_t tsr_lock_err_out(tsr_lock_err_t *out, const tsr_error_t *e, tsr_status_t rc)
{
    if (out && rc != TSR_OK && out->status == TSR_OK) {
        out->status = rc;
        snprintf(out->message, sizeof(out->message), "%s",
                 e->message[0] ? e->message : tsr_status_str(rc));
    }
    return rc;
}

/* The descriptor call: answers with the table's header and packed region. */
bool tsr_lock_home_allows(tsr_lock_home_t *h, tsr_rpc_req_t *req)
{
    if (!h->allow || h->allow(h->allow_arg, tsr_rpc_req_peer(req)))
        return true;
    static const char msg[] = "authentication required";
    (void)tsr_rpc_reply(h->t, req, TSR_ERR_AUTH, msg, sizeof(msg) - 1);
    return false;
}

static void info_handler(void *arg, tsr_rpc_req_t *req)
{
    tsr_lock_home_t *h = arg;
    if (!tsr_lock_home_allows(h, req))
        return;
    (void)tsr_rpc_reply(h->t, req, TSR_OK, h->info, h->info_len);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

tsr_status_t tsr_lock_home_create(tsr_transport_t *transport, const tsr_lock_home_params_t *params,
                                  tsr_lock_home_t **out, tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    tsr_status_t rc;
    uint32_t nslots = params && params->slots ? params->slots : TSR_LOCK_DEFAULT_SLOTS;
    uint16_t type = params && params->rpc_type ? params->rpc_type : TSR_LOCK_RPC_INFO;
    if (!out)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG, "lock home: no output"));
    if (nslots > (1u << 26))
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG,
                                              "lock home: %u slots is too many (at most %u)",
                                              nslots, 1u << 26));
    tsr_lock_home_t *h = tsr_mem_calloc(NULL, 1, sizeof(*h));
    if (!h)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_NOMEM, "lock home: out of memory"));
    h->t = transport;
    h->nslots = nslots;
    h->rpc_type = type;
    h->allow = params ? params->allow : NULL;
    h->allow_arg = params ? params->allow_arg : NULL;
    size_t bytes = (size_t)nslots * LK_SLOT_BYTES;
    if (!transport) {
        h->words = tsr_mem_alloc_aligned(NULL, bytes);
        if (!h->words) {
            rc = tsr_error_set(&err, TSR_ERR_NOMEM, "lock home: cannot allocate %zu bytes", bytes);
            goto err_free_home;
        }
        memset((void *)h->words, 0, bytes);
    } else {
        rc = tsr_region_register(transport, NULL, bytes, &h->region, &err);
        if (rc != TSR_OK)
            goto err_free_home;
        h->words = tsr_region_addr(h->region);
    }
    /* Before anyone can see the table: plain stores are fine. */
    uint64_t seed = tsr_lock_token_seed();
    for (uint32_t i = 0; i < nslots; i++)
        atomic_store_explicit(&h->words[(size_t)i * LK_SLOT_WORDS + LK_W_GRANT], seed,
                              memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (transport) {
        void *packed = NULL;
        size_t plen = 0;
        rc = tsr_region_pack(transport, h->region, &packed, &plen, &err);
        if (rc != TSR_OK)
            goto err_unregister;
        h->info_len = LK_INFO_HDR + plen;
        h->info = tsr_mem_alloc(NULL, h->info_len);
        if (!h->info) {
            tsr_mem_free(NULL, packed);
            rc = tsr_error_set(&err, TSR_ERR_NOMEM, "lock home: out of memory");
            goto err_unregister;
        }
        unsigned char *p = h->info;
        put_u32(p, LK_INFO_MAGIC);
        put_u32(p + 4, LK_INFO_VERSION);
        put_u32(p + 8, nslots);
        put_u32(p + 12, LK_INFO_SERVED);
        memcpy(p + LK_INFO_HDR, packed, plen);
        tsr_mem_free(NULL, packed);
        rc = tsr_lock_serve_start(h, &err);
        if (rc != TSR_OK)
            goto err_free_info;
        rc = tsr_rpc_register(transport, type, info_handler, h, &err);
        if (rc != TSR_OK)
            goto err_stop_serving;
    }
    *out = h;
    return TSR_OK;

err_stop_serving:
    tsr_lock_serve_stop(h);
err_free_info:
    tsr_mem_free(NULL, h->info);
err_unregister:
    tsr_region_unregister(transport, h->region);
    h->words = NULL;
err_free_home:
    if (!transport)
        tsr_mem_free(NULL, (void *)h->words);
    tsr_mem_free(NULL, h);
    return tsr_lock_err_out(errp, &err, rc);
}

void tsr_lock_home_destroy(tsr_lock_home_t *h)
{
    if (!h)
        return;
    if (h->t) {
        /* the transport has no unregister: a NULL handler answers "unsupported" */
        (void)tsr_rpc_register(h->t, h->rpc_type, NULL, NULL, NULL);
        tsr_lock_serve_stop(h);
        tsr_region_unregister(h->t, h->region);
        tsr_mem_free(NULL, h->info);
    } else {
        tsr_mem_free(NULL, (void *)h->words);
    }
    tsr_mem_free(NULL, h);
}

uint32_t tsr_lock_home_slots(const tsr_lock_home_t *h)
{
    return h ? h->nslots : 0;
}
