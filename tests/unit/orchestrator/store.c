/*
 * store.c - the object store: metadata the store owns (uid,
 * resourceVersion, generation, timestamps), optimistic concurrency,
 * finalizers, ordered paged lists, the event log and its compaction, and
 * group commit under concurrent writers.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "tests/harness/t.h"

static struct orch_store *open_store(const char *name, int64_t window)
{
        struct orch_store_options o = ORCH_STORE_OPTIONS_INIT;
        struct orch_store *s = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/%s.db", t_tmpdir(), name);

        o.path = path;
        o.event_window = window;
        CHECK_OK(orch_store_open(&s, &o, &err), &err);
        free(path);
        return s;
}

static json_t *cm(const char *ns, const char *name, const char *val)
{
        return json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                         "metadata", "name", name, "namespace", ns, "data", "k", val);
}

static const char *meta_str(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(json_object_get(o, "metadata"), key));
}

static void test_create_get(void)
{
        struct orch_store *s = open_store("cg", 0);
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "a", "1"), *out = NULL, *got = NULL, *dup = NULL;
        int64_t before = orch_store_revision(s);

        CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
        CHECK_INT(strlen(meta_str(out, "uid")), 36);
        CHECK(meta_str(out, "creationTimestamp") != NULL);
        CHECK_INT(strtoll(meta_str(out, "resourceVersion"), NULL, 10), before + 1);
        CHECK_INT(orch_store_revision(s), before + 1);
        CHECK_OK(orch_store_get(&got, s, "configmaps", "ns", "a", &err), &err);
        CHECK(json_equal(out, got));
        CHECK_INT(orch_store_create(&dup, s, "configmaps", in, 0, &err), SW_EEXIST);
        sw_err_clear(&err);
        CHECK_INT(orch_store_get(&dup, s, "configmaps", "ns", "zz", &err), SW_ENOTFOUND);
        json_decref(in);
        json_decref(out);
        json_decref(got);
        orch_store_free(s);
}

static void test_update_conflict_and_noop(void)
{
        struct orch_store *s = open_store("upd", 0);
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "a", "1"), *v1 = NULL, *v2 = NULL, *v3 = NULL, *stale;
        int64_t rev;

        CHECK_OK(orch_store_create(&v1, s, "configmaps", in, 0, &err), &err);
        json_object_set_new(json_object_get(v1, "data"), "k", json_string("2"));
        CHECK_OK(orch_store_update(&v2, NULL, s, "configmaps", v1, 0, &err), &err);
        CHECK(strcmp(meta_str(v1, "resourceVersion"), meta_str(v2, "resourceVersion")) != 0);
        CHECK_STR(meta_str(v1, "uid"), meta_str(v2, "uid"));
        /* v1 names a stale resourceVersion now. */
        stale = json_deep_copy(v1);
        CHECK_INT(orch_store_update(&v3, NULL, s, "configmaps", stale, 0, &err), SW_ECONFLICT);
        CHECK(strstr(err.msg, "the object has been modified"));
        sw_err_clear(&err);
        /* Writing the same content again writes nothing. */
        rev = orch_store_revision(s);
        CHECK_OK(orch_store_update(&v3, NULL, s, "configmaps", v2, 0, &err), &err);
        CHECK_INT(orch_store_revision(s), rev);
        CHECK_STR(meta_str(v3, "resourceVersion"), meta_str(v2, "resourceVersion"));
        json_decref(in);
        json_decref(v1);
        json_decref(v2);
        json_decref(v3);
        json_decref(stale);
        orch_store_free(s);
}

static void test_generation(void)
{
        struct orch_store *s = open_store("gen", 0);
        struct sw_err err = SW_ERR_INIT;
        json_t *d = json_pack("{s:{s:s,s:s},s:{s:i}}", "metadata", "name", "d", "namespace", "ns",
                              "spec", "replicas", 1);
        json_t *a = NULL, *b = NULL, *c = NULL;

        CHECK_OK(orch_store_create(&a, s, "deployments.apps", d, ORCH_STORE_GENERATION, &err),
                 &err);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(a, "metadata"), "generation")),
                  1);
        /* A label change keeps the generation; a spec change bumps it. */
        json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "x", "y"));
        CHECK_OK(orch_store_update(&b, NULL, s, "deployments.apps", a, ORCH_STORE_GENERATION, &err),
                 &err);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(b, "metadata"), "generation")),
                  1);
        json_object_set_new(json_object_get(b, "spec"), "replicas", json_integer(3));
        CHECK_OK(orch_store_update(&c, NULL, s, "deployments.apps", b, ORCH_STORE_GENERATION, &err),
                 &err);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(c, "metadata"), "generation")),
                  2);
        json_decref(d);
        json_decref(a);
        json_decref(b);
        json_decref(c);
        orch_store_free(s);
}

