/*
 * part.c - one kv partition: an open-addressing hash table in one contiguous
 * region, read without locks (the slot layout is in kv_internal.h).
 *
 * Writers hold the partition's mutex and change a slot like a seqlock: make
 * the version odd, write the body and its checksum, make it even again
 * (+2 per write). Local readers load the version (acquire), copy what they
 * need, fence, re-load it: equal and even means the copy is whole. Remote
 * readers cannot order the bytes of one RMA get, so they check the checksum
 * instead (remote.c).
 *
 * Growth. When FULL + TOMBSTONE slots would pass 70% the writer builds a new
 * region sized for the live keys at <= 40% (tombstones dropped), copies each
 * live slot whole with its version and checksum (versions only grow, across
 * rehashes too),
 * publishes it, then sets MOVED on every slot of the old region. A reader
 * that meets MOVED starts over on the new table; one that never met it read
 * the old table before the first write to the new one (the writer writes the
 * new table only after marking), so its answer is linearizable. The old
 * region is freed once no local reader is inside a table (reader counters,
 * striped over 16 cache lines by thread so that readers on different cores
 * do not bounce one line: the writer sums them only when it has a retired
 * table to free, i.e. after a rehash);
 * a partition exposed to remote readers keeps old regions until it is
 * destroyed (their registrations must stay valid; docs/kv.md).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/hash.h"
#include "kv_internal.h"

#define KV_MIN_SLOTS 16u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* One XXH3 pass over the contiguous bytes from hash to the value's end: hash,
 * state, klen, vlen, pad, the whole key area (bytes past klen are stable
 * while the version is) and vlen bytes of value. One call over <= a few
 * hundred bytes costs less than hashing the three pieces apart. The caller
 * has checked vlen <= max_val (remote readers do so before calling). */
uint64_t tsr_kv_slot_check(uint64_t ver, const kv_slot_t *s, uint32_t max_key)
{
    return XXH3_64bits_withSeed(&s->hash, 24 + (size_t)max_key + s->vlen, ver);
}

/* A slot of up to 64 bytes is padded to exactly 64: with the 64-byte
 * header and a 64-byte aligned base each slot is then one cache line, and a
 * probe costs one miss instead of two for the slots that would straddle a
 * line (56-byte slots: every other one). Larger slots stay round8. */
static uint32_t slot_size_for(uint32_t max_key, uint32_t max_val)
{
    uint64_t ss = (KV_SLOT_HDR + (uint64_t)max_key + max_val + 7u) & ~7ULL;
    return (uint32_t)(ss <= 64 ? 64 : ss);
}

/* Asks for transparent huge pages on a heap table before it is touched: a
 * random probe of a table larger than the TLB's reach costs a page walk (a
 * second miss) per get with 4 KiB pages. Advisory: failure is harmless. */
static void advise_huge(void *base, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    uintptr_t pg = 4096, b = ((uintptr_t)base + pg - 1) & ~(pg - 1);
    uintptr_t e = ((uintptr_t)base + bytes) & ~(pg - 1);
    if (bytes >= (2u << 20) && e > b)
        (void)madvise((void *)b, e - b, MADV_HUGEPAGE);
#else
    (void)base;
    (void)bytes;
#endif
}

static kv_tab_t *tab_new(kv_part_t *p, uint64_t nslots, uint64_t epoch, tsr_error_t *err)
{
    uint32_t ss = slot_size_for(p->max_key, p->max_val);
    if (nslots > (SIZE_MAX - KV_HDR_SIZE) / ss / 2) {
        tsr_error_set(err, TSR_ERR_NOMEM, "kv: table of %llu slots of %u bytes is too large",
                      (unsigned long long)nslots, ss);
        return NULL;
    }
    kv_tab_t *t = tsr_mem_calloc(p->mem, 1, sizeof(*t));
    if (!t)
        goto err_nomem;
    t->bytes = KV_HDR_SIZE + (size_t)nslots * ss;
    if (p->transport) {
        /* UCX memory (zeroed by tsr_region_register); the heap when UCX cannot */
        if (tsr_region_register(p->transport, NULL, t->bytes, &t->region, NULL) == TSR_OK)
            t->base = tsr_region_addr(t->region);
        else
            t->region = NULL;
    }
    if (!t->base) {
        t->base = tsr_mem_alloc_aligned(p->mem, t->bytes);
        if (!t->base)
            goto err_free_tab;
        advise_huge(t->base, t->bytes);
        memset(t->base, 0, t->bytes);
    }
    t->nslots = nslots;
    t->mask = nslots - 1;
    t->slot_size = ss;
    t->epoch = epoch;
    kv_hdr_t *h = (kv_hdr_t *)(void *)t->base;
    h->magic = KV_MAGIC;
    h->nslots = nslots;
    h->slot_size = ss;
    h->max_key = p->max_key;
    h->max_val = p->max_val;
    h->epoch = epoch;
    return t;

err_free_tab:
    tsr_mem_free(p->mem, t);
err_nomem:
    tsr_error_set(err, TSR_ERR_NOMEM, "kv: out of memory for a table of %llu slots",
                  (unsigned long long)nslots);
    return NULL;
}

