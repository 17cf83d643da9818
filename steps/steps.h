/*
 * steps.h - the pipeline steps slipway ships, and the pipelines built from them.
 *
 * Each step lives in its own file under steps/ and is described by an
 * eng_step_def (engine/pipeline.h). steps/pipelines.c lists them in order for
 * each job kind.
 */
#ifndef SW_STEPS_H
#define SW_STEPS_H

#include "engine/pipeline.h"

/* validate: re-check the deploy request and record it, normalised, as the step output. */
extern const struct eng_step_def step_validate_def;
/*
 * clone: fetch the repository into its mirror and check out the commit in
 * $SLIPWAY_DATA/work/<job id>/src (steps/clone.h). Output:
 * {"commit": "<40 hex>", "ref": "refs/heads/..." or null, "path": "...", "url": "..."}.
 */
extern const struct eng_step_def step_clone_def;

#endif /* SW_STEPS_H */
