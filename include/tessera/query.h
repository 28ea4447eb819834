/*
 * tessera/query.h - running SQL and reading results.
 *
 * A result is a materialised table of typed columns; read it by row and column
 * index. Values of a column must be read with the accessor of its type
 * (tsr_result_column_type); reading a NULL returns 0/0.0/""/false.
 * A result must be destroyed before its context, and like the context it is
 * not thread-safe to destroy concurrently with other calls on the context.
 * Replacing a table a live result was computed from is safe: the context
 * keeps the old table until its last live result is destroyed.
 */
#ifndef TESSERA_QUERY_H
#define TESSERA_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/context.h"
#include "tessera/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_result tsr_result_t;

/* Runs one SELECT statement. Errors: TSR_ERR_SYNTAX / TSR_ERR_TYPE (bad query,
 * with line and column), TSR_ERR_NOT_FOUND (unknown table or column, with a
 * hint), TSR_ERR_OVERFLOW (integer overflow while computing). */
tsr_status_t tsr_query(tsr_context_t *ctx, const char *sql, tsr_result_t **out);
void tsr_result_destroy(tsr_result_t *res);

size_t tsr_result_column_count(const tsr_result_t *res);
const char *tsr_result_column_name(const tsr_result_t *res, size_t col);
tsr_type_t tsr_result_column_type(const tsr_result_t *res, size_t col);
size_t tsr_result_row_count(const tsr_result_t *res);

bool tsr_result_is_null(const tsr_result_t *res, size_t row, size_t col);
int64_t tsr_result_int64(const tsr_result_t *res, size_t row, size_t col);
double tsr_result_double(const tsr_result_t *res, size_t row, size_t col);
bool tsr_result_bool(const tsr_result_t *res, size_t row, size_t col);
/* NUL-terminated bytes valid while res lives; *len_out (may be NULL) gets the length. */
const char *tsr_result_string(const tsr_result_t *res, size_t row, size_t col, size_t *len_out);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_QUERY_H */
