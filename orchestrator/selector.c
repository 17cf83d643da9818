/*
 * selector.c - label and field selectors, and label syntax.
 *
 * Label selectors follow the Kubernetes grammar: comma-separated
 * requirements, each `key`, `!key`, `key=value`, `key==value`,
 * `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>N` or `key<N`.
 * Field selectors allow `=`, `==` and `!=` on a fixed set of paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define SEL_MAX_REQS 64
#define SEL_MAX_VALUES 64
#define SEL_TEXT_MAX 4096

enum sel_op { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOT_EXISTS, OP_GT, OP_LT };

struct sel_req {
        char *key;
        enum sel_op op;
        char **values;
        size_t nvalues;
};

struct orch_selector {
        struct sel_req reqs[SEL_MAX_REQS];
        size_t n;
};

void orch_selector_free(struct orch_selector *sel)
{
        if (!sel)
                return;
        for (size_t i = 0; i < sel->n; i++) {
                free(sel->reqs[i].key);
                for (size_t j = 0; j < sel->reqs[i].nvalues; j++)
                        free(sel->reqs[i].values[j]);
                free(sel->reqs[i].values);
        }
        free(sel);
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t';
}

static bool is_key_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == '/';
}

static const char *skip_space(const char *p)
{
        while (is_space(*p))
                p++;
        return p;
}

static void req_add_value(struct sel_req *r, const char *v, size_t n)
{
        r->values = sw_xrealloc(r->values, (r->nvalues + 1) * sizeof(*r->values));
        r->values[r->nvalues++] = sw_xstrndup(v, n);
}

/* A value token: up to ',', ')', or space. */
static const char *read_value(const char **p_io, size_t *n_out)
{
        const char *p = skip_space(*p_io), *start = p;

        while (*p && *p != ',' && *p != ')' && !is_space(*p))
                p++;
        *n_out = (size_t)(p - start);
        *p_io = p;
        return start;
}

static int key_valid(const char *key, struct sw_err *err);
static int value_valid(const char *v, const char *key, struct sw_err *err);

static int parse_req(struct sel_req *r, const char **p_io, bool field, struct sw_err *err)
{
        const char *p = skip_space(*p_io), *start;
        size_t n;

        if (!field && *p == '!') {
                p = skip_space(p + 1);
                r->op = OP_NOT_EXISTS;
        } else {
                r->op = OP_EXISTS;
        }
        start = p;
        while (is_key_char(*p))
                p++;
        if (p == start)
                return sw_err_set(err, SW_EINVAL,
                                  "unable to parse requirement: missing key at \"%s\"", *p_io);
        r->key = sw_xstrndup(start, (size_t)(p - start));
        if (!field && key_valid(r->key, err) != 0)
                return SW_EINVAL;
        p = skip_space(p);
        if (r->op == OP_NOT_EXISTS)
                goto done;
        if (p[0] == '=' && p[1] == '=') {
                r->op = OP_EQ;
                p += 2;
        } else if (p[0] == '=') {
                r->op = OP_EQ;
                p += 1;
        } else if (p[0] == '!' && p[1] == '=') {
                r->op = OP_NE;
                p += 2;
        } else if (!field && (p[0] == '>' || p[0] == '<')) {
                r->op = p[0] == '>' ? OP_GT : OP_LT;
                p += 1;
        } else if (!field && strncmp(p, "in", 2) == 0 && (is_space(p[2]) || p[2] == '(')) {
                r->op = OP_IN;
                p += 2;
        } else if (!field && strncmp(p, "notin", 5) == 0 && (is_space(p[5]) || p[5] == '(')) {
                r->op = OP_NOTIN;
                p += 5;
        } else if (*p == ',' || *p == '\0') {
                if (field)
                        return sw_err_set(err, SW_EINVAL,
                                          "invalid selector: '%s'; can't understand '%s'", *p_io,
                                          r->key);
                goto done;
        } else {
                return sw_err_set(err, SW_EINVAL, "unable to parse requirement: found '%s'", p);
        }
        if (r->op == OP_IN || r->op == OP_NOTIN) {
                p = skip_space(p);
                if (*p != '(')
                        return sw_err_set(err, SW_EINVAL,
                                          "unable to parse requirement: found '%s', expected: '('",
                                          p);
                p++;
                for (;;) {
                        const char *v = read_value(&p, &n);
                        if (r->nvalues >= SEL_MAX_VALUES)
                                return sw_err_set(err, SW_ETOOBIG, "too many values for '%s'",
                                                  r->key);
                        req_add_value(r, v, n);
                        if (value_valid(r->values[r->nvalues - 1], r->key, err) != 0)
                                return SW_EINVAL;
                        p = skip_space(p);
                        if (*p == ',') {
                                p++;
                                continue;
                        }
                        if (*p == ')') {
                                p++;
                                break;
                        }
                        return sw_err_set(err, SW_EINVAL,
                                          "unable to parse requirement: unterminated set for '%s'",
                                          r->key);
                }
        } else {
                const char *v = read_value(&p, &n);
                req_add_value(r, v, n);
                if (!field && value_valid(r->values[0], r->key, err) != 0)
                        return SW_EINVAL;
                if ((r->op == OP_GT || r->op == OP_LT)) {
                        char *end = NULL;
                        strtoll(r->values[0], &end, 10);
                        if (!*r->values[0] || *end)
                                return sw_err_set(err, SW_EINVAL,
                                                  "for 'Gt', 'Lt' operators, the value must be an "
                                                  "integer: '%s'",
                                                  r->values[0]);
                }
        }
done:
        *p_io = skip_space(p);
        return 0;
}

