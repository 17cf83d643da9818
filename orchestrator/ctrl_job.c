/*
 * ctrl_job.c - the Job controller: runs a Job's pods until `completions`
 * of them succeeded (or, without completions, until one succeeded and the
 * rest finished), at most `parallelism` at a time, and fails the Job when
 * its pods failed more than `backoffLimit` times (restarts count too with
 * restartPolicy OnFailure) or it ran longer than `activeDeadlineSeconds`.
 * A suspended Job has no pods.
 *
 * Pods carry the job-name and controller-uid labels (both spellings, as
 * the real controller) and a controller ownerReference; they are counted
 * by that reference's uid. A failed pod is replaced after an exponential
 * back-off (the configured base, doubled per failure, at most six minutes).
 * Status: active, ready, succeeded, failed, startTime, completionTime and
 * the conditions Complete / Failed / Suspended, written only when they
 * change. Indexed completion mode, podFailurePolicy, successPolicy and
 * ttlSecondsAfterFinished are not implemented.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define JOB_BACKOFF_MAX_MS (6 * 60 * 1000)

static void job_on_pod(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        (void)type;
        orch_ctrl_enqueue_owners(arg, obj, old, "Job");
}

/* The condition `type` of `status` when its status is "True"; NULL otherwise. */
static const json_t *true_cond(const json_t *status, const char *type)
{
        const json_t *c;
        size_t i;

        json_array_foreach(json_object_get(status, "conditions"), i, c)
        {
                if (strcmp(sw_json_str(c, "type", ""), type) == 0 &&
                    strcmp(sw_json_str(c, "status", ""), "True") == 0)
                        return c;
        }
        return NULL;
}

/* `conds` with condition `type` set (replaced when present). */
static void set_cond(json_t *conds, const char *type, const char *status, const char *reason,
                     const char *message, const char *ts)
{
        json_t *c, *nc;
        size_t i;

        nc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", type, "status", status, "reason",
                       reason, "message", message, "lastProbeTime", ts, "lastTransitionTime", ts);
        json_array_foreach(conds, i, c)
        {
                if (strcmp(sw_json_str(c, "type", ""), type) != 0)
                        continue;
                if (strcmp(sw_json_str(c, "status", ""), status) == 0) {
                        json_decref(nc);
                        return; /* unchanged: keep its transition time */
                }
                json_array_set_new(conds, i, nc);
                return;
        }
        json_array_append_new(conds, nc);
}

static int create_pod(struct orch_ctrl_loop *l, const json_t *job, const char *key,
                      struct sw_err *err)
{
        const json_t *jmd = json_object_get(job, "metadata");
        const char *ns = sw_json_str(jmd, "namespace", ""), *jname = sw_json_str(jmd, "name", "");
        const char *uid = sw_json_str(jmd, "uid", "");
        const json_t *tmpl = json_object_get(json_object_get(job, "spec"), "template");
        const json_t *tmd = json_object_get(tmpl, "metadata");
        json_t *pod, *md, *labels;
        char sfx[6], *name, *path;
        int rc;

        orch_name_suffix(sfx, 5);
        name = sw_xasprintf("%s-%s", jname, sfx);
        labels = json_is_object(json_object_get(tmd, "labels"))
                         ? sw_json_copy(json_object_get(tmd, "labels"))
                         : json_object();
        json_object_set_new(labels, "batch.kubernetes.io/controller-uid", json_string(uid));
        json_object_set_new(labels, "batch.kubernetes.io/job-name", json_string(jname));
        json_object_set_new(labels, "controller-uid", json_string(uid));
        json_object_set_new(labels, "job-name", json_string(jname));
        md = json_pack("{s:s,s:s,s:o,s:[{s:s,s:s,s:s,s:s,s:b,s:b}]}", "name", name, "namespace", ns,
                       "labels", labels, "ownerReferences", "apiVersion", "batch/v1", "kind", "Job",
                       "name", jname, "uid", uid, "controller", 1, "blockOwnerDeletion", 1);
        if (json_object_get(tmd, "annotations"))
                json_object_set_new(md, "annotations",
                                    sw_json_copy(json_object_get(tmd, "annotations")));
        pod = json_pack("{s:s,s:s,s:o,s:O}", "apiVersion", "v1", "kind", "Pod", "metadata", md,
                        "spec", json_object_get(tmpl, "spec"));
        path = sw_xasprintf("/api/v1/namespaces/%s/pods", ns);
        rc = orch_kube_request(NULL, NULL, l->kc, "POST", path, NULL, pod, err);
        if (rc == 0) {
                orch_ctrl_expect(l, key, name, true);
                orch_ctrl_event(l, job, "Normal", "SuccessfulCreate", "Created pod: %s", name);
        } else {
                orch_ctrl_event(l, job, "Warning", "FailedCreate", "Error creating: %s", err->msg);
        }
        json_decref(pod);
        free(path);
        free(name);
        return rc;
}

