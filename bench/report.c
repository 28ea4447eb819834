/*
 * report.c - prints tessera-bench figures as a table for people or as JSON
 * lines for scripts (format in bench.h).
 *
 * JSON is built with jansson so escaping is never hand-rolled. Doubles are
 * written with 10 significant digits: more than any timing deserves, and it
 * keeps lines readable. A value that is not finite (a division by a zero
 * time on a tiny input) becomes null rather than invalid JSON.
 *
 * The table is streamed: each figure is printed as soon as it is measured, so
 * a long run shows progress and a failure keeps what was already measured.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

int tsr_bench_report_init(tsr_bench_report_t *r, const char *suite, bool json, FILE *out)
{
    memset(r, 0, sizeof(*r));
    r->suite = suite;
    r->device = "cpu";
    r->json = json;
    r->out = out;
    r->params = json_object();
    if (!r->params)
        return -1;
    /* Other processes on the machine distort timings: record how busy it was
     * so a reader can tell a quiet run from a disturbed one. */
    double load[1];
    r->loadavg = getloadavg(load, 1) == 1 ? load[0] : -1.0;
    if (r->loadavg >= 0)
        json_object_set_new(r->params, "loadavg", json_real(r->loadavg));
    return 0;
}

void tsr_bench_report_fini(tsr_bench_report_t *r)
{
    if (!r->json && r->header_done && r->loadavg >= 0)
        fprintf(r->out, "  load average when the run began: %.2f (%ld cores online)\n",
                r->loadavg, sysconf(_SC_NPROCESSORS_ONLN));
    json_decref(r->params);
    r->params = NULL;
    fflush(r->out);
}

void tsr_bench_report_param_int(tsr_bench_report_t *r, const char *key, int64_t value)
{
    json_object_set_new(r->params, key, json_integer((json_int_t)value));
}

void tsr_bench_report_param_str(tsr_bench_report_t *r, const char *key, const char *value)
{
    json_object_set_new(r->params, key, json_string(value));
}

void tsr_bench_report_title(tsr_bench_report_t *r, const char *fmt, ...)
{
    if (r->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    fputc('\n', r->out);
    va_end(ap);
}

void tsr_bench_report_note(tsr_bench_report_t *r, const char *fmt, ...)
{
    if (r->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("  ", r->out);
    vfprintf(r->out, fmt, ap);
    fputc('\n', r->out);
    va_end(ap);
}

/* Chooses an SI prefix so people read "123.4 M rows/s", not "123412345.6". */
static void format_si(char *buf, size_t cap, double v, const char *unit)
{
    static const char *const prefix[] = {"", "k", "M", "G", "T"};
    size_t p = 0;
    double a = fabs(v);
    while (a >= 1000.0 && p + 1 < sizeof(prefix) / sizeof(prefix[0])) {
        a /= 1000.0;
        v /= 1000.0;
        p++;
    }
    snprintf(buf, cap, "%.4g %s%s%s", v, prefix[p], p ? " " : "", unit);
}

void tsr_bench_format_value(char *buf, size_t cap, double value, const char *unit)
{
    if (!isfinite(value)) {
        snprintf(buf, cap, "n/a");
    } else if (strcmp(unit, "s") == 0) {
        if (value < 1e-3)
            snprintf(buf, cap, "%.1f us", value * 1e6);
        else if (value < 1.0)
            snprintf(buf, cap, "%.1f ms", value * 1e3);
        else
            snprintf(buf, cap, "%.3f s", value);
    } else if (strcmp(unit, "x") == 0) {
        snprintf(buf, cap, "%.2fx", value);
    } else if (strcmp(unit, "GB/s") == 0 || strcmp(unit, "MB/s") == 0) {
        snprintf(buf, cap, "%.2f %s", value, unit);
    } else if (strcmp(unit, "rows") == 0 || strcmp(unit, "bytes") == 0) {
        snprintf(buf, cap, "%.0f %s", value, unit);
    } else {
        format_si(buf, cap, value, unit);
    }
}

static json_t *json_number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int emit_json(tsr_bench_report_t *r, const tsr_bench_figure_t *f)
{
    int rc = -1;
    json_t *o = json_object();
    if (!o)
        return -1;
    if (json_object_set_new(o, "suite", json_string(r->suite)) ||
        json_object_set_new(o, "name", json_string(f->name)) ||
        json_object_set_new(o, "value", json_number_or_null(f->value)) ||
        json_object_set_new(o, "unit", json_string(f->unit)) ||
        json_object_set_new(o, "device", json_string(r->device)))
        goto cleanup;
    if (f->peer &&
        (json_object_set_new(o, "peer", json_string(f->peer)) ||
         json_object_set_new(o, "peer_value", json_number_or_null(f->peer_value)) ||
         json_object_set_new(o, "ratio", json_number_or_null(f->ratio))))
        goto cleanup;
    if (json_object_set(o, "params", r->params))
        goto cleanup;
    if (json_dumpf(o, r->out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)))
        goto cleanup;
    if (fputc('\n', r->out) == EOF)
        goto cleanup;
    fflush(r->out);
    rc = 0;
cleanup:
    json_decref(o);
    return rc;
}

int tsr_bench_report_emit(tsr_bench_report_t *r, const tsr_bench_figure_t *f)
{
    if (r->json)
        return emit_json(r, f);
    char value[64], peer[64];
    if (!r->header_done) {
        fprintf(r->out, "  %-34s %18s   %s\n", "figure", "value", "peer");
        r->header_done = true;
    }
    tsr_bench_format_value(value, sizeof(value), f->value, f->unit);
    if (f->peer && isfinite(f->ratio) && f->ratio > 0) {
        tsr_bench_format_value(peer, sizeof(peer), f->peer_value, f->unit);
        fprintf(r->out, "  %-34s %18s   %s %s (Tessera %.2fx %s)\n", f->label ? f->label : f->name,
                value, f->peer, peer, f->ratio >= 1.0 ? f->ratio : 1.0 / f->ratio,
                f->ratio >= 1.0 ? "faster" : "slower");
    } else if (f->peer) {
        tsr_bench_format_value(peer, sizeof(peer), f->peer_value, f->unit);
        fprintf(r->out, "  %-34s %18s   %s %s\n", f->label ? f->label : f->name, value, f->peer,
                peer);
    } else {
        fprintf(r->out, "  %-34s %18s\n", f->label ? f->label : f->name, value);
    }
    fflush(r->out);
    return ferror(r->out) ? -1 : 0;
}

int tsr_bench_emit(tsr_bench_report_t *r, const char *name, const char *label, double value,
                   const char *unit)
{
    tsr_bench_figure_t f = {.name = name, .label = label, .value = value, .unit = unit};
    if (tsr_bench_report_emit(r, &f) != 0) {
        tsr_bench_error("cannot write the figures");
        return -1;
    }
    return 0;
}
