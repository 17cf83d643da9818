/*
 * ctrl_deploy.c - the Deployment controller: one ReplicaSet per pod
 * template (label pod-template-hash, annotation
 * deployment.kubernetes.io/revision), RollingUpdate within maxSurge and
 * maxUnavailable (ints or percentages), Recreate, revisionHistoryLimit,
 * and a status that `kubectl rollout status` understands (observedGeneration,
 * replica counts, conditions Available and Progressing with
 * progressDeadlineSeconds).
 *
 * `kubectl rollout undo` copies an old ReplicaSet's template back into the
 * Deployment; that template hashes to the old ReplicaSet again, which then
 * becomes the new one with the next revision number.
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

#define REV_ANN "deployment.kubernetes.io/revision"
#define HASH_LABEL "pod-template-hash"

static void d_on_rs(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        const json_t *ref = orch_ctrl_owner(obj, "Deployment");
        char *key;

        (void)type;
        (void)old;
        if (!ref)
                return;
        key = sw_xasprintf("%s/%s", sw_json_str(json_object_get(obj, "metadata"), "namespace", ""),
                           sw_json_str(ref, "name", ""));
        orch_ctrl_queue_add(&l->q, key);
        free(key);
}

/* FNV-1a of the canonical template, spelled with Kubernetes' safe alphabet. */
static void template_hash(char *out, size_t size, const json_t *tmpl)
{
        static const char alnum[] = "bcdfghjklmnpqrstvwxz2456789";
        char *text = json_dumps(tmpl, JSON_COMPACT | JSON_SORT_KEYS);
        uint32_t h = 2166136261u;
        size_t i = 0;

        for (const char *p = text; p && *p; p++) {
                h ^= (unsigned char)*p;
                h *= 16777619u;
        }
        free(text);
        do {
                out[i++] = alnum[h % (sizeof(alnum) - 1)];
                h /= (sizeof(alnum) - 1);
        } while (h && i + 1 < size);
        out[i] = '\0';
}

/* An int-or-percent of `total`, rounded up or down. */
static int64_t int_or_percent(const json_t *v, int64_t total, int64_t def_pct, bool round_up)
{
        int64_t pct = def_pct;

        if (json_is_integer(v))
                return json_integer_value(v);
        if (json_is_string(v)) {
                char *end = NULL;
                pct = strtoll(json_string_value(v), &end, 10);
                if (!end || *end != '%')
                        return 0;
        }
        return round_up ? (pct * total + 99) / 100 : pct * total / 100;
}

static int64_t rs_spec(const json_t *rs)
{
        return sw_json_int(json_object_get(rs, "spec"), "replicas", 0);
}

static int64_t rs_stat(const json_t *rs, const char *f)
{
        return sw_json_int(json_object_get(rs, "status"), f, 0);
}

static int64_t rs_rev(const json_t *rs)
{
        const json_t *ann = json_object_get(json_object_get(rs, "metadata"), "annotations");
        return strtoll(sw_json_str(ann, REV_ANN, "0"), NULL, 10);
}

