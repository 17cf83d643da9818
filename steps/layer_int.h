/*
 * layer_int.h - what steps/layer_pack.c and steps/layer_apply.c share.
 */
#ifndef SW_STEPS_LAYER_INT_H
#define SW_STEPS_LAYER_INT_H

#include <stdbool.h>

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

#endif /* SW_STEPS_LAYER_INT_H */
