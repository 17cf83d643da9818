/*
 * supervise.c - child servers kept alive (see supervise.h).
 *
 * Everything a child needs (argv, the environment, the log file) is
 * prepared before fork(), so the child runs only async-signal-safe calls
 * until execve(): this process has threads. Children get PR_SET_PDEATHSIG
 * so that they go down with slipway even when it is killed with SIGKILL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/supervise.h"
#include "common/banned.h"

#define PARTS_MAX 16
#define TICK_MS 200
#define HEALTH_EVERY_MS 1000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

extern char **environ;

struct part {
        char name[32];
        char **argv;
        char **envp;
        char *log_path;
        char *health_addr;
        int64_t grace_ms;
        int stop_signal;
        pid_t pid;
        bool healthy;
        int restarts;
        int64_t backoff_ms;
        int64_t restart_at; /* monotonic; 0: not waiting */
        int64_t next_health;
        char last_exit[64];
};

struct eng_super {
        pthread_mutex_t lock;
        struct part parts[PARTS_MAX];
        int nparts;
        pthread_t thread;
        bool thread_started;
        atomic_bool quit;
};

static char **strv_dup(const char *const *v, const char *const *more)
{
        size_t n = 0, m = 0, k = 0;
        char **out;

        while (v && v[n])
                n++;
        while (more && more[m])
                m++;
        out = sw_xcalloc(n + m + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                out[k++] = sw_xstrdup(v[i]);
        for (size_t i = 0; i < m; i++)
                out[k++] = sw_xstrdup(more[i]);
        return out;
}

static void strv_free(char **v)
{
        if (!v)
                return;
        for (size_t i = 0; v[i]; i++)
                free(v[i]);
        free(v);
}

static pid_t part_spawn(struct part *p, struct sw_err *err)
{
        int logfd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        pid_t pid;

        if (logfd < 0 || nullfd < 0) {
                int e = errno;
                if (logfd >= 0)
                        close(logfd);
                if (nullfd >= 0)
                        close(nullfd);
                sw_err_errno(err, SW_EIO, e, "%s: open log '%s'", p->name, p->log_path);
                return -1;
        }
        pid = fork();
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                pthread_sigmask(SIG_SETMASK, &none, NULL);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(nullfd, 0);
                dup2(logfd, 1);
                dup2(logfd, 2);
                close_range(3, ~0U, 0);
                setpgid(0, 0);
                execve(p->argv[0], p->argv, p->envp);
                _exit(127);
        }
        close(logfd);
        close(nullfd);
        if (pid < 0) {
                sw_err_errno(err, SW_EIO, errno, "%s: fork", p->name);
                return -1;
        }
        return pid;
}

bool eng_tcp_alive(const char *addr, int64_t timeout_ms)
{
        char host[128];
        const char *colon = strrchr(addr, ':');
        struct addrinfo hints, *res = NULL;
        bool ok = false;
        int fd;

        if (!colon || (size_t)(colon - addr) >= sizeof(host))
                return false;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
                return false;
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
                        ok = true;
                } else if (errno == EINPROGRESS) {
                        struct pollfd pfd = {fd, POLLOUT, 0};
                        int e = 0;
                        socklen_t len = sizeof(e);
                        if (poll(&pfd, 1, (int)timeout_ms) == 1 &&
                            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0)
                                ok = true;
                }
                close(fd);
        }
        freeaddrinfo(res);
        return ok;
}

