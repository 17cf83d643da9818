/*
 * tree.c - directory-tree comparison and tar building for tests (tree.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/tree.h"

struct inode_map {
        ino_t *a;
        ino_t *b;
        size_t n, cap;
};

static int cmp_names(const void *x, const void *y)
{
        return strcmp(*(char *const *)x, *(char *const *)y);
}

static char **list_dir(const char *path, size_t *n_out)
{
        DIR *d = opendir(path);
        struct dirent *de;
        char **names = NULL;
        size_t n = 0, cap = 0;

        if (!d) {
                *n_out = 0;
                return NULL;
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
        if (n > 1)
                qsort(names, n, sizeof(*names), cmp_names);
        *n_out = n;
        return names;
}

static void free_names(char **names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static bool same_content(const char *a, const char *b)
{
        FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
        bool same = fa && fb;
        char ba[65536], bb[65536];

        while (same) {
                size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);
                if (na != nb || memcmp(ba, bb, na) != 0)
                        same = false;
                if (na == 0)
                        break;
        }
        if (fa)
                fclose(fa);
        if (fb)
                fclose(fb);
        return same;
}

/* Hard links must pair up: an inode of `a` always maps to the same inode of `b`. */
static bool inode_pair(struct inode_map *m, ino_t ia, ino_t ib)
{
        for (size_t i = 0; i < m->n; i++) {
                if (m->a[i] == ia || m->b[i] == ib)
                        return m->a[i] == ia && m->b[i] == ib;
        }
        if (m->n == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 16;
                m->a = sw_xrealloc(m->a, m->cap * sizeof(*m->a));
                m->b = sw_xrealloc(m->b, m->cap * sizeof(*m->b));
        }
        m->a[m->n] = ia;
        m->b[m->n] = ib;
        m->n++;
        return true;
}

static char *diff_rec(const char *a, const char *b, const char *rel, unsigned flags,
                      struct inode_map *m)
{
        size_t na, nb;
        char **la = list_dir(a, &na), **lb = list_dir(b, &nb);
        char *why = NULL;
        size_t i = 0, j = 0;

        while (!why && (i < na || j < nb)) {
                int c = i == na ? 1 : j == nb ? -1 : strcmp(la[i], lb[j]);
                if (c < 0) {
                        why = sw_xasprintf("'%s/%s' only in the first tree", rel, la[i]);
                        break;
                }
                if (c > 0) {
                        why = sw_xasprintf("'%s/%s' only in the second tree", rel, lb[j]);
                        break;
                }
                char *pa = sw_xasprintf("%s/%s", a, la[i]), *pb = sw_xasprintf("%s/%s", b, lb[j]);
                char *r = sw_xasprintf("%s/%s", rel, la[i]);
                struct stat sa, sb;
                if (lstat(pa, &sa) != 0 || lstat(pb, &sb) != 0) {
                        why = sw_xasprintf("'%s': lstat failed", r);
                } else if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
                        why = sw_xasprintf("'%s': type %o != %o", r, sa.st_mode & S_IFMT,
                                           sb.st_mode & S_IFMT);
                } else if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777)) {
                        why = sw_xasprintf("'%s': mode %o != %o", r, sa.st_mode & 07777,
                                           sb.st_mode & 07777);
                } else if (!(flags & T_TREE_NO_OWNER) &&
                           (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid)) {
                        why = sw_xasprintf("'%s': owner %u:%u != %u:%u", r, sa.st_uid, sa.st_gid,
                                           sb.st_uid, sb.st_gid);
                } else if ((flags & T_TREE_MTIME) && !S_ISLNK(sa.st_mode) &&
                           sa.st_mtime != sb.st_mtime) {
                        why = sw_xasprintf("'%s': mtime %lld != %lld", r, (long long)sa.st_mtime,
                                           (long long)sb.st_mtime);
                } else if (S_ISREG(sa.st_mode)) {
                        if (sa.st_size != sb.st_size || !same_content(pa, pb))
                                why = sw_xasprintf("'%s': contents differ", r);
                        else if (sa.st_nlink != sb.st_nlink)
                                why = sw_xasprintf("'%s': %lu links != %lu", r,
                                                   (unsigned long)sa.st_nlink,
                                                   (unsigned long)sb.st_nlink);
                        else if (sa.st_nlink > 1 && !inode_pair(m, sa.st_ino, sb.st_ino))
                                why = sw_xasprintf("'%s': hard links grouped differently", r);
                } else if (S_ISLNK(sa.st_mode)) {
                        char ta[4096], tb[4096];
                        ssize_t xa = readlink(pa, ta, sizeof(ta) - 1),
                                xb = readlink(pb, tb, sizeof(tb) - 1);
                        if (xa < 0 || xb < 0 || xa != xb || memcmp(ta, tb, (size_t)xa) != 0)
                                why = sw_xasprintf("'%s': symlink targets differ", r);
                } else if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) {
                        if (sa.st_rdev != sb.st_rdev)
                                why = sw_xasprintf("'%s': device numbers differ", r);
                } else if (S_ISDIR(sa.st_mode)) {
                        why = diff_rec(pa, pb, r, flags, m);
                }
                free(pa);
                free(pb);
                free(r);
                i++;
                j++;
        }
        free_names(la, na);
        free_names(lb, nb);
        return why;
}

