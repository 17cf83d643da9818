/*
 * oci.c - the OCI image layout: content-addressed blobs and index.json.
 *
 * Blobs are first written to blobs/sha256/.tmp-XXXXXX and hashed on the way;
 * only a verified file is renamed to its digest, so a crash or a mismatch can
 * leave at most a temporary file, never a wrong blob. Temporary files are
 * ignored by readers and removed by the writer that made them.
 */
/* sync_file_range(2) is Linux's; the rest of this file is POSIX. */
#define _GNU_SOURCE
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "steps/oci.h"
#include "common/banned.h"

#define OCI_LAYOUT_FILE "{\"imageLayoutVersion\":\"1.0.0\"}"
#define OCI_INDEX_MAX_BYTES ((size_t)16 << 20)
#define OCI_WRITEBACK_BYTES ((int64_t)8 << 20)
#define OCI_TMP_STALE_S 3600

struct step_oci_layout {
        char *dir;
        char *blob_dir; /* <dir>/blobs/sha256 */
};

struct step_oci_blob_writer {
        struct step_oci_layout *l;
        char *tmp_path;
        int fd;
        struct sw_sha256 *hash;
        int64_t written;
        int64_t synced; /* bytes whose writeback was started */
        int64_t expect_size;
        char expect_digest[SW_DIGEST_STR_LEN];
};

static int write_all(int fd, const void *data, size_t len)
{
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -1;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/*
 * Write `path` atomically unless it already holds exactly `text`: reopening a
 * layout or setting a ref to what it already is then costs a read, not an
 * fsync (which dominates an unchanged rebuild on a busy disk).
 */
static int write_if_changed(const char *path, const char *text, struct sw_err *err)
{
        char *old = NULL;
        size_t len = 0, n = strlen(text);
        struct sw_err ignored = SW_ERR_INIT;
        bool same = sw_read_file(&old, &len, path, OCI_INDEX_MAX_BYTES, &ignored) == 0 &&
                    len == n && memcmp(old, text, n) == 0;

        free(old);
        sw_err_clear(&ignored);
        return same ? 0 : sw_write_file_atomic(path, text, n, 0644, err);
}

static int layout_init(const char *dir, struct sw_err *err)
{
        char *p = NULL;
        json_t *idx = NULL;
        char *text = NULL;
        int rc;

        p = sw_xasprintf("%s/blobs/sha256", dir);
        rc = sw_mkdir_p(p, 0755, err);
        if (rc)
                goto out;
        free(p);
        p = sw_xasprintf("%s/oci-layout", dir);
        rc = write_if_changed(p, OCI_LAYOUT_FILE, err);
        if (rc)
                goto out;
        free(p);
        p = sw_xasprintf("%s/index.json", dir);
        if (access(p, F_OK) != 0) {
                idx = json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2, "mediaType",
                                STEP_OCI_MT_INDEX, "manifests");
                text = sw_json_dump(idx);
                rc = sw_write_file_atomic(p, text, strlen(text), 0644, err);
        }
out:
        free(text);
        json_decref(idx);
        free(p);
        return rc;
}

/*
 * Temporary blobs left by a writer that was killed. A live writer touches its
 * file with every write, so one untouched for an hour is abandoned.
 */
static void remove_stale_tmp(const char *blob_dir)
{
        DIR *d = opendir(blob_dir);
        struct dirent *e;
        time_t now = time(NULL);

        while (d && (e = readdir(d)) != NULL) {
                struct stat st;
                if (strncmp(e->d_name, ".tmp-", 5) != 0)
                        continue;
                if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISREG(st.st_mode) && now - st.st_mtime > OCI_TMP_STALE_S)
                        unlinkat(dirfd(d), e->d_name, 0);
        }
        if (d)
                closedir(d);
}

int step_oci_layout_open(struct step_oci_layout **out, const char *dir, bool create,
                         struct sw_err *err)
{
        struct step_oci_layout *l = NULL;
        char *path = NULL, *text = NULL;
        json_t *doc = NULL;
        const char *ver;
        int rc;

