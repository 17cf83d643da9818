/*
 * engine_int.h - shared inside engine/ only.
 */
#ifndef SW_ENGINE_INT_H
#define SW_ENGINE_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "common/err.h"

/* Translate an SQLite result into an SW_E* code with `what` as context. */
int eng__sqlite_err(sqlite3 *db, int rc, struct sw_err *err, const char *what);

/* Apply the embedded migrations (schema/migrations/NNN_*.sql) in order. */
int eng__migrate(sqlite3 *db, const char *path, struct sw_err *err);

/* The database file under the data directory. */
char *eng__db_path(const char *data_dir);

#endif /* SW_ENGINE_INT_H */