static int parse(struct orch_selector **out, const char *text, bool field,
                 const char *const *allowed, struct sw_err *err)
{
        struct orch_selector *sel = sw_xcalloc(1, sizeof(*sel));
        const char *p = text ? text : "";
        int rc;

        if (strlen(p) > SEL_TEXT_MAX) {
                rc = sw_err_set(err, SW_ETOOBIG, "selector longer than %d bytes", SEL_TEXT_MAX);
                goto fail;
        }
        p = skip_space(p);
        while (*p) {
                struct sel_req *r;

                if (sel->n >= SEL_MAX_REQS) {
                        rc = sw_err_set(err, SW_ETOOBIG, "more than %d selector requirements",
                                        SEL_MAX_REQS);
                        goto fail;
                }
                r = &sel->reqs[sel->n++];
                if ((rc = parse_req(r, &p, field, err)) != 0)
                        goto fail;
                if (field && allowed) {
                        bool ok = false;
                        for (const char *const *a = allowed; *a && !ok; a++)
                                ok = strcmp(*a, r->key) == 0;
                        if (!ok) {
                                rc = sw_err_set(err, SW_EINVAL, "field label not supported: %s",
                                                r->key);
                                goto fail;
                        }
                }
                if (*p == ',') {
                        p = skip_space(p + 1);
                        if (!*p) {
                                rc = sw_err_set(err, SW_EINVAL,
                                                "unable to parse requirement: trailing ','");
                                goto fail;
                        }
                } else if (*p) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "unable to parse requirement: unexpected '%s'", p);
                        goto fail;
                }
        }
        *out = sel;
        return 0;
fail:
        orch_selector_free(sel);
        return rc;
}

int orch_labelsel_parse(struct orch_selector **out, const char *text, struct sw_err *err)
{
        return parse(out, text, false, NULL, err);
}

int orch_fieldsel_parse(struct orch_selector **out, const char *text, const char *const *allowed,
                        struct sw_err *err)
{
        return parse(out, text, true, allowed, err);
}

static bool req_match(const struct sel_req *r, const char *v)
{
        switch (r->op) {
        case OP_EXISTS:
                return v != NULL;
        case OP_NOT_EXISTS:
                return v == NULL;
        case OP_EQ:
                return v && strcmp(v, r->values[0]) == 0;
        case OP_NE:
                return !v || strcmp(v, r->values[0]) != 0;
        case OP_IN:
        case OP_NOTIN: {
                bool found = false;
                if (!v)
                        return r->op == OP_NOTIN;
                for (size_t i = 0; i < r->nvalues && !found; i++)
                        found = strcmp(v, r->values[i]) == 0;
                return r->op == OP_IN ? found : !found;
        }
        case OP_GT:
        case OP_LT: {
                char *end = NULL;
                long long have, want = strtoll(r->values[0], NULL, 10);
                if (!v)
                        return false;
                have = strtoll(v, &end, 10);
                if (!*v || *end)
                        return false;
                return r->op == OP_GT ? have > want : have < want;
        }
        }
        return false;
}

bool orch_labelsel_match(const struct orch_selector *sel, const json_t *labels)
{
        for (size_t i = 0; sel && i < sel->n; i++) {
                const json_t *v = json_object_get(labels, sel->reqs[i].key);
                if (!req_match(&sel->reqs[i], json_is_string(v) ? json_string_value(v) : NULL))
                        return false;
        }
        return true;
}

/* The value at a dotted path as text ("" for absent, like the real server's field sets). */
static void field_value(char *out, size_t size, const json_t *obj, const char *path)
{
        const json_t *v = obj;
        char part[128];
        const char *p = path;

        while (*p && v) {
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                if (n >= sizeof(part))
                        n = sizeof(part) - 1;
                memcpy(part, p, n);
                part[n] = '\0';
                v = json_object_get(v, part);
                p = dot ? dot + 1 : p + n;
        }
        if (json_is_string(v))
                snprintf(out, size, "%s", json_string_value(v));
        else if (json_is_integer(v))
                snprintf(out, size, "%lld", (long long)json_integer_value(v));
        else if (json_is_boolean(v))
                snprintf(out, size, "%s", json_is_true(v) ? "true" : "false");
        else
                out[0] = '\0';
}

