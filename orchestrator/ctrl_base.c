/*
 * ctrl_base.c - the controller framework: a de-duplicating key queue with
 * per-key exponential backoff, informers that keep a cache of one kind
 * from a list and a resumed watch (relisting when the server says the
 * resourceVersion expired), the loop thread that feeds keys to a
 * controller's idempotent reconcile, Events, and the manager that starts
 * every controller against an API server given by a kubeconfig.
 *
 * Everything talks HTTP through orchestrator/client, never to the store,
 * so the same controllers could run against any Kubernetes API server.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rand.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

/* ---- queue -------------------------------------------------------------- */

void orch_ctrl_queue_init(struct orch_ctrl_queue *q)
{
        memset(q, 0, sizeof(*q));
        q->idx = json_object();
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cv, NULL);
}

void orch_ctrl_queue_release(struct orch_ctrl_queue *q)
{
        for (size_t i = 0; i < q->n; i++)
                free(q->items[i].key);
        free(q->items);
        json_decref(q->idx);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
}

static struct orch_ctrl_qitem *queue_find(struct orch_ctrl_queue *q, const char *key)
{
        const json_t *v = json_object_get(q->idx, key);

        return v ? &q->items[json_integer_value(v)] : NULL;
}

static struct orch_ctrl_qitem *queue_slot(struct orch_ctrl_queue *q, const char *key)
{
        struct orch_ctrl_qitem *it = queue_find(q, key);

        if (it)
                return it;
        if (q->n == q->cap) {
                q->cap = q->cap ? q->cap * 2 : 16;
                q->items = sw_xrealloc(q->items, q->cap * sizeof(*q->items));
        }
        it = &q->items[q->n];
        memset(it, 0, sizeof(*it));
        it->key = sw_xstrdup(key);
        json_object_set_new(q->idx, key, json_integer((json_int_t)q->n++));
        return it;
}

void orch_ctrl_queue_add_after(struct orch_ctrl_queue *q, const char *key, int64_t delay_ms)
{
        int64_t due = sw_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
        struct orch_ctrl_qitem *it;

        pthread_mutex_lock(&q->mu);
        it = queue_slot(q, key);
        if (!it->queued || due < it->due_ms)
                it->due_ms = due;
        it->queued = true;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
}

void orch_ctrl_queue_add(struct orch_ctrl_queue *q, const char *key)
{
        orch_ctrl_queue_add_after(q, key, 0);
}

