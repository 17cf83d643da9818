/*
 * translate.c - a networking.k8s.io/v1 Ingress into route table entries.
 *
 * What is read: metadata.name/namespace/creationTimestamp, the class
 * (spec.ingressClassName, else the kubernetes.io/ingress.class annotation),
 * spec.rules[].host and .http.paths[] (path, pathType, backend.service with
 * port.number or port.name), spec.tls[] (hosts, secretName) and
 * spec.defaultBackend. The defaultBackend serves requests no rule matches:
 * the catch-all server's "/" and the "/" of each of this Ingress's hosts that
 * has no "/" of its own (as ingress-nginx does), marked as fallback so that
 * any explicit route wins. Nothing else (annotations in particular) has any
 * effect on the configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/validate.h"
#include "ingress/ingress_int.h"
#include "common/banned.h"

#define MAX_ROUTES 10000
#define MAX_TLS 1000

struct xlate {
        const char *ns;
        const struct ingress_resolver *res;
        struct ingress_route *routes;
        size_t n_routes, cap_routes;
        struct ingress_tls *tls;
        size_t n_tls, cap_tls;
};

static void xlate_release(struct xlate *x)
{
        for (size_t i = 0; i < x->n_routes; i++)
                free((char *)x->routes[i].backend);
        for (size_t i = 0; i < x->n_tls; i++) {
                free((char *)x->tls[i].cert_file);
                free((char *)x->tls[i].key_file);
        }
        free(x->routes);
        free(x->tls);
}

/* Appends a route; takes ownership of `backend`. */
static int add_route(struct xlate *x, const char *host, const char *path,
                     enum ingress_path_type type, char *backend, bool fallback, struct sw_err *err)
{
        if (x->n_routes == MAX_ROUTES) {
                free(backend);
                return sw_err_set(err, SW_ETOOBIG, "more than %d paths", MAX_ROUTES);
        }
        if (x->n_routes == x->cap_routes) {
                x->cap_routes = x->cap_routes ? x->cap_routes * 2 : 8;
                x->routes = sw_xrealloc(x->routes, x->cap_routes * sizeof(*x->routes));
        }
        x->routes[x->n_routes++] = (struct ingress_route){
                .host = host,
                .path = path,
                .path_type = type,
                .backend = backend,
                .fallback = fallback,
        };
        return 0;
}

static const char *str_member(const json_t *obj, const char *key)
{
        json_t *v = obj ? json_object_get(obj, key) : NULL;

        return json_is_string(v) ? json_string_value(v) : NULL;
}

/* backend.service -> "address:port" through the resolver; *out is malloc'ed. */
static int resolve_backend(char **out, struct xlate *x, const json_t *backend, const char *field,
                           struct sw_err *err)
{
        const json_t *svc, *port, *num;
        const char *name, *port_name = NULL;
        char q[INGRESS__QUOTE_MAX];
        char what[160];
        int number = 0, rc;

