/*
 * txn_cluster_test.c - transactions on a cluster kv table through the C API
 * (tsr_txn_db_cluster), one role per process; the cluster (a scheduler and
 * 3 workers) and the processes are run by tests/integration/test_txn_cli.py,
 * which bounds every wait and stops every process by PID.
 *
 *   init     SCHED TOKEN TABLE NACCT START   one transaction writes every
 *            account ("acct-NNN" = START, as decimal text)
 *   client   SCHED TOKEN TABLE NACCT SECONDS SEED LOG TOTAL   random transfers
 *            (tsr_txn_run) for SECONDS; every 8th transaction is a read-only
 *            audit of all accounts, whose total must be TOTAL
 *            whenever it commits. LOG gets "I n from to amount" before a
 *            transfer, "A n" once acknowledged, "F n status" when it failed
 *            (status CONFLICT also when it failed before sending its commit).
 *            Exit 1 when an audit saw another total.
 *   check    SCHED TOKEN TABLE NACCT START LOG...   reads every balance in
 *            one transaction: the total is NACCT * START and each balance
 *            is START plus every acknowledged transfer exactly once, plus
 *            some subset of the transfers whose outcome is unknown (failed
 *            with another status than a conflict: the commit may have been
 *            applied).
 *   conflict SCHED TOKEN TABLE   deterministic interleavings: a write
 *            after a concurrent commit of a key read (present, absent) and
 *            a read-only transaction whose read changed fail with
 *            TSR_ERR_CONFLICT and write nothing; a commit whose reads held
 *            goes through; fenced writes with tokens 7, 9, 8, 9, 1, 0, 12:
 *            the older ones TSR_ERR_STALE, 0 TSR_ERR_INVALID_ARG, and such
 *            a commit's unfenced write is not applied either.
 *   fence    SCHED TOKEN TABLE LOCK T N ok|stale   one commit of N keys
 *            fenced by (LOCK, T) answers as wanted (tests/integration/
 *            test_txn_recovery.py runs it across scheduler restarts).
 *   skew     SCHED TOKEN TABLE ROUNDS   write skew: x = y = 1; two threads
 *            (one db each) each read both and, when x + y == 2, set its own
 *            key to 0 - at the same moment (barrier), retried by
 *            tsr_txn_run; serializable means never both: x + y >= 1 after
 *            every round. Also the deterministic interleaving.
 *   twotables SCHED TOKEN TA TB [sync]   one commit writing a key of each
 *            table (the test drops TB while the commit waits for TA's write
 *            turn): exit 0 when it committed or found TB gone (NOT_FOUND),
 *            else 1. With sync it first reads a key of TA, prints "ready",
 *            and commits once a line comes on stdin (the test drops TB while
 *            the validation of that read is out): then only NOT_FOUND (or
 *            UNAVAILABLE, the stopped replicas taken for dead) passes - an
 *            OK would be writes acknowledged to a dropped table.
 *
 * Every role arms alarm() so that a hang ends the process.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tessera/txn.h"

#define MAX_ACCT 1000
#define MAX_UNSURE 20

static _Atomic int fails;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static tsr_txn_db_t *connect_db(const char *sched, const char *token)
{
    tsr_txn_cluster_params_t p = {.scheduler = sched, .token_file = token, .timeout_ms = 10000};
    tsr_txn_db_t *db = NULL;
    tsr_txn_err_t e = {0};
    if (tsr_txn_db_cluster(&p, &db, &e) != TSR_OK) {
        fprintf(stderr, "cannot connect to %s: %s\n", sched, e.message);
        exit(1);
    }
    return db;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- reading and writing numbers ----------------------------------------------------- */

static tsr_status_t get_num(tsr_txn_t *x, const char *table, const char *key, long *out)
{
    char buf[64];
    size_t n = 0;
    tsr_status_t rc = tsr_txn_get(x, table, key, strlen(key), buf, sizeof(buf) - 1, &n, NULL);
    if (rc != TSR_OK)
        return rc;
    if (n >= sizeof(buf))
        return TSR_ERR_BAD_INPUT;
    buf[n] = '\0';
    *out = strtol(buf, NULL, 10);
    return TSR_OK;
}