static int delete_pod(struct orch_ctrl_loop *l, const json_t *job, const char *key,
                      const json_t *pod, struct sw_err *err)
{
        const json_t *md = json_object_get(pod, "metadata");
        const char *pn = sw_json_str(md, "name", "");
        char *path =
                sw_xasprintf("/api/v1/namespaces/%s/pods/%s", sw_json_str(md, "namespace", ""), pn);
        int rc = orch_kube_delete(l->kc, path, NULL, err);

        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = 0;
        }
        if (rc == 0) {
                orch_ctrl_expect(l, key, pn, false);
                orch_ctrl_event(l, job, "Normal", "SuccessfulDelete", "Deleted pod: %s", pn);
        } else {
                orch_ctrl_event(l, job, "Warning", "FailedDelete", "Error deleting: %s", err->msg);
        }
        free(path);
        return rc;
}

/* When `pod` failed: its last container's finishedAt, else its creation time (ms). */
static int64_t failed_at(const json_t *pod)
{
        const json_t *cs;
        int64_t best = -1;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(pod, "status"), "containerStatuses"), i,
                           cs)
        {
                const json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");
                int64_t t = orch_time_parse(sw_json_str(term, "finishedAt", ""));
                if (t > best)
                        best = t;
        }
        if (best < 0)
                best = orch_time_parse(
                        sw_json_str(json_object_get(pod, "metadata"), "creationTimestamp", ""));
        return best;
}

static int64_t restarts_of(const json_t *pod)
{
        const json_t *cs;
        int64_t n = 0;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(pod, "status"), "containerStatuses"), i,
                           cs)
        {
                n += sw_json_int(cs, "restartCount", 0);
        }
        return n;
}

/* Newest first, so a scale-down keeps the pods that ran longest. */
static int pod_cmp_newest(const void *a, const void *b)
{
        const json_t *pa = *(json_t *const *)a, *pb = *(json_t *const *)b;

        return -strcmp(sw_json_str(json_object_get(pa, "metadata"), "creationTimestamp", ""),
                       sw_json_str(json_object_get(pb, "metadata"), "creationTimestamp", ""));
}

/* What the pods of one Job add up to. */
struct job_pods {
        json_t **active; /* borrowed from the pod list */
        size_t nactive;
        int64_t succeeded, failed, ready, restarts, last_fail_ms;
};

static void count_pods(struct job_pods *jp, const json_t *pods, const char *uid)
{
        const json_t *p;
        size_t i;

        memset(jp, 0, sizeof(*jp));
        jp->last_fail_ms = -1;
        jp->active = sw_xcalloc(json_array_size(pods) + 1, sizeof(*jp->active));
        json_array_foreach(pods, i, p)
        {
                const json_t *ref = orch_ctrl_owner(p, "Job");
                const char *phase = sw_json_str(json_object_get(p, "status"), "phase", "");
                if (!ref || strcmp(sw_json_str(ref, "uid", ""), uid) != 0)
                        continue;
                if (strcmp(phase, "Succeeded") == 0) {
                        jp->succeeded++;
                } else if (strcmp(phase, "Failed") == 0) {
                        int64_t t = failed_at(p);
                        jp->failed++;
                        if (t > jp->last_fail_ms)
                                jp->last_fail_ms = t;
                } else if (orch_ctrl_pod_active(p)) {
                        jp->active[jp->nactive++] = (json_t *)p;
                        jp->restarts += restarts_of(p);
                        if (orch_ctrl_pod_ready(p, 0, 0, NULL))
                                jp->ready++;
                }
        }
}

/* Delete every active pod; returns the first error. */
static int delete_active(struct orch_ctrl_loop *l, const json_t *job, const char *key,
                         struct job_pods *jp, struct sw_err *err)
{
        int rc = 0;

