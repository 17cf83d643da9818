/*
 * build_int.h - shared inside the image builder (steps/build*.c).
 */
#ifndef SW_STEPS_BUILD_INT_H
#define SW_STEPS_BUILD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/digest.h"
#include "common/err.h"

struct step_oci_layout;
struct step_oci_desc;
struct step_dockerignore;
struct sw_sha256;

/* The build cache: an OCI layout of blobs, unpacked layers, cache records. */
struct bld_store {
        char *root;
        struct step_oci_layout *oci; /* pulled images and built layer blobs */
};

int bld_store_open(struct bld_store *s, const char *root, struct sw_err *err);
void bld_store_release(struct bld_store *s);

/* The unpacked directory of a layer blob (an overlay lower dir), unpacking it once if needed. */
int bld_layer_dir(char **out, struct bld_store *s, const struct step_oci_desc *blob,
                  struct sw_err *err);
/* Move a directory (a RUN's upper dir, a COPY's tree) into the store as blob `digest`'s layer. */
int bld_layer_adopt(char **out, struct bld_store *s, const char *digest, const char *dir,
                    struct sw_err *err);

/* A record of the cache: key -> the layer it made. */
int bld_cache_get(json_t **out, struct bld_store *s, const char *key);
int bld_cache_put(struct bld_store *s, const char *key, const json_t *rec, struct sw_err *err);

/*
 * Mount an overlay at `merged` with `lowers` (topmost first). `upper` and
 * `work` NULL give a read-only view (at least one lower).
 */
int bld_overlay_mount(const char *merged, const char *const *lowers, size_t n, const char *upper,
                      const char *work, struct sw_err *err);
void bld_overlay_umount(const char *merged);

/* USER "name", "uid", "name:group", "uid:gid" against the rootfs's /etc/passwd and /etc/group. */
int bld_user_lookup(uint32_t *uid, uint32_t *gid, const char *rootfs, const char *spec,
                    struct sw_err *err);

/* An entry of the build context. */
struct bld_entry {
        char *path; /* relative, '/'-separated, no leading "./" */
        mode_t mode;
        int64_t size;
};

struct bld_tree {
        struct bld_entry *e;
        size_t n, cap;
};

/*
 * List everything under `root` (not following symlinks), sorted by path,
 * leaving out what `ignore` (may be NULL) excludes.
 */
int bld_tree_scan(struct bld_tree *t, const char *root, const struct step_dockerignore *ignore,
                  struct sw_err *err);
void bld_tree_release(struct bld_tree *t);

struct bld_copy {
        int src_root_fd;       /* the context, or another stage's root */
        bool in_root;          /* symlinks resolve inside the root (another image) */
        const char *dst_root;  /* the new layer's tree */
        const char *view_root; /* the stage's filesystem as it is (parents' attributes), or NULL */
        int64_t uid, gid;      /* -1: keep the source's (context files get 0) */
        int64_t mode;          /* -1: keep */
        bool extract_archives; /* ADD: unpack local tar archives */
        const struct step_dockerignore *ignore; /* context copies: what is left out, or NULL */
        struct sw_sha256 *hash;                 /* the copied content goes into the cache key */
        /*
         * Write nothing and read no content: hash each file's identity and
         * stat data (device, inode, size, mtime and ctime in ns) where its
         * content would go. The result fingerprints the sources cheaply; the
         * builder maps it to the content digest of an earlier copy.
         */
        bool stat_only;
};

/* Copy source `src` (relative to the source root) to `dst` (absolute in the image). */
int bld_copy_path(struct bld_copy *c, const char *src, const char *dst, bool dst_is_dir,
                  struct sw_err *err);

#endif /* SW_STEPS_BUILD_INT_H */
