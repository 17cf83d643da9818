/*
 * dns_int.h - helpers shared inside dns/: error translation at the library
 * boundaries, quoting of user values for messages, and the client's zone
 * lookup with its one-entry cache.
 */
#ifndef SW_DNS_INT_H
#define SW_DNS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct dns_client;
struct dns_zone;

/*
 * Copy `s` into out[0..size) for an error message: control characters as
 * \n or \xNN, cut with "..." when too long.
 */
void dns__quote(char *out, size_t size, const char *s);

/* The host an ownership TXT name belongs to ("a-x.y." -> "x.y."), or NULL. */
char *dns__txt_owner_of(const char *txt_name);

/*
 * The zone named `zone` (canonical), from the client's cache or the API;
 * created when missing and `create` is set. The result is borrowed from the
 * client and valid until the next call on it. SW_ENOTFOUND when missing.
 */
int dns__zone_get(const struct dns_zone **out, struct dns_client *c, const char *zone, bool create,
                  struct sw_err *err);
/* Forget the cached zone (after a 404 showed it is gone). */
void dns__zone_forget(struct dns_client *c);

#endif /* SW_DNS_INT_H */
