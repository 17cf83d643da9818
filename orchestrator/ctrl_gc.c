/*
 * ctrl_gc.c - the garbage collector for what the API server's own
 * cascading delete cannot see: a ReplicaSet, Job or Pod created for an owner
 * that was deleted meanwhile (a controller acting on a cache that had not
 * seen the deletion yet). Each dependent whose owner is absent from the
 * informer cache is checked against the API server (the cache may simply
 * lag); when every owner is gone, or has another uid, the dependent is
 * deleted with background propagation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "common/banned.h"

static void gc_on_dependent(void *arg, const char *type, const json_t *obj, const json_t *old,
                            const char *resource)
{
        struct orch_ctrl_loop *l = arg;
        const json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
        char *key, *qkey;

        (void)old;
        if (strcmp(type, "DELETED") == 0 || json_array_size(refs) == 0)
                return;
        key = orch_ctrl_key(obj);
        qkey = sw_xasprintf("%s|%s", resource, key);
        orch_ctrl_queue_add(&l->q, qkey);
        free(qkey);
        free(key);
}

static void gc_on_pod(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        gc_on_dependent(arg, type, obj, old, "pods");
}

static void gc_on_rs(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        gc_on_dependent(arg, type, obj, old, "replicasets");
}

static void gc_on_job(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        gc_on_dependent(arg, type, obj, old, "jobs");
}

/* Whether the owner `ref` of an object in `ns` exists with its uid. */
static int owner_exists(bool *out, struct orch_ctrl_loop *l, const char *ns, const json_t *ref,
                        struct sw_err *err)
{
        const char *kind = sw_json_str(ref, "kind", ""), *uid = sw_json_str(ref, "uid", "");
        struct orch_informer *inf = strcmp(kind, "Deployment") == 0   ? &l->mgr->deploys
                                    : strcmp(kind, "ReplicaSet") == 0 ? &l->mgr->rsets
                                    : strcmp(kind, "Job") == 0        ? &l->mgr->jobs
                                    : strcmp(kind, "CronJob") == 0    ? &l->mgr->cronjobs
                                                                      : NULL;
        char *key = sw_xasprintf("%s/%s", ns, sw_json_str(ref, "name", "")), *path = NULL;
        json_t *o = inf ? orch_informer_get(inf, key) : NULL;
        int rc = 0;

        *out = true;
        if (o && strcmp(sw_json_str(json_object_get(o, "metadata"), "uid", ""), uid) == 0)
                goto out;
        json_decref(o);
        o = NULL;
        rc = orch_kube_path(&path, sw_json_str(ref, "apiVersion", ""), kind, ns,
                            sw_json_str(ref, "name", ""), err);
        if (rc == SW_EINVAL) {
                sw_err_clear(err);
                rc = 0; /* a kind we do not know: leave the dependent alone */
                goto out;
        }
        if (rc == 0)
                rc = orch_kube_get(&o, l->kc, path, err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = 0;
                *out = false;
        } else if (rc == 0) {
                *out = strcmp(sw_json_str(json_object_get(o, "metadata"), "uid", ""), uid) == 0;
        }
out:
        json_decref(o);
        free(path);
        free(key);
        return rc;
}

static int gc_reconcile(struct orch_ctrl_loop *l, const char *qkey, struct sw_err *err)
{
        const char *bar = strchr(qkey, '|');
        char *resource, *ns = NULL, *name = NULL, *path = NULL;
        struct orch_informer *inf;
        json_t *obj = NULL;
        const json_t *r;
        bool any = false;
        size_t i;
        int rc = 0;

        if (!bar)
                return 0;
        resource = sw_xstrndup(qkey, (size_t)(bar - qkey));
        inf = strcmp(resource, "pods") == 0   ? &l->mgr->pods
              : strcmp(resource, "jobs") == 0 ? &l->mgr->jobs
                                              : &l->mgr->rsets;
        obj = orch_informer_get(inf, bar + 1);
        if (!obj)
                goto out;
        orch_ctrl_key_split(bar + 1, &ns, &name);
        json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i,
                           r)
        {
                bool exists = true;
                rc = owner_exists(&exists, l, ns, r, err);
                if (rc)
                        goto out;
                if (exists) {
                        any = true;
                        break;
                }
        }
        if (any)
                goto out;
        if (strcmp(resource, "pods") == 0)
                path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s", ns, name);
        else if (strcmp(resource, "jobs") == 0)
                path = sw_xasprintf("/apis/batch/v1/namespaces/%s/jobs/%s", ns, name);
        else
                path = sw_xasprintf("/apis/apps/v1/namespaces/%s/replicasets/%s", ns, name);
        rc = orch_kube_delete(l->kc, path, "Background", err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = 0;
        }
out:
        json_decref(obj);
        free(path);
        free(ns);
        free(name);
        free(resource);
        return rc;
}

void orch_ctrl_gc_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        l->name = "garbage-collector";
        l->reconcile = gc_reconcile;
        orch_informer_add_handler(&m->pods, gc_on_pod, l);
        orch_informer_add_handler(&m->rsets, gc_on_rs, l);
        orch_informer_add_handler(&m->jobs, gc_on_job, l);
}
