/*
 * t.h - a minimal test framework: CHECK macros and a closing summary line.
 *
 * Each test file is one executable with a main() that calls T_RUN(fn) for
 * each test function and returns t_done(): "N passed, N failed" on the last
 * line, exit status 0 only when nothing failed.
 */
#ifndef SW_TEST_T_H
#define SW_TEST_T_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern int t_failures_in_test;

void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void t_run(const char *name, void (*fn)(void));
int t_done(void);

#define T_RUN(fn) t_run(#fn, fn)

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        t_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                            \
        } while (0)

#define CHECK_INT(a, b)                                                                            \
        do {                                                                                       \
                long long a_ = (long long)(a), b_ = (long long)(b);                                \
                if (a_ != b_)                                                                      \
                        t_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);      \
        } while (0)

#define CHECK_STR(a, b)                                                                            \
        do {                                                                                       \
                const char *a_ = (a), *b_ = (b);                                                   \
                if (!a_ || !b_ || strcmp(a_, b_) != 0)                                             \
                        t_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,           \
                               a_ ? a_ : "(null)", b_ ? b_ : "(null)");                            \
        } while (0)

/* Asserts that an sw_err-returning call succeeded, printing the error otherwise. */
#define CHECK_OK(call, errp)                                                                       \
        do {                                                                                       \
                int rc_ = (call);                                                                  \
                if (rc_ != 0)                                                                      \
                        t_fail(__FILE__, __LINE__, "%s failed (%d): %s", #call, rc_, (errp)->msg); \
        } while (0)

/* A fresh temporary directory for this test process; removed by t_done(). */
const char *t_tmpdir(void);

#endif /* SW_TEST_T_H */
