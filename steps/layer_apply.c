/*
 * layer_apply.c - extract a layer blob without ever writing outside its root.
 *
 * Two libarchive readers are chained: the outer one ("raw" format, gzip and
 * zstd filters) turns the blob into tar bytes, the inner one (tar only) reads
 * entries from those bytes. Our callbacks in between hash the blob (digest)
 * and the tar stream (diff_id) and enforce the size cap. Entries go to disk
 * through libarchive's archive_write_disk with its secure flags, after our own
 * checks: every name is normalised and refused when absolute or holding `..`,
 * and every path we touch ourselves (whiteouts, replacing a directory) is
 * reached with openat(O_NOFOLLOW) one component at a time, so that a symlink
 * is never followed.
 *
 * libarchive resolves entry names against the current directory, which is
 * shared by every thread of the process; the extraction therefore runs on a
 * thread of its own that first unshares its file system context
 * (unshare(CLONE_FS)) and then changes into the root.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/layer.h"
#include "steps/layer_int.h"
#include "common/banned.h"

#define APPLY_READ_BUF (128 * 1024)
#define APPLY_DEFAULT_MAX_BYTES (16LL * 1024 * 1024 * 1024)
#define APPLY_DEFAULT_MAX_ENTRIES 1000000LL
#define APPLY_PATH_MAX 4095

/* The set of paths this layer wrote: EXACT for its entries, ANCESTOR for their parents. */
enum seen_kind { SEEN_NONE = 0, SEEN_ANCESTOR = 1, SEEN_EXACT = 2 };

struct seen_slot {
        char *path;
        int kind;
};

struct seen_set {
        struct seen_slot *slots;
        size_t cap;
        size_t len;
};

/* The blob side: file descriptor in, blob digest out. */
struct apply_src {
        int fd;
        unsigned char *buf;
        struct sw_sha256 *hash;
        int64_t size;
        struct sw_err *err;
        int rc;
};

/*
 * The tar side, decompressed on a thread of its own: the producer reads the
 * outer reader into a ring of buffers, hashing them (diff_id) and enforcing
 * the size cap, while the extraction thread consumes them through the inner
 * reader's callback. At the end of the tar stream the producer also reads the
 * rest of the blob, so that both digests cover every byte.
 */
#define PIPE_BUFS 4

struct apply_pipe {
        struct archive *outer;
        struct apply_src *src;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        unsigned char *buf[PIPE_BUFS];
        size_t len[PIPE_BUFS];
        uint64_t filled;   /* buffers handed over by the producer */
        uint64_t released; /* buffers given back by the consumer */
        bool held;         /* the consumer holds buf[released % PIPE_BUFS] */
        bool eof;          /* the producer reached the end of tar and blob */
        bool stop;         /* the consumer gave up */
        /* written by the producer only, read after it signalled eof or rc */
        int rc;
        struct sw_err err;
        struct sw_sha256 *hash;
        int64_t size;
        int64_t max_bytes;
};

struct apply_job {
        /* inputs */
        int blob_fd;
        const char *root;
        const struct step_layer_unpack_options *o;
        /* outputs */
        struct step_layer_info info;
        struct sw_err err;
        int rc;
};

struct apply_state {
        const struct step_layer_unpack_options *o;
        int rootfd;
        bool is_root;
        struct archive *disk;
        struct seen_set seen;
        int64_t entries;
        int64_t skipped;
        struct sw_err *err;
};

static size_t seen_hash(const char *s)
{
        size_t h = 1469598103934665603ull;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ull;
        return h;
}

static struct seen_slot *seen_find(struct seen_set *s, const char *path)
{
        size_t h;

        if (!s->cap)
                return NULL;
        h = seen_hash(path) & (s->cap - 1);
        while (s->slots[h].path) {
                if (strcmp(s->slots[h].path, path) == 0)
                        return &s->slots[h];
                h = (h + 1) & (s->cap - 1);
        }
        return NULL;
}

static int seen_kind(struct seen_set *s, const char *path)
{
        struct seen_slot *slot = seen_find(s, path);

        return slot ? slot->kind : SEEN_NONE;
}

static void seen_put(struct seen_set *s, const char *path, int kind)
{
        struct seen_slot *slot = seen_find(s, path);
        size_t h;

        if (slot) {
                if (kind > slot->kind)
                        slot->kind = kind;
                return;
        }
        if ((s->len + 1) * 2 > s->cap) {
                size_t ncap = s->cap ? s->cap * 2 : 256;
                struct seen_slot *n = sw_xcalloc(ncap, sizeof(*n));
                for (size_t i = 0; i < s->cap; i++) {
                        if (!s->slots[i].path)
                                continue;
                        h = seen_hash(s->slots[i].path) & (ncap - 1);
                        while (n[h].path)
                                h = (h + 1) & (ncap - 1);
                        n[h] = s->slots[i];
                }
                free(s->slots);
                s->slots = n;
                s->cap = ncap;
        }
        h = seen_hash(path) & (s->cap - 1);
        while (s->slots[h].path)
                h = (h + 1) & (s->cap - 1);
        s->slots[h].path = sw_xstrdup(path);
        s->slots[h].kind = kind;
        s->len++;
}

