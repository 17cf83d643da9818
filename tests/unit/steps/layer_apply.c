/*
 * layer_apply.c - tests of step_layer_unpack / step_layer_apply: whiteouts
 * across layers, hostile archives, digest checks, limits, input formats.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/layer.h"
#include "tests/harness/t.h"
#include "tests/harness/tree.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *path_in(const char *dir, const char *rel)
{
        return sw_xasprintf("%s/%s", dir, rel);
}

/* A fresh directory under the test's temp dir. */
static char *fresh_dir(const char *name)
{
        char *p = path_in(t_tmpdir(), name);
        struct sw_err err = SW_ERR_INIT;

        sw_rm_rf(p, &err);
        t_mkdirs(p, 0755);
        return p;
}

static bool exists_in(const char *dir, const char *rel)
{
        char *p = path_in(dir, rel);
        bool e = t_exists(p);

        free(p);
        return e;
}

static bool content_is(const char *dir, const char *rel, const char *want)
{
        char *p = path_in(dir, rel), *c = t_slurp(p);
        bool ok = c && strcmp(c, want) == 0;

        free(c);
        free(p);
        return ok;
}

static int apply(const char *layer, const char *root, struct sw_err *err)
{
        return step_layer_apply(NULL, layer, root, NULL, err);
}

/*
 * Three layers applied in turn on one root: whiteouts remove lower files and
 * directories, opaque markers hide lower children wherever they stand in the
 * tar, and a layer's whiteout never removes that layer's own entries.
 */
static void test_whiteouts_three_layers(void)
{
        char *dir = fresh_dir("wh"), *root = path_in(dir, "root");
        char *l1 = path_in(dir, "l1.tgz"), *l2 = path_in(dir, "l2.tar"), *l3 = path_in(dir, "l3");
        struct sw_err err = SW_ERR_INIT;
        const struct t_tar_entry e1[] = {
                {"etc/", 'd', NULL, 0},           {"etc/a", 'f', "a1", 0},
                {"etc/b", 'f', "b1", 0},          {"etc/keep", 'f', "keep1", 0},
                {"dir/", 'd', NULL, 0},           {"dir/x/", 'd', NULL, 0},
                {"dir/x/y", 'f', "y1", 0},        {"opq/", 'd', NULL, 0},
                {"opq/old", 'f', "old", 0},       {"opq/sub/", 'd', NULL, 0},
                {"opq/sub/old2", 'f', "old2", 0}, {"late/", 'd', NULL, 0},
                {"late/old", 'f', "old", 0},      {"late/d/", 'd', NULL, 0},
                {"late/d/old", 'f', "old", 0},    {"own", 'f', "own1", 0},
                {"link", 'l', "etc/a", 0},
        };
        const struct t_tar_entry e2[] = {
                /* whiteouts of a file and of a whole directory */
                {"etc/.wh.a", 'f', "", 0},
                {"dir/.wh.x", 'f', "", 0},
                /* opaque marker first: lower children go, the layer's come */
                {"opq/", 'd', NULL, 0},
                {"opq/.wh..wh..opq", 'f', "", 0},
                {"opq/new", 'f', "new2", 0},
                {"opq/sub/", 'd', NULL, 0},
                {"opq/sub/new2", 'f', "new2", 0},
                /* opaque marker last: the layer's earlier entries stay */
                {"late/", 'd', NULL, 0},
                {"late/mine", 'f', "mine2", 0},
                {"late/d/", 'd', NULL, 0},
                {"late/d/mine", 'f', "mine2", 0},
                {"late/.wh..wh..opq", 'f', "", 0},
                /* whiteout of a path that does not exist: nothing to do */
                {".wh.never", 'f', "", 0},
                /* a whiteout of a symlink removes the link, not its target */
                {".wh.link", 'f', "", 0},
        };
        const struct t_tar_entry e3[] = {
                /* re-create what layer 2 deleted */
                {"dir/x/", 'd', NULL, 0},
                {"dir/x/z", 'f', "z3", 0},
                {"etc/.wh.b", 'f', "", 0},
                /* the layer's own entry, then its whiteout: the entry stays */
                {"own", 'f', "own3", 0},
                {".wh.own", 'f', "", 0},
                /* aufs bookkeeping is ignored */
                {".wh..wh.plnk/", 'd', NULL, 0},
                {".wh..wh.plnk/1234.1", 'f', "x", 0},
        };

        t_tar_write(l1, e1, N(e1), T_TAR_GZIP);
        t_tar_write(l2, e2, N(e2), T_TAR_PLAIN);
        t_tar_write(l3, e3, N(e3), T_TAR_ZSTD);
        t_mkdirs(root, 0755);
        CHECK_OK(apply(l1, root, &err), &err);
        CHECK_OK(apply(l2, root, &err), &err);
        CHECK(!exists_in(root, "etc/a"));
        CHECK(content_is(root, "etc/b", "b1"));
        CHECK(!exists_in(root, "dir/x"));
        CHECK(exists_in(root, "dir"));
        CHECK(!exists_in(root, "opq/old"));
        CHECK(!exists_in(root, "opq/sub/old2"));
        CHECK(content_is(root, "opq/new", "new2"));
        CHECK(content_is(root, "opq/sub/new2", "new2"));
        CHECK(!exists_in(root, "late/old"));
        CHECK(!exists_in(root, "late/d/old"));
        CHECK(content_is(root, "late/mine", "mine2"));
        CHECK(content_is(root, "late/d/mine", "mine2"));
        CHECK(!exists_in(root, "link"));
        CHECK(!exists_in(root, ".wh.never"));
        CHECK(!exists_in(root, "etc/.wh.a"));
        CHECK(!exists_in(root, "opq/.wh..wh..opq"));
        CHECK_OK(apply(l3, root, &err), &err);
        CHECK(content_is(root, "dir/x/z", "z3"));
        CHECK(!exists_in(root, "dir/x/y"));
        CHECK(!exists_in(root, "etc/b"));
        CHECK(content_is(root, "etc/keep", "keep1"));
        CHECK(content_is(root, "own", "own3"));
        CHECK(!exists_in(root, ".wh..wh.plnk"));
        free(dir);
        free(root);
        free(l1);
        free(l2);
        free(l3);
}

