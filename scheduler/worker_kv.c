/*
 * worker_kv.c - the kv partitions a worker hosts (docs/kv.md "On a
 * cluster"; messages in kv_msg.h).
 *
 * One embedded store (engine/kv) per worker, in <data dir>/kv: each hosted
 * partition is a one-partition table of it named "<table>.<gen>.<p>", so the
 * store's WAL (group commit, fdatasync before a write returns), snapshots
 * and recovery cover every partition, and a worker restarted on its data dir
 * serves again every write it acknowledged. Transactions' reads, validations
 * and applies (pops TGET, TVALIDATE, TAPPLY) run in worker_txn.c on the
 * same partition threads. A partition's table is created
 * on its first write with the sizes the scheduler sends along (a read of a
 * partition never written finds nothing), and dropped on DROP.
 *
 * One-sided reads (tsr_wkv_serve_reads): a tsr_kv_server on the worker's
 * transport (its listener) answers descriptor calls of peers that proved
 * the token, so transaction clients read the partition tables' slots by
 * RMA (scheduler/txn_cluster.c). Its descriptors carry each table's version
 * mask (worker_txn.c). A DROP (of the table, or of a stale copy before a
 * resync reloads it) retires the dropped copy in the server: its slots turn
 * MOVED and its memory stays until the worker stops, so a reader never
 * reads freed memory and never keeps reading the dropped copy.
 *
 * Threads: requests arrive on the worker's main thread; each goes to one of
 * NTHREADS threads by a hash of its partition's name, so one partition's
 * requests run in arrival order (the scheduler sends a key's writes to a
 * backup in the primary's order) while different partitions run in
 * parallel and share the log's group commits. A write blocks its thread
 * until durable, never the heartbeats. Threads reply themselves.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "core/hash.h"
#include "kv_msg.h"
#include "proto.h"
#include "tessera/kv.h"
#include "worker_kv.h"
#include "worker_kv_ranges.h"
#include "worker_txn.h"

#define NTHREADS 4
#define QUEUE_MAX 1024

typedef struct wkv_q {
    struct tsr_wkv *k;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tsr_rpc_req_t *ring[QUEUE_MAX];
    size_t head, len;
    bool quit;
} wkv_q_t;

struct tsr_wkv {
    tsr_transport_t *t;
    FILE *log;
    tsr_kv_store_t *store;
    tsr_wkv_txn_t *txn;   /* transaction pops (worker_txn.c) */
    tsr_kv_server_t *srv; /* one-sided reads of the partition tables; NULL: none */
    wkv_q_t q[NTHREADS];
    /* test hook TSR_TEST_KV_REFUSE_KEY: a PUT of this key, or a LOAD that
     * holds it (a group of puts), is answered UNAVAILABLE and not applied
     * (a replica that fails one write while another applies it;
     * tests/integration/test_kv_upsert.py, test_kv_group.py). A resync
     * page holding the key is a LOAD too and is refused: tests with it
     * refill such a worker by its missed keys (TAPPLY). NULL: off */
    char *refuse_key;
    /* test hook TSR_TEST_KV_DIGEST_DELAY_MS: each RDIGEST chunk of more
     * than one range (a resync's) of a written partition waits this long
     * first (writes land while a resync by ranges waits for its digests;
     * tests/integration/test_kv_compare.py); 0: off */
    unsigned digest_delay_ms;
};

static void reply_err(tsr_wkv_t *k, tsr_rpc_req_t *req, tsr_status_t rc, const char *msg)
{
    tsr_proto_reply_error(k->t, NULL, req, rc, msg, NULL);
}

typedef struct scan_out {
    tsr_wbuf_t *b;
    uint32_t n;
} scan_out_t;

static void on_pair(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    scan_out_t *o = arg;
    tsr_wbuf_blob(o->b, key, klen);
    tsr_wbuf_blob(o->b, val, vlen);
    o->n++;
}

/* FETCH: each key's value or absence in t (NULL: the partition was never
 * written here, every key is absent). */
