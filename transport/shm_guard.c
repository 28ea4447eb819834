/*
 * shm_guard.c - un-sticking our shared-memory receive FIFO after a sender
 * died in the middle of a send.
 *
 * Why. UCX's shared-memory AM transports (posix, sysv: "mm") give every
 * worker ONE receive FIFO that all same-host senders write into: a sender
 * claims the element at the FIFO head with a compare-and-swap on
 * fifo_ctl->head, writes it, and only then flips the element's owner bit,
 * which is what the receiver polls for, strictly in order. A sender killed
 * (SIGKILL) between the claim and the flip leaves a claimed element that is
 * never published: the receiver waits at it forever, and every message any
 * other process writes after it - calls, replies, the wireup of new
 * endpoints - waits behind it. UCX 1.13 has no recovery for this (it is why
 * UCX_MM_ERROR_HANDLING is off by default); keepalive notices the dead
 * peer, but closing its endpoint does not touch the receiver's FIFO. Seen
 * as: a client SIGKILLed while sending its commit stalled the txn owner for
 * good (txn.bank.sm.rma, a few runs in a hundred).
 *
 * What. The transport finds its own receive FIFOs when it creates the worker
 * (the shared-memory mappings that appeared with the worker and whose
 * control block names our pid) and, from the progress path, at most every
 * TSR_SHM_CHECK_NS, looks for the first element between the FIFO's tail and
 * head that is claimed but unwritten. One that stays so for
 * TSR_SHM_STALE_NS (a live sender writes an element in well under a
 * microsecond; a preempted one within a scheduler slice) belongs to a dead
 * sender: we publish it ourselves, as an empty inline message with AM id 0,
 * which no UCP protocol uses (UCX logs "got active message id 0, but no
 * handler installed" and drops it). The receiver then moves on. The repair
 * follows the sender's protocol (fields, store fence, owner bit last), and
 * runs under t->lock, so the receiver (ucp_worker_progress, also under the
 * lock) never sees a half-repaired element. Counted in stats.shm_repairs.
 *
 * The FIFO layout is UCX's private one (uct/sm/mm/base/mm_iface.h), checked
 * against UCX 1.13.1: control block of 192 bytes (head at 0, tail at 128,
 * pid at 136), then fifo_size elements of fifo_elem_size bytes (flags,
 * am_id, length, ...; flags bit 0 = owner, bit 1 = inline). So the guard
 * runs only under UCX 1.13 (TSR_SHM_GUARD=1 forces it on, =0 off), with the
 * FIFO sizes read from UCX_MM_FIFO_SIZE / UCX_MM_FIFO_ELEM_SIZE (defaults
 * 64 and 128; transport-specific UCX_POSIX_* / UCX_SYSV_* sizes turn it
 * off), and a FIFO whose flags bytes do not look like that layout is left
 * alone.
 *
 * Several transports in one process. Every mapping that appears while a
 * worker is created and carries our pid is a candidate, and two other
 * things make such mappings: another transport's worker created at the
 * same moment, and another transport of this process connecting to a third
 * one here (it maps the third's receive FIFO, pid ours). Taken for our own,
 * such a FIFO would be read after its mapping went away (a crash). So the
 * transports of a process register the FIFOs they watch (by inode: every
 * mapping of one FIFO has its inode) and create their workers one at a
 * time: a candidate another transport registered is its FIFO, seen through
 * a connection, and skipped. The one piece of process-wide state in the
 * transport, because /proc/self/maps is the process's.
 *
 * Limits: a sender frozen (SIGSTOP) in the same sub-microsecond window for
 * longer than TSR_SHM_STALE_NS is repaired as if dead; if it resumes it
 * rewrites a slot that may have been reused, which can lose that one
 * message (and, if the slot sticks again, it is repaired again).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The receive FIFOs (inodes) this process's transports watch, and the
 * mutex that also makes their workers' creation one at a time (above). */
#define SHM_REG_MAX 256u
static pthread_mutex_t shm_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long shm_reg[SHM_REG_MAX];
static unsigned shm_nreg;

void tsr__shm_guard_begin(void)
{
    pthread_mutex_lock(&shm_reg_mu);
}

void tsr__shm_guard_end(void)
{
    pthread_mutex_unlock(&shm_reg_mu);
}

