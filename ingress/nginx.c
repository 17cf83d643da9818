/*
 * nginx.c - run nginx under a prefix directory, and change its configuration
 * without ever installing one it rejects.
 *
 * Layout under the prefix: nginx.conf (the live configuration), nginx.pid,
 * staging/nginx.conf (a candidate while it is being tested), and the temp
 * directories nginx creates. Relative paths in the configuration resolve
 * against the prefix, so a staged file tests exactly as it will run.
 *
 * Applying: stage -> `nginx -t` -> rename over the live file -> SIGHUP.
 * nginx reloads gracefully: the master starts workers on the new
 * configuration and old workers finish their in-flight requests before
 * exiting, so no request is lost. The master runs in the foreground
 * (`daemon off;`) in a process group of its own, so that stopping it, or
 * cleaning up after it was killed, reaches its workers too.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "ingress/ingress_int.h"
#include "common/banned.h"

#define NGINX_DEFAULT_BIN "/usr/sbin/nginx"
#define TEST_TIMEOUT_MS 60000
#define TEST_OUTPUT_MAX 65536
#define CONF_MAX_BYTES ((size_t)256 << 20)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define YOUNG_MS 10000

struct ingress_nginx {
        char *bin;
        char *prefix;
        char *output;
        char *live;    /* PREFIX/nginx.conf */
        char *staging; /* PREFIX/staging */
        char *staged;  /* PREFIX/staging/nginx.conf */
        char *pidfile; /* PREFIX/nginx.pid */
        char *listen;  /* set by start: supervision is on */
        int64_t start_timeout_ms;
        pid_t pid; /* our master, -1 when not running */
        int64_t reloads;
        int64_t started_ms;
        int64_t next_start_ms;
        int64_t backoff_ms;
};

int ingress_nginx_new(struct ingress_nginx **out, const struct ingress_nginx_options *opts,
                      struct sw_err *err)
{
        struct ingress_nginx *n;

        if (!opts || !opts->prefix || opts->prefix[0] != '/')
                return sw_err_set(err, SW_EINVAL, "nginx: prefix must be an absolute directory");
        n = sw_xcalloc(1, sizeof(*n));
        n->bin = sw_xstrdup(opts->nginx ? opts->nginx : NGINX_DEFAULT_BIN);
        n->prefix = sw_xstrdup(opts->prefix);
        n->output = opts->output ? sw_xstrdup(opts->output) : NULL;
        n->live = sw_xasprintf("%s/nginx.conf", opts->prefix);
        n->staging = sw_xasprintf("%s/staging", opts->prefix);
        n->staged = sw_xasprintf("%s/staging/nginx.conf", opts->prefix);
        n->pidfile = sw_xasprintf("%s/nginx.pid", opts->prefix);
        n->start_timeout_ms = opts->start_timeout_ms > 0 ? opts->start_timeout_ms : 10000;
        n->pid = -1;
        *out = n;
        return 0;
}

void ingress_nginx_free(struct ingress_nginx *n)
{
        if (!n)
                return;
        ingress_nginx_stop(n, 5000);
        free(n->bin);
        free(n->prefix);
        free(n->output);
        free(n->live);
        free(n->staging);
        free(n->staged);
        free(n->pidfile);
        free(n->listen);
        free(n);
}

pid_t ingress_nginx_pid(const struct ingress_nginx *n)
{
        return n->pid;
}

int64_t ingress_nginx_reloads(const struct ingress_nginx *n)
{
        return n->reloads;
}

/*
 * nginx gets a fixed environment, not ours: it needs none of it, and the one
 * variable it gets makes it much faster. Parsing a configuration with a
 * thousand servers and upstreams is mostly page faults on freshly allocated
 * configuration structures (about 9,000 for 1,000 hosts); with glibc's malloc
 * on transparent huge pages `nginx -t` takes a third of the time. Where the
 * tunable or THP is missing it is ignored.
 */
static char *const nginx_env[] = {
        "GLIBC_TUNABLES=glibc.malloc.hugetlb=1",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};

/* In a forked child: a clean signal state, no inherited descriptors but 0-2. */
static void child_setup(int out_fd)
{
        sigset_t none;
        int in = open("/dev/null", O_RDONLY);

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        if (in >= 0)
                dup2(in, 0);
        if (out_fd >= 0) {
                dup2(out_fd, 1);
                dup2(out_fd, 2);
        }
        closefrom(3);
}

