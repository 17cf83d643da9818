/*
 * serve.h - `slipway serve`: everything on one machine, and `slipway status`.
 *
 * serve runs the queue workers with the whole deploy pipeline and keeps the
 * real edge parts running on loopback, each with a configuration it writes
 * under SLIPWAY_DATA: docker-registry (when SLIPWAY_REGISTRY is
 * SLIPWAY_REGISTRY_LISTEN), pdns_server with its gsqlite3 backend (when
 * SLIPWAY_PDNS_URL is unset) and nginx for the ingress routes. A part that
 * dies is restarted (engine/supervise.h). Every few seconds it writes
 * $SLIPWAY_DATA/serve.json, which `slipway status` reads and checks.
 */
#ifndef SW_SERVE_H
#define SW_SERVE_H

struct sw_config;

int serve_cmd(int argc, char **argv, const struct sw_config *cfg);
int serve_status_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_SERVE_H */
