/*
 * csv_parse.c - CSV tokenizer, value parsing and type inference.
 *
 * Grammar (RFC 4180 plus LF line ends). A field is either
 *   unquoted: any bytes but the delimiter, '"', '\n', and '\r' before '\n' or
 *             at the end of input (a lone '\r' elsewhere is an ordinary byte);
 *             empty = NULL;
 *   quoted:   '"' ... '"' where a quote inside is written "" and delimiters,
 *             CR and LF are data; it must be followed by a terminator.
 * A quote anywhere else is an error. This strictness is what makes parallel
 * chunking sound: in any input that parses, every '"' toggles the in-quotes
 * state, so the parity of the quote count before a position tells whether a
 * '\n' there ends a row (see csv.c), and in an input that does not parse, the
 * first chunk that goes wrong starts at a true row boundary and reports the
 * first error itself.
 *
 * Values. BOOL: true/false, any case. INT64: [+-]digits, in range. DOUBLE:
 * [+-](digits[.digits*] | .digits)([eE][+-]digits)? - no inf/nan/hex, no
 * spaces. Doubles take Clinger's exact fast path (significand <= 2^53 and a
 * power of ten <= 22: one correctly rounded IEEE operation, so the result is
 * the one strtod gives); anything else goes to strtod on a NUL-terminated copy.
 */
#include "table/csv_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ----------------------------------------------------------- */

tsr_status_t tsr_csv_fail(tsr_csv_fail_t *fail, tsr_status_t status, size_t off, const char *fmt,
                          ...)
{
    if (fail->status != TSR_OK)
        return status;
    fail->status = status;
    fail->off = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail->msg, sizeof(fail->msg), fmt, ap);
    va_end(ap);
    return status;
}

static bool buf_reserve(tsr_mem_t *mem, tsr_csv_buf_t *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *p = tsr_mem_realloc(mem, b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

/* ---- tokenizer --------------------------------------------------------------- */

const char *tsr_csv_scan_field(const tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, const char *p,
                               const char *end, tsr_csv_field_t *f)
{
    const char *base = rd->base;
    if (p < end && *p == '"') {
        const char *open = p;
        const char *q = p + 1;
        const char *close;
        bool escaped = false;
        for (;;) {
            close = memchr(q, '"', (size_t)(end - q));
            if (!close) {
                tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(open - base),
                             "unterminated quoted field (the quote opened here is never closed)");
                return NULL;
            }
            if (close + 1 < end && close[1] == '"') {
                escaped = true;
                q = close + 2;
                continue;
            }
            break;
        }
        const char *after = close + 1;
        if (!csv_at_term(after, end, rd->delim)) {
            tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(after - base),
                         "unexpected character after a closing quote (write a quote inside a "
                         "quoted field as \"\")");
            return NULL;
        }
        f->quoted = true;
        if (!escaped) {
            f->s = open + 1;
            f->len = (size_t)(close - open - 1);
            return after;
        }
        if (!buf_reserve(rd->mem, &ck->scratch, (size_t)(close - open))) {
            tsr_csv_fail(&ck->fail, TSR_ERR_NOMEM, (size_t)(open - base), "out of memory");
            return NULL;
        }
        /* inside, every quote is the first of a "" pair (close is the first lone one) */
        char *w = ck->scratch.p;
        for (const char *r = open + 1; r < close; r++) {
            *w++ = *r;
            if (*r == '"')
                r++;
        }
        f->s = ck->scratch.p;
        f->len = (size_t)(w - ck->scratch.p);
        return after;
    }
    const char *q = p;
    for (;;) {
        q = csv_scan_unquoted(rd, q, end);
        if (q == end || *q == rd->delim || *q == '\n')
            break;
        if (*q == '"') {
            tsr_csv_fail(&ck->fail, TSR_ERR_BAD_INPUT, (size_t)(q - base),
                         "unexpected quote inside an unquoted field (quote the whole field "
                         "and write the quote as \"\")");
            return NULL;
        }
        if (q + 1 == end || q[1] == '\n') /* CR of a line end */
            break;
        q++; /* a lone CR is data */
    }
    f->s = p;
    f->len = (size_t)(q - p);
    f->quoted = false;
    return q;
}

const char *tsr_csv_skip_terminator(const tsr_csv_reader_t *rd, const char *p, const char *end,
                                    bool *at_delim)
{
    *at_delim = false;
    if (p == end)
        return p;
    if (*p == rd->delim) {
        *at_delim = true;
        return p + 1;
    }
    if (*p == '\n')
        return p + 1;
    return p + 1 < end ? p + 2 : p + 1; /* CRLF, or CR at the end */
}

