/*
 * filter.h - filtering on a device: a small predicate program over columns,
 * evaluated to a selection vector by stream compaction. The host-side
 * signature of the kernel family, shared by every backend (filter_cpu.c,
 * filter_opencl.c, filter_cuda.c).
 *
 * Use:
 *
 *   tsr_dev_filter_create(dev, &spec, &f, err);        // checks the program
 *   tsr_dev_filter_run(f, q, &cols, sel, &nsel, err);  // any number of times
 *   tsr_dev_filter_destroy(f);
 *
 * The program is postfix (reverse Polish): each instruction pushes one
 * three-valued result (TRUE, FALSE, NULL) or combines the top ones:
 *
 *   CMP  column <op> constant   =, <>, <, <=, >, >= on an INT64 or DOUBLE
 *                               column; NULL when the value is NULL
 *   IS_NULL / IS_NOT_NULL       of a column: never NULL
 *   AND, OR                     pop two, push SQL's three-valued result
 *                               (FALSE AND NULL = FALSE, TRUE OR NULL = TRUE)
 *   NOT                         pop one: TRUE <-> FALSE, NULL stays NULL
 *
 * and must leave exactly one value; a row is selected when it is TRUE (never
 * when NULL). Semantics are the executor's (exec/plan.h, expr_kernels.c):
 * int64 compares as signed integers, doubles as IEEE values (every compare
 * with NaN is FALSE except <>, and -0.0 = 0.0); the constant has the
 * column's type (the planner casts). WHERE x BETWEEN a AND b is
 * `x >= a, x <= b, AND`.
 *
 * Output: the selected row numbers (uint32, ascending) in a caller array of
 * n entries (the most there can be); *nsel says how many were written.
 *
 * Backends evaluate 64 rows at a time: a value of the program is a pair of
 * bitmaps (rows that are TRUE, rows that are FALSE; NULL is neither), so
 * AND/OR/NOT are a few word operations, and the selection of 64 rows is one
 * word (see filter.cl). tsr_dev_filter_compile turns a spec into the
 * instruction words every backend executes.
 */
#ifndef TSR_DEVICE_FILTER_H
#define TSR_DEVICE_FILTER_H

#include "device/device.h"
#include "tessera/types.h"

#define TSR_DEV_FILTER_MAX_COLS 16
#define TSR_DEV_FILTER_MAX_INSTRS 64
#define TSR_DEV_FILTER_MAX_DEPTH 16 /* values on the stack at once */
#define TSR_DEV_FILTER_MAX_ROWS ((size_t)UINT32_MAX)

typedef enum tsr_dev_pred_op {
    TSR_DEV_PRED_EQ,
    TSR_DEV_PRED_NE,
    TSR_DEV_PRED_LT,
    TSR_DEV_PRED_LE,
    TSR_DEV_PRED_GT,
    TSR_DEV_PRED_GE,
    TSR_DEV_PRED_IS_NULL,
    TSR_DEV_PRED_IS_NOT_NULL,
    TSR_DEV_PRED_AND,
    TSR_DEV_PRED_OR,
    TSR_DEV_PRED_NOT,
} tsr_dev_pred_op_t;

typedef struct tsr_dev_pred_instr {
    tsr_dev_pred_op_t op;
    size_t column; /* comparisons and IS [NOT] NULL */
    int64_t i;     /* the constant of a comparison on an INT64 column */
    double d;      /* ... on a DOUBLE column */
} tsr_dev_pred_instr_t;

typedef struct tsr_dev_filter_spec {
    size_t ncols;                              /* columns of the input */
    tsr_type_t types[TSR_DEV_FILTER_MAX_COLS]; /* TSR_TYPE_INT64 or TSR_TYPE_DOUBLE */
    size_t ninstrs;
    tsr_dev_pred_instr_t prog[TSR_DEV_FILTER_MAX_INSTRS]; /* postfix */
    size_t launch_rows; /* rows per launch (0: the backend's default; tests use small values) */
} tsr_dev_filter_spec_t;

/* One batch of input rows in host memory. */
typedef struct tsr_dev_filter_cols {
    size_t n;
    const void *values[TSR_DEV_FILTER_MAX_COLS];    /* int64_t or double; NULL if unused */
    const uint64_t *valid[TSR_DEV_FILTER_MAX_COLS]; /* NULL: no NULLs */
} tsr_dev_filter_cols_t;

/* The same input already in device memory (exec/dev_columns.h keeps a
 * query's columns there): per column a buffer of n 8-byte values and an
 * optional validity buffer of (n + 63) / 64 words (NULL: no NULLs). */
typedef struct tsr_dev_filter_dcols {
    size_t n;
    tsr_dev_buf_t *values[TSR_DEV_FILTER_MAX_COLS]; /* NULL if unused */
    tsr_dev_buf_t *valid[TSR_DEV_FILTER_MAX_COLS];
} tsr_dev_filter_dcols_t;

