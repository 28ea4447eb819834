/*
 * txn_apply.c - the kv store's primitives for serializable optimistic
 * transactions (engine/txn drives them; docs/kv.md "Transactions").
 *
 * Lock word. A slot's version word (kv_internal.h) doubles as its lock, as
 * in FaRM: bit 0 set = LOCKED. Plain writers set it only for the moments of
 * a seqlock write under the partition mutex; a committing transaction sets
 * it with compare-and-swap (expecting the version it read, when it read the
 * key) and keeps it set until it applies or aborts. While it is set local
 * readers wait, remote readers see a torn slot and retry, and plain writers
 * of that key get TSR_ERR_CONFLICT (part.c), so nothing else can change a
 * locked key.
 *
 * Absent keys. Inserting needs a lock too (two transactions inserting the
 * same key must conflict), so locking an absent key RESERVES a slot under the
 * partition mutex: state FULL with the key, vlen 0, pad = KV_TXN_RESERVED and
 * the version locked. Readers never see it unlocked; apply turns it into the
 * value (or a tombstone for a delete), abort into a tombstone. A rehash
 * moves locked and reserved slots whole, lock bit included, so every step
 * after the lock finds its slot again by key, under the mutex.
 *
 * Versions. Commits write versions from a per-store clock (seeded from the
 * wall clock, advanced by 2^20 per commit), never smaller than the slot's
 * old version + 2; a plain write that puts a key into a new slot starts
 * from the same clock (part.c): a key deleted and re-inserted into another
 * slot cannot come back with a version a reader recorded earlier (no ABA).
 *
 * Commit record (KV_REC_TXN), one per committing store, all integers LE:
 *   u32 nwrites, then per write: u8 op (1 put, 2 delete), u32 table id,
 *   u32 klen, u32 vlen, key, value
 * The record is CRC'd as a whole by the log, so replay applies all of a
 * transaction's writes or none of them.
 */
#include <sched.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "kv_internal.h"

#define TXN_SPIN_FAST 1000u    /* pause-spins before yielding */
#define TXN_WAIT_NS 100000000u /* a read waits at most 100 ms for a locked slot */
#define TXN_CLOCK_STEP (1ULL << 20)

enum { TXN_OP_PUT = 1, TXN_OP_DEL = 2 };

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Waits a little for a locked slot; false once the time budget is spent
 * (*deadline is set on the first slow wait). */
static bool relax(unsigned n, uint64_t *deadline)
{
    if (n <= TXN_SPIN_FAST) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return true;
    }
    uint64_t now = mono_ns();
    if (*deadline == 0)
        *deadline = now + TXN_WAIT_NS;
    if (now > *deadline)
        return false;
    sched_yield();
    return true;
}

static kv_part_t *part_of(const kv_txn_key_t *k)
{
    return &k->t->parts[kv_part_of(k->h, k->t->nparts)];
}

/* Writer-side lookup with the mutex held: the key's slot, or where it would
 * go (first tombstone on the way, else the empty slot). As part.c's find_w. */
static kv_slot_t *find_locked(const kv_tab_t *t, const kv_txn_key_t *k, bool *found)
{
    kv_slot_t *tomb = NULL;
    uint64_t i = k->h & t->mask;
    for (uint64_t n = 0; n < t->nslots; n++, i = (i + 1) & t->mask) {
        kv_slot_t *s = kv_slot_at(t, i);
        if (s->state == KV_EMPTY) {
            *found = false;
            return tomb ? tomb : s;
        }
        if (s->state == KV_FULL) {
            if (s->hash == k->h && s->klen == k->klen && memcmp(s->data, k->key, k->klen) == 0) {
                *found = true;
                return s;
            }
        } else if (!tomb) {
            tomb = s;
        }
    }
    *found = false;
    return tomb;
}

static bool needs_room(const kv_tab_t *t)
{
    return (t->used + t->tombs + 1) * 10 > t->nslots * 7;
}

/* Writes a locked slot's body and publishes version nv (even): the seqlock
 * of part.c's slot_fill, with the lock already held by the transaction. */
