/*
 * build.c - the image builder's driver: stages, instructions, the cache,
 * and the final image (see build.h).
 *
 * A stage's file system is a stack of layer directories kept in the build
 * store (steps/build_fs.c), each in overlayfs's own format, so that a RUN
 * mounts them as lower directories without copying anything. Metadata
 * instructions only change the stage's image config; RUN, COPY, ADD and a
 * WORKDIR that creates its directory each make one layer, looked up in the
 * cache first by a key that chains the parent's key with everything the
 * instruction depends on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "steps/build.h"
#include "steps/build_int.h"
#include "steps/dockerfile.h"
#include "steps/dockerignore.h"
#include "steps/layer.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "steps/runtime.h"
#include "common/banned.h"

#define STAGES_MAX 64
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct layer {
        struct step_oci_desc blob;
        char diff_id[SW_DIGEST_STR_LEN];
        char *dir; /* the unpacked layer in the store (a short link) */
};

struct stage {
        char *name; /* lower-case, or NULL */
        const struct step_dockerfile_node *from;
        const struct step_dockerfile_node **ins;
        size_t nins;
        struct layer *layers;
        size_t nlayers;
        json_t *config;    /* the image config's "config" object */
        json_t *history;   /* array */
        json_t *args;      /* ARG name -> value (string) or null, in declaration order */
        json_t *df_labels; /* labels set by this Dockerfile's LABEL (name -> true) */
        char key[SW_DIGEST_STR_LEN];
        bool cmd_set; /* CMD was set in this stage (ENTRYPOINT then keeps it) */
        bool needed, built;
};

struct builder {
        const struct step_build_options *o;
        struct sw_err *err;
        struct bld_store store;
        struct step_dockerfile *df;
        struct step_dockerignore *ignore;
        struct bld_tree tree; /* the context, scanned when a COPY uses a wildcard */
        bool tree_scanned;
        int ctx_fd;
        json_t *global_args; /* name -> value or null */
        json_t *build_args;  /* from the options */
        json_t *used_args;   /* build args something consumed */
        struct stage stages[STAGES_MAX];
        size_t nstages;
        char *work;
        int step, steps_total, layer_steps, cached;
        unsigned seq;
};

/* ---- small helpers ---- */

static void say(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct builder *b, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        if (!b->o->log)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        b->o->log(b->o->arg, line);
}

static bool stopped(struct builder *b)
{
        return b->o->stop && atomic_load(b->o->stop);
}

static const char *node_word(const struct step_dockerfile_node *n)
{
        return n && n->value ? n->value : "";
}

/* The flag --name=value of an instruction, or NULL. */
static const char *flag_value(const struct step_dockerfile_node *ins, const char *name)
{
        size_t len = strlen(name);

        for (size_t i = 0; i < ins->n_flags; i++) {
                const char *f = ins->flags[i];
                if (f[0] == '-' && f[1] == '-' && strncmp(f + 2, name, len) == 0 &&
                    f[2 + len] == '=')
                        return f + 3 + len;
        }
        return NULL;
}

static int ins_error(struct builder *b, const struct step_dockerfile_node *ins, int code,
                     const char *what)
{
        return sw_err_set(b->err, code, "%s (line %d: %s)", what, ins->start_line,
                          ins->original ? ins->original : node_word(ins));
}

/* Variables for expansion: the stage's ARGs, then its ENV (which wins). */
static void shlex_env(struct stage *st, const char ***vars_out, size_t *n_out, char ***own_out)
{
        json_t *env = json_object_get(st->config, "Env");
        size_t n = json_array_size(env) + json_object_size(st->args), k = 0, i;
        const char **vars = sw_xcalloc(n + 1, sizeof(char *));
        char **own = sw_xcalloc(n + 1, sizeof(char *));
        const char *key;
        json_t *v;

        json_object_foreach(st->args, key, v)
        {
                if (json_is_string(v)) {
                        own[k] = sw_xasprintf("%s=%s", key, json_string_value(v));
                        vars[k] = own[k];
                        k++;
                }
        }
        json_array_foreach(env, i, v)
        {
                vars[k++] = json_string_value(v);
        }
        *vars_out = vars;
        *n_out = k;
        *own_out = own;
}

static void free_own(char **own)
{
        for (size_t i = 0; own && own[i]; i++)
                free(own[i]);
        free(own);
}

/* Expand one word the way buildkit does for ENV, COPY, WORKDIR... */
static int expand(char **out, struct builder *b, struct stage *st, const char *word)
{
        struct step_shlex_options so = STEP_SHLEX_OPTIONS_INIT;
        struct step_shlex_env env;
        const char **vars;
        char **own;
        size_t len;
        int rc;

        so.escape = b->df->escape;
        shlex_env(st, &vars, &env.n_vars, &own);
        env.vars = vars;
        rc = step_shlex_word(out, &len, &so, word, strlen(word), &env, b->err);
        free(vars);
        free_own(own);
        return rc;
}

/* Expand a FROM line's word with the global ARGs only. */
static int expand_global(char **out, struct builder *b, const char *word)
{
        struct step_shlex_options so = STEP_SHLEX_OPTIONS_INIT;
        struct step_shlex_env env;
        const char **vars = sw_xcalloc(json_object_size(b->global_args) + 1, sizeof(char *));
        char **own = sw_xcalloc(json_object_size(b->global_args) + 1, sizeof(char *));
        const char *key;
        json_t *v;
        size_t k = 0, len;
        int rc;

        json_object_foreach(b->global_args, key, v)
        {
                if (json_is_string(v)) {
                        own[k] = sw_xasprintf("%s=%s", key, json_string_value(v));
                        vars[k] = own[k];
                        k++;
                }
        }
        so.escape = b->df->escape;
        env.vars = vars;
        env.n_vars = k;
        rc = step_shlex_word(out, &len, &so, word, strlen(word), &env, b->err);
        free(vars);
        free_own(own);
        return rc;
}

static void env_set(json_t *config, const char *name, const char *value)
{
        json_t *env = json_object_get(config, "Env");
        size_t n = strlen(name), i;
        json_t *v;
        char *entry = sw_xasprintf("%s=%s", name, value);

        if (!env) {
                env = json_array();
                json_object_set_new(config, "Env", env);
        }
        json_array_foreach(env, i, v)
        {
                const char *s = json_string_value(v);
                if (s && strncmp(s, name, n) == 0 && s[n] == '=') {
                        json_array_set_new(env, i, json_string(entry));
                        free(entry);
                        return;
                }
        }
        json_array_append_new(env, json_string(entry));
        free(entry);
}

static void history_add(struct stage *st, const char *created_by, bool empty, int64_t epoch)
{
        char when[40];

        sw_time_iso(when, sizeof(when), epoch * 1000);
        /* "1970-01-01T00:00:00.000Z" -> keep whole seconds, as image tools print them */
        memmove(when + 19, when + 23, strlen(when + 23) + 1);
        json_array_append_new(st->history, json_pack("{s:s,s:s,s:b}", "created", when, "created_by",
                                                     created_by, "empty_layer", empty));
        if (!empty)
                json_object_del(json_array_get(st->history, json_array_size(st->history) - 1),
                                "empty_layer");
}

/* key' = sha256(key || what) */
static void chain_key(struct stage *st, const char *what, const char *extra)
{
        struct sw_sha256 *h = sw_sha256_new();

        sw_sha256_update(h, st->key, strlen(st->key) + 1);
        sw_sha256_update(h, what, strlen(what) + 1);
        if (extra)
                sw_sha256_update(h, extra, strlen(extra) + 1);
        sw_sha256_final(h, st->key);
        sw_sha256_free(h);
}

static void stage_add_layer(struct stage *st, const struct step_oci_desc *blob, const char *diff_id,
                            char *dir)
{
        st->layers = sw_xrealloc(st->layers, (st->nlayers + 1) * sizeof(*st->layers));
        st->layers[st->nlayers].blob = *blob;
        snprintf(st->layers[st->nlayers].diff_id, SW_DIGEST_STR_LEN, "%s", diff_id);
        st->layers[st->nlayers].dir = dir;
        st->nlayers++;
}

static void stage_release(struct stage *st)
{
        for (size_t i = 0; i < st->nlayers; i++)
                free(st->layers[i].dir);
        free(st->layers);
        free(st->name);
        free(st->ins);
        json_decref(st->config);
        json_decref(st->history);
        json_decref(st->args);
        json_decref(st->df_labels);
        memset(st, 0, sizeof(*st));
}

/* A fresh directory for one step's scratch work. */
static char *work_dir(struct builder *b)
{
        char *d = sw_xasprintf("%s/s%u-%d", b->work, ++b->seq, (int)getpid());
        struct sw_err ignored = SW_ERR_INIT;

        sw_rm_rf(d, &ignored);
        if (sw_mkdir_p(d, 0700, &ignored) != 0) {
                free(d);
                return NULL;
        }
        return d;
}

/* Lower directories of a stage, topmost first, with `top` (may be NULL) above them. */
static const char **stage_lowers(const struct stage *st, const char *top, size_t *n_out)
{
        const char **l = sw_xcalloc(st->nlayers + 2, sizeof(char *));
        size_t n = 0;

        if (top)
                l[n++] = top;
        for (size_t i = st->nlayers; i > 0; i--)
                l[n++] = st->layers[i - 1].dir;
        *n_out = n;
        return l;
}

