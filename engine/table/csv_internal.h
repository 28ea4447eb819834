/*
 * csv_internal.h - private interface between the parts of the CSV reader.
 *
 * The reader is split in these files:
 *   csv.c        the public entry points, header and schema, chunking and the
 *                driver (passes, widening, errors)
 *   csv_file.c   reading a file's bytes (parallel pread)
 *   csv_lazy.c   tables whose columns load on demand (projection pushdown)
 *   csv_parse.c  the tokenizer, value parsing (integers, doubles, booleans)
 *                and type inference over the sample
 *   csv_chunk.c  the per-chunk parser: fields straight into batches
 *   csv_build.c  merging per-chunk strings into one dictionary per column
 *                and moving the chunks' batches into the table
 *
 * Data flow: the whole input is one byte buffer (`base`). The body (rows after
 * the header) is split into chunks at row boundaries, each holding a multiple
 * of chunk_rows (TSR_BATCH_ROWS) rows but the last; each chunk is parsed on
 * its own straight into batches of TSR_BATCH_ROWS rows (tsr_csv_chunk_t) with
 * its own dictionaries; the build step merges the dictionaries into one per
 * column, remaps codes in place and moves the batches into the table - no
 * value is copied. Since chunks hold whole batches, every batch of the table
 * but the last is full. Errors are recorded as a byte
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

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Knobs for tests: small chunks exercise the parallel path on small inputs. */
typedef struct tsr_csv_tuning {
    size_t chunk_bytes; /* nominal bytes per parallel chunk; 0 = automatic */
    size_t chunk_rows;  /* chunks hold a multiple of this many rows; 0 = TSR_BATCH_ROWS
                           (smaller values give short batches mid-table: tests only) */
} tsr_csv_tuning_t;

/* tsr_csv_read_buffer with tuning (NULL = automatic). */
tsr_status_t tsr_csv_read_buffer_tuned(tsr_mem_t *mem, tsr_pool_t *pool, const char *data,
                                       size_t len, const char *display_name, const char *table_name,
                                       const tsr_csv_options_t *opts,
                                       const tsr_csv_tuning_t *tuning, tsr_table_t **out,
                                       tsr_error_t *err);

/* tsr_csv_open_file over a copy of data[0..len), with tuning (tests). */
tsr_status_t tsr_csv_open_buffer_tuned(tsr_mem_t *mem, tsr_pool_t *pool, const char *data,
                                       size_t len, const char *display_name, const char *table_name,
                                       const tsr_csv_options_t *opts,
                                       const tsr_csv_tuning_t *tuning, tsr_table_t **out,
                                       tsr_error_t *err);

/* tsr_csv_open_file over data[0..len) itself, allocated with mem: owned by
 * the table from here on (freed on failure too). No copy (cluster workers:
 * scheduler/worker_task.c). display_name names the input in errors. */
tsr_status_t tsr_csv_open_owned(tsr_mem_t *mem, tsr_pool_t *pool, char *data, size_t len,
                                const char *display_name, const char *table_name,
                                const tsr_csv_options_t *opts, tsr_table_t **out,
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
    const char *base; /* the whole input */
    size_t len;
    char delim;
    uint8_t special[256]; /* 1 for bytes that end an unquoted run: delim " \r \n */
    size_t ncols;
    char **names;      /* ncols header names (owned) */
    tsr_type_t *types; /* ncols current column types */
    bool *fixed;       /* ncols: type given by the schema (misfit = error) */
    const bool *skip;  /* ncols, or NULL: columns whose values are not wanted
                          (projection pushdown): their fields are still delimited
                          and quote-checked, never converted; their vectors have
                          no data */
    const atomic_int *cancel; /* or NULL: parsing stops (chunk fails TSR_ERR_CANCELLED)
                                 at the next batch of rows once it is non-zero */
    size_t bom;        /* bytes of a UTF-8 BOM before the header (0 or 3) */
    size_t body_begin; /* offset of the first data row */
    size_t body_end;   /* offset after the last data row (trailing blank lines cut) */
} tsr_csv_reader_t;

/* A chunk's strings of one VARCHAR column: an open-addressing set of 32-byte
 * slots holding the hash, the code and the string itself when short (else a
 * pointer to a copy in the chunk's arena), so a repeated field usually costs
 * one cache line - about half the misses of tsr_dict_intern on a large
 * dictionary, and interning is the hot path of string columns. Codes are
 * dense, in order of first appearance. The column's tsr_dict_t is built from
 * these at the end, once per distinct string per chunk rather than per row. */
#define TSR_CSV_INLINE 16 /* strings up to this long live in the slot itself */

