/*
 * remote_many.c - tsr_kv_remote_get_many: several one-sided gets in flight
 * from one thread (an MGET), the reader of remote.c run for up to
 * MANY_ACTIVE keys at once; and tsr_kv_remote_read_many, the same rounds
 * over keys of several readers (tables, owners) that share one transport
 * (a transaction's first reads: engine/txn/remote.c). get_many is the
 * one-reader case of read_many: the rounds are written once.
 *
 * Rounds: free places take the next keys; each active key gets one window
 * read (its partition's descriptor fetched first where missing), all posted
 * together and reaped by one wait (tsr_rma_get_many). Then every window is judged by
 * tsr_kv_remote_scan_window, exactly as the single get judges it: found,
 * miss, next window, torn (re-read from that slot), MOVED (re-fetch the
 * descriptor - the first key of the round to see it; the others of that
 * partition start over on the new one).
 *
 * Invariant: a key's probe runs on one descriptor. mkey_t.gen is the
 * partition's descriptor generation (rpart_t.gen) the probe started on; a
 * probe whose partition was re-fetched meanwhile starts over at its home
 * slot, so it never continues an old geometry's probe in a new region.
 * Windows of a round live in one arena (MANY_BYTES at most), reallocated
 * between rounds only (a descriptor fetch may grow the slot size).
 */
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "remote_int.h"
#include "transport.h"

#define MANY_ACTIVE 256u      /* keys probed at once */
#define MANY_BYTES (1u << 20) /* their windows together */
#define MANY_NONE SIZE_MAX

/* One key being probed. */
typedef struct mkey {
    size_t key;         /* index into keys[]; MANY_NONE: a free place */
    tsr_kv_remote_t *r; /* its reader */
    uint64_t h, i, probed, n;
    uint32_t part, gen; /* gen: the descriptor its probe runs on */
    unsigned torn, refreshed;
    bool fresh; /* start (over) at the key's home slot */
    bool swept; /* asked the owner to break stale remote locks */
} mkey_t;

typedef struct many {
    mkey_t *m;
    tsr_rma_getv_t *ops;
    uint32_t *of; /* op -> place in m */
    unsigned char *buf;
    size_t places, wcap; /* places this call; window bytes per place */
    size_t cap, bufsz;   /* places the arrays hold; bytes of buf */
} many_t;

/* Kept between calls (in the reader, r->many, for get_many; the caller's
 * for read_many), so a call of a few keys allocates nothing. */
void tsr_kv_remote_scratch_free(void **scratch)
{
    many_t *a = *scratch;
    if (!a)
        return;
    tsr_mem_free(NULL, a->m);
    tsr_mem_free(NULL, a->ops);
    tsr_mem_free(NULL, a->of);
    tsr_mem_free(NULL, a->buf);
    tsr_mem_free(NULL, a);
    *scratch = NULL;
}

void tsr_kv_remote_many_free(tsr_kv_remote_t *r)
{
    tsr_kv_remote_scratch_free(&r->many);
}

/* The arrays for a->places places (grown, never shrunk). */
static tsr_status_t many_places(many_t *a, tsr_error_t *e)
{
    if (a->m && a->cap >= a->places)
        return TSR_OK;
    tsr_mem_free(NULL, a->m);
    tsr_mem_free(NULL, a->ops);
    tsr_mem_free(NULL, a->of);
    a->m = tsr_mem_calloc(NULL, a->places, sizeof(*a->m));
    a->ops = tsr_mem_calloc(NULL, a->places, sizeof(*a->ops));
    a->of = tsr_mem_calloc(NULL, a->places, sizeof(*a->of));
    a->cap = a->m && a->ops && a->of ? a->places : 0;
    return a->cap ? TSR_OK : tsr_error_set(e, TSR_ERR_NOMEM, "kv: out of memory");
}

/* The largest window of the readers (grows when a descriptor fetch finds
 * larger slots). */
static size_t many_wincap(const kv_many_req_t *q)
{
    size_t w = 0;
    for (size_t i = 0; i < q->nreaders; i++)
        if (q->readers[i]->win_cap > w)
            w = q->readers[i]->win_cap;
    return w;
}

/* The windows for the current largest slot size: set between rounds only
 * (no read in flight, every window of the last round judged). */
static tsr_status_t many_windows(const kv_many_req_t *q, many_t *a, tsr_error_t *e)
{
    a->wcap = many_wincap(q);
    if (a->buf && a->bufsz >= a->places * a->wcap)
        return TSR_OK;
    tsr_mem_free(NULL, a->buf);
    a->bufsz = a->places * a->wcap;
    a->buf = tsr_mem_alloc_aligned(NULL, a->bufsz);
    if (!a->buf)
        a->bufsz = 0;
    return a->buf ? TSR_OK : tsr_error_set(e, TSR_ERR_NOMEM, "kv: out of memory");
}