        path = sw_xasprintf("%s/oci-layout", dir);
        if (access(path, F_OK) != 0) {
                if (!create) {
                        rc = sw_err_set(err, SW_ENOTFOUND,
                                        "'%s' is not an OCI image layout (no oci-layout file)",
                                        dir);
                        goto out;
                }
                rc = layout_init(dir, err);
                if (rc)
                        goto out;
        }
        rc = sw_read_file(&text, NULL, path, 4096, err);
        if (rc)
                goto out;
        rc = sw_json_parse(&doc, text, strlen(text), 4096, err);
        if (rc) {
                sw_err_wrap(err, "'%s'", path);
                goto out;
        }
        ver = sw_json_str(doc, "imageLayoutVersion", "");
        if (strncmp(ver, "1.", 2) != 0) {
                rc = sw_err_set(err, SW_EINVAL, "'%s': unsupported imageLayoutVersion '%s'", path,
                                ver);
                goto out;
        }
        l = sw_xcalloc(1, sizeof(*l));
        l->dir = sw_xstrdup(dir);
        l->blob_dir = sw_xasprintf("%s/blobs/sha256", dir);
        rc = sw_mkdir_p(l->blob_dir, 0755, err);
        if (rc)
                goto out;
        remove_stale_tmp(l->blob_dir);
        *out = l;
        l = NULL; /* ownership moved to caller */
out:
        step_oci_layout_free(l);
        json_decref(doc);
        free(text);
        free(path);
        return rc;
}

void step_oci_layout_free(struct step_oci_layout *l)
{
        if (!l)
                return;
        free(l->dir);
        free(l->blob_dir);
        free(l);
}

const char *step_oci_layout_dir(const struct step_oci_layout *l)
{
        return l->dir;
}

char *step_oci_blob_path(const struct step_oci_layout *l, const char *digest)
{
        /* An invalid digest never names a real blob: it must not escape blob_dir. */
        if (!sw_digest_valid(digest))
                return sw_xasprintf("%s/.invalid-digest", l->blob_dir);
        return sw_xasprintf("%s/%s", l->blob_dir, digest + 7);
}

bool step_oci_blob_exists(const struct step_oci_layout *l, const char *digest, int64_t *size_out)
{
        struct stat st;
        char *p;
        bool ok;

        if (!sw_digest_valid(digest))
                return false;
        p = step_oci_blob_path(l, digest);
        ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (ok && size_out)
                *size_out = (int64_t)st.st_size;
        return ok;
}

int step_oci_blob_begin(struct step_oci_blob_writer **out, struct step_oci_layout *l,
                        const char *expect_digest, int64_t expect_size, struct sw_err *err)
{
        struct step_oci_blob_writer *w;
        int fd;
        char *tmp;

        if (expect_digest && !sw_digest_valid(expect_digest))
                return sw_err_set(err, SW_EINVAL, "'%.80s' is not a sha256 digest", expect_digest);
        tmp = sw_xasprintf("%s/.tmp-XXXXXX", l->blob_dir);
        fd = mkstemp(tmp);
        if (fd < 0) {
                int rc = sw_err_errno(err, sw_err_from_errno(errno), errno,
                                      "create temporary blob in '%s'", l->blob_dir);
                free(tmp);
                return rc;
        }
        fchmod(fd, 0644);
        w = sw_xcalloc(1, sizeof(*w));
        w->l = l;
        w->tmp_path = tmp;
        w->fd = fd;
        w->hash = sw_sha256_new();
        w->expect_size = expect_size;
        if (expect_digest)
                snprintf(w->expect_digest, sizeof(w->expect_digest), "%s", expect_digest);
        *out = w;
        return 0;
}

int step_oci_blob_write(struct step_oci_blob_writer *w, const void *data, size_t len,
                        struct sw_err *err)
{
        if (w->expect_size >= 0 && w->written + (int64_t)len > w->expect_size)
                return sw_err_set(err, SW_ECORRUPT,
                                  "blob %s is longer than its expected %lld bytes",
                                  w->expect_digest[0] ? w->expect_digest : "(new)",
                                  (long long)w->expect_size);
        if (write_all(w->fd, data, len) != 0)
                return sw_err_errno(err, SW_EIO, errno, "write '%s'", w->tmp_path);
        sw_sha256_update(w->hash, data, len);
        w->written += (int64_t)len;
        /*
         * Start writeback as the data arrives, so that the fdatasync() at
         * commit finds little left to do instead of a whole layer.
         */
        if (w->written - w->synced >= OCI_WRITEBACK_BYTES) {
                sync_file_range(w->fd, w->synced, w->written - w->synced, SYNC_FILE_RANGE_WRITE);
                w->synced = w->written;
        }
        return 0;
}

int64_t step_oci_blob_written(const struct step_oci_blob_writer *w)
{
        return w->written;
}

