/*
 * route.c - the `route` step: wait until the app's host answers through nginx.
 *
 * The ingress controller (ingress/controller.h) turns the Ingress the deploy
 * step applied into an nginx route once the app has a ready pod. This step
 * asks nginx for the app's host until the answer comes from the app: any
 * status below 500 but the 404 of nginx's default server (an app whose "/"
 * answers 404 therefore waits for the deadline). Its output is the app's URL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "ingress/ingress.h"
#include "steps/steps.h"
#include "common/banned.h"

#define ROUTE_TIMEOUT_MS 120000
#define ROUTE_FAST_MS 5000

/* The first host of the rendered Ingress. */
static const char *rendered_host(const json_t *render)
{
        const json_t *d;
        size_t i;

        json_array_foreach(json_object_get(render, "documents"), i, d)
        {
                if (!strcmp(sw_json_str(d, "kind", ""), "Ingress"))
                        return sw_json_str(
                                json_array_get(json_object_get(json_object_get(d, "spec"), "rules"),
                                               0),
                                "host", NULL);
        }
        return NULL;
}

static int step_route_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const struct sw_config *cfg = eng_step_config(ctx);
        const char *host = rendered_host(eng_step_output(ctx, "render"));
        const char *port = strrchr(cfg->ingress_listen, ':');
        int64_t start = sw_mono_ms(), deadline = start + ROUTE_TIMEOUT_MS;
        long status = 0;
        char *url;

        if (!host)
                return sw_err_set(err, SW_EINVAL, "the rendered documents have no Ingress host");
        eng_step_log(ctx, "waiting for %s to answer through nginx at %s", host,
                     cfg->ingress_listen);
        for (;;) {
                struct ingress_probe p = {0};
                struct sw_err perr = SW_ERR_INIT;
                /*
                 * The controller routes the host within milliseconds of the
                 * pod's readiness, so ask often at first (a request to
                 * nginx on loopback costs well under a millisecond), then
                 * back off for an app that takes its time.
                 */
                int64_t gap = sw_mono_ms() - start < ROUTE_FAST_MS ? 5 : 50;
                p.addr = cfg->ingress_listen;
                p.host = host;
                p.timeout_ms = 1000;
                p.interval_ms = gap;
                if (ingress_wait_host(&status, &p, &perr) == 0 && status != 404)
                        break;
                if (perr.code == 0)
                        sw_sleep_ms(gap); /* the default server's 404: not routed yet */
                if (eng_step_cancelled(ctx))
                        return sw_err_set(err, SW_ECANCELED, "stopped");
                if (sw_mono_ms() > deadline)
                        return sw_err_set(err, SW_ETIMEDOUT,
                                          "%s did not answer through nginx within %llds (last: "
                                          "%s)",
                                          host, (long long)(ROUTE_TIMEOUT_MS / 1000),
                                          perr.code ? perr.msg : "404 from the default server");
        }
        url = sw_xasprintf("http://%s%s/", host, port && strcmp(port, ":80") ? port : "");
        eng_step_log(ctx, "%s answers (%ld): %s", host, status, url);
        *output = json_pack("{s:s,s:s,s:i}", "url", url, "host", host, "status", (int)status);
        free(url);
        return 0;
}

const struct eng_step_def step_route_def = {
        .name = "route",
        .summary = "wait until the app answers through nginx",
        .run = step_route_run,
};
