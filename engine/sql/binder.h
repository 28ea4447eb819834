/*
 * binder.h - name resolution and typing of expressions (private to engine/sql).
 *
 * The planner (planner.c) drives the query-level work: FROM, clause order,
 * plan shape. The binder turns one AST expression into a typed tsr_expr_t:
 * binder.c resolves names, checks what the user wrote and reports errors;
 * binder_ops.c builds the typed nodes, inserting casts and folding constants.
 *
 * Column spaces. A bound expression refers to columns in one of two spaces:
 *  - rows space: the concatenation of all columns of all FROM tables, in FROM
 *    order ("global ids": table i's column c is tables[i].base + c). The
 *    planner later copies such trees into the positions of a concrete layout
 *    (a scan of one table, or the output of a chain of joins).
 *  - grouped space: the output of the query's AGGREGATE: GROUP BY key k is
 *    column k, aggregate j is column nkeys + j.
 * A scope (tsr_bind_scope_t) says which space an expression is bound into and
 * which FROM tables are visible (an ON clause sees only the tables joined so
 * far).
 *
 * Grouped binding. An expression over the aggregate output is bound top-down:
 * an aggregate call becomes a reference to a (deduplicated) entry of b->aggs,
 * whose argument is bound in rows space; an aggregate-free subtree is bound in
 * rows space and, when it equals a GROUP BY key structurally, becomes a
 * reference to that key; a constant stays a constant; anything else is taken
 * apart and its children bound the same way; a bare column that got this far
 * is neither grouped nor aggregated: an error at its position. Aggregates of
 * constants are resolved here when their value does not need the rows
 * (COUNT(NULL) is 0, MIN(c) is c in every group, ...).
 *
 * Types. Bound expressions never have type NULL where the executor would
 * see one: the NULL literal is a CONST of type NULL only until it meets an
 * operand (then it becomes a NULL CONST of that operand's type) or until
 * tsr_binder_materialize makes it a BIGINT NULL (select list, keys, agg args).
 * CASTs are only INT64->DOUBLE and BOOL->INT64 (NULL casts fold away).
 *
 * Everything is allocated in b->arena; nothing is freed individually, so an
 * error path only needs to record the error and return.
 */
#ifndef TSR_SQL_BINDER_H
#define TSR_SQL_BINDER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/mem.h"
#include "exec/plan.h"
#include "sql/ast.h"
#include "table/table.h"

/* One table of the FROM clause. */
typedef struct tsr_bind_table {
    const tsr_table_t *table; /* borrowed from the catalog */
    const char *name;         /* qualifier of its columns: the alias, else the table's name */
    bool has_alias;           /* name is an alias (the catalog name also qualifies, if unique) */
    tsr_src_span_t span;      /* of the table's name in FROM/JOIN */
    size_t base;              /* global id of its column 0 */
} tsr_bind_table_t;

/* One select-list item after '*' expansion. */
typedef struct tsr_bind_item {
    const tsr_ast_expr_t *ast; /* the expression (a synthetic qualified COLUMN for '*') */
    const char *alias;         /* AS name, NULL when none */
    const char *name;          /* output column name */
} tsr_bind_item_t;

typedef struct tsr_binder {
    tsr_arena_t *arena;
    const char *sql; /* the statement's text (may be NULL: no operator carets, no names) */
    size_t sql_len;
    tsr_error_t *err;
    tsr_bind_table_t *tables; /* ntables FROM tables in FROM order */
    size_t ntables;
    size_t ncols;                 /* global ids are 0..ncols-1 */
    size_t *col_table;            /* global id -> index into tables */
    bool *used;                   /* global id -> referenced by the query (set while binding) */
    const tsr_bind_item_t *items; /* select list, for alias references (may be NULL) */
    size_t nitems;
    /* grouped space: filled while binding GROUP BY, then select/HAVING/ORDER BY */
    tsr_expr_t **keys; /* GROUP BY keys, rows space */
    char **key_names;
    size_t nkeys;
    size_t keys_cap;
    tsr_agg_t *aggs;  /* distinct aggregates, args in rows space */
    char **agg_names; /* source text of each aggregate's first occurrence */
    size_t naggs;
    size_t aggs_cap;
    bool fresh_error; /* the last tsr_binder_fail_at recorded its error (hints may follow) */
    /* rows-space bindings by AST node (see tsr_binder_expr) */
    struct tsr_bind_memo *memo;
    size_t memo_cap; /* a power of two, or 0 */
    size_t memo_n;
} tsr_binder_t;

