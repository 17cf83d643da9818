/*
 * overlay.c - layers against a real overlayfs mount.
 *
 * A lower tree is packed as layer 1 and mounted under an overlay; changes
 * made in the merged view (new, modified, deleted and replaced files and
 * directories) land in the upper dir, which is packed as a changeset, layer
 * 2. Then (a) layers 1 and 2 applied in turn on a fresh directory must equal
 * the merged view, and (b) the two layers unpacked in overlay mode (whiteout
 * devices, opaque xattrs) and stacked as a new overlay's lower dirs must show
 * the same merged view again: the node agent's way of building a rootfs.
 * Needs root and a kernel that lets it mount overlayfs; otherwise it says why
 * and skips.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"
#include "steps/layer.h"
#include "tests/harness/t.h"
#include "tests/harness/tree.h"

struct env {
        char *base, *lower, *upper, *work, *merged;
        char *l1, *l2, *flat, *s1, *s2, *merged2;
        char *opts; /* the mount options that worked */
        bool mounted, mounted2;
};

static char *in(const char *dir, const char *rel)
{
        return sw_xasprintf("%s/%s", dir, rel);
}

/* Mounts the overlay; without redirect_dir/metacopy switched off if the kernel lacks them. */
static int mount_overlay(struct env *e)
{
        const char *extra[] = {",redirect_dir=off,metacopy=off", ""};

        for (size_t i = 0; i < 2; i++) {
                char *o = sw_xasprintf("lowerdir=%s,upperdir=%s,workdir=%s%s", e->lower, e->upper,
                                       e->work, extra[i]);
                if (mount("overlay", e->merged, "overlay", 0, o) == 0) {
                        free(e->opts);
                        e->opts = o;
                        e->mounted = true;
                        return 0;
                }
                int saved = errno;
                free(o);
                if (saved != EINVAL)
                        return -saved;
        }
        return -EINVAL;
}

static void setup(struct env *e)
{
        e->base = in(t_tmpdir(), "ovl");
        e->lower = in(e->base, "lower");
        e->upper = in(e->base, "upper");
        e->work = in(e->base, "work");
        e->merged = in(e->base, "merged");
        e->l1 = in(e->base, "l1.tgz");
        e->l2 = in(e->base, "l2.tgz");
        e->flat = in(e->base, "flat");
        e->s1 = in(e->base, "store/1");
        e->s2 = in(e->base, "store/2");
        e->merged2 = in(e->base, "merged2");
        t_mkdirs(e->lower, 0755);
        t_mkdirs(e->upper, 0755);
        t_mkdirs(e->work, 0755);
        t_mkdirs(e->merged, 0755);
        t_mkdirs(e->merged2, 0755);
        t_mkdirs(e->flat, 0755);
        t_mkdirs(e->base, 0755);
        CHECK_INT(t_sh("mkdir -p '%s/store'", e->base), 0);
}

static void teardown(struct env *e)
{
        if (e->mounted2)
                umount2(e->merged2, MNT_DETACH);
        if (e->mounted)
                umount2(e->merged, MNT_DETACH);
        free(e->base);
        free(e->lower);
        free(e->upper);
        free(e->work);
        free(e->merged);
        free(e->l1);
        free(e->l2);
        free(e->flat);
        free(e->s1);
        free(e->s2);
        free(e->merged2);
        free(e->opts);
}

static void make_lower(const char *l)
{
        CHECK_INT(t_sh("cd '%s' && mkdir -p etc app/sub gone-dir/deeper data && "
                       "echo v1 > etc/config && echo x > etc/remove-me && echo k > etc/keep && "
                       "echo a > app/a && echo b > app/b && echo c > app/sub/c && "
                       "echo g > gone-dir/g && echo d > gone-dir/deeper/d && "
                       "echo data > data/file && chmod 644 data/file && "
                       "echo r > rename-me && ln -s etc/config link && "
                       "mkdir -p opt/tool && echo t > opt/tool/bin && chmod 755 opt/tool/bin",
                       l),
                  0);
}

static void change_merged(const char *m)
{
        CHECK_INT(t_sh("cd '%s' && mkdir new && echo created > new/file && "
                       "echo v2 > etc/config && rm etc/remove-me && "
                       "rm -rf app && mkdir app && echo fresh > app/only && "
                       "rm -rf gone-dir && chmod 600 data/file && mv rename-me renamed && "
                       "rm link && echo h > new/h1 && ln new/h1 new/h2 && "
                       "ln -s ../etc/config new/sl && mkfifo new/fifo && "
                       "chmod 700 opt/tool && mkdir -p opt/tool/lib && echo l > opt/tool/lib/x",
                       m),
                  0);
}

