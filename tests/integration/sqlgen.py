"""sqlgen - random tables and random typed SQL for the differential suite.

What: builds a few random tables (Python values), writes them as CSV for
Tessera and as a CREATE/INSERT script for the sqlite3 command, and generates
random SELECT statements that both engines must answer identically, together
with what the comparison needs (output column types, which output columns
form the ORDER BY key).

Invariants the generator keeps, so that every difference is a real bug:
  - every expression is typed (int/double/str/bool) and never mixes strings
    with numbers, never uses a non-grouped, non-aggregated column;
  - integer magnitudes are tracked (a bound per expression) so no arithmetic
    and no SUM can overflow INT64: SQLite silently turns arithmetic overflow
    into REAL where Tessera raises an error (the edge subset tests that);
  - doubles in the data are multiples of 0.25 (exact in binary and decimal);
  - LIKE patterns only use '_' when byte-wise and character-wise matching
    agree on every value of the column (Tessera's '_' is one byte, SQLite's
    one UTF-8 character);
  - LIMIT/OFFSET only follow an ORDER BY over every output column, so the
    chosen rows are determined (up to identical rows);
  - no GROUP BY on double-valued expressions (-0.0 vs 0.0), no % on doubles
    (SQLite converts them to integers), no BOOL columns in the tables.
Everything is drawn from a random.Random passed in, so a seed reproduces it.
"""

import random
import re

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)

# Strings that stress CSV quoting, whitespace, look-alikes of other types and UTF-8.
STR_POOL = [
    "alpha", "beta", "Gamma", "gamma", "delta", "a b", " lead", "trail ", "x,y",
    'say "hi"', "O'Brien", "", "comma,,", "42", "-1.5", "true", "NULL", "null",
    "line\nbreak", "zeta", "Alpha", "%pct", "under_score", "b", "ab", "abc",
    "\u00e9", "na\u00efve caf\u00e9", "tab\tchar", "z",
]
NAME_POOL = [
    "Ann", "Bob", "Carla", "dave", "Eve", "Frank", "Grace", "Heidi", "Ivan",
    "Judy", "Mallory", "Oscar", "Peggy", "Trent", "Victor", "Walter",
    "Zo\u00eb", "\u00d8rsted", "\u0141\u00f3d\u017a", "\u6771\u4eac", "\u00c6gir",
    "\u00d1and\u00fa", "Stra\u00dfe", "Jos\u00e9", "M\u00fcller", "O'Neil",
    "Smith, J.", "\"Q\"", "", "  ",
]


class Table:
    def __init__(self, name, cols, rows, bounds):
        self.name = name
        self.cols = cols        # [(name, type)] type in int/double/str
        self.rows = rows        # list of tuples; None is NULL
        self.bounds = bounds    # {col: max abs value} for numeric columns

    def col_values(self, col):
        i = [c for c, _ in self.cols].index(col)
        return [r[i] for r in self.rows]


def _maybe_null(rng, p, v):
    return None if rng.random() < p else v


def _skewed(rng, n):
    # Zipf-like: small keys are much more frequent (hot keys in hash tables).
    return min(int(rng.paretovariate(0.9)) - 1, n - 1)


def _quarter(rng, lim):
    return rng.randint(-lim * 4, lim * 4) / 4.0


_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "x,y", '"q"', "\n", "\r\n", "caf\u00e9", "\u6771\u4eac",
          "a" * 40, " ", ",", "", "tail"]


def _long_text(rng):
    """Long strings (past any inline-string size), some sharing long prefixes, many
    with quoted newlines and commas: with them the big CSV passes 2 MiB, so the
    reader's parallel, quote-aware chunking runs (chunks are >= 1 MiB)."""
    x = rng.random()
    if x < 0.2:
        return "prefix-" * 20 + str(rng.randint(0, 50))
    if x < 0.25:
        return ""
    return "".join(rng.choice(_WORDS) + rng.choice([" ", "", "-"]) for _ in range(rng.randint(1, 80)))