static void test_finalizers(void)
{
        struct orch_store *s = open_store("fin", 0);
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "f", "1"), *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        bool gone = true;

        json_object_set_new(json_object_get(in, "metadata"), "finalizers",
                            json_pack("[s]", "example.com/hold"));
        CHECK_OK(orch_store_create(&a, s, "configmaps", in, 0, &err), &err);
        CHECK_OK(orch_store_delete(&b, &gone, s, "configmaps", "ns", "f", NULL, NULL, &err), &err);
        CHECK(!gone);
        CHECK(meta_str(b, "deletionTimestamp") != NULL);
        /* Removing the last finalizer completes the deletion. */
        json_object_del(json_object_get(b, "metadata"), "finalizers");
        CHECK_OK(orch_store_update(&c, &gone, s, "configmaps", b, 0, &err), &err);
        CHECK(gone);
        CHECK_INT(orch_store_get(&d, s, "configmaps", "ns", "f", &err), SW_ENOTFOUND);
        json_decref(in);
        json_decref(a);
        json_decref(b);
        json_decref(c);
        orch_store_free(s);
}

static void test_delete_preconditions(void)
{
        struct orch_store *s = open_store("pre", 0);
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "p", "1"), *a = NULL, *b = NULL;
        bool gone = false;

        CHECK_OK(orch_store_create(&a, s, "configmaps", in, 0, &err), &err);
        CHECK_INT(
                orch_store_delete(&b, &gone, s, "configmaps", "ns", "p", "not-the-uid", NULL, &err),
                SW_ECONFLICT);
        sw_err_clear(&err);
        CHECK_OK(orch_store_delete(&b, &gone, s, "configmaps", "ns", "p", meta_str(a, "uid"), NULL,
                                   &err),
                 &err);
        CHECK(gone);
        json_decref(in);
        json_decref(a);
        json_decref(b);
        orch_store_free(s);
}

static bool only_even(const json_t *obj, void *arg)
{
        const char *v = json_string_value(json_object_get(json_object_get(obj, "data"), "k"));

        (void)arg;
        return v && (v[0] - '0') % 2 == 0;
}

static void test_list_paging(void)
{
        struct orch_store *s = open_store("list", 0);
        struct sw_err err = SW_ERR_INIT;
        struct orch_list_query q = {0};
        json_t *items = NULL;
        int64_t rev;
        bool more;
        char name[8], val[4];

        for (int i = 0; i < 7; i++) {
                json_t *o = NULL, *in;
                snprintf(name, sizeof(name), "c%d", i);
                snprintf(val, sizeof(val), "%d", i);
                in = cm(i < 5 ? "a" : "b", name, val);
                CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
                json_decref(in);
                json_decref(o);
        }
        q.limit = 3;
        CHECK_OK(orch_store_list(&items, &rev, &more, s, "configmaps", &q, &err), &err);
        CHECK_INT(json_array_size(items), 3);
        CHECK(more);
        CHECK_INT(rev, orch_store_revision(s));
        CHECK_STR(json_string_value(json_object_get(
                          json_object_get(json_array_get(items, 2), "metadata"), "name")),
                  "c2");
        json_decref(items);
        q.after_ns = "a";
        q.after_name = "c2";
        q.limit = 10;
        CHECK_OK(orch_store_list(&items, &rev, &more, s, "configmaps", &q, &err), &err);
        CHECK_INT(json_array_size(items), 4);
        CHECK(!more);
        json_decref(items);
        memset(&q, 0, sizeof(q));
        q.ns = "b";
        CHECK_OK(orch_store_list(&items, &rev, &more, s, "configmaps", &q, &err), &err);
        CHECK_INT(json_array_size(items), 2);
        json_decref(items);
        memset(&q, 0, sizeof(q));
        q.match = only_even;
        CHECK_OK(orch_store_list(&items, &rev, &more, s, "configmaps", &q, &err), &err);
        CHECK_INT(json_array_size(items), 4);
        json_decref(items);
        orch_store_free(s);
}

/* Update configmap `o` `times` times (data.k = 0, 1, ...); returns the last version. */
static json_t *rewrite(struct orch_store *s, json_t *o, int times)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *next = NULL;

        for (int i = 0; i < times; i++) {
                json_object_set_new(json_object_get(o, "data"), "k", json_integer(i));
                CHECK_OK(orch_store_update(&next, NULL, s, "configmaps", o, 0, &err), &err);
                json_decref(o);
                o = next;
        }
        return o;
}

