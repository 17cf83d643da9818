/*
 * agent_pull.c - image pulls off the reconcile thread.
 *
 * A pod whose image must be pulled asks for the pull here and keeps
 * waiting (ContainerCreating) while a worker pulls; the reconcile thread
 * goes on with the other pods, so a slow or hanging registry holds up only
 * the pods of its images. Requests are de-duplicated by image reference.
 * A finished pull wakes the reconcile loop, whose next pass collects the
 * result (agent_pulls_poll) and starts the container or reports
 * ErrImagePull with the registry's message.
 *
 * Each pull goes into a private OCI layout (<root>/pulls/<n>); the worker
 * then moves its blobs into the node's store (<root>/images) and names the
 * image in its index.json under the store lock, so concurrent pulls never
 * lose an index update and readers see a whole index (atomic rename).
 *
 * Threads: AGENT_PULL_WORKERS detached workers share struct agent_pulls
 * under its mutex. The reconcile thread owns one reference and the workers
 * one each; the last to let go frees it, so a pull still hanging when the
 * agent stops (the registry client gives up after its low-speed timeout)
 * ends on its own without holding up the agent's exit. Lock order:
 * agent_pulls.mu, then orch_agent.mu (to wake the loop).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "common/banned.h"

#define AGENT_PULL_WORKERS 3

enum pull_state { PULL_QUEUED, PULL_RUNNING, PULL_DONE };

struct pull_job {
        char *image;
        char *auth; /* a private Docker config.json of the pod's pull secrets, or NULL */
        enum pull_state state;
        int rc;
        char msg[1024];
        char digest[SW_DIGEST_STR_LEN];
        struct pull_job *next;
};

struct agent_pulls {
        pthread_mutex_t mu;
        pthread_cond_t cond;
        int refs;
        bool stop;
        struct orch_agent *a; /* NULL once the agent let go */
        const struct sw_config *cfg;
        char *root;
        unsigned seq;
        struct pull_job *jobs;
};

static void job_free(struct pull_job *j)
{
        if (!j)
                return;
        if (j->auth) {
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(j->auth, &ignored);
                free(j->auth);
        }
        free(j->image);
        free(j);
}

static void unref(struct agent_pulls *q)
{
        bool last;

        pthread_mutex_lock(&q->mu);
        last = --q->refs == 0;
        pthread_mutex_unlock(&q->mu);
        if (!last)
                return;
        while (q->jobs) {
                struct pull_job *j = q->jobs;
                q->jobs = j->next;
                job_free(j);
        }
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cond);
        free(q->root);
        free(q);
}

/* Move every blob of layout `from` into the store's blob directory (absent ones only). */
static int move_blobs(const char *from, const char *to, struct sw_err *err)
{
        char *src_dir = sw_xasprintf("%s/blobs/sha256", from);
        char *dst_dir = sw_xasprintf("%s/blobs/sha256", to);
        DIR *d = opendir(src_dir);
        struct dirent *e;
        int rc = 0;

        if (!d) {
                rc = sw_err_errno(err, SW_EIO, errno, "open \"%s\"", src_dir);
                goto out;
        }
        rc = sw_mkdir_p(dst_dir, 0755, err);
        while (rc == 0 && (e = readdir(d))) {
                char *s, *t;
                if (e->d_name[0] == '.')
                        continue;
                s = sw_xasprintf("%s/%s", src_dir, e->d_name);
                t = sw_xasprintf("%s/%s", dst_dir, e->d_name);
                if (access(t, F_OK) != 0 && rename(s, t) != 0)
                        rc = sw_err_errno(err, SW_EIO, errno, "move blob \"%s\"", e->d_name);
                free(s);
                free(t);
        }
        closedir(d);
out:
        free(src_dir);
        free(dst_dir);
        return rc;
}

/* Pull `j->image` into a private layout, then publish it in the store. */
static int pull_one(struct agent_pulls *q, struct pull_job *j, unsigned n, struct sw_err *err)
{
        struct step_registry_options ro = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry_ref ref;
        struct step_registry *r = NULL;
        struct step_oci_layout *tmp = NULL, *store = NULL;
        struct step_oci_desc desc;
        char *tmp_dir = sw_xasprintf("%s/pulls/%u", q->root, n);
        char *store_dir = sw_xasprintf("%s/images", q->root);
        struct sw_err ignored = SW_ERR_INIT;
        int rc;

        sw_rm_rf(tmp_dir, &ignored);
        rc = step_registry_ref_parse(&ref, j->image, q->cfg->registry, err);
        if (rc)
                goto out;
        step_registry_options_from_config(&ro, q->cfg, ref.host);
        if (j->auth) {
                char *user = NULL, *password = NULL;
                /* The pod's secrets hold an entry for this registry: they win. */
                if (step_registry_docker_auth(&user, &password, j->auth, ref.host, &ignored) == 0) {
                        ro.docker_config = j->auth;
                        ro.user = NULL;
                        ro.password = NULL;
                }
                free(user);
                if (password)
                        sw_free_secret(password);
        }
        ro.max_attempts = 3;
        rc = step_oci_layout_open(&tmp, tmp_dir, true, err);
        if (rc == 0)
                rc = step_registry_new(&r, &ro, err);
        if (rc == 0)
                rc = step_registry_pull(&desc, r, ref.repo, ref.digest[0] ? ref.digest : ref.tag,
                                        tmp, j->image, err);
        if (rc)
                goto out;
        pthread_mutex_lock(&q->mu);
        rc = step_oci_layout_open(&store, store_dir, true, err);
        if (rc == 0)
                rc = move_blobs(tmp_dir, store_dir, err);
        if (rc == 0)
                rc = step_oci_ref_set(store, j->image, &desc, err);
        pthread_mutex_unlock(&q->mu);
        if (rc == 0)
                snprintf(j->digest, sizeof(j->digest), "%s", desc.digest);
out:
        if (rc)
                sw_err_wrap(err, "image \"%s\"", j->image);
        step_registry_free(r);
        step_oci_layout_free(tmp);
        step_oci_layout_free(store);
        sw_rm_rf(tmp_dir, &ignored);
        free(tmp_dir);
        free(store_dir);
        return rc;
}