/* Records an entry of this layer and marks its parents. */
static void seen_entry(struct seen_set *s, const char *path)
{
        char *p = sw_xstrdup(path);

        seen_put(s, p, SEEN_EXACT);
        for (char *slash = strrchr(p, '/'); slash; slash = strrchr(p, '/')) {
                *slash = '\0';
                seen_put(s, p, SEEN_ANCESTOR);
        }
        free(p);
}

static void seen_release(struct seen_set *s)
{
        for (size_t i = 0; i < s->cap; i++)
                free(s->slots[i].path);
        free(s->slots);
        memset(s, 0, sizeof(*s));
}

/*
 * Normalises a tar member name into `out`: "./a//b/./c/" becomes "a/b/c".
 * An absolute name or a `..` component is refused (SW_EPERM); the root
 * itself ("./") gives "".
 */
static int path_clean(char *out, size_t cap, const char *name, const char *what, struct sw_err *err)
{
        size_t o = 0;
        const char *p = name;

        if (name[0] == '/')
                return sw_err_set(err, SW_EPERM, "%s '%s' is an absolute path", what, name);
        while (*p) {
                const char *end = strchr(p, '/');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return sw_err_set(err, SW_EPERM, "%s '%s' contains a '..' component", what,
                                          name);
                if (len > 0 && !(len == 1 && p[0] == '.')) {
                        if (o + len + 2 > cap)
                                return sw_err_set(err, SW_EINVAL, "%s '%.64s...' is too long", what,
                                                  name);
                        if (o > 0)
                                out[o++] = '/';
                        memcpy(out + o, p, len);
                        o += len;
                }
                p += len;
                if (*p == '/')
                        p++;
        }
        out[o] = '\0';
        return 0;
}

/*
 * Opens directory `rel` (a clean path, "" for the root) under `rootfd` one
 * component at a time, never following a symlink. Returns 0 and *fd_out,
 * SW_ENOTFOUND without touching `err` when a component is missing or is not
 * a directory, SW_EPERM when a component is a symlink.
 */
static int open_beneath(int *fd_out, int rootfd, const char *rel, const char *entry,
                        struct sw_err *err)
{
        char *copy = sw_xstrdup(rel), *save = NULL;
        int fd = dup(rootfd), rc = 0;

        if (fd < 0) {
                free(copy);
                return sw_err_errno(err, SW_EIO, errno, "dup");
        }
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0) {
                        int e = errno;
                        struct stat sb;
                        if (e == ELOOP ||
                            (e == ENOTDIR && fstatat(fd, c, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                             S_ISLNK(sb.st_mode)))
                                rc = sw_err_set(err, SW_EPERM,
                                                "entry '%s' would be written through the "
                                                "symlink '%s'",
                                                entry, c);
                        else if (e == ENOENT || e == ENOTDIR)
                                rc = SW_ENOTFOUND;
                        else
                                rc = sw_err_errno(err, SW_EIO, e, "open '%s' for entry '%s'", c,
                                                  entry);
                        close(fd);
                        fd = -1;
                        break;
                }
                close(fd);
                fd = next;
        }
        free(copy);
        if (rc == 0)
                *fd_out = fd;
        return rc;
}

/* Splits a clean path into its parent ("" for top level) and base name; both malloc'ed. */
static void path_split(char **dir, char **base, const char *rel)
{
        const char *slash = strrchr(rel, '/');

        if (slash) {
                *dir = sw_xstrndup(rel, (size_t)(slash - rel));
                *base = sw_xstrdup(slash + 1);
        } else {
                *dir = sw_xstrdup("");
                *base = sw_xstrdup(rel);
        }
}