/*
 * The interesting line of `nginx -t` output: from the first [emerg], [alert],
 * [crit] or [error] tag to the end of its line, without the "pid#tid: " that
 * follows the tag; else the first line.
 */
static void test_message(char *out, size_t size, const char *text)
{
        static const char *const levels[] = {"[emerg]", "[alert]", "[crit]", "[error]"};
        const char *line = NULL, *end, *rest;
        size_t i;

        for (i = 0; i < 4 && !line; i++)
                line = strstr(text, levels[i]);
        if (!line) {
                line = text;
                if (strncmp(line, "nginx: ", 7) == 0)
                        line += 7;
                end = strchr(line, '\n');
                snprintf(out, size, "%.*s", (int)(end ? end - line : (long)strlen(line)), line);
                if (!*out)
                        snprintf(out, size, "no output");
                return;
        }
        i--;
        rest = line + strlen(levels[i]);
        end = strchr(rest, '\n');
        if (!end)
                end = rest + strlen(rest);
        /* " 15161#15161: message" -> " message" */
        {
                const char *p = rest + strspn(rest, " ");
                size_t digits = strspn(p, "0123456789");
                if (digits && p[digits] == '#') {
                        const char *q = p + digits + 1;
                        q += strspn(q, "0123456789");
                        if (q[0] == ':' && q < end)
                                rest = q + 1;
                }
        }
        snprintf(out, size, "%s%.*s", levels[i], (int)(end - rest), rest);
}

/* `nginx -t -q -p PREFIX -c conf`: 0 when it passes, SW_EINVAL with nginx's message if not. */
static int nginx_test(struct ingress_nginx *n, const char *conf, struct sw_err *err)
{
        char *argv[] = {n->bin, "-t", "-q", "-p", n->prefix, "-c", (char *)conf, NULL};
        char *text = sw_xcalloc(1, TEST_OUTPUT_MAX + 1);
        char msg[768];
        size_t len = 0;
        int fds[2] = {-1, -1}, status = 0, rc;
        int64_t deadline = sw_mono_ms() + TEST_TIMEOUT_MS;
        pid_t pid;

        if (pipe(fds) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "nginx -t: pipe");
                goto out;
        }
        fcntl(fds[0], F_SETFD, FD_CLOEXEC);
        fcntl(fds[1], F_SETFD, FD_CLOEXEC);
        pid = fork();
        if (pid < 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "nginx -t: fork");
                goto out;
        }
        if (pid == 0) {
                child_setup(fds[1]);
                execve(argv[0], argv, nginx_env);
                _exit(127);
        }
        close(fds[1]);
        fds[1] = -1;
        for (;;) {
                struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
                int64_t left = deadline - sw_mono_ms();
                ssize_t r;

                if (left <= 0) {
                        kill(pid, SIGKILL);
                        break;
                }
                if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
                        break;
                r = read(fds[0], text + len, TEST_OUTPUT_MAX - len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                len += (size_t)r;
                if (len == TEST_OUTPUT_MAX)
                        break;
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                rc = 0;
                goto out;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
                rc = sw_err_set(err, SW_EUNAVAIL, "nginx -t: cannot run '%s'", n->bin);
                goto out;
        }
        text[len] = '\0';
        test_message(msg, sizeof(msg), text);
        rc = sw_err_set(err, SW_EINVAL, "nginx rejected the configuration: %s", msg);
out:
        if (fds[0] >= 0)
                close(fds[0]);
        if (fds[1] >= 0)
                close(fds[1]);
        free(text);
        return rc;
}

static int write_staged(struct ingress_nginx *n, const char *conf, size_t len, struct sw_err *err)
{
        int fd = -1, rc = 0;
        size_t off = 0;

        if ((rc = sw_mkdir_p(n->staging, 0755, err)) != 0)
                return rc;
        fd = open(n->staged, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return sw_err_errno(err, SW_EIO, errno, "write '%s'", n->staged);
        while (off < len) {
                ssize_t w = write(fd, conf + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "write '%s'", n->staged);
                        goto out;
                }
                off += (size_t)w;
        }
        /*
         * No fsync: the file is derived state. After a crash the controller
         * renders the table again and ingress_nginx_start() installs that, so
         * durability would only add its latency to every route change.
         */
out:
        close(fd);
        if (rc)
                unlink(n->staged);
        return rc;
}