static void write_body(const kv_part_t *p, kv_slot_t *s, uint64_t nv, uint32_t state,
                       const kv_txn_key_t *k, const void *val, uint32_t vlen)
{
    atomic_thread_fence(memory_order_release);
    if (state == KV_FULL) {
        s->hash = k->h;
        s->klen = k->klen;
        if (k->klen)
            memcpy(s->data, k->key, k->klen);
    } else {
        s->hash = 0;
        s->klen = 0;
    }
    s->state = state;
    s->vlen = vlen;
    s->pad = 0;
    if (vlen)
        memcpy(s->data + p->max_key, val, vlen);
    s->check = tsr_kv_slot_check(nv, s, p->max_key);
    atomic_store_explicit(&s->ver, nv, memory_order_release);
}

uint64_t tsr_kv_rlock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) & ((1ULL << 45) - 1);
}

bool tsr_kv_rlock_break_locked(kv_part_t *p, kv_slot_t *s)
{
    uint64_t w = atomic_load_explicit(&s->ver, memory_order_acquire);
    if (!kv_is_rlock(w))
        return true;
    if (!p->store || !kv_rlock_expired(w, tsr_kv_rlock_now_ms()))
        return false;
    /* The version the tag replaced is not known here (its holder has it),
     * so the slot gets a fresh one from the store's clock: larger than any
     * version handed out, so a transaction that read the old one fails its
     * validation (conservative), and the holder's adopt fails (another
     * word). Claimed first (tag -> fresh | LOCKED): a concurrent release by
     * the holder then fails instead of meeting a half-written checksum. */
    uint64_t nv = tsr_kv_txn_next_version(p->store) | (w & KV_VER_MOVED);
    if (!atomic_compare_exchange_strong(&s->ver, &w, nv | KV_VER_LOCKED))
        return !kv_is_rlock(atomic_load(&s->ver));
    s->check = tsr_kv_slot_check(nv & ~KV_VER_MOVED, s, p->max_key);
    atomic_store_explicit(&s->ver, nv, memory_order_release);
    return true;
}

uint64_t tsr_kv_rlock_sweep(kv_part_t *p)
{
    uint64_t n = 0, now = tsr_kv_rlock_now_ms();
    pthread_mutex_lock(&p->wlock);
    kv_tab_t *t = atomic_load(&p->tab);
    for (uint64_t i = 0; i < t->nslots; i++) {
        kv_slot_t *s = kv_slot_at(t, i);
        uint64_t w = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if (kv_is_rlock(w) && kv_rlock_expired(w, now) && tsr_kv_rlock_break_locked(p, s))
            n++;
    }
    pthread_mutex_unlock(&p->wlock);
    return n;
}

/* Lock-free probe: the key's version (KV_TXN_ABSENT when absent) and its
 * value. A locked slot on the way is waited for (a locked slot's key cannot
 * be trusted while a plain writer may be in it); one that stays locked for
 * 100 ms gives TSR_ERR_CONFLICT. */
static tsr_status_t probe(kv_part_t *p, const kv_txn_key_t *k, void *buf, size_t cap, size_t *vlen,
                          uint64_t *ver)
{
    unsigned spins = 0;
    uint64_t deadline = 0;
restart:;
    kv_tab_t *t = atomic_load(&p->tab);
    uint64_t i = k->h & t->mask;
    for (uint64_t n = 0; n < t->nslots; n++, i = (i + 1) & t->mask) {
        kv_slot_t *s = kv_slot_at(t, i);
        for (;;) {
            uint64_t v1 = atomic_load_explicit(&s->ver, memory_order_acquire);
            if (v1 & KV_VER_MOVED)
                goto restart;
            if (v1 & KV_VER_LOCKED) {
                /* a plain writer's seqlock (moments) or a committing
                 * transaction (short: no fsync happens under a lock); a
                 * remote client's lock past its lease is broken */
                if (kv_is_rlock(v1) && kv_rlock_expired(v1, tsr_kv_rlock_now_ms())) {
                    pthread_mutex_lock(&p->wlock);
                    (void)tsr_kv_rlock_break_locked(p, s);
                    pthread_mutex_unlock(&p->wlock);
                    continue;
                }
                if (!relax(++spins, &deadline))
                    return TSR_ERR_CONFLICT;
                continue;
            }
            uint32_t state = s->state;
            if (state == KV_EMPTY) {
                *ver = KV_TXN_ABSENT;
                return TSR_ERR_NOT_FOUND;
            }
            if (state != KV_FULL || s->hash != k->h || s->klen != k->klen)
                break;
            bool same = memcmp(s->data, k->key, k->klen) == 0;
            uint32_t vl = s->vlen;
            if (same && buf && vl <= p->max_val) {
                size_t c = vl < cap ? vl : cap;
                if (c)
                    memcpy(buf, s->data + p->max_key, c);
            }
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->ver, memory_order_relaxed) != v1 || vl > p->max_val)
                continue; /* torn: look again */
            if (!same)
                break;
            if (vlen)
                *vlen = vl;
            *ver = v1;
            return TSR_OK;
        }
    }
    *ver = KV_TXN_ABSENT;
    return TSR_ERR_NOT_FOUND;
}

