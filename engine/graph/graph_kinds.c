/*
 * graph_kinds.c - a graph's task kinds: the kind table (built-in, registered
 * with tsr_graph_register, or loaded from plugins with tsr_graph_load_plugin,
 * whose older API versions are widened here).
 */
#include <dlfcn.h>
#include <string.h>

#include "graph/graph_internal.h"

void tsr_graph_kind_free(tsr_mem_t *mem, graph_kind_t *k)
{
    if (!k)
        return;
    tsr_mem_free(mem, k->name);
    tsr_mem_free(mem, k->opencl_kernel);
    tsr_mem_free(mem, k->cuda_kernel);
    tsr_mem_free(mem, k->plugin);
    tsr_mem_free(mem, k);
}

tsr_status_t tsr_graph_kind_add(tsr_graph_t *g, const char *name, graph_builtin_t builtin,
                                const tsr_task_def_t *def, const char *plugin, tsr_error_t *err)
{
    for (size_t i = 0; i < g->nkinds; i++)
        if (strcmp(g->kinds[i]->name, name) == 0)
            return tsr_error_set(err, TSR_ERR_EXISTS, "task kind '%s' is already registered%s%s",
                                 name, g->kinds[i]->plugin ? " by plugin " : "",
                                 g->kinds[i]->plugin ? g->kinds[i]->plugin : "");
    if (tsr_mem_grow(g->mem, (void **)&g->kinds, &g->kinds_cap, g->nkinds + 1, sizeof(*g->kinds)))
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    if (def && def->opencl && tsr_graph_cl_prepare(g, err) != TSR_OK)
        return err->status;
    /* one allocation per kind: tasks point at it while the array grows */
    graph_kind_t *k = tsr_mem_calloc(g->mem, 1, sizeof(*k));
    if (!k)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    k->builtin = builtin;
    k->cpu = def ? def->cpu : NULL;
    k->opencl = def ? def->opencl : NULL;
    k->cuda = def ? def->cuda : NULL;
    k->name = tsr_mem_strdup(g->mem, name);
    /* an opencl function without a kernel name records the kind's name, so
     * that cluster placement prefers OpenCL workers for it */
    const char *ocl = def ? (def->opencl_kernel ? def->opencl_kernel
                             : def->opencl      ? name
                                                : NULL)
                          : NULL;
    if (ocl)
        k->opencl_kernel = tsr_mem_strdup(g->mem, ocl);
    /* the same for a cuda function: placement prefers CUDA workers */
    const char *cu = def ? (def->cuda_kernel ? def->cuda_kernel : def->cuda ? name : NULL) : NULL;
    if (cu)
        k->cuda_kernel = tsr_mem_strdup(g->mem, cu);
    if (plugin)
        k->plugin = tsr_mem_strdup(g->mem, plugin);
    if (!k->name || (ocl && !k->opencl_kernel) || (cu && !k->cuda_kernel) ||
        (plugin && !k->plugin)) {
        tsr_graph_kind_free(g->mem, k);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    g->kinds[g->nkinds++] = k;
    return TSR_OK;
}

/* ---- task kinds and plugins --------------------------------------------------------- */

tsr_status_t tsr_graph_register(tsr_graph_t *g, const tsr_task_def_t *def)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(g->ctx);
    tsr_error_t *err = &g->ctx->last_error;
    if (!def || !def->name || !*def->name || !def->cpu)
        return tsr__context_end(
            g->ctx,
            tsr_error_set(err, TSR_ERR_INVALID_ARG, "a task kind needs a name and a CPU function"));
    return tsr__context_end(g->ctx, tsr_graph_kind_add(g, def->name, GRAPH_USER, def, NULL, err));
}

/* A plugin API version 1 entry: tsr_task_def_t before version 2 added
 * .opencl (the stride of a version 1 plugin's array). */
typedef struct plugin_def_v1 {
    const char *name;
    tsr_task_fn_t cpu;
    const char *opencl_kernel;
    const char *cuda_kernel;
} plugin_def_v1_t;

/* A plugin API version 2 entry: before version 3 added .cuda. */
typedef struct plugin_def_v2 {
    const char *name;
    tsr_task_fn_t cpu;
    const char *opencl_kernel;
    const char *cuda_kernel;
    tsr_task_fn_t opencl;
} plugin_def_v2_t;

static tsr_status_t register_plugin_kinds(tsr_graph_t *g, const char *name,
                                          const tsr_task_def_t *defs, size_t count,
                                          tsr_error_t *err);

