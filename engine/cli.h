/*
 * cli.h - the subcommands of the `slipway` executable.
 *
 * Each module contributes its commands; engine/main.c holds the table. A
 * command gets its arguments (argv[0] is the command name) and the loaded
 * configuration, which is NULL when the user only asked for --help (so help
 * works even with a broken environment). It returns the process exit code:
 * 0 success, 1 failure, 2 usage error.
 */
#ifndef SW_ENGINE_CLI_H
#define SW_ENGINE_CLI_H

#include <stdbool.h>
#include <stdint.h>

struct sw_config;
struct eng_pipeline_def;

struct sw_cmd {
        const char *name;
        int (*run)(int argc, char **argv, const struct sw_config *cfg);
        const char *summary;
};

/* True when argv asks for help (-h or --help anywhere before "--"). */
bool sw_cli_wants_help(int argc, char **argv);
/* Print "slipway CMD: message" to stderr and return 1. */
int sw_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage error and the hint to run --help; returns 2. */
int sw_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A whole decimal integer in [min, max] into *out: 0, or -1 leaving *out alone. */
int sw_cli_parse_i64(int64_t *out, const char *s, int64_t min, int64_t max);

/* The pipelines the slipway binary runs, by job kind (steps/pipelines.c). */
const struct eng_pipeline_def *sw_pipelines(unsigned long *n_out);

/* engine/cmd_jobs.c */
int eng_cmd_submit(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_jobs(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_job(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_logs(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_cancel(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_retry(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_worker(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_job_exec(int argc, char **argv, const struct sw_config *cfg);
int eng_cmd_config(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_ENGINE_CLI_H */
