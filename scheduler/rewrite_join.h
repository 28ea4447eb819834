/*
 * rewrite_join.h - the JOIN shape of rewrite.h (broadcast joins), private to
 * rewrite.c.
 */
#ifndef TSR_SCHED_REWRITE_JOIN_H
#define TSR_SCHED_REWRITE_JOIN_H

#include "rewrite.h"
#include "sql/ast.h"

/* Plans q (q->njoins > 0; sql/len its text) into out: kind JOIN with every
 * field of rewrite.h set but table, or WHOLE with out->why. out is zeroed by
 * the caller; on out of memory it is freed again and WHOLE. */
void tsr_rewrite_join(tsr_mem_t *mem, const char *sql, size_t len, const tsr_ast_select_t *q,
                      tsr_dplan_t *out);

#endif /* TSR_SCHED_REWRITE_JOIN_H */