typedef struct tsr_bind_scope {
    size_t nvisible;    /* tables[0..nvisible) can be referenced */
    bool grouped;       /* bind into grouped space (see above) */
    bool allow_alias;   /* an unqualified name that is no input column may name a select item */
    const char *clause; /* for messages: "WHERE", "JOIN ... ON", "GROUP BY", ... */
} tsr_bind_scope_t;

/* Binds AST a in scope sc into *out. Rows-space results are remembered per
 * AST node, so binding a subtree again costs nothing: grouped binding tries
 * every subtree of an expression against the GROUP BY keys, which would
 * otherwise bind a deep expression quadratically often. Bound trees are
 * never modified after construction, so sharing them is safe. */
tsr_status_t tsr_binder_expr(tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a,
                             tsr_expr_t **out);

/* Whether a (following alias references when sc allows them) calls an aggregate. */
bool tsr_binder_has_agg(const tsr_binder_t *b, const tsr_bind_scope_t *sc, const tsr_ast_expr_t *a);

/* Finds the FROM table a qualifier names among tables[0..nvisible); on failure
 * records TSR_ERR_NOT_FOUND (or an ambiguity) at span and returns it. */
tsr_status_t tsr_binder_find_table(tsr_binder_t *b, size_t nvisible, const char *qualifier,
                                   tsr_src_span_t span, size_t *out);

/* Resolves a COLUMN AST to a global id without recording any error; false
 * when it is unknown, ambiguous or a select alias. */
bool tsr_binder_lookup_column(const tsr_binder_t *b, size_t nvisible, const tsr_ast_expr_t *a,
                              size_t *gid_out);

/* ---- names and positions (binder_names.c) ---------------------------------- */

/* Resolves COLUMN a to a global id, or (where sc allows aliases and no input
 * column has the name) to the select item it names as an alias (*item). */
tsr_status_t tsr_binder_resolve_column(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                       const tsr_ast_expr_t *a, size_t *gid,
                                       const tsr_bind_item_t **item);
/* The select item an unqualified name refers to as an alias, when sc allows
 * aliases and no visible input column has that name; else NULL. */
const tsr_bind_item_t *tsr_binder_alias_target(const tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                               const tsr_ast_expr_t *a);
/* The position of the first token after expression left (the operator of the
 * binary expression whose left operand it is); fallback when unknown. */
tsr_src_span_t tsr_binder_token_after(const tsr_binder_t *b, const tsr_ast_expr_t *left,
                                      tsr_src_span_t fallback);

/* ---- helpers shared with planner.c --------------------------------------- */

