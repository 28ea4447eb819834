/*
 * join_internal.h - what the hash join's CPU operator (op_hash_join.c) and
 * its device variant (dev_join.c) share: the run state, the per-worker probe
 * scratch, and the steps both use (planning the keys, gathering pairs into
 * output batches with the residual applied, collecting the batches).
 * Private to engine/exec/.
 */
#ifndef TSR_EXEC_JOIN_INTERNAL_H
#define TSR_EXEC_JOIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/exec_internal.h"
#include "exec/hashtable.h"

#define JOIN_ROWS TSR_BATCH_ROWS

typedef struct join_key {
    const tsr_expr_t *left, *right;
    tsr_type_t type;
    uint32_t *map;    /* VARCHAR across dictionaries: left code -> right code or
                         TSR_HT_NONE (owned); NULL: same codes on both sides */
    uint32_t map_len; /* left dictionary size */
} join_key_t;

/* The output batches one probe task produced, in order. */
typedef struct join_outs {
    size_t n, cap;
    size_t *nrows;
    tsr_vector_t **cols;
} join_outs_t;

/* A worker's probe scratch. */
typedef struct join_worker {
    bool ready;
    uint32_t *sel;  /* JOIN_ROWS: left rows with non-NULL keys */
    uint32_t *gids; /* JOIN_ROWS: their groups */
    uint32_t *pl;   /* JOIN_ROWS: pair's left row */
    uint32_t *pq;   /* JOIN_ROWS: pair's payload row */
    uint32_t *rsel; /* JOIN_ROWS: pairs passing the residual */
    uint64_t *kbuf; /* nkeys x JOIN_ROWS: normalised keys */
    const uint64_t **kptr;
    tsr_vector_t *kvec; /* nkeys: the batch's key vectors */
} join_worker_t;

typedef struct join_run {
    const tsr_exec_ctx_t *ctx;
    tsr_mem_t *mem;
    const tsr_plan_t *plan;
    const tsr_table_t *left, *right;
    size_t nkeys;
    join_key_t *keys;
    const uint64_t **code_hashes; /* nkeys: right dictionary hashes of VARCHAR keys */
    tsr_ht_t ht;                  /* distinct right keys -> group */
    size_t *off;                  /* ngroups + 1: payload rows of each group */
    tsr_vector_t *payload;        /* right ncols vectors of off[ngroups] rows */
    unsigned nworkers;
    join_worker_t *w;
    join_outs_t *outs; /* per left batch */
    tsr_exec_errslot_t errs;
} join_run_t;

/* Checks the plan against the inputs and prepares r->keys (VARCHAR code
 * maps across dictionaries, the right dictionaries' hashes). */
tsr_status_t tsr_join_plan(join_run_t *r, tsr_error_t *err);

/* Allocates a worker's probe scratch (w->ready set first: freed with r). */
tsr_status_t tsr_join_worker_setup(join_run_t *r, join_worker_t *w);

/* Gathers k pairs (w->pl: rows of lb, w->pq: payload rows) into an output
 * batch, applies the residual and appends what survives to o. */
tsr_status_t tsr_join_flush(join_run_t *r, join_worker_t *w, const tsr_batch_t *lb, size_t k,
                            join_outs_t *o, tsr_error_t *err);

/* Moves the output batches of r->outs into t, in left batch order. */
tsr_status_t tsr_join_collect(join_run_t *r, tsr_table_t *t, tsr_error_t *err);

/* Starts r: a join of the two inputs for plan, nothing else set yet. */
void tsr_join_run_init(join_run_t *r, const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                       tsr_op_input_t left, tsr_op_input_t right);

/* Frees everything r holds (not its inputs). */
void tsr_join_run_free(join_run_t *r);

/* Ends a join run with status rc and output t (may be NULL: none built):
 * when rc is TSR_OK and t is set, t takes the inputs as dependencies and
 * becomes *out; otherwise t is destroyed, the inputs handed back (the caller
 * still owns them on failure). Frees r. Returns the final status. */
tsr_status_t tsr_join_end(join_run_t *r, tsr_status_t rc, tsr_table_t *t, tsr_op_input_t left,
                          tsr_op_input_t right, tsr_table_t **out, tsr_error_t *err);

#endif /* TSR_EXEC_JOIN_INTERNAL_H */
