/*
 * clone.c - the clone step: a mirror cache per repository URL, a clean
 * working tree per job, submodules, limits and credentials (see clone.h).
 *
 * The flow of step_clone_run():
 *   1. check the options; the URL must carry no password;
 *   2. take the mirror's lock (flock, so that threads of one process exclude
 *      each other too: POSIX record locks are per process);
 *   3. open the mirror and fetch into it, or create it in `<hex>.tmp` and
 *      rename it into place once the first fetch completed;
 *   4. resolve the branch, tag or commit in the mirror;
 *   5. create the working tree as a new repository borrowing the mirror's
 *      objects (alternates), point its origin at the real URL, check out the
 *      commit; release the lock;
 *   6. check out the submodules at their recorded commits, each by steps
 *      2-5 from its own URL, recursively.
 * Every libgit2 error is translated once, in clone_git_err().
 *
 * libgit2 1.5 (Debian bookworm) leaks a PCRE2 match block (~20 KiB) for every
 * configuration entry that a regex-based lookup does not match (fixed
 * upstream by libgit2 PR #6382). Remote creation scans url.*.insteadOf that
 * way, and the submodule API scans submodule.*, so this file avoids both:
 * in-memory remotes with GIT_REMOTE_CREATE_SKIP_INSTEADOF, and .gitmodules
 * read as a plain configuration file. A long-running worker would otherwise
 * grow by hundreds of KiB per clone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/validate.h"
#include "steps/clone.h"
#include "steps/clone_int.h"
#include "steps/steps.h"
#include "common/banned.h"

#define CLONE_PROGRESS_EVERY_MS 1000
#define CLONE_LOCK_POLL_MS 100
#define CLONE_SUBMODULE_DEPTH_MAX 8
#define CLONE_CREDENTIALS_MAX_BYTES (1 << 20)

/* The parts of "scheme://[user[:password]@]host[:port]/path". */
struct url_parts {
        const char *scheme;
        size_t scheme_len;
        const char *user; /* NULL when there is no user information */
        size_t user_len;
        const char *password; /* NULL when there is none */
        size_t password_len;
        const char *host; /* without the port */
        size_t host_len;
        const char *port; /* NULL: the scheme's default */
        size_t port_len;
        const char *path; /* from the first '/' after the authority, or "" */
};

/* The state one step_clone_run() shares with the libgit2 callbacks. */
struct clone {
        const struct step_clone_options *o;
        char *url;     /* without user information: logs, output, mirror key */
        char *origin;  /* "https://host:443": where the credentials may go */
        bool local;    /* a file:// URL or a path: local submodules are allowed */
        int64_t t0_ms; /* sw_mono_ms() at the start */
        int64_t last_log_ms;
        uint64_t bytes_before; /* received by transfers that ended */
        uint64_t bytes_now;    /* received by the current transfer */
        unsigned int objects_total, objects_received;
        int cred_attempts;
        bool in_transfer;    /* talking to a server: OS errors are network errors */
        const char *cur_url; /* the URL being fetched, for the host key check */
        int lock_fd;
        int submodules;
        struct sw_err cb_err; /* an error decided in a callback; it wins over libgit2's */
};

