/*
 * hashjoin.c - the host API of device hash joins (hashjoin.h): argument and
 * state checks, and table sizing shared by the backends, so a backend only
 * builds, counts and writes.
 *
 * States: created -> built (build once) -> probed (any number of probes; each
 * replaces the previous one's pairs). A failed build leaves the object
 * unbuilt (destroy it); a failed probe leaves no pairs to write.
 */
#include "device/hashjoin.h"

size_t tsr_dev_hashjoin_slots(size_t rows)
{
    size_t n = 64;
    while (n < 2 * rows)
        n *= 2;
    return n;
}

tsr_status_t tsr_dev_hashjoin_create(tsr_dev_t *dev, const tsr_dev_hashjoin_spec_t *spec,
                                     tsr_dev_hashjoin_t **out, tsr_error_t *err)
{
    if (!dev || !spec || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: missing argument");
    if (spec->key != TSR_DEV_JOIN_KEY_I64 && spec->key != TSR_DEV_JOIN_KEY_U32)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: bad key type %d",
                             (int)spec->key);
    const tsr_dev_hashjoin_ops_t *ops = dev->backend->hashjoin;
    if (!ops)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED, "the %s backend has no hash join kernel",
                             dev->backend->name);
    tsr_dev_hashjoin_t *hj = tsr_mem_calloc(dev->mem, 1, sizeof(*hj));
    if (!hj)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    hj->dev = dev;
    hj->spec = *spec;
    tsr_status_t rc = ops->create(hj, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, hj);
        return rc;
    }
    *out = hj;
    return TSR_OK;
}

void tsr_dev_hashjoin_destroy(tsr_dev_hashjoin_t *hj)
{
    if (!hj)
        return;
    hj->dev->backend->hashjoin->destroy(hj);
    tsr_mem_free(hj->dev->mem, hj);
}

static tsr_status_t hashjoin_check(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t **q,
                                   const tsr_dev_join_keys_t *keys, const char *side,
                                   tsr_error_t *err)
{
    if (!hj || !keys)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: missing argument");
    if (!*q)
        *q = hj->dev->queue;
    if ((*q)->dev != hj->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device join: the queue belongs to another device");
    if (keys->n > TSR_DEV_JOIN_MAX_ROWS)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "device join: %zu %s rows (at most %zu per call)", keys->n, side,
                             TSR_DEV_JOIN_MAX_ROWS);
    if (keys->n && !keys->keys)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: %s keys missing", side);
    return TSR_OK;
}

/* The state checks and changes before a build of n keys (host or device
 * keys alike): one build per join. */
static tsr_status_t hashjoin_build_begin(tsr_dev_hashjoin_t *hj, size_t n, tsr_error_t *err)
{
    if (hj->built || hj->nslots)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device join: the build side is already built");
    hj->nbuild = n;
    hj->nslots = tsr_dev_hashjoin_slots(n);
    return TSR_OK;
}

/* The same before a probe of n keys: after the build; the previous probe's
 * pairs are gone from here on, until this probe succeeds. */
static tsr_status_t hashjoin_probe_begin(tsr_dev_hashjoin_t *hj, size_t n, const size_t *npairs,
                                         tsr_error_t *err)
{
    if (!npairs)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: missing argument");
    if (!hj->built)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: probe before build");
    hj->probed = false;
    hj->nprobe = n;
    hj->npairs = 0;
    return TSR_OK;
}

tsr_status_t tsr_dev_hashjoin_build(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys, tsr_error_t *err)
{
    tsr_status_t rc = hashjoin_check(hj, &q, keys, "build", err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = hashjoin_build_begin(hj, keys->n, err)) != TSR_OK)
        return rc;
    rc = hj->dev->backend->hashjoin->build(hj, q, keys, err);
    if (rc == TSR_OK)
        hj->built = true;
    return rc;
}

tsr_status_t tsr_dev_hashjoin_probe(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys, size_t *npairs,
                                    tsr_error_t *err)
{
    tsr_status_t rc = hashjoin_check(hj, &q, keys, "probe", err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = hashjoin_probe_begin(hj, keys->n, npairs, err)) != TSR_OK)
        return rc;
    size_t n = 0;
    rc = hj->dev->backend->hashjoin->probe(hj, q, keys, &n, err);
    if (rc != TSR_OK)
        return rc;
    hj->npairs = n;
    hj->probed = true;
    *npairs = n;
    return TSR_OK;
}

tsr_status_t tsr_dev_hashjoin_pairs(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    uint32_t *probe_rows, uint32_t *build_rows, tsr_error_t *err)
{
    if (!hj)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: missing argument");
    if (!q)
        q = hj->dev->queue;
    if (q->dev != hj->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device join: the queue belongs to another device");
    if (!hj->probed)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: pairs before a probe");
    if (hj->npairs == 0)
        return TSR_OK;
    if (!probe_rows || !build_rows)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device join: output arrays missing");
    return hj->dev->backend->hashjoin->pairs(hj, q, probe_rows, build_rows, err);
}

/* ---- device-resident keys --------------------------------------------------------------- */

bool tsr_dev_hashjoin_has_dev(const tsr_dev_hashjoin_t *hj)
{
    const tsr_dev_hashjoin_ops_t *ops = hj ? hj->dev->backend->hashjoin : NULL;
    return ops && ops->build_dev && ops->probe_dev;
}

/* hashjoin_check for device keys: the buffers are hj's device's and big
 * enough. */
static tsr_status_t hashjoin_dcheck(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t **q,
                                    const tsr_dev_join_dkeys_t *keys, const char *side,
                                    tsr_error_t *err)
{
    tsr_dev_join_keys_t probe = {.n = keys ? keys->n : 0, .keys = keys ? keys->keys : NULL};
    tsr_status_t rc = hashjoin_check(hj, q, keys ? &probe : NULL, side, err);
    if (rc != TSR_OK || keys->n == 0)
        return rc;
    size_t width = (size_t)hj->spec.key, words = (keys->n + 63) / 64;
    if (keys->keys->dev != hj->dev || keys->keys->size < keys->n * width ||
        (keys->valid && (keys->valid->dev != hj->dev || keys->valid->size < words * 8)))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device join: %s key buffers of another device or too small", side);
    return TSR_OK;
}

tsr_status_t tsr_dev_hashjoin_build_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                        const tsr_dev_join_dkeys_t *keys, tsr_error_t *err)
{
    if (hj && !tsr_dev_hashjoin_has_dev(hj))
        return TSR_ERR_UNSUPPORTED;
    tsr_status_t rc = hashjoin_dcheck(hj, &q, keys, "build", err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = hashjoin_build_begin(hj, keys->n, err)) != TSR_OK)
        return rc;
    rc = hj->dev->backend->hashjoin->build_dev(hj, q, keys, err);
    if (rc == TSR_OK)
        hj->built = true;
    return rc;
}

tsr_status_t tsr_dev_hashjoin_probe_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                        const tsr_dev_join_dkeys_t *keys, size_t *npairs,
                                        tsr_error_t *err)
{
    if (hj && !tsr_dev_hashjoin_has_dev(hj))
        return TSR_ERR_UNSUPPORTED;
    tsr_status_t rc = hashjoin_dcheck(hj, &q, keys, "probe", err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = hashjoin_probe_begin(hj, keys->n, npairs, err)) != TSR_OK)
        return rc;
    size_t n = 0;
    rc = hj->dev->backend->hashjoin->probe_dev(hj, q, keys, &n, err);
    if (rc != TSR_OK)
        return rc;
    hj->npairs = n;
    hj->probed = true;
    *npairs = n;
    return TSR_OK;
}
