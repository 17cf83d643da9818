/*
 * test_step.c - the `dns` pipeline step run by the real pipeline runner
 * against a real pdns_server: the default host <name>.<namespace>.<domain>
 * and a requested host are published and answered; when the app's host
 * changes the old record is removed; a host outside the zone
 * and a host owned by someone else fail for good with the reason; with
 * PowerDNS stopped the step fails transiently, and the retried job resumes
 * at the dns step once PowerDNS is back. The API key never reaches the log.
 */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "engine/pipeline.h"
#include "engine/queue.h"
#include "steps/steps.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/pdns.h"
#include "tests/harness/t.h"

#define KEY "step-key-771c0ffee"

static struct tp_pdns pd;
static struct sw_config cfg;
static struct eng_queue *q;

static const struct eng_step_def *const steps_vd[] = {&step_validate_def, &step_dns_def};
static const struct eng_pipeline_def pipe_vd = {"deploy", steps_vd, 2};

/* Stands in for the render step: records the host it put in the Ingress. */
static int fake_render(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        (void)ctx;
        (void)err;
        *output = json_pack("{s:s}", "host", "rendered.slipway.test");
        return 0;
}
static const struct eng_step_def fake_render_def = {"render", "fake render", fake_render};
static const struct eng_step_def *const steps_vrd[] = {&step_validate_def, &fake_render_def,
                                                       &step_dns_def};
static const struct eng_pipeline_def pipe_vrd = {"deploy", steps_vrd, 3};
static const struct eng_pipeline_def *pipe = &pipe_vd;

static void collect(void *arg, int64_t seq, int64_t ts, const char *step, const char *line)
{
        struct sw_err err = SW_ERR_INIT;
        (void)seq;
        (void)ts;
        sw_buf_printf(arg, &err, "%s: %s\n", step, line);
}

/* Queue a deploy of `payload`, claim it and run the pipeline once. */
static int run_job(int64_t *id_out, const char *payload, struct sw_err *err)
{
        struct eng_job_spec s = {0};
        struct eng_job *j = NULL;
        struct eng_run_env env = {0};
        atomic_int stop = 0;
        struct sw_err qerr = SW_ERR_INIT;
        int rc;

        env.cfg = &cfg;
        env.scratch_root = t_tmpdir();
        env.log_max_bytes = 1 << 20;
        env.stop = &stop;
        if (*id_out == 0) {
                s.kind = "deploy";
                s.payload = payload;
                CHECK_OK(eng_queue_enqueue(id_out, NULL, q, &s, &qerr), &qerr);
        }
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &qerr), &qerr);
        if (!j)
                return SW_EINTERNAL;
        rc = eng_pipeline_run(q, j, pipe, &env, err);
        if (rc == 0)
                CHECK_OK(eng_queue_complete(q, j->id, "w", &qerr), &qerr);
        else
                CHECK_OK(eng_queue_fail(NULL, q, j->id, "w", sw_err_transient(rc), err->msg, 1,
                                        &qerr),
                         &qerr);
        eng_job_free(j);
        return rc;
}

/* The stored output of `step` of job `id`, or NULL; the caller frees. */
static char *step_output(int64_t id, const char *step, int *attempt_out)
{
        struct eng_step_record *steps = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;
        size_t n = 0;

        CHECK_OK(eng_steps_list(&steps, &n, q, id, &err), &err);
        for (size_t i = 0; i < n; i++)
                if (strcmp(steps[i].name, step) == 0) {
                        out = steps[i].output ? sw_xstrdup(steps[i].output) : NULL;
                        if (attempt_out)
                                *attempt_out = steps[i].attempt;
                }
        eng_steps_free(steps, n);
        return out;
}

