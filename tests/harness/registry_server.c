/*
 * registry_server.c - docker-registry in three auth modes, and the token
 * server that signs the JWTs for its `auth: token` mode.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
#include "common/banned.h"

#define T_REG_BIN "/usr/bin/docker-registry"
#define T_TOKEN_SERVICE "slipway-test-registry"
#define T_TOKEN_ISSUER "slipway-test-issuer"

struct t_token_server {
        struct MHD_Daemon *d;
        int port;
        EVP_PKEY *key;
        char *cert_b64; /* DER, standard base64: the x5c header entry */
        atomic_int issued;
};

/* ---- token server ---- */

static char *b64url(const void *data, size_t len)
{
        char *out = sw_xmalloc(4 * ((len + 2) / 3) + 1);
        size_t n = (size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)len);

        for (size_t i = 0; i < n; i++)
                out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
        while (n && out[n - 1] == '=')
                out[--n] = '\0';
        return out;
}

static char *jwt_sign(struct t_token_server *ts, const char *user, const char *service,
                      json_t *access)
{
        json_t *hdr =
                json_pack("{s:s,s:s,s:[s]}", "typ", "JWT", "alg", "RS256", "x5c", ts->cert_b64);
        unsigned char jti[12], sig[1024];
        char *jti_s, *h_json, *c_json, *h64, *c64, *signing, *s64, *out;
        time_t now = time(NULL);
        size_t siglen = sizeof(sig);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        json_t *claims;

        RAND_bytes(jti, sizeof(jti));
        jti_s = b64url(jti, sizeof(jti));
        claims =
                json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:O}", "iss", T_TOKEN_ISSUER, "sub", user,
                          "aud", service, "exp", (json_int_t)now + 300, "nbf", (json_int_t)now - 10,
                          "iat", (json_int_t)now, "jti", jti_s, "access", access);
        h_json = sw_json_dump(hdr);
        c_json = sw_json_dump(claims);
        h64 = b64url(h_json, strlen(h_json));
        c64 = b64url(c_json, strlen(c_json));
        signing = sw_xasprintf("%s.%s", h64, c64);
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ts->key);
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)signing, strlen(signing));
        s64 = b64url(sig, siglen);
        out = sw_xasprintf("%s.%s", signing, s64);
        EVP_MD_CTX_free(md);
        free(jti_s);
        free(h_json);
        free(c_json);
        free(h64);
        free(c64);
        free(signing);
        free(s64);
        json_decref(hdr);
        json_decref(claims);
        return out;
}

struct scope_list {
        json_t *access;
};

/* "repository:team/app:pull,push" -> {"type","name","actions"} */
static enum MHD_Result collect_scope(void *arg, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
        struct scope_list *sl = arg;
        const char *c1, *c2;
        json_t *actions;
        char *name;

        (void)kind;
        if (strcmp(key, "scope") != 0 || !value)
                return MHD_YES;
        c1 = strchr(value, ':');
        c2 = c1 ? strrchr(value, ':') : NULL;
        if (!c1 || c2 == c1)
                return MHD_YES;
        actions = json_array();
        for (const char *p = c2 + 1; *p;) {
                size_t n = strcspn(p, ",");
                /* Policy: repositories under readonly/ may be pulled, never pushed. */
                bool denied = strncmp(c1 + 1, "readonly/", 9) == 0 && n == 4 &&
                              strncmp(p, "push", 4) == 0;
                if (!denied)
                        json_array_append_new(actions, json_stringn(p, n));
                p += n;
                if (*p == ',')
                        p++;
        }
        name = sw_xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
        json_array_append_new(sl->access,
                              json_pack("{s:s%,s:s,s:o}", "type", value, (size_t)(c1 - value),
                                        "name", name, "actions", actions));
        free(name);
        return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *body)
{
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result r;

        MHD_add_response_header(resp, "Content-Type", "application/json");
        r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result token_handler(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
        struct t_token_server *ts = cls;
        struct scope_list sl;
        char *user = NULL, *pass = NULL, *tok, *body;
        const char *service;
        bool ok;
        enum MHD_Result r;

        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        (void)con_cls;
        if (strcmp(method, "GET") != 0 || strcmp(url, "/token") != 0)
                return reply(c, 404, "{\"errors\":[{\"code\":\"NOT_FOUND\"}]}");
        user = MHD_basic_auth_get_username_password(c, &pass);
        ok = user && pass && strcmp(user, T_REG_USER) == 0 && strcmp(pass, T_REG_PASSWORD) == 0;
        if (!ok) {
                MHD_free(user);
                MHD_free(pass);
                return reply(c, 401,
                             "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"bad "
                             "credentials\"}]}");
        }
        service = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service");
        sl.access = json_array();
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_scope, &sl);
        tok = jwt_sign(ts, user, service ? service : T_TOKEN_SERVICE, sl.access);
        body = sw_xasprintf("{\"token\":\"%s\",\"expires_in\":300}", tok);
        atomic_fetch_add(&ts->issued, 1);
        r = reply(c, 200, body);
        free(body);
        free(tok);
        json_decref(sl.access);
        MHD_free(user);
        MHD_free(pass);
        return r;
}

