/*
 * roundtrip.c - push and pull against a real docker-registry in its three
 * auth modes (open, htpasswd Basic, token), checked by skopeo: an image
 * slipway pushed is inspected and copied back by skopeo with the same
 * digest, and an image skopeo pushed is pulled by slipway with the same
 * digest. Also: skipping blobs the registry has, cross-repository mounts,
 * chunked uploads, Docker v2 media types.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "tests/harness/image.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

struct tally {
        int n[5];
        int64_t bytes;
};

/* Every call starts with an empty error, so a failure shows its own message. */
#define OK(call)                                                                                   \
        do {                                                                                       \
                sw_err_clear(&err);                                                                \
                CHECK_OK(call, &err);                                                              \
        } while (0)

static void count(void *arg, const struct step_registry_progress *p)
{
        struct tally *t = arg;

        t->n[p->result]++;
        t->bytes += p->size;
}

static struct step_registry *client(const struct t_registry *reg, int64_t chunk, struct tally *t)
{
        struct step_registry_options o = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *r = NULL;
        struct sw_err err = SW_ERR_INIT;

        o.host = reg->host;
        o.insecure = "127.0.0.1:*";
        if (reg->mode != T_REG_OPEN) {
                o.user = T_REG_USER;
                o.password = T_REG_PASSWORD;
        }
        o.chunk_bytes = chunk;
        o.progress = count;
        o.progress_arg = t;
        OK(step_registry_new(&r, &o, &err));
        return r;
}

static char *layout_path(const char *name, enum t_reg_mode mode)
{
        return sw_xasprintf("%s/%s-%d", t_tmpdir(), name, (int)mode);
}

/* The digest a layout names `ref`. */
static void layout_digest(char *out, const char *dir, const char *ref)
{
        struct step_oci_layout *l = NULL;
        struct step_oci_desc d;
        struct sw_err err = SW_ERR_INIT;

        out[0] = '\0';
        OK(step_oci_layout_open(&l, dir, false, &err));
        if (l && step_oci_ref_resolve(&d, l, ref, &err) == 0)
                snprintf(out, SW_DIGEST_STR_LEN, "%s", d.digest);
        step_oci_layout_free(l);
}

static size_t put_read(char *buf, size_t size, size_t n, void *arg)
{
        const char **p = arg;
        size_t len = strlen(*p);

        if (len > size * n)
                len = size * n;
        memcpy(buf, *p, len);
        *p += len;
        return len;
}

/*
 * An image index with an arm64 and an amd64 entry (PUT with plain libcurl):
 * slipway takes the linux/amd64 manifest.
 */
static void pull_from_index(const struct t_registry *reg, const struct step_oci_desc *amd64,
                            struct step_oci_layout *dst)
{
        struct t_image_spec aspec = {1, 10 << 10, 99, false, "arm"};
        char *adir = sw_xasprintf("%s/arm64", t_tmpdir());
        struct step_oci_layout *al = NULL;
        struct step_oci_desc arm64;
        char *index = NULL, *url = NULL;
        const char *cursor;
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: " STEP_OCI_MT_INDEX);
        CURL *c = curl_easy_init();
        long status = 0;
        struct step_registry *r;
        struct step_oci_desc got;
        struct sw_err err = SW_ERR_INIT;
        struct tally t = {0};

        /* The arm64 entry comes first and must be passed over. */
        CHECK_INT(t_image_make(&arm64, adir, &aspec), 0);
        OK(step_oci_layout_open(&al, adir, false, &err));
        r = client(reg, 0, &t);
        OK(step_registry_push(NULL, r, al, "arm", "team/app", "arm", NULL, &err));
        step_registry_free(r);
        step_oci_layout_free(al);
        index = sw_xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
                             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%lld,\"platform\":{"
                             "\"architecture\":\"arm64\",\"os\":\"linux\"}},"
                             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%lld,\"platform\":{"
                             "\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
                             STEP_OCI_MT_INDEX, STEP_OCI_MT_MANIFEST, arm64.digest,
                             (long long)arm64.size, STEP_OCI_MT_MANIFEST, amd64->digest,
                             (long long)amd64->size);
        url = sw_xasprintf("http://%s/v2/team/app/manifests/multi", reg->host);
        cursor = index;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, put_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &cursor);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)strlen(index));
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        CHECK_INT(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        CHECK_INT(status, 201);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);

        r = client(reg, 0, &t);
        OK(step_registry_pull(&got, r, "team/app", "multi", dst, "multi", &err));
        CHECK_STR(got.digest, amd64->digest);
        CHECK_STR(got.media_type, STEP_OCI_MT_MANIFEST);
        step_registry_free(r);
        free(index);
        free(url);
        free(adir);
}

