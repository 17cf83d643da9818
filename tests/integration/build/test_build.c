/*
 * test_build.c - the image builder on real parts: runc, overlayfs, a real
 * docker-registry for FROM, skopeo reading the result.
 */
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
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

static struct sw_config cfg;

static int build(struct step_build_result *res, const char *ctx, const char *layout,
                 const char *cache, const char *const *secrets, bool no_cache, struct sw_err *err)
{
        struct step_build_options o = {0};

        sw_buf_reset(&tb_log);
        o.cfg = &cfg;
        o.context_dir = ctx;
        o.layout_dir = layout;
        o.cache_dir = cache;
        o.secrets = secrets;
        o.no_cache = no_cache;
        o.log = tb_on_log;
        o.output = tb_on_output;
        return step_build_image(res, &o, err);
}

/* Unpack the image's layers into `dir`; returns its config (the caller decrefs). */
static json_t *image_rootfs(const char *layout, const char *dir)
{
        struct step_oci_layout *l = NULL;
        struct step_oci_desc d;
        struct step_oci_manifest m = {0};
        struct sw_err err = SW_ERR_INIT;
        json_t *config = NULL;
        char *text = NULL;
        size_t len;

        CHECK_OK(step_oci_layout_open(&l, layout, false, &err), &err);
        CHECK_OK(step_oci_ref_resolve(&d, l, "latest", &err), &err);
        CHECK_OK(step_oci_blob_read(&text, &len, l, d.digest, 1 << 20, &err), &err);
        CHECK_OK(step_oci_manifest_parse(&m, STEP_OCI_MT_MANIFEST, text, len, &err), &err);
        CHECK_OK(step_oci_json_get(&config, l, m.config.digest, 1 << 20, &err), &err);
        CHECK_OK(sw_mkdir_p(dir, 0755, &err), &err);
        for (size_t i = 0; i < m.n_layers; i++) {
                struct step_layer_unpack_options uo = STEP_LAYER_UNPACK_OPTIONS_INIT;
                char *p = step_oci_blob_path(l, m.layers[i].digest);
                CHECK_OK(step_layer_apply(NULL, p, dir, &uo, &err), &err);
                free(p);
        }
        step_oci_manifest_release(&m);
        step_oci_layout_free(l);
        free(text);
        return config;
}

static const char *APP = "FROM scratch\n"
                         "COPY busybox /bin/busybox\n"
                         "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
                         "ARG GREETING=hello\n"
                         "ENV APP_HOME=/www\n"
                         "WORKDIR $APP_HOME\n"
                         "COPY index.html .\n"
                         "RUN echo \"$GREETING from RUN\" > greeting.txt && mkdir -p /etc && "
                         "echo 'app:x:1000:1000::/www:/bin/sh' > /etc/passwd\n"
                         "COPY --chown=app:0 --chmod=0600 index.html private.html\n"
                         "USER app\n"
                         "EXPOSE 8080\n"
                         "ENTRYPOINT [\"/bin/busybox\"]\n"
                         "CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

