/*
 * table.c - server-side printing: the meta.k8s.io/v1 Table that `kubectl get`
 * asks for (Accept ...;as=Table), with the columns the real API server
 * prints for each kind (kubernetes pkg/printers/internalversion). Columns
 * with priority 1 appear only with `-o wide`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

struct column {
        const char *name;
        const char *type; /* string, integer, date */
        const char *format;
        int priority;
        const char *desc;
};

#define NAME_COL                                                                                   \
        {                                                                                          \
                "Name", "string", "name", 0, "Name must be unique within a namespace."             \
        }
#define AGE_COL                                                                                               \
        {                                                                                                     \
                "Age", "string", "", 0,                                                                       \
                        "CreationTimestamp is a timestamp representing the server time when this object was " \
                        "created."                                                                            \
        }
#define END_COL                                                                                    \
        {                                                                                          \
                NULL, NULL, NULL, 0, NULL                                                          \
        }

static const struct column pod_cols[] = {
        NAME_COL,
        {"Ready", "string", "", 0,
         "The aggregate readiness state of this pod for accepting traffic."},
        {"Status", "string", "", 0, "The aggregate status of the containers in this pod."},
        {"Restarts", "string", "", 0,
         "The number of times the containers in this pod have been restarted and when the last "
         "container in this pod has restarted."},
        AGE_COL,
        {"IP", "string", "", 1,
         "IP address allocated to the pod. Routable at least within the cluster."},
        {"Node", "string", "", 1, "Name of the Node this pod is running on."},
        {"Nominated Node", "string", "", 1, "Name of the node the pod is nominated to run on."},
        {"Readiness Gates", "string", "", 1, "The readiness gates of the pod."},
        END_COL};
static const struct column deploy_cols[] = {
        NAME_COL,
        {"Ready", "string", "", 0, "Number of the pod with ready state"},
        {"Up-to-date", "integer", "", 0,
         "Total number of non-terminated pods targeted by this "
         "deployment that have the desired template spec."},
        {"Available", "integer", "", 0,
         "Total number of available pods (ready for at least "
         "minReadySeconds) targeted by this deployment."},
        AGE_COL,
        {"Containers", "string", "", 1, "Names of each container in the template."},
        {"Images", "string", "", 1, "Images referenced by each container in the template."},
        {"Selector", "string", "", 1, "Label selector for pods."},
        END_COL};
static const struct column rs_cols[] = {
        NAME_COL,
        {"Desired", "integer", "", 0, "Number of desired pods."},
        {"Current", "integer", "", 0, "The number of actual replicas."},
        {"Ready", "integer", "", 0, "The number of ready replicas for this replica set."},
        AGE_COL,
        {"Containers", "string", "", 1, "Names of each container in the template."},
        {"Images", "string", "", 1, "Images referenced by each container in the template."},
        {"Selector", "string", "", 1, "Label selector for pods."},
        END_COL};
static const struct column svc_cols[] = {
        NAME_COL,
        {"Type", "string", "", 0, "How the service is exposed."},
        {"Cluster-IP", "string", "", 0, "The IP address of the service."},
        {"External-IP", "string", "", 0, "The list of external IP addresses."},
        {"Port(s)", "string", "", 0, "The list of ports that are exposed by this service."},
        AGE_COL,
        {"Selector", "string", "", 1,
         "Route service traffic to pods with label keys and values "
         "matching this selector."},
        END_COL};
static const struct column ep_cols[] = {
        NAME_COL, {"Endpoints", "string", "", 0, "Endpoints of the service."}, AGE_COL, END_COL};
static const struct column ing_cols[] = {
        NAME_COL,
        {"Class", "string", "", 0, "The name of the IngressClass resource."},
        {"Hosts", "string", "", 0, "Hosts that incoming requests are matched against."},
        {"Address", "string", "", 0,
         "Address is a list containing ingress points for the load-balancer"},
        {"Ports", "string", "", 0, "Ports of TLS configurations that open"},
        AGE_COL,
        END_COL};
