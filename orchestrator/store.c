/*
 * store.c - the orchestrator's object store on SQLite.
 *
 * One row per object holds its JSON body; every write takes the next value
 * of one global revision counter, which becomes the object's
 * resourceVersion, and appends an event (ADDED, MODIFIED, DELETED) to a log
 * in memory that watches replay, as Kubernetes' watch cache serves them.
 * The log keeps a window of the latest revisions; a watcher that asks for
 * an older one, or for one from before this process opened the store, is
 * told so (410 Gone upstream) and lists again.
 *
 * The store owns one SQLite connection guarded by one mutex; writes run in
 * IMMEDIATE transactions. The file is locked (flock) for this process, the
 * store's only writer. Checkpoints run on a second connection in their own
 * thread, so that copying the WAL into the database and syncing both never
 * holds the mutex every request needs. The in-memory ring of recent events has its own reader-writer
 * lock (lock order: mu, then ring_mu), so that many watchers copy events out
 * at the same time without queueing on the connection's mutex.
 *
 * Waiters for new revisions sleep on a Linux futex on a wake-up counter
 * rather than on a condition variable: a broadcast on a condition variable
 * makes every woken waiter re-take its mutex one after the other, and with
 * a hundred watches that convoy, each link waiting for the scheduler, was
 * most of the latency of delivering one event to all of them.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "common/clock.h"
#include "common/embed.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/rand.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define STORE_DEFAULT_WINDOW 4096
#define STORE_LOG_BYTES ((size_t)32 << 20) /* the log's texts take at most this */
#define STORE_BODY_MAX ((size_t)16 << 20)
#define STORE_MIGRATIONS "schema/orchestrator/"

#define STORE_STMTS 32              /* prepared statements cached */
#define STORE_CHECKPOINT_PAGES 1000 /* SQLite's default autocheckpoint */
#define STORE_WAL_MAX_PAGES 2500    /* a WAL this long is emptied by the writer */
#define STORE_WAKE_BUCKETS 16       /* wake-up words, by a hash of the resource */
#define STORE_BATCH_MAX 64          /* writes one group commit takes at most */
#define STORE_BATCH_RING 8          /* outcomes of the last group commits kept */
#define STORE_JSON_KEEP 512         /* latest revisions whose parsed objects are shared */
#define STORE_JSON_STRIPES 16       /* locks over the events' parsed objects */
#define STORE_DROP_BUCKETS 256      /* resources told apart by the log's drop floors */

struct orch_store {
        pthread_mutex_t mu; /* guards db; taken before ring_mu */
        sqlite3 *db;
        /* The last revision written; written with both locks held, so either one reads it. */
        int64_t rev;
        /*
         * The log: the latest events, in slot rev % ring_cap; the slots hold
         * the ring_count revisions up to rev (every revision is one event,
         * and this process is the store's only writer), so revisions up to
         * rev - ring_count are gone. At most ring_cap (the event window)
         * events whose texts take at most STORE_LOG_BYTES. Guarded by ring_mu.
         */
        pthread_rwlock_t ring_mu;
        struct orch_event **ring;
        size_t ring_cap, ring_count, ring_bytes;
        /*
         * By a hash of the resource (drop_bucket), the last revision of an
         * event of that resource the log has dropped (or, for all of them,
         * the revision the store opened at): a watch of one resource from
         * a revision at or past it misses nothing, however long ago the
         * log's oldest event of other resources was (a quiet kind's
         * watchers would otherwise list again each time busy kinds turn
         * the log over). Guarded by ring_mu.
         */
        int64_t dropped[STORE_DROP_BUCKETS];
        /*
         * The events' parsed objects (orch_event_json), each guarded by the
         * stripe of its revision. Those at or below json_swept are dropped,
         * so that only the latest STORE_JSON_KEEP revisions keep theirs.
         */
        pthread_mutex_t json_mu[STORE_JSON_STRIPES];
        _Atomic int64_t json_swept;
        /*
         * The newest event of each object in the log, by key: chains of
         * orch_event.key_next in keys_mask + 1 slots. A write reads the
         * object it changes from here when it can (write_optimistic).
         * Guarded by ring_mu. Parsed objects that leave the index after
         * their sweep wait in `unshared` for write_leave to free them
         * past the mutex (guarded by mu).
         */
        struct orch_event **keys;
        size_t keys_mask;
        json_t *unshared;
        /*
         * The WAL's length in pages (store_wal_hook), and its length when a
         * checkpoint was last asked for; guarded by mu.
         */
        int wal_pages, wal_asked;
        /* The checkpointer: its connection and thread, woken through ckpt_mu/ckpt_cv. */
        sqlite3 *ckpt_db;
        pthread_t ckpt_th;
        bool ckpt_running, ckpt_due, ckpt_stop;
        pthread_mutex_t ckpt_mu;
        pthread_cond_t ckpt_cv;
        /* A connection for single-object reads, so that they do not queue on mu. */
        sqlite3 *rdb;
        sqlite3_stmt *rget;
        pthread_mutex_t rmu; /* guards rdb and rget */
        int lock_fd;         /* flock()ed: one process writes this store */
        /*
         * Group commit (write_enter, write_leave): while more writers are
         * queued, a write leaves the transaction open for the next one and
         * waits; the last of the group commits for all. Guarded by mu, but
         * for `writers` (threads in or on their way into a write).
         */
        atomic_int writers;
        bool txn_open;
        int64_t txn_rev; /* the revision counter inside the open transaction */
        int txn_err;     /* a write failed in a way that fails the whole group */
        char txn_msg[SW_ERR_MSG_MAX];
        struct orch_event **staged;
        size_t nstaged, staged_cap;
        uint64_t batch; /* the open group; ended ones are lower */
        int batch_rc[STORE_BATCH_RING];
        char batch_msg[STORE_BATCH_RING][SW_ERR_MSG_MAX];
        uint64_t failed; /* the last group that failed, plus one; 0 when none has */
        char failed_msg[SW_ERR_MSG_MAX];
        pthread_cond_t batch_cv;
        /* Prepared statements by SQL text (store_prepare), guarded by mu. */
        sqlite3_stmt *stmts[STORE_STMTS];
        char *stmt_sql[STORE_STMTS];
        size_t n_stmts;
        /*
         * Wake-ups without a lock: the revision as published and a futex word
         * bumped on each change, for all resources (`all`) and per bucket of
         * resources, so that a write wakes only the watchers of its kind; the
         * syscall is skipped when nobody sleeps on the word.
         */
        _Atomic int64_t pub_rev;
        struct wake_word {
                _Atomic int64_t rev;
                atomic_uint seq;
                atomic_int sleepers;
                atomic_int local; /* in-process watchers of the kinds of this word */
        } all, kinds[STORE_WAKE_BUCKETS];
        unsigned wake_due; /* buckets written since mu was taken (bit 31: any); guarded by mu */
        /*
         * What an object's text holds in place of its resourceVersion when
         * dumped before the lock, where the revision is not known yet
         * (random: no client can write it).
         */
        char rv_mark[40];
        atomic_bool woken;
};

static void staged_free(struct orch_store *s);
static void batch_end(struct orch_store *s);
static unsigned wake_bucket(const char *resource);
static unsigned drop_bucket(const char *resource);

/* ---- the log's events ------------------------------------------------------- */

/* A new event holding `body` and `prev` (taken over) and a reference for the log. */
static struct orch_event *event_new(int64_t rev, const char *type, const char *resource,
                                    const char *ns, const char *name, char *body, char *prev,
                                    json_t *obj, json_t *prev_obj)
{
        struct orch_event *ev = sw_xcalloc(1, sizeof(*ev));

        ev->rev = rev;
        snprintf(ev->type, sizeof(ev->type), "%s", type);
        ev->resource = sw_xstrdup(resource);
        ev->ns = sw_xstrdup(ns);
        ev->name = sw_xstrdup(name);
        ev->body = body;
        ev->prev = prev;
        ev->bytes = strlen(body) + (prev ? strlen(prev) : 0) + sizeof(*ev);
        ev->obj_json = json_incref(obj);
        ev->prev_json = prev ? json_incref(prev_obj) : NULL;
        atomic_init(&ev->refs, 1);
        return ev;
}

static void event_unref(struct orch_event *ev)
{
        if (!ev || atomic_fetch_sub(&ev->refs, 1) != 1)
                return;
        free(ev->resource);
        free(ev->ns);
        free(ev->name);
        free(ev->body);
        free(ev->prev);
        json_decref(ev->obj_json);
        json_decref(ev->prev_json);
        free(ev);
}

void orch_events_free(struct orch_event **evs, size_t n)
{
        for (size_t i = 0; evs && i < n; i++)
                event_unref(evs[i]);
        free(evs);
}

/*
 * Drop the parsed objects of the revisions up to STORE_JSON_KEEP before
 * `rev` not dropped yet: watchers that have not reached them by then parse
 * their own.
 */
