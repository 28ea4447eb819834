/*
 * test_jobfile.c - the `tessera submit` job-file parser (scheduler/jobfile.c):
 * SQL statement splitting against a model, graph checks (unknown task,
 * cycle, dangling input, arity, keys), topological order of random DAGs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobfile.h"

static tsr_status_t parse(const char *path, const char *text, tsr_job_t *job, tsr_error_t *err)
{
    tsr_error_clear(err);
    return tsr_job_parse(NULL, path, text, strlen(text), job, err);
}

/* ---- SQL ---------------------------------------------------------------------- */

static void test_sql_basic(void **state)
{
    (void)state;
    tsr_job_t job;
    tsr_error_t err;
    const char *text = "-- a comment; not a statement\n"
                       "SELECT 'a;b' FROM t;\n"
                       "\n"
                       "  SELECT \"x;\"\"y\" FROM t /* ; */ WHERE s = 'it''s;';;\n"
                       "SELECT 3 FROM t";
    assert_int_equal(parse("q.sql", text, &job, &err), TSR_OK);
    assert_int_equal(job.kind, TSR_JOB_SQL);
    assert_int_equal(job.nstmts, 3);
    assert_string_equal(job.stmts[0].sql, "-- a comment; not a statement\nSELECT 'a;b' FROM t");
    assert_int_equal(job.stmts[0].line, 1);
    assert_string_equal(job.stmts[1].sql, "SELECT \"x;\"\"y\" FROM t /* ; */ WHERE s = 'it''s;'");
    assert_int_equal(job.stmts[1].line, 4);
    assert_string_equal(job.stmts[2].sql, "SELECT 3 FROM t");
    assert_int_equal(job.stmts[2].line, 5);
    tsr_job_free(&job);
}

static void test_sql_bad(void **state)
{
    (void)state;
    tsr_job_t job;
    tsr_error_t err;
    assert_int_equal(parse("q.sql", "", &job, &err), TSR_ERR_BAD_INPUT);
    assert_non_null(strstr(err.message, "no SQL statement"));
    assert_int_equal(parse("q.sql", " ;; -- only\n/* comments */ ;", &job, &err),
                     TSR_ERR_BAD_INPUT);
    assert_int_equal(parse("q.sql", "SELECT 1 FROM t;\nSELECT 'open FROM t", &job, &err),
                     TSR_ERR_BAD_INPUT);
    assert_non_null(strstr(err.message, "unterminated string"));
    assert_int_equal(err.line, 2);
    assert_string_equal(err.file, "q.sql");
    assert_int_equal(parse("q.sql", "SELECT 1 /* open", &job, &err), TSR_ERR_BAD_INPUT);
    assert_non_null(strstr(err.message, "unterminated comment"));
    /* a NUL byte inside */
    tsr_error_clear(&err);
    assert_int_equal(tsr_job_parse(NULL, "q.sql", "SELECT\0 1", 9, &job, &err), TSR_ERR_BAD_INPUT);
    assert_non_null(strstr(err.message, "NUL"));
}

/* Random statements from pieces that hold ';' inside quotes and comments,
 * joined with ';' and blanks: the parser gives back exactly the pieces. */
static void test_sql_random(void **state)
{
    (void)state;
    static const char *pieces[] = {
        "SELECT a FROM t", "'x;y'", "\"c;d\"",    "/* ; */", "1",
        "'it''s'",         "b",     "\"q\"\"r\"", "-- ;\n",  "WHERE a = ';'"};
    srand(7);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (size_t)(rand() % 13);
        char text[8192] = "", want[16][512];
        for (size_t s = 0; s < n; s++) {
            want[s][0] = '\0';
            strcat(want[s], "SELECT");
            size_t k = (size_t)(rand() % 6);
            for (size_t p = 0; p < k; p++) {
                strcat(want[s], " ");
                strcat(want[s], pieces[rand() % (int)(sizeof(pieces) / sizeof(pieces[0]))]);
            }
            strcat(want[s], " x");
            strcat(text, s ? (rand() % 2 ? ";\n" : ";  ") : "");
            strcat(text, want[s]);
        }
        if (rand() % 2)
            strcat(text, ";\n");
        tsr_job_t job;
        tsr_error_t err;
        assert_int_equal(parse("r.sql", text, &job, &err), TSR_OK);
        assert_int_equal(job.nstmts, n);
        for (size_t s = 0; s < n; s++)
            assert_string_equal(job.stmts[s].sql, want[s]);
        tsr_job_free(&job);
    }
}

