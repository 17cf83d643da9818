/*
 * build_cmd.c - `slipway build`, and the pipeline steps `build` and `push`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/cli.h"
#include "steps/build.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "steps/steps.h"
#include "common/banned.h"

#define LIST_MAX 64

static void print_line(void *arg, const char *line)
{
        (void)arg;
        printf("%s\n", line);
        fflush(stdout);
}

static void print_output(void *arg, const char *data, size_t len)
{
        (void)arg;
        fwrite(data, 1, len, stdout);
        fflush(stdout);
}

static void print_progress(void *arg, const struct step_registry_progress *p)
{
        static const char *const what[] = {"pushed", "exists", "mounted", "pulled", "present"};

        (void)arg;
        printf("  %-8s %.19s %s %lld bytes in %lldms\n", p->what, p->digest, what[p->result],
               (long long)p->size, (long long)p->elapsed_ms);
}

/* Push `layout` (its ref "latest") to `ref`; digest_out gets the manifest digest. */
static int push_layout(char *digest_out, const struct sw_config *cfg, const char *layout_dir,
                       const char *ref, step_registry_progress_fn progress, void *arg,
                       struct sw_err *err)
{
        struct step_registry_ref r;
        struct step_registry_options ro = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *reg = NULL;
        struct step_oci_layout *l = NULL;
        int rc;

        rc = step_registry_ref_parse(&r, ref, cfg->registry, err);
        if (rc)
                return rc;
        step_registry_options_from_config(&ro, cfg, r.host);
        ro.progress = progress;
        ro.progress_arg = arg;
        if ((rc = step_oci_layout_open(&l, layout_dir, false, err)) == 0 &&
            (rc = step_registry_new(&reg, &ro, err)) == 0)
                rc = step_registry_push(digest_out, reg, l, "latest", r.repo,
                                        r.tag[0] ? r.tag : "latest", NULL, err);
        step_registry_free(reg);
        step_oci_layout_free(l);
        return rc;
}

int step_build_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"tag", required_argument, NULL, 't'},
                {"file", required_argument, NULL, 'f'},
                {"target", required_argument, NULL, 'T'},
                {"build-arg", required_argument, NULL, 'a'},
                {"secret", required_argument, NULL, 's'},
                {"layout", required_argument, NULL, 'l'},
                {"oci-layout", required_argument, NULL, 'l'},
                {"zstd", no_argument, NULL, 'z'},
                {"source", required_argument, NULL, 'S'},
                {"revision", required_argument, NULL, 'R'},
                {"no-cache", no_argument, NULL, 'n'},
                {"push", no_argument, NULL, 'p'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct step_build_options o = {0};
        struct step_build_result res;
        struct sw_err err = SW_ERR_INIT;
        const char *args[LIST_MAX + 1] = {0}, *secrets[LIST_MAX + 1] = {0};
        const char *tag = NULL, *layout = NULL;
        char *own_layout = NULL, *secret_specs[LIST_MAX] = {0};
        size_t nargs = 0, nsecrets = 0;
        bool push = false;
        int c, rc = 1;

        optind = 1;
        while ((c = getopt_long(argc, argv, "ht:f:", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway build DIR [-t REF] [options]\n\n"
                               "Build the Dockerfile in DIR into an OCI image, without a Docker\n"
                               "daemon: RUN under runc on overlayfs, reproducible layers, a cache\n"
                               "under $SLIPWAY_DATA/build.\n\n"
                               "  -t, --tag REF          the image's name (default: the directory's name)\n"
                               "  -f, --file PATH        the Dockerfile, relative to DIR (default: Dockerfile)\n"
                               "  --target STAGE         build up to this stage\n"
                               "  --build-arg NAME=VAL   a build argument (repeatable)\n"
                               "  --secret id=ID,src=PATH  a file for RUN --mount=type=secret (repeatable)\n"
                               "  --oci-layout DIR       write the OCI image layout here (default: a temporary one;\n"
                               "                         --layout is an alias)\n"
                               "  --zstd                 compress layers with zstd instead of gzip\n"
                               "  --source URL           the org.opencontainers.image.source label\n"
                               "  --revision REV         the org.opencontainers.image.revision label\n"
                               "  --no-cache             run every step\n"
                               "  --push                 push the image to REF's registry (SLIPWAY_REGISTRY)\n");
                        return 0;
                case 't':
                        tag = optarg;
                        break;
                case 'f':
                        o.dockerfile = optarg;
                        break;
                case 'T':
                        o.target = optarg;
                        break;
                case 'l':
                        layout = optarg;
                        break;
                case 'n':
                        o.no_cache = true;
                        break;
                case 'z':
                        o.zstd = true;
                        break;
                case 'S':
                        o.source = optarg;
                        break;
                case 'R':
                        o.revision = optarg;
                        break;
                case 'p':
                        push = true;
                        break;
                case 'a':
                        if (nargs == LIST_MAX)
                                return sw_cli_usage_error("build", "too many --build-arg");
                        args[nargs++] = optarg;
                        break;
                case 's': {
                        /* id=ID,src=PATH -> "ID=PATH" */
                        const char *id = strstr(optarg, "id="), *src = strstr(optarg, "src=");
                        if (!id || !src || nsecrets == LIST_MAX)
                                return sw_cli_usage_error("build", "--secret wants id=ID,src=PATH");
                        size_t idlen = strcspn(id + 3, ",");
                        secret_specs[nsecrets] =
                                sw_xasprintf("%.*s=%s", (int)idlen, id + 3, src + 4);
                        secrets[nsecrets] = secret_specs[nsecrets];
                        nsecrets++;
                        break;
                }
                default:
                        return sw_cli_usage_error("build", "unknown option");
                }
        }
        if (optind != argc - 1)
                return sw_cli_usage_error("build", "expected one build context directory");
        if (push && !tag)
                return sw_cli_usage_error("build", "--push needs -t REF");
        if (!layout) {
                own_layout = sw_xasprintf("%s/build/out-%d", cfg->data, (int)getpid());
                layout = own_layout;
        }
        o.cfg = cfg;
        o.context_dir = argv[optind];
        o.build_args = args;
        o.secrets = secrets;
        o.layout_dir = layout;
        o.log = print_line;
        o.output = print_output;
        if (step_build_image(&res, &o, &err) != 0) {
                sw_cli_fail("build", "%s", err.msg);
                goto out;
        }
        printf("image %s in %s\n", res.manifest_digest, layout);
        if (push) {
                char digest[SW_DIGEST_STR_LEN] = "";
                if (push_layout(digest, cfg, layout, tag, print_progress, NULL, &err) != 0) {
                        sw_cli_fail("build", "push %s: %s", tag, err.msg);
                        goto out;
                }
                printf("pushed %s@%s\n", tag, digest);
        }
        rc = 0;
out:
        for (size_t i = 0; i < nsecrets; i++)
                free(secret_specs[i]);
        free(own_layout);
        return rc;
}

