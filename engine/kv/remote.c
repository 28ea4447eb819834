/*
 * remote.c - one-sided remote reads of kv partitions over the transport.
 *
 * Server: answers a descriptor call (RPC type rpc_type) for (table,
 * partition) with the partition's current table geometry and its packed
 * region (registered with UCX on first request). From then on the partition
 * keeps replaced regions (and their registrations) until the server stops,
 * so a reader holding an old descriptor reads memory that is still there and
 * sees MOVED on every slot. The server keeps a handle on every table it
 * described, so a dropped table's memory stays too; tsr_kv_server_retire
 * (after a drop) sets MOVED on every slot of the dropped table's current
 * regions, so a reader holding its descriptor re-fetches instead of reading
 * the dropped copy on and on (the re-fetch finds the new table of that name,
 * or NOT_FOUND).
 *
 *   request  u32 partition, u32 name length, name
 *   reply    u32 nparts, u32 partition, u64 nslots, u32 slot_size, u32 max_key,
 *            u32 max_val, u32 flags (0), u64 epoch, u64 version mask, then
 *            the packed region
 *
 * Version mask: what the owner's transaction layer XORs into the versions
 * it hands out for this table (tsr_kv_server_params_t.version_mask; 0
 * without one). It is computed for the very table handle whose region the
 * reply packs, under the server's mutex, so a reader pairs each region
 * with that region's table's mask: a table dropped and re-created under the
 * same name (another id, another mask) never lends its mask to the other's
 * slots. tsr_kv_remote_get_versioned hands out slot version XOR mask.
 *
 * Reader: a get hashes the key, picks the partition and reads its probe
 * sequence with RMA gets of a window of consecutive slots (up to 4, at most
 * 16 KiB). A slot copy is accepted when its version is even and not MOVED
 * and its checksum (part.c: over version, hash, state, lengths, key, value)
 * matches: the bytes of one RMA get arrive in no particular order, so the
 * checksum, not a second read of the version, is what proves the copy whole.
 * An odd version or a bad checksum re-reads the window from that slot
 * (torn_retries); MOVED re-fetches the descriptor (refreshes) and starts
 * over. The owner's CPU runs nothing for a get over shared memory or RDMA
 * (over TCP, UCX serves gets from the owner's progress thread).
 *
 * get_many (remote_many.c; several gets in flight): up to 256 keys probed at once
 * in rounds; a round posts one window read per unfinished key and reaps
 * them with one wait (tsr_rma_get_many), and scan_window judges each
 * window exactly as for the single get. MOVED re-fetches a partition's
 * descriptor once per round (rpart_t.gen); a key whose probe spans rounds
 * starts over when its partition's descriptor changed meanwhile, so no
 * probe mixes two geometries. Each window is its own RMA get (over TCP,
 * one UCX-emulated get each, as for the single get), so n keys in flight
 * cost the owner what n single gets cost, only without n round trips of
 * waiting in a row.
 *
 * Slot bytes travel raw: owner and readers must share endianness (x86-64,
 * aarch64 little-endian), as the lock service's slots already do.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "remote_int.h"
#include "transport.h"

#define DESC_HDR 48u
#define DESC_SWEEP 0x80000000u /* request: break expired remote locks of the partition first */
#define DESC_F_RLOCK 1u        /* reply flags: clients may lock slots one-sided */

/* ---- server ---------------------------------------------------------------------- */

typedef struct srv_reg {
    const unsigned char *base;
    tsr_region_t *region;
} srv_reg_t;

typedef struct srv_tab {
    tsr_kv_table_t *t;
    bool retired; /* dropped, and its slots marked MOVED */
} srv_tab_t;

struct tsr_kv_server {
    tsr_kv_store_t *store;
    tsr_transport_t *t;
    tsr_kv_server_params_t p;
    pthread_mutex_t mu;
    srv_tab_t *tabs; /* handles we keep open: their memory must stay */
    size_t ntabs, tcap;
    srv_reg_t *regs;
    size_t nregs, rcap;
};

