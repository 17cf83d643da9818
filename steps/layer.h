/*
 * layer.h - image layers: reproducible tar changesets in, secure extraction out.
 *
 * Packing turns a directory into an OCI layer blob (tar, gzip-compressed by
 * default) that depends only on the tree's content: entries in a fixed order
 * (depth first, names sorted bytewise inside each directory), one caller-given
 * mtime, numeric ownership with empty user/group names, no atime/ctime and no
 * varying pax records, and gzip headers without name or timestamp; the tar
 * stream is cut into fixed 1 MiB chunks, each compressed in parallel into its
 * own gzip member (libdeflate), so the bytes do not depend on the number of
 * cores (but, as always, on the compressor's version). One pass
 * over the files yields the diff_id (sha256 of the tar), the blob digest (sha256
 * of the compressed bytes) and the blob size. A whole directory is packed for
 * COPY/ADD; an overlayfs upper directory is packed as a changeset for RUN, its
 * whiteouts (0/0 character devices) becoming `.wh.NAME` entries and its opaque
 * directories (trusted.overlay.opaque or user.overlay.opaque = "y") a
 * `.wh..wh..opq` entry; inside a directory the opaque marker and the whiteouts
 * come before every other entry.
 *
 * Unpacking reads gzip, zstd or plain tar (detected), checks the blob digest
 * while it reads, and never writes outside its root: absolute names, `..`
 * components and paths through a symlink are refused (libarchive's secure
 * extraction flags, plus the module's own no-symlink walk for every deletion),
 * so a symlink from an earlier entry cannot redirect a later write. Whiteouts
 * follow the OCI layer spec: `.wh.NAME` removes the lower NAME, `.wh..wh..opq`
 * removes the lower children of its directory, whatever their place in the tar;
 * entries of the layer itself are never removed by its own whiteouts. When both
 * the entry and the existing path are directories only the attributes change;
 * otherwise the existing path is removed and the entry created. Ownership is
 * kept when running as root and left to the current user otherwise.
 *
 * Not supported: following symlinks inside the root the way Docker's chroot
 * extraction does (`lib/x` where a lower layer made `lib -> usr/lib` is
 * refused, not redirected). Layers made from overlay upper dirs never need it.
 *
 * Ownership: results are plain structs filled by the callee; paths are the
 * caller's. Errors: 0 or a negative SW_E* code with `err` filled (one line
 * naming the entry or file at fault). Threads: every call is independent and
 * may run on any thread. Packing compresses on `threads` worker threads of
 * its own; extraction runs on a short-lived thread with a private working
 * directory (unshare(CLONE_FS)), so it never changes the process's current
 * directory, plus one thread that decompresses and hashes ahead of it. All of
 * them are joined before the call returns.
 */
#ifndef SW_STEPS_LAYER_H
#define SW_STEPS_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/err.h"

struct sw_config;

#define STEP_LAYER_MEDIA_TAR "application/vnd.oci.image.layer.v1.tar"
#define STEP_LAYER_MEDIA_TAR_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define STEP_LAYER_MEDIA_TAR_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

/* What a packed or unpacked layer is. */
struct step_layer_info {
        char diff_id[SW_DIGEST_STR_LEN]; /* sha256 of the uncompressed tar */
        char digest[SW_DIGEST_STR_LEN];  /* sha256 of the blob as stored/read */
        int64_t size;                    /* bytes of the blob */
        int64_t tar_size;                /* bytes of the uncompressed tar */
        int64_t entries;                 /* tar entries, whiteout markers included */
        int64_t skipped;                 /* entries left out: sockets; devices when not root */
        const char *media_type;          /* one of STEP_LAYER_MEDIA_* (static) */
};

enum step_layer_compression {
        STEP_LAYER_GZIP = 0, /* the default */
        STEP_LAYER_UNCOMPRESSED,
        STEP_LAYER_ZSTD, /* zstd level 3, one thread (libarchive's built-in libzstd) */
};

struct step_layer_pack_options {
        enum step_layer_compression compression;
        int gzip_level;    /* 1..9; 0 means 6 */
        int threads;       /* compression threads; 0: one per CPU, at most 8 (same bytes) */
        int64_t mtime;     /* seconds since the epoch for every entry (SOURCE_DATE_EPOCH) */
        int64_t uid;       /* owner of every entry, or -1 to keep each file's own */
        int64_t gid;       /* group of every entry, or -1 to keep each file's own */
        bool changeset;    /* the source is an overlayfs upper dir: map whiteouts */
        bool xattrs;       /* store extended attributes (never overlay.* or selinux) */
        int64_t max_bytes; /* cap on the uncompressed tar; 0 means no cap */
        /* Polled before every entry; true stops the pack with SW_ECANCELED. May be NULL. */
        bool (*cancelled)(void *arg);
        void *cancel_arg;
};

