/*
 * yaml.c - YAML <-> JSON with libyaml's event API.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/yaml.h"
#include "common/banned.h"

/* ---- scalar typing (YAML 1.2 core schema) ---- */

static int is_null_word(const char *s)
{
        return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
               !strcmp(s, "NULL");
}

static int bool_word(const char *s)
{
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
                return 1;
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
                return 0;
        return -1;
}

static int parse_int(const char *s, json_int_t *out)
{
        char *end = NULL;
        long long v;
        int base = 10;
        const char *p = s;

        if (!*p)
                return 0;
        if (p[0] == '0' && p[1] == 'x')
                base = 16, p += 2;
        else if (p[0] == '0' && p[1] == 'o')
                base = 8, p += 2;
        else if (*p == '-' || *p == '+')
                p++;
        if (!*p)
                return 0;
        for (const char *q = p; *q; q++) {
                if (base == 10 && !(*q >= '0' && *q <= '9'))
                        return 0;
                if (base == 8 && !(*q >= '0' && *q <= '7'))
                        return 0;
                if (base == 16 && !strchr("0123456789abcdefABCDEF", *q))
                        return 0;
        }
        errno = 0;
        v = strtoll(base == 10 ? s : p, &end, base);
        if (errno || *end)
                return 0;
        *out = v;
        return 1;
}

static int parse_float(const char *s, double *out)
{
        char *end = NULL;
        int digits = 0;

        if (!strcmp(s, ".inf") || !strcmp(s, "+.inf") || !strcmp(s, ".Inf")) {
                *out = INFINITY;
                return 1;
        }
        if (!strcmp(s, "-.inf") || !strcmp(s, "-.Inf")) {
                *out = -INFINITY;
                return 1;
        }
        if (!strcmp(s, ".nan") || !strcmp(s, ".NaN"))
                return 0; /* JSON has no NaN; keep it a string */
        /* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
        const char *p = s;
        if (*p == '-' || *p == '+')
                p++;
        while (*p >= '0' && *p <= '9')
                p++, digits++;
        if (*p == '.')
                for (p++; *p >= '0' && *p <= '9'; p++)
                        digits++;
        if (!digits)
                return 0;
        if (*p == 'e' || *p == 'E') {
                p++;
                if (*p == '-' || *p == '+')
                        p++;
                if (!(*p >= '0' && *p <= '9'))
                        return 0;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        if (*p)
                return 0;
        *out = strtod(s, &end);
        return *end == '\0';
}

int sw_yaml_plain_is_typed(const char *s)
{
        json_int_t i;
        double d;

        return is_null_word(s) || bool_word(s) >= 0 || parse_int(s, &i) || parse_float(s, &d);
}

static json_t *scalar_to_json(const yaml_event_t *ev, struct sw_err *err)
{
        const char *v = (const char *)ev->data.scalar.value;
        const char *tag = (const char *)ev->data.scalar.tag;
        json_int_t i;
        double d;
        int b;

        if (tag && strcmp(tag, YAML_STR_TAG) == 0)
                return json_stringn(v, ev->data.scalar.length);
        if (tag && strcmp(tag, YAML_INT_TAG) == 0) {
                if (!parse_int(v, &i))
                        goto bad_tag;
                return json_integer(i);
        }
        if (tag && strcmp(tag, YAML_FLOAT_TAG) == 0) {
                if (!parse_float(v, &d))
                        goto bad_tag;
                return json_real(d);
        }
        if (tag && strcmp(tag, YAML_BOOL_TAG) == 0) {
                if ((b = bool_word(v)) < 0)
                        goto bad_tag;
                return json_boolean(b);
        }
        if (tag && strcmp(tag, YAML_NULL_TAG) == 0)
                return json_null();
        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || (tag && strcmp(tag, "!") == 0))
                return json_stringn(v, ev->data.scalar.length);
        if (is_null_word(v))
                return json_null();
        if ((b = bool_word(v)) >= 0)
                return json_boolean(b);
        if (parse_int(v, &i))
                return json_integer(i);
        if (parse_float(v, &d))
                return json_real(d);
        return json_stringn(v, ev->data.scalar.length);
bad_tag:
        sw_err_set(err, SW_EINVAL, "line %zu: '%s' does not match its tag %s",
                   ev->start_mark.line + 1, v, tag);
        return NULL;
}

/* ---- loading ---- */

struct frame {
        json_t *node;
        char *key; /* pending mapping key, or NULL while a key is expected */
};

static int attach(struct frame *stack, int depth, json_t *v, json_t **doc, const yaml_event_t *ev,
                  const char *what, struct sw_err *err)
{
        if (depth == 0) {
                *doc = v;
                return 0;
        }
        struct frame *f = &stack[depth - 1];
        if (json_is_array(f->node)) {
                json_array_append_new(f->node, v);
                return 0;
        }
        if (!f->key) {
                if (!json_is_string(v)) {
                        json_decref(v);
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: line %zu column %zu: mapping keys must be strings",
                                          what, ev->start_mark.line + 1, ev->start_mark.column + 1);
                }
                f->key = sw_xstrdup(json_string_value(v));
                json_decref(v);
                return 0;
        }
        if (json_object_get(f->node, f->key)) {
                int rc = sw_err_set(err, SW_EINVAL, "%s: line %zu: duplicate key '%s'", what,
                                    ev->start_mark.line + 1, f->key);
                json_decref(v);
                return rc;
        }
        json_object_set_new(f->node, f->key, v);
        free(f->key);
        f->key = NULL;
        return 0;
}