static tsr_status_t srv_table(tsr_kv_server_t *s, const char *name, tsr_kv_table_t **out,
                              tsr_error_t *err)
{
    for (size_t i = 0; i < s->ntabs; i++)
        if (!atomic_load(&s->tabs[i].t->dropped) && strcmp(s->tabs[i].t->name, name) == 0) {
            *out = s->tabs[i].t;
            return TSR_OK;
        }
    if (tsr_mem_grow(NULL, (void **)&s->tabs, &s->tcap, s->ntabs + 1, sizeof(*s->tabs)) != 0)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    tsr_kv_err_t ke = {0};
    tsr_status_t rc = tsr_kv_table_open(s->store, name, out, &ke);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "%s", ke.message);
    s->tabs[s->ntabs].t = *out;
    s->tabs[s->ntabs].retired = false;
    s->ntabs++;
    return TSR_OK;
}

static tsr_status_t srv_region(tsr_kv_server_t *s, kv_tab_t *tab, tsr_region_t **out,
                               tsr_error_t *err)
{
    if (tab->region) { /* allocated by the transport: registered already */
        *out = tab->region;
        return TSR_OK;
    }
    for (size_t i = 0; i < s->nregs; i++)
        if (s->regs[i].base == tab->base) {
            *out = s->regs[i].region;
            return TSR_OK;
        }
    if (tsr_mem_grow(NULL, (void **)&s->regs, &s->rcap, s->nregs + 1, sizeof(*s->regs)) != 0)
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    tsr_status_t rc = tsr_region_register(s->t, tab->base, tab->bytes, out, err);
    if (rc != TSR_OK)
        return rc;
    s->regs[s->nregs].base = tab->base;
    s->regs[s->nregs].region = *out;
    s->nregs++;
    return TSR_OK;
}

static void h_desc(void *arg, tsr_rpc_req_t *req)
{
    tsr_kv_server_t *s = arg;
    tsr_error_t e;
    tsr_error_clear(&e);
    size_t len;
    const unsigned char *p = tsr_rpc_req_data(req, &len);
    char name[TSR_KV_NAME_MAX + 1];
    unsigned char *reply = NULL;
    size_t rlen = 0;
    void *packed = NULL;
    size_t plen = 0;
    tsr_status_t rc = TSR_OK;
    if (s->p.allow && !s->p.allow(s->p.allow_arg, tsr_rpc_req_peer(req))) {
        rc = tsr_error_set(&e, TSR_ERR_AUTH, "kv: descriptor refused: authenticate first");
        goto out;
    }
    if (len < 8 || kv_get32(p + 4) != len - 8 || len - 8 > TSR_KV_NAME_MAX) {
        rc = tsr_error_set(&e, TSR_ERR_BAD_INPUT, "kv: malformed descriptor request");
        goto out;
    }
    uint32_t part = kv_get32(p) & ~DESC_SWEEP;
    bool sweep = (kv_get32(p) & DESC_SWEEP) != 0;
    memcpy(name, p + 8, len - 8);
    name[len - 8] = '\0';
    pthread_mutex_lock(&s->mu);
    tsr_kv_table_t *t;
    rc = srv_table(s, name, &t, &e);
    if (rc == TSR_OK && part >= t->nparts)
        rc = tsr_error_set(&e, TSR_ERR_NOT_FOUND, "kv: table '%s' has no partition %u", name, part);
    if (rc == TSR_OK && sweep)
        (void)tsr_kv_rlock_sweep(&t->parts[part]);
    if (rc == TSR_OK) {
        kv_part_t *pt = &t->parts[part];
        pthread_mutex_lock(&pt->wlock);
        pt->keep_retired = true;
        kv_tab_t *tab = atomic_load(&pt->tab);
        tsr_region_t *r;
        rc = srv_region(s, tab, &r, &e);
        if (rc == TSR_OK)
            rc = tsr_region_pack(s->t, r, &packed, &plen, &e);
        if (rc == TSR_OK) {
            rlen = DESC_HDR + plen;
            reply = tsr_mem_alloc(NULL, rlen);
            if (!reply)
                rc = tsr_error_set(&e, TSR_ERR_NOMEM, "kv: out of memory");
        }
        if (rc == TSR_OK) {
            kv_put32(reply, t->nparts);
            kv_put32(reply + 4, part);
            kv_put64(reply + 8, tab->nslots);
            kv_put32(reply + 16, tab->slot_size);
            kv_put32(reply + 20, t->max_key);
            kv_put32(reply + 24, t->max_val);
            /* remote locks only where every writer of the slots claims
             * them by compare-and-swap: not with device batches (their
             * kernels lock slots their own way), not for a cluster's
             * tables (masked versions; their commits go elsewhere) */
            kv_put32(reply + 28, !s->store->dev && !s->p.version_mask ? DESC_F_RLOCK : 0);
            kv_put64(reply + 32, tab->epoch);
            kv_put64(reply + 40, s->p.version_mask ? s->p.version_mask(s->p.mask_arg, t) : 0);
            memcpy(reply + DESC_HDR, packed, plen);
        }
        pthread_mutex_unlock(&pt->wlock);
    }
    pthread_mutex_unlock(&s->mu);
out:
    if (rc == TSR_OK)
        tsr_rpc_reply(s->t, req, TSR_OK, reply, rlen);
    else
        tsr_rpc_reply(s->t, req, rc, e.message, strlen(e.message) + 1);
    tsr_mem_free(NULL, reply);
    tsr_mem_free(NULL, packed);
}

