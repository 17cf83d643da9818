/*
 * build.h - build an OCI image from a Dockerfile, without a Docker daemon.
 *
 * Stages are built from `FROM` a registry image (pulled once into the build
 * cache and kept by digest), `scratch`, or an earlier stage. Metadata
 * instructions (ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL,
 * HEALTHCHECK, SHELL, CMD, ENTRYPOINT, ARG, ONBUILD) change the image config
 * with Docker's documented interplay. RUN runs under runc (steps/runtime.h)
 * on an overlayfs whose lower directories are the unpacked parent layers; the
 * upper directory becomes the new layer. COPY and ADD write their layer
 * directly; their sources never leave the context (symlinks included) and
 * honour .dockerignore. Every layer is a reproducible tar (steps/layer.h), and
 * all timestamps in the image are SOURCE_DATE_EPOCH (0 by default), so the
 * same inputs give the same digests.
 *
 * The cache key of a layer is its parent's key, the instruction as it will
 * run (expanded, with the RUN environment and user) and the digest of the
 * files it reads; an unchanged rebuild runs nothing and writes no layer. A
 * COPY/ADD from the context first fingerprints its sources by their stat
 * data and looks up the content digest an earlier build recorded for it, so
 * an unchanged rebuild does not read the context's content either. Output
 * layouts hard-link the store's blobs when they can.
 *
 * The image's org.opencontainers.image.source and .revision labels come from
 * the options unless the Dockerfile's LABEL sets them. A context bigger than
 * the limit (after .dockerignore) fails with SW_ETOOBIG before anything runs.
 *
 * Everything lives under `cache_dir`: pulled images and built layers (an OCI
 * layout), unpacked layers (once per digest), the cache records, and the
 * persistent `RUN --mount=type=cache` directories.
 *
 * Threads: builds may run in parallel on one cache directory.
 */
#ifndef SW_STEPS_BUILD_H
#define SW_STEPS_BUILD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/err.h"

struct sw_config;

struct step_build_options {
        const struct sw_config *cfg;   /* registry credentials, runtime */
        const char *context_dir;       /* the build context (a checkout) */
        const char *dockerfile;        /* relative to the context; NULL: "Dockerfile" */
        const char *target;            /* stage to build; NULL: the last */
        const char *const *build_args; /* "NAME=value", NULL-terminated, may be NULL */
        const char *const *secrets;    /* "id=/path/on/host", for RUN --mount=type=secret */
        const char *layout_dir;        /* the output OCI image layout (created when missing) */
        const char *ref_name;          /* its name in the layout's index; NULL: "latest" */
        const char *cache_dir;         /* NULL: $SLIPWAY_DATA/build */
        const char *work_dir;          /* scratch space for mounts; NULL: under cache_dir */
        int64_t source_date_epoch;     /* the image's timestamps, in seconds */
        bool no_cache;                 /* run every step even when cached */
        bool zstd;                     /* zstd layers instead of gzip */
        const char *source;            /* org.opencontainers.image.source label; may be NULL */
        const char *revision;          /* org.opencontainers.image.revision label; may be NULL */
        /* The context's size cap after .dockerignore (SW_ETOOBIG beyond); 0: the config's
         * SLIPWAY_BUILD_CONTEXT_MAX_BYTES (no cap without a config). */
        int64_t context_max_bytes;
        atomic_int *stop; /* non-zero: stop as soon as possible (SW_ECANCELED) */
        /* Progress lines, one per instruction when it ends ("Step 3/9 : RUN make (1.2s)",
         * "Step 4/9 : COPY . /app (cached)"); may be NULL. */
        void (*log)(void *arg, const char *line);
        /* Output of RUN commands as it comes; may be NULL. */
        void (*output)(void *arg, const char *data, size_t len);
        void *arg;
};

struct step_build_result {
        char manifest_digest[SW_DIGEST_STR_LEN];
        char config_digest[SW_DIGEST_STR_LEN];
        int64_t manifest_size;
        int exposed_port; /* the lowest TCP port of EXPOSE, 0 when none */
        int steps;        /* instructions that make layers */
        int cached;       /* of which came from the cache */
        int layers;
};

int step_build_image(struct step_build_result *out, const struct step_build_options *opts,
                     struct sw_err *err);

/* `slipway build DIR -t REF [--push]`: build (and push) an image. */
int step_build_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_STEPS_BUILD_H */
