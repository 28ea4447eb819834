/*
 * test_kv_wal.c - engine/kv durability in one process: the write-ahead log,
 * snapshots and recovery (the SIGKILL test is tests/integration/kv).
 *
 * Random writes to several tables against a model, with automatic snapshots
 * (a tiny threshold) and explicit checkpoints, then reopen: the store equals
 * the model, also after drops and re-creates. A log cut at every offset of
 * its last record (and a few bytes of garbage appended): recovery keeps
 * every whole record, drops the torn one, says so, and a second open is
 * clean. A flipped byte in the middle of a log: recovery stops there without
 * crashing and later files are set aside. A corrupted snapshot is refused
 * by checksum. Writer threads sharing group commits all recover. With
 * fdatasync the log is preallocated with zeros: cut at close, left by a
 * process that dies (a child that _exits), and then recovered without a
 * "torn" report; garbage inside the zero tail is still torn. Checkpoints
 * taken back to back while writer threads upsert and delete (growing
 * partitions: rehashes during the copy) and another thread creates, fills
 * and drops a table: the reopened store equals the writers' models and the
 * dropped table stays dropped. Writer threads (single and batch upserts)
 * racing 400 drops and re-creates of their table: every write succeeds or
 * says NOT_FOUND, and the store opens again (a write logged after its
 * table's DROP record made recovery refuse the log).
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_internal.h"
#include "tessera/kv.h"

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static char g_dir[256];

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/tsr_kv_wal_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}
static int teardown(void **state)
{
    (void)state;
    rm_dir(g_dir);
    return 0;
}

static tsr_kv_store_t *open_store_sync(uint64_t snap_bytes, tsr_kv_sync_t sync,
                                       tsr_kv_recovery_t *rec)
{
    tsr_kv_options_t o = {.data_dir = g_dir, .sync = sync, .snapshot_bytes = snap_bytes};
    tsr_kv_store_t *s = NULL;
    tsr_kv_err_t e = {0};
    tsr_status_t rc = tsr_kv_open(&o, &s, &e);
    if (rc != TSR_OK)
        print_message("open: %s\n", e.message);
    assert_int_equal(rc, TSR_OK);
    if (rec)
        tsr_kv_recovery_info(s, rec);
    return s;
}

static tsr_kv_store_t *open_store(uint64_t snap_bytes, tsr_kv_recovery_t *rec)
{
    return open_store_sync(snap_bytes, TSR_KV_SYNC_WRITE, rec);
}

/* The model: per table, value of key id (u32) or absent (-1 length). */
enum { NT = 3, NK = 600, MV = 24 };
typedef struct mval {
    int len;
    unsigned char v[MV];
} mval_t;
static mval_t model[NT][NK];
static bool tab_exists[NT];

static void check_store(tsr_kv_store_t *s)
{
    for (int ti = 0; ti < NT; ti++) {
        char name[8];
        snprintf(name, sizeof(name), "t%d", ti);
        tsr_kv_table_t *t = NULL;
        tsr_status_t rc = tsr_kv_table_open(s, name, &t, NULL);
        assert_int_equal(rc, tab_exists[ti] ? TSR_OK : TSR_ERR_NOT_FOUND);
        if (rc != TSR_OK)
            continue;
        uint64_t cnt = 0, want = 0;
        for (uint32_t k = 0; k < NK; k++) {
            unsigned char buf[MV];
            size_t vl;
            rc = tsr_kv_get(t, &k, sizeof(k), buf, sizeof(buf), &vl, NULL);
            if (model[ti][k].len < 0) {
                assert_int_equal(rc, TSR_ERR_NOT_FOUND);
            } else {
                want++;
                assert_int_equal(rc, TSR_OK);
                assert_int_equal(vl, model[ti][k].len);
                assert_memory_equal(buf, model[ti][k].v, vl);
            }
        }
        assert_int_equal(tsr_kv_count(t, &cnt), TSR_OK);
        assert_int_equal(cnt, want);
        tsr_kv_table_close(t);
    }
}

