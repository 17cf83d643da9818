/*
 * build.c - the image builder side by side with buildah, in one run.
 *
 * Three builds, each by slipway (step_build_image) and by buildah from Debian
 * (`buildah --storage-driver vfs bud --isolation chroot --layers`, with its
 * own temporary --root/--runroot, inside `unshare --net` so that it has no
 * network: chroot isolation cannot take --network none):
 *   (a) FROM scratch + COPY busybox, cold caches;
 *   (b) a busybox base + a RUN that creates 1,000 files + a COPY of a
 *       200 MiB context, cold caches (the base is read locally: slipway pulls
 *       it from a docker-registry on loopback, buildah from an `oci:` layout
 *       of the same image);
 *   (c) (b) again with nothing changed: in this process, and as the
 *       `slipway build` command (process start, dynamic linking and
 *       library set-up included), best and worst of a few runs.
 * Then the layer pipeline alone: step_layer_pack of the 200 MiB tree (tar +
 * gzip on all cores + both digests), as MiB/s.
 * Prints `name: value unit` lines; without buildah, a "buildah: not installed"
 * line and slipway's figures only. Needs root (overlayfs, runc), like the builder.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/libs.h"
#include "common/mem.h"
#include "steps/build.h"
#include "steps/layer.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/tree.h"

#define CONTEXT_MIB 200
#define BUILDAH "/usr/bin/buildah"

static const char *RUN_1000 = "RUN mkdir /many && cd /many && i=0 && while [ $i -lt 1000 ]; "
                              "do echo \"file $i\" > f$i; i=$((i+1)); done\n";

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process and its waited-for children. */
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