        if (!json_is_object(backend))
                return sw_err_set(err, SW_EINVAL, "%s: must be an object", field);
        if (json_object_get(backend, "resource"))
                return sw_err_set(err, SW_EINVAL,
                                  "%s.resource: resource backends are not supported", field);
        svc = json_object_get(backend, "service");
        if (!json_is_object(svc))
                return sw_err_set(err, SW_EINVAL, "%s.service: missing", field);
        name = str_member(svc, "name");
        if (!name)
                return sw_err_set(err, SW_EINVAL, "%s.service.name: missing", field);
        snprintf(what, sizeof(what), "%s.service.name", field);
        if ((rc = sw_valid_dns1035_label(name, what, err)) != 0)
                return rc;
        port = json_object_get(svc, "port");
        if (!json_is_object(port))
                return sw_err_set(err, SW_EINVAL, "%s.service.port: missing", field);
        num = json_object_get(port, "number");
        port_name = str_member(port, "name");
        if (num && port_name)
                return sw_err_set(err, SW_EINVAL,
                                  "%s.service.port: give either number or name, not both", field);
        if (num) {
                if (!json_is_integer(num) || json_integer_value(num) < 1 ||
                    json_integer_value(num) > 65535)
                        return sw_err_set(err, SW_EINVAL,
                                          "%s.service.port.number: must be an integer 1-65535",
                                          field);
                number = (int)json_integer_value(num);
        } else if (port_name) {
                snprintf(what, sizeof(what), "%s.service.port.name", field);
                if (strlen(port_name) > 15) {
                        ingress__quote(q, sizeof(q), port_name);
                        return sw_err_set(err, SW_EINVAL, "%s: '%s' is longer than 15 characters",
                                          what, q);
                }
                if ((rc = sw_valid_dns1123_label(port_name, what, err)) != 0)
                        return rc;
        } else {
                return sw_err_set(err, SW_EINVAL, "%s.service.port: needs number or name", field);
        }
        if (!x->res || !x->res->service)
                return sw_err_set(err, SW_EINVAL, "%s: no resolver for Services", field);
        rc = x->res->service(out, x->res->ctx, x->ns, name, number, port_name, err);
        if (rc) {
                if (port_name)
                        return sw_err_wrap(err, "%s: service %s/%s port %s", field, x->ns, name,
                                           port_name);
                return sw_err_wrap(err, "%s: service %s/%s port %d", field, x->ns, name, number);
        }
        return 0;
}

static int parse_path_type(enum ingress_path_type *out, const json_t *p, const char *field,
                           struct sw_err *err)
{
        const char *t = str_member(p, "pathType");
        char q[INGRESS__QUOTE_MAX];

        if (!t)
                return sw_err_set(err, SW_EINVAL, "%s.pathType: missing", field);
        if (strcmp(t, "Prefix") == 0)
                *out = INGRESS_PATH_PREFIX;
        else if (strcmp(t, "Exact") == 0)
                *out = INGRESS_PATH_EXACT;
        else if (strcmp(t, "ImplementationSpecific") == 0)
                *out = INGRESS_PATH_IMPL;
        else {
                ingress__quote(q, sizeof(q), t);
                return sw_err_set(err, SW_EINVAL,
                                  "%s.pathType: '%s' is not Prefix, Exact or "
                                  "ImplementationSpecific",
                                  field, q);
        }
        return 0;
}

static int add_rule(struct xlate *x, const json_t *rule, size_t ri, const json_t *default_backend,
                    struct sw_err *err)
{
        const char *host;
        const json_t *http, *paths, *p;
        char field[160], what[200];
        size_t pi;
        bool has_root = false;
        int rc;

        snprintf(field, sizeof(field), "spec.rules[%zu]", ri);
        if (!json_is_object(rule))
                return sw_err_set(err, SW_EINVAL, "%s: must be an object", field);
        host = str_member(rule, "host");
        if (json_object_get(rule, "host") && !host)
                return sw_err_set(err, SW_EINVAL, "%s.host: must be a string", field);
        if (!host)
                host = "";
        snprintf(what, sizeof(what), "%s.host", field);
        if (*host && (rc = ingress_valid_host(host, what, err)) != 0)
                return rc;

