/*
 * arena.h - request- and job-scoped memory freed in one call.
 *
 * Allocations come from chunks owned by the arena; cleanups (close an fd,
 * remove a temporary directory, reap a child) are registered on it and run in
 * reverse order when the arena is freed, like nginx's pool cleanups.
 *
 * Ownership: sw_arena_new() returns an arena owned by the caller; free it with
 * sw_arena_free() (accepts NULL). Threads: one thread at a time per arena.
 */
#ifndef SW_ARENA_H
#define SW_ARENA_H

#include <stddef.h>

struct sw_arena;

struct sw_arena *sw_arena_new(void);
void sw_arena_free(struct sw_arena *a);

/* Zeroed memory aligned for any type; aborts on out-of-memory. */
void *sw_arena_alloc(struct sw_arena *a, size_t n);
char *sw_arena_strdup(struct sw_arena *a, const char *s);
char *sw_arena_strndup(struct sw_arena *a, const char *s, size_t n);
char *sw_arena_printf(struct sw_arena *a, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Run fn(arg) when the arena is freed, after every cleanup registered later. */
void sw_arena_on_free(struct sw_arena *a, void (*fn)(void *arg), void *arg);

#endif /* SW_ARENA_H */
