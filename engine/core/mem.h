/*
 * mem.h - allocation wrapper and arena.
 *
 * All engine allocations go through a tsr_mem_t owned by the context, so tests
 * can make the N-th allocation fail (tsr_mem_fail_after) and exercise every
 * error path. A NULL tsr_mem_t* is accepted everywhere and means "plain libc,
 * no fault injection" (handy in unit tests of leaf modules).
 *
 * The arena serves many small allocations that die together (AST nodes, plan
 * nodes, expression trees): one release frees them all.
 */
#ifndef TSR_CORE_MEM_H
#define TSR_CORE_MEM_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct tsr_mem {
    atomic_long fail_countdown; /* <0: off; else allocations left before one fails */
    atomic_long failures;       /* injected failures so far (for tests) */
} tsr_mem_t;

void tsr_mem_init(tsr_mem_t *mem);
/* Make the allocation after the next n succeed-ones fail (n=0: the next one);
 * n<0 turns injection off. Each injected failure re-arms nothing: one failure. */
void tsr_mem_fail_after(tsr_mem_t *mem, long n);

void *tsr_mem_alloc(tsr_mem_t *mem, size_t size);
void *tsr_mem_calloc(tsr_mem_t *mem, size_t count, size_t size); /* overflow-checked */
void *tsr_mem_realloc(tsr_mem_t *mem, void *ptr, size_t size);
/* 64-byte aligned (cache line / SIMD friendly); size is rounded up. Free with tsr_mem_free. */
void *tsr_mem_alloc_aligned(tsr_mem_t *mem, size_t size);
void tsr_mem_free(tsr_mem_t *mem, void *ptr);
char *tsr_mem_strndup(tsr_mem_t *mem, const char *s, size_t len);
char *tsr_mem_strdup(tsr_mem_t *mem, const char *s);

/* Grows *buf (of *cap elements of elem_size) to hold at least need elements,
 * doubling. Returns 0 on success, -1 on allocation failure (buffer untouched). */
int tsr_mem_grow(tsr_mem_t *mem, void **buf, size_t *cap, size_t need, size_t elem_size);

typedef struct tsr_arena_block tsr_arena_block_t;
typedef struct tsr_arena {
    tsr_mem_t *mem;          /* where blocks come from (may be NULL) */
    tsr_arena_block_t *head; /* newest block first */
} tsr_arena_t;

void tsr_arena_init(tsr_arena_t *arena, tsr_mem_t *mem);
/* 16-byte aligned, zeroed memory; NULL when out of memory. */
void *tsr_arena_alloc(tsr_arena_t *arena, size_t size);
char *tsr_arena_strndup(tsr_arena_t *arena, const char *s, size_t len);
void tsr_arena_release(tsr_arena_t *arena);

#endif /* TSR_CORE_MEM_H */
