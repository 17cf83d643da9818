/*
 * orch_int.h - shared inside orchestrator/ (and by its unit tests) only.
 *
 * The API server is layered: store.c keeps objects and the event log in
 * SQLite and knows only metadata (uid, resourceVersion, generation,
 * deletion); selector.c, patch.c and apply.c are pure functions on jansson
 * values; types.c describes the kinds served (discovery, OpenAPI, defaults,
 * validation); table.c renders them as meta.k8s.io Tables; api.c is the
 * HTTP face that ties them together.
 *
 * Ownership: functions returning json_t ** give the caller a new reference.
 * json_t parameters are borrowed and never modified unless documented.
 * Threads: the store is safe from any thread (it owns a mutex); everything
 * else here is reentrant.
 */
#ifndef SW_ORCH_INT_H
#define SW_ORCH_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- store.c ------------------------------------------------------------ */

struct orch_store;

struct orch_store_options {
        const char *path;     /* the SQLite file, created when absent */
        int64_t event_window; /* watch events kept in memory; 0 means 4096 */
};
#define ORCH_STORE_OPTIONS_INIT                                                                    \
        {                                                                                          \
                NULL, 0                                                                            \
        }

/* Open (and migrate) the store. The caller frees it with orch_store_free(). */
int orch_store_open(struct orch_store **out, const struct orch_store_options *opts,
                    struct sw_err *err);
void orch_store_free(struct orch_store *s);

/* The last revision written (the resourceVersion of lists and bookmarks). */
int64_t orch_store_revision(struct orch_store *s);

/* Write flags. */
#define ORCH_STORE_GENERATION 1u /* keep metadata.generation, bumped when spec changes */
#define ORCH_STORE_IN_PLACE 2u   /* create: `obj` itself becomes the stored object, no copy */

/*
 * One object by key; `ns` is "" for cluster-scoped resources. `resource` is
 * the store key ("pods", "deployments.apps"). SW_ENOTFOUND when absent.
 */
int orch_store_get(json_t **out, struct orch_store *s, const char *resource, const char *ns,
                   const char *name, struct sw_err *err);

/*
 * The object a write hands back in *out (create, update, mutate, delete) is
 * the one its event in the log holds, which in-process watchers share: read
 * it, never change it. (The in-process transport gives its callers a copy.)
 */

/*
 * Create `obj` (metadata.name set; metadata.namespace set for namespaced
 * objects). The store assigns uid, creationTimestamp, resourceVersion and
 * generation, and drops deletionTimestamp. SW_EEXIST when the key is taken.
 * With ORCH_STORE_IN_PLACE that is done to `obj` itself, which is then the
 * stored object (*out, shared: read only) instead of a copy.
 */
int orch_store_create(json_t **out, struct orch_store *s, const char *resource, const json_t *obj,
                      unsigned flags, struct sw_err *err);

/*
 * Replace an object. When metadata.resourceVersion is non-empty it must be
 * the current one (SW_ECONFLICT otherwise). uid, creationTimestamp and
 * deletionTimestamp are kept from the stored object. An update that changes
 * nothing writes nothing and returns the stored object. An object being
 * deleted whose finalizers become empty is removed (*out is then the last
 * state and *gone_out true; gone_out may be NULL).
 */
int orch_store_update(json_t **out, bool *gone_out, struct orch_store *s, const char *resource,
                      const json_t *obj, unsigned flags, struct sw_err *err);
/*
 * Read, change and write one object in one transaction: `fn` changes the
 * stored object in place, or fails (its error is returned, nothing is
 * written). *out (may be NULL) gets the object as written. `fn` may set
 * and remove the keys of the object's top-level members (spec.nodeName)
 * but change nothing deeper, which it may share with the log's copy; it
 * may run more than once (again when the object changed since it was
 * read).
 */
int orch_store_mutate(json_t **out, struct orch_store *s, const char *resource, const char *ns,
                      const char *name, int (*fn)(json_t *obj, void *arg, struct sw_err *err),
                      void *arg, struct sw_err *err);

/*
 * Delete an object: with finalizers it only gets a deletionTimestamp
 * (*gone_out false), otherwise it is removed (*gone_out true). `uid` and
 * `rv`, when non-NULL, are preconditions (SW_ECONFLICT when they differ).
 */
int orch_store_delete(json_t **out, bool *gone_out, struct orch_store *s, const char *resource,
                      const char *ns, const char *name, const char *uid, const char *rv,
                      struct sw_err *err);

