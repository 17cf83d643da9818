/*
 * runtime.c - one process under runc (see runtime.h).
 *
 * `runc run` is given the bundle and keeps the container's stdout and
 * stderr on a pipe that we read. runc's own diagnostics go to a JSON log
 * file (--log), so that a failure of the runtime is told apart from the
 * process's exit status and reported with runc's message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/worker.h"
#include "steps/rt_supervise.h"
#include "steps/runtime.h"
#include "common/banned.h"

extern char **environ;

/* Docker's default capability set. */
static const char *const default_caps[] = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE",
};

static const char *const masked_paths[] = {
        "/proc/asound",        "/proc/acpi",       "/proc/kcore",       "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
        "/proc/scsi",          "/sys/firmware",
};

static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static json_t *strv_json(const char *const *v, size_t n)
{
        json_t *a = json_array();

        for (size_t i = 0; v && (n ? i < n : v[i] != NULL); i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

static json_t *mount_json(const char *dst, const char *type, const char *src,
                          const char *const *opts)
{
        return json_pack("{s:s,s:s,s:s,s:o}", "destination", dst, "type", type, "source", src,
                         "options", strv_json(opts, 0));
}

/* What detached containers of a pod add: a shared network namespace, limits, no_new_privs. */
static void add_pod_settings(json_t *spec, const struct step_rt_process *p)
{
        json_t *linux = json_object_get(spec, "linux"), *res = json_object();
        json_t *nss = json_object_get(linux, "namespaces"), *ns;
        size_t i;

        json_array_foreach(nss, i, ns)
        {
                if (p->netns_path && !strcmp(sw_json_str(ns, "type", ""), "network"))
                        json_object_set_new(ns, "path", json_string(p->netns_path));
        }
        for (i = 0; p->host_network && i < json_array_size(nss); i++)
                if (!strcmp(sw_json_str(json_array_get(nss, i), "type", ""), "network"))
                        json_array_remove(nss, i--);
        if (p->memory_limit_bytes > 0)
                json_object_set_new(res, "memory",
                                    json_pack("{s:I}", "limit", (json_int_t)p->memory_limit_bytes));
        if (p->cpu_quota_us > 0)
                json_object_set_new(res, "cpu",
                                    json_pack("{s:I,s:I}", "quota", (json_int_t)p->cpu_quota_us,
                                              "period", (json_int_t)100000));
        if (json_object_size(res))
                json_object_set(linux, "resources", res);
        if (p->cgroups_path)
                json_object_set_new(linux, "cgroupsPath", json_string(p->cgroups_path));
        json_decref(res);
        if (p->no_new_privs)
                json_object_set_new(json_object_get(spec, "process"), "noNewPrivileges",
                                    json_true());
}

static json_t *spec_json(const struct step_rt_process *p)
{
        static const char *const proc_opts[] = {NULL};
        static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                               NULL};
        static const char *const pts_opts[] = {"nosuid",        "noexec",    "newinstance",
                                               "ptmxmode=0666", "mode=0620", NULL};
        static const char *const shm_opts[] = {"nosuid",    "noexec",      "nodev",
                                               "mode=1777", "size=65536k", NULL};
        static const char *const mq_opts[] = {"nosuid", "noexec", "nodev", NULL};
        static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
        json_t *caps = strv_json(default_caps, sizeof(default_caps) / sizeof(default_caps[0]));
        json_t *mounts = json_array(), *gids = json_array();
        struct rlimit nofile = {1024, 1024};

        /* The container may not be given more than this process has. */
        getrlimit(RLIMIT_NOFILE, &nofile);
        if (nofile.rlim_max > 1048576)
                nofile.rlim_max = 1048576;
        if (nofile.rlim_cur > nofile.rlim_max)
                nofile.rlim_cur = nofile.rlim_max;

        json_array_append_new(mounts, mount_json("/proc", "proc", "proc", proc_opts));
        json_array_append_new(mounts, mount_json("/dev", "tmpfs", "tmpfs", dev_opts));
        json_array_append_new(mounts, mount_json("/dev/pts", "devpts", "devpts", pts_opts));
        json_array_append_new(mounts, mount_json("/dev/shm", "tmpfs", "shm", shm_opts));
        json_array_append_new(mounts, mount_json("/dev/mqueue", "mqueue", "mqueue", mq_opts));
        json_array_append_new(mounts, mount_json("/sys", "sysfs", "sysfs", sys_opts));
        for (size_t i = 0; i < p->nmounts; i++) {
                const char *ro[] = {"rbind", "ro", "nosuid", "nodev", NULL};
                const char *rw[] = {"rbind", "rw", "nosuid", "nodev", NULL};
                json_array_append_new(mounts, mount_json(p->mounts[i].destination, "bind",
                                                         p->mounts[i].source,
                                                         p->mounts[i].readonly ? ro : rw));
        }
        for (size_t i = 0; i < p->ngroups; i++)
                json_array_append_new(gids, json_integer(p->groups[i]));

        json_t *spec = json_pack(
                "{s:s,s:{s:b,s:{s:i,s:i,s:o},s:o,s:o,s:s,s:{s:O,s:O,s:O},s:[{s:s,s:i,s:i}],"
                "s:b},s:{s:s,s:b},s:s,s:o,s:{s:[{s:s},{s:s},{s:s},{s:s},{s:s}],s:o,s:o}}",
                "ociVersion", "1.0.2", "process", "terminal", 0, "user", "uid", (int)p->uid, "gid",
                (int)p->gid, "additionalGids", gids, "args", strv_json(p->args, 0), "env",
                strv_json(p->env, 0), "cwd", p->cwd ? p->cwd : "/", "capabilities", "bounding",
                caps, "effective", caps, "permitted", caps, "rlimits", "type", "RLIMIT_NOFILE",
                "hard", (int)nofile.rlim_max, "soft", (int)nofile.rlim_cur, "noNewPrivileges", 0,
                "root", "path", p->rootfs, "readonly", p->readonly_rootfs, "hostname",
                p->hostname ? p->hostname : "slipway", "mounts", mounts, "linux", "namespaces",
                "type", "pid", "type", "network", "type", "ipc", "type", "uts", "type", "mount",
                "maskedPaths",
                strv_json(masked_paths, sizeof(masked_paths) / sizeof(masked_paths[0])),
                "readonlyPaths",
                strv_json(readonly_paths, sizeof(readonly_paths) / sizeof(readonly_paths[0])));

        json_decref(caps); /* the spec holds its own references (O) */
        add_pod_settings(spec, p);
        return spec;
}

static bool valid_id(const char *id)
{
        size_t n = strlen(id);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
                      (id[i] >= '0' && id[i] <= '9') || strchr("_.-", id[i])))
                        return false;
        return true;
}