tsr_status_t tsr_kv_remote_read_many(void **scratch, const kv_many_req_t *q, size_t *nok,
                                     tsr_error_t *err)
{
    if (nok)
        *nok = 0;
    if (!scratch || !q || !q->done || !q->readers || q->nreaders == 0 || (q->n > 0 && !q->keys))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "kv: read_many: missing argument");
    for (size_t i = 0; i < q->nreaders; i++)
        if (!q->readers[i] || q->readers[i]->t != q->readers[0]->t)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "kv: read_many: the readers must share one transport");
    for (size_t k = 0; k < q->n; k++) {
        uint32_t w = q->which ? q->which[k] : 0;
        if (w >= q->nreaders || (!q->keys[k].key && q->keys[k].klen) ||
            q->keys[k].klen > q->readers[w]->max_key)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "kv: read_many: bad key %zu", k);
    }
    if (q->n == 0)
        return TSR_OK;
    tsr_transport_t *t = q->readers[0]->t;
    int tmo = q->readers[0]->timeout_ms;
    if (!*scratch && !(*scratch = tsr_mem_calloc(NULL, 1, sizeof(many_t))))
        return tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory");
    many_t a = *(many_t *)*scratch; /* stored back below, on every path */
    a.places = q->n < MANY_ACTIVE ? q->n : MANY_ACTIVE;
    size_t wc = many_wincap(q);
    while (a.places > 1 && a.places * wc > MANY_BYTES)
        a.places /= 2;
    tsr_status_t rc = many_places(&a, err);
    for (size_t g = 0; rc == TSR_OK && g < a.places; g++)
        a.m[g].key = MANY_NONE;
    size_t next = 0, found = 0;
    while (rc == TSR_OK) {
        /* fill free places with the next keys */
        size_t active = 0;
        for (size_t g = 0; g < a.places; g++) {
            mkey_t *m = &a.m[g];
            if (m->key == MANY_NONE && next < q->n) {
                memset(m, 0, sizeof(*m));
                m->key = next++;
                m->r = q->readers[q->which ? q->which[m->key] : 0];
                m->r->st.gets++;
                m->h = tsr_hash_bytes(q->keys[m->key].key, q->keys[m->key].klen);
                m->part = kv_part_of(m->h, m->r->nparts);
                m->fresh = true;
            }
            active += m->key != MANY_NONE;
        }
        if (active == 0)
            break;
        /* descriptors first (a fetch may grow the windows), then one
         * window read per active key, all posted together */
        for (size_t g = 0; g < a.places && rc == TSR_OK; g++)
            if (a.m[g].key != MANY_NONE && !a.m[g].r->parts[a.m[g].part].rkey)
                rc = tsr_kv_remote_fetch_desc(a.m[g].r, a.m[g].part, err);
        if (rc == TSR_OK)
            rc = many_windows(q, &a, err);
        if (rc != TSR_OK)
            break;
        size_t nops = 0;
        for (size_t g = 0; g < a.places; g++) {
            mkey_t *m = &a.m[g];
            if (m->key == MANY_NONE)
                continue;
            rpart_t *rp = &m->r->parts[m->part];
            /* a probe runs on one descriptor: one re-fetched meanwhile
             * (by another key's MOVED) has another geometry, start over */
            if (m->fresh || m->gen != rp->gen) {
                m->i = m->h & (rp->nslots - 1);
                m->probed = 0;
                m->fresh = false;
                m->gen = rp->gen;
            }
            uint64_t w = tsr_kv_remote_window_slots(rp);
            m->n = rp->nslots - m->i < w ? rp->nslots - m->i : w;
            a.ops[nops] = (tsr_rma_getv_t){.k = rp->rkey,
                                           .offset = KV_HDR_SIZE + m->i * rp->slot_size,
                                           .dst = a.buf + g * a.wcap,
                                           .len = (size_t)m->n * rp->slot_size};
            a.of[nops++] = (uint32_t)g;
            m->r->st.rma_reads++;
        }
        rc = tsr_rma_get_many(t, a.ops, nops, tmo, err);
        if (rc != TSR_OK)
            break;
        /* what each window says */
        bool slow = false;
        for (size_t o = 0; o < nops && rc == TSR_OK; o++) {
            mkey_t *m = &a.m[a.of[o]];
            tsr_kv_remote_t *r = m->r;
            rpart_t *rp = &r->parts[m->part];
            const tsr_kv_pair_t *kp = &q->keys[m->key];
            const kv_slot_t *s = NULL;
            uint64_t adv = 0, ver = 0;
            switch (tsr_kv_remote_scan_window(r, rp, a.buf + a.of[o] * a.wcap, m->n, m->h, kp->key,
                                              kp->klen, &m->probed, &adv, &s, &ver)) {
            case W_FOUND:
                if (q->locs)
                    q->locs[m->key] = (kv_slot_loc_t){
                        r, m->part, rp->gen,
                        m->i + (uint64_t)((const unsigned char *)s - (a.buf + a.of[o] * a.wcap)) /
                                   rp->slot_size};
                rc = q->done(q->arg, m->key, s->data + r->max_key, s->vlen, ver, rp->vmask, err);
                if (rc != TSR_OK)
                    break;
                if (q->results)
                    q->results[m->key] = TSR_OK;
                found++;
                m->key = MANY_NONE;
                break;
            case W_MISS:
                rc = q->done(q->arg, m->key, NULL, 0, KV_TXN_ABSENT, rp->vmask, err);
                if (rc != TSR_OK)
                    break;
                if (q->results)
                    q->results[m->key] = TSR_ERR_NOT_FOUND;
                m->key = MANY_NONE;
                break;
            case W_MOVED:
                r->st.refreshes++;
                if (++m->refreshed > MAX_REFRESH) {
                    rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE, "kv: table keeps moving");
                    break;
                }
                /* the first key of this round to see it re-fetches; the
                 * others of that partition start over on the new one */
                if (rp->gen == m->gen)
                    rc = tsr_kv_remote_fetch_desc(r, m->part, err);
                m->fresh = true;
                break;
            case W_TORN:
                r->st.torn_retries++;
                if (++m->torn > MAX_TORN) {
                    rc = tsr_error_set(err, TSR_ERR_TIMEOUT, "kv: slot stays torn");
                    break;
                }
                slow |= m->torn > 64;
                /* a remote lock past its lease: the owner breaks it when
                 * asked (once per key), and the probe starts over */
                if (!m->swept && tsr_kv_remote_torn_by_stale_lock(a.buf + a.of[o] * a.wcap +
                                                                  adv * rp->slot_size)) {
                    m->swept = true;
                    m->fresh = true;
                    rc = tsr_kv_remote_fetch_desc_ex(r, m->part, true, err);
                    break;
                }
                m->i = (m->i + adv) & (rp->nslots - 1); /* re-read from the torn slot */
                break;
            case W_NEXT:
                m->i = (m->i + adv) & (rp->nslots - 1);
                break;
            }
        }
        if (slow)
            usleep(10);
    }
    if (rc != TSR_OK && q->results) { /* every key not decided gets the call's failure */
        for (size_t g = 0; a.cap && g < a.places; g++)
            if (a.m[g].key != MANY_NONE)
                q->results[a.m[g].key] = rc;
        for (size_t k = next; k < q->n; k++)
            q->results[k] = rc;
    }
    *(many_t *)*scratch = a;
    if (nok)
        *nok = found;
    return rc;
}