void step_oci_blob_abort(struct step_oci_blob_writer *w)
{
        if (!w)
                return;
        if (w->fd >= 0)
                close(w->fd);
        if (w->tmp_path)
                unlink(w->tmp_path);
        free(w->tmp_path);
        sw_sha256_free(w->hash);
        free(w);
}

/* Finish the hash and compare with what was expected; digest gets the content's digest. */
static int writer_verify(char digest[SW_DIGEST_STR_LEN], struct step_oci_blob_writer *w,
                         struct sw_err *err)
{
        sw_sha256_final(w->hash, digest);
        if (w->expect_size >= 0 && w->written != w->expect_size)
                return sw_err_set(err, SW_ECORRUPT, "blob %s: got %lld bytes, expected %lld",
                                  w->expect_digest[0] ? w->expect_digest : digest,
                                  (long long)w->written, (long long)w->expect_size);
        if (w->expect_digest[0] && strcmp(digest, w->expect_digest) != 0)
                return sw_err_set(err, SW_ECORRUPT, "digest mismatch: expected %s, content is %s",
                                  w->expect_digest, digest);
        return 0;
}

int step_oci_blob_commit(char *digest_out, int64_t *size_out, struct step_oci_blob_writer *w,
                         struct sw_err *err)
{
        char digest[SW_DIGEST_STR_LEN];
        char *final = NULL;
        int rc;

        rc = writer_verify(digest, w, err);
        if (rc)
                goto out;
        /*
         * The data is flushed before the rename: after a crash a blob's name
         * must never point at a torn file, since readers trust present blobs.
         */
        if (fdatasync(w->fd) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "fsync '%s'", w->tmp_path);
                goto out;
        }
        if (close(w->fd) != 0) {
                w->fd = -1;
                rc = sw_err_errno(err, SW_EIO, errno, "close '%s'", w->tmp_path);
                goto out;
        }
        w->fd = -1;
        final = step_oci_blob_path(w->l, digest);
        if (rename(w->tmp_path, final) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "rename blob to '%s'", final);
                goto out;
        }
        free(w->tmp_path);
        w->tmp_path = NULL;
        if (digest_out)
                memcpy(digest_out, digest, SW_DIGEST_STR_LEN);
        if (size_out)
                *size_out = w->written;
out:
        free(final);
        step_oci_blob_abort(w);
        return rc;
}

/* ---- staged blobs: verified now, flushed and published together ---- */

struct staged_item {
        char *tmp_path;
        char digest[SW_DIGEST_STR_LEN];
};

struct step_oci_staged {
        struct step_oci_layout *l;
        struct staged_item *items;
        size_t n, cap;
};

int step_oci_blob_stage(struct step_oci_staged **staged, struct step_oci_blob_writer *w,
                        struct sw_err *err)
{
        struct step_oci_staged *st = *staged;
        char digest[SW_DIGEST_STR_LEN];
        int rc;

        rc = writer_verify(digest, w, err);
        if (rc)
                goto out;
        /* Start writeback of the tail now; publish waits for it. */
        sync_file_range(w->fd, w->synced, 0, SYNC_FILE_RANGE_WRITE);
        if (close(w->fd) != 0) {
                w->fd = -1;
                rc = sw_err_errno(err, SW_EIO, errno, "close '%s'", w->tmp_path);
                goto out;
        }
        w->fd = -1;
        if (!st) {
                st = sw_xcalloc(1, sizeof(*st));
                st->l = w->l;
                *staged = st;
        }
        assert(st->l == w->l);
        if (st->n == st->cap) {
                st->cap = st->cap ? st->cap * 2 : 8;
                st->items = sw_xrealloc(st->items, st->cap * sizeof(*st->items));
        }
        st->items[st->n].tmp_path = w->tmp_path;
        memcpy(st->items[st->n].digest, digest, SW_DIGEST_STR_LEN);
        st->n++;
        w->tmp_path = NULL; /* now owned by the staging */
out:
        step_oci_blob_abort(w);
        return rc;
}

int step_oci_staged_publish(struct step_oci_staged *st, struct sw_err *err)
{
        int rc = 0;

        if (!st)
                return 0;
        /* Every file reaches the disk before any of them gets its name. */
        for (size_t i = 0; i < st->n && rc == 0; i++) {
                int fd = open(st->items[i].tmp_path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || fdatasync(fd) != 0)
                        rc = sw_err_errno(err, SW_EIO, errno, "fsync '%s'", st->items[i].tmp_path);
                if (fd >= 0)
                        close(fd);
        }
        for (size_t i = 0; i < st->n && rc == 0; i++) {
                char *final = step_oci_blob_path(st->l, st->items[i].digest);
                if (rename(st->items[i].tmp_path, final) != 0)
                        rc = sw_err_errno(err, SW_EIO, errno, "rename blob to '%s'", final);
                else {
                        free(st->items[i].tmp_path);
                        st->items[i].tmp_path = NULL;
                }
                free(final);
        }
        step_oci_staged_free(st);
        return rc;
}

