/*
 * proto.c - decoding of the Kubernetes protobuf request bodies kubectl's
 * typed client sends (`kubectl create namespace|configmap|secret|
 * serviceaccount` post application/vnd.kubernetes.protobuf, whatever the
 * server prefers, and do not fall back to JSON).
 *
 * The envelope is the 4 bytes "k8s\0" and a runtime.Unknown message
 * (typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2), whose raw bytes are
 * the object's own message. Only the messages of the kinds above are
 * described here, field number by field number from the API's
 * generated.proto; other kinds are refused with 415 so that the caller
 * knows to send JSON. Replies are always JSON, which these clients accept.
 *
 * apps/v1 Deployment and batch/v1 Job (`kubectl create deployment|job`) are
 * described with their pod template: the pod spec and container fields
 * that map to plain values. Their messages follow Go's encoding, where a
 * zero value (empty string, 0, false) is the same as an absent field, so
 * zeros are dropped unless the Go field is a pointer (PB_OPTINT, PB_OPTBOOL:
 * `replicas: 0` stays). A non-empty field these messages do not model is
 * refused (415) rather than dropped without a word.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define PB_MAX_DEPTH 16

enum pb_type {
        PB_STRING,  /* length-delimited text */
        PB_BYTES,   /* length-delimited bytes, base64 in JSON */
        PB_INT,     /* varint */
        PB_BOOL,    /* varint 0/1 */
        PB_MSG,     /* nested message */
        PB_MAP_STR, /* map<string,string>: repeated {1 key, 2 value} */
        PB_MAP_B64, /* map<string,bytes> */
        PB_STRS,    /* repeated string */
        PB_MSGS,    /* repeated message */
        PB_TIME,    /* metav1.Time {1 seconds, 2 nanos} as RFC 3339 */
        PB_OPTINT,  /* varint of a Go pointer field: kept when 0 */
        PB_OPTBOOL, /* bool of a Go pointer field: kept when false */
        PB_MAP_QTY, /* map<string, resource.Quantity {1 string}> */
        PB_INTSTR,  /* intstr.IntOrString {1 type, 2 intVal, 3 strVal} */
};

struct pb_msg;
struct pb_field {
        int num;
        const char *name;
        enum pb_type type;
        const struct pb_msg *msg;
};
struct pb_msg {
        const struct pb_field *fields; /* ends with num 0 */
        const char *name;              /* for errors; NULL for the older, lenient messages */
        bool go_zero; /* zeros are absent; unmodelled non-empty fields are refused */
};

