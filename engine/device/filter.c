/*
 * filter.c - the host API of device filters (filter.h): checking and
 * compiling predicate programs into the instruction words every backend
 * executes, and the sequential model of the 64-rows-at-a-time evaluator.
 *
 * Three-valued logic on 64 rows at once: a value is (T, F), two bitmaps of
 * the rows where it is TRUE and where it is FALSE; NULL rows are in neither.
 *
 *   compare     T = valid & r, F = valid & ~r   (r: the comparison's bits)
 *   IS NULL     T = ~valid,    F = valid
 *   a AND b     T = Ta & Tb,   F = Fa | Fb
 *   a OR b      T = Ta | Tb,   F = Fa & Fb
 *   NOT a       T = Fa,        F = Ta
 *
 * Rows past the end of the input are in neither bitmap (masked by `live`).
 */
#include "device/filter.h"

#include <string.h>

static bool filter_is_cmp(tsr_dev_pred_op_t op)
{
    return op <= TSR_DEV_PRED_GE;
}

tsr_status_t tsr_dev_filter_compile(const tsr_dev_filter_spec_t *spec, tsr_dev_filter_t *f,
                                    tsr_error_t *err)
{
    if (spec->ncols > TSR_DEV_FILTER_MAX_COLS || spec->ninstrs > TSR_DEV_FILTER_MAX_INSTRS)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "device filter: at most %d columns and %d instructions",
                             TSR_DEV_FILTER_MAX_COLS, TSR_DEV_FILTER_MAX_INSTRS);
    for (size_t c = 0; c < spec->ncols; c++)
        if (spec->types[c] != TSR_TYPE_INT64 && spec->types[c] != TSR_TYPE_DOUBLE)
            return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                 "device filter: column %zu is neither BIGINT nor DOUBLE", c);
    bool used[TSR_DEV_FILTER_MAX_COLS] = {false};
    size_t depth = 0;
    for (size_t i = 0; i < spec->ninstrs; i++) {
        const tsr_dev_pred_instr_t *in = &spec->prog[i];
        switch (in->op) {
        case TSR_DEV_PRED_EQ:
        case TSR_DEV_PRED_NE:
        case TSR_DEV_PRED_LT:
        case TSR_DEV_PRED_LE:
        case TSR_DEV_PRED_GT:
        case TSR_DEV_PRED_GE:
        case TSR_DEV_PRED_IS_NULL:
        case TSR_DEV_PRED_IS_NOT_NULL:
            if (in->column >= spec->ncols)
                return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                     "device filter: instruction %zu reads column %zu of %zu", i,
                                     in->column, spec->ncols);
            used[in->column] = true;
            depth++;
            break;
        case TSR_DEV_PRED_AND:
        case TSR_DEV_PRED_OR:
            if (depth < 2)
                return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                     "device filter: instruction %zu needs two operands", i);
            depth--;
            break;
        case TSR_DEV_PRED_NOT:
            if (depth < 1)
                return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                     "device filter: instruction %zu needs an operand", i);
            break;
        default:
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device filter: instruction %zu has bad op %d", i, (int)in->op);
        }
        if (depth > TSR_DEV_FILTER_MAX_DEPTH)
            return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                 "device filter: more than %d values on the stack at once",
                                 TSR_DEV_FILTER_MAX_DEPTH);
    }
    if (depth != 1)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device filter: the program leaves %zu values, not one", depth);

    size_t slot[TSR_DEV_FILTER_MAX_COLS];
    f->nused = 0;
    for (size_t c = 0; c < spec->ncols; c++)
        if (used[c]) {
            slot[c] = f->nused;
            f->used[f->nused++] = c;
        }
    f->ncode = spec->ninstrs;
    for (size_t i = 0; i < spec->ninstrs; i++) {
        const tsr_dev_pred_instr_t *in = &spec->prog[i];
        uint64_t code, k = 0;
        if (filter_is_cmp(in->op)) {
            bool dbl = spec->types[in->column] == TSR_TYPE_DOUBLE;
            code = (dbl ? TSR_DEV_FC_CMP_D : TSR_DEV_FC_CMP_I) + (uint64_t)in->op;
            if (dbl)
                memcpy(&k, &in->d, 8);
            else
                k = (uint64_t)in->i;
        } else {
            switch (in->op) {
            case TSR_DEV_PRED_IS_NULL:
                code = TSR_DEV_FC_IS_NULL;
                break;
            case TSR_DEV_PRED_IS_NOT_NULL:
                code = TSR_DEV_FC_IS_NOT_NULL;
                break;
            case TSR_DEV_PRED_AND:
                code = TSR_DEV_FC_AND;
                break;
            case TSR_DEV_PRED_OR:
                code = TSR_DEV_FC_OR;
                break;
            default:
                code = TSR_DEV_FC_NOT;
                break;
            }
        }
        bool reads = in->op <= TSR_DEV_PRED_IS_NOT_NULL;
        f->code[i].op = code | (reads ? (uint64_t)slot[in->column] << 8 : 0);
        f->code[i].k = k;
    }
    return TSR_OK;
}

