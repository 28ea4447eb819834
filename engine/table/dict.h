/*
 * dict.h - string dictionary: the storage behind VARCHAR columns.
 *
 * A VARCHAR vector stores uint32_t codes; the column's dictionary maps codes to
 * byte strings. Each distinct string is stored once (interned), so equality,
 * grouping and hashing of one column work on codes. Codes are dense: 0..size-1
 * in insertion order.
 *
 * Life cycle: build with tsr_dict_intern (single writer), then tsr_dict_freeze,
 * which computes per-code hashes (tsr_hash_bytes of the string, so equal strings
 * from two different dictionaries hash alike: joins across tables) and sort
 * ranks (rank[code] orders codes by memcmp order of their strings: ORDER BY,
 * MIN/MAX, < > on strings without touching bytes). A frozen dictionary is
 * immutable and may be read by any number of threads.
 */
#ifndef TSR_TABLE_DICT_H
#define TSR_TABLE_DICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "tessera/status.h"

typedef struct tsr_dict tsr_dict_t;

tsr_status_t tsr_dict_create(tsr_mem_t *mem, tsr_dict_t **out);
void tsr_dict_destroy(tsr_dict_t *dict);

/* Returns the code of s (adding it when new). Not allowed after freeze. */
tsr_status_t tsr_dict_intern(tsr_dict_t *dict, const char *s, size_t len, uint32_t *code_out);
/* Looks s up without adding it. */
bool tsr_dict_find(const tsr_dict_t *dict, const char *s, size_t len, uint32_t *code_out);

uint32_t tsr_dict_size(const tsr_dict_t *dict);
/* The bytes of code (NUL-terminated for convenience); *len_out may be NULL. */
const char *tsr_dict_get(const tsr_dict_t *dict, uint32_t code, size_t *len_out);

/* Computes hashes and ranks; idempotent. */
tsr_status_t tsr_dict_freeze(tsr_dict_t *dict);
bool tsr_dict_frozen(const tsr_dict_t *dict);
/* After freeze: hash[code] == tsr_hash_bytes(string), rank[code] in [0,size). */
const uint64_t *tsr_dict_hashes(const tsr_dict_t *dict);
const uint32_t *tsr_dict_ranks(const tsr_dict_t *dict);

#endif /* TSR_TABLE_DICT_H */