static void *worker_main(void *arg)
{
        struct agent_pulls *q = arg;

        pthread_mutex_lock(&q->mu);
        for (;;) {
                struct pull_job *j = NULL;
                struct sw_err err = SW_ERR_INIT;
                unsigned n;
                int rc;

                for (struct pull_job *k = q->jobs; k && !j; k = k->next)
                        if (k->state == PULL_QUEUED)
                                j = k;
                if (!j && q->stop)
                        break;
                if (!j) {
                        pthread_cond_wait(&q->cond, &q->mu);
                        continue;
                }
                j->state = PULL_RUNNING;
                n = ++q->seq;
                pthread_mutex_unlock(&q->mu);
                /* The job stays in the list while running: only the reconcile thread unlinks
                 * finished ones, so `j` cannot go away meanwhile. */
                rc = pull_one(q, j, n, &err);
                pthread_mutex_lock(&q->mu);
                j->rc = rc;
                snprintf(j->msg, sizeof(j->msg), "%s", rc ? err.msg : "");
                j->state = PULL_DONE;
                if (q->a) {
                        pthread_mutex_lock(&q->a->mu);
                        q->a->dirty = true;
                        q->a->pulled = true;
                        pthread_cond_signal(&q->a->cond);
                        pthread_mutex_unlock(&q->a->mu);
                }
        }
        pthread_mutex_unlock(&q->mu);
        unref(q);
        return NULL;
}

int agent_pulls_new(struct agent_pulls **out, struct orch_agent *a, struct sw_err *err)
{
        struct agent_pulls *q = sw_xcalloc(1, sizeof(*q));
        pthread_attr_t attr;
        int started = 0;

        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cond, NULL);
        q->a = a;
        q->cfg = a->o.cfg;
        q->root = sw_xstrdup(a->root);
        q->refs = 1;
        {
                /* Private layouts of pulls an earlier run did not finish. */
                char *dir = sw_xasprintf("%s/pulls", q->root);
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(dir, &ignored);
                free(dir);
        }
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        for (int i = 0; i < AGENT_PULL_WORKERS; i++) {
                pthread_t t;
                pthread_mutex_lock(&q->mu);
                q->refs++;
                pthread_mutex_unlock(&q->mu);
                if (pthread_create(&t, &attr, worker_main, q) != 0) {
                        pthread_mutex_lock(&q->mu);
                        q->refs--;
                        pthread_mutex_unlock(&q->mu);
                        break;
                }
                started++;
        }
        pthread_attr_destroy(&attr);
        if (!started) {
                unref(q);
                return sw_err_set(err, SW_EIO, "cannot start the image pull workers");
        }
        *out = q;
        return 0;
}

void agent_pulls_free(struct agent_pulls *q)
{
        if (!q)
                return;
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        q->a = NULL;
        /* Queued pulls are dropped; a running one finishes and its worker exits. */
        for (struct pull_job **pp = &q->jobs; *pp;) {
                struct pull_job *j = *pp;
                if (j->state == PULL_QUEUED) {
                        *pp = j->next;
                        job_free(j);
                } else
                        pp = &j->next;
        }
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->mu);
        unref(q);
}

int agent_pulls_poll(char digest_out[SW_DIGEST_STR_LEN], struct agent_pulls *q, const char *image,
                     char **auth, struct sw_err *err)
{
        struct pull_job *j = NULL, **pp;
        int rc;

        pthread_mutex_lock(&q->mu);
        for (pp = &q->jobs; *pp; pp = &(*pp)->next)
                if (!strcmp((*pp)->image, image)) {
                        j = *pp;
                        break;
                }
        if (!j) {
                j = sw_xcalloc(1, sizeof(*j));
                j->image = sw_xstrdup(image);
                j->auth = *auth; /* the worker removes the file */
                *auth = NULL;
                j->next = q->jobs;
                q->jobs = j;
                pthread_cond_signal(&q->cond);
                pthread_mutex_unlock(&q->mu);
                return 1;
        }
        if (j->state != PULL_DONE) {
                pthread_mutex_unlock(&q->mu);
                return 1;
        }
        *pp = j->next;
        pthread_mutex_unlock(&q->mu);
        rc = j->rc;
        if (rc)
                sw_err_set(err, rc, "%s", j->msg);
        else
                snprintf(digest_out, SW_DIGEST_STR_LEN, "%s", j->digest);
        job_free(j);
        return rc;
}

void agent_pulls_lock(struct agent_pulls *q, bool lock)
{
        if (lock)
                pthread_mutex_lock(&q->mu);
        else
                pthread_mutex_unlock(&q->mu);
}
