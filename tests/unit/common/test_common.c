/*
 * test_common.c - errors, buffers, arenas, names, quantities and the
 * strict configuration parser.
 */
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/err.h"
#include "common/validate.h"
#include "tests/harness/t.h"

static void test_err_first_wins_and_wrap(void)
{
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(sw_err_set(&err, SW_ENOTFOUND, "blob %s missing", "'sha256:ab'"), SW_ENOTFOUND);
        CHECK_INT(sw_err_set(&err, SW_EIO, "later error"), SW_EIO);
        CHECK_STR(err.msg, "blob 'sha256:ab' missing");
        CHECK_INT(sw_err_wrap(&err, "push %s", "app:1"), SW_ENOTFOUND);
        CHECK_STR(err.msg, "push app:1: blob 'sha256:ab' missing");
        CHECK(sw_err_transient(SW_EUNAVAIL));
        CHECK(sw_err_transient(SW_EBUSY));
        CHECK(!sw_err_transient(SW_EINVAL));
        CHECK(!sw_err_transient(SW_EAUTH));
        CHECK_STR(sw_err_name(SW_ETOOBIG), "SW_ETOOBIG");
        sw_err_clear(&err);
        sw_err_set(&err, SW_EINVAL, "two\nlines");
        CHECK_STR(err.msg, "two lines");
}

static void test_buf_cap(void)
{
        struct sw_buf b;
        struct sw_err err = SW_ERR_INIT;

        sw_buf_init(&b, 10);
        CHECK_OK(sw_buf_puts(&b, "hello", &err), &err);
        CHECK_OK(sw_buf_printf(&b, &err, "%d", 1234), &err);
        CHECK_STR(sw_buf_str(&b), "hello1234");
        CHECK_INT(sw_buf_puts(&b, "xy", &err), SW_ETOOBIG);
        /* a failed append leaves the buffer as it was */
        CHECK_STR(sw_buf_str(&b), "hello1234");
        sw_buf_release(&b);
}

static int cleaned;
static void on_free(void *arg)
{
        cleaned = cleaned * 10 + *(int *)arg;
}

static void test_arena(void)
{
        struct sw_arena *a = sw_arena_new();
        static int one = 1, two = 2;
        char *s = sw_arena_printf(a, "job-%d", 42);
        void *big = sw_arena_alloc(a, 100000);

        CHECK_STR(s, "job-42");
        CHECK(big != NULL && ((char *)big)[99999] == 0);
        cleaned = 0;
        sw_arena_on_free(a, on_free, &one);
        sw_arena_on_free(a, on_free, &two);
        sw_arena_free(a);
        CHECK_INT(cleaned, 21); /* reverse order */
        sw_arena_free(NULL);
}

