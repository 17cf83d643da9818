/*
 * orch.c - start the real API server and run the real kubectl (see orch.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define KUBECTL "/usr/bin/kubectl"

int t_orch_free_port(void)
{
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
                port = ntohs(sa.sin_port);
        if (fd >= 0)
                close(fd);
        return port;
}

static void sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static bool port_open(int port)
{
        struct sockaddr_in sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool ok;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

/* The environment of the children: no SLIPWAY_* of ours beyond what we set. */
static char **child_env(const struct t_orch *o)
{
        char **env = sw_xcalloc(8, sizeof(*env));
        int n = 0;

        env[n++] = sw_xasprintf("PATH=/usr/local/bin:/usr/bin:/bin");
        env[n++] = sw_xasprintf("HOME=%s", o->dir);
        env[n++] = sw_xasprintf("SLIPWAY_DATA=%s", o->dir);
        env[n++] = sw_xasprintf("SLIPWAY_KUBE_LISTEN=127.0.0.1:%d", o->port);
        env[n++] = sw_xasprintf("SLIPWAY_LOG_LEVEL=warn");
        if (o->service_cidr)
                env[n++] = sw_xasprintf("SLIPWAY_SERVICE_CIDR=%s", o->service_cidr);
        env[n] = NULL;
        return env;
}

static void env_free(char **env)
{
        for (char **e = env; *e; e++)
                free(*e);
        free(env);
}

/* fork+exec `argv` with stdin from `in_fd`, stdout/stderr to `out_fd`/`err_fd`. */
static pid_t spawn(char *const *argv, char **env, int in_fd, int out_fd, int err_fd)
{
        pid_t pid = fork();

        if (pid == 0) {
                if (in_fd >= 0)
                        dup2(in_fd, 0);
                else {
                        int nul = open("/dev/null", O_RDONLY);
                        dup2(nul, 0);
                }
                dup2(out_fd, 1);
                dup2(err_fd, 2);
                execve(argv[0], argv, env);
                _exit(127);
        }
        return pid;
}