/* rm -rf of `name` in `dirfd`, never following symlinks; an absent name is success. */
static int rm_rf_at(int parent, const char *name, const char *what, struct sw_err *err)
{
        struct stat sb;
        DIR *d = NULL;
        struct dirent *de;
        int fd, rc = 0;

        if (fstatat(parent, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
                return errno == ENOENT ? 0 : sw_err_errno(err, SW_EIO, errno, "stat '%s'", what);
        if (!S_ISDIR(sb.st_mode)) {
                if (unlinkat(parent, name, 0) != 0 && errno != ENOENT)
                        return sw_err_errno(err, SW_EIO, errno, "remove '%s'", what);
                return 0;
        }
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || !(d = fdopendir(fd))) {
                rc = sw_err_errno(err, SW_EIO, errno, "open '%s'", what);
                if (fd >= 0)
                        close(fd);
                return rc;
        }
        while (rc == 0 && (de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                rc = rm_rf_at(dirfd(d), de->d_name, what, err);
        }
        closedir(d);
        if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
                rc = sw_err_errno(err, SW_EIO, errno, "remove directory '%s'", what);
        return rc;
}

/*
 * Removes everything under the directory `fd` (path `rel`) that this layer
 * did not write: the lower-layer children hidden by an opaque marker or a
 * whiteout, while the layer's own entries stay, whatever their tar order.
 */
static int prune_lower(struct apply_state *st, int fd, const char *rel)
{
        DIR *d = NULL;
        struct dirent *de;
        char **names = NULL;
        size_t n = 0, cap = 0;
        int fd2, rc = 0;

        fd2 = dup(fd);
        if (fd2 < 0 || !(d = fdopendir(fd2))) {
                rc = sw_err_errno(st->err, SW_EIO, errno, "read directory '%s'", rel);
                if (fd2 >= 0)
                        close(fd2);
                return rc;
        }
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        names = sw_xrealloc(names, cap * sizeof(*names));
                }
                names[n++] = sw_xstrdup(de->d_name);
        }
        closedir(d);
        for (size_t i = 0; i < n && rc == 0; i++) {
                char *child = rel[0] ? sw_xasprintf("%s/%s", rel, names[i]) : sw_xstrdup(names[i]);
                int kind = seen_kind(&st->seen, child);
                struct stat sb;
                if (kind == SEEN_NONE) {
                        rc = rm_rf_at(fd, names[i], child, st->err);
                } else if (fstatat(fd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                           S_ISDIR(sb.st_mode)) {
                        int sub = openat(fd, names[i],
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                rc = sw_err_errno(st->err, SW_EIO, errno, "open '%s'", child);
                        } else {
                                rc = prune_lower(st, sub, child);
                                close(sub);
                        }
                }
                free(child);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return rc;
}

/* Creates directory `rel` and its parents under the root, never through a symlink. */
static int mkdir_beneath(struct apply_state *st, const char *rel, const char *entry)
{
        char *copy = sw_xstrdup(rel), *save = NULL;
        int fd = dup(st->rootfd), rc = 0;

        if (fd < 0) {
                free(copy);
                return sw_err_errno(st->err, SW_EIO, errno, "dup");
        }
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (mkdirat(fd, c, 0755) != 0 && errno != EEXIST) {
                        rc = sw_err_errno(st->err, SW_EIO, errno, "create '%s' for entry '%s'", c,
                                          entry);
                        break;
                }
                int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0) {
                        rc = errno == ELOOP || errno == ENOTDIR
                                     ? sw_err_set(st->err, SW_EPERM,
                                                  "entry '%s' would be written through '%s', "
                                                  "which is not a directory",
                                                  entry, c)
                                     : sw_err_errno(st->err, SW_EIO, errno, "open '%s'", c);
                        break;
                }
                close(fd);
                fd = next;
        }
        close(fd);
        free(copy);
        return rc;
}

/* `.wh..wh..opq` in directory `dir`. */
static int apply_opaque(struct apply_state *st, const char *dir, const char *entry)
{
        const char *xname =
                st->o->user_xattr_opaque ? "user.overlay.opaque" : "trusted.overlay.opaque";
        int fd = -1, rc;

        if (st->o->whiteouts == STEP_LAYER_WHITEOUT_OVERLAY) {
                rc = mkdir_beneath(st, dir, entry);
                if (rc)
                        return rc;
        }
        rc = open_beneath(&fd, st->rootfd, dir, entry, st->err);
        if (rc == SW_ENOTFOUND)
                return 0; /* nothing below to hide */
        if (rc)
                return rc;
        if (st->o->whiteouts == STEP_LAYER_WHITEOUT_OVERLAY) {
                if (fsetxattr(fd, xname, "y", 1, 0) != 0)
                        rc = sw_err_errno(st->err, sw_err_from_errno(errno), errno,
                                          "set %s on '%s'", xname, dir[0] ? dir : ".");
        } else {
                rc = prune_lower(st, fd, dir);
        }
        close(fd);
        return rc;
}

/* `.wh.NAME` in directory `dir`. */
static int apply_whiteout(struct apply_state *st, const char *dir, const char *name,
                          const char *entry)
{
        char *target = dir[0] ? sw_xasprintf("%s/%s", dir, name) : sw_xstrdup(name);
        int kind = seen_kind(&st->seen, target);
        int fd = -1, rc;
        struct stat sb;

        if (st->o->whiteouts == STEP_LAYER_WHITEOUT_OVERLAY) {
                /* The layer's own entry of that name wins over its whiteout. */
                if (kind != SEEN_NONE) {
                        rc = 0;
                        goto out;
                }
                rc = mkdir_beneath(st, dir, entry);
                if (rc == 0)
                        rc = open_beneath(&fd, st->rootfd, dir, entry, st->err);
                if (rc)
                        goto out;
                if (mknodat(fd, name, S_IFCHR | 0, makedev(0, 0)) != 0 && errno != EEXIST)
                        rc = sw_err_errno(st->err, sw_err_from_errno(errno), errno,
                                          "create whiteout device '%s'", target);
                goto out;
        }
        rc = open_beneath(&fd, st->rootfd, dir, entry, st->err);
        if (rc == SW_ENOTFOUND) {
                rc = 0; /* nothing below to delete */
                goto out;
        }
        if (rc)
                goto out;
        if (kind == SEEN_NONE) {
                rc = rm_rf_at(fd, name, target, st->err);
        } else if (fstatat(fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
                int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        rc = sw_err_errno(st->err, SW_EIO, errno, "open '%s'", target);
                        goto out;
                }
                rc = prune_lower(st, sub, target);
                close(sub);
        }
out:
        if (fd >= 0)
                close(fd);
        free(target);
        return rc;
}

/*
 * Makes room for entry `rel` of type `type`: a directory over a directory
 * stays (attributes only); anything else already there is removed first.
 */