/* Wait on the queue's condition for at most `wait_ms` (q->mu held). */
static void queue_wait(struct orch_ctrl_queue *q, int64_t wait_ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

char *orch_ctrl_queue_get(struct orch_ctrl_queue *q, int64_t timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        char *key = NULL;

        pthread_mutex_lock(&q->mu);
        while (!q->closed) {
                int64_t now = sw_mono_ms(), next = deadline;
                struct orch_ctrl_qitem *best = NULL;
                for (size_t i = 0; i < q->n; i++) {
                        struct orch_ctrl_qitem *it = &q->items[i];
                        if (it->queued && (!best || it->due_ms < best->due_ms))
                                best = it;
                }
                if (best && best->due_ms <= now) {
                        best->queued = false;
                        key = sw_xstrdup(best->key);
                        break;
                }
                if (best && best->due_ms < next)
                        next = best->due_ms;
                if (now >= deadline)
                        break;
                queue_wait(q, next - now);
        }
        pthread_mutex_unlock(&q->mu);
        return key;
}

size_t orch_ctrl_queue_take(struct orch_ctrl_queue *q, json_t *out, size_t max, int64_t timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        size_t n = 0;

        pthread_mutex_lock(&q->mu);
        while (!q->closed && n == 0) {
                int64_t now = sw_mono_ms(), next = deadline;
                /* One pass: every due key, and when the next one falls due. */
                for (size_t i = 0; i < q->n; i++) {
                        struct orch_ctrl_qitem *it = &q->items[i];
                        if (!it->queued)
                                continue;
                        if (it->due_ms <= now && n < max) {
                                it->queued = false;
                                json_array_append_new(out, json_string(it->key));
                                n++;
                        } else if (it->due_ms < next) {
                                next = it->due_ms;
                        }
                }
                if (n > 0 || now >= deadline)
                        break;
                queue_wait(q, next > now ? next - now : 1);
        }
        pthread_mutex_unlock(&q->mu);
        return n;
}

void orch_ctrl_queue_done(struct orch_ctrl_queue *q, const char *key, bool failed, int64_t max_ms)
{
        struct orch_ctrl_qitem *it;

        pthread_mutex_lock(&q->mu);
        it = queue_find(q, key);
        if (failed) {
                int64_t delay;
                it = it ? it : queue_slot(q, key);
                it->fails = it->fails < 30 ? it->fails + 1 : 30;
                delay = 5LL << (it->fails < 20 ? it->fails : 20);
                if (delay > max_ms)
                        delay = max_ms;
                if (!it->queued || it->due_ms > sw_mono_ms() + delay)
                        it->due_ms = sw_mono_ms() + delay;
                it->queued = true;
                pthread_cond_signal(&q->cv);
        } else if (it && !it->queued) {
                json_object_del(q->idx, it->key);
                free(it->key);
                *it = q->items[--q->n];
                if (it != &q->items[q->n])
                        json_object_set_new(q->idx, it->key,
                                            json_integer((json_int_t)(it - q->items)));
        } else if (it) {
                it->fails = 0;
        }
        pthread_mutex_unlock(&q->mu);
}

void orch_ctrl_queue_close(struct orch_ctrl_queue *q)
{
        pthread_mutex_lock(&q->mu);
        q->closed = true;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
}

size_t orch_ctrl_queue_len(struct orch_ctrl_queue *q)
{
        size_t n = 0;

        pthread_mutex_lock(&q->mu);
        for (size_t i = 0; i < q->n; i++)
                n += q->items[i].queued;
        pthread_mutex_unlock(&q->mu);
        return n;
}

/* ---- keys and object helpers --------------------------------------------- */

char *orch_ctrl_key(const json_t *obj)
{
        const json_t *md = json_object_get(obj, "metadata");
        const char *ns = sw_json_str(md, "namespace", ""), *name = sw_json_str(md, "name", "");

        return *ns ? sw_xasprintf("%s/%s", ns, name) : sw_xstrdup(name);
}

void orch_ctrl_key_split(const char *key, char **ns, char **name)
{
        const char *slash = strchr(key, '/');

        if (!slash) {
                *ns = sw_xstrdup("");
                *name = sw_xstrdup(key);
                return;
        }
        *ns = sw_xstrndup(key, (size_t)(slash - key));
        *name = sw_xstrdup(slash + 1);
}

const json_t *orch_ctrl_owner(const json_t *obj, const char *kind)
{
        const json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
        const json_t *r;
        size_t i;

        json_array_foreach(refs, i, r)
        {
                if (json_is_true(json_object_get(r, "controller")) &&
                    strcmp(sw_json_str(r, "kind", ""), kind) == 0)
                        return r;
        }
        return NULL;
}

bool orch_ctrl_pod_active(const json_t *pod)
{
        const char *phase = sw_json_str(json_object_get(pod, "status"), "phase", "");

        if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"))
                return false;
        return strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0;
}

bool orch_ctrl_pod_ready(const json_t *pod, int64_t min_ready_ms, int64_t now_ms,
                         int64_t *ready_since_ms)
{
        const json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions");
        const json_t *c;
        size_t i;

        json_array_foreach(conds, i, c)
        {
                int64_t since;
                if (strcmp(sw_json_str(c, "type", ""), "Ready") != 0)
                        continue;
                if (strcmp(sw_json_str(c, "status", ""), "True") != 0)
                        return false;
                since = orch_time_parse(sw_json_str(c, "lastTransitionTime", ""));
                if (since < 0)
                        since = 0;
                if (ready_since_ms)
                        *ready_since_ms = since;
                return min_ready_ms <= 0 || since + min_ready_ms <= now_ms;
        }
        return false;
}

void orch_ctrl_enqueue_owners(struct orch_ctrl_loop *l, const json_t *obj, const json_t *old,
                              const char *kind)
{
        const json_t *objs[2] = {obj, old};

        for (int i = 0; i < 2; i++) {
                const json_t *ref = objs[i] ? orch_ctrl_owner(objs[i], kind) : NULL;
                char *key;
                if (!ref)
                        continue;
                key = sw_xasprintf(
                        "%s/%s", sw_json_str(json_object_get(objs[i], "metadata"), "namespace", ""),
                        sw_json_str(ref, "name", ""));
                orch_ctrl_queue_add(&l->q, key);
                free(key);
        }
}

void orch_ctrl_on_self(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        char *key = orch_ctrl_key(obj);

        (void)type;
        (void)old;
        orch_ctrl_queue_add(&l->q, key);
        free(key);
}

bool orch_ctrl_selects(const json_t *sel, const json_t *labels)
{
        struct orch_selector *s = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool ok;

        if (!json_is_object(sel) || json_object_size(sel) == 0)
                return false;
        if (orch_labelsel_from_json(&s, sel, &err) != 0)
                return false;
        ok = orch_labelsel_match(s, labels);
        orch_selector_free(s);
        return ok;
}

int orch_ctrl_patch(json_t **out, struct orch_ctrl_loop *l, const char *path, const json_t *patch,
                    struct sw_err *err)
{
        return orch_kube_request(out, NULL, l->kc, "PATCH", path, "application/merge-patch+json",
                                 patch, err);
}

int orch_ctrl_patch_status(struct orch_ctrl_loop *l, const char *group_version,
                           const char *resource, const char *ns, const char *name,
                           const json_t *status, struct sw_err *err)
{
        char *path =
                sw_xasprintf("%s/namespaces/%s/%s/%s/status", group_version, ns, resource, name);
        json_t *patch = json_pack("{s:O}", "status", status);
        int rc = orch_ctrl_patch(NULL, l, path, patch, err);

        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = 0;
        }
        json_decref(patch);
        free(path);
        return rc;
}

