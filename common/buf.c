/*
 * buf.c - growable byte buffer with a hard cap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/banned.h"

void sw_buf_init(struct sw_buf *b, size_t max)
{
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        b->max = max ? max : SW_BUF_DEFAULT_MAX;
}

void sw_buf_release(struct sw_buf *b)
{
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
}

void sw_buf_reset(struct sw_buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

char *sw_buf_detach(struct sw_buf *b, size_t *len_out)
{
        char *p = b->data ? b->data : sw_xstrdup("");

        if (len_out)
                *len_out = b->len;
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        return p;
}

static int buf_reserve(struct sw_buf *b, size_t extra, struct sw_err *err)
{
        size_t max = b->max ? b->max : SW_BUF_DEFAULT_MAX;
        size_t need;

        if (extra > max || b->len > max - extra)
                return sw_err_set(err, SW_ETOOBIG, "buffer limit of %zu bytes exceeded", max);
        need = b->len + extra + 1;
        if (need <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
                cap *= 2;
        b->data = sw_xrealloc(b->data, cap);
        b->cap = cap;
        return 0;
}

int sw_buf_append(struct sw_buf *b, const void *p, size_t n, struct sw_err *err)
{
        int rc = buf_reserve(b, n, err);

        if (rc)
                return rc;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int sw_buf_puts(struct sw_buf *b, const char *s, struct sw_err *err)
{
        return sw_buf_append(b, s, strlen(s), err);
}

int sw_buf_putc(struct sw_buf *b, char c, struct sw_err *err)
{
        return sw_buf_append(b, &c, 1, err);
}

int sw_buf_vprintf(struct sw_buf *b, struct sw_err *err, const char *fmt, va_list ap)
{
        va_list cp;
        int n, rc;

        va_copy(cp, ap);
        n = vsnprintf(NULL, 0, fmt, cp);
        va_end(cp);
        if (n < 0)
                return sw_err_set(err, SW_EINVAL, "bad format");
        rc = buf_reserve(b, (size_t)n, err);
        if (rc)
                return rc;
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
        return 0;
}

int sw_buf_printf(struct sw_buf *b, struct sw_err *err, const char *fmt, ...)
{
        va_list ap;
        int rc;

        va_start(ap, fmt);
        rc = sw_buf_vprintf(b, err, fmt, ap);
        va_end(ap);
        return rc;
}

const char *sw_buf_str(const struct sw_buf *b)
{
        return b->data ? b->data : "";
}