/* Mount a read-only view of a stage's file system at dir/view (an empty dir for no layers). */
static int stage_view(char **out, struct builder *b, const struct stage *st, const char *dir)
{
        char *view = sw_xasprintf("%s/view", dir), *empty = sw_xasprintf("%s/empty", dir);
        size_t n;
        const char **lowers;
        int rc = 0;

        mkdir(view, 0755);
        mkdir(empty, 0755);
        lowers = stage_lowers(st, empty, &n);
        /*
         * An overlay needs two lowers when it has no upper: the empty dir is the
         * extra one. No layers at all (scratch): the empty view needs no mount
         * (and unmounting it later fails harmlessly).
         */
        if (st->nlayers > 0)
                rc = bld_overlay_mount(view, lowers, n, NULL, NULL, b->err);
        free(lowers);
        free(empty);
        if (rc) {
                free(view);
                return rc;
        }
        *out = view;
        return 0;
}

/* ---- the finished layer of a step ---- */

/*
 * Pack `tree` as a layer (a changeset when it is an overlay upper dir), put
 * the blob in the store and the tree in the store as its directory, add it
 * to the stage and record it under the stage's current key.
 */
static int commit_layer(struct builder *b, struct stage *st, const char *tree, bool changeset,
                        const char *created_by, const char *scratch)
{
        struct step_layer_pack_options po = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info info;
        struct step_oci_desc blob;
        char *blob_path = sw_xasprintf("%s/layer.tar.gz", scratch), *dir = NULL;
        json_t *rec;
        int rc;

        po.mtime = b->o->source_date_epoch;
        po.changeset = changeset;
        po.compression = b->o->zstd ? STEP_LAYER_ZSTD : STEP_LAYER_GZIP;
        rc = step_layer_pack(&info, tree, blob_path, &po, b->err);
        if (rc)
                goto out;
        if (info.entries == 0) {
                /* nothing changed: no layer, as buildkit does */
                history_add(st, created_by, true, b->o->source_date_epoch);
                rec = json_pack("{s:b}", "empty", 1);
                rc = bld_cache_put(&b->store, st->key, rec, b->err);
                json_decref(rec);
                goto out;
        }
        memset(&blob, 0, sizeof(blob));
        snprintf(blob.media_type, sizeof(blob.media_type), "%s", info.media_type);
        rc = step_oci_blob_add_file(blob.digest, &blob.size, b->store.oci, blob_path, b->err);
        if (rc == 0)
                rc = bld_layer_adopt(&dir, &b->store, blob.digest, tree, b->err);
        if (rc)
                goto out;
        stage_add_layer(st, &blob, info.diff_id, dir);
        history_add(st, created_by, false, b->o->source_date_epoch);
        rec = json_pack("{s:o,s:s,s:s}", "blob", step_oci_desc_json(&blob), "diff_id", info.diff_id,
                        "created_by", created_by);
        rc = bld_cache_put(&b->store, st->key, rec, b->err);
        json_decref(rec);
out:
        unlink(blob_path);
        free(blob_path);
        return rc;
}

static const char *layer_media_type(const struct builder *b)
{
        return b->o->zstd ? STEP_LAYER_MEDIA_TAR_ZSTD : STEP_LAYER_MEDIA_TAR_GZIP;
}

/* Use the cache record for the stage's current key, if there is a usable one. */
static int from_cache(bool *hit, struct builder *b, struct stage *st, const char *created_by)
{
        json_t *rec = NULL;
        struct step_oci_desc blob;
        struct sw_err soft = SW_ERR_INIT;
        char *dir = NULL;

        *hit = false;
        if (b->o->no_cache || bld_cache_get(&rec, &b->store, st->key) != 0)
                return 0;
        if (sw_json_bool(rec, "empty", 0)) {
                history_add(st, created_by, true, b->o->source_date_epoch);
                *hit = true;
        } else if (step_oci_desc_parse(&blob, json_object_get(rec, "blob"), &soft) == 0 &&
                   /* a gzip layer does not serve a zstd build, nor the other way round */
                   strcmp(blob.media_type, layer_media_type(b)) == 0 &&
                   step_oci_blob_exists(b->store.oci, blob.digest, NULL) &&
                   bld_layer_dir(&dir, &b->store, &blob, &soft) == 0) {
                stage_add_layer(st, &blob, sw_json_str(rec, "diff_id", ""), dir);
                history_add(st, created_by, false, b->o->source_date_epoch);
                *hit = true;
        }
        json_decref(rec);
        if (*hit)
                b->cached++;
        return 0;
}

/* ---- FROM ---- */

static int stage_find(struct builder *b, const char *name, size_t before)
{
        char *end = NULL;
        long idx = strtol(name, &end, 10);

        if (*name && !*end && idx >= 0 && (size_t)idx < before)
                return (int)idx;
        for (size_t i = 0; i < before; i++)
                if (b->stages[i].name && strcasecmp(b->stages[i].name, name) == 0)
                        return (int)i;
        return -1;
}

static struct step_registry *registry_for(struct builder *b, const char *host)
{
        struct step_registry_options ro = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *r = NULL;

        step_registry_options_from_config(&ro, b->o->cfg, host);
        if (step_registry_new(&r, &ro, b->err) != 0)
                return NULL;
        return r;
}

/* Pull `ref` into the store (once) and fill the stage from its manifest and config. */
static int stage_from_image(struct builder *b, struct stage *st, const char *ref)
{
        struct step_registry_ref r;
        struct step_registry *reg = NULL;
        struct step_oci_desc desc;
        struct step_oci_manifest m = {0};
        json_t *cfg = NULL, *manifest = NULL;
        char *text = NULL;
        size_t len;
        int rc;

        rc = step_registry_ref_parse(&r, ref, b->o->cfg->registry, b->err);
        if (rc)
                return rc;
        /* A digest already in the store needs no registry at all. */
        if (r.digest[0] && step_oci_blob_exists(b->store.oci, r.digest, NULL)) {
                memset(&desc, 0, sizeof(desc));
                snprintf(desc.digest, sizeof(desc.digest), "%s", r.digest);
                say(b, " ---> %s (cached)", ref);
        } else {
                reg = registry_for(b, r.host);
                if (!reg)
                        return b->err->code;
                rc = step_registry_pull(&desc, reg, r.repo, r.digest[0] ? r.digest : r.tag,
                                        b->store.oci, ref, b->err);
                step_registry_free(reg);
                if (rc) {
                        /* offline, but pulled before: use what the store has */
                        struct sw_err soft = SW_ERR_INIT;
                        if (sw_err_transient(rc) &&
                            step_oci_ref_resolve(&desc, b->store.oci, ref, &soft) == 0) {
                                say(b,
                                    " ---> %s: registry unreachable, using the copy pulled "
                                    "before",
                                    ref);
                                sw_err_clear(b->err);
                                rc = 0;
                        } else {
                                return sw_err_wrap(b->err, "pull %s", ref);
                        }
                }
                say(b, " ---> %s@%s", ref, desc.digest);
        }
        rc = step_oci_blob_read(&text, &len, b->store.oci, desc.digest, STEP_OCI_MANIFEST_MAX_BYTES,
                                b->err);
        if (rc == 0)
                rc = sw_json_parse(&manifest, text, len, 0, b->err);
        if (rc == 0)
                rc = step_oci_manifest_parse(&m, sw_json_str(manifest, "mediaType", NULL), text,
                                             len, b->err);
        if (rc == 0)
                rc = step_oci_json_get(&cfg, b->store.oci, m.config.digest,
                                       STEP_OCI_CONFIG_MAX_BYTES, b->err);
        if (rc)
                goto out;
        {
                const json_t *diff_ids =
                        json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
                if (json_array_size(diff_ids) != m.n_layers) {
                        rc = sw_err_set(b->err, SW_ECORRUPT,
                                        "image %s: %zu layers but %zu diff_ids", ref, m.n_layers,
                                        json_array_size(diff_ids));
                        goto out;
                }
                for (size_t i = 0; i < m.n_layers; i++) {
                        char *dir = NULL;
                        rc = bld_layer_dir(&dir, &b->store, &m.layers[i], b->err);
                        if (rc)
                                goto out;
                        stage_add_layer(st, &m.layers[i],
                                        json_string_value(json_array_get(diff_ids, i)), dir);
                }
        }
        json_decref(st->config);
        st->config = json_deep_copy(json_object_get(cfg, "config"));
        if (!st->config)
                st->config = json_object();
        json_decref(st->history);
        st->history = json_deep_copy(json_object_get(cfg, "history"));
        if (!json_is_array(st->history)) {
                json_decref(st->history);
                st->history = json_array();
        }
        chain_key(st, "FROM", desc.digest);
out:
        step_oci_manifest_release(&m);
        json_decref(manifest);
        json_decref(cfg);
        free(text);
        return rc;
}

static int build_stage(struct builder *b, size_t idx);

static int stage_start(struct builder *b, size_t idx)
{
        struct stage *st = &b->stages[idx];
        const struct step_dockerfile_node *a = st->from->next;
        char *image = NULL;
        int base, rc;

        st->config = json_object();
        st->history = json_array();
        st->args = json_object();
        st->df_labels = json_object();
        snprintf(st->key, sizeof(st->key), "%s", "sha256:slipway-build-v1");
        rc = expand_global(&image, b, node_word(a));
        if (rc)
                return ins_error(b, st->from, rc, "FROM: cannot expand the image name");
        say(b, "Stage %zu%s%s: FROM %s", idx, st->name ? " " : "", st->name ? st->name : "", image);
        base = stage_find(b, image, idx);
        if (strcmp(image, "scratch") == 0) {
                chain_key(st, "FROM scratch", NULL);
        } else if (base >= 0) {
                struct stage *p = &b->stages[base];
                rc = build_stage(b, (size_t)base);
                if (rc)
                        goto out;
                for (size_t i = 0; i < p->nlayers; i++)
                        stage_add_layer(st, &p->layers[i].blob, p->layers[i].diff_id,
                                        sw_xstrdup(p->layers[i].dir));
                json_decref(st->config);
                st->config = json_deep_copy(p->config);
                json_decref(st->history);
                st->history = json_deep_copy(p->history);
                json_decref(st->df_labels);
                st->df_labels = json_deep_copy(p->df_labels);
                memcpy(st->key, p->key, sizeof(st->key));
        } else {
                rc = stage_from_image(b, st, image);
        }
out:
        free(image);
        return rc;
}

