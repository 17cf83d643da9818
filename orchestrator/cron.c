/*
 * cron.c - standard cron schedules for the CronJob controller: the parser
 * (five fields, lists, ranges, steps, names, the @yearly.. macros), time
 * zones read from the TZif database, and the next matching minute.
 *
 * Day of month and day of week follow Vixie cron (and the Go library the
 * real controller uses): when either field is "*" or "?" both must match,
 * otherwise either may. The next time is found by walking the wall clock
 * field by field (month, day, hour, minute), skipping whole months, days
 * and hours that cannot match; a skip stops an hour short so that a
 * daylight-saving change never jumps over a match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/fs.h"
#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define CRON_SPEC_MAX 256
#define TZ_FILE_MAX (1024 * 1024)

struct cron_field {
        const char *what;
        int min, max;
        const char *const *names; /* names[i] means min + i */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct cron_field fields[5] = {
        {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
        {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
        {"day of week", 0, 7, day_names},
};

/* One number or name of field `f`; -1 when it is neither. */
static int cron_value(const struct cron_field *f, const char *s, size_t len)
{
        int v = 0;

        if (len == 0)
                return -1;
        if (f->names && len == 3)
                for (int i = 0; f->names[i]; i++)
                        if (strncasecmp(s, f->names[i], 3) == 0)
                                return f->min + i;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9' || v > 1000)
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return v;
}

/* One comma-free item of a field into the bit set `*bits`. */
static int cron_item(uint64_t *bits, bool *star, const struct cron_field *f, const char *item,
                     size_t len, struct sw_err *err)
{
        const char *slash = memchr(item, '/', len), *dash;
        size_t base_len = slash ? (size_t)(slash - item) : len;
        int lo, hi, step = 1;

        if (slash) {
                step = cron_value(&(struct cron_field){f->what, 0, 0, NULL}, slash + 1,
                                  len - base_len - 1);
                if (step <= 0)
                        return sw_err_set(err, SW_EINVAL, "bad step in %s field \"%.*s\"", f->what,
                                          (int)len, item);
        }
        dash = memchr(item, '-', base_len);
        if (base_len == 1 && (item[0] == '*' || item[0] == '?')) {
                lo = f->min;
                hi = f->max == 7 ? 6 : f->max;
                if (step == 1)
                        *star = true;
        } else if (dash) {
                lo = cron_value(f, item, (size_t)(dash - item));
                hi = cron_value(f, dash + 1, base_len - (size_t)(dash - item) - 1);
        } else {
                lo = cron_value(f, item, base_len);
                /* "a/n" means from a to the end, stepping by n */
                hi = slash ? (f->max == 7 ? 6 : f->max) : lo;
        }
        if (lo < 0 || hi < 0)
                return sw_err_set(err, SW_EINVAL, "bad value in %s field \"%.*s\"", f->what,
                                  (int)len, item);
        if (lo < f->min || hi > f->max)
                return sw_err_set(err, SW_EINVAL, "%s field \"%.*s\" is outside %d-%d", f->what,
                                  (int)len, item, f->min, f->max);
        if (lo > hi)
                return sw_err_set(err, SW_EINVAL, "%s field \"%.*s\": range start above its end",
                                  f->what, (int)len, item);
        for (int v = lo; v <= hi; v += step)
                *bits |= 1ULL << (f->max == 7 && v == 7 ? 0 : v);
        return 0;
}

static int cron_field_parse(uint64_t *bits, bool *star, const struct cron_field *f,
                            const char *text, size_t len, struct sw_err *err)
{
        size_t start = 0;
        int rc;

        *bits = 0;
        *star = false;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && text[i] != ',')
                        continue;
                if (i == start)
                        return sw_err_set(err, SW_EINVAL, "empty item in %s field \"%.*s\"",
                                          f->what, (int)len, text);
                rc = cron_item(bits, star, f, text + start, i - start, err);
                if (rc)
                        return rc;
                start = i + 1;
        }
        /* a list that contains "*" is not a bare star */
        if (*star && memchr(text, ',', len))
                *star = false;
        return 0;
}

