/*
 * arena.c - chunked bump allocator with cleanup handlers.
 */
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/mem.h"
#include "common/banned.h"

#define ARENA_CHUNK (16 * 1024)

struct arena_chunk {
        struct arena_chunk *next;
        size_t used;
        size_t size;
        alignas(max_align_t) unsigned char data[];
};

struct arena_cleanup {
        struct arena_cleanup *next;
        void (*fn)(void *arg);
        void *arg;
};

struct sw_arena {
        struct arena_chunk *chunks;
        struct arena_cleanup *cleanups;
};

struct sw_arena *sw_arena_new(void)
{
        return sw_xcalloc(1, sizeof(struct sw_arena));
}

void sw_arena_free(struct sw_arena *a)
{
        if (!a)
                return;
        /* Cleanups first and in reverse order: they may still read arena memory. */
        while (a->cleanups) {
                struct arena_cleanup *c = a->cleanups;
                a->cleanups = c->next;
                c->fn(c->arg);
                free(c);
        }
        while (a->chunks) {
                struct arena_chunk *c = a->chunks;
                a->chunks = c->next;
                free(c);
        }
        free(a);
}

void *sw_arena_alloc(struct sw_arena *a, size_t n)
{
        const size_t align = alignof(max_align_t);
        struct arena_chunk *c = a->chunks;
        size_t need = (n + align - 1) & ~(align - 1);
        void *p;

        if (need < n)
                abort();
        if (!c || c->size - c->used < need) {
                size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
                c = sw_xmalloc(sizeof(*c) + size);
                c->used = 0;
                c->size = size;
                c->next = a->chunks;
                a->chunks = c;
        }
        p = c->data + c->used;
        c->used += need;
        memset(p, 0, n);
        return p;
}

char *sw_arena_strndup(struct sw_arena *a, const char *s, size_t n)
{
        size_t len = strnlen(s, n);
        char *p = sw_arena_alloc(a, len + 1);

        memcpy(p, s, len);
        return p;
}

char *sw_arena_strdup(struct sw_arena *a, const char *s)
{
        return sw_arena_strndup(a, s, strlen(s));
}

char *sw_arena_printf(struct sw_arena *a, const char *fmt, ...)
{
        va_list ap;
        int n;
        char *p;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                abort();
        p = sw_arena_alloc(a, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return p;
}

void sw_arena_on_free(struct sw_arena *a, void (*fn)(void *arg), void *arg)
{
        struct arena_cleanup *c = sw_xmalloc(sizeof(*c));

        c->fn = fn;
        c->arg = arg;
        c->next = a->cleanups;
        a->cleanups = c;
}
