/*
 * kv_torn_test.h - torn one-sided reads on demand, for tests that run a kv
 * owner in their own process (test_kv_remote.c, test_txn_many.c): find a
 * key's slot in the owner's table, damage it (lock bit set, a value byte
 * changed) and heal it from a thread 300 ms after the reader started.
 * Included after cmocka.h, with kv_internal.h's types.
 */
#ifndef TSR_TEST_KV_TORN_TEST_H
#define TSR_TEST_KV_TORN_TEST_H

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "kv_internal.h"

/* The owner's slot of key in t (the test runs in the owner's process). */
static inline kv_slot_t *owner_slot(tsr_kv_table_t *t, const char *key, size_t klen)
{
    uint64_t h = tsr_hash_bytes(key, klen);
    kv_tab_t *tab = atomic_load(&t->parts[kv_part_of(h, t->nparts)].tab);
    for (uint64_t i = 0; i < tab->nslots; i++) {
        kv_slot_t *s = kv_slot_at(tab, i);
        if (s->state == KV_FULL && s->hash == h && s->klen == klen &&
            memcmp(s->data, key, klen) == 0)
            return s;
    }
    return NULL;
}

typedef struct heal {
    kv_slot_t *locked, *corrupt;
    uint32_t max_key;
    unsigned char saved;
    atomic_bool started; /* the reader is about to read */
} heal_t;

/* Undoes the damage 300 ms after the reader started: the lock bit off, the
 * value byte back. 300 ms: a loaded machine may keep the reader off its
 * core for a while, and it must meet the damage at least once (it retries
 * every ~10-60 us meanwhile, far from MAX_TORN). */
static inline void *heal_later(void *arg)
{
    heal_t *h = arg;
    while (!atomic_load(&h->started))
        usleep(1000);
    usleep(300000);
    h->corrupt->data[h->max_key] = h->saved;
    atomic_fetch_and(&h->locked->ver, ~KV_VER_LOCKED);
    return NULL;
}

#endif /* TSR_TEST_KV_TORN_TEST_H */
