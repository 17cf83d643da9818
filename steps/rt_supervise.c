/*
 * rt_supervise.c - the supervisor of a detached container (see
 * rt_supervise.h). libc only: the launcher links this file too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steps/rt_supervise.h"
#include "common/banned.h"

/* Write `v` in decimal into `buf` (async-signal-safe); returns the length. */
static size_t fmt_int(char *buf, int v)
{
        char tmp[16];
        size_t n = 0, len = 0;
        unsigned u = v < 0 ? 0u : (unsigned)v;

        do {
                tmp[n++] = (char)('0' + u % 10);
                u /= 10;
        } while (u && n < sizeof(tmp));
        while (n)
                buf[len++] = tmp[--n];
        buf[len++] = '\n';
        return len;
}

/* `v` in `width` decimal digits, zero-padded (async-signal-safe). */
static void fmt_digits(char *out, long long v, int width)
{
        for (int i = width - 1; i >= 0; i--) {
                out[i] = (char)('0' + v % 10);
                v /= 10;
        }
}

/*
 * "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ " for now, UTC, without gmtime (not
 * async-signal-safe): days to a civil date after H. Hinnant's
 * days_from_civil inverse. Returns the length (31).
 */
static size_t fmt_now(char *out)
{
        struct timespec ts;
        long long days, secs, z, era, doe, yoe, y, doy, mp, d, m;

        clock_gettime(CLOCK_REALTIME, &ts);
        days = (long long)ts.tv_sec / 86400;
        secs = (long long)ts.tv_sec % 86400;
        z = days + 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        y = yoe + era * 400;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        d = doy - (153 * mp + 2) / 5 + 1;
        m = mp < 10 ? mp + 3 : mp - 9;
        y += m <= 2;
        fmt_digits(out, y, 4);
        out[4] = '-';
        fmt_digits(out + 5, m, 2);
        out[7] = '-';
        fmt_digits(out + 8, d, 2);
        out[10] = 'T';
        fmt_digits(out + 11, secs / 3600, 2);
        out[13] = ':';
        fmt_digits(out + 14, secs / 60 % 60, 2);
        out[16] = ':';
        fmt_digits(out + 17, secs % 60, 2);
        out[19] = '.';
        fmt_digits(out + 20, ts.tv_nsec, 9);
        out[29] = 'Z';
        out[30] = ' ';
        return 31;
}

static void write_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return;
                p += w;
                n -= (size_t)w;
        }
}

/* Copy the container's output from `in` to the log, each line stamped with its time. */
static void copy_stamped(int in, int out)
{
        char buf[4096], obuf[8192], ts[32];
        bool bol = true;

        for (;;) {
                ssize_t n = read(in, buf, sizeof(buf));
                size_t o = 0, tl;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                tl = fmt_now(ts);
                for (ssize_t i = 0; i < n; i++) {
                        if (o + tl + 1 > sizeof(obuf)) {
                                write_all(out, obuf, o);
                                o = 0;
                        }
                        if (bol) {
                                memcpy(obuf + o, ts, tl);
                                o += tl;
                                bol = false;
                        }
                        obuf[o++] = buf[i];
                        bol = buf[i] == '\n';
                }
                write_all(out, obuf, o);
        }
}

/*
 * The supervisor: runs in a forked child of a possibly multi-threaded
 * process, so it only calls async-signal-safe functions.
 */
void step_rt_supervise(char *const *args, int logfd, int nullfd, bool stamp, const char *exit_tmp,
                       const char *exit_path)
{
        sigset_t none;
        pid_t pid;
        int st, code, fd, pfd[2] = {-1, -1};
        char buf[16];

        setsid();
        if (stamp && pipe(pfd) != 0)
                stamp = false;
        pid = fork();
        if (pid == 0) {
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                dup2(nullfd, 0);
                dup2(stamp ? pfd[1] : logfd, 1);
                dup2(stamp ? pfd[1] : logfd, 2);
                close_range(3, ~0U, 0);
                execvp(args[0], args);
                _exit(127);
        }
        if (stamp) {
                /* Only the pipe and the log stay open: nothing else of the caller's. */
                dup2(pfd[0], 0);
                dup2(logfd, 1);
                close_range(2, ~0U, 0);
                if (pid > 0)
                        copy_stamped(0, 1);
        }
        close_range(0, ~0U, 0);
        if (pid < 0)
                code = 127;
        else {
                while (waitpid(pid, &st, 0) < 0)
                        if (errno != EINTR)
                                _exit(1);
                code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        fd = open(exit_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
                size_t n = fmt_int(buf, code);
                if (write(fd, buf, n) == (ssize_t)n) {
                        fsync(fd);
                        rename(exit_tmp, exit_path);
                }
                close(fd);
        }
        _exit(0);
}

int step_rt_supervise_main(int argc, char **argv)
{
        pid_t pid;

        if (argc < 6 || strcmp(argv[1], STEP_RT_SUPERVISE_CMD) != 0)
                return 2;
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0)
                step_rt_supervise(argv + 5, 1, 0, strcmp(argv[2], "stamp") == 0, argv[3], argv[4]);
        return 0;
}