tsr_status_t tsr_kv_server_start(tsr_kv_store_t *store, tsr_transport_t *transport,
                                 uint16_t rpc_type, tsr_kv_server_t **out, tsr_kv_err_t *kerr)
{
    tsr_kv_server_params_t p = {.rpc_type = rpc_type};
    return tsr_kv_server_start_ex(store, transport, &p, out, kerr);
}

tsr_status_t tsr_kv_server_start_ex(tsr_kv_store_t *store, tsr_transport_t *transport,
                                    const tsr_kv_server_params_t *params, tsr_kv_server_t **out,
                                    tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!store || !transport || !params || !out)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_kv_server_t *s = tsr_mem_calloc(NULL, 1, sizeof(*s));
    if (!s)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_NOMEM);
    s->store = store;
    s->t = transport;
    s->p = *params;
    if (!s->p.rpc_type)
        s->p.rpc_type = TSR_KV_RPC_DESC;
    pthread_mutex_init(&s->mu, NULL);
    tsr_status_t rc = tsr_rpc_register(transport, s->p.rpc_type, h_desc, s, &e);
    if (rc != TSR_OK) {
        pthread_mutex_destroy(&s->mu);
        tsr_mem_free(NULL, s);
        return tsr_kv_err_from(kerr, &e, rc);
    }
    *out = s;
    return TSR_OK;
}

uint16_t tsr_kv_server_rpc_type(const tsr_kv_server_t *s)
{
    return s->p.rpc_type;
}

void tsr_kv_server_retire(tsr_kv_server_t *s, const char *table)
{
    if (!s || !table)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ntabs; i++) {
        srv_tab_t *st = &s->tabs[i];
        if (st->retired || !atomic_load(&st->t->dropped) || strcmp(st->t->name, table) != 0)
            continue;
        /* No writer changes a dropped table's slots again (ops on it fail
         * NOT_FOUND, and a rehash needs a write), so MOVED stays set; the
         * replaced regions are MOVED already. */
        for (uint32_t p = 0; p < st->t->nparts; p++) {
            kv_part_t *pt = &st->t->parts[p];
            pthread_mutex_lock(&pt->wlock);
            kv_tab_t *tab = atomic_load(&pt->tab);
            for (uint64_t j = 0; j < tab->nslots; j++)
                atomic_fetch_or(&kv_slot_at(tab, j)->ver, KV_VER_MOVED);
            pthread_mutex_unlock(&pt->wlock);
        }
        st->retired = true;
    }
    pthread_mutex_unlock(&s->mu);
}

