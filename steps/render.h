/*
 * render.h - the Kubernetes objects of an app, from templates.
 *
 * Templates are YAML files with ${var} placeholders (schema/templates/,
 * replaced by file name from SLIPWAY_TEMPLATES and then from the
 * repository's own deploy/ directory; other .yaml files there are added).
 * Values go in as YAML scalars through libyaml's emitter, never as pasted
 * text, so no value can change the structure of a document. A placeholder
 * that is a whole value and whose variable is not set removes its key (a
 * limit that was not asked for). The result is parsed back and validated:
 * known apiVersion/kind, names (RFC 1123/1035), label values, quantities,
 * Ingress hosts.
 *
 * Variables: name, namespace, image, replicas, port, port_text, cpu, memory,
 * cpu_limit, memory_limit, service_type, host, repo, branch, commit, job_id,
 * ingress_class, quota_cpu, quota_memory, quota_pods, default_cpu,
 * default_memory, default_cpu_limit, default_memory_limit.
 */
#ifndef SW_STEPS_RENDER_H
#define SW_STEPS_RENDER_H

#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

struct sw_config;

struct step_render_input {
        const json_t *request; /* a normalised deploy request (engine/request.h) */
        const char *image;     /* "registry/repo@sha256:..." */
        const char *commit;    /* the resolved commit, or NULL */
        int64_t job_id;        /* 0: none */
        int exposed_port;      /* the image's EXPOSE, used when the request has no port; 0: none */
        const char *repo_dir;  /* a checkout whose deploy/ may hold templates, or NULL */
};

/* Render every document; *docs_out is a JSON array owned by the caller. */
int step_render_documents(json_t **docs_out, const struct step_render_input *in,
                          const struct sw_config *cfg, struct sw_err *err);

/* Validate rendered documents (see above). */
int step_render_validate(const json_t *docs, struct sw_err *err);

/*
 * Expand one template. `vars` maps every known variable to a string, an
 * integer, or null when unset. *yaml_out is malloc'ed YAML text.
 */
int step_render_expand(char **yaml_out, const char *tmpl, size_t len, const char *what,
                       const json_t *vars, struct sw_err *err);

/* `slipway render`: the request flags plus --image; prints YAML or JSON. */
int step_render_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_STEPS_RENDER_H */