static void describe_exit(char *out, size_t size, int status)
{
        if (WIFEXITED(status))
                snprintf(out, size, "exit %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(out, size, "signal %d", WTERMSIG(status));
        else
                snprintf(out, size, "status %d", status);
}

static void *super_loop(void *arg)
{
        struct eng_super *s = arg;

        while (!atomic_load(&s->quit)) {
                pthread_mutex_lock(&s->lock);
                for (int i = 0; i < s->nparts; i++) {
                        struct part *p = &s->parts[i];
                        int64_t now = sw_mono_ms();
                        int status;

                        if (p->pid > 0 && waitpid(p->pid, &status, WNOHANG) == p->pid) {
                                describe_exit(p->last_exit, sizeof(p->last_exit), status);
                                sw_log(SW_LOG_WARN, "supervise", "part died; restarting",
                                       "{s:s,s:i,s:s,s:I}", "part", p->name, "pid", (int)p->pid,
                                       "exit", p->last_exit, "backoff_ms",
                                       (json_int_t)p->backoff_ms);
                                p->pid = 0;
                                p->healthy = false;
                                p->restart_at = now + p->backoff_ms;
                                p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS
                                                        ? BACKOFF_MAX_MS
                                                        : p->backoff_ms * 2;
                        }
                        if (p->pid == 0 && p->restart_at && now >= p->restart_at) {
                                struct sw_err err = SW_ERR_INIT;
                                p->restart_at = 0;
                                p->pid = part_spawn(p, &err);
                                if (p->pid < 0) {
                                        p->pid = 0;
                                        p->restart_at = now + p->backoff_ms;
                                } else {
                                        p->restarts++;
                                }
                        }
                        if (p->pid > 0 && p->health_addr && now >= p->next_health) {
                                bool was = p->healthy;
                                p->healthy = eng_tcp_alive(p->health_addr, 200);
                                p->next_health = now + HEALTH_EVERY_MS;
                                /* A part that stays up and healthy earns its quick restarts back. */
                                if (p->healthy)
                                        p->backoff_ms = BACKOFF_MIN_MS;
                                if (was != p->healthy)
                                        sw_log(SW_LOG_INFO, "supervise",
                                               p->healthy ? "part healthy" : "part unhealthy",
                                               "{s:s,s:s}", "part", p->name, "addr",
                                               p->health_addr);
                        }
                }
                pthread_mutex_unlock(&s->lock);
                sw_sleep_ms(TICK_MS);
        }
        return NULL;
}

int eng_super_new(struct eng_super **out, struct sw_err *err)
{
        struct eng_super *s = sw_xcalloc(1, sizeof(*s));

        pthread_mutex_init(&s->lock, NULL);
        if (pthread_create(&s->thread, NULL, super_loop, s) != 0) {
                pthread_mutex_destroy(&s->lock);
                free(s);
                return sw_err_set(err, SW_EINTERNAL, "cannot start the supervisor thread");
        }
        s->thread_started = true;
        *out = s;
        return 0;
}

int eng_super_add(struct eng_super *s, const struct eng_part_spec *spec, struct sw_err *err)
{
        struct part *p;
        int rc = 0;

        if (access(spec->argv[0], X_OK) != 0)
                return sw_err_errno(err, SW_ENOTFOUND, errno, "%s: cannot run '%s'", spec->name,
                                    spec->argv[0]);
        pthread_mutex_lock(&s->lock);
        if (s->nparts == PARTS_MAX) {
                pthread_mutex_unlock(&s->lock);
                return sw_err_set(err, SW_ETOOBIG, "too many supervised parts");
        }
        p = &s->parts[s->nparts];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%s", spec->name);
        p->argv = strv_dup(spec->argv, NULL);
        p->envp = strv_dup((const char *const *)environ, spec->env);
        p->log_path = sw_xstrdup(spec->log_path);
        p->health_addr = spec->health_addr ? sw_xstrdup(spec->health_addr) : NULL;
        p->grace_ms = spec->stop_grace_ms > 0 ? spec->stop_grace_ms : 5000;
        p->stop_signal = spec->stop_signal ? spec->stop_signal : SIGTERM;
        p->backoff_ms = BACKOFF_MIN_MS;
        p->pid = part_spawn(p, err);
        if (p->pid < 0) {
                strv_free(p->argv);
                strv_free(p->envp);
                free(p->log_path);
                free(p->health_addr);
                rc = err->code;
        } else {
                s->nparts++;
                sw_log(SW_LOG_INFO, "supervise", "part started", "{s:s,s:i,s:s?}", "part", p->name,
                       "pid", (int)p->pid, "addr", p->health_addr);
        }
        pthread_mutex_unlock(&s->lock);
        return rc;
}

int eng_super_wait_healthy(struct eng_super *s, int64_t timeout_ms, struct sw_err *err)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        char sick[256];

        for (;;) {
                size_t off = 0;
                sick[0] = '\0';
                pthread_mutex_lock(&s->lock);
                for (int i = 0; i < s->nparts; i++) {
                        struct part *p = &s->parts[i];
                        if (!p->health_addr)
                                continue;
                        if (!p->healthy && p->pid > 0 && eng_tcp_alive(p->health_addr, 100))
                                p->healthy = true;
                        if (!p->healthy && off < sizeof(sick))
                                off += (size_t)snprintf(sick + off, sizeof(sick) - off, "%s%s (%s)",
                                                        off ? ", " : "", p->name, p->health_addr);
                }
                pthread_mutex_unlock(&s->lock);
                if (!sick[0])
                        return 0;
                if (sw_mono_ms() > deadline)
                        return sw_err_set(err, SW_ETIMEDOUT, "not answering after %llds: %s",
                                          (long long)(timeout_ms / 1000), sick);
                sw_sleep_ms(50);
        }
}

int eng_super_status(struct eng_super *s, struct eng_part_status *out, int max)
{
        int n = 0;

        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < s->nparts && n < max; i++, n++) {
                struct part *p = &s->parts[i];
                snprintf(out[n].name, sizeof(out[n].name), "%s", p->name);
                out[n].pid = p->pid;
                out[n].healthy = p->healthy;
                out[n].restarts = p->restarts;
                snprintf(out[n].addr, sizeof(out[n].addr), "%s",
                         p->health_addr ? p->health_addr : "");
                snprintf(out[n].last_exit, sizeof(out[n].last_exit), "%s", p->last_exit);
        }
        pthread_mutex_unlock(&s->lock);
        return n;
}

pid_t eng_super_pid(struct eng_super *s, const char *name)
{
        pid_t pid = 0;

        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < s->nparts; i++)
                if (!strcmp(s->parts[i].name, name))
                        pid = s->parts[i].pid;
        pthread_mutex_unlock(&s->lock);
        return pid;
}

static void part_stop(struct part *p)
{
        int64_t deadline;
        int status;

        if (p->pid <= 0)
                return;
        kill(p->pid, p->stop_signal);
        deadline = sw_mono_ms() + p->grace_ms;
        while (sw_mono_ms() < deadline) {
                if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
                        p->pid = 0;
                        return;
                }
                sw_sleep_ms(20);
        }
        /* The whole process group: nginx's workers, for one. */
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
        p->pid = 0;
}

void eng_super_free(struct eng_super *s)
{
        if (!s)
                return;
        atomic_store(&s->quit, true);
        if (s->thread_started)
                pthread_join(s->thread, NULL);
        for (int i = s->nparts - 1; i >= 0; i--) {
                struct part *p = &s->parts[i];
                part_stop(p);
                sw_log(SW_LOG_INFO, "supervise", "part stopped", "{s:s}", "part", p->name);
                strv_free(p->argv);
                strv_free(p->envp);
                free(p->log_path);
                free(p->health_addr);
        }
        pthread_mutex_destroy(&s->lock);
        free(s);
}
