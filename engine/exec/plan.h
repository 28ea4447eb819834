/*
 * plan.h - bound expressions and the physical plan the executor runs.
 *
 * The binder/planner (engine/sql/planner.c) turns an AST into a tree of
 * tsr_plan_t nodes whose expressions are fully typed and refer to input columns
 * by index. The executor (engine/exec/) runs the tree; it knows nothing of SQL
 * text. Plans, expressions and their strings live in an arena owned by whoever
 * planned (the query); tables referenced by SCAN are borrowed from the catalog.
 *
 * Semantics the executor implements (the planner relies on them):
 *  - NULL: three-valued logic; any arithmetic/comparison with a NULL operand is
 *    NULL; AND/OR follow SQL (FALSE AND NULL = FALSE, TRUE OR NULL = TRUE);
 *    a filter keeps rows whose predicate is TRUE (not NULL). AND/OR guard
 *    their right operand: its errors count only on rows the left operand
 *    does not decide (FALSE AND x, TRUE OR x).
 *  - Arithmetic: INT64 op INT64 -> INT64 (checked: overflow is TSR_ERR_OVERFLOW;
 *    / truncates toward zero; x/0 and x%0 are NULL, as SQLite does); any DOUBLE
 *    operand -> DOUBLE (the planner inserts CASTs so both sides agree).
 *  - Comparisons need operands of one type (planner inserts CAST INT64->DOUBLE);
 *    strings compare bytewise (memcmp, shorter prefix first). BOOL: false<true.
 *  - LIKE: % any run, _ one byte; case-sensitive; no escape character.
 *  - Aggregates skip NULLs; COUNT of nothing is 0; SUM/MIN/MAX/AVG of nothing
 *    is NULL; SUM(INT64) overflow is TSR_ERR_OVERFLOW; AVG is DOUBLE.
 *  - Sort: NULLs are the smallest value (first in ASC, last in DESC).
 *  - GROUP BY and DISTINCT treat NULLs as equal to each other, and all NaNs
 *    too (one value, sorted above +inf); = on NaN is never TRUE, in joins too.
 */
#ifndef TSR_EXEC_PLAN_H
#define TSR_EXEC_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sql/ast.h"
#include "table/table.h"

typedef struct tsr_value {
    tsr_type_t type;  /* TSR_TYPE_NULL for the NULL literal */
    bool is_null;
    int64_t i;        /* INT64, BOOL (0/1) */
    double d;         /* DOUBLE */
    const char *s;    /* VARCHAR bytes (arena) */
    size_t slen;
} tsr_value_t;

typedef enum tsr_expr_kind {
    TSR_EXPR_COLUMN,   /* input column `column` */
    TSR_EXPR_CONST,    /* value */
    TSR_EXPR_UNARY,    /* op NEG or NOT: args[0] */
    TSR_EXPR_BINARY,   /* op arithmetic/comparison/AND/OR: args[0], args[1] */
    TSR_EXPR_IS_NULL,  /* args[0] IS [NOT] NULL */
    TSR_EXPR_IN,       /* args[0] [NOT] IN (args[1..nargs-1]), all of args[0]'s type */
    TSR_EXPR_LIKE,     /* args[0] (VARCHAR) [NOT] LIKE pattern (a CONST VARCHAR in args[1]) */
    TSR_EXPR_CAST,     /* args[0] converted to type (INT64->DOUBLE, NULL->any, BOOL->INT64) */
} tsr_expr_kind_t;

typedef struct tsr_expr {
    tsr_expr_kind_t kind;
    tsr_type_t type;        /* result type; comparisons/IS NULL/IN/LIKE/AND/OR/NOT: BOOL */
    tsr_op_t op;
    bool negated;           /* IS NOT NULL, NOT IN, NOT LIKE */
    size_t column;          /* COLUMN */
    tsr_value_t value;      /* CONST */
    struct tsr_expr **args;
    size_t nargs;
} tsr_expr_t;
/* The order of strings, shared by the executor and the planner's constant
 * folding: memcmp order, a shorter prefix first; returns -1, 0 or 1
 * (expr_string.c). */
