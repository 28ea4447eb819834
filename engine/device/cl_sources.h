/*
 * cl_sources.h - the OpenCL kernel sources embedded into the library.
 *
 * The table is generated at build time from kernels/opencl/ (every .cl file) by
 * kernels/opencl/embed.cmake (into <build>/generated/cl_sources.c), so a
 * binary builds its programs from the text it was compiled with, never from a
 * source tree that may have moved or changed.
 */
#ifndef TSR_DEVICE_CL_SOURCES_H
#define TSR_DEVICE_CL_SOURCES_H

#include <stddef.h>

typedef struct tsr_cl_source {
    const char *name; /* file name without ".cl", e.g. "hashagg" */
    const char *text; /* NUL-terminated */
    size_t len;       /* bytes, without the NUL */
} tsr_cl_source_t;

/* tsr_cl_nsources entries, then one all-zero entry. */
extern const tsr_cl_source_t tsr_cl_sources[];
extern const size_t tsr_cl_nsources;

#endif /* TSR_DEVICE_CL_SOURCES_H */