static void token_server_free(struct t_token_server *ts)
{
        if (!ts)
                return;
        if (ts->d)
                MHD_stop_daemon(ts->d);
        EVP_PKEY_free(ts->key);
        free(ts->cert_b64);
        free(ts);
}

/* Make the key and its self-signed certificate (PEM at cert_path), then serve. */
static struct t_token_server *token_server_start(const char *cert_path)
{
        struct t_token_server *ts = sw_xcalloc(1, sizeof(*ts));
        struct sockaddr_in a;
        X509 *cert = X509_new();
        X509_NAME *name;
        unsigned char *der = NULL;
        int der_len;
        FILE *f;

        ts->key = EVP_RSA_gen(2048);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_set_version(cert, 2);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
        X509_set_pubkey(cert, ts->key);
        name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"slipway test token issuer", -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509_sign(cert, ts->key, EVP_sha256());
        der_len = i2d_X509(cert, &der);
        ts->cert_b64 = sw_xmalloc(4 * (((size_t)der_len + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)ts->cert_b64, der, der_len);
        OPENSSL_free(der);
        f = fopen(cert_path, "w");
        if (!f || !PEM_write_X509(f, cert)) {
                fprintf(stderr, "cannot write %s\n", cert_path);
                if (f)
                        fclose(f);
                X509_free(cert);
                token_server_free(ts);
                return NULL;
        }
        fclose(f);
        X509_free(cert);

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ts->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 token_handler, ts, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_END);
        if (!ts->d) {
                token_server_free(ts);
                return NULL;
        }
        ts->port = MHD_get_daemon_info(ts->d, MHD_DAEMON_INFO_BIND_PORT)->port;
        return ts;
}

int t_token_server_issued(const struct t_token_server *ts)
{
        return ts ? atomic_load(&((struct t_token_server *)ts)->issued) : 0;
}

/* ---- registry ---- */

static bool write_htpasswd(const char *path)
{
        char salt[CRYPT_GENSALT_OUTPUT_SIZE];
        struct crypt_data cd;
        const char *hash;
        char *line;
        bool ok;
        struct sw_err err = SW_ERR_INIT;

        /* bcrypt, the only scheme distribution accepts; cost 5 keeps tests fast. */
        if (!crypt_gensalt_rn("$2y$", 5, NULL, 0, salt, sizeof(salt)))
                return false;
        memset(&cd, 0, sizeof(cd));
        hash = crypt_r(T_REG_PASSWORD, salt, &cd);
        if (!hash || hash[0] != '$')
                return false;
        line = sw_xasprintf("%s:%s\n", T_REG_USER, hash);
        ok = sw_write_file_atomic(path, line, strlen(line), 0600, &err) == 0;
        free(line);
        return ok;
}

