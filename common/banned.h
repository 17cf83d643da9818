/*
 * banned.h - functions that must not be used in slipway, included last.
 *
 * They overflow buffers (strcpy, strcat, sprintf), keep hidden state
 * (strtok, gmtime, localtime), hide parse errors (atoi) or read the
 * environment behind the config module's back (getenv: only
 * common/config.c, which does not include this header, may call it).
 * Use snprintf, sw_buf, strtok_r, strtoll with checks, gmtime_r.
 */
#ifndef SW_BANNED_H
#define SW_BANNED_H

#define SW__BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) SW__BANNED(strcpy)
#undef strcat
#define strcat(x, y) SW__BANNED(strcat)
#undef sprintf
#define sprintf(...) SW__BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) SW__BANNED(vsprintf)
#undef strtok
#define strtok(x, y) SW__BANNED(strtok)
#undef atoi
#define atoi(x) SW__BANNED(atoi)
#undef atol
#define atol(x) SW__BANNED(atol)
#undef gmtime
#define gmtime(x) SW__BANNED(gmtime)
#undef localtime
#define localtime(x) SW__BANNED(localtime)
#ifndef SW_CONFIG_READS_ENV
#undef getenv
#define getenv(x) SW__BANNED(getenv)
#endif

#endif /* SW_BANNED_H */