/* fork+exec runc with `args`; stdout/stderr to `outfd` (or /dev/null when -1). */
static pid_t spawn_runc(char *const *args, int outfd)
{
        int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        pid_t pid = fork();

        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                pthread_sigmask(SIG_SETMASK, &none, NULL);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(nullfd, 0);
                dup2(outfd >= 0 ? outfd : nullfd, 1);
                dup2(outfd >= 0 ? outfd : nullfd, 2);
                close_range(3, ~0U, 0);
                execvp(args[0], args);
                _exit(127);
        }
        if (nullfd >= 0)
                close(nullfd);
        return pid;
}

static int wait_status(pid_t pid)
{
        int st;

        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void runc_kill(const char *runtime, const char *state, const char *id)
{
        char *args[] = {(char *)runtime, "--root",   (char *)state, "kill",
                        "--all",         (char *)id, "KILL",        NULL};
        pid_t pid = spawn_runc(args, -1);

        if (pid > 0)
                wait_status(pid);
}

/* The last error runc logged, or NULL. */
static char *runc_error(const char *log_path)
{
        char *text = NULL, *msg = NULL, *save = NULL;
        struct sw_err ignored = SW_ERR_INIT;

        if (sw_read_file(&text, NULL, log_path, 1 << 20, &ignored) != 0)
                return NULL;
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                json_t *ev = NULL;
                if (sw_json_parse(&ev, l, strlen(l), 0, &ignored) == 0 &&
                    !strcmp(sw_json_str(ev, "level", ""), "error")) {
                        free(msg);
                        msg = sw_xstrdup(sw_json_str(ev, "msg", "runc failed"));
                }
                json_decref(ev);
        }
        free(text);
        return msg;
}

