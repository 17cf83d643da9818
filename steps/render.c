/*
 * render.c - fill the Kubernetes templates, and the `render` step.
 *
 * Expansion works on libyaml's event stream: scalars are rewritten, every
 * other event passes through to the emitter. A mapping key is held back
 * until its value is known, so that an unset optional value can drop the
 * pair.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/embed.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/validate.h"
#include "common/yaml.h"
#include "engine/cli.h"
#include "engine/request.h"
#include "steps/render.h"
#include "steps/steps.h"
#include "common/banned.h"

#define TEMPLATE_MAX_BYTES (256 * 1024)
#define TEMPLATES_MAX 64
#define VAR_NAME_MAX 64

/* ---- expansion ---- */

struct held_key {
        bool held;
        char *value;
        size_t length;
        yaml_scalar_style_t style;
        size_t line;
};

struct level {
        bool mapping;
        bool want_key; /* mappings only */
        struct held_key key;
};

struct expander {
        yaml_emitter_t em;
        struct sw_buf out;
        const json_t *vars;
        const char *what;
        struct level stack[SW_YAML_MAX_DEPTH];
        int depth;
        struct sw_err *err;
};

static int write_out(void *data, unsigned char *buffer, size_t size)
{
        struct sw_err ignored = SW_ERR_INIT;

        return sw_buf_append(data, buffer, size, &ignored) == 0;
}

static int emit(struct expander *x, yaml_event_t *ev)
{
        if (!yaml_emitter_emit(&x->em, ev))
                return sw_err_set(x->err, SW_EINVAL, "%s: cannot emit YAML: %s", x->what,
                                  x->em.problem ? x->em.problem : "?");
        return 0;
}

static int emit_string(struct expander *x, const char *s, size_t len, yaml_scalar_style_t style)
{
        yaml_event_t ev;
        bool quote =
                style != YAML_PLAIN_SCALAR_STYLE || sw_yaml_plain_is_typed(s) || strlen(s) != len;

        yaml_scalar_event_initialize(
                &ev, NULL, (yaml_char_t *)YAML_STR_TAG, (yaml_char_t *)s, (int)len, !quote, 1,
                quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
        return emit(x, &ev);
}

static int emit_plain(struct expander *x, const char *s)
{
        yaml_event_t ev;

        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 0,
                                     YAML_PLAIN_SCALAR_STYLE);
        return emit(x, &ev);
}

/* Emit the key held back by the innermost mapping, if any. */
static int flush_key(struct expander *x)
{
        struct level *l;
        int rc;

        if (x->depth == 0)
                return 0;
        l = &x->stack[x->depth - 1];
        if (!l->mapping || !l->key.held)
                return 0;
        rc = emit_string(x, l->key.value, l->key.length, l->key.style);
        free(l->key.value);
        l->key.held = false;
        l->key.value = NULL;
        return rc;
}

/* After a complete value in a mapping, the next scalar is a key again. */
static void value_done(struct expander *x)
{
        if (x->depth > 0 && x->stack[x->depth - 1].mapping)
                x->stack[x->depth - 1].want_key = true;
}

/* A variable's value as text: strings as they are, integers in decimal. NULL when unset. */
static const char *var_text(const json_t *v, char *num, size_t size)
{
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v)) {
                snprintf(num, size, "%lld", (long long)json_integer_value(v));
                return num;
        }
        return NULL;
}

