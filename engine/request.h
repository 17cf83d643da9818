/*
 * request.h - the deploy request: what a user asks slipway to ship.
 *
 * The same validation serves the command line, the web form, the JSON API
 * and webhooks, so a request is refused before it is queued whatever its
 * source. The format is documented in schema/deploy-request.md.
 */
#ifndef SW_ENGINE_REQUEST_H
#define SW_ENGINE_REQUEST_H

#include <jansson.h>

#include "common/err.h"

enum eng_request_style {
        ENG_REQUEST_FIELDS, /* errors name JSON fields: "field 'cpu_limit'" */
        ENG_REQUEST_FLAGS,  /* errors name command-line flags: "--cpu-limit" */
};

/*
 * Validate `in` and return a new object with every field present (defaults
 * filled in) in *out. Errors are SW_EINVAL naming the first bad field.
 */
int eng_request_normalize(json_t **out, const json_t *in, enum eng_request_style style,
                          struct sw_err *err);

/*
 * Command-line flags for the request's fields (--repo, --cpu-limit, ...),
 * shared by every command that takes a deploy request. Their getopt codes
 * start at ENG_REQUEST_OPT_BASE.
 */
#define ENG_REQUEST_OPT_BASE 0x1000

struct option;

/* A getopt_long table: the request's flags followed by `extra` (which ends with a zero entry). Free it. */
struct option *eng_request_options(const struct option *extra);
/*
 * Store a request flag's argument in `in`. Returns 1 when `c` was a request
 * flag, 0 when it was not, SW_EINVAL (with err naming the flag) for a bad value.
 */
int eng_request_flag(json_t *in, int c, const char *arg, struct sw_err *err);
/* The lines of --help that describe the request's flags. */
const char *eng_request_flags_help(void);

/* "deploy/<namespace>/<name>": at most one deploy of an app runs at a time. */
char *eng_request_concurrency_key(const json_t *req);

#endif /* SW_ENGINE_REQUEST_H */