static void tab_free(const kv_part_t *p, kv_tab_t *t)
{
    if (!t)
        return;
    if (t->region)
        tsr_region_unregister(p->transport, t->region);
    else
        tsr_mem_free(p->mem, t->base);
    tsr_mem_free(p->mem, t);
}

static uint64_t slots_for(uint64_t keys)
{
    uint64_t n = KV_MIN_SLOTS;
    while (keys * 10 > n * 4 && n < (1ULL << 62))
        n <<= 1;
    return n;
}

tsr_status_t tsr_kv_part_init(kv_part_t *p, tsr_mem_t *mem, tsr_transport_t *transport,
                              uint32_t max_key, uint32_t max_val, uint64_t capacity,
                              tsr_error_t *err)
{
    memset(p, 0, sizeof(*p));
    p->mem = mem;
    p->transport = transport;
    p->max_key = max_key;
    p->max_val = max_val;
    kv_tab_t *t = tab_new(p, slots_for(capacity), 0, err);
    if (!t)
        return err ? err->status : TSR_ERR_NOMEM;
    if (pthread_mutex_init(&p->wlock, NULL) != 0) {
        tab_free(p, t);
        return tsr_error_set(err, TSR_ERR_INTERNAL, "kv: pthread_mutex_init failed");
    }
    atomic_init(&p->tab, t);
    for (int i = 0; i < KV_RSTRIPES; i++)
        atomic_init(&p->readers[i].n, 0);
    return TSR_OK;
}

void tsr_kv_part_fini(kv_part_t *p)
{
    if (!p)
        return;
    tab_free(p, atomic_load(&p->tab));
    while (p->retired) {
        kv_tab_t *n = p->retired->next_retired;
        tab_free(p, p->retired);
        p->retired = n;
    }
    pthread_mutex_destroy(&p->wlock);
}

/* Frees replaced tables when no local reader can be inside one: a reader
 * that registers after this load sees the new table pointer (seq_cst). */
static void reclaim(kv_part_t *p)
{
    if (!p->retired || p->keep_retired)
        return;
    for (int i = 0; i < KV_RSTRIPES; i++)
        if (atomic_load(&p->readers[i].n) != 0)
            return;
    while (p->retired) {
        kv_tab_t *n = p->retired->next_retired;
        tab_free(p, p->retired);
        p->retired = n;
    }
}

/* Claims slot s for a plain write (the caller holds the mutex and has
 * broken an expired tag on the key's own slot): its word from unlocked to
 * LOCKED by compare-and-swap, not a store, since a remote client may lock a
 * slot it read at any moment (kv_internal.h, remote locks). False: locked
 * (by a committing transaction, here or remote); *ver is the word claimed. */
static bool slot_claim(kv_slot_t *s, uint64_t *ver)
{
    uint64_t v = atomic_load_explicit(&s->ver, memory_order_relaxed);
    if (v & KV_VER_LOCKED)
        return false;
    if (!atomic_compare_exchange_strong(&s->ver, &v, v | KV_VER_LOCKED))
        return false; /* a remote lock won the race */
    *ver = v;
    return true;
}

/* The rest of a seqlock write of a claimed slot: body, checksum, then the
 * version ver_base + 2 (even), published last. */
static void slot_fill(const kv_part_t *p, kv_slot_t *s, uint64_t ver_base, uint32_t state,
                      uint64_t h, const void *key, uint32_t klen, const void *val, uint32_t vlen)
{
    uint64_t v = ver_base & ~(KV_VER_LOCKED | KV_VER_MOVED);
    atomic_thread_fence(memory_order_release);
    s->hash = h;
    s->state = state;
    s->klen = klen;
    s->vlen = vlen;
    s->pad = 0;
    if (klen)
        memcpy(s->data, key, klen);
    if (vlen)
        memcpy(s->data + p->max_key, val, vlen);
    uint64_t nv = v + 2;
    s->check = tsr_kv_slot_check(nv, s, p->max_key);
    atomic_store_explicit(&s->ver, nv, memory_order_release);
}

