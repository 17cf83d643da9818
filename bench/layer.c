/*
 * layer.c - layer pack/unpack throughput, side by side with GNU tar + gzip.
 *
 * Generates a tree (many small text-like files plus a few large, less
 * compressible ones), then times in the same run: step_layer_pack (gzip on
 * all cores and on one, zstd, uncompressed), `tar -czf`, step_layer_unpack,
 * `tar -xzf`. Throughput is the
 * tree's file bytes per second. Prints `name: value unit` lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/layer.h"
#include "tests/harness/tree.h"

static double cpu_mark;

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* Text-like content: words from a small vocabulary, compresses about 3-4x. */
static void fill_text(char *p, size_t n, uint64_t *s)
{
        static const char *words[] = {"layer",  "image", "build", "static", "const", "return",
                                      "struct", "void",  "int",   "the",    "of",    "0x1f",
                                      "{",      "}",     ";\n",   "if",     "else",  "for"};
        size_t o = 0;

        while (o < n) {
                const char *w = words[rng(s) % (sizeof(words) / sizeof(words[0]))];
                for (size_t i = 0; w[i] && o < n; i++)
                        p[o++] = w[i];
                if (o < n)
                        p[o++] = ' ';
        }
}

/* Binary-like content: a quarter random bytes, the rest runs, about 1.5x. */
static void fill_binary(char *p, size_t n, uint64_t *s)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (i / 64) % 4 == 0 ? (char)rng(s) : (char)(i / 256);
}

static size_t make_tree(const char *root, size_t mib)
{
        size_t total = 0, target = mib << 20, i = 0;
        uint64_t seed = 88172645463325252ull;
        size_t big = 4u << 20, small = 48u << 10;
        char *buf = sw_xmalloc(big + 1);
        struct sw_err err = SW_ERR_INIT;

        while (total < target) {
                bool is_big = i % 50 == 49;
                size_t n = is_big ? big : small / 2 + (size_t)(rng(&seed) % small);
                char *dir = sw_xasprintf("%s/d%02zu/s%02zu", root, i % 17, (i / 17) % 9);
                char *path = sw_xasprintf("%s/f%05zu%s", dir, i, is_big ? ".bin" : ".txt");
                if (is_big)
                        fill_binary(buf, n, &seed);
                else
                        fill_text(buf, n, &seed);
                t_mkdirs(dir, 0755);
                /* Not t_write(): binary content has NUL bytes, all n of them count. */
                if (sw_write_file_atomic(path, buf, n, 0644, &err) != 0) {
                        fprintf(stderr, "bench: %s\n", err.msg);
                        exit(1);
                }
                total += n;
                i++;
                free(dir);
                free(path);
        }
        free(buf);
        return total;
}

/* CPU seconds used so far by this process and its waited-for children. */
static double cpu_s(void)
{
        struct rusage self, kids;

        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &kids);
        return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
                        kids.ru_stime.tv_sec) +
               (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                        kids.ru_stime.tv_usec) /
                       1e6;
}

/* Starts a measurement: wall clock and CPU time. */
static double start(void)
{
        cpu_mark = cpu_s();
        return now_s();
}

/*
 * Wall-clock throughput, and throughput per CPU second (which a machine
 * shared with other work disturbs much less).
 */
static void report(const char *name, size_t bytes, double secs)
{
        double mib = (double)bytes / (1024.0 * 1024.0), cpu = cpu_s() - cpu_mark;

        printf("%s: %.1f MiB/s\n", name, mib / secs);
        printf("%s_per_cpu: %.1f MiB/cpu-s\n", name, mib / (cpu > 0 ? cpu : 1e-9));
}

