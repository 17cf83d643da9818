/*
 * oci_layout.c - the OCI image layout: creation, verified blob writes that
 * leave nothing behind on a mismatch, index.json names, manifest parsing.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "steps/oci.h"
#include "tests/harness/t.h"

#define OK(call)                                                                                   \
        do {                                                                                       \
                sw_err_clear(&err);                                                                \
                CHECK_OK(call, &err);                                                              \
        } while (0)

static char *fresh_dir(const char *name)
{
        return sw_xasprintf("%s/%s", t_tmpdir(), name);
}

static int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;

        while (d && (e = readdir(d)) != NULL)
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        n++;
        if (d)
                closedir(d);
        return n;
}

static void test_create_and_open(void)
{
        char *dir = fresh_dir("create");
        char *text = NULL, *p;
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        json_t *idx = NULL;

        CHECK_INT(step_oci_layout_open(&l, dir, false, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "not an OCI image layout") != NULL);
        OK(step_oci_layout_open(&l, dir, true, &err));
        p = sw_xasprintf("%s/oci-layout", dir);
        OK(sw_read_file(&text, NULL, p, 0, &err));
        CHECK_STR(text, "{\"imageLayoutVersion\":\"1.0.0\"}");
        OK(step_oci_index_read(&idx, l, &err));
        CHECK_INT(json_array_size(json_object_get(idx, "manifests")), 0);
        CHECK_INT(sw_json_int(idx, "schemaVersion", 0), 2);
        json_decref(idx);
        step_oci_layout_free(l);
        l = NULL;
        /* Opening again keeps what is there. */
        OK(step_oci_layout_open(&l, dir, false, &err));
        step_oci_layout_free(l);
        l = NULL;
        /* A layout of an unknown major version is refused. */
        OK(sw_write_file_atomic(p, "{\"imageLayoutVersion\":\"2.0.0\"}", 30, 0644, &err));
        sw_err_clear(&err);
        CHECK_INT(step_oci_layout_open(&l, dir, false, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "2.0.0") != NULL);
        free(text);
        free(p);
        free(dir);
}