/* ---- graphs -------------------------------------------------------------------- */

static void test_graph_ok(void **state)
{
    (void)state;
    tsr_job_t job;
    tsr_error_t err;
    /* file order puts the consumer first: the parser must reorder */
    const char *text = "{\"tables\": [{\"name\": \"cities\", \"path\": \"data/c.csv\", "
                       "\"schema\": \"a:int64\"}],\n"
                       " \"tasks\": [\n"
                       "  {\"id\": \"report\", \"kind\": \"sql\", \"inputs\": [\"cities\", "
                       "\"density\"], \"sql\": \"SELECT 1 FROM cities\"},\n"
                       "  {\"id\": \"density\", \"kind\": \"density\", \"inputs\": [\"cities\"],"
                       " \"param\": \"7\"},\n"
                       "  {\"id\": \"side\", \"kind\": \"identity\", \"inputs\": [\"density\"]}\n"
                       " ], \"delimiter\": \";\"}";
    assert_int_equal(parse("/jobs/g.json", text, &job, &err), TSR_OK);
    assert_int_equal(job.kind, TSR_JOB_GRAPH);
    assert_int_equal(job.delimiter, ';');
    assert_int_equal(job.ntables, 1);
    assert_string_equal(job.tables[0].path, "/jobs/data/c.csv"); /* relative to the job */
    assert_string_equal(job.tables[0].schema, "a:int64");
    assert_int_equal(job.ntasks, 3);
    assert_string_equal(job.tasks[0].id, "density");
    assert_string_equal(job.tasks[0].param, "7");
    assert_false(job.tasks[0].sink);
    assert_string_equal(job.tasks[1].id, "report");
    assert_true(job.tasks[1].sink);
    assert_int_equal(job.tasks[1].order, 0);
    assert_int_equal(job.tasks[1].ninputs, 2);
    assert_false(job.tasks[1].inputs[0].is_task);
    assert_int_equal(job.tasks[1].inputs[0].index, 0);
    assert_true(job.tasks[1].inputs[1].is_task);
    assert_int_equal(job.tasks[1].inputs[1].index, 0); /* density, now first */
    assert_string_equal(job.tasks[2].id, "side");
    assert_true(job.tasks[2].sink);
    tsr_job_free(&job);

    /* "outputs" picks the sinks */
    text = "{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\"}, {\"id\": \"b\", \"kind\": \"k\", "
           "\"inputs\": [\"a\"]}], \"outputs\": [\"a\"]}";
    assert_int_equal(parse("g.json", text, &job, &err), TSR_OK);
    assert_true(job.tasks[0].sink);
    assert_false(job.tasks[1].sink);
    tsr_job_free(&job);
}

/* Each bad graph fails with TSR_ERR_BAD_INPUT and a message holding `want`. */
static void expect_bad(const char *text, const char *want)
{
    tsr_job_t job;
    tsr_error_t err;
    assert_int_equal(parse("bad.json", text, &job, &err), TSR_ERR_BAD_INPUT);
    if (!strstr(err.message, want))
        fail_msg("message '%s' lacks '%s' (job %s)", err.message, want, text);
    assert_string_equal(err.file, "bad.json");
    assert_null(job.tasks); /* nothing left behind */
}

