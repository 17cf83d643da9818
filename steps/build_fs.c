/*
 * build_fs.c - the builder's file system work: the layer store, overlay
 * mounts, users of an image, and COPY/ADD.
 *
 * Sources are opened with openat2(2) relative to the context directory and
 * RESOLVE_BENEATH, so that no path, however many symlinks it goes through,
 * reaches outside the context; another stage's files are opened with
 * RESOLVE_IN_ROOT, so its absolute symlinks mean what they mean in the image.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "steps/build_int.h"
#include "steps/dockerignore.h"
#include "steps/layer.h"
#include "steps/oci.h"
#include "common/banned.h"

#define SHORT_ID 16

/* ---- the store ---- */

int bld_store_open(struct bld_store *s, const char *root, struct sw_err *err)
{
        static const char *const dirs[] = {"layers", "l", "cache", "mounts", "work"};
        char *oci = NULL;
        int rc;

        memset(s, 0, sizeof(*s));
        s->root = sw_xstrdup(root);
        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
                char *d = sw_xasprintf("%s/%s", root, dirs[i]);
                rc = sw_mkdir_p(d, 0700, err);
                free(d);
                if (rc)
                        goto fail;
        }
        oci = sw_xasprintf("%s/oci", root);
        rc = step_oci_layout_open(&s->oci, oci, true, err);
        free(oci);
        if (rc)
                goto fail;
        return 0;
fail:
        bld_store_release(s);
        return rc;
}

void bld_store_release(struct bld_store *s)
{
        step_oci_layout_free(s->oci);
        free(s->root);
        memset(s, 0, sizeof(*s));
}

/* The short name of a layer dir (overlay's mount options are limited to a page). */
static char *short_link(const struct bld_store *s, const char *hex)
{
        return sw_xasprintf("%s/l/%.*s", s->root, SHORT_ID, hex);
}

static int link_layer(char **out, struct bld_store *s, const char *hex, struct sw_err *err)
{
        char *link = short_link(s, hex);
        char *target = sw_xasprintf("../layers/%s", hex);
        int rc = 0;

        if (symlink(target, link) != 0 && errno != EEXIST)
                rc = sw_err_errno(err, SW_EIO, errno, "link layer '%s'", link);
        free(target);
        if (rc) {
                free(link);
                return rc;
        }
        *out = link;
        return 0;
}

int bld_layer_dir(char **out, struct bld_store *s, const struct step_oci_desc *blob,
                  struct sw_err *err)
{
        const char *hex = blob->digest + 7;
        char *dir = sw_xasprintf("%s/layers/%s", s->root, hex);
        char *path = NULL;
        struct stat st;
        int rc = 0;

        if (stat(dir, &st) != 0) {
                struct step_layer_unpack_options o = STEP_LAYER_UNPACK_OPTIONS_INIT;
                o.expected_digest = blob->digest;
                o.whiteouts = STEP_LAYER_WHITEOUT_OVERLAY;
                path = step_oci_blob_path(s->oci, blob->digest);
                rc = step_layer_unpack(NULL, path, dir, &o, err);
                if (rc == SW_EEXIST) {
                        sw_err_clear(err);
                        rc = 0;
                }
        }
        if (rc == 0)
                rc = link_layer(out, s, hex, err);
        free(path);
        free(dir);
        return rc;
}

int bld_layer_adopt(char **out, struct bld_store *s, const char *digest, const char *dir,
                    struct sw_err *err)
{
        const char *hex = digest + 7;
        char *target = sw_xasprintf("%s/layers/%s", s->root, hex);
        struct sw_err ignored = SW_ERR_INIT;
        int rc = 0;

        if (rename(dir, target) != 0) {
                if (errno == EEXIST || errno == ENOTEMPTY)
                        sw_rm_rf(dir, &ignored); /* the same layer is there already */
                else
                        rc = sw_err_errno(err, SW_EIO, errno, "store layer '%s'", target);
        }
        free(target);
        return rc ? rc : link_layer(out, s, hex, err);
}