int main(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info info;
        char *base = NULL;
        size_t mib = 64, bytes;
        double t0;
        int rc = 1;

        if (sw_mkdtemp(&base, "/tmp", "slipway-bench-layer-", &err) != 0) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
        }
        char *src = sw_xasprintf("%s/src", base), *gz = sw_xasprintf("%s/l.tgz", base);
        char *raw = sw_xasprintf("%s/l.tar", base), *tgz = sw_xasprintf("%s/gnu.tgz", base);
        char *zst = sw_xasprintf("%s/l.tar.zst", base);
        char *out = sw_xasprintf("%s/out", base), *gout = sw_xasprintf("%s/gnu-out", base);

        bytes = make_tree(src, mib);
        printf("layer_tree_size: %.1f MiB\n", (double)bytes / (1024.0 * 1024.0));
        /* Warm the page cache so every contender reads from memory. */
        if (t_sh("cat $(find '%s' -type f) > /dev/null", src) != 0)
                goto out;

        t0 = start();
        if (step_layer_pack(&info, src, gz, &o, &err) != 0)
                goto fail;
        report("layer_pack_gzip6", bytes, now_s() - t0);
        printf("layer_pack_gzip6_ratio: %.2f x\n", (double)info.tar_size / (double)info.size);

        o.threads = 1;
        t0 = start();
        if (step_layer_pack(&info, src, gz, &o, &err) != 0)
                goto fail;
        report("layer_pack_gzip6_1thread", bytes, now_s() - t0);
        o.threads = 0;

        o.compression = STEP_LAYER_ZSTD;
        t0 = start();
        if (step_layer_pack(&info, src, zst, &o, &err) != 0)
                goto fail;
        report("layer_pack_zstd3", bytes, now_s() - t0);
        printf("layer_pack_zstd3_ratio: %.2f x\n", (double)info.tar_size / (double)info.size);
        o.compression = STEP_LAYER_GZIP;

        o.gzip_level = 1;
        t0 = start();
        if (step_layer_pack(&info, src, gz, &o, &err) != 0)
                goto fail;
        report("layer_pack_gzip1", bytes, now_s() - t0);
        printf("layer_pack_gzip1_ratio: %.2f x\n", (double)info.tar_size / (double)info.size);

        o.compression = STEP_LAYER_UNCOMPRESSED;
        t0 = start();
        if (step_layer_pack(NULL, src, raw, &o, &err) != 0)
                goto fail;
        report("layer_pack_uncompressed", bytes, now_s() - t0);

        t0 = start();
        if (t_sh("tar -C '%s' -czf '%s' .", src, tgz) != 0)
                goto out;
        report("gnu_tar_czf", bytes, now_s() - t0);

        /* Unpack the gzip-6 blob (GNU tar's default level too). */
        o.compression = STEP_LAYER_GZIP;
        o.gzip_level = 6;
        if (step_layer_pack(NULL, src, gz, &o, &err) != 0)
                goto fail;
        t0 = start();
        if (step_layer_unpack(NULL, gz, out, NULL, &err) != 0)
                goto fail;
        report("layer_unpack_gzip", bytes, now_s() - t0);

        t_mkdirs(gout, 0755);
        t0 = start();
        if (t_sh("tar -C '%s' -xzf '%s'", gout, tgz) != 0)
                goto out;
        report("gnu_tar_xzf", bytes, now_s() - t0);

        if (sw_rm_rf(out, &err) != 0)
                goto fail;
        t0 = start();
        if (step_layer_unpack(NULL, raw, out, NULL, &err) != 0)
                goto fail;
        report("layer_unpack_uncompressed", bytes, now_s() - t0);

        if (sw_rm_rf(out, &err) != 0)
                goto fail;
        t0 = start();
        if (step_layer_unpack(NULL, zst, out, NULL, &err) != 0)
                goto fail;
        report("layer_unpack_zstd", bytes, now_s() - t0);
        rc = 0;
        goto out;
fail:
        fprintf(stderr, "bench: %s\n", err.msg);
out:
        sw_err_clear(&err);
        sw_rm_rf(base, &err);
        free(base);
        free(src);
        free(gz);
        free(raw);
        free(tgz);
        free(zst);
        free(out);
        free(gout);
        return rc;
}