/* ---- shared by the backends ----------------------------------------------------------- */

/* Device instruction codes (also in filter.cl). */
typedef enum tsr_dev_filter_code {
    TSR_DEV_FC_CMP_I = 0, /* + op (EQ..GE): int64 compare */
    TSR_DEV_FC_CMP_D = 8, /* + op: double compare */
    TSR_DEV_FC_IS_NULL = 16,
    TSR_DEV_FC_IS_NOT_NULL = 17,
    TSR_DEV_FC_AND = 18,
    TSR_DEV_FC_OR = 19,
    TSR_DEV_FC_NOT = 20,
} tsr_dev_filter_code_t;

/* One compiled instruction, two words: code | slot << 8 (slot: the position
 * of the column among the used ones), then the constant's bits. */
typedef struct tsr_dev_filter_word {
    uint64_t op;
    uint64_t k;
} tsr_dev_filter_word_t;

typedef struct tsr_dev_filter {
    tsr_dev_t *dev;
    tsr_dev_filter_spec_t spec;
    size_t nused;                         /* columns the program reads */
    size_t used[TSR_DEV_FILTER_MAX_COLS]; /* their indices, ascending */
    size_t ncode;
    tsr_dev_filter_word_t code[TSR_DEV_FILTER_MAX_INSTRS];
    void *impl;
} tsr_dev_filter_t;

struct tsr_dev_filter_ops {
    tsr_status_t (*create)(tsr_dev_filter_t *f, tsr_error_t *err);
    void (*destroy)(tsr_dev_filter_t *f);
    /* cols->n > 0 and every used column given (checked). */
    tsr_status_t (*run)(tsr_dev_filter_t *f, tsr_dev_queue_t *q, const tsr_dev_filter_cols_t *cols,
                        uint32_t *sel, size_t *nsel, tsr_error_t *err);
    /* Optional (NULL: the backend takes host input only): cols in device
     * memory, the selection written into the device buffer sel; only *nsel
     * comes back to the host. cols->n > 0, buffers checked. */
    tsr_status_t (*run_dev)(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                            const tsr_dev_filter_dcols_t *cols, tsr_dev_buf_t *sel, size_t *nsel,
                            tsr_error_t *err);
};

extern const tsr_dev_filter_ops_t tsr_dev_filter_cpu_ops;
extern const tsr_dev_filter_ops_t tsr_dev_filter_opencl_ops;
#ifdef TSR_HAVE_CUDA
extern const tsr_dev_filter_ops_t tsr_dev_filter_cuda_ops;
#endif

/* Checks spec and fills f's nused/used/ncode/code (used by create). */
tsr_status_t tsr_dev_filter_compile(const tsr_dev_filter_spec_t *spec, tsr_dev_filter_t *f,
                                    tsr_error_t *err);

/* The selection bitmap of 64 rows starting at row `first` (of n): bit i set =
 * row first + i is TRUE. vals[u] / valid[u] are the used columns' arrays
 * (valid[u] NULL: no NULLs), indexed by absolute row. The sequential model
 * of filter.cl's evaluator; the cpu backend runs it. */
uint64_t tsr_dev_filter_eval64(const tsr_dev_filter_t *f, const uint64_t *const *vals,
                               const uint64_t *const *valid, size_t first, size_t n);

/* ---- the host API ------------------------------------------------------------------ */

tsr_status_t tsr_dev_filter_create(tsr_dev_t *dev, const tsr_dev_filter_spec_t *spec,
                                   tsr_dev_filter_t **out, tsr_error_t *err);
void tsr_dev_filter_destroy(tsr_dev_filter_t *f);

/* Writes the rows of cols where the program is TRUE into sel (room for
 * cols->n entries; may be NULL when n is 0), ascending, and their number
 * into *nsel. q: a queue of f's device (NULL: its default queue). Returns
 * after the input has been consumed. */
tsr_status_t tsr_dev_filter_run(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                const tsr_dev_filter_cols_t *cols, uint32_t *sel, size_t *nsel,
                                tsr_error_t *err);

/* tsr_dev_filter_run over device-resident columns: the selected rows
 * (ascending uint32) go into the device buffer sel (room for cols->n
 * entries), their number into *nsel; nothing else leaves the device. When
 * it returns the selection is complete on f's device. TSR_ERR_UNSUPPORTED
 * (err untouched) when the backend has no device-input filter. */
tsr_status_t tsr_dev_filter_run_dev(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                    const tsr_dev_filter_dcols_t *cols, tsr_dev_buf_t *sel,
                                    size_t *nsel, tsr_error_t *err);

/* Whether f's backend filters device-resident columns (run_dev). */
bool tsr_dev_filter_has_run_dev(const tsr_dev_filter_t *f);

#endif /* TSR_DEVICE_FILTER_H */