int bld_cache_get(json_t **out, struct bld_store *s, const char *key)
{
        char *path = sw_xasprintf("%s/cache/%s.json", s->root, key + 7);
        char *text = NULL;
        size_t len;
        struct sw_err ignored = SW_ERR_INIT;
        int rc = sw_read_file(&text, &len, path, 1 << 20, &ignored);

        if (rc == 0)
                rc = sw_json_parse(out, text, len, 0, &ignored);
        free(text);
        free(path);
        return rc;
}

int bld_cache_put(struct bld_store *s, const char *key, const json_t *rec, struct sw_err *err)
{
        char *path = sw_xasprintf("%s/cache/%s.json", s->root, key + 7);
        char *text = sw_json_dump(rec);
        int rc = sw_write_file_atomic(path, text, strlen(text), 0600, err);

        free(text);
        free(path);
        return rc;
}

/* ---- overlay ---- */

int bld_overlay_mount(const char *merged, const char *const *lowers, size_t n, const char *upper,
                      const char *work, struct sw_err *err)
{
        struct sw_buf opts;
        struct sw_err ignored = SW_ERR_INIT;
        int rc = 0;

        sw_buf_init(&opts, 4096);
        sw_buf_puts(&opts, "lowerdir=", &ignored);
        for (size_t i = 0; i < n; i++)
                sw_buf_printf(&opts, &ignored, "%s%s", i ? ":" : "", lowers[i]);
        if (upper)
                sw_buf_printf(&opts, &ignored, ",upperdir=%s,workdir=%s", upper, work);
        /* Layers must be plain changesets: no redirects, no metadata-only copy-ups. */
        sw_buf_puts(&opts, ",redirect_dir=off,metacopy=off,index=off", &ignored);
        if (ignored.code)
                rc = sw_err_set(err, SW_ETOOBIG, "too many layers for one overlay mount (%zu)", n);
        else if (mount("overlay", merged, "overlay", upper ? 0 : MS_RDONLY, sw_buf_str(&opts)) != 0)
                rc = sw_err_errno(err, errno == EPERM ? SW_EPERM : SW_EIO, errno,
                                  "mount overlay at '%s' (%zu layers)", merged, n);
        sw_buf_release(&opts);
        return rc;
}

void bld_overlay_umount(const char *merged)
{
        if (umount2(merged, 0) != 0)
                umount2(merged, MNT_DETACH);
}

/* ---- users ---- */

/* Look `name` (or a number) up in an /etc/passwd- or /etc/group-style file; field 2 is the id. */
static int id_lookup(uint32_t *id, uint32_t *gid_out, const char *file, const char *name)
{
        char *text = NULL, *save = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        int found = 0;

        if (sw_read_file(&text, NULL, file, 4 << 20, &ignored) != 0)
                return 0;
        for (char *l = strtok_r(text, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save)) {
                char *f[4] = {0};
                char *p = l;
                for (int i = 0; i < 4 && p; i++) {
                        f[i] = p;
                        p = strchr(p, ':');
                        if (p)
                                *p++ = '\0';
                }
                if (!f[2] || strcmp(f[0], name) != 0)
                        continue;
                *id = (uint32_t)strtoul(f[2], NULL, 10);
                if (gid_out && f[3])
                        *gid_out = (uint32_t)strtoul(f[3], NULL, 10);
                found = 1;
        }
        free(text);
        return found;
}

/* The primary group of the passwd entry whose uid is `uid`, if any. */
static void uid_group(uint32_t *gid, const char *file, uint32_t uid)
{
        char *text = NULL, *save = NULL;
        struct sw_err ignored = SW_ERR_INIT;

        if (sw_read_file(&text, NULL, file, 4 << 20, &ignored) != 0)
                return;
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                unsigned long u, g;
                if (sscanf(l, "%*[^:]:%*[^:]:%lu:%lu", &u, &g) == 2 && u == uid) {
                        *gid = (uint32_t)g;
                        break;
                }
        }
        free(text);
}

