/*
 * ctrl_rs.c - the ReplicaSet controller: creates and deletes pods so that
 * the pods a ReplicaSet controls match spec.replicas, preferring to delete
 * unscheduled, then not-ready, then the newest pods, and writes
 * status.replicas/readyReplicas/availableReplicas/observedGeneration.
 *
 * Pods it creates are waited for in the cache (expectations), so a stale
 * cache never doubles a scale-up. A large scale-up creates its pods from
 * a few threads at once (each with its own API client), as the API
 * server answers requests in parallel.
 */
#include <pthread.h>
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

#define RS_CREATORS 4      /* threads of a large scale-up */
#define RS_PARALLEL_MIN 16 /* fewer pods than this are created one by one */
#define RS_HOLD 32         /* creates a creator thread commits together */

static void rs_on_pod(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        (void)type;
        orch_ctrl_enqueue_owners(arg, obj, old, "ReplicaSet");
}

/*
 * Create one pod of `rs`; its name is appended to `created`. A taken name
 * (five random characters collide once in a while among tens of
 * thousands of pods) is drawn again, up to 8 times, as the API server does
 * for generateName.
 */
static int create_pod(struct orch_ctrl_loop *l, const json_t *rs, const char *ns,
                      const char *rsname, json_t *created, struct sw_err *err)
{
        const json_t *tmpl = json_object_get(json_object_get(rs, "spec"), "template");
        const json_t *tmd = json_object_get(tmpl, "metadata");
        char sfx[6], *name = NULL, *path;
        int rc;

        path = sw_xasprintf("/api/v1/namespaces/%s/pods", ns);
        for (int attempt = 0;; attempt++) {
                /* Made anew each time: the API server in this process keeps what it is given. */
                json_t *md = json_pack("{s:s,s:[{s:s,s:s,s:s,s:s,s:b,s:b}]}", "namespace", ns,
                                       "ownerReferences", "apiVersion", "apps/v1", "kind",
                                       "ReplicaSet", "name", rsname, "uid",
                                       sw_json_str(json_object_get(rs, "metadata"), "uid", ""),
                                       "controller", 1, "blockOwnerDeletion", 1);
                if (json_object_get(tmd, "labels"))
                        json_object_set_new(md, "labels",
                                            sw_json_copy(json_object_get(tmd, "labels")));
                if (json_object_get(tmd, "annotations"))
                        json_object_set_new(md, "annotations",
                                            sw_json_copy(json_object_get(tmd, "annotations")));
                orch_name_suffix(sfx, 5);
                free(name);
                name = sw_xasprintf("%s-%s", rsname, sfx);
                json_object_set_new(md, "name", json_string(name));
                rc = orch_kube_request_give(NULL, NULL, l->kc, "POST", path, NULL,
                                            json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "v1",
                                                      "kind", "Pod", "metadata", md, "spec",
                                                      sw_json_copy(json_object_get(tmpl, "spec"))),
                                            err);
                if (rc != SW_ECONFLICT || attempt == 7)
                        break;
                sw_err_clear(err);
        }
        if (rc == 0) {
                json_array_append_new(created, json_string(name));
                orch_ctrl_event(l, rs, "Normal", "SuccessfulCreate", "Created pod: %s", name);
        } else {
                orch_ctrl_event(l, rs, "Warning", "FailedCreate", "Error creating: %s", err->msg);
        }
        free(path);
        free(name);
        return rc;
}

/* One of the threads a large scale-up creates its pods with. */
struct rs_creator {
        struct orch_ctrl_loop *l;
        const json_t *rs;
        const char *ns, *rsname;
        int64_t count;
        json_t *created;
        int rc;
        struct sw_err err;
        pthread_t th;
};