void tsr_kv_server_stop(tsr_kv_server_t *s)
{
    if (!s)
        return;
    /* The handler stays registered: the caller unregisters it
     * (tsr_rpc_unregister, from the thread that progresses) or stops the
     * transport's progress before, or destroys it after. */
    for (size_t i = 0; i < s->nregs; i++)
        tsr_region_unregister(s->t, s->regs[i].region);
    for (size_t i = 0; i < s->ntabs; i++)
        tsr_kv_table_close(s->tabs[i].t);
    tsr_mem_free(NULL, s->regs);
    tsr_mem_free(NULL, s->tabs);
    pthread_mutex_destroy(&s->mu);
    tsr_mem_free(NULL, s);
}

/* ---- reader ---------------------------------------------------------------------- */

tsr_status_t tsr_kv_remote_fetch_desc(tsr_kv_remote_t *r, uint32_t part, tsr_error_t *err)
{
    return tsr_kv_remote_fetch_desc_ex(r, part, false, err);
}

bool tsr_kv_remote_torn_by_stale_lock(const unsigned char *slot)
{
    uint64_t w = kv_get64(slot);
    return kv_is_rlock(w) && kv_rlock_expired(w, tsr_kv_rlock_now_ms());
}

tsr_status_t tsr_kv_remote_fetch_desc_ex(tsr_kv_remote_t *r, uint32_t part, bool sweep,
                                         tsr_error_t *err)
{
    size_t nlen = strlen(r->name);
    unsigned char req[8 + TSR_KV_NAME_MAX];
    kv_put32(req, part | (sweep ? DESC_SWEEP : 0));
    if (sweep)
        r->st.sweeps++;
    kv_put32(req + 4, (uint32_t)nlen);
    memcpy(req + 8, r->name, nlen);
    tsr_rpc_msg_t reply = {0};
    tsr_status_t rc =
        tsr_rpc_call(r->t, r->peer, r->rpc_type, req, 8 + nlen, r->timeout_ms, &reply, err);
    if (rc != TSR_OK) {
        if (reply.data && reply.len > 0)
            tsr_error_set(err, rc, "kv: remote: %.*s", (int)reply.len, (const char *)reply.data);
        tsr_rpc_msg_release(r->t, &reply);
        return tsr_error_set(err, rc, "kv: remote descriptor call failed");
    }
    const unsigned char *p = reply.data;
    if (reply.len <= DESC_HDR) {
        tsr_rpc_msg_release(r->t, &reply);
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: short descriptor reply");
    }
    uint32_t nparts = kv_get32(p);
    if (!r->parts) {
        r->parts = tsr_mem_calloc(NULL, nparts ? nparts : 1, sizeof(*r->parts));
        if (!r->parts) {
            tsr_rpc_msg_release(r->t, &reply);
            return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
        }
        r->nparts = nparts;
        r->max_key = kv_get32(p + 20);
        r->max_val = kv_get32(p + 24);
    }
    rpart_t *rp = &r->parts[part];
    uint64_t nslots = kv_get64(p + 8);
    uint32_t ss = kv_get32(p + 16);
    if (nparts != r->nparts || kv_get32(p + 4) != part || ss < KV_SLOT_HDR + r->max_key ||
        (nslots & (nslots - 1)) != 0 || nslots == 0) {
        tsr_rpc_msg_release(r->t, &reply);
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: inconsistent descriptor reply");
    }
    uint64_t epoch = kv_get64(p + 32);
    uint64_t vmask = kv_get64(p + 40);
    bool rlock = (kv_get32(p + 28) & DESC_F_RLOCK) != 0;
    tsr_rkey_t *k;
    rc = tsr_rkey_unpack(r->t, r->peer, p + DESC_HDR, reply.len - DESC_HDR, &k, err);
    tsr_rpc_msg_release(r->t, &reply); /* p is invalid from here */
    if (rc != TSR_OK)
        return rc;
    if (rp->rkey)
        tsr_rkey_destroy(r->t, rp->rkey);
    rp->rkey = k;
    rp->nslots = nslots;
    rp->slot_size = ss;
    rp->epoch = epoch;
    rp->vmask = vmask;
    rp->rlock_ok = rlock;
    rp->gen++;
    size_t need = (size_t)ss * WINDOW_SLOTS;
    if (need > r->win_cap) {
        unsigned char *w = tsr_mem_alloc_aligned(NULL, need);
        if (!w)
            return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
        tsr_mem_free(NULL, r->win);
        r->win = w;
        r->win_cap = need;
    }
    return TSR_OK;
}

