/*
 * expr_string.c - VARCHAR kernels: comparisons and LIKE over dictionary codes.
 *
 * A VARCHAR vector holds codes into a frozen dictionary, so a predicate on
 * strings only has to be decided once per distinct string. When the
 * dictionary is no larger than a few batches' worth of rows we evaluate the
 * predicate once per dictionary entry into a per-code table and then map the
 * batch's codes through it (a gather); for larger dictionaries (mostly unique
 * strings) that table would cost more than the rows themselves, so we decide
 * per row instead.
 *
 * Operators that evaluate many batches pass a per-worker memo instead
 * (tsr_expr_memo_t): each code's answer is decided the first time the worker
 * meets it and reused for every later row and batch, so a LIKE over a
 * low-cardinality column costs one match per distinct string.
 *
 * Codes under NULL rows are unspecified: every table lookup clamps a code to
 * the dictionary's range so garbage can never index out of bounds (the value
 * computed for a NULL row is ignored by the caller anyway).
 *
 * Comparison results are first reduced to a sign in {0,1,2} (less, equal,
 * greater) and mapped through a 3-entry table built for the operator, so the
 * inner loops carry no switch on the operator.
 *
 * LIKE ('%' any run of bytes, '_' exactly one byte, no escape) is compiled into
 * the literal segments between '%'s. The first segment is anchored at the
 * start, the last at the end, and the middle ones are found leftmost-first in
 * between: segments have fixed lengths, so the leftmost placement never rules
 * out a match that a later one would allow.
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "exec/exec_internal.h"

/* Per-code tables are used while the dictionary has at most this many entries
 * per row of the batch (times the rows); beyond, per-row evaluation. */
#define STR_TABLE_FACTOR 2
/* Dictionaries above this size are not memoized (a byte per code per worker). */
#define STR_MEMO_MAX (64u << 20)

struct tsr_expr_memo_entry {
    const void *key; /* the expression node */
    const tsr_dict_t *dict;
    uint8_t *state; /* tsr_dict_size(dict) entries */
};

void tsr_expr_memo_init(tsr_expr_memo_t *memo, tsr_mem_t *mem)
{
    memset(memo, 0, sizeof(*memo));
    memo->mem = mem;
}

void tsr_expr_memo_free(tsr_expr_memo_t *memo)
{
    for (size_t i = 0; i < memo->n; i++)
        tsr_mem_free(memo->mem, memo->entries[i].state);
    tsr_mem_free(memo->mem, memo->entries);
    memset(memo, 0, sizeof(*memo));
}

tsr_expr_memo_t *tsr_expr_memos_new(tsr_mem_t *mem, unsigned nworkers)
{
    tsr_expr_memo_t *memos = tsr_mem_calloc(mem, nworkers ? nworkers : 1, sizeof(*memos));
    for (unsigned w = 0; memos && w < nworkers; w++)
        tsr_expr_memo_init(&memos[w], mem);
    return memos;
}

void tsr_expr_memos_free(tsr_mem_t *mem, tsr_expr_memo_t *memos, unsigned nworkers)
{
    for (unsigned w = 0; memos && w < nworkers; w++)
        tsr_expr_memo_free(&memos[w]);
    tsr_mem_free(mem, memos);
}

tsr_status_t tsr_expr_memo_get(tsr_expr_memo_t *memo, const void *key, const tsr_dict_t *dict,
                               uint8_t **state)
{
    *state = NULL;
    uint32_t size = tsr_dict_size(dict);
    if (!memo || size == 0 || size > STR_MEMO_MAX)
        return TSR_OK;
    /* a handful of string predicates per expression: a linear list will do */
    for (size_t i = 0; i < memo->n; i++) {
        if (memo->entries[i].key == key && memo->entries[i].dict == dict) {
            *state = memo->entries[i].state;
            return TSR_OK;
        }
    }
    uint8_t *st = tsr_mem_calloc(memo->mem, size, 1);
    if (!st)
        return TSR_ERR_NOMEM;
    if (tsr_mem_grow(memo->mem, (void **)&memo->entries, &memo->cap, memo->n + 1,
                     sizeof(*memo->entries))) {
        tsr_mem_free(memo->mem, st);
        return TSR_ERR_NOMEM;
    }
    memo->entries[memo->n++] = (tsr_expr_memo_entry_t){key, dict, st};
    *state = st;
    return TSR_OK;
}

int tsr_str_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

/* lut[sign + 1] = result of op for that three-way sign. */
static void cmp_lut(tsr_op_t op, uint8_t lut[3])
{
    lut[0] = tsr_cmp_apply(op, -1);
    lut[1] = tsr_cmp_apply(op, 0);
    lut[2] = tsr_cmp_apply(op, 1);
}

static inline uint32_t clamp_code(uint32_t c, uint32_t size)
{
    return c < size ? c : 0;
}

/* ---- one predicate over the codes of a batch ---------------------------------- */

/* A predicate on one string: a comparison with a constant (through the
 * operator's three-way table) or a LIKE pattern. */