static int numeric(uint32_t *out, const char *s)
{
        char *end = NULL;
        unsigned long v;

        if (!*s || strspn(s, "0123456789") != strlen(s))
                return 0;
        v = strtoul(s, &end, 10);
        if (v > 0xffffffffUL)
                return 0;
        *out = (uint32_t)v;
        return 1;
}

int bld_user_lookup(uint32_t *uid, uint32_t *gid, const char *rootfs, const char *spec,
                    struct sw_err *err)
{
        char *user = sw_xstrdup(spec && *spec ? spec : "root");
        char *group = strchr(user, ':');
        char *passwd = sw_xasprintf("%s/etc/passwd", rootfs);
        char *groupf = sw_xasprintf("%s/etc/group", rootfs);
        uint32_t u = 0, g = 0;
        int rc = 0;

        if (group)
                *group++ = '\0';
        if (numeric(&u, user)) {
                /* a bare uid needs no passwd entry; its group is the entry's, else root's */
                g = 0;
                uid_group(&g, passwd, u);
        } else if (!id_lookup(&u, &g, passwd, user) && strcmp(user, "root") != 0) {
                /* root is uid 0 even in an image without /etc/passwd (scratch) */
                rc = sw_err_set(err, SW_EINVAL,
                                "unable to find user %s: no matching entries in "
                                "passwd file",
                                user);
                goto out;
        }
        if (group && !numeric(&g, group) && !id_lookup(&g, NULL, groupf, group)) {
                rc = sw_err_set(err, SW_EINVAL,
                                "unable to find group %s: no matching entries in "
                                "group file",
                                group);
                goto out;
        }
        *uid = u;
        *gid = g;
out:
        free(user);
        free(passwd);
        free(groupf);
        return rc;
}

/* ---- the context ---- */

