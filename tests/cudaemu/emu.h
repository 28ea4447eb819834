/*
 * emu.h (test emulator) - runs the CUDA kernel bodies of kernels/cuda/{*.cuh}
 * on the host, and the hooks tests use to steer the emulated runtime.
 *
 * Included by kernels/cuda/compat.cuh when TSR_CUDA_EMU is defined: it gives
 * the built-ins the bodies use (thread indices, __syncthreads, atomics, warp
 * collectives) host meanings. Each block of a launch runs on a host thread
 * of its own, so blocks race for real on the global table; the CUDA threads
 * of a block are coroutines on it, switched at barriers, warp collectives,
 * spin-wait pauses and (at random) before atomics and fences, so they
 * interleave where the kernels' claims and publications can race. A warp
 * collective is a rendezvous of the warp's 32 lanes, all at the same
 * collective: a lane at another one, or a lane that has exited, aborts the
 * test with a message (on a GPU it would hang or compute garbage). Device
 * memory is host memory, so ASan sees a kernel's out-of-bounds accesses.
 *
 * What it does not model: the GPU's weaker memory ordering (host atomics
 * here are sequentially consistent or acquire/release), timing, occupancy.
 */
#ifndef TSR_CUDAEMU_EMU_H
#define TSR_CUDAEMU_EMU_H

#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime_api.h>

typedef struct tsr_emu_block tsr_emu_block_t;

/* The emulated CUDA thread running now on this host thread. */
typedef struct tsr_emu_thread {
    uint32_t tid, bid, bdim, gdim;
    tsr_emu_block_t *block;
} tsr_emu_thread_t;

extern _Thread_local tsr_emu_thread_t tsr_emu_self;

void tsr_emu_syncthreads(void);
uint32_t tsr_emu_match_any(uint32_t v);
uint32_t tsr_emu_match_any_u64(uint64_t v);
uint32_t tsr_emu_ballot(int pred);
uint64_t tsr_emu_shfl(uint64_t v, uint32_t src);
/* Lets the block's other threads run (spin-wait pauses). */
void tsr_emu_yield(void);
/* Sometimes lets the block's other threads run: called before every atomic
 * and fence, so the threads of a block interleave at the points where the
 * kernels' claims and publications can race. */
void tsr_emu_preempt(void);

#define TSR_DEV static inline
#define TSR_UNROLL
#define TSR_NOUNROLL
#define TSR_TID (tsr_emu_self.tid)
#define TSR_BID (tsr_emu_self.bid)
#define TSR_BDIM (tsr_emu_self.bdim)
#define TSR_GDIM (tsr_emu_self.gdim)
#define TSR_LANE (tsr_emu_self.tid & 31u)
#define TSR_SYNC() tsr_emu_syncthreads()
#define TSR_SYNC_WARP() ((void)tsr_emu_ballot(1)) /* all 32 lanes meet */
#define TSR_FENCE_BLOCK() (tsr_emu_preempt(), __atomic_thread_fence(__ATOMIC_SEQ_CST))
#define TSR_SPIN_PAUSE() tsr_emu_yield()

