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

/* "deploy/<namespace>/<name>": at most one deploy of an app runs at a time. */
char *eng_request_concurrency_key(const json_t *req);

#endif /* SW_ENGINE_REQUEST_H */
