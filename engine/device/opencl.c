/*
 * opencl.c - the OpenCL device backend (OpenCL 1.2 API, any ICD: PoCL on
 * CPUs, NVIDIA/AMD/Intel GPU drivers).
 *
 * Devices are numbered across platforms in the order the ICD loader reports
 * them (platform order, then device order); tsr_device_info_t.index is that
 * number. Opening a device re-walks the same order and checks the name, so a
 * device list taken earlier cannot silently open a different device.
 *
 * Per device (tsr_cl_dev_t): one cl_context, programs built on first use
 * (opencl_internal.h). Queues are in-order cl_command_queues with profiling
 * on, so every event can be timed. Pinned host memory is a CL_MEM_ALLOC_HOST_PTR
 * buffer kept mapped for its lifetime (the portable way to get page-locked
 * memory from OpenCL).
 *
 * Every cl* return code is checked and converted by tsr_dev_cl_fail, which
 * records the call, the CL error name and the device name.
 */
#include <stdio.h>
#include <string.h>

#include "device/cl_sources.h"
#include "device/filter.h"
#include "device/hashagg.h"
#include "device/hashjoin.h"
#include "device/opencl_internal.h"
#include "device/partition.h"

// clang-format off
#define CL_ERRORS(X) \
    X(CL_SUCCESS) X(CL_DEVICE_NOT_FOUND) X(CL_DEVICE_NOT_AVAILABLE) \
    X(CL_COMPILER_NOT_AVAILABLE) X(CL_MEM_OBJECT_ALLOCATION_FAILURE) \
    X(CL_OUT_OF_RESOURCES) X(CL_OUT_OF_HOST_MEMORY) \
    X(CL_PROFILING_INFO_NOT_AVAILABLE) X(CL_MEM_COPY_OVERLAP) \
    X(CL_BUILD_PROGRAM_FAILURE) X(CL_MAP_FAILURE) X(CL_MISALIGNED_SUB_BUFFER_OFFSET) \
    X(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) X(CL_COMPILE_PROGRAM_FAILURE) \
    X(CL_LINKER_NOT_AVAILABLE) X(CL_LINK_PROGRAM_FAILURE) X(CL_INVALID_VALUE) \
    X(CL_INVALID_DEVICE_TYPE) X(CL_INVALID_PLATFORM) X(CL_INVALID_DEVICE) \
    X(CL_INVALID_CONTEXT) X(CL_INVALID_QUEUE_PROPERTIES) X(CL_INVALID_COMMAND_QUEUE) \
    X(CL_INVALID_HOST_PTR) X(CL_INVALID_MEM_OBJECT) X(CL_INVALID_BINARY) \
    X(CL_INVALID_BUILD_OPTIONS) X(CL_INVALID_PROGRAM) \
    X(CL_INVALID_PROGRAM_EXECUTABLE) X(CL_INVALID_KERNEL_NAME) \
    X(CL_INVALID_KERNEL_DEFINITION) X(CL_INVALID_KERNEL) X(CL_INVALID_ARG_INDEX) \
    X(CL_INVALID_ARG_VALUE) X(CL_INVALID_ARG_SIZE) X(CL_INVALID_KERNEL_ARGS) \
    X(CL_INVALID_WORK_DIMENSION) X(CL_INVALID_WORK_GROUP_SIZE) \
    X(CL_INVALID_WORK_ITEM_SIZE) X(CL_INVALID_GLOBAL_OFFSET) \
    X(CL_INVALID_EVENT_WAIT_LIST) X(CL_INVALID_EVENT) X(CL_INVALID_OPERATION) \
    X(CL_INVALID_BUFFER_SIZE) X(CL_INVALID_GLOBAL_WORK_SIZE) X(CL_INVALID_PROPERTY)
// clang-format on

#define CL_PLATFORM_NOT_FOUND_KHR_ (-1001) /* cl_ext.h's, without pulling in cl_ext.h */

const char *tsr_dev_cl_error_name(cl_int code)
{
    switch (code) {
#define CL_ERROR_CASE_(name)                                                                       \
    case name:                                                                                     \
        return #name;
        CL_ERRORS(CL_ERROR_CASE_)
#undef CL_ERROR_CASE_
    case CL_PLATFORM_NOT_FOUND_KHR_:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "CL_ERROR";
    }
}

