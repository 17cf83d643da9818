/*
 * faults.c - the registry client when things go wrong: wrong or missing
 * credentials (named registry, variables to set), credentials from a Docker
 * config.json, a registry that dies in the middle of a chunked upload and
 * comes back (the push resumes), one that stays down (a clear error after
 * the retries), 4xx answers with the registry's own message, and - from a
 * small fake registry, since a real one never serves corrupt data - a blob
 * whose digest does not match, an oversized manifest, an unknown manifest
 * media type, and a blob served through a redirect.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "tests/harness/image.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

#define OK(call)                                                                                   \
        do {                                                                                       \
                sw_err_clear(&err);                                                                \
                CHECK_OK(call, &err);                                                              \
        } while (0)

static struct step_registry *client(const char *host, const char *user, const char *password,
                                    const char *docker_config, int64_t chunk, int attempts)
{
        struct step_registry_options o = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *r = NULL;
        struct sw_err err = SW_ERR_INIT;

        o.host = host;
        o.insecure = "127.0.0.1:*";
        o.user = user;
        o.password = password;
        o.docker_config = docker_config;
        o.chunk_bytes = chunk;
        o.max_attempts = attempts;
        o.backoff_ms = 100;
        OK(step_registry_new(&r, &o, &err));
        return r;
}

static void wrong_credentials(enum t_reg_mode mode)
{
        struct t_registry *reg = t_registry_start(mode);
        struct step_registry *r;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        CHECK(reg != NULL);
        if (!reg)
                return;
        r = client(reg->host, T_REG_USER, "not-the-password", NULL, 0, 0);
        rc = step_registry_ping(r, &err);
        CHECK_INT(rc, SW_EAUTH);
        CHECK(strstr(err.msg, reg->host) != NULL);
        CHECK(strstr(err.msg, "SLIPWAY_REGISTRY_USER") != NULL);
        CHECK(strstr(err.msg, "SLIPWAY_REGISTRY_PASSWORD") != NULL);
        CHECK(strstr(err.msg, "not-the-password") == NULL);
        step_registry_free(r);

        /* No credentials at all: the message says which variables to set. */
        sw_err_clear(&err);
        r = client(reg->host, NULL, NULL, NULL, 0, 0);
        {
                struct step_oci_layout *l = NULL;
                char *dir = sw_xasprintf("%s/wrong-%d", t_tmpdir(), (int)mode);
                OK(step_oci_layout_open(&l, dir, true, &err));
                sw_err_clear(&err);
                rc = step_registry_pull(NULL, r, "team/app", "v1", l, "v1", &err);
                CHECK_INT(rc, SW_EAUTH);
                CHECK(strstr(err.msg, "requires authentication") != NULL);
                CHECK(strstr(err.msg, "SLIPWAY_DOCKER_CONFIG") != NULL);
                step_oci_layout_free(l);
                free(dir);
        }
        step_registry_free(r);

        /* Right credentials from a Docker config.json. */
        {
                char *cfg = sw_xasprintf("%s/config-%d.json", t_tmpdir(), (int)mode);
                CHECK(t_docker_config_write(cfg, reg->host, T_REG_USER, T_REG_PASSWORD));
                r = client(reg->host, NULL, NULL, cfg, 0, 0);
                sw_err_clear(&err);
                OK(step_registry_ping(r, &err));
                step_registry_free(r);
                free(cfg);
        }
        t_registry_stop(reg);
}

static void test_wrong_credentials_basic(void)
{
        wrong_credentials(T_REG_BASIC);
}

static void test_wrong_credentials_token(void)
{
        wrong_credentials(T_REG_TOKEN);
}

