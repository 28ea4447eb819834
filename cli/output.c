/*
 * output.c - writing query results as an aligned table, CSV or JSON.
 *
 * csv:   header row, RFC 4180 quoting (fields holding the delimiter, a quote,
 *        CR or LF are quoted, quotes doubled), NULL as an empty field and the
 *        empty string as "" so the two stay distinguishable.
 * json:  one array of row objects; NULL as null; non-finite doubles as null;
 *        always valid UTF-8 (bytes that are not become U+FFFD).
 * table: for people; numbers right-aligned, NULL shown as NULL, a row count;
 *        control characters escaped, bytes that are not UTF-8 shown as U+FFFD.
 * Doubles print as the shortest text that reads back to the same double.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_format_double(double d, char *buf, size_t size)
{
    if (isnan(d)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".en"))
        strncat(buf, ".0", size - strlen(buf) - 1);
}

/* Text of a non-NULL, non-string value (ints, doubles, bools). */
static void format_scalar(const tsr_result_t *res, size_t row, size_t col, char *buf,
                          size_t size)
{
    switch (tsr_result_column_type(res, col)) {
    case TSR_TYPE_INT64:
        snprintf(buf, size, "%lld", (long long)tsr_result_int64(res, row, col));
        break;
    case TSR_TYPE_DOUBLE:
        cli_format_double(tsr_result_double(res, row, col), buf, size);
        break;
    case TSR_TYPE_BOOL:
        snprintf(buf, size, "%s", tsr_result_bool(res, row, col) ? "true" : "false");
        break;
    default:
        buf[0] = '\0';
        break;
    }
}

/* ---- csv --------------------------------------------------------------------- */

static void csv_field(FILE *out, const char *s, size_t len)
{
    bool quote = len == 0 || memchr(s, ',', len) || memchr(s, '"', len) ||
                 memchr(s, '\n', len) || memchr(s, '\r', len);
    if (!quote) {
        fwrite(s, 1, len, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

static void write_csv(FILE *out, const tsr_result_t *res)
{
    size_t ncols = tsr_result_column_count(res), nrows = tsr_result_row_count(res);
    char buf[64];
    for (size_t c = 0; c < ncols; c++) {
        const char *name = tsr_result_column_name(res, c);
        if (c)
            fputc(',', out);
        csv_field(out, name, strlen(name));
    }
    fputc('\n', out);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            if (c)
                fputc(',', out);
            if (tsr_result_is_null(res, r, c))
                continue;
            if (tsr_result_column_type(res, c) == TSR_TYPE_VARCHAR) {
                size_t len;
                const char *s = tsr_result_string(res, r, c, &len);
                csv_field(out, s, len);
            } else {
                format_scalar(res, r, c, buf, sizeof(buf));
                fputs(buf, out);
            }
        }
        fputc('\n', out);
    }
}

/* ---- json -------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF) that starts s[0..n) with a byte >= 0x80, or
 * 0 when there is none. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* A JSON string. VARCHAR values are bytes (a CSV file may hold anything):
 * each byte that is not part of well-formed UTF-8 becomes U+FFFD, so the
 * output is always valid JSON. */
static void json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80) {
            size_t n = utf8_seq_len((const unsigned char *)s + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", out);
            } else {
                fwrite(s + i, 1, n, out);
                i += n - 1;
            }
            continue;
        }
        switch (ch) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (ch < 0x20)
                fprintf(out, "\\u%04x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}

static void write_json(FILE *out, const tsr_result_t *res)
{
    size_t ncols = tsr_result_column_count(res), nrows = tsr_result_row_count(res);
    char buf[64];
    fputc('[', out);
    for (size_t r = 0; r < nrows; r++) {
        fputs(r ? ",\n{" : "\n{", out);
        for (size_t c = 0; c < ncols; c++) {
            const char *name = tsr_result_column_name(res, c);
            if (c)
                fputc(',', out);
            json_string(out, name, strlen(name));
            fputc(':', out);
            tsr_type_t type = tsr_result_column_type(res, c);
            if (tsr_result_is_null(res, r, c) ||
                (type == TSR_TYPE_DOUBLE && !isfinite(tsr_result_double(res, r, c)))) {
                fputs("null", out);
            } else if (type == TSR_TYPE_VARCHAR) {
                size_t len;
                const char *s = tsr_result_string(res, r, c, &len);
                json_string(out, s, len);
            } else {
                format_scalar(res, r, c, buf, sizeof(buf));
                fputs(buf, out);
            }
        }
        fputc('}', out);
    }
    fputs(nrows ? "\n]\n" : "]\n", out);
}

/* ---- table ------------------------------------------------------------------- */

/* Display width of text as table_text shows it: one column per code point
 * and per byte that is not valid UTF-8 (shown as U+FFFD), two per control
 * character (shown escaped). */
static size_t text_width(const char *s, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80) {
            size_t n = utf8_seq_len((const unsigned char *)s + i, len - i);
            i += n ? n - 1 : 0;
            w++;
            continue;
        }
        w += ch < 0x20 ? 2 : 1;
    }
    return w;
}

