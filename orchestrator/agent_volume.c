/*
 * agent_volume.c - a pod's volumes, made ready to be bind-mounted into its
 * containers:
 *   emptyDir          a directory of the pod (<pod>/volumes/<name>);
 *   configMap, secret the object's keys as files (items pick and rename
 *                     keys; defaultMode and items[].mode set the modes);
 *   downwardAPI       items from the pod's metadata (fieldRef);
 *   projected         configMap, secret and downwardAPI sources merged into
 *                     one directory; serviceAccountToken sources are skipped
 *                     with a Warning Event (this node issues no tokens);
 *   hostPath          the host path itself, after the check its `type` asks
 *                     for (Directory, DirectoryOrCreate, File, FileOrCreate,
 *                     Socket, CharDevice, BlockDevice; "" checks nothing but
 *                     that the path exists).
 * Files of a volume are written once per pod, into a temporary sibling that
 * is renamed into place, so a volume directory is whole or absent.
 *
 * Threads: the reconcile thread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "orchestrator/client/kube.h"
#include "common/banned.h"

#define MODE_MASK 0777

void agent_event(struct orch_agent *a, const struct agent_pod *p, const char *type,
                 const char *reason, const char *fmt, ...)
{
        struct sw_err err = SW_ERR_INIT;
        char msg[1024], ts[32], *path, *name;
        unsigned char rnd[6];
        json_t *ev;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                memset(rnd, 0, sizeof(rnd));
        name = sw_xasprintf("%s.%02x%02x%02x%02x%02x%02x", p->name, rnd[0], rnd[1], rnd[2], rnd[3],
                            rnd[4], rnd[5]);
        agent_time_fmt(ts, sizeof(ts), sw_now_ms());
        ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:{s:s,s:s},"
                       "s:s,s:s,s:i}",
                       "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
                       p->ns, "involvedObject", "kind", "Pod", "apiVersion", "v1", "name", p->name,
                       "namespace", p->ns, "uid", p->uid, "reason", reason, "message", msg, "type",
                       type, "source", "component", "kubelet", "host", a->node_name,
                       "firstTimestamp", ts, "lastTimestamp", ts, "count", 1);
        path = sw_xasprintf("/api/v1/namespaces/%s/events", p->ns);
        if (ev && orch_kube_request(NULL, NULL, a->kube, "POST", path, NULL, ev, &err) != 0)
                sw_log(SW_LOG_DEBUG, "orch_agent", "event not recorded", "{s:s,s:s}", "reason",
                       reason, "error", err.msg);
        json_decref(ev);
        free(path);
        free(name);
}

/* A key or items[].path as a file name under the volume: relative, no "..". */
static bool safe_rel_path(const char *path)
{
        if (!*path || path[0] == '/')
                return false;
        for (const char *s = path; *s;) {
                size_t n = strcspn(s, "/");
                if ((n == 2 && !strncmp(s, "..", 2)) || n == 0)
                        return false;
                s += n;
                if (*s == '/')
                        s++;
        }
        return true;
}

/* A mode from the spec (defaultMode, items[].mode): 0..0777. */
static int spec_mode(mode_t *out, const json_t *o, const char *key, mode_t def, struct sw_err *err)
{
        const json_t *v = json_object_get(o, key);

        if (!v) {
                *out = def;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MODE_MASK)
                return sw_err_set(err, SW_EINVAL, "%s must be a file mode between 0 and 0777", key);
        *out = (mode_t)json_integer_value(v);
        return 0;
}

/* Write one file of a volume at `rel` under `dir` (parents made). */
static int put_file(const char *dir, const char *rel, const char *data, size_t len, mode_t mode,
                    struct sw_err *err)
{
        char *path, *parent;
        int rc;

        if (!safe_rel_path(rel))
                return sw_err_set(err, SW_EINVAL, "volume path \"%s\" is not allowed", rel);
        path = sw_xasprintf("%s/%s", dir, rel);
        parent = sw_xstrdup(path);
        *strrchr(parent, '/') = '\0';
        rc = sw_mkdir_p(parent, 0755, err);
        if (rc == 0)
                rc = sw_write_file_atomic(path, data, len, mode, err);
        /* The atomic write honours the umask: the spec's mode is what counts. */
        if (rc == 0 && chmod(path, mode) != 0)
                rc = sw_err_errno(err, SW_EIO, errno, "chmod \"%s\"", rel);
        free(parent);
        free(path);
        return rc;
}