static const struct column node_cols[] = {
        NAME_COL,
        {"Status", "string", "", 0, "The status of the node"},
        {"Roles", "string", "", 0, "The roles of the node"},
        AGE_COL,
        {"Version", "string", "", 0, "Kubelet Version reported by the node."},
        {"Internal-IP", "string", "", 1, "List of addresses reachable to the node."},
        {"External-IP", "string", "", 1, "List of addresses reachable to the node."},
        {"OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release."},
        {"Kernel-Version", "string", "", 1, "Kernel Version reported by the node."},
        {"Container-Runtime", "string", "", 1, "Container Runtime Version reported by the node."},
        END_COL};
static const struct column ns_cols[] = {
        NAME_COL, {"Status", "string", "", 0, "The status of the namespace"}, AGE_COL, END_COL};
static const struct column cm_cols[] = {
        NAME_COL,
        {"Data", "integer", "", 0, "Data contains the configuration data."},
        AGE_COL,
        END_COL};
static const struct column secret_cols[] = {
        NAME_COL,
        {"Type", "string", "", 0, "The type of the secret"},
        {"Data", "integer", "", 0, "Data contains the secret data."},
        AGE_COL,
        END_COL};
static const struct column sa_cols[] = {
        NAME_COL,
        {"Secrets", "integer", "", 0, "Secrets is a list of the secrets in the same namespace."},
        AGE_COL,
        END_COL};
static const struct column event_cols[] = {
        {"Last Seen", "string", "", 0, "The time the event was last seen."},
        {"Type", "string", "", 0, "Type of this event (Normal, Warning)."},
        {"Reason", "string", "", 0,
         "Short, machine understandable string that gives the reason "
         "for the transition into the object's current status."},
        {"Object", "string", "", 0, "The object that this event is about."},
        {"Subobject", "string", "", 1, "The subobject that this event is about."},
        {"Source", "string", "", 1, "The component reporting this event."},
        {"Message", "string", "", 0,
         "A human-readable description of the status of this operation."},
        {"First Seen", "string", "", 1, "The time the event was first seen."},
        {"Count", "string", "", 1, "The number of times this event has occurred."},
        {"Name", "string", "name", 1, "Name must be unique within a namespace."},
        END_COL};
static const struct column quota_cols[] = {
        NAME_COL,
        AGE_COL,
        {"Request", "string", "", 0,
         "Request represents a minimum amount of cpu/memory that a "
         "container may consume."},
        {"Limit", "string", "", 0,
         "Limits control the maximum amount of cpu/memory that a "
         "container may use independent of contention on the node."},
        END_COL};
static const struct column lr_cols[] = {
        NAME_COL, {"Created At", "date", "", 0, "Time when the limit range was created."}, END_COL};
static const struct column lease_cols[] = {
        NAME_COL, {"Holder", "string", "", 0, "The holder of this lease."}, AGE_COL, END_COL};
static const struct column job_cols[] = {
        NAME_COL,
        {"Status", "string", "", 0, "Status of the job."},
        {"Completions", "string", "", 0, "The completion status of the job."},
        {"Duration", "string", "", 0, "Time required to complete the job."},
        AGE_COL,
        {"Containers", "string", "", 1, "Names of each container in the template."},
        {"Images", "string", "", 1, "Images referenced by each container in the template."},
        {"Selector", "string", "", 1, "Label selector for pods."},
        END_COL};
static const struct column cj_cols[] = {
        NAME_COL,
        {"Schedule", "string", "", 0, "The schedule in Cron format."},
        {"Timezone", "string", "", 0, "The time zone the cron job is scheduled in."},
        {"Suspend", "boolean", "", 0, "Whether the cron job is suspended."},
        {"Active", "integer", "", 0, "The number of currently running jobs."},
        {"Last Schedule", "string", "", 0, "When the job was last successfully scheduled."},
        AGE_COL,
        {"Containers", "string", "", 1, "Names of each container in the template."},
        {"Images", "string", "", 1, "Images referenced by each container in the template."},
        {"Selector", "string", "", 1, "Label selector for pods."},
        END_COL};
static const struct column ic_cols[] = {
        NAME_COL,
        {"Controller", "string", "", 0, "Controller that is responsible for handling this class."},
        {"Parameters", "string", "", 0, "A reference to a resource with additional parameters."},
        AGE_COL,
        END_COL};
