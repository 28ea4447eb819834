/*
 * cmd_kv_csv.c - keys and values from text for `tessera kv` (cmd_kv.c):
 * hex decoding, size checks, partition routing, and the CSV reader of
 * `kv load` (RFC 4180: quoted fields with doubled quotes and line breaks,
 * CRLF or LF rows; exactly two fields a row; blank lines skipped). The file
 * is read whole: a load is bounded by memory, not streamed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/hash.h"
#include "core/mem.h"

#ifdef TSR_HAVE_SCHEDULER
#include "cmd_kv.h"

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes text (hex when hex) into out; false (after the error) when bad. */
bool cli_kv_decode(const char *what, const char *text, size_t len, bool hex, kv_bytes_t *out)
{
    out->n = hex ? len / 2 : len;
    out->p = tsr_mem_alloc(NULL, out->n ? out->n : 1);
    if (!out->p) {
        cli_error("out of memory");
        return false;
    }
    if (!hex) {
        memcpy(out->p, text, len);
        return true;
    }
    if (len % 2) {
        cli_error("%s is not hex: odd number of digits (%zu)", what, len);
        goto bad;
    }
    for (size_t i = 0; i < out->n; i++) {
        int a = hexval((unsigned char)text[2 * i]), b = hexval((unsigned char)text[2 * i + 1]);
        if (a < 0 || b < 0) {
            cli_error("%s is not hex: bad digit at offset %zu", what, 2 * i + (a < 0 ? 0 : 1));
            goto bad;
        }
        out->p[i] = (uint8_t)(a * 16 + b);
    }
    return true;
bad:
    fprintf(stderr, "hint: with --hex give two hex digits per byte, e.g. 00ff\n");
    tsr_mem_free(NULL, out->p);
    out->p = NULL;
    return false;
}

bool cli_kv_check_size(const char *what, size_t n, uint32_t max)
{
    if (n <= max)
        return true;
    cli_error("%s is %zu bytes; the table allows at most %u", what, n, max);
    fprintf(stderr, "hint: create the table with a larger --max-%s\n",
            strcmp(what, "key") == 0 ? "key" : "value");
    return false;
}

uint32_t cli_kv_part_of(const void *key, size_t klen, uint32_t nparts)
{
    uint64_t h = tsr_hash_bytes(key, klen);
    return (uint32_t)(((h >> 32) * nparts) >> 32);
}

/* ---- load: CSV ---------------------------------------------------------------------- */

/* Reads one RFC 4180 field at *pos of text; returns its (unquoted) bytes in
 * a fresh buffer. *end_rec is set at the end of a record. false on a
 * malformed field (error printed with line). */
static bool csv_field(const char *path, const char *text, size_t len, size_t *pos, size_t *line,
                      char **out, size_t *olen, bool *end_rec)
{
    size_t i = *pos, cap = 64, n = 0;
    char *buf = tsr_mem_alloc(NULL, cap);
    if (!buf)
        return false;
    bool quoted = i < len && text[i] == '"';
    if (quoted)
        i++;
    for (;;) {
        if (i >= len) {
            if (quoted) {
                cli_error("malformed CSV: unterminated quoted field");
                fprintf(stderr, "at %s:%zu\n", path, *line);
                tsr_mem_free(NULL, buf);
                return false;
            }
            *end_rec = true;
            break;
        }
        char ch = text[i];
        if (quoted) {
            if (ch == '"') {
                if (i + 1 < len && text[i + 1] == '"') {
                    i += 2;
                    ch = '"';
                } else {
                    quoted = false;
                    i++;
                    if (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                        cli_error("malformed CSV: text after a closing quote");
                        fprintf(stderr, "at %s:%zu\n", path, *line);
                        tsr_mem_free(NULL, buf);
                        return false;
                    }
                    continue;
                }
            } else {
                if (ch == '\n')
                    (*line)++;
                i++;
            }
        } else {
            if (ch == ',') {
                i++;
                *end_rec = false;
                break;
            }
            if (ch == '\n' || ch == '\r') {
                i += ch == '\r' && i + 1 < len && text[i + 1] == '\n' ? 2 : 1;
                (*line)++;
                *end_rec = true;
                break;
            }
            i++;
        }
        if (n + 1 >= cap) {
            char *nb = tsr_mem_realloc(NULL, buf, cap * 2);
            if (!nb) {
                tsr_mem_free(NULL, buf);
                return false;
            }
            buf = nb;
            cap *= 2;
        }
        buf[n++] = ch;
    }
    buf[n] = '\0';
    *pos = i;
    *out = buf;
    *olen = n;
    return true;
}

