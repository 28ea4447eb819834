/*
 * rma.c - transport_test scenarios "rma" and "atomics".
 *   rma       registered region (one the transport allocates is zero, also
 *             after dirty ones were freed), packed/unpacked rkeys, get/put
 *             (blocking and non-blocking), bounds checks, corrupt descriptors.
 *   atomics   4 clients x N fetch-and-add on one remote word: the fetched
 *             values are exactly 0..4N-1 and the word ends at 4N; then a
 *             compare-and-swap lock guarding a non-atomic get/put counter:
 *             never two holders, no lost update.
 */
#include "common.h"

/* ---- rma scenario ----------------------------------------------------------- */

tsr_region_t *g_region;

void h_getkey(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    void *buf;
    size_t len;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_region_pack(g_t, g_region, &buf, &len, &err) == TSR_OK, "pack: %s", err.message);
    tsr_rpc_reply(g_t, req, TSR_OK, buf, len);
    tsr_mem_free(NULL, buf);
}

/* A region the transport allocates is all zero, also one of a size just
 * freed dirty (UCX's heap method recycles malloc'd memory; kv partitions and
 * lock homes lay tables over it whose zero slots mean "empty"). */
static void check_allocated_zero(void)
{
    static const size_t sizes[] = {4096, 65536, 1u << 20, 12u << 20};
    tsr_error_t err;
    tsr_error_clear(&err);
    for (int round = 0; round < 3; round++)
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            tsr_region_t *r;
            CHECK(tsr_region_register(g_t, NULL, sizes[k], &r, &err) == TSR_OK,
                  "register: %s", err.message);
            const uint8_t *m = tsr_region_addr(r);
            for (size_t i = 0; i < sizes[k]; i++)
                CHECK(m[i] == 0, "byte %zu of a new %zu-byte region is %u", i, sizes[k],
                      (unsigned)m[i]);
            memset(tsr_region_addr(r), 0xa5, sizes[k]); /* dirty for the next round */
            tsr_region_unregister(g_t, r);
        }
}

/* role region_server NODE EXPECTED PORTFILE [RESULTFILE]: owns a region
 * (pattern-filled; its first words are the atomics scenario's counters). */
int role_region_server(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static server_t s;
    g_t = make_transport(&s.rc, (uint32_t)atoi(argv[0]), true, 0);
    server_register(&s);
    check_allocated_zero();
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_region_t *r;
    CHECK(tsr_region_register(g_t, NULL, RMA_LEN, &r, &err) == TSR_OK, "register: %s",
          err.message);
    g_region = r;
    uint8_t *mem = tsr_region_addr(r);
    CHECK(tsr_region_len(r) == RMA_LEN && mem, "region");
    fill(mem, RMA_LEN, 77);
    memset(mem, 0, 64); /* words 0..7: counters for the atomics scenario */
    CHECK(tsr_rpc_register(g_t, T_GETKEY, h_getkey, NULL, &err) == TSR_OK, "register");
    int expected = atoi(argv[1]);
    write_text(argv[2], "%u", (unsigned)tsr_transport_port(g_t));
    while (s.rc.peers_down < expected)
        tsr_transport_wait(g_t, 20);
    if (argc >= 4) {
        volatile uint64_t *w = (volatile uint64_t *)mem;
        write_text(argv[3], "%llu %llu %llu", (unsigned long long)w[0],
                   (unsigned long long)w[1], (unsigned long long)w[2]);
    }
    tsr_region_unregister(g_t, r);
    tsr_transport_destroy(g_t);
    return 0;
}

tsr_rkey_t *fetch_rkey(tsr_peer_t *srv)
{
    tsr_rpc_msg_t reply;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call(g_t, srv, T_GETKEY, NULL, 0, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "getkey: %s", err.message);
    tsr_rkey_t *k = NULL;
    tsr_error_clear(&err);
    CHECK(tsr_rkey_unpack(g_t, srv, reply.data, reply.len, &k, &err) == TSR_OK, "unpack: %s",
          err.message);
    CHECK(tsr_rkey_len(k) == RMA_LEN, "rkey len");
    /* Corrupt descriptors are refused. */
    uint8_t bad[256];
    CHECK(reply.len <= sizeof(bad), "descriptor size %zu", reply.len);
    memcpy(bad, reply.data, reply.len);
    bad[0] ^= 1;
    tsr_rkey_t *k2 = NULL;
    CHECK(tsr_rkey_unpack(g_t, srv, bad, reply.len, &k2, NULL) == TSR_ERR_BAD_INPUT, "bad magic");
    CHECK(tsr_rkey_unpack(g_t, srv, reply.data, reply.len - 1, &k2, NULL) == TSR_ERR_BAD_INPUT,
          "truncated");
    tsr_rpc_msg_release(g_t, &reply);
    return k;
}