static void test_graph_bad(void **state)
{
    (void)state;
    expect_bad("{\"tasks\": [", "malformed JSON");
    expect_bad("[1, 2]", "one JSON object");
    expect_bad("{}", "needs \"tasks\"");
    expect_bad("{\"tasks\": []}", "needs \"tasks\"");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"input\": [\"x\"]}]}",
               "unknown key 'input' in task a");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"inputs\": [\"nope\"]}]}",
               "task 'a' reads 'nope', which is no task or table");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"inputs\": [\"a\"]}]}",
               "cycle: a -> a");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"inputs\": [\"c\"]},"
               "{\"id\": \"b\", \"kind\": \"k\", \"inputs\": [\"a\"]},"
               "{\"id\": \"c\", \"kind\": \"k\", \"inputs\": [\"b\"]}]}",
               "cycle: ");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\"}, {\"id\": \"a\", \"kind\": \"k\"}]}",
               "two tasks have the id 'a'");
    expect_bad("{\"tasks\": [{\"id\": \"1a\", \"kind\": \"k\"}]}", "needs an \"id\"");
    expect_bad("{\"tasks\": [{\"id\": \"a\"}]}", "needs a \"kind\"");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"sql\"}]}", "has no \"sql\"");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"sql\": \"SELECT\"}]}",
               "is not a sql task");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"identity\"}]}", "exactly one input");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"concat\", \"inputs\": []}]}",
               "at least one input");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\"}], \"outputs\": [\"zz\"]}",
               "unknown task");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"param\": 3}]}", "must be a string");
    expect_bad("{\"tables\": [{\"name\": \"t\"}], \"tasks\": [{\"id\": \"a\", \"kind\": \"k\"}]}",
               "needs a \"path\"");
    expect_bad("{\"tables\": [{\"name\": \"a\", \"path\": \"x.csv\"}], "
               "\"tasks\": [{\"id\": \"a\", \"kind\": \"k\"}]}",
               "the name of a table");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\"}], \"delimiter\": \"ab\"}",
               "delimiter");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"k\", \"id\": \"b\"}]}", "malformed JSON");

    /* JSON syntax errors carry line and column */
    tsr_job_t job;
    tsr_error_t err;
    assert_int_equal(parse("p.json", "{\"tasks\": [\n  {\"id\": \"a\",,}\n]}", &job, &err),
                     TSR_ERR_BAD_INPUT);
    assert_int_equal(err.line, 2);
    assert_true(err.column > 0);
}

/* Random DAGs in shuffled file order: the parse succeeds, every task input
 * names an earlier task, ids and inputs survive the reordering; one back edge
 * makes a cycle, which is refused. */
/* A task's "device": a requirement or a preference (proto.h spelling), an
 * unknown word refused with the task's id. */
static void test_graph_device(void **state)
{
    (void)state;
    tsr_job_t job;
    tsr_error_t err;
    const char *text =
        "{\"tables\": [{\"name\": \"t\", \"path\": \"/t.csv\"}], \"tasks\": ["
        "{\"id\": \"a\", \"kind\": \"identity\", \"inputs\": [\"t\"], \"device\": \"cuda\"},"
        "{\"id\": \"b\", \"kind\": \"identity\", \"inputs\": [\"a\"], \"device\": \"auto\"},"
        "{\"id\": \"c\", \"kind\": \"identity\", \"inputs\": [\"b\"], \"device\": \"cpu\"},"
        "{\"id\": \"d\", \"kind\": \"identity\", \"inputs\": [\"c\"], \"device\": \"opencl1\"},"
        "{\"id\": \"e\", \"kind\": \"identity\", \"inputs\": [\"d\"]}]}";
    assert_int_equal(parse("/x/job.json", text, &job, &err), TSR_OK);
    assert_int_equal(job.ntasks, 5);
    assert_string_equal(job.tasks[0].need, "cuda");
    assert_null(job.tasks[0].prefer);
    assert_null(job.tasks[1].need);
    assert_string_equal(job.tasks[1].prefer, "gpu");
    assert_null(job.tasks[2].need);
    assert_null(job.tasks[2].prefer);
    assert_string_equal(job.tasks[3].need, "opencl1");
    assert_null(job.tasks[4].need);
    assert_null(job.tasks[4].prefer);
    tsr_job_free(&job);
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"concat\", \"inputs\": [], "
               "\"device\": \"tpu\"}]}",
               "task 'a' has an unknown \"device\" 'tpu'");
    expect_bad("{\"tasks\": [{\"id\": \"a\", \"kind\": \"x\", \"device\": 3}]}",
               "'device' of a must be a string");
}

