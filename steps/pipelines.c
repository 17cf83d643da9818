/*
 * pipelines.c - the job kinds the slipway binary runs, and their steps.
 *
 * The deploy pipeline grows as steps land: clone, build, push, render,
 * deploy, route, dns.
 */
#include "engine/cli.h"
#include "steps/steps.h"
#include "common/banned.h"

static const struct eng_step_def *const deploy_steps[] = {
        &step_validate_def, &step_clone_def,  &step_build_def, &step_push_def,
        &step_render_def,   &step_deploy_def, &step_route_def, &step_dns_def,
};

static const struct eng_pipeline_def pipelines[] = {
        {"deploy", deploy_steps, sizeof(deploy_steps) / sizeof(deploy_steps[0])},
};

const struct eng_pipeline_def *sw_pipelines(unsigned long *n_out)
{
        *n_out = sizeof(pipelines) / sizeof(pipelines[0]);
        return pipelines;
}
