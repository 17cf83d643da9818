/*
 * ctrl_jobs.c - the Job and CronJob controllers and the node lifecycle
 * (leases, default tolerations, eviction) in-process against the real
 * `slipway kube-apiserver`, driven and checked with the real kubectl, on
 * three hollow nodes.
 *
 * Pods finish because their template carries the hollow kubelet's
 * annotation "hollow.slipway.dev/exit-code" (tests/harness/hollow.h):
 * "0" makes a running pod Succeeded, anything else Failed.
 *
 * Covered: a Job with completions 3 and parallelism 2 completes, never
 * running more than 2 pods, with its labels, owner references, status,
 * Events and `kubectl get jobs` columns; a failing Job stops at
 * backoffLimit (BackoffLimitExceeded); activeDeadlineSeconds fails a Job
 * and deletes its pods (DeadlineExceeded); a Job with restartPolicy Always
 * and a CronJob with a bad schedule or time zone are refused; a CronJob
 * "* * * * *" (its clock sped up 60 times) creates Jobs named after the
 * scheduled minute, keeps successfulJobsHistoryLimit of them, and stops
 * when suspended; nodes renew Leases so they stay Ready between rare
 * status posts; pods get the default 300 s tolerations; a node that stops
 * heartbeating (8 s grace) becomes NotReady, and its pods are evicted once their
 * toleration (3 s here) runs out and replaced on the other nodes.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "orchestrator/ctrl.h"
#include "tests/harness/hollow.h"
#include "tests/harness/orch.h"
#include "tests/harness/t.h"

static struct t_orch srv;
static struct t_hollow hollow;
static struct orch_ctrl *ctrl;
static bool up;
static atomic_int max_active; /* most unfinished pods of Job "ok" seen at once */

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})
#define EVENTUALLY(want, ms, ...)                                                                  \
        t_kubectl_until(&srv, (want), (ms), (const char *const[]){__VA_ARGS__, NULL})

/* Whether `out` contains `want`; prints what it was otherwise. */
static bool has(const char *out, const char *want)
{
        if (out && strstr(out, want))
                return true;
        fprintf(stderr, "wanted '%s' in: %s\n", want, out ? out : "(none)");
        return false;
}

static void observe(void *arg, const json_t *pods)
{
        const json_t *p;
        size_t i;
        int active = 0;

        (void)arg;
        json_array_foreach(pods, i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                const char *phase = sw_json_str(json_object_get(p, "status"), "phase", "");
                if (strcmp(sw_json_str(json_object_get(md, "labels"), "job-name", ""), "ok") != 0 ||
                    json_object_get(md, "deletionTimestamp") || strcmp(phase, "Succeeded") == 0 ||
                    strcmp(phase, "Failed") == 0)
                        continue;
                active++;
        }
        if (active > atomic_load(&max_active))
                atomic_store(&max_active, active);
}

static void test_start(void)
{
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;

        co.node_grace_ms = 8000;
        co.sched_backoff_max_ms = 1000;
        co.job_backoff_ms = 200;
        co.cron_time_scale = 60;
        hollow.observe = observe;
        up = t_cluster_start(&srv, "jobs", &hollow, "j", 3, "4", "8Gi", &co, &ctrl);
        CHECK(up);
}

static const char *const JOB_OK = "apiVersion: batch/v1\n"
                                  "kind: Job\n"
                                  "metadata: {name: ok, namespace: default}\n"
                                  "spec:\n"
                                  "  completions: 3\n"
                                  "  parallelism: 2\n"
                                  "  template:\n"
                                  "    metadata:\n"
                                  "      annotations: {hollow.slipway.dev/exit-code: \"0\"}\n"
                                  "    spec:\n"
                                  "      restartPolicy: Never\n"
                                  "      containers: [{name: c, image: busybox:1.36}]\n";