static void json_sweep(struct orch_store *s, int64_t rev)
{
        int64_t to = rev - STORE_JSON_KEEP, from = atomic_load(&s->json_swept);

        if (to <= from || !atomic_compare_exchange_strong(&s->json_swept, &from, to))
                return; /* nothing to do, or another thread does it */
        if (to - from > (int64_t)s->ring_cap)
                from = to - (int64_t)s->ring_cap;
        for (int64_t r = from + 1; r <= to; r++) {
                json_t *a = NULL, *b = NULL;
                struct orch_event *ev;
                pthread_rwlock_rdlock(&s->ring_mu);
                ev = s->ring[r % (int64_t)s->ring_cap];
                /* The newest event of an object keeps its object for the writes to come. */
                if (ev && ev->rev == r && !ev->indexed && (ev->obj_json || ev->prev_json)) {
                        pthread_mutex_t *mu = &s->json_mu[r % STORE_JSON_STRIPES];
                        pthread_mutex_lock(mu);
                        a = ev->obj_json;
                        b = ev->prev_json;
                        ev->obj_json = ev->prev_json = NULL;
                        pthread_mutex_unlock(mu);
                }
                pthread_rwlock_unlock(&s->ring_mu);
                json_decref(a);
                json_decref(b);
        }
}

json_t *orch_event_json(struct orch_store *s, struct orch_event *ev, bool prev)
{
        pthread_mutex_t *mu = &s->json_mu[ev->rev % STORE_JSON_STRIPES];
        json_t **slot = prev ? &ev->prev_json : &ev->obj_json, *o;
        const char *text = prev ? ev->prev : ev->body;

        if (!text)
                return NULL;
        /*
         * Parsed under the stripe's lock: the watchers of one event wake
         * together, and the others wait for the first one's tree rather
         * than each parse their own. Past the sweep, a straggler parses
         * its own, unless the event still keeps its object.
         */
        pthread_mutex_lock(mu);
        if (!*slot && ev->rev > atomic_load(&s->json_swept))
                *slot = json_loads(text, 0, NULL);
        o = *slot ? json_incref(*slot) : json_loads(text, 0, NULL);
        pthread_mutex_unlock(mu);
        json_sweep(s, ev->rev);
        return o;
}

static size_t key_hash(const struct orch_store *s, const char *resource, const char *ns,
                       const char *name)
{
        uint64_t h = 1469598103934665603ULL;
        const char *parts[3] = {resource, ns, name};

        for (int i = 0; i < 3; i++) {
                for (const char *c = parts[i]; *c; c++)
                        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
                h = (h ^ 0xff) * 1099511628211ULL;
        }
        return (size_t)h & s->keys_mask;
}

static bool key_is(const struct orch_event *ev, const char *resource, const char *ns,
                   const char *name)
{
        return strcmp(ev->name, name) == 0 && strcmp(ev->ns, ns) == 0 &&
               strcmp(ev->resource, resource) == 0;
}

/* Take `ev` out of the index (ring_mu held for writing). */
static void key_unlink(struct orch_store *s, struct orch_event *ev)
{
        struct orch_event **at = &s->keys[key_hash(s, ev->resource, ev->ns, ev->name)];

        for (; *at; at = &(*at)->key_next)
                if (*at == ev) {
                        *at = ev->key_next;
                        ev->key_next = NULL;
                        ev->indexed = false;
                        return;
                }
}

/*
 * `ev` is now its object's newest event: it replaces the one before in
 * the index, or removes it for a DELETED (both locks held). The parsed
 * objects of the one before go to `unshared` when the sweep has passed it.
 */
static void key_index(struct orch_store *s, struct orch_event *ev)
{
        struct orch_event **head = &s->keys[key_hash(s, ev->resource, ev->ns, ev->name)], **at;

        for (at = head; *at; at = &(*at)->key_next) {
                struct orch_event *old = *at;
                if (!key_is(old, ev->resource, ev->ns, ev->name))
                        continue;
                *at = old->key_next;
                old->key_next = NULL;
                old->indexed = false;
                if (old->rev <= atomic_load(&s->json_swept)) {
                        pthread_mutex_t *mu = &s->json_mu[old->rev % STORE_JSON_STRIPES];
                        pthread_mutex_lock(mu);
                        if (old->obj_json)
                                json_array_append_new(s->unshared, old->obj_json);
                        if (old->prev_json)
                                json_array_append_new(s->unshared, old->prev_json);
                        old->obj_json = old->prev_json = NULL;
                        pthread_mutex_unlock(mu);
                }
                break;
        }
        if (strcmp(ev->type, "DELETED") == 0)
                return;
        ev->key_next = *head;
        *head = ev;
        ev->indexed = true;
}

/*
 * The newest event of an object, if the log still holds it: a new
 * reference, and its parsed object when it keeps one (a new reference
 * too, shared: not to be changed). NULL when the log does not know.
 */
static struct orch_event *key_latest(json_t **obj_out, struct orch_store *s, const char *resource,
                                     const char *ns, const char *name)
{
        struct orch_event *ev;

        *obj_out = NULL;
        pthread_rwlock_rdlock(&s->ring_mu);
        for (ev = s->keys[key_hash(s, resource, ns, name)]; ev; ev = ev->key_next)
                if (key_is(ev, resource, ns, name))
                        break;
        if (ev) {
                pthread_mutex_t *mu = &s->json_mu[ev->rev % STORE_JSON_STRIPES];
                atomic_fetch_add(&ev->refs, 1);
                pthread_mutex_lock(mu);
                *obj_out = json_incref(ev->obj_json);
                pthread_mutex_unlock(mu);
        }
        pthread_rwlock_unlock(&s->ring_mu);
        return ev;
}

void orch_store_local_watch(struct orch_store *s, const char *resource, int delta)
{
        atomic_fetch_add(&s->kinds[wake_bucket(resource)].local, delta);
}

/* Drop the log's oldest event, which revision `rev` names (both locks held). */
static void log_drop(struct orch_store *s, int64_t rev)
{
        struct orch_event **oldest = &s->ring[rev % (int64_t)s->ring_cap];

        s->dropped[drop_bucket((*oldest)->resource)] = rev;
        if ((*oldest)->indexed)
                key_unlink(s, *oldest);
        s->ring_bytes -= (*oldest)->bytes;
        event_unref(*oldest);
        *oldest = NULL;
        s->ring_count--;
}

/* Append a committed event to the log, dropping the oldest past its bounds (both locks held). */
static void log_append(struct orch_store *s, struct orch_event *ev)
{
        if (s->ring_count == s->ring_cap)
                log_drop(s, ev->rev - (int64_t)s->ring_count);
        s->ring[ev->rev % (int64_t)s->ring_cap] = ev;
        s->ring_count++;
        key_index(s, ev);
        s->ring_bytes += ev->bytes;
        while (s->ring_bytes > STORE_LOG_BYTES && s->ring_count > 1)
                log_drop(s, ev->rev - (int64_t)s->ring_count + 1);
}

/* The hash of a resource's name, which both kinds of buckets below take. */
static unsigned resource_hash(const char *resource)
{
        unsigned h = 5381;

        for (const char *p = resource; *p; p++)
                h = h * 33 + (unsigned char)*p;
        return h;
}

static unsigned wake_bucket(const char *resource)
{
        return resource_hash(resource) % STORE_WAKE_BUCKETS;
}

static unsigned drop_bucket(const char *resource)
{
        return resource_hash(resource) % STORE_DROP_BUCKETS;
}

