/*
 * layer_gzip.c - a deterministic gzip writer that compresses on several cores.
 *
 * Compression is the slow part of packing a layer (zlib level 6 runs at about
 * 50 MiB/s on one core here). The input is cut into fixed 1 MiB chunks; each
 * chunk is deflated on its own, primed with the last 32 KiB of the chunk
 * before it as the dictionary (so the ratio stays close to a single stream),
 * and ends with a sync flush, which byte-aligns it without marking the end of
 * the stream; only the last chunk finishes the stream. The pieces, written in
 * order behind one gzip header (no name, mtime 0) and followed by the CRC-32
 * combined from the chunks' CRCs, form one ordinary gzip member that any
 * gunzip reads. As chunk boundaries and dictionaries depend only on the input,
 * the bytes do not depend on the number of threads: a layer has the same
 * digest on a one-core and a many-core machine.
 *
 * Threads: the writer belongs to one caller thread; it owns `threads` worker
 * threads, started by step__gz_new() and joined by step__gz_free(). Chunk
 * slots are reused round robin; the caller emits finished chunks in order.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/mem.h"
#include "steps/layer_int.h"
#include "common/banned.h"

#define GZ_CHUNK (1024 * 1024)
#define GZ_DICT (32 * 1024)
#define GZ_MAX_THREADS 16

enum gz_slot_state { GZ_FREE, GZ_QUEUED, GZ_RUNNING, GZ_DONE };

struct gz_slot {
        /*
         * GZ_DICT bytes of room whose last dict_len bytes hold the dictionary
         * (the input right before this chunk), then the chunk itself.
         */
        unsigned char *in;
        size_t dict_len;
        size_t in_len;
        unsigned char *out;
        size_t out_cap;
        size_t out_len;
        uLong crc;
        bool last;
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
        z_stream inline_z;
        bool inline_ready;
        uLong crc;
        uint64_t total;
        bool header_sent;
        step__gz_emit_fn emit;
        void *emit_ctx;
};

/* Deflates one slot with `z` (a raw-deflate stream); returns false on a zlib failure. */
static bool gz_compress(z_stream *z, int level, struct gz_slot *s)
{
        int zrc;

        (void)level;
        if (deflateReset(z) != Z_OK)
                return false;
        if (s->dict_len > 0 &&
            deflateSetDictionary(z, s->in + GZ_DICT - s->dict_len, (uInt)s->dict_len) != Z_OK)
                return false;
        s->crc = crc32(0L, s->in + GZ_DICT, (uInt)s->in_len);
        z->next_in = s->in + GZ_DICT;
        z->avail_in = (uInt)s->in_len;
        s->out_len = 0;
        for (;;) {
                if (s->out_cap - s->out_len < 64) {
                        s->out_cap *= 2;
                        s->out = sw_xrealloc(s->out, s->out_cap);
                }
                z->next_out = s->out + s->out_len;
                z->avail_out = (uInt)(s->out_cap - s->out_len);
                zrc = deflate(z, s->last ? Z_FINISH : Z_SYNC_FLUSH);
                s->out_len = s->out_cap - z->avail_out;
                if (zrc == Z_STREAM_ERROR)
                        return false;
                if (s->last ? zrc == Z_STREAM_END : z->avail_out > 0)
                        return true;
        }
}