int step_rt_run(int *exit_code, const struct step_rt_process *p, struct sw_err *err)
{
        const char *runtime = p->runtime ? p->runtime : "runc";
        const char *state = p->state_dir ? p->state_dir : "/run/slipway-runc";
        char *config = NULL, *config_path = NULL, *log_path = NULL, *errmsg = NULL;
        json_t *spec = NULL;
        int pipefd[2] = {-1, -1}, status, rc = 0;
        int64_t t0 = sw_mono_ms(), last_kill = 0;
        bool killed = false, timed_out = false;
        pid_t pid;

        if (!valid_id(p->id))
                return sw_err_set(err, SW_EINVAL, "container id '%s' is not valid", p->id);
        if (p->rootfs[0] != '/')
                return sw_err_set(err, SW_EINVAL, "rootfs '%s' must be absolute", p->rootfs);
        rc = sw_mkdir_p(state, 0700, err);
        if (rc)
                return rc;
        spec = spec_json(p);
        config = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        config_path = sw_xasprintf("%s/config.json", p->bundle_dir);
        log_path = sw_xasprintf("%s/runc.log", p->bundle_dir);
        rc = sw_write_file_atomic(config_path, config, strlen(config), 0600, err);
        if (rc)
                goto out;
        unlink(log_path);
        if (pipe2(pipefd, O_CLOEXEC) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "pipe");
                goto out;
        }
        {
                char *args[] = {
                        (char *)runtime, "--root", (char *)state, "--log",    log_path,
                        "--log-format",  "json",   "run",         "--bundle", (char *)p->bundle_dir,
                        (char *)p->id,   NULL};
                pid = spawn_runc(args, pipefd[1]);
        }
        close(pipefd[1]);
        pipefd[1] = -1;
        if (pid < 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "start %s", runtime);
                goto out;
        }
        for (;;) {
                struct pollfd pfd = {pipefd[0], POLLIN, 0};
                char buf[8192];
                int n = poll(&pfd, 1, 100);

                if (n > 0) {
                        ssize_t got = read(pipefd[0], buf, sizeof(buf));
                        if (got > 0) {
                                if (p->output)
                                        p->output(p->output_arg, buf, (size_t)got);
                                continue;
                        }
                        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
                                break;
                }
                /*
                 * Until the pipe closes, ask runc again every half second: a
                 * kill that comes before the container exists does nothing.
                 */
                if (p->stop && atomic_load(p->stop))
                        killed = true;
                if (p->timeout_ms > 0 && sw_mono_ms() - t0 > p->timeout_ms)
                        killed = timed_out = true;
                if (killed && sw_mono_ms() - last_kill >= 500) {
                        runc_kill(runtime, state, p->id);
                        last_kill = sw_mono_ms();
                }
        }
        status = wait_status(pid);
        *exit_code = status;
        errmsg = runc_error(log_path);
        if (timed_out)
                rc = sw_err_set(err, SW_ETIMEDOUT, "still running after %llds; killed",
                                (long long)(p->timeout_ms / 1000));
        else if (killed)
                rc = sw_err_set(err, SW_ECANCELED, "stopped");
        else if (status == 127 && !errmsg)
                rc = sw_err_set(err, SW_ENOTFOUND, "cannot run the OCI runtime '%s'", runtime);
        else if (status != 0 && errmsg)
                rc = sw_err_set(err, SW_EFAILED, "%s: %s", runtime, errmsg);
out:
        if (pipefd[0] >= 0)
                close(pipefd[0]);
        if (pipefd[1] >= 0)
                close(pipefd[1]);
        free(errmsg);
        free(config);
        free(config_path);
        free(log_path);
        json_decref(spec);
        return rc;
}

/* ---- detached containers ---- */

/*
 * posix_spawn `args` (the launcher in supervisor mode) with stdin and
 * stderr on `nullfd` and stdout on `logfd`: the child shares the caller's
 * memory until its exec instead of copying it, as fork would. 0 or an errno.
 */
static int spawn_supervisor(pid_t *pid, char *const *args, int logfd, int nullfd)
{
        posix_spawn_file_actions_t fa;
        int rc;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, nullfd, 0);
        posix_spawn_file_actions_adddup2(&fa, logfd, 1);
        posix_spawn_file_actions_adddup2(&fa, nullfd, 2);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        rc = posix_spawn(pid, args[0], &fa, NULL, args, environ);
        posix_spawn_file_actions_destroy(&fa);
        return rc;
}

int step_rt_start(const struct step_rt_process *p, const char *log_path, const char *exit_path,
                  struct sw_err *err)
{
        const char *runtime = p->runtime ? p->runtime : "runc";
        const char *state = p->state_dir ? p->state_dir : "/run/slipway-runc";
        char *config = NULL, *config_path = NULL, *runc_log = NULL, *exit_tmp = NULL;
        char *helper = eng_worker_sibling("slipway");
        json_t *spec = NULL;
        int logfd = -1, nullfd = -1, rc = 0, st;
        pid_t pid;

