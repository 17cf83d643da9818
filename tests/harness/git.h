/*
 * git.h - test repositories made with the git CLI, and real git servers on
 * loopback: `git daemon` (git://) and smart HTTP (`git http-backend` run by
 * fcgiwrap behind nginx, with Basic auth).
 *
 * Servers listen on 127.0.0.1 on a free port, keep their files in a
 * temporary directory, and are stopped by PID (SIGTERM, then SIGKILL after
 * 5 s). Helpers print what went wrong on stderr and return -1 (or NULL);
 * tests CHECK their results. Commands run with a fixed author and no user
 * or system git configuration.
 *
 * Threads: call from the test's main thread.
 */
#ifndef SW_TEST_GIT_H
#define SW_TEST_GIT_H

#include <stdbool.h>
#include <sys/types.h>

/* Run `sh -c` on the formatted command line; its exit status, or -1. */
int t_git_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, returning its stdout without the trailing newline (malloc'ed), or NULL on failure. */
char *t_git_sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int t_git_free_port(void);
/* 0 once 127.0.0.1:port accepts a connection, -1 after timeout_ms. */
int t_git_wait_port(int port, int timeout_ms);

/*
 * A bare repository `root/name.git` (what the servers publish) and a working
 * clone of it in `root/name.work` with one commit on `main` (a README).
 * Returns 0 or -1.
 */
int t_git_repo_create(const char *root, const char *name);
/*
 * In the working clone `work`: switch to `branch` (created from the current
 * commit when missing), write `content` to `file`, commit and push the branch
 * to origin. *sha_out (41 bytes) gets the new commit. Returns 0 or -1.
 */
int t_git_commit_push(char sha_out[41], const char *work, const char *branch, const char *file,
                      const char *content);
/* Tag the current commit of `work` (annotated when `annotated`) and push the tag. */
int t_git_tag_push(const char *work, const char *tag, bool annotated);
/* Add the repository at `url` as submodule `path` of `work`, commit and push. */
int t_git_submodule_add_push(char sha_out[41], const char *work, const char *url, const char *path);

struct t_git_daemon {
        pid_t pid;
        int port;
};

/* `git daemon --export-all` for the bare repositories under `base_path`. */
int t_git_daemon_start(struct t_git_daemon *d, const char *base_path, const char *log_dir);
void t_git_daemon_stop(struct t_git_daemon *d);

struct t_git_http {
        pid_t nginx_pid;
        pid_t fcgi_pid;
        int port;
        char *dir; /* nginx prefix: config, htpasswd, socket, logs */
};

/*
 * nginx on a free port serving the bare repositories under `project_root`
 * through `git http-backend` (fcgiwrap). With `user` set, every request needs
 * HTTP Basic auth as user/password; with NULL, none. `limit_rate_kib` > 0
 * slows every response to that many KiB/s (nginx limit_rate), for tests that
 * need a transfer in flight. `dir` must exist.
 */
int t_git_http_start(struct t_git_http *h, const char *project_root, const char *dir,
                     const char *user, const char *password, int limit_rate_kib);
void t_git_http_stop(struct t_git_http *h);

struct t_git_sshd {
        pid_t pid;
        int port;
        char *user;              /* who to log in as: the user running the test */
        char *key;               /* the client's private key (ed25519, no passphrase) */
        char *other_key;         /* a key the server does not accept */
        char *known_hosts;       /* "[127.0.0.1]:PORT" and the server's host key */
        char *wrong_known_hosts; /* the same name with another host key */
};

/*
 * OpenSSH's sshd on a free port of 127.0.0.1 with fresh host and client keys
 * in `dir` (which must exist), accepting only `key`. Repositories are then
 * reachable as ssh://USER@127.0.0.1:PORT/ABSOLUTE/PATH.
 */
int t_git_sshd_start(struct t_git_sshd *s, const char *dir);
void t_git_sshd_stop(struct t_git_sshd *s);

#endif /* SW_TEST_GIT_H */