/* ---- expectations -------------------------------------------------------- */

void orch_ctrl_expect(struct orch_ctrl_loop *l, const char *key, const char *name, bool add)
{
        json_t *e = json_object_get(l->expect, key);

        if (!e) {
                e = json_object();
                json_object_set_new(l->expect, key, e);
        }
        json_object_set_new(e, name, json_pack("{s:b,s:I}", "add", add, "ts", sw_mono_ms()));
}

bool orch_ctrl_expect_met(struct orch_ctrl_loop *l, const char *key, struct orch_informer *inf,
                          const char *ns)
{
        json_t *e = json_object_get(l->expect, key), *v;
        const char *name;
        void *tmp;

        if (!e)
                return true;
        json_object_foreach_safe(e, tmp, name, v)
        {
                char *k = *ns ? sw_xasprintf("%s/%s", ns, name) : sw_xstrdup(name);
                json_t *obj = orch_informer_get(inf, k);
                bool add = json_is_true(json_object_get(v, "add"));
                bool met = add ? obj != NULL
                               : (!obj || json_object_get(json_object_get(obj, "metadata"),
                                                          "deletionTimestamp"));
                if (met || sw_mono_ms() - sw_json_int(v, "ts", 0) > 30000)
                        json_object_del(e, name);
                json_decref(obj);
                free(k);
        }
        if (json_object_size(e) == 0) {
                json_object_del(l->expect, key);
                return true;
        }
        return false;
}

/* ---- events -------------------------------------------------------------- */

/* ---- events ---------------------------------------------------------------- */

#define EVENT_QUEUE_MAX 1000
#define EVENT_BURST 25.0
#define EVENT_REFILL_MS (5 * 60 * 1000) /* one more Event per key after this */
#define EVENT_KEYS_MAX 4096

/* The Event recorder of one control plane: a queue, a sender thread and the spam filter. */
struct orch_recorder {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        json_t *queue; /* [path, event] pairs waiting */
        json_t *spam;  /* key -> [tokens, last_ms] */
        bool stop;
        pthread_t th;
        bool running;
        struct orch_kube *kc;
};