/* Replacing: dir over dir keeps children and takes the new mode; anything else is replaced. */
static void test_replace_semantics(void)
{
        char *dir = fresh_dir("replace"), *root = path_in(dir, "root");
        char *l1 = path_in(dir, "l1"), *l2 = path_in(dir, "l2"), *p;
        struct sw_err err = SW_ERR_INIT;
        struct stat sb;
        const struct t_tar_entry e1[] = {
                {"x/", 'd', NULL, 0},    {"x/child", 'f', "c", 0},  {"y", 'f', "file", 0},
                {"z/", 'd', NULL, 0700}, {"z/kept", 'f', "k", 0},   {"s", 'l', "x", 0},
                {"t/", 'd', NULL, 0},    {"t/deep/", 'd', NULL, 0}, {"t/deep/f", 'f', "f", 0},
        };
        const struct t_tar_entry e2[] = {
                {"x", 'f', "now a file", 0}, {"y/", 'd', NULL, 0},        {"y/in", 'f', "in", 0},
                {"z/", 'd', NULL, 0711},     {"s", 'f', "not a link", 0}, {"t", 'l', "x", 0},
        };

        t_tar_write(l1, e1, N(e1), T_TAR_GZIP);
        t_tar_write(l2, e2, N(e2), T_TAR_GZIP);
        t_mkdirs(root, 0755);
        CHECK_OK(apply(l1, root, &err), &err);
        CHECK_OK(apply(l2, root, &err), &err);
        CHECK(content_is(root, "x", "now a file"));
        CHECK(content_is(root, "y/in", "in"));
        CHECK(content_is(root, "z/kept", "k"));
        p = path_in(root, "z");
        CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0711);
        free(p);
        p = path_in(root, "s");
        CHECK(lstat(p, &sb) == 0 && S_ISREG(sb.st_mode));
        free(p);
        p = path_in(root, "t");
        CHECK(lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode));
        free(p);
        free(dir);
        free(root);
        free(l1);
        free(l2);
}

/*
 * One hostile archive: extracted (fresh and in place) it must fail with
 * `code` and a message containing `needle`, and nothing may appear outside
 * the root. The sandbox is dir/{root,outside}; "@" in names and targets
 * stands for the absolute path of dir.
 */
