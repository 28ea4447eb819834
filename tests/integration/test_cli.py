#!/usr/bin/env python3
"""CLI integration tests: the `tessera` command's user-facing contract.

What: exit codes (0 ok, 1 runtime failure, 2 bad usage/input, 3 not found) and
the stderr format ("tessera: error: ..." first, then file:line:column for CSV
errors, or the SQL line with a caret under the offending token, and "did you
mean" hints); the exact csv/json/table output on a small fixed table; the
query from an argument, -f FILE and stdin; --delimiter and --schema; version
and help; `tessera gen sales` (header, row count, determinism, round trip
through `tessera sql`). No error may kill the process by a signal.

Usage: test_cli.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera), TSR_SOURCE_DIR.
Exit: 0 all passed, 1 some failed, 77 skipped (no tessera binary).
"""

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback

TIMEOUT_S = 60

PEOPLE_CSV = (
    'id,name,score,active,note\n'
    '1,Ann,3.5,true,"hello, world"\n'
    '2,Bob,,false,\n'
    '3,"Zo\u00eb",-0.25,true,""\n'
    '4,"Quote ""Q""",10,,line\n'
)


class Ctx:
    def __init__(self, tessera, tmp, verbose):
        self.tessera, self.tmp, self.verbose = tessera, tmp, verbose
        self.passed = self.failed = 0
        self.cur = None

    def path(self, name, text=None, raw=None):
        p = os.path.join(self.tmp, name)
        if raw is not None:
            with open(p, "wb") as f:
                f.write(raw)
        elif text is not None:
            with open(p, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        return p

    def run(self, args, stdin=None):
        cmd = [self.tessera] + list(args)
        try:
            p = subprocess.run(cmd, input=stdin.encode("utf-8") if stdin is not None else None,
                               capture_output=True, timeout=TIMEOUT_S,
                               stdin=None if stdin is not None else subprocess.DEVNULL)
            res = Result(cmd, p.returncode, p.stdout.decode("utf-8", "replace"),
                         p.stderr.decode("utf-8", "replace"), stdin)
        except subprocess.TimeoutExpired:
            res = Result(cmd, "timeout", "", "timed out after %ds" % TIMEOUT_S, stdin)
        self.cur = res
        return res


class Result:
    def __init__(self, cmd, rc, out, err, stdin):
        self.cmd, self.rc, self.out, self.err, self.stdin = cmd, rc, out, err, stdin


class CheckFailed(Exception):
    pass


def shell_quote(a):
    if a and all(c.isalnum() or c in "-_./=:,+" for c in a):
        return a
    return "'" + a.replace("'", "'\\''") + "'"


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def expect_error(r, rc, *, first_line_has=None):
    """Exit code rc, stderr's first line 'tessera: error: ...', nothing on stdout."""
    check(isinstance(r.rc, int) and r.rc >= 0, "killed or timed out (rc %s)" % r.rc)
    check(r.rc == rc, "exit code %s, expected %d" % (r.rc, rc))
    check(r.err.startswith("tessera: error: "), "stderr does not start with 'tessera: error: '")
    check(r.out == "", "stdout not empty on an error")
    if first_line_has:
        first = r.err.split("\n", 1)[0]
        check(first_line_has.lower() in first.lower(),
              "first stderr line %r does not mention %r" % (first, first_line_has))


def expect_ok(r):
    check(isinstance(r.rc, int) and r.rc >= 0, "killed or timed out (rc %s)" % r.rc)
    check(r.rc == 0, "exit code %s, expected 0" % r.rc)


def expect_caret(r, sql, token, line_no=1, occurrence=1):
    """stderr shows line line_no of sql and, on the next line, a caret under the
    start of the occurrence-th `token` on that line."""
    src = sql.split("\n")[line_no - 1]
    col = -1
    for _ in range(occurrence):
        col = src.index(token, col + 1)
    lines = r.err.split("\n")
    for i, ln in enumerate(lines[:-1]):
        if ln.rstrip() and ln.endswith(src) and ln[: len(ln) - len(src)].strip() == "":
            prefix = len(ln) - len(src)
            caret = lines[i + 1]
            check(caret.strip() == "^", "line after the query line is %r, expected a caret" % caret)
            got = caret.index("^") - prefix
            check(got == col, "caret under column %d (%r), expected column %d (%r)" %
                  (got + 1, src[got:got + 8], col + 1, src[col:col + 8]))
            m = re.search(r"column (\d+)", r.err)
            if m:
                check(int(m.group(1)) == col + 1, "message says column %s, expected %d" % (m.group(1), col + 1))
            m = re.search(r"line (\d+)", r.err)
            if m:
                check(int(m.group(1)) == line_no, "message says line %s, expected %d" % (m.group(1), line_no))
            return
    raise CheckFailed("stderr does not show the query line %r" % src)


def expect_file_pos(r, path, line, column=None):
    m = re.search(re.escape(path) + r":(\d+)(?::(\d+))?", r.err)
    check(m, "stderr does not name %s:LINE[:COLUMN]" % path)
    check(int(m.group(1)) == line, "error at line %s, expected %d" % (m.group(1), line))
    if column is not None:
        check(m.group(2) is not None and int(m.group(2)) == column,
              "error at column %s, expected %d" % (m.group(2), column))


# ---------------------------------------------------------------- tests

def t_version(c):
    r = c.run(["--version"])
    expect_ok(r)
    check(re.match(r"tessera \S*\d", r.out), "--version prints %r" % r.out)


def t_help(c):
    for args in (["help"], ["--help"], ["help", "sql"], ["sql", "--help"], ["help", "gen"], ["gen", "--help"]):
        r = c.run(args)
        expect_ok(r)
        check("usage" in r.out.lower(), "%s: no usage text on stdout" % " ".join(args))
        if "sql" in args:
            for opt in ("--table", "--schema", "--format", "--threads", "--delimiter", "-f"):
                check(opt in r.out, "sql help does not mention %s" % opt)
    r = c.run(["help", "nosuchcommand"])
    expect_error(r, 2)


def t_unknown_flag(c):
    people = c.path("people.csv", PEOPLE_CSV)
    r = c.run(["sql", "--bogus", "--table", "people=" + people, "SELECT id FROM people"])
    expect_error(r, 2, first_line_has="--bogus")
    r = c.run(["--bogus"])
    expect_error(r, 2, first_line_has="--bogus")
    r = c.run(["frobnicate"])
    expect_error(r, 2, first_line_has="frobnicate")
    r = c.run(["sql", "--table", "people=" + people, "--format", "xml", "SELECT id FROM people"])
    expect_error(r, 2, first_line_has="xml")
    r = c.run(["sql", "--table", "people=" + people, "--threads", "abc", "SELECT id FROM people"])
    expect_error(r, 2)
    r = c.run(["sql", "--table"])
    expect_error(r, 2)
    r = c.run(["gen", "sales", "--rows", "-5"])
    expect_error(r, 2)


def t_missing_table_file(c):
    missing = os.path.join(c.tmp, "no_such_file.csv")
    r = c.run(["sql", "--table", "t=" + missing, "SELECT 1 FROM t"])
    expect_error(r, 3)
    check("no_such_file.csv" in r.err, "stderr does not name the missing file")
    r = c.run(["sql", "-f", os.path.join(c.tmp, "no_such_query.sql")])
    expect_error(r, 3)


def t_csv_unterminated_quote(c):
    p = c.path("bad_quote.csv", 'a,b\n1,x\n2,"never closed\n')
    r = c.run(["sql", "--table", "t=" + p, "SELECT a FROM t"])
    expect_error(r, 2)
    expect_file_pos(r, p, 3)
    check("quot" in r.err.lower(), "message does not mention the quote")


def t_csv_field_count(c):
    p = c.path("bad_fields.csv", "a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n11,12,13\n")
    r = c.run(["sql", "--table", "t=" + p, "SELECT a FROM t"])
    expect_error(r, 2)
    expect_file_pos(r, p, 4)
    p = c.path("short_fields.csv", "a,b,c\n1,2,3\n4,5\n")
    r = c.run(["sql", "--table", "t=" + p, "SELECT a FROM t"])
    expect_error(r, 2)
    expect_file_pos(r, p, 3)


def t_csv_schema_mismatch(c):
    p = c.path("schema_bad.csv", "id,x\n1,5\n2,abc\n")
    r = c.run(["sql", "--table", "t=" + p, "--schema", "t=x:int64", "SELECT x FROM t"])
    expect_error(r, 2)
    expect_file_pos(r, p, 3)


def t_sql_syntax(c):
    people = c.path("people.csv", PEOPLE_CSV)
    cases = [
        ("SELECT id, FROM people", "FROM", 1, 1),
        ("SELECT id FROM people WHERE id = = 1", "=", 1, 2),
        ("SELECT id FROM people ORDER BY id LIMIT x", "x", 1, 1),
        ("SELECT id,\n       name\nFROM people\nWHERE id > )", ")", 4, 1),
        ("SELECT id FROM people WHERE name LIKE 'a' 'b'", "'b'", 1, 1),
    ]
    for sql, token, line, occ in cases:
        r = c.run(["sql", "--table", "people=" + people, sql])
        expect_error(r, 2)
        expect_caret(r, sql, token, line, occ)
    # an unterminated string literal: an error, not a hang or a crash
    r = c.run(["sql", "--table", "people=" + people, "SELECT 'abc FROM people"])
    expect_error(r, 2)
    r = c.run(["sql", "--table", "people=" + people, ""])
    expect_error(r, 2)


def t_not_found(c):
    people = c.path("people.csv", PEOPLE_CSV)
    sql = "SELECT id FROM peopel"
    r = c.run(["sql", "--table", "people=" + people, sql])
    expect_error(r, 3, first_line_has="peopel")
    check("did you mean" in r.err.lower() and "people" in r.err.split("\n", 1)[1],
          "no 'did you mean' hint naming people")
    expect_caret(r, sql, "peopel")
    sql = "SELECT id, nmae FROM people WHERE id > 1"
    r = c.run(["sql", "--table", "people=" + people, sql])
    expect_error(r, 3, first_line_has="nmae")
    check("did you mean" in r.err.lower() and "name" in r.err.split("\n", 1)[1],
          "no 'did you mean' hint naming name")
    expect_caret(r, sql, "nmae")
    sql = "SELECT p.id FROM people p WHERE p.scroe > 1"
    r = c.run(["sql", "--table", "people=" + people, sql])
    expect_error(r, 3, first_line_has="scroe")
    check("did you mean" in r.err.lower(), "no 'did you mean' hint")
    # nothing close: still not found, no nonsense hint required
    r = c.run(["sql", "--table", "people=" + people, "SELECT zzzzzzzz FROM people"])
    expect_error(r, 3)


def t_type_error(c):
    people = c.path("people.csv", PEOPLE_CSV)
    for sql, token in [("SELECT name + 1 FROM people", "name + 1"),
                       ("SELECT id FROM people WHERE name > 5", "name > 5"),
                       ("SELECT SUM(name) FROM people", None),
                       ("SELECT id FROM people WHERE id LIKE 'a%'", None),
                       ("SELECT id FROM people WHERE NOT id", None)]:
        r = c.run(["sql", "--table", "people=" + people, sql])
        expect_error(r, 2)
        check("^" in r.err, "no caret for a type error in %r" % sql)


def t_group_error(c):
    people = c.path("people.csv", PEOPLE_CSV)
    sql = "SELECT name, COUNT(*) FROM people GROUP BY id"
    r = c.run(["sql", "--table", "people=" + people, sql])
    expect_error(r, 2)
    expect_caret(r, sql, "name")


def t_overflow(c):
    p = c.path("big.csv", "id,big\n1,9223372036854775807\n2,9223372036854775000\n3,-9223372036854775808\n")
    r = c.run(["sql", "--table", "t=" + p, "SELECT SUM(big) FROM t WHERE id < 3"])
    expect_error(r, 1, first_line_has="overflow")
    r = c.run(["sql", "--table", "t=" + p, "SELECT big * 2 FROM t"])
    expect_error(r, 1, first_line_has="overflow")
    r = c.run(["sql", "--table", "t=" + p, "SELECT - big FROM t WHERE id = 3"])
    expect_error(r, 1, first_line_has="overflow")
    r = c.run(["sql", "--table", "t=" + p, "--format", "csv",
               "SELECT big, big % -1 AS m, big / 0 AS z FROM t WHERE id = 3"])
    expect_ok(r)
    check(r.out == "big,m,z\n-9223372036854775808,0,\n", "INT64_MIN %% -1 and x / 0: got %r" % r.out)


def run_people(c, fmt, sql):
    people = c.path("people.csv", PEOPLE_CSV)
    return c.run(["sql", "--table", "people=" + people, "--format", fmt, sql])


PEOPLE_SQL = "SELECT id, name, score, active, note FROM people ORDER BY id"


def t_format_csv(c):
    r = run_people(c, "csv", PEOPLE_SQL)
    expect_ok(r)
    want = ('id,name,score,active,note\n'
            '1,Ann,3.5,true,"hello, world"\n'
            '2,Bob,,false,\n'
            '3,Zo\u00eb,-0.25,true,""\n'
            '4,"Quote ""Q""",10.0,,line\n')
    check(r.out == want, "csv output %r, expected %r" % (r.out, want))
    r = run_people(c, "csv", "SELECT id * 2 AS twice, score / 4 AS q, id / 3 AS third, id - 5 AS neg, "
                             "name IS NULL AS nn FROM people ORDER BY id DESC")
    expect_ok(r)
    want = ("twice,q,third,neg,nn\n"
            "8,2.5,1,-1,false\n"
            "6,-0.0625,1,-2,false\n"
            "4,,0,-3,false\n"
            "2,0.875,0,-4,false\n")
    check(r.out == want, "csv output %r, expected %r" % (r.out, want))
    r = run_people(c, "csv", "SELECT id, name FROM people WHERE id > 100")
    expect_ok(r)
    check(r.out == "id,name\n", "empty result: %r, expected just the header" % r.out)
    r = run_people(c, "csv", "SELECT COUNT(*) AS n, SUM(id) AS s, AVG(score) AS a, MIN(name) AS mn, "
                             "MAX(note) AS mx, COUNT(score) AS cs FROM people")
    expect_ok(r)
    want = "n,s,a,mn,mx,cs\n4,10,4.416666666666667,Ann,line,3\n"
    check(r.out == want, "aggregates: %r, expected %r" % (r.out, want))


def t_format_json(c):
    r = run_people(c, "json", PEOPLE_SQL)
    expect_ok(r)
    try:
        doc = json.loads(r.out, object_pairs_hook=lambda kv: kv)
    except ValueError as e:
        raise CheckFailed("json does not parse: %s" % e)
    want = [
        [("id", 1), ("name", "Ann"), ("score", 3.5), ("active", True), ("note", "hello, world")],
        [("id", 2), ("name", "Bob"), ("score", None), ("active", False), ("note", None)],
        [("id", 3), ("name", "Zo\u00eb"), ("score", -0.25), ("active", True), ("note", "")],
        [("id", 4), ("name", 'Quote "Q"'), ("score", 10.0), ("active", None), ("note", "line")],
    ]
    check(doc == want, "json %r, expected %r" % (doc, want))
    for row in doc:
        check(type(row[0][1]) is int, "id is not a JSON integer")
        if row[2][1] is not None:
            check(type(row[2][1]) is float, "score %r is not a JSON float" % row[2][1])
    r = run_people(c, "json", "SELECT id FROM people WHERE id > 100")
    expect_ok(r)
    check(json.loads(r.out) == [], "empty json result %r, expected []" % r.out)
    r = run_people(c, "json", "SELECT COUNT(*) AS n FROM people")
    expect_ok(r)
    check(json.loads(r.out) == [{"n": 4}], "json %r" % r.out)


def table_model(names, kinds, rows):
    """The documented table format: ' a | b ' header, '-...-+-...-' rule, numbers
    right-aligned, NULL shown as NULL, '(N rows)'. kinds: 'num' or 'text'."""
    cells = [["NULL" if v is None else v for v in r] for r in rows]
    width = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    out = [" " + " | ".join(n.ljust(w) for n, w in zip(names, width))]
    out.append("-" + "-+-".join("-" * w for w in width) + "-")
    for r in cells:
        out.append(" " + " | ".join(v.rjust(w) if k == "num" else v.ljust(w)
                                      for v, w, k in zip(r, width, kinds)))
    out.append("(%d row%s)" % (len(rows), "" if len(rows) == 1 else "s"))
    return "\n".join(out) + "\n"


def t_format_table(c):
    r = run_people(c, "table", PEOPLE_SQL)
    expect_ok(r)
    want = table_model(["id", "name", "score", "active", "note"], ["num", "text", "num", "text", "text"], [
        ["1", "Ann", "3.5", "true", "hello, world"],
        ["2", "Bob", None, "false", None],
        ["3", "Zo\u00eb", "-0.25", "true", ""],
        ["4", 'Quote "Q"', "10.0", None, "line"],
    ])
    check(r.out == want, "table output:\n%s\nexpected:\n%s" % (r.out, want))
    people = c.path("people.csv", PEOPLE_CSV)
    r = c.run(["sql", "--table", "people=" + people, "SELECT COUNT(*) AS n FROM people"])
    expect_ok(r)
    check(r.out == table_model(["n"], ["num"], [["4"]]), "default format is not table: %r" % r.out)


def t_query_sources(c):
    people = c.path("people.csv", PEOPLE_CSV)
    sql = "SELECT name FROM people WHERE id >= 3 ORDER BY id"
    want = 'name\nZo\u00eb\n"Quote ""Q"""\n'
    base = ["sql", "--table", "people=" + people, "--format", "csv"]
    r = c.run(base + [sql])
    expect_ok(r)
    check(r.out == want, "argument: %r" % r.out)
    qf = c.path("query.sql", "-- a comment\n" + sql.replace("WHERE", "\nWHERE") + ";\n")
    r = c.run(base + ["-f", qf])
    expect_ok(r)
    check(r.out == want, "-f FILE: %r" % r.out)
    r = c.run(base, stdin=sql + "\n")
    expect_ok(r)
    check(r.out == want, "stdin: %r" % r.out)
    r = c.run(base + ["-f", qf, sql])
    expect_error(r, 2)
    r = c.run(["sql", "--format=csv", "--table=people=" + people, sql])
    expect_ok(r)
    check(r.out == want, "--opt=value form: %r" % r.out)


def t_delimiter_schema(c):
    p = c.path("semi.csv", "code;amount;label\n001;2.5;a,b\n002;;\"x;y\"\n010;-1;\n")
    r = c.run(["sql", "--table", "s=" + p, "--delimiter", ";", "--schema", "s=code:varchar",
               "--format", "csv", "SELECT code, amount, label FROM s ORDER BY code"])
    expect_ok(r)
    want = 'code,amount,label\n001,2.5,"a,b"\n002,,x;y\n010,-1.0,\n'
    check(r.out == want, "delimiter/schema: %r, expected %r" % (r.out, want))
    r = c.run(["sql", "--table", "s=" + p, "--delimiter", ";", "--format", "csv",
               "SELECT code + 1 AS c FROM s ORDER BY c"])
    expect_ok(r)
    check(r.out == "c\n2\n3\n11\n", "inferred INT64 code: %r" % r.out)
    r = c.run(["sql", "--table", "s=" + p, "--delimiter", ";", "--schema", "s=amount:int64",
               "SELECT amount FROM s"])
    expect_error(r, 2)
    expect_file_pos(r, p, 2)
    t = c.path("typed.csv", "a,b\n1,true\n2,false\n,\n")
    r = c.run(["sql", "--table", "t=" + t, "--schema", "t=a:double,b:varchar", "--format", "csv",
               "SELECT a, b FROM t ORDER BY a"])
    expect_ok(r)
    check(r.out == "a,b\n,\n1.0,true\n2.0,false\n", "schema double/varchar: %r" % r.out)
    r = c.run(["sql", "--table", "t=" + t, "--format", "csv", "SELECT a FROM t WHERE b ORDER BY a"])
    expect_ok(r)
    check(r.out == "a\n1\n", "inferred BOOL column: %r" % r.out)


def t_csv_dialects(c):
    # BOM, CRLF line ends, a quoted CRLF inside a field, no final newline
    p = c.path("dialect.csv", raw=b'\xef\xbb\xbfid,txt\r\n1,"two\r\nlines"\r\n2,plain\r\n3,"a ""b"""')
    r = c.run(["sql", "--table", "t=" + p, "--format", "json", "SELECT id, txt FROM t ORDER BY id"])
    expect_ok(r)
    check(json.loads(r.out) == [{"id": 1, "txt": "two\r\nlines"}, {"id": 2, "txt": "plain"},
                                {"id": 3, "txt": 'a "b"'}], "json %r" % r.out)
    # header only: zero rows
    p = c.path("header_only.csv", "a,b\n")
    r = c.run(["sql", "--table", "t=" + p, "--format", "csv", "SELECT COUNT(*) AS n FROM t"])
    expect_ok(r)
    check(r.out == "n\n0\n", "header-only file: %r" % r.out)
    # an empty file has no header: bad input
    p = c.path("empty.csv", "")
    r = c.run(["sql", "--table", "t=" + p, "SELECT COUNT(*) AS n FROM t"])
    expect_error(r, 2)
    # the table name comes from the file name when NAME= is left out
    p = c.path("stem_name.csv", "x\n1\n2\n")
    r = c.run(["sql", "--table", p, "--format", "csv", "SELECT SUM(x) AS s FROM stem_name"])
    expect_ok(r)
    check(r.out == "s\n3\n", "--table PATH: %r" % r.out)
    # --schema for a table no --table loads
    r = c.run(["sql", "--table", "t=" + p, "--schema", "u=x:int64", "SELECT x FROM t"])
    expect_error(r, 2)
    # garbage bytes: an error or a result, never a crash
    rnd = bytes((i * 2654435761 >> 7) & 0xFF for i in range(5000))
    p = c.path("garbage.csv", raw=b"a,b\n" + rnd)
    r = c.run(["sql", "--table", "t=" + p, "--format", "csv", "SELECT COUNT(*) AS n FROM t"])
    check(r.rc in (0, 2), "garbage CSV: exit %s, expected 0 or 2" % r.rc)
    if r.rc == 2:
        check(r.err.startswith("tessera: error: "), "stderr does not start with 'tessera: error: '")


def t_gen(c):
    args = ["gen", "sales", "--rows", "100", "--keys", "10", "--seed", "1"]
    r1 = c.run(args)
    expect_ok(r1)
    rows = list(csv.reader(io.StringIO(r1.out)))
    check(rows and rows[0] == ["id", "store", "region", "product", "quantity", "price"],
          "gen header %r" % (rows[:1],))
    body = rows[1:]
    check(len(body) == 100, "gen wrote %d rows, expected 100" % len(body))
    for row in body:
        check(len(row) == 6, "gen row %r has %d fields" % (row, len(row)))
        check(0 <= int(row[1]) < 10, "store %r outside [0, 10)" % row[1])
    check([int(x[0]) for x in body] == list(range(1, 101)), "ids are not 1..100")
    r2 = c.run(args)
    expect_ok(r2)
    check(r1.out == r2.out, "gen is not deterministic for a seed")
    r3 = c.run(["gen", "sales", "--rows", "100", "--keys", "10", "--seed", "2"])
    expect_ok(r3)
    check(r3.out != r1.out, "seeds 1 and 2 give the same data")
    # round trip: the generated file loads and aggregates like Python says
    p = c.path("sales.csv", r1.out)
    qty = [int(x[4]) for x in body if x[4] != ""]
    r = c.run(["sql", "--table", "sales=" + p, "--format", "csv",
               "SELECT COUNT(*) AS n, COUNT(quantity) AS q, SUM(quantity) AS s, COUNT(DISTINCT store) AS k "
               "FROM sales"])
    expect_ok(r)
    want = "n,q,s,k\n100,%d,%d,%d\n" % (len(qty), sum(qty), len(set(x[1] for x in body)))
    check(r.out == want, "sql over gen output: %r, expected %r" % (r.out, want))
    out = os.path.join(c.tmp, "gen_out.csv")
    r = c.run(args + ["--out", out])
    expect_ok(r)
    with open(out, encoding="utf-8", newline="") as f:
        check(f.read() == r1.out, "--out FILE differs from stdout")
    r = c.run(["gen", "nosuchset"])
    expect_error(r, 3)


def t_multi_batch_join(c):
    # > 8192 rows on both sides of a join, checked against Python.
    n = 20000
    a = c.path("ja.csv", "id,g\n" + "".join("%d,%d\n" % (i, i % 97) for i in range(n)))
    b = c.path("jb.csv", "g,w\n" + "".join("%d,%d\n" % (g, g * 3) for g in range(0, 97, 2)))
    for threads in ("1", "2"):
        r = c.run(["sql", "--table", "a=" + a, "--table", "b=" + b, "--format", "csv", "--threads", threads,
                   "SELECT COUNT(*) AS n, SUM(b.w) AS s FROM a JOIN b ON a.g = b.g"])
        expect_ok(r)
        cnt = sum(1 for i in range(n) if (i % 97) % 2 == 0)
        s = sum((i % 97) * 3 for i in range(n) if (i % 97) % 2 == 0)
        check(r.out == "n,s\n%d,%d\n" % (cnt, s), "--threads %s: %r" % (threads, r.out))


TESTS = [t_version, t_help, t_unknown_flag, t_missing_table_file, t_csv_unterminated_quote,
         t_csv_field_count, t_csv_schema_mismatch, t_sql_syntax, t_not_found, t_type_error,
         t_group_error, t_overflow, t_format_csv, t_format_json, t_format_table, t_query_sources,
         t_delimiter_schema, t_csv_dialects, t_gen, t_multi_batch_join]


def find_tessera(opt):
    cands = [opt] if opt else []
    if os.environ.get("TSR_BIN"):
        cands.append(os.path.join(os.environ["TSR_BIN"], "tessera"))
    src = os.environ.get("TSR_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    cands.append(os.path.join(src, "build", "bin", "tessera"))
    for cnd in cands:
        if cnd and os.path.isfile(cnd) and os.access(cnd, os.X_OK):
            return cnd
    return None


def main():
    ap = argparse.ArgumentParser(description="tessera CLI integration tests")
    ap.add_argument("--tessera", default=None)
    ap.add_argument("-k", default=None, help="run only tests whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    tessera = find_tessera(args.tessera)
    if not tessera:
        print("SKIP: tessera binary not found (set TSR_BIN)")
        return 77
    print("tessera: %s" % tessera)
    with tempfile.TemporaryDirectory(prefix="tsr-cli-") as tmp:
        c = Ctx(tessera, tmp, args.verbose)
        for t in TESTS:
            if args.k and args.k not in t.__name__:
                continue
            c.cur = None
            try:
                t(c)
                c.passed += 1
                if args.verbose:
                    print("ok   %s" % t.__name__)
            except Exception as e:  # a broken check is a failure too, not a crash
                c.failed += 1
                if isinstance(e, CheckFailed):
                    print("FAIL %s: %s" % (t.__name__, e))
                else:
                    print("FAIL %s: %s" % (t.__name__, traceback.format_exc()))
                r = c.cur
                if r is not None:
                    print("  command: %s%s" % (" ".join(shell_quote(a) for a in r.cmd),
                                               " < (stdin %r)" % r.stdin if r.stdin is not None else ""))
                    print("  exit:    %s" % r.rc)
                    print("  stdout:  %r" % r.out[:1500])
                    print("  stderr:  %r" % r.err[:1500])
                sys.stdout.flush()
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