typedef struct tsr_csv_sentry {
    uint64_t hash; /* tsr_hash_bytes(s, len) */
    uint32_t len;
    uint32_t code; /* UINT32_MAX: empty slot */
    union {
        char inl[TSR_CSV_INLINE]; /* len <= TSR_CSV_INLINE: the bytes, zero-padded */
        const char *ptr;          /* longer: a copy in the chunk's arena */
    } u;
} tsr_csv_sentry_t;

static inline const char *tsr_csv_sentry_bytes(const tsr_csv_sentry_t *e)
{
    return e->len <= TSR_CSV_INLINE ? e->u.inl : e->u.ptr;
}

typedef struct tsr_csv_smap {
    tsr_csv_sentry_t *slots;
    size_t nslots; /* power of two, load factor <= 1/2 */
    size_t count;
} tsr_csv_smap_t;

/* What one chunk knows about one column besides its values. */
typedef struct tsr_csv_ccol {
    tsr_csv_smap_t map; /* VARCHAR: this chunk's strings */
    uint32_t *remap;    /* after the merge: local code -> column code (NULL: identity) */
    tsr_type_t need;    /* inference: join of the kinds of values that did not fit */
} tsr_csv_ccol_t;

/* One chunk: a byte range of whole rows, and the batches parsing it produced.
 * Each batch is an array of ncols owned vectors allocated for at most
 * TSR_BATCH_ROWS values, with len = the batch's rows; a vector has a validity bitmap only if
 * a NULL fell into it. */
typedef struct tsr_csv_chunk {
    size_t begin, end;      /* byte range in the buffer */
    size_t nrows;           /* rows parsed */
    tsr_vector_t **batches; /* nbatches arrays of ncols vectors */
    size_t nbatches;
    size_t batches_cap;
    tsr_csv_ccol_t *cols;  /* ncols (NULL before parsing) */
    tsr_arena_t arena;     /* copies of unescaped quoted strings kept in the maps */
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

/* ---- scanning helpers shared by the tokenizer and the chunk parser (inline:
 * they are the inner loops) ------------------------------------------------- */

static inline bool csv_is_digit(char c)
{
    return (unsigned)((unsigned char)c - '0') < 10u;
}

/* True when q is where a field ends: end of input, delimiter, LF, or CR that
 * starts a CRLF or ends the input. */
static inline bool csv_at_term(const char *q, const char *end, char delim)
{
    if (q == end)
        return true;
    char ch = *q;
    if (ch == delim || ch == '\n')
        return true;
    return ch == '\r' && (q + 1 == end || q[1] == '\n');
}

/* First byte in [p, end) that is special (delimiter, quote, CR, LF), or end. */
static inline const char *csv_scan_unquoted(const tsr_csv_reader_t *rd, const char *p,
                                            const char *end)
{
#ifdef __SSE2__
    const __m128i vd = _mm_set1_epi8(rd->delim);
    const __m128i vq = _mm_set1_epi8('"');
    const __m128i vn = _mm_set1_epi8('\n');
    const __m128i vr = _mm_set1_epi8('\r');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vd), _mm_cmpeq_epi8(v, vq)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, vn), _mm_cmpeq_epi8(v, vr)));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && !rd->special[(uint8_t)*p])
        p++;
    return p;
}

/* A decimal number as scanned: value = (neg ? -1 : 1) * w * 10^exp, exactly
 * when exact (no nonzero digit was dropped past the 19 kept). */
typedef struct csv_dec {
    uint64_t w;
    int64_t exp;
    bool neg;
    bool exact;
} csv_dec_t;

/* The longest prefix of [s, end) with the number grammar; returns s if none. */
static inline __attribute__((always_inline)) const char *
csv_scan_decimal(const char *s, const char *end, csv_dec_t *d)
{
    const char *p = s;
    bool neg = false;
    if (p < end && (*p == '+' || *p == '-')) {
        neg = *p == '-';
        p++;
    }
    uint64_t w = 0;
    int nd = 0; /* significant digits in w (leading zeros do not count) */
    int64_t exp = 0;
    bool exact = true, any = false;
    while (p < end && csv_is_digit(*p)) {
        unsigned dg = (unsigned)(*p - '0');
        any = true;
        if (nd < 19) {
            w = w * 10 + dg;
            nd += w != 0;
        } else {
            exp++;
            exact &= dg == 0;
        }
        p++;
    }
    if (p < end && *p == '.') {
        const char *q = p + 1;
        while (q < end && csv_is_digit(*q)) {
            unsigned dg = (unsigned)(*q - '0');
            any = true;
            if (nd < 19) {
                w = w * 10 + dg;
                nd += w != 0;
                exp--;
            } else {
                exact &= dg == 0;
            }
            q++;
        }
        if (any)
            p = q;
    }
    if (!any)
        return s;
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        bool eneg = false;
        if (q < end && (*q == '+' || *q == '-')) {
            eneg = *q == '-';
            q++;
        }
        if (q < end && csv_is_digit(*q)) {
            int64_t e = 0;
            while (q < end && csv_is_digit(*q)) {
                if (e < 100000000) /* saturate: far beyond any double's range */
                    e = e * 10 + (*q - '0');
                q++;
            }
            exp += eneg ? -e : e;
            p = q;
        }
    }
    d->w = w;
    d->exp = exp;
    d->neg = neg;
    d->exact = exact;
    return p;
}