/* Stage, test, and rename over the live file. */
static int install(struct ingress_nginx *n, const char *conf, size_t len, struct sw_err *err)
{
        int rc;

        if ((rc = write_staged(n, conf, len, err)) != 0)
                return rc;
        if ((rc = nginx_test(n, n->staged, err)) != 0) {
                unlink(n->staged);
                return rc;
        }
        if (rename(n->staged, n->live) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "rename to '%s'", n->live);
                unlink(n->staged);
                return rc;
        }
        return 0;
}

/* Connect once to "host:port"; true when something accepts. */
static bool port_open(const char *listen)
{
        struct addrinfo hints, *ai = NULL;
        const char *colon = strrchr(listen, ':');
        char host[256];
        bool ok = false;
        int fd;

        if (!colon || (size_t)(colon - listen) >= sizeof(host))
                return false;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
        if (host[0] == '[') {
                memmove(host, host + 1, strlen(host));
                host[strcspn(host, "]")] = '\0';
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
                return false;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
                close(fd);
        }
        freeaddrinfo(ai);
        return ok;
}

static void terminate(struct ingress_nginx *n, int64_t grace_ms);

/* Start the master on the live configuration and wait for its listen socket. */
static int spawn(struct ingress_nginx *n, struct sw_err *err)
{
        char *argv[] = {n->bin, "-p", n->prefix, "-c", n->live, NULL};
        int64_t deadline;
        int out_fd = -1, status;
        pid_t pid;

        /* Otherwise the check below would take someone else's socket for nginx's. */
        if (port_open(n->listen))
                return sw_err_set(err, SW_EBUSY, "nginx: something already listens on %s",
                                  n->listen);
        if (n->output) {
                out_fd = open(n->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (out_fd < 0)
                        return sw_err_errno(err, SW_EIO, errno, "open '%s'", n->output);
        }
        pid = fork();
        if (pid < 0) {
                if (out_fd >= 0)
                        close(out_fd);
                return sw_err_errno(err, SW_EIO, errno, "nginx: fork");
        }
        if (pid == 0) {
                setpgid(0, 0);
                child_setup(out_fd);
                execve(argv[0], argv, nginx_env);
                _exit(127);
        }
        setpgid(pid, pid); /* also here, so that it holds before either side runs on */
        if (out_fd >= 0)
                close(out_fd);
        n->pid = pid;
        n->started_ms = sw_mono_ms();

        deadline = sw_mono_ms() + n->start_timeout_ms;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        n->pid = -1;
                        kill(-pid, SIGKILL);
                        return sw_err_set(err, SW_EUNAVAIL,
                                          "nginx exited with status %d while starting (see its "
                                          "output%s%s)",
                                          WIFEXITED(status) ? WEXITSTATUS(status)
                                                            : 128 + WTERMSIG(status),
                                          n->output ? " in " : "", n->output ? n->output : "");
                }
                if (port_open(n->listen))
                        return 0;
                if (sw_mono_ms() > deadline) {
                        terminate(n, 1000);
                        return sw_err_set(err, SW_EUNAVAIL, "nginx did not listen on %s in %lld ms",
                                          n->listen, (long long)n->start_timeout_ms);
                }
                sw_sleep_ms(5);
        }
}

int ingress_nginx_start(struct ingress_nginx *n, const char *conf, size_t len, const char *listen,
                        struct sw_err *err)
{
        int rc;

        if (n->pid > 0)
                return sw_err_set(err, SW_EBUSY, "nginx already runs (pid %d)", (int)n->pid);
        if ((rc = sw_mkdir_p(n->prefix, 0755, err)) != 0)
                return rc;
        if ((rc = install(n, conf, len, err)) != 0)
                return rc;
        free(n->listen);
        n->listen = sw_xstrdup(listen);
        n->backoff_ms = 0;
        n->next_start_ms = 0;
        if ((rc = spawn(n, err)) != 0) {
                free(n->listen);
                n->listen = NULL;
        }
        return rc;
}

