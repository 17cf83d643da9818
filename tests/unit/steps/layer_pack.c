/*
 * layer_pack.c - tests of step_layer_pack: reproducible digests, round trips
 * through our own extractor and through GNU tar, overlay changesets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/mem.h"
#include "steps/layer.h"
#include "tests/harness/t.h"
#include "tests/harness/tree.h"

#define LONG_NAME                                                                                  \
        "a-file-name-that-is-longer-than-one-hundred-bytes-so-ustar-cannot-hold-it-in-its-name-"   \
        "field-alone.txt"
#define DEEP_DIR                                                                                   \
        "deep/0123456789012345678901234567890123456789012345678901234567890123456789/"             \
        "0123456789012345678901234567890123456789012345678901234567890123456789/"                  \
        "0123456789012345678901234567890123456789012345678901234567890123456789/"                  \
        "0123456789012345678901234567890123456789012345678901234567890123456789"

static char *path_in(const char *dir, const char *rel)
{
        return sw_xasprintf("%s/%s", dir, rel);
}

struct node {
        const char *rel;
        char type; /* d f l h p c */
        const char *arg;
        mode_t mode;
};

static const struct node tree_nodes[] = {
        {"bin", 'd', NULL, 0755},
        {"bin/tool", 'f', "#!/bin/sh\necho hi\n", 0755},
        {"bin/suid", 'f', "setuid\n", 04755},
        {"bin/sh", 'l', "tool", 0},
        {"bin/tool2", 'h', "bin/tool", 0},
        {"etc", 'd', NULL, 0755},
        {"etc/passwd", 'f', "root:x:0:0::/root:/bin/sh\n", 0644},
        {"etc/conf.d", 'd', NULL, 0700},
        {"etc/conf.d/secret", 'f', "s3cr3t\n", 0600},
        {"etc/abs", 'l', "/etc/passwd", 0},
        {"dangling", 'l', "nowhere/at/all", 0},
        {"empty", 'd', NULL, 0750},
        {"var", 'd', NULL, 0755},
        {"var/tool3", 'h', "bin/tool", 0},
        {"var/fifo", 'p', NULL, 0640},
        {LONG_NAME, 'f', "long\n", 0644},
        {"deep", 'd', NULL, 0755},
        {DEEP_DIR, 'd', NULL, 0755},
        {DEEP_DIR "/" LONG_NAME, 'f', "deep and long\n", 0444},
        {"caf\xc3\xa9", 'f', "utf-8 name\n", 0644},
        {"dev-null", 'c', NULL, 0666},
};
#define N_NODES (sizeof(tree_nodes) / sizeof(tree_nodes[0]))

static void make_node(const char *root, const struct node *n)
{
        char *p = path_in(root, n->rel), *t = NULL;

        switch (n->type) {
        case 'd':
                t_mkdirs(p, 0755);
                CHECK(chmod(p, n->mode) == 0);
                break;
        case 'f':
                t_write(p, n->arg, n->mode);
                break;
        case 'l':
                CHECK(symlink(n->arg, p) == 0);
                break;
        case 'h':
                t = path_in(root, n->arg);
                CHECK(link(t, p) == 0);
                break;
        case 'p':
                CHECK(mkfifo(p, n->mode) == 0);
                CHECK(chmod(p, n->mode) == 0);
                break;
        case 'c':
                if (geteuid() == 0) {
                        CHECK(mknod(p, S_IFCHR | n->mode, makedev(1, 3)) == 0);
                        CHECK(chmod(p, n->mode) == 0);
                }
                break;
        }
        free(t);
        free(p);
}

/*
 * Builds the test tree. `reverse` creates the entries in the opposite order
 * (parents first, so that directories exist), which changes the order in
 * which the file system lists them; every time stamp is then set to `mtime`.
 */
static void make_tree(const char *root, bool reverse, long long mtime)
{
        t_mkdirs(root, 0755);
        if (!reverse) {
                for (size_t i = 0; i < N_NODES; i++)
                        make_node(root, &tree_nodes[i]);
        } else {
                for (size_t i = 0; i < N_NODES; i++)
                        if (tree_nodes[i].type == 'd')
                                make_node(root, &tree_nodes[i]);
                for (size_t i = N_NODES; i-- > 0;)
                        if (tree_nodes[i].type != 'd' && tree_nodes[i].type != 'h')
                                make_node(root, &tree_nodes[i]);
                for (size_t i = N_NODES; i-- > 0;)
                        if (tree_nodes[i].type == 'h')
                                make_node(root, &tree_nodes[i]);
        }
        CHECK_INT(t_sh("find '%s' -exec touch -h -d @%lld {} +", root, mtime), 0);
}