/* ---- metadata instructions ---- */

static int do_env(struct builder *b, struct stage *st, const struct step_dockerfile_node *ins,
                  bool label)
{
        struct sw_buf desc;
        struct sw_err ignored = SW_ERR_INIT;
        int rc = 0;

        sw_buf_init(&desc, 1 << 20);
        sw_buf_puts(&desc, label ? "LABEL" : "ENV", &ignored);
        for (const struct step_dockerfile_node *k = ins->next; k && k->next; k = k->next->next) {
                const struct step_dockerfile_node *v = k->next;
                char *key = NULL, *val = NULL;
                if ((rc = expand(&key, b, st, node_word(k))) != 0 ||
                    (rc = expand(&val, b, st, node_word(v))) != 0) {
                        free(key);
                        rc = ins_error(b, ins, rc, "cannot expand");
                        break;
                }
                if (label) {
                        json_t *labels = json_object_get(st->config, "Labels");
                        if (!json_is_object(labels)) {
                                labels = json_object();
                                json_object_set_new(st->config, "Labels", labels);
                        }
                        json_object_set_new(labels, key, json_string(val));
                        json_object_set_new(st->df_labels, key, json_true());
                } else {
                        env_set(st->config, key, val);
                }
                sw_buf_printf(&desc, &ignored, " %s=%s", key, val);
                free(key);
                free(val);
                if (v->next)
                        k = v; /* skip the separator node */
        }
        if (rc == 0)
                history_add(st, sw_buf_str(&desc), true, b->o->source_date_epoch);
        sw_buf_release(&desc);
        return rc;
}

static json_t *args_json(const struct step_dockerfile_node *ins)
{
        json_t *a = json_array();

        for (const struct step_dockerfile_node *n = ins->next; n; n = n->next)
                json_array_append_new(a, json_string(node_word(n)));
        return a;
}

/* CMD, ENTRYPOINT, SHELL: exec form as given; shell form wrapped in the stage's SHELL. */
static json_t *command_json(struct stage *st, const struct step_dockerfile_node *ins)
{
        json_t *shell, *cmd;

        if (ins->json || !ins->next)
                return args_json(ins);
        shell = json_object_get(st->config, "Shell");
        cmd = json_is_array(shell) && json_array_size(shell) ? json_deep_copy(shell)
                                                             : json_pack("[s,s]", "/bin/sh", "-c");
        json_array_append_new(cmd, json_string(node_word(ins->next)));
        return cmd;
}

static int do_arg(struct builder *b, struct stage *st, const struct step_dockerfile_node *ins)
{
        for (const struct step_dockerfile_node *n = ins->next; n; n = n->next) {
                const char *w = node_word(n);
                const char *eq = strchr(w, '=');
                char *name = eq ? sw_xstrndup(w, (size_t)(eq - w)) : sw_xstrdup(w);
                const char *given = sw_json_str(b->build_args, name, NULL);
                json_t *val = json_null();

                if (given) {
                        val = json_string(given);
                        json_object_set_new(b->used_args, name, json_true());
                } else if (eq) {
                        char *x = NULL;
                        if (expand(&x, b, st, eq + 1) != 0) {
                                free(name);
                                return ins_error(b, ins, b->err->code, "ARG: cannot expand");
                        }
                        val = json_string(x);
                        free(x);
                } else if (json_is_string(json_object_get(b->global_args, name))) {
                        val = json_deep_copy(json_object_get(b->global_args, name));
                }
                json_object_set_new(st->args, name, val);
                free(name);
        }
        history_add(st, ins->original ? ins->original : "ARG", true, b->o->source_date_epoch);
        return 0;
}

static int do_expose(struct builder *b, struct stage *st, const struct step_dockerfile_node *ins)
{
        json_t *ports = json_object_get(st->config, "ExposedPorts");

        if (!json_is_object(ports)) {
                ports = json_object();
                json_object_set_new(st->config, "ExposedPorts", ports);
        }
        for (const struct step_dockerfile_node *n = ins->next; n; n = n->next) {
                char *p = NULL, *key;
                char *end = NULL;
                long port;
                if (expand(&p, b, st, node_word(n)) != 0)
                        return ins_error(b, ins, b->err->code, "EXPOSE: cannot expand");
                port = strtol(p, &end, 10);
                if (port < 1 || port > 65535 ||
                    (*end && strcmp(end, "/tcp") && strcmp(end, "/udp") && strcmp(end, "/sctp"))) {
                        free(p);
                        return ins_error(b, ins, SW_EINVAL, "EXPOSE: not a port");
                }
                key = *end ? sw_xstrdup(p) : sw_xasprintf("%s/tcp", p);
                json_object_set_new(ports, key, json_object());
                free(key);
                free(p);
        }
        history_add(st, ins->original ? ins->original : "EXPOSE", true, b->o->source_date_epoch);
        return 0;
}

static int do_healthcheck(struct builder *b, struct stage *st,
                          const struct step_dockerfile_node *ins)
{
        static const char *const durations[] = {"interval", "timeout", "start-period",
                                                "start-interval"};
        static const char *const keys[] = {"Interval", "Timeout", "StartPeriod", "StartInterval"};
        const char *kind = node_word(ins->next);
        json_t *hc = json_object();

        if (strcasecmp(kind, "NONE") == 0) {
                json_object_set_new(hc, "Test", json_pack("[s]", "NONE"));
        } else if (strcasecmp(kind, "CMD") == 0) {
                json_t *test = json_array();
                if (ins->json) {
                        json_array_append_new(test, json_string("CMD"));
                        for (const struct step_dockerfile_node *n = ins->next->next; n; n = n->next)
                                json_array_append_new(test, json_string(node_word(n)));
                } else {
                        json_array_append_new(test, json_string("CMD-SHELL"));
                        json_array_append_new(test, json_string(node_word(ins->next->next)));
                }
                json_object_set_new(hc, "Test", test);
                for (size_t i = 0; i < 4; i++) {
                        const char *v = flag_value(ins, durations[i]);
                        if (v) {
                                /* "5s", "1m30s", "250ms" -> nanoseconds */
                                double total = 0, num = 0;
                                const char *p = v;
                                while (*p) {
                                        char *end = NULL;
                                        num = strtod(p, &end);
                                        if (end == p)
                                                break;
                                        p = end;
                                        if (!strncmp(p, "ms", 2))
                                                total += num * 1e6, p += 2;
                                        else if (*p == 's')
                                                total += num * 1e9, p++;
                                        else if (*p == 'm')
                                                total += num * 60e9, p++;
                                        else if (*p == 'h')
                                                total += num * 3600e9, p++;
                                        else
                                                break;
                                }
                                if (*p) {
                                        json_decref(hc);
                                        return ins_error(b, ins, SW_EINVAL,
                                                         "HEALTHCHECK: bad duration");
                                }
                                json_object_set_new(hc, keys[i], json_integer((json_int_t)total));
                        }
                }
                if (flag_value(ins, "retries"))
                        json_object_set_new(
                                hc, "Retries",
                                json_integer(strtol(flag_value(ins, "retries"), NULL, 10)));
        } else {
                json_decref(hc);
                return ins_error(b, ins, SW_EINVAL, "HEALTHCHECK: expected CMD or NONE");
        }
        json_object_set_new(st->config, "Healthcheck", hc);
        history_add(st, ins->original ? ins->original : "HEALTHCHECK", true,
                    b->o->source_date_epoch);
        return 0;
}

/* ---- WORKDIR ---- */

static int do_workdir(struct builder *b, struct stage *st, const struct step_dockerfile_node *ins)
{
        const char *cur = sw_json_str(st->config, "WorkingDir", "/");
        char *w = NULL, *path, *scratch = NULL, *view = NULL, *probe = NULL;
        struct stat sb;
        int rc;

        if ((rc = expand(&w, b, st, node_word(ins->next))) != 0)
                return ins_error(b, ins, rc, "WORKDIR: cannot expand");
        path = w[0] == '/' ? sw_xstrdup(w)
                           : sw_xasprintf("%s%s%s", cur, cur[strlen(cur) - 1] == '/' ? "" : "/", w);
        json_object_set_new(st->config, "WorkingDir", json_string(path));
        /* buildkit creates the directory when it is missing: that is a layer */
        scratch = work_dir(b);
        if (!scratch) {
                rc = sw_err_set(b->err, SW_EIO, "cannot create a scratch directory");
                goto out;
        }
        rc = stage_view(&view, b, st, scratch);
        if (rc)
                goto out;
        probe = sw_xasprintf("%s%s", view, path);
        bool exists = stat(probe, &sb) == 0 && S_ISDIR(sb.st_mode);
        bld_overlay_umount(view);
        if (exists) {
                history_add(st, ins->original ? ins->original : "WORKDIR", true,
                            b->o->source_date_epoch);
                goto out;
        }
        chain_key(st, "WORKDIR", path);
        b->layer_steps++;
        bool hit;
        from_cache(&hit, b, st, ins->original ? ins->original : "WORKDIR");
        if (!hit) {
                char *tree = sw_xasprintf("%s/tree", scratch);
                char *dir = sw_xasprintf("%s%s", tree, path);
                rc = sw_mkdir_p(dir, 0755, b->err);
                if (rc == 0)
                        rc = commit_layer(b, st, tree, false,
                                          ins->original ? ins->original : "WORKDIR", scratch);
                free(dir);
                free(tree);
        }
out:
        if (scratch) {
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(scratch, &ignored);
        }
        free(scratch);
        free(view);
        free(probe);
        free(path);
        free(w);
        return rc;
}

