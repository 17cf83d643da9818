/*
 * yaml.c - YAML request bodies (application/yaml, and the
 * application/apply-patch+yaml that server-side apply clients other than
 * kubectl send as YAML), converted to the JSON the rest of the server uses.
 *
 * One document; mappings, sequences and scalars. Plain scalars resolve as
 * YAML 1.2's core schema does (null, true/false, integers, floats, else
 * strings); quoted scalars are strings. Anchors and aliases are refused,
 * as are documents nested deeper than 64 levels (bounded work for
 * untrusted input).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define YAML_MAX_DEPTH 64

static json_t *plain_scalar(const char *s, size_t n)
{
        char *end = NULL;

        if (n == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
            strcmp(s, "NULL") == 0)
                return json_null();
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
                return json_true();
        if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
                return json_false();
        if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && n > 1)) {
                long long v;
                double d;
                errno = 0;
                v = strtoll(s, &end, 10);
                if (!*end && errno == 0)
                        return json_integer((json_int_t)v);
                errno = 0;
                d = strtod(s, &end);
                if (!*end && errno == 0 && strchr(s, 'x') == NULL && strchr(s, 'X') == NULL)
                        return json_real(d);
        }
        return json_stringn(s, n);
}

static int node(json_t **out, yaml_parser_t *p, yaml_event_t *ev, int depth, struct sw_err *err);

static int next(yaml_parser_t *p, yaml_event_t *ev, struct sw_err *err)
{
        if (!yaml_parser_parse(p, ev))
                return sw_err_set(err, SW_EINVAL, "invalid yaml at line %zu: %s",
                                  p->problem_mark.line + 1, p->problem ? p->problem : "?");
        return 0;
}

/* Convert the node that starts with `ev` (consumed). */
static int node(json_t **out, yaml_parser_t *p, yaml_event_t *ev, int depth, struct sw_err *err)
{
        json_t *v = NULL;
        int rc = 0;

        if (depth > YAML_MAX_DEPTH) {
                yaml_event_delete(ev);
                return sw_err_set(err, SW_ETOOBIG, "yaml nested deeper than %d levels",
                                  YAML_MAX_DEPTH);
        }
        switch (ev->type) {
        case YAML_SCALAR_EVENT: {
                const char *s = (const char *)ev->data.scalar.value;
                size_t n = ev->data.scalar.length;
                v = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(s, n)
                                                                     : json_stringn(s, n);
                yaml_event_delete(ev);
                break;
        }
        case YAML_SEQUENCE_START_EVENT:
                yaml_event_delete(ev);
                v = json_array();
                for (;;) {
                        yaml_event_t e;
                        json_t *item = NULL;
                        if ((rc = next(p, &e, err)) != 0)
                                break;
                        if (e.type == YAML_SEQUENCE_END_EVENT) {
                                yaml_event_delete(&e);
                                break;
                        }
                        if ((rc = node(&item, p, &e, depth + 1, err)) != 0)
                                break;
                        json_array_append_new(v, item);
                }
                break;
        case YAML_MAPPING_START_EVENT:
                yaml_event_delete(ev);
                v = json_object();
                for (;;) {
                        yaml_event_t k, e;
                        json_t *val = NULL;
                        char *key;
                        if ((rc = next(p, &k, err)) != 0)
                                break;
                        if (k.type == YAML_MAPPING_END_EVENT) {
                                yaml_event_delete(&k);
                                break;
                        }
                        if (k.type != YAML_SCALAR_EVENT) {
                                yaml_event_delete(&k);
                                rc = sw_err_set(err, SW_EINVAL,
                                                "yaml mapping keys must be "
                                                "scalars");
                                break;
                        }
                        key = strndup((const char *)k.data.scalar.value, k.data.scalar.length);
                        yaml_event_delete(&k);
                        if (!key || (rc = next(p, &e, err)) != 0 ||
                            (rc = node(&val, p, &e, depth + 1, err)) != 0) {
                                free(key);
                                if (!rc)
                                        rc = sw_err_set(err, SW_EINVAL, "out of memory");
                                break;
                        }
                        if (json_object_get(v, key)) {
                                rc = sw_err_set(err, SW_EINVAL, "yaml: duplicate field \"%s\"",
                                                key);
                                free(key);
                                json_decref(val);
                                break;
                        }
                        json_object_set_new(v, key, val);
                        free(key);
                }
                break;
        case YAML_ALIAS_EVENT:
                yaml_event_delete(ev);
                return sw_err_set(err, SW_EINVAL, "yaml aliases are not supported");
        default:
                yaml_event_delete(ev);
                return sw_err_set(err, SW_EINVAL, "unexpected yaml structure");
        }
        if (rc) {
                json_decref(v);
                return rc;
        }
        *out = v;
        return 0;
}

int orch_yaml_to_json(json_t **out, const char *text, size_t len, struct sw_err *err)
{
        yaml_parser_t p;
        yaml_event_t ev;
        json_t *doc = NULL;
        int rc;

        if (!yaml_parser_initialize(&p))
                return sw_err_set(err, SW_EINTERNAL, "cannot initialise the yaml parser");
        yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
        /* stream start, document start, the root node, document end. */
        for (;;) {
                if ((rc = next(&p, &ev, err)) != 0)
                        goto out;
                if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
                        yaml_event_delete(&ev);
                        continue;
                }
                break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
                yaml_event_delete(&ev);
                rc = sw_err_set(err, SW_EINVAL, "the yaml document is empty");
                goto out;
        }
        if ((rc = node(&doc, &p, &ev, 0, err)) != 0)
                goto out;
        if ((rc = next(&p, &ev, err)) != 0)
                goto out;
        if (ev.type == YAML_DOCUMENT_END_EVENT) {
                yaml_event_delete(&ev);
                if ((rc = next(&p, &ev, err)) != 0)
                        goto out;
        }
        if (ev.type != YAML_STREAM_END_EVENT) {
                yaml_event_delete(&ev);
                rc = sw_err_set(err, SW_EINVAL, "the body holds more than one yaml document");
                goto out;
        }
        yaml_event_delete(&ev);
        *out = doc;
        doc = NULL;
out:
        json_decref(doc);
        yaml_parser_delete(&p);
        return rc;
}