static void *recorder_main(void *arg)
{
        struct orch_recorder *r = arg;

        pthread_mutex_lock(&r->mu);
        for (;;) {
                json_t *item;
                struct sw_err err = SW_ERR_INIT;
                while (!r->stop && json_array_size(r->queue) == 0)
                        pthread_cond_wait(&r->cv, &r->mu);
                if (json_array_size(r->queue) == 0)
                        break;
                item = json_incref(json_array_get(r->queue, 0));
                json_array_remove(r->queue, 0);
                pthread_mutex_unlock(&r->mu);
                {
                        /* The Event is handed over: the API server keeps it as it is. */
                        json_t *ev = json_incref(json_array_get(item, 1));
                        char *path = sw_xstrdup(json_string_value(json_array_get(item, 0)));
                        char *reason = sw_xstrdup(sw_json_str(ev, "reason", ""));
                        json_decref(item);
                        if (orch_kube_request_give(NULL, NULL, r->kc, "POST", path, NULL, ev,
                                                   &err) != 0)
                                sw_log(SW_LOG_DEBUG, "ctrl", "event not recorded", "{s:s,s:s}",
                                       "reason", reason, "error", err.msg);
                        free(path);
                        free(reason);
                }
                pthread_mutex_lock(&r->mu);
        }
        pthread_mutex_unlock(&r->mu);
        return NULL;
}

static int recorder_start(struct orch_ctrl *c, struct sw_err *err)
{
        struct orch_recorder *r = sw_xcalloc(1, sizeof(*r));
        int rc;

        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cv, NULL);
        r->queue = json_array();
        r->spam = json_object();
        c->recorder = r;
        if ((rc = orch_ctrl_client(&r->kc, c, err)) != 0)
                return rc;
        r->running = pthread_create(&r->th, NULL, recorder_main, r) == 0;
        if (!r->running)
                return sw_err_set(err, SW_EIO, "cannot start the event recorder thread");
        return 0;
}

/* Send what is queued, then stop. */
static void recorder_stop(struct orch_recorder *r)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (r->running)
                pthread_join(r->th, NULL);
        orch_kube_free(r->kc);
        json_decref(r->queue);
        json_decref(r->spam);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
}

/* The spam filter: whether one more Event for `key` may go out now (r->mu held). */
static bool recorder_admit(struct orch_recorder *r, const char *key, int64_t now)
{
        json_t *b = json_object_get(r->spam, key);
        double tokens;

        if (!b) {
                if (json_object_size(r->spam) >= EVENT_KEYS_MAX)
                        json_object_clear(r->spam);
                b = json_pack("[f,I]", EVENT_BURST, (json_int_t)now);
                json_object_set_new(r->spam, key, b);
        }
        tokens = json_real_value(json_array_get(b, 0)) +
                 (double)(now - json_integer_value(json_array_get(b, 1))) / EVENT_REFILL_MS;
        if (tokens > EVENT_BURST)
                tokens = EVENT_BURST;
        json_array_set_new(b, 1, json_integer((json_int_t)now));
        if (tokens < 1.0) {
                json_array_set_new(b, 0, json_real(tokens));
                return false;
        }
        json_array_set_new(b, 0, json_real(tokens - 1.0));
        return true;
}

void orch_ctrl_event(struct orch_ctrl_loop *l, const json_t *obj, const char *type,
                     const char *reason, const char *fmt, ...)
{
        struct orch_recorder *r = l->mgr->recorder;
        const json_t *md = json_object_get(obj, "metadata");
        const char *ns = sw_json_str(md, "namespace", "default");
        char msg[1024], ts[32], *name, *key;
        unsigned char rnd[6];
        json_t *ev;
        va_list ap;
        bool ok;

        if (!r)
                return;
        key = sw_xasprintf("%s/%s/%s/%s/%s/%s/%s", l->name, sw_json_str(obj, "kind", ""), ns,
                           sw_json_str(md, "name", ""), sw_json_str(md, "uid", ""), type, reason);
        pthread_mutex_lock(&r->mu);
        ok = json_array_size(r->queue) < EVENT_QUEUE_MAX && recorder_admit(r, key, sw_mono_ms());
        pthread_mutex_unlock(&r->mu);
        free(key);
        if (!ok)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sw_rand_bytes(rnd, sizeof(rnd));
        name = sw_xasprintf("%s.%02x%02x%02x%02x%02x%02x", sw_json_str(md, "name", "x"), rnd[0],
                            rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
        orch_time_fmt(ts, sizeof(ts), sw_now_ms());
        ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:{s:s},"
                       "s:s,s:s,s:i}",
                       "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
                       ns, "involvedObject", "kind", sw_json_str(obj, "kind", ""), "apiVersion",
                       sw_json_str(obj, "apiVersion", "v1"), "name", sw_json_str(md, "name", ""),
                       "namespace", ns, "uid", sw_json_str(md, "uid", ""), "resourceVersion",
                       sw_json_str(md, "resourceVersion", ""), "reason", reason, "message", msg,
                       "type", type, "source", "component", l->name, "firstTimestamp", ts,
                       "lastTimestamp", ts, "count", 1);
        if (ev) {
                pthread_mutex_lock(&r->mu);
                char *path = sw_xasprintf("/api/v1/namespaces/%s/events", ns);
                json_array_append_new(r->queue, json_pack("[s,o]", path, ev));
                free(path);
                pthread_cond_signal(&r->cv);
                pthread_mutex_unlock(&r->mu);
        }
        free(name);
}