static tsr_status_t put_num(tsr_txn_t *x, const char *table, const char *key, long v)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%ld", v);
    return tsr_txn_put(x, table, key, strlen(key), buf, (size_t)n, NULL, NULL);
}

static void acct_key(int i, char *buf, size_t size)
{
    snprintf(buf, size, "acct-%03d", i);
}

/* ---- bank ---------------------------------------------------------------------------------- */

typedef struct bank {
    const char *table;
    int nacct;
    long start;
    int from, to;
    long amount;
    bool committing; /* the last attempt's body ended: its commit was sent */
    long balances[MAX_ACCT];
    long total;
} bank_t;

static tsr_status_t fn_init(tsr_txn_t *x, void *arg)
{
    bank_t *b = arg;
    char k[32];
    for (int i = 0; i < b->nacct; i++) {
        acct_key(i, k, sizeof(k));
        tsr_status_t rc = put_num(x, b->table, k, b->start);
        if (rc != TSR_OK)
            return rc;
    }
    return TSR_OK;
}

static tsr_status_t fn_xfer(tsr_txn_t *x, void *arg)
{
    bank_t *b = arg;
    char kf[32], kt[32];
    long vf = 0, vt = 0;
    b->committing = false;
    acct_key(b->from, kf, sizeof(kf));
    acct_key(b->to, kt, sizeof(kt));
    tsr_status_t rc = get_num(x, b->table, kf, &vf);
    if (rc == TSR_OK)
        rc = get_num(x, b->table, kt, &vt);
    if (rc == TSR_OK)
        rc = put_num(x, b->table, kf, vf - b->amount);
    if (rc == TSR_OK)
        rc = put_num(x, b->table, kt, vt + b->amount);
    b->committing = rc == TSR_OK;
    return rc;
}

static tsr_status_t fn_audit(tsr_txn_t *x, void *arg)
{
    bank_t *b = arg;
    char k[32];
    b->total = 0;
    for (int i = 0; i < b->nacct; i++) {
        acct_key(i, k, sizeof(k));
        tsr_status_t rc = get_num(x, b->table, k, &b->balances[i]);
        if (rc != TSR_OK)
            return rc;
        b->total += b->balances[i];
    }
    return TSR_OK;
}

static int role_init(char **argv)
{
    tsr_txn_db_t *db = connect_db(argv[0], argv[1]);
    bank_t b = {.table = argv[2], .nacct = atoi(argv[3]), .start = atol(argv[4])};
    tsr_txn_err_t e = {0};
    tsr_status_t rc = tsr_txn_run(db, fn_init, &b, NULL, NULL, &e);
    CHECK(rc == TSR_OK, "init: %s", e.message);
    tsr_txn_db_close(db);
    return fails ? 1 : 0;
}