/* SIGTERM, wait up to grace_ms, SIGKILL the group, reap. */
static void terminate(struct ingress_nginx *n, int64_t grace_ms)
{
        int64_t deadline = sw_mono_ms() + grace_ms;
        pid_t pid = n->pid;
        bool reaped = false;

        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        while (sw_mono_ms() < deadline) {
                pid_t r = waitpid(pid, NULL, WNOHANG);
                if (r == pid || (r < 0 && errno == ECHILD)) {
                        reaped = true;
                        break;
                }
                sw_sleep_ms(5);
        }
        /* Workers left behind (or a master that ignored SIGTERM) go with the group. */
        kill(-pid, SIGKILL);
        if (!reaped)
                waitpid(pid, NULL, 0);
        n->pid = -1;
}

void ingress_nginx_stop(struct ingress_nginx *n, int64_t grace_ms)
{
        free(n->listen);
        n->listen = NULL; /* no restart after a stop */
        terminate(n, grace_ms);
}

/* The master from the pid file, if that process is an nginx. */
static pid_t pidfile_master(const struct ingress_nginx *n)
{
        char *text = NULL, *comm = NULL, *path = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        long v = -1;
        char *end = NULL;

        if (sw_read_file(&text, NULL, n->pidfile, 64, &ignored) != 0)
                return -1;
        v = strtol(text, &end, 10);
        if (end == text || v <= 1)
                v = -1;
        if (v > 0) {
                path = sw_xasprintf("/proc/%ld/comm", v);
                if (sw_read_file(&comm, NULL, path, 64, &ignored) != 0 ||
                    strncmp(comm, "nginx", 5) != 0)
                        v = -1;
        }
        free(path);
        free(comm);
        free(text);
        return (pid_t)v;
}

int ingress_nginx_apply(struct ingress_nginx *n, bool *changed_out, const char *conf, size_t len,
                        struct sw_err *err)
{
        struct sw_err ignored = SW_ERR_INIT;
        char *live = NULL;
        size_t live_len = 0;
        pid_t master;
        int rc;

        if (sw_read_file(&live, &live_len, n->live, CONF_MAX_BYTES, &ignored) == 0 &&
            live_len == len && memcmp(live, conf, len) == 0) {
                free(live);
                *changed_out = false;
                return 0;
        }
        free(live);
        if ((rc = sw_mkdir_p(n->prefix, 0755, err)) != 0)
                return rc;
        if ((rc = install(n, conf, len, err)) != 0)
                return rc;
        master = n->pid > 0 ? n->pid : pidfile_master(n);
        if (master > 0) {
                if (kill(master, SIGHUP) != 0)
                        return sw_err_errno(err, SW_EUNAVAIL, errno,
                                            "configuration installed, but reload of nginx pid %d "
                                            "failed",
                                            (int)master);
                n->reloads++;
        }
        *changed_out = true;
        return 0;
}

int ingress_nginx_poll(struct ingress_nginx *n, bool *restarted_out, struct sw_err *err)
{
        int64_t now = sw_mono_ms();
        int rc;

        *restarted_out = false;
        if (!n->listen)
                return 0; /* never started, or stopped on purpose */
        if (n->pid > 0) {
                pid_t r = waitpid(n->pid, NULL, WNOHANG);
                if (r == 0)
                        return 0;
                /* Dead: its workers may still hold the port; they go with the group. */
                kill(-n->pid, SIGKILL);
                n->pid = -1;
                if (now - n->started_ms < YOUNG_MS)
                        n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : BACKOFF_MIN_MS;
                else
                        n->backoff_ms = 0;
                if (n->backoff_ms > BACKOFF_MAX_MS)
                        n->backoff_ms = BACKOFF_MAX_MS;
                n->next_start_ms = now + n->backoff_ms;
        }
        if (now < n->next_start_ms)
                return 0;
        rc = spawn(n, err);
        if (rc) {
                n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : BACKOFF_MIN_MS;
                if (n->backoff_ms > BACKOFF_MAX_MS)
                        n->backoff_ms = BACKOFF_MAX_MS;
                n->next_start_ms = sw_mono_ms() + n->backoff_ms;
                return sw_err_wrap(err, "restart nginx");
        }
        *restarted_out = true;
        return 0;
}
