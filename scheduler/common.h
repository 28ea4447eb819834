/*
 * common.h - small helpers the scheduler's processes share: clocks, logging,
 * node ids, address parsing.
 */
#ifndef TSR_SCHED_COMMON_H
#define TSR_SCHED_COMMON_H

#include <stdint.h>
#include <stdio.h>

uint64_t tsr_sched_now_ms(void);
/* A random nonzero node id for this process. */
uint32_t tsr_sched_node_id(void);
/* "tessera <who>: <message>\n" on log (when not NULL), flushed. */
void tsr_sched_log(FILE *log, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* TSR_SCHED_COMMON_H */
