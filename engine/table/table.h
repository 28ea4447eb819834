/*
 * table.h - columnar tables: vectors, batches (row groups) and tables.
 *
 * Layout. A table is a schema plus a list of batches of at most TSR_BATCH_ROWS
 * rows; a batch holds one vector per column. Operators work batch at a time and
 * run batches in parallel (one batch = one morsel for the thread pool).
 *
 * Vectors. data points at len values of the vector's physical type:
 *   BOOL -> uint8_t (0/1)   INT64 -> int64_t   DOUBLE -> double
 *   VARCHAR -> uint32_t codes into dict (a frozen tsr_dict_t shared by every
 *              batch of the column; the table owns it, see tsr_table_t.dicts)
 * validity is a bitmap (bit i of word i/64 set = row i is valid, i.e. not NULL);
 * validity == NULL means "no NULLs". Values under a NULL are unspecified but
 * initialised (operators may read them, never trust them).
 *
 * Ownership. A vector either owns its buffers (owned_data/owned_validity, freed
 * by tsr_vector_release) or borrows them from something that outlives it (an
 * operator's output borrowing the input table's columns: a scan copies nothing).
 * Buffers are 64-byte aligned when the engine allocates them.
 *
 * Tables as relations. Operators consume and produce tsr_table_t: the catalog's
 * tables, intermediate results and the final query result are all tables.
 * A table that borrows from another must be destroyed first; when the lender is
 * an intermediate result, the borrower takes ownership of it as a dependency
 * (tsr_table_add_dep) so it lives exactly as long as needed. Catalog tables are
 * never dependencies: they outlive every query result.
 */
#ifndef TSR_TABLE_TABLE_H
#define TSR_TABLE_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "table/dict.h"
#include "tessera/status.h"
#include "tessera/types.h"

#define TSR_BATCH_ROWS 8192

typedef struct tsr_vector {
    tsr_type_t type;
    size_t len;
    void *data;               /* len values, see above */
    uint64_t *validity;       /* NULL: all valid */
    const tsr_dict_t *dict;   /* VARCHAR: the dictionary codes refer to */
    void *owned_data;         /* freed on release (NULL when borrowed) */
    uint64_t *owned_validity; /* freed on release (NULL when borrowed) */
} tsr_vector_t;

typedef struct tsr_batch {
    size_t nrows;
    tsr_vector_t *cols; /* ncols vectors (ncols is the table's) */
} tsr_batch_t;

typedef struct tsr_field {
    char *name; /* owned; as the user wrote it (lookups are case-insensitive) */
    tsr_type_t type;
} tsr_field_t;

/* Statistics of one column, kept so operators can choose a plan without a pass
 * over the data (the perfect-hash aggregation reads INT64 key ranges). Only
 * INT64 columns have them; known=false means not computed. When known, every
 * non-NULL value v of the column has min <= v <= max (a column with no
 * non-NULL value has min = max = 0). */
typedef struct tsr_colstats {
    bool known;
    int64_t min, max;
} tsr_colstats_t;

/* Columns loaded on demand (projection pushdown: a CSV file registered is
 * parsed only for the columns queries reference, see csv.h). Until its first
 * load the table has its schema and no batches; after it, every batch has all
 * ncols vectors, but those of a column not loaded have type and len and no
 * data. The loader may widen a column's type when it loads it (CSV type
 * widening), so callers load before they rely on the types of those columns. */
struct tsr_table;
typedef struct tsr_table_lazy {
    bool *loaded; /* ncols */
    bool rows;    /* the batches exist (the first load ran) */
    void *state;  /* the loader's, freed with destroy */
    /* Loads the columns cols[c] (only ones not loaded); the first call also
     * creates the batches. Sets loaded[] and rows on success. cancel (may
     * be NULL): a flag the loader polls while it parses; once non-zero it
     * stops with TSR_ERR_CANCELLED, nothing loaded (a later load may retry). */
    tsr_status_t (*load)(struct tsr_table *t, void *state, const bool *cols,
                         const atomic_int *cancel, tsr_error_t *err);
    void (*destroy)(tsr_mem_t *mem, void *state);
} tsr_table_lazy_t;

typedef struct tsr_table {
    tsr_mem_t *mem;
    char *name; /* owned; may be NULL for intermediate results */
    size_t ncols;
    tsr_field_t *fields; /* ncols */
    tsr_dict_t **dicts;  /* ncols; dictionaries this table owns (NULL entries:
                            not VARCHAR, or borrowed from another table) */
    size_t nbatches;
    size_t batches_cap;
    tsr_batch_t *batches;
    size_t nrows;            /* sum of batches' nrows */
    struct tsr_table **deps; /* tables this one borrows buffers or dictionaries from
                                and owns: destroyed after it (tsr_table_add_dep) */
    size_t ndeps;
    size_t deps_cap;
    tsr_colstats_t *stats;  /* ncols entries, or NULL: none known. Dropped by
                               tsr_table_append_batch, so they never go stale */
    tsr_table_lazy_t *lazy; /* NULL: every column is loaded (see above) */
} tsr_table_t;

