/*
 * proto.h - the scheduler protocol: message types, a checked little-endian
 * encoder/decoder, and the two payloads every task answers with (a result
 * table, or an error with its position).
 *
 * Messages ride on the transport's RPC (transport/transport.h): one request,
 * one response. Payload encoding, all little-endian:
 *   u8/u32/u64/i32/i64/f64 fixed width; str = u32 length L, L bytes, one NUL
 *   byte (so decoded strings point into the message and are C strings; a
 *   string with a NUL inside or without the trailing NUL is rejected).
 *
 * Result table ("rtab"), the answer of SQL tasks and jobs:
 *   u32 ncols, u64 nrows, ncols x {str name, u8 type}, then per column:
 *   nrows bytes of null flags (1 = NULL), then nrows values: INT64/DOUBLE 8
 *   bytes (doubles bit for bit), BOOL 1 byte, VARCHAR a str. NULL-typed result
 *   columns travel as VARCHAR with every row NULL.
 * Error ("rerr"), the payload of a non-OK response:
 *   str message, str hint, str file, i32 line, i32 column.
 *
 * Every decoder checks every length against what is left and fails with
 * TSR_ERR_BAD_INPUT instead of reading past the message.
 */
#ifndef TSR_SCHED_PROTO_H
#define TSR_SCHED_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "scheduler.h"
#include "tessera/lock.h"
#include "tessera/tessera.h"

/* RPC types of the scheduler protocol (transport types 100..199). */
enum {
    TSR_MSG_HELLO = 101,       /* any -> scheduler: role, client nonce */
    TSR_MSG_PROVE = 102,       /* any -> scheduler: MAC over both nonces (+ join info) */
    TSR_MSG_PING = 103,        /* scheduler -> worker: heartbeat {u32 dead_ms}; reply: load */
    TSR_MSG_CLIENT_PING = 104, /* client -> scheduler: liveness while a job runs */
    TSR_MSG_PROGRESS = 105,    /* scheduler -> client: a job's progress (versioned, below) */
    TSR_MSG_SQL = 110,         /* client -> scheduler: run a query */
    TSR_MSG_STATUS = 111,      /* client -> scheduler: the cluster's state */
    TSR_MSG_LOCK = 112,        /* client -> scheduler: a lock request (lock req below) */
    TSR_MSG_GRAPH = 113,       /* client -> scheduler: run a task graph (sched_graph.c) */
    TSR_MSG_LOCK_VIEW = 114,   /* client/worker -> scheduler: the lock homes (lock view below) */
    TSR_MSG_KV = 118,          /* client -> scheduler: a kv request (kv_msg.h, sched_kv.c) */
    TSR_MSG_CANCEL = 119,      /* client -> scheduler: cancel its job(s) (cancel below) */
    TSR_MSG_TASK_INFER = 120,  /* scheduler -> worker: load a byte range, report types */
    TSR_MSG_TASK_RUN = 121,    /* scheduler -> worker: run SQL over a byte range */
    TSR_MSG_TASK_WHOLE = 122,  /* scheduler -> worker: run SQL over whole files */
    TSR_MSG_LOCK_RUN = 123,    /* scheduler -> the lock's home worker: run a lock request */
    TSR_MSG_TASK_GRAPH = 124,  /* scheduler -> worker: run one task of a graph */
    TSR_MSG_KV_RUN = 128,      /* scheduler -> a partition's worker: kv op (worker_kv.c) */
    TSR_MSG_TASK_DROP = 129,   /* scheduler -> worker: drop a cancelled job's queued tasks */
    TSR_MSG_VALUE_FETCH = 140, /* worker -> worker: a kept graph value (value_fetch.h) */
    TSR_MSG_VALUE_DROP = 141,  /* scheduler -> worker: drop kept graph values (value_fetch.h) */
};

/* Roles a peer claims in HELLO. */
enum { TSR_ROLE_WORKER = 1, TSR_ROLE_CLIENT = 2 };

#define TSR_NONCE_LEN 32
#define TSR_MAC_LEN 32

/* ---- encoder ---------------------------------------------------------------- */

typedef struct tsr_wbuf {
    tsr_mem_t *mem;
    uint8_t *data; /* owned; tsr_wbuf_free */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed: the buffer is incomplete */
} tsr_wbuf_t;