int sw_yaml_load(json_t **docs_out, const char *text, size_t len, const char *what,
                 struct sw_err *err)
{
        yaml_parser_t parser;
        yaml_event_t ev;
        struct frame stack[SW_YAML_MAX_DEPTH];
        json_t *docs = json_array(), *doc = NULL;
        int depth = 0, rc = 0, done = 0;

        if (len > SW_YAML_MAX_BYTES)
                return sw_err_set(err, SW_ETOOBIG, "%s: %zu bytes of YAML exceed %zu", what, len,
                                  SW_YAML_MAX_BYTES);
        yaml_parser_initialize(&parser);
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        while (!done) {
                if (!yaml_parser_parse(&parser, &ev)) {
                        rc = sw_err_set(err, SW_EINVAL, "%s: line %zu column %zu: %s", what,
                                        parser.problem_mark.line + 1,
                                        parser.problem_mark.column + 1,
                                        parser.problem ? parser.problem : "invalid YAML");
                        break;
                }
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = 1;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        doc = NULL;
                        break;
                case YAML_DOCUMENT_END_EVENT:
                        if (doc && !json_is_null(doc))
                                json_array_append(docs, doc);
                        json_decref(doc);
                        doc = NULL;
                        break;
                case YAML_ALIAS_EVENT:
                        rc = sw_err_set(err, SW_EINVAL,
                                        "%s: line %zu: YAML aliases (*name) are not supported",
                                        what, ev.start_mark.line + 1);
                        break;
                case YAML_SCALAR_EVENT: {
                        json_t *v = scalar_to_json(&ev, err);
                        if (!v) {
                                rc = SW_EINVAL;
                                sw_err_wrap(err, "%s", what);
                                break;
                        }
                        rc = attach(stack, depth, v, &doc, &ev, what, err);
                        break;
                }
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                        if (depth == SW_YAML_MAX_DEPTH) {
                                rc = sw_err_set(err, SW_ETOOBIG,
                                                "%s: line %zu: nested deeper than %d levels", what,
                                                ev.start_mark.line + 1, SW_YAML_MAX_DEPTH);
                                break;
                        }
                        stack[depth].node =
                                ev.type == YAML_SEQUENCE_START_EVENT ? json_array() : json_object();
                        stack[depth].key = NULL;
                        depth++;
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        depth--;
                        free(stack[depth].key);
                        rc = attach(stack, depth, stack[depth].node, &doc, &ev, what, err);
                        break;
                default:
                        break;
                }
                yaml_event_delete(&ev);
                if (rc)
                        break;
        }
        while (depth > 0) {
                depth--;
                free(stack[depth].key);
                json_decref(stack[depth].node);
        }
        json_decref(doc);
        yaml_parser_delete(&parser);
        if (rc) {
                json_decref(docs);
                return rc;
        }
        *docs_out = docs;
        return 0;
}