static bool registered(unsigned long ino)
{
    for (unsigned i = 0; i < shm_nreg; i++)
        if (shm_reg[i] == ino)
            return true;
    return false;
}

void tsr__shm_guard_fini(tsr_transport_t *t)
{
    tsr_shm_guard_t *g = &t->shm;
    pthread_mutex_lock(&shm_reg_mu);
    for (unsigned f = 0; f < g->n; f++)
        for (unsigned i = 0; i < shm_nreg; i++)
            if (shm_reg[i] == g->fifo[f].inode) {
                shm_reg[i] = shm_reg[--shm_nreg];
                break;
            }
    g->n = 0;
    pthread_mutex_unlock(&shm_reg_mu);
}

/* UCX 1.13 mm layout (see above). */
#define MM_CTL_SIZE 192u
#define MM_CTL_HEAD 0u
#define MM_CTL_TAIL 128u
#define MM_CTL_PID 136u
#define MM_HEAD_ARMED (1ull << 63)
#define MM_FLAG_OWNER 0x1u
#define MM_FLAG_INLINE 0x2u
#define MM_ELEM_AM_ID 1u
#define MM_ELEM_LENGTH 2u

/* How often the progress path looks (at most), and how long an element must
 * stay claimed-but-unwritten before it counts as a dead sender's. */
#define TSR_SHM_CHECK_NS 50000000ll  /* 50 ms */
#define TSR_SHM_STALE_NS 1000000000ll /* 1 s */

static unsigned env_uint(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    if (!v || !v[0])
        return dflt;
    char *end;
    unsigned long x = strtoul(v, &end, 0);
    return *end == '\0' && x > 0 && x < (1ul << 20) ? (unsigned)x : 0;
}

bool tsr__shm_guard_wanted(void)
{
    const char *force = getenv("TSR_SHM_GUARD");
    if (force && force[0] == '0')
        return false;
    if (force && force[0] == '1')
        return true;
    unsigned major = 0, minor = 0, release = 0;
    ucp_get_version(&major, &minor, &release);
    return major == 1 && minor == 13;
}

/* Whether a /proc/self/maps line is a shared mapping UCX's mm transports
 * make (posix: /dev/shm/ucx_shm_posix_*, sysv: /SYSV*). Fills start, end,
 * inode. */
static bool parse_mm_line(const char *line, uintptr_t *start, uintptr_t *end,
                          unsigned long *inode)
{
    unsigned long s, e, off, ino;
    char perms[8], dev[16];
    int path_at = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &s, &e, perms, &off, &dev[0], &ino,
               &path_at) < 6 || path_at == 0)
        return false;
    const char *path = line + path_at;
    if (strncmp(perms, "rw-s", 4) != 0)
        return false;
    if (!strstr(path, "ucx_shm_posix_") && strncmp(path, "/SYSV", 5) != 0)
        return false;
    *start = (uintptr_t)s;
    *end = (uintptr_t)e;
    *inode = ino;
    return true;
}

unsigned tsr__shm_guard_snapshot(unsigned long *inodes, unsigned cap)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[512];
    unsigned n = 0;
    while (fgets(line, sizeof(line), f)) {
        uintptr_t s, e;
        unsigned long ino;
        if (parse_mm_line(line, &s, &e, &ino) && n < cap)
            inodes[n++] = ino;
    }
    fclose(f);
    return n;
}

/* Whether every flags byte looks like UCX 1.13's (only owner and inline). */
static bool layout_plausible(const uint8_t *elems, unsigned size, unsigned elem_size)
{
    for (unsigned i = 0; i < size; i++)
        if (elems[(size_t)i * elem_size] & ~(MM_FLAG_OWNER | MM_FLAG_INLINE))
            return false;
    return true;
}

