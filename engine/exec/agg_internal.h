/*
 * agg_internal.h - shared pieces of hash aggregation (op_aggregate.c drives,
 * agg_state.c holds the aggregate states). Private to engine/exec/.
 *
 * Aggregates are computed from *state columns*: flat arrays indexed by group
 * id (struct of arrays), one per distinct (kind, argument, distinct) triple,
 * so SUM(x), AVG(x) and COUNT(x) share x's sum and count:
 *
 *   COUNT(*)        ROWS
 *   COUNT(x)        NN(x)             (NN(x) is ROWS when x is never NULL)
 *   SUM(x), AVG(x)  SUM_I(x) or SUM_D(x), and NN(x)
 *   MIN(x), MAX(x)  MIN_/MAX_I(x) or MIN_/MAX_D(x), and NN(x)
 *
 * Integer sums are 128-bit, so they cannot overflow along the way and a
 * result does not depend on the order rows (or partials) are added in:
 * SUM(INT64) fails with TSR_ERR_OVERFLOW only when the final value does not
 * fit 64 bits; AVG(INT64) is exact until the final division. MIN/MAX over
 * BOOL use 0/1, over VARCHAR the dictionary rank (an INT64 state), turned back
 * into a code at output. Doubles: MIN/MAX order NaN above every number (like
 * PostgreSQL), so MIN's empty state is NaN and MAX's is -inf; a NULL input row
 * contributes the identity, which keeps the update loops free of branches.
 *
 * DISTINCT aggregates (COUNT/SUM/AVG; MIN/MAX ignore DISTINCT) keep, per
 * worker, a set of (group id, normalised value) pairs in a two-key tsr_ht_t;
 * their state columns are filled only at the end, from the pairs that are
 * new in the final (merged) sets.
 */
#ifndef TSR_EXEC_AGG_INTERNAL_H
#define TSR_EXEC_AGG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/exec_internal.h"
#include "exec/hashtable.h"
#include "exec/operators.h"

typedef __int128 tsr_agg_i128_t;

typedef enum tsr_agg_skind {
    TSR_AGG_S_ROWS,  /* int64: rows of the group */
    TSR_AGG_S_NN,    /* int64: non-NULL values of the argument */
    TSR_AGG_S_SUM_I, /* tsr_agg_i128_t: sum of an INT64 (or BOOL) argument */
    TSR_AGG_S_SUM_D, /* double: sum of a DOUBLE argument */
    TSR_AGG_S_MIN_I, /* int64 (INT64, BOOL 0/1, VARCHAR rank); empty: INT64_MAX */
    TSR_AGG_S_MAX_I, /* int64; empty: INT64_MIN */
    TSR_AGG_S_MIN_D, /* double; empty: NaN */
    TSR_AGG_S_MAX_D, /* double; empty: -inf */
} tsr_agg_skind_t;

typedef struct tsr_agg_scol {
    tsr_agg_skind_t kind;
    size_t arg;    /* index into the arguments (not for ROWS) */
    bool distinct; /* filled from the distinct pair set of arg at the end */
} tsr_agg_scol_t;

/* One distinct argument expression of the aggregates. */
typedef struct tsr_agg_arg {
    const tsr_expr_t *expr;
    tsr_type_t type;
    bool is_col;            /* a COLUMN expression: read the input vector directly */
    size_t col;             /* input column when is_col */
    bool may_null;          /* some input batch may hold NULLs */
    bool need_vals;         /* a batch-updated state reads the values (else validity only) */
    bool need_rank;         /* VARCHAR MIN/MAX: values become ranks */
    const tsr_dict_t *dict; /* VARCHAR: the column's dictionary */
    const uint32_t *ranks;  /* VARCHAR: tsr_dict_ranks(dict) */
    uint32_t *rank_code;    /* VARCHAR MIN/MAX: rank -> code, built before output (owned) */
    long dset;              /* index of its distinct pair set, -1 when none */
} tsr_agg_arg_t;

/* One output aggregate and the state columns it reads. MIN/MAX of a VARCHAR
 * constant (only without GROUP BY, the binder folds it otherwise) reads no
 * argument: it is the constant in a group with rows (cnt is ROWS), else NULL;
 * its output codes refer to a one-entry dictionary the output table owns. */
