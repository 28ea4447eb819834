/*
 * fence.c - the fencing-token check protected resources run on writes.
 *
 * A resource (a kv partition, the transaction manager) keeps one fence and
 * calls tsr_lock_fence_check(name, token) before applying a write made under
 * lock `name`: the write passes when its token is at least the largest one
 * seen for that lock (a holder writes many times with one token) and is
 * refused with TSR_ERR_STALE when it is older, so a holder that was paused
 * past its lease, and whose lock went to someone else meanwhile, cannot
 * overwrite the newer holder's data (Kleppmann's fencing tokens).
 *
 * Table: open addressing on the name's hash, linear probing, names copied
 * (exact comparison, no reliance on hash uniqueness), grown at 3/4 load.
 * One mutex: checks are short and rare next to the writes they guard.
 */
#include <pthread.h>
#include <string.h>

#include "core/hash.h"
#include "lock_internal.h"

typedef struct fence_entry {
    char *name;      /* NULL: empty */
    uint64_t hash;
    uint64_t token;  /* the largest token seen */
} fence_entry_t;

struct tsr_lock_fence {
    pthread_mutex_t mu;
    fence_entry_t *tab;
    size_t cap;  /* power of two */
    size_t used;
};

tsr_status_t tsr_lock_fence_create(tsr_lock_fence_t **out, tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    if (!out)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG, "fence: no output"));
    tsr_lock_fence_t *f = tsr_mem_calloc(NULL, 1, sizeof(*f));
    if (!f)
        goto err_nomem;
    f->cap = 64;
    f->tab = tsr_mem_calloc(NULL, f->cap, sizeof(*f->tab));
    if (!f->tab)
        goto err_free_fence;
    pthread_mutex_init(&f->mu, NULL);
    *out = f;
    return TSR_OK;

err_free_fence:
    tsr_mem_free(NULL, f);
err_nomem:
    return tsr_lock_err_out(errp, &err, tsr_error_set(&err, TSR_ERR_NOMEM, "fence: out of memory"));
}

void tsr_lock_fence_destroy(tsr_lock_fence_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->cap; i++)
        tsr_mem_free(NULL, f->tab[i].name);
    tsr_mem_free(NULL, f->tab);
    pthread_mutex_destroy(&f->mu);
    tsr_mem_free(NULL, f);
}

static int fence_grow(tsr_lock_fence_t *f)
{
    size_t ncap = f->cap * 2;
    fence_entry_t *nt = tsr_mem_calloc(NULL, ncap, sizeof(*nt));
    if (!nt)
        return -1;
    for (size_t i = 0; i < f->cap; i++) {
        if (!f->tab[i].name)
            continue;
        size_t j = f->tab[i].hash & (ncap - 1);
        while (nt[j].name)
            j = (j + 1) & (ncap - 1);
        nt[j] = f->tab[i];
    }
    tsr_mem_free(NULL, f->tab);
    f->tab = nt;
    f->cap = ncap;
    return 0;
}

tsr_status_t tsr_lock_fence_check(tsr_lock_fence_t *f, const char *name, uint64_t token,
                                  tsr_lock_err_t *errp)
{
    tsr_error_t err;
    lk_err_init(&err);
    size_t len = 0;
    tsr_status_t rc = tsr_lock_check_name(name, &len, &err);
    if (rc != TSR_OK)
        return tsr_lock_err_out(errp, &err, rc);
    if (!f)
        return tsr_lock_err_out(errp, &err, tsr_error_set(&err, TSR_ERR_INVALID_ARG, "fence: NULL"));
    if (token == 0)
        return tsr_lock_err_out(errp, &err,
                                tsr_error_set(&err, TSR_ERR_INVALID_ARG,
                                              "fencing token 0 is never granted"));
    uint64_t h = tsr_hash_bytes(name, len);
    pthread_mutex_lock(&f->mu);
    if ((f->used + 1) * 4 > f->cap * 3 && fence_grow(f) != 0) {
        rc = tsr_error_set(&err, TSR_ERR_NOMEM, "fence: out of memory");
        goto out;
    }
    size_t i = h & (f->cap - 1);
    while (f->tab[i].name && !(f->tab[i].hash == h && strcmp(f->tab[i].name, name) == 0))
        i = (i + 1) & (f->cap - 1);
    fence_entry_t *e = &f->tab[i];
    if (!e->name) {
        e->name = tsr_mem_strndup(NULL, name, len);
        if (!e->name) {
            rc = tsr_error_set(&err, TSR_ERR_NOMEM, "fence: out of memory");
            goto out;
        }
        e->hash = h;
        e->token = token;
        f->used++;
    } else if (token < e->token) {
        rc = tsr_error_set(&err, TSR_ERR_STALE,
                           "write under lock '%s' with fencing token %llu refused: token %llu "
                           "was already seen",
                           name, (unsigned long long)token, (unsigned long long)e->token);
    } else {
        e->token = token;
    }
out:
    pthread_mutex_unlock(&f->mu);
    return tsr_lock_err_out(errp, &err, rc);
}