static void wake_word_bump(struct wake_word *w, int64_t rev)
{
        if (rev > atomic_load(&w->rev))
                atomic_store(&w->rev, rev);
        atomic_fetch_add(&w->seq, 1);
        if (atomic_load(&w->sleepers) > 0)
                syscall(SYS_futex, &w->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Sleep until `w` passes revision `after`, the store is woken for good, or `until`. */
static int64_t wake_word_wait(struct orch_store *s, struct wake_word *w, int64_t after,
                              int64_t until)
{
        for (;;) {
                unsigned seq;
                int64_t rev, left;
                struct timespec ts;

                atomic_fetch_add(&w->sleepers, 1);
                /* The word is read before the revision: a change in between fails the wait. */
                seq = atomic_load(&w->seq);
                rev = atomic_load(&w->rev);
                left = until - sw_mono_ms();
                if (rev > after || atomic_load(&s->woken) || left <= 0) {
                        atomic_fetch_sub(&w->sleepers, 1);
                        return atomic_load(&s->pub_rev);
                }
                ts.tv_sec = (time_t)(left / 1000);
                ts.tv_nsec = (long)(left % 1000) * 1000000L;
                syscall(SYS_futex, &w->seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
                atomic_fetch_sub(&w->sleepers, 1);
        }
}

/* Wake every thread sleeping in orch_store_wait*(). */
static void store_wake_all(struct orch_store *s)
{
        int64_t rev = atomic_load(&s->pub_rev);

        wake_word_bump(&s->all, rev);
        for (int i = 0; i < STORE_WAKE_BUCKETS; i++)
                wake_word_bump(&s->kinds[i], rev);
}

/* Release the mutex, then wake the watchers of what was committed under it. */
static void store_unlock(struct orch_store *s)
{
        unsigned due = s->wake_due;
        int64_t rev;

        s->wake_due = 0;
        pthread_mutex_unlock(&s->mu);
        if (!due)
                return;
        rev = atomic_load(&s->pub_rev);
        wake_word_bump(&s->all, rev);
        for (int i = 0; i < STORE_WAKE_BUCKETS; i++)
                if (due & (1u << i))
                        wake_word_bump(&s->kinds[i], rev);
}

static int store_sqlite_err(sqlite3 *db, int rc, struct sw_err *err, const char *what)
{
        const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return sw_err_set(err, SW_EBUSY, "%s: the object store is locked (%s)", what, msg);
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT:
                return sw_err_set(err, SW_ECORRUPT, "%s: the object store is corrupt (%s)", what,
                                  msg);
        case SQLITE_CANTOPEN:
                return sw_err_set(err, SW_ENOTFOUND, "%s: cannot open the object store (%s)", what,
                                  msg);
        case SQLITE_CONSTRAINT:
                return sw_err_set(err, SW_EEXIST, "%s: %s", what, msg);
        case SQLITE_FULL:
                return sw_err_set(err, SW_ETOOBIG, "%s: disk full (%s)", what, msg);
        case SQLITE_IOERR:
                return sw_err_set(err, SW_EIO, "%s: %s", what, msg);
        default:
                return sw_err_set(err, SW_EINTERNAL, "%s: %s", what, msg);
        }
}

void orch_time_fmt(char *out, size_t size, int64_t epoch_ms)
{
        time_t secs = (time_t)(epoch_ms / 1000);
        struct tm tm;

        if (!gmtime_r(&secs, &tm)) {
                snprintf(out, size, "1970-01-01T00:00:00Z");
                return;
        }
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int64_t orch_time_parse(const char *s)
{
        struct tm tm;
        int n = 0;

        memset(&tm, 0, sizeof(tm));
        if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
                return -1;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        /* a MicroTime's fraction ("…:05.123456Z") counts to the millisecond */
        if (s[n] == '.') {
                int ms = 0, digits = 0;
                for (n++; s[n] >= '0' && s[n] <= '9'; n++)
                        if (digits++ < 3)
                                ms = ms * 10 + (s[n] - '0');
                for (; digits < 3; digits++)
                        ms *= 10;
                return (int64_t)timegm(&tm) * 1000 + ms;
        }
        return (int64_t)timegm(&tm) * 1000;
}

static void store_uid(char *out, size_t size)
{
        unsigned char b[16];

        sw_rand_bytes(b, sizeof(b));
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        snprintf(out, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
}

static int migration_number(const char *name)
{
        const char *base = name + strlen(STORE_MIGRATIONS);
        int n = 0;

        for (int i = 0; i < 3; i++) {
                if (base[i] < '0' || base[i] > '9')
                        return -1;
                n = n * 10 + (base[i] - '0');
        }
        return base[3] == '_' ? n : -1;
}

/*
 * A cached prepared statement for `sql` (the connection's lock held): every
 * request runs the same few statements, and compiling them again each time
 * was a noticeable part of a create. Hand it back with store_release().
 */
static int store_prepare(sqlite3_stmt **out, struct orch_store *s, const char *sql)
{
        size_t i;
        int rc;

        for (i = 0; i < s->n_stmts; i++)
                if (s->stmt_sql[i] == sql || strcmp(s->stmt_sql[i], sql) == 0) {
                        *out = s->stmts[i];
                        return SQLITE_OK;
                }
        assert(s->n_stmts < STORE_STMTS); /* sized for the statements of this file */
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
        if (rc != SQLITE_OK)
                return rc;
        s->stmt_sql[s->n_stmts] = sw_xstrdup(sql);
        s->stmts[s->n_stmts++] = *out;
        return SQLITE_OK;
}

/* Reset a statement from store_prepare() for its next use; accepts NULL. */
static void store_release(sqlite3_stmt *st)
{
        if (!st)
                return;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
}

/* One statement, from the cache (BEGIN, COMMIT, ROLLBACK). */
static int store_run(struct orch_store *s, const char *sql, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = store_prepare(&st, s, sql);

        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                rc = store_sqlite_err(s->db, rc, err, sql);
        else
                rc = 0;
        store_release(st);
        return rc;
}

static int store_exec(struct orch_store *s, const char *sql, struct sw_err *err)
{
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : store_sqlite_err(s->db, rc, err, "object store");
}

static int store_int(struct orch_store *s, const char *sql, int64_t *out, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = store_prepare(&st, s, sql);

        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                rc = store_sqlite_err(s->db, rc, err, sql);
        } else {
                *out = sqlite3_column_int64(st, 0);
                rc = 0;
        }
        store_release(st);
        return rc;
}

/* Apply schema/orchestrator/NNN_*.sql past PRAGMA user_version, each in its own transaction. */
static int store_migrate(struct orch_store *s, const char *path, struct sw_err *err)
{
        int rc;

        for (const struct sw_embedded_file *f = sw_embedded; f->name; f++) {
                int n;
                int64_t have = 0;
                char *sql;

                if (strncmp(f->name, STORE_MIGRATIONS, strlen(STORE_MIGRATIONS)) != 0)
                        continue;
                n = migration_number(f->name);
                if (n <= 0)
                        continue;
                if ((rc = store_run(s, "BEGIN IMMEDIATE", err)) != 0)
                        return sw_err_wrap(err, "migrate '%s'", path);
                rc = store_int(s, "PRAGMA user_version", &have, err);
                if (rc)
                        goto rollback;
                if (have >= n) {
                        store_run(s, "COMMIT", NULL);
                        continue;
                }
                sql = sw_xasprintf("%s\nPRAGMA user_version = %d;", f->data, n);
                rc = store_exec(s, sql, err);
                free(sql);
                if (rc)
                        goto rollback;
                if ((rc = store_run(s, "COMMIT", err)) != 0)
                        goto rollback;
        }
        return 0;
rollback:
        store_run(s, "ROLLBACK", NULL);
        return sw_err_wrap(err, "migrate '%s'", path);
}

/*
 * Replaces SQLite's automatic checkpoint, which runs inside the COMMIT that
 * crosses 1000 WAL pages and syncs the files: the event of that commit then
 * reached its watchers only after the sync (a stall of tens of ms in the
 * watch latency under load). batch_end() hands the checkpoint to the
 * checkpointer after it has published the group's events.
 */
static int store_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
        struct orch_store *s = arg;

        (void)db;
        (void)name;
        s->wal_pages = pages;
        return SQLITE_OK;
}

/*
 * The checkpointer's thread: a PASSIVE checkpoint each time
 * maybe_checkpoint() asks, and the heap handed back once writes pause.
 * Lock order: mu, then ckpt_mu; mu is taken here only without ckpt_mu.
 */
static void *ckpt_main(void *arg)
{
        struct orch_store *s = arg;
        int64_t seen = atomic_load(&s->pub_rev), released = seen;
        int log = 0;

        pthread_mutex_lock(&s->ckpt_mu);
        for (;;) {
                while (!s->ckpt_due && !s->ckpt_stop) {
                        struct timespec ts;
                        int64_t now_rev;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 200 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        if (pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts) != ETIMEDOUT)
                                continue;
                        /*
                         * 200 ms without writes after some: the burst is over, and
                         * the memory it freed goes back to the system (the allocator
                         * keeps freed pages a while for the next burst).
                         */
                        now_rev = atomic_load(&s->pub_rev);
                        if (now_rev == seen && now_rev != released) {
                                pthread_mutex_unlock(&s->ckpt_mu);
                                sw_mem_release();
                                pthread_mutex_lock(&s->ckpt_mu);
                                released = now_rev;
                        }
                        seen = now_rev;
                }
                if (s->ckpt_stop)
                        break;
                s->ckpt_due = false;
                pthread_mutex_unlock(&s->ckpt_mu);
                /* Best effort, as SQLite's own: a failed checkpoint is retried next time. */
                sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, NULL);
                if (log >= STORE_CHECKPOINT_PAGES * 3 / 2) {
                        /*
                         * Writes kept coming, and a write restarts the WAL from
                         * its start only if it began with every frame copied:
                         * copy the tail with the writers paused, so that the next
                         * write does, and the WAL stays bounded.
                         */
                        pthread_mutex_lock(&s->mu);
                        sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                                  NULL);
                        pthread_mutex_unlock(&s->mu);
                }
                pthread_mutex_lock(&s->ckpt_mu);
        }
        pthread_mutex_unlock(&s->ckpt_mu);
        return NULL;
}

