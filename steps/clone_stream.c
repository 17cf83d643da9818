/*
 * clone_stream.c - libgit2's TCP stream with timeouts and cancellation
 * (see clone_int.h, and step_clone_global_init() in clone.h).
 *
 * Every wait (connect, read, write) is a loop of poll(2) slices of at most
 * CLONE_STREAM_SLICE_MS; between slices the calling thread's watch is asked
 * whether to go on. The watch is reached through a thread-local pointer:
 * libgit2 creates streams with only a host and a port, so this is the one
 * way to hand them the clone's limits and cancellation. It is set by the
 * thread running a clone around its transfers and read by that thread only.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/stream.h>

#include "common/mem.h"
#include "steps/clone.h"
#include "steps/clone_int.h"
#include "common/banned.h"

#define CLONE_STREAM_SLICE_MS 100

static _Thread_local const struct step__clone_watch *thread_watch;

void step__clone_watch_set(const struct step__clone_watch *w)
{
        thread_watch = w;
}

struct clone_stream {
        git_stream parent; /* first: libgit2 casts between the two */
        char *host;
        char *port;
        int fd;
};

/* Wait until `fd` is ready for `events`; -1 with a libgit2 error when told to stop. */
static int stream_wait(int fd, short events)
{
        for (;;) {
                struct pollfd p = {fd, events, 0};
                int n;

                if (thread_watch && thread_watch->check(thread_watch->arg) != 0) {
                        git_error_set_str(GIT_ERROR_NET, "transfer stopped by the clone");
                        return -1;
                }
                n = poll(&p, 1, thread_watch ? CLONE_STREAM_SLICE_MS : -1);
                if (n > 0)
                        return 0;
                if (n < 0 && errno != EINTR) {
                        git_error_set(GIT_ERROR_OS, "poll: %s", strerror(errno));
                        return -1;
                }
        }
}

static int stream_connect(git_stream *s)
{
        struct clone_stream *st = (struct clone_stream *)s;
        struct addrinfo hints, *res = NULL, *ai;
        int rc, last_errno = 0;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        rc = getaddrinfo(st->host, st->port, &hints, &res);
        if (rc != 0) {
                git_error_set(GIT_ERROR_NET, "failed to resolve address for %s: %s", st->host,
                              gai_strerror(rc));
                return -1;
        }
        for (ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                ai->ai_protocol);
                int soerr = 0;
                socklen_t len = sizeof(soerr);

                if (fd < 0) {
                        last_errno = errno;
                        continue;
                }
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                        if (errno != EINPROGRESS) {
                                last_errno = errno;
                                close(fd);
                                continue;
                        }
                        if (stream_wait(fd, POLLOUT) != 0) {
                                close(fd);
                                freeaddrinfo(res);
                                return -1;
                        }
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr) {
                                last_errno = soerr ? soerr : errno;
                                close(fd);
                                continue;
                        }
                }
                st->fd = fd;
                freeaddrinfo(res);
                return 0;
        }
        freeaddrinfo(res);
        git_error_set(GIT_ERROR_NET, "failed to connect to %s: %s", st->host,
                      strerror(last_errno ? last_errno : ECONNREFUSED));
        return -1;
}

static ssize_t stream_read(git_stream *s, void *data, size_t len)
{
        struct clone_stream *st = (struct clone_stream *)s;

        for (;;) {
                ssize_t n = recv(st->fd, data, len, 0);

                if (n >= 0)
                        return n;
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        git_error_set(GIT_ERROR_NET, "error receiving data from %s: %s", st->host,
                                      strerror(errno));
                        return -1;
                }
                if (stream_wait(st->fd, POLLIN) != 0)
                        return -1;
        }
}

static ssize_t stream_write(git_stream *s, const char *data, size_t len, int flags)
{
        struct clone_stream *st = (struct clone_stream *)s;
        size_t off = 0;

        (void)flags;
        while (off < len) {
                ssize_t n = send(st->fd, data + off, len - off, MSG_NOSIGNAL);

                if (n >= 0) {
                        off += (size_t)n;
                        continue;
                }
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        git_error_set(GIT_ERROR_NET, "error sending data to %s: %s", st->host,
                                      strerror(errno));
                        return -1;
                }
                if (stream_wait(st->fd, POLLOUT) != 0)
                        return -1;
        }
        return (ssize_t)off;
}

static int stream_close(git_stream *s)
{
        struct clone_stream *st = (struct clone_stream *)s;

        if (st->fd >= 0)
                close(st->fd);
        st->fd = -1;
        return 0;
}

static void stream_free(git_stream *s)
{
        struct clone_stream *st = (struct clone_stream *)s;

        if (!st)
                return;
        if (st->fd >= 0)
                close(st->fd);
        free(st->host);
        free(st->port);
        free(st);
}

static int stream_new(git_stream **out, const char *host, const char *port)
{
        struct clone_stream *st = sw_xcalloc(1, sizeof(*st));

        st->parent.version = GIT_STREAM_VERSION;
        st->parent.connect = stream_connect;
        st->parent.read = stream_read;
        st->parent.write = stream_write;
        st->parent.close = stream_close;
        st->parent.free = stream_free;
        st->host = sw_xstrdup(host);
        st->port = sw_xstrdup(port);
        st->fd = -1;
        *out = &st->parent;
        return 0;
}

int step_clone_global_init(struct sw_err *err)
{
        git_stream_registration reg;

        memset(&reg, 0, sizeof(reg));
        reg.version = GIT_STREAM_VERSION;
        reg.init = stream_new;
        if (git_stream_register(GIT_STREAM_STANDARD, &reg) != 0)
                return sw_err_set(err, SW_EINTERNAL,
                                  "register the clone's TCP stream with libgit2");
        return 0;
}