static const struct column default_cols[] = {
        NAME_COL,
        {"Created At", "date", "", 0,
         "CreationTimestamp is a timestamp representing the server "
         "time when this object was created."},
        END_COL};

static const struct column *columns_of(const struct orch_kind *k)
{
        static const struct {
                const char *kind;
                const struct column *cols;
        } map[] = {
                {"Pod", pod_cols},
                {"Deployment", deploy_cols},
                {"ReplicaSet", rs_cols},
                {"Service", svc_cols},
                {"Endpoints", ep_cols},
                {"Ingress", ing_cols},
                {"Node", node_cols},
                {"Namespace", ns_cols},
                {"ConfigMap", cm_cols},
                {"Secret", secret_cols},
                {"ServiceAccount", sa_cols},
                {"Event", event_cols},
                {"ResourceQuota", quota_cols},
                {"LimitRange", lr_cols},
                {"Lease", lease_cols},
                {"Job", job_cols},
                {"CronJob", cj_cols},
                {"IngressClass", ic_cols},
        };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                if (strcmp(map[i].kind, k->kind) == 0)
                        return map[i].cols;
        return default_cols;
}

json_t *orch_table_columns(const struct orch_kind *k)
{
        json_t *cols = json_array();

        for (const struct column *c = columns_of(k); c->name; c++)
                json_array_append_new(cols,
                                      json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", c->name, "type",
                                                c->type, "format", c->format, "description",
                                                c->desc, "priority", c->priority));
        return cols;
}

void orch_human_duration(char *out, size_t size, int64_t ms)
{
        int64_t s = ms / 1000, m, h, d;

        if (s < -1) {
                snprintf(out, size, "<invalid>");
                return;
        }
        if (s < 0)
                s = 0;
        if (s < 120) {
                snprintf(out, size, "%llds", (long long)s);
                return;
        }
        m = s / 60;
        if (m < 10) {
                if (s % 60 == 0)
                        snprintf(out, size, "%lldm", (long long)m);
                else
                        snprintf(out, size, "%lldm%llds", (long long)m, (long long)(s % 60));
                return;
        }
        if (m < 180) {
                snprintf(out, size, "%lldm", (long long)m);
                return;
        }
        h = m / 60;
        if (h < 8) {
                if (m % 60 == 0)
                        snprintf(out, size, "%lldh", (long long)h);
                else
                        snprintf(out, size, "%lldh%lldm", (long long)h, (long long)(m % 60));
                return;
        }
        if (h < 48) {
                snprintf(out, size, "%lldh", (long long)h);
                return;
        }
        d = h / 24;
        if (h < 24 * 8) {
                if (h % 24 == 0)
                        snprintf(out, size, "%lldd", (long long)d);
                else
                        snprintf(out, size, "%lldd%lldh", (long long)d, (long long)(h % 24));
                return;
        }
        if (h < 24 * 365 * 2) {
                snprintf(out, size, "%lldd", (long long)d);
                return;
        }
        if (h < 24 * 365 * 8) {
                if (d % 365 == 0)
                        snprintf(out, size, "%lldy", (long long)(d / 365));
                else
                        snprintf(out, size, "%lldy%lldd", (long long)(d / 365),
                                 (long long)(d % 365));
                return;
        }
        snprintf(out, size, "%lldy", (long long)(d / 365));
}

static json_t *age_cell(const char *ts, int64_t now_ms)
{
        char b[32];
        int64_t t = orch_time_parse(ts);

        if (t < 0)
                return json_string("<unknown>");
        orch_human_duration(b, sizeof(b), now_ms - t);
        return json_string(b);
}

static const json_t *path(const json_t *v, const char *a, const char *b, const char *c)
{
        v = json_object_get(v, a);
        if (b)
                v = json_object_get(v, b);
        if (c)
                v = json_object_get(v, c);
        return v;
}

static json_int_t int_at(const json_t *obj, const char *a, const char *b)
{
        return json_integer_value(path(obj, a, b, NULL));
}

static const char *str_or(const json_t *v, const char *def)
{
        return json_is_string(v) && json_string_length(v) ? json_string_value(v) : def;
}