tsr_status_t tsr_dev_cl_fail(tsr_error_t *err, const tsr_dev_t *dev, cl_int code, const char *what)
{
    tsr_status_t st = (code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_HOST_MEMORY)
                          ? TSR_ERR_NOMEM
                          : TSR_ERR_DEVICE;
    return tsr_error_set(err, st, "OpenCL %s failed on %s: %s (%d)", what,
                         dev ? dev->info.name : "?", tsr_dev_cl_error_name(code), (int)code);
}

/* ---- enumeration ---------------------------------------------------------------------- */

/* The platforms, allocated on mem (NULL when there are none). */
static tsr_status_t cl_platforms(tsr_mem_t *mem, cl_platform_id **out, cl_uint *n, cl_int *code)
{
    *out = NULL;
    *n = 0;
    cl_uint np = 0;
    *code = clGetPlatformIDs(0, NULL, &np);
    if (*code != CL_SUCCESS || np == 0)
        return TSR_OK;
    cl_platform_id *ids = tsr_mem_calloc(mem, np, sizeof(*ids));
    if (!ids)
        return TSR_ERR_NOMEM;
    *code = clGetPlatformIDs(np, ids, NULL);
    if (*code != CL_SUCCESS) {
        tsr_mem_free(mem, ids);
        return TSR_OK;
    }
    *out = ids;
    *n = np;
    return TSR_OK;
}

/* The devices of one platform (NULL when none). */
static tsr_status_t cl_devices(tsr_mem_t *mem, cl_platform_id p, cl_device_id **out, cl_uint *n)
{
    *out = NULL;
    *n = 0;
    cl_uint nd = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
        return TSR_OK;
    cl_device_id *ids = tsr_mem_calloc(mem, nd, sizeof(*ids));
    if (!ids)
        return TSR_ERR_NOMEM;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, ids, NULL) != CL_SUCCESS) {
        tsr_mem_free(mem, ids);
        return TSR_OK;
    }
    *out = ids;
    *n = nd;
    return TSR_OK;
}

static void cl_info_str(cl_device_id d, cl_device_info what, char *out, size_t size)
{
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, size, out, NULL) != CL_SUCCESS)
        out[0] = '\0';
    out[size - 1] = '\0';
    size_t len = strlen(out); /* some drivers pad names with spaces */
    while (len && out[len - 1] == ' ')
        out[--len] = '\0';
}

static void cl_describe(cl_device_id d, unsigned index, tsr_device_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->backend = TSR_DEVICE_OPENCL;
    info->index = index;
    cl_info_str(d, CL_DEVICE_NAME, info->name, sizeof(info->name));
    cl_info_str(d, CL_DEVICE_VENDOR, info->vendor, sizeof(info->vendor));
    cl_info_str(d, CL_DEVICE_VERSION, info->version, sizeof(info->version));
    cl_ulong mem = 0;
    cl_uint cu = 0;
    cl_device_type type = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(mem), &mem, NULL) == CL_SUCCESS)
        info->global_mem_bytes = mem;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cu), &cu, NULL) == CL_SUCCESS)
        info->compute_units = cu;
    if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof(type), &type, NULL) == CL_SUCCESS)
        info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
}

/* Walks every device in backend order; visit returns 1 to stop the walk. */
typedef int (*cl_visit_fn)(void *arg, cl_platform_id p, cl_device_id d, unsigned index);

static tsr_status_t cl_walk(tsr_mem_t *mem, cl_visit_fn visit, void *arg, cl_int *platform_code)
{
    cl_platform_id *plats = NULL;
    cl_uint np = 0;
    tsr_status_t rc = cl_platforms(mem, &plats, &np, platform_code);
    unsigned index = 0;
    int stop = 0;
    for (cl_uint p = 0; rc == TSR_OK && p < np && !stop; p++) {
        cl_device_id *devs = NULL;
        cl_uint nd = 0;
        rc = cl_devices(mem, plats[p], &devs, &nd);
        for (cl_uint d = 0; rc == TSR_OK && d < nd && !stop; d++)
            stop = visit(arg, plats[p], devs[d], index++);
        tsr_mem_free(mem, devs);
    }
    tsr_mem_free(mem, plats);
    return rc;
}

