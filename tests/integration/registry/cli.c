/*
 * cli.c - `slipway push` and `slipway pull` as a user runs them: the
 * configuration from SLIPWAY_* variables, a progress line per blob, the
 * result's digest, --help, and the wrong-password message.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/mem.h"
#include "tests/harness/image.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

static struct t_registry *reg;

static const char *slipway_bin(void)
{
        /* SW_TEST_SLIPWAY is set by ctest; only config.c may read the environment. */
        return SW_TEST_BINARY_DIR "/slipway";
}

static int run_at(char **out, const char *registry, const char *password, char *const args[])
{
        char *argv[12];
        char *envp[8];
        char *e_data = sw_xasprintf("SLIPWAY_DATA=%s/data", t_tmpdir());
        char *e_user = sw_xasprintf("SLIPWAY_REGISTRY_USER=%s", T_REG_USER);
        char *e_pass = sw_xasprintf("SLIPWAY_REGISTRY_PASSWORD=%s", password);
        char *e_reg = sw_xasprintf("SLIPWAY_REGISTRY=%s", registry);
        int i = 0, rc;

        argv[i++] = (char *)slipway_bin();
        for (int k = 0; args[k] && i < 11; k++)
                argv[i++] = args[k];
        argv[i] = NULL;
        envp[0] = e_data;
        envp[1] = e_user;
        envp[2] = e_pass;
        envp[3] = e_reg;
        envp[4] = "PATH=/usr/bin:/bin";
        envp[5] = NULL;
        rc = t_capture_env(out, argv, envp);
        free(e_data);
        free(e_user);
        free(e_pass);
        free(e_reg);
        return rc;
}

static int run(char **out, const char *password, char *const args[])
{
        return run_at(out, reg->host, password, args);
}

static void test_help(void)
{
        char *out = NULL;
        char *a1[] = {"push", "--help", NULL};
        char *a2[] = {"pull", "--help", NULL};
        char *a3[] = {"push", "only-one-arg", NULL};

        CHECK_INT(run(&out, "x", a1), 0);
        CHECK(strstr(out, "usage: slipway push") != NULL);
        free(out);
        CHECK_INT(run(&out, "x", a2), 0);
        CHECK(strstr(out, "usage: slipway pull") != NULL);
        free(out);
        CHECK_INT(run(&out, "x", a3), 2);
        CHECK(strstr(out, "expected LAYOUT_DIR and REF") != NULL);
        free(out);
}

static void test_push_pull(void)
{
        struct t_image_spec spec = {2, 256 << 10, 31, false, "v1"};
        struct step_oci_desc m;
        char *src = sw_xasprintf("%s/cli-src", t_tmpdir());
        char *dst = sw_xasprintf("%s/cli-dst", t_tmpdir());
        char *ref = sw_xasprintf("%s/cli/app:v1", reg->host);
        char *want = NULL, *out = NULL;
        char seen[SW_DIGEST_STR_LEN];

        CHECK_INT(t_image_make(&m, src, &spec), 0);
        {
                char *args[] = {"push", src, ref, NULL};
                CHECK_INT(run(&out, T_REG_PASSWORD, args), 0);
                want = sw_xasprintf("pushed %s@%s", ref, m.digest);
                CHECK(strstr(out, want) != NULL);
                CHECK(strstr(out, "layer    sha256:") != NULL);
                CHECK(strstr(out, "uploaded") != NULL);
                CHECK(strstr(out, "MiB/s") != NULL || strstr(out, "KiB/s") != NULL);
                if (!strstr(out, want))
                        fprintf(stderr, "%s", out);
                free(out);
                free(want);
        }
        CHECK_INT(t_skopeo_digest(seen, reg, "cli/app:v1"), 0);
        CHECK_STR(seen, m.digest);
        {
                /* The same push again: the manifest is there, nothing is sent. */
                char *args[] = {"push", src, ref, NULL};
                CHECK_INT(run(&out, T_REG_PASSWORD, args), 0);
                CHECK(strstr(out, "skipped") != NULL);
                CHECK(strstr(out, "uploaded") == NULL);
                free(out);
        }
        {
                /* Without a host, SLIPWAY_REGISTRY is used. */
                char *args[] = {"pull", "cli/app:v1", dst, NULL};
                CHECK_INT(run(&out, T_REG_PASSWORD, args), 0);
                want = sw_xasprintf("pulled %s/cli/app@%s", reg->host, m.digest);
                CHECK(strstr(out, want) != NULL);
                CHECK(strstr(out, "downloaded") != NULL);
                if (!strstr(out, want))
                        fprintf(stderr, "%s", out);
                free(out);
                free(want);
        }
        {
                /* The layout's only image, though it is named "v1", not "other". */
                char *other = sw_xasprintf("%s/cli/app:other", reg->host);
                char *args[] = {"push", src, other, NULL};
                char *bad[] = {"push", "--name", "nosuch", src, other, NULL};
                CHECK_INT(run(&out, T_REG_PASSWORD, args), 0);
                want = sw_xasprintf("pushed %s@%s", other, m.digest);
                CHECK(strstr(out, want) != NULL);
                free(out);
                free(want);
                /* An explicit --name must exist. */
                CHECK_INT(run(&out, T_REG_PASSWORD, bad), 1);
                CHECK(strstr(out, "no image named 'nosuch'") != NULL);
                free(out);
                free(other);
        }
        {
                /* SLIPWAY_REGISTRY_USER/PASSWORD are for SLIPWAY_REGISTRY only. */
                char *args[] = {"push", src, ref, NULL};
                CHECK_INT(run_at(&out, "registry.example:5000", T_REG_PASSWORD, args), 1);
                CHECK(strstr(out, "requires authentication") != NULL);
                free(out);
        }
        {
                char *args[] = {"push", src, ref, NULL};
                CHECK_INT(run(&out, "wrong-password-123", args), 1);
                CHECK(strstr(out, "rejected the credentials") != NULL);
                CHECK(strstr(out, reg->host) != NULL);
                CHECK(strstr(out, "SLIPWAY_REGISTRY_PASSWORD") != NULL);
                CHECK(strstr(out, "wrong-password-123") == NULL);
                free(out);
        }
        free(src);
        free(dst);
        free(ref);
}

int main(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        reg = t_registry_start(T_REG_BASIC);
        if (!reg)
                return 1;
        T_RUN(test_help);
        T_RUN(test_push_pull);
        t_registry_stop(reg);
        curl_global_cleanup();
        return t_done();
}