typedef struct tsr_agg_out {
    tsr_agg_fn_t fn;
    tsr_type_t type;         /* result type */
    size_t arg;              /* argument index (not COUNT(*), not cstr) */
    long val;                /* state column of the value (SUM/AVG/MIN/MAX), -1 for COUNT */
    long cnt;                /* state column of the count */
    const tsr_value_t *cstr; /* MIN/MAX of a VARCHAR constant: its value, else NULL */
    const tsr_dict_t *cdict; /* cstr's dictionary, made with the output */
} tsr_agg_out_t;

typedef struct tsr_agg_key {
    const tsr_expr_t *expr;
    tsr_type_t type;
    bool is_col;
    size_t col;
    const tsr_dict_t *dict; /* VARCHAR: the column's dictionary (NULL: input has no batch) */
} tsr_agg_key_t;

/* Perfect-hash (direct-indexed) aggregation, chosen per query when every key
 * has a small known value range (perfect_agg.h): group id = sum over keys of
 * slot_k * stride[k], slot_k = 0 for NULL, else value - kmin[k] + 1. */
#define TSR_AGG_PERFECT_MAXKEYS 8

typedef struct tsr_agg_perfect {
    bool on;                                  /* this run aggregates by direct index */
    size_t ngroups;                           /* slots: product of (range_k + 1) */
    uint64_t kmin[TSR_AGG_PERFECT_MAXKEYS];   /* smallest normalised value, as bits */
    uint64_t slots[TSR_AGG_PERFECT_MAXKEYS];  /* range_k + 1 (NULL's slot included) */
    uint64_t stride[TSR_AGG_PERFECT_MAXKEYS]; /* product of the slots of keys before */
    long rows_scol;                           /* the ROWS state column (group exists) */
} tsr_agg_perfect_t;

/* Everything fixed before the first batch. */
typedef struct tsr_agg_plan {
    tsr_mem_t *mem;
    size_t nkeys;
    tsr_agg_key_t *keys;
    const uint64_t **code_hashes; /* nkeys: dictionary hashes of VARCHAR keys, else NULL */
    size_t nargs;
    tsr_agg_arg_t *args;
    size_t nscols;
    tsr_agg_scol_t *scols;
    size_t naggs;
    tsr_agg_out_t *outs;
    size_t ndsets;
    size_t *dset_arg; /* ndsets: the argument of each distinct pair set */
    bool computed;    /* some key or argument is not a plain column */
    bool *used;       /* input ncols: columns some key or argument reads */
    size_t scols_cap; /* room in scols */
    tsr_agg_perfect_t perfect;
} tsr_agg_plan_t;

/* A hash table of groups with the aggregate states of its groups. */
typedef struct tsr_agg_part {
    tsr_ht_t ht;
    size_t cap;      /* groups the state arrays hold */
    void **st;       /* nscols state arrays */
    tsr_ht_t *dsets; /* ndsets sets of (group id, normalised value) */
} tsr_agg_part_t;

tsr_status_t tsr_agg_part_init(tsr_agg_part_t *part, const tsr_agg_plan_t *ap,
                               size_t expected_groups);
void tsr_agg_part_fini(tsr_agg_part_t *part, const tsr_agg_plan_t *ap);
/* Grows the state arrays to the table's group count (new groups empty). */
tsr_status_t tsr_agg_part_reserve(tsr_agg_part_t *part, const tsr_agg_plan_t *ap);
/* Grows the state arrays to at least need groups (new groups empty). */
tsr_status_t tsr_agg_part_reserve_n(tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t need);

/* Batch update of state column s: row j (input row i = sel[j] or j) of group
 * gids[j] with value vals[i] (int64_t or double by kind; unused by ROWS/NN)
 * and validity valid (NULL: none NULL). */
void tsr_agg_update(tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t s, const uint32_t *gids,
                    size_t n, const uint32_t *sel, const void *vals, const uint64_t *valid);

/* Folds groups src_g = sel[j] (or j) of src into groups dst_gids[j] of dst,
 * for every state column that is not DISTINCT. */
void tsr_agg_merge(tsr_agg_part_t *dst, const tsr_agg_part_t *src, const tsr_agg_plan_t *ap,
                   const uint32_t *dst_gids, const uint32_t *sel, size_t n);

