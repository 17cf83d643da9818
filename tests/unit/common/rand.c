/*
 * rand.c - sw_rand_bytes(): no repeats within a thread, between threads,
 * or between a forked child and its parent; every byte value appears.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/rand.h"
#include "tests/harness/t.h"

static void *draw(void *arg)
{
        sw_rand_bytes(arg, 16);
        return NULL;
}

static void test_no_repeats(void)
{
        unsigned char a[16], b[16], c[16], d[16];
        pthread_t th;

        sw_rand_bytes(a, sizeof(a));
        sw_rand_bytes(b, sizeof(b));
        CHECK(memcmp(a, b, sizeof(a)) != 0);
        CHECK(pthread_create(&th, NULL, draw, c) == 0);
        pthread_join(th, NULL);
        CHECK(pthread_create(&th, NULL, draw, d) == 0);
        pthread_join(th, NULL);
        CHECK(memcmp(c, d, sizeof(c)) != 0);
        CHECK(memcmp(a, c, sizeof(a)) != 0 && memcmp(b, c, sizeof(b)) != 0);
}

/* A forked child does not draw what its parent draws next. */
static void test_fork(void)
{
        unsigned char mine[16], childs[16];
        int fd[2];
        pid_t pid;

        sw_rand_bytes(mine, 1); /* this thread is seeded before the fork */
        CHECK(pipe(fd) == 0);
        pid = fork();
        if (pid == 0) {
                sw_rand_bytes(childs, sizeof(childs));
                _exit(write(fd[1], childs, sizeof(childs)) == (ssize_t)sizeof(childs) ? 0 : 1);
        }
        CHECK(pid > 0);
        sw_rand_bytes(mine, sizeof(mine));
        CHECK(read(fd[0], childs, sizeof(childs)) == (ssize_t)sizeof(childs));
        waitpid(pid, NULL, 0);
        close(fd[0]);
        close(fd[1]);
        CHECK(memcmp(mine, childs, sizeof(mine)) != 0);
}

/* Odd lengths fill every byte, and all 256 values show up. */
static void test_spread(void)
{
        unsigned char buf[16387]; /* odd; a value missing by chance: about e^-64 */
        int seen[256] = {0}, values = 0;

        memset(buf, 0, sizeof(buf));
        sw_rand_bytes(buf, sizeof(buf));
        for (size_t i = 0; i < sizeof(buf); i++)
                seen[buf[i]]++;
        for (int v = 0; v < 256; v++)
                values += seen[v] > 0;
        CHECK_INT(values, 256);
        CHECK(seen[0] < 256); /* about 64 expected */
        /* A tail shorter than a draw is filled too: each of 3 bytes is nonzero some time. */
        {
                unsigned char any[3] = {0, 0, 0}, tail[3];
                for (int t = 0; t < 16; t++) {
                        memset(tail, 0, sizeof(tail));
                        sw_rand_bytes(tail, sizeof(tail));
                        for (int i = 0; i < 3; i++)
                                any[i] |= tail[i];
                }
                CHECK(any[0] && any[1] && any[2]);
        }
}

int main(void)
{
        T_RUN(test_no_repeats);
        T_RUN(test_fork);
        T_RUN(test_spread);
        return t_done();
}