static void pack_ok(struct step_layer_info *info, const char *src, const char *out,
                    const struct step_layer_pack_options *o)
{
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(step_layer_pack(info, src, out, o, &err), &err);
}

static void test_reproducible(void)
{
        const char *tmp = t_tmpdir();
        char *a = path_in(tmp, "repro-a"), *b = path_in(tmp, "repro-b");
        char *la = path_in(tmp, "repro-a.tgz"), *lb = path_in(tmp, "repro-b.tgz");
        char *lc = path_in(tmp, "repro-c.tgz"), *cli = path_in(tmp, "repro-cli.txt");
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info ia, ib, ic;
        char digest[SW_DIGEST_STR_LEN];
        int64_t size;
        unsigned char hdr[10];
        struct sw_err err = SW_ERR_INIT;
        char *out;
        int fd;

        make_tree(a, false, 1000000000LL);
        make_tree(b, true, 1700000000LL);
        pack_ok(&ia, a, la, &o);
        pack_ok(&ib, b, lb, &o);
        CHECK_STR(ia.diff_id, ib.diff_id);
        CHECK_STR(ia.digest, ib.digest);
        CHECK_INT(ia.size, ib.size);
        CHECK_INT(ia.entries, ib.entries);
        CHECK_STR(ia.media_type, STEP_LAYER_MEDIA_TAR_GZIP);
        CHECK(strcmp(ia.digest, ia.diff_id) != 0);

        /* The reported digest and size are those of the file written. */
        CHECK_OK(sw_sha256_file(digest, &size, la, &err), &err);
        CHECK_STR(digest, ia.digest);
        CHECK_INT(size, ia.size);

        /* gzip header: deflate, no flags (no name), mtime 0. */
        fd = open(la, O_RDONLY);
        CHECK(fd >= 0 && read(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
        close(fd);
        CHECK(hdr[0] == 0x1f && hdr[1] == 0x8b && hdr[2] == 8);
        CHECK_INT(hdr[3], 0);
        CHECK(hdr[4] == 0 && hdr[5] == 0 && hdr[6] == 0 && hdr[7] == 0);

        /* Another process (the CLI) gives the same bytes. */
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" layer pack '%s' '%s' > '%s'", b, lc, cli), 0);
        out = t_slurp(cli);
        CHECK(out && strstr(out, ia.digest) && strstr(out, ia.diff_id));
        free(out);

        /* A different SOURCE_DATE_EPOCH gives different digests, equal between the trees. */
        o.mtime = 1234567890;
        pack_ok(&ia, a, la, &o);
        pack_ok(&ic, b, lc, &o);
        CHECK_STR(ia.digest, ic.digest);
        CHECK(strcmp(ia.digest, ib.digest) != 0);

        /* Uncompressed: the blob is the tar, both digests agree. */
        o.compression = STEP_LAYER_UNCOMPRESSED;
        pack_ok(&ic, a, lc, &o);
        CHECK_STR(ic.digest, ic.diff_id);
        CHECK_STR(ic.diff_id, ia.diff_id);
        CHECK_INT(ic.size, ic.tar_size);
        CHECK_STR(ic.media_type, STEP_LAYER_MEDIA_TAR);

        /* zstd: reproducible too, readable by the zstd tool and by our unpacker. */
        struct step_layer_info iz, iz2, got;
        char *dz = path_in(tmp, "repro-zstd"), *sum = path_in(tmp, "repro-zstd.sum");
        o.compression = STEP_LAYER_ZSTD;
        pack_ok(&iz, a, lc, &o);
        pack_ok(&iz2, b, lb, &o);
        CHECK_STR(iz.digest, iz2.digest);
        CHECK_STR(iz.diff_id, ia.diff_id);
        CHECK_STR(iz.media_type, STEP_LAYER_MEDIA_TAR_ZSTD);
        CHECK(iz.size < iz.tar_size / 2);
        CHECK_INT(t_sh("zstd -qdc '%s' | sha256sum > '%s'", lc, sum), 0);
        out = t_slurp(sum);
        CHECK(out && strncmp(out, iz.diff_id + 7, 64) == 0);
        free(out);
        CHECK_OK(step_layer_unpack(&got, lc, dz, NULL, &err), &err);
        CHECK_STR(got.digest, iz.digest);
        CHECK_STR(got.diff_id, iz.diff_id);
        CHECK_STR(got.media_type, STEP_LAYER_MEDIA_TAR_ZSTD);
        free(dz);
        free(sum);
        free(a);
        free(b);
        free(la);
        free(lb);
        free(lc);
        free(cli);
}

