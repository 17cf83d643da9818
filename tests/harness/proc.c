/*
 * proc.c - child processes for tests.
 */
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
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

extern char **environ;

pid_t tp_spawn(char *const argv[], const char *const *extra_env, const char *out_path)
{
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        for (int i = 0; extra_env && extra_env[i]; i++)
                putenv((char *)extra_env[i]);
        int fd = out_path ? open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644)
                          : open("/dev/null", O_WRONLY);
        int in = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
        }
        if (in >= 0)
                dup2(in, 0);
        /* Children in their own process group: a test's kill never hits ctest. */
        setpgid(0, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

int tp_wait(pid_t pid, int timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (r < 0)
                        return -1;
                if (sw_mono_ms() > deadline)
                        return -1;
                sw_sleep_ms(5);
        }
}

void tp_kill(pid_t pid)
{
        if (pid <= 0)
                return;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

int tp_run(char **out, char *const argv[], const char *const *extra_env, int timeout_ms)
{
        static int seq;
        char *path = sw_xasprintf("%s/out-%d-%d", t_tmpdir(), (int)getpid(), ++seq);
        struct sw_err err = SW_ERR_INIT;
        pid_t pid = tp_spawn(argv, extra_env, path);
        int rc = tp_wait(pid, timeout_ms);

        if (rc < 0)
                tp_kill(pid);
        if (sw_read_file(out, NULL, path, 16 << 20, &err) != 0)
                *out = sw_xstrdup("");
        unlink(path);
        free(path);
        return rc;
}

const char *tp_slipway(void)
{
        /* Tests read their environment directly; only slipway itself goes through config.c. */
        const char *p = getenv("SW_TEST_SLIPWAY");

        return p ? p : SW_TEST_BINARY_DIR "/slipway";
}

int tp_free_port(void)
{
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}
