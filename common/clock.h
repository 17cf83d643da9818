/*
 * clock.h - the one time type: int64_t milliseconds.
 *
 * Wall-clock times (stored in the database, shown to users) are milliseconds
 * since the Unix epoch; durations and deadlines inside a process use the
 * monotonic clock.
 */
#ifndef SW_CLOCK_H
#define SW_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t sw_now_ms(void);  /* CLOCK_REALTIME */
int64_t sw_mono_ms(void); /* CLOCK_MONOTONIC */
int64_t sw_mono_us(void);
void sw_sleep_ms(int64_t ms);

/* "2026-11-26T23:25:36.123Z" into `out` (at least 32 bytes). */
void sw_time_iso(char *out, size_t size, int64_t epoch_ms);
/* "1.2s", "340ms", "3m05s" into `out` (at least 16 bytes). */
void sw_duration_fmt(char *out, size_t size, int64_t ms);

#endif /* SW_CLOCK_H */
