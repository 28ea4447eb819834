/*
 * common.c - clocks, logging, node ids and addresses (see common.h).
 */
#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "scheduler.h"

uint64_t tsr_sched_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t tsr_sched_node_id(void)
{
    uint32_t id = 0;
    while (id <= 1) /* 1 is the scheduler's */
        if (tsr_auth_random(&id, sizeof(id)) != TSR_OK)
            id = (uint32_t)getpid() | 0x80000000u;
    return id;
}

void tsr_sched_log(FILE *log, const char *who, const char *fmt, ...)
{
    if (!log)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%H:%M:%S", &tm);
    va_list ap;
    fprintf(log, "%s.%03ld tessera %s[%d]: ", when, ts.tv_nsec / 1000000L, who, (int)getpid());
    va_start(ap, fmt);
    vfprintf(log, fmt, ap);
    va_end(ap);
    fputc('\n', log);
    fflush(log);
}

bool tsr_sched_parse_addr(const char *text, char *host, size_t host_size, uint16_t *port)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || !colon[1])
        return false;
    size_t hl = (size_t)(colon - text);
    if (hl >= host_size)
        return false;
    if (hl == 0)
        snprintf(host, host_size, "127.0.0.1");
    else {
        memcpy(host, text, hl);
        host[hl] = '\0';
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return false;
    *port = (uint16_t)p;
    return true;
}