/* ---- validity bitmaps ------------------------------------------------------ */

static inline size_t tsr_bitmap_words(size_t n)
{
    return (n + 63) / 64;
}
static inline bool tsr_bit_get(const uint64_t *bm, size_t i)
{
    return !bm || ((bm[i >> 6] >> (i & 63)) & 1u);
}
static inline void tsr_bit_set(uint64_t *bm, size_t i, bool v)
{
    uint64_t m = (uint64_t)1 << (i & 63);
    if (v)
        bm[i >> 6] |= m;
    else
        bm[i >> 6] &= ~m;
}
static inline bool tsr_vector_is_null(const tsr_vector_t *v, size_t i)
{
    return !tsr_bit_get(v->validity, i);
}

/* Size in bytes of one value of a physical type (BOOL 1, VARCHAR 4 (code)). */
size_t tsr_type_width(tsr_type_t type);

/* ---- vectors --------------------------------------------------------------- */

/* Allocates an owned vector of len values (uninitialised data) and, when
 * with_validity, an all-valid bitmap. dict is stored for VARCHAR. */
tsr_status_t tsr_vector_alloc(tsr_mem_t *mem, tsr_type_t type, size_t len, bool with_validity,
                              const tsr_dict_t *dict, tsr_vector_t *out);
/* Adds an all-valid owned bitmap to a vector that has none (copies a borrowed one). */
tsr_status_t tsr_vector_ensure_validity(tsr_mem_t *mem, tsr_vector_t *v);
/* A vector viewing src's buffers without owning them. */
tsr_vector_t tsr_vector_borrow(const tsr_vector_t *src);
void tsr_vector_release(tsr_mem_t *mem, tsr_vector_t *v);

/* ---- tables ---------------------------------------------------------------- */

/* An empty table (no batches) with the given schema; names are copied. */
tsr_status_t tsr_table_create(tsr_mem_t *mem, const char *name, size_t ncols,
                              const char *const *names, const tsr_type_t *types, tsr_table_t **out);
void tsr_table_destroy(tsr_table_t *t);

/* Appends a batch; the table takes ownership of batch->cols (an array of
 * ncols vectors allocated with tsr_mem_alloc) and of the vectors' owned buffers. */
tsr_status_t tsr_table_append_batch(tsr_table_t *t, size_t nrows, tsr_vector_t *cols);

/* Computes the statistics of every INT64 column (one pass over the data). */
tsr_status_t tsr_table_compute_stats(tsr_table_t *t);

/* Sets column col's statistics to *st (copied). */
tsr_status_t tsr_table_set_stats(tsr_table_t *t, size_t col, const tsr_colstats_t *st);

/* Column col's statistics, or NULL when not known. */
static inline const tsr_colstats_t *tsr_table_stats(const tsr_table_t *t, size_t col)
{
    return t->stats && col < t->ncols && t->stats[col].known ? &t->stats[col] : NULL;
}

/* Makes sure the columns need[c] (need NULL: all) of a lazy table are loaded,
 * and its batches exist; a no-op for other tables. Not thread-safe: the
 * caller (query planning) runs alone on the table. Errors (e.g. a malformed
 * CSV row, with file:line:column) go to err. */
tsr_status_t tsr_table_load_columns(tsr_table_t *t, const bool *need, tsr_error_t *err);
/* The same, stopping with TSR_ERR_CANCELLED ("cancelled", nothing loaded)
 * once *cancel (may be NULL) is non-zero: the parse polls it every batch of
 * rows, so a cancelled query does not first parse a whole file. */
tsr_status_t tsr_table_load_columns_cancel(tsr_table_t *t, const bool *need,
                                           const atomic_int *cancel, tsr_error_t *err);

/* Whether column col's values can be read (loaded, or the table is not lazy). */
static inline bool tsr_table_column_loaded(const tsr_table_t *t, size_t col)
{
    return !t->lazy || (t->lazy->rows && t->lazy->loaded[col]);
}

/* Column index by case-insensitive name; -1 when absent. */
long tsr_table_find_column(const tsr_table_t *t, const char *name);

/* Makes t own dep (destroyed after t). On failure dep stays the caller's. */
tsr_status_t tsr_table_add_dep(tsr_table_t *t, tsr_table_t *dep);

/* Hands a dictionary to the table (freed with it) for column col. */
void tsr_table_adopt_dict(tsr_table_t *t, size_t col, tsr_dict_t *dict);

#endif /* TSR_TABLE_TABLE_H */