def make_tables(rng):
    """Three tables: big (> 8192 rows: several batches), mid (0..3000), dim (0..200)."""
    # Mostly realistic sizes; now and then the degenerate ones (empty, one row,
    # exactly one batch of 8192 and one more).
    nbig = rng.choices([8192, 8193, rng.randint(8200, 12000)], [1, 1, 4])[0]
    nmid = rng.choices([0, 1, 7, rng.randint(10, 500), rng.randint(500, 3000)], [1, 1, 1, 3, 10])[0]
    ndim = rng.choices([0, 1, rng.randint(2, 40), rng.randint(40, 200)], [1, 1, 3, 10])[0]
    pnull = rng.uniform(0.10, 0.20)

    ids = list(range(nbig))
    rng.shuffle(ids)
    big_rows = []
    hkeys = [rng.randint(-(1 << 40), 1 << 40) for _ in range(500)]
    for i in range(nbig):
        big_rows.append((
            _maybe_null(rng, 0.02, ids[i]),
            _maybe_null(rng, pnull, _skewed(rng, 100)),
            _maybe_null(rng, pnull, rng.randint(-1000, 1000)),
            _maybe_null(rng, pnull, rng.choice([rng.randint(-100000, 100000), rng.randint(-5, 5)])),
            _maybe_null(rng, pnull, rng.choice(hkeys)),
            _maybe_null(rng, pnull, _quarter(rng, 1000)),
            _maybe_null(rng, pnull, rng.choice(STR_POOL)),
            _maybe_null(rng, pnull, rng.choice(NAME_POOL)),
            _maybe_null(rng, pnull, _long_text(rng)),
        ))
    big = Table("big", [("id", "int"), ("k", "int"), ("v", "int"), ("w", "int"), ("h", "int"),
                        ("d", "double"), ("s", "str"), ("name", "str"), ("txt", "str")], big_rows,
                {"id": nbig, "k": 100, "v": 1000, "w": 100000, "h": 1 << 40, "d": 1000})

    mid_rows = []
    for i in range(nmid):
        mid_rows.append((
            i,
            _maybe_null(rng, pnull, rng.randint(-10, nbig + 10)),
            _maybe_null(rng, pnull, _skewed(rng, 120)),
            _maybe_null(rng, pnull, rng.randint(-50, 50)),
            _maybe_null(rng, pnull, _quarter(rng, 500)),
            _maybe_null(rng, pnull, rng.choice(NAME_POOL + ["n%d" % rng.randint(0, 300)])),
        ))
    mid = Table("mid", [("id", "int"), ("bid", "int"), ("k", "int"), ("x", "int"), ("e", "double"),
                        ("name", "str")], mid_rows,
                {"id": max(nmid, 1), "bid": nbig + 10, "k": 120, "x": 50, "e": 500})

    # dim: mostly-unique keys (a few duplicates, a few NULLs) so joins stay small.
    dim_rows = []
    names = NAME_POOL[:]
    rng.shuffle(names)
    for i in range(ndim):
        k = i if rng.random() < 0.9 else rng.randint(0, max(ndim - 1, 0))
        nm = names[i] if i < len(names) else ("n%d" % i if rng.random() < 0.9 else rng.choice(NAME_POOL))
        dim_rows.append((
            _maybe_null(rng, 0.05, k),
            _maybe_null(rng, 0.05, nm),
            _maybe_null(rng, pnull, _quarter(rng, 100)),
            _maybe_null(rng, pnull, rng.choice(STR_POOL)),
        ))
    dim = Table("dim", [("k", "int"), ("name", "str"), ("wt", "double"), ("label", "str")], dim_rows,
                {"k": max(ndim, 1), "wt": 100})
    return {"big": big, "mid": mid, "dim": dim}


def make_edge_table(rng):
    """Huge integers: big all >= 2^62 (one is INT64_MAX), nbig all <= -2^62 (one INT64_MIN)."""
    n = 20
    rows = []
    for i in range(n):
        big = INT64_MAX if i == 0 else rng.randint(1 << 62, INT64_MAX)
        nbig = INT64_MIN if i == 1 else -rng.randint(1 << 62, INT64_MAX)
        rows.append((i, big, nbig, rng.randint(-10, 10), rng.randint(1, 1 << 31)))
    return Table("edge", [("id", "int"), ("big", "int"), ("nbig", "int"), ("small", "int"),
                          ("mid", "int")], rows, {})


# ---------------------------------------------------------------- CSV / SQL text

def csv_field(v, typ, rng):
    if v is None:
        return ""
    if typ == "int":
        return str(v)
    if typ == "double":
        if v == int(v) and rng.random() < 0.3:
            return str(int(v))        # "3" in a DOUBLE column must read as 3.0
        return repr(v)
    need = v == "" or any(ch in v for ch in ',"\r\n') or rng.random() < 0.15
    return '"' + v.replace('"', '""') + '"' if need else v


