/*
 * deploy.c - the `deploy` step: server-side apply, then wait for the rollout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "steps/deploy.h"
#include "steps/steps.h"
#include "common/banned.h"

#define POLL_MS 500
/* Give up before the deadline when a pod has been failing this long in a way that will not heal. */
#define PULL_FAIL_GRACE_MS 60000
#define CRASH_RESTARTS 3

int step_deploy_client(struct orch_kube **out, const struct sw_config *cfg, struct sw_err *err)
{
        char *path = cfg->kubeconfig ? sw_xstrdup(cfg->kubeconfig)
                                     : sw_xasprintf("%s/kubeconfig", cfg->data);
        int rc;

        if (access(path, R_OK) != 0) {
                rc = sw_err_set(err, cfg->kubeconfig ? SW_EINVAL : SW_EUNAVAIL,
                                "no cluster to deploy to: '%s' does not exist (run `slipway "
                                "serve`, or set SLIPWAY_KUBECONFIG to a cluster's kubeconfig)",
                                path);
                free(path);
                return rc;
        }
        rc = orch_kube_from_kubeconfig(out, path, NULL, err);
        free(path);
        return rc;
}

int step_deploy_apply(struct orch_kube *kube, const json_t *docs, int *applied_out,
                      struct sw_err *err)
{
        const json_t *doc;
        size_t i;
        int n = 0;

        json_array_foreach(docs, i, doc)
        {
                const json_t *meta = json_object_get(doc, "metadata");
                int rc = orch_kube_apply(NULL, kube, doc, "slipway", true, err);
                if (rc)
                        return sw_err_wrap(err, "apply %s %s", sw_json_str(doc, "kind", ""),
                                           sw_json_str(meta, "name", ""));
                n++;
        }
        if (applied_out)
                *applied_out = n;
        return 0;
}

static void url_escape(struct sw_buf *b, const char *s)
{
        struct sw_err ignored = SW_ERR_INIT;

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    strchr("-_.~", c))
                        sw_buf_putc(b, (char)c, &ignored);
                else
                        sw_buf_printf(b, &ignored, "%%%02X", c);
        }
}

/* "a=b,c=d" from spec.selector.matchLabels, URL-escaped. */
static char *selector_query(const json_t *deploy)
{
        const json_t *labels = json_object_get(
                json_object_get(json_object_get(deploy, "spec"), "selector"), "matchLabels");
        struct sw_buf b, sel;
        struct sw_err ignored = SW_ERR_INIT;
        const char *k;
        const json_t *v;

        sw_buf_init(&sel, 4096);
        json_object_foreach((json_t *)labels, k, v)
        {
                sw_buf_printf(&sel, &ignored, "%s%s=%s", sel.len ? "," : "", k,
                              json_string_value(v) ? json_string_value(v) : "");
        }
        sw_buf_init(&b, 8192);
        url_escape(&b, sw_buf_str(&sel));
        sw_buf_release(&sel);
        return sw_buf_detach(&b, NULL);
}

static const json_t *condition(const json_t *status, const char *type)
{
        const json_t *c;
        size_t i;

        json_array_foreach(json_object_get(status, "conditions"), i, c)
        {
                if (!strcmp(sw_json_str(c, "type", ""), type))
                        return c;
        }
        return NULL;
}

