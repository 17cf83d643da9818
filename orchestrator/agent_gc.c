/*
 * agent_gc.c - image garbage collection under disk pressure, as the
 * kubelet's image GC: when the filesystem of the node's image store is
 * used above SLIPWAY_IMAGE_GC_HIGH percent, images no pod of this node
 * uses are removed, least recently used first, until usage is at or below
 * SLIPWAY_IMAGE_GC_LOW percent (or nothing unused is left). Removing an
 * image drops its name from the store's index.json, then every blob and
 * unpacked layer directory that no remaining image references.
 *
 * "Recently used" is the last time a container of this agent started from
 * the image (agent_gc_touch); images not started since the agent came up
 * count as the oldest. The check runs at most every GC_PERIOD_MS, on the
 * reconcile thread, which owns the pod table; it holds the store lock of
 * the pull workers while it rewrites the index and deletes blobs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "steps/oci.h"
#include "common/banned.h"

#define GC_PERIOD_MS 5000

/* Used percent of the filesystem holding `dir`, as df counts it; -1 when unknown. */
static int usage_percent(const char *dir)
{
        struct statvfs sv;
        unsigned long long used, avail;

        if (statvfs(dir, &sv) != 0 || sv.f_blocks == 0)
                return -1;
        used = (unsigned long long)(sv.f_blocks - sv.f_bfree);
        avail = (unsigned long long)sv.f_bavail;
        if (used + avail == 0)
                return -1;
        return (int)((used * 100 + used + avail - 1) / (used + avail));
}

void agent_gc_touch(struct orch_agent *a, const char *image)
{
        json_object_set_new(a->image_used, image, json_integer(sw_now_ms()));
}

/* Is `image` the image of a container of a pod this agent has? */
static bool in_use(const struct orch_agent *a, const char *image)
{
        for (const struct agent_pod *p = a->pods; p; p = p->next) {
                if (p->gone)
                        continue;
                for (size_t i = 0; i < p->nctrs; i++)
                        if (!strcmp(p->ctrs[i].image, image))
                                return true;
        }
        return false;
}

/* Add the manifest `digest`'s blobs (itself, config, layers) to `keep`. */
static void mark(json_t *keep, const struct step_oci_layout *l, const char *digest,
                 const char *media_type)
{
        struct step_oci_manifest m = {0};
        struct sw_err ignored = SW_ERR_INIT;
        char *text = NULL;
        size_t len = 0;

        json_object_set_new(keep, digest, json_true());
        if (step_oci_blob_read(&text, &len, l, digest, STEP_OCI_MANIFEST_MAX_BYTES, &ignored) ||
            step_oci_manifest_parse(&m, media_type, text, len, &ignored))
                goto out;
        json_object_set_new(keep, m.config.digest, json_true());
        for (size_t i = 0; i < m.n_layers; i++)
                json_object_set_new(keep, m.layers[i].digest, json_true());
out:
        step_oci_manifest_release(&m);
        free(text);
}

/* Remove files of `dir` named <hex> whose "sha256:<hex>" is not in `keep`. */
static size_t sweep(const char *dir, const json_t *keep, bool dirs)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t n = 0;

        while (d && (e = readdir(d))) {
                char digest[SW_DIGEST_STR_LEN + 8], *path;
                struct sw_err ignored = SW_ERR_INIT;

                if (e->d_name[0] == '.' || strlen(e->d_name) != 64)
                        continue;
                snprintf(digest, sizeof(digest), "sha256:%.64s", e->d_name);
                if (json_object_get(keep, digest))
                        continue;
                path = sw_xasprintf("%s/%s", dir, e->d_name);
                if (dirs ? sw_rm_rf(path, &ignored) == 0 : unlink(path) == 0)
                        n++;
                free(path);
        }
        if (d)
                closedir(d);
        return n;
}

/*
 * Remove image `ref` from the store: its index entry, then every blob and
 * unpacked layer no remaining image references.
 */
