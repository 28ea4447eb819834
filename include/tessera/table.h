/*
 * tessera/table.h - registering tables in a context.
 */
#ifndef TESSERA_TABLE_H
#define TESSERA_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/context.h"
#include "tessera/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_csv_params {
    char delimiter;     /* 0 means ',' */
    const char *schema; /* NULL, or type overrides "name:type,..." (int64, double, varchar, bool) */
} tsr_csv_params_t;

/* Loads a CSV file (header row required) as table `name` (replacing one of the
 * same name). params may be NULL. Malformed input: TSR_ERR_BAD_INPUT with the
 * file, line and column in tsr_context_last_error. The file's bytes are read
 * now, with the header and type inference (their errors are reported here);
 * values are converted when a query first reads their column (projection
 * pushdown), so errors in the rows come from that query (docs/sql.md). */
tsr_status_t tsr_table_register_csv(tsr_context_t *ctx, const char *name, const char *path,
                                    const tsr_csv_params_t *params);

/* One column of in-memory data for tsr_table_register_columns. */
typedef struct tsr_column_data {
    const char *name;
    tsr_type_t type;       /* BOOL, INT64, DOUBLE or VARCHAR */
    const void *values;    /* nrows of: bool, int64_t, double, const char * (NUL-terminated) */
    const bool *nulls;     /* NULL = no NULLs; else nulls[i] true = row i is NULL */
} tsr_column_data_t;

/* Copies ncols columns of nrows rows into a new table `name`. */
tsr_status_t tsr_table_register_columns(tsr_context_t *ctx, const char *name, size_t ncols,
                                        const tsr_column_data_t *cols, size_t nrows);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_TABLE_H */