/* Right credentials, but no push right on the repository: named as such. */
static void test_push_denied_by_token_scope(void)
{
        struct t_registry *reg = t_registry_start(T_REG_TOKEN);
        struct t_image_spec spec = {1, 1000, 12, false, "v1"};
        char *dir = sw_xasprintf("%s/denied", t_tmpdir());
        struct step_oci_layout *l = NULL;
        struct step_registry *r;
        struct step_oci_desc m;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        CHECK(reg != NULL);
        if (!reg)
                return;
        CHECK_INT(t_image_make(&m, dir, &spec), 0);
        OK(step_oci_layout_open(&l, dir, false, &err));
        r = client(reg->host, T_REG_USER, T_REG_PASSWORD, NULL, 0, 0);
        sw_err_clear(&err);
        rc = step_registry_push(NULL, r, l, "v1", "readonly/app", "v1", NULL, &err);
        CHECK_INT(rc, SW_EPERM);
        CHECK(strstr(err.msg, "denied user 'slipway'") != NULL);
        CHECK(strstr(err.msg, "repository:readonly/app:pull,push") != NULL);
        CHECK(strstr(err.msg, reg->host) != NULL);
        step_registry_free(r);
        step_oci_layout_free(l);
        t_registry_stop(reg);
        free(dir);
}

static void test_not_found_message(void)
{
        struct t_registry *reg = t_registry_start(T_REG_OPEN);
        struct step_registry *r;
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *dir = sw_xasprintf("%s/nf", t_tmpdir());
        int rc;

        CHECK(reg != NULL);
        if (!reg)
                return;
        r = client(reg->host, NULL, NULL, NULL, 0, 0);
        OK(step_oci_layout_open(&l, dir, true, &err));
        sw_err_clear(&err);
        rc = step_registry_pull(NULL, r, "team/absent", "v9", l, NULL, &err);
        CHECK_INT(rc, SW_ENOTFOUND);
        /* The registry's own error code and message travel in ours. */
        CHECK(strstr(err.msg, "MANIFEST_UNKNOWN") != NULL);
        CHECK(strstr(err.msg, "404") != NULL);
        step_oci_layout_free(l);
        step_registry_free(r);
        t_registry_stop(reg);
        free(dir);
}

/* ---- a registry that dies in the middle of an upload ---- */

static int64_t largest_upload(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int64_t best = 0;

        if (!d)
                return 0;
        while ((e = readdir(d)) != NULL) {
                char *p;
                struct stat st;
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                p = sw_xasprintf("%s/%s", dir, e->d_name);
                if (lstat(p, &st) == 0) {
                        if (S_ISDIR(st.st_mode)) {
                                int64_t sub = largest_upload(p);
                                best = sub > best ? sub : best;
                        } else if (strcmp(e->d_name, "data") == 0 && strstr(p, "_uploads")) {
                                best = st.st_size > best ? st.st_size : best;
                        }
                }
                free(p);
        }
        closedir(d);
        return best;
}

struct push_job {
        struct step_registry *r;
        struct step_oci_layout *l;
        const char *repo;
        int rc;
        struct sw_err err;
        char digest[SW_DIGEST_STR_LEN];
        atomic_int finished;
};

static void *push_thread(void *arg)
{
        struct push_job *j = arg;

        j->rc = step_registry_push(j->digest, j->r, j->l, NULL, j->repo, "v1", NULL, &j->err);
        atomic_store(&j->finished, 1);
        return NULL;
}

/*
 * The registry is killed while a chunk is in flight. distribution then holds
 * more bytes than the session state it signed says, so after the restart it
 * refuses to resume that session (404 on the status query) and the client
 * starts the blob's upload over; either way the push finishes.
 */
