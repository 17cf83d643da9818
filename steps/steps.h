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

/* deploy: server-side apply and rollout wait (steps/deploy.h). */
extern const struct eng_step_def step_deploy_def;

/* render: the Kubernetes documents of the app (steps/render.h). */
extern const struct eng_step_def step_render_def;

/* validate: re-check the deploy request and record it, normalised, as the step output. */
extern const struct eng_step_def step_validate_def;
/*
 * dns: upsert the app host's A record (SLIPWAY_EDGE_IP) with its ownership
 * record in PowerDNS, wait until the server answers it over UDP, and remove
 * the app's records at hosts it left (steps/dns.c). Output:
 * {"host": "...", "ip": "...", "zone": "..."}.
 */
extern const struct eng_step_def step_dns_def;

#endif /* SW_STEPS_H */