bool orch_fieldsel_match(const struct orch_selector *sel, const json_t *obj)
{
        char v[512];

        for (size_t i = 0; sel && i < sel->n; i++) {
                field_value(v, sizeof(v), obj, sel->reqs[i].key);
                if (!req_match(&sel->reqs[i], v))
                        return false;
        }
        return true;
}

int orch_labelsel_from_json(struct orch_selector **out, const json_t *ls, struct sw_err *err)
{
        char *text = orch_labelsel_string(ls);
        int rc = orch_labelsel_parse(out, text, err);

        free(text);
        return rc;
}

char *orch_labelsel_string(const json_t *ls)
{
        struct sw_buf b = SW_BUF_INIT;
        const char *key;
        json_t *v, *expr;
        size_t i;

        json_object_foreach((json_t *)json_object_get(ls, "matchLabels"), key, v)
        {
                sw_buf_printf(&b, NULL, "%s%s=%s", b.len ? "," : "", key,
                              json_is_string(v) ? json_string_value(v) : "");
        }
        json_array_foreach(json_object_get(ls, "matchExpressions"), i, expr)
        {
                const char *op = sw_json_str(expr, "operator", "");
                const char *k = sw_json_str(expr, "key", "");
                json_t *vals = json_object_get(expr, "values"), *x;
                size_t j;

                if (b.len)
                        sw_buf_putc(&b, ',', NULL);
                if (strcmp(op, "Exists") == 0) {
                        sw_buf_puts(&b, k, NULL);
                } else if (strcmp(op, "DoesNotExist") == 0) {
                        sw_buf_printf(&b, NULL, "!%s", k);
                } else {
                        sw_buf_printf(&b, NULL, "%s %s (", k,
                                      strcmp(op, "NotIn") == 0 ? "notin" : "in");
                        json_array_foreach(vals, j, x)
                                sw_buf_printf(&b, NULL, "%s%s", j ? "," : "",
                                              json_is_string(x) ? json_string_value(x) : "");
                        sw_buf_putc(&b, ')', NULL);
                }
        }
        return sw_buf_detach(&b, NULL);
}

/* ---- label syntax --------------------------------------------------------- */

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A qualified name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, 1..63 (0..63 for values). */
static bool name_part_ok(const char *s, size_t n, bool may_be_empty)
{
        if (n == 0)
                return may_be_empty;
        if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

static bool prefix_ok(const char *s, size_t n)
{
        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
        }
        return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

static int key_valid(const char *key, struct sw_err *err)
{
        const char *slash = strchr(key, '/');
        const char *name = slash ? slash + 1 : key;

        if (slash && !prefix_ok(key, (size_t)(slash - key)))
                return sw_err_set(err, SW_EINVAL,
                                  "invalid label key \"%s\": prefix part must be a lowercase "
                                  "RFC 1123 subdomain",
                                  key);
        if (!name_part_ok(name, strlen(name), false))
                return sw_err_set(err, SW_EINVAL,
                                  "invalid label key \"%s\": name part must consist of "
                                  "alphanumeric characters, '-', '_' or '.', and must start and "
                                  "end with an alphanumeric character (at most 63 characters)",
                                  key);
        return 0;
}

static int value_valid(const char *v, const char *key, struct sw_err *err)
{
        if (!name_part_ok(v, strlen(v), true))
                return sw_err_set(err, SW_EINVAL,
                                  "invalid label value: \"%s\" for key \"%s\": a valid label must "
                                  "be an empty string or consist of alphanumeric characters, '-', "
                                  "'_' or '.', and must start and end with an alphanumeric "
                                  "character (at most 63 characters)",
                                  v, key);
        return 0;
}

int orch_labels_valid(const json_t *labels, const char *field, struct sw_err *err)
{
        const char *key;
        json_t *v;

        if (!labels)
                return 0;
        if (!json_is_object(labels))
                return sw_err_set(err, SW_EINVAL, "%s: Invalid value: must be a map of strings",
                                  field);
        json_object_foreach((json_t *)labels, key, v)
        {
                if (!json_is_string(v))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s[%s]: Invalid value: label values must be strings",
                                          field, key);
                if (key_valid(key, err) != 0 || value_valid(json_string_value(v), key, err) != 0)
                        return sw_err_wrap(err, "%s", field);
        }
        return 0;
}

int orch_annotations_valid(const json_t *ann, const char *field, struct sw_err *err)
{
        const char *key;
        json_t *v;
        size_t total = 0;

        if (!ann)
                return 0;
        if (!json_is_object(ann))
                return sw_err_set(err, SW_EINVAL, "%s: Invalid value: must be a map of strings",
                                  field);
        json_object_foreach((json_t *)ann, key, v)
        {
                if (!json_is_string(v))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s[%s]: Invalid value: annotation values must be "
                                          "strings",
                                          field, key);
                if (key_valid(key, err) != 0)
                        return sw_err_wrap(err, "%s", field);
                total += strlen(key) + json_string_length(v);
        }
        if (total > 256 * 1024)
                return sw_err_set(err, SW_EINVAL, "%s: Too long: must have at most 262144 bytes",
                                  field);
        return 0;
}
