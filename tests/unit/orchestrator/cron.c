/*
 * cron.c - the CronJob schedule parser (fields, lists, ranges, steps,
 * names, macros, errors), time zones from the TZif database and the next
 * matching time, including the day-of-month/day-of-week rule and
 * daylight-saving changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/orch_int.h"
#include "tests/harness/t.h"

/* The next time of `spec` in `zone` after `after`, as RFC 3339 UTC, or "none"/"error". */
static const char *next_of(char *buf, size_t n, const char *spec, const char *zone,
                           const char *after)
{
        struct sw_err err = SW_ERR_INIT;
        struct orch_tz *tz = NULL;
        struct orch_cron c;
        int64_t t;

        if (orch_cron_parse(&c, spec, &err) != 0 || orch_tz_load(&tz, zone, &err) != 0) {
                snprintf(buf, n, "error: %s", err.msg);
                return buf;
        }
        t = orch_cron_next(&c, tz, orch_time_parse(after));
        if (t < 0)
                snprintf(buf, n, "none");
        else
                orch_time_fmt(buf, n, t);
        orch_tz_free(tz);
        return buf;
}
#define NEXT(spec, zone, after) next_of(buf, sizeof(buf), (spec), (zone), (after))

static void test_fields(void)
{
        char buf[1100];

        CHECK_STR(NEXT("* * * * *", NULL, "2026-11-27T02:10:30Z"), "2026-11-27T02:11:00Z");
        CHECK_STR(NEXT("* * * * *", NULL, "2026-11-27T02:10:00Z"), "2026-11-27T02:11:00Z");
        CHECK_STR(NEXT("*/15 * * * *", NULL, "2026-11-27T02:10:00Z"), "2026-11-27T02:15:00Z");
        CHECK_STR(NEXT("5/20 * * * *", NULL, "2026-11-27T02:10:00Z"), "2026-11-27T02:25:00Z");
        CHECK_STR(NEXT("  0   0  1,15 * *", NULL, "2026-11-27T00:00:00Z"), "2026-12-01T00:00:00Z");
        /* 2026-11-27 is a Friday: 9, 13, 17 on weekdays, so Monday 9:00 next */
        CHECK_STR(NEXT("0 9-17/4 * * mon-fri", NULL, "2026-11-27T13:00:00Z"),
                  "2026-11-27T17:00:00Z");
        CHECK_STR(NEXT("0 9-17/4 * * mon-fri", NULL, "2026-11-27T17:00:00Z"),
                  "2026-11-30T09:00:00Z");
        CHECK_STR(NEXT("0 12 * jan,JUL sun", NULL, "2026-11-27T00:00:00Z"), "2027-01-03T12:00:00Z");
        /* 7 is Sunday too */
        CHECK_STR(NEXT("0 0 * * 7", NULL, "2026-11-27T00:00:00Z"), "2026-11-29T00:00:00Z");
        CHECK_STR(NEXT("0 0 * * 0", NULL, "2026-11-27T00:00:00Z"), "2026-11-29T00:00:00Z");
        CHECK_STR(NEXT("59 23 31 12 *", NULL, "2026-11-27T00:00:00Z"), "2026-12-31T23:59:00Z");
}