int orch_cron_parse(struct orch_cron *out, const char *spec, struct sw_err *err)
{
        static const struct {
                const char *name, *expr;
        } macros[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
                      {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
                      {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                      {"@hourly", "0 * * * *"}};
        struct orch_cron c = {0};
        const char *p, *starts[6];
        size_t lens[6], n = 0;
        uint64_t bits[5];
        bool stars[5];
        int rc;

        if (!spec || strlen(spec) > CRON_SPEC_MAX)
                return sw_err_set(err, SW_EINVAL, "schedule is empty or too long");
        while (*spec == ' ' || *spec == '\t')
                spec++;
        if (*spec == '@') {
                for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
                        size_t ml = strlen(macros[i].name);
                        if (strncmp(spec, macros[i].name, ml) == 0 &&
                            strspn(spec + ml, " \t") == strlen(spec + ml))
                                return orch_cron_parse(out, macros[i].expr, err);
                }
                return sw_err_set(err, SW_EINVAL, "unrecognized descriptor \"%s\"", spec);
        }
        for (p = spec; *p;) {
                size_t l = strcspn(p, " \t");
                if (l == 0) {
                        p++;
                        continue;
                }
                if (n < 6) {
                        starts[n] = p;
                        lens[n] = l;
                }
                n++;
                p += l;
        }
        if (n != 5)
                return sw_err_set(err, SW_EINVAL, "expected exactly 5 fields, found %zu: \"%s\"", n,
                                  spec);
        for (int i = 0; i < 5; i++) {
                rc = cron_field_parse(&bits[i], &stars[i], &fields[i], starts[i], lens[i], err);
                if (rc)
                        return rc;
        }
        c.minutes = bits[0];
        c.hours = (uint32_t)bits[1];
        c.days = (uint32_t)bits[2];
        c.months = (uint32_t)bits[3];
        c.weekdays = (uint32_t)bits[4];
        c.days_star = stars[2];
        c.weekdays_star = stars[4];
        *out = c;
        return 0;
}

/* ---- time zones ---------------------------------------------------------- */

struct orch_tz {
        int64_t *at;  /* transition times, epoch seconds, ascending */
        int32_t *off; /* the offset from each transition on */
        size_t n;
        int32_t first; /* the offset before the first transition */
};

static uint32_t be32(const unsigned char *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
        return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool tz_name_ok(const char *name)
{
        if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 128)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || strchr("/_+-", *p)))
                        return false;
        return true;
}

