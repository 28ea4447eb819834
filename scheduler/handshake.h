/*
 * handshake.h - the cluster token's challenge-response (auth.h) as a
 * protocol on the transport, both sides, shared by every listener that
 * admits peers (the scheduler, sched.c; a worker's own listener, worker.c)
 * and every peer that dials one (clients, client.c; workers joining,
 * worker.c; lock clients dialling the homes, lock_cluster.c):
 *
 *   dialer -> listener  HELLO  {u8 role, cn (32 random bytes)}
 *   listener -> dialer  reply  {sn (32 random bytes), HMAC(token, "tsr-sched" | role | cn | sn)}
 *   dialer -> listener  PROVE  {HMAC(token, "tsr-peer" | role | sn | cn), then what the
 *                               listener wants to know (a worker's join info)}
 *
 * The dialer checks the listener's MAC only after PROVE was accepted (a
 * refused proof is logged by the listener first) and before it trusts
 * anything from it. Nonces are fresh per connection; the token never
 * crosses the wire.
 */
#ifndef TSR_SCHED_HANDSHAKE_H
#define TSR_SCHED_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "transport.h"

/* ---- listener side: one per connection ------------------------------------------ */

typedef struct tsr_hs {
    bool hello;  /* HELLO seen: nonces set */
    bool authed; /* PROVE checked */
    uint8_t role;
    uint8_t cn[TSR_NONCE_LEN];
    uint8_t sn[TSR_NONCE_LEN];
} tsr_hs_t;

#define TSR_HS_HELLO_REPLY (TSR_NONCE_LEN + TSR_MAC_LEN)

/* HELLO's payload: a known role and a nonce, once per connection. Draws sn
 * and fills reply. TSR_ERR_BAD_INPUT: malformed or repeated;
 * TSR_ERR_INTERNAL: no randomness. */
tsr_status_t tsr_hs_hello(tsr_hs_t *hs, const tsr_token_t *tok, const void *data, size_t len,
                          uint8_t reply[TSR_HS_HELLO_REPLY]);
/* PROVE's payload: checks the MAC it starts with; TSR_OK marks hs authed
 * (the rest of the payload, at *rest for *rest_len bytes, is the dialer's join info).
 * TSR_ERR_AUTH: a wrong MAC (hs needs a new HELLO, with fresh nonces);
 * TSR_ERR_BAD_INPUT: out of order or short. */
tsr_status_t tsr_hs_prove(tsr_hs_t *hs, const tsr_token_t *tok, const void *data, size_t len,
                          const uint8_t **rest, size_t *rest_len);

/* ---- dialer side ------------------------------------------------------------------ */

/* Runs the handshake with an already connected peer as role, sending join
 * (may be NULL) after the MAC in PROVE. who names the peer in messages ("the
 * scheduler at HOST:PORT"). Returns TSR_OK, TSR_ERR_AUTH (the peer refused
 * our token or did not prove its own; err says which, with a hint), or
 * TSR_ERR_UNAVAILABLE (no answer in timeout_ms per step, or a malformed one). */
tsr_status_t tsr_hs_dial(tsr_transport_t *t, tsr_peer_t *peer, const tsr_token_t *tok, uint8_t role,
                         const void *join, size_t join_len, int timeout_ms, const char *who,
                         tsr_error_t *err);

#endif /* TSR_SCHED_HANDSHAKE_H */
