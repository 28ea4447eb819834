/*
 * binder_names.c - names and positions for the binder (binder.h).
 *
 * Name resolution. A qualified column "q.c" looks q up among the visible FROM
 * tables: by alias (or name, for a table without one), else by the catalog
 * name of an aliased table when only one has it; then c in that table.
 * An unqualified column must belong to exactly one visible table; failing
 * that, where the clause allows it (GROUP BY, ORDER BY), it may name a select
 * item by its alias. All lookups are case-insensitive.
 *
 * Positions. An error about an operator ("cannot compare VARCHAR with
 * BIGINT") points at the operator itself, found by scanning the SQL text after
 * the left operand (past blanks, comments and closing parentheses). A
 * qualified column's "unknown column" error points at the column part of
 * "t.col".
 *
 * Hints. "Did you mean" picks the closest candidate by edit distance (a
 * couple of edits, never most of a short name), or else a name the user's
 * text abbreviates ("qty" for "quantity"); an exact explanation (an alias
 * where aliases are not allowed, a table joined later) beats a guess.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "sql/binder.h"

static int tolower_ascii(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ---- "did you mean" -------------------------------------------------------- */

void tsr_suggest_init(tsr_suggest_t *s, const char *name)
{
    s->name = name;
    s->best = NULL;
    s->best_score = SIZE_MAX;
}

/* name is an abbreviation of cand: same first letter, and name's letters
 * appear in cand in order ("qty" of "quantity"), case-insensitively. */
static bool is_abbreviation(const char *name, const char *cand)
{
    if (!name[0] || !cand[0] || tolower_ascii(name[0]) != tolower_ascii(cand[0]))
        return false;
    const char *c = cand;
    for (const char *n = name; *n; n++) {
        while (*c && tolower_ascii(*c) != tolower_ascii(*n))
            c++;
        if (!*c)
            return false;
        c++;
    }
    return true;
}

void tsr_suggest_add(tsr_suggest_t *s, const char *cand)
{
    if (!s->name || !cand)
        return;
    size_t n = strlen(s->name);
    size_t d = tsr_edit_distance(s->name, cand);
    size_t score;
    /* A typo (a couple of edits, never a whole rewrite of a short name), or an
     * abbreviation, which ranks after every typo. */
    if ((d <= 2 && d < n) || d <= n / 3)
        score = d;
    else if (n >= 2 && is_abbreviation(s->name, cand))
        score = 100 + strlen(cand);
    else
        return;
    if (score < s->best_score) {
        s->best = cand;
        s->best_score = score;
    }
}

/* ---- positions in the SQL text -------------------------------------------- */

