/*
 * jobfile.h - `tessera submit` job files: SQL statements or a task graph in
 * JSON (docs/cluster.md "Job files"), parsed and checked before anything runs.
 *
 * A SQL job (any file not ending in .json) is split into statements at ';'
 * outside quotes and comments; each keeps its first line in the file.
 *
 * A graph job (.json) is one object:
 *   { "tables": [ {"name": "cities", "path": "cities.csv", "schema": "..."} ],
 *     "tasks":  [ {"id": "density", "kind": "density", "inputs": ["cities"],
 *                  "param": "..."},
 *                 {"id": "report", "kind": "sql", "inputs": ["cities", "density"],
 *                  "sql": "SELECT ..."} ],
 *     "outputs": ["report"],       optional: the tasks whose results print
 *     "delimiter": "," }           optional: the CSV files' delimiter
 * Every task writes one value named by its id; an input names a table or a
 * task. kind: "sql", "concat", "identity" or a user kind (loaded from a
 * plugin by whoever runs it). Table paths are relative to the job file's
 * folder and come out absolute.
 *
 * Invariants of a parsed graph: ids and table names are unique identifiers
 * ([A-Za-z_][A-Za-z0-9_]*, no id equal to a table name); tasks are in a
 * topological order (an input that is a task names an earlier one), so
 * whoever runs them needs no cycle check; `order` maps back to file order.
 * Errors are TSR_ERR_BAD_INPUT with the file and line:column (JSON syntax)
 * or the task's id in the message (unknown task, cycle, dangling input).
 */
#ifndef TSR_SCHED_JOBFILE_H
#define TSR_SCHED_JOBFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"

#define TSR_JOB_MAX_TASKS 100000
#define TSR_JOB_MAX_TABLES 64

typedef enum tsr_job_kind { TSR_JOB_SQL = 1, TSR_JOB_GRAPH = 2 } tsr_job_kind_t;

typedef struct tsr_job_stmt {
    const char *sql; /* NUL-terminated statement, without its ';' */
    int line;        /* its first line in the file (1-based) */
} tsr_job_stmt_t;

typedef struct tsr_job_table {
    const char *name;
    const char *path;   /* absolute when the file exists (realpath), else as joined */
    const char *schema; /* NULL when none */
} tsr_job_table_t;

typedef struct tsr_job_input {
    bool is_task;   /* a task's output, else a table */
    uint32_t index; /* into tasks (an earlier one) or tables */
} tsr_job_input_t;

typedef struct tsr_job_task {
    const char *id;
    const char *kind;
    const char *sql;   /* "sql" tasks; NULL otherwise */
    const char *param; /* user kinds' parameter string; NULL when none */
    const char *need;   /* device requirement / preference (proto.h spelling), NULL */
    const char *prefer; /*   none: from "device" (jobfile) or the kind (graph_client) */
    size_t ninputs;
    tsr_job_input_t *inputs;
    bool sink;    /* its result is printed */
    size_t order; /* its index in the file */
} tsr_job_task_t;

typedef struct tsr_job {
    tsr_job_kind_t kind;
    /* SQL */
    size_t nstmts;
    tsr_job_stmt_t *stmts;
    /* graph */
    size_t ntables;
    tsr_job_table_t *tables;
    size_t ntasks;
    tsr_job_task_t *tasks; /* topological order */
    char delimiter;
    tsr_arena_t arena; /* everything above lives here */
} tsr_job_t;

/* Parses text (len bytes, from file `path`, used for messages, the kind and
 * relative table paths) into out. On error out is empty and err says why. */
tsr_status_t tsr_job_parse(tsr_mem_t *mem, const char *path, const char *text, size_t len,
                           tsr_job_t *out, tsr_error_t *err);
/* Reads and parses file path (TSR_ERR_NOT_FOUND when it cannot be opened). */
tsr_status_t tsr_job_load(tsr_mem_t *mem, const char *path, tsr_job_t *out, tsr_error_t *err);
void tsr_job_free(tsr_job_t *job);

/* True when s is an identifier [A-Za-z_][A-Za-z0-9_]* of at most 128 bytes. */
bool tsr_job_ident_ok(const char *s);

#endif /* TSR_SCHED_JOBFILE_H */