static uint64_t rng(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* CONTEXT_MIB MiB of 1 MiB files, a quarter random bytes (compresses about 1.5x). */
static void make_data(const char *dir)
{
        size_t n = 1u << 20;
        char *buf = sw_xmalloc(n + 1);
        uint64_t seed = 88172645463325252ull;

        t_mkdirs(dir, 0755);
        for (int f = 0; f < CONTEXT_MIB; f++) {
                char *path = sw_xasprintf("%s/blob%03d.bin", dir, f);
                for (size_t i = 0; i < n; i++)
                        buf[i] = (i / 64) % 4 == 0 ? (char)rng(&seed) : (char)(i / 256 + f);
                FILE *fp = fopen(path, "wb");
                if (!fp || fwrite(buf, 1, n, fp) != n) {
                        fprintf(stderr, "bench: write %s\n", path);
                        exit(1);
                }
                fclose(fp);
                free(path);
        }
        free(buf);
}

static void copy_busybox(const char *ctx)
{
        if (t_sh("cp /bin/busybox '%s/busybox'", ctx) != 0) {
                fprintf(stderr, "bench: no /bin/busybox (busybox-static)\n");
                exit(1);
        }
}

static void to_stderr(void *arg, const char *line)
{
        fprintf(stderr, "%s%s\n", (const char *)arg, line);
}

/* One slipway build (progress lines on stderr); wall time in seconds, or -1. */
static double slipway_build(const struct sw_config *cfg, const char *ctx, const char *layout,
                            const char *cache, struct step_build_result *res, const char *what)
{
        struct step_build_options o = {0};
        struct sw_err err = SW_ERR_INIT;
        double t0;

        o.cfg = cfg;
        o.context_dir = ctx;
        o.layout_dir = layout;
        o.cache_dir = cache;
        o.log = to_stderr;
        o.arg = (void *)what;
        t0 = now_s();
        if (step_build_image(res, &o, &err) != 0) {
                fprintf(stderr, "bench: slipway build %s: %s\n", ctx, err.msg);
                return -1;
        }
        return now_s() - t0;
}

/*
 * `slipway build` of `ctx` as a process, with SLIPWAY_DATA `data` (whose
 * build/ is the cache); wall seconds, or -1.
 */
static double slipway_cli_build(const char *data, const char *ctx, const char *layout)
{
        char *env_data = sw_xasprintf("SLIPWAY_DATA=%s", data);
        const char *env[] = {env_data, NULL};
        char *argv[] = {(char *)t_slipway(), "build",        (char *)ctx,    "-t",
                        "bench-b:1",         "--oci-layout", (char *)layout, NULL};
        char *out = NULL;
        double t0 = now_s(), secs;
        int st = t_run_capture(&out, argv, env, 120000);

        secs = now_s() - t0;
        if (st != 0 || !out || !strstr(out, "2 of 2 steps from cache")) {
                fprintf(stderr, "bench: slipway build (cli) %s (%d): %s\n", ctx, st,
                        out ? out : "");
                secs = -1;
        }
        free(out);
        free(env_data);
        return secs;
}

/* One buildah build in its own storage `root`; wall seconds, or -1. */
static double buildah_build(const char *root, const char *ctx, const char *file, const char *tag)
{
        char *r = sw_xasprintf("%s/root", root), *rr = sw_xasprintf("%s/runroot", root);
        char *df = sw_xasprintf("%s/%s", ctx, file);
        char *argv[] = {"/usr/bin/unshare",
                        "--net",
                        BUILDAH,
                        "--root",
                        r,
                        "--runroot",
                        rr,
                        "--storage-driver",
                        "vfs",
                        "bud",
                        "--isolation",
                        "chroot",
                        "--layers",
                        "-f",
                        df,
                        "-t",
                        (char *)tag,
                        (char *)ctx,
                        NULL};
        char *out = NULL;
        double t0 = now_s(), secs;
        int st = t_run_capture(&out, argv, NULL, 900000);

        secs = now_s() - t0;
        if (st != 0) {
                fprintf(stderr, "bench: buildah %s failed (%d): %s\n", ctx, st, out ? out : "");
                secs = -1;
        }
        free(out);
        free(r);
        free(rr);
        free(df);
        return secs;
}

static void line(const char *name, double secs)
{
        if (secs < 0)
                printf("%s: failed\n", name);
        else
                printf("%s: %.0f ms\n", name, secs * 1000.0);
}

static void ratio(const char *name, double a, double b)
{
        if (a > 0 && b > 0)
                printf("%s: %.2f x\n", name, a / b);
}

int main(void)
{
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;
        struct step_build_result res;
        struct t_registry *reg = NULL;
        char dir[64], *env[2] = {NULL, NULL};
        double sa, sb, sc, sc_cpu, ba = -1, bb = -1, bc = -1, cli_min = -1, cli_max = -1;
        bool have_buildah = access(BUILDAH, X_OK) == 0;
        int rc = 1;

        if (geteuid() != 0) {
                printf("bench_build: needs root (overlayfs, runc); skipped\n");
                return 0;
        }
        sw_libs_init();
        /* lower case throughout: buildah's oci: references must be */
        snprintf(dir, sizeof(dir), "/tmp/slipway-bench-build-%d", (int)getpid());
        if (mkdir(dir, 0700) != 0) {
                perror(dir);
                return 1;
        }
        env[0] = sw_xasprintf("SLIPWAY_DATA=%s/data", dir);
        if (sw_config_load(&cfg, env, &err) != 0) {
                fprintf(stderr, "bench: config: %s\n", err.msg);
                return 1;
        }
        char *ctx_a = sw_xasprintf("%s/ctx-a", dir), *ctx_base = sw_xasprintf("%s/ctx-base", dir);
        char *ctx_b = sw_xasprintf("%s/ctx-b", dir), *base = sw_xasprintf("%s/base", dir);
        char *p = NULL;

        /* the contexts */
        t_mkdirs(ctx_a, 0755);
        copy_busybox(ctx_a);
        p = sw_xasprintf("%s/Dockerfile", ctx_a);
        t_write(p, "FROM scratch\nCOPY busybox /bin/busybox\n", 0644);
        free(p);
        t_mkdirs(ctx_base, 0755);
        copy_busybox(ctx_base);
        p = sw_xasprintf("%s/Dockerfile", ctx_base);
        t_write(p,
                "FROM scratch\nCOPY busybox /bin/busybox\n"
                "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"sh\"]\n",
                0644);
        free(p);
        p = sw_xasprintf("%s/data", ctx_b);
        make_data(p);
        free(p);

        /* the busybox base: built once, served by a loopback registry and as a layout */
        reg = t_registry_start(T_REG_OPEN);
        if (!reg) {
                fprintf(stderr, "bench: docker-registry did not start\n");
                goto out;
        }
        {
                char *cache = sw_xasprintf("%s/cache-base", dir);
                char *src = sw_xasprintf("oci:%s:latest", base);
                char *dst = sw_xasprintf("docker://%s/bench/busybox:1", reg->host);
                char *argv[] = {"/usr/bin/skopeo",
                                "copy",
                                "--quiet",
                                "--dest-tls-verify=false",
                                src,
                                dst,
                                NULL};
                char *out = NULL;
                int st = -1;
                if (slipway_build(&cfg, ctx_base, base, cache, &res, "(base) ") >= 0)
                        st = t_run_capture(&out, argv, NULL, 120000);
                if (st != 0)
                        fprintf(stderr, "bench: base image: %s\n", out ? out : "build failed");
                free(out);
                free(cache);
                free(src);
                free(dst);
                if (st != 0)
                        goto out;
        }
        p = sw_xasprintf("%s/Dockerfile", ctx_b);
        char *df =
                sw_xasprintf("FROM %s/bench/busybox:1\n%sCOPY data /data\n", reg->host, RUN_1000);
        t_write(p, df, 0644);
        free(df);
        free(p);
        p = sw_xasprintf("%s/Dockerfile.buildah", ctx_b);
        df = sw_xasprintf("FROM oci:%s:latest\n%sCOPY data /data\n", base, RUN_1000);
        t_write(p, df, 0644);
        free(df);
        free(p);

        /* slipway: (a), (b) cold, (c) warm */
        {
                char *l = sw_xasprintf("%s/out-a", dir), *c = sw_xasprintf("%s/cache-a", dir);
                sa = slipway_build(&cfg, ctx_a, l, c, &res, "(a) ");
                free(l);
                free(c);
                l = sw_xasprintf("%s/out-b", dir);
                /* the command's own cache, so that the command finds (b)'s layers too */
                c = sw_xasprintf("%s/data/build", dir);
                sb = slipway_build(&cfg, ctx_b, l, c, &res, "(b) ");
                free(l);
                l = sw_xasprintf("%s/out-c", dir);
                sc_cpu = cpu_s();
                sc = slipway_build(&cfg, ctx_b, l, c, &res, "(c) ");
                /* CPU time: what a machine shared with other work disturbs least */
                sc_cpu = cpu_s() - sc_cpu;
                if (sc >= 0 && res.cached != res.steps)
                        fprintf(stderr, "bench: (c) ran %d steps\n", res.steps - res.cached);
                free(l);
                free(c);
                c = sw_xasprintf("%s/data", dir);
                for (int i = 0; i < 5; i++) {
                        struct sw_err ignored = SW_ERR_INIT;
                        l = sw_xasprintf("%s/out-c-cli", dir);
                        sw_rm_rf(l, &ignored);
                        double t = slipway_cli_build(c, ctx_b, l);
                        if (t < 0) {
                                cli_min = cli_max = -1;
                                free(l);
                                break;
                        }
                        cli_min = cli_min < 0 || t < cli_min ? t : cli_min;
                        cli_max = t > cli_max ? t : cli_max;
                        free(l);
                }
                free(c);
        }

        if (have_buildah) {
                char *ra = sw_xasprintf("%s/buildah-a", dir),
                     *rb = sw_xasprintf("%s/buildah-b", dir);
                ba = buildah_build(ra, ctx_a, "Dockerfile", "bench-a:1");
                bb = buildah_build(rb, ctx_b, "Dockerfile.buildah", "bench-b:1");
                bc = buildah_build(rb, ctx_b, "Dockerfile.buildah", "bench-b:1");
                free(ra);
                free(rb);
        } else {
                printf("buildah: not installed (apt-get install buildah); slipway figures only\n");
        }

        line("build_a_scratch_copy_slipway", sa);
        line("build_a_scratch_copy_buildah", ba);
        ratio("build_a_ratio_slipway_to_buildah", sa, ba);
        line("build_b_run1000_copy200mib_slipway", sb);
        line("build_b_run1000_copy200mib_buildah", bb);
        ratio("build_b_ratio_slipway_to_buildah", sb, bb);
        line("build_c_unchanged_slipway", sc);
        line("build_c_unchanged_slipway_cpu", sc >= 0 ? sc_cpu : -1);
        line("build_c_unchanged_slipway_cli_best", cli_min);
        line("build_c_unchanged_slipway_cli_worst", cli_max);
        line("build_c_unchanged_buildah", bc);
        ratio("build_c_ratio_slipway_to_buildah", sc, bc);

        /* the layer pipeline alone */
        {
                struct step_layer_pack_options po = STEP_LAYER_PACK_OPTIONS_INIT;
                struct step_layer_info info;
                char *src = sw_xasprintf("%s/data", ctx_b), *blob = sw_xasprintf("%s/l.tgz", dir);
                double t0 = now_s(), c0 = cpu_s(), secs;
                if (step_layer_pack(&info, src, blob, &po, &err) != 0) {
                        fprintf(stderr, "bench: pack: %s\n", err.msg);
                } else {
                        secs = now_s() - t0;
                        printf("layer_pack_gzip_200mib: %.1f MiB/s\n", CONTEXT_MIB / secs);
                        printf("layer_pack_gzip_200mib_per_cpu: %.1f MiB/cpu-s\n",
                               CONTEXT_MIB / (cpu_s() - c0 > 0 ? cpu_s() - c0 : 1e-9));
                        printf("layer_pack_gzip_ratio: %.2f x\n",
                               (double)info.tar_size / (double)info.size);
                }
                unlink(blob);
                free(src);
                free(blob);
        }
        rc = 0;
out:
        t_registry_stop(reg);
        if (sw_rm_rf(dir, &err) != 0)
                fprintf(stderr, "bench: cleanup: %s\n", err.msg);
        sw_config_release(&cfg);
        free(env[0]);
        free(ctx_a);
        free(ctx_base);
        free(ctx_b);
        free(base);
        return rc;
}