static void hostile(const char *name, const struct t_tar_entry *tmpl, size_t n, int code,
                    const char *needle)
{
        char *dirname = sw_xasprintf("evil-%s", name);
        char *dir = fresh_dir(dirname), *root = path_in(dir, "root"), *fresh = path_in(dir, "new");
        char *outside = path_in(dir, "outside"), *layer = path_in(dir, "layer.tar");
        char *secret = path_in(outside, "secret");
        char *listing = sw_xasprintf("%s/%s.listing", t_tmpdir(), dirname);
        struct t_tar_entry *e = sw_xcalloc(n, sizeof(*e));
        char **owned = sw_xcalloc(2 * n, sizeof(*owned));
        struct sw_err err = SW_ERR_INIT;
        char *before, *after;
        int rc;

        for (size_t i = 0; i < n; i++) {
                e[i] = tmpl[i];
                if (e[i].name[0] == '@')
                        e[i].name = owned[2 * i] = sw_xasprintf("%s%s", dir, e[i].name + 1);
                if (e[i].target && e[i].target[0] == '@')
                        e[i].target = owned[2 * i + 1] = sw_xasprintf("%s%s", dir, e[i].target + 1);
        }
        t_mkdirs(outside, 0755);
        t_write(secret, "do not touch\n", 0644);
        t_mkdirs(root, 0755);
        t_tar_write(layer, e, n, T_TAR_GZIP);
        CHECK_INT(t_sh("cd '%s' && find . -path ./root -prune -o -print | sort > '%s.before'", dir,
                       listing),
                  0);

        rc = step_layer_unpack(NULL, layer, fresh, NULL, &err);
        if (rc != code || !strstr(err.msg, needle))
                fprintf(stderr, "  %s (fresh): rc %d, error: %s\n", name, rc, err.msg);
        CHECK_INT(rc, code);
        CHECK(strstr(err.msg, needle) != NULL);
        CHECK(!t_exists(fresh));
        sw_err_clear(&err);

        rc = step_layer_apply(NULL, layer, root, NULL, &err);
        if (rc != code || !strstr(err.msg, needle))
                fprintf(stderr, "  %s (in place): rc %d, error: %s\n", name, rc, err.msg);
        CHECK_INT(rc, code);
        CHECK(strstr(err.msg, needle) != NULL);

        CHECK(content_is(outside, "secret", "do not touch\n"));
        CHECK_INT(t_sh("cd '%s' && find . -path ./root -prune -o -print | sort > '%s.after'", dir,
                       listing),
                  0);
        before = sw_xasprintf("%s.before", listing);
        after = sw_xasprintf("%s.after", listing);
        char *b = t_slurp(before), *a = t_slurp(after);
        /* Nothing appeared, vanished or changed type outside the root. */
        CHECK(b && a);
        if (b && a) {
                if (strcmp(a, b) != 0)
                        fprintf(stderr, "  %s: outside changed:\n%s---\n%s", name, b, a);
                CHECK_STR(a, b);
        }
        free(a);
        free(b);
        free(before);
        free(after);
        for (size_t i = 0; i < 2 * n; i++)
                free(owned[i]);
        free(owned);
        free(e);
        free(dirname);
        free(dir);
        free(root);
        free(fresh);
        free(outside);
        free(layer);
        free(secret);
        free(listing);
}