/* Clinger's fast path: w and 10^|exp| are exact doubles, so one multiply or
 * divide rounds once, correctly, exactly like strtod. */
static inline bool csv_dec_fast(const csv_dec_t *d, double *out)
{
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double v;
    if (d->w == 0) {
        v = 0.0;
    } else {
        if (!d->exact || d->w > ((uint64_t)1 << 53) || d->exp < -22 || d->exp > 22)
            return false;
        v = (double)(int64_t)d->w; /* exact (w <= 2^53); one cvtsi2sd, unlike from uint64 */
        v = d->exp < 0 ? v / p10[-d->exp] : v * p10[d->exp];
    }
    *out = d->neg ? -v : v;
    return true;
}

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
 * which the chunk parsers report. Uses ck for scratch. */
tsr_status_t tsr_csv_infer(tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, size_t sample_rows);

/* ---- csv.c ------------------------------------------------------------------ */

/* Steps 1-3 of a read over data[0..len): header, schema, type inference and
 * the chunk plan (*chunks: nchunks byte ranges, unparsed). On failure err is
 * set. Either way tsr_csv_reader_fini frees what rd took, and the caller
 * frees *chunks. */
tsr_status_t tsr_csv_prepare(tsr_csv_reader_t *rd, tsr_mem_t *mem, tsr_pool_t *pool,
                             const char *data, size_t len, const char *name,
                             const tsr_csv_options_t *opts, const tsr_csv_tuning_t *tuning,
                             tsr_csv_chunk_t **chunks, size_t *nchunks, tsr_error_t *err);

/* Step 4: parses every chunk in parallel (columns in rd->skip are only
 * delimited), widening inferred types until they hold every parsed value; the
 * input's first error goes to err with file:line:column. The chunks keep what
 * was parsed (reset them in any case). */
tsr_status_t tsr_csv_parse_all(tsr_csv_reader_t *rd, tsr_pool_t *pool, tsr_csv_chunk_t *chunks,
                               size_t nchunks, const char *name, tsr_error_t *err);

void tsr_csv_reader_fini(tsr_csv_reader_t *rd);

/* Nominal bytes per parallel chunk (or file piece) of an input of len bytes. */
size_t tsr_csv_chunk_bytes(size_t len, tsr_pool_t *pool, const tsr_csv_tuning_t *tuning);

/* The whole file at path in a new buffer (*buf, owned by the caller; NULL
 * and 0 for an empty file): regular files are read in parallel pieces. */
tsr_status_t tsr_csv_file_bytes(tsr_mem_t *mem, tsr_pool_t *pool, const char *path, char **buf,
                                size_t *len, tsr_error_t *err);

/* The bytes [0, header_end) then [start, end) of the open file fd in a new
 * buffer (*buf, owned by the caller): a byte range of whole rows under its
 * file's header, read like tsr_csv_file_bytes. path names fd in errors; a
 * file shorter than end is TSR_ERR_IO. */
tsr_status_t tsr_csv_fd_range_bytes(tsr_mem_t *mem, tsr_pool_t *pool, int fd, const char *path,
                                    uint64_t header_end, uint64_t start, uint64_t end, char **buf,
                                    size_t *len, tsr_error_t *err);

/* ---- csv_chunk.c ----------------------------------------------------------- */

/* Parses ck->begin..ck->end into ck's batches with rd->types. */
tsr_status_t tsr_csv_parse_chunk(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck);

/* Frees what parsing put into ck (keeps begin/end, resets the rest). */
void tsr_csv_chunk_reset(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck);

/* ---- csv_build.c ----------------------------------------------------------- */

/* Builds the table from parsed chunks: one frozen dictionary per VARCHAR
 * column, codes remapped, batches moved out of the chunks into the table. */
tsr_status_t tsr_csv_build(const tsr_csv_reader_t *rd, tsr_pool_t *pool, tsr_csv_chunk_t *chunks,
                           size_t nchunks, const char *table_name, tsr_table_t **out);

#endif /* TSR_TABLE_CSV_INTERNAL_H */
