/*
 * jobfile.c - parsing and checking `tessera submit` job files (jobfile.h).
 *
 * SQL files are cut into statements by a small scanner that knows the SQL
 * lexer's quoting ('..' with '' inside, ".." with "" inside) and comments
 * (-- to the end of the line, block comments): a ';' inside any of them does
 * not end a statement.
 *
 * JSON files are read with jansson (JSON_REJECT_DUPLICATES: a key given twice
 * is an error, not a silent override). Unknown keys are errors too, so a
 * typo ("input" for "inputs") is reported rather than ignored. Checking a
 * graph: ids are sorted once (qsort) and inputs resolved by binary search;
 * Kahn's algorithm with a FIFO seeded in file order gives the topological
 * order (file order where the graph allows); nodes it cannot order lie on or
 * behind a cycle, and walking unprocessed predecessors from one of them must
 * revisit a node, which names the cycle in the message.
 */
#include "jobfile.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define MAX_JOB_BYTES (64u << 20)

bool tsr_job_ident_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

void tsr_job_free(tsr_job_t *job)
{
    if (!job)
        return;
    tsr_arena_release(&job->arena);
    memset(job, 0, sizeof(*job));
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- SQL -------------------------------------------------------------------- */

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Adds text[from, to) as a statement when it holds anything but blanks and
 * comments (has_code). */
static tsr_status_t add_stmt(tsr_job_t *job, const char *text, size_t from, size_t to, int line,
                             size_t *cap, tsr_error_t *err)
{
    while (from < to && blank(text[from])) {
        line += text[from] == '\n';
        from++;
    }
    if (job->nstmts == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        tsr_job_stmt_t *n = tsr_arena_alloc(&job->arena, ncap * sizeof(*n));
        if (!n)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        if (job->nstmts)
            memcpy(n, job->stmts, job->nstmts * sizeof(*n));
        job->stmts = n;
        *cap = ncap;
    }
    char *s = tsr_arena_strndup(&job->arena, text + from, to - from);
    if (!s)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    job->stmts[job->nstmts].sql = s;
    job->stmts[job->nstmts].line = line;
    job->nstmts++;
    return TSR_OK;
}

static tsr_status_t parse_sql(const char *path, const char *text, size_t len, tsr_job_t *job,
                              tsr_error_t *err)
{
    size_t cap = 0, start = 0;
    int line = 1, start_line = 1;
    bool code = false; /* the current statement has something besides comments */
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '\'' || c == '"') {
            int at = line;
            size_t j = i + 1;
            for (;;) {
                if (j >= len)
                    return tsr_error_set_at(err, TSR_ERR_BAD_INPUT, path, at, 0,
                                            "unterminated %s in the job file",
                                            c == '\'' ? "string" : "quoted name");
                if (text[j] == '\n')
                    line++;
                if (text[j] == c) {
                    if (j + 1 < len && text[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            i = j + 1;
            code = true;
        } else if (c == '-' && i + 1 < len && text[i + 1] == '-') {
            while (i < len && text[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            int at = line;
            size_t j = i + 2;
            while (j + 1 < len && !(text[j] == '*' && text[j + 1] == '/')) {
                line += text[j] == '\n';
                j++;
            }
            if (j + 1 >= len)
                return tsr_error_set_at(err, TSR_ERR_BAD_INPUT, path, at, 0,
                                        "unterminated comment in the job file");
            i = j + 2;
        } else if (c == ';') {
            if (code) {
                tsr_status_t rc = add_stmt(job, text, start, i, start_line, &cap, err);
                if (rc != TSR_OK)
                    return rc;
            }
            code = false;
            start = ++i;
            start_line = line;
        } else {
            if (c == '\n')
                line++;
            else if (!blank(c))
                code = true;
            i++;
        }
    }
    if (code) {
        tsr_status_t rc = add_stmt(job, text, start, len, start_line, &cap, err);
        if (rc != TSR_OK)
            return rc;
    }
    if (job->nstmts == 0) {
        tsr_error_set_at(err, TSR_ERR_BAD_INPUT, path, 1, 0, "the job file has no SQL statement");
        tsr_error_hint(err, "write one or more SELECT statements, separated by ';'");
        return TSR_ERR_BAD_INPUT;
    }
    job->kind = TSR_JOB_SQL;
    return TSR_OK;
}

/* ---- JSON graphs -------------------------------------------------------------- */

typedef struct gctx {
    const char *path;
    tsr_job_t *job;
    tsr_mem_t *mem;
    tsr_error_t *err;
    tsr_job_task_t **by_id; /* the tasks (file order array) sorted by id */
} gctx_t;

static tsr_status_t bad(gctx_t *g, const char *fmt, const char *a, const char *b)
{
    char msg[400];
    snprintf(msg, sizeof(msg), fmt, a ? a : "", b ? b : "");
    return tsr_error_set_at(g->err, TSR_ERR_BAD_INPUT, g->path, 0, 0, "%s", msg);
}

static char *dup_str(gctx_t *g, const char *s)
{
    return tsr_arena_strndup(&g->job->arena, s, strlen(s));
}

/* Checks that obj has only keys from `allowed` (NULL-terminated). */
static tsr_status_t only_keys(gctx_t *g, json_t *obj, const char *const *allowed, const char *what,
                              const char *who)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *k = allowed; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (!ok) {
            char w[300];
            snprintf(w, sizeof(w), "%s%s%s", what, who ? " " : "", who ? who : "");
            return bad(g, "unknown key '%s' in %s", key, w);
        }
    }
    return TSR_OK;
}

/* A string member; NULL when absent; an error when present and not a string. */
static tsr_status_t get_str(gctx_t *g, json_t *obj, const char *key, const char *who,
                            const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return TSR_OK;
    if (!json_is_string(v))
        return bad(g, "'%s' of %s must be a string", key, who);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return bad(g, "'%s' of %s holds a NUL character", key, who);
    if (!(*out = dup_str(g, json_string_value(v))))
        return tsr_error_set(g->err, TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

static const char *resolve_path(gctx_t *g, const char *rel)
{
    char joined[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(g->path, '/');
    if (rel[0] == '/' || !slash)
        snprintf(joined, sizeof(joined), "%s", rel);
    else
        snprintf(joined, sizeof(joined), "%.*s/%s", (int)(slash - g->path), g->path, rel);
    return dup_str(g, realpath(joined, real) ? real : joined);
}

static tsr_status_t parse_tables(gctx_t *g, json_t *arr)
{
    static const char *const keys[] = {"name", "path", "schema", NULL};
    tsr_job_t *job = g->job;
    if (!json_is_array(arr))
        return bad(g, "'tables' must be an array of {\"name\", \"path\"} objects%s%s", NULL, NULL);
    size_t n = json_array_size(arr);
    if (n > TSR_JOB_MAX_TABLES)
        return tsr_error_set_at(g->err, TSR_ERR_BAD_INPUT, g->path, 0, 0,
                                "too many tables (at most %d)", TSR_JOB_MAX_TABLES);
    job->tables = tsr_arena_alloc(&job->arena, (n ? n : 1) * sizeof(*job->tables));
    if (!job->tables)
        return tsr_error_set(g->err, TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(arr, i);
        tsr_job_table_t *jt = &job->tables[i];
        const char *path = NULL;
        char who[64];
        snprintf(who, sizeof(who), "table #%zu", i + 1);
        if (!json_is_object(t))
            return bad(g, "%s must be an object%s", who, NULL);
        tsr_status_t rc;
        if ((rc = only_keys(g, t, keys, "table", NULL)) != TSR_OK ||
            (rc = get_str(g, t, "name", who, &jt->name)) != TSR_OK ||
            (rc = get_str(g, t, "path", who, &path)) != TSR_OK ||
            (rc = get_str(g, t, "schema", who, &jt->schema)) != TSR_OK)
            return rc;
        if (!jt->name || !tsr_job_ident_ok(jt->name))
            return bad(g, "%s needs a \"name\" made of letters, digits and '_'%s", who, NULL);
        if (!path || !path[0])
            return bad(g, "table '%s' needs a \"path\" to a CSV file%s", jt->name, NULL);
        for (size_t k = 0; k < i; k++)
            if (strcmp(job->tables[k].name, jt->name) == 0)
                return bad(g, "table '%s' is declared twice%s", jt->name, NULL);
        if (!(jt->path = resolve_path(g, path)))
            return tsr_error_set(g->err, TSR_ERR_NOMEM, "out of memory");
        job->ntables++;
    }
    return TSR_OK;
}

static int by_id_cmp(const void *a, const void *b)
{
    return strcmp((*(tsr_job_task_t *const *)a)->id, (*(tsr_job_task_t *const *)b)->id);
}

/* The file-order index of task `id`, or -1. */
static long find_task(const gctx_t *g, const tsr_job_task_t *tasks, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->by_id[mid]->id, id);
        if (c == 0)
            return (long)(g->by_id[mid] - tasks);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static long find_table(const tsr_job_t *job, const char *name)
{
    for (size_t i = 0; i < job->ntables; i++)
        if (strcmp(job->tables[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* One task object (file index i) into t; input names are kept in names[]
 * (resolved later, once every id is known). */
static tsr_status_t parse_task(gctx_t *g, json_t *o, size_t i, tsr_job_task_t *t,
                               const char ***names)
{
    static const char *const keys[] = {"id", "kind", "inputs", "sql", "param", "device", NULL};
    char who[64];
    snprintf(who, sizeof(who), "task #%zu", i + 1);
    if (!json_is_object(o))
        return bad(g, "%s must be an object%s", who, NULL);
    tsr_status_t rc;
    if ((rc = get_str(g, o, "id", who, &t->id)) != TSR_OK)
        return rc;
    if (!t->id || !tsr_job_ident_ok(t->id))
        return bad(g, "%s needs an \"id\" made of letters, digits and '_'%s", who, NULL);
    if ((rc = only_keys(g, o, keys, "task", t->id)) != TSR_OK ||
        (rc = get_str(g, o, "kind", t->id, &t->kind)) != TSR_OK ||
        (rc = get_str(g, o, "sql", t->id, &t->sql)) != TSR_OK ||
        (rc = get_str(g, o, "param", t->id, &t->param)) != TSR_OK)
        return rc;
    const char *dev = NULL;
    if ((rc = get_str(g, o, "device", t->id, &dev)) != TSR_OK)
        return rc;
    if (dev) { /* the task's own constraint (proto.h): "auto" prefers, "cuda" requires */
        const char *need, *prefer;
        if (!tsr_proto_device_constraint(dev, &need, &prefer))
            return bad(g,
                       "task '%s' has an unknown \"device\" '%s' (cpu, auto, gpu, cuda, "
                       "opencl, cuda0, ...)",
                       t->id, dev);
        t->need = need[0] ? need : NULL;
        t->prefer = prefer[0] ? prefer : NULL;
    }
    if (!t->kind || !tsr_job_ident_ok(t->kind))
        return bad(g, "task '%s' needs a \"kind\": sql, concat, identity or a plugin's task%s",
                   t->id, NULL);
    bool is_sql = strcmp(t->kind, "sql") == 0;
    if (is_sql && (!t->sql || !t->sql[0]))
        return bad(g, "task '%s' is a sql task but has no \"sql\"%s", t->id, NULL);
    if (!is_sql && t->sql)
        return bad(g, "task '%s' has \"sql\" but is not a sql task (kind '%s')", t->id, t->kind);
    json_t *in = json_object_get(o, "inputs");
    size_t nin = 0;
    if (in) {
        if (!json_is_array(in))
            return bad(g, "\"inputs\" of task '%s' must be an array of names%s", t->id, NULL);
        nin = json_array_size(in);
    }
    if (strcmp(t->kind, "identity") == 0 && nin != 1)
        return bad(g, "task '%s' (identity) needs exactly one input%s", t->id, NULL);
    if (strcmp(t->kind, "concat") == 0 && nin == 0)
        return bad(g, "task '%s' (concat) needs at least one input%s", t->id, NULL);
    t->ninputs = nin;
    t->inputs = tsr_arena_alloc(&g->job->arena, (nin ? nin : 1) * sizeof(*t->inputs));
    *names = tsr_arena_alloc(&g->job->arena, (nin ? nin : 1) * sizeof(**names));
    if (!t->inputs || !*names)
        return tsr_error_set(g->err, TSR_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < nin; k++) {
        json_t *v = json_array_get(in, k);
        if (!json_is_string(v))
            return bad(g, "\"inputs\" of task '%s' must be an array of names%s", t->id, NULL);
        (*names)[k] = json_string_value(v);
    }
    t->order = i;
    return TSR_OK;
}

/* Names the cycle through the unprocessed task v (file indices). */
static tsr_status_t report_cycle(gctx_t *g, const tsr_job_task_t *tasks, size_t n,
                                 const size_t *left, size_t v)
{
    /* walk unprocessed predecessors until a task repeats */
    long *seen = tsr_mem_calloc(g->mem, n, sizeof(long)); /* step + 1 when visited */
    size_t *walk = tsr_mem_calloc(g->mem, n + 1, sizeof(size_t));
    if (!seen || !walk) {
        tsr_mem_free(g->mem, seen);
        tsr_mem_free(g->mem, walk);
        return tsr_error_set(g->err, TSR_ERR_NOMEM, "out of memory");
    }
    size_t steps = 0;
    while (!seen[v]) {
        seen[v] = (long)++steps;
        walk[steps - 1] = v;
        size_t next = v;
        for (size_t k = 0; k < tasks[v].ninputs; k++) {
            const tsr_job_input_t *in = &tasks[v].inputs[k];
            if (in->is_task && left[in->index]) {
                next = in->index;
                break;
            }
        }
        v = next;
    }
    /* the cycle is walk[seen[v]-1 .. steps-1], read backwards (producer first) */
    char msg[400];
    size_t o = 0, first = (size_t)seen[v] - 1;
    o += (size_t)snprintf(msg, sizeof(msg), "%s", tasks[v].id);
    for (size_t s = steps; s-- > first && o < sizeof(msg);)
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, " -> %s", tasks[walk[s]].id);
    tsr_mem_free(g->mem, seen);
    tsr_mem_free(g->mem, walk);
    tsr_error_set_at(g->err, TSR_ERR_BAD_INPUT, g->path, 0, 0, "the task graph has a cycle: %s",
                     msg);
    tsr_error_hint(g->err, "a task cannot read, even indirectly, its own output");
    return TSR_ERR_BAD_INPUT;
}

/* Orders tasks topologically (Kahn) and remaps inputs; file order kept where
 * dependencies allow. */
static tsr_status_t order_tasks(gctx_t *g, tsr_job_task_t *tasks, size_t n)
{
    tsr_job_t *job = g->job;
    tsr_status_t rc = TSR_ERR_NOMEM;
    size_t *indeg = tsr_mem_calloc(g->mem, n ? n : 1, sizeof(size_t));
    size_t *start = tsr_mem_calloc(g->mem, n + 1, sizeof(size_t));
    size_t *succ = NULL, *queue = tsr_mem_calloc(g->mem, n ? n : 1, sizeof(size_t));
    size_t *pos = tsr_mem_calloc(g->mem, n ? n : 1, sizeof(size_t));
    size_t nedges = 0;
    if (!indeg || !start || !queue || !pos)
        goto done;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < tasks[i].ninputs; k++)
            if (tasks[i].inputs[k].is_task) {
                start[tasks[i].inputs[k].index + 1]++;
                indeg[i]++;
                nedges++;
            }
    for (size_t i = 0; i < n; i++)
        start[i + 1] += start[i];
    if (!(succ = tsr_mem_calloc(g->mem, nedges ? nedges : 1, sizeof(size_t))))
        goto done;
    {
        size_t *fill = pos; /* borrowed as the fill cursor, reset below */
        for (size_t i = 0; i < n; i++)
            fill[i] = start[i];
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < tasks[i].ninputs; k++)
                if (tasks[i].inputs[k].is_task)
                    succ[fill[tasks[i].inputs[k].index]++] = i;
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            queue[tail++] = i;
    while (head < tail) {
        size_t v = queue[head++];
        for (size_t e = start[v]; e < start[v + 1]; e++)
            if (--indeg[succ[e]] == 0)
                queue[tail++] = succ[e];
    }
    if (tail < n) {
        for (size_t i = 0; i < n; i++)
            if (indeg[i]) {
                rc = report_cycle(g, tasks, n, indeg, i);
                goto done;
            }
    }
    for (size_t p = 0; p < n; p++)
        pos[queue[p]] = p;
    job->tasks = tsr_arena_alloc(&job->arena, (n ? n : 1) * sizeof(*job->tasks));
    if (!job->tasks)
        goto done;
    for (size_t p = 0; p < n; p++) {
        job->tasks[p] = tasks[queue[p]];
        for (size_t k = 0; k < job->tasks[p].ninputs; k++)
            if (job->tasks[p].inputs[k].is_task)
                job->tasks[p].inputs[k].index = (uint32_t)pos[job->tasks[p].inputs[k].index];
    }
    job->ntasks = n;
    rc = TSR_OK;
done:
    if (rc == TSR_ERR_NOMEM)
        tsr_error_set(g->err, rc, "out of memory");
    tsr_mem_free(g->mem, indeg);
    tsr_mem_free(g->mem, start);
    tsr_mem_free(g->mem, succ);
    tsr_mem_free(g->mem, queue);
    tsr_mem_free(g->mem, pos);
    return rc;
}

static tsr_status_t parse_graph_obj(gctx_t *g, json_t *root)
{
    static const char *const keys[] = {"tables", "tasks", "outputs", "delimiter", NULL};
    tsr_job_t *job = g->job;
    tsr_status_t rc;
    if (!json_is_object(root))
        return bad(g, "a graph job is one JSON object with \"tasks\"%s%s", NULL, NULL);
    if ((rc = only_keys(g, root, keys, "the job", NULL)) != TSR_OK)
        return rc;
    job->delimiter = ',';
    json_t *d = json_object_get(root, "delimiter");
    if (d) {
        const char *s = json_is_string(d) ? json_string_value(d) : "";
        if (strlen(s) != 1 || s[0] == '"' || s[0] == '\n' || s[0] == '\r')
            return bad(g, "\"delimiter\" must be one character other than a quote or newline%s%s",
                       NULL, NULL);
        job->delimiter = s[0];
    }
    json_t *tables = json_object_get(root, "tables");
    if (tables && (rc = parse_tables(g, tables)) != TSR_OK)
        return rc;
    json_t *arr = json_object_get(root, "tasks");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad(g, "the job needs \"tasks\": a non-empty array of task objects%s%s", NULL, NULL);
    size_t n = json_array_size(arr);
    if (n > TSR_JOB_MAX_TASKS)
        return tsr_error_set_at(g->err, TSR_ERR_BAD_INPUT, g->path, 0, 0,
                                "too many tasks (at most %d)", TSR_JOB_MAX_TASKS);
    tsr_job_task_t *tasks = tsr_arena_alloc(&job->arena, n * sizeof(*tasks));
    const char ***names = tsr_arena_alloc(&job->arena, n * sizeof(*names));
    g->by_id = tsr_mem_calloc(g->mem, n, sizeof(*g->by_id));
    if (!tasks || !names || !g->by_id)
        return tsr_error_set(g->err, TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if ((rc = parse_task(g, json_array_get(arr, i), i, &tasks[i], &names[i])) != TSR_OK)
            return rc;
        if (find_table(job, tasks[i].id) >= 0)
            return bad(g, "task '%s' has the name of a table%s", tasks[i].id, NULL);
        g->by_id[i] = &tasks[i];
    }
    qsort(g->by_id, n, sizeof(*g->by_id), by_id_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(g->by_id[i - 1]->id, g->by_id[i]->id) == 0)
            return bad(g, "two tasks have the id '%s'%s", g->by_id[i]->id, NULL);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < tasks[i].ninputs; k++) {
            const char *name = names[i][k];
            long ti = find_task(g, tasks, n, name), tb = ti < 0 ? find_table(job, name) : -1;
            if (ti < 0 && tb < 0) {
                bad(g, "task '%s' reads '%s', which is no task or table of the job", tasks[i].id,
                    name);
                tsr_error_hint(g->err, "declare the CSV file under \"tables\" or add a task "
                                       "with that id (dangling input)");
                return TSR_ERR_BAD_INPUT;
            }
            tasks[i].inputs[k].is_task = ti >= 0;
            tasks[i].inputs[k].index = (uint32_t)(ti >= 0 ? ti : tb);
        }
    json_t *outs = json_object_get(root, "outputs");
    if (outs) {
        if (!json_is_array(outs) || json_array_size(outs) == 0)
            return bad(g, "\"outputs\" must be a non-empty array of task ids%s%s", NULL, NULL);
        for (size_t k = 0; k < json_array_size(outs); k++) {
            json_t *v = json_array_get(outs, k);
            long ti = json_is_string(v) ? find_task(g, tasks, n, json_string_value(v)) : -1;
            if (ti < 0)
                return bad(g, "\"outputs\" names '%s', which is no task of the job (unknown task)",
                           json_is_string(v) ? json_string_value(v) : "?", NULL);
            tasks[ti].sink = true;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            tasks[i].sink = true;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < tasks[i].ninputs; k++)
                if (tasks[i].inputs[k].is_task)
                    tasks[tasks[i].inputs[k].index].sink = false;
    }
    if ((rc = order_tasks(g, tasks, n)) != TSR_OK)
        return rc;
    job->kind = TSR_JOB_GRAPH;
    return TSR_OK;
}

static tsr_status_t parse_graph(tsr_mem_t *mem, const char *path, const char *text, size_t len,
                                tsr_job_t *job, tsr_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        tsr_error_set_at(err, TSR_ERR_BAD_INPUT, path, jerr.line > 0 ? jerr.line : 1,
                         jerr.column > 0 ? jerr.column : 0, "malformed JSON in the job file: %s",
                         jerr.text);
        return TSR_ERR_BAD_INPUT;
    }
    gctx_t g = {.path = path, .job = job, .mem = mem, .err = err};
    tsr_status_t rc = parse_graph_obj(&g, root);
    tsr_mem_free(mem, g.by_id);
    json_decref(root);
    return rc;
}

tsr_status_t tsr_job_parse(tsr_mem_t *mem, const char *path, const char *text, size_t len,
                           tsr_job_t *out, tsr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    tsr_arena_init(&out->arena, mem);
    out->delimiter = ',';
    if (!path)
        path = "job";
    tsr_status_t rc;
    if (memchr(text, '\0', len)) {
        rc = tsr_error_set_at(err, TSR_ERR_BAD_INPUT, path, 0, 0,
                              "the job file contains a NUL byte (is it a text file?)");
    } else if (ends_with(path, ".json")) {
        rc = parse_graph(mem, path, text, len, out, err);
    } else {
        rc = parse_sql(path, text, len, out, err);
    }
    if (rc != TSR_OK)
        tsr_job_free(out);
    return rc;
}

tsr_status_t tsr_job_load(tsr_mem_t *mem, const char *path, tsr_job_t *out, tsr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        tsr_status_t st = errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO;
        return tsr_error_set(err, st, "cannot open job file '%s': %s", path, strerror(errno));
    }
    size_t cap = 0, len = 0;
    char *buf = NULL;
    tsr_status_t rc = TSR_OK;
    for (;;) {
        if (len + 65536 > cap && tsr_mem_grow(mem, (void **)&buf, &cap, len + 65536, 1) != 0) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory reading '%s'", path);
            break;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > MAX_JOB_BYTES) {
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "job file '%s' is larger than %u MiB", path,
                               MAX_JOB_BYTES >> 20);
            break;
        }
        if (n == 0) {
            if (ferror(f))
                rc = tsr_error_set(err, TSR_ERR_IO, "cannot read job file '%s'", path);
            break;
        }
    }
    fclose(f);
    if (rc == TSR_OK)
        rc = tsr_job_parse(mem, path, buf ? buf : "", len, out, err);
    tsr_mem_free(mem, buf);
    return rc;
}
