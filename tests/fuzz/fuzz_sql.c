/*
 * fuzz_sql.c - libFuzzer target for the SQL lexer and parser.
 *
 * Parses arbitrary bytes with tsr_sql_parse into a fresh arena and releases
 * it. Beyond "no crash, no leak, no hang" (the sanitizers and libFuzzer's
 * timeout see to those) it checks what the binder relies on, and traps when
 * it does not hold:
 *   - success and failure are exclusive: OK leaves no error, a failure is a
 *     syntax error with a message and a position inside the text;
 *   - every expression's span lies inside the input and inside its parent's
 *     span, and its line/column agree with its offset;
 *   - with one allocation failing, the result is TSR_ERR_NOMEM or the same
 *     as without;
 *   - trees are no deeper than the parser's bound (so walking them
 *     recursively, as done here, is safe).
 * Seeds: tests/fuzz/corpus/fuzz_sql/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sql/ast.h"

#define MAX_TREE_HEIGHT 1000 /* parser.c's MAX_HEIGHT */

typedef struct ctx {
    const uint8_t *data;
    size_t size;
} ctx_t;

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

/* line/column of offset, counted the way the lexer does. */
static void position_of(const ctx_t *c, size_t offset, int *line, int *column)
{
    int l = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset; i++)
        if (c->data[i] == '\n') {
            l++;
            line_start = i + 1;
        }
    *line = l;
    *column = (int)(offset - line_start) + 1;
}

static void check_span(const ctx_t *c, const tsr_src_span_t *s, const tsr_src_span_t *parent)
{
    check(s->offset <= c->size && s->len <= c->size - s->offset);
    check(s->len > 0);
    if (parent)
        check(s->offset >= parent->offset && s->offset + s->len <= parent->offset + parent->len);
    if (c->size < 4096) { /* keep the quadratic recount cheap */
        int line, column;
        position_of(c, s->offset, &line, &column);
        check(line == s->line && column == s->column);
    }
}

static void check_expr(const ctx_t *c, const tsr_ast_expr_t *e, const tsr_src_span_t *parent,
                       int depth)
{
    check(e != NULL);
    check(depth <= MAX_TREE_HEIGHT);
    check_span(c, &e->span, parent);
    switch (e->kind) {
    case TSR_AST_COLUMN:
        check(e->name != NULL && e->nargs == 0);
        break;
    case TSR_AST_FUNC:
        check(e->name != NULL);
        break;
    case TSR_AST_STRING:
        check(e->sval != NULL && e->sval[e->slen] == '\0');
        break;
    case TSR_AST_UNARY:
        check(e->nargs == 1);
        break;
    case TSR_AST_BINARY:
    case TSR_AST_LIKE:
        check(e->nargs == 2);
        break;
    case TSR_AST_IS_NULL:
        check(e->nargs == 1);
        break;
    case TSR_AST_BETWEEN:
        check(e->nargs == 3);
        break;
    case TSR_AST_IN:
        check(e->nargs >= 2);
        break;
    default:
        check(e->nargs == 0);
        break;
    }
    for (size_t i = 0; i < e->nargs; i++)
        check_expr(c, e->args[i], &e->span, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctx_t c = {data, size};
    tsr_arena_t arena;
    tsr_arena_init(&arena, NULL);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_ast_select_t *sel = NULL;
    tsr_status_t rc = tsr_sql_parse(&arena, (const char *)data, size, &sel, &err);
    if (rc == TSR_OK) {
        check(sel != NULL && err.status == TSR_OK && sel->nitems > 0);
        for (size_t i = 0; i < sel->nitems; i++)
            check_expr(&c, sel->items[i].expr, NULL, 1);
        for (size_t i = 0; i < sel->njoins; i++)
            check_expr(&c, sel->joins[i].on, NULL, 1);
        if (sel->where)
            check_expr(&c, sel->where, NULL, 1);
        for (size_t i = 0; i < sel->ngroup_by; i++)
            check_expr(&c, sel->group_by[i], NULL, 1);
        if (sel->having)
            check_expr(&c, sel->having, NULL, 1);
        for (size_t i = 0; i < sel->norder_by; i++)
            check_expr(&c, sel->order_by[i].expr, NULL, 1);
        if (sel->has_from)
            check_span(&c, &sel->from.span, NULL);
        check(sel->limit >= -1 && sel->offset >= 0);
    } else {
        check(rc == TSR_ERR_SYNTAX && err.status == rc && sel == NULL);
        check(err.message[0] != '\0' && err.line >= 1 && err.column >= 1);
        check(memchr(err.message, '\n', sizeof(err.message)) == NULL);
    }
    tsr_arena_release(&arena);

    /* Again with one allocation failing: out of memory is reported as such,
     * anything else must come out as it did (and nothing may leak). */
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_mem_fail_after(&mem, (long)(size % 3));
    tsr_arena_init(&arena, &mem);
    tsr_error_t err2;
    tsr_error_clear(&err2);
    tsr_ast_select_t *sel2 = NULL;
    tsr_status_t rc2 = tsr_sql_parse(&arena, (const char *)data, size, &sel2, &err2);
    if (atomic_load(&mem.failures) == 0)
        check(rc2 == rc);
    else
        check(rc2 == TSR_ERR_NOMEM || rc2 == rc);
    check(err2.status == rc2);
    tsr_arena_release(&arena);
    return 0;
}