/* "a,b" of each container's `field` in a pod spec. */
static json_t *containers_cell(const json_t *podspec, const char *field)
{
        struct sw_buf b = SW_BUF_INIT;
        json_t *c, *cell;
        size_t i;

        json_array_foreach(json_object_get(podspec, "containers"), i, c)
                sw_buf_printf(&b, NULL, "%s%s", i ? "," : "", sw_json_str(c, field, ""));
        cell = json_string(sw_buf_str(&b));
        sw_buf_release(&b);
        return cell;
}

static json_t *selector_cell(const json_t *sel)
{
        char *s = orch_labelsel_string(sel);
        json_t *cell = json_string(*s ? s : "<none>");

        free(s);
        return cell;
}

static json_t *map_selector_cell(const json_t *sel)
{
        struct sw_buf b = SW_BUF_INIT;
        const char *k;
        json_t *v, *cell;

        json_object_foreach((json_t *)sel, k, v)
                sw_buf_printf(&b, NULL, "%s%s=%s", b.len ? "," : "", k, str_or(v, ""));
        cell = json_string(b.len ? sw_buf_str(&b) : "<none>");
        sw_buf_release(&b);
        return cell;
}

static void pod_cells(json_t *cells, const json_t *obj, int64_t now)
{
        const json_t *status = json_object_get(obj, "status"), *spec = json_object_get(obj, "spec");
        json_t *cs;
        const char *reason = str_or(json_object_get(status, "reason"), NULL);
        size_t i, total = json_array_size(json_object_get(spec, "containers")), ready = 0;
        json_int_t restarts = 0;
        char b[64];

        if (!reason)
                reason = str_or(json_object_get(status, "phase"), "Unknown");
        json_array_foreach(json_object_get(status, "containerStatuses"), i, cs)
        {
                const char *waiting = str_or(path(cs, "state", "waiting", "reason"), NULL);
                const char *term = str_or(path(cs, "state", "terminated", "reason"), NULL);
                restarts += json_integer_value(json_object_get(cs, "restartCount"));
                if (json_is_true(json_object_get(cs, "ready")))
                        ready++;
                if (waiting)
                        reason = waiting;
                else if (term)
                        reason = term;
        }
        if (path(obj, "metadata", "deletionTimestamp", NULL))
                reason = "Terminating";
        snprintf(b, sizeof(b), "%zu/%zu", ready, total);
        json_array_append_new(cells, json_string(b));
        json_array_append_new(cells, json_string(reason));
        snprintf(b, sizeof(b), "%lld", (long long)restarts);
        json_array_append_new(cells, json_string(b));
        json_array_append_new(
                cells, age_cell(str_or(path(obj, "metadata", "creationTimestamp", NULL), ""), now));
        json_array_append_new(cells,
                              json_string(str_or(json_object_get(status, "podIP"), "<none>")));
        json_array_append_new(cells,
                              json_string(str_or(json_object_get(spec, "nodeName"), "<none>")));
        json_array_append_new(
                cells, json_string(str_or(json_object_get(status, "nominatedNodeName"), "<none>")));
        json_array_append_new(cells, json_string("<none>"));
}