void tsr__shm_guard_init(tsr_transport_t *t, const unsigned long *before, unsigned nbefore)
{
    tsr_shm_guard_t *g = &t->shm;
    memset(g, 0, sizeof(*g));
    if (getenv("UCX_POSIX_FIFO_SIZE") || getenv("UCX_SYSV_FIFO_SIZE") ||
        getenv("UCX_POSIX_FIFO_ELEM_SIZE") || getenv("UCX_SYSV_FIFO_ELEM_SIZE"))
        return;
    unsigned size = env_uint("UCX_MM_FIFO_SIZE", 64);
    unsigned elem_size = env_uint("UCX_MM_FIFO_ELEM_SIZE", 128);
    if (size == 0 || (size & (size - 1)) != 0 || elem_size < 8)
        return;
    size_t need = MM_CTL_SIZE + (size_t)size * elem_size;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[512];
    pid_t self = getpid();
    while (fgets(line, sizeof(line), f) && g->n < TSR_SHM_MAX_FIFOS) {
        uintptr_t s, e;
        unsigned long ino;
        if (!parse_mm_line(line, &s, &e, &ino))
            continue;
        bool old = registered(ino); /* another transport's FIFO, mapped to reach it */
        for (unsigned i = 0; i < nbefore && !old; i++)
            old = before[i] == ino;
        /* Receive FIFOs are small (a few pages); descriptor segments are
         * megabytes. The FIFO starts at the mapping (page aligned). */
        if (old || e - s < need || e - s > need + 65536)
            continue;
        uint8_t *ctl = (uint8_t *)s;
        int32_t pid;
        memcpy(&pid, ctl + MM_CTL_PID, sizeof(pid));
        if (pid != (int32_t)self || !layout_plausible(ctl + MM_CTL_SIZE, size, elem_size))
            continue;
        if (shm_nreg == SHM_REG_MAX)
            break; /* cannot register it: not watched (a repair is a rescue, not a duty) */
        shm_reg[shm_nreg++] = ino;
        tsr_shm_fifo_t *q = &g->fifo[g->n++];
        q->inode = ino;
        q->ctl = ctl;
        q->size = size;
        q->elem_size = elem_size;
        q->stale_index = UINT64_MAX;
    }
    fclose(f);
}

/* [L] One FIFO: finds the first claimed-but-unwritten element; publishes it
 * when it has stayed so for TSR_SHM_STALE_NS. Returns 1 on a repair. */
static unsigned check_fifo(tsr_shm_fifo_t *q, int64_t now)
{
    uint64_t head = __atomic_load_n((uint64_t *)(q->ctl + MM_CTL_HEAD), __ATOMIC_ACQUIRE);
    uint64_t tail = __atomic_load_n((uint64_t *)(q->ctl + MM_CTL_TAIL), __ATOMIC_ACQUIRE);
    head &= ~MM_HEAD_ARMED;
    uint8_t *elems = q->ctl + MM_CTL_SIZE;
    uint64_t stale = UINT64_MAX;
    if (head - tail <= q->size) { /* else a torn read of the pair: next time */
        for (uint64_t i = tail; i != head; i++) {
            uint8_t fl = __atomic_load_n(elems + (size_t)(i & (q->size - 1)) * q->elem_size,
                                         __ATOMIC_ACQUIRE);
            unsigned lap = (i & q->size) ? MM_FLAG_OWNER : 0;
            if ((fl & MM_FLAG_OWNER) != lap) {
                stale = i;
                break;
            }
        }
    }
    if (stale == UINT64_MAX || stale != q->stale_index) {
        q->stale_index = stale;
        q->stale_since_ns = now;
        return 0;
    }
    if (now - q->stale_since_ns < TSR_SHM_STALE_NS)
        return 0;
    /* A dead sender's element: publish it as an empty message for AM id 0,
     * fields first, the owner bit last (as a sender does). */
    uint8_t *el = elems + (size_t)(stale & (q->size - 1)) * q->elem_size;
    uint16_t zero = 0;
    el[MM_ELEM_AM_ID] = 0;
    memcpy(el + MM_ELEM_LENGTH, &zero, sizeof(zero));
    uint8_t fl = (uint8_t)(MM_FLAG_INLINE | ((stale & q->size) ? MM_FLAG_OWNER : 0));
    __atomic_store_n(el, fl, __ATOMIC_RELEASE);
    q->stale_index = UINT64_MAX;
    return 1;
}

unsigned tsr__shm_guard_check_locked(tsr_transport_t *t, int64_t now)
{
    tsr_shm_guard_t *g = &t->shm;
    if (g->n == 0 || now < g->next_check_ns)
        return 0;
    g->next_check_ns = now + TSR_SHM_CHECK_NS;
    unsigned repaired = 0;
    for (unsigned i = 0; i < g->n; i++)
        repaired += check_fifo(&g->fifo[i], now);
    t->stats.shm_repairs += repaired;
    return repaired;
}