static bool write_config(struct t_registry *reg)
{
        struct sw_buf b = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        bool ok;

        sw_buf_printf(&b, &err,
                      "version: 0.1\n"
                      "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                      "storage:\n  filesystem:\n    rootdirectory: %s/storage\n"
                      "  delete:\n    enabled: true\n"
                      "  cache:\n    blobdescriptor: inmemory\n"
                      "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                      "http:\n  addr: 127.0.0.1:%d\n"
                      /* A fixed secret keeps upload session state valid across restarts. */
                      "  secret: slipway-test-upload-state-secret\n",
                      reg->dir, reg->port);
        if (reg->mode == T_REG_BASIC)
                sw_buf_printf(
                        &b, &err,
                        "auth:\n  htpasswd:\n    realm: slipway-test\n    path: %s/htpasswd\n",
                        reg->dir);
        else if (reg->mode == T_REG_TOKEN)
                sw_buf_printf(&b, &err,
                              "auth:\n  token:\n    realm: http://127.0.0.1:%d/token\n"
                              "    service: %s\n    issuer: %s\n    rootcertbundle: %s/token.crt\n",
                              reg->token->port, T_TOKEN_SERVICE, T_TOKEN_ISSUER, reg->dir);
        ok = sw_write_file_atomic(reg->config, sw_buf_str(&b), b.len, 0644, &err) == 0;
        sw_buf_release(&b);
        return ok;
}

static bool launch(struct t_registry *reg)
{
        char *log = sw_xasprintf("%s/registry.log", reg->dir);
        char *url = sw_xasprintf("http://%s/v2/", reg->host);
        char *argv[] = {T_REG_BIN, "serve", reg->config, NULL};
        bool ok;

        reg->pid = t_spawn(argv, log);
        ok = reg->pid > 0 && t_wait_http(url, 15000);
        /*
         * Something else may have taken the port since t_free_port(): then
         * the answer came from it, and our registry has exited.
         */
        if (ok)
                sw_sleep_ms(50);
        if (ok && waitpid(reg->pid, NULL, WNOHANG) != 0) {
                reg->pid = -1;
                ok = false;
        }
        if (!ok)
                fprintf(stderr, "docker-registry did not start on %s; see %s\n", reg->host, log);
        free(log);
        free(url);
        return ok;
}

struct t_registry *t_registry_start(enum t_reg_mode mode)
{
        struct t_registry *reg = sw_xcalloc(1, sizeof(*reg));
        struct sw_err err = SW_ERR_INIT;
        char *p;

        reg->mode = mode;
        if (sw_mkdtemp(&reg->dir, "/tmp", "slipway-registry-", &err) != 0) {
                fprintf(stderr, "%s\n", err.msg);
                free(reg);
                return NULL;
        }
        reg->config = sw_xasprintf("%s/config.yml", reg->dir);
        reg->port = t_free_port();
        snprintf(reg->host, sizeof(reg->host), "127.0.0.1:%d", reg->port);
        if (mode == T_REG_BASIC) {
                p = sw_xasprintf("%s/htpasswd", reg->dir);
                if (!write_htpasswd(p)) {
                        fprintf(stderr, "cannot write bcrypt htpasswd\n");
                        free(p);
                        goto fail;
                }
                free(p);
        } else if (mode == T_REG_TOKEN) {
                p = sw_xasprintf("%s/token.crt", reg->dir);
                reg->token = token_server_start(p);
                free(p);
                if (!reg->token) {
                        fprintf(stderr, "cannot start the token server\n");
                        goto fail;
                }
        }
        for (int attempt = 0;; attempt++) {
                if (!write_config(reg))
                        goto fail;
                if (launch(reg))
                        break;
                if (attempt == 2)
                        goto fail;
                reg->port = t_free_port();
                snprintf(reg->host, sizeof(reg->host), "127.0.0.1:%d", reg->port);
        }
        return reg;
fail:
        t_registry_stop(reg);
        return NULL;
}