static void clone_log(struct clone *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void clone_log(struct clone *c, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        if (!c->o->log)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        c->o->log(c->o->arg, line);
}

static void bytes_fmt(char *out, size_t size, uint64_t n)
{
        if (n < 1024)
                snprintf(out, size, "%llu B", (unsigned long long)n);
        else if (n < 1024 * 1024)
                snprintf(out, size, "%.1f KiB", (double)n / 1024);
        else if (n < 1024ULL * 1024 * 1024)
                snprintf(out, size, "%.1f MiB", (double)n / (1024 * 1024));
        else
                snprintf(out, size, "%.2f GiB", (double)n / (1024.0 * 1024 * 1024));
}

static int url_split(struct url_parts *p, const char *url)
{
        const char *sep = strstr(url, "://");
        const char *auth, *at = NULL, *colon;
        size_t auth_len;

        memset(p, 0, sizeof(*p));
        if (!sep || sep == url)
                return -1;
        p->scheme = url;
        p->scheme_len = (size_t)(sep - url);
        auth = sep + 3;
        auth_len = strcspn(auth, "/?#");
        p->path = auth + auth_len;
        for (size_t i = 0; i < auth_len; i++)
                if (auth[i] == '@')
                        at = auth + i;
        if (at) {
                p->user = auth;
                p->user_len = (size_t)(at - auth);
                colon = memchr(auth, ':', p->user_len);
                if (colon) {
                        p->password = colon + 1;
                        p->password_len = (size_t)(at - colon - 1);
                        p->user_len = (size_t)(colon - auth);
                }
                auth_len -= (size_t)(at + 1 - auth);
                auth = at + 1;
        }
        p->host = auth;
        p->host_len = auth_len;
        /* A port follows the last ':' unless it is inside an IPv6 literal. */
        colon = NULL;
        for (size_t i = 0; i < auth_len; i++)
                if (auth[i] == ':')
                        colon = auth + i;
                else if (auth[i] == ']')
                        colon = NULL;
        if (colon) {
                p->host_len = (size_t)(colon - auth);
                p->port = colon + 1;
                p->port_len = auth_len - p->host_len - 1;
        }
        return 0;
}

static bool scheme_is(const struct url_parts *p, const char *s)
{
        return p->scheme_len == strlen(s) && strncasecmp(p->scheme, s, p->scheme_len) == 0;
}

/* "https://host:443": scheme and host lowercased, the port made explicit. */
static char *url_origin(const struct url_parts *p)
{
        const char *port = p->port;
        int port_len = (int)p->port_len;
        char *o;

        if (!port || port_len == 0) {
                port = scheme_is(p, "https")  ? "443"
                       : scheme_is(p, "http") ? "80"
                       : scheme_is(p, "git")  ? "9418"
                       : scheme_is(p, "ssh")  ? "22"
                                              : "";
                port_len = (int)strlen(port);
        }
        o = sw_xasprintf("%.*s://%.*s:%.*s", (int)p->scheme_len, p->scheme, (int)p->host_len,
                         p->host, port_len, port);
        for (char *s = o; *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        *s = (char)(*s - 'A' + 'a');
        return o;
}

int step_clone_url_clean(char **out, const char *url, struct sw_err *err)
{
        struct url_parts p;

        if (url_split(&p, url) != 0 || !p.user) {
                *out = sw_xstrdup(url);
                return 0;
        }
        if (p.password)
                return sw_err_set(err, SW_EINVAL,
                                  "the repository URL must not contain a password "
                                  "(user:password@); configure credentials with "
                                  "SLIPWAY_GIT_CREDENTIALS");
        *out = sw_xasprintf("%.*s://%s", (int)p.scheme_len, p.scheme, p.host);
        return 0;
}

int step_clone_credentials_lookup(char **user_out, char **password_out, const char *file,
                                  const char *url, struct sw_err *err)
{
        char *text = NULL, *want = NULL, *line, *next;
        struct url_parts u;
        size_t len;
        int rc;

        if (url_split(&u, url) != 0)
                return sw_err_set(err, SW_ENOTFOUND, "no credentials for a local repository");
        rc = sw_read_file(&text, &len, file, CLONE_CREDENTIALS_MAX_BYTES, err);
        if (rc) {
                sw_err_wrap(err, "SLIPWAY_GIT_CREDENTIALS");
                return rc;
        }
        want = url_origin(&u);
        rc = sw_err_set(err, SW_ENOTFOUND, "no credentials for %s in SLIPWAY_GIT_CREDENTIALS",
                        want);
        for (line = text; line && *line; line = next) {
                struct url_parts c;
                char *origin;
                size_t plen;
                bool match;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                line[strcspn(line, "\r")] = '\0';
                if (url_split(&c, line) != 0 || !c.user || !c.password)
                        continue;
                origin = url_origin(&c);
                plen = strlen(c.path);
                while (plen > 0 && c.path[plen - 1] == '/')
                        plen--;
                match = strcmp(origin, want) == 0 &&
                        (plen == 0 || (strncmp(c.path, u.path, plen) == 0 &&
                                       (u.path[plen] == '\0' || u.path[plen] == '/')));
                free(origin);
                if (!match)
                        continue;
                sw_err_clear(err);
                *user_out = sw_pct_decode(c.user, c.user_len);
                *password_out = sw_pct_decode(c.password, c.password_len);
                rc = 0;
                break;
        }
        free(want);
        sw_wipe(text, len);
        free(text);
        return rc;
}

/* Translate the last libgit2 error (once, here) into an SW_E* code and message. */
static int clone_git_err(struct clone *c, int gerr, struct sw_err *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int clone_git_err(struct clone *c, int gerr, struct sw_err *err, const char *fmt, ...)
{
        const git_error *e = git_error_last();
        const char *msg = e && e->message ? e->message : "unknown libgit2 error";
        int klass = e ? e->klass : GIT_ERROR_NONE;
        char what[512];
        va_list ap;
        int code;

        if (c->cb_err.code) {
                /* A callback decided: a limit, a cancel, refused credentials. */
                return sw_err_set(err, c->cb_err.code, "%s", c->cb_err.msg);
        }
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);

        switch (gerr) {
        case GIT_EAUTH:
                return sw_err_set(err, SW_EAUTH, "%s: authentication failed: %s", what, msg);
        case GIT_ECERTIFICATE:
                return sw_err_set(err, SW_EPERM, "%s: the server's certificate is not trusted: %s",
                                  what, msg);
        case GIT_ENOTFOUND:
                return sw_err_set(err, SW_ENOTFOUND, "%s: %s", what, msg);
        case GIT_EAMBIGUOUS:
                return sw_err_set(err, SW_EINVAL, "%s: %s", what, msg);
        default:
                break;
        }
        switch (klass) {
        case GIT_ERROR_NET:
        case GIT_ERROR_HTTP:
        case GIT_ERROR_SSL:
        case GIT_ERROR_SSH:
                if (strstr(msg, "401") || strstr(msg, "403"))
                        code = SW_EAUTH;
                else if (strstr(msg, "404") || strstr(msg, "not exported") ||
                         strstr(msg, "no such repository") || strstr(msg, "not found") ||
                         strstr(msg, "does not appear"))
                        code = SW_ENOTFOUND;
                else
                        code = SW_EUNAVAIL;
                break;
        case GIT_ERROR_OS:
        case GIT_ERROR_FILESYSTEM:
                if (strstr(msg, "failed to resolve path") || strstr(msg, "could not find"))
                        code = SW_ENOTFOUND;
                else if (c->in_transfer) /* connect(2), recv(2): the server */
                        code = SW_EUNAVAIL;
                else
                        code = SW_EIO;
                break;
        case GIT_ERROR_REPOSITORY:
                code = strstr(msg, "could not find") ? SW_ENOTFOUND : SW_EIO;
                break;
        case GIT_ERROR_ODB:
        case GIT_ERROR_INDEXER:
        case GIT_ERROR_ZLIB:
                code = SW_ECORRUPT;
                break;
        default:
                code = SW_EFAILED;
                break;
        }
        return sw_err_set(err, code, "%s: %s", what, msg);
}

/* Limits and cancellation, checked from every progress callback. 0 or a libgit2 error. */
static int clone_check(struct clone *c)
{
        int64_t elapsed = sw_mono_ms() - c->t0_ms;

        if (c->cb_err.code)
                return GIT_EUSER;
        if (c->o->cancelled && c->o->cancelled(c->o->arg)) {
                sw_err_set(&c->cb_err, SW_ECANCELED, "clone of %s cancelled", c->url);
                return GIT_EUSER;
        }
        if (c->o->timeout_ms > 0 && elapsed > c->o->timeout_ms) {
                sw_err_set(&c->cb_err, SW_ETIMEDOUT,
                           "clone of %s took longer than %lld ms (SLIPWAY_CLONE_TIMEOUT_MS)",
                           c->url, (long long)c->o->timeout_ms);
                return GIT_EUSER;
        }
        if (c->o->max_bytes > 0 && c->bytes_before + c->bytes_now > (uint64_t)c->o->max_bytes) {
                sw_err_set(&c->cb_err, SW_ETOOBIG,
                           "%s is larger than the limit of %lld bytes (SLIPWAY_CLONE_MAX_BYTES)",
                           c->url, (long long)c->o->max_bytes);
                return GIT_EUSER;
        }
        return 0;
}

static int clone_watch_check(void *arg)
{
        return clone_check(arg);
}

static void clone_progress_log(struct clone *c, const char *verb)
{
        char b[32];

        bytes_fmt(b, sizeof(b), c->bytes_before + c->bytes_now);
        clone_log(c, "%s %u/%u objects, %s", verb, c->objects_received, c->objects_total, b);
        c->last_log_ms = sw_mono_ms();
}

static int cb_transfer(const git_indexer_progress *stats, void *payload)
{
        struct clone *c = payload;

        /* A new transfer (a submodule) starts counting from zero again. */
        if (stats->received_bytes < c->bytes_now) {
                c->bytes_before += c->bytes_now;
                c->bytes_now = 0;
        }
        c->bytes_now = stats->received_bytes;
        c->objects_total = stats->total_objects;
        c->objects_received = stats->received_objects;
        if (sw_mono_ms() - c->last_log_ms >= CLONE_PROGRESS_EVERY_MS)
                clone_progress_log(c, "received");
        return clone_check(c);
}

static int cb_sideband(const char *str, int len, void *payload)
{
        (void)str;
        (void)len;
        return clone_check(payload);
}

static int cb_credentials(git_credential **out, const char *url, const char *user_from_url,
                          unsigned int allowed, void *payload)
{
        struct clone *c = payload;
        struct url_parts p;
        char *origin = NULL;
        bool same;
        int rc;

        rc = clone_check(c);
        if (rc)
                return rc;
        if (url_split(&p, url) != 0)
                return GIT_PASSTHROUGH;
        origin = url_origin(&p);
        same = strcmp(origin, c->origin) == 0;
        if (scheme_is(&p, "ssh") && c->o->ssh_key && same) {
                const char *user = user_from_url && *user_from_url ? user_from_url : "git";
                free(origin);
                if (allowed & GIT_CREDENTIAL_SSH_KEY) {
                        if (++c->cred_attempts > 1) {
                                sw_err_set(&c->cb_err, SW_EAUTH,
                                           "authentication failed for %s as user '%s': the "
                                           "server refused the key (SLIPWAY_GIT_SSH_KEY)",
                                           c->url, user);
                                return GIT_EAUTH;
                        }
                        return git_credential_ssh_key_new(out, user, NULL, c->o->ssh_key, NULL);
                }
                if (allowed & GIT_CREDENTIAL_USERNAME)
                        return git_credential_username_new(out, user);
                sw_err_set(&c->cb_err, SW_EAUTH,
                           "%s accepts no key authentication (only SLIPWAY_GIT_SSH_KEY is "
                           "offered)",
                           c->url);
                return GIT_EAUTH;
        }
        if (!c->o->password || !same || !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)) {
                sw_err_set(&c->cb_err, SW_EAUTH,
                           "%s asks for credentials and none are configured for %s "
                           "(SLIPWAY_GIT_CREDENTIALS)",
                           c->url, origin);
                free(origin);
                return GIT_EAUTH;
        }
        free(origin);
        if (++c->cred_attempts > 1) {
                /* libgit2 asks again when the server refused what we sent. */
                sw_err_set(&c->cb_err, SW_EAUTH,
                           "authentication failed for %s as user '%s': the server refused the "
                           "user name or password",
                           c->url, c->o->user ? c->o->user : "");
                return GIT_EAUTH;
        }
        return git_credential_userpass_plaintext_new(out, c->o->user ? c->o->user : "",
                                                     c->o->password);
}

/* Base64 (RFC 4648) to bytes; NULL when malformed. *len_out gets the length. */
static unsigned char *b64_decode(const char *in, size_t n, size_t *len_out)
{
        unsigned char *out;
        size_t pad = 0;
        int got;

        if (n == 0 || n % 4 != 0 || n > INT32_MAX)
                return NULL;
        while (pad < 2 && in[n - 1 - pad] == '=')
                pad++;
        out = sw_xmalloc(n / 4 * 3 + 1);
        got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
        if (got < 0 || (size_t)got < pad) {
                free(out);
                return NULL;
        }
        *len_out = (size_t)got - pad;
        return out;
}

/* Whether one known_hosts host pattern (plain or "|1|salt|hash") names `host`. */
static bool known_host_match(const char *pat, size_t n, const char *host)
{
        if (n > 3 && strncmp(pat, "|1|", 3) == 0) {
                const char *bar = memchr(pat + 3, '|', n - 3);
                unsigned char *salt = NULL, *hash = NULL, mac[EVP_MAX_MD_SIZE];
                unsigned int mac_len = 0;
                size_t salt_len = 0, hash_len = 0;
                bool ok = false;

                if (!bar)
                        return false;
                salt = b64_decode(pat + 3, (size_t)(bar - pat - 3), &salt_len);
                hash = b64_decode(bar + 1, n - (size_t)(bar + 1 - pat), &hash_len);
                if (salt && hash &&
                    HMAC(EVP_sha1(), salt, (int)salt_len, (const unsigned char *)host, strlen(host),
                         mac, &mac_len) &&
                    mac_len == hash_len)
                        ok = CRYPTO_memcmp(mac, hash, mac_len) == 0;
                free(salt);
                free(hash);
                return ok;
        }
        return strlen(host) == n && strncasecmp(pat, host, n) == 0;
}

/*
 * 0 when the server's raw host key is listed for `host` in the known_hosts
 * file; SW_EPERM (in c->cb_err) when it is not, or another key is.
 */
static int known_host_check(struct clone *c, const char *host, const unsigned char *key,
                            size_t key_len)
{
        struct sw_err ferr = SW_ERR_INIT;
        char *text = NULL, *line, *next, *name;
        bool listed = false;
        size_t len;
        int port = 22;

        if (c->cur_url) {
                struct url_parts p;
                if (url_split(&p, c->cur_url) == 0 && p.port && p.port_len > 0 && p.port_len < 6)
                        port = (int)strtol(p.port, NULL, 10);
        }
        name = port == 22 ? sw_xstrdup(host) : sw_xasprintf("[%s]:%d", host, port);
        if (sw_read_file(&text, &len, c->o->ssh_known_hosts, CLONE_CREDENTIALS_MAX_BYTES, &ferr) !=
            0) {
                sw_err_set(&c->cb_err, SW_EIO, "SLIPWAY_GIT_SSH_KNOWN_HOSTS: %s", ferr.msg);
                free(name);
                return -1;
        }
        for (line = text; line && *line; line = next) {
                const char *hosts, *b64;
                size_t hosts_len, b64_len, blob_len = 0;
                unsigned char *blob;
                bool match = false;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                line += strspn(line, " \t");
                if (*line == '#' || *line == '@' || *line == '\0')
                        continue; /* comments; @cert-authority and @revoked are not supported */
                hosts = line;
                hosts_len = strcspn(hosts, " \t");
                b64 = hosts + hosts_len;
                b64 += strspn(b64, " \t");
                b64 += strcspn(b64, " \t"); /* the key type */
                b64 += strspn(b64, " \t");
                b64_len = strcspn(b64, " \t\r");
                for (size_t i = 0; i < hosts_len && !match;) {
                        size_t n = strcspn(hosts + i, ",");
                        if (n > hosts_len - i)
                                n = hosts_len - i;
                        match = known_host_match(hosts + i, n, name);
                        i += n + 1;
                }
                if (!match)
                        continue;
                listed = true;
                blob = b64_decode(b64, b64_len, &blob_len);
                match = blob && blob_len == key_len && memcmp(blob, key, key_len) == 0;
                free(blob);
                if (match) {
                        free(text);
                        free(name);
                        return 0;
                }
        }
        if (listed)
                sw_err_set(&c->cb_err, SW_EPERM,
                           "the host key of %s does not match SLIPWAY_GIT_SSH_KNOWN_HOSTS "
                           "(a changed key, or someone in between)",
                           name);
        else
                sw_err_set(&c->cb_err, SW_EPERM, "host %s is not in SLIPWAY_GIT_SSH_KNOWN_HOSTS",
                           name);
        free(text);
        free(name);
        return -1;
}

/* SSH host keys are checked against SLIPWAY_GIT_SSH_KNOWN_HOSTS; TLS is libgit2's default. */
static int cb_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
        struct clone *c = payload;
        const git_cert_hostkey *hk = (const git_cert_hostkey *)cert;

        (void)valid;
        if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
                return GIT_PASSTHROUGH;
        if (!c->o->ssh_known_hosts || !(hk->type & GIT_CERT_SSH_RAW)) {
                sw_err_set(&c->cb_err, SW_EPERM, "cannot verify the host key of %s", host);
                return GIT_ECERTIFICATE;
        }
        if (known_host_check(c, host, (const unsigned char *)hk->hostkey, hk->hostkey_len) != 0)
                return GIT_ECERTIFICATE;
        return 0;
}

