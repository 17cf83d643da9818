/*
 * admission.c - the two levels of resource limits: a LimitRange bounds and
 * defaults each container of a pod, a ResourceQuota caps the sum over a
 * namespace.
 *
 * LimitRange (type Container): containers without limits get `default`,
 * without requests get `defaultRequest` (else their limits), and then each
 * request must be at least `min` and each limit at most `max`.
 * ResourceQuota: `pods`, `services`, `configmaps`, `secrets`,
 * `services.nodeports`, `count/<resource>[.<group>]` and the compute
 * resources `requests.cpu|memory`, `limits.cpu|memory` (`cpu`/`memory` mean
 * requests). A create that would pass `spec.hard` is refused with the real
 * API server's Forbidden message; `status.used` is recomputed after every
 * write in a namespace that has quotas (the quota controller's job, done
 * synchronously here).
 *
 * DefaultTolerationSeconds: a new pod that does not already tolerate
 * node.kubernetes.io/not-ready or /unreachable with effect NoExecute gets a
 * toleration of each for the configured seconds (300 by default), so its
 * pods leave a dead node after that long and not at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/validate.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

static const char *const compute[] = {"requests.cpu", "requests.memory", "limits.cpu",
                                      "limits.memory", NULL};

/* Milli units back to the shortest quantity text ("500m", "2", "128Mi"). */
static void qty_fmt(char *out, size_t size, int64_t milli, bool memory)
{
        static const struct {
                const char *suffix;
                int64_t factor;
        } bin[] = {{"Gi", 1073741824LL}, {"Mi", 1048576LL}, {"Ki", 1024LL}};

        if (milli % 1000 != 0) {
                snprintf(out, size, "%lldm", (long long)milli);
                return;
        }
        milli /= 1000;
        if (memory && milli != 0)
                for (size_t i = 0; i < 3; i++)
                        if (milli % bin[i].factor == 0) {
                                snprintf(out, size, "%lld%s", (long long)(milli / bin[i].factor),
                                         bin[i].suffix);
                                return;
                        }
        snprintf(out, size, "%lld", (long long)milli);
}

static json_t *obj_at(json_t *parent, const char *key)
{
        json_t *v = json_object_get(parent, key);

        if (!json_is_object(v)) {
                v = json_object();
                json_object_set_new(parent, key, v);
        }
        return v;
}

static int list_ns(json_t **out, struct orch_store *s, const char *resource, const char *ns,
                   struct sw_err *err)
{
        struct orch_list_query q = {0};
        int64_t rev;
        bool more;

        q.ns = ns;
        return orch_store_list(out, &rev, &more, s, resource, &q, err);
}

/* ---- LimitRange ----------------------------------------------------------- */

static int limit_container(json_t *c, const json_t *item, const char *pod, struct sw_err *err)
{
        json_t *res = obj_at(c, "resources"), *limits, *requests;
        const char *rname;
        json_t *v;

        limits = obj_at(res, "limits");
        requests = obj_at(res, "requests");
        json_object_foreach((json_t *)json_object_get(item, "default"), rname, v)
        {
                if (!json_object_get(limits, rname))
                        json_object_set(limits, rname, v);
        }
        json_object_foreach((json_t *)json_object_get(item, "defaultRequest"), rname, v)
        {
                if (!json_object_get(requests, rname))
                        json_object_set(requests, rname, v);
        }
        json_object_foreach(limits, rname, v)
        {
                if (!json_object_get(requests, rname) &&
                    json_object_get(json_object_get(item, "default"), rname))
                        json_object_set(requests, rname, v);
        }
        json_object_foreach((json_t *)json_object_get(item, "max"), rname, v)
        {
                json_t *have = json_object_get(limits, rname);
                if (!have)
                        return sw_err_set(err, SW_EPERM,
                                          "pods \"%s\" is forbidden: maximum %s usage per "
                                          "Container is %s.  No limit is specified",
                                          pod, rname, json_string_value(v));
                if (sw_json_quantity(have, -1) > sw_json_quantity(v, -1))
                        return sw_err_set(err, SW_EPERM,
                                          "pods \"%s\" is forbidden: maximum %s usage per "
                                          "Container is %s, but limit is %s",
                                          pod, rname, json_string_value(v),
                                          json_string_value(have));
        }
        json_object_foreach((json_t *)json_object_get(item, "min"), rname, v)
        {
                json_t *have = json_object_get(requests, rname);
                if (!have)
                        return sw_err_set(err, SW_EPERM,
                                          "pods \"%s\" is forbidden: minimum %s usage per "
                                          "Container is %s.  No request is specified",
                                          pod, rname, json_string_value(v));
                if (sw_json_quantity(have, -1) < sw_json_quantity(v, -1))
                        return sw_err_set(err, SW_EPERM,
                                          "pods \"%s\" is forbidden: minimum %s usage per "
                                          "Container is %s, but request is %s",
                                          pod, rname, json_string_value(v),
                                          json_string_value(have));
        }
        if (json_object_size(limits) == 0)
                json_object_del(res, "limits");
        if (json_object_size(requests) == 0)
                json_object_del(res, "requests");
        return 0;
}