        if (!valid_id(p->id))
                return sw_err_set(err, SW_EINVAL, "container id '%s' is not valid", p->id);
        if (p->rootfs[0] != '/')
                return sw_err_set(err, SW_EINVAL, "rootfs '%s' must be absolute", p->rootfs);
        rc = sw_mkdir_p(state, 0700, err);
        if (rc)
                return rc;
        spec = spec_json(p);
        config = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        config_path = sw_xasprintf("%s/config.json", p->bundle_dir);
        runc_log = sw_xasprintf("%s/runc.log", p->bundle_dir);
        exit_tmp = sw_xasprintf("%s.tmp", exit_path);
        /* Written anew at every start: no fsync, a crash of the machine ends the container too. */
        rc = sw_write_file_replace(config_path, config, strlen(config), 0600, err);
        if (rc)
                goto out;
        unlink(runc_log);
        unlink(exit_path);
        logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (logfd < 0 || nullfd < 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "open '%s'", log_path);
                goto out;
        }
        {
                char *args[] = {helper,
                                STEP_RT_SUPERVISE_CMD,
                                p->log_timestamps ? "stamp" : "plain",
                                exit_tmp,
                                (char *)exit_path,
                                (char *)runtime,
                                "--root",
                                (char *)state,
                                "--log",
                                runc_log,
                                "--log-format",
                                "json",
                                "run",
                                "--bundle",
                                (char *)p->bundle_dir,
                                p->keep ? "--keep" : (char *)p->id,
                                p->keep ? (char *)p->id : NULL,
                                NULL};
                if (helper && access(helper, X_OK) == 0) {
                        rc = spawn_supervisor(&pid, args, logfd, nullfd);
                        if (rc)
                                rc = sw_err_errno(err, SW_EIO, rc, "start the supervisor '%s'",
                                                  helper);
                } else {
                        pid = fork();
                        if (pid == 0) {
                                /* A middle process, so the supervisor is nobody's child here. */
                                if (fork() == 0)
                                        step_rt_supervise(args + 5, logfd, nullfd,
                                                          p->log_timestamps, exit_tmp, exit_path);
                                _exit(0);
                        }
                        if (pid < 0)
                                rc = sw_err_errno(err, SW_EIO, errno, "fork");
                }
                if (rc)
                        goto out;
        }
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
out:
        if (logfd >= 0)
                close(logfd);
        if (nullfd >= 0)
                close(nullfd);
        free(config);
        free(config_path);
        free(runc_log);
        free(exit_tmp);
        free(helper);
        json_decref(spec);
        return rc;
}

/* Run runc with `args`, capturing up to 64 KiB of its stdout into *out; returns its status. */
static int runc_capture(char **out, char *const *args)
{
        int pfd[2], status;
        size_t len = 0, cap = 65536;
        char *buf = sw_xmalloc(cap + 1);
        pid_t pid;

        if (pipe2(pfd, O_CLOEXEC) != 0) {
                free(buf);
                return -1;
        }
        pid = spawn_runc(args, pfd[1]);
        close(pfd[1]);
        for (;;) {
                ssize_t n = read(pfd[0], buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (len == cap)
                        break;
        }
        close(pfd[0]);
        buf[len] = '\0';
        status = pid > 0 ? wait_status(pid) : -1;
        *out = buf;
        return status;
}

/* RFC 3339 with nanoseconds ("2026-11-27T00:50:01.123456789Z") to epoch ms; 0 when unparsable. */
static int64_t rfc3339_ms(const char *s)
{
        struct tm tm;
        int64_t days, y, m;
        int ms = 0;

        memset(&tm, 0, sizeof(tm));
        if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec) != 6)
                return 0;
        {
                const char *dot = strchr(s, '.');
                if (dot)
                        for (int i = 1; i <= 3 && dot[i] >= '0' && dot[i] <= '9'; i++)
                                ms = ms * 10 + (dot[i] - '0');
        }
        /* Days from the civil date (proleptic Gregorian), without timegm. */
        y = tm.tm_year;
        m = tm.tm_mon;
        y -= m <= 2;
        {
                int64_t era = (y >= 0 ? y : y - 399) / 400;
                int64_t yoe = y - era * 400;
                int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + tm.tm_mday - 1;
                int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
                days = era * 146097 + doe - 719468;
        }
        return ((days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) * 1000) + ms;
}