typedef struct cl_enum_state {
    tsr_mem_t *mem;
    tsr_device_info_t *infos;
    size_t n;
    size_t cap;
    bool nomem;
} cl_enum_state_t;

static int cl_enum_visit(void *arg, cl_platform_id p, cl_device_id d, unsigned index)
{
    cl_enum_state_t *st = arg;
    if (tsr_mem_grow(st->mem, (void **)&st->infos, &st->cap, st->n + 1, sizeof(*st->infos))) {
        st->nomem = true;
        return 1;
    }
    cl_describe(d, index, &st->infos[st->n++]);
    return 0;
}

static tsr_status_t cl_enumerate(tsr_mem_t *mem, tsr_device_info_t **out, size_t *n, char *note,
                                 size_t note_size)
{
    cl_enum_state_t st = {.mem = mem};
    cl_int code = CL_SUCCESS;
    tsr_status_t rc = cl_walk(mem, cl_enum_visit, &st, &code);
    if (rc != TSR_OK || st.nomem) {
        tsr_mem_free(mem, st.infos);
        return TSR_ERR_NOMEM;
    }
    if (note_size)
        note[0] = '\0';
    if (st.n == 0 && note_size) {
        if (code == CL_PLATFORM_NOT_FOUND_KHR_ || code == CL_SUCCESS)
            snprintf(note, note_size,
                     "no OpenCL platform found (install an ICD such as pocl-opencl-icd)");
        else
            snprintf(note, note_size, "OpenCL platforms could not be listed: %s (%d)",
                     tsr_dev_cl_error_name(code), (int)code);
    }
    *out = st.infos;
    *n = st.n;
    return TSR_OK;
}

/* ---- devices ------------------------------------------------------------------------- */

typedef struct cl_find_state {
    unsigned want;
    cl_platform_id platform;
    cl_device_id device;
    bool found;
} cl_find_state_t;

static int cl_find_visit(void *arg, cl_platform_id p, cl_device_id d, unsigned index)
{
    cl_find_state_t *st = arg;
    if (index != st->want)
        return 0;
    st->platform = p;
    st->device = d;
    st->found = true;
    return 1;
}

static bool cl_has_extension(cl_device_id d, const char *ext)
{
    size_t size = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS || size == 0)
        return false;
    char buf[8192];
    if (size > sizeof(buf))
        size = sizeof(buf);
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, size, buf, NULL) != CL_SUCCESS)
        return false;
    buf[size - 1] = '\0';
    size_t len = strlen(ext);
    for (const char *p = strstr(buf, ext); p; p = strstr(p + 1, ext))
        if ((p == buf || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return true;
    return false;
}

static tsr_status_t cl_open(tsr_dev_t *dev, tsr_error_t *err)
{
    cl_find_state_t st = {.want = dev->info.index};
    cl_int code = CL_SUCCESS;
    if (cl_walk(dev->mem, cl_find_visit, &st, &code) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory listing OpenCL devices");
    tsr_device_info_t now;
    if (st.found)
        cl_describe(st.device, st.want, &now);
    if (!st.found || strcmp(now.name, dev->info.name) != 0)
        return tsr_error_set(err, TSR_ERR_NOT_FOUND, "OpenCL device %u (%s) is no longer present",
                             dev->info.index, dev->info.name);
    tsr_cl_dev_t *cl = tsr_mem_calloc(dev->mem, 1, sizeof(*cl));
    if (!cl)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    cl->platform = st.platform;
    cl->device = st.device;
    cl->int64_atomics = cl_has_extension(st.device, "cl_khr_int64_base_atomics") &&
                        cl_has_extension(st.device, "cl_khr_int64_extended_atomics");
    cl->fp64 = cl_has_extension(st.device, "cl_khr_fp64");
    cl_ulong max_alloc = 0;
    if (clGetDeviceInfo(st.device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(max_alloc), &max_alloc,
                        NULL) == CL_SUCCESS)
        cl->max_alloc = max_alloc;
    cl_ulong local_mem = 0;
    if (clGetDeviceInfo(st.device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(local_mem), &local_mem, NULL) ==
        CL_SUCCESS)
        cl->local_mem = local_mem;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)st.platform, 0};
    cl->context = clCreateContext(props, 1, &st.device, NULL, NULL, &code);
    if (code != CL_SUCCESS) {
        tsr_mem_free(dev->mem, cl);
        return tsr_dev_cl_fail(err, dev, code, "clCreateContext");
    }
    dev->impl = cl;
    tsr_dev_cl_stage_defaults(dev);
    tsr_error_t uerr;
    tsr_error_clear(&uerr);
    (void)tsr_dev_cl_user_init(dev, &uerr); /* without it, user programs are built per call */
    return TSR_OK;
}