static void test_registry_dies_mid_upload(void)
{
        struct t_registry *reg = t_registry_start(T_REG_OPEN);
        struct t_image_spec spec = {1, 96 << 20, 7, false, NULL};
        char *dir = sw_xasprintf("%s/big", t_tmpdir());
        char *storage = NULL;
        struct step_oci_desc m;
        struct sw_err err = SW_ERR_INIT;
        struct push_job j;
        pthread_t th;
        char seen[SW_DIGEST_STR_LEN];
        int64_t seen_bytes = 0;

        CHECK(reg != NULL);
        if (!reg)
                return;
        memset(&j, 0, sizeof(j));
        storage = sw_xasprintf("%s/storage", reg->dir);
        CHECK_INT(t_image_make(&m, dir, &spec), 0);
        OK(step_oci_layout_open(&j.l, dir, false, &err));
        j.r = client(reg->host, NULL, NULL, NULL, 4 << 20, 10);
        j.repo = "team/resume";
        pthread_create(&th, NULL, push_thread, &j);
        /* Crash the registry once part of the layer has arrived. */
        for (int i = 0; i < 4000 && !atomic_load(&j.finished); i++) {
                seen_bytes = largest_upload(storage);
                if (seen_bytes >= (8 << 20))
                        break;
                sw_sleep_ms(2);
        }
        CHECK(seen_bytes >= (8 << 20));
        CHECK(!atomic_load(&j.finished));
        t_registry_crash(reg);
        sw_sleep_ms(1500);
        CHECK(!atomic_load(&j.finished)); /* still retrying */
        CHECK(t_registry_restart(reg));
        pthread_join(th, NULL);
        CHECK_INT(j.rc, 0);
        if (j.rc)
                fprintf(stderr, "  push: %s\n", j.err.msg);
        CHECK_STR(j.digest, m.digest);
        CHECK_INT(t_skopeo_digest(seen, reg, "team/resume:v1"), 0);
        CHECK_STR(seen, m.digest);
        step_registry_free(j.r);

        /* Down for good: a clear error after the retries. */
        t_registry_crash(reg);
        {
                struct step_registry *r = client(reg->host, NULL, NULL, NULL, 0, 3);
                int rc;
                sw_err_clear(&err);
                rc = step_registry_push(NULL, r, j.l, NULL, "team/down", "v1", NULL, &err);
                CHECK_INT(rc, SW_EUNAVAIL);
                CHECK(strstr(err.msg, reg->host) != NULL);
                CHECK(strstr(err.msg, "after 3 attempts") != NULL);
                step_registry_free(r);
        }
        step_oci_layout_free(j.l);
        t_registry_stop(reg);
        free(storage);
        free(dir);
}

/*
 * A registry that goes down between two chunks: the upload session survives
 * the restart (same storage, same http.secret), so the push asks where it
 * stands (GET -> 204 + Range) and goes on from there, never sending a byte
 * twice. The chunk callback crashes the registry right after a chunk was
 * accepted, which makes the moment exact.
 */
struct resume_watch {
        struct t_registry *reg;
        int64_t offsets[64];
        int n;
        atomic_int crashed;
};

static void crash_after_chunk(void *arg, const char *digest, int64_t done, int64_t total)
{
        struct resume_watch *w = arg;

        (void)digest;
        (void)total;
        if (w->n < 64)
                w->offsets[w->n++] = done;
        if (w->n == 3 && !atomic_load(&w->crashed)) {
                t_registry_crash(w->reg);
                atomic_store(&w->crashed, 1);
        }
}

static void *resume_push_thread(void *arg)
{
        return push_thread(arg);
}

static void test_push_resumes_between_chunks(void)
{
        struct t_registry *reg = t_registry_start(T_REG_OPEN);
        struct t_image_spec spec = {1, 24 << 20, 8, false, NULL};
        char *dir = sw_xasprintf("%s/resume", t_tmpdir());
        struct step_registry_options o = STEP_REGISTRY_OPTIONS_INIT;
        struct resume_watch w;
        struct step_oci_desc m;
        struct sw_err err = SW_ERR_INIT;
        struct push_job j;
        pthread_t th;
        char seen[SW_DIGEST_STR_LEN];

        CHECK(reg != NULL);
        if (!reg)
                return;
        memset(&j, 0, sizeof(j));
        memset(&w, 0, sizeof(w));
        w.reg = reg;
        CHECK_INT(t_image_make(&m, dir, &spec), 0);
        OK(step_oci_layout_open(&j.l, dir, false, &err));
        o.host = reg->host;
        o.insecure = "127.0.0.1:*";
        o.chunk_bytes = 2 << 20;
        o.max_attempts = 10;
        o.backoff_ms = 100;
        o.chunk_done = crash_after_chunk;
        o.progress_arg = &w;
        OK(step_registry_new(&j.r, &o, &err));
        j.repo = "team/resume2";
        pthread_create(&th, NULL, resume_push_thread, &j);
        for (int i = 0; i < 500 && !atomic_load(&w.crashed); i++)
                sw_sleep_ms(10);
        CHECK(atomic_load(&w.crashed));
        sw_sleep_ms(800);
        CHECK(!atomic_load(&j.finished)); /* retrying while the registry is down */
        CHECK(t_registry_restart(reg));
        pthread_join(th, NULL);
        CHECK_INT(j.rc, 0);
        if (j.rc)
                fprintf(stderr, "  push: %s\n", j.err.msg);
        CHECK_STR(j.digest, m.digest);
        /* Every accepted chunk moved forward: the upload resumed, it did not restart. */
        CHECK(w.n > 3);
        for (int i = 1; i < w.n; i++)
                CHECK(w.offsets[i] > w.offsets[i - 1]);
        CHECK_INT(t_skopeo_digest(seen, reg, "team/resume2:v1"), 0);
        CHECK_STR(seen, m.digest);
        step_registry_free(j.r);
        step_oci_layout_free(j.l);
        t_registry_stop(reg);
        free(dir);
}