static void random_writes(tsr_kv_store_t *s, int n)
{
    for (int i = 0; i < n; i++) {
        int ti = (int)(rnd() % NT);
        char name[8];
        snprintf(name, sizeof(name), "t%d", ti);
        if (rnd() % 500 == 0) { /* drop and re-create */
            if (tab_exists[ti])
                assert_int_equal(tsr_kv_table_drop(s, name, NULL), TSR_OK);
            tsr_kv_table_params_t p = {
                .partitions = 1 + (uint32_t)ti, .max_key = 4, .max_value = MV};
            assert_int_equal(tsr_kv_table_create(s, name, &p, NULL), TSR_OK);
            tab_exists[ti] = true;
            for (int k = 0; k < NK; k++)
                model[ti][k].len = -1;
            continue;
        }
        if (!tab_exists[ti])
            continue;
        tsr_kv_table_t *t;
        assert_int_equal(tsr_kv_table_open(s, name, &t, NULL), TSR_OK);
        uint32_t k = (uint32_t)(rnd() % NK);
        if (rnd() % 4 == 0) {
            tsr_status_t rc = tsr_kv_delete(t, &k, sizeof(k), NULL, NULL);
            assert_int_equal(rc, model[ti][k].len >= 0 ? TSR_OK : TSR_ERR_NOT_FOUND);
            model[ti][k].len = -1;
        } else {
            mval_t *m = &model[ti][k];
            m->len = (int)(rnd() % (MV + 1));
            for (int j = 0; j < m->len; j++)
                m->v[j] = (unsigned char)rnd();
            assert_int_equal(tsr_kv_upsert(t, &k, sizeof(k), m->v, (size_t)m->len, NULL, NULL),
                             TSR_OK);
        }
        tsr_kv_table_close(t);
    }
}

static void reset_model(tsr_kv_store_t *s)
{
    for (int ti = 0; ti < NT; ti++) {
        char name[8];
        snprintf(name, sizeof(name), "t%d", ti);
        tsr_kv_table_params_t p = {.partitions = 1 + (uint32_t)ti, .max_key = 4, .max_value = MV};
        assert_int_equal(tsr_kv_table_create(s, name, &p, NULL), TSR_OK);
        tab_exists[ti] = true;
        for (int k = 0; k < NK; k++)
            model[ti][k].len = -1;
    }
}

static void test_recover_model(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(16 << 10, NULL); /* snapshots every 16 KiB of log */
    reset_model(s);
    for (int round = 0; round < 5; round++) {
        random_writes(s, 3000);
        if (round == 2)
            assert_int_equal(tsr_kv_checkpoint(s, NULL), TSR_OK);
        check_store(s);
        tsr_kv_close(s);
        tsr_kv_recovery_t rec;
        s = open_store(16 << 10, &rec);
        assert_false(rec.torn_tail);
        assert_true(rec.snapshot_lsn > 0); /* the threshold made snapshots */
        check_store(s);
    }
    /* snapshots dropped old logs: only a few files are left */
    int files = 0;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        files += strncmp(e->d_name, "wal-", 4) == 0;
    closedir(d);
    assert_true(files <= 2);
    tsr_kv_close(s);
}

/* The newest log file's path. */
static void last_log(char *out, size_t cap)
{
    DIR *d = opendir(g_dir);
    struct dirent *e;
    char best[64] = "";
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "wal-", 4) == 0 && strstr(e->d_name, ".log") &&
            !strstr(e->d_name, "discarded") && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", e->d_name);
    closedir(d);
    snprintf(out, cap, "%s/%s", g_dir, best);
}

static off_t file_size(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_size;
}

