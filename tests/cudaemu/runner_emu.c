/*
 * runner_emu.c (test emulator) - runs a kernel launch of the CUDA emulator
 * (emu.h): every block on a host thread, the block's CUDA threads as
 * coroutines on it, with __syncthreads, the warp collectives and the
 * preemption points the kernel bodies of kernels/cuda/ use.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

/* ---- the kernel runner ------------------------------------------------------------ */

/*
 * A launch runs each block on a host thread of its own; the block's CUDA
 * threads are coroutines scheduled round-robin by that host thread. A
 * coroutine runs until it waits (barrier, warp collective), pauses (spin
 * wait) or is preempted (at random, before atomics and fences).
 *
 * Context switches: a few instructions of assembly on x86-64 (callee-saved
 * registers and the stack pointer), ucontext elsewhere. Under ASan every
 * switch is announced (__sanitizer_{start,finish}_switch_fiber).
 */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#endif

#ifdef EMU_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#define EMU_STACK ((size_t)512 << 10)
#else
#define EMU_STACK ((size_t)64 << 10)
#endif

#if defined(__x86_64__)
#define EMU_ASM_SWITCH 1
/* emu_switch(&save_sp, new_sp): saves the callee-saved registers on the
 * current stack, stores its pointer, loads the other one and restores. */
void emu_switch(void **save_sp, void *new_sp);
__asm__(".text\n"
        ".globl emu_switch\n"
        ".type emu_switch,@function\n"
        "emu_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size emu_switch, .-emu_switch\n");
#else
#include <ucontext.h>
#endif

#define EMU_MAX_WARPS (TSR_EMU_MAX_BLOCK / 32)

enum { EMU_MATCH, EMU_BALLOT, EMU_SHFL };

typedef struct emu_co {
#ifdef EMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    char *stack;
    void *fake; /* ASan's fake stack of this coroutine */
    bool done;
} emu_co_t;

typedef struct emu_warp {
    unsigned count, gen; /* lanes arrived; collectives completed */
    unsigned ndone;      /* lanes that have exited */
    int op[32];          /* each lane's collective (must agree) */
    uint64_t in[32], out[32];
    uint32_t src[32]; /* shuffle sources */
} emu_warp_t;

struct tsr_emu_block {
    unsigned bid, nthreads, cur;
    emu_co_t *co;
    char *stacks;
#ifdef EMU_ASM_SWITCH
    void *sched_sp;
#else
    ucontext_t sched;
#endif
    const void *sched_bottom; /* the host thread's stack, for ASan */
    size_t sched_size;
    void *sched_fake;
    unsigned bar_count, bar_gen, ndone;
    emu_warp_t warp[EMU_MAX_WARPS];
    uint64_t rng;
    void *shared;
    unsigned gdim;
    tsr_emu_kernel_fn fn;
    const void *args;
    struct tsr_emu_block *next; /* the runners' queue */
    unsigned *pending;          /* blocks of its launch still running */
};

_Thread_local tsr_emu_thread_t tsr_emu_self;
static _Thread_local tsr_emu_block_t *emu_blk; /* the block this host thread runs */

static void emu_fatal(const char *what)
{
    fprintf(stderr, "cudaemu: %s (block %u, thread %u)\n", what, tsr_emu_self.bid,
            tsr_emu_self.tid);
    abort();
}

/* Coroutine -> scheduler. */
static void emu_to_sched(tsr_emu_block_t *b, emu_co_t *co)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(co->done ? NULL : &co->fake, b->sched_bottom, b->sched_size);
#endif
#ifdef EMU_ASM_SWITCH
    emu_switch(&co->sp, b->sched_sp);
#else
    swapcontext(&co->ctx, &b->sched);
#endif
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(co->fake, &b->sched_bottom, &b->sched_size);
#endif
}

void tsr_emu_yield(void)
{
    tsr_emu_block_t *b = emu_blk;
    emu_to_sched(b, &b->co[b->cur]);
}

void tsr_emu_preempt(void)
{
    tsr_emu_block_t *b = emu_blk;
    if (!b)
        return;
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    if ((b->rng & 7) == 0)
        tsr_emu_yield();
}

/* Waits until *gen moves on; fatal once one of the *ndone threads that
 * must arrive has exited instead. */
static void emu_wait_gen(tsr_emu_block_t *b, const unsigned *gen, unsigned seen,
                         const unsigned *ndone, const char *what)
{
    while (*gen == seen) {
        if (*ndone)
            emu_fatal(what); /* a thread exited: it can never arrive */
        tsr_emu_yield();
    }
}

