/*
 * ctrl_cronjob.c - the CronJob controller: creates a Job from
 * spec.jobTemplate at each time the schedule names (in spec.timeZone, UTC
 * by default), named "<cronjob>-<scheduled minutes since the epoch>" as the
 * real controller names them, so that a retried create can never start a
 * time twice.
 *
 * Only the most recent missed time is started, and not when it is older
 * than startingDeadlineSeconds. concurrencyPolicy Forbid skips a time while
 * a Job still runs (it starts late when the Job ends within the deadline),
 * Replace deletes the running Jobs first, Allow runs them side by side.
 * suspend stops new Jobs. Finished Jobs past successfulJobsHistoryLimit (3)
 * and failedJobsHistoryLimit (1) are deleted, oldest first. Status:
 * active (references to the running Jobs), lastScheduleTime,
 * lastSuccessfulTime.
 *
 * Tests may run the controller's clock faster (cron_time_scale) so that a
 * minute schedule fires every second; everything else runs on real time.
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

#define CJ_MISSED_MAX 100

struct cj_state {
        int64_t start_ms; /* real time when the loop began, the origin of a scaled clock */
};

static int64_t cj_now(const struct orch_ctrl_loop *l)
{
        const struct cj_state *s = l->state;
        int64_t now = sw_now_ms();

        return s->start_ms + (now - s->start_ms) * l->mgr->opts.cron_time_scale;
}

static void cj_on_job(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        (void)type;
        orch_ctrl_enqueue_owners(arg, obj, old, "CronJob");
}

/* "Complete", "Failed" or NULL while the Job runs. */
static const char *job_finished(const json_t *job)
{
        const json_t *c;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(job, "status"), "conditions"), i, c)
        {
                const char *type = sw_json_str(c, "type", "");
                if (strcmp(sw_json_str(c, "status", ""), "True") != 0)
                        continue;
                if (strcmp(type, "Complete") == 0)
                        return "Complete";
                if (strcmp(type, "Failed") == 0)
                        return "Failed";
        }
        return NULL;
}

static bool in_active(const json_t *status, const char *uid)
{
        const json_t *r;
        size_t i;

        json_array_foreach(json_object_get(status, "active"), i, r)
        {
                if (strcmp(sw_json_str(r, "uid", ""), uid) == 0)
                        return true;
        }
        return false;
}

static json_t *job_ref(const json_t *job)
{
        const json_t *md = json_object_get(job, "metadata");

        return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "apiVersion", "batch/v1", "kind", "Job",
                         "name", sw_json_str(md, "name", ""), "namespace",
                         sw_json_str(md, "namespace", ""), "uid", sw_json_str(md, "uid", ""),
                         "resourceVersion", sw_json_str(md, "resourceVersion", ""));
}

/* When a finished Job finished, for ordering the history (ms). */
static int64_t job_end(const json_t *job)
{
        const json_t *st = json_object_get(job, "status"), *c;
        int64_t t = orch_time_parse(sw_json_str(st, "completionTime", ""));
        size_t i;

        if (t >= 0)
                return t;
        json_array_foreach(json_object_get(st, "conditions"), i, c)
        {
                int64_t ct = orch_time_parse(sw_json_str(c, "lastTransitionTime", ""));
                if (ct > t)
                        t = ct;
        }
        if (t < 0)
                t = orch_time_parse(
                        sw_json_str(json_object_get(job, "metadata"), "creationTimestamp", ""));
        return t;
}

static int job_cmp_end(const void *a, const void *b)
{
        int64_t ta = job_end(*(json_t *const *)a), tb = job_end(*(json_t *const *)b);

        return ta < tb ? -1 : ta > tb;
}

