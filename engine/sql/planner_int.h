/*
 * planner_int.h - the planner's state, shared by planner.c (FROM, binding
 * of every clause, tsr_sql_plan) and planner_build.c (the plan tree, built
 * bottom-up once everything is bound). The order of work and the layouts
 * are described at the top of planner.c.
 */
#ifndef TSR_SQL_PLANNER_INT_H
#define TSR_SQL_PLANNER_INT_H

#include "sql/binder.h"
#include "sql/planner.h"

/* One AND-conjunct of WHERE or an ON clause, in rows space. */
typedef struct conjunct {
    tsr_expr_t *e;
} conjunct_t;

typedef struct planner {
    tsr_binder_t b;
    const tsr_ast_select_t *ast;
    const tsr_catalog_t *catalog;
    tsr_bind_item_t *items; /* select list after '*' expansion */
    size_t nitems;
    bool grouped; /* aggregate query */
    /* PROJECT: visible select items, then hidden ORDER BY columns */
    tsr_expr_t **sel; /* rows space, or grouped space when grouped */
    char **sel_names;
    size_t nsel;
    size_t sel_cap;
    tsr_sort_key_t *sort;
    size_t nsort;
    tsr_expr_t *having; /* grouped space */
    conjunct_t *conj;
    size_t nconj;
    size_t conj_cap;
    /* layout (see the top) */
    size_t *rank;   /* global id -> position among its table's used columns */
    size_t *prefix; /* ntables + 1 */
} planner_t;

/* Builds the plan tree of a fully bound query (planner_build.c). */
tsr_status_t tsr__planner_build(planner_t *p, tsr_plan_t **out);

#endif /* TSR_SQL_PLANNER_INT_H */