/* Writer-side lookup (no concurrent writer): the key's slot, or where it
 * would be inserted (the first tombstone on the way, else the empty slot). */
static kv_slot_t *find_w(const kv_part_t *p, const kv_tab_t *t, uint64_t h, const void *key,
                         uint32_t klen, bool *found)
{
    kv_slot_t *tomb = NULL;
    uint64_t i = h & t->mask;
    for (uint64_t n = 0; n < t->nslots; n++, i = (i + 1) & t->mask) {
        kv_slot_t *s = kv_slot_at(t, i);
        if (s->state == KV_EMPTY) {
            *found = false;
            return tomb ? tomb : s;
        }
        if (s->state == KV_FULL) {
            if (s->hash == h && s->klen == klen && memcmp(s->data, key, klen) == 0) {
                *found = true;
                return s;
            }
        } else if (!tomb) {
            tomb = s;
        }
    }
    (void)p;
    *found = false;
    return tomb; /* never reached while load <= 70% */
}

static tsr_status_t rehash(kv_part_t *p, uint64_t extra, tsr_error_t *err)
{
    kv_tab_t *old = atomic_load(&p->tab);
    kv_tab_t *nt = tab_new(p, slots_for(old->used + extra), old->epoch + 1, err);
    if (!nt)
        return err ? err->status : TSR_ERR_NOMEM;
    for (uint64_t i = 0; i < old->nslots; i++) {
        kv_slot_t *s = kv_slot_at(old, i);
        if (s->state != KV_FULL)
            continue;
        uint64_t j = s->hash & nt->mask;
        while (kv_slot_at(nt, j)->state != KV_EMPTY)
            j = (j + 1) & nt->mask;
        /* The slot moves whole, version and checksum included: the bytes
         * the checksum covers are the same, and no reader can see the new
         * table before it is published below (so no seqlock is needed,
         * and no checksum is recomputed). The word is loaded once,
         * atomically: a remote client may swap it for its lock tag at any
         * moment (it then moves with the slot; a tag swapped in after this
         * load stays behind on the old copy, and the client's commit fails
         * to adopt it - txn_apply.c). MOVED is set only after. */
        uint64_t w = atomic_load_explicit(&s->ver, memory_order_acquire);
        kv_slot_t *d = kv_slot_at(nt, j);
        memcpy(d, s, nt->slot_size);
        atomic_store_explicit(&d->ver, w, memory_order_relaxed);
        nt->used++;
    }
    atomic_store(&p->tab, nt);
    for (uint64_t i = 0; i < old->nslots; i++)
        atomic_fetch_or(&kv_slot_at(old, i)->ver, KV_VER_MOVED);
    if (p->on_grow)
        p->on_grow(p->grow_arg, old, nt);
    old->next_retired = p->retired;
    p->retired = old;
    reclaim(p);
    return TSR_OK;
}

static bool needs_room(const kv_tab_t *t, uint64_t extra)
{
    return (t->used + t->tombs + extra) * 10 > t->nslots * 7;
}

tsr_status_t tsr_kv_part_reserve(kv_part_t *p, uint64_t n, tsr_error_t *err)
{
    pthread_mutex_lock(&p->wlock);
    tsr_status_t rc = TSR_OK;
    if (needs_room(atomic_load(&p->tab), n))
        rc = rehash(p, n, err);
    pthread_mutex_unlock(&p->wlock);
    return rc;
}