void step_oci_staged_free(struct step_oci_staged *st)
{
        if (!st)
                return;
        for (size_t i = 0; i < st->n; i++) {
                if (st->items[i].tmp_path)
                        unlink(st->items[i].tmp_path);
                free(st->items[i].tmp_path);
        }
        free(st->items);
        free(st);
}

int step_oci_blob_add_mem(char digest_out[SW_DIGEST_STR_LEN], struct step_oci_layout *l,
                          const void *data, size_t len, struct sw_err *err)
{
        struct step_oci_blob_writer *w = NULL;
        char digest[SW_DIGEST_STR_LEN];
        int rc;

        sw_sha256_digest(digest, data, len);
        if (step_oci_blob_exists(l, digest, NULL)) {
                memcpy(digest_out, digest, SW_DIGEST_STR_LEN);
                return 0;
        }
        rc = step_oci_blob_begin(&w, l, digest, (int64_t)len, err);
        if (rc)
                return rc;
        rc = step_oci_blob_write(w, data, len, err);
        if (rc) {
                step_oci_blob_abort(w);
                return rc;
        }
        return step_oci_blob_commit(digest_out, NULL, w, err);
}

int step_oci_blob_add_file(char digest_out[SW_DIGEST_STR_LEN], int64_t *size_out,
                           struct step_oci_layout *l, const char *path, struct sw_err *err)
{
        struct step_oci_blob_writer *w = NULL;
        char *buf = NULL;
        int fd = -1, rc;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return sw_err_errno(err, sw_err_from_errno(errno), errno, "open '%s'", path);
        rc = step_oci_blob_begin(&w, l, NULL, -1, err);
        if (rc)
                goto out;
        buf = sw_xmalloc(1 << 20);
        for (;;) {
                ssize_t n = read(fd, buf, 1 << 20);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = sw_err_errno(err, SW_EIO, errno, "read '%s'", path);
                        goto out;
                }
                if (n == 0)
                        break;
                rc = step_oci_blob_write(w, buf, (size_t)n, err);
                if (rc)
                        goto out;
        }
        rc = step_oci_blob_commit(digest_out, size_out, w, err);
        w = NULL;
out:
        step_oci_blob_abort(w);
        free(buf);
        close(fd);
        return rc;
}

int step_oci_blob_read(char **out, size_t *len_out, const struct step_oci_layout *l,
                       const char *digest, size_t max_bytes, struct sw_err *err)
{
        char actual[SW_DIGEST_STR_LEN];
        char *path, *data = NULL;
        size_t len = 0;
        int rc;

        if (!sw_digest_valid(digest))
                return sw_err_set(err, SW_EINVAL, "'%.80s' is not a sha256 digest", digest);
        path = step_oci_blob_path(l, digest);
        rc = sw_read_file(&data, &len, path, max_bytes, err);
        free(path);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                return sw_err_set(err, SW_ENOTFOUND, "blob %s is not in layout '%s'", digest,
                                  l->dir);
        }
        if (rc)
                return rc;
        sw_sha256_digest(actual, data, len);
        if (strcmp(actual, digest) != 0) {
                free(data);
                return sw_err_set(err, SW_ECORRUPT, "blob %s in '%s' holds content %s", digest,
                                  l->dir, actual);
        }
        *out = data;
        if (len_out)
                *len_out = len;
        return 0;
}

int step_oci_json_put(char digest_out[SW_DIGEST_STR_LEN], int64_t *size_out,
                      struct step_oci_layout *l, const json_t *doc, struct sw_err *err)
{
        char *text = sw_json_dump(doc);
        size_t len = strlen(text);
        int rc = step_oci_blob_add_mem(digest_out, l, text, len, err);

        free(text);
        if (rc == 0 && size_out)
                *size_out = (int64_t)len;
        return rc;
}

