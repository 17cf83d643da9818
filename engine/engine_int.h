/*
 * engine_int.h - shared inside engine/ only.
 */
#ifndef SW_ENGINE_INT_H
#define SW_ENGINE_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* Translate an SQLite result into an SW_E* code with `what` as context. */
int eng__sqlite_err(sqlite3 *db, int rc, struct sw_err *err, const char *what);

/* Apply the embedded migrations (schema/migrations/NNN_*.sql) in order. */
int eng__migrate(sqlite3 *db, const char *path, struct sw_err *err);

/* The database file under the data directory. */
char *eng__db_path(const char *data_dir);

struct eng_queue;
struct sw_config;
/* Open the queue at $SLIPWAY_DATA/slipway.db with the configured synchronous mode. */
int eng__open_queue(struct eng_queue **out, const struct sw_config *cfg, bool create,
                    struct sw_err *err);

#endif /* SW_ENGINE_INT_H */