static void service_cells(json_t *cells, const json_t *obj, int64_t now)
{
        const json_t *spec = json_object_get(obj, "spec");
        const char *type = str_or(json_object_get(spec, "type"), "ClusterIP");
        struct sw_buf b = SW_BUF_INIT, ext = SW_BUF_INIT;
        json_t *p, *ip;
        size_t i;

        json_array_append_new(cells, json_string(type));
        json_array_append_new(cells,
                              json_string(str_or(json_object_get(spec, "clusterIP"), "<none>")));
        json_array_foreach(json_object_get(spec, "externalIPs"), i, ip)
                sw_buf_printf(&ext, NULL, "%s%s", i ? "," : "", str_or(ip, ""));
        if (strcmp(type, "ExternalName") == 0)
                json_array_append_new(
                        cells,
                        json_string(str_or(json_object_get(spec, "externalName"), "<none>")));
        else if (strcmp(type, "LoadBalancer") == 0 && !ext.len)
                json_array_append_new(cells, json_string("<pending>"));
        else
                json_array_append_new(cells, json_string(ext.len ? sw_buf_str(&ext) : "<none>"));
        json_array_foreach(json_object_get(spec, "ports"), i, p)
        {
                json_int_t np = json_integer_value(json_object_get(p, "nodePort"));
                if (np)
                        sw_buf_printf(&b, NULL, "%s%lld:%lld/%s", i ? "," : "",
                                      (long long)json_integer_value(json_object_get(p, "port")),
                                      (long long)np, str_or(json_object_get(p, "protocol"), "TCP"));
                else
                        sw_buf_printf(&b, NULL, "%s%lld/%s", i ? "," : "",
                                      (long long)json_integer_value(json_object_get(p, "port")),
                                      str_or(json_object_get(p, "protocol"), "TCP"));
        }
        json_array_append_new(cells, json_string(b.len ? sw_buf_str(&b) : "<none>"));
        json_array_append_new(
                cells, age_cell(str_or(path(obj, "metadata", "creationTimestamp", NULL), ""), now));
        json_array_append_new(cells, map_selector_cell(json_object_get(spec, "selector")));
        sw_buf_release(&b);
        sw_buf_release(&ext);
}

static void endpoints_cells(json_t *cells, const json_t *obj)
{
        struct sw_buf b = SW_BUF_INIT;
        json_t *ss, *a, *p;
        size_t i, j, k, n = 0;

        json_array_foreach(json_object_get(obj, "subsets"), i, ss)
        {
                json_array_foreach(json_object_get(ss, "addresses"), j, a)
                {
                        json_t *ports = json_object_get(ss, "ports");
                        if (!json_array_size(ports) && n < 3) {
                                sw_buf_printf(&b, NULL, "%s%s", n ? "," : "",
                                              sw_json_str(a, "ip", ""));
                                n++;
                        }
                        json_array_foreach(ports, k, p)
                        {
                                if (n < 3)
                                        sw_buf_printf(&b, NULL, "%s%s:%lld", n ? "," : "",
                                                      sw_json_str(a, "ip", ""),
                                                      (long long)sw_json_int(p, "port", 0));
                                n++;
                        }
                }
        }
        if (n > 3)
                sw_buf_printf(&b, NULL, " + %zu more...", n - 3);
        json_array_append_new(cells, json_string(n ? sw_buf_str(&b) : "<none>"));
        sw_buf_release(&b);
}

static void ingress_cells(json_t *cells, const json_t *obj)
{
        const json_t *spec = json_object_get(obj, "spec");
        struct sw_buf hosts = SW_BUF_INIT, addr = SW_BUF_INIT;
        json_t *r, *lb;
        size_t i;

        json_array_append_new(
                cells, json_string(str_or(json_object_get(spec, "ingressClassName"), "<none>")));
        json_array_foreach(json_object_get(spec, "rules"), i, r) sw_buf_printf(
                &hosts, NULL, "%s%s", hosts.len ? "," : "", sw_json_str(r, "host", "*"));
        json_array_append_new(cells, json_string(hosts.len ? sw_buf_str(&hosts) : "*"));
        json_array_foreach(path(obj, "status", "loadBalancer", "ingress"), i, lb)
                sw_buf_printf(&addr, NULL, "%s%s", addr.len ? "," : "",
                              sw_json_str(lb, "ip", sw_json_str(lb, "hostname", "")));
        json_array_append_new(cells, json_string(sw_buf_str(&addr)));
        json_array_append_new(
                cells,
                json_string(json_array_size(json_object_get(spec, "tls")) ? "80, 443" : "80"));
        sw_buf_release(&hosts);
        sw_buf_release(&addr);
}