/* dlopens pl->path and registers its kinds (all or none); sets pl->lib. */
static tsr_status_t load_plugin(tsr_graph_t *g, graph_plugin_t *pl, tsr_error_t *err)
{
    const char *name = pl->name, *path = pl->path;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        tsr_error_set(err, TSR_ERR_NOT_FOUND, "cannot load plugin %s from %s: %s", name, path,
                      why ? why : "unknown error");
        tsr_error_hint(err, "a plugin is a shared library; undefined tsr_ symbols mean the "
                            "program was not linked with -rdynamic");
        return TSR_ERR_NOT_FOUND;
    }
    tsr_plugin_tasks_fn entry;
    /* dlsym returns void *; converting it to a function pointer is what POSIX asks for */
    *(void **)&entry = dlsym(lib, "tsr_plugin_tasks");
    if (!entry) {
        dlclose(lib);
        return tsr_error_set(err, TSR_ERR_NOT_FOUND, "plugin %s (%s) exports no tsr_plugin_tasks",
                             name, path);
    }
    /* Version 3 first, then 2, then 1, whose arrays have shorter layouts:
     * their entries are widened into v3 ones (the newer fields NULL) in a copy. */
    size_t count = 0;
    const tsr_task_def_t *defs = entry(TSR_PLUGIN_API_VERSION, &count);
    tsr_task_def_t *widened = NULL;
    if (!defs) {
        count = 0;
        const plugin_def_v2_t *v2 = (const plugin_def_v2_t *)(const void *)entry(2u, &count);
        const plugin_def_v1_t *v1 = NULL;
        if (!v2) {
            count = 0;
            v1 = (const plugin_def_v1_t *)(const void *)entry(1u, &count);
        }
        if (!v2 && !v1) {
            dlclose(lib);
            return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                 "plugin %s supports none of plugin API versions %u, 2 and 1", name,
                                 TSR_PLUGIN_API_VERSION);
        }
        widened = tsr_mem_calloc(g->mem, count ? count : 1, sizeof(*widened));
        if (!widened) {
            dlclose(lib);
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < count; i++)
            widened[i] = v2 ? (tsr_task_def_t){.name = v2[i].name,
                                               .cpu = v2[i].cpu,
                                               .opencl_kernel = v2[i].opencl_kernel,
                                               .cuda_kernel = v2[i].cuda_kernel,
                                               .opencl = v2[i].opencl}
                            : (tsr_task_def_t){.name = v1[i].name,
                                               .cpu = v1[i].cpu,
                                               .opencl_kernel = v1[i].opencl_kernel,
                                               .cuda_kernel = v1[i].cuda_kernel};
        defs = widened;
    }
    tsr_status_t rc = register_plugin_kinds(g, name, defs, count, err);
    tsr_mem_free(g->mem, widened);
    if (rc != TSR_OK) {
        dlclose(lib);
        return rc;
    }
    pl->lib = lib;
    return TSR_OK;
}

/* Registers a plugin's kinds, all or none. */
static tsr_status_t register_plugin_kinds(tsr_graph_t *g, const char *name,
                                          const tsr_task_def_t *defs, size_t count,
                                          tsr_error_t *err)
{
    /* Check every kind first, so a refused plugin registers nothing. */
    for (size_t i = 0; i < count; i++) {
        if (!defs[i].name || !*defs[i].name || !defs[i].cpu) {
            return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                                 "plugin %s: task kind %zu has no name or no CPU function", name,
                                 i);
        }
        for (size_t k = 0; k < g->nkinds; k++)
            if (strcmp(g->kinds[k]->name, defs[i].name) == 0) {
                return tsr_error_set(err, TSR_ERR_EXISTS,
                                     "plugin %s: task kind '%s' is already registered", name,
                                     defs[i].name);
            }
    }
    size_t before = g->nkinds;
    for (size_t i = 0; i < count; i++) {
        tsr_status_t rc = tsr_graph_kind_add(g, defs[i].name, GRAPH_USER, &defs[i], name, err);
        if (rc != TSR_OK) {
            while (g->nkinds > before)
                tsr_graph_kind_free(g->mem, g->kinds[--g->nkinds]);
            return rc;
        }
    }
    return TSR_OK;
}

tsr_status_t tsr_graph_load_plugin(tsr_graph_t *g, const char *name, const char *path)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(g->ctx);
    tsr_error_t *err = &g->ctx->last_error;
    if (!name || !path)
        return tsr__context_end(g->ctx, TSR_ERR_INVALID_ARG);
    if (tsr_mem_grow(g->mem, (void **)&g->plugins, &g->plugins_cap, g->nplugins + 1,
                     sizeof(*g->plugins)))
        return tsr__context_end(g->ctx, TSR_ERR_NOMEM);
    graph_plugin_t pl = {.name = tsr_mem_strdup(g->mem, name),
                         .path = tsr_mem_strdup(g->mem, path)};
    if (!pl.name || !pl.path) {
        tsr_mem_free(g->mem, pl.name);
        tsr_mem_free(g->mem, pl.path);
        return tsr__context_end(g->ctx, TSR_ERR_NOMEM);
    }
    tsr_status_t rc = load_plugin(g, &pl, err);
    if (rc != TSR_OK) {
        tsr_mem_free(g->mem, pl.name);
        tsr_mem_free(g->mem, pl.path);
        return tsr__context_end(g->ctx, rc);
    }
    g->plugins[g->nplugins++] = pl;
    return tsr__context_end(g->ctx, TSR_OK);
}