/* Parse "${name}" at s; returns its length or 0, with the name in `name`. */
static size_t placeholder(const char *s, char name[VAR_NAME_MAX])
{
        size_t i = 2;

        if (s[0] != '$' || s[1] != '{')
                return 0;
        while (((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
                (i > 2 && s[i] >= '0' && s[i] <= '9')) &&
               i - 2 < VAR_NAME_MAX - 1)
                i++;
        if (s[i] != '}' || i == 2)
                return 0;
        memcpy(name, s + 2, i - 2);
        name[i - 2] = '\0';
        return i + 1;
}

static int lookup(const json_t **out, struct expander *x, const char *name, size_t line)
{
        const json_t *v = json_object_get(x->vars, name);

        if (!v)
                return sw_err_set(x->err, SW_EINVAL, "%s: line %zu: unknown variable ${%s}",
                                  x->what, line, name);
        *out = v;
        return 0;
}

/* Rewrite one value scalar: whole-placeholder values keep their type; unset ones drop the pair. */
static int expand_scalar(struct expander *x, const yaml_event_t *ev)
{
        const char *s = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length, line = ev->start_mark.line + 1;
        char name[VAR_NAME_MAX], num[32];
        const json_t *v = NULL;
        struct sw_buf text;
        size_t n;
        int rc;

        n = placeholder(s, name);
        if (n && n == len && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                if ((rc = lookup(&v, x, name, line)) != 0)
                        return rc;
                if (json_is_null(v)) {
                        struct level *l = x->depth ? &x->stack[x->depth - 1] : NULL;
                        if (!l)
                                return sw_err_set(x->err, SW_EINVAL,
                                                  "%s: line %zu: ${%s} is not set", x->what, line,
                                                  name);
                        if (l->mapping) {
                                free(l->key.value);
                                l->key.value = NULL;
                                l->key.held = false;
                                l->want_key = true;
                        }
                        return 0; /* the pair (or the list item) is dropped */
                }
                if ((rc = flush_key(x)) != 0)
                        return rc;
                if (json_is_integer(v)) {
                        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                        rc = emit_plain(x, num);
                } else {
                        rc = emit_string(x, json_string_value(v), json_string_length(v),
                                         YAML_PLAIN_SCALAR_STYLE);
                }
                value_done(x);
                return rc;
        }

        sw_buf_init(&text, TEMPLATE_MAX_BYTES);
        for (size_t i = 0; i < len;) {
                const char *t;
                if (s[i] == '$' && s[i + 1] == '$') {
                        rc = sw_buf_putc(&text, '$', x->err);
                        i += 2;
                } else if ((n = placeholder(s + i, name)) != 0) {
                        if ((rc = lookup(&v, x, name, line)) != 0)
                                break;
                        t = var_text(v, num, sizeof(num));
                        if (!t) {
                                rc = sw_err_set(x->err, SW_EINVAL,
                                                "%s: line %zu: ${%s} is not set (an optional "
                                                "variable can only be a whole value)",
                                                x->what, line, name);
                                break;
                        }
                        rc = sw_buf_puts(&text, t, x->err);
                        i += n;
                } else {
                        rc = sw_buf_putc(&text, s[i], x->err);
                        i++;
                }
                if (rc)
                        break;
        }
        if (rc == 0)
                rc = flush_key(x);
        if (rc == 0) {
                /* Literal text keeps its style; text with values gets quotes where needed. */
                rc = emit_string(x, sw_buf_str(&text), text.len,
                                 strcmp(sw_buf_str(&text), s) == 0 ? ev->data.scalar.style
                                                                   : YAML_PLAIN_SCALAR_STYLE);
                /* A plain literal like `80` or `true` keeps its type. */
        }
        sw_buf_release(&text);
        value_done(x);
        return rc;
}

/* A literal plain scalar that is not a string (80, true) must stay what it is. */
static int pass_typed_scalar(struct expander *x, const yaml_event_t *ev, bool *done)
{
        const char *s = (const char *)ev->data.scalar.value;
        int rc;

        *done = false;
        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !sw_yaml_plain_is_typed(s) ||
            strchr(s, '$'))
                return 0;
        *done = true;
        if ((rc = flush_key(x)) != 0)
                return rc;
        rc = emit_plain(x, s);
        value_done(x);
        return rc;
}

