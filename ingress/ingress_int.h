/*
 * ingress_int.h - what the files of ingress/ share: the table's layout and
 * small helpers. Not for use outside ingress/.
 */
#ifndef SW_INGRESS_INT_H
#define SW_INGRESS_INT_H

#include <stddef.h>

#include "ingress/ingress.h"

/* One source's contribution (normally one Ingress); every string is owned. */
struct ingress__source {
        char *name;      /* "ns/name" */
        char *order_key; /* creationTimestamp, "" when unknown */
        struct ingress_route *routes;
        size_t n_routes;
        struct ingress_tls *tls;
        size_t n_tls;
};

struct ingress_table {
        struct ingress__source *src; /* unsorted; render sorts a copy of the pointers */
        size_t n, cap;
};

/*
 * A printable, bounded copy of untrusted text for error messages: control
 * characters become \n, \t or \xNN, and more than 64 bytes are cut with "...".
 * `out` needs at least 300 bytes.
 */
void ingress__quote(char *out, size_t size, const char *s);
#define INGRESS__QUOTE_MAX 300

/* Compare sources by (order_key, name): the first one wins conflicts. */
int ingress__source_cmp(const void *a, const void *b);

#endif /* SW_INGRESS_INT_H */
