/*
 * route.c - routes: how a request names its sender without UCX's reply
 * endpoint.
 *
 * Why. A request sent with UCP_AM_SEND_FLAG_REPLY carries an 8-byte
 * endpoint-id footer, which UCX looks up on arrival to hand the receiver
 * the endpoint back, and the receiver then searched its peers for that
 * endpoint. The footer also pushed an 8-byte request over one cache line
 * of a shared-memory FIFO element (28-byte element header, UCP's 8-byte AM
 * header, payload, 16-byte call header, footer: 68 bytes): one more
 * cross-core transfer per request. Instead, each side gives the other a
 * route in the handshake (wire.h, "Routes") and requests carry it in the
 * call header (the status word and 4 more bytes: 20 bytes, 64 of FIFO
 * element for an 8-byte request); the receiver indexes its table with it.
 * Measured in docs/transport.md, "Routes".
 *
 * A route is a capability: bits 0-15 are the slot, bits 16-63 random
 * (getrandom), drawn anew each time a slot is given out - and bits 16-31
 * never equal to the slot's previous tag - so a request still in flight
 * from a forgotten peer misses instead of being taken for the slot's new
 * owner's. Without the reply flag nothing else says where a request came
 * from: the 48 random bits are what keeps one peer from naming itself as
 * another (a lock home or a scheduler decides by the requesting peer).
 * Slots are handed out round-robin (a freed slot comes back last). A full
 * table (65536 peers at once), or no random bytes, gives route 0: that
 * peer's requests then name their sender by the reply endpoint.
 *
 * A peer's route is taken back when the peer goes down (nothing it sends
 * is served any more) or is freed, so peers that stay listed DOWN (a failed
 * connect, until destroy) hold no slot.
 */
#include <string.h>
#include <sys/random.h>

#include "internal.h"

#define ROUTE_SLOTS_MAX 65536u
#define ROUTE_SLOTS_FIRST 16u

/* [L] Doubles the table (up to ROUTE_SLOTS_MAX). False when it cannot. */
static bool routes_grow(tsr_transport_t *t)
{
    if (t->nroutes >= ROUTE_SLOTS_MAX)
        return false;
    uint32_t n = t->nroutes ? t->nroutes * 2 : ROUTE_SLOTS_FIRST;
    tsr_peer_t **r = tsr_mem_calloc(t->mem, n, sizeof(*r));
    uint16_t *g = tsr_mem_calloc(t->mem, n, sizeof(*g));
    if (!r || !g) {
        tsr_mem_free(t->mem, r);
        tsr_mem_free(t->mem, g);
        return false;
    }
    if (t->nroutes) {
        memcpy(r, t->routes, t->nroutes * sizeof(*r));
        memcpy(g, t->route_tag, t->nroutes * sizeof(*g));
    }
    tsr_mem_free(t->mem, t->routes);
    tsr_mem_free(t->mem, t->route_tag);
    t->route_next = t->nroutes; /* the new slots come next */
    t->routes = r;
    t->route_tag = g;
    t->nroutes = n;
    return true;
}

void tsr__route_assign_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    p->route = 0;
    uint32_t slot = UINT32_MAX;
    uint64_t rnd;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        goto out; /* no capability without random bits: the reply endpoint */
    for (uint32_t i = 0; i < t->nroutes; i++) {
        uint32_t s = (t->route_next + i) % t->nroutes;
        if (!t->routes[s]) {
            slot = s;
            break;
        }
    }
    if (slot == UINT32_MAX) {
        if (!routes_grow(t))
            goto out; /* no route: the peer's requests use the reply endpoint */
        slot = t->route_next;
    }
    uint16_t tag = (uint16_t)(rnd >> 16);
    if (tag == t->route_tag[slot])
        tag++; /* never the slot's previous tag: a stale route always misses */
    t->route_tag[slot] = tag;
    t->routes[slot] = p;
    t->route_next = (slot + 1) % t->nroutes;
    p->route = (rnd & ~0xffffffffull) | (uint64_t)tag << 16 | slot;
out:
    tsr_wire_put_u64(p->route_wire, p->route);
}

void tsr__route_release_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    if (p->route == 0)
        return;
    uint32_t slot = TSR_WIRE_ROUTE_SLOT(p->route);
    if (slot < t->nroutes && t->routes[slot] == p)
        t->routes[slot] = NULL;
    p->route = 0;
}

void tsr__route_fini(tsr_transport_t *t)
{
    tsr_mem_free(t->mem, t->routes);
    tsr_mem_free(t->mem, t->route_tag);
    t->routes = NULL;
    t->route_tag = NULL;
    t->nroutes = t->route_next = 0;
}
