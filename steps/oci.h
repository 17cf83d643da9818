/*
 * oci.h - OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
 *
 * A layout is a content-addressed folder. Every blob is written through a
 * temporary file under blobs/sha256/ while its sha256 is computed; when the
 * digest (and size) match what was expected the file is renamed into place,
 * otherwise it is removed, so a blob path always holds exactly the bytes its
 * name promises. index.json is replaced atomically (write, fsync, rename).
 * Tags live in index.json as the `org.opencontainers.image.ref.name`
 * annotation of a manifest descriptor.
 *
 * Ownership: step_oci_layout_open() returns a layout owned by the caller,
 * freed with step_oci_layout_free() (accepts NULL). A blob writer is owned by
 * the caller until step_oci_blob_commit() or step_oci_blob_abort().
 * Threads: blob writers of one layout may run in parallel threads; index.json
 * updates (step_oci_ref_set) must come from one thread at a time.
 */
#ifndef SW_STEPS_OCI_H
#define SW_STEPS_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/digest.h"
#include "common/err.h"

#define STEP_OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define STEP_OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define STEP_OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define STEP_OCI_MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define STEP_OCI_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define STEP_OCI_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define STEP_OCI_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define STEP_OCI_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define STEP_OCI_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define STEP_OCI_MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"

#define STEP_OCI_REF_ANNOTATION "org.opencontainers.image.ref.name"

/* Manifests and indexes larger than this are refused (SW_ETOOBIG). */
#define STEP_OCI_MANIFEST_MAX_BYTES ((size_t)4 << 20)
/* Image configs larger than this are refused. */
#define STEP_OCI_CONFIG_MAX_BYTES ((size_t)8 << 20)
/* A manifest with more layers than this is refused. */
#define STEP_OCI_MAX_LAYERS 1024
#define STEP_OCI_MT_MAX 128

/* A content descriptor: what a manifest or index entry points at. */
struct step_oci_desc {
        char media_type[STEP_OCI_MT_MAX];
        char digest[SW_DIGEST_STR_LEN];
        int64_t size;
};

/* A parsed image manifest (OCI or Docker v2 schema 2). */
struct step_oci_manifest {
        char media_type[STEP_OCI_MT_MAX];
        struct step_oci_desc config;
        struct step_oci_desc *layers; /* n_layers entries, malloc'ed */
        size_t n_layers;
};

struct step_oci_layout;
struct step_oci_blob_writer;
struct step_oci_staged;

/*
 * Open the layout at `dir`. With `create`, a missing folder is created with
 * its oci-layout file and an empty index.json; an existing layout is opened
 * as is. Temporary blobs untouched for an hour (left by a killed writer) are
 * removed. Returns SW_ENOTFOUND when `dir` is no layout and `create` is
 * false, SW_EINVAL when its oci-layout file is not version 1.x.
 */
int step_oci_layout_open(struct step_oci_layout **out, const char *dir, bool create,
                         struct sw_err *err);
void step_oci_layout_free(struct step_oci_layout *l);
/* The layout's folder, as given to open. */
const char *step_oci_layout_dir(const struct step_oci_layout *l);

/* Path of the blob `digest` (whether or not it exists); the caller frees. */
char *step_oci_blob_path(const struct step_oci_layout *l, const char *digest);
/* True when the blob is present; *size_out (may be NULL) gets its size. */
bool step_oci_blob_exists(const struct step_oci_layout *l, const char *digest, int64_t *size_out);

/*
 * Start writing a blob. `expect_digest` (may be NULL) and `expect_size` (-1
 * for unknown) are checked at commit; with an expected size, writing past it
 * fails at once with SW_ECORRUPT.
 */
int step_oci_blob_begin(struct step_oci_blob_writer **out, struct step_oci_layout *l,
                        const char *expect_digest, int64_t expect_size, struct sw_err *err);
int step_oci_blob_write(struct step_oci_blob_writer *w, const void *data, size_t len,
                        struct sw_err *err);
/* Bytes written so far. */
int64_t step_oci_blob_written(const struct step_oci_blob_writer *w);
/*
 * Verify and rename into place; frees `w` whatever the outcome. On a digest or
 * size mismatch returns SW_ECORRUPT and removes the temporary file. The digest
 * goes to digest_out (may be NULL). Idempotent for content already present.
 */
