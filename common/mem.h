/*
 * mem.h - allocation that aborts on out-of-memory, and secret wiping.
 *
 * Running out of memory is not an error slipway tries to recover from: every
 * user-controlled size has its own limit (SW_ETOOBIG) long before that.
 */
#ifndef SW_MEM_H
#define SW_MEM_H

#include <stddef.h>

void *sw_xmalloc(size_t n);
void *sw_xcalloc(size_t count, size_t n);
void *sw_xrealloc(void *p, size_t n);
char *sw_xstrdup(const char *s);
char *sw_xstrndup(const char *s, size_t n);
/* printf into a fresh allocation; the caller frees. */
char *sw_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Overwrite `n` bytes in a way the compiler may not elide. */
void sw_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it; accepts NULL. */
void sw_free_secret(char *s);

/*
 * Give the heap's free pages back to the system now: jemalloc's purge of
 * every arena when the program runs on jemalloc (engine/malloc_conf.c),
 * else glibc's malloc_trim(). For a server that has just gone idle.
 */
void sw_mem_release(void);

#endif /* SW_MEM_H */