/* ---- a fake registry for faults a real one cannot produce ---- */

struct fake {
        struct MHD_Daemon *d;
        int port;
        char host[64];
        char *config;
        char cfg_digest[SW_DIGEST_STR_LEN];
        char layer_digest[SW_DIGEST_STR_LEN];
        char *manifest;
        char *odd_manifest;
        char *small_manifest; /* config only, no layers */
        atomic_int flaky_calls;
        atomic_int forbidden_calls;
};

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned int status, const char *ctype,
                                const void *data, size_t len)
{
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result r;

        if (ctype)
                MHD_add_response_header(resp, "Content-Type", ctype);
        r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned int status, const char *text)
{
        return send_buf(c, status, "application/json", text, strlen(text));
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
        struct fake *f = cls;
        char path[512];

        (void)method;
        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        (void)con_cls;
        if (strcmp(url, "/v2/") == 0)
                return send_buf(c, 200, "application/json", "{}", 2);
        if (strcmp(url, "/v2/bad/manifests/v1") == 0)
                return send_buf(c, 200, STEP_OCI_MT_MANIFEST, f->manifest, strlen(f->manifest));
        if (strcmp(url, "/v2/flaky/manifests/v1") == 0) {
                /* Two 503s, then the real thing: retried with backoff. */
                if (atomic_fetch_add(&f->flaky_calls, 1) < 2)
                        return send_json(c, 503, "{\"errors\":[{\"code\":\"UNAVAILABLE\"}]}");
                return send_buf(c, 200, STEP_OCI_MT_MANIFEST, f->small_manifest,
                                strlen(f->small_manifest));
        }
        if (strcmp(url, "/v2/forbidden/manifests/v1") == 0) {
                atomic_fetch_add(&f->forbidden_calls, 1);
                return send_json(c, 403,
                                 "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"project is "
                                 "archived\"}]}");
        }
        if (strncmp(url, "/v2/flaky/blobs/", 16) == 0 && strcmp(url + 16, f->cfg_digest) == 0)
                return send_buf(c, 200, "application/octet-stream", f->config, strlen(f->config));
        if (strcmp(url, "/v2/odd/manifests/v1") == 0)
                return send_buf(c, 200, "application/vnd.example.odd+json", f->odd_manifest,
                                strlen(f->odd_manifest));
        if (strcmp(url, "/v2/big/manifests/v1") == 0) {
                size_t n = (size_t)5 << 20;
                char *big = sw_xmalloc(n);
                enum MHD_Result r;
                memset(big, ' ', n);
                big[0] = '{';
                big[n - 1] = '}';
                r = send_buf(c, 200, STEP_OCI_MT_MANIFEST, big, n);
                free(big);
                return r;
        }
        /* The config comes through a redirect, as from object storage. */
        snprintf(path, sizeof(path), "/v2/bad/blobs/%s", f->cfg_digest);
        if (strcmp(url, path) == 0) {
                struct MHD_Response *resp =
                        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                char loc[128];
                enum MHD_Result r;
                snprintf(loc, sizeof(loc), "http://%s/storage/config", f->host);
                MHD_add_response_header(resp, "Location", loc);
                r = MHD_queue_response(c, 307, resp);
                MHD_destroy_response(resp);
                return r;
        }
        if (strcmp(url, "/storage/config") == 0)
                return send_buf(c, 200, "application/octet-stream", f->config, strlen(f->config));
        snprintf(path, sizeof(path), "/v2/bad/blobs/%s", f->layer_digest);
        if (strcmp(url, path) == 0) {
                /* Right size, wrong bytes. */
                char junk[4096];
                memset(junk, 'x', sizeof(junk));
                return send_buf(c, 200, "application/octet-stream", junk, sizeof(junk));
        }
        return send_json(c, 404,
                         "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"no such thing\"}]}");
}