static void test_events_and_compaction(void)
{
        struct orch_store *s = open_store("ev", 64);
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "e", "0"), *o = NULL, *ev = NULL, *next = NULL;
        int64_t start = orch_store_revision(s);
        bool gone;

        CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
        for (int i = 1; i <= 3; i++) {
                json_object_set_new(json_object_get(o, "data"), "k", json_integer(i));
                CHECK_OK(orch_store_update(&next, NULL, s, "configmaps", o, 0, &err), &err);
                json_decref(o);
                o = next;
        }
        CHECK_OK(orch_store_delete(&next, &gone, s, "configmaps", "ns", "e", NULL, NULL, &err),
                 &err);
        json_decref(next);
        CHECK_OK(orch_store_events(&ev, s, "configmaps", start, 100, &err), &err);
        CHECK_INT(json_array_size(ev), 5);
        CHECK_STR(json_string_value(json_object_get(json_array_get(ev, 0), "type")), "ADDED");
        CHECK_STR(json_string_value(json_object_get(json_array_get(ev, 1), "type")), "MODIFIED");
        CHECK_STR(json_string_value(json_object_get(json_array_get(ev, 4), "type")), "DELETED");
        json_decref(ev);
        CHECK_OK(orch_store_events(&ev, s, "pods", start, 100, &err), &err);
        CHECK_INT(json_array_size(ev), 0);
        json_decref(ev);
        /* Past the window of 64 revisions the old start is gone. */
        json_decref(in);
        in = cm("ns", "many", "0");
        CHECK_OK(orch_store_create(&next, s, "configmaps", in, 0, &err), &err);
        json_decref(o);
        o = next;
        o = rewrite(s, o, 200);
        CHECK_INT(orch_store_events(&ev, s, "configmaps", start, 100, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "too old resource version"));
        sw_err_clear(&err);
        CHECK_OK(orch_store_events(&ev, s, "configmaps", orch_store_revision(s) - 10, 100, &err),
                 &err);
        CHECK_INT(json_array_size(ev), 10);
        json_decref(ev);
        CHECK_INT(orch_store_wait(s, orch_store_revision(s), 50), orch_store_revision(s));
        json_decref(o);
        json_decref(in);
        orch_store_free(s);
}

/*
 * The log turning over on one busy kind sends no watcher of a quiet kind
 * to list again: a revision before the log's oldest event is gone only for
 * kinds whose events the log has dropped since.
 */
static void test_quiet_kind_not_too_old(void)
{
        struct orch_store *s = open_store("quiet", 16);
        struct sw_err err = SW_ERR_INIT;
        struct orch_event **evs = NULL;
        json_t *in, *o = NULL;
        int64_t start, scanned = 0;
        size_t n = 0;

        in = cm("ns", "quiet", "0");
        CHECK_OK(orch_store_create(&o, s, "secrets", in, 0, &err), &err);
        json_decref(o);
        json_decref(in);
        start = orch_store_revision(s);
        in = cm("ns", "busy", "0");
        CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
        o = rewrite(s, o, 100); /* six times the window of 16 */
        json_decref(o);
        json_decref(in);
        /* The secrets' watcher from before the burst misses nothing: served, not sent away. */
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "secrets", start, 8, &err), &err);
        CHECK_INT(n, 0);
        CHECK_INT(scanned, orch_store_revision(s));
        orch_events_free(evs, n);
        /* One from before the secret was written has lost it: too old. */
        CHECK_INT(orch_store_events_raw(&evs, &n, &scanned, s, "secrets", start - 1, 8, &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        /* So has the configmaps' watcher, and one of every kind. */
        CHECK_INT(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 8, &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(orch_store_events_raw(&evs, &n, &scanned, s, NULL, start, 8, &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        /* A secret written now reaches the old watcher. */
        in = cm("ns", "quiet2", "0");
        CHECK_OK(orch_store_create(&o, s, "secrets", in, 0, &err), &err);
        json_decref(o);
        json_decref(in);
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "secrets", start, 8, &err), &err);
        CHECK_INT(n, 1);
        CHECK_STR(evs[0]->name, "quiet2");
        orch_events_free(evs, n);
        orch_store_free(s);
}

/*
 * A watcher of one kind is told how far the log was scanned even when only
 * other kinds changed, from memory and from the log on disk, and never past
 * an event of its kind that the answer left out (max reached).
 */
static void test_events_raw_scanned(void)
{
        struct orch_store *s = open_store("scan", 0);
        struct sw_err err = SW_ERR_INIT;
        struct orch_event **evs = NULL;
        json_t *in = NULL, *o = NULL;
        int64_t start, scanned = -1;
        size_t n = 0;
        char name[32];

        in = cm("ns", "first", "0");
        CHECK_OK(orch_store_create(&o, s, "secrets", in, 0, &err), &err);
        json_decref(o);
        json_decref(in);
        start = orch_store_revision(s);
        for (int i = 0; i < 20; i++) {
                snprintf(name, sizeof(name), "c%d", i);
                in = cm("ns", name, "0");
                CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
                json_decref(o);
                json_decref(in);
        }
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "secrets", start, 8, &err), &err);
        CHECK_INT(n, 0);
        CHECK_INT(scanned, orch_store_revision(s));
        orch_events_free(evs, n);
        /* max reached: the scan stops at the last event returned. */
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 5, &err), &err);
        CHECK_INT(n, 5);
        CHECK_INT(scanned, start + 5);
        CHECK_INT(evs[4]->rev, start + 5);
        orch_events_free(evs, n);
        orch_store_free(s);

        /*
         * Reopened, the log in memory is empty: a watcher from before is told
         * its revision is too old (and lists again); one from now is served.
         */
        s = open_store("scan", 0);
        CHECK_INT(orch_store_events_raw(&evs, &n, &scanned, s, "secrets", start, 8, &err),
                  SW_ENOTFOUND);
        CHECK(strstr(err.msg, "too old resource version"));
        sw_err_clear(&err);
        start = orch_store_revision(s);
        in = cm("ns", "after", "0");
        CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
        json_decref(o);
        json_decref(in);
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 5, &err), &err);
        CHECK_INT(n, 1);
        CHECK_INT(scanned, start + 1);
        orch_events_free(evs, n);
        orch_store_free(s);
}

