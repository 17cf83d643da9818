/*
 * request.c - validation and defaults of the deploy request.
 */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"
#include "common/validate.h"
#include "engine/request.h"
#include "common/banned.h"

#define REPLICAS_MAX 1000

struct field {
        const char *name;
        json_type type; /* JSON_STRING or JSON_INTEGER */
};

static const struct field fields[] = {
        {"repo", JSON_STRING},      {"branch", JSON_STRING},       {"commit", JSON_STRING},
        {"name", JSON_STRING},      {"namespace", JSON_STRING},    {"type", JSON_STRING},
        {"replicas", JSON_INTEGER}, {"cpu", JSON_STRING},          {"memory", JSON_STRING},
        {"cpu_limit", JSON_STRING}, {"memory_limit", JSON_STRING}, {"port", JSON_INTEGER},
        {"host", JSON_STRING},
};

/* How a field is named in messages: "--cpu-limit" or "field 'cpu_limit'". */
static void field_label(char *out, size_t size, const char *name, enum eng_request_style style)
{
        if (style == ENG_REQUEST_FLAGS) {
                size_t i = 0;
                snprintf(out, size, "--%s", name);
                for (i = 2; out[i]; i++)
                        if (out[i] == '_')
                                out[i] = '-';
        } else {
                snprintf(out, size, "field '%s'", name);
        }
}

static int check_quantity(const json_t *req, const char *key, enum eng_request_style style,
                          int64_t *milli, struct sw_err *err)
{
        const char *v = sw_json_str(req, key, NULL);
        char label[48];

        *milli = 0;
        if (!v)
                return 0;
        field_label(label, sizeof(label), key, style);
        if (sw_quantity_milli(milli, v, label, err))
                return SW_EINVAL;
        if (*milli == 0)
                return sw_err_set(err, SW_EINVAL, "%s: must be greater than zero", label);
        return 0;
}

int eng_request_normalize(json_t **out, const json_t *in, enum eng_request_style style,
                          struct sw_err *err)
{
        json_t *req = NULL;
        const char *key;
        json_t *val;
        char label[48];
        int64_t cpu, mem, cpu_lim, mem_lim;
        int rc = SW_EINVAL;

        if (!json_is_object(in))
                return sw_err_set(err, SW_EINVAL, "a deploy request must be a JSON object");
        json_object_foreach((json_t *)in, key, val)
        {
                size_t i;
                for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                        if (strcmp(fields[i].name, key) == 0)
                                break;
                field_label(label, sizeof(label), key, style);
                if (i == sizeof(fields) / sizeof(fields[0]))
                        return sw_err_set(err, SW_EINVAL, "unknown field '%s'", key);
                if (json_is_null(val))
                        continue;
                if (json_typeof(val) != fields[i].type)
                        return sw_err_set(err, SW_EINVAL, "%s: must be %s", label,
                                          fields[i].type == JSON_STRING ? "a string"
                                                                        : "a whole number");
        }
        req = json_deep_copy(in);
        /* null means "use the default" */
        void *tmp;
        json_object_foreach_safe(req, tmp, key, val)
        {
                if (json_is_null(val))
                        json_object_del(req, key);
        }

#define LABEL(k) (field_label(label, sizeof(label), k, style), label)
        if (!sw_json_str(req, "repo", NULL)) {
                sw_err_set(err, SW_EINVAL, "%s: the git repository URL is required", LABEL("repo"));
                goto out;
        }
        if (sw_valid_repo_url(sw_json_str(req, "repo", ""), LABEL("repo"), err))
                goto out;
        if (!sw_json_str(req, "name", NULL)) {
                sw_err_set(err, SW_EINVAL, "%s: the service name is required", LABEL("name"));
                goto out;
        }
        if (sw_valid_dns1035_label(sw_json_str(req, "name", ""), LABEL("name"), err))
                goto out;
        if (sw_json_str(req, "commit", NULL) &&
            sw_valid_git_commit(sw_json_str(req, "commit", ""), LABEL("commit"), err))
                goto out;
        if (!sw_json_str(req, "branch", NULL) && !sw_json_str(req, "commit", NULL))
                json_object_set_new(req, "branch", json_string("main"));
        if (sw_json_str(req, "branch", NULL) &&
            sw_valid_git_ref(sw_json_str(req, "branch", ""), LABEL("branch"), err))
                goto out;
        if (!sw_json_str(req, "namespace", NULL))
                json_object_set_new(req, "namespace", json_string("default"));
        if (sw_valid_dns1123_label(sw_json_str(req, "namespace", ""), LABEL("namespace"), err))
                goto out;
        if (!sw_json_str(req, "type", NULL))
                json_object_set_new(req, "type", json_string("ClusterIP"));
        {
                const char *t = sw_json_str(req, "type", "");
                if (strcmp(t, "ClusterIP") && strcmp(t, "NodePort") && strcmp(t, "LoadBalancer")) {
                        sw_err_set(err, SW_EINVAL,
                                   "%s: '%s' is not one of ClusterIP, NodePort, LoadBalancer",
                                   LABEL("type"), t);
                        goto out;
                }
        }
        if (!json_object_get(req, "replicas"))
                json_object_set_new(req, "replicas", json_integer(1));
        if (sw_json_int(req, "replicas", 0) < 0 || sw_json_int(req, "replicas", 0) > REPLICAS_MAX) {
                sw_err_set(err, SW_EINVAL, "%s: must be between 0 and %d", LABEL("replicas"),
                           REPLICAS_MAX);
                goto out;
        }
        if (!sw_json_str(req, "cpu", NULL))
                json_object_set_new(req, "cpu", json_string("100m"));
        if (!sw_json_str(req, "memory", NULL))
                json_object_set_new(req, "memory", json_string("128Mi"));
        if (check_quantity(req, "cpu", style, &cpu, err) ||
            check_quantity(req, "memory", style, &mem, err) ||
            check_quantity(req, "cpu_limit", style, &cpu_lim, err) ||
            check_quantity(req, "memory_limit", style, &mem_lim, err))
                goto out;
        if (cpu_lim && cpu_lim < cpu) {
                sw_err_set(err, SW_EINVAL, "%s: must not be less than the cpu request",
                           LABEL("cpu_limit"));
                goto out;
        }
        if (mem_lim && mem_lim < mem) {
                sw_err_set(err, SW_EINVAL, "%s: must not be less than the memory request",
                           LABEL("memory_limit"));
                goto out;
        }
        if (!json_object_get(req, "port"))
                json_object_set_new(req, "port", json_integer(0));
        if (sw_json_int(req, "port", 0) < 0 || sw_json_int(req, "port", 0) > 65535) {
                sw_err_set(err, SW_EINVAL, "%s: must be between 1 and 65535 (0: from EXPOSE)",
                           LABEL("port"));
                goto out;
        }
        if (sw_json_str(req, "host", NULL) &&
            sw_valid_dns1123_subdomain(sw_json_str(req, "host", ""), LABEL("host"), err))
                goto out;
#undef LABEL
        *out = req;
        req = NULL;
        rc = 0;
out:
        json_decref(req);
        return rc;
}

char *eng_request_concurrency_key(const json_t *req)
{
        return sw_xasprintf("deploy/%s/%s", sw_json_str(req, "namespace", "default"),
                            sw_json_str(req, "name", ""));
}
