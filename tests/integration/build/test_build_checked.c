/*
 * test_build_checked.c - the builder's output checked by independent tools
 * (skopeo copies the image, umoci unpacks it, runc runs it from a config
 * derived here from the image config), its labels, zstd layers, progress
 * lines and CLI, and its refusal of bad input (an oversized context, a tar
 * in ADD whose entries leave the root).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "steps/build.h"
#include "steps/layer.h"
#include "steps/oci.h"
#include "tests/harness/build_fixture.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static struct sw_config cfg;

static const char *logtext(void)
{
        return tb_log.data ? tb_log.data : "";
}

static void options(struct step_build_options *o, const char *ctx, const char *layout,
                    const char *cache)
{
        memset(o, 0, sizeof(*o));
        sw_buf_reset(&tb_log);
        o->cfg = &cfg;
        o->context_dir = ctx;
        o->layout_dir = layout;
        o->cache_dir = cache;
        o->log = tb_on_log;
        o->output = tb_on_output;
}

/* The image's manifest and config from an OCI layout (the caller decrefs both). */
static void image_json(json_t **manifest, json_t **config, const char *layout)
{
        struct step_oci_layout *l = NULL;
        struct step_oci_desc d;
        struct sw_err err = SW_ERR_INIT;

        *manifest = *config = NULL;
        CHECK_OK(step_oci_layout_open(&l, layout, false, &err), &err);
        CHECK_OK(step_oci_ref_resolve(&d, l, "latest", &err), &err);
        CHECK_OK(step_oci_json_get(manifest, l, d.digest, 1 << 20, &err), &err);
        if (*manifest)
                CHECK_OK(step_oci_json_get(
                                 config, l,
                                 sw_json_str(json_object_get(*manifest, "config"), "digest", ""),
                                 1 << 20, &err),
                         &err);
        step_oci_layout_free(l);
}

static const char *label(const json_t *config, const char *key)
{
        return json_string_value(
                json_object_get(json_object_get(json_object_get(config, "config"), "Labels"), key));
}

static const char *SMALL = "FROM scratch\n"
                           "COPY busybox /bin/busybox\n"
                           "CMD [\"/bin/busybox\", \"echo\", \"hi\"]\n";

/* Labels from the options, zstd layers, one progress line per instruction. */
static void test_labels_zstd_progress(void)
{
        char *ctx = tb_context("small", SMALL);
        char *cache = sw_xasprintf("%s/cache-small", t_tmpdir());
        char *out1 = sw_xasprintf("%s/small-1", t_tmpdir());
        char *out2 = sw_xasprintf("%s/small-2", t_tmpdir());
        char *out3 = sw_xasprintf("%s/small-3", t_tmpdir());
        char *root = sw_xasprintf("%s/small-root", t_tmpdir());
        struct step_build_options o;
        struct step_build_result r1, r2, r3;
        struct sw_err err = SW_ERR_INIT;
        json_t *m = NULL, *c = NULL;

        options(&o, ctx, out1, cache);
        o.zstd = true;
        o.source = "https://git.example.test/team/app.git";
        o.revision = "0123456789abcdef0123456789abcdef01234567";
        CHECK_OK(step_build_image(&r1, &o, &err), &err);
        CHECK(strstr(logtext(), "Step 1/2 : COPY busybox /bin/busybox (") != NULL);
        CHECK(strstr(logtext(), "s)\nStep 2/2 : CMD [\"/bin/busybox\", \"echo\", \"hi\"] (") !=
              NULL);
        CHECK(strstr(logtext(), "(cached)") == NULL);
        image_json(&m, &c, out1);
        CHECK_STR(sw_json_str(json_array_get(json_object_get(m, "layers"), 0), "mediaType", ""),
                  STEP_LAYER_MEDIA_TAR_ZSTD);
        CHECK_STR(label(c, "org.opencontainers.image.source"), o.source);
        CHECK_STR(label(c, "org.opencontainers.image.revision"), o.revision);
        json_decref(m);
        json_decref(c);

        /* the zstd layer unpacks to busybox */
        {
                struct step_oci_layout *l = NULL;
                struct step_layer_unpack_options uo = STEP_LAYER_UNPACK_OPTIONS_INIT;
                image_json(&m, &c, out1);
                CHECK_OK(step_oci_layout_open(&l, out1, false, &err), &err);
                char *p = step_oci_blob_path(
                        l,
                        sw_json_str(json_array_get(json_object_get(m, "layers"), 0), "digest", ""));
                CHECK_OK(sw_mkdir_p(root, 0755, &err), &err);
                CHECK_OK(step_layer_apply(NULL, p, root, &uo, &err), &err);
                CHECK(tb_exists(root, "bin/busybox"));
                free(p);
                step_oci_layout_free(l);
                json_decref(m);
                json_decref(c);
        }

        /* again: every layer step from the cache, said so on its line */
        options(&o, ctx, out2, cache);
        o.zstd = true;
        o.source = "https://git.example.test/team/app.git";
        o.revision = "0123456789abcdef0123456789abcdef01234567";
        CHECK_OK(step_build_image(&r2, &o, &err), &err);
        CHECK_INT(r2.cached, 1);
        CHECK(strstr(logtext(), "Step 1/2 : COPY busybox /bin/busybox (cached)\n") != NULL);
        CHECK_STR(r2.manifest_digest, r1.manifest_digest);

        /* a gzip build does not take the zstd layer from the cache */
        options(&o, ctx, out3, cache);
        CHECK_OK(step_build_image(&r3, &o, &err), &err);
        CHECK_INT(r3.cached, 0);
        image_json(&m, &c, out3);
        CHECK_STR(sw_json_str(json_array_get(json_object_get(m, "layers"), 0), "mediaType", ""),
                  STEP_LAYER_MEDIA_TAR_GZIP);
        CHECK(label(c, "org.opencontainers.image.source") == NULL);
        json_decref(m);
        json_decref(c);

        /* a LABEL in the Dockerfile wins over the options */
        tb_put(ctx, "Dockerfile",
               "FROM scratch AS base\n"
               "LABEL org.opencontainers.image.source=https://mine.example.test/x\n"
               "FROM base\n"
               "COPY busybox /bin/busybox\n");
        options(&o, ctx, out3, cache);
        o.source = "https://git.example.test/team/app.git";
        o.revision = "abc";
        CHECK_OK(step_build_image(&r3, &o, &err), &err);
        image_json(&m, &c, out3);
        CHECK_STR(label(c, "org.opencontainers.image.source"), "https://mine.example.test/x");
        CHECK_STR(label(c, "org.opencontainers.image.revision"), "abc");
        json_decref(m);
        json_decref(c);

        free(ctx);
        free(cache);
        free(out1);
        free(out2);
        free(out3);
        free(root);
}