static void node_cells(json_t *cells, const json_t *obj, int64_t now)
{
        const json_t *status = json_object_get(obj, "status"), *c, *a;
        const char *ready = "Unknown", *key;
        struct sw_buf roles = SW_BUF_INIT;
        const char *internal = "<none>", *external = "<none>";
        char st[64];
        json_t *v;
        size_t i;

        json_array_foreach(json_object_get(status, "conditions"), i, c)
        {
                if (strcmp(sw_json_str(c, "type", ""), "Ready") == 0)
                        ready = strcmp(sw_json_str(c, "status", ""), "True") == 0 ? "Ready"
                                                                                  : "NotReady";
        }
        snprintf(st, sizeof(st), "%s%s", ready,
                 json_is_true(path(obj, "spec", "unschedulable", NULL)) ? ",SchedulingDisabled"
                                                                        : "");
        json_array_append_new(cells, json_string(st));
        json_object_foreach((json_t *)path(obj, "metadata", "labels", NULL), key, v)
        {
                if (strncmp(key, "node-role.kubernetes.io/", 24) == 0 && key[24])
                        sw_buf_printf(&roles, NULL, "%s%s", roles.len ? "," : "", key + 24);
        }
        json_array_append_new(cells, json_string(roles.len ? sw_buf_str(&roles) : "<none>"));
        json_array_append_new(
                cells, age_cell(str_or(path(obj, "metadata", "creationTimestamp", NULL), ""), now));
        json_array_append_new(
                cells, json_string(str_or(path(status, "nodeInfo", "kubeletVersion", NULL), "")));
        json_array_foreach(json_object_get(status, "addresses"), i, a)
        {
                if (strcmp(sw_json_str(a, "type", ""), "InternalIP") == 0)
                        internal = sw_json_str(a, "address", "<none>");
                if (strcmp(sw_json_str(a, "type", ""), "ExternalIP") == 0)
                        external = sw_json_str(a, "address", "<none>");
        }
        json_array_append_new(cells, json_string(internal));
        json_array_append_new(cells, json_string(external));
        json_array_append_new(
                cells, json_string(str_or(path(status, "nodeInfo", "osImage", NULL), "<unknown>")));
        json_array_append_new(
                cells,
                json_string(str_or(path(status, "nodeInfo", "kernelVersion", NULL), "<unknown>")));
        json_array_append_new(
                cells, json_string(str_or(path(status, "nodeInfo", "containerRuntimeVersion", NULL),
                                          "<unknown>")));
        sw_buf_release(&roles);
}

static void quota_cells(json_t *cells, const json_t *obj)
{
        const json_t *hard = path(obj, "status", "hard", NULL),
                     *used = path(obj, "status", "used", NULL);
        struct sw_buf req = SW_BUF_INIT, lim = SW_BUF_INIT;
        const char *key;
        json_t *v;

        if (!hard)
                hard = path(obj, "spec", "hard", NULL);
        json_object_foreach((json_t *)hard, key, v)
        {
                bool is_limit = strncmp(key, "limits.", 7) == 0;
                struct sw_buf *b = is_limit ? &lim : &req;
                sw_buf_printf(b, NULL, "%s%s: %s/%s", b->len ? ", " : "", key,
                              str_or(json_object_get(used, key), "0"), str_or(v, ""));
        }
        json_array_append_new(cells, json_string(sw_buf_str(&req)));
        json_array_append_new(cells, json_string(sw_buf_str(&lim)));
        sw_buf_release(&req);
        sw_buf_release(&lim);
}

static void job_cells(json_t *cells, const json_t *obj, int64_t now)
{
        const json_t *status = json_object_get(obj, "status"), *c;
        const char *state = "Running";
        json_int_t completions = int_at(obj, "spec", "completions");
        int64_t start = orch_time_parse(sw_json_str(status, "startTime", ""));
        int64_t done = orch_time_parse(sw_json_str(status, "completionTime", ""));
        char b[64];
        size_t i;

        json_array_foreach(json_object_get(status, "conditions"), i, c)
        {
                if (strcmp(sw_json_str(c, "status", ""), "True") != 0)
                        continue;
                if (strcmp(sw_json_str(c, "type", ""), "Complete") == 0)
                        state = "Complete";
                else if (strcmp(sw_json_str(c, "type", ""), "Failed") == 0)
                        state = "Failed";
                else if (strcmp(sw_json_str(c, "type", ""), "Suspended") == 0)
                        state = "Suspended";
        }
        json_array_append_new(cells, json_string(state));
        snprintf(b, sizeof(b), "%lld/%lld", (long long)sw_json_int(status, "succeeded", 0),
                 (long long)(completions ? completions : 1));
        json_array_append_new(cells, json_string(b));
        if (start < 0)
                b[0] = '\0';
        else
                orch_human_duration(b, sizeof(b), (done >= 0 ? done : now) - start);
        json_array_append_new(cells, json_string(b));
}