static int on_scalar(struct expander *x, const yaml_event_t *ev)
{
        struct level *l = x->depth ? &x->stack[x->depth - 1] : NULL;
        const char *s = (const char *)ev->data.scalar.value;
        bool done;
        int rc;

        if (l && l->mapping && l->want_key) {
                if (strstr(s, "${"))
                        return sw_err_set(x->err, SW_EINVAL,
                                          "%s: line %zu: placeholders are not allowed in keys",
                                          x->what, ev->start_mark.line + 1);
                l->key.held = true;
                l->key.value = sw_xstrndup(s, ev->data.scalar.length);
                l->key.length = ev->data.scalar.length;
                l->key.style = ev->data.scalar.style;
                l->key.line = ev->start_mark.line + 1;
                l->want_key = false;
                return 0;
        }
        if ((rc = pass_typed_scalar(x, ev, &done)) != 0 || done)
                return rc;
        return expand_scalar(x, ev);
}

int step_render_expand(char **yaml_out, const char *tmpl, size_t len, const char *what,
                       const json_t *vars, struct sw_err *err)
{
        struct expander x;
        yaml_parser_t parser;
        yaml_event_t ev;
        int rc = 0, done = 0;

        memset(&x, 0, sizeof(x));
        x.vars = vars;
        x.what = what;
        x.err = err;
        if (len > TEMPLATE_MAX_BYTES)
                return sw_err_set(err, SW_ETOOBIG, "%s: template larger than %d bytes", what,
                                  TEMPLATE_MAX_BYTES);
        sw_buf_init(&x.out, (size_t)TEMPLATE_MAX_BYTES * 16);
        yaml_parser_initialize(&parser);
        yaml_parser_set_input_string(&parser, (const unsigned char *)tmpl, len);
        yaml_emitter_initialize(&x.em);
        yaml_emitter_set_output(&x.em, write_out, &x.out);
        yaml_emitter_set_unicode(&x.em, 1);
        yaml_emitter_set_width(&x.em, -1);
        yaml_emitter_set_indent(&x.em, 2);

        while (!done && rc == 0) {
                if (!yaml_parser_parse(&parser, &ev)) {
                        rc = sw_err_set(err, SW_EINVAL, "%s: line %zu column %zu: %s", what,
                                        parser.problem_mark.line + 1,
                                        parser.problem_mark.column + 1,
                                        parser.problem ? parser.problem : "invalid YAML");
                        break;
                }
                switch (ev.type) {
                case YAML_SCALAR_EVENT:
                        rc = on_scalar(&x, &ev);
                        yaml_event_delete(&ev);
                        break;
                case YAML_ALIAS_EVENT:
                        rc = sw_err_set(err, SW_EINVAL,
                                        "%s: line %zu: YAML aliases are not supported", what,
                                        ev.start_mark.line + 1);
                        yaml_event_delete(&ev);
                        break;
                case YAML_MAPPING_START_EVENT:
                case YAML_SEQUENCE_START_EVENT:
                        if (x.depth && x.stack[x.depth - 1].mapping &&
                            x.stack[x.depth - 1].want_key) {
                                rc = sw_err_set(err, SW_EINVAL,
                                                "%s: line %zu: complex mapping keys are not "
                                                "supported",
                                                what, ev.start_mark.line + 1);
                                yaml_event_delete(&ev);
                                break;
                        }
                        if (x.depth == SW_YAML_MAX_DEPTH) {
                                rc = sw_err_set(err, SW_ETOOBIG, "%s: nested too deep", what);
                                yaml_event_delete(&ev);
                                break;
                        }
                        if ((rc = flush_key(&x)) != 0) {
                                yaml_event_delete(&ev);
                                break;
                        }
                        x.stack[x.depth].mapping = ev.type == YAML_MAPPING_START_EVENT;
                        x.stack[x.depth].want_key = true;
                        x.stack[x.depth].key.held = false;
                        x.stack[x.depth].key.value = NULL;
                        x.depth++;
                        rc = emit(&x, &ev); /* the emitter takes the event */
                        break;
                case YAML_MAPPING_END_EVENT:
                case YAML_SEQUENCE_END_EVENT:
                        x.depth--;
                        free(x.stack[x.depth].key.value);
                        x.stack[x.depth].key.value = NULL;
                        rc = emit(&x, &ev);
                        value_done(&x);
                        break;
                case YAML_STREAM_END_EVENT:
                        done = 1;
                        rc = emit(&x, &ev);
                        break;
                default:
                        rc = emit(&x, &ev);
                        break;
                }
        }
        while (x.depth > 0) {
                x.depth--;
                free(x.stack[x.depth].key.value);
        }
        yaml_parser_delete(&parser);
        yaml_emitter_delete(&x.em);
        if (rc) {
                sw_buf_release(&x.out);
                return rc;
        }
        *yaml_out = sw_buf_detach(&x.out, NULL);
        return 0;
}