/* Parse a TZif file (version 2 or later data when present). */
static int tz_parse(struct orch_tz *tz, const unsigned char *d, size_t len)
{
        size_t tsize = 4, pos = 0, cnt[6], need;
        const unsigned char *types, *tinfo;

        for (int pass = 0; pass < 2; pass++) {
                if (len - pos < 44 || memcmp(d + pos, "TZif", 4) != 0)
                        return -1;
                for (int i = 0; i < 6; i++)
                        cnt[i] = be32(d + pos + 20 + 4 * i);
                /* isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
                if (cnt[3] > 100000 || cnt[4] == 0 || cnt[4] > 256 || cnt[2] > 100000)
                        return -1;
                need = cnt[3] * tsize + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * (tsize + 4) +
                       cnt[1] + cnt[0];
                if (pass == 0 && d[pos + 4] >= '2') {
                        if (len - pos - 44 < need)
                                return -1;
                        pos += 44 + need;
                        tsize = 8;
                        continue;
                }
                break;
        }
        pos += 44;
        if (len - pos < need)
                return -1;
        types = d + pos + cnt[3] * tsize;
        tinfo = types + cnt[3];
        tz->n = cnt[3];
        tz->at = sw_xcalloc(tz->n + 1, sizeof(*tz->at));
        tz->off = sw_xcalloc(tz->n + 1, sizeof(*tz->off));
        tz->first = (int32_t)be32(tinfo);
        for (size_t i = 0; i < tz->n; i++) {
                if (types[i] >= cnt[4])
                        return -1;
                tz->at[i] = tsize == 8 ? be64(d + pos + i * 8)
                                       : (int64_t)(int32_t)be32(d + pos + i * 4);
                tz->off[i] = (int32_t)be32(tinfo + 6 * types[i]);
        }
        return 0;
}

int orch_tz_load(struct orch_tz **out, const char *name, struct sw_err *err)
{
        struct orch_tz *tz = sw_xcalloc(1, sizeof(*tz));
        char *path = NULL, *data = NULL;
        size_t len = 0;
        int rc = 0;

        if (!name || !*name || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
                goto done;
        if (!tz_name_ok(name)) {
                rc = sw_err_set(err, SW_EINVAL, "unknown time zone %s", name);
                goto out;
        }
        path = sw_xasprintf("/usr/share/zoneinfo/%s", name);
        if (sw_read_file(&data, &len, path, TZ_FILE_MAX, err) != 0) {
                sw_err_clear(err);
                rc = sw_err_set(err, SW_EINVAL, "unknown time zone %s", name);
                goto out;
        }
        if (tz_parse(tz, (const unsigned char *)data, len) != 0) {
                rc = sw_err_set(err, SW_EINVAL, "unknown time zone %s: not a TZif file", name);
                goto out;
        }
done:
        *out = tz;
        tz = NULL;
out:
        orch_tz_free(tz);
        free(data);
        free(path);
        return rc;
}

void orch_tz_free(struct orch_tz *tz)
{
        if (!tz)
                return;
        free(tz->at);
        free(tz->off);
        free(tz);
}

int32_t orch_tz_offset(const struct orch_tz *tz, int64_t epoch_s)
{
        size_t lo = 0, hi;

        if (!tz || tz->n == 0)
                return tz ? tz->first : 0;
        if (epoch_s < tz->at[0])
                return tz->first;
        /* the last transition at or before epoch_s */
        hi = tz->n;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (tz->at[mid] <= epoch_s)
                        lo = mid;
                else
                        hi = mid;
        }
        return tz->off[lo];
}

/* ---- next time ----------------------------------------------------------- */

static int days_in_month(int year, int mon0)
{
        static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

        return mon0 == 1 && leap ? 29 : d[mon0];
}

static bool day_matches(const struct orch_cron *c, const struct tm *tm)
{
        bool dom = (c->days >> tm->tm_mday) & 1u, dow = (c->weekdays >> tm->tm_wday) & 1u;

        if (c->days_star || c->weekdays_star)
                return dom && dow;
        return dom || dow;
}

int64_t orch_cron_next(const struct orch_cron *c, const struct orch_tz *tz, int64_t after_ms)
{
        int64_t t = (after_ms >= 0 ? after_ms / 60000 : (after_ms - 59999) / 60000) + 1;
        int64_t end = t + 5LL * 366 * 1440;

        /* t counts minutes since the epoch */
        while (t < end) {
                time_t local = (time_t)(t * 60 + orch_tz_offset(tz, t * 60));
                int64_t skip;
                struct tm tm;

                if (!gmtime_r(&local, &tm))
                        return -1;
                if (!((c->months >> (tm.tm_mon + 1)) & 1u))
                        skip = (int64_t)(days_in_month(tm.tm_year + 1900, tm.tm_mon) - tm.tm_mday) *
                                       1440 +
                               (23 - tm.tm_hour) * 60 + (60 - tm.tm_min);
                else if (!day_matches(c, &tm))
                        skip = (23 - tm.tm_hour) * 60 + (60 - tm.tm_min);
                else if (!((c->hours >> tm.tm_hour) & 1u))
                        skip = 60 - tm.tm_min;
                else if (!((c->minutes >> tm.tm_min) & 1u))
                        skip = 1;
                else
                        return t * 60000;
                /* stop an hour short: a daylight-saving change may move the boundary */
                if (tz && tz->n > 0 && skip > 120)
                        skip -= 60;
                t += skip;
        }
        return -1;
}