static int scan_dir(struct bld_tree *t, int dirfd, const char *rel,
                    const struct step_dockerignore *ignore, struct sw_err *err)
{
        DIR *d = fdopendir(dirfd);
        struct dirent *de;
        int rc = 0;

        if (!d) {
                close(dirfd);
                return sw_err_errno(err, SW_EIO, errno, "read directory '%s'", rel);
        }
        while ((de = readdir(d)) != NULL && rc == 0) {
                struct stat st;
                char *path;
                unsigned m = 0;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                        continue;
                path = *rel ? sw_xasprintf("%s/%s", rel, de->d_name) : sw_xstrdup(de->d_name);
                if (ignore)
                        m = step_dockerignore_match(ignore, path, S_ISDIR(st.st_mode));
                if (!(m & STEP_DOCKERIGNORE_EXCLUDED)) {
                        if (t->n == t->cap) {
                                t->cap = t->cap ? t->cap * 2 : 256;
                                t->e = sw_xrealloc(t->e, t->cap * sizeof(*t->e));
                        }
                        t->e[t->n].path = sw_xstrdup(path);
                        t->e[t->n].mode = st.st_mode;
                        t->e[t->n].size = st.st_size;
                        t->n++;
                }
                if (S_ISDIR(st.st_mode) &&
                    (!(m & STEP_DOCKERIGNORE_EXCLUDED) || (m & STEP_DOCKERIGNORE_DESCEND))) {
                        int sub = openat(dirfd, de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                rc = scan_dir(t, sub, path, ignore, err);
                }
                free(path);
        }
        closedir(d);
        return rc;
}

static int entry_cmp(const void *a, const void *b)
{
        return strcmp(((const struct bld_entry *)a)->path, ((const struct bld_entry *)b)->path);
}

int bld_tree_scan(struct bld_tree *t, const char *root, const struct step_dockerignore *ignore,
                  struct sw_err *err)
{
        int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc;

        memset(t, 0, sizeof(*t));
        if (fd < 0)
                return sw_err_errno(err, sw_err_from_errno(errno), errno, "open '%s'", root);
        rc = scan_dir(t, fd, "", ignore, err);
        if (rc == 0)
                qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
        return rc;
}

void bld_tree_release(struct bld_tree *t)
{
        for (size_t i = 0; i < t->n; i++)
                free(t->e[i].path);
        free(t->e);
        memset(t, 0, sizeof(*t));
}

/* ---- COPY / ADD ---- */

static int open_in(const struct bld_copy *c, int dirfd, const char *path, int flags)
{
        struct open_how how;

        memset(&how, 0, sizeof(how));
        how.flags = (uint64_t)(flags | O_CLOEXEC);
        how.resolve = (c->in_root ? RESOLVE_IN_ROOT : RESOLVE_BENEATH) | RESOLVE_NO_MAGICLINKS;
        return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* "/a/./b/../c/" -> "a/c"; refuses nothing: ".." above the root stays at the root, like a chroot. */
static char *clean_path(const char *p)
{
        char *out = sw_xmalloc(strlen(p) + 2);
        size_t n = 0;

        while (*p) {
                const char *e;
                size_t len;
                while (*p == '/')
                        p++;
                e = strchr(p, '/');
                len = e ? (size_t)(e - p) : strlen(p);
                if (len == 0)
                        break;
                if (len == 1 && p[0] == '.') {
                } else if (len == 2 && p[0] == '.' && p[1] == '.') {
                        while (n > 0 && out[n - 1] != '/')
                                n--;
                        if (n > 0)
                                n--;
                } else {
                        if (n)
                                out[n++] = '/';
                        memcpy(out + n, p, len);
                        n += len;
                }
                p += len;
        }
        out[n] = '\0';
        return out;
}

/* Make the parent directories of `rel` in the layer, with the image's own attributes where it has them. */
static int make_parents(const struct bld_copy *c, const char *rel, struct sw_err *err)
{
        char *copy;
        int rc = 0;

        if (c->stat_only)
                return 0;
        copy = sw_xstrdup(rel);
        for (char *s = copy; (s = strchr(s, '/')) != NULL; s++) {
                char *dst, *view;
                struct stat st;
                *s = '\0';
                dst = sw_xasprintf("%s/%s", c->dst_root, copy);
                if (mkdir(dst, 0755) == 0) {
                        view = c->view_root ? sw_xasprintf("%s/%s", c->view_root, copy) : NULL;
                        if (view && stat(view, &st) == 0 && S_ISDIR(st.st_mode)) {
                                chmod(dst, st.st_mode & 07777);
                                if (lchown(dst, st.st_uid, st.st_gid) != 0 && geteuid() == 0)
                                        rc = sw_err_errno(err, SW_EIO, errno, "chown '%s'", dst);
                        }
                        free(view);
                } else if (errno != EEXIST) {
                        rc = sw_err_errno(err, SW_EIO, errno, "create '%s'", dst);
                }
                free(dst);
                *s = '/';
                if (rc)
                        break;
        }
        free(copy);
        return rc;
}

static void hash_meta(struct bld_copy *c, char kind, const char *rel, mode_t mode, int64_t size,
                      const char *extra)
{
        char line[64];

        if (!c->hash)
                return;
        snprintf(line, sizeof(line), "%c %o %lld ", kind, (unsigned)mode, (long long)size);
        sw_sha256_update(c->hash, line, strlen(line));
        sw_sha256_update(c->hash, rel, strlen(rel) + 1);
        if (extra)
                sw_sha256_update(c->hash, extra, strlen(extra) + 1);
}

static int set_attrs(const struct bld_copy *c, const char *dst, const struct stat *src, bool link,
                     struct sw_err *err)
{
        uid_t uid = c->uid >= 0 ? (uid_t)c->uid : c->in_root ? src->st_uid : 0;
        gid_t gid = c->gid >= 0 ? (gid_t)c->gid : c->in_root ? src->st_gid : 0;

        if (lchown(dst, uid, gid) != 0 && geteuid() == 0)
                return sw_err_errno(err, SW_EIO, errno, "chown '%s'", dst);
        if (!link && chmod(dst, c->mode >= 0 ? (mode_t)c->mode : src->st_mode & 07777) != 0)
                return sw_err_errno(err, SW_EIO, errno, "chmod '%s'", dst);
        return 0;
}

/* The stat data of a file that stands for its content in a stat_only pass. */
static void hash_stat(struct bld_copy *c, const struct stat *st)
{
        char line[160];

        snprintf(line, sizeof(line), "stat %llu %llu %lld %lld.%09ld %lld.%09ld\n",
                 (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
                 (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
        if (c->hash)
                sw_sha256_update(c->hash, line, strlen(line));
}

static int copy_file(struct bld_copy *c, int fd, const struct stat *st, const char *dst_rel,
                     struct sw_err *err)
{
        char *dst;
        char buf[65536];
        int out, rc = 0;

        if (c->stat_only) {
                hash_meta(c, 'F', dst_rel, c->mode >= 0 ? (mode_t)c->mode : st->st_mode & 07777,
                          st->st_size, NULL);
                hash_stat(c, st);
                return 0;
        }
        dst = sw_xasprintf("%s/%s", c->dst_root, dst_rel);

        unlink(dst);
        out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "create '%s'", dst);
                goto done;
        }
        hash_meta(c, 'F', dst_rel, c->mode >= 0 ? (mode_t)c->mode : st->st_mode & 07777,
                  st->st_size, NULL);
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "read '%s'", dst_rel);
                        break;
                }
                if (n == 0)
                        break;
                if (c->hash)
                        sw_sha256_update(c->hash, buf, (size_t)n);
                if (write(out, buf, (size_t)n) != n) {
                        rc = sw_err_errno(err, SW_EIO, errno, "write '%s'", dst);
                        break;
                }
        }
        close(out);
        if (rc == 0)
                rc = set_attrs(c, dst, st, false, err);
done:
        free(dst);
        return rc;
}