tsr_status_t tsr_kv_txn_read(const kv_txn_key_t *k, void *buf, size_t cap, size_t *vlen,
                             uint64_t *ver)
{
    kv_part_t *p = part_of(k);
    atomic_ulong *cnt = tsr_kv_part_enter(p);
    tsr_status_t rc = probe(p, k, buf, cap, vlen, ver);
    tsr_kv_part_leave(cnt);
    return rc;
}

tsr_status_t tsr_kv_txn_validate(const kv_txn_key_t *k, uint64_t ver)
{
    /* Under the mutex: no plain write is half done and no reservation half
     * made, so the probe meets only whole slots, and slots of other keys
     * locked by committers (this one's included) are simply passed. A read
     * key locked by another committer is a conflict (it is about to
     * change), as in FaRM's validation. */
    kv_part_t *p = part_of(k);
    pthread_mutex_lock(&p->wlock);
    bool found;
    kv_slot_t *s = find_locked(atomic_load(&p->tab), k, &found);
    uint64_t now = found ? atomic_load_explicit(&s->ver, memory_order_relaxed) : KV_TXN_ABSENT;
    pthread_mutex_unlock(&p->wlock);
    if (found && (now & KV_VER_LOCKED))
        return TSR_ERR_CONFLICT;
    return now == ver ? TSR_OK : TSR_ERR_CONFLICT;
}

tsr_status_t tsr_kv_txn_lock(const kv_txn_key_t *k, uint64_t expect, bool *reserved,
                             tsr_error_t *err)
{
    kv_part_t *p = part_of(k);
    *reserved = false;
    tsr_status_t rc = TSR_OK;
    pthread_mutex_lock(&p->wlock);
    kv_tab_t *t = atomic_load(&p->tab);
    bool found;
    kv_slot_t *s = find_locked(t, k, &found);
    if (!found && s->state == KV_EMPTY && needs_room(t)) {
        /* grow first (part.c's rehash runs under the mutex it takes) */
        pthread_mutex_unlock(&p->wlock);
        rc = tsr_kv_part_reserve(p, 1, err);
        if (rc != TSR_OK)
            return rc;
        pthread_mutex_lock(&p->wlock);
        t = atomic_load(&p->tab);
        s = find_locked(t, k, &found);
    }
    if (found) {
        uint64_t v = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if (kv_is_rlock(v) && tsr_kv_rlock_break_locked(p, s))
            v = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if ((v & KV_VER_LOCKED) || expect == KV_TXN_ABSENT || (expect && v != expect)) {
            rc = TSR_ERR_CONFLICT;
            goto out;
        }
        /* CAS, not a store: the protocol a remote locker would run with a
         * one-sided atomic on the same word */
        if (!atomic_compare_exchange_strong(&s->ver, &v, v | KV_VER_LOCKED))
            rc = TSR_ERR_CONFLICT;
        goto out;
    }
    if (!s) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "kv: no free slot to reserve");
        goto out;
    }
    if (expect && expect != KV_TXN_ABSENT) {
        rc = TSR_ERR_CONFLICT; /* it was read present and is gone now */
        goto out;
    }
    uint64_t v = atomic_load_explicit(&s->ver, memory_order_relaxed);
    if (!atomic_compare_exchange_strong(&s->ver, &v, v | KV_VER_LOCKED)) {
        rc = TSR_ERR_CONFLICT;
        goto out;
    }
    atomic_thread_fence(memory_order_release);
    if (s->state == KV_TOMB)
        t->tombs--;
    t->used++;
    s->hash = k->h;
    s->klen = k->klen;
    s->vlen = 0;
    s->pad = KV_TXN_RESERVED;
    if (k->klen)
        memcpy(s->data, k->key, k->klen);
    s->state = KV_FULL;
    *reserved = true;