#define STEP_LAYER_PACK_OPTIONS_INIT                                                               \
        {                                                                                          \
                .compression = STEP_LAYER_GZIP, .gzip_level = 6, .threads = 0, .mtime = 0,         \
                .uid = -1, .gid = -1, .changeset = false, .xattrs = false, .max_bytes = 0,         \
                .cancelled = NULL, .cancel_arg = NULL                                              \
        }

/*
 * Pack `src_dir` into the layer blob `out_path` (written through a temporary
 * file in the same directory and renamed, so it appears whole or not at all;
 * an existing file is replaced). `opts` may be NULL for the defaults. On
 * success *out describes the blob. Errors: SW_ENOTFOUND for a missing source,
 * SW_EINVAL for an overlay upper dir that cannot be expressed as a layer
 * (redirect or metacopy xattrs: mount with redirect_dir=off,metacopy=off),
 * SW_ECONFLICT when a file changed size while it was read, SW_ETOOBIG past
 * max_bytes, SW_EIO otherwise. Idempotent: the same tree gives the same bytes.
 */
int step_layer_pack(struct step_layer_info *out, const char *src_dir, const char *out_path,
                    const struct step_layer_pack_options *opts, struct sw_err *err);

enum step_layer_whiteout_mode {
        /* Apply whiteouts by removing the lower paths (a flat root file system). */
        STEP_LAYER_WHITEOUT_REMOVE = 0,
        /*
         * Keep them as overlayfs does, for a directory that will be an overlay
         * lower layer: `.wh.NAME` becomes a 0/0 character device NAME and
         * `.wh..wh..opq` the opaque xattr on its directory.
         */
        STEP_LAYER_WHITEOUT_OVERLAY,
};

struct step_layer_unpack_options {
        const char *expected_digest;  /* blob digest to verify, or NULL */
        const char *expected_diff_id; /* tar digest to verify, or NULL */
        int64_t expected_size;        /* blob size from its descriptor, or -1 */
        int64_t max_bytes;            /* cap on the uncompressed tar; 0 means 16 GiB */
        int64_t max_entries;          /* cap on tar entries; 0 means 1,000,000 */
        enum step_layer_whiteout_mode whiteouts;
        bool user_xattr_opaque; /* OVERLAY mode: user.overlay.opaque (userxattr mounts) */
        bool xattrs;            /* restore extended attributes (never overlay.*) */
        /*
         * Polled before every entry, on the extraction thread (so it must be
         * thread-safe, as eng_step_cancelled() is); true stops with
         * SW_ECANCELED. May be NULL.
         */
        bool (*cancelled)(void *arg);
        void *cancel_arg;
};

#define STEP_LAYER_UNPACK_OPTIONS_INIT                                                             \
        {                                                                                          \
                .expected_digest = NULL, .expected_diff_id = NULL, .expected_size = -1,            \
                .max_bytes = 0, .max_entries = 0, .whiteouts = STEP_LAYER_WHITEOUT_REMOVE,         \
                .user_xattr_opaque = false, .xattrs = true, .cancelled = NULL, .cancel_arg = NULL  \
        }

/*
 * Unpack the layer blob `layer_path` into `target_dir`, which must be absent
 * or an empty directory. The layer is extracted into a temporary sibling that
 * is renamed into place only when everything (digests included) checked out,
 * so on any error `target_dir` is exactly as it was. `out` (may be NULL) gets
 * the layer's digests and counts. Errors: SW_ECORRUPT for a digest mismatch or
 * an unreadable archive, SW_EPERM for an entry that would escape the root or
 * an invalid whiteout, SW_ETOOBIG past the limits, SW_EEXIST when `target_dir`
 * is not empty (another unpack of the same digest won the race: treat as
 * done), SW_EIO otherwise. This is the content store's "once per digest".
 */
int step_layer_unpack(struct step_layer_info *out, const char *layer_path, const char *target_dir,
                      const struct step_layer_unpack_options *opts, struct sw_err *err);

/*
 * Apply the layer blob `layer_path` on top of the tree at `root_dir` in place,
 * as the next layer of a flat root file system. When an expected digest is
 * given, the blob is hashed before the tree is touched, so a corrupt blob
 * changes nothing; a malformed or hostile archive is detected only as it is
 * read, and leaves the entries before the bad one applied (the caller throws
 * such a tree away). Errors as for step_layer_unpack(), without SW_EEXIST.
 */
int step_layer_apply(struct step_layer_info *out, const char *layer_path, const char *root_dir,
                     const struct step_layer_unpack_options *opts, struct sw_err *err);

/* `slipway layer pack|apply`: the layer toolkit from the command line, for debugging. */
int step_cmd_layer(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_STEPS_LAYER_H */
