/*
 * git.c - test repositories and git servers on loopback (see git.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
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
#include "tests/harness/git.h"
#include "common/banned.h"

extern char **environ;

#define T_GIT_HTTP_BACKEND "/usr/lib/git-core/git-http-backend"

/* A fixed identity and no user or system configuration, for every git command. */
static void git_env(void)
{
        setenv("GIT_AUTHOR_NAME", "slipway test", 1);
        setenv("GIT_AUTHOR_EMAIL", "test@slipway.invalid", 1);
        setenv("GIT_COMMITTER_NAME", "slipway test", 1);
        setenv("GIT_COMMITTER_EMAIL", "test@slipway.invalid", 1);
        setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
        setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
        setenv("GIT_TERMINAL_PROMPT", "0", 1);
}

static char *vformat(const char *fmt, va_list ap)
{
        va_list ap2;
        int n;
        char *s;

        va_copy(ap2, ap);
        n = vsnprintf(NULL, 0, fmt, ap2);
        va_end(ap2);
        s = sw_xmalloc((size_t)n + 1);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        return s;
}

int t_git_sh(const char *fmt, ...)
{
        va_list ap;
        char *cmd;
        int st;

        git_env();
        va_start(ap, fmt);
        cmd = vformat(fmt, ap);
        va_end(ap);
        st = system(cmd);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fprintf(stderr, "  command failed (%d): %s\n", st, cmd);
        free(cmd);
        if (st == -1 || !WIFEXITED(st))
                return -1;
        return WEXITSTATUS(st);
}

char *t_git_sh_out(const char *fmt, ...)
{
        va_list ap;
        char *cmd, *out = NULL;
        size_t len = 0, cap = 0;
        char chunk[4096];
        size_t n;
        FILE *f;
        int st;

        git_env();
        va_start(ap, fmt);
        cmd = vformat(fmt, ap);
        va_end(ap);
        f = popen(cmd, "r");
        if (!f) {
                fprintf(stderr, "  popen failed: %s\n", cmd);
                free(cmd);
                return NULL;
        }
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                if (len + n + 1 > cap) {
                        cap = (len + n + 1) * 2;
                        out = sw_xrealloc(out, cap);
                }
                memcpy(out + len, chunk, n);
                len += n;
        }
        st = pclose(f);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "  command failed (%d): %s\n", st, cmd);
                free(cmd);
                free(out);
                return NULL;
        }
        free(cmd);
        if (!out)
                return sw_xstrdup("");
        out[len] = '\0';
        while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
                out[--len] = '\0';
        return out;
}

int t_git_free_port(void)
{
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int port = -1;

        if (fd < 0)
                return -1;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

int t_git_wait_port(int port, int timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;

        while (sw_mono_ms() < deadline) {
                struct sockaddr_in a;
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int ok;

                memset(&a, 0, sizeof(a));
                a.sin_family = AF_INET;
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                a.sin_port = htons((uint16_t)port);
                ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
                if (fd >= 0)
                        close(fd);
                if (ok)
                        return 0;
                sw_sleep_ms(20);
        }
        fprintf(stderr, "  nothing listens on 127.0.0.1:%d after %d ms\n", port, timeout_ms);
        return -1;
}

/* Start argv[0] (looked up in PATH) with stdout and stderr appended to `log`. */
static int spawn(pid_t *out, const char *log, char *const argv[])
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int rc;

        git_env();
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        /* Its own process group, so that stopping it also stops the children it forks. */
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setpgroup(&attr, 0);
        rc = posix_spawnp(out, argv[0], &fa, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) {
                fprintf(stderr, "  cannot start %s: %s\n", argv[0], strerror(rc));
                return -1;
        }
        return 0;
}

/*
 * SIGTERM to the process group that spawn() made for `pid`, wait up to 5 s
 * for `pid`, then SIGKILL whatever of the group is left.
 */
static void stop_pid(pid_t pid)
{
        int64_t deadline = sw_mono_ms() + 5000;
        int st;

        if (pid <= 0)
                return;
        kill(-pid, SIGTERM);
        while (sw_mono_ms() < deadline) {
                pid_t r = waitpid(pid, &st, WNOHANG);
                if (r == pid || (r < 0 && errno == ECHILD))
                        break;
                sw_sleep_ms(10);
        }
        kill(-pid, SIGKILL);
        waitpid(pid, &st, WNOHANG);
}