/* Advances (off, line, col) over the text up to byte `to`. */
static void walk_to(const char *sql, size_t to, size_t *off, int *line, int *col)
{
    for (; *off < to; (*off)++) {
        if (sql[*off] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Skips blanks and comments from (off, line, col); also ')' when close_parens. */
static void skip_blanks(const char *sql, size_t len, bool close_parens, size_t *off, int *line,
                        int *col)
{
    while (*off < len) {
        char c = sql[*off];
        size_t to = *off + 1;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
            (close_parens && c == ')')) {
            /* one byte */
        } else if (c == '-' && *off + 1 < len && sql[*off + 1] == '-') {
            while (to < len && sql[to] != '\n')
                to++;
        } else if (c == '/' && *off + 1 < len && sql[*off + 1] == '*') {
            to = *off + 2;
            while (to + 1 < len && !(sql[to] == '*' && sql[to + 1] == '/'))
                to++;
            to = to + 1 < len ? to + 2 : len;
        } else {
            return;
        }
        walk_to(sql, to, off, line, col);
    }
}

/* The position of the first token after expression `left` (the operator of a
 * binary expression whose left operand it is); fallback when unknown. */
tsr_src_span_t tsr_binder_token_after(const tsr_binder_t *b, const tsr_ast_expr_t *left,
                                      tsr_src_span_t fallback)
{
    size_t off = left->span.offset, end = left->span.offset + left->span.len;
    if (!b->sql || end > b->sql_len || end < off || left->span.line < 1)
        return fallback;
    int line = left->span.line, col = left->span.column;
    walk_to(b->sql, end, &off, &line, &col);
    skip_blanks(b->sql, b->sql_len, true, &off, &line, &col);
    if (off >= b->sql_len)
        return fallback;
    tsr_src_span_t s = {.offset = off, .len = 1, .line = line, .column = col};
    return s;
}

/* The position of the column part of a qualified "t.col" (or "t" . "col"). */
static tsr_src_span_t column_part(const tsr_binder_t *b, const tsr_ast_expr_t *a)
{
    size_t off = a->span.offset, end = a->span.offset + a->span.len;
    if (!b->sql || !a->table || end > b->sql_len || end < off || a->span.line < 1)
        return a->span;
    int line = a->span.line, col = a->span.column;
    size_t p = off;
    if (p < end && b->sql[p] == '"') { /* quoted qualifier: up to its closing quote */
        p++;
        while (p < end) {
            if (b->sql[p] == '"' && (p + 1 >= end || b->sql[p + 1] != '"'))
                break;
            p += b->sql[p] == '"' ? 2 : 1;
        }
        p++;
    } else {
        while (p < end && b->sql[p] != '.' && b->sql[p] != ' ' && b->sql[p] != '\t' &&
               b->sql[p] != '\n' && b->sql[p] != '\r' && b->sql[p] != '-' && b->sql[p] != '/')
            p++;
    }
    if (p > end)
        return a->span;
    walk_to(b->sql, p, &off, &line, &col);
    skip_blanks(b->sql, end, false, &off, &line, &col);
    if (off >= end || b->sql[off] != '.')
        return a->span;
    walk_to(b->sql, off + 1, &off, &line, &col);
    skip_blanks(b->sql, end, false, &off, &line, &col);
    if (off >= end)
        return a->span;
    tsr_src_span_t s = {.offset = off, .len = end - off, .line = line, .column = col};
    return s;
}

/* ---- name resolution ------------------------------------------------------ */

/* Index of the visible table qualifier q names: its alias (or its name when it
 * has none), else the catalog name of an aliased table. -1: none; -2: the
 * catalog name of several aliased tables. */
static long find_table_silent(const tsr_binder_t *b, size_t nvisible, const char *q)
{
    for (size_t i = 0; i < nvisible; i++)
        if (strcasecmp(b->tables[i].name, q) == 0)
            return (long)i;
    long found = -1;
    for (size_t i = 0; i < nvisible; i++) {
        if (b->tables[i].has_alias && strcasecmp(b->tables[i].table->name, q) == 0) {
            if (found >= 0)
                return -2;
            found = (long)i;
        }
    }
    return found;
}

tsr_status_t tsr_binder_find_table(tsr_binder_t *b, size_t nvisible, const char *q,
                                   tsr_src_span_t span, size_t *out)
{
    long t = find_table_silent(b, nvisible, q);
    if (t >= 0) {
        *out = (size_t)t;
        return TSR_OK;
    }
    if (t == -2) {
        tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, span,
                                             "table reference '%s' is ambiguous", q);
        tsr_binder_hint(b, "the table is joined more than once: use one of its aliases");
        return rc;
    }
    for (size_t i = nvisible; i < b->ntables; i++) {
        if (strcasecmp(b->tables[i].name, q) == 0 || strcasecmp(b->tables[i].table->name, q) == 0) {
            tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_NOT_FOUND, span,
                                                 "table '%s' is not joined yet at this point", q);
            tsr_binder_hint(b, "refer to it in a later ON clause or in WHERE");
            return rc;
        }
    }
    tsr_suggest_t s;
    tsr_suggest_init(&s, q);
    for (size_t i = 0; i < nvisible; i++)
        tsr_suggest_add(&s, b->tables[i].name);
    tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_NOT_FOUND, span, "unknown table '%s'", q);
    if (s.best)
        tsr_binder_hint(b, "did you mean '%s'?", s.best);
    return rc;
}

typedef enum lookup {
    LOOKUP_FOUND,
    LOOKUP_NONE,      /* no visible table has it (or the qualifier is unknown) */
    LOOKUP_AMBIGUOUS, /* several visible tables have it */
} lookup_t;

static lookup_t lookup_column(const tsr_binder_t *b, size_t nvisible, const tsr_ast_expr_t *a,
                              size_t *gid, size_t *first_table)
{
    if (a->table) {
        long t = find_table_silent(b, nvisible, a->table);
        if (t < 0)
            return LOOKUP_NONE;
        long c = tsr_table_find_column(b->tables[t].table, a->name);
        if (c < 0)
            return LOOKUP_NONE;
        *first_table = (size_t)t;
        *gid = b->tables[t].base + (size_t)c;
        return LOOKUP_FOUND;
    }
    size_t n = 0;
    for (size_t i = 0; i < nvisible; i++) {
        long c = tsr_table_find_column(b->tables[i].table, a->name);
        if (c >= 0 && n++ == 0) {
            *first_table = i;
            *gid = b->tables[i].base + (size_t)c;
        }
    }
    return n == 0 ? LOOKUP_NONE : n == 1 ? LOOKUP_FOUND : LOOKUP_AMBIGUOUS;
}

