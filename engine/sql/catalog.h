/*
 * catalog.h - the named tables a context knows.
 *
 * Names are case-insensitive. The catalog owns the tables registered in it.
 */
#ifndef TSR_SQL_CATALOG_H
#define TSR_SQL_CATALOG_H

#include <stddef.h>

#include "core/mem.h"
#include "table/table.h"

typedef struct tsr_catalog {
    tsr_mem_t *mem;
    tsr_table_t **tables; /* owned */
    size_t ntables;
    size_t cap;
    /* the running query's cancel flag (or NULL), set by its caller around
     * planning: the planner's loads of lazy (CSV) columns stop when it is
     * set (tsr_table_load_columns_cancel) */
    const atomic_int *cancel;
} tsr_catalog_t;

void tsr_catalog_init(tsr_catalog_t *cat, tsr_mem_t *mem);
void tsr_catalog_free(tsr_catalog_t *cat);
/* Takes ownership of table (whose name must be set) on success; a table of the
 * same name is replaced (and destroyed). */
tsr_status_t tsr_catalog_add(tsr_catalog_t *cat, tsr_table_t *table);

/* The same, but a replaced table is handed to the caller in *old (NULL when
 * none) instead of being destroyed: query results may still borrow from it. */
tsr_status_t tsr_catalog_replace(tsr_catalog_t *cat, tsr_table_t *table, tsr_table_t **old);
const tsr_table_t *tsr_catalog_find(const tsr_catalog_t *cat, const char *name);

#endif /* TSR_SQL_CATALOG_H */
