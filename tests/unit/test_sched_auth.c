/*
 * test_sched_auth.c - the cluster token and its challenge-response
 * (scheduler/auth.c).
 *
 * Model: OpenSSL's HMAC over the message laid out independently here
 * (label | role | a | b), so the layout in auth.c is checked byte for byte;
 * any change of token, role, label or a nonce bit changes the MAC; token
 * files: trailing whitespace cut, too short/long/missing refused with
 * TSR_ERR_AUTH, created with mode 0600 exactly once; the lookup order
 * --token-file, $TESSERA_TOKEN_FILE, ~/.config/tessera/token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/tsr_auth_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_mac_layout(void **state)
{
    (void)state;
    tsr_token_t tok = {.len = 20};
    memcpy(tok.bytes, "0123456789abcdefghij", 20);
    uint8_t a[TSR_NONCE_LEN], b[TSR_NONCE_LEN], mac[TSR_MAC_LEN], want[TSR_MAC_LEN];
    for (int i = 0; i < TSR_NONCE_LEN; i++) {
        a[i] = (uint8_t)(i * 7 + 1);
        b[i] = (uint8_t)(255 - i);
    }
    uint8_t msg[9 + 1 + 2 * TSR_NONCE_LEN];
    memcpy(msg, "tsr-sched", 9);
    msg[9] = 2;
    memcpy(msg + 10, a, TSR_NONCE_LEN);
    memcpy(msg + 10 + TSR_NONCE_LEN, b, TSR_NONCE_LEN);
    unsigned int n = TSR_MAC_LEN;
    assert_non_null(HMAC(EVP_sha256(), tok.bytes, (int)tok.len, msg, sizeof(msg), want, &n));
    tsr_auth_mac(&tok, "tsr-sched", 2, a, b, mac);
    assert_memory_equal(mac, want, TSR_MAC_LEN);
    assert_true(tsr_auth_mac_equal(mac, want));

    /* every input matters */
    uint8_t other[TSR_MAC_LEN];
    tsr_auth_mac(&tok, "tsr-peer", 2, a, b, other);
    assert_false(tsr_auth_mac_equal(mac, other));
    tsr_auth_mac(&tok, "tsr-sched", 1, a, b, other);
    assert_false(tsr_auth_mac_equal(mac, other));
    tsr_auth_mac(&tok, "tsr-sched", 2, b, a, other);
    assert_false(tsr_auth_mac_equal(mac, other));
    for (int bit = 0; bit < 8 * TSR_NONCE_LEN; bit += 37) {
        uint8_t a2[TSR_NONCE_LEN];
        memcpy(a2, a, sizeof(a2));
        a2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        tsr_auth_mac(&tok, "tsr-sched", 2, a2, b, other);
        assert_false(tsr_auth_mac_equal(mac, other));
    }
    tsr_token_t tok2 = tok;
    tok2.bytes[19] ^= 1;
    tsr_auth_mac(&tok2, "tsr-sched", 2, a, b, other);
    assert_false(tsr_auth_mac_equal(mac, other));
    /* an all-zero MAC (a failed HMAC) never matches, not even itself */
    uint8_t zero[TSR_MAC_LEN] = {0};
    assert_false(tsr_auth_mac_equal(zero, zero));
}

static void test_token_files(void **state)
{
    (void)state;
    char path[128];
    tsr_token_t tok;
    tsr_error_t err;
    snprintf(path, sizeof(path), "%s/tok", dir);
    write_file(path, "0123456789abcdef0123\r\n \t\n");
    tsr_error_clear(&err);
    assert_int_equal(tsr_auth_token_load(path, &tok, &err), TSR_OK);
    assert_int_equal(tok.len, 20);
    assert_memory_equal(tok.bytes, "0123456789abcdef0123", 20);

    write_file(path, "short\n");
    tsr_error_clear(&err);
    assert_int_equal(tsr_auth_token_load(path, &tok, &err), TSR_ERR_AUTH);
    char big[TSR_TOKEN_MAX + 10];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    write_file(path, big);
    tsr_error_clear(&err);
    assert_int_equal(tsr_auth_token_load(path, &tok, &err), TSR_ERR_AUTH);
    tsr_error_clear(&err);
    assert_int_equal(tsr_auth_token_load("/nonexistent/token", &tok, &err), TSR_ERR_AUTH);
    assert_non_null(strstr(err.message, "/nonexistent/token"));

    /* ensure: creates parents 0700 and the file 0600, once */
    char made[160];
    snprintf(made, sizeof(made), "%s/a/b/token", dir);
    bool created = false;
    tsr_error_clear(&err);
    assert_int_equal(tsr_auth_token_ensure(made, &created, &err), TSR_OK);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tsr_auth_token_load(made, &tok, &err), TSR_OK);
    assert_int_equal(tok.len, 64);
    tsr_token_t again;
    assert_int_equal(tsr_auth_token_ensure(made, &created, &err), TSR_OK);
    assert_false(created);
    assert_int_equal(tsr_auth_token_load(made, &again, &err), TSR_OK);
    assert_memory_equal(tok.bytes, again.bytes, tok.len);
}

static void test_token_path(void **state)
{
    (void)state;
    char buf[256];
    setenv("TESSERA_TOKEN_FILE", "/env/token", 1);
    setenv("HOME", "/home/u", 1);
    assert_true(tsr_auth_token_path("/explicit", buf, sizeof(buf)));
    assert_string_equal(buf, "/explicit");
    assert_true(tsr_auth_token_path(NULL, buf, sizeof(buf)));
    assert_string_equal(buf, "/env/token");
    unsetenv("TESSERA_TOKEN_FILE");
    assert_true(tsr_auth_token_path(NULL, buf, sizeof(buf)));
    assert_string_equal(buf, "/home/u/.config/tessera/token");
    assert_false(tsr_auth_token_path("/a/very/long/path", buf, 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac_layout),
        cmocka_unit_test(test_token_files),
        cmocka_unit_test(test_token_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