void t_registry_crash(struct t_registry *reg)
{
        t_kill(reg->pid);
        reg->pid = -1;
}

bool t_registry_restart(struct t_registry *reg)
{
        return launch(reg);
}

void t_registry_stop(struct t_registry *reg)
{
        struct sw_err err = SW_ERR_INIT;

        if (!reg)
                return;
        t_stop(reg->pid);
        token_server_free(reg->token);
        if (reg->dir)
                sw_rm_rf(reg->dir, &err);
        free(reg->dir);
        free(reg->config);
        free(reg);
}

bool t_docker_config_write(const char *path, const char *host, const char *user,
                           const char *password)
{
        char *plain = sw_xasprintf("%s:%s", user, password);
        char *b64 = sw_xmalloc(4 * ((strlen(plain) + 2) / 3) + 1);
        char *doc;
        struct sw_err err = SW_ERR_INIT;
        bool ok;

        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, (int)strlen(plain));
        doc = sw_xasprintf("{\"auths\":{\"https://%s\":{\"auth\":\"%s\"}}}", host, b64);
        ok = sw_write_file_atomic(path, doc, strlen(doc), 0600, &err) == 0;
        free(doc);
        free(b64);
        free(plain);
        return ok;
}

const char *t_registry_creds(const struct t_registry *reg)
{
        return reg->mode == T_REG_OPEN ? NULL : T_REG_USER ":" T_REG_PASSWORD;
}

int t_skopeo_digest(char *digest, const struct t_registry *reg, const char *name)
{
        char *ref = sw_xasprintf("docker://%s/%s", reg->host, name);
        const char *creds = t_registry_creds(reg);
        char *argv[] = {"/usr/bin/skopeo",
                        "inspect",
                        "--tls-verify=false",
                        "--format",
                        "{{.Digest}}",
                        ref,
                        creds ? "--creds" : NULL,
                        (char *)creds,
                        NULL};
        char *out = NULL;
        int rc = t_capture(&out, argv), ret = -1;
        size_t n = out ? strcspn(out, "\r\n") : 0;

        if (rc == 0 && n == SW_DIGEST_STR_LEN - 1) {
                memcpy(digest, out, n);
                digest[n] = '\0';
                ret = 0;
        } else {
                fprintf(stderr, "skopeo inspect %s failed (%d): %s\n", ref, rc, out ? out : "");
        }
        free(out);
        free(ref);
        return ret;
}

int t_skopeo_copy(const struct t_registry *reg, const char *src, const char *dst)
{
        const char *creds = t_registry_creds(reg);
        char *argv[16];
        char *out = NULL;
        int i = 0, rc;

        argv[i++] = "/usr/bin/skopeo";
        argv[i++] = "--insecure-policy";
        argv[i++] = "copy";
        argv[i++] = "--quiet";
        argv[i++] = "--preserve-digests";
        argv[i++] = "--src-tls-verify=false";
        argv[i++] = "--dest-tls-verify=false";
        if (creds && strncmp(src, "docker://", 9) == 0) {
                argv[i++] = "--src-creds";
                argv[i++] = (char *)creds;
        }
        if (creds && strncmp(dst, "docker://", 9) == 0) {
                argv[i++] = "--dest-creds";
                argv[i++] = (char *)creds;
        }
        argv[i++] = (char *)src;
        argv[i++] = (char *)dst;
        argv[i] = NULL;
        rc = t_capture(&out, argv);
        if (rc != 0)
                fprintf(stderr, "skopeo copy %s %s failed (%d): %s\n", src, dst, rc,
                        out ? out : "");
        free(out);
        return rc == 0 ? 0 : -1;
}
