/*
 * mem.c - allocation wrapper with fault injection, and a bump arena.
 *
 * Fault injection is per tsr_mem_t (per context), never global: a countdown
 * that, when it reaches zero, makes exactly one allocation fail.
 */
#include "core/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void tsr_mem_init(tsr_mem_t *mem)
{
    atomic_init(&mem->fail_countdown, -1);
    atomic_init(&mem->failures, 0);
}

void tsr_mem_fail_after(tsr_mem_t *mem, long n)
{
    atomic_store(&mem->fail_countdown, n);
}

/* True when this allocation must fail (injection armed and due). */
static int mem_should_fail(tsr_mem_t *mem)
{
    if (!mem)
        return 0;
    long cur = atomic_load_explicit(&mem->fail_countdown, memory_order_relaxed);
    while (cur >= 0) {
        if (atomic_compare_exchange_weak(&mem->fail_countdown, &cur, cur - 1)) {
            if (cur == 0) {
                atomic_fetch_add(&mem->failures, 1);
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

void *tsr_mem_alloc(tsr_mem_t *mem, size_t size)
{
    if (mem_should_fail(mem))
        return NULL;
    return malloc(size ? size : 1);
}

void *tsr_mem_calloc(tsr_mem_t *mem, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    if (mem_should_fail(mem))
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *tsr_mem_realloc(tsr_mem_t *mem, void *ptr, size_t size)
{
    if (mem_should_fail(mem))
        return NULL;
    return realloc(ptr, size ? size : 1);
}

void *tsr_mem_alloc_aligned(tsr_mem_t *mem, size_t size)
{
    if (mem_should_fail(mem))
        return NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size)
        return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void tsr_mem_free(tsr_mem_t *mem, void *ptr)
{
    (void)mem;
    free(ptr);
}

char *tsr_mem_strndup(tsr_mem_t *mem, const char *s, size_t len)
{
    char *copy = tsr_mem_alloc(mem, len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *tsr_mem_strdup(tsr_mem_t *mem, const char *s)
{
    return tsr_mem_strndup(mem, s, strlen(s));
}

int tsr_mem_grow(tsr_mem_t *mem, void **buf, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    if (elem_size && ncap > SIZE_MAX / elem_size)
        return -1;
    void *nbuf = tsr_mem_realloc(mem, *buf, ncap * elem_size);
    if (!nbuf)
        return -1;
    *buf = nbuf;
    *cap = ncap;
    return 0;
}

/* ---- arena ---------------------------------------------------------------- */

#define ARENA_BLOCK_MIN (16 * 1024)

struct tsr_arena_block {
    tsr_arena_block_t *next; /* older block */
    size_t used;             /* bytes handed out from data */
    size_t size;             /* capacity of data */
    _Alignas(16) unsigned char data[];
};

void tsr_arena_init(tsr_arena_t *arena, tsr_mem_t *mem)
{
    arena->mem = mem;
    arena->head = NULL;
}

void *tsr_arena_alloc(tsr_arena_t *arena, size_t size)
{
    size_t need = (size + 15) & ~(size_t)15;
    if (need < size)
        return NULL;
    tsr_arena_block_t *b = arena->head;
    if (!b || b->size - b->used < need) {
        size_t bsize = need > ARENA_BLOCK_MIN ? need : ARENA_BLOCK_MIN;
        b = tsr_mem_alloc(arena->mem, sizeof(*b) + bsize);
        if (!b)
            return NULL;
        b->next = arena->head;
        b->used = 0;
        b->size = bsize;
        arena->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, size);
    return p;
}

char *tsr_arena_strndup(tsr_arena_t *arena, const char *s, size_t len)
{
    char *copy = tsr_arena_alloc(arena, len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void tsr_arena_release(tsr_arena_t *arena)
{
    tsr_arena_block_t *b = arena->head;
    while (b) {
        tsr_arena_block_t *next = b->next;
        tsr_mem_free(arena->mem, b);
        b = next;
    }
    arena->head = NULL;
}