static tsr_status_t fetch(tsr_kv_table_t *t, tsr_rbuf_t *r, tsr_wbuf_t *out, tsr_kv_err_t *ke)
{
    uint32_t n = tsr_rbuf_u32(r);
    if (r->bad || n > (r->len - r->pos) / 4) { /* each key takes 4 bytes at least */
        snprintf(ke->message, sizeof(ke->message), "malformed kv request");
        return TSR_ERR_BAD_INPUT;
    }
    size_t cap = 1;
    if (t) {
        tsr_kv_table_params_t info;
        tsr_kv_table_info(t, &info);
        cap = info.max_value ? info.max_value : 1;
    }
    void *buf = tsr_mem_alloc(NULL, cap);
    if (!buf)
        return TSR_ERR_NOMEM;
    tsr_status_t rc = TSR_OK;
    tsr_wbuf_u32(out, n);
    for (uint32_t i = 0; i < n && rc == TSR_OK; i++) {
        size_t klen = 0, vlen = 0;
        const void *key = tsr_rbuf_blob(r, &klen);
        if (r->bad)
            break;
        rc = t ? tsr_kv_get(t, key, klen, buf, cap, &vlen, ke) : TSR_ERR_NOT_FOUND;
        if (rc == TSR_OK) {
            tsr_wbuf_u8(out, 1);
            tsr_wbuf_blob(out, buf, vlen < cap ? vlen : cap);
        } else if (rc == TSR_ERR_NOT_FOUND) {
            tsr_wbuf_u8(out, 0);
            rc = TSR_OK;
            ke->status = TSR_OK;
            ke->message[0] = '\0';
        }
    }
    tsr_mem_free(NULL, buf);
    if (rc == TSR_OK && !tsr_rbuf_done(r)) {
        snprintf(ke->message, sizeof(ke->message), "malformed kv request");
        rc = TSR_ERR_BAD_INPUT;
    }
    return rc;
}

/* The test hook TSR_TEST_KV_REFUSE_KEY: whether puts of this key are refused. */
static bool refuses(const tsr_wkv_t *k, const void *key, size_t klen)
{
    return k->refuse_key && key && klen == strlen(k->refuse_key) &&
           memcmp(key, k->refuse_key, klen) == 0;
}

