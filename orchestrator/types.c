/*
 * types.c - the kinds the API server serves: discovery, OpenAPI documents,
 * defaulting, validation and the strict unknown-field check.
 *
 * The table of kinds drives everything: discovery lists it, the router
 * resolves URLs with it, and each kind's strategic-merge schema lives with
 * it. Defaults follow the real API server's (a Deployment gets replicas 1
 * and a RollingUpdate strategy of 25%/25%, a container port protocol TCP),
 * so that objects read back look as kubectl expects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/rand.h"
#include "common/validate.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define SUB_SS (ORCH_SUB_STATUS | ORCH_SUB_SCALE)

static const struct orch_kind kinds[] = {
        {"", "v1", "namespaces", "namespace", "Namespace", "namespaces", false, "ns", false,
         ORCH_SUB_STATUS, false, &orch_smp_namespace},
        {"", "v1", "nodes", "node", "Node", "nodes", false, "no", false, ORCH_SUB_STATUS, false,
         &orch_smp_node},
        {"", "v1", "pods", "pod", "Pod", "pods", true, "po", true,
         ORCH_SUB_STATUS | ORCH_SUB_BINDING, false, &orch_smp_pod},
        {"", "v1", "services", "service", "Service", "services", true, "svc", true, ORCH_SUB_STATUS,
         false, &orch_smp_service},
        {"", "v1", "endpoints", "endpoints", "Endpoints", "endpoints", true, "ep", false, 0, false,
         &orch_smp_generic},
        {"", "v1", "configmaps", "configmap", "ConfigMap", "configmaps", true, "cm", false, 0,
         false, &orch_smp_generic},
        {"", "v1", "secrets", "secret", "Secret", "secrets", true, "", false, 0, false,
         &orch_smp_generic},
        {"", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", "serviceaccounts", true,
         "sa", false, 0, false, &orch_smp_generic},
        {"", "v1", "resourcequotas", "resourcequota", "ResourceQuota", "resourcequotas", true,
         "quota", false, ORCH_SUB_STATUS, false, &orch_smp_generic},
        {"", "v1", "limitranges", "limitrange", "LimitRange", "limitranges", true, "limits", false,
         0, false, &orch_smp_generic},
        {"", "v1", "events", "event", "Event", "events", true, "ev", false, 0, false,
         &orch_smp_generic},
        {"apps", "v1", "deployments", "deployment", "Deployment", "deployments.apps", true,
         "deploy", true, SUB_SS, true, &orch_smp_deployment},
        {"apps", "v1", "replicasets", "replicaset", "ReplicaSet", "replicasets.apps", true, "rs",
         true, SUB_SS, true, &orch_smp_replicaset},
        {"networking.k8s.io", "v1", "ingresses", "ingress", "Ingress",
         "ingresses.networking.k8s.io", true, "ing", false, ORCH_SUB_STATUS, true,
         &orch_smp_generic},
        {"networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass",
         "ingressclasses.networking.k8s.io", false, "", false, 0, true, &orch_smp_generic},
        {"batch", "v1", "jobs", "job", "Job", "jobs.batch", true, "", true, ORCH_SUB_STATUS, true,
         &orch_smp_job},
        {"batch", "v1", "cronjobs", "cronjob", "CronJob", "cronjobs.batch", true, "cj", true,
         ORCH_SUB_STATUS, true, &orch_smp_cronjob},
        {"coordination.k8s.io", "v1", "leases", "lease", "Lease", "leases.coordination.k8s.io",
         true, "", false, 0, false, &orch_smp_generic},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static const char *const groups[] = {"apps", "networking.k8s.io", "batch", "coordination.k8s.io"};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

const struct orch_kind *orch_kinds(size_t *n_out)
{
        *n_out = NKINDS;
        return kinds;
}

const struct orch_kind *orch_kind_find(const char *group, const char *version, const char *resource)
{
        for (size_t i = 0; i < NKINDS; i++)
                if (strcmp(kinds[i].group, group) == 0 && strcmp(kinds[i].version, version) == 0 &&
                    strcmp(kinds[i].resource, resource) == 0)
                        return &kinds[i];
        return NULL;
}

void orch_kind_api_version(const struct orch_kind *k, char *out, size_t size)
{
        if (*k->group)
                snprintf(out, size, "%s/%s", k->group, k->version);
        else
                snprintf(out, size, "%s", k->version);
}

const struct orch_kind *orch_kind_by_kind(const char *api_version, const char *kind)
{
        char av[128];

        for (size_t i = 0; i < NKINDS; i++) {
                orch_kind_api_version(&kinds[i], av, sizeof(av));
                if (strcmp(av, api_version) == 0 && strcmp(kinds[i].kind, kind) == 0)
                        return &kinds[i];
        }
        return NULL;
}

/* ---- discovery ------------------------------------------------------------ */

json_t *orch_discovery_versions(void)
{
        return json_pack("{s:s,s:[s],s:[{s:s,s:s}]}", "kind", "APIVersions", "versions", "v1",
                         "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0", "serverAddress",
                         "127.0.0.1");
}

json_t *orch_discovery_groups(void)
{
        json_t *list = json_array();

        for (size_t i = 0; i < NGROUPS; i++) {
                char gv[128];
                snprintf(gv, sizeof(gv), "%s/v1", groups[i]);
                json_array_append_new(list, json_pack("{s:s,s:[{s:s,s:s}],s:{s:s,s:s}}", "name",
                                                      groups[i], "versions", "groupVersion", gv,
                                                      "version", "v1", "preferredVersion",
                                                      "groupVersion", gv, "version", "v1"));
        }
        return json_pack("{s:s,s:s,s:o}", "kind", "APIGroupList", "apiVersion", "v1", "groups",
                         list);
}

static json_t *verbs_full(void)
{
        return json_pack("[s,s,s,s,s,s,s,s]", "create", "delete", "deletecollection", "get", "list",
                         "patch", "update", "watch");
}

json_t *orch_discovery_resources(const char *group, const char *version)
{
        json_t *res = json_array();
        char gv[128];
        bool any = false;

        for (size_t i = 0; i < NKINDS; i++) {
                const struct orch_kind *k = &kinds[i];
                json_t *r, *sn;
                char name[128];
                const char *p;

                if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0)
                        continue;
                any = true;
                sn = json_array();
                for (p = k->short_names; *p;) {
                        const char *comma = strchr(p, ',');
                        size_t n = comma ? (size_t)(comma - p) : strlen(p);
                        json_array_append_new(sn, json_stringn(p, n));
                        p += n + (comma ? 1 : 0);
                }
                r = json_pack("{s:s,s:s,s:b,s:s,s:o}", "name", k->resource, "singularName",
                              k->singular, "namespaced", k->namespaced, "kind", k->kind, "verbs",
                              verbs_full());
                if (json_array_size(sn))
                        json_object_set(r, "shortNames", sn);
                if (k->all)
                        json_object_set_new(r, "categories", json_pack("[s]", "all"));
                json_decref(sn);
                json_array_append_new(res, r);
                if (k->subresources & ORCH_SUB_STATUS) {
                        snprintf(name, sizeof(name), "%s/status", k->resource);
                        json_array_append_new(res, json_pack("{s:s,s:s,s:b,s:s,s:[s,s,s]}", "name",
                                                             name, "singularName", "", "namespaced",
                                                             k->namespaced, "kind", k->kind,
                                                             "verbs", "get", "patch", "update"));
                }
                if (k->subresources & ORCH_SUB_SCALE) {
                        snprintf(name, sizeof(name), "%s/scale", k->resource);
                        json_array_append_new(
                                res, json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:[s,s,s]}", "name", name,
                                               "singularName", "", "namespaced", k->namespaced,
                                               "group", "autoscaling", "version", "v1", "kind",
                                               "Scale", "verbs", "get", "patch", "update"));
                }
                if (k->subresources & ORCH_SUB_BINDING) {
                        snprintf(name, sizeof(name), "%s/binding", k->resource);
                        json_array_append_new(res, json_pack("{s:s,s:s,s:b,s:s,s:[s]}", "name",
                                                             name, "singularName", "", "namespaced",
                                                             k->namespaced, "kind", "Binding",
                                                             "verbs", "create"));
                }
        }
        if (!any) {
                json_decref(res);
                return NULL;
        }
        if (*group)
                snprintf(gv, sizeof(gv), "%s/%s", group, version);
        else
                snprintf(gv, sizeof(gv), "%s", version);
        return json_pack("{s:s,s:s,s:s,s:o}", "kind", "APIResourceList", "apiVersion", "v1",
                         "groupVersion", gv, "resources", res);
}

