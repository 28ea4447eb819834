/*
 * policy.h - task placement on the scheduler: per-worker ready queues owned
 * by the scheduler, a bounded number of tasks in flight per worker, work
 * stealing, and a policy interface that chooses where a task should run
 * (docs/cluster.md "Scheduling").
 *
 * Model. A job (sched_job.c, sched_graph.c) turns every task that is ready to
 * run into a tsr_pq_item_t embedded in its own task record and pushes it.
 * The policy's place() picks the worker whose queue it joins (device-aware:
 * only workers whose device satisfies the task's `need`, and among them
 * those satisfying its `prefer` while one is ready; locality: its `home`
 * when that worker may run it and has the preferred device). tsr_placer_pump then fills every
 * ready worker's free slots (at most `slots` tasks in flight each, so a
 * worker always has its next task already sent but never a deep backlog it
 * could die with): from the head of its own queue first, else it steals from
 * the tail of the queue the policy's steal() names (by default the longest
 * one holding a task it may run). Sending is the owner's send hook; the owner
 * calls tsr_placer_done when the call ends, whatever its outcome, and pushes
 * the task again when it must be re-run (lineage re-runs go through the same
 * queues).
 *
 * Invariants (tests/unit/test_sched_policy.c checks them against a model):
 *   - an item is in at most one queue, and only a ready worker's;
 *   - a worker never has more than `slots` tasks in flight from the placer;
 *   - a task is only queued at, stolen by or sent to a worker whose device
 *     satisfies its need (tsr_policy_device_ok);
 *   - a worker with a free slot never stays idle while another queue holds a
 *     task it may run (after a pump).
 * A worker that dies gives its queue back: the items are placed again, and
 * those that no ready worker can run go to their unplaceable hook.
 *
 * Single-threaded (the scheduler's loop); hooks may push, remove and pump
 * again: a pump inside a pump only asks the outer one for another round.
 */
#ifndef TSR_SCHED_POLICY_H
#define TSR_SCHED_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSR_PLACER_MAX_WORKERS 1024
#define TSR_PLACER_DEFAULT_SLOTS 8

typedef struct tsr_pq_item tsr_pq_item_t;

struct tsr_pq_item {
    tsr_pq_item_t *prev, *next; /* in its worker's queue */
    int queue;                  /* the worker slot whose queue holds it, -1: none */
    int home;                   /* preferred worker (its inputs are there), -1: none */
    int avoid;                  /* a worker it was lost on, -1: none (used only if another fits) */
    const char *need;           /* device requirement: NULL/"" any, "gpu" any non-CPU,
                                   else a device-name prefix ("cuda", "opencl0") */
    const char *prefer;         /* device preference, same spelling as need: place()
                                   picks a worker satisfying it while one is ready and
                                   may run it (home included), else any; stealing
                                   ignores it (the task may run anywhere) */
    uint64_t job;
    /* Sends it to worker w (now counted in flight there). false: the owner
     * could not send it and has handled that (the slot is given back). */
    bool (*send)(tsr_pq_item_t *it, int w);
    /* No ready worker can run it (it has left every queue). */
    void (*unplaceable)(tsr_pq_item_t *it);
};

typedef struct tsr_pworker {
    bool ready;
    char device[64];
    uint32_t inflight; /* sent by the placer and not yet done */
    tsr_pq_item_t *head, *tail;
    size_t qlen;
    uint64_t stolen; /* tasks this worker took from another's queue */
} tsr_pworker_t;

struct tsr_placer;

typedef struct tsr_policy_ops {
    const char *name;
    /* The ready worker whose queue a task joins, among those that may run it
     * (tsr_placer_can_run); -1 when none may. */
    int (*place)(struct tsr_placer *pl, const tsr_pq_item_t *it);
    /* The queue idle worker w (own queue empty, a free slot) takes from; -1:
     * none. The placer then takes the last item there that w may run. */
    int (*steal)(struct tsr_placer *pl, size_t w);
} tsr_policy_ops_t;

typedef struct tsr_placer {
    const tsr_policy_ops_t *ops;
    unsigned slots; /* tasks in flight per worker (>= 1) */
    size_t nworkers;
    tsr_pworker_t w[TSR_PLACER_MAX_WORKERS];
    unsigned rr; /* round-robin cursor for ties and the pump's start */
    int pumping; /* a pump is running: a nested one asks for another round */
    bool again;
} tsr_placer_t;

/* The policies built in: "locality" (the default) and "least-loaded" (the
 * scheduler's old rule: the worker with the fewest tasks, no home). NULL for
 * an unknown name. tsr_policy_names lists them, comma-separated. */
const tsr_policy_ops_t *tsr_policy_find(const char *name);
const char *tsr_policy_names(void);

/* Does a worker of `device` satisfy requirement `need`? */
bool tsr_policy_device_ok(const char *need, const char *device);
/* Is `s` a well-formed requirement or preference: "" or NULL, "gpu", or a
 * backend name with an optional index ("cuda", "opencl1")? */
bool tsr_policy_need_valid(const char *s);

void tsr_placer_init(tsr_placer_t *pl, const tsr_policy_ops_t *ops, unsigned slots);
/* Worker slot idx (== the scheduler's) joined with its device. false: idx
 * out of range. */
bool tsr_placer_add_worker(tsr_placer_t *pl, size_t idx, const char *device);
/* Worker idx is gone: it takes no more tasks, its queue is placed again
 * (unplaceable hooks for what fits nowhere). Its in-flight count is kept
 * until the owners' done calls, which still come. */
void tsr_placer_worker_dead(tsr_placer_t *pl, size_t idx);

/* May worker w run it now (ready and device)? Ignores avoid. */
bool tsr_placer_can_run(const tsr_placer_t *pl, size_t w, const tsr_pq_item_t *it);
/* Queues a ready task where the policy says. false: no ready worker may run
 * it (nothing queued, no hook called). */
bool tsr_placer_push(tsr_placer_t *pl, tsr_pq_item_t *it);
/* Takes it out of its queue if it is in one (a cancelled or failed job). */
void tsr_placer_remove(tsr_placer_t *pl, tsr_pq_item_t *it);
/* A sent task's call ended on worker w: its slot is free. */
void tsr_placer_done(tsr_placer_t *pl, size_t w);
/* Sends queued tasks into free slots (own queue first, then stealing). */
void tsr_placer_pump(tsr_placer_t *pl);
/* Is some ready worker's device satisfying need? */
bool tsr_placer_any_ready(const tsr_placer_t *pl, const char *need);
/* The distinct devices of the ready workers, ", "-separated, into buf
 * ("none" when no worker is ready); for messages. */
void tsr_placer_ready_devices(const tsr_placer_t *pl, char *buf, size_t size);
/* Tasks queued at all workers. */
size_t tsr_placer_queued(const tsr_placer_t *pl);

#endif /* TSR_SCHED_POLICY_H */
