/*
 * db.c - SQLite plumbing for the engine: error translation and migrations.
 *
 * Migrations are the files schema/migrations/NNN_name.sql compiled into the
 * binary. PRAGMA user_version records the last one applied; each is applied
 * in its own IMMEDIATE transaction, so several processes opening a new
 * database at once apply each migration exactly once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/embed.h"
#include "common/mem.h"
#include "engine/engine_int.h"
#include "engine/queue.h"
#include "common/banned.h"

int eng__sqlite_err(sqlite3 *db, int rc, struct sw_err *err, const char *what)
{
        const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return sw_err_set(err, SW_EBUSY,
                                  "%s: the database is locked by another process (%s)", what, msg);
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT:
                return sw_err_set(err, SW_ECORRUPT,
                                  "%s: the database is corrupt or not a slipway database (%s)",
                                  what, msg);
        case SQLITE_CANTOPEN:
                return sw_err_set(err, SW_ENOTFOUND, "%s: cannot open the database (%s)", what,
                                  msg);
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return sw_err_set(err, SW_EPERM, "%s: %s", what, msg);
        case SQLITE_FULL:
                return sw_err_set(err, SW_ETOOBIG, "%s: disk full (%s)", what, msg);
        case SQLITE_IOERR:
                return sw_err_set(err, SW_EIO, "%s: %s", what, msg);
        case SQLITE_CONSTRAINT:
                return sw_err_set(err, SW_ECONFLICT, "%s: %s", what, msg);
        default:
                return sw_err_set(err, SW_EINTERNAL, "%s: %s", what, msg);
        }
}

char *eng__db_path(const char *data_dir)
{
        return sw_xasprintf("%s/slipway.db", data_dir);
}

static int migration_number(const char *name)
{
        const char *base = strrchr(name, '/');
        int n = 0;

        base = base ? base + 1 : name;
        for (int i = 0; i < 3; i++) {
                if (base[i] < '0' || base[i] > '9')
                        return -1;
                n = n * 10 + (base[i] - '0');
        }
        return base[3] == '_' ? n : -1;
}

static int user_version(sqlite3 *db, int *out, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);

        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                rc = eng__sqlite_err(db, rc, err, "read schema version");
                sqlite3_finalize(st);
                return rc;
        }
        *out = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return 0;
}

int eng__migrate(sqlite3 *db, const char *path, struct sw_err *err)
{
        static const char prefix[] = "schema/migrations/";
        int latest = 0, have = 0, rc;

        for (const struct sw_embedded_file *f = sw_embedded; f->name; f++)
                if (strncmp(f->name, prefix, sizeof(prefix) - 1) == 0 &&
                    migration_number(f->name) > latest)
                        latest = migration_number(f->name);

        rc = user_version(db, &have, err);
        if (rc)
                return sw_err_wrap(err, "database '%s'", path);
        if (have > latest)
                return sw_err_set(err, SW_EINVAL,
                                  "database '%s' has schema version %d, newer than this slipway "
                                  "(%d): upgrade slipway",
                                  path, have, latest);
        if (have == latest)
                return 0;

        /* The embedded table is sorted by name, so migrations come in order. */
        for (const struct sw_embedded_file *f = sw_embedded; f->name; f++) {
                int n = migration_number(f->name);
                char *sql;

                if (strncmp(f->name, prefix, sizeof(prefix) - 1) != 0 || n <= 0)
                        continue;
                rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
                if (rc != SQLITE_OK)
                        return eng__sqlite_err(db, rc, err, "migrate");
                /* Another process may have applied it while we waited for the lock. */
                rc = user_version(db, &have, err);
                if (rc)
                        goto rollback;
                if (have >= n) {
                        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
                        continue;
                }
                sql = sw_xasprintf("%s\nPRAGMA user_version = %d;", f->data, n);
                rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
                free(sql);
                if (rc != SQLITE_OK) {
                        rc = eng__sqlite_err(db, rc, err, f->name);
                        goto rollback;
                }
                rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
                if (rc != SQLITE_OK) {
                        rc = eng__sqlite_err(db, rc, err, "commit migration");
                        goto rollback;
                }
        }
        return 0;
rollback:
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
}

int eng__open_queue(struct eng_queue **out, const struct sw_config *cfg, bool create,
                    struct sw_err *err)
{
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        char *path = eng__db_path(cfg->data);
        int rc;

        qo.path = path;
        qo.create = create;
        qo.synchronous_full = strcmp(cfg->synchronous, "FULL") == 0;
        rc = eng_queue_open(out, &qo, err);
        free(path);
        return rc;
}
