/*
 * release.c - an app's last good release, kept in its own cluster, and the
 * rollback to it.
 *
 * When a deploy job succeeds (its last step, `dns`, is done) the documents it
 * applied are stored in the ConfigMap "slipway-release-<app>" of the app's
 * namespace, with the job id, the image and the host. Keeping it in the
 * cluster (as Helm keeps its releases) means any worker, on any machine, that
 * deploys to that cluster finds the same last good release.
 *
 * The rollback applies those documents again with server-side apply (the
 * same field manager, so fields the failed release added are dropped), waits
 * for that rollout, and upserts the old host's DNS record (a no-op when it
 * is already right).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "orchestrator/client/kube.h"
#include "steps/deploy.h"
#include "common/banned.h"

#define RELEASE_PREFIX "slipway-release-"

/* The Deployment among `docs`, or NULL. */
const json_t *step_release_deployment(const json_t *docs)
{
        const json_t *doc;
        size_t i;

        json_array_foreach(docs, i, doc)
        {
                if (!strcmp(sw_json_str(doc, "kind", ""), "Deployment"))
                        return doc;
        }
        return NULL;
}

/* The image of the Deployment's first container, or "". */
static const char *deployment_image(const json_t *deploy)
{
        const json_t *pod = json_object_get(json_object_get(deploy, "spec"), "template");
        const json_t *c =
                json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);

        return sw_json_str(c, "image", "");
}

int step_release_save(struct orch_kube *kube, int64_t job_id, const json_t *docs, const char *host,
                      struct sw_err *err)
{
        const json_t *deploy = step_release_deployment(docs);
        const json_t *meta = json_object_get(deploy, "metadata");
        const char *ns = sw_json_str(meta, "namespace", "default");
        const char *name = sw_json_str(meta, "name", NULL);
        char *text = NULL, *cm_name = NULL, job[32];
        json_t *cm = NULL;
        int rc;

        if (!name)
                return sw_err_set(err, SW_EINVAL, "release: the documents have no Deployment");
        text = sw_json_dump(docs);
        cm_name = sw_xasprintf(RELEASE_PREFIX "%s", name);
        snprintf(job, sizeof(job), "%lld", (long long)job_id);
        cm = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s}},s:{s:s,s:s,s:s,s:s}}", "apiVersion", "v1",
                       "kind", "ConfigMap", "metadata", "name", cm_name, "namespace", ns, "labels",
                       "app.kubernetes.io/name", name, "app.kubernetes.io/managed-by", "slipway",
                       "data", "job", job, "image", deployment_image(deploy), "host",
                       host ? host : "", "documents", text);
        rc = orch_kube_apply(NULL, kube, cm, "slipway", true, err);
        if (rc)
                sw_err_wrap(err, "release: save %s/%s", ns, cm_name);
        json_decref(cm);
        free(cm_name);
        free(text);
        return rc;
}

void step_release_clear(struct step_release *r)
{
        if (!r)
                return;
        free(r->image);
        free(r->host);
        json_decref(r->documents);
        memset(r, 0, sizeof(*r));
}

int step_release_load(struct step_release *out, struct orch_kube *kube, const char *ns,
                      const char *name, struct sw_err *err)
{
        char *path =
                sw_xasprintf("/api/v1/namespaces/%s/configmaps/" RELEASE_PREFIX "%s", ns, name);
        const char *text, *job;
        json_t *cm = NULL, *docs = NULL;
        char *end = NULL;
        long long id;
        int rc;

        rc = orch_kube_get(&cm, kube, path, err);
        if (rc)
                goto out;
        text = sw_json_str(json_object_get(cm, "data"), "documents", NULL);
        job = sw_json_str(json_object_get(cm, "data"), "job", "");
        id = strtoll(job, &end, 10);
        if (!text || end == job || *end || id <= 0 ||
            sw_json_parse(&docs, text, strlen(text), 0, err) != 0 || !json_is_array(docs) ||
            !step_release_deployment(docs)) {
                rc = sw_err_set(err, SW_ECORRUPT, "release: %s/" RELEASE_PREFIX "%s is damaged", ns,
                                name);
                goto out;
        }
        out->job_id = id;
        out->image = sw_xstrdup(sw_json_str(json_object_get(cm, "data"), "image", ""));
        out->host = sw_xstrdup(sw_json_str(json_object_get(cm, "data"), "host", ""));
        out->documents = docs;
        docs = NULL; /* ownership moved to the caller */
out:
        json_decref(docs);
        json_decref(cm);
        free(path);
        return rc;
}

/* The old host's A record again; the owner check of dns_record_upsert still holds. */
static int rollback_dns(const struct sw_config *cfg, const char *host, const char *ns,
                        const char *name, struct sw_err *err)
{
        struct dns_client *client = NULL;
        char *fqdn = NULL, *zone = NULL, *resource = sw_xasprintf("ingress/%s/%s", ns, name);
        int rc;

        if ((rc = dns_name_canonical(&fqdn, host, "host", err)) == 0 &&
            (rc = dns_name_canonical(&zone, cfg->dns_zone, "SLIPWAY_DNS_ZONE", err)) == 0 &&
            (rc = dns_name_in_zone(fqdn, zone, err)) == 0 &&
            (rc = dns_client_from_config(&client, cfg, err)) == 0)
                rc = dns_record_upsert(client, zone, fqdn, cfg->edge_ip, (uint32_t)cfg->dns_ttl,
                                       cfg->dns_owner, resource, err);
        dns_client_free(client);
        free(fqdn);
        free(zone);
        free(resource);
        return rc;
}

int step_release_rollback(struct step_release *to, struct orch_kube *kube,
                          const struct sw_config *cfg, const char *ns, const char *name,
                          atomic_int *stop, void (*progress)(void *arg, const char *line),
                          void *arg, struct sw_err *err)
{
        int rc;

        rc = step_release_load(to, kube, ns, name, err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                return sw_err_set(err, SW_ENOTFOUND, "no earlier good release of %s/%s", ns, name);
        }
        if (rc)
                return rc;
        if (progress) {
                char line[512];
                snprintf(line, sizeof(line), "rolling back to the release of job %lld (%s)",
                         (long long)to->job_id, to->image);
                progress(arg, line);
        }
        if ((rc = step_deploy_apply(kube, to->documents, NULL, err)) != 0)
                return sw_err_wrap(err, "rollback");
        rc = step_deploy_wait(kube, ns, name, cfg->rollout_timeout_ms, stop, progress, arg, err);
        if (rc)
                return sw_err_wrap(err, "rollback");
        if (to->host[0] && cfg->pdns_url && (rc = rollback_dns(cfg, to->host, ns, name, err)) != 0)
                return sw_err_wrap(err, "rollback: dns");
        return 0;
}