static void *rs_creator_main(void *arg)
{
        struct rs_creator *c = arg;
        struct orch_ctrl_loop self;

        /* A loop's client belongs to its thread: this one gets its own. */
        memset(&self, 0, sizeof(self));
        self.name = c->l->name;
        self.mgr = c->l->mgr;
        c->rc = orch_ctrl_client(&self.kc, c->l->mgr, &c->err);
        for (int64_t k = 0; k < c->count && c->rc == 0;) {
                size_t before = json_array_size(c->created);
                orch_kube_hold(self.kc);
                for (int h = 0; h < RS_HOLD && k < c->count && c->rc == 0; h++, k++)
                        c->rc = create_pod(&self, c->rs, c->ns, c->rsname, c->created, &c->err);
                if (orch_kube_release(self.kc, &c->err) != 0) {
                        /* Not committed: these pods do not exist, and none is expected. */
                        c->rc = c->err.code;
                        while (json_array_size(c->created) > before)
                                json_array_remove(c->created, before);
                }
        }
        orch_kube_free(self.kc);
        return NULL;
}

/*
 * Create `count` pods of `rs`: one by one when few, else spread over
 * RS_CREATORS threads, each with its own API client, since every create
 * is a round trip to the API server. Expectations are recorded for every
 * pod created, also when some creates failed; the first error wins.
 */
static int create_pods(struct orch_ctrl_loop *l, const json_t *rs, const char *ns,
                       const char *rsname, int64_t count, struct sw_err *err)
{
        struct rs_creator cs[RS_CREATORS];
        json_t *created = json_array(), *v;
        char *key = sw_xasprintf("%s/%s", ns, rsname);
        int n = count < RS_PARALLEL_MIN ? 0 : RS_CREATORS, started = 0, rc = 0;
        size_t i;

        if (n == 0) {
                for (int64_t k = 0; k < count && rc == 0; k++)
                        rc = create_pod(l, rs, ns, rsname, created, err);
        } else {
                memset(cs, 0, sizeof(cs));
                for (int t = 0; t < n; t++) {
                        cs[t].l = l;
                        cs[t].rs = rs;
                        cs[t].ns = ns;
                        cs[t].rsname = rsname;
                        cs[t].count = count / n + (t < count % n ? 1 : 0);
                        cs[t].created = json_array();
                }
                for (; started < n; started++)
                        if (pthread_create(&cs[started].th, NULL, rs_creator_main, &cs[started]) !=
                            0)
                                break;
                for (int t = 0; t < n; t++) {
                        if (t < started)
                                pthread_join(cs[t].th, NULL);
                        else
                                rs_creator_main(&cs[t]);
                        json_array_extend(created, cs[t].created);
                        json_decref(cs[t].created);
                        if (cs[t].rc && !rc)
                                rc = sw_err_set(err, cs[t].rc, "%s", cs[t].err.msg);
                }
        }
        json_array_foreach(created, i, v)
        {
                orch_ctrl_expect(l, key, json_string_value(v), true);
        }
        json_decref(created);
        free(key);
        return rc;
}

/* Deletion order: unscheduled, pending, not ready, then the newest first. */
static int pod_rank(const json_t *p)
{
        const json_t *st = json_object_get(p, "status");

        if (!*sw_json_str(json_object_get(p, "spec"), "nodeName", ""))
                return 0;
        if (strcmp(sw_json_str(st, "phase", ""), "Running") != 0)
                return 1;
        if (!orch_ctrl_pod_ready(p, 0, 0, NULL))
                return 2;
        return 3;
}

static int pod_cmp_delete(const void *a, const void *b)
{
        const json_t *pa = *(json_t *const *)a, *pb = *(json_t *const *)b;
        int ra = pod_rank(pa), rb = pod_rank(pb);

        if (ra != rb)
                return ra - rb;
        /* newer (larger timestamp) first */
        return -strcmp(sw_json_str(json_object_get(pa, "metadata"), "creationTimestamp", ""),
                       sw_json_str(json_object_get(pb, "metadata"), "creationTimestamp", ""));
}

