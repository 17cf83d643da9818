/*
 * table.c - the route table: what each source (Ingress) contributes.
 *
 * The table only stores; conflicts between sources are settled when the
 * configuration is rendered (render.c), by source order. Keeping sources
 * apart makes the controller's job simple: an Ingress that changes replaces
 * its own entries, one that is deleted removes them, nothing else moves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "ingress/ingress_int.h"
#include "common/banned.h"

void ingress_table_new(struct ingress_table **out)
{
        *out = sw_xcalloc(1, sizeof(struct ingress_table));
}

static void source_release(struct ingress__source *s)
{
        for (size_t i = 0; i < s->n_routes; i++) {
                free((char *)s->routes[i].host);
                free((char *)s->routes[i].path);
                free((char *)s->routes[i].backend);
        }
        for (size_t i = 0; i < s->n_tls; i++) {
                free((char *)s->tls[i].host);
                free((char *)s->tls[i].cert_file);
                free((char *)s->tls[i].key_file);
        }
        free(s->routes);
        free(s->tls);
        free(s->name);
        free(s->order_key);
        memset(s, 0, sizeof(*s));
}

void ingress_table_free(struct ingress_table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                source_release(&t->src[i]);
        free(t->src);
        free(t);
}

size_t ingress_table_count(const struct ingress_table *t)
{
        return t->n;
}

int ingress__source_cmp(const void *a, const void *b)
{
        const struct ingress__source *x = *(const struct ingress__source *const *)a;
        const struct ingress__source *y = *(const struct ingress__source *const *)b;
        int c = strcmp(x->order_key, y->order_key);

        return c ? c : strcmp(x->name, y->name);
}

static struct ingress__source *find(const struct ingress_table *t, const char *source)
{
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->src[i].name, source) == 0)
                        return &t->src[i];
        return NULL;
}

static int check_route(const struct ingress_route *r, size_t i, struct sw_err *err)
{
        char what[64];
        int rc;

        snprintf(what, sizeof(what), "route %zu host", i);
        if (!r->host)
                return sw_err_set(err, SW_EINVAL, "%s: missing", what);
        if (*r->host && (rc = ingress_valid_host(r->host, what, err)) != 0)
                return rc;
        snprintf(what, sizeof(what), "route %zu path", i);
        if (!r->path)
                return sw_err_set(err, SW_EINVAL, "%s: missing", what);
        if ((rc = ingress_valid_path(r->path, what, err)) != 0)
                return rc;
        if (r->path_type != INGRESS_PATH_PREFIX && r->path_type != INGRESS_PATH_EXACT &&
            r->path_type != INGRESS_PATH_IMPL)
                return sw_err_set(err, SW_EINVAL, "route %zu: unknown path type %d", i,
                                  (int)r->path_type);
        snprintf(what, sizeof(what), "route %zu backend", i);
        if (!r->backend)
                return sw_err_set(err, SW_EINVAL, "%s: missing", what);
        return ingress_valid_backend(r->backend, what, err);
}

static int check_tls(const struct ingress_tls *x, size_t i, struct sw_err *err)
{
        char what[64];
        int rc;

        snprintf(what, sizeof(what), "tls %zu host", i);
        if (!x->host)
                return sw_err_set(err, SW_EINVAL, "%s: missing", what);
        if ((rc = ingress_valid_host(x->host, what, err)) != 0)
                return rc;
        snprintf(what, sizeof(what), "tls %zu certificate", i);
        if (!x->cert_file)
                return sw_err_set(err, SW_EINVAL, "%s: missing", what);
        if ((rc = ingress_valid_file(x->cert_file, what, err)) != 0)
                return rc;
        snprintf(what, sizeof(what), "tls %zu key", i);
        if (!x->key_file)
                return sw_err_set(err, SW_EINVAL, "%s: missing", what);
        return ingress_valid_file(x->key_file, what, err);
}

int ingress_table_set(struct ingress_table *t, const char *source, const char *order_key,
                      const struct ingress_route *routes, size_t n_routes,
                      const struct ingress_tls *tls, size_t n_tls, struct sw_err *err)
{
        struct ingress__source fresh, *slot;
        int rc;

        if (!source || !*source)
                return sw_err_set(err, SW_EINVAL, "route source: must not be empty");
        for (size_t i = 0; i < n_routes; i++)
                if ((rc = check_route(&routes[i], i, err)) != 0)
                        return sw_err_wrap(err, "%s", source);
        for (size_t i = 0; i < n_tls; i++)
                if ((rc = check_tls(&tls[i], i, err)) != 0)
                        return sw_err_wrap(err, "%s", source);

        memset(&fresh, 0, sizeof(fresh));
        fresh.name = sw_xstrdup(source);
        fresh.order_key = sw_xstrdup(order_key ? order_key : "");
        fresh.routes = sw_xcalloc(n_routes ? n_routes : 1, sizeof(*fresh.routes));
        fresh.n_routes = n_routes;
        for (size_t i = 0; i < n_routes; i++) {
                fresh.routes[i] = routes[i];
                fresh.routes[i].host = sw_xstrdup(routes[i].host);
                fresh.routes[i].path = sw_xstrdup(routes[i].path);
                fresh.routes[i].backend = sw_xstrdup(routes[i].backend);
        }
        fresh.tls = sw_xcalloc(n_tls ? n_tls : 1, sizeof(*fresh.tls));
        fresh.n_tls = n_tls;
        for (size_t i = 0; i < n_tls; i++) {
                fresh.tls[i].host = sw_xstrdup(tls[i].host);
                fresh.tls[i].cert_file = sw_xstrdup(tls[i].cert_file);
                fresh.tls[i].key_file = sw_xstrdup(tls[i].key_file);
        }

        slot = find(t, source);
        if (slot) {
                source_release(slot);
        } else {
                if (t->n == t->cap) {
                        t->cap = t->cap ? t->cap * 2 : 16;
                        t->src = sw_xrealloc(t->src, t->cap * sizeof(*t->src));
                }
                slot = &t->src[t->n++];
        }
        *slot = fresh;
        return 0;
}

int ingress_table_remove(struct ingress_table *t, const char *source, struct sw_err *err)
{
        struct ingress__source *s = find(t, source);

        if (!s)
                return sw_err_set(err, SW_ENOTFOUND, "no routes from '%s'", source);
        source_release(s);
        *s = t->src[--t->n];
        return 0;
}
