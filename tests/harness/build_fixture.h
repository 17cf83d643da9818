/*
 * build_fixture.h - helpers for the image builder's tests: build contexts
 * with a static busybox, files in and out of trees, and a log sink for the
 * builder's progress lines and RUN output.
 */
#ifndef SW_TEST_BUILD_FIXTURE_H
#define SW_TEST_BUILD_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

/* What the builder printed (progress lines and RUN output); tests reset it. */
extern struct sw_buf tb_log;

/* step_build_options.log / .output that append to tb_log. */
void tb_on_log(void *arg, const char *line);
void tb_on_output(void *arg, const char *data, size_t len);

/* Write `text` to dir/name, making the directories on the way. */
void tb_put(const char *dir, const char *name, const char *text);
/* The content of dir/name (malloc'ed), or NULL. */
char *tb_slurp(const char *dir, const char *name);
/* Whether dir/name exists (a symlink counts, not followed). */
bool tb_exists(const char *dir, const char *name);
/* A context under t_tmpdir() with /bin/busybox copied in and `dockerfile`; the caller frees. */
char *tb_context(const char *name, const char *dockerfile);

#endif
