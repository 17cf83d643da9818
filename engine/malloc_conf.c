/*
 * malloc_conf.c - jemalloc's settings, linked into the programs that run
 * the orchestrator's API server (slipway-core and the benchmarks), and
 * only when they are built against jemalloc (not under the sanitizers).
 *
 * The API server makes and frees tens of thousands of small JSON nodes a
 * second from a dozen threads; with glibc's allocator that traffic (arena
 * locks, consolidation, trimming and re-growing the heaps) took about a
 * third of the CPU of bench_scheduler. jemalloc, as Redis ships it, does
 * the same work in a fraction of that. Freed pages go back to the system
 * after 10 s unused, not at once, so that the next burst does not fault
 * them in again.
 */
#ifdef SLIPWAY_JEMALLOC
#include <jemalloc/jemalloc.h>

const char *malloc_conf = "dirty_decay_ms:10000,muzzy_decay_ms:10000,background_thread:false";
#else
typedef int sw_no_jemalloc; /* an empty translation unit is not ISO C */
#endif
