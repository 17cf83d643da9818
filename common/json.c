/*
 * json.c - jansson helpers.
 */
#include <stdlib.h>

#include "common/json.h"
#include "common/banned.h"

int sw_json_parse(json_t **out, const char *text, size_t len, size_t max_bytes, struct sw_err *err)
{
        json_error_t jerr;
        json_t *v;

        if (max_bytes && len > max_bytes)
                return sw_err_set(err, SW_ETOOBIG, "json document of %zu bytes exceeds %zu", len,
                                  max_bytes);
        v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!v)
                return sw_err_set(err, SW_EINVAL, "invalid json at line %d column %d: %s",
                                  jerr.line, jerr.column, jerr.text);
        *out = v;
        return 0;
}

char *sw_json_dump(const json_t *v)
{
        return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

const char *sw_json_str(const json_t *obj, const char *key, const char *def)
{
        const json_t *v = json_object_get(obj, key);

        return json_is_string(v) ? json_string_value(v) : def;
}

int64_t sw_json_int(const json_t *obj, const char *key, int64_t def)
{
        const json_t *v = json_object_get(obj, key);

        return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int sw_json_bool(const json_t *obj, const char *key, int def)
{
        const json_t *v = json_object_get(obj, key);

        return json_is_boolean(v) ? json_is_true(v) : def;
}