static void cl_close(tsr_dev_t *dev)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    if (!cl)
        return;
    tsr_dev_cl_stage_free(dev);
    tsr_dev_cl_user_free(dev);
    for (int p = 0; p < TSR_CL_NPROGS; p++)
        if (cl->progs[p])
            clReleaseProgram(cl->progs[p]);
    clReleaseContext(cl->context);
    tsr_mem_free(dev->mem, cl);
    dev->impl = NULL;
}

/* ---- programs ------------------------------------------------------------------------- */

// clang-format off
static const char *const CL_PROG_FILES[TSR_CL_NPROGS] = {
    [TSR_CL_PROG_HASHAGG] = "hashagg",
    [TSR_CL_PROG_SCAN] = "scan",
    [TSR_CL_PROG_HASHJOIN] = "hashjoin",
    [TSR_CL_PROG_FILTER] = "filter",
    [TSR_CL_PROG_PARTITION] = "partition",
    [TSR_CL_PROG_KV] = "kv",
};
// clang-format on

static const tsr_cl_source_t *cl_source(const char *name)
{
    for (size_t i = 0; i < tsr_cl_nsources; i++)
        if (strcmp(tsr_cl_sources[i].name, name) == 0)
            return &tsr_cl_sources[i];
    return NULL;
}

/* Records a build failure with the head of the compiler's log (where the
 * first error is) in the message. */
static tsr_status_t cl_build_failed(tsr_dev_t *dev, cl_program prog, const char *file, cl_int code,
                                    tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    char log[400] = "";
    size_t size = 0;
    if (clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) ==
            CL_SUCCESS &&
        size > 0) {
        char *full = tsr_mem_alloc(dev->mem, size + 1);
        if (full && clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, size, full,
                                          NULL) == CL_SUCCESS) {
            full[size] = '\0';
            snprintf(log, sizeof(log), "%s", full);
        }
        tsr_mem_free(dev->mem, full);
    }
    log[sizeof(log) - 1] = '\0';
    for (char *p = log; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    tsr_error_set(err, TSR_ERR_DEVICE, "OpenCL build of %s.cl failed on %s: %s (%d): %s", file,
                  dev->info.name, tsr_dev_cl_error_name(code), (int)code,
                  log[0] ? log : "(no build log)");
    tsr_error_hint(err, "the kernel sources are embedded at build time from kernels/opencl/");
    return TSR_ERR_DEVICE;
}

tsr_status_t tsr_dev_cl_build(tsr_dev_t *dev, const char *name, const char *text, size_t len,
                              cl_program *out, tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    cl_int code = CL_SUCCESS;
    cl_program prog = clCreateProgramWithSource(cl->context, 1, &text, &len, &code);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clCreateProgramWithSource");
    code = clBuildProgram(prog, 1, &cl->device, "-cl-std=CL1.2", NULL, NULL);
    if (code != CL_SUCCESS) {
        tsr_status_t rc = cl_build_failed(dev, prog, name, code, err);
        clReleaseProgram(prog);
        return rc;
    }
    *out = prog;
    return TSR_OK;
}

tsr_status_t tsr_dev_cl_program(tsr_dev_t *dev, tsr_cl_prog_t which, cl_program *out,
                                tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    if (!cl->progs[which]) {
        const tsr_cl_source_t *src = cl_source(CL_PROG_FILES[which]);
        if (!src)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "OpenCL kernel %s.cl is not embedded",
                                 CL_PROG_FILES[which]);
        tsr_status_t rc = tsr_dev_cl_build(dev, CL_PROG_FILES[which], src->text, src->len,
                                           &cl->progs[which], err);
        if (rc != TSR_OK)
            return rc;
    }
    *out = cl->progs[which];
    return TSR_OK;
}

