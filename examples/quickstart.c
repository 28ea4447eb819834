/*
 * quickstart.c - the Tessera C API in one page.
 *
 * Opens an embedded engine, registers one table from a CSV file and one from
 * columns in memory, runs a join with an aggregate, and prints the result.
 *
 *   build/bin/example_quickstart tests/data
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/tessera.h"

static int fail(tsr_context_t *ctx, const char *what)
{
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    fprintf(stderr, "quickstart: %s: %s (%s)\n", what, e.message, tsr_status_str(e.status));
    if (e.hint[0])
        fprintf(stderr, "hint: %s\n", e.hint);
    return 1;
}

int main(int argc, char **argv)
{
    const char *data_dir = argc > 1 ? argv[1] : "tests/data";
    char path[4096];
    snprintf(path, sizeof(path), "%s/cities.csv", data_dir);

    tsr_context_t *ctx = NULL;
    if (tsr_context_create(NULL, &ctx) != TSR_OK) {
        fprintf(stderr, "quickstart: cannot create a context\n");
        return 1;
    }
    int rc = 1;
    tsr_result_t *res = NULL;

    /* A table from a CSV file: types are inferred (population has a NULL). */
    if (tsr_table_register_csv(ctx, "cities", path, NULL) != TSR_OK) {
        rc = fail(ctx, "loading cities.csv");
        goto cleanup;
    }

    /* A table from columns in memory. */
    const char *names[] = {"France", "Germany", "Spain", "Iceland"};
    const char *continents[] = {"Europe", "Europe", "Europe", "Europe"};
    int64_t joined[] = {1958, 1958, 1986, 0};
    bool joined_null[] = {false, false, false, true};
    tsr_column_data_t cols[] = {
        {.name = "name", .type = TSR_TYPE_VARCHAR, .values = names},
        {.name = "continent", .type = TSR_TYPE_VARCHAR, .values = continents},
        {.name = "eu_since", .type = TSR_TYPE_INT64, .values = joined, .nulls = joined_null},
    };
    if (tsr_table_register_columns(ctx, "countries", 3, cols, 4) != TSR_OK) {
        rc = fail(ctx, "registering countries");
        goto cleanup;
    }

    const char *sql = "SELECT c.country, COUNT(*) AS cities, SUM(c.population) AS people, "
                      "MIN(k.eu_since) AS eu_since "
                      "FROM cities c JOIN countries k ON c.country = k.name "
                      "GROUP BY c.country ORDER BY people DESC";
    if (tsr_query(ctx, sql, &res) != TSR_OK) {
        rc = fail(ctx, "running the query");
        goto cleanup;
    }

    size_t ncols = tsr_result_column_count(res);
    for (size_t c = 0; c < ncols; c++)
        printf("%s%s", c ? "\t" : "", tsr_result_column_name(res, c));
    printf("\n");
    for (size_t r = 0; r < tsr_result_row_count(res); r++) {
        for (size_t c = 0; c < ncols; c++) {
            printf("%s", c ? "\t" : "");
            if (tsr_result_is_null(res, r, c)) {
                printf("NULL");
                continue;
            }
            switch (tsr_result_column_type(res, c)) {
            case TSR_TYPE_INT64:
                printf("%lld", (long long)tsr_result_int64(res, r, c));
                break;
            case TSR_TYPE_DOUBLE:
                printf("%g", tsr_result_double(res, r, c));
                break;
            case TSR_TYPE_BOOL:
                printf("%s", tsr_result_bool(res, r, c) ? "true" : "false");
                break;
            default:
                printf("%s", tsr_result_string(res, r, c, NULL));
            }
        }
        printf("\n");
    }
    /* The result is checked, so the example doubles as a test. */
    if (tsr_result_row_count(res) != 4 ||
        tsr_result_int64(res, 0, 2) != 3755251 + 1892122 + 773068 ||
        !tsr_result_is_null(res, 3, 3)) {
        fprintf(stderr, "quickstart: unexpected result\n");
        goto cleanup;
    }
    rc = 0;

cleanup:
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    return rc;
}