/* Runs one request; the reply payload goes to out. */
static tsr_status_t run(tsr_wkv_t *k, const void *data, size_t len, tsr_wbuf_t *out,
                        tsr_kv_err_t *ke)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    const char *name = tsr_rbuf_str(&r);
    uint32_t max_key = tsr_rbuf_u32(&r), max_value = tsr_rbuf_u32(&r);
    uint8_t pop = tsr_rbuf_u8(&r);
    if (r.bad || !name[0]) {
        snprintf(ke->message, sizeof(ke->message), "malformed kv request");
        return TSR_ERR_BAD_INPUT;
    }
    if (tsr_wkv_txn_pop(pop))
        return tsr_wkv_txn_run(k->txn, name, max_key, max_value, pop, &r, out, ke);
    if (pop == TSR_KV_POP_LIST) { /* every store table (the scheduler's orphan sweep) */
        char **names = NULL;
        size_t n = 0;
        tsr_status_t rc = tsr_kv_table_list(k->store, &names, &n, ke);
        if (rc != TSR_OK)
            return rc;
        tsr_wbuf_u32(out, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            tsr_wbuf_str(out, names[i]);
        tsr_kv_names_free(names);
        return TSR_OK;
    }
    if (pop == TSR_KV_POP_DROP) {
        tsr_status_t rc = tsr_kv_table_drop(k->store, name, ke);
        /* readers holding the dropped copy's descriptor re-fetch it now */
        tsr_kv_server_retire(k->srv, name);
        return rc == TSR_ERR_NOT_FOUND ? TSR_OK : rc;
    }
    bool write = pop == TSR_KV_POP_PUT || pop == TSR_KV_POP_INSERT || pop == TSR_KV_POP_UPDATE ||
                 pop == TSR_KV_POP_DEL || pop == TSR_KV_POP_LOAD;
    tsr_kv_table_t *t = NULL;
    tsr_status_t rc = tsr_kv_table_open(k->store, name, &t, ke);
    if (rc == TSR_ERR_NOT_FOUND && write) {
        tsr_kv_table_params_t tp = {.partitions = 1, .max_key = max_key, .max_value = max_value};
        rc = tsr_kv_table_create(k->store, name, &tp, ke);
        if (rc == TSR_OK || rc == TSR_ERR_EXISTS)
            rc = tsr_kv_table_open(k->store, name, &t, ke);
    }
    if (rc == TSR_ERR_NOT_FOUND) { /* never written: empty */
        ke->status = TSR_OK;
        ke->message[0] = '\0';
        switch (pop) {
        case TSR_KV_POP_COUNT:
            tsr_wbuf_u64(out, 0);
            return TSR_OK;
        case TSR_KV_POP_SCAN:
            tsr_wbuf_u64(out, 0);
            tsr_wbuf_u32(out, 0);
            return TSR_OK;
        case TSR_KV_POP_FETCH:
            return fetch(NULL, &r, out, ke);
        case TSR_KV_POP_RDIGEST: {
            uint32_t n = tsr_rbuf_u32(&r);
            uint64_t cursor = tsr_rbuf_u64(&r);
            return r.bad || n == 0 ? TSR_ERR_BAD_INPUT
                                   : tsr_wkv_digest(NULL, n, &cursor, TSR_WKV_VISIT_MAX, out, ke);
        }
        case TSR_KV_POP_RDROP:
            tsr_wbuf_u64(out, 0);
            return TSR_OK;
        default:
            snprintf(ke->message, sizeof(ke->message), "key not found");
            return TSR_ERR_NOT_FOUND;
        }
    }
    if (rc != TSR_OK)
        return rc;
    size_t klen = 0, vlen = 0;
    const void *key = NULL, *val = NULL;
    void *buf = NULL;
    tsr_kv_pair_t *pairs = NULL;
    switch (pop) {
    case TSR_KV_POP_PUT:
    case TSR_KV_POP_INSERT:
    case TSR_KV_POP_UPDATE:
        key = tsr_rbuf_blob(&r, &klen);
        val = tsr_rbuf_blob(&r, &vlen);
        if (!tsr_rbuf_done(&r))
            break;
        if (pop == TSR_KV_POP_PUT && refuses(k, key, klen)) {
            rc = TSR_ERR_UNAVAILABLE;
            snprintf(ke->message, sizeof(ke->message),
                     "test hook TSR_TEST_KV_REFUSE_KEY: this worker refuses puts of '%s'",
                     k->refuse_key);
            goto done;
        }
        rc = pop == TSR_KV_POP_PUT      ? tsr_kv_upsert(t, key, klen, val, vlen, NULL, ke)
             : pop == TSR_KV_POP_INSERT ? tsr_kv_insert(t, key, klen, val, vlen, NULL, ke)
                                        : tsr_kv_update(t, key, klen, val, vlen, NULL, ke);
        goto done;
    case TSR_KV_POP_DEL:
        key = tsr_rbuf_blob(&r, &klen);
        if (!tsr_rbuf_done(&r))
            break;
        rc = tsr_kv_delete(t, key, klen, NULL, ke);
        goto done;
    case TSR_KV_POP_GET: {
        key = tsr_rbuf_blob(&r, &klen);
        if (!tsr_rbuf_done(&r))
            break;
        tsr_kv_table_params_t info;
        tsr_kv_table_info(t, &info);
        size_t cap = info.max_value ? info.max_value : 1;
        buf = tsr_mem_alloc(NULL, cap);
        if (!buf) {
            rc = TSR_ERR_NOMEM;
            goto done;
        }
        rc = tsr_kv_get(t, key, klen, buf, cap, &vlen, ke);
        if (rc == TSR_OK)
            tsr_wbuf_blob(out, buf, vlen < cap ? vlen : cap);
        goto done;
    }
    case TSR_KV_POP_COUNT: {
        if (!tsr_rbuf_done(&r))
            break;
        uint64_t n = 0;
        rc = tsr_kv_count(t, &n);
        tsr_wbuf_u64(out, n);
        goto done;
    }
    case TSR_KV_POP_SCAN: {
        uint64_t cursor = tsr_rbuf_u64(&r);
        uint32_t page = tsr_rbuf_u32(&r);
        wkv_ranges_t rs = {0}; /* optional: only the pairs of these ranges */
        if (!r.bad && r.pos < r.len)
            tsr_wkv_ranges_read(&r, &rs);
        if (!tsr_rbuf_done(&r))
            break;
        if (page == 0 || page > TSR_KV_SCAN_PAGE_MAX)
            page = TSR_KV_SCAN_PAGE_MAX;
        tsr_wbuf_t pb;
        tsr_wbuf_init(&pb, NULL);
        scan_out_t so = {.b = &pb};
        rc = rs.n ? tsr_wkv_scan_ranges(t, &cursor, page, &rs, TSR_WKV_VISIT_MAX, &pb, &so.n, ke)
                  : tsr_kv_scan(t, &cursor, page, on_pair, &so, ke);
        if (rc == TSR_OK) {
            tsr_wbuf_u64(out, cursor);
            tsr_wbuf_u32(out, so.n);
            tsr_wbuf_bytes(out, pb.data, pb.len);
            if (pb.failed)
                out->failed = true;
        }
        tsr_wbuf_free(&pb);
        goto done;
    }
    case TSR_KV_POP_FETCH:
        rc = fetch(t, &r, out, ke);
        goto done;
    case TSR_KV_POP_RDIGEST: {
        uint32_t n = tsr_rbuf_u32(&r);
        uint64_t cursor = tsr_rbuf_u64(&r);
        if (!tsr_rbuf_done(&r) || n == 0)
            break;
        if (k->digest_delay_ms && n > 1) /* a resync's, not a comparison's */
            usleep(k->digest_delay_ms * 1000u);
        rc = tsr_wkv_digest(t, n, &cursor, TSR_WKV_VISIT_MAX, out, ke);
        goto done;
    }
    case TSR_KV_POP_RDROP: {
        wkv_ranges_t rs;
        if (!tsr_wkv_ranges_read(&r, &rs) || !tsr_rbuf_done(&r))
            break;
        rc = tsr_wkv_drop_ranges(t, &rs, TSR_WKV_DROP_CHUNK, out, ke);
        goto done;
    }
    case TSR_KV_POP_LOAD: {
        uint32_t n = tsr_rbuf_u32(&r);
        if (r.bad || n > (r.len - r.pos) / 8) /* each pair takes 8 bytes at least */
            break;
        pairs = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*pairs));
        if (!pairs) {
            rc = TSR_ERR_NOMEM;
            goto done;
        }
        bool refused = false;
        for (uint32_t i = 0; i < n; i++) {
            pairs[i].key = tsr_rbuf_blob(&r, &pairs[i].klen);
            pairs[i].val = tsr_rbuf_blob(&r, &pairs[i].vlen);
            refused |= refuses(k, pairs[i].key, pairs[i].klen);
        }
        if (!tsr_rbuf_done(&r))
            break;
        if (refused) { /* the whole batch, as a replica that failed it would */
            rc = TSR_ERR_UNAVAILABLE;
            snprintf(ke->message, sizeof(ke->message),
                     "test hook TSR_TEST_KV_REFUSE_KEY: this worker refuses puts of '%s'",
                     k->refuse_key);
            goto done;
        }
        size_t nok = 0;
        rc = tsr_kv_upsert_batch(t, pairs, n, NULL, NULL, &nok, ke);
        tsr_wbuf_u64(out, nok);
        goto done;
    }
    default:
        break;
    }
    rc = TSR_ERR_BAD_INPUT;
    snprintf(ke->message, sizeof(ke->message), "malformed kv request");
