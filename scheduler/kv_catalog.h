/*
 * kv_catalog.h - the scheduler's kv catalog on disk (kv_catalog.c has the
 * format): <data dir>/kv-catalog, saved atomically on every change, loaded
 * at start-up, refused when corrupted. Private to scheduler/.
 */
#ifndef TSR_KV_CATALOG_H
#define TSR_KV_CATALOG_H

#include <stddef.h>

#include "proto.h"
#include "sched_internal.h"

struct skv;

/* Appends the whole catalog kv, with its checksum, to b. */
void tsr_kvcat_encode(const struct skv *kv, tsr_wbuf_t *b);
/* Adds the tables of an encoded catalog (data, len) to s's catalog; path
 * names it in errors. TSR_ERR_BAD_INPUT for a bad magic, version, checksum
 * or field. */
tsr_status_t tsr_kvcat_decode(sched_t *s, const void *data, size_t len, const char *path,
                              tsr_error_t *err);
/* Writes s's catalog to dir/kv-catalog (temp file, fsync, rename, dir fsync). */
tsr_status_t tsr_kvcat_save(sched_t *s, const char *dir, tsr_error_t *err);
/* Loads dir/kv-catalog into s's (empty) catalog; no file: no tables. */
tsr_status_t tsr_kvcat_load(sched_t *s, const char *dir, tsr_error_t *err);

/* The scheduler's small files in its data dir (the catalog, kv_missed.c's
 * missed keys): b written to dir/name.tmp, fsynced, renamed over dir/name,
 * the directory fsynced: a crash leaves the old file or the new one. */
tsr_status_t tsr_kvcat_write_file(const char *dir, const char *name, const tsr_wbuf_t *b,
                                  tsr_error_t *err);
/* fsync of dir (after a file in it was renamed or removed). */
tsr_status_t tsr_kvcat_sync_dir(const char *dir, tsr_error_t *err);
/* The whole of dir/name (at most max bytes) in *out (s->mem; the caller
 * frees it); TSR_ERR_NOT_FOUND, err untouched, when there is no such file. */
tsr_status_t tsr_kvcat_read_file(sched_t *s, const char *dir, const char *name, size_t max,
                                 uint8_t **out, size_t *out_len, tsr_error_t *err);

#endif /* TSR_KV_CATALOG_H */