static struct fake *fake_start(void)
{
        struct fake *f = sw_xcalloc(1, sizeof(*f));
        struct sockaddr_in a;
        char layer[4096];

        f->config = sw_xstrdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                               "\"layers\",\"diff_ids\":[]}}");
        sw_sha256_digest(f->cfg_digest, f->config, strlen(f->config));
        memset(layer, 'a', sizeof(layer));
        sw_sha256_digest(f->layer_digest, layer, sizeof(layer));
        f->manifest = sw_xasprintf(
                "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
                "\"%s\",\"size\":4096}]}",
                STEP_OCI_MT_MANIFEST, STEP_OCI_MT_CONFIG, f->cfg_digest, strlen(f->config),
                STEP_OCI_MT_LAYER, f->layer_digest);
        f->small_manifest = sw_xasprintf(
                "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                "\"digest\":\"%s\",\"size\":%zu},\"layers\":[]}",
                STEP_OCI_MT_MANIFEST, STEP_OCI_MT_CONFIG, f->cfg_digest, strlen(f->config));
        f->odd_manifest = sw_xstrdup("{\"schemaVersion\":2,\"mediaType\":"
                                     "\"application/vnd.example.odd+json\",\"payload\":{}}");
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, fake_handler, f,
                                MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_END);
        if (!f->d) {
                free(f);
                return NULL;
        }
        f->port = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT)->port;
        snprintf(f->host, sizeof(f->host), "127.0.0.1:%d", f->port);
        return f;
}

static void fake_stop(struct fake *f)
{
        if (!f)
                return;
        MHD_stop_daemon(f->d);
        free(f->config);
        free(f->manifest);
        free(f->odd_manifest);
        free(f->small_manifest);
        free(f);
}

/* Names in blobs/sha256 other than the given digests' hex. */
static int stray_blobs(const char *layout, const char *keep)
{
        char *p = sw_xasprintf("%s/blobs/sha256", layout);
        DIR *d = opendir(p);
        struct dirent *e;
        int n = 0;

        while (d && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
                        continue;
                if (keep && strcmp(e->d_name, keep + 7) == 0)
                        continue;
                fprintf(stderr, "  stray: %s\n", e->d_name);
                n++;
        }
        if (d)
                closedir(d);
        free(p);
        return n;
}