/* r bit i = (x_i op k) for the m rows at x[0..m). The switch on op is taken
 * once per call, outside the row loop, so each loop is branch-free and
 * vectorizes; one macro makes both element types so they cannot drift. */
#define FILTER_CMP_ROWS(rel)                                                                       \
    for (size_t i = 0; i < m; i++)                                                                 \
        r |= (uint64_t)(x[i] rel k) << i
#define FILTER_CMP_FN(name, T)                                                                     \
    static uint64_t name(unsigned op, const T *x, T k, size_t m)                                   \
    {                                                                                              \
        uint64_t r = 0;                                                                            \
        switch (op) {                                                                              \
        case TSR_DEV_PRED_EQ:                                                                      \
            FILTER_CMP_ROWS(==);                                                                   \
            break;                                                                                 \
        case TSR_DEV_PRED_NE:                                                                      \
            FILTER_CMP_ROWS(!=);                                                                   \
            break;                                                                                 \
        case TSR_DEV_PRED_LT:                                                                      \
            FILTER_CMP_ROWS(<);                                                                    \
            break;                                                                                 \
        case TSR_DEV_PRED_LE:                                                                      \
            FILTER_CMP_ROWS(<=);                                                                   \
            break;                                                                                 \
        case TSR_DEV_PRED_GT:                                                                      \
            FILTER_CMP_ROWS(>);                                                                    \
            break;                                                                                 \
        default:                                                                                   \
            FILTER_CMP_ROWS(>=);                                                                   \
            break;                                                                                 \
        }                                                                                          \
        return r;                                                                                  \
    }
FILTER_CMP_FN(filter_cmp_i, int64_t)
FILTER_CMP_FN(filter_cmp_d, double)
#undef FILTER_CMP_FN
#undef FILTER_CMP_ROWS

uint64_t tsr_dev_filter_eval64(const tsr_dev_filter_t *f, const uint64_t *const *vals,
                               const uint64_t *const *valid, size_t first, size_t n)
{
    size_t m = n - first < 64 ? n - first : 64;
    uint64_t live = m == 64 ? ~(uint64_t)0 : ((uint64_t)1 << m) - 1;
    uint64_t t[TSR_DEV_FILTER_MAX_DEPTH], fl[TSR_DEV_FILTER_MAX_DEPTH];
    size_t sp = 0;
    for (size_t i = 0; i < f->ncode; i++) {
        unsigned code = (unsigned)(f->code[i].op & 0xff);
        size_t s = (size_t)(f->code[i].op >> 8);
        uint64_t k = f->code[i].k, a, b;
        if (code < TSR_DEV_FC_AND) { /* reads a column */
            uint64_t v = (valid[s] ? valid[s][first >> 6] : ~(uint64_t)0) & live;
            if (code == TSR_DEV_FC_IS_NULL || code == TSR_DEV_FC_IS_NOT_NULL) {
                a = ~v & live;
                b = v;
                if (code == TSR_DEV_FC_IS_NOT_NULL) {
                    uint64_t x = a;
                    a = b;
                    b = x;
                }
            } else {
                uint64_t r;
                if (code >= TSR_DEV_FC_CMP_D) {
                    double kd;
                    memcpy(&kd, &k, 8);
                    r = filter_cmp_d(code - TSR_DEV_FC_CMP_D, (const double *)vals[s] + first, kd,
                                     m);
                } else {
                    r = filter_cmp_i(code, (const int64_t *)vals[s] + first, (int64_t)k, m);
                }
                a = v & r;
                b = v & ~r;
            }
            t[sp] = a;
            fl[sp] = b;
            sp++;
            continue;
        }
        switch (code) {
        case TSR_DEV_FC_AND:
            sp--;
            t[sp - 1] &= t[sp];
            fl[sp - 1] |= fl[sp];
            break;
        case TSR_DEV_FC_OR:
            sp--;
            t[sp - 1] |= t[sp];
            fl[sp - 1] &= fl[sp];
            break;
        default: { /* NOT */
            uint64_t x = t[sp - 1];
            t[sp - 1] = fl[sp - 1];
            fl[sp - 1] = x;
            break;
        }
        }
    }
    return t[0];
}

