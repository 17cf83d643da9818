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
 * A write is optimistic and staged: the object is read and changed with no
 * lock held; then, under a short lock (stage_mu), the write is checked
 * against the object's newest revision (staged, in the log, or committed),
 * takes the next revision and joins the open group in memory. A group's
 * rows go into SQLite in one IMMEDIATE transaction on the writer's
 * connection, under its own mutex (mu), in whichever thread commits it,
 * while the next group gathers: the connection's work no longer stalls
 * every writer. The file is locked (flock) for this process, the store's
 * only writer. Single-object reads and the checks against committed rows
 * take a reader connection; checkpoints run on a third connection in their
 * own thread, so that copying the WAL into the database and syncing both
 * never holds mu. The in-memory ring of recent events has its own
 * reader-writer lock (lock order: mu, stage_mu, then ring_mu), so that
 * many watchers copy events out at the same time.
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
#define STORE_BATCH_MAX 64          /* staged writes that make a group full: it commits */
#define STORE_JSON_KEEP 512         /* latest revisions whose parsed objects are shared */
#define STORE_JSON_STRIPES 16       /* locks over the events' parsed objects */
#define STORE_DROP_BUCKETS 256      /* resources told apart by the log's drop floors */

struct orch_store {
        pthread_mutex_t mu; /* guards db; taken before stage_mu and ring_mu */
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
         * their sweep wait in `unshared` for commit_unlock to free them
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
        bool ckpt_active; /* in a checkpoint; ckpt_done_cv when it ends */
        pthread_cond_t ckpt_done_cv;
        pthread_mutex_t ckpt_mu;
        pthread_cond_t ckpt_cv;
        /* A connection for single-object reads, so that they do not queue on mu. */
        sqlite3 *rdb;
        sqlite3_stmt *rget, *rrev;
        pthread_mutex_t rmu; /* guards rdb, rget and rrev */
        int lock_fd;         /* flock()ed: one process writes this store */
        /*
         * Staged writes and group commit (write_row, group_commit): a
         * write is checked and staged under stage_mu, in memory, and
         * written to SQLite with the rest of its group later, by whichever
         * thread commits it, under mu, while the next group gathers. Lock
         * order: mu, stage_mu, then ring_mu or rmu. Guarded by stage_mu,
         * but for `writers` (threads in or on their way into a write, and
         * holds).
         */
        pthread_mutex_t stage_mu;
        atomic_int writers;
        int64_t next_rev;        /* the last revision staged */
        struct staged_row *rows; /* staged, not yet committed, in revision order */
        size_t nrows, rows_cap;
        size_t nopen;    /* rows in the open group */
        bool commit_due; /* a thread is on its way to commit the open group */
        /* The newest staged event of each object that has one, by key (pend_next chains). */
        struct orch_event **pend;
        size_t pend_mask;
        uint64_t open_batch; /* the group new writes join */
        uint64_t batch;      /* groups below it have ended */
        uint64_t failed;     /* the last group that failed, plus one; 0 when none has */
        char failed_msg[SW_ERR_MSG_MAX];
        pthread_cond_t batch_cv; /* with stage_mu: a group has ended */
        /*
         * Keys that may exist: two bits per key hash (a Bloom filter), set
         * for every key in the file at open and for every create staged
         * since, never cleared. A create whose bits are not both set needs
         * no question to SQLite to know its key is free.
         */
        _Atomic uint64_t *seen;
        uint64_t seen_bits; /* a power of two */
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

/* Where a commit tells a waiting writer that its write failed. */
struct row_outcome {
        int rc;
        char msg[SW_ERR_MSG_MAX];
};

/* A write staged for its group's commit. */
struct staged_row {
        struct orch_event *ev; /* its event, which the log takes at the commit */
        char *uid;
        bool insert;             /* a create: the key must be free */
        struct row_outcome *out; /* its waiting writer's, or NULL (held) */
};
static void rows_free(struct staged_row *rows, size_t n);
static void seen_add(struct orch_store *s, const char *resource, const char *ns, const char *name);

static unsigned wake_bucket(const char *resource);
static unsigned drop_bucket(const char *resource);

/* ---- texts ------------------------------------------------------------------- */

/*
 * Objects' texts are counted references: an object's body in its event is
 * also the text before in the event of the write that follows, and the
 * text a write reads to start from, without a copy.
 */
struct text_hdr {
        atomic_int refs;
        int unused; /* the text after it stays 8-aligned */
};

static char *text_new(const char *s, size_t n)
{
        struct text_hdr *h = sw_xmalloc(sizeof(*h) + n + 1);
        char *t = (char *)(h + 1);

        atomic_init(&h->refs, 1);
        memcpy(t, s, n);
        t[n] = '\0';
        return t;
}

static char *text_dump(const json_t *v)
{
        char *t = sw_json_dump_after(v, sizeof(struct text_hdr));

        atomic_init(&((struct text_hdr *)t - 1)->refs, 1);
        return t;
}

static char *text_ref(char *t)
{
        if (t)
                atomic_fetch_add(&((struct text_hdr *)t - 1)->refs, 1);
        return t;
}

static void text_unref(char *t)
{
        struct text_hdr *h = t ? (struct text_hdr *)t - 1 : NULL;

        if (h && atomic_fetch_sub(&h->refs, 1) == 1)
                free(h);
}

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
        text_unref(ev->body);
        text_unref(ev->prev);
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

/* An object's key hashed, for the log's index and the staged writes' (FNV-1a). */
static uint64_t key_hash_raw(const char *resource, const char *ns, const char *name)
{
        uint64_t h = 1469598103934665603ULL;
        const char *parts[3] = {resource, ns, name};

        for (int i = 0; i < 3; i++) {
                for (const char *c = parts[i]; *c; c++)
                        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
                h = (h ^ 0xff) * 1099511628211ULL;
        }
        return h;
}

static size_t key_hash(const struct orch_store *s, const char *resource, const char *ns,
                       const char *name)
{
        return (size_t)key_hash_raw(resource, ns, name) & s->keys_mask;
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
/* The newest event of an object in the log's index, or NULL (ring_mu held). */
static struct orch_event *log_find(struct orch_store *s, const char *resource, const char *ns,
                                   const char *name)
{
        struct orch_event *ev = s->keys[key_hash(s, resource, ns, name)];

        while (ev && !key_is(ev, resource, ns, name))
                ev = ev->key_next;
        return ev;
}

static struct orch_event *key_latest(json_t **obj_out, struct orch_store *s, const char *resource,
                                     const char *ns, const char *name)
{
        struct orch_event *ev;

        *obj_out = NULL;
        pthread_rwlock_rdlock(&s->ring_mu);
        if ((ev = log_find(s, resource, ns, name)) != NULL) {
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
 * watch latency under load). group_commit() hands the checkpoint to the
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
                s->ckpt_active = true;
                pthread_mutex_unlock(&s->ckpt_mu);
                /* Best effort, as SQLite's own: a failed checkpoint is retried next time. */
                sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, NULL);
                pthread_mutex_lock(&s->ckpt_mu);
                s->ckpt_active = false;
                pthread_cond_broadcast(&s->ckpt_done_cv);
                pthread_mutex_unlock(&s->ckpt_mu);
                if (log >= STORE_CHECKPOINT_PAGES * 3 / 2) {
                        /*
                         * Writes kept coming, and a write restarts the WAL from
                         * its start only if it began with every frame copied:
                         * copy the tail with commits paused, so that the next
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

/* The filter of keys that may exist, filled with the keys in the file. */
static int seen_load(struct orch_store *s, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "SELECT resource, namespace, name FROM objects", -1, &st,
                                    NULL);

        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                seen_add(s, (const char *)sqlite3_column_text(st, 0),
                         (const char *)sqlite3_column_text(st, 1),
                         (const char *)sqlite3_column_text(st, 2));
                rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_sqlite_err(s->db, rc, err, "keys");
}

/*
 * Open the reader connection: single-object reads, and the checks of
 * staged writes against the committed rows, take it instead of mu.
 */
static int reader_start(struct orch_store *s, const char *path, struct sw_err *err)
{
        int rc = sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

        if (rc == SQLITE_OK)
                rc = sqlite3_exec(s->rdb, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v3(s->rdb,
                                        "SELECT body, rev FROM objects WHERE resource=?1 AND "
                                        "namespace=?2 AND name=?3",
                                        -1, SQLITE_PREPARE_PERSISTENT, &s->rget, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v3(s->rdb,
                                        "SELECT rev FROM objects WHERE resource=?1 AND "
                                        "namespace=?2 AND name=?3",
                                        -1, SQLITE_PREPARE_PERSISTENT, &s->rrev, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_err(s->rdb, rc, err, "open reader");
        sqlite3_busy_timeout(s->rdb, 5000);
        return 0;
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
        pthread_mutex_init(&s->stage_mu, NULL);
        pthread_cond_init(&s->batch_cv, NULL);
        pthread_cond_init(&s->ckpt_cv, NULL);
        pthread_cond_init(&s->ckpt_done_cv, NULL);
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
        s->pend_mask = 1023;
        s->seen_bits = (uint64_t)1 << 21;
        s->seen = sw_xcalloc(s->seen_bits / 64, sizeof(*s->seen));
        s->pend = sw_xcalloc(s->pend_mask + 1, sizeof(*s->pend));
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
        if ((rc = seen_load(s, err)) != 0)
                goto fail;
        if ((rc = store_int(s, "SELECT value FROM counters WHERE name='revision'", &s->rev, err)) !=
            0)
                goto fail;
        atomic_store(&s->json_swept, s->rev);
        for (int i = 0; i < STORE_DROP_BUCKETS; i++)
                s->dropped[i] = s->rev; /* what came before this process is gone for all */
        sqlite3_wal_hook(s->db, store_wal_hook, s);
        ckpt_start(s, opts->path);
        if ((rc = reader_start(s, opts->path, err)) != 0) {
                sw_err_wrap(err, "object store '%s'", opts->path);
                goto fail;
        }
        s->next_rev = s->rev;
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
        sqlite3_finalize(s->rrev);
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
        pthread_mutex_destroy(&s->stage_mu);
        rows_free(s->rows, s->nrows);
        free(s->pend);
        free((void *)s->seen);
        pthread_cond_destroy(&s->ckpt_cv);
        pthread_cond_destroy(&s->ckpt_done_cv);
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
        return text_dump(obj);
}

/*
 * The template *tmpl with revision `rev` for its stand-in, made in place
 * (the stand-in is longer than any revision) and handed over: *tmpl is
 * then NULL. NULL, and *tmpl left alone, if the stand-in is not there.
 */
static char *text_fill(const struct orch_store *s, char **tmpl, int64_t rev)
{
        size_t mlen = strlen(s->rv_mark);
        char *at = *tmpl ? strstr(*tmpl, s->rv_mark) : NULL, *out = *tmpl;
        char num[24];
        int nlen;

        if (!at)
                return NULL;
        nlen = snprintf(num, sizeof(num), "%lld", (long long)rev);
        assert((size_t)nlen < mlen);
        memcpy(at, num, (size_t)nlen);
        memmove(at + nlen, at + mlen, strlen(at + mlen) + 1);
        *tmpl = NULL;
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
 * The revision counter's row is written once per group commit, as `rev`,
 * its last revision: the file is locked for this process, its only
 * writer, so the store's own count is the counter.
 */
static int counter_put(struct orch_store *s, int64_t rev, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = store_prepare(&st, s, "UPDATE counters SET value=?1 WHERE name='revision'");

        if (rc != SQLITE_OK)
                return store_sqlite_err(s->db, rc, err, "revision");
        sqlite3_bind_int64(st, 1, rev);
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
                          insert ? "INSERT INTO objects (resource, namespace, name, rev, body, uid)"
                                   " VALUES (?1,?2,?3,?4,?5,?6)"
                                 : "UPDATE objects SET rev=?4, body=?5 WHERE resource=?1 AND "
                                   "namespace=?2 AND name=?3",
                          resource, ns, name, "put", err);

        if (rc)
                return rc;
        sqlite3_bind_int64(st, 4, rev);
        sqlite3_bind_text(st, 5, body, -1, SQLITE_STATIC);
        if (insert)
                sqlite3_bind_text(st, 6, uid, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE && !insert && sqlite3_changes(s->db) != 1)
                rc = sw_err_set(err, SW_EINTERNAL, "%s \"%s\": no row to update", resource, name);
        else if (rc == SQLITE_DONE)
                rc = 0;
        else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
                rc = sw_err_set(err, SW_EEXIST, "%s \"%s\" already exists", resource, name);
        else
                rc = store_sqlite_err(s->db, rc, err, "put");
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

/* ---- staging and group commit ---------------------------------------------- */

/*
 * This thread's hold on the group commit (orch_store_hold): the first and
 * last groups its writes went into.
 */
static _Thread_local struct {
        struct orch_store *s;
        uint64_t first, last;
        bool wrote;
} held;

#define STORE_RETRY 1 /* the object changed since it was read: read it again */
#define STORE_SAME 2  /* a change: nothing to write */
#define STORE_GONE 3  /* a change: the write removes the object */

/* The staged event of an object, if one is waiting for its commit (stage_mu held). */
static struct orch_event *pend_find(struct orch_store *s, const char *resource, const char *ns,
                                    const char *name)
{
        struct orch_event *ev = s->pend[key_hash_raw(resource, ns, name) & s->pend_mask];

        for (; ev; ev = ev->pend_next)
                if (key_is(ev, resource, ns, name))
                        return ev;
        return NULL;
}

/* Take `ev` out of the staged index, if it is there (stage_mu held). */
static void pend_unlink(struct orch_store *s, struct orch_event *ev)
{
        struct orch_event **at =
                &s->pend[key_hash_raw(ev->resource, ev->ns, ev->name) & s->pend_mask];

        if (!ev->pending)
                return;
        for (; *at; at = &(*at)->pend_next)
                if (*at == ev) {
                        *at = ev->pend_next;
                        break;
                }
        ev->pend_next = NULL;
        ev->pending = false;
}

/* `ev` is now its object's newest staged event (stage_mu held). */
static void pend_link(struct orch_store *s, struct orch_event *ev)
{
        struct orch_event **head =
                &s->pend[key_hash_raw(ev->resource, ev->ns, ev->name) & s->pend_mask];

        for (struct orch_event **at = head; *at; at = &(*at)->pend_next)
                if (key_is(*at, ev->resource, ev->ns, ev->name)) {
                        struct orch_event *old = *at; /* the write it follows */
                        *at = old->pend_next;
                        old->pend_next = NULL;
                        old->pending = false;
                        break;
                }
        ev->pend_next = *head;
        *head = ev;
        ev->pending = true;
}

/* The filter's two bits for an object's key hash. */
static void seen_bits(const struct orch_store *s, uint64_t h, uint64_t bit[2])
{
        bit[0] = h & (s->seen_bits - 1);
        bit[1] = (h >> 32 ^ h >> 7) & (s->seen_bits - 1);
}

static void seen_add(struct orch_store *s, const char *resource, const char *ns, const char *name)
{
        uint64_t bit[2];

        seen_bits(s, key_hash_raw(resource, ns, name), bit);
        for (int i = 0; i < 2; i++)
                atomic_fetch_or_explicit(&s->seen[bit[i] / 64], (uint64_t)1 << (bit[i] % 64),
                                         memory_order_relaxed);
}

static bool seen_may(struct orch_store *s, const char *resource, const char *ns, const char *name)
{
        uint64_t bit[2];

        seen_bits(s, key_hash_raw(resource, ns, name), bit);
        for (int i = 0; i < 2; i++)
                if (!(atomic_load_explicit(&s->seen[bit[i] / 64], memory_order_relaxed) &
                      (uint64_t)1 << (bit[i] % 64)))
                        return false;
        return true;
}

/*
 * What the reader connection said of an object's committed row, asked
 * before stage_mu was taken: its revision (0: none) as of published
 * revision `at`.
 */
struct probe {
        bool done;
        int64_t at, rev;
};

static int row_probe(struct probe *p, struct orch_store *s, const char *resource, const char *ns,
                     const char *name, struct sw_err *err)
{
        int rc;

        p->at = atomic_load(&s->pub_rev); /* before the read: what it sees is at least this */
        p->rev = 0;
        /*
         * A key committed by revision p->at had its bits set when it was
         * staged, before that revision was published: without them, no
         * row holds it.
         */
        if (!seen_may(s, resource, ns, name)) {
                p->done = true;
                return 0;
        }
        pthread_mutex_lock(&s->rmu);
        sqlite3_bind_text(s->rrev, 1, resource, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->rrev, 2, ns, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->rrev, 3, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(s->rrev);
        if (rc == SQLITE_ROW)
                p->rev = sqlite3_column_int64(s->rrev, 0);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sqlite_err(s->rdb, rc, err, "get");
        sqlite3_reset(s->rrev);
        sqlite3_clear_bindings(s->rrev);
        pthread_mutex_unlock(&s->rmu);
        p->done = rc == 0;
        return rc;
}

/*
 * The newest revision of an object, as a write must see it (stage_mu
 * held): staged, else in the log, else committed; 0 when it does not
 * exist. The log's index and the committed rows change only with
 * stage_mu held (publish_rows), after the commit. A probe `p` made before
 * the lock saves asking SQLite again under it when it found no row and
 * the log still holds every revision since: a row made since would be in
 * the log's index.
 */
static int key_rev(int64_t *out, struct orch_store *s, const char *resource, const char *ns,
                   const char *name, const struct probe *p, struct sw_err *err)
{
        struct orch_event *ev = pend_find(s, resource, ns, name);
        struct probe now = {0};
        bool known;
        int rc;

        *out = 0;
        if (ev) {
                *out = strcmp(ev->type, "DELETED") == 0 ? 0 : ev->rev;
                return 0;
        }
        pthread_rwlock_rdlock(&s->ring_mu);
        if ((ev = log_find(s, resource, ns, name)) != NULL)
                *out = ev->rev;
        known = ev ||
                (p && p->done && p->rev == 0 &&
                 s->rev - (int64_t)s->ring_count <= p->at); /* the log reaches back to p->at */
        pthread_rwlock_unlock(&s->ring_mu);
        if (known)
                return 0;
        if ((rc = row_probe(&now, s, resource, ns, name, err)) == 0)
                *out = now.rev;
        return rc;
}

/*
 * Stage a write of `obj` (stage_mu held): checked against the object's
 * newest revision (`insert`: it must not exist, SW_EEXIST; else it must
 * be `expect`, STORE_RETRY), given the next revision and appended to the
 * open group, *group. *tmpl is the object's text from text_template(),
 * which the staged write takes (*tmpl NULL) once it is staged.
 * `p`, if not NULL, is what the committed row was before the lock.
 * The event takes over *prev (the text before a MODIFIED) and shares `obj`
 * (which the caller gets back, not to be changed) with in-process
 * watchers.
 */
static int stage_write(uint64_t *group, struct orch_store *s, const char *type,
                       const char *resource, const char *ns, const char *name, json_t *obj,
                       char **tmpl, bool insert, int64_t expect, const struct probe *p, char **prev,
                       json_t *prev_obj, struct row_outcome *out, struct sw_err *err)
{
        int64_t now, rev = s->next_rev + 1;
        struct staged_row *row;
        char *body;
        bool shared, modified = strcmp(type, "MODIFIED") == 0;
        int rc;

        if ((rc = key_rev(&now, s, resource, ns, name, p, err)) != 0)
                return rc;
        if (insert && now)
                return sw_err_set(err, SW_EEXIST, "%s \"%s\" already exists", resource, name);
        if (!insert && now != expect)
                return STORE_RETRY;
        set_rv(obj, rev);
        body = text_fill(s, tmpl, rev);
        if (!body)
                body = text_dump(obj);
        if (strlen(body) > STORE_BODY_MAX) {
                text_unref(body);
                return sw_err_set(err, SW_ETOOBIG, "object %s/%s is larger than %zu bytes", ns,
                                  name, STORE_BODY_MAX);
        }
        if (s->nrows == s->rows_cap) {
                s->rows_cap = s->rows_cap ? s->rows_cap * 2 : 64;
                s->rows = sw_xrealloc(s->rows, s->rows_cap * sizeof(*s->rows));
        }
        shared = atomic_load(&s->kinds[wake_bucket(resource)].local) > 0;
        row = &s->rows[s->nrows++];
        row->insert = insert;
        row->out = out;
        row->uid = insert ? sw_xstrdup(sw_json_str(json_object_get(obj, "metadata"), "uid", ""))
                          : NULL; /* an update keeps the row's */
        row->ev = event_new(rev, type, resource, ns, name, body, modified && prev ? *prev : NULL,
                            shared ? obj : NULL, shared ? prev_obj : NULL);
        if (modified && prev)
                *prev = NULL;
        pend_link(s, row->ev);
        if (insert)
                seen_add(s, resource, ns, name);
        s->next_rev = rev;
        s->nopen++;
        *group = s->open_batch;
        return 0;
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
        behind = s->wal_pages >= STORE_WAL_MAX_PAGES;
        /*
         * Asked each STORE_CHECKPOINT_PAGES new pages; past the bound, at
         * once, and again each quarter of that while the emptying fails
         * (the checkpointer was busy, or a reader was in the WAL).
         */
        if (!behind && s->wal_pages - s->wal_asked < STORE_CHECKPOINT_PAGES)
                return;
        if (behind && s->wal_asked >= STORE_WAL_MAX_PAGES &&
            s->wal_pages - s->wal_asked < STORE_CHECKPOINT_PAGES / 4)
                return;
        s->wal_asked = s->wal_pages;
        /* The checkpointer's work, unless the WAL has grown past its bound. */
        if (s->ckpt_running && !behind) {
                pthread_mutex_lock(&s->ckpt_mu);
                s->ckpt_due = true;
                pthread_cond_signal(&s->ckpt_cv);
                pthread_mutex_unlock(&s->ckpt_mu);
                return;
        }
        if (!behind) {
                /* Best effort, as SQLite's own: a failure is retried next time. */
                sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
                return;
        }
        /*
         * Behind: empty the WAL. SQLite refuses at once (SQLITE_BUSY) while
         * another connection checkpoints, so wait until the checkpointer's
         * run ends and keep it from starting another meanwhile (it starts
         * only with ckpt_mu); readers in the WAL are waited for by the busy
         * handler.
         */
        if (s->ckpt_running) {
                pthread_mutex_lock(&s->ckpt_mu);
                while (s->ckpt_active)
                        pthread_cond_wait(&s->ckpt_done_cv, &s->ckpt_mu);
        }
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        if (s->ckpt_running)
                pthread_mutex_unlock(&s->ckpt_mu);
}

/* Write the rows of a group and commit them (mu held). */
static int rows_commit(struct orch_store *s, const struct staged_row *rows, size_t n,
                       struct sw_err *err)
{
        int rc = store_run(s, "BEGIN IMMEDIATE", err);

        for (size_t i = 0; i < n && rc == 0; i++) {
                const struct orch_event *ev = rows[i].ev;
                if (strcmp(ev->type, "DELETED") == 0)
                        rc = row_delete(s, ev->resource, ev->ns, ev->name, err);
                else
                        rc = row_write(s, rows[i].insert, ev->resource, ev->ns, ev->name,
                                       rows[i].uid, ev->rev, ev->body, err);
        }
        if (rc == 0)
                rc = counter_put(s, rows[n - 1].ev->rev, err);
        if (rc == 0)
                rc = store_run(s, "COMMIT", err);
        if (rc)
                store_run(s, "ROLLBACK", NULL);
        return rc;
}

/* Move committed rows' events into the log and publish their revisions (mu and stage_mu held). */
static void publish_rows(struct orch_store *s, struct staged_row *rows, size_t n)
{
        int64_t top = rows[n - 1].ev->rev;

        pthread_rwlock_wrlock(&s->ring_mu);
        for (size_t i = 0; i < n; i++) {
                pend_unlink(s, rows[i].ev);
                log_append(s, rows[i].ev); /* the row's reference is now the log's */
                /* store_unlock() wakes the watchers, past the mutex */
                s->wake_due |= 1u << 31 | 1u << wake_bucket(rows[i].ev->resource);
                rows[i].ev = NULL;
        }
        s->rev = top;
        pthread_rwlock_unlock(&s->ring_mu);
        atomic_store(&s->pub_rev, top);
}

/* Drop staged rows whose group failed with `rc` (stage_mu held), telling their waiting writers. */
static void rows_drop(struct orch_store *s, struct staged_row *rows, size_t n, int rc,
                      const char *msg)
{
        for (size_t i = 0; i < n; i++) {
                if (rows[i].out) {
                        rows[i].out->rc = rc;
                        snprintf(rows[i].out->msg, sizeof(rows[i].out->msg), "%s", msg);
                }
                if (rows[i].ev) {
                        pend_unlink(s, rows[i].ev);
                        event_unref(rows[i].ev);
                        rows[i].ev = NULL;
                }
        }
}

static void rows_free(struct staged_row *rows, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(rows[i].uid);
                event_unref(rows[i].ev);
        }
        free(rows);
}

/*
 * Commit every staged row (mu held): the groups staged so far end, and
 * new writes open the next while the rows go into SQLite. When the commit
 * fails, the writes staged meanwhile fail with it (they were checked
 * against the failed ones), and the revision counter goes back to the
 * last committed revision.
 */
static void group_commit(struct orch_store *s)
{
        struct sw_err err = SW_ERR_INIT;
        struct staged_row *rows;
        size_t n;
        uint64_t last;
        int rc = 0;

        pthread_mutex_lock(&s->stage_mu);
        rows = s->rows;
        n = s->nrows;
        if (n == 0) {
                s->commit_due = false; /* whoever asked, another commit took the rows */
                pthread_mutex_unlock(&s->stage_mu);
                return;
        }
        s->rows = NULL;
        s->nrows = s->rows_cap = 0;
        s->nopen = 0;
        s->commit_due = false;
        last = s->open_batch++;
        pthread_mutex_unlock(&s->stage_mu);

        rc = rows_commit(s, rows, n, &err);

        pthread_mutex_lock(&s->stage_mu);
        if (rc == 0) {
                publish_rows(s, rows, n);
        } else {
                rows_drop(s, rows, n, rc, err.msg);
                rows_drop(s, s->rows, s->nrows, rc, err.msg);
                rows_free(s->rows, s->nrows);
                s->rows = NULL;
                s->nrows = s->rows_cap = 0;
                s->nopen = 0;
                s->commit_due = false; /* the rows it was for are gone */
                last = s->open_batch++;
                s->next_rev = s->rev;
                s->failed = last + 1;
                snprintf(s->failed_msg, sizeof(s->failed_msg), "%s", err.msg);
        }
        s->batch = last + 1;
        pthread_cond_broadcast(&s->batch_cv);
        pthread_mutex_unlock(&s->stage_mu);
        rows_free(rows, n);
        if (rc == 0)
                maybe_checkpoint(s);
}

/* Release the mutex after a commit: wake the watchers, free what left the log's index. */
static void commit_unlock(struct orch_store *s)
{
        json_t *unshared = NULL;

        if (json_array_size(s->unshared)) {
                unshared = s->unshared;
                s->unshared = json_array();
        }
        store_unlock(s);
        json_decref(unshared); /* past the mutex: it frees */
}

/* Commit what is staged, in this thread. */
static void commit_now(struct orch_store *s)
{
        pthread_mutex_lock(&s->mu);
        group_commit(s);
        commit_unlock(s);
}

/*
 * Whether this thread should commit now (stage_mu held): rows are open,
 * nobody is on the way to commit them, and either no other writer is on
 * its way to join them or the group is full.
 */
static bool commit_turn(struct orch_store *s)
{
        return s->nopen > 0 && !s->commit_due &&
               (atomic_load(&s->writers) == 0 || s->nopen >= STORE_BATCH_MAX);
}

/*
 * Wait (stage_mu held) until group `g` has ended (`any`: else only take a
 * turn), committing whenever it is this thread's turn: the last writer out
 * commits the open group, whoever staged it.
 */
static void wait_ended(struct orch_store *s, bool any, uint64_t g)
{
        for (;;) {
                if (commit_turn(s)) {
                        s->commit_due = true;
                        pthread_mutex_unlock(&s->stage_mu);
                        commit_now(s);
                        pthread_mutex_lock(&s->stage_mu);
                        continue;
                }
                if (!any || s->batch > g)
                        return;
                pthread_cond_wait(&s->batch_cv, &s->stage_mu);
        }
}

/*
 * Stage one write (stage_write) and see it through: a held write returns
 * once staged (its release waits for the commit) and commits the group
 * when it is full; any other waits until its group is committed, and
 * returns the outcome.
 */
static int write_row(struct orch_store *s, const char *type, const char *resource, const char *ns,
                     const char *name, json_t *obj, char **tmpl, bool insert, int64_t expect,
                     char **prev, json_t *prev_obj, struct sw_err *err)
{
        struct probe p = {0};
        struct row_outcome out = {0, ""};
        struct sw_err ignored = SW_ERR_INIT;
        uint64_t g = 0;
        bool commit = false;
        int rc;

        /* A create asks SQLite whether the key is taken before the lock, not under it. */
        if (insert)
                row_probe(&p, s, resource, ns, name, &ignored);
        atomic_fetch_add(&s->writers, 1);
        pthread_mutex_lock(&s->stage_mu);
        rc = stage_write(&g, s, type, resource, ns, name, obj, tmpl, insert, expect,
                         insert ? &p : NULL, prev, prev_obj, held.s == s ? NULL : &out, err);
        atomic_fetch_sub(&s->writers, 1);
        if (held.s == s) {
                if (rc == 0) {
                        if (!held.wrote)
                                held.first = g;
                        held.last = g;
                        held.wrote = true;
                }
                if (commit_turn(s))
                        commit = s->commit_due = true;
                pthread_mutex_unlock(&s->stage_mu);
                if (commit)
                        commit_now(s);
                return rc;
        }
        if (rc == 0 && atomic_load(&s->writers) == 0 && s->nopen < 4) {
                /*
                 * A small group and nobody on the way: let the threads that
                 * are about to write run first, so that they join this commit.
                 */
                pthread_mutex_unlock(&s->stage_mu);
                sched_yield();
                pthread_mutex_lock(&s->stage_mu);
        }
        wait_ended(s, rc == 0, g);
        if (rc == 0 && out.rc)
                rc = sw_err_set(err, out.rc, "%s", out.msg);
        pthread_mutex_unlock(&s->stage_mu);
        if (rc == 0)
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
        pthread_mutex_lock(&s->stage_mu);
        atomic_fetch_sub(&s->writers, 1);
        wait_ended(s, held.wrote, held.last);
        if (held.wrote && s->failed > held.first)
                rc = sw_err_set(err, SW_EIO, "writes not committed: %s", s->failed_msg);
        pthread_mutex_unlock(&s->stage_mu);
        if (held.wrote)
                json_sweep(s, atomic_load(&s->pub_rev));
        return rc;
}

/* Take the mutex to read with the writer's connection: commit what is staged first. */
static void read_lock(struct orch_store *s)
{
        pthread_mutex_lock(&s->mu);
        group_commit(s);
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
                *text_out = text_new((const char *)sqlite3_column_text(st, 0), *len_out);
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
 * A committed row read on the reader connection, outside mu and
 * stage_mu: its text (NULL when absent) and revision.
 */
static int reader_get(char **text_out, size_t *len_out, int64_t *rev_out, struct orch_store *s,
                      const char *resource, const char *ns, const char *name, struct sw_err *err)
{
        int rc;

        *text_out = NULL;
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
        text_unref(text);
        if (rc)
                return rc;
        if (!obj)
                return sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", resource, name);
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

int orch_store_create(json_t **out, struct orch_store *s, const char *resource, const json_t *in,
                      unsigned flags, struct sw_err *err)
{
        json_t *obj = flags & ORCH_STORE_IN_PLACE ? json_incref((json_t *)in) : sw_json_copy(in);
        json_t *meta;
        char uid[40], ts[32], *tmpl;
        const char *ns, *name;
        int rc;

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
        rc = write_row(s, "ADDED", resource, ns, name, obj, &tmpl, true, 0, NULL, NULL, err);
        text_unref(tmpl);
        if (rc) {
                json_decref(obj);
                return rc;
        }
        *out = obj;
        return 0;
}

/*
 * The newest version of an object for a write to start from, outside any
 * lock: its text and revision (*text NULL when it does not exist), from
 * its staged write, else the log (with the log's parsed object in *shared
 * when it keeps one: not to be changed), else its committed row. Unless
 * `staged`, the log and the row are asked first, and the staged writes
 * only when they have nothing: a write whose check then fails reads again
 * with `staged`.
 */
static int key_read_committed(char **text, int64_t *rev, json_t **shared, struct orch_store *s,
                              const char *resource, const char *ns, const char *name,
                              struct sw_err *err)
{
        struct orch_event *ev = key_latest(shared, s, resource, ns, name);
        size_t len = 0;

        if (ev) {
                *text = text_ref(ev->body);
                *rev = ev->rev;
                event_unref(ev);
                return 0;
        }
        return reader_get(text, &len, rev, s, resource, ns, name, err);
}

static int key_read(char **text, int64_t *rev, json_t **shared, struct orch_store *s,
                    const char *resource, const char *ns, const char *name, bool staged,
                    struct sw_err *err)
{
        struct orch_event *ev;
        int rc;

        *text = NULL;
        *rev = 0;
        *shared = NULL;
        if (!staged &&
            ((rc = key_read_committed(text, rev, shared, s, resource, ns, name, err)) != 0 ||
             *text))
                return rc;
        /* Staged writes first: one not found there has been published by then. */
        pthread_mutex_lock(&s->stage_mu);
        if ((ev = pend_find(s, resource, ns, name)) != NULL) {
                if (strcmp(ev->type, "DELETED") != 0)
                        *text = text_ref(ev->body);
                *rev = ev->rev;
        }
        pthread_mutex_unlock(&s->stage_mu);
        if (ev)
                return 0;
        return key_read_committed(text, rev, shared, s, resource, ns, name, err);
}

/*
 * A read-modify-write, optimistic: the object is read (key_read) and
 * changed with no lock held; staging the write checks that the object is
 * still at the revision read, and when it is not, the whole is done again.
 * `change` is handed the object read in *old (`shared`: the log's, not to
 * be changed) and sets *obj to the new object; it may take *old for it
 * (setting *old to NULL) when not shared. It returns 0 to write *obj,
 * STORE_GONE to remove the object (*obj its last state), STORE_SAME to
 * write nothing (*out is then *obj if set, else the object read), or an
 * error. What is left in *old becomes the event's object before.
 */
static int write_optimistic(json_t **out, struct orch_store *s, const char *resource,
                            const char *ns, const char *name,
                            int (*change)(json_t **obj, json_t **old, bool shared, void *arg,
                                          struct sw_err *err),
                            void *arg, struct sw_err *err)
{
        for (int attempt = 0;; attempt++) {
                json_t *obj = NULL, *old = NULL;
                char *text = NULL, *tmpl = NULL;
                int64_t rev = 0;
                bool shared;
                int rc;

                /* Staged writes are looked at only once a check failed: they are rare. */
                if ((rc = key_read(&text, &rev, &old, s, resource, ns, name, attempt > 0, err)) !=
                    0)
                        return rc;
                if (!text)
                        return sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", resource, name);
                shared = old != NULL;
                if (!shared && (rc = sw_json_parse(&old, text, strlen(text), 0, err)) != 0) {
                        text_unref(text);
                        return sw_err_wrap(err, "stored %s %s/%s", resource, ns, name);
                }
                rc = change(&obj, &old, shared, arg, err);
                if (rc == STORE_SAME) {
                        if (!obj)
                                obj = shared ? sw_json_copy(old) : json_incref(old);
                        rc = 0;
                } else if (rc == 0 || rc == STORE_GONE) {
                        bool gone = rc == STORE_GONE;
                        tmpl = text_template(s, obj);
                        rc = write_row(s, gone ? "DELETED" : "MODIFIED", resource, ns, name, obj,
                                       &tmpl, false, rev, gone ? NULL : &text, gone ? NULL : old,
                                       err);
                }
                text_unref(text);
                text_unref(tmpl);
                json_decref(old);
                if (rc == STORE_RETRY) {
                        json_decref(obj);
                        continue;
                }
                if (rc) {
                        json_decref(obj);
                        return rc;
                }
                *out = obj;
                return 0;
        }
}

struct update_arg {
        const json_t *in;
        const char *resource;
        unsigned flags;
        bool gone;
};

/* write_optimistic's change for an update: `in`, made the update of `old`. */
static int update_change(json_t **obj, json_t **old, bool shared, void *arg, struct sw_err *err)
{
        struct update_arg *u = arg;
        bool same = false;
        int rc;

        (void)shared; /* `old` is only read */
        *obj = sw_json_copy(u->in);
        u->gone = false;
        if ((rc = update_prepare(*obj, *old, u->resource, u->flags, &same, &u->gone, err)) != 0)
                return rc;
        if (same) {
                json_decref(*obj);
                *obj = NULL;
                return STORE_SAME;
        }
        return u->gone ? STORE_GONE : 0;
}

int orch_store_update(json_t **out, bool *gone_out, struct orch_store *s, const char *resource,
                      const json_t *in, unsigned flags, struct sw_err *err)
{
        struct update_arg u = {in, resource, flags, false};
        int rc = write_optimistic(out, s, resource, obj_ns(in), obj_name(in), update_change, &u,
                                  err);

        if (rc == 0 && gone_out)
                *gone_out = u.gone;
        return rc;
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
static int mutate_change(json_t **obj, json_t **old, bool shared, void *arg, struct sw_err *err)
{
        struct mutate_arg *m = arg;

        if (shared) {
                *obj = copy_top(*old);
        } else {
                *obj = *old;
                *old = NULL;
        }
        return m->fn(*obj, m->arg, err);
}

int orch_store_mutate(json_t **out, struct orch_store *s, const char *resource, const char *ns,
                      const char *name, int (*fn)(json_t *obj, void *arg, struct sw_err *err),
                      void *arg, struct sw_err *err)
{
        json_t *obj = NULL;
        struct mutate_arg m = {fn, arg};
        int rc = write_optimistic(&obj, s, resource, ns, name, mutate_change, &m, err);

        if (rc)
                return rc;
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

struct delete_arg {
        const char *uid, *rv;
        int64_t grace_s;
        bool gone;
};

/* write_optimistic's change for a deletion: the preconditions, then a deletionTimestamp or the end. */
static int delete_change(json_t **obj, json_t **old, bool shared, void *arg, struct sw_err *err)
{
        struct delete_arg *d = arg;
        json_t *meta;
        int64_t grace_s = d->grace_s < 0 ? 0 : d->grace_s;

        if (shared) {
                *obj = sw_json_copy(*old);
        } else {
                *obj = *old;
                *old = NULL;
        }
        meta = meta_of(*obj);
        d->gone = false;
        if (d->uid && *d->uid && strcmp(d->uid, sw_json_str(meta, "uid", "")) != 0)
                return sw_err_set(err, SW_ECONFLICT,
                                  "Precondition failed: UID in precondition: %s, UID in object "
                                  "meta: %s",
                                  d->uid, sw_json_str(meta, "uid", ""));
        if (d->rv && *d->rv && strcmp(d->rv, sw_json_str(meta, "resourceVersion", "")) != 0)
                return sw_err_set(err, SW_ECONFLICT,
                                  "Precondition failed: ResourceVersion in precondition: %s, "
                                  "ResourceVersion in object meta: %s",
                                  d->rv, sw_json_str(meta, "resourceVersion", ""));
        if (json_object_get(meta, "deletionTimestamp") &&
            (grace_s >= sw_json_int(meta, "deletionGracePeriodSeconds", 0) ||
             has_finalizers(*obj)) &&
            !(grace_s == 0 && !has_finalizers(*obj)))
                return STORE_SAME; /* already being deleted at least as soon: nothing to write */
        if (grace_s > 0 || has_finalizers(*obj)) {
                char ts[32];
                orch_time_fmt(ts, sizeof(ts), sw_now_ms() + grace_s * 1000);
                json_object_set_new(meta, "deletionTimestamp", json_string(ts));
                json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(grace_s));
                return 0;
        }
        d->gone = true;
        return STORE_GONE;
}

int orch_store_delete_graceful(json_t **out, bool *gone_out, struct orch_store *s,
                               const char *resource, const char *ns, const char *name,
                               const char *uid, const char *rv, int64_t grace_s, struct sw_err *err)
{
        struct delete_arg d = {uid, rv, grace_s, false};
        int rc = write_optimistic(out, s, resource, ns, name, delete_change, &d, err);

        if (rc == 0 && gone_out)
                *gone_out = d.gone;
        return rc;
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