/* ---- validation ---- */

struct kind_rule {
        const char *api_version;
        const char *kind;
        bool namespaced;
        bool dns1035_name; /* Services */
        bool label_name;   /* Namespaces: an RFC 1123 label, not a subdomain */
};

static const struct kind_rule kinds[] = {
        {"v1", "Namespace", false, false, true},
        {"v1", "Service", true, true, false},
        {"v1", "ConfigMap", true, false, false},
        {"v1", "Secret", true, false, false},
        {"v1", "ResourceQuota", true, false, false},
        {"v1", "LimitRange", true, false, false},
        {"v1", "ServiceAccount", true, false, false},
        {"apps/v1", "Deployment", true, false, false},
        {"networking.k8s.io/v1", "Ingress", true, false, false},
};

static int valid_label_value(const char *v)
{
        size_t n = strlen(v);

        if (n == 0)
                return 1;
        if (n > 63)
                return 0;
        for (size_t i = 0; i < n; i++) {
                char c = v[i];
                bool alnum =
                        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && !((c == '-' || c == '_' || c == '.') && i > 0 && i < n - 1))
                        return 0;
        }
        return 1;
}

static int check_quantities(const json_t *obj, const char *where, struct sw_err *err)
{
        const char *key;
        const json_t *v;
        char what[256];
        int64_t milli;

        if (!obj)
                return 0;
        if (!json_is_object(obj))
                return sw_err_set(err, SW_EINVAL, "%s: must be a mapping", where);
        json_object_foreach((json_t *)obj, key, v)
        {
                snprintf(what, sizeof(what), "%s.%s", where, key);
                if (json_is_integer(v) && json_integer_value(v) >= 0)
                        continue;
                if (!json_is_string(v))
                        return sw_err_set(err, SW_EINVAL, "%s: not a quantity", what);
                if (sw_quantity_milli(&milli, json_string_value(v), what, err))
                        return SW_EINVAL;
        }
        return 0;
}

static int check_labels(const json_t *labels, const char *where, struct sw_err *err)
{
        const char *key;
        const json_t *v;

        if (!labels)
                return 0;
        json_object_foreach((json_t *)labels, key, v)
        {
                if (!json_is_string(v) || !valid_label_value(json_string_value(v)))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: label %s: value must be at most 63 letters, "
                                          "digits, '-', '_' or '.'",
                                          where, key);
        }
        return 0;
}