void tsr_emu_syncthreads(void)
{
    tsr_emu_block_t *b = emu_blk;
    unsigned gen = b->bar_gen;
    if (++b->bar_count == b->nthreads) {
        b->bar_count = 0;
        b->bar_gen++;
        return;
    }
    emu_wait_gen(b, &b->bar_gen, gen, &b->ndone,
                 "__syncthreads after a thread of the block exited");
}

/* The last lane to arrive computes every lane's result. */
static uint64_t emu_collective(int op, uint64_t v, uint32_t src)
{
    tsr_emu_block_t *b = emu_blk;
    uint32_t lane = tsr_emu_self.tid & 31;
    emu_warp_t *w = &b->warp[tsr_emu_self.tid / 32];
    w->op[lane] = op;
    w->in[lane] = v;
    w->src[lane] = src;
    unsigned gen = w->gen;
    if (++w->count == 32) {
        for (uint32_t i = 0; i < 32; i++)
            if (w->op[i] != op)
                emu_fatal("lanes of a warp met different collectives");
        for (uint32_t i = 0; i < 32; i++) {
            uint64_t r = 0;
            for (uint32_t j = 0; j < 32 && op != EMU_SHFL; j++)
                if (op == EMU_MATCH ? w->in[j] == w->in[i] : w->in[j] != 0)
                    r |= (uint64_t)1 << j;
            w->out[i] = op == EMU_SHFL ? w->in[w->src[i] & 31] : r;
        }
        w->count = 0;
        w->gen++;
    } else {
        /* only this warp's lanes matter: other warps may be done */
        emu_wait_gen(b, &w->gen, gen, &w->ndone, "warp collective after a lane of the warp exited");
    }
    return w->out[lane];
}

uint32_t tsr_emu_match_any(uint32_t v)
{
    return (uint32_t)emu_collective(EMU_MATCH, v, 0);
}

/* The full 64 bits are compared (emu_collective keeps them). */
uint32_t tsr_emu_match_any_u64(uint64_t v)
{
    return (uint32_t)emu_collective(EMU_MATCH, v, 0);
}

uint32_t tsr_emu_ballot(int pred)
{
    return (uint32_t)emu_collective(EMU_BALLOT, pred != 0, 0);
}

uint64_t tsr_emu_shfl(uint64_t v, uint32_t src)
{
    return emu_collective(EMU_SHFL, v, src);
}

static void emu_run_body(tsr_emu_block_t *b);

/* A coroutine's first frame: runs the kernel body, then returns to the
 * scheduler for good. */
static void emu_co_main(void)
{
    tsr_emu_block_t *b = emu_blk;
    emu_co_t *co = &b->co[b->cur];
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &b->sched_bottom, &b->sched_size);
#endif
    emu_run_body(b);
    co->done = true;
    b->ndone++;
    b->warp[b->cur / 32].ndone++;
    emu_to_sched(b, co);
    emu_fatal("a finished coroutine was resumed");
}

static void emu_run_body(tsr_emu_block_t *b)
{
    b->fn(b->args, b->shared);
}

static void emu_co_init(tsr_emu_block_t *b, emu_co_t *co, char *stack)
{
    co->stack = stack;
#ifdef EMU_ASM_SWITCH
    /* the frame emu_switch restores: six registers, then emu_co_main as the
     * return address and a zero "return address" for emu_co_main itself, so
     * it starts with the stack aligned as after a call */
    uintptr_t top = ((uintptr_t)stack + EMU_STACK) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;
    *--sp = (void *)(uintptr_t)emu_co_main;
    for (int i = 0; i < 6; i++)
        *--sp = NULL;
    co->sp = sp;
#else
    getcontext(&co->ctx);
    co->ctx.uc_stack.ss_sp = stack;
    co->ctx.uc_stack.ss_size = EMU_STACK;
    co->ctx.uc_link = NULL;
    makecontext(&co->ctx, emu_co_main, 0);
#endif
}

/* Runs one block to completion on this host thread. */
static void *emu_block_main(void *arg)
{
    tsr_emu_block_t *b = arg;
    emu_blk = b;
    unsigned live = b->nthreads;
    while (live) {
        for (unsigned t = 0; t < b->nthreads; t++) {
            emu_co_t *co = &b->co[t];
            if (co->done)
                continue;
            b->cur = t;
            tsr_emu_self = (tsr_emu_thread_t){t, b->bid, b->nthreads, b->gdim, b};
#ifdef EMU_ASAN
            __sanitizer_start_switch_fiber(&b->sched_fake, co->stack, EMU_STACK);
#endif
#ifdef EMU_ASM_SWITCH
            emu_switch(&b->sched_sp, co->sp);
#else
            swapcontext(&b->sched, &co->ctx);
#endif
#ifdef EMU_ASAN
            __sanitizer_finish_switch_fiber(b->sched_fake, NULL, NULL);
#endif
            if (co->done)
                live--;
        }
    }
    emu_blk = NULL;
    return NULL;
}

