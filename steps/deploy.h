/*
 * deploy.h - apply an app's documents to a Kubernetes API and wait for the rollout.
 *
 * The same code serves the included orchestrator and a real cluster: the
 * cluster is the one of SLIPWAY_KUBECONFIG, else $SLIPWAY_DATA/kubeconfig
 * (written by `slipway serve` for the included core). Documents are applied
 * with server-side apply (fieldManager "slipway", forced: slipway owns the
 * fields it renders), in order. The rollout is done when the Deployment's
 * controller has observed the new generation and all replicas are updated
 * and available, as `kubectl rollout status` judges it. A rollout that does
 * not finish fails with what is wrong: an image that cannot be pulled (with
 * the registry's message), a crashing container (with its last log lines),
 * a pod that cannot be scheduled (with the scheduler's message), or the
 * Deployment's ProgressDeadlineExceeded.
 */
#ifndef SW_STEPS_DEPLOY_H
#define SW_STEPS_DEPLOY_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

struct orch_kube;
struct sw_config;

/* The client for the configured cluster (see above). */
int step_deploy_client(struct orch_kube **out, const struct sw_config *cfg, struct sw_err *err);

/* Apply every document of `docs` in order; *applied_out (may be NULL) counts them. */
int step_deploy_apply(struct orch_kube *kube, const json_t *docs, int *applied_out,
                      struct sw_err *err);

/*
 * Wait until the Deployment ns/name has rolled out, or `timeout_ms` passed
 * (SW_ETIMEDOUT, with the reasons found), or *stop became non-zero
 * (SW_ECANCELED). `progress` (may be NULL) is called with a line when the
 * rollout's state changes.
 */
int step_deploy_wait(struct orch_kube *kube, const char *ns, const char *name, int64_t timeout_ms,
                     atomic_int *stop, void (*progress)(void *arg, const char *line), void *arg,
                     struct sw_err *err);

/* ---- releases (steps/release.c) ---- */

/* An app's last good release, as stored by step_release_save(). */
struct step_release {
        int64_t job_id;    /* the deploy job that succeeded with it */
        char *image;       /* its Deployment's image */
        char *host;        /* the host it was published at ("" when unknown) */
        json_t *documents; /* the documents that job applied */
};

/* The Deployment among `docs`, or NULL. Borrowed. */
const json_t *step_release_deployment(const json_t *docs);

/*
 * Record `docs` (a render step's documents) as the last good release of the
 * app whose Deployment they hold: the ConfigMap "slipway-release-<name>" in
 * its namespace (server-side apply, idempotent), with job id, image and host.
 */
int step_release_save(struct orch_kube *kube, int64_t job_id, const json_t *docs, const char *host,
                      struct sw_err *err);

/* The last good release of ns/name into *out (cleared with step_release_clear); SW_ENOTFOUND if none. */
int step_release_load(struct step_release *out, struct orch_kube *kube, const char *ns,
                      const char *name, struct sw_err *err);
void step_release_clear(struct step_release *r);

/*
 * Roll ns/name back to its last good release: load it into *to (cleared by
 * the caller), apply its documents again (Deployment, Service, Ingress...),
 * wait for that rollout, and upsert its host's DNS record when PowerDNS is
 * configured. SW_ENOTFOUND when there is no earlier release.
 */
int step_release_rollback(struct step_release *to, struct orch_kube *kube,
                          const struct sw_config *cfg, const char *ns, const char *name,
                          atomic_int *stop, void (*progress)(void *arg, const char *line),
                          void *arg, struct sw_err *err);

#endif /* SW_STEPS_DEPLOY_H */