/* Arena allocation that records TSR_ERR_NOMEM on failure; n elements of size. */
void *tsr_binder_alloc(tsr_binder_t *b, size_t n, size_t size);
/* Copy of the source text of span ("?column?" when the text is unknown); NULL on NOMEM. */
char *tsr_binder_span_text(tsr_binder_t *b, tsr_src_span_t span);
/* Records an error at span's position; returns status. */
tsr_status_t tsr_binder_fail_at(tsr_binder_t *b, tsr_status_t status, tsr_src_span_t span,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sets the hint of the error the last tsr_binder_fail_at recorded (never of an
 * older error the caller's tsr_error_t already held). */
void tsr_binder_hint(tsr_binder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ---- typed constructors (binder_ops.c) -------------------------------------
 * All return NULL (constructors) or TSR_ERR_NOMEM after recording it when the
 * arena is exhausted; constants are folded as binder_ops.c describes. */

tsr_expr_t *tsr_binder_mk_column(tsr_binder_t *b, size_t column, tsr_type_t type);
/* A non-NULL constant of type (fill in value), a NULL of type, a BOOL. */
tsr_expr_t *tsr_binder_mk_const(tsr_binder_t *b, tsr_type_t type);
tsr_expr_t *tsr_binder_mk_null(tsr_binder_t *b, tsr_type_t type);
tsr_expr_t *tsr_binder_mk_bool(tsr_binder_t *b, bool v);
/* x as type: only INT64->DOUBLE, BOOL->INT64 and NULL->any (folded) occur. */
tsr_expr_t *tsr_binder_mk_cast(tsr_binder_t *b, tsr_expr_t *x, tsr_type_t type);
/* Turns a NULL-typed expression into a BIGINT NULL constant (others unchanged). */
tsr_expr_t *tsr_binder_materialize(tsr_binder_t *b, tsr_expr_t *e);
tsr_expr_t *tsr_binder_clone(tsr_binder_t *b, const tsr_expr_t *x);
/* AND of x and y (either may be NULL: returns the other). */
tsr_expr_t *tsr_binder_mk_and(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t *y);

/* x op y for a comparison; TSR_ERR_TYPE at `at` when the types do not compare. */
tsr_status_t tsr_binder_mk_compare(tsr_binder_t *b, tsr_op_t op, tsr_expr_t *x, tsr_expr_t *y,
                                   tsr_src_span_t at, tsr_expr_t **out);
/* x op y for + - * / %; TSR_ERR_TYPE at `at` unless both are numbers (or NULL). */
tsr_status_t tsr_binder_mk_arith(tsr_binder_t *b, tsr_op_t op, tsr_expr_t *x, tsr_expr_t *y,
                                 tsr_src_span_t at, tsr_expr_t **out);
/* AND/OR of BOOL-or-NULL operands (checked by the caller). */
tsr_status_t tsr_binder_mk_logic(tsr_binder_t *b, tsr_op_t op, tsr_expr_t *x, tsr_expr_t *y,
                                 tsr_expr_t **out);
tsr_status_t tsr_binder_mk_neg(tsr_binder_t *b, tsr_expr_t *x,
                               tsr_expr_t **out); /* number or NULL */
tsr_status_t tsr_binder_mk_not(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t **out); /* BOOL */
tsr_status_t tsr_binder_mk_is_null(tsr_binder_t *b, tsr_expr_t *x, bool negated, tsr_expr_t **out);
/* x[0] [NOT] IN (x[1..n-1]): x[1..] constants, all castable to type (checked
 * by the caller); takes x (an arena array) as the node's argument array. */
tsr_status_t tsr_binder_mk_in(tsr_binder_t *b, tsr_expr_t **x, size_t n, tsr_type_t type,
                              bool negated, tsr_expr_t **out);
/* x (VARCHAR or NULL) [NOT] LIKE pattern (a VARCHAR or NULL constant). */
tsr_status_t tsr_binder_mk_like(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t *pattern, bool negated,
                                tsr_expr_t **out);

/* Whether e references any column. */
bool tsr_binder_has_columns(const tsr_expr_t *e);
/* Structural equality of two bound expressions of the same space. */
bool tsr_binder_expr_equal(const tsr_expr_t *x, const tsr_expr_t *y);
/* The range of FROM tables a rows-space expression references: false when it
 * references no column at all (a constant). */
bool tsr_binder_table_range(const tsr_binder_t *b, const tsr_expr_t *e, size_t *tmin, size_t *tmax);
/* "+", "<>", "AND", ... */
const char *tsr_binder_op_text(tsr_op_t op);

/* "Did you mean" search: feed candidates, then take the closest acceptable one. */
typedef struct tsr_suggest {
    const char *name;  /* what the user wrote */
    const char *best;  /* closest acceptable candidate so far, NULL when none */
    size_t best_score; /* lower is closer */
} tsr_suggest_t;

void tsr_suggest_init(tsr_suggest_t *s, const char *name);
void tsr_suggest_add(tsr_suggest_t *s, const char *candidate);

#endif /* TSR_SQL_BINDER_H */
