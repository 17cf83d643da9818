/*
 * agent_cleanup.c - removing pods' sandboxes off the reconcile thread.
 *
 * Taking a pod apart costs the runtime: `runc kill` for containers still
 * running, a wait for them to end, then `runc delete` per container (each
 * a Go program's start, tens of milliseconds on a busy machine), the
 * unmounts and the removal of its directory. Done on the reconcile thread,
 * deleting a hundred pods held up every other pod for twenty seconds. Here
 * the reconcile thread hands over a self-contained job (paths and
 * container ids, nothing of struct agent_pod) and goes on; worker threads
 * do the rest. Containers still running are killed when the job is
 * queued (through a pidfd, no runtime call), so a deleted pod stops at
 * once; the rest of a job waits while containers are starting (up to
 * CLEANUP_DEFER_MS) and runs at a lower priority, so that removing pods
 * does not slow down starting others. A pod record is dropped as soon as
 * its job is queued: its uid names every path and container id, so
 * nothing a new pod gets collides with a sandbox being removed.
 *
 * A job that is not done when the agent stops is dropped; its directory
 * stays, and the next agent finds it (load_pods), sees the pod gone from
 * the API server and cleans it up then.
 *
 * Threads: CLEANUP_WORKERS joined threads share struct agent_cleanup under
 * its mutex; agent_cleanup_add() is called by the reconcile thread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "steps/runtime.h"
#include "common/banned.h"

#define CLEANUP_WORKERS 2
#define KILL_WAIT_MS 5000 /* how long killed containers are waited for */
#define CLEANUP_NICE 10
#define CLEANUP_DEFER_MS 15000 /* how long a job may wait while containers start */

struct cleanup_ctr {
        char *id;
        char *dir;
        bool kill;   /* still running: SIGKILL it first */
        bool killed; /* signalled already, when the job was queued */
};

struct cleanup_job {
        char *dir, *netns_path;
        int64_t queued_mono;
        struct cleanup_ctr *ctrs;
        size_t nctrs;
        struct cleanup_job *next;
};

struct agent_cleanup {
        pthread_mutex_t mu;
        pthread_cond_t cond;
        pthread_t threads[CLEANUP_WORKERS];
        size_t nthreads;
        atomic_bool stop;
        atomic_bool hold; /* containers are starting: let them have the CPU */
        char *runtime, *runc_root;
        struct cleanup_job *head, **tail;
};

static void job_free(struct cleanup_job *j)
{
        if (!j)
                return;
        for (size_t i = 0; i < j->nctrs; i++) {
                free(j->ctrs[i].id);
                free(j->ctrs[i].dir);
        }
        free(j->ctrs);
        free(j->dir);
        free(j->netns_path);
        free(j);
}

static bool has_exited(const struct cleanup_ctr *c)
{
        char *ep = sw_xasprintf("%s/exit", c->dir);
        bool done = access(ep, F_OK) == 0;

        free(ep);
        return done;
}

bool agent_rt_is_runc(const char *runtime)
{
        const char *base = strrchr(runtime, '/') ? strrchr(runtime, '/') + 1 : runtime;

        return !strcmp(base, "runc");
}

bool agent_rt_may_have(const char *runtime, const char *runc_root, const char *id)
{
        char *dir;
        bool has;

        if (!agent_rt_is_runc(runtime))
                return true;
        dir = sw_xasprintf("%s/%s", runc_root, id);
        has = access(dir, F_OK) == 0 || errno != ENOENT;
        free(dir);
        return has;
}

/* Field 22 of /proc/<pid>/stat, the start time in clock ticks; 0 when unreadable. */
static unsigned long long proc_start_time(int pid)
{
        char path[64], *text = NULL, *s;
        struct sw_err ignored = SW_ERR_INIT;
        unsigned long long v = 0;

        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        if (sw_read_file(&text, NULL, path, 4096, &ignored) != 0)
                return 0;
        /* The fields after the command name, which may hold spaces and ')'. */
        s = strrchr(text, ')');
        for (int field = 2; s && field < 22; field++)
                s = strchr(s + 1, ' ');
        if (s)
                v = strtoull(s + 1, NULL, 10);
        free(text);
        return v;
}