static int apply_limit_ranges(struct orch_store *s, json_t *pod, const char *ns, struct sw_err *err)
{
        json_t *lrs = NULL, *lr, *item, *c;
        const char *name = sw_json_str(json_object_get(pod, "metadata"), "name", "");
        size_t i, j, k;
        int rc = list_ns(&lrs, s, "limitranges", ns, err);

        if (rc)
                return rc;
        json_array_foreach(lrs, i, lr)
        {
                json_array_foreach(json_object_get(json_object_get(lr, "spec"), "limits"), j, item)
                {
                        if (strcmp(sw_json_str(item, "type", ""), "Container") != 0)
                                continue;
                        json_array_foreach(
                                json_object_get(json_object_get(pod, "spec"), "containers"), k, c)
                        {
                                if ((rc = limit_container(c, item, name, err)) != 0)
                                        goto out;
                        }
                }
        }
out:
        json_decref(lrs);
        return rc;
}

/* ---- ResourceQuota -------------------------------------------------------- */

static bool pod_counts(const json_t *pod)
{
        const char *phase = sw_json_str(json_object_get(pod, "status"), "phase", "");

        return strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0;
}

/* Sum of a pod's containers for "requests.cpu" and the like, in milli units. */
static int64_t pod_compute(const json_t *pod, const char *what)
{
        const char *dot = strchr(what, '.');
        char kind[16];
        json_t *c;
        size_t i;
        int64_t sum = 0;

        snprintf(kind, sizeof(kind), "%.*s", (int)(dot - what), what);
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, c)
        {
                int64_t v = sw_json_quantity(
                        json_object_get(json_object_get(json_object_get(c, "resources"), kind),
                                        dot + 1),
                        -1);
                if (v > 0)
                        sum += v;
        }
        return sum;
}

/* What one object adds to quota resource `r`, in milli units (counts are x1000). */
static int64_t usage_of(const char *r, const char *resource, const json_t *obj)
{
        char key[160];

        if (strcmp(r, "cpu") == 0)
                r = "requests.cpu";
        else if (strcmp(r, "memory") == 0)
                r = "requests.memory";
        if (strcmp(resource, "pods") == 0) {
                if (!pod_counts(obj))
                        return 0;
                if (strcmp(r, "pods") == 0)
                        return 1000;
                for (const char *const *c = compute; *c; c++)
                        if (strcmp(r, *c) == 0)
                                return pod_compute(obj, r);
        }
        if (strcmp(r, resource) == 0 &&
            (strcmp(r, "services") == 0 || strcmp(r, "configmaps") == 0 ||
             strcmp(r, "secrets") == 0 || strcmp(r, "resourcequotas") == 0))
                return 1000;
        if (strcmp(r, "services.nodeports") == 0 && strcmp(resource, "services") == 0) {
                const char *type = sw_json_str(json_object_get(obj, "spec"), "type", "");
                if (strcmp(type, "NodePort") == 0 || strcmp(type, "LoadBalancer") == 0)
                        return 1000 * (int64_t)json_array_size(json_object_get(
                                              json_object_get(obj, "spec"), "ports"));
                return 0;
        }
        snprintf(key, sizeof(key), "count/%s", resource);
        return strcmp(r, key) == 0 ? 1000 : 0;
}