out:
    pthread_mutex_unlock(&p->wlock);
    return rc;
}

tsr_status_t tsr_kv_txn_adopt(const kv_txn_key_t *k, uint64_t tag, uint64_t expect)
{
    if (!kv_is_rlock(tag) || expect == 0 || expect == KV_TXN_ABSENT ||
        (expect & (KV_VER_LOCKED | KV_VER_MOVED | KV_VER_RLOCK)))
        return TSR_ERR_CONFLICT;
    kv_part_t *p = part_of(k);
    pthread_mutex_lock(&p->wlock);
    bool found;
    kv_slot_t *s = find_locked(atomic_load(&p->tab), k, &found);
    uint64_t w = tag;
    /* the word names this holder: the body is still the one of version
     * expect (nothing writes a remote-locked slot) */
    bool ok = found && atomic_compare_exchange_strong(&s->ver, &w, expect | KV_VER_LOCKED);
    pthread_mutex_unlock(&p->wlock);
    return ok ? TSR_OK : TSR_ERR_CONFLICT;
}

void tsr_kv_txn_release(const kv_txn_key_t *k, uint64_t tag, uint64_t expect)
{
    if (!kv_is_rlock(tag) || (expect & (KV_VER_LOCKED | KV_VER_MOVED | KV_VER_RLOCK)))
        return;
    kv_part_t *p = part_of(k);
    pthread_mutex_lock(&p->wlock);
    bool found;
    kv_slot_t *s = find_locked(atomic_load(&p->tab), k, &found);
    uint64_t w = tag;
    if (found)
        (void)atomic_compare_exchange_strong(&s->ver, &w, expect);
    pthread_mutex_unlock(&p->wlock);
}

/* The locked slot of k in the current table (the caller holds the mutex). */
static kv_slot_t *locked_slot(kv_part_t *p, const kv_txn_key_t *k, kv_tab_t **tab)
{
    kv_tab_t *t = atomic_load(&p->tab);
    bool found;
    kv_slot_t *s = find_locked(t, k, &found);
    *tab = t;
    return found ? s : NULL;
}

void tsr_kv_txn_unlock(const kv_txn_key_t *k)
{
    kv_part_t *p = part_of(k);
    pthread_mutex_lock(&p->wlock);
    kv_tab_t *t;
    kv_slot_t *s = locked_slot(p, k, &t);
    if (s) {
        uint64_t v = atomic_load_explicit(&s->ver, memory_order_relaxed);
        if (s->pad == KV_TXN_RESERVED) {
            t->used--;
            t->tombs++;
            write_body(p, s, (v & ~(KV_VER_LOCKED | KV_VER_MOVED)) + 2, KV_TOMB, k, NULL, 0);
        } else {
            /* the body never changed: the old version (and checksum) stand */
            atomic_store_explicit(&s->ver, v & ~KV_VER_LOCKED, memory_order_release);
        }
    }
    pthread_mutex_unlock(&p->wlock);
}

void tsr_kv_txn_apply(const kv_txn_key_t *k, bool del, const void *val, uint32_t vlen, uint64_t ver)
{
    kv_part_t *p = part_of(k);
    pthread_mutex_lock(&p->wlock);
    kv_tab_t *t;
    kv_slot_t *s = locked_slot(p, k, &t);
    if (s) {
        uint64_t old = atomic_load_explicit(&s->ver, memory_order_relaxed) & ~KV_VER_LOCKED;
        uint64_t nv = ver > old + 2 ? ver : old + 2;
        nv &= ~(KV_VER_LOCKED | KV_VER_MOVED);
        if (del) {
            t->used--;
            t->tombs++;
            write_body(p, s, nv, KV_TOMB, k, NULL, 0);
        } else {
            write_body(p, s, nv, KV_FULL, k, val, vlen);
        }
    }
    pthread_mutex_unlock(&p->wlock);
}

