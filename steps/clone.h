/*
 * clone.h - fetch a git repository into a mirror cache and check out one commit.
 *
 * step_clone_run() keeps one bare mirror per repository URL under
 * `cache_dir/<sha256 of the URL>/`, so that the second clone of a URL is a
 * fetch. The mirror is created in a temporary directory and renamed into
 * place when complete; a lock file next to it (`<sha256>.lock`, flock)
 * serialises the workers and processes that update one mirror. The working
 * tree `dest` is a new repository that borrows the mirror's objects
 * (objects/info/alternates; mirrors are never pruned or garbage-collected,
 * so borrowed objects stay), checked out at the resolved commit, with its
 * `origin` remote set to the repository URL. Submodules are checked out
 * recursively at their recorded commits, each from its own URL through its
 * own mirror; a repository cloned from the network may not have submodules
 * on local paths.
 *
 * Credentials: a URL may not carry a password. A user name and password in
 * the options are offered (HTTP Basic, through libgit2's credential
 * callback) only to the scheme, host and port of the repository URL, never
 * to a submodule on another host; so is the ssh key for ssh:// URLs, whose
 * servers must present a host key listed in `ssh_known_hosts` (plain or
 * hashed entries; @cert-authority and @revoked lines are ignored).
 *
 * Limits: `max_bytes` caps the bytes received over all transfers of one call
 * (SW_ETOOBIG), `timeout_ms` its duration (SW_ETIMEDOUT); both, and the
 * cancellation callback, are checked whenever libgit2 reports progress and,
 * once step_clone_global_init() ran, every 100 ms while a git:// or
 * http(s):// connection waits (a server that stops sending). ssh:// runs on
 * libssh2's own socket, which that does not reach.
 *
 * Errors: SW_EINVAL bad options or URL; SW_ENOTFOUND unknown branch, tag,
 * commit or repository; SW_EAUTH credentials missing or refused; SW_EPERM an
 * ssh host key or TLS certificate not trusted, or a local submodule of a
 * remote repository; SW_EUNAVAIL the server cannot be reached (transient);
 * SW_ETOOBIG, SW_ETIMEDOUT, SW_ECANCELED; SW_EIO local file system trouble.
 *
 * Threads: any number of threads may clone at once (each call owns its
 * libgit2 objects); git_libgit2_init() must have run (main() does it).
 */
#ifndef SW_STEPS_CLONE_H
#define SW_STEPS_CLONE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct step_clone_options {
        const char *url;      /* https://, http://, git://, ssh://, file:// or an absolute path */
        const char *branch;   /* a branch or tag name; NULL: the commit alone decides */
        const char *commit;   /* 4-40 hex digits; with a branch it must be reachable from it */
        const char *user;     /* HTTP Basic user name; NULL: anonymous */
        const char *password; /* its password; borrowed, never logged */
        const char *ssh_key;  /* private key file for ssh:// (OpenSSH or PEM, no passphrase) */
        const char *ssh_known_hosts; /* known_hosts file that must list an ssh server's key */
        const char *cache_dir;       /* where mirrors live: $SLIPWAY_DATA/git */
        const char *dest;            /* the working tree; whatever is there is removed first */
        int64_t max_bytes;           /* 0: no limit */
        int64_t timeout_ms;          /* 0: no limit */
        bool no_submodules;          /* leave submodules uninitialised */
        /* One progress or status line; may be NULL. */
        void (*log)(void *arg, const char *line);
        /* True when the caller wants the clone to stop; may be NULL. */
        bool (*cancelled)(void *arg);
        void *arg;
};

#define STEP_CLONE_OPTIONS_INIT                                                                    \
        {                                                                                          \
                0                                                                                  \
        }

struct step_clone_result {
        char commit[41];    /* the checked-out commit, 40 hex digits */
        char *ref;          /* "refs/heads/main", "refs/tags/v1", or NULL for a bare commit */
        char *url;          /* the repository URL without any user information */
        char *path;         /* the working tree (a copy of opts->dest) */
        bool mirror_reused; /* the mirror existed: this was a fetch */
        int submodules;     /* submodules checked out, recursively */
};

/*
 * Fetch `opts->url` into its mirror and check out the resolved commit in
 * `opts->dest`. On success *out is filled (release with
 * step_clone_result_release()); on failure `dest` does not exist and the
 * mirror is either absent or a complete older state. Idempotent.
 */
int step_clone_run(struct step_clone_result *out, const struct step_clone_options *opts,
                   struct sw_err *err);
void step_clone_result_release(struct step_clone_result *r);

/*
 * Install the clone's TCP stream in libgit2 (process-wide), so that a server
 * that stops sending is noticed by the timeout and by cancellation. Call once
 * from main() after git_libgit2_init(), before threads start. Without it,
 * clones work but wait on a silent server as long as the kernel lets them.
 */
int step_clone_global_init(struct sw_err *err);

/*
 * `url` without its user information ("https://u@h/r" -> "https://h/r").
 * SW_EINVAL (naming no secret) when it carries a password. The caller frees.
 */
int step_clone_url_clean(char **out, const char *url, struct sw_err *err);

/*
 * The user and password for `url` from a git-credential-store file (one
 * "scheme://user:password@host[:port][/path]" per line, percent-encoded).
 * The first line with the same scheme, host and port (and a path that is
 * a prefix of the URL's, when it has one) wins. SW_ENOTFOUND when none
 * matches. The caller frees *user_out and sw_free_secret()s *password_out.
 */
int step_clone_credentials_lookup(char **user_out, char **password_out, const char *file,
                                  const char *url, struct sw_err *err);

struct sw_config;

/* `slipway clone URL [--branch B] [--commit C] DIR` (steps/clone_cmd.c); an exit code. */
int step_clone_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_STEPS_CLONE_H */
