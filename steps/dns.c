/*
 * dns.c - the `dns` step: publish the app's host in PowerDNS and check that
 * the server answers it.
 *
 * The host is the one an earlier `route` or `render` step recorded in its
 * output ("host"), else the request's own `host`, else
 * <name>.<namespace>.<domain> (SLIPWAY_DOMAIN), the rule the render step
 * uses for the Ingress. It must lie inside SLIPWAY_DNS_ZONE. The A record
 * points at SLIPWAY_EDGE_IP and carries an ownership record for
 * SLIPWAY_DNS_OWNER and the resource "ingress/<namespace>/<name>": a host
 * that belongs to another owner or to nobody is refused (a permanent failure
 * that says who holds it), never overwritten. After the upsert the step asks the server itself over UDP
 * (SLIPWAY_DNS_LISTEN) until it answers the edge IP.
 *
 * When the app was published at another host before (its host changed), the
 * old record - ours and the same resource's - is removed, not left stale.
 *
 * PowerDNS being down is transient (SW_EUNAVAIL, SW_ETIMEDOUT): the engine
 * retries the job with backoff and resumes at this step. The step is
 * idempotent: a re-run writes nothing when the record is already right.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "orchestrator/client/kube.h"
#include "steps/deploy.h"
#include "steps/steps.h"
#include "common/banned.h"

#define VERIFY_TIMEOUT_MS 10000
#define VERIFY_SLICE_MS 1000

/* The request: the validate step's normalised output when there is one, else the payload. */
static const json_t *step_dns_request(struct eng_step_ctx *ctx)
{
        const json_t *req = eng_step_output(ctx, "validate");

        return req ? req : eng_step_payload(ctx);
}

/*
 * Remove the records this app published at other hosts before (its host
 * changed): they are ours and the resource's, and would otherwise be left
 * behind, stale, as external-dns leaves them. Records of other apps and
 * other owners are not touched.
 */
static int step_dns_prune(struct eng_step_ctx *ctx, struct dns_client *client,
                          const struct sw_config *cfg, const char *zone, const char *host,
                          const char *resource, struct sw_err *err)
{
        struct dns_record **list = NULL;
        size_t n = 0;
        int rc = dns_record_list(&list, &n, client, zone, cfg->dns_owner, err);

        for (size_t i = 0; rc == 0 && i < n; i++) {
                const struct dns_record *r = list[i];

                if (strcmp(r->own.resource, resource) != 0 || strcmp(r->fqdn, host) == 0)
                        continue;
                rc = dns_record_delete(client, zone, r->fqdn, cfg->dns_owner, resource, err);
                if (rc == 0)
                        eng_step_log(ctx, "dns: removed the stale record %s of %s (now at %s)",
                                     r->fqdn, resource, host);
        }
        dns_record_list_free(list, n);
        return rc;
}

/* Ask the server over UDP until it answers the edge IP, in slices so a cancel is seen. */
/*
 * The host an earlier step settled on (route, then render, when they record
 * a "host" in their output), else the request's own; NULL for the default.
 */
static const char *step_dns_host(struct eng_step_ctx *ctx, const json_t *req)
{
        static const char *const earlier[] = {"route", "render"};

        for (size_t i = 0; i < sizeof(earlier) / sizeof(earlier[0]); i++) {
                const char *h = sw_json_str(eng_step_output(ctx, earlier[i]), "host", NULL);
                if (h)
                        return h;
        }
        return sw_json_str(req, "host", NULL);
}

static int step_dns_verify(struct eng_step_ctx *ctx, int64_t *took_out, const struct sw_config *cfg,
                           const char *host, struct sw_err *err)
{
        int64_t start = sw_mono_ms(), left;
        int rc;

        for (;;) {
                struct sw_err slice = SW_ERR_INIT;

                left = start + VERIFY_TIMEOUT_MS - sw_mono_ms();
                rc = dns_wait_a(NULL, cfg->dns_listen, host, cfg->edge_ip,
                                left < VERIFY_SLICE_MS ? left : VERIFY_SLICE_MS, &slice);
                if (rc == 0) {
                        *took_out = sw_mono_ms() - start;
                        return 0;
                }
                if (rc != SW_ETIMEDOUT || sw_mono_ms() - start >= VERIFY_TIMEOUT_MS) {
                        sw_err_set(err, rc, "%s", slice.msg);
                        return sw_err_wrap(err, "dns: record written but not answered");
                }
                if (eng_step_cancelled(ctx))
                        return sw_err_set(err, SW_ECANCELED, "dns: cancelled while verifying");
        }
}