int step_oci_json_get(json_t **out, const struct step_oci_layout *l, const char *digest,
                      size_t max_bytes, struct sw_err *err)
{
        char *data = NULL;
        size_t len = 0;
        int rc = step_oci_blob_read(&data, &len, l, digest, max_bytes, err);

        if (rc)
                return rc;
        rc = sw_json_parse(out, data, len, max_bytes, err);
        if (rc)
                sw_err_wrap(err, "blob %s", digest);
        free(data);
        return rc;
}

int step_oci_index_read(json_t **out, const struct step_oci_layout *l, struct sw_err *err)
{
        char *path = sw_xasprintf("%s/index.json", l->dir);
        char *text = NULL;
        size_t len = 0;
        json_t *doc = NULL;
        int rc;

        rc = sw_read_file(&text, &len, path, OCI_INDEX_MAX_BYTES, err);
        if (rc)
                goto out;
        rc = sw_json_parse(&doc, text, len, OCI_INDEX_MAX_BYTES, err);
        if (rc) {
                sw_err_wrap(err, "'%s'", path);
                goto out;
        }
        if (!json_is_array(json_object_get(doc, "manifests"))) {
                rc = sw_err_set(err, SW_EINVAL, "'%s': no \"manifests\" array", path);
                goto out;
        }
        *out = doc;
        doc = NULL;
out:
        json_decref(doc);
        free(text);
        free(path);
        return rc;
}

static const char *entry_ref(const json_t *entry)
{
        return sw_json_str(json_object_get(entry, "annotations"), STEP_OCI_REF_ANNOTATION, NULL);
}

int step_oci_ref_set(struct step_oci_layout *l, const char *ref, const struct step_oci_desc *desc,
                     struct sw_err *err)
{
        json_t *idx = NULL, *list, *entry = NULL;
        char *text = NULL, *path = NULL;
        size_t i;
        int rc;

        rc = step_oci_index_read(&idx, l, err);
        if (rc)
                goto out;
        list = json_object_get(idx, "manifests");
        for (i = 0; i < json_array_size(list);) {
                const json_t *e = json_array_get(list, i);
                const char *r = entry_ref(e);
                bool same = ref ? (r && strcmp(r, ref) == 0)
                                : (!r && strcmp(sw_json_str(e, "digest", ""), desc->digest) == 0);
                if (same)
                        json_array_remove(list, i);
                else
                        i++;
        }
        entry = step_oci_desc_json(desc);
        if (ref)
                json_object_set_new(entry, "annotations",
                                    json_pack("{s:s}", STEP_OCI_REF_ANNOTATION, ref));
        json_array_append(list, entry);
        text = sw_json_dump(idx);
        path = sw_xasprintf("%s/index.json", l->dir);
        rc = write_if_changed(path, text, err);
out:
        free(path);
        free(text);
        json_decref(entry);
        json_decref(idx);
        return rc;
}

int step_oci_ref_resolve(struct step_oci_desc *out, const struct step_oci_layout *l,
                         const char *ref, struct sw_err *err)
{
        json_t *idx = NULL, *list;
        const json_t *found = NULL;
        int rc;

        rc = step_oci_index_read(&idx, l, err);
        if (rc)
                return rc;
        list = json_object_get(idx, "manifests");
        if (!ref) {
                if (json_array_size(list) != 1) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "layout '%s' holds %zu images; name the one to use", l->dir,
                                        json_array_size(list));
                        goto out;
                }
                found = json_array_get(list, 0);
        }
        for (size_t i = 0; ref && i < json_array_size(list); i++) {
                const char *r = entry_ref(json_array_get(list, i));
                if (r && strcmp(r, ref) == 0)
                        found = json_array_get(list, i);
        }
        if (!found) {
                rc = sw_err_set(err, SW_ENOTFOUND, "no image named '%s' in layout '%s'", ref,
                                l->dir);
                goto out;
        }
        rc = step_oci_desc_parse(out, found, err);
        if (rc)
                sw_err_wrap(err, "'%s/index.json'", l->dir);
out:
        json_decref(idx);
        return rc;
}