static void clone_fetch_opts(git_fetch_options *fo, struct clone *c)
{
        git_fetch_options_init(fo, GIT_FETCH_OPTIONS_VERSION);
        fo->callbacks.transfer_progress = cb_transfer;
        fo->callbacks.sideband_progress = cb_sideband;
        fo->callbacks.credentials = cb_credentials;
        fo->callbacks.certificate_check = cb_certificate;
        fo->callbacks.payload = c;
        fo->prune = GIT_FETCH_PRUNE;
        fo->download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the refspecs take every tag */
        fo->update_fetchhead = 0;
}

/* A transfer finished: log its total once and start counting the next one afresh. */
static void clone_transfer_end(struct clone *c)
{
        if (c->objects_total > 0)
                clone_progress_log(c, "fetched");
        c->bytes_before += c->bytes_now;
        c->bytes_now = 0;
        c->objects_total = c->objects_received = 0;
}

static int lock_acquire(struct clone *c, const char *path, struct sw_err *err)
{
        bool said = false;

        c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (c->lock_fd < 0)
                return sw_err_errno(err, SW_EIO, errno, "open lock file '%s'", path);
        for (;;) {
                if (flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0)
                        return 0;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return sw_err_errno(err, SW_EIO, errno, "lock '%s'", path);
                if (!said) {
                        clone_log(c, "waiting for another clone of %s to finish", c->url);
                        said = true;
                }
                if (clone_check(c) != 0)
                        return sw_err_set(err, c->cb_err.code, "%s", c->cb_err.msg);
                sw_sleep_ms(CLONE_LOCK_POLL_MS);
        }
}