static int scale_rs(struct orch_ctrl_loop *l, const json_t *d, const json_t *rs, int64_t n,
                    const char *rev, struct sw_err *err)
{
        const json_t *md = json_object_get(rs, "metadata");
        char *path = sw_xasprintf("/apis/apps/v1/namespaces/%s/replicasets/%s",
                                  sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
        json_t *patch = json_pack("{s:{s:I}}", "spec", "replicas", (json_int_t)n);
        int rc;

        if (rev)
                json_object_set_new(patch, "metadata",
                                    json_pack("{s:{s:s}}", "annotations", REV_ANN, rev));
        rc = orch_ctrl_patch(NULL, l, path, patch, err);
        if (rc == 0 && n != rs_spec(rs))
                orch_ctrl_event(l, d, "Normal", "ScalingReplicaSet",
                                "Scaled %s replica set %s from %lld to %lld",
                                n > rs_spec(rs) ? "up" : "down", sw_json_str(md, "name", ""),
                                (long long)rs_spec(rs), (long long)n);
        json_decref(patch);
        free(path);
        return rc;
}

static int create_rs(json_t **out, struct orch_ctrl_loop *l, const json_t *d, const char *ns,
                     const char *dname, const char *hash, int64_t replicas, int64_t rev,
                     struct sw_err *err)
{
        const json_t *spec = json_object_get(d, "spec");
        json_t *tmpl = sw_json_copy(json_object_get(spec, "template"));
        json_t *sel = sw_json_copy(json_object_get(spec, "selector"));
        json_t *tmd, *labels, *rs, *ml;
        char *name = sw_xasprintf("%s-%s", dname, hash), *path, revs[24];
        int rc;

        tmd = json_object_get(tmpl, "metadata");
        if (!tmd) {
                tmd = json_object();
                json_object_set_new(tmpl, "metadata", tmd);
        }
        labels = json_object_get(tmd, "labels");
        if (!labels) {
                labels = json_object();
                json_object_set_new(tmd, "labels", labels);
        }
        json_object_set_new(labels, HASH_LABEL, json_string(hash));
        if (!sel)
                sel = json_object();
        ml = json_object_get(sel, "matchLabels");
        if (!ml) {
                ml = json_object();
                json_object_set_new(sel, "matchLabels", ml);
        }
        json_object_set_new(ml, HASH_LABEL, json_string(hash));
        snprintf(revs, sizeof(revs), "%lld", (long long)rev);
        rs = json_pack("{s:s,s:s,s:{s:s,s:s,s:O,s:{s:s},s:[{s:s,s:s,s:s,s:s,s:b,s:b}]},"
                       "s:{s:I,s:I,s:o,s:o}}",
                       "apiVersion", "apps/v1", "kind", "ReplicaSet", "metadata", "name", name,
                       "namespace", ns, "labels", labels, "annotations", REV_ANN, revs,
                       "ownerReferences", "apiVersion", "apps/v1", "kind", "Deployment", "name",
                       dname, "uid", sw_json_str(json_object_get(d, "metadata"), "uid", ""),
                       "controller", 1, "blockOwnerDeletion", 1, "spec", "replicas",
                       (json_int_t)replicas, "minReadySeconds",
                       (json_int_t)sw_json_int(spec, "minReadySeconds", 0), "selector", sel,
                       "template", tmpl);
        path = sw_xasprintf("/apis/apps/v1/namespaces/%s/replicasets", ns);
        rc = orch_kube_request(out, NULL, l->kc, "POST", path, NULL, rs, err);
        if (rc == 0)
                orch_ctrl_event(l, d, "Normal", "ScalingReplicaSet",
                                "Scaled up replica set %s from 0 to %lld", name,
                                (long long)replicas);
        json_decref(rs);
        free(path);
        free(name);
        return rc;
}

static json_t *condition(const json_t *old_conds, const char *type, const char *status,
                         const char *reason, const char *msg, int64_t now, bool touch)
{
        const json_t *c, *old = NULL;
        char ts[32];
        size_t i;
        json_t *out;

        json_array_foreach(old_conds, i, c)
        {
                if (strcmp(sw_json_str(c, "type", ""), type) == 0)
                        old = c;
        }
        orch_time_fmt(ts, sizeof(ts), now);
        out = json_pack("{s:s,s:s,s:s,s:s}", "type", type, "status", status, "reason", reason,
                        "message", msg);
        if (old && strcmp(sw_json_str(old, "status", ""), status) == 0) {
                json_object_set_new(out, "lastTransitionTime",
                                    json_string(sw_json_str(old, "lastTransitionTime", ts)));
                json_object_set_new(
                        out, "lastUpdateTime",
                        json_string(touch || strcmp(sw_json_str(old, "reason", ""), reason)
                                            ? ts
                                            : sw_json_str(old, "lastUpdateTime", ts)));
        } else {
                json_object_set_new(out, "lastTransitionTime", json_string(ts));
                json_object_set_new(out, "lastUpdateTime", json_string(ts));
        }
        return out;
}

static int cmp_rev(const void *a, const void *b)
{
        int64_t ra = rs_rev(*(json_t *const *)a), rb = rs_rev(*(json_t *const *)b);
        return ra < rb ? -1 : ra > rb;
}

static int d_reconcile(struct orch_ctrl_loop *l, const char *key, struct sw_err *err)
{
        char *ns = NULL, *name = NULL, *path = NULL, hash[16], revs[24];
        json_t *d = NULL, *all = NULL, *r, *newrs = NULL, *created = NULL, *st = NULL;
        json_t **old = NULL;
        int64_t *ospec = NULL;
        const json_t *spec, *strat, *dmd, *conds;
        size_t i, nold = 0;
        int64_t desired, max_rev = 0, surge, unavail, total = 0, now = sw_now_ms();
        int64_t ready = 0, avail = 0, replicas = 0, updated = 0, deadline_s;
        bool recreate, progressed = false;
        const char *uid;
        int rc = 0;

        orch_ctrl_key_split(key, &ns, &name);
        d = orch_informer_get(&l->mgr->deploys, key);
        if (!d)
                goto out;
        dmd = json_object_get(d, "metadata");
        if (json_object_get(dmd, "deletionTimestamp"))
                goto out;
        spec = json_object_get(d, "spec");
        strat = json_object_get(spec, "strategy");
        recreate = strcmp(sw_json_str(strat, "type", "RollingUpdate"), "Recreate") == 0;
        desired = sw_json_int(spec, "replicas", 1);
        deadline_s = sw_json_int(spec, "progressDeadlineSeconds", 600);
        uid = sw_json_str(dmd, "uid", "");
        template_hash(hash, sizeof(hash), json_object_get(spec, "template"));
        all = orch_informer_list(&l->mgr->rsets, ns);
        old = sw_xcalloc(json_array_size(all) + 1, sizeof(*old));
        json_array_foreach(all, i, r)
        {
                const json_t *ref = orch_ctrl_owner(r, "Deployment");
                const json_t *lab = json_object_get(json_object_get(r, "metadata"), "labels");
                if (!ref || strcmp(sw_json_str(ref, "uid", ""), uid) != 0)
                        continue;
                if (rs_rev(r) > max_rev)
                        max_rev = rs_rev(r);
                total += rs_spec(r);
                if (strcmp(sw_json_str(lab, HASH_LABEL, ""), hash) == 0)
                        newrs = r;
                else
                        old[nold++] = r;
        }
        qsort(old, nold, sizeof(*old), cmp_rev);
        surge = int_or_percent(json_object_get(json_object_get(strat, "rollingUpdate"), "maxSurge"),
                               desired, 25, true);
        unavail = int_or_percent(
                json_object_get(json_object_get(strat, "rollingUpdate"), "maxUnavailable"), desired,
                25, false);
        if (surge == 0 && unavail == 0)
                unavail = 1;
        if (recreate) {
                surge = 0;
                unavail = desired;
        }

        if (!newrs) {
                int64_t start = desired;
                if (recreate) {
                        int64_t oldpods = 0;
                        for (size_t k = 0; k < nold; k++)
                                oldpods += rs_spec(old[k]) + rs_stat(old[k], "replicas");
                        start = oldpods ? 0 : desired;
                } else if (nold) {
                        start = desired + surge - total;
                        start = start < 0 ? 0 : start > desired ? desired : start;
                }
                /* The caches of different kinds lag independently: make sure the
                 * Deployment still exists before giving it a new ReplicaSet. */
                {
                        json_t *live = NULL;
                        free(path);
                        path = sw_xasprintf("/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
                        rc = orch_kube_get(&live, l->kc, path, err);
                        if (rc == 0 &&
                            (strcmp(sw_json_str(json_object_get(live, "metadata"), "uid", ""),
                                    uid) != 0 ||
                             json_object_get(json_object_get(live, "metadata"),
                                             "deletionTimestamp")))
                                rc = SW_ENOTFOUND;
                        json_decref(live);
                        if (rc == SW_ENOTFOUND) {
                                sw_err_clear(err);
                                rc = 0;
                                goto out;
                        }
                        if (rc)
                                goto out;
                }
                rc = create_rs(&created, l, d, ns, name, hash, start, max_rev + 1, err);
                if (rc == SW_ECONFLICT) {
                        sw_err_clear(err);
                        rc = 0; /* already there: the cache will show it */
                        orch_ctrl_queue_add_after(&l->q, key, 100);
                        goto out;
                }
                if (rc)
                        goto out;
                newrs = created;
                total += rs_spec(created);
                progressed = true;
        } else if (rs_rev(newrs) < max_rev || rs_rev(newrs) == 0) {
                /* a rollback to an older template: it becomes the newest revision */
                snprintf(revs, sizeof(revs), "%lld", (long long)max_rev + 1);
                rc = scale_rs(l, d, newrs, rs_spec(newrs), revs, err);
                if (rc)
                        goto out;
                progressed = true;
        }

        if (recreate) {
                bool old_gone = true;
                for (size_t k = 0; k < nold && rc == 0; k++) {
                        if (rs_spec(old[k]) > 0) {
                                rc = scale_rs(l, d, old[k], 0, NULL, err);
                                progressed = true;
                        }
                        if (rs_stat(old[k], "replicas") > 0)
                                old_gone = false;
                }
                if (rc == 0 && old_gone && rs_spec(newrs) != desired) {
                        rc = scale_rs(l, d, newrs, desired, NULL, err);
                        progressed = true;
                }
        } else {
                int64_t nspec = rs_spec(newrs), want = nspec;
                if (nspec > desired)
                        want = desired;
                else if (nspec < desired) {
                        want = nspec + (desired + surge - total);
                        if (want > desired)
                                want = desired;
                        if (want < nspec)
                                want = nspec;
                }
                if (want != nspec) {
                        rc = scale_rs(l, d, newrs, want, NULL, err);
                        total += want - nspec;
                        progressed = true;
                }
                if (rc == 0 && nold) {
                        int64_t min_avail = desired - unavail, avail_all = 0;
                        int64_t new_unavail = want - rs_stat(newrs, "availableReplicas");
                        int64_t max_down = total - min_avail - (new_unavail > 0 ? new_unavail : 0);
                        /* a scaled-down set's status may still count pods being deleted */
                        for (size_t k = 0; k < nold; k++) {
                                int64_t a = rs_stat(old[k], "availableReplicas");
                                avail_all += a < rs_spec(old[k]) ? a : rs_spec(old[k]);
                        }
                        avail_all += rs_stat(newrs, "availableReplicas");
                        /* first the old replicas that are not available anyway */
                        ospec = sw_xcalloc(nold, sizeof(*ospec));
                        for (size_t k = 0; k < nold; k++)
                                ospec[k] = rs_spec(old[k]);
                        for (size_t k = 0; k < nold && rc == 0 && max_down > 0; k++) {
                                int64_t bad = ospec[k] - rs_stat(old[k], "availableReplicas");
                                if (bad <= 0)
                                        continue;
                                if (bad > max_down)
                                        bad = max_down;
                                ospec[k] -= bad;
                                rc = scale_rs(l, d, old[k], ospec[k], NULL, err);
                                max_down -= bad;
                                progressed = true;
                        }
                        /* then available ones, down to minAvailable */
                        {
                                int64_t down = avail_all - min_avail;
                                if (down > max_down)
                                        down = max_down;
                                for (size_t k = 0; k < nold && rc == 0 && down > 0; k++) {
                                        int64_t s = ospec[k], x = s < down ? s : down;
                                        if (x <= 0)
                                                continue;
                                        rc = scale_rs(l, d, old[k], s - x, NULL, err);
                                        down -= x;
                                        progressed = true;
                                }
                        }
                }
        }
        if (rc)
                goto out;

        /* history: old ReplicaSets with nothing left, beyond revisionHistoryLimit */
        {
                int64_t limit = sw_json_int(spec, "revisionHistoryLimit", 10), idle = 0;
                for (size_t k = 0; k < nold; k++)
                        if (rs_spec(old[k]) == 0 && rs_stat(old[k], "replicas") == 0)
                                idle++;
                for (size_t k = 0; k < nold && idle > limit; k++) {
                        const json_t *md = json_object_get(old[k], "metadata");
                        if (rs_spec(old[k]) != 0 || rs_stat(old[k], "replicas") != 0)
                                continue;
                        free(path);
                        path = sw_xasprintf("/apis/apps/v1/namespaces/%s/replicasets/%s", ns,
                                            sw_json_str(md, "name", ""));
                        if (orch_kube_delete(l->kc, path, NULL, err) != 0)
                                sw_err_clear(err);
                        idle--;
                }
        }

        /* status */
        for (size_t k = 0; k < nold; k++) {
                replicas += rs_stat(old[k], "replicas");
                ready += rs_stat(old[k], "readyReplicas");
                avail += rs_stat(old[k], "availableReplicas");
        }
        replicas += rs_stat(newrs, "replicas");
        ready += rs_stat(newrs, "readyReplicas");
        avail += rs_stat(newrs, "availableReplicas");
        updated = rs_stat(newrs, "replicas");
        {
                const json_t *cur = json_object_get(d, "status");
                json_t *cl = json_array(), *patch;
                bool complete = updated == desired && replicas == desired && avail >= desired &&
                                rs_spec(newrs) == desired;
                const json_t *oldprog = NULL, *c;
                char msg[512];
                size_t j;

                conds = json_object_get(cur, "conditions");
                json_array_foreach(conds, j, c)
                {
                        if (strcmp(sw_json_str(c, "type", ""), "Progressing") == 0)
                                oldprog = c;
                }
                if (avail >= desired - unavail)
                        json_array_append_new(cl, condition(conds, "Available", "True",
                                                            "MinimumReplicasAvailable",
                                                            "Deployment has minimum availability.",
                                                            now, false));
                else
                        json_array_append_new(
                                cl,
                                condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                                          "Deployment does not have minimum availability.", now,
                                          false));
                snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" %s.",
                         sw_json_str(json_object_get(newrs, "metadata"), "name", ""),
                         complete ? "has successfully progressed" : "is progressing");
                if (complete) {
                        json_array_append_new(cl,
                                              condition(conds, "Progressing", "True",
                                                        "NewReplicaSetAvailable", msg, now, false));
                } else {
                        int64_t last = oldprog ? orch_time_parse(
                                                         sw_json_str(oldprog, "lastUpdateTime", ""))
                                               : now;
                        bool changed = sw_json_int(cur, "updatedReplicas", -1) != updated ||
                                       sw_json_int(cur, "availableReplicas", -1) != avail ||
                                       sw_json_int(cur, "observedGeneration", -1) !=
                                               sw_json_int(dmd, "generation", 1);
                        if (progressed || changed || !oldprog || last < 0 ||
                            strcmp(sw_json_str(oldprog, "reason", ""), "NewReplicaSetAvailable") ==
                                    0) {
                                json_array_append_new(cl, condition(conds, "Progressing", "True",
                                                                    "ReplicaSetUpdated", msg, now,
                                                                    true));
                                orch_ctrl_queue_add_after(&l->q, key, deadline_s * 1000 + 100);
                        } else if (last + deadline_s * 1000 <= now) {
                                snprintf(msg, sizeof(msg),
                                         "ReplicaSet \"%s\" has timed out progressing.",
                                         sw_json_str(json_object_get(newrs, "metadata"), "name",
                                                     ""));
                                json_array_append_new(cl, condition(conds, "Progressing", "False",
                                                                    "ProgressDeadlineExceeded", msg,
                                                                    now, false));
                                if (strcmp(sw_json_str(oldprog, "reason", ""),
                                           "ProgressDeadlineExceeded") != 0)
                                        orch_ctrl_event(l, d, "Warning", "ProgressDeadlineExceeded",
                                                        "%s", msg);
                        } else {
                                json_array_append_new(cl, sw_json_copy(oldprog));
                                orch_ctrl_queue_add_after(&l->q, key,
                                                          last + deadline_s * 1000 - now + 100);
                        }
                }
                st = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "observedGeneration",
                               (json_int_t)sw_json_int(dmd, "generation", 1), "replicas",
                               (json_int_t)replicas, "updatedReplicas", (json_int_t)updated,
                               "readyReplicas", (json_int_t)ready, "availableReplicas",
                               (json_int_t)avail, "unavailableReplicas",
                               (json_int_t)(replicas - avail > 0 ? replicas - avail : 0),
                               "conditions", cl);
                if (!json_equal(st, cur))
                        rc = orch_ctrl_patch_status(l, "/apis/apps/v1", "deployments", ns, name, st,
                                                    err);
                /* the Deployment carries its current revision, as kubectl shows it */
                snprintf(revs, sizeof(revs), "%lld", (long long)rs_rev(newrs));
                if (rc == 0 && created)
                        snprintf(revs, sizeof(revs), "%lld", (long long)max_rev + 1);
                if (rc == 0 &&
                    strcmp(sw_json_str(json_object_get(dmd, "annotations"), REV_ANN, ""), revs) !=
                            0 &&
                    strcmp(revs, "0") != 0) {
                        free(path);
                        path = sw_xasprintf("/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
                        patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", REV_ANN,
                                          revs);
                        rc = orch_ctrl_patch(NULL, l, path, patch, err);
                        json_decref(patch);
                }
                if (rc == SW_ENOTFOUND) {
                        sw_err_clear(err);
                        rc = 0;
                }
        }
out:
        free(ospec);
        free(old);
        json_decref(all);
        json_decref(created);
        json_decref(st);
        json_decref(d);
        free(path);
        free(ns);
        free(name);
        return rc;
}

void orch_ctrl_deploy_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        l->name = "deployment-controller";
        l->reconcile = d_reconcile;
        orch_informer_add_handler(&m->deploys, orch_ctrl_on_self, l);
        orch_informer_add_handler(&m->rsets, d_on_rs, l);
}