/*
 * Graceful deletion (pods on a node): with `grace_s` > 0 the object gets
 * deletionTimestamp = now + grace and deletionGracePeriodSeconds and stays
 * (its node agent confirms with grace 0); a shorter grace shortens a
 * pending one. Updates of such an object do not remove it until a delete
 * with grace 0.
 */
int orch_store_delete_graceful(json_t **out, bool *gone_out, struct orch_store *s,
                               const char *resource, const char *ns, const char *name,
                               const char *uid, const char *rv, int64_t grace_s,
                               struct sw_err *err);

struct orch_list_query {
        const char *ns;         /* NULL: every namespace */
        const char *after_ns;   /* resume after this key (continue); NULL: from the start */
        const char *after_name; /* with after_ns */
        int64_t limit;          /* 0: no limit */
        bool (*match)(const json_t *obj, void *arg); /* NULL: every object */
        void *arg;
};

/*
 * Objects of `resource` ordered by (namespace, name). *more_out tells that
 * objects past `limit` remain. *rev_out is the revision the list reflects.
 */
int orch_store_list(json_t **items_out, int64_t *rev_out, bool *more_out, struct orch_store *s,
                    const char *resource, const struct orch_list_query *q, struct sw_err *err);

/*
 * Events after revision `after` for `resource` (NULL: all), at most `max`,
 * as an array of {"rev":N,"type":"ADDED","resource":"pods","object":{...}}.
 * SW_ENOTFOUND ("too old resource version") when the log no longer reaches
 * back to `after` (the caller answers 410 Gone).
 */
int orch_store_events(json_t **out, struct orch_store *s, const char *resource, int64_t after,
                      int max, struct sw_err *err);

/*
 * One event of the store's log. The log and every watcher that copied it
 * out share it (orch_store_events_raw hands out references); nothing in it
 * changes once published but the parsed forms, made on first use.
 */
struct orch_event {
        int64_t rev;
        char type[12];   /* ADDED, MODIFIED, DELETED */
        char *resource;  /* "pods" */
        char *ns;        /* the object's namespace ("" for cluster-scoped) */
        char *name;      /* the object's name */
        char *body;      /* the object's JSON */
        char *prev;      /* the object before a MODIFIED; else NULL */
        atomic_int refs; /* the log's and the watchers' */
        size_t bytes;    /* what the texts take */
        /*
         * body and prev parsed, shared (read only); guarded by the store,
         * which drops them STORE_JSON_KEEP revisions on unless the event
         * is still its object's newest
         */
        json_t *obj_json;
        json_t *prev_json;
        /* The newest event of its object is in the store's index by key (guarded by the store). */
        struct orch_event *key_next;
        bool indexed;
        /* Staged, the newest write of its object not yet committed (guarded by the store). */
        struct orch_event *pend_next;
        bool pending;
};

/*
 * The latest events, from the store's in-memory log: references to up to
 * `max` events of `resource` (NULL: all) after `after`, in *out (an array
 * the caller frees with orch_events_free()). SW_ENOTFOUND ("too old
 * resource version") when the log no longer reaches back to `after`.
 * *scanned_out is the revision up to which the log was examined: no event
 * of `resource` lies in (after, *scanned_out] beyond those returned, so a
 * watcher may resume from there even when none matched.
 */
int orch_store_events_raw(struct orch_event ***out, size_t *n_out, int64_t *scanned_out,
                          struct orch_store *s, const char *resource, int64_t after, int max,
                          struct sw_err *err);
void orch_events_free(struct orch_event **evs, size_t n);
/*
 * The event's object (or, with `prev`, the object before it) parsed: a new
 * reference to a tree shared by every in-process watcher of the latest
 * revisions, which none may change; NULL when there is none.
 */
json_t *orch_event_json(struct orch_store *s, struct orch_event *ev, bool prev);
/*
 * A watcher in this process of `resource` starts (+1) or ends (-1): while
 * one runs, the events of its kind keep the written objects for it to
 * share, instead of its parsing their texts.
 */
void orch_store_local_watch(struct orch_store *s, const char *resource, int delta);

/*
 * Block until the revision passes `after` or `timeout_ms` passes; returns the
 * current revision. orch_store_wake() releases every waiter (shutdown).
 */
int64_t orch_store_wait(struct orch_store *s, int64_t after, int64_t timeout_ms);
/* The same, for a write of `resource` (or of a resource sharing its wake-up word). */
int64_t orch_store_wait_kind(struct orch_store *s, const char *resource, int64_t after,
                             int64_t timeout_ms);
void orch_store_wake(struct orch_store *s);