static void lock_release(struct clone *c)
{
        if (c->lock_fd >= 0) {
                flock(c->lock_fd, LOCK_UN);
                close(c->lock_fd);
                c->lock_fd = -1;
        }
}

static bool is_dir(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool url_is_local(const char *url)
{
        return url[0] == '/' || strncmp(url, "file://", 7) == 0 || !strstr(url, "://");
}

/* One repository to fetch and check out: the requested one or a submodule. */
struct target {
        const char *fetch_url; /* as given: may carry a user name */
        const char *url;       /* without user information: logs, mirror key */
        const char *branch;    /* or NULL */
        const char *commit;    /* hex, or NULL */
        const char *dest;      /* its working tree */
};

/*
 * Fetch every branch and tag into the mirror, pruning the deleted ones. The
 * remote is in memory and skips url.*.insteadOf: libgit2 1.5 leaks a PCRE2
 * match block for every configuration entry that this lookup does not match.
 */
static int mirror_fetch(struct clone *c, git_repository *repo, const struct target *t,
                        struct sw_err *err)
{
        char *specs_v[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};
        git_strarray specs = {specs_v, 2};
        git_remote_create_options ro;
        git_remote *remote = NULL;
        git_fetch_options fo;
        git_buf head = GIT_BUF_INIT_CONST(NULL, 0);
        int64_t t0 = sw_mono_ms();
        char took[16];
        int rc;

        git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
        ro.repository = repo;
        ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
        rc = git_remote_create_with_opts(&remote, t->fetch_url, &ro);
        if (rc) {
                rc = clone_git_err(c, rc, err, "remote %s", t->url);
                goto out;
        }
        clone_fetch_opts(&fo, c);
        c->last_log_ms = sw_mono_ms();
        c->cred_attempts = 0;
        c->cur_url = t->fetch_url;
        c->in_transfer = true;
        rc = git_remote_fetch(remote, &specs, &fo, "slipway fetch");
        if (rc)
                rc = clone_git_err(c, rc, err, "fetch %s", t->url);
        c->in_transfer = false;
        if (rc)
                goto out;
        clone_transfer_end(c);
        /* Keep the mirror's HEAD on the server's default branch, as `git clone --mirror` does. */
        if (git_remote_default_branch(&head, remote) == 0)
                git_repository_set_head(repo, head.ptr);
        sw_duration_fmt(took, sizeof(took), sw_mono_ms() - t0);
        clone_log(c, "fetched %s in %s", t->url, took);
        rc = 0;
out:
        git_buf_dispose(&head);
        git_remote_free(remote);
        return rc;
}

/* A new bare repository at `path`, which notes its URL for whoever looks inside. */
static int mirror_init(git_repository **out, struct clone *c, const struct target *t,
                       const char *path, struct sw_err *err)
{
        git_repository *repo = NULL;
        git_config *cfg = NULL;
        int rc;

        rc = git_repository_init(&repo, path, 1);
        if (rc == 0)
                rc = git_repository_config(&cfg, repo);
        if (rc == 0)
                rc = git_config_set_string(cfg, "slipway.url", t->url);
        git_config_free(cfg);
        if (rc) {
                rc = clone_git_err(c, rc, err, "create mirror '%s'", path);
                git_repository_free(repo);
                return rc;
        }
        *out = repo;
        return 0;
}

/*
 * Bring the mirror of t->url up to date. The lock is held on return, even on
 * error; the caller releases it. *path_out gets the mirror's path.
 */
static int mirror_update(git_repository **out, char **path_out, bool *reused_out, struct clone *c,
                         const struct target *t, struct sw_err *err)
{
        char digest[SW_DIGEST_STR_LEN];
        char *lock = NULL, *path = NULL, *tmp = NULL;
        git_repository *repo = NULL;
        bool reused = false;
        int rc;

        sw_sha256_digest(digest, t->url, strlen(t->url));
        path = sw_xasprintf("%s/%s", c->o->cache_dir, digest + 7);
        lock = sw_xasprintf("%s.lock", path);
        tmp = sw_xasprintf("%s.tmp", path);
        rc = sw_mkdir_p(c->o->cache_dir, 0700, err);
        if (rc)
                goto out;
        rc = lock_acquire(c, lock, err);
        if (rc)
                goto out;

        if (is_dir(path)) {
                if (git_repository_open_bare(&repo, path) == 0) {
                        reused = true;
                        clone_log(c, "fetching %s into its mirror", t->url);
                } else {
                        clone_log(c, "the mirror of %s is unreadable; cloning it again", t->url);
                        rc = sw_rm_rf(path, err);
                        if (rc)
                                goto out;
                }
        }
        if (reused) {
                rc = mirror_fetch(c, repo, t, err);
                goto out;
        }
        clone_log(c, "cloning %s", t->url);
        /* A leftover of a crashed or cancelled first clone. */
        rc = sw_rm_rf(tmp, err);
        if (rc == 0)
                rc = mirror_init(&repo, c, t, tmp, err);
        if (rc == 0)
                rc = mirror_fetch(c, repo, t, err);
        git_repository_free(repo);
        repo = NULL;
        if (rc == 0 && rename(tmp, path) != 0)
                rc = sw_err_errno(err, SW_EIO, errno, "rename mirror '%s'", tmp);
        if (rc) {
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(tmp, &ignored);
                goto out;
        }
        rc = git_repository_open_bare(&repo, path);
        if (rc)
                rc = clone_git_err(c, rc, err, "open mirror '%s'", path);
out:
        if (rc == 0) {
                *out = repo;
                repo = NULL;
                *path_out = path;
                path = NULL;
                *reused_out = reused;
        }
        git_repository_free(repo);
        free(lock);
        free(path);
        free(tmp);
        return rc;
}

/* The commit a reference points to, through annotated tags. */
static int ref_commit(git_oid *out, git_repository *repo, const char *name)
{
        git_reference *ref = NULL;
        git_object *obj = NULL;
        int rc = git_reference_lookup(&ref, repo, name);

        if (rc == 0)
                rc = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
        if (rc == 0)
                git_oid_cpy(out, git_object_id(obj));
        git_object_free(obj);
        git_reference_free(ref);
        return rc;
}

/* Resolve the target's branch/tag and commit in the mirror. *ref_out may stay NULL. */
static int resolve(git_oid *out, char **ref_out, struct clone *c, const struct target *t,
                   git_repository *repo, struct sw_err *err)
{
        char *ref = NULL;
        git_oid tip, want;
        git_commit *cm = NULL;
        int rc;

        if (t->branch) {
                char *heads = sw_xasprintf("refs/heads/%s", t->branch);
                char *tags = sw_xasprintf("refs/tags/%s", t->branch);

                if (ref_commit(&tip, repo, heads) == 0) {
                        ref = heads;
                        heads = NULL;
                } else if (ref_commit(&tip, repo, tags) == 0) {
                        ref = tags;
                        tags = NULL;
                }
                free(heads);
                free(tags);
                if (!ref)
                        return sw_err_set(err, SW_ENOTFOUND,
                                          "branch or tag '%s' not found in repository %s",
                                          t->branch, t->url);
        }
        if (!t->commit) {
                git_oid_cpy(out, &tip);
                *ref_out = ref;
                return 0;
        }
        rc = git_oid_fromstrn(&want, t->commit, strlen(t->commit));
        if (rc == 0)
                rc = git_commit_lookup_prefix(&cm, repo, &want, strlen(t->commit));
        if (rc == GIT_ENOTFOUND) {
                rc = sw_err_set(err, SW_ENOTFOUND,
                                "commit '%s' not found in repository %s (on any branch or tag)",
                                t->commit, t->url);
                goto out;
        }
        if (rc) {
                rc = clone_git_err(c, rc, err, "commit '%s' in %s", t->commit, t->url);
                goto out;
        }
        git_oid_cpy(&want, git_commit_id(cm));
        if (ref && !git_oid_equal(&tip, &want) && git_graph_descendant_of(repo, &tip, &want) != 1) {
                rc = sw_err_set(err, SW_ENOTFOUND,
                                "commit '%s' is not on branch or tag '%s' of repository %s",
                                t->commit, t->branch, t->url);
                goto out;
        }
        git_oid_cpy(out, &want);
        *ref_out = ref;
        ref = NULL;
        rc = 0;
out:
        git_commit_free(cm);
        free(ref);
        return rc;
}

/*
 * A fresh working tree at t->dest that borrows the mirror's objects
 * (objects/info/alternates: nothing is copied, and mirrors are never pruned,
 * so the objects stay), checked out at `oid`. On a branch, HEAD is a local
 * branch of that name, like `git clone -b`; otherwise it is detached.
 */
static int worktree_create(git_repository **out, struct clone *c, const struct target *t,
                           git_repository *mirror, const char *mirror_path, const git_oid *oid,
                           const char *ref, struct sw_err *err)
{
        git_repository *wt = NULL;
        git_config *cfg = NULL;
        git_commit *cm = NULL;
        git_reference *r = NULL;
        git_checkout_options ck;
        git_oid target;
        char *alt = NULL, *objects = NULL;
        int rc;

        rc = sw_rm_rf(t->dest, err);
        if (rc == 0)
                rc = sw_mkdir_p(t->dest, 0755, err);
        if (rc)
                goto out;
        rc = git_repository_init(&wt, t->dest, 0);
        if (rc) {
                rc = clone_git_err(c, rc, err, "create '%s'", t->dest);
                goto out;
        }
        alt = sw_xasprintf("%sobjects/info/alternates", git_repository_path(wt));
        objects = sw_xasprintf("%s/objects\n", mirror_path);
        rc = sw_write_file_atomic(alt, objects, strlen(objects), 0644, err);
        if (rc)
                goto out;
        /* Reopen, so that the object database reads the alternates file. */
        git_repository_free(wt);
        wt = NULL;
        rc = git_repository_open(&wt, t->dest);
        /* Relative submodule URLs resolve against origin; builds label images with it. */
        if (rc == 0)
                rc = git_repository_config(&cfg, wt);
        if (rc == 0)
                rc = git_config_set_string(cfg, "remote.origin.url", t->url);
        if (rc == 0)
                rc = git_config_set_string(cfg, "remote.origin.fetch",
                                           "+refs/heads/*:refs/remotes/origin/*");
        if (rc == 0)
                rc = git_commit_lookup(&cm, wt, oid);
        if (rc == 0 && ref && git_reference_name_to_id(&target, mirror, ref) == 0)
                rc = git_reference_create(&r, wt, ref, &target, 1, "slipway clone");
        git_reference_free(r);
        r = NULL;
        if (rc == 0 && ref && strncmp(ref, "refs/heads/", 11) == 0) {
                char *tracking = sw_xasprintf("refs/remotes/origin/%s", ref + 11);
                rc = git_reference_create(&r, wt, tracking, oid, 1, "slipway clone");
                free(tracking);
        }
        if (rc == 0)
                rc = git_repository_set_head_detached(wt, oid);
        if (rc == 0) {
                git_checkout_options_init(&ck, GIT_CHECKOUT_OPTIONS_VERSION);
                ck.checkout_strategy = GIT_CHECKOUT_FORCE;
                rc = git_checkout_tree(wt, (const git_object *)cm, &ck);
        }
        if (rc == 0 && ref && strncmp(ref, "refs/heads/", 11) == 0)
                rc = git_repository_set_head(wt, ref);
        if (rc) {
                rc = clone_git_err(c, rc, err, "check out '%s'", t->dest);
                goto out;
        }
        *out = wt;
        wt = NULL;
out:
        git_reference_free(r);
        git_commit_free(cm);
        git_config_free(cfg);
        git_repository_free(wt);
        free(alt);
        free(objects);
        return rc;
}

/* Fetch t->url into its mirror and check out the resolved commit in t->dest. */
static int target_checkout(git_repository **wt_out, git_oid *oid_out, char **ref_out,
                           bool *reused_out, struct clone *c, const struct target *t,
                           struct sw_err *err)
{
        git_repository *mirror = NULL;
        char *mirror_path = NULL, *ref = NULL;
        int rc;

        rc = mirror_update(&mirror, &mirror_path, reused_out, c, t, err);
        if (rc == 0)
                rc = resolve(oid_out, &ref, c, t, mirror, err);
        if (rc == 0)
                rc = worktree_create(wt_out, c, t, mirror, mirror_path, oid_out, ref, err);
        lock_release(c);
        if (rc == 0 && ref_out) {
                *ref_out = ref;
                ref = NULL;
        }
        git_repository_free(mirror);
        free(mirror_path);
        free(ref);
        return rc;
}

/*
 * A submodule URL relative to its superproject's ("../lib.git" against
 * "git://h/app.git" is "git://h/lib.git"), as git resolves it; an absolute
 * one as is. NULL when it climbs above the base's host or root.
 */
static char *url_resolve(const char *base, const char *rel)
{
        char *b = sw_xstrdup(base), *out;
        size_t len = strlen(b), floor = 0;
        const char *sep = strstr(b, "://");

        if (strncmp(rel, "./", 2) != 0 && strncmp(rel, "../", 3) != 0) {
                free(b);
                return sw_xstrdup(rel);
        }
        if (sep)
                floor = (size_t)(sep - b) + 3 + strcspn(sep + 3, "/");
        while (len > floor && b[len - 1] == '/')
                b[--len] = '\0';
        for (;;) {
                if (strncmp(rel, "./", 2) == 0) {
                        rel += 2;
                } else if (strncmp(rel, "../", 3) == 0) {
                        char *slash = strrchr(b, '/');
                        if (!slash || (size_t)(slash - b) < floor) {
                                free(b);
                                return NULL;
                        }
                        *slash = '\0';
                        rel += 3;
                } else {
                        break;
                }
        }
        out = sw_xasprintf("%s/%s", b, rel);
        free(b);
        return out;
}

struct submodule {
        char *name;
        char *path;
        char *url;
};

struct submodule_list {
        struct submodule *v;
        size_t n;
};

/* Collect submodule.<name>.path and .url from .gitmodules (no regex: see mirror_fetch). */
static int collect_submodule(const git_config_entry *e, void *payload)
{
        struct submodule_list *l = payload;
        const char *name = e->name, *dot;
        size_t name_len;
        bool is_path, is_url;
        struct submodule *s = NULL;

        if (strncmp(name, "submodule.", 10) != 0)
                return 0;
        name += 10;
        dot = strrchr(name, '.');
        if (!dot || dot == name)
                return 0;
        is_path = strcmp(dot, ".path") == 0;
        is_url = strcmp(dot, ".url") == 0;
        if (!is_path && !is_url)
                return 0;
        name_len = (size_t)(dot - name);
        for (size_t i = 0; i < l->n; i++)
                if (strlen(l->v[i].name) == name_len && strncmp(l->v[i].name, name, name_len) == 0)
                        s = &l->v[i];
        if (!s) {
                l->v = sw_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
                s = &l->v[l->n++];
                memset(s, 0, sizeof(*s));
                s->name = sw_xstrndup(name, name_len);
        }
        if (is_path) {
                free(s->path);
                s->path = sw_xstrdup(e->value);
        } else {
                free(s->url);
                s->url = sw_xstrdup(e->value);
        }
        return 0;
}

static void submodule_list_release(struct submodule_list *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].name);
                free(l->v[i].path);
                free(l->v[i].url);
        }
        free(l->v);
}