static int remove_image(struct orch_agent *a, const char *ref, struct sw_err *err)
{
        char *layout_dir = sw_xasprintf("%s/images", a->root);
        char *blobs = sw_xasprintf("%s/images/blobs/sha256", a->root);
        char *layers = sw_xasprintf("%s/layers", a->root);
        char *index = sw_xasprintf("%s/images/index.json", a->root);
        struct step_oci_layout *l = NULL;
        json_t *idx = NULL, *list, *keep = json_object();
        char *text = NULL;
        size_t i;
        int rc;

        if (a->pulls)
                agent_pulls_lock(a->pulls, true);
        rc = step_oci_layout_open(&l, layout_dir, false, err);
        if (rc == 0)
                rc = step_oci_index_read(&idx, l, err);
        if (rc)
                goto out;
        list = json_object_get(idx, "manifests");
        for (i = 0; i < json_array_size(list);) {
                const json_t *e = json_array_get(list, i);
                if (!strcmp(sw_json_str(json_object_get(e, "annotations"), STEP_OCI_REF_ANNOTATION,
                                        ""),
                            ref)) {
                        json_array_remove(list, i);
                        continue;
                }
                mark(keep, l, sw_json_str(e, "digest", ""), sw_json_str(e, "mediaType", ""));
                i++;
        }
        text = sw_json_dump(idx);
        rc = sw_write_file_atomic(index, text, strlen(text), 0644, err);
        if (rc)
                goto out;
        sweep(blobs, keep, false);
        sweep(layers, keep, true);
        json_object_del(a->images, ref);
        json_object_del(a->image_used, ref);
out:
        if (a->pulls)
                agent_pulls_lock(a->pulls, false);
        step_oci_layout_free(l);
        json_decref(idx);
        json_decref(keep);
        free(text);
        free(layout_dir);
        free(blobs);
        free(layers);
        free(index);
        return rc;
}

void agent_gc_run(struct orch_agent *a)
{
        char *layout_dir = sw_xasprintf("%s/images", a->root);
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        json_t *idx = NULL;
        const json_t *e;
        const char **refs = NULL;
        size_t n = 0, i;
        int usage;
        int64_t now = sw_mono_ms();

        if (now < a->next_gc_mono)
                goto out;
        a->next_gc_mono = now + GC_PERIOD_MS;
        usage = usage_percent(a->root);
        if (usage < 0 || usage <= a->o.cfg->image_gc_high)
                goto out;
        if (step_oci_layout_open(&l, layout_dir, false, &err) || step_oci_index_read(&idx, l, &err))
                goto out;
        refs = sw_xcalloc(json_array_size(json_object_get(idx, "manifests")) + 1, sizeof(*refs));
        json_array_foreach(json_object_get(idx, "manifests"), i, e)
        {
                const char *ref = sw_json_str(json_object_get(e, "annotations"),
                                              STEP_OCI_REF_ANNOTATION, NULL);
                if (ref && !in_use(a, ref))
                        refs[n++] = ref;
        }
        /* Least recently used first (never used by this agent run: oldest). */
        for (size_t x = 1; x < n; x++)
                for (size_t y = x; y > 0 && sw_json_int(a->image_used, refs[y - 1], 0) >
                                                    sw_json_int(a->image_used, refs[y], 0);
                     y--) {
                        const char *t = refs[y];
                        refs[y] = refs[y - 1];
                        refs[y - 1] = t;
                }
        sw_log(SW_LOG_INFO, "orch_agent", "image garbage collection", "{s:s,s:i,s:I,s:I,s:i}",
               "node", a->node_name, "usage_percent", usage, "high_percent",
               (json_int_t)a->o.cfg->image_gc_high, "low_percent",
               (json_int_t)a->o.cfg->image_gc_low, "unused_images", (int)n);
        for (i = 0; i < n; i++) {
                if (remove_image(a, refs[i], &err) != 0) {
                        agent_log_err(a, "image garbage collection", NULL, &err);
                        break;
                }
                sw_log(SW_LOG_INFO, "orch_agent", "image removed", "{s:s,s:s}", "node",
                       a->node_name, "image", refs[i]);
                usage = usage_percent(a->root);
                if (usage >= 0 && usage <= a->o.cfg->image_gc_low)
                        break;
        }
out:
        free(refs);
        json_decref(idx);
        step_oci_layout_free(l);
        free(layout_dir);
}
