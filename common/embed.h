/*
 * embed.h - files compiled into the binary (SQL migrations, default templates).
 *
 * The table is generated from schema/ by cmake/embed.cmake. Names are paths
 * relative to the source root ("schema/migrations/001_jobs.sql").
 */
#ifndef SW_EMBED_H
#define SW_EMBED_H

#include <stddef.h>

struct sw_embedded_file {
        const char *name;
        const char *data; /* NUL-terminated */
        size_t len;
};

/* Terminated by an entry whose name is NULL; sorted by name. */
extern const struct sw_embedded_file sw_embedded[];

/* The file called `name`, or NULL. */
const struct sw_embedded_file *sw_embedded_find(const char *name);

#endif /* SW_EMBED_H */