/* Open the second connection and start the checkpointer; without it, commits checkpoint. */
static void ckpt_start(struct orch_store *s, const char *path)
{
        if (sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
                sqlite3_close_v2(s->ckpt_db);
                s->ckpt_db = NULL;
                return;
        }
        sqlite3_busy_timeout(s->ckpt_db, 5000);
        /* A connection sees the WAL only once it has read the database. */
        if (sqlite3_exec(s->ckpt_db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK) {
                sqlite3_close_v2(s->ckpt_db);
                s->ckpt_db = NULL;
                return;
        }
        s->ckpt_running = pthread_create(&s->ckpt_th, NULL, ckpt_main, s) == 0;
}

/* Open the reader connection; without it, reads take the writer's. */
static void reader_start(struct orch_store *s, const char *path)
{
        if (sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
                    SQLITE_OK ||
            sqlite3_exec(s->rdb, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v3(s->rdb,
                               "SELECT body, rev FROM objects WHERE resource=?1 AND namespace=?2 "
                               "AND name=?3",
                               -1, SQLITE_PREPARE_PERSISTENT, &s->rget, NULL) != SQLITE_OK) {
                sqlite3_finalize(s->rget);
                s->rget = NULL;
                sqlite3_close_v2(s->rdb);
                s->rdb = NULL;
                return;
        }
        sqlite3_busy_timeout(s->rdb, 5000);
}

int orch_store_open(struct orch_store **out, const struct orch_store_options *opts,
                    struct sw_err *err)
{
        struct orch_store *s = sw_xcalloc(1, sizeof(*s));
        int rc;

        pthread_mutex_init(&s->mu, NULL);
        pthread_rwlock_init(&s->ring_mu, NULL);
        pthread_mutex_init(&s->ckpt_mu, NULL);
        pthread_mutex_init(&s->rmu, NULL);
        pthread_cond_init(&s->batch_cv, NULL);
        pthread_cond_init(&s->ckpt_cv, NULL);
        for (int i = 0; i < STORE_JSON_STRIPES; i++)
                pthread_mutex_init(&s->json_mu[i], NULL);
        s->lock_fd = -1;
        s->ring_cap = (size_t)(opts->event_window > 0 ? opts->event_window : STORE_DEFAULT_WINDOW);
        store_uid(s->rv_mark, sizeof(s->rv_mark));
        s->ring = sw_xcalloc(s->ring_cap, sizeof(*s->ring));
        for (s->keys_mask = 1; s->keys_mask < s->ring_cap * 2; s->keys_mask <<= 1)
                ;
        s->keys = sw_xcalloc(s->keys_mask, sizeof(*s->keys));
        s->keys_mask--;
        s->unshared = json_array();
        s->lock_fd = open(opts->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
                rc = sw_err_set(err, errno == EWOULDBLOCK ? SW_EBUSY : SW_EIO,
                                "object store '%s': %s", opts->path,
                                errno == EWOULDBLOCK ? "in use by another process"
                                                     : strerror(errno));
                goto fail;
        }

        rc = sqlite3_open_v2(opts->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc != SQLITE_OK) {
                rc = store_sqlite_err(s->db, rc, err, "open");
                sw_err_wrap(err, "object store '%s'", opts->path);
                goto fail;
        }
        sqlite3_busy_timeout(s->db, 5000);
        if ((rc = store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err)) != 0)
                goto fail;
        if ((rc = store_migrate(s, opts->path, err)) != 0)
                goto fail;
        if ((rc = store_int(s, "SELECT value FROM counters WHERE name='revision'", &s->rev, err)) !=
            0)
                goto fail;
        atomic_store(&s->json_swept, s->rev);
        for (int i = 0; i < STORE_DROP_BUCKETS; i++)
                s->dropped[i] = s->rev; /* what came before this process is gone for all */
        sqlite3_wal_hook(s->db, store_wal_hook, s);
        ckpt_start(s, opts->path);
        reader_start(s, opts->path);
        atomic_store(&s->pub_rev, s->rev);
        atomic_store(&s->all.rev, s->rev);
        for (int i = 0; i < STORE_WAKE_BUCKETS; i++)
                atomic_store(&s->kinds[i].rev, s->rev);
        *out = s;
        return 0;
fail:
        orch_store_free(s);
        return rc;
}

void orch_store_free(struct orch_store *s)
{
        if (!s)
                return;
        if (s->ckpt_running) {
                pthread_mutex_lock(&s->ckpt_mu);
                s->ckpt_stop = true;
                pthread_cond_signal(&s->ckpt_cv);
                pthread_mutex_unlock(&s->ckpt_mu);
                pthread_join(s->ckpt_th, NULL);
        }
        sqlite3_close_v2(s->ckpt_db);
        sqlite3_finalize(s->rget);
        sqlite3_close_v2(s->rdb);
        for (size_t i = 0; i < s->n_stmts; i++) {
                sqlite3_finalize(s->stmts[i]);
                free(s->stmt_sql[i]);
        }
        sqlite3_close_v2(s->db);
        for (size_t i = 0; s->ring && i < s->ring_cap; i++)
                event_unref(s->ring[i]);
        free(s->ring);
        free(s->keys);
        json_decref(s->unshared);
        for (int i = 0; i < STORE_JSON_STRIPES; i++)
                pthread_mutex_destroy(&s->json_mu[i]);
        pthread_rwlock_destroy(&s->ring_mu);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->ckpt_mu);
        pthread_mutex_destroy(&s->rmu);
        pthread_cond_destroy(&s->batch_cv);
        staged_free(s);
        free(s->staged);
        pthread_cond_destroy(&s->ckpt_cv);
        if (s->lock_fd >= 0)
                close(s->lock_fd);
        free(s);
}

int64_t orch_store_revision(struct orch_store *s)
{
        return atomic_load(&s->pub_rev);
}

static json_t *meta_of(json_t *obj)
{
        json_t *m = json_object_get(obj, "metadata");

        if (!json_is_object(m)) {
                m = json_object();
                json_object_set_new(obj, "metadata", m);
        }
        return m;
}

static void set_rv(json_t *obj, int64_t rev)
{
        char b[32];

        snprintf(b, sizeof(b), "%lld", (long long)rev);
        json_object_set_new(meta_of(obj), "resourceVersion", json_string(b));
}

/*
 * The object's text, dumped outside the lock with a stand-in for the
 * revision it does not have yet; text_fill() puts the revision in.
 */
static char *text_template(struct orch_store *s, json_t *obj)
{
        json_object_set_new(meta_of(obj), "resourceVersion", json_string(s->rv_mark));
        return sw_json_dump(obj);
}

/* The template with revision `rev` for its stand-in; NULL if the stand-in is not there. */
static char *text_fill(const struct orch_store *s, const char *tmpl, int64_t rev)
{
        size_t mlen = strlen(s->rv_mark), tlen = strlen(tmpl), before;
        const char *at = strstr(tmpl, s->rv_mark);
        char num[24], *out;
        int nlen;

        if (!at)
                return NULL;
        nlen = snprintf(num, sizeof(num), "%lld", (long long)rev);
        before = (size_t)(at - tmpl);
        out = sw_xmalloc(tlen - mlen + (size_t)nlen + 1);
        memcpy(out, tmpl, before);
        memcpy(out + before, num, (size_t)nlen);
        memcpy(out + before + (size_t)nlen, at + mlen, tlen - before - mlen + 1);
        return out;
}

/* A cached statement of `sql` with an object's key bound to ?1-?3. */
static int key_stmt(sqlite3_stmt **st, struct orch_store *s, const char *sql, const char *resource,
                    const char *ns, const char *name, const char *what, struct sw_err *err)
{
        int rc = store_prepare(st, s, sql);

        if (rc != SQLITE_OK)
                return store_sqlite_err(s->db, rc, err, what);
        sqlite3_bind_text(*st, 1, resource, -1, SQLITE_STATIC);
        sqlite3_bind_text(*st, 2, ns, -1, SQLITE_STATIC);
        sqlite3_bind_text(*st, 3, name, -1, SQLITE_STATIC);
        return 0;
}

/* Read one row under the lock: the object (NULL when absent) and, if `text_out`, its text. */
static int row_get(json_t **out, char **text_out, struct orch_store *s, const char *resource,
                   const char *ns, const char *name, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc;

        *out = NULL;
        if (text_out)
                *text_out = NULL;
        if ((rc = key_stmt(
                     &st, s,
                     "SELECT body FROM objects WHERE resource=?1 AND namespace=?2 AND name=?3",
                     resource, ns, name, "get", err)) != 0)
                return rc;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *body = (const char *)sqlite3_column_text(st, 0);
                rc = sw_json_parse(out, body, (size_t)sqlite3_column_bytes(st, 0), 0, err);
                if (rc)
                        rc = sw_err_wrap(err, "stored %s %s/%s", resource, ns, name);
                else if (text_out)
                        *text_out = sw_xstrndup(body, (size_t)sqlite3_column_bytes(st, 0));
        } else if (rc == SQLITE_DONE) {
                rc = 0;
        } else {
                rc = store_sqlite_err(s->db, rc, err, "get");
        }
        store_release(st);
        return rc;
}

static int run_stmt(struct orch_store *s, sqlite3_stmt *st, const char *what, struct sw_err *err)
{
        int rc = sqlite3_step(st);

        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                rc = store_sqlite_err(s->db, rc, err, what);
        else
                rc = 0;
        store_release(st);
        return rc;
}

/*
 * The revision counter's row is written once per group commit
 * (batch_end), not per write: the file is locked for this process, its
 * only writer, so s->txn_rev is the counter.
 */
static int counter_put(struct orch_store *s, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = store_prepare(&st, s, "UPDATE counters SET value=?1 WHERE name='revision'");

        if (rc != SQLITE_OK)
                return store_sqlite_err(s->db, rc, err, "revision");
        sqlite3_bind_int64(st, 1, s->txn_rev);
        return run_stmt(s, st, "revision", err);
}

/*
 * Write an object's row: a new one (`insert`: SW_EEXIST when the key is
 * taken) or over the one there.
 */
