/*
 * catalog.c - the named tables a context knows (see catalog.h).
 */
#include "sql/catalog.h"

#include <strings.h>

void tsr_catalog_init(tsr_catalog_t *cat, tsr_mem_t *mem)
{
    cat->mem = mem;
    cat->tables = NULL;
    cat->ntables = 0;
    cat->cap = 0;
    cat->cancel = NULL;
}

void tsr_catalog_free(tsr_catalog_t *cat)
{
    for (size_t i = 0; i < cat->ntables; i++)
        tsr_table_destroy(cat->tables[i]);
    tsr_mem_free(cat->mem, cat->tables);
    cat->tables = NULL;
    cat->ntables = cat->cap = 0;
}

tsr_status_t tsr_catalog_replace(tsr_catalog_t *cat, tsr_table_t *table, tsr_table_t **old)
{
    *old = NULL;
    for (size_t i = 0; i < cat->ntables; i++) {
        if (strcasecmp(cat->tables[i]->name, table->name) == 0) {
            *old = cat->tables[i];
            cat->tables[i] = table;
            return TSR_OK;
        }
    }
    if (tsr_mem_grow(cat->mem, (void **)&cat->tables, &cat->cap, cat->ntables + 1,
                     sizeof(tsr_table_t *)))
        return TSR_ERR_NOMEM;
    cat->tables[cat->ntables++] = table;
    return TSR_OK;
}

tsr_status_t tsr_catalog_add(tsr_catalog_t *cat, tsr_table_t *table)
{
    tsr_table_t *old;
    tsr_status_t rc = tsr_catalog_replace(cat, table, &old);
    tsr_table_destroy(old);
    return rc;
}

const tsr_table_t *tsr_catalog_find(const tsr_catalog_t *cat, const char *name)
{
    for (size_t i = 0; i < cat->ntables; i++)
        if (strcasecmp(cat->tables[i]->name, name) == 0)
            return cat->tables[i];
    return NULL;
}