static int check_deployment(const json_t *d, const char *where, struct sw_err *err)
{
        const json_t *spec = json_object_get(d, "spec");
        const json_t *pod = json_object_get(json_object_get(spec, "template"), "spec");
        const json_t *containers = json_object_get(pod, "containers"), *c;
        const json_t *replicas = json_object_get(spec, "replicas");
        char what[256];
        size_t i;

        if (replicas && (!json_is_integer(replicas) || json_integer_value(replicas) < 0))
                return sw_err_set(err, SW_EINVAL, "%s: spec.replicas must be a whole number",
                                  where);
        if (check_labels(
                    json_object_get(json_object_get(json_object_get(spec, "template"), "metadata"),
                                    "labels"),
                    where, err))
                return SW_EINVAL;
        if (!json_is_array(containers) || json_array_size(containers) == 0)
                return sw_err_set(err, SW_EINVAL, "%s: no containers", where);
        json_array_foreach(containers, i, c)
        {
                const json_t *res = json_object_get(c, "resources");
                snprintf(what, sizeof(what), "%s: containers[%zu].name", where, i);
                if (sw_valid_dns1123_label(sw_json_str(c, "name", ""), what, err))
                        return SW_EINVAL;
                if (!*sw_json_str(c, "image", ""))
                        return sw_err_set(err, SW_EINVAL, "%s: containers[%zu] has no image", where,
                                          i);
                snprintf(what, sizeof(what), "%s: containers[%zu].resources.requests", where, i);
                if (check_quantities(json_object_get(res, "requests"), what, err))
                        return SW_EINVAL;
                snprintf(what, sizeof(what), "%s: containers[%zu].resources.limits", where, i);
                if (check_quantities(json_object_get(res, "limits"), what, err))
                        return SW_EINVAL;
        }
        return 0;
}

static int check_ingress(const json_t *ing, const char *where, struct sw_err *err)
{
        const json_t *rules = json_object_get(json_object_get(ing, "spec"), "rules"), *r;
        char what[256];
        size_t i;

        json_array_foreach(rules, i, r)
        {
                const char *host = sw_json_str(r, "host", NULL);
                snprintf(what, sizeof(what), "%s: rules[%zu].host", where, i);
                if (host && sw_valid_dns1123_subdomain(host, what, err))
                        return SW_EINVAL;
        }
        return 0;
}

int step_render_validate(const json_t *docs, struct sw_err *err)
{
        const json_t *doc;
        size_t i;

        if (!json_is_array(docs))
                return sw_err_set(err, SW_EINVAL, "rendered documents must be a list");
        json_array_foreach(docs, i, doc)
        {
                const char *api = sw_json_str(doc, "apiVersion", ""),
                           *kind = sw_json_str(doc, "kind", "");
                const json_t *meta = json_object_get(doc, "metadata");
                const char *name = sw_json_str(meta, "name", "");
                const struct kind_rule *rule = NULL;
                char where[160], what[200];

                for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
                        if (!strcmp(kinds[k].api_version, api) && !strcmp(kinds[k].kind, kind))
                                rule = &kinds[k];
                if (!rule)
                        return sw_err_set(err, SW_EINVAL,
                                          "document %zu: apiVersion '%s' kind '%s' is not one "
                                          "slipway deploys",
                                          i + 1, api, kind);
                snprintf(where, sizeof(where), "%s '%s'", kind, name);
                snprintf(what, sizeof(what), "%s: metadata.name", where);
                if (rule->dns1035_name ? sw_valid_dns1035_label(name, what, err)
                    : rule->label_name ? sw_valid_dns1123_label(name, what, err)
                                       : sw_valid_dns1123_subdomain(name, what, err))
                        return SW_EINVAL;
                if (rule->namespaced) {
                        snprintf(what, sizeof(what), "%s: metadata.namespace", where);
                        if (sw_valid_dns1123_label(sw_json_str(meta, "namespace", ""), what, err))
                                return SW_EINVAL;
                }
                if (check_labels(json_object_get(meta, "labels"), where, err))
                        return SW_EINVAL;
                if (!strcmp(kind, "Deployment") && check_deployment(doc, where, err))
                        return SW_EINVAL;
                if (!strcmp(kind, "Ingress") && check_ingress(doc, where, err))
                        return SW_EINVAL;
                if (!strcmp(kind, "ResourceQuota") &&
                    check_quantities(json_object_get(json_object_get(doc, "spec"), "hard"), where,
                                     err))
                        return SW_EINVAL;
        }
        return 0;
}

/* ---- the templates and their variables ---- */

static json_t *render_vars(const struct step_render_input *in, const struct sw_config *cfg,
                           struct sw_err *err)
{
        const json_t *req = in->request;
        json_t *v = json_object();
        json_int_t port = sw_json_int(req, "port", 0);
        char port_text[32];
        char *host;