tsr_status_t tsr_kv_remote_open(tsr_transport_t *transport, tsr_peer_t *peer, const char *table,
                                uint16_t rpc_type, int timeout_ms, tsr_kv_remote_t **out,
                                tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!transport || !peer || !table || !out || strlen(table) == 0 ||
        strlen(table) > TSR_KV_NAME_MAX)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    tsr_kv_remote_t *r = tsr_mem_calloc(NULL, 1, sizeof(*r));
    if (!r)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_NOMEM);
    r->t = transport;
    r->peer = peer;
    r->rpc_type = rpc_type ? rpc_type : TSR_KV_RPC_DESC;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    tsr_status_t rc = TSR_OK;
    r->name = tsr_mem_strdup(NULL, table);
    if (!r->name)
        rc = tsr_error_set(&e, TSR_ERR_NOMEM, "kv: out of memory");
    if (rc == TSR_OK)
        rc = tsr_kv_remote_fetch_desc(r, 0, &e);
    if (rc != TSR_OK) {
        tsr_kv_remote_close(r);
        return tsr_kv_err_from(kerr, &e, rc);
    }
    *out = r;
    return TSR_OK;
}

void tsr_kv_remote_close(tsr_kv_remote_t *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; r->parts && i < r->nparts; i++)
        if (r->parts[i].rkey)
            tsr_rkey_destroy(r->t, r->parts[i].rkey);
    tsr_kv_remote_many_free(r);
    tsr_mem_free(NULL, r->parts);
    tsr_mem_free(NULL, r->win);
    tsr_mem_free(NULL, r->name);
    tsr_mem_free(NULL, r);
}

void tsr_kv_remote_get_stats(const tsr_kv_remote_t *r, tsr_kv_remote_stats_t *out)
{
    *out = r->st;
}

/* Is the copied slot whole? (even, not moved, lengths in range, checksum) */
static bool slot_whole(const tsr_kv_remote_t *r, const kv_slot_t *s, uint64_t ver)
{
    if (ver & KV_VER_LOCKED)
        return false;
    if (s->state == KV_EMPTY)
        return true; /* EMPTY only ever becomes FULL: an empty copy is a clean miss */
    if (s->state > KV_TOMB || s->klen > r->max_key || s->vlen > r->max_val)
        return false;
    return tsr_kv_slot_check(ver, s, r->max_key) == s->check;
}

tsr_status_t tsr_kv_remote_get(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                               size_t cap, size_t *vlen, tsr_kv_err_t *kerr)
{
    uint64_t ver;
    return tsr_kv_remote_get_ver(r, key, klen, buf, cap, vlen, &ver, kerr);
}

/* Slots per window read of rp (at most WINDOW_BYTES). */
uint32_t tsr_kv_remote_window_slots(const rpart_t *rp)
{
    uint32_t w = WINDOW_SLOTS;
    while (w > 1 && (size_t)w * rp->slot_size > WINDOW_BYTES)
        w--;
    return w;
}

