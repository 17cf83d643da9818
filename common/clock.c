/*
 * clock.c - wall and monotonic milliseconds, and their formatting.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "common/clock.h"
#include "common/banned.h"

int64_t sw_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sw_mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sw_mono_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sw_sleep_ms(int64_t ms)
{
        struct timespec ts;

        if (ms <= 0)
                return;
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (ms % 1000) * 1000000;
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
}

void sw_time_iso(char *out, size_t size, int64_t epoch_ms)
{
        time_t secs = (time_t)(epoch_ms / 1000);
        struct tm tm;

        if (!gmtime_r(&secs, &tm)) {
                snprintf(out, size, "?");
                return;
        }
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(epoch_ms % 1000));
}

void sw_duration_fmt(char *out, size_t size, int64_t ms)
{
        if (ms < 0)
                ms = 0;
        if (ms < 1000)
                snprintf(out, size, "%dms", (int)ms);
        else if (ms < 60000)
                snprintf(out, size, "%.1fs", (double)ms / 1000.0);
        else if (ms < 3600000)
                snprintf(out, size, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
        else
                snprintf(out, size, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
}
