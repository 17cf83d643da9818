/*
 * layer_pack.c - a directory tree (or an overlayfs upper dir) into a
 * reproducible layer blob, hashed and compressed in the same pass.
 *
 * libarchive writes the tar (pax_restricted: plain ustar headers, with a pax
 * header only where ustar cannot say it, such as long names) into our write
 * callback. The callback hashes the tar bytes (diff_id), hands them to the
 * block-parallel gzip writer (layer_gzip.c: one gzip member per 1 MiB of
 * tar, no name, mtime 0, output independent of the thread count), and hashes and writes the compressed
 * bytes it gets back (the blob digest). Everything that
 * varies between two copies of the same tree is normalised before libarchive
 * sees it: traversal order, times, user and group names, atime and ctime.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/digest.h"
#include "common/mem.h"
#include "steps/layer.h"
#include "steps/layer_int.h"
#include "common/banned.h"

#define PACK_READ_BUF (256 * 1024)
#define PACK_MAX_DEPTH 256
#define PACK_XATTR_LIST_MAX (64 * 1024)
#define PACK_XATTR_VALUE_MAX (64 * 1024)

int step__archive_err(struct archive *a, int code, struct sw_err *err, const char *what)
{
        const char *msg = a ? archive_error_string(a) : NULL;

        return sw_err_set(err, code, "%s: %s", what, msg ? msg : "unknown libarchive error");
}

bool step__layer_xattr_private(const char *name)
{
        return strncmp(name, "trusted.overlay.", 16) == 0 ||
               strncmp(name, "user.overlay.", 13) == 0 || strcmp(name, "security.selinux") == 0;
}

/* The output side: tar bytes in, hashed, compressed, hashed again, written. */
struct pack_sink {
        int fd;
        bool gzip;
        struct step__gz *gz;
        struct archive *zstd; /* a raw-format libarchive writer with the zstd filter */
        struct sw_sha256 *tar_hash;
        struct sw_sha256 *blob_hash;
        int64_t tar_size;
        int64_t blob_size;
        int64_t max_bytes;
        struct sw_err *err;
        int rc; /* first error seen inside a callback */
};

/* One remembered inode, for hard links inside the layer. */
struct pack_inode {
        dev_t dev;
        ino_t ino;
        char *path; /* NULL for an empty slot */
};

struct pack_state {
        struct archive *a;
        struct archive_entry *e;
        const struct step_layer_pack_options *o;
        struct pack_sink sink;
        char *buf;
        struct pack_inode *inodes;
        size_t inodes_cap;
        size_t inodes_len;
        int64_t entries;
        int64_t skipped;
        const char *root; /* the source directory, for the path-based xattr calls */
        struct sw_err *err;
};

struct pack_child {
        char *name;
        struct stat st;
        bool whiteout;
};