        http = json_object_get(rule, "http");
        paths = http ? json_object_get(http, "paths") : NULL;
        if (http && !json_is_array(paths))
                return sw_err_set(err, SW_EINVAL, "%s.http.paths: must be a list", field);
        json_array_foreach(paths, pi, p)
        {
                enum ingress_path_type type = INGRESS_PATH_PREFIX;
                const char *path;
                char *backend = NULL;

                snprintf(what, sizeof(what), "%s.http.paths[%zu]", field, pi);
                if (!json_is_object(p))
                        return sw_err_set(err, SW_EINVAL, "%s: must be an object", what);
                if ((rc = parse_path_type(&type, p, what, err)) != 0)
                        return rc;
                path = str_member(p, "path");
                if (json_object_get(p, "path") && !path)
                        return sw_err_set(err, SW_EINVAL, "%s.path: must be a string", what);
                /* Only ImplementationSpecific may leave the path out; it then means "/". */
                if (!path || !*path) {
                        if (type != INGRESS_PATH_IMPL)
                                return sw_err_set(err, SW_EINVAL, "%s.path: missing", what);
                        path = "/";
                }
                {
                        char pf[220];
                        snprintf(pf, sizeof(pf), "%s.path", what);
                        if ((rc = ingress_valid_path(path, pf, err)) != 0)
                                return rc;
                }
                if (strcmp(path, "/") == 0 && type != INGRESS_PATH_EXACT)
                        has_root = true;
                {
                        char bf[220];
                        snprintf(bf, sizeof(bf), "%s.backend", what);
                        if ((rc = resolve_backend(&backend, x, json_object_get(p, "backend"), bf,
                                                  err)) != 0)
                                return rc;
                }
                if ((rc = add_route(x, host, path, type, backend, false, err)) != 0)
                        return rc;
        }
        if (default_backend && !has_root) {
                char *backend = NULL;
                if ((rc = resolve_backend(&backend, x, default_backend, "spec.defaultBackend",
                                          err)) != 0)
                        return rc;
                if ((rc = add_route(x, host, "/", INGRESS_PATH_PREFIX, backend, true, err)) != 0)
                        return rc;
        }
        return 0;
}

static int add_tls(struct xlate *x, const json_t *entry, size_t ti, struct sw_err *err)
{
        const char *secret;
        const json_t *hosts, *h;
        char field[64], what[96];
        char *cert = NULL, *key = NULL;
        size_t hi;
        int rc = 0;

        snprintf(field, sizeof(field), "spec.tls[%zu]", ti);
        if (!json_is_object(entry))
                return sw_err_set(err, SW_EINVAL, "%s: must be an object", field);
        hosts = json_object_get(entry, "hosts");
        if (hosts && !json_is_array(hosts))
                return sw_err_set(err, SW_EINVAL, "%s.hosts: must be a list", field);
        secret = str_member(entry, "secretName");
        /* Without a secret (or hosts) there is no certificate of ours to serve. */
        if (!secret || !json_array_size(hosts))
                return 0;
        snprintf(what, sizeof(what), "%s.secretName", field);
        if ((rc = sw_valid_dns1123_subdomain(secret, what, err)) != 0)
                return rc;
        json_array_foreach(hosts, hi, h)
        {
                snprintf(what, sizeof(what), "%s.hosts[%zu]", field, hi);
                if (!json_is_string(h))
                        return sw_err_set(err, SW_EINVAL, "%s: must be a string", what);
                if ((rc = ingress_valid_host(json_string_value(h), what, err)) != 0)
                        return rc;
        }
        if (!x->res || !x->res->tls_secret)
                return sw_err_set(err, SW_EINVAL, "%s: no resolver for TLS secrets", field);
        if ((rc = x->res->tls_secret(&cert, &key, x->res->ctx, x->ns, secret, err)) != 0)
                return sw_err_wrap(err, "%s: secret %s/%s", field, x->ns, secret);
        json_array_foreach(hosts, hi, h)
        {
                if (x->n_tls == MAX_TLS) {
                        rc = sw_err_set(err, SW_ETOOBIG, "more than %d TLS hosts", MAX_TLS);
                        goto out;
                }
                if (x->n_tls == x->cap_tls) {
                        x->cap_tls = x->cap_tls ? x->cap_tls * 2 : 4;
                        x->tls = sw_xrealloc(x->tls, x->cap_tls * sizeof(*x->tls));
                }
                x->tls[x->n_tls++] = (struct ingress_tls){
                        .host = json_string_value(h),
                        .cert_file = sw_xstrdup(cert),
                        .key_file = sw_xstrdup(key),
                };
        }
out:
        free(cert);
        free(key);
        return rc;
}