/*
 * A rebuild finds a COPY's layer from the sources' stat data alone; a file
 * rewritten with the same size is seen, a file rewritten with the same
 * content still hits the cache.
 */
static void test_copy_fingerprint(void)
{
        char *ctx = tb_context("fp", "FROM scratch\nCOPY busybox data /\n");
        char *cache = sw_xasprintf("%s/cache-fp", t_tmpdir());
        char *out = sw_xasprintf("%s/fp-out", t_tmpdir());
        char *root = sw_xasprintf("%s/fp-root", t_tmpdir());
        struct step_build_options o;
        struct step_build_result r1, r2, r3, r4;
        struct sw_err err = SW_ERR_INIT;
        json_t *m = NULL, *c = NULL;

        tb_put(ctx, "data/a.txt", "aaaa\n");
        options(&o, ctx, out, cache);
        CHECK_OK(step_build_image(&r1, &o, &err), &err);
        CHECK_INT(r1.cached, 0);
        options(&o, ctx, out, cache);
        CHECK_OK(step_build_image(&r2, &o, &err), &err);
        CHECK_INT(r2.cached, 1);
        CHECK_STR(r2.manifest_digest, r1.manifest_digest);

        /* same size, new content: copied again */
        tb_put(ctx, "data/a.txt", "bbbb\n");
        options(&o, ctx, out, cache);
        CHECK_OK(step_build_image(&r3, &o, &err), &err);
        CHECK_INT(r3.cached, 0);
        CHECK(strcmp(r3.manifest_digest, r1.manifest_digest) != 0);
        image_json(&m, &c, out);
        {
                struct step_oci_layout *l = NULL;
                struct step_layer_unpack_options uo = STEP_LAYER_UNPACK_OPTIONS_INIT;
                CHECK_OK(step_oci_layout_open(&l, out, false, &err), &err);
                char *p = step_oci_blob_path(
                        l,
                        sw_json_str(json_array_get(json_object_get(m, "layers"), 0), "digest", ""));
                CHECK_OK(sw_mkdir_p(root, 0755, &err), &err);
                CHECK_OK(step_layer_apply(NULL, p, root, &uo, &err), &err);
                char *text = tb_slurp(root, "a.txt");
                CHECK_STR(text, "bbbb\n");
                free(text);
                free(p);
                step_oci_layout_free(l);
        }
        json_decref(m);
        json_decref(c);

        /* back to the first content (new inode and times): the first layer again */
        tb_put(ctx, "data/a.txt", "aaaa\n");
        options(&o, ctx, out, cache);
        CHECK_OK(step_build_image(&r4, &o, &err), &err);
        CHECK_INT(r4.cached, 1);
        CHECK_STR(r4.manifest_digest, r1.manifest_digest);
        free(ctx);
        free(cache);
        free(out);
        free(root);
}