/*
 * Hold the group commit open across this thread's next writes, so that
 * many of them (and other threads' writes) commit together: a held write
 * returns once it is staged, before its group commits, and no watcher
 * sees it until then. orch_store_release() ends the hold, commits what is
 * still open when no other writer is on its way, and waits until every
 * held write is committed; it fails (SW_EIO) when some group among them
 * failed, in which case any of the held writes may be lost. A thread holds
 * one store at a time; a hold inside a hold is part of it. A held thread
 * must not wait for another thread's write.
 */
void orch_store_hold(struct orch_store *s);
int orch_store_release(struct orch_store *s, struct sw_err *err);

/*
 * Every object whose metadata.ownerReferences names `uid`, as an array of
 * {"resource":…, "object":{…}}.
 */
int orch_store_dependents(json_t **out, struct orch_store *s, const char *uid, struct sw_err *err);

/* RFC 3339 UTC time with second precision ("2026-11-26T23:25:36Z"); `out` >= 32 bytes. */
void orch_time_fmt(char *out, size_t size, int64_t epoch_ms);
/* Parse that form back (a fraction of a second counts to the ms); -1 when it does not parse. */
int64_t orch_time_parse(const char *s);

/* ---- selector.c --------------------------------------------------------- */

struct orch_selector;

/* Label selector text: "a=b,c!=d,e in (x,y),f notin (z),g,!h,n>3". Empty matches all. */
int orch_labelsel_parse(struct orch_selector **out, const char *text, struct sw_err *err);
/*
 * A metav1.LabelSelector object (matchLabels, matchExpressions). A NULL or
 * empty selector matches everything.
 */
int orch_labelsel_from_json(struct orch_selector **out, const json_t *sel, struct sw_err *err);
/* `labels` is an object of strings (NULL: no labels). */
bool orch_labelsel_match(const struct orch_selector *sel, const json_t *labels);
/* The canonical text form of a metav1.LabelSelector ("app=web,tier in (a,b)"); caller frees. */
char *orch_labelsel_string(const json_t *sel);

/* Field selector "metadata.name=x,status.phase!=Running"; fields not in `allowed` are refused. */
int orch_fieldsel_parse(struct orch_selector **out, const char *text, const char *const *allowed,
                        struct sw_err *err);
bool orch_fieldsel_match(const struct orch_selector *sel, const json_t *obj);
void orch_selector_free(struct orch_selector *sel);

/* Validate a label map (keys: optional DNS prefix "/" name; values <= 63 chars). */
int orch_labels_valid(const json_t *labels, const char *field, struct sw_err *err);
/* Annotation keys (same key rules); the total size is capped at 256 KiB. */
int orch_annotations_valid(const json_t *ann, const char *field, struct sw_err *err);

/* ---- patch.c ------------------------------------------------------------ */

/*
 * The strategic-merge schema of a type: which fields are lists merged by a
 * key (containers by name, ports by containerPort), merged primitive lists
 * (finalizers), maps with retainKeys, and the types of nested fields.
 */
struct orch_smp_field {
        const char *name;
        const char *merge_key;            /* list of objects merged by this key; NULL otherwise */
        unsigned flags;                   /* ORCH_SMP_* */
        const struct orch_smp_type *type; /* of the field (of its elements for lists) */
};
#define ORCH_SMP_MERGE 1u       /* patchStrategy merge (with merge_key, or a primitive set) */
#define ORCH_SMP_RETAIN_KEYS 2u /* patchStrategy retainKeys */
struct orch_smp_type {
        const struct orch_smp_field *fields; /* terminated by a NULL name */
};

extern const struct orch_smp_type orch_smp_pod, orch_smp_deployment, orch_smp_replicaset,
        orch_smp_service, orch_smp_node, orch_smp_namespace, orch_smp_job, orch_smp_cronjob,
        orch_smp_generic;

/* RFC 7386 JSON merge patch. */
int orch_merge_patch(json_t **out, const json_t *target, const json_t *patch, struct sw_err *err);
/* RFC 6902 JSON patch (add, remove, replace, move, copy, test). SW_ECONFLICT when a test fails. */
int orch_json_patch(json_t **out, const json_t *target, const json_t *ops, struct sw_err *err);
/*
 * Strategic merge patch of `orig` by `patch` for type `t` (NULL: plain
 * maps and atomic lists). Directives: $patch (replace, delete, merge),
 * $setElementOrder/<list>, $retainKeys, $deleteFromPrimitiveList/<list>.
 */
int orch_smp_apply(json_t **out, const json_t *orig, const json_t *patch,
                   const struct orch_smp_type *t, struct sw_err *err);