static void test_job_completes(void)
{
        char *out = NULL, *uid = NULL;

        CHECK_INT(KUBECTL(&out, JOB_OK, "apply", "-f", "-"), 0);
        CHECK(out && strstr(out, "job.batch/ok created"));
        free(out);
        CHECK_INT(
                KUBECTL(&out, NULL, "wait", "--for=condition=complete", "job/ok", "--timeout=30s"),
                0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "job", "ok", "-o",
                          "jsonpath={.status.succeeded} {.status.failed} {.status.active} "
                          "{.status.conditions[0].type} {.status.conditions[0].reason}"),
                  0);
        CHECK_STR(out, "3 0 0 Complete CompletionsReached");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "job", "ok", "-o",
                          "jsonpath={.status.startTime}|{.status.completionTime}|{.metadata.uid}"),
                  0);
        CHECK(out && strlen(out) > 40 && out[0] == '2' && strstr(out, "Z|2"));
        if (out && strrchr(out, '|'))
                uid = sw_xstrdup(strrchr(out, '|') + 1);
        free(out);
        CHECK(atomic_load(&max_active) >= 1 && atomic_load(&max_active) <= 2);
        /* its pods: labels of both spellings and a controller reference */
        CHECK_INT(KUBECTL(&out, NULL, "get", "pods", "-l", "job-name=ok", "-o",
                          "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/"
                          "{.metadata.ownerReferences[0].name} {.status.phase} "
                          "{.metadata.labels.batch\\.kubernetes\\.io/controller-uid}\n{end}"),
                  0);
        if (uid) {
                char *line = sw_xasprintf("Job/ok Succeeded %s\n", uid);
                char *at = out ? strstr(out, line) : NULL;
                int n = 0;
                while (at) {
                        n++;
                        at = strstr(at + 1, line);
                }
                CHECK_INT(n, 3);
                free(line);
        }
        free(out);
        free(uid);
        /* `kubectl get jobs`: STATUS COMPLETIONS DURATION AGE */
        CHECK_INT(KUBECTL(&out, NULL, "get", "jobs", "ok"), 0);
        CHECK(out && strstr(out, "STATUS") && strstr(out, "COMPLETIONS") &&
              strstr(out, "DURATION") && strstr(out, "Complete") && strstr(out, "3/3"));
        free(out);
        CHECK(EVENTUALLY("Job completed", 10000, "get", "events", "-o",
                         "jsonpath={range .items[?(@.involvedObject.name==\"ok\")]}{.reason}: "
                         "{.message}\n{end}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "events", "-o",
                          "jsonpath={range .items[?(@.involvedObject.name==\"ok\")]}{.reason}: "
                          "{.message}\n{end}"),
                  0);
        CHECK(out && strstr(out, "SuccessfulCreate: Created pod: ok-"));
        free(out);
}

static const char *const JOB_FAIL = "apiVersion: batch/v1\n"
                                    "kind: Job\n"
                                    "metadata: {name: fail, namespace: default}\n"
                                    "spec:\n"
                                    "  backoffLimit: 2\n"
                                    "  template:\n"
                                    "    metadata:\n"
                                    "      annotations: {hollow.slipway.dev/exit-code: \"1\"}\n"
                                    "    spec:\n"
                                    "      restartPolicy: Never\n"
                                    "      containers: [{name: c, image: busybox:1.36}]\n";

static const char *const JOB_SLOW = "apiVersion: batch/v1\n"
                                    "kind: Job\n"
                                    "metadata: {name: slow, namespace: default}\n"
                                    "spec:\n"
                                    "  completions: 2\n"
                                    "  parallelism: 2\n"
                                    "  activeDeadlineSeconds: 2\n"
                                    "  template:\n"
                                    "    spec:\n"
                                    "      restartPolicy: OnFailure\n"
                                    "      containers: [{name: c, image: busybox:1.36}]\n";

static const char *const JOB_ALWAYS = "apiVersion: batch/v1\n"
                                      "kind: Job\n"
                                      "metadata: {name: always, namespace: default}\n"
                                      "spec:\n"
                                      "  template:\n"
                                      "    spec:\n"
                                      "      containers: [{name: c, image: busybox:1.36}]\n";