static int sink_write_fd(struct pack_sink *s, const unsigned char *p, size_t len)
{
        sw_sha256_update(s->blob_hash, p, len);
        s->blob_size += (int64_t)len;
        while (len > 0) {
                ssize_t n = write(s->fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return sw_err_errno(s->err, SW_EIO, errno, "write layer blob");
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int sink_emit(void *ctx, const void *data, size_t len, struct sw_err *err)
{
        (void)err; /* the sink carries its own */
        return sink_write_fd(ctx, data, len);
}

static int sink_put(struct pack_sink *s, const void *data, size_t len)
{
        sw_sha256_update(s->tar_hash, data, len);
        s->tar_size += (int64_t)len;
        if (s->max_bytes > 0 && s->tar_size > s->max_bytes)
                return sw_err_set(s->err, SW_ETOOBIG, "layer is larger than %lld bytes",
                                  (long long)s->max_bytes);
        if (s->zstd) {
                if (archive_write_data(s->zstd, data, len) != (la_ssize_t)len)
                        return s->rc ? s->rc : step__archive_err(s->zstd, SW_EIO, s->err, "zstd");
                return 0;
        }
        if (!s->gzip)
                return sink_write_fd(s, data, len);
        return step__gz_write(s->gz, data, len, s->err);
}

static la_ssize_t sink_write_cb(struct archive *a, void *client, const void *buf, size_t len)
{
        struct pack_sink *s = client;

        (void)a;
        if (s->rc == 0)
                s->rc = sink_put(s, buf, len);
        return s->rc ? -1 : (la_ssize_t)len;
}

/* The zstd writer's output side: compressed bytes to the blob. */
static la_ssize_t zstd_write_cb(struct archive *a, void *client, const void *buf, size_t len)
{
        struct pack_sink *s = client;

        (void)a;
        if (s->rc == 0)
                s->rc = sink_write_fd(s, buf, len);
        return s->rc ? -1 : (la_ssize_t)len;
}

static int sink_zstd_open(struct pack_sink *s)
{
        struct archive_entry *e = NULL;
        int rc = 0;

        s->zstd = archive_write_new();
        /* ARCHIVE_WARN would mean an external zstd program: not wanted. */
        if (archive_write_set_format_raw(s->zstd) != ARCHIVE_OK ||
            archive_write_add_filter_zstd(s->zstd) != ARCHIVE_OK ||
            archive_write_set_filter_option(s->zstd, "zstd", "compression-level", "3") !=
                    ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(s->zstd, 1) != ARCHIVE_OK)
                return step__archive_err(s->zstd, SW_EINTERNAL, s->err, "set up zstd writer");
        if (archive_write_open(s->zstd, s, NULL, zstd_write_cb, NULL) != ARCHIVE_OK)
                return s->rc ? s->rc : step__archive_err(s->zstd, SW_EIO, s->err, "open zstd");
        e = archive_entry_new();
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_copy_pathname(e, "layer.tar");
        if (archive_write_header(s->zstd, e) != ARCHIVE_OK)
                rc = step__archive_err(s->zstd, SW_EIO, s->err, "start zstd stream");
        archive_entry_free(e);
        return rc;
}

static int sink_finish(struct pack_sink *s)
{
        if (s->zstd) {
                if (archive_write_close(s->zstd) != ARCHIVE_OK)
                        return s->rc ? s->rc
                                     : step__archive_err(s->zstd, SW_EIO, s->err, "finish zstd");
                return s->rc;
        }
        if (s->gzip)
                return step__gz_finish(s->gz, s->err);
        return 0;
}

/* Adds `path` -> (dev, ino); returns the path first seen with that inode, or NULL. */
static const char *inode_remember(struct pack_state *st, const struct stat *sb, const char *path)
{
        size_t h, mask;

        if (st->inodes_len * 2 >= st->inodes_cap) {
                size_t ncap = st->inodes_cap ? st->inodes_cap * 2 : 64;
                struct pack_inode *n = sw_xcalloc(ncap, sizeof(*n));
                for (size_t i = 0; i < st->inodes_cap; i++) {
                        if (!st->inodes[i].path)
                                continue;
                        h = ((size_t)st->inodes[i].ino * 31u + (size_t)st->inodes[i].dev) &
                            (ncap - 1);
                        while (n[h].path)
                                h = (h + 1) & (ncap - 1);
                        n[h] = st->inodes[i];
                }
                free(st->inodes);
                st->inodes = n;
                st->inodes_cap = ncap;
        }
        mask = st->inodes_cap - 1;
        h = ((size_t)sb->st_ino * 31u + (size_t)sb->st_dev) & mask;
        while (st->inodes[h].path) {
                if (st->inodes[h].dev == sb->st_dev && st->inodes[h].ino == sb->st_ino)
                        return st->inodes[h].path;
                h = (h + 1) & mask;
        }
        st->inodes[h].dev = sb->st_dev;
        st->inodes[h].ino = sb->st_ino;
        st->inodes[h].path = sw_xstrdup(path);
        st->inodes_len++;
        return NULL;
}

static int cmp_child(const void *a, const void *b)
{
        const struct pack_child *x = a, *y = b;

        return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads an xattr of the file at `full` (not following symlinks); -1 when absent. */
static ssize_t xattr_get(const char *full, const char *name, char *val, size_t cap)
{
        return lgetxattr(full, name, val, cap);
}

static bool xattr_is_y(const char *full, const char *name)
{
        char v[8];
        ssize_t n = xattr_get(full, name, v, sizeof(v));

        return n == 1 && v[0] == 'y';
}

static bool xattr_present(const char *full, const char *name)
{
        return lgetxattr(full, name, NULL, 0) >= 0;
}

/* Sets the fields every entry shares: owner, group, mtime; names and other times stay empty. */
static void entry_common(struct pack_state *st, const char *path, const struct stat *sb,
                         mode_t type, mode_t perm)
{
        struct archive_entry *e = st->e;

        archive_entry_clear(e);
        archive_entry_copy_pathname(e, path);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, perm);
        archive_entry_set_uid(e, st->o->uid >= 0 ? st->o->uid : (la_int64_t)sb->st_uid);
        archive_entry_set_gid(e, st->o->gid >= 0 ? st->o->gid : (la_int64_t)sb->st_gid);
        archive_entry_set_mtime(e, st->o->mtime, 0);
}

/* Copies the file's extended attributes, sorted by name, minus the private ones. */
static int entry_xattrs(struct pack_state *st, const char *full)
{
        char *list = NULL, *val = NULL;
        char **names = NULL;
        size_t n_names = 0;
        ssize_t len;
        int rc = 0;

        len = llistxattr(full, NULL, 0);
        if (len <= 0)
                return 0; /* none, or a file system without xattrs */
        if (len > PACK_XATTR_LIST_MAX)
                return sw_err_set(st->err, SW_ETOOBIG, "'%s': extended attribute list too long",
                                  full);
        list = sw_xmalloc((size_t)len + 1);
        len = llistxattr(full, list, (size_t)len);
        if (len < 0) {
                rc = sw_err_errno(st->err, SW_EIO, errno, "list xattrs of '%s'", full);
                goto out;
        }
        list[len] = '\0';
        names = sw_xcalloc((size_t)len + 1, sizeof(*names));
        for (char *p = list; p < list + len; p += strlen(p) + 1)
                if (*p && !step__layer_xattr_private(p))
                        names[n_names++] = p;
        qsort(names, n_names, sizeof(*names), cmp_str);
        val = sw_xmalloc(PACK_XATTR_VALUE_MAX);
        for (size_t i = 0; i < n_names; i++) {
                ssize_t vlen = lgetxattr(full, names[i], val, PACK_XATTR_VALUE_MAX);
                if (vlen < 0) {
                        /* trusted.* is unreadable without CAP_SYS_ADMIN: leave it out. */
                        if (errno == ENODATA || errno == EPERM || errno == EACCES)
                                continue;
                        rc = sw_err_errno(st->err, SW_EIO, errno, "read xattr '%s' of '%s'",
                                          names[i], full);
                        goto out;
                }
                archive_entry_xattr_add_entry(st->e, names[i], val, (size_t)vlen);
        }
out:
        free(val);
        free(names);
        free(list);
        return rc;
}

static int write_header(struct pack_state *st, const char *path)
{
        /*
         * ARCHIVE_WARN: a name that is not valid in the (always C) locale; it
         * is stored byte for byte with a pax hdrcharset=BINARY record.
         */
        if (archive_write_header(st->a, st->e) < ARCHIVE_WARN) {
                if (st->sink.rc)
                        return st->sink.rc;
                return step__archive_err(st->a, SW_EIO, st->err, path);
        }
        st->entries++;
        return 0;
}

static int write_data(struct pack_state *st, const void *p, size_t len, const char *path)
{
        la_ssize_t n = archive_write_data(st->a, p, len);

        if (n < 0 || (size_t)n != len) {
                if (st->sink.rc)
                        return st->sink.rc;
                return step__archive_err(st->a, SW_EIO, st->err, path);
        }
        return 0;
}

static int pack_whiteout(struct pack_state *st, const char *prefix, const char *name,
                         const struct stat *sb)
{
        char *path = sw_xasprintf("%s%s%s", prefix, STEP_LAYER_WH_PREFIX, name);
        int rc;

        entry_common(st, path, sb, AE_IFREG, 0644);
        archive_entry_set_size(st->e, 0);
        rc = write_header(st, path);
        free(path);
        return rc;
}

static int pack_file_data(struct pack_state *st, int dirfd, const char *name, const char *path,
                          const struct stat *sb)
{
        int64_t left = sb->st_size;
        int fd, rc = 0;

        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return sw_err_errno(st->err, sw_err_from_errno(errno), errno, "open '%s/%s'",
                                    st->root, path);
        while (left > 0) {
                size_t want = left < PACK_READ_BUF ? (size_t)left : PACK_READ_BUF;
                ssize_t n = read(fd, st->buf, want);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = sw_err_errno(st->err, SW_EIO, errno, "read '%s/%s'", st->root, path);
                        goto out;
                }
                if (n == 0)
                        break;
                rc = write_data(st, st->buf, (size_t)n, path);
                if (rc)
                        goto out;
                left -= n;
        }
        if (left != 0 || read(fd, st->buf, 1) != 0)
                rc = sw_err_set(st->err, SW_ECONFLICT, "'%s/%s' changed size while it was packed",
                                st->root, path);
out:
        close(fd);
        return rc;
}

static int pack_dir(struct pack_state *st, int dirfd, const char *prefix, int depth);

static int pack_child(struct pack_state *st, int dirfd, const char *prefix,
                      const struct pack_child *c, int depth)
{
        const struct stat *sb = &c->st;
        mode_t fmt = sb->st_mode & S_IFMT, perm = sb->st_mode & 07777;
        char *path = sw_xasprintf("%s%s", prefix, c->name);
        char *full = sw_xasprintf("%s/%s", st->root, path);
        char *target = NULL, *sub = NULL;
        int subfd = -1, rc = 0;

        if (st->o->cancelled && st->o->cancelled(st->o->cancel_arg)) {
                rc = sw_err_set(st->err, SW_ECANCELED, "packing '%s' was cancelled", st->root);
                goto out;
        }
        if (fmt == S_IFSOCK) {
                st->skipped++; /* a socket cannot live in a tar */
                goto out;
        }
        if (st->o->changeset && (xattr_present(full, "trusted.overlay.redirect") ||
                                 xattr_present(full, "trusted.overlay.metacopy") ||
                                 xattr_present(full, "user.overlay.redirect") ||
                                 xattr_present(full, "user.overlay.metacopy"))) {
                rc = sw_err_set(st->err, SW_EINVAL,
                                "'%s' has an overlay redirect or metacopy xattr: mount the overlay "
                                "with redirect_dir=off,metacopy=off to pack it as a layer",
                                full);
                goto out;
        }
        entry_common(st, path, sb, fmt, perm);
        if (fmt != S_IFDIR && sb->st_nlink > 1) {
                const char *first = inode_remember(st, sb, path);
                if (first) {
                        archive_entry_set_filetype(st->e, AE_IFREG);
                        archive_entry_copy_hardlink(st->e, first);
                        archive_entry_set_size(st->e, 0);
                        rc = write_header(st, path);
                        goto out;
                }
        }
        if (st->o->xattrs) {
                rc = entry_xattrs(st, full);
                if (rc)
                        goto out;
        }
        switch (fmt) {
        case S_IFREG:
                archive_entry_set_size(st->e, sb->st_size);
                rc = write_header(st, path);
                if (rc == 0 && sb->st_size > 0)
                        rc = pack_file_data(st, dirfd, c->name, path, sb);
                break;
        case S_IFLNK: {
                size_t cap = (size_t)sb->st_size + 1;
                ssize_t n;
                for (;;) {
                        target = sw_xrealloc(target, cap);
                        n = readlinkat(dirfd, c->name, target, cap);
                        if (n < 0) {
                                rc = sw_err_errno(st->err, SW_EIO, errno, "readlink '%s'", full);
                                goto out;
                        }
                        if ((size_t)n < cap)
                                break;
                        cap *= 2;
                }
                target[n] = '\0';
                archive_entry_copy_symlink(st->e, target);
                rc = write_header(st, path);
                break;
        }
        case S_IFCHR:
        case S_IFBLK:
                archive_entry_set_rdevmajor(st->e, major(sb->st_rdev));
                archive_entry_set_rdevminor(st->e, minor(sb->st_rdev));
                rc = write_header(st, path);
                break;
        case S_IFIFO:
                rc = write_header(st, path);
                break;
        case S_IFDIR:
                if (depth >= PACK_MAX_DEPTH) {
                        rc = sw_err_set(st->err, SW_ETOOBIG,
                                        "'%s' is nested deeper than %d directories", full,
                                        PACK_MAX_DEPTH);
                        goto out;
                }
                subfd = openat(dirfd, c->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (subfd < 0) {
                        rc = sw_err_errno(st->err, sw_err_from_errno(errno), errno, "open '%s'",
                                          full);
                        goto out;
                }
                rc = write_header(st, path);
                if (rc)
                        goto out;
                sub = sw_xasprintf("%s/", path);
                if (st->o->changeset && (xattr_is_y(full, "trusted.overlay.opaque") ||
                                         xattr_is_y(full, "user.overlay.opaque"))) {
                        char *opq = sw_xasprintf("%s%s", sub, STEP_LAYER_WH_OPAQUE);
                        entry_common(st, opq, sb, AE_IFREG, 0644);
                        archive_entry_set_size(st->e, 0);
                        rc = write_header(st, opq);
                        free(opq);
                        if (rc)
                                goto out;
                }
                rc = pack_dir(st, subfd, sub, depth + 1);
                break;
        default:
                st->skipped++;
                break;
        }
out:
        if (subfd >= 0)
                close(subfd);
        free(sub);
        free(target);
        free(full);
        free(path);
        return rc;
}

/* True for what overlayfs leaves in an upper dir where a lower file was deleted. */
static bool is_overlay_whiteout(const struct pack_state *st, const char *prefix,
                                const struct pack_child *c)
{
        if (S_ISCHR(c->st.st_mode) && c->st.st_rdev == makedev(0, 0))
                return true;
        /* Kernels from 6.7 also accept an empty file marked with an xattr. */
        if (S_ISREG(c->st.st_mode) && c->st.st_size == 0) {
                char *full = sw_xasprintf("%s/%s%s", st->root, prefix, c->name);
                bool wh = xattr_present(full, "trusted.overlay.whiteout") ||
                          xattr_present(full, "user.overlay.whiteout");
                free(full);
                return wh;
        }
        return false;
}

/*
 * Emits the children of `dirfd` (its own entry is already written): first
 * the whiteouts, then every other child, each group in bytewise name order,
 * recursing depth first into directories.
 */
static int pack_dir(struct pack_state *st, int dirfd, const char *prefix, int depth)
{
        struct pack_child *kids = NULL;
        size_t n = 0, cap = 0;
        DIR *d = NULL;
        struct dirent *de;
        int fd2, rc = 0;

        fd2 = dup(dirfd);
        if (fd2 < 0 || !(d = fdopendir(fd2))) {
                rc = sw_err_errno(st->err, SW_EIO, errno, "read directory '%s/%s'", st->root,
                                  prefix);
                if (fd2 >= 0)
                        close(fd2);
                goto out;
        }
        errno = 0;
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        kids = sw_xrealloc(kids, cap * sizeof(*kids));
                }
                memset(&kids[n], 0, sizeof(kids[n]));
                kids[n++].name = sw_xstrdup(de->d_name);
        }
        if (errno != 0) {
                rc = sw_err_errno(st->err, SW_EIO, errno, "read directory '%s/%s'", st->root,
                                  prefix);
                goto out;
        }
        if (n > 1)
                qsort(kids, n, sizeof(*kids), cmp_child);
        for (size_t i = 0; i < n; i++) {
                if (fstatat(dirfd, kids[i].name, &kids[i].st, AT_SYMLINK_NOFOLLOW) != 0) {
                        rc = sw_err_errno(st->err, SW_EIO, errno, "stat '%s/%s%s'", st->root,
                                          prefix, kids[i].name);
                        goto out;
                }
                kids[i].whiteout = st->o->changeset && is_overlay_whiteout(st, prefix, &kids[i]);
        }
        for (size_t i = 0; i < n && rc == 0; i++)
                if (kids[i].whiteout)
                        rc = pack_whiteout(st, prefix, kids[i].name, &kids[i].st);
        for (size_t i = 0; i < n && rc == 0; i++)
                if (!kids[i].whiteout)
                        rc = pack_child(st, dirfd, prefix, &kids[i], depth);
out:
        if (d)
                closedir(d);
        for (size_t i = 0; i < n; i++)
                free(kids[i].name);
        free(kids);
        return rc;
}

/*
 * The blob must not land inside the tree it is made from: the half-written
 * temporary file would be packed into itself.
 */
static int check_out_path(const char *src_dir, const char *out_path, struct sw_err *err)
{
        const char *slash = strrchr(out_path, '/');
        char *dir = slash ? (slash == out_path ? sw_xstrdup("/")
                                               : sw_xstrndup(out_path, (size_t)(slash - out_path)))
                          : sw_xstrdup(".");
        char *rdir = realpath(dir, NULL), *rsrc = realpath(src_dir, NULL);
        size_t n = rsrc ? strlen(rsrc) : 0;
        int rc = 0;

        if (rdir && rsrc &&
            (strcmp(rdir, rsrc) == 0 ||
             (strncmp(rdir, rsrc, n) == 0 && (rdir[n] == '/' || strcmp(rsrc, "/") == 0))))
                rc = sw_err_set(err, SW_EINVAL, "layer output '%s' lies inside the source '%s'",
                                out_path, src_dir);
        free(rdir);
        free(rsrc);
        free(dir);
        return rc;
}

int step_layer_pack(struct step_layer_info *out, const char *src_dir, const char *out_path,
                    const struct step_layer_pack_options *opts, struct sw_err *err)
{
        static const struct step_layer_pack_options defaults = STEP_LAYER_PACK_OPTIONS_INIT;
        struct pack_state st;
        struct step_layer_info info;
        char *tmp = NULL;
        int rootfd = -1, rc = 0, level, threads;

        memset(&st, 0, sizeof(st));
        memset(&info, 0, sizeof(info));
        st.o = opts ? opts : &defaults;
        st.err = err;
        st.root = src_dir;
        st.sink.fd = -1;
        st.sink.err = err;
        st.sink.max_bytes = st.o->max_bytes;
        level = st.o->gzip_level ? st.o->gzip_level : 6;
        if (level < 1 || level > 9)
                return sw_err_set(err, SW_EINVAL, "gzip level %d is not in 1..9", level);

        rootfd = open(src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return sw_err_errno(err, sw_err_from_errno(errno), errno, "open layer source '%s'",
                                    src_dir);
        rc = check_out_path(src_dir, out_path, err);
        if (rc)
                goto out;

        tmp = sw_xasprintf("%s.tmp-XXXXXX", out_path);
        st.sink.fd = mkostemp(tmp, O_CLOEXEC);
        if (st.sink.fd < 0) {
                rc = sw_err_errno(err, sw_err_from_errno(errno), errno, "create '%s'", tmp);
                free(tmp);
                tmp = NULL;
                goto out;
        }
        if (fchmod(st.sink.fd, 0644) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "chmod '%s'", tmp);
                goto out;
        }
        st.sink.gzip = st.o->compression == STEP_LAYER_GZIP;
        if (st.sink.gzip) {
                threads = st.o->threads;
                if (threads <= 0) {
                        long n = sysconf(_SC_NPROCESSORS_ONLN);
                        threads = n < 1 ? 1 : n > 8 ? 8 : (int)n;
                }
                rc = step__gz_new(&st.sink.gz, level, threads, sink_emit, &st.sink, err);
                if (rc)
                        goto out;
        }
        if (st.o->compression == STEP_LAYER_ZSTD) {
                rc = sink_zstd_open(&st.sink);
                if (rc)
                        goto out;
        }
        st.sink.tar_hash = sw_sha256_new();
        st.sink.blob_hash = sw_sha256_new();
        st.buf = sw_xmalloc(PACK_READ_BUF);

        st.a = archive_write_new();
        st.e = archive_entry_new();
        if (archive_write_set_format_pax_restricted(st.a) != ARCHIVE_OK ||
            archive_write_add_filter_none(st.a) != ARCHIVE_OK) {
                rc = step__archive_err(st.a, SW_EINTERNAL, err, "set up tar writer");
                goto out;
        }
        if (archive_write_open(st.a, &st.sink, NULL, sink_write_cb, NULL) != ARCHIVE_OK) {
                rc = st.sink.rc ? st.sink.rc
                                : step__archive_err(st.a, SW_EIO, err, "open tar writer");
                goto out;
        }

        rc = pack_dir(&st, rootfd, "", 0);
        if (rc)
                goto out;
        if (archive_write_close(st.a) != ARCHIVE_OK) {
                rc = st.sink.rc ? st.sink.rc
                                : step__archive_err(st.a, SW_EIO, err, "finish tar stream");
                goto out;
        }
        rc = st.sink.rc ? st.sink.rc : sink_finish(&st.sink);
        if (rc)
                goto out;
        if (fsync(st.sink.fd) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "fsync '%s'", tmp);
                goto out;
        }
        if (close(st.sink.fd) != 0) {
                st.sink.fd = -1;
                rc = sw_err_errno(err, SW_EIO, errno, "close '%s'", tmp);
                goto out;
        }
        st.sink.fd = -1;
        if (rename(tmp, out_path) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "rename '%s' to '%s'", tmp, out_path);
                goto out;
        }
        free(tmp);
        tmp = NULL;

        sw_sha256_final(st.sink.tar_hash, info.diff_id);
        sw_sha256_final(st.sink.blob_hash, info.digest);
        info.size = st.sink.blob_size;
        info.tar_size = st.sink.tar_size;
        info.entries = st.entries;
        info.skipped = st.skipped;
        info.media_type = st.sink.gzip   ? STEP_LAYER_MEDIA_TAR_GZIP
                          : st.sink.zstd ? STEP_LAYER_MEDIA_TAR_ZSTD
                                         : STEP_LAYER_MEDIA_TAR;
        if (out)
                *out = info;
out:
        /*
         * Freeing a still-open writer closes it, sending the tar trailer to
         * our callback; on an error path that lands in the temporary file
         * about to be unlinked. (archive_write_fail() would skip it but
         * leaks libarchive's block buffer.)
         */
        archive_write_free(st.a);
        archive_entry_free(st.e);
        step__gz_free(st.sink.gz);
        if (st.sink.zstd)
                archive_write_free(st.sink.zstd);
        sw_sha256_free(st.sink.tar_hash);
        sw_sha256_free(st.sink.blob_hash);
        free(st.buf);
        for (size_t i = 0; i < st.inodes_cap; i++)
                free(st.inodes[i].path);
        free(st.inodes);
        if (st.sink.fd >= 0)
                close(st.sink.fd);
        if (tmp) {
                unlink(tmp);
                free(tmp);
        }
        if (rootfd >= 0)
                close(rootfd);
        return rc;
}