static void test_build_cache_reproducible(void)
{
        char *ctx = tb_context("app", APP);
        char *cache = sw_xasprintf("%s/cache-a", t_tmpdir());
        char *cache2 = sw_xasprintf("%s/cache-b", t_tmpdir());
        char *out1 = sw_xasprintf("%s/out1", t_tmpdir()),
             *out2 = sw_xasprintf("%s/out2", t_tmpdir());
        char *out3 = sw_xasprintf("%s/out3", t_tmpdir()),
             *out4 = sw_xasprintf("%s/out4", t_tmpdir());
        char *root = sw_xasprintf("%s/rootfs", t_tmpdir());
        struct step_build_result r1, r2, r3, r4;
        struct sw_err err = SW_ERR_INIT;
        json_t *config;
        char *text;
        struct stat st;

        tb_put(ctx, "index.html", "<h1>hi</h1>\n");
        CHECK_OK(build(&r1, ctx, out1, cache, NULL, false, &err), &err);
        CHECK_INT(r1.layers, 6);
        CHECK_INT(r1.cached, 0);
        CHECK_INT(r1.exposed_port, 8080);

        /* the image: files, ownership, config */
        config = image_rootfs(out1, root);
        text = tb_slurp(root, "www/greeting.txt");
        CHECK_STR(text, "hello from RUN\n");
        free(text);
        text = tb_slurp(root, "www/index.html");
        CHECK_STR(text, "<h1>hi</h1>\n");
        free(text);
        char *priv = sw_xasprintf("%s/www/private.html", root);
        CHECK(stat(priv, &st) == 0 && st.st_uid == 1000 && (st.st_mode & 07777) == 0600);
        free(priv);
        /* runc's mount points did not land in a layer */
        char *proc = sw_xasprintf("%s/proc", root);
        CHECK(stat(proc, &st) != 0);
        free(proc);
        const json_t *c = json_object_get(config, "config");
        CHECK_STR(sw_json_str(c, "User", ""), "app");
        CHECK_STR(sw_json_str(c, "WorkingDir", ""), "/www");
        CHECK_STR(json_string_value(json_array_get(json_object_get(c, "Entrypoint"), 0)),
                  "/bin/busybox");
        CHECK_STR(json_string_value(json_array_get(json_object_get(c, "Cmd"), 0)), "httpd");
        CHECK(json_object_get(json_object_get(c, "ExposedPorts"), "8080/tcp") != NULL);
        CHECK_STR(sw_json_str(config, "created", ""), "1970-01-01T00:00:00Z");
        json_decref(config);

        /* an unchanged rebuild runs nothing and gives the same image */
        CHECK_OK(build(&r2, ctx, out2, cache, NULL, false, &err), &err);
        CHECK_INT(r2.cached, r2.steps);
        CHECK_STR(r2.manifest_digest, r1.manifest_digest);

        /* a fresh cache elsewhere gives the same digest: reproducible */
        CHECK_OK(build(&r3, ctx, out3, cache2, NULL, false, &err), &err);
        CHECK_STR(r3.manifest_digest, r1.manifest_digest);

        /* a changed file reruns only what depends on it */
        tb_put(ctx, "index.html", "<h1>changed</h1>\n");
        CHECK_OK(build(&r4, ctx, out4, cache, NULL, false, &err), &err);
        CHECK(strcmp(r4.manifest_digest, r1.manifest_digest) != 0);
        CHECK_INT(r4.cached, 3); /* COPY busybox, RUN --install, WORKDIR */

        /* skopeo, an independent reader, agrees on the digest */
        char *ref = sw_xasprintf("oci:%s:latest", out1);
        char *argv[] = {"/usr/bin/skopeo", "inspect", "--format", "{{.Digest}}", ref, NULL};
        char *got = NULL;
        CHECK_INT(t_run_capture(&got, argv, NULL, 30000), 0);
        CHECK(got && strstr(got, r1.manifest_digest) != NULL);
        free(got);
        free(ref);
        free(ctx);
        free(cache);
        free(cache2);
        free(out1);
        free(out2);
        free(out3);
        free(out4);
        free(root);
}

/*
 * A COPY whose stage is unchanged but whose source changed: the rebuild takes
 * what it knows of the stage (the destination is a directory there, --chown's
 * user) from the first build's record, without mounting the stage, and must
 * still copy into the directory with the right owner.
 */
static void test_copy_into_image_dir(void)
{
        char *ctx =
                tb_context("intodir", "FROM scratch\n"
                                      "COPY busybox /bin/busybox\n"
                                      "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox "
                                      "mkdir -m 0711 /dest && /bin/busybox mkdir -p /etc && echo "
                                      "'app:x:1000:1001::/:/bin/sh' > /etc/passwd\"]\n"
                                      "COPY --chown=app file /dest\n");
        char *cache = sw_xasprintf("%s/cache-intodir", t_tmpdir());
        char *out1 = sw_xasprintf("%s/out-intodir1", t_tmpdir());
        char *out2 = sw_xasprintf("%s/out-intodir2", t_tmpdir());
        char *out3 = sw_xasprintf("%s/out-intodir3", t_tmpdir());
        char *root1 = sw_xasprintf("%s/rootfs-intodir1", t_tmpdir());
        char *root2 = sw_xasprintf("%s/rootfs-intodir2", t_tmpdir());
        struct step_build_result r1, r2, r3;
        struct sw_err err = SW_ERR_INIT;
        struct stat st;
        char *text, *p;

        tb_put(ctx, "file", "one\n");
        CHECK_OK(build(&r1, ctx, out1, cache, NULL, false, &err), &err);
        json_decref(image_rootfs(out1, root1));
        text = tb_slurp(root1, "dest/file");
        CHECK_STR(text, "one\n");
        free(text);

        tb_put(ctx, "file", "two, longer\n");
        CHECK_OK(build(&r2, ctx, out2, cache, NULL, false, &err), &err);
        CHECK_INT(r2.cached, 2); /* COPY busybox and RUN; the last COPY ran */
        CHECK(strcmp(r2.manifest_digest, r1.manifest_digest) != 0);
        json_decref(image_rootfs(out2, root2));
        text = tb_slurp(root2, "dest/file");
        CHECK_STR(text, "two, longer\n");
        free(text);
        p = sw_xasprintf("%s/dest/file", root2);
        CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 1000 && st.st_gid == 1001);
        free(p);
        p = sw_xasprintf("%s/dest", root2);
        CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0711);
        free(p);

        /* and unchanged: everything from the cache, the same image */
        CHECK_OK(build(&r3, ctx, out3, cache, NULL, false, &err), &err);
        CHECK_INT(r3.cached, r3.steps);
        CHECK_STR(r3.manifest_digest, r2.manifest_digest);
        free(ctx);
        free(cache);
        free(out1);
        free(out2);
        free(out3);
        free(root1);
        free(root2);
}

