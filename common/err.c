/*
 * err.c - the error record: first error wins, context is prepended.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/banned.h"

static void err_vset(struct sw_err *err, int code, const char *fmt, va_list ap)
{
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);

        if (n < 0)
                err->msg[0] = '\0';
        /* Keep the record to one line: a multi-line message breaks JSON logs and CLIs. */
        for (char *p = err->msg; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        err->code = code;
}

int sw_err_set(struct sw_err *err, int code, const char *fmt, ...)
{
        va_list ap;

        if (!err || err->code != 0)
                return code;
        va_start(ap, fmt);
        err_vset(err, code, fmt, ap);
        va_end(ap);
        return code;
}

int sw_err_errno(struct sw_err *err, int code, int errnum, const char *fmt, ...)
{
        va_list ap;
        char reason[128];
        size_t len;

        if (!err || err->code != 0)
                return code;
        va_start(ap, fmt);
        err_vset(err, code, fmt, ap);
        va_end(ap);
        if (strerror_r(errnum, reason, sizeof(reason)) != 0)
                snprintf(reason, sizeof(reason), "errno %d", errnum);
        len = strlen(err->msg);
        snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", reason);
        return code;
}

int sw_err_wrap(struct sw_err *err, const char *fmt, ...)
{
        char ctx[SW_ERR_MSG_MAX];
        char old[SW_ERR_MSG_MAX];
        va_list ap;

        if (!err)
                return SW_EINTERNAL;
        if (err->code == 0)
                err->code = SW_EINTERNAL;
        va_start(ap, fmt);
        if (vsnprintf(ctx, sizeof(ctx), fmt, ap) < 0)
                ctx[0] = '\0';
        va_end(ap);
        memcpy(old, err->msg, sizeof(old));
        /* Truncation is fine here: the message is capped, the start matters most. */
        size_t n = strnlen(ctx, sizeof(ctx) - 3);
        memcpy(err->msg, ctx, n);
        memcpy(err->msg + n, ": ", 2);
        n += 2;
        size_t rest = strnlen(old, sizeof(old));
        if (rest > sizeof(err->msg) - n - 1)
                rest = sizeof(err->msg) - n - 1;
        memcpy(err->msg + n, old, rest);
        err->msg[n + rest] = '\0';
        return err->code;
}

void sw_err_clear(struct sw_err *err)
{
        if (!err)
                return;
        err->code = 0;
        err->msg[0] = '\0';
}

bool sw_err_transient(int code)
{
        switch (code) {
#define SW__ERR_CASE(name, value, transient, desc)                                                 \
        case name:                                                                                 \
                return transient;
                SW_ERRNO_MAP(SW__ERR_CASE)
#undef SW__ERR_CASE
        default:
                return false;
        }
}

const char *sw_err_name(int code)
{
        switch (code) {
#define SW__ERR_CASE(name, value, transient, desc)                                                 \
        case name:                                                                                 \
                return #name;
                SW_ERRNO_MAP(SW__ERR_CASE)
#undef SW__ERR_CASE
        default:
                return "SW_E?";
        }
}

int sw_err_from_errno(int errnum)
{
        switch (errnum) {
        case ENOENT:
                return SW_ENOTFOUND;
        case EEXIST:
                return SW_EEXIST;
        case EACCES:
        case EPERM:
        case EROFS:
                return SW_EPERM;
        case EBUSY:
        case EAGAIN:
        case EINTR:
                return SW_EBUSY;
        case ETIMEDOUT:
                return SW_ETIMEDOUT;
        case EINVAL:
        case ENAMETOOLONG:
        case ENOTDIR:
        case EISDIR:
                return SW_EINVAL;
        case EFBIG:
        case ENOSPC:
        case E2BIG:
                return SW_ETOOBIG;
        case ECONNREFUSED:
        case ECONNRESET:
        case EHOSTUNREACH:
        case ENETUNREACH:
                return SW_EUNAVAIL;
        case ECANCELED:
                return SW_ECANCELED;
        default:
                return SW_EIO;
        }
}