/* ---- memory --------------------------------------------------------------------------- */

static tsr_status_t cl_buf_alloc(tsr_dev_t *dev, size_t size, void **handle, tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    if (cl->max_alloc && size > cl->max_alloc)
        return tsr_error_set(err, TSR_ERR_NOMEM,
                             "%zu bytes exceed the largest buffer %s can allocate (%llu)", size,
                             dev->info.name, (unsigned long long)cl->max_alloc);
    cl_int code = CL_SUCCESS;
    cl_mem m = clCreateBuffer(cl->context, CL_MEM_READ_WRITE, size, NULL, &code);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clCreateBuffer");
    *handle = m;
    return TSR_OK;
}

static void cl_buf_free(tsr_dev_t *dev, void *handle)
{
    clReleaseMemObject((cl_mem)handle);
}

static tsr_status_t cl_host_alloc(tsr_dev_t *dev, size_t size, void **ptr, void **handle,
                                  tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    cl_int code = CL_SUCCESS;
    cl_mem m =
        clCreateBuffer(cl->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, size, NULL, &code);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clCreateBuffer(ALLOC_HOST_PTR)");
    void *p = clEnqueueMapBuffer(tsr_dev_cl_queue(dev->queue), m, CL_TRUE,
                                 CL_MAP_READ | CL_MAP_WRITE, 0, size, 0, NULL, NULL, &code);
    if (code != CL_SUCCESS) {
        clReleaseMemObject(m);
        return tsr_dev_cl_fail(err, dev, code, "clEnqueueMapBuffer");
    }
    *ptr = p;
    *handle = m;
    return TSR_OK;
}

static void cl_host_free(tsr_dev_t *dev, void *ptr, void *handle)
{
    cl_command_queue q = tsr_dev_cl_queue(dev->queue);
    clEnqueueUnmapMemObject(q, (cl_mem)handle, ptr, 0, NULL, NULL);
    clFinish(q);
    clReleaseMemObject((cl_mem)handle);
}

/* ---- queues, transfers, events ----------------------------------------------------------- */

static tsr_status_t cl_queue_create(tsr_dev_t *dev, void **handle, tsr_error_t *err)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    cl_int code = CL_SUCCESS;
    cl_command_queue q =
        clCreateCommandQueue(cl->context, cl->device, CL_QUEUE_PROFILING_ENABLE, &code);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clCreateCommandQueue");
    *handle = q;
    return TSR_OK;
}

static void cl_queue_destroy(tsr_dev_t *dev, void *handle)
{
    cl_command_queue q = handle;
    clFinish(q);
    clReleaseCommandQueue(q);
}

static tsr_status_t cl_queue_finish(tsr_dev_queue_t *q, tsr_error_t *err)
{
    cl_int code = clFinish(tsr_dev_cl_queue(q));
    return code == CL_SUCCESS ? TSR_OK : tsr_dev_cl_fail(err, q->dev, code, "clFinish");
}

/* Host copies of at least this many bytes without an event go through the
 * pinned staging buffers where the device uses them (opencl_stage.c); they
 * complete on the host side before returning (a write once the source is
 * staged, a read once the bytes are in dst). */
#define CL_STAGE_MIN 4096

static tsr_status_t cl_write(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset, const void *src,
                             size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err)
{
    if (!ev && size >= CL_STAGE_MIN && tsr_dev_cl_stage_active(q->dev)) {
        tsr_status_t rc = tsr_dev_cl_upload(q->dev, tsr_dev_cl_queue(q), tsr_dev_cl_mem(dst),
                                            offset, src, size, err);
        cl_int code;
        if (rc == TSR_OK && blocking && (code = clFinish(tsr_dev_cl_queue(q))) != CL_SUCCESS)
            rc = tsr_dev_cl_fail(err, q->dev, code, "clFinish");
        return rc;
    }
    cl_event e = NULL;
    cl_int code = clEnqueueWriteBuffer(tsr_dev_cl_queue(q), tsr_dev_cl_mem(dst),
                                       blocking ? CL_TRUE : CL_FALSE, offset, size, src, 0, NULL,
                                       ev ? &e : NULL);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, q->dev, code, "clEnqueueWriteBuffer");
    if (ev)
        ev->handle = e;
    return TSR_OK;
}

