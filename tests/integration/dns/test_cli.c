/*
 * test_cli.c - `slipway dns upsert|get|delete` of the real binary against a
 * real pdns_server: publish and verify over DNS, show the owner, delete,
 * refuse bad hosts and hosts of other owners, a wrong key and a missing URL
 * with clear messages, and never print the API key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "tests/harness/pdns.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define KEY "cli-key-0b5e55ed"

static struct tp_pdns pd;
static char env_data[300], env_url[128], env_key[128], env_listen[64];

/* Run slipway with `key_env` (or none) and the arguments up to NULL. */
static int sw_dns(char **out, const char *key_env, ...)
{
        char *argv[16];
        const char *env[] = {env_data,
                             env_url,
                             env_listen,
                             "SLIPWAY_DNS_ZONE=cli.test.",
                             "SLIPWAY_EDGE_IP=127.0.0.1",
                             key_env,
                             NULL};
        va_list ap;
        int n = 0;

        argv[n++] = (char *)t_slipway();
        argv[n++] = "dns";
        va_start(ap, key_env);
        while (n < 15 && (argv[n] = va_arg(ap, char *)) != NULL)
                n++;
        va_end(ap);
        argv[n] = NULL;
        return t_run_capture(out, argv, env, 30000);
}

#define DNS(out, ...) sw_dns(out, env_key, __VA_ARGS__, (char *)NULL)

/* `outp` is read after the call that fills it: arguments have no evaluation order. */
static void expect(int rc, int want_rc, char **outp, const char *needle)
{
        char *out = *outp;

        if (rc != want_rc || !strstr(out, needle))
                t_fail(__FILE__, __LINE__, "exit %d (want %d), output lacks '%s': %s", rc, want_rc,
                       needle, out);
        if (strstr(out, KEY))
                t_fail(__FILE__, __LINE__, "the API key was printed: %s", out);
        free(out);
}

static void test_help(void)
{
        char *out = NULL;
        char *argv[] = {(char *)t_slipway(), "dns", "--help", NULL};
        char *argv2[] = {(char *)t_slipway(), "--help", NULL};

        expect(t_run_capture(&out, argv, NULL, 10000), 0, &out, "slipway dns upsert HOST [IP]");
        expect(t_run_capture(&out, argv2, NULL, 10000), 0, &out, "dns ");
        expect(DNS(&out, "frob", "x"), 2, &out, "unknown action 'frob'");
        expect(DNS(&out, "upsert"), 2, &out, "expected a HOST");
        expect(DNS(&out, "upsert", "a.cli.test", "--ttl", "0"), 2, &out, "--ttl");
}

static void test_upsert_get_delete(void)
{
        char *out = NULL;

        expect(DNS(&out, "upsert", "app.cli.test", "127.0.0.9"), 0, &out,
               "app.cli.test A 127.0.0.9: published, answered by 127.0.0.1:");
        expect(DNS(&out, "get", "app.cli.test"), 0, &out, "app.cli.test. A 127.0.0.9 ttl 60");
        expect(DNS(&out, "get", "app.cli.test"), 0, &out, "owner: slipway (ours)");
        expect(DNS(&out, "get", "app.cli.test", "--json"), 0, &out, "\"ours\":true");
        /* the edge IP by default, and a TTL */
        expect(DNS(&out, "upsert", "edge.cli.test", "--ttl", "30"), 0, &out,
               "edge.cli.test A 127.0.0.1: published");
        expect(DNS(&out, "get", "edge.cli.test"), 0, &out, "A 127.0.0.1 ttl 30");
        expect(DNS(&out, "list"), 0, &out, "app.cli.test.\t127.0.0.9\tslipway\t-");
        expect(DNS(&out, "list", "--json"), 0, &out, "\"host\":\"edge.cli.test.\"");
        expect(DNS(&out, "delete", "app.cli.test"), 0, &out, "no record of owner 'slipway' left");
        expect(DNS(&out, "get", "app.cli.test"), 1, &out, "has no A record");
        expect(DNS(&out, "delete", "app.cli.test"), 0, &out, "no record");
}

static void test_refusals(void)
{
        char *out = NULL;

        expect(DNS(&out, "upsert", "App.cli.test", "127.0.0.1"), 1, &out, "lower-case");
        expect(DNS(&out, "upsert", "app.other.test", "127.0.0.1"), 1, &out,
               "not inside the zone 'cli.test.'");
        expect(DNS(&out, "upsert", "app.cli.test", "300.1.1.1"), 1, &out, "not an IPv4 address");
        /* another owner's record */
        expect(sw_dns(&out, env_key, "upsert", "shared.cli.test", "127.0.0.1", (char *)NULL), 0,
               &out, "published");
        {
                char *argv[] = {(char *)t_slipway(), "dns",       "upsert",
                                "shared.cli.test",   "127.0.0.2", NULL};
                const char *env[] = {env_data,
                                     env_url,
                                     env_listen,
                                     env_key,
                                     "SLIPWAY_DNS_ZONE=cli.test.",
                                     "SLIPWAY_DNS_OWNER=team-b",
                                     NULL};
                expect(t_run_capture(&out, argv, env, 30000), 1, &out,
                       "is owned by 'slipway' (ownership record 'a-shared.cli.test.'), not by 'team-b'");
                argv[2] = "delete";
                argv[4] = NULL;
                expect(t_run_capture(&out, argv, env, 30000), 1, &out, "refusing to delete it");
        }
        expect(DNS(&out, "get", "shared.cli.test"), 0, &out, "A 127.0.0.1");
        /* a wrong key, and no URL at all */
        expect(sw_dns(&out, "SLIPWAY_PDNS_API_KEY=not-the-key", "get", "shared.cli.test",
                      (char *)NULL),
               1, &out, "rejected the API key (401 Unauthorized)");
        {
                char *argv[] = {(char *)t_slipway(), "dns", "get", "x.cli.test", NULL};
                const char *env[] = {env_data, NULL};
                expect(t_run_capture(&out, argv, env, 30000), 1, &out, "set SLIPWAY_PDNS_URL");
        }
}

int main(void)
{
        if (tp_pdns_start(&pd, KEY) != 0)
                return 1;
        snprintf(env_data, sizeof(env_data), "SLIPWAY_DATA=%s/data", t_tmpdir());
        snprintf(env_url, sizeof(env_url), "SLIPWAY_PDNS_URL=%s", pd.api_url);
        snprintf(env_key, sizeof(env_key), "SLIPWAY_PDNS_API_KEY=%s", KEY);
        snprintf(env_listen, sizeof(env_listen), "SLIPWAY_DNS_LISTEN=%s", pd.server);
        T_RUN(test_help);
        T_RUN(test_upsert_get_delete);
        T_RUN(test_refusals);
        tp_pdns_release(&pd);
        return t_done();
}