        if (port <= 0)
                port = in->exposed_port > 0 ? in->exposed_port : 8080;
        snprintf(port_text, sizeof(port_text), "%lld", (long long)port);
        host = sw_json_str(req, "host", NULL)
                       ? sw_xstrdup(sw_json_str(req, "host", ""))
                       : sw_xasprintf("%s.%s.%s", sw_json_str(req, "name", ""),
                                      sw_json_str(req, "namespace", "default"), cfg->domain);
#define STR_OR_NULL(s) ((s) ? json_string(s) : json_null())
        json_object_set_new(v, "name", STR_OR_NULL(sw_json_str(req, "name", NULL)));
        json_object_set_new(v, "namespace", json_string(sw_json_str(req, "namespace", "default")));
        json_object_set_new(v, "image", STR_OR_NULL(in->image));
        json_object_set_new(v, "replicas", json_integer(sw_json_int(req, "replicas", 1)));
        json_object_set_new(v, "port", json_integer(port));
        json_object_set_new(v, "port_text", json_string(port_text));
        json_object_set_new(v, "cpu", STR_OR_NULL(sw_json_str(req, "cpu", NULL)));
        json_object_set_new(v, "memory", STR_OR_NULL(sw_json_str(req, "memory", NULL)));
        json_object_set_new(v, "cpu_limit", STR_OR_NULL(sw_json_str(req, "cpu_limit", NULL)));
        json_object_set_new(v, "memory_limit", STR_OR_NULL(sw_json_str(req, "memory_limit", NULL)));
        json_object_set_new(v, "service_type", json_string(sw_json_str(req, "type", "ClusterIP")));
        json_object_set_new(v, "host", json_string(host));
        json_object_set_new(v, "repo", STR_OR_NULL(sw_json_str(req, "repo", NULL)));
        json_object_set_new(v, "branch", STR_OR_NULL(sw_json_str(req, "branch", NULL)));
        json_object_set_new(
                v, "commit",
                STR_OR_NULL(in->commit ? in->commit : sw_json_str(req, "commit", NULL)));
        if (in->job_id > 0) {
                char id[32];
                snprintf(id, sizeof(id), "%lld", (long long)in->job_id);
                json_object_set_new(v, "job_id", json_string(id));
        } else {
                json_object_set_new(v, "job_id", json_null());
        }
        json_object_set_new(v, "ingress_class", json_string(cfg->ingress_class));
        json_object_set_new(v, "quota_cpu", json_string(cfg->quota_cpu));
        json_object_set_new(v, "quota_memory", json_string(cfg->quota_memory));
        json_object_set_new(v, "quota_pods", json_string(cfg->quota_pods));
        json_object_set_new(v, "default_cpu", json_string(cfg->default_cpu));
        json_object_set_new(v, "default_memory", json_string(cfg->default_memory));
        json_object_set_new(v, "default_cpu_limit", json_string(cfg->default_cpu_limit));
        json_object_set_new(v, "default_memory_limit", json_string(cfg->default_memory_limit));
#undef STR_OR_NULL
        if (sw_valid_dns1123_subdomain(host, "host", err)) {
                free(host);
                json_decref(v);
                return NULL;
        }
        free(host);
        if (!in->image || !*in->image) {
                sw_err_set(err, SW_EINVAL, "no image to deploy");
                json_decref(v);
                return NULL;
        }
        return v;
}

struct template_file {
        char *name; /* "40-deployment.yaml" */
        char *text;
        size_t len;
        char *origin; /* for messages: "built-in", a path */
};

static bool is_yaml_name(const char *n)
{
        size_t len = strlen(n);

        return n[0] != '.' && len > 5 && strcmp(n + len - 5, ".yaml") == 0;
}

