/*
 * libs.h - the global initialisation of libcurl and libgit2, done once.
 *
 * STYLE.md asks for library global init in main() before threads start.
 * Most commands do exactly that. An idle `slipway worker` should stay small,
 * though, and initialising libcurl loads and configures all of OpenSSL (about
 * 4 MB of resident pages), so the worker defers it to its first job: the
 * pool calls sw_libs_init() before running any step, and pthread_once makes
 * the first call the only one, with every other thread waiting for it.
 */
#ifndef SW_LIBS_H
#define SW_LIBS_H

/* Initialise libcurl and libgit2 once per process; safe from any thread. */
void sw_libs_init(void);
/*
 * Initialise libcurl alone, once; for commands that never use git (`build`):
 * libgit2's init reads and parses the whole CA bundle, about 10 ms of CPU on
 * every start. A later sw_libs_init() still sets up libgit2.
 */
void sw_libs_init_http(void);
/* Undo sw_libs_init() at exit, if it ran; call from main() after threads stopped. */
void sw_libs_shutdown(void);

#endif /* SW_LIBS_H */
