/*
 * auth.c - token files and HMAC-SHA256 challenge-response (see auth.h).
 *
 * HMAC comes from OpenSSL's libcrypto: a well-kept implementation beats a
 * hand-written SHA-256. Only the one-shot HMAC() and CRYPTO_memcmp are used.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

bool tsr_auth_token_path(const char *explicit_path, char *buf, size_t size)
{
    int n;
    const char *env = getenv("TESSERA_TOKEN_FILE");
    const char *home = getenv("HOME");
    if (explicit_path && explicit_path[0])
        n = snprintf(buf, size, "%s", explicit_path);
    else if (env && env[0])
        n = snprintf(buf, size, "%s", env);
    else if (home && home[0])
        n = snprintf(buf, size, "%s/.config/tessera/token", home);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

tsr_status_t tsr_auth_token_load(const char *path, tsr_token_t *out, tsr_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tsr_error_set(err, TSR_ERR_AUTH, "cannot read the cluster token '%s': %s", path,
                      strerror(errno));
        tsr_error_hint(err, "'tessera cluster up' creates one; or pass --token-file");
        return TSR_ERR_AUTH;
    }
    char buf[TSR_TOKEN_MAX + 2];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0)
        return tsr_error_set(err, TSR_ERR_AUTH, "cannot read the cluster token '%s': %s", path,
                             strerror(errno));
    size_t len = (size_t)n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t'))
        len--;
    if (len < TSR_TOKEN_MIN || len > TSR_TOKEN_MAX)
        return tsr_error_set(err, TSR_ERR_AUTH, "the cluster token in '%s' must be %d to %d bytes",
                             path, TSR_TOKEN_MIN, TSR_TOKEN_MAX);
    memcpy(out->bytes, buf, len);
    out->len = len;
    return TSR_OK;
}

/* mkdir -p of path's parent directories, mode 0700. */
static int make_parents(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

tsr_status_t tsr_auth_token_ensure(const char *path, bool *created, tsr_error_t *err)
{
    *created = false;
    if (access(path, F_OK) == 0)
        return TSR_OK;
    if (make_parents(path) != 0)
        return tsr_error_set(err, TSR_ERR_IO, "cannot create the directory of '%s': %s", path,
                             strerror(errno));
    uint8_t raw[32];
    char hex[sizeof(raw) * 2 + 2];
    if (tsr_auth_random(raw, sizeof(raw)) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_IO, "no randomness for a new token");
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[sizeof(raw) * 2] = '\n';
    /* O_EXCL: two `cluster up` racing never overwrite each other's token */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return TSR_OK;
        return tsr_error_set(err, TSR_ERR_IO, "cannot create the token file '%s': %s", path,
                             strerror(errno));
    }
    ssize_t w = write(fd, hex, sizeof(raw) * 2 + 1);
    int rc = fsync(fd);
    close(fd);
    if (w != (ssize_t)(sizeof(raw) * 2 + 1) || rc != 0) {
        unlink(path);
        return tsr_error_set(err, TSR_ERR_IO, "cannot write the token file '%s'", path);
    }
    *created = true;
    return TSR_OK;
}

tsr_status_t tsr_auth_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return TSR_ERR_IO;
        }
        p += got;
        n -= (size_t)got;
    }
    return TSR_OK;
}

void tsr_auth_mac(const tsr_token_t *tok, const char *label, uint8_t role,
                  const uint8_t a[TSR_NONCE_LEN], const uint8_t b[TSR_NONCE_LEN],
                  uint8_t mac[TSR_MAC_LEN])
{
    uint8_t msg[64 + 1 + 2 * TSR_NONCE_LEN];
    size_t ll = strlen(label);
    if (ll > 64)
        ll = 64;
    memcpy(msg, label, ll);
    msg[ll] = role;
    memcpy(msg + ll + 1, a, TSR_NONCE_LEN);
    memcpy(msg + ll + 1 + TSR_NONCE_LEN, b, TSR_NONCE_LEN);
    unsigned int outlen = TSR_MAC_LEN;
    if (!HMAC(EVP_sha256(), tok->bytes, (int)tok->len, msg, ll + 1 + 2 * TSR_NONCE_LEN, mac,
              &outlen))
        memset(mac, 0, TSR_MAC_LEN); /* never equal to a real MAC check below */
}

bool tsr_auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
    static const uint8_t zero[TSR_MAC_LEN];
    if (CRYPTO_memcmp(a, zero, TSR_MAC_LEN) == 0)
        return false; /* a failed HMAC() */
    return CRYPTO_memcmp(a, b, TSR_MAC_LEN) == 0;
}