bool tsr_binder_lookup_column(const tsr_binder_t *b, size_t nvisible, const tsr_ast_expr_t *a,
                              size_t *gid_out)
{
    size_t t;
    return a->kind == TSR_AST_COLUMN && a->name &&
           lookup_column(b, nvisible, a, gid_out, &t) == LOOKUP_FOUND;
}

/* The select item an unqualified name refers to as an alias, when the scope
 * allows aliases and no visible input column has that name. */
const tsr_bind_item_t *tsr_binder_alias_target(const tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                               const tsr_ast_expr_t *a)
{
    if (!sc->allow_alias || a->kind != TSR_AST_COLUMN || a->table || !a->name)
        return NULL;
    size_t gid, t;
    if (lookup_column(b, sc->nvisible, a, &gid, &t) != LOOKUP_NONE)
        return NULL;
    for (size_t i = 0; i < b->nitems; i++)
        if (b->items[i].alias && strcasecmp(b->items[i].alias, a->name) == 0)
            return &b->items[i];
    return NULL;
}

/* Resolves COLUMN a to a global id, or to a select item (alias). */
tsr_status_t tsr_binder_resolve_column(tsr_binder_t *b, const tsr_bind_scope_t *sc,
                                       const tsr_ast_expr_t *a, size_t *gid,
                                       const tsr_bind_item_t **item)
{
    *item = NULL;
    if (!a->name)
        return tsr_binder_fail_at(b, TSR_ERR_INTERNAL, a->span, "malformed syntax tree");
    if (a->table) {
        size_t t;
        tsr_status_t rc = tsr_binder_find_table(b, sc->nvisible, a->table, a->span, &t);
        if (rc != TSR_OK)
            return rc;
        long c = tsr_table_find_column(b->tables[t].table, a->name);
        if (c >= 0) {
            *gid = b->tables[t].base + (size_t)c;
            return TSR_OK;
        }
        tsr_suggest_t s;
        tsr_suggest_init(&s, a->name);
        const tsr_table_t *tab = b->tables[t].table;
        for (size_t i = 0; i < tab->ncols; i++)
            tsr_suggest_add(&s, tab->fields[i].name);
        rc = tsr_binder_fail_at(b, TSR_ERR_NOT_FOUND, column_part(b, a), "unknown column '%s'",
                                a->name);
        if (s.best)
            tsr_binder_hint(b, "did you mean '%s.%s'?", a->table, s.best);
        else
            tsr_binder_hint(b, "table '%s' has no such column", b->tables[t].name);
        return rc;
    }
    size_t t = 0;
    switch (lookup_column(b, sc->nvisible, a, gid, &t)) {
    case LOOKUP_FOUND:
        return TSR_OK;
    case LOOKUP_AMBIGUOUS: {
        tsr_status_t rc = tsr_binder_fail_at(b, TSR_ERR_INVALID_ARG, a->span,
                                             "column '%s' is ambiguous", a->name);
        tsr_binder_hint(b, "qualify it, e.g. %s.%s", b->tables[t].name, a->name);
        return rc;
    }
    case LOOKUP_NONE:
        break;
    }
    if ((*item = tsr_binder_alias_target(b, sc, a)) != NULL)
        return TSR_OK;
    tsr_status_t rc =
        tsr_binder_fail_at(b, TSR_ERR_NOT_FOUND, a->span, "unknown column '%s'", a->name);
    /* An exact explanation beats a guess: a later table's column, or an alias
     * where aliases cannot be used. */
    for (size_t i = sc->nvisible; i < b->ntables; i++) {
        if (tsr_table_find_column(b->tables[i].table, a->name) >= 0) {
            tsr_binder_hint(b, "'%s' is a column of '%s', which is joined later", a->name,
                            b->tables[i].name);
            return rc;
        }
    }
    for (size_t i = 0; !sc->allow_alias && i < b->nitems; i++) {
        if (b->items[i].alias && strcasecmp(b->items[i].alias, a->name) == 0) {
            tsr_binder_hint(
                b, "'%s' is a select-list alias, which %s cannot use; repeat its expression",
                a->name, sc->clause ? sc->clause : "this clause");
            return rc;
        }
    }
    tsr_suggest_t s;
    tsr_suggest_init(&s, a->name);
    for (size_t i = 0; i < sc->nvisible; i++) {
        const tsr_table_t *tab = b->tables[i].table;
        for (size_t c = 0; c < tab->ncols; c++)
            tsr_suggest_add(&s, tab->fields[c].name);
    }
    for (size_t i = 0; sc->allow_alias && i < b->nitems; i++)
        if (b->items[i].alias)
            tsr_suggest_add(&s, b->items[i].alias);
    if (s.best)
        tsr_binder_hint(b, "did you mean '%s'?", s.best);
    return rc;
}