/* ---- dumping ---- */

static int emit_write(void *data, unsigned char *buffer, size_t size)
{
        struct sw_err ignored = SW_ERR_INIT;

        return sw_buf_append(data, buffer, size, &ignored) == 0;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t len, int force_quotes)
{
        yaml_event_t ev;

        yaml_scalar_event_initialize(
                &ev, NULL, (yaml_char_t *)YAML_STR_TAG, (yaml_char_t *)s, (int)len, !force_quotes,
                1, force_quotes ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
        return yaml_emitter_emit(em, &ev);
}

static int emit_value(yaml_emitter_t *em, const json_t *v, int depth)
{
        yaml_event_t ev;
        char num[64];

        if (depth > SW_YAML_MAX_DEPTH)
                return 0;
        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                const char *key;
                const json_t *val;
                yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
                if (!yaml_emitter_emit(em, &ev))
                        return 0;
                json_object_foreach((json_t *)v, key, val)
                {
                        if (!emit_scalar(em, key, strlen(key), sw_yaml_plain_is_typed(key)) ||
                            !emit_value(em, val, depth + 1))
                                return 0;
                }
                yaml_mapping_end_event_initialize(&ev);
                return yaml_emitter_emit(em, &ev);
        }
        case JSON_ARRAY: {
                size_t i;
                const json_t *val;
                yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
                if (!yaml_emitter_emit(em, &ev))
                        return 0;
                json_array_foreach(v, i, val)
                {
                        if (!emit_value(em, val, depth + 1))
                                return 0;
                }
                yaml_sequence_end_event_initialize(&ev);
                return yaml_emitter_emit(em, &ev);
        }
        case JSON_STRING: {
                const char *s = json_string_value(v);
                size_t len = json_string_length(v);
                return emit_scalar(em, s, len, sw_yaml_plain_is_typed(s) || strlen(s) != len);
        }
        case JSON_INTEGER:
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                break;
        case JSON_REAL:
                snprintf(num, sizeof(num), "%.17g", json_real_value(v));
                break;
        case JSON_TRUE:
                snprintf(num, sizeof(num), "true");
                break;
        case JSON_FALSE:
                snprintf(num, sizeof(num), "false");
                break;
        case JSON_NULL:
                snprintf(num, sizeof(num), "null");
                break;
        }
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)num, (int)strlen(num), 1, 0,
                                     YAML_PLAIN_SCALAR_STYLE);
        return yaml_emitter_emit(em, &ev);
}

int sw_yaml_dump(char **out, const json_t *docs, struct sw_err *err)
{
        yaml_emitter_t em;
        yaml_event_t ev;
        struct sw_buf buf;
        size_t i;
        const json_t *doc;
        int ok;

        sw_buf_init(&buf, SW_YAML_MAX_BYTES * 4);
        yaml_emitter_initialize(&em);
        yaml_emitter_set_output(&em, emit_write, &buf);
        yaml_emitter_set_unicode(&em, 1);
        yaml_emitter_set_width(&em, -1);
        yaml_emitter_set_indent(&em, 2);
        yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
        ok = yaml_emitter_emit(&em, &ev);
        json_array_foreach(docs, i, doc)
        {
                if (!ok)
                        break;
                yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, i == 0);
                ok = yaml_emitter_emit(&em, &ev) && emit_value(&em, doc, 0);
                yaml_document_end_event_initialize(&ev, 1);
                ok = ok && yaml_emitter_emit(&em, &ev);
        }
        yaml_stream_end_event_initialize(&ev);
        ok = ok && yaml_emitter_emit(&em, &ev);
        if (!ok) {
                int rc = sw_err_set(err, SW_EINVAL, "emit YAML: %s",
                                    em.problem ? em.problem : "document too large or too deep");
                yaml_emitter_delete(&em);
                sw_buf_release(&buf);
                return rc;
        }
        yaml_emitter_delete(&em);
        *out = sw_buf_detach(&buf, NULL);
        return 0;
}