static void test_days(void)
{
        char buf[1100];

        /* both day fields restricted: either matches (the 13th, or a Friday) */
        CHECK_STR(NEXT("0 0 13 * 5", NULL, "2026-11-27T00:00:00Z"), "2026-12-04T00:00:00Z");
        CHECK_STR(NEXT("0 0 13 * 5", NULL, "2026-12-11T00:00:00Z"), "2026-12-13T00:00:00Z");
        /* one of them "*" or "?": both must match */
        CHECK_STR(NEXT("0 0 13 * *", NULL, "2026-11-27T00:00:00Z"), "2026-12-13T00:00:00Z");
        CHECK_STR(NEXT("0 0 ? * 5", NULL, "2026-11-27T00:00:00Z"), "2026-12-04T00:00:00Z");
        /* February 29th comes every four years; February 30th never */
        CHECK_STR(NEXT("0 0 29 2 *", NULL, "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00Z");
        CHECK_STR(NEXT("0 0 30 2 *", NULL, "2026-03-01T00:00:00Z"), "none");
}

static void test_macros(void)
{
        char buf[1100];

        CHECK_STR(NEXT("@hourly", NULL, "2026-11-27T02:10:00Z"), "2026-11-27T03:00:00Z");
        CHECK_STR(NEXT("@daily", NULL, "2026-11-27T02:10:00Z"), "2026-11-28T00:00:00Z");
        CHECK_STR(NEXT("@midnight", NULL, "2026-11-27T02:10:00Z"), "2026-11-28T00:00:00Z");
        CHECK_STR(NEXT("@weekly", NULL, "2026-11-27T02:10:00Z"), "2026-11-29T00:00:00Z");
        CHECK_STR(NEXT("@monthly", NULL, "2026-11-27T02:10:00Z"), "2026-12-01T00:00:00Z");
        CHECK_STR(NEXT("@yearly", NULL, "2026-11-27T02:10:00Z"), "2027-01-01T00:00:00Z");
        CHECK_STR(NEXT("@annually", NULL, "2026-11-27T02:10:00Z"), "2027-01-01T00:00:00Z");
}

static void test_errors(void)
{
        static const struct {
                const char *spec, *msg;
        } bad[] = {
                {"* * * *", "expected exactly 5 fields, found 4"},
                {"* * * * * *", "expected exactly 5 fields, found 6"},
                {"", "expected exactly 5 fields, found 0"},
                {"60 * * * *", "minute field \"60\" is outside 0-59"},
                {"* 24 * * *", "hour field \"24\" is outside 0-23"},
                {"* * 0 * *", "day of month field \"0\" is outside 1-31"},
                {"* * * 13 *", "month field \"13\" is outside 1-12"},
                {"* * * * 8", "day of week field \"8\" is outside 0-7"},
                {"*/0 * * * *", "bad step in minute field \"*/0\""},
                {"5-1 * * * *", "minute field \"5-1\": range start above its end"},
                {"a * * * *", "bad value in minute field \"a\""},
                {"* * * foo *", "bad value in month field \"foo\""},
                {"1,,2 * * * *", "empty item in minute field \"1,,2\""},
                {"@every 5m", "unrecognized descriptor \"@every 5m\""},
                {"-1 * * * *", "bad value in minute field \"-1\""},
        };
        struct orch_cron c;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct sw_err err = SW_ERR_INIT;
                CHECK_INT(orch_cron_parse(&c, bad[i].spec, &err), SW_EINVAL);
                if (!strstr(err.msg, bad[i].msg))
                        fprintf(stderr, "spec '%s': got '%s', want '%s'\n", bad[i].spec, err.msg,
                                bad[i].msg);
                CHECK(strstr(err.msg, bad[i].msg) != NULL);
        }
}

static void test_zones(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct orch_tz *tz = NULL;
        char buf[1100];

        CHECK_OK(orch_tz_load(&tz, "Europe/Berlin", &err), &err);
        CHECK_INT(orch_tz_offset(tz, orch_time_parse("2026-01-15T12:00:00Z") / 1000), 3600);
        CHECK_INT(orch_tz_offset(tz, orch_time_parse("2026-07-15T12:00:00Z") / 1000), 7200);
        orch_tz_free(tz);
        CHECK_INT(orch_tz_load(&tz, "Mars/Olympus_Mons", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "unknown time zone Mars/Olympus_Mons") != NULL);
        sw_err_clear(&err);
        CHECK_INT(orch_tz_load(&tz, "../../etc/passwd", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_OK(orch_tz_load(&tz, "UTC", &err), &err);
        CHECK_INT(orch_tz_offset(tz, 0), 0);
        orch_tz_free(tz);
        orch_tz_free(NULL);

        CHECK_STR(NEXT("0 9 * * *", "Europe/Berlin", "2026-11-27T00:00:00Z"),
                  "2026-11-27T08:00:00Z");
        CHECK_STR(NEXT("0 9 * * *", "Europe/Berlin", "2026-07-01T00:00:00Z"),
                  "2026-07-01T07:00:00Z");
        CHECK_STR(NEXT("0 0 * * *", "America/New_York", "2026-11-27T12:00:00Z"),
                  "2026-11-28T05:00:00Z");
        CHECK_STR(NEXT("0 0 1 * *", "America/New_York", "2026-10-15T00:00:00Z"),
                  "2026-11-01T04:00:00Z");
        /* spring forward on 2026-03-29: 02:30 does not exist that day */
        CHECK_STR(NEXT("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z"),
                  "2026-03-30T00:30:00Z");
        /* fall back on 2026-10-25: 02:30 comes first in summer time */
        CHECK_STR(NEXT("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z"),
                  "2026-10-25T00:30:00Z");
        /* 1:00 local on the first of the month, across the change of offset */
        CHECK_STR(NEXT("0 1 1 * *", "Europe/Berlin", "2026-10-02T00:00:00Z"),
                  "2026-11-01T00:00:00Z");
        CHECK_STR(NEXT("0 1 1 * *", "Europe/Berlin", "2026-03-02T00:00:00Z"),
                  "2026-03-31T23:00:00Z");
}

int main(void)
{
        T_RUN(test_fields);
        T_RUN(test_days);
        T_RUN(test_macros);
        T_RUN(test_errors);
        T_RUN(test_zones);
        return t_done();
}
