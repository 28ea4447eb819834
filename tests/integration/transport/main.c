/*
 * main.c - transport_test, the multi-process tests of transport/ on loopback.
 *
 *   transport_test SCENARIO            run a scenario as the driver (ctest)
 *   transport_test role NAME DIR ...   one process of a scenario (exec'ed)
 *
 * Scenarios (UCX_TLS comes from the environment; ctest runs each with TCP
 * only and with shared memory; transport/CMakeLists.txt lists them):
 *   rpc, rma, atomics, failure, badinput, threads, owner (see rpc.c, rma.c,
 *   failure.c, threads.c) and forget, forget_stopped, unregister,
 *   atomic_timeout (lifecycle.c), shmkill (shmkill.c, shared memory only).
 *   Shared helpers: common.h / common.c.
 */
#include "common.h"

typedef struct named_fn {
    const char *name;
    int (*role)(int argc, char **argv);
    int (*scenario)(void);
} named_fn_t;

static const named_fn_t roles[] = {
    {"server", role_server, NULL},
    {"rpc_client", role_rpc_client, NULL},
    {"region_server", role_region_server, NULL},
    {"rma_client", role_rma_client, NULL},
    {"atomic_client", role_atomic_client, NULL},
    {"victim", role_victim, NULL},
    {"fail_client", role_fail_client, NULL},
    {"bad_client", role_bad_client, NULL},
    {"shm_server", role_shm_server, NULL},
    {"steady", role_steady, NULL},
    {"spammer", role_spammer, NULL},
    {"poisoner", role_poisoner, NULL},
};

static const named_fn_t scenarios[] = {
    {"rpc", NULL, scenario_rpc},
    {"rma", NULL, scenario_rma},
    {"atomics", NULL, scenario_atomics},
    {"failure", NULL, scenario_failure},
    {"badinput", NULL, scenario_badinput},
    {"threads", NULL, scenario_threads},
    {"owner", NULL, scenario_owner},
    {"forget", NULL, scenario_forget},
    {"forget_stopped", NULL, scenario_forget_stopped},
    {"unregister", NULL, scenario_unregister},
    {"atomic_timeout", NULL, scenario_atomic_timeout},
    {"shmkill", NULL, scenario_shmkill},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 4 && strcmp(argv[1], "role") == 0) {
        g_role = argv[2];
        g_dir = argv[3];
        alarm(100); /* no child outlives a hang */
        for (size_t i = 0; i < NELEM(roles); i++)
            if (strcmp(g_role, roles[i].name) == 0)
                return roles[i].role(argc - 4, argv + 4);
        fail("unknown role %s", g_role);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: transport_test SCENARIO; scenarios:");
        for (size_t i = 0; i < NELEM(scenarios); i++)
            fprintf(stderr, " %s", scenarios[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    const named_fn_t *sc = NULL;
    for (size_t i = 0; i < NELEM(scenarios); i++)
        if (strcmp(argv[1], scenarios[i].name) == 0)
            sc = &scenarios[i];
    if (!sc) {
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        return 2;
    }
    char tmpl[] = "/tmp/tsr_transport_XXXXXX";
    g_dir = mkdtemp(tmpl);
    CHECK(g_dir, "mkdtemp: %s", strerror(errno));
    double t0 = now_s();
    int rc = sc->scenario();
    kill_all();
    rm_dir();
    printf("transport %s (%s): %s in %.2f s\n", argv[1], tls_name(), rc == 0 ? "ok" : "FAILED",
           now_s() - t0);
    return rc;
}
