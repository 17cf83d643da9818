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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
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