/* ---- the host API ------------------------------------------------------------------ */

tsr_status_t tsr_dev_filter_create(tsr_dev_t *dev, const tsr_dev_filter_spec_t *spec,
                                   tsr_dev_filter_t **out, tsr_error_t *err)
{
    if (!dev || !spec || !out)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device filter: missing argument");
    const tsr_dev_filter_ops_t *ops = dev->backend->filter;
    if (!ops)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED, "the %s backend has no filter kernel",
                             dev->backend->name);
    tsr_dev_filter_t *f = tsr_mem_calloc(dev->mem, 1, sizeof(*f));
    if (!f)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    f->dev = dev;
    f->spec = *spec;
    tsr_status_t rc = tsr_dev_filter_compile(spec, f, err);
    if (rc == TSR_OK)
        rc = ops->create(f, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, f);
        return rc;
    }
    *out = f;
    return TSR_OK;
}

void tsr_dev_filter_destroy(tsr_dev_filter_t *f)
{
    if (!f)
        return;
    f->dev->backend->filter->destroy(f);
    tsr_mem_free(f->dev->mem, f);
}

/* The checks both entry points make of a call over n rows: the queue
 * (NULL: the device's own; *q set to it) is f's device's, and n within
 * the per-call limit. */
static tsr_status_t filter_check_call(tsr_dev_filter_t *f, tsr_dev_queue_t **q, size_t n,
                                      tsr_error_t *err)
{
    if (!*q)
        *q = f->dev->queue;
    if ((*q)->dev != f->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device filter: the queue belongs to another device");
    if (n > TSR_DEV_FILTER_MAX_ROWS)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "device filter: %zu rows (at most %zu per call)", n,
                             TSR_DEV_FILTER_MAX_ROWS);
    return TSR_OK;
}

tsr_status_t tsr_dev_filter_run(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                const tsr_dev_filter_cols_t *cols, uint32_t *sel, size_t *nsel,
                                tsr_error_t *err)
{
    if (!f || !cols || !nsel)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device filter: missing argument");
    tsr_status_t rc = filter_check_call(f, &q, cols->n, err);
    *nsel = 0;
    if (rc != TSR_OK || cols->n == 0)
        return rc;
    if (!sel)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device filter: output array missing");
    for (size_t u = 0; u < f->nused; u++)
        if (!cols->values[f->used[u]])
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device filter: column %zu missing",
                                 f->used[u]);
    return f->dev->backend->filter->run(f, q, cols, sel, nsel, err);
}

bool tsr_dev_filter_has_run_dev(const tsr_dev_filter_t *f)
{
    return f && f->dev->backend->filter->run_dev != NULL;
}

tsr_status_t tsr_dev_filter_run_dev(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                    const tsr_dev_filter_dcols_t *cols, tsr_dev_buf_t *sel,
                                    size_t *nsel, tsr_error_t *err)
{
    if (!f || !cols || !nsel)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "device filter: missing argument");
    if (!f->dev->backend->filter->run_dev)
        return TSR_ERR_UNSUPPORTED; /* the caller copies the columns in instead */
    tsr_status_t rc = filter_check_call(f, &q, cols->n, err);
    *nsel = 0;
    if (rc != TSR_OK || cols->n == 0)
        return rc;
    if (!sel || sel->dev != f->dev || sel->size < cols->n * sizeof(uint32_t))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device filter: selection buffer missing or too small");
    size_t words = (cols->n + 63) / 64;
    for (size_t u = 0; u < f->nused; u++) {
        size_t c = f->used[u];
        const tsr_dev_buf_t *v = cols->values[c], *m = cols->valid[c];
        if (!v || v->dev != f->dev || v->size < cols->n * 8 ||
            (m && (m->dev != f->dev || m->size < words * 8)))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device filter: column %zu missing or too small", c);
    }
    return f->dev->backend->filter->run_dev(f, q, cols, sel, nsel, err);
}