static void test_torn_tail(void **state)
{
    (void)state;
    tsr_kv_recovery_t rec;
    tsr_kv_store_t *s = open_store(0, &rec);
    assert_true(rec.new_identity); /* the first use of the dir */
    uint64_t id = tsr_kv_store_id(s);
    assert_int_not_equal(id, 0);
    assert_int_equal(tsr_kv_table_create(s, "t", NULL, NULL), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    char path[512];
    for (uint32_t k = 0; k < 50; k++)
        assert_int_equal(tsr_kv_insert(t, &k, 4, "value", 5, NULL, NULL), TSR_OK);
    last_log(path, sizeof(path));
    off_t before = file_size(path);
    uint32_t k = 50;
    assert_int_equal(tsr_kv_insert(t, &k, 4, "last!", 5, NULL, NULL), TSR_OK);
    off_t after = file_size(path);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    /* keep a copy of the whole log, then cut the last record at each offset */
    int fd = open(path, O_RDONLY);
    char *whole = malloc((size_t)after);
    assert_int_equal(read(fd, whole, (size_t)after), after);
    close(fd);
    for (off_t cut = before; cut <= after; cut++) {
        fd = open(path, O_WRONLY | O_TRUNC);
        assert_int_equal(write(fd, whole, (size_t)cut), cut);
        if (cut == after - 1) /* garbage instead of the last byte */
            assert_int_equal(write(fd, "\xff\xff\xff", 3), 3);
        close(fd);
        s = open_store(0, &rec);
        bool complete = cut == after;
        assert_int_equal(rec.torn_tail, !complete && cut != before);
        if (rec.torn_tail)
            assert_non_null(strstr(rec.detail, "cut"));
        /* records cut: another store (a delta resync must not trust it);
         * a whole log, or one cut exactly between records: the same one */
        assert_int_equal(rec.new_identity, rec.torn_tail);
        assert_int_equal(tsr_kv_store_id(s) != id, rec.torn_tail);
        id = tsr_kv_store_id(s);
        assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
        uint64_t n;
        assert_int_equal(tsr_kv_count(t, &n), TSR_OK);
        assert_int_equal(n, complete ? 51 : 50);
        tsr_kv_table_close(t);
        tsr_kv_close(s);
        s = open_store(0, &rec); /* the cut made the log clean */
        assert_false(rec.torn_tail);
        assert_false(rec.new_identity);
        assert_int_equal(tsr_kv_store_id(s), id);
        tsr_kv_close(s);
        /* the reopen started new log files: remove them for the next round */
        DIR *d = opendir(g_dir);
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)) != NULL) {
            snprintf(p, sizeof(p), "%s/%s", g_dir, e->d_name);
            if (strncmp(e->d_name, "wal-", 4) == 0 && strcmp(p, path) != 0)
                unlink(p);
        }
        closedir(d);
    }
    free(whole);
}