static int delete_job(struct orch_ctrl_loop *l, const json_t *cj, const json_t *job,
                      struct sw_err *err)
{
        const json_t *md = json_object_get(job, "metadata");
        char *path = sw_xasprintf("/apis/batch/v1/namespaces/%s/jobs/%s",
                                  sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
        int rc = orch_kube_delete(l->kc, path, "Background", err);

        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = 0;
        }
        if (rc == 0)
                orch_ctrl_event(l, cj, "Normal", "SuccessfulDelete", "Deleted job %s",
                                sw_json_str(md, "name", ""));
        else
                orch_ctrl_event(l, cj, "Warning", "FailedDelete", "Deleted job: %s", err->msg);
        free(path);
        return rc;
}

/* Delete the oldest of `jobs` (finished ones of one kind) beyond `limit`. */
static int prune(struct orch_ctrl_loop *l, const json_t *cj, json_t **jobs, size_t n, int64_t limit,
                 struct sw_err *err)
{
        int rc = 0;

        if (limit < 0 || (int64_t)n <= limit)
                return 0;
        qsort(jobs, n, sizeof(*jobs), job_cmp_end);
        for (size_t i = 0; i < n - (size_t)limit && rc == 0; i++)
                rc = delete_job(l, cj, jobs[i], err);
        return rc;
}

static int create_job(json_t **out, struct orch_ctrl_loop *l, const json_t *cj, int64_t sched_ms,
                      struct sw_err *err)
{
        const json_t *md = json_object_get(cj, "metadata");
        const char *ns = sw_json_str(md, "namespace", ""), *cname = sw_json_str(md, "name", "");
        const json_t *tmpl = json_object_get(json_object_get(cj, "spec"), "jobTemplate");
        const json_t *tmd = json_object_get(tmpl, "metadata");
        json_t *job, *jmd, *ann, *created = NULL;
        char *name, *path, ts[32];
        int rc;

        if (!json_is_object(json_object_get(tmpl, "spec"))) {
                rc = sw_err_set(err, SW_EINVAL, "spec.jobTemplate.spec is missing");
                orch_ctrl_event(l, cj, "Warning", "FailedCreate", "Error creating job: %s",
                                err->msg);
                return rc;
        }
        name = sw_xasprintf("%s-%lld", cname, (long long)(sched_ms / 60000));
        orch_time_fmt(ts, sizeof(ts), sched_ms);
        ann = json_is_object(json_object_get(tmd, "annotations"))
                      ? sw_json_copy(json_object_get(tmd, "annotations"))
                      : json_object();
        json_object_set_new(ann, "batch.kubernetes.io/cronjob-scheduled-timestamp",
                            json_string(ts));
        jmd = json_pack("{s:s,s:s,s:o,s:[{s:s,s:s,s:s,s:s,s:b,s:b}]}", "name", name, "namespace",
                        ns, "annotations", ann, "ownerReferences", "apiVersion", "batch/v1", "kind",
                        "CronJob", "name", cname, "uid", sw_json_str(md, "uid", ""), "controller",
                        1, "blockOwnerDeletion", 1);
        if (json_object_get(tmd, "labels"))
                json_object_set_new(jmd, "labels", sw_json_copy(json_object_get(tmd, "labels")));
        job = json_pack("{s:s,s:s,s:o,s:O}", "apiVersion", "batch/v1", "kind", "Job", "metadata",
                        jmd, "spec", json_object_get(tmpl, "spec"));
        path = sw_xasprintf("/apis/batch/v1/namespaces/%s/jobs", ns);
        rc = orch_kube_request(&created, NULL, l->kc, "POST", path, NULL, job, err);
        if (rc == 0) {
                orch_ctrl_event(l, cj, "Normal", "SuccessfulCreate", "Created job %s", name);
                *out = created;
                created = NULL;
        } else if (rc != SW_EEXIST && rc != SW_ECONFLICT) {
                orch_ctrl_event(l, cj, "Warning", "FailedCreate", "Error creating job: %s",
                                err->msg);
        }
        json_decref(created);
        json_decref(job);
        free(path);
        free(name);
        return rc;
}

