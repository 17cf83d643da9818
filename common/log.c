/*
 * log.c - JSON-lines event log.
 *
 * The sink is two plain variables written once in main() before any thread
 * starts (see log.h), which is the one exception STYLE.md makes to "no
 * mutable globals".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/banned.h"

static int log_fd = 1;
static enum sw_log_level log_min = SW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sw_log_init(int fd, enum sw_log_level min_level)
{
        log_fd = fd;
        log_min = min_level;
}

int sw_log_level_parse(const char *s)
{
        for (int i = 0; i < 4; i++)
                if (strcmp(s, level_names[i]) == 0)
                        return i;
        return -1;
}

void sw_log(enum sw_log_level level, const char *mod, const char *msg, const char *fields_fmt, ...)
{
        char ts[40];
        json_t *ev, *fields = NULL;
        char *line;
        size_t len, off = 0;
        va_list ap;

        if (level < log_min)
                return;
        sw_time_iso(ts, sizeof(ts), sw_now_ms());
        ev = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level_names[level], "mod", mod,
                       "msg", msg);
        if (!ev)
                return;
        if (fields_fmt) {
                va_start(ap, fields_fmt);
                fields = json_vpack_ex(NULL, 0, fields_fmt, ap);
                va_end(ap);
                if (fields && json_is_object(fields))
                        json_object_update_missing(ev, fields);
                json_decref(fields);
        }
        line = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(ev);
        if (!line)
                return;
        len = strlen(line);
        line[len] = '\n'; /* json_dumps leaves room: it NUL-terminates */
        len++;
        while (off < len) {
                ssize_t n = write(log_fd, line + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                off += (size_t)n;
        }
        free(line);
}