/* ---- informers ----------------------------------------------------------- */

json_t *orch_informer_get(struct orch_informer *inf, const char *key)
{
        json_t *o;

        pthread_mutex_lock(&inf->mu);
        o = json_incref(json_object_get(inf->cache, key));
        pthread_mutex_unlock(&inf->mu);
        return o;
}

json_t *orch_informer_list(struct orch_informer *inf, const char *ns)
{
        json_t *arr = json_array(), *v;
        const char *k;
        size_t nlen = ns ? strlen(ns) : 0;

        pthread_mutex_lock(&inf->mu);
        json_object_foreach(inf->cache, k, v)
        {
                if (ns && (strncmp(k, ns, nlen) != 0 || k[nlen] != '/'))
                        continue;
                json_array_append(arr, v);
        }
        pthread_mutex_unlock(&inf->mu);
        return arr;
}

json_t *orch_informer_owned(struct orch_informer *inf, const char *uid)
{
        json_t *arr = json_array(), *v;
        const char *k;

        pthread_mutex_lock(&inf->mu);
        json_object_foreach(json_object_get(inf->by_owner, uid), k, v)
        {
                json_array_append(arr, v);
        }
        pthread_mutex_unlock(&inf->mu);
        return arr;
}

void orch_informer_add_handler(struct orch_informer *inf, orch_ctrl_handler_fn fn, void *arg)
{
        if (inf->nhandlers >= ORCH_INFORMER_HANDLERS)
                return;
        inf->handlers[inf->nhandlers].fn = fn;
        inf->handlers[inf->nhandlers].arg = arg;
        inf->nhandlers++;
}

static void informer_notify(struct orch_informer *inf, const char *type, const json_t *obj,
                            const json_t *old)
{
        for (int i = 0; i < inf->nhandlers; i++)
                inf->handlers[i].fn(inf->handlers[i].arg, type, obj, old);
}

/* Add `obj` to (or drop it from) the index by controller owner; inf->mu held. */
static void owner_index(struct orch_informer *inf, const char *key, const json_t *obj, bool add)
{
        const json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
        const json_t *ref;
        size_t i;

        json_array_foreach(refs, i, ref)
        {
                const char *uid = sw_json_str(ref, "uid", "");
                json_t *set;
                if (!json_is_true(json_object_get(ref, "controller")) || !*uid)
                        continue;
                set = json_object_get(inf->by_owner, uid);
                if (add) {
                        if (!set) {
                                set = json_object();
                                json_object_set_new(inf->by_owner, uid, set);
                        }
                        json_object_set(set, key, (json_t *)obj);
                } else if (set) {
                        json_object_del(set, key);
                        if (json_object_size(set) == 0)
                                json_object_del(inf->by_owner, uid);
                }
                break;
        }
}

/* Apply one change to the cache and tell the handlers. */
static void informer_apply(struct orch_informer *inf, const char *type, const json_t *obj)
{
        char *key = orch_ctrl_key(obj);
        json_t *old;

        pthread_mutex_lock(&inf->mu);
        old = json_object_get(inf->cache, key);
        json_incref(old);
        if (old)
                owner_index(inf, key, old, false);
        if (strcmp(type, "DELETED") == 0) {
                json_object_del(inf->cache, key);
        } else {
                json_object_set(inf->cache, key, (json_t *)obj); /* immutable from here */
                owner_index(inf, key, obj, true);
        }
        pthread_mutex_unlock(&inf->mu);
        informer_notify(inf, type, obj, old);
        json_decref(old);
        free(key);
}

