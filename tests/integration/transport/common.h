/*
 * common.h - shared declarations of transport_test, the multi-process tests
 * of transport/ on loopback (main.c says how it runs; one file per scenario
 * group: rpc.c, rma.c (rma, atomics), failure.c (failure, badinput),
 * threads.c (threads, owner), lifecycle.c (forget, forget_stopped,
 * unregister, atomic_timeout), shmkill.c (shmkill); common.c holds what they
 * share).
 *
 * Processes: the driver forks and execs itself (no UCX state crosses a fork),
 * each role arms alarm() so nothing outlives a hang, and the driver waits for
 * every child with a deadline, killing (by PID) what overstays. Roles talk
 * to the driver through files in a private temporary directory.
 */
#ifndef TSR_TRANSPORT_TEST_COMMON_H
#define TSR_TRANSPORT_TEST_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* white-box: tsr__send_raw for the bad-input test, ep info */
#include "transport.h"
#include "wire.h"

/* RPC types of the shared server (common.c). */
#define T_ECHO 1
#define T_SUM 2
#define T_DELAY 3
#define T_LATE 4
#define T_STATS 5
#define T_GETKEY 7
#define T_HOLD 8
#define T_OFFTHREAD 9 /* threads.c: answered by another thread (owner scenario) */

/* Generous: these tests check outcomes, not speed (DESIGN.md), and must pass
 * on a loaded 2-core machine. Bounds below only catch hangs. */
#define CALL_TIMEOUT_MS 60000

extern const char *g_dir;  /* the scenario's temp dir */
extern const char *g_role; /* for messages; NULL in the driver */

/* Prints the failure; the driver also stops its children and removes the
 * dir. Exits 1. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            fail(__VA_ARGS__);                                                                 \
    } while (0)

double now_s(void);
const char *tls_name(void); /* TSR_TEST_TLS: "tcp", "sm" or "default" */

/* ---- files shared with the driver (in g_dir) ---- */
void path_of(char *buf, size_t cap, const char *name);
void write_file(const char *name, const void *data, size_t len);
void write_text(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *read_file(const char *name, size_t *len); /* malloc'ed, NUL-terminated */
bool file_exists(const char *name);

/* ---- driver: children ---- */
#define MAX_KIDS 8
typedef struct kid {
    pid_t pid;
    char name[32];
    bool done;
    int status;
} kid_t;

extern kid_t kids[MAX_KIDS];
extern int nkids;

/* Execs this program as `role NAME DIR args...` (NULL-terminated args). */
pid_t spawn(const char *role, ...);
void reap(void);
void kill_all(void);
void rm_dir(void);
void driver_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Waits until the file exists; fails if a child dies with an error first. */
void wait_file(const char *name, double timeout_s);
void wait_kid(pid_t pid, double timeout_s, bool expect_ok);
uint16_t read_port(const char *name);

/* ---- role helpers ---- */
typedef struct role_ctx {
    tsr_transport_t *t;
    int peers_up, peers_down;
    tsr_peer_t *down[16];
    int ndown;
} role_ctx_t;

void on_event(void *arg, const tsr_transport_event_t *ev);
tsr_transport_t *make_transport(role_ctx_t *rc, uint32_t node, bool listen, unsigned spin_us);
tsr_peer_t *connect_to(tsr_transport_t *t, uint16_t port);
/* Deterministic payload bytes for a seed, and their hash. */
void fill(uint8_t *b, size_t n, uint64_t seed);
uint64_t fnv(const uint8_t *b, size_t n);

/* ---- the RPC server (used by several scenarios) ---- */
typedef struct held {
    tsr_rpc_req_t *req;
    double reply_at; /* T_LATE: when to answer; < 0: on peer death (T_HOLD) */
} held_t;

typedef struct server {
    role_ctx_t rc;
    /* T_DELAY requests per client node (byte 1 of the payload), each client's batch
     * answered in reverse once whole: batches of several clients may interleave. */
    tsr_rpc_req_t *delayed[8][64];
    int ndelayed[8];
    held_t held[64];
    int nheld;
} server_t;

extern tsr_transport_t *g_t; /* the role's transport, for callbacks that need it */

/* Answers held requests that are due (T_LATE) or whose peer died (T_HOLD). */
void server_tick(server_t *s);
void server_register(server_t *s);
/* TSR_TEST_INLINE=1: server_register registers its handlers TSR_RPC_INLINE
 * (the *_inline ctests); g_inline_runs counts handler runs that were. */
bool inline_mode(void);
extern atomic_int g_inline_runs;

/* Async echo calls of the rpc and failure scenarios (common.c). */
typedef struct pending_call {
    uint8_t *buf;
    size_t len;
    uint64_t seed;
    bool done;
    int order; /* completion order (T_DELAY) */
} pending_call_t;

typedef struct rpc_client {
    int completed;
    int failures;
    int next_order;
} rpc_client_t;

extern rpc_client_t g_rc;
/* tsr_rpc_done_fn for a pending_call_t: checks the echoed bytes. */
void echo_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply);

/* rma.c: the region of region_server (and the owner scenario's server). */
#define RMA_LEN ((1u << 20) + 8)
extern tsr_region_t *g_region;
/* Answers T_GETKEY with g_region's packed descriptor (through g_t). */
void h_getkey(void *arg, tsr_rpc_req_t *req);
/* Asks a region_server (through g_t) for its region's rkey. */
tsr_rkey_t *fetch_rkey(tsr_peer_t *srv);

/* ---- roles (role NAME DIR args...) and scenarios (the driver) ---- */
int role_server(int argc, char **argv);
int role_rpc_client(int argc, char **argv);
int role_region_server(int argc, char **argv);
int role_rma_client(int argc, char **argv);
int role_atomic_client(int argc, char **argv);
int role_victim(int argc, char **argv);
int role_fail_client(int argc, char **argv);
int role_bad_client(int argc, char **argv);
int role_shm_server(int argc, char **argv);
int role_steady(int argc, char **argv);
int role_spammer(int argc, char **argv);
int role_poisoner(int argc, char **argv);

int scenario_rpc(void);
int scenario_rma(void);
int scenario_atomics(void);
int scenario_failure(void);
int scenario_badinput(void);
int scenario_threads(void);
int scenario_owner(void);
int scenario_forget(void);
int scenario_forget_stopped(void);
int scenario_unregister(void);
int scenario_atomic_timeout(void);
int scenario_shmkill(void);

#endif /* TSR_TRANSPORT_TEST_COMMON_H */