static int copy_tree(struct bld_copy *c, int dirfd, const char *src_rel, const char *dst_rel,
                     struct sw_err *err);

/* Copy one opened entry (not following a symlink) to dst_rel. */
static int copy_entry(struct bld_copy *c, int parent, const char *name, const char *src_rel,
                      const char *dst_rel, struct sw_err *err)
{
        struct stat st;
        int rc = 0;

        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                return sw_err_errno(err, SW_EIO, errno, "stat '%s'", src_rel);
        if (c->ignore && !c->in_root) {
                unsigned m = step_dockerignore_match(c->ignore, src_rel, S_ISDIR(st.st_mode));
                if ((m & STEP_DOCKERIGNORE_EXCLUDED) &&
                    !(S_ISDIR(st.st_mode) && (m & STEP_DOCKERIGNORE_DESCEND)))
                        return 0;
        }
        if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlinkat(parent, name, target, sizeof(target) - 1);
                char *dst = sw_xasprintf("%s/%s", c->dst_root, dst_rel);
                if (n < 0) {
                        free(dst);
                        return sw_err_errno(err, SW_EIO, errno, "readlink '%s'", src_rel);
                }
                target[n] = '\0';
                if (!c->stat_only)
                        unlink(dst);
                if (c->stat_only)
                        rc = 0;
                else if (symlink(target, dst) != 0)
                        rc = sw_err_errno(err, SW_EIO, errno, "symlink '%s'", dst);
                else
                        rc = set_attrs(c, dst, &st, true, err);
                hash_meta(c, 'L', dst_rel, 0777, 0, target);
                free(dst);
        } else if (S_ISDIR(st.st_mode)) {
                int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                char *dst = sw_xasprintf("%s/%s", c->dst_root, dst_rel);
                if (fd < 0) {
                        free(dst);
                        return sw_err_errno(err, SW_EIO, errno, "open '%s'", src_rel);
                }
                if (!c->stat_only && mkdir(dst, 0755) != 0 && errno != EEXIST)
                        rc = sw_err_errno(err, SW_EIO, errno, "create '%s'", dst);
                if (rc == 0 && !c->stat_only)
                        rc = set_attrs(c, dst, &st, false, err);
                hash_meta(c, 'D', dst_rel, st.st_mode & 07777, 0, NULL);
                free(dst);
                if (rc == 0)
                        rc = copy_tree(c, fd, src_rel, dst_rel, err);
                else
                        close(fd);
        } else if (S_ISREG(st.st_mode)) {
                int fd = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return sw_err_errno(err, SW_EIO, errno, "open '%s'", src_rel);
                rc = copy_file(c, fd, &st, dst_rel, err);
                close(fd);
        }
        /* fifos, sockets, devices in a context are not copied, as with docker build */
        return rc;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int copy_tree(struct bld_copy *c, int dirfd, const char *src_rel, const char *dst_rel,
                     struct sw_err *err)
{
        DIR *d = fdopendir(dirfd);
        struct dirent *de;
        char **names = NULL;
        size_t n = 0, cap = 0;
        int rc = 0;