static void test_blobs(void)
{
        char *dir = fresh_dir("blobs");
        char *blob_dir = sw_xasprintf("%s/blobs/sha256", dir);
        struct step_oci_layout *l = NULL;
        struct step_oci_blob_writer *w = NULL;
        struct sw_err err = SW_ERR_INIT;
        char d[SW_DIGEST_STR_LEN], d2[SW_DIGEST_STR_LEN], expect[SW_DIGEST_STR_LEN];
        char *data = NULL, *path;
        int64_t size = 0;
        size_t len = 0;

        OK(step_oci_layout_open(&l, dir, true, &err));
        sw_sha256_digest(expect, "hello", 5);
        OK(step_oci_blob_add_mem(d, l, "hello", 5, &err));
        CHECK_STR(d, expect);
        CHECK(step_oci_blob_exists(l, d, &size));
        CHECK_INT(size, 5);
        OK(step_oci_blob_add_mem(d2, l, "hello", 5, &err)); /* idempotent */
        CHECK_STR(d2, d);
        CHECK_INT(count_entries(blob_dir), 1);
        OK(step_oci_blob_read(&data, &len, l, d, 100, &err));
        CHECK_INT(len, 5);
        CHECK(memcmp(data, "hello", 5) == 0);
        free(data);
        data = NULL;

        /* A writer whose content does not match leaves nothing behind. */
        sw_sha256_digest(expect, "other", 5);
        OK(step_oci_blob_begin(&w, l, expect, 5, &err));
        OK(step_oci_blob_write(w, "wrong", 5, &err));
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_commit(NULL, NULL, w, &err), SW_ECORRUPT);
        CHECK(strstr(err.msg, "digest mismatch") != NULL);
        CHECK_INT(count_entries(blob_dir), 1);
        CHECK(!step_oci_blob_exists(l, expect, NULL));

        /* Too many bytes fail at once; too few fail at commit. */
        OK(step_oci_blob_begin(&w, l, expect, 5, &err));
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_write(w, "other and more", 14, &err), SW_ECORRUPT);
        step_oci_blob_abort(w);
        OK(step_oci_blob_begin(&w, l, expect, 5, &err));
        OK(step_oci_blob_write(w, "oth", 3, &err));
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_commit(NULL, NULL, w, &err), SW_ECORRUPT);
        CHECK_INT(count_entries(blob_dir), 1);

        /* The right content commits under its digest. */
        OK(step_oci_blob_begin(&w, l, expect, 5, &err));
        OK(step_oci_blob_write(w, "oth", 3, &err));
        OK(step_oci_blob_write(w, "er", 2, &err));
        CHECK_INT(step_oci_blob_written(w), 5);
        OK(step_oci_blob_commit(d2, &size, w, &err));
        CHECK_STR(d2, expect);
        CHECK_INT(count_entries(blob_dir), 2);

        /* A blob damaged on disk is caught when read. */
        path = step_oci_blob_path(l, d);
        OK(sw_write_file_atomic(path, "jello", 5, 0644, &err));
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_read(&data, &len, l, d, 100, &err), SW_ECORRUPT);
        free(path);
        /* Absent and invalid digests. */
        sw_err_clear(&err);
        sw_sha256_digest(expect, "absent", 6);
        CHECK_INT(step_oci_blob_read(&data, &len, l, expect, 100, &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_read(&data, &len, l, "sha256:../../etc", 100, &err), SW_EINVAL);
        CHECK(!step_oci_blob_exists(l, "sha256:../../etc/passwd", NULL));
        path = step_oci_blob_path(l, "../../x");
        CHECK(strstr(path, "..") == NULL || strstr(path, ".invalid-digest") != NULL);
        free(path);
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_begin(&w, l, "md5:abc", -1, &err), SW_EINVAL);

        step_oci_layout_free(l);
        free(blob_dir);
        free(dir);
}

static void test_staged(void)
{
        char *dir = fresh_dir("staged");
        char *blob_dir = sw_xasprintf("%s/blobs/sha256", dir);
        struct step_oci_layout *l = NULL;
        struct step_oci_blob_writer *w = NULL;
        struct step_oci_staged *st = NULL;
        struct sw_err err = SW_ERR_INIT;
        char da[SW_DIGEST_STR_LEN], db[SW_DIGEST_STR_LEN], dc[SW_DIGEST_STR_LEN];

        OK(step_oci_layout_open(&l, dir, true, &err));
        sw_sha256_digest(da, "alpha", 5);
        sw_sha256_digest(db, "beta", 4);
        sw_sha256_digest(dc, "gamma", 5);
        OK(step_oci_blob_begin(&w, l, da, 5, &err));
        OK(step_oci_blob_write(w, "alpha", 5, &err));
        OK(step_oci_blob_stage(&st, w, &err));
        OK(step_oci_blob_begin(&w, l, db, 4, &err));
        OK(step_oci_blob_write(w, "beta", 4, &err));
        OK(step_oci_blob_stage(&st, w, &err));
        /* A mismatch is refused at once and leaves the staging as it was. */
        OK(step_oci_blob_begin(&w, l, dc, 5, &err));
        OK(step_oci_blob_write(w, "gamme", 5, &err));
        sw_err_clear(&err);
        CHECK_INT(step_oci_blob_stage(&st, w, &err), SW_ECORRUPT);
        /* Staged blobs are not visible until published. */
        CHECK(!step_oci_blob_exists(l, da, NULL));
        CHECK(!step_oci_blob_exists(l, db, NULL));
        CHECK_INT(count_entries(blob_dir), 2); /* the two temporaries */
        OK(step_oci_staged_publish(st, &err));
        CHECK(step_oci_blob_exists(l, da, NULL));
        CHECK(step_oci_blob_exists(l, db, NULL));
        CHECK(!step_oci_blob_exists(l, dc, NULL));
        CHECK_INT(count_entries(blob_dir), 2);

        /* Dropped instead of published: nothing stays behind. */
        st = NULL;
        OK(step_oci_blob_begin(&w, l, dc, 5, &err));
        OK(step_oci_blob_write(w, "gamma", 5, &err));
        OK(step_oci_blob_stage(&st, w, &err));
        step_oci_staged_free(st);
        CHECK(!step_oci_blob_exists(l, dc, NULL));
        CHECK_INT(count_entries(blob_dir), 2);
        OK(step_oci_staged_publish(NULL, &err));
        step_oci_layout_free(l);
        free(blob_dir);
        free(dir);
}

