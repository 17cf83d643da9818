/*
 * image.h - test images made on the spot: layers are tar files holding one
 * file of pseudo-random bytes (seeded, so reproducible), gzip-wrapped without
 * compression (stored blocks: valid gzip at memcpy speed), plus a config and
 * a manifest, written into an OCI image layout. No network involved.
 */
#ifndef SW_TEST_IMAGE_H
#define SW_TEST_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "steps/oci.h"

struct t_image_spec {
        int n_layers;
        int64_t layer_bytes;  /* size of the file inside each layer */
        uint64_t seed;        /* different seeds give different layers */
        bool docker;          /* Docker v2 media types instead of OCI */
        const char *ref_name; /* index.json name; NULL for none */
};

/* Build the image in the layout at `dir` (created when missing); 0 or -1 (message printed). */
int t_image_make(struct step_oci_desc *manifest_out, const char *dir,
                 const struct t_image_spec *spec);

/* Write a layout whose only manifest has media type `media_type` (for the unknown-type fault). */
int t_image_make_odd(struct step_oci_desc *manifest_out, const char *dir, const char *media_type);

#endif /* SW_TEST_IMAGE_H */