/* The resources a quota's key needs listed: "pods", "services", or a store key. */
static const char *resource_of(const char *r)
{
        if (strncmp(r, "count/", 6) == 0)
                return r + 6;
        if (strcmp(r, "services.nodeports") == 0)
                return "services";
        if (strcmp(r, "pods") == 0 || strcmp(r, "cpu") == 0 || strcmp(r, "memory") == 0 ||
            strncmp(r, "requests.", 9) == 0 || strncmp(r, "limits.", 7) == 0)
                return "pods";
        return r;
}

static bool is_memory(const char *r)
{
        return strstr(r, "memory") != NULL;
}

/* Current use of `r` in `ns`, leaving out `skip_name` of `skip_resource`. */
static int used_in(int64_t *out, struct orch_store *s, const char *ns, const char *r,
                   struct sw_err *err)
{
        json_t *items = NULL, *o;
        const char *res = resource_of(r);
        size_t i;
        int rc = list_ns(&items, s, res, ns, err);

        if (rc)
                return rc;
        *out = 0;
        json_array_foreach(items, i, o)
        {
                *out += usage_of(r, res, o);
        }
        json_decref(items);
        return 0;
}

static void quota_text(char *out, size_t size, const char *r, int64_t milli)
{
        qty_fmt(out, size, milli, is_memory(r));
}

/* Refuse `obj` (of `resource`) when it would take a quota of `ns` past its hard limits. */
static int check_quotas(struct orch_store *s, const char *resource, const json_t *obj,
                        const char *ns, const char *name, struct sw_err *err)
{
        json_t *quotas = NULL, *qo, *hard, *v;
        const char *r;
        size_t i;
        int rc = list_ns(&quotas, s, "resourcequotas", ns, err);

        if (rc)
                return rc;
        json_array_foreach(quotas, i, qo)
        {
                struct sw_buf req = SW_BUF_INIT, used = SW_BUF_INIT, lim = SW_BUF_INIT,
                              missing = SW_BUF_INIT;
                const char *qname = sw_json_str(json_object_get(qo, "metadata"), "name", "");

                hard = json_object_get(json_object_get(qo, "spec"), "hard");
                json_object_foreach(hard, r, v)
                {
                        int64_t add = usage_of(r, resource, obj), have = 0,
                                cap = sw_json_quantity(v, -1);
                        char a[32], b[32], c[32];

                        if (strcmp(resource_of(r), resource) != 0)
                                continue;
                        if (strcmp(resource, "pods") == 0 && add == 0 && pod_counts(obj) &&
                            strcmp(r, "pods") != 0) {
                                sw_buf_printf(&missing, NULL, "%s%s", missing.len ? "," : "",
                                              strcmp(r, "cpu") == 0      ? "requests.cpu"
                                              : strcmp(r, "memory") == 0 ? "requests.memory"
                                                                         : r);
                                continue;
                        }
                        if (add == 0)
                                continue;
                        if ((rc = used_in(&have, s, ns, r, err)) != 0)
                                break;
                        if (cap >= 0 && have + add > cap) {
                                quota_text(a, sizeof(a), r, add);
                                quota_text(b, sizeof(b), r, have);
                                quota_text(c, sizeof(c), r, cap);
                                sw_buf_printf(&req, NULL, "%s%s=%s", req.len ? "," : "", r, a);
                                sw_buf_printf(&used, NULL, "%s%s=%s", used.len ? "," : "", r, b);
                                sw_buf_printf(&lim, NULL, "%s%s=%s", lim.len ? "," : "", r, c);
                        }
                }
                if (rc == 0 && missing.len)
                        rc = sw_err_set(err, SW_EPERM,
                                        "%s \"%s\" is forbidden: failed quota: %s: must specify %s",
                                        resource, name, qname, sw_buf_str(&missing));
                else if (rc == 0 && req.len)
                        rc = sw_err_set(err, SW_EPERM,
                                        "%s \"%s\" is forbidden: exceeded quota: %s, requested: "
                                        "%s, used: %s, limited: %s",
                                        resource, name, qname, sw_buf_str(&req), sw_buf_str(&used),
                                        sw_buf_str(&lim));
                sw_buf_release(&req);
                sw_buf_release(&used);
                sw_buf_release(&lim);
                sw_buf_release(&missing);
                if (rc)
                        break;
        }
        json_decref(quotas);
        return rc;
}

