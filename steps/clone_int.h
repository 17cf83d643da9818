/*
 * clone_int.h - shared between the files of the clone step only.
 *
 * libgit2 1.5 has no socket timeouts: a server that stops sending leaves a
 * fetch blocked in recv(2) forever, deaf to the progress callbacks that
 * enforce limits and cancellation. clone_stream.c replaces libgit2's TCP
 * stream (used by git://, http:// and, under TLS, https://) with one that
 * waits in short poll(2) slices and asks the running clone, between slices,
 * whether to go on.
 */
#ifndef SW_STEPS_CLONE_INT_H
#define SW_STEPS_CLONE_INT_H

/* What the stream asks between waits; `check` returns non-zero to stop the transfer. */
struct step__clone_watch {
        int (*check)(void *arg);
        void *arg;
};

/*
 * Make `w` the watch of the calling thread's streams until it is replaced
 * (NULL: none, the streams wait without end like libgit2's own).
 */
void step__clone_watch_set(const struct step__clone_watch *w);

#endif /* SW_STEPS_CLONE_INT_H */