def write_csv(table, path, rng):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(c for c, _ in table.cols) + "\n")
        for r in table.rows:
            f.write(",".join(csv_field(v, t, rng) for v, (_, t) in zip(r, table.cols)) + "\n")


def schema_arg(table):
    m = {"int": "int64", "double": "double", "str": "varchar"}
    return "%s=%s" % (table.name, ",".join("%s:%s" % (c, m[t]) for c, t in table.cols))


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def sql_lit(v, typ):
    if v is None:
        return "NULL"
    if typ == "str":
        return sql_str(v)
    if typ == "double":
        return repr(float(v))
    return str(v)


def _load_lit(v, typ):
    # The sqlite3 shell drops a CR before a newline in a script it reads, so CRs
    # go in as char(13).
    if typ == "str" and v is not None and "\r" in v:
        return "(" + " || char(13) || ".join(sql_str(p) for p in v.split("\r")) + ")"
    return sql_lit(v, typ)


def sqlite_load_script(tables):
    m = {"int": "INTEGER", "double": "REAL", "str": "TEXT"}
    out = ["BEGIN;"]
    for t in tables:
        out.append("CREATE TABLE %s (%s);" % (t.name, ", ".join("%s %s" % (c, m[ty]) for c, ty in t.cols)))
        for i in range(0, len(t.rows), 500):
            chunk = t.rows[i:i + 500]
            out.append("INSERT INTO %s VALUES %s;" % (t.name, ",".join(
                "(" + ",".join(_load_lit(v, ty) for v, (_, ty) in zip(r, t.cols)) + ")" for r in chunk)))
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- LIKE semantics

def _like_regex(pat, byte_mode):
    parts = []
    for ch in (pat.encode("utf-8") if byte_mode else pat):
        c = chr(ch) if byte_mode else ch
        if c == "%":
            parts.append(b".*" if byte_mode else ".*")
        elif c == "_":
            parts.append(b"." if byte_mode else ".")
        else:
            parts.append(re.escape(bytes([ch])) if byte_mode else re.escape(c))
    j = (b"" if byte_mode else "").join(parts)
    return re.compile(j, re.S)


def like_agrees(pat, values):
    """True when byte-wise and character-wise LIKE give the same answer on all values."""
    rb, rc = _like_regex(pat, True), _like_regex(pat, False)
    for v in set(values):
        if v is None:
            continue
        if bool(rb.fullmatch(v.encode("utf-8"))) != bool(rc.fullmatch(v)):
            return False
    return True


# ---------------------------------------------------------------- SQL style

_KEYWORDS = re.compile(r"\b(SELECT|DISTINCT|FROM|WHERE|GROUP BY|HAVING|ORDER BY|LIMIT|OFFSET|AND|OR|NOT|"
                       r"IN|IS|NULL|LIKE|BETWEEN|AS|JOIN|INNER|ON|ASC|DESC|COUNT|SUM|MIN|MAX|AVG)\b")
_CLAUSES = re.compile(r" (FROM|WHERE|GROUP BY|HAVING|ORDER BY|LIMIT|(?:INNER )?JOIN) ", re.I)


def restyle(sql, rng):
    """Same query, other spelling: keywords in lower or mixed case, clauses on
    new lines. String literals are left alone."""
    lower, newlines = rng.random() < 0.2, rng.random() < 0.2
    if not lower and not newlines:
        return sql
    parts = re.split(r"('(?:[^']|'')*')", sql)
    for i in range(0, len(parts), 2):
        p = parts[i]
        if lower:
            p = _KEYWORDS.sub(lambda m: m.group(1).lower() if rng.random() < 0.7 else m.group(1).title(), p)
        if newlines:
            p = _CLAUSES.sub(lambda m: "\n" + m.group(1) + ("\n  " if rng.random() < 0.3 else " "), p)
        parts[i] = p
    return "".join(parts)


# ---------------------------------------------------------------- expressions

class Col:
    def __init__(self, qual, name, typ, bound, values):
        self.qual, self.name, self.typ, self.bound, self.values = qual, name, typ, bound, values

    def ref(self, rng=None):
        name = self.name
        if rng is not None and rng.random() < 0.05:
            name = '"%s"' % name    # a quoted identifier names the same column
        return "%s.%s" % (self.qual, name) if self.qual else name


