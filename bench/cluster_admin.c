/*
 * cluster_admin.c - the benches' kv tables on a running cluster
 * (cluster_admin.h).
 */
#ifdef TSR_HAVE_SCHEDULER
#include "cluster_admin.h"

#include "bench.h"
#include "kv_msg.h"
#include "proto.h"

int tsr_bench_cluster_table(tsr_client_t *c, const char *who, uint8_t op, const char *name,
                            uint32_t partitions, uint32_t replicas, uint32_t max_key,
                            uint32_t max_value)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, op);
    tsr_wbuf_str(&b, name);
    if (op == TSR_KV_OP_CREATE) {
        tsr_wbuf_u32(&b, partitions);
        tsr_wbuf_u32(&b, replicas);
        tsr_wbuf_u32(&b, max_key);
        tsr_wbuf_u32(&b, max_value);
    }
    void *rep = NULL;
    size_t rlen = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc =
        b.failed ? TSR_ERR_NOMEM : tsr_client_call(c, TSR_MSG_KV, b.data, b.len, &rep, &rlen, &e);
    tsr_wbuf_free(&b);
    tsr_mem_free(NULL, rep);
    if (rc != TSR_OK) {
        tsr_bench_error("%s: kv %s '%s': %s%s", who, op == TSR_KV_OP_CREATE ? "create" : "drop",
                        name, e.message,
                        rc == TSR_ERR_EXISTS ? " (drop it: the bench uses its own tables)" : "");
        return -1;
    }
    return 0;
}
#endif