json_t *orch_table_row(const struct orch_kind *k, const json_t *obj, int64_t now, bool full)
{
        const json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
        const json_t *status = json_object_get(obj, "status");
        const char *kind = k->kind;
        json_t *cells = json_array(), *object;
        json_t *age = age_cell(sw_json_str(meta, "creationTimestamp", ""), now);
        char b[128];

        if (strcmp(kind, "Event") != 0)
                json_array_append_new(cells, json_string(sw_json_str(meta, "name", "")));
        if (strcmp(kind, "Pod") == 0) {
                pod_cells(cells, obj, now);
        } else if (strcmp(kind, "Deployment") == 0) {
                snprintf(b, sizeof(b), "%lld/%lld",
                         (long long)sw_json_int(status, "readyReplicas", 0),
                         (long long)sw_json_int(spec, "replicas", 0));
                json_array_append_new(cells, json_string(b));
                json_array_append_new(cells,
                                      json_integer(sw_json_int(status, "updatedReplicas", 0)));
                json_array_append_new(cells,
                                      json_integer(sw_json_int(status, "availableReplicas", 0)));
                json_array_append_new(cells, json_incref(age));
                json_array_append_new(
                        cells, containers_cell(path(spec, "template", "spec", NULL), "name"));
                json_array_append_new(
                        cells, containers_cell(path(spec, "template", "spec", NULL), "image"));
                json_array_append_new(cells, selector_cell(json_object_get(spec, "selector")));
        } else if (strcmp(kind, "ReplicaSet") == 0) {
                json_array_append_new(cells, json_integer(sw_json_int(spec, "replicas", 0)));
                json_array_append_new(cells, json_integer(sw_json_int(status, "replicas", 0)));
                json_array_append_new(cells, json_integer(sw_json_int(status, "readyReplicas", 0)));
                json_array_append_new(cells, json_incref(age));
                json_array_append_new(
                        cells, containers_cell(path(spec, "template", "spec", NULL), "name"));
                json_array_append_new(
                        cells, containers_cell(path(spec, "template", "spec", NULL), "image"));
                json_array_append_new(cells, selector_cell(json_object_get(spec, "selector")));
        } else if (strcmp(kind, "Service") == 0) {
                service_cells(cells, obj, now);
        } else if (strcmp(kind, "Endpoints") == 0) {
                endpoints_cells(cells, obj);
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "Ingress") == 0) {
                ingress_cells(cells, obj);
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "Node") == 0) {
                node_cells(cells, obj, now);
        } else if (strcmp(kind, "Namespace") == 0) {
                json_array_append_new(cells,
                                      json_string(str_or(json_object_get(status, "phase"), "")));
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "ConfigMap") == 0) {
                json_array_append_new(
                        cells,
                        json_integer((
                                json_int_t)(json_object_size(json_object_get(obj, "data")) +
                                            json_object_size(json_object_get(obj, "binaryData")))));
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "Secret") == 0) {
                json_array_append_new(cells, json_string(sw_json_str(obj, "type", "")));
                json_array_append_new(cells, json_integer((json_int_t)json_object_size(
                                                     json_object_get(obj, "data"))));
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "ServiceAccount") == 0) {
                json_array_append_new(cells, json_integer((json_int_t)json_array_size(
                                                     json_object_get(obj, "secrets"))));
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "Event") == 0) {
                const json_t *io = json_object_get(obj, "involvedObject");
                const char *last = sw_json_str(obj, "lastTimestamp", NULL);
                char lower[64], objcell[320], src[160];
                size_t i;

                if (!last)
                        last = sw_json_str(obj, "eventTime",
                                           sw_json_str(meta, "creationTimestamp", ""));
                json_array_append_new(cells, age_cell(last, now));
                json_array_append_new(cells, json_string(sw_json_str(obj, "type", "")));
                json_array_append_new(cells, json_string(sw_json_str(obj, "reason", "")));
                snprintf(lower, sizeof(lower), "%s", sw_json_str(io, "kind", ""));
                for (i = 0; lower[i]; i++)
                        if (lower[i] >= 'A' && lower[i] <= 'Z')
                                lower[i] = (char)(lower[i] - 'A' + 'a');
                snprintf(objcell, sizeof(objcell), "%s/%s", lower, sw_json_str(io, "name", ""));
                json_array_append_new(cells, json_string(objcell));
                json_array_append_new(cells, json_string(sw_json_str(io, "fieldPath", "")));
                snprintf(src, sizeof(src), "%s",
                         sw_json_str(json_object_get(obj, "source"), "component",
                                     sw_json_str(obj, "reportingComponent", "")));
                json_array_append_new(cells, json_string(src));
                json_array_append_new(cells, json_string(sw_json_str(obj, "message", "")));
                json_array_append_new(cells,
                                      age_cell(sw_json_str(obj, "firstTimestamp", last), now));
                snprintf(b, sizeof(b), "%lld", (long long)sw_json_int(obj, "count", 1));
                json_array_append_new(cells, json_string(b));
                json_array_append_new(cells, json_string(sw_json_str(meta, "name", "")));
        } else if (strcmp(kind, "ResourceQuota") == 0) {
                json_array_append_new(cells, json_incref(age));
                quota_cells(cells, obj);
        } else if (strcmp(kind, "LimitRange") == 0) {
                json_array_append_new(cells,
                                      json_string(sw_json_str(meta, "creationTimestamp", "")));
        } else if (strcmp(kind, "Lease") == 0) {
                json_array_append_new(
                        cells, json_string(sw_json_str(spec, "holderIdentity", "<unknown>")));
                json_array_append_new(cells, json_incref(age));
        } else if (strcmp(kind, "Job") == 0) {
                job_cells(cells, obj, now);
                json_array_append_new(cells, json_incref(age));
                json_array_append_new(
                        cells, containers_cell(path(spec, "template", "spec", NULL), "name"));
                json_array_append_new(
                        cells, containers_cell(path(spec, "template", "spec", NULL), "image"));
                json_array_append_new(cells, selector_cell(json_object_get(spec, "selector")));
        } else if (strcmp(kind, "CronJob") == 0) {
                const json_t *pod = path(spec, "jobTemplate", "spec", "template");
                const char *last = sw_json_str(status, "lastScheduleTime", NULL);
                json_array_append_new(cells, json_string(sw_json_str(spec, "schedule", "")));
                json_array_append_new(cells, json_string(sw_json_str(spec, "timeZone", "<none>")));
                json_array_append_new(cells,
                                      json_boolean(json_is_true(json_object_get(spec, "suspend"))));
                json_array_append_new(cells, json_integer((json_int_t)json_array_size(
                                                     json_object_get(status, "active"))));
                json_array_append_new(cells, last ? age_cell(last, now) : json_string("<none>"));
                json_array_append_new(cells, json_incref(age));
                json_array_append_new(cells, containers_cell(json_object_get(pod, "spec"), "name"));
                json_array_append_new(cells,
                                      containers_cell(json_object_get(pod, "spec"), "image"));
                json_array_append_new(cells,
                                      selector_cell(path(spec, "jobTemplate", "spec", "selector")));
        } else if (strcmp(kind, "IngressClass") == 0) {
                json_array_append_new(cells, json_string(sw_json_str(spec, "controller", "")));
                json_array_append_new(
                        cells, json_string(json_object_get(spec, "parameters") ? "set" : "<none>"));
                json_array_append_new(cells, json_incref(age));
        } else {
                json_array_append_new(cells,
                                      json_string(sw_json_str(meta, "creationTimestamp", "")));
        }
        json_decref(age);
        if (full)
                object = sw_json_copy(obj);
        else
                object = json_pack("{s:s,s:s,s:o}", "kind", "PartialObjectMetadata", "apiVersion",
                                   "meta.k8s.io/v1", "metadata",
                                   meta ? sw_json_copy(meta) : json_object());
        return json_pack("{s:o,s:o}", "cells", cells, "object", object);
}