/* Replace or add templates from a directory; absent directories are fine. */
static int overlay_dir(struct template_file *t, size_t *n, const char *dir, struct sw_err *err)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int rc = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)) != NULL && rc == 0) {
                char *path;
                struct stat st;
                size_t i;

                if (!is_yaml_name(de->d_name))
                        continue;
                path = sw_xasprintf("%s/%s", dir, de->d_name);
                /* A template is a regular file inside the directory, never a link out of it. */
                if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
                        free(path);
                        continue;
                }
                for (i = 0; i < *n; i++)
                        if (!strcmp(t[i].name, de->d_name))
                                break;
                if (i == *n) {
                        if (*n == TEMPLATES_MAX) {
                                rc = sw_err_set(err, SW_ETOOBIG, "%s: more than %d templates", dir,
                                                TEMPLATES_MAX);
                                free(path);
                                break;
                        }
                        t[i].name = sw_xstrdup(de->d_name);
                        (*n)++;
                } else {
                        free(t[i].text);
                        free(t[i].origin);
                }
                t[i].text = NULL;
                t[i].origin = path;
                rc = sw_read_file(&t[i].text, &t[i].len, path, TEMPLATE_MAX_BYTES, err);
        }
        closedir(d);
        return rc;
}

static int cmp_template(const void *a, const void *b)
{
        return strcmp(((const struct template_file *)a)->name,
                      ((const struct template_file *)b)->name);
}

int step_render_documents(json_t **docs_out, const struct step_render_input *in,
                          const struct sw_config *cfg, struct sw_err *err)
{
        static const char prefix[] = "schema/templates/";
        struct template_file t[TEMPLATES_MAX];
        json_t *vars = NULL, *docs = json_array();
        size_t n = 0;
        int rc = 0;

        memset(t, 0, sizeof(t));
        vars = render_vars(in, cfg, err);
        if (!vars) {
                rc = SW_EINVAL;
                goto out;
        }
        for (const struct sw_embedded_file *f = sw_embedded; f->name && n < TEMPLATES_MAX; f++) {
                if (strncmp(f->name, prefix, sizeof(prefix) - 1) != 0)
                        continue;
                t[n].name = sw_xstrdup(f->name + sizeof(prefix) - 1);
                t[n].text = sw_xstrndup(f->data, f->len);
                t[n].len = f->len;
                t[n].origin = sw_xstrdup(f->name);
                n++;
        }
        if (cfg->templates && (rc = overlay_dir(t, &n, cfg->templates, err)) != 0)
                goto out;
        if (in->repo_dir) {
                char *dir = sw_xasprintf("%s/deploy", in->repo_dir);
                rc = overlay_dir(t, &n, dir, err);
                free(dir);
                if (rc)
                        goto out;
        }
        qsort(t, n, sizeof(t[0]), cmp_template);
        for (size_t i = 0; i < n; i++) {
                char *yaml = NULL;
                json_t *part = NULL;
                rc = step_render_expand(&yaml, t[i].text, t[i].len, t[i].origin, vars, err);
                if (rc == 0)
                        rc = sw_yaml_load(&part, yaml, strlen(yaml), t[i].origin, err);
                free(yaml);
                if (rc)
                        goto out;
                json_array_extend(docs, part);
                json_decref(part);
        }
        rc = step_render_validate(docs, err);
        if (rc)
                goto out;
        *docs_out = docs;
        docs = NULL;
out:
        for (size_t i = 0; i < n; i++) {
                free(t[i].name);
                free(t[i].text);
                free(t[i].origin);
        }
        json_decref(vars);
        json_decref(docs);
        return rc;
}

/* ---- the pipeline step ---- */