/* Why the app's pods are not ready; *fatal when waiting longer will not help. */
static char *diagnose(struct orch_kube *kube, const char *ns, const json_t *deploy, bool *fatal,
                      int64_t waited_ms)
{
        char *sel = selector_query(deploy);
        char *path = sw_xasprintf("/api/v1/namespaces/%s/pods?labelSelector=%s", ns, sel);
        struct sw_err err = SW_ERR_INIT;
        json_t *list = NULL;
        const json_t *pod;
        size_t i;
        char *why = NULL;

        *fatal = false;
        if (orch_kube_get(&list, kube, path, &err) != 0)
                goto out;
        json_array_foreach(json_object_get(list, "items"), i, pod)
        {
                const json_t *meta = json_object_get(pod, "metadata");
                const json_t *status = json_object_get(pod, "status");
                const json_t *sched = condition(status, "PodScheduled");
                const char *pname = sw_json_str(meta, "name", "");
                const json_t *cs;
                size_t k;

                if (sched && !strcmp(sw_json_str(sched, "status", ""), "False")) {
                        why = sw_xasprintf(
                                "pod %s is Pending: %s", pname,
                                sw_json_str(sched, "message", sw_json_str(sched, "reason", "")));
                        break;
                }
                json_array_foreach(json_object_get(status, "containerStatuses"), k, cs)
                {
                        const json_t *waiting =
                                json_object_get(json_object_get(cs, "state"), "waiting");
                        const char *reason = sw_json_str(waiting, "reason", "");
                        const char *msg = sw_json_str(waiting, "message", "");
                        if (!strcmp(reason, "ImagePullBackOff") ||
                            !strcmp(reason, "ErrImagePull") ||
                            !strcmp(reason, "InvalidImageName")) {
                                why = sw_xasprintf("pod %s: %s: %s", pname, reason, msg);
                                *fatal = waited_ms > PULL_FAIL_GRACE_MS ||
                                         !strcmp(reason, "InvalidImageName");
                        } else if (!strcmp(reason, "CrashLoopBackOff")) {
                                char *logs = NULL;
                                char *lp = sw_xasprintf(
                                        "/api/v1/namespaces/%s/pods/%s/log?container=%s&previous="
                                        "true&tailLines=20",
                                        ns, pname, sw_json_str(cs, "name", ""));
                                struct sw_err lerr = SW_ERR_INIT;
                                if (orch_kube_get_text(&logs, kube, lp, &lerr) != 0)
                                        logs = sw_xasprintf("(no logs: %s)", lerr.msg);
                                why = sw_xasprintf(
                                        "pod %s: CrashLoopBackOff after %lld "
                                        "restarts; last log lines:\n%s",
                                        pname, (long long)sw_json_int(cs, "restartCount", 0), logs);
                                *fatal = sw_json_int(cs, "restartCount", 0) >= CRASH_RESTARTS;
                                free(logs);
                                free(lp);
                        }
                        if (why)
                                break;
                }
                if (why)
                        break;
        }
out:
        json_decref(list);
        free(path);
        free(sel);
        return why;
}

