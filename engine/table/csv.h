/*
 * csv.h - loading CSV files into columnar tables.
 *
 * Format: RFC 4180 (fields may be "quoted", with "" for a quote and commas,
 * CR/LF inside quotes), a header row naming the columns, a configurable
 * one-byte delimiter, LF or CRLF line ends, an optional final newline, UTF-8
 * (a leading BOM is skipped). An empty unquoted field is NULL; "" (quoted
 * empty) is the empty string for VARCHAR and NULL for other types.
 *
 * Types are inferred from a sample of rows (BOOL: true/false; INT64; DOUBLE;
 * otherwise VARCHAR), unless a schema string overrides some or all columns:
 * "name:type[,name:type...]" with type one of int64|bigint|integer|int,
 * double|float|real, varchar|text|string, bool|boolean. A value later in the
 * file that does not fit its inferred type widens the column (INT64 -> DOUBLE
 * -> VARCHAR) rather than failing; a value that does not fit an explicit
 * schema type is an error.
 *
 * Errors are TSR_ERR_BAD_INPUT (exit 2) with err->file/line/column set to the
 * offending place and a message saying what was expected, e.g.
 * "unterminated quoted field" or "expected 3 fields, found 4"; a missing file
 * is TSR_ERR_NOT_FOUND. No input crashes or hangs the reader.
 *
 * Large inputs are parsed in parallel: the file is split into chunks at row
 * boundaries (quote-aware) and parsed on the pool's threads.
 */
#ifndef TSR_TABLE_CSV_H
#define TSR_TABLE_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/pool.h"
#include "table/table.h"

typedef struct tsr_csv_options {
    char delimiter;     /* 0 means ',' */
    const char *schema; /* NULL or "name:type,..." overrides */
    size_t sample_rows; /* rows used for type inference; 0 means the default (20000) */
} tsr_csv_options_t;

/* Reads the file at path into a new table named table_name. opts may be NULL. */
tsr_status_t tsr_csv_read_file(tsr_mem_t *mem, tsr_pool_t *pool, const char *path,
                               const char *table_name, const tsr_csv_options_t *opts,
                               tsr_table_t **out, tsr_error_t *err);

/* Same, from memory; display_name is used as the file name in errors. */
tsr_status_t tsr_csv_read_buffer(tsr_mem_t *mem, tsr_pool_t *pool, const char *data, size_t len,
                                 const char *display_name, const char *table_name,
                                 const tsr_csv_options_t *opts, tsr_table_t **out,
                                 tsr_error_t *err);

/* Opens the file at path for loading on demand (projection pushdown): reads
 * its bytes and runs the header, the schema and type inference now (their
 * errors are reported here, as by tsr_csv_read_file), but converts no value.
 * The table has the file's schema and no batch; tsr_table_load_columns parses
 * the body for the columns asked for - all rows are still split and checked,
 * so malformed rows and wrong field counts fail every load with
 * file:line:column, while a value that does not fit its column's type fails
 * (or widens the column) only when that column is loaded. The file's bytes are
 * kept until every column is loaded (or the table is destroyed). */
tsr_status_t tsr_csv_open_file(tsr_mem_t *mem, tsr_pool_t *pool, const char *path,
                               const char *table_name, const tsr_csv_options_t *opts,
                               tsr_table_t **out, tsr_error_t *err);

#endif /* TSR_TABLE_CSV_H */