/*
 * OpenAPI v3: kubectl reads the root index, then each group version's
 * document, and looks for a PATCH operation tagged with the kind's
 * group-version-kind that lists the fieldValidation query parameter; when
 * it finds it, it leaves validation to the server (fieldValidation=Strict).
 * The documents carry no schemas, so kubectl computes strategic merge
 * patches from its built-in types.
 */
#define OPENAPI_HASH "slipway-0-1-0-1"

json_t *orch_openapi_root(void)
{
        json_t *paths = json_object();
        char key[160], url[200];

        snprintf(url, sizeof(url), "/openapi/v3/api/v1?hash=%s", OPENAPI_HASH);
        json_object_set_new(paths, "api/v1", json_pack("{s:s}", "serverRelativeURL", url));
        for (size_t i = 0; i < NGROUPS; i++) {
                snprintf(key, sizeof(key), "apis/%s/v1", groups[i]);
                snprintf(url, sizeof(url), "/openapi/v3/apis/%s/v1?hash=%s", groups[i],
                         OPENAPI_HASH);
                json_object_set_new(paths, key, json_pack("{s:s}", "serverRelativeURL", url));
        }
        return json_pack("{s:o}", "paths", paths);
}

json_t *orch_openapi_group_version(const char *group, const char *version)
{
        json_t *paths = json_object();
        bool any = false;

        for (size_t i = 0; i < NKINDS; i++) {
                const struct orch_kind *k = &kinds[i];
                char path[256];
                json_t *params;

                if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0)
                        continue;
                any = true;
                if (*group)
                        snprintf(path, sizeof(path), "/apis/%s/%s/%s%s/{name}", group, version,
                                 k->namespaced ? "namespaces/{namespace}/" : "", k->resource);
                else
                        snprintf(path, sizeof(path), "/api/%s/%s%s/{name}", version,
                                 k->namespaced ? "namespaces/{namespace}/" : "", k->resource);
                params = json_pack("[{s:s,s:s,s:{s:s}},{s:s,s:s,s:{s:s}},{s:s,s:s,s:{s:s}},"
                                   "{s:s,s:s,s:{s:s}}]",
                                   "name", "fieldValidation", "in", "query", "schema", "type",
                                   "string", "name", "fieldManager", "in", "query", "schema",
                                   "type", "string", "name", "dryRun", "in", "query", "schema",
                                   "type", "string", "name", "force", "in", "query", "schema",
                                   "type", "boolean");
                json_object_set_new(paths, path,
                                    json_pack("{s:{s:s,s:{s:s,s:s,s:s},s:o,s:{s:{s:s}}}}", "patch",
                                              "operationId", k->kind,
                                              "x-kubernetes-group-version-kind", "group", group,
                                              "version", version, "kind", k->kind, "parameters",
                                              params, "responses", "200", "description", "OK"));
        }
        if (!any) {
                json_decref(paths);
                return NULL;
        }
        return json_pack("{s:s,s:{s:s,s:s},s:o,s:{}}", "openapi", "3.0.0", "info", "title",
                         "Kubernetes", "version", "v1.32.0", "paths", paths, "components");
}

/* ---- defaults and validation -------------------------------------------- */

static json_t *obj_at(json_t *parent, const char *key)
{
        json_t *v = json_object_get(parent, key);

        if (!json_is_object(v)) {
                v = json_object();
                json_object_set_new(parent, key, v);
        }
        return v;
}

static void set_default(json_t *obj, const char *key, json_t *val)
{
        if (!json_object_get(obj, key))
                json_object_set_new(obj, key, val);
        else
                json_decref(val);
}

static int invalid(struct sw_err *err, const char *field, const char *what)
{
        return sw_err_set(err, SW_EINVAL, "%s: %s", field, what);
}

