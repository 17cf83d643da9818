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

/* build: the Dockerfile into an OCI layout (steps/build.h). */
extern const struct eng_step_def step_build_def;
/* push: the built image to SLIPWAY_REGISTRY. */
extern const struct eng_step_def step_push_def;

/* route: wait until the app answers through nginx; output {"url", "host", "status"}. */
extern const struct eng_step_def step_route_def;

/* deploy: server-side apply and rollout wait (steps/deploy.h). */
extern const struct eng_step_def step_deploy_def;

/* render: the Kubernetes documents of the app (steps/render.h). */
extern const struct eng_step_def step_render_def;

/* validate: re-check the deploy request and record it, normalised, as the step output. */
extern const struct eng_step_def step_validate_def;
/*
 * clone: fetch the repository into its mirror and check out the commit in
 * $SLIPWAY_DATA/work/<job id>/src (steps/clone.h). Output:
 * {"commit": "<40 hex>", "ref": "refs/heads/..." or null, "path": "...", "url": "..."}.
 */
extern const struct eng_step_def step_clone_def;

/*
 * The libraries' process-wide set-up that the steps need: libcurl and
 * libgit2 (common/libs.h), then the clone's own TCP stream for libgit2.
 * Once per process, safe from any thread; the worker calls it before its
 * first job, every other command in main().
 */
void step_libs_init(void);

/*
 * dns: upsert the app host's A record (SLIPWAY_EDGE_IP) with its ownership
 * record in PowerDNS, wait until the server answers it over UDP, and remove
 * the app's records at hosts it left (steps/dns.c). Output:
 * {"host": "...", "ip": "...", "zone": "..."}.
 */
extern const struct eng_step_def step_dns_def;

#endif /* SW_STEPS_H */