/*
 * SIGKILL a runc container's init, and with it its whole pid namespace,
 * without starting the runtime (a Go program, tens of ms of CPU): the pid
 * comes from runc's state file and is held through a pidfd whose process
 * must have the start time recorded there, so a recycled pid is never
 * signalled. False when it cannot be done that way.
 */
static bool kill_init(const struct agent_cleanup *cl, const char *id)
{
        char *path = sw_xasprintf("%s/%s/state.json", cl->runc_root, id), *text = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        json_t *st = NULL;
        bool done = false;

        if (agent_rt_is_runc(cl->runtime) &&
            sw_read_file(&text, NULL, path, 1 << 20, &ignored) == 0 &&
            sw_json_parse(&st, text, strlen(text), 0, &ignored) == 0) {
                int pid = (int)sw_json_int(st, "init_process_pid", 0);
                json_int_t start = sw_json_int(st, "init_process_start", 0);
                int fd = pid > 0 ? pidfd_open(pid, 0) : -1;

                if (fd >= 0 && start > 0 && proc_start_time(pid) == (unsigned long long)start)
                        done = pidfd_send_signal(fd, SIGKILL, NULL, 0) == 0;
                if (fd >= 0)
                        close(fd);
        }
        json_decref(st);
        free(text);
        free(path);
        return done;
}

static void run_job(struct agent_cleanup *cl, struct cleanup_job *j)
{
        struct sw_err ignored = SW_ERR_INIT;
        int64_t until = sw_mono_ms() + KILL_WAIT_MS;
        bool busy = false, waiting = false;

        for (size_t i = 0; i < j->nctrs; i++)
                if (j->ctrs[i].kill) {
                        if (!j->ctrs[i].killed && !kill_init(cl, j->ctrs[i].id))
                                step_rt_kill(cl->runtime, cl->runc_root, j->ctrs[i].id, SIGKILL,
                                             true, &ignored);
                        waiting = true;
                }
        /* Their supervisors write the exit files once the runtime has let go of them. */
        while (waiting && sw_mono_ms() < until && !atomic_load(&cl->stop)) {
                waiting = false;
                for (size_t i = 0; i < j->nctrs && !waiting; i++)
                        waiting = j->ctrs[i].kill && !has_exited(&j->ctrs[i]);
                if (waiting)
                        sw_sleep_ms(20);
        }
        for (size_t i = 0; i < j->nctrs; i++) {
                char *rootfs = sw_xasprintf("%s/rootfs", j->ctrs[i].dir);
                if (agent_rt_may_have(cl->runtime, cl->runc_root, j->ctrs[i].id))
                        step_rt_delete(cl->runtime, cl->runc_root, j->ctrs[i].id);
                if (umount2(rootfs, 0) != 0)
                        umount2(rootfs, MNT_DETACH);
                free(rootfs);
        }
        agent_netns_remove(j->netns_path);
        /* Only when nothing is mounted below any more: never delete through a mount. */
        for (size_t i = 0; i < j->nctrs; i++) {
                char *rootfs = sw_xasprintf("%s/rootfs", j->ctrs[i].dir);
                if (rmdir(rootfs) != 0 && errno != ENOENT)
                        busy = true;
                free(rootfs);
        }
        if (!busy && (access(j->netns_path, F_OK) != 0 || unlink(j->netns_path) == 0))
                sw_rm_rf(j->dir, &ignored);
}

