/*
 * proto.c - protobuf request bodies of apps/v1 Deployment and batch/v1 Job:
 * the pod template decoded field by field, Go's zero values dropped while
 * pointer fields keep an explicit zero, an unmodelled non-empty field
 * refused (415) and malformed input refused (400). The bodies are encoded
 * here by hand, field number by field number, as kubectl's client does.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "orchestrator/orch_int.h"
#include "tests/harness/t.h"

static void put_varint(struct sw_buf *b, uint64_t v)
{
        do {
                unsigned char c = (unsigned char)(v & 0x7f);
                v >>= 7;
                if (v)
                        c |= 0x80;
                sw_buf_putc(b, (char)c, NULL);
        } while (v);
}

/* Field `num` as a varint. */
static void put_int(struct sw_buf *b, int num, uint64_t v)
{
        put_varint(b, (uint64_t)num << 3);
        put_varint(b, v);
}

/* Field `num` as length-delimited bytes (a string or a nested message). */
static void put_bytes(struct sw_buf *b, int num, const char *data, size_t len)
{
        put_varint(b, (uint64_t)num << 3 | 2);
        put_varint(b, len);
        sw_buf_append(b, data, len, NULL);
}

static void put_str(struct sw_buf *b, int num, const char *s)
{
        put_bytes(b, num, s, strlen(s));
}

static void put_msg(struct sw_buf *b, int num, struct sw_buf *m)
{
        put_bytes(b, num, m->data ? m->data : "", m->len);
        sw_buf_release(m);
        sw_buf_init(m, 0);
}

/* The "k8s\0" envelope around `raw`, a message of `kind`. */
static void envelope(struct sw_buf *out, const char *api_version, const char *kind,
                     struct sw_buf *raw)
{
        struct sw_buf tm = SW_BUF_INIT;

        sw_buf_append(out, "k8s", 4, NULL); /* with its NUL */
        put_str(&tm, 1, api_version);
        put_str(&tm, 2, kind);
        put_msg(out, 1, &tm);
        put_msg(out, 2, raw);
}

static const char *at(const json_t *v, const char *path)
{
        static char text[128];
        char key[64];
        const char *p = path;

        while (*p && v) {
                size_t n = strcspn(p, ".");
                snprintf(key, sizeof(key), "%.*s", (int)n, p);
                v = json_is_array(v) ? json_array_get(v, (size_t)strtoul(key, NULL, 10))
                                     : json_object_get(v, key);
                p += n + (p[n] == '.');
        }
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v)) {
                snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
                return text;
        }
        return v ? "(other)" : "(absent)";
}

/* A Deployment as `kubectl create deployment web --image=nginx --replicas=0 --port=80` sends it. */
static void deployment_body(struct sw_buf *out, bool extra_field)
{
        struct sw_buf meta = SW_BUF_INIT, spec = SW_BUF_INIT, sel = SW_BUF_INIT,
                      entry = SW_BUF_INIT, tmpl = SW_BUF_INIT, tmeta = SW_BUF_INIT,
                      pod = SW_BUF_INIT, c = SW_BUF_INIT, port = SW_BUF_INIT, res = SW_BUF_INIT,
                      strategy = SW_BUF_INIT, ru = SW_BUF_INIT, is = SW_BUF_INIT,
                      status = SW_BUF_INIT, raw = SW_BUF_INIT;

        put_str(&meta, 1, "web");
        put_str(&meta, 2, "");
        put_str(&entry, 1, "app");
        put_str(&entry, 2, "web");
        put_msg(&meta, 11, &entry);

        put_int(&spec, 1, 0); /* replicas: a pointer in Go, so 0 is kept */
        put_str(&entry, 1, "app");
        put_str(&entry, 2, "web");
        put_msg(&sel, 1, &entry);
        put_msg(&spec, 2, &sel);

        put_str(&entry, 1, "app");
        put_str(&entry, 2, "web");
        put_msg(&tmeta, 11, &entry);
        put_msg(&tmpl, 1, &tmeta);
        put_str(&c, 1, "nginx");
        put_str(&c, 2, "nginx:1.27");
        put_int(&port, 3, 80);
        put_str(&port, 4, "");
        put_msg(&c, 6, &port);
        put_str(&entry, 1, "memory");
        {
                struct sw_buf q = SW_BUF_INIT;
                put_str(&q, 1, "64Mi");
                put_msg(&entry, 2, &q);
        }
        put_msg(&res, 1, &entry);
        put_msg(&c, 8, &res);
        put_str(&c, 14, ""); /* imagePullPolicy left empty: absent, so defaulted later */
        put_int(&c, 16, 0);  /* stdin false: absent */
        put_msg(&pod, 2, &c);
        put_msg(&tmpl, 2, &pod);
        put_msg(&spec, 3, &tmpl);

        put_int(&is, 1, 1);
        put_str(&is, 3, "25%");
        put_msg(&ru, 2, &is);
        put_msg(&strategy, 2, &ru);
        put_msg(&spec, 4, &strategy);
        put_int(&spec, 5, 0); /* minReadySeconds 0: absent */
        if (extra_field)
                put_str(&spec, 8, "rollback-to"); /* not a field of apps/v1 */
        put_msg(&raw, 1, &meta);
        put_msg(&raw, 2, &spec);
        put_msg(&raw, 3, &status); /* an empty status, as Go always writes it */
        envelope(out, "apps/v1", "Deployment", &raw);
}