/*
 * Blocks run on a pool of runner threads that lives as long as the process
 * (creating host threads and coroutine stacks per launch dominated the
 * tests' time, ASan's especially). Launches from several streams may queue
 * blocks at once: blocks are independent, so any order of them is a valid
 * schedule. Stacks are recycled through a free list.
 */
#define EMU_RUNNERS 8

#ifdef EMU_ASAN
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#endif

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    tsr_emu_block_t *head, *tail;
    unsigned nrunners;
    char *stacks[64]; /* free stack sets of TSR_EMU_MAX_BLOCK stacks each */
    unsigned nstacks;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .work = PTHREAD_COND_INITIALIZER,
       .done = PTHREAD_COND_INITIALIZER};

static void *emu_runner(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&R.mu);
    for (;;) {
        while (!R.head)
            pthread_cond_wait(&R.work, &R.mu);
        tsr_emu_block_t *b = R.head;
        R.head = b->next;
        if (!R.head)
            R.tail = NULL;
        pthread_mutex_unlock(&R.mu);
        emu_block_main(b);
        pthread_mutex_lock(&R.mu);
        (*b->pending)--;
        pthread_cond_broadcast(&R.done);
    }
    return NULL;
}

static char *emu_stacks_get(void)
{
    pthread_mutex_lock(&R.mu);
    char *st = R.nstacks ? R.stacks[--R.nstacks] : NULL;
    pthread_mutex_unlock(&R.mu);
    if (!st)
        st = malloc(EMU_STACK * TSR_EMU_MAX_BLOCK);
#ifdef EMU_ASAN
    else /* what the last fibers left poisoned on it */
        __asan_unpoison_memory_region(st, EMU_STACK * TSR_EMU_MAX_BLOCK);
#endif
    return st;
}

static void emu_stacks_put(char *st)
{
    pthread_mutex_lock(&R.mu);
    if (R.nstacks < sizeof(R.stacks) / sizeof(R.stacks[0])) {
        R.stacks[R.nstacks++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&R.mu);
    free(st);
}

void tsr_emu_run_grid(unsigned grid, unsigned block, size_t shmem, tsr_emu_kernel_fn fn,
                      const void *args)
{
    static uint64_t launches; /* varies the preemption pattern between launches */
    uint64_t seed = __atomic_add_fetch(&launches, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ULL;
    tsr_emu_block_t *blks = calloc(grid, sizeof(*blks));
    if (!blks)
        emu_fatal("out of memory running a kernel");
    unsigned pending = grid;
    for (unsigned bi = 0; bi < grid; bi++) {
        tsr_emu_block_t *b = &blks[bi];
        b->bid = bi;
        b->gdim = grid;
        b->nthreads = block;
        b->fn = fn;
        b->args = args;
        b->pending = &pending;
        b->rng = (seed ^ (bi + 1) * 0xbf58476d1ce4e5b9ULL) | 1;
        b->co = calloc(block, sizeof(*b->co));
        b->stacks = emu_stacks_get();
        b->shared = malloc(shmem ? shmem : 8);
        if (!b->co || !b->stacks || !b->shared)
            emu_fatal("out of memory running a kernel");
        memset(b->shared, 0xA7, shmem ? shmem : 8); /* garbage, as on a GPU */
        for (unsigned t = 0; t < block; t++)
            emu_co_init(b, &b->co[t], b->stacks + EMU_STACK * t);
    }
    pthread_mutex_lock(&R.mu);
    while (R.nrunners < EMU_RUNNERS) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)1 << 20);
        if (pthread_create(&th, &attr, emu_runner, NULL) != 0)
            emu_fatal("cannot start a runner thread");
        pthread_attr_destroy(&attr);
        pthread_detach(th);
        R.nrunners++;
    }
    for (unsigned bi = 0; bi < grid; bi++) {
        if (R.tail)
            R.tail->next = &blks[bi];
        else
            R.head = &blks[bi];
        R.tail = &blks[bi];
    }
    pthread_cond_broadcast(&R.work);
    while (pending)
        pthread_cond_wait(&R.done, &R.mu);
    pthread_mutex_unlock(&R.mu);
    for (unsigned bi = 0; bi < grid; bi++) {
        free(blks[bi].co);
        emu_stacks_put(blks[bi].stacks);
        free(blks[bi].shared);
    }
    free(blks);
}