static int step_render_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const json_t *req = eng_step_output(ctx, "validate");
        const json_t *clone = eng_step_output(ctx, "clone");
        const json_t *build = eng_step_output(ctx, "build");
        const json_t *push = eng_step_output(ctx, "push");
        struct step_render_input in = {0};
        json_t *docs = NULL;
        const json_t *doc;
        size_t i;
        int rc;

        in.request = req ? req : eng_step_payload(ctx);
        in.image = sw_json_str(push, "image", NULL);
        in.commit = sw_json_str(clone, "commit", NULL);
        in.repo_dir = sw_json_str(clone, "path", NULL);
        in.exposed_port = (int)sw_json_int(build, "port", 0);
        in.job_id = eng_step_job_id(ctx);
        rc = step_render_documents(&docs, &in, eng_step_config(ctx), err);
        if (rc)
                return rc;
        json_array_foreach(docs, i, doc)
        {
                eng_step_log(ctx, "%s %s/%s", sw_json_str(doc, "kind", ""),
                             sw_json_str(json_object_get(doc, "metadata"), "namespace", "-"),
                             sw_json_str(json_object_get(doc, "metadata"), "name", ""));
        }
        *output = json_pack("{s:o}", "documents", docs);
        return 0;
}

const struct eng_step_def step_render_def = {
        .name = "render",
        .summary = "fill the Kubernetes templates",
        .run = step_render_run,
};

/* ---- slipway render ---- */

int step_render_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option own[] = {
                {"image", required_argument, NULL, 'i'},
                {"repo-dir", required_argument, NULL, 'd'},
                {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct option *opts = eng_request_options(own);
        struct step_render_input in = {0};
        struct sw_err err = SW_ERR_INIT;
        json_t *raw = json_object(), *req = NULL, *docs = NULL;
        const char *output = "yaml";
        char *text = NULL;
        int c, r, rc = 2;

        optind = 1;
        while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
                if ((r = eng_request_flag(raw, c, optarg, &err)) != 0) {
                        if (r < 0) {
                                rc = sw_cli_usage_error("render", "%s", err.msg);
                                goto out;
                        }
                        continue;
                }
                switch (c) {
                case 'h':
                        printf("usage: slipway render --name NAME --repo URL --image REF [options]\n\n"
                               "Print the Kubernetes documents a deploy would apply: Namespace,\n"
                               "ResourceQuota, LimitRange, Deployment, Service and Ingress, from the\n"
                               "built-in templates, SLIPWAY_TEMPLATES and the repository's deploy/.\n\n"
                               "%s"
                               "  --image REF            the image to run (by digest: registry/repo@sha256:...)\n"
                               "  --repo-dir DIR         a checkout whose deploy/ directory overrides templates\n"
                               "  -o, --output FORMAT    yaml (default) or json\n",
                               eng_request_flags_help());
                        rc = 0;
                        goto out;
                case 'i':
                        in.image = optarg;
                        break;
                case 'd':
                        in.repo_dir = optarg;
                        break;
                case 'o':
                        output = optarg;
                        if (strcmp(output, "yaml") && strcmp(output, "json")) {
                                rc = sw_cli_usage_error("render", "--output: yaml or json");
                                goto out;
                        }
                        break;
                default:
                        rc = sw_cli_usage_error("render", "unknown option");
                        goto out;
                }
        }
        if (optind != argc) {
                rc = sw_cli_usage_error("render", "unexpected argument '%s'", argv[optind]);
                goto out;
        }
        if (!in.image) {
                rc = sw_cli_usage_error("render", "--image is required");
                goto out;
        }
        if (eng_request_normalize(&req, raw, ENG_REQUEST_FLAGS, &err) != 0) {
                rc = sw_cli_usage_error("render", "%s", err.msg);
                goto out;
        }
        in.request = req;
        rc = 1;
        if (step_render_documents(&docs, &in, cfg, &err) != 0) {
                sw_cli_fail("render", "%s", err.msg);
                goto out;
        }
        if (strcmp(output, "json") == 0) {
                text = json_dumps(docs, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        } else if (sw_yaml_dump(&text, docs, &err) != 0) {
                sw_cli_fail("render", "%s", err.msg);
                goto out;
        }
        fputs(text, stdout);
        if (strcmp(output, "json") == 0)
                fputc('\n', stdout);
        rc = 0;
out:
        free(text);
        free(opts);
        json_decref(raw);
        json_decref(req);
        json_decref(docs);
        return rc;
}
