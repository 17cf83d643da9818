/*
 * cmd_ingress.c - `slipway ingress render FILE.json...`: the nginx
 * configuration slipway would run for some Ingress documents, with Services
 * and Secrets resolved from the command line instead of an API server.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/cli.h"
#include "ingress/ingress.h"
#include "common/banned.h"

#define DOC_MAX_BYTES ((size_t)16 << 20)

/* --backend ns/svc:port=ADDR:PORT and --tls ns/secret=CERT,KEY, as given. */
struct cli_map {
        char **keys; /* "ns/svc:port" or "ns/secret" */
        char **vals;
        size_t n;
};

static void map_add(struct cli_map *m, char *key, char *val)
{
        m->keys = sw_xrealloc(m->keys, (m->n + 1) * sizeof(char *));
        m->vals = sw_xrealloc(m->vals, (m->n + 1) * sizeof(char *));
        m->keys[m->n] = key;
        m->vals[m->n] = val;
        m->n++;
}

static void map_release(struct cli_map *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->keys[i]);
                free(m->vals[i]);
        }
        free(m->keys);
        free(m->vals);
}

static const char *map_get(const struct cli_map *m, const char *key)
{
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->keys[i], key) == 0)
                        return m->vals[i];
        return NULL;
}

struct cli_ctx {
        struct cli_map backends, secrets;
};

static int resolve_service(char **out, void *ctx, const char *ns, const char *name, int port,
                           const char *port_name, struct sw_err *err)
{
        const struct cli_ctx *c = ctx;
        char key[256];
        const char *v;

        if (port_name)
                snprintf(key, sizeof(key), "%s/%s:%s", ns, name, port_name);
        else
                snprintf(key, sizeof(key), "%s/%s:%d", ns, name, port);
        v = map_get(&c->backends, key);
        if (!v)
                return sw_err_set(err, SW_ENOTFOUND, "no --backend %s=ADDR:PORT given", key);
        *out = sw_xstrdup(v);
        return 0;
}

static int resolve_secret(char **cert_out, char **key_out, void *ctx, const char *ns,
                          const char *secret, struct sw_err *err)
{
        const struct cli_ctx *c = ctx;
        char key[256];
        const char *v, *comma;

        snprintf(key, sizeof(key), "%s/%s", ns, secret);
        v = map_get(&c->secrets, key);
        if (!v)
                return sw_err_set(err, SW_ENOTFOUND, "no --tls %s=CERT,KEY given", key);
        comma = strchr(v, ',');
        *cert_out = sw_xstrndup(v, (size_t)(comma - v));
        *key_out = sw_xstrdup(comma + 1);
        return 0;
}

static void usage(FILE *f)
{
        fprintf(f,
                "usage: slipway ingress render [OPTIONS] FILE.json...\n"
                "\n"
                "Print the nginx configuration for networking.k8s.io/v1 Ingress documents\n"
                "(one Ingress, or a List of them, per file). Ingresses of another class are\n"
                "skipped with a note on stderr.\n"
                "\n"
                "options:\n"
                "  --backend NS/SVC:PORT=ADDR:PORT  where a Service port is served (PORT is the\n"
                "                                   Ingress's port number or name); repeatable\n"
                "  --tls NS/SECRET=CERT,KEY         certificate and key files of a TLS Secret;\n"
                "                                   repeatable\n"
                "  --class NAME                     the ingress class to route (default\n"
                "                                   SLIPWAY_INGRESS_CLASS, 'slipway')\n"
                "  --listen ADDR:PORT               HTTP listen address (SLIPWAY_INGRESS_LISTEN)\n"
                "  --tls-listen ADDR:PORT           HTTPS listen address "
                "(SLIPWAY_INGRESS_TLS_LISTEN)\n"
                "  -h, --help                       this help\n");
}

/* Split "KEY=VALUE"; returns 0 or -1 when there is no '=' or a side is empty. */
static int split_eq(char **key, char **val, const char *arg)
{
        const char *eq = strchr(arg, '=');

        if (!eq || eq == arg || !eq[1])
                return -1;
        *key = sw_xstrndup(arg, (size_t)(eq - arg));
        *val = sw_xstrdup(eq + 1);
        return 0;
}