/* The class this Ingress asks for, or NULL. */
static const char *ingress_class_of(const json_t *ing)
{
        const json_t *spec = json_object_get(ing, "spec");
        const json_t *meta = json_object_get(ing, "metadata");
        const char *c = str_member(spec, "ingressClassName");

        if (c)
                return c;
        return str_member(meta ? json_object_get(meta, "annotations") : NULL,
                          "kubernetes.io/ingress.class");
}

int ingress_table_set_ingress(struct ingress_table *t, bool *accepted_out, const json_t *ingress,
                              const struct ingress_resolver *res, const char *ingress_class,
                              struct sw_err *err)
{
        struct xlate x;
        const json_t *meta, *spec, *rules, *tls, *defb, *v;
        const char *kind, *name, *ns, *created, *cls;
        char *source = NULL;
        size_t i;
        int rc;

        memset(&x, 0, sizeof(x));
        if (!json_is_object(ingress))
                return sw_err_set(err, SW_EINVAL, "ingress: not a JSON object");
        kind = str_member(ingress, "kind");
        if (kind && strcmp(kind, "Ingress") != 0)
                return sw_err_set(err, SW_EINVAL, "ingress: kind is '%.64s', not 'Ingress'", kind);
        meta = json_object_get(ingress, "metadata");
        name = str_member(meta, "name");
        if (!name)
                return sw_err_set(err, SW_EINVAL, "ingress: metadata.name: missing");
        if ((rc = sw_valid_dns1123_subdomain(name, "ingress: metadata.name", err)) != 0)
                return rc;
        ns = str_member(meta, "namespace");
        if (!ns)
                ns = "default";
        if ((rc = sw_valid_dns1123_label(ns, "ingress: metadata.namespace", err)) != 0)
                return rc;
        source = sw_xasprintf("%s/%s", ns, name);

        cls = ingress_class_of(ingress);
        if (!cls || strcmp(cls, ingress_class ? ingress_class : "slipway") != 0) {
                ingress_table_remove(t, source, NULL);
                *accepted_out = false;
                rc = 0;
                goto out;
        }

        x.ns = ns;
        x.res = res;
        spec = json_object_get(ingress, "spec");
        if (!json_is_object(spec)) {
                rc = sw_err_set(err, SW_EINVAL, "spec: missing");
                goto fail;
        }
        defb = json_object_get(spec, "defaultBackend");
        rules = json_object_get(spec, "rules");
        if (rules && !json_is_array(rules)) {
                rc = sw_err_set(err, SW_EINVAL, "spec.rules: must be a list");
                goto fail;
        }
        json_array_foreach(rules, i, v)
        {
                if ((rc = add_rule(&x, v, i, defb, err)) != 0)
                        goto fail;
        }
        if (defb) {
                char *backend = NULL;
                if ((rc = resolve_backend(&backend, &x, defb, "spec.defaultBackend", err)) != 0)
                        goto fail;
                if ((rc = add_route(&x, "", "/", INGRESS_PATH_PREFIX, backend, true, err)) != 0)
                        goto fail;
        }
        tls = json_object_get(spec, "tls");
        if (tls && !json_is_array(tls)) {
                rc = sw_err_set(err, SW_EINVAL, "spec.tls: must be a list");
                goto fail;
        }
        json_array_foreach(tls, i, v)
        {
                if ((rc = add_tls(&x, v, i, err)) != 0)
                        goto fail;
        }
        created = str_member(meta, "creationTimestamp");
        rc = ingress_table_set(t, source, created, x.routes, x.n_routes, x.tls, x.n_tls, err);
        if (rc)
                goto out;
        *accepted_out = true;
        goto out;
fail:
        sw_err_wrap(err, "ingress %s", source);
out:
        xlate_release(&x);
        free(source);
        return rc;
}
