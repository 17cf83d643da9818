/*
 * image.c - reproducible test images: tar layers of seeded random bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/mem.h"
#include "tests/harness/image.h"
#include "common/banned.h"

#define CHUNK ((size_t)1 << 20)

struct layer_out {
        struct step_oci_blob_writer *w;
        struct sw_sha256 *diff; /* of the uncompressed tar */
        z_stream z;
        unsigned char *zbuf;
        struct sw_err err;
        int failed;
};

static void emit(struct layer_out *lo, const void *data, size_t len, int flush)
{
        lo->z.next_in = (unsigned char *)data;
        lo->z.avail_in = (uInt)len;
        sw_sha256_update(lo->diff, data, len);
        do {
                lo->z.next_out = lo->zbuf;
                lo->z.avail_out = (uInt)CHUNK;
                deflate(&lo->z, flush);
                if (!lo->failed &&
                    step_oci_blob_write(lo->w, lo->zbuf, CHUNK - lo->z.avail_out, &lo->err) != 0)
                        lo->failed = 1;
        } while (lo->z.avail_out == 0);
}

static void tar_header(unsigned char h[512], const char *name, int64_t size)
{
        unsigned sum = 0;

        memset(h, 0, 512);
        snprintf((char *)h, 100, "%s", name);
        snprintf((char *)h + 100, 8, "%07o", 0644);
        snprintf((char *)h + 108, 8, "%07o", 0);
        snprintf((char *)h + 116, 8, "%07o", 0);
        snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
        snprintf((char *)h + 136, 12, "%011llo", 1700000000ULL);
        memset(h + 148, ' ', 8);
        h[156] = '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        h[155] = ' ';
}

static uint64_t xorshift(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        return x;
}

/* One layer: returns 0 and its blob digest, size and diff_id. */
static int make_layer(char digest[SW_DIGEST_STR_LEN], int64_t *size,
                      char diff_id[SW_DIGEST_STR_LEN], struct step_oci_layout *l, int idx,
                      int64_t bytes, uint64_t seed)
{
        struct layer_out lo;
        unsigned char hdr[512], *buf = sw_xmalloc(CHUNK);
        uint64_t s = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)idx * 7919 + 1;
        char name[64];
        int64_t left = bytes, pad;
        int rc;

        memset(&lo, 0, sizeof(lo));
        lo.zbuf = sw_xmalloc(CHUNK);
        lo.diff = sw_sha256_new();
        deflateInit2(&lo.z, 0, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        if (step_oci_blob_begin(&lo.w, l, NULL, -1, &lo.err) != 0) {
                fprintf(stderr, "%s\n", lo.err.msg);
                return -1;
        }
        snprintf(name, sizeof(name), "layer%d/data.bin", idx);
        tar_header(hdr, name, bytes);
        emit(&lo, hdr, 512, Z_NO_FLUSH);
        while (left > 0) {
                size_t n = left > (int64_t)CHUNK ? CHUNK : (size_t)left;
                for (size_t i = 0; i + 8 <= CHUNK; i += 8) {
                        uint64_t v = xorshift(&s);
                        memcpy(buf + i, &v, 8);
                }
                emit(&lo, buf, n, Z_NO_FLUSH);
                left -= (int64_t)n;
        }
        memset(buf, 0, 1536);
        pad = (512 - bytes % 512) % 512;
        emit(&lo, buf, (size_t)pad + 1024, Z_FINISH);
        deflateEnd(&lo.z);
        sw_sha256_final(lo.diff, diff_id);
        sw_sha256_free(lo.diff);
        free(lo.zbuf);
        free(buf);
        if (lo.failed) {
                fprintf(stderr, "%s\n", lo.err.msg);
                step_oci_blob_abort(lo.w);
                return -1;
        }
        rc = step_oci_blob_commit(digest, size, lo.w, &lo.err);
        if (rc)
                fprintf(stderr, "%s\n", lo.err.msg);
        return rc ? -1 : 0;
}