/* List and replace the cache; vanished objects are reported DELETED. */
static int informer_list(struct orch_informer *inf, struct sw_err *err)
{
        json_t *list = NULL, *items, *it, *seen = json_object(), *gone = json_array(), *v;
        const char *k;
        size_t i;
        int rc;

        rc = orch_kube_get(&list, inf->kc, inf->path, err);
        if (rc)
                goto out;
        items = json_object_get(list, "items");
        json_array_foreach(items, i, it)
        {
                char *key = orch_ctrl_key(it);
                json_object_set_new(seen, key, json_true());
                free(key);
        }
        pthread_mutex_lock(&inf->mu);
        json_object_foreach(inf->cache, k, v)
        {
                if (!json_object_get(seen, k))
                        json_array_append(gone, v);
        }
        pthread_mutex_unlock(&inf->mu);
        json_array_foreach(gone, i, it)
        {
                informer_apply(inf, "DELETED", it);
        }
        json_array_foreach(items, i, it)
        {
                informer_apply(inf, "ADDED", it);
        }
        pthread_mutex_lock(&inf->mu);
        free(inf->rv);
        inf->rv =
                sw_xstrdup(sw_json_str(json_object_get(list, "metadata"), "resourceVersion", "0"));
        inf->synced = true;
        pthread_mutex_unlock(&inf->mu);
out:
        json_decref(list);
        json_decref(seen);
        json_decref(gone);
        return rc;
}

static int informer_event(void *arg, const char *type, const json_t *obj)
{
        struct orch_informer *inf = arg;

        if (strcmp(type, "BOOKMARK") != 0)
                informer_apply(inf, type, obj);
        return atomic_load(inf->stop) ? 1 : 0;
}

static void *informer_main(void *arg)
{
        struct orch_informer *inf = arg;
        bool need_list = !inf->synced;

        while (!atomic_load(inf->stop)) {
                struct sw_err err = SW_ERR_INIT;
                char *rv = NULL, *from;
                int rc;

                if (need_list) {
                        if (informer_list(inf, &err) != 0) {
                                sw_log(SW_LOG_WARN, "ctrl", "list failed", "{s:s,s:s}", "path",
                                       inf->path, "error", err.msg);
                                sw_sleep_ms(500);
                                continue;
                        }
                        need_list = false;
                }
                pthread_mutex_lock(&inf->mu);
                from = sw_xstrdup(inf->rv);
                pthread_mutex_unlock(&inf->mu);
                rc = orch_kube_watch(&rv, inf->kc, inf->path, NULL, from, 1000, informer_event, inf,
                                     &err);
                free(from);
                if (rc == SW_ECONFLICT) {
                        need_list = true; /* expired: relist */
                } else if (rc) {
                        sw_log(SW_LOG_WARN, "ctrl", "watch failed", "{s:s,s:s}", "path", inf->path,
                               "error", err.msg);
                        sw_sleep_ms(500);
                        need_list = true;
                } else if (rv) {
                        pthread_mutex_lock(&inf->mu);
                        free(inf->rv);
                        inf->rv = rv;
                        rv = NULL;
                        pthread_mutex_unlock(&inf->mu);
                }
                free(rv);
        }
        return NULL;
}

static void informer_init(struct orch_informer *inf, const char *path, atomic_bool *stop)
{
        memset(inf, 0, sizeof(*inf));
        inf->path = sw_xstrdup(path);
        pthread_mutex_init(&inf->mu, NULL);
        inf->cache = json_object();
        inf->by_owner = json_object();
        inf->stop = stop;
}

static void informer_join(struct orch_informer *inf)
{
        if (inf->running)
                pthread_join(inf->th, NULL);
        inf->running = false;
}

static void informer_release(struct orch_informer *inf)
{
        informer_join(inf);
        orch_kube_free(inf->kc);
        json_decref(inf->cache);
        json_decref(inf->by_owner);
        free(inf->rv);
        free(inf->path);
        pthread_mutex_destroy(&inf->mu);
}

/* ---- loops --------------------------------------------------------------- */