class Expr:
    def __init__(self, text, typ, bound=0, is_col=False, name=None):
        self.text, self.typ, self.bound, self.is_col, self.name = text, typ, bound, is_col, name


INT_BOUND_CAP = 10 ** 12   # x rows (<= ~40000 after a join) stays far from 2^63 in SUM


class Query:
    def __init__(self, sql, types, names, order_cols, kind):
        self.sql = sql
        self.types = types            # output column types
        self.names = names            # expected header (None: do not check that column's name)
        self.order_cols = order_cols  # None: unordered; else [(output index, desc)]
        self.kind = kind


class QueryGen:
    def __init__(self, tables, rng):
        self.t = tables
        self.rng = rng

    # -- scopes
    def scope(self, table, qual):
        cols = []
        for c, ty in table.cols:
            vals = table.col_values(c)
            cols.append(Col(qual, c, ty, table.bounds.get(c, 0), vals))
        return cols

    def cols_of(self, scope, typ):
        return [c for c in scope if c.typ == typ]

    # -- literals
    def int_lit(self, scope_col=None):
        r = self.rng
        if scope_col is not None and r.random() < 0.6:
            vals = [v for v in scope_col.values if v is not None]
            if vals:
                return r.choice(vals)
        return r.choice([0, 1, 2, 3, 5, 7, 10, 100, r.randint(-100, 100), r.randint(-1000, 1000)])

    def dbl_lit(self, scope_col=None):
        r = self.rng
        if scope_col is not None and r.random() < 0.5:
            vals = [v for v in scope_col.values if v is not None]
            if vals:
                return r.choice(vals)
        return r.choice([0.0, 0.5, 1.5, -2.25, r.randint(-400, 400) / 4.0, r.randint(-4000, 4000) / 4.0])

    def str_lit(self, scope_col=None):
        r = self.rng
        if scope_col is not None and r.random() < 0.6:
            vals = [v for v in scope_col.values if v is not None]
            if vals:
                return r.choice(vals)
        return r.choice(STR_POOL + NAME_POOL + ["m", "N", "\u00ff"])

    def lit_expr(self, typ, like_col=None):
        if typ == "int":
            v = self.int_lit(like_col)
            return Expr(str(v) if v >= 0 else "(%d)" % v if self.rng.random() < 0.5 else str(v), "int", abs(v))
        if typ == "double":
            v = self.dbl_lit(like_col)
            return Expr(repr(float(v)), "double", abs(v))
        return Expr(sql_str(self.str_lit(like_col)), "str")

    # -- typed expressions
    def col_expr(self, c):
        return Expr(c.ref(self.rng), c.typ, c.bound, True, c.name)

    def int_expr(self, scope, depth):
        r = self.rng
        cols = self.cols_of(scope, "int")
        if depth <= 0 or r.random() < 0.35:
            if cols and r.random() < 0.8:
                return self.col_expr(r.choice(cols))
            return self.lit_expr("int")
        op = r.choice(["+", "-", "*", "/", "%", "neg", "+", "*"])
        if op == "neg":
            a = self.int_expr(scope, depth - 1)
            return Expr("(- %s)" % a.text, "int", a.bound)
        a = self.int_expr(scope, depth - 1)
        b = self.int_expr(scope, depth - 1) if r.random() < 0.5 else self.lit_expr("int")
        if op == "*" and a.bound * b.bound > INT_BOUND_CAP:
            op = "+"
        bound = {"+": a.bound + b.bound, "-": a.bound + b.bound, "*": a.bound * b.bound,
                 "/": a.bound, "%": a.bound}[op]
        if bound > INT_BOUND_CAP:
            return a
        return Expr("(%s %s %s)" % (a.text, op, b.text), "int", bound)

    def dbl_expr(self, scope, depth):
        r = self.rng
        cols = self.cols_of(scope, "double")
        if depth <= 0 or r.random() < 0.35:
            if cols and r.random() < 0.8:
                return self.col_expr(r.choice(cols))
            return self.lit_expr("double")
        op = r.choice(["+", "-", "*", "/", "neg"])
        if op == "neg":
            a = self.dbl_expr(scope, depth - 1)
            return Expr("(- %s)" % a.text, "double", a.bound)
        a = self.dbl_expr(scope, depth - 1)
        pick = r.random()
        if pick < 0.3:
            b = self.int_expr(scope, depth - 1)
        elif pick < 0.6:
            b = self.lit_expr("double")
        else:
            b = self.dbl_expr(scope, depth - 1)
        if r.random() < 0.5:
            a, b = b, a
        if op == "*" and a.bound * b.bound > INT_BOUND_CAP:
            op = "+"
        bound = {"+": a.bound + b.bound, "-": a.bound + b.bound, "*": a.bound * b.bound,
                 "/": max(a.bound * 4, 1)}[op]
        return Expr("(%s %s %s)" % (a.text, op, b.text), "double", bound)

    def num_expr(self, scope, depth):
        if self.cols_of(scope, "double") and self.rng.random() < 0.4:
            return self.dbl_expr(scope, depth)
        return self.int_expr(scope, depth)

    def like_pattern(self, c):
        r = self.rng
        vals = [v for v in c.values if v]
        base = r.choice(vals) if vals and r.random() < 0.8 else r.choice(STR_POOL + NAME_POOL)
        for _ in range(10):
            kind = r.randint(0, 6)
            if kind == 0:
                pat = base[: r.randint(0, len(base))] + "%"
            elif kind == 1:
                pat = "%" + base[r.randint(0, len(base)):]
            elif kind == 2:
                i = r.randint(0, len(base))
                j = r.randint(i, len(base))
                pat = "%" + base[i:j] + "%"
            elif kind == 3:
                pat = "".join("_" if r.random() < 0.3 else ch for ch in base)
            elif kind == 4:
                pat = "".join("_" if r.random() < 0.3 else ch for ch in base[:3]) + "%"
            elif kind == 5:
                pat = base
            else:
                pat = r.choice(["%", "_", "__", "%a%", "_%", "%_", "a%", "%e", "%,%", "%\"%", "% %", ""])
            if like_agrees(pat, c.values):
                return pat
        return "%"

    def predicate(self, scope, depth):
        r = self.rng
        if depth > 0 and r.random() < 0.35:
            op = r.choice(["AND", "OR", "AND", "NOT"])
            if op == "NOT":
                return "(NOT %s)" % self.predicate(scope, depth - 1)
            return "(%s %s %s)" % (self.predicate(scope, depth - 1), op, self.predicate(scope, depth - 1))
        kind = r.choice(["cmp", "cmp", "cmp", "null", "in", "between", "like", "cmpcol"])
        strs = self.cols_of(scope, "str")
        cmpop = r.choice(["=", "<>", "!=", "<", "<=", ">", ">="])
        if kind == "like" and strs:
            c = r.choice(strs)
            neg = "NOT " if r.random() < 0.25 else ""
            return "(%s %sLIKE %s)" % (c.ref(), neg, sql_str(self.like_pattern(c)))
        if kind == "null":
            e = r.choice(scope)
            if r.random() < 0.3 and e.typ != "str":
                txt = self.num_expr(scope, 1).text
            else:
                txt = e.ref()
            return "(%s IS %sNULL)" % (txt, "NOT " if r.random() < 0.5 else "")
        if kind == "in":
            c = r.choice(scope)
            n = r.randint(1, 5)
            if c.typ == "int":
                items = [str(self.int_lit(c)) for _ in range(n)]
            elif c.typ == "double":
                items = [repr(float(self.dbl_lit(c))) for _ in range(n)]
            else:
                items = [sql_str(self.str_lit(c)) for _ in range(n)]
            if r.random() < 0.15:
                items.append("NULL")
            return "(%s %sIN (%s))" % (c.ref(), "NOT " if r.random() < 0.25 else "", ", ".join(items))
        if kind == "between":
            c = r.choice(scope)
            lo, hi = self.lit_expr(c.typ, c), self.lit_expr(c.typ, c)
            if r.random() < 0.7 and c.typ != "str":
                # mostly a non-empty range
                if float(lo.text.strip("()")) > float(hi.text.strip("()")):
                    lo, hi = hi, lo
            return "(%s %sBETWEEN %s AND %s)" % (c.ref(), "NOT " if r.random() < 0.25 else "", lo.text, hi.text)
        if kind == "cmpcol":
            c = r.choice(scope)
            same = [d for d in scope if d.typ == c.typ and d is not c]
            if c.typ == "str" and same:
                return "(%s %s %s)" % (c.ref(), cmpop, r.choice(same).ref())
            if c.typ != "str":
                a, b = self.num_expr(scope, 2), self.num_expr(scope, 2)
                return "(%s %s %s)" % (a.text, cmpop, b.text)
        c = r.choice(scope)
        if c.typ == "str":
            return "(%s %s %s)" % (c.ref(), cmpop, sql_str(self.str_lit(c)))
        if r.random() < 0.5:
            lhs = self.col_expr(c)
        else:
            lhs = self.num_expr(scope, 2)
        rhs = self.lit_expr(lhs.typ if r.random() < 0.8 else r.choice(["int", "double"]),
                            c if lhs.is_col else None)
        if r.random() < 0.03:
            rhs = Expr("NULL", "null")
        return "(%s %s %s)" % (lhs.text, cmpop, rhs.text)

    def value_expr(self, scope, depth):
        """A select-list expression: column, arithmetic, or occasionally a comparison (BOOL)."""
        r = self.rng
        x = r.random()
        if x < 0.45:
            return self.col_expr(r.choice(scope))
        if x < 0.93:
            return self.num_expr(scope, depth)
        return Expr(self.predicate(scope, 0), "bool")

    # -- aggregates
    def aggregate(self, scope):
        r = self.rng
        fn = r.choice(["COUNT(*)", "COUNT", "COUNT_D", "SUM", "SUM", "MIN", "MAX", "AVG", "AVG", "SUM_D"])
        if fn == "COUNT(*)":
            return Expr("COUNT(*)", "int")
        if fn in ("COUNT", "COUNT_D") or (fn in ("MIN", "MAX") and r.random() < 0.3):
            if r.random() < 0.8:
                arg = self.col_expr(r.choice(scope))
            else:
                arg = self.num_expr(scope, 1)
        else:
            arg = self.num_expr(scope, 1) if r.random() < 0.3 else self.col_expr(
                r.choice([c for c in scope if c.typ != "str"] or scope))
            if arg.typ == "str" and fn not in ("MIN", "MAX"):
                fn = "COUNT"
        if fn == "COUNT":
            return Expr("COUNT(%s)" % arg.text, "int")
        if fn in ("COUNT_D", "SUM_D") and arg.typ == "double" and not arg.is_col:
            # -0.0 and 0.0 are one value in SQL; keep sign-of-zero questions out
            arg = self.col_expr(r.choice(self.cols_of(scope, "double")))
        if fn == "COUNT_D":
            return Expr("COUNT(DISTINCT %s)" % arg.text, "int")
        if fn == "SUM_D":
            return Expr("SUM(DISTINCT %s)" % arg.text, arg.typ)
        if fn == "AVG":
            return Expr("AVG(%s)" % arg.text, "double")
        return Expr("%s(%s)" % (fn, arg.text), arg.typ)

    def having(self, scope, keys):
        r = self.rng
        parts = []
        for _ in range(r.randint(1, 2)):
            if keys and r.random() < 0.25:
                k = r.choice(keys)
                if k.typ == "str":
                    parts.append("%s %s %s" % (k.text, r.choice(["<", ">=", "<>"]), sql_str(self.str_lit())))
                else:
                    parts.append("%s IS NOT NULL" % k.text if r.random() < 0.3 else
                                 "%s > %s" % (k.text, self.lit_expr(k.typ).text))
                continue
            a = self.aggregate(scope)
            if a.typ == "str":
                parts.append("%s %s %s" % (a.text, r.choice(["<", ">"]), sql_str(self.str_lit())))
            elif a.text.startswith("COUNT"):
                parts.append("%s %s %d" % (a.text, r.choice([">", ">=", "<", "="]), r.choice([0, 1, 2, 3, 5, 10, 50])))
            else:
                parts.append("%s %s %s" % (a.text, r.choice([">", "<", ">=", "<="]), self.lit_expr(a.typ).text))
        return (" %s " % r.choice(["AND", "OR"])).join(parts)

    # -- select list helpers
    def finish(self, kind, items, from_sql, where=None, group=None, having=None, distinct=False,
               order=True, allow_limit=True, bare_ok=True):
        """items: [Expr]; returns a Query with aliases, ORDER BY and LIMIT decided here."""
        r = self.rng
        sel, names, types = [], [], []
        for i, e in enumerate(items):
            if bare_ok and e.is_col and r.random() < 0.5 and e.name not in names:
                sel.append(e.text)
                names.append(e.name)
            else:
                alias = "c%d" % i
                sel.append("%s AS %s" % (e.text, alias))
                names.append(alias)
            types.append(e.typ)
        sql = "SELECT %s%s FROM %s" % ("DISTINCT " if distinct else "", ", ".join(sel), from_sql)
        if where:
            sql += " WHERE " + where
        if group:
            sql += " GROUP BY " + ", ".join(g.text for g in group)
        if having:
            sql += " HAVING " + having
        order_cols = None
        if order and r.random() < 0.45:
            limit = allow_limit and r.random() < 0.5
            idx = list(range(len(items)))
            r.shuffle(idx)
            if not limit:
                idx = idx[: r.randint(1, len(idx))]
            order_cols, terms = [], []
            for i in idx:
                desc = r.random() < 0.4
                form = r.random()
                if form < 0.4:
                    t = names[i]
                elif form < 0.7:
                    t = str(i + 1)
                elif re.fullmatch(r"[()\s+-]*[0-9.]+\)*", items[i].text):
                    t = names[i]    # an integer literal would be an ordinal
                else:
                    t = items[i].text
                terms.append(t + (" DESC" if desc else (" ASC" if r.random() < 0.3 else "")))
                order_cols.append((i, desc))
            sql += " ORDER BY " + ", ".join(terms)
            if limit:
                sql += " LIMIT %d" % r.choice([0, 1, 3, 10, 25, 100, 1000])
                if r.random() < 0.4:
                    sql += " OFFSET %d" % r.choice([0, 1, 7, 50, 5000])
        return Query(sql, types, names, order_cols, kind)

    # -- query shapes
    def single_table(self):
        r = self.rng
        t = self.t[r.choices(["big", "mid", "dim"], [5, 3, 2])[0]]
        if r.random() < 0.3:
            qual = r.choice(["t", "x", "q"])
            return t, self.scope(t, qual), "%s AS %s" % (t.name, qual) if r.random() < 0.5 else "%s %s" % (t.name, qual)
        return t, self.scope(t, None), t.name

    JOINS = [
        # (tables with aliases, ON conditions)
        ([("big", "b"), ("dim", "d")], ["b.k = d.k"]),
        ([("dim", "d"), ("big", "b")], ["d.k = b.k"]),
        ([("mid", "m"), ("dim", "d")], ["m.k = d.k"]),
        ([("big", "b"), ("mid", "m")], ["b.id = m.bid"]),
        ([("mid", "m"), ("big", "b")], ["b.id = m.bid"]),
        ([("big", "b"), ("dim", "d")], ["b.name = d.name"]),
        ([("mid", "m"), ("dim", "d")], ["d.name = m.name"]),
        ([("big", "b"), ("dim", "d")], ["b.k = d.k AND b.name = d.name"]),
        ([("big", "b"), ("dim", "d")], ["b.k = d.k AND b.d > d.wt"]),
        ([("mid", "m"), ("big", "b"), ("dim", "d")], ["m.bid = b.id", "b.k = d.k"]),
        ([("mid", "m"), ("big", "b"), ("dim", "d")], ["m.bid = b.id", "d.name = m.name"]),
        # many-to-many (~n^2/101 rows): aggregated only, see gen_query
        ([("mid", "m1"), ("mid", "m2")], ["m1.x = m2.x"]),
        ([("mid", "m1"), ("mid", "m2")], ["m1.x = m2.x AND m1.name = m2.name"]),
    ]

    # More joins for the cluster's broadcast-join suite (test_cluster_join.py):
    # keys duplicated on both sides (mid.k, dim.k), NULL keys, three tables
    # with the split table (big) first, in the middle and last.
    JOINS_MORE = [
        ([("mid", "m"), ("dim", "d")], ["m.k = d.k AND m.x > -40"]),
        ([("dim", "d"), ("mid", "m")], ["d.k = m.k"]),
        ([("big", "b"), ("dim", "d"), ("mid", "m")], ["b.k = d.k", "m.id = d.k"]),
        ([("dim", "d"), ("big", "b"), ("mid", "m")], ["d.k = b.k", "m.bid = b.id"]),
        ([("dim", "d"), ("mid", "m"), ("big", "b")], ["d.name = m.name", "b.id = m.bid"]),
        ([("big", "b"), ("mid", "m")], ["b.id = m.bid AND b.k = m.k"]),
    ]

    def join_from(self, more=False):
        r = self.rng
        tabs, ons = r.choice(self.JOINS + self.JOINS_MORE if more else self.JOINS)
        scope = []
        for name, alias in tabs:
            scope += self.scope(self.t[name], alias)
        sql = "%s %s" % (tabs[0][0], tabs[0][1])
        for (name, alias), on in zip(tabs[1:], ons):
            if r.random() < 0.2:
                on += " AND %s" % self.predicate([c for c in scope if c.qual == alias], 0)
            sql += " %sJOIN %s %s ON %s" % ("INNER " if r.random() < 0.3 else "", name, alias, on)
        return scope, sql, tabs[0][0] == tabs[1][0]

    def const_query(self):
        """Literal-only arithmetic (constant folding, if any, must agree too)."""
        items = []
        for _ in range(self.rng.randint(1, 4)):
            if self.rng.random() < 0.2:
                items.append(Expr("(%s %s %s)" % (
                    self.lit_expr("int").text, self.rng.choice(["<", "=", ">="]), self.lit_expr("int").text), "bool"))
            else:
                items.append(self.num_expr([], 2))
        # Tessera has no SELECT without FROM: one row of big (ids are unique) instead.
        ids = [v for v in self.t["big"].col_values("id") if v is not None]
        return self.finish("const", items, "big", where="id = %d" % self.rng.choice(ids), order=False)

    def gen(self, kind=None):
        """A random query; kind "join" asks for a join (more join shapes too)."""
        q = self.gen_query(kind)
        q.sql = restyle(q.sql, self.rng)
        return q

    def gen_query(self, force=None):
        r = self.rng
        kind = force or r.choices(["filter", "project", "group", "global", "distinct", "join", "const"],
                                  [20, 10, 25, 10, 10, 25, 2])[0]
        if kind == "const":
            return self.const_query()
        if kind == "join":
            scope, from_sql, self_join = self.join_from(more=force == "join")
            sub = r.choice(["group", "global"] if self_join else ["filter", "group", "global", "distinct"])
        else:
            t, scope, from_sql = self.single_table()
            sub = kind
        where = self.predicate(scope, 2) if (sub in ("filter",) or r.random() < 0.5) else None
        bare_ok = kind != "join"
        if sub == "filter" or sub == "project":
            if kind != "join" and sub == "filter" and r.random() < 0.15:
                # SELECT *: names and types straight from the table
                sql = "SELECT * FROM %s" % from_sql + (" WHERE " + where if where else "")
                order = None
                if r.random() < 0.4:
                    idx = list(range(len(scope)))
                    r.shuffle(idx)
                    order = [(i, r.random() < 0.4) for i in idx]
                    sql += " ORDER BY " + ", ".join(scope[i].name + (" DESC" if d else "") for i, d in order)
                    sql += " LIMIT %d" % r.choice([0, 1, 10, 100])
                return Query(sql, [c.typ for c in scope], [c.name for c in scope], order, kind)
            items = [self.value_expr(scope, 2) for _ in range(r.randint(1, 4))]
            if sub == "filter" and kind == "join" and not where:
                where = self.predicate(scope, 1)
            return self.finish(kind, items, from_sql, where, bare_ok=bare_ok)
        if sub == "group":
            nkeys = r.choice([1, 1, 2])
            keys = []
            for _ in range(nkeys):
                x = r.random()
                cands = [c for c in scope if c.typ in ("int", "str") or (c.typ == "double" and x < 0.2)]
                if x < 0.75 and cands:
                    keys.append(self.col_expr(r.choice(cands)))
                else:
                    ic = self.cols_of(scope, "int")
                    c = r.choice(ic)
                    keys.append(Expr("(%s %s %d)" % (c.ref(), r.choice(["%", "/"]), r.choice([2, 3, 7, 10])),
                                     "int", c.bound))
            shown = [k for k in keys if r.random() < 0.85]
            aggs = [self.aggregate(scope) for _ in range(r.randint(1, 4))]
            items = shown + aggs
            r.shuffle(items)
            having = self.having(scope, keys) if r.random() < 0.4 else None
            return self.finish(kind, items, from_sql, where, group=keys, having=having, bare_ok=bare_ok)
        if sub == "global":
            aggs = [self.aggregate(scope) for _ in range(r.randint(1, 5))]
            return self.finish(kind, aggs, from_sql, where, order=False)
        # distinct
        items = []
        for _ in range(r.randint(1, 3)):
            c = r.choice(scope)
            if c.typ == "int" and r.random() < 0.3:
                items.append(Expr("(%s %% %d)" % (c.ref(), r.choice([3, 5, 10])), "int", 10))
            else:
                items.append(self.col_expr(c))
        return self.finish(kind, items, from_sql, where, distinct=True, bare_ok=bare_ok)