/*
 * This is the deploy pipeline's last step: once it is done the job has
 * succeeded, and what it deployed becomes the release a failed rollout rolls
 * back to (steps/release.c). Not being able to record it does not undo the
 * deployment; the job's log says so.
 */
static void step_dns_save_release(struct eng_step_ctx *ctx, const struct sw_config *cfg,
                                  const char *host)
{
        const json_t *docs = json_object_get(eng_step_output(ctx, "render"), "documents");
        struct orch_kube *kube = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (!step_release_deployment(docs))
                return;
        if (step_deploy_client(&kube, cfg, &err) == 0 &&
            step_release_save(kube, eng_step_job_id(ctx), docs, host, &err) == 0)
                eng_step_log(ctx, "release of job %lld recorded as the last good one",
                             (long long)eng_step_job_id(ctx));
        else
                eng_step_log(ctx, "the release was not recorded (no rollback to it): %s", err.msg);
        orch_kube_free(kube);
}

static int step_dns_run(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const struct sw_config *cfg = eng_step_config(ctx);
        const json_t *req = step_dns_request(ctx);
        const char *name = sw_json_str(req, "name", NULL);
        const char *ns = sw_json_str(req, "namespace", "default");
        const char *host_in = step_dns_host(ctx, req);
        struct dns_client *client = NULL;
        char *host = NULL, *zone = NULL, *resource = NULL, *bare = NULL;
        struct in_addr edge;
        int64_t took = 0;
        int rc;

        if (!name)
                return sw_err_set(err, SW_EINVAL, "dns: the deploy request has no name");
        if (cfg->pdns_api_key)
                eng_step_add_secret(ctx, cfg->pdns_api_key);

        /* Every name is checked before PowerDNS is asked anything. */
        if (host_in)
                rc = dns_name_canonical(&host, host_in, "host", err);
        else {
                bare = sw_xasprintf("%s.%s.%s", name, ns, cfg->domain);
                rc = dns_name_canonical(&host, bare, "host", err);
        }
        if (rc == 0)
                rc = dns_name_canonical(&zone, cfg->dns_zone, "SLIPWAY_DNS_ZONE", err);
        if (rc == 0)
                rc = dns_name_in_zone(host, zone, err);
        if (rc == 0 && inet_pton(AF_INET, cfg->edge_ip, &edge) != 1)
                rc = sw_err_set(err, SW_EINVAL, "SLIPWAY_EDGE_IP: '%s' is not an IPv4 address",
                                cfg->edge_ip);
        if (rc == 0 && dns_owner_id_check(cfg->dns_owner, err) != 0)
                rc = sw_err_wrap(err, "SLIPWAY_DNS_OWNER");
        if (rc)
                goto out;
        resource = sw_xasprintf("ingress/%s/%s", ns, name);

        rc = dns_client_from_config(&client, cfg, err);
        if (rc)
                goto out;
        eng_step_log(ctx, "dns: %s A %s in zone %s (owner %s)", host, cfg->edge_ip, zone,
                     cfg->dns_owner);
        rc = dns_record_upsert(client, zone, host, cfg->edge_ip, (uint32_t)cfg->dns_ttl,
                               cfg->dns_owner, resource, err);
        if (rc)
                goto out;
        rc = step_dns_verify(ctx, &took, cfg, host, err);
        if (rc)
                goto out;
        eng_step_log(ctx, "dns: %s answers %s at %s (%lld ms)", cfg->dns_listen, cfg->edge_ip, host,
                     (long long)took);
        rc = step_dns_prune(ctx, client, cfg, zone, host, resource, err);
        if (rc)
                goto out;
        /* The output names the host without the trailing dot, as users write it. */
        host[strlen(host) - 1] = '\0';
        step_dns_save_release(ctx, cfg, host);
        *output = json_pack("{s:s,s:s,s:s}", "host", host, "ip", cfg->edge_ip, "zone", zone);
out:
        dns_client_free(client);
        free(bare);
        free(host);
        free(zone);
        free(resource);
        return rc;
}

const struct eng_step_def step_dns_def = {
        .name = "dns",
        .summary = "publish the app host in PowerDNS and check the answer",
        .run = step_dns_run,
};