static void test_hostile_archives(void)
{
        const struct t_tar_entry dotdot[] = {{"../outside/escape", 'f', "x", 0}};
        const struct t_tar_entry dotdot_mid[] = {{"a/../../outside/escape", 'f', "x", 0}};
        const struct t_tar_entry absolute[] = {{"@/outside/abs", 'f', "x", 0}};
        const struct t_tar_entry symlink_dir[] = {
                {"evil", 'l', "@/outside", 0},
                {"evil/file", 'f', "x", 0},
        };
        const struct t_tar_entry symlink_rel[] = {
                {"evil", 'l', "../outside", 0},
                {"evil/file", 'f', "x", 0},
        };
        const struct t_tar_entry symlink_deep[] = {
                {"a/", 'd', NULL, 0},
                {"a/evil", 'l', "../../outside", 0},
                {"a/evil/sub/file", 'f', "x", 0},
        };
        const struct t_tar_entry symlink_over[] = {
                /* a symlink replacing the secret's name, then data for it */
                {"evil", 'l', "@/outside/secret", 0},
                {"evil", 'f', "overwritten", 0},
                {"evil2", 'l', "@/outside", 0},
                {"evil2/secret", 'f', "overwritten", 0},
        };
        const struct t_tar_entry hard_out[] = {{"hl", 'h', "../outside/secret", 0}};
        const struct t_tar_entry hard_abs[] = {{"hl", 'h', "@/outside/secret", 0}};
        const struct t_tar_entry hard_via_link[] = {
                {"evil", 'l', "@/outside", 0},
                {"hl", 'h', "evil/secret", 0},
        };
        const struct t_tar_entry wh_dotdot[] = {{"sub/.wh...", 'f', "", 0}};
        const struct t_tar_entry wh_dot[] = {{"sub/.wh..", 'f', "", 0}};
        const struct t_tar_entry wh_empty[] = {{".wh.", 'f', "", 0}};
        const struct t_tar_entry wh_through_link[] = {
                {"evil", 'l', "@/outside", 0},
                {"evil/.wh.secret", 'f', "", 0},
        };
        const struct t_tar_entry opq_through_link[] = {
                {"evil", 'l', "@/outside", 0},
                {"evil/.wh..wh..opq", 'f', "", 0},
        };
        const struct t_tar_entry wh_not_file[] = {{".wh.x", 'l', "y", 0}};

        hostile("dotdot", dotdot, N(dotdot), SW_EPERM, "'..'");
        hostile("dotdot-mid", dotdot_mid, N(dotdot_mid), SW_EPERM, "'..'");
        hostile("absolute", absolute, N(absolute), SW_EPERM, "absolute");
        hostile("symlink-dir", symlink_dir, N(symlink_dir), SW_EPERM, "symlink 'evil'");
        hostile("symlink-rel", symlink_rel, N(symlink_rel), SW_EPERM, "symlink 'evil'");
        hostile("symlink-deep", symlink_deep, N(symlink_deep), SW_EPERM, "symlink 'evil'");
        hostile("symlink-over", symlink_over, N(symlink_over), SW_EPERM, "symlink 'evil2'");
        hostile("hardlink-out", hard_out, N(hard_out), SW_EPERM, "'..'");
        hostile("hardlink-abs", hard_abs, N(hard_abs), SW_EPERM, "absolute");
        hostile("hardlink-via-link", hard_via_link, N(hard_via_link), SW_EPERM, "symlink 'evil'");
        hostile("wh-dotdot", wh_dotdot, N(wh_dotdot), SW_EPERM, "invalid whiteout");
        hostile("wh-dot", wh_dot, N(wh_dot), SW_EPERM, "invalid whiteout");
        hostile("wh-empty", wh_empty, N(wh_empty), SW_EPERM, "invalid whiteout");
        hostile("wh-through-link", wh_through_link, N(wh_through_link), SW_EPERM, "symlink 'evil'");
        hostile("opq-through-link", opq_through_link, N(opq_through_link), SW_EPERM,
                "symlink 'evil'");
        hostile("wh-not-file", wh_not_file, N(wh_not_file), SW_EPERM, "not a regular file");
}

/*
 * A directory entry replaced later in the same tar by a symlink to the
 * outside: libarchive sets directory modes and times at the end, and that
 * late fix-up must not follow the symlink (the CVE-2021-31566 class).
 */
static void test_late_fixup_not_through_symlink(void)
{
        char *dir = fresh_dir("fixup"), *outside = path_in(dir, "outside");
        char *layer = path_in(dir, "l.tar"), *target = path_in(dir, "t");
        char *link_to = sw_xasprintf("%s", outside);
        struct sw_err err = SW_ERR_INIT;
        struct stat before, after, sb;
        const struct t_tar_entry e[] = {
                {"d/", 'd', NULL, 0777},
                {"d", 'l', link_to, 0},
        };

        t_mkdirs(outside, 0755);
        CHECK(chmod(outside, 0755) == 0);
        CHECK(stat(outside, &before) == 0);
        t_tar_write(layer, e, N(e), T_TAR_PLAIN);
        CHECK_OK(step_layer_unpack(NULL, layer, target, NULL, &err), &err);
        CHECK(stat(outside, &after) == 0);
        CHECK_INT(after.st_mode & 07777, 0755);
        CHECK_INT(after.st_mtime, before.st_mtime);
        char *d = path_in(target, "d");
        CHECK(lstat(d, &sb) == 0 && S_ISLNK(sb.st_mode));
        free(d);
        free(dir);
        free(outside);
        free(layer);
        free(target);
        free(link_to);
}