static int row_write(struct orch_store *s, bool insert, const char *resource, const char *ns,
                     const char *name, const char *uid, int64_t rev, const char *body,
                     struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = key_stmt(&st, s,
                          insert ? "INSERT INTO objects (resource, namespace, name, uid, rev, body)"
                                   " VALUES (?1,?2,?3,?4,?5,?6)"
                                 : "INSERT INTO objects (resource, namespace, name, uid, rev, body)"
                                   " VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT (resource, namespace,"
                                   " name) DO UPDATE SET rev=excluded.rev, body=excluded.body",
                          resource, ns, name, "put", err);

        if (rc)
                return rc;
        sqlite3_bind_text(st, 4, uid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, rev);
        sqlite3_bind_text(st, 6, body, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                rc = 0;
        else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
                rc = sw_err_set(err, SW_EEXIST, "%s \"%s\" already exists", resource, name);
        else
                rc = store_sqlite_err(s->db, rc, err, "put");
        store_release(st);
        return rc;
}

/* The revision of a row as this transaction sees it; 0 when there is none. */
static int row_rev(int64_t *out, struct orch_store *s, const char *resource, const char *ns,
                   const char *name, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc;

        *out = 0;
        if ((rc = key_stmt(&st, s,
                           "SELECT rev FROM objects WHERE resource=?1 AND namespace=?2 AND name=?3",
                           resource, ns, name, "get", err)) != 0)
                return rc;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *out = sqlite3_column_int64(st, 0);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sqlite_err(s->db, rc, err, "get");
        store_release(st);
        return rc;
}

static int row_delete(struct orch_store *s, const char *resource, const char *ns, const char *name,
                      struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc;

        if ((rc = key_stmt(&st, s,
                           "DELETE FROM objects WHERE resource=?1 AND namespace=?2 AND name=?3",
                           resource, ns, name, "delete", err)) != 0)
                return rc;
        return run_stmt(s, st, "delete", err);
}

/* ---- group commit ---------------------------------------------------------- */

/*
 * This thread's hold on the group commit (orch_store_hold): the first and
 * last groups its writes went into.
 */
static _Thread_local struct {
        struct orch_store *s;
        uint64_t first, last;
        bool wrote;
} held;

/*
 * Take the mutex for a write and join the open transaction, or open one.
 * A write has no savepoint of its own: it checks what could refuse it
 * before it writes, and SQLite undoes a statement refused by a constraint
 * by itself; a failure of the disk fails the whole group (txn_err).
 */
static int write_enter(struct orch_store *s, struct sw_err *err)
{
        int rc;

        atomic_fetch_add(&s->writers, 1);
        pthread_mutex_lock(&s->mu);
        if (s->txn_open && s->txn_err)
                batch_end(s);
        if (!s->txn_open) {
                if ((rc = store_run(s, "BEGIN IMMEDIATE", err)) != 0)
                        return rc;
                s->txn_open = true;
                s->txn_rev = s->rev;
        }
        return 0;
}

/* Free staged events (their group failed). */
static void staged_free(struct orch_store *s)
{
        for (size_t i = 0; i < s->nstaged; i++)
                event_unref(s->staged[i]);
        s->nstaged = 0;
}

/* Move the staged events into the log and publish their revisions (mu held). */
static void staged_publish(struct orch_store *s)
{
        pthread_rwlock_wrlock(&s->ring_mu);
        for (size_t i = 0; i < s->nstaged; i++) {
                log_append(s, s->staged[i]); /* the staged reference is now the log's */
                /* store_unlock() wakes the watchers, past the mutex */
                s->wake_due |= 1u << 31 | 1u << wake_bucket(s->staged[i]->resource);
        }
        s->rev = s->txn_rev;
        pthread_rwlock_unlock(&s->ring_mu);
        atomic_store(&s->pub_rev, s->rev);
        s->nstaged = 0;
}

/*
 * Hand the checkpointing of the WAL to the checkpointer (mu held) each
 * time it has grown by STORE_CHECKPOINT_PAGES. Counted from the last
 * request, not from the WAL's start: under steady writes the WAL restarts
 * only now and then, and asking after every commit past the mark had the
 * checkpointer sync the files for a few pages each time.
 */
static void maybe_checkpoint(struct orch_store *s)
{
        bool behind;

        if (s->wal_pages < s->wal_asked)
                s->wal_asked = 0; /* the WAL restarted */
        if (s->wal_pages - s->wal_asked < STORE_CHECKPOINT_PAGES)
                return;
        s->wal_asked = s->wal_pages;
        /* The checkpointer's work, unless the WAL has grown past its bound. */
        behind = s->wal_pages >= STORE_WAL_MAX_PAGES;
        if (s->ckpt_running && !behind) {
                pthread_mutex_lock(&s->ckpt_mu);
                s->ckpt_due = true;
                pthread_cond_signal(&s->ckpt_cv);
                pthread_mutex_unlock(&s->ckpt_mu);
                return;
        }
        /*
         * Best effort, as SQLite's own: a failure is retried next time.
         * Behind, wait for the checkpointer and empty the WAL.
         */
        sqlite3_wal_checkpoint_v2(s->db, NULL,
                                  behind ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
                                  NULL, NULL);
}

/* Commit the open transaction (mu held): publish its events, or fail them all. */
static void batch_end(struct orch_store *s)
{
        struct sw_err err = SW_ERR_INIT;
        size_t slot = (size_t)(s->batch % STORE_BATCH_RING);
        int rc = 0;

        if (s->txn_err) {
                store_run(s, "ROLLBACK", NULL);
                staged_free(s);
                rc = sw_err_set(&err, s->txn_err, "%s", s->txn_msg);
                s->txn_err = 0;
        } else if (s->nstaged == 0) {
                store_run(s, "ROLLBACK", NULL); /* nothing was written */
        } else if ((rc = counter_put(s, &err)) != 0 || (rc = store_run(s, "COMMIT", &err)) != 0) {
                store_run(s, "ROLLBACK", NULL);
                staged_free(s);
        } else {
                staged_publish(s);
                maybe_checkpoint(s);
        }
        s->txn_open = false;
        s->batch_rc[slot] = rc;
        snprintf(s->batch_msg[slot], sizeof(s->batch_msg[slot]), "%s", rc ? err.msg : "");
        if (rc) {
                s->failed = s->batch + 1;
                snprintf(s->failed_msg, sizeof(s->failed_msg), "%s", err.msg);
        }
        s->batch++;
        pthread_cond_broadcast(&s->batch_cv);
}

/*
 * End a write that entered with write_enter(): if more writers are on
 * their way and the group is not full, leave the transaction open for
 * them and (if this write staged an event) wait until one of them commits
 * it; else commit now. Returns the outcome of the commit of a write that
 * staged an event, 0 otherwise. Unlocks the mutex.
 */
static int write_leave(struct orch_store *s, bool wrote, struct sw_err *err)
{
        json_t *unshared = NULL;
        uint64_t mine = s->batch;
        int rc = 0;

        atomic_fetch_sub(&s->writers, 1);
        if (held.s == s) {
                /* Held: the group stays open past this write, and release waits. */
                if (wrote) {
                        if (!held.wrote)
                                held.first = mine;
                        held.last = mine;
                        held.wrote = true;
                }
                if (s->txn_open && s->nstaged >= STORE_BATCH_MAX)
                        batch_end(s);
                goto out;
        }
        if (wrote && s->txn_open && atomic_load(&s->writers) == 0 && s->nstaged < 4) {
                /*
                 * A small group and nobody queued: let the threads that are
                 * about to write run first, so that they join this commit.
                 */
                pthread_mutex_unlock(&s->mu);
                sched_yield();
                pthread_mutex_lock(&s->mu);
        }
        if (s->txn_open && s->batch == mine) {
                if (atomic_load(&s->writers) == 0 || s->nstaged >= STORE_BATCH_MAX)
                        batch_end(s);
                else if (wrote)
                        while (s->batch == mine)
                                pthread_cond_wait(&s->batch_cv, &s->mu);
        }
        if (wrote && s->batch_rc[mine % STORE_BATCH_RING] != 0) {
                rc = s->batch_rc[mine % STORE_BATCH_RING];
                sw_err_set(err, rc, "%s", s->batch_msg[mine % STORE_BATCH_RING]);
        }
out:
        if (json_array_size(s->unshared)) {
                unshared = s->unshared;
                s->unshared = json_array();
        }
        store_unlock(s);
        json_decref(unshared); /* past the mutex: it frees */
        if (wrote)
                json_sweep(s, atomic_load(&s->pub_rev));
        return rc;
}

void orch_store_hold(struct orch_store *s)
{
        if (held.s)
                return; /* one hold at a time; the inner one is part of it */
        memset(&held, 0, sizeof(held));
        held.s = s;
        atomic_fetch_add(&s->writers, 1);
}

int orch_store_release(struct orch_store *s, struct sw_err *err)
{
        int rc = 0;

        if (held.s != s)
                return 0;
        held.s = NULL;
        pthread_mutex_lock(&s->mu);
        atomic_fetch_sub(&s->writers, 1);
        /*
         * The last writer out commits what is open, whoever staged it: the
         * held writes may have gone into an earlier group, while a later
         * one waits for a commit.
         */
        if (s->txn_open && atomic_load(&s->writers) == 0)
                batch_end(s);
        if (held.wrote) {
                while (s->batch <= held.last)
                        pthread_cond_wait(&s->batch_cv, &s->mu);
                if (s->failed > held.first)
                        rc = sw_err_set(err, SW_EIO, "writes not committed: %s", s->failed_msg);
        }
        store_unlock(s);
        return rc;
}

/* Take the mutex to read with the writer's connection: commit what is open first. */
static void read_lock(struct orch_store *s)
{
        pthread_mutex_lock(&s->mu);
        if (s->txn_open)
                batch_end(s);
}

/*
 * Write `obj` (or remove its row when `type` is DELETED) with the next
 * revision, in the open transaction (write_enter); its event is staged for
 * the log until the group commits. `tmpl` is the object's text from
 * text_template(), dumped before the lock, or NULL to dump it here; `insert`
 * refuses an existing key (SW_EEXIST). On failure nothing of this write
 * stays; a failure of the disk also fails the rest of its group.
 */
static int commit_write(struct orch_store *s, const char *type, const char *resource,
                        const char *ns, const char *name, json_t *obj, const char *tmpl,
                        bool insert, char **prev, json_t *prev_obj, struct sw_err *err)
{
        int64_t rev = s->txn_rev + 1;
        const char *uid = sw_json_str(json_object_get(obj, "metadata"), "uid", "");
        char *body = NULL;
        bool shared;
        int rc;

        set_rv(obj, rev);
        body = tmpl ? text_fill(s, tmpl, rev) : NULL;
        if (!body)
                body = sw_json_dump(obj);
        if (strlen(body) > STORE_BODY_MAX) {
                rc = sw_err_set(err, SW_ETOOBIG, "object %s/%s is larger than %zu bytes", ns, name,
                                STORE_BODY_MAX);
                goto undo;
        }
        if (strcmp(type, "DELETED") == 0)
                rc = row_delete(s, resource, ns, name, err);
        else
                rc = row_write(s, insert, resource, ns, name, uid, rev, body, err);
        if (rc) {
                /* Refused by a key (SW_EEXIST), SQLite undid the statement; else the group fails. */
                if (rc != SW_EEXIST && !s->txn_err) {
                        s->txn_err = rc;
                        snprintf(s->txn_msg, sizeof(s->txn_msg), "%s", err->msg);
                }
                goto undo;
        }
        s->txn_rev = rev;
        if (s->nstaged == s->staged_cap) {
                s->staged_cap = s->staged_cap ? s->staged_cap * 2 : 16;
                s->staged = sw_xrealloc(s->staged, s->staged_cap * sizeof(*s->staged));
        }
        /*
         * The event takes over the text and `prev`, and shares `obj` (which
         * the caller gets back, not to be changed) with in-process watchers.
         */
        shared = atomic_load(&s->kinds[wake_bucket(resource)].local) > 0;
        s->staged[s->nstaged++] = event_new(rev, type, resource, ns, name, body,
                                            strcmp(type, "MODIFIED") == 0 && prev ? *prev : NULL,
                                            shared ? obj : NULL, shared ? prev_obj : NULL);
        if (prev && strcmp(type, "MODIFIED") == 0)
                *prev = NULL;
        return 0;
undo:
        free(body);
        return rc;
}

static const char *obj_ns(const json_t *obj)
{
        return sw_json_str(json_object_get(obj, "metadata"), "namespace", "");
}

static const char *obj_name(const json_t *obj)
{
        return sw_json_str(json_object_get(obj, "metadata"), "name", "");
}

/* Step `st` (SELECT body, rev of one key, bound) on `db`: a copy of the text (NULL when absent). */
static int text_row(char **text_out, size_t *len_out, int64_t *rev_out, sqlite3 *db,
                    sqlite3_stmt *st, struct sw_err *err)
{
        int rc = sqlite3_step(st);

        *text_out = NULL;
        *len_out = 0;
        *rev_out = 0;
        if (rc == SQLITE_ROW) {
                *len_out = (size_t)sqlite3_column_bytes(st, 0);
                *text_out = sw_xstrndup((const char *)sqlite3_column_text(st, 0), *len_out);
                *rev_out = sqlite3_column_int64(st, 1);
                rc = 0;
        } else if (rc == SQLITE_DONE) {
                rc = 0;
        } else {
                rc = store_sqlite_err(db, rc, err, "get");
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
}

/*
 * A committed row read on the reader connection, outside the writers'
 * lock: its text (NULL when absent) and revision. Without the reader, on
 * the writer's connection.
 */
static int reader_get(char **text_out, size_t *len_out, int64_t *rev_out, struct orch_store *s,
                      const char *resource, const char *ns, const char *name, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc;

        *text_out = NULL;
        if (!s->rdb) {
                read_lock(s);
                rc = key_stmt(&st, s,
                              "SELECT body, rev FROM objects WHERE resource=?1 AND namespace=?2 "
                              "AND name=?3",
                              resource, ns, name, "get", err);
                if (rc == 0)
                        rc = text_row(text_out, len_out, rev_out, s->db, st, err);
                store_unlock(s);
                return rc;
        }
        pthread_mutex_lock(&s->rmu);
        sqlite3_bind_text(s->rget, 1, resource, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->rget, 2, ns, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->rget, 3, name, -1, SQLITE_STATIC);
        rc = text_row(text_out, len_out, rev_out, s->rdb, s->rget, err);
        pthread_mutex_unlock(&s->rmu);
        return rc;
}

int orch_store_get(json_t **out, struct orch_store *s, const char *resource, const char *ns,
                   const char *name, struct sw_err *err)
{
        json_t *obj = NULL, *shared = NULL;
        char *text = NULL;
        size_t len = 0;
        int64_t rev = 0;
        struct orch_event *ev = key_latest(&shared, s, resource, ns, name);
        int rc = 0;

        if (ev) {
                /* The newest event of the key: a copy of its object, or its text. */
                if (shared)
                        obj = sw_json_copy(shared);
                else
                        rc = sw_json_parse(&obj, ev->body, strlen(ev->body), 0, err);
                json_decref(shared);
                event_unref(ev);
                if (!obj)
                        return rc ? sw_err_wrap(err, "stored %s %s/%s", resource, ns, name)
                                  : sw_err_set(err, SW_EINTERNAL, "out of memory");
                *out = obj;
                return 0;
        }
        rc = reader_get(&text, &len, &rev, s, resource, ns, name, err);

        /* Parsed past the lock. */
        if (rc == 0 && text && (rc = sw_json_parse(&obj, text, len, 0, err)) != 0)
                sw_err_wrap(err, "stored %s %s/%s", resource, ns, name);
        free(text);
        if (rc)
                return rc;
        if (!obj)
                return sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", resource, name);
        *out = obj;
        return 0;
}

int orch_store_create(json_t **out, struct orch_store *s, const char *resource, const json_t *in,
                      unsigned flags, struct sw_err *err)
{
        json_t *obj = flags & ORCH_STORE_IN_PLACE ? json_incref((json_t *)in) : sw_json_copy(in);
        json_t *meta;
        char uid[40], ts[32], *tmpl;
        const char *ns, *name;
        bool wrote = false;
        int rc, lrc;

        meta = meta_of(obj);
        ns = obj_ns(obj);
        name = obj_name(obj);
        if (!*name) {
                json_decref(obj);
                return sw_err_set(err, SW_EINVAL,
                                  "metadata.name: Required value: name is required");
        }
        store_uid(uid, sizeof(uid));
        orch_time_fmt(ts, sizeof(ts), sw_now_ms());
        json_object_set_new(meta, "uid", json_string(uid));
        json_object_set_new(meta, "creationTimestamp", json_string(ts));
        json_object_del(meta, "deletionTimestamp");
        json_object_del(meta, "deletionGracePeriodSeconds");
        if (flags & ORCH_STORE_GENERATION)
                json_object_set_new(meta, "generation", json_integer(1));
        else
                json_object_del(meta, "generation");
        /* The text is made before the lock; under it, only the revision goes in. */
        tmpl = text_template(s, obj);
        if ((rc = write_enter(s, err)) == 0) {
                rc = commit_write(s, "ADDED", resource, ns, name, obj, tmpl, true, NULL, NULL, err);
                wrote = rc == 0;
        }
        if ((lrc = write_leave(s, wrote, err)) != 0)
                rc = lrc;
        free(tmpl);
        if (rc) {
                json_decref(obj);
                return rc;
        }
        *out = obj;
        return 0;
}

static void copy_meta_field(json_t *dst_meta, const json_t *src_meta, const char *key)
{
        json_t *v = json_object_get(src_meta, key);

        if (v)
                json_object_set(dst_meta, key, v);
        else
                json_object_del(dst_meta, key);
}

static bool has_finalizers(const json_t *obj)
{
        return json_array_size(json_object_get(json_object_get(obj, "metadata"), "finalizers")) > 0;
}

/* Equal apart from resourceVersion and managedFields timestamps. */
static bool same_content(const json_t *a, const json_t *b)
{
        const char *k;
        json_t *x, *y, *e, *v;
        bool eq;
        size_t i;

        /* Most updates change something outside metadata: no copies for them. */
        if (json_object_size(a) != json_object_size(b))
                return false;
        json_object_foreach((json_t *)a, k, v)
        {
                if (strcmp(k, "metadata") != 0 && !json_equal(v, json_object_get(b, k)))
                        return false;
        }
        x = sw_json_copy(json_object_get(a, "metadata"));
        y = sw_json_copy(json_object_get(b, "metadata"));
        if (!json_is_object(x) || !json_is_object(y)) {
                eq = (!x && !y) || json_equal(x, y);
                json_decref(x);
                json_decref(y);
                return eq;
        }
        json_object_del(x, "resourceVersion");
        json_object_del(y, "resourceVersion");
        /* A managedFields entry whose only change is its time is no change. */
        json_array_foreach(json_object_get(x, "managedFields"), i, e) json_object_del(e, "time");
        json_array_foreach(json_object_get(y, "managedFields"), i, e) json_object_del(e, "time");
        eq = json_equal(x, y);
        json_decref(x);
        json_decref(y);
        return eq;
}

/*
 * Make `obj` the update of `old`: check the resourceVersion it asks for,
 * keep what an update may not change, bump the generation. *same when
 * nothing but the version would change; *gone when the update ends a
 * deletion (no finalizers left, no grace period).
 */
static int update_prepare(json_t *obj, const json_t *old, const char *resource, unsigned flags,
                          bool *same, bool *gone, struct sw_err *err)
{
        json_t *meta = meta_of(obj);
        const json_t *old_meta = json_object_get(old, "metadata");
        const char *want_rv = sw_json_str(meta, "resourceVersion", "");

        if (*want_rv && strcmp(want_rv, sw_json_str(old_meta, "resourceVersion", "")) != 0)
                return sw_err_set(err, SW_ECONFLICT,
                                  "Operation cannot be fulfilled on %s \"%s\": the object has "
                                  "been modified; please apply your changes to the latest "
                                  "version and try again",
                                  resource, obj_name(obj));
        copy_meta_field(meta, old_meta, "uid");
        copy_meta_field(meta, old_meta, "creationTimestamp");
        copy_meta_field(meta, old_meta, "deletionTimestamp");
        copy_meta_field(meta, old_meta, "deletionGracePeriodSeconds");
        if (flags & ORCH_STORE_GENERATION) {
                int64_t gen = sw_json_int(old_meta, "generation", 1);
                if (!json_equal(json_object_get(old, "spec"), json_object_get(obj, "spec")))
                        gen++;
                json_object_set_new(meta, "generation", json_integer(gen));
        } else {
                json_object_del(meta, "generation");
        }
        json_object_set(meta, "resourceVersion", json_object_get(old_meta, "resourceVersion"));
        *same = same_content(obj, old);
        *gone = !*same && json_object_get(meta, "deletionTimestamp") && !has_finalizers(obj) &&
                sw_json_int(meta, "deletionGracePeriodSeconds", 0) == 0;
        return 0;
}

#define STORE_RETRY (-1) /* an optimistic write found the row changed: take the lock */

/*
 * A read-modify-write with the reading, the changing and the dumping done
 * before the writers' lock: under it, the write only checks that the row
 * is still at the revision read, and writes. The object comes from the
 * log's index when it holds the newest event of the key (parsed already
 * when in-process watchers share it), else from the committed row on the
 * reader connection. Returns STORE_RETRY when the row changed meanwhile,
 * or when the outcome is anything but a plain change (an error, no change,
 * a deletion), which the caller then decides under the lock. `change` is
 * handed the object read in *old (`shared`: the log's, not to be changed)
 * and sets *obj to the new object; it may take *old for it (setting *old
 * to NULL) when not shared. What is left in *old becomes the event's
 * object before.
 */
static int write_optimistic(json_t **out, struct orch_store *s, const char *resource,
                            const char *ns, const char *name,
                            int (*change)(json_t **obj, json_t **old, bool shared, void *arg),
                            void *arg, struct sw_err *err)
{
        json_t *obj = NULL, *old = NULL;
        struct orch_event *ev;
        char *text = NULL, *tmpl = NULL;
        size_t len = 0;
        int64_t rev = 0, now = 0;
        bool wrote = false;
        int rc, lrc;

        if ((ev = key_latest(&old, s, resource, ns, name)) != NULL) {
                text = sw_xstrdup(ev->body);
                len = strlen(text);
                rev = ev->rev;
                event_unref(ev);
        } else if (reader_get(&text, &len, &rev, s, resource, ns, name, err) != 0 || !text) {
                sw_err_clear(err);
                free(text);
                return STORE_RETRY;
        }
        if (old) {
                rc = change(&obj, &old, true, arg);
        } else {
                old = json_loadb(text, len, 0, NULL);
                rc = old ? change(&obj, &old, false, arg) : -1;
        }
        if (rc != 0 || !obj) {
                rc = STORE_RETRY;
                goto out;
        }
        tmpl = text_template(s, obj);
        if ((rc = write_enter(s, err)) == 0) {
                if ((rc = row_rev(&now, s, resource, ns, name, err)) != 0 || now != rev) {
                        if (rc == 0)
                                rc = STORE_RETRY;
                } else {
                        rc = commit_write(s, "MODIFIED", resource, ns, name, obj, tmpl, false,
                                          &text, old, err);
                        wrote = rc == 0;
                }
        }
        if ((lrc = write_leave(s, wrote, err)) != 0)
                rc = lrc;
out:
        free(text);
        free(tmpl);
        json_decref(old);
        if (rc) {
                json_decref(obj);
                return rc;
        }
        *out = obj;
        return 0;
}

struct update_arg {
        const json_t *in;
        const char *resource;
        unsigned flags;
};

/* write_optimistic's change for an update: `in`, if it is a plain change of `old`. */
static int update_change(json_t **obj, json_t **old, bool shared, void *arg)
{
        struct update_arg *u = arg;
        struct sw_err ignored = SW_ERR_INIT;
        bool same = false, gone = false;

        (void)shared; /* `old` is only read */
        *obj = sw_json_copy(u->in);
        if (update_prepare(*obj, *old, u->resource, u->flags, &same, &gone, &ignored) != 0)
                return -1;
        return same || gone ? -1 : 0;
}

int orch_store_update(json_t **out, bool *gone_out, struct orch_store *s, const char *resource,
                      const json_t *in, unsigned flags, struct sw_err *err)
{
        json_t *obj, *old = NULL;
        const char *ns, *name;
        char *old_text = NULL;
        bool gone = false, same = false, wrote = false;
        struct update_arg u = {in, resource, flags};
        int rc, lrc;

        rc = write_optimistic(out, s, resource, obj_ns(in), obj_name(in), update_change, &u, err);
        if (rc != STORE_RETRY) {
                if (rc == 0 && gone_out)
                        *gone_out = false;
                return rc;
        }
        obj = sw_json_copy(in);
        ns = obj_ns(obj);
        name = obj_name(obj);
        if ((rc = write_enter(s, err)) != 0)
                goto out;
        if ((rc = row_get(&old, &old_text, s, resource, ns, name, err)) != 0)
                goto out;
        if (!old) {
                rc = sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", resource, name);
                goto out;
        }
        if ((rc = update_prepare(obj, old, resource, flags, &same, &gone, err)) != 0)
                goto out;
        if (same) {
                json_decref(obj);
                obj = old;
                old = NULL;
                goto out;
        }
        if (gone)
                rc = commit_write(s, "DELETED", resource, ns, name, obj, NULL, false, NULL, NULL,
                                  err);
        else
                rc = commit_write(s, "MODIFIED", resource, ns, name, obj, NULL, false, &old_text,
                                  old, err);
        wrote = rc == 0;
out:
        if ((lrc = write_leave(s, wrote, err)) != 0)
                rc = lrc;
        json_decref(old);
        free(old_text);
        if (rc) {
                json_decref(obj);
                return rc;
        }
        if (gone_out)
                *gone_out = gone;
        *out = obj;
        return 0;
}

struct mutate_arg {
        int (*fn)(json_t *obj, void *arg, struct sw_err *err);
        void *arg;
};

/*
 * A copy of `obj` of its own down to its top-level members' keys, sharing
 * everything below them (what orch_store_mutate's function may change).
 */
static json_t *copy_top(const json_t *obj)
{
        json_t *c = json_copy((json_t *)obj), *v;
        const char *k;

        json_object_foreach((json_t *)obj, k, v)
        {
                if (json_is_object(v))
                        json_object_set_new(c, k, json_copy(v));
        }
        return c;
}

/* write_optimistic's change for a mutation: the object, changed by the caller's function. */
static int mutate_change(json_t **obj, json_t **old, bool shared, void *arg)
{
        struct mutate_arg *m = arg;
        struct sw_err ignored = SW_ERR_INIT;

        if (shared) {
                *obj = copy_top(*old);
        } else {
                *obj = *old;
                *old = NULL;
        }
        return m->fn(*obj, m->arg, &ignored);
}

int orch_store_mutate(json_t **out, struct orch_store *s, const char *resource, const char *ns,
                      const char *name, int (*fn)(json_t *obj, void *arg, struct sw_err *err),
                      void *arg, struct sw_err *err)
{
        json_t *obj = NULL;
        char *old_text = NULL;
        struct mutate_arg m = {fn, arg};
        bool wrote = false;
        int rc, lrc;

        rc = write_optimistic(&obj, s, resource, ns, name, mutate_change, &m, err);
        if (rc != STORE_RETRY)
                goto done;
        if ((rc = write_enter(s, err)) != 0)
                goto out;
        if ((rc = row_get(&obj, &old_text, s, resource, ns, name, err)) != 0)
                goto out;
        if (!obj) {
                rc = sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", resource, name);
                goto out;
        }
        if ((rc = fn(obj, arg, err)) != 0)
                goto out;
        rc = commit_write(s, "MODIFIED", resource, ns, name, obj, NULL, false, &old_text, NULL,
                          err);
        wrote = rc == 0;
out:
        if ((lrc = write_leave(s, wrote, err)) != 0)
                rc = lrc;
        free(old_text);
done:
        if (rc) {
                json_decref(obj);
                return rc;
        }
        if (out)
                *out = obj;
        else
                json_decref(obj);
        return 0;
}

int orch_store_delete(json_t **out, bool *gone_out, struct orch_store *s, const char *resource,
                      const char *ns, const char *name, const char *uid, const char *rv,
                      struct sw_err *err)
{
        return orch_store_delete_graceful(out, gone_out, s, resource, ns, name, uid, rv, 0, err);
}

int orch_store_delete_graceful(json_t **out, bool *gone_out, struct orch_store *s,
                               const char *resource, const char *ns, const char *name,
                               const char *uid, const char *rv, int64_t grace_s, struct sw_err *err)
{
        json_t *obj = NULL, *meta;
        bool gone = false, wrote = false;
        int rc, lrc;

        if ((rc = write_enter(s, err)) != 0)
                goto out;
        if ((rc = row_get(&obj, NULL, s, resource, ns, name, err)) != 0)
                goto out;
        if (!obj) {
                rc = sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", resource, name);
                goto out;
        }
        meta = meta_of(obj);
        if (uid && *uid && strcmp(uid, sw_json_str(meta, "uid", "")) != 0) {
                rc = sw_err_set(err, SW_ECONFLICT,
                                "Precondition failed: UID in precondition: %s, UID in object "
                                "meta: %s",
                                uid, sw_json_str(meta, "uid", ""));
                goto out;
        }
        if (rv && *rv && strcmp(rv, sw_json_str(meta, "resourceVersion", "")) != 0) {
                rc = sw_err_set(err, SW_ECONFLICT,
                                "Precondition failed: ResourceVersion in precondition: %s, "
                                "ResourceVersion in object meta: %s",
                                rv, sw_json_str(meta, "resourceVersion", ""));
                goto out;
        }
        if (grace_s < 0)
                grace_s = 0;
        if (json_object_get(meta, "deletionTimestamp") &&
            (grace_s >= sw_json_int(meta, "deletionGracePeriodSeconds", 0) ||
             has_finalizers(obj)) &&
            !(grace_s == 0 && !has_finalizers(obj))) {
                goto out; /* already being deleted at least as soon: nothing to write */
        }
        if (grace_s > 0 || has_finalizers(obj)) {
                char ts[32];
                orch_time_fmt(ts, sizeof(ts), sw_now_ms() + grace_s * 1000);
                json_object_set_new(meta, "deletionTimestamp", json_string(ts));
                json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(grace_s));
                rc = commit_write(s, "MODIFIED", resource, ns, name, obj, NULL, false, NULL, NULL,
                                  err);
        } else {
                gone = true;
                rc = commit_write(s, "DELETED", resource, ns, name, obj, NULL, false, NULL, NULL,
                                  err);
        }
        wrote = rc == 0;
out:
        if ((lrc = write_leave(s, wrote, err)) != 0)
                rc = lrc;
        if (rc) {
                json_decref(obj);
                return rc;
        }
        if (gone_out)
                *gone_out = gone;
        *out = obj;
        return 0;
}

int orch_store_list(json_t **items_out, int64_t *rev_out, bool *more_out, struct orch_store *s,
                    const char *resource, const struct orch_list_query *q, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        json_t *items = json_array();
        bool more = false;
        int64_t rev;
        int rc;
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT body FROM objects WHERE resource=?1%s%s ORDER BY namespace, name",
                 q->ns ? " AND namespace=?2" : "",
                 q->after_ns ? " AND (namespace, name) > (?3, ?4)" : "");
        read_lock(s);
        rev = s->rev;
        rc = store_prepare(&st, s, sql);
        if (rc != SQLITE_OK) {
                rc = store_sqlite_err(s->db, rc, err, "list");
                goto out;
        }
        sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
        if (q->ns)
                sqlite3_bind_text(st, 2, q->ns, -1, SQLITE_STATIC);
        if (q->after_ns) {
                sqlite3_bind_text(st, 3, q->after_ns, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, q->after_name ? q->after_name : "", -1, SQLITE_STATIC);
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *obj = NULL;
                const char *body = (const char *)sqlite3_column_text(st, 0);

                int prc = sw_json_parse(&obj, body, (size_t)sqlite3_column_bytes(st, 0), 0, err);

                if (prc) {
                        rc = prc;
                        goto out;
                }
                if (q->match && !q->match(obj, q->arg)) {
                        json_decref(obj);
                        continue;
                }
                if (q->limit > 0 && (int64_t)json_array_size(items) >= q->limit) {
                        json_decref(obj);
                        more = true;
                        break;
                }
                json_array_append_new(items, obj);
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                rc = store_sqlite_err(s->db, rc, err, "list");
                goto out;
        }
        rc = 0;
out:
        store_release(st);
        store_unlock(s);
        if (rc) {
                json_decref(items);
                return rc;
        }
        *items_out = items;
        *rev_out = rev;
        *more_out = more;
        return 0;
}