static void roundtrip(enum t_reg_mode mode)
{
        struct t_registry *reg = t_registry_start(mode);
        struct sw_err err = SW_ERR_INIT;
        struct step_oci_desc made, pulled, sk;
        struct step_oci_layout *src = NULL, *dst = NULL;
        struct step_registry *r = NULL;
        struct tally t = {0};
        char digest[SW_DIGEST_STR_LEN], seen[SW_DIGEST_STR_LEN];
        char *src_dir = layout_path("src", mode), *back_dir = layout_path("back", mode);
        char *pull_dir = layout_path("pull", mode), *sk_dir = layout_path("skopeo", mode);
        char *ref = NULL, *sref = NULL;
        int issued;
        struct t_image_spec spec = {3, 300 << 10, 1 + (uint64_t)mode, false, "v1"};
        struct t_image_spec sspec = {2, 200 << 10, 50 + (uint64_t)mode, false, "v2"};

        CHECK(reg != NULL);
        if (!reg)
                goto out;
        CHECK_INT(t_image_make(&made, src_dir, &spec), 0);
        OK(step_oci_layout_open(&src, src_dir, false, &err));

        /* slipway pushes; skopeo sees the same digest and copies it back unchanged. */
        r = client(reg, 0, &t);
        OK(step_registry_push(digest, r, src, "v1", "team/app", "v1", NULL, &err));
        CHECK_STR(digest, made.digest);
        CHECK_INT(t.n[STEP_REGISTRY_UPLOADED], 5); /* 3 layers, config, manifest */
        CHECK_INT(t_skopeo_digest(seen, reg, "team/app:v1"), 0);
        CHECK_STR(seen, made.digest);
        ref = sw_xasprintf("docker://%s/team/app:v1", reg->host);
        sref = sw_xasprintf("oci:%s:v1", back_dir);
        CHECK_INT(t_skopeo_copy(reg, ref, sref), 0);
        layout_digest(seen, back_dir, "v1");
        CHECK_STR(seen, made.digest);

        /* Pushed again: the manifest is there, nothing moves. */
        issued = t_token_server_issued(reg->token);
        memset(&t, 0, sizeof(t));
        OK(step_registry_push(digest, r, src, "v1", "team/app", "v1", NULL, &err));
        CHECK_INT(t.n[STEP_REGISTRY_EXISTED], 1);
        CHECK_INT(t.n[STEP_REGISTRY_UPLOADED], 0);
        /* A new tag: blobs are skipped by HEAD, only the manifest is sent. */
        memset(&t, 0, sizeof(t));
        OK(step_registry_push(digest, r, src, "v1", "team/app", "v1-again", NULL, &err));
        CHECK_INT(t.n[STEP_REGISTRY_EXISTED], 4);
        CHECK_INT(t.n[STEP_REGISTRY_UPLOADED], 1);
        /* Same client, same scope: the cached token served both pushes. */
        CHECK_INT(t_token_server_issued(reg->token), issued);
        /* Another repository: blobs are mounted from the first. */
        memset(&t, 0, sizeof(t));
        OK(step_registry_push(digest, r, src, "v1", "team/other", "v1", "team/app", &err));
        CHECK_INT(t.n[STEP_REGISTRY_MOUNTED], 4);
        CHECK_INT(t_skopeo_digest(seen, reg, "team/other:v1"), 0);
        CHECK_STR(seen, made.digest);
        /* A mount source without the blobs: 202, and the blobs are uploaded instead. */
        memset(&t, 0, sizeof(t));
        OK(step_registry_push(digest, r, src, "v1", "team/third", "v1", "team/empty", &err));
        CHECK_INT(t.n[STEP_REGISTRY_MOUNTED], 0);
        CHECK_INT(t.n[STEP_REGISTRY_UPLOADED], 5);
        CHECK_INT(t_skopeo_digest(seen, reg, "team/third:v1"), 0);
        CHECK_STR(seen, made.digest);

        /* slipway pulls what it pushed. */
        OK(step_oci_layout_open(&dst, pull_dir, true, &err));
        OK(step_registry_pull(&pulled, r, "team/app", "v1", dst, "v1", &err));
        CHECK_STR(pulled.digest, made.digest);
        CHECK_STR(pulled.media_type, STEP_OCI_MT_MANIFEST);
        layout_digest(seen, pull_dir, "v1");
        CHECK_STR(seen, made.digest);
        /* Pulled again by digest: everything is present already. */
        memset(&t, 0, sizeof(t));
        OK(step_registry_pull(&pulled, r, "team/app", made.digest, dst, NULL, &err));
        CHECK_INT(t.n[STEP_REGISTRY_PRESENT], 4);

        /* skopeo pushes (Docker v2 media types); slipway pulls the same digest. */
        CHECK_INT(t_image_make(&sk, sk_dir, &sspec), 0);
        free(sref);
        free(ref);
        sref = sw_xasprintf("oci:%s:v2", sk_dir);
        ref = sw_xasprintf("docker://%s/skopeo/img:v2", reg->host);
        CHECK_INT(t_skopeo_copy(reg, sref, ref), 0);
        OK(step_registry_pull(&pulled, r, "skopeo/img", "v2", dst, "sk", &err));
        CHECK_STR(pulled.digest, sk.digest);
        step_registry_free(r);

        /* Docker v2 media types: pushed as is, seen by skopeo, pulled back. */
        {
                struct t_image_spec dspec = {2, 100 << 10, 90 + (uint64_t)mode, true, "d1"};
                char *ddir = layout_path("docker", mode);
                struct step_oci_layout *dl = NULL;
                struct step_oci_desc dm;

                r = client(reg, 0, &t);
                CHECK_INT(t_image_make(&dm, ddir, &dspec), 0);
                OK(step_oci_layout_open(&dl, ddir, false, &err));
                OK(step_registry_push(digest, r, dl, "d1", "team/docker", "d1", NULL, &err));
                CHECK_INT(t_skopeo_digest(seen, reg, "team/docker:d1"), 0);
                CHECK_STR(seen, dm.digest);
                OK(step_registry_pull(&pulled, r, "team/docker", "d1", dst, "d1", &err));
                CHECK_STR(pulled.digest, dm.digest);
                CHECK_STR(pulled.media_type, STEP_OCI_MT_DOCKER_MANIFEST);
                step_registry_free(r);
                step_oci_layout_free(dl);
                free(ddir);
        }

        /* Chunked upload (PATCH) of a layer larger than the chunk size. */
        {
                struct t_image_spec cspec = {1, (1 << 20) + 12345, 70 + (uint64_t)mode, false,
                                             "c1"};
                char *cdir = layout_path("chunked", mode);
                struct step_oci_layout *cl = NULL;
                struct step_oci_desc cm;

                CHECK_INT(t_image_make(&cm, cdir, &cspec), 0);
                OK(step_oci_layout_open(&cl, cdir, false, &err));
                r = client(reg, 256 << 10, &t);
                OK(step_registry_push(digest, r, cl, NULL, "team/chunked", "c1", NULL, &err));
                CHECK_INT(t_skopeo_digest(seen, reg, "team/chunked:c1"), 0);
                CHECK_STR(seen, cm.digest);
                step_registry_free(r);
                step_oci_layout_free(cl);
                free(cdir);
        }
        if (mode == T_REG_OPEN)
                pull_from_index(reg, &made, dst);
        if (mode == T_REG_TOKEN)
                CHECK(t_token_server_issued(reg->token) > 0);
out:
        step_oci_layout_free(src);
        step_oci_layout_free(dst);
        free(src_dir);
        free(back_dir);
        free(pull_dir);
        free(sk_dir);
        free(ref);
        free(sref);
        t_registry_stop(reg);
}

static void test_open(void)
{
        roundtrip(T_REG_OPEN);
}

static void test_basic_auth(void)
{
        roundtrip(T_REG_BASIC);
}

static void test_token_auth(void)
{
        roundtrip(T_REG_TOKEN);
}

int main(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        T_RUN(test_open);
        T_RUN(test_basic_auth);
        T_RUN(test_token_auth);
        curl_global_cleanup();
        return t_done();
}
