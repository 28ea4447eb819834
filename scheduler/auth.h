/*
 * auth.h - the cluster token and the challenge-response that proves it.
 *
 * Every peer that talks to the scheduler (worker join, client request) proves
 * it knows the cluster token without sending it, and the scheduler proves it
 * back (mutual, so a worker never takes tasks from an impostor):
 *
 *   peer -> scheduler  HELLO  {u8 role, client nonce (32 random bytes)}
 *   scheduler -> peer  reply  {server nonce (32), HMAC(token, "tsr-sched" | cn | sn)}
 *   peer -> scheduler  PROVE  {HMAC(token, "tsr-peer" | role | sn | cn), join info}
 *
 * HMAC is HMAC-SHA256 (OpenSSL libcrypto); MACs are compared in constant time.
 * The nonces are fresh per connection (getrandom), so a recorded exchange
 * cannot be replayed. The token is the token file's content with trailing
 * whitespace cut; at least 16 bytes.
 *
 * Token lookup (tsr_auth_token_path): --token-file, else $TESSERA_TOKEN_FILE,
 * else ~/.config/tessera/token.
 */
#ifndef TSR_SCHED_AUTH_H
#define TSR_SCHED_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "proto.h"

#define TSR_TOKEN_MAX 512
#define TSR_TOKEN_MIN 16

typedef struct tsr_token {
    uint8_t bytes[TSR_TOKEN_MAX];
    size_t len;
} tsr_token_t;

/* The token file to use: explicit (may be NULL), then the environment, then
 * the default under $HOME. Writes the path into buf; false when none fits. */
bool tsr_auth_token_path(const char *explicit_path, char *buf, size_t size);

/* Reads the token; TSR_ERR_AUTH (exit 5) when missing, unreadable or short. */
tsr_status_t tsr_auth_token_load(const char *path, tsr_token_t *out, tsr_error_t *err);

/* Creates the token file (mode 0600, parent dirs 0700) with 32 random bytes in
 * hex when it does not exist. *created tells whether it did. */
tsr_status_t tsr_auth_token_ensure(const char *path, bool *created, tsr_error_t *err);

/* Fills buf with n random bytes (getrandom). */
tsr_status_t tsr_auth_random(void *buf, size_t n);

/* mac = HMAC-SHA256(token, label | role | a | b) (role as one byte). */
void tsr_auth_mac(const tsr_token_t *tok, const char *label, uint8_t role,
                  const uint8_t a[TSR_NONCE_LEN], const uint8_t b[TSR_NONCE_LEN],
                  uint8_t mac[TSR_MAC_LEN]);

/* Constant-time comparison of two MACs. */
bool tsr_auth_mac_equal(const uint8_t *a, const uint8_t *b);

#endif /* TSR_SCHED_AUTH_H */