/* ---- pipeline steps ---- */

static void step_log_line(void *arg, const char *line)
{
        eng_step_log(arg, "%s", line);
}

static void step_log_output(void *arg, const char *data, size_t len)
{
        eng_step_log_write(arg, data, len);
}

/* `url` without user info ("https://user:pw@host/x" -> "https://host/x"), or NULL. */
static char *url_public(const char *url)
{
        const char *scheme, *host, *at, *slash;

        if (!url)
                return NULL;
        scheme = strstr(url, "://");
        host = scheme ? scheme + 3 : url;
        slash = strchr(host, '/');
        at = strchr(host, '@');
        if (!scheme || !at || (slash && at > slash))
                return sw_xstrdup(url);
        return sw_xasprintf("%.*s%s", (int)(host - url), url, at + 1);
}

static int step_build_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const json_t *clone = eng_step_output(ctx, "clone");
        const struct sw_config *cfg = eng_step_config(ctx);
        struct step_build_options o = {0};
        struct step_build_result res;
        char *layout, *source;
        int rc;

        if (!sw_json_str(clone, "path", NULL))
                return sw_err_set(err, SW_EINVAL,
                                  "no checkout to build (the clone step did not "
                                  "run)");
        layout = sw_xasprintf("%s/images/job-%lld", cfg->data, (long long)eng_step_job_id(ctx));
        o.cfg = cfg;
        o.context_dir = sw_json_str(clone, "path", "");
        o.layout_dir = layout;
        source = url_public(sw_json_str(clone, "url", NULL));
        o.source = source;
        o.revision = sw_json_str(clone, "commit", NULL);
        o.stop = eng_step_stop_flag(ctx);
        o.log = step_log_line;
        o.output = step_log_output;
        o.arg = ctx;
        rc = step_build_image(&res, &o, err);
        if (rc == 0)
                *output = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:i}", "layout", layout, "manifest",
                                    res.manifest_digest, "config", res.config_digest, "port",
                                    res.exposed_port, "layers", res.layers, "steps", res.steps,
                                    "cached", res.cached);
        free(layout);
        free(source);
        return rc;
}

const struct eng_step_def step_build_def = {
        .name = "build",
        .summary = "build the repository's Dockerfile into an image",
        .run = step_build_run,
};

static void step_push_progress(void *arg, const struct step_registry_progress *p)
{
        static const char *const what[] = {"pushed", "already there", "mounted", "pulled",
                                           "present"};

        eng_step_log(arg, "%s %.19s: %s (%lld bytes, %lldms)", p->what, p->digest, what[p->result],
                     (long long)p->size, (long long)p->elapsed_ms);
}

static int step_push_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const json_t *req = eng_step_output(ctx, "validate");
        const json_t *build = eng_step_output(ctx, "build");
        const json_t *clone = eng_step_output(ctx, "clone");
        const struct sw_config *cfg = eng_step_config(ctx);
        char digest[SW_DIGEST_STR_LEN] = "";
        const char *commit = sw_json_str(clone, "commit", "latest");
        char *ref, *image;
        int rc;

        if (!sw_json_str(build, "layout", NULL))
                return sw_err_set(err, SW_EINVAL, "no image to push (the build step did not run)");
        if (!req)
                req = eng_step_payload(ctx);
        /* <registry>/<namespace>/<name>:<commit>, pulled by digest from then on */
        ref = sw_xasprintf("%s/%s/%s:%.12s", cfg->registry,
                           sw_json_str(req, "namespace", "default"),
                           sw_json_str(req, "name", "app"), commit);
        eng_step_add_secret(ctx, cfg->registry_password);
        eng_step_log(ctx, "pushing %s", ref);
        rc = push_layout(digest, cfg, sw_json_str(build, "layout", ""), ref, step_push_progress,
                         ctx, err);
        if (rc == 0) {
                image = sw_xasprintf("%s/%s/%s@%s", cfg->registry,
                                     sw_json_str(req, "namespace", "default"),
                                     sw_json_str(req, "name", "app"), digest);
                *output = json_pack("{s:s,s:s,s:s}", "image", image, "tag", ref, "digest", digest);
                free(image);
        }
        free(ref);
        return rc;
}

const struct eng_step_def step_push_def = {
        .name = "push",
        .summary = "push the image to the registry",
        .run = step_push_run,
};