/* `slipway build --oci-layout DIR --zstd` (and --layout, its alias). */
static void test_cli(void)
{
        char *ctx = tb_context("cli", SMALL);
        char *data = sw_xasprintf("%s/cli-data", t_tmpdir());
        char *out = sw_xasprintf("%s/cli-out", t_tmpdir());
        char *out2 = sw_xasprintf("%s/cli-out2", t_tmpdir());
        char *env_data = sw_xasprintf("SLIPWAY_DATA=%s", data);
        const char *env[] = {env_data, NULL};
        char *argv[] = {(char *)t_slipway(),
                        "build",
                        ctx,
                        "--oci-layout",
                        out,
                        "--zstd",
                        "--source",
                        "https://git.example.test/cli.git",
                        "--revision",
                        "feedface",
                        NULL};
        char *argv2[] = {(char *)t_slipway(), "build", ctx, "--layout", out2, "--zstd", NULL};
        char *text = NULL;
        json_t *m = NULL, *c = NULL;

        CHECK_INT(t_run_capture(&text, argv, env, 30000), 0);
        CHECK(text && strstr(text, "Step 1/2 : COPY busybox /bin/busybox (") != NULL);
        CHECK(text && strstr(text, "image sha256:") != NULL);
        free(text);
        image_json(&m, &c, out);
        CHECK_STR(sw_json_str(json_array_get(json_object_get(m, "layers"), 0), "mediaType", ""),
                  STEP_LAYER_MEDIA_TAR_ZSTD);
        CHECK_STR(label(c, "org.opencontainers.image.source"), "https://git.example.test/cli.git");
        CHECK_STR(label(c, "org.opencontainers.image.revision"), "feedface");
        json_decref(m);
        json_decref(c);

        text = NULL;
        CHECK_INT(t_run_capture(&text, argv2, env, 30000), 0);
        CHECK(text && strstr(text, "Step 1/2 : COPY busybox /bin/busybox (cached)") != NULL);
        free(text);
        CHECK(tb_exists(out2, "index.json"));
        free(ctx);
        free(data);
        free(out);
        free(out2);
        free(env_data);
}

/* An oversized context fails with the limit named; .dockerignore counts. */
static void test_context_too_big(void)
{
        char *ctx = tb_context("big", SMALL);
        char *cache = sw_xasprintf("%s/cache-big", t_tmpdir());
        char *out = sw_xasprintf("%s/big-out", t_tmpdir());
        char *blob = sw_xmalloc(64 << 10);
        char *path = sw_xasprintf("%s/data/blob.bin", ctx);
        struct step_build_options o;
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;
        int64_t bb_size;
        struct stat st;

        memset(blob, 'x', 64 << 10);
        tb_put(ctx, "data/.keep", "");
        CHECK_OK(sw_write_file_atomic(path, blob, 64 << 10, 0644, &err), &err);
        CHECK(stat("/bin/busybox", &st) == 0);
        bb_size = (int64_t)st.st_size;

        options(&o, ctx, out, cache);
        o.context_max_bytes = bb_size + 4096;
        CHECK_INT(step_build_image(&r, &o, &err), SW_ETOOBIG);
        CHECK(strstr(err.msg, "SLIPWAY_BUILD_CONTEXT_MAX_BYTES") != NULL);
        CHECK(strstr(err.msg, ctx) != NULL);
        CHECK(!tb_exists(out, "index.json"));

        /* the same context with the blob ignored fits */
        sw_err_clear(&err);
        tb_put(ctx, ".dockerignore", "data/*.bin\n");
        options(&o, ctx, out, cache);
        o.context_max_bytes = bb_size + 4096;
        CHECK_OK(step_build_image(&r, &o, &err), &err);

        /* the config's default applies when the options leave it at 0 */
        CHECK(cfg.build_context_max_bytes == 2147483648LL);
        free(blob);
        free(path);
        free(ctx);
        free(cache);
        free(out);
}

/*
 * A tar with `../` entries, and one with an absolute entry: ADD refuses both
 * and nothing lands outside the root.
 */