/*
 * In-process watchers share one parsed object per event, which they may
 * keep; the object before a MODIFIED is there too.
 */
static void test_event_json_shared(void)
{
        struct orch_store *s = open_store("json", 0);
        struct sw_err err = SW_ERR_INIT;
        struct orch_event **evs = NULL;
        json_t *in = cm("ns", "j", "0"), *o = NULL, *next = NULL, *a, *b, *prev;
        int64_t start = orch_store_revision(s), scanned = 0;
        size_t n = 0;

        CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
        json_object_set_new(json_object_get(o, "data"), "k", json_string("v2"));
        CHECK_OK(orch_store_update(&next, NULL, s, "configmaps", o, 0, &err), &err);
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 8, &err), &err);
        CHECK_INT(n, 2);
        CHECK(orch_event_json(s, evs[0], true) == NULL); /* ADDED has no object before */
        a = orch_event_json(s, evs[1], false);
        b = orch_event_json(s, evs[1], false);
        prev = orch_event_json(s, evs[1], true);
        CHECK(a != NULL && a == b);
        CHECK_STR(json_string_value(json_object_get(json_object_get(a, "data"), "k")), "v2");
        CHECK_STR(json_string_value(json_object_get(json_object_get(prev, "data"), "k")), "0");
        orch_events_free(evs, n);
        json_decref(b);
        json_decref(prev);
        /* still valid after the watcher's references to the events are gone */
        CHECK_STR(json_string_value(json_object_get(a, "kind")), "ConfigMap");
        json_decref(a);
        json_decref(o);
        json_decref(next);
        json_decref(in);
        orch_store_free(s);
}

/*
 * The store checkpoints its write-ahead log itself (after publishing each
 * event, not inside the commit): the log stays bounded however many writes.
 */
static void test_wal_checkpointed(void)
{
        struct orch_store *s = open_store("wal", 0);
        struct sw_err err = SW_ERR_INIT;
        char *wal = sw_xasprintf("%s/wal.db-wal", t_tmpdir());
        char name[32], big[2048];
        struct stat st;

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        for (int i = 0; i < 4000; i++) {
                json_t *in, *o = NULL;
                snprintf(name, sizeof(name), "w%d", i);
                in = cm("ns", name, big);
                CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
                json_decref(o);
                json_decref(in);
        }
        /* 4000 writes of > 2 KiB each: far past 16 MiB without checkpoints. */
        CHECK(stat(wal, &st) == 0);
        CHECK(st.st_size < ((off_t)12 << 20));
        free(wal);
        orch_store_free(s);
}