static void test_job_fails(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, JOB_FAIL, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, JOB_SLOW, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(
                KUBECTL(&out, NULL, "wait", "--for=condition=failed", "job/fail", "--timeout=30s"),
                0);
        free(out);
        /* backoffLimit 2: the third failure ends it, no fourth pod */
        CHECK_INT(KUBECTL(&out, NULL, "get", "job", "fail", "-o",
                          "jsonpath={.status.failed} {.status.active} "
                          "{.status.conditions[?(@.type==\"Failed\")].reason}"),
                  0);
        CHECK_STR(out, "3 0 BackoffLimitExceeded");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "pods", "-l", "job-name=fail", "-o", "name"), 0);
        CHECK(out && strstr(out, "pod/fail-"));
        {
                int n = 0;
                for (char *p = out; p && (p = strstr(p, "pod/fail-")) != NULL; p++)
                        n++;
                CHECK_INT(n, 3);
        }
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "jobs", "fail"), 0);
        CHECK(out && strstr(out, "Failed") && strstr(out, "0/1"));
        free(out);
        CHECK(EVENTUALLY("BackoffLimitExceeded: Job has reached the specified backoff limit", 10000,
                         "get", "events", "-o",
                         "jsonpath={range .items[?(@.involvedObject.name==\"fail\")]}{.reason}: "
                         "{.message}\n{end}"));

        /* activeDeadlineSeconds: failed after 2 s, its running pods deleted */
        CHECK_INT(
                KUBECTL(&out, NULL, "wait", "--for=condition=failed", "job/slow", "--timeout=30s"),
                0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "job", "slow", "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}"),
                  0);
        CHECK_STR(out, "DeadlineExceeded");
        free(out);
        CHECK(EVENTUALLY("No resources found", 20000, "get", "pods", "-l", "job-name=slow"));
        CHECK(EVENTUALLY("Job was active longer than specified deadline", 10000, "get", "events"));

        /* restartPolicy Always is refused, as the real API server does */
        CHECK(KUBECTL(&out, JOB_ALWAYS, "apply", "-f", "-") != 0);
        CHECK(out && strstr(out, "spec.template.spec.restartPolicy: Unsupported value: "
                                 "\"Always\": supported values: \"OnFailure\", \"Never\""));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "delete", "job", "ok", "fail", "slow"), 0);
        free(out);
        CHECK(EVENTUALLY("No resources found", 20000, "get", "pods", "-l", "job-name"));
}

static const char *const CRON =
        "apiVersion: batch/v1\n"
        "kind: CronJob\n"
        "metadata: {name: tick, namespace: default}\n"
        "spec:\n"
        "  schedule: \"* * * * *\"\n"
        "  successfulJobsHistoryLimit: 2\n"
        "  jobTemplate:\n"
        "    metadata: {labels: {cron: tick}}\n"
        "    spec:\n"
        "      template:\n"
        "        metadata: {annotations: {hollow.slipway.dev/exit-code: \"0\"}}\n"
        "        spec:\n"
        "          restartPolicy: Never\n"
        "          containers: [{name: c, image: busybox:1.36}]\n";

static const char *const BAD_SCHEDULE = "apiVersion: batch/v1\n"
                                        "kind: CronJob\n"
                                        "metadata: {name: bad, namespace: default}\n"
                                        "spec:\n"
                                        "  schedule: \"61 * * * *\"\n"
                                        "  jobTemplate:\n"
                                        "    spec:\n"
                                        "      template:\n"
                                        "        spec:\n"
                                        "          restartPolicy: Never\n"
                                        "          containers: [{name: c, image: busybox:1.36}]\n";

static const char *const BAD_ZONE = "apiVersion: batch/v1\n"
                                    "kind: CronJob\n"
                                    "metadata: {name: bad, namespace: default}\n"
                                    "spec:\n"
                                    "  schedule: \"0 9 * * *\"\n"
                                    "  timeZone: Mars/Olympus_Mons\n"
                                    "  jobTemplate:\n"
                                    "    spec:\n"
                                    "      template:\n"
                                    "        spec:\n"
                                    "          restartPolicy: Never\n"
                                    "          containers: [{name: c, image: busybox:1.36}]\n";

/* How many times `needle` occurs in `s`. */
static int count_of(const char *s, const char *needle)
{
        int n = 0;

        for (const char *p = s; p && (p = strstr(p, needle)) != NULL; p++)
                n++;
        return n;
}