/*
 * The keys of a ConfigMap or Secret (`src` the configMap/secret object of a
 * volume or of a projected source) as files in `dir`.
 */
static int put_data(struct orch_agent *a, const struct agent_pod *p, const json_t *src, bool secret,
                    mode_t def_mode, const char *dir, struct sw_err *err)
{
        const char *name = sw_json_str(src, secret ? "secretName" : "name", "");
        const json_t *items = json_object_get(src, "items"), *it, *v;
        json_t *data = NULL;
        const char *key;
        size_t i;
        int rc;

        if (secret && !*name)
                name = sw_json_str(src, "name", ""); /* projected sources say "name" */
        rc = spec_mode(&def_mode, src, "defaultMode", def_mode, err);
        if (rc == 0)
                rc = agent_pod_fetch_data(&data, a, p->ns, secret ? "secrets" : "configmaps", name,
                                          sw_json_bool(src, "optional", 0), err);
        if (rc)
                goto out;
        if (!json_array_size(items)) {
                json_object_foreach(data, key, v)
                {
                        rc = put_file(dir, key, json_string_value(v), json_string_length(v),
                                      def_mode, err);
                        if (rc)
                                goto out;
                }
                goto out;
        }
        json_array_foreach(items, i, it)
        {
                const char *k = sw_json_str(it, "key", "");
                mode_t mode;

                v = json_object_get(data, k);
                if (!v) {
                        /* A named key must exist unless the whole source is optional. */
                        if (sw_json_bool(src, "optional", 0))
                                continue;
                        rc = sw_err_set(err, SW_ENOTFOUND, "key \"%s\" not found", k);
                        goto out;
                }
                rc = spec_mode(&mode, it, "mode", def_mode, err);
                if (rc == 0)
                        rc = put_file(dir, sw_json_str(it, "path", k), json_string_value(v),
                                      json_string_length(v), mode, err);
                if (rc)
                        goto out;
        }
out:
        json_decref(data);
        if (rc)
                sw_err_wrap(err, "%s \"%s\"", secret ? "secret" : "configMap", name);
        return rc;
}

/* A map (labels, annotations) as the downward API writes it: key="value" lines, sorted. */
static char *map_lines(const json_t *map)
{
        struct sw_buf b;
        struct sw_err ignored = SW_ERR_INIT;
        const char **keys = sw_xcalloc(json_object_size(map) + 1, sizeof(*keys));
        const char *k;
        const json_t *v;
        size_t n = 0;
        char *out;

        json_object_foreach((json_t *)map, k, v) keys[n++] = k;
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                        const char *t = keys[j];
                        keys[j] = keys[j - 1];
                        keys[j - 1] = t;
                }
        sw_buf_init(&b, 1 << 20);
        for (size_t i = 0; i < n; i++) {
                const char *s = sw_json_str(map, keys[i], "");
                sw_buf_printf(&b, &ignored, "%s=\"", keys[i]);
                for (; *s; s++) {
                        if (*s == '"' || *s == '\\')
                                sw_buf_append(&b, "\\", 1, &ignored);
                        if (*s == '\n')
                                sw_buf_puts(&b, "\\n", &ignored);
                        else
                                sw_buf_append(&b, s, 1, &ignored);
                }
                sw_buf_printf(&b, &ignored, "\"%s", i + 1 < n ? "\n" : "");
        }
        out = sw_xstrdup(sw_buf_str(&b));
        sw_buf_release(&b);
        free(keys);
        return out;
}