int tsr_str_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* Applies comparison op (EQ NE LT LE GT GE) to the result c of a three-way
 * compare; false for any other op. */
static inline bool tsr_cmp_apply(tsr_op_t op, int c)
{
    switch (op) {
    case TSR_OP_EQ:
        return c == 0;
    case TSR_OP_NE:
        return c != 0;
    case TSR_OP_LT:
        return c < 0;
    case TSR_OP_LE:
        return c <= 0;
    case TSR_OP_GT:
        return c > 0;
    case TSR_OP_GE:
        return c >= 0;
    default:
        return false;
    }
}

/* BETWEEN is lowered by the planner to (x >= lo AND x <= hi) (NOT: x < lo OR x > hi). */

typedef enum tsr_agg_fn {
    TSR_AGG_COUNT_STAR,
    TSR_AGG_COUNT,
    TSR_AGG_SUM,
    TSR_AGG_MIN,
    TSR_AGG_MAX,
    TSR_AGG_AVG,
} tsr_agg_fn_t;

typedef struct tsr_agg {
    tsr_agg_fn_t fn;
    bool distinct;     /* COUNT(DISTINCT x), SUM(DISTINCT x), ... */
    tsr_expr_t *arg;   /* NULL for COUNT(*) */
    tsr_type_t type;   /* result: COUNT -> INT64, AVG -> DOUBLE, SUM/MIN/MAX -> arg's type */
} tsr_agg_t;

typedef enum tsr_plan_kind {
    TSR_PLAN_SCAN,      /* columns col_ids of table */
    TSR_PLAN_FILTER,    /* rows of child where pred is TRUE */
    TSR_PLAN_PROJECT,   /* exprs over child */
    TSR_PLAN_AGGREGATE, /* GROUP BY keys: output = keys..., aggs... (no keys: exactly one row) */
    TSR_PLAN_HASH_JOIN, /* inner equi-join: output = child's columns then right's columns */
    TSR_PLAN_SORT,      /* by sort_keys over child's columns; output = child's columns */
    TSR_PLAN_LIMIT,     /* skip offset rows, then at most limit rows (limit < 0: no limit) */
} tsr_plan_kind_t;
/* SELECT DISTINCT is planned as an AGGREGATE whose keys are all the columns and
 * which has no aggregates. */

typedef struct tsr_sort_key {
    size_t column;     /* child's column index */
    bool desc;
} tsr_sort_key_t;

typedef struct tsr_plan {
    tsr_plan_kind_t kind;
    /* output schema */
    size_t ncols;
    tsr_type_t *types;
    char **names;
    struct tsr_plan *child;   /* every kind but SCAN */
    struct tsr_plan *right;   /* HASH_JOIN build side */

    /* SCAN */
    const tsr_table_t *table;
    size_t *col_ids;          /* ncols column indices into table */
    /* FILTER */
    tsr_expr_t *pred;         /* BOOL over child's columns */
    /* PROJECT */
    tsr_expr_t **exprs;       /* ncols expressions over child's columns */
    /* AGGREGATE */
    tsr_expr_t **keys;        /* nkeys over child's columns */
    size_t nkeys;
    tsr_agg_t *aggs;
    size_t naggs;
    /* HASH_JOIN: left_keys[i] (over child) = right_keys[i] (over right), same types;
       then residual (over the joined output, may be NULL) must be TRUE.
       NULL keys never match. */
    tsr_expr_t **left_keys;
    tsr_expr_t **right_keys;
    size_t njoin_keys;
    tsr_expr_t *residual;
    /* SORT */
    tsr_sort_key_t *sort_keys;
    size_t nsort_keys;
    /* LIMIT */
    int64_t limit;
    int64_t offset;
} tsr_plan_t;

#endif /* TSR_EXEC_PLAN_H */