static int cj_reconcile(struct orch_ctrl_loop *l, const char *key, struct sw_err *err)
{
        char *ns = NULL, *name = NULL;
        json_t *cj = NULL, *jobs = NULL, *active = json_array(), *st = NULL;
        json_t **okjobs = NULL, **badjobs = NULL, *j;
        const json_t *spec, *cur, *md;
        struct orch_tz *tz = NULL;
        struct orch_cron sched;
        size_t i, nok = 0, nbad = 0;
        int64_t now, earliest, last_ok, t, due = -1, next, missed = 0, deadline = -1;
        const char *policy, *uid;
        char ts[32] = "";
        int rc = 0;

        orch_ctrl_key_split(key, &ns, &name);
        cj = orch_informer_get(&l->mgr->cronjobs, key);
        md = json_object_get(cj, "metadata");
        if (!cj || json_object_get(md, "deletionTimestamp"))
                goto out;
        spec = json_object_get(cj, "spec");
        cur = json_object_get(cj, "status");
        uid = sw_json_str(md, "uid", "");
        now = cj_now(l);
        last_ok = orch_time_parse(sw_json_str(cur, "lastSuccessfulTime", ""));

        /* The Jobs it owns: running ones are active, finished ones history. */
        jobs = orch_informer_list(&l->mgr->jobs, ns);
        okjobs = sw_xcalloc(json_array_size(jobs) + 1, sizeof(*okjobs));
        badjobs = sw_xcalloc(json_array_size(jobs) + 1, sizeof(*badjobs));
        json_array_foreach(jobs, i, j)
        {
                const json_t *ref = orch_ctrl_owner(j, "CronJob");
                const json_t *jmd = json_object_get(j, "metadata");
                const char *fin = job_finished(j);
                if (!ref || strcmp(sw_json_str(ref, "uid", ""), uid) != 0 ||
                    json_object_get(jmd, "deletionTimestamp"))
                        continue;
                if (!fin) {
                        json_array_append_new(active, job_ref(j));
                        continue;
                }
                if (in_active(cur, sw_json_str(jmd, "uid", "")))
                        orch_ctrl_event(l, cj, "Normal", "SawCompletedJob",
                                        "Saw completed job: %s, status: %s",
                                        sw_json_str(jmd, "name", ""), fin);
                if (strcmp(fin, "Complete") == 0) {
                        okjobs[nok++] = j;
                        if (job_end(j) > last_ok)
                                last_ok = job_end(j);
                } else {
                        badjobs[nbad++] = j;
                }
        }
        rc = prune(l, cj, okjobs, nok, sw_json_int(spec, "successfulJobsHistoryLimit", 3), err);
        if (rc == 0)
                rc = prune(l, cj, badjobs, nbad, sw_json_int(spec, "failedJobsHistoryLimit", 1),
                           err);
        if (rc)
                goto out;

        if (orch_tz_load(&tz, sw_json_str(spec, "timeZone", ""), err) != 0) {
                orch_ctrl_event(l, cj, "Warning", "UnknownTimeZone", "invalid timeZone: \"%s\": %s",
                                sw_json_str(spec, "timeZone", ""), err->msg);
                sw_err_clear(err);
                goto status;
        }
        if (orch_cron_parse(&sched, sw_json_str(spec, "schedule", ""), err) != 0) {
                orch_ctrl_event(l, cj, "Warning", "InvalidSchedule", "invalid schedule: %s : %s",
                                sw_json_str(spec, "schedule", ""), err->msg);
                sw_err_clear(err);
                goto status;
        }
        if (json_is_true(json_object_get(spec, "suspend")))
                goto status;

        /* The most recent unmet time, within the starting deadline. */
        earliest = orch_time_parse(sw_json_str(cur, "lastScheduleTime", ""));
        if (earliest < 0)
                earliest = orch_time_parse(sw_json_str(md, "creationTimestamp", ""));
        if (json_is_integer(json_object_get(spec, "startingDeadlineSeconds"))) {
                deadline = sw_json_int(spec, "startingDeadlineSeconds", 0) * 1000;
                if (earliest < now - deadline)
                        earliest = now - deadline;
        }
        for (t = orch_cron_next(&sched, tz, earliest); t >= 0 && t <= now;
             t = orch_cron_next(&sched, tz, t)) {
                due = t;
                if (++missed > CJ_MISSED_MAX) {
                        /* Too far behind: start from the newest time below now. */
                        t = orch_cron_next(&sched, tz, now - 60000);
                        due = t >= 0 && t <= now ? t : due;
                        orch_ctrl_event(l, cj, "Warning", "TooManyMissedTimes",
                                        "too many missed start times: %lld. Set or decrease "
                                        ".spec.startingDeadlineSeconds or check clock skew",
                                        (long long)missed);
                        break;
                }
        }
        next = orch_cron_next(&sched, tz, now);
        policy = sw_json_str(spec, "concurrencyPolicy", "Allow");
        if (due >= 0 && json_array_size(active) > 0 && strcmp(policy, "Forbid") == 0) {
                orch_ctrl_event(l, cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid");
                due = -1; /* the Job's end requeues this key */
        }
        if (due >= 0 && json_array_size(active) > 0 && strcmp(policy, "Replace") == 0) {
                json_array_foreach(jobs, i, j)
                {
                        const char *juid = sw_json_str(json_object_get(j, "metadata"), "uid", "");
                        bool running = false;
                        const json_t *r;
                        size_t k;
                        json_array_foreach(active, k, r)
                        {
                                if (strcmp(sw_json_str(r, "uid", ""), juid) == 0)
                                        running = true;
                        }
                        if (running && (rc = delete_job(l, cj, j, err)) != 0)
                                goto out;
                }
                json_array_clear(active);
        }
        if (due >= 0) {
                json_t *created = NULL;
                rc = create_job(&created, l, cj, due, err);
                if (rc == SW_EEXIST || rc == SW_ECONFLICT) {
                        sw_err_clear(err); /* made before; the informer shows it */
                        rc = 0;
                }
                if (rc)
                        goto out;
                if (created)
                        json_array_append_new(active, job_ref(created));
                json_decref(created);
                orch_time_fmt(ts, sizeof(ts), due);
        }
        if (next >= 0) {
                int64_t wait = (next - now) / l->mgr->opts.cron_time_scale;
                orch_ctrl_queue_add_after(&l->q, key, wait + 100);
        }

status:
        st = json_pack("{s:O}", "active", json_array_size(active) ? active : json_null());
        if (due >= 0)
                json_object_set_new(st, "lastScheduleTime", json_string(ts));
        if (last_ok >= 0) {
                char okts[32];
                orch_time_fmt(okts, sizeof(okts), last_ok);
                json_object_set_new(st, "lastSuccessfulTime", json_string(okts));
        }
        {
                bool same = true;
                const char *k;
                json_t *v;
                json_object_foreach(st, k, v)
                {
                        const json_t *was = json_object_get(cur, k);
                        if (json_is_null(v) ? was != NULL && json_array_size(was) > 0
                                            : !json_equal(v, was))
                                same = false;
                }
                if (!same)
                        rc = orch_ctrl_patch_status(l, "/apis/batch/v1", "cronjobs", ns, name, st,
                                                    err);
        }
out:
        orch_tz_free(tz);
        free(okjobs);
        free(badjobs);
        json_decref(jobs);
        json_decref(active);
        json_decref(cj);
        json_decref(st);
        free(ns);
        free(name);
        return rc;
}

static void cj_state_free(void *s)
{
        free(s);
}

void orch_ctrl_cronjob_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        struct cj_state *s = sw_xcalloc(1, sizeof(*s));

        s->start_ms = sw_now_ms();
        l->name = "cronjob-controller";
        l->reconcile = cj_reconcile;
        l->state = s;
        l->state_free = cj_state_free;
        orch_informer_add_handler(&m->jobs, cj_on_job, l);
        orch_informer_add_handler(&m->cronjobs, orch_ctrl_on_self, l);
}