static void test_digest_mismatch_leaves_nothing(void)
{
        struct fake *f = fake_start();
        struct step_registry *r;
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *dir = sw_xasprintf("%s/mismatch", t_tmpdir());
        char *idx_path = sw_xasprintf("%s/index.json", dir);
        char *before = NULL, *after = NULL;
        int rc;

        CHECK(f != NULL);
        if (!f)
                return;
        r = client(f->host, NULL, NULL, NULL, 0, 2);
        OK(step_oci_layout_open(&l, dir, true, &err));
        OK(sw_read_file(&before, NULL, idx_path, 0, &err));
        sw_err_clear(&err);
        rc = step_registry_pull(NULL, r, "bad", "v1", l, "v1", &err);
        CHECK_INT(rc, SW_ECORRUPT);
        CHECK(strstr(err.msg, "digest mismatch") != NULL);
        CHECK(strstr(err.msg, f->layer_digest) != NULL);
        /* index.json unchanged, no temporary file, no blob at all (not even the good config). */
        OK(sw_read_file(&after, NULL, idx_path, 0, &err));
        CHECK_STR(after, before);
        CHECK_INT(stray_blobs(dir, NULL), 0);
        CHECK(!step_oci_blob_exists(l, f->cfg_digest, NULL));
        CHECK(!step_oci_blob_exists(l, f->layer_digest, NULL));

        /* An oversized manifest is refused without reading it all. */
        sw_err_clear(&err);
        rc = step_registry_pull(NULL, r, "big", "v1", l, "big", &err);
        CHECK_INT(rc, SW_ETOOBIG);
        CHECK(strstr(err.msg, "larger than") != NULL);

        /* An unknown manifest media type is named in the error. */
        sw_err_clear(&err);
        rc = step_registry_pull(NULL, r, "odd", "v1", l, "odd", &err);
        CHECK_INT(rc, SW_EPROTO);
        CHECK(strstr(err.msg, "application/vnd.example.odd+json") != NULL);
        CHECK(strstr(err.msg, "unsupported media type") != NULL);
        free(after);
        after = NULL;
        OK(sw_read_file(&after, NULL, idx_path, 0, &err));
        CHECK_STR(after, before);

        step_oci_layout_free(l);
        step_registry_free(r);
        fake_stop(f);
        free(before);
        free(after);
        free(idx_path);
        free(dir);
}

static void test_retry_5xx_not_4xx(void)
{
        struct fake *f = fake_start();
        struct step_registry *r;
        struct step_oci_layout *l = NULL;
        struct step_oci_desc got;
        struct sw_err err = SW_ERR_INIT;
        char *dir = sw_xasprintf("%s/flaky", t_tmpdir());
        int rc;

        CHECK(f != NULL);
        if (!f)
                return;
        r = client(f->host, NULL, NULL, NULL, 0, 4);
        OK(step_oci_layout_open(&l, dir, true, &err));
        OK(step_registry_pull(&got, r, "flaky", "v1", l, "v1", &err));
        CHECK_INT(atomic_load(&f->flaky_calls), 3);
        /* A 403 is permanent: one request, the registry's message in ours. */
        sw_err_clear(&err);
        rc = step_registry_pull(&got, r, "forbidden", "v1", l, "v1", &err);
        CHECK_INT(rc, SW_EAUTH);
        CHECK_INT(atomic_load(&f->forbidden_calls), 1);
        CHECK(strstr(err.msg, "403") != NULL);
        CHECK(strstr(err.msg, "DENIED: project is archived") != NULL);
        step_oci_layout_free(l);
        step_registry_free(r);
        fake_stop(f);
        free(dir);
}

static void test_push_unknown_media_type(void)
{
        struct t_registry *reg = t_registry_start(T_REG_OPEN);
        char *dir = sw_xasprintf("%s/odd-push", t_tmpdir());
        struct step_oci_desc d;
        struct step_oci_layout *l = NULL;
        struct step_registry *r;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        CHECK(reg != NULL);
        if (!reg)
                return;
        CHECK_INT(t_image_make_odd(&d, dir, "application/vnd.example.odd+json"), 0);
        OK(step_oci_layout_open(&l, dir, false, &err));
        r = client(reg->host, NULL, NULL, NULL, 0, 0);
        sw_err_clear(&err);
        rc = step_registry_push(NULL, r, l, "odd", "team/odd", "v1", NULL, &err);
        CHECK_INT(rc, SW_EPROTO);
        CHECK(strstr(err.msg, "unsupported manifest media type") != NULL);
        CHECK(strstr(err.msg, "application/vnd.example.odd+json") != NULL);
        step_registry_free(r);
        step_oci_layout_free(l);
        t_registry_stop(reg);
        free(dir);
}

int main(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        T_RUN(test_wrong_credentials_basic);
        T_RUN(test_wrong_credentials_token);
        T_RUN(test_push_denied_by_token_scope);
        T_RUN(test_not_found_message);
        T_RUN(test_digest_mismatch_leaves_nothing);
        T_RUN(test_push_unknown_media_type);
        T_RUN(test_retry_5xx_not_4xx);
        T_RUN(test_registry_dies_mid_upload);
        T_RUN(test_push_resumes_between_chunks);
        curl_global_cleanup();
        return t_done();
}