static int make_room(struct apply_state *st, const char *rel, mode_t type)
{
        char *dir = NULL, *base = NULL;
        int fd = -1, rc;
        struct stat sb;

        path_split(&dir, &base, rel);
        rc = open_beneath(&fd, st->rootfd, dir, rel, st->err);
        if (rc == SW_ENOTFOUND) {
                rc = 0; /* libarchive creates the parents, checking each for symlinks */
                goto out;
        }
        if (rc)
                goto out;
        if (fstatat(fd, base, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno != ENOENT)
                        rc = sw_err_errno(st->err, SW_EIO, errno, "stat '%s'", rel);
                goto out;
        }
        if (S_ISDIR(sb.st_mode) && type == AE_IFDIR)
                goto out;
        rc = rm_rf_at(fd, base, rel, st->err);
out:
        if (fd >= 0)
                close(fd);
        free(dir);
        free(base);
        return rc;
}

/* A hard link must point at an existing non-directory inside the root, reached without symlinks. */
static int check_hardlink(struct apply_state *st, const char *rel, const char *target)
{
        char *dir = NULL, *base = NULL;
        int fd = -1, rc;
        struct stat sb;

        if (!target[0] || strcmp(target, rel) == 0)
                return sw_err_set(st->err, SW_EPERM, "hard link '%s' has an invalid target", rel);
        path_split(&dir, &base, target);
        rc = open_beneath(&fd, st->rootfd, dir, rel, st->err);
        if (rc == SW_ENOTFOUND)
                rc = sw_err_set(st->err, SW_ENOTFOUND, "hard link '%s': target '%s' not found", rel,
                                target);
        if (rc)
                goto out;
        if (fstatat(fd, base, &sb, AT_SYMLINK_NOFOLLOW) != 0)
                rc = sw_err_set(st->err, SW_ENOTFOUND, "hard link '%s': target '%s' not found", rel,
                                target);
        else if (S_ISDIR(sb.st_mode))
                rc = sw_err_set(st->err, SW_EPERM, "hard link '%s': target '%s' is a directory",
                                rel, target);
out:
        if (fd >= 0)
                close(fd);
        free(dir);
        free(base);
        return rc;
}

/* Keeps only the xattrs that may be restored (or none when not asked for). */
static void filter_xattrs(struct apply_state *st, struct archive_entry *e)
{
        const char *name;
        const void *value;
        size_t size;
        struct keep {
                char *name;
                void *value;
                size_t size;
        } *keep = NULL;
        size_t n = 0;
        int count = archive_entry_xattr_reset(e);

        if (count == 0)
                return;
        if (st->o->xattrs) {
                keep = sw_xcalloc((size_t)count, sizeof(*keep));
                while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                        if (step__layer_xattr_private(name))
                                continue;
                        keep[n].name = sw_xstrdup(name);
                        keep[n].value = sw_xmalloc(size ? size : 1);
                        memcpy(keep[n].value, value, size);
                        keep[n].size = size;
                        n++;
                }
        }
        archive_entry_xattr_clear(e);
        for (size_t i = 0; i < n; i++) {
                archive_entry_xattr_add_entry(e, keep[i].name, keep[i].value, keep[i].size);
                free(keep[i].name);
                free(keep[i].value);
        }
        free(keep);
}

static int copy_data(struct apply_state *st, struct archive *in, const char *rel)
{
        const void *buf;
        size_t size;
        la_int64_t offset;

        for (;;) {
                int r = archive_read_data_block(in, &buf, &size, &offset);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r < ARCHIVE_WARN)
                        return SW_ECORRUPT; /* the caller reports the reader's message */
                if (archive_write_data_block(st->disk, buf, size, offset) < ARCHIVE_WARN)
                        return step__archive_err(st->disk, SW_EIO, st->err, rel);
        }
}