static void *loop_main(void *arg)
{
        struct orch_ctrl_loop *l = arg;
        int64_t next_tick = sw_mono_ms() + l->tick_ms;
        int64_t max_ms = l->mgr->opts.sched_backoff_max_ms;

        while (!atomic_load(&l->mgr->stop)) {
                int64_t wait_ms = l->tick ? 100 : 200;
                json_t *keys = l->batch ? json_array() : NULL;
                char *key = NULL;
                if (keys)
                        orch_ctrl_queue_take(&l->q, keys, 5000, wait_ms);
                else
                        key = orch_ctrl_queue_get(&l->q, wait_ms);
                if (l->tick && sw_mono_ms() >= next_tick) {
                        l->tick(l);
                        next_tick = sw_mono_ms() + l->tick_ms;
                }
                if (keys) {
                        /*
                         * Every due key at once; each is done after the pass (a key
                         * the pass queued again stays), so that the queue holds
                         * only keys in flight, not every key it ever saw.
                         */
                        json_t *k;
                        size_t i;
                        if (json_array_size(keys))
                                l->batch(l, keys);
                        json_array_foreach(keys, i, k)
                                orch_ctrl_queue_done(&l->q, json_string_value(k), false, max_ms);
                        json_decref(keys);
                        continue;
                }
                if (!key)
                        continue;
                {
                        struct sw_err err = SW_ERR_INIT;
                        int rc = l->reconcile(l, key, &err);
                        if (rc)
                                sw_log(SW_LOG_INFO, "ctrl", "reconcile failed", "{s:s,s:s,s:s}",
                                       "controller", l->name, "key", key, "error", err.msg);
                        orch_ctrl_queue_done(&l->q, key, rc != 0, max_ms);
                }
                free(key);
        }
        return NULL;
}

/* ---- manager ------------------------------------------------------------- */

static void loop_free(struct orch_ctrl_loop *l)
{
        if (!l)
                return;
        if (l->running)
                pthread_join(l->th, NULL);
        if (l->state_free)
                l->state_free(l->state);
        orch_ctrl_queue_release(&l->q);
        orch_kube_free(l->kc);
        json_decref(l->expect);
        free(l);
}

void orch_ctrl_stop(struct orch_ctrl *c)
{
        if (!c)
                return;
        atomic_store(&c->stop, true);
        for (int i = 0; i < c->nloops; i++)
                orch_ctrl_queue_close(&c->loops[i]->q);
        /*
         * Every thread ends before anything is freed: the watch threads call
         * the loops' handlers, and the loops read the informers' caches.
         */
        for (int i = 0; i < c->nloops; i++) {
                if (c->loops[i] && c->loops[i]->running)
                        pthread_join(c->loops[i]->th, NULL);
                if (c->loops[i])
                        c->loops[i]->running = false;
        }
        {
                struct orch_informer *all[] = {&c->pods,  &c->rsets, &c->deploys,  &c->services,
                                               &c->nodes, &c->jobs,  &c->cronjobs, &c->leases};
                for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                        informer_join(all[i]);
        }
        for (int i = 0; i < c->nloops; i++)
                loop_free(c->loops[i]);
        recorder_stop(c->recorder);
        informer_release(&c->pods);
        informer_release(&c->rsets);
        informer_release(&c->deploys);
        informer_release(&c->services);
        informer_release(&c->nodes);
        informer_release(&c->jobs);
        informer_release(&c->cronjobs);
        informer_release(&c->leases);
        free(c->kubeconfig);
        free(c->local);
        free(c);
}

int orch_ctrl_client(struct orch_kube **out, struct orch_ctrl *m, struct sw_err *err)
{
        if (m->local) {
                orch_kube_new_local(out, m->local);
                return 0;
        }
        return orch_kube_from_kubeconfig(out, m->kubeconfig, NULL, err);
}

int orch_ctrl_start(struct orch_ctrl **out, const struct orch_ctrl_options *opts,
                    struct sw_err *err)
{
        struct orch_ctrl *c = sw_xcalloc(1, sizeof(*c));
        struct orch_informer *infs[8];
        unsigned want = opts->controllers ? opts->controllers : 0xffu;
        int rc = 0;

