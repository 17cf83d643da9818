/*
 * fs.h - file system helpers: directories, whole-file reads, atomic writes.
 */
#ifndef SW_FS_H
#define SW_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

/* mkdir -p with `mode` for the directories it creates. */
int sw_mkdir_p(const char *path, mode_t mode, struct sw_err *err);
/* rm -rf that never follows symlinks; an absent path is success. */
int sw_rm_rf(const char *path, struct sw_err *err);
/* Read a whole file of at most `max_bytes`; *out is NUL-terminated, the caller frees. */
int sw_read_file(char **out, size_t *len_out, const char *path, size_t max_bytes,
                 struct sw_err *err);
/* Write through a temporary file in the same directory, fsync, rename. */
int sw_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct sw_err *err);
/*
 * The same without the fsync: readers never see a partial file, and it
 * survives the writer's crash but not the machine's. For files made anew
 * whenever they are needed (a container's config.json, a pod's /etc files).
 */
int sw_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                          struct sw_err *err);
/* mkdtemp under `parent` with `prefix`; *out is malloc'ed. */
int sw_mkdtemp(char **out, const char *parent, const char *prefix, struct sw_err *err);

#endif /* SW_FS_H */