/* Whether `tols` already tolerate the NoExecute taint `key`. */
static bool tolerates(const json_t *tols, const char *key)
{
        const json_t *t;
        size_t i;

        json_array_foreach(tols, i, t)
        {
                const char *k = sw_json_str(t, "key", ""), *eff = sw_json_str(t, "effect", "");
                if (*eff && strcmp(eff, "NoExecute") != 0)
                        continue;
                if (strcmp(k, key) == 0 ||
                    (!*k && strcmp(sw_json_str(t, "operator", ""), "Exists") == 0))
                        return true;
        }
        return false;
}

static void default_tolerations(json_t *pod, int64_t seconds)
{
        static const char *const keys[] = {"node.kubernetes.io/not-ready",
                                           "node.kubernetes.io/unreachable"};
        json_t *spec = obj_at(pod, "spec"), *tols = json_object_get(spec, "tolerations");

        if (seconds < 0)
                return;
        if (!json_is_array(tols)) {
                tols = json_array();
                json_object_set_new(spec, "tolerations", tols);
        }
        for (size_t i = 0; i < 2; i++) {
                if (tolerates(tols, keys[i]))
                        continue;
                json_array_append_new(tols, json_pack("{s:s,s:s,s:s,s:I}", "key", keys[i],
                                                      "operator", "Exists", "effect", "NoExecute",
                                                      "tolerationSeconds", (json_int_t)seconds));
        }
}

int orch_admission_check(struct orch_store *s, const char *resource, json_t *obj, const json_t *old,
                         int64_t toleration_s, unsigned have, struct sw_err *err)
{
        const json_t *meta = json_object_get(obj, "metadata");
        const char *ns = sw_json_str(meta, "namespace", "");
        int rc;

        if (!*ns || old)
                return 0; /* quotas and limits apply to what is created */
        if (strcmp(resource, "pods") == 0) {
                default_tolerations(obj, toleration_s);
                if ((have & ORCH_HAVE_LIMITS) && (rc = apply_limit_ranges(s, obj, ns, err)) != 0)
                        return rc;
                /* The limits' defaults count for the class, as Kubernetes reckons it after admission. */
                if (have & ORCH_HAVE_LIMITS)
                        json_object_set_new(
                                obj_at(obj, "status"), "qosClass",
                                json_string(orch_pod_qos(json_object_get(obj, "spec"))));
        }
        if (!(have & ORCH_HAVE_QUOTAS))
                return 0;
        return check_quotas(s, resource, obj, ns, sw_json_str(meta, "name", ""), err);
}

bool orch_quota_any(struct orch_store *s, const char *ns)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *quotas = NULL;
        bool any;

        if (!ns || !*ns)
                return false;
        if (list_ns(&quotas, s, "resourcequotas", ns, &err) != 0)
                return true;
        any = json_array_size(quotas) > 0;
        json_decref(quotas);
        return any;
}

int orch_quota_refresh(struct orch_store *s, const char *ns, struct sw_err *err)
{
        json_t *quotas = NULL, *qo, *v;
        const char *r;
        size_t i;
        int rc;

        if (!ns || !*ns)
                return 0;
        if ((rc = list_ns(&quotas, s, "resourcequotas", ns, err)) != 0)
                return rc;
        json_array_foreach(quotas, i, qo)
        {
                json_t *copy = sw_json_copy(qo), *status = obj_at(copy, "status"), *used,
                       *out = NULL;
                json_t *hard = json_object_get(json_object_get(copy, "spec"), "hard");

                json_object_set(status, "hard", hard ? hard : json_object());
                used = json_object();
                json_object_foreach(hard, r, v)
                {
                        int64_t have = 0;
                        char text[32];
                        if ((rc = used_in(&have, s, ns, r, err)) != 0)
                                break;
                        quota_text(text, sizeof(text), r, have);
                        json_object_set_new(used, r, json_string(text));
                }
                json_object_set_new(status, "used", used);
                if (rc == 0 && !json_equal(copy, qo))
                        rc = orch_store_update(&out, NULL, s, "resourcequotas", copy, 0, err);
                json_decref(out);
                json_decref(copy);
                if (rc == SW_ECONFLICT || rc == SW_ENOTFOUND) {
                        sw_err_clear(err);
                        rc = 0; /* a concurrent write refreshes it again */
                }
                if (rc)
                        break;
        }
        json_decref(quotas);
        return rc;
}