/* Looks at n slot copies (win) read from the key's probe position: stops
 * at the first slot that decides. *probed counts the slots looked at over
 * the whole probe; *adv is how many of this window were passed (the next
 * read, or the re-read of a torn slot, starts at i + *adv). Shared by the
 * single get and get_many, so both accept exactly the same copies. */
wstep_t tsr_kv_remote_scan_window(const tsr_kv_remote_t *r, const rpart_t *rp,
                                  const unsigned char *win, uint64_t n, uint64_t h, const void *key,
                                  size_t klen, uint64_t *probed, uint64_t *adv,
                                  const kv_slot_t **hit, uint64_t *hit_ver)
{
    wstep_t w = W_NEXT;
    uint64_t j = 0;
    for (; j < n && *probed < rp->nslots; j++, (*probed)++) {
        const kv_slot_t *s = (const kv_slot_t *)(const void *)(win + j * rp->slot_size);
        uint64_t ver = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if (ver & KV_VER_MOVED) {
            w = W_MOVED;
            break;
        }
        if (!slot_whole(r, s, ver)) {
            w = W_TORN;
            break;
        }
        if (s->state == KV_EMPTY) {
            w = W_MISS;
            break;
        }
        if (s->state == KV_FULL && s->hash == h && s->klen == klen &&
            memcmp(s->data, key, klen) == 0) {
            *hit = s;
            *hit_ver = ver;
            w = W_FOUND;
            break;
        }
    }
    *adv = j;
    if (w == W_NEXT && *probed >= rp->nslots)
        w = W_MISS;
    return w;
}

/* The get with the version of the slot copy it returned and the version
 * mask of the descriptor whose region held it (transactions record the
 * version; txn_apply.c): the checksum is seeded with the version, so the
 * version and the value come from one whole copy. */
static tsr_status_t get_slot(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                             size_t cap, size_t *vlen, uint64_t *ver_out, uint64_t *mask_out,
                             bool *miss, kv_slot_loc_t *loc, tsr_kv_err_t *kerr)
{
    *miss = false;
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!r || (!key && klen) || !vlen || (!buf && cap))
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    if (klen > r->max_key)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    r->st.gets++;
    uint64_t h = tsr_hash_bytes(key, klen);
    uint32_t part = kv_part_of(h, r->nparts);
    rpart_t *rp = &r->parts[part];
    tsr_status_t rc;
    unsigned torn = 0, refreshed = 0;
    bool swept = false;