static int container_admit(json_t *c, const char *field, struct sw_err *err)
{
        const char *name = sw_json_str(c, "name", ""), *image = sw_json_str(c, "image", "");
        json_t *ports = json_object_get(c, "ports"), *p, *env = json_object_get(c, "env"), *e;
        char f[256];
        size_t i;

        if (!json_is_object(c))
                return invalid(err, field, "Invalid value: must be an object");
        snprintf(f, sizeof(f), "%s.name", field);
        if (!*name)
                return invalid(err, f, "Required value");
        if (sw_valid_dns1123_label(name, f, err) != 0)
                return SW_EINVAL;
        if (!*image) {
                snprintf(f, sizeof(f), "%s.image", field);
                return invalid(err, f, "Required value");
        }
        {
                const char *colon = strrchr(image, ':'), *slash = strrchr(image, '/');
                bool tagged = colon && (!slash || colon > slash);
                bool latest = !tagged || strcmp(colon + 1, "latest") == 0;
                set_default(c, "imagePullPolicy",
                            json_string(strchr(image, '@') ? "IfNotPresent"
                                        : latest           ? "Always"
                                                           : "IfNotPresent"));
        }
        {
                static const char *const kinds_[] = {"limits", "requests"};
                for (size_t k = 0; k < 2; k++) {
                        const char *rname;
                        json_t *q;
                        json_object_foreach(
                                json_object_get(json_object_get(c, "resources"), kinds_[k]), rname,
                                q)
                        {
                                int64_t milli;
                                snprintf(f, sizeof(f), "%s.resources.%s.%s", field, kinds_[k],
                                         rname);
                                if (!json_is_string(q) && !json_is_integer(q))
                                        return invalid(err, f, "Invalid value: must be a quantity");
                                if (json_is_string(q) &&
                                    sw_quantity_milli(&milli, json_string_value(q), f, NULL) != 0)
                                        return sw_err_set(
                                                err, SW_EINVAL,
                                                "%s: Invalid value: \"%s\": quantities "
                                                "must match the regular expression "
                                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                                                f, json_string_value(q));
                        }
                }
        }
        {
                /* As Kubernetes' defaulting: a resource with a limit and no request requests it. */
                json_t *res = json_object_get(c, "resources"), *q;
                const char *rname;
                json_object_foreach(json_object_get(res, "limits"), rname, q)
                {
                        json_t *req = json_object_get(res, "requests");
                        if (!json_is_object(req)) {
                                req = json_object();
                                json_object_set_new(res, "requests", req);
                        }
                        if (!json_object_get(req, rname))
                                json_object_set(req, rname, q);
                }
        }
        set_default(c, "terminationMessagePath", json_string("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json_string("File"));
        set_default(c, "resources", json_object());
        json_array_foreach(ports, i, p)
        {
                json_int_t port = json_integer_value(json_object_get(p, "containerPort"));
                if (port < 1 || port > 65535) {
                        snprintf(f, sizeof(f), "%s.ports[%zu].containerPort", field, i);
                        return invalid(err, f,
                                       "Invalid value: must be between 1 and 65535, inclusive");
                }
                set_default(p, "protocol", json_string("TCP"));
        }
        json_array_foreach(env, i, e)
        {
                if (!*sw_json_str(e, "name", "")) {
                        snprintf(f, sizeof(f), "%s.env[%zu].name", field, i);
                        return invalid(err, f, "Required value");
                }
        }
        return 0;
}

static int podspec_admit(json_t *spec, const char *field, struct sw_err *err)
{
        json_t *cs = json_object_get(spec, "containers"), *c;
        char f[256];
        size_t i;
        int rc;

        if (!json_is_array(cs) || json_array_size(cs) == 0) {
                snprintf(f, sizeof(f), "%s.containers", field);
                return invalid(err, f, "Required value");
        }
        json_array_foreach(cs, i, c)
        {
                snprintf(f, sizeof(f), "%s.containers[%zu]", field, i);
                if ((rc = container_admit(c, f, err)) != 0)
                        return rc;
        }
        json_array_foreach(json_object_get(spec, "initContainers"), i, c)
        {
                snprintf(f, sizeof(f), "%s.initContainers[%zu]", field, i);
                if ((rc = container_admit(c, f, err)) != 0)
                        return rc;
        }
        set_default(spec, "restartPolicy", json_string("Always"));
        set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
        set_default(spec, "dnsPolicy", json_string("ClusterFirst"));
        set_default(spec, "securityContext", json_object());
        set_default(spec, "schedulerName", json_string("default-scheduler"));
        return 0;
}

/* Selector required, non-empty, matching the template's labels; immutable. */
static int selector_admit(json_t *spec, const json_t *old_spec, bool immutable, struct sw_err *err)
{
        json_t *sel = json_object_get(spec, "selector");
        json_t *labels = json_object_get(
                json_object_get(json_object_get(spec, "template"), "metadata"), "labels");
        struct orch_selector *s = NULL;
        bool ok;

        if (!json_is_object(sel) ||
            (json_object_size(json_object_get(sel, "matchLabels")) == 0 &&
             json_array_size(json_object_get(sel, "matchExpressions")) == 0))
                return invalid(err, "spec.selector", "Required value");
        if (orch_labelsel_from_json(&s, sel, err) != 0)
                return sw_err_wrap(err, "spec.selector");
        ok = orch_labelsel_match(s, labels);
        orch_selector_free(s);
        if (!ok)
                return invalid(err, "spec.template.metadata.labels",
                               "Invalid value: `selector` does not match template `labels`");
        if (immutable && old_spec && !json_equal(sel, json_object_get(old_spec, "selector")))
                return invalid(err, "spec.selector", "Invalid value: field is immutable");
        return 0;
}

static int template_admit(json_t *spec, struct sw_err *err)
{
        json_t *tmpl = json_object_get(spec, "template");

        if (!json_is_object(tmpl))
                return invalid(err, "spec.template", "Required value");
        if (orch_labels_valid(json_object_get(obj_at(tmpl, "metadata"), "labels"),
                              "spec.template.metadata.labels", err) != 0)
                return SW_EINVAL;
        return podspec_admit(obj_at(tmpl, "spec"), "spec.template.spec", err);
}

static int deployment_admit(json_t *obj, const json_t *old, struct sw_err *err)
{
        json_t *spec = obj_at(obj, "spec"), *strategy;
        int rc;

        if ((rc = selector_admit(spec, json_object_get(old, "spec"), true, err)) != 0)
                return rc;
        if ((rc = template_admit(spec, err)) != 0)
                return rc;
        set_default(spec, "replicas", json_integer(1));
        if (json_integer_value(json_object_get(spec, "replicas")) < 0)
                return invalid(err, "spec.replicas",
                               "Invalid value: must be greater than or equal to 0");
        strategy = obj_at(spec, "strategy");
        set_default(strategy, "type", json_string("RollingUpdate"));
        if (strcmp(sw_json_str(strategy, "type", ""), "RollingUpdate") == 0) {
                json_t *ru = obj_at(strategy, "rollingUpdate");
                set_default(ru, "maxUnavailable", json_string("25%"));
                set_default(ru, "maxSurge", json_string("25%"));
        }
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        set_default(spec, "progressDeadlineSeconds", json_integer(600));
        return 0;
}

static int replicaset_admit(json_t *obj, const json_t *old, struct sw_err *err)
{
        json_t *spec = obj_at(obj, "spec");
        int rc;

        if ((rc = selector_admit(spec, json_object_get(old, "spec"), true, err)) != 0)
                return rc;
        if ((rc = template_admit(spec, err)) != 0)
                return rc;
        set_default(spec, "replicas", json_integer(1));
        return 0;
}

static int service_admit(json_t *obj, const json_t *old, struct sw_err *err)
{
        json_t *spec = obj_at(obj, "spec"), *ports, *p;
        const char *type;
        char f[128];
        size_t i;

        set_default(spec, "type", json_string("ClusterIP"));
        type = sw_json_str(spec, "type", "");
        if (strcmp(type, "ClusterIP") != 0 && strcmp(type, "NodePort") != 0 &&
            strcmp(type, "LoadBalancer") != 0 && strcmp(type, "ExternalName") != 0)
                return sw_err_set(err, SW_EINVAL,
                                  "spec.type: Unsupported value: \"%s\": supported values: "
                                  "\"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                                  type);
        ports = json_object_get(spec, "ports");
        if (strcmp(type, "ExternalName") != 0 &&
            strcmp(sw_json_str(spec, "clusterIP", ""), "None") != 0 && json_array_size(ports) == 0)
                return invalid(err, "spec.ports", "Required value");
        json_array_foreach(ports, i, p)
        {
                json_int_t port = json_integer_value(json_object_get(p, "port"));
                if (port < 1 || port > 65535) {
                        snprintf(f, sizeof(f), "spec.ports[%zu].port", i);
                        return invalid(err, f,
                                       "Invalid value: must be between 1 and 65535, inclusive");
                }
                if (json_array_size(ports) > 1 && !*sw_json_str(p, "name", "")) {
                        snprintf(f, sizeof(f), "spec.ports[%zu].name", i);
                        return invalid(err, f, "Required value");
                }
                set_default(p, "protocol", json_string("TCP"));
                set_default(p, "targetPort", json_integer(port));
        }
        if (old) {
                const char *was = sw_json_str(json_object_get(old, "spec"), "clusterIP", "");
                const char *now = sw_json_str(spec, "clusterIP", NULL);
                if (now && *was && strcmp(was, now) != 0)
                        return invalid(err, "spec.clusterIP", "Invalid value: field is immutable");
                if (!now && *was)
                        json_object_set(spec, "clusterIP",
                                        json_object_get(json_object_get(old, "spec"), "clusterIP"));
        }
        set_default(spec, "sessionAffinity", json_string("None"));
        if (strcmp(type, "ExternalName") != 0) {
                set_default(spec, "ipFamilies", json_pack("[s]", "IPv4"));
                set_default(spec, "ipFamilyPolicy", json_string("SingleStack"));
                set_default(spec, "internalTrafficPolicy", json_string("Cluster"));
        }
        return 0;
}

static bool b64_valid(const char *s)
{
        size_t n = strlen(s), pad = 0;

        if (n % 4)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '+' || c == '/'))
                        return false;
        }
        return pad <= 2;
}

static char *b64_encode(const char *s, size_t n)
{
        static const char tbl[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = sw_xmalloc((n + 2) / 3 * 4 + 1), *w = out;

        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned char)s[i] << 16;
                if (i + 1 < n)
                        v |= (unsigned)(unsigned char)s[i + 1] << 8;
                if (i + 2 < n)
                        v |= (unsigned char)s[i + 2];
                *w++ = tbl[(v >> 18) & 63];
                *w++ = tbl[(v >> 12) & 63];
                *w++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
                *w++ = i + 2 < n ? tbl[v & 63] : '=';
        }
        *w = '\0';
        return out;
}