void tsr_wbuf_init(tsr_wbuf_t *b, tsr_mem_t *mem);
void tsr_wbuf_free(tsr_wbuf_t *b);
void tsr_wbuf_bytes(tsr_wbuf_t *b, const void *p, size_t n);
/* "bytes" on the wire: a u32 length, then the bytes (tsr_rbuf_blob). */
void tsr_wbuf_blob(tsr_wbuf_t *b, const void *p, size_t n);
void tsr_wbuf_u8(tsr_wbuf_t *b, uint8_t v);
void tsr_wbuf_u32(tsr_wbuf_t *b, uint32_t v);
void tsr_wbuf_u64(tsr_wbuf_t *b, uint64_t v);
void tsr_wbuf_i32(tsr_wbuf_t *b, int32_t v);
void tsr_wbuf_str(tsr_wbuf_t *b, const char *s); /* NULL encodes as "" */
void tsr_wbuf_strn(tsr_wbuf_t *b, const char *s, size_t n);

/* ---- decoder ---------------------------------------------------------------- */

typedef struct tsr_rbuf {
    const uint8_t *p;
    size_t len;
    size_t pos;
    bool bad; /* a read ran past the end or met a malformed string */
} tsr_rbuf_t;

void tsr_rbuf_init(tsr_rbuf_t *r, const void *p, size_t len);
const void *tsr_rbuf_bytes(tsr_rbuf_t *r, size_t n); /* NULL when short */
/* "bytes" on the wire: a u32 length, then that many bytes; *n gets the
 * length, NULL when short or already bad. */
const void *tsr_rbuf_blob(tsr_rbuf_t *r, size_t *n);
uint8_t tsr_rbuf_u8(tsr_rbuf_t *r);
uint32_t tsr_rbuf_u32(tsr_rbuf_t *r);
uint64_t tsr_rbuf_u64(tsr_rbuf_t *r);
int32_t tsr_rbuf_i32(tsr_rbuf_t *r);
const char *tsr_rbuf_str(tsr_rbuf_t *r); /* "" when bad */
/* True when nothing went wrong and every byte was read. */
bool tsr_rbuf_done(const tsr_rbuf_t *r);

/* ---- result tables ------------------------------------------------------------ */

/* A decoded result table; strings point into the message it came from. */
typedef struct tsr_rtab {
    size_t ncols;
    size_t nrows;
    const char **names;
    tsr_type_t *types;
    bool **nulls;  /* per column, nrows flags */
    void **values; /* per column: int64_t[], double[], bool[] or const char *[] */
} tsr_rtab_t;

tsr_status_t tsr_proto_encode_result(tsr_wbuf_t *b, const tsr_result_t *res);
/* Decodes msg into out (arrays owned by out, strings borrowed from msg). */
tsr_status_t tsr_proto_decode_rtab(tsr_mem_t *mem, const void *msg, size_t len, tsr_rtab_t *out,
                                   tsr_error_t *err);
/* Appends src's rows to dst (same shape: checked). dst may be empty (zeroed):
 * it then takes src's shape. Strings stay borrowed. */
tsr_status_t tsr_proto_rtab_append(tsr_mem_t *mem, tsr_rtab_t *dst, const tsr_rtab_t *src,
                                   tsr_error_t *err);
void tsr_proto_rtab_free(tsr_mem_t *mem, tsr_rtab_t *t);
/* Registers t in ctx as table `name`; column i is named names ? names[i] : t's. */
tsr_status_t tsr_proto_rtab_register(tsr_mem_t *mem, tsr_context_t *ctx, const char *name,
                                     const tsr_rtab_t *t, const char *const *names);

/* ---- lock requests (docs/locks.md "Locks on a cluster") ------------------------
 * Request (LOCK and LOCK_RUN): u8 op, str name, u8 shared, u64 lease_ms (i64),
 * u64 timeout_ms (i64, < 0: no limit), u64 token, u32 home (the home's index
 * in the scheduler's lock view; set by the scheduler, 0 from clients).
 * Replies: acquire u64 token; release, renew empty; status u32 state,
 * u32 holders, u8 holders_exact, u32 waiters, u64 last_token, u64 lease_ms,
 * u32 home, u32 slot, u32 epoch. Errors are "rerr" payloads. */