/* One tar entry: a whiteout marker, or a file system object to create. */
static int apply_entry(struct apply_state *st, struct archive *in, struct archive_entry *e)
{
        char rel[APPLY_PATH_MAX + 1], link[APPLY_PATH_MAX + 1];
        const char *name = archive_entry_pathname(e);
        const char *hardlink = archive_entry_hardlink(e);
        char *dir = NULL, *base = NULL;
        mode_t type = archive_entry_filetype(e);
        int rc;

        if (!name)
                return sw_err_set(st->err, SW_ECORRUPT, "tar entry without a name");
        rc = path_clean(rel, sizeof(rel), name, "entry", st->err);
        if (rc)
                return rc;
        if (!rel[0])
                return 0; /* the root itself: its attributes stay the caller's */
        path_split(&dir, &base, rel);
        if (strncmp(rel, STEP_LAYER_WH_META, 8) == 0 || strstr(rel, "/" STEP_LAYER_WH_META)) {
                if (strcmp(base, STEP_LAYER_WH_OPAQUE) != 0 || strstr(dir, STEP_LAYER_WH_META))
                        goto out; /* aufs bookkeeping (".wh..wh.plnk/..."): ignored */
        }
        if (strncmp(dir, STEP_LAYER_WH_PREFIX, 4) == 0 || strstr(dir, "/" STEP_LAYER_WH_PREFIX)) {
                rc = sw_err_set(st->err, SW_EPERM, "entry '%s' lies inside a whiteout name", name);
                goto out;
        }
        if (strncmp(base, STEP_LAYER_WH_PREFIX, 4) == 0) {
                const char *victim = base + 4;
                if (type != AE_IFREG || hardlink) {
                        rc = sw_err_set(st->err, SW_EPERM, "whiteout '%s' is not a regular file",
                                        name);
                } else if (strcmp(base, STEP_LAYER_WH_OPAQUE) == 0) {
                        rc = apply_opaque(st, dir, name);
                } else if (!victim[0] || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0) {
                        rc = sw_err_set(st->err, SW_EPERM, "invalid whiteout '%s'", name);
                } else {
                        rc = apply_whiteout(st, dir, victim, name);
                }
                goto out;
        }

        if (hardlink) {
                rc = path_clean(link, sizeof(link), hardlink, "hard link target", st->err);
                if (rc == 0)
                        rc = check_hardlink(st, rel, link);
                if (rc)
                        goto out;
                archive_entry_copy_hardlink(e, link);
                /*
                 * pax lets a hard link carry data, which would be written
                 * through the link; the target already has its content, and
                 * a link to a symlink must never be opened for writing.
                 */
                archive_entry_set_size(e, 0);
        }
        if ((type == AE_IFCHR || type == AE_IFBLK) && !st->is_root) {
                st->skipped++; /* only root may create device nodes */
                goto out;
        }
        rc = make_room(st, rel, hardlink ? AE_IFREG : type);
        if (rc)
                goto out;
        archive_entry_copy_pathname(e, rel);
        filter_xattrs(st, e);
        if (archive_write_header(st->disk, e) < ARCHIVE_WARN) {
                /* libarchive's own refusals carry no errno: they are about safety. */
                int e_no = archive_errno(st->disk);
                rc = step__archive_err(st->disk, e_no > 0 ? sw_err_from_errno(e_no) : SW_EPERM,
                                       st->err, name);
                goto out;
        }
        if (archive_entry_size(e) > 0) {
                rc = copy_data(st, in, rel);
                if (rc)
                        goto out;
        }
        if (archive_write_finish_entry(st->disk) < ARCHIVE_WARN) {
                rc = step__archive_err(st->disk, SW_EIO, st->err, name);
                goto out;
        }
        seen_entry(&st->seen, rel);
out:
        free(dir);
        free(base);
        return rc;
}

static la_ssize_t src_read_cb(struct archive *a, void *client, const void **buf)
{
        struct apply_src *s = client;
        ssize_t n;

        (void)a;
        do {
                n = read(s->fd, s->buf, APPLY_READ_BUF);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (!s->rc)
                        s->rc = sw_err_errno(s->err, SW_EIO, errno, "read layer blob");
                return -1;
        }
        sw_sha256_update(s->hash, s->buf, (size_t)n);
        s->size += n;
        *buf = s->buf;
        return n;
}

/* Producer: decompress, hash, hand over; then drain the blob. */
static void *pipe_producer(void *arg)
{
        struct apply_pipe *p = arg;
        const void *ignored;
        la_ssize_t n;
        int rc = 0;

        for (;;) {
                unsigned char *buf;
                pthread_mutex_lock(&p->mu);
                while (p->filled - p->released >= PIPE_BUFS && !p->stop)
                        pthread_cond_wait(&p->cv, &p->mu);
                bool stop = p->stop;
                buf = p->buf[p->filled % PIPE_BUFS];
                pthread_mutex_unlock(&p->mu);
                if (stop)
                        return NULL;
                n = archive_read_data(p->outer, buf, APPLY_READ_BUF);
                if (n < 0) {
                        rc = p->src->rc ? p->src->rc
                                        : step__archive_err(p->outer, SW_ECORRUPT, &p->err,
                                                            "decompress layer");
                        break;
                }
                if (n == 0) {
                        /* Whatever follows the compressed stream is part of the blob too. */
                        while ((n = src_read_cb(NULL, p->src, &ignored)) > 0)
                                ;
                        rc = n < 0 ? p->src->rc : 0;
                        break;
                }
                sw_sha256_update(p->hash, buf, (size_t)n);
                p->size += n;
                if (p->size > p->max_bytes) {
                        rc = sw_err_set(&p->err, SW_ETOOBIG,
                                        "layer is larger than %lld bytes uncompressed",
                                        (long long)p->max_bytes);
                        break;
                }
                pthread_mutex_lock(&p->mu);
                p->len[p->filled % PIPE_BUFS] = (size_t)n;
                p->filled++;
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
        }
        pthread_mutex_lock(&p->mu);
        p->rc = rc;
        p->eof = rc == 0;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return NULL;
}

/* Consumer: the inner (tar) reader's callback. A buffer stays valid until the next call. */
static la_ssize_t pipe_read_cb(struct archive *a, void *client, const void **buf)
{
        struct apply_pipe *p = client;
        la_ssize_t n = -1;

        (void)a;
        pthread_mutex_lock(&p->mu);
        if (p->held) {
                p->released++;
                p->held = false;
                pthread_cond_broadcast(&p->cv);
        }
        while (p->filled == p->released && !p->eof && !p->rc)
                pthread_cond_wait(&p->cv, &p->mu);
        if (p->filled > p->released) {
                size_t i = p->released % PIPE_BUFS;
                *buf = p->buf[i];
                n = (la_ssize_t)p->len[i];
                p->held = true;
        } else if (p->eof) {
                n = 0;
        }
        pthread_mutex_unlock(&p->mu);
        return n;
}

