/*
 * patch.c - the three patch formats kubectl sends: RFC 6902 JSON patch,
 * RFC 7386 JSON merge patch, and Kubernetes strategic merge patch.
 *
 * Strategic merge patch is a merge patch that knows the schema: lists of
 * objects tagged `patchStrategy:merge` with a `patchMergeKey` (containers
 * by name, container ports by containerPort) are merged element by element
 * instead of replaced, and the patch may carry directives ($patch,
 * $setElementOrder/<list>, $retainKeys, $deleteFromPrimitiveList/<list>).
 * The schema tables below transcribe the patch tags of the Kubernetes API
 * types we serve; fields not listed behave as in a JSON merge patch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define PATCH_MAX_DEPTH 64

/* ---- schema --------------------------------------------------------------- */

#define M ORCH_SMP_MERGE
#define R ORCH_SMP_RETAIN_KEYS

static const struct orch_smp_field meta_f[] = {
        {"finalizers", NULL, M, NULL},
        {"ownerReferences", "uid", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type meta_t = {meta_f};

static const struct orch_smp_field container_f[] = {
        {"ports", "containerPort", M, NULL},
        {"env", "name", M, NULL},
        {"volumeMounts", "mountPath", M, NULL},
        {"volumeDevices", "devicePath", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type container_t = {container_f};

static const struct orch_smp_field podspec_f[] = {
        {"containers", "name", M, &container_t},
        {"initContainers", "name", M, &container_t},
        {"ephemeralContainers", "name", M, &container_t},
        {"volumes", "name", M | R, NULL},
        {"imagePullSecrets", "name", M, NULL},
        {"hostAliases", "ip", M, NULL},
        {"topologySpreadConstraints", "topologyKey", M, NULL},
        {"resourceClaims", "name", M | R, NULL},
        {"schedulingGates", "name", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type podspec_t = {podspec_f};

static const struct orch_smp_field conditions_f[] = {
        {"conditions", "type", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type conditions_t = {conditions_f};

static const struct orch_smp_field podstatus_f[] = {
        {"conditions", "type", M, NULL},
        {"podIPs", "ip", M, NULL},
        {"hostIPs", "ip", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type podstatus_t = {podstatus_f};

static const struct orch_smp_field template_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &podspec_t},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type template_t = {template_f};

static const struct orch_smp_field pod_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &podspec_t},
        {"status", NULL, 0, &podstatus_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_pod = {pod_f};

static const struct orch_smp_field deployspec_f[] = {
        {"template", NULL, 0, &template_t},
        {"strategy", NULL, R, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type deployspec_t = {deployspec_f};

static const struct orch_smp_field deployment_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &deployspec_t},
        {"status", NULL, 0, &conditions_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_deployment = {deployment_f};

static const struct orch_smp_field rsspec_f[] = {
        {"template", NULL, 0, &template_t},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type rsspec_t = {rsspec_f};

static const struct orch_smp_field replicaset_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &rsspec_t},
        {"status", NULL, 0, &conditions_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_replicaset = {replicaset_f};

static const struct orch_smp_field servicespec_f[] = {
        {"ports", "port", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type servicespec_t = {servicespec_f};

static const struct orch_smp_field service_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &servicespec_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_service = {service_f};

static const struct orch_smp_field nodespec_f[] = {
        {"podCIDRs", NULL, M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type nodespec_t = {nodespec_f};

static const struct orch_smp_field nodestatus_f[] = {
        {"conditions", "type", M, NULL},
        {"addresses", "type", M, NULL},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type nodestatus_t = {nodestatus_f};

static const struct orch_smp_field node_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &nodespec_t},
        {"status", NULL, 0, &nodestatus_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_node = {node_f};

static const struct orch_smp_field namespace_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"status", NULL, 0, &conditions_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_namespace = {namespace_f};

static const struct orch_smp_field jobspec_f[] = {
        {"template", NULL, 0, &template_t},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type jobspec_t = {jobspec_f};

static const struct orch_smp_field job_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &jobspec_t},
        {"status", NULL, 0, &conditions_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_job = {job_f};

static const struct orch_smp_field jobtemplate_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &jobspec_t},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type jobtemplate_t = {jobtemplate_f};

static const struct orch_smp_field cronspec_f[] = {
        {"jobTemplate", NULL, 0, &jobtemplate_t},
        {NULL, NULL, 0, NULL},
};
static const struct orch_smp_type cronspec_t = {cronspec_f};

static const struct orch_smp_field cronjob_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {"spec", NULL, 0, &cronspec_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_cronjob = {cronjob_f};

static const struct orch_smp_field generic_f[] = {
        {"metadata", NULL, 0, &meta_t},
        {NULL, NULL, 0, NULL},
};
const struct orch_smp_type orch_smp_generic = {generic_f};

#undef M
#undef R

const struct orch_smp_field *orch_smp_field(const struct orch_smp_type *t, const char *name)
{
        for (const struct orch_smp_field *f = t ? t->fields : NULL; f && f->name; f++)
                if (strcmp(f->name, name) == 0)
                        return f;
        return NULL;
}

/* ---- JSON merge patch (RFC 7386) ------------------------------------------ */

static json_t *merge_rec(const json_t *target, const json_t *patch, int depth)
{
        json_t *out;
        const char *key;
        json_t *v;

        if (!json_is_object(patch) || depth > PATCH_MAX_DEPTH)
                return sw_json_copy(patch);
        out = json_is_object(target) ? sw_json_copy(target) : json_object();
        json_object_foreach((json_t *)patch, key, v)
        {
                if (json_is_null(v))
                        json_object_del(out, key);
                else
                        json_object_set_new(out, key,
                                            merge_rec(json_object_get(out, key), v, depth + 1));
        }
        return out;
}

int orch_merge_patch(json_t **out, const json_t *target, const json_t *patch, struct sw_err *err)
{
        if (!json_is_object(patch))
                return sw_err_set(err, SW_EINVAL, "a merge patch must be a JSON object");
        *out = merge_rec(target, patch, 0);
        return 0;
}

/* ---- JSON patch (RFC 6902) ------------------------------------------------ */

/* Split a JSON pointer into its unescaped tokens; returns the count or -1. */
static int pointer_split(char ***out, const char *ptr)
{
        char **toks = NULL;
        int n = 0;
        const char *p = ptr;

        if (*p == '\0') {
                *out = NULL;
                return 0;
        }
        if (*p != '/')
                return -1;
        while (*p == '/') {
                const char *end = strchr(p + 1, '/');
                size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
                char *t = sw_xmalloc(len + 1), *w = t;

                for (size_t i = 0; i < len; i++) {
                        char c = p[1 + i];
                        if (c == '~' && i + 1 < len && (p[2 + i] == '0' || p[2 + i] == '1')) {
                                *w++ = p[2 + i] == '0' ? '~' : '/';
                                i++;
                        } else if (c == '~') {
                                free(t);
                                for (int k = 0; k < n; k++)
                                        free(toks[k]);
                                free(toks);
                                return -1;
                        } else {
                                *w++ = c;
                        }
                }
                *w = '\0';
                toks = sw_xrealloc(toks, (size_t)(n + 1) * sizeof(*toks));
                toks[n++] = t;
                p = end ? end : p + 1 + len;
        }
        *out = toks;
        return n;
}

static void toks_free(char **toks, int n)
{
        for (int i = 0; i < n; i++)
                free(toks[i]);
        free(toks);
}

/* Array index token: digits only, or "-" (== size) when `dash_ok`. -1 when invalid. */
static long array_index(const char *t, size_t size, bool dash_ok)
{
        char *end = NULL;
        long i;

        if (dash_ok && strcmp(t, "-") == 0)
                return (long)size;
        if (!*t || (t[0] == '0' && t[1]) || t[0] < '0' || t[0] > '9')
                return -1;
        i = strtol(t, &end, 10);
        return *end ? -1 : i;
}

/* The parent container of the pointer's last token, or NULL. */
static json_t *pointer_parent(json_t *doc, char **toks, int n)
{
        json_t *v = doc;

        for (int i = 0; i < n - 1 && v; i++) {
                if (json_is_object(v)) {
                        v = json_object_get(v, toks[i]);
                } else if (json_is_array(v)) {
                        long idx = array_index(toks[i], json_array_size(v), false);
                        v = idx < 0 ? NULL : json_array_get(v, (size_t)idx);
                } else {
                        v = NULL;
                }
        }
        return v;
}

static json_t *pointer_get(json_t *doc, const char *ptr)
{
        char **toks = NULL;
        int n = pointer_split(&toks, ptr);
        json_t *parent, *v = NULL;

        if (n < 0)
                return NULL;
        if (n == 0)
                return doc;
        parent = pointer_parent(doc, toks, n);
        if (json_is_object(parent)) {
                v = json_object_get(parent, toks[n - 1]);
        } else if (json_is_array(parent)) {
                long idx = array_index(toks[n - 1], json_array_size(parent), false);
                v = idx < 0 ? NULL : json_array_get(parent, (size_t)idx);
        }
        toks_free(toks, n);
        return v;
}

/* add/remove on *doc (which may be replaced for the root pointer); `val` is stolen. */
static int pointer_add(json_t **doc, const char *ptr, json_t *val, bool replace, struct sw_err *err)
{
        char **toks = NULL;
        int n = pointer_split(&toks, ptr), rc = 0;
        json_t *parent;

        if (n < 0) {
                json_decref(val);
                return sw_err_set(err, SW_EINVAL, "invalid JSON pointer \"%s\"", ptr);
        }
        if (n == 0) {
                json_decref(*doc);
                *doc = val;
                return 0;
        }
        parent = pointer_parent(*doc, toks, n);
        if (json_is_object(parent)) {
                if (replace && !json_object_get(parent, toks[n - 1]))
                        rc = sw_err_set(err, SW_EINVAL,
                                        "replace operation does not apply: doc is missing key: %s",
                                        ptr);
                else
                        json_object_set_new(parent, toks[n - 1], val);
        } else if (json_is_array(parent)) {
                size_t size = json_array_size(parent);
                long idx = array_index(toks[n - 1], size, !replace);
                if (idx < 0 || (size_t)idx > size || (replace && (size_t)idx >= size))
                        rc = sw_err_set(err, SW_EINVAL, "index out of range in \"%s\"", ptr);
                else if (replace)
                        json_array_set_new(parent, (size_t)idx, val);
                else
                        json_array_insert_new(parent, (size_t)idx, val);
        } else {
                rc = sw_err_set(err, SW_EINVAL, "doc is missing path: \"%s\"", ptr);
        }
        if (rc)
                json_decref(val);
        toks_free(toks, n);
        return rc;
}

static int pointer_remove(json_t *doc, const char *ptr, struct sw_err *err)
{
        char **toks = NULL;
        int n = pointer_split(&toks, ptr), rc = 0;
        json_t *parent;

        if (n <= 0)
                return sw_err_set(err, SW_EINVAL, "cannot remove \"%s\"", ptr);
        parent = pointer_parent(doc, toks, n);
        if (json_is_object(parent) && json_object_get(parent, toks[n - 1])) {
                json_object_del(parent, toks[n - 1]);
        } else if (json_is_array(parent)) {
                long idx = array_index(toks[n - 1], json_array_size(parent), false);
                if (idx < 0 || (size_t)idx >= json_array_size(parent))
                        rc = sw_err_set(err, SW_EINVAL, "index out of range in \"%s\"", ptr);
                else
                        json_array_remove(parent, (size_t)idx);
        } else {
                rc = sw_err_set(err, SW_EINVAL,
                                "remove operation does not apply: doc is missing path: \"%s\"",
                                ptr);
        }
        toks_free(toks, n);
        return rc;
}

int orch_json_patch(json_t **out, const json_t *target, const json_t *ops, struct sw_err *err)
{
        json_t *doc = sw_json_copy(target), *op;
        size_t i;
        int rc = 0;

        if (!json_is_array(ops)) {
                json_decref(doc);
                return sw_err_set(err, SW_EINVAL, "a JSON patch must be an array of operations");
        }
        json_array_foreach(ops, i, op)
        {
                const char *name = sw_json_str(op, "op", ""), *path = sw_json_str(op, "path", NULL);
                const char *from = sw_json_str(op, "from", NULL);
                json_t *value = json_object_get(op, "value"), *src;

                if (!path) {
                        rc = sw_err_set(err, SW_EINVAL, "operation %zu: missing \"path\"", i);
                        break;
                }
                if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
                        if (!value) {
                                rc = sw_err_set(err, SW_EINVAL, "operation %zu: missing \"value\"",
                                                i);
                                break;
                        }
                        rc = pointer_add(&doc, path, sw_json_copy(value), name[0] == 'r', err);
                } else if (strcmp(name, "remove") == 0) {
                        rc = pointer_remove(doc, path, err);
                } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
                        src = from ? pointer_get(doc, from) : NULL;
                        if (!src) {
                                rc = sw_err_set(err, SW_EINVAL,
                                                "operation %zu: \"from\" path %s does not exist", i,
                                                from ? from : "(missing)");
                                break;
                        }
                        src = sw_json_copy(src);
                        if (name[0] == 'm' && (rc = pointer_remove(doc, from, err)) != 0) {
                                json_decref(src);
                                break;
                        }
                        rc = pointer_add(&doc, path, src, false, err);
                } else if (strcmp(name, "test") == 0) {
                        src = pointer_get(doc, path);
                        if (!src || !value || !json_equal(src, value))
                                rc = sw_err_set(err, SW_ECONFLICT,
                                                "testing value %s failed: test operation failed",
                                                path);
                } else {
                        rc = sw_err_set(err, SW_EINVAL, "operation %zu: unknown op \"%s\"", i,
                                        name);
                }
                if (rc)
                        break;
        }
        if (rc) {
                json_decref(doc);
                return rc;
        }
        *out = doc;
        return 0;
}

/* ---- strategic merge patch ------------------------------------------------ */

#define SMP_DELETE 1 /* the map asked to be deleted ($patch: delete) */

static int smp_map(json_t **io, const json_t *patch, const struct orch_smp_type *t, int depth,
                   struct sw_err *err);

static bool is_directive(const char *key)
{
        return key[0] == '$';
}

/* Remove directive keys recursively (for values added as a whole). */
static json_t *strip_directives(const json_t *v)
{
        if (json_is_object(v)) {
                json_t *out = json_object(), *x;
                const char *k;
                json_object_foreach((json_t *)v, k, x)
                {
                        if (!is_directive(k))
                                json_object_set_new(out, k, strip_directives(x));
                }
                return out;
        }
        if (json_is_array(v)) {
                json_t *out = json_array(), *x;
                size_t i;
                json_array_foreach(v, i, x)
                {
                        if (!(json_is_object(x) && json_object_get(x, "$patch")))
                                json_array_append_new(out, strip_directives(x));
                }
                return out;
        }
        return sw_json_copy(v);
}

static long find_by_key(const json_t *list, const char *key, const json_t *want)
{
        json_t *e;
        size_t i;

        if (!want)
                return -1;
        json_array_foreach(list, i, e)
        {
                if (json_equal(json_object_get(e, key), want))
                        return (long)i;
        }
        return -1;
}

static long find_value(const json_t *list, const json_t *want)
{
        json_t *e;
        size_t i;

        json_array_foreach(list, i, e)
        {
                if (json_equal(e, want))
                        return (long)i;
        }
        return -1;
}

static int merge_keyed_list(json_t **io, const json_t *patch, const struct orch_smp_field *f,
                            int depth, struct sw_err *err)
{
        json_t *list = json_is_array(*io) ? *io : NULL, *e;
        size_t i;
        int rc;

        json_array_foreach(patch, i, e)
        {
                if (json_is_object(e) && strcmp(sw_json_str(e, "$patch", ""), "replace") == 0) {
                        json_decref(*io);
                        *io = strip_directives(patch);
                        return 0;
                }
        }
        if (!list) {
                json_decref(*io);
                list = *io = json_array();
        }
        json_array_foreach(patch, i, e)
        {
                json_t *key_val;
                long at;

                if (!json_is_object(e)) {
                        if (find_value(list, e) < 0)
                                json_array_append(list, e);
                        continue;
                }
                key_val = json_object_get(e, f->merge_key);
                if (!key_val)
                        return sw_err_set(err, SW_EINVAL,
                                          "map: %s does not contain declared merge key: %s",
                                          f->name, f->merge_key);
                at = find_by_key(list, f->merge_key, key_val);
                if (strcmp(sw_json_str(e, "$patch", ""), "delete") == 0) {
                        while (at >= 0) {
                                json_array_remove(list, (size_t)at);
                                at = find_by_key(list, f->merge_key, key_val);
                        }
                        continue;
                }
                if (at >= 0) {
                        json_t *elem = sw_json_copy(json_array_get(list, (size_t)at));
                        rc = smp_map(&elem, e, f->type, depth + 1, err);
                        if (rc == SMP_DELETE) {
                                json_decref(elem);
                                json_array_remove(list, (size_t)at);
                        } else if (rc < 0) {
                                json_decref(elem);
                                return rc;
                        } else {
                                json_array_set_new(list, (size_t)at, elem);
                        }
                } else {
                        json_t *elem = json_object();
                        rc = smp_map(&elem, e, f->type, depth + 1, err);
                        if (rc < 0) {
                                json_decref(elem);
                                return rc;
                        }
                        if (rc == SMP_DELETE)
                                json_decref(elem);
                        else
                                json_array_append_new(list, elem);
                }
        }
        return 0;
}

static void merge_primitive_list(json_t **io, const json_t *patch)
{
        json_t *e;
        size_t i;

        json_array_foreach(patch, i, e)
        {
                if (json_is_object(e) && strcmp(sw_json_str(e, "$patch", ""), "replace") == 0) {
                        json_decref(*io);
                        *io = strip_directives(patch);
                        return;
                }
        }
        if (!json_is_array(*io)) {
                json_decref(*io);
                *io = json_array();
        }
        json_array_foreach(patch, i, e)
        {
                if (find_value(*io, e) < 0)
                        json_array_append(*io, e);
        }
}

/* Reorder `list` so that the elements named in `order` come first, in that order. */
static void set_element_order(json_t *list, const json_t *order, const char *merge_key)
{
        json_t *sorted = json_array(), *rest = json_array(), *e, *o;
        size_t i, j;

        if (!json_is_array(list) || !json_is_array(order))
                goto out;
        json_array_foreach(order, j, o)
        {
                json_array_foreach(list, i, e)
                {
                        bool same = merge_key && json_is_object(o)
                                            ? json_equal(json_object_get(e, merge_key),
                                                         json_object_get(o, merge_key))
                                            : json_equal(e, o);
                        if (same && find_value(sorted, e) < 0) {
                                json_array_append(sorted, e);
                                break;
                        }
                }
        }
        json_array_foreach(list, i, e)
        {
                if (find_value(sorted, e) < 0)
                        json_array_append(rest, e);
        }
        json_array_extend(sorted, rest);
        json_array_clear(list);
        json_array_extend(list, sorted);
out:
        json_decref(sorted);
        json_decref(rest);
}

/*
 * Apply `patch` (an object) to *io (an object, replaced when it is not one)
 * for type `t`. Returns 0, SMP_DELETE when the patch deletes the map, or a
 * negative SW_E* code.
 */
static int smp_map(json_t **io, const json_t *patch, const struct orch_smp_type *t, int depth,
                   struct sw_err *err)
{
        const char *key, *directive = sw_json_str(patch, "$patch", NULL);
        json_t *v, *obj, *retain = json_object_get(patch, "$retainKeys");
        int rc;

        if (depth > PATCH_MAX_DEPTH)
                return sw_err_set(err, SW_ETOOBIG, "patch nested deeper than %d", PATCH_MAX_DEPTH);
        if (directive && strcmp(directive, "delete") == 0)
                return SMP_DELETE;
        if (directive && strcmp(directive, "replace") == 0) {
                json_decref(*io);
                *io = strip_directives(patch);
                return 0;
        }
        if (directive && strcmp(directive, "merge") != 0)
                return sw_err_set(err, SW_EINVAL, "unknown patch type: %s in map", directive);
        if (!json_is_object(*io)) {
                json_decref(*io);
                *io = json_object();
        }
        obj = *io;
        json_object_foreach((json_t *)patch, key, v)
        {
                const struct orch_smp_field *f;
                json_t *cur;

                if (is_directive(key)) {
                        if (strncmp(key, "$deleteFromPrimitiveList/", 25) == 0) {
                                json_t *list = json_object_get(obj, key + 25), *x;
                                size_t i;
                                long at;
                                json_array_foreach(v, i, x)
                                {
                                        while ((at = find_value(list, x)) >= 0)
                                                json_array_remove(list, (size_t)at);
                                }
                        } else if (strcmp(key, "$patch") != 0 && strcmp(key, "$retainKeys") != 0 &&
                                   strncmp(key, "$setElementOrder/", 17) != 0) {
                                return sw_err_set(err, SW_EINVAL, "unknown directive \"%s\"", key);
                        }
                        continue;
                }
                if (json_is_null(v)) {
                        json_object_del(obj, key);
                        continue;
                }
                f = orch_smp_field(t, key);
                cur = json_incref(json_object_get(obj, key));
                if (json_is_object(v)) {
                        rc = smp_map(&cur, v, f ? f->type : NULL, depth + 1, err);
                        if (rc < 0) {
                                json_decref(cur);
                                return rc;
                        }
                        if (rc == SMP_DELETE) {
                                json_decref(cur);
                                json_object_del(obj, key);
                                continue;
                        }
                        /* cur may be the shared stored child: copy-on-write via deep copy. */
                        json_object_set_new(obj, key, cur);
                } else if (json_is_array(v) && f && f->merge_key) {
                        json_t *copy = cur ? sw_json_copy(cur) : NULL;
                        json_decref(cur);
                        rc = merge_keyed_list(&copy, v, f, depth, err);
                        if (rc < 0) {
                                json_decref(copy);
                                return rc;
                        }
                        json_object_set_new(obj, key, copy);
                } else if (json_is_array(v) && f && (f->flags & ORCH_SMP_MERGE)) {
                        json_t *copy = cur ? sw_json_copy(cur) : NULL;
                        json_decref(cur);
                        merge_primitive_list(&copy, v);
                        json_object_set_new(obj, key, copy);
                } else {
                        json_decref(cur);
                        json_object_set_new(obj, key, strip_directives(v));
                }
        }
        /* $setElementOrder applies after the lists are merged. */
        json_object_foreach((json_t *)patch, key, v)
        {
                if (strncmp(key, "$setElementOrder/", 17) == 0) {
                        const struct orch_smp_field *f = orch_smp_field(t, key + 17);
                        set_element_order(json_object_get(obj, key + 17), v,
                                          f ? f->merge_key : NULL);
                }
        }
        if (retain) {
                json_t *drop = json_array(), *k;
                size_t i;

                if (!json_is_array(retain)) {
                        json_decref(drop);
                        return sw_err_set(err, SW_EINVAL, "$retainKeys must be a list");
                }
                json_object_foreach(obj, key, v)
                {
                        json_t *ks = json_string(key);
                        if (find_value(retain, ks) < 0)
                                json_array_append(drop, ks);
                        json_decref(ks);
                }
                json_array_foreach(drop, i, k) json_object_del(obj, json_string_value(k));
                json_decref(drop);
        }
        return 0;
}

int orch_smp_apply(json_t **out, const json_t *orig, const json_t *patch,
                   const struct orch_smp_type *t, struct sw_err *err)
{
        json_t *doc;
        int rc;

        if (!json_is_object(patch))
                return sw_err_set(err, SW_EINVAL, "a strategic merge patch must be a JSON object");
        doc = json_is_object(orig) ? sw_json_copy(orig) : json_object();
        rc = smp_map(&doc, patch, t, 0, err);
        if (rc < 0) {
                json_decref(doc);
                return rc;
        }
        if (rc == SMP_DELETE) {
                json_decref(doc);
                doc = json_object();
        }
        *out = doc;
        return 0;
}
