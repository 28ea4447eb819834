/*
 * handshake.c - the token challenge-response on the transport, both sides
 * (see handshake.h; the MACs are auth.c's).
 */
#include "handshake.h"

#include <string.h>

#include "proto.h"

tsr_status_t tsr_hs_hello(tsr_hs_t *hs, const tsr_token_t *tok, const void *data, size_t len,
                          uint8_t reply[TSR_HS_HELLO_REPLY])
{
    const uint8_t *d = data;
    if (len != 1 + TSR_NONCE_LEN || (d[0] != TSR_ROLE_WORKER && d[0] != TSR_ROLE_CLIENT) ||
        hs->hello)
        return TSR_ERR_BAD_INPUT;
    hs->role = d[0];
    memcpy(hs->cn, d + 1, TSR_NONCE_LEN);
    if (tsr_auth_random(hs->sn, TSR_NONCE_LEN) != TSR_OK)
        return TSR_ERR_INTERNAL;
    hs->hello = true;
    memcpy(reply, hs->sn, TSR_NONCE_LEN);
    tsr_auth_mac(tok, "tsr-sched", hs->role, hs->cn, hs->sn, reply + TSR_NONCE_LEN);
    return TSR_OK;
}

tsr_status_t tsr_hs_prove(tsr_hs_t *hs, const tsr_token_t *tok, const void *data, size_t len,
                          const uint8_t **rest, size_t *rest_len)
{
    if (!hs->hello || hs->authed || len < TSR_MAC_LEN)
        return TSR_ERR_BAD_INPUT;
    uint8_t want[TSR_MAC_LEN];
    tsr_auth_mac(tok, "tsr-peer", hs->role, hs->sn, hs->cn, want);
    if (!tsr_auth_mac_equal(data, want)) {
        hs->hello = false; /* a new HELLO is needed, with fresh nonces */
        return TSR_ERR_AUTH;
    }
    hs->authed = true;
    if (rest) {
        *rest = (const uint8_t *)data + TSR_MAC_LEN;
        *rest_len = len - TSR_MAC_LEN;
    }
    return TSR_OK;
}

static tsr_status_t refused(tsr_error_t *err, const char *who, const char *why)
{
    tsr_error_set(err, TSR_ERR_AUTH, "authentication with %s failed: %s", who, why);
    tsr_error_hint(err, "use the cluster's token file (--token-file, $TESSERA_TOKEN_FILE or "
                        "~/.config/tessera/token)");
    return TSR_ERR_AUTH;
}

tsr_status_t tsr_hs_dial(tsr_transport_t *t, tsr_peer_t *peer, const tsr_token_t *tok, uint8_t role,
                         const void *join, size_t join_len, int timeout_ms, const char *who,
                         tsr_error_t *err)
{
    tsr_error_t e2;
    tsr_error_clear(&e2);
    uint8_t cn[TSR_NONCE_LEN], sn[TSR_NONCE_LEN], smac[TSR_MAC_LEN], mac[TSR_MAC_LEN];
    if (tsr_auth_random(cn, sizeof(cn)) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "no randomness for the handshake");
    uint8_t hello[1 + TSR_NONCE_LEN];
    hello[0] = role;
    memcpy(hello + 1, cn, sizeof(cn));
    tsr_rpc_msg_t reply = {0};
    tsr_status_t rc =
        tsr_rpc_call(t, peer, TSR_MSG_HELLO, hello, sizeof(hello), timeout_ms, &reply, &e2);
    if (rc != TSR_OK || reply.len != TSR_HS_HELLO_REPLY) {
        tsr_rpc_msg_release(t, &reply);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "%s did not answer the handshake%s%s", who,
                             rc != TSR_OK ? ": " : "", rc != TSR_OK ? tsr_status_str(rc) : "");
    }
    memcpy(sn, reply.data, TSR_NONCE_LEN);
    memcpy(smac, (const uint8_t *)reply.data + TSR_NONCE_LEN, TSR_MAC_LEN);
    tsr_rpc_msg_release(t, &reply);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_auth_mac(tok, "tsr-peer", role, sn, cn, mac);
    tsr_wbuf_bytes(&b, mac, sizeof(mac));
    if (join_len)
        tsr_wbuf_bytes(&b, join, join_len);
    if (b.failed) {
        tsr_wbuf_free(&b);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    rc = tsr_rpc_call(t, peer, TSR_MSG_PROVE, b.data, b.len, timeout_ms, &reply, &e2);
    tsr_wbuf_free(&b);
    tsr_rpc_msg_release(t, &reply);
    memset(mac, 0, sizeof(mac));
    if (rc == TSR_ERR_AUTH)
        return refused(err, who, "it refused our token");
    if (rc != TSR_OK)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "%s did not accept the handshake: %s", who,
                             tsr_status_str(rc));
    tsr_auth_mac(tok, "tsr-sched", role, cn, sn, mac);
    if (!tsr_auth_mac_equal(smac, mac))
        return refused(err, who, "it did not prove the token");
    return TSR_OK;
}