int step_oci_blob_commit(char *digest_out, int64_t *size_out, struct step_oci_blob_writer *w,
                         struct sw_err *err);
/* Drop the temporary file and free `w`; accepts NULL. */
void step_oci_blob_abort(struct step_oci_blob_writer *w);

/*
 * Verify like step_oci_blob_commit(), but set the file aside instead of
 * naming it: the blob appears only when the staging is published, together
 * with the others staged with it (one flush for all, instead of a flush per
 * blob while other transfers wait). *staged starts NULL and is created on
 * first use; all blobs of one staging belong to the same layout. Frees `w`.
 */
int step_oci_blob_stage(struct step_oci_staged **staged, struct step_oci_blob_writer *w,
                        struct sw_err *err);
/*
 * Flush every staged blob to disk, then rename each into place; frees
 * `staged` (NULL is a no-op). On failure the blobs not yet renamed are removed.
 */
int step_oci_staged_publish(struct step_oci_staged *staged, struct sw_err *err);
/* Remove the staged blobs' temporary files and free; accepts NULL. */
void step_oci_staged_free(struct step_oci_staged *staged);

/* Add `len` bytes of memory as a blob; digest_out gets "sha256:<hex>". */
int step_oci_blob_add_mem(char digest_out[SW_DIGEST_STR_LEN], struct step_oci_layout *l,
                          const void *data, size_t len, struct sw_err *err);
/* Copy the file at `path` into the layout as a blob. */
int step_oci_blob_add_file(char digest_out[SW_DIGEST_STR_LEN], int64_t *size_out,
                           struct step_oci_layout *l, const char *path, struct sw_err *err);
/*
 * Read a blob of at most `max_bytes` into memory, verifying its digest; the
 * caller frees *out (NUL-terminated). SW_ENOTFOUND when absent, SW_ETOOBIG
 * when larger, SW_ECORRUPT when the content does not match its name.
 */
int step_oci_blob_read(char **out, size_t *len_out, const struct step_oci_layout *l,
                       const char *digest, size_t max_bytes, struct sw_err *err);

/* Serialise `doc` compactly, store it as a blob; returns its digest and size. */
int step_oci_json_put(char digest_out[SW_DIGEST_STR_LEN], int64_t *size_out,
                      struct step_oci_layout *l, const json_t *doc, struct sw_err *err);
/* Read a JSON blob (verified) of at most `max_bytes`; *out is a new reference. */
int step_oci_json_get(json_t **out, const struct step_oci_layout *l, const char *digest,
                      size_t max_bytes, struct sw_err *err);

/* index.json as a new reference. */
int step_oci_index_read(json_t **out, const struct step_oci_layout *l, struct sw_err *err);
/*
 * Point the ref name `ref` (e.g. "latest") at the manifest `desc`, replacing
 * any entry with the same name; `ref` NULL adds an untagged entry. Atomic and
 * idempotent.
 */
int step_oci_ref_set(struct step_oci_layout *l, const char *ref, const struct step_oci_desc *desc,
                     struct sw_err *err);
/*
 * Find the manifest named `ref`; `ref` NULL picks the only entry of
 * index.json. SW_ENOTFOUND when absent, SW_EINVAL when `ref` is NULL and the
 * index does not hold exactly one entry.
 */
int step_oci_ref_resolve(struct step_oci_desc *out, const struct step_oci_layout *l,
                         const char *ref, struct sw_err *err);

/* Fill a descriptor from its JSON form; SW_EINVAL names the bad field. */
int step_oci_desc_parse(struct step_oci_desc *out, const json_t *obj, struct sw_err *err);
/* A new JSON object {"mediaType","digest","size"}. */
json_t *step_oci_desc_json(const struct step_oci_desc *d);

/*
 * Parse an image manifest. `media_type` is the type the registry or index
 * announced (may be NULL: taken from the document). Index types give
 * SW_EINVAL with a message saying so; unknown types are refused by name.
 * Release with step_oci_manifest_release().
 */
int step_oci_manifest_parse(struct step_oci_manifest *out, const char *media_type, const char *data,
                            size_t len, struct sw_err *err);
void step_oci_manifest_release(struct step_oci_manifest *m);

/* True for the two index media types (OCI index and Docker manifest list). */
bool step_oci_mt_is_index(const char *media_type);
/* True for the two image manifest media types. */
bool step_oci_mt_is_manifest(const char *media_type);

#endif /* SW_STEPS_OCI_H */