/* The producer's error, moved to `err`, or libarchive's message for `a`. */
static int pipe_err(struct apply_pipe *p, struct archive *a, struct sw_err *err, const char *what)
{
        int rc;

        pthread_mutex_lock(&p->mu);
        rc = p->rc;
        pthread_mutex_unlock(&p->mu);
        if (rc)
                return sw_err_set(err, rc, "%s", p->err.msg);
        return step__archive_err(a, SW_ECORRUPT, err, what);
}

/* The whole extraction; runs with the current directory at the root. */
static int apply_run(struct apply_job *job)
{
        const struct step_layer_unpack_options *o = job->o;
        struct sw_err *err = &job->err;
        struct apply_state st;
        struct apply_src src;
        struct apply_pipe pipe;
        pthread_t producer;
        bool producing = false;
        struct archive *outer = NULL, *in = NULL;
        struct archive_entry *oe, *e;
        const void *drained;
        int64_t max_entries = o->max_entries > 0 ? o->max_entries : APPLY_DEFAULT_MAX_ENTRIES;
        int flags, r, rc = 0;

        memset(&st, 0, sizeof(st));
        memset(&src, 0, sizeof(src));
        memset(&pipe, 0, sizeof(pipe));
        st.o = o;
        st.err = err;
        st.rootfd = -1;
        st.is_root = geteuid() == 0;
        src.fd = job->blob_fd;
        src.err = &pipe.err; /* read on the producer thread once it runs */
        src.buf = sw_xmalloc(APPLY_READ_BUF);
        src.hash = sw_sha256_new();
        pthread_mutex_init(&pipe.mu, NULL);
        pthread_cond_init(&pipe.cv, NULL);
        for (int i = 0; i < PIPE_BUFS; i++)
                pipe.buf[i] = sw_xmalloc(APPLY_READ_BUF);
        pipe.src = &src;
        pipe.hash = sw_sha256_new();
        pipe.max_bytes = o->max_bytes > 0 ? o->max_bytes : APPLY_DEFAULT_MAX_BYTES;

        st.rootfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (st.rootfd < 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "open '%s'", job->root);
                goto out;
        }

        outer = archive_read_new();
        archive_read_support_filter_gzip(outer);
        archive_read_support_filter_zstd(outer);
        archive_read_support_format_raw(outer);
        if (archive_read_open(outer, &src, NULL, src_read_cb, NULL) != ARCHIVE_OK ||
            archive_read_next_header(outer, &oe) != ARCHIVE_OK) {
                /* The producer does not run yet: src is this thread's. */
                rc = src.rc ? sw_err_set(err, src.rc, "%s", pipe.err.msg)
                            : step__archive_err(outer, SW_ECORRUPT, err, "read layer blob");
                goto out;
        }
        pipe.outer = outer;
        r = pthread_create(&producer, NULL, pipe_producer, &pipe);
        if (r != 0) {
                rc = sw_err_errno(err, SW_EIO, r, "start decompression thread");
                goto out;
        }
        producing = true;

        in = archive_read_new();
        archive_read_support_format_tar(in);
        if (archive_read_open(in, &pipe, NULL, pipe_read_cb, NULL) != ARCHIVE_OK) {
                rc = pipe_err(&pipe, in, err, "layer is not a tar");
                goto out;
        }

        flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK |
                ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
        if (st.is_root)
                flags |= ARCHIVE_EXTRACT_OWNER;
        if (o->xattrs)
                flags |= ARCHIVE_EXTRACT_XATTR;
        st.disk = archive_write_disk_new();
        archive_write_disk_set_options(st.disk, flags);

        for (;;) {
                r = archive_read_next_header(in, &e);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        rc = pipe_err(&pipe, in, err, "read layer tar");
                        goto out;
                }
                if (o->cancelled && o->cancelled(o->cancel_arg)) {
                        rc = sw_err_set(err, SW_ECANCELED, "extraction was cancelled");
                        goto out;
                }
                if (++st.entries > max_entries) {
                        rc = sw_err_set(err, SW_ETOOBIG, "layer has more than %lld entries",
                                        (long long)max_entries);
                        goto out;
                }
                rc = apply_entry(&st, in, e);
                if (rc == SW_ECORRUPT && !err->code)
                        rc = pipe_err(&pipe, in, err, "read layer tar");
                if (rc)
                        goto out;
        }
        /* Directory permissions and times are set last, by libarchive. */
        if (archive_write_close(st.disk) != ARCHIVE_OK) {
                rc = step__archive_err(st.disk, SW_EIO, err, "finish extraction");
                goto out;
        }
        /* The rest of the tar stream (padding) and of the blob count in the digests. */
        while ((r = (int)pipe_read_cb(NULL, &pipe, &drained)) > 0)
                ;
        pthread_join(producer, NULL);
        producing = false;
        if (r < 0) {
                rc = pipe_err(&pipe, in, err, "read layer tar");
                goto out;
        }
        sw_sha256_final(src.hash, job->info.digest);
        sw_sha256_final(pipe.hash, job->info.diff_id);
        job->info.size = src.size;
        job->info.tar_size = pipe.size;
        job->info.entries = st.entries;
        job->info.skipped = st.skipped;
        switch (archive_filter_code(outer, 0)) {
        case ARCHIVE_FILTER_GZIP:
                job->info.media_type = STEP_LAYER_MEDIA_TAR_GZIP;
                break;
        case ARCHIVE_FILTER_ZSTD:
                job->info.media_type = STEP_LAYER_MEDIA_TAR_ZSTD;
                break;
        default:
                job->info.media_type = STEP_LAYER_MEDIA_TAR;
                break;
        }
        if (o->expected_digest && strcmp(o->expected_digest, job->info.digest) != 0) {
                rc = sw_err_set(err, SW_ECORRUPT, "layer digest mismatch: expected %s, got %s",
                                o->expected_digest, job->info.digest);
                goto out;
        }
        if (o->expected_diff_id && strcmp(o->expected_diff_id, job->info.diff_id) != 0) {
                rc = sw_err_set(err, SW_ECORRUPT, "layer diff_id mismatch: expected %s, got %s",
                                o->expected_diff_id, job->info.diff_id);
                goto out;
        }