/* Keys 0..n-1 of table "t" hold "v<k>" (a fresh store when first == 0). */
static void insert_range(tsr_kv_store_t *s, uint32_t first, uint32_t n)
{
    if (first == 0)
        assert_int_equal(tsr_kv_table_create(s, "t", NULL, NULL), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    for (uint32_t k = first; k < first + n; k++) {
        char v[16];
        int vl = snprintf(v, sizeof(v), "v%u", k);
        assert_int_equal(tsr_kv_insert(t, &k, 4, v, (size_t)vl, NULL, NULL), TSR_OK);
    }
    tsr_kv_table_close(t);
}

static void check_range(tsr_kv_store_t *s, uint32_t n)
{
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    uint64_t cnt = 0;
    assert_int_equal(tsr_kv_count(t, &cnt), TSR_OK);
    assert_int_equal(cnt, n);
    for (uint32_t k = 0; k < n; k++) {
        char v[16], want[16];
        size_t vl = 0;
        int wl = snprintf(want, sizeof(want), "v%u", k);
        assert_int_equal(tsr_kv_get(t, &k, 4, v, sizeof(v), &vl, NULL), TSR_OK);
        assert_int_equal(vl, (size_t)wl);
        assert_memory_equal(v, want, vl);
    }
    tsr_kv_table_close(t);
}

static bool tail_is_zero(const char *path, off_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    off_t size = file_size(path);
    unsigned char buf[4096];
    assert_true(n <= (off_t)sizeof(buf) && n <= size);
    assert_int_equal(pread(fd, buf, (size_t)n, size - n), n);
    close(fd);
    for (off_t i = 0; i < n; i++)
        if (buf[i])
            return false;
    return true;
}

/* With fdatasync (TSR_KV_SYNC_FSYNC) the log is preallocated: while the
 * store is open its file is records then zeros, in 64 KiB steps; a clean
 * close cuts it to the records. A process that dies with the store open
 * (here: a child that _exits) leaves the zero tail: the next open keeps
 * every acknowledged write, does not call the tail torn, cuts it off and
 * appends after the records. Garbage inside the zero tail is a torn tail. */
static void test_prealloc(void **state)
{
    (void)state;
    char path[512];
    tsr_kv_store_t *s = open_store_sync(0, TSR_KV_SYNC_FSYNC, NULL);
    insert_range(s, 0, 200);
    last_log(path, sizeof(path));
    off_t open_size = file_size(path);
    assert_int_equal(open_size % (64 << 10), 0);
    assert_true(tail_is_zero(path, 64));
    /* an lsn never assigned is refused (waiting for it would never end) */
    uint64_t last = tsr_kv_wal_last_lsn(s->wal);
    assert_int_equal(tsr_kv_wal_commit(s->wal, last, NULL), TSR_OK);
    assert_int_equal(tsr_kv_wal_commit(s->wal, last + 1, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_close(s);
    off_t closed_size = file_size(path);
    assert_true(closed_size > 0 && closed_size < open_size);
    tsr_kv_recovery_t rec;
    s = open_store_sync(0, TSR_KV_SYNC_FSYNC, &rec);
    assert_false(rec.torn_tail);
    check_range(s, 200);
    tsr_kv_close(s);

    /* a crash with the store open: the child inserts 300 more (each
     * durable before it returns) and exits without closing */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tsr_kv_store_t *c = open_store_sync(0, TSR_KV_SYNC_FSYNC, NULL);
        insert_range(c, 200, 300);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    last_log(path, sizeof(path));
    assert_true(tail_is_zero(path, 64)); /* left preallocated */
    off_t crashed_size = file_size(path);
    s = open_store_sync(0, TSR_KV_SYNC_FSYNC, &rec);
    assert_false(rec.torn_tail);
    uint64_t id = tsr_kv_store_id(s);
    assert_false(rec.new_identity); /* the zero tail is not a cut: the same store */
    check_range(s, 500);
    off_t cut_size = file_size(path);
    assert_true(cut_size < crashed_size);
    assert_false(tail_is_zero(path, 1)); /* cut to its records */
    insert_range(s, 500, 10);
    tsr_kv_close(s);
    s = open_store_sync(0, TSR_KV_SYNC_FSYNC, &rec);
    assert_false(rec.torn_tail);
    check_range(s, 510);
    tsr_kv_close(s);

    /* again, then a byte of garbage in the middle of the zero tail */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tsr_kv_store_t *c = open_store_sync(0, TSR_KV_SYNC_FSYNC, NULL);
        uint32_t k = 510;
        tsr_kv_table_t *t;
        if (tsr_kv_table_open(c, "t", &t, NULL) != TSR_OK ||
            tsr_kv_insert(t, &k, 4, "v510", 4, NULL, NULL) != TSR_OK)
            _exit(1);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    last_log(path, sizeof(path));
    assert_true(tail_is_zero(path, 64));
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "x", 1, file_size(path) - 7), 1);
    close(fd);
    s = open_store_sync(0, TSR_KV_SYNC_FSYNC, &rec);
    assert_true(rec.torn_tail);
    check_range(s, 511);           /* the acknowledged insert is kept */
    assert_true(rec.new_identity); /* garbage cut: records may have been lost */
    assert_int_not_equal(tsr_kv_store_id(s), id);
    tsr_kv_close(s);
}

static void test_corrupt_middle(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(0, NULL);
    assert_int_equal(tsr_kv_table_create(s, "t", NULL, NULL), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    for (uint32_t k = 0; k < 100; k++)
        assert_int_equal(tsr_kv_upsert(t, &k, 4, "vvvvvvvv", 8, NULL, NULL), TSR_OK);
    tsr_kv_table_close(t);
    uint64_t id = tsr_kv_store_id(s);
    tsr_kv_close(s);
    /* a second file after the first (a reopen starts one) */
    s = open_store(0, NULL);
    assert_int_equal(tsr_kv_store_id(s), id);
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    uint32_t k = 1000;
    assert_int_equal(tsr_kv_upsert(t, &k, 4, "x", 1, NULL, NULL), TSR_OK);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    /* flip a byte in the middle of the FIRST file */
    DIR *d = opendir(g_dir);
    struct dirent *e;
    char first[64] = "~";
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "wal-", 4) == 0 && strcmp(e->d_name, first) < 0)
            snprintf(first, sizeof(first), "%s", e->d_name);
    closedir(d);
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", g_dir, first);
    off_t sz = file_size(path);
    int fd = open(path, O_RDWR);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, sz / 2), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, sz / 2), 1);
    close(fd);
    char idpath[600];
    snprintf(idpath, sizeof(idpath), "%s/store-id", g_dir);
    assert_int_equal(access(idpath, F_OK), 0);
    tsr_kv_recovery_t rec;
    s = open_store(0, &rec);
    assert_true(rec.torn_tail);
    assert_true(rec.bytes_dropped > 0);
    /* acknowledged writes were lost: a new identity, and the old file is
     * gone before the cut (store_id.c) */
    assert_int_not_equal(tsr_kv_store_id(s), id);
    assert_true(rec.new_identity);
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    uint64_t n;
    assert_int_equal(tsr_kv_count(t, &n), TSR_OK);
    assert_true(n > 0 && n < 100); /* a prefix of the writes, nothing after the damage */
    size_t vl;
    char buf[8];
    assert_int_equal(tsr_kv_get(t, &k, 4, buf, 8, &vl, NULL), TSR_ERR_NOT_FOUND);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