/* Adds n distinct values (normalised bits) of argument set d to groups gids. */
void tsr_agg_feed_distinct(tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t d,
                           const uint32_t *gids, const uint64_t *vals, size_t n);

/* Writes rows [g0, g0+n) of part into output vectors cols at row `at`: key
 * columns then aggregates (cols has nkeys + naggs vectors with validity).
 * Fails only with TSR_ERR_OVERFLOW (a SUM that does not fit INT64). */
tsr_status_t tsr_agg_emit(const tsr_agg_part_t *part, const tsr_agg_plan_t *ap, size_t g0, size_t n,
                          tsr_vector_t *cols, size_t at, tsr_error_t *err);

/* ---- one run of the operator (op_aggregate.c, agg_merge.c) ------------------------ */

/* A worker's thread-local state: its partial aggregates and batch scratch. */
typedef struct tsr_agg_worker {
    bool ready;              /* part and scratch exist (the worker ran a batch) */
    tsr_agg_part_t part;     /* partial aggregates of the batches it ran */
    uint32_t *sel;           /* TSR_BATCH_ROWS: pre-filter selection */
    uint32_t *gids;          /* TSR_BATCH_ROWS: group of each selected row */
    uint64_t *kbuf;          /* nkeys x TSR_BATCH_ROWS: normalised keys */
    int64_t *abuf;           /* nargs x TSR_BATCH_ROWS: widened BOOL / ranked VARCHAR values */
    uint64_t *pbuf;          /* 3 x TSR_BATCH_ROWS: DISTINCT (group, value) pairs */
    uint32_t *pgids;         /* TSR_BATCH_ROWS: ids of those pairs */
    tsr_vector_t *kvec;      /* nkeys: the current batch's key vectors */
    tsr_vector_t *avec;      /* nargs: the current batch's argument vectors */
    const uint64_t **kptr;   /* nkeys: where the batch's normalised keys are */
    const uint64_t **kvalid; /* nkeys: their validity */
    const void **aptr;       /* nargs: the batch's argument values for the states */
    tsr_vector_t *ccols;     /* input ncols: the pre-filter's rows, when computed
                                expressions must not see the others */
} tsr_agg_worker_t;

typedef struct tsr_agg_run {
    const tsr_exec_ctx_t *ctx;
    tsr_agg_plan_t ap;
    const tsr_expr_t *prefilter;
    const tsr_table_t *in;
    unsigned nworkers;
    tsr_agg_worker_t *w; /* nworkers */
    tsr_exec_errslot_t errs;
    /* merge (agg_merge.c) */
    unsigned pbits; /* partitions = 2^pbits (0: one) */
    size_t nparts;
    tsr_agg_part_t *parts; /* the final groups, partitioned by hash */
    long self;             /* worker whose part became parts[0] as is, or -1 */
    uint32_t **map;        /* [w][local gid]: id in its partition */
    uint32_t **glist;      /* [w]: local gids ordered by partition (nparts > 1) */
    size_t **goff;         /* [w]: nparts + 1 offsets into glist[w] */
    uint32_t **plist;      /* [w * ndsets + d]: pair ids ordered by partition */
    size_t **poff;         /* [w * ndsets + d]: nparts + 1 offsets */
    /* output */
    size_t *part_off;     /* nparts + 1: first output row of each partition */
    tsr_vector_t **ocols; /* per output batch: its columns */
} tsr_agg_run_t;

/* Folds the workers' partials into r->parts (allocated here). */
tsr_status_t tsr_agg_merge_all(tsr_agg_run_t *r, tsr_error_t *err);
/* Builds the output table from r->parts into out (created by the caller). */
tsr_status_t tsr_agg_output(tsr_agg_run_t *r, tsr_table_t *out, tsr_error_t *err);
/* Frees what the merge and the output allocated. */
void tsr_agg_merge_free(tsr_agg_run_t *r);
/* Records a failed hash-table or state operation in err; returns rc. */
tsr_status_t tsr_agg_fail(tsr_error_t *err, tsr_status_t rc);

#endif /* TSR_EXEC_AGG_INTERNAL_H */