/* A relative path inside the working tree: no "..", ".", ".git" component, no leading '/'. */
static bool path_is_inside(const char *path)
{
        const char *p = path;

        if (!*p || *p == '/')
                return false;
        while (*p) {
                size_t n = strcspn(p, "/");
                if ((n == 1 && p[0] == '.') || (n == 2 && strncmp(p, "..", 2) == 0) ||
                    (n == 4 && strncasecmp(p, ".git", 4) == 0) || n == 0)
                        return false;
                p += n;
                if (*p == '/')
                        p++;
        }
        return true;
}

/*
 * Check out every submodule of `repo` (cloned from `base_url`) at the commit
 * recorded in its HEAD tree, each through its own mirror, then theirs; mark
 * each initialised in the superproject's configuration, like `git submodule
 * update --init --recursive`. Submodules are read from .gitmodules and the
 * tree directly: libgit2's submodule API would leak (see mirror_fetch).
 */
static int submodules_update(struct clone *c, git_repository *repo, const char *base_url, int depth,
                             struct sw_err *err)
{
        struct submodule_list list = {NULL, 0};
        git_config *mods = NULL, *cfg = NULL;
        git_commit *head = NULL;
        git_tree *tree = NULL;
        git_oid head_id;
        char *gitmodules = sw_xasprintf("%s.gitmodules", git_repository_workdir(repo));
        int rc = 0;

