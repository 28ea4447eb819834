/*
 * rewrite_internal.h - helpers shared by the single-table rewrite
 * (rewrite.c, which defines them) and the JOIN rewrite (rewrite_join.c);
 * private to those two files.
 *
 * Text is built in a tsr_wbuf_t (proto.h) from spans of the query's source
 * (every AST expression carries one); the merge query is the source with a
 * sorted list of non-overlapping edits applied.
 */
#ifndef TSR_SCHED_REWRITE_INTERNAL_H
#define TSR_SCHED_REWRITE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "sql/ast.h"

/* One edit of the source text: len bytes at offset replaced by text
 * (len 0: an insertion). */
typedef struct tsr_rewrite_edit {
    size_t offset;
    size_t len;
    char *text; /* owned */
} tsr_rewrite_edit_t;

/* The canonical name ("count", "sum", "min", "max", "avg") of an aggregate
 * function name (any case), or NULL (also for name NULL). */
const char *tsr_rewrite_agg_name(const char *name);

/* Whether e calls an aggregate anywhere. */
bool tsr_rewrite_has_agg(const tsr_ast_expr_t *e);

/* Adds the column names e reads to b ("a,b,"), lower case; false when one
 * cannot be listed (a ',' in it). */
bool tsr_rewrite_list_columns(tsr_wbuf_t *b, const tsr_ast_expr_t *e);

void tsr_rewrite_put_text(tsr_wbuf_t *b, const char *s);
void tsr_rewrite_put_span(tsr_wbuf_t *b, const char *sql, tsr_src_span_t s);

/* "text" with quotes doubled: an identifier. */
void tsr_rewrite_put_quoted(tsr_wbuf_t *b, const char *s, size_t n);

/* Moves b's bytes out as a NUL-terminated string (NULL and b freed when b
 * failed). */
char *tsr_rewrite_take(tsr_wbuf_t *b);

/* qsort order of tsr_rewrite_edit_t: by offset, a replacement before an
 * insertion at the same offset. */
int tsr_rewrite_edit_cmp(const void *a, const void *b);

#endif /* TSR_SCHED_REWRITE_INTERNAL_H */