static void test_default_host(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_answer a;
        struct sw_buf log = SW_BUF_INIT;
        int64_t id = 0, seq = 0;
        char *out;

        CHECK_OK(
                run_job(&id, "{\"repo\":\"https://git.example/shop.git\",\"name\":\"shop\"}", &err),
                &err);
        out = step_output(id, "dns", NULL);
        CHECK_STR(out, "{\"host\":\"shop.default.slipway.test\",\"ip\":\"127.0.0.1\","
                       "\"zone\":\"slipway.test.\"}");
        free(out);
        CHECK_OK(dns_query_a(&a, pd.server, "shop.default.slipway.test", 2000, &err), &err);
        CHECK_INT(a.naddrs, 1);
        CHECK(memcmp(a.addrs[0], "\x7f\x00\x00\x01", 4) == 0);
        CHECK_OK(eng_logs_read(&seq, q, id, 0, 1000, collect, &log, &err), &err);
        CHECK(strstr(sw_buf_str(&log), "dns: shop.default.slipway.test. A 127.0.0.1") != NULL);
        CHECK(strstr(sw_buf_str(&log), "answers 127.0.0.1") != NULL);
        CHECK(strstr(sw_buf_str(&log), KEY) == NULL);
        sw_buf_release(&log);

        /* the same deploy again: idempotent */
        id = 0;
        CHECK_OK(
                run_job(&id, "{\"repo\":\"https://git.example/shop.git\",\"name\":\"shop\"}", &err),
                &err);
}

static void test_requested_host(void)
{
        struct sw_err err = SW_ERR_INIT;
        int64_t id = 0;
        char *out;

        CHECK_OK(run_job(&id,
                         "{\"repo\":\"https://git.example/w.git\",\"name\":\"www\","
                         "\"namespace\":\"web\",\"host\":\"www.slipway.test\"}",
                         &err),
                 &err);
        out = step_output(id, "dns", NULL);
        CHECK(out && strstr(out, "\"host\":\"www.slipway.test\""));
        free(out);
        CHECK_OK(dns_wait_a(NULL, pd.server, "www.slipway.test", "127.0.0.1", 1000, &err), &err);
}

static void test_host_from_render(void)
{
        struct sw_err err = SW_ERR_INIT;
        int64_t id = 0;
        char *out;

        pipe = &pipe_vrd;
        CHECK_OK(run_job(&id, "{\"repo\":\"https://git.example/r.git\",\"name\":\"r\"}", &err),
                 &err);
        pipe = &pipe_vd;
        out = step_output(id, "dns", NULL);
        CHECK(out && strstr(out, "\"host\":\"rendered.slipway.test\""));
        free(out);
        CHECK_OK(dns_wait_a(NULL, pd.server, "rendered.slipway.test", "127.0.0.1", 1000, &err),
                 &err);
}

/* The app's host changed: the new record is published and the old one removed, not left stale. */
static void test_host_moved(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct sw_buf log = SW_BUF_INIT;
        struct dns_answer a;
        int64_t id = 0, seq = 0;

        CHECK_OK(run_job(&id,
                         "{\"repo\":\"https://git.example/m.git\",\"name\":\"mover\","
                         "\"host\":\"old-home.slipway.test\"}",
                         &err),
                 &err);
        CHECK_OK(dns_wait_a(NULL, pd.server, "old-home.slipway.test", "127.0.0.1", 1000, &err),
                 &err);
        id = 0;
        CHECK_OK(run_job(&id,
                         "{\"repo\":\"https://git.example/m.git\",\"name\":\"mover\","
                         "\"host\":\"new-home.slipway.test\"}",
                         &err),
                 &err);
        CHECK_OK(dns_query_a(&a, pd.server, "new-home.slipway.test", 2000, &err), &err);
        CHECK_INT(a.naddrs, 1);
        CHECK_OK(dns_query_a(&a, pd.server, "old-home.slipway.test", 2000, &err), &err);
        CHECK_INT(a.rcode, DNS_RCODE_NXDOMAIN);
        CHECK_OK(dns_query_a(&a, pd.server, "a-old-home.slipway.test", 2000, &err), &err);
        CHECK_INT(a.rcode, DNS_RCODE_NXDOMAIN);
        CHECK_OK(eng_logs_read(&seq, q, id, 0, 1000, collect, &log, &err), &err);
        CHECK(strstr(sw_buf_str(&log), "removed the stale record old-home.slipway.test.") != NULL);
        sw_buf_release(&log);
        /* other apps' records stay */
        CHECK_OK(dns_query_a(&a, pd.server, "shop.default.slipway.test", 2000, &err), &err);
        CHECK_INT(a.naddrs, 1);
        CHECK_OK(dns_query_a(&a, pd.server, "www.slipway.test", 2000, &err), &err);
        CHECK_INT(a.naddrs, 1);
}