/* The store's identity (store_id.c): kept across clean and crashed
 * opens, made anew when the dir loses its store-id or it is unreadable;
 * none in memory. (Cuts: test_torn_tail, test_prealloc,
 * test_corrupt_middle.) */
static void test_store_identity(void **state)
{
    (void)state;
    tsr_kv_store_t *m = NULL;
    assert_int_equal(tsr_kv_open(NULL, &m, NULL), TSR_OK);
    assert_int_equal(tsr_kv_store_id(m), 0);
    tsr_kv_close(m);
    tsr_kv_recovery_t rec;
    tsr_kv_store_t *s = open_store(0, &rec);
    uint64_t id = tsr_kv_store_id(s);
    assert_true(rec.new_identity && id != 0);
    insert_range(s, 0, 20);
    tsr_kv_close(s);
    s = open_store(0, &rec);
    assert_false(rec.new_identity);
    assert_int_equal(tsr_kv_store_id(s), id);
    tsr_kv_close(s);
    char path[600];
    snprintf(path, sizeof(path), "%s/store-id", g_dir);
    FILE *f = fopen(path, "w"); /* unreadable: not 16 hex digits */
    assert_non_null(f);
    fputs("xyz\n", f);
    fclose(f);
    s = open_store(0, &rec);
    assert_true(rec.new_identity);
    assert_int_not_equal(tsr_kv_store_id(s), id);
    id = tsr_kv_store_id(s);
    check_range(s, 20); /* the data is kept; only the id is new */
    tsr_kv_close(s);
    assert_int_equal(unlink(path), 0); /* e.g. a dir restored from a backup */
    s = open_store(0, &rec);
    assert_true(rec.new_identity);
    assert_int_not_equal(tsr_kv_store_id(s), id);
    tsr_kv_close(s);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* A log file lost from the middle (lsns jump): replay notes the gap and
 * goes on (the records after it are applied, as before), the store takes a
 * new identity, and a snapshot at that open covers the gap, so the next
 * open keeps the identity it made. */
static void test_lost_file(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(0, NULL);
    insert_range(s, 0, 10);
    tsr_kv_close(s);
    for (uint32_t round = 1; round < 3; round++) { /* each open starts a file */
        s = open_store(0, NULL);
        insert_range(s, 10 * round, 10);
        tsr_kv_close(s);
    }
    s = open_store(0, NULL);
    uint64_t id = tsr_kv_store_id(s);
    tsr_kv_close(s);
    char names[8][64];
    int n = 0;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "wal-", 4) == 0 && n < 8)
            snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
    closedir(d);
    assert_true(n >= 3);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_name);
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", g_dir, names[1]); /* keys 10..19 */
    assert_int_equal(unlink(path), 0);
    tsr_kv_recovery_t rec;
    s = open_store(0, &rec);
    assert_true(rec.lsn_gap);
    assert_false(rec.torn_tail);
    assert_non_null(strstr(rec.detail, "missing"));
    assert_true(rec.new_identity);
    assert_int_not_equal(tsr_kv_store_id(s), id);
    id = tsr_kv_store_id(s);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
    uint64_t cnt = 0;
    assert_int_equal(tsr_kv_count(t, &cnt), TSR_OK);
    assert_int_equal(cnt, 20); /* 0..9 and 20..29: the lost file's keys are gone */
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    s = open_store(0, &rec); /* the snapshot covered the gap */
    assert_false(rec.lsn_gap);
    assert_false(rec.new_identity);
    assert_int_equal(tsr_kv_store_id(s), id);
    tsr_kv_close(s);
}