static int rs_reconcile(struct orch_ctrl_loop *l, const char *key, struct sw_err *err)
{
        char *ns = NULL, *name = NULL, *path = NULL;
        json_t *rs = NULL, *pods = NULL, *p, *st = NULL;
        json_t **mine = NULL;
        const json_t *spec, *cur;
        size_t i, n = 0;
        int64_t replicas, ready = 0, avail = 0, min_ready_ms, now = sw_now_ms(), wake = -1;
        const char *uid;
        int rc = 0;

        orch_ctrl_key_split(key, &ns, &name);
        rs = orch_informer_get(&l->mgr->rsets, key);
        if (!rs || json_object_get(json_object_get(rs, "metadata"), "deletionTimestamp"))
                goto out;
        if (!orch_ctrl_expect_met(l, key, &l->mgr->pods, ns))
                goto out; /* the pod events requeue this key */
        spec = json_object_get(rs, "spec");
        uid = sw_json_str(json_object_get(rs, "metadata"), "uid", "");
        replicas = sw_json_int(spec, "replicas", 1);
        min_ready_ms = sw_json_int(spec, "minReadySeconds", 0) * 1000;
        pods = orch_informer_owned(&l->mgr->pods, uid);
        mine = sw_xcalloc(json_array_size(pods) + 1, sizeof(*mine));
        json_array_foreach(pods, i, p)
        {
                const json_t *ref = orch_ctrl_owner(p, "ReplicaSet");
                int64_t since = 0;
                if (!ref || strcmp(sw_json_str(ref, "uid", ""), uid) != 0 ||
                    !orch_ctrl_pod_active(p))
                        continue;
                mine[n++] = p;
                if (orch_ctrl_pod_ready(p, 0, now, &since)) {
                        ready++;
                        if (since + min_ready_ms <= now)
                                avail++;
                        else if (wake < 0 || since + min_ready_ms - now < wake)
                                wake = since + min_ready_ms - now;
                }
        }
        if ((int64_t)n < replicas) {
                rc = create_pods(l, rs, ns, name, replicas - (int64_t)n, err);
        } else if ((int64_t)n > replicas) {
                qsort(mine, n, sizeof(*mine), pod_cmp_delete);
                size_t ndel = n - (size_t)replicas;
                for (size_t k = 0; k < ndel && rc == 0; k++) {
                        const char *pn =
                                sw_json_str(json_object_get(mine[k], "metadata"), "name", "");
                        free(path);
                        path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s", ns, pn);
                        rc = orch_kube_delete(l->kc, path, NULL, err);
                        if (rc == SW_ENOTFOUND) {
                                sw_err_clear(err);
                                rc = 0;
                        }
                        if (rc == 0) {
                                int64_t since = 0;
                                if (orch_ctrl_pod_ready(mine[k], 0, now, &since)) {
                                        ready--;
                                        if (since + min_ready_ms <= now)
                                                avail--;
                                }
                                n--;
                                orch_ctrl_expect(l, key, pn, false);
                                orch_ctrl_event(l, rs, "Normal", "SuccessfulDelete",
                                                "Deleted pod: %s", pn);
                        }
                }
        }
        if (rc)
                goto out;
        cur = json_object_get(rs, "status");
        st = json_pack("{s:I,s:I,s:I,s:I,s:I}", "replicas", (json_int_t)n, "fullyLabeledReplicas",
                       (json_int_t)n, "readyReplicas", (json_int_t)ready, "availableReplicas",
                       (json_int_t)avail, "observedGeneration",
                       (json_int_t)sw_json_int(json_object_get(rs, "metadata"), "generation", 1));
        if (sw_json_int(cur, "replicas", -1) != (int64_t)n ||
            sw_json_int(cur, "readyReplicas", -1) != ready ||
            sw_json_int(cur, "availableReplicas", -1) != avail ||
            sw_json_int(cur, "fullyLabeledReplicas", -1) != (int64_t)n ||
            sw_json_int(cur, "observedGeneration", -1) !=
                    sw_json_int(json_object_get(rs, "metadata"), "generation", 1)) {
                rc = orch_ctrl_patch_status(l, "/apis/apps/v1", "replicasets", ns, name, st, err);
        }
        if (wake >= 0)
                orch_ctrl_queue_add_after(&l->q, key, wake + 50);
out:
        free(mine);
        json_decref(pods);
        json_decref(rs);
        json_decref(st);
        free(path);
        free(ns);
        free(name);
        return rc;
}

void orch_ctrl_rs_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        l->name = "replicaset-controller";
        l->reconcile = rs_reconcile;
        orch_informer_add_handler(&m->pods, rs_on_pod, l);
        orch_informer_add_handler(&m->rsets, orch_ctrl_on_self, l);
}