out:
        if (producing) {
                pthread_mutex_lock(&pipe.mu);
                pipe.stop = true;
                pthread_cond_broadcast(&pipe.cv);
                pthread_mutex_unlock(&pipe.mu);
                pthread_join(producer, NULL);
        }
        if (st.disk)
                archive_write_free(st.disk);
        if (in)
                archive_read_free(in);
        if (outer)
                archive_read_free(outer);
        if (st.rootfd >= 0)
                close(st.rootfd);
        seen_release(&st.seen);
        sw_sha256_free(src.hash);
        sw_sha256_free(pipe.hash);
        free(src.buf);
        for (int i = 0; i < PIPE_BUFS; i++)
                free(pipe.buf[i]);
        pthread_mutex_destroy(&pipe.mu);
        pthread_cond_destroy(&pipe.cv);
        return rc;
}

static void *apply_thread(void *arg)
{
        struct apply_job *job = arg;

        /* A private cwd and umask for this thread only; the process's stay as they are. */
        if (unshare(CLONE_FS) != 0) {
                job->rc = sw_err_errno(&job->err, SW_EIO, errno, "unshare(CLONE_FS)");
                return NULL;
        }
        umask(022);
        if (chdir(job->root) != 0) {
                job->rc = sw_err_errno(&job->err, sw_err_from_errno(errno), errno, "enter '%s'",
                                       job->root);
                return NULL;
        }
        job->rc = apply_run(job);
        return NULL;
}

/* Runs the extraction of `fd` into `root` on its own thread and waits for it. */
static int apply_on_thread(struct step_layer_info *out, int fd, const char *layer_path,
                           const char *root, const struct step_layer_unpack_options *o,
                           struct sw_err *err)
{
        struct apply_job *job = sw_xcalloc(1, sizeof(*job));
        pthread_t tid;
        int rc;

        job->blob_fd = fd;
        job->root = root;
        job->o = o;
        rc = pthread_create(&tid, NULL, apply_thread, job);
        if (rc != 0) {
                rc = sw_err_errno(err, SW_EIO, rc, "start extraction thread");
                goto out;
        }
        pthread_join(tid, NULL);
        rc = job->rc;
        if (rc) {
                sw_err_set(err, rc, "%s", job->err.msg);
                sw_err_wrap(err, "layer '%s'", layer_path);
                goto out;
        }
        if (out)
                *out = job->info;
out:
        free(job);
        return rc;
}

static int check_options(const struct step_layer_unpack_options *o, struct sw_err *err)
{
        if (o->expected_digest && !sw_digest_valid(o->expected_digest))
                return sw_err_set(err, SW_EINVAL, "expected digest '%s' is not sha256:<hex>",
                                  o->expected_digest);
        if (o->expected_diff_id && !sw_digest_valid(o->expected_diff_id))
                return sw_err_set(err, SW_EINVAL, "expected diff_id '%s' is not sha256:<hex>",
                                  o->expected_diff_id);
        return 0;
}

/* Opens the blob; a size that differs from the descriptor's fails before any work. */
static int open_blob(int *fd_out, const char *layer_path, const struct step_layer_unpack_options *o,
                     struct sw_err *err)
{
        int fd = open(layer_path, O_RDONLY | O_CLOEXEC);
        struct stat sb;

        if (fd < 0)
                return sw_err_errno(err, sw_err_from_errno(errno), errno, "open layer '%s'",
                                    layer_path);
        if (o->expected_size >= 0 &&
            (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size != o->expected_size)) {
                close(fd);
                return sw_err_set(err, SW_ECORRUPT, "layer '%s' is not %lld bytes long", layer_path,
                                  (long long)o->expected_size);
        }
        *fd_out = fd;
        return 0;
}