/* ---- RUN ---- */

struct run_mount {
        char *source, *target;
        bool readonly;
        bool file; /* a secret: the mount point is a file */
};

/* Parse the --mount flags of a RUN: type=cache and type=secret. */
static int run_mounts(struct run_mount **out, size_t *n_out, struct builder *b,
                      const struct step_dockerfile_node *ins, struct sw_buf *keytext)
{
        struct run_mount *m = NULL;
        size_t n = 0;
        struct sw_err ignored = SW_ERR_INIT;

        for (size_t i = 0; i < ins->n_flags; i++) {
                const char *f = ins->flags[i];
                char *spec, *save = NULL, *type = NULL, *target = NULL, *id = NULL, *src = NULL;
                bool ro = false;
                if (strncmp(f, "--mount=", 8) != 0)
                        continue;
                spec = sw_xstrdup(f + 8);
                for (char *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                        char *eq = strchr(kv, '=');
                        char *v = eq ? eq + 1 : (char *)"true";
                        if (eq)
                                *eq = '\0';
                        if (!strcmp(kv, "type"))
                                type = v;
                        else if (!strcmp(kv, "target") || !strcmp(kv, "dst") ||
                                 !strcmp(kv, "destination"))
                                target = v;
                        else if (!strcmp(kv, "id"))
                                id = v;
                        else if (!strcmp(kv, "src") || !strcmp(kv, "source"))
                                src = v;
                        else if (!strcmp(kv, "readonly") || !strcmp(kv, "ro"))
                                ro = strcmp(v, "false") != 0;
                }
                m = sw_xrealloc(m, (n + 1) * sizeof(*m));
                memset(&m[n], 0, sizeof(m[n]));
                if (type && !strcmp(type, "cache")) {
                        char h[SW_DIGEST_STR_LEN];
                        const char *cid = id ? id : target;
                        if (!target) {
                                free(spec);
                                free(m);
                                return ins_error(b, ins, SW_EINVAL,
                                                 "RUN --mount=type=cache needs a target");
                        }
                        sw_sha256_digest(h, cid, strlen(cid));
                        m[n].source = sw_xasprintf("%s/mounts/%.32s", b->store.root, h + 7);
                        m[n].target = sw_xstrdup(target);
                        m[n].readonly = ro;
                        sw_mkdir_p(m[n].source, 0755, &ignored);
                } else if (type && !strcmp(type, "secret")) {
                        const char *sid = id ? id : (src ? src : NULL);
                        const char *host = NULL;
                        size_t len = sid ? strlen(sid) : 0;
                        for (size_t k = 0; sid && b->o->secrets && b->o->secrets[k]; k++)
                                if (!strncmp(b->o->secrets[k], sid, len) &&
                                    b->o->secrets[k][len] == '=')
                                        host = b->o->secrets[k] + len + 1;
                        if (!host) {
                                free(spec);
                                for (size_t k = 0; k < n; k++) {
                                        free(m[k].source);
                                        free(m[k].target);
                                }
                                free(m);
                                return ins_error(b, ins, SW_EINVAL,
                                                 "RUN --mount=type=secret: no such secret was "
                                                 "given (--secret id=...,src=...)");
                        }
                        m[n].source = sw_xstrdup(host);
                        m[n].target =
                                target ? sw_xstrdup(target) : sw_xasprintf("/run/secrets/%s", sid);
                        m[n].readonly = true;
                        m[n].file = true;
                } else {
                        free(spec);
                        for (size_t k = 0; k < n; k++) {
                                free(m[k].source);
                                free(m[k].target);
                        }
                        free(m);
                        return ins_error(b, ins, SW_EINVAL,
                                         "RUN --mount: only type=cache and type=secret are "
                                         "supported");
                }
                /* the key has the mount's kind and place, never a secret's content */
                sw_buf_printf(keytext, &ignored, " mount:%s:%s:%d", type, m[n].target,
                              m[n].readonly);
                n++;
                free(spec);
        }
        *out = m;
        *n_out = n;
        return 0;
}

static void run_output(void *arg, const char *data, size_t len)
{
        struct builder *b = arg;

        if (b->o->output)
                b->o->output(b->o->arg, data, len);
}