enum { PRED_CMP, PRED_LIKE };

typedef struct str_pred {
    const char *c; /* PRED_CMP: the constant */
    size_t clen;
    uint8_t lut[3];         /* PRED_CMP: result per three-way sign + 1 */
    const tsr_like_t *like; /* PRED_LIKE */
} str_pred_t;

static inline __attribute__((always_inline)) uint8_t
str_pred_eval(const str_pred_t *p, const int kind, const char *s, size_t len)
{
    if (kind == PRED_LIKE)
        return tsr_like_match(p->like, s, len);
    return p->lut[tsr_str_cmp(s, len, p->c, p->clen) + 1];
}

/* r[i] = the predicate on the string of codes[i], decided once per code: with
 * a memo state array lazily, else through a per-code table when the
 * dictionary is small next to the batch, else row by row (see the top).
 * Written once, instantiated per kind (always inline: no call per row). */
static inline __attribute__((always_inline)) tsr_status_t
str_pred_codes(tsr_mem_t *mem, const tsr_dict_t *dict, const uint32_t *codes, uint8_t *state,
               uint8_t *r, size_t n, const str_pred_t *p, const int kind)
{
    uint32_t size = tsr_dict_size(dict);
    if (size == 0) { /* every row is NULL: nothing to decide */
        memset(r, 0, n);
        return TSR_OK;
    }
    if (state) {
        for (size_t i = 0; i < n; i++) {
            uint32_t k = clamp_code(codes[i], size);
            uint8_t st = state[k];
            if (!st) { /* first sight of this code on this worker */
                size_t len;
                const char *s = tsr_dict_get(dict, k, &len);
                st = state[k] = (uint8_t)(1 + str_pred_eval(p, kind, s, len));
            }
            r[i] = st - 1;
        }
        return TSR_OK;
    }
    if ((size_t)size <= n * STR_TABLE_FACTOR) {
        uint8_t *tbl = tsr_mem_alloc(mem, size);
        if (!tbl)
            return TSR_ERR_NOMEM;
        for (uint32_t k = 0; k < size; k++) {
            size_t len;
            const char *s = tsr_dict_get(dict, k, &len);
            tbl[k] = str_pred_eval(p, kind, s, len);
        }
        for (size_t i = 0; i < n; i++)
            r[i] = tbl[clamp_code(codes[i], size)];
        tsr_mem_free(mem, tbl);
        return TSR_OK;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = tsr_dict_get(dict, clamp_code(codes[i], size), &len);
        r[i] = str_pred_eval(p, kind, s, len);
    }
    return TSR_OK;
}

/* ---- comparisons -------------------------------------------------------------- */

tsr_status_t tsr_str_cmp_const(tsr_mem_t *mem, tsr_op_t op, const tsr_dict_t *dict,
                               const uint32_t *codes, const char *c, size_t clen, uint8_t *state,
                               uint8_t *r, size_t n)
{
    uint32_t size = tsr_dict_size(dict);
    if (size == 0) { /* every row is NULL: nothing to decide */
        memset(r, 0, n);
        return TSR_OK;
    }
    if (op == TSR_OP_EQ || op == TSR_OP_NE) {
        /* interned strings: equality is equality of codes */
        uint32_t k;
        uint8_t eq = op == TSR_OP_EQ;
        if (!tsr_dict_find(dict, c, clen, &k)) {
            memset(r, !eq, n);
            return TSR_OK;
        }
        if (eq)
            for (size_t i = 0; i < n; i++)
                r[i] = codes[i] == k;
        else
            for (size_t i = 0; i < n; i++)
                r[i] = codes[i] != k;
        return TSR_OK;
    }
    str_pred_t p = {.c = c, .clen = clen};
    cmp_lut(op, p.lut);
    return str_pred_codes(mem, dict, codes, state, r, n, &p, PRED_CMP);
}