/* ---- values ------------------------------------------------------------------ */

bool tsr_csv_parse_bool(const char *s, size_t len, uint8_t *out)
{
    static const char t[] = "true", f[] = "false";
    const char *want = len == 4 ? t : len == 5 ? f : NULL;
    if (!want)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want[i])
            return false;
    }
    *out = len == 4;
    return true;
}

bool tsr_csv_parse_int64(const char *s, size_t len, int64_t *out)
{
    const char *e = s + len;
    bool neg = false;
    if (s < e && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    if (s == e)
        return false;
    uint64_t v = 0;
    for (; s < e; s++) {
        unsigned d = (unsigned)((unsigned char)*s - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

int tsr_csv_parse_double(tsr_mem_t *mem, tsr_csv_buf_t *numbuf, const char *s, size_t len,
                         double *out)
{
    csv_dec_t d;
    const char *e = csv_scan_decimal(s, s + len, &d);
    if (e == s || e != s + len)
        return 0;
    if (csv_dec_fast(&d, out))
        return 1;
    char local[128];
    char *tmp = local;
    if (len >= sizeof(local)) {
        if (!buf_reserve(mem, numbuf, len + 1))
            return -1;
        tmp = numbuf->p;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    *out = strtod(tmp, NULL); /* the grammar is a subset of strtod's: it takes it all */
    return 1;
}

tsr_type_t tsr_csv_classify(const char *s, size_t len)
{
    if (len == 0)
        return TSR_TYPE_NULL;
    uint8_t b;
    int64_t i;
    if (tsr_csv_parse_bool(s, len, &b))
        return TSR_TYPE_BOOL;
    if (tsr_csv_parse_int64(s, len, &i))
        return TSR_TYPE_INT64;
    csv_dec_t d;
    const char *e = csv_scan_decimal(s, s + len, &d);
    if (e != s && e == s + len)
        return TSR_TYPE_DOUBLE;
    return TSR_TYPE_VARCHAR;
}

tsr_type_t tsr_csv_join(tsr_type_t a, tsr_type_t b)
{
    if (a == b || b == TSR_TYPE_NULL)
        return a;
    if (a == TSR_TYPE_NULL)
        return b;
    if ((a == TSR_TYPE_INT64 && b == TSR_TYPE_DOUBLE) ||
        (a == TSR_TYPE_DOUBLE && b == TSR_TYPE_INT64))
        return TSR_TYPE_DOUBLE;
    return TSR_TYPE_VARCHAR;
}

/* ---- type inference ------------------------------------------------------------ */

tsr_status_t tsr_csv_infer(tsr_csv_reader_t *rd, tsr_csv_chunk_t *ck, size_t sample_rows)
{
    size_t ncols = rd->ncols;
    tsr_type_t *kinds = tsr_mem_calloc(rd->mem, ncols, sizeof(*kinds)); /* all TSR_TYPE_NULL */
    if (!kinds)
        return TSR_ERR_NOMEM;
    const char *start = rd->base + rd->body_begin;
    const char *end = rd->base + rd->body_end;
    const char *p = start;
    size_t rows = 0;
    while (p < end && rows < sample_rows) {
        const char *q = p;
        bool ok = true;
        for (size_t c = 0; c < ncols && ok; c++) {
            tsr_csv_field_t f;
            q = tsr_csv_scan_field(rd, ck, q, end, &f);
            if (!q) {
                ok = false;
                break;
            }
            if (!rd->fixed[c] && kinds[c] != TSR_TYPE_VARCHAR)
                kinds[c] = tsr_csv_join(kinds[c], tsr_csv_classify(f.s, f.len));
            bool at_delim;
            q = tsr_csv_skip_terminator(rd, q, end, &at_delim);
            ok = at_delim == (c + 1 < ncols);
        }
        if (!ok)
            break; /* malformed: the chunk parser reports it in order */
        rows++;
        p = q;
    }
    tsr_status_t rc = ck->fail.status == TSR_ERR_NOMEM ? TSR_ERR_NOMEM : TSR_OK;
    memset(&ck->fail, 0, sizeof(ck->fail));
    if (rc == TSR_OK) {
        for (size_t c = 0; c < ncols; c++)
            if (!rd->fixed[c])
                rd->types[c] = kinds[c] == TSR_TYPE_NULL ? TSR_TYPE_VARCHAR : kinds[c];
    }
    tsr_mem_free(rd->mem, kinds);
    return rc;
}