/* Entries in a directory, "." and ".." aside. */
static int count_entries(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

/*
 * A small fuzz pass with a fixed seed: a valid layer with every entry type,
 * mutated a few bytes at a time, must either extract or fail cleanly, and
 * never touch anything outside the root (run under ASan by `make test`).
 */
static void test_mutated_archives(void)
{
        char *dir = fresh_dir("fuzz"), *layer = path_in(dir, "seed.tar");
        char *outside = path_in(dir, "outside"), *work = path_in(dir, "w");
        char *mut = path_in(dir, "mut.tar"), *data = NULL;
        size_t len = 0;
        struct sw_err err = SW_ERR_INIT;
        uint64_t x = 0x9E3779B97F4A7C15ull;
        int ok = 0, failed = 0;
        const struct t_tar_entry e[] = {
                {"etc/", 'd', NULL, 0},
                {"etc/passwd", 'f', "root:x:0:0::/root:/bin/sh\n", 0},
                {"etc/link", 'l', "../outside/secret", 0},
                {"etc/hard", 'h', "etc/passwd", 0},
                {"etc/.wh.gone", 'f', "", 0},
                {"opq/", 'd', NULL, 0},
                {"opq/.wh..wh..opq", 'f', "", 0},
                {"opq/a-name-long-enough-to-need-a-pax-header-because-it-is-over-one-hundred-"
                 "bytes-long.txt",
                 'f', "x", 0},
                {"dev", 'c', NULL, 0},
        };

        t_mkdirs(outside, 0755);
        t_write(layer, "", 0644);
        t_tar_write(layer, e, N(e), T_TAR_PLAIN);
        CHECK_OK(sw_read_file(&data, &len, layer, 1 << 20, &err), &err);
        for (int round = 0; round < 150 && data; round++) {
                char *copy = sw_xmalloc(len);
                memcpy(copy, data, len);
                int flips = 1 + (int)(round % 4);
                for (int f = 0; f < flips; f++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        /* mostly headers: the first 4 KiB hold most of them */
                        size_t at =
                                (size_t)(x >> 8) % (round % 2 ? len : (len < 4096 ? len : 4096));
                        copy[at] = (char)(x >> 40);
                }
                /* Re-seal the header checksums so that most mutants reach the parser. */
                for (size_t b = 0; b + 512 <= len; b += 512) {
                        unsigned char *h = (unsigned char *)copy + b;
                        unsigned sum = 0;
                        if (memcmp(h + 257, "ustar", 5) != 0)
                                continue;
                        memset(h + 148, ' ', 8);
                        for (int k = 0; k < 512; k++)
                                sum += h[k];
                        snprintf((char *)h + 148, 8, "%06o", sum & 0777777);
                }
                FILE *fp = fopen(mut, "wb");
                CHECK(fp && fwrite(copy, 1, len, fp) == len);
                if (fp)
                        fclose(fp);
                free(copy);
                sw_err_clear(&err);
                sw_rm_rf(work, &err);
                sw_err_clear(&err);
                if (step_layer_unpack(NULL, mut, work, NULL, &err) == 0) {
                        ok++;
                } else {
                        failed++;
                        CHECK(err.msg[0] != '\0');
                        CHECK(!t_exists(work));
                }
                /* nothing ever lands outside the root */
                CHECK_INT(count_entries(outside), 0);
                CHECK_INT(count_entries(dir), t_exists(work) ? 4 : 3);
        }
        fprintf(stderr, "  %d mutated archives extracted, %d refused\n", ok, failed);
        CHECK(ok > 0);
        CHECK(failed > 0);
        free(data);
        free(dir);
        free(layer);
        free(outside);
        free(work);
        free(mut);
}

/* A blob whose digest is not the expected one leaves no trace. */
static void test_digest_mismatch(void)
{
        char *dir = fresh_dir("digest"), *layer = path_in(dir, "l.tgz");
        char *target = path_in(dir, "target"), *root = path_in(dir, "root");
        const struct t_tar_entry e[] = {{"a", 'f', "a", 0}, {"b/", 'd', NULL, 0}};
        struct step_layer_unpack_options o = STEP_LAYER_UNPACK_OPTIONS_INIT;
        struct step_layer_info info;
        struct sw_err err = SW_ERR_INIT;
        char good[SW_DIGEST_STR_LEN];
        int64_t good_size = 0;
        const char *bad = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

        t_tar_write(layer, e, N(e), T_TAR_GZIP);
        CHECK_OK(sw_sha256_file(good, NULL, layer, &err), &err);

        /* fresh target absent: stays absent, no temporary left */
        o.expected_digest = bad;
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ECORRUPT);
        CHECK(strstr(err.msg, "digest mismatch") != NULL);
        CHECK(!t_exists(target));
        CHECK(t_sh("ls -a '%s' | grep -q unpack-", dir) != 0);
        sw_err_clear(&err);

        /* fresh target an empty dir: stays an empty dir */
        t_mkdirs(target, 0755);
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ECORRUPT);
        CHECK(t_exists(target) && !exists_in(target, "a"));
        sw_err_clear(&err);

        /* in place: checked before anything is written */
        t_mkdirs(root, 0755);
        CHECK_INT(step_layer_apply(NULL, layer, root, &o, &err), SW_ECORRUPT);
        CHECK(!exists_in(root, "a"));
        sw_err_clear(&err);

        /* diff_id checked too */
        o.expected_digest = good;
        o.expected_diff_id = bad;
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ECORRUPT);
        CHECK(strstr(err.msg, "diff_id mismatch") != NULL);
        CHECK(!exists_in(target, "a"));
        sw_err_clear(&err);

        /* the descriptor's size is checked first */
        o.expected_diff_id = NULL;
        o.expected_size = 3;
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ECORRUPT);
        CHECK(strstr(err.msg, "is not 3 bytes long") != NULL);
        CHECK(!exists_in(target, "a"));
        sw_err_clear(&err);
        o.expected_size = -1;

        /* a malformed expectation is a usage error */
        o.expected_diff_id = "sha256:xyz";
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_EINVAL);
        sw_err_clear(&err);

        o.expected_diff_id = NULL;
        CHECK_OK(sw_sha256_file(good, &good_size, layer, &err), &err);
        o.expected_size = good_size;
        CHECK_OK(step_layer_unpack(&info, layer, target, &o, &err), &err);
        CHECK_INT(info.size, good_size);
        CHECK_STR(info.digest, good);
        CHECK(exists_in(target, "a") && exists_in(target, "b"));

        /* a second unpack of the same digest finds the place taken */
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_EEXIST);
        free(dir);
        free(layer);
        free(target);
        free(root);
}

