/*
 * json.c - jansson helpers.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"
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

json_t *sw_json_copy(const json_t *v)
{
        json_t *c, *x;
        const char *k;
        size_t i;

        if (!v)
                return NULL;
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                c = json_object();
                json_object_foreach((json_t *)v, k, x)
                        json_object_set_new_nocheck(c, k, sw_json_copy(x));
                return c;
        case JSON_ARRAY:
                c = json_array();
                json_array_foreach(v, i, x) json_array_append_new(c, sw_json_copy(x));
                return c;
        case JSON_STRING:
                return json_stringn_nocheck(json_string_value(v), json_string_length(v));
        case JSON_INTEGER:
        case JSON_REAL:
                return json_copy((json_t *)v);
        default:
                return json_incref((json_t *)v); /* true, false and null are singletons */
        }
}

/*
 * The compact serialisation, written here rather than by json_dumps():
 * the API server dumps every object it stores, and jansson's dumper, a
 * callback per token and a UTF-8 decode per character, was a tenth of its
 * CPU. The text is byte for byte jansson's (tests/unit/common/json_dump).
 */
struct dump {
        char *p;
        size_t len, cap;
};

static void dump_reserve(struct dump *d, size_t n)
{
        if (d->len + n < d->cap)
                return;
        while (d->len + n >= d->cap)
                d->cap = d->cap ? d->cap * 2 : 1024;
        d->p = sw_xrealloc(d->p, d->cap);
}

static void dump_put(struct dump *d, const char *s, size_t n)
{
        dump_reserve(d, n);
        memcpy(d->p + d->len, s, n);
        d->len += n;
}

static void dump_string(struct dump *d, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t start = 0;

        dump_reserve(d, n + 2);
        d->p[d->len++] = '"';
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                char esc[6] = {'\\', 'u', '0', '0', 0, 0};
                size_t elen = 2;

                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                dump_put(d, s + start, i - start);
                switch (c) {
                case '"':
                case '\\':
                        esc[1] = (char)c;
                        break;
                case '\b':
                        esc[1] = 'b';
                        break;
                case '\f':
                        esc[1] = 'f';
                        break;
                case '\n':
                        esc[1] = 'n';
                        break;
                case '\r':
                        esc[1] = 'r';
                        break;
                case '\t':
                        esc[1] = 't';
                        break;
                default:
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 15];
                        elen = 6;
                }
                dump_put(d, esc, elen);
                start = i + 1;
        }
        dump_put(d, s + start, n - start);
        dump_put(d, "\"", 1);
}

static void dump_value(struct dump *d, const json_t *v)
{
        char num[32];
        const char *k;
        json_t *x;
        size_t i;
        bool first = true;

        switch (json_typeof(v)) {
        case JSON_OBJECT:
                dump_put(d, "{", 1);
                json_object_foreach((json_t *)v, k, x)
                {
                        if (!first)
                                dump_put(d, ",", 1);
                        first = false;
                        dump_string(d, k, strlen(k));
                        dump_put(d, ":", 1);
                        dump_value(d, x);
                }
                dump_put(d, "}", 1);
                break;
        case JSON_ARRAY:
                dump_put(d, "[", 1);
                json_array_foreach(v, i, x)
                {
                        if (i)
                                dump_put(d, ",", 1);
                        dump_value(d, x);
                }
                dump_put(d, "]", 1);
                break;
        case JSON_STRING:
                dump_string(d, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                dump_put(d, num,
                         (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                                          json_integer_value(v)));
                break;
        case JSON_REAL: {
                /* jansson's own shortest round-trip form */
                char *r = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                if (r)
                        dump_put(d, r, strlen(r));
                free(r);
                break;
        }
        case JSON_TRUE:
                dump_put(d, "true", 4);
                break;
        case JSON_FALSE:
                dump_put(d, "false", 5);
                break;
        case JSON_NULL:
                dump_put(d, "null", 4);
                break;
        }
}

char *sw_json_dump(const json_t *v)
{
        return sw_json_dump_after(v, 0);
}

/*
 * Each thread dumps into a buffer of its own that it keeps, and the text
 * is copied out at its size: no doubling of a fresh buffer per dump, and
 * no slack in texts that live long. A text past DUMP_KEEP takes the
 * buffer itself, trimmed, and the thread starts a new one next time.
 */
#define DUMP_KEEP ((size_t)64 << 10)

static pthread_key_t dump_key;
static pthread_once_t dump_once = PTHREAD_ONCE_INIT;

static void dump_scratch_free(void *arg)
{
        struct dump *d = arg;

        free(d->p);
        free(d);
}

static void dump_key_make(void)
{
        pthread_key_create(&dump_key, dump_scratch_free);
}

char *sw_json_dump_after(const json_t *v, size_t head)
{
        struct dump *d;
        char *out;

        if (!v)
                return NULL;
        pthread_once(&dump_once, dump_key_make);
        d = pthread_getspecific(dump_key);
        if (!d) {
                d = sw_xcalloc(1, sizeof(*d));
                pthread_setspecific(dump_key, d);
        }
        d->len = 0;
        dump_reserve(d, head);
        d->len = head;
        dump_value(d, v);
        dump_reserve(d, 1);
        d->p[d->len] = '\0';
        if (d->len < DUMP_KEEP) {
                out = sw_xmalloc(d->len + 1);
                memcpy(out + head, d->p + head, d->len + 1 - head);
        } else {
                out = sw_xrealloc(d->p, d->len + 1);
                d->p = NULL;
                d->cap = 0;
        }
        return out + head;
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