        if (access(gitmodules, F_OK) != 0)
                goto out; /* no submodules */
        rc = git_config_open_ondisk(&mods, gitmodules);
        if (rc == 0)
                rc = git_config_foreach(mods, collect_submodule, &list);
        if (rc == 0)
                rc = git_repository_config(&cfg, repo);
        if (rc == 0)
                rc = git_reference_name_to_id(&head_id, repo, "HEAD");
        if (rc == 0)
                rc = git_commit_lookup(&head, repo, &head_id);
        if (rc == 0)
                rc = git_commit_tree(&tree, head);
        if (rc) {
                rc = clone_git_err(c, rc, err, "read the submodules of %s", base_url);
                goto out;
        }
        if (list.n > 0 && depth >= CLONE_SUBMODULE_DEPTH_MAX) {
                rc = sw_err_set(err, SW_ETOOBIG, "submodules of %s nest deeper than %d levels",
                                c->url, CLONE_SUBMODULE_DEPTH_MAX);
                goto out;
        }
        for (size_t i = 0; i < list.n && rc == 0; i++) {
                const struct submodule *s = &list.v[i];
                git_tree_entry *te = NULL;
                git_repository *sub = NULL;
                struct url_parts p;
                struct target t = {0};
                char *url = NULL, *clean = NULL, *dest = NULL, *key = NULL;
                char sha[GIT_OID_HEXSZ + 1];
                bool reused;
                git_oid got;

                if (!s->path || !s->url)
                        continue; /* git ignores an incomplete entry too */
                if (!path_is_inside(s->path)) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "submodule '%s' of %s: path '%s' is outside the "
                                        "working tree",
                                        s->name, base_url, s->path);
                        goto next;
                }
                if (git_tree_entry_bypath(&te, tree, s->path) != 0 ||
                    git_tree_entry_filemode(te) != GIT_FILEMODE_COMMIT)
                        goto next; /* declared but not recorded in the tree: nothing to check out */
                url = url_resolve(base_url, s->url);
                if (!url) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "submodule '%s' of %s: the relative URL '%s' leaves "
                                        "the server",
                                        s->name, base_url, s->url);
                        goto next;
                }
                if (url_is_local(url) && !c->local) {
                        /* A remote repository must not read the worker's own files. */
                        rc = sw_err_set(err, SW_EPERM,
                                        "submodule '%s' of %s points to the local path '%s'; "
                                        "only repositories cloned from a local path may do that",
                                        s->name, base_url, url);
                        goto next;
                }
                if ((strncmp(url, "ssh://", 6) == 0 && !c->o->ssh_key) ||
                    (!url_is_local(url) && !strstr(url, "://")) ||
                    sw_valid_repo_url(url, "submodule URL", err) != 0) {
                        sw_err_clear(err);
                        rc = sw_err_set(err, SW_EINVAL,
                                        "submodule '%s' of %s: unsupported URL '%s' (https://, "
                                        "http://, git://, ssh:// with a key, file:// or a path)",
                                        s->name, base_url, url);
                        goto next;
                }
                if (url_split(&p, url) == 0 && p.password) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "submodule '%s' of %s: its URL must not contain a "
                                        "password",
                                        s->name, base_url);
                        goto next;
                }
                rc = step_clone_url_clean(&clean, url, err);
                if (rc)
                        goto next;
                git_oid_tostr(sha, sizeof(sha), git_tree_entry_id(te));
                dest = sw_xasprintf("%s%s", git_repository_workdir(repo), s->path);
                t.fetch_url = url;
                t.url = clean;
                t.commit = sha;
                t.dest = dest;
                clone_log(c, "submodule %s from %s at %s", s->path, clean, sha);
                rc = target_checkout(&sub, &got, NULL, &reused, c, &t, err);
                if (rc) {
                        sw_err_wrap(err, "submodule '%s'", s->path);
                        goto next;
                }
                key = sw_xasprintf("submodule.%s.url", s->name);
                rc = git_config_set_string(cfg, key, url);
                free(key);
                key = sw_xasprintf("submodule.%s.active", s->name);
                if (rc == 0)
                        rc = git_config_set_bool(cfg, key, 1);
                if (rc) {
                        rc = clone_git_err(c, rc, err, "initialise submodule '%s'", s->name);
                        goto next;
                }
                c->submodules++;
                rc = submodules_update(c, sub, url, depth + 1, err);
        next:
                git_tree_entry_free(te);
                git_repository_free(sub);
                free(url);
                free(clean);
                free(dest);
                free(key);
        }