static void test_reopen_keeps_revision(void)
{
        struct orch_store *s = open_store("reopen", 0);
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "r", "1"), *o = NULL;
        int64_t rev;

        CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
        rev = orch_store_revision(s);
        orch_store_free(s);
        s = open_store("reopen", 0);
        CHECK_INT(orch_store_revision(s), rev);
        json_decref(o);
        CHECK_OK(orch_store_get(&o, s, "configmaps", "ns", "r", &err), &err);
        json_decref(o);
        /*
         * The keys in the file are known taken, though none is in the log
         * after a reopen: a create of one is refused when it is staged, and
         * the rest of its group commits.
         */
        orch_store_hold(s);
        CHECK_INT(orch_store_create(&o, s, "configmaps", in, 0, &err), SW_EEXIST);
        sw_err_clear(&err);
        json_decref(in);
        in = cm("ns", "r2", "1");
        CHECK_OK(orch_store_create(&o, s, "configmaps", in, 0, &err), &err);
        json_decref(o);
        CHECK_OK(orch_store_release(s, &err), &err);
        CHECK_INT(orch_store_revision(s), rev + 1);
        json_decref(in);
        orch_store_free(s);
}

/* One of the writers of test_group_commit. */
struct writer {
        struct orch_store *s;
        int id, n;
        atomic_int *failures;
        int64_t revs[64];
        int hold; /* writes per orch_store_hold(), or 0 */
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        struct sw_err err = SW_ERR_INIT;
        char name[32];

        for (int i = 0; i < w->n; i++) {
                json_t *in, *out = NULL, *again = NULL;
                if (w->hold && i % w->hold == 0)
                        orch_store_hold(w->s);
                snprintf(name, sizeof(name), "w%d-%d", w->id, i);
                in = cm("ns", name, "1");
                if (orch_store_create(&out, w->s, "configmaps", in, 0, &err) != 0) {
                        atomic_fetch_add(w->failures, 1);
                } else {
                        w->revs[i] = strtoll(meta_str(out, "resourceVersion"), NULL, 10);
                        /* A failing write in the middle of a group harms no other. */
                        if (orch_store_create(&again, w->s, "configmaps", in, 0, &err) != SW_EEXIST)
                                atomic_fetch_add(w->failures, 1);
                        sw_err_clear(&err);
                }
                json_decref(out);
                json_decref(in);
                if (w->hold && (i % w->hold == w->hold - 1 || i == w->n - 1) &&
                    orch_store_release(w->s, &err) != 0)
                        atomic_fetch_add(w->failures, 1);
        }
        return NULL;
}

/*
 * Writers at once share transactions (group commit): every write gets its
 * own revision, revisions have no gaps, the event log has them all in
 * order, and a refused write in a group leaves the rest of it alone.
 */
static void group_commit(int hold)
{
        char dbname[32];
        struct orch_store *s;
        struct sw_err err = SW_ERR_INIT;
        struct writer ws[6];
        pthread_t th[6];
        atomic_int failures = 0;
        int64_t start, seen;
        struct orch_event **evs = NULL;
        json_t *all = json_object(), *items = NULL;
        size_t n = 0;
        int64_t scanned = 0, rev = 0;
        bool more = false;
        struct orch_list_query q = {0};

        snprintf(dbname, sizeof(dbname), "group-%d", hold);
        s = open_store(dbname, 0);
        start = seen = orch_store_revision(s);
        for (int i = 0; i < 6; i++) {
                /* with `hold`, half the writers hold their groups */
                ws[i] = (struct writer){s, i, 50, &failures, {0}, i % 2 ? hold : 0};
                CHECK(pthread_create(&th[i], NULL, writer_main, &ws[i]) == 0);
        }
        for (int i = 0; i < 6; i++)
                pthread_join(th[i], NULL);
        CHECK_INT(atomic_load(&failures), 0);
        CHECK_INT(orch_store_revision(s), start + 300);
        for (int i = 0; i < 6; i++)
                for (int k = 0; k < 50; k++) {
                        char key[32];
                        snprintf(key, sizeof(key), "%lld", (long long)ws[i].revs[k]);
                        CHECK(ws[i].revs[k] > start && ws[i].revs[k] <= start + 300);
                        CHECK(json_object_get(all, key) == NULL);
                        json_object_set_new(all, key, json_true());
                }
        /* The log, read back in pages, has every revision once and in order. */
        while (seen < start + 300) {
                CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", seen, 64, &err),
                         &err);
                if (n == 0)
                        break;
                for (size_t i = 0; i < n; i++) {
                        CHECK_INT(evs[i]->rev, seen + 1);
                        CHECK_STR(evs[i]->type, "ADDED");
                        seen = evs[i]->rev;
                }
                orch_events_free(evs, n);
        }
        CHECK_INT(seen, start + 300);
        CHECK_OK(orch_store_list(&items, &rev, &more, s, "configmaps", &q, &err), &err);
        CHECK_INT(json_array_size(items), 300);
        CHECK_INT(rev, start + 300);
        json_decref(items);
        json_decref(all);
        orch_store_free(s);
}