static void *worker_main(void *arg)
{
        struct agent_cleanup *cl = arg;

        /* Niceness is per thread on Linux and the runtimes it starts inherit it: removing
         * pods yields the CPU to starting them. */
        setpriority(PRIO_PROCESS, (id_t)gettid(), CLEANUP_NICE);
        for (;;) {
                struct cleanup_job *j;

                pthread_mutex_lock(&cl->mu);
                while (!cl->head && !atomic_load(&cl->stop))
                        pthread_cond_wait(&cl->cond, &cl->mu);
                if (atomic_load(&cl->stop)) {
                        pthread_mutex_unlock(&cl->mu);
                        return NULL;
                }
                j = cl->head;
                cl->head = j->next;
                if (!cl->head)
                        cl->tail = &cl->head;
                pthread_mutex_unlock(&cl->mu);
                /* Killed already; the rest (runc delete, unmounts) waits for a start burst. */
                while (atomic_load(&cl->hold) && !atomic_load(&cl->stop) &&
                       sw_mono_ms() - j->queued_mono < CLEANUP_DEFER_MS)
                        sw_sleep_ms(50);
                run_job(cl, j);
                job_free(j);
        }
}

int agent_cleanup_new(struct agent_cleanup **out, const char *runtime, const char *runc_root,
                      struct sw_err *err)
{
        struct agent_cleanup *cl = sw_xcalloc(1, sizeof(*cl));

        pthread_mutex_init(&cl->mu, NULL);
        pthread_cond_init(&cl->cond, NULL);
        cl->runtime = sw_xstrdup(runtime);
        cl->runc_root = sw_xstrdup(runc_root);
        cl->tail = &cl->head;
        for (size_t i = 0; i < CLEANUP_WORKERS; i++) {
                if (pthread_create(&cl->threads[i], NULL, worker_main, cl) != 0) {
                        agent_cleanup_free(cl);
                        return sw_err_set(err, SW_EIO, "cannot start the agent's cleanup threads");
                }
                cl->nthreads++;
        }
        *out = cl;
        return 0;
}

void agent_cleanup_free(struct agent_cleanup *cl)
{
        if (!cl)
                return;
        pthread_mutex_lock(&cl->mu);
        atomic_store(&cl->stop, true);
        pthread_cond_broadcast(&cl->cond);
        pthread_mutex_unlock(&cl->mu);
        for (size_t i = 0; i < cl->nthreads; i++)
                pthread_join(cl->threads[i], NULL);
        while (cl->head) {
                struct cleanup_job *j = cl->head;
                cl->head = j->next;
                job_free(j);
        }
        pthread_mutex_destroy(&cl->mu);
        pthread_cond_destroy(&cl->cond);
        free(cl->runtime);
        free(cl->runc_root);
        free(cl);
}

void agent_cleanup_add(struct agent_cleanup *cl, const struct agent_pod *p, bool kill)
{
        struct cleanup_job *j = sw_xcalloc(1, sizeof(*j));

        j->dir = sw_xstrdup(p->dir);
        j->netns_path = sw_xstrdup(p->netns_path);
        j->ctrs = sw_xcalloc(p->nctrs + 1, sizeof(*j->ctrs));
        for (size_t i = 0; i < p->nctrs; i++) {
                j->ctrs[i].id = sw_xstrdup(p->ctrs[i].id);
                j->ctrs[i].dir = sw_xstrdup(p->ctrs[i].dir);
                j->ctrs[i].kill = kill && p->ctrs[i].running;
                /* At once, through a pidfd (no runtime started): the pod stops now. */
                j->ctrs[i].killed = j->ctrs[i].kill && kill_init(cl, j->ctrs[i].id);
        }
        j->queued_mono = sw_mono_ms();
        j->nctrs = p->nctrs;
        pthread_mutex_lock(&cl->mu);
        *cl->tail = j;
        cl->tail = &j->next;
        pthread_cond_signal(&cl->cond);
        pthread_mutex_unlock(&cl->mu);
}

void agent_cleanup_hold(struct agent_cleanup *cl, bool hold)
{
        atomic_store(&cl->hold, hold);
}