int t_git_repo_create(const char *root, const char *name)
{
        return t_git_sh("set -e; cd '%s'; git init -q --bare -b main '%s.git'; "
                        "git -C '%s.git' config uploadpack.allowAnySHA1InWant true; "
                        "git init -q -b main '%s.work'; cd '%s.work'; "
                        "git remote add origin '%s/%s.git'; echo '# %s' > README; "
                        "git add README; git commit -q -m 'first commit'; "
                        "git push -q origin main",
                        root, name, name, name, name, root, name, name) == 0
                       ? 0
                       : -1;
}

int t_git_commit_push(char sha_out[41], const char *work, const char *branch, const char *file,
                      const char *content)
{
        char *sha;

        if (t_git_sh("set -e; cd '%s'; git checkout -q '%s' 2>/dev/null || "
                     "git checkout -q -b '%s'; mkdir -p \"$(dirname '%s')\"; "
                     "printf '%%s' '%s' > '%s'; git add '%s'; git commit -q -m 'change %s'; "
                     "git push -q origin '%s'",
                     work, branch, branch, file, content, file, file, file, branch) != 0)
                return -1;
        sha = t_git_sh_out("git -C '%s' rev-parse HEAD", work);
        if (!sha || strlen(sha) != 40) {
                free(sha);
                return -1;
        }
        memcpy(sha_out, sha, 41);
        free(sha);
        return 0;
}

int t_git_tag_push(const char *work, const char *tag, bool annotated)
{
        return t_git_sh("set -e; cd '%s'; git tag %s '%s'; git push -q origin '%s'", work,
                        annotated ? "-a -m release" : "", tag, tag) == 0
                       ? 0
                       : -1;
}

int t_git_submodule_add_push(char sha_out[41], const char *work, const char *url, const char *path)
{
        char *sha;

        /* The file transport is off for submodules by default since git 2.38.1. */
        if (t_git_sh("set -e; cd '%s'; git -c protocol.file.allow=always submodule add -q '%s' "
                     "'%s'; git commit -q -m 'add submodule %s'; git push -q origin HEAD",
                     work, url, path, path) != 0)
                return -1;
        sha = t_git_sh_out("git -C '%s' rev-parse HEAD", work);
        if (!sha || strlen(sha) != 40) {
                free(sha);
                return -1;
        }
        memcpy(sha_out, sha, 41);
        free(sha);
        return 0;
}

int t_git_daemon_start(struct t_git_daemon *d, const char *base_path, const char *log_dir)
{
        char base[4096], port[32], *log;
        char *argv[] = {"git",
                        "daemon",
                        "--reuseaddr",
                        base,
                        "--export-all",
                        "--listen=127.0.0.1",
                        port,
                        "--informative-errors",
                        NULL};
        int rc;

        memset(d, 0, sizeof(*d));
        d->port = t_git_free_port();
        if (d->port < 0)
                return -1;
        snprintf(base, sizeof(base), "--base-path=%s", base_path);
        snprintf(port, sizeof(port), "--port=%d", d->port);
        log = sw_xasprintf("%s/git-daemon.log", log_dir);
        rc = spawn(&d->pid, log, argv);
        free(log);
        if (rc == 0 && t_git_wait_port(d->port, 10000) != 0) {
                t_git_daemon_stop(d);
                rc = -1;
        }
        return rc;
}

void t_git_daemon_stop(struct t_git_daemon *d)
{
        stop_pid(d->pid);
        d->pid = 0;
}

static int write_text(const char *path, const char *text)
{
        struct sw_err err = SW_ERR_INIT;

        if (sw_write_file_atomic(path, text, strlen(text), 0600, &err) != 0) {
                fprintf(stderr, "  %s\n", err.msg);
                return -1;
        }
        return 0;
}