        if (!d) {
                close(dirfd);
                return sw_err_errno(err, SW_EIO, errno, "read '%s'", src_rel);
        }
        while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 32;
                        names = sw_xrealloc(names, cap * sizeof(*names));
                }
                names[n++] = sw_xstrdup(de->d_name);
        }
        /* sorted, so that the cache key does not depend on directory order */
        qsort(names, n, sizeof(*names), name_cmp);
        for (size_t i = 0; i < n && rc == 0; i++) {
                char *s =
                        *src_rel ? sw_xasprintf("%s/%s", src_rel, names[i]) : sw_xstrdup(names[i]);
                char *t =
                        *dst_rel ? sw_xasprintf("%s/%s", dst_rel, names[i]) : sw_xstrdup(names[i]);
                rc = copy_entry(c, dirfd, names[i], s, t, err);
                free(s);
                free(t);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        closedir(d);
        return rc;
}

static bool is_archive(int fd)
{
        unsigned char head[512];
        ssize_t n = pread(fd, head, sizeof(head), 0);

        if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b)
                return true; /* gzip */
        if (n >= 3 && head[0] == 'B' && head[1] == 'Z' && head[2] == 'h')
                return true;
        if (n >= 6 && memcmp(head,
                             "\xfd"
                             "7zXZ",
                             5) == 0)
                return true;
        if (n >= 4 && memcmp(head, "\x28\xb5\x2f\xfd", 4) == 0)
                return true; /* zstd */
        return n == 512 && memcmp(head + 257, "ustar", 5) == 0;
}

int bld_copy_path(struct bld_copy *c, const char *src, const char *dst, bool dst_is_dir,
                  struct sw_err *err)
{
        char *src_clean = clean_path(src), *dst_clean = clean_path(dst);
        char *dst_rel = NULL;
        struct stat st;
        int fd = -1, rc = 0;