/* True when `path` is absent or an empty directory. */
static int target_free(const char *path, struct sw_err *err)
{
        struct stat sb;
        DIR *d;
        struct dirent *de;
        bool empty = true;

        if (lstat(path, &sb) != 0) {
                if (errno == ENOENT)
                        return 0;
                return sw_err_errno(err, SW_EIO, errno, "stat '%s'", path);
        }
        if (!S_ISDIR(sb.st_mode))
                return sw_err_set(err, SW_EEXIST, "'%s' exists and is not a directory", path);
        d = opendir(path);
        if (!d)
                return sw_err_errno(err, SW_EIO, errno, "open '%s'", path);
        while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        empty = false;
        closedir(d);
        return empty ? 0 : sw_err_set(err, SW_EEXIST, "'%s' is not empty", path);
}

int step_layer_unpack(struct step_layer_info *out, const char *layer_path, const char *target_dir,
                      const struct step_layer_unpack_options *opts, struct sw_err *err)
{
        static const struct step_layer_unpack_options defaults = STEP_LAYER_UNPACK_OPTIONS_INIT;
        const struct step_layer_unpack_options *o = opts ? opts : &defaults;
        char *parent = NULL, *prefix = NULL, *tmp = NULL, *target = NULL;
        const char *slash;
        struct sw_err ignore = SW_ERR_INIT;
        int fd = -1, rc;

        rc = check_options(o, err);
        if (rc)
                return rc;
        /* "dir/" and "dir" are the same target; the temporary goes beside it. */
        target = sw_xstrdup(target_dir);
        for (size_t len = strlen(target); len > 1 && target[len - 1] == '/'; len--)
                target[len - 1] = '\0';
        target_dir = target;
        rc = target_free(target_dir, err);
        if (rc == 0)
                rc = open_blob(&fd, layer_path, o, err);
        if (rc)
                goto out;
        slash = strrchr(target_dir, '/');
        if (slash) {
                parent = slash == target_dir
                                 ? sw_xstrdup("/")
                                 : sw_xstrndup(target_dir, (size_t)(slash - target_dir));
                prefix = sw_xasprintf(".%s.unpack-", slash + 1);
        } else {
                parent = sw_xstrdup(".");
                prefix = sw_xasprintf(".%s.unpack-", target_dir);
        }
        rc = sw_mkdtemp(&tmp, parent, prefix, err);
        if (rc)
                goto out;
        if (chmod(tmp, 0755) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "chmod '%s'", tmp);
                goto out;
        }
        rc = apply_on_thread(out, fd, layer_path, tmp, o, err);
        if (rc)
                goto out;
        if (rename(tmp, target_dir) != 0) {
                if (errno == ENOTEMPTY || errno == EEXIST)
                        rc = sw_err_set(err, SW_EEXIST, "'%s' was filled by someone else",
                                        target_dir);
                else
                        rc = sw_err_errno(err, SW_EIO, errno, "rename '%s' to '%s'", tmp,
                                          target_dir);
                goto out;
        }
        free(tmp);
        tmp = NULL;
out:
        if (tmp) {
                sw_rm_rf(tmp, &ignore);
                free(tmp);
        }
        if (fd >= 0)
                close(fd);
        free(parent);
        free(prefix);
        free(target);
        return rc;
}

int step_layer_apply(struct step_layer_info *out, const char *layer_path, const char *root_dir,
                     const struct step_layer_unpack_options *opts, struct sw_err *err)
{
        static const struct step_layer_unpack_options defaults = STEP_LAYER_UNPACK_OPTIONS_INIT;
        const struct step_layer_unpack_options *o = opts ? opts : &defaults;
        char digest[SW_DIGEST_STR_LEN];
        struct sw_sha256 *h = NULL;
        unsigned char *buf = NULL;
        struct stat sb;
        int fd = -1, rc;

        rc = check_options(o, err);
        if (rc)
                return rc;
        if (stat(root_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
                return sw_err_set(err, SW_ENOTFOUND, "'%s' is not a directory", root_dir);
        rc = open_blob(&fd, layer_path, o, err);
        if (rc)
                return rc;
        if (o->expected_digest) {
                /* Check the blob before touching the tree: a corrupt one changes nothing. */
                h = sw_sha256_new();
                buf = sw_xmalloc(APPLY_READ_BUF);
                for (;;) {
                        ssize_t n = read(fd, buf, APPLY_READ_BUF);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                rc = sw_err_errno(err, SW_EIO, errno, "read layer '%s'",
                                                  layer_path);
                                goto out;
                        }
                        if (n == 0)
                                break;
                        sw_sha256_update(h, buf, (size_t)n);
                }
                sw_sha256_final(h, digest);
                if (strcmp(digest, o->expected_digest) != 0) {
                        rc = sw_err_set(err, SW_ECORRUPT,
                                        "layer '%s': digest mismatch: expected %s, got %s",
                                        layer_path, o->expected_digest, digest);
                        goto out;
                }
                if (lseek(fd, 0, SEEK_SET) != 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "rewind layer '%s'", layer_path);
                        goto out;
                }
        }
        rc = apply_on_thread(out, fd, layer_path, root_dir, o, err);
out:
        sw_sha256_free(h);
        free(buf);
        if (fd >= 0)
                close(fd);
        return rc;
}
