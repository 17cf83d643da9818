/*
 * rand.c - per-thread xoshiro256** (Blackman and Vigna), seeded from getrandom.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/rand.h"
#include "common/banned.h"

static _Thread_local struct {
        uint64_t s[4];
        unsigned gen; /* fork_gen when seeded; 0 before */
} rng;

/* Bumped in a forked child, so that it does not repeat its parent's bytes. */
static atomic_uint fork_gen = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
        atomic_fetch_add(&fork_gen, 1);
}

static void watch_forks(void)
{
        pthread_atfork(NULL, NULL, on_fork_child);
}

static uint64_t rotl(uint64_t x, int k)
{
        return (x << k) | (x >> (64 - k));
}

/* SplitMix64: spreads a weak fallback seed over the state. */
static uint64_t splitmix(uint64_t *x)
{
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void seed(void)
{
        if (getrandom(rng.s, sizeof(rng.s), 0) != (ssize_t)sizeof(rng.s)) {
                /* Linux >= 3.17 does not fail for 32 bytes; be safe anyway. */
                struct timespec ts;
                uint64_t x;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                    (uint64_t)(uintptr_t)&rng;
                for (int i = 0; i < 4; i++)
                        rng.s[i] = splitmix(&x);
        }
        if ((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0)
                rng.s[0] = 1; /* the one state xoshiro never leaves */
}

static uint64_t next(void)
{
        uint64_t *s = rng.s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return r;
}

void sw_rand_bytes(void *buf, size_t n)
{
        unsigned char *p = buf;
        unsigned gen;

        pthread_once(&fork_once, watch_forks);
        gen = atomic_load(&fork_gen);
        if (rng.gen != gen) {
                seed();
                rng.gen = gen;
        }
        while (n > 0) {
                uint64_t r = next();
                size_t k = n < sizeof(r) ? n : sizeof(r);
                memcpy(p, &r, k);
                p += k;
                n -= k;
        }
}
