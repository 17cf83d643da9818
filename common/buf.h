/*
 * buf.h - a growable byte buffer with a hard cap.
 *
 * Every buffer that holds user-controlled data has a maximum size; appending
 * past it fails with SW_ETOOBIG and leaves the buffer as it was. The data is
 * always NUL-terminated so it can be used as a C string.
 *
 * Ownership: the caller owns the struct; sw_buf_release() frees the data,
 * sw_buf_detach() hands it over. Threads: one thread at a time.
 */
#ifndef SW_BUF_H
#define SW_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/err.h"

struct sw_buf {
        char *data; /* NUL-terminated, NULL until the first append */
        size_t len;
        size_t cap;
        size_t max; /* 0 means SW_BUF_DEFAULT_MAX */
};

#define SW_BUF_DEFAULT_MAX ((size_t)64 << 20)
#define SW_BUF_INIT                                                                                \
        {                                                                                          \
                NULL, 0, 0, 0                                                                      \
        }

void sw_buf_init(struct sw_buf *b, size_t max);
void sw_buf_release(struct sw_buf *b);
void sw_buf_reset(struct sw_buf *b);
/* Returns the data (never NULL) and leaves the buffer empty; the caller frees. */
char *sw_buf_detach(struct sw_buf *b, size_t *len_out);

int sw_buf_append(struct sw_buf *b, const void *p, size_t n, struct sw_err *err);
int sw_buf_puts(struct sw_buf *b, const char *s, struct sw_err *err);
int sw_buf_putc(struct sw_buf *b, char c, struct sw_err *err);
int sw_buf_printf(struct sw_buf *b, struct sw_err *err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int sw_buf_vprintf(struct sw_buf *b, struct sw_err *err, const char *fmt, va_list ap);

/* A C string view of the buffer: "" when empty. */
const char *sw_buf_str(const struct sw_buf *b);

#endif /* SW_BUF_H */