static const struct pb_field owner_f[] = {
        {1, "kind", PB_STRING, NULL},     {3, "name", PB_STRING, NULL},
        {4, "uid", PB_STRING, NULL},      {5, "apiVersion", PB_STRING, NULL},
        {6, "controller", PB_BOOL, NULL}, {7, "blockOwnerDeletion", PB_BOOL, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg owner_m = {owner_f, NULL, false};

static const struct pb_field meta_f[] = {
        {1, "name", PB_STRING, NULL},
        {2, "generateName", PB_STRING, NULL},
        {3, "namespace", PB_STRING, NULL},
        {5, "uid", PB_STRING, NULL},
        {6, "resourceVersion", PB_STRING, NULL},
        {7, "generation", PB_INT, NULL},
        {8, "creationTimestamp", PB_TIME, NULL},
        {10, "deletionGracePeriodSeconds", PB_INT, NULL},
        {11, "labels", PB_MAP_STR, NULL},
        {12, "annotations", PB_MAP_STR, NULL},
        {13, "ownerReferences", PB_MSGS, &owner_m},
        {14, "finalizers", PB_STRS, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg meta_m = {meta_f, NULL, false};

static const struct pb_field cm_f[] = {
        {1, "metadata", PB_MSG, &meta_m},
        {2, "data", PB_MAP_STR, NULL},
        {3, "binaryData", PB_MAP_B64, NULL},
        {4, "immutable", PB_BOOL, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg cm_m = {cm_f, NULL, false};

static const struct pb_field secret_f[] = {
        {1, "metadata", PB_MSG, &meta_m}, {2, "data", PB_MAP_B64, NULL},
        {3, "type", PB_STRING, NULL},     {4, "stringData", PB_MAP_STR, NULL},
        {5, "immutable", PB_BOOL, NULL},  {0, NULL, PB_INT, NULL},
};
static const struct pb_msg secret_m = {secret_f, NULL, false};

static const struct pb_field nsspec_f[] = {
        {1, "finalizers", PB_STRS, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg nsspec_m = {nsspec_f, NULL, false};

static const struct pb_field ns_f[] = {
        {1, "metadata", PB_MSG, &meta_m},
        {2, "spec", PB_MSG, &nsspec_m},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg ns_m = {ns_f, NULL, false};

static const struct pb_field sa_f[] = {
        {1, "metadata", PB_MSG, &meta_m},
        {4, "automountServiceAccountToken", PB_BOOL, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg sa_m = {sa_f, NULL, false};

/* ---- apps/v1 Deployment, batch/v1 Job and their pod template ---------------- */

#define END_F                                                                                      \
        {                                                                                          \
                0, NULL, PB_INT, NULL                                                              \
        }

static const struct pb_field podmeta_f[] = {
        {1, "name", PB_STRING, NULL},
        {2, "generateName", PB_STRING, NULL},
        {3, "namespace", PB_STRING, NULL},
        {11, "labels", PB_MAP_STR, NULL},
        {12, "annotations", PB_MAP_STR, NULL},
        {8, "creationTimestamp", PB_TIME, NULL},
        END_F,
};
static const struct pb_msg podmeta_m = {podmeta_f, "ObjectMeta", true};

static const struct pb_field selreq_f[] = {
        {1, "key", PB_STRING, NULL},
        {2, "operator", PB_STRING, NULL},
        {3, "values", PB_STRS, NULL},
        END_F,
};
static const struct pb_msg selreq_m = {selreq_f, "LabelSelectorRequirement", true};

static const struct pb_field selector_f[] = {
        {1, "matchLabels", PB_MAP_STR, NULL},
        {2, "matchExpressions", PB_MSGS, &selreq_m},
        END_F,
};
static const struct pb_msg selector_m = {selector_f, "LabelSelector", true};

static const struct pb_field port_f[] = {
        {1, "name", PB_STRING, NULL},       {2, "hostPort", PB_INT, NULL},
        {3, "containerPort", PB_INT, NULL}, {4, "protocol", PB_STRING, NULL},
        {5, "hostIP", PB_STRING, NULL},     END_F,
};
static const struct pb_msg port_m = {port_f, "ContainerPort", true};

static const struct pb_field env_f[] = {
        {1, "name", PB_STRING, NULL},
        {2, "value", PB_STRING, NULL},
        END_F,
};
static const struct pb_msg env_m = {env_f, "EnvVar", true};

static const struct pb_field resources_f[] = {
        {1, "limits", PB_MAP_QTY, NULL},
        {2, "requests", PB_MAP_QTY, NULL},
        END_F,
};
static const struct pb_msg resources_m = {resources_f, "ResourceRequirements", true};

static const struct pb_field container_f[] = {
        {1, "name", PB_STRING, NULL},
        {2, "image", PB_STRING, NULL},
        {3, "command", PB_STRS, NULL},
        {4, "args", PB_STRS, NULL},
        {5, "workingDir", PB_STRING, NULL},
        {6, "ports", PB_MSGS, &port_m},
        {7, "env", PB_MSGS, &env_m},
        {8, "resources", PB_MSG, &resources_m},
        {13, "terminationMessagePath", PB_STRING, NULL},
        {14, "imagePullPolicy", PB_STRING, NULL},
        {16, "stdin", PB_BOOL, NULL},
        {17, "stdinOnce", PB_BOOL, NULL},
        {18, "tty", PB_BOOL, NULL},
        {20, "terminationMessagePolicy", PB_STRING, NULL},
        END_F,
};
static const struct pb_msg container_m = {container_f, "Container", true};

static const struct pb_field podspec_f[] = {
        {2, "containers", PB_MSGS, &container_m},
        {3, "restartPolicy", PB_STRING, NULL},
        {4, "terminationGracePeriodSeconds", PB_OPTINT, NULL},
        {5, "activeDeadlineSeconds", PB_OPTINT, NULL},
        {6, "dnsPolicy", PB_STRING, NULL},
        {7, "nodeSelector", PB_MAP_STR, NULL},
        {8, "serviceAccountName", PB_STRING, NULL},
        {10, "nodeName", PB_STRING, NULL},
        {11, "hostNetwork", PB_BOOL, NULL},
        {16, "hostname", PB_STRING, NULL},
        {19, "schedulerName", PB_STRING, NULL},
        {20, "initContainers", PB_MSGS, &container_m},
        {21, "automountServiceAccountToken", PB_OPTBOOL, NULL},
        {24, "priorityClassName", PB_STRING, NULL},
        END_F,
};
static const struct pb_msg podspec_m = {podspec_f, "PodSpec", true};

static const struct pb_field template_f[] = {
        {1, "metadata", PB_MSG, &podmeta_m},
        {2, "spec", PB_MSG, &podspec_m},
        END_F,
};
static const struct pb_msg template_m = {template_f, "PodTemplateSpec", true};

static const struct pb_field rolling_f[] = {
        {1, "maxUnavailable", PB_INTSTR, NULL},
        {2, "maxSurge", PB_INTSTR, NULL},
        END_F,
};
static const struct pb_msg rolling_m = {rolling_f, "RollingUpdateDeployment", true};

static const struct pb_field strategy_f[] = {
        {1, "type", PB_STRING, NULL},
        {2, "rollingUpdate", PB_MSG, &rolling_m},
        END_F,
};
static const struct pb_msg strategy_m = {strategy_f, "DeploymentStrategy", true};

static const struct pb_field dspec_f[] = {
        {1, "replicas", PB_OPTINT, NULL},
        {2, "selector", PB_MSG, &selector_m},
        {3, "template", PB_MSG, &template_m},
        {4, "strategy", PB_MSG, &strategy_m},
        {5, "minReadySeconds", PB_INT, NULL},
        {6, "revisionHistoryLimit", PB_OPTINT, NULL},
        {7, "paused", PB_BOOL, NULL},
        {9, "progressDeadlineSeconds", PB_OPTINT, NULL},
        END_F,
};
static const struct pb_msg dspec_m = {dspec_f, "DeploymentSpec", true};

/* Status is the server's to write: an empty one is accepted, its content ignored. */
static const struct pb_field nostatus_f[] = {END_F};
static const struct pb_msg nostatus_m = {nostatus_f, NULL, false};

static const struct pb_field deploy_f[] = {
        {1, "metadata", PB_MSG, &meta_m},
        {2, "spec", PB_MSG, &dspec_m},
        {3, "status", PB_MSG, &nostatus_m},
        END_F,
};
static const struct pb_msg deploy_m = {deploy_f, "Deployment", true};

static const struct pb_field jspec_f[] = {
        {1, "parallelism", PB_OPTINT, NULL},
        {2, "completions", PB_OPTINT, NULL},
        {3, "activeDeadlineSeconds", PB_OPTINT, NULL},
        {4, "selector", PB_MSG, &selector_m},
        {5, "manualSelector", PB_OPTBOOL, NULL},
        {6, "template", PB_MSG, &template_m},
        {7, "backoffLimit", PB_OPTINT, NULL},
        {8, "ttlSecondsAfterFinished", PB_OPTINT, NULL},
        {9, "completionMode", PB_STRING, NULL},
        {10, "suspend", PB_OPTBOOL, NULL},
        END_F,
};
static const struct pb_msg jspec_m = {jspec_f, "JobSpec", true};

static const struct pb_field job_f[] = {
        {1, "metadata", PB_MSG, &meta_m},
        {2, "spec", PB_MSG, &jspec_m},
        {3, "status", PB_MSG, &nostatus_m},
        END_F,
};
static const struct pb_msg job_m = {job_f, "Job", true};

static const struct pb_field typemeta_f[] = {
        {1, "apiVersion", PB_STRING, NULL},
        {2, "kind", PB_STRING, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg typemeta_m = {typemeta_f, NULL, false};

static const struct pb_field unknown_f[] = {
        {1, "typeMeta", PB_MSG, &typemeta_m},
        {2, "raw", PB_BYTES, NULL},
        {3, "contentEncoding", PB_STRING, NULL},
        {4, "contentType", PB_STRING, NULL},
        {0, NULL, PB_INT, NULL},
};
static const struct pb_msg unknown_m = {unknown_f, NULL, false};

struct pb_reader {
        const unsigned char *p, *end;
};

static int pb_varint(uint64_t *out, struct pb_reader *r)
{
        uint64_t v = 0;

        for (int shift = 0; shift < 64; shift += 7) {
                unsigned char b;
                if (r->p >= r->end)
                        return -1;
                b = *r->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = v;
                        return 0;
                }
        }
        return -1;
}

static int pb_bytes(const unsigned char **data, size_t *len, struct pb_reader *r)
{
        uint64_t n;

        if (pb_varint(&n, r) != 0 || n > (uint64_t)(r->end - r->p))
                return -1;
        *data = r->p;
        *len = (size_t)n;
        r->p += n;
        return 0;
}

static char *b64(const unsigned char *s, size_t n)
{
        static const char tbl[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = sw_xmalloc((n + 2) / 3 * 4 + 1), *w = out;

        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned)s[i] << 16;
                if (i + 1 < n)
                        v |= (unsigned)s[i + 1] << 8;
                if (i + 2 < n)
                        v |= s[i + 2];
                *w++ = tbl[(v >> 18) & 63];
                *w++ = tbl[(v >> 12) & 63];
                *w++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
                *w++ = i + 2 < n ? tbl[v & 63] : '=';
        }
        *w = '\0';
        return out;
}

static int pb_decode(json_t *obj, const unsigned char *data, size_t len, const struct pb_msg *m,
                     int depth, struct sw_err *err);

/* One map entry {1 key, 2 value}. */
static int pb_map_entry(json_t *map, const unsigned char *data, size_t len, bool bytes,
                        struct sw_err *err)
{
        struct pb_reader r = {data, data + len};
        char *key = sw_xstrdup("");
        json_t *val = json_string("");

        while (r.p < r.end) {
                uint64_t tag;
                const unsigned char *d;
                size_t n;
                if (pb_varint(&tag, &r) != 0 || (tag & 7) != 2 || pb_bytes(&d, &n, &r) != 0) {
                        free(key);
                        json_decref(val);
                        return sw_err_set(err, SW_EINVAL, "malformed protobuf map entry");
                }
                if ((tag >> 3) == 1) {
                        free(key);
                        key = sw_xstrndup((const char *)d, n);
                } else if ((tag >> 3) == 2) {
                        json_decref(val);
                        if (bytes) {
                                char *enc = b64(d, n);
                                val = json_string(enc);
                                free(enc);
                        } else {
                                val = json_stringn((const char *)d, n);
                        }
                }
        }
        json_object_set_new(map, key, val ? val : json_string(""));
        free(key);
        return 0;
}

/* A map<string, Quantity> entry: {1 key, 2 Quantity {1 string}}. */
static int pb_qty_entry(json_t *map, const unsigned char *data, size_t len, struct sw_err *err)
{
        struct pb_reader r = {data, data + len};
        json_t *q = json_object();
        char *key = sw_xstrdup("");
        int rc = 0;

        while (r.p < r.end && rc == 0) {
                uint64_t tag;
                const unsigned char *d;
                size_t n;
                if (pb_varint(&tag, &r) != 0 || (tag & 7) != 2 || pb_bytes(&d, &n, &r) != 0) {
                        rc = sw_err_set(err, SW_EINVAL, "malformed protobuf quantity entry");
                } else if ((tag >> 3) == 1) {
                        free(key);
                        key = sw_xstrndup((const char *)d, n);
                } else if ((tag >> 3) == 2) {
                        static const struct pb_field qf[] = {{1, "string", PB_STRING, NULL},
                                                             {0, NULL, PB_INT, NULL}};
                        static const struct pb_msg qm = {qf, "Quantity", true};
                        rc = pb_decode(q, d, n, &qm, 1, err);
                }
        }
        if (rc == 0)
                json_object_set(map, key,
                                json_object_get(q, "string") ? json_object_get(q, "string")
                                                             : json_string("0"));
        json_decref(q);
        free(key);
        return rc;
}

/* intstr.IntOrString {1 type (0 int, 1 string), 2 intVal, 3 strVal} as a JSON int or string. */
static int pb_intstr(json_t **out, const unsigned char *data, size_t len, struct sw_err *err)
{
        static const struct pb_field f[] = {{1, "type", PB_INT, NULL},
                                            {2, "intVal", PB_INT, NULL},
                                            {3, "strVal", PB_STRING, NULL},
                                            {0, NULL, PB_INT, NULL}};
        static const struct pb_msg m = {f, "IntOrString", true};
        json_t *v = json_object();
        int rc = pb_decode(v, data, len, &m, 1, err);

        if (rc == 0) {
                json_t *sv = json_object_get(v, "strVal");
                if (json_integer_value(json_object_get(v, "type")) == 1)
                        *out = json_string(sv ? json_string_value(sv) : "");
                else
                        *out = json_integer(json_integer_value(json_object_get(v, "intVal")));
        }
        json_decref(v);
        return rc;
}

static json_t *child(json_t *obj, const char *name, bool array)
{
        json_t *c = json_object_get(obj, name);

        if (!c) {
                c = array ? json_array() : json_object();
                json_object_set_new(obj, name, c);
        }
        return c;
}

static int pb_decode(json_t *obj, const unsigned char *data, size_t len, const struct pb_msg *m,
                     int depth, struct sw_err *err)
{
        struct pb_reader r = {data, data + len};

        if (depth > PB_MAX_DEPTH)
                return sw_err_set(err, SW_ETOOBIG, "protobuf nested too deeply");
        while (r.p < r.end) {
                uint64_t tag, v = 0;
                const unsigned char *d = NULL;
                size_t n = 0;
                const struct pb_field *f = NULL;
                int wire, rc;

                if (pb_varint(&tag, &r) != 0)
                        return sw_err_set(err, SW_EINVAL, "malformed protobuf tag");
                wire = (int)(tag & 7);
                if (wire == 0)
                        rc = pb_varint(&v, &r);
                else if (wire == 2)
                        rc = pb_bytes(&d, &n, &r);
                else if (wire == 1 && r.end - r.p >= 8)
                        rc = (r.p += 8, 0);
                else if (wire == 5 && r.end - r.p >= 4)
                        rc = (r.p += 4, 0);
                else
                        rc = -1;
                if (rc)
                        return sw_err_set(err, SW_EINVAL, "malformed protobuf field %llu",
                                          (unsigned long long)(tag >> 3));
                for (const struct pb_field *x = m->fields; x->num; x++)
                        if ((uint64_t)x->num == tag >> 3)
                                f = x;
                if (!f && m->go_zero && (n > 0 || v != 0 || (wire != 0 && wire != 2)))
                        return sw_err_set(err, SW_EPROTO,
                                          "protobuf field %llu of %s is not supported here; send "
                                          "the object as JSON",
                                          (unsigned long long)(tag >> 3), m->name);
                if (!f)
                        continue; /* fields we do not model are skipped (or empty) */
                if (m->go_zero && ((f->type == PB_STRING && n == 0) ||
                                   ((f->type == PB_INT || f->type == PB_BOOL) && v == 0)))
                        continue; /* Go's zero value: the field is absent */
                switch (f->type) {
                case PB_STRING:
                        json_object_set_new(obj, f->name, json_stringn((const char *)d, n));
                        break;
                case PB_OPTINT:
                        json_object_set_new(obj, f->name, json_integer((json_int_t)v));
                        break;
                case PB_OPTBOOL:
                        json_object_set_new(obj, f->name, json_boolean(v != 0));
                        break;
                case PB_MAP_QTY:
                        if ((rc = pb_qty_entry(child(obj, f->name, false), d, n, err)) != 0)
                                return rc;
                        break;
                case PB_INTSTR: {
                        json_t *is = NULL;
                        if ((rc = pb_intstr(&is, d, n, err)) != 0)
                                return rc;
                        json_object_set_new(obj, f->name, is);
                        break;
                }
                case PB_BYTES: {
                        char *enc = b64(d, n);
                        json_object_set_new(obj, f->name, json_string(enc));
                        free(enc);
                        break;
                }
                case PB_INT:
                        json_object_set_new(obj, f->name, json_integer((json_int_t)v));
                        break;
                case PB_BOOL:
                        json_object_set_new(obj, f->name, json_boolean(v != 0));
                        break;
                case PB_MSG:
                        if ((rc = pb_decode(child(obj, f->name, false), d, n, f->msg, depth + 1,
                                            err)) != 0)
                                return rc;
                        break;
                case PB_MSGS: {
                        json_t *e = json_object();
                        json_array_append_new(child(obj, f->name, true), e);
                        if ((rc = pb_decode(e, d, n, f->msg, depth + 1, err)) != 0)
                                return rc;
                        break;
                }
                case PB_MAP_STR:
                case PB_MAP_B64:
                        if ((rc = pb_map_entry(child(obj, f->name, false), d, n,
                                               f->type == PB_MAP_B64, err)) != 0)
                                return rc;
                        break;
                case PB_STRS:
                        json_array_append_new(child(obj, f->name, true),
                                              json_stringn((const char *)d, n));
                        break;
                case PB_TIME:
                        break; /* server-set timestamps are ignored on writes */
                }
        }
        return 0;
}

static const char *str_of(const json_t *obj, const char *key)
{
        const json_t *v = json_object_get(obj, key);

        return json_is_string(v) ? json_string_value(v) : "";
}

static int b64_decode(unsigned char **out, size_t *len_out, const char *s)
{
        size_t n = strlen(s), o = 0;
        unsigned char *buf = sw_xmalloc(n / 4 * 3 + 3);
        unsigned acc = 0;
        int bits = 0;

        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                int v;
                if (c >= 'A' && c <= 'Z')
                        v = c - 'A';
                else if (c >= 'a' && c <= 'z')
                        v = c - 'a' + 26;
                else if (c >= '0' && c <= '9')
                        v = c - '0' + 52;
                else if (c == '+')
                        v = 62;
                else if (c == '/')
                        v = 63;
                else if (c == '=')
                        break;
                else {
                        free(buf);
                        return -1;
                }
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        buf[o++] = (unsigned char)((acc >> bits) & 0xff);
                }
        }
        *out = buf;
        *len_out = o;
        return 0;
}

int orch_proto_decode(json_t **out, const void *body, size_t len, const char *kind,
                      struct sw_err *err)
{
        const struct pb_msg *m = NULL;
        json_t *env = json_object(), *obj = NULL;
        unsigned char *raw = NULL;
        size_t raw_len = 0;
        int rc;

        if (strcmp(kind, "ConfigMap") == 0)
                m = &cm_m;
        else if (strcmp(kind, "Secret") == 0)
                m = &secret_m;
        else if (strcmp(kind, "Namespace") == 0)
                m = &ns_m;
        else if (strcmp(kind, "ServiceAccount") == 0)
                m = &sa_m;
        else if (strcmp(kind, "Deployment") == 0)
                m = &deploy_m;
        else if (strcmp(kind, "Job") == 0)
                m = &job_m;
        if (!m) {
                json_decref(env);
                return sw_err_set(err, SW_EPROTO,
                                  "protobuf request bodies are supported for ConfigMap, Secret, "
                                  "Namespace, ServiceAccount, Deployment and Job only; send %s "
                                  "as JSON",
                                  kind);
        }
        if (len < 4 || memcmp(body, "k8s\0", 4) != 0) {
                json_decref(env);
                return sw_err_set(err, SW_EINVAL, "protobuf body without the k8s envelope");
        }
        rc = pb_decode(env, (const unsigned char *)body + 4, len - 4, &unknown_m, 0, err);
        if (rc)
                goto out;
        if (strcmp(str_of(json_object_get(env, "typeMeta"), "kind"), kind) != 0) {
                rc = sw_err_set(err, SW_EINVAL, "protobuf body holds a \"%s\", not a %s",
                                str_of(json_object_get(env, "typeMeta"), "kind"), kind);
                goto out;
        }
        if (b64_decode(&raw, &raw_len, str_of(env, "raw")) != 0) {
                rc = sw_err_set(err, SW_EINVAL, "malformed protobuf body");
                goto out;
        }
        obj = json_pack("{s:s,s:s}", "apiVersion",
                        str_of(json_object_get(env, "typeMeta"), "apiVersion"), "kind", kind);
        rc = pb_decode(obj, raw, raw_len, m, 0, err);
        if (rc)
                goto out;
        *out = obj;
        obj = NULL;
out:
        free(raw);
        json_decref(obj);
        json_decref(env);
        return rc;
}