static void test_stale_tmp_removed(void)
{
        char *dir = fresh_dir("stale");
        char *old_tmp = sw_xasprintf("%s/blobs/sha256/.tmp-old", dir);
        char *new_tmp = sw_xasprintf("%s/blobs/sha256/.tmp-new", dir);
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct timeval tv[2];

        OK(step_oci_layout_open(&l, dir, true, &err));
        step_oci_layout_free(l);
        l = NULL;
        OK(sw_write_file_atomic(old_tmp, "x", 1, 0644, &err));
        OK(sw_write_file_atomic(new_tmp, "y", 1, 0644, &err));
        gettimeofday(&tv[0], NULL);
        tv[0].tv_sec -= 7200;
        tv[1] = tv[0];
        CHECK_INT(utimes(old_tmp, tv), 0);
        OK(step_oci_layout_open(&l, dir, false, &err));
        CHECK(access(old_tmp, F_OK) != 0);
        CHECK(access(new_tmp, F_OK) == 0);
        step_oci_layout_free(l);
        free(old_tmp);
        free(new_tmp);
        free(dir);
}

static void test_refs(void)
{
        char *dir = fresh_dir("refs");
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct step_oci_desc a, b, got;
        json_t *idx = NULL;

        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        OK(step_oci_layout_open(&l, dir, true, &err));
        snprintf(a.media_type, sizeof(a.media_type), "%s", STEP_OCI_MT_MANIFEST);
        b = a;
        OK(step_oci_blob_add_mem(a.digest, l, "{\"a\":1}", 7, &err));
        a.size = 7;
        OK(step_oci_blob_add_mem(b.digest, l, "{\"b\":2}", 7, &err));
        b.size = 7;

        sw_err_clear(&err);
        CHECK_INT(step_oci_ref_resolve(&got, l, NULL, &err), SW_EINVAL); /* empty index */
        OK(step_oci_ref_set(l, "v1", &a, &err));
        OK(step_oci_ref_resolve(&got, l, NULL, &err)); /* the only one */
        CHECK_STR(got.digest, a.digest);
        OK(step_oci_ref_set(l, "v2", &b, &err));
        OK(step_oci_ref_resolve(&got, l, "v2", &err));
        CHECK_STR(got.digest, b.digest);
        CHECK_INT(got.size, 7);
        CHECK_STR(got.media_type, STEP_OCI_MT_MANIFEST);
        /* Re-pointing a name replaces its entry. */
        OK(step_oci_ref_set(l, "v1", &b, &err));
        OK(step_oci_ref_resolve(&got, l, "v1", &err));
        CHECK_STR(got.digest, b.digest);
        OK(step_oci_index_read(&idx, l, &err));
        CHECK_INT(json_array_size(json_object_get(idx, "manifests")), 2);
        json_decref(idx);
        sw_err_clear(&err);
        CHECK_INT(step_oci_ref_resolve(&got, l, NULL, &err), SW_EINVAL); /* two images */
        sw_err_clear(&err);
        CHECK_INT(step_oci_ref_resolve(&got, l, "v3", &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "'v3'") != NULL);
        /* Unnamed entries are de-duplicated by digest. */
        OK(step_oci_ref_set(l, NULL, &a, &err));
        OK(step_oci_ref_set(l, NULL, &a, &err));
        OK(step_oci_index_read(&idx, l, &err));
        CHECK_INT(json_array_size(json_object_get(idx, "manifests")), 3);
        json_decref(idx);
        step_oci_layout_free(l);
        free(dir);
}