static int gz_init_stream(z_stream *z, int level)
{
        memset(z, 0, sizeof(*z));
        /* windowBits -15: raw deflate; the gzip framing is ours. */
        return deflateInit2(z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

static void *gz_worker(void *arg)
{
        struct step__gz *g = arg;
        z_stream z;
        bool ok_stream = gz_init_stream(&z, g->level) == 0;

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
                bool ok = ok_stream && gz_compress(&z, g->level, s);
                pthread_mutex_lock(&g->mu);
                s->failed = !ok;
                s->state = GZ_DONE;
                pthread_cond_broadcast(&g->done);
        }
        pthread_mutex_unlock(&g->mu);
        if (ok_stream)
                deflateEnd(&z);
        return NULL;
}

int step__gz_new(struct step__gz **out, int level, int threads, step__gz_emit_fn emit, void *ctx,
                 struct sw_err *err)
{
        struct step__gz *g = sw_xcalloc(1, sizeof(*g));

        g->level = level;
        g->nthreads = threads < 0 ? 0 : threads > GZ_MAX_THREADS ? GZ_MAX_THREADS : threads;
        g->nslots = g->nthreads > 1 ? (size_t)g->nthreads * 2 : 1;
        g->slots = sw_xcalloc(g->nslots, sizeof(*g->slots));
        for (size_t i = 0; i < g->nslots; i++) {
                g->slots[i].in = sw_xmalloc(GZ_DICT + GZ_CHUNK);
                g->slots[i].out_cap = compressBound(GZ_CHUNK) + 64;
                g->slots[i].out = sw_xmalloc(g->slots[i].out_cap);
        }
        g->emit = emit;
        g->emit_ctx = ctx;
        g->crc = crc32(0L, Z_NULL, 0);
        pthread_mutex_init(&g->mu, NULL);
        pthread_cond_init(&g->work, NULL);
        pthread_cond_init(&g->done, NULL);
        if (g->nthreads <= 1) {
                g->nthreads = 0;
                if (gz_init_stream(&g->inline_z, level) != 0) {
                        step__gz_free(g);
                        return sw_err_set(err, SW_EINTERNAL, "gzip: deflateInit2 failed");
                }
                g->inline_ready = true;
        }
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
        static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        struct gz_slot *s = &g->slots[g->emit_at];
        int rc;

        pthread_mutex_lock(&g->mu);
        while (s->state != GZ_DONE)
                pthread_cond_wait(&g->done, &g->mu);
        pthread_mutex_unlock(&g->mu);
        if (s->failed)
                return sw_err_set(err, SW_EINTERNAL, "gzip: deflate failed");
        if (!g->header_sent) {
                rc = g->emit(g->emit_ctx, header, sizeof(header), err);
                if (rc)
                        return rc;
                g->header_sent = true;
        }
        rc = g->emit(g->emit_ctx, s->out, s->out_len, err);
        if (rc)
                return rc;
        g->crc = crc32_combine(g->crc, s->crc, (z_off_t)s->in_len);
        g->total += s->in_len;
        pthread_mutex_lock(&g->mu);
        s->state = GZ_FREE;
        pthread_mutex_unlock(&g->mu);
        g->emit_at = (g->emit_at + 1) % g->nslots;
        g->inflight--;
        return 0;
}

/* Queues the slot being filled and prepares the next one, its dictionary included. */
static int gz_submit(struct step__gz *g, bool last, struct sw_err *err)
{
        struct gz_slot *s = &g->slots[g->fill], *next;
        size_t take;
        int rc;

        s->last = last;
        if (g->nthreads == 0) {
                s->failed = !gz_compress(&g->inline_z, g->level, s);
                s->state = GZ_DONE;
        } else {
                pthread_mutex_lock(&g->mu);
                s->state = GZ_QUEUED;
                pthread_cond_signal(&g->work);
                pthread_mutex_unlock(&g->mu);
        }
        g->inflight++;
        if (last)
                return 0;
        g->fill = (g->fill + 1) % g->nslots;
        next = &g->slots[g->fill];
        if (g->inflight == g->nslots) {
                rc = gz_emit_oldest(g, err); /* the oldest is the slot we are about to fill */
                if (rc)
                        return rc;
        }
        /*
         * The next dictionary: the last 32 KiB of input so far. This slot's
         * dictionary and chunk are contiguous, so take the tail of both.
         */
        take = s->dict_len + s->in_len < GZ_DICT ? s->dict_len + s->in_len : GZ_DICT;
        memmove(next->in + GZ_DICT - take, s->in + GZ_DICT + s->in_len - take, take);
        next->dict_len = take;
        next->in_len = 0;
        return 0;
}

int step__gz_write(struct step__gz *g, const void *data, size_t len, struct sw_err *err)
{
        const unsigned char *p = data;
        int rc;

        while (len > 0) {
                struct gz_slot *s = &g->slots[g->fill];
                size_t room = GZ_CHUNK - s->in_len, n = len < room ? len : room;
                memcpy(s->in + GZ_DICT + s->in_len, p, n);
                s->in_len += n;
                p += n;
                len -= n;
                if (s->in_len == GZ_CHUNK) {
                        rc = gz_submit(g, false, err);
                        if (rc)
                                return rc;
                }
        }
        return 0;
}

int step__gz_finish(struct step__gz *g, struct sw_err *err)
{
        unsigned char trailer[8];
        int rc = gz_submit(g, true, err);

        while (rc == 0 && g->inflight > 0)
                rc = gz_emit_oldest(g, err);
        if (rc)
                return rc;
        for (int i = 0; i < 4; i++) {
                trailer[i] = (unsigned char)(g->crc >> (8 * i));
                trailer[4 + i] = (unsigned char)(g->total >> (8 * i));
        }
        return g->emit(g->emit_ctx, trailer, sizeof(trailer), err);
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
        if (g->inline_ready)
                deflateEnd(&g->inline_z);
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