out:
        git_tree_free(tree);
        git_commit_free(head);
        git_config_free(cfg);
        git_config_free(mods);
        submodule_list_release(&list);
        free(gitmodules);
        return rc;
}

static int check_options(const struct step_clone_options *o, struct sw_err *err)
{
        if (!o->url || !o->cache_dir || !o->dest)
                return sw_err_set(err, SW_EINVAL, "clone: url, cache_dir and dest are required");
        if (o->cache_dir[0] != '/' || o->dest[0] != '/')
                return sw_err_set(err, SW_EINVAL, "clone: cache_dir and dest must be absolute");
        if (sw_valid_repo_url(o->url, "repository", err))
                return SW_EINVAL;
        if (strncmp(o->url, "ssh://", 6) == 0 && (!o->ssh_key || !o->ssh_known_hosts))
                return sw_err_set(err, SW_EINVAL,
                                  "repository: ssh:// needs a key and the server's host key "
                                  "(SLIPWAY_GIT_SSH_KEY and SLIPWAY_GIT_SSH_KNOWN_HOSTS)");
        if (!o->branch && !o->commit)
                return sw_err_set(err, SW_EINVAL, "clone: a branch, a tag or a commit is required");
        if (o->branch && sw_valid_git_ref(o->branch, "branch", err))
                return SW_EINVAL;
        if (o->commit && sw_valid_git_commit(o->commit, "commit", err))
                return SW_EINVAL;
        return 0;
}