static void test_round_trip(void)
{
        const char *tmp = t_tmpdir();
        char *src = path_in(tmp, "rt-src"), *layer = path_in(tmp, "rt.tgz");
        char *dst = path_in(tmp, "rt-dst"), *f = NULL, *why;
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info info, got;
        struct sw_err err = SW_ERR_INIT;
        struct stat sb;

        make_tree(src, false, 1500000000LL);
        o.mtime = 1600000000;
        pack_ok(&info, src, layer, &o);
        CHECK_OK(step_layer_unpack(&got, layer, dst, NULL, &err), &err);
        CHECK_STR(got.digest, info.digest);
        CHECK_STR(got.diff_id, info.diff_id);
        CHECK_INT(got.entries, info.entries);
        CHECK_INT(got.size, info.size);
        why = t_tree_diff(src, dst, 0);
        if (why)
                fprintf(stderr, "  tree differs: %s\n", why);
        CHECK(why == NULL);
        free(why);
        f = path_in(dst, "bin/tool");
        CHECK(stat(f, &sb) == 0 && sb.st_mtime == 1600000000 && sb.st_nlink == 3);
        free(f);
        f = path_in(dst, "bin/suid");
        CHECK(stat(f, &sb) == 0 && (sb.st_mode & 07777) == 04755);
        free(f);
        free(src);
        free(layer);
        free(dst);
}

/* GNU tar reads what we write: its listing, and its extraction equals the source. */
static void test_gnu_tar_peer(void)
{
        const char *tmp = t_tmpdir();
        char *src = path_in(tmp, "gnu-src"), *layer = path_in(tmp, "gnu.tgz");
        char *dst = path_in(tmp, "gnu-dst"), *list = path_in(tmp, "gnu.list"), *out, *why;
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info info;

        make_tree(src, true, 1500000000LL);
        o.uid = 0;
        o.gid = 0;
        pack_ok(&info, src, layer, &o);
        CHECK_INT(t_sh("tar -tvf '%s' > '%s' 2>/dev/null", layer, list), 0);
        out = t_slurp(list);
        CHECK(out != NULL);
        if (out) {
                CHECK(strstr(out, "bin/tool2 link to bin/tool") != NULL);
                CHECK(strstr(out, "bin/sh -> tool") != NULL);
                CHECK(strstr(out, "-rwsr-xr-x 0/0") != NULL);
                CHECK(strstr(out, "1970-01-01 00:00 etc/passwd") != NULL);
                CHECK(strstr(out, LONG_NAME) != NULL);
                CHECK(strstr(out, "deep/") != NULL);
                /* Sorted, depth first: bin/ before bin/sh before etc/. */
                CHECK(strstr(out, " bin/\n") < strstr(out, " bin/sh -> tool"));
                CHECK(strstr(out, " bin/sh -> tool") < strstr(out, " etc/\n"));
        }
        free(out);
        t_mkdirs(dst, 0755);
        CHECK_INT(t_sh("tar -xpf '%s' -C '%s' --numeric-owner 2>/dev/null", layer, dst), 0);
        why = t_tree_diff(src, dst, 0);
        if (why)
                fprintf(stderr, "  GNU tar extraction differs: %s\n", why);
        CHECK(why == NULL);
        free(why);
        free(src);
        free(layer);
        free(dst);
        free(list);
}

static void test_owner_override(void)
{
        const char *tmp = t_tmpdir();
        char *src = path_in(tmp, "own-src"), *layer = path_in(tmp, "own.tgz");
        char *dst = path_in(tmp, "own-dst"), *f = path_in(dst, "bin/tool");
        char *list = path_in(tmp, "own.list"), *out;
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct stat sb;

        make_tree(src, false, 0);
        o.uid = 1000;
        o.gid = 1001;
        pack_ok(NULL, src, layer, &o);
        CHECK_INT(t_sh("tar -tvf '%s' > '%s' 2>/dev/null", layer, list), 0);
        out = t_slurp(list);
        CHECK(out && strstr(out, " 1000/1001 ") && !strstr(out, " 0/0 "));
        free(out);
        CHECK_OK(step_layer_unpack(NULL, layer, dst, NULL, &err), &err);
        CHECK(lstat(f, &sb) == 0);
        if (geteuid() == 0)
                CHECK(sb.st_uid == 1000 && sb.st_gid == 1001);
        free(src);
        free(layer);
        free(dst);
        free(f);
        free(list);
}

