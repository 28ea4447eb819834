/*
 * columns_internal.h - pieces shared by the public API's table builders and
 * readers (engine/api/register.c, engine/api/query.c) and the task graph's
 * data handles (engine/graph/graph_ops.c): building a table from user columns
 * and reading one cell of a table by row number. Private to engine/.
 */
#ifndef TSR_API_COLUMNS_INTERNAL_H
#define TSR_API_COLUMNS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "table/table.h"
#include "tessera/table.h"

/* Builds a table named name (may be NULL) from ncols user columns of nrows
 * rows each: checks names (non-empty, unique ignoring case), types and values,
 * copies the values (VARCHAR into one frozen dictionary per column; a NULL
 * string pointer is a NULL value) in batches of TSR_BATCH_ROWS and computes
 * the statistics. A bad column is recorded in err; an allocation failure only
 * returned. On success *out is the caller's. */
tsr_status_t tsr_columns_build(tsr_mem_t *mem, const char *name, size_t ncols,
                               const tsr_column_data_t *cols, size_t nrows, tsr_table_t **out,
                               tsr_error_t *err);

/* The nbatches + 1 prefix sums of t's batch row counts (to find a row's
 * batch); NULL when out of memory. Freed with tsr_mem_free. */
size_t *tsr_columns_batch_starts(tsr_mem_t *mem, const tsr_table_t *t);

/* One cell: the vector holding it and the row's index in that vector (v is
 * NULL when the cell is out of range). A value, so readers take the cell as
 * one argument and never depend on argument evaluation order. */
typedef struct tsr_columns_cell {
    const tsr_vector_t *v;
    size_t i;
} tsr_columns_cell_t;

/* The cell (row, col) of t. *batch is a hint in (a batch to try first:
 * sequential reads then skip the search) and the row's batch out. */
tsr_columns_cell_t tsr_columns_cell(const tsr_table_t *t, const size_t *batch_start, size_t row,
                                    size_t col, size_t *batch);

/* Cell readers (an out-of-range cell reads as NULL). A NULL or mistyped cell
 * reads as 0, 0.0, false or "" (length 0). */
bool tsr_columns_is_null(tsr_columns_cell_t c);
int64_t tsr_columns_int64(tsr_columns_cell_t c);
double tsr_columns_double(tsr_columns_cell_t c);
bool tsr_columns_bool(tsr_columns_cell_t c);
const char *tsr_columns_string(tsr_columns_cell_t c, size_t *len);

#endif /* TSR_API_COLUMNS_INTERNAL_H */