int step_deploy_wait(struct orch_kube *kube, const char *ns, const char *name, int64_t timeout_ms,
                     atomic_int *stop, void (*progress)(void *arg, const char *line), void *arg,
                     struct sw_err *err)
{
        char *path = sw_xasprintf("/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
        int64_t t0 = sw_mono_ms(), last_diag = 0;
        char last[256] = "";
        int rc;

        for (;;) {
                json_t *d = NULL;
                const json_t *spec, *status, *prog;
                int64_t gen, observed, want, updated, replicas, available;
                char line[256];
                bool fatal = false;

                if (stop && atomic_load(stop)) {
                        rc = sw_err_set(err, SW_ECANCELED, "stopped while waiting for the rollout");
                        break;
                }
                rc = orch_kube_get(&d, kube, path, err);
                if (rc)
                        break;
                spec = json_object_get(d, "spec");
                status = json_object_get(d, "status");
                gen = sw_json_int(json_object_get(d, "metadata"), "generation", 0);
                observed = sw_json_int(status, "observedGeneration", 0);
                want = sw_json_int(spec, "replicas", 1);
                updated = sw_json_int(status, "updatedReplicas", 0);
                replicas = sw_json_int(status, "replicas", 0);
                available = sw_json_int(status, "availableReplicas", 0);
                prog = condition(status, "Progressing");

                if (observed < gen)
                        snprintf(line, sizeof(line),
                                 "waiting for the deployment controller to "
                                 "observe generation %lld",
                                 (long long)gen);
                else if (updated < want)
                        snprintf(line, sizeof(line), "%lld of %lld new replicas updated",
                                 (long long)updated, (long long)want);
                else if (replicas > updated)
                        snprintf(line, sizeof(line), "%lld old replicas pending termination",
                                 (long long)(replicas - updated));
                else if (available < updated)
                        snprintf(line, sizeof(line), "%lld of %lld updated replicas available",
                                 (long long)available, (long long)updated);
                else
                        line[0] = '\0';
                if (!line[0]) {
                        if (progress)
                                progress(arg, "rollout complete");
                        json_decref(d);
                        rc = 0;
                        break;
                }
                if (progress && strcmp(line, last) != 0)
                        progress(arg, line);
                snprintf(last, sizeof(last), "%s", line);
                if (prog && !strcmp(sw_json_str(prog, "reason", ""), "ProgressDeadlineExceeded")) {
                        char *why = diagnose(kube, ns, d, &fatal, sw_mono_ms() - t0);
                        rc = sw_err_set(err, SW_EFAILED,
                                        "deployment %s/%s exceeded its progress "
                                        "deadline: %s",
                                        ns, name, why ? why : sw_json_str(prog, "message", ""));
                        free(why);
                        json_decref(d);
                        break;
                }
                if (sw_mono_ms() - last_diag > 2000 || sw_mono_ms() - t0 > timeout_ms) {
                        char *why = diagnose(kube, ns, d, &fatal, sw_mono_ms() - t0);
                        last_diag = sw_mono_ms();
                        if (why && (fatal || sw_mono_ms() - t0 > timeout_ms)) {
                                rc = sw_err_set(err, SW_EFAILED, "rollout of %s/%s failed: %s", ns,
                                                name, why);
                                free(why);
                                json_decref(d);
                                break;
                        }
                        free(why);
                }
                json_decref(d);
                if (sw_mono_ms() - t0 > timeout_ms) {
                        rc = sw_err_set(err, SW_ETIMEDOUT,
                                        "rollout of %s/%s did not finish in %llds: %s", ns, name,
                                        (long long)(timeout_ms / 1000), line);
                        break;
                }
                sw_sleep_ms(POLL_MS);
        }
        free(path);
        return rc;
}

/* ---- the pipeline step ---- */

static void log_progress(void *arg, const char *line)
{
        eng_step_log(arg, "rollout: %s", line);
}

/*
 * The rollout failed (err holds why): put the last good
 * release back. The job fails either way (SW_EFAILED, permanent: running the
 * broken release again would only fail again), saying what was rolled back
 * to, or why the rollback did not happen.
 */
static int step_deploy_roll_back(struct eng_step_ctx *ctx, struct orch_kube *kube,
                                 const json_t *meta, struct sw_err *err)
{
        const char *ns = sw_json_str(meta, "namespace", "default");
        const char *name = sw_json_str(meta, "name", "");
        struct step_release rel = {0};
        struct sw_err rerr = SW_ERR_INIT;
        char why[SW_ERR_MSG_MAX];
        int rc;

        snprintf(why, sizeof(why), "%s", err->msg);
        if (eng_step_config(ctx)->pdns_api_key)
                eng_step_add_secret(ctx, eng_step_config(ctx)->pdns_api_key);
        eng_step_log(ctx, "rollout failed: %s", why);
        rc = step_release_rollback(&rel, kube, eng_step_config(ctx), ns, name,
                                   eng_step_stop_flag(ctx), log_progress, ctx, &rerr);
        sw_err_clear(err);
        if (rc == 0) {
                eng_step_log(ctx, "rolled back to the release of job %lld (%s)",
                             (long long)rel.job_id, rel.image);
                rc = sw_err_set(err, SW_EFAILED, "%s; rolled back to the release of job %lld (%s)",
                                why, (long long)rel.job_id, rel.image);
        } else {
                eng_step_log(ctx, "no rollback: %s", rerr.msg);
                rc = sw_err_set(err, SW_EFAILED, "%s; not rolled back: %s", why, rerr.msg);
        }
        step_release_clear(&rel);
        return rc;
}

static int step_deploy_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const json_t *render = eng_step_output(ctx, "render");
        const json_t *docs = json_object_get(render, "documents");
        const json_t *doc, *deploy = NULL;
        struct orch_kube *kube = NULL;
        const struct sw_config *cfg = eng_step_config(ctx);
        size_t i;
        int applied = 0, rc;

        if (!json_is_array(docs))
                return sw_err_set(err, SW_EINVAL,
                                  "no rendered documents (the render step did "
                                  "not run)");
        json_array_foreach(docs, i, doc)
        {
                if (!strcmp(sw_json_str(doc, "kind", ""), "Deployment"))
                        deploy = doc;
        }
        rc = step_deploy_client(&kube, cfg, err);
        if (rc)
                return rc;
        eng_step_log(ctx, "applying %zu documents to %s", json_array_size(docs),
                     orch_kube_server(kube));
        rc = step_deploy_apply(kube, docs, &applied, err);
        if (rc == 0 && deploy) {
                const json_t *meta = json_object_get(deploy, "metadata");
                rc = step_deploy_wait(kube, sw_json_str(meta, "namespace", "default"),
                                      sw_json_str(meta, "name", ""), cfg->rollout_timeout_ms,
                                      eng_step_stop_flag(ctx), log_progress, ctx, err);
                if (rc == 0)
                        *output = json_pack("{s:i,s:s,s:s}", "applied", applied, "namespace",
                                            sw_json_str(meta, "namespace", "default"), "deployment",
                                            sw_json_str(meta, "name", ""));
                else if (rc != SW_ECANCELED && cfg->auto_rollback)
                        rc = step_deploy_roll_back(ctx, kube, meta, err);
        } else if (rc == 0) {
                *output = json_pack("{s:i}", "applied", applied);
        }
        orch_kube_free(kube);
        return rc;
}

const struct eng_step_def step_deploy_def = {
        .name = "deploy",
        .summary = "apply the documents and wait for the rollout",
        .run = step_deploy_run,
};