int orch_store_events_raw(struct orch_event ***out, size_t *n_out, int64_t *scanned_out,
                          struct orch_store *s, const char *resource, int64_t after, int max,
                          struct sw_err *err)
{
        struct orch_event **evs = NULL;
        int64_t scanned = after, oldest, floor;
        size_t n = 0, cap = 0;

        pthread_rwlock_rdlock(&s->ring_mu);
        oldest = s->rev - (int64_t)s->ring_count + 1;
        floor = resource ? s->dropped[drop_bucket(resource)] : oldest - 1;
        if (after < floor) {
                pthread_rwlock_unlock(&s->ring_mu);
                return sw_err_set(err, SW_ENOTFOUND, "too old resource version: %lld (%lld)",
                                  (long long)after, (long long)floor + 1);
        }
        /* Below the oldest event, nothing of `resource` is left to miss. */
        for (int64_t r = after + 1 > oldest ? after + 1 : oldest; r <= s->rev && (int)n < max;
             r++) {
                struct orch_event *ev = s->ring[r % (int64_t)s->ring_cap];
                scanned = r;
                if (resource && strcmp(ev->resource, resource) != 0)
                        continue;
                if (n == cap) {
                        /* Grown as needed: most wake-ups carry one event. */
                        cap = cap ? cap * 2 : 4;
                        evs = sw_xrealloc(evs, cap * sizeof(*evs));
                }
                atomic_fetch_add(&ev->refs, 1);
                evs[n++] = ev;
        }
        pthread_rwlock_unlock(&s->ring_mu);
        *out = evs;
        *n_out = n;
        *scanned_out = scanned;
        return 0;
}