done:
    tsr_mem_free(NULL, pairs);
    tsr_mem_free(NULL, buf);
    tsr_kv_table_close(t);
    return rc;
}

static void *thread_main(void *arg)
{
    wkv_q_t *q = arg;
    tsr_wkv_t *k = q->k;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->len == 0 && !q->quit)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->len == 0) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        tsr_rpc_req_t *req = q->ring[q->head];
        q->head = (q->head + 1) % QUEUE_MAX;
        q->len--;
        pthread_mutex_unlock(&q->mu);
        size_t len = 0;
        const void *data = tsr_rpc_req_data(req, &len);
        tsr_wbuf_t out;
        tsr_wbuf_init(&out, NULL);
        tsr_kv_err_t ke = {0};
        tsr_status_t rc = run(k, data, len, &out, &ke);
        if (rc == TSR_OK && out.failed)
            rc = TSR_ERR_NOMEM;
        if (rc == TSR_OK)
            tsr_rpc_reply(k->t, req, TSR_OK, out.data, out.len);
        else
            reply_err(k, req, rc, ke.message[0] ? ke.message : tsr_status_str(rc));
        tsr_wbuf_free(&out);
    }
}

void tsr_wkv_on_request(void *arg, tsr_rpc_req_t *req)
{
    tsr_wkv_t *k = arg;
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    const char *name = tsr_rbuf_str(&r);
    wkv_q_t *q = &k->q[tsr_hash_bytes(name, strlen(name)) % NTHREADS];
    pthread_mutex_lock(&q->mu);
    bool ok = q->len < QUEUE_MAX && !q->quit && q->started;
    if (ok) {
        q->ring[(q->head + q->len) % QUEUE_MAX] = req;
        q->len++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (!ok)
        reply_err(k, req, TSR_ERR_UNAVAILABLE, "the worker's kv queue is full or stopping");
}

/* The store's identity (engine/kv/store_id.c): the scheduler refills a
 * stale copy with only the keys it missed when the worker that comes back
 * has the id the copy had (scheduler/kv_missed.c). */
uint64_t tsr_wkv_store_id(const tsr_wkv_t *k)
{
    return k ? tsr_kv_store_id(k->store) : 0;
}

tsr_status_t tsr_wkv_create(tsr_transport_t *t, const char *data_dir, const char *device, FILE *log,
                            tsr_wkv_t **out, tsr_error_t *err)
{
    char dir[4200];
    /* the tables in UCX memory: one-sided readers on this host map them
     * and read with plain loads (docs/kv.md "Protocols"); the heap where
     * UCX cannot allocate */
    tsr_kv_options_t o = {.sync = TSR_KV_SYNC_FSYNC, .transport = t};
    /* an OpenCL device runs large batches as kernels over the tables in place */
    if (device && strncmp(device, "opencl", 6) == 0)
        o.device = device;
    if (data_dir && data_dir[0]) {
        if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
            return tsr_error_set(err, TSR_ERR_IO, "cannot create the data dir '%s': %s", data_dir,
                                 strerror(errno));
        snprintf(dir, sizeof(dir), "%s/kv", data_dir);
        o.data_dir = dir;
    }
    tsr_wkv_t *k = tsr_mem_calloc(NULL, 1, sizeof(*k));
    if (!k)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    k->t = t;
    k->log = log;
    tsr_kv_err_t ke = {0};
    if (o.device && tsr_kv_open(&o, &k->store, &ke) != TSR_OK) {
        /* the device cannot run kv kernels: the store on the CPU */
        tsr_sched_log(log, "worker", "kv batches stay on the CPU: %s", ke.message);
        o.device = NULL;
        ke = (tsr_kv_err_t){0};
        k->store = NULL;
    }
    if (!k->store && tsr_kv_open(&o, &k->store, &ke) != TSR_OK) {
        tsr_status_t rc = ke.status ? ke.status : TSR_ERR_IO;
        tsr_mem_free(NULL, k);
        return tsr_error_set(err, rc, "kv store in '%s': %s", o.data_dir ? dir : "memory",
                             ke.message);
    }
    if (tsr_wkv_txn_create(k->store, &k->txn, err) != TSR_OK) {
        tsr_kv_close(k->store);
        tsr_mem_free(NULL, k);
        return err->status;
    }
    tsr_kv_device_stats_t ds;
    tsr_kv_device_stats(k->store, &ds);
    if (o.device)
        tsr_sched_log(log, "worker", "kv batches of >= %llu pairs per partition on %s%s%s",
                      (unsigned long long)ds.min_batch, ds.device,
                      ds.active ? "" : ": off: ", ds.active ? "" : ds.note);
    tsr_kv_recovery_t rec;
    tsr_kv_recovery_info(k->store, &rec);
    if (o.data_dir && (rec.last_lsn || rec.torn_tail || rec.lsn_gap))
        tsr_sched_log(log, "worker", "kv store %s: recovered up to lsn %llu%s%s", dir,
                      (unsigned long long)rec.last_lsn, rec.detail[0] ? "; " : "", rec.detail);
    if (o.data_dir && rec.new_identity)
        tsr_sched_log(log, "worker", "kv store %s: a new store identity %016llx%s", dir,
                      (unsigned long long)tsr_kv_store_id(k->store),
                      rec.torn_tail || rec.lsn_gap
                          ? " (records were cut or are missing: its copies are copied again)"
                          : "");
    const char *delay = getenv("TSR_TEST_KV_DIGEST_DELAY_MS");
    if (delay && delay[0]) {
        k->digest_delay_ms = (unsigned)strtoul(delay, NULL, 10) % 60000u;
        tsr_sched_log(log, "worker", "test hook: TSR_TEST_KV_DIGEST_DELAY_MS=%u (digests wait)",
                      k->digest_delay_ms);
    }
    const char *refuse = getenv("TSR_TEST_KV_REFUSE_KEY");
    if (refuse && refuse[0]) {
        k->refuse_key = tsr_mem_strdup(NULL, refuse);
        tsr_sched_log(log, "worker", "test hook: TSR_TEST_KV_REFUSE_KEY=%s (puts refused)", refuse);
    }
    for (int i = 0; i < NTHREADS; i++) {
        wkv_q_t *q = &k->q[i];
        q->k = k;
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cv, NULL);
        q->started = pthread_create(&q->th, NULL, thread_main, q) == 0;
    }
    *out = k;
    return TSR_OK;
}