static bool cancel_after_two(void *arg)
{
        int *n = arg;

        return ++*n > 2;
}

static void test_limits(void)
{
        char *dir = fresh_dir("limits"), *layer = path_in(dir, "l.tgz");
        char *target = path_in(dir, "target");
        char *big = sw_xmalloc(300001);
        struct step_layer_unpack_options o = STEP_LAYER_UNPACK_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;

        memset(big, 'q', 300000);
        big[300000] = '\0';
        const struct t_tar_entry e[] = {
                {"a", 'f', "1", 0}, {"b", 'f', "2", 0}, {"c", 'f', "3", 0},
                {"d", 'f', "4", 0}, {"e", 'f', big, 0},
        };
        t_tar_write(layer, e, N(e), T_TAR_GZIP);
        o.max_entries = 3;
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ETOOBIG);
        CHECK(strstr(err.msg, "more than 3 entries") != NULL);
        CHECK(!t_exists(target));
        sw_err_clear(&err);
        o.max_entries = 0;
        int polls = 0;
        o.cancelled = cancel_after_two;
        o.cancel_arg = &polls;
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ECANCELED);
        CHECK(strstr(err.msg, "cancelled") != NULL);
        CHECK(!t_exists(target));
        o.cancelled = NULL;
        sw_err_clear(&err);
        o.max_bytes = 100000;
        CHECK_INT(step_layer_unpack(NULL, layer, target, &o, &err), SW_ETOOBIG);
        CHECK(strstr(err.msg, "larger than 100000 bytes") != NULL);
        CHECK(!t_exists(target));
        sw_err_clear(&err);
        o.max_bytes = 0;
        CHECK_OK(step_layer_unpack(NULL, layer, target, &o, &err), &err);
        CHECK(content_is(target, "e", big));
        free(big);
        free(dir);
        free(layer);
        free(target);
}

