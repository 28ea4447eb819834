/*
 * transport_test.h - what the one-process transport tests share: a
 * transport created (asserted) and a client connected to a listening
 * transport over loopback (the listener's progress must run: its thread,
 * or another thread's waits). Included by test_*.c after cmocka.h.
 */
#ifndef TSR_TEST_TRANSPORT_TEST_H
#define TSR_TEST_TRANSPORT_TEST_H

#include <stdio.h>

#include "transport.h"

static inline tsr_transport_t *test_transport_create(const tsr_transport_params_t *p)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_t *t = NULL;
    tsr_status_t rc = tsr_transport_create(NULL, p, &t, &err);
    if (rc != TSR_OK)
        fprintf(stderr, "transport_create: %s\n", err.message);
    assert_int_equal(rc, TSR_OK);
    return t;
}

static inline tsr_peer_t *test_transport_connect(tsr_transport_t *c, tsr_transport_t *s)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_peer_t *p = NULL;
    tsr_status_t rc =
        tsr_transport_connect(c, "127.0.0.1", tsr_transport_port(s), 20000, &p, &err);
    if (rc != TSR_OK)
        fprintf(stderr, "connect: %s\n", err.message);
    assert_int_equal(rc, TSR_OK);
    return p;
}

#endif /* TSR_TEST_TRANSPORT_TEST_H */
