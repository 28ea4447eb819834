/*
 * planner.h - binding an AST against the catalog and planning it.
 *
 * Resolves table and column names (case-insensitive; unknown ones fail with
 * TSR_ERR_NOT_FOUND at the name's position and a "did you mean" hint from the
 * closest name), checks types (TSR_ERR_TYPE with the position), extracts
 * aggregates, validates GROUP BY (a selected column that is neither grouped nor
 * aggregated is an error), resolves ORDER BY by alias, ordinal or expression
 * (adding hidden columns that a final PROJECT drops), splits JOIN ... ON into
 * equi-keys and a residual, and builds the tsr_plan_t tree (plan.h).
 * Output column names: the alias, else the column name for a bare column, else
 * the expression's source text.
 */
#ifndef TSR_SQL_PLANNER_H
#define TSR_SQL_PLANNER_H

#include "core/error.h"
#include "exec/plan.h"
#include "sql/ast.h"
#include "sql/catalog.h"

tsr_status_t tsr_sql_plan(tsr_arena_t *arena, const tsr_catalog_t *catalog, const char *sql,
                          const tsr_ast_select_t *ast, tsr_plan_t **out, tsr_error_t *err);

#endif /* TSR_SQL_PLANNER_H */
