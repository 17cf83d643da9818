/*
 * layer_gzip.c - tests of the block-parallel gzip writer (steps/layer_gzip.c):
 * its multi-member output read back by zlib and by libarchive, the same bytes
 * across runs, thread counts and write patterns, empty input, inputs that are
 * and are not a multiple of the chunk size, and errors.
 */
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <zlib.h>

#include "common/mem.h"
#include "steps/layer_int.h"
#include "tests/harness/t.h"

/* A growable byte buffer that collects what the writer emits. */
struct sink {
        unsigned char *p;
        size_t len, cap;
        int fail_after; /* > 0: the emit call with this number fails */
        int calls;
};

static int sink_emit(void *ctx, const void *data, size_t len, struct sw_err *err)
{
        struct sink *s = ctx;

        if (s->fail_after > 0 && ++s->calls == s->fail_after)
                return sw_err_set(err, SW_EIO, "disk full");
        if (s->len + len > s->cap) {
                s->cap = (s->len + len) * 2;
                s->p = sw_xrealloc(s->p, s->cap);
        }
        memcpy(s->p + s->len, data, len);
        s->len += len;
        return 0;
}

/* Mixed content: compressible text runs and incompressible noise, seeded. */
static unsigned char *make_input(size_t n, unsigned seed)
{
        unsigned char *p = sw_xmalloc(n ? n : 1);
        unsigned x = seed;

        for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                p[i] = (i / 4096) % 3 == 0
                               ? (unsigned char)(x >> 16)
                               : (unsigned char)("slipway layer "[(i + (x >> 28)) % 14]);
        }
        return p;
}

/* Compresses `in` with `threads` workers, writing it `step` bytes at a time (0: at once). */
static struct sink gz(const unsigned char *in, size_t n, int threads, size_t step)
{
        struct sink s = {0};
        struct step__gz *g = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(step__gz_new(&g, 6, threads, sink_emit, &s, &err), &err);
        if (!g)
                return s;
        for (size_t off = 0; off < n;) {
                size_t k = step == 0 || n - off < step ? n - off : step;
                CHECK_OK(step__gz_write(g, in + off, k, &err), &err);
                off += k;
        }
        CHECK_OK(step__gz_finish(g, &err), &err);
        step__gz_free(g);
        return s;
}

/*
 * Inflates every member of `gzbytes` with zlib, as gunzip does; returns the
 * output (owned by the caller) and the number of members, or NULL when a
 * member is broken.
 */
static unsigned char *zlib_gunzip(const struct sink *gzbytes, size_t *out_len, int *members)
{
        z_stream z;
        size_t cap = 1 << 16, len = 0;
        unsigned char *out = sw_xmalloc(cap);
        int zrc = Z_OK;

        memset(&z, 0, sizeof(z));
        *members = 0;
        if (inflateInit2(&z, 15 + 16) != Z_OK) {
                free(out);
                return NULL;
        }
        z.next_in = gzbytes->p;
        z.avail_in = (uInt)gzbytes->len;
        while (z.avail_in > 0) {
                if (cap - len < 4096) {
                        cap *= 2;
                        out = sw_xrealloc(out, cap);
                }
                z.next_out = out + len;
                z.avail_out = (uInt)(cap - len);
                zrc = inflate(&z, Z_NO_FLUSH);
                len = cap - z.avail_out;
                if (zrc == Z_STREAM_END) {
                        (*members)++;
                        inflateReset(&z); /* the next member, if any */
                } else if (zrc != Z_OK) {
                        break;
                }
        }
        inflateEnd(&z);
        if (zrc != Z_STREAM_END) {
                free(out);
                return NULL;
        }
        *out_len = len;
        return out;
}

