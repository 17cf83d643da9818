/*
 * layer_int.h - what steps/layer_pack.c and steps/layer_apply.c share.
 */
#ifndef SW_STEPS_LAYER_INT_H
#define SW_STEPS_LAYER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct archive;

#define STEP_LAYER_WH_PREFIX ".wh."
#define STEP_LAYER_WH_OPAQUE ".wh..wh..opq"
/* Names under this prefix are aufs bookkeeping (".wh..wh.plnk"): ignored on unpack. */
#define STEP_LAYER_WH_META ".wh..wh."

/* libarchive's message for `a`, translated once: "WHAT: MESSAGE" with `code`. */
int step__archive_err(struct archive *a, int code, struct sw_err *err, const char *what);

/*
 * True for an extended attribute that must never travel inside a layer:
 * overlayfs' own bookkeeping (trusted.overlay.*, user.overlay.*) would change
 * how a later overlay mount reads the tree, and security.selinux is a host label.
 */
bool step__layer_xattr_private(const char *name);

/*
 * Block-parallel deterministic gzip (layer_gzip.c): the input is cut into
 * STEP__GZ_CHUNK-byte chunks, each compressed (libdeflate, `level` 1..9) into
 * one gzip member. Compressed bytes go to `emit` in order, on the caller's
 * thread; the output does not depend on `threads` (0 or 1: compress on the
 * caller's thread). step__gz_new() fails with SW_EINVAL for a level
 * libdeflate refuses.
 */
#define STEP__GZ_CHUNK (1024 * 1024)

struct step__gz;
typedef int (*step__gz_emit_fn)(void *ctx, const void *data, size_t len, struct sw_err *err);

int step__gz_new(struct step__gz **out, int level, int threads, step__gz_emit_fn emit, void *ctx,
                 struct sw_err *err);
int step__gz_write(struct step__gz *g, const void *data, size_t len, struct sw_err *err);
/* Compresses the last (partial) chunk and emits everything still pending. */
int step__gz_finish(struct step__gz *g, struct sw_err *err);
void step__gz_free(struct step__gz *g);

#endif /* SW_STEPS_LAYER_INT_H */
