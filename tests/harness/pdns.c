/*
 * pdns.c - start and stop a real pdns_server for tests (see pdns.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "tests/harness/pdns.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define PDNS_START_MS 15000

static bool tcp_open(int port)
{
        struct sockaddr_in a;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool ok;

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        return ok;
}

static int wait_ready(struct tp_pdns *p)
{
        int64_t deadline = sw_mono_ms() + PDNS_START_MS;

        while (sw_mono_ms() < deadline) {
                struct dns_answer a;
                struct sw_err err = SW_ERR_INIT;

                if (t_wait(p->pid, 0) >= 0) {
                        fprintf(stderr, "pdns_server exited early; see %s/pdns.log\n", p->dir);
                        p->pid = -1;
                        return -1;
                }
                /* Any answer, even REFUSED for a name outside every zone, means it serves. */
                if (tcp_open(p->api_port) &&
                    dns_query_a(&a, p->server, "ready.invalid.", 200, &err) == 0)
                        return 0;
                sw_sleep_ms(20);
        }
        fprintf(stderr, "pdns_server did not start within %d ms; see %s/pdns.log\n", PDNS_START_MS,
                p->dir);
        tp_pdns_stop(p);
        return -1;
}

/*
 * Like t_spawn_extra(), but the server gets SIGTERM when the test process dies,
 * so a crashed test leaves no pdns_server behind.
 */
static pid_t spawn_tied(const char *const *argv, const char *log_path)
{
        pid_t parent = getpid(), pid = fork();
        int fd, in;

        if (pid != 0)
                return pid;
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
                _exit(127);
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        in = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
        }
        if (in >= 0)
                dup2(in, 0);
        setpgid(0, 0);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

int tp_pdns_restart(struct tp_pdns *p)
{
        char log_path[300];

        snprintf(log_path, sizeof(log_path), "%s/pdns.log", p->dir);
        p->pid = spawn_tied(p->setup.argv, log_path);
        if (p->pid < 0)
                return -1;
        return wait_ready(p);
}

int tp_pdns_start(struct tp_pdns *p, const char *api_key)
{
        static int seq;
        struct dns_pdns_options o;
        struct sw_err err = SW_ERR_INIT;
        char dns_listen[32], api_listen[32];

        memset(p, 0, sizeof(*p));
        p->pid = -1;
        snprintf(p->dir, sizeof(p->dir), "%s/pdns%d", t_tmpdir(), ++seq);
        snprintf(p->api_key, sizeof(p->api_key), "%s", api_key);
        p->dns_port = t_free_port();
        do
                p->api_port = t_free_port();
        while (p->api_port == p->dns_port);
        snprintf(dns_listen, sizeof(dns_listen), "127.0.0.1:%d", p->dns_port);
        snprintf(api_listen, sizeof(api_listen), "127.0.0.1:%d", p->api_port);
        memset(&o, 0, sizeof(o));
        o.dir = p->dir;
        o.dns_listen = dns_listen;
        o.api_listen = api_listen;
        o.api_key = api_key;
        if (dns_pdns_setup(&p->setup, &o, &err) != 0) {
                fprintf(stderr, "pdns setup: %s\n", err.msg);
                return -1;
        }
        snprintf(p->api_url, sizeof(p->api_url), "%s", p->setup.api_url);
        snprintf(p->server, sizeof(p->server), "%s", dns_listen);
        return tp_pdns_restart(p);
}

void tp_pdns_stop(struct tp_pdns *p)
{
        if (p->pid <= 0)
                return;
        kill(p->pid, SIGTERM);
        if (t_wait(p->pid, 5000) < 0)
                t_kill(p->pid);
        p->pid = -1;
}

void tp_pdns_release(struct tp_pdns *p)
{
        tp_pdns_stop(p);
        dns_pdns_setup_release(&p->setup);
}