static void test_names(void)
{
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(sw_valid_dns1123_label("web-1", "x", &err), 0);
        CHECK_INT(sw_valid_dns1123_label("1web", "x", &err), 0);
        CHECK_INT(sw_valid_dns1035_label("1web", "--name", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "--name") && strstr(err.msg, "start with a letter"));
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_label("Web", "x", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_label("-web", "x", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_label("web_1", "x", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_label("", "x", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_label("a234567890123456789012345678901234567890123456789012"
                                         "345678901234",
                                         "x", &err),
                  SW_EINVAL);
        sw_err_clear(&err);
        /* characters that would break out of YAML, nginx or DNS */
        CHECK_INT(sw_valid_dns1123_subdomain("app.example.com; return 200", "host", &err),
                  SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_subdomain("app\n.example.com", "host", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_dns1123_subdomain("app.example.com", "host", &err), 0);
        CHECK_INT(sw_valid_dns1123_subdomain("app..example.com", "host", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_git_ref("feature/x-1", "b", &err), 0);
        CHECK_INT(sw_valid_git_ref("a..b", "b", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_git_ref("x.lock", "b", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_git_ref("a b", "b", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_git_commit("0123abc", "c", &err), 0);
        CHECK_INT(sw_valid_git_commit("xyz", "c", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_repo_url("https://git.example/a.git", "r", &err), 0);
        CHECK_INT(sw_valid_repo_url("/srv/git/a", "r", &err), 0);
        CHECK_INT(sw_valid_repo_url("ftp://x", "r", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(sw_valid_repo_url("https://x/a b", "r", &err), SW_EINVAL);
}

static void test_quantities(void)
{
        static const struct {
                const char *in;
                long long milli;
        } ok[] = {
                {"500m", 500},
                {"1", 1000},
                {"0.5", 500},
                {"2.25", 2250},
                {"128Mi", 134217728000},
                {"1Gi", 1073741824000},
                {"1G", 1000000000000},
                {"1k", 1000000},
                {"1e3", 1000000},
                {"1.5Ki", 1536000},
                {"0.1m", 1},
                {"+3", 3000},
        };
        static const char *const bad[] = {"", "m", "5x", "1.2.3", "-1", "1Mb", "1e", "Ki", " 1"};
        struct sw_err err = SW_ERR_INIT;

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                int64_t v = -1;
                CHECK_OK(sw_quantity_milli(&v, ok[i].in, "q", &err), &err);
                if (v != ok[i].milli)
                        t_fail(__FILE__, __LINE__, "%s -> %lld, want %lld", ok[i].in, (long long)v,
                               ok[i].milli);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t v;
                sw_err_clear(&err);
                if (sw_quantity_milli(&v, bad[i], "--cpu", &err) != SW_EINVAL)
                        t_fail(__FILE__, __LINE__, "'%s' accepted", bad[i]);
                else
                        CHECK(strstr(err.msg, "--cpu") != NULL);
        }
}

static void test_config_defaults_and_values(void)
{
        char *env[] = {"HOME=/home/u",
                       "SLIPWAY_WORKERS=8",
                       "SLIPWAY_SYNCHRONOUS=FULL",
                       "SLIPWAY_REGISTRY_PASSWORD=s3cret",
                       "SLIPWAY_DATA=/srv/slipway",
                       "UNRELATED=1",
                       NULL};
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;
        const struct sw_config_var *vars;
        char value[256];
        int n;

        CHECK_OK(sw_config_load(&cfg, env, &err), &err);
        CHECK_INT(cfg.workers, 8);
        CHECK_INT(cfg.lease_ms, 30000);
        CHECK_STR(cfg.synchronous, "FULL");
        CHECK_STR(cfg.data, "/srv/slipway");
        CHECK_STR(cfg.registry_password, "s3cret");
        CHECK(cfg.registry_user == NULL);
        vars = sw_config_vars(&n);
        for (int i = 0; i < n; i++) {
                sw_config_value_fmt(&cfg, i, value, sizeof(value));
                if (strcmp(vars[i].env, "SLIPWAY_REGISTRY_PASSWORD") == 0)
                        CHECK_STR(value, "<redacted>");
                if (strcmp(vars[i].env, "SLIPWAY_WORKERS") == 0)
                        CHECK_STR(value, "8");
        }
        sw_config_release(&cfg);
}

static void expect_config_error(char **env, const char *needle)
{
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;

        if (sw_config_load(&cfg, env, &err) == 0) {
                t_fail(__FILE__, __LINE__, "accepted, want error with '%s'", needle);
                sw_config_release(&cfg);
                return;
        }
        if (!strstr(err.msg, needle))
                t_fail(__FILE__, __LINE__, "error '%s' lacks '%s'", err.msg, needle);
}

static void test_config_strict(void)
{
        char *e1[] = {"SLIPWAY_WORKERS=4x", NULL};
        char *e2[] = {"SLIPWAY_WORKERS=0", NULL};
        char *e3[] = {"SLIPWAY_WORKER=2", NULL};
        char *e4[] = {"SLIPWAY_SYNCHRONOUS=OFF", NULL};
        char *e5[] = {"SLIPWAY_DATA=relative/dir", NULL};
        char *e6[] = {"SLIPWAY_LEASE_MS= 5000", NULL};
        char *e7[] = {"SLIPWAY_WORKERS=99999999999999999999999", NULL};

        expect_config_error(e1, "SLIPWAY_WORKERS: '4x' is not a whole number");
        expect_config_error(e2, "SLIPWAY_WORKERS: 0 is outside 1..256");
        expect_config_error(e3, "unknown variable SLIPWAY_WORKER");
        expect_config_error(e4, "SLIPWAY_SYNCHRONOUS: 'OFF' is not one of NORMAL|FULL");
        expect_config_error(e5, "SLIPWAY_DATA");
        expect_config_error(e6, "SLIPWAY_LEASE_MS");
        expect_config_error(e7, "SLIPWAY_WORKERS");
}

static void test_digest(void)
{
        char d[SW_DIGEST_STR_LEN];

        sw_sha256_digest(d, "abc", 3);
        CHECK_STR(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        CHECK(sw_digest_valid(d));
        CHECK(!sw_digest_valid("sha256:BA7816"));
}

int main(void)
{
        T_RUN(test_err_first_wins_and_wrap);
        T_RUN(test_buf_cap);
        T_RUN(test_arena);
        T_RUN(test_names);
        T_RUN(test_quantities);
        T_RUN(test_config_defaults_and_values);
        T_RUN(test_config_strict);
        T_RUN(test_digest);
        return t_done();
}