static void test_corrupt_snapshot(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(0, NULL);
    assert_int_equal(tsr_kv_table_create(s, "t", NULL, NULL), TSR_OK);
    assert_int_equal(tsr_kv_checkpoint(s, NULL), TSR_OK);
    tsr_kv_close(s);
    char path[600];
    snprintf(path, sizeof(path), "%s/snapshot", g_dir);
    off_t sz = file_size(path);
    int fd = open(path, O_RDWR);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, sz / 2), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, sz / 2), 1);
    close(fd);
    tsr_kv_options_t o = {.data_dir = g_dir};
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_open(&o, &s, &e), TSR_ERR_BAD_INPUT);
    assert_non_null(strstr(e.message, "corrupt"));
    /* a snapshot cut short is refused too */
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(tsr_kv_open(&o, &s, NULL), TSR_ERR_BAD_INPUT);
}

/* ---- group commit: threads writing with fdatasync ----------------------------------- */

typedef struct gc_arg {
    tsr_kv_table_t *t;
    uint32_t base;
} gc_arg_t;

static void *gc_writer(void *arg)
{
    gc_arg_t *a = arg;
    for (uint32_t i = 0; i < 150; i++) {
        uint32_t k = a->base + i;
        if (tsr_kv_insert(a->t, &k, 4, &k, 4, NULL, NULL) != TSR_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    tsr_kv_options_t o = {.data_dir = g_dir, .sync = TSR_KV_SYNC_FSYNC};
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(&o, &s, NULL), TSR_OK);
    tsr_kv_table_params_t p = {.partitions = 4, .max_key = 4, .max_value = 4};
    assert_int_equal(tsr_kv_table_create(s, "g", &p, NULL), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "g", &t, NULL), TSR_OK);
    pthread_t th[4];
    gc_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (gc_arg_t){t, (uint32_t)i * 1000};
        assert_int_equal(pthread_create(&th[i], NULL, gc_writer, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    assert_int_equal(tsr_kv_open(&o, &s, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_open(s, "g", &t, NULL), TSR_OK);
    for (uint32_t i = 0; i < 4; i++)
        for (uint32_t j = 0; j < 150; j++) {
            uint32_t k = i * 1000 + j, v = 0;
            size_t vl;
            assert_int_equal(tsr_kv_get(t, &k, 4, &v, 4, &vl, NULL), TSR_OK);
            assert_int_equal(v, k);
        }
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

/* ---- snapshots taken while writes go on ---------------------------------------------- */

enum { FZ_WRITERS = 3, FZ_KEYS = 6000, FZ_WRITES = 24000, FZ_MV = 40 };
typedef struct fz_writer {
    tsr_kv_table_t *t;
    uint32_t base;
    uint64_t rng;
    int len[FZ_KEYS]; /* the model: -1 absent */
    unsigned char v[FZ_KEYS][FZ_MV];
    unsigned long writes;
    atomic_bool done;
    atomic_uint *checkpoints; /* taken so far by the test's thread */
    int failed;
} fz_writer_t;

static uint64_t fz_rnd(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* FZ_WRITES random upserts and deletes of its own keys; the key space
 * grows all along (partitions rehash while snapshots copy them). */
static void *fz_writer(void *arg)
{
    fz_writer_t *w = arg;
    while (w->writes < FZ_WRITES) {
        /* halfway, wait (bounded) for two checkpoints: on a loaded machine
         * the writers could otherwise finish before the first one */
        for (int i = 0; w->writes == FZ_WRITES / 2 && i < 20000 && atomic_load(w->checkpoints) < 2;
             i++)
            usleep(500);
        uint32_t span = (uint32_t)(w->writes * FZ_KEYS / FZ_WRITES) + 1;
        uint32_t i = (uint32_t)(fz_rnd(&w->rng) % span), k = w->base + i;
        tsr_status_t rc;
        if (fz_rnd(&w->rng) % 5 == 0) {
            rc = tsr_kv_delete(w->t, &k, 4, NULL, NULL);
            if (rc != (w->len[i] >= 0 ? TSR_OK : TSR_ERR_NOT_FOUND))
                w->failed++;
            w->len[i] = -1;
        } else {
            int n = (int)(fz_rnd(&w->rng) % (FZ_MV + 1));
            for (int j = 0; j < n; j++)
                w->v[i][j] = (unsigned char)fz_rnd(&w->rng);
            w->len[i] = n;
            if (tsr_kv_upsert(w->t, &k, 4, w->v[i], (size_t)n, NULL, NULL) != TSR_OK)
                w->failed++;
        }
        w->writes++;
    }
    atomic_store(&w->done, true);
    return NULL;
}

typedef struct fz_churn {
    tsr_kv_store_t *s;
    atomic_bool *stop;
    unsigned rounds;
    bool exists; /* table "churn" after the last round */
    int failed;
} fz_churn_t;

/* Creates, fills and drops a table over and over: a drop while a snapshot
 * copies the table must neither crash it nor come back after recovery. */
static void *fz_churner(void *arg)
{
    fz_churn_t *c = arg;
    while (!atomic_load(c->stop) || c->rounds < 20) {
        tsr_kv_table_params_t p = {.partitions = 2, .max_key = 4, .max_value = 8};
        if (c->exists && tsr_kv_table_drop(c->s, "churn", NULL) != TSR_OK)
            c->failed++;
        if (tsr_kv_table_create(c->s, "churn", &p, NULL) != TSR_OK) {
            c->failed++;
            break;
        }
        c->exists = true;
        tsr_kv_table_t *t = NULL;
        if (tsr_kv_table_open(c->s, "churn", &t, NULL) != TSR_OK) {
            c->failed++;
            break;
        }
        for (uint32_t k = 0; k < 200; k++)
            c->failed += tsr_kv_upsert(t, &k, 4, &k, 4, NULL, NULL) != TSR_OK;
        tsr_kv_table_close(t);
        c->rounds++;
        if (c->rounds % 3 == 0) /* every third round keeps the table a while */
            continue;
        c->failed += tsr_kv_table_drop(c->s, "churn", NULL) != TSR_OK;
        c->exists = false;
    }
    if (c->exists)
        c->failed += tsr_kv_table_drop(c->s, "churn", NULL) != TSR_OK; /* ends dropped */
    c->exists = false;
    return NULL;
}

static void test_snapshot_during_writes(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(0, NULL);
    tsr_kv_table_params_t p = {.partitions = 4, .max_key = 4, .max_value = FZ_MV};
    assert_int_equal(tsr_kv_table_create(s, "fz", &p, NULL), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "fz", &t, NULL), TSR_OK);
    atomic_bool stop;
    atomic_init(&stop, false);
    static fz_writer_t w[FZ_WRITERS];
    pthread_t th[FZ_WRITERS + 1];
    atomic_uint checkpoints;
    atomic_init(&checkpoints, 0);
    for (int i = 0; i < FZ_WRITERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].t = t;
        w[i].checkpoints = &checkpoints;
        w[i].base = (uint32_t)i * 100000;
        w[i].rng = 77 + (uint64_t)i;
        atomic_init(&w[i].done, false);
        for (int k = 0; k < FZ_KEYS; k++)
            w[i].len[k] = -1;
        assert_int_equal(pthread_create(&th[i], NULL, fz_writer, &w[i]), 0);
    }
    fz_churn_t c = {.s = s, .stop = &stop};
    assert_int_equal(pthread_create(&th[FZ_WRITERS], NULL, fz_churner, &c), 0);
    /* checkpoints back to back until every writer is done: the last one
     * overlaps the writers' last writes, and nothing writes after it, so a
     * key it failed to copy (written before its log rotation, whose older
     * logs it then deletes) is lost at reopen */
    for (;;) {
        bool all = true;
        for (int i = 0; i < FZ_WRITERS; i++)
            all = all && atomic_load(&w[i].done);
        if (all)
            break;
        assert_int_equal(tsr_kv_checkpoint(s, NULL), TSR_OK);
        atomic_fetch_add(&checkpoints, 1);
    }
    assert_true(atomic_load(&checkpoints) >= 2);
    atomic_store(&stop, true);
    for (int i = 0; i <= FZ_WRITERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(c.failed, 0);
    tsr_kv_table_close(t);
    /* the last checkpoint overlapped writes; close without another one */
    tsr_kv_close(s);
    tsr_kv_recovery_t rec;
    s = open_store(0, &rec);
    assert_true(rec.snapshot_lsn > 0);
    assert_false(rec.torn_tail);
    assert_int_equal(tsr_kv_table_open(s, "churn", &t, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(tsr_kv_table_open(s, "fz", &t, NULL), TSR_OK);
    uint64_t want = 0, cnt = 0;
    for (int i = 0; i < FZ_WRITERS; i++) {
        assert_int_equal(w[i].failed, 0);
        for (uint32_t k = 0; k < FZ_KEYS; k++) {
            uint32_t key = w[i].base + k;
            unsigned char buf[FZ_MV];
            size_t vl = 0;
            tsr_status_t rc = tsr_kv_get(t, &key, 4, buf, sizeof(buf), &vl, NULL);
            if (w[i].len[k] < 0) {
                assert_int_equal(rc, TSR_ERR_NOT_FOUND);
                continue;
            }
            want++;
            assert_int_equal(rc, TSR_OK);
            assert_int_equal(vl, (size_t)w[i].len[k]);
            assert_memory_equal(buf, w[i].v[k], vl);
        }
    }
    assert_int_equal(tsr_kv_count(t, &cnt), TSR_OK);
    assert_int_equal(cnt, want);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

/* ---- writes racing a drop --------------------------------------------------------------- */

typedef struct dr_arg {
    tsr_kv_store_t *s;
    atomic_bool *stop;
    unsigned long ok, gone;
    int failed;
} dr_arg_t;

/* Opens "x" and writes to it until stopped; a write after a drop must fail
 * NOT_FOUND (and a batch too), never reach the log. */
static void *dr_writer(void *arg)
{
    dr_arg_t *a = arg;
    uint32_t k = 0;
    while (!atomic_load(a->stop)) {
        tsr_kv_table_t *t = NULL;
        if (tsr_kv_table_open(a->s, "x", &t, NULL) != TSR_OK)
            continue; /* between a drop and the re-create */
        for (int i = 0; i < 50; i++, k++) {
            tsr_status_t rc;
            if (i % 10 == 9) {
                tsr_kv_pair_t pr[3] = {{&k, 4, &k, 4}, {&i, 4, &k, 4}, {"b", 1, &k, 4}};
                rc = tsr_kv_upsert_batch(t, pr, 3, NULL, NULL, NULL, NULL);
            } else {
                rc = tsr_kv_upsert(t, &k, 4, &k, 4, NULL, NULL);
            }
            if (rc == TSR_OK)
                a->ok++;
            else if (rc == TSR_ERR_NOT_FOUND)
                a->gone++;
            else
                a->failed++;
        }
        tsr_kv_table_close(t);
    }
    return NULL;
}

static void test_write_races_drop(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store(0, NULL);
    tsr_kv_table_params_t p = {.partitions = 2, .max_key = 4, .max_value = 4};
    assert_int_equal(tsr_kv_table_create(s, "x", &p, NULL), TSR_OK);
    atomic_bool stop;
    atomic_init(&stop, false);
    dr_arg_t a[2] = {{.s = s, .stop = &stop}, {.s = s, .stop = &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, dr_writer, &a[i]), 0);
    for (int r = 0; r < 400; r++) {
        assert_int_equal(tsr_kv_table_drop(s, "x", NULL), TSR_OK);
        assert_int_equal(tsr_kv_table_create(s, "x", &p, NULL), TSR_OK);
        if (r % 50 == 0)
            usleep(1000);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].failed, 0);
    }
    print_message("writes %lu, refused after a drop %lu\n", a[0].ok + a[1].ok,
                  a[0].gone + a[1].gone);
    tsr_kv_close(s);
    tsr_kv_recovery_t rec;
    s = open_store(0, &rec); /* every logged write names a live table */
    assert_false(rec.torn_tail);
    tsr_kv_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recover_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prealloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_during_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_races_drop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