/* One write with the mutex held. A log failure is returned with *fatal. */
static tsr_status_t write_locked(kv_part_t *p, kv_op_t op, uint64_t h, const void *key,
                                 uint32_t klen, const void *val, uint32_t vlen, kv_log_fn log,
                                 void *log_arg, bool *fatal, tsr_error_t *err)
{
    kv_tab_t *t = atomic_load(&p->tab);
    bool found;
    kv_slot_t *s = find_w(p, t, h, key, klen, &found);
    /* locked by a committing transaction (txn_apply.c): it owns the key
     * (a rehash below keeps the lock with the slot); a remote client's
     * lock past its lease is broken */
    if (found) {
        uint64_t w = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if (kv_is_rlock(w) && tsr_kv_rlock_break_locked(p, s))
            w = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if (w & KV_VER_LOCKED)
            return TSR_ERR_CONFLICT;
    }
    if (found && op == KV_OP_INSERT)
        return TSR_ERR_EXISTS;
    if (!found && (op == KV_OP_UPDATE || op == KV_OP_DELETE))
        return TSR_ERR_NOT_FOUND;
    if (!found && op != KV_OP_DELETE && s->state == KV_EMPTY && needs_room(t, 1)) {
        tsr_status_t rc = rehash(p, 1, err);
        if (rc != TSR_OK) {
            *fatal = true;
            return rc;
        }
        t = atomic_load(&p->tab);
        s = find_w(p, t, h, key, klen, &found);
    }
    /* claimed before the log record: once logged, the write must happen */
    uint64_t ver;
    if (!slot_claim(s, &ver))
        return TSR_ERR_CONFLICT;
    if (log) {
        tsr_status_t rc = log(log_arg, op == KV_OP_DELETE, key, klen, val, vlen, err);
        if (rc != TSR_OK) {
            atomic_store_explicit(&s->ver, ver, memory_order_release);
            *fatal = true;
            return rc;
        }
    }
    if (!found && op != KV_OP_DELETE && p->store) {
        /* a new slot for the key: start past every version the store gave */
        uint64_t floor = tsr_kv_txn_next_version(p->store);
        if (floor > (ver & ~(KV_VER_LOCKED | KV_VER_MOVED)))
            ver = floor | (ver & KV_VER_MOVED);
    }
    if (op == KV_OP_DELETE) {
        slot_fill(p, s, ver, KV_TOMB, 0, NULL, 0, NULL, 0);
        t->used--;
        t->tombs++;
    } else {
        if (!found) {
            if (s->state == KV_TOMB)
                t->tombs--;
            t->used++;
        }
        slot_fill(p, s, ver, KV_FULL, h, key, klen, val, vlen);
    }
    return TSR_OK;
}

tsr_status_t tsr_kv_part_write(kv_part_t *p, kv_op_t op, uint64_t h, const void *key, uint32_t klen,
                               const void *val, uint32_t vlen, kv_log_fn log, void *log_arg,
                               tsr_error_t *err)
{
    bool fatal = false;
    pthread_mutex_lock(&p->wlock);
    tsr_status_t rc = write_locked(p, op, h, key, klen, val, vlen, log, log_arg, &fatal, err);
    if (p->retired)
        reclaim(p);
    pthread_mutex_unlock(&p->wlock);
    return rc;
}

void tsr_kv_part_prefetch(kv_part_t *p, uint64_t h)
{
    kv_tab_t *t = atomic_load_explicit(&p->tab, memory_order_relaxed);
    __builtin_prefetch(kv_slot_at(t, h & t->mask));
}

tsr_status_t tsr_kv_part_make_room_locked(kv_part_t *p, uint64_t n, tsr_error_t *err)
{
    return needs_room(atomic_load(&p->tab), n) ? rehash(p, n, err) : TSR_OK;
}

void tsr_kv_part_reclaim_locked(kv_part_t *p)
{
    if (p->retired)
        reclaim(p);
}

tsr_status_t tsr_kv_part_write_batch(kv_part_t *p, kv_op_t op, size_t n, const uint64_t *h,
                                     const tsr_kv_pair_t *pairs, tsr_status_t *results,
                                     kv_log_fn log, void *log_arg, tsr_error_t *err)
{
    pthread_mutex_lock(&p->wlock);
    tsr_status_t rc =
        tsr_kv_part_write_batch_locked(p, op, n, h, pairs, results, log, log_arg, err);
    if (p->retired)
        reclaim(p);
    pthread_mutex_unlock(&p->wlock);
    return rc;
}

tsr_status_t tsr_kv_part_write_batch_locked(kv_part_t *p, kv_op_t op, size_t n, const uint64_t *h,
                                            const tsr_kv_pair_t *pairs, tsr_status_t *results,
                                            kv_log_fn log, void *log_arg, tsr_error_t *err)
{
    enum { AHEAD = 8 };
    tsr_status_t rc = TSR_OK;
    if (op != KV_OP_DELETE && op != KV_OP_UPDATE && needs_room(atomic_load(&p->tab), n)) {
        rc = rehash(p, n, err);
        if (rc != TSR_OK) {
            for (size_t j = 0; results && j < n; j++)
                results[j] = rc;
            return rc;
        }
    }
    for (size_t i = 0; i < n && i < AHEAD; i++)
        tsr_kv_part_prefetch(p, h[i]);
    for (size_t i = 0; i < n; i++) {
        if (i + AHEAD < n)
            tsr_kv_part_prefetch(p, h[i + AHEAD]);
        bool fatal = false;
        tsr_status_t r =
            write_locked(p, op, h[i], pairs[i].key, (uint32_t)pairs[i].klen, pairs[i].val,
                         (uint32_t)pairs[i].vlen, log, log_arg, &fatal, err);
        if (results)
            results[i] = r;
        if (fatal) {
            rc = r;
            for (size_t j = i + 1; results && j < n; j++)
                results[j] = r;
            break;
        }
    }
    return rc;
}