static int do_run(struct builder *b, struct stage *st, const struct step_dockerfile_node *ins)
{
        json_t *argv = NULL, *env = json_array();
        struct run_mount *mounts = NULL;
        size_t nmounts = 0, nlowers = 0, i;
        struct sw_buf keytext;
        struct sw_err ignored = SW_ERR_INIT;
        char *scratch = NULL, *upper = NULL, *workd = NULL, *merged = NULL, *init = NULL,
             *bundle = NULL, *id = NULL, *key_json = NULL;
        const char **lowers = NULL, **args = NULL, **envv = NULL;
        const char *user = sw_json_str(st->config, "User", "");
        const char *cwd = sw_json_str(st->config, "WorkingDir", "/");
        const char *created_by = ins->original ? ins->original : "RUN";
        struct step_rt_mount *rtm = NULL;
        bool hit = false, mounted = false, have_path = false;
        int rc = 0, code = 0;
        const char *key;
        json_t *v;

        /* The command: exec form as given, shell form (or heredoc) in the stage's SHELL. */
        if (ins->n_heredocs > 0 && !ins->json) {
                json_t *shell = json_object_get(st->config, "Shell");
                argv = json_is_array(shell) && json_array_size(shell)
                               ? json_deep_copy(shell)
                               : json_pack("[s,s]", "/bin/sh", "-c");
                json_array_append_new(
                        argv, json_stringn(ins->heredocs[0].content, ins->heredocs[0].content_len));
        } else {
                argv = command_json(st, ins);
        }
        /* ARGs in scope are in the environment of RUN (not in the image), ENV wins. */
        json_object_foreach(st->args, key, v)
        {
                if (json_is_string(v)) {
                        char *e = sw_xasprintf("%s=%s", key, json_string_value(v));
                        json_array_append_new(env, json_string(e));
                        free(e);
                }
        }
        json_array_foreach(json_object_get(st->config, "Env"), i, v)
        {
                if (!strncmp(json_string_value(v), "PATH=", 5))
                        have_path = true;
                json_array_append(env, v);
        }
        if (!have_path)
                json_array_append_new(env, json_string(DEFAULT_PATH));

        sw_buf_init(&keytext, 1 << 20);
        key_json = sw_json_dump(argv);
        sw_buf_printf(&keytext, &ignored, "RUN %s user:%s cwd:%s", key_json, user, cwd);
        free(key_json);
        key_json = sw_json_dump(env);
        sw_buf_printf(&keytext, &ignored, " env:%s", key_json);
        rc = run_mounts(&mounts, &nmounts, b, ins, &keytext);
        if (rc)
                goto out;
        chain_key(st, sw_buf_str(&keytext), NULL);
        b->layer_steps++;
        from_cache(&hit, b, st, created_by);
        if (hit)
                goto out;

        scratch = work_dir(b);
        if (!scratch) {
                rc = sw_err_set(b->err, SW_EIO, "cannot create a scratch directory");
                goto out;
        }
        upper = sw_xasprintf("%s/upper", scratch);
        workd = sw_xasprintf("%s/work", scratch);
        merged = sw_xasprintf("%s/merged", scratch);
        init = sw_xasprintf("%s/init", scratch);
        bundle = sw_xasprintf("%s/bundle", scratch);
        if ((rc = sw_mkdir_p(upper, 0755, b->err)) || (rc = sw_mkdir_p(workd, 0700, b->err)) ||
            (rc = sw_mkdir_p(merged, 0755, b->err)) || (rc = sw_mkdir_p(bundle, 0700, b->err)))
                goto out;
        /*
         * The mount points runc needs live in a layer of their own above the
         * image, which is never packed: they do not end up in the new layer.
         */
        {
                static const char *const points[] = {"proc", "sys", "dev", "etc"};
                for (size_t k = 0; k < 4; k++) {
                        char *d = sw_xasprintf("%s/%s", init, points[k]);
                        sw_mkdir_p(d, 0755, &ignored);
                        free(d);
                }
                for (size_t k = 0; k < nmounts; k++) {
                        char *d =
                                sw_xasprintf("%s%s%s", init, mounts[k].target[0] == '/' ? "" : "/",
                                             mounts[k].target);
                        if (mounts[k].file) {
                                char *slash = strrchr(d, '/');
                                *slash = '\0';
                                sw_mkdir_p(d, 0755, &ignored);
                                *slash = '/';
                                int fd = open(d, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                                if (fd >= 0)
                                        close(fd);
                        } else {
                                sw_mkdir_p(d, 0755, &ignored);
                        }
                        free(d);
                }
                char *wd = sw_xasprintf("%s%s", init, cwd);
                sw_mkdir_p(wd, 0755, &ignored);
                free(wd);
        }
        lowers = stage_lowers(st, init, &nlowers);
        rc = bld_overlay_mount(merged, lowers, nlowers, upper, workd, b->err);
        if (rc)
                goto out;
        mounted = true;
        {
                struct step_rt_process p = {0};
                uint32_t uid = 0, gid = 0;
                size_t na = json_array_size(argv), ne = json_array_size(env);
                char *state = sw_xasprintf("%s/runc", b->store.root);

                rc = bld_user_lookup(&uid, &gid, merged, user, b->err);
                if (rc) {
                        free(state);
                        rc = ins_error(b, ins, rc, "USER");
                        goto out;
                }
                args = sw_xcalloc(na + 1, sizeof(char *));
                for (size_t k = 0; k < na; k++)
                        args[k] = json_string_value(json_array_get(argv, k));
                envv = sw_xcalloc(ne + 1, sizeof(char *));
                for (size_t k = 0; k < ne; k++)
                        envv[k] = json_string_value(json_array_get(env, k));
                rtm = sw_xcalloc(nmounts + 1, sizeof(*rtm));
                for (size_t k = 0; k < nmounts; k++) {
                        rtm[k].source = mounts[k].source;
                        rtm[k].destination = mounts[k].target;
                        rtm[k].readonly = mounts[k].readonly;
                }
                id = sw_xasprintf("slipway-build-%d-%u", (int)getpid(), b->seq);
                p.runtime = b->o->cfg && b->o->cfg->runtime ? b->o->cfg->runtime : NULL;
                p.state_dir = state;
                p.bundle_dir = bundle;
                p.rootfs = merged;
                p.id = id;
                p.args = args;
                p.env = envv;
                p.cwd = cwd;
                p.uid = uid;
                p.gid = gid;
                p.mounts = rtm;
                p.nmounts = nmounts;
                p.stop = b->o->stop;
                p.output = run_output;
                p.output_arg = b;
                rc = step_rt_run(&code, &p, b->err);
                free(state);
        }
        bld_overlay_umount(merged);
        mounted = false;
        if (rc) {
                if (rc != SW_ECANCELED)
                        sw_err_wrap(b->err, "RUN (line %d)", ins->start_line);
                goto out;
        }
        if (code != 0) {
                key_json = (free(key_json), sw_json_dump(argv));
                rc = sw_err_set(b->err, SW_EFAILED,
                                "RUN at line %d: the command %s returned a non-zero code: %d",
                                ins->start_line, key_json, code);
                goto out;
        }
        rc = commit_layer(b, st, upper, true, created_by, scratch);
out:
        if (mounted)
                bld_overlay_umount(merged);
        if (scratch)
                sw_rm_rf(scratch, &ignored);
        for (size_t k = 0; k < nmounts; k++) {
                free(mounts[k].source);
                free(mounts[k].target);
        }
        free(mounts);
        free(rtm);
        free(args);
        free(envv);
        free(lowers);
        free(scratch);
        free(upper);
        free(workd);
        free(merged);
        free(init);
        free(bundle);
        free(id);
        free(key_json);
        sw_buf_release(&keytext);
        json_decref(argv);
        json_decref(env);
        return rc;
}

/* ---- COPY / ADD ---- */

static bool has_glob(const char *s)
{
        return strpbrk(s, "*?[") != NULL;
}

static int scan_context(struct builder *b)
{
        if (b->tree_scanned)
                return 0;
        b->tree_scanned = true;
        return bld_tree_scan(&b->tree, b->o->context_dir, b->ignore, b->err);
}

/* Copy the sources (globs expanded against the context) with `c`. */
static int copy_sources(struct builder *b, const struct step_dockerfile_node *ins,
                        struct bld_copy *c, char *const *srcs, size_t nsrcs, const char *dst_abs,
                        bool dst_is_dir, bool from, bool add)
{
        int rc = 0;

        for (size_t i = 0; i < nsrcs && rc == 0; i++) {
                if (has_glob(srcs[i]) && !from) {
                        size_t matched = 0;
                        const char *pat = srcs[i];
                        while (pat[0] == '.' && pat[1] == '/')
                                pat += 2;
                        while (pat[0] == '/')
                                pat++;
                        if ((rc = scan_context(b)) != 0)
                                break;
                        for (size_t k = 0; k < b->tree.n && rc == 0; k++) {
                                if (fnmatch(pat, b->tree.e[k].path, FNM_PATHNAME) != 0)
                                        continue;
                                matched++;
                                rc = bld_copy_path(c, b->tree.e[k].path, dst_abs, true, b->err);
                        }
                        if (rc == 0 && matched == 0)
                                rc = ins_error(b, ins, SW_ENOTFOUND,
                                               "no source files match the pattern");
                } else {
                        rc = bld_copy_path(c, srcs[i], dst_abs, dst_is_dir, b->err);
                        if (rc)
                                sw_err_wrap(b->err, "%s at line %d", add ? "ADD" : "COPY",
                                            ins->start_line);
                }
        }
        return rc;
}

/*
 * A COPY's scratch directory (its new layer's tree, its views), created only
 * when the step is not a cache hit: an unchanged rebuild creates and removes
 * nothing.
 */
struct copy_scratch {
        char *dir;
        char *tree;
        bool made;
};

static int copy_scratch_make(struct copy_scratch *sc, struct sw_err *err)
{
        struct sw_err ignored = SW_ERR_INIT;

        if (sc->made)
                return 0;
        sw_rm_rf(sc->dir, &ignored); /* left by a killed build that had our pid */
        sw_err_clear(&ignored);
        if (sw_mkdir_p(sc->dir, 0700, &ignored) != 0 || mkdir(sc->tree, 0755) != 0) {
                sw_err_clear(&ignored);
                return sw_err_set(err, SW_EIO, "cannot create a scratch directory");
        }
        sc->made = true;
        return 0;
}

/*
 * What a COPY must know of the stage's file system before its cache key:
 * whether the destination is a directory there (then the sources go inside
 * it), and the ids --chown names (`chown`, expanded, or NULL). The stage key
 * determines that file system, so the answers an earlier build recorded
 * under (key, destination, --chown) stand, and an unchanged rebuild mounts
 * nothing. Otherwise the view is mounted (*view, owned by the caller, who
 * unmounts it) and asked, and the answers are recorded.
 */
static int copy_view_facts(bool *dst_is_dir, int64_t *uid, int64_t *gid, char **view,
                           struct builder *b, struct stage *st,
                           const struct step_dockerfile_node *ins, struct copy_scratch *sc,
                           const char *dst_abs, const char *chown)
{
        char key[SW_DIGEST_STR_LEN], *probe;
        struct sw_sha256 *h = sw_sha256_new();
        struct sw_err soft = SW_ERR_INIT;
        json_t *rec = NULL;
        struct stat sb;
        uint32_t u = 0, g = 0;
        bool dir;
        int rc;

        sw_sha256_update(h, "copy-view-facts-v1", 19);
        sw_sha256_update(h, st->key, strlen(st->key) + 1);
        sw_sha256_update(h, dst_abs, strlen(dst_abs) + 1);
        sw_sha256_update(h, chown ? chown : "", strlen(chown ? chown : "") + 1);
        sw_sha256_final(h, key);
        sw_sha256_free(h);
        if (!b->o->no_cache && bld_cache_get(&rec, &b->store, key) == 0) {
                const json_t *d = json_object_get(rec, "dir"), *ju = json_object_get(rec, "uid"),
                             *jg = json_object_get(rec, "gid");
                bool ok = json_is_boolean(d) &&
                          (!chown || (json_is_integer(ju) && json_is_integer(jg)));
                if (ok) {
                        *dst_is_dir = *dst_is_dir || json_is_true(d);
                        if (chown) {
                                *uid = json_integer_value(ju);
                                *gid = json_integer_value(jg);
                        }
                }
                json_decref(rec);
                if (ok)
                        return 0;
        }
        if ((rc = copy_scratch_make(sc, b->err)) != 0 ||
            (rc = stage_view(view, b, st, sc->dir)) != 0)
                return rc;
        probe = sw_xasprintf("%s%s", *view, dst_abs);
        dir = stat(probe, &sb) == 0 && S_ISDIR(sb.st_mode);
        free(probe);
        /* "--chown=user" alone gives the user's primary group */
        if (chown && (rc = bld_user_lookup(&u, &g, *view, chown, b->err)) != 0)
                return ins_error(b, ins, rc, "--chown");
        *dst_is_dir = *dst_is_dir || dir;
        if (chown) {
                *uid = u;
                *gid = g;
        }
        rec = json_pack("{s:b,s:I,s:I}", "dir", dir, "uid", (json_int_t)u, "gid", (json_int_t)g);
        /* only a shortcut: a failure to record it costs the next build a mount */
        bld_cache_put(&b->store, key, rec, &soft);
        json_decref(rec);
        sw_err_clear(&soft);
        return 0;
}

/*
 * The copy of a COPY/ADD step, or its layer from the cache. The key needs
 * the digest of the sources' content; reading a big context on every
 * rebuild would cost seconds, so a first pass over the context fingerprints
 * the sources by their stat data (no content read, nothing written) and
 * looks up the content digest an earlier build recorded for that
 * fingerprint. Only when that gives no cached layer are the files copied
 * (and hashed), and the fingerprint recorded. A file rewritten with the same
 * size within the same nanosecond and keeping its inode and ctime would be
 * missed, as with git's index; --no-cache always copies.
 */
static int copy_cached(bool *hit, char **view, struct builder *b, struct stage *st,
                       const struct step_dockerfile_node *ins, struct bld_copy *c,
                       char *const *srcs, size_t nsrcs, const char *dst_abs, bool dst_is_dir,
                       bool from, bool add, const char *meta, const char *created_by,
                       struct copy_scratch *sc)
{
        char fp[SW_DIGEST_STR_LEN] = "", digest[SW_DIGEST_STR_LEN] = "";
        char key0[SW_DIGEST_STR_LEN];
        json_t *rec = NULL;
        int rc;

        *hit = false;
        b->layer_steps++;
        memcpy(key0, st->key, sizeof(key0));
        if (!from && !b->o->no_cache) {
                struct bld_copy probe = *c;
                probe.stat_only = true;
                probe.hash = sw_sha256_new();
                sw_sha256_update(probe.hash, "stat-fingerprint-v1", 20);
                sw_sha256_update(probe.hash, meta, strlen(meta) + 1);
                rc = copy_sources(b, ins, &probe, srcs, nsrcs, dst_abs, dst_is_dir, from, add);
                sw_sha256_final(probe.hash, fp);
                sw_sha256_free(probe.hash);
                if (rc)
                        return rc;
                if (bld_cache_get(&rec, &b->store, fp) == 0) {
                        snprintf(digest, sizeof(digest), "%s", sw_json_str(rec, "digest", ""));
                        json_decref(rec);
                        rec = NULL;
                }
                if (digest[0]) {
                        chain_key(st, meta, digest);
                        from_cache(hit, b, st, created_by);
                        if (*hit)
                                return 0;
                        memcpy(st->key, key0, sizeof(key0));
                }
        }
        /* a real copy: new parent directories take the image's attributes from the view */
        if ((rc = copy_scratch_make(sc, b->err)) != 0 ||
            (!*view && (rc = stage_view(view, b, st, sc->dir)) != 0))
                return rc;
        c->view_root = *view;
        c->hash = sw_sha256_new();
        rc = copy_sources(b, ins, c, srcs, nsrcs, dst_abs, dst_is_dir, from, add);
        sw_sha256_final(c->hash, digest);
        sw_sha256_free(c->hash);
        c->hash = NULL;
        if (rc)
                return rc;
        if (fp[0]) {
                rec = json_pack("{s:s}", "digest", digest);
                /* only a shortcut: a failure to record it costs the next build time */
                struct sw_err soft = SW_ERR_INIT;
                bld_cache_put(&b->store, fp, rec, &soft);
                json_decref(rec);
        }
        chain_key(st, meta, digest);
        from_cache(hit, b, st, created_by);
        return 0;
}

static int do_copy(struct builder *b, struct stage *st, const struct step_dockerfile_node *ins,
                   bool add)
{
        const char *from = flag_value(ins, "from");
        const char *chown_spec = flag_value(ins, "chown");
        const char *chmod_spec = flag_value(ins, "chmod");
        const char *created_by = ins->original ? ins->original : (add ? "ADD" : "COPY");
        const struct step_dockerfile_node *n;
        struct bld_copy c;
        struct sw_err ignored = SW_ERR_INIT;
        char *view = NULL, *src_view = NULL, *dest = NULL, *dst_abs = NULL, *chown = NULL;
        struct copy_scratch sc = {NULL, NULL, false};
        char **srcs = NULL;
        size_t nsrcs = 0, nwords = 0;
        int src_fd = -1, rc = 0;
        bool hit = false, dst_is_dir;

        memset(&c, 0, sizeof(c));
        for (n = ins->next; n; n = n->next)
                nwords++;
        if (nwords < 2 && ins->n_heredocs == 0)
                return ins_error(b, ins, SW_EINVAL, "COPY needs a source and a destination");
        for (n = ins->next; n && n->next; n = n->next) {
                char *s = NULL;
                if ((rc = expand(&s, b, st, node_word(n))) != 0)
                        return ins_error(b, ins, rc, "cannot expand a source");
                if (!add || (strncmp(s, "http://", 7) && strncmp(s, "https://", 8) &&
                             strncmp(s, "git@", 4))) {
                        srcs = sw_xrealloc(srcs, (nsrcs + 1) * sizeof(char *));
                        srcs[nsrcs++] = s;
                } else {
                        free(s);
                        rc = ins_error(b, ins, SW_EINVAL,
                                       "ADD of a URL is not supported: download it in a RUN, or "
                                       "commit it to the repository");
                        goto out;
                }
        }
        if ((rc = expand(&dest, b, st, node_word(n))) != 0) {
                rc = ins_error(b, ins, rc, "cannot expand the destination");
                goto out;
        }
        {
                const char *wd = sw_json_str(st->config, "WorkingDir", "/");
                dst_abs = dest[0] == '/' ? sw_xstrdup(dest) : sw_xasprintf("%s/%s", wd, dest);
        }
        dst_is_dir = nsrcs > 1 || dest[strlen(dest) - 1] == '/' || !strcmp(dest, ".") ||
                     (strlen(dest) >= 2 && !strcmp(dest + strlen(dest) - 2, "/."));

        sc.dir = sw_xasprintf("%s/s%u-%d", b->work, ++b->seq, (int)getpid());
        sc.tree = sw_xasprintf("%s/tree", sc.dir);
        c.uid = c.gid = -1;
        if (chown_spec && (rc = expand(&chown, b, st, chown_spec)) != 0) {
                rc = ins_error(b, ins, rc, "--chown");
                goto out;
        }
        rc = copy_view_facts(&dst_is_dir, &c.uid, &c.gid, &view, b, st, ins, &sc, dst_abs, chown);
        if (rc)
                goto out;
        /* the source: the context, or another stage's (or image's) file system */
        if (from) {
                int idx = stage_find(b, from, (size_t)(st - b->stages));
                char *fromdir = sw_xasprintf("%s/from", sc.dir);
                if (idx < 0) {
                        free(fromdir);
                        rc = ins_error(b, ins, SW_EINVAL,
                                       "COPY --from names no earlier stage (images by name "
                                       "are not supported yet: add a FROM stage for it)");
                        goto out;
                }
                if ((rc = build_stage(b, (size_t)idx)) != 0 ||
                    (rc = copy_scratch_make(&sc, b->err)) != 0) {
                        free(fromdir);
                        goto out;
                }
                mkdir(fromdir, 0755);
                rc = stage_view(&src_view, b, &b->stages[idx], fromdir);
                free(fromdir);
                if (rc)
                        goto out;
                src_fd = open(src_view, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                c.in_root = true;
        } else {
                src_fd = dup(b->ctx_fd);
                c.ignore = b->ignore;
        }
        c.src_root_fd = src_fd;
        c.dst_root = sc.tree;
        c.view_root = NULL; /* copy_cached mounts it when it copies */
        c.mode = -1;
        c.extract_archives = add;
        if (chmod_spec) {
                char *end = NULL;
                long m = strtol(chmod_spec, &end, 8);
                if (*end || m < 0 || m > 07777) {
                        rc = ins_error(b, ins, SW_EINVAL, "--chmod must be octal, e.g. 0755");
                        goto out;
                }
                c.mode = m;
        }
        {
                char meta[256];
                snprintf(meta, sizeof(meta), "%s %s chown:%lld:%lld chmod:%lld from:%s",
                         add ? "ADD" : "COPY", dst_abs, (long long)c.uid, (long long)c.gid,
                         (long long)c.mode,
                         from ? b->stages[stage_find(b, from, (size_t)(st - b->stages))].key : "-");
                rc = copy_cached(&hit, &view, b, st, ins, &c, srcs, nsrcs, dst_abs, dst_is_dir,
                                 from != NULL, add, meta, created_by, &sc);
        }
        if (rc)
                goto out;
        if (view)
                bld_overlay_umount(view);
        if (src_view)
                bld_overlay_umount(src_view);
        free(view);
        view = NULL;
        free(src_view);
        src_view = NULL;
        if (!hit)
                rc = commit_layer(b, st, sc.tree, false, created_by, sc.dir);
out:
        if (view)
                bld_overlay_umount(view);
        if (src_view)
                bld_overlay_umount(src_view);
        if (src_fd >= 0)
                close(src_fd);
        if (sc.made)
                sw_rm_rf(sc.dir, &ignored);
        for (size_t i = 0; i < nsrcs; i++)
                free(srcs[i]);
        free(srcs);
        free(sc.dir);
        free(sc.tree);
        free(view);
        free(src_view);
        free(dest);
        free(dst_abs);
        free(chown);
        return rc;
}

/* ---- one instruction, one stage ---- */

static int do_instruction_body(struct builder *b, struct stage *st,
                               const struct step_dockerfile_node *ins)
{
        const char *w = node_word(ins);
        char *x = NULL;
        int rc = 0;

        if (stopped(b))
                return sw_err_set(b->err, SW_ECANCELED, "build stopped");
        if (!strcasecmp(w, "RUN"))
                return do_run(b, st, ins);
        if (!strcasecmp(w, "COPY"))
                return do_copy(b, st, ins, false);
        if (!strcasecmp(w, "ADD"))
                return do_copy(b, st, ins, true);
        if (!strcasecmp(w, "ENV"))
                return do_env(b, st, ins, false);
        if (!strcasecmp(w, "LABEL"))
                return do_env(b, st, ins, true);
        if (!strcasecmp(w, "ARG"))
                return do_arg(b, st, ins);
        if (!strcasecmp(w, "WORKDIR"))
                return do_workdir(b, st, ins);
        if (!strcasecmp(w, "EXPOSE"))
                return do_expose(b, st, ins);
        if (!strcasecmp(w, "HEALTHCHECK"))
                return do_healthcheck(b, st, ins);
        if (!strcasecmp(w, "CMD")) {
                json_object_set_new(st->config, "Cmd", command_json(st, ins));
                st->cmd_set = true;
        } else if (!strcasecmp(w, "ENTRYPOINT")) {
                json_object_set_new(st->config, "Entrypoint", command_json(st, ins));
                /* an inherited CMD does not survive a new ENTRYPOINT (Docker's rule) */
                if (!st->cmd_set)
                        json_object_del(st->config, "Cmd");
        } else if (!strcasecmp(w, "SHELL")) {
                if (!ins->json)
                        return ins_error(b, ins, SW_EINVAL, "SHELL needs the JSON form");
                json_object_set_new(st->config, "Shell", args_json(ins));
        } else if (!strcasecmp(w, "USER") || !strcasecmp(w, "STOPSIGNAL")) {
                if ((rc = expand(&x, b, st, node_word(ins->next))) != 0)
                        return ins_error(b, ins, rc, "cannot expand");
                json_object_set_new(st->config, !strcasecmp(w, "USER") ? "User" : "StopSignal",
                                    json_string(x));
                free(x);
        } else if (!strcasecmp(w, "VOLUME")) {
                json_t *vols = json_object_get(st->config, "Volumes");
                if (!json_is_object(vols)) {
                        vols = json_object();
                        json_object_set_new(st->config, "Volumes", vols);
                }
                for (const struct step_dockerfile_node *n = ins->next; n; n = n->next) {
                        if ((rc = expand(&x, b, st, node_word(n))) != 0)
                                return ins_error(b, ins, rc, "cannot expand");
                        json_object_set_new(vols, x, json_object());
                        free(x);
                }
        } else if (!strcasecmp(w, "ONBUILD")) {
                json_t *ob = json_object_get(st->config, "OnBuild");
                const char *orig = ins->original ? ins->original : "";
                while (*orig == ' ')
                        orig++;
                if (!json_is_array(ob)) {
                        ob = json_array();
                        json_object_set_new(st->config, "OnBuild", ob);
                }
                json_array_append_new(ob,
                                      json_string(orig + 7 < orig + strlen(orig) ? orig + 8 : ""));
        } else if (!strcasecmp(w, "MAINTAINER")) {
                json_t *labels = json_object_get(st->config, "Labels");
                if (!json_is_object(labels)) {
                        labels = json_object();
                        json_object_set_new(st->config, "Labels", labels);
                }
                json_object_set_new(labels, "maintainer", json_string(node_word(ins->next)));
        } else {
                return ins_error(b, ins, SW_EINVAL, "unknown instruction");
        }
        history_add(st, ins->original ? ins->original : w, true, b->o->source_date_epoch);
        return 0;
}

/*
 * Run one instruction and report it in one progress line once it is done:
 * "Step 3/9 : RUN make (1.2s)", or "(cached)" when its layer came from the
 * cache. RUN output, when there is some, comes before the line.
 */
static int do_instruction(struct builder *b, struct stage *st,
                          const struct step_dockerfile_node *ins)
{
        const char *text = ins->original ? ins->original : node_word(ins);
        int64_t t0 = sw_now_ms();
        int cached = b->cached, rc;

        while (*text == ' ')
                text++;
        b->step++;
        rc = do_instruction_body(b, st, ins);
        if (rc)
                return rc;
        if (b->cached != cached)
                say(b, "Step %d/%d : %s (cached)", b->step, b->steps_total, text);
        else
                say(b, "Step %d/%d : %s (%.1fs)", b->step, b->steps_total, text,
                    (double)(sw_now_ms() - t0) / 1000.0);
        return 0;
}

static int build_stage(struct builder *b, size_t idx)
{
        struct stage *st = &b->stages[idx];
        int rc;

        if (st->built)
                return 0;
        rc = stage_start(b, idx);
        for (size_t i = 0; rc == 0 && i < st->nins; i++)
                rc = do_instruction(b, st, st->ins[i]);
        if (rc == 0)
                st->built = true;
        return rc;
}

/* ---- the Dockerfile ---- */

static int split_stages(struct builder *b)
{
        const struct step_dockerfile_node *root = b->df->ast;
        struct stage *cur = NULL;

        b->global_args = json_object();
        for (size_t i = 0; i < root->n_children; i++) {
                const struct step_dockerfile_node *ins = root->children[i];
                const char *w = node_word(ins);

                if (!strcasecmp(w, "FROM")) {
                        const struct step_dockerfile_node *a = ins->next;
                        if (b->nstages == STAGES_MAX)
                                return sw_err_set(b->err, SW_ETOOBIG, "more than %d stages",
                                                  STAGES_MAX);
                        if (!a)
                                return ins_error(b, ins, SW_EINVAL, "FROM needs an image");
                        cur = &b->stages[b->nstages++];
                        cur->from = ins;
                        if (a->next && a->next->next && !strcasecmp(node_word(a->next), "AS")) {
                                const char *name = node_word(a->next->next);
                                char *lower = sw_xstrdup(name);
                                for (char *p = lower; *p; p++)
                                        if (*p >= 'A' && *p <= 'Z')
                                                *p = (char)(*p - 'A' + 'a');
                                cur->name = lower;
                        }
                        continue;
                }
                if (!cur) {
                        if (strcasecmp(w, "ARG") != 0)
                                return ins_error(b, ins, SW_EINVAL,
                                                 "only ARG may come before the first FROM");
                        for (const struct step_dockerfile_node *n = ins->next; n; n = n->next) {
                                const char *v = node_word(n), *eq = strchr(v, '=');
                                char *name = eq ? sw_xstrndup(v, (size_t)(eq - v)) : sw_xstrdup(v);
                                const char *given = sw_json_str(b->build_args, name, NULL);
                                if (given)
                                        json_object_set_new(b->used_args, name, json_true());
                                json_object_set_new(b->global_args, name,
                                                    given ? json_string(given)
                                                    : eq  ? json_string(eq + 1)
                                                          : json_null());
                                free(name);
                        }
                        continue;
                }
                cur->ins = sw_xrealloc(cur->ins, (cur->nins + 1) * sizeof(*cur->ins));
                cur->ins[cur->nins++] = ins;
        }
        if (b->nstages == 0)
                return sw_err_set(b->err, SW_EINVAL, "the Dockerfile has no FROM");
        return 0;
}

/* Stages the target needs: its FROM chain and COPY --from sources. */
static void mark_needed(struct builder *b, size_t idx)
{
        struct stage *st = &b->stages[idx];
        char *image = NULL;
        int base;

        if (st->needed)
                return;
        st->needed = true;
        if (expand_global(&image, b, node_word(st->from->next)) == 0 &&
            (base = stage_find(b, image, idx)) >= 0)
                mark_needed(b, (size_t)base);
        free(image);
        sw_err_clear(b->err);
        for (size_t i = 0; i < st->nins; i++) {
                const char *from = flag_value(st->ins[i], "from");
                if (from && (base = stage_find(b, from, idx)) >= 0)
                        mark_needed(b, (size_t)base);
        }
}

static int count_steps(struct builder *b)
{
        int n = 0;

        for (size_t i = 0; i < b->nstages; i++)
                if (b->stages[i].needed)
                        n += (int)b->stages[i].nins;
        return n;
}

/* ---- the image ---- */

/*
 * Hard-link a blob of the store into the output layout: an unchanged rebuild
 * then writes no layer bytes at all. Blobs are never modified in place (both
 * layouts only add and remove whole files named by their digest), so sharing
 * the inode is safe. False when the link cannot be made (another file
 * system): the caller copies.
 */
static bool blob_link(struct step_oci_layout *out, const char *src, const char *digest)
{
        char *dst = step_oci_blob_path(out, digest);
        bool ok = link(src, dst) == 0 || errno == EEXIST;

        free(dst);
        return ok;
}

/*
 * Set the label `key` to `value` unless the Dockerfile set it; a base image's
 * value (its own source and revision) is replaced.
 */
static void label_default(struct stage *st, const char *key, const char *value)
{
        json_t *labels = json_object_get(st->config, "Labels");

        if (!value || !*value)
                return;
        if (!json_is_object(labels)) {
                labels = json_object();
                json_object_set_new(st->config, "Labels", labels);
        }
        if (!json_object_get(st->df_labels, key))
                json_object_set_new(labels, key, json_string(value));
}

/*
 * Put a JSON blob (the image config or manifest) in the store, then hard-link
 * it into the output layout, as the layers are: an unchanged rebuild finds
 * both already in the store and writes (and fsyncs) neither again.
 */
static int put_json(char digest[SW_DIGEST_STR_LEN], int64_t *size, struct builder *b,
                    struct step_oci_layout *out, const json_t *doc)
{
        char *path;
        int rc = step_oci_json_put(digest, size, b->store.oci, doc, b->err);

        if (rc || step_oci_blob_exists(out, digest, NULL))
                return rc;
        path = step_oci_blob_path(b->store.oci, digest);
        if (!blob_link(out, path, digest))
                rc = step_oci_json_put(digest, size, out, doc, b->err); /* another file system */
        free(path);
        return rc;
}

static int write_image(struct step_build_result *res, struct builder *b, struct stage *st)
{
        struct step_oci_layout *out = NULL;
        json_t *image = NULL, *manifest = NULL, *layers = json_array(), *diff_ids = json_array();
        struct step_oci_desc cdesc, mdesc;
        char created[40];
        int rc;

        rc = step_oci_layout_open(&out, b->o->layout_dir, true, b->err);
        if (rc)
                goto out;
        for (size_t i = 0; i < st->nlayers; i++) {
                char *path = step_oci_blob_path(b->store.oci, st->layers[i].blob.digest);
                char d[SW_DIGEST_STR_LEN];
                int64_t size;
                if (!step_oci_blob_exists(out, st->layers[i].blob.digest, NULL) &&
                    !blob_link(out, path, st->layers[i].blob.digest))
                        rc = step_oci_blob_add_file(d, &size, out, path, b->err);
                free(path);
                if (rc)
                        goto out;
                json_array_append_new(layers, step_oci_desc_json(&st->layers[i].blob));
                json_array_append_new(diff_ids, json_string(st->layers[i].diff_id));
        }
        label_default(st, "org.opencontainers.image.source", b->o->source);
        label_default(st, "org.opencontainers.image.revision", b->o->revision);
        sw_time_iso(created, sizeof(created), b->o->source_date_epoch * 1000);
        memmove(created + 19, created + 23, strlen(created + 23) + 1);
        image = json_pack("{s:s,s:s,s:s,s:O,s:{s:s,s:o},s:O}", "created", created, "architecture",
                          "amd64", "os", "linux", "config", st->config, "rootfs", "type", "layers",
                          "diff_ids", diff_ids, "history", st->history);
        diff_ids = NULL;
        memset(&cdesc, 0, sizeof(cdesc));
        snprintf(cdesc.media_type, sizeof(cdesc.media_type), "%s", STEP_OCI_MT_CONFIG);
        rc = put_json(cdesc.digest, &cdesc.size, b, out, image);
        if (rc)
                goto out;
        manifest = json_pack("{s:i,s:s,s:o,s:O}", "schemaVersion", 2, "mediaType",
                             STEP_OCI_MT_MANIFEST, "config", step_oci_desc_json(&cdesc), "layers",
                             layers);
        memset(&mdesc, 0, sizeof(mdesc));
        snprintf(mdesc.media_type, sizeof(mdesc.media_type), "%s", STEP_OCI_MT_MANIFEST);
        rc = put_json(mdesc.digest, &mdesc.size, b, out, manifest);
        if (rc == 0)
                rc = step_oci_ref_set(out, b->o->ref_name ? b->o->ref_name : "latest", &mdesc,
                                      b->err);
        if (rc)
                goto out;
        snprintf(res->manifest_digest, sizeof(res->manifest_digest), "%s", mdesc.digest);
        snprintf(res->config_digest, sizeof(res->config_digest), "%s", cdesc.digest);
        res->manifest_size = mdesc.size;
        res->layers = (int)st->nlayers;
        {
                const char *key;
                json_t *v;
                json_object_foreach(json_object_get(st->config, "ExposedPorts"), key, v)
                {
                        int port = (int)strtol(key, NULL, 10);
                        if (strstr(key, "/tcp") && port > 0 &&
                            (res->exposed_port == 0 || port < res->exposed_port))
                                res->exposed_port = port;
                }
        }
out:
        json_decref(diff_ids);
        json_decref(layers);
        json_decref(image);
        json_decref(manifest);
        step_oci_layout_free(out);
        return rc;
}

/* ---- the context's size ---- */

#define CONTEXT_DEPTH_MAX 256

/*
 * Add the bytes of the regular files under `rel` (a directory of the context,
 * "." for its root) that .dockerignore keeps to *total; SW_ETOOBIG as soon as
 * the sum passes `max`. Symlinks are not followed (COPY refuses those that
 * leave the context anyway).
 */
static int context_walk(int64_t *total, const struct builder *b, int dfd, const char *rel,
                        int depth, int64_t max, struct sw_err *err)
{
        DIR *d = NULL;
        struct dirent *e;
        int fd, rc = 0;

        if (depth > CONTEXT_DEPTH_MAX)
                return sw_err_set(err, SW_ETOOBIG, "build context: '%s' is nested too deeply", rel);
        fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || !(d = fdopendir(fd))) {
                rc = sw_err_errno(err, SW_EIO, errno, "build context: read '%s'", rel);
                if (fd >= 0)
                        close(fd);
                return rc;
        }
        while (rc == 0 && (e = readdir(d)) != NULL) {
                struct stat sb;
                char *path;
                unsigned m;
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
                        continue; /* gone meanwhile */
                path = strcmp(rel, ".") ? sw_xasprintf("%s/%s", rel, e->d_name)
                                        : sw_xstrdup(e->d_name);
                m = b->ignore ? step_dockerignore_match(b->ignore, path, S_ISDIR(sb.st_mode)) : 0;
                if (S_ISDIR(sb.st_mode)) {
                        if (!(m & STEP_DOCKERIGNORE_EXCLUDED) || (m & STEP_DOCKERIGNORE_DESCEND)) {
                                int sub = openat(dirfd(d), e->d_name,
                                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                if (sub >= 0) {
                                        rc = context_walk(total, b, sub, path, depth + 1, max, err);
                                        close(sub);
                                }
                        }
                } else if (S_ISREG(sb.st_mode) && !(m & STEP_DOCKERIGNORE_EXCLUDED)) {
                        *total += (int64_t)sb.st_size;
                        if (*total > max)
                                rc = sw_err_set(err, SW_ETOOBIG,
                                                "build context '%s' is bigger than %lld bytes "
                                                "(SLIPWAY_BUILD_CONTEXT_MAX_BYTES); leave files "
                                                "out with .dockerignore",
                                                b->o->context_dir, (long long)max);
                }
                free(path);
        }
        closedir(d);
        return rc;
}

int step_build_image(struct step_build_result *out, const struct step_build_options *o,
                     struct sw_err *err)
{
        struct builder b;
        char *df_path = NULL, *text = NULL, *cache_root = NULL, *ign_text = NULL, *ign_path;
        size_t len, ign_len;
        int target = -1, rc;

        memset(&b, 0, sizeof(b));
        memset(out, 0, sizeof(*out));
        b.o = o;
        b.err = err;
        b.ctx_fd = -1;
        b.build_args = json_object();
        b.used_args = json_object();
        for (size_t i = 0; o->build_args && o->build_args[i]; i++) {
                const char *eq = strchr(o->build_args[i], '=');
                char *name = eq ? sw_xstrndup(o->build_args[i], (size_t)(eq - o->build_args[i]))
                                : sw_xstrdup(o->build_args[i]);
                json_object_set_new(b.build_args, name, json_string(eq ? eq + 1 : ""));
                free(name);
        }
        cache_root =
                o->cache_dir ? sw_xstrdup(o->cache_dir) : sw_xasprintf("%s/build", o->cfg->data);
        rc = bld_store_open(&b.store, cache_root, err);
        if (rc)
                goto out;
        b.work = o->work_dir ? sw_xstrdup(o->work_dir) : sw_xasprintf("%s/work", cache_root);
        if ((rc = sw_mkdir_p(b.work, 0700, err)) != 0)
                goto out;
        b.ctx_fd = open(o->context_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (b.ctx_fd < 0) {
                rc = sw_err_errno(err, SW_ENOTFOUND, errno, "build context '%s'", o->context_dir);
                goto out;
        }
        /* The Dockerfile, read through the context so that it cannot be a link out of it. */
        {
                struct bld_copy probe = {0};
                (void)probe;
                df_path = sw_xasprintf("%s/%s", o->context_dir,
                                       o->dockerfile ? o->dockerfile : "Dockerfile");
                char *real = realpath(df_path, NULL), *ctx_real = realpath(o->context_dir, NULL);
                if (!real || !ctx_real || strncmp(real, ctx_real, strlen(ctx_real)) != 0 ||
                    (real[strlen(ctx_real)] != '/' && real[strlen(ctx_real)] != '\0')) {
                        rc = real ? sw_err_set(err, SW_EPERM,
                                               "the Dockerfile '%s' is outside the "
                                               "build context",
                                               o->dockerfile ? o->dockerfile : "Dockerfile")
                                  : sw_err_set(err, SW_ENOTFOUND, "no Dockerfile at '%s'",
                                               o->dockerfile ? o->dockerfile : "Dockerfile");
                        free(real);
                        free(ctx_real);
                        goto out;
                }
                rc = sw_read_file(&text, &len, real, STEP_DOCKERFILE_MAX_BYTES, err);
                free(real);
                free(ctx_real);
                if (rc)
                        goto out;
        }
        rc = step_dockerfile_parse(&b.df, text, len, err);
        if (rc)
                goto out;
        ign_path = sw_xasprintf("%s/.dockerignore", o->context_dir);
        if (sw_read_file(&ign_text, &ign_len, ign_path, 1 << 20, err) == 0)
                rc = step_dockerignore_parse(&b.ignore, ign_text, ign_len, err);
        else
                sw_err_clear(err);
        free(ign_path);
        if (rc)
                goto out;
        {
                int64_t max = o->context_max_bytes > 0 ? o->context_max_bytes
                              : o->cfg                 ? o->cfg->build_context_max_bytes
                                                       : 0;
                int64_t total = 0;
                if (max > 0 && (rc = context_walk(&total, &b, b.ctx_fd, ".", 0, max, err)) != 0)
                        goto out;
        }
        if ((rc = split_stages(&b)) != 0)
                goto out;
        if (o->target) {
                target = stage_find(&b, o->target, b.nstages);
                if (target < 0 || !b.stages[target].name) {
                        rc = sw_err_set(err, SW_EINVAL, "target stage '%s' could not be found",
                                        o->target);
                        goto out;
                }
        } else {
                target = (int)b.nstages - 1;
        }
        mark_needed(&b, (size_t)target);
        b.steps_total = count_steps(&b);
        for (size_t i = 0; i <= (size_t)target && rc == 0; i++)
                if (b.stages[i].needed)
                        rc = build_stage(&b, i);
        if (rc)
                goto out;
        {
                const char *key;
                json_t *v;
                json_object_foreach(b.build_args, key, v)
                {
                        if (!json_object_get(b.used_args, key))
                                say(&b, "[warning] the build argument %s was not consumed", key);
                }
        }
        rc = write_image(out, &b, &b.stages[target]);
        out->steps = b.layer_steps;
        out->cached = b.cached;
        if (rc == 0)
                say(&b, "Built %s (%d layers, %d of %d steps from cache)", out->manifest_digest,
                    out->layers, b.cached, b.layer_steps);
out:
        for (size_t i = 0; i < b.nstages; i++)
                stage_release(&b.stages[i]);
        bld_tree_release(&b.tree);
        step_dockerignore_free(b.ignore);
        step_dockerfile_free(b.df);
        bld_store_release(&b.store);
        if (b.ctx_fd >= 0)
                close(b.ctx_fd);
        json_decref(b.global_args);
        json_decref(b.build_args);
        json_decref(b.used_args);
        free(b.work);
        free(df_path);
        free(text);
        free(ign_text);
        free(cache_root);
        return rc;
}