char *t_tree_diff(const char *a, const char *b, unsigned flags)
{
        struct inode_map m = {0};
        struct stat sa, sb;
        char *why;

        if (stat(a, &sa) != 0 || !S_ISDIR(sa.st_mode))
                return sw_xasprintf("'%s' is not a directory", a);
        if (stat(b, &sb) != 0 || !S_ISDIR(sb.st_mode))
                return sw_xasprintf("'%s' is not a directory", b);
        why = diff_rec(a, b, ".", flags, &m);
        free(m.a);
        free(m.b);
        return why;
}

void t_write(const char *path, const char *content, mode_t mode)
{
        struct sw_err err = SW_ERR_INIT;

        if (sw_write_file_atomic(path, content, strlen(content), mode, &err) != 0 ||
            chmod(path, mode) != 0) {
                fprintf(stderr, "t_write %s: %s\n", path, err.msg);
                exit(1);
        }
}

void t_mkdirs(const char *path, mode_t mode)
{
        struct sw_err err = SW_ERR_INIT;

        if (sw_mkdir_p(path, mode, &err) != 0) {
                fprintf(stderr, "t_mkdirs %s: %s\n", path, err.msg);
                exit(1);
        }
}

bool t_exists(const char *path)
{
        struct stat sb;

        return lstat(path, &sb) == 0;
}

char *t_slurp(const char *path)
{
        struct sw_err err = SW_ERR_INIT;
        char *data = NULL;

        if (sw_read_file(&data, NULL, path, 1 << 20, &err) != 0)
                return NULL;
        return data;
}

int t_sh(const char *fmt, ...)
{
        va_list ap;
        char *cmd;
        int st;

        va_start(ap, fmt);
        if (vasprintf(&cmd, fmt, ap) < 0)
                cmd = NULL;
        va_end(ap);
        if (!cmd)
                return -1;
        st = system(cmd);
        free(cmd);
        if (st == -1 || !WIFEXITED(st))
                return -1;
        return WEXITSTATUS(st);
}

void t_tar_write(const char *path, const struct t_tar_entry *entries, size_t n,
                 enum t_tar_compression compression)
{
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();

        archive_write_set_format_pax_restricted(a);
        if (compression == T_TAR_GZIP)
                archive_write_add_filter_gzip(a);
        else if (compression == T_TAR_ZSTD)
                archive_write_add_filter_zstd(a);
        if (archive_write_open_filename(a, path) != ARCHIVE_OK)
                goto fail;
        for (size_t i = 0; i < n; i++) {
                const struct t_tar_entry *t = &entries[i];
                archive_entry_clear(e);
                archive_entry_copy_pathname(e, t->name);
                archive_entry_set_mtime(e, 0, 0);
                switch (t->type) {
                case 'd':
                        archive_entry_set_filetype(e, AE_IFDIR);
                        archive_entry_set_perm(e, t->perm ? t->perm : 0755);
                        break;
                case 'l':
                        archive_entry_set_filetype(e, AE_IFLNK);
                        archive_entry_set_perm(e, 0777);
                        archive_entry_copy_symlink(e, t->target);
                        break;
                case 'h':
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_perm(e, 0644);
                        archive_entry_copy_hardlink(e, t->target);
                        break;
                case 'c':
                        archive_entry_set_filetype(e, AE_IFCHR);
                        archive_entry_set_perm(e, t->perm ? t->perm : 0644);
                        break;
                default:
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_perm(e, t->perm ? t->perm : 0644);
                        archive_entry_set_size(e, t->target ? (la_int64_t)strlen(t->target) : 0);
                        break;
                }
                if (archive_write_header(a, e) < ARCHIVE_WARN)
                        goto fail;
                if (t->type == 'f' && t->target && t->target[0] &&
                    archive_write_data(a, t->target, strlen(t->target)) < 0)
                        goto fail;
        }
        if (archive_write_close(a) != ARCHIVE_OK)
                goto fail;
        archive_write_free(a);
        archive_entry_free(e);
        return;
fail:
        fprintf(stderr, "t_tar_write %s: %s\n", path, archive_error_string(a));
        exit(1);
}