int step_rt_state(struct step_rt_state *out, const char *runtime, const char *state_dir,
                  const char *id, struct sw_err *err)
{
        const char *rt = runtime ? runtime : "runc";
        char *args[] = {(char *)rt, "--root", (char *)state_dir, "state", (char *)id, NULL};
        char *text = NULL;
        json_t *doc = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        int status, rc = 0;

        if (!valid_id(id))
                return sw_err_set(err, SW_EINVAL, "container id '%s' is not valid", id);
        status = runc_capture(&text, args);
        if (status != 0 || sw_json_parse(&doc, text, strlen(text), 0, &ignored) != 0) {
                rc = status == 127
                             ? sw_err_set(err, SW_ENOTFOUND, "cannot run the OCI runtime '%s'", rt)
                             : sw_err_set(err, SW_ENOTFOUND, "container '%s' not found", id);
                goto out;
        }
        memset(out, 0, sizeof(*out));
        snprintf(out->status, sizeof(out->status), "%s", sw_json_str(doc, "status", ""));
        out->pid = (int)sw_json_int(doc, "pid", 0);
        out->created_ms = rfc3339_ms(sw_json_str(doc, "created", ""));
out:
        free(text);
        json_decref(doc);
        return rc;
}

int step_rt_kill(const char *runtime, const char *state_dir, const char *id, int sig, bool all,
                 struct sw_err *err)
{
        const char *rt = runtime ? runtime : "runc";
        char signame[16];
        char *text = NULL;
        int status;

        snprintf(signame, sizeof(signame), "%d", sig);
        {
                char *with_all[] = {(char *)rt, "--root",   (char *)state_dir, "kill",
                                    "--all",    (char *)id, signame,           NULL};
                char *one[] = {(char *)rt, "--root", (char *)state_dir, "kill", (char *)id,
                               signame,    NULL};
                status = runc_capture(&text, all ? with_all : one);
        }
        free(text);
        if (status != 0)
                return sw_err_set(err, SW_ENOTFOUND, "cannot signal container '%s'", id);
        return 0;
}

void step_rt_delete(const char *runtime, const char *state_dir, const char *id)
{
        const char *rt = runtime ? runtime : "runc";
        char *args[] = {(char *)rt, "--root", (char *)state_dir, "delete", "--force",
                        (char *)id, NULL};
        pid_t pid = spawn_runc(args, -1);

        if (pid > 0)
                wait_status(pid);
}

char *step_rt_log_error(const char *bundle_dir)
{
        char *path = sw_xasprintf("%s/runc.log", bundle_dir);
        char *msg = runc_error(path);

        free(path);
        return msg;
}

int step_rt_exec(int *exit_code, const char *runtime, const char *state_dir, const char *id,
                 const char *const *args, int64_t timeout_ms, struct sw_err *err)
{
        const char *rt = runtime ? runtime : "runc";
        size_t n = 0;
        char **argv;
        int64_t until = sw_mono_ms() + (timeout_ms > 0 ? timeout_ms : 1000);
        int st;
        pid_t pid, w;

        if (!valid_id(id))
                return sw_err_set(err, SW_EINVAL, "container id '%s' is not valid", id);
        while (args[n])
                n++;
        if (n == 0)
                return sw_err_set(err, SW_EINVAL, "exec needs a command");
        argv = sw_xcalloc(n + 6, sizeof(*argv));
        argv[0] = (char *)rt;
        argv[1] = "--root";
        argv[2] = (char *)state_dir;
        argv[3] = "exec";
        argv[4] = (char *)id;
        for (size_t i = 0; i < n; i++)
                argv[5 + i] = (char *)args[i];
        pid = spawn_runc(argv, -1);
        free(argv);
        if (pid < 0)
                return sw_err_errno(err, SW_EIO, errno, "start %s", rt);
        for (;;) {
                w = waitpid(pid, &st, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return sw_err_errno(err, SW_EIO, errno, "wait for %s", rt);
                if (sw_mono_ms() >= until) {
                        /* runc exec forwards the signal to the process it started. */
                        kill(pid, SIGKILL);
                        wait_status(pid);
                        return sw_err_set(err, SW_ETIMEDOUT, "exec in '%s' timed out", id);
                }
                sw_sleep_ms(10);
        }
        *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return 0;
}