/* Plain, gzip and zstd blobs are recognised; the same tar gives the same diff_id. */
static void test_formats(void)
{
        char *dir = fresh_dir("formats");
        const struct t_tar_entry e[] = {{"d/", 'd', NULL, 0}, {"d/f", 'f', "content", 0}};
        const enum t_tar_compression kinds[] = {T_TAR_PLAIN, T_TAR_GZIP, T_TAR_ZSTD};
        char diff_ids[3][SW_DIGEST_STR_LEN];
        struct sw_err err = SW_ERR_INIT;

        for (size_t i = 0; i < 3; i++) {
                char *layer = sw_xasprintf("%s/l%zu", dir, i);
                char *target = sw_xasprintf("%s/t%zu", dir, i);
                struct step_layer_info info;
                char digest[SW_DIGEST_STR_LEN];
                int64_t size;

                t_tar_write(layer, e, N(e), kinds[i]);
                CHECK_OK(step_layer_unpack(&info, layer, target, NULL, &err), &err);
                CHECK(content_is(target, "d/f", "content"));
                CHECK_OK(sw_sha256_file(digest, &size, layer, &err), &err);
                CHECK_STR(info.digest, digest);
                CHECK_INT(info.size, size);
                memcpy(diff_ids[i], info.diff_id, SW_DIGEST_STR_LEN);
                if (kinds[i] == T_TAR_PLAIN)
                        CHECK_STR(info.digest, info.diff_id);
                else
                        CHECK(strcmp(info.digest, info.diff_id) != 0);
                free(layer);
                free(target);
        }
        CHECK_STR(diff_ids[0], diff_ids[1]);
        CHECK_STR(diff_ids[0], diff_ids[2]);
        free(dir);
}

static void test_corrupt_input(void)
{
        char *dir = fresh_dir("corrupt"), *junk = path_in(dir, "junk");
        char *trunc = path_in(dir, "trunc.tgz"), *target = path_in(dir, "t");
        char *big = sw_xmalloc(200001);
        struct sw_err err = SW_ERR_INIT;
        struct stat sb;

        t_write(junk, "this is not a tar archive, not even close; just words and more words", 0644);
        CHECK_INT(step_layer_unpack(NULL, junk, target, NULL, &err), SW_ECORRUPT);
        CHECK(strstr(err.msg, "junk") != NULL);
        CHECK(!t_exists(target));
        sw_err_clear(&err);

        for (int i = 0; i < 200000; i++)
                big[i] = (char)('a' + (i * 7919) % 26);
        big[200000] = '\0';
        const struct t_tar_entry e[] = {{"a", 'f', "a", 0}, {"big", 'f', big, 0}};
        t_tar_write(trunc, e, N(e), T_TAR_GZIP);
        CHECK(stat(trunc, &sb) == 0);
        CHECK(truncate(trunc, sb.st_size / 2) == 0);
        CHECK_INT(step_layer_unpack(NULL, trunc, target, NULL, &err), SW_ECORRUPT);
        CHECK(!t_exists(target));
        CHECK(t_sh("ls -a '%s' | grep -q unpack-", dir) != 0);
        sw_err_clear(&err);

        CHECK_INT(step_layer_unpack(NULL, "/nonexistent.tgz", target, NULL, &err), SW_ENOTFOUND);
        free(big);
        free(dir);
        free(junk);
        free(trunc);
        free(target);
}