static int role_client(char **argv)
{
    tsr_txn_db_t *db = connect_db(argv[0], argv[1]);
    bank_t b = {.table = argv[2], .nacct = atoi(argv[3])};
    double secs = atof(argv[4]);
    uint64_t seed = strtoull(argv[5], NULL, 10) | 1;
    FILE *log = fopen(argv[6], "a");
    if (!log || b.nacct < 2 || b.nacct > MAX_ACCT) {
        fprintf(stderr, "client: bad arguments or log: %s\n", strerror(errno));
        return 1;
    }
    tsr_txn_run_opts_t ro = {.max_attempts = 32, .seed = seed};
    long expect_total = -1;
    int acked = 0, failed = 0, audits = 0, audit_fail = 0, bad = 0;
    double end = now_s() + secs;
    for (int n = 1; now_s() < end; n++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tsr_txn_err_t e = {0};
        if (n % 8 == 0) {
            tsr_status_t rc = tsr_txn_run(db, fn_audit, &b, &ro, NULL, &e);
            if (rc != TSR_OK) {
                audit_fail++;
                continue;
            }
            audits++;
            if (expect_total < 0)
                expect_total = atol(argv[7]);
            if (b.total != expect_total) {
                fprintf(stderr, "client: an audit saw total %ld, wanted %ld\n", b.total,
                        expect_total);
                bad++;
            }
            continue;
        }
        b.from = (int)(seed % (uint64_t)b.nacct);
        b.to = (int)((seed >> 20) % (uint64_t)(b.nacct - 1));
        if (b.to >= b.from)
            b.to++;
        b.amount = 1 + (long)((seed >> 40) % 10);
        fprintf(log, "I %d %d %d %ld\n", n, b.from, b.to, b.amount);
        fflush(log);
        tsr_status_t rc = tsr_txn_run(db, fn_xfer, &b, &ro, NULL, &e);
        if (rc == TSR_OK) {
            fprintf(log, "A %d\n", n);
            acked++;
        } else {
            /* a failure before the commit was sent wrote nothing */
            fprintf(log, "F %d %d\n", n, b.committing ? (int)rc : (int)TSR_ERR_CONFLICT);
            failed++;
        }
        fflush(log);
    }
    fclose(log);
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    /* "reads R one-sided S scheduler": test_txn_cli.py checks that the
     * reads went one-sided (TSR_TXN_ONE_SIDED unset) or not (=0) */
    printf("client: %d transfers acknowledged, %d failed, %d audits (%d gave up), %d bad; "
           "%" PRIu64 " commits, %" PRIu64 " conflicts; reads %" PRIu64 " one-sided %" PRIu64
           " scheduler\n",
           acked, failed, audits, audit_fail, bad, st.commits, st.conflicts, st.reads_rma,
           st.reads_rpc);
    tsr_txn_db_close(db);
    return bad || acked == 0 ? 1 : 0;
}

typedef struct xfer {
    int n, from, to;
    long amount;
    char state; /* 'I', 'A', 'F' */
    int status;
} xfer_t;

static int role_check(int argc, char **argv)
{
    tsr_txn_db_t *db = connect_db(argv[0], argv[1]);
    bank_t b = {.table = argv[2], .nacct = atoi(argv[3]), .start = atol(argv[4])};
    long want[MAX_ACCT];
    xfer_t unsure[MAX_UNSURE];
    int nunsure = 0, acked = 0;
    for (int i = 0; i < b.nacct; i++)
        want[i] = b.start;
    for (int f = 5; f < argc; f++) {
        FILE *log = fopen(argv[f], "r");
        if (!log) {
            CHECK(0, "cannot open %s", argv[f]);
            continue;
        }
        xfer_t cur = {0};
        char line[200];
        while (fgets(line, sizeof(line), log)) {
            xfer_t t = {0};
            if (sscanf(line, "I %d %d %d %ld", &t.n, &t.from, &t.to, &t.amount) == 4) {
                cur = t;
                cur.state = 'I';
            } else if (sscanf(line, "A %d", &t.n) == 1 && t.n == cur.n && cur.state == 'I') {
                want[cur.from] -= cur.amount;
                want[cur.to] += cur.amount;
                cur.state = 'A';
                acked++;
            } else if (sscanf(line, "F %d %d", &t.n, &t.status) == 2 && t.n == cur.n) {
                cur.state = 'F';
                /* a conflict (or a refused request) wrote nothing; anything
                 * else (the cluster stopped answering) may have committed */
                if (t.status != TSR_ERR_CONFLICT && t.status != TSR_ERR_INVALID_ARG) {
                    CHECK(nunsure < MAX_UNSURE, "too many transfers of unknown outcome");
                    if (nunsure < MAX_UNSURE)
                        unsure[nunsure++] = cur;
                }
            }
        }
        fclose(log);
    }
    tsr_txn_err_t e = {0};
    tsr_txn_run_opts_t ro = {.max_attempts = 64};
    tsr_status_t rc = tsr_txn_run(db, fn_audit, &b, &ro, NULL, &e);
    CHECK(rc == TSR_OK, "check: reading the balances: %s", e.message);
    if (rc == TSR_OK) {
        CHECK(b.total == (long)b.nacct * b.start, "total %ld, wanted %ld", b.total,
              (long)b.nacct * b.start);
        bool match = false;
        for (uint32_t mask = 0; mask < (1u << nunsure) && !match; mask++) {
            match = true;
            for (int i = 0; i < b.nacct && match; i++) {
                long w = want[i];
                for (int u = 0; u < nunsure; u++)
                    if (mask & (1u << u)) {
                        if (unsure[u].from == i)
                            w -= unsure[u].amount;
                        if (unsure[u].to == i)
                            w += unsure[u].amount;
                    }
                match = b.balances[i] == w;
            }
        }
        CHECK(match,
              "the balances are not the start plus every acknowledged transfer once (%d "
              "acknowledged, %d of unknown outcome)",
              acked, nunsure);
        printf("check: %d accounts, total %ld, %d acknowledged transfers (+%d unknown) applied "
               "exactly once\n",
               b.nacct, b.total, acked, nunsure);
    }
    tsr_txn_db_close(db);
    return fails ? 1 : 0;
}

