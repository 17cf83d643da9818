/*
 * fs.c - file system helpers.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"
#include "common/banned.h"

int sw_mkdir_p(const char *path, mode_t mode, struct sw_err *err)
{
        char *p = sw_xstrdup(path);
        int rc = 0;

        for (char *s = p + 1;; s++) {
                char c = *s;
                if (c != '/' && c != '\0')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) != 0 && errno != EEXIST) {
                        rc = sw_err_errno(err, sw_err_from_errno(errno), errno,
                                          "create directory '%s'", p);
                        break;
                }
                *s = c;
                if (c == '\0')
                        break;
        }
        if (rc == 0) {
                struct stat st;
                if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
                        rc = sw_err_set(err, SW_EINVAL, "'%s' is not a directory", path);
        }
        free(p);
        return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_DP)
                return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int sw_rm_rf(const char *path, struct sw_err *err)
{
        struct stat st;

        if (lstat(path, &st) != 0)
                return errno == ENOENT ? 0 : sw_err_errno(err, SW_EIO, errno, "stat '%s'", path);
        if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
                return sw_err_errno(err, SW_EIO, errno, "remove '%s'", path);
        return 0;
}

int sw_read_file(char **out, size_t *len_out, const char *path, size_t max_bytes,
                 struct sw_err *err)
{
        int fd = -1, rc = 0;
        char *data = NULL;
        size_t len = 0, cap = 4096;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return sw_err_errno(err, sw_err_from_errno(errno), errno, "open '%s'", path);
        data = sw_xmalloc(cap);
        for (;;) {
                if (len + 1 >= cap) {
                        cap *= 2;
                        data = sw_xrealloc(data, cap);
                }
                ssize_t n = read(fd, data + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "read '%s'", path);
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (max_bytes && len > max_bytes) {
                        rc = sw_err_set(err, SW_ETOOBIG, "'%s' is larger than %zu bytes", path,
                                        max_bytes);
                        goto out;
                }
        }
        data[len] = '\0';
        *out = data;
        data = NULL;
        if (len_out)
                *len_out = len;
out:
        free(data);
        close(fd);
        return rc;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode, bool sync,
                      struct sw_err *err)
{
        char *tmp = sw_xasprintf("%s.tmp.%ld", path, (long)getpid());
        const char *p = data;
        int fd, rc = 0;

        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0) {
                rc = sw_err_errno(err, sw_err_from_errno(errno), errno, "create '%s'", tmp);
                goto out;
        }
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "write '%s'", tmp);
                        goto out;
                }
                p += n;
                len -= (size_t)n;
        }
        if (sync && fsync(fd) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "fsync '%s'", tmp);
                goto out;
        }
        if (close(fd) != 0) {
                fd = -1;
                rc = sw_err_errno(err, SW_EIO, errno, "close '%s'", tmp);
                goto out;
        }
        fd = -1;
        if (rename(tmp, path) != 0)
                rc = sw_err_errno(err, SW_EIO, errno, "rename '%s'", tmp);
out:
        if (fd >= 0)
                close(fd);
        if (rc)
                unlink(tmp);
        free(tmp);
        return rc;
}

int sw_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct sw_err *err)
{
        return write_file(path, data, len, mode, true, err);
}

int sw_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                          struct sw_err *err)
{
        return write_file(path, data, len, mode, false, err);
}

int sw_mkdtemp(char **out, const char *parent, const char *prefix, struct sw_err *err)
{
        char *tmpl = sw_xasprintf("%s/%sXXXXXX", parent, prefix);

        if (!mkdtemp(tmpl)) {
                int rc = sw_err_errno(err, sw_err_from_errno(errno), errno,
                                      "create temporary directory in '%s'", parent);
                free(tmpl);
                return rc;
        }
        *out = tmpl;
        return 0;
}
