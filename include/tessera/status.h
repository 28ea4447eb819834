/*
 * tessera/status.h - the one status type of the Tessera API.
 *
 * Every fallible call returns a tsr_status_t: 0 on success, a negative value
 * otherwise. Values are grouped by what they break, and each group maps to one
 * CLI exit code (see tsr_status_exit_code and DESIGN.md):
 *   -1..-9    internal/runtime failures   -> exit 1
 *   -10..-19  bad usage or bad input       -> exit 2
 *   -20..-29  not found                    -> exit 3
 *   -30..-39  refused by state             -> exit 4
 *   -40..-49  unavailable                  -> exit 5
 * The enum and its strings are generated from one X-macro list so they cannot
 * drift apart.
 */
#ifndef TESSERA_STATUS_H
#define TESSERA_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_STATUS_LIST(X)                                                    \
    X(TSR_OK, 0, "ok")                                                        \
    X(TSR_ERR_INTERNAL, -1, "internal error")                                 \
    X(TSR_ERR_NOMEM, -2, "out of memory")                                     \
    X(TSR_ERR_IO, -3, "I/O error")                                            \
    X(TSR_ERR_OVERFLOW, -4, "arithmetic overflow")                            \
    X(TSR_ERR_DEVICE, -5, "device error")                                     \
    X(TSR_ERR_INVALID_ARG, -10, "invalid argument")                           \
    X(TSR_ERR_SYNTAX, -11, "syntax error")                                    \
    X(TSR_ERR_BAD_INPUT, -12, "malformed input")                              \
    X(TSR_ERR_TYPE, -13, "type mismatch")                                     \
    X(TSR_ERR_UNSUPPORTED, -14, "not supported")                              \
    X(TSR_ERR_NOT_FOUND, -20, "not found")                                    \
    X(TSR_ERR_EXISTS, -30, "already exists")                                  \
    X(TSR_ERR_CONFLICT, -31, "conflict")                                      \
    X(TSR_ERR_TIMEOUT, -32, "timed out")                                      \
    X(TSR_ERR_STALE, -33, "stale fencing token")                              \
    X(TSR_ERR_CANCELLED, -34, "cancelled")                                    \
    X(TSR_ERR_UNAVAILABLE, -40, "unavailable")                                \
    X(TSR_ERR_AUTH, -41, "authentication failed")

typedef enum tsr_status {
#define TSR_STATUS_ENUM_(name, value, text) name = value,
    TSR_STATUS_LIST(TSR_STATUS_ENUM_)
#undef TSR_STATUS_ENUM_
} tsr_status_t;

/* A short, static, human-readable description ("syntax error"). Never NULL. */
const char *tsr_status_str(tsr_status_t status);

/* The status' symbolic name ("TSR_ERR_SYNTAX"). Never NULL. */
const char *tsr_status_name(tsr_status_t status);

/* The CLI exit code for a status (0..5, see DESIGN.md). */
int tsr_status_exit_code(tsr_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_STATUS_H */
