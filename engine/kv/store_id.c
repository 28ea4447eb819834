/*
 * store_id.c - the identity of a kv store on disk (docs/kv.md, "Delta
 * resync"): a random 64-bit id made when the store's directory is first
 * used and kept in DIR/store-id (16 hex digits and a newline).
 *
 * A cluster's scheduler refills a stale replica with only the keys it
 * missed when its worker comes back with the store the replica's copy was
 * in, told apart by this id (scheduler/kv_missed.c). So the id must change
 * whenever the store's contents stop being every write it acknowledged:
 * a data dir emptied or replaced has no store-id (a new one is made), and
 * a recovery that cuts records off the log (wal.c: a torn or corrupt
 * record; the files after it set aside) forgets the id before it cuts
 * anything: a crash between the two leaves no id, never the old one on a
 * shortened log. The preallocated zero tail is not a cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "kv_internal.h"

#define STORE_ID_FILE "store-id"

static void id_path(const char *dir, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s/" STORE_ID_FILE "%s", dir, suffix);
}

/* The id in DIR/store-id; false when absent or unreadable. */
static bool read_id(const char *dir, uint64_t *id)
{
    char path[4200], text[32] = "";
    id_path(dir, "", path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(text, sizeof(text), f) != NULL;
    fclose(f);
    char *end = NULL;
    unsigned long long v = ok ? strtoull(text, &end, 16) : 0;
    if (!ok || end != text + 16 || v == 0)
        return false;
    *id = v;
    return true;
}

tsr_status_t tsr_kv_store_id_load(const char *dir, uint64_t *id, bool *made, tsr_error_t *err)
{
    *made = false;
    if (read_id(dir, id))
        return TSR_OK;
    uint64_t v = 0;
    while (v == 0)
        if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
            return tsr_error_set(err, TSR_ERR_IO, "kv: getrandom: %s", strerror(errno));
    char path[4200], tmp[4200], text[32];
    id_path(dir, "", path, sizeof(path));
    id_path(dir, ".tmp", tmp, sizeof(tmp));
    snprintf(text, sizeof(text), "%016llx\n", (unsigned long long)v);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0 && write(fd, text, 17) == 17 && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            saved = errno;
        unlink(tmp);
        return tsr_error_set(err, TSR_ERR_IO, "kv: writing %s: %s", path, strerror(saved));
    }
    tsr_status_t rc = tsr_kv_sync_dir(dir, err);
    if (rc != TSR_OK)
        return rc;
    *id = v;
    *made = true;
    return TSR_OK;
}

tsr_status_t tsr_kv_store_id_forget(const char *dir, tsr_error_t *err)
{
    char path[4200];
    id_path(dir, "", path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        return tsr_error_set(err, TSR_ERR_IO, "kv: removing %s: %s", path, strerror(errno));
    return tsr_kv_sync_dir(dir, err);
}

uint64_t tsr_kv_store_id(const tsr_kv_store_t *s)
{
    return s ? s->store_id : 0;
}
