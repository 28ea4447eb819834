/*
 * ast.h - the syntax tree of a parsed SELECT statement.
 *
 * Produced by tsr_sql_parse (parser.c), consumed by the binder (binder.c).
 * All nodes and strings live in the caller's arena; nothing here is freed
 * individually. Every expression carries its source span: the binder uses it
 * for error carets and for output column names (SELECT a+b names the column
 * "a+b", the expression's text as written).
 *
 * Grammar (keywords case-insensitive, identifiers case-insensitive, "quoted"
 * identifiers keep case, 'strings' with '' as an escaped quote):
 *   select  := SELECT [DISTINCT] item (',' item)*
 *              [FROM table_ref (join)*] [WHERE expr] [GROUP BY expr (',' expr)*]
 *              [HAVING expr] [ORDER BY expr [ASC|DESC] (',' ...)*]
 *              [LIMIT int [OFFSET int]] [';']
 *   item    := '*' | ident '.' '*' | expr [[AS] ident]
 *   table_ref := ident [[AS] ident]
 *   join    := [INNER] JOIN table_ref ON expr
 *   expr precedence, lowest first: OR; AND; NOT; comparison (= <> != < <= > >=,
 *   IS [NOT] NULL, [NOT] IN (...), [NOT] BETWEEN a AND b, [NOT] LIKE pat);
 *   + -; * / %; unary - +; primary (literal, column, func(args), (expr)).
 */
#ifndef TSR_SQL_AST_H
#define TSR_SQL_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"

typedef struct tsr_src_span {
    size_t offset; /* byte offset into the SQL text */
    size_t len;    /* bytes */
    int line;      /* 1-based */
    int column;    /* 1-based, in bytes */
} tsr_src_span_t;

typedef enum tsr_ast_kind {
    TSR_AST_COLUMN,  /* [table.]name */
    TSR_AST_STAR,    /* * in COUNT(*), or [table.]* in the select list (table may be set) */
    TSR_AST_INT,     /* ival */
    TSR_AST_DOUBLE,  /* dval */
    TSR_AST_STRING,  /* sval (unescaped) */
    TSR_AST_NULL,
    TSR_AST_BOOL,    /* TRUE/FALSE: ival 1/0 */
    TSR_AST_UNARY,   /* op: TSR_OP_NEG, TSR_OP_NOT (args[0]); unary + is dropped */
    TSR_AST_BINARY,  /* op: arithmetic, comparison, AND, OR (args[0], args[1]) */
    TSR_AST_IS_NULL, /* args[0] IS [NOT] NULL (negated) */
    TSR_AST_IN,      /* args[0] [NOT] IN (args[1..]) */
    TSR_AST_BETWEEN, /* args[0] [NOT] BETWEEN args[1] AND args[2] */
    TSR_AST_LIKE,    /* args[0] [NOT] LIKE args[1] */
    TSR_AST_FUNC,    /* name(args...), distinct for COUNT(DISTINCT x); COUNT(*) has one STAR arg */
} tsr_ast_kind_t;

typedef enum tsr_op {
    TSR_OP_NONE = 0,
    TSR_OP_ADD, TSR_OP_SUB, TSR_OP_MUL, TSR_OP_DIV, TSR_OP_MOD,
    TSR_OP_EQ, TSR_OP_NE, TSR_OP_LT, TSR_OP_LE, TSR_OP_GT, TSR_OP_GE,
    TSR_OP_AND, TSR_OP_OR,
    TSR_OP_NEG, TSR_OP_NOT,
} tsr_op_t;

typedef struct tsr_ast_expr {
    tsr_ast_kind_t kind;
    tsr_src_span_t span;         /* the whole expression's text */
    tsr_op_t op;                 /* UNARY, BINARY */
    bool negated;                /* IS NOT NULL, NOT IN, NOT BETWEEN, NOT LIKE */
    bool distinct;               /* FUNC: COUNT(DISTINCT x) */
    char *table;                 /* COLUMN/STAR: qualifier or NULL */
    char *name;                  /* COLUMN: column name; FUNC: function name as written */
    int64_t ival;                /* INT, BOOL */
    double dval;                 /* DOUBLE */
    char *sval;                  /* STRING */
    size_t slen;                 /* STRING length in bytes */
    struct tsr_ast_expr **args;  /* operands, see tsr_ast_kind_t */
    size_t nargs;
} tsr_ast_expr_t;

typedef struct tsr_ast_select_item {
    tsr_ast_expr_t *expr; /* STAR for * and t.* */
    char *alias;          /* NULL when none */
} tsr_ast_select_item_t;

typedef struct tsr_ast_table_ref {
    char *table;          /* table name */
    char *alias;          /* NULL when none */
    tsr_src_span_t span;  /* of the table name */
} tsr_ast_table_ref_t;

typedef struct tsr_ast_join {
    tsr_ast_table_ref_t table;
    tsr_ast_expr_t *on;
} tsr_ast_join_t;

typedef struct tsr_ast_order_item {
    tsr_ast_expr_t *expr; /* an INT literal is an ordinal (ORDER BY 2) */
    bool desc;
} tsr_ast_order_item_t;

typedef struct tsr_ast_select {
    bool distinct;
    tsr_ast_select_item_t *items;
    size_t nitems;
    bool has_from;
    tsr_ast_table_ref_t from;
    tsr_ast_join_t *joins;
    size_t njoins;
    tsr_ast_expr_t *where;        /* NULL when absent */
    tsr_ast_expr_t **group_by;
    size_t ngroup_by;
    tsr_ast_expr_t *having;       /* NULL when absent */
    tsr_ast_order_item_t *order_by;
    size_t norder_by;
    int64_t limit;                /* -1 when absent */
    int64_t offset;               /* 0 when absent */
} tsr_ast_select_t;

/* Parses one SELECT statement (an optional trailing ';' and whitespace/comments
 * allowed; -- line and block comments are skipped). On error returns
 * TSR_ERR_SYNTAX with err's line/column at the offending token and a message
 * like "expected FROM, found 'FORM'"; never crashes on any input. All output
 * lives in arena. */
tsr_status_t tsr_sql_parse(tsr_arena_t *arena, const char *sql, size_t len,
                           tsr_ast_select_t **out, tsr_error_t *err);

#endif /* TSR_SQL_AST_H */