uint64_t tsr_kv_txn_next_version(tsr_kv_store_t *s)
{
    uint64_t c = atomic_load(&s->txn_clock);
    if (c == 0) {
        /* seed past any version of an earlier life of the data (replayed
         * writes count from small numbers; ns since 1970 < 2^62) */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t seed = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) & ~1ULL;
        atomic_compare_exchange_strong(&s->txn_clock, &c, seed);
    }
    return (atomic_fetch_add(&s->txn_clock, TXN_CLOCK_STEP) + TXN_CLOCK_STEP) & ~1ULL;
}

tsr_status_t tsr_kv_txn_log(tsr_kv_store_t *s, const kv_txn_wrec_t *w, size_t n, uint64_t *lsn,
                            tsr_error_t *err)
{
    *lsn = 0;
    if (!s->wal || n == 0)
        return TSR_OK;
    size_t bytes = 4;
    for (size_t i = 0; i < n; i++)
        bytes += 13 + (size_t)w[i].k->klen + (w[i].del ? 0 : w[i].vlen);
    unsigned char *buf = tsr_mem_alloc(s->mem, bytes);
    if (!buf)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory for a commit record");
    unsigned char *p = buf;
    kv_put32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        uint32_t vl = w[i].del ? 0 : w[i].vlen;
        p[0] = w[i].del ? TXN_OP_DEL : TXN_OP_PUT;
        kv_put32(p + 1, w[i].k->t->id);
        kv_put32(p + 5, w[i].k->klen);
        kv_put32(p + 9, vl);
        p += 13;
        if (w[i].k->klen)
            memcpy(p, w[i].k->key, w[i].k->klen);
        p += w[i].k->klen;
        if (vl)
            memcpy(p, w[i].val, vl);
        p += vl;
    }
    kv_piece_t pc[1] = {{buf, bytes}};
    tsr_status_t rc = tsr_kv_wal_append(s->wal, KV_REC_TXN, pc, 1, lsn, err);
    tsr_mem_free(s->mem, buf);
    return rc;
}

static tsr_kv_table_t *table_by_id(tsr_kv_store_t *s, uint32_t id)
{
    for (size_t i = 0; i < s->ntabs; i++)
        if (s->tabs[i]->id == id)
            return s->tabs[i];
    return NULL;
}

tsr_status_t tsr_kv_txn_replay(tsr_kv_store_t *s, const unsigned char *p, size_t len,
                               tsr_error_t *err)
{
    if (len < 4)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: short transaction record");
    uint32_t n = kv_get32(p);
    size_t off = 4;
    /* check the whole record before applying any of it: all or nothing */
    for (int pass = 0; pass < 2; pass++) {
        off = 4;
        for (uint32_t i = 0; i < n; i++) {
            if (len - off < 13)
                return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: short transaction record");
            unsigned op = p[off];
            tsr_kv_table_t *t = table_by_id(s, kv_get32(p + off + 1));
            uint32_t kl = kv_get32(p + off + 5), vl = kv_get32(p + off + 9);
            off += 13;
            if ((op != TXN_OP_PUT && op != TXN_OP_DEL) || !t || kl > t->max_key ||
                vl > t->max_val || (op == TXN_OP_DEL && vl) || (uint64_t)kl + vl > len - off)
                return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: bad transaction record");
            if (pass == 1) {
                const unsigned char *key = p + off;
                uint64_t h = tsr_hash_bytes(key, kl);
                kv_part_t *pt = &t->parts[kv_part_of(h, t->nparts)];
                tsr_status_t rc =
                    tsr_kv_part_write(pt, op == TXN_OP_PUT ? KV_OP_UPSERT : KV_OP_DELETE, h, key,
                                      kl, key + kl, vl, NULL, NULL, err);
                if (rc != TSR_OK && rc != TSR_ERR_NOT_FOUND)
                    return rc;
            }
            off += (size_t)kl + vl;
        }
        if (off != len)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "kv: bad transaction record length");
    }
    return TSR_OK;
}
