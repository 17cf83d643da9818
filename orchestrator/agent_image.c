/*
 * agent_image.c - the node's content store: images pulled through the
 * registry client into one OCI layout (<root>/images, each named by the
 * pod's image reference), and every layer unpacked once per digest into
 * <root>/layers/<hex> with overlay whiteouts, ready to be an overlay lower
 * directory. Unpacking goes through a temporary sibling and a rename, so a
 * layer dir is whole or absent. Pulls happen on the workers of
 * agent_pull.c; this file only reads the store and unpacks, on the
 * reconcile thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "steps/layer.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "common/banned.h"

static int unpack_layer(char **dir_out, struct orch_agent *a, struct step_oci_layout *l,
                        const struct step_oci_desc *d, struct sw_err *err)
{
        struct step_layer_unpack_options uo = STEP_LAYER_UNPACK_OPTIONS_INIT;
        char *dir = sw_xasprintf("%s/layers/%s", a->root, d->digest + 7);
        char *blob = step_oci_blob_path(l, d->digest);
        struct stat st;
        int rc = 0;

        if (stat(dir, &st) != 0) {
                uo.expected_digest = d->digest;
                uo.expected_size = d->size;
                uo.whiteouts = STEP_LAYER_WHITEOUT_OVERLAY;
                rc = step_layer_unpack(NULL, blob, dir, &uo, err);
                if (rc == SW_EEXIST) {
                        sw_err_clear(err);
                        rc = 0;
                }
        }
        free(blob);
        if (rc) {
                free(dir);
                return rc;
        }
        *dir_out = dir;
        return 0;
}

int agent_image_ensure(struct agent_image *out, struct orch_agent *a, const char *image,
                       struct sw_err *err)
{
        struct step_oci_layout *l = NULL;
        struct step_oci_manifest m = {0};
        struct step_oci_desc desc;
        struct agent_image img = {0};
        char *layers_dir = sw_xasprintf("%s/layers", a->root);
        char *layout_dir = sw_xasprintf("%s/images", a->root);
        char *text = NULL;
        size_t len = 0;
        json_t *cfg = NULL;
        int rc;

        rc = sw_mkdir_p(layers_dir, 0700, err);
        if (rc == 0)
                rc = step_oci_layout_open(&l, layout_dir, true, err);
        if (rc == 0)
                rc = step_oci_ref_resolve(&desc, l, image, err);
        if (rc)
                goto out;
        rc = step_oci_blob_read(&text, &len, l, desc.digest, STEP_OCI_MANIFEST_MAX_BYTES, err);
        if (rc == 0)
                rc = step_oci_manifest_parse(&m, desc.media_type, text, len, err);
        if (rc == 0)
                rc = step_oci_json_get(&cfg, l, m.config.digest, STEP_OCI_CONFIG_MAX_BYTES, err);
        if (rc)
                goto out;
        snprintf(img.digest, sizeof(img.digest), "%s", desc.digest);
        img.config = json_object_get(cfg, "config");
        img.config =
                img.config && json_is_object(img.config) ? json_incref(img.config) : json_object();
        img.lowers = sw_xcalloc(m.n_layers + 1, sizeof(*img.lowers));
        img.cap = m.n_layers + 1;
        for (size_t i = 0; i < m.n_layers; i++) {
                /* Top layer first, as overlayfs wants its lowerdir list. */
                rc = unpack_layer(&img.lowers[m.n_layers - 1 - i], a, l, &m.layers[i], err);
                if (rc)
                        goto out;
                img.nlowers++;
        }
        if (m.n_layers == 0) {
                rc = sw_err_set(err, SW_EINVAL, "image \"%s\" has no layers", image);
                goto out;
        }
        *out = img;
        memset(&img, 0, sizeof(img));
out:
        if (rc)
                sw_err_wrap(err, "image \"%s\"", image);
        agent_image_release(&img);
        step_oci_manifest_release(&m);
        step_oci_layout_free(l);
        json_decref(cfg);
        free(text);
        free(layers_dir);
        free(layout_dir);
        return rc;
}

void agent_image_release(struct agent_image *img)
{
        if (!img)
                return;
        json_decref(img->config);
        for (size_t i = 0; i < img->cap; i++)
                free(img->lowers[i]);
        free(img->lowers);
        memset(img, 0, sizeof(*img));
}