static void table_text(FILE *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80) {
            size_t n = utf8_seq_len((const unsigned char *)s + i, len - i);
            if (n == 0) {
                fputs("\xef\xbf\xbd", out); /* U+FFFD */
            } else {
                fwrite(s + i, 1, n, out);
                i += n - 1;
            }
        } else if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\r')
            fputs("\\r", out);
        else if (ch == '\t')
            fputs("\\t", out);
        else if (ch < 0x20)
            fprintf(out, "^%c", ch + '@');
        else
            fputc(ch, out);
    }
}

static void pad(FILE *out, size_t n)
{
    while (n--)
        fputc(' ', out);
}

/* The text of a cell (points into res or buf) and its length. */
static const char *cell_text(const tsr_result_t *res, size_t r, size_t c, char *buf, size_t size,
                             size_t *len)
{
    if (tsr_result_is_null(res, r, c)) {
        *len = 4;
        return "NULL";
    }
    if (tsr_result_column_type(res, c) == TSR_TYPE_VARCHAR)
        return tsr_result_string(res, r, c, len);
    format_scalar(res, r, c, buf, size);
    *len = strlen(buf);
    return buf;
}

static int write_table(FILE *out, const tsr_result_t *res)
{
    size_t ncols = tsr_result_column_count(res), nrows = tsr_result_row_count(res);
    size_t *width = calloc(ncols ? ncols : 1, sizeof(size_t));
    if (!width)
        return -1;
    char buf[64];
    for (size_t c = 0; c < ncols; c++) {
        const char *name = tsr_result_column_name(res, c);
        width[c] = text_width(name, strlen(name));
        for (size_t r = 0; r < nrows; r++) {
            size_t len;
            const char *s = cell_text(res, r, c, buf, sizeof(buf), &len);
            size_t w = text_width(s, len);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t c = 0; c < ncols; c++) {
        const char *name = tsr_result_column_name(res, c);
        fputs(c ? " | " : " ", out);
        table_text(out, name, strlen(name));
        pad(out, width[c] - text_width(name, strlen(name)));
    }
    fputc('\n', out);
    for (size_t c = 0; c < ncols; c++) {
        fputs(c ? "-+-" : "-", out);
        for (size_t k = 0; k < width[c]; k++)
            fputc('-', out);
    }
    fputs("-\n", out);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            size_t len;
            const char *s = cell_text(res, r, c, buf, sizeof(buf), &len);
            size_t gap = width[c] - text_width(s, len);
            tsr_type_t type = tsr_result_column_type(res, c);
            bool right = type == TSR_TYPE_INT64 || type == TSR_TYPE_DOUBLE;
            fputs(c ? " | " : " ", out);
            if (right)
                pad(out, gap);
            table_text(out, s, len);
            if (!right)
                pad(out, gap);
        }
        fputc('\n', out);
    }
    fprintf(out, "(%zu row%s)\n", nrows, nrows == 1 ? "" : "s");
    free(width);
    return 0;
}

int cli_write_result(FILE *out, const tsr_result_t *res, cli_format_t format)
{
    int rc = 0;
    switch (format) {
    case CLI_FORMAT_CSV:
        write_csv(out, res);
        break;
    case CLI_FORMAT_JSON:
        write_json(out, res);
        break;
    case CLI_FORMAT_TABLE:
        rc = write_table(out, res);
        break;
    }
    if (fflush(out) != 0 || ferror(out))
        rc = -1;
    return rc;
}