int step_oci_desc_parse(struct step_oci_desc *out, const json_t *obj, struct sw_err *err)
{
        struct step_oci_desc d;
        const char *mt = sw_json_str(obj, "mediaType", NULL);
        const char *digest = sw_json_str(obj, "digest", NULL);
        const json_t *size = json_object_get(obj, "size");

        memset(&d, 0, sizeof(d));
        if (!json_is_object(obj))
                return sw_err_set(err, SW_EINVAL, "descriptor is not an object");
        if (!digest || !sw_digest_valid(digest))
                return sw_err_set(err, SW_EINVAL, "descriptor digest '%.80s' is not sha256",
                                  digest ? digest : "");
        if (!json_is_integer(size) || json_integer_value(size) < 0)
                return sw_err_set(err, SW_EINVAL, "descriptor %s has no valid size", digest);
        if (mt && strlen(mt) >= sizeof(d.media_type))
                return sw_err_set(err, SW_EINVAL, "descriptor %s: media type too long", digest);
        snprintf(d.media_type, sizeof(d.media_type), "%s", mt ? mt : "");
        snprintf(d.digest, sizeof(d.digest), "%s", digest);
        d.size = (int64_t)json_integer_value(size);
        *out = d;
        return 0;
}

json_t *step_oci_desc_json(const struct step_oci_desc *d)
{
        return json_pack("{s:s,s:s,s:I}", "mediaType", d->media_type, "digest", d->digest, "size",
                         (json_int_t)d->size);
}

bool step_oci_mt_is_index(const char *mt)
{
        return mt &&
               (strcmp(mt, STEP_OCI_MT_INDEX) == 0 || strcmp(mt, STEP_OCI_MT_DOCKER_LIST) == 0);
}

bool step_oci_mt_is_manifest(const char *mt)
{
        return mt && (strcmp(mt, STEP_OCI_MT_MANIFEST) == 0 ||
                      strcmp(mt, STEP_OCI_MT_DOCKER_MANIFEST) == 0);
}

int step_oci_manifest_parse(struct step_oci_manifest *out, const char *media_type, const char *data,
                            size_t len, struct sw_err *err)
{
        struct step_oci_manifest m;
        json_t *doc = NULL, *layers;
        const char *mt;
        int rc;

        memset(&m, 0, sizeof(m));
        rc = sw_json_parse(&doc, data, len, STEP_OCI_MANIFEST_MAX_BYTES, err);
        if (rc)
                return sw_err_wrap(err, "manifest");
        mt = sw_json_str(doc, "mediaType", NULL);
        if (!mt || !*mt)
                mt = media_type;
        /* An OCI manifest may omit mediaType; its config descriptor tells it apart. */
        if ((!mt || !*mt) && json_is_object(json_object_get(doc, "config")))
                mt = STEP_OCI_MT_MANIFEST;
        if (step_oci_mt_is_index(mt)) {
                rc = sw_err_set(err, SW_EINVAL, "'%s' is an image index, not an image manifest",
                                mt);
                goto out;
        }
        if (!step_oci_mt_is_manifest(mt)) {
                rc = sw_err_set(err, SW_EPROTO,
                                "unsupported manifest media type '%.100s' (expected %s or %s)",
                                mt ? mt : "", STEP_OCI_MT_MANIFEST, STEP_OCI_MT_DOCKER_MANIFEST);
                goto out;
        }
        if (sw_json_int(doc, "schemaVersion", 0) != 2) {
                rc = sw_err_set(err, SW_EPROTO, "manifest schemaVersion is not 2");
                goto out;
        }
        snprintf(m.media_type, sizeof(m.media_type), "%s", mt);
        rc = step_oci_desc_parse(&m.config, json_object_get(doc, "config"), err);
        if (rc) {
                sw_err_wrap(err, "manifest config");
                goto out;
        }
        layers = json_object_get(doc, "layers");
        if (!json_is_array(layers)) {
                rc = sw_err_set(err, SW_EINVAL, "manifest has no \"layers\" array");
                goto out;
        }
        if (json_array_size(layers) > STEP_OCI_MAX_LAYERS) {
                rc = sw_err_set(err, SW_ETOOBIG, "manifest has %zu layers, more than %d",
                                json_array_size(layers), STEP_OCI_MAX_LAYERS);
                goto out;
        }
        m.n_layers = json_array_size(layers);
        m.layers = sw_xcalloc(m.n_layers ? m.n_layers : 1, sizeof(*m.layers));
        for (size_t i = 0; i < m.n_layers; i++) {
                rc = step_oci_desc_parse(&m.layers[i], json_array_get(layers, i), err);
                if (rc) {
                        sw_err_wrap(err, "manifest layer %zu", i);
                        goto out;
                }
        }
        *out = m;
        m.layers = NULL;
out:
        free(m.layers);
        json_decref(doc);
        return rc;
}

void step_oci_manifest_release(struct step_oci_manifest *m)
{
        if (!m)
                return;
        free(m->layers);
        m->layers = NULL;
        m->n_layers = 0;
}