static void test_overlay_changeset(void)
{
        struct env e = {0};
        struct step_layer_pack_options po = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_unpack_options uo = STEP_LAYER_UNPACK_OPTIONS_INIT;
        struct step_layer_info i1, i2;
        struct sw_err err = SW_ERR_INIT;
        char *why = NULL, *list = NULL, *opts2 = NULL;
        int rc;

        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: mounting overlayfs needs root\n");
                return;
        }
        setup(&e);
        make_lower(e.lower);
        CHECK_OK(step_layer_pack(&i1, e.lower, e.l1, &po, &err), &err);

        rc = mount_overlay(&e);
        if (rc == -EPERM || rc == -ENODEV) {
                fprintf(stderr, "SKIP: this kernel/sandbox does not allow overlay mounts (%s)\n",
                        strerror(-rc));
                goto out;
        }
        CHECK_INT(rc, 0);
        if (rc)
                goto out;
        change_merged(e.merged);
        CHECK(umount2(e.merged, 0) == 0);
        e.mounted = false;

        /* The upper dir, as a changeset. */
        po.changeset = true;
        CHECK_OK(step_layer_pack(&i2, e.upper, e.l2, &po, &err), &err);
        list = in(e.base, "l2.list");
        CHECK_INT(t_sh("tar -tf '%s' > '%s'", e.l2, list), 0);
        char *names = t_slurp(list);
        CHECK(names != NULL);
        if (names) {
                CHECK(strstr(names, ".wh.gone-dir\n") != NULL);
                CHECK(strstr(names, "etc/.wh.remove-me\n") != NULL);
                CHECK(strstr(names, ".wh.rename-me\n") != NULL);
                CHECK(strstr(names, ".wh.link\n") != NULL);
                CHECK(strstr(names, "app/.wh..wh..opq\n") != NULL);
                CHECK(strstr(names, "etc/keep") == NULL); /* unchanged: not in the layer */
        }
        free(names);

        /* Packing the same upper dir again gives the same digest. */
        struct step_layer_info again;
        char *l2b = in(e.base, "l2-again.tgz");
        CHECK_OK(step_layer_pack(&again, e.upper, l2b, &po, &err), &err);
        CHECK_STR(again.digest, i2.digest);
        free(l2b);

        /* The merged view again, to compare with. */
        rc = mount_overlay(&e);
        CHECK_INT(rc, 0);
        if (rc)
                goto out;

        /* (a) flat: layer 1 then the changeset on a fresh directory. */
        CHECK_OK(step_layer_apply(NULL, e.l1, e.flat, NULL, &err), &err);
        CHECK_OK(step_layer_apply(NULL, e.l2, e.flat, NULL, &err), &err);
        why = t_tree_diff(e.merged, e.flat, 0);
        if (why)
                fprintf(stderr, "  flat apply differs from the merged view: %s\n", why);
        CHECK(why == NULL);
        free(why);
        why = NULL;

        /* (b) the content store's way: each layer in its own dir, stacked by overlayfs. */
        uo.whiteouts = STEP_LAYER_WHITEOUT_OVERLAY;
        uo.expected_digest = i1.digest;
        CHECK_OK(step_layer_unpack(NULL, e.l1, e.s1, &uo, &err), &err);
        uo.expected_digest = i2.digest;
        CHECK_OK(step_layer_unpack(NULL, e.l2, e.s2, &uo, &err), &err);
        opts2 = sw_xasprintf("lowerdir=%s:%s", e.s2, e.s1);
        if (mount("overlay", e.merged2, "overlay", MS_RDONLY, opts2) != 0) {
                fprintf(stderr, "  read-only overlay of the unpacked layers: %s\n",
                        strerror(errno));
                CHECK(false);
                goto out;
        }
        e.mounted2 = true;
        why = t_tree_diff(e.merged, e.merged2, 0);
        if (why)
                fprintf(stderr, "  stacked layers differ from the merged view: %s\n", why);
        CHECK(why == NULL);
out:
        free(why);
        free(list);
        free(opts2);
        teardown(&e);
}

int main(void)
{
        T_RUN(test_overlay_changeset);
        return t_done();
}
