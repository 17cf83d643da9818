/*
 * validate.c - the first step of a deploy: the request, checked again.
 *
 * The request was validated when it was queued, but a job may have been
 * queued by an older slipway, or written by another client of the API; a
 * step that fails here fails for good, before anything is cloned or built.
 */
#include "common/json.h"
#include "engine/request.h"
#include "steps/steps.h"
#include "common/banned.h"

static int step_validate_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        json_t *req = NULL;
        int rc = eng_request_normalize(&req, eng_step_payload(ctx), ENG_REQUEST_FIELDS, err);

        if (rc)
                return rc;
        eng_step_log(ctx, "deploy %s/%s from %s at %s", sw_json_str(req, "namespace", ""),
                     sw_json_str(req, "name", ""), sw_json_str(req, "repo", ""),
                     sw_json_str(req, "commit", sw_json_str(req, "branch", "")));
        *output = req;
        return 0;
}

const struct eng_step_def step_validate_def = {
        .name = "validate",
        .summary = "check the deploy request",
        .run = step_validate_run,
};