static int data_keys_valid(const json_t *data, const char *field, struct sw_err *err)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)data, key, v)
        {
                bool ok = *key && strlen(key) <= 253;
                for (const char *p = key; *p && ok; p++)
                        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                             (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';
                if (!ok)
                        return sw_err_set(err, SW_EINVAL,
                                          "%s[%s]: Invalid value: a valid config key must consist "
                                          "of alphanumeric characters, '-', '_' or '.'",
                                          field, key);
                if (!json_is_string(v))
                        return sw_err_set(err, SW_EINVAL, "%s[%s]: Invalid value: must be a string",
                                          field, key);
        }
        return 0;
}

static int secret_admit(json_t *obj, struct sw_err *err)
{
        json_t *sd = json_object_get(obj, "stringData"), *data, *v;
        const char *key;

        if (!*sw_json_str(obj, "type", ""))
                json_object_set_new(obj, "type", json_string("Opaque"));
        if (sd) {
                if (data_keys_valid(sd, "stringData", err) != 0)
                        return SW_EINVAL;
                data = obj_at(obj, "data");
                json_object_foreach(sd, key, v)
                {
                        char *enc = b64_encode(json_string_value(v), json_string_length(v));
                        json_object_set_new(data, key, json_string(enc));
                        free(enc);
                }
                json_object_del(obj, "stringData");
        }
        data = json_object_get(obj, "data");
        if (data_keys_valid(data, "data", err) != 0)
                return SW_EINVAL;
        json_object_foreach(data, key, v)
        {
                if (!b64_valid(json_string_value(v)))
                        return sw_err_set(err, SW_EINVAL,
                                          "data[%s]: Invalid value: illegal base64 data", key);
        }
        return 0;
}

void orch_name_suffix(char *out, size_t n)
{
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        unsigned char r[16];

        sw_rand_bytes(r, sizeof(r));
        for (size_t i = 0; i < n && i < sizeof(r); i++)
                out[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
        out[n < sizeof(r) ? n : sizeof(r)] = '\0';
}

const char *orch_pod_qos(const json_t *spec)
{
        static const char *const lists[] = {"containers", "initContainers"};
        static const char *const names[] = {"cpu", "memory"};
        bool any = false, guaranteed = true;
        const json_t *c;
        size_t i;

        for (size_t l = 0; l < 2; l++) {
                json_array_foreach(json_object_get(spec, lists[l]), i, c)
                {
                        const json_t *res = json_object_get(c, "resources");
                        for (size_t k = 0; k < 2; k++) {
                                int64_t req = sw_json_quantity(
                                        json_object_get(json_object_get(res, "requests"), names[k]),
                                        0);
                                int64_t lim = sw_json_quantity(
                                        json_object_get(json_object_get(res, "limits"), names[k]),
                                        0);
                                any |= req != 0 || lim != 0;
                                if (lim == 0 || (req != 0 && req != lim))
                                        guaranteed = false;
                        }
                }
        }
        return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
}

static void generate_name(json_t *meta)
{
        char name[300];
        size_t n = (size_t)snprintf(name, sizeof(name), "%.58s",
                                    sw_json_str(meta, "generateName", ""));

        orch_name_suffix(name + n, 5);
        json_object_set_new(meta, "name", json_string(name));
}

int orch_object_admit(json_t *obj, const json_t *old, const struct orch_kind *k, struct sw_err *err)
{
        json_t *meta = obj_at(obj, "metadata");
        const char *name;
        char av[128];
        int rc;

        orch_kind_api_version(k, av, sizeof(av));
        json_object_set_new(obj, "apiVersion", json_string(av));
        json_object_set_new(obj, "kind", json_string(k->kind));
        if (!old && !*sw_json_str(meta, "name", "") && *sw_json_str(meta, "generateName", ""))
                generate_name(meta);
        name = sw_json_str(meta, "name", "");
        if (!*name)
                return invalid(err, "metadata.name",
                               "Required value: name or generateName is "
                               "required");
        if (strcmp(k->resource, "namespaces") == 0)
                rc = sw_valid_dns1123_label(name, "metadata.name", err);
        else if (strcmp(k->resource, "services") == 0)
                rc = sw_valid_dns1035_label(name, "metadata.name", err);
        else
                rc = sw_valid_dns1123_subdomain(name, "metadata.name", err);
        if (rc)
                return rc;
        if (orch_labels_valid(json_object_get(meta, "labels"), "metadata.labels", err) != 0 ||
            orch_annotations_valid(json_object_get(meta, "annotations"), "metadata.annotations",
                                   err) != 0)
                return SW_EINVAL;
        if (json_object_get(meta, "finalizers") &&
            !json_is_array(json_object_get(meta, "finalizers")))
                return invalid(err, "metadata.finalizers", "Invalid value: must be a list");

        if (strcmp(k->kind, "Namespace") == 0) {
                json_t *labels = obj_at(meta, "labels");
                json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name));
                set_default(obj_at(obj, "spec"), "finalizers", json_pack("[s]", "kubernetes"));
                set_default(obj_at(obj, "status"), "phase", json_string("Active"));
                return 0;
        }
        if (strcmp(k->kind, "Pod") == 0) {
                if ((rc = podspec_admit(obj_at(obj, "spec"), "spec", err)) != 0)
                        return rc;
                if (!old) {
                        json_t *status = obj_at(obj, "status");
                        set_default(status, "phase", json_string("Pending"));
                        set_default(status, "qosClass",
                                    json_string(orch_pod_qos(json_object_get(obj, "spec"))));
                }
                if (old) {
                        const char *was = sw_json_str(json_object_get(old, "spec"), "nodeName", "");
                        const char *now = sw_json_str(json_object_get(obj, "spec"), "nodeName", "");
                        if (*was && strcmp(was, now) != 0)
                                return invalid(err, "spec.nodeName",
                                               "Invalid value: field is immutable");
                }
                return 0;
        }
        if (strcmp(k->kind, "Deployment") == 0)
                return deployment_admit(obj, old, err);
        if (strcmp(k->kind, "ReplicaSet") == 0)
                return replicaset_admit(obj, old, err);
        if (strcmp(k->kind, "Job") == 0) {
                json_t *tmpl = json_object_get(obj_at(obj, "spec"), "template");
                const char *rp;
                if (!json_is_object(tmpl))
                        return invalid(err, "spec.template", "Required value");
                rp = sw_json_str(json_object_get(tmpl, "spec"), "restartPolicy", "Always");
                if (strcmp(rp, "Never") != 0 && strcmp(rp, "OnFailure") != 0)
                        return sw_err_set(err, SW_EINVAL,
                                          "spec.template.spec.restartPolicy: Unsupported value: "
                                          "\"%s\": supported values: \"OnFailure\", \"Never\"",
                                          rp);
                return podspec_admit(obj_at(tmpl, "spec"), "spec.template.spec", err);
        }
        if (strcmp(k->kind, "CronJob") == 0) {
                const json_t *spec = json_object_get(obj, "spec");
                const char *sched = sw_json_str(spec, "schedule", "");
                struct orch_cron c;
                struct orch_tz *tz = NULL;
                int tzrc;
                if (!*sched)
                        return invalid(err, "spec.schedule", "Required value");
                if (orch_cron_parse(&c, sched, err) != 0) {
                        char why[sizeof(err->msg)];
                        snprintf(why, sizeof(why), "%s", err->msg);
                        sw_err_clear(err);
                        return sw_err_set(err, SW_EINVAL,
                                          "spec.schedule: Invalid value: \"%s\": %s", sched, why);
                }
                tzrc = orch_tz_load(&tz, sw_json_str(spec, "timeZone", ""), err);
                orch_tz_free(tz);
                if (tzrc) {
                        sw_err_clear(err);
                        return sw_err_set(err, SW_EINVAL,
                                          "spec.timeZone: Invalid value: \"%s\": unknown time zone "
                                          "%s",
                                          sw_json_str(spec, "timeZone", ""),
                                          sw_json_str(spec, "timeZone", ""));
                }
                if (!json_is_object(json_object_get(json_object_get(spec, "jobTemplate"), "spec")))
                        return invalid(err, "spec.jobTemplate.spec", "Required value");
                return 0;
        }
        if (strcmp(k->kind, "Service") == 0)
                return service_admit(obj, old, err);
        if (strcmp(k->kind, "ConfigMap") == 0)
                return data_keys_valid(json_object_get(obj, "data"), "data", err);
        if (strcmp(k->kind, "Secret") == 0)
                return secret_admit(obj, err);
        return 0;
}

