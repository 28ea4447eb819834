/*
 * cmd_kv.h - what cmd_kv.c (the `tessera kv` commands) and cmd_kv_csv.c
 * (keys and values from text: hex, sizes, the CSV of `kv load`) share.
 * Private to cli/; only in builds with the scheduler.
 */
#ifndef TSR_CMD_KV_H
#define TSR_CMD_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kv_msg.h"

typedef struct kv_args {
    const char *op, *name, *key, *value;
    unsigned long long partitions, replicas, max_key, max_value, limit;
    bool hex, header, have_limit;
    const char *scheduler, *dir, *token_file;
} kv_args_t;

typedef struct kv_desc {
    char name[TSR_KV_TABLE_NAME_MAX + 1];
    uint64_t gen;
    uint32_t nparts, nrep, max_key, max_value;
} kv_desc_t;

/* A byte string (decoded key or value). */
typedef struct kv_bytes {
    uint8_t *p;
    size_t n;
} kv_bytes_t;

typedef struct kv_pairvec {
    kv_bytes_t *keys, *vals;
    uint32_t *parts;
    size_t n, cap;
} kv_pairvec_t;

/* Decodes text (hex when hex) into out (free out->p with tsr_mem_free);
 * false after printing the error. what names it ("key", "value"). */
bool cli_kv_decode(const char *what, const char *text, size_t len, bool hex, kv_bytes_t *out);
/* Prints bytes as hex, raw, or (csv) a CSV field (RFC 4180 quoting) (cmd_kv.c). */
void cli_kv_print_field(FILE *out, const uint8_t *p, size_t n, bool hex, bool csv);
/* false after printing the error when n > max. */
bool cli_kv_check_size(const char *what, size_t n, uint32_t max);
/* The key's partition: the store's rule (docs/kv.md). */
uint32_t cli_kv_part_of(const void *key, size_t klen, uint32_t nparts);
/* Reads a->value's CSV rows (key,value; --header skips the first) into v,
 * decoded, size-checked against d and routed to partitions. Returns an exit
 * code (the error printed with file:line). */
int cli_kv_read_csv(const kv_args_t *a, const kv_desc_t *d, kv_pairvec_t *v);
void cli_kv_pairvec_free(kv_pairvec_t *v);

#endif /* TSR_CMD_KV_H */