int t_git_http_start(struct t_git_http *h, const char *project_root, const char *dir,
                     const char *user, const char *password, int limit_rate_kib)
{
        char *conf = NULL, *path = NULL, *sock = NULL, *log = NULL, *auth = NULL, *tmp = NULL;
        char *fcgi_argv[] = {"fcgiwrap", "-c", "1", "-s", NULL, NULL};
        char *nginx_argv[] = {"nginx", "-p", NULL, "-c", NULL, "-e", NULL, NULL};
        int64_t deadline;
        struct stat st;
        int rc = -1;

        memset(h, 0, sizeof(*h));
        h->dir = sw_xstrdup(dir);
        h->port = t_git_free_port();
        if (h->port < 0)
                goto out;
        tmp = sw_xasprintf("%s/tmp", dir);
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                goto out;
        if (user) {
                path = sw_xasprintf("%s/htpasswd", dir);
                auth = sw_xasprintf("%s:{PLAIN}%s\n", user, password);
                if (write_text(path, auth) != 0)
                        goto out;
                free(auth);
                auth = sw_xasprintf("auth_basic \"git\"; auth_basic_user_file %s;", path);
                free(path);
                path = NULL;
        }
        sock = sw_xasprintf("%s/fcgi.sock", dir);
        log = sw_xasprintf("%s/fcgiwrap.log", dir);
        fcgi_argv[4] = sw_xasprintf("unix:%s", sock);
        rc = spawn(&h->fcgi_pid, log, fcgi_argv);
        free(fcgi_argv[4]);
        if (rc != 0)
                goto out;
        rc = -1;
        deadline = sw_mono_ms() + 10000;
        while (stat(sock, &st) != 0 && sw_mono_ms() < deadline)
                sw_sleep_ms(10);

        conf = sw_xasprintf("daemon off;\n"
                            "worker_processes 1;\n"
                            "pid %s/nginx.pid;\n"
                            "error_log %s/error.log;\n"
                            "%s\n"
                            "events { worker_connections 64; }\n"
                            "http {\n"
                            "  access_log off;\n"
                            "  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
                            "  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi;\n"
                            "  scgi_temp_path %s/scgi;\n"
                            "  client_max_body_size 0;\n"
                            "  limit_rate %dk;\n"
                            "  server {\n"
                            "    listen 127.0.0.1:%d;\n"
                            "    location / {\n"
                            "      %s\n"
                            "      fastcgi_pass unix:%s;\n"
                            "      fastcgi_param SCRIPT_FILENAME " T_GIT_HTTP_BACKEND ";\n"
                            "      fastcgi_param GIT_PROJECT_ROOT %s;\n"
                            "      fastcgi_param GIT_HTTP_EXPORT_ALL 1;\n"
                            "      fastcgi_param PATH_INFO $uri;\n"
                            "      fastcgi_param QUERY_STRING $query_string;\n"
                            "      fastcgi_param REQUEST_METHOD $request_method;\n"
                            "      fastcgi_param CONTENT_TYPE $content_type;\n"
                            "      fastcgi_param CONTENT_LENGTH $content_length;\n"
                            "      fastcgi_param REMOTE_USER $remote_user;\n"
                            "      fastcgi_param REMOTE_ADDR $remote_addr;\n"
                            "      fastcgi_param SERVER_PROTOCOL $server_protocol;\n"
                            "      fastcgi_param GATEWAY_INTERFACE CGI/1.1;\n"
                            "      fastcgi_param HTTP_GIT_PROTOCOL $http_git_protocol;\n"
                            "    }\n"
                            "  }\n"
                            "}\n",
                            dir, dir, geteuid() == 0 ? "user root root;" : "", tmp, tmp, tmp, tmp,
                            tmp, limit_rate_kib > 0 ? limit_rate_kib : 0, h->port, auth ? auth : "",
                            sock, project_root);
        path = sw_xasprintf("%s/nginx.conf", dir);
        if (write_text(path, conf) != 0)
                goto out;
        free(log);
        log = sw_xasprintf("%s/nginx.out", dir);
        nginx_argv[2] = h->dir;
        nginx_argv[4] = path;
        nginx_argv[6] = sw_xasprintf("%s/error.log", dir);
        rc = spawn(&h->nginx_pid, log, nginx_argv);
        free(nginx_argv[6]);
        if (rc == 0 && t_git_wait_port(h->port, 10000) != 0)
                rc = -1;
out:
        if (rc != 0) {
                t_git_sh("cat '%s'/*.log '%s'/nginx.out >&2 2>/dev/null; true", dir, dir);
                t_git_http_stop(h);
        }
        free(conf);
        free(path);
        free(sock);
        free(log);
        free(auth);
        free(tmp);
        return rc;
}