static tsr_status_t cl_read(tsr_dev_queue_t *q, const tsr_dev_buf_t *src, size_t offset, void *dst,
                            size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err)
{
    if (!ev && size >= CL_STAGE_MIN && tsr_dev_cl_stage_active(q->dev))
        return tsr_dev_cl_download(q->dev, tsr_dev_cl_queue(q), tsr_dev_cl_mem(src), offset, dst,
                                   size, err);
    cl_event e = NULL;
    cl_int code =
        clEnqueueReadBuffer(tsr_dev_cl_queue(q), tsr_dev_cl_mem(src), blocking ? CL_TRUE : CL_FALSE,
                            offset, size, dst, 0, NULL, ev ? &e : NULL);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, q->dev, code, "clEnqueueReadBuffer");
    if (ev)
        ev->handle = e;
    return TSR_OK;
}

static tsr_status_t cl_fill(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset,
                            const void *pattern, size_t pattern_size, size_t size,
                            tsr_dev_event_t *ev, tsr_error_t *err)
{
    cl_event e = NULL;
    cl_int code = clEnqueueFillBuffer(tsr_dev_cl_queue(q), tsr_dev_cl_mem(dst), pattern,
                                      pattern_size, offset, size, 0, NULL, ev ? &e : NULL);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, q->dev, code, "clEnqueueFillBuffer");
    if (ev)
        ev->handle = e;
    return TSR_OK;
}

static tsr_status_t cl_event_wait(tsr_dev_event_t *ev, tsr_error_t *err)
{
    cl_event e = ev->handle;
    cl_int code = clWaitForEvents(1, &e);
    cl_int status = CL_COMPLETE;
    if (code == CL_SUCCESS)
        code = clGetEventInfo(e, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(status), &status, NULL);
    if (code == CL_SUCCESS && status < 0)
        code = status; /* the command itself failed */
    return code == CL_SUCCESS ? TSR_OK : tsr_dev_cl_fail(err, ev->dev, code, "clWaitForEvents");
}

static tsr_status_t cl_event_times(tsr_dev_event_t *ev, uint64_t *start_ns, uint64_t *end_ns,
                                   tsr_error_t *err)
{
    tsr_status_t rc = cl_event_wait(ev, err);
    if (rc != TSR_OK)
        return rc;
    cl_event e = ev->handle;
    cl_ulong t0 = 0, t1 = 0;
    cl_int code = clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof(t0), &t0, NULL);
    if (code == CL_SUCCESS)
        code = clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof(t1), &t1, NULL);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, ev->dev, code, "clGetEventProfilingInfo");
    *start_ns = t0;
    *end_ns = t1;
    return TSR_OK;
}

static void cl_event_release(tsr_dev_event_t *ev)
{
    if (ev->handle)
        clReleaseEvent((cl_event)ev->handle);
}

const tsr_dev_backend_t tsr_dev_opencl_backend = {
    .id = TSR_DEVICE_OPENCL,
    .name = "opencl",
    .enumerate = cl_enumerate,
    .open = cl_open,
    .close = cl_close,
    .buf_alloc = cl_buf_alloc,
    .buf_free = cl_buf_free,
    .host_alloc = cl_host_alloc,
    .host_free = cl_host_free,
    .queue_create = cl_queue_create,
    .queue_destroy = cl_queue_destroy,
    .queue_finish = cl_queue_finish,
    .write = cl_write,
    .read = cl_read,
    .fill = cl_fill,
    .event_wait = cl_event_wait,
    .event_times = cl_event_times,
    .event_release = cl_event_release,
    .hashagg = &tsr_dev_hashagg_opencl_ops,
    .hashjoin = &tsr_dev_hashjoin_opencl_ops,
    .filter = &tsr_dev_filter_opencl_ops,
    .partition = &tsr_dev_partition_opencl_ops,
};