int orch_store_events(json_t **out, struct orch_store *s, const char *resource, int64_t after,
                      int max, struct sw_err *err)
{
        struct orch_event **evs = NULL;
        json_t *events;
        int64_t scanned;
        size_t n = 0;
        int rc;

        if ((rc = orch_store_events_raw(&evs, &n, &scanned, s, resource, after, max, err)) != 0)
                return rc;
        events = json_array();
        for (size_t i = 0; i < n; i++) {
                json_t *obj = json_loads(evs[i]->body, 0, NULL);
                if (!obj) {
                        rc = sw_err_set(err, SW_ECORRUPT, "event %lld does not parse",
                                        (long long)evs[i]->rev);
                        break;
                }
                json_array_append_new(events,
                                      json_pack("{s:I,s:s,s:s,s:o}", "rev", (json_int_t)evs[i]->rev,
                                                "type", evs[i]->type, "resource", evs[i]->resource,
                                                "object", obj));
        }
        orch_events_free(evs, n);
        if (rc) {
                json_decref(events);
                return rc;
        }
        *out = events;
        return 0;
}

int64_t orch_store_wait(struct orch_store *s, int64_t after, int64_t timeout_ms)
{
        return wake_word_wait(s, &s->all, after, sw_mono_ms() + timeout_ms);
}