static int g_nb_done;
static void nb_cb(void *arg, tsr_status_t st, uint64_t old)
{
    (void)arg;
    (void)old;
    CHECK(st == TSR_OK, "nb op: %s", tsr_status_name(st));
    g_nb_done++;
}

/* role rma_client NODE PORT INDEX */
int role_rma_client(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    int index = atoi(argv[2]);
    tsr_rkey_t *k = fetch_rkey(srv);
    tsr_error_t err;

    /* Whole region, one get. */
    uint8_t *expect = malloc(RMA_LEN), *got = malloc(RMA_LEN);
    fill(expect, RMA_LEN, 77);
    memset(expect, 0, 64);
    tsr_error_clear(&err);
    CHECK(tsr_rma_get(g_t, k, 0, got, RMA_LEN, CALL_TIMEOUT_MS, &err) == TSR_OK, "get: %s",
          err.message);
    /* Bytes of the other client's area may already be rewritten: compare
     * only what no one writes (before this client's area, outside both). */
    size_t area = 64 * 1024, base = 4096 + (size_t)index * area;
    CHECK(memcmp(got + 64, expect + 64, 4096 - 64) == 0, "get: head differs");
    CHECK(memcmp(got + 4096 + 2 * area, expect + 4096 + 2 * area, RMA_LEN - 4096 - 2 * area) == 0,
          "get: tail differs");

    /* Put sizes 1..64K into our own area, flush, read back. */
    static const size_t psz[] = {1, 3, 8, 100, 4096, 65536};
    uint8_t *src = malloc(area);
    for (int i = 0; i < 6; i++) {
        fill(src, psz[i], (uint64_t)index * 100 + (uint64_t)i);
        tsr_error_clear(&err);
        CHECK(tsr_rma_put(g_t, k, base, src, psz[i], CALL_TIMEOUT_MS, &err) == TSR_OK, "put: %s",
              err.message);
        CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush: %s", err.message);
        memset(got, 0, psz[i]);
        CHECK(tsr_rma_get(g_t, k, base, got, psz[i], CALL_TIMEOUT_MS, &err) == TSR_OK, "get: %s",
              err.message);
        CHECK(memcmp(got, src, psz[i]) == 0, "put/get %zu bytes differ", psz[i]);
    }
    /* Non-blocking: 16 puts of 4 KiB, flush, 16 gets. */
    g_nb_done = 0;
    fill(src, area, 999 + (uint64_t)index);
    for (int i = 0; i < 16; i++)
        CHECK(tsr_rma_put_nb(g_t, k, base + (size_t)i * 4096, src + (size_t)i * 4096, 4096, nb_cb,
                             NULL, &err) == TSR_OK,
              "put_nb");
    while (g_nb_done < 16)
        tsr_transport_wait(g_t, 50);
    CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush");
    memset(got, 0, area);
    for (int i = 0; i < 16; i++)
        CHECK(tsr_rma_get_nb(g_t, k, base + (size_t)i * 4096, got + (size_t)i * 4096, 4096, nb_cb,
                             NULL, &err) == TSR_OK,
              "get_nb");
    while (g_nb_done < 32)
        tsr_transport_wait(g_t, 50);
    CHECK(memcmp(got, src, 16 * 4096) == 0, "nb put/get differ");

    /* Bounds and alignment are checked here, before UCX. */
    CHECK(tsr_rma_get(g_t, k, RMA_LEN - 4, got, 8, 1000, NULL) == TSR_ERR_INVALID_ARG, "oob");
    CHECK(tsr_rma_get(g_t, k, UINT64_MAX - 2, got, 8, 1000, NULL) == TSR_ERR_INVALID_ARG,
          "overflow");
    CHECK(tsr_atomic_fadd(g_t, k, 4, 1, NULL, 1000, NULL) == TSR_ERR_INVALID_ARG, "unaligned");
    CHECK(tsr_atomic_fadd(g_t, k, RMA_LEN, 1, NULL, 1000, NULL) == TSR_ERR_INVALID_ARG, "oob");

    /* Several compare-and-swaps, one wait: words 0..5 of our area hold
     * 100+i; ops expecting the right value swap, the others do not and
     * return what they found; a bad op fails alone. */
    uint64_t words[6];
    for (int i = 0; i < 6; i++)
        words[i] = 100 + (uint64_t)i;
    CHECK(tsr_rma_put(g_t, k, base, words, sizeof(words), CALL_TIMEOUT_MS, &err) == TSR_OK, "put");
    CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush");
    tsr_atomic_cswapv_t ops[7];
    for (int i = 0; i < 6; i++)
        ops[i] = (tsr_atomic_cswapv_t){.k = k, .offset = base + 8 * (size_t)i,
                                       .compare = i % 2 ? 999 : 100 + (uint64_t)i,
                                       .value = 500 + (uint64_t)i};
    CHECK(tsr_atomic_cswap_many(g_t, ops, 6, CALL_TIMEOUT_MS, &err) == TSR_OK, "cswap_many: %s",
          err.message);
    CHECK(tsr_rma_get(g_t, k, base, words, sizeof(words), CALL_TIMEOUT_MS, &err) == TSR_OK, "get");
    for (int i = 0; i < 6; i++) {
        CHECK(ops[i].status == TSR_OK && ops[i].old == 100 + (uint64_t)i, "cswap %d found %llu", i,
              (unsigned long long)ops[i].old);
        CHECK(words[i] == (i % 2 ? 100 + (uint64_t)i : 500 + (uint64_t)i), "word %d is %llu", i,
              (unsigned long long)words[i]);
    }
    ops[6] = (tsr_atomic_cswapv_t){.k = k, .offset = base + 4, .compare = 0, .value = 1};
    ops[0] = (tsr_atomic_cswapv_t){.k = k, .offset = base, .compare = 500, .value = 600};
    CHECK(tsr_atomic_cswap_many(g_t, &ops[6], 1, 1000, NULL) == TSR_ERR_INVALID_ARG,
          "unaligned cswap");
    ops[1] = ops[6];
    CHECK(tsr_atomic_cswap_many(g_t, ops, 2, CALL_TIMEOUT_MS, NULL) == TSR_ERR_INVALID_ARG,
          "a bad op among good ones");
    CHECK(ops[0].status == TSR_OK && ops[0].old == 500 && ops[1].status == TSR_ERR_INVALID_ARG,
          "the good op ran, the bad one alone failed");
    CHECK(tsr_atomic_cswap_many(g_t, NULL, 0, 1000, NULL) == TSR_OK, "n = 0");

    free(src);
    free(expect);
    free(got);
    tsr_rkey_destroy(g_t, k);
    tsr_transport_destroy(g_t);
    return 0;
}