static void test_group_commit(void)
{
        group_commit(0);
}

/* The same with holders among the writers, and holds longer than a group. */
static void test_group_commit_held(void)
{
        group_commit(7);
        group_commit(100);
}

/*
 * Held writes are staged, not committed: no watcher sees them and the
 * published revision stays, until the release commits them all at once.
 */
static void test_hold_release(void)
{
        struct orch_store *s = open_store("hold", 0);
        struct sw_err err = SW_ERR_INIT;
        struct orch_event **evs = NULL;
        int64_t start = orch_store_revision(s), scanned = 0;
        size_t n = 0;
        char name[32];

        orch_store_hold(s);
        for (int i = 0; i < 5; i++) {
                json_t *in, *out = NULL;
                snprintf(name, sizeof(name), "h%d", i);
                in = cm("ns", name, "1");
                CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
                CHECK_INT(strtoll(meta_str(out, "resourceVersion"), NULL, 10), start + 1 + i);
                json_decref(out);
                json_decref(in);
        }
        CHECK_INT(orch_store_revision(s), start);
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 8, &err), &err);
        CHECK_INT(n, 0);
        orch_events_free(evs, n);
        CHECK_OK(orch_store_release(s, &err), &err);
        CHECK_INT(orch_store_revision(s), start + 5);
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 8, &err), &err);
        CHECK_INT(n, 5);
        orch_events_free(evs, n);
        /* A release without writes, or without a hold, has nothing to wait for. */
        orch_store_hold(s);
        CHECK_OK(orch_store_release(s, &err), &err);
        CHECK_OK(orch_store_release(s, &err), &err);
        orch_store_free(s);
}

struct late_holder {
        struct orch_store *s;
        atomic_int staged;
        int rc;
};

static void *late_holder_main(void *arg)
{
        struct late_holder *h = arg;
        struct sw_err err = SW_ERR_INIT;
        json_t *in = cm("ns", "late", "1"), *out = NULL;

        orch_store_hold(h->s);
        h->rc = orch_store_create(&out, h->s, "configmaps", in, 0, &err);
        atomic_store(&h->staged, 1);
        if (h->rc == 0)
                h->rc = orch_store_release(h->s, &err);
        json_decref(out);
        json_decref(in);
        return NULL;
}

/*
 * A holder whose writes all went into a group that committed earlier (it
 * filled it) releases last, while another holder's write waits in the open
 * group: the last one out commits that group, whoever staged it.
 */
static void test_release_commits_others(void)
{
        struct orch_store *s = open_store("late", 0);
        struct sw_err err = SW_ERR_INIT;
        struct late_holder h = {s, 0, -1};
        int64_t start = orch_store_revision(s);
        struct timespec until;
        pthread_t th;
        char name[32];

        orch_store_hold(s);
        for (int i = 0; i < 150; i++) { /* past full groups: they commit while held */
                json_t *in, *out = NULL;
                snprintf(name, sizeof(name), "full%d", i);
                in = cm("ns", name, "1");
                CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
                json_decref(out);
                json_decref(in);
        }
        /* Commit what this thread staged last, so that none of it is in the open group. */
        {
                json_t *items = NULL;
                int64_t rev = 0;
                bool more = false;
                struct orch_list_query q = {0};
                CHECK_OK(orch_store_list(&items, &rev, &more, s, "secrets", &q, &err), &err);
                json_decref(items);
        }
        CHECK(pthread_create(&th, NULL, late_holder_main, &h) == 0);
        while (!atomic_load(&h.staged))
                usleep(1000);
        usleep(50 * 1000); /* the other holder is waiting in its release */
        CHECK_OK(orch_store_release(s, &err), &err);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        if (pthread_timedjoin_np(th, NULL, &until) != 0) {
                /* It waits for good: stop here rather than hang the suite. */
                fprintf(stderr, "FAIL: the other holder's release never returned\n");
                _exit(1);
        }
        CHECK_INT(h.rc, 0);
        CHECK_INT(orch_store_revision(s), start + 151);
        orch_store_free(s);
}

/*
 * Writes see the staged writes before them, committed or not: a create of
 * a staged key is refused, and an update, a deletion and a create again
 * of a staged object go through, in order, in one commit.
 */
