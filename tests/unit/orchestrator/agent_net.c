/*
 * agent_net.c - the node agent's address helpers (CIDR, dotted quads) and
 * its splice relay: bytes both ways, a large stream while the other
 * direction is also busy (a relay that blocked on one direction would
 * deadlock here), and half-close passed on.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "tests/harness/t.h"

#define STREAM_BYTES (8u << 20)

static void test_cidr(void)
{
        struct sw_err err = SW_ERR_INIT;
        uint32_t net = 0, ip = 0;
        int prefix = 0;
        char s[16];

        CHECK_OK(agent_cidr_parse(&net, &prefix, "127.1.0.0/16", &err), &err);
        CHECK_INT((int)(net >> 16), 0x7f01);
        CHECK_INT(prefix, 16);
        /* Host bits are masked off. */
        CHECK_OK(agent_cidr_parse(&net, &prefix, "127.1.2.3/24", &err), &err);
        agent_ip_fmt(s, net);
        CHECK_STR(s, "127.1.2.0");
        CHECK_INT(agent_cidr_parse(&net, &prefix, "127.1.0.0", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(agent_cidr_parse(&net, &prefix, "127.1.0.0/33", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(agent_cidr_parse(&net, &prefix, "127.1.x.0/16", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "127.1.x.0/16") != NULL);
        CHECK_INT(agent_ip_parse(&ip, "127.77.0.10"), 0);
        CHECK_INT((int)(ip & 0xff), 10);
        CHECK_INT(agent_ip_parse(&ip, "None"), -1);
}

struct relay_arg {
        int a, b;
};

static void *relay_main(void *arg)
{
        struct relay_arg *r = arg;

        agent_relay(r->a, r->b);
        return NULL;
}

struct pump {
        int fd;
        size_t bytes;
};

static void *write_main(void *arg)
{
        struct pump *p = arg;
        char *buf = sw_xcalloc(1, 65536);

        for (size_t sent = 0; sent < p->bytes;) {
                size_t n = p->bytes - sent < 65536 ? p->bytes - sent : 65536;
                ssize_t w = write(p->fd, buf, n);
                if (w <= 0)
                        break;
                sent += (size_t)w;
        }
        shutdown(p->fd, SHUT_WR);
        free(buf);
        return NULL;
}

static size_t read_all(int fd)
{
        char *buf = sw_xmalloc(65536);
        size_t got = 0;
        ssize_t n;

        while ((n = read(fd, buf, 65536)) > 0)
                got += (size_t)n;
        free(buf);
        return got;
}

static void test_relay_both_ways(void)
{
        int client[2], server[2];
        struct relay_arg r;
        struct pump up, down;
        pthread_t tr, tu, td;
        size_t got_server, got_client;

        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, client), 0);
        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, server), 0);
        r = (struct relay_arg){client[1], server[0]};
        up = (struct pump){client[0], STREAM_BYTES};
        down = (struct pump){server[1], STREAM_BYTES / 2};
        pthread_create(&tr, NULL, relay_main, &r);
        pthread_create(&tu, NULL, write_main, &up);
        pthread_create(&td, NULL, write_main, &down);
        got_server = read_all(server[1]);
        got_client = read_all(client[0]);
        pthread_join(tu, NULL);
        pthread_join(td, NULL);
        pthread_join(tr, NULL); /* both ends half-closed: the relay ends */
        CHECK_INT((long long)got_server, (long long)STREAM_BYTES);
        CHECK_INT((long long)got_client, (long long)STREAM_BYTES / 2);
        for (int i = 0; i < 2; i++) {
                close(client[i]);
                close(server[i]);
        }
}

static void test_relay_half_close(void)
{
        int client[2], server[2];
        struct relay_arg r;
        pthread_t tr;
        char buf[16] = {0};

        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, client), 0);
        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, server), 0);
        r = (struct relay_arg){client[1], server[0]};
        pthread_create(&tr, NULL, relay_main, &r);
        /* A request, then the end of it: the server sees both and still answers. */
        CHECK_INT((int)write(client[0], "ping", 4), 4);
        shutdown(client[0], SHUT_WR);
        CHECK_INT((int)read_all(server[1]), 4);
        CHECK_INT((int)write(server[1], "pong", 4), 4);
        shutdown(server[1], SHUT_WR);
        CHECK_INT((int)read(client[0], buf, sizeof(buf)), 4);
        CHECK_STR(buf, "pong");
        CHECK_INT((int)read(client[0], buf, sizeof(buf)), 0);
        pthread_join(tr, NULL);
        for (int i = 0; i < 2; i++) {
                close(client[i]);
                close(server[i]);
        }
}

int main(void)
{
        T_RUN(test_cidr);
        T_RUN(test_relay_both_ways);
        T_RUN(test_relay_half_close);
        return t_done();
}
