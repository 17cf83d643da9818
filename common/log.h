/*
 * log.h - events as JSON lines on stdout (ts, level, mod, msg, fields).
 *
 * Fields are given as a jansson pack format and its arguments:
 *
 *     sw_log(SW_LOG_INFO, "pool", "job claimed", "{s:I,s:s}", "job", id, "worker", name);
 *
 * Pass NULL as the format for no fields. Each event is written with one
 * write(2) so lines from several threads or processes never interleave.
 * Secrets never go into a log event: callers pass redacted values.
 *
 * Threads: sw_log_init() runs once in main() before threads start; sw_log()
 * is safe from any thread afterwards.
 */
#ifndef SW_LOG_H
#define SW_LOG_H

enum sw_log_level {
        SW_LOG_DEBUG = 0,
        SW_LOG_INFO = 1,
        SW_LOG_WARN = 2,
        SW_LOG_ERROR = 3,
};

/* Send events at `min_level` and above to `fd` (1 by default). */
void sw_log_init(int fd, enum sw_log_level min_level);
/* "debug", "info", "warn", "error" -> level; -1 when unknown. */
int sw_log_level_parse(const char *s);

void sw_log(enum sw_log_level level, const char *mod, const char *msg, const char *fields_fmt, ...);

#endif /* SW_LOG_H */