        /* ".." above the root of the context is an escape, not a path to clamp */
        if (!c->in_root) {
                int depth = 0;
                for (const char *p = src; *p;) {
                        size_t len = strcspn(p, "/");
                        if (len == 2 && p[0] == '.' && p[1] == '.')
                                depth--;
                        else if (len > 0 && !(len == 1 && p[0] == '.'))
                                depth++;
                        if (depth < 0) {
                                rc = sw_err_set(err, SW_EPERM, "'%s' is outside the build context",
                                                src);
                                goto out;
                        }
                        p += len;
                        while (*p == '/')
                                p++;
                }
        }
        fd = open_in(c, c->src_root_fd, *src_clean ? src_clean : ".", O_PATH);
        if (fd < 0) {
                if (errno == EXDEV || errno == ELOOP)
                        rc = sw_err_set(err, SW_EPERM, "'%s' is outside the build context", src);
                else
                        rc = sw_err_errno(err, sw_err_from_errno(errno), errno,
                                          "'%s' not found in the build context", src);
                goto out;
        }
        if (fstat(fd, &st) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "stat '%s'", src);
                goto out;
        }
        if (S_ISDIR(st.st_mode)) {
                /* a directory's contents go into the destination directory */
                int dfd = open_in(c, c->src_root_fd, *src_clean ? src_clean : ".",
                                  O_RDONLY | O_DIRECTORY);
                char *probe = sw_xasprintf("%s/x", dst_clean);
                if (dfd < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "open '%s'", src);
                        free(probe);
                        goto out;
                }
                rc = make_parents(c, probe, err);
                free(probe);
                if (rc == 0 && *dst_clean && !c->stat_only) {
                        char *d = sw_xasprintf("%s/%s", c->dst_root, dst_clean);
                        if (mkdir(d, 0755) != 0 && errno != EEXIST)
                                rc = sw_err_errno(err, SW_EIO, errno, "create '%s'", d);
                        free(d);
                }
                if (rc == 0)
                        rc = copy_tree(c, dfd, src_clean, dst_clean, err);
                else
                        close(dfd);
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                rc = sw_err_set(err, SW_EINVAL, "'%s' is not a regular file or directory", src);
                goto out;
        }
        {
                int rfd = open_in(c, c->src_root_fd, src_clean, O_RDONLY);
                const char *base = strrchr(src_clean, '/');
                base = base ? base + 1 : src_clean;
                if (rfd < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "open '%s'", src);
                        goto out;
                }
                if (c->extract_archives && is_archive(rfd)) {
                        /* ADD of a local archive: its contents go into the destination */
                        char path[64], *target = sw_xasprintf("%s/%s", c->dst_root, dst_clean);
                        char digest[SW_DIGEST_STR_LEN];
                        char *probe = sw_xasprintf("%s/x", dst_clean);
                        struct step_layer_unpack_options uo = STEP_LAYER_UNPACK_OPTIONS_INIT;
                        snprintf(path, sizeof(path), "/proc/self/fd/%d", rfd);
                        if (c->stat_only) {
                                hash_meta(c, 'A', dst_clean, 0, 0, NULL);
                                hash_stat(c, &st);
                                free(probe);
                                free(target);
                                close(rfd);
                                goto out;
                        }
                        rc = make_parents(c, probe, err);
                        if (rc == 0 && mkdir(target, 0755) != 0 && errno != EEXIST)
                                rc = sw_err_errno(err, SW_EIO, errno, "create '%s'", target);
                        if (rc == 0 && (rc = sw_sha256_file(digest, NULL, path, err)) == 0) {
                                hash_meta(c, 'A', dst_clean, 0, 0, digest);
                                rc = step_layer_apply(NULL, path, target, &uo, err);
                        }
                        free(probe);
                        free(target);
                        close(rfd);
                        goto out;
                }
                dst_rel = dst_is_dir ? (*dst_clean ? sw_xasprintf("%s/%s", dst_clean, base)
                                                   : sw_xstrdup(base))
                                     : sw_xstrdup(dst_clean);
                if (!*dst_rel) {
                        close(rfd);
                        rc = sw_err_set(err, SW_EINVAL, "cannot copy a file onto '/'");
                        goto out;
                }
                rc = make_parents(c, dst_rel, err);
                if (rc == 0) {
                        char *dpath = sw_xasprintf("%s/%s", c->dst_root, dst_rel);
                        struct stat dst_st;
                        /* an existing directory in the layer takes the file inside it */
                        if (stat(dpath, &dst_st) == 0 && S_ISDIR(dst_st.st_mode)) {
                                char *inside = sw_xasprintf("%s/%s", dst_rel, base);
                                free(dst_rel);
                                dst_rel = inside;
                        }
                        free(dpath);
                        rc = copy_file(c, rfd, &st, dst_rel, err);
                }
                close(rfd);
        }
out:
        if (fd >= 0)
                close(fd);
        free(src_clean);
        free(dst_clean);
        free(dst_rel);
        return rc;
}