static void expect_failure(const char *name, const char *dockerfile, const char *needle)
{
        char *ctx = tb_context(name, dockerfile);
        char *out = sw_xasprintf("%s/out-%s", t_tmpdir(), name);
        char *cache = sw_xasprintf("%s/cache-a", t_tmpdir());
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;

        tb_put(ctx, "index.html", "x\n");
        if (build(&r, ctx, out, cache, NULL, false, &err) == 0)
                t_fail(__FILE__, __LINE__, "%s: built", name);
        else if (!strstr(err.msg, needle))
                t_fail(__FILE__, __LINE__, "%s: '%s' lacks '%s'", name, err.msg, needle);
        free(ctx);
        free(out);
        free(cache);
}

static void test_failures(void)
{
        expect_failure("runfail",
                       "FROM scratch\nCOPY busybox /bin/busybox\n"
                       "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"exit 3\"]\n",
                       "RUN at line 3");
        expect_failure("runfail2",
                       "FROM scratch\nCOPY busybox /bin/busybox\n"
                       "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"exit 3\"]\n",
                       "non-zero code: 3");
        expect_failure("escape", "FROM scratch\nCOPY ../app/index.html /x\n",
                       "outside the build context");
        expect_failure("missing", "FROM scratch\nCOPY nothere /x\n", "'nothere' not found");
        expect_failure("parse", "FROM scratch\nCOPY busybox\nRUN [\"unterminated\n", "line");
        expect_failure("nofrom", "RUN true\n", "only ARG may come before the first FROM");
        expect_failure("user",
                       "FROM scratch\nCOPY busybox /bin/busybox\nUSER nobody\n"
                       "RUN [\"/bin/busybox\", \"true\"]\n",
                       "unable to find user nobody");
        expect_failure("url", "FROM scratch\nADD http://127.0.0.1:1/x /x\n", "ADD of a URL");

        /* a symlink in the context that points out of it cannot be a source */
        char *ctx = tb_context("linkout", "FROM scratch\nCOPY link /x\n");
        char *link = sw_xasprintf("%s/link", ctx);
        CHECK(symlink("/etc/passwd", link) == 0);
        char *out = sw_xasprintf("%s/out-linkout", t_tmpdir());
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;
        CHECK(build(&r, ctx, out, NULL, NULL, false, &err) != 0);
        CHECK(strstr(err.msg, "outside the build context") != NULL);
        free(ctx);
        free(link);
        free(out);
}