int step_clone_run(struct step_clone_result *out, const struct step_clone_options *opts,
                   struct sw_err *err)
{
        struct clone c;
        struct url_parts p;
        struct target t = {0};
        struct step__clone_watch watch = {clone_watch_check, &c};
        git_repository *wt = NULL;
        char *ref = NULL;
        bool reused = false;
        git_oid oid;
        char took[16];
        int rc;

        memset(&c, 0, sizeof(c));
        c.o = opts;
        c.lock_fd = -1;
        c.t0_ms = sw_mono_ms();
        rc = check_options(opts, err);
        if (rc)
                return rc;
        rc = step_clone_url_clean(&c.url, opts->url, err);
        if (rc)
                return rc;
        c.local = url_is_local(opts->url);
        c.origin = url_split(&p, opts->url) == 0 ? url_origin(&p) : sw_xstrdup("");

        /* The TCP streams of this thread check the limits and cancellation too. */
        step__clone_watch_set(&watch);
        t.fetch_url = opts->url;
        t.url = c.url;
        t.branch = opts->branch;
        t.commit = opts->commit;
        t.dest = opts->dest;
        rc = target_checkout(&wt, &oid, &ref, &reused, &c, &t, err);
        if (rc == 0 && !opts->no_submodules)
                rc = submodules_update(&c, wt, opts->url, 0, err);
        if (rc)
                goto out;

        memset(out, 0, sizeof(*out));
        git_oid_tostr(out->commit, sizeof(out->commit), &oid);
        out->ref = ref;
        ref = NULL;
        out->url = c.url;
        c.url = NULL;
        out->path = sw_xstrdup(opts->dest);
        out->mirror_reused = reused;
        out->submodules = c.submodules;
        sw_duration_fmt(took, sizeof(took), sw_mono_ms() - c.t0_ms);
        clone_log(&c, "checked out %s%s%s in %s (%s)", out->commit, out->ref ? " of " : "",
                  out->ref ? out->ref : "", out->path, took);
out:
        step__clone_watch_set(NULL);
        git_repository_free(wt);
        if (rc) {
                /* Nothing half-made is left behind; the mirrors stay consistent. */
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(opts->dest, &ignored);
        }
        lock_release(&c);
        free(ref);
        free(c.url);
        free(c.origin);
        return rc;
}

void step_clone_result_release(struct step_clone_result *r)
{
        if (!r)
                return;
        free(r->ref);
        free(r->url);
        free(r->path);
        memset(r, 0, sizeof(*r));
}

/* --- the pipeline step --- */

static void step_log_line(void *arg, const char *line)
{
        eng_step_log(arg, "%s", line);
}

static bool step_is_cancelled(void *arg)
{
        return eng_step_cancelled(arg);
}

/*
 * The clone step: the request's repository at its branch, tag or commit,
 * checked out in $SLIPWAY_DATA/work/<job id>/src for the build step, which
 * finds the path in this step's output.
 */
static int step_clone_step_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const struct sw_config *cfg = eng_step_config(ctx);
        const json_t *req = eng_step_output(ctx, "validate");
        struct step_clone_options o = STEP_CLONE_OPTIONS_INIT;
        struct step_clone_result res;
        char *user = NULL, *password = NULL, *cache = NULL, *dest = NULL;
        int rc;

        if (!json_is_object(req))
                req = eng_step_payload(ctx);
        o.url = sw_json_str(req, "repo", NULL);
        o.branch = sw_json_str(req, "branch", NULL);
        o.commit = sw_json_str(req, "commit", NULL);
        if (!o.url)
                return sw_err_set(err, SW_EINVAL, "the request names no repository ('repo')");
        if (!cfg || !cfg->data)
                return sw_err_set(err, SW_EINVAL, "SLIPWAY_DATA is not set");
        if (cfg->git_credentials &&
            (strncmp(o.url, "https://", 8) == 0 || strncmp(o.url, "http://", 7) == 0)) {
                rc = step_clone_credentials_lookup(&user, &password, cfg->git_credentials, o.url,
                                                   err);
                if (rc && rc != SW_ENOTFOUND)
                        return rc;
                sw_err_clear(err);
                eng_step_add_secret(ctx, password);
        }
        cache = sw_xasprintf("%s/git", cfg->data);
        dest = sw_xasprintf("%s/work/%lld/src", cfg->data, (long long)eng_step_job_id(ctx));
        o.user = user;
        o.password = password;
        o.cache_dir = cache;
        o.dest = dest;
        o.ssh_key = cfg->git_ssh_key;
        o.ssh_known_hosts = cfg->git_ssh_known_hosts;
        o.max_bytes = cfg->clone_max_bytes;
        o.timeout_ms = cfg->clone_timeout_ms;
        o.log = step_log_line;
        o.cancelled = step_is_cancelled;
        o.arg = ctx;

        rc = step_clone_run(&res, &o, err);
        if (rc == 0) {
                *output = json_pack("{s:s,s:s?,s:s,s:s}", "commit", res.commit, "ref", res.ref,
                                    "path", res.path, "url", res.url);
                step_clone_result_release(&res);
        }
        free(user);
        sw_free_secret(password);
        free(cache);
        free(dest);
        return rc;
}

const struct eng_step_def step_clone_def = {
        .name = "clone",
        .summary = "fetch the repository and check out the commit",
        .run = step_clone_step_run,
};