void cli_kv_pairvec_free(kv_pairvec_t *v)
{
    for (size_t i = 0; i < v->n; i++) {
        tsr_mem_free(NULL, v->keys[i].p);
        tsr_mem_free(NULL, v->vals[i].p);
    }
    tsr_mem_free(NULL, v->keys);
    tsr_mem_free(NULL, v->vals);
    tsr_mem_free(NULL, v->parts);
}

int cli_kv_read_csv(const kv_args_t *a, const kv_desc_t *d, kv_pairvec_t *v)
{
    FILE *f = fopen(a->value, "rb");
    if (!f) {
        cli_error("cannot open '%s': %s", a->value, strerror(errno));
        return TSR_EXIT_NOT_FOUND;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap) {
            char *nt = tsr_mem_realloc(NULL, text, cap = cap * 2 + 65536);
            if (!nt) {
                tsr_mem_free(NULL, text);
                fclose(f);
                cli_error("out of memory reading '%s'", a->value);
                return TSR_EXIT_FAILURE;
            }
            text = nt;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    int code = TSR_EXIT_OK;
    size_t pos = 0, line = 1;
    bool first = true;
    while (pos < len && code == TSR_EXIT_OK) {
        size_t rec_line = line;
        char *fk = NULL, *fv = NULL;
        size_t kl = 0, vl = 0;
        bool end = false;
        if (!csv_field(a->value, text, len, &pos, &line, &fk, &kl, &end)) {
            code = TSR_EXIT_USAGE;
            break;
        }
        if (end && kl == 0 && !(first && a->header)) { /* a blank line */
            tsr_mem_free(NULL, fk);
            continue;
        }
        if (end || !csv_field(a->value, text, len, &pos, &line, &fv, &vl, &end) || !end) {
            if (fv || end) /* the field was read: the record's shape is wrong */
                cli_error("malformed CSV: a row needs exactly two fields, key and value");
            fprintf(stderr, "at %s:%zu\n", a->value, rec_line);
            tsr_mem_free(NULL, fk);
            tsr_mem_free(NULL, fv);
            code = TSR_EXIT_USAGE;
            break;
        }
        if (first && a->header) {
            first = false;
            tsr_mem_free(NULL, fk);
            tsr_mem_free(NULL, fv);
            continue;
        }
        first = false;
        if (v->n == v->cap) {
            size_t nc = v->cap ? 2 * v->cap : 1024;
            kv_bytes_t *nk = tsr_mem_realloc(NULL, v->keys, nc * sizeof(*nk));
            if (nk)
                v->keys = nk;
            kv_bytes_t *nv = nk ? tsr_mem_realloc(NULL, v->vals, nc * sizeof(*nv)) : NULL;
            if (nv)
                v->vals = nv;
            uint32_t *np = nv ? tsr_mem_realloc(NULL, v->parts, nc * sizeof(*np)) : NULL;
            if (!np) {
                tsr_mem_free(NULL, fk);
                tsr_mem_free(NULL, fv);
                cli_error("out of memory");
                code = TSR_EXIT_FAILURE;
                break;
            }
            v->parts = np;
            v->cap = nc;
        }
        kv_bytes_t k = {0}, val = {0};
        bool ok = cli_kv_decode("key", fk, kl, a->hex, &k) &&
                  cli_kv_decode("value", fv, vl, a->hex, &val) &&
                  cli_kv_check_size("key", k.n, d->max_key) &&
                  cli_kv_check_size("value", val.n, d->max_value);
        tsr_mem_free(NULL, fk);
        tsr_mem_free(NULL, fv);
        if (!ok) {
            fprintf(stderr, "at %s:%zu\n", a->value, rec_line);
            tsr_mem_free(NULL, k.p);
            tsr_mem_free(NULL, val.p);
            code = TSR_EXIT_USAGE;
            break;
        }
        v->keys[v->n] = k;
        v->vals[v->n] = val;
        v->parts[v->n] = cli_kv_part_of(k.p, k.n, d->nparts);
        v->n++;
    }
    tsr_mem_free(NULL, text);
    return code;
}

#endif /* TSR_HAVE_SCHEDULER */