static void test_graph_random(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 7, 97, 1000};
    srand(11);
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si];
        /* topological ids t0..t(n-1): t_i reads up to 3 of t_0..t_(i-1) */
        size_t *perm = malloc(n * sizeof(size_t)), (*deps)[3] = calloc(n, sizeof(*deps));
        size_t *ndeps = calloc(n, sizeof(size_t));
        assert_non_null(perm);
        for (size_t i = 0; i < n; i++) {
            perm[i] = i;
            ndeps[i] = i ? (size_t)(rand() % 4) : 0;
            for (size_t k = 0; k < ndeps[i]; k++)
                deps[i][k] = (size_t)rand() % i;
        }
        for (size_t i = n; i > 1; i--) { /* shuffle the file order */
            size_t j = (size_t)rand() % i, t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (int cyclic = 0; cyclic < 2; cyclic++) {
            if (cyclic && n < 2)
                continue;
            size_t cap = 64 + n * 80;
            char *text = malloc(cap);
            size_t o = (size_t)snprintf(text, cap, "{\"tasks\": [");
            for (size_t f = 0; f < n; f++) {
                size_t i = perm[f];
                o += (size_t)snprintf(text + o, cap - o,
                                      "%s{\"id\":\"t%zu\",\"kind\":\"k\","
                                      "\"inputs\":[",
                                      f ? "," : "", i);
                for (size_t k = 0; k < ndeps[i]; k++)
                    o +=
                        (size_t)snprintf(text + o, cap - o, "%s\"t%zu\"", k ? "," : "", deps[i][k]);
                if (cyclic && i == 0) /* a back edge: t0 reads the last task */
                    o += (size_t)snprintf(text + o, cap - o, "\"t%zu\"", n - 1);
                o += (size_t)snprintf(text + o, cap - o, "]}");
            }
            snprintf(text + o, cap - o, "]}");
            tsr_job_t job;
            tsr_error_t err;
            tsr_status_t rc = parse("r.json", text, &job, &err);
            if (!cyclic) {
                assert_int_equal(rc, TSR_OK);
                assert_int_equal(job.ntasks, n);
                size_t *seen = calloc(n, sizeof(size_t));
                for (size_t p = 0; p < n; p++) {
                    const tsr_job_task_t *t = &job.tasks[p];
                    size_t id = (size_t)strtoul(t->id + 1, NULL, 10);
                    assert_true(id < n);
                    assert_int_equal(seen[id]++, 0);
                    assert_int_equal(t->ninputs, ndeps[id]);
                    assert_int_equal(perm[t->order], id);
                    for (size_t k = 0; k < t->ninputs; k++) {
                        assert_true(t->inputs[k].is_task);
                        assert_true(t->inputs[k].index < p); /* topological */
                        assert_int_equal(strtoul(job.tasks[t->inputs[k].index].id + 1, NULL, 10),
                                         deps[id][k]);
                    }
                }
                free(seen);
                tsr_job_free(&job);
            } else {
                /* t0 reads t(n-1); a cycle exactly when t(n-1) depends on t0,
                 * which the model decides by a walk over deps */
                bool *reach = calloc(n, sizeof(bool));
                reach[0] = true;
                for (size_t i = 1; i < n; i++)
                    for (size_t k = 0; k < ndeps[i]; k++)
                        reach[i] |= reach[deps[i][k]];
                bool cycle = reach[n - 1];
                free(reach);
                if (cycle) {
                    assert_int_equal(rc, TSR_ERR_BAD_INPUT);
                    assert_non_null(strstr(err.message, "cycle"));
                } else {
                    assert_int_equal(rc, TSR_OK);
                    tsr_job_free(&job);
                }
            }
            free(text);
        }
        free(perm);
        free(deps);
        free(ndeps);
    }
}

static void test_load(void **state)
{
    (void)state;
    tsr_job_t job;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_job_load(NULL, "/nonexistent/job.sql", &job, &err), TSR_ERR_NOT_FOUND);
    char path[] = "/tmp/tsr_jobfile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "SELECT a FROM t; SELECT b FROM t";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    tsr_error_clear(&err);
    assert_int_equal(tsr_job_load(NULL, path, &job, &err), TSR_OK);
    assert_int_equal(job.nstmts, 2);
    tsr_job_free(&job);
    unlink(path);
    assert_true(tsr_job_ident_ok("a_1"));
    assert_false(tsr_job_ident_ok("a-1"));
    assert_false(tsr_job_ident_ok(""));
    assert_false(tsr_job_ident_ok("9a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_basic),  cmocka_unit_test(test_sql_bad),
        cmocka_unit_test(test_sql_random), cmocka_unit_test(test_graph_ok),
        cmocka_unit_test(test_graph_bad),  cmocka_unit_test(test_graph_random),
        cmocka_unit_test(test_load),       cmocka_unit_test(test_graph_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