static void test_cronjob(void)
{
        char *out = NULL;
        int64_t end;
        int created = 0;

        /* a bad schedule or zone is refused */
        CHECK(KUBECTL(&out, BAD_SCHEDULE, "apply", "-f", "-") != 0);
        CHECK(has(out, "spec.schedule: Invalid value: \"61 * * * *\": minute field \"61\" is "
                       "outside 0-59"));
        free(out);
        CHECK(KUBECTL(&out, BAD_ZONE, "apply", "-f", "-") != 0);
        CHECK(has(out, "spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone"));
        free(out);

        CHECK_INT(KUBECTL(&out, CRON, "apply", "-f", "-"), 0);
        CHECK(out && strstr(out, "cronjob.batch/tick created"));
        free(out);
        /* one virtual minute a second: at least four Jobs in a few seconds */
        end = sw_mono_ms() + 20000;
        while (sw_mono_ms() < end && created < 4) {
                KUBECTL(&out, NULL, "get", "events", "-o",
                        "jsonpath={range .items[?(@.reason==\"SuccessfulCreate\")]}{.message}\n"
                        "{end}");
                created = out ? count_of(out, "Created job tick-") : 0;
                free(out);
                out = NULL;
                if (created < 4)
                        sw_sleep_ms(300);
        }
        CHECK(created >= 4);
        CHECK(EVENTUALLY("Deleted job tick-", 20000, "get", "events", "-o",
                         "jsonpath={range .items[?(@.reason==\"SuccessfulDelete\")]}{.message}\n"
                         "{end}"));
        CHECK(EVENTUALLY("SawCompletedJob", 10000, "get", "events"));
        /* suspended: no new Jobs, and history ends at two completed ones */
        CHECK_INT(KUBECTL(&out, NULL, "patch", "cronjob", "tick", "-p",
                          "{\"spec\":{\"suspend\":true}}"),
                  0);
        free(out);
        {
                /* settle: every Job finished and pruned to the limit */
                bool ok = false;
                end = sw_mono_ms() + 15000;
                while (!ok && sw_mono_ms() < end) {
                        KUBECTL(&out, NULL, "get", "jobs", "-l", "cron=tick", "-o",
                                "jsonpath={range .items[*]}{.metadata.name} "
                                "{.status.conditions[0].type}\n{end}");
                        ok = out && count_of(out, "tick-") == 2 && count_of(out, "Complete") == 2;
                        if (!ok) {
                                free(out);
                                out = NULL;
                                sw_sleep_ms(300);
                        }
                }
                CHECK(ok);
                if (out) {
                        /* named after the scheduled minute since the epoch */
                        long long minute = strtoll(strstr(out, "tick-") + 5, NULL, 10);
                        CHECK(minute * 60 >= (long long)time(NULL) - 120);
                }
                free(out);
        }
        CHECK_INT(KUBECTL(&out, NULL, "get", "cronjob", "tick", "-o",
                          "jsonpath={.status.lastScheduleTime}|{.status.lastSuccessfulTime}|"
                          "{.status.active}"),
                  0);
        CHECK(out && out[0] == '2' && strstr(out, "Z|2") && out[strlen(out) - 1] == '|');
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "cronjob", "tick"), 0);
        /* SUSPEND true; LAST SCHEDULE is in the future of the wall clock (sped-up clock) */
        CHECK(has(out, "tick   * * * * *   <none>     true"));
        free(out);
        /* deleting the CronJob takes its Jobs along */
        CHECK_INT(KUBECTL(&out, NULL, "delete", "cronjob", "tick"), 0);
        free(out);
        CHECK(EVENTUALLY("No resources found", 20000, "get", "jobs", "-l", "cron=tick"));
}