/* ---- conflicts ---------------------------------------------------------------------------- */

static tsr_status_t get_str(tsr_txn_t *x, const char *table, const char *key, char *buf,
                            size_t size)
{
    size_t n = 0;
    tsr_status_t rc = tsr_txn_get(x, table, key, strlen(key), buf, size - 1, &n, NULL);
    buf[rc == TSR_OK && n < size ? n : 0] = '\0';
    return rc;
}

static tsr_status_t put_str(tsr_txn_t *x, const char *table, const char *key, const char *v)
{
    return tsr_txn_put(x, table, key, strlen(key), v, strlen(v), NULL, NULL);
}

/* The committed value of key ("" and NOT_FOUND when absent). */
static tsr_status_t committed(tsr_txn_db_t *db, const char *table, const char *key, char *buf,
                              size_t size)
{
    tsr_txn_t *x = NULL;
    tsr_status_t rc = tsr_txn_begin(db, &x, NULL);
    if (rc != TSR_OK)
        return rc;
    rc = get_str(x, table, key, buf, size);
    tsr_txn_rollback(x);
    return rc;
}

static int role_conflict(char **argv)
{
    tsr_txn_db_t *a = connect_db(argv[0], argv[1]), *b = connect_db(argv[0], argv[1]);
    const char *t = argv[2];
    char v[64];
    char key[64], mark[64], absent[64];
    snprintf(key, sizeof(key), "conf-%d", (int)getpid());
    snprintf(mark, sizeof(mark), "conf-mark-%d", (int)getpid());
    snprintf(absent, sizeof(absent), "conf-absent-%d", (int)getpid());
    tsr_txn_t *x = NULL, *y = NULL;
    tsr_txn_err_t e = {0};

    /* setup: key = "1" */
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK && put_str(x, t, key, "1") == TSR_OK &&
              tsr_txn_commit(x, &e) == TSR_OK,
          "setup: %s", e.message);
    /* 1. x reads key; y writes key and commits; x writes key and mark: conflict */
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK, "begin");
    CHECK(get_str(x, t, key, v, sizeof(v)) == TSR_OK && strcmp(v, "1") == 0, "read 1: '%s'", v);
    CHECK(tsr_txn_begin(b, &y, NULL) == TSR_OK && put_str(y, t, key, "2") == TSR_OK, "y");
    memset(&e, 0, sizeof(e));
    CHECK(tsr_txn_commit(y, &e) == TSR_OK, "y commits: %s", e.message);
    put_str(x, t, key, "3");
    put_str(x, t, mark, "loser");
    memset(&e, 0, sizeof(e));
    tsr_status_t rc = tsr_txn_commit(x, &e);
    CHECK(rc == TSR_ERR_CONFLICT, "x after y: %s, wanted a conflict (%s)", tsr_status_str(rc),
          e.message);
    CHECK(committed(a, t, key, v, sizeof(v)) == TSR_OK && strcmp(v, "2") == 0,
          "the loser's write is visible: '%s'", v);
    CHECK(committed(a, t, mark, v, sizeof(v)) == TSR_ERR_NOT_FOUND, "the loser's mark is there");

    /* 2. x reads an absent key; y inserts it; x's commit conflicts */
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK, "begin");
    CHECK(get_str(x, t, absent, v, sizeof(v)) == TSR_ERR_NOT_FOUND, "absent read");
    CHECK(tsr_txn_begin(b, &y, NULL) == TSR_OK && put_str(y, t, absent, "now") == TSR_OK &&
              tsr_txn_commit(y, NULL) == TSR_OK,
          "y inserts");
    put_str(x, t, mark, "loser2");
    rc = tsr_txn_commit(x, NULL);
    CHECK(rc == TSR_ERR_CONFLICT, "x after an insert of its absent read: %s", tsr_status_str(rc));
    CHECK(committed(a, t, mark, v, sizeof(v)) == TSR_ERR_NOT_FOUND, "the loser's mark is there");

    /* 3. a read-only transaction whose read changed conflicts */
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK, "begin");
    CHECK(get_str(x, t, key, v, sizeof(v)) == TSR_OK, "read");
    CHECK(tsr_txn_begin(b, &y, NULL) == TSR_OK && put_str(y, t, key, "4") == TSR_OK &&
              tsr_txn_commit(y, NULL) == TSR_OK,
          "y writes");
    rc = tsr_txn_commit(x, NULL);
    CHECK(rc == TSR_ERR_CONFLICT, "read-only after a change: %s", tsr_status_str(rc));

    /* 4. reads that held commit, also across partitions, with deletes */
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK, "begin");
    CHECK(get_str(x, t, key, v, sizeof(v)) == TSR_OK && strcmp(v, "4") == 0, "read 4");
    CHECK(tsr_txn_begin(b, &y, NULL) == TSR_OK && put_str(y, t, mark, "other") == TSR_OK &&
              tsr_txn_commit(y, NULL) == TSR_OK,
          "y writes another key");
    put_str(x, t, key, "5");
    tsr_txn_delete(x, t, absent, strlen(absent), NULL, NULL);
    rc = tsr_txn_commit(x, NULL);
    CHECK(rc == TSR_OK, "a commit whose reads held: %s", tsr_status_str(rc));
    CHECK(committed(a, t, key, v, sizeof(v)) == TSR_OK && strcmp(v, "5") == 0, "key '%s'", v);
    CHECK(committed(a, t, absent, v, sizeof(v)) == TSR_ERR_NOT_FOUND, "deleted key is there");

    /* 5. fenced writes: a token older than one a commit used is stale
     * (nothing of that commit written), equal and newer ones pass, token
     * 0 is refused; then an unknown table is NOT_FOUND */
    char lock[64];
    snprintf(lock, sizeof(lock), "conflict-lock-%ld", (long)getpid());
    static const struct {
        uint64_t token;
        tsr_status_t want;
    } steps[] = {{7, TSR_OK}, {9, TSR_OK},        {8, TSR_ERR_STALE},
                 {9, TSR_OK}, {1, TSR_ERR_STALE}, {0, TSR_ERR_INVALID_ARG},
                 {12, TSR_OK}};
    char want_f[32] = "";
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        char val[32];
        snprintf(val, sizeof(val), "v%zu", i);
        tsr_kv_write_opts_t wo = {.lock = lock, .token = steps[i].token};
        CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK &&
                  tsr_txn_put(x, t, "f", 1, val, strlen(val), &wo, NULL) == TSR_OK &&
                  put_str(x, t, "f-unfenced", val) == TSR_OK,
              "fenced put buffered");
        memset(&e, 0, sizeof(e));
        rc = tsr_txn_commit(x, &e);
        CHECK(rc == steps[i].want, "fenced write with token %llu: %s (%s), wanted %s",
              (unsigned long long)steps[i].token, tsr_status_str(rc), e.message,
              tsr_status_str(steps[i].want));
        if (rc == TSR_OK)
            snprintf(want_f, sizeof(want_f), "%s", val);
        CHECK(committed(a, t, "f", v, sizeof(v)) == TSR_OK && strcmp(v, want_f) == 0,
              "after token %llu: f = '%s', wanted '%s'", (unsigned long long)steps[i].token, v,
              want_f);
        CHECK(committed(a, t, "f-unfenced", v, sizeof(v)) == TSR_OK && strcmp(v, want_f) == 0,
              "after token %llu: the commit's unfenced write f-unfenced = '%s', wanted '%s'",
              (unsigned long long)steps[i].token, v, want_f);
    }
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK, "begin");
    CHECK(get_str(x, "no_such_table", "k", v, sizeof(v)) == TSR_ERR_NOT_FOUND, "unknown table");
    put_str(x, "no_such_table", "k", "v");
    rc = tsr_txn_commit(x, NULL);
    CHECK(rc == TSR_ERR_NOT_FOUND, "commit to an unknown table: %s", tsr_status_str(rc));
    tsr_txn_db_close(a);
    tsr_txn_db_close(b);
    printf("conflict: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}

/* ---- fenced writes across scheduler restarts ------------------------------------------------ */

/* fence SCHED TOKEN TABLE LOCK T N ok|stale: one transaction writes N keys
 * "fence-LOCK-i" = "T", each fenced by (LOCK, T); exit 0 when the commit
 * answered as wanted (TSR_OK, TSR_ERR_STALE) and the keys hold T exactly
 * when it committed. */
static int role_fence(char **argv)
{
    tsr_txn_db_t *db = connect_db(argv[0], argv[1]);
    const char *t = argv[2], *lock = argv[3];
    uint64_t token = strtoull(argv[4], NULL, 10);
    int n = atoi(argv[5]);
    bool want_ok = strcmp(argv[6], "ok") == 0;
    char key[300], val[32], v[64];
    snprintf(val, sizeof(val), "%llu", (unsigned long long)token);
    tsr_txn_t *x = NULL;
    tsr_kv_write_opts_t wo = {.lock = lock, .token = token};
    CHECK(tsr_txn_begin(db, &x, NULL) == TSR_OK, "begin");
    for (int i = 0; x && i < n; i++) {
        snprintf(key, sizeof(key), "fence-%s-%d", lock, i);
        CHECK(tsr_txn_put(x, t, key, strlen(key), val, strlen(val), &wo, NULL) == TSR_OK, "put");
    }
    tsr_txn_err_t e = {0};
    tsr_status_t rc = x ? tsr_txn_commit(x, &e) : TSR_ERR_INVALID_ARG;
    CHECK(rc == (want_ok ? TSR_OK : TSR_ERR_STALE), "lock %s token %llu: %s (%s), wanted %s", lock,
          (unsigned long long)token, tsr_status_str(rc), e.message, argv[6]);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "fence-%s-%d", lock, i);
        tsr_status_t g = committed(db, t, key, v, sizeof(v));
        CHECK((g == TSR_OK && strcmp(v, val) == 0) == (rc == TSR_OK),
              "key %s = '%s' (%s) after a commit that answered %s", key, v, tsr_status_str(g),
              tsr_status_str(rc));
    }
    tsr_txn_db_close(db);
    return fails ? 1 : 0;
}