int t_image_make(struct step_oci_desc *manifest_out, const char *dir,
                 const struct t_image_spec *spec)
{
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct step_oci_desc cfg_desc, mdesc;
        json_t *diff_ids = json_array(), *layers = json_array(), *cfg = NULL, *man = NULL;
        const char *layer_mt = spec->docker ? STEP_OCI_MT_DOCKER_LAYER : STEP_OCI_MT_LAYER_GZIP;
        int rc = -1;

        memset(&cfg_desc, 0, sizeof(cfg_desc));
        memset(&mdesc, 0, sizeof(mdesc));
        if (step_oci_layout_open(&l, dir, true, &err) != 0)
                goto out;
        for (int i = 0; i < spec->n_layers; i++) {
                struct step_oci_desc d;
                char diff[SW_DIGEST_STR_LEN];

                memset(&d, 0, sizeof(d));
                snprintf(d.media_type, sizeof(d.media_type), "%s", layer_mt);
                if (make_layer(d.digest, &d.size, diff, l, i, spec->layer_bytes, spec->seed) != 0)
                        goto out;
                json_array_append_new(diff_ids, json_string(diff));
                json_array_append_new(layers, step_oci_desc_json(&d));
        }
        cfg = json_pack("{s:s,s:s,s:s,s:{s:[s],s:s},s:{s:s,s:O},s:[{s:s,s:s}]}", "created",
                        "2023-11-14T22:13:20Z", "architecture", "amd64", "os", "linux", "config",
                        "Cmd", "/bin/true", "WorkingDir", "/", "rootfs", "type", "layers",
                        "diff_ids", diff_ids, "history", "created", "2023-11-14T22:13:20Z",
                        "created_by", "slipway test image");
        snprintf(cfg_desc.media_type, sizeof(cfg_desc.media_type), "%s",
                 spec->docker ? STEP_OCI_MT_DOCKER_CONFIG : STEP_OCI_MT_CONFIG);
        if (step_oci_json_put(cfg_desc.digest, &cfg_desc.size, l, cfg, &err) != 0)
                goto out;
        snprintf(mdesc.media_type, sizeof(mdesc.media_type), "%s",
                 spec->docker ? STEP_OCI_MT_DOCKER_MANIFEST : STEP_OCI_MT_MANIFEST);
        man = json_pack("{s:i,s:s,s:o,s:O}", "schemaVersion", 2, "mediaType", mdesc.media_type,
                        "config", step_oci_desc_json(&cfg_desc), "layers", layers);
        if (step_oci_json_put(mdesc.digest, &mdesc.size, l, man, &err) != 0)
                goto out;
        if (step_oci_ref_set(l, spec->ref_name, &mdesc, &err) != 0)
                goto out;
        *manifest_out = mdesc;
        rc = 0;
out:
        if (rc && err.code)
                fprintf(stderr, "t_image_make: %s\n", err.msg);
        json_decref(diff_ids);
        json_decref(layers);
        json_decref(cfg);
        json_decref(man);
        step_oci_layout_free(l);
        return rc;
}

int t_image_make_odd(struct step_oci_desc *manifest_out, const char *dir, const char *media_type)
{
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct step_oci_desc d;
        json_t *man;
        int rc = -1;

        memset(&d, 0, sizeof(d));
        if (step_oci_layout_open(&l, dir, true, &err) != 0)
                goto out;
        man = json_pack("{s:i,s:s,s:{}}", "schemaVersion", 2, "mediaType", media_type, "payload");
        snprintf(d.media_type, sizeof(d.media_type), "%s", media_type);
        rc = step_oci_json_put(d.digest, &d.size, l, man, &err);
        json_decref(man);
        if (rc == 0)
                rc = step_oci_ref_set(l, "odd", &d, &err);
        if (rc == 0)
                *manifest_out = d;
out:
        if (rc)
                fprintf(stderr, "t_image_make_odd: %s\n", err.msg);
        step_oci_layout_free(l);
        return rc ? -1 : 0;
}