static void test_manifest_parse(void)
{
        struct step_oci_manifest m;
        struct sw_err err = SW_ERR_INIT;
        const char *d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        const char *d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        char *oci = sw_xasprintf(
                "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                "\"digest\":\"%s\",\"size\":10},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
                "\"size\":20}]}",
                STEP_OCI_MT_MANIFEST, STEP_OCI_MT_CONFIG, d1, STEP_OCI_MT_LAYER_GZIP, d2);
        char *untyped = sw_xasprintf("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"%s\","
                                     "\"digest\":\"%s\",\"size\":10},\"layers\":[]}",
                                     STEP_OCI_MT_CONFIG, d1);
        char *bad_digest = sw_xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{"
                                        "\"digest\":\"sha256:xyz\",\"size\":1},\"layers\":[]}",
                                        STEP_OCI_MT_MANIFEST);
        const char *index =
                "{\"schemaVersion\":2,\"mediaType\":\"" STEP_OCI_MT_INDEX "\",\"manifests\":[]}";
        const char *odd = "{\"schemaVersion\":2,\"mediaType\":\"application/x-odd\"}";

        OK(step_oci_manifest_parse(&m, NULL, oci, strlen(oci), &err));
        CHECK_STR(m.media_type, STEP_OCI_MT_MANIFEST);
        CHECK_STR(m.config.digest, d1);
        CHECK_INT(m.config.size, 10);
        CHECK_INT(m.n_layers, 1);
        CHECK_STR(m.layers[0].digest, d2);
        CHECK_STR(m.layers[0].media_type, STEP_OCI_MT_LAYER_GZIP);
        step_oci_manifest_release(&m);

        OK(step_oci_manifest_parse(&m, NULL, untyped, strlen(untyped), &err));
        CHECK_STR(m.media_type, STEP_OCI_MT_MANIFEST);
        CHECK_INT(m.n_layers, 0);
        step_oci_manifest_release(&m);
        OK(step_oci_manifest_parse(&m, STEP_OCI_MT_DOCKER_MANIFEST, untyped, strlen(untyped),
                                   &err));
        CHECK_STR(m.media_type, STEP_OCI_MT_DOCKER_MANIFEST);
        step_oci_manifest_release(&m);

        sw_err_clear(&err);
        CHECK_INT(step_oci_manifest_parse(&m, NULL, index, strlen(index), &err), SW_EINVAL);
        CHECK(strstr(err.msg, "image index") != NULL);
        sw_err_clear(&err);
        CHECK_INT(step_oci_manifest_parse(&m, NULL, odd, strlen(odd), &err), SW_EPROTO);
        CHECK(strstr(err.msg, "application/x-odd") != NULL);
        sw_err_clear(&err);
        CHECK_INT(step_oci_manifest_parse(&m, NULL, bad_digest, strlen(bad_digest), &err),
                  SW_EINVAL);
        CHECK(strstr(err.msg, "config") != NULL);
        sw_err_clear(&err);
        CHECK_INT(step_oci_manifest_parse(&m, NULL, "{not json", 9, &err), SW_EINVAL);
        free(oci);
        free(untyped);
        free(bad_digest);
}

int main(void)
{
        T_RUN(test_create_and_open);
        T_RUN(test_blobs);
        T_RUN(test_staged);
        T_RUN(test_stale_tmp_removed);
        T_RUN(test_refs);
        T_RUN(test_manifest_parse);
        return t_done();
}
