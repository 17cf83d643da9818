/*
 * json.h - small helpers on jansson with limits and sw_err reporting.
 *
 * Getters return a borrowed pointer or a default; parsers enforce a byte
 * limit and report the position of a syntax error.
 */
#ifndef SW_JSON_H
#define SW_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

/* Parse at most `max_bytes` of JSON; on success *out is a new reference. */
int sw_json_parse(json_t **out, const char *text, size_t len, size_t max_bytes, struct sw_err *err);

/*
 * A deep copy (a new reference), as json_deep_copy() makes it but without
 * its check for reference loops, which formats every container's address
 * into a hash table; the trees this program builds have none.
 */
json_t *sw_json_copy(const json_t *v);

/* Compact serialisation with keys in insertion order; the caller frees. */
char *sw_json_dump(const json_t *v);
/*
 * The same, `head` bytes into an allocation that starts with `head` bytes
 * for the caller's own use (a header): free() the text minus `head`.
 */
char *sw_json_dump_after(const json_t *v, size_t head);

/* Borrowed string member, or `def` when absent or not a string. */
const char *sw_json_str(const json_t *obj, const char *key, const char *def);
/* Integer member, or `def` when absent or not an integer. */
int64_t sw_json_int(const json_t *obj, const char *key, int64_t def);
int sw_json_bool(const json_t *obj, const char *key, int def);

#endif /* SW_JSON_H */