/* The value of a downward API fieldRef of the pod; NULL when not supported. */
static char *field_value(struct orch_agent *a, const json_t *obj, const char *f)
{
        const json_t *meta = json_object_get(obj, "metadata");
        const json_t *spec = json_object_get(obj, "spec");

        if (!strcmp(f, "metadata.name") || !strcmp(f, "metadata.namespace") ||
            !strcmp(f, "metadata.uid"))
                return sw_xstrdup(sw_json_str(meta, f + 9, ""));
        if (!strcmp(f, "metadata.labels") || !strcmp(f, "metadata.annotations"))
                return map_lines(json_object_get(meta, f + 9));
        if ((!strncmp(f, "metadata.labels['", 17) || !strncmp(f, "metadata.annotations['", 22)) &&
            strlen(f) > 2 && !strcmp(f + strlen(f) - 2, "']")) {
                const char *open = strchr(f, '[');
                char *k = sw_xstrndup(open + 2, strlen(open + 2) - 2);
                char *which = sw_xstrndup(f + 9, (size_t)(open - f - 9));
                char *v = sw_xstrdup(sw_json_str(json_object_get(meta, which), k, ""));
                free(k);
                free(which);
                return v;
        }
        if (!strcmp(f, "spec.nodeName"))
                return sw_xstrdup(a->node_name);
        if (!strcmp(f, "spec.serviceAccountName"))
                return sw_xstrdup(sw_json_str(spec, "serviceAccountName", "default"));
        return NULL;
}

static int put_downward(struct orch_agent *a, const json_t *obj, const json_t *src, mode_t def_mode,
                        const char *dir, struct sw_err *err)
{
        const json_t *it;
        size_t i;
        int rc;

        rc = spec_mode(&def_mode, src, "defaultMode", def_mode, err);
        json_array_foreach(json_object_get(src, "items"), i, it)
        {
                const char *f = sw_json_str(json_object_get(it, "fieldRef"), "fieldPath", NULL);
                char *v;
                mode_t mode;

                if (rc)
                        break;
                if (!f) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "downwardAPI item \"%s\": only fieldRef is supported",
                                        sw_json_str(it, "path", ""));
                        break;
                }
                v = field_value(a, obj, f);
                if (!v) {
                        rc = sw_err_set(err, SW_EINVAL, "fieldRef \"%s\" is not supported", f);
                        break;
                }
                rc = spec_mode(&mode, it, "mode", def_mode, err);
                if (rc == 0)
                        rc = put_file(dir, sw_json_str(it, "path", ""), v, strlen(v), mode, err);
                free(v);
        }
        if (rc)
                sw_err_wrap(err, "downwardAPI");
        return rc;
}

/* Fill `dir` (new) with the files of a configMap/secret/downwardAPI/projected volume. */
static int fill(struct orch_agent *a, const struct agent_pod *p, const json_t *obj,
                const json_t *vol, const char *dir, struct sw_err *err)
{
        const json_t *src, *s;
        mode_t def_mode = 0644;
        size_t i;
        int rc;

        if ((src = json_object_get(vol, "configMap")))
                return put_data(a, p, src, false, def_mode, dir, err);
        if ((src = json_object_get(vol, "secret")))
                return put_data(a, p, src, true, def_mode, dir, err);
        if ((src = json_object_get(vol, "downwardAPI")))
                return put_downward(a, obj, src, def_mode, dir, err);
        src = json_object_get(vol, "projected");
        rc = spec_mode(&def_mode, src, "defaultMode", def_mode, err);
        json_array_foreach(json_object_get(src, "sources"), i, s)
        {
                const json_t *x;

                if (rc)
                        break;
                if ((x = json_object_get(s, "configMap")))
                        rc = put_data(a, p, x, false, def_mode, dir, err);
                else if ((x = json_object_get(s, "secret")))
                        rc = put_data(a, p, x, true, def_mode, dir, err);
                else if ((x = json_object_get(s, "downwardAPI")))
                        rc = put_downward(a, obj, x, def_mode, dir, err);
                else if ((x = json_object_get(s, "serviceAccountToken")))
                        agent_event(a, p, "Warning", "ServiceAccountTokenSkipped",
                                    "projected volume \"%s\": serviceAccountToken \"%s\" is not "
                                    "supported by this node and was skipped",
                                    sw_json_str(vol, "name", ""), sw_json_str(x, "path", ""));
                else
                        rc = sw_err_set(err, SW_EINVAL,
                                        "projected source %zu: only configMap, secret, "
                                        "downwardAPI and serviceAccountToken are supported",
                                        i);
        }
        return rc;
}