/* An overlayfs upper dir, made by hand: whiteout devices and an opaque directory. */
static void test_changeset_mapping(void)
{
        const char *tmp = t_tmpdir();
        char *up = path_in(tmp, "cs-upper"), *layer = path_in(tmp, "cs.tar");
        char *list = path_in(tmp, "cs.list"), *p, *out;
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info info;
        struct sw_err err = SW_ERR_INIT;

        if (geteuid() != 0) {
                fprintf(stderr, "  skipped: whiteout devices and trusted xattrs need root\n");
                return;
        }
        t_mkdirs(up, 0755);
        p = path_in(up, "gone");
        CHECK(mknod(p, S_IFCHR | 0, makedev(0, 0)) == 0);
        free(p);
        p = path_in(up, "etc/added");
        t_mkdirs(p, 0755);
        free(p);
        p = path_in(up, "etc/added/file");
        t_write(p, "new\n", 0644);
        free(p);
        p = path_in(up, "etc/removed");
        CHECK(mknod(p, S_IFCHR | 0, makedev(0, 0)) == 0);
        free(p);
        p = path_in(up, "etc/xwhiteout");
        t_write(p, "", 0644);
        CHECK(setxattr(p, "trusted.overlay.whiteout", "", 0, 0) == 0);
        free(p);
        p = path_in(up, "opq");
        t_mkdirs(p, 0755);
        CHECK(setxattr(p, "trusted.overlay.opaque", "y", 1, 0) == 0);
        free(p);
        p = path_in(up, "opq/new");
        t_write(p, "fresh\n", 0644);
        free(p);

        o.changeset = true;
        o.compression = STEP_LAYER_UNCOMPRESSED;
        pack_ok(&info, up, layer, &o);
        CHECK_INT(info.entries, 9);
        CHECK_INT(t_sh("tar -tf '%s' > '%s'", layer, list), 0);
        out = t_slurp(list);
        CHECK_STR(out, ".wh.gone\n"
                       "etc/\n"
                       "etc/.wh.removed\n"
                       "etc/.wh.xwhiteout\n"
                       "etc/added/\n"
                       "etc/added/file\n"
                       "opq/\n"
                       "opq/.wh..wh..opq\n"
                       "opq/new\n");
        free(out);

        /* Without --changeset the same tree is packed as it is. */
        o.changeset = false;
        pack_ok(&info, up, layer, &o);
        CHECK_INT(t_sh("tar -tvf '%s' > '%s'", layer, list), 0);
        out = t_slurp(list);
        CHECK(out && strstr(out, "c---------") && !strstr(out, ".wh."));
        free(out);

        /* A redirect (renamed lower dir) cannot be expressed as a layer. */
        p = path_in(up, "etc/added");
        CHECK(setxattr(p, "trusted.overlay.redirect", "/elsewhere", 10, 0) == 0);
        free(p);
        o.changeset = true;
        CHECK_INT(step_layer_pack(NULL, up, layer, &o, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "redirect_dir=off") != NULL);
        free(up);
        free(layer);
        free(list);
}

static void test_xattrs(void)
{
        const char *tmp = t_tmpdir();
        char *src = path_in(tmp, "xa-src"), *layer = path_in(tmp, "xa.tgz");
        char *dst = path_in(tmp, "xa-dst"), *f = path_in(src, "f"), *g = path_in(dst, "f");
        char *d = path_in(src, "d"), *dd = path_in(dst, "d");
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info with, without;
        struct sw_err err = SW_ERR_INIT;
        char v[16];

        t_mkdirs(d, 0755);
        t_write(f, "x", 0644);
        CHECK(setxattr(f, "user.color", "blue", 4, 0) == 0);
        if (geteuid() == 0)
                CHECK(setxattr(d, "trusted.overlay.opaque", "y", 1, 0) == 0);
        pack_ok(&without, src, layer, &o);
        o.xattrs = true;
        pack_ok(&with, src, layer, &o);
        CHECK(strcmp(with.diff_id, without.diff_id) != 0);
        CHECK_OK(step_layer_unpack(NULL, layer, dst, NULL, &err), &err);
        memset(v, 0, sizeof(v));
        CHECK_INT(getxattr(g, "user.color", v, sizeof(v)), 4);
        CHECK_STR(v, "blue");
        /* overlay bookkeeping never travels in a layer */
        CHECK(getxattr(dd, "trusted.overlay.opaque", v, sizeof(v)) < 0);
        free(src);
        free(layer);
        free(dst);
        free(f);
        free(g);
        free(d);
        free(dd);
}

static bool dir_has_temp(const char *dir)
{
        return t_sh("ls -a '%s' | grep -q tmp-", dir) == 0;
}

static bool cancel_after_two(void *arg)
{
        int *n = arg;

        return ++*n > 2;
}