restart:
    if (!rp->rkey && (rc = tsr_kv_remote_fetch_desc(r, part, &e)) != TSR_OK)
        return tsr_kv_err_from(kerr, &e, rc);
    uint64_t mask = rp->nslots - 1, i = h & mask, probed = 0;
    uint32_t wslots = tsr_kv_remote_window_slots(rp);
    for (;;) {
        uint64_t n = rp->nslots - i < wslots ? rp->nslots - i : wslots, adv = 0, ver = 0;
        rc = tsr_rma_get(r->t, rp->rkey, KV_HDR_SIZE + i * rp->slot_size, r->win,
                         (size_t)n * rp->slot_size, r->timeout_ms, &e);
        r->st.rma_reads++;
        if (rc != TSR_OK)
            return tsr_kv_err_from(kerr, &e, rc);
        const kv_slot_t *s = NULL;
        switch (
            tsr_kv_remote_scan_window(r, rp, r->win, n, h, key, klen, &probed, &adv, &s, &ver)) {
        case W_FOUND: {
            size_t c = s->vlen < cap ? s->vlen : cap;
            if (c)
                memcpy(buf, s->data + r->max_key, c);
            *vlen = s->vlen;
            *ver_out = ver;
            *mask_out = rp->vmask;
            if (loc)
                *loc = (kv_slot_loc_t){
                    r, part, rp->gen,
                    i + (uint64_t)((const unsigned char *)s - r->win) / rp->slot_size};
            return TSR_OK;
        }
        case W_MISS:
            *miss = true;
            return tsr_kv_err_from(kerr, NULL, TSR_ERR_NOT_FOUND);
        case W_MOVED:
            r->st.refreshes++;
            if (++refreshed > MAX_REFRESH) /* a table being dropped (MOVED, not yet gone) */
                return tsr_kv_err_from(
                    kerr, NULL, tsr_error_set(&e, TSR_ERR_UNAVAILABLE, "kv: table keeps moving"));
            if ((rc = tsr_kv_remote_fetch_desc(r, part, &e)) != TSR_OK)
                return tsr_kv_err_from(kerr, &e, rc);
            goto restart;
        case W_TORN:
            r->st.torn_retries++;
            if (++torn > MAX_TORN)
                return tsr_kv_err_from(kerr, NULL,
                                       tsr_error_set(&e, TSR_ERR_TIMEOUT, "kv: slot stays torn"));
            /* a remote client's lock past its lease (the client died):
             * the owner breaks it when asked, once per get */
            if (!swept && tsr_kv_remote_torn_by_stale_lock(r->win + adv * rp->slot_size)) {
                swept = true;
                if ((rc = tsr_kv_remote_fetch_desc_ex(r, part, true, &e)) != TSR_OK)
                    return tsr_kv_err_from(kerr, &e, rc);
                goto restart;
            }
            if (torn > 64)
                usleep(10);
            break; /* re-read from the torn slot */
        case W_NEXT:
            break;
        }
        i = (i + adv) & mask;
    }
}

tsr_status_t tsr_kv_remote_get_ver(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                                   size_t cap, size_t *vlen, uint64_t *ver, tsr_kv_err_t *kerr)
{
    uint64_t mask;
    bool miss;
    return get_slot(r, key, klen, buf, cap, vlen, ver, &mask, &miss, NULL, kerr);
}

tsr_status_t tsr_kv_remote_get_loc(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                                   size_t cap, size_t *vlen, uint64_t *ver, kv_slot_loc_t *loc,
                                   tsr_kv_err_t *kerr)
{
    uint64_t mask;
    bool miss;
    loc->r = NULL;
    return get_slot(r, key, klen, buf, cap, vlen, ver, &mask, &miss, loc, kerr);
}

bool tsr_kv_remote_loc_word(const kv_slot_loc_t *loc, tsr_rkey_t **k, uint64_t *off)
{
    if (!loc->r || !loc->r->parts || loc->part >= loc->r->nparts)
        return false;
    const rpart_t *rp = &loc->r->parts[loc->part];
    if (!rp->rkey || rp->gen != loc->gen || !rp->rlock_ok || loc->slot >= rp->nslots)
        return false;
    *k = rp->rkey;
    *off = KV_HDR_SIZE + loc->slot * rp->slot_size;
    return true;
}

tsr_status_t tsr_kv_remote_get_versioned(tsr_kv_remote_t *r, const void *key, size_t klen,
                                         void *buf, size_t cap, size_t *vlen, uint64_t *ver,
                                         bool *present, tsr_kv_err_t *kerr)
{
    if (!ver || !present)
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    uint64_t raw = 0, mask = 0;
    bool miss = false;
    tsr_kv_err_t ke = {0};
    tsr_status_t rc = get_slot(r, key, klen, buf, cap, vlen, &raw, &mask, &miss, NULL, &ke);
    if (rc == TSR_ERR_NOT_FOUND && miss) { /* a clean miss: absent */
        *present = false;
        *ver = TSR_KV_VERSION_ABSENT;
        *vlen = 0;
        return TSR_OK;
    }
    if (rc != TSR_OK) { /* the descriptor call's NOT_FOUND (no such table) included */
        if (kerr && kerr->status == TSR_OK)
            *kerr = ke;
        return rc;
    }
    *present = true;
    *ver = raw ^ mask; /* both even: never TSR_KV_VERSION_ABSENT */
    return TSR_OK;
}
