/*
 * test_supervise.c - the supervisor keeps a real server (busybox httpd)
 * running: it restarts it after kill -9, backs off a program that keeps
 * failing, and leaves no process behind when it stops.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/mem.h"
#include "engine/supervise.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static void test_restart_after_kill(void)
{
        int port = tp_free_port();
        char *addr = sw_xasprintf("127.0.0.1:%d", port);
        char *log = sw_xasprintf("%s/httpd.log", t_tmpdir());
        const char *argv[] = {"/bin/busybox", "httpd", "-f", "-p", addr, "-h", t_tmpdir(), NULL};
        struct eng_part_spec spec = {0};
        struct eng_super *s = NULL;
        struct eng_part_status st[4];
        struct sw_err err = SW_ERR_INIT;
        pid_t first, second = 0;
        int64_t deadline;

        spec.name = "httpd";
        spec.argv = argv;
        spec.log_path = log;
        spec.health_addr = addr;
        CHECK_OK(eng_super_new(&s, &err), &err);
        CHECK_OK(eng_super_add(s, &spec, &err), &err);
        CHECK_OK(eng_super_wait_healthy(s, 5000, &err), &err);
        first = eng_super_pid(s, "httpd");
        CHECK(first > 0);

        kill(first, SIGKILL);
        deadline = sw_mono_ms() + 10000;
        while (sw_mono_ms() < deadline) {
                second = eng_super_pid(s, "httpd");
                if (second > 0 && second != first && eng_tcp_alive(addr, 100))
                        break;
                sw_sleep_ms(50);
        }
        CHECK(second > 0 && second != first);
        CHECK(eng_tcp_alive(addr, 500));
        CHECK_INT(eng_super_status(s, st, 4), 1);
        CHECK_INT(st[0].restarts, 1);
        CHECK_STR(st[0].last_exit, "signal 9");

        eng_super_free(s);
        /* stopped and reaped: the pid is gone and the port is closed */
        CHECK(kill(second, 0) != 0 && errno == ESRCH);
        CHECK(!eng_tcp_alive(addr, 200));
        free(addr);
        free(log);
}

static void test_failing_part_backs_off(void)
{
        char *log = sw_xasprintf("%s/false.log", t_tmpdir());
        const char *argv[] = {"/bin/false", NULL};
        struct eng_part_spec spec = {0};
        struct eng_super *s = NULL;
        struct eng_part_status st[1];
        struct sw_err err = SW_ERR_INIT;

        spec.name = "broken";
        spec.argv = argv;
        spec.log_path = log;
        CHECK_OK(eng_super_new(&s, &err), &err);
        CHECK_OK(eng_super_add(s, &spec, &err), &err);
        sw_sleep_ms(2500);
        eng_super_status(s, st, 1);
        /* 1 s, then 2 s of backoff: one or two restarts in 2.5 s, not dozens */
        CHECK(st[0].restarts >= 1 && st[0].restarts <= 2);
        CHECK_STR(st[0].last_exit, "exit 1");
        eng_super_free(s);
        free(log);
}

static void test_missing_program(void)
{
        const char *argv[] = {"/nonexistent/registry", NULL};
        struct eng_part_spec spec = {0};
        struct eng_super *s = NULL;
        struct sw_err err = SW_ERR_INIT;

        spec.name = "registry";
        spec.argv = argv;
        spec.log_path = "/dev/null";
        CHECK_OK(eng_super_new(&s, &err), &err);
        CHECK_INT(eng_super_add(s, &spec, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "/nonexistent/registry") != NULL);
        eng_super_free(s);
}

int main(void)
{
        T_RUN(test_restart_after_kill);
        T_RUN(test_failing_part_backs_off);
        T_RUN(test_missing_program);
        return t_done();
}