static void test_pack_errors(void)
{
        const char *tmp = t_tmpdir();
        char *src = path_in(tmp, "err-src"), *outdir = path_in(tmp, "err-out");
        char *layer = path_in(outdir, "l.tgz"), *big = path_in(src, "big");
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *blob = sw_xmalloc(200001);

        t_mkdirs(outdir, 0755);
        CHECK_INT(step_layer_pack(NULL, "/nonexistent/dir", layer, NULL, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "/nonexistent/dir") != NULL);
        sw_err_clear(&err);

        t_mkdirs(src, 0755);
        memset(blob, 'z', 200000);
        blob[200000] = '\0';
        t_write(big, blob, 0644);
        for (int i = 0; i < 4; i++) {
                char *f = sw_xasprintf("%s/small%d", src, i);
                t_write(f, "s", 0644);
                free(f);
        }
        o.max_bytes = 100000;
        CHECK_INT(step_layer_pack(NULL, src, layer, &o, &err), SW_ETOOBIG);
        CHECK(!t_exists(layer));
        CHECK(!dir_has_temp(outdir));
        sw_err_clear(&err);

        /* the output inside the tree it packs */
        char *inside = path_in(src, "self.tgz");
        CHECK_INT(step_layer_pack(NULL, src, inside, NULL, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "inside the source") != NULL);
        CHECK(!t_exists(inside));
        free(inside);
        sw_err_clear(&err);

        /* cancellation, polled per entry */
        o.max_bytes = 0;
        int polls = 0;
        o.cancelled = cancel_after_two;
        o.cancel_arg = &polls;
        CHECK_INT(step_layer_pack(NULL, src, layer, &o, &err), SW_ECANCELED);
        CHECK(!t_exists(layer));
        CHECK(!dir_has_temp(outdir));
        o.cancelled = NULL;
        sw_err_clear(&err);

        o.gzip_level = 12;
        CHECK_INT(step_layer_pack(NULL, src, layer, &o, &err), SW_EINVAL);
        CHECK(!t_exists(layer));
        free(blob);
        free(src);
        free(outdir);
        free(layer);
        free(big);
}

/* Multi-chunk layers: same bytes whatever the thread count, and a valid gzip stream. */
static void test_parallel_gzip(void)
{
        const char *tmp = t_tmpdir();
        char *src = path_in(tmp, "par-src"), *l1 = path_in(tmp, "par1.tgz");
        char *l4 = path_in(tmp, "par4.tgz"), *dst = path_in(tmp, "par-dst");
        char *sum = path_in(tmp, "par.sum"), *why, *out;
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info i1, i4;
        struct sw_err err = SW_ERR_INIT;
        char *buf = sw_xmalloc((3 << 20) + 1024);
        unsigned x = 12345;

        t_mkdirs(src, 0755);
        for (int f = 0; f < 3; f++) {
                char *p = sw_xasprintf("%s/f%d", src, f);
                size_t n = (size_t)(1 << 20) * (size_t)(f + 1) + 777;
                for (size_t i = 0; i < n; i++) {
                        x = x * 1103515245u + 12345u;
                        buf[i] = (char)(f == 1 ? ((x >> 16) | 1) : 'a' + (x >> 16) % 4);
                }
                buf[n] = '\0';
                t_write(p, buf, 0644);
                free(p);
        }
        o.threads = 1;
        pack_ok(&i1, src, l1, &o);
        o.threads = 4;
        pack_ok(&i4, src, l4, &o);
        CHECK_STR(i1.digest, i4.digest);
        CHECK_STR(i1.diff_id, i4.diff_id);
        CHECK(i1.tar_size > 6 * (1 << 20));
        CHECK_INT(t_sh("gzip -t '%s'", l4), 0);
        CHECK_INT(t_sh("gzip -dc '%s' | sha256sum > '%s'", l4, sum), 0);
        out = t_slurp(sum);
        CHECK(out && strncmp(out, i4.diff_id + 7, 64) == 0);
        free(out);
        CHECK_OK(step_layer_unpack(NULL, l4, dst, NULL, &err), &err);
        why = t_tree_diff(src, dst, 0);
        CHECK(why == NULL);
        free(why);
        free(buf);
        free(src);
        free(l1);
        free(l4);
        free(dst);
        free(sum);
}

int main(void)
{
        T_RUN(test_reproducible);
        T_RUN(test_round_trip);
        T_RUN(test_gnu_tar_peer);
        T_RUN(test_owner_override);
        T_RUN(test_changeset_mapping);
        T_RUN(test_xattrs);
        T_RUN(test_pack_errors);
        T_RUN(test_parallel_gzip);
        return t_done();
}