static void test_writes_see_staged(void)
{
        struct orch_store *s = open_store("staged", 0);
        struct sw_err err = SW_ERR_INIT;
        struct orch_event **evs = NULL;
        int64_t start = orch_store_revision(s), scanned = 0;
        json_t *in = cm("ns", "x", "1"), *out = NULL, *upd;
        bool gone = false;
        size_t n = 0;

        orch_store_hold(s);
        CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
        json_decref(out);
        CHECK_INT(orch_store_create(&out, s, "configmaps", in, 0, &err), SW_EEXIST);
        sw_err_clear(&err);
        upd = cm("ns", "x", "2");
        json_object_set_new(json_object_get(upd, "metadata"), "resourceVersion", json_string("1"));
        CHECK_INT(orch_store_update(&out, NULL, s, "configmaps", upd, 0, &err), SW_ECONFLICT);
        sw_err_clear(&err);
        json_object_del(json_object_get(upd, "metadata"), "resourceVersion");
        CHECK_OK(orch_store_update(&out, NULL, s, "configmaps", upd, 0, &err), &err);
        CHECK_STR(json_string_value(json_object_get(json_object_get(out, "data"), "k")), "2");
        json_decref(out);
        CHECK_OK(orch_store_delete(&out, &gone, s, "configmaps", "ns", "x", NULL, NULL, &err),
                 &err);
        CHECK(gone);
        json_decref(out);
        CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
        json_decref(out);
        CHECK_INT(orch_store_revision(s), start);
        CHECK_OK(orch_store_release(s, &err), &err);
        CHECK_INT(orch_store_revision(s), start + 4);
        CHECK_OK(orch_store_events_raw(&evs, &n, &scanned, s, "configmaps", start, 8, &err), &err);
        CHECK_INT(n, 4);
        if (n == 4) {
                CHECK_STR(evs[0]->type, "ADDED");
                CHECK_STR(evs[1]->type, "MODIFIED");
                CHECK_STR(evs[2]->type, "DELETED");
                CHECK_STR(evs[3]->type, "ADDED");
        }
        orch_events_free(evs, n);
        CHECK_OK(orch_store_get(&out, s, "configmaps", "ns", "x", &err), &err);
        CHECK_STR(json_string_value(json_object_get(json_object_get(out, "data"), "k")), "1");
        json_decref(out);
        json_decref(upd);
        json_decref(in);
        orch_store_free(s);
}

/*
 * Have SQLite refuse the rows of store `name` that `when` holds for, with
 * "injected": a trigger another connection puts in, as a full disk or a
 * failing device would refuse a write.
 */