tsr_status_t tsr_str_cmp_cols(tsr_mem_t *mem, tsr_op_t op, const tsr_dict_t *da, const uint32_t *a,
                              const tsr_dict_t *db, const uint32_t *b, uint8_t *r, size_t n)
{
    (void)mem;
    uint32_t sa = tsr_dict_size(da), sb = tsr_dict_size(db);
    if (sa == 0 || sb == 0) { /* one side is all NULL */
        memset(r, 0, n);
        return TSR_OK;
    }
    if (da == db && (op == TSR_OP_EQ || op == TSR_OP_NE)) {
        if (op == TSR_OP_EQ)
            for (size_t i = 0; i < n; i++)
                r[i] = a[i] == b[i];
        else
            for (size_t i = 0; i < n; i++)
                r[i] = a[i] != b[i];
        return TSR_OK;
    }
    uint8_t lut[3];
    cmp_lut(op, lut);
    const uint32_t *rank = tsr_dict_ranks(da);
    if (da == db && rank) {
        /* ranks order codes as their strings: compare without touching bytes */
        for (size_t i = 0; i < n; i++) {
            uint32_t x = rank[clamp_code(a[i], sa)], y = rank[clamp_code(b[i], sb)];
            r[i] = (uint8_t)((x > y) - (x < y) + 1);
        }
    } else {
        const uint64_t *ha = tsr_dict_hashes(da), *hb = tsr_dict_hashes(db);
        bool eq_only =
            (op == TSR_OP_EQ || op == TSR_OP_NE) && tsr_dict_frozen(da) && tsr_dict_frozen(db);
        for (size_t i = 0; i < n; i++) {
            uint32_t x = clamp_code(a[i], sa), y = clamp_code(b[i], sb);
            if (eq_only && ha[x] != hb[y]) { /* equal strings hash alike */
                r[i] = 0;
                continue;
            }
            size_t xl, yl;
            const char *xs = tsr_dict_get(da, x, &xl);
            const char *ys = tsr_dict_get(db, y, &yl);
            r[i] = (uint8_t)(tsr_str_cmp(xs, xl, ys, yl) + 1);
        }
    }
    for (size_t i = 0; i < n; i++)
        r[i] = lut[r[i]];
    return TSR_OK;
}

/* ---- LIKE -------------------------------------------------------------------------- */

tsr_status_t tsr_like_compile(tsr_mem_t *mem, const char *pat, size_t len, tsr_like_t *out)
{
    tsr_like_t lk = {0};
    lk.pat = pat;
    lk.len = len;
    size_t npct = 0;
    for (size_t i = 0; i < len; i++)
        npct += pat[i] == '%';
    lk.has_pct = npct > 0;
    lk.nsegs = npct + 1;
    lk.seg_off = tsr_mem_alloc(mem, lk.nsegs * sizeof(size_t));
    lk.seg_len = tsr_mem_alloc(mem, lk.nsegs * sizeof(size_t));
    lk.seg_any = tsr_mem_alloc(mem, lk.nsegs * sizeof(bool));
    if (!lk.seg_off || !lk.seg_len || !lk.seg_any) {
        tsr_like_free(mem, &lk);
        return TSR_ERR_NOMEM;
    }
    size_t s = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || pat[i] == '%') {
            lk.seg_off[s] = start;
            lk.seg_len[s] = i - start;
            lk.seg_any[s] = memchr(pat + start, '_', i - start) != NULL;
            s++;
            start = i + 1;
        }
    }
    *out = lk;
    return TSR_OK;
}

void tsr_like_free(tsr_mem_t *mem, tsr_like_t *like)
{
    tsr_mem_free(mem, like->seg_off);
    tsr_mem_free(mem, like->seg_len);
    tsr_mem_free(mem, like->seg_any);
    memset(like, 0, sizeof(*like));
}

/* Does segment p (n bytes, '_' = any byte when any) match s exactly? */
static inline bool seg_eq(const char *s, const char *p, size_t n, bool any)
{
    if (!any)
        return n == 0 || memcmp(s, p, n) == 0;
    for (size_t j = 0; j < n; j++)
        if (p[j] != '_' && p[j] != s[j])
            return false;
    return true;
}

/* Leftmost position >= 0 where segment p matches inside s[0..len), or -1. */
static long seg_find(const char *s, size_t len, const char *p, size_t n, bool any)
{
    if (n > len)
        return -1;
    if (!any) {
        const char *hit = memmem(s, len, p, n);
        return hit ? (long)(hit - s) : -1;
    }
    for (size_t at = 0; at + n <= len; at++)
        if (seg_eq(s + at, p, n, true))
            return (long)at;
    return -1;
}

bool tsr_like_match(const tsr_like_t *lk, const char *s, size_t len)
{
    const char *p = lk->pat;
    if (!lk->has_pct)
        return len == lk->len && seg_eq(s, p, len, lk->seg_any[0]);
    size_t last = lk->nsegs - 1;
    size_t flen = lk->seg_len[0], llen = lk->seg_len[last];
    if (len < flen + llen)
        return false;
    if (!seg_eq(s, p + lk->seg_off[0], flen, lk->seg_any[0]))
        return false;
    if (!seg_eq(s + len - llen, p + lk->seg_off[last], llen, lk->seg_any[last]))
        return false;
    size_t pos = flen, end = len - llen;
    for (size_t k = 1; k < last; k++) {
        size_t n = lk->seg_len[k];
        if (n == 0)
            continue;
        long at = seg_find(s + pos, end - pos, p + lk->seg_off[k], n, lk->seg_any[k]);
        if (at < 0)
            return false;
        pos += (size_t)at + n;
    }
    return true;
}

tsr_status_t tsr_str_like(tsr_mem_t *mem, const tsr_like_t *like, const tsr_dict_t *dict,
                          const uint32_t *codes, uint8_t *state, uint8_t *r, size_t n)
{
    str_pred_t p = {.like = like};
    return str_pred_codes(mem, dict, codes, state, r, n, &p, PRED_LIKE);
}