        for (size_t k = 0; k < jp->nactive && rc == 0; k++)
                rc = delete_pod(l, job, key, jp->active[k], err);
        if (rc == 0) {
                jp->nactive = 0;
                jp->ready = 0;
        }
        return rc;
}

/* The delay before a pod replacing failed ones may be created; 0 when none. */
static int64_t backoff_left(const struct orch_ctrl_loop *l, const struct job_pods *jp, int64_t now)
{
        int64_t delay = l->mgr->opts.job_backoff_ms;

        if (jp->failed == 0 || jp->last_fail_ms < 0)
                return 0;
        for (int64_t k = 1; k < jp->failed && delay < JOB_BACKOFF_MAX_MS; k++)
                delay *= 2;
        if (delay > JOB_BACKOFF_MAX_MS)
                delay = JOB_BACKOFF_MAX_MS;
        return jp->last_fail_ms + delay > now ? jp->last_fail_ms + delay - now : 0;
}

static int job_reconcile(struct orch_ctrl_loop *l, const char *key, struct sw_err *err)
{
        char *ns = NULL, *name = NULL;
        json_t *job = NULL, *pods = NULL, *st = NULL, *conds = NULL;
        struct job_pods jp = {0};
        const json_t *spec, *cur, *md;
        int64_t now = sw_now_ms(), start, completions, parallelism, backoff_limit, failures;
        int64_t wake = -1;
        const char *fail_reason = NULL, *fail_msg = NULL;
        bool finished, suspend, complete = false;
        char ts[32], start_ts[32], done_ts[32];
        int rc = 0;

        orch_ctrl_key_split(key, &ns, &name);
        job = orch_informer_get(&l->mgr->jobs, key);
        md = json_object_get(job, "metadata");
        if (!job || json_object_get(md, "deletionTimestamp"))
                goto out;
        if (!orch_ctrl_expect_met(l, key, &l->mgr->pods, ns))
                goto out; /* the pod events requeue this key */
        spec = json_object_get(job, "spec");
        cur = json_object_get(job, "status");
        pods = orch_informer_owned(&l->mgr->pods, sw_json_str(md, "uid", ""));
        count_pods(&jp, pods, sw_json_str(md, "uid", ""));
        orch_time_fmt(ts, sizeof(ts), now);
        conds = json_is_array(json_object_get(cur, "conditions"))
                        ? sw_json_copy(json_object_get(cur, "conditions"))
                        : json_array();
        finished = true_cond(cur, "Complete") || true_cond(cur, "Failed");
        suspend = json_is_true(json_object_get(spec, "suspend"));
        start = orch_time_parse(sw_json_str(cur, "startTime", ""));
        if (start < 0 && !suspend && !finished)
                start = now;
        completions = json_is_integer(json_object_get(spec, "completions"))
                              ? sw_json_int(spec, "completions", 1)
                              : -1;
        parallelism = sw_json_int(spec, "parallelism", 1);
        backoff_limit = sw_json_int(spec, "backoffLimit", 6);
        failures = jp.failed;
        if (strcmp(sw_json_str(json_object_get(json_object_get(spec, "template"), "spec"),
                               "restartPolicy", ""),
                   "OnFailure") == 0)
                failures += jp.restarts;
        done_ts[0] = '\0';

        if (finished) {
                /* A finished Job keeps no running pods. */
                rc = delete_active(l, job, key, &jp, err);
                if (rc)
                        goto out;
        } else if (failures > backoff_limit) {
                fail_reason = "BackoffLimitExceeded";
                fail_msg = "Job has reached the specified backoff limit";
        } else if (json_is_integer(json_object_get(spec, "activeDeadlineSeconds")) && !suspend &&
                   start >= 0 &&
                   now >= start + sw_json_int(spec, "activeDeadlineSeconds", 0) * 1000) {
                fail_reason = "DeadlineExceeded";
                fail_msg = "Job was active longer than specified deadline";
        } else if (completions >= 0 ? jp.succeeded >= completions
                                    : jp.succeeded > 0 && jp.nactive == 0) {
                complete = true;
        }

        if (fail_reason) {
                rc = delete_active(l, job, key, &jp, err);
                if (rc)
                        goto out;
                set_cond(conds, "Failed", "True", fail_reason, fail_msg, ts);
                orch_ctrl_event(l, job, "Warning", fail_reason, "%s", fail_msg);
        } else if (complete) {
                rc = delete_active(l, job, key, &jp, err);
                if (rc)
                        goto out;
                set_cond(conds, "Complete", "True", "CompletionsReached",
                         "Reached expected number of succeeded pods", ts);
                snprintf(done_ts, sizeof(done_ts), "%s", ts);
                orch_ctrl_event(l, job, "Normal", "Completed", "Job completed");
        } else if (!finished && suspend) {
                rc = delete_active(l, job, key, &jp, err);
                if (rc)
                        goto out;
                if (!true_cond(cur, "Suspended")) {
                        set_cond(conds, "Suspended", "True", "JobSuspended", "Job suspended", ts);
                        orch_ctrl_event(l, job, "Normal", "Suspended", "Job suspended");
                }
        } else if (!finished) {
                int64_t want;
                if (true_cond(cur, "Suspended")) {
                        set_cond(conds, "Suspended", "False", "JobResumed", "Job resumed", ts);
                        orch_ctrl_event(l, job, "Normal", "Resumed", "Job resumed");
                }
                if (completions >= 0)
                        want = completions - jp.succeeded < parallelism ? completions - jp.succeeded
                                                                        : parallelism;
                else
                        want = jp.succeeded > 0 ? 0 : parallelism;
                if ((int64_t)jp.nactive < want) {
                        int64_t left = backoff_left(l, &jp, now);
                        if (left > 0) {
                                wake = left;
                        } else {
                                for (int64_t k = (int64_t)jp.nactive; k < want && rc == 0; k++) {
                                        rc = create_pod(l, job, key, err);
                                        if (rc == 0)
                                                jp.nactive++;
                                }
                        }
                } else if ((int64_t)jp.nactive > want) {
                        qsort(jp.active, jp.nactive, sizeof(*jp.active), pod_cmp_newest);
                        while ((int64_t)jp.nactive > want && rc == 0) {
                                rc = delete_pod(l, job, key, jp.active[0], err);
                                if (rc == 0) {
                                        memmove(jp.active, jp.active + 1,
                                                (jp.nactive - 1) * sizeof(*jp.active));
                                        jp.nactive--;
                                }
                        }
                }
                if (rc)
                        goto out;
                if (json_is_integer(json_object_get(spec, "activeDeadlineSeconds")) && start >= 0) {
                        int64_t left =
                                start + sw_json_int(spec, "activeDeadlineSeconds", 0) * 1000 - now;
                        if (wake < 0 || left < wake)
                                wake = left;
                }
        }

        st = json_pack("{s:I,s:I,s:I,s:I,s:O}", "active", (json_int_t)jp.nactive, "ready",
                       (json_int_t)jp.ready, "succeeded", (json_int_t)jp.succeeded, "failed",
                       (json_int_t)jp.failed, "conditions", conds);
        if (start >= 0) {
                orch_time_fmt(start_ts, sizeof(start_ts), start);
                json_object_set_new(st, "startTime",
                                    json_string(*sw_json_str(cur, "startTime", "")
                                                        ? sw_json_str(cur, "startTime", "")
                                                        : start_ts));
        }
        if (*done_ts)
                json_object_set_new(st, "completionTime", json_string(done_ts));
        else if (*sw_json_str(cur, "completionTime", ""))
                json_object_set_new(st, "completionTime",
                                    json_string(sw_json_str(cur, "completionTime", "")));
        if (json_array_size(conds) == 0)
                json_object_del(st, "conditions");
        {
                /* Write only what changed, so a quiet Job causes no watch traffic. */
                bool same = true;
                const char *k;
                json_t *v;
                json_object_foreach(st, k, v)
                {
                        if (!json_equal(v, json_object_get(cur, k)))
                                same = false;
                }
                if (!same)
                        rc = orch_ctrl_patch_status(l, "/apis/batch/v1", "jobs", ns, name, st, err);
        }
        if (rc == 0 && wake >= 0)
                orch_ctrl_queue_add_after(&l->q, key, wake + 50);
out:
        free(jp.active);
        json_decref(conds);
        json_decref(pods);
        json_decref(job);
        json_decref(st);
        free(ns);
        free(name);
        return rc;
}

void orch_ctrl_job_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        l->name = "job-controller";
        l->reconcile = job_reconcile;
        orch_informer_add_handler(&m->pods, job_on_pod, l);
        orch_informer_add_handler(&m->jobs, orch_ctrl_on_self, l);
}
