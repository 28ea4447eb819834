/*
 * csv_internal.h - private interface between the parts of the CSV reader.
 *
 * The reader is split in three files:
 *   csv.c        the public entry points, file reading, header and schema,
 *                chunking and the driver (passes, widening, errors)
 *   csv_parse.c  the tokenizer, value parsing (integers, doubles, booleans),
 *                type inference over the sample and the per-chunk parser
 *   csv_build.c  merging per-chunk dictionaries and packing per-chunk columns
 *                into the table's batches of TSR_BATCH_ROWS rows
 *
 * Data flow: the whole input is one byte buffer (`base`). The body (rows after
 * the header) is split into chunks at row boundaries; each chunk is parsed on
 * its own into growable per-column arrays (tsr_csv_chunk_t) with its own
 * dictionaries; the build step then copies them into full batches, remapping
 * string codes into one dictionary per column. Errors are recorded as a byte
 * offset into `base` and turned into file:line:column once, at the end, by the
 * driver (so chunk parsers need not count lines).
 */
#ifndef TSR_TABLE_CSV_INTERNAL_H
#define TSR_TABLE_CSV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "table/csv.h"
#include "table/dict.h"
#include "table/table.h"

/* Knobs for tests: small chunks exercise the parallel path on small inputs. */
typedef struct tsr_csv_tuning {
    size_t chunk_bytes; /* nominal bytes per parallel chunk; 0 = automatic */
} tsr_csv_tuning_t;

/* tsr_csv_read_buffer with tuning (NULL = automatic). */
tsr_status_t tsr_csv_read_buffer_tuned(tsr_mem_t *mem, tsr_pool_t *pool, const char *data,
                                       size_t len, const char *display_name,
                                       const char *table_name, const tsr_csv_options_t *opts,
                                       const tsr_csv_tuning_t *tuning, tsr_table_t **out,
                                       tsr_error_t *err);

/* The first error a parser met: the driver turns off into line:column. */
typedef struct tsr_csv_fail {
    tsr_status_t status; /* TSR_OK while none */
    size_t off;          /* byte offset into the buffer of the offending place */
    char msg[320];
} tsr_csv_fail_t;

/* A growable byte buffer (unescaped quoted fields, strtod copies). */
typedef struct tsr_csv_buf {
    char *p;
    size_t cap;
} tsr_csv_buf_t;

/* The reader's fixed facts, shared read-only by every chunk parser. */
typedef struct tsr_csv_reader {
    tsr_mem_t *mem;
    const char *base;      /* the whole input */
    size_t len;
    char delim;
    uint8_t special[256];  /* 1 for bytes that end an unquoted run: delim " \r \n */
    size_t ncols;
    char **names;          /* ncols header names (owned) */
    tsr_type_t *types;     /* ncols current column types */
    bool *fixed;           /* ncols: type given by the schema (misfit = error) */
    size_t body_begin;     /* offset of the first data row */
    size_t body_end;       /* offset after the last data row (trailing blank lines cut) */
    double row_bytes;      /* average bytes per row in the sample (0: unknown) */
} tsr_csv_reader_t;

/* One column of one chunk: values of the reader's type for that column. */
typedef struct tsr_csv_ccol {
    void *data;            /* cap values (uint32 codes for VARCHAR) */
    uint64_t *validity;    /* NULL until the first NULL; then cap bits + a padding word */
    tsr_dict_t *dict;      /* VARCHAR: this chunk's dictionary */
    uint32_t *remap;       /* after the merge: local code -> column code (NULL: identity) */
    tsr_type_t need;       /* inference: join of the kinds of values that did not fit */
} tsr_csv_ccol_t;

/* One chunk: a byte range of whole rows, and what parsing it produced. */
typedef struct tsr_csv_chunk {
    size_t begin, end;     /* byte range in the buffer */
    size_t nrows;
    size_t cap;            /* rows the column arrays can hold */
    size_t first_row;      /* global index of the chunk's first row (set by the driver) */
    tsr_csv_ccol_t *cols;  /* ncols (NULL before parsing) */
    tsr_csv_buf_t scratch; /* unescaped quoted fields */
    tsr_csv_buf_t numbuf;  /* NUL-terminated copies for strtod */
    tsr_csv_fail_t fail;
} tsr_csv_chunk_t;

/* A field as the tokenizer returns it: the bytes between the quotes, unescaped
 * (then s points into the chunk's scratch buffer). */
typedef struct tsr_csv_field {
    const char *s;
    size_t len;
    bool quoted;
} tsr_csv_field_t;

/* ---- csv_parse.c ----------------------------------------------------------- */

/* Records the first failure of a parser (later ones are dropped). Returns status. */
tsr_status_t tsr_csv_fail(tsr_csv_fail_t *fail, tsr_status_t status, size_t off, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

/* Scans the field starting at p (p <= end). Returns the position of its
 * terminator (a delimiter, a line end or end), or NULL after recording an error. */
const char *tsr_csv_scan_field(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, const char *p,
                               const char *end, tsr_csv_field_t *f);

/* Moves past the terminator at p (which scan_field returned): sets *at_delim. */
const char *tsr_csv_skip_terminator(const tsr_csv_reader_t *rd, const char *p, const char *end,
                                    bool *at_delim);

/* The kind of a value for inference: TSR_TYPE_NULL (empty), BOOL, INT64,
 * DOUBLE or VARCHAR. */
tsr_type_t tsr_csv_classify(const char *s, size_t len);
/* The narrowest type holding values of kinds a and b (NULL is the identity). */
tsr_type_t tsr_csv_join(tsr_type_t a, tsr_type_t b);

/* Value parsers (whole string must match). parse_double returns 1 ok, 0 not a
 * double, -1 out of memory (long numbers are copied into numbuf for strtod). */
bool tsr_csv_parse_int64(const char *s, size_t len, int64_t *out);
bool tsr_csv_parse_bool(const char *s, size_t len, uint8_t *out);
int tsr_csv_parse_double(tsr_mem_t *mem, tsr_csv_buf_t *numbuf, const char *s, size_t len,
                         double *out);

/* Infers the types of the columns not fixed by the schema from the first
 * sample_rows rows of the body; stops early (silently) at malformed input,
 * which the chunk parsers report. Sets rd->row_bytes. Uses ck for scratch. */
tsr_status_t tsr_csv_infer(tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, size_t sample_rows);

/* Parses ck->begin..ck->end into ck's columns with rd->types. */
tsr_status_t tsr_csv_parse_chunk(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck);

/* Frees what parsing put into ck (keeps begin/end, resets the rest). */
void tsr_csv_chunk_reset(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck);

/* ---- csv_build.c ----------------------------------------------------------- */

/* Builds the table from parsed chunks (first_row set): one frozen dictionary
 * per VARCHAR column, batches of TSR_BATCH_ROWS rows. */
tsr_status_t tsr_csv_build(const tsr_csv_reader_t *rd, tsr_pool_t *pool, tsr_csv_chunk_t *chunks,
                           size_t nchunks, const char *table_name, tsr_table_t **out);

#endif /* TSR_TABLE_CSV_INTERNAL_H */
