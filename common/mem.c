/*
 * mem.c - aborting allocators and secret wiping.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/banned.h"

static void mem_oom(size_t n)
{
        fprintf(stderr, "slipway: out of memory allocating %zu bytes\n", n);
        abort();
}

void *sw_xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (!p)
                mem_oom(n);
        return p;
}

void *sw_xcalloc(size_t count, size_t n)
{
        void *p = calloc(count ? count : 1, n ? n : 1);

        if (!p)
                mem_oom(count * n);
        return p;
}

void *sw_xrealloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);

        if (!q)
                mem_oom(n);
        return q;
}

char *sw_xstrdup(const char *s)
{
        return sw_xstrndup(s, strlen(s));
}

char *sw_xstrndup(const char *s, size_t n)
{
        size_t len = strnlen(s, n);
        char *p = sw_xmalloc(len + 1);

        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

char *sw_xasprintf(const char *fmt, ...)
{
        va_list ap;
        int n;
        char *p;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                mem_oom(0);
        p = sw_xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return p;
}

void sw_wipe(void *p, size_t n)
{
        if (p && n)
                explicit_bzero(p, n);
}

void sw_free_secret(char *s)
{
        if (!s)
                return;
        sw_wipe(s, strlen(s));
        free(s);
}

/* jemalloc's mallctl, looked up so that this file does not depend on it */
typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
static mallctl_fn mem_mallctl;
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;

static void mem_lookup(void)
{
        mem_mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
}

void sw_mem_release(void)
{
        pthread_once(&mem_once, mem_lookup);
        if (mem_mallctl)
                mem_mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* MALLCTL_ARENAS_ALL */
        else
                malloc_trim(0);
}