/* ---- write skew ---------------------------------------------------------------------------- */

typedef struct skew {
    tsr_txn_db_t *db;
    const char *table;
    const char *mine, *other;
    int rounds;
    pthread_barrier_t *bar;
    int wrote; /* rounds in which this side's write committed */
} skew_t;

static tsr_status_t fn_skew(tsr_txn_t *x, void *arg)
{
    skew_t *s = arg;
    long a = 0, b = 0;
    tsr_status_t rc = get_num(x, s->table, s->mine, &a);
    if (rc == TSR_OK)
        rc = get_num(x, s->table, s->other, &b);
    if (rc == TSR_OK && a + b == 2)
        rc = put_num(x, s->table, s->mine, 0);
    return rc;
}

static tsr_status_t fn_reset(tsr_txn_t *x, void *arg)
{
    skew_t *s = arg;
    tsr_status_t rc = put_num(x, s->table, s->mine, 1);
    return rc == TSR_OK ? put_num(x, s->table, s->other, 1) : rc;
}

static tsr_status_t fn_sum(tsr_txn_t *x, void *arg)
{
    skew_t *s = arg;
    long a = 0, b = 0;
    tsr_status_t rc = get_num(x, s->table, s->mine, &a);
    if (rc == TSR_OK)
        rc = get_num(x, s->table, s->other, &b);
    s->wrote = (int)(a + b);
    return rc;
}