/* Reads `gzbytes` through libarchive's gzip filter (what step_layer_unpack uses). */
static unsigned char *archive_gunzip(const struct sink *gzbytes, size_t *out_len)
{
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        size_t cap = 1 << 16, len = 0;
        unsigned char *out = sw_xmalloc(cap);
        la_ssize_t n;

        int rc;

        archive_read_support_filter_gzip(a);
        archive_read_support_format_raw(a);
        archive_read_support_format_empty(a); /* what an empty input inflates to */
        if (archive_read_open_memory(a, gzbytes->p, gzbytes->len) != ARCHIVE_OK)
                goto fail;
        rc = archive_read_next_header(a, &e);
        if ((rc != ARCHIVE_OK && rc != ARCHIVE_EOF) ||
            archive_filter_code(a, 0) != ARCHIVE_FILTER_GZIP)
                goto fail;
        while (rc == ARCHIVE_OK) {
                if (cap - len < 4096) {
                        cap *= 2;
                        out = sw_xrealloc(out, cap);
                }
                n = archive_read_data(a, out + len, cap - len);
                if (n < 0)
                        goto fail;
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        archive_read_free(a);
        *out_len = len;
        return out;
fail:
        fprintf(stderr, "libarchive: %s\n", archive_error_string(a));
        archive_read_free(a);
        free(out);
        return NULL;
}

/* Both decoders give back `in`, from `members` gzip members. */
static void check_round_trip(const struct sink *s, const unsigned char *in, size_t n, int members)
{
        size_t got_len = 0;
        int got_members = 0;
        unsigned char *got = zlib_gunzip(s, &got_len, &got_members);

        CHECK(got != NULL);
        CHECK_INT(got_len, n);
        CHECK_INT(got_members, members);
        CHECK(got && (n == 0 || memcmp(got, in, n) == 0));
        free(got);
        got_len = 0;
        got = archive_gunzip(s, &got_len);
        CHECK(got != NULL);
        CHECK_INT(got_len, n);
        CHECK(got && (n == 0 || memcmp(got, in, n) == 0));
        free(got);
}

static bool same(const struct sink *a, const struct sink *b)
{
        return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* 2.5 chunks and a few bytes: three members, whatever the thread count or write pattern. */
static void test_not_chunk_multiple(void)
{
        size_t n = STEP__GZ_CHUNK * 2 + STEP__GZ_CHUNK / 2 + 17;
        unsigned char *in = make_input(n, 7);
        struct sink ref = gz(in, n, 1, 0);

        check_round_trip(&ref, in, n, 3);
        CHECK(ref.len < n); /* it did compress */
        /* gzip header: deflate, no flags (no name), mtime 0. */
        CHECK(ref.len > 10 && ref.p[0] == 0x1f && ref.p[1] == 0x8b && ref.p[2] == 8);
        CHECK(ref.p[3] == 0 && ref.p[4] == 0 && ref.p[5] == 0 && ref.p[6] == 0 && ref.p[7] == 0);

        static const int threads[] = {0, 1, 2, 3, 4, 16};
        static const size_t steps[] = {0, 1 << 20, 65536, 4093};
        for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
                for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
                        struct sink s = gz(in, n, threads[t], steps[k]);
                        if (!same(&s, &ref))
                                t_fail(__FILE__, __LINE__, "threads %d, step %zu: other bytes",
                                       threads[t], steps[k]);
                        free(s.p);
                }
        }
        /* A run again, and many small writes: still the same bytes. */
        struct sink again = gz(in, n, 2, 1);
        CHECK(same(&again, &ref));
        free(again.p);
        free(ref.p);
        free(in);
}

/* Exactly two chunks: two members, no empty third one. */
static void test_chunk_multiple(void)
{
        size_t n = STEP__GZ_CHUNK * 2;
        unsigned char *in = make_input(n, 11);
        struct sink a = gz(in, n, 2, 0), b = gz(in, n, 0, 1000);

        check_round_trip(&a, in, n, 2);
        CHECK(same(&a, &b));
        free(a.p);
        free(b.p);
        free(in);
}

/* Empty input: one empty member, a valid gzip file, for any thread count. */
static void test_empty(void)
{
        struct sink a = gz(NULL, 0, 0, 0), b = gz(NULL, 0, 4, 0);

        check_round_trip(&a, NULL, 0, 1);
        CHECK(same(&a, &b));
        CHECK(a.len >= 20 && a.len < 64);
        free(a.p);
        free(b.p);
}

/* Small inputs (less than a chunk) and many runs with threads: stable. */
static void test_small_and_repeated(void)
{
        size_t n = 100000;
        unsigned char *in = make_input(n, 3);
        struct sink ref = gz(in, n, 0, 0);

        check_round_trip(&ref, in, n, 1);
        for (int i = 0; i < 20; i++) {
                struct sink s = gz(in, n, 2, 777);
                CHECK(same(&s, &ref));
                free(s.p);
        }
        free(ref.p);
        free(in);
}

/* An emit failure surfaces from write or finish; a bad level is refused. */
static void test_errors(void)
{
        size_t n = STEP__GZ_CHUNK * 5;
        unsigned char *in = make_input(n, 5);
        struct sink s = {.fail_after = 2};
        struct step__gz *g = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        CHECK_OK(step__gz_new(&g, 6, 2, sink_emit, &s, &err), &err);
        rc = step__gz_write(g, in, n, &err);
        if (rc == 0)
                rc = step__gz_finish(g, &err);
        CHECK_INT(rc, SW_EIO);
        CHECK(strstr(err.msg, "disk full") != NULL);
        step__gz_free(g);
        sw_err_clear(&err);

        g = NULL;
        CHECK_INT(step__gz_new(&g, 99, 2, sink_emit, &s, &err), SW_EINVAL);
        CHECK(g == NULL);
        CHECK(strstr(err.msg, "99") != NULL);
        sw_err_clear(&err);
        step__gz_free(NULL);
        free(s.p);
        free(in);
}

int main(void)
{
        T_RUN(test_not_chunk_multiple);
        T_RUN(test_chunk_multiple);
        T_RUN(test_empty);
        T_RUN(test_small_and_repeated);
        T_RUN(test_errors);
        return t_done();
}