/* The schema of field `name` in `t` (NULL when plain). */
const struct orch_smp_field *orch_smp_field(const struct orch_smp_type *t, const char *name);

/* ---- apply.c (server-side apply) ---------------------------------------- */

/*
 * Server-side apply of `applied` by `manager` onto `live` (NULL: create).
 * Fields the configuration sets that another manager owns with a different
 * value are conflicts: SW_ECONFLICT naming them unless `force`, which takes
 * them over. Fields the manager applied before and no longer sets, and that
 * nobody else owns, are removed. metadata.managedFields is updated in *out.
 */
int orch_ssa_apply(json_t **out, const json_t *live, const json_t *applied, const char *manager,
                   bool force, const struct orch_smp_type *t, const char *api_version,
                   struct sw_err *err);

/*
 * Record a non-apply write (create, update, patch) by `manager` in
 * `obj`'s managedFields: it owns the fields whose values it changed, which
 * other managers lose. `old` is NULL for a create.
 */
void orch_ssa_record_update(json_t *obj, const json_t *old, const char *manager,
                            const char *subresource, const struct orch_smp_type *t,
                            const char *api_version);

/* The fieldsV1 set of `obj` (ownership tree "f:spec":{"f:replicas":{}}); a new reference. */
json_t *orch_ssa_fieldset(const json_t *obj, const struct orch_smp_type *t);

/* ---- types.c ------------------------------------------------------------ */

#define ORCH_SUB_STATUS 1u
#define ORCH_SUB_SCALE 2u
#define ORCH_SUB_BINDING 4u

struct orch_kind {
        const char *group;    /* "" for the core group */
        const char *version;  /* "v1" */
        const char *resource; /* "deployments" */
        const char *singular; /* "deployment" */
        const char *kind;     /* "Deployment" */
        const char *store;    /* store key: "deployments.apps", "pods" */
        bool namespaced;
        const char *short_names; /* comma-separated, "" for none */
        bool all;                /* in the "all" category */
        unsigned subresources;   /* ORCH_SUB_* */
        bool generation;         /* tracks metadata.generation */
        const struct orch_smp_type *smp;
};

/* Every kind served, and its count. */
const struct orch_kind *orch_kinds(size_t *n_out);
/* By group ("" core), version and plural resource name; NULL when not served. */
const struct orch_kind *orch_kind_find(const char *group, const char *version,
                                       const char *resource);
/* By kind name ("Deployment") and apiVersion ("apps/v1"). */
const struct orch_kind *orch_kind_by_kind(const char *api_version, const char *kind);
/* "apps/v1" or "v1" into `out`. */
void orch_kind_api_version(const struct orch_kind *k, char *out, size_t size);

/* Discovery documents; new references. */
json_t *orch_discovery_versions(void);
json_t *orch_discovery_groups(void);
/* NULL when the group version is not served. */
json_t *orch_discovery_resources(const char *group, const char *version);
json_t *orch_openapi_root(void);
json_t *orch_openapi_group_version(const char *group, const char *version);

/*
 * A pod's QoS class, as Kubernetes reckons it from cpu and memory (zero
 * counts as unset): BestEffort without any request or limit, Guaranteed
 * when every container has both limits and requests equal to them (a
 * request defaults to its limit), else Burstable.
 */
const char *orch_pod_qos(const json_t *spec);

/*
 * `n` (<= 16) random characters of a generated name's suffix, from the
 * alphabet Kubernetes draws them from, into `out` (n + 1 bytes).
 */
void orch_name_suffix(char *out, size_t n);

/*
 * Defaults, normalisation and validation before a write. `old` is the
 * stored object for an update (NULL for a create): immutable fields are
 * checked against it. Returns SW_EINVAL with a message
 * "<field>: <reason>" for 422 Invalid.
 */
int orch_object_admit(json_t *obj, const json_t *old, const struct orch_kind *k,
                      struct sw_err *err);

/*
 * Fields of `obj` that its kind does not have, at every level of the
 * structures described (metadata with owner references; the specs of every
 * served kind with a spec, down through pod templates, containers, probes,
 * env sources, resources, volumes, security contexts, selectors,
 * strategies, Job templates and Ingress rules; maps such as labels and
 * resource lists are not walked). Without `prune` they are refused:
 * SW_EINVAL with all of them listed, `unknown field "spec.foo", unknown
 * field "spec.bar"` (fieldValidation=Strict). With `prune` they are
 * removed, as the real server drops them when decoding, and 0 is returned
 * with the same list in `err` when there was one (for fieldValidation=Warn).
 */
int orch_object_strict(json_t *obj, const struct orch_kind *k, bool prune, struct sw_err *err);

