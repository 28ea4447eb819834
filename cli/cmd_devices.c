/*
 * cmd_devices.c - `tessera devices`: the compute devices this build can use.
 *
 * Lists every device of every backend (cpu, opencl, cuda) with its memory
 * and compute units, then one line per backend that found none saying why
 * ("cuda: backend not available in this build", "opencl: no OpenCL platform
 * found ..."). --format csv|json print the devices only (one row each), for
 * scripts; the why-lines are for people and go with the table.
 */
#include <stdint.h>
#include <string.h>

#include "cli.h"
#include "tessera/device.h"

void cmd_devices_usage(FILE *out)
{
    fprintf(out, "usage: tessera devices [--format table|csv|json]\n"
                 "\n"
                 "Lists the compute devices Tessera can run kernels on: the host CPU,\n"
                 "OpenCL devices (GPUs, or PoCL on the CPU) and CUDA GPUs, with their\n"
                 "memory and compute units (cores, OpenCL compute units, CUDA SMs).\n"
                 "A backend that found no device says why.\n"
                 "\n"
                 "options:\n"
                 "  --format F  table (default), csv or json\n");
}

/* "15.6 GiB", "512 MiB", "0 B". */
static void format_bytes(uint64_t b, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", (unsigned long long)b);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

static const char *device_type(const tsr_device_info_t *d)
{
    return d->is_gpu ? "gpu" : "cpu";
}

static void write_table(FILE *out, const tsr_device_list_t *list)
{
    size_t n = tsr_device_list_count(list);
    int wname = 4;
    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(tsr_device_list_at(list, i)->name);
        wname = len > wname ? len : wname;
    }
    fprintf(out, "%-8s %-5s %-*s %10s %6s %s\n", "backend", "index", wname, "name", "memory",
            "units", "type");
    for (size_t i = 0; i < n; i++) {
        const tsr_device_info_t *d = tsr_device_list_at(list, i);
        char mem[32];
        format_bytes(d->global_mem_bytes, mem, sizeof(mem));
        fprintf(out, "%-8s %-5u %-*s %10s %6u %s\n", tsr_device_backend_name(d->backend), d->index,
                wname, d->name, mem, d->compute_units, device_type(d));
    }
    for (unsigned b = 0; b < TSR_DEVICE_NBACKENDS; b++) {
        const tsr_device_backend_info_t *bi =
            tsr_device_list_backend(list, (tsr_device_backend_t)b);
        if (bi->ndevices == 0)
            fprintf(out, "%s: %s\n", bi->name, bi->note);
    }
}

static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void write_csv(FILE *out, const tsr_device_list_t *list)
{
    fprintf(out, "backend,index,name,vendor,version,memory_bytes,compute_units,type\n");
    for (size_t i = 0; i < tsr_device_list_count(list); i++) {
        const tsr_device_info_t *d = tsr_device_list_at(list, i);
        fprintf(out, "%s,%u,", tsr_device_backend_name(d->backend), d->index);
        csv_field(out, d->name);
        fputc(',', out);
        csv_field(out, d->vendor);
        fputc(',', out);
        csv_field(out, d->version);
        fprintf(out, ",%llu,%u,%s\n", (unsigned long long)d->global_mem_bytes, d->compute_units,
                device_type(d));
    }
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void write_json(FILE *out, const tsr_device_list_t *list)
{
    size_t n = tsr_device_list_count(list);
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        const tsr_device_info_t *d = tsr_device_list_at(list, i);
        fprintf(out, "%s{\"backend\":\"%s\",\"index\":%u,\"name\":", i ? ",\n " : "",
                tsr_device_backend_name(d->backend), d->index);
        json_string(out, d->name);
        fputs(",\"vendor\":", out);
        json_string(out, d->vendor);
        fputs(",\"version\":", out);
        json_string(out, d->version);
        fprintf(out, ",\"memory_bytes\":%llu,\"compute_units\":%u,\"type\":\"%s\"}",
                (unsigned long long)d->global_mem_bytes, d->compute_units, device_type(d));
    }
    fputs("]\n", out);
}

int cmd_devices(int argc, char **argv)
{
    cli_format_t format = CLI_FORMAT_TABLE;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cmd_devices_usage(stdout);
            return TSR_EXIT_OK;
        }
        if ((m = cli_opt_value(argc, argv, &i, "--format", &value)) != 0) {
            if (m < 0 || !cli_parse_format(value, &format))
                return TSR_EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-')
            return cli_unknown_option("devices", argv[i]);
        cli_error("unexpected argument '%s'", argv[i]);
        fprintf(stderr, "hint: run 'tessera devices --help' for the usage\n");
        return TSR_EXIT_USAGE;
    }

    tsr_device_list_t *list = NULL;
    tsr_status_t rc = tsr_device_list_create(&list);
    if (rc != TSR_OK) {
        cli_error("cannot list devices: %s", tsr_status_str(rc));
        return tsr_status_exit_code(rc);
    }
    if (format == CLI_FORMAT_CSV)
        write_csv(stdout, list);
    else if (format == CLI_FORMAT_JSON)
        write_json(stdout, list);
    else
        write_table(stdout, list);
    tsr_device_list_destroy(list);
    if (fflush(stdout) != 0) {
        cli_error("cannot write the device list");
        return TSR_EXIT_FAILURE;
    }
    return TSR_EXIT_OK;
}