        if (!opts->local && (!opts->kubeconfig || !*opts->kubeconfig)) {
                free(c);
                return sw_err_set(err, SW_EINVAL, "controllers need a kubeconfig");
        }
        c->opts = *opts;
        c->kubeconfig = sw_xstrdup(opts->kubeconfig ? opts->kubeconfig : "");
        c->opts.kubeconfig = c->kubeconfig;
        if (opts->local) {
                c->local = sw_xmalloc(sizeof(*c->local));
                *c->local = *opts->local;
                c->opts.local = c->local;
        }
        if (c->opts.job_backoff_ms <= 0)
                c->opts.job_backoff_ms = 10000;
        if (c->opts.cron_time_scale <= 0)
                c->opts.cron_time_scale = 1;
        if (c->opts.node_grace_ms <= 0)
                c->opts.node_grace_ms = 40000;
        if (c->opts.sched_backoff_max_ms <= 0)
                c->opts.sched_backoff_max_ms = 10000;
        atomic_init(&c->stop, false);
        informer_init(&c->pods, "/api/v1/pods", &c->stop);
        informer_init(&c->rsets, "/apis/apps/v1/replicasets", &c->stop);
        informer_init(&c->deploys, "/apis/apps/v1/deployments", &c->stop);
        informer_init(&c->services, "/api/v1/services", &c->stop);
        informer_init(&c->nodes, "/api/v1/nodes", &c->stop);
        infs[0] = &c->pods;
        infs[1] = &c->rsets;
        infs[2] = &c->deploys;
        infs[3] = &c->services;
        infs[4] = &c->nodes;
        informer_init(&c->jobs, "/apis/batch/v1/jobs", &c->stop);
        informer_init(&c->cronjobs, "/apis/batch/v1/cronjobs", &c->stop);
        informer_init(&c->leases, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                      &c->stop);
        infs[5] = &c->jobs;
        infs[6] = &c->cronjobs;
        infs[7] = &c->leases;

        {
                static void (*const inits[])(struct orch_ctrl_loop *, struct orch_ctrl *) = {
                        orch_ctrl_rs_init,  orch_ctrl_deploy_init,  orch_ctrl_endpoints_init,
                        orch_sched_init,    orch_ctrl_nodes_init,   orch_ctrl_gc_init,
                        orch_ctrl_job_init, orch_ctrl_cronjob_init,
                };
                static const unsigned bits[] = {ORCH_CTRL_REPLICASET,    ORCH_CTRL_DEPLOYMENT,
                                                ORCH_CTRL_ENDPOINTS,     ORCH_CTRL_SCHEDULER,
                                                ORCH_CTRL_NODELIFECYCLE, ORCH_CTRL_GC,
                                                ORCH_CTRL_JOB,           ORCH_CTRL_CRONJOB};
                for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
                        struct orch_ctrl_loop *l;
                        if (!(want & bits[i]))
                                continue;
                        l = sw_xcalloc(1, sizeof(*l));
                        l->mgr = c;
                        l->expect = json_object();
                        orch_ctrl_queue_init(&l->q);
                        c->loops[c->nloops++] = l;
                        rc = orch_ctrl_client(&l->kc, c, err);
                        if (rc)
                                goto out;
                        inits[i](l, c);
                }
        }
        if ((rc = recorder_start(c, err)) != 0)
                goto out;
        /* Fill every cache before any controller acts on a partial view. */
        for (int i = 0; i < 8; i++) {
                rc = orch_ctrl_client(&infs[i]->kc, c, err);
                if (rc)
                        goto out;
                rc = informer_list(infs[i], err);
                if (rc)
                        goto out;
        }
        for (int i = 0; i < 8; i++) {
                if (pthread_create(&infs[i]->th, NULL, informer_main, infs[i]) != 0) {
                        rc = sw_err_set(err, SW_EIO, "cannot start an informer thread");
                        goto out;
                }
                infs[i]->running = true;
        }
        for (int i = 0; i < c->nloops; i++) {
                if (pthread_create(&c->loops[i]->th, NULL, loop_main, c->loops[i]) != 0) {
                        rc = sw_err_set(err, SW_EIO, "cannot start a controller thread");
                        goto out;
                }
                c->loops[i]->running = true;
        }
        *out = c;
        c = NULL;
out:
        orch_ctrl_stop(c);
        return rc;
}