static void poison(const char *name, const char *when)
{
        char *path = sw_xasprintf("%s/%s.db", t_tmpdir(), name);
        char *sql = sw_xasprintf("CREATE TRIGGER poison BEFORE INSERT ON objects WHEN %s BEGIN "
                                 "SELECT RAISE(ABORT, 'injected'); END",
                                 when);
        sqlite3 *db = NULL;

        CHECK(sqlite3_open(path, &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
        free(sql);
        free(path);
}

/*
 * A group whose commit fails (here SQLite refuses one of its rows, through
 * a trigger another connection put in) fails as a whole: none of its
 * writes is stored or seen, the release says so, and the revisions go on
 * from the last committed one.
 */
static void test_failed_group(void)
{
        struct orch_store *s = open_store("fail", 0);
        struct sw_err err = SW_ERR_INIT;
        int64_t start = orch_store_revision(s);
        const char *names[] = {"a", "poison", "b"};
        json_t *out = NULL, *in;

        poison("fail", "NEW.name = 'poison'");
        orch_store_hold(s);
        for (int i = 0; i < 3; i++) {
                in = cm("ns", names[i], "1");
                CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
                json_decref(out);
                json_decref(in);
        }
        CHECK_INT(orch_store_release(s, &err), SW_EIO);
        CHECK(strstr(err.msg, "injected") != NULL);
        sw_err_clear(&err);
        CHECK_INT(orch_store_revision(s), start);
        for (int i = 0; i < 3; i++) {
                CHECK_INT(orch_store_get(&out, s, "configmaps", "ns", names[i], &err),
                          SW_ENOTFOUND);
                sw_err_clear(&err);
        }
        in = cm("ns", "a", "1");
        CHECK_OK(orch_store_create(&out, s, "configmaps", in, 0, &err), &err);
        CHECK_INT(strtoll(meta_str(out, "resourceVersion"), NULL, 10), start + 1);
        CHECK_INT(orch_store_revision(s), start + 1);
        json_decref(out);
        /* Without a hold, the failed write's own caller is told. */
        json_object_set_new(json_object_get(in, "metadata"), "name", json_string("poison"));
        CHECK(orch_store_create(&out, s, "configmaps", in, 0, &err) != 0);
        CHECK(strstr(err.msg, "injected") != NULL);
        sw_err_clear(&err);
        CHECK_INT(orch_store_revision(s), start + 1);
        json_decref(in);
        orch_store_free(s);
}

struct poisoned_writer {
        struct orch_store *s;
        int id;
        bool held;
        signed char outcome[300]; /* 1 stored, -1 not stored, 0 either (a failed hold's) */
};

static void *poisoned_writer_main(void *arg)
{
        struct poisoned_writer *w = arg;
        struct sw_err err = SW_ERR_INIT;
        char name[32];

        for (int i = 0; i < 300; i++) {
                json_t *in, *out = NULL;
                int rc;
                if (w->held && i % 16 == 0)
                        orch_store_hold(w->s);
                snprintf(name, sizeof(name), "w%d-%d", w->id, i);
                in = cm("ns", name, "1");
                rc = orch_store_create(&out, w->s, "configmaps", in, 0, &err);
                sw_err_clear(&err);
                json_decref(out);
                json_decref(in);
                w->outcome[i] = (signed char)(rc == 0 ? 1 : -1);
                if (w->held && (i % 16 == 15 || i == 299) && orch_store_release(w->s, &err) != 0) {
                        /* Some group of this hold failed: any of its writes may be lost. */
                        for (int j = i - i % 16; j <= i; j++)
                                if (w->outcome[j] == 1)
                                        w->outcome[j] = 0;
                        sw_err_clear(&err);
                }
        }
        return NULL;
}

/*
 * Writers with and without holds while SQLite refuses some of their rows:
 * every failed group is reported to its writers and the others go on (no
 * writer waits for good); a write reported done is stored, one reported
 * failed is not, and the revisions count exactly what is stored.
 */
static void test_failures_under_load(void)
{
        struct orch_store *s = open_store("poisoned", 0);
        struct sw_err err = SW_ERR_INIT;
        struct poisoned_writer w[4];
        int64_t start = orch_store_revision(s);
        pthread_t th[4];
        int failed = 0;

        poison("poisoned", "NEW.name LIKE '%-77' OR NEW.name LIKE '%-211'");
        for (int i = 0; i < 4; i++) {
                memset(&w[i], 0, sizeof(w[i]));
                w[i].s = s;
                w[i].id = i;
                w[i].held = i % 2 == 0;
                CHECK(pthread_create(&th[i], NULL, poisoned_writer_main, &w[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += 30;
                if (pthread_timedjoin_np(th[i], NULL, &until) != 0) {
                        fprintf(stderr, "FAIL: a writer never returned\n");
                        _exit(1);
                }
        }
        for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 300; j++) {
                        char name[32];
                        json_t *o = NULL;
                        int rc;
                        snprintf(name, sizeof(name), "w%d-%d", i, j);
                        rc = orch_store_get(&o, s, "configmaps", "ns", name, &err);
                        sw_err_clear(&err);
                        json_decref(o);
                        if (w[i].outcome[j] == 1 && rc != 0)
                                CHECK_STR(name, "stored");
                        if (w[i].outcome[j] == -1 && rc == 0)
                                CHECK_STR(name, "not stored");
                        if (j == 77 || j == 211)
                                CHECK_INT(rc, SW_ENOTFOUND);
                        failed += rc != 0;
                }
        }
        CHECK(failed >= 8);
        {
                json_t *items = NULL;
                int64_t rev = 0;
                bool more = false;
                struct orch_list_query q = {0};
                CHECK_OK(orch_store_list(&items, &rev, &more, s, "configmaps", &q, &err), &err);
                CHECK_INT(json_array_size(items), 4 * 300 - failed);
                /* Gapless: the failed groups gave their revisions back. */
                CHECK_INT(orch_store_revision(s), start + (int64_t)json_array_size(items));
                json_decref(items);
        }
        orch_store_free(s);
}

int main(void)
{
        T_RUN(test_create_get);
        T_RUN(test_update_conflict_and_noop);
        T_RUN(test_generation);
        T_RUN(test_finalizers);
        T_RUN(test_delete_preconditions);
        T_RUN(test_list_paging);
        T_RUN(test_events_and_compaction);
        T_RUN(test_events_raw_scanned);
        T_RUN(test_quiet_kind_not_too_old);
        T_RUN(test_event_json_shared);
        T_RUN(test_wal_checkpointed);
        T_RUN(test_reopen_keeps_revision);
        T_RUN(test_group_commit);
        T_RUN(test_group_commit_held);
        T_RUN(test_hold_release);
        T_RUN(test_release_commits_others);
        T_RUN(test_writes_see_staged);
        T_RUN(test_failed_group);
        T_RUN(test_failures_under_load);
        return t_done();
}
