/*
 * proc.c - child processes and ports for the tests' real servers.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"
#include "common/banned.h"

int t_free_port(void)
{
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

        if (fd < 0)
                return -1;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

pid_t t_spawn(char *const argv[], const char *log_path)
{
        return t_spawn_env(argv, NULL, log_path);
}

pid_t t_spawn_env(char *const argv[], char *const envp[], const char *log_path)
{
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        {
                int fd = open(log_path ? log_path : "/dev/null",
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                if (nul >= 0)
                        dup2(nul, 0);
                if (envp)
                        execve(argv[0], argv, envp);
                else
                        execv(argv[0], argv);
                _exit(127);
        }
}

static bool wait_exit(pid_t pid, int64_t timeout_ms)
{
        int64_t end = sw_mono_ms() + timeout_ms;
        int status;

        do {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid || (r < 0 && errno == ECHILD))
                        return true;
                sw_sleep_ms(10);
        } while (sw_mono_ms() < end);
        return false;
}

void t_stop(pid_t pid)
{
        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        if (!wait_exit(pid, 5000)) {
                kill(pid, SIGKILL);
                wait_exit(pid, 5000);
        }
}

void t_kill(pid_t pid)
{
        if (pid <= 0)
                return;
        kill(pid, SIGKILL);
        wait_exit(pid, 5000);
}

static size_t discard(char *p, size_t s, size_t n, void *arg)
{
        (void)p;
        (void)arg;
        return s * n;
}

bool t_wait_http(const char *url, int64_t timeout_ms)
{
        int64_t end = sw_mono_ms() + timeout_ms;
        bool ok = false;
        CURL *h = curl_easy_init();

        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        while (!ok && sw_mono_ms() < end) {
                ok = curl_easy_perform(h) == CURLE_OK;
                if (!ok)
                        sw_sleep_ms(20);
        }
        curl_easy_cleanup(h);
        return ok;
}

static int run_env(char *const argv[], char *const envp[], const char *log_path)
{
        pid_t pid = t_spawn_env(argv, envp, log_path);
        int status;

        if (pid < 0)
                return -1;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int t_run_cmd(char *const argv[], const char *log_path)
{
        return run_env(argv, NULL, log_path);
}

int t_capture(char **out, char *const argv[])
{
        return t_capture_env(out, argv, NULL);
}

int t_capture_env(char **out, char *const argv[], char *const envp[])
{
        char path[] = "/tmp/slipway-capture-XXXXXX";
        struct sw_err err = SW_ERR_INIT;
        int fd = mkstemp(path), rc;

        if (fd < 0)
                return -1;
        close(fd);
        rc = run_env(argv, envp, path);
        if (out && sw_read_file(out, NULL, path, (size_t)16 << 20, &err) != 0)
                *out = sw_xstrdup("");
        unlink(path);
        return rc;
}

pid_t t_spawn_extra(char *const argv[], const char *const *extra_env, const char *log_path)
{
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        for (int i = 0; extra_env && extra_env[i]; i++)
                putenv((char *)extra_env[i]);
        int fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)
                          : open("/dev/null", O_WRONLY);
        int in = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
        }
        if (in >= 0)
                dup2(in, 0);
        /* Its own process group: a test's signals never reach ctest. */
        setpgid(0, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

int t_wait(pid_t pid, int timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (r < 0 || sw_mono_ms() > deadline)
                        return -1;
                sw_sleep_ms(5);
        }
}

int t_run_capture(char **out, char *const argv[], const char *const *extra_env, int timeout_ms)
{
        static int seq;
        char *path = sw_xasprintf("%s/out-%d-%d", t_tmpdir(), (int)getpid(), ++seq);
        struct sw_err err = SW_ERR_INIT;
        pid_t pid = t_spawn_extra(argv, extra_env, path);
        int rc = t_wait(pid, timeout_ms);

        if (rc < 0)
                t_kill(pid);
        if (sw_read_file(out, NULL, path, 16 << 20, &err) != 0)
                *out = sw_xstrdup("");
        unlink(path);
        free(path);
        return rc;
}