int64_t orch_store_wait_kind(struct orch_store *s, const char *resource, int64_t after,
                             int64_t timeout_ms)
{
        return wake_word_wait(s, &s->kinds[wake_bucket(resource)], after,
                              sw_mono_ms() + timeout_ms);
}

void orch_store_wake(struct orch_store *s)
{
        atomic_store(&s->woken, true);
        store_wake_all(s);
}

int orch_store_dependents(json_t **out, struct orch_store *s, const char *uid, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        json_t *deps = json_array();
        int rc;

        read_lock(s);
        rc = store_prepare(&st, s, "SELECT resource, body FROM objects WHERE instr(body, ?1) > 0");
        if (rc != SQLITE_OK) {
                rc = store_sqlite_err(s->db, rc, err, "dependents");
                goto out;
        }
        sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *obj = NULL, *refs, *ref;
                const char *body = (const char *)sqlite3_column_text(st, 1);
                bool owned = false;
                size_t i;

                rc = sw_json_parse(&obj, body, (size_t)sqlite3_column_bytes(st, 1), 0, err);
                if (rc)
                        goto out;
                refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
                json_array_foreach(refs, i, ref) owned |=
                        strcmp(sw_json_str(ref, "uid", ""), uid) == 0;
                if (owned)
                        json_array_append_new(deps,
                                              json_pack("{s:s,s:o}", "resource",
                                                        (const char *)sqlite3_column_text(st, 0),
                                                        "object", obj));
                else
                        json_decref(obj);
        }
        rc = rc == SQLITE_DONE ? 0 : store_sqlite_err(s->db, rc, err, "dependents");
out:
        store_release(st);
        store_unlock(s);
        if (rc) {
                json_decref(deps);
                return rc;
        }
        *out = deps;
        return 0;
}
