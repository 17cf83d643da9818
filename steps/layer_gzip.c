/*
 * layer_gzip.c - a deterministic gzip writer that compresses on several cores.
 *
 * Compression is the slow part of packing a layer (zlib level 6 runs at about
 * 25 MiB/s on one core here; libdeflate at the same level is 2-3 times
 * faster, but still short of 100 MiB/s alone). The input is cut into fixed
 * 1 MiB chunks and each chunk becomes one complete gzip member (RFC 1952,
 * section 2.2: a gzip file is a series of members), compressed by libdeflate
 * on a small pool of worker threads and written in input order. gunzip,
 * zlib's gzread, Go's compress/gzip (what registries, containerd and skopeo
 * use) and libarchive all read the members back as one stream. Chunks share
 * no dictionary, which costs well under 1% of ratio at 1 MiB and lets any
 * chunk be compressed on its own.
 *
 * Reproducibility: the chunk boundaries depend only on the input offset, the
 * level is fixed by the caller and libdeflate's output depends only on its
 * input and level (no CPU-dependent matching), and members are written in
 * order, so the bytes are the same for any thread count or timing: a layer
 * has the same digest on a one-core and a many-core machine. Empty input
 * gives one empty member, so the output is always a valid gzip file.
 *
 * Threads: the writer belongs to one caller thread; it owns `threads` worker
 * threads, started by step__gz_new() and joined by step__gz_free(). Chunk
 * slots are reused round robin; the caller emits finished chunks in order.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#include "common/mem.h"
#include "steps/layer_int.h"
#include "common/banned.h"

#define GZ_MAX_THREADS 16

enum gz_slot_state { GZ_FREE, GZ_QUEUED, GZ_RUNNING, GZ_DONE };

struct gz_slot {
        unsigned char *in; /* STEP__GZ_CHUNK bytes */
        size_t in_len;
        unsigned char *out;
        size_t out_cap;
        size_t out_len;
        bool failed;
        enum gz_slot_state state;
};

struct step__gz {
        int level;
        int nthreads;
        pthread_t tids[GZ_MAX_THREADS];
        int started;
        pthread_mutex_t mu;
        pthread_cond_t work; /* a slot was queued, or stop */
        pthread_cond_t done; /* a slot finished */
        bool stop;
        struct gz_slot *slots;
        size_t nslots;
        size_t fill;     /* the slot being filled */
        size_t emit_at;  /* the oldest slot not yet emitted */
        size_t inflight; /* queued, running or done but not emitted */
        size_t members;  /* chunks submitted so far */
        struct libdeflate_compressor *inline_c;
        step__gz_emit_fn emit;
        void *emit_ctx;
};

/* Compresses one slot into a whole gzip member; false when the output did not fit. */
static bool gz_compress(struct libdeflate_compressor *c, struct gz_slot *s)
{
        if (!c)
                return false;
        s->out_len = libdeflate_gzip_compress(c, s->in, s->in_len, s->out, s->out_cap);
        return s->out_len > 0;
}

static void *gz_worker(void *arg)
{
        struct step__gz *g = arg;
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(g->level);

        pthread_mutex_lock(&g->mu);
        for (;;) {
                struct gz_slot *s = NULL;
                while (!g->stop) {
                        /* The oldest queued slot first, so that output flows in order. */
                        for (size_t i = 0; i < g->nslots && !s; i++) {
                                size_t k = (g->emit_at + i) % g->nslots;
                                if (g->slots[k].state == GZ_QUEUED)
                                        s = &g->slots[k];
                        }
                        if (s)
                                break;
                        pthread_cond_wait(&g->work, &g->mu);
                }
                if (!s)
                        break;
                s->state = GZ_RUNNING;
                pthread_mutex_unlock(&g->mu);
                bool ok = gz_compress(c, s);
                pthread_mutex_lock(&g->mu);
                s->failed = !ok;
                s->state = GZ_DONE;
                pthread_cond_broadcast(&g->done);
        }
        pthread_mutex_unlock(&g->mu);
        libdeflate_free_compressor(c);
        return NULL;
}

int step__gz_new(struct step__gz **out, int level, int threads, step__gz_emit_fn emit, void *ctx,
                 struct sw_err *err)
{
        struct step__gz *g;
        struct libdeflate_compressor *probe;
        size_t bound;