void t_git_http_stop(struct t_git_http *h)
{
        stop_pid(h->nginx_pid);
        stop_pid(h->fcgi_pid);
        h->nginx_pid = h->fcgi_pid = 0;
        free(h->dir);
        h->dir = NULL;
}

int t_git_sshd_start(struct t_git_sshd *s, const char *dir)
{
        struct passwd *pw = getpwuid(geteuid());
        char *conf = NULL, *path = NULL, *text = NULL, *hostpub = NULL, *otherpub = NULL;
        char *argv[] = {"/usr/sbin/sshd", "-D", "-e", "-f", NULL, NULL};
        char *log = NULL;
        int rc = -1;

        memset(s, 0, sizeof(*s));
        if (!pw)
                return -1;
        s->user = sw_xstrdup(pw->pw_name);
        s->port = t_git_free_port();
        s->key = sw_xasprintf("%s/client_key", dir);
        s->other_key = sw_xasprintf("%s/other_key", dir);
        s->known_hosts = sw_xasprintf("%s/known_hosts", dir);
        s->wrong_known_hosts = sw_xasprintf("%s/wrong_known_hosts", dir);
        /* sshd running as root wants its privilege separation directory. */
        if (t_git_sh("set -e; cd '%s'; %s"
                     "ssh-keygen -q -t ed25519 -N '' -C host -f host_key; "
                     "ssh-keygen -q -t ed25519 -N '' -C client -f client_key; "
                     "ssh-keygen -q -t ed25519 -N '' -C other -f other_key; "
                     "cp client_key.pub authorized_keys",
                     dir, geteuid() == 0 ? "mkdir -p /run/sshd; " : "") != 0)
                goto out;
        hostpub = t_git_sh_out("cut -d' ' -f1,2 '%s/host_key.pub'", dir);
        otherpub = t_git_sh_out("cut -d' ' -f1,2 '%s/other_key.pub'", dir);
        if (!hostpub || !otherpub)
                goto out;
        text = sw_xasprintf("[127.0.0.1]:%d %s\n", s->port, hostpub);
        if (write_text(s->known_hosts, text) != 0)
                goto out;
        free(text);
        /* The right name with the wrong key: what a server in between would present. */
        text = sw_xasprintf("[127.0.0.1]:%d %s\n", s->port, otherpub);
        if (write_text(s->wrong_known_hosts, text) != 0)
                goto out;
        conf = sw_xasprintf("Port %d\n"
                            "ListenAddress 127.0.0.1\n"
                            "HostKey %s/host_key\n"
                            "AuthorizedKeysFile %s/authorized_keys\n"
                            "PidFile %s/sshd.pid\n"
                            "StrictModes no\n"
                            "UsePAM no\n"
                            "PasswordAuthentication no\n"
                            "KbdInteractiveAuthentication no\n"
                            "PubkeyAuthentication yes\n"
                            "PermitRootLogin prohibit-password\n",
                            s->port, dir, dir, dir);
        path = sw_xasprintf("%s/sshd_config", dir);
        if (write_text(path, conf) != 0)
                goto out;
        argv[4] = path;
        log = sw_xasprintf("%s/sshd.log", dir);
        if (spawn(&s->pid, log, argv) != 0)
                goto out;
        rc = t_git_wait_port(s->port, 10000);
out:
        if (rc != 0) {
                t_git_sh("cat '%s/sshd.log' >&2 2>/dev/null; true", dir);
                t_git_sshd_stop(s);
        }
        free(conf);
        free(path);
        free(text);
        free(hostpub);
        free(otherpub);
        free(log);
        return rc;
}

void t_git_sshd_stop(struct t_git_sshd *s)
{
        stop_pid(s->pid);
        s->pid = 0;
        free(s->user);
        free(s->key);
        free(s->other_key);
        free(s->known_hosts);
        free(s->wrong_known_hosts);
        s->user = s->key = s->other_key = s->known_hosts = s->wrong_known_hosts = NULL;
}