tsr_status_t tsr_wkv_serve_reads(tsr_wkv_t *k, bool (*allow)(void *, tsr_peer_t *), void *allow_arg,
                                 tsr_error_t *err)
{
    tsr_kv_server_params_t sp = {.rpc_type = TSR_KV_RPC_DESC,
                                 .version_mask = tsr_wkv_txn_mask,
                                 .mask_arg = k->txn,
                                 .allow = allow,
                                 .allow_arg = allow_arg};
    tsr_kv_err_t ke = {0};
    if (tsr_kv_server_start_ex(k->store, k->t, &sp, &k->srv, &ke) != TSR_OK)
        return tsr_error_set(err, ke.status ? ke.status : TSR_ERR_INTERNAL,
                             "kv: cannot serve one-sided reads: %s", ke.message);
    return TSR_OK;
}

void tsr_wkv_destroy(tsr_wkv_t *k)
{
    if (!k)
        return;
    for (int i = 0; i < NTHREADS; i++) {
        wkv_q_t *q = &k->q[i];
        pthread_mutex_lock(&q->mu);
        q->quit = true;
        /* queued, never started: tell the scheduler */
        while (q->len > 0) {
            reply_err(k, q->ring[q->head], TSR_ERR_UNAVAILABLE, "the worker is stopping");
            q->head = (q->head + 1) % QUEUE_MAX;
            q->len--;
        }
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
        if (q->started)
            pthread_join(q->th, NULL);
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
    }
    if (k->srv) {
        /* called on the thread that progresses: no descriptor call runs now,
         * and none reaches the server once it is unregistered */
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_rpc_unregister(k->t, tsr_kv_server_rpc_type(k->srv), &e);
        tsr_kv_server_stop(k->srv);
    }
    tsr_wkv_txn_destroy(k->txn);
    tsr_kv_close(k->store);
    tsr_mem_free(NULL, k->refuse_key);
    tsr_mem_free(NULL, k);
}
