/*
 * err.h - error codes and the error record that carries their message.
 *
 * Every fallible function returns 0 or a negative SW_E* code, and fills the
 * `struct sw_err *err` passed as its last parameter with one lowercase line.
 * The first error wins: later calls to sw_err_set() on a filled record keep
 * the original message, and sw_err_wrap() only prepends context to it.
 * Each code is either transient (worth retrying with backoff) or permanent.
 *
 * Threads: an sw_err belongs to one thread at a time.
 */
#ifndef SW_ERR_H
#define SW_ERR_H

#include <stdbool.h>

/* X(NAME, value, transient, description) */
#define SW_ERRNO_MAP(X)                                                                            \
        X(SW_EINVAL, -1, false, "invalid argument")                                                \
        X(SW_ENOTFOUND, -2, false, "not found")                                                    \
        X(SW_EEXIST, -3, false, "already exists")                                                  \
        X(SW_EBUSY, -4, true, "resource busy")                                                     \
        X(SW_EIO, -5, true, "input/output error")                                                  \
        X(SW_ETIMEDOUT, -6, true, "timed out")                                                     \
        X(SW_ETOOBIG, -7, false, "too big")                                                        \
        X(SW_EAUTH, -8, false, "authentication failed")                                            \
        X(SW_EPROTO, -9, false, "protocol error")                                                  \
        X(SW_ECANCELED, -10, false, "cancelled")                                                   \
        X(SW_EUNAVAIL, -11, true, "service unavailable")                                           \
        X(SW_ECONFLICT, -12, false, "conflict")                                                    \
        X(SW_ECORRUPT, -13, false, "corrupt data")                                                 \
        X(SW_EPERM, -14, false, "permission denied")                                               \
        X(SW_EINTERNAL, -15, false, "internal error")                                              \
        X(SW_ELEASE, -16, true, "lease lost")                                                      \
        X(SW_EFAILED, -17, false, "failed")

enum sw_errno {
#define SW__ERR_ENUM(name, value, transient, desc) name = value,
        SW_ERRNO_MAP(SW__ERR_ENUM)
#undef SW__ERR_ENUM
};

#define SW_ERR_MSG_MAX 1024

struct sw_err {
        int code;                 /* 0 while empty */
        char msg[SW_ERR_MSG_MAX]; /* one line, no trailing newline */
};

#define SW_ERR_INIT                                                                                \
        {                                                                                          \
                0,                                                                                 \
                {                                                                                  \
                        0                                                                          \
                }                                                                                  \
        }

/* Fill `err` (when empty) and return `code`. `err` may be NULL. */
int sw_err_set(struct sw_err *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Fill `err` with `code` and strerror(errnum) appended to the message. */
int sw_err_errno(struct sw_err *err, int code, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Prepend "context: " to the message; returns err->code (or SW_EINTERNAL if empty). */
int sw_err_wrap(struct sw_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sw_err_clear(struct sw_err *err);

/* True for codes that are worth retrying with backoff. */
bool sw_err_transient(int code);

/* "SW_ENOTFOUND" for a code, or "SW_E?" for an unknown one. */
const char *sw_err_name(int code);

/* Map an errno value to the closest SW_E* code. */
int sw_err_from_errno(int errnum);

#endif /* SW_ERR_H */