atomic_ulong *tsr_kv_part_enter(kv_part_t *p)
{
    /* The stripe: a hash of where this thread's stack is (threads' stacks
     * are megabytes apart), so concurrent readers mostly count on lines of
     * their own instead of bouncing one shared line. */
    int here;
    uintptr_t sp = (uintptr_t)&here;
    atomic_ulong *cnt = &p->readers[((sp >> 16) * 0x9E3779B97F4A7C15ULL) >> 60 & (KV_RSTRIPES - 1)].n;
    atomic_fetch_add(cnt, 1);
    return cnt;
}

void tsr_kv_part_leave(atomic_ulong *cnt)
{
    atomic_fetch_sub(cnt, 1);
}

tsr_status_t tsr_kv_part_get(kv_part_t *p, uint64_t h, const void *key, uint32_t klen, void *buf,
                             size_t cap, size_t *vlen)
{
    atomic_ulong *cnt = tsr_kv_part_enter(p);
    tsr_status_t rc = tsr_kv_part_get_in(p, h, key, klen, buf, cap, vlen);
    tsr_kv_part_leave(cnt);
    return rc;
}

tsr_status_t tsr_kv_part_get_in(kv_part_t *p, uint64_t h, const void *key, uint32_t klen,
                                void *buf, size_t cap, size_t *vlen)
{
    tsr_status_t rc = TSR_ERR_NOT_FOUND;
restart:;
    kv_tab_t *t = atomic_load(&p->tab);
    uint64_t i = h & t->mask;
    for (uint64_t n = 0; n < t->nslots; n++, i = (i + 1) & t->mask) {
        kv_slot_t *s = kv_slot_at(t, i);
        for (;;) {
            uint64_t v1 = atomic_load_explicit(&s->ver, memory_order_acquire);
            if (v1 & KV_VER_MOVED)
                goto restart;
            /* a remote client's lock tag leaves the body alone (the
             * committed value): read through it; a writer's lock is a
             * write in progress */
            if ((v1 & KV_VER_LOCKED) && !kv_is_rlock(v1)) {
                cpu_relax();
                continue;
            }
            uint32_t state = s->state;
            if (state == KV_EMPTY)
                goto out; /* EMPTY never becomes anything but FULL: a clean miss */
            if (state != KV_FULL || s->hash != h || s->klen != klen)
                break;
            if (memcmp(s->data, key, klen) != 0) {
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&s->ver, memory_order_relaxed) != v1)
                    continue; /* torn compare: look again */
                break;
            }
            uint32_t vl = s->vlen;
            if (vl > p->max_val) {
                continue; /* torn length */
            }
            size_t c = vl < cap ? vl : cap;
            if (c)
                memcpy(buf, s->data + p->max_key, c);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->ver, memory_order_relaxed) != v1)
                continue;
            *vlen = vl;
            rc = TSR_OK;
            goto out;
        }
    }
out:
    return rc;
}

uint64_t tsr_kv_part_count(kv_part_t *p)
{
    pthread_mutex_lock(&p->wlock);
    uint64_t n = atomic_load(&p->tab)->used;
    pthread_mutex_unlock(&p->wlock);
    return n;
}

tsr_status_t tsr_kv_part_scan(kv_part_t *p, uint64_t *epoch, uint64_t *pos, size_t max,
                              tsr_kv_scan_fn fn, void *arg, size_t *visited)
{
    tsr_status_t rc = TSR_OK;
    size_t k = 0;
    pthread_mutex_lock(&p->wlock);
    kv_tab_t *t = atomic_load(&p->tab);
    if (*pos != 0 && (*epoch & 0xffff) != (t->epoch & 0xffff)) {
        rc = TSR_ERR_CONFLICT;
        goto out;
    }
    *epoch = t->epoch;
    uint64_t i = *pos;
    for (; i < t->nslots && k < max; i++) {
        kv_slot_t *s = kv_slot_at(t, i);
        if (s->state != KV_FULL || s->pad == KV_TXN_RESERVED) /* a txn's insert in flight */
            continue;
        fn(arg, s->data, s->klen, s->data + p->max_key, s->vlen);
        k++;
    }
    *pos = i >= t->nslots ? UINT64_MAX : i;
out:
    pthread_mutex_unlock(&p->wlock);
    if (visited)
        *visited = k;
    return rc;
}