static void test_deployment(void)
{
        struct sw_buf body = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = NULL;
        json_t *c;

        deployment_body(&body, false);
        CHECK_OK(orch_proto_decode(&obj, body.data, body.len, "Deployment", &err), &err);
        CHECK_STR(at(obj, "apiVersion"), "apps/v1");
        CHECK_STR(at(obj, "kind"), "Deployment");
        CHECK_STR(at(obj, "metadata.name"), "web");
        CHECK_STR(at(obj, "metadata.labels.app"), "web");
        CHECK_STR(at(obj, "spec.replicas"), "0");
        CHECK_STR(at(obj, "spec.selector.matchLabels.app"), "web");
        CHECK_STR(at(obj, "spec.template.metadata.labels.app"), "web");
        CHECK_STR(at(obj, "spec.template.spec.containers.0.image"), "nginx:1.27");
        CHECK_STR(at(obj, "spec.template.spec.containers.0.ports.0.containerPort"), "80");
        CHECK_STR(at(obj, "spec.template.spec.containers.0.ports.0.protocol"), "(absent)");
        CHECK_STR(at(obj, "spec.template.spec.containers.0.resources.limits.memory"), "64Mi");
        CHECK_STR(at(obj, "spec.strategy.rollingUpdate.maxSurge"), "25%");
        CHECK_STR(at(obj, "spec.minReadySeconds"), "(absent)");
        c = json_array_get(
                json_object_get(
                        json_object_get(json_object_get(json_object_get(obj, "spec"), "template"),
                                        "spec"),
                        "containers"),
                0);
        CHECK(c && !json_object_get(c, "imagePullPolicy") && !json_object_get(c, "stdin"));
        json_decref(obj);
        sw_buf_release(&body);
}

static void test_job(void)
{
        struct sw_buf body = SW_BUF_INIT, raw = SW_BUF_INIT, meta = SW_BUF_INIT, spec = SW_BUF_INIT,
                      tmpl = SW_BUF_INIT, pod = SW_BUF_INIT, c = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = NULL;

        put_str(&meta, 1, "hello");
        put_str(&c, 1, "hello");
        put_str(&c, 2, "busybox:1.36");
        put_str(&c, 3, "echo");
        put_str(&c, 3, "hi there");
        put_msg(&pod, 2, &c);
        put_str(&pod, 3, "Never");
        put_msg(&tmpl, 2, &pod);
        put_msg(&spec, 6, &tmpl);
        put_int(&spec, 7, 0); /* backoffLimit: a pointer, 0 kept */
        put_msg(&raw, 1, &meta);
        put_msg(&raw, 2, &spec);
        envelope(&body, "batch/v1", "Job", &raw);
        CHECK_OK(orch_proto_decode(&obj, body.data, body.len, "Job", &err), &err);
        CHECK_STR(at(obj, "spec.template.spec.containers.0.command.1"), "hi there");
        CHECK_STR(at(obj, "spec.template.spec.restartPolicy"), "Never");
        CHECK_STR(at(obj, "spec.backoffLimit"), "0");
        json_decref(obj);
        sw_buf_release(&body);
}

static void test_refusals(void)
{
        struct sw_buf body = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = NULL;

        /* A non-empty field the messages do not model: 415, not a silent drop. */
        deployment_body(&body, true);
        CHECK_INT(orch_proto_decode(&obj, body.data, body.len, "Deployment", &err), SW_EPROTO);
        CHECK(strstr(err.msg, "protobuf field 8 of DeploymentSpec is not supported"));
        sw_err_clear(&err);
        /* The body of one kind posted as another. */
        CHECK_INT(orch_proto_decode(&obj, body.data, body.len, "Job", &err), SW_EINVAL);
        sw_err_clear(&err);
        /* Every truncation of a valid body is refused or decodes; none crashes. */
        sw_buf_release(&body);
        sw_buf_init(&body, 0);
        deployment_body(&body, false);
        for (size_t n = 0; n < body.len; n++) {
                int rc = orch_proto_decode(&obj, body.data, n, "Deployment", &err);
                if (rc == 0)
                        json_decref(obj);
                obj = NULL;
                sw_err_clear(&err);
        }
        sw_buf_release(&body);
}

int main(void)
{
        T_RUN(test_deployment);
        T_RUN(test_job);
        T_RUN(test_refusals);
        return t_done();
}