static void test_dockerignore_secrets_cache_mounts(void)
{
        char *ctx = tb_context(
                "mounts", "FROM scratch\n"
                          "COPY busybox /bin/busybox\n"
                          "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
                          "COPY . /app/\n"
                          "RUN test ! -e /app/secret.txt && test -e /app/keep.txt\n"
                          "RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /used\n"
                          "RUN --mount=type=cache,target=/cache echo run >> /cache/count && "
                          "cp /cache/count /count\n");
        char *secret = sw_xasprintf("%s/token", t_tmpdir());
        char *spec = sw_xasprintf("token=%s", secret);
        const char *secrets[] = {spec, NULL};
        char *out = sw_xasprintf("%s/out-mounts", t_tmpdir());
        char *out2 = sw_xasprintf("%s/out-mounts2", t_tmpdir());
        char *cache = sw_xasprintf("%s/cache-m", t_tmpdir());
        char *root = sw_xasprintf("%s/root-m", t_tmpdir());
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;

        tb_put(ctx, ".dockerignore", "# not for the image\nsecret.txt\n");
        tb_put(ctx, "secret.txt", "do not ship\n");
        tb_put(ctx, "keep.txt", "ship\n");
        CHECK_OK(sw_write_file_atomic(secret, "hunter2-token", 13, 0600, &err), &err);
        CHECK_OK(build(&r, ctx, out, cache, secrets, false, &err), &err);
        json_decref(image_rootfs(out, root));
        char *used = tb_slurp(root, "used");
        CHECK(used && atoi(used) == 13);
        free(used);
        /* the secret is in no layer, and neither is its mount point's content */
        char *grep[] = {"/bin/sh", "-c", NULL, NULL};
        grep[2] = sw_xasprintf("zcat %s/blobs/sha256/* 2>/dev/null | grep -c hunter2-token", out);
        char *got = NULL;
        t_run_capture(&got, grep, NULL, 30000);
        CHECK(got && strncmp(got, "0", 1) == 0);
        free(got);
        free(grep[2]);
        /* the cache mount persists across builds, even uncached ones */
        CHECK_OK(build(&r, ctx, out2, cache, secrets, true, &err), &err);
        char *count = sw_xasprintf("%s/mounts", cache);
        char *find[] = {"/bin/sh", "-c", NULL, NULL};
        find[2] = sw_xasprintf("cat %s/*/count", count);
        CHECK_INT(t_run_capture(&got, find, NULL, 10000), 0);
        CHECK_STR(got, "run\nrun\n");
        free(got);
        free(find[2]);
        free(count);
        free(ctx);
        free(secret);
        free(spec);
        free(out);
        free(out2);
        free(cache);
        free(root);
}

static void test_from_registry_and_stages(void)
{
        struct t_registry *reg = t_registry_start(T_REG_OPEN);
        char *base_ctx =
                tb_context("base", "FROM scratch\nCOPY busybox /bin/busybox\n"
                                   "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
                                   "ENV BASE=yes\nCMD [\"sh\"]\n");
        char *base_out = sw_xasprintf("%s/out-base", t_tmpdir());
        char *ref = NULL, *ctx = NULL, *out = NULL, *root = NULL, *cache = NULL;
        struct step_build_result r;
        struct sw_err err = SW_ERR_INIT;

        CHECK(reg != NULL);
        if (!reg)
                return;
        CHECK_OK(build(&r, base_ctx, base_out, NULL, NULL, false, &err), &err);
        /* push it with skopeo, as another tool would have */
        ref = sw_xasprintf("docker://%s/library/base:1", reg->host);
        char *src = sw_xasprintf("oci:%s:latest", base_out);
        char *argv[] = {"/usr/bin/skopeo", "copy", "--dest-tls-verify=false", src, ref, NULL};
        char *got = NULL;
        CHECK_INT(t_run_capture(&got, argv, NULL, 60000), 0);
        free(got);
        char *df =
                sw_xasprintf("ARG BASE=%s/library/base:1\n"
                             "FROM $BASE AS builder\n"
                             "RUN echo built-by-builder > /artifact && echo \"$BASE\" > /base-env\n"
                             "FROM ${BASE}\n"
                             "COPY --from=builder /artifact /artifact\n"
                             "COPY --from=0 /base-env /base-env\n"
                             "ENTRYPOINT [\"/bin/echo\"]\n",
                             reg->host);
        ctx = tb_context("stages", df);
        out = sw_xasprintf("%s/out-stages", t_tmpdir());
        root = sw_xasprintf("%s/root-stages", t_tmpdir());
        cache = sw_xasprintf("%s/cache-stages", t_tmpdir());
        CHECK_OK(build(&r, ctx, out, cache, NULL, false, &err), &err);
        json_t *config = image_rootfs(out, root);
        char *a = tb_slurp(root, "artifact"), *e = tb_slurp(root, "base-env");
        CHECK_STR(a, "built-by-builder\n");
        CHECK_STR(e, "yes\n");
        /* ENTRYPOINT replaced the inherited CMD (Docker's rule) */
        CHECK(json_object_get(json_object_get(config, "config"), "Cmd") == NULL);
        free(a);
        free(e);
        json_decref(config);
        /* the registry goes away: the base pulled before still builds */
        t_registry_stop(reg);
        CHECK_OK(build(&r, ctx, out, cache, NULL, false, &err), &err);
        free(df);
        free(src);
        free(ref);
        free(ctx);
        free(out);
        free(root);
        free(cache);
        free(base_ctx);
        free(base_out);
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
        T_RUN(test_build_cache_reproducible);
        T_RUN(test_copy_into_image_dir);
        T_RUN(test_failures);
        T_RUN(test_dockerignore_secrets_cache_mounts);
        T_RUN(test_from_registry_and_stages);
        sw_config_release(&cfg);
        sw_buf_release(&tb_log);
        return t_done();
}