void tsr_proto_encode_lock_req(tsr_wbuf_t *b, const tsr_client_lock_req_t *q);
/* Decodes into q (q->name points into msg). false when malformed. */
bool tsr_proto_decode_lock_req(const void *msg, size_t len, tsr_client_lock_req_t *q);
void tsr_proto_encode_lock_status(tsr_wbuf_t *b, const tsr_lock_status_t *st);
bool tsr_proto_decode_lock_status(const void *msg, size_t len, tsr_lock_status_t *st);

/* ---- the lock view (TSR_MSG_LOCK_VIEW, docs/locks.md "Locks on a cluster") ---------
 * The request is empty. Reply: u8 version (1), u64 generation (bumped when a
 * home moves to another worker: a client that cached an older view must
 * fetch it again), u32 n (1..TSR_LOCK_VIEW_MAX), then n homes in the order
 * names map to: {u32 worker (1-based, as in cluster status), u32 node_id (its
 * transport's), str host, u32 port (1..65535, where its transport listens)}.
 * A decoder refuses any other version, a count out of range, a port out of
 * range or an empty host, and trailing bytes. */

#define TSR_LOCK_VIEW_VERSION 1u
#define TSR_LOCK_VIEW_MAX 1024u

typedef struct tsr_lock_view_home {
    uint32_t worker;
    uint32_t node_id;
    const char *host; /* into the message */
    uint16_t port;
} tsr_lock_view_home_t;

typedef struct tsr_lock_view {
    uint64_t generation;
    size_t nhomes;
    tsr_lock_view_home_t *homes; /* owned: tsr_proto_lock_view_free */
} tsr_lock_view_t;

void tsr_proto_encode_lock_view(tsr_wbuf_t *b, uint64_t generation,
                                const tsr_lock_view_home_t *homes, size_t n);
/* Decodes msg into v (v->homes allocated from mem, hosts borrowed from msg);
 * false when malformed (nothing left allocated). */
bool tsr_proto_decode_lock_view(tsr_mem_t *mem, const void *msg, size_t len, tsr_lock_view_t *v);
void tsr_proto_lock_view_free(tsr_mem_t *mem, tsr_lock_view_t *v);

/* ---- progress (TSR_MSG_PROGRESS) ------------------------------------------------
 * {u8 version, u64 job, u32 done, u32 total, u64 rows, u64 elapsed_ms}; the
 * reply is empty. Version 1 is the layout above; a later version may only
 * append fields, so a decoder reads the version-1 prefix of any version >= 1
 * and refuses version 0 or a message shorter than that prefix. total may grow
 * while a job runs (a SQL job learns its second phase's size late). */

#define TSR_PROGRESS_VERSION 1u

typedef struct tsr_progress {
    uint64_t job;
    uint32_t done;  /* tasks finished */
    uint32_t total; /* tasks known so far */
    uint64_t rows;  /* input rows of finished tasks (SQL) or rows they produced (graphs) */
    uint64_t elapsed_ms;
} tsr_progress_t;

void tsr_proto_encode_progress(tsr_wbuf_t *b, const tsr_progress_t *p);
bool tsr_proto_decode_progress(const void *msg, size_t len, tsr_progress_t *p);

/* ---- cancel (TSR_MSG_CANCEL) ----------------------------------------------------
 * {u64 job}: the job to cancel, 0 for every job the sending connection
 * submitted and is still waiting for; only the submitting connection may
 * cancel a job. Reply {u32 jobs cancelled}. The cancelled job's own request
 * is answered TSR_ERR_UNAVAILABLE with the message "job N was cancelled". */

/* TASK_DROP (scheduler -> worker) has the same {u64 job} payload: the worker
 * answers its queued, not yet started tasks of that job (INFER, RUN, WHOLE
 * with its trailing job and GRAPH version 2 carry their job)
 * TSR_ERR_UNAVAILABLE with an error payload "job N was cancelled", interrupts
 * the job's running task (which answers TSR_ERR_CANCELLED "job N was
 * cancelled"), and replies {u32 tasks dropped}. */
void tsr_proto_encode_cancel(tsr_wbuf_t *b, uint64_t job);
bool tsr_proto_decode_cancel(const void *msg, size_t len, uint64_t *job);