/* get_many's sink: value k into its stride, its length to vlens[k]. */
typedef struct copy_sink {
    void *vals;
    size_t stride;
    size_t *vlens;
} copy_sink_t;

static tsr_status_t copy_value(void *arg, size_t k, const unsigned char *val, uint32_t vlen,
                               uint64_t ver, uint64_t vmask, tsr_error_t *err)
{
    (void)ver;
    (void)vmask;
    (void)err;
    copy_sink_t *cs = arg;
    size_t c = vlen < cs->stride ? vlen : cs->stride;
    if (c)
        memcpy((unsigned char *)cs->vals + k * cs->stride, val, c);
    cs->vlens[k] = vlen;
    return TSR_OK;
}

tsr_status_t tsr_kv_remote_get_many(tsr_kv_remote_t *r, const tsr_kv_pair_t *keys, size_t n,
                                    void *vals, size_t stride, size_t *vlens, tsr_status_t *results,
                                    size_t *nok, tsr_kv_err_t *kerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (nok)
        *nok = 0;
    if (!r || (n > 0 && (!keys || !vlens || (!vals && stride))))
        return tsr_kv_err_from(kerr, NULL, TSR_ERR_INVALID_ARG);
    copy_sink_t cs = {vals, stride, vlens};
    kv_many_req_t q = {.readers = &r,
                       .nreaders = 1,
                       .keys = keys,
                       .n = n,
                       .done = copy_value,
                       .arg = &cs,
                       .results = results};
    tsr_status_t rc = tsr_kv_remote_read_many(&r->many, &q, nok, &e);
    return rc == TSR_OK ? TSR_OK : tsr_kv_err_from(kerr, &e, rc);
}