/* ---- admission.c -------------------------------------------------------- */

/*
 * Admission of a create (`old` NULL) of `obj` in the store's `resource`:
 * The default not-ready/unreachable NoExecute tolerations (`toleration_s`
 * seconds; negative adds none) and LimitRange defaults (written into `obj`)
 * and bounds for pods, then ResourceQuota limits; `have` (ORCH_HAVE_*)
 * says which of those kinds exist at all, the others are not looked up.
 * SW_EPERM with the Forbidden message when refused.
 */
#define ORCH_HAVE_QUOTAS 1u /* some ResourceQuota exists */
#define ORCH_HAVE_LIMITS 2u /* some LimitRange exists */
int orch_admission_check(struct orch_store *s, const char *resource, json_t *obj, const json_t *old,
                         int64_t toleration_s, unsigned have, struct sw_err *err);
/* Whether `ns` has a ResourceQuota (true also when that cannot be read). */
bool orch_quota_any(struct orch_store *s, const char *ns);
/* Recompute status.hard/used of every ResourceQuota in `ns` (no-op without quotas). */
int orch_quota_refresh(struct orch_store *s, const char *ns, struct sw_err *err);

/* ---- yaml.c ------------------------------------------------------------- */

/*
 * One YAML document as JSON (YAML 1.2 core schema for plain scalars).
 * SW_EINVAL naming the line for malformed input, duplicate keys, aliases or
 * several documents; SW_ETOOBIG past 64 levels of nesting.
 */
int orch_yaml_to_json(json_t **out, const char *text, size_t len, struct sw_err *err);

/* ---- proto.c ------------------------------------------------------------ */

/*
 * Decode a Kubernetes protobuf request body ("k8s\0" + runtime.Unknown) of
 * `kind` into its JSON form. SW_EPROTO for kinds whose messages are not
 * described (the caller answers 415), SW_EINVAL for malformed input.
 */
int orch_proto_decode(json_t **out, const void *body, size_t len, const char *kind,
                      struct sw_err *err);

/* ---- table.c ------------------------------------------------------------ */

/* The columnDefinitions of the kind's Table (a new reference). */
json_t *orch_table_columns(const struct orch_kind *k);
/* One row {"cells":[…],"object":…}; `full` includes the whole object instead of its metadata. */
json_t *orch_table_row(const struct orch_kind *k, const json_t *obj, int64_t now_ms, bool full);
/* kubectl's HumanDuration ("5m", "3h2m", "2d") into `out` (>= 16 bytes). */
void orch_human_duration(char *out, size_t size, int64_t ms);

/* ---- cron.c ------------------------------------------------------------- */

/* A parsed standard cron schedule: one bit per allowed value of each field. */
struct orch_cron {
        uint64_t minutes;              /* bits 0..59 */
        uint32_t hours;                /* bits 0..23 */
        uint32_t days;                 /* bits 1..31 (day of month) */
        uint32_t months;               /* bits 1..12 */
        uint32_t weekdays;             /* bits 0..6, Sunday = 0 */
        bool days_star, weekdays_star; /* "*" or "?": the other day field decides alone */
};

/*
 * Parse five fields (minute hour day-of-month month day-of-week) with
 * lists, ranges, steps and month/day names, or one of @yearly @annually
 * @monthly @weekly @daily @midnight @hourly. SW_EINVAL naming the bad part.
 */
int orch_cron_parse(struct orch_cron *out, const char *spec, struct sw_err *err);

/* A time zone from the TZif database: UTC offsets by transition. */
struct orch_tz;
/*
 * Load the zone `name` ("Europe/Berlin"; NULL, "" and "UTC" mean UTC) from
 * /usr/share/zoneinfo. SW_EINVAL "unknown time zone" otherwise. Transitions
 * past the file's last one keep its offset (fat TZif files reach 2037).
 */
int orch_tz_load(struct orch_tz **out, const char *name, struct sw_err *err);
void orch_tz_free(struct orch_tz *tz);
/* Offset from UTC in seconds at `epoch_s`; `tz` NULL is UTC. */
int32_t orch_tz_offset(const struct orch_tz *tz, int64_t epoch_s);

/*
 * The first minute strictly after `after_ms` (epoch ms) that `c` matches in
 * the wall clock of `tz` (NULL: UTC), as epoch ms; -1 when none comes
 * within about five years (an impossible date such as 30 February).
 */
int64_t orch_cron_next(const struct orch_cron *c, const struct orch_tz *tz, int64_t after_ms);

#endif /* SW_ORCH_INT_H */