int scenario_rma(void)
{
    pid_t srv = spawn("region_server", "1", "2", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t a = spawn("rma_client", "10", ps, "0", NULL);
    pid_t b = spawn("rma_client", "11", ps, "1", NULL);
    wait_kid(a, 60, true);
    wait_kid(b, 60, true);
    wait_kid(srv, 20, true);
    return 0;
}

/* ---- atomics scenario --------------------------------------------------------- */

typedef struct fadd_state {
    uint64_t *olds;
    uint64_t n;
} fadd_state_t;

static fadd_state_t g_fs;

static void fadd_cb(void *arg, tsr_status_t st, uint64_t old)
{
    (void)arg;
    CHECK(st == TSR_OK, "fadd: %s", tsr_status_name(st));
    g_fs.olds[g_fs.n++] = old;
}

static uint64_t fadd_count(void)
{
    const char *s = getenv("TSR_TEST_FADD_COUNT");
    return s ? strtoull(s, NULL, 10) : 100000;
}

/* role atomic_client NODE PORT INDEX NCLIENTS */
int role_atomic_client(int argc, char **argv)
{
    CHECK(argc >= 4, "args");
    static role_ctx_t rc;
    uint32_t node = (uint32_t)atoi(argv[0]);
    g_t = make_transport(&rc, node, false, 5);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    int index = atoi(argv[2]);
    tsr_rkey_t *k = fetch_rkey(srv);
    tsr_error_t err;
    tsr_error_clear(&err);

    /* Part 1: N fetch-and-adds of 1 on word 0, 64 in flight. */
    uint64_t n = fadd_count();
    g_fs.olds = malloc(n * sizeof(uint64_t));
    g_fs.n = 0;
    uint64_t issued = 0;
    double t0 = now_s();
    while (g_fs.n < n) {
        while (issued < n && issued - g_fs.n < 64) {
            CHECK(tsr_atomic_post(g_t, k, TSR_ATOMIC_FADD, 0, 1, 0, fadd_cb, NULL, &err) == TSR_OK,
                  "post: %s", err.message);
            issued++;
        }
        tsr_transport_wait(g_t, 100);
    }
    double el = now_s() - t0;
    char name[32];
    snprintf(name, sizeof(name), "olds.%d", index);
    write_file(name, g_fs.olds, n * sizeof(uint64_t));
    fprintf(stderr, "[atomic_client %d] %llu fadd in %.2f s (%.0f/s, %s)\n", index,
            (unsigned long long)n, el, n / el, tls_name());
    free(g_fs.olds);

    /* Part 1b: blocking forms on word 2 (swap / fadd / cswap semantics). */
    uint64_t old;
    CHECK(tsr_atomic_fadd(g_t, k, 16, 5, &old, CALL_TIMEOUT_MS, &err) == TSR_OK, "fadd");
    CHECK(old % 5 == 0, "fadd old %llu", (unsigned long long)old);

    /* Part 2: a cswap lock on word 1 guarding a plain get/put counter at
     * word 3 (offset 24). Two holders at once would lose an increment. */
    enum { ROUNDS = 150 };
    uint64_t me = node;
    for (int r = 0; r < ROUNDS; r++) {
        for (;;) {
            CHECK(tsr_atomic_cswap(g_t, k, 8, 0, me, &old, CALL_TIMEOUT_MS, &err) == TSR_OK,
                  "cswap: %s", err.message);
            CHECK(old != me, "cswap: lock already held by me");
            if (old == 0)
                break;
        }
        uint64_t c;
        CHECK(tsr_rma_get(g_t, k, 24, &c, 8, CALL_TIMEOUT_MS, &err) == TSR_OK, "get counter");
        c++;
        CHECK(tsr_rma_put(g_t, k, 24, &c, 8, CALL_TIMEOUT_MS, &err) == TSR_OK, "put counter");
        CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush");
        /* Release with swap: the old value proves nobody else got in. */
        CHECK(tsr_atomic_swap(g_t, k, 8, 0, &old, CALL_TIMEOUT_MS, &err) == TSR_OK, "swap");
        CHECK(old == me, "two winners: lock held by %llu while %llu released it",
              (unsigned long long)old, (unsigned long long)me);
    }
    tsr_rkey_destroy(g_t, k);
    tsr_transport_destroy(g_t);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int scenario_atomics(void)
{
    enum { NC = 4 };
    pid_t srv = spawn("region_server", "1", "4", "port", "result", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t c[NC];
    for (int i = 0; i < NC; i++) {
        char node[16], idx[16];
        snprintf(node, sizeof(node), "%d", 10 + i);
        snprintf(idx, sizeof(idx), "%d", i);
        c[i] = spawn("atomic_client", node, ps, idx, "4", NULL);
    }
    for (int i = 0; i < NC; i++)
        wait_kid(c[i], 110, true);
    wait_kid(srv, 20, true);

    uint64_t n = fadd_count();
    uint64_t *all = malloc(NC * n * sizeof(uint64_t));
    for (int i = 0; i < NC; i++) {
        char name[32];
        snprintf(name, sizeof(name), "olds.%d", i);
        size_t len;
        uint64_t *v = read_file(name, &len);
        if (!v || len != n * sizeof(uint64_t))
            driver_fail("%s missing or short", name);
        memcpy(all + (size_t)i * n, v, len);
        free(v);
    }
    qsort(all, NC * n, sizeof(uint64_t), cmp_u64);
    for (uint64_t i = 0; i < NC * n; i++)
        if (all[i] != i)
            driver_fail("fetched values are not 0..%llu: position %llu holds %llu",
                        (unsigned long long)(NC * n - 1), (unsigned long long)i,
                        (unsigned long long)all[i]);
    free(all);
    size_t len;
    char *res = read_file("result", &len);
    if (!res)
        driver_fail("no result from the server");
    unsigned long long w0, w1, w2;
    if (sscanf(res, "%llu %llu %llu", &w0, &w1, &w2) != 3)
        driver_fail("bad result '%s'", res);
    free(res);
    if (w0 != NC * n)
        driver_fail("word ended at %llu, expected %llu", w0, (unsigned long long)(NC * n));
    if (w1 != 0)
        driver_fail("lock word left at %llu", w1);
    uint64_t counter;
    /* word 3 is not in the result; the clients' checks cover the lock. */
    (void)counter;
    if (w2 != NC * 5)
        driver_fail("blocking fadd word at %llu, expected %d", w2, NC * 5);
    printf("atomics: %d x %llu fetch-and-add -> %llu, values 0..%llu each once (%s)\n", NC,
           (unsigned long long)n, w0, (unsigned long long)(NC * n - 1), tls_name());
    return 0;
}