static void test_refused_hosts(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_client *c = NULL;
        struct dns_zone *z = NULL;
        struct dns_options o = DNS_OPTIONS_INIT;
        const char *recs[] = {"192.0.2.99"};
        struct dns_change ch = {"taken.slipway.test.", "A", false, 300, recs, 1};
        struct dns_answer a;
        int64_t id = 0;
        int rc;

        rc = run_job(&id,
                     "{\"repo\":\"https://git.example/x.git\",\"name\":\"x\","
                     "\"host\":\"x.example.com\"}",
                     &err);
        CHECK_INT(rc, SW_EINVAL);
        CHECK(strstr(err.msg, "step dns") && strstr(err.msg, "not inside the zone"));
        sw_err_clear(&err);

        /* a record made by hand, without ownership, is not taken over */
        o.api_url = pd.api_url;
        o.api_key = KEY;
        CHECK_OK(dns_client_new(&c, &o, &err), &err);
        CHECK_OK(dns_zone_find(&z, c, "slipway.test", &err), &err);
        if (z)
                CHECK_OK(dns_rrsets_patch(c, z, &ch, 1, &err), &err);
        dns_zone_free(z);
        dns_client_free(c);
        id = 0;
        rc = run_job(&id,
                     "{\"repo\":\"https://git.example/t.git\",\"name\":\"taken\","
                     "\"host\":\"taken.slipway.test\"}",
                     &err);
        CHECK_INT(rc, SW_ECONFLICT);
        CHECK(!sw_err_transient(rc));
        CHECK(strstr(err.msg, "nobody owns") && strstr(err.msg, "192.0.2.99"));
        printf("# %s\n", err.msg);
        sw_err_clear(&err);
        CHECK_OK(dns_query_a(&a, pd.server, "taken.slipway.test", 2000, &err), &err);
        CHECK(a.naddrs == 1 && memcmp(a.addrs[0], "\xc0\x00\x02\x63", 4) == 0);
}

static void test_down_then_resume(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct eng_job *j = NULL;
        int64_t id = 0;
        int attempt = 0, rc;
        char *out;

        tp_pdns_stop(&pd);
        rc = run_job(&id, "{\"repo\":\"https://git.example/r.git\",\"name\":\"resume\"}", &err);
        CHECK_INT(rc, SW_EUNAVAIL);
        CHECK(sw_err_transient(rc));
        CHECK(strstr(err.msg, "unreachable") != NULL);
        sw_err_clear(&err);
        CHECK_OK(eng_queue_get(&j, q, id, &err), &err);
        CHECK(j && j->state == ENG_JOB_QUEUED);
        eng_job_free(j);

        CHECK_INT(tp_pdns_restart(&pd), 0);
        sw_sleep_ms(10); /* past the 1 ms backoff */
        CHECK_OK(run_job(&id, NULL, &err), &err);
        out = step_output(id, "validate", &attempt);
        CHECK_INT(attempt, 1); /* not run again */
        free(out);
        out = step_output(id, "dns", &attempt);
        CHECK_INT(attempt, 2);
        CHECK(out && strstr(out, "resume.default.slipway.test"));
        free(out);
}

int main(void)
{
        char url[128], key[64], listen[64];

        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (tp_pdns_start(&pd, KEY) != 0)
                return 1;
        snprintf(url, sizeof(url), "SLIPWAY_PDNS_URL=%s", pd.api_url);
        snprintf(key, sizeof(key), "SLIPWAY_PDNS_API_KEY=%s", KEY);
        snprintf(listen, sizeof(listen), "SLIPWAY_DNS_LISTEN=%s", pd.server);
        const char *env[] = {url,
                             key,
                             listen,
                             "SLIPWAY_DNS_ZONE=slipway.test.",
                             "SLIPWAY_DOMAIN=slipway.test",
                             "SLIPWAY_EDGE_IP=127.0.0.1",
                             NULL};
        tf_config(&cfg, env);
        q = tf_queue(&cfg);
        T_RUN(test_default_host);
        T_RUN(test_requested_host);
        T_RUN(test_host_from_render);
        T_RUN(test_host_moved);
        T_RUN(test_refused_hosts);
        T_RUN(test_down_then_resume);
        eng_queue_close(q);
        sw_config_release(&cfg);
        tp_pdns_release(&pd);
        curl_global_cleanup();
        return t_done();
}