        /* libdeflate sizes its bound per compressor; one at `level` answers for all. */
        probe = libdeflate_alloc_compressor(level);
        if (!probe)
                return sw_err_set(err, SW_EINVAL, "gzip level %d is not supported", level);
        bound = libdeflate_gzip_compress_bound(probe, STEP__GZ_CHUNK);
        g = sw_xcalloc(1, sizeof(*g));
        g->level = level;
        g->nthreads = threads < 0 ? 0 : threads > GZ_MAX_THREADS ? GZ_MAX_THREADS : threads;
        g->nslots = g->nthreads > 1 ? (size_t)g->nthreads * 2 : 1;
        g->slots = sw_xcalloc(g->nslots, sizeof(*g->slots));
        for (size_t i = 0; i < g->nslots; i++) {
                g->slots[i].in = sw_xmalloc(STEP__GZ_CHUNK);
                g->slots[i].out_cap = bound;
                g->slots[i].out = sw_xmalloc(bound);
        }
        g->emit = emit;
        g->emit_ctx = ctx;
        pthread_mutex_init(&g->mu, NULL);
        pthread_cond_init(&g->work, NULL);
        pthread_cond_init(&g->done, NULL);
        if (g->nthreads <= 1) {
                g->nthreads = 0;
                g->inline_c = probe; /* compress on the caller's thread */
                probe = NULL;
        }
        libdeflate_free_compressor(probe);
        for (int i = 0; i < g->nthreads; i++) {
                int rc = pthread_create(&g->tids[i], NULL, gz_worker, g);
                if (rc != 0) {
                        step__gz_free(g);
                        return sw_err_errno(err, SW_EIO, rc, "start compression thread");
                }
                g->started++;
        }
        *out = g;
        return 0;
}

/* Emits the oldest slot once it is compressed, and frees it for reuse. */
static int gz_emit_oldest(struct step__gz *g, struct sw_err *err)
{
        struct gz_slot *s = &g->slots[g->emit_at];
        int rc;

        pthread_mutex_lock(&g->mu);
        while (s->state != GZ_DONE)
                pthread_cond_wait(&g->done, &g->mu);
        pthread_mutex_unlock(&g->mu);
        if (s->failed)
                return sw_err_set(err, SW_EINTERNAL, "gzip: libdeflate could not compress a chunk");
        rc = g->emit(g->emit_ctx, s->out, s->out_len, err);
        if (rc)
                return rc;
        pthread_mutex_lock(&g->mu);
        s->state = GZ_FREE;
        s->in_len = 0;
        pthread_mutex_unlock(&g->mu);
        g->emit_at = (g->emit_at + 1) % g->nslots;
        g->inflight--;
        return 0;
}

/* Queues the slot being filled (or compresses it here) and moves on to a free slot. */
static int gz_submit(struct step__gz *g, struct sw_err *err)
{
        struct gz_slot *s = &g->slots[g->fill];

        if (g->nthreads == 0) {
                s->failed = !gz_compress(g->inline_c, s);
                s->state = GZ_DONE;
        } else {
                pthread_mutex_lock(&g->mu);
                s->state = GZ_QUEUED;
                pthread_cond_signal(&g->work);
                pthread_mutex_unlock(&g->mu);
        }
        g->inflight++;
        g->members++;
        g->fill = (g->fill + 1) % g->nslots;
        /* All slots busy: the next one to fill is the oldest; emit it first. */
        if (g->inflight == g->nslots)
                return gz_emit_oldest(g, err);
        return 0;
}

int step__gz_write(struct step__gz *g, const void *data, size_t len, struct sw_err *err)
{
        const unsigned char *p = data;
        int rc;

        while (len > 0) {
                struct gz_slot *s = &g->slots[g->fill];
                size_t room = STEP__GZ_CHUNK - s->in_len, n = len < room ? len : room;
                memcpy(s->in + s->in_len, p, n);
                s->in_len += n;
                p += n;
                len -= n;
                if (s->in_len == STEP__GZ_CHUNK) {
                        rc = gz_submit(g, err);
                        if (rc)
                                return rc;
                }
        }
        return 0;
}

int step__gz_finish(struct step__gz *g, struct sw_err *err)
{
        int rc = 0;

        /* A partial last chunk, or the one empty member of an empty input. */
        if (g->slots[g->fill].in_len > 0 || g->members == 0)
                rc = gz_submit(g, err);
        while (rc == 0 && g->inflight > 0)
                rc = gz_emit_oldest(g, err);
        return rc;
}

void step__gz_free(struct step__gz *g)
{
        if (!g)
                return;
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_broadcast(&g->work);
        pthread_mutex_unlock(&g->mu);
        for (int i = 0; i < g->started; i++)
                pthread_join(g->tids[i], NULL);
        libdeflate_free_compressor(g->inline_c);
        for (size_t i = 0; i < g->nslots; i++) {
                free(g->slots[i].in);
                free(g->slots[i].out);
        }
        free(g->slots);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->work);
        pthread_cond_destroy(&g->done);
        free(g);
}