int t_wait_pid(pid_t pid, int timeout_ms)
{
        int status = 0;

        for (int waited = 0;; waited += 20) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        break;
                if (r < 0)
                        return -1;
                if (waited >= timeout_ms) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -1;
                }
                sleep_ms(20);
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool t_orch_start(struct t_orch *o, const char *name)
{
        const char *slipway = getenv("SW_TEST_SLIPWAY");
        char *log = NULL, *argv[3];
        char **env;
        int fd, kfd;
        pid_t kc;
        struct sw_err err = SW_ERR_INIT;
        const char *service_cidr = o->service_cidr; /* the one field set by the caller */

        memset(o, 0, sizeof(*o));
        o->pid = -1;
        o->service_cidr = service_cidr;
        if (!slipway) {
                fprintf(stderr, "SW_TEST_SLIPWAY is not set\n");
                return false;
        }
        o->dir = sw_xasprintf("%s/%s", t_tmpdir(), name);
        if (sw_mkdir_p(o->dir, 0700, &err) != 0) {
                fprintf(stderr, "%s\n", err.msg);
                return false;
        }
        o->kubeconfig = sw_xasprintf("%s/kubectl-config", o->dir);
        o->cache = sw_xasprintf("%s/kube-cache", o->dir);
        o->port = t_orch_free_port();
        env = child_env(o);
        log = sw_xasprintf("%s/server.log", o->dir);
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        argv[0] = (char *)slipway;
        argv[1] = (char *)"kube-apiserver";
        argv[2] = NULL;
        o->pid = spawn(argv, env, -1, fd, fd);
        close(fd);
        for (int i = 0; i < 500 && !port_open(o->port); i++)
                sleep_ms(20);
        if (!port_open(o->port)) {
                fprintf(stderr, "kube-apiserver did not start; see %s\n", log);
                free(log);
                env_free(env);
                return false;
        }
        kfd = open(o->kubeconfig, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        argv[1] = (char *)"kubeconfig";
        kc = spawn(argv, env, -1, kfd, 2);
        close(kfd);
        env_free(env);
        free(log);
        return t_wait_pid(kc, 10000) == 0;
}

void t_orch_stop(struct t_orch *o)
{
        if (o->pid > 0) {
                char *log = sw_xasprintf("%s/server.log", o->dir), *text = NULL;
                size_t len = 0;
                struct sw_err err = SW_ERR_INIT;

                kill(o->pid, SIGTERM);
                if (t_wait_pid(o->pid, 10000) != 0)
                        t_fail(__FILE__, __LINE__,
                               "kube-apiserver did not exit cleanly on SIGTERM");
                /* Under ASan the server reports memory errors and leaks in its log at exit. */
                if (sw_read_file(&text, &len, log, 16 << 20, &err) == 0 &&
                    (strstr(text, "Sanitizer") || strstr(text, "runtime error")))
                        t_fail(__FILE__, __LINE__, "kube-apiserver reported:\n%s", text);
                free(text);
                free(log);
        }
        free(o->dir);
        free(o->kubeconfig);
        free(o->cache);
        memset(o, 0, sizeof(*o));
}

static char **kubectl_argv(const struct t_orch *o, const char *const *args)
{
        int n = 0;
        char **argv;

        while (args[n])
                n++;
        argv = sw_xcalloc((size_t)n + 6, sizeof(*argv));
        argv[0] = sw_xstrdup(KUBECTL);
        argv[1] = sw_xasprintf("--kubeconfig=%s", o->kubeconfig);
        argv[2] = sw_xasprintf("--cache-dir=%s", o->cache);
        for (int i = 0; i < n; i++)
                argv[3 + i] = sw_xstrdup(args[i]);
        return argv;
}

static void argv_free(char **argv)
{
        for (char **a = argv; *a; a++)
                free(*a);
        free(argv);
}

int t_kubectl(const struct t_orch *o, char **out, const char *input, const char *const *args)
{
        char **argv = kubectl_argv(o, args), **env = child_env(o);
        char *out_path = sw_xasprintf("%s/kubectl.out", o->dir);
        char *err_path = sw_xasprintf("%s/kubectl.err", o->dir);
        char *in_path = sw_xasprintf("%s/kubectl.in", o->dir);
        char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        int ofd, efd, ifd = -1, rc;
        struct sw_err err = SW_ERR_INIT;

        if (input) {
                sw_write_file_atomic(in_path, input, strlen(input), 0600, &err);
                ifd = open(in_path, O_RDONLY);
        }
        ofd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        rc = t_wait_pid(spawn(argv, env, ifd, ofd, efd), 60000);
        close(ofd);
        close(efd);
        if (ifd >= 0)
                close(ifd);
        sw_read_file(&a, &alen, out_path, 16 << 20, &err);
        sw_read_file(&b, &blen, err_path, 16 << 20, &err);
        *out = sw_xasprintf("%s%s", a ? a : "", b ? b : "");
        free(a);
        free(b);
        free(out_path);
        free(err_path);
        free(in_path);
        argv_free(argv);
        env_free(env);
        return rc;
}

pid_t t_kubectl_bg(const struct t_orch *o, const char *out_path, const char *const *args)
{
        char **argv = kubectl_argv(o, args), **env = child_env(o);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        pid_t pid = spawn(argv, env, -1, fd, fd);

        close(fd);
        argv_free(argv);
        env_free(env);
        return pid;
}

bool t_kubectl_until(const struct t_orch *o, const char *want, int64_t timeout_ms,
                     const char *const *args)
{
        int64_t end = sw_mono_ms() + timeout_ms;
        char *out = NULL;

        for (;;) {
                free(out);
                out = NULL;
                t_kubectl(o, &out, NULL, args);
                if (out && strstr(out, want)) {
                        free(out);
                        return true;
                }
                if (sw_mono_ms() > end)
                        break;
                sw_sleep_ms(200);
        }
        fprintf(stderr, "waited for '%s', last output: %s\n", want, out ? out : "(none)");
        free(out);
        return false;
}