static void *skew_thread(void *arg)
{
    skew_t *s = arg;
    tsr_txn_run_opts_t ro = {.max_attempts = 64};
    for (int r = 0; r < s->rounds; r++) {
        pthread_barrier_wait(&s->bar[0]); /* reset done */
        if (tsr_txn_run(s->db, fn_skew, s, &ro, NULL, NULL) != TSR_OK)
            fails++;
        pthread_barrier_wait(&s->bar[1]); /* both done */
        pthread_barrier_wait(&s->bar[0]); /* checked */
    }
    return NULL;
}

static int role_skew(char **argv)
{
    const char *t = argv[2];
    int rounds = atoi(argv[3]);
    tsr_txn_db_t *a = connect_db(argv[0], argv[1]), *b = connect_db(argv[0], argv[1]);
    char kx[64], ky[64];
    snprintf(kx, sizeof(kx), "skew-x-%d", (int)getpid());
    snprintf(ky, sizeof(ky), "skew-y-%d", (int)getpid());
    skew_t main_s = {.db = a, .table = t, .mine = kx, .other = ky};
    tsr_txn_run_opts_t ro = {.max_attempts = 64};

    /* deterministic: both read x = y = 1, both write their own key */
    CHECK(tsr_txn_run(a, fn_reset, &main_s, &ro, NULL, NULL) == TSR_OK, "reset");
    tsr_txn_t *x = NULL, *y = NULL;
    long v1 = 0, v2 = 0;
    CHECK(tsr_txn_begin(a, &x, NULL) == TSR_OK && tsr_txn_begin(b, &y, NULL) == TSR_OK, "begin");
    CHECK(get_num(x, t, kx, &v1) == TSR_OK && get_num(x, t, ky, &v2) == TSR_OK && v1 + v2 == 2,
          "x reads");
    CHECK(get_num(y, t, kx, &v1) == TSR_OK && get_num(y, t, ky, &v2) == TSR_OK && v1 + v2 == 2,
          "y reads");
    put_num(x, t, kx, 0);
    put_num(y, t, ky, 0);
    tsr_status_t r1 = tsr_txn_commit(x, NULL), r2 = tsr_txn_commit(y, NULL);
    CHECK(r1 == TSR_OK && r2 == TSR_ERR_CONFLICT,
          "write skew: first %s, second %s (wanted ok, "
          "conflict)",
          tsr_status_str(r1), tsr_status_str(r2));
    CHECK(tsr_txn_run(a, fn_sum, &main_s, &ro, NULL, NULL) == TSR_OK && main_s.wrote == 1,
          "x + y = %d after the deterministic round", main_s.wrote);

    /* concurrent: both at once, many rounds */
    pthread_barrier_t bar[2];
    pthread_barrier_init(&bar[0], NULL, 3);
    pthread_barrier_init(&bar[1], NULL, 3);
    skew_t sx = {.db = a, .table = t, .mine = kx, .other = ky, .rounds = rounds, .bar = bar};
    skew_t sy = {.db = b, .table = t, .mine = ky, .other = kx, .rounds = rounds, .bar = bar};
    pthread_t th[2];
    pthread_create(&th[0], NULL, skew_thread, &sx);
    pthread_create(&th[1], NULL, skew_thread, &sy);
    int violations = 0;
    for (int r = 0; r < rounds; r++) {
        if (tsr_txn_run(a, fn_reset, &main_s, &ro, NULL, NULL) != TSR_OK)
            fails++;
        pthread_barrier_wait(&bar[0]);
        pthread_barrier_wait(&bar[1]);
        if (tsr_txn_run(a, fn_sum, &main_s, &ro, NULL, NULL) != TSR_OK || main_s.wrote != 1)
            violations++;
        pthread_barrier_wait(&bar[0]);
    }
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    pthread_barrier_destroy(&bar[0]);
    pthread_barrier_destroy(&bar[1]);
    CHECK(violations == 0, "write skew: %d of %d rounds did not end with x + y == 1", violations,
          rounds);
    tsr_txn_db_close(a);
    tsr_txn_db_close(b);
    printf("skew: %d rounds, %s\n", rounds, fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}

/* ---- a table dropped while a commit waits for a turn ------------------------------------- */

static int role_twotables(int argc, char **argv)
{
    bool sync = argc >= 5 && strcmp(argv[4], "sync") == 0;
    tsr_txn_db_t *db = connect_db(argv[0], argv[1]);
    tsr_txn_t *x = NULL;
    tsr_txn_err_t e = {0};
    char v[64];
    CHECK(tsr_txn_begin(db, &x, NULL) == TSR_OK, "begin");
    if (sync) {
        tsr_status_t g = get_str(x, argv[2], "tt", v, sizeof(v));
        CHECK(g == TSR_OK || g == TSR_ERR_NOT_FOUND, "read: %s", tsr_status_str(g));
        printf("ready\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof(line), stdin))
            CHECK(0, "no go line");
    }
    CHECK(put_str(x, argv[2], "tt", "1") == TSR_OK && put_str(x, argv[3], "tt", "1") == TSR_OK,
          "buffering");
    tsr_status_t rc = tsr_txn_commit(x, &e);
    if (sync)
        CHECK(rc == TSR_ERR_NOT_FOUND || rc == TSR_ERR_UNAVAILABLE,
              "commit over a table dropped during its validation: %s (%s), wanted NOT_FOUND",
              tsr_status_str(rc), e.message);
    else
        CHECK(rc == TSR_OK || rc == TSR_ERR_NOT_FOUND, "commit over a dropped table: %s (%s)",
              tsr_status_str(rc), e.message);
    tsr_txn_db_close(db);
    printf("twotables: %s\n", tsr_status_str(rc));
    return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
    alarm(120);
    if (argc >= 6 && strcmp(argv[1], "init") == 0)
        return role_init(argv + 2);
    if (argc >= 10 && strcmp(argv[1], "client") == 0)
        return role_client(argv + 2);
    if (argc >= 7 && strcmp(argv[1], "check") == 0)
        return role_check(argc - 2, argv + 2);
    if (argc >= 5 && strcmp(argv[1], "conflict") == 0)
        return role_conflict(argv + 2);
    if (argc >= 6 && strcmp(argv[1], "skew") == 0)
        return role_skew(argv + 2);
    if (argc >= 6 && strcmp(argv[1], "twotables") == 0)
        return role_twotables(argc - 2, argv + 2);
    if (argc >= 9 && strcmp(argv[1], "fence") == 0)
        return role_fence(argv + 2);
    fprintf(stderr,
            "usage: txn_cluster_test init|client|check|conflict|skew|twotables|fence SCHED TOKEN "
            "TABLE "
            "...\n"
            "(run by tests/integration/test_txn_cli.py)\n");
    return 2;
}
