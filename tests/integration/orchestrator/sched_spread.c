/*
 * sched_spread.c - the scheduler's topology spread, against the real
 * `slipway kube-apiserver` and the real kubectl, with three hollow nodes
 * (tests/harness/hollow.h) and the scheduler and ReplicaSet/Deployment
 * controllers in this process.
 *
 * Covered: a DoNotSchedule constraint on kubernetes.io/hostname spreads 6
 * replicas 2/2/2; with one node cordoned (still a domain, as in
 * kube-scheduler) a scale to 9 places two more pods and leaves the third
 * Pending with kubectl's message, placed once the node is uncordoned; a
 * ScheduleAnyway constraint never blocks a pod but still balances; a
 * constraint on a label the nodes lack makes every node fail with
 * "(missing required label)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/libs.h"
#include "orchestrator/ctrl.h"
#include "tests/harness/hollow.h"
#include "tests/harness/orch.h"
#include "tests/harness/t.h"

static struct t_orch srv;
static bool up;
static struct orch_ctrl *ctrl;
static struct t_hollow hollow;

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})
#define UNTIL(want, ms, ...)                                                                       \
        t_kubectl_until(&srv, (want), (ms), (const char *const[]){__VA_ARGS__, NULL})

/* A Deployment `name` of `replicas` with one spread constraint over `key`. */
static char *deployment(const char *name, int replicas, const char *key, const char *when)
{
        char *y = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&y, &n);

        fprintf(f,
                "apiVersion: apps/v1\n"
                "kind: Deployment\n"
                "metadata: {name: %s, namespace: default}\n"
                "spec:\n"
                "  replicas: %d\n"
                "  selector: {matchLabels: {app: %s}}\n"
                "  template:\n"
                "    metadata: {labels: {app: %s}}\n"
                "    spec:\n"
                "      topologySpreadConstraints:\n"
                "      - {maxSkew: 1, topologyKey: %s, whenUnsatisfiable: %s,\n"
                "         labelSelector: {matchLabels: {app: %s}}}\n"
                "      containers:\n"
                "      - name: c\n"
                "        image: busybox:1.36\n"
                "        resources: {requests: {cpu: 10m, memory: 16Mi}}\n",
                name, replicas, name, name, key, when, name);
        fclose(f);
        return y;
}

/* "n1=a n2=b n3=c": how many pods of app `app` each node runs. */
static void per_node(const char *app, int counts[3])
{
        char *out = NULL, sel[64];

        snprintf(sel, sizeof(sel), "app=%s", app);
        counts[0] = counts[1] = counts[2] = 0;
        KUBECTL(&out, NULL, "get", "pods", "-l", sel, "-o",
                "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}");
        for (const char *p = out; p && *p;) {
                const char *nl = strchr(p, '\n');
                if (nl - p == 2 && p[0] == 'n' && p[1] >= '1' && p[1] <= '3')
                        counts[p[1] - '1']++;
                if (!nl)
                        break;
                p = nl + 1;
        }
        free(out);
}

static void test_start(void)
{
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;

        co.sched_backoff_max_ms = 1000;
        co.controllers = ORCH_CTRL_SCHEDULER | ORCH_CTRL_REPLICASET | ORCH_CTRL_DEPLOYMENT;
        up = t_cluster_start(&srv, "spread", &hollow, "n", 3, "4", "8Gi", &co, &ctrl);
        CHECK(up);
}

static void test_hard_spread(void)
{
        char *out = NULL, *y = deployment("hard", 6, "kubernetes.io/hostname", "DoNotSchedule");
        int c[3];

        CHECK_INT(KUBECTL(&out, y, "apply", "-f", "-"), 0);
        free(out);
        free(y);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/hard", "--timeout=60s"), 0);
        free(out);
        per_node("hard", c);
        CHECK_INT(c[0], 2);
        CHECK_INT(c[1], 2);
        CHECK_INT(c[2], 2);
}

static void test_skew_blocks(void)
{
        char *out = NULL, *y;
        int c[3];

        CHECK_INT(KUBECTL(&out, NULL, "cordon", "n1"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "scale", "deploy/hard", "--replicas=9"), 0);
        free(out);
        /* n2 and n3 take one more each (skew 3-2 = 1); the ninth pod would make it 2 */
        CHECK(UNTIL("0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't "
                    "match pod topology spread constraints.",
                    20000, "get", "pods", "-l", "app=hard", "-o",
                    "jsonpath={.items[*].status.conditions[?(@.type==\"PodScheduled\")].message}"));
        CHECK(UNTIL("FailedScheduling", 10000, "get", "events", "--field-selector",
                    "reason=FailedScheduling"));
        per_node("hard", c);
        CHECK_INT(c[0], 2);
        CHECK_INT(c[1], 3);
        CHECK_INT(c[2], 3);

        /* ScheduleAnyway only prefers: 4 pods fit on the 2 schedulable nodes, 2 each */
        y = deployment("soft", 4, "kubernetes.io/hostname", "ScheduleAnyway");
        CHECK_INT(KUBECTL(&out, y, "apply", "-f", "-"), 0);
        free(out);
        free(y);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/soft", "--timeout=60s"), 0);
        free(out);
        per_node("soft", c);
        CHECK_INT(c[0], 0);
        CHECK_INT(c[1], 2);
        CHECK_INT(c[2], 2);

        /* uncordoning n1 lets the waiting pod in, there */
        CHECK_INT(KUBECTL(&out, NULL, "uncordon", "n1"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/hard", "--timeout=60s"), 0);
        free(out);
        per_node("hard", c);
        CHECK_INT(c[0], 3);
        CHECK_INT(c[1], 3);
        CHECK_INT(c[2], 3);
}

static void test_missing_label(void)
{
        char *out = NULL,
             *y = deployment("zoned", 1, "topology.kubernetes.io/zone", "DoNotSchedule");

        CHECK_INT(KUBECTL(&out, y, "apply", "-f", "-"), 0);
        free(out);
        free(y);
        CHECK(UNTIL("0/3 nodes are available: 3 node(s) didn't match pod topology spread "
                    "constraints (missing required label).",
                    20000, "get", "pods", "-l", "app=zoned", "-o",
                    "jsonpath={.items[*].status.conditions[?(@.type==\"PodScheduled\")].message}"));
        /* once the nodes carry the label, the pod is placed */
        CHECK_INT(KUBECTL(&out, NULL, "label", "nodes", "n1", "n2", "n3",
                          "topology.kubernetes.io/zone=z1"),
                  0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/zoned", "--timeout=60s"), 0);
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
                T_RUN(test_hard_spread);
                T_RUN(test_skew_blocks);
                T_RUN(test_missing_label);
        }
        T_RUN(test_stop);
        sw_libs_shutdown();
        return t_done();
}