/* Check (and for the *OrCreate types make) a hostPath per its type. */
static int host_path(const json_t *hp, struct sw_err *err)
{
        const char *path = sw_json_str(hp, "path", "");
        const char *type = sw_json_str(hp, "type", "");
        struct stat st;
        bool exists;

        if (path[0] != '/')
                return sw_err_set(err, SW_EINVAL, "hostPath \"%s\" must be an absolute path", path);
        exists = stat(path, &st) == 0;
        if (!exists && !strcmp(type, "DirectoryOrCreate")) {
                int rc = sw_mkdir_p(path, 0755, err);
                if (rc)
                        return rc;
                exists = stat(path, &st) == 0;
        }
        if (!exists && !strcmp(type, "FileOrCreate")) {
                /* Like the kubelet, the parent directory must exist already. */
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0 && errno != EEXIST)
                        return sw_err_errno(err, SW_EINVAL, errno, "hostPath \"%s\": create file",
                                            path);
                if (fd >= 0)
                        close(fd);
                exists = stat(path, &st) == 0;
        }
        if (!exists)
                return sw_err_set(err, SW_ENOTFOUND, "hostPath \"%s\" does not exist", path);
        if (!*type)
                return 0;
        if (!strcmp(type, "Directory") || !strcmp(type, "DirectoryOrCreate"))
                return S_ISDIR(st.st_mode) ? 0
                                           : sw_err_set(err, SW_EINVAL,
                                                        "hostPath \"%s\" is not a directory", path);
        if (!strcmp(type, "File") || !strcmp(type, "FileOrCreate"))
                return S_ISREG(st.st_mode)
                               ? 0
                               : sw_err_set(err, SW_EINVAL, "hostPath \"%s\" is not a file", path);
        if (!strcmp(type, "Socket"))
                return S_ISSOCK(st.st_mode) ? 0
                                            : sw_err_set(err, SW_EINVAL,
                                                         "hostPath \"%s\" is not a socket", path);
        if (!strcmp(type, "CharDevice"))
                return S_ISCHR(st.st_mode)
                               ? 0
                               : sw_err_set(err, SW_EINVAL,
                                            "hostPath \"%s\" is not a character device", path);
        if (!strcmp(type, "BlockDevice"))
                return S_ISBLK(st.st_mode)
                               ? 0
                               : sw_err_set(err, SW_EINVAL, "hostPath \"%s\" is not a block device",
                                            path);
        return sw_err_set(err, SW_EINVAL, "hostPath \"%s\": unknown type \"%s\"", path, type);
}

int agent_volume_prepare(char **path_out, bool *ro_out, struct orch_agent *a,
                         const struct agent_pod *p, const json_t *obj, const json_t *vol,
                         struct sw_err *err)
{
        const char *name = sw_json_str(vol, "name", "");
        char *dir = NULL, *tmp = NULL;
        struct stat st;
        int rc = 0;

        if (json_object_get(vol, "hostPath")) {
                rc = host_path(json_object_get(vol, "hostPath"), err);
                if (rc)
                        goto out;
                *path_out = sw_xstrdup(sw_json_str(json_object_get(vol, "hostPath"), "path", ""));
                *ro_out = false;
                goto out;
        }
        dir = sw_xasprintf("%s/volumes/%s", p->dir, name);
        if (json_object_get(vol, "emptyDir")) {
                rc = sw_mkdir_p(dir, 0777, err);
                if (rc)
                        goto out;
                *ro_out = false;
                goto done;
        }
        if (!json_object_get(vol, "configMap") && !json_object_get(vol, "secret") &&
            !json_object_get(vol, "downwardAPI") && !json_object_get(vol, "projected")) {
                rc = sw_err_set(err, SW_EINVAL,
                                "only emptyDir, configMap, secret, downwardAPI, projected and "
                                "hostPath volumes are supported");
                goto out;
        }
        *ro_out = true;
        /* Written once per pod: a second container may have it mounted already. */
        if (stat(dir, &st) == 0)
                goto done;
        tmp = sw_xasprintf("%s.tmp", dir);
        {
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(tmp, &ignored);
        }
        rc = sw_mkdir_p(tmp, 0755, err);
        if (rc == 0)
                rc = fill(a, p, obj, vol, tmp, err);
        if (rc == 0 && rename(tmp, dir) != 0)
                rc = sw_err_errno(err, SW_EIO, errno, "rename \"%s\"", tmp);
        if (rc) {
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(tmp, &ignored);
                goto out;
        }
done:
        *path_out = dir;
        dir = NULL;
out:
        if (rc)
                sw_err_wrap(err, "volume \"%s\"", name);
        free(dir);
        free(tmp);
        return rc;
}