static int render_file(struct ingress_table *t, const char *path, struct cli_ctx *ctx,
                       const char *cls, struct sw_err *err)
{
        struct ingress_resolver res = {resolve_service, resolve_secret, ctx};
        char *text = NULL;
        size_t len = 0, i;
        json_t *doc = NULL, *items, *item;
        int rc;

        if ((rc = sw_read_file(&text, &len, path, DOC_MAX_BYTES, err)) != 0)
                goto out;
        if ((rc = sw_json_parse(&doc, text, len, DOC_MAX_BYTES, err)) != 0)
                goto out;
        items = json_object_get(doc, "items");
        if (json_is_array(items) && sw_json_str(doc, "kind", NULL) &&
            strcmp(sw_json_str(doc, "kind", ""), "List") != 0 &&
            strcmp(sw_json_str(doc, "kind", ""), "IngressList") != 0)
                items = NULL;
        if (!json_is_array(items)) {
                items = json_array();
                json_array_append(items, doc);
        } else {
                json_incref(items);
        }
        json_array_foreach(items, i, item)
        {
                bool accepted = false;
                if ((rc = ingress_table_set_ingress(t, &accepted, item, &res, cls, err)) != 0)
                        break;
                if (!accepted) {
                        const json_t *meta = json_object_get(item, "metadata");
                        fprintf(stderr, "slipway ingress: skipped %s/%s: its class is not '%s'\n",
                                sw_json_str(meta, "namespace", "default"),
                                sw_json_str(meta, "name", "?"), cls);
                }
        }
        json_decref(items);
out:
        if (rc)
                sw_err_wrap(err, "%s", path);
        json_decref(doc);
        free(text);
        return rc;
}

int ingress_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"backend", required_argument, NULL, 'b'},
                {"tls", required_argument, NULL, 's'},
                {"class", required_argument, NULL, 'c'},
                {"listen", required_argument, NULL, 'l'},
                {"tls-listen", required_argument, NULL, 'L'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct ingress_render_options ro = INGRESS_RENDER_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct cli_ctx ctx;
        const char *cls;
        char *conf = NULL, *k = NULL, *v = NULL;
        size_t len = 0;
        int c, rc = 0;

        memset(&ctx, 0, sizeof(ctx));
        if (!cfg) {
                usage(stdout);
                return 0;
        }
        if (argc < 2 || strcmp(argv[1], "render") != 0)
                return sw_cli_usage_error("ingress", "expected the subcommand 'render'");
        argc--;
        argv++;
        cls = cfg->ingress_class;
        ro.listen = cfg->ingress_listen;
        ro.tls_listen = cfg->ingress_tls_listen;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'b':
                case 's':
                        if (split_eq(&k, &v, optarg) != 0 ||
                            (c == 's' &&
                             (!strchr(v, ',') || strchr(v, ',') == v || !strchr(v, ',')[1]))) {
                                free(k);
                                free(v);
                                rc = sw_cli_usage_error("ingress", "--%s: '%s' is not %s",
                                                        c == 'b' ? "backend" : "tls", optarg,
                                                        c == 'b' ? "NS/SVC:PORT=ADDR:PORT"
                                                                 : "NS/SECRET=CERT,KEY");
                                goto out;
                        }
                        map_add(c == 'b' ? &ctx.backends : &ctx.secrets, k, v);
                        k = v = NULL;
                        break;
                case 'c':
                        cls = optarg;
                        break;
                case 'l':
                        ro.listen = optarg;
                        break;
                case 'L':
                        ro.tls_listen = optarg;
                        break;
                default:
                        rc = sw_cli_usage_error("ingress", "unknown option");
                        goto out;
                }
        }
        if (optind >= argc) {
                rc = sw_cli_usage_error("ingress", "expected at least one FILE.json");
                goto out;
        }
        ingress_table_new(&t);
        for (int i = optind; i < argc; i++)
                if (render_file(t, argv[i], &ctx, cls, &err) != 0) {
                        rc = sw_cli_fail("ingress", "%s", err.msg);
                        goto out;
                }
        if (ingress_render(&conf, &len, t, &ro, &err) != 0) {
                rc = sw_cli_fail("ingress", "%s", err.msg);
                goto out;
        }
        fwrite(conf, 1, len, stdout);
        rc = 0;
out:
        free(conf);
        ingress_table_free(t);
        map_release(&ctx.backends);
        map_release(&ctx.secrets);
        return rc;
}
