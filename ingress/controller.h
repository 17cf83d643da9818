/*
 * controller.h - the ingress controller: Ingress objects in, nginx routes out.
 *
 * Threads that keep nginx's routes equal to the Ingress objects of our
 * class in the cluster. They watch Ingresses, Services, Pods and Endpoints
 * (and Secrets, for TLS) through the Kubernetes API; a change that matters
 * for routing rebuilds the route table a few milliseconds later (bursts are
 * coalesced), and nginx is reloaded only when the rendered configuration
 * changed. A Service port resolves to the Service's clusterIP:port, which
 * the node agents' service proxy balances over the ready endpoints (as
 * kube-proxy would). A headless Service (clusterIP None) resolves to its
 * first ready pod (by name) that matches the selector: the pod's published
 * host port (annotation slipway.dev/ports, {"<containerPort>": <hostPort>},
 * written by the node agent) or podIP:containerPort. An Ingress whose
 * Service has no ready pod is left out until it has one.
 *
 * Routed Ingresses get status.loadBalancer.ingress[].ip = edge_ip. When nginx
 * rejects a configuration, the old one keeps serving, and the Ingresses that
 * changed since the last accepted one get a Warning Event (RejectedConfig,
 * with nginx's message) and stay out until they change again.
 *
 * Ownership: ingress_ctrl_start() returns a running controller owned by the
 * caller; ingress_ctrl_stop() stops and frees it (accepts NULL). The nginx
 * handle stays the caller's and must outlive the controller.
 */
#ifndef SW_INGRESS_CONTROLLER_H
#define SW_INGRESS_CONTROLLER_H

#include <stdint.h>

#include "common/err.h"
#include "ingress/ingress.h"

struct ingress_ctrl;

struct ingress_ctrl_options {
        const char *kubeconfig;    /* the cluster to watch */
        const char *ingress_class; /* NULL: "slipway" */
        struct ingress_nginx *nginx;
        struct ingress_render_options render;
        const char *edge_ip; /* written into status.loadBalancer; NULL: status left alone */
        const char *tls_dir; /* where TLS Secrets become files (0600); NULL: no TLS routes */
};

int ingress_ctrl_start(struct ingress_ctrl **out, const struct ingress_ctrl_options *opts,
                       struct sw_err *err);
void ingress_ctrl_stop(struct ingress_ctrl *c);
/* Route table rebuilds done so far (for tests and status). */
int64_t ingress_ctrl_resyncs(const struct ingress_ctrl *c);

#endif /* SW_INGRESS_CONTROLLER_H */