/* Overlay mode: whiteouts kept as overlayfs reads them, for a lower dir. */
static void test_overlay_mode(void)
{
        char *dir = fresh_dir("ovl"), *layer = path_in(dir, "l.tar"), *target = path_in(dir, "t");
        char *p;
        struct step_layer_unpack_options o = STEP_LAYER_UNPACK_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct stat sb;
        char v[4] = {0};
        const struct t_tar_entry e[] = {
                {".wh.gone", 'f', "", 0},  {"opq/", 'd', NULL, 0}, {"opq/.wh..wh..opq", 'f', "", 0},
                {"opq/new", 'f', "n", 0},  {"mine", 'f', "m", 0},  {".wh.mine", 'f', "", 0},
                {"sub/.wh.x", 'f', "", 0},
        };

        if (geteuid() != 0) {
                fprintf(stderr, "  skipped: trusted.overlay xattrs need root\n");
                goto out;
        }
        t_tar_write(layer, e, N(e), T_TAR_PLAIN);
        o.whiteouts = STEP_LAYER_WHITEOUT_OVERLAY;
        CHECK_OK(step_layer_unpack(NULL, layer, target, &o, &err), &err);
        p = path_in(target, "gone");
        CHECK(lstat(p, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(0, 0));
        free(p);
        p = path_in(target, "sub/x");
        CHECK(lstat(p, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(0, 0));
        free(p);
        p = path_in(target, "opq");
        CHECK_INT(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
        CHECK(v[0] == 'y');
        free(p);
        CHECK(content_is(target, "opq/new", "n"));
        CHECK(content_is(target, "mine", "m"));
        CHECK(!exists_in(target, ".wh.gone"));
out:
        free(dir);
        free(layer);
        free(target);
}

/* As an ordinary user: files owned by root in the tar still extract, devices are skipped. */
static void test_unprivileged(void)
{
        char *dir = fresh_dir("unpriv"), *layer = path_in(dir, "l.tgz"), *target;
        const struct t_tar_entry e[] = {
                {"f", 'f', "x", 0},
                {"d/", 'd', NULL, 0},
                {"null", 'c', NULL, 0},
                {"d/g", 'f', "y", 0600},
        };
        pid_t pid;
        int status = -1;

        if (geteuid() != 0) {
                fprintf(stderr, "  skipped: needs root to switch to nobody\n");
                goto out;
        }
        t_tar_write(layer, e, N(e), T_TAR_GZIP);
        CHECK(chown(dir, 65534, 65534) == 0);
        CHECK(chmod(layer, 0644) == 0);
        CHECK(chmod(t_tmpdir(), 0755) == 0);
        target = path_in(dir, "t");
        pid = fork();
        if (pid == 0) {
                struct step_layer_info info;
                struct sw_err err = SW_ERR_INIT;
                if (setgid(65534) != 0 || setuid(65534) != 0)
                        _exit(10);
                if (step_layer_unpack(&info, layer, target, NULL, &err) != 0) {
                        fprintf(stderr, "  unprivileged unpack: %s\n", err.msg);
                        _exit(11);
                }
                _exit(info.skipped == 1 ? 0 : 12);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(content_is(target, "d/g", "y"));
        CHECK(!exists_in(target, "null"));
        free(target);
out:
        free(dir);
        free(layer);
}

/* The debugging CLI: apply with --fresh and --digest, usage errors, help. */
static void test_cli(void)
{
        char *dir = fresh_dir("cli"), *layer = path_in(dir, "l.tgz"), *msg = path_in(dir, "msg");
        const struct t_tar_entry e[] = {{"hello", 'f', "world", 0}};
        char digest[SW_DIGEST_STR_LEN];
        struct sw_err err = SW_ERR_INIT;
        char *out;

        t_tar_write(layer, e, N(e), T_TAR_GZIP);
        CHECK_OK(sw_sha256_file(digest, NULL, layer, &err), &err);
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" layer apply --fresh --digest "
                       "sha256:1111111111111111111111111111111111111111111111111111111111111111 "
                       "'%s' '%s/t1/' 2> '%s'",
                       layer, dir, msg),
                  1);
        out = t_slurp(msg);
        CHECK(out && strstr(out, "digest mismatch"));
        free(out);
        CHECK(!exists_in(dir, "t1"));
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" layer apply --fresh --digest %s '%s' '%s/t1/' > '%s'",
                       digest, layer, dir, msg),
                  0);
        out = t_slurp(msg);
        CHECK(out && strstr(out, digest));
        free(out);
        CHECK(content_is(dir, "t1/hello", "world"));
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" layer frob 2>/dev/null"), 2);
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" layer pack onlyone 2>/dev/null"), 2);
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" layer --help | grep -q 'layer apply'"), 0);
        CHECK_INT(t_sh("\"$SW_TEST_SLIPWAY\" --help | grep -q '^  layer '"), 0);
        free(dir);
        free(layer);
        free(msg);
}

int main(void)
{
        T_RUN(test_whiteouts_three_layers);
        T_RUN(test_replace_semantics);
        T_RUN(test_hostile_archives);
        T_RUN(test_late_fixup_not_through_symlink);
        T_RUN(test_mutated_archives);
        T_RUN(test_digest_mismatch);
        T_RUN(test_limits);
        T_RUN(test_formats);
        T_RUN(test_corrupt_input);
        T_RUN(test_overlay_mode);
        T_RUN(test_unprivileged);
        T_RUN(test_cli);
        return t_done();
}
