/*
 * rewrite.h - how a SQL query is split between workers and the scheduler.
 *
 * Three shapes (tsr_dplan_kind_t):
 *   AGG   one table, aggregates and/or GROUP BY on plain columns, no
 *         COUNT(DISTINCT): each worker runs `worker_sql` (scan + WHERE +
 *         GROUP BY with partial aggregates) over its byte range; the
 *         scheduler stacks the partial rows as a table of the same name and
 *         runs `final_sql`, the original query with each aggregate replaced
 *         by its merge and WHERE replaced by TRUE:
 *           COUNT(x) -> SUM(p)        SUM/MIN/MAX(x) -> SUM/MIN/MAX(p)
 *           AVG(x)   -> SUM(ps) * 1.0 / SUM(pc)   (ps = SUM(x), pc = COUNT(x))
 *         HAVING, ORDER BY, LIMIT and DISTINCT then run once, on the merge.
 *   SCAN  one table, no aggregates: workers filter (`SELECT * ... WHERE`,
 *         with LIMIT pushed down when there is no ORDER BY/DISTINCT); the
 *         scheduler runs `final_sql` (WHERE -> TRUE) on the stacked rows.
 *   JOIN  inner joins of distinct tables (rewrite_join.c): the caller splits
 *         one table (the largest file, tsr_rewrite_pick) and every range
 *         task also reads the other tables whole (broadcast). Every row of
 *         the split table meets the other tables independently, so the join
 *         of a range is a slice of the join, and the two merges above apply
 *         to the join's rows: with aggregates (join_agg) workers run the
 *         join + WHERE + GROUP BY with partials, the merge re-groups by the
 *         group columns (named by the columns themselves, so output names
 *         stay the engine's); without, workers project the select items
 *         (and ORDER BY keys) as tsr__c<i> / tsr__o<j> and the merge sorts,
 *         de-duplicates and limits the stacked rows. The merge reads the
 *         stacked rows as table `part` ("tsr__part"). A table joined with
 *         itself, or a query whose names cannot be mapped onto the partial
 *         columns, stays WHOLE. (The parser has no outer joins; were LEFT
 *         JOIN added, only the preserved leftmost table could be split.)
 *   WHOLE everything else (self-joins, no FROM, COUNT(DISTINCT), GROUP BY on
 *         expressions, SELECT * with GROUP BY): one worker runs the query
 *         unchanged on whole files.
 * The rewrite is textual, on the parser's source spans, so every expression
 * keeps the exact text (and output name) the user wrote; an item whose text
 * changes gets an alias with its original text (`SUM(p0) AS "SUM(q)"`).
 * Partial columns are named tsr__p<N>; a table with such a column name is
 * run WHOLE.
 */
#ifndef TSR_SCHED_REWRITE_H
#define TSR_SCHED_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/mem.h"

typedef enum tsr_dplan_kind {
    TSR_DPLAN_WHOLE = 0,
    TSR_DPLAN_AGG = 1,
    TSR_DPLAN_SCAN = 2,
    TSR_DPLAN_JOIN = 3,
} tsr_dplan_kind_t;

typedef struct tsr_dplan {
    tsr_dplan_kind_t kind;
    char *table;      /* AGG/SCAN: the FROM table's name as written; JOIN: NULL
                         until tsr_rewrite_pick names the split table (owned) */
    char *part;       /* the name final_sql reads the stacked worker rows as:
                         AGG/SCAN the table's, JOIN "tsr__part" (owned) */
    char *worker_sql; /* AGG/SCAN/JOIN (owned) */
    char *final_sql;  /* AGG/SCAN/JOIN (owned) */
    char *columns;    /* AGG: the FROM table's columns the query may read, comma-
                         separated, lower case (names of aliases too: harmless);
                         "*" for every column (SCAN, names with ','). Owned. */
    const char *why;  /* WHOLE: why the query is not split (static text) */
    /* JOIN only */
    bool join_agg;    /* aggregates merged (else rows stacked) */
    size_t ntables;   /* the FROM and JOIN tables, in query order, all distinct */
    char **tables;    /* their names as written (owned) */
    size_t nprobes;   /* queries that must NOT bind (run on the check tables): */
    char **probes;    /* an ORDER BY name the merge reads as a select alias is
                         one only when no input column has that name (owned) */
} tsr_dplan_t;

/* Parses sql and plans it. Syntax errors: TSR_ERR_SYNTAX with the position
 * (the query is not run). */
tsr_status_t tsr_rewrite_plan(tsr_mem_t *mem, const char *sql, tsr_dplan_t *out, tsr_error_t *err);
void tsr_rewrite_free(tsr_mem_t *mem, tsr_dplan_t *p);

/* JOIN: makes tables[idx] the split table (plan->table). TSR_ERR_NOMEM. */
tsr_status_t tsr_rewrite_pick(tsr_mem_t *mem, tsr_dplan_t *p, size_t idx);

const char *tsr_rewrite_kind_name(tsr_dplan_kind_t k);

/* The two queries a worker's INFER runs over its range, loaded lazily as
 * table `table` with ncols columns `names` of which read[c] are the ones the
 * query reads. *sample: the first `limit` rows of the read columns (NULL
 * when none is read); loading them parses the range once, for RUN too.
 * *count: the range's rows, reading only the first read column, already
 * loaded: COUNT(*) alone makes the engine read column 0, i.e. parse the whole
 * range a second time when column 0 is not read (SELECT COUNT(*) FROM t when
 * none is read). Both owned by the caller; TSR_ERR_NOMEM. */
tsr_status_t tsr_rewrite_infer_sql(tsr_mem_t *mem, const char *table, const char *const *names,
                                   const bool *read, size_t ncols, unsigned limit, char **sample,
                                   char **count);

#endif /* TSR_SCHED_REWRITE_H */