/* ---- strict field validation --------------------------------------------- */

/*
 * The fields of the structures kubectl users write by hand, so that a typo
 * in a manifest is refused (fieldValidation=Strict) instead of silently
 * dropped. Structures not described here are accepted as they are.
 */
struct strict_node {
        const char *const *fields;
        const struct strict_child *children;
};
struct strict_child {
        const char *field;
        const struct strict_node *node;
        bool list;
};

static const char *const meta_fields[] = {"name",
                                          "generateName",
                                          "namespace",
                                          "selfLink",
                                          "uid",
                                          "resourceVersion",
                                          "generation",
                                          "creationTimestamp",
                                          "deletionTimestamp",
                                          "deletionGracePeriodSeconds",
                                          "labels",
                                          "annotations",
                                          "ownerReferences",
                                          "finalizers",
                                          "managedFields",
                                          NULL};
#define STRICT_END                                                                                 \
        {                                                                                          \
                NULL, NULL, false                                                                  \
        }
/* A node whose fields are all leaves (or maps, which are not walked). */
#define STRICT_LEAF(var, ...)                                                                      \
        static const char *const var##_fields[] = {__VA_ARGS__, NULL};                             \
        static const struct strict_node var = {var##_fields, NULL}

STRICT_LEAF(owner_node, "apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion");
STRICT_LEAF(mfield_node, "manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1",
            "subresource");
static const struct strict_child meta_children[] = {
        {"ownerReferences", &owner_node, true}, {"managedFields", &mfield_node, true}, STRICT_END};
static const struct strict_node meta_node = {meta_fields, meta_children};

STRICT_LEAF(selreq_node, "key", "operator", "values");
static const char *const selector_fields[] = {"matchLabels", "matchExpressions", NULL};
static const struct strict_child selector_children[] = {{"matchExpressions", &selreq_node, true},
                                                        STRICT_END};
static const struct strict_node selector_node = {selector_fields, selector_children};

STRICT_LEAF(keyref_node, "name", "key", "optional");
STRICT_LEAF(fieldref_node, "apiVersion", "fieldPath");
STRICT_LEAF(resref_node, "containerName", "resource", "divisor");
static const char *const valuefrom_fields[] = {"configMapKeyRef", "secretKeyRef", "fieldRef",
                                               "resourceFieldRef", NULL};
static const struct strict_child valuefrom_children[] = {{"configMapKeyRef", &keyref_node, false},
                                                         {"secretKeyRef", &keyref_node, false},
                                                         {"fieldRef", &fieldref_node, false},
                                                         {"resourceFieldRef", &resref_node, false},
                                                         STRICT_END};
static const struct strict_node valuefrom_node = {valuefrom_fields, valuefrom_children};

STRICT_LEAF(nameref_node, "name", "optional");
static const char *const envfrom_fields[] = {"prefix", "configMapRef", "secretRef", NULL};
static const struct strict_child envfrom_children[] = {
        {"configMapRef", &nameref_node, false}, {"secretRef", &nameref_node, false}, STRICT_END};
static const struct strict_node envfrom_node = {envfrom_fields, envfrom_children};

STRICT_LEAF(claimref_node, "name", "request");
static const char *const resources_fields[] = {"limits", "requests", "claims", NULL};
static const struct strict_child resources_children[] = {{"claims", &claimref_node, true},
                                                         STRICT_END};
static const struct strict_node resources_node = {resources_fields, resources_children};

STRICT_LEAF(vmount_node, "name", "readOnly", "recursiveReadOnly", "mountPath", "subPath",
            "mountPropagation", "subPathExpr");
STRICT_LEAF(vdevice_node, "name", "devicePath");
STRICT_LEAF(resize_node, "resourceName", "restartPolicy");

STRICT_LEAF(exec_node, "command");
STRICT_LEAF(header_node, "name", "value");
static const char *const httpget_fields[] = {"path", "port", "host", "scheme", "httpHeaders", NULL};
static const struct strict_child httpget_children[] = {{"httpHeaders", &header_node, true},
                                                       STRICT_END};
static const struct strict_node httpget_node = {httpget_fields, httpget_children};
STRICT_LEAF(tcp_node, "port", "host");
STRICT_LEAF(grpc_node, "port", "service");
static const char *const probe_fields[] = {"exec",
                                           "httpGet",
                                           "tcpSocket",
                                           "grpc",
                                           "initialDelaySeconds",
                                           "timeoutSeconds",
                                           "periodSeconds",
                                           "successThreshold",
                                           "failureThreshold",
                                           "terminationGracePeriodSeconds",
                                           NULL};
static const struct strict_child probe_children[] = {{"exec", &exec_node, false},
                                                     {"httpGet", &httpget_node, false},
                                                     {"tcpSocket", &tcp_node, false},
                                                     {"grpc", &grpc_node, false},
                                                     STRICT_END};
static const struct strict_node probe_node = {probe_fields, probe_children};

STRICT_LEAF(sleep_node, "seconds");
static const char *const handler_fields[] = {"exec", "httpGet", "tcpSocket", "sleep", NULL};
static const struct strict_child handler_children[] = {{"exec", &exec_node, false},
                                                       {"httpGet", &httpget_node, false},
                                                       {"tcpSocket", &tcp_node, false},
                                                       {"sleep", &sleep_node, false},
                                                       STRICT_END};
static const struct strict_node handler_node = {handler_fields, handler_children};
static const char *const lifecycle_fields[] = {"postStart", "preStop", "stopSignal", NULL};
static const struct strict_child lifecycle_children[] = {
        {"postStart", &handler_node, false}, {"preStop", &handler_node, false}, STRICT_END};
static const struct strict_node lifecycle_node = {lifecycle_fields, lifecycle_children};

STRICT_LEAF(caps_node, "add", "drop");
STRICT_LEAF(selinux_node, "user", "role", "type", "level");
STRICT_LEAF(seccomp_node, "type", "localhostProfile");
STRICT_LEAF(apparmor_node, "type", "localhostProfile");
STRICT_LEAF(winopts_node, "gmsaCredentialSpecName", "gmsaCredentialSpec", "runAsUserName",
            "hostProcess");
static const char *const csec_fields[] = {"capabilities",
                                          "privileged",
                                          "seLinuxOptions",
                                          "windowsOptions",
                                          "runAsUser",
                                          "runAsGroup",
                                          "runAsNonRoot",
                                          "readOnlyRootFilesystem",
                                          "allowPrivilegeEscalation",
                                          "procMount",
                                          "seccompProfile",
                                          "appArmorProfile",
                                          NULL};
static const struct strict_child csec_children[] = {
        {"capabilities", &caps_node, false},        {"seLinuxOptions", &selinux_node, false},
        {"windowsOptions", &winopts_node, false},   {"seccompProfile", &seccomp_node, false},
        {"appArmorProfile", &apparmor_node, false}, STRICT_END};
static const struct strict_node csec_node = {csec_fields, csec_children};

static const char *const cport_fields[] = {"name",     "hostPort", "containerPort",
                                           "protocol", "hostIP",   NULL};
static const struct strict_node cport_node = {cport_fields, NULL};
static const char *const env_fields[] = {"name", "value", "valueFrom", NULL};
static const struct strict_child env_children[] = {{"valueFrom", &valuefrom_node, false},
                                                   STRICT_END};
static const struct strict_node env_node = {env_fields, env_children};
static const char *const container_fields[] = {"name",
                                               "image",
                                               "command",
                                               "args",
                                               "workingDir",
                                               "ports",
                                               "envFrom",
                                               "env",
                                               "resources",
                                               "resizePolicy",
                                               "restartPolicy",
                                               "volumeMounts",
                                               "volumeDevices",
                                               "livenessProbe",
                                               "readinessProbe",
                                               "startupProbe",
                                               "lifecycle",
                                               "terminationMessagePath",
                                               "terminationMessagePolicy",
                                               "imagePullPolicy",
                                               "securityContext",
                                               "stdin",
                                               "stdinOnce",
                                               "tty",
                                               NULL};
static const struct strict_child container_children[] = {{"ports", &cport_node, true},
                                                         {"env", &env_node, true},
                                                         {"envFrom", &envfrom_node, true},
                                                         {"resources", &resources_node, false},
                                                         {"resizePolicy", &resize_node, true},
                                                         {"volumeMounts", &vmount_node, true},
                                                         {"volumeDevices", &vdevice_node, true},
                                                         {"livenessProbe", &probe_node, false},
                                                         {"readinessProbe", &probe_node, false},
                                                         {"startupProbe", &probe_node, false},
                                                         {"lifecycle", &lifecycle_node, false},
                                                         {"securityContext", &csec_node, false},
                                                         STRICT_END};
static const struct strict_node container_node = {container_fields, container_children};

static const char *const podspec_fields[] = {"volumes",
                                             "initContainers",
                                             "containers",
                                             "ephemeralContainers",
                                             "restartPolicy",
                                             "terminationGracePeriodSeconds",
                                             "activeDeadlineSeconds",
                                             "dnsPolicy",
                                             "nodeSelector",
                                             "serviceAccountName",
                                             "serviceAccount",
                                             "automountServiceAccountToken",
                                             "nodeName",
                                             "hostNetwork",
                                             "hostPID",
                                             "hostIPC",
                                             "shareProcessNamespace",
                                             "securityContext",
                                             "imagePullSecrets",
                                             "hostname",
                                             "subdomain",
                                             "affinity",
                                             "schedulerName",
                                             "tolerations",
                                             "hostAliases",
                                             "priorityClassName",
                                             "priority",
                                             "dnsConfig",
                                             "readinessGates",
                                             "runtimeClassName",
                                             "enableServiceLinks",
                                             "preemptionPolicy",
                                             "overhead",
                                             "topologySpreadConstraints",
                                             "setHostnameAsFQDN",
                                             "os",
                                             "hostUsers",
                                             "schedulingGates",
                                             "resourceClaims",
                                             "resources",
                                             NULL};
STRICT_LEAF(keypath_node, "key", "path", "mode");
static const char *const cmvol_fields[] = {"name", "items", "defaultMode", "optional", NULL};
static const struct strict_child vol_items[] = {{"items", &keypath_node, true}, STRICT_END};
static const struct strict_node cmvol_node = {cmvol_fields, vol_items};
static const char *const secvol_fields[] = {"secretName", "items", "defaultMode", "optional", NULL};
static const struct strict_node secvol_node = {secvol_fields, vol_items};
STRICT_LEAF(emptydir_node, "medium", "sizeLimit");
STRICT_LEAF(hostpath_node, "path", "type");
STRICT_LEAF(pvc_node, "claimName", "readOnly");
static const char *const volume_fields[] = {"name",
                                            "hostPath",
                                            "emptyDir",
                                            "gcePersistentDisk",
                                            "awsElasticBlockStore",
                                            "gitRepo",
                                            "secret",
                                            "nfs",
                                            "iscsi",
                                            "glusterfs",
                                            "persistentVolumeClaim",
                                            "rbd",
                                            "flexVolume",
                                            "cinder",
                                            "cephfs",
                                            "flocker",
                                            "downwardAPI",
                                            "fc",
                                            "azureFile",
                                            "configMap",
                                            "vsphereVolume",
                                            "quobyte",
                                            "azureDisk",
                                            "photonPersistentDisk",
                                            "projected",
                                            "portworxVolume",
                                            "scaleIO",
                                            "storageos",
                                            "csi",
                                            "ephemeral",
                                            "image",
                                            NULL};
static const struct strict_child volume_children[] = {
        {"configMap", &cmvol_node, false},           {"secret", &secvol_node, false},
        {"emptyDir", &emptydir_node, false},         {"hostPath", &hostpath_node, false},
        {"persistentVolumeClaim", &pvc_node, false}, STRICT_END};
static const struct strict_node volume_node = {volume_fields, volume_children};

STRICT_LEAF(toleration_node, "key", "operator", "value", "effect", "tolerationSeconds");
STRICT_LEAF(pullsecret_node, "name");
STRICT_LEAF(hostalias_node, "ip", "hostnames");
STRICT_LEAF(gate_node, "conditionType");
STRICT_LEAF(schedgate_node, "name");
STRICT_LEAF(sysctl_node, "name", "value");
static const char *const psec_fields[] = {"seLinuxOptions",
                                          "windowsOptions",
                                          "runAsUser",
                                          "runAsGroup",
                                          "runAsNonRoot",
                                          "supplementalGroups",
                                          "supplementalGroupsPolicy",
                                          "fsGroup",
                                          "sysctls",
                                          "fsGroupChangePolicy",
                                          "seccompProfile",
                                          "appArmorProfile",
                                          "seLinuxChangePolicy",
                                          NULL};
static const struct strict_child psec_children[] = {{"seLinuxOptions", &selinux_node, false},
                                                    {"windowsOptions", &winopts_node, false},
                                                    {"sysctls", &sysctl_node, true},
                                                    {"seccompProfile", &seccomp_node, false},
                                                    {"appArmorProfile", &apparmor_node, false},
                                                    STRICT_END};
static const struct strict_node psec_node = {psec_fields, psec_children};
static const char *const tsc_fields[] = {"maxSkew",          "topologyKey",    "whenUnsatisfiable",
                                         "labelSelector",    "minDomains",     "nodeAffinityPolicy",
                                         "nodeTaintsPolicy", "matchLabelKeys", NULL};
static const struct strict_child tsc_children[] = {{"labelSelector", &selector_node, false},
                                                   STRICT_END};
static const struct strict_node tsc_node = {tsc_fields, tsc_children};

static const struct strict_child podspec_children[] = {
        {"containers", &container_node, true},
        {"initContainers", &container_node, true},
        {"volumes", &volume_node, true},
        {"tolerations", &toleration_node, true},
        {"imagePullSecrets", &pullsecret_node, true},
        {"hostAliases", &hostalias_node, true},
        {"readinessGates", &gate_node, true},
        {"schedulingGates", &schedgate_node, true},
        {"securityContext", &psec_node, false},
        {"topologySpreadConstraints", &tsc_node, true},
        STRICT_END};
static const struct strict_node podspec_node = {podspec_fields, podspec_children};

static const char *const template_fields[] = {"metadata", "spec", NULL};
static const struct strict_child template_children[] = {
        {"metadata", &meta_node, false}, {"spec", &podspec_node, false}, {NULL, NULL, false}};
static const struct strict_node template_node = {template_fields, template_children};

static const char *const deployspec_fields[] = {"replicas",
                                                "selector",
                                                "template",
                                                "strategy",
                                                "minReadySeconds",
                                                "revisionHistoryLimit",
                                                "paused",
                                                "progressDeadlineSeconds",
                                                NULL};
STRICT_LEAF(rolling_node, "maxUnavailable", "maxSurge");
static const char *const strategy_fields[] = {"type", "rollingUpdate", NULL};
static const struct strict_child strategy_children[] = {{"rollingUpdate", &rolling_node, false},
                                                        STRICT_END};
static const struct strict_node strategy_node = {strategy_fields, strategy_children};
static const struct strict_child deployspec_children[] = {{"template", &template_node, false},
                                                          {"selector", &selector_node, false},
                                                          {"strategy", &strategy_node, false},
                                                          STRICT_END};
static const struct strict_child rsspec_children[] = {
        {"template", &template_node, false}, {"selector", &selector_node, false}, STRICT_END};
static const struct strict_node deployspec_node = {deployspec_fields, deployspec_children};

static const char *const rsspec_fields[] = {"replicas", "minReadySeconds", "selector", "template",
                                            NULL};
static const struct strict_node rsspec_node = {rsspec_fields, rsspec_children};

static const char *const jobspec_fields[] = {"parallelism",
                                             "completions",
                                             "activeDeadlineSeconds",
                                             "podFailurePolicy",
                                             "successPolicy",
                                             "backoffLimit",
                                             "backoffLimitPerIndex",
                                             "maxFailedIndexes",
                                             "selector",
                                             "manualSelector",
                                             "template",
                                             "ttlSecondsAfterFinished",
                                             "completionMode",
                                             "suspend",
                                             "podReplacementPolicy",
                                             "managedBy",
                                             NULL};
static const struct strict_node jobspec_node = {jobspec_fields, rsspec_children};
static const char *const jobtmpl_fields[] = {"metadata", "spec", NULL};
static const struct strict_child jobtmpl_children[] = {
        {"metadata", &meta_node, false}, {"spec", &jobspec_node, false}, STRICT_END};
static const struct strict_node jobtmpl_node = {jobtmpl_fields, jobtmpl_children};
static const char *const cronspec_fields[] = {
        "schedule", "timeZone",    "startingDeadlineSeconds",    "concurrencyPolicy",
        "suspend",  "jobTemplate", "successfulJobsHistoryLimit", "failedJobsHistoryLimit",
        NULL};
static const struct strict_child cronspec_children[] = {{"jobTemplate", &jobtmpl_node, false},
                                                        STRICT_END};
static const struct strict_node cronspec_node = {cronspec_fields, cronspec_children};

STRICT_LEAF(svcport_ref_node, "name", "number");
static const char *const isvc_fields[] = {"name", "port", NULL};
static const struct strict_child isvc_children[] = {{"port", &svcport_ref_node, false}, STRICT_END};
static const struct strict_node isvc_node = {isvc_fields, isvc_children};
STRICT_LEAF(typedref_node, "apiGroup", "kind", "name");
static const char *const backend_fields[] = {"service", "resource", NULL};
static const struct strict_child backend_children[] = {
        {"service", &isvc_node, false}, {"resource", &typedref_node, false}, STRICT_END};
static const struct strict_node backend_node = {backend_fields, backend_children};
static const char *const ipath_fields[] = {"path", "pathType", "backend", NULL};
static const struct strict_child ipath_children[] = {{"backend", &backend_node, false}, STRICT_END};
static const struct strict_node ipath_node = {ipath_fields, ipath_children};
static const char *const ihttp_fields[] = {"paths", NULL};
static const struct strict_child ihttp_children[] = {{"paths", &ipath_node, true}, STRICT_END};
static const struct strict_node ihttp_node = {ihttp_fields, ihttp_children};
static const char *const irule_fields[] = {"host", "http", NULL};
static const struct strict_child irule_children[] = {{"http", &ihttp_node, false}, STRICT_END};
static const struct strict_node irule_node = {irule_fields, irule_children};
STRICT_LEAF(itls_node, "hosts", "secretName");
static const char *const ingspec_fields[] = {"ingressClassName", "defaultBackend", "tls", "rules",
                                             NULL};
static const struct strict_child ingspec_children[] = {{"defaultBackend", &backend_node, false},
                                                       {"tls", &itls_node, true},
                                                       {"rules", &irule_node, true},
                                                       STRICT_END};
static const struct strict_node ingspec_node = {ingspec_fields, ingspec_children};

STRICT_LEAF(nsspec_node, "finalizers");
STRICT_LEAF(taint_node, "key", "value", "effect", "timeAdded");
static const char *const nodespec_fields[] = {"podCIDR",       "podCIDRs", "providerID",
                                              "unschedulable", "taints",   "configSource",
                                              "externalID",    NULL};
static const struct strict_child nodespec_children[] = {{"taints", &taint_node, true}, STRICT_END};
static const struct strict_node nodespec_node = {nodespec_fields, nodespec_children};
STRICT_LEAF(scopereq_node, "scopeName", "operator", "values");
static const char *const scopesel_fields[] = {"matchExpressions", NULL};
static const struct strict_child scopesel_children[] = {{"matchExpressions", &scopereq_node, true},
                                                        STRICT_END};
static const struct strict_node scopesel_node = {scopesel_fields, scopesel_children};
static const char *const quotaspec_fields[] = {"hard", "scopes", "scopeSelector", NULL};
static const struct strict_child quotaspec_children[] = {{"scopeSelector", &scopesel_node, false},
                                                         STRICT_END};
static const struct strict_node quotaspec_node = {quotaspec_fields, quotaspec_children};
STRICT_LEAF(lritem_node, "type", "max", "min", "default", "defaultRequest", "maxLimitRequestRatio");
static const char *const lrspec_fields[] = {"limits", NULL};
static const struct strict_child lrspec_children[] = {{"limits", &lritem_node, true}, STRICT_END};
static const struct strict_node lrspec_node = {lrspec_fields, lrspec_children};
STRICT_LEAF(leasespec_node, "holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
            "leaseTransitions", "strategy", "preferredHolder");
STRICT_LEAF(icspec_node, "controller", "parameters");

static const char *const sport_fields[] = {"name",       "protocol", "appProtocol", "port",
                                           "targetPort", "nodePort", NULL};
static const struct strict_node sport_node = {sport_fields, NULL};
static const char *const svcspec_fields[] = {"ports",
                                             "selector",
                                             "clusterIP",
                                             "clusterIPs",
                                             "type",
                                             "externalIPs",
                                             "sessionAffinity",
                                             "loadBalancerIP",
                                             "loadBalancerSourceRanges",
                                             "externalName",
                                             "externalTrafficPolicy",
                                             "healthCheckNodePort",
                                             "publishNotReadyAddresses",
                                             "sessionAffinityConfig",
                                             "ipFamilies",
                                             "ipFamilyPolicy",
                                             "allocateLoadBalancerNodePorts",
                                             "loadBalancerClass",
                                             "internalTrafficPolicy",
                                             "trafficDistribution",
                                             NULL};
static const struct strict_child svcspec_children[] = {{"ports", &sport_node, true},
                                                       {NULL, NULL, false}};
static const struct strict_node svcspec_node = {svcspec_fields, svcspec_children};

static const struct strict_child spec_status_job[] = {
        {"metadata", &meta_node, false}, {"spec", &jobspec_node, false}, STRICT_END};
static const struct strict_child spec_status_cron[] = {
        {"metadata", &meta_node, false}, {"spec", &cronspec_node, false}, STRICT_END};
static const struct strict_child spec_status_ing[] = {
        {"metadata", &meta_node, false}, {"spec", &ingspec_node, false}, STRICT_END};
static const struct strict_child spec_status_ns[] = {
        {"metadata", &meta_node, false}, {"spec", &nsspec_node, false}, STRICT_END};
static const struct strict_child spec_status_node[] = {
        {"metadata", &meta_node, false}, {"spec", &nodespec_node, false}, STRICT_END};
static const struct strict_child spec_status_quota[] = {
        {"metadata", &meta_node, false}, {"spec", &quotaspec_node, false}, STRICT_END};
static const struct strict_child spec_status_lr[] = {
        {"metadata", &meta_node, false}, {"spec", &lrspec_node, false}, STRICT_END};
static const struct strict_child spec_status_lease[] = {
        {"metadata", &meta_node, false}, {"spec", &leasespec_node, false}, STRICT_END};
static const struct strict_child spec_status_ic[] = {
        {"metadata", &meta_node, false}, {"spec", &icspec_node, false}, STRICT_END};
static const struct strict_child spec_status_deploy[] = {
        {"metadata", &meta_node, false}, {"spec", &deployspec_node, false}, {NULL, NULL, false}};
static const struct strict_child spec_status_rs[] = {
        {"metadata", &meta_node, false}, {"spec", &rsspec_node, false}, {NULL, NULL, false}};
static const struct strict_child spec_status_pod[] = {
        {"metadata", &meta_node, false}, {"spec", &podspec_node, false}, {NULL, NULL, false}};
static const struct strict_child spec_status_svc[] = {
        {"metadata", &meta_node, false}, {"spec", &svcspec_node, false}, {NULL, NULL, false}};
static const struct strict_child meta_only[] = {{"metadata", &meta_node, false},
                                                {NULL, NULL, false}};

static const char *const top_spec[] = {"apiVersion", "kind", "metadata", "spec", "status", NULL};
static const char *const top_cm[] = {"apiVersion", "kind",      "metadata", "data",
                                     "binaryData", "immutable", NULL};
static const char *const top_secret[] = {"apiVersion", "kind",      "metadata", "data",
                                         "stringData", "immutable", "type",     NULL};
static const char *const top_ep[] = {"apiVersion", "kind", "metadata", "subsets", NULL};
static const char *const top_sa[] = {"apiVersion",
                                     "kind",
                                     "metadata",
                                     "secrets",
                                     "imagePullSecrets",
                                     "automountServiceAccountToken",
                                     NULL};
static const char *const top_event[] = {"apiVersion",
                                        "kind",
                                        "metadata",
                                        "involvedObject",
                                        "reason",
                                        "message",
                                        "source",
                                        "firstTimestamp",
                                        "lastTimestamp",
                                        "count",
                                        "type",
                                        "eventTime",
                                        "series",
                                        "action",
                                        "related",
                                        "reportingComponent",
                                        "reportingInstance",
                                        NULL};
static const char *const top_ic[] = {"apiVersion", "kind", "metadata", "spec", NULL};

static const struct strict_node deploy_top = {top_spec, spec_status_deploy};
static const struct strict_node rs_top = {top_spec, spec_status_rs};
static const struct strict_node pod_top = {top_spec, spec_status_pod};
static const struct strict_node svc_top = {top_spec, spec_status_svc};
static const struct strict_node spec_top = {top_spec, meta_only};
static const struct strict_node cm_top = {top_cm, meta_only};
static const struct strict_node secret_top = {top_secret, meta_only};
static const struct strict_node ep_top = {top_ep, meta_only};
static const struct strict_node sa_top = {top_sa, meta_only};
static const struct strict_node event_top = {top_event, meta_only};
static const struct strict_node ic_top = {top_ic, spec_status_ic};
static const struct strict_node job_top = {top_spec, spec_status_job};
static const struct strict_node cron_top = {top_spec, spec_status_cron};
static const struct strict_node ing_top = {top_spec, spec_status_ing};
static const struct strict_node ns_top = {top_spec, spec_status_ns};
static const struct strict_node node_top = {top_spec, spec_status_node};
static const struct strict_node quota_top = {top_spec, spec_status_quota};
static const struct strict_node lr_top = {top_spec, spec_status_lr};
static const struct strict_node lease_top = {top_spec, spec_status_lease};

/*
 * Find (and, with `prune`, remove) the fields of `v` that node `n` does not
 * describe, appending `unknown field "path"` for each to `found`, comma
 * separated as the real server lists them.
 */
static void strict_walk(json_t *v, const struct strict_node *n, const char *path, bool prune,
                        struct sw_buf *found)
{
        const char *key;
        json_t *x;
        void *tmp;

        if (!json_is_object(v))
                return;
        json_object_foreach_safe(v, tmp, key, x)
        {
                bool known = false;
                char sub[512];

                for (const char *const *f = n->fields; *f && !known; f++)
                        known = strcmp(*f, key) == 0;
                snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
                if (!known) {
                        sw_buf_printf(found, NULL, "%sunknown field \"%s\"", found->len ? ", " : "",
                                      sub);
                        if (prune)
                                json_object_del(v, key);
                        continue;
                }
                for (const struct strict_child *c = n->children; c && c->field; c++) {
                        if (strcmp(c->field, key) != 0)
                                continue;
                        if (c->list) {
                                json_t *e;
                                size_t i;
                                json_array_foreach(x, i, e)
                                {
                                        char el[560];
                                        snprintf(el, sizeof(el), "%s[%zu]", sub, i);
                                        strict_walk(e, c->node, el, prune, found);
                                }
                        } else {
                                strict_walk(x, c->node, sub, prune, found);
                        }
                }
        }
}

int orch_object_strict(json_t *obj, const struct orch_kind *k, bool prune, struct sw_err *err)
{
        const struct strict_node *n = &spec_top;

        if (strcmp(k->kind, "Deployment") == 0)
                n = &deploy_top;
        else if (strcmp(k->kind, "ReplicaSet") == 0)
                n = &rs_top;
        else if (strcmp(k->kind, "Pod") == 0)
                n = &pod_top;
        else if (strcmp(k->kind, "Service") == 0)
                n = &svc_top;
        else if (strcmp(k->kind, "ConfigMap") == 0)
                n = &cm_top;
        else if (strcmp(k->kind, "Secret") == 0)
                n = &secret_top;
        else if (strcmp(k->kind, "Endpoints") == 0)
                n = &ep_top;
        else if (strcmp(k->kind, "ServiceAccount") == 0)
                n = &sa_top;
        else if (strcmp(k->kind, "Event") == 0)
                n = &event_top;
        else if (strcmp(k->kind, "IngressClass") == 0)
                n = &ic_top;
        else if (strcmp(k->kind, "Job") == 0)
                n = &job_top;
        else if (strcmp(k->kind, "CronJob") == 0)
                n = &cron_top;
        else if (strcmp(k->kind, "Ingress") == 0)
                n = &ing_top;
        else if (strcmp(k->kind, "Namespace") == 0)
                n = &ns_top;
        else if (strcmp(k->kind, "Node") == 0)
                n = &node_top;
        else if (strcmp(k->kind, "ResourceQuota") == 0)
                n = &quota_top;
        else if (strcmp(k->kind, "LimitRange") == 0)
                n = &lr_top;
        else if (strcmp(k->kind, "Lease") == 0)
                n = &lease_top;
        {
                struct sw_buf found = SW_BUF_INIT;
                int rc = 0;

                strict_walk(obj, n, "", prune, &found);
                if (found.len) {
                        sw_err_set(err, SW_EINVAL, "%s", sw_buf_str(&found));
                        rc = prune ? 0 : SW_EINVAL;
                }
                sw_buf_release(&found);
                return rc;
        }
}
