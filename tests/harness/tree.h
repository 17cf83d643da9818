/*
 * tree.h - test helpers for directory trees and hand-made tar archives.
 *
 * t_tree_diff() compares two trees the way a layer round trip must preserve
 * them (names, types, permission bits, owners, contents, symlink targets,
 * device numbers, hard-link groups); t_tar_write() builds tar archives entry
 * by entry with libarchive, hostile ones included, to feed the extractor.
 */
#ifndef SW_TEST_TREE_H
#define SW_TEST_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum {
        T_TREE_MTIME = 1 << 0,    /* also compare modification times (seconds) */
        T_TREE_NO_OWNER = 1 << 1, /* do not compare uid/gid */
};

/*
 * NULL when the trees under `a` and `b` are equal (their roots' own
 * attributes are not compared), else a malloc'ed line naming the first
 * difference.
 */
char *t_tree_diff(const char *a, const char *b, unsigned flags);

/* Writes `content` to `path` with `mode` (exits the test on failure). */
void t_write(const char *path, const char *content, mode_t mode);
/* mkdir -p (exits the test on failure). */
void t_mkdirs(const char *path, mode_t mode);
/* True when `path` exists (lstat). */
bool t_exists(const char *path);
/* The content of a small file, malloc'ed, or NULL. */
char *t_slurp(const char *path);
/* Runs `sh -c cmd`; returns its exit status (or -1). */
int t_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One entry of a hand-made tar. */
struct t_tar_entry {
        const char *name;
        char type;          /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char dev */
        const char *target; /* file content, or symlink / hard link target */
        mode_t perm;        /* 0 means 0644 (files) or 0755 (dirs) */
};

enum t_tar_compression { T_TAR_PLAIN, T_TAR_GZIP, T_TAR_ZSTD };

/* Writes the entries, in order, as a pax tar at `path`; exits the test on failure. */
void t_tar_write(const char *path, const struct t_tar_entry *entries, size_t n,
                 enum t_tar_compression compression);

#endif /* SW_TEST_TREE_H */