static const char *const DUR = "apiVersion: apps/v1\n"
                               "kind: Deployment\n"
                               "metadata: {name: dur, namespace: default}\n"
                               "spec:\n"
                               "  replicas: 3\n"
                               "  selector: {matchLabels: {app: dur}}\n"
                               "  template:\n"
                               "    metadata: {labels: {app: dur}}\n"
                               "    spec:\n"
                               "      tolerations: [{key: node.kubernetes.io/unreachable, "
                               "operator: Exists, effect: NoExecute, tolerationSeconds: 3}]\n"
                               "      containers:\n"
                               "      - name: c\n"
                               "        image: busybox:1.36\n"
                               "        resources: {requests: {cpu: \"1\", memory: 64Mi}}\n";

static const char *const PLAIN = "apiVersion: v1\n"
                                 "kind: Pod\n"
                                 "metadata: {name: plain, namespace: default}\n"
                                 "spec:\n"
                                 "  containers: [{name: c, image: busybox:1.36}]\n";

static void test_node_dies(void)
{
        char *out = NULL;
        int64_t tainted, gone = -1, end;

        /*
         * The hollow kubelets post their status every 10 s and renew their
         * Lease every half second; with an 8 s grace only the Lease keeps
         * them Ready.
         */
        CHECK_INT(KUBECTL(&out, NULL, "get", "lease", "-n", "kube-node-lease"), 0);
        CHECK(out && strstr(out, "j1") && strstr(out, "j2") && strstr(out, "j3"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "nodes", "-o",
                          "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}"),
                  0);
        CHECK_STR(out, "True True True");
        free(out);

        /* pods get the default tolerations, 300 s */
        CHECK_INT(KUBECTL(&out, PLAIN, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "pod", "plain", "-o",
                          "jsonpath={range .spec.tolerations[*]}{.key}:{.effect}:"
                          "{.tolerationSeconds} {end}"),
                  0);
        CHECK_STR(out, "node.kubernetes.io/not-ready:NoExecute:300 "
                       "node.kubernetes.io/unreachable:NoExecute:300 ");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "delete", "pod", "plain", "--wait=false"), 0);
        free(out);

        CHECK_INT(KUBECTL(&out, DUR, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/dur", "--timeout=60s"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "pods", "-l", "app=dur", "-o",
                          "jsonpath={range .items[*]}{.spec.nodeName}\n{end}"),
                  0);
        CHECK(has(out, "j1\n"));
        free(out);

        t_hollow_kill(&hollow, 0);
        CHECK(EVENTUALLY("node.kubernetes.io/unreachable", 20000, "get", "node", "j1", "-o",
                         "jsonpath={.spec.taints[*].key}"));
        tainted = sw_mono_ms();
        CHECK_INT(KUBECTL(&out, NULL, "get", "node", "j1", "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"),
                  0);
        CHECK_STR(out, "Unknown");
        free(out);
        /* the pod on j1 stays for its 3 s toleration, then is replaced elsewhere */
        end = sw_mono_ms() + 20000;
        while (gone < 0 && sw_mono_ms() < end) {
                KUBECTL(&out, NULL, "get", "pods", "-l", "app=dur", "-o",
                        "jsonpath={range .items[*]}{.spec.nodeName}\n{end}");
                if (out && !strstr(out, "j1\n"))
                        gone = sw_mono_ms();
                free(out);
                out = NULL;
                if (gone < 0)
                        sw_sleep_ms(100);
        }
        CHECK(gone > 0);
        CHECK(gone - tainted >= 2000);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/dur", "--timeout=60s"), 0);
        free(out);
        CHECK(EVENTUALLY("3", 20000, "get", "deploy", "dur", "-o",
                         "jsonpath={.status.availableReplicas}"));
        CHECK(EVENTUALLY("NodeNotReady", 10000, "get", "events"));
        CHECK(EVENTUALLY("TaintManagerEviction", 10000, "get", "events"));
        CHECK_INT(KUBECTL(&out, NULL, "delete", "deploy", "dur"), 0);
        free(out);
}

static void test_stop(void)
{
        t_cluster_stop(&srv, &hollow, &ctrl);
}

int main(void)
{
        sw_libs_init();
        T_RUN(test_start);
        if (up) {
                T_RUN(test_job_completes);
                T_RUN(test_job_fails);
                T_RUN(test_cronjob);
                T_RUN(test_node_dies);
        }
        T_RUN(test_stop);
        sw_libs_shutdown();
        return t_done();
}