TSR_DEV uint64_t tsr_ld_volatile_u64(const uint64_t *p)
{
    tsr_emu_preempt();
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
TSR_DEV uint32_t tsr_ld_volatile_u32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
TSR_DEV void tsr_st_volatile_u64(uint64_t *p, uint64_t v)
{
    tsr_emu_preempt();
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
TSR_DEV uint64_t tsr_atom_cas_u64(uint64_t *p, uint64_t cmp, uint64_t val)
{
    tsr_emu_preempt();
    __atomic_compare_exchange_n(p, &cmp, val, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp; /* the old value, as atomicCAS returns it */
}
TSR_DEV uint32_t tsr_atom_cas_u32(uint32_t *p, uint32_t cmp, uint32_t val)
{
    tsr_emu_preempt();
    __atomic_compare_exchange_n(p, &cmp, val, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
TSR_DEV void tsr_ld_u64x2(const uint64_t *p, uint64_t *a, uint64_t *b)
{
    *a = p[0];
    *b = p[1];
}
/* A warp barrier: a rendezvous of the 32 lanes (a lane that exited aborts). */
TSR_DEV void tsr_syncwarp(void)
{
    (void)tsr_emu_ballot(1);
}
TSR_DEV uint64_t tsr_atom_exch_u64(uint64_t *p, uint64_t val)
{
    tsr_emu_preempt();
    return __atomic_exchange_n(p, val, __ATOMIC_SEQ_CST);
}
TSR_DEV uint64_t tsr_atom_add_u64(uint64_t *p, uint64_t v)
{
    tsr_emu_preempt();
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
TSR_DEV uint32_t tsr_atom_add_u32(uint32_t *p, uint32_t v)
{
    tsr_emu_preempt();
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
TSR_DEV void tsr_atom_min_i64(int64_t *p, int64_t v)
{
    tsr_emu_preempt();
    int64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < old &&
           !__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
}
TSR_DEV void tsr_atom_max_i64(int64_t *p, int64_t v)
{
    tsr_emu_preempt();
    int64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > old &&
           !__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
}
TSR_DEV double tsr_as_f64(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}
TSR_DEV uint64_t tsr_as_u64(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}
TSR_DEV void tsr_atom_add_f64(double *p, double v)
{
    tsr_emu_preempt();
    uint64_t *w = (uint64_t *)p;
    uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(w, &old, tsr_as_u64(tsr_as_f64(old) + v), 1,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
}
TSR_DEV uint32_t tsr_match_any(uint32_t v)
{
    return tsr_emu_match_any(v);
}
TSR_DEV uint32_t tsr_match_any_u64(uint64_t v)
{
    return tsr_emu_match_any_u64(v);
}
TSR_DEV uint32_t tsr_ballot(int pred)
{
    return tsr_emu_ballot(pred);
}
TSR_DEV int tsr_any(int pred)
{
    return tsr_emu_ballot(pred) != 0;
}
TSR_DEV uint64_t tsr_shfl_u64(uint64_t v, uint32_t src)
{
    return tsr_emu_shfl(v, src);
}
TSR_DEV uint32_t tsr_popc(uint32_t m)
{
    return (uint32_t)__builtin_popcount(m);
}
TSR_DEV uint32_t tsr_ffs(uint32_t m)
{
    return (uint32_t)__builtin_ffs((int)m);
}
TSR_DEV uint64_t tsr_mulhi_u64(uint64_t a, uint64_t b)
{
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}
TSR_DEV int tsr_isnan(double d)
{
    return isnan(d);
}

/* ---- the runner and the runtime's test hooks (cudart_emu.c) ------------------------ */

/* A kernel: the body run by every emulated thread; args is the launch's copy
 * of the view, shared the block's dynamic shared memory. */
typedef void (*tsr_emu_kernel_fn)(const void *args, void *shared);

/* Queues a launch of grid blocks of block threads on stream s (copies args).
 * Fails like CUDA for a bad configuration (block not a multiple of 32 or
 * above the device's limit, too much shared memory, an empty grid). */
cudaError_t tsr_emu_launch(cudaStream_t s, unsigned grid, unsigned block, size_t shmem,
                           tsr_emu_kernel_fn fn, const void *args, size_t args_size);

/* Runs a launch to completion (runner_emu.c; the stream workers call it). */
void tsr_emu_run_grid(unsigned grid, unsigned block, size_t shmem, tsr_emu_kernel_fn fn,
                      const void *args);

/* The emulated device's limits (the host code sizes its launches by them). */
#define TSR_EMU_SMS 2
#define TSR_EMU_MAX_BLOCK 64
#define TSR_EMU_THREADS_PER_SM 128
#define TSR_EMU_SHARED_PER_BLOCK (48u << 10)
#define TSR_EMU_SHARED_PER_SM (96u << 10)
#define TSR_EMU_MEMORY ((size_t)1 << 30)

/* Makes the runtime call after the next n fallible ones fail with code (n = 0:
 * the next one); n < 0 turns it off. Fallible: allocations, stream and event
 * creation, copies, fills, records, waits, synchronisations, launches. */
void tsr_emu_fail_after(long n, cudaError_t code);
/* Calls that failed by injection so far. */
long tsr_emu_injected(void);
/* cudaGetDeviceCount answers code and no device (cudaSuccess: one device). */
void tsr_emu_set_no_device(cudaError_t code);
/* Random small delays in the stream workers, to shake out missing waits. */
void tsr_emu_set_jitter(int on);
/* Operations queued on the legacy default stream (0) so far: the backend must
 * use its own streams only. */
long tsr_emu_null_stream_uses(void);
/* Device memory allocated now, in bytes. */
size_t tsr_emu_device_bytes(void);

#endif /* TSR_CUDAEMU_EMU_H */