static void test_add_evil_tar(void)
{
        const char *script =
                "import io, sys, tarfile\n"
                "def add(t, name, data=b'evil\\n'):\n"
                "    i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644\n"
                "    t.addfile(i, io.BytesIO(data))\n"
                "with tarfile.open(sys.argv[1] + '/dotdot.tar', 'w', format=tarfile.GNU_FORMAT) "
                "as t:\n"
                "    add(t, 'ok.txt', b'ok\\n')\n"
                "    for n in range(1, 12):\n"
                "        add(t, '../' * n + 'slipway-evil-dotdot-%d.txt' % n)\n"
                "with tarfile.open(sys.argv[1] + '/abs.tar', 'w', format=tarfile.GNU_FORMAT) as t:\n"
                "    add(t, 'ok.txt', b'ok\\n')\n"
                "    add(t, sys.argv[2])\n";
        char *ctx = tb_context("evil", "FROM scratch\nADD dotdot.tar /data/\n");
        char *cache = sw_xasprintf("%s/cache-evil", t_tmpdir());
        char *out = sw_xasprintf("%s/evil-out", t_tmpdir());
        char *abs_target = sw_xasprintf("%s/slipway-evil-abs.txt", t_tmpdir());
        char *py[] = {"/usr/bin/python3", "-c", (char *)script, ctx, abs_target, NULL};
        char *find[] = {"/usr/bin/find", (char *)t_tmpdir(), "-name", "slipway-evil-*", NULL};
        char *text = NULL;
        struct step_build_options o;
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;
        char top[64];

        CHECK_INT(t_run_capture(&text, py, NULL, 20000), 0);
        free(text);

        options(&o, ctx, out, cache);
        CHECK(step_build_image(&r, &o, &err) != 0);
        CHECK(strstr(err.msg, "ADD") != NULL);
        CHECK(strstr(err.msg, "slipway-evil-dotdot") != NULL || strstr(err.msg, "..") != NULL);
        sw_err_clear(&err);

        tb_put(ctx, "Dockerfile", "FROM scratch\nADD abs.tar /data/\n");
        options(&o, ctx, out, cache);
        CHECK(step_build_image(&r, &o, &err) != 0);
        CHECK(strstr(err.msg, "ADD") != NULL);
        sw_err_clear(&err);

        /* nothing was written: not in the test's tree, not at the absolute path, not at / */
        text = NULL;
        CHECK_INT(t_run_capture(&text, find, NULL, 20000), 0);
        CHECK_STR(text ? text : "", "");
        free(text);
        CHECK(!tb_exists("", abs_target + 1));
        for (int n = 1; n < 12; n++) {
                snprintf(top, sizeof(top), "slipway-evil-dotdot-%d.txt", n);
                CHECK(!tb_exists("", top));
                CHECK(!tb_exists("/tmp", top));
        }
        CHECK(!tb_exists(out, "index.json"));
        free(ctx);
        free(cache);
        free(out);
        free(abs_target);
}

static const char *APP = "FROM scratch\n"
                         "COPY busybox /bin/busybox\n"
                         "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
                         "RUN mkdir -p /app/old && echo gone > /app/old/a && echo keep > /app/keep "
                         "&& echo del > /app/del\n"
                         "RUN rm /app/del && rm -rf /app/old && mkdir /app/old && "
                         "echo new > /app/old/b\n"
                         "WORKDIR /app\n"
                         "ENV GREETING=hello\n"
                         "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n"
                         "CMD [\"echo \\\"$GREETING from $(pwd)\\\"; cat keep old/b\"]\n";

/* Append the strings of the JSON array `a` to `to`. */
static void append_strings(json_t *to, const json_t *a)
{
        size_t i;
        json_t *v;

        json_array_foreach(a, i, v) json_array_append(to, v);
}

/*
 * skopeo copies the image to another layout, umoci unpacks that copy, and
 * runc runs the tree with a config made here from the image config.
 */