/* ---- graph values ------------------------------------------------------------------
 * The value a graph task wrote to its output ("value"): u8 kind
 * (tsr_data_kind_t: 0 empty, 1 bytes, 2 table), u64 length L, then L bytes:
 * the raw bytes, or a result table ("rtab") for a table. */

struct tsr_data;
typedef struct tsr_value {
    uint8_t kind;     /* TSR_DATA_EMPTY/BYTES/TABLE */
    const void *body; /* into the message */
    size_t len;
} tsr_value_t;

/* Encodes the value of a graph handle. */
tsr_status_t tsr_proto_encode_data(tsr_wbuf_t *b, const struct tsr_data *d);
/* Reads one value from r (checked: kind known, length within the message). */
bool tsr_proto_read_value(tsr_rbuf_t *r, tsr_value_t *v);
/* Writes v back (kind, length, body). */
void tsr_proto_write_value(tsr_wbuf_t *b, const tsr_value_t *v);

/* ---- device constraints ------------------------------------------------------------
 * {str need, str prefer} (docs/cluster.md "Scheduling"): a requirement and a
 * preference in the placer's spelling (policy.h: "" none, "gpu", or a backend
 * with an optional index, "cuda", "opencl1"). It travels as the optional
 * trailer of a SQL request (after the tables: absent means no constraint,
 * present must be whole and end the message) and per task in a GRAPH request
 * of version 2. The reader refuses a malformed or unknown spelling. */

void tsr_proto_encode_device(tsr_wbuf_t *b, const char *need, const char *prefer);
/* Reads the pair from r (strings into the message; "" for none); false, and
 * r->bad set, when short or not a valid spelling. */
bool tsr_proto_read_device(tsr_rbuf_t *r, const char **need, const char **prefer);
/* The user's word (--device, a job file's "device") as a constraint:
 * NULL, "" or "auto" prefer a GPU ("gpu") and require nothing; "cpu" neither
 * (a worker runs its tasks on its own device; results do not depend on it);
 * "gpu", "cuda[N]", "opencl[N]" require it. false: not one of those. */
bool tsr_proto_device_constraint(const char *device, const char **need, const char **prefer);

/* ---- SQL requests (TSR_MSG_SQL) --------------------------------------------------
 * {str sql, u8 delimiter, u32 ntables (<= TSR_SQL_REQ_MAX_TABLES) x {str name,
 * str path, str schema}}, then the optional device trailer above. */

#define TSR_SQL_REQ_MAX_TABLES 64

typedef struct tsr_sql_req {
    const char *sql; /* strings point into the message */
    char delim;
    size_t ntables;
    const char *names[TSR_SQL_REQ_MAX_TABLES], *paths[TSR_SQL_REQ_MAX_TABLES],
        *schemas[TSR_SQL_REQ_MAX_TABLES];
    const char *need, *prefer; /* "" when the trailer is absent */
} tsr_sql_req_t;

/* need NULL: no trailer (prefer ignored). */
void tsr_proto_encode_sql_req(tsr_wbuf_t *b, const char *sql, char delim,
                              const tsr_client_table_t *tables, size_t ntables, const char *need,
                              const char *prefer);
/* false when malformed: short, too many tables, a partial or invalid
 * trailer, trailing bytes. */
bool tsr_proto_decode_sql_req(const void *msg, size_t len, tsr_sql_req_t *q);

/* ---- errors -------------------------------------------------------------------- */

void tsr_proto_encode_error(tsr_wbuf_t *b, const tsr_error_t *e);
/* Answers req with status rc and an error payload of msg and hint (may be
 * NULL); when the payload cannot be built (out of memory), with rc alone. */
struct tsr_transport;
struct tsr_rpc_req;
void tsr_proto_reply_error(struct tsr_transport *t, tsr_mem_t *mem, struct tsr_rpc_req *req,
                           tsr_status_t rc, const char *msg, const char *hint);
/* Fills e from an error payload (status given separately); a payload that does
 * not decode leaves a generic message. */
void tsr_proto_decode_error(const void *msg, size_t len, tsr_status_t status, tsr_error_t *e);
/* Copies the context's last error into e. */
void tsr_proto_context_error(const tsr_context_t *ctx, tsr_error_t *e);

#endif /* TSR_SCHED_PROTO_H */