static void test_independent_tools(void)
{
        char *ctx = tb_context("tools", APP);
        char *cache = sw_xasprintf("%s/cache-tools", t_tmpdir());
        char *out = sw_xasprintf("%s/tools-out", t_tmpdir());
        char *other = sw_xasprintf("%s/tools-other", t_tmpdir());
        char *bundle = sw_xasprintf("%s/tools-bundle", t_tmpdir());
        char *rootfs = sw_xasprintf("%s/rootfs", bundle);
        char *state = sw_xasprintf("%s/tools-runc", t_tmpdir());
        char *src = sw_xasprintf("oci:%s:latest", out), *dst = sw_xasprintf("oci:%s:latest", other);
        char *img = sw_xasprintf("%s:latest", other);
        char *id = sw_xasprintf("slipway-checked-%d", (int)getpid());
        char *copy[] = {"/usr/bin/skopeo", "copy", "--quiet", src, dst, NULL};
        char *unpack[] = {"/usr/bin/umoci", "unpack", "--image", img, bundle, NULL};
        char *inspect[] = {"/usr/bin/skopeo", "inspect", "--config", dst, NULL};
        char *spec[] = {"/usr/bin/runc", "spec", "--bundle", bundle, NULL};
        char *run[] = {"/usr/bin/runc", "--root", state, "run", "--bundle", bundle, id, NULL};
        char *text = NULL, *cfgpath = sw_xasprintf("%s/config.json", bundle);
        struct step_build_options o;
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;
        json_t *image = NULL, *rspec = NULL;
        json_error_t jerr;

        if (access("/usr/bin/umoci", X_OK) != 0) {
                t_fail(__FILE__, __LINE__, "umoci is not installed (scripts/deps.sh)");
                goto out;
        }
        options(&o, ctx, out, cache);
        CHECK_OK(step_build_image(&r, &o, &err), &err);

        CHECK_INT(t_run_capture(&text, copy, NULL, 30000), 0);
        free(text);
        text = NULL;
        CHECK_INT(t_run_capture(&text, unpack, NULL, 30000), 0);
        if (text && *text)
                printf("umoci: %s\n", text);
        free(text);
        text = NULL;

        /* the tree, whiteouts and the opaque directory applied by umoci */
        char *s = tb_slurp(rootfs, "app/keep");
        CHECK_STR(s, "keep\n");
        free(s);
        s = tb_slurp(rootfs, "app/old/b");
        CHECK_STR(s, "new\n");
        free(s);
        CHECK(!tb_exists(rootfs, "app/del"));
        CHECK(!tb_exists(rootfs, "app/old/a"));
        CHECK(tb_exists(rootfs, "bin/busybox"));
        CHECK(tb_exists(rootfs, "bin/sh"));
        CHECK(!tb_exists(rootfs, "proc/self"));

        /* the config as skopeo reads it, turned into a runc spec here */
        CHECK_INT(t_run_capture(&text, inspect, NULL, 30000), 0);
        image = text ? json_loads(text, 0, &jerr) : NULL;
        free(text);
        text = NULL;
        CHECK(image != NULL);
        if (!image)
                goto out;
        unlink(cfgpath);
        CHECK_INT(t_run_capture(&text, spec, NULL, 10000), 0);
        free(text);
        text = NULL;
        rspec = json_load_file(cfgpath, 0, &jerr);
        CHECK(rspec != NULL);
        if (!rspec)
                goto out;
        {
                const json_t *ic = json_object_get(image, "config");
                json_t *proc = json_object_get(rspec, "process"), *args = json_array();
                append_strings(args, json_object_get(ic, "Entrypoint"));
                append_strings(args, json_object_get(ic, "Cmd"));
                json_object_set_new(proc, "args", args);
                json_object_set(proc, "env", json_object_get(ic, "Env"));
                json_object_set_new(proc, "cwd", json_string(sw_json_str(ic, "WorkingDir", "/")));
                json_object_set_new(proc, "terminal", json_false());
                json_object_set_new(json_object_get(rspec, "root"), "path", json_string(rootfs));
                CHECK_INT(json_dump_file(rspec, cfgpath, JSON_INDENT(1)), 0);
        }
        CHECK_INT(t_run_capture(&text, run, NULL, 30000), 0);
        CHECK_STR(text ? text : "", "hello from /app\nkeep\nnew\n");
out:
        free(text);
        json_decref(image);
        json_decref(rspec);
        free(ctx);
        free(cache);
        free(out);
        free(other);
        free(bundle);
        free(rootfs);
        free(state);
        free(src);
        free(dst);
        free(img);
        free(id);
        free(cfgpath);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("the builder needs root (overlayfs, runc); skipped\n");
                return 0;
        }
        sw_libs_init();
        sw_buf_init(&tb_log, 64 << 20);
        tf_config(&cfg, NULL);
        T_RUN(test_labels_zstd_progress);
        T_RUN(test_copy_fingerprint);
        T_RUN(test_cli);
        T_RUN(test_context_too_big);
        T_RUN(test_add_evil_tar);
        T_RUN(test_independent_tools);
        sw_config_release(&cfg);
        sw_buf_release(&tb_log);
        return t_done();
}
